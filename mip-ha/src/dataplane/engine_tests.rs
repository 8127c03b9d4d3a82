//! The engine without sockets: frames and tunnel packets in, frames and IP packets out.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::bindings::TunnelKind;
use crate::home_agent::{HaEvent, RemovalReason};
use mip_core::dataplane::ipv4::Ipv4Fields;
use mip_core::dataplane::offload::{fill_l4_checksum, VNET_HDR_LEN};
use mip_core::dataplane::Encapsulation;

const HA: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const HOME: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const RTR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);
const COA: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const COA2: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 100);
const CN: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
const HA_MAC: MacAddr = [2, 0, 0, 0, 0, 1];
const RTR_MAC: MacAddr = [2, 0, 0, 0, 0, 0xfe];
const MN_MAC: MacAddr = [2, 0, 0, 0, 0, 0x0a];

#[derive(Default)]
struct Sink {
    frames: Vec<Vec<u8>>,
    ips: Vec<(Ipv4Addr, Vec<u8>)>,
}

impl Output for Sink {
    fn frame(&mut self, frame: &[u8]) -> std::io::Result<()> {
        self.frames.push(frame.to_vec());
        Ok(())
    }
    fn ip(&mut self, dst: Ipv4Addr, packet: &[u8]) -> std::io::Result<()> {
        self.ips.push((dst, packet.to_vec()));
        Ok(())
    }
}

fn engine(mtu: u16) -> Engine {
    let table = Arc::new(RwLock::new(Table::new([HOME])));
    Engine::new(HA, HA_MAC, mtu, table, Arc::default())
}

fn bind(e: &Engine, coa: Ipv4Addr, tunnel: TunnelKind, reverse: bool) {
    e.table.write().unwrap().apply(&HaEvent::BindingAdded {
        home_address: HOME,
        care_of_address: coa,
        lifetime: 60,
        tunnel,
        reverse_tunnel: reverse,
        first_for_home: true,
    });
}

fn ip(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, df: bool, data: usize) -> Vec<u8> {
    let total = 28 + data;
    let mut p = vec![0u8; total];
    ipv4::write_header(
        &mut p,
        &Ipv4Fields {
            tos: 0,
            total_len: total as u16,
            identification: 77,
            dont_fragment: df,
            more_fragments: false,
            fragment_offset: 0,
            ttl,
            protocol: ipv4::PROTO_UDP,
            src,
            dst,
        },
    )
    .unwrap();
    p[20..22].copy_from_slice(&1000u16.to_be_bytes());
    p[22..24].copy_from_slice(&2000u16.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + data) as u16).to_be_bytes());
    fill_l4_checksum(&mut p).unwrap();
    p
}

fn frame(dst: MacAddr, src: MacAddr, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; payload.len() + 64];
    let n = ethernet::write_frame(dst, src, ethertype, payload, &mut f).unwrap();
    f.truncate(n);
    f
}

fn arp_request(sender_mac: MacAddr, sender_ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let r = ArpRepr { operation: ArpOp::Request, sender_mac, sender_ip, target_mac: [0; 6], target_ip: target };
    let mut f = [0u8; 64];
    let n = r.emit_frame(ethernet::BROADCAST, sender_mac, &mut f).unwrap();
    f[..n].to_vec()
}

#[test]
fn proxy_arp_only_for_bound_home_addresses() {
    let e = engine(1500);
    let mut s = Scratch::default();
    let mut out = Sink::default();
    let mut req = arp_request(RTR_MAC, RTR, HOME);
    e.on_frame(None, &mut req, &mut s, &mut out);
    assert!(out.frames.is_empty(), "no binding: the node answers for itself");
    bind(&e, COA, TunnelKind::IpInIp, false);
    e.on_frame(None, &mut req, &mut s, &mut out);
    assert_eq!(out.frames.len(), 1);
    let f = ethernet::parse(&out.frames[0]).unwrap();
    assert_eq!((f.dst, f.src, f.ethertype), (RTR_MAC, HA_MAC, ETHERTYPE_ARP));
    let reply = ArpRepr::parse(f.payload).unwrap();
    assert_eq!(reply, arp::proxy_reply(&ArpRepr::parse(&req[14..]).unwrap(), HA_MAC));
    // A gratuitous request for the home address asks nothing.
    let mut grat = arp_request(RTR_MAC, HOME, HOME);
    e.on_frame(None, &mut grat, &mut s, &mut out);
    assert_eq!(out.frames.len(), 1);
    assert_eq!(e.stats().report().proxy_arp_replies, 1);
}

