//! Bounds on incoming connections still in their handshake, enforced in the transport.
//!
//! A socket that connects and never says a word holds a pending-connection slot until its
//! handshake times out (`Config::handshake_timeout`). The swarm bounds those slots only in total,
//! and a behaviour can refuse a pending connection but never end one it let in
//! (`Swarm::close_connection` reaches established connections only), so 32 silent sockets from
//! four addresses once took every slot and locked any newcomer out until they timed out (issue 24,
//! finding 5). This wrapper sits under the swarm, where each incoming handshake is a future it can
//! end: one source (an IPv4 address, or an IPv6 /64, since one host is given a whole /64) holds
//! at most [`PER_ADDRESS`] handshakes and further ones are refused at once; when all
//! [`MAX_PENDING`] are taken, the oldest handshake of the source holding the most is aborted to
//! make room. Silent sockets then cannot keep a newcomer out, since its handshake takes
//! milliseconds; the most an attacker with many addresses gets is a node that churns through
//! aborted handshakes. An aborted or refused handshake ends in an error, so the swarm reports a
//! failed incoming connection and frees its own slot. Outgoing dials are not touched.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{ready, Context, Poll};

use futures::future::{AbortHandle, Abortable, Aborted, MapErr};
use futures::{Future, TryFutureExt};
use libp2p::core::transport::{DialOpts, ListenerId, TransportError, TransportEvent};
use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;

/// Most incoming handshakes in progress at once. An honest handshake takes a few round trips,
/// so this is many newcomers at once; the swarm's own pending limit is set above it
/// (`behaviour::PENDING_INCOMING`) so that this one binds first.
pub const MAX_PENDING: usize = 32;
/// Most incoming handshakes in progress from one source: room for a few nodes behind one NAT
/// connecting at once, while one host holds only an eighth of [`MAX_PENDING`].
pub const PER_ADDRESS: usize = 4;
/// Leading bits of an IPv6 address that name a host: one host is commonly given a whole /64,
/// so counting its addresses one by one would bound nothing.
const IPV6_HOST_BITS: u32 = 64;

/// Where an incoming handshake comes from, as far as the bounds are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    V4(Ipv4Addr),
    /// An IPv6 network of [`IPV6_HOST_BITS`] bits (the address with the rest zero).
    V6(Ipv6Addr),
    /// An address without IP. No transport the node runs gives one; should one, all its
    /// handshakes share one source, which keeps them bounded.
    Other,
}

impl Source {
    /// The source of a remote address (`send_back_addr`). An IPv4 address mapped into IPv6 (a
    /// dual-stack listener) is the IPv4 address it carries.
    pub fn of(addr: &Multiaddr) -> Self {
        for p in addr.iter() {
            match p {
                Protocol::Ip4(a) => return Self::V4(a),
                Protocol::Ip6(a) => {
                    return match a.to_ipv4_mapped() {
                        Some(v4) => Self::V4(v4),
                        None => Self::V6(Ipv6Addr::from(
                            u128::from(a) & !(u128::MAX >> IPV6_HOST_BITS),
                        )),
                    }
                }
                _ => {}
            }
        }
        Self::Other
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::V4(a) => write!(f, "{a}"),
            Self::V6(a) => write!(f, "{a}/{IPV6_HOST_BITS}"),
            Self::Other => f.write_str("a non-IP address"),
        }
    }
}

/// Why an incoming connection failed: the wrapped transport's error, or one of the bounds.
#[derive(Debug, thiserror::Error)]
pub enum Error<E> {
    #[error(transparent)]
    Transport(E),
    /// Its source already had [`PER_ADDRESS`] handshakes in progress.
    #[error("refused: {from} has {held} incoming handshakes in progress already")]
    Refused { from: Source, held: usize },
    /// Aborted to make room for a newer handshake when every slot was taken: its source held the
    /// most, and this was its oldest.
    #[error("aborted to make room: every incoming handshake slot was taken, {from} held the most")]
    Evicted { from: Source },
}

/// Handshakes ended by the bounds since the node started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Aborted to make room for a newer one.
    pub evicted: u64,
    /// Refused at once: their source held [`PER_ADDRESS`] already.
    pub refused: u64,
}

