//! Agent discovery tested four ways against captured advertisements and solicitations.

use super::*;

/// clickref-foreign.pcap frame 1 (rubenvanassche/Mobile-IP): ICMP part of an Agent
/// Advertisement, flags R+F, one care-of address.
#[rustfmt::skip]
const CAPTURED_ADV: [u8; 28] = [
    0x09, 0x00, 0xd4, 0x8b, 0x01, 0x02, 0x00, 0x05, 0xc0, 0xa8, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01,
    0x10, 0x0a, 0x00, 0x00, 0x00, 0x0a, 0x90, 0x00, 0xc0, 0xa8, 0x00, 0x03,
];

/// jv-return-home.pcap frame 1 (JeroenVerstraelen/MobileIP): flags R+H+F.
#[rustfmt::skip]
const CAPTURED_ADV_HOME: [u8; 28] = [
    0x09, 0x00, 0xb4, 0x51, 0x01, 0x02, 0x00, 0x2d, 0xc0, 0xa8, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01,
    0x10, 0x0a, 0x00, 0x00, 0x00, 0x1e, 0xb0, 0x00, 0xc0, 0xa8, 0x00, 0x02,
];

/// jv-return-home.pcap frame 27: a Router (Agent) Solicitation.
#[rustfmt::skip]
const CAPTURED_SOL: [u8; 8] = [0x0a, 0x00, 0xf5, 0xff, 0x00, 0x00, 0x00, 0x00];

/// Laid out by hand from RFC 5944 2.1: code 16, two care-of addresses, flags F+G+T, a
/// Prefix-Lengths extension and the padding byte; Wireshark 4.0 decodes it the same way and
/// reports the checksum correct.
#[rustfmt::skip]
const ADV_WITH_PREFIX: [u8; 36] = [
    0x09, 0x10, 0x47, 0x42, 0x01, 0x02, 0x07, 0x08, 0xc6, 0x12, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
    0x10, 0x0e, 0x01, 0x00, 0x02, 0x58, 0x15, 0x00, 0xc6, 0x12, 0x01, 0x01, 0xc6, 0x12, 0x01, 0x02,
    0x13, 0x01, 0x18, 0x00,
];

fn captured_repr() -> AgentAdvertisementRepr {
    AgentAdvertisementRepr {
        code: 0,
        lifetime: 5,
        router_addresses: vec![(Ipv4Addr::new(192, 168, 0, 3), 1)],
        mobility: MobilityAgentExt {
            sequence: 0,
            registration_lifetime: 10,
            flags: AgentFlags(AgentFlags::R | AgentFlags::F),
            care_of_addresses: vec![Ipv4Addr::new(192, 168, 0, 3)],
        },
        prefix_lengths: None,
    }
}

fn prefix_repr() -> AgentAdvertisementRepr {
    AgentAdvertisementRepr {
        code: 16,
        lifetime: 1800,
        router_addresses: vec![(Ipv4Addr::new(198, 18, 0, 1), 0)],
        mobility: MobilityAgentExt {
            sequence: 256,
            registration_lifetime: 600,
            flags: AgentFlags::default()
                .with(AgentFlags::F)
                .with(AgentFlags::G)
                .with(AgentFlags::T),
            care_of_addresses: vec![Ipv4Addr::new(198, 18, 1, 1), Ipv4Addr::new(198, 18, 1, 2)],
        },
        prefix_lengths: Some(vec![24]),
    }
}

/// Recomputes the checksum so a test reaches the checks behind it.
fn with_checksum(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.len() >= 4 {
        AgentAdvertisement::new_unchecked(&mut bytes[..]).fill_checksum();
    }
    bytes
}

#[test]
fn checksum_rfc1071_example() {
    // RFC 1071 section 3 sums these bytes to 0xddf2.
    assert_eq!(
        icmp_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
        !0xddf2
    );
    // An odd length pads with zero.
    assert_eq!(icmp_checksum(&[0x01]), !0x0100);
    assert_eq!(icmp_checksum(&[]), 0xffff);
    assert_eq!(icmp_checksum(&CAPTURED_ADV), 0);
    assert_eq!(icmp_checksum(&CAPTURED_SOL), 0);
}

