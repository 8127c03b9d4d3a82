//! The same-subnet TN and Target against each other, datagrams carried by hand; forged,
//! replayed and lost messages injected where the rules say what must happen.
#![allow(clippy::unwrap_used)]

use core::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use mip_core::auth::{append_auth_extension, AuthAlgorithm, ReplayMethod, SecurityAssociation};
use mip_core::time::Time;
use mip_core::wire::notification::{GenericNotificationRepr, NotificationDirection};
use mip_core::wire::{
    ext_type, RegistrationFlags, RegistrationReply, RegistrationReplyRepr, RegistrationRequest,
    RegistrationRequestRepr, ReplyCode, REQUEST_FIXED_LEN,
};
use mip_core::Transmit;

use super::*;
use crate::device::{session_association, DeviceError, LinkAddress, RequestFailure};
use crate::wire::wake_up::{build_wake_up, parse_wake_up, parse_wake_up_ack};
use crate::wire::{SidExtensions, StopReason, WakeUpReason, DEFAULT_ORG_ID};

const TN: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const TARGET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 20);
const CN: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
const INTERIM: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 99);
const MAC: [u8; 6] = [0x02, 0x53, 0x4c, 0, 3, 0];

fn t0() -> Time {
    Time::from_secs(1_795_651_200)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn key(b: u8) -> SessionKey {
    SessionKey::from_bytes([b; 32])
}

fn tn() -> LocalTn {
    let mut c = LocalTnConfig::new(TN);
    c.link_address = Some(LinkAddress::ethernet(MAC));
    LocalTn::new(c, 11)
}

fn target_with(interim: Option<Ipv4Addr>) -> LocalTarget {
    let mut t = LocalTarget::new(LocalTargetConfig::new(TARGET));
    t.accept_session(LocalSession {
        tn_address: TN,
        tn_link: Some(LinkAddress::ethernet(MAC)),
        interim,
        session_key: key(7),
        lifetime: 60,
    })
    .unwrap();
    t
}

fn plan() -> LocalPlan {
    LocalPlan { target: TARGET, session_key: key(7), lifetime: 60 }
}

fn port(ip: Ipv4Addr) -> SocketAddrV4 {
    SocketAddrV4::new(ip, 434)
}

fn drain<E>(poll: impl FnMut() -> Option<E>) -> Vec<E> {
    std::iter::from_fn(poll).collect()
}

/// TN -> Target: every queued request; returns them.
fn tn_to_target(now: Time, tn: &mut LocalTn, tg: &mut LocalTarget) -> Vec<Transmit> {
    let sent = drain(|| tn.poll_transmit());
    for t in &sent {
        assert_eq!(t.destination, port(TARGET));
        tg.handle_datagram(now, port(TN), &t.payload);
    }
    sent
}

/// Target -> TN: what went as UDP and what as frames to the TN's MAC (everything for the
/// TN's address, which the Target may hold); returns how many of each.
fn target_to_tn(now: Time, tg: &mut LocalTarget, tn: &mut LocalTn) -> (usize, usize) {
    let udp = drain(|| tg.poll_transmit());
    for t in &udp {
        tn.handle_datagram(now, port(TARGET), &t.payload);
    }
    let frames = drain(|| tg.poll_link_transmit());
    for f in &frames {
        assert_eq!((f.mac, f.source, f.destination), (MAC, port(TARGET), port(TN)));
        tn.handle_datagram(now, f.source, &f.payload);
    }
    (udp.len(), frames.len())
}

/// Every payload the Target queued, UDP or frame.
fn sent_by(tg: &mut LocalTarget) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = drain(|| tg.poll_transmit()).into_iter().map(|t| t.payload).collect();
    v.extend(drain(|| tg.poll_link_transmit()).into_iter().map(|t| t.payload));
    v
}