#[test]
fn mac_of_a_served_node_is_learnt_from_its_arp() {
    let e = engine(1500);
    let mut s = Scratch::default();
    let mut out = Sink::default();
    e.on_frame(None, &mut arp_request(MN_MAC, HOME, RTR), &mut s, &mut out);
    e.on_frame(None, &mut arp_request(RTR_MAC, RTR, HOME), &mut s, &mut out);
    let t = e.table.read().unwrap();
    assert_eq!(t.mac(HOME), Some(MN_MAC));
    assert_eq!(t.mac(RTR), None, "not a served home address");
}

#[test]
fn intercepted_packet_goes_to_every_care_of_address_with_its_encapsulation() {
    let e = engine(1500);
    bind(&e, COA, TunnelKind::IpInIp, false);
    e.table.write().unwrap().apply(&HaEvent::BindingAdded {
        home_address: HOME,
        care_of_address: COA2,
        lifetime: 60,
        tunnel: TunnelKind::Gre,
        reverse_tunnel: false,
        first_for_home: false,
    });
    let mut s = Scratch::default();
    let mut out = Sink::default();
    let pkt = ip(CN, HOME, 64, true, 100);
    // To someone else's MAC: not ours.
    e.on_frame(None, &mut frame(RTR_MAC, MN_MAC, ETHERTYPE_IPV4, &pkt), &mut s, &mut out);
    assert!(out.ips.is_empty());
    e.on_frame(None, &mut frame(HA_MAC, RTR_MAC, ETHERTYPE_IPV4, &pkt), &mut s, &mut out);
    assert_eq!(out.ips.len(), 2);
    let mut inner = [0u8; 2048];
    for ((dst, p), (coa, kind)) in out.ips.iter().zip([(COA, Encapsulation::IpInIp), (COA2, Encapsulation::Gre)]) {
        assert_eq!(*dst, coa);
        let d = decapsulate(p, &mut inner).unwrap();
        assert_eq!((d.kind, d.outer_src, d.outer_dst, d.inner_src, d.inner_dst), (kind, HA, coa, CN, HOME));
        assert_eq!(ipv4::parse(&inner[..d.inner_len]).unwrap().ttl, 63);
    }
    let t = e.table.read().unwrap();
    let c = t.counters(HOME, COA).unwrap().snapshot();
    assert_eq!((c.packets_out, c.bytes_out as usize), (1, 128 + 20));
    // A packet to the home agent itself is the kernel's business.
    let mut own = frame(HA_MAC, RTR_MAC, ETHERTYPE_IPV4, &ip(CN, HA, 64, true, 10));
    drop(t);
    e.on_frame(None, &mut own, &mut s, &mut out);
    assert_eq!(out.ips.len(), 2);
}

#[test]
fn too_big_with_df_gets_icmp_3_4_and_ttl_1_gets_icmp_11() {
    let e = engine(1500);
    bind(&e, COA, TunnelKind::IpInIp, false);
    let mut s = Scratch::default();
    let mut out = Sink::default();
    e.forward(&ip(CN, HOME, 64, true, 1472), &mut s, &mut out);
    assert_eq!(out.ips.len(), 1);
    let (dst, icmp) = &out.ips[0];
    assert_eq!(*dst, CN);
    assert_eq!((icmp[20], icmp[21], u16::from_be_bytes([icmp[26], icmp[27]])), (3, 4, 1480));
    e.forward(&ip(CN, HOME, 1, false, 10), &mut s, &mut out);
    assert_eq!((out.ips[1].0, out.ips[1].1[20]), (CN, 11));
    // DF clear and too big: fragments, all within the MTU.
    e.forward(&ip(CN, HOME, 64, false, 1472), &mut s, &mut out);
    assert_eq!(out.ips.len(), 4);
    assert!(out.ips[2..].iter().all(|(d, p)| *d == COA && p.len() <= 1500));
    let r = e.stats().report();
    assert_eq!((r.icmp_fragmentation_needed, r.icmp_time_exceeded, r.fragmented), (1, 1, 1));
    assert_eq!(r.dropped("ttl_expired"), 1);
}

fn tunnel_packet(kind: Encapsulation, outer_src: Ipv4Addr, inner: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 4096];
    let p = TunnelParams { forwarding: false, ..TunnelParams::default() };
    match encapsulate(kind, inner, outer_src, HA, &p, &mut out) {
        EncapOutcome::Encapsulated { len } => out[..len].to_vec(),
        o => panic!("{o:?}"),
    }
}

