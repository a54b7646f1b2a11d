//! The download machine: a small deterministic simulator (seeded randomness, virtual time) of a
//! downloader and holders that serve Wants over links that lose, duplicate, delay and reorder,
//! and scenarios driven by hand.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use super::*;
use crate::transfer::{chunk_size_for, Manifest, MIN_CHUNK};

const CHUNK: usize = MIN_CHUNK as usize;
const DOWNLOADER: u32 = 0;

/// A file and its manifest.
struct Source {
    data: Rc<Vec<u8>>,
    manifest: Manifest,
}

fn source(rng: &mut StdRng, size: usize) -> Source {
    let mut data = vec![0u8; size];
    rng.fill_bytes(&mut data);
    let mut b = Manifest::builder(size as u64).unwrap();
    for c in data.chunks(b.manifest.chunk_size() as usize) {
        b.push(c).unwrap();
    }
    Source {
        data: Rc::new(data),
        manifest: b.finish().unwrap(),
    }
}

impl Source {
    fn chunk(&self, i: u32) -> Vec<u8> {
        let start = self.manifest.offset(i) as usize;
        let len = self.manifest.chunk_len(i).unwrap();
        self.data[start..start + len].to_vec()
    }

    fn piece(&self, piece: Piece) -> Vec<u8> {
        match piece {
            Piece::Manifest => self.manifest.encode(),
            Piece::Chunk(i) => self.chunk(i),
        }
    }

    fn download(
        &self,
        have: Vec<bool>,
        manifest: bool,
        config: Config,
        t0: Instant,
    ) -> Download<u32> {
        let m = &self.manifest;
        Download::new(
            m.root(),
            m.size(),
            chunk_size_for(m.size()).unwrap(),
            manifest.then(|| m.clone()),
            have,
            config,
            t0,
        )
    }
}

/// How a simulated holder behaves.
#[derive(Debug, Clone, Copy)]
struct HolderSpec {
    /// Chance that it sends wrong bytes for a chunk.
    lie: f64,
    /// Chance that it answers a Want with Nope(Busy).
    busy: f64,
    /// Time to send one chunk (its upload rate).
    serve: Duration,
    /// When it leaves the mesh (the downloader is told).
    leaves_at: Option<Duration>,
}

impl HolderSpec {
    fn honest(serve_ms: u64) -> Self {
        Self {
            lie: 0.0,
            busy: 0.0,
            serve: Duration::from_millis(serve_ms),
            leaves_at: None,
        }
    }
}

/// The links: each frame is lost, duplicated, and delayed (which reorders) at random.
#[derive(Debug, Clone, Copy)]
struct Net {
    loss: f64,
    dup: f64,
    min_delay_ms: u64,
    max_delay_ms: u64,
}

const PERFECT: Net = Net {
    loss: 0.0,
    dup: 0.0,
    min_delay_ms: 20,
    max_delay_ms: 20,
};

enum Event {
    /// A Want reaches a holder.
    Want { holder: u32, pieces: Vec<Piece> },
    /// A frame reaches the downloader.
    ToDownloader(Input<u32>),
    /// A piece reaches the downloader, if its holder had not left when it was sent.
    Piece { sent: Instant, input: Input<u32> },
    /// A holder leaves.
    Leave(u32),
}

struct SimHolder {
    spec: HolderSpec,
    /// When its uplink is free again.
    busy_until: Instant,
    alive: bool,
    /// When it left.
    left: Option<Instant>,
    /// Pieces it was asked for, and sent.
    asked: u64,
}

struct Sim {
    rng: StdRng,
    t0: Instant,
    now: Instant,
    seq: u64,
    events: BTreeMap<(Instant, u64), Event>,
    net: Net,
    src: Source,
    d: Download<u32>,
    holders: BTreeMap<u32, SimHolder>,
    /// The downloader's file.
    buf: Vec<u8>,
    writes: Vec<u32>,
    /// Chunk bytes asked for in Wants.
    wanted_bytes: u64,
    wanted: Vec<Piece>,
    done: u32,
    stalled: u32,
    bad: Vec<u32>,
    wake: Option<Instant>,
}

impl Sim {
    fn new(seed: u64, size: usize, holders: &[HolderSpec], net: Net, config: Config) -> Self {
        Self::started(seed, size, holders, net, config, false)
    }