/// Negotiated, taken over, released: both settled.
fn transferred(now: Time) -> (LocalTn, LocalTarget) {
    let (mut tn, mut tg) = (tn(), target_with(None));
    tn.take_over(now, &plan()).unwrap();
    tn_to_target(now, &mut tn, &mut tg);
    target_to_tn(now, &mut tg, &mut tn);
    assert_eq!(tn.state(), LocalTnState::Transferred { target: TARGET, lifetime: 60 });
    assert_eq!(tg.state(), LocalTargetState::Holding { tn_address: TN });
    drain(|| tn.poll_event());
    drain(|| tg.poll_event());
    (tn, tg)
}

/// A stop-transfer demand as anyone could build it: `sa` decides whether it is authentic.
fn stop_demand(now: Time, sa: &SecurityAssociation) -> Vec<u8> {
    let mut m = RegistrationRequestRepr {
        flags: RegistrationFlags::default(),
        lifetime: 0,
        home_address: TN,
        home_agent: TARGET,
        care_of_address: TN,
        identification: now.to_ntp(),
    }
    .to_bytes();
    let sid = SidExtensions { stop_transfer: Some(StopReason::Override), ..SidExtensions::default() };
    sid.append_to(DEFAULT_ORG_ID, &mut m).unwrap();
    append_auth_extension(&mut m, ext_type::MOBILE_HOME_AUTH, sa);
    m
}

fn reply_code(payload: &[u8]) -> (ReplyCode, u16) {
    let r = RegistrationReplyRepr::parse(&RegistrationReply::new_checked(payload).unwrap()).unwrap();
    (r.code, r.lifetime)
}

fn forged_sa(spi: u32) -> SecurityAssociation {
    SecurityAssociation {
        spi,
        algorithm: AuthAlgorithm::HmacMd5,
        key: b"not the session key at all".to_vec(),
        replay: ReplayMethod::Timestamp,
    }
}

#[test]
fn the_local_association_is_its_own_key_under_the_session_spi() {
    let a = local_association(&key(7)).unwrap();
    assert_eq!(a.spi, crate::device::session_spi(&key(7)).unwrap());
    assert_eq!(a.key.len(), 32);
    assert_ne!(a.key, key(7).as_bytes().to_vec(), "not the session key itself");
    let fig1a = session_association(a.spi, &key(7));
    assert_ne!(a.key, fig1a.key, "FIG. 1a's Agent/Target key differs");
    assert_ne!(a.key, local_association(&key(8)).unwrap().key);
}

#[test]
fn take_over_request_carries_the_elements_and_the_tn_releases_only_on_the_reply() {
    let now = t0();
    let (mut tn, mut tg) = (tn(), target_with(None));
    tn.take_over(now, &plan()).unwrap();
    assert_eq!(tn.state(), LocalTnState::Requesting { target: TARGET });
    assert!(drain(|| tn.poll_event()).is_empty(), "nothing released before the Target answers");
    let sent = drain(|| tn.poll_transmit());
    assert_eq!(sent.len(), 1);
    let req = &sent[0].payload;
    assert_eq!(authenticator_spi(req), Some(local_association(&key(7)).unwrap().spi));
    let repr = RegistrationRequestRepr::parse(&RegistrationRequest::new_checked(&req[..]).unwrap()).unwrap();
    assert_eq!((repr.home_address, repr.home_agent, repr.care_of_address, repr.lifetime), (TN, TARGET, TARGET, 60));
    let sid = SidExtensions::from_message(req, REQUEST_FIXED_LEN, DEFAULT_ORG_ID).unwrap();
    assert_eq!(sid.target_address, Some(TARGET));
    assert_eq!(sid.session_spi, tn.session_spi());
    assert_eq!(sid.link_layer_address.and_then(|l| l.as_ethernet()), Some(MAC));
    assert!(sid.session_key.is_none() && sid.stop_transfer.is_none() && sid.transfer_flags.is_none());

    tg.handle_datagram(now, port(TN), req);
    assert_eq!(
        drain(|| tg.poll_event()),
        vec![
            LocalTargetEvent::AssumeAddress { address: TN },
            LocalTargetEvent::TakenOver { tn_address: TN, lifetime: 60 },
        ]
    );
    assert_eq!(tg.expires(), Some(now + Duration::from_secs(60)));
    target_to_tn(now, &mut tg, &mut tn);
    let ev = drain(|| tn.poll_event());
    assert!(matches!(ev[0], LocalTnEvent::TakenOver { target: TARGET, lifetime: 60, .. }), "{ev:?}");
    assert_eq!(ev[1], LocalTnEvent::ReleaseAddress { address: TN });

    // The Target repeats its gratuitous ARPs while it holds the address.
    assert_eq!(tg.poll_timeout(), Some(now + ms(250)));
    tg.handle_timeout(now + ms(250));
    tg.handle_timeout(now + ms(1000));
    assert_eq!(drain(|| tg.poll_event()), vec![LocalTargetEvent::Announce { address: TN }; 2]);
    assert_eq!(tg.poll_timeout(), Some(now + Duration::from_secs(60)));
}

