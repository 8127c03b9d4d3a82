//! The Agent's side of Session Inter-Device mobility (issue 4 items 3-6, patent FIG. 1a),
//! sans-IO: one test per rule of RFC-NOTES.md, "SID — the Agent (home agent) side".

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use common::*;
use mip_core::auth::{append_auth_extension, verify_authenticator, SecurityAssociation};
use mip_core::time::Time;
use mip_core::wire::notification::{GenericNotificationAckRepr, NotificationDirection};
use mip_core::wire::{ext_type, Extension, RegistrationRequestRepr, ReplyCode, VendorExtension};
use mip_ha::sid::keys::{session_association, transfer_context, wrap_session_key, TransferStage};
use mip_ha::sid::{LinkTransmit, ReversePath, WakeUpRoute};
use mip_ha::{HaEvent, HomeAgent, RemovalReason, SidEvent, TransferEnd, TunnelKind};
use sid_ext::crypto::SessionKey;
use sid_ext::wire::wake_up::{build_wake_up_ack, parse_wake_up, ReceivedWakeUp};
use sid_ext::wire::{
    EncryptedSessionKey, LinkLayerAddress, SessionKeyAlgorithm, SidExtensions, StopReason,
    TransferFlags, WakeUpReason, DEFAULT_ORG_ID,
};

const TARGET: Ipv4Addr = COA1;
const TARGET2: Ipv4Addr = COA2;
const SPI1: u32 = 4096;
const SPI2: u32 = 4097;
const TN_MAC: [u8; 6] = [0x02, 0x00, 0xc6, 0x12, 0x00, 0x0a];
const NEW_MAC: [u8; 6] = [0x02, 0x00, 0xc6, 0x12, 0x00, 0x0b];
/// The cap of the tests' Agent.
const CAP: u16 = 120;

fn sid_ha() -> HomeAgent {
    let mut c = config();
    c.sid.max_transfer_lifetime = CAP;
    HomeAgent::new(c, 7)
}

fn key1() -> SessionKey {
    SessionKey::from_bytes([0x11; 32])
}

fn key2() -> SessionKey {
    SessionKey::from_bytes([0x22; 32])
}

/// The Target's side of the temporary association.
fn session(spi: u32, key: &SessionKey) -> SecurityAssociation {
    session_association(spi, key)
}

/// Fixed part, the SID elements, the Mobile-Home Authentication Extension under `sa`.
fn sid_request(r: &RegistrationRequestRepr, sid: &SidExtensions<'_>, sa: &SecurityAssociation) -> Vec<u8> {
    let mut b = r.to_bytes();
    sid.append_to(DEFAULT_ORG_ID, &mut b).expect("elements fit");
    append_auth_extension(&mut b, ext_type::MOBILE_HOME_AUTH, sa);
    b
}

/// What the TN sends: transfer to `target` with `key` under `spi`, Ethernet address TN_MAC.
fn transfer_request(now: Time, target: Ipv4Addr, lifetime: u16, key: &SessionKey, flags: TransferFlags) -> Vec<u8> {
    let ctx = transfer_context(TransferStage::Transfer, HOME, target, SPI1, HA);
    let wrapped = wrap_session_key(key, &mn_sa().key, &ctx).expect("wrap");
    let sid = SidExtensions {
        target_address: Some(target),
        session_key: Some(EncryptedSessionKey { algorithm: SessionKeyAlgorithm::AesKeyWrapPadded, data: &wrapped }),
        session_spi: Some(SPI1),
        transfer_flags: Some(flags),
        link_layer_address: Some(LinkLayerAddress::ethernet(&TN_MAC)),
        ..SidExtensions::default()
    };
    sid_request(&repr(now, target, lifetime), &sid, &mn_sa())
}

/// A plain renewal from the Target, under `sa`.
fn renewal(now: Time, target: Ipv4Addr, lifetime: u16, sa: &SecurityAssociation) -> Vec<u8> {
    sid_request(&repr(now, target, lifetime), &SidExtensions::default(), sa)
}