    /// With the manifest known from the start, or not.
    fn started(
        seed: u64,
        size: usize,
        holders: &[HolderSpec],
        net: Net,
        config: Config,
        manifest: bool,
    ) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let src = source(&mut rng, size);
        let t0 = Instant::now();
        let d = src.download(Vec::new(), manifest, config, t0);
        Self::with(rng, src, d, holders, net, t0)
    }

    fn with(
        rng: StdRng,
        src: Source,
        d: Download<u32>,
        holders: &[HolderSpec],
        net: Net,
        t0: Instant,
    ) -> Self {
        let count = src.manifest.count() as usize;
        let mut sim = Self {
            rng,
            t0,
            now: t0,
            seq: 0,
            events: BTreeMap::new(),
            net,
            buf: vec![0; src.data.len()],
            writes: vec![0; count],
            src,
            d,
            holders: BTreeMap::new(),
            wanted_bytes: 0,
            wanted: Vec::new(),
            done: 0,
            stalled: 0,
            bad: Vec::new(),
            wake: None,
        };
        for (k, spec) in holders.iter().enumerate() {
            sim.add_holder(k as u32 + 1, *spec);
        }
        sim
    }

    fn add_holder(&mut self, id: u32, spec: HolderSpec) {
        self.holders.insert(
            id,
            SimHolder {
                spec,
                busy_until: self.now,
                alive: true,
                left: None,
                asked: 0,
            },
        );
        if let Some(at) = spec.leaves_at {
            self.at(self.now + at, Event::Leave(id));
        }
        self.feed(Input::Holder(id));
    }

    fn at(&mut self, t: Instant, e: Event) {
        self.seq += 1;
        self.events.insert((t, self.seq), e);
    }

    /// Sends over a link: maybe lost, maybe twice, each copy after its own delay.
    fn send(&mut self, after: Instant, e: impl Fn() -> Event) {
        if self.rng.gen_bool(self.net.loss) {
            return;
        }
        let copies = if self.rng.gen_bool(self.net.dup) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = self
                .rng
                .gen_range(self.net.min_delay_ms..=self.net.max_delay_ms);
            self.at(after + Duration::from_millis(delay), e());
        }
    }

    fn feed(&mut self, input: Input<u32>) {
        let outs = self.d.handle(input, self.now);
        for o in outs {
            match o {
                Output::Want { to, pieces } => {
                    assert!((1..=MAX_WANT).contains(&pieces.len()));
                    assert_ne!(to, DOWNLOADER);
                    for p in &pieces {
                        if let Piece::Chunk(i) = p {
                            self.wanted_bytes += self.src.manifest.chunk_len(*i).unwrap() as u64;
                        }
                    }
                    self.wanted.extend_from_slice(&pieces);
                    self.send(self.now, || Event::Want {
                        holder: to,
                        pieces: pieces.clone(),
                    });
                }
                Output::Manifest(m) => assert_eq!(m, self.src.manifest),
                Output::Write { index, data } => {
                    let m = &self.src.manifest;
                    assert!(m.check(index, &data));
                    let at = m.offset(index) as usize;
                    self.buf[at..at + data.len()].copy_from_slice(&data);
                    self.writes[index as usize] += 1;
                    assert_eq!(
                        self.writes[index as usize], 1,
                        "chunk {index} written twice"
                    );
                }
                Output::Bad { from } => self.bad.push(from),
                Output::Done => self.done += 1,
                Output::Stalled => self.stalled += 1,
                Output::WakeAt(t) => self.wake = Some(t),
            }
        }
        // The timer is always right, and never in the past after a step.
        let next = self.d.next_deadline();
        if let Some(t) = next {
            assert!(t > self.now, "deadline {t:?} not after now");
            assert_eq!(self.wake, Some(t), "WakeAt missed a change");
        }
        // Bounded: requests in flight within the windows (plus one endgame copy each).
        let c = self.d.config();
        let per_holder = (c.max_window_bytes / CHUNK as u64 + 1) as usize;
        assert!(self.d.in_flight() <= 2 * per_holder * c.max_holders);
        assert!(self.d.holders().count() <= c.max_holders);
    }

    /// One step: the next event or the machine's deadline, whichever is first. False when
    /// nothing is left to do.
    fn step(&mut self) -> bool {
        let event = self.events.first_key_value().map(|(k, _)| *k);
        let deadline = self.d.next_deadline();
        match (event, deadline) {
            (None, None) => false,
            (e, Some(t)) if e.is_none_or(|(et, _)| t <= et) => {
                self.now = t;
                self.feed(Input::Tick);
                true
            }
            _ => {
                let ((t, _), e) = self.events.pop_first().unwrap();
                self.now = t;
                self.on_event(e);
                true
            }
        }
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::Want { holder, pieces } => self.serve(holder, pieces),
            Event::ToDownloader(input) => self.feed(input),
            Event::Piece { sent, input } => {
                let Input::Piece { from, .. } = &input else {
                    unreachable!()
                };
                if self.holders[from].left.is_none_or(|t| sent < t) {
                    self.feed(input);
                }
            }
            Event::Leave(id) => {
                let h = self.holders.get_mut(&id).unwrap();
                h.alive = false;
                h.left = Some(self.now);
                self.feed(Input::HolderGone(id));
            }
        }
    }

    fn serve(&mut self, id: u32, pieces: Vec<Piece>) {
        let now = self.now;
        let Some(h) = self.holders.get_mut(&id) else {
            return;
        };
        if !h.alive {
            return;
        }
        if self.rng.gen_bool(h.spec.busy) {
            self.send(now, || {
                Event::ToDownloader(Input::Refused {
                    from: id,
                    reason: Refusal::Busy,
                })
            });
            return;
        }
        for piece in pieces {
            let h = self.holders.get_mut(&id).unwrap();
            h.asked += 1;
            h.busy_until = h.busy_until.max(now) + h.spec.serve;
            let sent = h.busy_until;
            let lie = h.spec.lie;
            let mut data = self.src.piece(piece);
            if matches!(piece, Piece::Chunk(_)) && self.rng.gen_bool(lie) {
                let at = self.rng.gen_range(0..data.len());
                data[at] ^= 0x40;
            }
            self.send(sent, || Event::Piece {
                sent,
                input: Input::Piece {
                    from: id,
                    piece,
                    data: data.clone(),
                },
            });
        }
    }

    /// Runs until Done (or a virtual-time limit); whether it finished.
    fn run(&mut self, limit: Duration) -> bool {
        while !self.d.is_done() && self.now < self.t0 + limit {
            if !self.step() {
                break;
            }
        }
        self.d.is_done()
    }

    /// The file is complete, each chunk written once, and only liars were called bad.
    fn assert_complete(&self) {
        assert!(self.d.is_done());
        assert_eq!(self.d.bytes_have(), self.src.data.len() as u64);
        assert_eq!(self.buf, *self.src.data, "the file differs");
        assert!(self.writes.iter().all(|&w| w == 1), "{:?}", self.writes);
        for b in &self.bad {
            assert!(
                self.holders[b].spec.lie > 0.0,
                "honest holder {b} called bad"
            );
        }
    }
}

