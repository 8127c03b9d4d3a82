//! Encapsulation tests against byte arrays worked out by hand from RFC 2003, RFC 2004
//! and RFC 2784.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::dataplane::ipv4::{write_header, Ipv4Fields};

const CN: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
const HOME: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const HA: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const COA: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);

/// UDP CN:5000 -> HOME:6000, TOS 0x10, id 0x1234, DF, TTL 64, 4 bytes of data "ping".
/// Header checksum by hand: 4510+0024+1234+4000+4011+c613+0001+c612+000a = 0x2_63a9
/// -> 0x63ab -> !0x63ab = 0x9c54.
const INNER: [u8; 36] = [
    0x45, 0x10, 0x00, 0x24, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x9c, 0x54, 198, 19, 0, 1, 198, 18, 0, 10, //
    0x13, 0x88, 0x17, 0x70, 0x00, 0x10, 0x00, 0x00, b'p', b'i', b'n', b'g', 0, 0, 0, 0,
];

/// The same after forwarding: TTL 63, checksum +0x0100 -> 0x9d54.
fn inner_ttl63() -> [u8; 36] {
    let mut p = INNER;
    p[8] = 63;
    p[10..12].copy_from_slice(&[0x9d, 0x54]);
    p
}

fn params() -> TunnelParams {
    TunnelParams { tunnel_mtu: 1500, outer_ttl: 64, forwarding: true, identification: 0x0101 }
}

#[test]
fn inner_sample_checksum_is_right() {
    assert_eq!(ipv4::checksum(&INNER[..20]), 0);
    assert_eq!(ipv4::checksum(&inner_ttl63()[..20]), 0);
}

#[test]
fn ip_in_ip_rfc2003_3_1() {
    let mut out = [0u8; 128];
    let r = encapsulate(Encapsulation::IpInIp, &INNER, HA, COA, &params(), &mut out);
    assert_eq!(r, EncapOutcome::Encapsulated { len: 56 });
    // Outer: TOS copied 0x10, length 56, id 0x0101, DF copied, TTL 64, proto 4.
    // Checksum: 4510+0038+0101+4000+4004+c612+0001+c612+0101 = 0x2_5373 -> 0x5375 -> 0xac8a.
    let outer: [u8; 20] =
        [0x45, 0x10, 0x00, 0x38, 0x01, 0x01, 0x40, 0x00, 0x40, 0x04, 0xac, 0x8a, 198, 18, 0, 1, 198, 18, 1, 1];
    assert_eq!(&out[..20], &outer);
    assert_eq!(&out[20..56], &inner_ttl63());
    let mut back = [0u8; 64];
    let d = decapsulate(&out[..56], &mut back).unwrap();
    assert_eq!(
        d,
        Decapsulated { kind: Encapsulation::IpInIp, outer_src: HA, outer_dst: COA, inner_len: 36, inner_src: CN, inner_dst: HOME }
    );
    assert_eq!(&back[..36], &inner_ttl63());
}

#[test]
fn not_forwarding_keeps_ttl_and_allows_own_source() {
    let p = TunnelParams { forwarding: false, ..params() };
    let mut out = [0u8; 128];
    let r = encapsulate(Encapsulation::IpInIp, &INNER, CN, HA, &p, &mut out);
    assert_eq!(r, EncapOutcome::Encapsulated { len: 56 });
    assert_eq!(&out[20..56], &INNER);
}

#[test]
fn gre_rfc2784() {
    let mut out = [0u8; 128];
    let r = encapsulate(Encapsulation::Gre, &INNER, HA, COA, &params(), &mut out);
    assert_eq!(r, EncapOutcome::Encapsulated { len: 60 });
    // Length 60 = 0x3c, proto 47 = 0x2f: 4510+003c+0101+4000+402f+c612+0001+c612+0101
    // = 0x2_53a2 -> 0x53a4 -> 0xac5b.
    let outer: [u8; 24] = [
        0x45, 0x10, 0x00, 0x3c, 0x01, 0x01, 0x40, 0x00, 0x40, 0x2f, 0xac, 0x5b, 198, 18, 0, 1, 198, 18, 1, 1, //
        0x00, 0x00, 0x08, 0x00,
    ];
    assert_eq!(&out[..24], &outer);
    assert_eq!(&out[24..60], &inner_ttl63());
    let mut back = [0u8; 64];
    let d = decapsulate(&out[..60], &mut back).unwrap();
    assert_eq!((d.kind, d.inner_len), (Encapsulation::Gre, 36));
    assert_eq!(&back[..36], &inner_ttl63());
}

