//! The home agent's data plane on real (virtual) links: three network namespaces, the
//! mip-ha daemon in one of them (see `dataplane_netns/lab.rs`, on the shared harness in
//! `netns/`). Needs root; skipped (with a message) otherwise. Every wait is bounded;
//! assertions are on packets seen and on counters read from the control socket, never
//! on elapsed time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "dataplane_netns/lab.rs"]
mod lab;
mod netns;

use std::net::{Ipv4Addr, UdpSocket};

use lab::*;
use mip_core::dataplane::arp::{self, ArpOp, ArpRepr};
use mip_core::dataplane::ethernet::{self, ETHERTYPE_ARP};
use mip_core::dataplane::ipv4::{self, Ipv4Fields};
use mip_core::dataplane::offload::fill_l4_checksum;
use mip_core::dataplane::{decapsulate, encapsulate, EncapOutcome, Encapsulation, TunnelParams};
use mip_core::wire::RegistrationFlags;
use mip_ha::dataplane::linux::open_packet_socket;

/// UDP `src:sport -> dst:dport` carrying `data`, checksums right.
fn udp_packet(src: Ipv4Addr, dst: Ipv4Addr, dport: u16, df: bool, data: &[u8]) -> Vec<u8> {
    let total = 28 + data.len();
    let mut p = vec![0u8; total];
    ipv4::write_header(
        &mut p,
        &Ipv4Fields {
            tos: 0,
            total_len: total as u16,
            identification: 0x77,
            dont_fragment: df,
            more_fragments: false,
            fragment_offset: 0,
            ttl: 64,
            protocol: ipv4::PROTO_UDP,
            src,
            dst,
        },
    )
    .unwrap();
    p[20..22].copy_from_slice(&5000u16.to_be_bytes());
    p[22..24].copy_from_slice(&dport.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    p[28..].copy_from_slice(data);
    fill_l4_checksum(&mut p).unwrap();
    p
}

fn tunnel(kind: Encapsulation, outer_src: Ipv4Addr, inner: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 4096];
    let p = TunnelParams { forwarding: false, ..TunnelParams::default() };
    match encapsulate(kind, inner, outer_src, HA, &p, &mut out) {
        EncapOutcome::Encapsulated { len } => out[..len].to_vec(),
        o => panic!("{o:?}"),
    }
}

/// An ARP frame from the home agent about HOME, as (Ethernet destination, ARP).
fn arp_from_ha(frame: &[u8]) -> Option<([u8; 6], ArpRepr)> {
    let f = ethernet::parse(frame).ok()?;
    if f.ethertype != ETHERTYPE_ARP || f.src != HA_MAC {
        return None;
    }
    let a = ArpRepr::parse(f.payload).ok()?;
    (a.sender_ip == HOME).then_some((f.dst, a))
}

fn is_gratuitous(a: &ArpRepr) -> bool {
    a.sender_ip == HOME && a.target_ip == HOME
}

