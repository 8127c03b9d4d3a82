//! RFC 5944 section 3.8, Home Agent Considerations: one test per rule, named after
//! the subsection. RFC-NOTES.md points at these names.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use mip_core::auth::{append_auth_extension, ReplayMethod};
use mip_core::wire::{ext_type, Extension, RegistrationFlags, ReplyCode, VendorExtension};
use mip_ha::{DiscardReason, HaEvent, HomeAgent, RemovalReason, TunnelKind};
use std::net::{Ipv4Addr, SocketAddrV4};

fn register(ha: &mut HomeAgent, now: mip_core::time::Time, coa: Ipv4Addr, lifetime: u16) -> ReplyCode {
    let bytes = signed(&repr(now, coa, lifetime), &[], &mn_sa());
    ha.handle_datagram(now, from_mn(coa), &bytes);
    reply(ha, &mn_sa()).1.code
}

#[test]
fn s3_8_2_2_valid_request_creates_binding_and_reply_copies_fields() {
    let mut ha = ha();
    let r = repr(t(0), COA1, 300);
    ha.handle_datagram(t(0), from_mn(COA1), &signed(&r, &[], &mn_sa()));
    let (dst, rep, _) = reply(&mut ha, &mn_sa());
    assert_eq!(dst, from_mn(COA1), "3.8.3.1: reply goes to the request's source address and port");
    assert_eq!(rep.code, ReplyCode::Accepted);
    assert_eq!(rep.lifetime, 300);
    assert_eq!(rep.home_address, HOME);
    assert_eq!(rep.home_agent, HA);
    assert_eq!(rep.identification, r.identification, "5.7.1: timestamp identification echoed");
    let b = ha.bindings(t(0));
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].care_of_address, COA1);
    assert_eq!(b[0].lifetime_remaining, 300);
    assert_eq!(
        ha.poll_event(),
        Some(HaEvent::BindingAdded {
            home_address: HOME,
            care_of_address: COA1,
            lifetime: 300,
            tunnel: TunnelKind::IpInIp,
            reverse_tunnel: false,
            first_for_home: true,
        })
    );
    assert_eq!(ha.stats().accepted, 1);
}

#[test]
fn s3_8_3_2_lifetime_is_capped_at_the_configured_maximum() {
    let mut ha = ha();
    let bytes = signed(&repr(t(0), COA1, 0xffff), &[], &mn_sa());
    ha.handle_datagram(t(0), from_mn(COA1), &bytes);
    let (_, rep, _) = reply(&mut ha, &mn_sa());
    assert_eq!(rep.code, ReplyCode::Accepted);
    assert_eq!(rep.lifetime, 600, "granted lifetime never above max_lifetime");
    assert_eq!(ha.bindings(t(0))[0].lifetime_granted, 600);
}

#[test]
fn s3_8_2_1a_wrong_key_is_denied_131_without_any_state_change() {
    let mut ha = ha();
    let mut bad = mn_sa();
    bad.key = b"not the right key".to_vec();
    ha.handle_datagram(t(0), from_mn(COA1), &signed(&repr(t(0), COA1, 300), &[], &bad));
    let (_, rep, _) = reply(&mut ha, &mn_sa());
    assert_eq!(rep.code, ReplyCode::MobileNodeFailedAuthentication);
    assert_eq!(rep.lifetime, 0, "a denial grants nothing");
    assert!(ha.bindings(t(0)).is_empty());
    assert_eq!(ha.stats().authentication_failures, 1);
    assert_eq!(ha.stats().denied(131), 1);
    assert!(ha.poll_event().is_none());
    // The failed request used no identification: the node's next good request passes.
    assert_eq!(register(&mut ha, t(1), COA1, 300), ReplyCode::Accepted);
}

