//! `dp-bench`: forwarding through the Home Agent's user-space data plane versus the
//! kernel's own IP forwarding, between the same lab namespaces, in the same run.
//!
//! ```text
//! cargo build --release -p tools -p mip-ha
//! target/release/dp-bench                              # 3 s per path, payloads 64 and 1400
//! target/release/dp-bench --duration 5 --sizes 64,512,1400 --json
//! ```
//!
//! The base lab is built with the mobile node stripped of its configuration and moved to
//! foreign 2, where it gets the co-located address 198.18.2.100/24 (default via
//! 198.18.2.254). `mip-ha` runs in `ha` with its data plane on eth0, and `mip-mn register
//! --once` binds 198.18.0.10 to 198.18.2.100. No mobile-node daemon runs: the node only
//! counts what arrives. Per payload size, two phases with the same sender:
//!
//! - kernel: one thread in `cn` floods UDP to 198.18.2.100:9 through `rtr` (kernel
//!   forwarding only); a UDP socket on port 9 in `mn` counts it;
//! - ha: the same thread floods 198.18.0.10:9; `rtr` delivers it to the home LAN, the home
//!   agent proxy-ARPs, takes it off the link (AF_PACKET), encapsulates it IP-in-IP and sends
//!   it to 198.18.2.100 through `rtr` again; a raw protocol-4 socket in `mn` counts it.
//!
//! Each phase starts with a short warm-up (ARP, proxy ARP) that is not counted, then sends
//! for `--duration` and waits 500 ms for stragglers. Rates are over the sender's time.
//! "inner" bytes are the IP packet the correspondent sent, "outer" what crossed the last
//! link (inner + 20 through the tunnel). Link rx is the delta of mn eth0's packet counter
//! (independent of the counting socket). The home agent's data-plane counters
//! (`ha-admin stats --json`) are read around the ha phase as a cross-check.
//!
//! Everything runs in lab namespaces (198.18.0.0/15), removed when the lab is dropped, also
//! on panic and on SIGINT/SIGTERM. Needs root.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Parser;
use mip_ha::control::{BindingInfo, StatsReport};
use mip_ha::dataplane::stats::DataplaneReport;
use nix::sched::{sched_setaffinity, CpuSet};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::socket::{setsockopt, sockopt};
use nix::unistd::Pid;
use serde::Serialize;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tools::lab::guard::find_tool;
use tools::lab::guard::teardown_live_labs;
use tools::lab::mobility::{topology, LAB_KEY};
use tools::lab::Lab;

const HOME: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const HA: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const COA: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 100);
const PORT: u16 = 9;
/// IPv4 + UDP headers, and the outer header IP-in-IP adds.
const UDP_IP_OVERHEAD: usize = 28;
const TUNNEL_OVERHEAD: usize = 20;
/// The largest payload whose tunnelled packet still fits a 1500-byte link.
const MAX_PAYLOAD: usize = 1500 - UDP_IP_OVERHEAD - TUNNEL_OVERHEAD;
const WARMUP: Duration = Duration::from_millis(100);
const SETTLE: Duration = Duration::from_millis(300);
const DRAIN: Duration = Duration::from_millis(500);
/// Forced receive buffer of the counting socket: absorbs bursts while its thread is off-CPU.
const RCVBUF: usize = 16 << 20;

#[derive(Debug, Parser)]
#[command(name = "dp-bench", about = "UDP forwarding through mip-ha's data plane vs kernel forwarding, in the lab")]
struct Cli {
    /// Seconds of flooding per path and size.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// UDP payload sizes in bytes, comma separated (1 to 1452).
    #[arg(long, value_delimiter = ',', default_values_t = [64usize, 1400])]
    sizes: Vec<usize>,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
    /// Leave thread placement to the scheduler (default: sender on CPU 0, counting
    /// receiver on CPU 1, so that they never share a core).
    #[arg(long)]
    no_pin: bool,
}

/// Which way the flood reaches the mobile node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// To the co-located address: kernel forwarding in rtr only.
    Kernel,
    /// To the home address: rtr, the home agent's tunnel, rtr again.
    HomeAgent,
}

