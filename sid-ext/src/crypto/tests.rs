use hmac::{Hmac, Mac};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_core::{CryptoRng, RngCore};

use super::*;

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap_or_else(|_| panic!("bad hex in test: {s}"))
}

fn arr32(s: &str) -> [u8; 32] {
    unhex(s)
        .try_into()
        .unwrap_or_else(|_| panic!("not 32 bytes: {s}"))
}

fn rng() -> StdRng {
    StdRng::seed_from_u64(0x51d_0001)
}

/// Hands out fixed bytes, so that HPKE's ephemeral key is the test vector's ikmE.
struct FixedRng {
    bytes: Vec<u8>,
    pos: usize,
}

impl RngCore for FixedRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for d in dest {
            *d = self.bytes[self.pos];
            self.pos += 1;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

// Only ever used to replay a published test vector.
impl CryptoRng for FixedRng {}

// ---- RFC 5869 (HKDF) -------------------------------------------------------------------

/// RFC 5869 A.1 and A.3 (SHA-256): our 32-byte output is the first 32 bytes of the OKM.
#[test]
fn hkdf_rfc5869_vectors() {
    let ikm = [0x0b; 22];
    let salt = unhex("000102030405060708090a0b0c");
    let info = unhex("f0f1f2f3f4f5f6f7f8f9");
    let okm =
        hkdf_sha256(Some(&salt), &ikm, &[&info[..4], &info[4..]]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        hex::encode(*okm),
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
    );
    let okm = hkdf_sha256(None, &ikm, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        hex::encode(*okm),
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
    );
}

// ---- RFC 5649 (AES key wrap with padding) ------------------------------------------------

/// RFC 5649 section 6: both vectors (192-bit KEK), through the same `aes-kw` calls
/// `wrap_for_association` makes with a 256-bit KEK.
#[test]
fn aes_key_wrap_with_padding_rfc5649_vectors() {
    let kek = aes_kw::KekAes192::new(
        unhex("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8")
            .as_slice()
            .into(),
    );
    let cases = [
        (
            "c37b7e6492584340bed12207808941155068f738",
            "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a",
        ),
        ("466f7250617369", "afbeb0f07dfbf5419200f2ccb50bb24f"),
    ];
    for (key, wrapped) in cases {
        let out = kek.wrap_with_padding_vec(&unhex(key)).unwrap_or_default();
        assert_eq!(hex::encode(&out), wrapped);
        let back = kek.unwrap_with_padding_vec(&out).unwrap_or_default();
        assert_eq!(hex::encode(back), key);
    }
}

/// Recomputes the key-encryption key with plain HMAC-SHA256 (RFC 5869 for L = 32 is one
/// block: PRK = HMAC(zeros, IKM), T(1) = HMAC(PRK, info || 0x01)) and checks the wrap.
#[test]
fn wrap_uses_hkdf_of_the_association_key_with_label_and_context() {
    let key = SessionKey::from_bytes([0x42; 32]);
    let association = b"mobility security association key";
    let context = b"transcript-hash";
    let mut prk =
        <Hmac<Sha256> as Mac>::new_from_slice(&[0u8; 32]).unwrap_or_else(|_| unreachable!());
    prk.update(association);
    let prk = prk.finalize().into_bytes();
    let mut t1 = <Hmac<Sha256> as Mac>::new_from_slice(&prk).unwrap_or_else(|_| unreachable!());
    t1.update(b"sidmip session key wrap v1");
    t1.update(context);
    t1.update(&[1]);
    let kek = t1.finalize().into_bytes();
    let expected = aes_kw::KekAes256::new(&kek)
        .wrap_with_padding_vec(&[0x42; 32])
        .unwrap_or_default();
    let wrapped = wrap_for_association(&key, association, context).unwrap_or_default();
    assert_eq!(wrapped.len(), WRAPPED_KEY_LEN);
    assert_eq!(wrapped, expected);
    // Deterministic, and the RFC 5649 integrity prefix is inside, not in clear.
    assert_eq!(
        wrap_for_association(&key, association, context).unwrap_or_default(),
        wrapped
    );
}

#[test]
fn wrap_round_trip_and_every_wrong_input_fails() {
    let mut rng = rng();
    let key = SessionKey::generate(&mut rng);
    let psk = b"pre-shared secret of the two devices";
    let wrapped = wrap_for_association(&key, psk, b"ctx").unwrap_or_default();
    assert_eq!(
        unwrap_for_association(&wrapped, psk, b"ctx"),
        Ok(key.clone())
    );
    assert!(!wrapped
        .windows(8)
        .any(|w| key.as_bytes().windows(8).any(|k| k == w)));

    assert_eq!(
        unwrap_for_association(&wrapped, b"another secret", b"ctx"),
        Err(CryptoError::Unwrap)
    );
    assert_eq!(
        unwrap_for_association(&wrapped, psk, b"ctx2"),
        Err(CryptoError::Unwrap)
    );
    assert_ne!(
        wrap_for_association(&key, psk, b"ctx2").ok().as_ref(),
        Some(&wrapped)
    );
    for i in 0..wrapped.len() {
        for bit in [0x01u8, 0x80] {
            let mut bad = wrapped.clone();
            bad[i] ^= bit;
            assert_eq!(
                unwrap_for_association(&bad, psk, b"ctx"),
                Err(CryptoError::Unwrap),
                "byte {i}"
            );
        }
    }
}

#[test]
fn wrap_refuses_empty_secret_and_wrong_lengths() {
    let key = SessionKey::from_bytes([7; 32]);
    assert_eq!(
        wrap_for_association(&key, b"", b"ctx"),
        Err(CryptoError::EmptyAssociationKey)
    );
    for len in [0usize, 8, 16, 32, 39, 41, 48] {
        // A single semiblock with the RFC 5649 prefix used to be an overflow in aes-kw.
        let mut input = vec![0u8; len];
        if len >= 4 {
            input[..4].copy_from_slice(&[0xa6, 0x59, 0x59, 0xa6]);
        }
        assert!(matches!(
            unwrap_for_association(&input, b"k", b""),
            Err(CryptoError::Length { got, .. }) if got == len
        ));
    }
    // A 25-byte key wrapped correctly (also 40 bytes) is still not a session key.
    let kek = association_kek(b"k", b"").unwrap_or_else(|e| panic!("{e}"));
    let odd = kek.wrap_with_padding_vec(&[1u8; 25]).unwrap_or_default();
    assert_eq!(odd.len(), WRAPPED_KEY_LEN);
    assert!(matches!(
        unwrap_for_association(&odd, b"k", b""),
        Err(CryptoError::Length { got: 25, .. })
    ));
}

// ---- RFC 9180 (HPKE) ---------------------------------------------------------------------

const INFO: &str = "4f6465206f6e2061204772656369616e2055726e";
const PT: &str = "4265617574792069732074727574682c20747275746820626561757479";
const AAD: &str = "436f756e742d30";

/// RFC 9180 A.1.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, base mode,
/// sequence number 0.
#[test]
fn hpke_rfc9180_a_1_1_base_mode_vector() {
    let mut rng = FixedRng {
        bytes: unhex("7268600d403fce431561aef583ee1613527cff655c1343f29812e66706df3234"),
        pos: 0,
    };
    let sk_r = PrivateKey::from_bytes(&arr32(
        "4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8",
    ));
    let pk_r = sk_r.public_key();
    assert_eq!(
        hex::encode(pk_r.as_bytes()),
        "3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d"
    );
    let out = seal_bytes(
        &OpModeS::Base,
        &pk_r,
        &unhex(INFO),
        &unhex(PT),
        &unhex(AAD),
        &mut rng,
    )
    .unwrap_or_default();
    let (enc, ct) = out.split_at(32);
    assert_eq!(
        hex::encode(enc),
        "37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431"
    );
    assert_eq!(
        hex::encode(ct),
        "f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a96d8770ac83d07bea87e13c512a"
    );
    let plain = open_bytes(&OpModeR::Base, &out, &sk_r, &unhex(INFO), &unhex(AAD))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(hex::encode(&*plain), PT);
}

/// RFC 9180 A.1.3: the same suite in auth mode.
#[test]
fn hpke_rfc9180_a_1_3_auth_mode_vector() {
    let mut rng = FixedRng {
        bytes: unhex("6e6d8f200ea2fb20c30b003a8b4f433d2f4ed4c2658d5bc8ce2fef718059c9f7"),
        pos: 0,
    };
    let sk_r = PrivateKey::from_bytes(&arr32(
        "fdea67cf831f1ca98d8e27b1f6abeb5b7745e9d35348b80fa407ff6958f9137e",
    ));
    let sk_s = PrivateKey::from_bytes(&arr32(
        "dc4a146313cce60a278a5323d321f051c5707e9c45ba21a3479fecdf76fc69dd",
    ));
    let pk_s = sk_s.public_key();
    assert_eq!(
        hex::encode(pk_s.as_bytes()),
        "8b0c70873dc5aecb7f9ee4e62406a397b350e57012be45cf53b7105ae731790b"
    );
    let mode = OpModeS::Auth((sk_s.0.clone(), Kem::sk_to_pk(&sk_s.0)));
    let out = seal_bytes(
        &mode,
        &sk_r.public_key(),
        &unhex(INFO),
        &unhex(PT),
        &unhex(AAD),
        &mut rng,
    )
    .unwrap_or_default();
    assert_eq!(
        hex::encode(&out),
        "23fb952571a14a25e3d678140cd0e5eb47a0961bb18afcf85896e5453c312e76\
         5fd92cc9d46dbf8943e72a07e42f363ed5f721212cd90bcfd072bfd9f44e06b80fd17824947496e21b680c141b"
    );
    let plain = open_bytes(
        &OpModeR::Auth(pk_s.to_hpke()),
        &out,
        &sk_r,
        &unhex(INFO),
        &unhex(AAD),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(hex::encode(&*plain), PT);
}

#[test]
fn hpke_base_round_trip_and_failures() {
    let mut rng = rng();
    let recipient = PrivateKey::generate(&mut rng);
    let other = PrivateKey::generate(&mut rng);
    let key = SessionKey::generate(&mut rng);
    let sealed =
        seal_for_public_key(&key, &recipient.public_key(), b"info", &mut rng).unwrap_or_default();
    assert_eq!(sealed.len(), SEALED_KEY_LEN);
    assert_eq!(
        open_with_private_key(&sealed, &recipient, b"info"),
        Ok(key.clone())
    );
    // Fresh ephemeral key each time.
    let again =
        seal_for_public_key(&key, &recipient.public_key(), b"info", &mut rng).unwrap_or_default();
    assert_ne!(again, sealed);

    assert_eq!(
        open_with_private_key(&sealed, &other, b"info"),
        Err(CryptoError::Open)
    );
    assert_eq!(
        open_with_private_key(&sealed, &recipient, b"inf0"),
        Err(CryptoError::Open)
    );
    for i in 0..sealed.len() {
        let mut bad = sealed.clone();
        bad[i] ^= 0x01;
        assert_eq!(
            open_with_private_key(&bad, &recipient, b"info"),
            Err(CryptoError::Open),
            "byte {i}"
        );
    }
    for len in [0usize, 31, 32, 79, 81] {
        assert!(matches!(
            open_with_private_key(&vec![0u8; len], &recipient, b"info"),
            Err(CryptoError::Length { got, .. }) if got == len
        ));
    }
}

#[test]
fn hpke_refuses_a_low_order_public_key() {
    let mut rng = rng();
    let key = SessionKey::generate(&mut rng);
    let zero = PublicKey::from_bytes([0u8; 32]);
    assert_eq!(
        seal_for_public_key(&key, &zero, b"info", &mut rng),
        Err(CryptoError::Seal)
    );
    // An all-zero enc (a low-order ephemeral key) is refused on open too.
    let recipient = PrivateKey::generate(&mut rng);
    let sealed = vec![0u8; SEALED_KEY_LEN];
    assert_eq!(
        open_with_private_key(&sealed, &recipient, b""),
        Err(CryptoError::Open)
    );
}

#[test]
fn hpke_auth_round_trip_checks_the_sender() {
    let mut rng = rng();
    let recipient = PrivateKey::generate(&mut rng);
    let sender = PrivateKey::generate(&mut rng);
    let impostor = PrivateKey::generate(&mut rng);
    let secret = SessionKey::generate(&mut rng);
    let sealed = seal_authenticated(
        &secret,
        &recipient.public_key(),
        &sender,
        b"info",
        b"aad",
        &mut rng,
    )
    .unwrap_or_default();
    assert_eq!(
        open_authenticated(&sealed, &recipient, &sender.public_key(), b"info", b"aad"),
        Ok(secret.clone())
    );
    assert_eq!(
        open_authenticated(&sealed, &recipient, &impostor.public_key(), b"info", b"aad"),
        Err(CryptoError::Open)
    );
    assert_eq!(
        open_authenticated(&sealed, &recipient, &sender.public_key(), b"info", b"aaD"),
        Err(CryptoError::Open)
    );
    // Base mode cannot open an auth-mode seal, nor the other way round.
    assert_eq!(
        open_with_private_key(&sealed, &recipient, b"info"),
        Err(CryptoError::Open)
    );
    let base = seal_for_public_key(&secret, &recipient.public_key(), b"info", &mut rng)
        .unwrap_or_default();
    assert_eq!(
        open_authenticated(&base, &recipient, &sender.public_key(), b"info", b""),
        Err(CryptoError::Open)
    );
}

// ---- key types -------------------------------------------------------------------------

#[test]
fn keys_never_show_in_debug_and_compare_by_value() {
    let key = SessionKey::from_bytes([0xab; 32]);
    let shown = format!("{key:?} {key:#?}");
    assert!(!shown.contains("ab"), "{shown}");
    assert!(shown.contains("redacted"));
    let sk = PrivateKey::from_bytes(&[0xcd; 32]);
    let shown = format!("{sk:?}");
    assert!(!shown.to_lowercase().contains("cdcd"), "{shown}");
    assert_eq!(key, SessionKey::from_bytes([0xab; 32]));
    assert_ne!(key, SessionKey::from_bytes([0xac; 32]));
    assert_eq!(
        sk.to_bytes().as_slice(),
        PrivateKey::from_bytes(&sk.to_bytes()).to_bytes().as_slice()
    );
    assert_eq!(
        SessionKey::try_from_slice(&[1; 31]),
        Err(CryptoError::Length {
            what: "session key",
            expected: 32,
            got: 31
        })
    );
    // A public key is public: Debug shows it, for configuration checks.
    let pk = sk.public_key();
    assert!(format!("{pk:?}").contains(&hex::encode(pk.as_bytes())));
}

#[test]
fn generated_keys_differ() {
    let mut rng = rng();
    let a = SessionKey::generate(&mut rng);
    let b = SessionKey::generate(&mut rng);
    assert_ne!(a, b);
    assert_ne!(a.as_bytes(), &[0u8; 32]);
}
