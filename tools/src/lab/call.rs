//! The SID call transfer (issue 4): a two-way call at 1,000 packets per second each way
//! runs while its session moves between devices as an [`Itinerary`] says, and a second
//! correspondent's TCP connection with the TN, which is not transferred, must survive the
//! time away. Two itineraries are built in:
//!
//! - FIG. 1a ([`CallSetup::default`]): TN (home) -> Target 1 on foreign 1 (reverse path
//!   direct) -> Target 2 on foreign 2 (a further transfer, which the TN permitted Target 1;
//!   reverse path tunnelled through the Agent) -> back to the TN when Target 2 ends the
//!   session (renewal with lifetime 0; the Agent wakes the TN, which takes its address back).
//! - FIG. 1b ([`CallSetup::same_subnet`], no Agent): TN -> a Target on the TN's own LAN,
//!   which takes the address over by ARP -> back by the TN's stop-transfer demand -> the
//!   Target again -> back when the Target ends it (its own wake-up to the TN); a third
//!   host's forged stop demand in between must change nothing.
//!
//! The call application (`sid-traffic udp-echo`) runs on every device from the start and is
//! never restarted: whichever device holds 198.18.0.10 receives cn's probes and answers
//! them. [`run_call`] drives the lab and gathers what every process logged;
//! [`super::call_report`] turns that into the report. Used by `sid-lab run call-transfer
//! [--same-subnet]` and by tools/tests/sid_transfer.rs and sid_same_subnet.rs.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::callapp::{read_replies, CallAppReport, EchoReport};
use super::call_report::{analyze, CallData, CallReport, PhaseMarks};
use super::guard::find_tool;
use super::process::LabChild;
use super::scenario::{read_arrivals, ScenarioOptions, ScenarioReport};
use super::sid::{
    forge_stop_demand, negotiate_and_transfer, sidctl, start_devices, start_devices_without_agent, tn_home,
    tn_transferred, Device, Devices, TN_ADDRESS,
};
use super::topology::Topology;
use super::traffic::{now_us, TcpRecvReport, TcpSendReport};
use super::{Lab, LabError, Result};

pub use super::call_plan::{Change, CallDevice, Itinerary, PhaseSpec, ADDRESSES, CN2, HOSTS, ROLES, SAME_SUBNET_TARGET};
pub use super::call_report::{AgentView, DeviceCounters, Forgery, Snapshot};

/// The call: cn -> 198.18.0.10:CALL_PORT, answers back to cn:CN_PORT.
pub const CALL_PORT: u16 = 5001;
pub const CN_PORT: u16 = 5002;
/// The second correspondent's TCP port.
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
    /// The devices and the phases.
    pub itinerary: Itinerary,
    /// The second correspondent's TCP stream, bytes per second.
    pub tcp_rate: u64,
    /// Run the call application (echo and call) at real-time priority (`chrt -f`), as
    /// audio threads of call applications do, so that the measurement's own pacing is not
    /// what the report measures on a busy machine. The daemons run as they are.
    pub realtime: bool,
}

impl Default for CallSetup {
    /// FIG. 1a: TN -> Target 1 (direct) -> Target 2 (reverse-tunnelled) -> TN.
    fn default() -> Self {
        CallSetup {
            pps: 1000,
            hold: Duration::from_secs(3),
            settle: Duration::from_millis(1500),
            itinerary: Itinerary::through_agent([false, true]),
            tcp_rate: 20_000,
            realtime: true,
        }
    }
}

impl CallSetup {
    /// FIG. 1b: the same-subnet itinerary ([`Itinerary::same_subnet`]), otherwise as the
    /// default.
    pub fn same_subnet() -> Self {
        CallSetup { itinerary: Itinerary::same_subnet(), ..CallSetup::default() }
    }
}

/// The lab of the FIG. 1a call: the mobility topology (mn bare: the SID fixture configures
/// it) with a second correspondent `cn2` next to `cn`.
pub fn topology() -> Topology {
    CallSetup::default().itinerary.topology()
}

