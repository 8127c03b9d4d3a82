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


use sid_ext::crypto::{self, CryptoError, PrivateKey, SessionKey};
use sid_ext::wire::{EncryptedSessionKey, SessionKeyAlgorithm};

// The context and the temporary association are defined once, in sid-ext, where the
// devices that build the requests use them too: both ends must agree byte for byte.
pub use sid_ext::device::{
    session_association, transfer_context, TransferStage, TRANSFER_CONTEXT_LABEL, TRANSFER_CONTEXT_LEN,
};

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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

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
