//! The lab itself: topology, moves, guard clean-up, traffic tools, captures.
//! Needs root (network namespaces); every lab here has its own prefix, so tests run in
//! parallel, and each checks that its namespaces are gone afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tools::lab::netns;
use tools::lab::scenario::{MoveLog, TcpFlow, UdpFlow};
use tools::lab::topology::base;
use tools::lab::traffic;
use tools::lab::{Lab, Topology};

fn lab_namespaces(prefix: &str) -> Vec<String> {
    netns::list_namespaces()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .collect()
}

fn reaches(lab: &Lab, from: &str, to: Ipv4Addr) -> bool {
    lab.ping(from, to, 3, Duration::from_millis(500))
        .unwrap()
        .reachable()
}

/// Unreachable: two echoes, 300 ms each, get no reply.
fn silent(lab: &Lab, from: &str, to: Ipv4Addr) -> bool {
    !lab.ping(from, to, 2, Duration::from_millis(300))
        .unwrap()
        .reachable()
}

#[test]
fn lab_comes_up_fast_and_every_host_reaches_every_lan() {
    let t0 = Instant::now();
    let lab = Lab::up(Topology::base()).unwrap();
    let setup = t0.elapsed();
    assert!(setup < Duration::from_secs(2), "setup took {setup:?}");
    let prefix = lab.prefix().to_owned();
    assert_eq!(lab_namespaces(&prefix).len(), 7, "six hosts and the switch");

    let targets: Vec<(String, Ipv4Addr)> = lab
        .topology()
        .hosts
        .iter()
        .flat_map(|h| {
            h.ifaces
                .iter()
                .flat_map(move |i| i.addrs.iter().map(move |a| (h.name.clone(), a.addr)))
        })
        .collect();
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for h in &lab.topology().hosts {
            let (lab, targets, failures) = (&lab, &targets, &failures);
            s.spawn(move || {
                for (owner, addr) in targets.iter().filter(|(o, _)| *o != h.name) {
                    if !reaches(lab, &h.name, *addr) {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("{} -> {owner} {addr}", h.name));
                    }
                }
            });
        }
    });
    assert!(
        failures.lock().unwrap().is_empty(),
        "unreachable: {:?}",
        failures.lock().unwrap()
    );
    // Forwarding only where the design says so.
    let forwarding = |h: &str| {
        lab.in_ns(h, || {
            std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap()
        })
        .unwrap()
    };
    assert_eq!(forwarding("rtr").trim(), "1");
    assert_eq!(forwarding("ha").trim(), "0");
    let rp = lab
        .in_ns("mn", || {
            std::fs::read_to_string("/proc/sys/net/ipv4/conf/eth0/rp_filter").unwrap()
        })
        .unwrap();
    assert_eq!(rp.trim(), "0");
    lab.down().unwrap();
    assert!(lab_namespaces(&prefix).is_empty());
    eprintln!("base topology up in {setup:?}");
}

