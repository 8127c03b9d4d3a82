//! RFC 5944 section 3.7.3, Receiving Registration Replies (3.7.3, 3.7.3.1, 3.7.3.2).
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddrV4;

use common::*;
use mip_core::auth::append_auth_extension;
use mip_core::dataplane::Encapsulation;
use mip_core::wire::{
    ext_type, Extension, RegistrationFlags, ReplyCode, VendorExtension, REPLY_FIXED_LEN,
};
use mip_fa::{DeliveryStyle, DiscardReason, FaEvent, IcmpErrorKind, RemovalReason};

const MH_END: usize = REPLY_FIXED_LEN + 22;

fn relay_one(
    fa: &mut mip_fa::ForeignAgent,
    lifetime: u16,
) -> mip_core::wire::RegistrationRequestRepr {
    let r = repr(t(0), lifetime);
    fa.handle_request(t(0), &link(), &request(&r, &[], &[]));
    let _ = relayed(fa);
    r
}

#[test]
fn s3_7_3_icmp_errors_about_a_relayed_request_are_answered_80_81_82_88() {
    for (icmp_type, code, expected) in [
        (3, 0, ReplyCode::FaHomeNetworkUnreachable),
        (3, 1, ReplyCode::FaHomeAgentHostUnreachable),
        (3, 3, ReplyCode::FaHomeAgentPortUnreachable),
        (3, 13, ReplyCode::FaHomeAgentUnreachable),
        (11, 0, ReplyCode::FaHomeAgentUnreachable),
    ] {
        let mut fa = fa();
        let r = repr(t(0), 300);
        fa.handle_request(t(0), &link(), &request(&r, &[], &[]));
        let (_, to, sent) = relayed(&mut fa);
        fa.handle_icmp_error(
            t(1),
            *to.ip(),
            &sent,
            IcmpErrorKind::from_icmp(icmp_type, code),
        );
        let out = to_mn(&mut fa);
        assert_eq!(out.reply.code, expected, "ICMP {icmp_type}/{code}");
        assert_eq!(
            out.reply.identification, r.identification,
            "3.7.2.3: fields copied from the request"
        );
        assert_eq!(out.link, Some(MN_MAC));
        assert_eq!(fa.pending_count(), 0);
        assert_eq!(fa.stats().icmp_errors, 1);
    }
}

#[test]
fn s3_7_3_icmp_error_for_something_we_did_not_relay_is_ignored() {
    let mut fa = fa();
    let r = relay_one(&mut fa, 300);
    let mut other = r;
    other.identification ^= 1;
    fa.handle_icmp_error(
        t(1),
        HA,
        &request(&other, &[], &[]),
        IcmpErrorKind::PortUnreachable,
    );
    fa.handle_icmp_error(t(1), HA, &[1, 2, 3], IcmpErrorKind::PortUnreachable);
    assert!(fa.poll_transmit().is_none());
    assert_eq!(fa.stats().discarded(DiscardReason::UnmatchedIcmpError), 2);
    assert_eq!(fa.pending_count(), 1);
}

#[test]
fn s3_7_3_1_reply_for_another_home_address_or_low_identification_is_discarded() {
    let mut fa = fa();
    let r = relay_one(&mut fa, 300);
    let mut wrong_home = ha_reply(&r, ReplyCode::Accepted, 300);
    wrong_home.home_address = HOME2;
    fa.handle_reply(t(1), from_ha(), &reply_bytes(&wrong_home, None));
    let mut wrong_id = ha_reply(&r, ReplyCode::Accepted, 300);
    wrong_id.identification ^= 0x8000_0000;
    fa.handle_reply(t(1), from_ha(), &reply_bytes(&wrong_id, None));
    assert!(fa.poll_transmit().is_none());
    assert_eq!(fa.stats().discarded(DiscardReason::UnmatchedReply), 2);
    assert_eq!(fa.pending_count(), 1, "still waiting for the right reply");
}

#[test]
fn s3_7_3_1_only_the_low_32_bits_of_the_identification_must_match() {
    // A home agent using nonces (or resynchronising a timestamp) changes the high half.
    let mut fa = fa();
    let r = relay_one(&mut fa, 300);
    let mut rep = ha_reply(&r, ReplyCode::IdentificationMismatch, 0);
    rep.identification = (0xdead_beef_u64 << 32) | (r.identification & 0xffff_ffff);
    fa.handle_reply(t(1), from_ha(), &reply_bytes(&rep, None));
    let out = to_mn(&mut fa);
    assert_eq!(out.reply.code, ReplyCode::IdentificationMismatch);
    assert_eq!(
        out.reply.identification, rep.identification,
        "relayed unchanged"
    );
}

