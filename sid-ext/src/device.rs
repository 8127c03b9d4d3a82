//! The two devices after a successful negotiation, sans-IO (patent FIG. 1a; the
//! same-subnet case of FIG. 1b, without an Agent, is [`local`]).
//!
//! - [`TransferringNode`]: asks the Agent to transfer its address to the Target (a
//!   Registration Request authenticated under its own mobility security association,
//!   carrying the session key wrapped for the Agent), then stops answering ARP for the
//!   address ([`TnEvent::ReleaseAddress`]); takes it back on the Agent's wake-up (verified,
//!   acknowledged with type 23) or after its own stop-transfer demand
//!   ([`TnEvent::TakeBackAddress`]).
//! - [`Target`]: holds the transferred address ([`TargetEvent::InstallAddress`]), renews the
//!   binding under the temporary session association before it runs out, ends it with
//!   lifetime 0, and hands it on to a second Target when the F flag was granted.
//!
//! Like `mip_core::mobile_node::MobileNode` they open no socket and read no clock: the
//! shell feeds datagrams and the time, sends what `poll_transmit` returns, wakes them at
//! `poll_timeout` and acts on `poll_event`. Request layouts: RFC-NOTES.md "SID formats"
//! section 4; key protection: the Agent's `mip-ha/src/sid/keys.rs` (mirrored here by
//! [`transfer_context`] and [`session_association`], checked against it in tools tests).
//!
//! The Session SPI is not carried by the negotiation, so both devices derive it from the
//! session key ([`session_spi`]): the TN puts it in its request, the Target renews under it.

mod exchange;
pub mod local;
mod target;
#[cfg(test)]
mod tests;
mod transferring;

use core::net::Ipv4Addr;
use std::time::Duration;

use mip_core::auth::{AuthAlgorithm, ReplayMethod, SecurityAssociation};
use mip_core::wire::{ReplyCode, WireError};

use crate::crypto::{self, CryptoError, SessionKey};
use crate::wire::element::FIRST_USABLE_SPI;
use crate::wire::LinkLayerAddress;

pub use target::{Target, TargetConfig, TargetEvent, TargetSession, TargetState};
pub use transferring::{TnConfig, TnEvent, TnState, TransferPlan, TransferringNode};

/// First bytes of every [`transfer_context`] (the Agent's `TRANSFER_CONTEXT_LABEL`).
pub const TRANSFER_CONTEXT_LABEL: &[u8; 16] = b"sidmip agent v1 ";
/// Length of a [`transfer_context`].
pub const TRANSFER_CONTEXT_LEN: usize = 33;
/// HKDF `info` of [`session_spi`].
pub const SESSION_SPI_INFO: &[u8] = b"sidmip session spi v1";

/// Which request carries a session key; part of the key's context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TransferStage {
    /// From the TN, under its mobility security association.
    Transfer = 1,
    /// From the current Target, under the current session association.
    FurtherTransfer = 2,
}

/// The context bound into the key wrap (same 33 bytes as the Agent's): label, stage, TN
/// address, Target address, Session SPI (big endian), Agent address.
pub fn transfer_context(
    stage: TransferStage,
    transferring_node: Ipv4Addr,
    target: Ipv4Addr,
    session_spi: u32,
    agent: Ipv4Addr,
) -> [u8; TRANSFER_CONTEXT_LEN] {
    let mut c = [0u8; TRANSFER_CONTEXT_LEN];
    let parts: [&[u8]; 6] = [
        TRANSFER_CONTEXT_LABEL,
        &[stage as u8],
        &transferring_node.octets(),
        &target.octets(),
        &session_spi.to_be_bytes(),
        &agent.octets(),
    ];
    let mut at = 0;
    for p in parts {
        if let Some(dst) = c.get_mut(at..at + p.len()) {
            dst.copy_from_slice(p);
        }
        at += p.len();
    }
    c
}

