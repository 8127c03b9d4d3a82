//! The home agent's configuration: a TOML file (unknown fields refused, named
//! defaults) checked into the plain [`HomeAgentConfig`] the state machine runs on.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use mip_core::auth::{AuthAlgorithm, ReplayMethod, SecurityAssociation};
use serde::Deserialize;

use crate::dataplane::advert::{
    self, AdvertConfig, DEFAULT_ADVERTISE, DEFAULT_ADVERTISEMENT_INTERVAL_MS, LIFETIME_INTERVALS,
    MAX_ADVERTISEMENT_INTERVAL_MS, MAX_ADVERTISEMENT_LIFETIME, MIN_ADVERTISEMENT_INTERVAL_MS,
};
use crate::dataplane::DataplaneConfig;
use crate::sid::SidConfig;

/// RFC 5944 5.7: "the default value [of the timestamp window] is 7 seconds".
pub const DEFAULT_REPLAY_WINDOW_SECS: u64 = 7;
pub const DEFAULT_MAX_LIFETIME: u16 = 1800;
pub const DEFAULT_MAX_BINDINGS: usize = 65_536;
pub const DEFAULT_SIMULTANEOUS_BINDINGS: u8 = 4;
pub const DEFAULT_LISTEN: &str = "0.0.0.0:434";
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/mip-ha.sock";
/// RFC 5944 5.1 asks for 128-bit keys with the default algorithm.
pub const MIN_KEY_LEN: usize = 16;
/// RFC 791: every host must accept 576-byte datagrams.
pub const MIN_TUNNEL_MTU: u16 = 576;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    #[error("mobile node #{index}: {reason}")]
    MobileNode { index: usize, reason: String },
    #[error("foreign agent #{index}: {reason}")]
    ForeignAgent { index: usize, reason: String },
    #[error("home_agent.{field}: {reason}")]
    HomeAgent { field: &'static str, reason: String },
    #[error("sid.{field}: {reason}")]
    Sid { field: &'static str, reason: String },
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub home_agent: HomeAgentSection,
    #[serde(default, rename = "mobile_node")]
    pub mobile_nodes: Vec<MobileNodeSection>,
    #[serde(default, rename = "foreign_agent")]
    pub foreign_agents: Vec<ForeignAgentSection>,
    #[serde(default)]
    pub sid: SidSection,
}

/// `[sid]`: Session Inter-Device transfers (issue 4). Every key is optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SidSection {
    /// Serve transfer, renewal and stop-transfer requests (default on: only a
    /// configured mobile node, under its own association, can hand its own address on).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Vendor/Org-ID of the SID CVSEs (default 32473, RFC 5612).
    #[serde(default = "default_sid_org")]
    pub org_id: u32,
    /// Longest lifetime granted to a transfer or a renewal, seconds.
    #[serde(default = "default_max_transfer_lifetime")]
    pub max_transfer_lifetime: u16,
    /// First wake-up retransmission interval, milliseconds (doubles after each try).
    #[serde(default = "default_wake_up_interval_ms")]
    pub wake_up_interval_ms: u64,
    /// Wake-ups sent before giving up.
    #[serde(default = "default_wake_up_attempts")]
    pub wake_up_attempts: u8,
    /// The Agent's X25519 private key, hex, for session keys sealed with HPKE.
    #[serde(default)]
    pub private_key: Option<String>,
}

impl Default for SidSection {
    fn default() -> Self {
        SidSection {
            enabled: true,
            org_id: default_sid_org(),
            max_transfer_lifetime: default_max_transfer_lifetime(),
            wake_up_interval_ms: default_wake_up_interval_ms(),
            wake_up_attempts: default_wake_up_attempts(),
            private_key: None,
        }
    }
}

