//! A deterministic simulated network for sans-IO nodes.
//!
//! Nodes sit at UDP addresses and exchange datagrams over directional links with a
//! latency, a jitter (which reorders), a loss and a duplication probability, all drawn
//! from one seeded RNG; scripted faults drop, duplicate or delay chosen datagrams. Time is
//! virtual: [`Sim::drive`] repeatedly delivers the earliest datagram in flight or fires the
//! earliest node timeout, whichever comes first, so a run takes no wall-clock time and the
//! same seed always gives the same [`Sim::trace`].

use std::any::Any;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddrV4;
use std::time::Duration;

use mip_core::mobile_node::MobileNode;
use mip_core::time::Time;
use mip_core::Transmit;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// What the simulator needs of a sans-IO endpoint.
pub trait SimNode {
    fn handle_datagram(&mut self, now: Time, from: SocketAddrV4, bytes: &[u8]);
    fn handle_timeout(&mut self, now: Time);
    fn poll_transmit(&mut self) -> Option<Transmit>;
    fn poll_timeout(&self) -> Option<Time>;
}

impl SimNode for MobileNode {
    fn handle_datagram(&mut self, now: Time, from: SocketAddrV4, bytes: &[u8]) {
        MobileNode::handle_datagram(self, now, from, bytes);
    }
    fn handle_timeout(&mut self, now: Time) {
        MobileNode::handle_timeout(self, now);
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        MobileNode::poll_transmit(self)
    }
    fn poll_timeout(&self) -> Option<Time> {
        MobileNode::poll_timeout(self)
    }
}

/// Lets the simulator hand a node back by its concrete type.
trait AnyNode: SimNode {
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: SimNode + 'static> AnyNode for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Properties of one direction of a link. Probabilities outside 0..=1 act as the bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkConfig {
    pub latency: Duration,
    /// Each copy gets an extra delay drawn uniformly from `0..=jitter`: enough jitter
    /// reorders datagrams sent close together.
    pub jitter: Duration,
    pub loss: f64,
    pub duplicate: f64,
}

impl LinkConfig {
    /// A perfect link with this latency.
    pub fn with_latency(latency: Duration) -> Self {
        LinkConfig {
            latency,
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
        }
    }
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig::with_latency(Duration::from_millis(10))
    }
}

/// A scripted fault and what it does to a datagram it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Drop,
    /// Deliver twice (the copies get independent jitter).
    Duplicate,
    /// Add this much to the link's delay.
    Delay(Duration),
}

/// Applies `fault` to `count` datagrams from `from` to `to` (`None` matches any), after
/// letting the first `skip` matching ones through untouched. Rules are tried in the order
/// added; the first that applies wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultRule {
    pub from: Option<SocketAddrV4>,
    pub to: Option<SocketAddrV4>,
    pub skip: u32,
    pub count: u32,
    pub fault: Fault,
}

impl FaultRule {
    /// Drops the next `count` datagrams from `from` to `to`.
    pub fn drop_next(from: SocketAddrV4, to: SocketAddrV4, count: u32) -> Self {
        FaultRule {
            from: Some(from),
            to: Some(to),
            skip: 0,
            count,
            fault: Fault::Drop,
        }
    }

    fn matches(&self, from: SocketAddrV4, to: SocketAddrV4) -> bool {
        self.count > 0
            && (self.from.is_none() || self.from == Some(from))
            && (self.to.is_none() || self.to == Some(to))
    }
}

/// What happened to a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TraceKind {
    /// A node sent it (recorded at send time, before its fate).
    Sent,
    /// Lost on the link (recorded at send time).
    Dropped,
    /// An extra copy was put on the link (recorded at send time, with the copy's id).
    Duplicated,
    /// Handed to the node at `to`.
    Delivered,
    /// Arrived where no node listens.
    Undeliverable,
}

/// One line of the trace. `packet` numbers each copy in flight; a duplicate gets its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEntry {
    pub time: Time,
    pub kind: TraceKind,
    pub packet: u64,
    pub from: SocketAddrV4,
    pub to: SocketAddrV4,
    pub payload: Vec<u8>,
}

/// Why the simulator stopped short.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("a node is already at {0}")]
    AddressInUse(SocketAddrV4),
    /// A node keeps asking to be woken without time moving on (or the run is huge).
    #[error("gave up after {steps} steps at {at:?}: a node's timer does not advance")]
    StepLimit { steps: usize, at: Time },
}

#[derive(Debug)]
struct InFlight {
    at: Time,
    packet: u64,
    from: SocketAddrV4,
    to: SocketAddrV4,
    payload: Vec<u8>,
}

