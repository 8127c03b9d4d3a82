//! Movement detection of the mobile node, sans-IO (RFC 5944 section 2.4).
//!
//! [`MovementDetector`] is fed the Agent Advertisements the node receives (with their IP
//! source and, when the shell has it, the link-layer source) and the time. It tracks each
//! agent heard, its advertised lifetime, sequence number and prefix, and decides where the
//! node is: at home, on a foreign link registering through a foreign agent, on a foreign
//! link with a co-located care-of address, or lost (soliciting). It opens no socket and
//! reads no clock: the shell sends a solicitation on [`MovementEvent::SolicitNow`] and
//! wakes it at [`MovementDetector::poll_timeout`].
//!
//! Choices the RFC leaves open, made here:
//! - An advertisement whose IP source is our home agent, whose care-of list holds our
//!   home agent, or whose source lies in the home prefix, means "at home" at once (2.4.3;
//!   advertisements are link-local, so their source tells the link).
//! - A foreign link whose prefix has a configured co-located address is used in co-located
//!   mode, unless its agent sets R (2.4.1: register through the foreign agent). Configuring
//!   a co-located address for a link is how the operator says it prefers one.
//! - Algorithm 2 (2.4.2.2) compares the network prefixes of the current and the new
//!   agent's links. The prefix of a link is the one its Prefix-Lengths extension gives for
//!   a router address, or else a configured prefix (home or co-located) holding the
//!   advertisement's source: that second source of knowledge is one of the "other
//!   mechanisms" 2.4.2 allows. With either prefix unknown, only Algorithm 1 (lifetime
//!   expiry, 2.4.2.1) moves the node, and on expiry it switches at once to another agent
//!   whose advertisement has not expired, preferring the home agent, then the agent heard
//!   most recently.
//! - Solicitations (2.4, RFC 1256 6.3.2): the first after a random delay below
//!   `max_solicitation_delay`, then `initial_solicitations - 1` more one nominal second
//!   apart, then doubling intervals up to `max_solicitation_interval` (at least one minute
//!   by default). Each interval is randomised upwards, into [nominal, 1.25 x nominal), so
//!   the rate limits hold exactly. The fast rate comes back when an agent was heard and
//!   then lost (2.4: after registering, search faster next time) or on
//!   [`MovementDetector::restart_search`] (a positive indication of a new link).
//! - A foreign agent that sets B (busy) is not chosen for a new registration; an agent
//!   without F is not a foreign agent. Advertisements that offer nothing usable are
//!   counted and otherwise ignored.

#[cfg(test)]
mod tests;

use core::fmt;
use core::net::Ipv4Addr;
use core::str::FromStr;
use std::collections::VecDeque;
use std::time::Duration;

use crate::time::Time;
use crate::wire::{AgentAdvertisementRepr, AgentFlags};

/// RFC 1256 MAX_SOLICITATION_DELAY.
pub const DEFAULT_MAX_SOLICITATION_DELAY: Duration = Duration::from_secs(1);
/// RFC 5944 2.4: up to three initial solicitations at one per second.
pub const DEFAULT_INITIAL_SOLICITATIONS: u32 = 3;
pub const DEFAULT_INITIAL_SOLICITATION_INTERVAL: Duration = Duration::from_secs(1);
/// RFC 5944 2.4: the maximum interval SHOULD be at least one minute.
pub const DEFAULT_MAX_SOLICITATION_INTERVAL: Duration = Duration::from_secs(60);
/// Agents remembered at once; the oldest is forgotten first. Bounds memory against a link
/// flooded with advertisements from many sources.
pub const MAX_AGENTS: usize = 16;
/// Sequence numbers below this after a higher one mean the agent restarted (2.3.2, 2.4.4).
const SEQUENCE_ROLLOVER_FLOOR: u16 = 256;

/// An IPv4 network prefix, host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Prefix {
    network: Ipv4Addr,
    len: u8,
}

/// Why text is not an IPv4 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("prefix length {0} is above 32")]
    Length(u8),
    #[error("expected ADDRESS/LENGTH, e.g. 198.18.2.0/24")]
    Syntax,
}

impl Ipv4Prefix {
    /// The prefix of `len` bits holding `addr` (host bits are cleared).
    pub fn new(addr: Ipv4Addr, len: u8) -> Result<Self, PrefixError> {
        if len > 32 {
            return Err(PrefixError::Length(len));
        }
        Ok(Self {
            network: Ipv4Addr::from(u32::from(addr) & mask(len)),
            len,
        })
    }

