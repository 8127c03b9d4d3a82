//! Agent Advertisements and answers to Agent Solicitations (RFC 5944 section 2, with the
//! timing rules of RFC 1256 section 5.1), sans-IO.

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::Duration;

use mip_core::time::Time;
use mip_core::wire::{AgentAdvertisementRepr, AgentSolicitationRepr, MobilityAgentExt};
use rand::rngs::StdRng;
use rand::Rng;
use tracing::debug;

use crate::config::{
    ForeignAgentConfig, SolicitedReply, MAX_INITIAL_ADVERTISEMENTS, MAX_INITIAL_ADVERT_INTERVAL,
};
use crate::stats::{DiscardReason, FaStats};
use crate::MacAddr;

/// Most solicitors remembered for unicast rate limiting; past it the oldest are forgotten.
const MAX_SOLICITORS: usize = 1024;

/// An Agent Advertisement to send: the ICMP message (checksum included) and where to.
/// The shell sends it with IP TTL 1 (RFC 5944 2.1) from the care-of address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertisement {
    /// 224.0.0.1 / 255.255.255.255, or the solicitor's address for a unicast answer.
    pub destination: Ipv4Addr,
    /// For a unicast answer: the solicitation's link-layer source (RFC 5944 2.1 MUST).
    /// `None` for multicast and broadcast.
    pub link_destination: Option<MacAddr>,
    pub icmp: Vec<u8>,
    /// Sent because of a solicitation.
    pub solicited: bool,
    pub sequence: u16,
}

/// What the advertiser borrows from the foreign agent for one call.
pub(crate) struct Env<'a> {
    pub config: &'a ForeignAgentConfig,
    pub rng: &'a mut StdRng,
    pub stats: &'a mut FaStats,
}

#[derive(Debug)]
pub(crate) struct Advertiser {
    /// The sequence number of the last advertisement sent, `None` before the first.
    last_sequence: Option<u16>,
    /// Multicast advertisements sent so far (for the initial interval cap).
    multicast_sent: u32,
    next_periodic: Option<Time>,
    last_multicast: Option<Time>,
    /// A multicast answer to a solicitation, due at this time.
    solicited_multicast_due: Option<Time>,
    last_unicast: HashMap<(Ipv4Addr, Option<MacAddr>), Time>,
    queue: VecDeque<Advertisement>,
}

/// RFC 5944 2.3.2: 0 first, then one more each time, with 0xffff followed by 256.
pub fn next_sequence(last: Option<u16>) -> u16 {
    match last {
        None => 0,
        Some(0xffff) => 256,
        Some(n) => n + 1,
    }
}

fn random_between(rng: &mut StdRng, low: Duration, high: Duration) -> Duration {
    let (lo, hi) = (low.as_micros() as u64, high.as_micros() as u64);
    if hi <= lo {
        return low;
    }
    Duration::from_micros(rng.gen_range(lo..=hi))
}

impl Advertiser {
    /// The first advertisement goes out at `now` when unsolicited ones are enabled.
    pub(crate) fn new(config: &ForeignAgentConfig, now: Time) -> Self {
        Advertiser {
            last_sequence: None,
            multicast_sent: 0,
            next_periodic: config.advertisement.unsolicited.then_some(now),
            last_multicast: None,
            solicited_multicast_due: None,
            last_unicast: HashMap::new(),
            queue: VecDeque::new(),
        }
    }

    pub(crate) fn poll(&mut self) -> Option<Advertisement> {
        self.queue.pop_front()
    }