/// Builds a GRE packet from HA to COA with the given 4 (or 8) header bytes.
fn gre_with(header: &[u8]) -> Vec<u8> {
    let total = 20 + header.len() + INNER.len();
    let mut p = vec![0u8; total];
    write_header(
        &mut p,
        &Ipv4Fields {
            tos: 0,
            total_len: total as u16,
            identification: 1,
            dont_fragment: false,
            more_fragments: false,
            fragment_offset: 0,
            ttl: 64,
            protocol: 47,
            src: COA,
            dst: HA,
        },
    )
    .unwrap();
    p[20..20 + header.len()].copy_from_slice(header);
    p[20 + header.len()..].copy_from_slice(&INNER);
    p
}

#[test]
fn gre_checksum_verified_and_unsupported_bits_refused() {
    let mut out = [0u8; 64];
    // C set: checksum over GRE header + payload with the field 0.
    let mut p = gre_with(&[0x80, 0x00, 0x08, 0x00, 0, 0, 0, 0]);
    let c = ipv4::checksum(&p[20..]);
    p[24..26].copy_from_slice(&c.to_be_bytes());
    assert_eq!(decapsulate(&p, &mut out).map(|d| d.inner_len), Ok(36));
    p[25] ^= 1;
    assert_eq!(decapsulate(&p, &mut out), Err(DataplaneError::BadChecksum));
    // Key (K, bit 2), sequence (S, bit 3), routing (R, bit 1), version 1 (PPTP).
    for h in [[0x20u8, 0, 8, 0], [0x10, 0, 8, 0], [0x40, 0, 8, 0], [0x00, 0x01, 8, 0]] {
        let flags = u16::from_be_bytes([h[0], h[1]]);
        assert_eq!(decapsulate(&gre_with(&h), &mut out), Err(DataplaneError::UnsupportedGre(flags)));
    }
    // Reserved bits 6-12 are ignored on receipt (RFC 2784 2.3).
    assert!(decapsulate(&gre_with(&[0x02, 0x00, 8, 0]), &mut out).is_ok());
    assert_eq!(decapsulate(&gre_with(&[0, 0, 0x86, 0xdd]), &mut out), Err(DataplaneError::GreProtocol(0x86dd)));
}

#[test]
fn minimal_rfc2004_with_original_source() {
    let mut out = [0u8; 128];
    let r = encapsulate(Encapsulation::Minimal, &INNER, HA, COA, &params(), &mut out);
    assert_eq!(r, EncapOutcome::Encapsulated { len: 48 });
    // Modified header: length 36+12 = 48 (0x30), TTL 63, proto 55 (0x37), src HA, dst COA,
    // id and TOS and DF kept: 4510+0030+1234+4000+3f37+c612+0001+c612+0101 = 0x2_63d1
    // -> 0x63d3 -> 0x9c2c.
    let header: [u8; 20] =
        [0x45, 0x10, 0x00, 0x30, 0x12, 0x34, 0x40, 0x00, 0x3f, 0x37, 0x9c, 0x2c, 198, 18, 0, 1, 198, 18, 1, 1];
    // Forwarding header: proto 17, S=1, checksum over 1180+0000+c612+000a+c613+0001
    // = 0x1_9db0 -> 0x9db1 -> 0x624e, orig dst HOME, orig src CN.
    let fwd: [u8; 12] = [0x11, 0x80, 0x62, 0x4e, 198, 18, 0, 10, 198, 19, 0, 1];
    assert_eq!(&out[..20], &header);
    assert_eq!(&out[20..32], &fwd);
    assert_eq!(&out[32..48], &INNER[20..]);
    let mut back = [0u8; 64];
    let d = decapsulate(&out[..48], &mut back).unwrap();
    assert_eq!((d.kind, d.inner_src, d.inner_dst, d.inner_len), (Encapsulation::Minimal, CN, HOME, 36));
    assert_eq!(&back[..36], &inner_ttl63());
}

