//! Session keys and how they travel under a security association.
//!
//! A SID transfer needs a fresh random session key (patent FIG. 1a: "a random number is
//! selected ... to serve as a session key and is sent to the other node in encrypted
//! form"). This module makes that key and protects it in transit, with standard
//! constructions from RustCrypto crates only:
//!
//! - Under a shared secret (a mobility security association key, or the pre-shared
//!   secret of two devices): HKDF-SHA256 (RFC 5869) turns the secret into a 256-bit
//!   key-encryption key bound to a context, then AES-256 key wrap with padding (RFC 5649,
//!   crate `aes-kw`) wraps the session key. [`wrap_for_association`] /
//!   [`unwrap_for_association`].
//! - Under a public key: HPKE (RFC 9180) base mode with DHKEM(X25519, HKDF-SHA256),
//!   HKDF-SHA256 and AES-128-GCM (crate `hpke`), the context bound in HPKE's `info`.
//!   [`seal_for_public_key`] / [`open_with_private_key`]. The same suite in auth mode
//!   (RFC 9180 5.1.3), which also proves the sender's static key, is
//!   [`seal_authenticated`] / [`open_authenticated`].
//!
//! The module opens no device and reads no clock: randomness comes from the caller's
//! CSPRNG ([`rand_core::CryptoRngCore`]), so the protocol core stays sans-IO and tests can
//! be deterministic.
//!
//! Every secret here is zeroed when dropped and never shown by `Debug`.

use std::fmt;

use hkdf::Hkdf;
use hpke::aead::AesGcm128;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use rand_core::CryptoRngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

#[cfg(test)]
mod tests;

/// Length of a session key: 256 bits (the issue asks for at least 128).
pub const SESSION_KEY_LEN: usize = 32;
/// Length of a wrapped session key: RFC 5649 adds one 64-bit semiblock to a key that is
/// already a multiple of 8 bytes long.
pub const WRAPPED_KEY_LEN: usize = SESSION_KEY_LEN + 8;
/// Length of an X25519 public or private key, and of HPKE's encapsulated key `enc`.
pub const X25519_KEY_LEN: usize = 32;
/// AES-128-GCM tag length.
pub const AEAD_TAG_LEN: usize = 16;
/// Length of a sealed 256-bit secret: `enc || ciphertext || tag`.
pub const SEALED_KEY_LEN: usize = X25519_KEY_LEN + SESSION_KEY_LEN + AEAD_TAG_LEN;

/// HKDF `info` prefix of the key-encryption key used by [`wrap_for_association`]; the
/// caller's context follows it.
pub const WRAP_INFO_LABEL: &[u8] = b"sidmip session key wrap v1";

type Kem = X25519HkdfSha256;
type HpkePrivate = <Kem as hpke::Kem>::PrivateKey;
type HpkePublic = <Kem as hpke::Kem>::PublicKey;
type HpkeEnc = <Kem as hpke::Kem>::EncappedKey;

/// Why a key could not be protected or recovered. No variant carries key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("the association key is empty: no key-encryption key can be derived from it")]
    EmptyAssociationKey,
    #[error("{what} is {got} bytes long, expected {expected}")]
    Length {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("key unwrap failed: wrong association key or context, or the wrapped key was altered")]
    Unwrap,
    #[error(
        "HPKE open failed: wrong private key, sender key or info, or the sealed key was altered"
    )]
    Open,
    #[error("HPKE seal failed: the recipient's public key is unusable (a low-order point)")]
    Seal,
    #[error("key derivation failed")]
    Kdf,
    #[error("key wrap failed")]
    Wrap,
}

/// A 256-bit secret: a transfer's session key, or another one-time secret of the
/// negotiation. Zeroed on drop; `Debug` never shows it; equality is constant time.
#[derive(Clone)]
pub struct SessionKey([u8; SESSION_KEY_LEN]);

impl SessionKey {
    /// Draws a fresh key from the caller's CSPRNG.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut key = [0u8; SESSION_KEY_LEN];
        rng.fill_bytes(&mut key);
        SessionKey(key)
    }

    pub fn from_bytes(bytes: [u8; SESSION_KEY_LEN]) -> Self {
        SessionKey(bytes)
    }

    /// A key of exactly [`SESSION_KEY_LEN`] bytes, e.g. from a configuration file.
    pub fn try_from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        let key: [u8; SESSION_KEY_LEN] = bytes.try_into().map_err(|_| CryptoError::Length {
            what: "session key",
            expected: SESSION_KEY_LEN,
            got: bytes.len(),
        })?;
        Ok(SessionKey(key))
    }

    /// The key bytes, for the one who must use them (an HMAC under the session key).
    pub fn as_bytes(&self) -> &[u8; SESSION_KEY_LEN] {
        &self.0
    }
}

impl Drop for SessionKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl zeroize::ZeroizeOnDrop for SessionKey {}

