//! RFC 5944 section 3.7, Foreign Agent Considerations: 3.7, 3.7.1 and 3.7.2.x (requests).
//! Replies (3.7.3.x) are in `rfc5944_3_7_3.rs`. One test per rule, named after the
//! subsection; RFC-NOTES.md points at these names.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};

use common::*;
use mip_core::wire::{
    ext_type, Extension, RegistrationFlags, ReplyCode, VendorExtension, REQUEST_FIXED_LEN,
};
use mip_fa::{DiscardReason, FaEvent, FaTransmit, LinkDatagram, RemovalReason};

/// Bytes of the fixed part plus the Mobile-Home Authentication Extension.
const MH_END: usize = REQUEST_FIXED_LEN + 22;

#[test]
fn s3_7_fa_sends_nothing_when_a_visitor_lifetime_expires() {
    let mut fa = fa();
    register(&mut fa, t(0), RegistrationFlags::default(), 30);
    assert_eq!(fa.visitor_count(), 1);
    fa.handle_timeout(t(29));
    assert_eq!(fa.visitor_count(), 1, "not before its lifetime");
    fa.handle_timeout(t(30));
    assert_eq!(fa.visitor_count(), 0);
    assert!(
        fa.poll_transmit().is_none(),
        "3.7: MUST NOT generate a request or reply on expiry"
    );
    assert_eq!(
        fa.poll_event(),
        Some(FaEvent::VisitorRemoved {
            home_address: HOME,
            home_agent: HA,
            reason: RemovalReason::Expired
        })
    );
    assert_eq!(fa.stats().visitors_expired, 1);
}

#[test]
fn s3_7_1_visitor_entry_keeps_link_source_port_home_agent_identification_and_lifetimes() {
    let mut fa = fa();
    let r = register(&mut fa, t(0), RegistrationFlags::default(), 300);
    let v = fa.visitor(HOME).expect("visitor entry");
    assert_eq!(v.link_address, Some(MN_MAC));
    assert_eq!(v.source_port, MN_PORT);
    assert_eq!(v.home_agent, HA);
    assert_eq!(v.identification, r.identification);
    assert_eq!((v.requested_lifetime, v.granted_lifetime), (300, 300));
    assert_eq!(v.remaining(t(100)).as_secs(), 200);
    let snap = &fa.visitors(t(0))[0];
    assert_eq!(snap.link_address.as_deref(), Some("02:00:00:00:00:0a"));
    assert_eq!(snap.encapsulation, "ip-in-ip");
}

#[test]
fn s3_7_1_pending_limit_denies_new_nodes_with_66() {
    let mut c = config();
    c.max_pending = 1;
    let mut fa = fa_with(c);
    fa.handle_request(t(0), &link(), &request(&repr(t(0), 300), &[], &[]));
    let _ = relayed(&mut fa);
    let mut r2 = repr(t(0), 300);
    r2.home_address = HOME2;
    let mut l2 = link();
    l2.source = SocketAddrV4::new(HOME2, MN_PORT);
    l2.link_source = Some(MN2_MAC);
    fa.handle_request(t(0), &l2, &request(&r2, &[], &[]));
    let out = to_mn(&mut fa);
    assert_eq!(out.reply.code, ReplyCode::FaInsufficientResources);
    assert_eq!(out.link, Some(MN2_MAC));
    assert_eq!(fa.pending_count(), 1);
}

#[test]
fn s3_7_1_pending_request_times_out_after_7_seconds_with_78() {
    let mut fa = fa();
    let r = repr(t(0), 300);
    fa.handle_request(t(0), &link(), &request(&r, &[], &[]));
    let _ = relayed(&mut fa);
    assert_eq!(fa.poll_timeout(), Some(t(7)));
    fa.handle_timeout(t(6));
    assert!(fa.poll_transmit().is_none());
    fa.handle_timeout(t(7));
    let out = to_mn(&mut fa);
    assert_eq!(out.reply.code, ReplyCode::FaRegistrationTimeout);
    assert_eq!(out.reply.identification, r.identification);
    assert_eq!(fa.pending_count(), 0);
    assert_eq!(fa.stats().pending_timeouts, 1);
    // A late reply now matches nothing.
    fa.handle_reply(
        t(8),
        from_ha(),
        &reply_bytes(&ha_reply(&r, ReplyCode::Accepted, 300), None),
    );
    assert!(fa.poll_transmit().is_none());
    assert_eq!(fa.stats().discarded(DiscardReason::UnmatchedReply), 1);
}