/// The current Target (holding `current`) hands the session to TARGET2 with key2/SPI2.
fn further_transfer_request(now: Time, current: &SecurityAssociation, flags: TransferFlags) -> Vec<u8> {
    let ctx = transfer_context(TransferStage::FurtherTransfer, HOME, TARGET2, SPI2, HA);
    let wrapped = wrap_session_key(&key2(), &current.key, &ctx).expect("wrap");
    let sid = SidExtensions {
        target_address: Some(TARGET2),
        session_key: Some(EncryptedSessionKey { algorithm: SessionKeyAlgorithm::AesKeyWrapPadded, data: &wrapped }),
        session_spi: Some(SPI2),
        transfer_flags: Some(flags),
        transferring_node: Some(HOME),
        ..SidExtensions::default()
    };
    sid_request(&repr(now, TARGET2, 600), &sid, current)
}

fn stop_request(now: Time, mac: Option<&[u8; 6]>, sa: &SecurityAssociation) -> Vec<u8> {
    let sid = SidExtensions {
        stop_transfer: Some(StopReason::Override),
        link_layer_address: mac.map(LinkLayerAddress::ethernet),
        ..SidExtensions::default()
    };
    sid_request(&repr(now, HOME, 0), &sid, sa)
}

fn from(a: Ipv4Addr) -> SocketAddrV4 {
    SocketAddrV4::new(a, 434)
}

/// A transfer HOME -> TARGET accepted at `now` with flags `flags`, every output drained.
fn transferred(now: Time, flags: TransferFlags) -> HomeAgent {
    let mut ha = sid_ha();
    ha.handle_datagram(now, from(HOME), &transfer_request(now, TARGET, 100, &key1(), flags));
    assert_eq!(reply(&mut ha, &mn_sa()).1.code, ReplyCode::Accepted);
    drain(&mut ha);
    ha
}

fn drain(ha: &mut HomeAgent) {
    while ha.poll_event().is_some() {}
    while ha.poll_sid_event().is_some() {}
}

fn events(ha: &mut HomeAgent) -> Vec<HaEvent> {
    std::iter::from_fn(|| ha.poll_event()).collect()
}

fn sid_events(ha: &mut HomeAgent) -> Vec<SidEvent> {
    std::iter::from_fn(|| ha.poll_sid_event()).collect()
}

/// The one wake-up frame sent, parsed, authenticated under the TN's association.
fn wake_up_frame(ha: &mut HomeAgent, mac: [u8; 6]) -> (LinkTransmit, ReceivedWakeUp<'static>) {
    let tx = ha.poll_link_transmit().expect("a wake-up frame");
    assert!(ha.poll_link_transmit().is_none(), "one frame");
    assert_eq!(tx.mac, mac, "sent to the stored link-layer address");
    assert_eq!(tx.destination, SocketAddrV4::new(HOME, 434), "addressed to the TN's IP address");
    assert_eq!(tx.source, SocketAddrV4::new(HA, 434));
    let payload: &'static [u8] = Box::leak(tx.payload.clone().into_boxed_slice());
    let w = parse_wake_up(payload, DEFAULT_ORG_ID).expect("a wake-up");
    let sa = mn_sa();
    assert_eq!(w.auth.spi, sa.spi);
    assert!(verify_authenticator(sa.algorithm, &sa.key, w.auth.covered, w.auth.authenticator));
    assert_eq!(w.notification.home_address, HOME);
    assert_eq!(w.notification.home_agent, HA);
    (tx, w)
}

