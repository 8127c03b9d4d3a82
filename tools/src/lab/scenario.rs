//! Scenarios: a function over a [`Lab`] that returns a serializable [`ScenarioReport`]
//! (`sid-lab run NAME [--json]`), plus the traffic helpers scenarios are made of
//! ([`UdpFlow`], [`TcpFlow`], [`MoveLog`]).
//!
//! A mobility scenario looks like: start flows, `moves.record("to f1")` then
//! `lab.move_port("mn", "f1")`, wait, ..., finish the flows with `moves.times()`, and
//! [`move_reports`] turns the UDP windows into one line per move.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::guard::find_tool;
use super::process::LabChild;
use super::topology::Topology;
use super::traffic::{
    self, Arrival, Schedule, TcpRecvReport, TcpSendReport, UdpReport, UdpSendReport,
};
use super::{Lab, LabError, Result};

/// Knobs of a run (`sid-lab run` flags).
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioOptions {
    /// How long each traffic phase lasts.
    pub duration: Duration,
    pub pps: u32,
    /// TCP stream rate, bytes per second.
    pub tcp_rate: u64,
}

impl Default for ScenarioOptions {
    fn default() -> Self {
        DEFAULT_OPTIONS
    }
}

/// One named pass/fail check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UdpFlowReport {
    pub name: String,
    pub send: UdpSendReport,
    pub recv: UdpReport,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TcpFlowReport {
    pub name: String,
    pub send: TcpSendReport,
    pub recv: TcpRecvReport,
    /// Every byte arrived, in order and intact, and the connection stayed up.
    pub ok: bool,
}

/// UDP figures of the window that starts at one move (or at the start).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MoveReport {
    pub flow: String,
    pub label: String,
    pub at_us: Option<u64>,
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub longest_gap_ms: f64,
}

/// What a scenario found. Passed when every check is ok.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioReport {
    pub scenario: String,
    pub passed: bool,
    pub lab: String,
    pub setup_ms: f64,
    pub run_ms: f64,
    pub checks: Vec<Check>,
    pub udp: Vec<UdpFlowReport>,
    pub tcp: Vec<TcpFlowReport>,
    pub moves: Vec<MoveReport>,
    /// The call transfer's own report (`call-transfer`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<Box<super::call_report::CallReport>>,
}

impl ScenarioReport {
    pub fn new(scenario: &str, lab: &Lab) -> Self {
        ScenarioReport {
            scenario: scenario.to_owned(),
            passed: true,
            lab: lab.prefix().to_owned(),
            setup_ms: 0.0,
            run_ms: 0.0,
            checks: Vec::new(),
            udp: Vec::new(),
            tcp: Vec::new(),
            moves: Vec::new(),
            call: None,
        }
    }

    /// Records a check; a failed one fails the report.
    pub fn check(&mut self, name: impl Into<String>, ok: bool, detail: impl Into<String>) {
        self.passed &= ok;
        self.checks.push(Check {
            name: name.into(),
            ok,
            detail: detail.into(),
        });
    }
}