#[test]
fn bound_home_address_is_proxied_intercepted_and_tunnelled_with_each_encapsulation() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new("f");
    lab.start_ha("gratuitous_arp_count = 2");
    let cap = lab.in_ns(&lab.rtr, || open_packet_socket("eth-home").unwrap());
    let (ipip, minimal, gre) = lab.in_ns(&lab.coa, || (raw_socket(4), raw_socket(55), raw_socket(47)));
    assert_eq!(lab.register(RegistrationFlags::default(), 600), 0);

    // RFC 5944 4.6: on the first binding, a broadcast gratuitous ARP with SPA = TPA =
    // the home address and SHA = the home agent's MAC; retransmitted (count 2).
    for i in 0..2 {
        let (dst, a) = recv_until(&cap, "gratuitous ARP", |f| arp_from_ha(f).filter(|(_, a)| is_gratuitous(a)));
        assert_eq!(dst, ethernet::BROADCAST, "#{i}");
        assert_eq!(a, arp::gratuitous(HOME, HA_MAC, ArpOp::Request), "#{i}");
    }

    let udp = lab.in_ns(&lab.rtr, || UdpSocket::bind("198.18.0.254:40000").unwrap());
    for (flags, sock, kind) in [
        (RegistrationFlags::default(), &ipip, Encapsulation::IpInIp),
        (RegistrationFlags::default().with(RegistrationFlags::M), &minimal, Encapsulation::Minimal),
        (RegistrationFlags::default().with(RegistrationFlags::G), &gre, Encapsulation::Gre),
    ] {
        assert_eq!(lab.register(flags, 600), 0, "{kind:?}");
        let data = format!("to the home address via {kind:?}");
        // A kernel UDP socket: on veth its checksum is left partial, which the home
        // agent must finish before tunnelling.
        udp.send_to(data.as_bytes(), (HOME, 9)).unwrap();
        let pkt = recv_until(sock, &data, |p| {
            p.windows(data.len()).any(|w| w == data.as_bytes()).then(|| p.to_vec())
        });
        let outer = ipv4::parse(&pkt).unwrap();
        assert_eq!((outer.src, outer.dst, outer.protocol), (HA, COA, kind.protocol()));
        let mut inner = vec![0u8; 2048];
        let d = decapsulate(&pkt, &mut inner).unwrap();
        assert_eq!((d.kind, d.inner_src, d.inner_dst), (kind, RTR_HOME, HOME));
        let inner = &mut inner[..d.inner_len];
        let i = ipv4::parse(inner).unwrap();
        // Decremented by us (RFC 2003 3.1); minimal encapsulation keeps one header, so
        // the router's hop shows too (RFC 2004 3).
        let hops = if kind == Encapsulation::Minimal { 2 } else { 1 };
        assert_eq!(i.ttl, 64 - hops, "inner TTL");
        if kind != Encapsulation::Minimal {
            assert_eq!(outer.ttl, 64 - 1, "outer TTL 64, less the router's hop");
            assert_eq!(outer.dont_fragment, i.dont_fragment, "DF copied");
        }
        let sent = inner.to_vec();
        fill_l4_checksum(inner).unwrap();
        assert_eq!(sent, inner.to_vec(), "UDP checksum complete");
    }

    // The router asked for the home address and got the home agent's MAC.
    let (dst, reply) = recv_until(&cap, "proxy ARP reply", |f| arp_from_ha(f).filter(|(_, a)| !is_gratuitous(a)));
    assert_eq!(dst, RTR_MAC);
    assert_eq!((reply.operation, reply.sender_mac, reply.target_ip), (ArpOp::Reply, HA_MAC, RTR_HOME));

    let traffic = wait_for("3 packets counted on the binding", || {
        let b = lab.bindings();
        b.first().and_then(|b| b.traffic).filter(|t| t.packets_out >= 3)
    });
    assert_eq!(traffic.packets_out, 3);
    assert!(traffic.bytes_out > 3 * 28);
    let d = lab.stats().dataplane.unwrap();
    assert!(d.proxy_arp_replies >= 1 && d.gratuitous_arps >= 2 && d.intercepted >= 3, "{d:?}");
    assert_eq!(d.tunnelled_packets, 3);
    eprintln!("checksums completed by the home agent: {}", d.checksums_completed);
}

#[test]
fn reverse_tunnel_is_accepted_only_from_the_registered_care_of_address() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new("r");
    lab.start_ha("gratuitous_arp_count = 1");
    assert_eq!(lab.register(RegistrationFlags::default(), 600), 0);
    let rx = lab.in_ns(&lab.rtr, || UdpSocket::bind("198.18.0.254:7777").unwrap());
    rx.set_read_timeout(Some(WAIT)).unwrap();
    let tx = lab.in_ns(&lab.coa, || raw_socket(255));

    let mut buf = [0u8; 2048];
    for kind in [Encapsulation::IpInIp, Encapsulation::Gre, Encapsulation::Minimal] {
        let data = format!("reverse {kind:?}");
        let inner = udp_packet(HOME, RTR_HOME, 7777, true, data.as_bytes());
        send_raw(&tx, HA, &tunnel(kind, COA, &inner));
        let (n, from) = rx.recv_from(&mut buf).expect("reverse-tunnelled packet delivered");
        assert_eq!(&buf[..n], data.as_bytes());
        assert_eq!(from.ip(), std::net::IpAddr::V4(HOME));
    }

    // RFC 3024: another source, an inner source without a binding; then broken packets.
    let inner = udp_packet(HOME, RTR_HOME, 7777, true, b"must not arrive");
    send_raw(&tx, HA, &tunnel(Encapsulation::IpInIp, OTHER, &inner));
    lab.wait_dropped("unregistered_care_of", 1);
    let stranger = udp_packet(Ipv4Addr::new(198, 18, 0, 99), RTR_HOME, 7777, true, b"must not arrive");
    send_raw(&tx, HA, &tunnel(Encapsulation::IpInIp, COA, &stranger));
    lab.wait_dropped("no_binding", 1);
    let mut garbage = tunnel(Encapsulation::IpInIp, COA, &inner);
    garbage[20] = 0x65; // inner "version 6"
    send_raw(&tx, HA, &garbage);
    lab.wait_dropped("malformed", 1);
    let mut truncated = tunnel(Encapsulation::IpInIp, COA, &inner);
    truncated.truncate(30);
    truncated[2..4].copy_from_slice(&30u16.to_be_bytes());
    send_raw(&tx, HA, &truncated);
    lab.wait_dropped("malformed", 2);
    let mut keyed = tunnel(Encapsulation::Gre, COA, &inner);
    keyed[20] = 0x20; // K bit
    send_raw(&tx, HA, &keyed);
    lab.wait_dropped("unsupported_gre", 1);
    let mut bad_sum = tunnel(Encapsulation::Minimal, COA, &inner);
    bad_sum[22] ^= 0xff;
    send_raw(&tx, HA, &bad_sum);
    lab.wait_dropped("bad_checksum", 1);

    rx.set_nonblocking(true).unwrap();
    assert!(rx.recv_from(&mut buf).is_err(), "a refused packet was delivered");
    let b = lab.bindings();
    let t = b[0].traffic.unwrap();
    assert_eq!(t.packets_in, 3, "{t:?}");
    assert_eq!(lab.stats().dataplane.unwrap().reverse_packets, 3);
}

