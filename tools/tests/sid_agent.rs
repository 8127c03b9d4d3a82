//! sid_ext::device (TN, Target) against the real Agent (mip_ha::HomeAgent), sans-IO:
//! transfer, renewal, further transfer, lifetime 0, wake-up and its acknowledgement,
//! stop-transfer demand. Datagrams are carried by hand between the state machines.
#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use mip_core::auth::{AuthAlgorithm, ReplayMethod, SecurityAssociation};
use mip_core::time::Time;
use mip_ha::config::{HomeAgentConfig, MobileNodeEntry};
use mip_ha::{HomeAgent, SidEvent, TransferEnd};
use sid_ext::crypto::SessionKey;
use sid_ext::device::{
    session_spi, transfer_context, LinkAddress, Target, TargetConfig, TargetEvent, TargetSession,
    TnConfig, TnEvent, TnState, TransferPlan, TransferStage, TransferringNode,
};
use sid_ext::wire::StopReason;

const AGENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const TN: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const T1: Ipv4Addr = Ipv4Addr::new(198, 19, 1, 10);
const T2: Ipv4Addr = Ipv4Addr::new(198, 19, 2, 10);
const MAC: [u8; 6] = [0x02, 0, 0xc6, 0x12, 0, 0x0a];

fn msa() -> SecurityAssociation {
    SecurityAssociation {
        spi: 256,
        algorithm: AuthAlgorithm::HmacMd5,
        key: b"0123456789abcdef".to_vec(),
        replay: ReplayMethod::Timestamp,
    }
}

fn t(secs: u64) -> Time {
    Time::from_secs(1_795_651_200 + secs)
}

fn agent() -> HomeAgent {
    let mut c = HomeAgentConfig::new(AGENT, 24);
    c.max_lifetime = 600;
    c.sid.max_transfer_lifetime = 60;
    c.mobile_nodes.push(MobileNodeEntry {
        home_address: Some(TN),
        nai: None,
        security_associations: vec![msa()],
    });
    HomeAgent::new(c, 3)
}

fn tn() -> TransferringNode {
    let mut c = TnConfig::new(TN, AGENT, msa());
    c.link_address = Some(LinkAddress::ethernet(MAC));
    TransferringNode::new(c, 1).unwrap()
}

/// Carries every queued datagram once around: devices -> Agent -> devices.
fn pump(now: Time, ha: &mut HomeAgent, tn: &mut TransferringNode, targets: &mut [(Ipv4Addr, &mut Target)]) {
    for _ in 0..4 {
        while let Some(x) = tn.poll_transmit() {
            ha.handle_datagram(now, SocketAddrV4::new(TN, 434), &x.payload);
        }
        for (addr, tg) in targets.iter_mut() {
            while let Some(x) = tg.poll_transmit() {
                ha.handle_datagram(now, SocketAddrV4::new(*addr, 434), &x.payload);
            }
        }
        while let Some(x) = ha.poll_transmit() {
            let ip = *x.destination.ip();
            if ip == TN {
                tn.handle_datagram(now, SocketAddrV4::new(AGENT, 434), &x.payload);
            } else if let Some((_, tg)) = targets.iter_mut().find(|(a, _)| *a == ip) {
                tg.handle_datagram(now, SocketAddrV4::new(AGENT, 434), &x.payload);
            }
        }
        // The wake-up goes to the TN's MAC, bypassing ARP.
        while let Some(l) = ha.poll_link_transmit() {
            assert_eq!(l.mac, MAC);
            tn.handle_datagram(now, l.source, &l.payload);
        }
    }
}

fn events<E>(mut f: impl FnMut() -> Option<E>) -> Vec<E> {
    std::iter::from_fn(&mut f).collect()
}

#[test]
fn context_is_the_agents() {
    let a = transfer_context(TransferStage::FurtherTransfer, TN, T1, 4096, AGENT);
    let b = mip_ha::sid::keys::transfer_context(mip_ha::sid::keys::TransferStage::FurtherTransfer, TN, T1, 4096, AGENT);
    assert_eq!(a, b);
}