// Ordered by arrival, then by the order the copies were put on the wire: deterministic.
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.packet).cmp(&(other.at, other.packet))
    }
}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for InFlight {}

/// Default bound on [`Sim::drive`] steps, far above any sane test.
pub const DEFAULT_MAX_STEPS: usize = 1_000_000;

/// The simulated network. See the module documentation.
pub struct Sim {
    now: Time,
    rng: SmallRng,
    nodes: Vec<(SocketAddrV4, Box<dyn AnyNode>)>,
    in_flight: BinaryHeap<Reverse<InFlight>>,
    next_packet: u64,
    default_link: LinkConfig,
    links: HashMap<(SocketAddrV4, SocketAddrV4), LinkConfig>,
    faults: Vec<FaultRule>,
    trace: Vec<TraceEntry>,
    max_steps: usize,
}

impl Sim {
    /// An empty network whose clock starts at `start`; `seed` drives every random draw.
    pub fn new(start: Time, seed: u64) -> Self {
        Sim {
            now: start,
            rng: SmallRng::seed_from_u64(seed),
            nodes: Vec::new(),
            in_flight: BinaryHeap::new(),
            next_packet: 0,
            default_link: LinkConfig::default(),
            links: HashMap::new(),
            faults: Vec::new(),
            trace: Vec::new(),
            max_steps: DEFAULT_MAX_STEPS,
        }
    }

    pub fn now(&self) -> Time {
        self.now
    }

