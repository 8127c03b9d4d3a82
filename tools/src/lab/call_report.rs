//! The call transfer's report: what [`super::call::run_call`] gathered ([`CallData`]) and
//! its analysis ([`analyze`]) into a [`CallReport`] (serde for `--json`; the plain text is
//! in [`super::call_text`]).
//!
//! The forward stream (cn -> 198.18.0.10) is judged over every device's arrival log
//! merged, the return stream (the holder's answers) at cn. Probes belong to the phase in
//! which they were sent: phase k runs from the start of its change (the offer, or the stop)
//! to the start of the next change, so each switch-over's outage falls into the phase it
//! starts. A gap is the silence between two consecutive arrivals, counted in the phase of
//! the probe that ends it. Receive times are kernel timestamps.

use std::net::Ipv4Addr;

use serde::Serialize;

use super::call::CallSetup;
use super::callapp::{CallAppReport, EchoReport, Reply};
use super::call_plan::Change;
use super::scenario::Check;
use super::traffic::{Arrival, Probe, TcpRecvReport, TcpSendReport};

pub use super::call_counters::{AgentView, BindingView, DeviceCounters, Forgery, Snapshot, TransferView};

/// One phase as the scenario ran it (wall-clock microseconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhaseMarks {
    pub name: String,
    /// Index of the device that held the session (after the change, if it worked).
    pub holder: usize,
    /// The device that should have held it.
    pub intended: usize,
    /// The change began (offer or stop; the call's start for the first phase).
    pub start_us: u64,
    /// The change was done (the Agent accepted; the TN home).
    pub ready_us: u64,
    /// The phase's held time ended (then its counters were read).
    pub end_us: u64,
}

/// Everything a run produced.
#[derive(Debug, Clone)]
pub struct CallData {
    pub setup: CallSetup,
    /// The call application ran at real-time priority.
    pub realtime: bool,
    /// (role, host, address) of each device, the TN first.
    pub devices: Vec<(String, String, Ipv4Addr)>,
    pub phases: Vec<PhaseMarks>,
    pub events: Vec<(u64, String)>,
    pub snapshots: Vec<Snapshot>,
    /// Forged stop demands sent, and what they changed.
    pub forgeries: Vec<Forgery>,
    /// Steps that failed (the run went on without them).
    pub failures: Vec<String>,
    pub call: CallAppReport,
    pub echo: Vec<EchoReport>,
    /// Per device, in device order.
    pub arrivals: Vec<Vec<Arrival>>,
    pub replies: Vec<Reply>,
    pub tcp_send: TcpSendReport,
    pub tcp_recv: TcpRecvReport,
    /// (receive time, bytes so far) at the second correspondent.
    pub tcp_progress: Vec<(u64, u64)>,
}

/// Sent, received, lost and the longest silence of one direction in one phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Figures {
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub longest_gap_ms: f64,
    /// When the longest silence ended, ms since the call's start.
    pub longest_gap_at_ms: f64,
    /// The longest silence at the stream's source in this phase, which the path did not
    /// cause: between two consecutive probes sent by cn (forward), between two consecutive
    /// probes reaching the devices (return: the answers' source).
    pub source_gap_ms: f64,
}

/// Arrivals in a phase's settled window (its held time after `settle`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settled {
    pub from_us: u64,
    pub to_us: u64,
    /// Probes sent in the window.
    pub expected: u64,
    /// Forward probes received, per device.
    pub forward: Vec<u64>,
    /// Answers received at cn, per answering device.
    pub returned: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseReport {
    pub name: String,
    pub holder: String,
    pub intended: String,
    pub start_ms: f64,
    /// How long the change took (offer or stop until done).
    pub change_ms: f64,
    pub end_ms: f64,
    /// Probes sent in this phase: sequence numbers first..last+1.
    pub seqs: (u64, u64),
    pub forward: Figures,
    /// The holder's answers, judged at cn. A probe lost on the way out is never
    /// answered: the return's gap includes the forward one.
    pub back: Figures,
    pub settled: Settled,
}

/// The moment the data path moved from one device to another.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Switchover {
    pub label: String,
    pub from: String,
    pub to: String,
    /// Forward: the new holder's first packet, ms after the change began.
    pub forward_first_ms: Option<f64>,
    /// Forward: last packet at the old holder to first at the new one.
    pub forward_silence_ms: Option<f64>,
    /// Forward packets still reaching the old holder after the new one's first.
    pub forward_stragglers: u64,
    /// Return, at cn: last answer from the old holder to first from the new one.
    pub return_silence_ms: Option<f64>,
    pub return_stragglers: u64,
}

