//! The mobility binding list (RFC 5944 section 3.8.1): per home address, one entry
//! per care-of address, each with its own expiry.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use mip_core::time::Time;
use mip_core::wire::RegistrationFlags;
use serde::Serialize;

/// How packets for a binding are to be tunnelled, from the flags the home agent granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TunnelKind {
    /// IP in IP (RFC 2003), the default.
    IpInIp,
    /// Minimal encapsulation (RFC 2004), the M bit.
    Minimal,
    /// GRE (RFC 2784), the G bit.
    Gre,
}

impl TunnelKind {
    pub fn from_flags(flags: RegistrationFlags) -> Self {
        if flags.contains(RegistrationFlags::M) {
            TunnelKind::Minimal
        } else if flags.contains(RegistrationFlags::G) {
            TunnelKind::Gre
        } else {
            TunnelKind::IpInIp
        }
    }
}

/// One mobility binding: a home address reachable at a care-of address until `expires`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub home_address: Ipv4Addr,
    pub care_of_address: Ipv4Addr,
    /// The Identification of the Registration Reply that accepted it (RFC 5944 3.8.1).
    pub reply_identification: u64,
    /// The Identification of the Registration Request that created it, to spot duplicates.
    pub request_identification: u64,
    pub flags: RegistrationFlags,
    pub granted_lifetime: u16,
    pub registered_at: Time,
    pub expires: Time,
    /// Where the accepted request came from (the mobile node, or a foreign agent).
    pub request_source: SocketAddrV4,
    /// Index of the mobile node in the configuration.
    pub mobile_node: usize,
}

impl Binding {
    pub fn remaining(&self, now: Time) -> Duration {
        self.expires.saturating_duration_since(now)
    }
}

/// What the control socket and `ha-admin` show of a binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BindingSnapshot {
    pub home_address: Ipv4Addr,
    pub care_of_address: Ipv4Addr,
    pub nai: Option<String>,
    pub lifetime_granted: u16,
    pub lifetime_remaining: u64,
    pub identification: String,
    pub flags: String,
    pub tunnel: TunnelKind,
    pub reverse_tunnel: bool,
    pub request_source: SocketAddrV4,
    /// Present when the binding is a SID transfer (home = the Transferring Node,
    /// care-of = the Target).
    pub transfer: Option<crate::sid::TransferSnapshot>,
}

/// The binding list. Small and ordered: `ha-admin` output is sorted for free, and the
/// home agent serves at most a configured number of bindings.
#[derive(Debug, Default)]
pub struct BindingTable {
    by_home: BTreeMap<Ipv4Addr, Vec<Binding>>,
    count: usize,
}

impl BindingTable {
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn for_home(&self, home: Ipv4Addr) -> &[Binding] {
        self.by_home.get(&home).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn find(&self, home: Ipv4Addr, care_of: Ipv4Addr) -> Option<&Binding> {
        self.for_home(home).iter().find(|b| b.care_of_address == care_of)
    }

    /// Inserts or replaces the entry for (home, care-of). Returns true when it was new.
    pub fn upsert(&mut self, binding: Binding) -> bool {
        let list = self.by_home.entry(binding.home_address).or_default();
        if let Some(slot) = list.iter_mut().find(|b| b.care_of_address == binding.care_of_address) {
            *slot = binding;
            false
        } else {
            list.push(binding);
            self.count += 1;
            true
        }
    }

    /// Removes one entry.
    pub fn remove(&mut self, home: Ipv4Addr, care_of: Ipv4Addr) -> Option<Binding> {
        let list = self.by_home.get_mut(&home)?;
        let pos = list.iter().position(|b| b.care_of_address == care_of)?;
        let removed = list.remove(pos);
        self.count -= 1;
        if list.is_empty() {
            self.by_home.remove(&home);
        }
        Some(removed)
    }

    /// Removes every entry of a home address.
    pub fn remove_home(&mut self, home: Ipv4Addr) -> Vec<Binding> {
        let removed = self.by_home.remove(&home).unwrap_or_default();
        self.count -= removed.len();
        removed
    }

    /// Removes every entry of a home address except the one for `keep`.
    pub fn remove_others(&mut self, home: Ipv4Addr, keep: Ipv4Addr) -> Vec<Binding> {
        let Some(list) = self.by_home.get_mut(&home) else {
            return Vec::new();
        };
        let (kept, removed): (Vec<_>, Vec<_>) =
            list.drain(..).partition(|b| b.care_of_address == keep);
        *list = kept;
        self.count -= removed.len();
        if list.is_empty() {
            self.by_home.remove(&home);
        }
        removed
    }

    /// Removes and returns every entry whose lifetime has run out at `now`.
    pub fn expire(&mut self, now: Time) -> Vec<Binding> {
        let mut expired = Vec::new();
        self.by_home.retain(|_, list| {
            list.retain(|b| {
                if b.expires <= now {
                    expired.push(b.clone());
                    false
                } else {
                    true
                }
            });
            !list.is_empty()
        });
        self.count -= expired.len();
        expired
    }

    /// The earliest expiry, the home agent's next deadline.
    pub fn next_expiry(&self) -> Option<Time> {
        self.by_home.values().flatten().map(|b| b.expires).min()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Binding> {
        self.by_home.values().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(home: [u8; 4], coa: [u8; 4], expires: u64) -> Binding {
        Binding {
            home_address: home.into(),
            care_of_address: coa.into(),
            reply_identification: 1,
            request_identification: 1,
            flags: RegistrationFlags::default(),
            granted_lifetime: 10,
            registered_at: Time::from_secs(0),
            expires: Time::from_secs(expires),
            request_source: SocketAddrV4::new(coa.into(), 434),
            mobile_node: 0,
        }
    }

    #[test]
    fn upsert_counts_new_entries_only() {
        let mut t = BindingTable::default();
        assert!(t.upsert(binding([198, 18, 0, 10], [198, 19, 1, 2], 10)));
        assert!(!t.upsert(binding([198, 18, 0, 10], [198, 19, 1, 2], 20)));
        assert!(t.upsert(binding([198, 18, 0, 10], [198, 19, 2, 2], 30)));
        assert_eq!(t.len(), 2);
        assert_eq!(t.next_expiry(), Some(Time::from_secs(20)));
    }

    #[test]
    fn expire_removes_exactly_the_due_entries() {
        let mut t = BindingTable::default();
        t.upsert(binding([198, 18, 0, 10], [198, 19, 1, 2], 10));
        t.upsert(binding([198, 18, 0, 11], [198, 19, 1, 3], 20));
        let gone = t.expire(Time::from_secs(10));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].home_address, Ipv4Addr::new(198, 18, 0, 10));
        assert_eq!(t.len(), 1);
        assert!(t.for_home(Ipv4Addr::new(198, 18, 0, 10)).is_empty());
    }

    #[test]
    fn remove_others_keeps_one_care_of_address() {
        let mut t = BindingTable::default();
        t.upsert(binding([198, 18, 0, 10], [198, 19, 1, 2], 10));
        t.upsert(binding([198, 18, 0, 10], [198, 19, 2, 2], 10));
        t.upsert(binding([198, 18, 0, 10], [198, 19, 3, 2], 10));
        let removed = t.remove_others([198, 18, 0, 10].into(), [198, 19, 2, 2].into());
        assert_eq!(removed.len(), 2);
        assert_eq!(t.len(), 1);
        assert!(t.find([198, 18, 0, 10].into(), [198, 19, 2, 2].into()).is_some());
    }
}
