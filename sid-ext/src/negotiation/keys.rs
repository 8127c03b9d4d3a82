//! Key schedule, transcript hash and message authentication of the negotiation
//! (RFC-NOTES.md, "SID negotiation", section 5). Only HKDF-SHA256, HMAC-SHA256 and SHA-256 from
//! RustCrypto; nothing here is a cipher of its own.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::wire::MAC_LEN;
use crate::crypto::{hkdf_sha256, CryptoError, SessionKey};

/// First link of the transcript hash chain.
pub const TRANSCRIPT_LABEL: &[u8] = b"sidmip negotiation v1";
/// HKDF info of the message-authentication key derived from a pre-shared secret.
pub const AUTH_PSK_LABEL: &[u8] = b"sidmip negotiation auth psk v1";
/// HKDF info of the message-authentication key derived from the Offer Secret (public keys).
pub const AUTH_PK_LABEL: &[u8] = b"sidmip negotiation auth pk v1";
/// HKDF info of the key that authenticates the Confirm (proves the session key).
pub const CONFIRM_LABEL: &[u8] = b"sidmip negotiation confirm v1";
/// HPKE info prefix of the Offer Secret; the Offer's bytes before it follow.
pub const OFFER_SECRET_INFO: &[u8] = b"sidmip negotiation offer secret v1";
/// HPKE info prefix of the session key in public-key mode; the transcript hash follows.
/// (In pre-shared mode the transcript hash is the key-wrap context.)
pub const SESSION_KEY_INFO: &[u8] = b"sidmip negotiation session key v1";

pub type MacKey = Zeroizing<[u8; 32]>;

/// TH_0 = SHA-256(label); TH_i = SHA-256(TH_{i-1} || M_i), M_i the i-th whole message
/// as sent (MAC included).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Transcript([u8; 32]);

impl Transcript {
    pub fn new() -> Self {
        Transcript(Sha256::digest(TRANSCRIPT_LABEL).into())
    }

    pub fn absorb(&mut self, message: &[u8]) {
        let mut h = Sha256::new();
        h.update(self.0);
        h.update(message);
        self.0 = h.finalize().into();
    }

    pub fn hash(&self) -> &[u8; 32] {
        &self.0
    }
}

impl core::fmt::Debug for Transcript {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Transcript(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

/// K_auth in pre-shared mode: HKDF-SHA256(IKM = secret, info = AUTH_PSK_LABEL).
pub fn auth_key_from_psk(secret: &[u8]) -> Result<MacKey, CryptoError> {
    if secret.is_empty() {
        return Err(CryptoError::EmptyAssociationKey);
    }
    hkdf_sha256(None, secret, &[AUTH_PSK_LABEL])
}

/// K_auth in public-key mode: HKDF-SHA256(IKM = Offer Secret, info = AUTH_PK_LABEL).
pub fn auth_key_from_offer_secret(secret: &SessionKey) -> Result<MacKey, CryptoError> {
    hkdf_sha256(None, secret.as_bytes(), &[AUTH_PK_LABEL])
}

/// K_confirm = HKDF-SHA256(salt = K_auth, IKM = session key, info = CONFIRM_LABEL).
pub fn confirm_key(auth: &MacKey, session_key: &SessionKey) -> Result<MacKey, CryptoError> {
    hkdf_sha256(
        Some(auth.as_ref()),
        session_key.as_bytes(),
        &[CONFIRM_LABEL],
    )
}

/// HMAC-SHA256(key, TH_{i-1} || covered), covered = the message without its MAC.
pub fn mac(key: &MacKey, prior: &Transcript, covered: &[u8]) -> [u8; MAC_LEN] {
    let mut m = new_mac(key);
    m.update(prior.hash());
    m.update(covered);
    m.finalize().into_bytes().into()
}

/// Constant-time check of a received MAC.
pub fn verify(key: &MacKey, prior: &Transcript, covered: &[u8], received: &[u8; MAC_LEN]) -> bool {
    let mut m = new_mac(key);
    m.update(prior.hash());
    m.update(covered);
    m.verify_slice(received).is_ok()
}

/// Appends the MAC to a message emitted without one.
pub fn seal_message(mut covered: Vec<u8>, key: &MacKey, prior: &Transcript) -> Vec<u8> {
    let tag = mac(key, prior, &covered);
    covered.extend_from_slice(&tag);
    covered
}

fn new_mac(key: &MacKey) -> Hmac<Sha256> {
    // RFC 2104 zero-pads a key shorter than the 64-byte block; doing it here gives the
    // same MAC and lets us use the infallible fixed-size constructor.
    let mut block = Zeroizing::new([0u8; 64]);
    for (b, k) in block.iter_mut().zip(key.iter()) {
        *b = *k;
    }
    <Hmac<Sha256> as hmac::digest::KeyInit>::new(&(*block).into())
}