#[derive(Debug, Default)]
struct Counters {
    packets: AtomicU64,
    inner_bytes: AtomicU64,
    outer_bytes: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Snap {
    packets: u64,
    inner_bytes: u64,
    outer_bytes: u64,
    link_rx: u64,
}

#[derive(Debug, Default)]
struct SendTally {
    sent: u64,
    errors: u64,
    elapsed: Duration,
}

#[derive(Debug, Clone, Serialize)]
struct PathResult {
    path: &'static str,
    sent: u64,
    send_errors: u64,
    received: u64,
    link_rx: u64,
    seconds: f64,
    sent_pps: f64,
    recv_pps: f64,
    inner_mbit_s: f64,
    outer_mbit_s: f64,
    loss_pct: f64,
}

/// Deltas of the home agent's data-plane counters over the measured ha phase.
#[derive(Debug, Clone, Default, Serialize)]
struct HaCounters {
    intercepted: u64,
    tunnelled_packets: u64,
    tunnelled_bytes: u64,
    dropped: BTreeMap<String, u64>,
    /// Sent but never read by the home agent (its socket queue overflowed, or lost on
    /// the way to it).
    not_intercepted: u64,
    /// Tunnelled but not counted at the mobile node.
    lost_after_ha: u64,
}

#[derive(Debug, Clone, Serialize)]
struct SizeResult {
    payload: usize,
    kernel: PathResult,
    ha: PathResult,
    ha_counters: HaCounters,
    /// HA / kernel, received packets per second.
    ratio_pps: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    duration_s: f64,
    pinned: bool,
    results: Vec<SizeResult>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(bad) = cli.sizes.iter().find(|s| !(1..=MAX_PAYLOAD).contains(*s)) {
        eprintln!("dp-bench: payload size {bad} outside 1..={MAX_PAYLOAD} (tunnelled packet must fit 1500)");
        return ExitCode::from(2);
    }
    if !(cli.duration > 0.0 && cli.duration <= 600.0) {
        eprintln!("dp-bench: --duration must be in (0, 600] seconds");
        return ExitCode::from(2);
    }
    if let Err(e) = teardown_on_signals() {
        eprintln!("dp-bench: {e}");
        return ExitCode::from(3);
    }
    match run(&cli) {
        Ok(report) => {
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            } else {
                print_table(&report);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dp-bench: {e}");
            ExitCode::from(1)
        }
    }
}

/// Ctrl-C or a kill still removes the lab: a thread takes the signal, tears down, exits.
fn teardown_on_signals() -> Result<(), String> {
    let mut set = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        set.add(s);
    }
    set.thread_block().map_err(|e| format!("blocking signals: {e}"))?;
    std::thread::spawn(move || {
        if let Ok(sig) = set.wait() {
            eprintln!("dp-bench: {sig}, removing the lab");
            teardown_live_labs();
            std::process::exit(128 + sig as i32);
        }
    });
    Ok(())
}