#[test]
fn advertisement_deconstruct() {
    let v = AgentAdvertisement::new_checked(&CAPTURED_ADV[..]).expect("long enough");
    assert_eq!(v.msg_type(), ICMP_ROUTER_ADVERTISEMENT);
    assert_eq!(v.code(), 0);
    assert_eq!(v.checksum(), 0xd48b);
    assert!(v.verify_checksum());
    assert_eq!(v.num_addrs(), 1);
    assert_eq!(v.addr_entry_size(), 2);
    assert_eq!(v.lifetime(), 5);
    assert_eq!(v.router_address(0), (Ipv4Addr::new(192, 168, 0, 3), 1));
    assert_eq!(v.extensions_offset(), 16);
    // Out of range entries read as zeros rather than panic.
    assert_eq!(v.router_address(9), (Ipv4Addr::UNSPECIFIED, 0));
    assert_eq!(v.router_address(usize::MAX), (Ipv4Addr::UNSPECIFIED, 0));
    let mut buf = CAPTURED_ADV;
    let mut w = AgentAdvertisement::new_unchecked(&mut buf[..]);
    w.set_router_address(usize::MAX, Ipv4Addr::BROADCAST, -1);
    assert_eq!(buf, CAPTURED_ADV);
}

#[test]
fn advertisement_construct() {
    let mut bytes = [0u8; 28];
    let mut v = AgentAdvertisement::new_unchecked(&mut bytes[..]);
    v.set_msg_type(ICMP_ROUTER_ADVERTISEMENT);
    v.set_code(0);
    v.set_num_addrs(1);
    v.set_addr_entry_size(2);
    v.set_lifetime(5);
    v.set_router_address(0, Ipv4Addr::new(192, 168, 0, 3), 1);
    let at = v.extensions_offset();
    let bytes = v.into_inner();
    bytes[at..].copy_from_slice(&CAPTURED_ADV[16..]);
    AgentAdvertisement::new_unchecked(&mut bytes[..]).fill_checksum();
    assert_eq!(bytes, CAPTURED_ADV);
}

#[test]
fn advertisement_parse() {
    assert_eq!(
        AgentAdvertisementRepr::parse(&CAPTURED_ADV),
        Ok(captured_repr())
    );
    let home = AgentAdvertisementRepr::parse(&CAPTURED_ADV_HOME).expect("valid");
    let f = home.mobility.flags;
    assert!(f.contains(AgentFlags::R) && f.contains(AgentFlags::H) && f.contains(AgentFlags::F));
    assert!(!f.contains(AgentFlags::B) && !f.contains(AgentFlags::T));
    assert_eq!(f.bits(), 0xb000);
    assert_eq!(
        AgentAdvertisementRepr::parse(&ADV_WITH_PREFIX),
        Ok(prefix_repr())
    );
}

#[test]
fn advertisement_emit() {
    for (repr, bytes) in [
        (captured_repr(), &CAPTURED_ADV[..]),
        (prefix_repr(), &ADV_WITH_PREFIX[..]),
    ] {
        assert_eq!(repr.buffer_len(), bytes.len());
        let mut buf = vec![0xeeu8; bytes.len() + 3];
        assert_eq!(repr.emit(&mut buf), Ok(bytes.len()));
        assert_eq!(&buf[..bytes.len()], bytes);
        assert_eq!(
            &buf[bytes.len()..],
            [0xee; 3],
            "nothing written past the message"
        );
    }
}

#[test]
fn agent_flag_bits() {
    let all = [
        AgentFlags::R,
        AgentFlags::B,
        AgentFlags::H,
        AgentFlags::F,
        AgentFlags::M,
        AgentFlags::G,
        AgentFlags::R_RESERVED,
        AgentFlags::T,
        AgentFlags::U,
        AgentFlags::X,
        AgentFlags::I,
    ];
    // High bit first, one bit each, leaving the 5 reserved bits.
    for (i, bit) in all.iter().enumerate() {
        assert_eq!(*bit, 0x8000 >> i);
    }
}

#[test]
fn advertisement_skips_padding_and_skippable_extensions() {
    let mut bytes = CAPTURED_ADV[..16].to_vec();
    bytes.push(0); // padding before
    bytes.extend_from_slice(&[200, 2, 1, 2]); // unknown skippable
    bytes.extend_from_slice(&CAPTURED_ADV[16..]);
    bytes.extend_from_slice(&[0, 0]);
    assert_eq!(
        AgentAdvertisementRepr::parse(&with_checksum(bytes)),
        Ok(captured_repr())
    );
}

