//! Agent Advertisements (ICMP 9 with the Mobility Agent Advertisement extension, 16, and
//! Prefix-Lengths, 19) and Agent Solicitations (ICMP 10) as `mip_core::wire::icmp` emits
//! them, checked field by field against tshark.

use std::net::Ipv4Addr;

use mip_core::wire::{
    AgentAdvertisementRepr, AgentFlags as A, AgentSolicitationRepr, MobilityAgentExt,
};

use crate::common::*;

const ALL_HOSTS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 1);
const ALL_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 2);
/// Wireshark's PROTO_CHECKSUM_E_GOOD, as `icmp.checksum.status` prints it.
const CHECKSUM_GOOD: u64 = 1;

/// Agent flag bits and tshark's field for each, high bit first (RFC 5944 2.1.1: R B H F
/// M G r T U X I). tshark 4.0 names `r` after RFC 3344's "VJ Comp" (`icmp.mip.v`), calls T
/// `icmp.mip.rt`, and has no field for I (RFC 4857): it falls in `icmp.mip.reserved`.
const AGENT_FLAG_FIELDS: [(u16, &str); 10] = [
    (A::R, "icmp.mip.r"),
    (A::B, "icmp.mip.b"),
    (A::H, "icmp.mip.h"),
    (A::F, "icmp.mip.f"),
    (A::M, "icmp.mip.m"),
    (A::G, "icmp.mip.g"),
    (A::R_RESERVED, "icmp.mip.v"),
    (A::T, "icmp.mip.rt"),
    (A::U, "icmp.mip.u"),
    (A::X, "icmp.mip.x"),
];
/// The bits tshark shows as `icmp.mip.reserved` (its mask 0x003f).
const TSHARK_RESERVED_MASK: u16 = 0x003f;

/// The checksum as written in the message.
fn checksum_field(icmp: &[u8]) -> u16 {
    match icmp.get(2..4) {
        Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
        _ => panic!("ICMP message of {} bytes", icmp.len()),
    }
}

fn advert(
    code: u8,
    flags: u16,
    routers: &[(Ipv4Addr, i32)],
    coas: &[Ipv4Addr],
    prefixes: Option<&[u8]>,
) -> AgentAdvertisementRepr {
    AgentAdvertisementRepr {
        code,
        lifetime: 1800,
        router_addresses: routers.to_vec(),
        mobility: MobilityAgentExt {
            sequence: 257,
            registration_lifetime: 600,
            flags: A(flags),
            care_of_addresses: coas.to_vec(),
        },
        prefix_lengths: prefixes.map(<[u8]>::to_vec),
    }
}

fn emit(a: &AgentAdvertisementRepr) -> Vec<u8> {
    let mut buf = vec![0; a.buffer_len()];
    let n = a.emit(&mut buf).unwrap_or_else(|e| panic!("{a:?}: {e}"));
    assert_eq!(n, buf.len());
    buf
}

