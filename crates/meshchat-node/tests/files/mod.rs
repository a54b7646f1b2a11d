//! File transfer between real nodes on loopback (issue 20): to a room member and to one
//! person across a relay, resumed after either end restarts, from two holders at once, data
//! damaged on disk fetched again, unsafe names made safe, a file that does not fit refused.

use std::path::{Path, PathBuf};

use meshchat_api::{self as api, FileState};
use meshchat_core::envelope::{Draft, Kind};
use meshchat_core::Envelope;
use meshchat_node::Event;

use crate::hostile::{raw_peer, Reading};
use crate::support::*;
use crate::unix_ms;

const MIB: usize = 1024 * 1024;

/// A file of `len` bytes that no two positions repeat in a way a chunk mix-up would hide.
fn make_file(dir: &Path, name: &str, len: usize) -> (PathBuf, Vec<u8>) {
    let mut data = Vec::with_capacity(len);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ len as u64;
    while data.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(len);
    let path = dir.join(name);
    std::fs::write(&path, &data).unwrap();
    (path, data)
}

async fn wait_offer(node: &mut TestNode) -> api::File {
    match node
        .wait_for(|e| matches!(e, Event::File(api::Event::FileOffer(_))))
        .await
    {
        Event::File(api::Event::FileOffer(f)) => f,
        _ => unreachable!(),
    }
}

/// Waits for the download `id` to finish; its path.
async fn wait_done(node: &mut TestNode, id: &str) -> PathBuf {
    let id = id.to_owned();
    let e = node
        .wait_for(|e| {
            matches!(e, Event::File(api::Event::FileDone { id: i, .. } | api::Event::FileFailed { id: i, .. }) if *i == id)
        })
        .await;
    match e {
        Event::File(api::Event::FileDone { path, .. }) => PathBuf::from(path),
        other => panic!("{}: download failed: {other:?}", node.name),
    }
}

/// Waits until the download `id` has verified at least `bytes`.
async fn wait_progress(node: &mut TestNode, id: &str, bytes: u64) {
    let id = id.to_owned();
    node.wait_for(|e| {
        matches!(e, Event::File(api::Event::FileProgress { id: i, bytes: b, .. }) if *i == id && *b >= bytes)
    })
    .await;
}

