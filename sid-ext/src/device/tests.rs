//! The device roles against a scripted Agent that reads requests the way the Agent does
//! (RFC-NOTES "SID formats" 4) and answers as it would.
#![allow(clippy::unwrap_used)]

use core::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use mip_core::auth::{
    append_auth_extension, verify_authenticator, AuthAlgorithm, ReplayMethod, SecurityAssociation,
};
use mip_core::time::Time;
use mip_core::wire::notification::{GenericNotificationRepr, NotificationDirection};
use mip_core::wire::{
    ext_type, Extension, RegistrationRequest, RegistrationRequestRepr, RegistrationReplyRepr,
    ReplyCode, AUTH_EXT_COVERED_HEADER, REQUEST_FIXED_LEN,
};
use mip_core::Transmit;

use super::*;
use crate::crypto::{self, SessionKey};
use crate::wire::wake_up::{build_wake_up, parse_wake_up_ack};
use crate::wire::{SidExtensions, StopReason, WakeUpReason, DEFAULT_ORG_ID};

const TN: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const AGENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const TARGET: Ipv4Addr = Ipv4Addr::new(198, 19, 1, 10);
const TARGET2: Ipv4Addr = Ipv4Addr::new(198, 19, 2, 10);
const MAC: [u8; 6] = [0x02, 0, 0xc6, 0x12, 0, 0x0a];

fn msa() -> SecurityAssociation {
    SecurityAssociation {
        spi: 1000,
        algorithm: AuthAlgorithm::HmacMd5,
        key: b"tn-agent-secret-0123".to_vec(),
        replay: ReplayMethod::Timestamp,
    }
}

fn t0() -> Time {
    Time::from_secs(1_700_000_000)
}

fn key(b: u8) -> SessionKey {
    SessionKey::from_bytes([b; 32])
}

fn tn() -> TransferringNode {
    let mut cfg = TnConfig::new(TN, AGENT, msa());
    cfg.link_address = Some(LinkAddress::ethernet(MAC));
    TransferringNode::new(cfg, 7).unwrap()
}

fn plan(k: u8, further: bool) -> TransferPlan {
    TransferPlan {
        target: TARGET,
        session_key: key(k),
        lifetime: 120,
        further_transfer: further,
        reverse_tunnel: false,
    }
}

/// A request as the Agent reads it.
struct Seen {
    repr: RegistrationRequestRepr,
    spi: u32,
    authentic: bool,
    bytes: Vec<u8>,
}

impl Seen {
    fn sid(&self) -> SidExtensions<'_> {
        SidExtensions::from_message(&self.bytes, REQUEST_FIXED_LEN, DEFAULT_ORG_ID).unwrap()
    }
}

fn read_request(t: &Transmit, sa: &SecurityAssociation) -> Seen {
    assert_eq!(t.destination, SocketAddrV4::new(AGENT, 434));
    let view = RegistrationRequest::new_checked(&t.payload[..]).unwrap();
    let repr = RegistrationRequestRepr::parse(&view).unwrap();
    let (offset, auth) = view
        .extensions()
        .map(|i| i.unwrap())
        .find_map(|i| match i.ext {
            Extension::MobileHomeAuth(a) => Some((i.offset, a)),
            _ => None,
        })
        .unwrap();
    let covered = &t.payload[..offset + AUTH_EXT_COVERED_HEADER];
    Seen {
        repr,
        spi: auth.spi,
        authentic: verify_authenticator(sa.algorithm, &sa.key, covered, auth.authenticator),
        bytes: t.payload.clone(),
    }
}

fn reply(seen: &Seen, code: ReplyCode, lifetime: u16, sa: &SecurityAssociation) -> Vec<u8> {
    let mut m = RegistrationReplyRepr {
        code,
        lifetime,
        home_address: seen.repr.home_address,
        home_agent: AGENT,
        identification: seen.repr.identification,
    }
    .to_bytes();
    append_auth_extension(&mut m, ext_type::MOBILE_HOME_AUTH, sa);
    m
}

fn from_agent() -> SocketAddrV4 {
    SocketAddrV4::new(AGENT, 434)
}

fn drain<E>(poll: impl FnMut() -> Option<E>) -> Vec<E> {
    std::iter::from_fn(poll).collect()
}