/// One row of the timeline: arrivals by receive time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineRow {
    /// Row start, ms since the call's start.
    pub at_ms: u64,
    /// Forward probes received per device.
    pub forward: Vec<u64>,
    /// Answers received at cn.
    pub returned: u64,
    pub events: Vec<String>,
}

/// A run of missing sequence numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeqRange {
    pub first: u64,
    pub last: u64,
    /// The phase the probes were sent in.
    pub phase: String,
    /// When the first was due, relative to the last event before it.
    pub after_event: String,
    pub after_event_ms: f64,
    /// Return only: which device received (and answered) the first of them.
    pub answered_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TcpFigures {
    pub send: TcpSendReport,
    pub recv: TcpRecvReport,
    /// Bytes received after the TN was home again, and how soon the first came.
    pub bytes_after_home: u64,
    pub first_data_after_home_ms: Option<f64>,
    /// The longest stall ended this long after the TN was home (negative: before).
    pub longest_stall_end_after_home_ms: Option<f64>,
    /// Each home-coming of the TN (the last is the one above).
    pub resumed: Vec<TcpResume>,
    pub ok: bool,
}

/// The TCP stream after one home-coming of the TN.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TcpResume {
    pub phase: String,
    /// The first data after the TN was home, ms after.
    pub first_data_ms: Option<f64>,
    /// Bytes received from then to the end of the phase.
    pub bytes_in_phase: u64,
}

/// The goal of issue 4: zero loss and no gap longer than two packet intervals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Goal {
    pub limit_ms: f64,
    pub met: bool,
    pub lost_forward: u64,
    pub lost_return: u64,
    pub worst_gap_ms: f64,
    pub worst_gap_where: String,
    /// The undisturbed first phase's longest gap, both directions: what this machine
    /// does without any change (scheduling of the processes on shared cores).
    pub noise_floor_ms: f64,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallReport {
    /// What the run showed (the itinerary's title).
    pub title: String,
    /// An Agent ran (FIG. 1a); without one every transfer was a same-subnet one (FIG. 1b).
    pub agent: bool,
    pub pps: u32,
    /// The call application (echo, call) ran at real-time priority; the daemons did not.
    pub realtime: bool,
    pub interval_ms: f64,
    /// Wall-clock microseconds of the call's first probe; the `_ms` fields count from it.
    pub start_us: u64,
    pub devices: Vec<String>,
    pub events: Vec<(f64, String)>,
    pub phases: Vec<PhaseReport>,
    /// The undisturbed first phase, both directions: the noise floor.
    pub baseline: PhaseReport,
    pub switchovers: Vec<Switchover>,
    pub timeline_row_ms: u64,
    pub timeline: Vec<TimelineRow>,
    pub missing_forward: Vec<SeqRange>,
    pub missing_return: Vec<SeqRange>,
    /// Ranges left out of the lists above.
    pub missing_omitted: u64,
    pub counters: Vec<Snapshot>,
    pub forgeries: Vec<Forgery>,
    pub tcp: TcpFigures,
    pub call_app: CallAppReport,
    pub echo: Vec<EchoReport>,
    pub goal: Goal,
    pub checks: Vec<Check>,
    pub failures: Vec<String>,
}

impl CallReport {
    /// Every check ok.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    pub fn check(&self, name_start: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name.starts_with(name_start))
    }
}

const ROW_MS: u64 = 100;
const MAX_RANGES: usize = 40;

fn ms(from_us: u64, t_us: u64) -> f64 {
    (t_us as f64 - from_us as f64) / 1000.0
}

/// The arrivals of one stream in receive order: (receive time, seq, device).
fn merged(streams: &[(usize, Vec<(u64, u64)>)]) -> Vec<(u64, u64, usize)> {
    let mut all: Vec<(u64, u64, usize)> =
        streams.iter().flat_map(|(d, v)| v.iter().map(move |&(t, q)| (t, q, *d))).collect();
    all.sort_unstable();
    all
}

/// Per phase: received count, longest gap and when it ended, from `all` (receive order).
fn gaps(all: &[(u64, u64, usize)], phase_of: &dyn Fn(u64) -> Option<usize>, n: usize) -> Vec<(u64, u64)> {
    let mut out = vec![(0u64, 0u64); n];
    for w in all.windows(2) {
        let (a, b) = (w[0], w[1]);
        if let Some(p) = phase_of(b.1).and_then(|p| out.get_mut(p)) {
            let g = b.0.saturating_sub(a.0);
            if g > p.0 {
                *p = (g, b.0);
            }
        }
    }
    out
}