#[test]
fn reverse_tunnel_checks_rfc3024() {
    let e = engine(1500);
    bind(&e, COA, TunnelKind::IpInIp, true);
    let mut s = Scratch::default();
    let mut out = Sink::default();
    let inner = ip(HOME, CN, 64, true, 20);
    for kind in [Encapsulation::IpInIp, Encapsulation::Gre, Encapsulation::Minimal] {
        e.on_tunnel_packet(&tunnel_packet(kind, COA, &inner), &mut s, &mut out);
    }
    assert_eq!(out.ips.len(), 3);
    for (dst, p) in &out.ips {
        assert_eq!(*dst, CN);
        let i = ipv4::parse(p).unwrap();
        assert_eq!((i.src, i.ttl), (HOME, 63));
        assert_eq!(&p[20..], &inner[20..]);
    }
    // Unregistered outer source, inner source without a binding, garbage, bad GRE.
    e.on_tunnel_packet(&tunnel_packet(Encapsulation::IpInIp, COA2, &inner), &mut s, &mut out);
    e.on_tunnel_packet(&tunnel_packet(Encapsulation::IpInIp, COA, &ip(RTR, CN, 64, true, 20)), &mut s, &mut out);
    let mut bad = tunnel_packet(Encapsulation::IpInIp, COA, &inner);
    bad[20] = 0x65;
    e.on_tunnel_packet(&bad, &mut s, &mut out);
    let mut key = tunnel_packet(Encapsulation::Gre, COA, &inner);
    key[20] = 0x20;
    e.on_tunnel_packet(&key, &mut s, &mut out);
    assert_eq!(out.ips.len(), 3);
    let r = e.stats().report();
    assert_eq!(r.reverse_packets, 3);
    for reason in ["unregistered_care_of", "no_binding", "malformed", "unsupported_gre"] {
        assert_eq!(r.dropped(reason), 1, "{reason}: {r:?}");
    }
    let c = e.table.read().unwrap().counters(HOME, COA).unwrap().snapshot();
    assert_eq!(c.packets_in, 3);
    // Without T the same packet is refused.
    e.table.write().unwrap().apply(&HaEvent::BindingRefreshed {
        home_address: HOME,
        care_of_address: COA,
        lifetime: 60,
        tunnel: TunnelKind::IpInIp,
        reverse_tunnel: false,
    });
    e.on_tunnel_packet(&tunnel_packet(Encapsulation::IpInIp, COA, &inner), &mut s, &mut out);
    assert_eq!(e.stats().report().dropped("reverse_tunnel_not_granted"), 1);
    // Binding gone: no binding.
    e.table.write().unwrap().apply(&HaEvent::BindingRemoved {
        home_address: HOME,
        care_of_address: COA,
        reason: RemovalReason::Deregistered,
        last_for_home: true,
    });
    e.on_tunnel_packet(&tunnel_packet(Encapsulation::IpInIp, COA, &inner), &mut s, &mut out);
    assert_eq!(e.stats().report().dropped("no_binding"), 2);
}

#[test]
fn partial_checksum_and_tcp_super_packets_are_finished_before_tunnelling() {
    let e = engine(1500);
    bind(&e, COA, TunnelKind::IpInIp, false);
    let mut s = Scratch::default();
    let mut out = Sink::default();
    // A 4000-byte TCP packet with only the pseudo-header sum, as veth hands it over.
    let total = 40 + 4000;
    let mut p = vec![0u8; total];
    ipv4::write_header(
        &mut p,
        &Ipv4Fields {
            tos: 0,
            total_len: total as u16,
            identification: 5,
            dont_fragment: true,
            more_fragments: false,
            fragment_offset: 0,
            ttl: 64,
            protocol: ipv4::PROTO_TCP,
            src: CN,
            dst: HOME,
        },
    )
    .unwrap();
    p[32] = 0x50;
    p[33] = 0x18;
    let mut f = frame(HA_MAC, RTR_MAC, ETHERTYPE_IPV4, &p);
    let mut vnet = [0u8; VNET_HDR_LEN];
    vnet[0] = 1;
    vnet[1] = 1;
    vnet[4..6].copy_from_slice(&1400u16.to_ne_bytes());
    vnet[6..8].copy_from_slice(&34u16.to_ne_bytes());
    vnet[8..10].copy_from_slice(&16u16.to_ne_bytes());
    let (v, _) = VnetHdr::parse(&vnet).unwrap();
    e.on_frame(Some(&v), &mut f, &mut s, &mut out);
    assert_eq!(out.ips.len(), 3);
    let mut inner = [0u8; 2048];
    for (_, pkt) in &out.ips {
        let d = decapsulate(pkt, &mut inner).unwrap();
        let seg = &mut inner[..d.inner_len];
        assert!(seg.len() <= 1440);
        let before = seg.to_vec();
        fill_l4_checksum(seg).unwrap();
        assert_eq!(&before[..], &seg[..], "TCP checksum already right");
    }
    let r = e.stats().report();
    assert_eq!((r.segmented, r.checksums_completed), (1, 1));
}

