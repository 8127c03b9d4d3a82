//! A tiny deterministic network for negotiation tests: two or more endpoints, a virtual
//! clock, fixed latency, and a filter that may drop, duplicate or alter each datagram.
//! No sockets, no sleeps.

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use mip_core::time::Time;
use rand::rngs::StdRng;
use rand::SeedableRng;
use sid_ext::crypto::PrivateKey;
use sid_ext::negotiation::{
    Association, NegotiationEvent, NegotiationId, Negotiator, NegotiatorConfig, PeerConfig,
    RefuseCode, ReversePath, SessionTerms, SharedSecret, NEGOTIATION_PORT,
};

pub const START: Time = Time::from_secs(1_700_000_000);
pub const LATENCY: Duration = Duration::from_millis(20);
pub const PSK: &[u8] = b"desktop+laptop pre-shared secret";

pub fn tn_addr() -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, 10), NEGOTIATION_PORT)
}

pub fn tg_addr() -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(198, 18, 2, 20), NEGOTIATION_PORT)
}

/// What the Transferring Node offers: its address, the Agent, its MAC, tunnel back.
pub fn tn_terms() -> SessionTerms {
    SessionTerms {
        tn_address: *tn_addr().ip(),
        agent: Some(Ipv4Addr::new(198, 18, 0, 1)),
        tn_lla: vec![0x02, 0x00, 0x5e, 0x00, 0x01, 0x0a],
        interim: None,
        further_transfer: true,
        lifetime: 300,
        reverse_path: ReversePath::Tunnel,
    }
}

/// How a node answers an Offer.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Accept exactly what was offered.
    AsOffered,
    /// Accept with these terms.
    With(SessionTerms),
    Refuse(RefuseCode),
    /// Never decide.
    Ignore,
}

pub struct Node {
    pub name: &'static str,
    pub addr: SocketAddrV4,
    pub neg: Negotiator<StdRng>,
    pub answer: Answer,
    /// Microseconds this node's clock is ahead of the network's.
    pub clock_offset: i64,
    pub events: Vec<NegotiationEvent>,
}

impl Node {
    pub fn now(&self, net_now: Time) -> Time {
        let t = i128::from(net_now.as_micros()) + i128::from(self.clock_offset);
        Time::from_micros(u64::try_from(t).unwrap_or(0))
    }

    pub fn negotiated(&self) -> Vec<&NegotiationEvent> {
        self.events
            .iter()
            .filter(|e| matches!(e, NegotiationEvent::Negotiated { .. }))
            .collect()
    }

    pub fn failed(&self) -> Vec<&NegotiationEvent> {
        self.events
            .iter()
            .filter(|e| matches!(e, NegotiationEvent::Failed { .. }))
            .collect()
    }
}

/// What the filter does with one datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    Deliver,
    Drop,
    Duplicate,
    Replace(Vec<u8>),
}

#[derive(Debug, Clone)]
pub struct Datagram {
    pub seq: usize,
    pub from: SocketAddrV4,
    pub to: SocketAddrV4,
    pub payload: Vec<u8>,
}

type Filter = Box<dyn FnMut(&Datagram) -> Fate>;

pub struct Net {
    pub now: Time,
    pub nodes: Vec<Node>,
    in_flight: Vec<(Time, Datagram)>,
    pub filter: Filter,
    /// Every datagram sent, before the filter.
    pub log: Vec<Datagram>,
}

#[derive(Debug, Clone, Copy)]
pub enum Setup {
    PreShared,
    PublicKey,
}

impl Net {
    /// A Transferring Node "desktop" and a Target Node "laptop" that know each other.
    pub fn pair(setup: Setup, seed: u64) -> Net {
        let mut keys = StdRng::seed_from_u64(seed ^ 0x6b65_7973);
        let (tn_sk, tg_sk) = (
            PrivateKey::generate(&mut keys),
            PrivateKey::generate(&mut keys),
        );
        let (tn_assoc, tg_assoc, tn_priv, tg_priv) = match setup {
            Setup::PreShared => (
                Association::PreShared(SharedSecret::new(PSK.to_vec())),
                Association::PreShared(SharedSecret::new(PSK.to_vec())),
                None,
                None,
            ),
            Setup::PublicKey => (
                Association::PublicKey(tg_sk.public_key()),
                Association::PublicKey(tn_sk.public_key()),
                Some(tn_sk),
                Some(tg_sk),
            ),
        };
        let tn = node(
            "desktop",
            tn_addr(),
            tn_priv,
            "laptop",
            tg_addr(),
            tn_assoc,
            seed,
        );
        let tg = node(
            "laptop",
            tg_addr(),
            tg_priv,
            "desktop",
            tn_addr(),
            tg_assoc,
            seed + 1,
        );
        Net::new(vec![tn, tg])
    }

    pub fn new(nodes: Vec<Node>) -> Net {
        Net {
            now: START,
            nodes,
            in_flight: Vec::new(),
            filter: Box::new(|_| Fate::Deliver),
            log: Vec::new(),
        }
    }

    pub fn node(&mut self, name: &str) -> &mut Node {
        let idx = self.nodes.iter().position(|n| n.name == name);
        match idx {
            Some(i) => &mut self.nodes[i],
            None => panic!("no node {name}"),
        }
    }