#[test]
fn transfer_request_carries_what_the_agent_needs_and_the_address_is_released() {
    let mut tn = tn();
    tn.transfer(t0(), &plan(1, true)).unwrap();
    assert_eq!(tn.state(), TnState::Requesting { target: TARGET });
    let t = tn.poll_transmit().unwrap();
    let seen = read_request(&t, &msa());
    assert!(seen.authentic);
    assert_eq!(seen.spi, 1000);
    assert_eq!(seen.repr.home_address, TN);
    assert_eq!(seen.repr.home_agent, AGENT);
    assert_eq!(seen.repr.care_of_address, TARGET);
    assert_eq!(seen.repr.lifetime, 120);
    let sid = seen.sid();
    assert_eq!(sid.target_address, Some(TARGET));
    let spi = session_spi(&key(1)).unwrap();
    assert!(spi >= 256);
    assert_eq!(sid.session_spi, Some(spi));
    assert!(sid.transfer_flags.unwrap().further_transfer());
    assert!(!sid.transfer_flags.unwrap().reverse_tunnel());
    assert_eq!(sid.link_layer_address.unwrap().as_ethernet(), Some(MAC));
    assert!(sid.stop_transfer.is_none() && sid.wake_up.is_none());
    // The Agent recovers the key under the TN's association and the transfer context.
    let ctx = transfer_context(TransferStage::Transfer, TN, TARGET, spi, AGENT);
    let k = crypto::unwrap_for_association(sid.session_key.unwrap().data, &msa().key, &ctx).unwrap();
    assert_eq!(k, key(1));

    tn.handle_datagram(t0(), from_agent(), &reply(&seen, ReplyCode::Accepted, 100, &msa()));
    assert_eq!(
        drain(|| tn.poll_event()),
        vec![
            TnEvent::TransferAccepted { target: TARGET, lifetime: 100, session_spi: spi },
            TnEvent::ReleaseAddress { address: TN },
        ]
    );
    assert_eq!(tn.state(), TnState::Transferred { target: TARGET, lifetime: 100 });
}

#[test]
fn context_layout_matches_the_agent() {
    let c = transfer_context(TransferStage::FurtherTransfer, TN, TARGET, 0x1000, AGENT);
    assert_eq!(&c[..16], b"sidmip agent v1 ");
    assert_eq!(&c[16..], &[2, 198, 18, 0, 10, 198, 19, 1, 10, 0, 0, 0x10, 0, 198, 18, 0, 1][..]);
}

fn wake_up_bytes(id: u64, sa: &SecurityAssociation) -> Vec<u8> {
    let n = GenericNotificationRepr {
        direction: NotificationDirection::HomeAgentToMobileNode,
        home_address: TN,
        home_agent: AGENT,
        care_of_address: TARGET,
        identification: id,
    };
    build_wake_up(&n, DEFAULT_ORG_ID, WakeUpReason::EndedByZeroLifetime, sa).unwrap()
}

fn transferred_tn() -> TransferringNode {
    let mut tn = tn();
    tn.transfer(t0(), &plan(1, false)).unwrap();
    let seen = read_request(&tn.poll_transmit().unwrap(), &msa());
    tn.handle_datagram(t0(), from_agent(), &reply(&seen, ReplyCode::Accepted, 100, &msa()));
    drain(|| tn.poll_event());
    tn
}

#[test]
fn wake_up_is_verified_acknowledged_and_gives_the_address_back_once() {
    let mut tn = transferred_tn();
    let now = t0() + Duration::from_secs(30);
    let id = now.to_ntp();
    let w = wake_up_bytes(id, &msa());
    tn.handle_datagram(now, from_agent(), &w);
    let ack = tn.poll_transmit().unwrap();
    assert_eq!(ack.destination, SocketAddrV4::new(AGENT, 434));
    let parsed = parse_wake_up_ack(&ack.payload).unwrap();
    assert_eq!(parsed.ack.identification, id);
    assert_eq!(parsed.ack.direction, NotificationDirection::MobileNodeToHomeAgent);
    assert_eq!(parsed.auth.spi, 1000);
    assert!(verify_authenticator(AuthAlgorithm::HmacMd5, &msa().key, parsed.auth.covered, parsed.auth.authenticator));
    assert_eq!(
        drain(|| tn.poll_event()),
        vec![
            TnEvent::WokenUp { reason: WakeUpReason::EndedByZeroLifetime, agent: AGENT, target: TARGET },
            TnEvent::TakeBackAddress { address: TN },
        ]
    );
    assert_eq!(tn.state(), TnState::Home);
    // A replayed copy: silence.
    tn.handle_datagram(now, from_agent(), &w);
    assert!(tn.poll_transmit().is_none());
    assert!(tn.poll_event().is_none());
    assert_eq!(tn.stats().wake_ups_discarded, 1);
}

