//! RFC 3024, Reverse Tunneling for Mobile IP, at the foreign agent: the T flag in
//! advertisements, the denial codes 74, 75, 76 and 79, the Encapsulating Delivery Style
//! extension, and the reverse tunnel itself (direct and encapsulating delivery).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use mip_core::dataplane::{ipv4, Encapsulation};
use mip_core::wire::{
    ext_type, AgentAdvertisementRepr, AgentFlags, Extension, RegistrationFlags, ReplyCode,
};
use mip_fa::forwarder::{DataDrop, LinkVerdict, TunnelVerdict, BUFFER_LEN};
use mip_fa::{DeliveryStyle, FaEvent, LinkDatagram};

fn t_flag() -> RegistrationFlags {
    RegistrationFlags::default().with(RegistrationFlags::T)
}

fn with_t(lifetime: u16) -> mip_core::wire::RegistrationRequestRepr {
    let mut r = repr(t(0), lifetime);
    r.flags = t_flag();
    r
}

const DELIVERY_STYLE: Extension<'static> = Extension::Unknown {
    ext_type: ext_type::ENCAPSULATING_DELIVERY_STYLE,
    data: &[],
};

#[test]
fn rfc3024_3_1_t_flag_is_advertised_when_reverse_tunnelling_is_offered() {
    for offered in [true, false] {
        let mut c = config();
        c.reverse_tunnel = offered;
        let mut fa = fa_with(c);
        fa.handle_solicitation(t(0), HOME, Some(MN_MAC), &[10, 0, 0xf5, 0xff, 0, 0, 0, 0]);
        let adv = fa.poll_advertisement().expect("an answer");
        let flags = AgentAdvertisementRepr::parse(&adv.icmp)
            .unwrap()
            .mobility
            .flags;
        assert_eq!(flags.contains(AgentFlags::T), offered);
    }
}

#[test]
fn rfc3024_t_without_support_is_denied_74() {
    let mut c = config();
    c.reverse_tunnel = false;
    let mut fa = fa_with(c);
    fa.handle_request(t(0), &link(), &request(&with_t(300), &[], &[]));
    assert_eq!(denial(&mut fa), ReplyCode::FaReverseTunnelUnavailable);
}

#[test]
fn rfc3024_mandatory_reverse_tunnel_denies_requests_without_t_75() {
    let mut c = config();
    c.reverse_tunnel_mandatory = true;
    let mut fa = fa_with(c);
    fa.handle_request(t(0), &link(), &request(&repr(t(0), 300), &[], &[]));
    assert_eq!(denial(&mut fa), ReplyCode::FaReverseTunnelMandatory);
    fa.handle_request(t(2), &link(), &request(&repr(t(2), 0), &[], &[]));
    let _ = relayed(&mut fa);
    fa.handle_request(t(4), &link(), &request(&with_t(300), &[], &[]));
    let _ = relayed(&mut fa);
}

#[test]
fn rfc3024_request_with_t_not_sent_with_ttl_255_is_denied_76() {
    let mut fa = fa();
    let l = LinkDatagram {
        ttl: Some(64),
        ..link()
    };
    fa.handle_request(t(0), &l, &request(&with_t(300), &[], &[]));
    assert_eq!(denial(&mut fa), ReplyCode::FaMobileNodeTooDistant);
    // TTL 255 (or unknown, from a shell that cannot tell) passes.
    fa.handle_request(t(2), &link(), &request(&with_t(300), &[], &[]));
    let _ = relayed(&mut fa);
    let mut c = config();
    c.reverse_tunnel_ttl_check = false;
    let mut fa = fa_with(c);
    fa.handle_request(t(0), &l, &request(&with_t(300), &[], &[]));
    let _ = relayed(&mut fa);
}

#[test]
fn rfc3024_encapsulating_delivery_style_is_denied_79_unless_offered_and_is_consumed() {
    let bytes = request(&with_t(300), &[], &[DELIVERY_STYLE]);
    let mut fa = fa();
    fa.handle_request(t(0), &link(), &bytes);
    assert_eq!(denial(&mut fa), ReplyCode::FaDeliveryStyleNotSupported);
    let mut c = config();
    c.encapsulating_delivery = true;
    let mut fa = fa_with(c);
    fa.handle_request(t(0), &link(), &bytes);
    let (_, _, sent) = relayed(&mut fa);
    assert_eq!(
        sent,
        bytes[..bytes.len() - 2].to_vec(),
        "the foreign agent consumes the extension"
    );
    let r = with_t(300);
    fa.handle_reply(
        t(0),
        from_ha(),
        &reply_bytes(&ha_reply(&r, ReplyCode::Accepted, 300), None),
    );
    let _ = to_mn(&mut fa);
    assert!(matches!(
        fa.poll_event(),
        Some(FaEvent::VisitorAdded {
            delivery: DeliveryStyle::Encapsulating,
            reverse_tunnel: true,
            ..
        })
    ));
}

