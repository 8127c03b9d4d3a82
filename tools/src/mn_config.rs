//! Command-line values of `mip-mn`, parsed and turned into a [`MobileNodeConfig`].
//!
//! Kept out of the binary so that the parsing rules have unit tests.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use mip_core::auth::{AuthAlgorithm, ReplayMethod, SecurityAssociation};
use mip_core::mobile_node::{
    MnError, MobileNodeConfig, DEFAULT_INITIAL_RETRANSMIT, DEFAULT_MAX_RETRANSMIT,
};
use mip_core::wire::RegistrationFlags;
use mip_core::REGISTRATION_PORT;

/// Why command-line values cannot make a configuration (exit code 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MnConfigError {
    #[error("home agent {0:?}: expected an IPv4 address, optionally with :PORT")]
    HomeAgent(String),
    #[error("SPI {0:?}: expected a decimal or 0x-prefixed hexadecimal 32-bit number")]
    SpiSyntax(String),
    #[error("SPI {0}: values 0 to 255 are reserved (RFC 5944 5.1)")]
    SpiReserved(u32),
    #[error("key: {0}")]
    Key(&'static str),
    #[error(transparent)]
    Node(#[from] MnError),
}

/// `ADDR` or `ADDR:PORT`; the port defaults to 434.
pub fn parse_home_agent(s: &str) -> Result<SocketAddrV4, MnConfigError> {
    if let Ok(addr) = s.parse::<SocketAddrV4>() {
        return Ok(addr);
    }
    s.parse::<Ipv4Addr>()
        .map(|ip| SocketAddrV4::new(ip, REGISTRATION_PORT))
        .map_err(|_| MnConfigError::HomeAgent(s.to_owned()))
}

/// A security parameter index in decimal or `0x` hexadecimal, outside the reserved 0..=255.
pub fn parse_spi(s: &str) -> Result<u32, MnConfigError> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse::<u32>(),
    };
    let spi = parsed.map_err(|_| MnConfigError::SpiSyntax(s.to_owned()))?;
    if spi <= 255 {
        return Err(MnConfigError::SpiReserved(spi));
    }
    Ok(spi)
}

/// A shared key, written in hex (an optional `0x` prefix is allowed).
#[derive(Clone, PartialEq, Eq)]
pub struct KeyBytes(pub Vec<u8>);

impl std::fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} key bytes redacted>", self.0.len())
    }
}

pub fn parse_key(s: &str) -> Result<KeyBytes, MnConfigError> {
    let hex_text = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    let key = hex::decode(hex_text)
        .map_err(|_| MnConfigError::Key("not an even number of hex digits"))?;
    if key.is_empty() {
        return Err(MnConfigError::Key("empty"));
    }
    Ok(KeyBytes(key))
}

/// Everything the command line says about the registration.
#[derive(Debug, Clone)]
pub struct MnOptions {
    pub home_agent: SocketAddrV4,
    pub home_address: Option<Ipv4Addr>,
    pub care_of: Ipv4Addr,
    pub spi: u32,
    pub key: KeyBytes,
    pub algorithm: AuthAlgorithm,
    pub replay: ReplayMethod,
    pub lifetime: u16,
    pub nai: Option<String>,
    pub max_attempts: u32,
    pub reverse_tunnel: bool,
}

/// The mobile node configuration for these options, validated.
pub fn build_config(o: &MnOptions) -> Result<MobileNodeConfig, MnConfigError> {
    let sa = SecurityAssociation {
        spi: o.spi,
        algorithm: o.algorithm,
        key: o.key.0.clone(),
        replay: o.replay,
    };
    let home_address = o.home_address.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let mut flags = RegistrationFlags::default();
    if o.reverse_tunnel {
        flags = flags.with(RegistrationFlags::T);
    }
    let cfg = MobileNodeConfig {
        home_address,
        home_agent: *o.home_agent.ip(),
        care_of_address: o.care_of,
        lifetime: o.lifetime,
        sa,
        flags,
        nai: o.nai.as_ref().map(|n| n.as_bytes().to_vec()),
        initial_retransmit: DEFAULT_INITIAL_RETRANSMIT,
        max_retransmit: DEFAULT_MAX_RETRANSMIT
            .min(Duration::from_secs(u64::from(o.lifetime.max(1)))),
        max_attempts: o.max_attempts.max(1),
    };
    cfg.validate()?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_agent_port_defaults_to_434() {
        assert_eq!(
            parse_home_agent("198.18.0.1"),
            Ok(SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 434))
        );
        assert_eq!(
            parse_home_agent("198.18.0.1:4434"),
            Ok(SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 4434))
        );
        assert!(parse_home_agent("ha.example").is_err());
    }

    #[test]
    fn spi_decimal_hex_and_reserved() {
        assert_eq!(parse_spi("4097"), Ok(4097));
        assert_eq!(parse_spi("0x1001"), Ok(4097));
        assert_eq!(parse_spi("255"), Err(MnConfigError::SpiReserved(255)));
        assert!(matches!(
            parse_spi("0xzz"),
            Err(MnConfigError::SpiSyntax(_))
        ));
    }

    #[test]
    fn key_is_hex_and_never_printed() {
        assert_eq!(parse_key("0x00ff").map(|k| k.0), Ok(vec![0, 0xff]));
        assert!(parse_key("abc").is_err());
        assert!(parse_key("").is_err());
        assert_eq!(
            format!("{:?}", KeyBytes(vec![1, 2])),
            "<2 key bytes redacted>"
        );
    }

    #[test]
    fn config_needs_an_identity() {
        let mut o = MnOptions {
            home_agent: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 434),
            home_address: None,
            care_of: Ipv4Addr::new(198, 19, 0, 2),
            spi: 4097,
            key: KeyBytes(vec![1; 16]),
            algorithm: AuthAlgorithm::HmacMd5,
            replay: ReplayMethod::Timestamp,
            lifetime: 300,
            nai: None,
            max_attempts: 5,
            reverse_tunnel: false,
        };
        assert_eq!(
            build_config(&o).err(),
            Some(MnConfigError::Node(MnError::NoIdentity))
        );
        o.nai = Some("mn@example.test".into());
        let cfg = build_config(&o).expect("valid");
        assert!(cfg.home_address.is_unspecified());
        assert_eq!(cfg.nai.as_deref(), Some(&b"mn@example.test"[..]));
    }
}