#[test]
fn transfer_accepted_creates_the_binding_and_the_event() {
    let mut ha = sid_ha();
    let flags = TransferFlags::new(true, true);
    ha.handle_datagram(t(0), from(HOME), &transfer_request(t(0), TARGET, 600, &key1(), flags));
    let (dst, rep, _) = reply(&mut ha, &mn_sa());
    assert_eq!(dst, from(HOME), "the reply goes to the TN, under its association");
    assert_eq!((rep.code, rep.lifetime), (ReplyCode::Accepted, CAP), "lifetime capped at max_transfer_lifetime");
    assert_eq!(
        events(&mut ha),
        [HaEvent::BindingAdded {
            home_address: HOME,
            care_of_address: TARGET,
            lifetime: CAP,
            tunnel: TunnelKind::IpInIp,
            reverse_tunnel: true,
            first_for_home: true,
        }],
        "the data plane proxies HOME and tunnels to the Target, reverse tunnel granted (T)"
    );
    assert_eq!(
        sid_events(&mut ha),
        [SidEvent::TransferStarted {
            transferring_node: HOME,
            target: TARGET,
            lifetime: CAP,
            session_spi: SPI1,
            further_transfer: true,
            reverse_path: ReversePath::ReverseTunnel,
            link_layer_address: Some(TN_MAC),
            interim_address: None,
        }]
    );
    let b = ha.bindings(t(1));
    assert_eq!(b.len(), 1);
    let tr = b[0].transfer.as_ref().expect("a transfer binding");
    assert_eq!((tr.transferring_node, tr.target, tr.session_spi), (HOME, TARGET, SPI1));
    assert!(tr.further_transfer && b[0].reverse_tunnel);
    assert_eq!(tr.link_layer_address.as_deref(), Some("02:00:c6:12:00:0a"));
    assert_eq!(ha.stats().sid.transfers_started, 1);
}

#[test]
fn transfer_failing_authentication_is_refused_131_and_changes_nothing() {
    let mut ha = sid_ha();
    let mut bytes = transfer_request(t(0), TARGET, 100, &key1(), TransferFlags::new(true, false));
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    ha.handle_datagram(t(0), from(HOME), &bytes);
    assert_eq!(reply(&mut ha, &mn_sa()).1.code, ReplyCode::MobileNodeFailedAuthentication);
    assert!(ha.bindings(t(0)).is_empty());
    assert!(events(&mut ha).is_empty() && sid_events(&mut ha).is_empty());
    assert!(ha.transfer(t(0), HOME).is_none());
    // Nothing was consumed: the genuine request still passes.
    ha.handle_datagram(t(1), from(HOME), &transfer_request(t(1), TARGET, 100, &key1(), TransferFlags::default()));
    assert_eq!(reply(&mut ha, &mn_sa()).1.code, ReplyCode::Accepted);
}

#[test]
fn transfer_with_bad_elements_is_refused_134_or_140_and_changes_nothing() {
    let mut ha = sid_ha();
    let at = t;
    // Missing Session SPI.
    let sid = SidExtensions {
        target_address: Some(TARGET),
        transfer_flags: Some(TransferFlags::default()),
        link_layer_address: Some(LinkLayerAddress::ethernet(&TN_MAC)),
        ..SidExtensions::default()
    };
    ha.handle_datagram(at(0), from(HOME), &sid_request(&repr(at(0), TARGET, 100), &sid, &mn_sa()));
    assert_eq!(reply(&mut ha, &mn_sa()).1.code, ReplyCode::PoorlyFormedRequest);
    // A vendor type this Agent does not know: RFC 3115 140.
    let mut b = repr(at(1), TARGET, 100).to_bytes();
    Extension::CriticalVendor(VendorExtension { org_id: DEFAULT_ORG_ID, vendor_type: 42, value: &[0; 4] })
        .append_to(&mut b)
        .expect("fits");
    append_auth_extension(&mut b, ext_type::MOBILE_HOME_AUTH, &mn_sa());
    ha.handle_datagram(at(1), from(HOME), &b);
    assert_eq!(reply(&mut ha, &mn_sa()).1.code, ReplyCode::UnsupportedVendorId);
    // A key wrapped for another Target: it cannot be unwrapped here (134).
    let ctx = transfer_context(TransferStage::Transfer, HOME, TARGET2, SPI1, HA);
    let wrapped = wrap_session_key(&key1(), &mn_sa().key, &ctx).expect("wrap");
    let sid = SidExtensions {
        target_address: Some(TARGET),
        session_key: Some(EncryptedSessionKey { algorithm: SessionKeyAlgorithm::AesKeyWrapPadded, data: &wrapped }),
        session_spi: Some(SPI1),
        transfer_flags: Some(TransferFlags::default()),
        link_layer_address: Some(LinkLayerAddress::ethernet(&TN_MAC)),
        ..SidExtensions::default()
    };
    ha.handle_datagram(at(2), from(HOME), &sid_request(&repr(at(2), TARGET, 100), &sid, &mn_sa()));
    assert_eq!(reply(&mut ha, &mn_sa()).1.code, ReplyCode::PoorlyFormedRequest);
    assert_eq!(ha.stats().sid.key_failures, 1);
    // The Session SPI of one of the TN's own associations (134).
    let mut bytes = transfer_request(at(3), TARGET, 100, &key1(), TransferFlags::default());
    let spi_at = bytes.windows(6).position(|w| w == [0x00, 0x03, 0x00, 0x00, 0x10, 0x00]).expect("SPI element") + 2;
    bytes[spi_at..spi_at + 4].copy_from_slice(&mn_sa().spi.to_be_bytes());
    let bytes = resign(&bytes, &mn_sa());
    ha.handle_datagram(at(3), from(HOME), &bytes);
    assert_eq!(reply(&mut ha, &mn_sa()).1.code, ReplyCode::PoorlyFormedRequest);
    assert!(ha.bindings(at(3)).is_empty() && events(&mut ha).is_empty());
    // With SID switched off the same elements are CVSEs nobody understands (140).
    let mut c = config();
    c.sid.enabled = false;
    let mut off = HomeAgent::new(c, 1);
    off.handle_datagram(at(4), from(HOME), &transfer_request(at(4), TARGET, 100, &key1(), TransferFlags::default()));
    assert_eq!(reply(&mut off, &mn_sa()).1.code, ReplyCode::UnsupportedVendorId);
}