#[test]
fn too_big_packets_get_icmp_3_4_with_df_and_are_fragmented_without() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new("m");
    lab.start_ha("tunnel_mtu = 1500");
    assert_eq!(lab.register(RegistrationFlags::default(), 600), 0);
    let (icmp, tx) = lab.in_ns(&lab.rtr, || (raw_socket(1), raw_socket(255)));
    let ipip = lab.in_ns(&lab.coa, || raw_socket(4));

    let big = udp_packet(RTR_HOME, HOME, 9, true, &[0x5a; 1472]);
    assert_eq!(big.len(), 1500);
    send_raw(&tx, HOME, &big);
    let err = recv_until(&icmp, "ICMP fragmentation needed", |p| {
        let i = ipv4::parse(p).ok()?;
        let icmp = &p[i.header_len..];
        (i.src == HA && icmp.first() == Some(&3)).then(|| p[i.header_len..].to_vec())
    });
    // RFC 1191: type 3, code 4, next-hop MTU = tunnel MTU - 20 (RFC 2003 5.1), then the
    // original header and 8 bytes.
    assert_eq!((err[0], err[1]), (3, 4));
    assert_eq!(u16::from_be_bytes([err[6], err[7]]), 1480);
    assert_eq!(&err[8..36], &big[..28]);
    assert_eq!(ipv4::checksum(&err), 0);

    // DF clear: the inner packet is fragmented, each piece tunnelled within 1500 bytes.
    let loose = udp_packet(RTR_HOME, HOME, 9, false, &[0xa5; 1472]);
    send_raw(&tx, HOME, &loose);
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let (off, mf, len) = recv_until(&ipip, "inner fragment", |p| {
            let mut inner = vec![0u8; 2048];
            let d = decapsulate(p, &mut inner).ok()?;
            let i = ipv4::parse(&inner[..d.inner_len]).ok()?;
            (i.identification == 0x77 && i.is_fragment()).then_some((i.fragment_offset, i.more_fragments, p.len()))
        });
        assert!(len <= 1500);
        seen.push((off, mf));
    }
    seen.sort();
    assert_eq!(seen, [(0, true), (1456, false)]);
    let d = lab.stats().dataplane.unwrap();
    assert_eq!((d.icmp_fragmentation_needed, d.fragmented), (1, 1));
}

#[test]
fn returning_home_announces_the_learnt_mac_and_stops_proxying() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new("h");
    lab.start_ha("gratuitous_arp_count = 1");
    let cap = lab.in_ns(&lab.rtr, || open_packet_socket("eth-home").unwrap());

    // The node at home announces itself; the home agent learns its MAC.
    let mut f = [0u8; 64];
    let n = arp::gratuitous_frame(HOME, MN_MAC, ArpOp::Request, MN_MAC, &mut f).unwrap();
    cap.send(&f[..n]).unwrap();
    wait_for("the node's MAC learnt", || (lab.stats().dataplane?.macs_learned >= 1).then_some(()));

    assert_eq!(lab.register(RegistrationFlags::default(), 600), 0);
    let (_, away) = recv_until(&cap, "gratuitous ARP (away)", |f| arp_from_ha(f).filter(|(_, a)| is_gratuitous(a)));
    assert_eq!(away.sender_mac, HA_MAC);

    // Deregistration (lifetime 0): gratuitous ARP with the node's own MAC, from us.
    assert_eq!(lab.register(RegistrationFlags::default(), 0), 0);
    let (dst, home) = recv_until(&cap, "gratuitous ARP (home)", |f| arp_from_ha(f).filter(|(_, a)| is_gratuitous(a)));
    assert_eq!(dst, ethernet::BROADCAST);
    assert_eq!(home, arp::gratuitous(HOME, MN_MAC, ArpOp::Request));

    // No binding: an ARP request for the home address is no longer answered by us.
    let before = lab.stats().dataplane.unwrap();
    let req = ArpRepr { operation: ArpOp::Request, sender_mac: RTR_MAC, sender_ip: RTR_HOME, target_mac: [0; 6], target_ip: HOME };
    let n = req.emit_frame(ethernet::BROADCAST, RTR_MAC, &mut f).unwrap();
    cap.send(&f[..n]).unwrap();
    wait_for("the request seen", || (lab.stats().dataplane?.arp_requests > before.arp_requests).then_some(()));
    assert_eq!(lab.stats().dataplane.unwrap().proxy_arp_replies, before.proxy_arp_replies);
}

