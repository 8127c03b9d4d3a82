//! The call transfer's report as plain text (`sid-lab run call-transfer`, the test log).

use std::fmt;

use super::call_report::{AgentView, CallReport, Figures, SeqRange, TimelineRow};

fn opt_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |x| format!("{x:.1} ms"))
}

/// A row in which one device got (nearly) every probe, the others none, cn every answer,
/// and nothing happened.
fn steady(r: &TimelineRow, per_row: u64) -> Option<usize> {
    if !r.events.is_empty() || r.returned * 100 < per_row * 95 {
        return None;
    }
    let busy: Vec<usize> = r.forward.iter().enumerate().filter(|(_, n)| **n > 0).map(|(i, _)| i).collect();
    match busy.as_slice() {
        [only] if r.forward[*only] * 100 >= per_row * 95 => Some(*only),
        _ => None,
    }
}

fn figures_row(f: &mut fmt::Formatter<'_>, phase: &str, dir: &str, x: &Figures, change: &str) -> fmt::Result {
    writeln!(
        f,
        "  {phase:<38} {dir:<8} {:>6} {:>8} {:>5} {:>7.1} {:>7.2} {:>10.1} {:>10}",
        x.sent,
        x.received,
        x.lost,
        x.longest_gap_ms,
        x.longest_gap_at_ms / 1000.0,
        x.source_gap_ms,
        change
    )
}

fn range_line(r: &SeqRange) -> String {
    let n = r.last - r.first + 1;
    let which = if n == 1 { format!("#{}", r.first) } else { format!("#{}-#{} ({n})", r.first, r.last) };
    let by = r.answered_by.as_ref().map(|d| format!(", answered by {d}")).unwrap_or_default();
    format!("{which} sent in \"{}\", due {:+.1} ms after \"{}\"{by}", r.phase, r.after_event_ms, r.after_event)
}

/// The Agent's binding for the session address and its counters.
fn agent_lines(f: &mut fmt::Formatter<'_>, a: &AgentView) -> fmt::Result {
    let binding = match a.session() {
        None => "no binding for 198.18.0.10".to_owned(),
        Some(b) => format!(
            "198.18.0.10 -> {}{} tunnelled {} reverse {}",
            b.care_of_address,
            b.transfer
                .as_ref()
                .map(|t| format!(" (transfer: hops {}, reverse {}, before {:?})", t.hops, t.reverse_path, t.previous_targets))
                .unwrap_or_default(),
            b.packets_out,
            b.packets_in
        ),
    };
    writeln!(f, "  {:<34} Agent     {binding}", "")?;
    let dropped: Vec<String> = a.dropped.iter().map(|(k, v)| format!("{k} {v}")).collect();
    writeln!(
        f,
        "  {:<34}           intercepted {} tunnelled {} reverse {} relayed home {}, dropped [{}]; transfers {} further {} ended {}, wake-ups acknowledged {}/{}",
        "",
        a.intercepted,
        a.tunnelled_packets,
        a.reverse_packets,
        a.relayed_home,
        dropped.join(", "),
        a.transfers_started,
        a.further_transfers,
        a.transfers_ended,
        a.wake_ups_acknowledged,
        a.wake_ups_sent
    )
}