#[test]
fn a_lost_reply_is_retransmitted_and_the_repeat_only_refreshes() {
    let now = t0();
    let (mut tn, mut tg) = (tn(), target_with(None));
    tn.take_over(now, &plan()).unwrap();
    tn_to_target(now, &mut tn, &mut tg);
    sent_by(&mut tg); // lost
    assert_eq!(drain(|| tg.poll_event()).len(), 2);
    let later = now + Duration::from_secs(1);
    tn.handle_timeout(later);
    tn_to_target(later, &mut tn, &mut tg);
    assert_eq!(drain(|| tg.poll_event()), vec![LocalTargetEvent::Refreshed { lifetime: 60 }]);
    target_to_tn(later, &mut tg, &mut tn);
    assert!(matches!(tn.state(), LocalTnState::Transferred { .. }));
    assert_eq!(tn.stats().retransmissions, 1);
}

#[test]
fn forged_requests_are_ignored_and_change_nothing() {
    let now = t0() + Duration::from_secs(3);
    let (tn, mut tg) = transferred(t0());
    let spi = tg.session_spi().unwrap();
    // The right SPI (visible on the wire) with a wrong key, from a third host.
    tg.handle_datagram(now, SocketAddrV4::new(CN, 434), &stop_demand(now, &forged_sa(spi)));
    // FIG. 1a's association (the session key itself) is not this one either.
    tg.handle_datagram(now, SocketAddrV4::new(CN, 434), &stop_demand(now, &session_association(spi, &key(7))));
    // Another SPI altogether.
    tg.handle_datagram(now, SocketAddrV4::new(CN, 434), &stop_demand(now, &forged_sa(spi ^ 1)));
    assert_eq!(tg.stats().discarded_auth, 2);
    assert_eq!(tg.stats().discarded_unmatched, 1);
    assert!(drain(|| tg.poll_transmit()).is_empty(), "no answer to a forger");
    assert!(drain(|| tg.poll_link_transmit()).is_empty());
    assert!(drain(|| tg.poll_event()).is_empty());
    assert_eq!(tg.state(), LocalTargetState::Holding { tn_address: TN });
    // A forged take-over neither.
    let mut forger = LocalTn::new(tn.config().clone(), 99);
    let mut wrong = plan();
    wrong.session_key = key(8);
    forger.take_over(now, &wrong).unwrap();
    for t in drain(|| forger.poll_transmit()) {
        tg.handle_datagram(now, SocketAddrV4::new(CN, 434), &t.payload);
    }
    assert!(drain(|| tg.poll_event()).is_empty());
    assert_eq!(tg.expires(), Some(t0() + Duration::from_secs(60)));
    assert!(matches!(tn.state(), LocalTnState::Transferred { .. }));
}

