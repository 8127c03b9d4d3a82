//! The `sidctl serve --config FILE` configuration (TOML, unknown keys rejected). Examples:
//! `config/sid-tn.toml`, `config/sid-target.toml`.
//!
//! ```toml
//! [device]
//! identity = "desk"                 # as the peers know this device (1-64 octets)
//! address = "198.18.0.10"           # own address: the TN's moving address / the Target's care-of
//! interface = "eth0"
//! control_socket = "/run/sidctl-desk.sock"
//! # optional: negotiation_port = 4343, registration_port = 434, org_id = 32473,
//! # data_plane = true, tun_name = "sid0", tun_mtu = 1400, route_table = 4343,
//! # ip_command = "ip", auto_transfer = false, lifetime = 120, private_key = "hex",
//! # link_address = "02:00:00:00:00:01" (the MAC sent for the wake-up without data plane),
//! # interim_address = "198.18.0.99" (an address the TN holds for the wake-up instead)
//!
//! [agent]                            # the TN's Agent and its mobility security association
//! address = "198.18.0.1"
//! spi = 1000
//! key = "hex"
//!
//! [[peer]]
//! identity = "laptop"
//! address = "198.19.1.10:4343"       # optional: only needed to send it Offers
//! psk = "hex"                        # or public_key = "hex" (X25519)
//! # same_subnet = true               # this peer is on our link: transfer without the Agent
//! ```
//!
//! **Same-subnet transfers (patent FIG. 1b).** A TN offers terms without an Agent, and the
//! Target then takes the address over by ARP itself, when
//!
//! - the TN has no `[agent]` section (every transfer is then a same-subnet one), or
//! - the peer has `same_subnet = true`, or
//! - the user asks for it: `sidctl offer --local ...`, or `sidctl accept ID --local` when
//!   the Target made the offer.
//!
//! A Target needs nothing more: it takes whatever the terms say (an Agent: FIG. 1a,
//! none: FIG. 1b). Configuration examples: `config/sid-tn-local.toml`,
//! `config/sid-target-local.toml`.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};