#[test]
fn s3_7_1_relayed_request_carries_a_foreign_home_extension_when_we_share_an_association() {
    let mut fa = fa_with(with_ha_sa(config()));
    let bytes = request(&repr(t(0), 300), &[], &[]);
    fa.handle_request(t(0), &link(), &bytes);
    let (_, _, relayed) = relayed(&mut fa);
    assert_eq!(
        &relayed[..MH_END],
        &bytes[..],
        "3.7.2.2: unchanged through the Mobile-Home extension"
    );
    assert_auth_at(&relayed, MH_END, ext_type::FOREIGN_HOME_AUTH, &fa_ha_sa());
}

#[test]
fn s3_7_1_node_sharing_an_association_must_send_one_valid_mobile_foreign_extension() {
    let mut fa = fa_with(with_mn_sa(config()));
    // Missing.
    fa.handle_request(t(0), &link(), &request(&repr(t(0), 300), &[], &[]));
    assert_eq!(denial(&mut fa), ReplyCode::FaMobileNodeFailedAuthentication);
    // Wrong key (a second later: one denial per second).
    let mut wrong = mn_fa_sa();
    wrong.key = b"not the mn-fa key".to_vec();
    fa.handle_request(t(1), &link(), &request_with_mf(&repr(t(1), 300), &wrong));
    assert_eq!(denial(&mut fa), ReplyCode::FaMobileNodeFailedAuthentication);
    // Twice.
    let mut twice = request_with_mf(&repr(t(2), 300), &mn_fa_sa());
    mip_core::auth::append_auth_extension(&mut twice, ext_type::MOBILE_FOREIGN_AUTH, &mn_fa_sa());
    fa.handle_request(t(2), &link(), &twice);
    assert_eq!(denial(&mut fa), ReplyCode::FaMobileNodeFailedAuthentication);
    assert_eq!(fa.stats().mobile_node_authentication_failures, 3);
    assert_eq!(fa.pending_count(), 0);
    // Valid: relayed without the Mobile-Foreign extension.
    let good = request_with_mf(&repr(t(3), 300), &mn_fa_sa());
    fa.handle_request(t(3), &link(), &good);
    let (_, _, relayed) = relayed(&mut fa);
    assert_eq!(relayed, good[..MH_END].to_vec());
}

#[test]
fn s3_7_1_zero_home_address_with_nai_is_relayed_and_its_reply_matched_by_nai() {
    let mut fa = fa();
    let mut r = repr(t(0), 300);
    r.home_address = Ipv4Addr::UNSPECIFIED;
    let mut l = link();
    l.source = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, MN_PORT);
    fa.handle_request(
        t(0),
        &l,
        &request(&r, &[Extension::Nai(NAI.as_bytes())], &[]),
    );
    let _ = relayed(&mut fa);
    // The home agent assigns HOME and echoes the NAI before its authenticator.
    let mut rep = ha_reply(&r, ReplyCode::Accepted, 300).to_bytes();
    rep[4..8].copy_from_slice(&HOME.octets());
    Extension::Nai(NAI.as_bytes()).append_to(&mut rep).unwrap();
    mip_core::auth::append_auth_extension(&mut rep, ext_type::MOBILE_HOME_AUTH, &mn_ha_sa());
    fa.handle_reply(t(0), from_ha(), &rep);
    let out = to_mn(&mut fa);
    assert_eq!(out.reply.home_address, HOME);
    assert_eq!(
        out.destination,
        SocketAddrV4::new(HOME, MN_PORT),
        "3.7.2.3: the reply's home address"
    );
    assert_eq!(out.link, Some(MN_MAC));
    assert!(fa.visitor(HOME).is_some());
}

