//! `mip_core::dataplane` output decoded by Wireshark's tshark: IP in IP (RFC 2003),
//! GRE (RFC 2784), minimal encapsulation (RFC 2004: tshark shows only the outer header),
//! ICMP Fragmentation Needed (RFC 1191) and the ARP frames of RFC 5944 4.6, each with
//! the fields we set and no malformed packet or expert error (IP, UDP and ICMP checksums
//! are checked by tshark).
//!
//! `SIDMIP_KEEP_PCAP=<dir>` keeps the pcap file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::time::Duration;

use conformance::capture;
use conformance::tshark::Packet;
use mip_core::dataplane::arp::{self, ArpOp, ArpRepr};
use mip_core::dataplane::ethernet::{self, ETHERTYPE_IPV4};
use mip_core::dataplane::ipv4::{self, Ipv4Fields};
use mip_core::dataplane::offload::fill_l4_checksum;
use mip_core::dataplane::{encapsulate, icmp_error, packets, EncapOutcome, Encapsulation, TunnelParams};

const HA: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const HOME: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const RTR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);
const COA: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const CN: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
const HA_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x12, 0x00, 0x01];
const MN_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x12, 0x00, 0x0a];
const RTR_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x12, 0x00, 0xfe];

/// UDP CN:5000 -> HOME:6000 with `len` bytes of data, TOS 0x28, checksums right.
fn udp(len: usize, df: bool) -> Vec<u8> {
    let total = 28 + len;
    let mut p = vec![0u8; total];
    ipv4::write_header(
        &mut p,
        &Ipv4Fields {
            tos: 0x28,
            total_len: total as u16,
            identification: 0x5151,
            dont_fragment: df,
            more_fragments: false,
            fragment_offset: 0,
            ttl: 64,
            protocol: ipv4::PROTO_UDP,
            src: CN,
            dst: HOME,
        },
    )
    .unwrap();
    p[20..24].copy_from_slice(&[0x13, 0x88, 0x17, 0x70]);
    p[24..26].copy_from_slice(&((8 + len) as u16).to_be_bytes());
    for (i, b) in p[28..].iter_mut().enumerate() {
        *b = b'a' + (i % 26) as u8;
    }
    fill_l4_checksum(&mut p).unwrap();
    p
}

fn eth(ip: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; ip.len() + 64];
    let n = ethernet::write_frame(RTR_MAC, HA_MAC, ETHERTYPE_IPV4, ip, &mut f).unwrap();
    f.truncate(n);
    f
}

fn encap(kind: Encapsulation, inner: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 8192];
    let p = TunnelParams { identification: 0x0a0a, ..TunnelParams::default() };
    match encapsulate(kind, inner, HA, COA, &p, &mut out) {
        EncapOutcome::Encapsulated { len } => out[..len].to_vec(),
        other => panic!("{kind:?}: {other:?}"),
    }
}

fn arp_frame(repr: &ArpRepr, dst: [u8; 6]) -> Vec<u8> {
    let mut f = [0u8; 64];
    let n = repr.emit_frame(dst, HA_MAC, &mut f).unwrap();
    f[..n].to_vec()
}

fn decode(frames: &[Vec<u8>]) -> Vec<Packet> {
    let dir = tempfile::tempdir().unwrap();
    let path = capture::write_pcap(dir.path(), "dataplane", frames, Duration::from_secs(1));
    let decoded = capture::decode("dataplane", &path, &[] as &[&str], frames.len());
    capture::assert_same_bytes("dataplane", &decoded, frames, |_| "as built".to_owned());
    for (i, p) in decoded.iter().enumerate() {
        assert!(!p.is_malformed() && p.errors().is_empty(), "#{}: {:?}", i + 1, p.errors());
    }
    decoded
}

fn strs(p: &Packet, field: &str) -> Vec<String> {
    p.all(field).to_vec()
}

