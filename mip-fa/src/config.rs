//! What the foreign agent state machine runs on. The TOML file that fills it is read in
//! [`crate::file`]; this module has no I/O.

use std::net::Ipv4Addr;
use std::time::Duration;

use mip_core::auth::SecurityAssociation;
use mip_core::wire::AgentFlags;

/// RFC 1256 6: a router's first advertisements come at most this far apart.
pub const MAX_INITIAL_ADVERT_INTERVAL: Duration = Duration::from_secs(16);
/// RFC 1256 6: how many advertisements count as "first".
pub const MAX_INITIAL_ADVERTISEMENTS: u32 = 3;
/// RFC 1256 6: the longest a multicast answer to a solicitation may be delayed.
pub const MAX_RESPONSE_DELAY: Duration = Duration::from_secs(2);
/// RFC 5944 3.7.1: "typically 5" pending registrations.
pub const DEFAULT_MAX_PENDING: usize = 5;
/// RFC 5944 3.7.1: a pending request MAY be dropped (with code 78) after 7 seconds.
pub const DEFAULT_PENDING_TIMEOUT: Duration = Duration::from_secs(7);
pub const DEFAULT_MAX_LIFETIME: u16 = 1800;
pub const DEFAULT_MAX_VISITORS: usize = 4096;
pub const DEFAULT_ADVERTISEMENT_INTERVAL: Duration = Duration::from_secs(1);
/// RFC 5944 3.7.2: at most one denial per second to the same mobile node.
pub const DENIAL_INTERVAL: Duration = Duration::from_secs(1);
/// RFC 5944 2.3: multicast advertisements MUST be rate limited; never closer than this.
pub const DEFAULT_MIN_MULTICAST_GAP: Duration = Duration::from_millis(500);
/// Unicast answers to one solicitor are never closer than this.
pub const DEFAULT_SOLICITED_UNICAST_GAP: Duration = Duration::from_millis(500);

/// How an Agent Solicitation is answered (RFC 1256 section 5.1, RFC 5944 2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SolicitedReply {
    /// Straight back to the solicitor's IP and link-layer address (RFC 5944 2.1: the
    /// link-layer destination is the solicitation's link-layer source).
    Unicast,
    /// To the advertisement address after a random delay of up to `max_response_delay`
    /// (RFC 1256: a multicast response MUST be delayed), which also resets the periodic timer.
    Multicast,
}

/// Agent discovery settings (RFC 5944 section 2, RFC 1256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertisementConfig {
    /// Send periodic advertisements; when false, only solicitations are answered (2.3 MAY).
    pub unsolicited: bool,
    /// MaxAdvertisementInterval (RFC 1256); at most a third of `lifetime` (RFC 5944 2.1).
    pub max_interval: Duration,
    /// MinAdvertisementInterval; the gap is drawn uniformly in [min, max] (RFC 1256 5.1).
    pub min_interval: Duration,
    /// The ICMP Lifetime field, in seconds.
    pub lifetime: u16,
    /// 224.0.0.1 or 255.255.255.255 (RFC 5944 2.1: nothing else).
    pub destination: Ipv4Addr,
    /// Append the Prefix-Lengths Extension (type 19) with the care-of address's prefix.
    pub prefix_lengths: bool,
    /// ICMP code 0 (routes common traffic) rather than 16 (only serves mobile nodes).
    pub routes_common_traffic: bool,
    /// Preference of our router address entry; `None` advertises no router address.
    pub router_preference: Option<i32>,
    pub solicited_reply: SolicitedReply,
    /// RFC 5944 2.3: the floor between two multicast/broadcast advertisements.
    pub min_multicast_gap: Duration,
    /// The floor between two unicast answers to the same solicitor.
    pub solicited_unicast_gap: Duration,
    pub max_response_delay: Duration,
    /// Advertise the H bit too (the agent is also a home agent on this link).
    pub home_agent: bool,
}

impl Default for AdvertisementConfig {
    fn default() -> Self {
        AdvertisementConfig {
            unsolicited: true,
            max_interval: DEFAULT_ADVERTISEMENT_INTERVAL,
            min_interval: DEFAULT_ADVERTISEMENT_INTERVAL * 3 / 4,
            lifetime: 3,
            destination: Ipv4Addr::new(224, 0, 0, 1),
            prefix_lengths: false,
            routes_common_traffic: false,
            router_preference: Some(0),
            solicited_reply: SolicitedReply::Unicast,
            min_multicast_gap: DEFAULT_MIN_MULTICAST_GAP,
            solicited_unicast_gap: DEFAULT_SOLICITED_UNICAST_GAP,
            max_response_delay: MAX_RESPONSE_DELAY,
            home_agent: false,
        }
    }
}

/// A mobility security association with a home agent, selected by the Home Agent
/// field (relayed requests, 3.7.2.2) or the reply's Home Agent field (3.5.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeAgentEntry {
    pub address: Ipv4Addr,
    pub sa: SecurityAssociation,
}