#[test]
fn s3_8_2_1a_unknown_spi_is_denied_131_signed_with_the_nodes_first_association() {
    let mut ha = ha();
    let mut other = mn_sa();
    other.spi = 999;
    ha.handle_datagram(t(0), from_mn(COA1), &signed(&repr(t(0), COA1, 300), &[], &other));
    let (_, rep, _) = reply(&mut ha, &mn_sa());
    assert_eq!(rep.code, ReplyCode::MobileNodeFailedAuthentication);
}

#[test]
fn s3_8_2_1a_failed_authentication_can_be_dropped_silently() {
    let mut c = config();
    c.reply_to_failed_authentication = false;
    let mut ha = HomeAgent::new(c, 1);
    let mut bad = mn_sa();
    bad.key = b"not the right key".to_vec();
    ha.handle_datagram(t(0), from_mn(COA1), &signed(&repr(t(0), COA1, 300), &[], &bad));
    assert!(ha.poll_transmit().is_none());
    assert_eq!(ha.stats().discarded(DiscardReason::FailedAuthenticationSilently), 1);
}

#[test]
fn s3_8_2_1a_no_security_association_is_silently_discarded() {
    let mut ha = ha();
    let mut r = repr(t(0), COA1, 300);
    r.home_address = Ipv4Addr::new(198, 18, 0, 99);
    ha.handle_datagram(t(0), from_mn(COA1), &signed(&r, &[], &mn_sa()));
    assert!(ha.poll_transmit().is_none());
    assert_eq!(ha.stats().discarded(DiscardReason::NoSecurityAssociation), 1);
}

#[test]
fn s3_8_2_1a_request_without_authenticator_is_silently_discarded() {
    let mut ha = ha();
    ha.handle_datagram(t(0), from_mn(COA1), &repr(t(0), COA1, 300).to_bytes());
    assert!(ha.poll_transmit().is_none());
    assert_eq!(ha.stats().discarded(DiscardReason::NoAuthenticator), 1);
}

#[test]
fn s3_8_2_1b_replayed_request_is_denied_133_with_the_home_agents_time() {
    let mut ha = ha();
    let r = repr(t(0), COA1, 300);
    let bytes = signed(&r, &[], &mn_sa());
    ha.handle_datagram(t(0), from_mn(COA1), &bytes);
    let _ = reply(&mut ha, &mn_sa());
    // Deregister, then replay the old registration 3 s later, inside the window.
    let d = signed(&repr(t(2), COA1, 0), &[], &mn_sa());
    ha.handle_datagram(t(2), from_mn(COA1), &d);
    assert_eq!(reply(&mut ha, &mn_sa()).1.code, ReplyCode::Accepted);
    ha.handle_datagram(t(3), from_mn(COA1), &bytes);
    let (_, rep, _) = reply(&mut ha, &mn_sa());
    assert_eq!(rep.code, ReplyCode::IdentificationMismatch);
    assert!(ha.bindings(t(3)).is_empty(), "the replay changed nothing");
    assert_eq!(rep.identification & 0xffff_ffff, r.identification & 0xffff_ffff, "5.7.1: low bits copied");
    assert_eq!(rep.identification >> 32, t(3).to_ntp() >> 32, "5.7.1: high bits = the home agent's time");
}

#[test]
fn s3_8_2_1b_timestamp_outside_the_window_is_denied_133() {
    let mut ha = ha();
    // The node's clock is 60 s behind.
    let mut r = repr(t(0), COA1, 300);
    r.identification = id_at(t(0) - std::time::Duration::from_secs(60));
    ha.handle_datagram(t(0), from_mn(COA1), &signed(&r, &[], &mn_sa()));
    assert_eq!(reply(&mut ha, &mn_sa()).1.code, ReplyCode::IdentificationMismatch);
    assert_eq!(ha.stats().denied(133), 1);
}