#[test]
fn tunnels_icmp_and_arp_decode_with_the_fields_we_set() {
    let inner = udp(100, true);
    let big = udp(1472, true);
    let mut icmp = [0u8; 128];
    let n = icmp_error::fragmentation_needed(&big, HA, 1480, &mut icmp).unwrap();
    let mut frags = vec![0u8; 16384];
    let EncapOutcome::Fragmented { len, count } =
        encapsulate(Encapsulation::Gre, &udp(2000, false), HA, COA, &TunnelParams::default(), &mut frags)
    else {
        panic!("not fragmented")
    };
    assert_eq!(count, 2);
    let request = ArpRepr {
        operation: ArpOp::Request,
        sender_mac: RTR_MAC,
        sender_ip: RTR,
        target_mac: [0; 6],
        target_ip: HOME,
    };
    let mut frames = vec![
        eth(&encap(Encapsulation::IpInIp, &inner)),
        eth(&encap(Encapsulation::Gre, &inner)),
        eth(&encap(Encapsulation::Minimal, &inner)),
        eth(&icmp[..n]),
        arp_frame(&arp::gratuitous(HOME, HA_MAC, ArpOp::Request), ethernet::BROADCAST),
        arp_frame(&arp::gratuitous(HOME, MN_MAC, ArpOp::Reply), ethernet::BROADCAST),
        arp_frame(&arp::proxy_reply(&request, HA_MAC), RTR_MAC),
    ];
    frames.extend(packets(&frags[..len]).map(eth));
    let d = decode(&frames);

    // 1. IP in IP: outer TOS and DF copied, TTL 64; inner TTL decremented; UDP intact.
    let p = &d[0];
    assert_eq!(strs(p, "ip.proto"), ["4", "17"]);
    assert_eq!(strs(p, "ip.src"), [HA.to_string(), CN.to_string()]);
    assert_eq!(strs(p, "ip.dst"), [COA.to_string(), HOME.to_string()]);
    assert_eq!(strs(p, "ip.ttl"), ["64", "63"]);
    assert_eq!(p.all_u64("ip.dsfield"), [0x28, 0x28]);
    assert_eq!(p.all_u64("ip.flags.df"), [1, 1]);
    assert_eq!(p.all_u64("ip.id")[0], 0x0a0a);
    assert_eq!(p.get_u64("udp.dstport"), Some(6000));

    // 2. GRE: version 0, no flags, protocol type IPv4.
    let p = &d[1];
    assert_eq!(strs(p, "ip.proto"), ["47", "17"]);
    assert_eq!(p.get_u64("gre.flags_and_version"), Some(0));
    assert_eq!(p.get_u64("gre.proto"), Some(0x0800));
    assert_eq!(strs(p, "ip.ttl"), ["64", "63"]);
    assert_eq!(p.get_u64("udp.srcport"), Some(5000));

    // 3. Minimal: tshark checks the modified header only (protocol 55, checksum right).
    let p = &d[2];
    assert_eq!(p.get_u64("ip.proto"), Some(55));
    assert_eq!(p.get_u64("ip.len"), Some(128 + 12));
    assert_eq!((p.get("ip.src"), p.get("ip.dst")), (Some("198.18.0.1"), Some("198.18.1.1")));

    // 4. ICMP 3/4 with the next-hop MTU, quoting the original header.
    let p = &d[3];
    assert_eq!((p.get_u64("icmp.type"), p.get_u64("icmp.code"), p.get_u64("icmp.mtu")), (Some(3), Some(4), Some(1480)));
    assert_eq!(strs(p, "ip.dst")[0], CN.to_string());
    assert_eq!(strs(p, "ip.src")[1], CN.to_string());

    // 5, 6. Gratuitous ARP (RFC 5944 4.6): broadcast, SPA = TPA = home address,
    // SHA = the MAC to learn; THA = it in a Reply, zero in a Request.
    for (p, op, mac, tha) in [(&d[4], 1, HA_MAC, [0u8; 6]), (&d[5], 2, MN_MAC, MN_MAC)] {
        assert_eq!(p.get("eth.dst"), Some("ff:ff:ff:ff:ff:ff"));
        assert_eq!(p.get_u64("arp.opcode"), Some(op));
        assert_eq!(p.get("arp.src.proto_ipv4"), Some("198.18.0.10"));
        assert_eq!(p.get("arp.dst.proto_ipv4"), Some("198.18.0.10"));
        assert_eq!(p.get("arp.src.hw_mac"), Some(ethernet::format_mac(&mac).as_str()));
        assert_eq!(p.get("arp.dst.hw_mac"), Some(ethernet::format_mac(&tha).as_str()));
        assert_eq!(p.get_bool("arp.isgratuitous"), Some(true), "#{}", p.number);
    }

    // 7. Proxy ARP reply: unicast to the asker, home address at the home agent's MAC.
    let p = &d[6];
    assert_eq!(p.get("eth.dst"), Some(ethernet::format_mac(&RTR_MAC).as_str()));
    assert_eq!(p.get_u64("arp.opcode"), Some(2));
    assert_eq!(p.get("arp.src.hw_mac"), Some(ethernet::format_mac(&HA_MAC).as_str()));
    assert_eq!(p.get("arp.src.proto_ipv4"), Some("198.18.0.10"));
    assert_eq!(p.get("arp.dst.proto_ipv4"), Some("198.18.0.254"));

    // 8, 9. A DF-clear packet too big for the tunnel: inner fragments, each in GRE.
    let offsets: Vec<u64> = d[7..].iter().map(|p| p.all_u64("ip.frag_offset")[1]).collect();
    assert_eq!(offsets, [0, 1456 / 8], "tshark shows 8-byte units");
    assert!(d[7..].iter().all(|p| p.get_u64("ip.len") <= Some(1500)));
    assert_eq!(d[7].all_u64("ip.flags.mf"), [0, 1]);
    assert_eq!(d[8].all_u64("ip.flags.mf"), [0, 0]);
}