#[test]
fn transfer_renew_further_transfer_end_and_wake_up() {
    let mut ha = agent();
    let mut tn = tn();
    let mut t1 = Target::new(TargetConfig::new(T1), 2);
    let mut t2 = Target::new(TargetConfig::new(T2), 4);
    let k1 = SessionKey::from_bytes([0x11; 32]);
    let k2 = SessionKey::from_bytes([0x22; 32]);

    // Negotiated (k1, F granted); the Target takes the session, the TN asks the Agent.
    let s1 = TargetSession { tn_address: TN, agent: AGENT, session_key: k1.clone(), lifetime: 300, further_transfer: true, reverse_tunnel: false };
    t1.accept_session(t(0), s1).unwrap();
    tn.transfer(t(0), &TransferPlan { target: T1, session_key: k1, lifetime: 300, further_transfer: true, reverse_tunnel: false }).unwrap();
    pump(t(0), &mut ha, &mut tn, &mut [(T1, &mut t1)]);
    let ev = events(|| tn.poll_event());
    assert!(ev.contains(&TnEvent::ReleaseAddress { address: TN }), "{ev:?}");
    assert_eq!(tn.state(), TnState::Transferred { target: T1, lifetime: 60 });
    assert_eq!(ha.transfer(t(0), TN).unwrap().target, T1);

    // The Target's confirming renewal learns the cap.
    let at = t1.poll_timeout().unwrap();
    t1.handle_timeout(at);
    pump(at, &mut ha, &mut tn, &mut [(T1, &mut t1)]);
    let ev = events(|| t1.poll_event());
    assert!(ev.contains(&TargetEvent::Renewed { lifetime: 60 }), "{ev:?}");
    // And renews on its own before the 60 s run out, several times.
    let mut now = at;
    for _ in 0..3 {
        now = t1.poll_timeout().unwrap();
        t1.handle_timeout(now);
        pump(now, &mut ha, &mut tn, &mut [(T1, &mut t1)]);
        assert_eq!(events(|| t1.poll_event()), vec![TargetEvent::Renewed { lifetime: 60 }]);
    }
    assert!(now > t(100), "the binding outlived its first lifetime");
    assert_eq!(ha.transfer(now, TN).unwrap().renewals, 4);

    // Further transfer to T2 with k2, no further permission.
    t1.transfer_further(now, T2, &k2, 300, false, true).unwrap();
    t2.accept_session(now, TargetSession { tn_address: TN, agent: AGENT, session_key: k2, lifetime: 300, further_transfer: false, reverse_tunnel: true }).unwrap();
    pump(now, &mut ha, &mut tn, &mut [(T1, &mut t1), (T2, &mut t2)]);
    let ev = events(|| t1.poll_event());
    assert!(ev.contains(&TargetEvent::RemoveAddress { address: TN }), "{ev:?}");
    assert_eq!(ha.transfer(now, TN).unwrap().target, T2);
    assert_eq!(ha.transfer(now, TN).unwrap().session_spi, session_spi(&SessionKey::from_bytes([0x22; 32])).unwrap());

    // T2 confirms, then ends with lifetime 0: the Agent wakes the TN, which acknowledges.
    now = t2.poll_timeout().unwrap();
    t2.handle_timeout(now);
    pump(now, &mut ha, &mut tn, &mut [(T2, &mut t2)]);
    assert!(events(|| t2.poll_event()).contains(&TargetEvent::Renewed { lifetime: 60 }));
    now = now + Duration::from_secs(5);
    t2.end(now).unwrap();
    pump(now, &mut ha, &mut tn, &mut [(T2, &mut t2)]);
    assert_eq!(events(|| t2.poll_event()), vec![TargetEvent::Ended, TargetEvent::RemoveAddress { address: TN }]);
    let ev = events(|| tn.poll_event());
    assert!(ev.contains(&TnEvent::TakeBackAddress { address: TN }), "{ev:?}");
    assert_eq!(tn.state(), TnState::Home);
    let sid: Vec<_> = events(|| ha.poll_sid_event());
    assert!(sid.iter().any(|e| matches!(e, SidEvent::TransferEnded { reason: TransferEnd::ZeroLifetime, .. })));
    assert!(sid.iter().any(|e| matches!(e, SidEvent::WakeUpAcknowledged { .. })), "{sid:?}");
    assert_eq!(ha.pending_wake_ups(), 0);
    // The old session key is refused now.
    t2.accept_session(now, TargetSession { tn_address: TN, agent: AGENT, session_key: SessionKey::from_bytes([0x22; 32]), lifetime: 60, further_transfer: false, reverse_tunnel: false }).unwrap();
    t2.renew(now + Duration::from_secs(1)).unwrap();
    pump(now + Duration::from_secs(1), &mut ha, &mut tn, &mut [(T2, &mut t2)]);
    assert!(ha.transfer(now, TN).is_none());
}