#[test]
fn s3_8_2_1b_nonce_replay_protection_first_request_learns_the_nonce() {
    let mut c = config();
    c.mobile_nodes[0].security_associations[0].replay = ReplayMethod::Nonce;
    let mut sa = mn_sa();
    sa.replay = ReplayMethod::Nonce;
    let mut ha = HomeAgent::new(c, 42);
    let mut r = repr(t(0), COA1, 300);
    r.identification = 0x0000_0000_1234_5678;
    ha.handle_datagram(t(0), from_mn(COA1), &signed(&r, &[], &sa));
    let (_, rep, _) = reply(&mut ha, &sa);
    assert_eq!(rep.code, ReplyCode::IdentificationMismatch, "no nonce known yet");
    assert_eq!(rep.identification & 0xffff_ffff, 0x1234_5678, "5.7.2: the node's nonce is echoed");
    let ha_nonce = rep.identification >> 32;
    r.identification = (ha_nonce << 32) | 0x9abc_def0;
    ha.handle_datagram(t(1), from_mn(COA1), &signed(&r, &[], &sa));
    let (_, rep, _) = reply(&mut ha, &sa);
    assert_eq!(rep.code, ReplyCode::Accepted);
    // Replaying the accepted request fails: the home agent moved on to a new nonce.
    ha.handle_datagram(t(1), from_mn(COA1), &signed(&repr(t(1), COA2, 300), &[], &sa));
    assert_eq!(reply(&mut ha, &sa).1.code, ReplyCode::IdentificationMismatch);
}

#[test]
fn s3_8_2_2_duplicate_request_gets_the_same_answer_without_extending_the_lifetime() {
    let mut ha = ha();
    let r = repr(t(0), COA1, 300);
    let bytes = signed(&r, &[], &mn_sa());
    ha.handle_datagram(t(0), from_mn(COA1), &bytes);
    let _ = reply(&mut ha, &mn_sa());
    ha.handle_datagram(t(5), from_mn(COA1), &bytes);
    let (_, rep, _) = reply(&mut ha, &mn_sa());
    assert_eq!(rep.code, ReplyCode::Accepted);
    assert_eq!(rep.identification, r.identification);
    assert_eq!(rep.lifetime, 295, "not extended beyond the lifetime first granted");
    assert_eq!(ha.bindings(t(5))[0].lifetime_remaining, 295);
    assert_eq!(ha.stats().duplicates, 1);
}

#[test]
fn s3_8_2_2_deregistration_with_home_care_of_address_removes_all_bindings() {
    let mut ha = ha();
    let mut r = repr(t(0), COA1, 300);
    r.flags = RegistrationFlags::default().with(RegistrationFlags::S);
    ha.handle_datagram(t(0), from_mn(COA1), &signed(&r, &[], &mn_sa()));
    let _ = reply(&mut ha, &mn_sa());
    let mut r2 = repr(t(1), COA2, 300);
    r2.flags = r.flags;
    ha.handle_datagram(t(1), from_mn(COA2), &signed(&r2, &[], &mn_sa()));
    let _ = reply(&mut ha, &mn_sa());
    assert_eq!(ha.bindings(t(1)).len(), 2);
    while ha.poll_event().is_some() {}
    let d = repr(t(2), HOME, 0);
    ha.handle_datagram(t(2), SocketAddrV4::new(HOME, 434), &signed(&d, &[], &mn_sa()));
    let (dst, rep, _) = reply(&mut ha, &mn_sa());
    assert_eq!(dst.ip(), &HOME);
    assert_eq!((rep.code, rep.lifetime), (ReplyCode::Accepted, 0));
    assert!(ha.bindings(t(2)).is_empty());
    let events: Vec<_> = std::iter::from_fn(|| ha.poll_event()).collect();
    assert_eq!(events.len(), 2);
    assert!(matches!(events[1], HaEvent::BindingRemoved { reason: RemovalReason::Deregistered, last_for_home: true, .. }));
    assert_eq!(ha.stats().deregistrations, 1);
}

