//! The data plane's view of the binding list, kept from [`HaEvent`]s, plus the link
//! addresses learnt for mobile nodes while they were at home.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mip_core::dataplane::ethernet::MacAddr;
use mip_core::dataplane::Encapsulation;

use super::stats::BindingCounters;
use crate::bindings::TunnelKind;
use crate::home_agent::HaEvent;

/// One care-of address of a home address.
#[derive(Debug, Clone)]
pub struct Tunnel {
    pub care_of: Ipv4Addr,
    pub kind: Encapsulation,
    /// T granted: reverse-tunnelled packets are accepted from `care_of` (RFC 3024).
    pub reverse: bool,
    pub counters: Arc<BindingCounters>,
}

/// What an event asks of the link: a gratuitous ARP for `ip` at `mac` (`None`: the
/// home agent's own MAC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announce {
    /// The node left home: announce the home agent's MAC (RFC 5944 4.6).
    Away { ip: Ipv4Addr },
    /// The node is home again and its MAC is known: announce it.
    Home { ip: Ipv4Addr, mac: MacAddr },
    /// The node is home again but we never learnt its MAC: proxying stops, and the
    /// node's own gratuitous ARP (which RFC 5944 4.6 requires before it deregisters)
    /// is what fixes the caches.
    HomeMacUnknown { ip: Ipv4Addr },
}

#[derive(Debug, Default)]
pub struct Table {
    homes: HashMap<Ipv4Addr, Vec<Tunnel>>,
    /// Home addresses the home agent serves: the only ones whose MAC is learnt.
    configured: HashSet<Ipv4Addr>,
    macs: HashMap<Ipv4Addr, MacAddr>,
    /// RFC 2003 5.1 soft state: the MTU learnt for the path to a care-of address from
    /// ICMP Datagram Too Big inside the tunnel, and when.
    path_mtus: HashMap<Ipv4Addr, (u16, Instant)>,
    /// Nodes whose last binding ended: their MAC, and until when packets still sent to
    /// us for them are relayed to it.
    returning: HashMap<Ipv4Addr, (MacAddr, Instant)>,
    /// Reverse-tunnelling bindings that ended (home, care-of): until when packets from
    /// that care-of address are still accepted (see [`REVERSE_GRACE`]).
    ended_reverse: HashMap<(Ipv4Addr, Ipv4Addr), Instant>,
}

/// How long after a reverse-tunnelling binding ends (expired, deregistered, or moved to
/// another care-of address by a SID further transfer) packets its care-of address sent
/// are still accepted: those already on their way when the binding changed. Without it
/// the answers a Target sends in the last moment of a transfer are lost.
pub const REVERSE_GRACE: Duration = Duration::from_secs(2);

/// How long after a node's last binding ends packets still arriving for it are relayed
/// to its MAC: long enough for every neighbour to take one of the gratuitous ARPs (sent
/// `gratuitous_arp_count` times) or to re-resolve the address when its entry goes stale.
pub const HANDBACK_RELAY: Duration = Duration::from_secs(10);

/// How long a learnt tunnel MTU is believed before the configured one is tried again
/// (RFC 1191 5 suggests 10 minutes).
pub const PATH_MTU_AGE: Duration = Duration::from_secs(600);

pub fn encapsulation(kind: TunnelKind) -> Encapsulation {
    match kind {
        TunnelKind::IpInIp => Encapsulation::IpInIp,
        TunnelKind::Minimal => Encapsulation::Minimal,
        TunnelKind::Gre => Encapsulation::Gre,
    }
}

impl Table {
    pub fn new(configured: impl IntoIterator<Item = Ipv4Addr>) -> Self {
        Table { configured: configured.into_iter().collect(), ..Table::default() }
    }

    pub fn tunnels(&self, home: Ipv4Addr) -> Option<&[Tunnel]> {
        self.homes.get(&home).map(Vec::as_slice)
    }

    pub fn is_bound(&self, home: Ipv4Addr) -> bool {
        self.homes.contains_key(&home)
    }

    pub fn is_configured(&self, home: Ipv4Addr) -> bool {
        self.configured.contains(&home)
    }