#[test]
fn minimal_without_s_bit_when_encapsulator_is_the_source() {
    // A mobile node reverse-tunnelling its own packet: src HOME == encapsulator.
    let mut inner = INNER;
    inner[12..16].copy_from_slice(&HOME.octets());
    inner[16..20].copy_from_slice(&CN.octets());
    ipv4::fill_checksum(&mut inner, 20).unwrap();
    let p = TunnelParams { forwarding: false, ..params() };
    let mut out = [0u8; 128];
    let r = encapsulate(Encapsulation::Minimal, &inner, HOME, HA, &p, &mut out);
    assert_eq!(r, EncapOutcome::Encapsulated { len: 44 });
    // S=0, checksum over 1100+0000+c613+0001 = 0xd714 -> !0xd714 = 0x28eb.
    assert_eq!(&out[20..28], &[0x11, 0x00, 0x28, 0xeb, 198, 19, 0, 1]);
    let mut back = [0u8; 64];
    let d = decapsulate(&out[..44], &mut back).unwrap();
    assert_eq!((d.outer_src, d.inner_src, d.inner_dst), (HOME, HOME, CN));
    assert_eq!(&back[..36], &inner);
    // A bad forwarding-header checksum is refused.
    out[23] ^= 0xff;
    assert_eq!(decapsulate(&out[..44], &mut back), Err(DataplaneError::BadChecksum));
}

#[test]
fn ttl_loop_and_fragment_rules() {
    let mut out = [0u8; 128];
    let mut ttl1 = INNER;
    ttl1[8] = 1;
    ipv4::fill_checksum(&mut ttl1, 20).unwrap();
    assert_eq!(
        encapsulate(Encapsulation::IpInIp, &ttl1, HA, COA, &params(), &mut out),
        EncapOutcome::Dropped(DropReason::TtlExpired)
    );
    // RFC 2003 3.2: source = tunnel exit, or = encapsulator.
    assert_eq!(
        encapsulate(Encapsulation::IpInIp, &INNER, HA, CN, &params(), &mut out),
        EncapOutcome::Dropped(DropReason::Loop)
    );
    assert_eq!(
        encapsulate(Encapsulation::Gre, &INNER, CN, COA, &params(), &mut out),
        EncapOutcome::Dropped(DropReason::Loop)
    );
    let mut frag = INNER;
    frag[6..8].copy_from_slice(&0x2000u16.to_be_bytes()); // MF
    ipv4::fill_checksum(&mut frag, 20).unwrap();
    assert_eq!(
        encapsulate(Encapsulation::Minimal, &frag, HA, COA, &params(), &mut out),
        EncapOutcome::Dropped(DropReason::FragmentNotAllowed)
    );
    assert!(matches!(
        encapsulate(Encapsulation::IpInIp, &frag, HA, COA, &params(), &mut out),
        EncapOutcome::Encapsulated { .. }
    ));
    assert!(matches!(
        encapsulate(Encapsulation::IpInIp, &INNER[..30], HA, COA, &params(), &mut out),
        EncapOutcome::Dropped(DropReason::Malformed(DataplaneError::Truncated { .. }))
    ));
    assert!(matches!(
        encapsulate(Encapsulation::IpInIp, &INNER, HA, COA, &params(), &mut out[..40]),
        EncapOutcome::Dropped(DropReason::Malformed(DataplaneError::BufferTooSmall { .. }))
    ));
}

/// UDP CN -> HOME with `payload` bytes, DF as given.
fn udp(payload: usize, df: bool) -> Vec<u8> {
    let total = 28 + payload;
    let mut p = vec![0u8; total];
    write_header(
        &mut p,
        &Ipv4Fields {
            tos: 0,
            total_len: total as u16,
            identification: 0x4242,
            dont_fragment: df,
            more_fragments: false,
            fragment_offset: 0,
            ttl: 64,
            protocol: 17,
            src: CN,
            dst: HOME,
        },
    )
    .unwrap();
    for (i, b) in p[28..].iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    p
}