/// The registry of incoming handshakes, shared by the transport wrapper ([`Handshakes::wrap`])
/// and the handshakes in progress. Cloning it is cheap; a clone reads the same counters.
#[derive(Clone)]
pub struct Handshakes {
    shared: Arc<Shared>,
}

struct Shared {
    slots: Mutex<Slots<AbortHandle>>,
    evicted: AtomicU64,
    refused: AtomicU64,
}

impl Handshakes {
    /// At most `max_pending` handshakes in all and `per_address` per source (each at least 1).
    pub fn new(max_pending: usize, per_address: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                slots: Mutex::new(Slots::new(max_pending, per_address)),
                evicted: AtomicU64::new(0),
                refused: AtomicU64::new(0),
            }),
        }
    }

    /// `inner` with its incoming handshakes bounded by this registry.
    pub fn wrap<T>(&self, inner: T) -> Transport<T> {
        Transport {
            inner,
            handshakes: self.clone(),
        }
    }

    pub fn stats(&self) -> Stats {
        Stats {
            evicted: self.shared.evicted.load(Ordering::Relaxed),
            refused: self.shared.refused.load(Ordering::Relaxed),
        }
    }

    /// Takes a slot for `upgrade` (an incoming handshake from `from`), aborting another to make
    /// room if all are taken, or refuses it.
    fn admit<F>(&self, from: Source, upgrade: F) -> Upgrade<F> {
        let (abort, registration) = AbortHandle::new_pair();
        let admitted = self.shared.slots().admit(from, abort);
        match admitted {
            Ok(Admitted { id, evicted }) => {
                if let Some((victim, abort)) = evicted {
                    abort.abort();
                    self.shared.evicted.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%victim, %from, "incoming handshake aborted to make room");
                }
                Upgrade {
                    state: State::Running {
                        upgrade: Abortable::new(Box::pin(upgrade), registration),
                        from,
                        _slot: Slot {
                            shared: Arc::clone(&self.shared),
                            id,
                        },
                    },
                }
            }
            Err(held) => {
                self.shared.refused.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%from, held, "incoming handshake refused");
                // `upgrade` is dropped here, which closes the socket.
                Upgrade {
                    state: State::Refused { from, held },
                }
            }
        }
    }
}

impl Shared {
    /// The table, even if a thread panicked holding it: every change to it is one call that
    /// cannot panic halfway.
    fn slots(&self) -> MutexGuard<'_, Slots<AbortHandle>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A transport whose incoming handshakes hold slots of a [`Handshakes`] registry.
pub struct Transport<T> {
    inner: T,
    handshakes: Handshakes,
}

impl<T> libp2p::core::Transport for Transport<T>
where
    T: libp2p::core::Transport + Unpin,
    T::Error: 'static,
{
    type Output = T::Output;
    type Error = Error<T::Error>;
    type ListenerUpgrade = Upgrade<T::ListenerUpgrade>;
    type Dial = MapErr<T::Dial, fn(T::Error) -> Self::Error>;

    fn listen_on(
        &mut self,
        id: ListenerId,
        addr: Multiaddr,
    ) -> Result<(), TransportError<Self::Error>> {
        self.inner
            .listen_on(id, addr)
            .map_err(|e| e.map(Error::Transport))
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        self.inner.remove_listener(id)
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        opts: DialOpts,
    ) -> Result<Self::Dial, TransportError<Self::Error>> {
        let dial = self
            .inner
            .dial(addr, opts)
            .map_err(|e| e.map(Error::Transport))?;
        Ok(dial.map_err(Error::Transport as fn(T::Error) -> Self::Error))
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        let this = self.get_mut();
        let event = ready!(Pin::new(&mut this.inner).poll(cx));
        let from = match &event {
            TransportEvent::Incoming { send_back_addr, .. } => Source::of(send_back_addr),
            _ => Source::Other,
        };
        // `map_upgrade` calls its closure for `Incoming` only.
        Poll::Ready(
            event
                .map_upgrade(|upgrade| this.handshakes.admit(from, upgrade))
                .map_err(Error::Transport),
        )
    }
}

/// An incoming handshake under the bounds: the wrapped one while it holds its slot, or a refusal.
#[must_use = "futures do nothing unless polled"]
pub struct Upgrade<F> {
    state: State<F>,
}

enum State<F> {
    Running {
        /// Boxed so that `Upgrade` is `Unpin` whatever `F` is.
        upgrade: Abortable<Pin<Box<F>>>,
        from: Source,
        _slot: Slot,
    },
    Refused {
        from: Source,
        held: usize,
    },
    Done,
}

impl<F, O, E> Future for Upgrade<F>
where
    F: Future<Output = Result<O, E>>,
{
    type Output = Result<O, Error<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let result = match &mut this.state {
            State::Running { upgrade, from, .. } => match ready!(Pin::new(upgrade).poll(cx)) {
                Ok(Ok(output)) => Ok(output),
                Ok(Err(e)) => Err(Error::Transport(e)),
                Err(Aborted) => Err(Error::Evicted { from: *from }),
            },
            State::Refused { from, held } => Err(Error::Refused {
                from: *from,
                held: *held,
            }),
            State::Done => panic!("incoming handshake polled after it ended"),
        };
        // Frees the slot now, not when the swarm gets round to dropping this.
        this.state = State::Done;
        Poll::Ready(result)
    }
}