    pub fn mac(&self, home: Ipv4Addr) -> Option<MacAddr> {
        self.macs.get(&home).copied()
    }

    /// The MAC to relay a packet for `home` to at `now`: only while it has no binding
    /// and its last one ended less than [`HANDBACK_RELAY`] ago.
    pub fn relay_mac(&self, home: Ipv4Addr, now: Instant) -> Option<MacAddr> {
        self.returning.get(&home).filter(|(_, until)| now < *until).map(|(mac, _)| *mac)
    }

    /// Records `mac` for a configured home address; true when it is new or changed.
    pub fn learn(&mut self, home: Ipv4Addr, mac: MacAddr) -> bool {
        if !self.configured.contains(&home) {
            return false;
        }
        self.macs.insert(home, mac) != Some(mac)
    }

    /// The tunnel MTU towards `care_of` at `now`: the learnt one while fresh.
    pub fn path_mtu(&self, care_of: Ipv4Addr, now: Instant) -> Option<u16> {
        self.path_mtus
            .get(&care_of)
            .filter(|(_, at)| now.saturating_duration_since(*at) < PATH_MTU_AGE)
            .map(|(mtu, _)| *mtu)
    }

    /// Records an MTU reported from inside the tunnel to `care_of`; true when it lowers
    /// what we use. Only care-of addresses with a binding are remembered.
    pub fn learn_path_mtu(&mut self, care_of: Ipv4Addr, mtu: u16, now: Instant) -> bool {
        if !self.homes.values().flatten().any(|t| t.care_of == care_of) {
            return false;
        }
        if self.path_mtu(care_of, now).is_some_and(|m| m <= mtu) {
            return false;
        }
        self.path_mtus.insert(care_of, (mtu, now));
        true
    }

    pub fn counters(&self, home: Ipv4Addr, care_of: Ipv4Addr) -> Option<&BindingCounters> {
        self.tunnels(home)?.iter().find(|t| t.care_of == care_of).map(|t| &*t.counters)
    }

    fn upsert(&mut self, home: Ipv4Addr, care_of: Ipv4Addr, kind: TunnelKind, reverse: bool) {
        let list = self.homes.entry(home).or_default();
        let kind = encapsulation(kind);
        if let Some(t) = list.iter_mut().find(|t| t.care_of == care_of) {
            t.kind = kind;
            t.reverse = reverse;
        } else {
            list.push(Tunnel { care_of, kind, reverse, counters: Arc::default() });
        }
    }

    /// True while packets reverse-tunnelled from `care_of` for `home` are accepted after
    /// the binding ended.
    pub fn in_reverse_grace(&self, home: Ipv4Addr, care_of: Ipv4Addr, now: Instant) -> bool {
        self.ended_reverse.get(&(home, care_of)).is_some_and(|until| now < *until)
    }

    fn remove(&mut self, home: Ipv4Addr, care_of: Ipv4Addr) -> bool {
        let Some(list) = self.homes.get_mut(&home) else { return false };
        if list.iter().any(|t| t.care_of == care_of && t.reverse) {
            let now = Instant::now();
            // Bounded by the bindings that ended within the grace.
            self.ended_reverse.retain(|_, until| now < *until);
            self.ended_reverse.insert((home, care_of), now + REVERSE_GRACE);
        }
        list.retain(|t| t.care_of != care_of);
        if list.is_empty() {
            self.homes.remove(&home);
            true
        } else {
            false
        }
    }

    /// Applies one event; returns the gratuitous ARP it calls for, if any.
    pub fn apply(&mut self, event: &HaEvent) -> Option<Announce> {
        match *event {
            HaEvent::BindingAdded { home_address, care_of_address, tunnel, reverse_tunnel, .. }
            | HaEvent::BindingRefreshed { home_address, care_of_address, tunnel, reverse_tunnel, .. } => {
                let was_bound = self.is_bound(home_address);
                self.returning.remove(&home_address);
                self.upsert(home_address, care_of_address, tunnel, reverse_tunnel);
                // Keyed on our own table rather than `first_for_home`, so that a data
                // plane started late still announces.
                (!was_bound).then_some(Announce::Away { ip: home_address })
            }
            HaEvent::BindingRemoved { home_address, care_of_address, .. }
            | HaEvent::BindingExpired { home_address, care_of_address, .. } => {
                if !self.remove(home_address, care_of_address) {
                    return None;
                }
                Some(match self.mac(home_address) {
                    Some(mac) => {
                        self.returning.insert(home_address, (mac, Instant::now() + HANDBACK_RELAY));
                        Announce::Home { ip: home_address, mac }
                    }
                    None => Announce::HomeMacUnknown { ip: home_address },
                })
            }
        }
    }