impl fmt::Display for ScenarioReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "scenario {}: {} (lab {}, setup {:.0} ms, run {:.0} ms)",
            self.scenario,
            if self.passed { "PASS" } else { "FAIL" },
            self.lab,
            self.setup_ms,
            self.run_ms
        )?;
        if let Some(call) = &self.call {
            // Its checks are the scenario's, printed with the rest of its report.
            return write!(f, "{call}");
        }
        for c in &self.checks {
            writeln!(
                f,
                "  [{}] {}: {}",
                if c.ok { " ok " } else { "FAIL" },
                c.name,
                c.detail
            )?;
        }
        for u in &self.udp {
            let r = &u.recv;
            writeln!(
                f,
                "  udp {}: sent {} received {} lost {} dup {} reordered {} longest gap {:.1} ms, latency avg {:.2} max {:.2} ms",
                u.name, r.sent, r.received, r.lost, r.duplicates, r.reordered, r.longest_gap_ms, r.latency_avg_ms, r.latency_max_ms
            )?;
        }
        for t in &self.tcp {
            writeln!(
                f,
                "  tcp {}: sent {} received {} bytes, {} errors, longest stall {:.1} ms, end of stream {}{}",
                t.name,
                t.send.bytes,
                t.recv.bytes,
                t.recv.errors,
                t.recv.longest_stall_ms,
                if t.recv.eof { "yes" } else { "no" },
                t.recv.error.as_ref().map(|e| format!(", error: {e}")).unwrap_or_default()
            )?;
        }
        if !self.moves.is_empty() {
            writeln!(
                f,
                "  {:<10} {:<16} {:>7} {:>8} {:>6} {:>10}",
                "flow", "window", "sent", "received", "lost", "gap ms"
            )?;
            for m in &self.moves {
                writeln!(
                    f,
                    "  {:<10} {:<16} {:>7} {:>8} {:>6} {:>10.1}",
                    m.flow, m.label, m.sent, m.received, m.lost, m.longest_gap_ms
                )?;
            }
        }
        Ok(())
    }
}

/// A scenario: its topology and what it does with the lab.
pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    pub topology: fn() -> Topology,
    pub run: fn(&Lab, &ScenarioOptions) -> Result<ScenarioReport>,
    /// Its options when `sid-lab run` is given none.
    pub defaults: ScenarioOptions,
}

/// The options most scenarios run with by default.
pub const DEFAULT_OPTIONS: ScenarioOptions = ScenarioOptions {
    duration: Duration::from_secs(3),
    pps: 1000,
    tcp_rate: 1_000_000,
};

/// Every scenario `sid-lab run` knows.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "ping",
        about: "every host pings every address of every other host, across rtr",
        topology: Topology::base,
        run: ping_scenario,
        defaults: DEFAULT_OPTIONS,
    },
    Scenario {
        name: "kernel-forwarding",
        about: "UDP both ways and a TCP stream between mn (home) and cn through rtr, no Mobile IP: the baseline",
        topology: Topology::base,
        run: kernel_forwarding_scenario,
        defaults: DEFAULT_OPTIONS,
    },
    Scenario {
        name: "move",
        about: "the mobile node moves home -> foreign 1 (foreign agent) -> foreign 2 (co-located) -> home while cn streams UDP (1,000 pps) and TCP to its home address; per move: packets sent, received, lost, longest gap",
        topology: super::mobility::topology,
        run: super::mobility::move_scenario,
        defaults: DEFAULT_OPTIONS,
    },
    Scenario {
        name: "call-transfer",
        about: "SID: a two-way call (1,000 pps each way) while its session moves TN -> Target 1 (foreign 1, direct return) -> Target 2 (foreign 2, further transfer, return reverse-tunnelled) -> TN (Target 2 ends it, the Agent wakes the TN); a second correspondent's TCP connection with the TN survives; timeline, per-phase loss and gaps, verdict. --duration: each phase's hold",
        topology: super::call::topology,
        run: super::call::call_scenario,
        defaults: CALL_OPTIONS,
    },
    Scenario {
        name: "call-transfer-local",
        about: "SID, same subnet (patent FIG. 1b, no Agent; also `call-transfer --same-subnet`): the same call while its session moves TN -> a Target on the TN's own LAN (takes the address over by ARP) -> TN (the TN's stop-transfer demand) -> the Target again -> TN (the Target ends it and wakes the TN); a forged stop demand from cn changes nothing; the TCP connection survives; the same report. --duration: each phase's hold",
        topology: super::call::same_subnet_topology,
        run: super::call::same_subnet_scenario,
        defaults: CALL_OPTIONS,
    },
];

/// The call transfers' options: a modest left-behind TCP stream, which must not crowd the
/// call when it resumes.
const CALL_OPTIONS: ScenarioOptions = ScenarioOptions {
    duration: Duration::from_secs(3),
    pps: 1000,
    tcp_rate: 20_000,
};

pub fn find(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}