#[test]
fn a_replayed_stop_demand_gets_133_and_changes_nothing() {
    let (mut tn, mut tg) = transferred(t0());
    // The TN's genuine take-over request, captured and sent again later.
    let mut again = tn_again_take_over_bytes(&mut tn);
    let sa = local_association(&key(7)).unwrap();
    let old = stop_demand(t0() - Duration::from_secs(1), &sa);
    let now = t0() + Duration::from_secs(2);
    tg.handle_datagram(now, SocketAddrV4::new(CN, 434), &old);
    tg.handle_datagram(now, SocketAddrV4::new(CN, 434), &again.remove(0));
    let replies = drain(|| tg.poll_transmit());
    assert_eq!(replies.len(), 2);
    for r in &replies {
        assert_eq!(reply_code(&r.payload).0, ReplyCode::IdentificationMismatch);
        assert_eq!(r.destination, SocketAddrV4::new(CN, 434), "answered where it came from");
    }
    assert_eq!(tg.stats().replays_refused, 2);
    assert!(drain(|| tg.poll_event()).is_empty());
    assert_eq!(tg.state(), LocalTargetState::Holding { tn_address: TN });
    assert_eq!(tg.expires(), Some(t0() + Duration::from_secs(60)), "a replayed take-over extends nothing");
}

/// The bytes of the take-over request `tn` sent (rebuilt: same plan, same time).
fn tn_again_take_over_bytes(tn: &mut LocalTn) -> Vec<Vec<u8>> {
    let mut twin = LocalTn::new(tn.config().clone(), 11);
    twin.take_over(t0(), &plan()).unwrap();
    drain(|| twin.poll_transmit()).into_iter().map(|t| t.payload).collect()
}

#[test]
fn authentic_stop_demand_hands_back_and_the_target_keeps_the_address_until_acknowledged() {
    let (mut tn, mut tg) = transferred(t0());
    let now = t0() + Duration::from_secs(5);
    tn.stop(now, StopReason::Override).unwrap();
    assert_eq!(tn.state(), LocalTnState::Stopping { target: TARGET });
    tn_to_target(now, &mut tn, &mut tg);
    assert_eq!(
        drain(|| tg.poll_event()),
        vec![
            LocalTargetEvent::StopDemanded { reason: StopReason::Override },
            LocalTargetEvent::Ended { reason: WakeUpReason::StopTransferDemand },
            LocalTargetEvent::WakeUpSent { attempt: 1 },
        ]
    );
    assert_eq!(tg.state(), LocalTargetState::HandingBack { tn_address: TN });
    assert!(tg.holds_address());
    // The reply and the wake-up both go as frames to the stored MAC: the Target holds
    // the TN's address, so a datagram to it would stay on the Target.
    assert_eq!(target_to_tn(now, &mut tg, &mut tn), (0, 2));
    let ev = drain(|| tn.poll_event());
    assert_eq!(ev, vec![LocalTnEvent::StopAccepted, LocalTnEvent::TakeBackAddress { address: TN }]);
    assert_eq!(tn.state(), LocalTnState::Home);
    // Home already, the TN still acknowledges the wake-up; the Target then releases.
    let acks = drain(|| tn.poll_transmit());
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].destination, port(TARGET));
    tg.handle_datagram(now, port(TN), &acks[0].payload);
    assert_eq!(
        drain(|| tg.poll_event()),
        vec![LocalTargetEvent::WakeUpAcknowledged { attempts: 1 }, LocalTargetEvent::ReleaseAddress { address: TN }]
    );
    assert_eq!(tg.state(), LocalTargetState::Ended { tn_address: TN });
    assert_eq!(tg.poll_timeout(), None, "nothing left to do");
    // The TN repeats its gratuitous ARPs.
    tn.handle_timeout(now + ms(250));
    assert_eq!(drain(|| tn.poll_event()), vec![LocalTnEvent::Announce { address: TN }]);
}