#[test]
fn forged_or_stale_wake_ups_are_ignored() {
    let mut tn = transferred_tn();
    let now = t0() + Duration::from_secs(30);
    let mut wrong = msa();
    wrong.key = b"someone-else-key".to_vec();
    tn.handle_datagram(now, from_agent(), &wake_up_bytes(now.to_ntp(), &wrong));
    let stale = (now - Duration::from_secs(60)).to_ntp();
    tn.handle_datagram(now, from_agent(), &wake_up_bytes(stale, &msa()));
    tn.handle_datagram(now, from_agent(), b"\x16garbage");
    assert!(tn.poll_transmit().is_none());
    assert!(tn.poll_event().is_none());
    assert_eq!(tn.stats().wake_ups_discarded, 3);
    assert!(matches!(tn.state(), TnState::Transferred { .. }));
}

#[test]
fn transfer_request_is_retransmitted_then_given_up() {
    let mut tn = tn();
    tn.transfer(t0(), &plan(1, false)).unwrap();
    let mut ids = vec![read_request(&tn.poll_transmit().unwrap(), &msa()).repr.identification];
    let mut now = t0();
    while let Some(at) = tn.poll_timeout() {
        now = at;
        tn.handle_timeout(now);
        if let Some(t) = tn.poll_transmit() {
            ids.push(read_request(&t, &msa()).repr.identification);
        }
    }
    assert_eq!(ids.len(), 5);
    assert!(ids.windows(2).all(|w| w[1] > w[0]), "each retransmission a new timestamp");
    // 1 + 2 + 4 + 8 + 8 s.
    assert_eq!(now, t0() + Duration::from_secs(23));
    assert_eq!(
        drain(|| tn.poll_event()),
        vec![TnEvent::TransferFailed { target: TARGET, failure: RequestFailure::NoAnswer { attempts: 5 } }]
    );
    assert_eq!(tn.state(), TnState::Home);
}

#[test]
fn replies_that_do_not_authenticate_or_match_are_dropped_and_133_resynchronises() {
    let mut tn = tn();
    tn.transfer(t0(), &plan(1, false)).unwrap();
    let seen = read_request(&tn.poll_transmit().unwrap(), &msa());
    let mut wrong = msa();
    wrong.key = b"not-the-key".to_vec();
    tn.handle_datagram(t0(), from_agent(), &reply(&seen, ReplyCode::Accepted, 100, &wrong));
    let mut other = reply(&seen, ReplyCode::Accepted, 100, &msa());
    other[19] ^= 1; // identification's low byte
    tn.handle_datagram(t0(), from_agent(), &other);
    assert!(tn.poll_event().is_none());
    assert_eq!(tn.stats().discarded_auth, 1);
    assert_eq!(tn.stats().discarded_unmatched, 1);
    // The Agent's clock is 100 s ahead: 133 with its time in the high bits.
    let agent_now = t0() + Duration::from_secs(100);
    let resync_id = mip_core::replay::timestamp_resync_identification(seen.repr.identification, agent_now);
    let mut denied = seen.repr;
    denied.identification = resync_id;
    let seen133 = Seen { repr: denied, spi: 1000, authentic: true, bytes: Vec::new() };
    tn.handle_datagram(t0(), from_agent(), &reply(&seen133, ReplyCode::IdentificationMismatch, 0, &msa()));
    let again = read_request(&tn.poll_transmit().unwrap(), &msa());
    let hi = |id: u64| id >> 32;
    assert!(hi(again.repr.identification).abs_diff(hi(agent_now.to_ntp())) <= 1);
    assert!(tn.poll_event().is_none());
}