/// Many random runs: sizes, holders (some lying, some leaving), loss, duplication, delay and
/// window sizes; every one ends Done with the file's exact bytes, each chunk written once.
#[test]
fn random_runs_complete_with_the_exact_bytes() {
    let mut total = Stats::default();
    for seed in 0..300u64 {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
        let size = match rng.gen_range(0..10) {
            0 => 0,
            1 => rng.gen_range(1..1000),
            _ => rng.gen_range(1..=8 * CHUNK),
        };
        let n = rng.gen_range(1..=4);
        let honest = rng.gen_range(0..n);
        let holders: Vec<HolderSpec> = (0..n)
            .map(|k| {
                let mut h = HolderSpec::honest(rng.gen_range(5..80));
                h.busy = if rng.gen_bool(0.3) { 0.2 } else { 0.0 };
                if k != honest {
                    if rng.gen_bool(0.3) {
                        h.lie = 0.5;
                    }
                    if rng.gen_bool(0.3) {
                        h.leaves_at = Some(Duration::from_millis(rng.gen_range(0..2000)));
                    }
                }
                h
            })
            .collect();
        let net = Net {
            loss: [0.0, 0.05, 0.2][rng.gen_range(0..3)],
            dup: [0.0, 0.1][rng.gen_range(0..2)],
            min_delay_ms: 5,
            max_delay_ms: rng.gen_range(5..300),
        };
        let config = Config {
            window_bytes: [CHUNK as u64, 1 << 20, 4 << 20][rng.gen_range(0..3)],
            ..Config::default()
        };
        let mut sim = Sim::new(seed, size, &holders, net, config);
        assert!(
            sim.run(Duration::from_secs(3600)),
            "seed {seed}: not done, {:?} {holders:?} {net:?}",
            sim.d.stats()
        );
        sim.assert_complete();
        assert_eq!(sim.done, 1, "seed {seed}");
        assert_eq!(sim.stalled, 0, "seed {seed}");
        let s = sim.d.stats();
        total.bad += s.bad;
        total.timeouts += s.timeouts;
        total.duplicates += s.duplicates;
        total.wants_sent += s.wants_sent;
    }
    // The runs did meet liars, losses and duplicates.
    assert!(total.bad > 10, "{total:?}");
    assert!(total.timeouts > 100, "{total:?}");
    assert!(total.duplicates > 100, "{total:?}");
}

