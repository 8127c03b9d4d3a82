//! The negotiation between a Transferring Node and a Target Node, sans-IO
//! (patent FIG. 1a/1b: "it negotiates the session transfer with the Target Node. Either
//! the Transferring Node or the Target Node may initiate the negotiation").
//!
//! Four messages over UDP port [`NEGOTIATION_PORT`]; the side that starts is the
//! initiator, whatever its role:
//!
//! ```text
//!   initiator                                   responder
//!   Offer   (who, role, session terms, nonce) -->
//!                                             <-- Accept (final terms, nonce) | Refuse (code)
//!   Session Key (random key, encrypted)       -->
//!                                             <-- Confirm (MAC under the session key)
//! ```
//!
//! Every message is authenticated on receipt: under a key derived from the two devices'
//! pre-shared secret, or, with public keys, from a secret the Offer carries sealed by
//! HPKE auth mode from the initiator's key to the responder's. The Confirm is keyed by
//! the session key itself, so the initiator knows the responder holds it. Each MAC also
//! covers the hash of every earlier message, so both ends agree on the whole exchange.
//! The design and its reasoning: RFC-NOTES.md, "SID negotiation".
//!
//! [`Negotiator`] is one device's endpoint for any number of configured peers. It opens
//! no socket and reads no clock: the shell feeds it datagrams and the time, sends what
//! [`Negotiator::poll_transmit`] returns, wakes it at [`Negotiator::poll_timeout`] and
//! reads outcomes from [`Negotiator::poll_event`]. Randomness comes from the CSPRNG given
//! at construction.

mod endpoint;
mod keys;
mod terms;
#[cfg(test)]
mod tests;
pub mod wire;

use core::fmt;
use core::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use zeroize::Zeroizing;

use crate::crypto::{CryptoError, PrivateKey, PublicKey, SessionKey};

pub use endpoint::Negotiator;
pub use terms::{ReversePath, Role, SessionTerms, TermsError, MAX_LLA_LEN};
pub use wire::{Mode, RefuseCode};

/// UDP port of the negotiation (our choice, not IANA-assigned; configurable in the shell).
pub const NEGOTIATION_PORT: u16 = 4343;
/// Shortest pre-shared secret accepted: 128 bits.
pub const MIN_SECRET_LEN: usize = 16;
pub const DEFAULT_INITIAL_RETRANSMIT: Duration = Duration::from_secs(1);
pub const DEFAULT_MAX_RETRANSMIT: Duration = Duration::from_secs(8);
/// Sends of one message (first one included) before giving up: 1+2+4+8+8+8 = 31 s.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 6;
/// How far an Offer's timestamp may be from the responder's clock.
pub const DEFAULT_TIMESTAMP_WINDOW: Duration = Duration::from_secs(30);
/// How long a responder waits for its user to accept or refuse an Offer.
pub const DEFAULT_DECISION_TIMEOUT: Duration = Duration::from_secs(20);

/// A pre-shared secret. Zeroed on drop; `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedSecret(Zeroizing<Vec<u8>>);

