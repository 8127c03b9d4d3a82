//! RFC 5944 section 4.2.2, Foreign Agent Considerations for routing: decapsulation and
//! delivery to the visitor's link-layer address, routing visitors' packets (TTL, header
//! checksum), never ARP, no ICMP for undeliverable tunnel packets.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::Ipv4Addr;

use common::*;
use mip_core::dataplane::ethernet::{self, ETHERTYPE_IPV4};
use mip_core::dataplane::{ipv4, Encapsulation};
use mip_fa::forwarder::{DataDrop, LinkVerdict, TunnelVerdict, BUFFER_LEN};
use mip_fa::{DeliveryStyle, FaEvent, RemovalReason};

#[test]
fn s4_2_2_decapsulated_packet_is_framed_to_the_visitor_mac_for_every_encapsulation() {
    for kind in [
        Encapsulation::IpInIp,
        Encapsulation::Gre,
        Encapsulation::Minimal,
    ] {
        let mut f = forwarder(visitor(kind, false));
        let inner = udp_packet(CN, HOME, 63, b"to the mobile node");
        let outer = tunnel(kind, HA, COA, &inner);
        let mut out = vec![0u8; BUFFER_LEN];
        let TunnelVerdict::Deliver { len, home_address } = f.from_tunnel(&outer, &mut out) else {
            panic!("{kind:?}: not delivered")
        };
        assert_eq!(home_address, HOME);
        let frame = ethernet::parse(&out[..len]).unwrap();
        assert_eq!(
            (frame.dst, frame.src, frame.ethertype),
            (MN_MAC, FA_MAC, ETHERTYPE_IPV4)
        );
        assert_eq!(
            &frame.payload[..inner.len()],
            &inner[..],
            "{kind:?}: the inner packet unchanged (TTL too)"
        );
        assert_eq!(f.stats().delivered.packets, 1);
        assert_eq!(f.route(HOME).unwrap().to_visitor.bytes, inner.len() as u64);
    }
}

#[test]
fn s4_2_2_tunnel_packet_for_a_non_visitor_is_dropped_silently() {
    let mut f = forwarder(visitor(Encapsulation::IpInIp, false));
    let outer = tunnel(
        Encapsulation::IpInIp,
        HA,
        COA,
        &udp_packet(CN, HOME2, 63, b"x"),
    );
    let mut out = vec![0u8; BUFFER_LEN];
    assert_eq!(
        f.from_tunnel(&outer, &mut out),
        TunnelVerdict::Dropped(DataDrop::TunnelNoVisitor)
    );
    assert_eq!(f.stats().dropped(DataDrop::TunnelNoVisitor), 1);
    assert_eq!(
        f.stats().icmp_to_visitors,
        0,
        "ICMP Destination Unreachable MUST NOT be sent"
    );
}

#[test]
fn s4_2_2_tunnel_packets_from_elsewhere_or_broken_are_dropped_and_counted() {
    let mut f = forwarder(visitor(Encapsulation::IpInIp, false));
    let inner = udp_packet(CN, HOME, 63, b"x");
    let mut out = vec![0u8; BUFFER_LEN];
    let wrong_source = tunnel(
        Encapsulation::IpInIp,
        Ipv4Addr::new(198, 18, 0, 99),
        COA,
        &inner,
    );
    assert_eq!(
        f.from_tunnel(&wrong_source, &mut out),
        TunnelVerdict::Dropped(DataDrop::TunnelWrongSource)
    );
    let not_ours = tunnel(Encapsulation::IpInIp, HA, OTHER_COA, &inner);
    assert_eq!(
        f.from_tunnel(&not_ours, &mut out),
        TunnelVerdict::Dropped(DataDrop::TunnelNotForUs)
    );
    let mut bad_checksum = tunnel(Encapsulation::IpInIp, HA, COA, &inner);
    bad_checksum[10] ^= 0xff;
    assert_eq!(
        f.from_tunnel(&bad_checksum, &mut out),
        TunnelVerdict::Dropped(DataDrop::TunnelMalformed)
    );
    // An encapsulator refuses to send TTL 0; patch the inner header after the fact.
    let mut expired = tunnel(Encapsulation::IpInIp, HA, COA, &inner);
    ipv4::set_ttl(&mut expired[20..], 20, 0).unwrap();
    assert_eq!(
        f.from_tunnel(&expired, &mut out),
        TunnelVerdict::Dropped(DataDrop::TtlExpired)
    );
    assert_eq!(f.stats().tunnel_received.packets, 4);
    assert_eq!(f.stats().dropped.values().sum::<u64>(), 4);
}

