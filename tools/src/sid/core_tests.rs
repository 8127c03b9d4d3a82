//! Two daemons' cores (data plane off) against each other, datagrams carried by hand: the
//! same-subnet transfer (FIG. 1b) from the negotiation to the take-back, as `sidctl`
//! commands drive it, and the network actions each side asks for.
#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use mip_core::time::Time;

use super::*;

const TN: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const TG: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 20);
const TN_MAC: [u8; 6] = [2, 0x53, 0x4c, 0, 3, 0];
const PSK: &str = "7369642d6465736b2d70686f6e652d70736b2d303030303031";

fn cfg(identity: &str, address: Ipv4Addr, peer: &str, peer_address: Ipv4Addr, extra: &str, peer_extra: &str) -> SidConfig {
    SidConfig::parse(&format!(
        "[device]\nidentity = \"{identity}\"\naddress = \"{address}\"\ninterface = \"eth0\"\n\
         control_socket = \"/nonexistent/{identity}.sock\"\ndata_plane = false\n\
         link_address = \"02:53:4c:00:03:00\"\n{extra}\n\
         [[peer]]\nidentity = \"{peer}\"\naddress = \"{peer_address}:4343\"\npsk = \"{PSK}\"\n{peer_extra}\n"
    ))
    .unwrap()
}

fn t(ms: u64) -> Time {
    Time::from_secs(1_795_651_200) + Duration::from_millis(ms)
}

/// Carries what `from` queued to `to`; true if anything moved.
fn carry(now: Time, from: &mut Core, ip: Ipv4Addr, to: &mut Core) -> bool {
    let mut moved = false;
    while let Some(x) = from.poll_negotiation_transmit() {
        to.negotiation_datagram(now, SocketAddrV4::new(ip, 4343), &x.payload);
        moved = true;
    }
    while let Some(x) = from.poll_registration_transmit() {
        to.registration_datagram(now, SocketAddrV4::new(ip, 434), &x.payload);
        moved = true;
    }
    while let Some(x) = from.poll_link_transmit() {
        assert_eq!(x.mac, TN_MAC, "frames go to the TN's MAC");
        to.registration_datagram(now, x.source, &x.payload);
        moved = true;
    }
    moved
}

/// Carries every queued datagram between the two cores until both are quiet.
fn pump(now: Time, a: (&mut Core, Ipv4Addr), b: (&mut Core, Ipv4Addr)) {
    let ((ca, ia), (cb, ib)) = (a, b);
    for _ in 0..8 {
        let ab = carry(now, ca, ia, cb);
        let ba = carry(now, cb, ib, ca);
        if !ab && !ba {
            return;
        }
    }
}

fn ok(r: Response) -> Response {
    assert!(r.ok, "refused: {}", r.message);
    r
}

fn offer(local: bool, reverse: bool) -> Request {
    Request::Offer {
        peer: "phone".into(),
        role: "transferring".into(),
        lifetime: Some(30),
        further_transfer: false,
        reverse_tunnel: reverse,
        tn_address: None,
        local,
    }
}

/// Offer from the TN, accepted by the Target; returns the TN's negotiation id.
fn negotiate(tn: &mut Core, tg: &mut Core, local: bool) -> u64 {
    ok(tn.command(t(0), offer(local, false)));
    pump(t(0), (tn, TN), (tg, TG));
    let id = tg.offered.keys().next().copied().unwrap();
    ok(tg.command(t(0), Request::Accept { id, reverse_tunnel: None, local: false }));
    pump(t(0), (tn, TN), (tg, TG));
    *tn.negotiated.keys().next().unwrap()
}

fn actions(c: &mut Core) -> Vec<NetAction> {
    c.actions.drain(..).collect()
}

