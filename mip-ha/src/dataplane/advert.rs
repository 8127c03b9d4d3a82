//! Agent Advertisements on the home link and answers to Agent Solicitations (RFC 5944
//! 2.1-2.3, timing of RFC 1256 4.1 and 5.1), sans-IO: the shell passes `now` and the
//! packets read from its raw ICMP socket in, and sends what [`Advertiser::poll_transmit`]
//! writes. A mobile node decides it is at home only when it hears these (RFC 5944 2.4.3).
//!
//! What goes on the wire, and why:
//! - ICMP code 16 and one router address, our own, with preference 0x80000000: the home
//!   agent (a host with forwarding off in our deployments) does not route common traffic
//!   (2.1), and RFC 1256 4.1 reserves the minimum preference for "advertised, but not a
//!   default router". 2.3.1 allows only the agent's own addresses; listing it (rather
//!   than none, which 2.1 also allows) gives the Prefix-Lengths extension (2.1.2) an
//!   address to describe, for mobile nodes using move-detection algorithm 2 (2.4.2.2).
//! - Mobility Agent extension: sequence 0 first, then +1, 0xffff followed by 256
//!   (2.3.2); Registration Lifetime = the largest lifetime we grant; flags H only (a home
//!   agent offers neither F nor R, and B needs F, 2.1.1); no care-of addresses (those are
//!   a foreign agent's, 2.1.1).
//! - Unsolicited advertisements to 224.0.0.1 every `interval` at most, each gap drawn
//!   uniformly in [0.75, 1] x interval (RFC 1256 MinAdvertisementInterval default; 2.1
//!   asks for "slightly randomized"), the first few capped at 16 s (RFC 1256).
//! - A solicitation (any source: 2.3 forbids requiring a neighbour) is answered by one
//!   multicast advertisement after a random delay of at most [`RESPONSE_DELAY`] (RFC 1256
//!   5.1: a multicast response "must be delayed ... not greater than MAX_RESPONSE_DELAY"),
//!   which also answers any solicitation arriving meanwhile; it resets the periodic
//!   timer as RFC 1256 asks. A solicitation to a broadcast address is answered by
//!   broadcast (RFC 1256 5.1 "may"). We never unicast: it is only ever a "may" (RFC 1256),
//!   and 2.1 would then require the solicitation's link-layer source as destination,
//!   which a raw IP socket cannot honour.
//! - Rate limits (2.3 "MUST limit the rate ... broadcast or multicast"): one answer per
//!   solicitor per [`SOLICITOR_HOLDDOWN`], solicited advertisements at least
//!   [`MIN_ANSWER_GAP`] after the previous advertisement, solicitors remembered in a
//!   bounded table ([`MAX_SOLICITORS`]).

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::Duration;

use mip_core::dataplane::ipv4::{self, PROTO_ICMP};
use mip_core::time::Time;
use mip_core::wire::{
    AgentAdvertisementRepr, AgentFlags, AgentSolicitationRepr, MobilityAgentExt, WireError, ICMP_ROUTER_SOLICITATION,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// "All systems on this link": where multicast advertisements go (RFC 5944 2.1).
pub const ALL_SYSTEMS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 1);
/// "All routers": RFC 1256's default solicitation address; joined too.
pub const ALL_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 2);
/// "Mobile-Agents": every mobility agent MUST process packets sent here (RFC 5944 2.3).
pub const ALL_MOBILITY_AGENTS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 11);

/// `advertise` default: send unsolicited advertisements.
pub const DEFAULT_ADVERTISE: bool = true;
/// `advertisement_interval_ms` default: a returning node notices home within a second.
pub const DEFAULT_ADVERTISEMENT_INTERVAL_MS: u64 = 1000;
/// Shortest `advertisement_interval_ms`: 2.3 asks us to limit the multicast rate.
pub const MIN_ADVERTISEMENT_INTERVAL_MS: u64 = 100;
/// Longest `advertisement_interval_ms`: RFC 1256 MaxAdvertisementInterval <= 1800 s.
pub const MAX_ADVERTISEMENT_INTERVAL_MS: u64 = 1_800_000;
/// Longest `advertisement_lifetime`, seconds: RFC 1256 AdvertisementLifetime <= 9000 s.
pub const MAX_ADVERTISEMENT_LIFETIME: u16 = 9000;
/// RFC 5944 2.1: the interval SHOULD be no longer than 1/3 of the lifetime, so that a
/// node may miss three advertisements.
pub const LIFETIME_INTERVALS: u64 = 3;