/// A handshake's hold on its slot: dropping it frees the slot, however the handshake ended
/// (done, failed, timed out, aborted, or dropped by the swarm).
struct Slot {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Absent if it was evicted: its slot went to the newcomer then.
        let freed = self.shared.slots().release(self.id);
        drop(freed);
    }
}

/// The slot table, with no I/O: which handshakes hold slots and which one to evict. `A` aborts a
/// handshake (an [`AbortHandle`]; a label in tests).
#[derive(Debug)]
struct Slots<A> {
    max_pending: usize,
    per_address: usize,
    /// Id of the next handshake. Ids only grow, so `pending` is in age order.
    next: u64,
    /// Handshakes holding a slot, oldest first: at most `max_pending`.
    pending: BTreeMap<u64, (Source, A)>,
    /// Slots each source holds in `pending` (no zero entries, so at most `max_pending`).
    held: HashMap<Source, usize>,
}

/// A handshake given a slot, and the one aborted to make room for it, if any.
#[derive(Debug)]
struct Admitted<A> {
    id: u64,
    evicted: Option<(Source, A)>,
}

impl<A> Slots<A> {
    fn new(max_pending: usize, per_address: usize) -> Self {
        Self {
            max_pending: max_pending.max(1),
            per_address: per_address.max(1),
            next: 0,
            pending: BTreeMap::new(),
            held: HashMap::new(),
        }
    }

    /// A slot for a new handshake from `from`, taken from the oldest handshake of the largest
    /// holder if all are taken; or, if `from` already holds `per_address`, how many it holds.
    fn admit(&mut self, from: Source, abort: A) -> Result<Admitted<A>, usize> {
        let held = self.held.get(&from).copied().unwrap_or(0);
        if held >= self.per_address {
            return Err(held);
        }
        let evicted = if self.pending.len() >= self.max_pending {
            self.evict()
        } else {
            None
        };
        let id = self.next;
        self.next += 1;
        self.pending.insert(id, (from, abort));
        *self.held.entry(from).or_insert(0) += 1;
        Ok(Admitted { id, evicted })
    }

    /// Frees handshake `id`'s slot; `None` if it holds none (it was evicted).
    fn release(&mut self, id: u64) -> Option<(Source, A)> {
        let (from, abort) = self.pending.remove(&id)?;
        if let Some(n) = self.held.get_mut(&from) {
            *n -= 1;
            if *n == 0 {
                self.held.remove(&from);
            }
        }
        Some((from, abort))
    }