/// The same-subnet (patent FIG. 1b) variant of a scenario, if it has one
/// (`sid-lab run NAME --same-subnet`).
pub fn same_subnet_variant(name: &str) -> Option<&'static Scenario> {
    match name {
        "call-transfer" | "call-transfer-local" => find("call-transfer-local"),
        _ => None,
    }
}

/// Brings up the scenario's lab, runs it, tears the lab down. An error inside the scenario
/// becomes a failed check, so there is always a report once the lab came up.
pub fn run_scenario(s: &Scenario, opts: &ScenarioOptions) -> Result<ScenarioReport> {
    let t0 = Instant::now();
    let lab = Lab::up((s.topology)())?;
    let setup_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let t1 = Instant::now();
    let mut report = match (s.run)(&lab, opts) {
        Ok(r) => r,
        Err(e) => {
            let mut r = ScenarioReport::new(s.name, &lab);
            r.check("scenario ran", false, e.to_string());
            r
        }
    };
    report.setup_ms = setup_ms;
    report.run_ms = t1.elapsed().as_secs_f64() * 1000.0;
    lab.down()?;
    Ok(report)
}

/// Moves recorded as they happen (wall-clock microseconds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MoveLog {
    moves: Vec<(String, u64)>,
}

impl MoveLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes a move now; call it right before moving the port.
    pub fn record(&mut self, label: impl Into<String>) -> u64 {
        let t = traffic::now_us();
        self.moves.push((label.into(), t));
        t
    }

    pub fn times(&self) -> Vec<u64> {
        self.moves.iter().map(|m| m.1).collect()
    }

    pub fn labels(&self) -> Vec<String> {
        self.moves.iter().map(|m| m.0.clone()).collect()
    }
}

/// One line per window of a UDP flow: "start" then each move of `log`.
pub fn move_reports(flow: &str, log: &MoveLog, udp: &UdpReport) -> Vec<MoveReport> {
    udp.windows
        .iter()
        .map(|w| {
            let label = match w.index.checked_sub(1) {
                None => "start".to_owned(),
                Some(i) => log.moves.get(i).map(|m| m.0.clone()).unwrap_or_default(),
            };
            MoveReport {
                flow: flow.to_owned(),
                label,
                at_us: w.start_us,
                sent: w.sent,
                received: w.received,
                lost: w.lost,
                longest_gap_ms: w.longest_gap_ms,
            }
        })
        .collect()
}

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

fn last_json_line<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T> {
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| LabError::Report {
            what: what.to_owned(),
            reason: format!("no JSON line in {text:?}"),
        })?;
    serde_json::from_str(line).map_err(|e| LabError::Report {
        what: what.to_owned(),
        reason: e.to_string(),
    })
}

fn read_json<T: serde::de::DeserializeOwned>(what: &str, path: &PathBuf) -> Result<T> {
    let text =
        std::fs::read_to_string(path).map_err(|e| LabError::io(format!("reading {path:?}"), e))?;
    serde_json::from_str(&text).map_err(|e| LabError::Report {
        what: what.to_owned(),
        reason: e.to_string(),
    })
}

/// Reads the arrival log of `udp-recv --log` (`seq,sent_us,recv_us` lines).
pub fn read_arrivals(path: &std::path::Path) -> Result<Vec<Arrival>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| LabError::io(format!("reading {path:?}"), e))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let mut it = line.split(',').map(|f| f.trim().parse::<u64>());
        if let (Some(Ok(seq)), Some(Ok(sent_us)), Some(Ok(recv_us))) =
            (it.next(), it.next(), it.next())
        {
            out.push(Arrival {
                seq,
                sent_us,
                recv_us,
            });
        }
    }
    Ok(out)
}

/// A UDP probe stream between two hosts: `sid-traffic udp-recv` and `udp-send`.
pub struct UdpFlow {
    name: String,
    sender: LabChild,
    receiver: LabChild,
    log: PathBuf,
    wait: Duration,
}