/// The lab of the FIG. 1b call: as [`topology`] with the Target `tgt` (198.18.0.20) on the
/// home LAN.
pub fn same_subnet_topology() -> Topology {
    CallSetup::same_subnet().itinerary.topology()
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

/// Every device's `sidctl status` and the Agent's bindings and counters (if it runs), now;
/// `roles` names the devices in the order of [`Devices::all`].
pub fn snapshot(lab: &Lab, devices: &Devices, roles: &[&str], phase: &str) -> Result<Snapshot> {
    let at_us = now_us();
    let mut out = Vec::new();
    for (i, d) in devices.all().enumerate() {
        out.push(DeviceCounters::from_status(roles.get(i).copied().unwrap_or("?"), &d.host, &d.status(lab)?));
    }
    let agent = if devices.has_agent() {
        let bindings = ha_admin(lab, devices, &["binding", "list"])?;
        let stats = ha_admin(lab, devices, &["stats"])?;
        Some(AgentView::from_json(&bindings, &stats))
    } else {
        None
    };
    Ok(Snapshot { phase: phase.to_owned(), at_us, devices: out, agent })
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
    for (tag, host) in setup.itinerary.devices.iter().map(|d| &d.host).enumerate() {
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

/// The session's moves, run one after the other, and what they recorded.
struct Mover<'a> {
    lab: &'a Lab,
    devices: &'a Devices,
    setup: &'a CallSetup,
    roles: Vec<&'a str>,
    /// The device holding the session now (0: the TN).
    holder: usize,
    events: Vec<(u64, String)>,
    snapshots: Vec<Snapshot>,
    forgeries: Vec<Forgery>,
    failures: Vec<String>,
}

impl<'a> Mover<'a> {
    fn device(&self, i: usize) -> &'a Device {
        let devices: &'a Devices = self.devices;
        devices.device(i).unwrap_or(&devices.tn)
    }

    fn role(&self, i: usize) -> &str {
        self.roles.get(i).copied().unwrap_or("?")
    }

    /// The ends of the logs of these devices and of the Agent.
    fn logs(&self, devices: &[usize]) -> String {
        let mut out = String::new();
        for &i in devices {
            let d = self.device(i);
            out.push_str(&format!("\n    --- {} ({}) log:\n{}", self.role(i), d.host, indent(&d.log_tail(8))));
        }
        if self.devices.has_agent() {
            out.push_str(&format!("\n    --- Agent (ha) log:\n{}", indent(&self.devices.agent_log_tail(6))));
        }
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
        match snapshot(self.lab, self.devices, &self.roles, &phase.name) {
            Ok(s) => self.snapshots.push(s),
            Err(e) => self.failures.push(format!("counters at the end of {}: {e}", phase.name)),
        }
    }

    /// Runs the change that starts a phase; returns when it began.
    fn change(&mut self, change: Change) -> u64 {
        match change {
            Change::Start => self.event("call starts (TN holds the session)"),
            Change::Transfer { to, further, reverse_tunnel } => self.transfer(to, further, reverse_tunnel),
            Change::Stop { by } => self.stop(by),
        }
    }

    /// The session moves from the holder to device `to` (a transfer, or a further transfer
    /// when a Target holds it). A failure leaves the holder as it was.
    fn transfer(&mut self, to: usize, further: bool, reverse: bool) -> u64 {
        let from = self.holder;
        let start_us = self.event(format!("offer {} -> {}", self.role(from), self.role(to)));
        let mut extra = Vec::new();
        if further {
            extra.push("--further");
        }
        if reverse {
            extra.push("--reverse-tunnel");
        }
        let (lab, old, new) = (self.lab, self.device(from), self.device(to));
        let done = negotiate_and_transfer(lab, old, new, &extra).and_then(|()| {
            // The change accepted: the TN `transferred` (the Agent's reply, or the
            // same-subnet Target's), a Target handing on `idle` (the Agent's reply).
            old.wait(lab, "the change accepted", |s| {
                let ok = if from == 0 { tn_transferred(s) } else { s["target"]["state"] == "idle" };
                ok.then_some(())
            })
        });
        match done {
            Ok(()) => {
                let how = if new.same_subnet { "took the address over by ARP" } else { "Agent accepted" };
                self.event(format!("{} holds ({how})", self.role(to)));
                self.holder = to;
            }
            Err(e) => {
                self.event(format!("transfer to {} FAILED", self.role(to)));
                let logs = self.logs(&[from, to]);
                self.failures.push(format!("transfer {} -> {}: {}{logs}", self.role(from), self.role(to), short(&e)));
            }
        }
        start_us
    }

    /// `sidctl stop` on device `by`: the TN's stop-transfer demand, or the holding Target
    /// ending the session. Done when the TN is home (and a same-subnet Target let the
    /// address go).
    fn stop(&mut self, by: usize) -> u64 {
        let held = self.holder;
        let local = self.device(held).same_subnet;
        let how = match (by, local) {
            (0, _) => "stop-transfer demand",
            (_, true) => "the Target ends it, wakes the TN",
            (_, false) => "lifetime 0, the Agent wakes the TN",
        };
        let start_us = self.event(format!("{}: sidctl stop ({how})", self.role(by)));
        let (lab, tn, target) = (self.lab, &self.devices.tn, self.device(held));
        let done = sidctl(lab, self.device(by), &["stop"])
            .and_then(|_| tn.wait(lab, "state home", |s| tn_home(s).then_some(())))
            .and_then(|()| match local {
                true => target.wait(lab, "the address let go", |s| (s["same_subnet"]["target"]["state"] == "ended").then_some(())),
                false => Ok(()),
            });
        match done {
            Ok(()) => {
                self.event("TN home (woken, address taken back)");
                self.holder = 0;
            }
            Err(e) => {
                self.event("take-back FAILED");
                let logs = self.logs(&[held, 0]);
                self.failures.push(format!("end of the session at {} by the {}: {}{logs}", self.role(held), self.role(by), short(&e)));
            }
        }
        start_us
    }

    /// A forged stop demand from `host` to the same-subnet Target holding the session (at
    /// its own address and the one it holds); waits until the Target counted both as
    /// unauthenticated (within the deadline), then records what changed.
    fn forge(&mut self, host: &str, phase: &str) {
        let (lab, target, tn): (&Lab, &Device, &Device) = (self.lab, self.device(self.holder), &self.devices.tn);
        let to = [target.address, TN_ADDRESS];
        let local = |s: &serde_json::Value, k: &str| s["same_subnet"]["target"][k].as_u64().unwrap_or(0);
        let before = match target.status(lab) {
            Ok(s) => s,
            Err(e) => return self.failures.push(format!("forged stop demand: the Target's status: {e}")),
        };
        let spi = u32::try_from(local(&before, "session_spi")).unwrap_or(0);
        let discarded_before = local(&before, "discarded_auth");
        self.event(format!("{host}: forged stop demand (wrong key) to {} and {TN_ADDRESS}", target.address));
        let counted = forge_stop_demand(lab, host, spi, target.address, &to).and_then(|()| {
            target.wait(lab, "the forged demands counted", |s| (local(s, "discarded_auth") >= discarded_before + 2).then_some(()))
        });
        if let Err(e) = counted {
            self.failures.push(format!("forged stop demand from {host}: {}", short(&e)));
        }
        let after = target.status(lab).unwrap_or_default();
        let tn_after = tn.status(lab).unwrap_or_default();
        self.forgeries.push(Forgery {
            phase: phase.to_owned(),
            from: host.to_owned(),
            sent_to: to.iter().map(ToString::to_string).collect(),
            discarded_before,
            discarded_after: local(&after, "discarded_auth"),
            target_state_after: after["same_subnet"]["target"]["state"].as_str().unwrap_or("?").to_owned(),
            wake_ups_sent_before: local(&before, "wake_ups_sent"),
            wake_ups_sent_after: local(&after, "wake_ups_sent"),
            tn_state_after: tn_after["same_subnet"]["tn"]["state"].as_str().unwrap_or("?").to_owned(),
        });
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

/// Runs the call transfer of `setup.itinerary` in `lab` (built from its
/// [`Itinerary::topology`]) and reports on it.
pub fn run_call(lab: &Lab, setup: &CallSetup) -> Result<CallReport> {
    if setup.hold <= setup.settle || setup.pps == 0 {
        return Err(check_failed(format!("hold {:?} must exceed settle {:?}, pps > 0", setup.hold, setup.settle)));
    }
    let plan = &setup.itinerary;
    if let Some(p) = plan.problem() {
        return Err(check_failed(format!("itinerary {:?}: {p}", plan.title)));
    }
    let targets = plan.targets();
    let devices = if plan.agent { start_devices(lab, &targets)? } else { start_devices_without_agent(lab, &targets)? };
    for host in ["cn", "cn2"] {
        lab.wait_reachable(host, TN_ADDRESS, super::sid::DEADLINE)?;
    }
    // The call and the TCP stream outlast the held phases and the changes (bounded by
    // sid::DEADLINE each); the call is stopped after the last phase.
    let held = plan.phases.len() as f64 * setup.hold.as_secs_f64();
    let realtime = setup.realtime && realtime_available(lab);
    let procs = start_traffic(lab, setup, realtime, held + 4.0, held + 60.0)?;

    let roles: Vec<&str> = plan.devices.iter().map(|d| d.role.as_str()).collect();
    let mut m = Mover {
        lab,
        devices: &devices,
        setup,
        roles,
        holder: 0,
        events: Vec::new(),
        snapshots: Vec::new(),
        forgeries: Vec::new(),
        failures: Vec::new(),
    };
    let mut phases = Vec::new();
    for (spec, intended) in plan.phases.iter().zip(plan.holders()) {
        let start_us = m.change(spec.change);
        let ready = Instant::now();
        let mut p = PhaseMarks { name: spec.name.clone(), holder: m.holder, intended, start_us, ready_us: now_us(), end_us: 0 };
        if spec.change == Change::Start {
            p.ready_us = start_us;
        }
        if let Some(host) = &spec.forged_stop_from {
            m.forge(host, &spec.name);
        }
        m.hold(&mut p, ready);
        phases.push(p);
    }
    m.event("call ends");
    let (events, snapshots, forgeries, failures) = (m.events, m.snapshots, m.forgeries, m.failures);

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
        devices: plan.devices.iter().map(|d| (d.role.clone(), d.host.clone(), d.address)).collect(),
        phases,
        events,
        snapshots,
        forgeries,
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

/// A `sid-lab run` scenario on `setup`: `--duration` is each phase's hold, `--pps` the
/// call's rate each way, `--tcp-rate` the second correspondent's stream.
fn scenario(name: &str, lab: &Lab, opts: &ScenarioOptions, setup: CallSetup) -> Result<ScenarioReport> {
    let setup = CallSetup { pps: opts.pps, hold: opts.duration, tcp_rate: opts.tcp_rate, ..setup };
    let call = run_call(lab, &setup)?;
    let mut report = ScenarioReport::new(name, lab);
    for c in &call.checks {
        report.check(c.name.clone(), c.ok, c.detail.clone());
    }
    report.call = Some(Box::new(call));
    Ok(report)
}

/// `sid-lab run call-transfer`: FIG. 1a, through the Agent.
pub fn call_scenario(lab: &Lab, opts: &ScenarioOptions) -> Result<ScenarioReport> {
    scenario("call-transfer", lab, opts, CallSetup::default())
}

/// `sid-lab run call-transfer --same-subnet` (`call-transfer-local`): FIG. 1b, no Agent.
pub fn same_subnet_scenario(lab: &Lab, opts: &ScenarioOptions) -> Result<ScenarioReport> {
    scenario("call-transfer-local", lab, opts, CallSetup::same_subnet())
}