/// A mobility security association with a mobile node (3.7.2.1, 3.7.3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MobileNodeEntry {
    pub home_address: Option<Ipv4Addr>,
    pub nai: Option<String>,
    pub sa: SecurityAssociation,
}

/// Everything the state machine needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignAgentConfig {
    /// The care-of address advertised and used as the relayed requests' source (3.7.1:
    /// MUST be configured).
    pub care_of_address: Ipv4Addr,
    /// Prefix length of the care-of address's link (Prefix-Lengths Extension).
    pub prefix_len: u8,
    /// Every address of the agent: a request naming one as its home agent is denied with
    /// 194 (3.7.2). The care-of address is always included.
    pub local_addresses: Vec<Ipv4Addr>,
    /// Longest registration lifetime accepted (advertised; above it: code 69).
    pub max_lifetime: u16,
    /// B bit: no registrations from new mobile nodes (code 66).
    pub busy: bool,
    /// R bit: registration required even with a co-located care-of address.
    pub registration_required: bool,
    /// M bit: we decapsulate minimal encapsulation (else code 72 for M).
    pub minimal_encapsulation: bool,
    /// G bit: we decapsulate GRE (else code 72 for G).
    pub gre_encapsulation: bool,
    /// T bit (RFC 3024): reverse tunnelling offered (else code 74 for T).
    pub reverse_tunnel: bool,
    /// RFC 3024: requests without T are denied with 75.
    pub reverse_tunnel_mandatory: bool,
    /// RFC 3024: a request with T must arrive with IP TTL 255, else code 76.
    pub reverse_tunnel_ttl_check: bool,
    /// RFC 3024 Encapsulating Delivery Style accepted (else code 79).
    pub encapsulating_delivery: bool,
    /// Accept a zero home address with an NAI (RFC 2794); else code 96.
    pub allow_zero_home_address: bool,
    pub max_pending: usize,
    pub pending_timeout: Duration,
    pub max_visitors: usize,
    pub advertisement: AdvertisementConfig,
    pub home_agents: Vec<HomeAgentEntry>,
    pub mobile_nodes: Vec<MobileNodeEntry>,
}

impl ForeignAgentConfig {
    /// The defaults for a foreign agent with care-of address `care_of_address`.
    pub fn new(care_of_address: Ipv4Addr, prefix_len: u8) -> Self {
        ForeignAgentConfig {
            care_of_address,
            prefix_len,
            local_addresses: vec![care_of_address],
            max_lifetime: DEFAULT_MAX_LIFETIME,
            busy: false,
            registration_required: false,
            minimal_encapsulation: true,
            gre_encapsulation: true,
            reverse_tunnel: true,
            reverse_tunnel_mandatory: false,
            reverse_tunnel_ttl_check: true,
            encapsulating_delivery: false,
            allow_zero_home_address: true,
            max_pending: DEFAULT_MAX_PENDING,
            pending_timeout: DEFAULT_PENDING_TIMEOUT,
            max_visitors: DEFAULT_MAX_VISITORS,
            advertisement: AdvertisementConfig::default(),
            home_agents: Vec::new(),
            mobile_nodes: Vec::new(),
        }
    }

    /// The flags of our Mobility Agent Advertisement Extension (RFC 5944 2.1.1). F is
    /// always set (we are a foreign agent), so R and B are allowed.
    pub fn agent_flags(&self) -> AgentFlags {
        let mut bits = AgentFlags::F;
        for (on, bit) in [
            (self.registration_required, AgentFlags::R),
            (self.busy, AgentFlags::B),
            (self.advertisement.home_agent, AgentFlags::H),
            (self.minimal_encapsulation, AgentFlags::M),
            (self.gre_encapsulation, AgentFlags::G),
            (self.reverse_tunnel, AgentFlags::T),
        ] {
            if on {
                bits |= bit;
            }
        }
        AgentFlags(bits)
    }

    /// Whether `address` is one of ours.
    pub fn is_local(&self, address: Ipv4Addr) -> bool {
        address == self.care_of_address || self.local_addresses.contains(&address)
    }

    pub(crate) fn home_agent_sa(&self, home_agent: Ipv4Addr) -> Option<&SecurityAssociation> {
        self.home_agents
            .iter()
            .find(|h| h.address == home_agent)
            .map(|h| &h.sa)
    }

    pub(crate) fn mobile_node_sa(
        &self,
        home_address: Ipv4Addr,
        nai: Option<&[u8]>,
    ) -> Option<&SecurityAssociation> {
        let by_home = (!home_address.is_unspecified())
            .then(|| {
                self.mobile_nodes
                    .iter()
                    .find(|m| m.home_address == Some(home_address))
            })
            .flatten();
        let by_nai = || {
            nai.and_then(|n| {
                self.mobile_nodes
                    .iter()
                    .find(|m| m.nai.as_deref().map(str::as_bytes) == Some(n))
            })
        };
        by_home.or_else(by_nai).map(|m| &m.sa)
    }
}