#[test]
fn s3_8_2_2_deregistration_of_one_care_of_address_keeps_the_others() {
    let mut ha = ha();
    let s = RegistrationFlags::default().with(RegistrationFlags::S);
    for (i, coa) in [COA1, COA2].into_iter().enumerate() {
        let mut r = repr(t(i as u64), coa, 300);
        r.flags = s;
        ha.handle_datagram(t(i as u64), from_mn(coa), &signed(&r, &[], &mn_sa()));
        assert_eq!(reply(&mut ha, &mn_sa()).1.code, ReplyCode::Accepted);
    }
    assert_eq!(register(&mut ha, t(3), COA1, 0), ReplyCode::Accepted);
    let left = ha.bindings(t(3));
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].care_of_address, COA2);
}

#[test]
fn s3_8_2_2_without_s_bit_a_new_care_of_address_replaces_the_old() {
    let mut ha = ha();
    assert_eq!(register(&mut ha, t(0), COA1, 300), ReplyCode::Accepted);
    assert_eq!(register(&mut ha, t(1), COA2, 300), ReplyCode::Accepted);
    let b = ha.bindings(t(1));
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].care_of_address, COA2);
    let events: Vec<_> = std::iter::from_fn(|| ha.poll_event()).collect();
    assert!(events.iter().any(|e| matches!(e, HaEvent::BindingRemoved { reason: RemovalReason::Replaced, care_of_address, .. } if *care_of_address == COA1)));
}

#[test]
fn s3_8_2_3_too_many_simultaneous_bindings_is_denied_135() {
    let mut c = config();
    c.simultaneous_bindings = 2;
    let mut ha = HomeAgent::new(c, 1);
    let s = RegistrationFlags::default().with(RegistrationFlags::S);
    let mut codes = Vec::new();
    for (i, coa) in [COA1, COA2, COA3].into_iter().enumerate() {
        let mut r = repr(t(i as u64), coa, 300);
        r.flags = s;
        ha.handle_datagram(t(i as u64), from_mn(coa), &signed(&r, &[], &mn_sa()));
        codes.push(reply(&mut ha, &mn_sa()).1.code);
    }
    assert_eq!(codes, [ReplyCode::Accepted, ReplyCode::Accepted, ReplyCode::TooManySimultaneousBindings]);
    assert_eq!(ha.bindings(t(3)).len(), 2);
}

#[test]
fn s3_8_2_2_s_bit_without_simultaneous_support_is_accepted_with_code_1() {
    let mut c = config();
    c.simultaneous_bindings = 1;
    let mut ha = HomeAgent::new(c, 1);
    let mut r = repr(t(0), COA1, 300);
    r.flags = RegistrationFlags::default().with(RegistrationFlags::S);
    ha.handle_datagram(t(0), from_mn(COA1), &signed(&r, &[], &mn_sa()));
    assert_eq!(reply(&mut ha, &mn_sa()).1.code, ReplyCode::AcceptedNoSimultaneousBindings);
}

#[test]
fn s3_8_2_3_binding_table_full_is_denied_130() {
    let mut c = config();
    c.max_bindings = 1;
    let mut ha = HomeAgent::new(c, 1);
    assert_eq!(register(&mut ha, t(0), COA1, 300), ReplyCode::Accepted);
    let mut sa2 = mn_sa();
    sa2.spi = 257;
    sa2.key = b"another key 1234".to_vec();
    let mut r = repr(t(1), COA2, 300);
    r.home_address = HOME2;
    ha.handle_datagram(t(1), from_mn(COA2), &signed(&r, &[], &sa2));
    assert_eq!(reply(&mut ha, &sa2).1.code, ReplyCode::InsufficientResources);
    // Re-registering the existing binding still works at the limit.
    assert_eq!(register(&mut ha, t(2), COA1, 300), ReplyCode::Accepted);
    // So does moving it: the old entry is freed by the move.
    assert_eq!(register(&mut ha, t(3), COA2, 300), ReplyCode::Accepted);
}