fn cases() -> Vec<(String, AgentAdvertisementRepr)> {
    let ha_router = [(HA, 0)];
    let fa_routers = [(FA, 10), (Ipv4Addr::new(198, 19, 1, 2), -1)];
    let all = A::R | A::B | A::H | A::F | A::M | A::G | A::R_RESERVED | A::T | A::U | A::X | A::I;
    let mut v = vec![
        (
            "home agent only, no care-of address".to_owned(),
            advert(0, A::H, &ha_router, &[], None),
        ),
        (
            "foreign agent R F T, code 16, three care-of addresses, prefix lengths".to_owned(),
            advert(
                16,
                A::R | A::F | A::T,
                &fa_routers,
                &[FA, COA1, COA2],
                Some(&[24, 16]),
            ),
        ),
        (
            "every flag, odd length so a padding byte follows".to_owned(),
            advert(0, all, &[(FA, 5)], &[FA], Some(&[24])),
        ),
        (
            "no router address (RFC 5944 2.1 allows 0)".to_owned(),
            advert(16, A::F, &[], &[COA3], None),
        ),
        (
            "62 care-of addresses, the most a length byte allows".to_owned(),
            advert(
                16,
                A::F | A::B,
                &[(FA, 0)],
                &(0..62)
                    .map(|i| Ipv4Addr::new(198, 19, 9, i))
                    .collect::<Vec<_>>(),
                None,
            ),
        ),
    ];
    let mut edges = advert(
        0,
        A::H | A::F,
        &[(HA, i32::MIN), (FA, i32::MAX)],
        &[FA],
        Some(&[32, 0]),
    );
    edges.lifetime = 0xffff;
    edges.mobility.sequence = 0xffff;
    edges.mobility.registration_lifetime = 0xffff;
    v.push((
        "extreme values: sequence, lifetimes, preferences".to_owned(),
        edges,
    ));
    for (bit, name) in [
        (A::R, "R"),
        (A::B, "B"),
        (A::H, "H"),
        (A::F, "F"),
        (A::M, "M"),
        (A::G, "G"),
        (A::R_RESERVED, "r"),
        (A::T, "T"),
        (A::U, "U"),
        (A::X, "X"),
        (A::I, "I"),
    ] {
        let mut a = advert(0, bit, &ha_router, &[COA1], None);
        a.mobility.sequence = bit;
        v.push((format!("flag {name} alone"), a));
    }
    v
}

#[test]
fn agent_advertisements_and_solicitations_decode_field_by_field() {
    let adverts = cases();
    let mut cap = Capture::new("icmp_agent_discovery");
    let mut sent = Vec::new();
    for (label, a) in &adverts {
        let bytes = emit(a);
        let src = a.router_addresses.first().map_or(FA, |r| r.0);
        let frame = cap.icmp(label.as_str(), src, ALL_HOSTS, &bytes);
        sent.push((frame, bytes, a));
    }
    let solicitation = {
        let s = AgentSolicitationRepr;
        let mut buf = vec![0; s.buffer_len()];
        s.emit(&mut buf).unwrap_or_else(|e| panic!("{e}"));
        buf
    };
    let sol_frames = [
        cap.icmp(
            "solicitation to all routers",
            COA1,
            ALL_ROUTERS,
            &solicitation,
        ),
        cap.icmp(
            "solicitation broadcast",
            COA1,
            Ipv4Addr::BROADCAST,
            &solicitation,
        ),
    ];
    let packets = cap.decode();

    for (frame, bytes, a) in &sent {
        let v = View::new(&packets, &cap, *frame);
        assert_eq!(
            AgentAdvertisementRepr::parse(bytes).as_ref(),
            Ok(*a),
            "{}: our parser reads back what was set",
            v.what
        );
        assert_eq!(v.u64("ip.ttl"), 1, "{}: RFC 5944 2.3", v.what);
        advertisement(&v, bytes, a);
    }

    for frame in sol_frames {
        let v = View::new(&packets, &cap, frame);
        assert_eq!(v.u64("ip.ttl"), 1, "{}: RFC 5944 2.3", v.what);
        solicitation_fields(&v, &solicitation);
    }
}