#[test]
fn s3_7_1_zero_home_address_without_nai_is_97_and_when_refused_96() {
    let mut fa = fa();
    let mut r = repr(t(0), 300);
    r.home_address = Ipv4Addr::UNSPECIFIED;
    fa.handle_request(t(0), &link(), &request(&r, &[], &[]));
    let out = to_mn(&mut fa);
    assert_eq!(out.reply.code, ReplyCode::FaMissingNai);
    assert_eq!(
        *out.destination.ip(),
        Ipv4Addr::BROADCAST,
        "3.7.2.3: no home address: broadcast"
    );
    let mut c = config();
    c.allow_zero_home_address = false;
    let mut fa = fa_with(c);
    fa.handle_request(
        t(0),
        &link(),
        &request(&r, &[Extension::Nai(NAI.as_bytes())], &[]),
    );
    assert_eq!(denial(&mut fa), ReplyCode::FaNonZeroHomeAddressRequired);
}

#[test]
fn s3_7_2_home_agent_address_of_ours_is_denied_194() {
    let mut fa = fa();
    let mut r = repr(t(0), 300);
    r.home_agent = COA;
    fa.handle_request(t(0), &link(), &request(&r, &[], &[]));
    assert_eq!(denial(&mut fa), ReplyCode::FaInvalidHomeAgentAddress);
}

#[test]
fn s3_7_2_new_request_of_a_visitor_changes_nothing_until_its_reply() {
    let mut fa = fa();
    register(&mut fa, t(0), RegistrationFlags::default(), 300);
    // A new registration with T, then a denial from the home agent.
    let mut r = repr(t(10), 300);
    r.flags = RegistrationFlags::default().with(RegistrationFlags::T);
    fa.handle_request(t(10), &link(), &request(&r, &[], &[]));
    let _ = relayed(&mut fa);
    assert!(
        !fa.visitor(HOME).unwrap().reverse_tunnel(),
        "pending: the entry is unchanged"
    );
    fa.handle_reply(
        t(10),
        from_ha(),
        &reply_bytes(&ha_reply(&r, ReplyCode::ReverseTunnelUnavailable, 0), None),
    );
    assert_eq!(
        to_mn(&mut fa).reply.code,
        ReplyCode::ReverseTunnelUnavailable
    );
    let v = fa
        .visitor(HOME)
        .expect("3.7.2: a denial leaves the visitor entry");
    assert!(!v.reverse_tunnel());
    assert_eq!(v.remaining(t(10)).as_secs(), 290);
    assert!(fa.poll_event().is_none());
}

#[test]
fn s3_7_2_at_most_one_denial_per_second_to_the_same_node() {
    let mut fa = fa();
    let r = repr(t(0), 9999);
    for ms in [0, 300, 999] {
        fa.handle_request(t_ms(ms), &link(), &request(&r, &[], &[]));
    }
    assert_eq!(denial(&mut fa), ReplyCode::FaLifetimeTooLong);
    assert_eq!(fa.stats().discarded(DiscardReason::DenialRateLimited), 2);
    fa.handle_request(t_ms(1000), &link(), &request(&r, &[], &[]));
    assert_eq!(denial(&mut fa), ReplyCode::FaLifetimeTooLong);
    assert_eq!(fa.stats().denied(69), 2);
}

#[test]
fn s3_7_2_1_nonzero_reserved_bits_are_denied_70() {
    for bit in [RegistrationFlags::R_RESERVED, RegistrationFlags::X] {
        let mut fa = fa();
        let mut r = repr(t(0), 300);
        r.flags = RegistrationFlags::default().with(bit);
        fa.handle_request(t(0), &link(), &request(&r, &[], &[]));
        assert_eq!(
            denial(&mut fa),
            ReplyCode::FaPoorlyFormedRequest,
            "flag {bit:#04x}"
        );
    }
}