/// `bytes` with its trailing Mobile-Home Authentication Extension recomputed.
fn resign(bytes: &[u8], sa: &SecurityAssociation) -> Vec<u8> {
    let mut b = bytes[..bytes.len() - 22].to_vec();
    append_auth_extension(&mut b, ext_type::MOBILE_HOME_AUTH, sa);
    b
}

#[test]
fn renewal_extends_but_never_past_the_cap() {
    let mut ha = transferred(t(0), TransferFlags::default());
    let s1 = session(SPI1, &key1());
    ha.handle_datagram(t(50), from(TARGET), &renewal(t(50), TARGET, 0xffff, &s1));
    let (dst, rep, _) = reply(&mut ha, &s1);
    assert_eq!(dst, from(TARGET), "answered to the Target under the session association");
    assert_eq!((rep.code, rep.lifetime), (ReplyCode::Accepted, CAP));
    assert_eq!(ha.bindings(t(50))[0].lifetime_remaining, u64::from(CAP), "never past the cap");
    assert!(matches!(events(&mut ha)[..], [HaEvent::BindingRefreshed { lifetime: CAP, .. }]));
    assert!(matches!(sid_events(&mut ha)[..], [SidEvent::TransferRenewed { lifetime: CAP, .. }]));
    ha.handle_datagram(t(60), from(TARGET), &renewal(t(60), TARGET, 30, &s1));
    assert_eq!(reply(&mut ha, &s1).1.lifetime, 30, "a shorter lifetime is granted as asked");
    assert_eq!(ha.transfer(t(60), HOME).map(|t| t.renewals), Some(2));
    ha.handle_timeout(t(90));
    assert!(ha.bindings(t(90)).is_empty(), "expired 30 s after the last renewal");
    assert!(sid_events(&mut ha).iter().any(|e| matches!(e, SidEvent::TransferEnded { reason: TransferEnd::Expired, .. })));
}