use mip_core::auth::{AuthAlgorithm, ReplayMethod, SecurityAssociation};
use serde::Deserialize;
use sid_ext::crypto::{PrivateKey, PublicKey};
use sid_ext::negotiation::{Association, NegotiatorConfig, PeerConfig, SharedSecret, NEGOTIATION_PORT};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    device: DeviceSection,
    agent: Option<AgentSection>,
    #[serde(default)]
    peer: Vec<PeerSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceSection {
    identity: String,
    address: Ipv4Addr,
    interface: String,
    control_socket: PathBuf,
    negotiation_port: Option<u16>,
    registration_port: Option<u16>,
    org_id: Option<u32>,
    data_plane: Option<bool>,
    tun_name: Option<String>,
    tun_mtu: Option<u16>,
    route_table: Option<u32>,
    ip_command: Option<PathBuf>,
    auto_transfer: Option<bool>,
    lifetime: Option<u16>,
    private_key: Option<String>,
    link_address: Option<String>,
    interim_address: Option<Ipv4Addr>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentSection {
    address: Ipv4Addr,
    spi: u32,
    key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerSection {
    identity: String,
    address: Option<SocketAddrV4>,
    psk: Option<String>,
    public_key: Option<String>,
    same_subnet: Option<bool>,
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct SidConfig {
    pub identity: String,
    pub address: Ipv4Addr,
    pub interface: String,
    pub control_socket: PathBuf,
    pub negotiation_port: u16,
    pub registration_port: u16,
    pub org_id: u32,
    /// Off: control plane only (no TUN, no raw sockets, no ARP changes; tests without root).
    pub data_plane: bool,
    pub tun_name: String,
    pub tun_mtu: u16,
    pub route_table: u32,
    pub ip_command: PathBuf,
    /// TN: ask the Agent for the transfer as soon as a negotiation succeeds.
    pub auto_transfer: bool,
    /// Default lifetime offered, seconds.
    pub lifetime: u16,
    /// The TN's Agent and association (absent on a device that is only ever a Target).
    pub agent: Option<(Ipv4Addr, SecurityAssociation)>,
    /// The TN's MAC for the wake-up when the data plane is off (else the interface's).
    pub link_address: Option<[u8; 6]>,
    /// The TN's interim address for the wake-up, when it holds one.
    pub interim_address: Option<Ipv4Addr>,
    /// Peers (identities) on this device's own link: transfers to them go without the
    /// Agent (FIG. 1b).
    pub same_subnet_peers: Vec<String>,
    pub negotiator: NegotiatorConfig,
}

fn invalid(s: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(s.into())
}

fn hex_bytes(what: &str, s: &str) -> Result<Vec<u8>, ConfigError> {
    hex::decode(s.trim()).map_err(|e| invalid(format!("{what}: not hex: {e}")))
}

fn key32(what: &str, s: &str) -> Result<[u8; 32], ConfigError> {
    <[u8; 32]>::try_from(hex_bytes(what, s)?.as_slice())
        .map_err(|_| invalid(format!("{what}: 32 bytes (64 hex digits) expected")))
}

impl SidConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let f: File = toml::from_str(text)?;
        let d = f.device;
        let agent = match f.agent {
            Some(a) => {
                if a.spi < 256 {
                    return Err(invalid("agent.spi: 0-255 are reserved"));
                }
                let key = hex_bytes("agent.key", &a.key)?;
                if key.is_empty() {
                    return Err(invalid("agent.key is empty"));
                }
                let sa = SecurityAssociation {
                    spi: a.spi,
                    algorithm: AuthAlgorithm::HmacMd5,
                    key,
                    replay: ReplayMethod::Timestamp,
                };
                Some((a.address, sa))
            }
            None => None,
        };
        let mut negotiator = NegotiatorConfig::new(d.identity.clone());
        if let Some(k) = &d.private_key {
            negotiator.private_key = Some(PrivateKey::from_bytes(&key32("device.private_key", k)?));
        }
        let mut same_subnet_peers = Vec::new();
        for p in f.peer {
            if p.same_subnet == Some(true) {
                same_subnet_peers.push(p.identity.clone());
            }
            let association = match (&p.psk, &p.public_key) {
                (Some(s), None) => Association::PreShared(SharedSecret::new(hex_bytes("peer.psk", s)?)),
                (None, Some(k)) => Association::PublicKey(PublicKey::from_bytes(key32("peer.public_key", k)?)),
                _ => return Err(invalid(format!("peer {:?}: exactly one of psk and public_key", p.identity))),
            };
            negotiator.peers.push(PeerConfig {
                identity: p.identity,
                address: p.address,
                association,
            });
        }
        negotiator
            .validate()
            .map_err(|e| invalid(format!("negotiation: {e}")))?;
        let lifetime = d.lifetime.unwrap_or(120);
        if lifetime == 0 {
            return Err(invalid("device.lifetime must be at least 1"));
        }
        let link_address = match &d.link_address {
            Some(m) => Some(mip_ha::sid::parse_mac(m).ok_or_else(|| invalid("device.link_address: aa:bb:cc:dd:ee:ff expected"))?),
            None => None,
        };
        if let Some(i) = d.interim_address {
            if i.is_unspecified() || i.is_broadcast() || i.is_multicast() || i == d.address {
                return Err(invalid("device.interim_address: another unicast address of this device"));
            }
        }
        Ok(SidConfig {
            link_address,
            interim_address: d.interim_address,
            same_subnet_peers,
            identity: d.identity,
            address: d.address,
            interface: d.interface,
            control_socket: d.control_socket,
            negotiation_port: d.negotiation_port.unwrap_or(NEGOTIATION_PORT),
            registration_port: d.registration_port.unwrap_or(mip_core::REGISTRATION_PORT),
            org_id: d.org_id.unwrap_or(sid_ext::wire::DEFAULT_ORG_ID),
            data_plane: d.data_plane.unwrap_or(true),
            tun_name: d.tun_name.unwrap_or_else(|| "sid0".into()),
            tun_mtu: d.tun_mtu.unwrap_or(1400),
            route_table: d.route_table.unwrap_or(4343),
            ip_command: d.ip_command.unwrap_or_else(|| "ip".into()),
            auto_transfer: d.auto_transfer.unwrap_or(false),
            lifetime,
            agent,
            negotiator,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn example_configs_parse() {
        for f in ["sid-tn.toml", "sid-target.toml", "sid-tn-local.toml", "sid-target-local.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config").join(f);
            let c = SidConfig::load(&path).unwrap();
            assert_eq!(c.negotiation_port, 4343);
        }
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        let tn = SidConfig::load(&dir.join("sid-tn-local.toml")).unwrap();
        assert!(tn.agent.is_none(), "a same-subnet TN needs no Agent");
        let both = SidConfig::load(&dir.join("sid-target-local.toml")).unwrap();
        assert_eq!(both.same_subnet_peers, vec!["desk".to_owned()]);
    }

    #[test]
    fn same_subnet_settings() {
        let base = "[device]\nidentity='a'\naddress='198.18.0.10'\ninterface='eth0'\ncontrol_socket='/tmp/x'\n";
        let peer = "[[peer]]\nidentity='b'\npsk='000102030405060708090a0b0c0d0e0f'\n";
        let c = SidConfig::parse(&format!("{base}interim_address='198.18.0.99'\n{peer}same_subnet=true\n")).unwrap();
        assert_eq!(c.interim_address, Some(Ipv4Addr::new(198, 18, 0, 99)));
        assert_eq!(c.same_subnet_peers, vec!["b".to_owned()]);
        assert!(SidConfig::parse(&format!("{base}{peer}")).unwrap().same_subnet_peers.is_empty());
        assert!(SidConfig::parse(&format!("{base}interim_address='198.18.0.10'\n")).is_err());
        assert!(SidConfig::parse(&format!("{base}interim_address='224.0.0.1'\n")).is_err());
    }

    #[test]
    fn bad_values_are_refused() {
        let base = "[device]\nidentity='a'\naddress='198.18.0.10'\ninterface='eth0'\ncontrol_socket='/tmp/x'\n";
        assert!(SidConfig::parse(base).is_ok());
        assert!(SidConfig::parse(&format!("{base}bogus=1\n")).is_err());
        assert!(SidConfig::parse(&format!("{base}[agent]\naddress='198.18.0.1'\nspi=5\nkey='00'\n")).is_err());
        assert!(SidConfig::parse(&format!("{base}[[peer]]\nidentity='b'\npsk='00'\n")).is_err());
    }
}