    /// Puts `node` at `addr`; datagrams it sends come from `addr`.
    pub fn add_node<N: SimNode + 'static>(
        &mut self,
        addr: SocketAddrV4,
        node: N,
    ) -> Result<(), SimError> {
        if self.nodes.iter().any(|(a, _)| *a == addr) {
            return Err(SimError::AddressInUse(addr));
        }
        self.nodes.push((addr, Box::new(node)));
        Ok(())
    }

    /// The node at `addr`, if there is one of type `N`.
    pub fn node<N: 'static>(&self, addr: SocketAddrV4) -> Option<&N> {
        self.nodes
            .iter()
            .find(|(a, _)| *a == addr)
            .and_then(|(_, n)| n.as_any().downcast_ref())
    }

    /// The node at `addr` for changes; what it queues is picked up by the next `drive`.
    pub fn node_mut<N: 'static>(&mut self, addr: SocketAddrV4) -> Option<&mut N> {
        self.nodes
            .iter_mut()
            .find(|(a, _)| *a == addr)
            .and_then(|(_, n)| n.as_any_mut().downcast_mut())
    }

    /// Calls `f` on the node at `addr` with the current time and puts what it sends on the
    /// wire at once. `None` if there is no node of type `N` there.
    pub fn with_node<N: 'static, R>(
        &mut self,
        addr: SocketAddrV4,
        f: impl FnOnce(&mut N, Time) -> R,
    ) -> Option<R> {
        let now = self.now;
        let result = self.node_mut::<N>(addr).map(|n| f(n, now))?;
        self.flush_all();
        Some(result)
    }

    pub fn set_default_link(&mut self, link: LinkConfig) {
        self.default_link = link;
    }

    /// Sets the link from `from` to `to` (one direction).
    pub fn set_link(&mut self, from: SocketAddrV4, to: SocketAddrV4, link: LinkConfig) {
        self.links.insert((from, to), link);
    }

    /// Sets both directions between `a` and `b`.
    pub fn set_link_both(&mut self, a: SocketAddrV4, b: SocketAddrV4, link: LinkConfig) {
        self.set_link(a, b, link);
        self.set_link(b, a, link);
    }

    pub fn add_fault(&mut self, rule: FaultRule) {
        self.faults.push(rule);
    }

    /// Bounds [`drive`](Self::drive), to turn a node that never lets time advance into an error.
    pub fn set_max_steps(&mut self, steps: usize) {
        self.max_steps = steps;
    }

    pub fn trace(&self) -> &[TraceEntry] {
        &self.trace
    }

    pub fn clear_trace(&mut self) {
        self.trace.clear();
    }

    /// Times of the trace entries of `kind` from `from` to `to`, in order.
    pub fn times(&self, kind: TraceKind, from: SocketAddrV4, to: SocketAddrV4) -> Vec<Time> {
        self.trace
            .iter()
            .filter(|e| e.kind == kind && e.from == from && e.to == to)
            .map(|e| e.time)
            .collect()
    }

    /// Datagrams on the wire now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Runs the network until `until`: delivers datagrams and fires timeouts in time order
    /// (a delivery before a timeout at the same instant), then sets the clock to `until`.
    /// Returns the number of steps taken.
    pub fn drive(&mut self, until: Time) -> Result<usize, SimError> {
        self.flush_all();
        let mut steps = 0usize;
        loop {
            let delivery = self.in_flight.peek().map(|Reverse(d)| d.at);
            let timer = self.earliest_timer();
            let next = match (delivery, timer) {
                (Some(d), Some((t, _))) => d.min(t),
                (Some(d), None) => d,
                (None, Some((t, _))) => t,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            steps += 1;
            if steps > self.max_steps {
                return Err(SimError::StepLimit {
                    steps: self.max_steps,
                    at: self.now,
                });
            }
            // A timeout already in the past fires now; time never runs backwards.
            self.now = self.now.max(next);
            match (delivery, timer) {
                (Some(d), Some((t, _))) if d <= t => self.deliver_next(),
                (Some(_), None) => self.deliver_next(),
                (_, Some((_, index))) => self.fire_timer(index),
                (None, None) => break,
            }
        }
        self.now = self.now.max(until);
        Ok(steps)
    }

    /// Runs for `d` of virtual time from now.
    pub fn run_for(&mut self, d: Duration) -> Result<usize, SimError> {
        self.drive(self.now + d)
    }

    /// The earliest node deadline, and which node (the first added wins a tie).
    fn earliest_timer(&self) -> Option<(Time, usize)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, (_, n))| n.poll_timeout().map(|t| (t, i)))
            .min()
    }

    fn deliver_next(&mut self) {
        let Some(Reverse(d)) = self.in_flight.pop() else {
            return;
        };
        let now = self.now;
        let target = self.nodes.iter().position(|(a, _)| *a == d.to);
        let kind = if target.is_some() {
            TraceKind::Delivered
        } else {
            TraceKind::Undeliverable
        };
        self.record(kind, d.packet, d.from, d.to, &d.payload);
        if let Some(i) = target {
            if let Some((_, node)) = self.nodes.get_mut(i) {
                node.handle_datagram(now, d.from, &d.payload);
            }
            self.flush(i);
        }
    }

    fn fire_timer(&mut self, index: usize) {
        let now = self.now;
        if let Some((_, node)) = self.nodes.get_mut(index) {
            node.handle_timeout(now);
        }
        self.flush(index);
    }

    fn flush_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.flush(i);
        }
    }

    /// Puts everything node `index` wants sent on the wire, deciding each datagram's fate.
    fn flush(&mut self, index: usize) {
        loop {
            let Some((from, node)) = self.nodes.get_mut(index) else {
                return;
            };
            let from = *from;
            let Some(t) = node.poll_transmit() else {
                return;
            };
            self.send(from, t.destination, t.payload);
        }
    }

    fn send(&mut self, from: SocketAddrV4, to: SocketAddrV4, payload: Vec<u8>) {
        let packet = self.new_packet_id();
        self.record(TraceKind::Sent, packet, from, to, &payload);
        let link = self
            .links
            .get(&(from, to))
            .copied()
            .unwrap_or(self.default_link);

        let scripted = self
            .faults
            .iter_mut()
            .find(|r| r.matches(from, to))
            .and_then(|r| {
                if r.skip > 0 {
                    r.skip -= 1;
                    None
                } else {
                    r.count -= 1;
                    Some(r.fault)
                }
            });
        let mut copies = 1;
        let mut extra = Duration::ZERO;
        match scripted {
            Some(Fault::Drop) => {
                self.record(TraceKind::Dropped, packet, from, to, &payload);
                return;
            }
            Some(Fault::Duplicate) => copies = 2,
            Some(Fault::Delay(d)) => extra = d,
            None => {}
        }
        // Draw only for probabilities in use, so a perfect link consumes no randomness.
        if link.loss > 0.0 && self.rng.gen::<f64>() < link.loss {
            self.record(TraceKind::Dropped, packet, from, to, &payload);
            return;
        }
        if link.duplicate > 0.0 && self.rng.gen::<f64>() < link.duplicate {
            copies = 2;
        }
        for copy in 0..copies {
            let id = if copy == 0 {
                packet
            } else {
                let id = self.new_packet_id();
                self.record(TraceKind::Duplicated, id, from, to, &payload);
                id
            };
            let at = self.now + link.latency + extra + self.jitter(link.jitter);
            self.in_flight.push(Reverse(InFlight {
                at,
                packet: id,
                from,
                to,
                payload: payload.clone(),
            }));
        }
    }

    fn jitter(&mut self, max: Duration) -> Duration {
        if max.is_zero() {
            return Duration::ZERO;
        }
        let micros = u64::try_from(max.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(self.rng.gen_range(0..=micros))
    }

    fn new_packet_id(&mut self) -> u64 {
        let id = self.next_packet;
        self.next_packet += 1;
        id
    }

    fn record(
        &mut self,
        kind: TraceKind,
        packet: u64,
        from: SocketAddrV4,
        to: SocketAddrV4,
        payload: &[u8],
    ) {
        self.trace.push(TraceEntry {
            time: self.now,
            kind,
            packet,
            from,
            to,
            payload: payload.to_vec(),
        });
    }
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("now", &self.now)
            .field(
                "nodes",
                &self.nodes.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
            )
            .field("in_flight", &self.in_flight.len())
            .field("trace_len", &self.trace.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const A: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 1000);
    const B: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 2000);

    /// Sends `count` numbered datagrams to `to` at start, records what it receives.
    #[derive(Default)]
    struct Probe {
        to: Option<SocketAddrV4>,
        count: u8,
        got: Vec<(Time, u8)>,
        stuck_timer: Option<Time>,
    }

    impl SimNode for Probe {
        fn handle_datagram(&mut self, now: Time, _from: SocketAddrV4, bytes: &[u8]) {
            self.got.push((now, bytes.first().copied().unwrap_or(0)));
        }
        fn handle_timeout(&mut self, _now: Time) {}
        fn poll_transmit(&mut self) -> Option<Transmit> {
            let to = self.to?;
            if self.count == 0 {
                return None;
            }
            self.count -= 1;
            Some(Transmit {
                destination: to,
                payload: vec![self.count],
            })
        }
        fn poll_timeout(&self) -> Option<Time> {
            self.stuck_timer
        }
    }

    fn run(seed: u64, link: LinkConfig) -> Sim {
        let mut sim = Sim::new(Time::from_secs(1_000), seed);
        sim.set_link(A, B, link);
        sim.add_node(
            A,
            Probe {
                to: Some(B),
                count: 20,
                ..Probe::default()
            },
        )
        .expect("free");
        sim.add_node(B, Probe::default()).expect("free");
        sim.drive(Time::from_secs(1_010)).expect("no livelock");
        sim
    }

    #[test]
    fn perfect_link_delivers_in_order_after_the_latency() {
        let sim = run(1, LinkConfig::with_latency(Duration::from_millis(20)));
        let got = &sim.node::<Probe>(B).expect("probe").got;
        assert_eq!(got.len(), 20);
        assert!(got
            .iter()
            .all(|(t, _)| *t == Time::from_secs(1_000) + Duration::from_millis(20)));
        assert!(got.windows(2).all(|w| w[0].1 > w[1].1), "sent order kept");
        assert_eq!(sim.now(), Time::from_secs(1_010));
    }

    #[test]
    fn jitter_reorders_loss_drops_duplication_copies_and_seed_repeats() {
        let link = LinkConfig {
            jitter: Duration::from_millis(50),
            loss: 0.25,
            duplicate: 0.25,
            ..LinkConfig::default()
        };
        let sim = run(9, link);
        let count = |k| sim.trace().iter().filter(|e| e.kind == k).count();
        assert_eq!(count(TraceKind::Sent), 20);
        assert!(count(TraceKind::Dropped) > 0 && count(TraceKind::Duplicated) > 0);
        assert_eq!(
            count(TraceKind::Delivered),
            20 - count(TraceKind::Dropped) + count(TraceKind::Duplicated)
        );
        let got = &sim.node::<Probe>(B).expect("probe").got;
        assert!(got.windows(2).any(|w| w[0].1 < w[1].1), "some reordering");
        assert_eq!(run(9, link).trace(), sim.trace());
    }

    #[test]
    fn unknown_destination_is_traced_and_address_reuse_refused() {
        let mut sim = Sim::new(Time::from_secs(0), 0);
        sim.add_node(
            A,
            Probe {
                to: Some(B),
                count: 1,
                ..Probe::default()
            },
        )
        .expect("free");
        assert_eq!(
            sim.add_node(A, Probe::default()),
            Err(SimError::AddressInUse(A))
        );
        sim.drive(Time::from_secs(1)).expect("drive");
        assert_eq!(
            sim.times(TraceKind::Undeliverable, A, B),
            vec![Time::from_secs(0) + Duration::from_millis(10)]
        );
        assert!(sim.node::<MobileNode>(A).is_none(), "wrong type gives None");
    }

    #[test]
    fn a_timer_that_never_advances_is_an_error_not_a_hang() {
        let mut sim = Sim::new(Time::from_secs(5), 0);
        sim.add_node(
            A,
            Probe {
                stuck_timer: Some(Time::from_secs(5)),
                ..Probe::default()
            },
        )
        .expect("free");
        sim.set_max_steps(1_000);
        assert!(matches!(
            sim.drive(Time::from_secs(6)),
            Err(SimError::StepLimit { .. })
        ));
    }
}
