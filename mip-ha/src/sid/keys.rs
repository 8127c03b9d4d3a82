//! How the session key reaches the Agent, and what it keys.
//!
//! The Encrypted Session Key element (docs/sid-formats.md 2.2) of a transfer request is
//! protected under the association that authenticates the request: the TN's mobility
//! security association for a transfer, the current session association for a further
//! transfer. Algorithm 1 is `sid_ext::crypto::wrap_for_association` (AES-256 key wrap with
//! padding, RFC 5649, under HKDF-SHA256(association key, "sidmip session key wrap v1" ||
//! context)); algorithm 2 is HPKE base mode to the Agent's public key with `info` =
//! context. Both bind the [`transfer_context`], so that a wrapped key cannot be moved to
//! another TN, Target, SPI, Agent, or from a transfer to a further transfer.
//!
//! The temporary Agent/Target association ([`session_association`]) uses the 256-bit
//! session key itself as its HMAC-MD5 key (docs/sid-formats.md 2.3: "whose key is the
//! session key"), with timestamp replay protection. HMAC takes any key length, and the key
//! is used for nothing else at the Agent: the next key is wrapped under a key HKDF derives
//! from it, which is a different key.

use std::net::Ipv4Addr;

use mip_core::auth::{AuthAlgorithm, ReplayMethod, SecurityAssociation};
use sid_ext::crypto::{self, CryptoError, PrivateKey, SessionKey};
use sid_ext::wire::{EncryptedSessionKey, SessionKeyAlgorithm};

/// First bytes of every [`transfer_context`].
pub const TRANSFER_CONTEXT_LABEL: &[u8; 16] = b"sidmip agent v1 ";
/// Length of a [`transfer_context`].
pub const TRANSFER_CONTEXT_LEN: usize = 16 + 1 + 16;

/// Which request carries the key: it is part of the context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TransferStage {
    /// From the TN, under its mobility security association.
    Transfer = 1,
    /// From the current Target, under the current session association.
    FurtherTransfer = 2,
}

/// The context bound into the key protection, 33 bytes:
///
/// ```text
/// 0..16  "sidmip agent v1 " (ASCII, the last byte a space)
/// 16     stage: 1 transfer (from the TN), 2 further transfer (from the current Target)
/// 17..21 the TN's address (the request's Home Address)
/// 21..25 the Target's address (the Target Address element: the new tunnel end)
/// 25..29 the Session SPI element (big endian): the SPI the new key will be used under
/// 29..33 the Agent's address (the request's Home Agent field)
/// ```
pub fn transfer_context(
    stage: TransferStage,
    transferring_node: Ipv4Addr,
    target: Ipv4Addr,
    session_spi: u32,
    agent: Ipv4Addr,
) -> [u8; TRANSFER_CONTEXT_LEN] {
    let mut c = [0u8; TRANSFER_CONTEXT_LEN];
    let (label, rest) = c.split_at_mut(TRANSFER_CONTEXT_LABEL.len());
    label.copy_from_slice(TRANSFER_CONTEXT_LABEL);
    let fields = [
        &[stage as u8][..],
        &transferring_node.octets(),
        &target.octets(),
        &session_spi.to_be_bytes(),
        &agent.octets(),
    ];
    let mut at = 0;
    for f in fields {
        if let Some(dst) = rest.get_mut(at..at + f.len()) {
            dst.copy_from_slice(f);
        }
        at += f.len();
    }
    c
}

/// Why the Agent could not recover a session key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Crypto(#[from] CryptoError),
    #[error("session key sealed with HPKE, but the Agent has no private key configured")]
    NoPrivateKey,
    #[error("session key algorithm {0} is not implemented")]
    UnknownAlgorithm(u8),
}

/// Recovers the session key of an Encrypted Session Key element.
pub fn recover_session_key(
    element: &EncryptedSessionKey<'_>,
    association_key: &[u8],
    private_key: Option<&PrivateKey>,
    context: &[u8],
) -> Result<SessionKey, KeyError> {
    match element.algorithm {
        SessionKeyAlgorithm::AesKeyWrapPadded => {
            Ok(crypto::unwrap_for_association(element.data, association_key, context)?)
        }
        SessionKeyAlgorithm::HpkeX25519Aes128Gcm => {
            let sk = private_key.ok_or(KeyError::NoPrivateKey)?;
            Ok(crypto::open_with_private_key(element.data, sk, context)?)
        }
        SessionKeyAlgorithm::Unknown(a) => Err(KeyError::UnknownAlgorithm(a)),
    }
}

/// The sender's side of algorithm 1 (for the TN or the Target, and for tests): the
/// element's data for `key` under `association_key`.
pub fn wrap_session_key(
    key: &SessionKey,
    association_key: &[u8],
    context: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    crypto::wrap_for_association(key, association_key, context)
}

/// The temporary Agent/Target association: HMAC-MD5 keyed by the session key, timestamps.
pub fn session_association(spi: u32, key: &SessionKey) -> SecurityAssociation {
    SecurityAssociation {
        spi,
        algorithm: AuthAlgorithm::HmacMd5,
        key: key.as_bytes().to_vec(),
        replay: ReplayMethod::Timestamp,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn context_layout() {
        let c = transfer_context(
            TransferStage::FurtherTransfer,
            Ipv4Addr::new(198, 18, 0, 10),
            Ipv4Addr::new(198, 19, 1, 10),
            0x1000,
            Ipv4Addr::new(198, 18, 0, 1),
        );
        assert_eq!(&c[..16], b"sidmip agent v1 ");
        assert_eq!(
            &c[16..],
            &[2, 198, 18, 0, 10, 198, 19, 1, 10, 0, 0, 0x10, 0, 198, 18, 0, 1][..]
        );
    }

    #[test]
    fn wrap_then_recover_and_any_context_change_fails() {
        let key = SessionKey::from_bytes([7; 32]);
        let msa = b"0123456789abcdef";
        let ctx = transfer_context(
            TransferStage::Transfer,
            Ipv4Addr::new(198, 18, 0, 10),
            Ipv4Addr::new(198, 19, 1, 10),
            4096,
            Ipv4Addr::new(198, 18, 0, 1),
        );
        let data = wrap_session_key(&key, msa, &ctx).unwrap();
        let element = EncryptedSessionKey { algorithm: SessionKeyAlgorithm::AesKeyWrapPadded, data: &data };
        assert_eq!(recover_session_key(&element, msa, None, &ctx).unwrap(), key);
        let mut other = ctx;
        other[16] = TransferStage::FurtherTransfer as u8;
        assert!(recover_session_key(&element, msa, None, &other).is_err());
        let hpke = EncryptedSessionKey { algorithm: SessionKeyAlgorithm::HpkeX25519Aes128Gcm, data: &data };
        assert_eq!(recover_session_key(&hpke, msa, None, &ctx), Err(KeyError::NoPrivateKey));
    }
}