#[test]
fn lying_holders_are_dropped_and_honest_ones_finish() {
    let holders = [
        HolderSpec {
            lie: 1.0,
            ..HolderSpec::honest(10)
        },
        HolderSpec::honest(10),
        HolderSpec {
            lie: 1.0,
            ..HolderSpec::honest(10)
        },
    ];
    let mut sim = Sim::new(1, 6 * CHUNK + 7, &holders, PERFECT, Config::default());
    assert!(sim.run(Duration::from_secs(600)));
    sim.assert_complete();
    let mut bad = sim.bad.clone();
    bad.sort();
    bad.dedup();
    assert_eq!(bad, [1, 3]);
    assert_eq!(sim.d.holders().copied().collect::<Vec<_>>(), [2]);
    assert!(sim.d.stats().bad >= 2);
    // A banned holder announced again is not used.
    sim.feed(Input::Holder(1));
    assert_eq!(sim.d.holders().copied().collect::<Vec<_>>(), [2]);
}

#[test]
fn a_bad_manifest_bans_its_holder() {
    let mut rng = StdRng::seed_from_u64(2);
    let src = source(&mut rng, 3 * CHUNK);
    let t0 = Instant::now();
    let mut d = src.download(Vec::new(), false, Config::default(), t0);
    let outs = d.handle(Input::Holder(1), t0);
    assert!(outs.contains(&Output::Want {
        to: 1,
        pieces: vec![Piece::Manifest]
    }));
    d.handle(Input::Holder(2), t0);
    let mut wrong = src.manifest.encode();
    wrong[0] ^= 1;
    let outs = d.handle(
        Input::Piece {
            from: 1,
            piece: Piece::Manifest,
            data: wrong,
        },
        t0,
    );
    assert_eq!(outs[0], Output::Bad { from: 1 });
    assert!(outs.contains(&Output::Want {
        to: 2,
        pieces: vec![Piece::Manifest]
    }));
    // Chunks before the manifest cannot be checked: dropped.
    let outs = d.handle(
        Input::Piece {
            from: 2,
            piece: Piece::Chunk(0),
            data: src.chunk(0),
        },
        t0,
    );
    assert!(outs.is_empty(), "{outs:?}");
    assert_eq!(d.stats().early, 1);
    // A chunk index past the end is a lie.
    let outs = d.handle(
        Input::Piece {
            from: 2,
            piece: Piece::Chunk(3),
            data: vec![1],
        },
        t0,
    );
    assert_eq!(outs[0], Output::Bad { from: 2 });
    assert_eq!(outs[1], Output::Stalled);
}

/// Resuming with the manifest and some chunks: only the missing chunks are wanted and written.
#[test]
fn resume_wants_only_the_missing_chunks() {
    for seed in 0..20u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let size = rng.gen_range(1..=12 * CHUNK);
        let src = source(&mut rng, size);
        let count = src.manifest.count();
        let have: Vec<bool> = (0..count).map(|_| rng.gen_bool(0.5)).collect();
        let missing: u64 = (0..count)
            .filter(|&i| !have[i as usize])
            .map(|i| src.manifest.chunk_len(i).unwrap() as u64)
            .sum();
        let t0 = Instant::now();
        let d = src.download(have.clone(), true, Config::default(), t0);
        assert_eq!(d.bytes_have(), size as u64 - missing);
        let holders = [HolderSpec::honest(10), HolderSpec::honest(30)];
        let mut sim = Sim::with(rng, src, d, &holders, PERFECT, t0);
        // The chunks had are in the file already.
        for i in 0..count {
            if have[i as usize] {
                let at = sim.src.manifest.offset(i) as usize;
                let chunk = sim.src.chunk(i);
                sim.buf[at..at + chunk.len()].copy_from_slice(&chunk);
                sim.writes[i as usize] = 1;
            }
        }
        assert!(sim.run(Duration::from_secs(600)));
        sim.assert_complete();
        assert!(!sim.wanted.contains(&Piece::Manifest));
        // No loss, so no retries; endgame copies may ask twice for the last pieces.
        let dups = sim.d.stats().pieces_wanted
            - sim
                .wanted
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len() as u64;
        assert!(sim.wanted_bytes >= missing);
        assert!(
            sim.wanted_bytes <= missing + dups * CHUNK as u64,
            "seed {seed}"
        );
        for p in &sim.wanted {
            let Piece::Chunk(i) = p else { unreachable!() };
            assert!(!have[*i as usize], "seed {seed}: chunk {i} had and wanted");
        }
    }
}