#[test]
fn stop_demand_takes_the_address_back_even_if_the_wake_up_is_lost() {
    let (mut tn, mut tg) = transferred(t0());
    let now = t0() + Duration::from_secs(5);
    tn.stop(now, StopReason::Override).unwrap();
    tn_to_target(now, &mut tn, &mut tg);
    // The reply arrives, every wake-up copy is lost.
    for f in drain(|| tg.poll_link_transmit()) {
        if mip_core::wire::message_type(&f.payload) == Some(mip_core::wire::REPLY_TYPE) {
            tn.handle_datagram(now, port(TARGET), &f.payload);
        }
    }
    assert_eq!(tn.state(), LocalTnState::Home);
    assert!(drain(|| tn.poll_event()).contains(&LocalTnEvent::TakeBackAddress { address: TN }));
    // Without the acknowledgement the Target lets go after its grace.
    tg.handle_timeout(now + Duration::from_secs(1));
    let ev = drain(|| tg.poll_event());
    assert!(ev.contains(&LocalTargetEvent::ReleaseAddress { address: TN }), "{ev:?}");
    assert!(!tg.holds_address());
}

#[test]
fn stop_demand_unanswered_still_takes_the_address_back() {
    let (mut tn, _tg) = transferred(t0());
    let mut now = t0() + Duration::from_secs(5);
    tn.stop(now, StopReason::Override).unwrap();
    for _ in 0..40 {
        drain(|| tn.poll_transmit()); // the Target is gone
        match tn.poll_timeout() {
            Some(t) => now = t,
            None => break,
        }
        tn.handle_timeout(now);
    }
    let ev = drain(|| tn.poll_event());
    assert!(ev.contains(&LocalTnEvent::StopUnanswered { failure: RequestFailure::NoAnswer { attempts: 5 } }), "{ev:?}");
    assert!(ev.contains(&LocalTnEvent::TakeBackAddress { address: TN }));
    assert_eq!(tn.state(), LocalTnState::Home);
}

#[test]
fn wake_up_is_retried_with_backoff_until_acknowledged() {
    let (mut tn, mut tg) = transferred(t0());
    let now = t0() + Duration::from_secs(10);
    tg.end(now).unwrap();
    let first = drain(|| tg.poll_link_transmit());
    assert_eq!(first.len(), 1);
    let w = parse_wake_up(&first[0].payload, DEFAULT_ORG_ID).unwrap();
    assert_eq!(w.reason, WakeUpReason::EndedByZeroLifetime);
    assert_eq!((w.notification.home_address, w.notification.home_agent), (TN, TARGET));
    // Lost; the second copy goes one interval later, the third two intervals after that.
    assert_eq!(tg.poll_timeout(), Some(now + Duration::from_secs(1)));
    tg.handle_timeout(now + Duration::from_secs(1));
    let second = drain(|| tg.poll_link_transmit());
    assert_eq!(second.len(), 1);
    let w2 = parse_wake_up(&second[0].payload, DEFAULT_ORG_ID).unwrap();
    assert!(w2.notification.identification > w.notification.identification);
    assert_eq!(tg.poll_timeout(), Some(now + Duration::from_secs(3)));
    // The grace ran out with the second copy: the address is off, the wake-up continues.
    assert!(drain(|| tg.poll_event()).contains(&LocalTargetEvent::ReleaseAddress { address: TN }));
    tn.handle_datagram(now + Duration::from_secs(1), port(TARGET), &second[0].payload);
    assert_eq!(
        drain(|| tn.poll_event()),
        vec![
            LocalTnEvent::WokenUp { reason: WakeUpReason::EndedByZeroLifetime, target: TARGET },
            LocalTnEvent::TakeBackAddress { address: TN },
        ]
    );
    let ack = drain(|| tn.poll_transmit());
    let a = parse_wake_up_ack(&ack[0].payload).unwrap();
    assert_eq!(a.ack.identification, w2.notification.identification);
    tg.handle_datagram(now + Duration::from_secs(1), port(TN), &ack[0].payload);
    assert_eq!(drain(|| tg.poll_event()), vec![LocalTargetEvent::WakeUpAcknowledged { attempts: 2 }]);
    assert_eq!(tg.stats().wake_ups_acknowledged, 1);
    assert_eq!(tg.poll_timeout(), None);
}