    /// Frees the slot of the oldest handshake of the source holding the most (of the tied
    /// sources, the one with the oldest handshake).
    fn evict(&mut self) -> Option<(Source, A)> {
        let most = self.held.values().copied().max()?;
        let victim = self
            .pending
            .iter()
            .find(|(_, (from, _))| self.held.get(from) == Some(&most))
            .map(|(id, _)| *id)?;
        self.release(victim)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use futures::future::{self, FutureExt};
    use rand::{Rng, SeedableRng};

    use super::*;

    fn v4(last: u8) -> Source {
        Source::V4(Ipv4Addr::new(127, 0, 0, last))
    }

    fn source(addr: &str) -> Source {
        Source::of(&addr.parse().unwrap())
    }

    #[test]
    fn a_source_at_its_limit_is_refused_without_evicting_anyone() {
        let mut slots = Slots::new(3, 2);
        assert!(slots.admit(v4(2), "a1").is_ok());
        assert!(slots.admit(v4(2), "a2").is_ok());
        assert_eq!(slots.admit(v4(2), "a3").unwrap_err(), 2);
        assert_eq!(slots.len(), 2);
        let b = slots.admit(v4(3), "b1").unwrap();
        assert!(b.evicted.is_none());
        // Full now; the source at its limit is still refused, nothing is evicted for it.
        assert_eq!(slots.admit(v4(2), "a3").unwrap_err(), 2);
        assert_eq!(slots.len(), 3);
    }

    #[test]
    fn eviction_takes_the_oldest_of_the_largest_holder() {
        let mut slots = Slots::new(5, 4);
        for (from, label) in [(2, "a1"), (3, "b1"), (3, "b2"), (4, "c1"), (3, "b3")] {
            assert!(slots.admit(v4(from), label).unwrap().evicted.is_none());
        }
        // b holds 3 of 5: its oldest goes, though a1 is older.
        let d = slots.admit(v4(5), "d1").unwrap();
        assert_eq!(d.evicted, Some((v4(3), "b1")));
        // b holds 2, the others 1.
        let e = slots.admit(v4(6), "e1").unwrap();
        assert_eq!(e.evicted, Some((v4(3), "b2")));
        // Everyone holds 1: the oldest of them all goes.
        let f = slots.admit(v4(7), "f1").unwrap();
        assert_eq!(f.evicted, Some((v4(2), "a1")));
        assert_eq!(slots.len(), 5);
        // An evicted handshake's slot is not freed twice.
        assert!(slots.release(0).is_none());
        assert_eq!(slots.len(), 5);
    }

    #[test]
    fn a_released_slot_is_free_for_its_source_again() {
        let mut slots = Slots::new(4, 1);
        let a = slots.admit(v4(2), ()).unwrap();
        assert!(slots.admit(v4(2), ()).is_err());
        assert!(slots.release(a.id).is_some());
        assert!(slots.held.is_empty());
        assert!(slots.admit(v4(2), ()).is_ok());
    }

    #[test]
    fn ipv6_sources_are_grouped_by_64_and_mapped_ipv4_is_ipv4() {
        let a = source("/ip6/2001:db8:1:2:aaaa::1/tcp/4001");
        assert_eq!(a, source("/ip6/2001:db8:1:2:bbbb:cc:dd:7/udp/9/quic-v1"));
        assert_ne!(a, source("/ip6/2001:db8:1:3::1/tcp/4001"));
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        assert_eq!(source("/ip6/::ffff:127.0.0.2/tcp/1"), v4(2));
        assert_eq!(source("/ip4/127.0.0.2/tcp/1"), v4(2));
        assert_eq!(source("/memory/5"), Source::Other);

        // Different addresses of one /64 share its slots.
        let mut slots = Slots::new(16, 2);
        assert!(slots
            .admit(source("/ip6/2001:db8:1:2::1/tcp/1"), ())
            .is_ok());
        assert!(slots
            .admit(source("/ip6/2001:db8:1:2::2/tcp/1"), ())
            .is_ok());
        assert!(slots
            .admit(source("/ip6/2001:db8:1:2::3/tcp/1"), ())
            .is_err());
        assert!(slots
            .admit(source("/ip6/2001:db8:1:3::1/tcp/1"), ())
            .is_ok());
    }

    /// A handshake that never finishes, as from a silent socket.
    fn silent() -> future::Pending<Result<(), io::Error>> {
        future::pending()
    }

    fn in_progress(h: &Handshakes) -> usize {
        h.shared.slots().len()
    }

    #[test]
    fn slots_are_freed_however_a_handshake_ends() {
        let h = Handshakes::new(2, 2);
        // Dropped before it ended (the swarm gave up on it, or it timed out).
        let dropped = h.admit(v4(2), silent());
        assert_eq!(in_progress(&h), 1);
        drop(dropped);
        assert_eq!(in_progress(&h), 0);
        // Finished: freed as soon as it resolves, before it is dropped.
        let mut done = h.admit(v4(2), future::ready(Ok::<_, io::Error>(7)));
        assert_eq!((&mut done).now_or_never().unwrap().unwrap(), 7);
        assert_eq!(in_progress(&h), 0);
        // Failed.
        let mut failed = h.admit(v4(2), future::ready(Err::<(), _>(io::Error::other("x"))));
        assert!(matches!(
            (&mut failed).now_or_never().unwrap(),
            Err(Error::Transport(_))
        ));
        assert_eq!(in_progress(&h), 0);
        assert_eq!(h.stats(), Stats::default());
    }

    #[test]
    fn an_evicted_handshake_fails_and_a_refused_one_fails_at_once() {
        let h = Handshakes::new(2, 1);
        let mut first = h.admit(v4(2), silent());
        let mut second = h.admit(v4(3), silent());
        assert!((&mut first).now_or_never().is_none());
        // v4(2) is at its limit: refused, nothing evicted.
        let mut refused = h.admit(v4(2), silent());
        assert!(matches!(
            (&mut refused).now_or_never(),
            Some(Err(Error::Refused { held: 1, .. }))
        ));
        // A newcomer takes the oldest slot.
        let mut newcomer = h.admit(v4(4), silent());
        assert!(matches!(
            (&mut first).now_or_never(),
            Some(Err(Error::Evicted { from })) if from == v4(2)
        ));
        assert!((&mut second).now_or_never().is_none());
        assert!((&mut newcomer).now_or_never().is_none());
        assert_eq!(in_progress(&h), 2);
        // Dropping the evicted one frees nothing more: its slot is the newcomer's.
        drop(first);
        assert_eq!(in_progress(&h), 2);
        assert_eq!(
            h.stats(),
            Stats {
                evicted: 1,
                refused: 1
            }
        );
    }

    /// Random admissions and releases keep every bound and the per-source counts exact, and each
    /// eviction takes the oldest handshake among the sources that held the most.
    #[test]
    fn random_traffic_keeps_the_bounds() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(24);
        for round in 0..50 {
            let (max_pending, per_address) = (rng.gen_range(1..12), rng.gen_range(1..5));
            let mut slots = Slots::new(max_pending, per_address);
            let mut live = Vec::new();
            for _ in 0..500 {
                if rng.gen_bool(0.6) {
                    let from = v4(rng.gen_range(2..8));
                    let before = slots.held.clone();
                    // Each handshake's label is the id it gets.
                    match slots.admit(from, slots.next) {
                        Ok(a) => {
                            assert!(before.get(&from).copied().unwrap_or(0) < per_address);
                            assert_eq!(
                                a.evicted.is_some(),
                                before.values().sum::<usize>() == max_pending
                            );
                            if let Some((victim, victim_id)) = a.evicted {
                                let most = before.values().copied().max().unwrap();
                                assert_eq!(before[&victim], most, "round {round}");
                                assert!(slots
                                    .pending
                                    .iter()
                                    .filter(|(_, (f, _))| before.get(f) == Some(&most))
                                    .all(|(id, _)| *id > victim_id));
                                live.retain(|id| *id != victim_id);
                            }
                            live.push(a.id);
                        }
                        Err(held) => assert_eq!(held, per_address, "round {round}"),
                    }
                } else if !live.is_empty() {
                    let id = live.swap_remove(rng.gen_range(0..live.len()));
                    assert!(slots.release(id).is_some());
                }
                assert!(slots.len() <= max_pending, "round {round}");
                assert_eq!(slots.len(), live.len());
                assert_eq!(slots.held.values().sum::<usize>(), slots.len());
                assert!(slots.held.values().all(|n| (1..=per_address).contains(n)));
                for (from, n) in &slots.held {
                    let counted = slots.pending.values().filter(|(f, _)| f == from).count();
                    assert_eq!(counted, *n, "round {round}");
                }
            }
        }
    }
}