#[test]
fn s3_7_2_1_care_of_address_not_ours_is_denied_77_unless_d_or_deregistration() {
    let mut fa = fa();
    let mut r = repr(t(0), 300);
    r.care_of_address = OTHER_COA;
    fa.handle_request(t(0), &link(), &request(&r, &[], &[]));
    assert_eq!(denial(&mut fa), ReplyCode::FaInvalidCareOfAddress);
    // Co-located care-of address (R bit policy): relayed, without Foreign-Home auth.
    let mut fa = fa_with(with_ha_sa(config()));
    r.flags = RegistrationFlags::default().with(RegistrationFlags::D);
    let bytes = request(&r, &[], &[]);
    fa.handle_request(t(0), &link(), &bytes);
    let (_, _, sent) = relayed(&mut fa);
    assert_eq!(
        sent, bytes,
        "3.5.4: no Foreign-Home extension for a care-of address we did not offer"
    );
    // Lifetime 0: relayed.
    let mut d = repr(t(1), 0);
    d.care_of_address = OTHER_COA;
    fa.handle_request(t(1), &link(), &request(&d, &[], &[]));
    let _ = relayed(&mut fa);
}

#[test]
fn s3_7_2_1_malformed_extensions_are_denied_70_and_no_mobile_home_extension_too() {
    let mut fa = fa();
    let mut bytes = repr(t(0), 300).to_bytes();
    bytes.extend_from_slice(&[ext_type::NAI, 200, b'x']);
    fa.handle_request(t(0), &link(), &bytes);
    assert_eq!(denial(&mut fa), ReplyCode::FaPoorlyFormedRequest);
    fa.handle_request(t(2), &link(), &repr(t(2), 300).to_bytes());
    assert_eq!(denial(&mut fa), ReplyCode::FaPoorlyFormedRequest);
    assert_eq!(fa.stats().denied(70), 2);
}

#[test]
fn s3_7_2_1_unknown_critical_extension_after_the_authenticator_is_dropped_silently() {
    let mut fa = fa();
    let bytes = request(
        &repr(t(0), 300),
        &[],
        &[Extension::Unknown {
            ext_type: 99,
            data: &[1, 2],
        }],
    );
    fa.handle_request(t(0), &link(), &bytes);
    assert!(fa.poll_transmit().is_none());
    assert_eq!(fa.stats().discarded(DiscardReason::UnknownExtension), 1);
    // One that the home agent must judge (before the authenticator) is relayed.
    let bytes = request(
        &repr(t(1), 300),
        &[Extension::Unknown {
            ext_type: 99,
            data: &[1, 2],
        }],
        &[],
    );
    fa.handle_request(t(1), &link(), &bytes);
    assert_eq!(relayed(&mut fa).2, bytes);
}

#[test]
fn s3_7_2_2_relay_is_byte_identical_through_the_authenticator_and_strips_what_follows() {
    let mut fa = fa();
    let nai = Extension::Nai(NAI.as_bytes());
    let nvse = Extension::NormalVendor(VendorExtension {
        org_id: 32473,
        vendor_type: 1,
        value: b"fa",
    });
    let skippable = Extension::Unknown {
        ext_type: 200,
        data: b"for the fa",
    };
    let bytes = request(&repr(t(0), 300), &[nai], &[nvse, skippable]);
    let mh_end = REQUEST_FIXED_LEN + nai.buffer_len() + 22;
    fa.handle_request(t(0), &link(), &bytes);
    let (source, destination, relayed) = relayed(&mut fa);
    assert_eq!(source, COA, "IP source: our care-of address");
    assert_eq!(
        destination,
        SocketAddrV4::new(HA, 434),
        "IP destination: the Home Agent field, port 434"
    );
    assert_eq!(relayed, bytes[..mh_end].to_vec());
    assert_eq!(fa.stats().requests_relayed, 1);
}

