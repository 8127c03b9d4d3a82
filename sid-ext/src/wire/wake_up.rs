//! The wake-up: an RFC 6098 Generic Notification Message (type 22) from the Agent (or, on
//! the same subnet, the Target) to the Transferring Node, carrying the Wake-Up element and
//! closed by a Mobile-Home Authentication Extension under the Transferring Node's
//! association; and the Transferring Node's Generic Notification Acknowledgement (type 23),
//! authenticated the same way.
//!
//! Fixed-part fields of the wake-up: MD 0 (home agent to mobile node: the Agent plays the
//! home agent, the Transferring Node the mobile node), Home Address = the Transferring
//! Node's address, Home Agent Address = the sender's address, Care-of Address = the Target
//! the binding pointed to when it ended, Identification per RFC 5944 5.7 under the
//! Transferring Node's replay method. The acknowledgement copies all four and has MD 2.

use core::net::SocketAddrV4;

use mip_core::auth::{append_auth_extension, SecurityAssociation};
use mip_core::wire::ext_type::MOBILE_HOME_AUTH;
use mip_core::wire::notification::{
    GenericNotification, GenericNotificationAck, GenericNotificationAckRepr,
    GenericNotificationRepr, NOTIFICATION_ACK_FIXED_LEN, NOTIFICATION_FIXED_LEN,
};
use mip_core::wire::{Extension, ExtensionIter, WireError, AUTH_EXT_COVERED_HEADER};

use super::collect::{SidError, SidExtensions};
use super::element::{SidElement, WakeUpReason};

/// Why a datagram is not a usable wake-up or acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WakeUpError {
    /// The fixed part or the extension framing is broken, or the type is wrong.
    #[error("{0}")]
    Wire(#[from] WireError),
    /// The SID elements are broken.
    #[error("{0}")]
    Sid(#[from] SidError),
    /// A Generic Notification without a Wake-Up element: not a SID wake-up.
    #[error("generic notification carries no Wake-Up element")]
    NotAWakeUp,
    /// No Mobile-Home Authentication Extension: the message cannot be trusted.
    #[error("no Mobile-Home Authentication Extension")]
    Unauthenticated,
}

/// A Mobile-Home Authentication Extension as found, with the bytes its authenticator
/// covers (RFC 5944 3.5.1): check it with `mip_core::auth::verify_authenticator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authenticated<'a> {
    pub spi: u32,
    pub authenticator: &'a [u8],
    pub covered: &'a [u8],
}

/// A wake-up as received, before its authenticator is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedWakeUp<'a> {
    pub notification: GenericNotificationRepr,
    pub reason: WakeUpReason,
    /// Every SID element before the authenticator (the Wake-Up included).
    pub sid: SidExtensions<'a>,
    pub auth: Authenticated<'a>,
}

/// An acknowledgement as received, before its authenticator is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedWakeUpAck<'a> {
    pub ack: GenericNotificationAckRepr,
    pub auth: Authenticated<'a>,
}

/// A UDP datagram for the Transferring Node's address (the wake-up, or on the same subnet
/// any answer to the TN) that the shell must send as an Ethernet frame to `mac`, without
/// consulting ARP: while the transfer lasts, ARP maps the TN's address to the Agent (FIG.
/// 1a) or to the same-subnet Target itself (FIG. 1b).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkTransmit {
    pub mac: [u8; 6],
    /// The sender's address (the Agent's, or the same-subnet Target's), port 434.
    pub source: SocketAddrV4,
    /// The TN's address, port 434.
    pub destination: SocketAddrV4,
    pub payload: Vec<u8>,
}

/// The whole wake-up datagram: fixed part, Wake-Up element for `org_id`, and the
/// Mobile-Home Authentication Extension computed under `sa`.
pub fn build_wake_up(
    notification: &GenericNotificationRepr,
    org_id: u32,
    reason: WakeUpReason,
    sa: &SecurityAssociation,
) -> Result<Vec<u8>, WireError> {
    let mut m = notification.to_bytes();
    SidElement::WakeUp(reason).append_to(org_id, &mut m)?;
    append_auth_extension(&mut m, MOBILE_HOME_AUTH, sa);
    Ok(m)
}

/// The whole acknowledgement datagram, authenticated under `sa`.
pub fn build_wake_up_ack(ack: &GenericNotificationAckRepr, sa: &SecurityAssociation) -> Vec<u8> {
    let mut m = ack.to_bytes();
    append_auth_extension(&mut m, MOBILE_HOME_AUTH, sa);
    m
}

/// The first Mobile-Home Authentication Extension of `message` after `fixed_len`.
fn first_mhae(message: &[u8], fixed_len: usize) -> Result<Authenticated<'_>, WakeUpError> {
    for item in ExtensionIter::new(message, fixed_len) {
        let item = item?;
        if let Extension::MobileHomeAuth(a) = item.ext {
            let covered = message
                .get(..item.offset + AUTH_EXT_COVERED_HEADER)
                .ok_or(WireError::Malformed("authenticator past the end"))?;
            return Ok(Authenticated {
                spi: a.spi,
                authenticator: a.authenticator,
                covered,
            });
        }
    }
    Err(WakeUpError::Unauthenticated)
}

/// Reads a wake-up (a UDP 434 payload of type 22) for organization `org_id`.
pub fn parse_wake_up(payload: &[u8], org_id: u32) -> Result<ReceivedWakeUp<'_>, WakeUpError> {
    let view = GenericNotification::new_checked(payload)?;
    let notification = GenericNotificationRepr::parse(&view)?;
    let sid = SidExtensions::from_message(payload, NOTIFICATION_FIXED_LEN, org_id)?;
    let reason = sid.wake_up.ok_or(WakeUpError::NotAWakeUp)?;
    let auth = first_mhae(payload, NOTIFICATION_FIXED_LEN)?;
    Ok(ReceivedWakeUp {
        notification,
        reason,
        sid,
        auth,
    })
}

/// Reads an acknowledgement (a UDP 434 payload of type 23).
pub fn parse_wake_up_ack(payload: &[u8]) -> Result<ReceivedWakeUpAck<'_>, WakeUpError> {
    let view = GenericNotificationAck::new_checked(payload)?;
    let ack = GenericNotificationAckRepr::parse(&view)?;
    // Framing errors anywhere count, not only before the authenticator.
    for item in ExtensionIter::new(payload, NOTIFICATION_ACK_FIXED_LEN) {
        item?;
    }
    let auth = first_mhae(payload, NOTIFICATION_ACK_FIXED_LEN)?;
    Ok(ReceivedWakeUpAck { ack, auth })
}

#[cfg(test)]
mod tests;
