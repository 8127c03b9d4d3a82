//! Session Inter-Device mobility, the Agent's side (patent FIG. 1a; issue 4 items 3-6).
//!
//! The home agent is the patent's Agent. A Transferring Node (TN) is an ordinary mobile
//! node of the configuration whose home address is its own address on the home link. It
//! asks, under its own mobility security association, that its address be tunnelled to a
//! Target; the Target then renews under a temporary association keyed by the session key
//! and may hand the session on; the TN can stop the transfer at any time; every end wakes
//! the TN up. Formats: `docs/sid-formats.md`; processing rules: `RFC-NOTES.md, "SID — the Agent (home agent) side"`.
//!
//! Everything here is sans-IO and runs inside [`HomeAgent`](crate::HomeAgent):
//! - the binding is an ordinary entry of the binding list (TN address -> Target), so the
//!   data plane follows it from the usual [`HaEvent`](crate::HaEvent)s (proxy ARP,
//!   interception, tunnel, reverse tunnel when T);
//! - SID-only news comes out of [`HomeAgent::poll_sid_event`](crate::HomeAgent::poll_sid_event);
//! - a wake-up for the TN's link-layer address comes out of
//!   [`HomeAgent::poll_link_transmit`](crate::HomeAgent::poll_link_transmit), one for an
//!   interim address out of the ordinary `poll_transmit`.

mod agent;
pub mod keys;
mod state;
mod wake;

use std::net::Ipv4Addr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sid_ext::crypto::PrivateKey;

/// A wake-up to be sent as an Ethernet frame to `mac` on the home link, without consulting
/// ARP (which maps the TN's address to the Agent during the transfer); source the Agent's
/// address, port 434. The same type as the same-subnet Target's.
pub use sid_ext::wire::wake_up::LinkTransmit;
pub(crate) use state::SidState;

/// Longest transfer lifetime granted by default, seconds: short, because it is trust
/// delegated to another device; the Target renews as long as the session lasts.
pub const DEFAULT_MAX_TRANSFER_LIFETIME: u16 = 300;
/// First wake-up retransmission after 1 s, doubling (as RFC 5944 3.6.3 for requests).
pub const DEFAULT_WAKE_UP_INTERVAL: Duration = Duration::from_secs(1);
/// Wake-ups sent before giving up (1 + 2 + 4 + 8 s: the last goes 15 s after the end).
pub const DEFAULT_WAKE_UP_ATTEMPTS: u8 = 5;
/// SID events and link-layer transmits kept for a shell that does not poll them.
pub const MAX_QUEUED: usize = 1024;

/// The `[sid]` section, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidConfig {
    /// Serve SID requests. Off, SID CVSEs are CVSEs like any other: code 140.
    pub enabled: bool,
    /// Vendor/Org-ID of the SID CVSEs (RFC 5612 documentation number by default).
    pub org_id: u32,
    /// Cap of every lifetime granted to a transfer, renewal or further transfer.
    pub max_transfer_lifetime: u16,
    /// First wake-up retransmission interval; doubles after each try.
    pub wake_up_interval: Duration,
    /// Wake-ups sent in all before giving up.
    pub wake_up_attempts: u8,
    /// The Agent's X25519 key for session keys sealed with HPKE (algorithm 2); without
    /// it only algorithm 1 (key wrap under the sender's association) is accepted.
    pub private_key: Option<PrivateKey>,
}

impl Default for SidConfig {
    fn default() -> Self {
        SidConfig {
            enabled: true,
            org_id: sid_ext::wire::DEFAULT_ORG_ID,
            max_transfer_lifetime: DEFAULT_MAX_TRANSFER_LIFETIME,
            wake_up_interval: DEFAULT_WAKE_UP_INTERVAL,
            wake_up_attempts: DEFAULT_WAKE_UP_ATTEMPTS,
            private_key: None,
        }
    }
}

/// Why a transfer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferEnd {
    /// Its lifetime ran out.
    Expired,
    /// The Target renewed with lifetime 0.
    ZeroLifetime,
    /// The TN sent a stop-transfer demand.
    StopTransfer,
    /// The TN deregistered the binding with an ordinary request (lifetime 0).
    Deregistered,
    /// An administrator revoked it.
    Revoked,
    /// The TN started a new transfer or registered a care-of address of its own: the TN
    /// is awake and not at home, so no wake-up is sent.
    Superseded,
}

