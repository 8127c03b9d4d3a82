//! The same-subnet transfer (patent FIG. 1b) on real packets, no Agent, on the call
//! scenario library (`tools::lab::call`, also `sid-lab run call-transfer --same-subnet`).
//!
//! A correspondent (`cn`, beyond the router) calls the session address 198.18.0.10 at
//! 1,000 pps each way while the Transferring Node (`mn`, 198.18.0.10) hands its address to
//! a Target on its own LAN (`tgt`, 198.18.0.20), which takes it over by ARP and holds it;
//! the session comes back by the TN's stop-transfer demand, moves to the Target once more
//! and comes back when the Target ends it (its wake-up to the TN's MAC). While the Target
//! first holds the session, a forged stop demand from cn (the session's SPI, a wrong key)
//! must be dropped and change nothing. A second correspondent's TCP connection with the
//! TN, never transferred, survives. Needs root (CI runs as root).

mod common;

use common::lab::{assert_each_phase, assert_tcp_survived, counters_of};
use tools::lab::call::{self, CallSetup, Change};
use tools::lab::Lab;

const ROLES: [&str; 2] = ["TN", "Target"];

/// The call transfer on the TN's LAN, judged on robust facts only; the figures (loss,
/// gaps, silences at each switch-over, the noise floor) are printed with the report.
#[test]
fn call_moves_to_a_same_lan_target_and_back_twice_while_a_forged_stop_changes_nothing() {
    let Some(_lab) = common::lab::begin("sid_same_subnet") else { return };
    let setup = CallSetup::same_subnet();
    let lab = Lab::up(setup.itinerary.topology()).expect("lab up");
    let report = call::run_call(&lab, &setup).expect("the call scenario runs");
    eprintln!("{report}");
    let r = &report;
    assert!(!r.agent && r.counters.iter().all(|s| s.agent.is_none()), "no Agent runs\n{r}");

    // TN -> Target -> TN (its stop demand) -> Target -> TN (the Target ends it): the call
    // at the holder only, both ways, in every phase.
    let changes: Vec<Change> = setup.itinerary.phases.iter().map(|p| p.change).collect();
    assert_eq!(changes[2], Change::Stop { by: 0 }, "the first hand-back is the TN's stop demand");
    assert_eq!(changes[4], Change::Stop { by: 1 }, "the second is ended by the Target");
    assert_each_phase(r, &ROLES, &[0, 1, 0, 1, 0]);

    let dev = |k: usize, i: usize| &counters_of(r, k).devices[i];
    for k in [1, 3] {
        // The take-over: announced by gratuitous ARP, the answers sent directly from the
        // Target (a same-subnet session has no tunnel), the TN released its address.
        let (before, now) = (dev(k - 1, 1), dev(k, 1));
        assert_eq!(now.local_target_state, "holding", "phase {k}: the Target holds\n{r}");
        assert_eq!(dev(k, 0).local_tn_state, "transferred", "phase {k}: the TN let its address go\n{r}");
        assert!(now.data.gratuitous_arps >= before.data.gratuitous_arps + 2, "phase {k}: the Target announced the address\n{r}");
        assert!(now.data.direct_out_packets > before.data.direct_out_packets, "phase {k}: the answers left the Target directly\n{r}");
        assert_eq!(now.data.reverse_out_packets, 0, "phase {k}: nothing tunnelled\n{r}");
        assert_eq!(now.data.tunnel_in_packets, 0, "phase {k}: nothing tunnelled to the Target\n{r}");
    }
    for k in [2, 4] {
        // The hand-back, by the reply to the demand (k = 2) or the Target's own end
        // (k = 4): the Target wakes the TN, which takes its address back and acknowledges.
        let (tg, tn) = ((dev(k - 1, 1), dev(k, 1)), (dev(k - 1, 0), dev(k, 0)));
        assert_eq!(tg.1.local_target_state, "ended", "phase {k}: the Target let the address go\n{r}");
        assert_eq!(tg.1.wake_ups_acknowledged, tg.0.wake_ups_acknowledged + 1, "phase {k}: the TN acknowledged the wake-up\n{r}");
        assert!(tn.1.wake_ups_accepted > tn.0.wake_ups_accepted, "phase {k}: the TN accepted the wake-up\n{r}");
        assert!(tn.1.tn_home(), "phase {k}: the TN is home\n{r}");
    }

    // The forgery (an issue requirement): both copies dropped and counted as
    // unauthenticated; the Target still holds, sent no wake-up; the TN still transferred.
    assert_eq!(r.forgeries.len(), 1, "{r}");
    let f = &r.forgeries[0];
    assert_eq!(f.phase, r.phases[1].name, "{r}");
    assert_eq!(f.sent_to, ["198.18.0.20", "198.18.0.10"], "{r}");
    assert!(f.discarded_after >= f.discarded_before + 2, "forged demands counted\n{f:#?}\n{r}");
    assert_eq!(f.target_state_after, "holding", "the Target still holds after the forged demand\n{r}");
    assert_eq!((f.wake_ups_sent_before, f.wake_ups_sent_after), (0, 0), "no wake-up after the forged demand\n{r}");
    assert_eq!(f.tn_state_after, "transferred", "{r}");
    // ... and the session stayed at the Target until the TN demanded it back.
    assert_eq!(dev(1, 1).wake_ups_sent, 0, "{r}");

    // The second correspondent's TCP connection, never transferred, survives both stays.
    assert_tcp_survived(r);
    assert_eq!(r.tcp.resumed.len(), 2, "two home-comings\n{r}");

    // The end: the TN home, the Target holds nothing; the scenario's own checks agree.
    assert!(dev(4, 0).tn_home() && !dev(4, 1).holds(), "{r}");
    assert!(r.passed(), "{r}");
}