#[test]
fn advertisement_larger_entry_size_is_skipped_over() {
    let mut bytes = CAPTURED_ADV[..16].to_vec();
    bytes[5] = 3;
    bytes.extend_from_slice(&[0xaa; 4]); // the third word of the entry
    bytes.extend_from_slice(&CAPTURED_ADV[16..]);
    assert_eq!(
        AgentAdvertisementRepr::parse(&with_checksum(bytes)),
        Ok(captured_repr())
    );
}

#[test]
fn advertisement_rejections() {
    let parse = |b: Vec<u8>| AgentAdvertisementRepr::parse(&with_checksum(b));
    let mut bad = CAPTURED_ADV;
    bad[2] ^= 1;
    assert_eq!(
        AgentAdvertisementRepr::parse(&bad),
        Err(WireError::BadChecksum)
    );
    assert_eq!(
        AgentAdvertisementRepr::parse(&CAPTURED_SOL),
        Err(WireError::WrongType {
            expected: 9,
            got: 10
        })
    );
    let mut b = CAPTURED_ADV.to_vec();
    b[1] = 1;
    assert_eq!(
        parse(b),
        Err(WireError::Malformed(
            "agent advertisement code must be 0 or 16"
        ))
    );
    let mut b = CAPTURED_ADV.to_vec();
    b[5] = 1;
    assert_eq!(
        parse(b),
        Err(WireError::Malformed(
            "router address entry size below 2 words"
        ))
    );
    let mut b = CAPTURED_ADV.to_vec();
    b[4] = 3; // three entries announced, not there
    assert_eq!(parse(b), Err(WireError::Truncated { need: 32, have: 28 }));
    // Plain router advertisement: no mobility agent extension.
    assert_eq!(
        parse(CAPTURED_ADV[..16].to_vec()),
        Err(WireError::Malformed(
            "no mobility agent advertisement extension"
        ))
    );
    // Mobility agent length not 6 + 4N.
    let mut b = CAPTURED_ADV.to_vec();
    b[17] = 9;
    b.push(0);
    assert_eq!(
        parse(b),
        Err(WireError::BadExtensionLength {
            ext_type: 16,
            offset: 16,
            len: 9
        })
    );
    // Zero length mobility agent extension.
    let mut b = CAPTURED_ADV[..16].to_vec();
    b.extend_from_slice(&[16, 0]);
    assert_eq!(
        parse(b),
        Err(WireError::BadExtensionLength {
            ext_type: 16,
            offset: 16,
            len: 0
        })
    );
    // Length past the end.
    let mut b = CAPTURED_ADV.to_vec();
    b[17] = 14;
    assert_eq!(
        parse(b),
        Err(WireError::BadExtensionLength {
            ext_type: 16,
            offset: 16,
            len: 14
        })
    );
    // Prefix-Lengths with a count other than Num Addrs.
    let mut b = CAPTURED_ADV.to_vec();
    b.extend_from_slice(&[19, 2, 24, 24]);
    assert_eq!(
        parse(b),
        Err(WireError::BadExtensionLength {
            ext_type: 19,
            offset: 28,
            len: 2
        })
    );
    // Unrecognised extension below 128: the whole advertisement is discarded.
    let mut b = CAPTURED_ADV.to_vec();
    b.extend_from_slice(&[24, 0]);
    assert!(matches!(parse(b), Err(WireError::Malformed(_))));
    // Two mobility agent extensions.
    let mut b = CAPTURED_ADV.to_vec();
    b.extend_from_slice(&CAPTURED_ADV[16..]);
    assert!(matches!(parse(b), Err(WireError::Malformed(_))));
    // A lone non-padding type byte at the end.
    let mut b = CAPTURED_ADV.to_vec();
    b.push(200);
    assert_eq!(
        parse(b),
        Err(WireError::BadExtensionLength {
            ext_type: 200,
            offset: 28,
            len: 1
        })
    );
}