/// RFC 1256 MAX_INITIAL_ADVERT_INTERVAL and MAX_INITIAL_ADVERTISEMENTS.
pub const MAX_INITIAL_ADVERT_INTERVAL: Duration = Duration::from_secs(16);
pub const MAX_INITIAL_ADVERTISEMENTS: u32 = 3;
/// RFC 1256 MAX_RESPONSE_DELAY: the bound on a multicast answer's random delay.
pub const MAX_RESPONSE_DELAY: Duration = Duration::from_secs(2);
/// The random delay we use, well inside [`MAX_RESPONSE_DELAY`]: a node that has just
/// come home should not wait long, and 100 ms still spreads and merges answers.
pub const RESPONSE_DELAY: Duration = Duration::from_millis(100);
/// A solicited advertisement is not sent sooner than this after the previous
/// advertisement: with the per-solicitor limit, this bounds what spoofed sources can make
/// us multicast.
pub const MIN_ANSWER_GAP: Duration = Duration::from_millis(200);
/// One answer per solicitor (IP source) per second.
pub const SOLICITOR_HOLDDOWN: Duration = Duration::from_secs(1);
/// Solicitors remembered; when all are recent, new ones are rate-limited.
pub const MAX_SOLICITORS: usize = 256;
/// Preference of our router address: "not to be used as a default router" (RFC 1256 4.1).
pub const NOT_A_DEFAULT_ROUTER: i32 = i32::MIN;
/// ICMP code: the agent does not route common traffic (RFC 5944 2.1).
pub const CODE_NO_COMMON_TRAFFIC: u8 = 16;

/// What the advertiser needs; built from the `[home_agent]` keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertConfig {
    /// The home agent's address: our router address and the packets' source.
    pub address: Ipv4Addr,
    /// The home network's prefix length (Prefix-Lengths extension, broadcast address).
    pub prefix_len: u8,
    /// Unsolicited advertisements (`advertise`); when false, solicitations are still
    /// answered (RFC 5944 2.3: "MAY be configured to send Agent Advertisements only in
    /// response to an Agent Solicitation").
    pub periodic: bool,
    /// RFC 1256 MaxAdvertisementInterval (`advertisement_interval_ms`).
    pub interval: Duration,
    /// The ICMP Lifetime field, seconds (`advertisement_lifetime`).
    pub lifetime: u16,
    /// Registration Lifetime field: the home agent's `max_lifetime`.
    pub registration_lifetime: u16,
    /// Add the Prefix-Lengths extension (`advertisement_prefix_lengths`); 2.3 wants all
    /// agents on a link to agree.
    pub prefix_lengths: bool,
}

impl AdvertConfig {
    /// The defaults for a home agent at `address`/`prefix_len` granting `max_lifetime`.
    pub fn new(address: Ipv4Addr, prefix_len: u8, max_lifetime: u16) -> Self {
        AdvertConfig {
            address,
            prefix_len,
            periodic: DEFAULT_ADVERTISE,
            interval: Duration::from_millis(DEFAULT_ADVERTISEMENT_INTERVAL_MS),
            lifetime: default_lifetime(DEFAULT_ADVERTISEMENT_INTERVAL_MS),
            registration_lifetime: max_lifetime,
            prefix_lengths: false,
        }
    }

    /// The subnet-directed broadcast address of the home network.
    fn subnet_broadcast(&self) -> Ipv4Addr {
        let host_bits = 32u32.saturating_sub(u32::from(self.prefix_len));
        let mask = if host_bits >= 32 { u32::MAX } else { (1u32 << host_bits) - 1 };
        Ipv4Addr::from(u32::from(self.address) | mask)
    }
}

