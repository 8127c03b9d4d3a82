//! The foreign agent's configuration file: TOML, unknown fields refused, named
//! defaults, checked into [`ForeignAgentConfig`] plus what only the daemon needs.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mip_core::auth::{AuthAlgorithm, ReplayMethod, SecurityAssociation};
use serde::Deserialize;

use crate::config::{
    AdvertisementConfig, ForeignAgentConfig, HomeAgentEntry, MobileNodeEntry, SolicitedReply,
    DEFAULT_MAX_LIFETIME, DEFAULT_MAX_PENDING, DEFAULT_MAX_VISITORS, DEFAULT_MIN_MULTICAST_GAP,
    DEFAULT_PENDING_TIMEOUT, DEFAULT_SOLICITED_UNICAST_GAP, MAX_RESPONSE_DELAY,
};

pub const DEFAULT_CONTROL_SOCKET: &str = "/run/mip-fa.sock";
pub const DEFAULT_INTERVAL_MS: u64 = 1000;
pub const DEFAULT_TUNNEL_MTU: u16 = 1500;
/// RFC 5944 5.1 asks for 128-bit keys with the default algorithm.
pub const MIN_KEY_LEN: usize = 16;
/// Linux interface names are at most 15 bytes.
const IFNAMSIZ: usize = 15;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    #[error("foreign_agent.{field}: {reason}")]
    ForeignAgent { field: &'static str, reason: String },
    #[error("advertisement.{field}: {reason}")]
    Advertisement { field: &'static str, reason: String },
    #[error("home_agent #{index}: {reason}")]
    HomeAgent { index: usize, reason: String },
    #[error("mobile_node #{index}: {reason}")]
    MobileNode { index: usize, reason: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub foreign_agent: ForeignAgentSection,
    #[serde(default)]
    pub advertisement: Option<AdvertisementSection>,
    #[serde(default, rename = "home_agent")]
    pub home_agents: Vec<HomeAgentSection>,
    #[serde(default, rename = "mobile_node")]
    pub mobile_nodes: Vec<MobileNodeSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForeignAgentSection {
    /// The link the visitors are on.
    pub interface: String,
    /// Our address on that link: the care-of address we advertise (3.7.1: MUST).
    pub care_of_address: Ipv4Addr,
    /// Prefix length of that link.
    pub prefix_len: u8,
    /// Our other addresses, if any (a request naming one as home agent gets 194).
    #[serde(default)]
    pub local_addresses: Vec<Ipv4Addr>,
    #[serde(default = "default_control_socket")]
    pub control_socket: PathBuf,
    /// Longest registration lifetime accepted, seconds (advertised).
    #[serde(default = "default_max_lifetime")]
    pub max_lifetime: u16,
    #[serde(default = "default_max_pending")]
    pub max_pending: usize,
    /// Seconds a relayed request waits for its reply before code 78.
    #[serde(default = "default_pending_timeout")]
    pub pending_timeout: u64,
    #[serde(default = "default_max_visitors")]
    pub max_visitors: usize,
    #[serde(default)]
    pub busy: bool,
    #[serde(default)]
    pub registration_required: bool,
    #[serde(default = "default_true")]
    pub reverse_tunnel: bool,
    #[serde(default)]
    pub reverse_tunnel_mandatory: bool,
    /// RFC 3024: requests with T must arrive with TTL 255 (code 76).
    #[serde(default = "default_true")]
    pub reverse_tunnel_ttl_check: bool,
    #[serde(default = "default_true")]
    pub minimal_encapsulation: bool,
    #[serde(default = "default_true")]
    pub gre_encapsulation: bool,
    #[serde(default)]
    pub encapsulating_delivery: bool,
    #[serde(default = "default_true")]
    pub allow_zero_home_address: bool,
    /// Move packets (decapsulation, delivery, reverse tunnel); off = registration only.
    #[serde(default = "default_true")]
    pub data_plane: bool,
    /// Largest reverse-tunnel packet.
    #[serde(default = "default_tunnel_mtu")]
    pub tunnel_mtu: u16,
    /// Set net.ipv4.conf.<interface>.forwarding=0 at start, so that the kernel does
    /// not forward visitors' packets as well as the data plane.
    #[serde(default = "default_true")]
    pub disable_kernel_forwarding: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdvertisementSection {
    #[serde(default = "default_true")]
    pub unsolicited: bool,
    /// MaxAdvertisementInterval, milliseconds.
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// MinAdvertisementInterval, milliseconds (default: 3/4 of interval_ms).
    pub min_interval_ms: Option<u64>,
    /// ICMP Lifetime, seconds (default: 3 intervals, rounded up).
    pub lifetime: Option<u16>,
    #[serde(default = "default_destination")]
    pub destination: Ipv4Addr,
    #[serde(default)]
    pub prefix_lengths: bool,
    #[serde(default)]
    pub routes_common_traffic: bool,
    /// List our care-of address as a router address (with preference).
    #[serde(default = "default_true")]
    pub router_address: bool,
    #[serde(default)]
    pub router_preference: i32,
    #[serde(default = "default_solicited_reply")]
    pub solicited_reply: ReplyName,
    #[serde(default = "default_min_gap_ms")]
    pub min_multicast_gap_ms: u64,
    #[serde(default = "default_unicast_gap_ms")]
    pub solicited_unicast_gap_ms: u64,
    #[serde(default = "default_response_delay_ms")]
    pub max_response_delay_ms: u64,
    /// Also set H (we serve as a home agent on this link).
    #[serde(default)]
    pub home_agent: bool,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ReplyName {
    Unicast,
    Multicast,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HomeAgentSection {
    pub address: Ipv4Addr,
    pub spi: u32,
    /// The shared secret, in hex.
    pub key: String,
    #[serde(default = "default_algorithm")]
    pub algorithm: AlgorithmName,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MobileNodeSection {
    pub home_address: Option<Ipv4Addr>,
    pub nai: Option<String>,
    pub spi: u32,
    pub key: String,
    #[serde(default = "default_algorithm")]
    pub algorithm: AlgorithmName,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AlgorithmName {
    HmacMd5,
    KeyedMd5,
}

impl From<AlgorithmName> for AuthAlgorithm {
    fn from(a: AlgorithmName) -> Self {
        match a {
            AlgorithmName::HmacMd5 => AuthAlgorithm::HmacMd5,
            AlgorithmName::KeyedMd5 => AuthAlgorithm::KeyedMd5PrefixSuffix,
        }
    }
}

fn default_control_socket() -> PathBuf {
    PathBuf::from(DEFAULT_CONTROL_SOCKET)
}
fn default_max_lifetime() -> u16 {
    DEFAULT_MAX_LIFETIME
}
fn default_max_pending() -> usize {
    DEFAULT_MAX_PENDING
}
fn default_pending_timeout() -> u64 {
    DEFAULT_PENDING_TIMEOUT.as_secs()
}
fn default_max_visitors() -> usize {
    DEFAULT_MAX_VISITORS
}
fn default_true() -> bool {
    true
}
fn default_tunnel_mtu() -> u16 {
    DEFAULT_TUNNEL_MTU
}
fn default_interval_ms() -> u64 {
    DEFAULT_INTERVAL_MS
}
fn default_destination() -> Ipv4Addr {
    Ipv4Addr::new(224, 0, 0, 1)
}
fn default_solicited_reply() -> ReplyName {
    ReplyName::Unicast
}
fn default_min_gap_ms() -> u64 {
    DEFAULT_MIN_MULTICAST_GAP.as_millis() as u64
}
fn default_unicast_gap_ms() -> u64 {
    DEFAULT_SOLICITED_UNICAST_GAP.as_millis() as u64
}
fn default_response_delay_ms() -> u64 {
    MAX_RESPONSE_DELAY.as_millis() as u64
}
fn default_algorithm() -> AlgorithmName {
    AlgorithmName::HmacMd5
}

/// A checked configuration: the state machine's part and the shell's.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub foreign_agent: ForeignAgentConfig,
    pub interface: String,
    pub control_socket: PathBuf,
    pub data_plane: bool,
    pub tunnel_mtu: u16,
    pub disable_kernel_forwarding: bool,
}

fn parse_key(hex_key: &str) -> Result<Vec<u8>, String> {
    let key = hex::decode(hex_key.trim()).map_err(|e| format!("key is not hex: {e}"))?;
    if key.len() < MIN_KEY_LEN {
        return Err(format!(
            "key is {} bytes; at least {MIN_KEY_LEN} (128 bits) are required",
            key.len()
        ));
    }
    Ok(key)
}

fn sa(spi: u32, key: &str, algorithm: AlgorithmName) -> Result<SecurityAssociation, String> {
    if spi < 256 {
        // RFC 5944 1.6: SPI values 0 through 255 are reserved.
        return Err(format!("spi {spi} is reserved (0-255)"));
    }
    Ok(SecurityAssociation {
        spi,
        algorithm: algorithm.into(),
        key: parse_key(key)?,
        // Replay protection is between the mobile node and its home agent.
        replay: ReplayMethod::Timestamp,
    })
}

fn unicast(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback())
}

fn advertisement(s: Option<AdvertisementSection>) -> Result<AdvertisementConfig, ConfigError> {
    let bad = |field, reason: &str| ConfigError::Advertisement {
        field,
        reason: reason.to_string(),
    };
    let Some(s) = s else {
        return Ok(AdvertisementConfig::default());
    };
    if s.interval_ms == 0 || s.interval_ms > 1_800_000 {
        return Err(bad(
            "interval_ms",
            "must be between 1 and 1800000 (RFC 1256: at most 1800 s)",
        ));
    }
    let min = s.min_interval_ms.unwrap_or(s.interval_ms * 3 / 4);
    if min > s.interval_ms {
        return Err(bad("min_interval_ms", "must not exceed interval_ms"));
    }
    let lifetime = match s.lifetime {
        Some(l) => l,
        None => u16::try_from((3 * s.interval_ms).div_ceil(1000)).unwrap_or(u16::MAX),
    };
    // RFC 5944 2.1: the interval SHOULD be at most a third of the lifetime.
    if lifetime == 0 || u64::from(lifetime) * 1000 < 3 * s.interval_ms {
        return Err(bad(
            "lifetime",
            "must be at least 3 advertisement intervals (RFC 5944 2.1)",
        ));
    }
    if s.destination != Ipv4Addr::new(224, 0, 0, 1) && !s.destination.is_broadcast() {
        return Err(bad(
            "destination",
            "must be 224.0.0.1 or 255.255.255.255 (RFC 5944 2.1)",
        ));
    }
    if s.min_multicast_gap_ms == 0 {
        return Err(bad(
            "min_multicast_gap_ms",
            "must be at least 1 (RFC 5944 2.3: rate limited)",
        ));
    }
    Ok(AdvertisementConfig {
        unsolicited: s.unsolicited,
        max_interval: Duration::from_millis(s.interval_ms),
        min_interval: Duration::from_millis(min),
        lifetime,
        destination: s.destination,
        prefix_lengths: s.prefix_lengths,
        routes_common_traffic: s.routes_common_traffic,
        router_preference: s.router_address.then_some(s.router_preference),
        solicited_reply: match s.solicited_reply {
            ReplyName::Unicast => SolicitedReply::Unicast,
            ReplyName::Multicast => SolicitedReply::Multicast,
        },
        min_multicast_gap: Duration::from_millis(s.min_multicast_gap_ms),
        solicited_unicast_gap: Duration::from_millis(s.solicited_unicast_gap_ms),
        max_response_delay: Duration::from_millis(s.max_response_delay_ms),
        home_agent: s.home_agent,
    })
}

impl DaemonConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let file: ConfigFile = toml::from_str(text)?;
        Self::check(file)
    }

    fn check(file: ConfigFile) -> Result<Self, ConfigError> {
        let fa = file.foreign_agent;
        let bad = |field, reason: &str| ConfigError::ForeignAgent {
            field,
            reason: reason.to_string(),
        };
        if fa.interface.is_empty() || fa.interface.len() > IFNAMSIZ || fa.interface.contains('/') {
            return Err(bad(
                "interface",
                "must be a Linux interface name (1-15 bytes, no '/')",
            ));
        }
        if !unicast(fa.care_of_address) {
            return Err(bad("care_of_address", "must be a unicast address"));
        }
        if fa.prefix_len == 0 || fa.prefix_len > 32 {
            return Err(bad("prefix_len", "must be between 1 and 32"));
        }
        if fa.max_lifetime == 0 {
            return Err(bad("max_lifetime", "must be at least 1 second"));
        }
        if fa.max_pending == 0 {
            return Err(bad("max_pending", "must be at least 1"));
        }
        if fa.pending_timeout == 0 || fa.pending_timeout > 3600 {
            return Err(bad("pending_timeout", "must be between 1 and 3600 seconds"));
        }
        if fa.max_visitors == 0 {
            return Err(bad("max_visitors", "must be at least 1"));
        }
        if fa.reverse_tunnel_mandatory && !fa.reverse_tunnel {
            return Err(bad(
                "reverse_tunnel_mandatory",
                "needs reverse_tunnel = true",
            ));
        }
        if fa.tunnel_mtu < 576 {
            return Err(bad("tunnel_mtu", "must be at least 576"));
        }
        let advertisement = advertisement(file.advertisement)?;
        let mut home_agents = Vec::new();
        let mut seen = HashSet::new();
        for (index, ha) in file.home_agents.into_iter().enumerate() {
            let err = |reason: String| ConfigError::HomeAgent { index, reason };
            if !unicast(ha.address) {
                return Err(err(format!(
                    "address {} is not a unicast address",
                    ha.address
                )));
            }
            if !seen.insert(ha.address) {
                return Err(err(format!("address {} is configured twice", ha.address)));
            }
            home_agents.push(HomeAgentEntry {
                address: ha.address,
                sa: sa(ha.spi, &ha.key, ha.algorithm).map_err(err)?,
            });
        }
        let mut mobile_nodes = Vec::new();
        for (index, mn) in file.mobile_nodes.into_iter().enumerate() {
            let err = |reason: String| ConfigError::MobileNode { index, reason };
            if mn.home_address.is_none() && mn.nai.is_none() {
                return Err(err("needs a home_address, an nai, or both".into()));
            }
            if mn.home_address.is_some_and(|h| !unicast(h)) {
                return Err(err("home_address is not a unicast address".into()));
            }
            if mn
                .nai
                .as_ref()
                .is_some_and(|n| n.is_empty() || n.len() > 255)
            {
                return Err(err("nai must be 1 to 255 bytes".into()));
            }
            mobile_nodes.push(MobileNodeEntry {
                home_address: mn.home_address,
                nai: mn.nai,
                sa: sa(mn.spi, &mn.key, mn.algorithm).map_err(err)?,
            });
        }
        let mut local_addresses = vec![fa.care_of_address];
        local_addresses.extend(
            fa.local_addresses
                .iter()
                .copied()
                .filter(|a| *a != fa.care_of_address),
        );
        let foreign_agent = ForeignAgentConfig {
            care_of_address: fa.care_of_address,
            prefix_len: fa.prefix_len,
            local_addresses,
            max_lifetime: fa.max_lifetime,
            busy: fa.busy,
            registration_required: fa.registration_required,
            minimal_encapsulation: fa.minimal_encapsulation,
            gre_encapsulation: fa.gre_encapsulation,
            reverse_tunnel: fa.reverse_tunnel,
            reverse_tunnel_mandatory: fa.reverse_tunnel_mandatory,
            reverse_tunnel_ttl_check: fa.reverse_tunnel_ttl_check,
            encapsulating_delivery: fa.encapsulating_delivery,
            allow_zero_home_address: fa.allow_zero_home_address,
            max_pending: fa.max_pending,
            pending_timeout: Duration::from_secs(fa.pending_timeout),
            max_visitors: fa.max_visitors,
            advertisement,
            home_agents,
            mobile_nodes,
        };
        Ok(DaemonConfig {
            foreign_agent,
            interface: fa.interface,
            control_socket: fa.control_socket,
            data_plane: fa.data_plane,
            tunnel_mtu: fa.tunnel_mtu,
            disable_kernel_forwarding: fa.disable_kernel_forwarding,
        })
    }

    /// The one-line summary `--validate` prints.
    pub fn summary(&self) -> String {
        let fa = &self.foreign_agent;
        format!(
            "configuration ok: foreign agent {}/{} on {}, flags {}, registration lifetime {} s, \
             advertisements every {} ms (lifetime {} s) to {}, {} home agent association(s), \
             {} mobile node association(s), data plane {}",
            fa.care_of_address,
            fa.prefix_len,
            self.interface,
            flag_letters(fa),
            fa.max_lifetime,
            fa.advertisement.max_interval.as_millis(),
            fa.advertisement.lifetime,
            fa.advertisement.destination,
            fa.home_agents.len(),
            fa.mobile_nodes.len(),
            if self.data_plane { "on" } else { "off" },
        )
    }
}

/// "RBHFMGT"-style letters of the advertised flags, dashes for the others.
pub fn flag_letters(fa: &ForeignAgentConfig) -> String {
    use mip_core::wire::AgentFlags;
    let flags = fa.agent_flags();
    [
        (AgentFlags::R, 'R'),
        (AgentFlags::B, 'B'),
        (AgentFlags::H, 'H'),
        (AgentFlags::F, 'F'),
        (AgentFlags::M, 'M'),
        (AgentFlags::G, 'G'),
        (AgentFlags::T, 'T'),
    ]
    .iter()
    .map(|&(bit, c)| if flags.contains(bit) { c } else { '-' })
    .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "file_tests.rs"]
mod tests;