impl TransferEnd {
    /// The reason the wake-up carries; `None` when no wake-up is due.
    pub fn wake_up_reason(self) -> Option<sid_ext::wire::WakeUpReason> {
        use sid_ext::wire::WakeUpReason as W;
        match self {
            TransferEnd::Expired => Some(W::BindingExpired),
            TransferEnd::ZeroLifetime => Some(W::EndedByZeroLifetime),
            TransferEnd::StopTransfer | TransferEnd::Deregistered => Some(W::StopTransferDemand),
            TransferEnd::Revoked => Some(W::Revoked),
            TransferEnd::Superseded => None,
        }
    }
}

/// How the Target sends the session's return traffic (Transfer Flags T).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReversePath {
    /// Directly, with the TN's address as source.
    Direct,
    /// Reverse-tunnelled to the Agent (RFC 3024 style), for networks with ingress filtering.
    ReverseTunnel,
}

/// Where a wake-up goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "via")]
pub enum WakeUpRoute {
    /// As an Ethernet frame to the TN's stored MAC, bypassing ARP ([`LinkTransmit`]).
    LinkLayer {
        #[serde(with = "mac_text")]
        mac: [u8; 6],
    },
    /// As ordinary UDP to the TN's interim address.
    Interim { address: Ipv4Addr },
    /// No usable link-layer address (not Ethernet): ordinary UDP to the TN's address, as
    /// a last resort once the data plane stopped proxying it.
    HomeAddress,
}

/// News of SID transfers, besides the binding events the data plane follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum SidEvent {
    TransferStarted {
        transferring_node: Ipv4Addr,
        target: Ipv4Addr,
        lifetime: u16,
        session_spi: u32,
        further_transfer: bool,
        reverse_path: ReversePath,
        /// The TN's Ethernet address: the data plane's gratuitous ARP at the end must
        /// announce it (it is what the TN answers ARP with again).
        #[serde(with = "opt_mac_text")]
        link_layer_address: Option<[u8; 6]>,
        interim_address: Option<Ipv4Addr>,
    },
    TransferRenewed { transferring_node: Ipv4Addr, target: Ipv4Addr, lifetime: u16 },
    /// A further transfer moved the binding to a second Target.
    TransferMoved {
        transferring_node: Ipv4Addr,
        from: Ipv4Addr,
        to: Ipv4Addr,
        lifetime: u16,
        session_spi: u32,
        further_transfer: bool,
        reverse_path: ReversePath,
        /// Further transfers so far in this chain.
        hops: u32,
    },
    TransferEnded { transferring_node: Ipv4Addr, target: Ipv4Addr, reason: TransferEnd },
    /// A stop-transfer demand arrived when no transfer was running (accepted, no-op).
    StopWithoutTransfer { transferring_node: Ipv4Addr },
    /// The TN's link-layer address changed (a stop-transfer demand carried a new one).
    #[serde(rename = "link_layer_address_changed")]
    LinkLayerAddressChanged {
        transferring_node: Ipv4Addr,
        #[serde(with = "mac_text")]
        link_layer_address: [u8; 6],
    },
    WakeUpSent { transferring_node: Ipv4Addr, route: WakeUpRoute, attempt: u8, identification: u64 },
    WakeUpAcknowledged { transferring_node: Ipv4Addr, attempts: u8 },
    WakeUpAbandoned { transferring_node: Ipv4Addr, attempts: u8 },
}

/// What `ha-admin` shows of a transfer binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferSnapshot {
    pub transferring_node: Ipv4Addr,
    pub target: Ipv4Addr,
    /// F: the Target may transfer further.
    pub further_transfer: bool,
    pub reverse_path: ReversePath,
    pub session_spi: u32,
    /// Seconds since the TN started the transfer.
    pub age: u64,
    /// Renewals accepted from the current Target.
    pub renewals: u64,
    /// Further transfers so far.
    pub hops: u32,
    /// Earlier Targets of the chain, first first.
    #[serde(default)]
    pub previous_targets: Vec<Ipv4Addr>,
    #[serde(default)]
    pub link_layer_address: Option<String>,
    #[serde(default)]
    pub interim_address: Option<Ipv4Addr>,
}

/// `aa:bb:cc:dd:ee:ff` in JSON.
mod mac_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(mac: &[u8; 6], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&mip_core::dataplane::ethernet::format_mac(mac))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 6], D::Error> {
        let text = String::deserialize(d)?;
        super::parse_mac(&text).ok_or_else(|| serde::de::Error::custom("not a MAC address"))
    }
}

mod opt_mac_text {
    use serde::Serializer;

    pub fn serialize<S: Serializer>(mac: &Option<[u8; 6]>, s: S) -> Result<S::Ok, S::Error> {
        match mac {
            Some(m) => super::mac_text::serialize(m, s),
            None => s.serialize_none(),
        }
    }
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}