/// Analyses a run.
pub fn analyze(d: &CallData) -> CallReport {
    let c = &d.call;
    let (start, interval_ns, sent) = (c.start_us, c.interval_ns.max(1), c.sent);
    let interval_ms = interval_ns as f64 / 1e6;
    let due = |q: u64| Probe::scheduled_us(start, interval_ns, q);
    let seq_at = |t: u64| (u128::from(t.saturating_sub(start)) * 1000).div_ceil(u128::from(interval_ns)).min(u128::from(sent)) as u64;
    let n = d.phases.len();
    let bounds: Vec<u64> = (0..n).map(|k| if k == 0 { 0 } else { seq_at(d.phases[k].start_us) }).collect();
    let phase_of = |q: u64| (q < sent).then(|| bounds.partition_point(|&b| b <= q).saturating_sub(1));
    let role = |i: usize| d.devices.get(i).map_or_else(|| format!("device {i}"), |x| x.0.clone());

    let fwd = merged(&d.arrivals.iter().enumerate().map(|(i, a)| (i, a.iter().map(|x| (x.recv_us, x.seq)).collect())).collect::<Vec<_>>());
    let mut back: Vec<(u64, u64, usize)> = d.replies.iter().map(|r| (r.recv_us, r.seq, r.tag as usize)).collect();
    back.sort_unstable();
    let slots = usize::try_from(sent).unwrap_or(0);
    let mut got_fwd: Vec<Option<usize>> = vec![None; slots];
    for &(_, q, dev) in &fwd {
        if let Some(s) = usize::try_from(q).ok().and_then(|i| got_fwd.get_mut(i)) {
            s.get_or_insert(dev);
        }
    }
    let mut got_back = vec![false; slots];
    for &(_, q, _) in &back {
        if let Some(s) = usize::try_from(q).ok().and_then(|i| got_back.get_mut(i)) {
            *s = true;
        }
    }
    let fwd_gaps = gaps(&fwd, &phase_of, n);
    let back_gaps = gaps(&back, &phase_of, n);
    // cn's own pacing: consecutive sequence numbers both received, by their send times.
    let mut sends: Vec<(u64, u64)> = d.arrivals.iter().flatten().map(|a| (a.seq, a.sent_us)).collect();
    sends.sort_unstable();
    sends.dedup_by_key(|x| x.0);
    let mut send_gaps = vec![0u64; n];
    for w in sends.windows(2) {
        if w[1].0 == w[0].0 + 1 {
            if let Some(g) = phase_of(w[1].0).and_then(|k| send_gaps.get_mut(k)) {
                *g = (*g).max(w[1].1.saturating_sub(w[0].1));
            }
        }
    }

    let fwd_got: Vec<bool> = got_fwd.iter().map(Option::is_some).collect();
    let both: Vec<bool> = got_back.iter().zip(&fwd_got).map(|(b, f)| *b && *f).collect();
    let mut phases = Vec::new();
    for (k, p) in d.phases.iter().enumerate() {
        let (lo, hi) = (bounds[k], bounds.get(k + 1).copied().unwrap_or(sent).max(bounds[k]));
        let range = |v: &[bool]| v.get(lo as usize..hi as usize).map_or(0, |s| s.iter().filter(|x| **x).count() as u64);
        let f_recv = range(&fwd_got);
        let b_recv = range(&both);
        let figures = |sent: u64, received: u64, g: (u64, u64), source: u64| Figures {
            sent,
            received,
            lost: sent.saturating_sub(received),
            longest_gap_ms: g.0 as f64 / 1000.0,
            longest_gap_at_ms: if g.1 == 0 { 0.0 } else { ms(start, g.1) },
            source_gap_ms: source as f64 / 1000.0,
        };
        let from_us = p.ready_us + d.setup.settle.as_micros() as u64;
        let to_us = p.end_us.max(from_us);
        let in_window = |t: u64| t >= from_us && t < to_us;
        let mut forward = vec![0u64; d.devices.len()];
        for &(t, _, dev) in &fwd {
            if in_window(t) {
                if let Some(x) = forward.get_mut(dev) {
                    *x += 1;
                }
            }
        }
        let mut returned = vec![0u64; d.devices.len()];
        for &(t, _, dev) in &back {
            if in_window(t) {
                if let Some(x) = returned.get_mut(dev) {
                    *x += 1;
                }
            }
        }
        phases.push(PhaseReport {
            name: p.name.clone(),
            holder: role(p.holder),
            intended: role(p.intended),
            start_ms: ms(start, p.start_us),
            change_ms: ms(p.start_us, p.ready_us),
            end_ms: ms(start, p.end_us),
            seqs: (lo, hi),
            forward: figures(hi - lo, f_recv, fwd_gaps[k], send_gaps[k]),
            back: figures(f_recv, b_recv, back_gaps[k], fwd_gaps[k].0),
            settled: Settled {
                from_us,
                to_us,
                expected: (to_us - from_us) * u64::from(d.setup.pps) / 1_000_000,
                forward,
                returned,
            },
        });
    }

    let switchovers = (1..n).map(|k| switchover(d, k, &fwd, &back, &role)).collect();
    let last_event = d.events.last().map_or(start, |e| e.0);
    let mut timeline: Vec<TimelineRow> = (0..=(last_event.saturating_sub(start) / 1000 / ROW_MS))
        .map(|i| TimelineRow { at_ms: i * ROW_MS, forward: vec![0; d.devices.len()], returned: 0, events: Vec::new() })
        .collect();
    let row = |t: u64| usize::try_from(t.saturating_sub(start) / 1000 / ROW_MS).unwrap_or(usize::MAX);
    for &(t, _, dev) in &fwd {
        if let Some(x) = timeline.get_mut(row(t)).and_then(|r| r.forward.get_mut(dev)) {
            *x += 1;
        }
    }
    for &(t, _, _) in &back {
        if let Some(r) = timeline.get_mut(row(t)) {
            r.returned += 1;
        }
    }
    for (t, label) in &d.events {
        if let Some(r) = timeline.get_mut(row(*t)) {
            r.events.push(label.clone());
        }
    }

    // Missing probes, in runs, placed against the last event before they were due.
    let place = |q: u64| {
        let t = due(q);
        let e = d.events.iter().rev().find(|e| e.0 <= t).or(d.events.first());
        e.map_or((String::new(), 0.0), |e| (e.1.clone(), ms(e.0, t)))
    };
    let mut omitted = 0u64;
    let mut runs = |missing: &dyn Fn(usize) -> bool, with_device: bool| -> Vec<SeqRange> {
        let mut out: Vec<SeqRange> = Vec::new();
        let mut q = 0usize;
        while q < slots {
            if !missing(q) {
                q += 1;
                continue;
            }
            let first = q;
            while q < slots && missing(q) {
                q += 1;
            }
            if out.len() >= MAX_RANGES {
                omitted += 1;
                continue;
            }
            let (after_event, after_event_ms) = place(first as u64);
            out.push(SeqRange {
                first: first as u64,
                last: (q - 1) as u64,
                phase: phase_of(first as u64).and_then(|k| d.phases.get(k)).map(|p| p.name.clone()).unwrap_or_default(),
                after_event,
                after_event_ms,
                answered_by: if with_device { got_fwd[first].map(role) } else { None },
            });
        }
        out
    };
    let missing_forward = runs(&|q| got_fwd[q].is_none(), false);
    let missing_return = runs(&|q| got_fwd[q].is_some() && !got_back[q], true);

    let tcp = tcp_figures(d);
    let goal = goal(&phases, interval_ms);
    let checks = super::call_checks::checks(d, &phases, &tcp);
    let baseline = phases.first().cloned().unwrap_or_else(|| PhaseReport {
        name: String::new(),
        holder: String::new(),
        intended: String::new(),
        start_ms: 0.0,
        change_ms: 0.0,
        end_ms: 0.0,
        seqs: (0, 0),
        forward: Figures::default(),
        back: Figures::default(),
        settled: Settled { from_us: 0, to_us: 0, expected: 0, forward: Vec::new(), returned: Vec::new() },
    });
    CallReport {
        title: d.setup.itinerary.title.clone(),
        agent: d.setup.itinerary.agent,
        pps: d.setup.pps,
        realtime: d.realtime,
        interval_ms,
        start_us: start,
        devices: d.devices.iter().map(|x| format!("{} ({}, {})", x.0, x.1, x.2)).collect(),
        events: d.events.iter().map(|(t, l)| (ms(start, *t), l.clone())).collect(),
        phases,
        baseline,
        switchovers,
        timeline_row_ms: ROW_MS,
        timeline,
        missing_forward,
        missing_return,
        missing_omitted: omitted,
        counters: d.snapshots.clone(),
        forgeries: d.forgeries.clone(),
        tcp,
        call_app: d.call.clone(),
        echo: d.echo.clone(),
        goal,
        checks,
        failures: d.failures.clone(),
    }
}

