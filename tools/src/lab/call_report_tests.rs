//! The call report's analysis on a made-up run: phases, losses, gaps, switch-overs,
//! missing probes, the goal and the TCP figures.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::lab::call::CallSetup;

const T0: u64 = 1_700_000_000_000_000;
const MS: u64 = 1000;

fn due(q: u64) -> u64 {
    T0 + q * MS
}

fn arrival(q: u64, late_us: u64) -> Arrival {
    Arrival { seq: q, sent_us: due(q), recv_us: due(q) + late_us }
}

fn phase(name: &str, holder: usize, from_ms: u64, ready_ms: u64, end_ms: u64) -> PhaseMarks {
    PhaseMarks {
        name: name.into(),
        holder,
        intended: holder,
        start_us: T0 + from_ms * MS,
        ready_us: T0 + ready_ms * MS,
        end_us: T0 + end_ms * MS,
    }
}

/// 400 probes at 1 ms. TN has 0..=104, Target 1 105..=204 but #150, Target 2 205..=302,
/// the TN again 303..400 with #350..=#354 held back until #355 is due. Every probe
/// received is answered 300 us later by its device, except #303.
fn run() -> CallData {
    let mut tn: Vec<Arrival> = (0..=104).map(|q| arrival(q, 200)).collect();
    let t1: Vec<Arrival> = (105..=204).filter(|q| *q != 150).map(|q| arrival(q, 200)).collect();
    let t2: Vec<Arrival> = (205..=302).map(|q| arrival(q, 300)).collect();
    for q in 303..400 {
        let late = if (350..355).contains(&q) { (355 - q) * MS + 200 } else { 200 };
        tn.push(arrival(q, late));
    }
    let mut replies: Vec<Reply> = Vec::new();
    for (tag, list) in [&tn, &t1, &t2].into_iter().enumerate() {
        for a in list.iter().filter(|a| a.seq != 303) {
            replies.push(Reply { seq: a.seq, sent_us: a.sent_us, recv_us: a.recv_us + 300, tag: tag as u32 });
        }
    }
    replies.sort_by_key(|r| r.recv_us);
    let call = CallAppReport {
        sent: 400,
        send_errors: 0,
        start_us: T0,
        interval_ns: 1_000_000,
        max_late_ms: 0.0,
        replies: replies.len() as u64,
        answered: replies.len() as u64,
        duplicates: 0,
        longest_gap_ms: 0.0,
        rtt_avg_ms: 0.0,
        rtt_max_ms: 0.0,
        by_tag: BTreeMap::new(),
        log_overflow: 0,
    };
    let setup = CallSetup { settle: Duration::from_millis(20), ..CallSetup::default() };
    CallData {
        setup,
        realtime: false,
        devices: vec![
            ("TN".into(), "mn".into(), Ipv4Addr::new(198, 18, 0, 10)),
            ("Target 1".into(), "fa1".into(), Ipv4Addr::new(198, 18, 1, 1)),
            ("Target 2".into(), "fa2".into(), Ipv4Addr::new(198, 18, 2, 1)),
        ],
        phases: vec![
            phase("home", 0, 0, 0, 99),
            phase("one", 1, 100, 110, 199),
            phase("two", 2, 200, 210, 299),
            phase("back", 0, 300, 305, 399),
        ],
        events: vec![(T0, "start".into()), (T0 + 100 * MS, "offer 1".into()), (T0 + 200 * MS, "offer 2".into()), (T0 + 300 * MS, "stop".into())],
        snapshots: Vec::new(),
        forgeries: Vec::new(),
        failures: Vec::new(),
        call,
        echo: Vec::new(),
        arrivals: vec![tn, t1, t2],
        replies,
        tcp_send: TcpSendReport { bytes: 300, duration_ms: 0.0, longest_block_ms: 0.0, acknowledged: true, error: None },
        tcp_recv: TcpRecvReport {
            bytes: 300,
            errors: 0,
            first_error_offset: None,
            longest_stall_ms: 0.0,
            longest_stall_end_us: None,
            connected_us: None,
            eof: true,
            error: None,
        },
        tcp_progress: vec![(T0 + 304 * MS, 100), (T0 + 805 * MS, 300)],
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

#[test]
fn phases_losses_and_gaps() {
    let r = analyze(&run());
    let seqs: Vec<(u64, u64)> = r.phases.iter().map(|p| p.seqs).collect();
    assert_eq!(seqs, [(0, 100), (100, 200), (200, 300), (300, 400)]);
    let lost: Vec<(u64, u64)> = r.phases.iter().map(|p| (p.forward.lost, p.back.lost)).collect();
    assert_eq!(lost, [(0, 0), (1, 0), (0, 0), (0, 1)]);
    // #149 -> #151: 2 ms; #349 -> the held-back #350: 6 ms.
    assert!(close(r.phases[1].forward.longest_gap_ms, 2.0), "{:?}", r.phases[1].forward);
    assert!(close(r.phases[3].forward.longest_gap_ms, 6.0), "{:?}", r.phases[3].forward);
    // The sender paced every probe on time.
    assert!(r.phases.iter().all(|p| close(p.forward.source_gap_ms, 1.0)));
    assert_eq!(r.phases[0].holder, "TN");
    assert!(close(r.baseline.forward.longest_gap_ms, 1.0));
    // Settled window of phase one: 130..199 ms, #150 missing.
    let w = &r.phases[1].settled;
    assert_eq!((w.expected, w.forward.clone(), w.returned.clone()), (69, vec![0, 68, 0], vec![0, 68, 0]));
}

#[test]
fn switchovers_and_missing_probes_are_placed() {
    let r = analyze(&run());
    let s: Vec<(Option<f64>, Option<f64>)> = r.switchovers.iter().map(|s| (s.forward_silence_ms, s.forward_first_ms)).collect();
    let expect = [(1.0, 5.2), (1.1, 5.3), (0.9, 3.2)];
    for (got, want) in s.iter().zip(expect) {
        assert!(close(got.0.unwrap_or(-1.0), want.0) && close(got.1.unwrap_or(-1.0), want.1), "{s:?}");
    }
    assert_eq!((r.switchovers[0].from.as_str(), r.switchovers[0].to.as_str()), ("TN", "Target 1"));
    assert_eq!(r.missing_forward.len(), 1);
    let m = &r.missing_forward[0];
    assert_eq!((m.first, m.last, m.phase.as_str(), m.after_event.as_str()), (150, 150, "one", "offer 1"));
    assert!(close(m.after_event_ms, 50.0));
    let m = &r.missing_return[0];
    assert_eq!((m.first, m.answered_by.as_deref()), (303, Some("TN")));
}

#[test]
fn goal_tcp_and_timeline() {
    let r = analyze(&run());
    assert!(!r.goal.met);
    assert_eq!((r.goal.lost_forward, r.goal.lost_return), (1, 1));
    assert!(close(r.goal.worst_gap_ms, 6.0) && r.goal.worst_gap_where == "forward, back");
    // Home at 305 ms: 100 bytes by then, 200 after, the first 500 ms after.
    assert_eq!(r.tcp.bytes_after_home, 200);
    assert!(close(r.tcp.first_data_after_home_ms.unwrap_or(0.0), 500.0));
    assert!(r.tcp.ok);
    // 100 ms rows from the call's start to the last event.
    assert_eq!(r.timeline.len(), 4);
    assert_eq!(r.timeline[0].forward, vec![100, 0, 0]);
    assert_eq!(r.timeline[1].forward, vec![5, 94, 0]);
    assert_eq!(r.timeline[1].events, vec!["offer 1".to_owned()]);
    // The text renders every part.
    let text = r.to_string();
    for part in ["timeline", "switch-overs", "#150", "goal (zero loss", "NOT met"] {
        assert!(text.contains(part), "{part} missing from\n{text}");
    }
}

/// FIG. 1b on made-up data: 500 probes at 1 ms, the TN has 0..=104, 205..=304 and 405..,
/// the Target 105..=204 and 305..=404; every probe answered by its device.
fn same_subnet_run(acked_at_the_end: u64, forged_state: &str) -> CallData {
    let mut d = run();
    let owner = |q: u64| if (105..=204).contains(&q) || (305..=404).contains(&q) { 1 } else { 0 };
    let mut arrivals = vec![Vec::new(), Vec::new()];
    for q in 0..500 {
        arrivals[owner(q)].push(arrival(q, 200));
    }
    d.replies = (0..500).map(|q| Reply { seq: q, sent_us: due(q), recv_us: due(q) + 500, tag: owner(q) as u32 }).collect();
    d.arrivals = arrivals;
    d.call.sent = 500;
    d.setup.itinerary = crate::lab::call_plan::Itinerary::same_subnet();
    d.devices = vec![("TN".into(), "mn".into(), Ipv4Addr::new(198, 18, 0, 10)), ("Target".into(), "tgt".into(), Ipv4Addr::new(198, 18, 0, 20))];
    let names: Vec<String> = d.setup.itinerary.phases.iter().map(|p| p.name.clone()).collect();
    d.phases = (0..5u64)
        .map(|k| {
            let mut p = phase(&names[k as usize], [0, 1, 0, 1, 0][k as usize], k * 100, k * 100 + 5, k * 100 + 99);
            if k == 0 {
                p.ready_us = p.start_us;
            }
            p
        })
        .collect();
    d.events = (0..5).map(|k| (T0 + k * 100 * MS, names[k as usize].clone())).collect();
    let tn = ["home", "transferred", "home", "transferred", "home"];
    let tg = ["idle", "holding", "ended", "holding", "ended"];
    let woken = [0, 0, 1, 1, 2];
    d.snapshots = (0..5)
        .map(|k| {
            let acked = if k == 4 { acked_at_the_end } else { woken[k] };
            let status = |tn_state: &str, tg_state: &str, garp: u64, direct: u64| {
                serde_json::json!({
                    "transferring_node": null,
                    "target": { "state": "idle" },
                    "same_subnet": {
                        "tn": { "state": tn_state, "wake_ups_accepted": woken[k] },
                        "target": { "state": tg_state, "wake_ups_sent": woken[k], "wake_ups_acknowledged": acked },
                    },
                    "data": { "gratuitous_arps": garp, "direct_out_packets": direct },
                })
            };
            let devices = vec![
                DeviceCounters::from_status("TN", "mn", &status(tn[k], "idle", 3 * woken[k], 0)),
                DeviceCounters::from_status("Target", "tgt", &status("home", tg[k], 3 * (k as u64).div_ceil(2), 100 * (k as u64).div_ceil(2))),
            ];
            Snapshot { phase: names[k].clone(), at_us: T0 + (k as u64 * 100 + 99) * MS, devices, agent: None }
        })
        .collect();
    d.forgeries = vec![Forgery {
        phase: names[1].clone(),
        from: "cn".into(),
        sent_to: vec!["198.18.0.20".into(), "198.18.0.10".into()],
        discarded_before: 0,
        discarded_after: 2,
        target_state_after: forged_state.into(),
        wake_ups_sent_before: 0,
        wake_ups_sent_after: 0,
        tn_state_after: "transferred".into(),
    }];
    d.tcp_progress = vec![(T0 + 50 * MS, 50), (T0 + 250 * MS, 100), (T0 + 450 * MS, 300)];
    d
}

#[test]
fn same_subnet_checks_follow_the_itinerary() {
    let r = analyze(&same_subnet_run(2, "holding"));
    assert!(r.passed(), "{r}");
    assert!(!r.agent && r.phases.len() == 5);
    for part in ["2. Target handed the address back", "4. Target handed the address back", "a forged stop demand", "3. Target announced"] {
        assert!(r.checks.iter().any(|c| c.name.contains(part)), "no check {part:?}: {:#?}", r.checks);
    }
    // Two home-comings, TCP data after each.
    let resumed: Vec<u64> = r.tcp.resumed.iter().map(|x| x.bytes_in_phase).collect();
    assert_eq!(resumed, [50, 200]);
    assert!(r.to_string().contains("forged stop demands"));

    // A wake-up never acknowledged, a forged demand that moved the session: both caught.
    let r = analyze(&same_subnet_run(1, "handing-back"));
    let failed: Vec<&str> = r.checks.iter().filter(|c| !c.ok).map(|c| c.name.as_str()).collect();
    assert_eq!(failed.len(), 2, "{failed:#?}");
    assert!(failed[0].starts_with("4. Target handed the address back") && failed[1].contains("forged stop demand"), "{failed:#?}");
}
