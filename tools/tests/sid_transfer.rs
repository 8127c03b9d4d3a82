//! Issue 4 end to end, on real packets in lab namespaces: a session's address moves from
//! the Transferring Node (`mn`, 198.18.0.10 on the home LAN) to a Target (`fa1`,
//! 198.18.1.1 on foreign 1) through the Agent (`mip-ha` in `ha`), and back on the TN's
//! stop-transfer demand. The correspondent streams UDP to 198.18.0.10:5001 throughout;
//! receivers on both devices; the timeline says who got how many packets per phase.
//! Needs root (CI runs as root).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tools::lab::mobility;
use tools::lab::sid::{any_transfer, negotiate_and_transfer, sidctl, start_devices, wait_status, Devices, TargetSpec, DEADLINE};
use tools::lab::scenario::read_arrivals;
use tools::lab::traffic::{now_us, Arrival, TcpRecvReport, TcpSendReport, UdpSendReport};
use tools::lab::{Lab, LabChild};

const PPS: u64 = 500;
/// How long each phase is measured, after its settling time.
const WINDOW: Duration = Duration::from_secs(2);
/// Time left after a state change for ARP caches to follow: the router on the home LAN
/// takes a gratuitous ARP for an entry only once the entry is a second old (Linux
/// `neigh/default/locktime`, 1 s), so the first of the Agent's may be ignored.
const SETTLE: Duration = Duration::from_millis(1500);

fn build_daemons() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "mip-ha", "-p", "tools", "--bins"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("cannot run cargo");
        assert!(out.status.success(), "building the daemons failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let exe = std::env::current_exe().expect("test executable");
        let bin_dir = exe.parent().and_then(Path::parent).expect("target dir");
        std::env::set_var("SIDLAB_BIN_DIR", bin_dir);
    });
}

fn tool(name: &str) -> String {
    tools::lab::guard::find_tool(name).expect("tool built").to_string_lossy().into_owned()
}

/// The TN and one Target on foreign 1.
fn start(lab: &Lab) -> Devices {
    start_devices(lab, &[TargetSpec::new("fa1", "laptop", "198.18.1.1".parse().expect("address"))]).expect("devices start")
}

fn receiver(lab: &Lab, host: &str) -> (LabChild, PathBuf) {
    let log = lab.workdir().join(format!("recv-{host}.csv"));
    let mut r = lab
        .spawn(host, &[&tool("sid-traffic"), "udp-recv", "--bind", "0.0.0.0:5001", "--log", &log.to_string_lossy()])
        .expect("receiver");
    r.wait_for_output("listening", Duration::from_secs(5)).expect("receiver listens");
    (r, log)
}

struct Phase {
    name: &'static str,
    from_us: u64,
    to_us: u64,
}

/// Sleeps through one settled measurement window starting now.
fn measure(name: &'static str) -> Phase {
    std::thread::sleep(SETTLE);
    let from_us = now_us();
    std::thread::sleep(WINDOW);
    Phase { name, from_us, to_us: now_us() }
}

/// The lab tests share the machine's two cores: one lab at a time keeps the timings honest.
static LAB_LOCK: Mutex<()> = Mutex::new(());