impl UdpFlow {
    /// Starts the receiver on `to` (all addresses, `port`), waits until it listens, then
    /// the sender on `from` towards `to_addr:port`.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        lab: &Lab,
        name: &str,
        from: &str,
        to: &str,
        to_addr: Ipv4Addr,
        port: u16,
        pps: u32,
        duration: Duration,
    ) -> Result<UdpFlow> {
        let tool = find_tool("sid-traffic")?;
        let tool = tool.to_string_lossy().into_owned();
        let log = lab.workdir().join(format!("udp-{name}-{port}.csv"));
        let report = lab.workdir().join(format!("udp-{name}-{port}.json"));
        let mut receiver = lab.spawn(
            to,
            &[
                &tool,
                "udp-recv",
                "--bind",
                &format!("0.0.0.0:{port}"),
                "--report",
                &report.to_string_lossy(),
                "--log",
                &log.to_string_lossy(),
            ],
        )?;
        receiver.wait_for_output("listening", Duration::from_secs(5))?;
        let sender = lab.spawn(
            from,
            &[
                &tool,
                "udp-send",
                "--to",
                &format!("{to_addr}:{port}"),
                "--pps",
                &pps.to_string(),
                "--duration",
                &secs(duration),
            ],
        )?;
        Ok(UdpFlow {
            name: name.to_owned(),
            sender,
            receiver,
            log,
            wait: duration + Duration::from_secs(10),
        })
    }

    /// Waits for the sender to finish, lets late packets land, stops the receiver and
    /// judges the stream with `moves` as window boundaries.
    pub fn finish(self, moves: &[u64]) -> Result<UdpFlowReport> {
        let sent = self.sender.wait(self.wait)?;
        let send: UdpSendReport = last_json_line(&format!("udp-send {}", self.name), &sent.stdout)?;
        std::thread::sleep(Duration::from_millis(200));
        self.receiver.stop(Duration::from_secs(5))?;
        let arrivals = read_arrivals(&self.log)?;
        let schedule = Schedule {
            start_us: send.start_us,
            interval_ns: send.interval_ns,
        };
        let recv = traffic::analyze(&arrivals, Some(schedule), Some(send.sent), moves);
        Ok(UdpFlowReport {
            name: self.name,
            send,
            recv,
        })
    }
}

/// A checked TCP byte stream between two hosts: `sid-traffic tcp-recv` and `tcp-send`.
pub struct TcpFlow {
    name: String,
    sender: LabChild,
    receiver: LabChild,
    report: PathBuf,
    wait: Duration,
}

impl TcpFlow {
    /// Starts the receiver on `to` (all addresses, `port`), then the sender on `from`,
    /// sending `rate` bytes per second for `duration`.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        lab: &Lab,
        name: &str,
        from: &str,
        to: &str,
        to_addr: Ipv4Addr,
        port: u16,
        rate: u64,
        duration: Duration,
    ) -> Result<TcpFlow> {
        let tool = find_tool("sid-traffic")?;
        let tool = tool.to_string_lossy().into_owned();
        let report = lab.workdir().join(format!("tcp-{name}-{port}.json"));
        let seed = u64::from(port);
        let mut receiver = lab.spawn(
            to,
            &[
                &tool,
                "tcp-recv",
                "--bind",
                &format!("0.0.0.0:{port}"),
                "--report",
                &report.to_string_lossy(),
                "--seed",
                &seed.to_string(),
            ],
        )?;
        receiver.wait_for_output("listening", Duration::from_secs(5))?;
        let sender = lab.spawn(
            from,
            &[
                &tool,
                "tcp-send",
                "--to",
                &format!("{to_addr}:{port}"),
                "--rate",
                &rate.to_string(),
                "--duration",
                &secs(duration),
                "--seed",
                &seed.to_string(),
            ],
        )?;
        Ok(TcpFlow {
            name: name.to_owned(),
            sender,
            receiver,
            report,
            wait: duration + Duration::from_secs(20),
        })
    }

    /// Waits for both ends and judges the stream.
    pub fn finish(self) -> Result<TcpFlowReport> {
        let sent = self.sender.wait(self.wait)?;
        let send: TcpSendReport = last_json_line(&format!("tcp-send {}", self.name), &sent.stdout)?;
        let mut receiver = self.receiver;
        // It ends by itself at the end of the stream; a cut connection may need a nudge.
        let deadline = Instant::now() + Duration::from_secs(5);
        while receiver.is_running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        receiver.stop(Duration::from_secs(5))?;
        let recv: TcpRecvReport = read_json(&format!("tcp-recv {}", self.name), &self.report)?;
        let ok = recv.ok() && send.error.is_none() && send.acknowledged && recv.bytes == send.bytes;
        Ok(TcpFlowReport {
            name: self.name,
            send,
            recv,
            ok,
        })
    }
}