impl fmt::Display for CallReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "SID call transfer, {}", self.title)?;
        writeln!(
            f,
            "{} pps each way (interval {:.1} ms); goal: zero loss, no gap over {:.1} ms",
            self.pps, self.interval_ms, self.goal.limit_ms
        )?;
        writeln!(f, "devices: {}", self.devices.join(", "))?;
        writeln!(
            f,
            "call application (echo on each device, call at cn): {}; the daemons at normal priority",
            if self.realtime { "real-time priority (chrt -f)" } else { "normal priority" }
        )?;

        writeln!(f, "\nevents (ms since the call's first probe):")?;
        for (t, label) in &self.events {
            writeln!(f, "  {t:>9.1}  {label}")?;
        }

        let per_row = self.timeline_row_ms * u64::from(self.pps) / 1000;
        let names: Vec<&str> = self.devices.iter().map(|d| d.split(" (").next().unwrap_or(d)).collect();
        writeln!(
            f,
            "\ntimeline: forward probes received per device and answers received at cn, per {} ms (steady stretches folded)",
            self.timeline_row_ms
        )?;
        write!(f, "  {:<13}", "time s")?;
        for n in &names {
            write!(f, " {n:>9}")?;
        }
        writeln!(f, " {:>7}  events", "cn<-")?;
        let mut i = 0;
        while i < self.timeline.len() {
            let r = &self.timeline[i];
            let mut j = i + 1;
            if let Some(dev) = steady(r, per_row) {
                while j < self.timeline.len() && steady(&self.timeline[j], per_row) == Some(dev) {
                    j += 1;
                }
            }
            let rows = &self.timeline[i..j];
            let end = rows.last().map_or(r.at_ms, |x| x.at_ms) + self.timeline_row_ms;
            let time = format!("{:.1}-{:.1}", r.at_ms as f64 / 1000.0, end as f64 / 1000.0);
            write!(f, "  {time:<13}")?;
            for d in 0..names.len() {
                let sum: u64 = rows.iter().map(|x| x.forward.get(d).copied().unwrap_or(0)).sum();
                write!(f, " {sum:>9}")?;
            }
            let back: u64 = rows.iter().map(|x| x.returned).sum();
            let note = if rows.len() > 1 { format!("(steady, {} rows)", rows.len()) } else { r.events.join("; ") };
            writeln!(f, " {back:>7}  {note}")?;
            i = j;
        }

        writeln!(
            f,
            "\nper phase: probes sent in the phase (from its change to the next), longest gap between arrivals \
             (and when it ended); the return is the holder's answers at cn (a probe lost on the way out is not answered); \
             source: the longest silence already at the stream's source (cn's pacing; the forward arrivals for the return)"
        )?;
        writeln!(
            f,
            "  {:<38} {:<8} {:>6} {:>8} {:>5} {:>7} {:>7} {:>10} {:>10}",
            "phase (holder)", "dir", "sent", "received", "lost", "gap ms", "at s", "source ms", "change"
        )?;
        for p in &self.phases {
            let change = if p.change_ms > 0.0 { format!("{:.0} ms", p.change_ms) } else { "-".to_owned() };
            figures_row(f, &p.name, "forward", &p.forward, &change)?;
            figures_row(f, "", "return", &p.back, "")?;
        }
        writeln!(
            f,
            "  baseline ({}, undisturbed; the noise floor of this machine): forward gap {:.1} ms, return gap {:.1} ms",
            self.baseline.name, self.baseline.forward.longest_gap_ms, self.baseline.back.longest_gap_ms
        )?;

        writeln!(f, "\nswitch-overs: last packet at the old holder -> first at the new one")?;
        for s in &self.switchovers {
            writeln!(
                f,
                "  {} -> {}: forward first at the new holder {} after the change began, silence {} ({} late at the old); return at cn silence {} ({} late)",
                s.from,
                s.to,
                opt_ms(s.forward_first_ms),
                opt_ms(s.forward_silence_ms),
                s.forward_stragglers,
                opt_ms(s.return_silence_ms),
                s.return_stragglers
            )?;
        }

        writeln!(f, "\nmissing probes:")?;
        for (dir, list) in [("forward", &self.missing_forward), ("return", &self.missing_return)] {
            if list.is_empty() {
                writeln!(f, "  {dir}: none")?;
            }
            for r in list {
                writeln!(f, "  {dir}: {}", range_line(r))?;
            }
        }
        if self.missing_omitted > 0 {
            writeln!(f, "  ({} more runs not listed)", self.missing_omitted)?;
        }

        let agent = if self.agent { "; Agent: ha-admin" } else { "; no Agent" };
        writeln!(f, "\ncounters at the end of each phase (sidctl status{agent})")?;
        writeln!(
            f,
            "  {:<34} {:<9} {:<20} {:>8} {:>8} {:>8} {:>9} {:>5} {:>8} {:>8} {:>8}",
            "phase", "device", "state", "tun-in", "direct", "reverse", "rst-supp", "garp", "wake-up", "drained", "errors"
        )?;
        for s in &self.counters {
            for (i, d) in s.devices.iter().enumerate() {
                let x = &d.data;
                // TN: wake-ups accepted; a Target: its own sent/acknowledged (FIG. 1b).
                let wake = if i == 0 { d.wake_ups_accepted.to_string() } else { format!("{}/{}", d.wake_ups_acknowledged, d.wake_ups_sent) };
                writeln!(
                    f,
                    "  {:<34} {:<9} {:<20} {:>8} {:>8} {:>8} {:>9} {:>5} {:>8} {:>8} {:>8}",
                    if i == 0 { s.phase.as_str() } else { "" },
                    d.role,
                    d.state(!self.agent),
                    x.tunnel_in_packets,
                    x.direct_out_packets,
                    x.reverse_out_packets,
                    x.suppressed_tcp_resets,
                    x.gratuitous_arps,
                    wake,
                    x.drained_at_removal + x.tun_drained_at_removal,
                    x.send_errors + x.tunnel_rejected + x.tun_dropped
                )?;
            }
            if let Some(a) = &s.agent {
                agent_lines(f, a)?;
            }
        }

        if !self.forgeries.is_empty() {
            writeln!(f, "\nforged stop demands (a third host, the session's SPI, a wrong key):")?;
        }
        for x in &self.forgeries {
            writeln!(
                f,
                "  in \"{}\" from {} to {}: the Target counted {} as unauthenticated, is {}, wake-ups sent {} -> {}; the TN is {}",
                x.phase,
                x.from,
                x.sent_to.join(" and "),
                x.discarded_after.saturating_sub(x.discarded_before),
                x.target_state_after,
                x.wake_ups_sent_before,
                x.wake_ups_sent_after,
                x.tn_state_after
            )?;
        }

        let t = &self.tcp;
        writeln!(
            f,
            "\nTCP TN -> cn2 (not transferred): sent {} B (acknowledged {}, longest blocked write {:.0} ms, error {:?}); \
             cn2 got {} B, {} bad, end of stream {}, error {:?}; longest stall {:.0} ms ending {} after the TN was home; \
             {} B after, the first {} after",
            t.send.bytes,
            t.send.acknowledged,
            t.send.longest_block_ms,
            t.send.error,
            t.recv.bytes,
            t.recv.errors,
            t.recv.eof,
            t.recv.error,
            t.recv.longest_stall_ms,
            opt_ms(t.longest_stall_end_after_home_ms),
            t.bytes_after_home,
            opt_ms(t.first_data_after_home_ms)
        )?;
        if t.resumed.len() > 1 {
            let each: Vec<String> =
                t.resumed.iter().map(|r| format!("\"{}\": first data {}, {} B in the phase", r.phase, opt_ms(r.first_data_ms), r.bytes_in_phase)).collect();
            writeln!(f, "  after each home-coming: {}", each.join("; "))?;
        }
        let c = &self.call_app;
        writeln!(
            f,
            "call at cn: sent {} (send errors {}, worst pacing lateness {:.2} ms), answers {} ({} duplicates), round trip avg {:.2} max {:.2} ms",
            c.sent, c.send_errors, c.max_late_ms, c.replies, c.duplicates, c.rtt_avg_ms, c.rtt_max_ms
        )?;
        for (e, name) in self.echo.iter().zip(&names) {
            writeln!(f, "  echo on {name}: received {} answered {} send errors {}", e.received, e.answered, e.send_errors)?;
        }

        writeln!(f, "\nchecks:")?;
        for c in &self.checks {
            writeln!(f, "  [{}] {}: {}", if c.ok { " ok " } else { "FAIL" }, c.name, c.detail)?;
        }
        writeln!(
            f,
            "\ngoal (zero loss, longest gap <= {:.1} ms): {} -- {}",
            self.goal.limit_ms,
            if self.goal.met { "met" } else { "NOT met" },
            self.goal.detail
        )
    }
}