    pub fn offer(
        &mut self,
        who: &str,
        peer: &str,
        role: sid_ext::negotiation::Role,
        terms: SessionTerms,
    ) -> NegotiationId {
        let now = self.now;
        let node = self.node(who);
        let t = node.now(now);
        node.neg
            .offer(t, peer, role, terms)
            .unwrap_or_else(|e| panic!("offer failed: {e}"))
    }

    /// Runs until nothing is in flight and no timer is armed, or `limit` of virtual time.
    pub fn drive(&mut self, limit: Duration) {
        let end = self.now + limit;
        for _ in 0..100_000 {
            self.collect();
            let next_delivery = self.in_flight.iter().map(|(t, _)| *t).min();
            let next_timer = self
                .nodes
                .iter()
                .filter_map(|n| n.neg.poll_timeout().map(|t| self.to_net_time(n, t)))
                .min();
            let Some(next) = [next_delivery, next_timer].into_iter().flatten().min() else {
                return;
            };
            if next > end {
                self.now = end;
                return;
            }
            self.now = self.now.max(next);
            self.step();
        }
        panic!("drive did not settle");
    }

    fn to_net_time(&self, node: &Node, t: Time) -> Time {
        let v = i128::from(t.as_micros()) - i128::from(node.clock_offset);
        Time::from_micros(u64::try_from(v).unwrap_or(0))
    }

    fn step(&mut self) {
        let now = self.now;
        let mut due = Vec::new();
        self.in_flight.retain(|(t, d)| {
            if *t <= now {
                due.push(d.clone());
                false
            } else {
                true
            }
        });
        due.sort_by_key(|d| d.seq);
        for d in due {
            if let Some(node) = self.nodes.iter_mut().find(|n| n.addr == d.to) {
                let t = node.now(now);
                node.neg.handle_datagram(t, d.from, &d.payload);
            }
            self.collect();
        }
        for node in &mut self.nodes {
            let t = node.now(now);
            if node
                .neg
                .poll_timeout()
                .is_some_and(|deadline| deadline <= t)
            {
                node.neg.handle_timeout(t);
            }
        }
        self.collect();
    }

    /// Takes every transmit and event out of the endpoints; answers Offers.
    fn collect(&mut self) {
        let now = self.now;
        for i in 0..self.nodes.len() {
            loop {
                let node = &mut self.nodes[i];
                let Some(event) = node.neg.poll_event() else {
                    break;
                };
                if let NegotiationEvent::Offered { id, terms, .. } = &event {
                    let t = node.now(now);
                    let result = match &node.answer {
                        Answer::AsOffered => node.neg.accept(t, *id, terms.clone()),
                        Answer::With(final_terms) => node.neg.accept(t, *id, final_terms.clone()),
                        Answer::Refuse(code) => node.neg.refuse(t, *id, *code),
                        Answer::Ignore => Ok(()),
                    };
                    if let Err(e) = result {
                        panic!("{} could not answer: {e}", node.name);
                    }
                }
                node.events.push(event);
            }
            while let Some(tx) = self.nodes[i].neg.poll_transmit() {
                let d = Datagram {
                    seq: self.log.len(),
                    from: self.nodes[i].addr,
                    to: tx.destination,
                    payload: tx.payload,
                };
                self.log.push(d.clone());
                match (self.filter)(&d) {
                    Fate::Deliver => self.in_flight.push((now + LATENCY, d)),
                    Fate::Drop => {}
                    Fate::Duplicate => {
                        self.in_flight.push((now + LATENCY, d.clone()));
                        self.in_flight
                            .push((now + LATENCY + Duration::from_millis(1), d));
                    }
                    Fate::Replace(payload) => self
                        .in_flight
                        .push((now + LATENCY, Datagram { payload, ..d })),
                }
            }
        }
    }

    /// Puts a datagram on the wire as if `from` had sent it now.
    pub fn inject(&mut self, from: SocketAddrV4, to: SocketAddrV4, payload: Vec<u8>) {
        let d = Datagram {
            seq: usize::MAX,
            from,
            to,
            payload,
        };
        self.in_flight.push((self.now, d));
    }
}

/// Rebuilds one node's endpoint with a changed configuration (and a fresh state).
pub fn reconfigure(
    net: &mut Net,
    name: &str,
    seed: u64,
    change: impl FnOnce(&mut NegotiatorConfig),
) {
    let node = net.node(name);
    let mut config = node.neg.config().clone();
    change(&mut config);
    node.neg = match Negotiator::new(config, StdRng::seed_from_u64(seed)) {
        Ok(n) => n,
        Err(e) => panic!("config: {e}"),
    };
}

#[allow(clippy::too_many_arguments)]
pub fn node(
    name: &'static str,
    addr: SocketAddrV4,
    private_key: Option<PrivateKey>,
    peer: &str,
    peer_addr: SocketAddrV4,
    association: Association,
    seed: u64,
) -> Node {
    let mut config = NegotiatorConfig::new(name);
    config.private_key = private_key;
    config.peers.push(PeerConfig {
        identity: peer.to_owned(),
        address: Some(peer_addr),
        association,
    });
    let neg = match Negotiator::new(config, StdRng::seed_from_u64(seed)) {
        Ok(n) => n,
        Err(e) => panic!("config: {e}"),
    };
    Node {
        name,
        addr,
        neg,
        answer: Answer::AsOffered,
        clock_offset: 0,
        events: Vec::new(),
    }
}

/// The Type octet of a negotiation datagram.
pub fn msg_type(payload: &[u8]) -> u8 {
    payload.get(1).copied().unwrap_or(0)
}
