//! The call transfer's pass/fail checks: robust facts only (who got the call in each
//! settled window, the counters, the TCP stream, the final state), never timings. The
//! goal (zero loss, gaps of at most two intervals) is a verdict of the report, not a check.
//!
//! Which checks apply follows the itinerary's phases: every phase has the delivery
//! checks; a transfer, its reverse path (and a further transfer the Agent's binding, a
//! same-subnet take-over the Target's announcements); a same-subnet hand-back, the
//! acknowledged wake-up; a forged stop demand, that it changed nothing.

use super::call_plan::Change;
use super::call_report::{CallData, DeviceCounters, PhaseMarks, PhaseReport, Snapshot, TcpFigures};
use super::scenario::Check;

fn check(out: &mut Vec<Check>, name: impl Into<String>, ok: bool, detail: impl Into<String>) {
    out.push(Check { name: name.into(), ok, detail: detail.into() });
}

/// The snapshot taken at the end of phase `k`, and the one before it.
fn snapshots(d: &CallData, k: usize) -> (Option<&Snapshot>, Option<&Snapshot>) {
    let find = |k: usize| d.phases.get(k).and_then(|p| d.snapshots.iter().find(|s| s.phase == p.name));
    (find(k), k.checked_sub(1).and_then(find))
}

/// A device's counter growth over phase `k` (its value at the end if there is no earlier
/// snapshot).
fn delta(d: &CallData, k: usize, dev: usize, f: fn(&DeviceCounters) -> u64) -> Option<u64> {
    let (now, before) = snapshots(d, k);
    let v = f(now?.devices.get(dev)?);
    let b = before.and_then(|s| s.devices.get(dev)).map_or(0, f);
    Some(v.saturating_sub(b))
}

pub fn checks(d: &CallData, phases: &[PhaseReport], tcp: &TcpFigures) -> Vec<Check> {
    let mut out = Vec::new();
    for f in &d.failures {
        check(&mut out, "step", false, f.clone());
    }
    for (k, (p, marks)) in phases.iter().zip(&d.phases).enumerate() {
        delivery(&mut out, k, p, marks);
    }
    let plan = &d.setup.itinerary;
    let holders = plan.holders();
    for (k, spec) in plan.phases.iter().enumerate() {
        let before = k.checked_sub(1).map_or(0, |j| holders[j]);
        match spec.change {
            Change::Start => {}
            Change::Transfer { to, reverse_tunnel, .. } => {
                reverse_path(&mut out, d, k, to, reverse_tunnel);
                if before != 0 {
                    further_transfer(&mut out, d, k, before, to);
                }
                if plan.devices.get(to).is_some_and(|x| x.same_subnet) {
                    let role = role(d, to);
                    let garp = delta(d, k, to, |c| c.data.gratuitous_arps);
                    check(
                        &mut out,
                        format!("{k}. {role} announced the address it took over (gratuitous ARP, >= 2)"),
                        garp.is_some_and(|n| n >= 2),
                        format!("{role} gratuitous_arps +{garp:?}"),
                    );
                }
            }
            Change::Stop { .. } if plan.devices.get(before).is_some_and(|x| x.same_subnet) => hand_back(&mut out, d, k, before),
            Change::Stop { .. } => {}
        }
    }
    for f in &d.forgeries {
        check(
            &mut out,
            format!("{}: a forged stop demand from {} (wrong key) is dropped and changes nothing", f.phase, f.from),
            f.refused(),
            format!(
                "sent to {:?}; discarded_auth {} -> {}; Target {}, wake-ups sent {} -> {}; TN {}",
                f.sent_to, f.discarded_before, f.discarded_after, f.target_state_after, f.wake_ups_sent_before, f.wake_ups_sent_after, f.tn_state_after
            ),
        );
    }
    tcp_checks(&mut out, tcp);
    let end = d.snapshots.last().filter(|s| d.phases.last().is_some_and(|p| p.name == s.phase));
    // Through the Agent, a Target is not told of the TN's stop demand: it learns of the end
    // when its next renewal is refused, so only a same-subnet Target is judged here.
    let name = if plan.agent {
        "end: no transfer binding left at the Agent, the TN home"
    } else {
        "end: the TN home, no Target holding"
    };
    check(
        &mut out,
        name,
        end.is_some_and(|s| {
            let tn_home = s.devices.first().is_some_and(DeviceCounters::tn_home);
            match (&s.agent, plan.agent) {
                (Some(a), true) => tn_home && !a.transfer_left(),
                (None, false) => tn_home && !s.devices.iter().skip(1).any(DeviceCounters::holds),
                _ => false,
            }
        }),
        match end {
            Some(s) => format!(
                "Agent bindings {:?}; states {:?}",
                s.agent.as_ref().map(|a| &a.bindings),
                s.devices.iter().map(|x| x.state(!plan.agent)).collect::<Vec<_>>()
            ),
            None => "no final counters".to_owned(),
        },
    );
    out
}

fn role(d: &CallData, i: usize) -> String {
    d.devices.get(i).map_or_else(|| format!("device {i}"), |x| x.0.clone())
}