#[test]
fn s3_7_3_1_missing_repeated_or_bad_foreign_home_authentication_is_denied_68() {
    let mut wrong = fa_ha_sa();
    wrong.key = b"not the fa-ha key".to_vec();
    type Build = Box<dyn Fn(&mip_core::wire::RegistrationReplyRepr) -> Vec<u8>>;
    let cases: Vec<(&str, Build)> = vec![
        ("missing", Box::new(|rep| reply_bytes(rep, None))),
        (
            "wrong key",
            Box::new(move |rep| reply_bytes(rep, Some(&wrong))),
        ),
        (
            "twice",
            Box::new(|rep| {
                let mut b = reply_bytes(rep, Some(&fa_ha_sa()));
                append_auth_extension(&mut b, ext_type::FOREIGN_HOME_AUTH, &fa_ha_sa());
                b
            }),
        ),
    ];
    for (what, build) in cases {
        let mut fa = fa_with(with_ha_sa(config()));
        let r = relay_one(&mut fa, 300);
        fa.handle_reply(
            t(1),
            from_ha(),
            &build(&ha_reply(&r, ReplyCode::Accepted, 300)),
        );
        let out = to_mn(&mut fa);
        assert_eq!(
            out.reply.code,
            ReplyCode::FaHomeAgentFailedAuthentication,
            "{what}"
        );
        assert_eq!(
            out.reply.identification, r.identification,
            "{what}: our own denial, request fields"
        );
        assert_eq!(
            fa.visitor_count(),
            0,
            "{what}: the registration is rejected"
        );
        assert!(fa.poll_event().is_none());
        assert_eq!(fa.stats().home_agent_authentication_failures, 1);
    }
}

#[test]
fn s3_7_3_1_deregistration_reply_without_foreign_home_extension_is_relayed() {
    let mut fa = fa_with(with_ha_sa(config()));
    register(&mut fa, t(0), RegistrationFlags::default(), 300);
    let r = repr(t(5), 0);
    fa.handle_request(t(5), &link(), &request(&r, &[], &[]));
    let _ = relayed(&mut fa);
    fa.handle_reply(
        t(5),
        from_ha(),
        &reply_bytes(&ha_reply(&r, ReplyCode::Accepted, 0), None),
    );
    assert_eq!(to_mn(&mut fa).reply.code, ReplyCode::Accepted);
    assert_eq!(fa.visitor_count(), 0);
}

#[test]
fn s3_7_3_2_accepted_reply_is_relayed_unchanged_and_creates_the_visitor() {
    let mut fa = fa_with(with_ha_sa(config()));
    let mut r = repr(t(0), 300);
    r.flags = RegistrationFlags::default()
        .with(RegistrationFlags::G)
        .with(RegistrationFlags::T);
    fa.handle_request(t(0), &link(), &request(&r, &[], &[]));
    let _ = relayed(&mut fa);
    let nvse = Extension::NormalVendor(VendorExtension {
        org_id: 32473,
        vendor_type: 2,
        value: b"ha",
    });
    let mut bytes = reply_bytes(&ha_reply(&r, ReplyCode::Accepted, 200), Some(&fa_ha_sa()));
    nvse.append_to(&mut bytes).unwrap();
    fa.handle_reply(t(1), from_ha(), &bytes);
    let out = to_mn(&mut fa);
    assert_eq!(
        out.payload,
        bytes[..MH_END].to_vec(),
        "through the Mobile-Home extension, the rest removed"
    );
    assert_eq!(out.source, SocketAddrV4::new(COA, 434));
    assert_eq!(out.destination, SocketAddrV4::new(HOME, MN_PORT));
    assert_eq!(out.link, Some(MN_MAC));
    assert_eq!(
        fa.poll_event(),
        Some(FaEvent::VisitorAdded {
            home_address: HOME,
            home_agent: HA,
            care_of_address: COA,
            mac: Some(MN_MAC),
            reverse_tunnel: true,
            encapsulation: Encapsulation::Gre,
            delivery: DeliveryStyle::Direct,
            lifetime: 200,
        })
    );
    // The lifetime starts when the reply is forwarded (t = 1).
    assert_eq!(fa.visitor(HOME).unwrap().remaining(t(101)).as_secs(), 100);
    assert_eq!(fa.stats().relayed_with(0), 1);
}

#[test]
fn s3_7_3_2_visitor_lifetime_is_capped_at_our_maximum() {
    let mut fa = fa();
    let r = relay_one(&mut fa, 600);
    fa.handle_reply(
        t(0),
        from_ha(),
        &reply_bytes(&ha_reply(&r, ReplyCode::Accepted, 0xffff), None),
    );
    assert_eq!(
        to_mn(&mut fa).reply.lifetime,
        0xffff,
        "the reply itself is not modified"
    );
    assert_eq!(fa.visitor(HOME).unwrap().granted_lifetime, 600);
}

#[test]
fn s3_7_3_2_mobile_foreign_extension_is_appended_for_a_node_we_share_an_association_with() {
    let mut fa = fa_with(with_mn_sa(config()));
    let r = repr(t(0), 300);
    fa.handle_request(t(0), &link(), &request_with_mf(&r, &mn_fa_sa()));
    let _ = relayed(&mut fa);
    let bytes = reply_bytes(&ha_reply(&r, ReplyCode::Accepted, 300), None);
    fa.handle_reply(t(0), from_ha(), &bytes);
    let out = to_mn(&mut fa);
    assert_eq!(&out.payload[..MH_END], &bytes[..]);
    assert_auth_at(
        &out.payload,
        MH_END,
        ext_type::MOBILE_FOREIGN_AUTH,
        &mn_fa_sa(),
    );
}