#[test]
fn two_holders_both_serve() {
    let holders = [HolderSpec::honest(20), HolderSpec::honest(20)];
    let config = Config {
        window_bytes: CHUNK as u64,
        ..Config::default()
    };
    let mut sim = Sim::new(3, 16 * CHUNK, &holders, PERFECT, config);
    assert!(sim.run(Duration::from_secs(600)));
    sim.assert_complete();
    let (a, b) = (sim.holders[&1].asked, sim.holders[&2].asked);
    assert!(a >= 5 && b >= 5, "{a} {b}");
    assert_eq!(sim.d.stats().timeouts, 0);
}

#[test]
fn a_faster_holder_gets_more() {
    let holders = [HolderSpec::honest(10), HolderSpec::honest(200)];
    let config = Config {
        window_bytes: CHUNK as u64,
        ..Config::default()
    };
    let mut sim = Sim::new(4, 40 * CHUNK, &holders, PERFECT, config);
    assert!(sim.run(Duration::from_secs(600)));
    sim.assert_complete();
    let (fast, slow) = (sim.holders[&1].asked, sim.holders[&2].asked);
    assert!(fast > 2 * slow, "{fast} {slow}");
}

#[test]
fn a_holder_that_leaves_mid_transfer() {
    let holders = [
        HolderSpec {
            leaves_at: Some(Duration::from_millis(300)),
            ..HolderSpec::honest(50)
        },
        HolderSpec::honest(50),
    ];
    let mut sim = Sim::new(5, 20 * CHUNK, &holders, PERFECT, Config::default());
    assert!(sim.run(Duration::from_secs(600)));
    sim.assert_complete();
    assert_eq!(sim.d.holders().copied().collect::<Vec<_>>(), [2]);
    // Its pieces in flight went to the other holder at once, not after a timeout.
    assert_eq!(sim.d.stats().timeouts, 0);
    assert!(sim.now < sim.t0 + Duration::from_secs(5));
}

#[test]
fn all_holders_gone_stalls_until_a_new_one() {
    let holders = [HolderSpec {
        leaves_at: Some(Duration::from_millis(200)),
        ..HolderSpec::honest(50)
    }];
    let mut sim = Sim::new(6, 10 * CHUNK, &holders, PERFECT, Config::default());
    assert!(!sim.run(Duration::from_secs(60)));
    assert_eq!(sim.stalled, 1);
    assert!(sim.d.next_deadline().is_none());
    assert!(sim.d.bytes_have() > 0);
    sim.add_holder(7, HolderSpec::honest(10));
    assert!(sim.run(Duration::from_secs(600)));
    sim.assert_complete();
    assert_eq!(sim.stalled, 1);
}

#[test]
fn lost_chunks_are_fetched_again() {
    let holders = [HolderSpec::honest(10)];
    let mut sim = Sim::new(7, 5 * CHUNK, &holders, PERFECT, Config::default());
    assert!(sim.run(Duration::from_secs(600)));
    sim.assert_complete();
    let before = sim.wanted.len();
    sim.writes[1] = 0;
    sim.writes[3] = 0;
    sim.buf[CHUNK + 5] ^= 1;
    sim.feed(Input::Lost(vec![1, 3, 99]));
    assert!(!sim.d.is_done());
    assert_eq!(sim.d.bytes_have(), 3 * CHUNK as u64);
    assert!(sim.run(Duration::from_secs(1200)));
    sim.assert_complete();
    assert_eq!(sim.done, 2);
    assert_eq!(sim.wanted[before..], [Piece::Chunk(1), Piece::Chunk(3)]);
}