#[test]
fn wake_up_never_acknowledged_is_abandoned() {
    let (_tn, mut tg) = transferred(t0());
    let mut now = t0() + Duration::from_secs(10);
    tg.end(now).unwrap();
    let mut copies = drain(|| tg.poll_link_transmit()).len();
    let mut gaps = Vec::new();
    let mut last = now;
    while let Some(t) = tg.poll_timeout() {
        now = t;
        tg.handle_timeout(now);
        let n = drain(|| tg.poll_link_transmit()).len();
        if n > 0 {
            gaps.push((now.as_micros() - last.as_micros()) / 1_000_000);
            last = now;
        }
        copies += n;
    }
    assert_eq!(copies, 5, "five copies in all");
    assert_eq!(gaps, vec![1, 2, 4, 8]);
    let ev = drain(|| tg.poll_event());
    assert!(ev.contains(&LocalTargetEvent::WakeUpAbandoned { attempts: 5 }), "{ev:?}");
    assert_eq!(tg.state(), LocalTargetState::Ended { tn_address: TN });
}

#[test]
fn lifetime_end_wakes_the_tn_which_takes_the_address_back() {
    let (mut tn, mut tg) = transferred(t0());
    let end = t0() + Duration::from_secs(60);
    assert_eq!(tg.poll_timeout(), Some(t0() + ms(250)));
    tg.handle_timeout(end);
    let ev = drain(|| tg.poll_event());
    assert_eq!(ev[0], LocalTargetEvent::Ended { reason: WakeUpReason::BindingExpired });
    assert!(!ev.contains(&LocalTargetEvent::Announce { address: TN }), "no announcement once over: {ev:?}");
    target_to_tn(end, &mut tg, &mut tn);
    assert!(drain(|| tn.poll_event()).contains(&LocalTnEvent::TakeBackAddress { address: TN }));
    for a in drain(|| tn.poll_transmit()) {
        tg.handle_datagram(end, port(TN), &a.payload);
    }
    assert_eq!(tg.state(), LocalTargetState::Ended { tn_address: TN });
    drain(|| tg.poll_event());
    // A take-over under the ended session is refused: it needs a new negotiation.
    let later = end + Duration::from_secs(1);
    tn.take_over(later, &plan()).unwrap();
    tn_to_target(later, &mut tn, &mut tg);
    let r = sent_by(&mut tg);
    assert_eq!(reply_code(&r[0]).0, ReplyCode::AdministrativelyProhibited);
    assert!(drain(|| tg.poll_event()).is_empty());
}

