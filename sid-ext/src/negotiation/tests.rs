//! Byte-level tests of every negotiation message (construct, emit, parse, deconstruct),
//! the terms rules and the key schedule.

use core::net::Ipv4Addr;

use hmac::{Hmac, Mac};
use mip_core::wire::WireError;
use sha2::{Digest, Sha256};

use super::keys::{self, Transcript};
use super::terms::{ReversePath, Role, SessionTerms, TermsError};
use super::wire::*;

const MAC: [u8; 32] = [0xee; 32];

fn nonce(start: u8) -> [u8; 16] {
    core::array::from_fn(|i| start + i as u8)
}

fn with_mac(mut covered: Vec<u8>) -> Vec<u8> {
    covered.extend_from_slice(&MAC);
    covered
}

fn tn_terms() -> SessionTerms {
    SessionTerms {
        tn_address: Ipv4Addr::new(198, 18, 1, 10),
        agent: Some(Ipv4Addr::new(198, 18, 0, 1)),
        tn_lla: vec![0x02, 0, 0, 0, 0, 0x01],
        interim: None,
        further_transfer: true,
        lifetime: 300,
        reverse_path: ReversePath::Tunnel,
    }
}

fn offer_psk() -> (Message, Vec<u8>) {
    let msg = Message::Offer(Offer {
        mode: Mode::PreShared,
        nonce_i: nonce(0),
        timestamp: 0xe8fe_6f80_0000_0000,
        role: Role::TransferringNode,
        terms: tn_terms(),
        initiator_id: "tn1".into(),
        responder_id: "tg1".into(),
        offer_secret: None,
    });
    #[rustfmt::skip]
    let bytes = vec![
        0x01, 0x01, 0x01, 0x00,                         // version, type Offer, mode PSK, reserved
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, // initiator nonce
        0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
        0xe8, 0xfe, 0x6f, 0x80, 0x00, 0x00, 0x00, 0x00, // timestamp (NTP, 2023-11-14T22:13:20Z)
        0x01, 0x03, 0x03, 0x00,                         // role TN, id lengths 3 and 3, reserved
        0xc0, 0x06, 0x01, 0x2c,                         // F T, LLA length 6, lifetime 300
        198, 18, 1, 10,                                 // Transferring Node address
        198, 18, 0, 1,                                  // agent
        0, 0, 0, 0,                                     // no interim address
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01,             // link-layer address
        b't', b'n', b'1', b't', b'g', b'1',             // initiator id, responder id
    ];
    (msg, bytes)
}

/// Emit, length, parse and deconstruct for one message against its bytes (MAC excluded).
fn check_both_ways(msg: &Message, covered: &[u8]) {
    assert_eq!(msg.emit_unauthenticated().as_deref(), Ok(covered));
    let datagram = with_mac(covered.to_vec());
    assert_eq!(msg.buffer_len(), datagram.len());
    let parsed = Message::parse(&datagram).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&parsed.message, msg);
    assert_eq!(parsed.covered, covered);
    assert_eq!(parsed.mac, MAC);
    assert_eq!(peek_type(&datagram), Some(msg.message_type()));
    // Every shorter datagram is refused, none panics.
    for len in 0..datagram.len() {
        assert!(Message::parse(&datagram[..len]).is_err(), "prefix {len}");
    }
    let mut longer = datagram.clone();
    longer.push(0);
    assert_eq!(
        Message::parse(&longer).map(|p| p.message),
        Err(WireError::Malformed("trailing bytes before the MAC"))
    );
}

#[test]
fn offer_pre_shared_bytes() {
    let (msg, bytes) = offer_psk();
    assert_eq!(bytes.len() + MAC_LEN, 92);
    check_both_ways(&msg, &bytes);
}