#[test]
fn s3_8_2_3_reserved_bits_are_denied_134() {
    for bit in [RegistrationFlags::R_RESERVED, RegistrationFlags::X] {
        let mut ha = ha();
        let mut r = repr(t(0), COA1, 300);
        r.flags = RegistrationFlags::default().with(bit);
        ha.handle_datagram(t(0), from_mn(COA1), &signed(&r, &[], &mn_sa()));
        assert_eq!(reply(&mut ha, &mn_sa()).1.code, ReplyCode::PoorlyFormedRequest);
        assert!(ha.bindings(t(0)).is_empty());
    }
}

#[test]
fn s3_8_3_2_unknown_home_agent_address_is_denied_136_with_our_address() {
    let mut ha = ha();
    let mut r = repr(t(0), COA1, 300);
    r.home_agent = Ipv4Addr::new(198, 18, 0, 2);
    ha.handle_datagram(t(0), from_mn(COA1), &signed(&r, &[], &mn_sa()));
    let (_, rep, _) = reply(&mut ha, &mn_sa());
    assert_eq!(rep.code, ReplyCode::UnknownHomeAgentAddress);
    assert_eq!(rep.home_agent, HA, "the reply names the home agent's unicast address");
}

#[test]
fn s3_8_2_1_request_to_the_subnet_broadcast_is_denied_136() {
    let mut ha = ha();
    let bytes = signed(&repr(t(0), COA1, 300), &[], &mn_sa());
    ha.handle_datagram_to(t(0), from_mn(COA1), Ipv4Addr::new(198, 18, 0, 255), &bytes);
    let (_, rep, _) = reply(&mut ha, &mn_sa());
    assert_eq!(rep.code, ReplyCode::UnknownHomeAgentAddress);
    assert_eq!(rep.home_agent, HA);
    assert!(ha.bindings(t(0)).is_empty());
}

#[test]
fn s3_8_3_2_home_address_not_ours_for_this_node_is_denied_129() {
    let mut ha = ha();
    // The NAI names mobile node 1, the home address is unknown: 129.
    let mut r = repr(t(0), COA1, 300);
    r.home_address = Ipv4Addr::new(198, 18, 0, 77);
    let nai = Extension::Nai(NAI.as_bytes());
    ha.handle_datagram(t(0), from_mn(COA1), &signed(&r, &[nai], &mn_sa()));
    assert_eq!(reply(&mut ha, &mn_sa()).1.code, ReplyCode::AdministrativelyProhibited);
}

#[test]
fn s3_8_1_zero_home_address_with_nai_is_given_the_configured_home_address() {
    let mut ha = ha();
    let mut r = repr(t(0), COA1, 300);
    r.home_address = Ipv4Addr::UNSPECIFIED;
    let nai = Extension::Nai(NAI.as_bytes());
    ha.handle_datagram(t(0), from_mn(COA1), &signed(&r, &[nai], &mn_sa()));
    let (_, rep, _) = reply(&mut ha, &mn_sa());
    assert_eq!(rep.code, ReplyCode::Accepted);
    assert_eq!(rep.home_address, HOME, "3.8.1: the home agent puts the home address in the reply");
    assert_eq!(ha.bindings(t(0))[0].home_address, HOME);
}

#[test]
fn s1_9_unknown_extension_below_128_discards_the_request_silently() {
    let mut ha = ha();
    let unknown = Extension::Unknown { ext_type: 99, data: &[1, 2, 3] };
    ha.handle_datagram(t(0), from_mn(COA1), &signed(&repr(t(0), COA1, 300), &[unknown], &mn_sa()));
    assert!(ha.poll_transmit().is_none());
    assert_eq!(ha.stats().discarded(DiscardReason::UnknownExtension), 1);
}

#[test]
fn s1_9_unknown_extension_from_128_is_skipped() {
    let mut ha = ha();
    let unknown = Extension::Unknown { ext_type: 200, data: &[1, 2, 3] };
    ha.handle_datagram(t(0), from_mn(COA1), &signed(&repr(t(0), COA1, 300), &[unknown], &mn_sa()));
    assert_eq!(reply(&mut ha, &mn_sa()).1.code, ReplyCode::Accepted);
}