#[test]
fn s3_7_2_2_deregistration_is_relayed_without_foreign_home_extension() {
    let mut fa = fa_with(with_ha_sa(config()));
    let bytes = request(&repr(t(0), 0), &[], &[]);
    fa.handle_request(t(0), &link(), &bytes);
    assert_eq!(
        relayed(&mut fa).2,
        bytes,
        "3.5.4: MUST NOT be applied to deregistrations"
    );
}

#[test]
fn s3_7_2_2_pending_entry_dies_silently_when_its_requested_lifetime_runs_out_first() {
    let mut fa = fa();
    fa.handle_request(t(0), &link(), &request(&repr(t(0), 3), &[], &[]));
    let _ = relayed(&mut fa);
    assert_eq!(fa.poll_timeout(), Some(t(3)));
    fa.handle_timeout(t(3));
    assert_eq!(fa.pending_count(), 0);
    assert!(fa.poll_transmit().is_none());
    assert_eq!(fa.stats().pending_expired, 1);
}

#[test]
fn s3_7_2_2_retransmission_is_relayed_again_and_a_new_identification_replaces_the_pending_one() {
    let mut fa = fa();
    // Mobile nodes put random bits in the low half (RFC 5944 5.7.1).
    let mut r = repr(t(0), 300);
    r.identification |= 0x1111;
    let bytes = request(&r, &[], &[]);
    fa.handle_request(t(0), &link(), &bytes);
    let first = relayed(&mut fa).2;
    fa.handle_request(t(1), &link(), &bytes);
    assert_eq!(relayed(&mut fa).2, first, "relayed again, unchanged");
    assert_eq!(
        (fa.stats().retransmissions_relayed, fa.pending_count()),
        (1, 1)
    );
    let mut r2 = repr(t(2), 300);
    r2.identification |= 0x2222;
    fa.handle_request(t(2), &link(), &request(&r2, &[], &[]));
    let _ = fa.poll_transmit();
    assert_eq!((fa.pending_count(), fa.stats().pending_replaced), (1, 1));
    // The old reply no longer matches; the new one does.
    fa.handle_reply(
        t(2),
        from_ha(),
        &reply_bytes(&ha_reply(&r, ReplyCode::Accepted, 300), None),
    );
    assert!(fa.poll_transmit().is_none());
    fa.handle_reply(
        t(2),
        from_ha(),
        &reply_bytes(&ha_reply(&r2, ReplyCode::Accepted, 300), None),
    );
    assert_eq!(to_mn(&mut fa).reply.identification, r2.identification);
}

#[test]
fn s3_7_2_3_lifetime_too_long_is_denied_69_with_our_maximum_byte_for_byte() {
    let mut fa = fa();
    let r = repr(t(0), 601);
    fa.handle_request(t(0), &link(), &request(&r, &[], &[]));
    let out = to_mn(&mut fa);
    let mut expected = vec![3, 69, 0x02, 0x58];
    expected.extend_from_slice(&HOME.octets());
    expected.extend_from_slice(&HA.octets());
    expected.extend_from_slice(&r.identification.to_be_bytes());
    assert_eq!(
        out.payload, expected,
        "type 3, code 69, lifetime 600, fields copied, no extension"
    );
    assert_eq!(
        out.source,
        SocketAddrV4::new(COA, 434),
        "IP source: the request's destination; port 434"
    );
    assert_eq!(
        out.destination,
        SocketAddrV4::new(HOME, MN_PORT),
        "to the home address, the request's port"
    );
    assert_eq!(
        out.link,
        Some(MN_MAC),
        "to the link-layer source of the request"
    );
}

#[test]
fn s3_7_2_3_other_denials_copy_the_requested_lifetime() {
    let mut c = config();
    c.gre_encapsulation = false;
    let mut fa = fa_with(c);
    let mut r = repr(t(0), 300);
    r.flags = RegistrationFlags::default().with(RegistrationFlags::G);
    fa.handle_request(t(0), &link(), &request(&r, &[], &[]));
    let out = to_mn(&mut fa);
    assert_eq!(out.reply.code, ReplyCode::FaEncapsulationUnavailable);
    assert_eq!(out.reply.lifetime, 300);
}