fn switchover(
    d: &CallData,
    k: usize,
    fwd: &[(u64, u64, usize)],
    back: &[(u64, u64, usize)],
    role: &dyn Fn(usize) -> String,
) -> Switchover {
    let (old, new, p) = (d.phases[k - 1].holder, d.phases[k].holder, &d.phases[k]);
    // Last at `old` before the first at `new` (after the change began), and how many
    // still reached `old` afterwards.
    let measure = |stream: &[(u64, u64, usize)]| -> (Option<u64>, Option<f64>, u64) {
        let first = stream.iter().find(|x| x.2 == new && x.0 >= p.start_us).map(|x| x.0);
        let Some(f) = first else { return (None, None, 0) };
        let last = stream.iter().filter(|x| x.2 == old && x.0 < f).map(|x| x.0).max();
        let stragglers = stream.iter().filter(|x| x.2 == old && x.0 > f && x.0 < p.end_us.max(f)).count() as u64;
        (Some(f), last.map(|l| (f - l) as f64 / 1000.0), stragglers)
    };
    let (first, forward_silence_ms, forward_stragglers) =
        if old == new { (None, None, 0) } else { measure(fwd) };
    let (_, return_silence_ms, return_stragglers) = if old == new { (None, None, 0) } else { measure(back) };
    Switchover {
        label: d.phases[k].name.clone(),
        from: role(old),
        to: role(new),
        forward_first_ms: first.map(|f| ms(p.start_us, f)),
        forward_silence_ms,
        forward_stragglers,
        return_silence_ms,
        return_stragglers,
    }
}

