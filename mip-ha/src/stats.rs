//! Counters of the home agent, shown by `ha-admin stats`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Why a datagram was dropped without a reply. Each reason has its own counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscardReason {
    /// Not a Registration Request (another message type, or empty).
    NotARequest,
    /// Shorter than the fixed part, or an extension whose length is wrong.
    Malformed,
    /// An extension of type 0-127 that we do not know (RFC 5944 1.9: silently discard).
    UnknownExtension,
    /// No mobility security association for this home address / NAI (3.8.2.1 a).
    NoSecurityAssociation,
    /// No Mobile-Home Authentication Extension (3.8.2.1 a).
    NoAuthenticator,
    /// Authenticator wrong and no reply is to be sent for it (3.8.2.1 a).
    FailedAuthenticationSilently,
    /// A Foreign-Home Authentication Extension from an agent we share no
    /// association with (3.8.2.1 d).
    UnexpectedForeignHomeAuth,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct HaStats {
    /// Datagrams handed to the home agent.
    pub datagrams: u64,
    /// Registration Requests that parsed.
    pub requests: u64,
    /// Requests accepted with a non-zero lifetime.
    pub accepted: u64,
    /// Requests accepted with lifetime 0.
    pub deregistrations: u64,
    /// Retransmitted requests answered again without changing state (3.8.2.2).
    pub duplicates: u64,
    /// Denials, by reply code.
    pub denied: BTreeMap<u8, u64>,
    /// Requests whose Mobile-Home authenticator did not verify (answered or not).
    pub authentication_failures: u64,
    /// Silent drops, by reason.
    pub discarded: BTreeMap<DiscardReason, u64>,
    pub replies_sent: u64,
    pub bindings_added: u64,
    pub bindings_removed: u64,
    pub bindings_expired: u64,
    pub bindings_revoked: u64,
    /// Session Inter-Device transfers (issue 4).
    pub sid: SidStats,
}

/// Counters of SID transfers and wake-ups.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SidStats {
    /// Transfers accepted from a Transferring Node.
    pub transfers_started: u64,
    /// Renewals accepted from a Target (lifetime 0 included).
    pub renewals: u64,
    /// Further transfers accepted (binding moved to a second Target).
    pub further_transfers: u64,
    /// Stop-transfer demands accepted (with or without a running transfer).
    pub stop_transfer_demands: u64,
    /// Transfers ended, for any reason.
    pub transfers_ended: u64,
    /// Requests under a session SPI whose authenticator did not verify.
    pub target_authentication_failures: u64,
    /// Session keys that could not be recovered (answered 134).
    pub key_failures: u64,
    /// SID requests refused for any reason.
    pub refused: u64,
    pub wake_ups_sent: u64,
    pub wake_ups_acknowledged: u64,
    /// Wake-ups given up after the last try.
    pub wake_ups_abandoned: u64,
    /// Acknowledgements that matched no wake-up or failed authentication (dropped).
    pub bad_acknowledgements: u64,
}

impl HaStats {
    pub(crate) fn discard(&mut self, reason: DiscardReason) {
        *self.discarded.entry(reason).or_default() += 1;
    }

    pub(crate) fn deny(&mut self, code: u8) {
        *self.denied.entry(code).or_default() += 1;
    }

    pub fn discarded(&self, reason: DiscardReason) -> u64 {
        self.discarded.get(&reason).copied().unwrap_or(0)
    }

    pub fn denied(&self, code: u8) -> u64 {
        self.denied.get(&code).copied().unwrap_or(0)
    }

    pub fn total_denied(&self) -> u64 {
        self.denied.values().sum()
    }
}
