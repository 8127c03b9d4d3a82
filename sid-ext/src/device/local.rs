//! The same-subnet transfer (patent FIG. 1b), sans-IO: the Target sits on the Transferring
//! Node's own link, so no Agent is needed. The Target takes the address over by ARP, holds
//! it while the transfer lasts, and at the end wakes the TN up itself.
//!
//! - [`LocalTn`]: tells the Target to take the address now (a *take-over* Registration
//!   Request to the Target's UDP 434), stops answering ARP once the Target confirmed
//!   ([`LocalTnEvent::ReleaseAddress`]); takes the address back
//!   ([`LocalTnEvent::TakeBackAddress`]) on the Target's wake-up, after its own
//!   stop-transfer demand, or when a wake-up is overdue.
//! - [`LocalTarget`]: answers the take-over ([`LocalTargetEvent::AssumeAddress`]: the
//!   address goes on the TUN device, gratuitous ARPs announce it), obeys an authentic
//!   stop-transfer demand, ends the transfer on the user's command or when the lifetime
//!   runs out, and then sends the wake-up (RFC 6098 Generic Notification with the Wake-Up
//!   element, [`crate::wire::wake_up`]) to the TN's stored link-layer address as a frame
//!   built by the shell ([`LinkTransmit`]), or to its interim address, retrying until the
//!   TN acknowledges. It keeps the address until the acknowledgement (the TN has taken it
//!   back by then) or a short grace, so that the stream never finds nobody holding it.
//!
//! Every message between the two is an existing format (RFC-NOTES "SID formats" 4, 5)
//! authenticated with a Mobile-Home Authentication Extension under the *same-subnet
//! association* ([`local_association`]): SPI = the Session SPI both derive from the
//! session key ([`super::session_spi`]), HMAC-MD5 under a subkey derived from the session
//! key with HKDF-SHA256, timestamps (RFC 5944 5.7.1) against replay. The byte layouts and
//! processing rules are in `notes-fig1b.md`.

mod target;
#[cfg(test)]
mod tests;
mod tn;

use std::time::Duration;

use mip_core::auth::{AuthAlgorithm, ReplayMethod, SecurityAssociation};
use mip_core::time::Time;
use mip_core::wire::notification::{
    NOTIFICATION_ACK_FIXED_LEN, NOTIFICATION_ACK_TYPE, NOTIFICATION_FIXED_LEN, NOTIFICATION_TYPE,
};
use mip_core::wire::{
    message_type, Extension, ExtensionIter, REPLY_FIXED_LEN, REPLY_TYPE, REQUEST_FIXED_LEN,
    REQUEST_TYPE,
};

use super::session_spi;
use crate::crypto::{self, CryptoError, SessionKey};

pub use target::{
    LocalSession, LocalTarget, LocalTargetConfig, LocalTargetEvent, LocalTargetState,
    LocalTargetStats,
};
pub use tn::{LocalPlan, LocalTn, LocalTnConfig, LocalTnEvent, LocalTnState};
/// What the Target sends as a frame to the TN's MAC (the same type as the Agent's).
pub use crate::wire::wake_up::LinkTransmit;

/// HKDF `info` of the same-subnet association key.
pub const LOCAL_ASSOCIATION_INFO: &[u8] = b"sidmip same-subnet association v1";

/// Gratuitous ARP repeats after the first (which the shell sends with the address change):
/// a neighbour that missed or ignored one takes a later one.
pub const DEFAULT_ANNOUNCE_AFTER: [Duration; 2] =
    [Duration::from_millis(250), Duration::from_millis(1000)];

/// The association between the TN and a same-subnet Target for one session key:
/// SPI = [`session_spi`]`(key)`; algorithm HMAC-MD5 (RFC 5944 3.5.1 coverage, so that the
/// ordinary Mobile-Home Authentication Extension carries it); key = HKDF-SHA256(salt none,
/// IKM = session key, info = [`LOCAL_ASSOCIATION_INFO`]), 32 bytes, so that it differs from
/// the Agent/Target association of FIG. 1a (keyed by the session key itself); timestamps.
pub fn local_association(key: &SessionKey) -> Result<SecurityAssociation, CryptoError> {
    let spi = session_spi(key)?;
    let k = crypto::hkdf_sha256(None, key.as_bytes(), &[LOCAL_ASSOCIATION_INFO])?;
    Ok(SecurityAssociation {
        spi,
        algorithm: AuthAlgorithm::HmacMd5,
        key: k.to_vec(),
        replay: ReplayMethod::Timestamp,
    })
}

/// The SPI of the first Mobile-Home Authentication Extension of a UDP 434 message
/// (request, reply, Generic Notification or its acknowledgement): lets a shell that runs
/// several roles hand a datagram to the one whose association it names.
pub fn authenticator_spi(payload: &[u8]) -> Option<u32> {
    let fixed = match message_type(payload)? {
        REQUEST_TYPE => REQUEST_FIXED_LEN,
        REPLY_TYPE => REPLY_FIXED_LEN,
        NOTIFICATION_TYPE => NOTIFICATION_FIXED_LEN,
        NOTIFICATION_ACK_TYPE => NOTIFICATION_ACK_FIXED_LEN,
        _ => return None,
    };
    if payload.len() < fixed {
        return None;
    }
    ExtensionIter::new(payload, fixed)
        .map_while(Result::ok)
        .find_map(|i| match i.ext {
            Extension::MobileHomeAuth(a) => Some(a.spi),
            _ => None,
        })
}

/// Gratuitous ARP repeats after an address change: due times from a base.
#[derive(Debug, Clone, Default)]
struct Announcer {
    base: Option<Time>,
    next: usize,
}

impl Announcer {
    fn start(&mut self, now: Time) {
        self.base = Some(now);
        self.next = 0;
    }

    fn cancel(&mut self) {
        self.base = None;
    }

    fn deadline(&self, after: &[Duration]) -> Option<Time> {
        Some(self.base? + *after.get(self.next)?)
    }

    /// True when a repeat is due; repeats overdue together count once.
    fn due(&mut self, now: Time, after: &[Duration]) -> bool {
        let mut due = false;
        while self.deadline(after).is_some_and(|t| t <= now) {
            self.next += 1;
            due = true;
        }
        due
    }
}
