//! Bad input on `/meshchat/route/1`, from a raw libp2p peer that writes the frames by hand:
//! junk, forged receipts, DMs sealed to someone else, replays, stale adverts, oversized frames
//! and a custody flood are refused and counted, never shown, never a crash, with bounded
//! storage.

use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::PeerId;
use meshchat_core::dm::{self, Dm, DmId, EncryptionKey, Frame, Receipt, RoutedReceipt};
use meshchat_core::room::Text;
use meshchat_core::routing::{Advert, Message};
use meshchat_core::Keypair;
use meshchat_node::behaviour::route::PROTOCOL;
use meshchat_node::Event;

use crate::support::raw;
use crate::support::*;
use crate::unix_ms;

/// A raw peer with a meshchat key, connected to `target` with a route stream open both ways
/// (what the node sends it is read and kept).
pub(crate) struct RawRoute {
    pub(crate) key: Keypair,
    pub(crate) id: PeerId,
    stream: libp2p::Stream,
    received: tokio::sync::mpsc::Receiver<Vec<u8>>,
    /// The readers of the streams the node opened to us, one per stream, in order.
    node_streams: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for RawRoute {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

pub(crate) async fn raw_route_peer(target: &TestNode, seed: u8) -> RawRoute {
    let key = Keypair::from_secret_bytes(&[seed; 32]);
    let mut secret = key.secret_bytes();
    let identity = libp2p::identity::Keypair::ed25519_from_bytes(&mut secret[..]).unwrap();
    let mut swarm = raw::swarm(identity);
    let id = *swarm.local_peer_id();
    let mut control = swarm.behaviour().stream.new_control();
    let mut incoming = control.accept(PROTOCOL).unwrap();
    swarm.dial(target.addr.clone()).unwrap();
    let (pong_tx, mut pongs) = tokio::sync::watch::channel(0);
    let driver = tokio::spawn(async move {
        loop {
            if let libp2p::swarm::SwarmEvent::Behaviour(e) = swarm.select_next_some().await {
                raw::count_pong(&e, &pong_tx);
            }
        }
    });
    let (tx, received) = tokio::sync::mpsc::channel(1024);
    let node_streams = std::sync::Arc::<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>::default();
    let readers = node_streams.clone();
    let reader = tokio::spawn(async move {
        while let Some((_, mut stream)) = incoming.next().await {
            let tx = tx.clone();
            let read = tokio::spawn(async move {
                let mut len = [0u8; 4];
                while stream.read_exact(&mut len).await.is_ok() {
                    let mut frame = vec![0; u32::from_be_bytes(len) as usize];
                    if stream.read_exact(&mut frame).await.is_err() {
                        return;
                    }
                    let _ = tx.try_send(frame);
                }
            });
            readers.lock().unwrap().push(read.abort_handle());
        }
    });
    let stream = raw::open_accepted(&mut control, target.peer_id, PROTOCOL, &mut pongs).await;
    RawRoute {
        key,
        id,
        stream,
        received,
        node_streams,
        tasks: vec![driver, reader],
    }
}

impl RawRoute {
    /// Streams the node has opened to us so far.
    pub(crate) fn node_streams(&self) -> usize {
        self.node_streams.lock().unwrap().len()
    }

    /// Drops every stream the node opened to us (each is reset), as a peer does with a stream
    /// it cannot take.
    pub(crate) fn drop_node_streams(&self) {
        for reader in self.node_streams.lock().unwrap().iter() {
            reader.abort();
        }
    }

    pub(crate) async fn send(&mut self, frame: &[u8]) {
        let mut out = (frame.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(frame);
        self.stream.write_all(&out).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    /// Waits for a frame from the node matching `pred`.
    pub(crate) async fn wait_frame(&mut self, pred: impl Fn(&[u8]) -> bool) -> Vec<u8> {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let f = tokio::time::timeout_at(deadline, self.received.recv())
                .await
                .expect("the node sends the frame in time")
                .expect("the stream stays open");
            if pred(&f) {
                return f;
            }
        }
    }
}

/// The node's own X25519 seal key, read from its key file as its profile would announce it.
fn seal_key_of(node: &TestNode) -> dm::SealKey {
    let (identity, _) = meshchat_node::keyfile::load_or_create(&node.data_dir()).unwrap();
    EncryptionKey::derive(&identity).public()
}

pub(crate) fn key_of(node: &TestNode) -> [u8; 32] {
    meshchat_node::key_of_peer_id(&node.peer_id).unwrap()
}

fn sealed_dm(from: &Keypair, to: [u8; 32], seal_to: dm::SealKey, text: &str) -> Dm<[u8; 32]> {
    let now = unix_ms();
    let env = dm::sign_dm(
        from,
        &meshchat_core::PublicKey::from_bytes(&to).unwrap(),
        &Text {
            nick: "raw".into(),
            text: text.into(),
        },
        now,
        rand::random(),
    )
    .unwrap();
    dm::seal(
        &env,
        to,
        seal_to,
        now + 3_600_000,
        8,
        &mut rand::thread_rng(),
    )
    .unwrap()
}

/// A neighbour that drops the node's route stream (as libp2p-stream does with an incoming
/// stream that arrives before the previous one was taken) gets a new one at once, with the
/// whole table: not at the node's next write, which on an idle link is the periodic update,
/// 30 s later (the dump written into the dropped stream was lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_stream_the_neighbour_dropped_is_opened_again_with_a_full_dump() {
    let b = TestNode::start("b", &[]).await;
    let mut raw = raw_route_peer(&b, 76).await;
    let me = key_of(&b);
    let dump = |f: &[u8]| matches!(Message::<[u8; 32]>::decode(f), Ok(Message::Update(ads)) if ads.iter().any(|a| a.dest == me));
    raw.wait_frame(dump).await;
    assert_eq!(raw.node_streams(), 1);
    raw.drop_node_streams();
    raw.wait_frame(dump).await;
    assert_eq!(raw.node_streams(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_route_frames_are_refused_counted_and_never_shown() {
    let mut b = TestNode::start("b", &[]).await;
    let mut raw = raw_route_peer(&b, 71).await;
    let me = key_of(&b);
    let raw_key = *raw.key.public().as_bytes();

    // Junk and a frame with an unknown tag: strikes, counted.
    raw.send(b"\x09hello").await;
    raw.send(&[3, 0]).await;
    b.wait_stats("junk refused", |s| {
        s.route_refused == 2 && s.rejected.malformed == 2
    })
    .await;

    // A forged receipt for us changes nothing.
    let forged = Frame::Receipt(RoutedReceipt {
        hop_limit: 4,
        to: me,
        receipt: Receipt {
            dm: DmId([7; 32]),
            sender: me,
            recipient: raw_key,
            signature: [1; 64],
        },
    });
    raw.send(&forged.encode()).await;
    b.wait_stats("forged receipt", |s| s.dm.forged_receipts == 1)
        .await;

    // A DM addressed to B but sealed to another key cannot be opened: counted, not shown.
    let other = EncryptionKey::derive(&Keypair::from_secret_bytes(&[72; 32])).public();
    let wrong = sealed_dm(&raw.key, me, other, "not for your eyes");
    raw.send(&Frame::Dm(wrong).encode()).await;
    b.wait_stats("cannot open", |s| s.dm.cannot_open == 1).await;

    // A good DM sent three times is shown once; each copy is answered with the receipt, sent
    // along the route the raw peer advertises to itself.
    raw.send(
        &Message::Update(vec![Advert {
            dest: raw_key,
            seqno: 1,
            metric: 0,
            hops: 0,
        }])
        .encode(),
    )
    .await;
    let good = sealed_dm(&raw.key, me, seal_key_of(&b), "hello from the raw peer");
    let good_id = good.id();
    for _ in 0..3 {
        raw.send(&Frame::Dm(good.clone()).encode()).await;
    }
    b.wait_for(|e| matches!(e, Event::Dm(d) if d.text == "hello from the raw peer"))
        .await;
    let receipt = raw
        .wait_frame(|f| {
            matches!(Frame::<[u8; 32]>::decode(f), Ok(Frame::Receipt(r)) if r.receipt.dm == good_id)
        })
        .await;
    let Ok(Frame::Receipt(r)) = Frame::<[u8; 32]>::decode(&receipt) else {
        unreachable!()
    };
    r.receipt.verify().unwrap();
    assert_eq!((r.receipt.recipient, r.receipt.sender), (me, raw_key));
    let s = b.wait_stats("copies", |s| s.dm.duplicates == 2).await;
    assert_eq!(s.dm.delivered, 1, "{s:?}");

    // A route advert, then a stale one (older seqno, shorter): the stale one is never taken (an
    // unfeasible advert from the next hop unselects the route instead, as in Babel).
    let far_key = Keypair::from_secret_bytes(&[74; 32]).public();
    let far = *far_key.as_bytes();
    let advert = |seqno, metric| {
        Message::Update(vec![Advert {
            dest: far,
            seqno,
            metric,
            hops: metric,
        }])
        .encode()
    };
    raw.send(&advert(10, 3)).await;
    let far_peer = meshchat_node::peer_id_of(&far_key);
    let hops_to_far = |b: &TestNode| {
        let h = b.handle.clone();
        async move {
            h.routes()
                .await
                .unwrap()
                .into_iter()
                .find(|r| r.dest == far_peer)
                .map(|r| r.hops)
        }
    };
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while hops_to_far(&b).await != Some(4) {
        assert!(tokio::time::Instant::now() < deadline, "advert not taken");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    raw.send(&advert(9, 1)).await;
    // A fresh advert after it, so we know the stale one was handled.
    raw.send(&Frame::Dm(good.clone()).encode()).await;
    b.wait_stats("the copy after the stale advert", |s| s.dm.duplicates == 3)
        .await;
    let after = hops_to_far(&b).await;
    assert!(after != Some(2), "a stale advert was taken: {after:?}");

    // An oversized frame length: the stream is dropped and it is a strike.
    raw.stream
        .write_all(&(64u32 * 1024 * 1024).to_be_bytes())
        .await
        .unwrap();
    raw.stream.flush().await.unwrap();
    b.wait_stats("oversized refused", |s| s.rejected.too_large == 1)
        .await;
    b.assert_no_more_messages().await;
    let _ = raw.id;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custody_flood_from_one_neighbour_is_bounded() {
    const PER_NEIGHBOUR: usize = 20;
    const SENT: usize = 50;
    let b = TestNode::start_with(tempfile::tempdir().unwrap(), Some("b"), &[], |c| {
        c.dm.max_custody_per_neighbour = PER_NEIGHBOUR;
        // The flood comes faster than the default rate bounds would let a DM stream through;
        // the custody bounds are what is tested.
    })
    .await;
    let mut raw = raw_route_peer(&b, 73).await;
    let now = unix_ms();
    for i in 0..SENT {
        // For destinations nobody knows: relays cannot read a DM, so they hold it.
        let dm = Dm {
            hop_limit: 8,
            recipient: [i as u8 ^ 0x80; 32],
            expires_ms: now + 3_600_000,
            enc: [i as u8; 32],
            ct: vec![i as u8; 64],
        };
        raw.send(&Frame::Dm(dm).encode()).await;
    }
    let s = b
        .wait_stats("custody capped", |s| {
            s.dm.custody_taken as usize + s.dm.refused_per_neighbour as usize == SENT
        })
        .await;
    assert_eq!(s.dm_custody_held as usize, PER_NEIGHBOUR, "{s:?}");
    assert_eq!(
        s.dm.refused_per_neighbour as usize,
        SENT - PER_NEIGHBOUR,
        "{s:?}"
    );
    // What is stored is bounded the same way: the held items survive a restart, no more.
    let dir = b.stop().await;
    let b = TestNode::start_in(dir, "b", &[]).await;
    let s = b.handle.stats().await.unwrap();
    assert_eq!(s.dm_custody_held as usize, PER_NEIGHBOUR, "{s:?}");
}