#[test]
fn too_big_from_inside_the_tunnel_lowers_its_mtu() {
    let e = engine(1500);
    bind(&e, COA, TunnelKind::IpInIp, false);
    let mut s = Scratch::default();
    let mut out = Sink::default();
    // A router inside the tunnel reports MTU 1400 about one of our packets.
    let pkt = ip(CN, HOME, 64, true, 1400);
    e.forward(&pkt, &mut s, &mut out);
    let (_, ours) = out.ips.pop().unwrap();
    let mut icmp = [0u8; 128];
    let n = icmp_error::fragmentation_needed(&ours, Ipv4Addr::new(198, 18, 1, 254), 1400, &mut icmp).unwrap();
    e.on_icmp(&icmp[..n]);
    assert_eq!(e.stats().report().tunnel_mtu_updates, 1);
    // Not about our tunnel: ignored.
    let n = icmp_error::fragmentation_needed(&pkt, Ipv4Addr::new(198, 18, 1, 254), 1000, &mut icmp).unwrap();
    e.on_icmp(&icmp[..n]);
    assert_eq!(e.stats().report().tunnel_mtu_updates, 1);
    // The next one gets our ICMP 3/4 with 1400 - 20.
    e.forward(&pkt, &mut s, &mut out);
    let (dst, err) = out.ips.pop().unwrap();
    assert_eq!((dst, err[20], err[21], u16::from_be_bytes([err[26], err[27]])), (CN, 3, 4, 1380));
}

#[test]
fn udp_frame_to_a_stored_mac_bypasses_arp_with_both_checksums_right() {
    let e = engine(1500);
    let mut out = Sink::default();
    let (from, to) = (std::net::SocketAddrV4::new(HA, 434), std::net::SocketAddrV4::new(HOME, 434));
    // Short enough to need padding to the Ethernet minimum.
    e.send_udp_frame(MN_MAC, from, to, b"wake", &mut out).unwrap();
    e.send_udp_frame(MN_MAC, from, to, &[0x16; 90], &mut out).unwrap();
    assert_eq!(out.frames[0].len(), ethernet::MIN_FRAME_LEN);
    let f = ethernet::parse(&out.frames[1]).unwrap();
    assert_eq!((f.dst, f.src, f.ethertype), (MN_MAC, HA_MAC, ETHERTYPE_IPV4));
    let mut pkt = f.payload.to_vec();
    let info = ipv4::parse(&pkt).unwrap();
    assert_eq!((info.src, info.dst, info.ttl, info.protocol), (HA, HOME, 64, ipv4::PROTO_UDP));
    assert_eq!(info.total_len, 20 + 8 + 90);
    assert_eq!(ipv4::checksum(&pkt[..20]), 0, "header checksum");
    assert_eq!(&pkt[20..26], &[1, 0xb2, 1, 0xb2, 0, 98], "ports 434 -> 434, length 98");
    let sent = pkt.clone();
    fill_l4_checksum(&mut pkt).unwrap();
    assert_eq!(sent, pkt, "UDP checksum right");
    assert_ne!(&sent[26..28], &[0, 0]);
    assert_eq!(&sent[28..], &[0x16; 90]);
    // Too big for the link: not sent, counted.
    assert!(e.send_udp_frame(MN_MAC, from, to, &[0; 1500], &mut out).is_err());
    let r = e.stats().report();
    assert_eq!((r.link_frames_sent, r.link_frames_failed, out.frames.len()), (2, 1, 2));
}