#[test]
fn every_prefix_parses_or_errors() {
    for bytes in [&CAPTURED_ADV[..], &ADV_WITH_PREFIX[..]] {
        for n in 0..bytes.len() {
            let raw = AgentAdvertisementRepr::parse(&bytes[..n]);
            // Dropping the zero padding byte leaves the checksum right; any other cut breaks it.
            assert_eq!(raw.is_ok(), bytes.len() == 36 && n == 35, "prefix {n}");
            // With a fixed-up checksum the deeper checks must hold too.
            let fixed = AgentAdvertisementRepr::parse(&with_checksum(bytes[..n].to_vec()));
            // Only cutting exactly before the optional Prefix-Lengths extension or the
            // padding byte leaves a valid message.
            assert_eq!(
                fixed.is_ok(),
                bytes.len() == 36 && (n == 32 || n == 35),
                "prefix {n}"
            );
            let _ = AgentSolicitationRepr::parse(&bytes[..n]);
            let v = AgentAdvertisement::new_unchecked(&bytes[..n]);
            let _ = (
                v.check_len(),
                v.router_address(0),
                v.lifetime(),
                v.verify_checksum(),
            );
        }
    }
}

#[test]
fn advertisement_emit_refusals() {
    let mut buf = vec![0u8; 4096];
    let mut r = captured_repr();
    r.code = 5;
    assert!(matches!(r.emit(&mut buf), Err(WireError::Malformed(_))));
    let mut r = captured_repr();
    r.router_addresses = vec![(Ipv4Addr::LOCALHOST, 0); 256];
    assert!(matches!(r.emit(&mut buf), Err(WireError::Malformed(_))));
    r.router_addresses.truncate(255);
    assert!(r.emit(&mut buf).is_ok());
    let mut r = captured_repr();
    r.mobility.care_of_addresses = vec![Ipv4Addr::LOCALHOST; 63];
    assert!(matches!(r.emit(&mut buf), Err(WireError::Malformed(_))));
    r.mobility.care_of_addresses.truncate(62);
    let n = r.emit(&mut buf).expect("62 fit");
    assert_eq!(AgentAdvertisementRepr::parse(&buf[..n]), Ok(r));
    let mut r = captured_repr();
    r.prefix_lengths = Some(vec![24, 16]);
    assert!(matches!(r.emit(&mut buf), Err(WireError::Malformed(_))));
    let r = captured_repr();
    assert_eq!(
        r.emit(&mut buf[..27]),
        Err(WireError::Truncated { need: 28, have: 27 })
    );
}

#[test]
fn solicitation_four_ways() {
    // Deconstruct and construct: the fixed header through the advertisement's field layout.
    let v = AgentAdvertisement::new_unchecked(&CAPTURED_SOL[..]);
    assert_eq!(v.msg_type(), ICMP_ROUTER_SOLICITATION);
    assert_eq!(v.code(), 0);
    assert_eq!(v.checksum(), 0xf5ff);
    let mut bytes = [0u8; 8];
    let mut v = AgentAdvertisement::new_unchecked(&mut bytes[..]);
    v.set_msg_type(ICMP_ROUTER_SOLICITATION);
    v.fill_checksum();
    assert_eq!(bytes, CAPTURED_SOL);
    // Parse and emit.
    assert_eq!(
        AgentSolicitationRepr::parse(&CAPTURED_SOL),
        Ok(AgentSolicitationRepr)
    );
    assert_eq!(AgentSolicitationRepr.buffer_len(), 8);
    let mut buf = [0xeeu8; 8];
    assert_eq!(AgentSolicitationRepr.emit(&mut buf), Ok(8));
    assert_eq!(buf, CAPTURED_SOL);
}

#[test]
fn solicitation_rejections() {
    for n in 0..8 {
        assert_eq!(
            AgentSolicitationRepr::parse(&CAPTURED_SOL[..n]),
            Err(WireError::Truncated { need: 8, have: n })
        );
    }
    let mut b = CAPTURED_SOL;
    b[7] = 1;
    assert_eq!(
        AgentSolicitationRepr::parse(&b),
        Err(WireError::BadChecksum)
    );
    assert_eq!(
        AgentSolicitationRepr::parse(&CAPTURED_ADV),
        Err(WireError::WrongType {
            expected: 10,
            got: 9
        })
    );
    let mut b = CAPTURED_SOL.to_vec();
    b[1] = 1;
    assert!(matches!(
        AgentSolicitationRepr::parse(&with_checksum(b)),
        Err(WireError::Malformed(_))
    ));
    assert_eq!(
        AgentSolicitationRepr.emit(&mut [0u8; 7]),
        Err(WireError::Truncated { need: 8, have: 7 })
    );
}