/// `advertisement_lifetime` default: three intervals, rounded up to whole seconds.
pub fn default_lifetime(interval_ms: u64) -> u16 {
    let secs = (LIFETIME_INTERVALS.saturating_mul(interval_ms)).div_ceil(1000);
    u16::try_from(secs).unwrap_or(MAX_ADVERTISEMENT_LIFETIME).min(MAX_ADVERTISEMENT_LIFETIME)
}

/// RFC 5944 2.3.2: 0 first, then one more each time, 0xffff followed by 256 (so that a
/// node can tell a rollover from a reboot).
pub fn next_sequence(last: Option<u16>) -> u16 {
    match last {
        None => 0,
        Some(0xffff) => 256,
        Some(n) => n + 1,
    }
}

/// Counters, read by the shell into the data-plane statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdvertStats {
    /// Advertisements handed to the shell, periodic and solicited (the final one too).
    pub advertisements_sent: u64,
    /// Of those, sent to answer solicitations.
    pub solicited_advertisements: u64,
    /// ICMP Router Solicitations read, valid or not.
    pub solicitations_received: u64,
    /// Solicitations an advertisement was sent for (several may share one).
    pub solicitations_answered: u64,
    /// Solicitations not answered because of a rate limit.
    pub solicitations_rate_limited: u64,
    /// Solicitations with a bad checksum, code, length or TTL (RFC 1256 6.1.1, 5944 2.2).
    pub solicitations_malformed: u64,
}

/// What became of a packet given to [`Advertiser::handle_packet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Solicitation {
    /// Not an ICMP Router Solicitation: ignored, not counted.
    NotSolicitation,
    /// Dropped; the reason is for logs.
    Malformed(&'static str),
    /// Valid, but this solicitor was answered less than a second ago, or the solicitor
    /// table is full of recent ones.
    RateLimited,
    /// Will be answered, to `destination`, at `due` (possibly with others).
    Answered { destination: Ipv4Addr, due: Time },
}

/// An advertisement written by [`Advertiser::poll_transmit`]: the ICMP message is the
/// first `len` bytes of the caller's buffer. The shell sends it with IP TTL 1 (2.1) from
/// the home agent's address on the home interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outgoing {
    pub destination: Ipv4Addr,
    pub len: usize,
    pub sequence: u16,
    pub solicited: bool,
}

/// An answer waiting for its delay: when, and how many solicitations it answers.
#[derive(Debug, Clone, Copy)]
struct Pending {
    due: Time,
    solicitations: u64,
}

/// An advertisement decided but not yet written.
#[derive(Debug, Clone, Copy)]
struct Due {
    destination: Ipv4Addr,
    solicited: bool,
}

#[derive(Debug)]
pub struct Advertiser {
    cfg: AdvertConfig,
    /// Built once; only the sequence number and lifetime change.
    repr: AgentAdvertisementRepr,
    rng: StdRng,
    last_sequence: Option<u16>,
    /// Unsolicited multicast advertisements sent (for the initial cap).
    periodic_sent: u32,
    next_periodic: Option<Time>,
    last_sent: Option<Time>,
    multicast_answer: Option<Pending>,
    broadcast_answer: Option<Pending>,
    /// When each solicitor was last answered.
    solicitors: HashMap<Ipv4Addr, Time>,
    queue: VecDeque<Due>,
    stats: AdvertStats,
}

