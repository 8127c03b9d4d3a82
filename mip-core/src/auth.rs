//! Mobility security associations and registration authenticators (RFC 5944 3.5, 5.1).
//!
//! An authenticator covers exactly the registration message up to and including the
//! Type, Length and SPI of its own extension (RFC 5944 3.5.1); the UDP header and the
//! authenticator itself are not covered. Two algorithms are offered:
//!
//! - [`AuthAlgorithm::HmacMd5`]: HMAC-MD5 (RFC 2104), the mandatory default (5944 5.1).
//! - [`AuthAlgorithm::KeyedMd5PrefixSuffix`]: the RFC 2002 "prefix+suffix" keyed MD5,
//!   `MD5(key || covered || key)`, kept only for talking to old implementations
//!   (5944 5.1 says SHOULD include it for backward compatibility). RFC 3344 and 5944
//!   name the mode but no longer spell it out; RFC 2002 3.5.1 defined it as the shared
//!   secret, then the protected fields, then the shared secret again, with no padding of
//!   the key (unlike the RFC 1828 IPsec transform, which pads the prefix key to a block).

use std::fmt;

use hmac::digest::generic_array::GenericArray;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

/// Length in bytes of an MD5-based authenticator.
pub const AUTHENTICATOR_LEN: usize = 16;

/// Bytes between an authentication extension's Length field and its authenticator: the SPI.
const SPI_LEN: usize = 4;

/// MD5's block size: HMAC pads (or first hashes) the key to this length (RFC 2104 2).
const MD5_BLOCK_LEN: usize = 64;

/// How an authenticator is computed from the key and the covered bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthAlgorithm {
    /// HMAC-MD5 (RFC 2104), the default that every implementation must support.
    HmacMd5,
    /// RFC 2002 keyed MD5 in "prefix+suffix" mode: `MD5(key || covered || key)`.
    KeyedMd5PrefixSuffix,
}

/// The replay protection agreed in a mobility security association (RFC 5944 5.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplayMethod {
    Timestamp,
    Nonce,
}

/// A mobility security association, selected by its SPI (RFC 5944 1.6, 3.5.1).
///
/// `Debug` is written by hand so that the key never reaches a log.
#[derive(Clone, PartialEq, Eq)]
pub struct SecurityAssociation {
    pub spi: u32,
    pub algorithm: AuthAlgorithm,
    pub key: Vec<u8>,
    pub replay: ReplayMethod,
}

impl fmt::Debug for SecurityAssociation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecurityAssociation")
            .field("spi", &self.spi)
            .field("algorithm", &self.algorithm)
            .field("key", &format_args!("<{} bytes redacted>", self.key.len()))
            .field("replay", &self.replay)
            .finish()
    }
}

/// Computes the authenticator of `covered` (message bytes through this extension's SPI).
pub fn compute_authenticator(
    alg: AuthAlgorithm,
    key: &[u8],
    covered: &[u8],
) -> [u8; AUTHENTICATOR_LEN] {
    match alg {
        AuthAlgorithm::HmacMd5 => hmac_md5(key, covered),
        AuthAlgorithm::KeyedMd5PrefixSuffix => {
            let mut md5 = Md5::new();
            md5.update(key);
            md5.update(covered);
            md5.update(key);
            md5.finalize().into()
        }
    }
}

/// Checks a received authenticator in constant time. Any length other than
/// [`AUTHENTICATOR_LEN`] fails (the length itself is not secret).
pub fn verify_authenticator(
    alg: AuthAlgorithm,
    key: &[u8],
    covered: &[u8],
    received: &[u8],
) -> bool {
    if received.len() != AUTHENTICATOR_LEN {
        return false;
    }
    let expected = compute_authenticator(alg, key, covered);
    bool::from(expected.as_slice().ct_eq(received))
}

/// Appends an authentication extension — type, length (4 + 16), SPI and the
/// authenticator computed over everything in `message` so far plus the type, length
/// and SPI just written (RFC 5944 3.5.1). `ext_type` is 32, 33 or 34 (or a vendor's).
pub fn append_auth_extension(message: &mut Vec<u8>, ext_type: u8, sa: &SecurityAssociation) {
    // 20 always fits the one-byte Length field.
    const LENGTH: u8 = (SPI_LEN + AUTHENTICATOR_LEN) as u8;
    message.reserve(2 + SPI_LEN + AUTHENTICATOR_LEN);
    message.push(ext_type);
    message.push(LENGTH);
    message.extend_from_slice(&sa.spi.to_be_bytes());
    let authenticator = compute_authenticator(sa.algorithm, &sa.key, message);
    message.extend_from_slice(&authenticator);
}