#[test]
fn same_subnet_transfer_end_to_end_through_the_commands() {
    let mut tn = Core::new(cfg("desk", TN, "phone", TG, "", ""), Some(TN_MAC)).unwrap();
    let mut tg = Core::new(cfg("phone", TG, "desk", TN, "", ""), None).unwrap();
    assert!(tn.tn.is_none(), "no [agent]: only same-subnet transfers");
    let id = negotiate(&mut tn, &mut tg, false);
    assert!(tn.negotiated[&id].terms.agent.is_none());
    assert_eq!(tg.local_target.state().name(), "ready");

    ok(tn.command(t(10), Request::Transfer { id }));
    pump(t(10), (&mut tn, TN), (&mut tg, TG));
    assert_eq!(actions(&mut tg), vec![NetAction::Assume { address: TN }]);
    assert_eq!(actions(&mut tn), vec![NetAction::Release { address: TN }]);
    assert_eq!(tn.status(t(10))["same_subnet"]["tn"]["state"], "transferred");
    assert_eq!(tg.status(t(10))["same_subnet"]["target"]["state"], "holding");
    // Renewal is not a thing on the same subnet.
    assert!(!tg.command(t(20), Request::Renew).ok);

    // The TN's stop demand: accepted; the TN takes back; the wake-up that follows is
    // acknowledged and the Target lets go.
    ok(tn.command(t(5000), Request::Stop));
    pump(t(5000), (&mut tn, TN), (&mut tg, TG));
    assert_eq!(actions(&mut tn), vec![NetAction::TakeBack { address: TN }]);
    assert_eq!(actions(&mut tg), vec![NetAction::Relinquish { address: TN }]);
    let s = tg.status(t(5000));
    assert_eq!(s["same_subnet"]["target"]["state"], "ended");
    assert_eq!(s["same_subnet"]["target"]["wake_ups_acknowledged"], 1);
    assert_eq!(tn.status(t(5000))["same_subnet"]["tn"]["state"], "home");
    // The TN repeats its gratuitous ARPs.
    tn.handle_timeout(t(5250));
    assert_eq!(actions(&mut tn), vec![NetAction::Announce { address: TN }]);

    // A second session, ended by the Target: the wake-up alone brings the TN home.
    let id2 = {
        ok(tn.command(t(6000), offer(false, false)));
        pump(t(6000), (&mut tn, TN), (&mut tg, TG));
        let o = *tg.offered.keys().next().unwrap();
        ok(tg.command(t(6000), Request::Accept { id: o, reverse_tunnel: None, local: false }));
        pump(t(6000), (&mut tn, TN), (&mut tg, TG));
        tn.negotiated.iter().find(|(_, n)| !n.used).map(|(i, _)| *i).unwrap()
    };
    ok(tn.command(t(6100), Request::Transfer { id: id2 }));
    pump(t(6100), (&mut tn, TN), (&mut tg, TG));
    assert_eq!(actions(&mut tg), vec![NetAction::Assume { address: TN }]);
    ok(tg.command(t(9000), Request::Stop));
    pump(t(9000), (&mut tn, TN), (&mut tg, TG));
    assert_eq!(actions(&mut tn), vec![NetAction::Release { address: TN }, NetAction::TakeBack { address: TN }]);
    assert_eq!(actions(&mut tg), vec![NetAction::Relinquish { address: TN }]);
    // The first session's wake-up (after the stop demand) and this one.
    assert_eq!(tn.status(t(9000))["same_subnet"]["tn"]["wake_ups_accepted"], 2);
}

#[test]
fn a_tn_with_an_agent_goes_local_when_asked_or_configured() {
    let agent = "[agent]\naddress = \"198.18.0.1\"\nspi = 256\nkey = \"00112233\"\n";
    let mut tn = Core::new(cfg("desk", TN, "phone", TG, agent, ""), Some(TN_MAC)).unwrap();
    let mut tg = Core::new(cfg("phone", TG, "desk", TN, "", ""), None).unwrap();
    // Without --local the terms name the Agent.
    let id = negotiate(&mut tn, &mut tg, false);
    assert_eq!(tn.negotiated[&id].terms.agent, Some(Ipv4Addr::new(198, 18, 0, 1)));
    // With it, none; a reverse tunnel or further transfer makes no sense without an Agent.
    assert!(!tn.command(t(1), offer(true, true)).ok);
    let mut tn2 = Core::new(cfg("desk", TN, "phone", TG, agent, ""), Some(TN_MAC)).unwrap();
    let mut tg2 = Core::new(cfg("phone", TG, "desk", TN, "", ""), None).unwrap();
    let id = negotiate(&mut tn2, &mut tg2, true);
    assert!(tn2.negotiated[&id].terms.agent.is_none());
    // A peer marked same_subnet needs no flag.
    let mut tn3 = Core::new(cfg("desk", TN, "phone", TG, agent, "same_subnet = true"), Some(TN_MAC)).unwrap();
    let mut tg3 = Core::new(cfg("phone", TG, "desk", TN, "", ""), None).unwrap();
    let id = negotiate(&mut tn3, &mut tg3, false);
    assert!(tn3.negotiated[&id].terms.agent.is_none());
    // And the Target's own offer answered with --local.
    let mut tn4 = Core::new(cfg("desk", TN, "phone", TG, agent, ""), Some(TN_MAC)).unwrap();
    let mut tg4 = Core::new(cfg("phone", TG, "desk", TN, "", ""), None).unwrap();
    let target_offer = Request::Offer {
        peer: "desk".into(),
        role: "target".into(),
        lifetime: Some(30),
        further_transfer: true,
        reverse_tunnel: false,
        tn_address: Some(TN),
        local: false,
    };
    ok(tg4.command(t(0), target_offer));
    pump(t(0), (&mut tn4, TN), (&mut tg4, TG));
    let o = *tn4.offered.keys().next().unwrap();
    ok(tn4.command(t(0), Request::Accept { id: o, reverse_tunnel: None, local: true }));
    pump(t(0), (&mut tn4, TN), (&mut tg4, TG));
    let n = tn4.negotiated.values().next().unwrap();
    assert!(n.terms.agent.is_none());
    assert!(!n.terms.further_transfer, "F is cleared: no Agent to hand on through");
    assert_eq!(tg4.local_target.state().name(), "ready");
}