    /// `(home, care-of)` of every tunnel, for tests and logs.
    pub fn entries(&self) -> impl Iterator<Item = (Ipv4Addr, &Tunnel)> {
        self.homes.iter().flat_map(|(h, l)| l.iter().map(move |t| (*h, t)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::home_agent::RemovalReason;

    const HOME: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
    const C1: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
    const C2: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 100);
    const MAC: MacAddr = [2, 0, 0, 0, 0, 10];

    fn added(coa: Ipv4Addr, tunnel: TunnelKind) -> HaEvent {
        HaEvent::BindingAdded {
            home_address: HOME,
            care_of_address: coa,
            lifetime: 60,
            tunnel,
            reverse_tunnel: true,
            first_for_home: true,
        }
    }

    #[test]
    fn first_binding_announces_away_last_removal_announces_home() {
        let mut t = Table::new([HOME]);
        assert!(t.learn(HOME, MAC));
        assert!(!t.learn(HOME, MAC));
        assert!(!t.learn(Ipv4Addr::new(198, 18, 0, 99), MAC), "not a configured home");
        assert_eq!(t.apply(&added(C1, TunnelKind::IpInIp)), Some(Announce::Away { ip: HOME }));
        assert_eq!(t.apply(&added(C2, TunnelKind::Gre)), None);
        assert_eq!(t.tunnels(HOME).unwrap().len(), 2);
        let refreshed = HaEvent::BindingRefreshed {
            home_address: HOME,
            care_of_address: C1,
            lifetime: 60,
            tunnel: TunnelKind::Minimal,
            reverse_tunnel: false,
        };
        assert_eq!(t.apply(&refreshed), None);
        let c1 = &t.tunnels(HOME).unwrap()[0];
        assert_eq!((c1.kind, c1.reverse), (Encapsulation::Minimal, false));
        let gone = |coa| HaEvent::BindingRemoved {
            home_address: HOME,
            care_of_address: coa,
            reason: RemovalReason::Deregistered,
            last_for_home: false,
        };
        assert_eq!(t.apply(&gone(C1)), None);
        assert_eq!(t.apply(&gone(C2)), Some(Announce::Home { ip: HOME, mac: MAC }));
        assert!(!t.is_bound(HOME));
        assert_eq!(t.apply(&gone(C2)), None, "already gone");
    }

    #[test]
    fn path_mtu_is_learnt_for_bound_care_of_addresses_and_ages_out() {
        let mut t = Table::new([HOME]);
        let now = Instant::now();
        assert!(!t.learn_path_mtu(C1, 1400, now), "no binding to C1 yet");
        t.apply(&added(C1, TunnelKind::IpInIp));
        assert!(t.learn_path_mtu(C1, 1400, now));
        assert!(!t.learn_path_mtu(C1, 1450, now), "never raised by a report");
        assert!(t.learn_path_mtu(C1, 1300, now));
        assert_eq!(t.path_mtu(C1, now), Some(1300));
        assert_eq!(t.path_mtu(C1, now + PATH_MTU_AGE), None);
    }

    #[test]
    fn unknown_mac_on_return_only_stops_proxying() {
        let mut t = Table::new([HOME]);
        t.apply(&added(C1, TunnelKind::IpInIp));
        let expired = HaEvent::BindingExpired { home_address: HOME, care_of_address: C1, last_for_home: true };
        assert_eq!(t.apply(&expired), Some(Announce::HomeMacUnknown { ip: HOME }));
        assert!(!t.is_bound(HOME));
    }
}