fn tcp_figures(d: &CallData) -> TcpFigures {
    let bytes_by = |t: u64| d.tcp_progress.iter().take_while(|x| x.0 <= t).last().map_or(0, |x| x.1);
    let first_after = |t: u64| d.tcp_progress.iter().find(|x| x.0 > t).map(|x| ms(t, x.0));
    // The TN is home when a stop is done.
    let resumed: Vec<TcpResume> = d
        .phases
        .iter()
        .zip(&d.setup.itinerary.phases)
        .filter(|(p, spec)| matches!(spec.change, Change::Stop { .. }) && p.holder == 0)
        .map(|(p, _)| TcpResume {
            phase: p.name.clone(),
            first_data_ms: first_after(p.ready_us),
            bytes_in_phase: bytes_by(p.end_us.max(p.ready_us)).saturating_sub(bytes_by(p.ready_us)),
        })
        .collect();
    // The last change brought the TN home.
    let home = d.phases.last().filter(|p| p.holder == 0 && d.phases.len() > 1).map(|p| p.ready_us);
    let (s, r) = (&d.tcp_send, &d.tcp_recv);
    TcpFigures {
        send: s.clone(),
        recv: r.clone(),
        bytes_after_home: home.map_or(0, |h| r.bytes.saturating_sub(bytes_by(h))),
        first_data_after_home_ms: home.and_then(first_after),
        longest_stall_end_after_home_ms: home.zip(r.longest_stall_end_us).map(|(h, e)| ms(h, e)),
        resumed,
        ok: r.ok() && s.error.is_none() && s.acknowledged && r.bytes == s.bytes && s.bytes > 0,
    }
}

fn goal(phases: &[PhaseReport], interval_ms: f64) -> Goal {
    let limit_ms = 2.0 * interval_ms;
    let lost_forward: u64 = phases.iter().map(|p| p.forward.lost).sum();
    let lost_return: u64 = phases.iter().map(|p| p.back.lost).sum();
    let mut worst = (0.0f64, String::new());
    for p in phases {
        for (dir, f) in [("forward", &p.forward), ("return", &p.back)] {
            if f.longest_gap_ms > worst.0 {
                worst = (f.longest_gap_ms, format!("{dir}, {}", p.name));
            }
        }
    }
    let noise_floor_ms = phases.first().map_or(0.0, |p| p.forward.longest_gap_ms.max(p.back.longest_gap_ms));
    let met = lost_forward == 0 && lost_return == 0 && worst.0 <= limit_ms;
    let detail = format!(
        "{} lost forward, {} lost return, longest gap {:.1} ms ({}) against {:.1} ms allowed; undisturbed baseline gap (noise floor) {:.1} ms",
        lost_forward, lost_return, worst.0, worst.1, limit_ms, noise_floor_ms
    );
    Goal { limit_ms, met, lost_forward, lost_return, worst_gap_ms: worst.0, worst_gap_where: worst.1, noise_floor_ms, detail }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "call_report_tests.rs"]
mod tests;