#[test]
fn empty_files_finish_after_the_manifest_or_at_once() {
    let mut rng = StdRng::seed_from_u64(8);
    let src = source(&mut rng, 0);
    let t0 = Instant::now();
    let mut d = src.download(Vec::new(), true, Config::default(), t0);
    assert!(d.is_done());
    assert_eq!(d.handle(Input::Tick, t0), [Output::Done]);
    assert!(d.handle(Input::Tick, t0).is_empty());

    let mut d = src.download(Vec::new(), false, Config::default(), t0);
    assert!(!d.is_done());
    let outs = d.handle(Input::Holder(1), t0);
    assert_eq!(
        outs[0],
        Output::Want {
            to: 1,
            pieces: vec![Piece::Manifest]
        }
    );
    let outs = d.handle(
        Input::Piece {
            from: 1,
            piece: Piece::Manifest,
            data: Vec::new(),
        },
        t0,
    );
    assert_eq!(outs, [Output::Manifest(src.manifest.clone()), Output::Done]);
    assert_eq!(d.next_deadline(), None);
}

#[test]
fn refusals_drop_or_back_off_the_holder() {
    let mut rng = StdRng::seed_from_u64(9);
    let src = source(&mut rng, 4 * CHUNK);
    let t0 = Instant::now();
    let config = Config {
        window_bytes: CHUNK as u64,
        ..Config::default()
    };
    let mut d = src.download(Vec::new(), true, config, t0);
    let want = |to, pieces: &[u32]| Output::Want {
        to,
        pieces: pieces.iter().map(|&i| Piece::Chunk(i)).collect(),
    };
    assert_eq!(d.handle(Input::Holder(1), t0)[0], want(1, &[0]));
    assert_eq!(d.handle(Input::Holder(2), t0)[0], want(2, &[1]));
    // Not here: dropped; its piece goes to the other once it has room.
    let outs = d.handle(
        Input::Refused {
            from: 1,
            reason: Refusal::NotHere,
        },
        t0,
    );
    assert!(outs.is_empty(), "{outs:?}");
    assert_eq!(d.holders().copied().collect::<Vec<_>>(), [2]);
    let outs = d.handle(
        Input::Piece {
            from: 2,
            piece: Piece::Chunk(1),
            data: src.chunk(1),
        },
        t0,
    );
    // Its window grew by one chunk.
    assert_eq!(outs[1], want(2, &[0, 2]));
    // Busy: the window halves and nothing new is asked for a moment; what is in flight stays.
    let outs = d.handle(
        Input::Refused {
            from: 2,
            reason: Refusal::Busy,
        },
        t0,
    );
    let pause = t0 + super::BUSY_PAUSE;
    assert_eq!(outs, [Output::WakeAt(pause)]);
    assert_eq!(d.in_flight(), 2);
    let outs = d.handle(
        Input::Piece {
            from: 2,
            piece: Piece::Chunk(0),
            data: src.chunk(0),
        },
        t0,
    );
    assert!(
        !outs.iter().any(|o| matches!(o, Output::Want { .. })),
        "{outs:?}"
    );
    let outs = d.handle(Input::Tick, pause);
    assert_eq!(outs[0], want(2, &[3]));
    // Unreachable now: backed off, its requests cancelled.
    d.handle(
        Input::Refused {
            from: 2,
            reason: Refusal::NoRoute,
        },
        pause,
    );
    assert_eq!(d.in_flight(), 0);
    assert_eq!(d.next_deadline(), Some(pause + config.holder_backoff));
    // A refusal from someone who is not a holder changes nothing.
    assert!(d
        .handle(
            Input::Refused {
                from: 9,
                reason: Refusal::Gone,
            },
            pause,
        )
        .is_empty());
    assert!(!d.holders().collect::<Vec<_>>().is_empty());
}