#[test]
fn renewal_after_the_end_with_the_old_key_is_refused() {
    let mut ha = transferred(t(0), TransferFlags::default());
    let s1 = session(SPI1, &key1());
    // The Target ends the transfer with lifetime 0.
    ha.handle_datagram(t(10), from(TARGET), &renewal(t(10), TARGET, 0, &s1));
    assert_eq!(reply(&mut ha, &s1).1, mip_core::wire::RegistrationReplyRepr {
        code: ReplyCode::Accepted,
        lifetime: 0,
        home_address: HOME,
        home_agent: HA,
        identification: id_at(t(10)),
    });
    assert!(matches!(
        events(&mut ha)[..],
        [HaEvent::BindingRemoved { reason: RemovalReason::Deregistered, last_for_home: true, .. }]
    ));
    let _ = wake_up_frame(&mut ha, TN_MAC);
    drain(&mut ha);
    // The association died with the binding: the old key is refused (131, under the
    // TN's association, as for any SPI the Agent does not know) and nothing changes.
    ha.handle_datagram(t(20), from(TARGET), &renewal(t(20), TARGET, 100, &s1));
    assert_eq!(reply(&mut ha, &mn_sa()).1.code, ReplyCode::MobileNodeFailedAuthentication);
    assert!(ha.bindings(t(20)).is_empty());
    assert!(events(&mut ha).is_empty());
    // (Only the wake-up's retries go on meanwhile.)
    assert!(sid_events(&mut ha).iter().all(|e| matches!(e, SidEvent::WakeUpSent { .. })));
    // Same after an expiry.
    let mut ha = transferred(t(0), TransferFlags::default());
    ha.handle_timeout(t(100));
    drain(&mut ha);
    ha.handle_datagram(t(101), from(TARGET), &renewal(t(101), TARGET, 100, &s1));
    assert_eq!(reply(&mut ha, &mn_sa()).1.code, ReplyCode::MobileNodeFailedAuthentication);
    assert!(ha.bindings(t(101)).is_empty() && events(&mut ha).is_empty());
}

#[test]
fn replayed_renewal_is_refused_133() {
    let mut ha = transferred(t(0), TransferFlags::default());
    let s1 = session(SPI1, &key1());
    let bytes = renewal(t(5), TARGET, 60, &s1);
    ha.handle_datagram(t(5), from(TARGET), &bytes);
    assert_eq!(reply(&mut ha, &s1).1.code, ReplyCode::Accepted);
    // The TN, whose reply was lost, asks for the same transfer again (new
    // Identification): the association goes on with its replay state.
    let again = t(5) + Duration::from_millis(200);
    ha.handle_datagram(again, from(HOME), &transfer_request(again, TARGET, 100, &key1(), TransferFlags::default()));
    assert_eq!(reply(&mut ha, &mn_sa()).1.code, ReplyCode::Accepted);
    drain(&mut ha);
    ha.handle_datagram(t(6), from(TARGET), &bytes);
    let (_, rep, _) = reply(&mut ha, &s1);
    assert_eq!(rep.code, ReplyCode::IdentificationMismatch);
    assert_eq!(rep.identification >> 32, t(6).to_ntp() >> 32, "5.7.1: the Agent's time to resynchronise");
    assert_eq!(ha.bindings(t(6))[0].lifetime_remaining, 99, "the replay extended nothing");
    assert!(events(&mut ha).is_empty());
}

#[test]
fn further_transfer_without_permission_is_refused_129() {
    let mut ha = transferred(t(0), TransferFlags::new(false, false));
    let s1 = session(SPI1, &key1());
    ha.handle_datagram(t(5), from(TARGET), &further_transfer_request(t(5), &s1, TransferFlags::default()));
    assert_eq!(reply(&mut ha, &s1).1.code, ReplyCode::AdministrativelyProhibited);
    let b = ha.bindings(t(5));
    assert_eq!((b.len(), b[0].care_of_address), (1, TARGET), "the binding did not move");
    assert!(events(&mut ha).is_empty() && sid_events(&mut ha).is_empty());
    // The first Target's association still works; the second key was never installed.
    ha.handle_datagram(t(6), from(TARGET2), &renewal(t(6), TARGET2, 60, &session(SPI2, &key2())));
    assert_eq!(reply(&mut ha, &mn_sa()).1.code, ReplyCode::MobileNodeFailedAuthentication);
    ha.handle_datagram(t(7), from(TARGET), &renewal(t(7), TARGET, 60, &s1));
    assert_eq!(reply(&mut ha, &s1).1.code, ReplyCode::Accepted);
}