/// A TCP stream to the home address through the tunnel: the sender's kernel hands veth
/// 64 KB super-packets with partial checksums, which the home agent must cut and finish.
/// The care-of namespace plays the decapsulating node: it owns the home address on `lo`
/// and a thread hands every decapsulated packet to its own kernel.
#[test]
fn tcp_stream_through_the_tunnel_survives_segmentation_offload() {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    if !can_run() {
        return;
    }
    let mut lab = Lab::new("t");
    lab.start_ha("gratuitous_arp_count = 1");
    let out = std::process::Command::new("ip")
        .args(["-n", &lab.coa, "addr", "add", "198.18.0.10/32", "dev", "lo"])
        .status()
        .unwrap();
    assert!(out.success());
    assert_eq!(lab.register(RegistrationFlags::default(), 600), 0);
    let (tunnel_rx, local_tx, listener) =
        lab.in_ns(&lab.coa, || (raw_socket(4), raw_socket(255), TcpListener::bind("198.18.0.10:8080").unwrap()));
    let stop = AtomicBool::new(false);
    const LEN: usize = 2 << 20;
    let received = std::thread::scope(|s| {
        s.spawn(|| {
            use std::io::Read;
            tunnel_rx.set_read_timeout(Some(std::time::Duration::from_millis(50))).unwrap();
            let mut buf = vec![0u8; 65_536];
            let mut inner = vec![0u8; 65_536];
            while !stop.load(Ordering::Relaxed) {
                if let Ok(n) = (&tunnel_rx).read(&mut buf) {
                    if let Ok(d) = decapsulate(&buf[..n], &mut inner) {
                        send_raw(&local_tx, d.inner_dst, &inner[..d.inner_len]);
                    }
                }
            }
        });
        let server = s.spawn(|| {
            let (mut c, _) = listener.accept().unwrap();
            c.set_read_timeout(Some(WAIT)).unwrap();
            let mut got = Vec::with_capacity(LEN);
            c.read_to_end(&mut got).unwrap();
            got
        });
        let client = lab.in_ns(&lab.rtr, || {
            let c = TcpStream::connect_timeout(&(HOME, 8080).into(), WAIT).unwrap();
            c.set_write_timeout(Some(WAIT)).unwrap();
            c
        });
        let data: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
        (&client).write_all(&data).unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let got = server.join().unwrap();
        stop.store(true, Ordering::Relaxed);
        got
    });
    assert_eq!(received.len(), LEN);
    assert!(received.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8), "stream corrupted");
    let d = lab.stats().dataplane.unwrap();
    eprintln!("super-packets cut: {}, checksums completed: {}", d.segmented, d.checksums_completed);
    assert_eq!(d.total_dropped(), 0, "{:?}", d.dropped);
}

/// RFC 2003 5.1: a router inside the tunnel (here the router towards the care-of
/// address, MTU 1400) reports Datagram Too Big to the home agent; the next packet that
/// does not fit gets an ICMP 3/4 from the home agent with that MTU less 20.
#[test]
fn tunnel_mtu_is_learnt_from_icmp_inside_the_tunnel() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new("p");
    lab.start_ha("gratuitous_arp_count = 1");
    for (ns, dev) in [(&lab.rtr, "eth-f1"), (&lab.coa, "eth0")] {
        let ok = std::process::Command::new("ip").args(["-n", ns, "link", "set", dev, "mtu", "1400"]).status().unwrap();
        assert!(ok.success());
    }
    assert_eq!(lab.register(RegistrationFlags::default(), 600), 0);
    let (icmp, tx) = lab.in_ns(&lab.rtr, || (raw_socket(1), raw_socket(255)));
    // 1428 bytes: fits the configured tunnel MTU (1500) but not the path (1400).
    let pkt = udp_packet(RTR_HOME, HOME, 9, true, &[0x33; 1400]);
    send_raw(&tx, HOME, &pkt);
    wait_for("the tunnel MTU learnt", || (lab.stats().dataplane?.tunnel_mtu_updates >= 1).then_some(()));
    send_raw(&tx, HOME, &pkt);
    let mtu = recv_until(&icmp, "ICMP 3/4 from the home agent", |p| {
        let i = ipv4::parse(p).ok()?;
        let m = &p[i.header_len..];
        (i.src == HA && m.first() == Some(&3) && m.get(1) == Some(&4)).then(|| u16::from_be_bytes([m[6], m[7]]))
    });
    assert_eq!(mtu, 1380);
}