    pub fn network(self) -> Ipv4Addr {
        self.network
    }

    pub fn len(self) -> u8 {
        self.len
    }

    /// Whether this is the zero-length prefix (the whole address space).
    pub fn is_empty(self) -> bool {
        self.len == 0
    }

    pub fn contains(self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & mask(self.len) == u32::from(self.network)
    }
}

fn mask(len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(len.min(32)))
        .unwrap_or(0)
}

impl fmt::Display for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.len)
    }
}

impl FromStr for Ipv4Prefix {
    type Err = PrefixError;
    fn from_str(s: &str) -> Result<Self, PrefixError> {
        let (addr, len) = s.split_once('/').ok_or(PrefixError::Syntax)?;
        let addr = addr.parse().map_err(|_| PrefixError::Syntax)?;
        let len = len.parse().map_err(|_| PrefixError::Syntax)?;
        Self::new(addr, len)
    }
}

/// What the detector needs to know about the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovementConfig {
    pub home_agent: Ipv4Addr,
    /// The home network (the home address and its prefix length).
    pub home_prefix: Ipv4Prefix,
    /// Foreign links where the node has a co-located care-of address.
    pub colocated_prefixes: Vec<Ipv4Prefix>,
    pub max_solicitation_delay: Duration,
    /// Solicitations sent at the initial interval before the back-off starts; 0 counts as 1.
    pub initial_solicitations: u32,
    /// Nominal interval of the initial solicitations; raised to 1 s if smaller (2.4 allows
    /// at most one per second).
    pub initial_solicitation_interval: Duration,
    pub max_solicitation_interval: Duration,
}

impl MovementConfig {
    /// A configuration with the RFC's solicitation defaults.
    pub fn new(home_agent: Ipv4Addr, home_prefix: Ipv4Prefix) -> Self {
        Self {
            home_agent,
            home_prefix,
            colocated_prefixes: Vec::new(),
            max_solicitation_delay: DEFAULT_MAX_SOLICITATION_DELAY,
            initial_solicitations: DEFAULT_INITIAL_SOLICITATIONS,
            initial_solicitation_interval: DEFAULT_INITIAL_SOLICITATION_INTERVAL,
            max_solicitation_interval: DEFAULT_MAX_SOLICITATION_INTERVAL,
        }
    }
}

/// What an advertisement says about the link it was heard on, for this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkKind {
    Home,
    /// A foreign link with a configured co-located address (in this prefix).
    Colocated(Ipv4Prefix),
    /// A foreign link whose agent offers foreign agent service.
    ForeignAgent,
    /// A foreign link offering nothing this node can use.
    Unusable,
}

/// One agent heard on the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInfo {
    /// IP source address of its advertisements: where registrations through it go
    /// (RFC 5944 3.6.1.1).
    pub address: Ipv4Addr,
    /// Link-layer source of its advertisements, when the shell knows it: the node sends to
    /// it without broadcasting ARP (4.2.1, 4.6).
    pub mac: Option<[u8; 6]>,
    pub care_of_addresses: Vec<Ipv4Addr>,
    pub flags: AgentFlags,
    /// Longest registration lifetime the agent accepts, seconds.
    pub registration_lifetime: u16,
    pub sequence: u16,
    /// Router addresses of the ICMP part, for a default router (4.2.1).
    pub routers: Vec<Ipv4Addr>,
    /// The link's prefix, from Prefix-Lengths or a configured prefix; `None` when unknown.
    pub link_prefix: Option<Ipv4Prefix>,
    pub kind: LinkKind,
    pub heard_at: Time,
    /// When its last advertisement's Lifetime runs out (2.4.2.1).
    pub expires: Time,
}

/// Where the node is, in the detector's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Location {
    /// Nothing heard yet.
    Unknown,
    Home {
        agent: Ipv4Addr,
    },
    ForeignAgent {
        agent: Ipv4Addr,
        care_of: Ipv4Addr,
    },
    Colocated {
        prefix: Ipv4Prefix,
        agent: Ipv4Addr,
    },
    /// The current agent's advertisement expired and no other agent is known.
    Lost,
}

