//! Registration Request/Reply tested four ways against bytes from real captures.

use super::*;
use crate::wire::{Extension, ExtensionItem};

/// jv-away-public.pcap frame 31 (JeroenVerstraelen/MobileIP): UDP 434 payload of a
/// Registration Request, lifetime 60.
#[rustfmt::skip]
const CAPTURED_REQUEST: [u8; 24] = [
    0x01, 0x00, 0x00, 0x3c, 0xc0, 0xa8, 0x02, 0x01, 0xc0, 0xa8, 0x00, 0x02, 0xc0, 0xa8, 0x00, 0x03,
    0xdd, 0xa4, 0x8d, 0x17, 0x0b, 0x64, 0xb8, 0x08,
];

/// jv-away-public.pcap frame 34: the Registration Reply to it, code 0, lifetime 30.
#[rustfmt::skip]
const CAPTURED_REPLY: [u8; 20] = [
    0x03, 0x00, 0x00, 0x1e, 0xc0, 0xa8, 0x02, 0x01, 0xc0, 0xa8, 0x00, 0x02, 0xdd, 0xa4, 0x8d, 0x17,
    0x0b, 0x64, 0xb8, 0x08,
];

/// A request with every flag set and two extensions (NAI "mn", MHAE with SPI 256 and a
/// 4-byte authenticator), laid out by hand from RFC 5944 3.3 / 3.5.2 and RFC 2794.
#[rustfmt::skip]
const REQUEST_WITH_EXTENSIONS: [u8; 38] = [
    0x01, 0xff, 0xff, 0xff, 0xc6, 0x12, 0x00, 0x0a, 0xc6, 0x12, 0x00, 0x01, 0xc6, 0x12, 0x01, 0x02,
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // fixed part
    0x83, 0x02, b'm', b'n', // NAI
    0x20, 0x08, 0x00, 0x00, 0x01, 0x00, 0xaa, 0xbb, 0xcc, 0xdd, // MHAE
];

fn captured_request_repr() -> RegistrationRequestRepr {
    RegistrationRequestRepr {
        flags: RegistrationFlags(0),
        lifetime: 60,
        home_address: Ipv4Addr::new(192, 168, 2, 1),
        home_agent: Ipv4Addr::new(192, 168, 0, 2),
        care_of_address: Ipv4Addr::new(192, 168, 0, 3),
        identification: 0xdda4_8d17_0b64_b808,
    }
}

fn captured_reply_repr() -> RegistrationReplyRepr {
    RegistrationReplyRepr {
        code: ReplyCode::Accepted,
        lifetime: 30,
        home_address: Ipv4Addr::new(192, 168, 2, 1),
        home_agent: Ipv4Addr::new(192, 168, 0, 2),
        identification: 0xdda4_8d17_0b64_b808,
    }
}

#[test]
fn request_deconstruct() {
    let p = RegistrationRequest::new_checked(&CAPTURED_REQUEST[..]).expect("valid length");
    assert_eq!(p.msg_type(), REQUEST_TYPE);
    assert_eq!(p.flags(), RegistrationFlags(0));
    assert_eq!(p.lifetime(), 60);
    assert_eq!(p.home_address(), Ipv4Addr::new(192, 168, 2, 1));
    assert_eq!(p.home_agent(), Ipv4Addr::new(192, 168, 0, 2));
    assert_eq!(p.care_of_address(), Ipv4Addr::new(192, 168, 0, 3));
    assert_eq!(p.identification(), 0xdda4_8d17_0b64_b808);
    assert_eq!(p.extensions().count(), 0);
}

#[test]
fn request_construct() {
    let mut p = RegistrationRequest::new_unchecked([0u8; 24]);
    p.set_msg_type(REQUEST_TYPE);
    p.set_flags(RegistrationFlags(0));
    p.set_lifetime(60);
    p.set_home_address(Ipv4Addr::new(192, 168, 2, 1));
    p.set_home_agent(Ipv4Addr::new(192, 168, 0, 2));
    p.set_care_of_address(Ipv4Addr::new(192, 168, 0, 3));
    p.set_identification(0xdda4_8d17_0b64_b808);
    assert_eq!(p.into_inner(), CAPTURED_REQUEST);
}

#[test]
fn request_parse() {
    let p = RegistrationRequest::new_checked(&CAPTURED_REQUEST[..]).expect("valid length");
    assert_eq!(
        RegistrationRequestRepr::parse(&p),
        Ok(captured_request_repr())
    );
}

