//! What writing received room messages costs, per message, by the number of messages in one
//! transaction: the node's store as the node opens it (a file, WAL mode, the checkpoint thread),
//! already holding `--existing` messages (so the id index is deep and its inserts land on pages
//! all over it), each row written with `Store::insert_decoded` as `Inbound::flush` writes it.
//!
//! ```sh
//! cargo bench -p meshchat-node --bench store -- [--dir D] [--existing N] [--messages M] [--batches 1,2,5,20,100] [--drop-index NAME ...]
//! ```
//!
//! `--drop-index` (repeatable) drops one of the messages table's indexes before the measured
//! writes (`messages_ts`, `messages_seq`, `messages_room_ts`): what each B-tree costs a row.
//! Only for measuring: the node needs every one of them.
//!
//! `--dir` is where the database goes (default: the system's temporary directory; the lab runs
//! its nodes on tmpfs, `/dev/shm`). Prints µs per message and per transaction for each batch
//! size, as a markdown table (figures and what they mean: BENCHMARKS §2, seventh round).

use std::path::PathBuf;
use std::time::Instant;

use meshchat_core::envelope::{Draft, Kind};
use meshchat_core::room::Text;
use meshchat_core::{Envelope, Keypair};
use meshchat_node::store::{Store, StoredMessage};

struct Args {
    dir: Option<PathBuf>,
    existing: usize,
    messages: usize,
    batches: Vec<usize>,
    drop: Vec<String>,
}

fn args() -> Args {
    let mut a = Args {
        dir: None,
        existing: 20_000,
        messages: 4_000,
        batches: vec![1, 2, 5, 20, 100],
        drop: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--dir" => a.dir = Some(PathBuf::from(v())),
            "--existing" => a.existing = v().parse().expect("--existing N"),
            "--messages" => a.messages = v().parse().expect("--messages N"),
            "--batches" => {
                a.batches = v()
                    .split(',')
                    .map(|b| b.trim().parse().expect("--batches 1,2,5"))
                    .collect()
            }
            "--drop-index" => a.drop.push(v()),
            // cargo bench passes --bench
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// `n` signed room messages from a few authors, as a node receives them.
fn messages(n: usize, from: usize) -> Vec<(Envelope, StoredMessage)> {
    let keys: Vec<Keypair> = (0..30u8)
        .map(|i| Keypair::from_secret_bytes(&[i + 1; 32]))
        .collect();
    (from..from + n)
        .map(|i| {
            let text = Text {
                nick: format!("n{}", i % 30),
                text: format!("bench message #{i}, about the length of a chat line"),
            };
            let body = text.encode().expect("a short text encodes");
            let env = Envelope::sign(
                &keys[i % keys.len()],
                Draft {
                    kind: Kind::RoomText,
                    target: "lobby",
                    timestamp_ms: 1_700_000_000_000 + i as u64,
                    nonce: i as u64,
                    body: &body,
                },
            )
            .expect("a valid envelope");
            let stored = StoredMessage::new(&env, text);
            (env, stored)
        })
        .collect()
}

fn main() {
    let a = args();
    let dir = match &a.dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .expect("a temporary directory");
    let path = dir.path().join("meshchat.sqlite");
    let mut store = Store::open(&path).expect("the store opens");
    store
        .checkpoint_in_background(&path)
        .expect("the checkpoint thread starts");
    store.join_room("lobby", 0).expect("joined");

    // Fill it, in big batches (not measured).
    let mut next = 0;
    while next < a.existing {
        let n = 500.min(a.existing - next);
        let batch = messages(n, next);
        let rows: Vec<_> = batch.iter().map(|(e, m)| (e, m)).collect();
        store.insert_decoded(&rows, 0).expect("filled");
        next += n;
    }
    if !a.drop.is_empty() {
        let conn = rusqlite::Connection::open(&path).expect("a second connection");
        for name in &a.drop {
            conn.execute_batch(&format!("DROP INDEX {name}"))
                .expect("an index of the messages table");
        }
    }
    println!(
        "store at {} with {} messages; {} more per batch size; indexes dropped: {:?}",
        dir.path().display(),
        a.existing,
        a.messages,
        a.drop
    );
    println!("| messages per transaction | µs per message | µs per transaction |");
    println!("|---|---|---|");
    for &b in &a.batches {
        let batch = messages(a.messages, next);
        next += a.messages;
        let start = Instant::now();
        for chunk in batch.chunks(b.max(1)) {
            let rows: Vec<_> = chunk.iter().map(|(e, m)| (e, m)).collect();
            let fresh = store.insert_decoded(&rows, 0).expect("written");
            assert!(fresh.iter().all(Option::is_some), "every row is new");
        }
        let us = start.elapsed().as_secs_f64() * 1e6;
        let per_msg = us / a.messages as f64;
        println!("| {b} | {per_msg:.1} | {:.1} |", per_msg * b as f64);
    }
    store.close().expect("closed cleanly");
}
