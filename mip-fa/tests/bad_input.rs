//! Bad input from the network: whatever arrives, the foreign agent and its data plane
//! never panic, count what they dropped, and keep serving valid mobile nodes.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use mip_core::dataplane::Encapsulation;
use mip_core::wire::{Extension, RegistrationFlags, ReplyCode};
use mip_fa::forwarder::{LinkVerdict, TunnelVerdict, BUFFER_LEN};
use mip_fa::{DiscardReason, ForeignAgent, IcmpErrorKind};
use proptest::prelude::*;

/// A valid node still gets relayed and registered afterwards.
fn still_serves(fa: &mut ForeignAgent, secs: u64) {
    while fa.poll_transmit().is_some() {}
    let mut r = repr(t(secs), 300);
    r.identification |= 0xabcd;
    fa.handle_request(t(secs), &link(), &request(&r, &[], &[]));
    let _ = relayed(fa);
    fa.handle_reply(
        t(secs),
        from_ha(),
        &reply_bytes(&ha_reply(&r, ReplyCode::Accepted, 300), None),
    );
    assert_eq!(to_mn(fa).reply.code, ReplyCode::Accepted);
}

#[test]
fn truncated_requests_and_replies_and_other_types_are_counted() {
    let mut fa = fa();
    let good = request(&repr(t(0), 300), &[], &[]);
    fa.handle_request(t(0), &link(), &good[..23]);
    fa.handle_request(t(0), &link(), &[]);
    fa.handle_request(t(0), &link(), &[3; 40]);
    fa.handle_reply(t(0), from_ha(), &[3; 19]);
    fa.handle_reply(t(0), from_ha(), &[1; 40]);
    assert!(fa.poll_transmit().is_none());
    let s = fa.stats();
    assert_eq!(s.discarded(DiscardReason::TruncatedRequest), 1);
    assert_eq!(s.discarded(DiscardReason::NotRegistrationMessage), 3);
    assert_eq!(s.discarded(DiscardReason::MalformedReply), 1);
    assert_eq!(s.datagrams, 5);
    still_serves(&mut fa, 1);
}

#[test]
fn handle_datagram_dispatches_requests_and_replies() {
    let mut fa = fa();
    let r = repr(t(0), 300);
    fa.handle_datagram(t(0), link().source, &request(&r, &[], &[]));
    let _ = relayed(&mut fa);
    fa.handle_datagram(
        t(0),
        from_ha(),
        &reply_bytes(&ha_reply(&r, ReplyCode::Accepted, 300), None),
    );
    let out = to_mn(&mut fa);
    assert_eq!(out.link, None, "no link-layer source was given");
    assert_eq!(fa.visitor_count(), 1);
}

#[test]
fn thousands_of_denials_to_spoofed_sources_stay_bounded() {
    let mut fa = fa();
    for i in 0..10_000u32 {
        let mut r = repr(t(0), 9999);
        r.home_address = std::net::Ipv4Addr::from(0xc612_0000 | i);
        fa.handle_request(t(0), &link(), &request(&r, &[], &[]));
    }
    let sent = std::iter::from_fn(|| fa.poll_transmit()).count() as u64;
    let limited = fa.stats().discarded(DiscardReason::DenialRateLimited);
    assert_eq!(sent + limited, 10_000);
    assert!(sent <= 4096, "the denial table is bounded");
    fa.handle_timeout(t(2));
    still_serves(&mut fa, 2);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn arbitrary_requests_never_panic_nor_create_visitors(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut fa = fa_with(with_mn_sa(with_ha_sa(config())));
        fa.handle_request(t(0), &link(), &bytes);
        prop_assert_eq!(fa.visitor_count(), 0);
        prop_assert_eq!(fa.stats().datagrams, 1);
    }

    #[test]
    fn arbitrary_replies_never_panic_and_unmatched_ones_change_nothing(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut fa = fa_with(with_ha_sa(config()));
        let r = repr(t(0), 300);
        fa.handle_request(t(0), &link(), &request(&r, &[], &[]));
        let _ = relayed(&mut fa);
        fa.handle_reply(t(0), from_ha(), &bytes);
        fa.handle_icmp_error(t(0), HA, &bytes, IcmpErrorKind::Other);
        prop_assert_eq!(fa.visitor_count(), 0, "without the FA-HA key nothing is accepted");
    }

    #[test]
    fn mutated_requests_never_panic_and_valid_nodes_are_still_served(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut fa = fa();
        let mut bytes = request(&repr(t(0), 300), &[Extension::Nai(NAI.as_bytes())], &[]);
        for (pos, value) in edits {
            let n = bytes.len();
            bytes[pos % n] = value;
        }
        let n = bytes.len();
        bytes.truncate(cut % (n + 1));
        fa.handle_request(t(0), &link(), &bytes);
        while fa.poll_transmit().is_some() {}
        fa.handle_timeout(t(10));
        still_serves(&mut fa, 10);
    }

    #[test]
    fn arbitrary_solicitations_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut fa = fa();
        fa.handle_solicitation(t(0), HOME, Some(MN_MAC), &bytes);
        let answered = fa.poll_advertisement().is_some();
        prop_assert_eq!(answered, fa.stats().solicitations == 1);
    }

    #[test]
    fn arbitrary_tunnel_and_link_packets_never_panic_and_every_drop_is_counted(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        proto in prop::sample::select(vec![4u8, 47, 55, 17]),
    ) {
        let mut f = forwarder(visitor(Encapsulation::IpInIp, true));
        // Give the garbage a plausible outer header half of the time.
        let mut pkt = bytes.clone();
        if pkt.len() >= 20 && pkt[0] & 1 == 0 {
            pkt[0] = 0x45;
            pkt[9] = proto;
            let n = pkt.len() as u16;
            pkt[2..4].copy_from_slice(&n.to_be_bytes());
            pkt[12..16].copy_from_slice(&HA.octets());
            pkt[16..20].copy_from_slice(&COA.octets());
            mip_core::dataplane::ipv4::fill_checksum(&mut pkt, 20).unwrap();
        }
        let mut out = vec![0u8; BUFFER_LEN];
        let before = f.stats().dropped.values().sum::<u64>();
        let v = f.from_tunnel(&pkt, &mut out);
        let after = f.stats().dropped.values().sum::<u64>();
        prop_assert_eq!(matches!(v, TunnelVerdict::Dropped(_)), after == before + 1);
        let v = f.from_link(MN_MAC, &pkt, &mut out);
        if let LinkVerdict::ReverseTunnel { len, .. } = v {
            prop_assert!(len <= out.len());
        }
    }
}

#[test]
fn a_visitor_registered_without_t_is_routed_not_tunnelled() {
    let mut fa = fa();
    register(&mut fa, t(0), RegistrationFlags::default(), 300);
    assert!(!fa.visitor(HOME).unwrap().reverse_tunnel());
}
