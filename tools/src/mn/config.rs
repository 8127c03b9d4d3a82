//! The `mip-mn run --config FILE` configuration (TOML, unknown keys rejected).
//!
//! ```toml
//! [mobile_node]
//! home_address = "198.18.0.10"
//! home_prefix_len = 24
//! home_gateway = "198.18.0.254"
//! home_agent = "198.18.0.1"
//! interface = "eth0"
//! lifetime = 300
//! reverse_tunnel = false
//!
//! [security_association]
//! spi = 256
//! algorithm = "hmac-md5"      # or "keyed-md5"
//! replay = "timestamp"        # or "nonce"
//! key = "6d69702d..."         # hex
//!
//! [[colocated]]
//! prefix = "198.18.2.0/24"
//! address = "198.18.2.100"
//! gateway = "198.18.2.254"
//! ```
//!
//! `[daemon]` (all optional) tunes the shell: TUN name and MTU, policy routing table,
//! status file, solicitation address and back-off, gratuitous ARP repetitions.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mip_core::auth::{AuthAlgorithm, ReplayMethod, SecurityAssociation};
use mip_core::dataplane::Encapsulation;
use mip_core::mobile_node::{
    MobileNodeConfig, DEFAULT_INITIAL_RETRANSMIT, DEFAULT_LIFETIME, DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_RETRANSMIT,
};
use mip_core::movement::{Ipv4Prefix, MovementConfig};
use mip_core::wire::RegistrationFlags;
use serde::Deserialize;

use crate::mn_config::{parse_key, parse_spi, MnConfigError};

