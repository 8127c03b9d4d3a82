//! The pending-request table and the visitor list (RFC 5944 3.7.1).
//!
//! A pending entry is made when a request is relayed and ends with the reply, an ICMP
//! error or a timeout. A visitor entry is made by an accepted reply and ends with an
//! accepted deregistration or its lifetime. The two are kept apart so that a pending
//! request never changes a current registration before its reply says so (3.7.2).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use mip_core::dataplane::Encapsulation;
use mip_core::time::Time;
use mip_core::wire::RegistrationFlags;
use serde::Serialize;

use crate::MacAddr;

/// How a visitor's packets reach the foreign agent for reverse tunnelling (RFC 3024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStyle {
    /// Sent natively with the home address as source; we pick them off the link.
    Direct,
    /// Encapsulated by the mobile node to the foreign agent.
    Encapsulating,
}

/// A relayed request waiting for its reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pending {
    /// As in the request; 0.0.0.0 when the node asks for one (RFC 2794).
    pub home_address: Ipv4Addr,
    pub nai: Option<Vec<u8>>,
    pub identification: u64,
    pub home_agent: Ipv4Addr,
    pub care_of_address: Ipv4Addr,
    pub flags: RegistrationFlags,
    pub requested_lifetime: u16,
    /// IP source and UDP source port of the request: the reply goes back to that port.
    pub source: SocketAddrV4,
    /// IP destination of the request: the reply's IP source (3.7.2.3).
    pub request_destination: Ipv4Addr,
    pub link_source: Option<MacAddr>,
    pub delivery: DeliveryStyle,
    pub relayed_at: Time,
    /// Code 78 when nothing came back by then (3.7.1).
    pub timeout_at: Time,
    /// The requested lifetime ran out first: dropped without a reply (3.7.2.2).
    pub expires_at: Option<Time>,
}

impl Pending {
    pub fn deadline(&self) -> Time {
        self.expires_at
            .map_or(self.timeout_at, |e| e.min(self.timeout_at))
    }

    /// Whether `low32` are the low-order 32 bits of our identification (3.7.3.1).
    pub fn matches_id(&self, reply_identification: u64) -> bool {
        (self.identification & 0xffff_ffff) == (reply_identification & 0xffff_ffff)
    }
}

/// A mobile node registered through us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visitor {
    pub home_address: Ipv4Addr,
    pub home_agent: Ipv4Addr,
    pub care_of_address: Ipv4Addr,
    pub link_address: Option<MacAddr>,
    pub source_port: u16,
    pub nai: Option<Vec<u8>>,
    pub flags: RegistrationFlags,
    pub identification: u64,
    pub requested_lifetime: u16,
    pub granted_lifetime: u16,
    pub registered_at: Time,
    pub expires: Time,
    pub delivery: DeliveryStyle,
}

impl Visitor {
    pub fn reverse_tunnel(&self) -> bool {
        self.flags.contains(RegistrationFlags::T)
    }

    /// The encapsulation the home agent uses towards us (and we use back, RFC 3024).
    pub fn encapsulation(&self) -> Encapsulation {
        encapsulation_of(self.flags)
    }

    pub fn remaining(&self, now: Time) -> Duration {
        self.expires.saturating_duration_since(now)
    }
}

/// M asks for minimal encapsulation, G for GRE, neither for IP in IP (RFC 5944 3.3).
pub fn encapsulation_of(flags: RegistrationFlags) -> Encapsulation {
    if flags.contains(RegistrationFlags::M) {
        Encapsulation::Minimal
    } else if flags.contains(RegistrationFlags::G) {
        Encapsulation::Gre
    } else {
        Encapsulation::IpInIp
    }
}

/// A visitor as the control socket shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VisitorSnapshot {
    pub home_address: Ipv4Addr,
    pub home_agent: Ipv4Addr,
    pub care_of_address: Ipv4Addr,
    /// `aa:bb:cc:dd:ee:ff`, or null when the request came without a link-layer source.
    pub link_address: Option<String>,
    pub source_port: u16,
    pub nai: Option<String>,
    pub lifetime_granted: u16,
    pub lifetime_remaining: u64,
    pub identification: String,
    pub reverse_tunnel: bool,
    pub encapsulation: &'static str,
    pub delivery: DeliveryStyle,
}

pub fn format_mac(mac: &MacAddr) -> String {
    mip_core::dataplane::ethernet::format_mac(mac)
}

impl Visitor {
    pub fn snapshot(&self, now: Time) -> VisitorSnapshot {
        VisitorSnapshot {
            home_address: self.home_address,
            home_agent: self.home_agent,
            care_of_address: self.care_of_address,
            link_address: self.link_address.as_ref().map(format_mac),
            source_port: self.source_port,
            nai: self
                .nai
                .as_ref()
                .map(|n| String::from_utf8_lossy(n).into_owned()),
            lifetime_granted: self.granted_lifetime,
            lifetime_remaining: self.remaining(now).as_secs(),
            identification: format!("{:#018x}", self.identification),
            reverse_tunnel: self.reverse_tunnel(),
            encapsulation: self.encapsulation().name(),
            delivery: self.delivery,
        }
    }
}

/// The visitor list, by home address.
#[derive(Debug, Default)]
pub(crate) struct VisitorList {
    by_home: HashMap<Ipv4Addr, Visitor>,
}

impl VisitorList {
    pub fn len(&self) -> usize {
        self.by_home.len()
    }

    pub fn get(&self, home: Ipv4Addr) -> Option<&Visitor> {
        self.by_home.get(&home)
    }

    pub fn contains(&self, home: Ipv4Addr) -> bool {
        self.by_home.contains_key(&home)
    }

    /// Inserts or replaces; returns the entry it replaced.
    pub fn upsert(&mut self, v: Visitor) -> Option<Visitor> {
        self.by_home.insert(v.home_address, v)
    }

    pub fn remove(&mut self, home: Ipv4Addr) -> Option<Visitor> {
        self.by_home.remove(&home)
    }

    /// Removes and returns every visitor whose lifetime ended at or before `now`.
    pub fn expire(&mut self, now: Time) -> Vec<Visitor> {
        let gone: Vec<Ipv4Addr> = self
            .by_home
            .values()
            .filter(|v| v.expires <= now)
            .map(|v| v.home_address)
            .collect();
        gone.into_iter()
            .filter_map(|h| self.by_home.remove(&h))
            .collect()
    }

    pub fn next_expiry(&self) -> Option<Time> {
        self.by_home.values().map(|v| v.expires).min()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Visitor> {
        self.by_home.values()
    }
}