    pub(crate) fn next_deadline(&self) -> Option<Time> {
        match (self.next_periodic, self.solicited_multicast_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The sequence number the next advertisement will carry.
    pub(crate) fn upcoming_sequence(&self) -> u16 {
        next_sequence(self.last_sequence)
    }

    pub(crate) fn handle_timeout(&mut self, env: Env<'_>, now: Time) {
        let Env { config, rng, stats } = env;
        let periodic_due = self.next_periodic.is_some_and(|t| t <= now);
        let solicited_due = self.solicited_multicast_due.is_some_and(|t| t <= now);
        if !periodic_due && !solicited_due {
            return;
        }
        let adv = &config.advertisement;
        // RFC 5944 2.3: never two multicast advertisements closer than the floor.
        if let Some(floor) = self.last_multicast.map(|t| t + adv.min_multicast_gap) {
            if now < floor {
                if periodic_due {
                    self.next_periodic = Some(floor);
                }
                if solicited_due {
                    self.solicited_multicast_due = Some(floor);
                }
                return;
            }
        }
        self.emit(
            config,
            adv.destination,
            None,
            solicited_due && !periodic_due,
        );
        if solicited_due && !periodic_due {
            stats.advertisements_solicited_multicast += 1;
        } else {
            stats.advertisements_unsolicited += 1;
        }
        self.solicited_multicast_due = None;
        self.last_multicast = Some(now);
        self.multicast_sent = self.multicast_sent.saturating_add(1);
        // RFC 1256 5.1: every multicast advertisement resets the interval timer.
        self.next_periodic = adv.unsolicited.then(|| {
            let mut gap = random_between(rng, adv.min_interval, adv.max_interval);
            if self.multicast_sent <= MAX_INITIAL_ADVERTISEMENTS {
                gap = gap.min(MAX_INITIAL_ADVERT_INTERVAL);
            }
            now + gap
        });
        // Forget solicitors that may be answered again anyway.
        let keep = adv.solicited_unicast_gap;
        self.last_unicast
            .retain(|_, t| now.saturating_duration_since(*t) < keep);
    }

    /// An Agent Solicitation from `source` (IP) and `link_source` (its frame's source).
    pub(crate) fn handle_solicitation(
        &mut self,
        env: Env<'_>,
        now: Time,
        source: Ipv4Addr,
        link_source: Option<MacAddr>,
        icmp: &[u8],
    ) {
        let Env { config, rng, stats } = env;
        if let Err(e) = AgentSolicitationRepr::parse(icmp) {
            debug!(%source, error = %e, "malformed agent solicitation dropped");
            stats.discard(DiscardReason::MalformedSolicitation);
            return;
        }
        stats.solicitations += 1;
        let adv = &config.advertisement;
        // RFC 1256 5.1: unicast only to a non-zero source; RFC 5944 2.3: the source need
        // not be a neighbour (it is a home address from elsewhere).
        let unicast = adv.solicited_reply == SolicitedReply::Unicast
            && !source.is_unspecified()
            && !source.is_broadcast()
            && !source.is_multicast();
        if unicast {
            let key = (source, link_source);
            if let Some(last) = self.last_unicast.get(&key) {
                if now.saturating_duration_since(*last) < adv.solicited_unicast_gap {
                    stats.discard(DiscardReason::SolicitationRateLimited);
                    return;
                }
            }
            if self.last_unicast.len() >= MAX_SOLICITORS {
                self.last_unicast.clear();
            }
            self.last_unicast.insert(key, now);
            self.emit(config, source, link_source, true);
            stats.advertisements_solicited_unicast += 1;
            return;
        }
        // RFC 1256 5.1: a multicast answer MUST be delayed, so that several solicitations
        // close together get one advertisement.
        if self.solicited_multicast_due.is_none() {
            let delay = random_between(rng, Duration::ZERO, adv.max_response_delay);
            self.solicited_multicast_due = Some(now + delay);
        } else {
            stats.discard(DiscardReason::SolicitationRateLimited);
        }
    }

    fn emit(
        &mut self,
        config: &ForeignAgentConfig,
        destination: Ipv4Addr,
        link_destination: Option<MacAddr>,
        solicited: bool,
    ) {
        let sequence = next_sequence(self.last_sequence);
        let repr = advertisement_repr(config, sequence);
        let mut icmp = vec![0u8; repr.buffer_len()];
        match repr.emit(&mut icmp) {
            Ok(len) => icmp.truncate(len),
            Err(e) => {
                // Only a configuration the file checks refuse could get here.
                debug!(error = %e, "cannot build the agent advertisement");
                return;
            }
        }
        self.last_sequence = Some(sequence);
        self.queue.push_back(Advertisement {
            destination,
            link_destination,
            icmp,
            solicited,
            sequence,
        });
    }
}

/// The advertisement the configuration describes, with sequence number `sequence`.
pub fn advertisement_repr(config: &ForeignAgentConfig, sequence: u16) -> AgentAdvertisementRepr {
    let adv = &config.advertisement;
    let router_addresses: Vec<(Ipv4Addr, i32)> = adv
        .router_preference
        .map(|p| vec![(config.care_of_address, p)])
        .unwrap_or_default();
    let prefix_lengths = adv
        .prefix_lengths
        .then(|| vec![config.prefix_len; router_addresses.len()]);
    AgentAdvertisementRepr {
        code: if adv.routes_common_traffic { 0 } else { 16 },
        lifetime: adv.lifetime,
        router_addresses,
        mobility: MobilityAgentExt {
            sequence,
            registration_lifetime: config.max_lifetime,
            flags: config.agent_flags(),
            care_of_addresses: vec![config.care_of_address],
        },
        prefix_lengths,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sequence_rolls_over_to_256_not_0() {
        assert_eq!(next_sequence(None), 0);
        assert_eq!(next_sequence(Some(0)), 1);
        assert_eq!(next_sequence(Some(0xfffe)), 0xffff);
        assert_eq!(next_sequence(Some(0xffff)), 256);
    }
}