#[test]
fn forged_or_replayed_wake_ups_are_ignored_by_the_tn() {
    let (mut tn, mut tg) = transferred(t0());
    let now = t0() + Duration::from_secs(10);
    let n = GenericNotificationRepr {
        direction: NotificationDirection::HomeAgentToMobileNode,
        home_address: TN,
        home_agent: CN,
        care_of_address: CN,
        identification: now.to_ntp(),
    };
    let spi = tn.session_spi().unwrap();
    let forged = build_wake_up(&n, DEFAULT_ORG_ID, WakeUpReason::BindingExpired, &forged_sa(spi)).unwrap();
    tn.handle_datagram(now, SocketAddrV4::new(CN, 434), &forged);
    let sa = local_association(&key(7)).unwrap();
    let stale_n = GenericNotificationRepr { identification: (now - Duration::from_secs(60)).to_ntp(), ..n };
    let stale = build_wake_up(&stale_n, DEFAULT_ORG_ID, WakeUpReason::BindingExpired, &sa).unwrap();
    tn.handle_datagram(now, SocketAddrV4::new(CN, 434), &stale);
    let other_n = GenericNotificationRepr { home_address: INTERIM, ..n };
    let other = build_wake_up(&other_n, DEFAULT_ORG_ID, WakeUpReason::BindingExpired, &sa).unwrap();
    tn.handle_datagram(now, SocketAddrV4::new(CN, 434), &other);
    assert_eq!(tn.stats().wake_ups_discarded, 3);
    assert!(drain(|| tn.poll_event()).is_empty());
    assert!(drain(|| tn.poll_transmit()).is_empty(), "no acknowledgement");
    assert!(matches!(tn.state(), LocalTnState::Transferred { .. }));
    // The genuine one, then the same bytes again: the copy is a replay.
    tg.end(now).unwrap();
    let frame = drain(|| tg.poll_link_transmit()).remove(0);
    tn.handle_datagram(now, port(TARGET), &frame.payload);
    tn.handle_datagram(now, port(TARGET), &frame.payload);
    assert_eq!(tn.stats().wake_ups_accepted, 1);
    assert_eq!(tn.stats().wake_ups_discarded, 4);
    assert_eq!(drain(|| tn.poll_transmit()).len(), 1, "one acknowledgement");
    // A forged acknowledgement does not release the Target.
    let ack = mip_core::wire::notification::GenericNotificationAckRepr::answering(
        &parse_wake_up(&frame.payload, DEFAULT_ORG_ID).unwrap().notification,
        NotificationDirection::MobileNodeToHomeAgent,
        0,
    );
    let bad = crate::wire::wake_up::build_wake_up_ack(&ack, &forged_sa(spi));
    tg.handle_datagram(now, SocketAddrV4::new(CN, 434), &bad);
    assert_eq!(tg.stats().bad_acknowledgements, 1);
    assert!(tg.holds_address());
}

#[test]
fn with_an_interim_address_the_wake_up_is_ordinary_udp_to_it() {
    let (mut tn, mut tg) = (tn(), target_with(Some(INTERIM)));
    tn.take_over(t0(), &plan()).unwrap();
    tn_to_target(t0(), &mut tn, &mut tg);
    target_to_tn(t0(), &mut tg, &mut tn);
    tg.end(t0() + Duration::from_secs(1)).unwrap();
    assert!(drain(|| tg.poll_link_transmit()).is_empty());
    let udp = drain(|| tg.poll_transmit());
    assert_eq!(udp.len(), 1);
    assert_eq!(udp[0].destination, port(INTERIM));
    assert!(parse_wake_up(&udp[0].payload, DEFAULT_ORG_ID).is_ok());
}

#[test]
fn a_tn_that_missed_the_wake_up_demands_the_stop_itself() {
    let (mut tn, mut tg) = transferred(t0());
    // The Target's wake-ups never arrive.
    tg.handle_timeout(t0() + Duration::from_secs(60));
    tg.handle_timeout(t0() + Duration::from_secs(61));
    assert_eq!(tg.state(), LocalTargetState::Ended { tn_address: TN });
    drain(|| tg.poll_link_transmit());
    let due = tn.poll_timeout().unwrap();
    assert_eq!(due, t0() + Duration::from_secs(65));
    tn.handle_timeout(due);
    assert_eq!(tn.state(), LocalTnState::Stopping { target: TARGET });
    let sent = tn_to_target(due, &mut tn, &mut tg);
    let sid = SidExtensions::from_message(&sent[0].payload, REQUEST_FIXED_LEN, DEFAULT_ORG_ID).unwrap();
    assert_eq!(sid.stop_transfer, Some(StopReason::MissedWakeUp));
    // The Target, over already, still answers (and stops retrying the wake-up).
    let r = sent_by(&mut tg);
    assert_eq!(reply_code(&r[0]), (ReplyCode::Accepted, 0));
    for p in &r {
        tn.handle_datagram(due, port(TARGET), p);
    }
    assert_eq!(tn.state(), LocalTnState::Home);
    assert_eq!(tg.poll_timeout(), None);
}