#[test]
fn s4_2_2_visitor_packets_are_routed_with_ttl_decremented_and_checksum_fixed() {
    let mut f = forwarder(visitor(Encapsulation::IpInIp, false));
    let pkt = udp_packet(HOME, CN, 64, b"from the mobile node");
    let mut out = vec![0u8; BUFFER_LEN];
    let LinkVerdict::Route { len } = f.from_link(MN_MAC, &pkt, &mut out) else {
        panic!("not routed")
    };
    let info = ipv4::parse(&out[..len]).expect("checksum verifies");
    assert_eq!((info.src, info.dst, info.ttl), (HOME, CN, 63));
    assert_eq!(&out[20..len], &pkt[20..], "payload unchanged");
    assert_eq!(f.stats().routed.packets, 1);
}

#[test]
fn s4_2_2_visitor_packet_with_ttl_1_gets_icmp_time_exceeded_on_the_link() {
    let mut f = forwarder(visitor(Encapsulation::IpInIp, false));
    let pkt = udp_packet(HOME, CN, 1, b"x");
    let mut out = vec![0u8; BUFFER_LEN];
    let LinkVerdict::IcmpToVisitor { len } = f.from_link(MN_MAC, &pkt, &mut out) else {
        panic!()
    };
    let frame = ethernet::parse(&out[..len]).unwrap();
    assert_eq!(frame.dst, MN_MAC, "4.2.2: to the visitor's MAC, no ARP");
    let (ip, icmp) = mip_fa::frame::parse_icmp(frame.payload).unwrap();
    assert_eq!((ip.src, ip.dst, icmp[0], icmp[1]), (COA, HOME, 11, 0));
}

#[test]
fn s4_2_2_packets_to_us_broadcasts_and_strangers_are_left_to_the_kernel() {
    let mut f = forwarder(visitor(Encapsulation::IpInIp, true));
    let mut out = vec![0u8; BUFFER_LEN];
    for dst in [COA, Ipv4Addr::BROADCAST, Ipv4Addr::new(224, 0, 0, 11)] {
        assert_eq!(
            f.from_link(MN_MAC, &udp_packet(HOME, dst, 64, b"x"), &mut out),
            LinkVerdict::Local,
            "{dst}"
        );
    }
    let stranger = udp_packet(Ipv4Addr::new(198, 18, 1, 50), CN, 64, b"x");
    assert_eq!(
        f.from_link(MN2_MAC, &stranger, &mut out),
        LinkVerdict::NotVisitor
    );
    assert_eq!(
        f.from_link(MN_MAC, &[0x45, 0, 0], &mut out),
        LinkVerdict::NotVisitor
    );
}

#[test]
fn s4_2_2_removed_visitor_gets_nothing_more() {
    let mut f = forwarder(visitor(Encapsulation::IpInIp, false));
    f.apply(&FaEvent::VisitorRemoved {
        home_address: HOME,
        home_agent: HA,
        reason: RemovalReason::Expired,
    });
    let outer = tunnel(
        Encapsulation::IpInIp,
        HA,
        COA,
        &udp_packet(CN, HOME, 63, b"x"),
    );
    let mut out = vec![0u8; BUFFER_LEN];
    assert_eq!(
        f.from_tunnel(&outer, &mut out),
        TunnelVerdict::Dropped(DataDrop::TunnelNoVisitor)
    );
    assert_eq!(
        f.from_link(MN_MAC, &udp_packet(HOME, CN, 64, b"x"), &mut out),
        LinkVerdict::NotVisitor
    );
}

#[test]
fn s4_2_2_visitor_without_link_address_cannot_be_delivered_to() {
    let mut f = forwarder(FaEvent::VisitorAdded {
        home_address: HOME,
        home_agent: HA,
        care_of_address: COA,
        mac: None,
        reverse_tunnel: false,
        encapsulation: Encapsulation::IpInIp,
        delivery: DeliveryStyle::Direct,
        lifetime: 300,
    });
    let outer = tunnel(
        Encapsulation::IpInIp,
        HA,
        COA,
        &udp_packet(CN, HOME, 63, b"x"),
    );
    let mut out = vec![0u8; BUFFER_LEN];
    assert_eq!(
        f.from_tunnel(&outer, &mut out),
        TunnelVerdict::Dropped(DataDrop::NoLinkAddress)
    );
}