#[test]
fn further_transfer_moves_the_binding_and_the_final_end_wakes_the_original_tn() {
    let mut ha = transferred(t(0), TransferFlags::new(true, false));
    let (s1, s2) = (session(SPI1, &key1()), session(SPI2, &key2()));
    ha.handle_datagram(t(5), from(TARGET), &further_transfer_request(t(5), &s1, TransferFlags::new(false, true)));
    let (dst, rep, _) = reply(&mut ha, &s1);
    assert_eq!((dst, rep.code, rep.lifetime), (from(TARGET), ReplyCode::Accepted, CAP));
    // New tunnel first, then the old one goes: interception never stops.
    let ev = events(&mut ha);
    assert!(matches!(ev[..], [
        HaEvent::BindingAdded { care_of_address: TARGET2, reverse_tunnel: true, first_for_home: false, .. },
        HaEvent::BindingRemoved { care_of_address: TARGET, reason: RemovalReason::Replaced, last_for_home: false, .. },
    ]), "{ev:?}");
    assert!(matches!(sid_events(&mut ha)[..], [SidEvent::TransferMoved { from: TARGET, to: TARGET2, hops: 1, .. }]));
    let tr = ha.transfer(t(5), HOME).expect("still running");
    assert_eq!((tr.target, tr.session_spi, tr.previous_targets.clone()), (TARGET2, SPI2, vec![TARGET]));
    assert!(!tr.further_transfer && tr.reverse_path == ReversePath::ReverseTunnel);
    // The first Target's association is gone; the second Target's works.
    ha.handle_datagram(t(6), from(TARGET), &renewal(t(6), TARGET, 60, &s1));
    assert_eq!(reply(&mut ha, &mn_sa()).1.code, ReplyCode::MobileNodeFailedAuthentication);
    ha.handle_datagram(t(7), from(TARGET2), &renewal(t(7), TARGET2, 60, &s2));
    assert_eq!(reply(&mut ha, &s2).1.code, ReplyCode::Accepted);
    // Permission was not passed on: the second Target cannot go further.
    ha.handle_datagram(t(8), from(TARGET2), &further_transfer_request(t(8), &s2, TransferFlags::default()));
    assert_eq!(reply(&mut ha, &s2).1.code, ReplyCode::AdministrativelyProhibited);
    drain(&mut ha);
    // The end wakes the original TN, at its stored MAC, naming the last Target.
    ha.handle_datagram(t(9), from(TARGET2), &renewal(t(9), TARGET2, 0, &s2));
    assert_eq!(reply(&mut ha, &s2).1.code, ReplyCode::Accepted);
    let (_, w) = wake_up_frame(&mut ha, TN_MAC);
    assert_eq!((w.notification.care_of_address, w.reason), (TARGET2, WakeUpReason::EndedByZeroLifetime));
    assert_eq!(w.notification.direction, NotificationDirection::HomeAgentToMobileNode);
    // The TN acknowledges: no more copies.
    let ack = GenericNotificationAckRepr::answering(&w.notification, NotificationDirection::MobileNodeToHomeAgent, 0);
    ha.handle_datagram(t(9) + Duration::from_millis(500), from(HOME), &build_wake_up_ack(&ack, &mn_sa()));
    assert!(sid_events(&mut ha).iter().any(|e| matches!(e, SidEvent::WakeUpAcknowledged { transferring_node: HOME, attempts: 1 })));
    assert_eq!(ha.pending_wake_ups(), 0);
    assert_eq!(ha.poll_timeout(), None);
    ha.handle_timeout(t(60));
    assert!(ha.poll_link_transmit().is_none());
}

#[test]
fn forged_stop_transfer_is_refused_131() {
    let mut ha = transferred(t(0), TransferFlags::default());
    // A third host with an association of its own, not the TN's.
    let mut other = mn_sa();
    other.spi = 257;
    other.key = b"another key 1234".to_vec();
    ha.handle_datagram(t(5), from(COA3), &stop_request(t(5), None, &other));
    assert_eq!(reply(&mut ha, &mn_sa()).1.code, ReplyCode::MobileNodeFailedAuthentication);
    // The Target, under its session SPI, is not the TN either.
    let s1 = session(SPI1, &key1());
    ha.handle_datagram(t(6), from(TARGET), &stop_request(t(6), None, &s1));
    assert_eq!(reply(&mut ha, &s1).1.code, ReplyCode::MobileNodeFailedAuthentication);
    assert_eq!(ha.bindings(t(6)).len(), 1, "the transfer runs on");
    assert!(events(&mut ha).is_empty() && sid_events(&mut ha).is_empty());
    assert!(ha.poll_link_transmit().is_none());
}

