//! The SID call transfer (issue 4, FIG. 1a): a two-way call at 1,000 packets per second
//! each way runs while its session moves TN (home) -> Target 1 on foreign 1 (reverse path
//! direct) -> Target 2 on foreign 2 (a further transfer, which the TN permitted Target 1;
//! reverse path tunnelled through the Agent) -> back to the TN when Target 2 ends the
//! session (renewal with lifetime 0; the Agent wakes the TN, which takes its address back).
//! A second correspondent's TCP connection with the TN, which is not transferred, must
//! survive the time away.
//!
//! The call application (`sid-traffic udp-echo`) runs on every device from the start and is
//! never restarted: whichever device holds 198.18.0.10 receives cn's probes and answers
//! them. [`run_call`] drives the lab and gathers what every process logged;
//! [`super::call_report`] turns that into the report. Used by `sid-lab run call-transfer`
//! and by tools/tests/sid_transfer.rs.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::callapp::{read_replies, CallAppReport, EchoReport};
use super::call_report::{analyze, CallData, CallReport, PhaseMarks};
use super::guard::find_tool;
use super::process::LabChild;
use super::scenario::{read_arrivals, ScenarioOptions, ScenarioReport};
use super::sid::{negotiate_and_transfer, sidctl, start_devices, wait_status, Device, Devices, TargetSpec, TN_ADDRESS};
use super::topology::{base, HostSpec, Topology};
use super::traffic::{now_us, TcpRecvReport, TcpSendReport};
use super::{Lab, LabError, Result};

pub use super::call_report::{AgentView, DeviceCounters, Snapshot};

/// The devices, in the order of every per-device column: the TN, Target 1, Target 2.
pub const ROLES: [&str; 3] = ["TN", "Target 1", "Target 2"];
/// Where they run.
pub const HOSTS: [&str; 3] = ["mn", "fa1", "fa2"];
/// Their own addresses (the TN's is the session address).
pub const ADDRESSES: [Ipv4Addr; 3] = [TN_ADDRESS, base::FA1, base::FA2];
const IDENTITIES: [&str; 3] = ["desk", "laptop", "tablet"];
/// The call: cn -> 198.18.0.10:CALL_PORT, answers back to cn:CN_PORT.
pub const CALL_PORT: u16 = 5001;
pub const CN_PORT: u16 = 5002;
/// The second correspondent, on cn's LAN, and its TCP port.
pub const CN2: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);
pub const TCP_PORT: u16 = 5003;

/// What a call-transfer run does.
#[derive(Debug, Clone, PartialEq)]
pub struct CallSetup {
    /// Probes per second each way.
    pub pps: u32,
    /// How long each phase is held once its change is done.
    pub hold: Duration,
    /// The start of each held phase not judged (ARP caches following a change: the
    /// router takes a gratuitous ARP for an entry only once it is a second old, Linux
    /// `locktime`); the rest is the phase's settled window.
    pub settle: Duration,
    /// Reverse path of each transfer, tunnelled through the Agent or direct:
    /// [TN -> Target 1, Target 1 -> Target 2].
    pub reverse_tunnel: [bool; 2],
    /// The second correspondent's TCP stream, bytes per second.
    pub tcp_rate: u64,
    /// Run the call application (echo and call) at real-time priority (`chrt -f`), as
    /// audio threads of call applications do, so that the measurement's own pacing is not
    /// what the report measures on a busy machine. The daemons run as they are.
    pub realtime: bool,
}

impl Default for CallSetup {
    fn default() -> Self {
        CallSetup {
            pps: 1000,
            hold: Duration::from_secs(3),
            settle: Duration::from_millis(1500),
            reverse_tunnel: [false, true],
            tcp_rate: 20_000,
            realtime: true,
        }
    }
}

/// The lab of the call: the mobility topology (mn bare: the SID fixture configures it)
/// with a second correspondent `cn2` next to `cn`.
pub fn topology() -> Topology {
    let mut t = super::mobility::topology();
    t.hosts.push(HostSpec::single("cn2", "cn", base::CN_LAN.with_addr(CN2), Some(base::RTR_CN)));
    t
}

