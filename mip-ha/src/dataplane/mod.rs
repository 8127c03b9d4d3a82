//! The home agent's data plane (RFC 5944 4.2.3, 4.3, 4.6; RFC 2003, 2004, 2784, 3024).
//!
//! [`engine`] decides what happens to each packet, without sockets; [`linux`] is the
//! thin shell: an AF_PACKET socket on the home interface (proxy and gratuitous ARP,
//! interception), raw IPv4 sockets for tunnel protocols 4, 47 and 55 (reverse tunnels)
//! and one IP_HDRINCL raw socket to send. The binding state is a [`table::Table`] behind
//! an `RwLock`, updated by the control plane from [`HaEvent`](crate::HaEvent)s; counters
//! are atomics read by the control socket. [`advert`] decides the Agent Advertisements
//! sent on the home link (RFC 5944 2.1-2.3); the shell sends them from a raw ICMP socket.

pub mod advert;
pub mod engine;
pub mod linux;
pub mod stats;
pub mod table;

pub use advert::{AdvertConfig, AdvertStats, Advertiser};
pub use linux::{Dataplane, DataplaneError};
pub use stats::{DataplaneReport, DataplaneStats, DropReason, TrafficCounters};
pub use table::{Announce, Table};

/// The `[home_agent]` keys that switch the data plane on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataplaneConfig {
    /// The interface on the home link (`home_interface`).
    pub interface: String,
    /// Largest packet sent into a tunnel (`tunnel_mtu`, default 1500).
    pub tunnel_mtu: u16,
    /// Gratuitous ARPs per announcement (`gratuitous_arp_count`, default 3, RFC 5944
    /// 4.6: "retransmitted a small number of times").
    pub gratuitous_arp_count: u8,
    /// Agent Advertisements on the home interface (`advertise`,
    /// `advertisement_interval_ms`, `advertisement_lifetime`,
    /// `advertisement_prefix_lengths`). Solicitations are answered even when periodic
    /// advertisements are off.
    pub advertisement: AdvertConfig,
}

pub const DEFAULT_TUNNEL_MTU: u16 = 1500;
pub const DEFAULT_GRATUITOUS_ARP_COUNT: u8 = 3;
/// Spacing of gratuitous ARP retransmissions.
pub const GRATUITOUS_ARP_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);