#[test]
fn rfc3115_critical_vendor_extension_not_understood_is_denied_140() {
    let mut ha = ha();
    // An organization this agent knows nothing of (32473 is SID's, tests/sid_agent.rs).
    let cvse = Extension::CriticalVendor(VendorExtension { org_id: 9, vendor_type: 9, value: &[0; 4] });
    ha.handle_datagram(t(0), from_mn(COA1), &signed(&repr(t(0), COA1, 300), &[cvse], &mn_sa()));
    assert_eq!(u8::from(reply(&mut ha, &mn_sa()).1.code), 140);
    assert!(ha.bindings(t(0)).is_empty());
}

#[test]
fn rfc3024_reverse_tunnel_and_encapsulation_unavailable_are_denied_137_139() {
    let mut c = config();
    c.reverse_tunnel = false;
    c.gre_encapsulation = false;
    let mut ha = HomeAgent::new(c, 1);
    for (bit, code) in [(RegistrationFlags::T, 137u8), (RegistrationFlags::G, 139)] {
        let mut r = repr(t(u64::from(code)), COA1, 300);
        r.flags = RegistrationFlags::default().with(bit);
        ha.handle_datagram(t(u64::from(code)), from_mn(COA1), &signed(&r, &[], &mn_sa()));
        assert_eq!(u8::from(reply(&mut ha, &mn_sa()).1.code), code);
    }
}

fn via_foreign_agent(r: &mip_core::wire::RegistrationRequestRepr, fa_key_ok: bool, fha_count: usize) -> Vec<u8> {
    let mut b = signed(r, &[], &mn_sa());
    let mut sa = fa_sa();
    if !fa_key_ok {
        sa.key = b"wrong fa-ha key!".to_vec();
    }
    for _ in 0..fha_count {
        append_auth_extension(&mut b, ext_type::FOREIGN_HOME_AUTH, &sa);
    }
    b
}

#[test]
fn s3_8_2_1c_foreign_agent_authentication_is_checked_132() {
    for (ok, count, expect) in [(true, 1, 0u8), (false, 1, 132), (true, 0, 132), (true, 2, 132)] {
        let mut ha = HomeAgent::new(with_foreign_agent(config()), 1);
        let bytes = via_foreign_agent(&repr(t(0), FA, 300), ok, count);
        ha.handle_datagram(t(0), SocketAddrV4::new(FA, 434), &bytes);
        let (dst, rep, payload) = reply(&mut ha, &mn_sa());
        assert_eq!(dst.ip(), &FA);
        assert_eq!(u8::from(rep.code), expect, "fha ok={ok} count={count}");
        // 3.8.3.3 e: the reply to an agent we share an association with carries a
        // Foreign-Home Authentication Extension, last.
        let packet = mip_core::wire::RegistrationReply::new_checked(&payload[..]).unwrap();
        let last = packet.extensions().last().unwrap().unwrap();
        assert!(matches!(last.ext, Extension::ForeignHomeAuth(a) if a.spi == fa_sa().spi));
    }
}

#[test]
fn s3_8_2_1c_foreign_agent_deregistration_may_skip_foreign_home_authentication() {
    let mut ha = HomeAgent::new(with_foreign_agent(config()), 1);
    ha.handle_datagram(t(0), SocketAddrV4::new(FA, 434), &via_foreign_agent(&repr(t(0), FA, 300), true, 1));
    assert_eq!(reply(&mut ha, &mn_sa()).1.code, ReplyCode::Accepted);
    ha.handle_datagram(t(1), SocketAddrV4::new(FA, 434), &via_foreign_agent(&repr(t(1), FA, 0), true, 0));
    assert_eq!(reply(&mut ha, &mn_sa()).1.code, ReplyCode::Accepted);
    assert!(ha.bindings(t(1)).is_empty());
}