#[test]
fn session_moves_to_the_target_and_back_with_udp_stream() {
    if !nix::unistd::geteuid().is_root() {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root; this test must run there");
        eprintln!("sid_transfer: skipped, needs root");
        return;
    }
    let _serial = LAB_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    build_daemons();
    let lab = Lab::up(mobility::topology()).expect("lab up");
    let devices = start(&lab);
    let (tn, tg, ha_sock) = (&devices.tn, &devices.targets[0], &devices.ha_socket);
    lab.wait_reachable("cn", "198.18.0.10".parse().expect("address"), DEADLINE).expect("TN reachable");

    let (tn_recv, tn_log) = receiver(&lab, "mn");
    let (tg_recv, tg_log) = receiver(&lab, "fa1");
    let sender = lab
        .spawn("cn", &[&tool("sid-traffic"), "udp-send", "--to", "198.18.0.10:5001", "--pps", &PPS.to_string(), "--duration", "60"])
        .expect("sender");
    let mut phases = vec![measure("home (before transfer)")];

    // Negotiation: offer from the TN, accepted on the Target; then the transfer.
    let t_neg = now_us();
    negotiate_and_transfer(&lab, tn, tg, &[]).expect("transfer");
    let t_transferred = now_us();
    phases.push(measure("transferred (Target holds 198.18.0.10)"));

    // Stop-transfer demand from the TN: the Agent wakes it / it takes the address back.
    let t_stop = now_us();
    sidctl(&lab, tn, &["stop"]).expect("stop demand");
    wait_status(&lab, tn, "state home", |s| (s["transferring_node"]["state"] == "home").then_some(())).expect("TN home");
    let t_back = now_us();
    phases.push(measure("taken back (TN home again)"));
    let tn_status = sidctl(&lab, tn, &["status"]).expect("TN status");
    let tg_status = sidctl(&lab, tg, &["status"]).expect("Target status");

    let admin = lab
        .exec("ha", &["timeout", "5", &tool("ha-admin"), "--socket", &ha_sock.to_string_lossy(), "--json", "binding", "list"])
        .expect("ha-admin");
    let bindings: serde_json::Value = serde_json::from_slice(&admin.stdout).expect("ha-admin JSON");

    let _ = sender.stop(Duration::from_secs(2));
    std::thread::sleep(Duration::from_millis(200));
    tn_recv.stop(Duration::from_secs(5)).expect("TN receiver stops");
    tg_recv.stop(Duration::from_secs(5)).expect("Target receiver stops");
    let tn = read_arrivals(&tn_log).expect("TN arrivals");
    let tg = read_arrivals(&tg_log).expect("Target arrivals");
    let count = |a: &[Arrival], from: u64, to: u64| a.iter().filter(|x| x.recv_us >= from && x.recv_us < to).count();

    // The timeline, phase by phase and around the two changes.
    let mut report = String::from("SID transfer timeline (UDP cn -> 198.18.0.10:5001)\n");
    report.push_str(&format!("{:<42} {:>8} {:>8} {:>8}\n", "phase", "expected", "TN", "Target"));
    for p in &phases {
        let expected = (p.to_us - p.from_us) * PPS / 1_000_000;
        report.push_str(&format!("{:<42} {:>8} {:>8} {:>8}\n", p.name, expected, count(&tn, p.from_us, p.to_us), count(&tg, p.from_us, p.to_us)));
    }
    report.push_str(&format!(
        "offer -> TN transferred: {} ms; stop demand sent {} ms after the transfer\n",
        (t_transferred - t_neg) / 1000,
        (t_stop - t_transferred) / 1000
    ));
    // Switch-over: last packet at the old holder, first at the new one, after each change.
    let last_after = |a: &[Arrival], t: u64, until: u64| {
        a.iter().filter(|x| x.recv_us >= t && x.recv_us < until).map(|x| (x.recv_us - t) / 1000).max()
    };
    let first_after = |a: &[Arrival], t: u64| a.iter().filter(|x| x.recv_us >= t).map(|x| (x.recv_us - t) / 1000).min();
    report.push_str(&format!(
        "after the transfer: last TN packet +{:?} ms, first Target packet +{:?} ms\n",
        last_after(&tn, t_transferred, t_stop),
        first_after(&tg, t_transferred)
    ));
    report.push_str(&format!(
        "after the stop demand: last Target packet +{:?} ms, first TN packet +{:?} ms, TN home at +{} ms\n",
        last_after(&tg, t_stop, u64::MAX),
        first_after(&tn, t_stop),
        (t_back - t_stop) / 1000
    ));
    let mut seqs: Vec<u64> = tn.iter().chain(tg.iter()).map(|x| x.seq).collect();
    seqs.sort_unstable();
    let dups = seqs.len();
    seqs.dedup();
    let span = seqs.last().map_or(0, |l| l + 1 - seqs.first().copied().unwrap_or(0));
    report.push_str(&format!(
        "totals: TN {} Target {}; distinct sequence numbers {} of {} in span ({} lost, {} duplicated)\n",
        tn.len(),
        tg.len(),
        seqs.len(),
        span,
        span.saturating_sub(seqs.len() as u64),
        dups - seqs.len()
    ));
    report.push_str(&format!("Target data plane: {}\n", tg_status["data"]["data"]));
    report.push_str(&format!("TN: {}\n", tn_status["data"]["transferring_node"]));
    eprintln!("{report}");

    let [home, transferred, back] = [&phases[0], &phases[1], &phases[2]];
    let expected = |p: &Phase| (p.to_us - p.from_us) * PPS / 1_000_000;
    let at = |a: &[Arrival], p: &Phase| count(a, p.from_us, p.to_us) as u64;
    assert!(at(&tn, home) * 10 >= expected(home) * 9, "TN gets the stream before the transfer\n{report}");
    assert_eq!(at(&tg, home), 0, "Target gets nothing before the transfer\n{report}");
    assert!(at(&tg, transferred) * 10 >= expected(transferred) * 9, "Target gets the stream while it holds the address\n{report}");
    assert_eq!(at(&tn, transferred), 0, "TN gets nothing while transferred\n{report}");
    assert!(at(&tn, back) * 10 >= expected(back) * 9, "TN gets the stream again after the take-back\n{report}");
    assert_eq!(at(&tg, back), 0, "Target gets nothing after the take-back\n{report}");
    assert!(!any_transfer(&bindings), "no transfer binding left at the Agent: {bindings:#}");
}