#[test]
fn bad_requests_and_sessions_are_refused() {
    let mut c = LocalTnConfig::new(TN);
    let mut bare = LocalTn::new(c.clone(), 1);
    assert_eq!(bare.take_over(t0(), &plan()), Err(DeviceError::NoWakeUpAddress));
    c.interim = Some(INTERIM);
    let mut ok = LocalTn::new(c, 1);
    let mut p = plan();
    p.target = TN;
    assert!(matches!(ok.take_over(t0(), &p), Err(DeviceError::BadAddress(_))));
    assert!(matches!(ok.stop(t0(), StopReason::Override), Err(DeviceError::WrongState(_))));
    let mut tg = LocalTarget::new(LocalTargetConfig::new(TARGET));
    let s = LocalSession { tn_address: TN, tn_link: None, interim: None, session_key: key(7), lifetime: 60 };
    assert_eq!(tg.accept_session(s), Err(DeviceError::NoWakeUpAddress));
    // A session cannot replace one held.
    let (_tn, mut tg) = transferred(t0());
    let s = LocalSession { tn_address: TN, tn_link: Some(LinkAddress::ethernet(MAC)), interim: None, session_key: key(9), lifetime: 60 };
    assert!(matches!(tg.accept_session(s), Err(DeviceError::WrongState("holding"))));
    // An authentic request with a wrong Care-of Address is poorly formed.
    let sa = local_association(&key(7)).unwrap();
    let now = t0() + Duration::from_secs(1);
    let mut m = RegistrationRequestRepr {
        flags: RegistrationFlags::default(),
        lifetime: 30,
        home_address: TN,
        home_agent: TARGET,
        care_of_address: CN,
        identification: now.to_ntp(),
    }
    .to_bytes();
    SidExtensions { target_address: Some(TARGET), session_spi: Some(sa.spi), ..SidExtensions::default() }
        .append_to(DEFAULT_ORG_ID, &mut m)
        .unwrap();
    append_auth_extension(&mut m, ext_type::MOBILE_HOME_AUTH, &sa);
    tg.handle_datagram(now, port(TN), &m);
    assert_eq!(reply_code(&sent_by(&mut tg)[0]).0, ReplyCode::PoorlyFormedRequest);
    assert_eq!(tg.stats().requests_refused, 1);
    assert_eq!(tg.expires(), Some(t0() + Duration::from_secs(60)));
}

#[test]
fn association_and_take_over_byte_by_byte() {
    // notes-fig1b.md 2 and 3.1: session key 32 x 0x07 at 2026-11-26T00:00:00Z.
    let a = local_association(&key(7)).unwrap();
    assert_eq!(a.spi, 0xd18f_35ad);
    assert_eq!(hex::encode(&a.key), "b01719d5e172241a18040a6ea9bc35c8f18c74948c8d9ec80e551788b18dcba9");
    let mut tn = tn();
    tn.take_over(t0(), &plan()).unwrap();
    let r = drain(|| tn.poll_transmit()).remove(0).payload;
    let expected = concat!(
        "0100003c", "c612000a", "c6120014", "c6120014", "eeb1f5000000047d", // fixed part
        "2600000a00007ed90001", "c6120014",                                  // Target Address
        "2600000a00007ed90003", "d18f35ad",                                  // Session SPI
        "2600000e00007ed90005", "0001", "02534c000300",                      // Link-Layer Address
        "2014", "d18f35ad", "bb819cd83b559e3f07ce817d8119eb87",              // MHAE
    );
    assert_eq!(hex::encode(&r), expected);
    assert_eq!(r.len(), 92);
    // The stop demand: 24 + 12 + 22 bytes, Care-of Address = the TN, lifetime 0.
    let (mut tn, _tg) = transferred(t0());
    tn.stop(t0() + Duration::from_secs(1), StopReason::Override).unwrap();
    let s = drain(|| tn.poll_transmit()).remove(0).payload;
    assert_eq!(s.len(), 58);
    assert_eq!(hex::encode(&s[..16]), "01000000c612000ac6120014c612000a");
    assert_eq!(hex::encode(&s[24..36]), "2600000800007ed900070300");
    assert_eq!(hex::encode(&s[36..42]), "2014d18f35ad");
}