/// What the shell should act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MovementEvent {
    /// On the home link: restore home routing, gratuitous ARP, deregister (2.4.3, 4.6).
    MovedHome { agent: Ipv4Addr },
    /// Register through this foreign agent with this care-of address.
    MovedToForeignAgent {
        agent: Ipv4Addr,
        care_of: Ipv4Addr,
        agent_mac: Option<[u8; 6]>,
        flags: AgentFlags,
    },
    /// On the foreign link of `prefix`: use its configured co-located address.
    NeedsColocated { prefix: Ipv4Prefix, agent: Ipv4Addr },
    /// The foreign agent we use restarted (its sequence number fell below 256): register
    /// again through it (2.4.4).
    AgentRestarted { agent: Ipv4Addr, care_of: Ipv4Addr },
    /// The current agent's advertisement expired with no other agent to turn to.
    Lost { agent: Option<Ipv4Addr> },
    /// Send one Agent Solicitation now (TTL 1, RFC 5944 2.2).
    SolicitNow,
}

/// Counters, for logs and the status output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MovementStats {
    pub advertisements: u64,
    pub unusable_advertisements: u64,
    pub solicitations: u64,
    pub moves: u64,
    pub agent_restarts: u64,
    pub expiries: u64,
}

#[derive(Debug, Clone, Copy)]
struct Search {
    next: Time,
    sent: u32,
    interval: Duration,
}

/// The movement detector. See the module documentation.
#[derive(Debug)]
pub struct MovementDetector {
    cfg: MovementConfig,
    rng: u64,
    agents: Vec<AgentInfo>,
    location: Location,
    search: Option<Search>,
    events: VecDeque<MovementEvent>,
    stats: MovementStats,
}

impl MovementDetector {
    /// A detector that knows nothing and sends nothing until [`start`](Self::start).
    /// `rng_seed` drives the solicitation jitter.
    pub fn new(cfg: MovementConfig, rng_seed: u64) -> Self {
        Self {
            cfg,
            rng: rng_seed,
            agents: Vec::new(),
            location: Location::Unknown,
            search: None,
            events: VecDeque::new(),
            stats: MovementStats::default(),
        }
    }

    /// Begins: unless an agent was heard already, solicit after a random delay.
    pub fn start(&mut self, now: Time) {
        if matches!(self.location, Location::Unknown | Location::Lost) && self.search.is_none() {
            self.begin_search(now);
        }
    }

    /// A positive indication of a new link (link up, a new ESSID ...): forget every agent
    /// and search again at the fast rate (2.4 allows the rate to go up only then).
    pub fn restart_search(&mut self, now: Time) {
        self.agents.clear();
        if !matches!(self.location, Location::Unknown) {
            self.location = Location::Lost;
        }
        self.begin_search(now);
    }

    /// An Agent Advertisement (already parsed and checksum-verified) from IP `source`,
    /// link-layer `source_mac` when known.
    pub fn handle_advertisement(
        &mut self,
        now: Time,
        source: Ipv4Addr,
        source_mac: Option<[u8; 6]>,
        adv: &AgentAdvertisementRepr,
    ) {
        self.stats.advertisements += 1;
        let (link_prefix, kind) = self.classify(source, adv);
        if kind == LinkKind::Unusable {
            self.stats.unusable_advertisements += 1;
        }
        let lifetime = Duration::from_secs(u64::from(adv.lifetime));
        let info = AgentInfo {
            address: source,
            mac: source_mac,
            care_of_addresses: adv.mobility.care_of_addresses.clone(),
            flags: adv.mobility.flags,
            registration_lifetime: adv.mobility.registration_lifetime,
            sequence: adv.mobility.sequence,
            routers: adv.router_addresses.iter().map(|(a, _)| *a).collect(),
            link_prefix,
            kind,
            heard_at: now,
            expires: now + lifetime,
        };
        let previous = self.remember(info.clone());
        let current = self.current_agent();

        if current == Some(source) {
            self.same_agent(&info, previous.as_ref());
            return;
        }
        if !usable(&info, current == Some(source)) {
            return;
        }
        let move_now = match current.and_then(|a| self.agent(a)) {
            // Nothing current (Unknown or Lost): take the first usable agent.
            None => true,
            Some(cur) => {
                info.kind == LinkKind::Home && cur.kind != LinkKind::Home
                    || matches!((cur.link_prefix, info.link_prefix), (Some(a), Some(b)) if a != b)
            }
        };
        if move_now {
            self.move_to(&info);
        }
    }

