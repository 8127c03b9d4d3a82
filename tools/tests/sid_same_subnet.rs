//! The same-subnet transfer (patent FIG. 1b) on real packets, no Agent: the Transferring
//! Node (`mn`, 198.18.0.10) hands its address to a Target on its own LAN (`tgt`,
//! 198.18.0.20), which takes it over by ARP and holds it; the session then comes back to
//! the TN, by the TN's stop-transfer demand (first test) or by the Target ending it with
//! the wake-up to the TN's MAC (second test). A correspondent (`cn`, beyond the router)
//! streams UDP to 198.18.0.10:5001 at 1,000 pps and the holder streams back to cn:5002;
//! a forged stop demand from cn must change nothing. Needs root (CI runs as root).

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use mip_core::auth::{append_auth_extension, AuthAlgorithm, ReplayMethod, SecurityAssociation};
use mip_core::time::Time;
use mip_core::wire::{ext_type, RegistrationFlags, RegistrationRequestRepr};
use sid_ext::wire::{SidExtensions, StopReason, DEFAULT_ORG_ID};
use tools::lab::mobility;
use tools::lab::scenario::read_arrivals;
use tools::lab::topology::base;
use tools::lab::traffic::{analyze, now_us, Arrival, Schedule, UdpSendReport, WindowReport};
use tools::lab::{HostSpec, Lab, LabChild, Topology};

const PSK: &str = "7369642d6465736b2d70686f6e652d70736b2d303030303031";
const TN: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const TGT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 20);
const PPS: u64 = 1000;
/// Every wait for a state change is bounded by this.
const DEADLINE: Duration = Duration::from_secs(10);
/// Time left after a change before a settled window is measured, and the window.
const SETTLE: Duration = Duration::from_millis(1000);
const WINDOW: Duration = Duration::from_secs(2);
/// How long the session stays on the Target.
const HOLD: Duration = Duration::from_secs(5);

/// The lab tests share the machine's cores: one lab at a time keeps the timings honest.
static LAB_LOCK: Mutex<()> = Mutex::new(());

fn build_tools() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "tools", "--bins"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("cannot run cargo");
        assert!(out.status.success(), "building the tools failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let exe = std::env::current_exe().expect("test executable");
        let bin_dir = exe.parent().and_then(Path::parent).expect("target dir");
        std::env::set_var("SIDLAB_BIN_DIR", bin_dir);
    });
}

fn tool(name: &str) -> String {
    tools::lab::guard::find_tool(name).expect("tool built").to_string_lossy().into_owned()
}

/// The issue-3 lab with one more host on the home LAN: the Target.
fn topology() -> Topology {
    let mut t = mobility::topology();
    t.hosts.push(HostSpec::single("tgt", "home", base::HOME_LAN.with_addr(TGT), Some(base::RTR_HOME)));
    t
}