/// Phase `k`: the session where it should be, the call at the holder only, both ways.
fn delivery(out: &mut Vec<Check>, k: usize, p: &PhaseReport, marks: &PhaseMarks) {
    let label = format!("{}. {}", k, p.name);
    let w = &p.settled;
    check(
        out,
        format!("{label}: the session is at the {}", p.intended),
        marks.holder == marks.intended,
        format!("held by the {}", p.holder),
    );
    let holder = marks.holder;
    let at_holder = w.forward.get(holder).copied().unwrap_or(0);
    let elsewhere: u64 = w.forward.iter().enumerate().filter(|(i, _)| *i != holder).map(|(_, n)| n).sum();
    check(
        out,
        format!("{label}: the holder gets >= 90% of the forward probes of the settled window"),
        w.expected > 0 && at_holder * 10 >= w.expected * 9,
        format!("{} of {} expected in {} ms", at_holder, w.expected, (w.to_us - w.from_us) / 1000),
    );
    check(out, format!("{label}: the other devices get none"), elsewhere == 0, format!("{:?} per device", w.forward));
    let back = w.returned.get(holder).copied().unwrap_or(0);
    check(
        out,
        format!("{label}: cn gets the holder's answers (>= 90%)"),
        w.expected > 0 && back * 10 >= w.expected * 9,
        format!("{} of {} expected; per answering device {:?}", back, w.expected, w.returned),
    );
}

/// The return path of device `dev` while it held the session in phase `k`, by the
/// counters: reverse-tunnelled through the Agent, or direct and nothing tunnelled.
fn reverse_path(out: &mut Vec<Check>, d: &CallData, k: usize, dev: usize, reverse: bool) {
    let role = role(d, dev);
    let rev = delta(d, k, dev, |c| c.data.reverse_out_packets);
    let direct = delta(d, k, dev, |c| c.data.direct_out_packets);
    if reverse {
        let (now, before) = snapshots(d, k);
        let agent_rev = now.and_then(|s| s.agent.as_ref()).map(|a| {
            let b = before.and_then(|s| s.agent.as_ref()).map_or(0, |b| b.reverse_packets);
            a.reverse_packets.saturating_sub(b)
        });
        check(
            out,
            format!("{k}. reverse-tunnelled packets counted at {role} and at the Agent while it holds the session"),
            rev.is_some_and(|n| n > 0) && agent_rev.is_some_and(|n| n > 0),
            format!("{role} reverse_out +{rev:?}, Agent reverse_packets +{agent_rev:?}"),
        );
    } else {
        check(
            out,
            format!("{k}. direct return path at {role} (nothing reverse-tunnelled)"),
            direct.is_some_and(|n| n > 0) && rev == Some(0),
            format!("{role} direct_out +{direct:?}, reverse_out +{rev:?}"),
        );
    }
}

/// A further transfer in phase `k`: at its end the Agent's binding points to `to`, one hop
/// on from `from`, and `to` holds the session.
fn further_transfer(out: &mut Vec<Check>, d: &CallData, k: usize, from: usize, to: usize) {
    let address = |i: usize| d.devices.get(i).map(|x| x.2.to_string()).unwrap_or_default();
    let name = format!("{k}. further transfer: {} held the session, the Agent's binding moved from {}", role(d, to), role(d, from));
    let (Some(s), _) = snapshots(d, k) else {
        return check(out, name, false, format!("no counters for phase {k}"));
    };
    let Some(agent) = &s.agent else {
        return check(out, name, false, "no Agent");
    };
    let b = agent.session();
    let t = b.and_then(|b| b.transfer.as_ref());
    let ok = b.is_some_and(|b| b.care_of_address == address(to))
        && t.is_some_and(|t| t.hops >= 1 && t.previous_targets.contains(&address(from)))
        && s.devices.get(to).is_some_and(DeviceCounters::holds)
        && agent.further_transfers >= 1;
    let detail = format!(
        "binding {:?}; {} state {:?}; Agent further transfers {}",
        b,
        role(d, to),
        s.devices.get(to).map(|x| &x.target_state),
        agent.further_transfers
    );
    check(out, name, ok, detail);
}

/// A same-subnet hand-back in phase `k` from the Target `dev`: it let the address go after
/// the TN acknowledged its wake-up.
fn hand_back(out: &mut Vec<Check>, d: &CallData, k: usize, dev: usize) {
    let role = role(d, dev);
    let acked = delta(d, k, dev, |c| c.wake_ups_acknowledged);
    let accepted = delta(d, k, 0, |c| c.wake_ups_accepted);
    let state = snapshots(d, k).0.and_then(|s| s.devices.get(dev)).map(|x| x.local_target_state.clone());
    check(
        out,
        format!("{k}. {role} handed the address back: the TN accepted and acknowledged its wake-up, {role} ended"),
        acked.is_some_and(|n| n >= 1) && accepted.is_some_and(|n| n >= 1) && state.as_deref() == Some("ended"),
        format!("{role} wake_ups_acknowledged +{acked:?}, state {state:?}; TN wake_ups_accepted +{accepted:?}"),
    );
}

fn tcp_checks(out: &mut Vec<Check>, t: &TcpFigures) {
    check(
        out,
        "TCP TN -> cn2 intact: every byte in order, end of stream, no error",
        t.ok,
        format!(
            "sent {} B (acknowledged {}, error {:?}); received {} B, {} bad, eof {}, error {:?}",
            t.send.bytes, t.send.acknowledged, t.send.error, t.recv.bytes, t.recv.errors, t.recv.eof, t.recv.error
        ),
    );
    check(
        out,
        "TCP carries data again after the TN is home",
        t.bytes_after_home > 0,
        format!("{} B after, the first {:?} ms after", t.bytes_after_home, t.first_data_after_home_ms),
    );
}