#[test]
fn request_emit() {
    let repr = captured_request_repr();
    assert_eq!(repr.buffer_len(), REQUEST_FIXED_LEN);
    let mut p = RegistrationRequest::new_unchecked([0xeeu8; 24]);
    repr.emit(&mut p);
    assert_eq!(p.into_inner(), CAPTURED_REQUEST);
    assert_eq!(repr.to_bytes(), CAPTURED_REQUEST.to_vec());
}

#[test]
fn reply_deconstruct() {
    let p = RegistrationReply::new_checked(&CAPTURED_REPLY[..]).expect("valid length");
    assert_eq!(p.msg_type(), REPLY_TYPE);
    assert_eq!(p.code(), ReplyCode::Accepted);
    assert_eq!(p.lifetime(), 30);
    assert_eq!(p.home_address(), Ipv4Addr::new(192, 168, 2, 1));
    assert_eq!(p.home_agent(), Ipv4Addr::new(192, 168, 0, 2));
    assert_eq!(p.identification(), 0xdda4_8d17_0b64_b808);
    assert_eq!(p.extensions().count(), 0);
}

#[test]
fn reply_construct() {
    let mut p = RegistrationReply::new_unchecked([0u8; 20]);
    p.set_msg_type(REPLY_TYPE);
    p.set_code(ReplyCode::Accepted);
    p.set_lifetime(30);
    p.set_home_address(Ipv4Addr::new(192, 168, 2, 1));
    p.set_home_agent(Ipv4Addr::new(192, 168, 0, 2));
    p.set_identification(0xdda4_8d17_0b64_b808);
    assert_eq!(p.into_inner(), CAPTURED_REPLY);
}

#[test]
fn reply_parse() {
    let p = RegistrationReply::new_checked(&CAPTURED_REPLY[..]).expect("valid length");
    assert_eq!(RegistrationReplyRepr::parse(&p), Ok(captured_reply_repr()));
}

#[test]
fn reply_emit() {
    let repr = captured_reply_repr();
    assert_eq!(repr.buffer_len(), REPLY_FIXED_LEN);
    let mut p = RegistrationReply::new_unchecked([0xeeu8; 20]);
    repr.emit(&mut p);
    assert_eq!(p.into_inner(), CAPTURED_REPLY);
    assert_eq!(repr.to_bytes(), CAPTURED_REPLY.to_vec());
}

#[test]
fn reply_keeps_unknown_code() {
    let mut bytes = CAPTURED_REPLY;
    bytes[1] = 250;
    let p = RegistrationReply::new_checked(&bytes[..]).expect("valid length");
    let repr = RegistrationReplyRepr::parse(&p).expect("parses");
    assert_eq!(repr.code, ReplyCode::Unknown(250));
    assert_eq!(repr.to_bytes(), bytes.to_vec());
}

#[test]
fn request_with_extensions() {
    let p = RegistrationRequest::new_checked(&REQUEST_WITH_EXTENSIONS[..]).expect("valid length");
    let repr = RegistrationRequestRepr::parse(&p).expect("parses");
    assert_eq!(repr.flags.bits(), 0xff);
    for bit in [
        RegistrationFlags::S,
        RegistrationFlags::B,
        RegistrationFlags::D,
        RegistrationFlags::M,
        RegistrationFlags::G,
        RegistrationFlags::R_RESERVED,
        RegistrationFlags::T,
        RegistrationFlags::X,
    ] {
        assert!(repr.flags.contains(bit));
        assert!(!RegistrationFlags::default().contains(bit));
        assert_eq!(RegistrationFlags::default().with(bit).bits(), bit);
    }
    assert_eq!(repr.lifetime, 0xffff);
    assert_eq!(repr.identification, 0x0102_0304_0506_0708);
    let items: Vec<ExtensionItem<'_>> = p
        .extensions()
        .collect::<Result<_>>()
        .expect("valid extensions");
    assert_eq!(
        items,
        vec![
            ExtensionItem {
                offset: 24,
                len: 4,
                ext: Extension::Nai(b"mn")
            },
            ExtensionItem {
                offset: 28,
                len: 10,
                ext: Extension::MobileHomeAuth(crate::wire::AuthExtension {
                    spi: 256,
                    authenticator: &[0xaa, 0xbb, 0xcc, 0xdd],
                }),
            },
        ]
    );
    // The MHAE covers everything up to and including its SPI (RFC 5944 3.5.1).
    let covered =
        &REQUEST_WITH_EXTENSIONS[..items[1].offset + crate::wire::AUTH_EXT_COVERED_HEADER];
    assert_eq!(covered.len(), 34);

    // And the same message can be built from the Repr and the extensions.
    let mut built = repr.to_bytes();
    for item in &items {
        item.ext.append_to(&mut built).expect("fits");
    }
    assert_eq!(built, REQUEST_WITH_EXTENSIONS.to_vec());
}