/// The Session SPI both devices use for a session key: the first 32 bits of
/// HKDF-SHA256(key, [`SESSION_SPI_INFO`]), moved out of the reserved range 0-255.
pub fn session_spi(key: &SessionKey) -> Result<u32, CryptoError> {
    let okm = crypto::hkdf_sha256(None, key.as_bytes(), &[SESSION_SPI_INFO])?;
    let raw = u32::from_be_bytes([okm[0], okm[1], okm[2], okm[3]]);
    // Map into 256..=u32::MAX without bias worth speaking of.
    Ok(FIRST_USABLE_SPI + raw % (u32::MAX - FIRST_USABLE_SPI + 1))
}

/// The temporary Agent/Target association: HMAC-MD5 keyed by the session key itself,
/// timestamp replay protection (as the Agent's `session_association`).
pub fn session_association(spi: u32, key: &SessionKey) -> SecurityAssociation {
    SecurityAssociation {
        spi,
        algorithm: AuthAlgorithm::HmacMd5,
        key: key.as_bytes().to_vec(),
        replay: ReplayMethod::Timestamp,
    }
}

/// A link-layer address owned (the wire element borrows).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LinkAddress {
    /// ARP hardware type; 1 = Ethernet.
    pub hardware_type: u16,
    pub address: Vec<u8>,
}

impl LinkAddress {
    pub fn ethernet(mac: [u8; 6]) -> Self {
        LinkAddress {
            hardware_type: crate::wire::element::HARDWARE_TYPE_ETHERNET,
            address: mac.to_vec(),
        }
    }

    pub fn as_element(&self) -> LinkLayerAddress<'_> {
        LinkLayerAddress {
            hardware_type: self.hardware_type,
            address: &self.address,
        }
    }
}

/// Retransmission of requests, as `MobileNodeConfig`'s fields (RFC 5944 3.6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// First timeout, at least 1 s; doubled per retransmission up to `max_retransmit`.
    pub initial_retransmit: Duration,
    pub max_retransmit: Duration,
    /// Requests per transaction, the first included; 0 counts as 1.
    pub max_attempts: u32,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            initial_retransmit: Duration::from_secs(1),
            max_retransmit: Duration::from_secs(8),
            max_attempts: 5,
        }
    }
}

/// Why a command was refused. The device's state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    #[error("only timestamp replay protection is implemented for SID requests")]
    NonceUnsupported,
    #[error("{0}")]
    Crypto(#[from] CryptoError),
    #[error("request could not be built: {0}")]
    Wire(#[from] WireError),
    #[error("not possible in state {0}")]
    WrongState(&'static str),
    #[error("the Transferring Node did not permit further transfer")]
    FurtherTransferNotPermitted,
    #[error("the session SPI {0} is one of this node's own SPIs; negotiate a new key")]
    SpiClash(u32),
    #[error("a transfer needs a link-layer or an interim address for the wake-up")]
    NoWakeUpAddress,
    #[error("invalid address: {0}")]
    BadAddress(&'static str),
}

/// How a request transaction ended without acceptance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFailure {
    /// The Agent answered with this code (authenticated).
    Denied(ReplyCode),
    /// No authenticated answer after this many requests.
    NoAnswer { attempts: u32 },
}

impl core::fmt::Display for RequestFailure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RequestFailure::Denied(code) => {
                write!(f, "denied {} ({})", u8::from(*code), code.description())
            }
            RequestFailure::NoAnswer { attempts } => write!(f, "no answer after {attempts} requests"),
        }
    }
}

/// Counters of one device, for `status` and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceStats {
    pub requests_sent: u64,
    pub retransmissions: u64,
    pub replies_accepted: u64,
    pub replies_denied: u64,
    pub resyncs: u64,
    pub discarded_malformed: u64,
    pub discarded_unmatched: u64,
    pub discarded_auth: u64,
    pub wake_ups_accepted: u64,
    pub wake_ups_discarded: u64,
}