#[test]
fn stop_transfer_demand_also_without_a_binding_and_with_a_new_link_address() {
    let mut tn = tn();
    let new_mac = [0x02, 0, 0, 0, 0, 0x99];
    tn.stop(t0(), StopReason::LinkLayerAddressChanged, Some(LinkAddress::ethernet(new_mac)))
        .unwrap();
    let seen = read_request(&tn.poll_transmit().unwrap(), &msa());
    assert!(seen.authentic);
    assert_eq!(seen.repr.lifetime, 0);
    assert_eq!(seen.repr.care_of_address, TN);
    let sid = seen.sid();
    assert_eq!(sid.stop_transfer, Some(StopReason::LinkLayerAddressChanged));
    assert_eq!(sid.link_layer_address.unwrap().as_ethernet(), Some(new_mac));
    assert!(sid.target_address.is_none() && sid.session_key.is_none() && sid.session_spi.is_none());
    tn.handle_datagram(t0(), from_agent(), &reply(&seen, ReplyCode::Accepted, 0, &msa()));
    assert_eq!(
        drain(|| tn.poll_event()),
        vec![TnEvent::StopAccepted, TnEvent::TakeBackAddress { address: TN }]
    );
    // The next transfer tells the Agent the new address.
    tn.transfer(t0() + Duration::from_secs(5), &plan(2, false)).unwrap();
    let seen = read_request(&tn.poll_transmit().unwrap(), &msa());
    assert_eq!(seen.sid().link_layer_address.unwrap().as_ethernet(), Some(new_mac));
}

#[test]
fn bad_transfer_commands_are_refused() {
    let mut tn = tn();
    let mut p = plan(1, false);
    p.target = TN;
    assert!(matches!(tn.transfer(t0(), &p), Err(DeviceError::BadAddress(_))));
    let mut cfg = TnConfig::new(TN, AGENT, msa());
    cfg.link_address = None;
    let mut bare = TransferringNode::new(cfg.clone(), 1).unwrap();
    assert_eq!(bare.transfer(t0(), &plan(1, false)), Err(DeviceError::NoWakeUpAddress));
    cfg.sa.replay = ReplayMethod::Nonce;
    assert!(matches!(TransferringNode::new(cfg, 1), Err(DeviceError::NonceUnsupported)));
    assert!(tn.poll_transmit().is_none());
}

fn session(k: u8, further: bool) -> TargetSession {
    TargetSession {
        tn_address: TN,
        agent: AGENT,
        session_key: key(k),
        lifetime: 120,
        further_transfer: further,
        reverse_tunnel: true,
    }
}

fn target_holding(further: bool) -> (Target, SecurityAssociation, Time) {
    let mut target = Target::new(TargetConfig::new(TARGET), 9);
    target.accept_session(t0(), session(1, further)).unwrap();
    assert_eq!(
        drain(|| target.poll_event()),
        vec![TargetEvent::InstallAddress { address: TN, agent: AGENT, reverse_tunnel: true }]
    );
    let sa = session_association(session_spi(&key(1)).unwrap(), &key(1));
    // The confirming renewal, 2 s later.
    let now = target.poll_timeout().unwrap();
    assert_eq!(now, t0() + Duration::from_secs(2));
    target.handle_timeout(now);
    let seen = read_request(&target.poll_transmit().unwrap(), &sa);
    assert!(seen.authentic);
    assert_eq!(seen.spi, sa.spi);
    assert_eq!(seen.repr.home_address, TN);
    assert_eq!(seen.repr.care_of_address, TARGET);
    assert_eq!(seen.repr.lifetime, 120);
    assert!(seen.repr.flags.contains(mip_core::wire::RegistrationFlags::T));
    assert!(seen.sid().is_empty());
    target.handle_datagram(now, from_agent(), &reply(&seen, ReplyCode::Accepted, 60, &sa));
    assert_eq!(drain(|| target.poll_event()), vec![TargetEvent::Renewed { lifetime: 60 }]);
    assert_eq!(target.state(), TargetState::Holding { tn_address: TN, confirmed: true });
    (target, sa, now)
}