    /// Expires agents whose advertisements ran out and sends due solicitations.
    pub fn handle_timeout(&mut self, now: Time) {
        let current = self.current_agent();
        let before = self.agents.len();
        self.agents.retain(|a| a.expires > now);
        self.stats.expiries += (before - self.agents.len()) as u64;
        if let Some(cur) = current {
            if self.agent(cur).is_none() {
                self.current_expired(now, cur);
            }
        }
        if let Some(mut s) = self.search {
            if s.next <= now {
                self.stats.solicitations += 1;
                self.events.push_back(MovementEvent::SolicitNow);
                s.sent = s.sent.saturating_add(1);
                let nominal = if s.sent < self.cfg.initial_solicitations.max(1) {
                    self.initial_interval()
                } else {
                    // Binary exponential back-off up to the maximum interval.
                    let cap = self
                        .cfg
                        .max_solicitation_interval
                        .max(self.initial_interval());
                    let next = s.interval.min(cap);
                    s.interval = s.interval.saturating_mul(2).min(cap);
                    next
                };
                s.next = now + self.jitter_up(nominal);
                self.search = Some(s);
            }
        }
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<MovementEvent> {
        self.events.pop_front()
    }

    /// The next solicitation or advertisement expiry.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Time> {
        let expiry = self.agents.iter().map(|a| a.expires).min();
        [expiry, self.search.map(|s| s.next)]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn location(&self) -> Location {
        self.location
    }

    /// Whether solicitations are being sent.
    pub fn searching(&self) -> bool {
        self.search.is_some()
    }

    /// The agent the current location is based on.
    pub fn current(&self) -> Option<&AgentInfo> {
        self.current_agent().and_then(|a| self.agent(a))
    }

    /// Every agent whose advertisement has not expired (as of the last input).
    pub fn agents(&self) -> &[AgentInfo] {
        &self.agents
    }

    pub fn config(&self) -> &MovementConfig {
        &self.cfg
    }

    pub fn stats(&self) -> &MovementStats {
        &self.stats
    }

    /// Home, co-located or foreign agent, and the link's prefix.
    fn classify(
        &self,
        source: Ipv4Addr,
        adv: &AgentAdvertisementRepr,
    ) -> (Option<Ipv4Prefix>, LinkKind) {
        let home = self.cfg.home_prefix;
        let advertised = advertised_prefix(source, adv);
        if source == self.cfg.home_agent
            || adv
                .mobility
                .care_of_addresses
                .contains(&self.cfg.home_agent)
            || home.contains(source)
            || advertised == Some(home)
        {
            return (Some(home), LinkKind::Home);
        }
        let configured = self.cfg.colocated_prefixes.iter().copied().find(|p| {
            p.contains(source) || advertised.is_some_and(|a| a == *p || p.contains(a.network))
        });
        let link_prefix = advertised.or(configured);
        let flags = adv.mobility.flags;
        let fa = flags.contains(AgentFlags::F) && !adv.mobility.care_of_addresses.is_empty();
        let kind = match configured {
            Some(p) if !(flags.contains(AgentFlags::R) && fa) => LinkKind::Colocated(p),
            _ if fa => LinkKind::ForeignAgent,
            _ => LinkKind::Unusable,
        };
        (link_prefix, kind)
    }

    /// Inserts or replaces the record of `info.address`; returns the previous one.
    fn remember(&mut self, info: AgentInfo) -> Option<AgentInfo> {
        if let Some(slot) = self.agents.iter_mut().find(|a| a.address == info.address) {
            return Some(core::mem::replace(slot, info));
        }
        if self.agents.len() >= MAX_AGENTS {
            let current = self.current_agent();
            let oldest = self
                .agents
                .iter()
                .enumerate()
                .filter(|(_, a)| Some(a.address) != current)
                .min_by_key(|(_, a)| a.heard_at)
                .map(|(i, _)| i);
            if let Some(i) = oldest {
                self.agents.remove(i);
            }
        }
        self.agents.push(info);
        None
    }

    /// A new advertisement from the agent we already use.
    fn same_agent(&mut self, info: &AgentInfo, previous: Option<&AgentInfo>) {
        let restarted = previous
            .is_some_and(|p| info.sequence < p.sequence && info.sequence < SEQUENCE_ROLLOVER_FLOOR);
        let kind_changed = previous.is_some_and(|p| p.kind != info.kind);
        match self.location {
            Location::ForeignAgent { agent, care_of } => {
                let still_offered = info.kind == LinkKind::ForeignAgent
                    && info.care_of_addresses.contains(&care_of);
                if kind_changed || !still_offered {
                    // The agent changed what it offers: decide afresh.
                    if usable(info, true) {
                        self.move_to(info);
                    }
                } else if restarted {
                    self.stats.agent_restarts += 1;
                    self.events
                        .push_back(MovementEvent::AgentRestarted { agent, care_of });
                }
            }
            _ if kind_changed && usable(info, true) => self.move_to(info),
            _ => {}
        }
    }

    fn move_to(&mut self, info: &AgentInfo) {
        let (location, event) = match info.kind {
            LinkKind::Home => (
                Location::Home {
                    agent: info.address,
                },
                MovementEvent::MovedHome {
                    agent: info.address,
                },
            ),
            LinkKind::Colocated(prefix) => (
                Location::Colocated {
                    prefix,
                    agent: info.address,
                },
                MovementEvent::NeedsColocated {
                    prefix,
                    agent: info.address,
                },
            ),
            LinkKind::ForeignAgent => {
                // 2.4: the first advertised care-of address; `usable` checked there is one.
                let Some(&care_of) = info.care_of_addresses.first() else {
                    return;
                };
                (
                    Location::ForeignAgent {
                        agent: info.address,
                        care_of,
                    },
                    MovementEvent::MovedToForeignAgent {
                        agent: info.address,
                        care_of,
                        agent_mac: info.mac,
                        flags: info.flags,
                    },
                )
            }
            LinkKind::Unusable => return,
        };
        self.location = location;
        self.search = None;
        self.stats.moves += 1;
        self.events.push_back(event);
    }

    /// 2.4.2.1: the current agent went silent. Turn to another agent still advertised, or
    /// search.
    fn current_expired(&mut self, now: Time, agent: Ipv4Addr) {
        let next = self
            .agents
            .iter()
            .filter(|a| usable(a, false))
            .max_by_key(|a| (a.kind == LinkKind::Home, a.heard_at))
            .cloned();
        match next {
            Some(info) => self.move_to(&info),
            None => {
                self.location = Location::Lost;
                self.events
                    .push_back(MovementEvent::Lost { agent: Some(agent) });
                self.begin_search(now);
            }
        }
    }

    fn current_agent(&self) -> Option<Ipv4Addr> {
        match self.location {
            Location::Home { agent }
            | Location::ForeignAgent { agent, .. }
            | Location::Colocated { agent, .. } => Some(agent),
            Location::Unknown | Location::Lost => None,
        }
    }

    fn agent(&self, address: Ipv4Addr) -> Option<&AgentInfo> {
        self.agents.iter().find(|a| a.address == address)
    }

    fn begin_search(&mut self, now: Time) {
        let delay = self.jitter_below(self.cfg.max_solicitation_delay);
        self.search = Some(Search {
            next: now + delay,
            sent: 0,
            interval: self.initial_interval().saturating_mul(2),
        });
    }

    fn initial_interval(&self) -> Duration {
        self.cfg
            .initial_solicitation_interval
            .max(Duration::from_secs(1))
    }

    fn next_random(&mut self) -> u64 {
        // splitmix64: enough to spread solicitations of nodes that start together.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, d).
    fn jitter_below(&mut self, d: Duration) -> Duration {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        if micros == 0 {
            return Duration::ZERO;
        }
        Duration::from_micros(self.next_random() % micros)
    }

    /// Uniform in [d, 1.25 d).
    fn jitter_up(&mut self, d: Duration) -> Duration {
        d + self.jitter_below(d / 4)
    }
}

/// Whether the node can act on this agent: the home link, a co-located link, or a foreign
/// agent that is not busy (busy matters only for a new registration, `registered` false).
fn usable(info: &AgentInfo, registered: bool) -> bool {
    match info.kind {
        LinkKind::Home | LinkKind::Colocated(_) => true,
        LinkKind::ForeignAgent => registered || !info.flags.contains(AgentFlags::B),
        LinkKind::Unusable => false,
    }
}

/// 2.1.2: the network prefix of the router address that holds the source, or else of the
/// first router address, when the advertisement carries Prefix-Lengths.
fn advertised_prefix(source: Ipv4Addr, adv: &AgentAdvertisementRepr) -> Option<Ipv4Prefix> {
    let lengths = adv.prefix_lengths.as_ref()?;
    let prefixes = adv
        .router_addresses
        .iter()
        .zip(lengths)
        .filter_map(|((addr, _), len)| Ipv4Prefix::new(*addr, *len).ok());
    let mut first = None;
    for p in prefixes {
        if p.contains(source) {
            return Some(p);
        }
        first = first.or(Some(p));
    }
    first
}