fn run(cli: &Cli) -> Result<Report, String> {
    let duration = Duration::from_secs_f64(cli.duration);
    let lab = Lab::up(topology()).map_err(|e| format!("lab: {e}"))?;
    lab.move_port("mn", "f2").map_err(|e| e.to_string())?;
    lab.sh("mn", &format!("ip addr add {COA}/24 dev eth0 && ip route add default via 198.18.2.254"))
        .map_err(|e| e.to_string())?;

    let control = lab.workdir().join("ha.sock");
    let config = lab.workdir().join("ha.toml");
    let text = format!(
        "[home_agent]\naddress = \"{HA}\"\nprefix_len = 24\nlisten = \"0.0.0.0:434\"\n\
         control_socket = \"{}\"\nmax_lifetime = 600\nhome_interface = \"eth0\"\n\n\
         [[mobile_node]]\nhome_address = \"{HOME}\"\n[[mobile_node.sa]]\nspi = 256\nkey = \"{LAB_KEY}\"\n",
        control.display()
    );
    std::fs::write(&config, text).map_err(|e| format!("{}: {e}", config.display()))?;
    let tool = |n: &str| find_tool(n).map(|p| p.to_string_lossy().into_owned()).map_err(|e| e.to_string());
    let (mip_ha, mip_mn, ha_admin) =
        (tool("mip-ha")?, tool("mip-mn")?, find_tool("ha-admin").map_err(|e| e.to_string())?);
    let ha = lab.spawn("ha", &[&mip_ha, "--config", &config.to_string_lossy()]).map_err(|e| e.to_string())?;

    // The control socket answers once the data plane runs (it starts first).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match ha_stats(&ha_admin, &control) {
            Ok(_) => break,
            Err(e) if Instant::now() > deadline => return Err(format!("mip-ha not up: {e}; log: {}", ha.stderr())),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }

    let reg = lab
        .exec(
            "mn",
            &[
                &mip_mn,
                "register",
                "--once",
                "--home-agent",
                &HA.to_string(),
                "--home-address",
                &HOME.to_string(),
                "--care-of",
                &COA.to_string(),
                "--spi",
                "256",
                "--key",
                LAB_KEY,
                "--lifetime",
                "600",
                "--bind",
                &format!("{COA}:0"),
                "--timeout",
                "5",
            ],
        )
        .map_err(|e| e.to_string())?;
    if !reg.status.success() {
        let (out, err) = (String::from_utf8_lossy(&reg.stdout), String::from_utf8_lossy(&reg.stderr));
        return Err(format!("registration failed ({}): {out}{err}", reg.status));
    }
    let bindings: Vec<BindingInfo> = serde_json::from_str(&admin(&ha_admin, &control, &["binding", "list"])?)
        .map_err(|e| format!("ha-admin binding list: {e}"))?;
    if !bindings.iter().any(|b| b.home_address == HOME && b.care_of_address == COA) {
        return Err(format!("no binding {HOME} -> {COA} at the home agent: {bindings:?}"));
    }

    let mut results = Vec::new();
    for &payload in &cli.sizes {
        let (kernel, _) = measure(&lab, Via::Kernel, payload, duration, !cli.no_pin, None)?;
        let (ha_res, counters) =
            measure(&lab, Via::HomeAgent, payload, duration, !cli.no_pin, Some((&ha_admin, &control)))?;
        let ratio_pps = if kernel.recv_pps > 0.0 { ha_res.recv_pps / kernel.recv_pps } else { 0.0 };
        results.push(SizeResult { payload, kernel, ha: ha_res, ha_counters: counters, ratio_pps });
    }
    drop(ha);
    lab.down().map_err(|e| format!("removing the lab: {e}"))?;
    Ok(Report { duration_s: cli.duration, pinned: !cli.no_pin, results })
}