/// tshark's reading of an Agent Advertisement against `a`, the same bytes as our parser
/// reads them.
pub fn advertisement(v: &View<'_>, bytes: &[u8], a: &AgentAdvertisementRepr) {
    let w = &v.what;
    assert_eq!(v.u64("icmp.type"), 9, "{w}");
    assert_eq!(v.u64("icmp.code"), u64::from(a.code), "{w}: code");
    assert_eq!(
        v.u64("icmp.checksum"),
        u64::from(checksum_field(bytes)),
        "{w}: checksum"
    );
    assert_eq!(
        v.u64("icmp.checksum.status"),
        CHECKSUM_GOOD,
        "{w}: checksum status"
    );
    assert_eq!(
        v.u64("icmp.num_addrs"),
        a.router_addresses.len() as u64,
        "{w}: num addrs"
    );
    let entry_words = usize::from(bytes.get(5).copied().unwrap_or(0));
    assert_eq!(
        v.u64("icmp.addr_entry_size"),
        entry_words as u64,
        "{w}: entry size"
    );
    assert_eq!(
        v.u64("icmp.lifetime"),
        u64::from(a.lifetime),
        "{w}: lifetime"
    );
    let routers: Vec<String> = a.router_addresses.iter().map(|r| r.0.to_string()).collect();
    assert_eq!(
        v.all_str("icmp.router_address"),
        routers,
        "{w}: router addresses"
    );
    let prefs: Vec<String> = a.router_addresses.iter().map(|r| r.1.to_string()).collect();
    assert_eq!(
        v.all_str("icmp.pref_level"),
        prefs,
        "{w}: preferences (signed)"
    );

    // Extensions: Mobility Agent, then Prefix-Lengths when present.
    let ma = &a.mobility;
    let mut types = vec![16];
    let mut lens = vec![6 + 4 * ma.care_of_addresses.len() as u64];
    let mut unpadded =
        8 + 4 * entry_words * a.router_addresses.len() + 8 + 4 * ma.care_of_addresses.len();
    if let Some(p) = &a.prefix_lengths {
        types.push(19);
        lens.push(p.len() as u64);
        unpadded += 2 + p.len();
    }
    // 2.1.3: One-byte Padding, type 0 without a length, when the length was odd.
    if bytes.len() == unpadded + 1 {
        assert_eq!(bytes.last(), Some(&0), "{w}: padding byte");
        types.push(0);
    } else {
        assert_eq!(bytes.len(), unpadded, "{w}: no padding needed");
    }
    assert_eq!(v.all_u64("icmp.mip.type"), types, "{w}: extension types");
    assert_eq!(v.all_u64("icmp.mip.length"), lens, "{w}: extension lengths");
    assert_eq!(
        v.u64("icmp.mip.seq"),
        u64::from(ma.sequence),
        "{w}: sequence"
    );
    assert_eq!(
        v.u64("icmp.mip.life"),
        u64::from(ma.registration_lifetime),
        "{w}: registration lifetime"
    );
    assert_eq!(
        v.u64("icmp.mip.flags"),
        u64::from(ma.flags.bits()),
        "{w}: flags"
    );
    for (bit, field) in AGENT_FLAG_FIELDS {
        assert_eq!(v.flag(field), ma.flags.contains(bit), "{w}: {field}");
    }
    assert_eq!(
        v.u64("icmp.mip.reserved"),
        u64::from(ma.flags.bits() & TSHARK_RESERVED_MASK),
        "{w}: I and reserved bits"
    );
    let coas: Vec<String> = ma
        .care_of_addresses
        .iter()
        .map(Ipv4Addr::to_string)
        .collect();
    assert_eq!(v.all_str("icmp.mip.coa"), coas, "{w}: care-of addresses");
    let prefixes: Vec<u64> = a
        .prefix_lengths
        .iter()
        .flatten()
        .map(|p| u64::from(*p))
        .collect();
    assert_eq!(
        v.all_u64("icmp.mip.prefixlength"),
        prefixes,
        "{w}: prefix lengths"
    );
    assert_eq!(
        v.raw("icmp"),
        bytes,
        "{w}: tshark's ICMP bytes are ours, padding included"
    );
}

/// tshark's reading of an Agent Solicitation, which our parser must accept.
pub fn solicitation_fields(v: &View<'_>, bytes: &[u8]) {
    let w = &v.what;
    assert_eq!(
        AgentSolicitationRepr::parse(bytes),
        Ok(AgentSolicitationRepr),
        "{w}: our parser"
    );
    assert_eq!(v.u64("icmp.type"), 10, "{w}");
    assert_eq!(v.u64("icmp.code"), 0, "{w}");
    assert_eq!(
        v.u64("icmp.checksum"),
        u64::from(checksum_field(bytes)),
        "{w}"
    );
    assert_eq!(v.u64("icmp.checksum.status"), CHECKSUM_GOOD, "{w}");
    assert_eq!(v.raw("icmp"), bytes, "{w}");
    assert!(!v.packet.has("icmp.mip.type"), "{w}: no extension");
}