/// The two-way call: packets per second each way.
const CALL_PPS: u64 = 1000;
/// How long the call stays on the Target, from the end of the transfer to the stop demand.
const TRANSFER_HOLD: Duration = Duration::from_secs(5);
/// The left-behind TCP stream: bytes per second and how long the sender runs.
const TCP_RATE: u64 = 20_000;
const TCP_SECS: u64 = 14;

/// A `udp-recv` in `host` on `bind`, logging arrivals to `<name>.csv`.
fn udp_receiver(lab: &Lab, host: &str, bind: &str, name: &str) -> (LabChild, PathBuf) {
    let log = lab.workdir().join(format!("{name}.csv"));
    let mut r = lab
        .spawn(host, &[&tool("sid-traffic"), "udp-recv", "--bind", bind, "--log", &log.to_string_lossy()])
        .expect("UDP receiver");
    r.wait_for_output("listening", Duration::from_secs(5)).expect("UDP receiver listens");
    (r, log)
}

/// A `udp-send` of the call's return stream from `host`, sourced from the session address.
fn call_sender(lab: &Lab, host: &str, to: &str) -> LabChild {
    lab.spawn(
        host,
        &[&tool("sid-traffic"), "udp-send", "--to", to, "--bind", "198.18.0.10:0", "--pps", &CALL_PPS.to_string(), "--duration", "60"],
    )
    .expect("call sender")
}

/// Stops a `udp-send` and reads the report it prints on the way out.
fn sender_report(s: LabChild) -> UdpSendReport {
    let out = s.stop(Duration::from_secs(2)).expect("sender stops");
    let line = out.stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("udp-send report: {e}: {}{}", out.stdout, out.stderr))
}

/// One stretch of a numbered stream as its receiver saw it.
struct Figures {
    sent: u64,
    received: u64,
    longest_gap_ms: f64,
}

impl Figures {
    /// Probes numbered `seqs` (sent by the sender whose probes were sent from `sent_from_us`
    /// on), as `arrivals` has them. The gap is the longest time between two arrivals, counted
    /// from the first probe's due time to the last one's, so a missing first or last packet
    /// shows as a gap too.
    fn of(arrivals: &[Arrival], seqs: std::ops::Range<u64>, sent_from_us: u64, sched: (u64, u64)) -> Self {
        let mut recv: Vec<(u64, u64)> = arrivals
            .iter()
            .filter(|a| a.sent_us >= sent_from_us && seqs.contains(&a.seq))
            .map(|a| (a.recv_us, a.seq))
            .collect();
        recv.sort_unstable();
        let mut distinct: Vec<u64> = recv.iter().map(|r| r.1).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let (start_us, interval_ns) = sched;
        let due = |seq: u64| start_us + seq * interval_ns / 1000;
        let mut times: Vec<u64> = vec![due(seqs.start)];
        times.extend(recv.iter().map(|r| r.0));
        times.push(due(seqs.end.saturating_sub(1)).max(times.last().copied().unwrap_or(0)));
        let gap = times.windows(2).map(|w| w[1].saturating_sub(w[0])).max().unwrap_or(0);
        Figures { sent: seqs.end - seqs.start, received: distinct.len() as u64, longest_gap_ms: gap as f64 / 1000.0 }
    }

    fn line(&self, direction: &str, phase: &str) -> String {
        format!(
            "{direction:<28} {phase:<12} {:>7} {:>8} {:>6} {:>9.1}\n",
            self.sent,
            self.received,
            self.sent.saturating_sub(self.received),
            self.longest_gap_ms
        )
    }
}