impl SharedSecret {
    pub fn new(bytes: Vec<u8>) -> Self {
        SharedSecret(Zeroizing::new(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedSecret(<{} bytes redacted>)", self.0.len())
    }
}

/// The security association this device shares with one peer device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Association {
    PreShared(SharedSecret),
    /// The peer's X25519 public key; this device's private key is
    /// [`NegotiatorConfig::private_key`].
    PublicKey(PublicKey),
}

impl Association {
    pub fn mode(&self) -> Mode {
        match self {
            Association::PreShared(_) => Mode::PreShared,
            Association::PublicKey(_) => Mode::PublicKey,
        }
    }
}

/// A device this one may negotiate with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// The peer's identity as it names itself in its Offers (1 to 64 octets of UTF-8).
    pub identity: String,
    /// Where to send our Offers; `None` if this device only answers that peer. Answers
    /// always go back to the address the peer's message came from.
    pub address: Option<SocketAddrV4>,
    pub association: Association,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatorConfig {
    /// This device's identity (1 to 64 octets of UTF-8).
    pub identity: String,
    /// Needed when any peer is configured by public key.
    pub private_key: Option<PrivateKey>,
    pub peers: Vec<PeerConfig>,
    /// First retransmission timeout; doubled per retransmission up to `max_retransmit`.
    pub initial_retransmit: Duration,
    pub max_retransmit: Duration,
    /// Sends of one message, the first included, before the initiator gives up; 0 counts as 1.
    pub max_attempts: u32,
    pub timestamp_window: Duration,
    pub decision_timeout: Duration,
}

impl NegotiatorConfig {
    /// A configuration with the default timers and no peers.
    pub fn new(identity: impl Into<String>) -> Self {
        NegotiatorConfig {
            identity: identity.into(),
            private_key: None,
            peers: Vec::new(),
            initial_retransmit: DEFAULT_INITIAL_RETRANSMIT,
            max_retransmit: DEFAULT_MAX_RETRANSMIT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            timestamp_window: DEFAULT_TIMESTAMP_WINDOW,
            decision_timeout: DEFAULT_DECISION_TIMEOUT,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        check_identity(&self.identity)?;
        for (i, peer) in self.peers.iter().enumerate() {
            check_identity(&peer.identity)?;
            if peer.identity == self.identity {
                return Err(ConfigError::PeerIsSelf(peer.identity.clone()));
            }
            if self.peers[..i].iter().any(|p| p.identity == peer.identity) {
                return Err(ConfigError::DuplicatePeer(peer.identity.clone()));
            }
            match &peer.association {
                Association::PreShared(s) if s.as_bytes().len() < MIN_SECRET_LEN => {
                    return Err(ConfigError::SecretTooShort {
                        peer: peer.identity.clone(),
                        len: s.as_bytes().len(),
                    })
                }
                Association::PublicKey(_) if self.private_key.is_none() => {
                    return Err(ConfigError::NoPrivateKey(peer.identity.clone()))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn check_identity(id: &str) -> Result<(), ConfigError> {
    if id.is_empty() || id.len() > wire::MAX_ID_LEN {
        return Err(ConfigError::IdentityLength {
            identity: id.to_owned(),
        });
    }
    Ok(())
}

/// Why a configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("identity {identity:?} must be 1 to 64 octets")]
    IdentityLength { identity: String },
    #[error("peer {0:?} has this device's own identity")]
    PeerIsSelf(String),
    #[error("peer {0:?} is configured twice")]
    DuplicatePeer(String),
    #[error("pre-shared secret for {peer:?} is {len} bytes; at least 16 are needed")]
    SecretTooShort { peer: String, len: usize },
    #[error("peer {0:?} is configured by public key but this device has no private key")]
    NoPrivateKey(String),
}

/// Names one negotiation at this endpoint (not on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NegotiationId(pub u64);

/// Where a negotiation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NegotiationState {
    /// Initiator: Offer sent, waiting for Accept or Refuse.
    OfferSent,
    /// Initiator: Session Key sent, waiting for Confirm.
    KeySent,
    /// Responder: Offer received and reported; waiting for `accept` or `refuse`.
    AwaitingDecision,
    /// Responder: Accept sent, waiting for the Session Key.
    Accepted,
    /// Responder: done; answers a repeated Session Key with the same Confirm for a while.
    Confirmed,
    /// Responder: refused; answers a repeated Offer with the same Refuse for a while.
    Refused,
}

/// How a negotiation ended without a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FailReason {
    #[error("the peer refused: {0:?}")]
    Refused(RefuseCode),
    #[error("the peer refused the Offer's timestamp: its clock is {offset_micros} µs ahead of ours (negative: behind)")]
    ClockSkew {
        /// The peer's clock minus ours, from the Refuse's timestamp.
        offset_micros: i64,
    },
    #[error("this device refused: {0:?}")]
    Declined(RefuseCode),
    #[error("no answer after {attempts} attempts")]
    NoResponse { attempts: u32 },
    #[error("answers arrived but none authenticated ({count}); the keys of the two devices likely differ")]
    AuthenticationFailed { count: u32 },
    #[error("the peer's answer is not acceptable: {0}")]
    BadTerms(TermsError),
    #[error("superseded by a newer negotiation with the same peer")]
    Superseded,
    #[error("the session key could not be protected: {0}")]
    Crypto(CryptoError),
}

/// Why a datagram was dropped before any negotiation state was made for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// The Offer's MAC, or in public-key mode its Offer Secret, did not verify.
    BadAuthenticator,
    /// The Offer's Mode is not the one configured for that peer.
    ModeMismatch,
    /// An Offer seen before (its nonce is remembered for the timestamp window).
    Replay,
    /// The Offer's timestamp is outside the window; a Refuse(ClockSkew) was sent.
    Stale,
}

/// Something the shell reports or acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NegotiationEvent {
    /// An authenticated, fresh Offer: answer with [`Negotiator::accept`] or
    /// [`Negotiator::refuse`].
    Offered {
        id: NegotiationId,
        peer: String,
        from: SocketAddrV4,
        /// The initiator's role; this device would take the other one.
        peer_role: Role,
        terms: SessionTerms,
    },
    /// Both devices hold the same session key and the same terms.
    Negotiated {
        id: NegotiationId,
        /// This device's role in the transfer.
        role: Role,
        session_key: SessionKey,
        agent: Option<Ipv4Addr>,
        tn_address: Ipv4Addr,
        tn_lla: Vec<u8>,
        interim: Option<Ipv4Addr>,
        further_transfer: bool,
        reverse_path: ReversePath,
        lifetime: u16,
        peer: String,
        peer_address: SocketAddrV4,
    },
    Failed {
        id: NegotiationId,
        peer: String,
        reason: FailReason,
    },
    /// A datagram naming a configured peer was dropped for a security reason.
    Rejected {
        from: SocketAddrV4,
        peer: String,
        reason: RejectReason,
    },
}

/// Why a call from the application was refused. The negotiation, if any, is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    #[error("no peer {0:?} is configured")]
    UnknownPeer(String),
    #[error("peer {0:?} has no address to send an Offer to")]
    NoPeerAddress(String),
    #[error("this device has no private key for a public-key association")]
    NoPrivateKey,
    #[error("a negotiation with {0:?} is already under way")]
    Busy(String),
    #[error("no negotiation {0:?}")]
    UnknownNegotiation(NegotiationId),
    #[error("negotiation {id:?} is {state:?}, not waiting for a decision")]
    NotAwaitingDecision {
        id: NegotiationId,
        state: NegotiationState,
    },
    #[error("terms not acceptable: {0}")]
    Terms(#[from] TermsError),
    #[error("{0}")]
    Crypto(#[from] CryptoError),
    #[error("message could not be built: {0}")]
    Wire(#[from] mip_core::wire::WireError),
}

/// Counters, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NegotiationStats {
    pub sent: u64,
    pub retransmissions: u64,
    /// Answers repeated from the cache for a repeated Offer or Session Key.
    pub repeated_answers: u64,
    pub negotiated: u64,
    pub failed: u64,
    pub discarded_malformed: u64,
    /// Offers for another identity, from an unknown peer, or answers matching nothing.
    pub discarded_unmatched: u64,
    pub discarded_unauthenticated: u64,
    pub discarded_replay: u64,
    pub discarded_stale: u64,
    /// Offers dropped because our own simultaneous Offer to the same peer wins.
    pub glare_dropped: u64,
}
