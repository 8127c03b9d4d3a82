//! Issue 4 end to end, on real packets in lab namespaces, through the Agent (patent FIG. 1a),
//! on the call scenario library (`tools::lab::call`, also `sid-lab run call-transfer`): a
//! two-way call at 1,000 pps each way from cn to the session address 198.18.0.10, and a
//! second correspondent's TCP connection with the TN that is never transferred.
//!
//! - The session moves from the Transferring Node (`mn`, 198.18.0.10 on the home LAN) to a
//!   Target (`fa1`, 198.18.1.1 on foreign 1) through the Agent (`mip-ha` in `ha`), and back
//!   on the TN's stop-transfer demand.
//! - The call moves TN -> Target 1 -> Target 2 (further transfer, reverse-tunnelled) -> TN
//!   (Target 2 ends the session, the Agent wakes the TN).
//!
//! Needs root (CI runs as root).

mod common;

use common::lab::{assert_each_phase, assert_tcp_survived, counters_of};
use tools::lab::call::{self, CallSetup, Change, Itinerary, PhaseSpec, ADDRESSES, ROLES};
use tools::lab::Lab;

/// TN -> Target 1 -> TN on the TN's stop-transfer demand: the Agent wakes the TN, which
/// takes its address back; the call follows the session both ways and no transfer binding
/// is left at the Agent.
#[test]
fn session_moves_to_the_target_and_back_on_the_tns_stop_demand() {
    let Some(_lab) = common::lab::begin("sid_transfer") else { return };
    let mut itinerary = Itinerary::through_agent([false, false]);
    itinerary.title = "FIG. 1a, through the Agent: TN -> Target 1 -> TN (the TN's stop-transfer demand)".into();
    itinerary.devices.truncate(2);
    itinerary.phases = vec![
        itinerary.phases[0].clone(),
        PhaseSpec::new("Target 1 (fa1, reverse direct)", Change::Transfer { to: 1, further: false, reverse_tunnel: false }),
        PhaseSpec::new("TN (home: its stop demand)", Change::Stop { by: 0 }),
    ];
    let lab = Lab::up(itinerary.topology()).expect("lab up");
    let report = call::run_call(&lab, &CallSetup { itinerary, ..CallSetup::default() }).expect("the call scenario runs");
    eprintln!("{report}");
    let r = &report;
    assert_each_phase(r, &ROLES, &[0, 1, 0]);
    assert_tcp_survived(r);

    // The Agent tunnelled to Target 1 while it held the session, and at the end has no
    // transfer binding left; the TN is home.
    let at_t1 = counters_of(r, 1).agent.as_ref().unwrap_or_else(|| panic!("the Agent's counters\n{r}"));
    let binding = at_t1.session().unwrap_or_else(|| panic!("the Agent has a binding for the session\n{r}"));
    assert_eq!(binding.care_of_address, ADDRESSES[1].to_string(), "the binding points to Target 1\n{r}");
    let end = counters_of(r, 2);
    assert!(!end.agent.as_ref().is_some_and(|a| a.transfer_left()), "no transfer binding left\n{r}");
    assert!(end.devices[0].tn_home(), "the TN is home\n{r}");
    assert!(r.passed(), "{r}");
}

/// The call transfer, judged on robust facts only; the figures (loss, gaps, silences at
/// each switch-over, the noise floor) are printed with the report, not asserted.
#[test]
fn call_moves_tn_target1_target2_and_back_while_a_second_correspondents_tcp_survives() {
    let Some(_lab) = common::lab::begin("sid_transfer") else { return };
    let lab = Lab::up(call::topology()).expect("lab up");
    let setup = CallSetup::default();
    let report = call::run_call(&lab, &setup).expect("the call scenario runs");
    eprintln!("{report}");
    let r = &report;

    // Every phase: the session where it should be, the call at the holder only, both ways.
    assert_each_phase(r, &ROLES, &[0, 1, 2, 0]);

    // The further transfer: at the end of Target 2's phase the Agent's binding points to
    // Target 2, one hop on from Target 1, and Target 2 holds the session.
    let agent = |k: usize| counters_of(r, k).agent.as_ref().unwrap_or_else(|| panic!("the Agent's counters of phase {k}\n{r}"));
    let (t1, t2) = (ADDRESSES[1].to_string(), ADDRESSES[2].to_string());
    let binding = agent(2).session().unwrap_or_else(|| panic!("the Agent has a binding for the session\n{r}"));
    assert_eq!(binding.care_of_address, t2, "the Agent's binding moved to Target 2\n{r}");
    let transfer = binding.transfer.as_ref().unwrap_or_else(|| panic!("a transfer binding\n{r}"));
    assert!(transfer.hops >= 1 && transfer.previous_targets.contains(&t1), "one hop on from Target 1\n{r}");
    assert!(counters_of(r, 2).devices[2].holds(), "Target 2 holds the session\n{r}");
    assert!(agent(2).further_transfers >= 1, "the Agent counted the further transfer\n{r}");

    // The reverse paths, by the counters: Target 1 direct, Target 2 through the Agent.
    let data = |k: usize, dev: usize| counters_of(r, k).devices[dev].data;
    assert_eq!(setup.itinerary, Itinerary::through_agent([false, true]));
    assert!(data(1, 1).direct_out_packets > data(0, 1).direct_out_packets, "Target 1 sends directly\n{r}");
    assert_eq!(data(1, 1).reverse_out_packets, 0, "Target 1 reverse-tunnels nothing\n{r}");
    assert!(data(2, 2).reverse_out_packets > data(1, 2).reverse_out_packets, "Target 2 reverse-tunnels\n{r}");
    assert!(agent(2).reverse_packets > agent(1).reverse_packets, "the Agent receives Target 2's reverse tunnel\n{r}");

    // The second correspondent's TCP connection, never transferred, survives.
    assert_tcp_survived(r);

    // The end: no transfer binding at the Agent, the TN home.
    assert!(!agent(3).transfer_left(), "no transfer binding left\n{r}");
    assert!(counters_of(r, 3).devices[0].tn_home(), "the TN is home\n{r}");
    // The scenario's own checks say the same.
    assert!(r.passed(), "{r}");
}