#[test]
fn target_renews_before_the_lifetime_runs_out_and_ends_with_lifetime_zero() {
    let (mut target, sa, start) = target_holding(false);
    // Next renewal at 3/4 of the 60 s granted.
    assert_eq!(target.poll_timeout(), Some(start + Duration::from_secs(45)));
    let now = start + Duration::from_secs(45);
    target.handle_timeout(now);
    let seen = read_request(&target.poll_transmit().unwrap(), &sa);
    assert!(seen.authentic);
    target.handle_datagram(now, from_agent(), &reply(&seen, ReplyCode::Accepted, 60, &sa));
    assert_eq!(drain(|| target.poll_event()), vec![TargetEvent::Renewed { lifetime: 60 }]);
    let later = now + Duration::from_secs(10);
    target.end(later).unwrap();
    let seen = read_request(&target.poll_transmit().unwrap(), &sa);
    assert_eq!(seen.repr.lifetime, 0);
    assert!(seen.repr.identification > now.to_ntp() - 1);
    target.handle_datagram(later, from_agent(), &reply(&seen, ReplyCode::Accepted, 0, &sa));
    assert_eq!(
        drain(|| target.poll_event()),
        vec![TargetEvent::Ended, TargetEvent::RemoveAddress { address: TN }]
    );
    assert_eq!(target.state(), TargetState::Idle);
    assert!(target.poll_timeout().is_none());
}

#[test]
fn target_lets_go_when_the_binding_expires_unrenewed() {
    let (mut target, _sa, start) = target_holding(false);
    let mut now = start;
    // The Agent never answers again.
    while let Some(at) = target.poll_timeout() {
        now = at;
        target.handle_timeout(now);
        while target.poll_transmit().is_some() {}
    }
    assert_eq!(now, start + Duration::from_secs(60));
    let events = drain(|| target.poll_event());
    assert_eq!(
        &events[events.len() - 2..],
        &[TargetEvent::Expired, TargetEvent::RemoveAddress { address: TN }]
    );
}

#[test]
fn target_confirmation_retries_then_gives_up_when_the_agent_does_not_know_the_session() {
    let mut target = Target::new(TargetConfig::new(TARGET), 9);
    target.accept_session(t0(), session(1, false)).unwrap();
    drain(|| target.poll_event());
    let sa = session_association(session_spi(&key(1)).unwrap(), &key(1));
    let mut refusals = 0;
    while let Some(at) = target.poll_timeout() {
        target.handle_timeout(at);
        if let Some(t) = target.poll_transmit() {
            let seen = read_request(&t, &sa);
            target.handle_datagram(at, from_agent(), &reply(&seen, ReplyCode::MobileNodeFailedAuthentication, 0, &sa));
            refusals += 1;
        }
    }
    assert_eq!(refusals, 4);
    let events = drain(|| target.poll_event());
    assert_eq!(events.last(), Some(&TargetEvent::RemoveAddress { address: TN }));
    assert_eq!(target.state(), TargetState::Idle);
}

#[test]
fn further_transfer_only_with_permission_and_under_the_session_association() {
    let (mut target, _, now) = target_holding(false);
    assert_eq!(
        target.transfer_further(now, TARGET2, &key(2), 60, false, false),
        Err(DeviceError::FurtherTransferNotPermitted)
    );
    let (mut target, sa, now) = target_holding(true);
    target.transfer_further(now, TARGET2, &key(2), 60, true, false).unwrap();
    let seen = read_request(&target.poll_transmit().unwrap(), &sa);
    assert!(seen.authentic);
    assert_eq!(seen.repr.home_address, TN);
    assert_eq!(seen.repr.care_of_address, TARGET2);
    let sid = seen.sid();
    let spi2 = session_spi(&key(2)).unwrap();
    assert_eq!(sid.target_address, Some(TARGET2));
    assert_eq!(sid.session_spi, Some(spi2));
    assert_eq!(sid.transferring_node, Some(TN));
    assert!(sid.transfer_flags.unwrap().further_transfer());
    let ctx = transfer_context(TransferStage::FurtherTransfer, TN, TARGET2, spi2, AGENT);
    let k = crypto::unwrap_for_association(sid.session_key.unwrap().data, &sa.key, &ctx).unwrap();
    assert_eq!(k, key(2));
    assert_eq!(target.state(), TargetState::HandingOver { tn_address: TN, to: TARGET2 });
    target.handle_datagram(now, from_agent(), &reply(&seen, ReplyCode::Accepted, 60, &sa));
    assert_eq!(
        drain(|| target.poll_event()),
        vec![
            TargetEvent::HandedOver { to: TARGET2, session_spi: spi2 },
            TargetEvent::RemoveAddress { address: TN }
        ]
    );
}