#[test]
fn packets_still_sent_to_us_after_the_last_binding_are_relayed_to_the_node_for_a_while() {
    let e = engine(1500);
    let mut s = Scratch::default();
    let udp = ip(CN, HOME, 63, false, 100);
    let to_us = frame(HA_MAC, RTR_MAC, ETHERTYPE_IPV4, &udp);
    e.table.write().unwrap().learn(HOME, MN_MAC);

    // Before any binding: not ours, nothing relayed.
    let mut out = Sink::default();
    e.on_frame(None, &mut to_us.clone(), &mut s, &mut out);
    assert!(out.frames.is_empty() && out.ips.is_empty());

    bind(&e, COA, TunnelKind::IpInIp, false);
    let gone = HaEvent::BindingRemoved {
        home_address: HOME,
        care_of_address: COA,
        reason: RemovalReason::Deregistered,
        last_for_home: true,
    };
    e.table.write().unwrap().apply(&gone);
    // Binding over: the same frame goes to the node's MAC, the IP packet unchanged.
    let mut out = Sink::default();
    e.on_frame(None, &mut to_us.clone(), &mut s, &mut out);
    assert!(out.ips.is_empty(), "nothing tunnelled");
    assert_eq!(out.frames.len(), 1);
    let f = ethernet::parse(&out.frames[0]).unwrap();
    assert_eq!((f.dst, f.src, f.ethertype), (MN_MAC, HA_MAC, ETHERTYPE_IPV4));
    assert_eq!(f.payload, &udp[..]);
    assert_eq!(e.stats().relayed_home.load(Relaxed), 1);
    assert_eq!(e.stats().intercepted.load(Relaxed), 0);

    // The grace ends, or the node leaves again: no relaying.
    let later = Instant::now() + super::super::table::HANDBACK_RELAY;
    assert_eq!(e.table.read().unwrap().relay_mac(HOME, later), None);
    bind(&e, COA2, TunnelKind::IpInIp, false);
    let mut out = Sink::default();
    e.on_frame(None, &mut to_us.clone(), &mut s, &mut out);
    assert!(out.frames.is_empty(), "tunnelled again, not relayed");
    assert_eq!(out.ips.len(), 1);
}

#[test]
fn a_node_whose_mac_was_never_learnt_is_not_relayed_to() {
    let e = engine(1500);
    let mut s = Scratch::default();
    bind(&e, COA, TunnelKind::IpInIp, false);
    e.table.write().unwrap().apply(&HaEvent::BindingExpired { home_address: HOME, care_of_address: COA, last_for_home: true });
    let mut f = frame(HA_MAC, RTR_MAC, ETHERTYPE_IPV4, &ip(CN, HOME, 63, false, 10));
    let mut out = Sink::default();
    e.on_frame(None, &mut f, &mut s, &mut out);
    assert!(out.frames.is_empty() && out.ips.is_empty());
}

#[test]
fn packets_reverse_tunnelled_just_before_the_binding_ended_are_still_forwarded() {
    let e = engine(1500);
    let mut s = Scratch::default();
    let mut out = Sink::default();
    let inner = ip(HOME, CN, 64, true, 20);
    // A further transfer moves the binding from COA (reverse tunnelling) to COA2.
    bind(&e, COA, TunnelKind::IpInIp, true);
    bind(&e, COA2, TunnelKind::IpInIp, true);
    e.table.write().unwrap().apply(&HaEvent::BindingRemoved {
        home_address: HOME,
        care_of_address: COA,
        reason: RemovalReason::Replaced,
        last_for_home: false,
    });
    e.on_tunnel_packet(&tunnel_packet(Encapsulation::IpInIp, COA, &inner), &mut s, &mut out);
    assert_eq!(out.ips.len(), 1, "the old Target's late answer still goes out");
    // Then the last binding ends too.
    e.table.write().unwrap().apply(&HaEvent::BindingExpired { home_address: HOME, care_of_address: COA2, last_for_home: true });
    e.on_tunnel_packet(&tunnel_packet(Encapsulation::IpInIp, COA2, &inner), &mut s, &mut out);
    assert_eq!(out.ips.len(), 2);
    let r = e.stats().report();
    assert_eq!((r.reverse_packets, r.reverse_after_end), (2, 2));
    // Only from the care-of addresses that had the binding, and only for a while.
    let stranger = Ipv4Addr::new(198, 18, 3, 3);
    e.on_tunnel_packet(&tunnel_packet(Encapsulation::IpInIp, stranger, &inner), &mut s, &mut out);
    assert_eq!(out.ips.len(), 2);
    assert_eq!(e.stats().report().dropped("no_binding"), 1);
    let later = Instant::now() + super::super::table::REVERSE_GRACE;
    assert!(!e.table.read().unwrap().in_reverse_grace(HOME, COA2, later));
}