fn default_sid_org() -> u32 {
    sid_ext::wire::DEFAULT_ORG_ID
}
fn default_max_transfer_lifetime() -> u16 {
    crate::sid::DEFAULT_MAX_TRANSFER_LIFETIME
}
fn default_wake_up_interval_ms() -> u64 {
    crate::sid::DEFAULT_WAKE_UP_INTERVAL.as_millis() as u64
}
fn default_wake_up_attempts() -> u8 {
    crate::sid::DEFAULT_WAKE_UP_ATTEMPTS
}

impl SidSection {
    fn check(self) -> Result<SidConfig, ConfigError> {
        let bad = |field, reason: &str| ConfigError::Sid { field, reason: reason.to_string() };
        if self.max_transfer_lifetime == 0 {
            return Err(bad("max_transfer_lifetime", "must be at least 1 second"));
        }
        if !(100..=60_000).contains(&self.wake_up_interval_ms) {
            return Err(bad("wake_up_interval_ms", "must be between 100 and 60000"));
        }
        if !(1..=10).contains(&self.wake_up_attempts) {
            return Err(bad("wake_up_attempts", "must be between 1 and 10"));
        }
        let private_key = match &self.private_key {
            None => None,
            Some(text) => {
                let bytes = hex::decode(text.trim()).map_err(|_| bad("private_key", "is not hex"))?;
                let bytes: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| bad("private_key", "must be 32 bytes (an X25519 key)"))?;
                Some(sid_ext::crypto::PrivateKey::from_bytes(&bytes))
            }
        };
        Ok(SidConfig {
            enabled: self.enabled,
            org_id: self.org_id,
            max_transfer_lifetime: self.max_transfer_lifetime,
            wake_up_interval: Duration::from_millis(self.wake_up_interval_ms),
            wake_up_attempts: self.wake_up_attempts,
            private_key,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HomeAgentSection {
    /// The home agent's unicast address on the home network.
    pub address: Ipv4Addr,
    /// Prefix length of the home network (RFC 5944 3.8.1: MUST be configured).
    pub prefix_len: u8,
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    #[serde(default = "default_control_socket")]
    pub control_socket: PathBuf,
    /// Longest lifetime granted, in seconds.
    #[serde(default = "default_max_lifetime")]
    pub max_lifetime: u16,
    /// Timestamp replay window, in seconds.
    #[serde(default = "default_replay_window")]
    pub replay_window: u64,
    /// Most bindings held at once; past it requests get code 130.
    #[serde(default = "default_max_bindings")]
    pub max_bindings: usize,
    /// Most care-of addresses one mobile node may hold with the S bit; 1 means
    /// simultaneous bindings are not supported (accepted requests then get code 1).
    #[serde(default = "default_simultaneous")]
    pub simultaneous_bindings: u8,
    /// Answer a request whose authenticator is wrong with code 131 (RFC 5944
    /// 3.8.2.1 a: MAY) instead of dropping it silently.
    #[serde(default = "default_true")]
    pub reply_to_failed_authentication: bool,
    /// Grant the T bit (RFC 3024).
    #[serde(default = "default_true")]
    pub reverse_tunnel: bool,
    /// Grant the M bit (RFC 2004 minimal encapsulation).
    #[serde(default = "default_true")]
    pub minimal_encapsulation: bool,
    /// Grant the G bit (RFC 2784 GRE).
    #[serde(default = "default_true")]
    pub gre_encapsulation: bool,
    /// The interface on the home link. When set, the daemon runs the data plane there:
    /// proxy and gratuitous ARP, interception and tunnelling (needs CAP_NET_RAW).
    #[serde(default)]
    pub home_interface: Option<String>,
    /// Largest packet sent into a tunnel, outer header included (RFC 2003 5.1).
    #[serde(default = "default_tunnel_mtu")]
    pub tunnel_mtu: u16,
    /// Gratuitous ARPs sent per announcement (RFC 5944 4.6).
    #[serde(default = "default_gratuitous_arp_count")]
    pub gratuitous_arp_count: u8,
    /// Send Agent Advertisements with H on the home interface unasked (RFC 5944 2.3);
    /// solicitations are answered either way. Needs `home_interface`.
    #[serde(default = "default_advertise")]
    pub advertise: bool,
    /// Longest time between unsolicited advertisements, milliseconds (each gap is
    /// 0.75 to 1 times this, RFC 1256).
    #[serde(default = "default_advertisement_interval_ms")]
    pub advertisement_interval_ms: u64,
    /// The advertisements' ICMP Lifetime, seconds; default three intervals rounded up
    /// (RFC 5944 2.1, RFC 1256).
    #[serde(default)]
    pub advertisement_lifetime: Option<u16>,
    /// Add the Prefix-Lengths extension (RFC 5944 2.1.2); every agent on the link must
    /// agree (2.3).
    #[serde(default)]
    pub advertisement_prefix_lengths: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MobileNodeSection {
    pub home_address: Option<Ipv4Addr>,
    pub nai: Option<String>,
    /// The mobility security associations this node may use; the first is the one
    /// replies fall back to.
    #[serde(rename = "sa")]
    pub security_associations: Vec<SaSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaSection {
    pub spi: u32,
    /// The shared secret, in hex.
    pub key: String,
    #[serde(default = "default_algorithm")]
    pub algorithm: AlgorithmName,
    #[serde(default = "default_replay")]
    pub replay: ReplayName,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForeignAgentSection {
    pub address: Ipv4Addr,
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

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ReplayName {
    Timestamp,
    Nonce,
}

impl From<AlgorithmName> for AuthAlgorithm {
    fn from(a: AlgorithmName) -> Self {
        match a {
            AlgorithmName::HmacMd5 => AuthAlgorithm::HmacMd5,
            AlgorithmName::KeyedMd5 => AuthAlgorithm::KeyedMd5PrefixSuffix,
        }
    }
}

impl From<ReplayName> for ReplayMethod {
    fn from(r: ReplayName) -> Self {
        match r {
            ReplayName::Timestamp => ReplayMethod::Timestamp,
            ReplayName::Nonce => ReplayMethod::Nonce,
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], mip_core::REGISTRATION_PORT))
}
fn default_control_socket() -> PathBuf {
    PathBuf::from(DEFAULT_CONTROL_SOCKET)
}
fn default_max_lifetime() -> u16 {
    DEFAULT_MAX_LIFETIME
}
fn default_replay_window() -> u64 {
    DEFAULT_REPLAY_WINDOW_SECS
}
fn default_max_bindings() -> usize {
    DEFAULT_MAX_BINDINGS
}
fn default_simultaneous() -> u8 {
    DEFAULT_SIMULTANEOUS_BINDINGS
}
fn default_tunnel_mtu() -> u16 {
    crate::dataplane::DEFAULT_TUNNEL_MTU
}
fn default_gratuitous_arp_count() -> u8 {
    crate::dataplane::DEFAULT_GRATUITOUS_ARP_COUNT
}
fn default_advertise() -> bool {
    DEFAULT_ADVERTISE
}
fn default_advertisement_interval_ms() -> u64 {
    DEFAULT_ADVERTISEMENT_INTERVAL_MS
}
fn default_true() -> bool {
    true
}
fn default_algorithm() -> AlgorithmName {
    AlgorithmName::HmacMd5
}
fn default_replay() -> ReplayName {
    ReplayName::Timestamp
}

/// A mobile node the home agent serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MobileNodeEntry {
    pub home_address: Option<Ipv4Addr>,
    pub nai: Option<String>,
    pub security_associations: Vec<SecurityAssociation>,
}

impl MobileNodeEntry {
    pub fn sa(&self, spi: u32) -> Option<&SecurityAssociation> {
        self.security_associations.iter().find(|sa| sa.spi == spi)
    }
}

/// A foreign agent the home agent shares a mobility security association with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignAgentEntry {
    pub address: Ipv4Addr,
    pub sa: SecurityAssociation,
}

/// What the state machine runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeAgentConfig {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub max_lifetime: u16,
    pub replay_window: Duration,
    pub max_bindings: usize,
    pub simultaneous_bindings: u8,
    pub reply_to_failed_authentication: bool,
    pub reverse_tunnel: bool,
    pub minimal_encapsulation: bool,
    pub gre_encapsulation: bool,
    pub mobile_nodes: Vec<MobileNodeEntry>,
    pub foreign_agents: Vec<ForeignAgentEntry>,
    /// Session Inter-Device transfers (`[sid]`).
    pub sid: SidConfig,
}

impl HomeAgentConfig {
    /// A configuration with the defaults and no mobile node, for tests and tools.
    pub fn new(address: Ipv4Addr, prefix_len: u8) -> Self {
        HomeAgentConfig {
            address,
            prefix_len,
            max_lifetime: DEFAULT_MAX_LIFETIME,
            replay_window: Duration::from_secs(DEFAULT_REPLAY_WINDOW_SECS),
            max_bindings: DEFAULT_MAX_BINDINGS,
            simultaneous_bindings: DEFAULT_SIMULTANEOUS_BINDINGS,
            reply_to_failed_authentication: true,
            reverse_tunnel: true,
            minimal_encapsulation: true,
            gre_encapsulation: true,
            mobile_nodes: Vec::new(),
            foreign_agents: Vec::new(),
            sid: SidConfig::default(),
        }
    }

    /// The subnet-directed broadcast address of the home network.
    pub fn home_broadcast(&self) -> Ipv4Addr {
        let host_bits = 32u32.saturating_sub(u32::from(self.prefix_len));
        let mask = if host_bits >= 32 { u32::MAX } else { (1u32 << host_bits) - 1 };
        Ipv4Addr::from(u32::from(self.address) | mask)
    }
}

/// A parsed and checked configuration file: the state machine's part and the shell's.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub home_agent: HomeAgentConfig,
    pub listen: SocketAddr,
    pub control_socket: PathBuf,
    /// Present when `home_interface` is set.
    pub dataplane: Option<DataplaneConfig>,
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

impl DaemonConfig {
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let file: ConfigFile = toml::from_str(text)?;
        Self::check(file)
    }

    fn check(file: ConfigFile) -> Result<Self, ConfigError> {
        let ha = &file.home_agent;
        let bad = |field, reason: &str| ConfigError::HomeAgent { field, reason: reason.to_string() };
        if ha.prefix_len == 0 || ha.prefix_len > 32 {
            return Err(bad("prefix_len", "must be between 1 and 32"));
        }
        if ha.address.is_unspecified() || ha.address.is_broadcast() || ha.address.is_multicast() {
            return Err(bad("address", "must be a unicast address"));
        }
        if ha.max_lifetime == 0 {
            return Err(bad("max_lifetime", "must be at least 1 second"));
        }
        if ha.replay_window == 0 || ha.replay_window > 3600 {
            return Err(bad("replay_window", "must be between 1 and 3600 seconds"));
        }
        if ha.max_bindings == 0 {
            return Err(bad("max_bindings", "must be at least 1"));
        }
        if ha.tunnel_mtu < MIN_TUNNEL_MTU {
            return Err(bad("tunnel_mtu", "must be at least 576 (RFC 791)"));
        }
        if !(1..=10).contains(&ha.gratuitous_arp_count) {
            return Err(bad("gratuitous_arp_count", "must be between 1 and 10"));
        }
        if let Some(i) = &ha.home_interface {
            if i.is_empty() || i.len() > 15 || i.contains(['/', ' ']) {
                return Err(bad("home_interface", "is not an interface name"));
            }
        }
        let interval_ms = ha.advertisement_interval_ms;
        if !(MIN_ADVERTISEMENT_INTERVAL_MS..=MAX_ADVERTISEMENT_INTERVAL_MS).contains(&interval_ms) {
            return Err(bad(
                "advertisement_interval_ms",
                "must be between 100 and 1800000 (RFC 1256: at most 1800 s)",
            ));
        }
        let advertisement_lifetime =
            ha.advertisement_lifetime.unwrap_or_else(|| advert::default_lifetime(interval_ms));
        if advertisement_lifetime > MAX_ADVERTISEMENT_LIFETIME {
            return Err(bad("advertisement_lifetime", "must be at most 9000 seconds (RFC 1256)"));
        }
        if u64::from(advertisement_lifetime) * 1000 < LIFETIME_INTERVALS * interval_ms {
            return Err(bad(
                "advertisement_lifetime",
                "must be at least 3 x advertisement_interval_ms (RFC 5944 2.1: a node may miss \
                 three advertisements)",
            ));
        }
        if ha.simultaneous_bindings == 0 {
            return Err(bad("simultaneous_bindings", "must be at least 1 (1 = not supported)"));
        }
        let mut mobile_nodes = Vec::with_capacity(file.mobile_nodes.len());
        let mut homes = HashSet::new();
        let mut nais = HashSet::new();
        for (index, mn) in file.mobile_nodes.into_iter().enumerate() {
            let err = |reason: String| ConfigError::MobileNode { index, reason };
            if mn.home_address.is_none() && mn.nai.is_none() {
                return Err(err("needs a home_address, an nai, or both".into()));
            }
            if let Some(h) = mn.home_address {
                if h.is_unspecified() || h.is_broadcast() || h.is_multicast() {
                    return Err(err(format!("home_address {h} is not a unicast address")));
                }
                if !homes.insert(h) {
                    return Err(err(format!("home_address {h} is configured twice")));
                }
            }
            if let Some(n) = &mn.nai {
                if n.is_empty() || n.len() > 255 {
                    return Err(err("nai must be 1 to 255 bytes".into()));
                }
                if !nais.insert(n.clone()) {
                    return Err(err(format!("nai {n} is configured twice")));
                }
            }
            if mn.security_associations.is_empty() {
                return Err(err("needs at least one [[mobile_node.sa]]".into()));
            }
            let mut spis = HashSet::new();
            let mut sas = Vec::new();
            for sa in mn.security_associations {
                if sa.spi < 256 {
                    // RFC 5944 1.6: SPI values 0 through 255 are reserved.
                    return Err(err(format!("spi {} is reserved (0-255)", sa.spi)));
                }
                if !spis.insert(sa.spi) {
                    return Err(err(format!("spi {} is configured twice", sa.spi)));
                }
                let key = parse_key(&sa.key).map_err(|r| err(format!("spi {}: {r}", sa.spi)))?;
                sas.push(SecurityAssociation {
                    spi: sa.spi,
                    algorithm: sa.algorithm.into(),
                    key,
                    replay: sa.replay.into(),
                });
            }
            mobile_nodes.push(MobileNodeEntry {
                home_address: mn.home_address,
                nai: mn.nai,
                security_associations: sas,
            });
        }
        let mut foreign_agents = Vec::new();
        for (index, fa) in file.foreign_agents.into_iter().enumerate() {
            let err = |reason: String| ConfigError::ForeignAgent { index, reason };
            if fa.spi < 256 {
                return Err(err(format!("spi {} is reserved (0-255)", fa.spi)));
            }
            let key = parse_key(&fa.key).map_err(err)?;
            foreign_agents.push(ForeignAgentEntry {
                address: fa.address,
                sa: SecurityAssociation {
                    spi: fa.spi,
                    algorithm: fa.algorithm.into(),
                    key,
                    replay: ReplayMethod::Timestamp,
                },
            });
        }
        let sid = file.sid.check()?;
        let ha = file.home_agent;
        Ok(DaemonConfig {
            listen: ha.listen,
            control_socket: ha.control_socket,
            dataplane: ha.home_interface.map(|interface| DataplaneConfig {
                interface,
                tunnel_mtu: ha.tunnel_mtu,
                gratuitous_arp_count: ha.gratuitous_arp_count,
                advertisement: AdvertConfig {
                    address: ha.address,
                    prefix_len: ha.prefix_len,
                    periodic: ha.advertise,
                    interval: Duration::from_millis(interval_ms),
                    lifetime: advertisement_lifetime,
                    registration_lifetime: ha.max_lifetime,
                    prefix_lengths: ha.advertisement_prefix_lengths,
                },
            }),
            home_agent: HomeAgentConfig {
                address: ha.address,
                prefix_len: ha.prefix_len,
                max_lifetime: ha.max_lifetime,
                replay_window: Duration::from_secs(ha.replay_window),
                max_bindings: ha.max_bindings,
                simultaneous_bindings: ha.simultaneous_bindings,
                reply_to_failed_authentication: ha.reply_to_failed_authentication,
                reverse_tunnel: ha.reverse_tunnel,
                minimal_encapsulation: ha.minimal_encapsulation,
                gre_encapsulation: ha.gre_encapsulation,
                mobile_nodes,
                foreign_agents,
                sid,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[home_agent]
address = "198.18.0.1"
prefix_len = 24

[[mobile_node]]
home_address = "198.18.0.10"
[[mobile_node.sa]]
spi = 256
key = "000102030405060708090a0b0c0d0e0f"
"#;

    #[test]
    fn minimal_config_takes_the_named_defaults() {
        let c = DaemonConfig::parse(MINIMAL).expect("valid");
        assert_eq!(c.home_agent.replay_window, Duration::from_secs(7));
        assert_eq!(c.home_agent.max_lifetime, DEFAULT_MAX_LIFETIME);
        assert_eq!(c.listen, default_listen());
        let sa = &c.home_agent.mobile_nodes[0].security_associations[0];
        assert_eq!(sa.algorithm, AuthAlgorithm::HmacMd5);
        assert_eq!(sa.replay, ReplayMethod::Timestamp);
    }

    #[test]
    fn unknown_field_is_refused_with_its_name() {
        let text = MINIMAL.replace("prefix_len = 24", "prefix_len = 24\nmax_lifetme = 5");
        let e = DaemonConfig::parse(&text).expect_err("typo must be refused").to_string();
        assert!(e.contains("max_lifetme"), "{e}");
    }

    #[test]
    fn short_key_reserved_spi_and_bad_hex_are_refused() {
        for (from, to, needle) in [
            ("0c0d0e0f\"", "\"", "at least 16"),
            ("spi = 256", "spi = 12", "reserved"),
            ("000102", "zz0102", "not hex"),
        ] {
            let e = DaemonConfig::parse(&MINIMAL.replace(from, to)).expect_err(needle).to_string();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn data_plane_keys() {
        let c = DaemonConfig::parse(MINIMAL).expect("valid");
        assert_eq!(c.dataplane, None);
        let text = MINIMAL.replace("prefix_len = 24", "prefix_len = 24\nhome_interface = \"eth0\"");
        let c = DaemonConfig::parse(&text).expect("valid");
        assert_eq!(
            c.dataplane,
            Some(DataplaneConfig {
                interface: "eth0".into(),
                tunnel_mtu: 1500,
                gratuitous_arp_count: 3,
                advertisement: AdvertConfig::new(Ipv4Addr::new(198, 18, 0, 1), 24, DEFAULT_MAX_LIFETIME),
            })
        );
        let text = text.replace("eth0\"", "eth0\"\ntunnel_mtu = 1400\ngratuitous_arp_count = 1");
        let d = DaemonConfig::parse(&text).expect("valid").dataplane.expect("on");
        assert_eq!((d.tunnel_mtu, d.gratuitous_arp_count), (1400, 1));
        for (from, to, needle) in [
            ("tunnel_mtu = 1400", "tunnel_mtu = 500", "tunnel_mtu"),
            ("gratuitous_arp_count = 1", "gratuitous_arp_count = 0", "gratuitous_arp_count"),
            ("\"eth0\"", "\"a/b\"", "home_interface"),
        ] {
            let e = DaemonConfig::parse(&text.replace(from, to)).expect_err(needle).to_string();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn advertisement_keys_have_named_defaults_and_are_checked() {
        let base = MINIMAL.replace("prefix_len = 24", "prefix_len = 24\nhome_interface = \"eth0\"\nmax_lifetime = 600");
        let a = DaemonConfig::parse(&base).expect("valid").dataplane.expect("on").advertisement;
        assert!(a.periodic && !a.prefix_lengths);
        assert_eq!((a.interval, a.lifetime, a.registration_lifetime), (Duration::from_secs(1), 3, 600));
        assert_eq!((a.address, a.prefix_len), (Ipv4Addr::new(198, 18, 0, 1), 24));

        let text = base.replace(
            "max_lifetime = 600",
            "max_lifetime = 600\nadvertise = false\nadvertisement_interval_ms = 1500\n\
             advertisement_prefix_lengths = true",
        );
        let a = DaemonConfig::parse(&text).expect("valid").dataplane.expect("on").advertisement;
        assert!(!a.periodic && a.prefix_lengths);
        assert_eq!((a.interval, a.lifetime), (Duration::from_millis(1500), 5), "lifetime rounds up");
        let text = text.replace("= 1500", "= 1500\nadvertisement_lifetime = 60");
        let a = DaemonConfig::parse(&text).expect("valid").dataplane.expect("on").advertisement;
        assert_eq!(a.lifetime, 60);

        for (from, to, needle) in [
            ("= 1500", "= 99", "advertisement_interval_ms"),
            ("= 1500", "= 1800001", "advertisement_interval_ms"),
            ("advertisement_lifetime = 60", "advertisement_lifetime = 4", "advertisement_lifetime"),
            ("advertisement_lifetime = 60", "advertisement_lifetime = 9001", "advertisement_lifetime"),
            ("advertise = false", "advertise = 1", "advertise"),
        ] {
            let e = DaemonConfig::parse(&text.replace(from, to)).expect_err(needle).to_string();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn sid_section_has_named_defaults_and_is_checked() {
        let c = DaemonConfig::parse(MINIMAL).expect("valid");
        assert_eq!(c.home_agent.sid, SidConfig::default());
        assert!(c.home_agent.sid.enabled, "SID is on by default");
        assert_eq!(c.home_agent.sid.org_id, 32473);
        let text = format!(
            "{MINIMAL}\n[sid]\norg_id = 9\nmax_transfer_lifetime = 60\nwake_up_attempts = 3\n\
             wake_up_interval_ms = 500\nprivate_key = \"{}\"\n",
            "11".repeat(32)
        );
        let s = DaemonConfig::parse(&text).expect("valid").home_agent.sid;
        assert_eq!((s.org_id, s.max_transfer_lifetime, s.wake_up_attempts), (9, 60, 3));
        assert_eq!(s.wake_up_interval, Duration::from_millis(500));
        assert!(s.private_key.is_some());
        for (from, to, needle) in [
            ("max_transfer_lifetime = 60", "max_transfer_lifetime = 0", "max_transfer_lifetime"),
            ("wake_up_attempts = 3", "wake_up_attempts = 0", "wake_up_attempts"),
            ("wake_up_interval_ms = 500", "wake_up_interval_ms = 5", "wake_up_interval_ms"),
            ("org_id = 9", "org_id = 9\nenable = false", "enable"),
            ("private_key = \"11", "private_key = \"1", "private_key"),
        ] {
            let e = DaemonConfig::parse(&text.replace(from, to)).expect_err(needle).to_string();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn broadcast_address_of_the_home_network() {
        let c = HomeAgentConfig::new(Ipv4Addr::new(198, 18, 0, 1), 24);
        assert_eq!(c.home_broadcast(), Ipv4Addr::new(198, 18, 0, 255));
        let c = HomeAgentConfig::new(Ipv4Addr::new(198, 18, 0, 1), 32);
        assert_eq!(c.home_broadcast(), Ipv4Addr::new(198, 18, 0, 1));
    }
}