#[test]
fn target_without_permission_cannot_transfer_further_and_tn_stops_at_will() {
    let mut ha = agent();
    let mut tn = tn();
    let mut t1 = Target::new(TargetConfig::new(T1), 2);
    let k1 = SessionKey::from_bytes([0x33; 32]);
    t1.accept_session(t(0), TargetSession { tn_address: TN, agent: AGENT, session_key: k1.clone(), lifetime: 60, further_transfer: false, reverse_tunnel: false }).unwrap();
    tn.transfer(t(0), &TransferPlan { target: T1, session_key: k1, lifetime: 60, further_transfer: false, reverse_tunnel: false }).unwrap();
    pump(t(0), &mut ha, &mut tn, &mut [(T1, &mut t1)]);
    assert!(matches!(tn.state(), TnState::Transferred { .. }));
    assert!(t1.transfer_further(t(1), T2, &SessionKey::from_bytes([0x44; 32]), 60, false, false).is_err());

    // The TN's link-layer address changed: stop-transfer demand carrying the new one.
    let new_mac = [0x02, 0, 0, 0, 0, 0x0b];
    tn.stop(t(5), StopReason::LinkLayerAddressChanged, Some(LinkAddress::ethernet(new_mac))).unwrap();
    for _ in 0..2 {
        while let Some(x) = tn.poll_transmit() {
            ha.handle_datagram(t(5), SocketAddrV4::new(TN, 434), &x.payload);
        }
        while let Some(x) = ha.poll_transmit() {
            if *x.destination.ip() == TN {
                tn.handle_datagram(t(5), SocketAddrV4::new(AGENT, 434), &x.payload);
            }
        }
        // The wake-up now goes to the new MAC.
        while let Some(l) = ha.poll_link_transmit() {
            assert_eq!(l.mac, new_mac);
            tn.handle_datagram(t(5), l.source, &l.payload);
        }
    }
    let ev = events(|| tn.poll_event());
    assert!(ev.contains(&TnEvent::StopAccepted), "{ev:?}");
    assert!(ev.contains(&TnEvent::TakeBackAddress { address: TN }));
    assert!(ha.transfer(t(5), TN).is_none());
    // A stop-transfer demand with no transfer running is accepted too (missed wake-up).
    tn.stop(t(10), StopReason::MissedWakeUp, None).unwrap();
    while let Some(x) = tn.poll_transmit() {
        ha.handle_datagram(t(10), SocketAddrV4::new(TN, 434), &x.payload);
    }
    while let Some(x) = ha.poll_transmit() {
        tn.handle_datagram(t(10), SocketAddrV4::new(AGENT, 434), &x.payload);
    }
    assert!(events(|| tn.poll_event()).contains(&TnEvent::StopAccepted));
}