impl Advertiser {
    /// The first unsolicited advertisement is due at `now`. `seed` spreads the random
    /// intervals; RFC 1256 suggests mixing in an address, which the shell does.
    pub fn new(cfg: AdvertConfig, now: Time, seed: u64) -> Self {
        let repr = AgentAdvertisementRepr {
            code: CODE_NO_COMMON_TRAFFIC,
            lifetime: cfg.lifetime,
            router_addresses: vec![(cfg.address, NOT_A_DEFAULT_ROUTER)],
            mobility: MobilityAgentExt {
                sequence: 0,
                registration_lifetime: cfg.registration_lifetime,
                flags: AgentFlags::default().with(AgentFlags::H),
                care_of_addresses: Vec::new(),
            },
            prefix_lengths: cfg.prefix_lengths.then(|| vec![cfg.prefix_len]),
        };
        Advertiser {
            next_periodic: cfg.periodic.then_some(now),
            cfg,
            repr,
            rng: StdRng::seed_from_u64(seed),
            last_sequence: None,
            periodic_sent: 0,
            last_sent: None,
            multicast_answer: None,
            broadcast_answer: None,
            solicitors: HashMap::with_capacity(MAX_SOLICITORS),
            queue: VecDeque::with_capacity(4),
            stats: AdvertStats::default(),
        }
    }

    /// Bytes [`Self::poll_transmit`] needs.
    pub fn buffer_len(&self) -> usize {
        self.repr.buffer_len()
    }

    pub fn stats(&self) -> AdvertStats {
        self.stats
    }

    /// A whole IPv4 packet as a raw ICMP socket reads it (header included).
    pub fn handle_packet(&mut self, now: Time, packet: &[u8]) -> Solicitation {
        let Ok(ip) = ipv4::parse(packet) else { return Solicitation::NotSolicitation };
        if ip.protocol != PROTO_ICMP || ip.more_fragments || ip.fragment_offset != 0 {
            return Solicitation::NotSolicitation;
        }
        let Some(icmp) = packet.get(ip.header_len..ip.total_len) else {
            return Solicitation::NotSolicitation;
        };
        if icmp.first() != Some(&ICMP_ROUTER_SOLICITATION) {
            return Solicitation::NotSolicitation;
        }
        self.stats.solicitations_received += 1;
        if let Err(e) = AgentSolicitationRepr::parse(icmp) {
            self.stats.solicitations_malformed += 1;
            return Solicitation::Malformed(match e {
                WireError::BadChecksum => "bad ICMP checksum",
                WireError::Truncated { .. } => "shorter than 8 bytes",
                _ => "ICMP code is not 0",
            });
        }
        if ip.ttl != 1 {
            // RFC 5944 2.2: TTL MUST be 1, which also keeps solicitations on the link.
            self.stats.solicitations_malformed += 1;
            return Solicitation::Malformed("IP TTL is not 1");
        }
        self.solicited(now, ip.src, ip.dst)
    }

    /// A valid solicitation from `source` to `destination`: rate limits, then an answer
    /// scheduled or joined.
    fn solicited(&mut self, now: Time, source: Ipv4Addr, destination: Ipv4Addr) -> Solicitation {
        let recent = |t: &Time| now.saturating_duration_since(*t) < SOLICITOR_HOLDDOWN;
        if self.solicitors.get(&source).is_some_and(recent) {
            self.stats.solicitations_rate_limited += 1;
            return Solicitation::RateLimited;
        }
        if self.solicitors.len() >= MAX_SOLICITORS {
            self.solicitors.retain(|_, t| recent(t));
            if self.solicitors.len() >= MAX_SOLICITORS {
                self.stats.solicitations_rate_limited += 1;
                return Solicitation::RateLimited;
            }
        }
        self.solicitors.insert(source, now);
        let broadcast = destination.is_broadcast() || destination == self.cfg.subnet_broadcast();
        let delay = self.random_between(Duration::ZERO, RESPONSE_DELAY);
        let floor = self.last_sent.map_or(now, |t| t + MIN_ANSWER_GAP);
        let candidate = (now + delay).max(floor);
        let slot = if broadcast { &mut self.broadcast_answer } else { &mut self.multicast_answer };
        // A pending answer keeps its time: RFC 1256 lets one advertisement answer
        // closely-spaced solicitations.
        let pending = slot.get_or_insert(Pending { due: candidate, solicitations: 0 });
        pending.solicitations += 1;
        let due = pending.due;
        let destination = if broadcast { Ipv4Addr::BROADCAST } else { ALL_SYSTEMS };
        Solicitation::Answered { destination, due }
    }

