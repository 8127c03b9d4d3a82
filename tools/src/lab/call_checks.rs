//! The call transfer's pass/fail checks: robust facts only (who got the call in each
//! settled window, the counters, the TCP stream, the final state), never timings. The
//! goal (zero loss, gaps of at most two intervals) is a verdict of the report, not a check.

use super::call_report::{CallData, DeviceCounters, PhaseReport, Snapshot, TcpFigures};
use super::scenario::Check;
use super::sid::TN_ADDRESS;

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
        let label = format!("{}. {}", k, p.name);
        let w = &p.settled;
        check(
            &mut out,
            format!("{label}: the session is at the {}", p.intended),
            marks.holder == marks.intended,
            format!("held by the {}", p.holder),
        );
        let h = marks.holder;
        let at_holder = w.forward.get(h).copied().unwrap_or(0);
        let elsewhere: u64 = w.forward.iter().enumerate().filter(|(i, _)| *i != h).map(|(_, n)| n).sum();
        check(
            &mut out,
            format!("{label}: the holder gets >= 90% of the forward probes of the settled window"),
            w.expected > 0 && at_holder * 10 >= w.expected * 9,
            format!("{} of {} expected in {} ms", at_holder, w.expected, (w.to_us - w.from_us) / 1000),
        );
        check(&mut out, format!("{label}: the other devices get none"), elsewhere == 0, format!("{:?} per device", w.forward));
        let back = w.returned.get(h).copied().unwrap_or(0);
        check(
            &mut out,
            format!("{label}: cn gets the holder's answers (>= 90%)"),
            w.expected > 0 && back * 10 >= w.expected * 9,
            format!("{} of {} expected; per answering device {:?}", back, w.expected, w.returned),
        );
    }
    // The further transfer: at the end of phase 2 the Agent's binding points to Target 2,
    // one hop on from Target 1, and Target 2 holds the session.
    let target = |i: usize| d.devices.get(i).map(|x| x.2.to_string()).unwrap_or_default();
    if let (Some(s), _) = snapshots(d, 2) {
        let b = s.agent.session();
        let t = b.and_then(|b| b.transfer.as_ref());
        let ok = b.is_some_and(|b| b.care_of_address == target(2))
            && t.is_some_and(|t| t.hops >= 1 && t.previous_targets.contains(&target(1)))
            && s.devices.get(2).is_some_and(|x| x.target_state.starts_with("holding"))
            && s.agent.further_transfers >= 1;
        check(
            &mut out,
            "further transfer: Target 2 held the session, the Agent's binding moved from Target 1",
            ok,
            format!(
                "binding {:?}; Target 2 state {:?}; Agent further transfers {}",
                b,
                s.devices.get(2).map(|x| &x.target_state),
                s.agent.further_transfers
            ),
        );
    } else {
        check(&mut out, "further transfer: Target 2 held the session, the Agent's binding moved from Target 1", false, "no counters for phase 2");
    }
    // The reverse path of each Target phase, by the counters.
    for (k, dev, reverse) in [(1usize, 1usize, d.setup.reverse_tunnel[0]), (2, 2, d.setup.reverse_tunnel[1])] {
        let rev = delta(d, k, dev, |c| c.reverse_out_packets);
        let direct = delta(d, k, dev, |c| c.direct_out_packets);
        let (now, before) = snapshots(d, k);
        let agent_rev = now.map(|s| s.agent.reverse_packets.saturating_sub(before.map_or(0, |b| b.agent.reverse_packets)));
        if reverse {
            check(
                &mut out,
                format!("{k}. reverse-tunnelled packets counted at Target {dev} and at the Agent while it holds the session"),
                rev.is_some_and(|n| n > 0) && agent_rev.is_some_and(|n| n > 0),
                format!("Target {dev} reverse_out +{rev:?}, Agent reverse_packets +{agent_rev:?}"),
            );
        } else {
            check(
                &mut out,
                format!("{k}. direct return path at Target {dev} (nothing reverse-tunnelled)"),
                direct.is_some_and(|n| n > 0) && rev == Some(0),
                format!("Target {dev} direct_out +{direct:?}, reverse_out +{rev:?}"),
            );
        }
    }
    let t = tcp;
    check(
        &mut out,
        "TCP TN -> cn2 intact: every byte in order, end of stream, no error",
        t.ok,
        format!(
            "sent {} B (acknowledged {}, error {:?}); received {} B, {} bad, eof {}, error {:?}",
            t.send.bytes, t.send.acknowledged, t.send.error, t.recv.bytes, t.recv.errors, t.recv.eof, t.recv.error
        ),
    );
    check(
        &mut out,
        "TCP carries data again after the TN is home",
        t.bytes_after_home > 0,
        format!("{} B after, the first {:?} ms after", t.bytes_after_home, t.first_data_after_home_ms),
    );
    let end = d.snapshots.last().filter(|s| d.phases.last().is_some_and(|p| p.name == s.phase));
    let tn = TN_ADDRESS.to_string();
    check(
        &mut out,
        "end: no transfer binding left at the Agent, the TN home",
        end.is_some_and(|s| {
            !s.agent.bindings.iter().any(|b| b.home_address == tn && b.transfer.is_some())
                && s.devices.first().and_then(|x| x.tn_state.as_deref()) == Some("home")
        }),
        match end {
            Some(s) => format!("Agent bindings {:?}; TN {:?}", s.agent.bindings, s.devices.first().map(|x| &x.tn_state)),
            None => "no final counters".to_owned(),
        },
    );
    out
}