#[test]
fn s3_8_2_1d_foreign_home_authentication_without_association_is_discarded() {
    let mut ha = ha();
    ha.handle_datagram(t(0), SocketAddrV4::new(FA, 434), &via_foreign_agent(&repr(t(0), FA, 300), true, 1));
    assert!(ha.poll_transmit().is_none());
    assert_eq!(ha.stats().discarded(DiscardReason::UnexpectedForeignHomeAuth), 1);
    assert!(ha.bindings(t(0)).is_empty());
}

#[test]
fn s3_8_expired_binding_is_deleted_without_any_reply() {
    let mut ha = ha();
    assert_eq!(register(&mut ha, t(0), COA1, 30), ReplyCode::Accepted);
    while ha.poll_event().is_some() {}
    assert_eq!(ha.poll_timeout(), Some(t(30)));
    ha.handle_timeout(t(29));
    assert_eq!(ha.bindings(t(29)).len(), 1);
    ha.handle_timeout(t(30));
    assert!(ha.bindings(t(30)).is_empty());
    assert_eq!(
        ha.poll_event(),
        Some(HaEvent::BindingExpired { home_address: HOME, care_of_address: COA1, last_for_home: true })
    );
    assert!(ha.poll_transmit().is_none(), "3.8: MUST NOT send a reply to say a lifetime expired");
    assert_eq!(ha.poll_timeout(), None);
    assert_eq!(ha.stats().bindings_expired, 1);
}

#[test]
fn revoke_removes_bindings_and_reports_them() {
    let mut ha = ha();
    assert_eq!(register(&mut ha, t(0), COA1, 300), ReplyCode::Accepted);
    while ha.poll_event().is_some() {}
    assert!(ha.revoke(t(1), HOME));
    assert!(!ha.revoke(t(1), HOME));
    assert!(ha.bindings(t(1)).is_empty());
    assert!(matches!(ha.poll_event(), Some(HaEvent::BindingRemoved { reason: RemovalReason::Revoked, .. })));
}

#[test]
fn valid_nodes_are_still_served_after_garbage() {
    let mut ha = ha();
    let good = signed(&repr(t(0), COA1, 300), &[], &mn_sa());
    for len in 0..good.len() {
        ha.handle_datagram(t(0), from_mn(COA1), &good[..len]);
    }
    let mut flipped = good.clone();
    flipped[30] ^= 0xff;
    ha.handle_datagram(t(0), from_mn(COA1), &flipped);
    while ha.poll_transmit().is_some() {}
    assert!(ha.bindings(t(0)).is_empty());
    ha.handle_datagram(t(0), from_mn(COA1), &good);
    assert_eq!(reply(&mut ha, &mn_sa()).1.code, ReplyCode::Accepted);
    assert!(ha.stats().discarded(DiscardReason::Malformed) > 0);
}

#[test]
fn s3_8_2_b_bit_is_ignored_not_rejected() {
    let mut ha = ha();
    let mut r = repr(t(0), COA1, 300);
    r.flags = RegistrationFlags::default().with(RegistrationFlags::B);
    ha.handle_datagram(t(0), from_mn(COA1), &signed(&r, &[], &mn_sa()));
    assert_eq!(reply(&mut ha, &mn_sa()).1.code, ReplyCode::Accepted);
}

#[test]
fn s3_8_2_1a_failed_authentication_with_valid_foreign_home_auth_must_be_answered_131() {
    let mut c = with_foreign_agent(config());
    c.reply_to_failed_authentication = false;
    let mut ha = HomeAgent::new(c, 1);
    let mut bad = mn_sa();
    bad.key = b"not the right key".to_vec();
    let mut bytes = signed(&repr(t(0), FA, 300), &[], &bad);
    append_auth_extension(&mut bytes, ext_type::FOREIGN_HOME_AUTH, &fa_sa());
    ha.handle_datagram(t(0), SocketAddrV4::new(FA, 434), &bytes);
    assert_eq!(reply(&mut ha, &mn_sa()).1.code, ReplyCode::MobileNodeFailedAuthentication);
}