#[test]
fn two_way_call_moves_and_a_second_correspondents_tcp_survives() {
    if !nix::unistd::geteuid().is_root() {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root; this test must run there");
        eprintln!("sid_transfer: skipped, needs root");
        return;
    }
    let _serial = LAB_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    build_daemons();
    let lab = Lab::up(mobility::topology()).expect("lab up");
    let devices = start(&lab);
    let (tn, tg) = (&devices.tn, &devices.targets[0]);
    let home: std::net::Ipv4Addr = "198.18.0.10".parse().expect("address");
    lab.wait_reachable("cn", home, DEADLINE).expect("TN reachable from cn");
    lab.wait_reachable("fa2", home, DEADLINE).expect("TN reachable from fa2");
    let cn = lab.addr("cn").expect("cn address");
    let cn_call = format!("{cn}:5002");
    let dir = lab.workdir().to_path_buf();

    // The second correspondent's TCP stream with the TN, left behind on the TN.
    let tcp_report = dir.join("tcp-recv-fa2.json");
    let mut tcp_recv = lab
        .spawn(
            "fa2",
            &[&tool("sid-traffic"), "tcp-recv", "--bind", "198.18.2.1:5003", "--seed", "7", "--duration", "90", "--report", &tcp_report.to_string_lossy()],
        )
        .expect("TCP receiver");
    tcp_recv.wait_for_output("listening", Duration::from_secs(5)).expect("TCP receiver listens");
    let t_tcp = now_us();
    let tcp_send = lab
        .spawn(
            "mn",
            &[&tool("sid-traffic"), "tcp-send", "--to", "198.18.2.1:5003", "--rate", &TCP_RATE.to_string(), "--duration", &TCP_SECS.to_string(), "--seed", "7"],
        )
        .expect("TCP sender");

    // The call: cn -> 198.18.0.10:5001 received by whichever device holds the address;
    // the return stream to cn:5002 is sent by the holder (TN, then Target, then TN again).
    let (tn_recv, tn_log) = udp_receiver(&lab, "mn", "0.0.0.0:5001", "call-at-tn");
    let (tg_recv, tg_log) = udp_receiver(&lab, "fa1", "0.0.0.0:5001", "call-at-target");
    let (cn_recv, cn_log) = udp_receiver(&lab, "cn", "0.0.0.0:5002", "call-at-cn");
    let forward = lab
        .spawn("cn", &[&tool("sid-traffic"), "udp-send", "--to", "198.18.0.10:5001", "--pps", &CALL_PPS.to_string(), "--duration", "60"])
        .expect("forward sender");
    let back_tn = call_sender(&lab, "mn", &cn_call);
    let before = measure("before");

    let t_neg = now_us();
    negotiate_and_transfer(&lab, tn, tg, &[]).expect("transfer");
    let t_transferred = now_us();
    // The call application moves with the session: the TN's sender stops, the Target's starts.
    let back_tn = sender_report(back_tn);
    let back_tg = call_sender(&lab, "fa1", &cn_call);
    std::thread::sleep(SETTLE);
    let during = Phase { name: "transferred", from_us: now_us(), to_us: t_transferred + TRANSFER_HOLD.as_micros() as u64 };
    std::thread::sleep(Duration::from_micros(during.to_us.saturating_sub(now_us())));

    // Hand-back: the Target's application stops, the TN demands its address back and resumes.
    let back_tg = sender_report(back_tg);
    let t_stop = now_us();
    sidctl(&lab, tn, &["stop"]).expect("stop demand");
    wait_status(&lab, tn, "state home", |s| (s["transferring_node"]["state"] == "home").then_some(())).expect("TN home");
    let t_back = now_us();
    let back_tn2 = call_sender(&lab, "mn", &cn_call);
    let after = measure("after");
    let tg_status = sidctl(&lab, tg, &["status"]).expect("Target status");

    let forward = sender_report(forward);
    let back_tn2 = sender_report(back_tn2);
    let tcp_sent = tcp_send.wait(Duration::from_secs(40)).expect("TCP sender ends");
    let tcp_recv_out = tcp_recv.wait(Duration::from_secs(10)).expect("TCP receiver ends");
    std::thread::sleep(Duration::from_millis(200));
    tn_recv.stop(Duration::from_secs(5)).expect("TN receiver stops");
    tg_recv.stop(Duration::from_secs(5)).expect("Target receiver stops");
    cn_recv.stop(Duration::from_secs(5)).expect("cn receiver stops");
    let tn = read_arrivals(&tn_log).expect("TN arrivals");
    let tg = read_arrivals(&tg_log).expect("Target arrivals");
    let at_cn = read_arrivals(&cn_log).expect("cn arrivals");
    let tcp_s: TcpSendReport = serde_json::from_str(tcp_sent.stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_default())
        .unwrap_or_else(|e| panic!("tcp-send report: {e}: {}{}", tcp_sent.stdout, tcp_sent.stderr));
    let tcp_r: TcpRecvReport = serde_json::from_str(tcp_recv_out.stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_default())
        .unwrap_or_else(|e| panic!("tcp-recv report: {e}: {}{}", tcp_recv_out.stdout, tcp_recv_out.stderr));

    // Forward: one sender, its stream split by send time at the negotiation and the stop demand.
    let both: Vec<Arrival> = tn.iter().chain(tg.iter()).cloned().collect();
    let fsched = (forward.start_us, forward.interval_ns.max(1));
    let seq_at = |t: u64| (t.saturating_sub(forward.start_us) * 1000 / fsched.1).min(forward.sent);
    let fwd = [
        ("before", Figures::of(&both, 0..seq_at(t_neg), 0, fsched)),
        ("transferred", Figures::of(&both, seq_at(t_neg)..seq_at(t_stop), 0, fsched)),
        ("after", Figures::of(&both, seq_at(t_stop)..forward.sent, 0, fsched)),
    ];
    // Return: three senders in turn, told apart at cn by send time (each restarts at 0).
    let runs = [("before", &back_tn, back_tg.start_us), ("transferred", &back_tg, back_tn2.start_us), ("after", &back_tn2, u64::MAX)];
    let own = |r: &UdpSendReport, until: u64| -> Vec<Arrival> {
        at_cn.iter().filter(|a| a.sent_us >= r.start_us && a.sent_us < until).cloned().collect()
    };
    let rev = runs.map(|(p, r, until)| (p, Figures::of(&own(r, until), 0..r.sent, r.start_us, (r.start_us, r.interval_ns.max(1)))));
    // Forward switch-over: the silence between the old holder's last packet and the new one's first.
    let switch = |old: &[Arrival], new: &[Arrival], t: u64| {
        let first = new.iter().filter(|x| x.recv_us >= t).map(|x| x.recv_us).min();
        let last = first.and_then(|f| old.iter().filter(|x| x.recv_us < f).map(|x| x.recv_us).max());
        match (last, first) {
            (Some(l), Some(f)) => format!("{:.1} ms", f.saturating_sub(l) as f64 / 1000.0),
            _ => "n/a".to_owned(),
        }
    };
    let handover = |a: &UdpSendReport, b: &UdpSendReport| {
        let last = at_cn.iter().filter(|x| x.sent_us >= a.start_us && x.sent_us < b.start_us).map(|x| x.recv_us).max();
        let first = at_cn.iter().filter(|x| x.sent_us >= b.start_us).map(|x| x.recv_us).min();
        match (last, first) {
            (Some(l), Some(f)) => format!("{:.1} ms", f.saturating_sub(l) as f64 / 1000.0),
            _ => "n/a".to_owned(),
        }
    };

    let mut report = format!("SID two-way call at {CALL_PPS} pps each way (interval 1 ms; goal: 0 lost, gap <= 2 ms)\n");
    report.push_str(&format!("{:<28} {:<12} {:>7} {:>8} {:>6} {:>9}\n", "direction", "phase", "sent", "received", "lost", "gap ms"));
    for (p, f) in &fwd {
        report.push_str(&f.line("cn -> 198.18.0.10:5001", p));
    }
    for (p, f) in &rev {
        report.push_str(&f.line("holder -> cn:5002", p));
    }
    report.push_str(&format!(
        "forward phases split at the offer (+{} ms to transferred) and the stop demand (+{} ms to home); transfer held {} ms\n",
        (t_transferred - t_neg) / 1000,
        (t_back - t_stop) / 1000,
        (t_stop - t_transferred) / 1000
    ));
    report.push_str(&format!(
        "forward stream: cn's packets stop arriving for {} at the transfer (TN -> Target), {} at the take-back (Target -> TN)\n",
        switch(&tn, &tg, t_neg),
        switch(&tg, &tn, t_stop)
    ));
    // Where forward losses fall: each missing probe's due time against the two changes.
    let mut got: Vec<u64> = both.iter().map(|a| a.seq).collect();
    got.sort_unstable();
    got.dedup();
    let missing: Vec<String> = (0..forward.sent)
        .filter(|q| got.binary_search(q).is_err())
        .take(10)
        .map(|q| {
            let due = forward.start_us + q * fsched.1 / 1000;
            format!("#{q} (offer {:+} ms, stop {:+} ms)", (due as i64 - t_neg as i64) / 1000, (due as i64 - t_stop as i64) / 1000)
        })
        .collect();
    report.push_str(&format!("forward probes missing: {}\n", if missing.is_empty() { "none".to_owned() } else { missing.join(", ") }));
    report.push_str(&format!(
        "return stream: the application restarts on each device; cn sees {} silent at the transfer, {} at the take-back\n",
        handover(&back_tn, &back_tg),
        handover(&back_tg, &back_tn2)
    ));
    report.push_str(&format!("return send errors: TN {} Target {} TN {}\n", back_tn.send_errors, back_tg.send_errors, back_tn2.send_errors));
    let all_ok = fwd.iter().chain(rev.iter()).all(|(_, f)| f.sent == f.received && f.longest_gap_ms <= 2.0);
    report.push_str(&format!("goal (zero loss, gap <= 2 intervals): {}\n", if all_ok { "met" } else { "NOT met" }));
    report.push_str(&format!(
        "TCP TN -> fa2 198.18.2.1:5003 at {TCP_RATE} B/s: sent {} B (acknowledged {}, longest block {:.0} ms, error {:?}); \
         fa2 got {} B, {} bad, eof {}, longest stall {:.0} ms ending {} ms after the stop demand, error {:?}\n",
        tcp_s.bytes,
        tcp_s.acknowledged,
        tcp_s.longest_block_ms,
        tcp_s.error,
        tcp_r.bytes,
        tcp_r.errors,
        tcp_r.eof,
        tcp_r.longest_stall_ms,
        tcp_r.longest_stall_end_us.map_or(i64::MIN, |e| (e as i64 - t_stop as i64) / 1000),
        tcp_r.error
    ));
    report.push_str(&format!("Target data plane: {}\n", tg_status["data"]["data"]));
    eprintln!("{report}");

    // Delivery to the right device in each settled window, both ways.
    let count = |a: &[Arrival], p: &Phase| a.iter().filter(|x| x.recv_us >= p.from_us && x.recv_us < p.to_us).count() as u64;
    let expected = |p: &Phase| (p.to_us - p.from_us) * CALL_PPS / 1_000_000;
    for (p, holder, other) in [(&before, &tn, &tg), (&during, &tg, &tn), (&after, &tn, &tg)] {
        assert!(count(holder, p) * 10 >= expected(p) * 9, "{}: the holder gets the call\n{report}", p.name);
        assert_eq!(count(other, p), 0, "{}: the other device gets nothing\n{report}", p.name);
    }
    for ((p, sender, until), phase) in runs.iter().zip([&before, &during, &after]) {
        assert!(count(&own(sender, *until), phase) * 10 >= expected(phase) * 9, "{p}: cn gets the holder's return stream\n{report}");
    }
    // The left-behind TCP connection: every byte in order, ended by the sender, and bytes
    // paced after the take-back (the sender runs past it) arrived, so data flowed again.
    assert!(t_tcp + TCP_SECS * 1_000_000 > t_back + 1_000_000, "the TCP sender must outlast the take-back\n{report}");
    assert_eq!(tcp_s.error, None, "TCP sender\n{report}");
    assert!(tcp_s.acknowledged, "TCP receiver saw the whole stream\n{report}");
    assert_eq!(tcp_r.error, None, "TCP receiver\n{report}");
    assert!(tcp_r.eof && tcp_r.errors == 0, "TCP stream intact\n{report}");
    assert_eq!(tcp_r.bytes, TCP_RATE * TCP_SECS, "every TCP byte\n{report}");
    assert_eq!(tcp_s.bytes, tcp_r.bytes, "TCP bytes sent = received\n{report}");
}