    /// Decides what is due at `now`; [`Self::poll_transmit`] then writes it.
    pub fn handle_timeout(&mut self, now: Time) {
        let periodic_due = self.next_periodic.is_some_and(|t| t <= now);
        let answer_due = self.multicast_answer.is_some_and(|p| p.due <= now);
        if periodic_due || answer_due {
            // One multicast advertisement answers every pending multicast solicitation.
            let answered = self.multicast_answer.take().map_or(0, |p| p.solicitations);
            self.stats.solicitations_answered += answered;
            self.queue.push_back(Due { destination: ALL_SYSTEMS, solicited: !periodic_due });
            if periodic_due {
                self.periodic_sent = self.periodic_sent.saturating_add(1);
            }
            // RFC 1256 5.1: a multicast answer resets the interval timer too.
            if self.cfg.periodic {
                self.next_periodic = Some(now + self.next_interval());
            }
            self.last_sent = Some(now);
        }
        if let Some(p) = self.broadcast_answer.filter(|p| p.due <= now) {
            self.broadcast_answer = None;
            self.stats.solicitations_answered += p.solicitations;
            self.queue.push_back(Due { destination: Ipv4Addr::BROADCAST, solicited: true });
            self.last_sent = Some(now);
        }
    }

    /// When [`Self::handle_timeout`] next has something to do.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Time> {
        [self.next_periodic, self.multicast_answer.map(|p| p.due), self.broadcast_answer.map(|p| p.due)]
            .into_iter()
            .flatten()
            .min()
    }

    /// Writes the next advertisement into `buf` (at least [`Self::buffer_len`] bytes).
    #[must_use]
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<Result<Outgoing, WireError>> {
        let due = self.queue.pop_front()?;
        let sequence = next_sequence(self.last_sequence);
        self.repr.mobility.sequence = sequence;
        self.repr.lifetime = self.cfg.lifetime;
        Some(self.repr.emit(buf).map(|len| {
            self.last_sequence = Some(sequence);
            self.stats.advertisements_sent += 1;
            if due.solicited {
                self.stats.solicited_advertisements += 1;
            }
            Outgoing { destination: due.destination, len, sequence, solicited: due.solicited }
        }))
    }

    /// The last advertisement again with Lifetime 0, for when we stop (RFC 1256 5.1
    /// recommends it); `None` if nothing was ever sent.
    #[must_use]
    pub fn withdraw(&mut self, buf: &mut [u8]) -> Option<Result<Outgoing, WireError>> {
        let sequence = self.last_sequence?;
        self.next_periodic = None;
        self.multicast_answer = None;
        self.broadcast_answer = None;
        self.queue.clear();
        self.repr.mobility.sequence = sequence;
        self.repr.lifetime = 0;
        Some(self.repr.emit(buf).map(|len| {
            self.stats.advertisements_sent += 1;
            Outgoing { destination: ALL_SYSTEMS, len, sequence, solicited: false }
        }))
    }

    /// The gap to the next unsolicited advertisement: uniform in [0.75, 1] x interval,
    /// at most 16 s for the first few (RFC 1256 5.1).
    fn next_interval(&mut self) -> Duration {
        let max = self.cfg.interval;
        let gap = self.random_between(max.mul_f64(0.75), max);
        if self.periodic_sent <= MAX_INITIAL_ADVERTISEMENTS {
            gap.min(MAX_INITIAL_ADVERT_INTERVAL)
        } else {
            gap
        }
    }

    fn random_between(&mut self, low: Duration, high: Duration) -> Duration {
        let (lo, hi) = (low.as_micros(), high.as_micros());
        if hi <= lo {
            return low;
        }
        let lo = u64::try_from(lo).unwrap_or(u64::MAX);
        let hi = u64::try_from(hi).unwrap_or(u64::MAX);
        Duration::from_micros(self.rng.gen_range(lo..=hi))
    }
}

#[cfg(test)]
#[path = "advert_tests.rs"]
mod tests;