#[test]
fn rfc3024_direct_delivery_packets_are_tunnelled_from_the_care_of_address_to_the_home_agent() {
    for kind in [
        Encapsulation::IpInIp,
        Encapsulation::Gre,
        Encapsulation::Minimal,
    ] {
        let mut f = forwarder(visitor(kind, true));
        let pkt = udp_packet(HOME, CN, 64, b"reverse tunnelled");
        let mut out = vec![0u8; BUFFER_LEN];
        let LinkVerdict::ReverseTunnel { to, len, count } = f.from_link(MN_MAC, &pkt, &mut out)
        else {
            panic!("{kind:?}: not tunnelled")
        };
        assert_eq!((to, count), (HA, 1));
        let outer = ipv4::parse(&out[..len]).unwrap();
        assert_eq!(
            (outer.src, outer.dst, outer.protocol),
            (COA, HA, kind.protocol()),
            "{kind:?}"
        );
        let mut inner = vec![0u8; 4096];
        let d = mip_core::dataplane::decapsulate(&out[..len], &mut inner).unwrap();
        let inner_info = ipv4::parse(&inner[..d.inner_len]).unwrap();
        assert_eq!((inner_info.src, inner_info.dst), (HOME, CN));
        assert_eq!(
            inner_info.ttl, 63,
            "RFC 2003 3.1: forwarded, so the inner TTL drops by one"
        );
        assert_eq!(f.stats().reverse_tunnelled.packets, 1);
        assert_eq!(f.route(HOME).unwrap().from_visitor.packets, 1);
    }
}

#[test]
fn rfc3024_packets_claiming_a_visitors_address_from_another_mac_are_dropped() {
    let mut f = forwarder(visitor(Encapsulation::IpInIp, true));
    let mut out = vec![0u8; BUFFER_LEN];
    let v = f.from_link(MN2_MAC, &udp_packet(HOME, CN, 64, b"hijack"), &mut out);
    assert_eq!(v, LinkVerdict::Dropped(DataDrop::VisitorMacMismatch));
    assert_eq!(f.stats().dropped(DataDrop::VisitorMacMismatch), 1);
    assert_eq!(f.stats().reverse_tunnelled.packets, 0);
}

#[test]
fn rfc3024_encapsulating_delivery_packets_are_unwrapped_and_tunnelled_to_the_home_agent() {
    let mut f = forwarder(FaEvent::VisitorAdded {
        home_address: HOME,
        home_agent: HA,
        care_of_address: COA,
        mac: Some(MN_MAC),
        reverse_tunnel: true,
        encapsulation: Encapsulation::IpInIp,
        delivery: DeliveryStyle::Encapsulating,
        lifetime: 300,
    });
    let inner = udp_packet(HOME, CN, 64, b"inside");
    let to_fa = tunnel(Encapsulation::IpInIp, HOME, COA, &inner);
    let mut out = vec![0u8; BUFFER_LEN];
    let LinkVerdict::ReverseTunnel { to, len, .. } = f.from_link(MN_MAC, &to_fa, &mut out) else {
        panic!()
    };
    let outer = ipv4::parse(&out[..len]).unwrap();
    assert_eq!((to, outer.src, outer.dst), (HA, COA, HA));
    assert_eq!(
        &out[20..len],
        &inner[..],
        "the node's own packet, as it sent it"
    );
    // The raw tunnel socket sees the same packet: it is left to the link path.
    assert_eq!(f.from_tunnel(&to_fa, &mut out), TunnelVerdict::FromVisitor);
    // A direct-delivery visitor does not get to encapsulate to us.
    let mut f = forwarder(visitor(Encapsulation::IpInIp, true));
    assert_eq!(
        f.from_link(MN_MAC, &to_fa, &mut out),
        LinkVerdict::Dropped(DataDrop::UnexpectedEncapsulation)
    );
}

#[test]
fn rfc3024_too_big_with_df_gets_fragmentation_needed_with_the_tunnel_mtu() {
    let mut f = forwarder(visitor(Encapsulation::IpInIp, true));
    let mut pkt = udp_packet(HOME, CN, 64, &[0x55; 1472]);
    pkt[6] |= 0x40;
    ipv4::fill_checksum(&mut pkt, 20).unwrap();
    let mut out = vec![0u8; BUFFER_LEN];
    let LinkVerdict::IcmpToVisitor { len } = f.from_link(MN_MAC, &pkt, &mut out) else {
        panic!()
    };
    let frame = mip_core::dataplane::ethernet::parse(&out[..len]).unwrap();
    let (ip, icmp) = mip_fa::frame::parse_icmp(frame.payload).unwrap();
    assert_eq!((frame.dst, ip.dst, icmp[0], icmp[1]), (MN_MAC, HOME, 3, 4));
    assert_eq!(
        u16::from_be_bytes([icmp[6], icmp[7]]),
        1480,
        "RFC 2003 5.1: the MTU minus 20"
    );
}