#[test]
fn s3_7_2_3_request_to_all_mobility_agents_is_answered_from_the_care_of_address() {
    let mut fa = fa();
    let l = LinkDatagram {
        destination: Ipv4Addr::new(224, 0, 0, 11),
        ..link()
    };
    fa.handle_request(t(0), &l, &request(&repr(t(0), 9999), &[], &[]));
    assert_eq!(to_mn(&mut fa).source, SocketAddrV4::new(COA, 434));
    // A relayed reply follows the same rule.
    fa.handle_request(t(2), &l, &request(&repr(t(2), 300), &[], &[]));
    let _ = relayed(&mut fa);
    fa.handle_reply(
        t(2),
        from_ha(),
        &reply_bytes(&ha_reply(&repr(t(2), 300), ReplyCode::Accepted, 300), None),
    );
    assert_eq!(to_mn(&mut fa).source, SocketAddrV4::new(COA, 434));
}

#[test]
fn s3_7_2_3_missing_home_agent_is_98_busy_is_66_and_critical_vendor_is_100() {
    let mut fa = fa();
    let mut r = repr(t(0), 300);
    r.home_agent = Ipv4Addr::UNSPECIFIED;
    fa.handle_request(t(0), &link(), &request(&r, &[], &[]));
    assert_eq!(denial(&mut fa), ReplyCode::FaMissingHomeAgent);
    let cvse = Extension::CriticalVendor(VendorExtension {
        org_id: 32473,
        vendor_type: 7,
        value: b"?",
    });
    fa.handle_request(t(2), &link(), &request(&repr(t(2), 300), &[], &[cvse]));
    assert_eq!(denial(&mut fa), ReplyCode::FaUnsupportedVendorId);
    let mut c = config();
    c.busy = true;
    let mut fa = fa_with(c);
    fa.handle_request(t(0), &link(), &request(&repr(t(0), 300), &[], &[]));
    assert_eq!(denial(&mut fa), ReplyCode::FaInsufficientResources);
}

#[test]
fn s3_7_2_resource_limits_refuse_new_nodes_only() {
    let mut c = config();
    c.max_visitors = 1;
    let mut fa = fa_with(c);
    register(&mut fa, t(0), RegistrationFlags::default(), 300);
    // The current visitor re-registers: relayed.
    fa.handle_request(t(10), &link(), &request(&repr(t(10), 300), &[], &[]));
    let _ = relayed(&mut fa);
    // A new node past max_visitors: 66.
    let mut r2 = repr(t(10), 300);
    r2.home_address = HOME2;
    let l2 = LinkDatagram {
        source: SocketAddrV4::new(HOME2, MN_PORT),
        link_source: Some(MN2_MAC),
        ..link()
    };
    fa.handle_request(t(10), &l2, &request(&r2, &[], &[]));
    assert_eq!(denial(&mut fa), ReplyCode::FaInsufficientResources);
}

#[test]
fn s3_7_fa_relays_only_requests_and_sends_replies_only_to_mobile_nodes() {
    let mut fa = fa();
    register(&mut fa, t(0), RegistrationFlags::default(), 300);
    fa.handle_request(t(1), &link(), &request(&repr(t(1), 0), &[], &[]));
    match take_one(&mut fa) {
        FaTransmit::ToHomeAgent { payload, .. } => {
            assert_eq!(payload[0], 1, "a request goes to the home agent")
        }
        other => panic!("{other:?}"),
    }
    fa.handle_reply(
        t(1),
        from_ha(),
        &reply_bytes(&ha_reply(&repr(t(1), 0), ReplyCode::Accepted, 0), None),
    );
    match take_one(&mut fa) {
        FaTransmit::ToMobileNode { payload, .. } => {
            assert_eq!(payload[0], 3, "a reply goes to the node")
        }
        other => panic!("{other:?}"),
    }
}