/// Verifies the authenticator of the authentication extension that starts at
/// `ext_offset` in `message`, with the association its SPI selected. The covered bytes
/// are `message[..ext_offset + 6]`; an offset past the end fails.
pub fn verify_auth_extension(
    message: &[u8],
    ext_offset: usize,
    sa: &SecurityAssociation,
    received: &[u8],
) -> bool {
    let Some(end) = ext_offset.checked_add(2 + SPI_LEN) else {
        return false;
    };
    match message.get(..end) {
        Some(covered) => verify_authenticator(sa.algorithm, &sa.key, covered, received),
        None => false,
    }
}

/// HMAC-MD5 with a key of any length.
fn hmac_md5(key: &[u8], data: &[u8]) -> [u8; AUTHENTICATOR_LEN] {
    // RFC 2104 step 1: a key longer than a block is hashed first; any key is then
    // zero-padded to a block. Doing that here gives the identical MAC and lets us use
    // the infallible fixed-size constructor instead of one that returns a Result.
    let hashed: [u8; 16];
    let source = if key.len() > MD5_BLOCK_LEN {
        hashed = Md5::digest(key).into();
        &hashed[..]
    } else {
        key
    };
    let mut block = [0u8; MD5_BLOCK_LEN];
    for (b, k) in block.iter_mut().zip(source) {
        *b = *k;
    }
    let mut mac = <Hmac<Md5> as hmac::digest::KeyInit>::new(&GenericArray::from(block));
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap_or_default()
    }

    fn sa(algorithm: AuthAlgorithm) -> SecurityAssociation {
        SecurityAssociation {
            spi: 0x0000_1001,
            algorithm,
            key: b"0123456789abcdef".to_vec(),
            replay: ReplayMethod::Timestamp,
        }
    }

    /// RFC 2202 section 2, all seven HMAC-MD5 test cases.
    #[test]
    fn hmac_md5_rfc2202_vectors() {
        let key25: Vec<u8> = (1u8..=25).collect();
        let cases: [(Vec<u8>, Vec<u8>, &str); 7] = [
            (
                vec![0x0b; 16],
                b"Hi There".to_vec(),
                "9294727a3638bb1c13f48ef8158bfc9d",
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                "750c783e6ab0b503eaa86e310a5db738",
            ),
            (
                vec![0xaa; 16],
                vec![0xdd; 50],
                "56be34521d144c88dbb8c733f0e8b3f6",
            ),
            (key25, vec![0xcd; 50], "697eaf0aca3a3aea3a75164746ffaa79"),
            (
                vec![0x0c; 16],
                b"Test With Truncation".to_vec(),
                "56461ef2342edc00f9bab995690efd4c",
            ),
            (
                vec![0xaa; 80],
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd",
            ),
            (
                vec![0xaa; 80],
                b"Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data"
                    .to_vec(),
                "6f630fad67cda0ee1fb1f562db3aa53e",
            ),
        ];
        for (i, (key, data, digest)) in cases.iter().enumerate() {
            let mac = compute_authenticator(AuthAlgorithm::HmacMd5, key, data);
            assert_eq!(hex::encode(mac), *digest, "RFC 2202 case {}", i + 1);
            assert!(verify_authenticator(
                AuthAlgorithm::HmacMd5,
                key,
                data,
                &unhex(digest)
            ));
        }
    }

    #[test]
    fn hmac_md5_key_of_exactly_one_block_is_not_hashed() {
        // 64 bytes is the boundary: used as is. Cross-check against the crate's
        // variable-length constructor.
        let key = [0x5a; MD5_BLOCK_LEN];
        let mut reference =
            <Hmac<Md5> as Mac>::new_from_slice(&key).unwrap_or_else(|_| unreachable!());
        reference.update(b"boundary");
        let expected: [u8; 16] = reference.finalize().into_bytes().into();
        assert_eq!(
            compute_authenticator(AuthAlgorithm::HmacMd5, &key, b"boundary"),
            expected
        );
    }

    #[test]
    fn prefix_suffix_is_md5_of_key_data_key() {
        let key = b"0123456789abcdef";
        let covered = b"\x01\x00\x01\x2c covered registration bytes";
        let mut concatenated = Vec::new();
        concatenated.extend_from_slice(key);
        concatenated.extend_from_slice(covered);
        concatenated.extend_from_slice(key);
        let expected: [u8; 16] = Md5::digest(&concatenated).into();
        assert_eq!(
            compute_authenticator(AuthAlgorithm::KeyedMd5PrefixSuffix, key, covered),
            expected
        );
        // And it is not HMAC.
        assert_ne!(
            compute_authenticator(AuthAlgorithm::HmacMd5, key, covered),
            expected
        );
    }

    #[test]
    fn prefix_suffix_fixed_vector() {
        // MD5("k" "abc" "k") = MD5("kabck"), computed independently with md5sum.
        let mac = compute_authenticator(AuthAlgorithm::KeyedMd5PrefixSuffix, b"k", b"abc");
        assert_eq!(hex::encode(mac), "b1536f91430075560d983fdfb3872bac");
    }

    #[test]
    fn append_auth_extension_layout_and_verification() {
        for alg in [AuthAlgorithm::HmacMd5, AuthAlgorithm::KeyedMd5PrefixSuffix] {
            let sa = sa(alg);
            let fixed: Vec<u8> = (0u8..24).collect();
            let mut msg = fixed.clone();
            append_auth_extension(&mut msg, 32, &sa);
            assert_eq!(msg.len(), 24 + 2 + 4 + 16);
            assert_eq!(&msg[..24], fixed.as_slice());
            assert_eq!(msg[24], 32);
            assert_eq!(msg[25], 20);
            assert_eq!(&msg[26..30], &[0x00, 0x00, 0x10, 0x01]);
            let covered = &msg[..30];
            let auth = &msg[30..];
            assert_eq!(
                auth,
                compute_authenticator(alg, &sa.key, covered).as_slice()
            );
            assert!(verify_authenticator(alg, &sa.key, covered, auth));
            assert!(verify_auth_extension(&msg, 24, &sa, auth));
        }
    }

    #[test]
    fn wrong_length_fails() {
        let s = sa(AuthAlgorithm::HmacMd5);
        let mac = compute_authenticator(s.algorithm, &s.key, b"data");
        assert!(!verify_authenticator(
            s.algorithm,
            &s.key,
            b"data",
            &mac[..15]
        ));
        let mut long = mac.to_vec();
        long.push(0);
        assert!(!verify_authenticator(s.algorithm, &s.key, b"data", &long));
        assert!(!verify_authenticator(s.algorithm, &s.key, b"data", &[]));
    }

    #[test]
    fn any_flipped_bit_fails() {
        for alg in [AuthAlgorithm::HmacMd5, AuthAlgorithm::KeyedMd5PrefixSuffix] {
            let s = sa(alg);
            let mut msg: Vec<u8> = vec![1, 0x40, 0, 30, 198, 18, 1, 2];
            append_auth_extension(&mut msg, 32, &s);
            let (covered, auth) = msg.split_at(msg.len() - AUTHENTICATOR_LEN);
            // Every bit of the authenticator.
            for bit in 0..AUTHENTICATOR_LEN * 8 {
                let mut bad = auth.to_vec();
                bad[bit / 8] ^= 1 << (bit % 8);
                assert!(!verify_authenticator(alg, &s.key, covered, &bad));
            }
            // Every bit of the covered bytes.
            for bit in 0..covered.len() * 8 {
                let mut bad = covered.to_vec();
                bad[bit / 8] ^= 1 << (bit % 8);
                assert!(!verify_authenticator(alg, &s.key, &bad, auth));
            }
            // A different key.
            let mut key = s.key.clone();
            key[0] ^= 0x80;
            assert!(!verify_authenticator(alg, &key, covered, auth));
        }
    }

    #[test]
    fn algorithms_are_not_interchangeable() {
        let s = sa(AuthAlgorithm::HmacMd5);
        let mac = compute_authenticator(AuthAlgorithm::HmacMd5, &s.key, b"x");
        assert!(!verify_authenticator(
            AuthAlgorithm::KeyedMd5PrefixSuffix,
            &s.key,
            b"x",
            &mac
        ));
    }

    #[test]
    fn verify_auth_extension_rejects_offset_past_end() {
        let s = sa(AuthAlgorithm::HmacMd5);
        let mut msg = vec![0u8; 24];
        append_auth_extension(&mut msg, 32, &s);
        let auth = msg[30..].to_vec();
        assert!(!verify_auth_extension(&msg, msg.len(), &s, &auth));
        assert!(!verify_auth_extension(&msg, usize::MAX, &s, &auth));
        // The right offset, but the wrong one by one byte.
        assert!(!verify_auth_extension(&msg, 23, &s, &auth));
    }

    #[test]
    fn debug_never_prints_the_key() {
        let mut s = sa(AuthAlgorithm::HmacMd5);
        s.key = b"SECRET-KEY-BYTES".to_vec();
        let shown = format!("{s:?} {s:#?}");
        assert!(!shown.contains("SECRET"));
        assert!(!shown.contains(&format!("{:?}", s.key)));
        assert!(!shown.contains(&hex::encode(&s.key)));
        assert!(shown.contains("redacted"));
        assert!(shown.contains("4097"));
    }
}