#[test]
fn offer_public_key_bytes_carry_the_offer_secret_before_the_mac() {
    let (Message::Offer(mut offer), mut bytes) = offer_psk() else {
        unreachable!()
    };
    offer.mode = Mode::PublicKey;
    offer.role = Role::TargetNode;
    offer.terms =
        SessionTerms::target_request(Ipv4Addr::UNSPECIFIED, 120, ReversePath::Direct, false);
    offer.offer_secret = Some(vec![0x5a; OFFER_SECRET_LEN]);
    bytes[2] = 0x02;
    bytes[28] = 0x02;
    #[rustfmt::skip]
    let terms = [
        0x00, 0x00, 0x00, 0x78,  // no flags, no LLA, lifetime 120
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let mut expected = bytes[..32].to_vec();
    expected.extend_from_slice(&terms);
    expected.extend_from_slice(b"tn1tg1");
    expected.extend_from_slice(&[0x5a; 80]);
    assert_eq!(expected.len() + MAC_LEN, 20 + 12 + 16 + 6 + 80 + 32);
    check_both_ways(&Message::Offer(offer), &expected);
}

#[test]
fn accept_bytes() {
    let msg = Message::Accept(Accept {
        mode: Mode::PreShared,
        nonce_i: nonce(0),
        nonce_r: nonce(0x10),
        terms: SessionTerms {
            tn_address: Ipv4Addr::new(198, 18, 1, 10),
            agent: None,
            tn_lla: Vec::new(),
            interim: Some(Ipv4Addr::new(198, 18, 2, 2)),
            further_transfer: false,
            lifetime: 60,
            reverse_path: ReversePath::Direct,
        },
    });
    let mut bytes = vec![0x01, 0x02, 0x01, 0x00];
    bytes.extend_from_slice(&nonce(0));
    bytes.extend_from_slice(&nonce(0x10));
    bytes.extend_from_slice(&[
        0x00, 0x00, 0x00, 0x3c, 198, 18, 1, 10, 0, 0, 0, 0, 198, 18, 2, 2,
    ]);
    assert_eq!(bytes.len() + MAC_LEN, ACCEPT_MIN_LEN);
    check_both_ways(&msg, &bytes);
}

#[test]
fn refuse_bytes() {
    let msg = Message::Refuse(Refuse {
        mode: Mode::PublicKey,
        nonce_i: nonce(0),
        code: RefuseCode::Busy,
        timestamp: 0x0102_0304_0506_0708,
    });
    let mut bytes = vec![0x01, 0x03, 0x02, 0x00];
    bytes.extend_from_slice(&nonce(0));
    bytes.extend_from_slice(&[0x02, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(bytes.len() + MAC_LEN, REFUSE_LEN);
    check_both_ways(&msg, &bytes);
    for code in 0..=255u8 {
        assert_eq!(u8::from(RefuseCode::from(code)), code);
    }
}

#[test]
fn session_key_bytes_in_both_modes() {
    for (mode, len) in [(Mode::PreShared, 40u8), (Mode::PublicKey, 80)] {
        let msg = Message::SessionKey(SessionKeyMessage {
            mode,
            nonce_i: nonce(0),
            nonce_r: nonce(0x10),
            algorithm: mode.key_algorithm(),
            encrypted_key: vec![0xa5; usize::from(len)],
        });
        let mut bytes = vec![0x01, 0x04, mode as u8, 0x00];
        bytes.extend_from_slice(&nonce(0));
        bytes.extend_from_slice(&nonce(0x10));
        bytes.extend_from_slice(&[mode as u8, 0x00, 0x00, len]);
        bytes.extend_from_slice(&vec![0xa5; usize::from(len)]);
        check_both_ways(&msg, &bytes);
    }
}

#[test]
fn confirm_bytes() {
    let msg = Message::Confirm(Confirm {
        mode: Mode::PreShared,
        nonce_i: nonce(0),
        nonce_r: nonce(0x10),
    });
    let mut bytes = vec![0x01, 0x05, 0x01, 0x00];
    bytes.extend_from_slice(&nonce(0));
    bytes.extend_from_slice(&nonce(0x10));
    assert_eq!(bytes.len() + MAC_LEN, CONFIRM_LEN);
    check_both_ways(&msg, &bytes);
}

#[test]
fn header_fields_out_of_range_are_refused() {
    let (_, bytes) = offer_psk();
    let cases: [(usize, u8, &str); 5] = [
        (0, 2, "unsupported negotiation version"),
        (1, 6, "unknown negotiation message type"),
        (1, 0, "unknown negotiation message type"),
        (2, 3, "unknown mode"),
        (28, 0, "unknown role"),
    ];
    for (offset, value, why) in cases {
        let mut bad = with_mac(bytes.clone());
        bad[offset] = value;
        assert_eq!(
            Message::parse(&bad).map(|p| p.message),
            Err(WireError::Malformed(why))
        );
    }
    assert_eq!(peek_type(&[2, 1]), None);
    assert_eq!(peek_type(&[1]), None);
}

#[test]
fn lengths_out_of_range_are_refused() {
    let (_, bytes) = offer_psk();
    // Identity length 0 and 65; LLA length 21; identity not UTF-8.
    let mut bad = with_mac(bytes.clone());
    bad[29] = 0;
    assert!(Message::parse(&bad).is_err());
    let mut bad = with_mac(bytes.clone());
    bad[30] = 65;
    assert!(Message::parse(&bad).is_err());
    let mut bad = with_mac(bytes.clone());
    bad[33] = 21;
    assert!(Message::parse(&bad).is_err());
    let mut bad = with_mac(bytes.clone());
    bad[54] = 0xff;
    assert_eq!(
        Message::parse(&bad).map(|p| p.message),
        Err(WireError::Malformed("identity is not UTF-8"))
    );
}

#[test]
fn session_key_algorithm_must_match_mode_and_length() {
    let mut bytes = vec![0x01, 0x04, 0x01, 0x00];
    bytes.extend_from_slice(&[0; 32]);
    bytes.extend_from_slice(&[0x02, 0x00, 0x00, 80]);
    bytes.extend_from_slice(&[0; 80]);
    assert_eq!(
        Message::parse(&with_mac(bytes.clone())).map(|p| p.message),
        Err(WireError::Malformed(
            "key algorithm does not match the mode"
        ))
    );
    bytes[36] = 0x01;
    assert_eq!(
        Message::parse(&with_mac(bytes)).map(|p| p.message),
        Err(WireError::Malformed(
            "encrypted key length wrong for its algorithm"
        ))
    );
}

#[test]
fn emit_refuses_what_could_not_be_parsed() {
    let (Message::Offer(offer), _) = offer_psk() else {
        unreachable!()
    };
    let mut long_id = offer.clone();
    long_id.initiator_id = "x".repeat(65);
    assert!(Message::Offer(long_id).emit_unauthenticated().is_err());
    let mut empty_id = offer.clone();
    empty_id.responder_id.clear();
    assert!(Message::Offer(empty_id).emit_unauthenticated().is_err());
    let mut long_lla = offer.clone();
    long_lla.terms.tn_lla = vec![1; 21];
    assert!(Message::Offer(long_lla).emit_unauthenticated().is_err());
    let mut secret_in_psk = offer.clone();
    secret_in_psk.offer_secret = Some(vec![0; 80]);
    assert!(Message::Offer(secret_in_psk)
        .emit_unauthenticated()
        .is_err());
    let mut pk_without_secret = offer;
    pk_without_secret.mode = Mode::PublicKey;
    assert!(Message::Offer(pk_without_secret)
        .emit_unauthenticated()
        .is_err());
}

// ---- terms ----------------------------------------------------------------------------

#[test]
fn offer_terms_by_role() {
    assert_eq!(tn_terms().check_offer(Role::TransferringNode), Ok(()));
    let mut t = tn_terms();
    t.tn_lla.clear();
    assert_eq!(
        t.check_offer(Role::TransferringNode),
        Err(TermsError::NoWakeUpAddress)
    );
    t.interim = Some(Ipv4Addr::new(198, 18, 1, 77));
    assert_eq!(t.check_offer(Role::TransferringNode), Ok(()));
    t.tn_address = Ipv4Addr::UNSPECIFIED;
    assert_eq!(
        t.check_offer(Role::TransferringNode),
        Err(TermsError::NoTnAddress)
    );
    let mut t = tn_terms();
    t.lifetime = 0;
    assert_eq!(
        t.check_offer(Role::TransferringNode),
        Err(TermsError::ZeroLifetime)
    );
    let mut t = tn_terms();
    t.agent = Some(Ipv4Addr::UNSPECIFIED);
    assert_eq!(
        t.check_offer(Role::TransferringNode),
        Err(TermsError::Unspecified("agent address"))
    );

    let request =
        SessionTerms::target_request(Ipv4Addr::UNSPECIFIED, 60, ReversePath::Tunnel, true);
    assert_eq!(request.check_offer(Role::TargetNode), Ok(()));
    assert_eq!(
        tn_terms().check_offer(Role::TargetNode),
        Err(TermsError::SetByTransferringNode("agent address"))
    );
}

#[test]
fn answer_rules_when_the_transferring_node_offers() {
    let offered = tn_terms();
    let mut answer = offered.clone();
    answer.lifetime = 100;
    answer.reverse_path = ReversePath::Direct;
    answer.further_transfer = false;
    assert_eq!(
        SessionTerms::check_answer(Role::TransferringNode, &offered, &answer),
        Ok(())
    );
    let mut raised = offered.clone();
    raised.lifetime = 301;
    assert_eq!(
        SessionTerms::check_answer(Role::TransferringNode, &offered, &raised),
        Err(TermsError::LifetimeRaised {
            offered: 300,
            answered: 301
        })
    );
    let mut moved = offered.clone();
    moved.agent = Some(Ipv4Addr::new(198, 18, 0, 2));
    assert_eq!(
        SessionTerms::check_answer(Role::TransferringNode, &offered, &moved),
        Err(TermsError::Changed("agent address"))
    );
    let mut no_ft = offered.clone();
    no_ft.further_transfer = false;
    let mut granted = no_ft.clone();
    granted.further_transfer = true;
    assert_eq!(
        SessionTerms::check_answer(Role::TransferringNode, &no_ft, &granted),
        Err(TermsError::FurtherTransferNotOffered)
    );
}

#[test]
fn answer_rules_when_the_target_offers() {
    let request =
        SessionTerms::target_request(Ipv4Addr::UNSPECIFIED, 300, ReversePath::Tunnel, false);
    let mut answer = tn_terms();
    answer.further_transfer = false;
    assert_eq!(
        SessionTerms::check_answer(Role::TargetNode, &request, &answer),
        Ok(())
    );
    let mut direct = answer.clone();
    direct.reverse_path = ReversePath::Direct;
    assert_eq!(
        SessionTerms::check_answer(Role::TargetNode, &request, &direct),
        Err(TermsError::ReversePathChanged)
    );
    let mut ft = answer.clone();
    ft.further_transfer = true;
    assert_eq!(
        SessionTerms::check_answer(Role::TargetNode, &request, &ft),
        Err(TermsError::FurtherTransferNotOffered)
    );
    let specific = SessionTerms::target_request(
        Ipv4Addr::new(198, 18, 1, 11),
        300,
        ReversePath::Tunnel,
        false,
    );
    assert_eq!(
        SessionTerms::check_answer(Role::TargetNode, &specific, &answer),
        Err(TermsError::Changed("Transferring Node address"))
    );
}

// ---- key schedule ---------------------------------------------------------------------

#[test]
fn transcript_is_a_hash_chain_over_whole_messages() {
    let mut t = Transcript::new();
    let th0: [u8; 32] = Sha256::digest(b"sidmip negotiation v1").into();
    assert_eq!(t.hash(), &th0);
    t.absorb(b"first");
    let mut h = Sha256::new();
    h.update(th0);
    h.update(b"first");
    let th1: [u8; 32] = h.finalize().into();
    assert_eq!(t.hash(), &th1);
    // Message boundaries count: "ab" then "c" differs from "a" then "bc".
    let (mut x, mut y) = (Transcript::new(), Transcript::new());
    x.absorb(b"ab");
    x.absorb(b"c");
    y.absorb(b"a");
    y.absorb(b"bc");
    assert_ne!(x, y);
}

#[test]
fn mac_is_hmac_sha256_over_prior_transcript_then_message() {
    let key = keys::auth_key_from_psk(b"0123456789abcdef").unwrap_or_else(|e| panic!("{e}"));
    let mut t = Transcript::new();
    t.absorb(b"offer");
    let tag = keys::mac(&key, &t, b"accept");
    let mut reference =
        <Hmac<Sha256> as Mac>::new_from_slice(key.as_ref()).unwrap_or_else(|_| unreachable!());
    reference.update(t.hash());
    reference.update(b"accept");
    assert_eq!(tag.as_slice(), reference.finalize().into_bytes().as_slice());
    assert!(keys::verify(&key, &t, b"accept", &tag));
    assert!(!keys::verify(&key, &Transcript::new(), b"accept", &tag));
    let mut bad = tag;
    bad[31] ^= 1;
    assert!(!keys::verify(&key, &t, b"accept", &bad));
}

#[test]
fn keys_are_separated_by_label() {
    let psk = keys::auth_key_from_psk(b"0123456789abcdef").unwrap_or_else(|e| panic!("{e}"));
    let secret = crate::crypto::SessionKey::from_bytes(*b"0123456789abcdef0123456789abcdef");
    let pk = keys::auth_key_from_offer_secret(&secret).unwrap_or_else(|e| panic!("{e}"));
    let psk_same_ikm = keys::auth_key_from_psk(secret.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(*pk, *psk_same_ikm);
    let confirm = keys::confirm_key(&psk, &secret).unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(*confirm, *psk);
    assert!(keys::auth_key_from_psk(b"").is_err());
}