/// Holders that do not answer: their pieces time out and are asked of another holder first,
/// their windows halve, and after a second round of timeouts they back off.
#[test]
fn timeouts_move_pieces_to_another_holder() {
    let mut rng = StdRng::seed_from_u64(10);
    let src = source(&mut rng, 8 * CHUNK);
    let t0 = Instant::now();
    let config = Config {
        window_bytes: 4 * CHUNK as u64,
        ..Config::default()
    };
    let mut d = src.download(Vec::new(), true, config, t0);
    d.handle(Input::Holder(1), t0);
    d.handle(Input::Holder(2), t0);
    let at = |d: &Download<u32>, h: u32| -> Vec<u32> {
        d.in_flight
            .iter()
            .filter(|(_, r)| r.iter().any(|r| r.holder == h))
            .filter_map(|(p, _)| match p {
                Piece::Chunk(i) => Some(*i),
                Piece::Manifest => None,
            })
            .collect()
    };
    assert_eq!(at(&d, 1), [0, 1, 2, 3]);
    assert_eq!(at(&d, 2), [4, 5, 6, 7]);
    let t1 = t0 + config.min_timeout;
    assert_eq!(d.next_deadline(), Some(t1));
    d.handle(Input::Tick, t1);
    assert_eq!(d.stats().timeouts, 8);
    for h in [1, 2] {
        assert_eq!(d.holders[&h].window, 2 * CHUNK as u64);
        assert_eq!(d.holders[&h].silent, 1);
    }
    // Each piece went to the other holder while it had room.
    assert_eq!(at(&d, 2), [0, 1]);
    assert_eq!(at(&d, 1), [4, 5]);
    // A second silent round: both back off, nothing in flight.
    let t2 = d.next_deadline().unwrap();
    assert_eq!(t2, t1 + config.min_timeout);
    d.handle(Input::Tick, t2);
    assert_eq!(d.in_flight(), 0);
    assert_eq!(d.next_deadline(), Some(t2 + config.holder_backoff));
    // When holder 2 answers again, everything completes from it.
    let mut now = t2 + config.holder_backoff;
    d.handle(Input::Tick, now);
    for _ in 0..20 {
        for i in at(&d, 2) {
            let data = src.chunk(i);
            d.handle(
                Input::Piece {
                    from: 2,
                    piece: Piece::Chunk(i),
                    data,
                },
                now,
            );
        }
        if d.is_done() {
            break;
        }
        now = d.next_deadline().unwrap();
        d.handle(Input::Tick, now);
    }
    assert!(d.is_done());
}

/// In the endgame an idle holder doubles the oldest requests of a slow one.
#[test]
fn endgame_duplicates_requests_of_a_slow_holder() {
    let holders = [HolderSpec::honest(2000), HolderSpec::honest(10)];
    let config = Config {
        window_bytes: CHUNK as u64,
        ..Config::default()
    };
    let mut sim = Sim::started(11, 6 * CHUNK, &holders, PERFECT, config, true);
    assert!(sim.run(Duration::from_secs(600)));
    sim.assert_complete();
    // Without the endgame the slow holder's first piece would take 2 s.
    assert!(
        sim.now < sim.t0 + Duration::from_millis(1500),
        "{:?}",
        sim.now - sim.t0
    );
    assert_eq!(sim.holders[&1].asked, 1);
}

/// More holders than the limit are ignored.
#[test]
fn holders_are_bounded() {
    let mut rng = StdRng::seed_from_u64(12);
    let src = source(&mut rng, CHUNK);
    let t0 = Instant::now();
    let config = Config {
        max_holders: 3,
        ..Config::default()
    };
    let mut d = src.download(vec![true; 7], true, config, t0);
    assert_eq!(d.bytes_have(), 0, "a bitmap of the wrong length is ignored");
    for p in 0..10 {
        d.handle(Input::Holder(p), t0);
    }
    assert_eq!(d.holders().count(), 3);
    assert_eq!(d.stats().holders_full, 7);
}

/// The timeout follows the holder's measured latency, never below the minimum.
#[test]
fn timeouts_follow_the_measured_latency() {
    let mut rng = StdRng::seed_from_u64(13);
    let src = source(&mut rng, 4 * CHUNK);
    let t0 = Instant::now();
    let config = Config {
        window_bytes: CHUNK as u64,
        min_timeout: Duration::from_millis(100),
        ..Config::default()
    };
    let mut d = src.download(Vec::new(), true, config, t0);
    d.handle(Input::Holder(1), t0);
    assert_eq!(d.next_deadline(), Some(t0 + Duration::from_millis(100)));
    let t1 = t0 + Duration::from_millis(90);
    d.handle(
        Input::Piece {
            from: 1,
            piece: Piece::Chunk(0),
            data: src.chunk(0),
        },
        t1,
    );
    // The next request's deadline: 4 × 90 ms.
    let latest = d.deadlines.iter().map(|(t, _, _)| *t).max().unwrap();
    assert_eq!(latest, t1 + Duration::from_millis(360));
}