async fn chain() -> (TestNode, TestNode, TestNode) {
    let mut a = TestNode::start("a", &[]).await;
    let mut b = TestNode::start("b", &[&a]).await;
    let mut c = TestNode::start("c", &[&b]).await;
    a.wait_peers(1).await;
    b.wait_peers(2).await;
    c.wait_peers(1).await;
    (a, b, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_file_crosses_a_relay_to_a_member() {
    let (a, b, mut c) = chain().await;
    let src = tempfile::tempdir().unwrap();
    let (path, data) = make_file(src.path(), "film.bin", 64 * MIB);
    let offered = a
        .handle
        .send_file(Some("lobby"), None, path.to_str().unwrap())
        .await
        .unwrap();
    assert_eq!(offered.state, FileState::Serving);
    assert_eq!(offered.size, data.len() as u64);

    let offer = wait_offer(&mut c).await;
    assert_eq!(offer.id, offered.id);
    assert_eq!(offer.hash, offered.hash);
    assert_eq!(offer.room.as_deref(), Some("lobby"));
    assert_eq!(
        offer.state,
        FileState::Offered,
        "64 MiB is not fetched unasked"
    );
    c.handle.accept_file(&offer.id).await.unwrap();

    let got = wait_done(&mut c, &offer.id).await;
    assert_eq!(got, c.data_dir().join("downloads").join("film.bin"));
    assert!(
        std::fs::read(&got).unwrap() == data,
        "the file arrived whole"
    );
    // The offer reads as a message in the room's history, for every interface.
    assert!(c
        .history_texts("lobby")
        .await
        .contains(&"📎 film.bin (64.0 MiB)".to_owned()));
    let relayed = b.handle.stats().await.unwrap().file_bytes_relayed;
    assert!(relayed >= data.len() as u64, "B relayed it: {relayed}");
    let listed = c.handle.files().await.unwrap();
    assert_eq!(listed[0].state, FileState::Done);
    assert_eq!(listed[0].bytes, data.len() as u64);
    assert!(
        !c.data_dir()
            .join("downloads/.meshchat-partial")
            .read_dir()
            .unwrap()
            .any(|_| true),
        "no partial file is left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_file_crosses_a_relay_sealed() {
    let (mut a, mut b, mut c) = chain().await;
    let src = tempfile::tempdir().unwrap();
    let (path, data) = make_file(src.path(), "report.pdf", 64 * MIB);
    // A needs C's profile (its seal key) to offer it anything.
    let to = c.peer_id.to_string();
    eventually("a knows c's profile", async || {
        a.handle.whois(&to).await.is_ok()
    })
    .await;
    let offered = a
        .handle
        .send_file(None, Some(&to), path.to_str().unwrap())
        .await
        .unwrap();
    assert_eq!(offered.to.as_deref(), Some(to.as_str()));

    let offer = wait_offer(&mut c).await;
    assert_eq!(offer.id, offered.id);
    assert_eq!(offer.to.as_deref(), Some(to.as_str()));
    assert_eq!(offer.room, None);
    c.handle.accept_file(&offer.id).await.unwrap();
    let got = wait_done(&mut c, &offer.id).await;
    assert!(
        std::fs::read(&got).unwrap() == data,
        "the file arrived whole"
    );
    // The sender saw it go: its progress reaches the whole file.
    let (id, total) = (offered.id.clone(), data.len() as u64);
    a.wait_for(|e| {
        matches!(e, Event::File(api::Event::FileProgress { id: i, bytes, .. }) if *i == id && *bytes == total)
    })
    .await;
    // The relay carried every byte, sealed: it never saw the offer (nor its key).
    let relayed = b.handle.stats().await.unwrap().file_bytes_relayed;
    assert!(relayed >= data.len() as u64, "B relayed it: {relayed}");
    assert!(b.handle.files().await.unwrap().is_empty());
    assert!(!b.take_events().iter().any(|e| matches!(e, Event::File(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_resumes_after_the_downloader_restarts() {
    let mut a = TestNode::start("a", &[]).await;
    let mut c = TestNode::start("c", &[&a]).await;
    a.wait_peers(1).await;
    c.wait_peers(1).await;
    let src = tempfile::tempdir().unwrap();
    let (path, data) = make_file(src.path(), "big.bin", 64 * MIB);
    let size = data.len() as u64;
    a.handle
        .send_file(Some("lobby"), None, path.to_str().unwrap())
        .await
        .unwrap();
    let offer = wait_offer(&mut c).await;
    c.handle.accept_file(&offer.id).await.unwrap();
    wait_progress(&mut c, &offer.id, size / 4).await;

    // Stopped a quarter of the way or more; started again on the same data dir, it goes on
    // by itself.
    let dir = c.stop().await;
    let sent_before = a.handle.stats().await.unwrap().file_bytes_sent;
    let mut c = TestNode::start_in(dir, "c", &[&a]).await;
    let got = wait_done(&mut c, &offer.id).await;
    assert!(
        std::fs::read(&got).unwrap() == data,
        "the file arrived whole"
    );
    let sent = a.handle.stats().await.unwrap().file_bytes_sent;
    // Only what was missing is sent again: what C had saved stays (at most one second of
    // pieces and the window in flight at the stop are lost with it).
    assert!(sent_before < size, "stopped before the end: {sent_before}");
    assert!(
        sent - sent_before < size - size / 8,
        "after the restart {} of {size} bytes were sent",
        sent - sent_before
    );
    assert!(
        sent < size + size / 2,
        "{sent} bytes sent in all for {size}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_resumes_after_the_sender_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let a = TestNode::start_in(dir, "a", &[]).await;
    let mut c = TestNode::start("c", &[&a]).await;
    c.wait_peers(1).await;
    let src = tempfile::tempdir().unwrap();
    let (path, data) = make_file(src.path(), "big.bin", 64 * MIB);
    a.handle
        .send_file(Some("lobby"), None, path.to_str().unwrap())
        .await
        .unwrap();
    let offer = wait_offer(&mut c).await;
    c.handle.accept_file(&offer.id).await.unwrap();
    wait_progress(&mut c, &offer.id, data.len() as u64 / 4).await;

    // The sender goes away and comes back on the same address: it serves its offer again
    // from what it stored (no new hashing), and the download goes on.
    let addr = a.addr.clone();
    let dir = a.stop().await;
    let listen = addr.iter().take(2).collect::<libp2p::Multiaddr>();
    let _a = TestNode::start_with(dir, Some("a"), &[], move |c| c.listen = vec![listen]).await;
    let got = wait_done(&mut c, &offer.id).await;
    assert!(
        std::fs::read(&got).unwrap() == data,
        "the file arrived whole"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_file_comes_from_two_holders_at_once() {
    let mut a = TestNode::start("a", &[]).await;
    let mut b = TestNode::start("b", &[&a]).await;
    b.wait_peers(1).await;
    let src = tempfile::tempdir().unwrap();
    // 64 chunks: enough for both holders to get some, small enough that the first fetch
    // (B's) stays well inside the deadline while the other tests load the machine.
    let (path, data) = make_file(src.path(), "shared.bin", 16 * MIB);
    a.handle
        .send_file(Some("lobby"), None, path.to_str().unwrap())
        .await
        .unwrap();
    let offer = wait_offer(&mut b).await;
    b.handle.accept_file(&offer.id).await.unwrap();
    wait_done(&mut b, &offer.id).await;
    a.take_events();

    // C reaches both; the offer comes to it by history sync.
    let mut c = TestNode::start("c", &[&a, &b]).await;
    c.wait_peers(2).await;
    let offer = wait_offer(&mut c).await;
    // Both are reachable (a holder with no route yet is backed off, and A alone would be
    // quick enough to serve everything meanwhile).
    let (pa, pb) = (a.peer_id, b.peer_id);
    eventually("c has routes to a and b", async || {
        let routes = c.handle.routes().await.unwrap();
        [pa, pb].iter().all(|p| routes.iter().any(|r| r.dest == *p))
    })
    .await;
    let a_before = a.handle.stats().await.unwrap().file_bytes_sent;
    let b_before = b.handle.stats().await.unwrap().file_bytes_sent;
    c.handle.accept_file(&offer.id).await.unwrap();
    let got = wait_done(&mut c, &offer.id).await;
    assert!(
        std::fs::read(&got).unwrap() == data,
        "the file arrived whole"
    );
    let from_a = a.handle.stats().await.unwrap().file_bytes_sent - a_before;
    let from_b = b.handle.stats().await.unwrap().file_bytes_sent - b_before;
    assert!(
        from_a > 0 && from_b > 0,
        "both served: a {from_a}, b {from_b}"
    );
    assert!(
        from_a + from_b < data.len() as u64 * 3 / 2,
        "little was fetched twice: a {from_a}, b {from_b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_damaged_on_disk_are_fetched_again() {
    let mut a = TestNode::start("a", &[]).await;
    let mut c = TestNode::start("c", &[&a]).await;
    c.wait_peers(1).await;
    let src = tempfile::tempdir().unwrap();
    let (path, data) = make_file(src.path(), "x.bin", 64 * MIB);
    a.handle
        .send_file(Some("lobby"), None, path.to_str().unwrap())
        .await
        .unwrap();
    let offer = wait_offer(&mut c).await;
    c.handle.accept_file(&offer.id).await.unwrap();
    wait_progress(&mut c, &offer.id, data.len() as u64 / 3).await;
    let dir = c.stop().await;
    a.take_events();

    // The disk lost what was written of the first chunks (a crash before they reached it, a
    // bad sector) while the node believes it has them.
    let part = dir
        .path()
        .join("downloads/.meshchat-partial")
        .join(format!("{}.part", offer.hash));
    let mut bytes = std::fs::read(&part).unwrap();
    bytes[..MIB].fill(0);
    std::fs::write(&part, &bytes).unwrap();

    let mut c = TestNode::start_in(dir, "c", &[&a]).await;
    let got = wait_done(&mut c, &offer.id).await;
    assert!(
        std::fs::read(&got).unwrap() == data,
        "the damaged chunks were found by the final check and fetched again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_files_are_fetched_unasked_under_a_safe_name() {
    let mut a = TestNode::start("a", &[]).await;
    let mut c = TestNode::start("c", &[&a]).await;
    c.wait_peers(1).await;
    let src = tempfile::tempdir().unwrap();
    // A hidden name loses its dots; a taken name gets a number.
    let (path, data) = make_file(src.path(), "..profile", 300_000);
    std::fs::create_dir_all(c.data_dir().join("downloads")).unwrap();
    std::fs::write(c.data_dir().join("downloads/profile"), b"mine").unwrap();
    let offered = a
        .handle
        .send_file(Some("lobby"), None, path.to_str().unwrap())
        .await
        .unwrap();
    assert_eq!(offered.name, "profile");
    let got = wait_done(&mut c, &offered.id).await;
    assert_eq!(got, c.data_dir().join("downloads/profile (1)"));
    assert!(std::fs::read(&got).unwrap() == data);
    assert_eq!(
        std::fs::read(c.data_dir().join("downloads/profile")).unwrap(),
        b"mine",
        "nothing is ever written over"
    );
    a.take_events();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_with_a_path_in_its_name_is_refused() {
    let mut node = TestNode::start("n", &[]).await;
    let mut raw = raw_peer(&node, Reading::Drain).await;
    node.wait_peers(1).await;
    // A file offer body written by hand, naming "../../x": no honest node signs one.
    let mut body = vec![4];
    body.extend_from_slice(b"evil");
    let name = b"../../.bashrc";
    body.extend_from_slice(&(name.len() as u16).to_be_bytes());
    body.extend_from_slice(name);
    body.extend_from_slice(&1000u64.to_be_bytes());
    body.extend_from_slice(&(256u32 * 1024).to_be_bytes());
    body.extend_from_slice(&[7; 32]);
    body.push(0);
    let key = meshchat_core::Keypair::generate(&mut rand::thread_rng());
    let env = Envelope::sign(
        &key,
        Draft {
            kind: Kind::File,
            target: "lobby",
            timestamp_ms: unix_ms(),
            nonce: 1,
            body: &body,
        },
    )
    .unwrap()
    .into_bytes();
    raw.publish(env).await.unwrap();
    node.wait_stats("the offer refused", |s| {
        s.rejected.get(meshchat_core::inbound::Reason::Malformed) >= 1
    })
    .await;
    assert!(node.handle.files().await.unwrap().is_empty());
    assert!(!node
        .take_events()
        .iter()
        .any(|e| matches!(e, Event::File(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_does_not_fit_is_refused_with_the_reason() {
    let mut a = TestNode::start("a", &[]).await;
    // This node keeps more free than any disk has.
    let mut c = TestNode::start_with(tempfile::tempdir().unwrap(), Some("c"), &[&a], |c| {
        c.files.keep_free = u64::MAX / 4
    })
    .await;
    c.wait_peers(1).await;
    let src = tempfile::tempdir().unwrap();
    let (path, _) = make_file(src.path(), "big.bin", 20 * MIB);
    a.handle
        .send_file(Some("lobby"), None, path.to_str().unwrap())
        .await
        .unwrap();
    let offer = wait_offer(&mut c).await;
    let e = c
        .handle
        .accept_file(&offer.id)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("not enough space for big.bin: it needs 20.0 MiB"),
        "{e}"
    );
    let failed = c
        .wait_for(|e| matches!(e, Event::File(api::Event::FileFailed { .. })))
        .await;
    assert!(matches!(failed, Event::File(api::Event::FileFailed { reason, .. }) if reason == e));
    assert_eq!(c.handle.files().await.unwrap()[0].state, FileState::Failed);
    a.take_events();
}

/// A raw libp2p peer next to the downloader that answers every `Want` with wrong bytes: the
/// downloader refuses them, strikes it, asks it nothing more, and gets the file from its author.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_sends_corrupt_chunks_is_refused_and_struck() {
    use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
    use libp2p::swarm::SwarmEvent;
    use meshchat_core::transfer::wire::{Frame, PieceFrame};
    use meshchat_core::transfer::Piece;
    use meshchat_node::behaviour::file::PROTOCOL;

    let mut a = TestNode::start("a", &[]).await;
    let mut c = TestNode::start("c", &[&a]).await;
    c.wait_peers(1).await;

    // The liar: it takes the streams C opens to it, reads C's Wants, and writes pieces of the
    // right lengths with wrong bytes on its own stream to C.
    let identity = libp2p::identity::Keypair::generate_ed25519();
    let liar_key: [u8; 32] = identity.public().try_into_ed25519().unwrap().to_bytes();
    let mut swarm = crate::support::raw::swarm(identity);
    let mut control = swarm.behaviour().stream.new_control();
    let mut incoming = control.accept(PROTOCOL).unwrap();
    // It takes C's route stream too (and reads nothing of it), so C keeps it as a neighbour
    // with a route.
    let mut routes_in = control
        .accept(meshchat_node::behaviour::route::PROTOCOL)
        .unwrap();
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some((_, s)) = routes_in.next().await {
            held.push(s);
        }
    });
    swarm.dial(c.addr.clone()).unwrap();
    let (pong_tx, mut pongs) = tokio::sync::watch::channel(0);
    let driver = tokio::spawn(async move {
        loop {
            if let SwarmEvent::Behaviour(e) = swarm.select_next_some().await {
                crate::support::raw::count_pong(&e, &pong_tx);
            }
        }
    });
    let mut out =
        crate::support::raw::open_accepted(&mut control, c.peer_id, PROTOCOL, &mut pongs).await;
    let liar = tokio::spawn(async move {
        let mut lied = 0u32;
        while let Some((_, mut stream)) = incoming.next().await {
            let mut len = [0u8; 4];
            while stream.read_exact(&mut len).await.is_ok() {
                let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
                if stream.read_exact(&mut frame).await.is_err() {
                    break;
                }
                let Ok(Frame::Want(w)) = Frame::<[u8; 32]>::decode(&frame) else {
                    continue;
                };
                for piece in w.pieces {
                    let data_len = match piece {
                        Piece::Manifest => 32 * 80,
                        Piece::Chunk(_) => 256 * 1024,
                    };
                    let bytes = Frame::Piece(PieceFrame {
                        hop_limit: 8,
                        to: w.from,
                        from: liar_key,
                        root: w.root,
                        piece,
                        data: vec![0xee; data_len],
                    })
                    .encode();
                    let mut msg = (bytes.len() as u32).to_be_bytes().to_vec();
                    msg.extend_from_slice(&bytes);
                    if out.write_all(&msg).await.is_err() || out.flush().await.is_err() {
                        return lied;
                    }
                    lied += 1;
                }
            }
        }
        lied
    });
    // C is connected to both (the liar is a neighbour, so it is asked as a holder).
    let liar_id = libp2p::PeerId::from_public_key(&libp2p::identity::PublicKey::from(
        libp2p::identity::ed25519::PublicKey::try_from_bytes(&liar_key).unwrap(),
    ));
    let handle = c.handle.clone();
    eventually("c is connected to the liar", async || {
        handle
            .peers()
            .await
            .unwrap()
            .iter()
            .any(|p| p.peer_id == liar_id)
    })
    .await;

    let src = tempfile::tempdir().unwrap();
    let (path, data) = make_file(src.path(), "true.bin", 20 * MIB);
    a.handle
        .send_file(Some("lobby"), None, path.to_str().unwrap())
        .await
        .unwrap();
    let offer = wait_offer(&mut c).await;
    c.handle.accept_file(&offer.id).await.unwrap();
    let got = wait_done(&mut c, &offer.id).await;
    assert!(
        std::fs::read(&got).unwrap() == data,
        "the file came whole from its author"
    );
    let stats = c.handle.stats().await.unwrap();
    assert!(stats.file_pieces_bad >= 1, "{stats:?}");
    assert!(
        stats
            .rejected
            .get(meshchat_core::inbound::Reason::Malformed)
            >= 1,
        "the liar was struck: {stats:?}"
    );
    driver.abort();
    liar.abort();
    held.abort();
    a.take_events();
}