/// `ha-admin --socket S --json ARGS`: its standard output.
fn admin(ha_admin: &Path, control: &Path, args: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new(ha_admin);
    cmd.arg("--socket").arg(control).arg("--json").args(args);
    let out = cmd.output().map_err(|e| format!("running ha-admin: {e}"))?;
    if !out.status.success() {
        return Err(format!("ha-admin {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ha_stats(ha_admin: &Path, control: &Path) -> Result<DataplaneReport, String> {
    let report: StatsReport =
        serde_json::from_str(&admin(ha_admin, control, &["stats"])?).map_err(|e| format!("ha-admin stats: {e}"))?;
    report.dataplane.map(|d| *d).ok_or_else(|| "mip-ha reports no data plane".to_owned())
}

/// Packets received on mn's eth0 so far (`ip -j -s link`).
fn link_rx(lab: &Lab) -> Result<u64, String> {
    let text = lab.exec_ok("mn", &["ip", "-j", "-s", "link", "show", "dev", "eth0"]).map_err(|e| e.to_string())?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("ip -j -s link: {e}"))?;
    v.pointer("/0/stats64/rx/packets")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| "ip -j -s link: no rx packet counter".to_owned())
}

/// One phase: receiver in mn, warm-up, counted flood from cn, drain.
fn measure(
    lab: &Lab,
    via: Via,
    payload: usize,
    duration: Duration,
    pin_threads: bool,
    ha: Option<(&Path, &Path)>,
) -> Result<(PathResult, HaCounters), String> {
    let target = SocketAddrV4::new(if via == Via::Kernel { COA } else { HOME }, PORT);
    let counters = Counters::default();
    let stop = AtomicBool::new(false);
    let snap = |link_rx: u64| Snap {
        packets: counters.packets.load(Relaxed),
        inner_bytes: counters.inner_bytes.load(Relaxed),
        outer_bytes: counters.outer_bytes.load(Relaxed),
        link_rx,
    };
    let stats = || ha.map(|(a, c)| ha_stats(a, c)).transpose();
    let (tally, before, after, ha_before, ha_after) = std::thread::scope(|s| {
        let (ready_tx, ready_rx) = mpsc::channel();
        let receiver = s.spawn(|| {
            lab.in_ns("mn", || {
                pin(pin_threads, 1);
                receive(via, &counters, &stop, ready_tx)
            })
        });
        let phase = || -> Result<_, String> {
            ready_rx
                .recv()
                .map_err(|_| "receiver thread ended".to_owned())?
                .map_err(|e| format!("receiver socket: {e}"))?;
            lab.in_ns("cn", || flood(target, payload, WARMUP))
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("warm-up to {target}: {e}"))?;
            std::thread::sleep(SETTLE);
            let ha_before = stats()?;
            let before = snap(link_rx(lab)?);
            let tally = lab
                .in_ns("cn", || {
                    pin(pin_threads, 0);
                    flood(target, payload, duration)
                })
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("flood to {target}: {e}"))?;
            std::thread::sleep(DRAIN);
            let after = snap(link_rx(lab)?);
            let ha_after = stats()?;
            Ok((tally, before, after, ha_before, ha_after))
        };
        let result = phase();
        // Always stop the receiver, or the scope would wait for it forever.
        stop.store(true, Relaxed);
        match receiver.join() {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => return Err(format!("receiver: {e}")),
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("receiver thread panicked".to_owned()),
        }
        result
    })?;

    let secs = tally.elapsed.as_secs_f64().max(1e-9);
    let received = after.packets.saturating_sub(before.packets);
    let mbit = |bytes: u64| bytes as f64 * 8.0 / secs / 1e6;
    let result = PathResult {
        path: if via == Via::Kernel { "kernel" } else { "ha" },
        sent: tally.sent,
        send_errors: tally.errors,
        received,
        link_rx: after.link_rx.saturating_sub(before.link_rx),
        seconds: secs,
        sent_pps: tally.sent as f64 / secs,
        recv_pps: received as f64 / secs,
        inner_mbit_s: mbit(after.inner_bytes.saturating_sub(before.inner_bytes)),
        outer_mbit_s: mbit(after.outer_bytes.saturating_sub(before.outer_bytes)),
        loss_pct: if tally.sent > 0 { 100.0 * (1.0 - received as f64 / tally.sent as f64) } else { 0.0 },
    };
    let ha_counters = match (ha_before, ha_after) {
        (Some(b), Some(a)) => HaCounters {
            intercepted: a.intercepted.saturating_sub(b.intercepted),
            tunnelled_packets: a.tunnelled_packets.saturating_sub(b.tunnelled_packets),
            tunnelled_bytes: a.tunnelled_bytes.saturating_sub(b.tunnelled_bytes),
            dropped: a
                .dropped
                .iter()
                .map(|(k, n)| (k.clone(), n.saturating_sub(b.dropped(k))))
                .filter(|(_, n)| *n > 0)
                .collect(),
            not_intercepted: tally.sent.saturating_sub(a.intercepted.saturating_sub(b.intercepted)),
            lost_after_ha: a.tunnelled_packets.saturating_sub(b.tunnelled_packets).saturating_sub(received),
        },
        _ => HaCounters::default(),
    };
    Ok((result, ha_counters))
}

/// Best effort: keeps the calling thread on `cpu` (a machine with one CPU just runs unpinned).
fn pin(enabled: bool, cpu: usize) {
    let mut set = CpuSet::new();
    if enabled && set.set(cpu).is_ok() {
        let _ = sched_setaffinity(Pid::from_raw(0), &set);
    }
}