/// Why a configuration file cannot be used (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    #[error(transparent)]
    Value(#[from] MnConfigError),
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub mobile_node: NodeSection,
    pub security_association: SaSection,
    #[serde(default)]
    pub colocated: Vec<ColocatedSection>,
    #[serde(default)]
    pub daemon: DaemonSection,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    pub home_address: Ipv4Addr,
    /// Length of the home network prefix (the home link is home_address/home_prefix_len).
    pub home_prefix_len: u8,
    /// Default router on the home link.
    pub home_gateway: Ipv4Addr,
    pub home_agent: Ipv4Addr,
    /// The node's one network interface.
    #[serde(default = "default_interface")]
    pub interface: String,
    /// Requested registration lifetime, seconds.
    #[serde(default = "default_lifetime")]
    pub lifetime: u16,
    /// Ask for reverse tunnelling (T, RFC 3024): where a foreign agent offers it, and always
    /// in co-located mode (the node then tunnels its own packets to the home agent).
    #[serde(default)]
    pub reverse_tunnel: bool,
    /// Encapsulation asked of the home agent: "ip-in-ip" (default), "minimal" (M) or "gre"
    /// (G). Through a foreign agent it is asked only if the agent advertises it.
    #[serde(default)]
    pub encapsulation: EncapsulationName,
    /// Mobile Node NAI (RFC 2794), sent with every request.
    #[serde(default)]
    pub nai: Option<String>,
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EncapsulationName {
    #[default]
    IpInIp,
    Minimal,
    Gre,
}

impl EncapsulationName {
    pub fn kind(self) -> Encapsulation {
        match self {
            EncapsulationName::IpInIp => Encapsulation::IpInIp,
            EncapsulationName::Minimal => Encapsulation::Minimal,
            EncapsulationName::Gre => Encapsulation::Gre,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaSection {
    /// Decimal or "0x" hex in a string, or a TOML integer.
    pub spi: SpiValue,
    pub key: String,
    #[serde(default)]
    pub algorithm: AlgorithmName,
    #[serde(default)]
    pub replay: ReplayName,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SpiValue {
    Number(u32),
    Text(String),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlgorithmName {
    #[default]
    HmacMd5,
    KeyedMd5,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplayName {
    #[default]
    Timestamp,
    Nonce,
}

/// A foreign link where the node uses a co-located care-of address.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColocatedSection {
    /// The link's prefix, e.g. "198.18.2.0/24"; `address` gets its length on the interface.
    pub prefix: String,
    pub address: Ipv4Addr,
    pub gateway: Ipv4Addr,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonSection {
    #[serde(default = "default_tun_name")]
    pub tun_name: String,
    /// MTU of the TUN device; default 1500, or 1480 with reverse tunnelling so that the
    /// encapsulated packets still fit a 1500-byte link.
    #[serde(default)]
    pub tun_mtu: Option<u16>,
    /// Largest packet sent on the interface, tunnel header included.
    #[serde(default = "default_link_mtu")]
    pub link_mtu: u16,
    /// Policy routing table for packets from the home address in co-located mode.
    #[serde(default = "default_route_table")]
    pub route_table: u32,
    /// JSON status, rewritten on every change (atomically, by rename).
    #[serde(default)]
    pub status_file: Option<PathBuf>,
    /// Destination of Agent Solicitations: 224.0.0.11 (all mobility agents, RFC 5944 2.3),
    /// 224.0.0.2 or 255.255.255.255 (RFC 1256).
    #[serde(default = "default_solicitation_address")]
    pub solicitation_address: Ipv4Addr,
    /// Longest interval between solicitations, seconds (RFC 5944 2.4: at least 60).
    #[serde(default = "default_max_solicitation_interval")]
    pub max_solicitation_interval: u64,
    /// Gratuitous ARPs sent when returning home (RFC 5944 4.6: a small number).
    #[serde(default = "default_garp_count")]
    pub gratuitous_arp_count: u32,
    #[serde(default = "default_garp_interval_ms")]
    pub gratuitous_arp_interval_ms: u64,
    /// Where `ip` is; the default finds it on PATH.
    #[serde(default = "default_ip_command")]
    pub ip_command: PathBuf,
}

impl Default for DaemonSection {
    fn default() -> Self {
        Self {
            tun_name: default_tun_name(),
            tun_mtu: None,
            link_mtu: default_link_mtu(),
            route_table: default_route_table(),
            status_file: None,
            solicitation_address: default_solicitation_address(),
            max_solicitation_interval: default_max_solicitation_interval(),
            gratuitous_arp_count: default_garp_count(),
            gratuitous_arp_interval_ms: default_garp_interval_ms(),
            ip_command: default_ip_command(),
        }
    }
}

fn default_interface() -> String {
    "eth0".into()
}
fn default_lifetime() -> u16 {
    DEFAULT_LIFETIME
}
fn default_max_attempts() -> u32 {
    DEFAULT_MAX_ATTEMPTS
}
fn default_tun_name() -> String {
    "mip0".into()
}
fn default_link_mtu() -> u16 {
    1500
}
fn default_route_table() -> u32 {
    100
}
fn default_solicitation_address() -> Ipv4Addr {
    Ipv4Addr::new(224, 0, 0, 11)
}
fn default_max_solicitation_interval() -> u64 {
    60
}
fn default_garp_count() -> u32 {
    3
}
fn default_garp_interval_ms() -> u64 {
    1000
}
fn default_ip_command() -> PathBuf {
    PathBuf::from("ip")
}

/// A co-located link, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Colocated {
    pub prefix: Ipv4Prefix,
    pub address: Ipv4Addr,
    pub gateway: Ipv4Addr,
}

/// Everything the daemon needs, checked.
#[derive(Debug, Clone)]
pub struct MnDaemonConfig {
    pub home_address: Ipv4Addr,
    pub home_prefix: Ipv4Prefix,
    pub home_gateway: Ipv4Addr,
    pub home_agent: Ipv4Addr,
    pub interface: String,
    pub reverse_tunnel: bool,
    pub encapsulation: Encapsulation,
    pub node: MobileNodeConfig,
    pub movement: MovementConfig,
    pub colocated: Vec<Colocated>,
    pub tun_name: String,
    pub tun_mtu: u16,
    pub link_mtu: u16,
    pub route_table: u32,
    pub status_file: Option<PathBuf>,
    pub solicitation_address: Ipv4Addr,
    pub gratuitous_arp_count: u32,
    pub gratuitous_arp_interval: Duration,
    pub ip_command: PathBuf,
}

impl MnDaemonConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let file: ConfigFile = toml::from_str(text)?;
        Self::from_file(file)
    }

    pub fn from_file(f: ConfigFile) -> Result<Self, ConfigError> {
        let invalid = |s: String| ConfigError::Invalid(s);
        let n = &f.mobile_node;
        let home_prefix = Ipv4Prefix::new(n.home_address, n.home_prefix_len)
            .map_err(|e| invalid(format!("mobile_node.home_prefix_len: {e}")))?;
        if n.home_address.is_unspecified() || n.home_agent.is_unspecified() {
            return Err(invalid("home_address and home_agent must be set".into()));
        }
        if !home_prefix.contains(n.home_gateway) {
            return Err(invalid(format!(
                "home_gateway {} is not on the home link {home_prefix}",
                n.home_gateway
            )));
        }
        if n.interface.is_empty() || n.interface.len() > 15 {
            return Err(invalid(format!("interface name {:?}", n.interface)));
        }
        let spi = match &f.security_association.spi {
            SpiValue::Number(v) => parse_spi(&v.to_string())?,
            SpiValue::Text(s) => parse_spi(s)?,
        };
        let sa = SecurityAssociation {
            spi,
            algorithm: match f.security_association.algorithm {
                AlgorithmName::HmacMd5 => AuthAlgorithm::HmacMd5,
                AlgorithmName::KeyedMd5 => AuthAlgorithm::KeyedMd5PrefixSuffix,
            },
            key: parse_key(&f.security_association.key)?.0,
            replay: match f.security_association.replay {
                ReplayName::Timestamp => ReplayMethod::Timestamp,
                ReplayName::Nonce => ReplayMethod::Nonce,
            },
        };
        let mut colocated = Vec::new();
        for c in &f.colocated {
            let prefix: Ipv4Prefix = c
                .prefix
                .parse()
                .map_err(|e| invalid(format!("colocated prefix {:?}: {e}", c.prefix)))?;
            if !prefix.contains(c.address) || !prefix.contains(c.gateway) {
                return Err(invalid(format!(
                    "colocated {prefix}: address {} and gateway {} must be in the prefix",
                    c.address, c.gateway
                )));
            }
            if prefix.contains(n.home_address) || home_prefix.contains(prefix.network()) {
                return Err(invalid(format!(
                    "colocated {prefix} overlaps the home link"
                )));
            }
            if colocated.iter().any(|o: &Colocated| o.prefix == prefix) {
                return Err(invalid(format!("colocated {prefix} given twice")));
            }
            colocated.push(Colocated {
                prefix,
                address: c.address,
                gateway: c.gateway,
            });
        }
        let node = MobileNodeConfig {
            home_address: n.home_address,
            home_agent: n.home_agent,
            // Replaced by each move; the node starts by learning where it is.
            care_of_address: n.home_address,
            lifetime: n.lifetime,
            sa,
            flags: RegistrationFlags::default(),
            nai: n.nai.as_ref().map(|s| s.as_bytes().to_vec()),
            initial_retransmit: DEFAULT_INITIAL_RETRANSMIT,
            max_retransmit: DEFAULT_MAX_RETRANSMIT
                .min(Duration::from_secs(u64::from(n.lifetime.max(1)))),
            max_attempts: n.max_attempts.max(1),
        };
        node.validate().map_err(MnConfigError::from)?;
        let d = &f.daemon;
        if d.tun_name.is_empty() || d.tun_name.len() > 15 {
            return Err(invalid(format!("daemon.tun_name {:?}", d.tun_name)));
        }
        let mut movement = MovementConfig::new(n.home_agent, home_prefix);
        movement.colocated_prefixes = colocated.iter().map(|c| c.prefix).collect();
        movement.max_solicitation_interval =
            Duration::from_secs(d.max_solicitation_interval.max(1));
        let tun_mtu = d.tun_mtu.unwrap_or(if n.reverse_tunnel {
            d.link_mtu.saturating_sub(20)
        } else {
            d.link_mtu
        });
        if tun_mtu < 576 || d.link_mtu < 576 {
            return Err(invalid("tun_mtu and link_mtu must be at least 576".into()));
        }
        Ok(Self {
            home_address: n.home_address,
            home_prefix,
            home_gateway: n.home_gateway,
            home_agent: n.home_agent,
            interface: n.interface.clone(),
            reverse_tunnel: n.reverse_tunnel,
            encapsulation: n.encapsulation.kind(),
            node,
            movement,
            colocated,
            tun_name: d.tun_name.clone(),
            tun_mtu,
            link_mtu: d.link_mtu,
            route_table: d.route_table,
            status_file: d.status_file.clone(),
            solicitation_address: d.solicitation_address,
            gratuitous_arp_count: d.gratuitous_arp_count,
            gratuitous_arp_interval: Duration::from_millis(d.gratuitous_arp_interval_ms.max(1)),
            ip_command: d.ip_command.clone(),
        })
    }

    /// The co-located link of `prefix`, if configured.
    pub fn colocated_for(&self, prefix: Ipv4Prefix) -> Option<Colocated> {
        self.colocated.iter().copied().find(|c| c.prefix == prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
[mobile_node]
home_address = "198.18.0.10"
home_prefix_len = 24
home_gateway = "198.18.0.254"
home_agent = "198.18.0.1"
reverse_tunnel = true

[security_association]
spi = 256
key = "6d69702d68612d6c61622d6b65792d31"

[[colocated]]
prefix = "198.18.2.0/24"
address = "198.18.2.100"
gateway = "198.18.2.254"
"#;

    #[test]
    fn sample_parses_with_defaults() {
        let c = MnDaemonConfig::parse(SAMPLE).expect("valid");
        assert_eq!(c.interface, "eth0");
        assert_eq!(c.tun_name, "mip0");
        assert_eq!(c.tun_mtu, 1480, "room for the reverse tunnel header");
        assert_eq!(c.home_prefix.to_string(), "198.18.0.0/24");
        assert_eq!(c.colocated.len(), 1);
        assert_eq!(c.node.sa.spi, 256);
        assert_eq!(c.movement.colocated_prefixes, vec![c.colocated[0].prefix]);
        assert_eq!(c.solicitation_address, Ipv4Addr::new(224, 0, 0, 11));
        let p: Ipv4Prefix = "198.18.2.0/24".parse().expect("prefix");
        assert_eq!(
            c.colocated_for(p).map(|c| c.address),
            Some(Ipv4Addr::new(198, 18, 2, 100))
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected() {
        let typo = SAMPLE.replace("reverse_tunnel", "reverse_tunel");
        assert!(matches!(
            MnDaemonConfig::parse(&typo),
            Err(ConfigError::Toml(_))
        ));
        let outside = SAMPLE.replace("198.18.2.100", "198.18.3.100");
        assert!(matches!(
            MnDaemonConfig::parse(&outside),
            Err(ConfigError::Invalid(_))
        ));
        let spi = SAMPLE.replace("spi = 256", "spi = 7");
        assert!(matches!(
            MnDaemonConfig::parse(&spi),
            Err(ConfigError::Value(_))
        ));
        let gw = SAMPLE.replace("198.18.0.254", "198.18.9.254");
        assert!(matches!(
            MnDaemonConfig::parse(&gw),
            Err(ConfigError::Invalid(_))
        ));
        let overlap = SAMPLE.replace("198.18.2.0/24", "198.18.0.0/16");
        assert!(MnDaemonConfig::parse(&overlap).is_err());
    }

    #[test]
    fn shipped_sample_configs_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("config dir").flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with("mn") && name.ends_with(".toml") {
                MnDaemonConfig::load(&entry.path()).unwrap_or_else(|e| panic!("{name}: {e}"));
                seen += 1;
            }
        }
        assert!(seen >= 1, "config/mn*.toml");
    }
}