impl PartialEq for SessionKey {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}

impl Eq for SessionKey {}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey(<redacted>)")
    }
}

/// An X25519 private key for HPKE. Zeroed on drop (the `hpke` crate's key type does it);
/// `Debug` never shows it.
#[derive(Clone)]
pub struct PrivateKey(HpkePrivate);

impl PrivateKey {
    /// A fresh key pair's private half, from the caller's CSPRNG (RFC 9180 GenerateKeyPair).
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let (sk, _) = Kem::gen_keypair(rng);
        PrivateKey(sk)
    }

    /// Any 32 bytes are a valid X25519 private key (clamped on use, RFC 7748 5).
    pub fn from_bytes(bytes: &[u8; X25519_KEY_LEN]) -> Self {
        match HpkePrivate::from_bytes(bytes) {
            Ok(sk) => PrivateKey(sk),
            // The crate fails only on a wrong length, which the array type rules out.
            Err(_) => unreachable!("32 bytes are always an X25519 private key"),
        }
    }

    /// The key bytes, for storing the key in a file the caller protects.
    pub fn to_bytes(&self) -> Zeroizing<[u8; X25519_KEY_LEN]> {
        let mut out = Zeroizing::new([0u8; X25519_KEY_LEN]);
        out.copy_from_slice(&self.0.to_bytes());
        out
    }

    pub fn public_key(&self) -> PublicKey {
        let pk = Kem::sk_to_pk(&self.0);
        let mut bytes = [0u8; X25519_KEY_LEN];
        bytes.copy_from_slice(&pk.to_bytes());
        PublicKey(bytes)
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

impl PartialEq for PrivateKey {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.to_bytes().ct_eq(&*other.to_bytes()))
    }
}

impl Eq for PrivateKey {}

/// An X25519 public key, as configured for a peer device.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; X25519_KEY_LEN]);

impl PublicKey {
    /// Any 32 bytes are accepted here; a low-order point is refused when used
    /// ([`CryptoError::Seal`] / [`CryptoError::Open`]), as RFC 9180 7.1.4 requires.
    pub const fn from_bytes(bytes: [u8; X25519_KEY_LEN]) -> Self {
        PublicKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; X25519_KEY_LEN] {
        &self.0
    }