#[test]
fn lookups_exec_and_in_ns() {
    let lab = Lab::up(Topology::base()).unwrap();
    assert_eq!(lab.addr("mn").unwrap(), base::MN_HOME);
    assert_eq!(lab.ns("cn").unwrap(), format!("{}-cn", lab.prefix()));
    assert!(lab.ns("nobody").is_err());
    let mac = lab.mac("ha", "eth0").unwrap();
    let shown = lab
        .exec_ok("ha", &["ip", "-o", "link", "show", "eth0"])
        .unwrap();
    assert!(shown.contains(&tools::lab::guard::fmt_mac(&mac)), "{shown}");
    let addrs = lab
        .exec_ok("rtr", &["ip", "-o", "-4", "addr", "show", "eth-cn"])
        .unwrap();
    assert!(addrs.contains("198.19.0.254/24"), "{addrs}");
    // A socket opened from in_ns lives in the host's namespace: only there is 198.18.0.1 local.
    assert!(lab
        .in_ns("ha", || UdpSocket::bind((base::HA, 0)).is_ok())
        .unwrap());
    assert!(UdpSocket::bind((base::HA, 0)).is_err());
    // Processes spawned are in the namespace too.
    let child = lab.spawn("cn", &["sleep", "30"]).unwrap();
    // `ip netns exec` enters the namespace just after it starts.
    let deadline = Instant::now() + Duration::from_secs(2);
    while netns::pids_in(&[lab.ns("cn").unwrap().to_owned()]) != vec![child.pid()] {
        assert!(Instant::now() < deadline, "sleep is not in cn's namespace");
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.stop(Duration::from_secs(2)).unwrap();
    assert!(!out.status.success());
}

#[test]
fn moving_the_mn_port_changes_its_lan() {
    let lab = Lab::up(Topology::base()).unwrap();
    assert_eq!(lab.lan_of("mn").unwrap(), "home");
    assert!(reaches(&lab, "mn", base::HA));
    assert!(reaches(&lab, "ha", base::MN_HOME));

    lab.move_port("mn", "f1").unwrap();
    assert_eq!(lab.lan_of("mn").unwrap(), "f1");
    let sw = Command::new(netns::ip_bin())
        .args(["-n", lab.switch_ns(), "-o", "link", "show", "mn"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&sw.stdout).contains("master br-f1"));
    // The home address is gone from the home LAN, and the node cannot use its home router.
    assert!(silent(&lab, "ha", base::MN_HOME));
    assert!(silent(&lab, "mn", base::RTR_HOME));
    // Addressed for foreign 1, it reaches that LAN's router and agent, and beyond.
    lab.sh("mn", "ip addr flush dev eth0 && ip addr add 198.18.1.10/24 dev eth0 && ip route add default via 198.18.1.254")
        .unwrap();
    assert!(reaches(&lab, "mn", base::RTR_F1));
    assert!(reaches(&lab, "mn", base::FA1));
    assert!(reaches(&lab, "mn", base::CN));
    // fa2 is on another LAN: only through the router.
    lab.move_port("mn", "f2").unwrap();
    assert!(silent(&lab, "mn", base::RTR_F1));

    // Home again with the home address.
    lab.move_port("mn", "home").unwrap();
    lab.sh("mn", "ip addr flush dev eth0 && ip addr add 198.18.0.10/24 dev eth0 && ip route add default via 198.18.0.254")
        .unwrap();
    assert!(reaches(&lab, "ha", base::MN_HOME));
    assert!(reaches(&lab, "cn", base::MN_HOME));
}

#[test]
fn a_panic_inside_a_test_still_removes_every_namespace() {
    let seen: Mutex<Option<(String, u32)>> = Mutex::new(None);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let lab = Lab::up(Topology::base()).unwrap();
        // A process the lab does not hold a guard for: started in the background by a shell.
        let pid = lab.sh("cn", "sleep 60 >/dev/null 2>&1 & echo $!").unwrap();
        let pid: u32 = pid.trim().parse().unwrap();
        *seen.lock().unwrap() = Some((lab.prefix().to_owned(), pid));
        assert_eq!(lab_namespaces(lab.prefix()).len(), 7);
        panic!("deliberate panic with the lab up");
    }));
    assert!(result.is_err());
    let (prefix, pid) = seen.lock().unwrap().clone().unwrap();
    assert!(
        lab_namespaces(&prefix).is_empty(),
        "{:?}",
        lab_namespaces(&prefix)
    );
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        state.is_empty() || state.contains(") Z"),
        "background process still runs: {state}"
    );
}