#[test]
fn stop_transfer_ends_the_binding_and_produces_the_wake_up() {
    let mut ha = transferred(t(0), TransferFlags::default());
    // The TN's link-layer address changed meanwhile: the demand carries the new one.
    ha.handle_datagram(t(5), from(HOME), &stop_request(t(5), Some(&NEW_MAC), &mn_sa()));
    assert_eq!(reply(&mut ha, &mn_sa()).1.code, ReplyCode::Accepted);
    assert!(ha.bindings(t(5)).is_empty());
    assert!(matches!(
        events(&mut ha)[..],
        [HaEvent::BindingRemoved { home_address: HOME, care_of_address: TARGET, reason: RemovalReason::StopTransfer, last_for_home: true }]
    ));
    let sev = sid_events(&mut ha);
    assert!(sev.contains(&SidEvent::LinkLayerAddressChanged { transferring_node: HOME, link_layer_address: NEW_MAC }));
    assert!(sev.contains(&SidEvent::TransferEnded { transferring_node: HOME, target: TARGET, reason: TransferEnd::StopTransfer }));
    let (_, w) = wake_up_frame(&mut ha, NEW_MAC);
    assert_eq!(w.reason, WakeUpReason::StopTransferDemand);
    // A TN that missed the wake-up may demand again: accepted, nothing to do.
    let soon = t(5) + Duration::from_millis(500);
    ha.handle_datagram(soon, from(HOME), &stop_request(soon, None, &mn_sa()));
    assert_eq!(reply(&mut ha, &mn_sa()).1.code, ReplyCode::Accepted);
    assert_eq!(sid_events(&mut ha), [SidEvent::StopWithoutTransfer { transferring_node: HOME }]);
    assert_eq!(ha.pending_wake_ups(), 0, "the TN is evidently awake: retries stop");
    assert!(events(&mut ha).is_empty());
}

#[test]
fn wrong_or_missing_session_key_fails_the_targets_renewals_without_disturbing_the_tn() {
    let mut ha = transferred(t(0), TransferFlags::default());
    let wrong = session(SPI1, &key2());
    ha.handle_datagram(t(5), from(TARGET), &renewal(t(5), TARGET, 100, &wrong));
    let (_, rep, _) = reply(&mut ha, &session(SPI1, &key1()));
    assert_eq!(rep.code, ReplyCode::MobileNodeFailedAuthentication);
    // No authenticator at all: silently dropped (3.8.2.1 a).
    ha.handle_datagram(t(6), from(TARGET), &repr(t(6), TARGET, 100).to_bytes());
    assert!(ha.poll_transmit().is_none());
    assert_eq!(ha.bindings(t(6))[0].lifetime_remaining, 94, "not extended");
    assert!(events(&mut ha).is_empty() && sid_events(&mut ha).is_empty());
    assert_eq!(ha.stats().sid.target_authentication_failures, 1);
    // The TN's own association and replay state are untouched: it can stop the transfer.
    ha.handle_datagram(t(7), from(HOME), &stop_request(t(7), None, &mn_sa()));
    assert_eq!(reply(&mut ha, &mn_sa()).1.code, ReplyCode::Accepted);
    assert!(ha.bindings(t(7)).is_empty());
}