#[test]
fn s3_7_3_2_accepted_deregistration_deletes_the_visitor() {
    let mut fa = fa();
    register(&mut fa, t(0), RegistrationFlags::default(), 300);
    let r = repr(t(5), 0);
    fa.handle_request(t(5), &link(), &request(&r, &[], &[]));
    let _ = relayed(&mut fa);
    assert!(fa.visitor(HOME).is_some(), "3.7.2: kept until the reply");
    fa.handle_reply(
        t(5),
        from_ha(),
        &reply_bytes(&ha_reply(&r, ReplyCode::Accepted, 0), None),
    );
    let _ = to_mn(&mut fa);
    assert_eq!(
        fa.poll_event(),
        Some(FaEvent::VisitorRemoved {
            home_address: HOME,
            home_agent: HA,
            reason: RemovalReason::Deregistered
        })
    );
    assert_eq!(fa.visitor_count(), 0);
}

#[test]
fn s3_7_3_2_home_agent_denial_is_relayed_and_creates_no_visitor() {
    let mut fa = fa();
    let r = relay_one(&mut fa, 300);
    let bytes = reply_bytes(
        &ha_reply(&r, ReplyCode::MobileNodeFailedAuthentication, 0),
        None,
    );
    fa.handle_reply(t(0), from_ha(), &bytes);
    let out = to_mn(&mut fa);
    assert_eq!(out.payload, bytes);
    assert_eq!(fa.visitor_count(), 0);
    assert_eq!(fa.pending_count(), 0);
    assert_eq!(fa.stats().relayed_with(131), 1);
}

#[test]
fn s3_7_3_2_refresh_keeps_the_data_plane_entry_and_a_change_updates_it() {
    let mut fa = fa();
    register(&mut fa, t(0), RegistrationFlags::default(), 300);
    let r = repr(t(100), 300);
    fa.handle_request(t(100), &link(), &request(&r, &[], &[]));
    let _ = relayed(&mut fa);
    fa.handle_reply(
        t(100),
        from_ha(),
        &reply_bytes(&ha_reply(&r, ReplyCode::Accepted, 300), None),
    );
    let _ = to_mn(&mut fa);
    assert_eq!(
        fa.poll_event(),
        Some(FaEvent::VisitorRefreshed {
            home_address: HOME,
            lifetime: 300
        })
    );
    // Same node, now from another station: the data plane must learn the new MAC.
    let mut r = repr(t(200), 300);
    r.identification |= 5;
    let l = mip_fa::LinkDatagram {
        link_source: Some(MN2_MAC),
        ..link()
    };
    fa.handle_request(t(200), &l, &request(&r, &[], &[]));
    let _ = relayed(&mut fa);
    fa.handle_reply(
        t(200),
        from_ha(),
        &reply_bytes(&ha_reply(&r, ReplyCode::Accepted, 300), None),
    );
    let _ = to_mn(&mut fa);
    assert!(matches!(
        fa.poll_event(),
        Some(FaEvent::VisitorAdded {
            mac: Some(MN2_MAC),
            ..
        })
    ));
    assert_eq!(fa.stats().visitors_added, 1);
}

#[test]
fn s3_7_3_2_poorly_formed_reply_is_answered_71() {
    let mut fa = fa();
    let r = relay_one(&mut fa, 300);
    // The extension length points past the end.
    let mut bytes = ha_reply(&r, ReplyCode::Accepted, 300).to_bytes();
    bytes.extend_from_slice(&[ext_type::MOBILE_HOME_AUTH, 200, 0, 0]);
    fa.handle_reply(t(0), from_ha(), &bytes);
    assert_eq!(denial(&mut fa), ReplyCode::FaPoorlyFormedReply);
    // No Mobile-Home extension at all.
    let r = repr(t(2), 300);
    fa.handle_request(t(2), &link(), &request(&r, &[], &[]));
    let _ = relayed(&mut fa);
    fa.handle_reply(
        t(2),
        from_ha(),
        &ha_reply(&r, ReplyCode::Accepted, 300).to_bytes(),
    );
    assert_eq!(denial(&mut fa), ReplyCode::FaPoorlyFormedReply);
    assert_eq!(fa.visitor_count(), 0);
}

#[test]
fn s3_7_3_2_critical_vendor_extension_from_the_home_agent_is_answered_101() {
    let mut fa = fa();
    let r = relay_one(&mut fa, 300);
    let mut bytes = reply_bytes(&ha_reply(&r, ReplyCode::Accepted, 300), None);
    Extension::CriticalVendor(VendorExtension {
        org_id: 32473,
        vendor_type: 3,
        value: b"x",
    })
    .append_to(&mut bytes)
    .unwrap();
    fa.handle_reply(t(0), from_ha(), &bytes);
    assert_eq!(
        denial(&mut fa),
        ReplyCode::FaUnsupportedVendorIdFromHomeAgent
    );
    assert_eq!(fa.visitor_count(), 0);
}