/// Every host pings every address of every other host (the router's four included).
fn ping_scenario(lab: &Lab, _opts: &ScenarioOptions) -> Result<ScenarioReport> {
    let mut report = ScenarioReport::new("ping", lab);
    let t = lab.topology();
    let targets: Vec<(String, Ipv4Addr)> = t
        .hosts
        .iter()
        .flat_map(|h| {
            h.ifaces
                .iter()
                .flat_map(|i| i.addrs.iter().map(|a| (h.name.clone(), a.addr)))
        })
        .collect();
    let results: Vec<(String, Ipv4Addr, Result<super::ping::PingReport>)> =
        std::thread::scope(|s| {
            let handles: Vec<_> = t
                .hosts
                .iter()
                .map(|h| {
                    let targets = &targets;
                    s.spawn(move || {
                        targets
                            .iter()
                            .filter(|(owner, _)| *owner != h.name)
                            .map(|(_, addr)| {
                                (
                                    h.name.clone(),
                                    *addr,
                                    lab.ping(&h.name, *addr, 3, Duration::from_secs(1)),
                                )
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
    for (from, to, r) in results {
        match r {
            Ok(p) => {
                let detail = match p.rtt_ms.first() {
                    Some(rtt) => format!("reply in {rtt:.2} ms"),
                    None => format!("no reply to {} requests", p.sent),
                };
                report.check(format!("{from} -> {to}"), p.reachable(), detail);
            }
            Err(e) => report.check(format!("{from} -> {to}"), false, e.to_string()),
        }
    }
    Ok(report)
}

/// mn (at home) and cn exchange UDP probes both ways and a TCP stream, routed by rtr's kernel.
fn kernel_forwarding_scenario(lab: &Lab, opts: &ScenarioOptions) -> Result<ScenarioReport> {
    let mut report = ScenarioReport::new("kernel-forwarding", lab);
    let mn = lab.addr("mn")?;
    let cn = lab.addr("cn")?;
    // Warm the ARP caches so the first probes are not held back.
    lab.wait_reachable("mn", cn, Duration::from_secs(3))?;
    lab.wait_reachable("cn", mn, Duration::from_secs(3))?;
    let up = UdpFlow::start(lab, "mn-cn", "mn", "cn", cn, 5001, opts.pps, opts.duration)?;
    let down = UdpFlow::start(lab, "cn-mn", "cn", "mn", mn, 5002, opts.pps, opts.duration)?;
    let tcp = TcpFlow::start(
        lab,
        "mn-cn",
        "mn",
        "cn",
        cn,
        5003,
        opts.tcp_rate,
        opts.duration,
    )?;
    for flow in [up.finish(&[])?, down.finish(&[])?] {
        let r = &flow.recv;
        report.check(
            format!("udp {} no loss", flow.name),
            r.sent > 0 && r.lost == 0 && r.duplicates == 0,
            format!(
                "sent {} received {} lost {} dup {}",
                r.sent, r.received, r.lost, r.duplicates
            ),
        );
        report.udp.push(flow);
    }
    let t = tcp.finish()?;
    report.check(
        format!("tcp {} intact", t.name),
        t.ok && t.send.bytes > 0,
        format!(
            "{} of {} bytes, {} errors, eof {}, error {:?}",
            t.recv.bytes,
            t.send.bytes,
            t.recv.errors,
            t.recv.eof,
            t.recv.error.as_ref().or(t.send.error.as_ref())
        ),
    );
    report.tcp.push(t);
    Ok(report)
}