#[test]
fn too_big_with_df_asks_for_icmp_with_tunnel_mtu_minus_overhead() {
    let mut out = vec![0u8; ENCAP_BUFFER_LEN];
    let big = udp(1472, true); // 1500 bytes
    for (kind, mtu) in [(Encapsulation::IpInIp, 1480), (Encapsulation::Gre, 1476), (Encapsulation::Minimal, 1488)] {
        assert_eq!(
            encapsulate(kind, &big, HA, COA, &params(), &mut out),
            EncapOutcome::FragmentationNeeded { next_hop_mtu: mtu },
            "{kind:?}"
        );
    }
    // Exactly fits: 1480 + 20.
    assert!(matches!(
        encapsulate(Encapsulation::IpInIp, &udp(1452, true), HA, COA, &params(), &mut out),
        EncapOutcome::Encapsulated { len: 1500 }
    ));
}

#[test]
fn too_big_without_df_is_fragmented_then_reassembles() {
    let mut out = vec![0u8; ENCAP_BUFFER_LEN];
    let big = udp(3000, false);
    for kind in [Encapsulation::IpInIp, Encapsulation::Gre, Encapsulation::Minimal] {
        let EncapOutcome::Fragmented { len, count } = encapsulate(kind, &big, HA, COA, &params(), &mut out) else {
            panic!("{kind:?} not fragmented")
        };
        let pkts: Vec<&[u8]> = packets(&out[..len]).collect();
        assert_eq!(pkts.len(), count);
        assert_eq!(pkts.iter().map(|p| p.len()).sum::<usize>(), len);
        assert!(pkts.iter().all(|p| p.len() <= 1500), "{kind:?}");
        // Reassemble the inner packet's payload from the pieces.
        let mut data = vec![0u8; 3100];
        let mut got = 0;
        for p in &pkts {
            if kind == Encapsulation::Minimal {
                // Outer fragments: the body (forwarding header + payload) is cut.
                let i = ipv4::parse(p).unwrap();
                assert_eq!((i.protocol, i.identification, i.dont_fragment), (55, 0x4242, false));
                let off = usize::from(i.fragment_offset);
                let body = &p[i.header_len..];
                data[off..off + body.len()].copy_from_slice(body);
                got += body.len();
            } else {
                let mut inner = [0u8; 1500];
                let d = decapsulate(p, &mut inner).unwrap();
                let i = ipv4::parse(&inner[..d.inner_len]).unwrap();
                assert_eq!((i.identification, i.ttl), (0x4242, 63));
                let off = usize::from(i.fragment_offset);
                let body = &inner[i.header_len..d.inner_len];
                data[off..off + body.len()].copy_from_slice(body);
                got += body.len();
            }
        }
        let skip = if kind == Encapsulation::Minimal { 12 } else { 0 };
        assert_eq!(got, 3008 + skip);
        assert_eq!(&data[skip..skip + 3008], &big[20..], "{kind:?}");
    }
}

#[test]
fn decapsulate_refuses_what_it_must() {
    let mut out = [0u8; 128];
    let mut pkt = [0u8; 128];
    let EncapOutcome::Encapsulated { len } = encapsulate(Encapsulation::IpInIp, &INNER, HA, COA, &params(), &mut pkt)
    else {
        panic!()
    };
    // Inner TTL 0 after decapsulation: MUST discard (RFC 2003 3.1).
    let mut zero = pkt;
    zero[28] = 0;
    ipv4::fill_checksum(&mut zero[20..], 20).unwrap();
    assert_eq!(decapsulate(&zero[..len], &mut out), Err(DataplaneError::TtlExpired));
    // Not a tunnel protocol.
    let mut udp = pkt;
    udp[9] = 17;
    ipv4::fill_checksum(&mut udp, 20).unwrap();
    assert_eq!(decapsulate(&udp[..len], &mut out), Err(DataplaneError::NotATunnel(17)));
    // Outer fragment.
    let mut frag = pkt;
    frag[6] |= 0x20;
    ipv4::fill_checksum(&mut frag, 20).unwrap();
    assert_eq!(decapsulate(&frag[..len], &mut out), Err(DataplaneError::Fragment));
    // Inner length disagreeing with the outer one.
    let mut short = pkt;
    short[3] -= 4;
    ipv4::fill_checksum(&mut short, 20).unwrap();
    assert!(decapsulate(&short[..len], &mut out).is_err());
    // Output too small.
    assert!(matches!(decapsulate(&pkt[..len], &mut out[..10]), Err(DataplaneError::BufferTooSmall { .. })));
}