#[test]
fn sid_lab_down_removes_the_lab_of_a_killed_process() {
    // `sid-lab run` killed with SIGKILL cannot clean up: its namespaces, and the traffic
    // processes inside them, stay until `sid-lab down` finds that their owner is gone.
    let sid_lab = env!("CARGO_BIN_EXE_sid-lab");
    let mut child = Command::new(sid_lab)
        .args(["run", "kernel-forwarding", "--duration", "20"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let prefix = format!("sl{}-0", child.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    // Wait until the traffic runs inside the lab.
    while netns::pids_in(&[format!("{prefix}-cn")]).len() < 2 {
        assert!(Instant::now() < deadline, "the scenario did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let namespaces = lab_namespaces(&prefix);
    let out = Command::new(sid_lab).arg("down").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    // Another test's Lab::up may have removed the stale lab first; either way it is gone.
    if !namespaces.is_empty() {
        assert!(lab_namespaces(&prefix).is_empty());
    }
    assert!(lab_namespaces(&prefix).is_empty());
}

#[test]
fn udp_1000_pps_for_2_s_over_a_direct_path_loses_nothing() {
    let lab = Lab::up(Topology::base()).unwrap();
    lab.wait_reachable("mn", base::HA, Duration::from_secs(2))
        .unwrap();
    let flow = UdpFlow::start(
        &lab,
        "mn-ha",
        "mn",
        "ha",
        base::HA,
        6000,
        1000,
        Duration::from_secs(2),
    )
    .unwrap();
    // A window boundary in the middle: the halves add up.
    std::thread::sleep(Duration::from_secs(1));
    let mut moves = MoveLog::new();
    moves.record("midpoint");
    let r = flow.finish(&moves.times()).unwrap();
    assert_eq!(r.send.sent, 2000);
    assert!(r.send.duration_ms < 2500.0, "pacing drifted: {:?}", r.send);
    assert_eq!(
        (r.recv.received, r.recv.lost, r.recv.duplicates),
        (2000, 0, 0),
        "{:?}",
        r.recv
    );
    assert!(r.recv.longest_gap_ms < 500.0, "{}", r.recv.longest_gap_ms);
    let w = &r.recv.windows;
    assert_eq!(w.len(), 2);
    assert_eq!(w[0].sent + w[1].sent, 2000);
    assert!(w[0].sent.abs_diff(1000) < 100, "{w:?}");
    let per_move = tools::lab::scenario::move_reports("mn-ha", &moves, &r.recv);
    assert_eq!(per_move[1].label, "midpoint");
    assert_eq!(per_move[1].lost, 0);
}

#[test]
fn udp_loss_during_an_unrepaired_move_is_counted_in_its_window() {
    let lab = Lab::up(Topology::base()).unwrap();
    lab.wait_reachable("cn", base::MN_HOME, Duration::from_secs(2))
        .unwrap();
    let flow = UdpFlow::start(
        &lab,
        "cn-mn",
        "cn",
        "mn",
        base::MN_HOME,
        6001,
        1000,
        Duration::from_millis(1500),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let mut moves = MoveLog::new();
    moves.record("to f1");
    lab.move_port("mn", "f1").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    moves.record("home");
    lab.move_port("mn", "home").unwrap();
    let r = flow.finish(&moves.times()).unwrap();
    let w = &r.recv.windows;
    assert_eq!(w.len(), 3);
    assert_eq!(w[0].lost, 0, "{w:?}");
    assert!(w[1].lost >= 400, "{w:?}");
    assert!(w[2].received > 0, "{w:?}");
    assert!(
        w[2].longest_gap_ms >= 400.0,
        "the outage ends in the window of the move home: {w:?}"
    );
    assert_eq!(r.recv.lost, w.iter().map(|x| x.lost).sum::<u64>());
}

#[test]
fn tcp_checker_passes_through_the_router() {
    let lab = Lab::up(Topology::base()).unwrap();
    lab.wait_reachable("mn", base::CN, Duration::from_secs(2))
        .unwrap();
    let flow = TcpFlow::start(
        &lab,
        "mn-cn",
        "mn",
        "cn",
        base::CN,
        7000,
        2_000_000,
        Duration::from_secs(1),
    )
    .unwrap();
    let r = flow.finish().unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.recv.bytes, 2_000_000);
    assert_eq!(r.recv.errors, 0);
    assert!(r.send.acknowledged);
}

#[test]
fn capture_records_traffic_on_an_interface() {
    let lab = Lab::up(Topology::base()).unwrap();
    let cap = lab.capture("ha", "eth0", "icmp").unwrap();
    assert!(reaches(&lab, "mn", base::HA));
    assert!(reaches(&lab, "cn", base::HA));
    let path = cap.stop().unwrap();
    let out = Command::new("tshark")
        .args([
            "-r",
            &path.to_string_lossy(),
            "-n",
            "-Y",
            "icmp.type == 8",
            "-T",
            "fields",
            "-e",
            "ip.src",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("198.18.0.10") && text.contains("198.19.0.1"),
        "{text} {} {:?}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::metadata(&path)
    );
}

#[test]
fn probe_analysis_is_available_to_tests() {
    // The library side of sid-traffic, without a lab.
    let a: Vec<traffic::Arrival> = (0..10)
        .filter(|s| *s != 4)
        .map(|s| traffic::Arrival {
            seq: s,
            sent_us: s * 1000,
            recv_us: s * 1000 + 50,
        })
        .collect();
    let r = traffic::analyze(&a, None, Some(10), &[]);
    assert_eq!((r.received, r.lost), (9, 1));
    assert!((r.longest_gap_ms - 2.0).abs() < 1e-9);
}

#[test]
fn scenarios_ping_and_kernel_forwarding_pass() {
    use tools::lab::scenario::{find, run_scenario, ScenarioOptions};
    let opts = ScenarioOptions {
        duration: Duration::from_secs(1),
        ..ScenarioOptions::default()
    };
    for name in ["ping", "kernel-forwarding"] {
        let report = run_scenario(find(name).unwrap(), &opts).unwrap();
        assert!(report.passed, "{report}");
        assert!(lab_namespaces(&report.lab).is_empty());
        // The JSON form is what `sid-lab run --json` prints.
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["passed"], true);
    }
}