fn tool(name: &str) -> Result<String> {
    Ok(find_tool(name)?.to_string_lossy().into_owned())
}

fn path(p: &std::path::Path) -> String {
    p.to_string_lossy().into_owned()
}

fn check_failed(what: impl Into<String>) -> LabError {
    LabError::Check(what.into())
}

/// The last line of `text` that is a JSON object, decoded.
fn last_json<T: serde::de::DeserializeOwned>(what: &str, text: &str, stderr: &str) -> Result<T> {
    let line = text.lines().rev().find(|l| l.trim_start().starts_with('{')).unwrap_or_default();
    serde_json::from_str(line).map_err(|e| LabError::Report { what: what.into(), reason: format!("{e}: {text}{stderr}") })
}

/// `ha-admin --json ARGS` against the Agent.
fn ha_admin(lab: &Lab, devices: &Devices, args: &[&str]) -> Result<serde_json::Value> {
    let admin = tool("ha-admin")?;
    let sock = path(&devices.ha_socket);
    let mut cmd = vec!["timeout", "5", admin.as_str(), "--socket", sock.as_str(), "--json"];
    cmd.extend_from_slice(args);
    let out = lab.exec("ha", &cmd)?;
    serde_json::from_slice(&out.stdout).map_err(|e| LabError::Report {
        what: format!("ha-admin {}", args.join(" ")),
        reason: format!("{e}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    })
}

/// Every device's `sidctl status` and the Agent's bindings and counters, now.
pub fn snapshot(lab: &Lab, devices: &Devices, phase: &str) -> Result<Snapshot> {
    let at_us = now_us();
    let mut out = Vec::new();
    for (i, d) in std::iter::once(&devices.tn).chain(devices.targets.iter()).enumerate() {
        let s = sidctl(lab, d, &["status"])?;
        out.push(DeviceCounters::from_status(ROLES.get(i).copied().unwrap_or("?"), &d.host, &s["data"]));
    }
    let bindings = ha_admin(lab, devices, &["binding", "list"])?;
    let stats = ha_admin(lab, devices, &["stats"])?;
    Ok(Snapshot { phase: phase.to_owned(), at_us, devices: out, agent: AgentView::from_json(&bindings, &stats) })
}

/// The real-time priority of the call application (SCHED_FIFO, below the kernel's own
/// threads at 50).
const RT_PRIORITY: &str = "40";

/// Whether `chrt -f` works here (util-linux, CAP_SYS_NICE, a real-time budget).
fn realtime_available(lab: &Lab) -> bool {
    lab.exec("cn", &["chrt", "-f", RT_PRIORITY, "true"]).is_ok_and(|o| o.status.success())
}

/// A long-running `sid-traffic` in `host` (at real-time priority with `rt`), once it
/// printed `ready`.
fn traffic(lab: &Lab, host: &str, rt: bool, args: &[&str], ready: &str) -> Result<LabChild> {
    let t = tool("sid-traffic")?;
    let mut cmd = if rt { vec!["chrt", "-f", RT_PRIORITY] } else { Vec::new() };
    cmd.push(t.as_str());
    cmd.extend_from_slice(args);
    let mut c = lab.spawn(host, &cmd)?;
    c.wait_for_output(ready, Duration::from_secs(10))?;
    Ok(c)
}

/// Stops a `sid-traffic` (SIGTERM: it writes its log and report) and decodes its report.
fn stop_report<T: serde::de::DeserializeOwned>(what: &str, c: LabChild) -> Result<T> {
    let out = c.stop(Duration::from_secs(10))?;
    last_json(what, &out.stdout, &out.stderr)
}

fn sleep_until(t: Instant) {
    if let Some(d) = t.checked_duration_since(Instant::now()) {
        std::thread::sleep(d);
    }
}

/// The running call: its processes and logs.
struct CallProcs {
    echoes: Vec<(LabChild, PathBuf)>,
    call: LabChild,
    call_log: PathBuf,
    tcp_recv: LabChild,
    tcp_report: PathBuf,
    tcp_log: PathBuf,
    tcp_send: LabChild,
}

/// Starts the echo on every device, the TCP stream TN -> cn2 and the call from cn.
fn start_traffic(lab: &Lab, setup: &CallSetup, rt: bool, tcp_secs: f64, call_secs: f64) -> Result<CallProcs> {
    let dir = lab.workdir().to_path_buf();
    let bind = format!("{TN_ADDRESS}:{CALL_PORT}");
    let mut echoes = Vec::new();
    for (tag, host) in HOSTS.iter().enumerate() {
        let log = dir.join(format!("echo-{host}.csv"));
        let c = traffic(lab, host, rt, &["udp-echo", "--bind", &bind, "--tag", &tag.to_string(), "--log", &path(&log)], "listening")?;
        echoes.push((c, log));
    }
    let tcp_report = dir.join("tcp-recv-cn2.json");
    let tcp_log = dir.join("tcp-recv-cn2.csv");
    let tcp_recv = traffic(
        lab,
        "cn2",
        false,
        &["tcp-recv", "--bind", &format!("{CN2}:{TCP_PORT}"), "--seed", "7", "--report", &path(&tcp_report), "--log", &path(&tcp_log)],
        "listening",
    )?;
    let tcp_send = lab.spawn(
        "mn",
        &[
            &tool("sid-traffic")?,
            "tcp-send",
            "--to",
            &format!("{CN2}:{TCP_PORT}"),
            "--rate",
            &setup.tcp_rate.to_string(),
            "--duration",
            &format!("{tcp_secs:.3}"),
            "--seed",
            "7",
        ],
    )?;
    let call_log = dir.join("call-cn.csv");
    let call = traffic(
        lab,
        "cn",
        rt,
        &[
            "udp-call",
            "--to",
            &format!("{TN_ADDRESS}:{CALL_PORT}"),
            "--bind",
            &format!("0.0.0.0:{CN_PORT}"),
            "--pps",
            &setup.pps.to_string(),
            "--duration",
            &format!("{call_secs:.3}"),
            "--log",
            &path(&call_log),
        ],
        "calling",
    )?;
    Ok(CallProcs { echoes, call, call_log, tcp_recv, tcp_report, tcp_log, tcp_send })
}

/// The session's moves, run one after the other; each returns the phase it starts.
struct Mover<'a> {
    lab: &'a Lab,
    devices: &'a Devices,
    setup: &'a CallSetup,
    /// Index into [`ROLES`] of the device holding the session now.
    holder: usize,
    events: Vec<(u64, String)>,
    snapshots: Vec<Snapshot>,
    failures: Vec<String>,
}

impl Mover<'_> {
    fn device(&self, i: usize) -> &Device {
        match i.checked_sub(1) {
            None => &self.devices.tn,
            Some(t) => &self.devices.targets[t],
        }
    }

    /// The ends of the logs of these devices and of the Agent.
    fn logs(&self, devices: &[usize]) -> String {
        let mut out = String::new();
        for &i in devices {
            out.push_str(&format!("\n    --- {} ({}) log:\n{}", ROLES[i], HOSTS[i], indent(&self.device(i).log_tail(8))));
        }
        out.push_str(&format!("\n    --- Agent (ha) log:\n{}", indent(&self.devices.agent_log_tail(6))));
        out
    }

    fn event(&mut self, label: impl Into<String>) -> u64 {
        let t = now_us();
        self.events.push((t, label.into()));
        t
    }

    /// Holds the phase that began (its change done) at `ready`, then takes the snapshot
    /// that ends it.
    fn hold(&mut self, phase: &mut PhaseMarks, ready: Instant) {
        sleep_until(ready + self.setup.hold);
        phase.end_us = now_us();
        match snapshot(self.lab, self.devices, &phase.name) {
            Ok(s) => self.snapshots.push(s),
            Err(e) => self.failures.push(format!("counters at the end of {}: {e}", phase.name)),
        }
    }

    /// The session moves from the holder to device `to` (a transfer, or a further transfer
    /// when a Target holds it). A failure leaves the holder as it was.
    fn transfer(&mut self, to: usize, reverse: bool) -> PhaseMarks {
        let from = self.holder;
        let name = format!("{} ({}, reverse {})", ROLES[to], HOSTS[to], if reverse { "tunnelled" } else { "direct" });
        let start_us = self.event(format!("offer {} -> {}", ROLES[from], ROLES[to]));
        let mut extra = Vec::new();
        if from == 0 {
            // The TN permits Target 1 to hand the session on.
            extra.push("--further");
        }
        if reverse {
            extra.push("--reverse-tunnel");
        }
        let (lab, old, new) = (self.lab, self.device(from), self.device(to));
        let done = negotiate_and_transfer(lab, old, new, &extra).and_then(|()| {
            // The Agent's acceptance: the TN is `transferred`, a handing-over Target `idle`.
            let want = if from == 0 { "transferred" } else { "idle" };
            wait_status(lab, old, "the Agent's acceptance", |s| {
                let state = if from == 0 { &s["transferring_node"]["state"] } else { &s["target"]["state"] };
                (state == want).then_some(())
            })
        });
        match done {
            Ok(()) => {
                self.event(format!("{} holds (Agent accepted)", ROLES[to]));
                self.holder = to;
            }
            Err(e) => {
                self.event(format!("transfer to {} FAILED", ROLES[to]));
                let logs = self.logs(&[from, to]);
                self.failures.push(format!("transfer {} -> {}: {}{logs}", ROLES[from], ROLES[to], short(&e)));
            }
        }
        PhaseMarks { name, holder: self.holder, intended: to, start_us, ready_us: now_us(), end_us: 0 }
    }

    /// The holder ends the session: a Target's renewal with lifetime 0 (the Agent wakes the
    /// TN), or the TN's stop-transfer demand if it failed to leave. Done when the TN is home.
    fn end(&mut self) -> PhaseMarks {
        let from = self.holder;
        let start_us = self.event(format!("{}: sidctl stop", ROLES[from]));
        let (lab, tn) = (self.lab, &self.devices.tn);
        let done = sidctl(lab, self.device(from), &["stop"])
            .and_then(|_| wait_status(lab, tn, "state home", |s| (s["transferring_node"]["state"] == "home").then_some(())));
        match done {
            Ok(()) => {
                self.event("TN home (woken, address taken back)");
                self.holder = 0;
            }
            Err(e) => {
                self.event("take-back FAILED");
                let logs = self.logs(&[from, 0]);
                self.failures.push(format!("end of the session at {}: {}{logs}", ROLES[from], short(&e)));
            }
        }
        PhaseMarks { name: "TN (home again)".into(), holder: self.holder, intended: 0, start_us, ready_us: now_us(), end_us: 0 }
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("      {}", l.get(..l.len().min(240)).unwrap_or(l))).collect::<Vec<_>>().join("\n")
}

/// An error without the multi-line status dumps some carry (the logs say more).
fn short(e: &LabError) -> String {
    let text = e.to_string();
    match text.find("; status: ") {
        Some(i) => format!("{} (status dump omitted)", &text[..i]),
        None => text,
    }
}

/// Runs the call transfer in `lab` (built from [`topology`]) and reports on it.
pub fn run_call(lab: &Lab, setup: &CallSetup) -> Result<CallReport> {
    if setup.hold <= setup.settle || setup.pps == 0 {
        return Err(check_failed(format!("hold {:?} must exceed settle {:?}, pps > 0", setup.hold, setup.settle)));
    }
    let targets: Vec<TargetSpec> = (1..3).map(|i| TargetSpec::new(HOSTS[i], IDENTITIES[i], ADDRESSES[i])).collect();
    let devices = start_devices(lab, &targets)?;
    for host in ["cn", "cn2"] {
        lab.wait_reachable(host, TN_ADDRESS, super::sid::DEADLINE)?;
    }
    // The call and the TCP stream outlast four held phases and the changes (bounded by
    // sid::DEADLINE each); the call is stopped after the last phase.
    let hold = setup.hold.as_secs_f64();
    let realtime = setup.realtime && realtime_available(lab);
    let procs = start_traffic(lab, setup, realtime, 4.0 * hold + 4.0, 4.0 * hold + 60.0)?;

    let mut m = Mover { lab, devices: &devices, setup, holder: 0, events: Vec::new(), snapshots: Vec::new(), failures: Vec::new() };
    let begun = m.event("call starts (TN holds the session)");
    let mut phases = vec![PhaseMarks { name: "TN (home, baseline)".into(), holder: 0, intended: 0, start_us: begun, ready_us: begun, end_us: 0 }];
    m.hold(&mut phases[0], Instant::now());
    for (to, reverse) in [(1, setup.reverse_tunnel[0]), (2, setup.reverse_tunnel[1])] {
        let mut p = m.transfer(to, reverse);
        m.hold(&mut p, Instant::now());
        phases.push(p);
    }
    let mut p = m.end();
    m.hold(&mut p, Instant::now());
    phases.push(p);
    m.event("call ends");
    let (events, snapshots, failures) = (m.events, m.snapshots, m.failures);

    let call: CallAppReport = stop_report("udp-call", procs.call)?;
    let mut echo: Vec<EchoReport> = Vec::new();
    let mut arrivals = Vec::new();
    for (c, log) in procs.echoes {
        echo.push(stop_report("udp-echo", c)?);
        arrivals.push(read_arrivals(&log)?);
    }
    let replies = read_replies(&procs.call_log).map_err(|e| LabError::io("reading the call log", e))?;
    let sent = procs.tcp_send.wait(Duration::from_secs(60))?;
    let tcp_send: TcpSendReport = last_json("tcp-send", &sent.stdout, &sent.stderr)?;
    let mut tcp_recv = procs.tcp_recv;
    let until = Instant::now() + Duration::from_secs(5);
    while tcp_recv.is_running() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    tcp_recv.stop(Duration::from_secs(5))?;
    let text = std::fs::read_to_string(&procs.tcp_report).map_err(|e| LabError::io("reading the TCP report", e))?;
    let tcp_recv: TcpRecvReport = last_json("tcp-recv", &text, "")?;
    let tcp_progress = read_progress(&procs.tcp_log)?;

    let data = CallData {
        setup: setup.clone(),
        realtime,
        devices: (0..3).map(|i| (ROLES[i].to_owned(), HOSTS[i].to_owned(), ADDRESSES[i])).collect(),
        phases,
        events,
        snapshots,
        failures,
        call,
        echo,
        arrivals,
        replies,
        tcp_send,
        tcp_recv,
        tcp_progress,
    };
    Ok(analyze(&data))
}

/// Reads `tcp-recv --log` (`recv_us,bytes` lines).
fn read_progress(p: &std::path::Path) -> Result<Vec<(u64, u64)>> {
    let text = std::fs::read_to_string(p).map_err(|e| LabError::io(format!("reading {p:?}"), e))?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let (a, b) = l.split_once(',')?;
            Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
        })
        .collect())
}

/// `sid-lab run call-transfer`: `--duration` is each phase's hold, `--pps` the call's rate
/// each way, `--tcp-rate` the second correspondent's stream.
pub fn call_scenario(lab: &Lab, opts: &ScenarioOptions) -> Result<ScenarioReport> {
    let setup = CallSetup { pps: opts.pps, hold: opts.duration, tcp_rate: opts.tcp_rate, ..CallSetup::default() };
    let call = run_call(lab, &setup)?;
    let mut report = ScenarioReport::new("call-transfer", lab);
    for c in &call.checks {
        report.check(c.name.clone(), c.ok, c.detail.clone());
    }
    report.call = Some(Box::new(call));
    Ok(report)
}