    fn to_hpke(self) -> HpkePublic {
        match HpkePublic::from_bytes(&self.0) {
            Ok(pk) => pk,
            Err(_) => unreachable!("32 bytes are always an X25519 public key encoding"),
        }
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// HKDF-SHA256 (RFC 5869) to one 256-bit key: `info` is the concatenation of `info`'s parts.
pub fn hkdf_sha256(
    salt: Option<&[u8]>,
    ikm: &[u8],
    info: &[&[u8]],
) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
    let mut okm = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(salt, ikm)
        .expand_multi_info(info, okm.as_mut())
        .map_err(|_| CryptoError::Kdf)?;
    Ok(okm)
}

/// The key-encryption key of [`wrap_for_association`]:
/// HKDF-SHA256(salt = none, IKM = association key, info = [`WRAP_INFO_LABEL`] || context).
fn association_kek(
    association_key: &[u8],
    context: &[u8],
) -> Result<aes_kw::KekAes256, CryptoError> {
    if association_key.is_empty() {
        return Err(CryptoError::EmptyAssociationKey);
    }
    let kek = hkdf_sha256(None, association_key, &[WRAP_INFO_LABEL, context])?;
    Ok(aes_kw::KekAes256::new(kek.as_ref().into()))
}

/// Wraps `key` under a shared secret: AES-256 key wrap with padding (RFC 5649) under
/// HKDF-SHA256(association key, [`WRAP_INFO_LABEL`] || `context`). The result is
/// [`WRAPPED_KEY_LEN`] bytes. The same key, secret and context always give the same
/// bytes (key wrap is deterministic); bind something fresh into `context` when that
/// matters.
pub fn wrap_for_association(
    key: &SessionKey,
    association_key: &[u8],
    context: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let kek = association_kek(association_key, context)?;
    kek.wrap_with_padding_vec(key.as_bytes())
        .map_err(|_| CryptoError::Wrap)
}

/// Recovers a key wrapped by [`wrap_for_association`] with the same secret and context.
pub fn unwrap_for_association(
    wrapped: &[u8],
    association_key: &[u8],
    context: &[u8],
) -> Result<SessionKey, CryptoError> {
    // Checked first: only a 40-byte input can hold a 256-bit key, and aes-kw 0.2's
    // unwrap_with_padding overflows on a single semiblock, so it must never see one.
    if wrapped.len() != WRAPPED_KEY_LEN {
        return Err(CryptoError::Length {
            what: "wrapped session key",
            expected: WRAPPED_KEY_LEN,
            got: wrapped.len(),
        });
    }
    let kek = association_kek(association_key, context)?;
    let mut out = Zeroizing::new([0u8; WRAPPED_KEY_LEN - 8]);
    let plain = kek
        .unwrap_with_padding(wrapped, out.as_mut())
        .map_err(|_| CryptoError::Unwrap)?;
    // RFC 5649's length indicator is inside the authenticated block: a shorter key that
    // unwraps correctly was wrapped as such, and is not a session key.
    let key: [u8; SESSION_KEY_LEN] = plain.try_into().map_err(|_| CryptoError::Length {
        what: "unwrapped session key",
        expected: SESSION_KEY_LEN,
        got: plain.len(),
    })?;
    Ok(SessionKey(key))
}

/// Seals `key` to `recipient` with HPKE base mode (RFC 9180 6.1, `SealBase`), suite
/// DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-128-GCM, `info` binding the context and
/// an empty AAD. Returns `enc || ciphertext`, [`SEALED_KEY_LEN`] bytes. Base mode proves
/// nothing about the sender: whoever must trust the key's origin needs another proof.
pub fn seal_for_public_key(
    key: &SessionKey,
    recipient: &PublicKey,
    info: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<u8>, CryptoError> {
    seal_bytes(&OpModeS::Base, recipient, info, key.as_bytes(), &[], rng)
}

/// Opens what [`seal_for_public_key`] sealed, with the same `info`.
pub fn open_with_private_key(
    sealed: &[u8],
    recipient: &PrivateKey,
    info: &[u8],
) -> Result<SessionKey, CryptoError> {
    open_key(&OpModeR::Base, sealed, recipient, info, &[])
}

/// Seals a 256-bit secret with HPKE auth mode (RFC 9180 5.1.3, `SealAuth`): the recipient
/// also learns that the holder of `sender`'s private key sealed it. Same suite and output
/// layout as [`seal_for_public_key`]; `aad` is authenticated, not encrypted.
pub fn seal_authenticated(
    secret: &SessionKey,
    recipient: &PublicKey,
    sender: &PrivateKey,
    info: &[u8],
    aad: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<u8>, CryptoError> {
    let sender_pk = Kem::sk_to_pk(&sender.0);
    let mode = OpModeS::Auth((sender.0.clone(), sender_pk));
    seal_bytes(&mode, recipient, info, secret.as_bytes(), aad, rng)
}

/// Opens what [`seal_authenticated`] sealed, checking it came from `sender`'s key.
pub fn open_authenticated(
    sealed: &[u8],
    recipient: &PrivateKey,
    sender: &PublicKey,
    info: &[u8],
    aad: &[u8],
) -> Result<SessionKey, CryptoError> {
    open_key(
        &OpModeR::Auth(sender.to_hpke()),
        sealed,
        recipient,
        info,
        aad,
    )
}

/// Single-shot HPKE seal of any plaintext: `enc || ciphertext || tag`.
fn seal_bytes(
    mode: &OpModeS<'_, Kem>,
    recipient: &PublicKey,
    info: &[u8],
    plaintext: &[u8],
    aad: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<u8>, CryptoError> {
    let (enc, ciphertext) = hpke::single_shot_seal::<AesGcm128, HkdfSha256, Kem, _>(
        mode,
        &recipient.to_hpke(),
        info,
        plaintext,
        aad,
        rng,
    )
    .map_err(|_| CryptoError::Seal)?;
    let mut out = Vec::with_capacity(X25519_KEY_LEN + ciphertext.len());
    out.extend_from_slice(&enc.to_bytes());
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Single-shot HPKE open of `enc || ciphertext || tag`, any plaintext length.
fn open_bytes(
    mode: &OpModeR<'_, Kem>,
    sealed: &[u8],
    recipient: &PrivateKey,
    info: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let (enc, ciphertext) = sealed
        .split_at_checked(X25519_KEY_LEN)
        .ok_or(CryptoError::Length {
            what: "sealed key",
            expected: SEALED_KEY_LEN,
            got: sealed.len(),
        })?;
    let enc = HpkeEnc::from_bytes(enc).map_err(|_| CryptoError::Open)?;
    hpke::single_shot_open::<AesGcm128, HkdfSha256, Kem>(
        mode,
        &recipient.0,
        &enc,
        info,
        ciphertext,
        aad,
    )
    .map(Zeroizing::new)
    .map_err(|_| CryptoError::Open)
}

fn open_key(
    mode: &OpModeR<'_, Kem>,
    sealed: &[u8],
    recipient: &PrivateKey,
    info: &[u8],
    aad: &[u8],
) -> Result<SessionKey, CryptoError> {
    if sealed.len() != SEALED_KEY_LEN {
        return Err(CryptoError::Length {
            what: "sealed key",
            expected: SEALED_KEY_LEN,
            got: sealed.len(),
        });
    }
    let plain = open_bytes(mode, sealed, recipient, info, aad)?;
    SessionKey::try_from_slice(&plain)
}