/// One `sidctl --json` call in `host`; the daemon's whole response, which must say ok.
fn sidctl(lab: &Lab, host: &str, socket: &Path, args: &[&str]) -> serde_json::Value {
    let sidctl = tool("sidctl");
    let sock = socket.to_string_lossy();
    let mut cmd = vec!["timeout", "5", &sidctl, "--socket", &sock, "--json"];
    cmd.extend_from_slice(args);
    let out = lab.exec(host, &cmd).expect("sidctl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("sidctl {args:?} on {host}: {e}: {text} {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(v["ok"], true, "sidctl {args:?} on {host} refused: {v}");
    v
}

fn status(lab: &Lab, host: &str, socket: &Path) -> serde_json::Value {
    sidctl(lab, host, socket, &["status"])["data"].clone()
}

/// Polls `status` until `pick` says yes, within [`DEADLINE`].
fn wait_for(lab: &Lab, host: &str, socket: &Path, what: &str, mut pick: impl FnMut(&serde_json::Value) -> bool) {
    let start = Instant::now();
    loop {
        let s = status(lab, host, socket);
        if pick(&s) {
            return;
        }
        assert!(start.elapsed() < DEADLINE, "{host}: {what} not within {DEADLINE:?}; status: {s:#}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn tn_state(s: &serde_json::Value) -> &str {
    s["same_subnet"]["tn"]["state"].as_str().unwrap_or_default()
}

fn target_state(s: &serde_json::Value) -> &str {
    s["same_subnet"]["target"]["state"].as_str().unwrap_or_default()
}

struct Devices {
    _tn: LabChild,
    _tg: LabChild,
    tn: PathBuf,
    tg: PathBuf,
}

/// `sidctl serve` on the TN (no `[agent]`: same-subnet transfers only) and on the Target.
fn start_devices(lab: &Lab) -> Devices {
    lab.sh("mn", "ip addr add 198.18.0.10/24 dev eth0 && ip link set eth0 up && ip route replace default via 198.18.0.254")
        .expect("TN address");
    let dir = lab.workdir().to_path_buf();
    let start = |host: &str, me: &str, address: Ipv4Addr, peer: &str, peer_address: Ipv4Addr| {
        let socket = dir.join(format!("sid-{me}.sock"));
        let path = dir.join(format!("sid-{me}.toml"));
        let text = format!(
            "[device]\nidentity = \"{me}\"\naddress = \"{address}\"\ninterface = \"eth0\"\n\
             control_socket = \"{}\"\nlifetime = 120\ntun_name = \"sid0\"\n\n\
             [[peer]]\nidentity = \"{peer}\"\naddress = \"{peer_address}:4343\"\npsk = \"{PSK}\"\n",
            socket.display()
        );
        std::fs::write(&path, text).expect("configuration written");
        let child = lab.spawn(host, &[&tool("sidctl"), "serve", "--config", &path.to_string_lossy()]).expect("sidctl serve");
        let begun = Instant::now();
        while !socket.exists() {
            assert!(begun.elapsed() < DEADLINE, "{host}: sidctl serve opened no control socket");
            std::thread::sleep(Duration::from_millis(20));
        }
        (child, socket)
    };
    let (tn_child, tn) = start("mn", "desk", TN, "phone", TGT);
    let (tg_child, tg) = start("tgt", "phone", TGT, "desk", TN);
    Devices { _tn: tn_child, _tg: tg_child, tn, tg }
}

/// Offer from the TN, accepted by the Target, then the transfer; returns once the TN has
/// released the address and the Target holds it.
fn negotiate_and_transfer(lab: &Lab, d: &Devices) {
    sidctl(lab, "mn", &d.tn, &["offer", "--peer", "phone", "--role", "transferring"]);
    let mut offer = None;
    wait_for(lab, "tgt", &d.tg, "the offer", |s| {
        offer = s["offers"].get(0).and_then(|o| o["id"].as_u64());
        offer.is_some()
    });
    let offer = offer.unwrap_or_default().to_string();
    sidctl(lab, "tgt", &d.tg, &["accept", &offer]);
    let mut id = None;
    wait_for(lab, "mn", &d.tn, "the negotiation", |s| {
        id = s["negotiated"].as_array().and_then(|a| a.iter().find(|n| n["used"] == false)).and_then(|n| n["id"].as_u64());
        id.is_some()
    });
    let id = id.unwrap_or_default().to_string();
    sidctl(lab, "mn", &d.tn, &["transfer", &id]);
    wait_for(lab, "mn", &d.tn, "state transferred", |s| tn_state(s) == "transferred");
    wait_for(lab, "tgt", &d.tg, "state holding", |s| target_state(s) == "holding");
}

fn udp_receiver(lab: &Lab, host: &str, bind: &str, name: &str) -> (LabChild, PathBuf) {
    let log = lab.workdir().join(format!("{name}.csv"));
    let mut r = lab
        .spawn(host, &[&tool("sid-traffic"), "udp-recv", "--bind", bind, "--log", &log.to_string_lossy()])
        .expect("UDP receiver");
    r.wait_for_output("listening", Duration::from_secs(5)).expect("UDP receiver listens");
    (r, log)
}

/// The holder's return stream to cn:5002, sourced from the session address.
fn return_sender(lab: &Lab, host: &str, cn: Ipv4Addr) -> LabChild {
    let to = format!("{cn}:5002");
    let pps = PPS.to_string();
    lab.spawn(host, &[&tool("sid-traffic"), "udp-send", "--to", &to, "--bind", "198.18.0.10:0", "--pps", &pps, "--duration", "60"])
        .expect("return sender")
}

fn sender_report(s: LabChild) -> UdpSendReport {
    let out = s.stop(Duration::from_secs(2)).expect("sender stops");
    let line = out.stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("udp-send report: {e}: {}{}", out.stdout, out.stderr))
}

/// A stop-transfer demand from cn under the session's SPI (visible on the wire) with a key
/// that is not the session's, to the Target's own address and to the address it holds.
fn forge_stop_demand(lab: &Lab, spi: u32) {
    let sa = SecurityAssociation {
        spi,
        algorithm: AuthAlgorithm::HmacMd5,
        key: b"an attacker's guess at the key".to_vec(),
        replay: ReplayMethod::Timestamp,
    };
    let mut m = RegistrationRequestRepr {
        flags: RegistrationFlags::default(),
        lifetime: 0,
        home_address: TN,
        home_agent: TGT,
        care_of_address: TN,
        identification: Time::from_system(std::time::SystemTime::now()).to_ntp(),
    }
    .to_bytes();
    SidExtensions { stop_transfer: Some(StopReason::Override), ..SidExtensions::default() }
        .append_to(DEFAULT_ORG_ID, &mut m)
        .expect("stop element");
    append_auth_extension(&mut m, ext_type::MOBILE_HOME_AUTH, &sa);
    lab.in_ns("cn", move || -> std::io::Result<()> {
        let s = UdpSocket::bind("198.19.0.1:0")?;
        for to in [TGT, TN] {
            s.send_to(&m, SocketAddrV4::new(to, 434))?;
        }
        Ok(())
    })
    .expect("in cn")
    .expect("forged demand sent");
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum End {
    /// `sidctl stop` on the TN: stop-transfer demand to the Target.
    TnDemand,
    /// `sidctl stop` on the Target: it hands back with the wake-up.
    TargetStops,
}

struct Phase {
    name: &'static str,
    from_us: u64,
    to_us: u64,
}

fn settled(name: &'static str, from_us: u64, to_us: u64) -> Phase {
    Phase { name, from_us, to_us }
}

/// One row of the table; `from_us`: where the phase starts, to place its longest gap.
fn line(out: &mut String, direction: &str, phase: &str, w: &WindowReport, from_us: u64) {
    let at = w.longest_gap_end_us.map_or("-".to_owned(), |e| format!("+{} ms", e.saturating_sub(from_us) / 1000));
    out.push_str(&format!(
        "{direction:<24} {phase:<12} {:>6} {:>8} {:>5} {:>7.1} {at:>12}\n",
        w.sent, w.received, w.lost, w.longest_gap_ms
    ));
}

fn run(end: End) {
    if !nix::unistd::geteuid().is_root() {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root; this test must run there");
        eprintln!("sid_same_subnet: skipped, needs root");
        return;
    }
    let _serial = LAB_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    build_tools();
    let lab = Lab::up(topology()).expect("lab up");
    let d = start_devices(&lab);
    lab.wait_reachable("cn", TN, DEADLINE).expect("TN reachable from cn");
    lab.wait_reachable("cn", TGT, DEADLINE).expect("Target reachable from cn");
    let cn = lab.addr("cn").expect("cn address");

    let (tn_recv, tn_log) = udp_receiver(&lab, "mn", "0.0.0.0:5001", "fwd-at-tn");
    let (tg_recv, tg_log) = udp_receiver(&lab, "tgt", "0.0.0.0:5001", "fwd-at-target");
    let (cn_recv, cn_log) = udp_receiver(&lab, "cn", "0.0.0.0:5002", "ret-at-cn");
    let pps = PPS.to_string();
    let forward = lab
        .spawn("cn", &[&tool("sid-traffic"), "udp-send", "--to", "198.18.0.10:5001", "--pps", &pps, "--duration", "60"])
        .expect("forward sender");
    let back_tn = return_sender(&lab, "mn", cn);
    std::thread::sleep(SETTLE);
    let before = settled("before", now_us(), now_us() + WINDOW.as_micros() as u64);
    std::thread::sleep(WINDOW);

    // To the Target: the call application moves with the session.
    let t_neg = now_us();
    negotiate_and_transfer(&lab, &d);
    let t_transferred = now_us();
    let back_tn = sender_report(back_tn);
    let back_tg = return_sender(&lab, "tgt", cn);

    // A third host's forged stop demand is dropped and changes nothing.
    std::thread::sleep(Duration::from_millis(300));
    let spi = status(&lab, "tgt", &d.tg)["same_subnet"]["target"]["session_spi"].as_u64().expect("session SPI") as u32;
    let discarded_before = status(&lab, "tgt", &d.tg)["same_subnet"]["target"]["discarded_auth"].as_u64().unwrap_or(0);
    forge_stop_demand(&lab, spi);
    std::thread::sleep(Duration::from_millis(200));
    let after_forgery = status(&lab, "tgt", &d.tg);
    let tn_after_forgery = status(&lab, "mn", &d.tn);
    let hold_end = t_transferred + HOLD.as_micros() as u64;
    let during = settled("transferred", t_transferred + SETTLE.as_micros() as u64, hold_end);
    std::thread::sleep(Duration::from_micros(hold_end.saturating_sub(now_us())));

    // Back to the TN.
    let back_tg = sender_report(back_tg);
    let t_stop = now_us();
    match end {
        End::TnDemand => {
            sidctl(&lab, "mn", &d.tn, &["stop"]);
        }
        End::TargetStops => {
            sidctl(&lab, "tgt", &d.tg, &["stop"]);
        }
    }
    wait_for(&lab, "mn", &d.tn, "state home", |s| tn_state(s) == "home");
    let t_back = now_us();
    let back_tn2 = return_sender(&lab, "mn", cn);
    wait_for(&lab, "tgt", &d.tg, "the address released", |s| target_state(s) == "ended");
    std::thread::sleep(SETTLE);
    let after = settled("after", now_us(), now_us() + WINDOW.as_micros() as u64);
    std::thread::sleep(WINDOW);
    let tn_status = status(&lab, "mn", &d.tn);
    let tg_status = status(&lab, "tgt", &d.tg);

    let forward = sender_report(forward);
    let back_tn2 = sender_report(back_tn2);
    std::thread::sleep(Duration::from_millis(200));
    for r in [tn_recv, tg_recv, cn_recv] {
        r.stop(Duration::from_secs(5)).expect("receiver stops");
    }
    let at_tn = read_arrivals(&tn_log).expect("TN arrivals");
    let at_tg = read_arrivals(&tg_log).expect("Target arrivals");
    let at_cn = read_arrivals(&cn_log).expect("cn arrivals");

    // Forward: one stream, split by send time at the offer and at the stop.
    let mut both: Vec<Arrival> = at_tn.iter().chain(at_tg.iter()).copied().collect();
    both.sort_by_key(|a| a.recv_us);
    let schedule = |r: &UdpSendReport| Some(Schedule { start_us: r.start_us, interval_ns: r.interval_ns.max(1) });
    let fwd = analyze(&both, schedule(&forward), Some(forward.sent), &[t_neg, t_stop]);
    // Return: three senders in turn, told apart at cn by send time.
    let runs = [("before", &back_tn, back_tg.start_us), ("transferred", &back_tg, back_tn2.start_us), ("after", &back_tn2, u64::MAX)];
    let rev: Vec<(&str, WindowReport)> = runs
        .iter()
        .map(|(p, r, until)| {
            let mut own: Vec<Arrival> = at_cn.iter().filter(|a| a.sent_us >= r.start_us && a.sent_us < *until).copied().collect();
            own.sort_by_key(|a| a.recv_us);
            let w = analyze(&own, schedule(r), Some(r.sent), &[]).windows.remove(0);
            (*p, w)
        })
        .collect();
    let switch = |old: &[Arrival], new: &[Arrival], t: u64| {
        let first = new.iter().filter(|x| x.recv_us >= t).map(|x| x.recv_us).min();
        let last = first.and_then(|f| old.iter().filter(|x| x.recv_us < f).map(|x| x.recv_us).max());
        match (last, first) {
            (Some(l), Some(f)) => format!("{:.1} ms", f.saturating_sub(l) as f64 / 1000.0),
            _ => "n/a".to_owned(),
        }
    };

    let mut report = format!(
        "SID same-subnet (FIG. 1b, no Agent), end by {end:?}: {PPS} pps each way (goal: 0 lost, gap <= 2 ms)\n"
    );
    report.push_str(&format!(
        "{:<24} {:<12} {:>6} {:>8} {:>5} {:>7} {:>12}\n",
        "direction", "phase", "sent", "received", "lost", "gap ms", "gap ends at"
    ));
    let starts = [forward.start_us, t_neg, t_stop];
    for ((w, p), from) in fwd.windows.iter().zip(["before", "transferred", "after"]).zip(starts) {
        line(&mut report, "cn -> 198.18.0.10:5001", p, w, from);
    }
    for ((p, w), r) in rev.iter().zip([&back_tn, &back_tg, &back_tn2]) {
        line(&mut report, "holder -> cn:5002", p, w, r.start_us);
    }
    report.push_str("(forward phases split at the offer and the stop; gap ends counted from the phase start, \
                     return phases from each sender's start)\n");
    report.push_str(&format!(
        "sender pacing, worst lateness: cn {:.1} ms; TN {:.1}, Target {:.1}, TN {:.1} ms\n",
        forward.max_late_ms, back_tn.max_late_ms, back_tg.max_late_ms, back_tn2.max_late_ms
    ));
    report.push_str(&format!(
        "offer -> transferred {} ms; stop -> TN home {} ms; forward switch TN->Target {}, Target->TN {}\n",
        (t_transferred - t_neg) / 1000,
        (t_back - t_stop) / 1000,
        switch(&at_tn, &at_tg, t_neg),
        switch(&at_tg, &at_tn, t_stop)
    ));
    report.push_str(&format!(
        "return senders: TN {} sent ({} errors), Target {} ({}), TN {} ({})\n",
        back_tn.sent, back_tn.send_errors, back_tg.sent, back_tg.send_errors, back_tn2.sent, back_tn2.send_errors
    ));
    let met = fwd.windows.iter().chain(rev.iter().map(|(_, w)| w)).all(|w| w.lost == 0 && w.longest_gap_ms <= 2.0);
    report.push_str(&format!("goal (zero loss, gap <= 2 ms): {}\n", if met { "met" } else { "NOT met" }));
    report.push_str(&format!("Target: {}\n", tg_status["same_subnet"]["target"]));
    report.push_str(&format!("Target data plane: {}\n", tg_status["data"]));
    report.push_str(&format!("TN: {}\n", tn_status["same_subnet"]["tn"]));
    eprintln!("{report}");

    // The forgery: dropped, counted, nothing changed.
    let fs = &after_forgery["same_subnet"]["target"];
    assert!(fs["discarded_auth"].as_u64().unwrap_or(0) >= discarded_before + 2, "forged demands counted\n{fs:#}\n{report}");
    assert_eq!(fs["state"], "holding", "the Target still holds after the forged demand\n{report}");
    assert_eq!(fs["wake_ups_sent"], 0, "no wake-up after the forged demand\n{report}");
    assert_eq!(tn_state(&tn_after_forgery), "transferred", "{report}");

    // Delivery to the right device in each settled window, both ways.
    let count = |a: &[Arrival], p: &Phase| a.iter().filter(|x| x.recv_us >= p.from_us && x.recv_us < p.to_us).count() as u64;
    let expected = |p: &Phase| (p.to_us - p.from_us) * PPS / 1_000_000;
    for (p, holder, other) in [(&before, &at_tn, &at_tg), (&during, &at_tg, &at_tn), (&after, &at_tn, &at_tg)] {
        assert!(count(holder, p) * 10 >= expected(p) * 9, "{}: the holder gets the stream\n{report}", p.name);
        assert_eq!(count(other, p), 0, "{}: the other device gets nothing\n{report}", p.name);
    }
    for ((p, sender, until), phase) in runs.iter().zip([&before, &during, &after]) {
        let own: Vec<Arrival> = at_cn.iter().filter(|a| a.sent_us >= sender.start_us && a.sent_us < *until).copied().collect();
        assert!(count(&own, phase) * 10 >= expected(phase) * 9, "{p}: cn gets the holder's return stream\n{report}");
    }
    // The hand-back: by the reply to the demand, or by the acknowledged wake-up.
    let tg = &tg_status["same_subnet"]["target"];
    let tn = &tn_status["same_subnet"]["tn"];
    assert_eq!(tg["state"], "ended", "{report}");
    assert_eq!(tg["wake_ups_acknowledged"], 1, "the TN acknowledged the wake-up\n{report}");
    assert!(tn["wake_ups_accepted"].as_u64().unwrap_or(0) >= 1, "{report}");
    assert!(tg_status["data"]["gratuitous_arps"].as_u64().unwrap_or(0) >= 2, "the Target announced the address\n{report}");
    assert!(tg_status["data"]["direct_out_packets"].as_u64().unwrap_or(0) > 0, "the return stream left the Target directly\n{report}");
}

#[test]
fn same_subnet_transfer_and_take_back_by_the_tns_stop_demand() {
    run(End::TnDemand);
}

#[test]
fn same_subnet_transfer_ended_by_the_target_with_the_wake_up() {
    run(End::TargetStops);
}