/// Sends `payload`-byte datagrams to `target` as fast as this thread can, for `duration`.
fn flood(target: SocketAddrV4, payload: usize, duration: Duration) -> std::io::Result<SendTally> {
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    sock.connect(target)?;
    let buf = vec![0xa5u8; payload];
    let mut t = SendTally::default();
    let start = Instant::now();
    loop {
        // Check the clock once per batch, not per packet.
        for _ in 0..256 {
            // A full queue (ENOBUFS) or a stray ICMP error (ECONNREFUSED) only counts.
            match sock.send(&buf) {
                Ok(_) => t.sent += 1,
                Err(_) => t.errors += 1,
            }
        }
        t.elapsed = start.elapsed();
        if t.elapsed >= duration {
            return Ok(t);
        }
    }
}

fn counting_socket(via: Via) -> std::io::Result<Socket> {
    let sock = match via {
        Via::Kernel => {
            let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
            s.bind(&SockAddr::from(SocketAddrV4::new(COA, PORT)))?;
            s
        }
        Via::HomeAgent => Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(4)))?,
    };
    // Root may exceed net.core.rmem_max; fall back to the capped size if refused.
    if setsockopt(&sock, sockopt::RcvBufForce, &RCVBUF).is_err() {
        let _ = sock.set_recv_buffer_size(RCVBUF);
    }
    sock.set_read_timeout(Some(Duration::from_millis(50)))?;
    Ok(sock)
}

/// Counts arriving test packets until `stop`: (inner, outer) IP bytes of each.
fn receive(
    via: Via,
    counters: &Counters,
    stop: &AtomicBool,
    ready: mpsc::Sender<std::io::Result<()>>,
) -> std::io::Result<()> {
    let sock = match counting_socket(via) {
        Ok(s) => s,
        Err(e) => {
            let kind = e.kind();
            let _ = ready.send(Err(e));
            return Err(kind.into());
        }
    };
    let _ = ready.send(Ok(()));
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Relaxed) {
        let Ok(n) = (&sock).read(&mut buf) else { continue };
        let sizes = match via {
            Via::Kernel => Some((n + UDP_IP_OVERHEAD, n + UDP_IP_OVERHEAD)),
            Via::HomeAgent => buf.get(..n).and_then(tunnelled),
        };
        if let Some((inner, outer)) = sizes {
            counters.packets.fetch_add(1, Relaxed);
            counters.inner_bytes.fetch_add(inner as u64, Relaxed);
            counters.outer_bytes.fetch_add(outer as u64, Relaxed);
        }
    }
    Ok(())
}

/// An IP-in-IP packet carrying UDP to the home address: (inner, outer) lengths.
fn tunnelled(pkt: &[u8]) -> Option<(usize, usize)> {
    let ihl = usize::from(pkt.first()? & 0x0f) * 4;
    let inner = pkt.get(ihl..)?;
    let dst = Ipv4Addr::new(*inner.get(16)?, *inner.get(17)?, *inner.get(18)?, *inner.get(19)?);
    (*pkt.get(9)? == 4 && *inner.get(9)? == 17 && dst == HOME).then_some((inner.len(), pkt.len()))
}

fn print_table(r: &Report) {
    println!(
        "{:>7} {:<6} {:>10} {:>10} {:>10} {:>9} {:>9} {:>8} {:>10}",
        "payload", "path", "sent pps", "recv pps", "link rx", "Mb/s in", "Mb/s out", "loss %", "send err"
    );
    for s in &r.results {
        for p in [&s.kernel, &s.ha] {
            println!(
                "{:>7} {:<6} {:>10.0} {:>10.0} {:>10} {:>9.1} {:>9.1} {:>8.2} {:>10}",
                s.payload,
                p.path,
                p.sent_pps,
                p.recv_pps,
                p.link_rx,
                p.inner_mbit_s,
                p.outer_mbit_s,
                p.loss_pct,
                p.send_errors
            );
        }
        let c = &s.ha_counters;
        println!(
            "{:>7} HA/kernel received pps {:.2}; HA: intercepted {}, tunnelled {} ({} B), dropped {:?}; \
             sent but not intercepted {}, tunnelled but not received {}",
            s.payload,
            s.ratio_pps,
            c.intercepted,
            c.tunnelled_packets,
            c.tunnelled_bytes,
            c.dropped,
            c.not_intercepted,
            c.lost_after_ha
        );
    }
}