#[test]
fn wake_up_is_retransmitted_with_backoff_then_abandoned() {
    let mut c = config();
    c.sid.wake_up_attempts = 3;
    let mut ha = HomeAgent::new(c, 7);
    ha.handle_datagram(t(0), from(HOME), &transfer_request(t(0), TARGET, 10, &key1(), TransferFlags::default()));
    assert_eq!(reply(&mut ha, &mn_sa()).1.code, ReplyCode::Accepted);
    assert_eq!(ha.poll_timeout(), Some(t(10)));
    ha.handle_timeout(t(10));
    let (_, first) = wake_up_frame(&mut ha, TN_MAC);
    assert_eq!(first.reason, WakeUpReason::BindingExpired);
    let ms = |m: u64| t(10) + Duration::from_millis(m);
    assert_eq!(ha.poll_timeout(), Some(ms(1000)));
    ha.handle_timeout(ms(1000));
    let (_, second) = wake_up_frame(&mut ha, TN_MAC);
    assert!(second.notification.identification > first.notification.identification, "a fresh timestamp per copy");
    assert_eq!(ha.poll_timeout(), Some(ms(3000)), "the interval doubles");
    ha.handle_timeout(ms(3000));
    let _ = wake_up_frame(&mut ha, TN_MAC);
    ha.handle_timeout(ms(7000));
    assert!(ha.poll_link_transmit().is_none());
    assert!(sid_events(&mut ha).iter().any(|e| matches!(e, SidEvent::WakeUpAbandoned { attempts: 3, .. })));
    assert_eq!((ha.pending_wake_ups(), ha.poll_timeout()), (0, None));
    // An acknowledgement of a copy that was given up on is dropped.
    let ack = GenericNotificationAckRepr::answering(&first.notification, NotificationDirection::MobileNodeToHomeAgent, 0);
    ha.handle_datagram(ms(7100), from(HOME), &build_wake_up_ack(&ack, &mn_sa()));
    assert_eq!(ha.stats().sid.bad_acknowledgements, 1);
}

#[test]
fn with_an_interim_address_the_wake_up_is_ordinary_udp_to_it() {
    let mut ha = sid_ha();
    let interim = Ipv4Addr::new(198, 18, 0, 99);
    let ctx = transfer_context(TransferStage::Transfer, HOME, TARGET, SPI1, HA);
    let wrapped = wrap_session_key(&key1(), &mn_sa().key, &ctx).expect("wrap");
    let sid = SidExtensions {
        target_address: Some(TARGET),
        session_key: Some(EncryptedSessionKey { algorithm: SessionKeyAlgorithm::AesKeyWrapPadded, data: &wrapped }),
        session_spi: Some(SPI1),
        transfer_flags: Some(TransferFlags::default()),
        interim_address: Some(interim),
        ..SidExtensions::default()
    };
    ha.handle_datagram(t(0), from(HOME), &sid_request(&repr(t(0), TARGET, 100), &sid, &mn_sa()));
    assert_eq!(reply(&mut ha, &mn_sa()).1.code, ReplyCode::Accepted);
    // An administrator ends it.
    assert!(ha.revoke(t(3), HOME));
    let tx = ha.poll_transmit().expect("the wake-up");
    assert_eq!(tx.destination, SocketAddrV4::new(interim, 434));
    let w = parse_wake_up(&tx.payload, DEFAULT_ORG_ID).expect("a wake-up");
    assert_eq!(w.reason, WakeUpReason::Revoked);
    assert!(ha.poll_link_transmit().is_none());
    assert!(sid_events(&mut ha).iter().any(|e| matches!(e, SidEvent::WakeUpSent { route: WakeUpRoute::Interim { .. }, attempt: 1, .. })));
}

#[test]
fn the_tn_registering_a_care_of_address_of_its_own_supersedes_the_transfer_silently() {
    let mut ha = transferred(t(0), TransferFlags::default());
    ha.handle_datagram(t(5), from(COA3), &signed(&repr(t(5), COA3, 100), &[], &mn_sa()));
    assert_eq!(reply(&mut ha, &mn_sa()).1.code, ReplyCode::Accepted);
    let b = ha.bindings(t(5));
    assert_eq!((b.len(), b[0].care_of_address, b[0].transfer.is_none()), (1, COA3, true));
    assert!(sid_events(&mut ha).contains(&SidEvent::TransferEnded {
        transferring_node: HOME,
        target: TARGET,
        reason: TransferEnd::Superseded
    }));
    assert!(ha.poll_link_transmit().is_none(), "no wake-up: the TN is awake");
    // And its session association is gone.
    ha.handle_datagram(t(6), from(TARGET), &renewal(t(6), TARGET, 60, &session(SPI1, &key1())));
    assert_eq!(reply(&mut ha, &mn_sa()).1.code, ReplyCode::MobileNodeFailedAuthentication);
}
