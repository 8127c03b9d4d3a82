//! Data-plane counters: lock-free, shared by the packet threads and read by the
//! control socket.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use mip_core::dataplane::DataplaneError;
use serde::{Deserialize, Serialize};

use super::advert::AdvertStats;

/// Why the data plane dropped a packet. Each reason has its own counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// A packet (tunnel or intercepted) that does not parse, or whose inner packet does not.
    Malformed,
    /// Wrong minimal-encapsulation or GRE checksum.
    BadChecksum,
    /// GRE version not 0, routing/key/sequence bits, or a payload that is not IPv4.
    UnsupportedGre,
    /// An outer fragment (the kernel reassembles before raw sockets, so unexpected).
    OuterFragment,
    /// TTL would reach 0 (encapsulating) or is 0 / would reach 0 (forwarding after
    /// decapsulation).
    TtlExpired,
    /// RFC 2003 3.2: the packet's source is us or the tunnel exit.
    Loop,
    /// RFC 2004: minimal encapsulation cannot carry a fragment.
    FragmentNotAllowed,
    /// Reverse tunnel: the inner source is no home address with a binding (RFC 3024).
    NoBinding,
    /// Reverse tunnel: the outer source is not a registered care-of address of the
    /// inner source's home address (RFC 3024).
    UnregisteredCareOf,
    /// Reverse tunnel from a registered care-of address whose binding did not get T.
    ReverseTunnelNotGranted,
    /// A GSO super-packet of a kind we do not segment (UDP, IPv6).
    OffloadUnsupported,
    /// The kernel refused to send what we built.
    SendFailed,
}

impl DropReason {
    pub const ALL: [DropReason; 12] = [
        DropReason::Malformed,
        DropReason::BadChecksum,
        DropReason::UnsupportedGre,
        DropReason::OuterFragment,
        DropReason::TtlExpired,
        DropReason::Loop,
        DropReason::FragmentNotAllowed,
        DropReason::NoBinding,
        DropReason::UnregisteredCareOf,
        DropReason::ReverseTunnelNotGranted,
        DropReason::OffloadUnsupported,
        DropReason::SendFailed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::UnsupportedGre => "unsupported_gre",
            DropReason::OuterFragment => "outer_fragment",
            DropReason::TtlExpired => "ttl_expired",
            DropReason::Loop => "loop",
            DropReason::FragmentNotAllowed => "fragment_not_allowed",
            DropReason::NoBinding => "no_binding",
            DropReason::UnregisteredCareOf => "unregistered_care_of",
            DropReason::ReverseTunnelNotGranted => "reverse_tunnel_not_granted",
            DropReason::OffloadUnsupported => "offload_unsupported",
            DropReason::SendFailed => "send_failed",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }

    /// The counter a decapsulation error goes to.
    pub fn from_decap(e: &DataplaneError) -> Self {
        match e {
            DataplaneError::BadChecksum => DropReason::BadChecksum,
            DataplaneError::UnsupportedGre(_) | DataplaneError::GreProtocol(_) => DropReason::UnsupportedGre,
            DataplaneError::Fragment => DropReason::OuterFragment,
            DataplaneError::TtlExpired => DropReason::TtlExpired,
            _ => DropReason::Malformed,
        }
    }
}

/// Counters of the whole data plane.
#[derive(Debug, Default)]
pub struct DataplaneStats {
    pub frames: AtomicU64,
    pub arp_requests: AtomicU64,
    pub proxy_arp_replies: AtomicU64,
    pub gratuitous_arps: AtomicU64,
    pub macs_learned: AtomicU64,
    /// IPv4 packets to a bound home address taken off the home link.
    pub intercepted: AtomicU64,
    /// Packets for a node just home, relayed to its MAC (hand-back, see the engine).
    pub relayed_home: AtomicU64,
    /// Reverse-tunnelled packets accepted just after their binding ended.
    pub reverse_after_end: AtomicU64,
    /// Packets (fragments included) sent into tunnels, and their bytes (outer).
    pub tunnelled_packets: AtomicU64,
    pub tunnelled_bytes: AtomicU64,
    /// DF-clear packets too big for the tunnel, sent as several.
    pub fragmented: AtomicU64,
    pub icmp_fragmentation_needed: AtomicU64,
    pub icmp_time_exceeded: AtomicU64,
    /// ICMP Datagram Too Big from inside a tunnel that lowered its MTU (RFC 2003 5.1).
    pub tunnel_mtu_updates: AtomicU64,
    /// Reverse-tunnelled packets accepted and forwarded, and their bytes (outer).
    pub reverse_packets: AtomicU64,
    pub reverse_bytes: AtomicU64,
    /// TCP super-packets cut into segments, and partial checksums finished.
    pub segmented: AtomicU64,
    pub checksums_completed: AtomicU64,
    /// Agent Advertisements on the home link (RFC 5944 2.1-2.3), written by the
    /// advertisement thread from its [`AdvertStats`].
    pub advertisements_sent: AtomicU64,
    pub solicited_advertisements: AtomicU64,
    pub solicitations_received: AtomicU64,
    pub solicitations_answered: AtomicU64,
    pub solicitations_rate_limited: AtomicU64,
    pub solicitations_malformed: AtomicU64,
    /// UDP datagrams of the control plane sent as frames to a stored MAC, bypassing
    /// ARP (SID wake-ups), and those that could not be built or sent.
    pub link_frames_sent: AtomicU64,
    pub link_frames_failed: AtomicU64,
    drops: [AtomicU64; DropReason::ALL.len()],
}

pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

pub(crate) fn add(c: &AtomicU64, n: usize) {
    c.fetch_add(n as u64, Relaxed);
}

impl DataplaneStats {
    pub fn count_drop(&self, reason: DropReason) {
        if let Some(c) = self.drops.get(reason.index()) {
            bump(c);
        }
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops.get(reason.index()).map_or(0, |c| c.load(Relaxed))
    }

    /// Publishes the advertiser's counters (it has one owner, so they are stored).
    pub fn set_advertisements(&self, s: &AdvertStats) {
        self.advertisements_sent.store(s.advertisements_sent, Relaxed);
        self.solicited_advertisements.store(s.solicited_advertisements, Relaxed);
        self.solicitations_received.store(s.solicitations_received, Relaxed);
        self.solicitations_answered.store(s.solicitations_answered, Relaxed);
        self.solicitations_rate_limited.store(s.solicitations_rate_limited, Relaxed);
        self.solicitations_malformed.store(s.solicitations_malformed, Relaxed);
    }

    pub fn report(&self) -> DataplaneReport {
        let l = |c: &AtomicU64| c.load(Relaxed);
        DataplaneReport {
            frames: l(&self.frames),
            arp_requests: l(&self.arp_requests),
            proxy_arp_replies: l(&self.proxy_arp_replies),
            gratuitous_arps: l(&self.gratuitous_arps),
            macs_learned: l(&self.macs_learned),
            intercepted: l(&self.intercepted),
            relayed_home: l(&self.relayed_home),
            reverse_after_end: l(&self.reverse_after_end),
            tunnelled_packets: l(&self.tunnelled_packets),
            tunnelled_bytes: l(&self.tunnelled_bytes),
            fragmented: l(&self.fragmented),
            icmp_fragmentation_needed: l(&self.icmp_fragmentation_needed),
            icmp_time_exceeded: l(&self.icmp_time_exceeded),
            tunnel_mtu_updates: l(&self.tunnel_mtu_updates),
            reverse_packets: l(&self.reverse_packets),
            reverse_bytes: l(&self.reverse_bytes),
            segmented: l(&self.segmented),
            checksums_completed: l(&self.checksums_completed),
            advertisements_sent: l(&self.advertisements_sent),
            solicited_advertisements: l(&self.solicited_advertisements),
            solicitations_received: l(&self.solicitations_received),
            solicitations_answered: l(&self.solicitations_answered),
            solicitations_rate_limited: l(&self.solicitations_rate_limited),
            solicitations_malformed: l(&self.solicitations_malformed),
            link_frames_sent: l(&self.link_frames_sent),
            link_frames_failed: l(&self.link_frames_failed),
            dropped: DropReason::ALL
                .iter()
                .map(|r| (r.name().to_string(), self.dropped(*r)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        }
    }
}

/// The data plane's counters as the control protocol carries them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataplaneReport {
    pub frames: u64,
    pub arp_requests: u64,
    pub proxy_arp_replies: u64,
    pub gratuitous_arps: u64,
    pub macs_learned: u64,
    pub intercepted: u64,
    #[serde(default)]
    pub relayed_home: u64,
    #[serde(default)]
    pub reverse_after_end: u64,
    pub tunnelled_packets: u64,
    pub tunnelled_bytes: u64,
    pub fragmented: u64,
    pub icmp_fragmentation_needed: u64,
    pub icmp_time_exceeded: u64,
    #[serde(default)]
    pub tunnel_mtu_updates: u64,
    pub reverse_packets: u64,
    pub reverse_bytes: u64,
    pub segmented: u64,
    pub checksums_completed: u64,
    /// Agent Advertisements sent on the home link, of which answers to solicitations.
    #[serde(default)]
    pub advertisements_sent: u64,
    #[serde(default)]
    pub solicited_advertisements: u64,
    /// Agent Solicitations read, answered, not answered because of a rate limit, and
    /// refused (checksum, code, length, TTL not 1).
    #[serde(default)]
    pub solicitations_received: u64,
    #[serde(default)]
    pub solicitations_answered: u64,
    #[serde(default)]
    pub solicitations_rate_limited: u64,
    #[serde(default)]
    pub solicitations_malformed: u64,
    /// SID wake-ups sent as frames to the Transferring Node's MAC (ARP bypassed), and
    /// those that could not be built or sent.
    #[serde(default)]
    pub link_frames_sent: u64,
    #[serde(default)]
    pub link_frames_failed: u64,
    /// Drops by reason (`malformed`, `unregistered_care_of`, ...); zero counts left out.
    pub dropped: BTreeMap<String, u64>,
}

impl DataplaneReport {
    pub fn dropped(&self, reason: &str) -> u64 {
        self.dropped.get(reason).copied().unwrap_or(0)
    }

    pub fn total_dropped(&self) -> u64 {
        self.dropped.values().sum()
    }
}

/// Per-binding traffic: out = encapsulated towards the care-of address, in = reverse
/// tunnelled from it. Bytes are outer (on-the-wire IP) bytes.
#[derive(Debug, Default)]
pub struct BindingCounters {
    pub packets_out: AtomicU64,
    pub bytes_out: AtomicU64,
    pub packets_in: AtomicU64,
    pub bytes_in: AtomicU64,
}

impl BindingCounters {
    pub fn snapshot(&self) -> TrafficCounters {
        TrafficCounters {
            packets_out: self.packets_out.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            packets_in: self.packets_in.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficCounters {
    pub packets_out: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub bytes_in: u64,
}