#[test]
fn wrong_type() {
    let mut reply_padded = CAPTURED_REPLY.to_vec();
    reply_padded.resize(REQUEST_FIXED_LEN, 0);
    let p = RegistrationRequest::new_checked(&reply_padded[..]).expect("long enough");
    assert_eq!(
        RegistrationRequestRepr::parse(&p),
        Err(WireError::WrongType {
            expected: REQUEST_TYPE,
            got: REPLY_TYPE
        })
    );
    let p = RegistrationReply::new_checked(&CAPTURED_REQUEST[..]).expect("long enough");
    assert_eq!(
        RegistrationReplyRepr::parse(&p),
        Err(WireError::WrongType {
            expected: REPLY_TYPE,
            got: REQUEST_TYPE
        })
    );
}

#[test]
fn truncated_fixed_part() {
    for n in 0..REQUEST_FIXED_LEN {
        let bytes = &CAPTURED_REQUEST[..n];
        assert_eq!(
            RegistrationRequest::new_checked(bytes).err(),
            Some(WireError::Truncated {
                need: REQUEST_FIXED_LEN,
                have: n
            })
        );
        assert!(
            RegistrationRequestRepr::parse(&RegistrationRequest::new_unchecked(bytes)).is_err()
        );
    }
    for n in 0..REPLY_FIXED_LEN {
        let bytes = &CAPTURED_REPLY[..n];
        assert_eq!(
            RegistrationReply::new_checked(bytes).err(),
            Some(WireError::Truncated {
                need: REPLY_FIXED_LEN,
                have: n
            })
        );
        assert!(RegistrationReplyRepr::parse(&RegistrationReply::new_unchecked(bytes)).is_err());
    }
}

#[test]
fn unchecked_short_buffers_never_panic() {
    // Getters and setters on a view that skipped check_len read zeros / write nothing.
    for n in 0..REQUEST_FIXED_LEN {
        let mut req = RegistrationRequest::new_unchecked(vec![1u8; n]);
        let _ = (
            req.msg_type(),
            req.flags(),
            req.lifetime(),
            req.home_address(),
            req.home_agent(),
        );
        let _ = (
            req.care_of_address(),
            req.identification(),
            req.extensions().count(),
        );
        captured_request_repr().emit(&mut req);
        let mut rep = RegistrationReply::new_unchecked(vec![1u8; n]);
        let _ = (
            rep.msg_type(),
            rep.code(),
            rep.lifetime(),
            rep.home_address(),
            rep.home_agent(),
        );
        let _ = (rep.identification(), rep.extensions().count());
        captured_reply_repr().emit(&mut rep);
    }
}

#[test]
fn every_prefix_parses_or_errors() {
    for n in 0..=REQUEST_WITH_EXTENSIONS.len() {
        let bytes = &REQUEST_WITH_EXTENSIONS[..n];
        let p = RegistrationRequest::new_unchecked(bytes);
        let fixed = RegistrationRequestRepr::parse(&p);
        assert_eq!(fixed.is_ok(), n >= REQUEST_FIXED_LEN);
        let results: Vec<_> = p.extensions().collect();
        // A cut extension is always reported, and reported last.
        let complete = matches!(n, 24 | 28 | 38);
        if n >= REQUEST_FIXED_LEN {
            assert_eq!(results.iter().all(|r| r.is_ok()), complete, "prefix {n}");
        }
        assert!(results.iter().rev().skip(1).all(|r| r.is_ok()));
        let q = RegistrationReply::new_unchecked(bytes);
        let _ = RegistrationReplyRepr::parse(&q);
        let _ = q.extensions().count();
    }
}

#[test]
fn message_type_peeks() {
    assert_eq!(message_type(&CAPTURED_REQUEST), Some(REQUEST_TYPE));
    assert_eq!(message_type(&CAPTURED_REPLY), Some(REPLY_TYPE));
    assert_eq!(message_type(&[]), None);
}
