//! The `mip-mn run` daemon in network namespaces (needs root; skipped with a message
//! otherwise).
//!
//! Topology, per test (unique prefix P, removed by a guard on drop, also on panic):
//!
//! ```text
//!  P-mn: eth0 (no address; the daemon configures it)  <-veth->  P-net: lan0 198.18.2.254/24
//!        mip0 (the daemon's TUN, home address)                  lo: 198.18.0.1 (HA), 198.19.0.1 (CN)
//! ```
//!
//! P-net plays the router, the correspondent and the home agent (an in-process
//! `mip_ha::HomeAgent` behind a UDP socket) and sends Agent Advertisements on lan0. The
//! node hears them, takes its co-located address 198.18.2.100 and registers; the test then
//! tunnels a packet to the co-located address and expects it on a UDP socket bound to the
//! home address inside P-mn, and the answer back (direct, or reverse-tunnelled with T).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use mip_core::auth::{AuthAlgorithm, ReplayMethod, SecurityAssociation};
use mip_core::dataplane::arp::{ArpOp, ArpRepr};
use mip_core::dataplane::ethernet;
use mip_core::dataplane::ipv4::{self, Ipv4Fields, PROTO_UDP};
use mip_core::dataplane::{decapsulate, encapsulate, EncapOutcome, Encapsulation, TunnelParams};
use mip_core::time::Time;
use mip_core::wire::{
    AgentAdvertisementRepr, AgentFlags, MobilityAgentExt, RegistrationFlags, RegistrationRequest,
    RegistrationRequestRepr,
};
use mip_ha::config::{HomeAgentConfig, MobileNodeEntry};
use mip_ha::home_agent::{HaEvent, HomeAgent};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

const HOME: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const HA: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CN: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
const COA: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 100);
const ROUTER: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 254);
const FA: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const KEY: &str = "6d69702d68612d6c61622d6b65792d31";
const SPI: u32 = 256;
const DEADLINE: Duration = Duration::from_secs(20);

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sysctl(ns: &str, key: &str, value: &str) {
    ip(&[
        "netns",
        "exec",
        ns,
        "sysctl",
        "-qw",
        &format!("{key}={value}"),
    ]);
}

/// Whether this process may create namespaces (root with CAP_SYS_ADMIN).
fn can_run() -> bool {
    static PROBE: AtomicUsize = AtomicUsize::new(0);
    let probe = format!(
        "mnprobe{}x{}",
        std::process::id(),
        PROBE.fetch_add(1, Ordering::Relaxed)
    );
    let ok = Command::new("ip")
        .args(["netns", "add", &probe])
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        let _ = Command::new("ip").args(["netns", "del", &probe]).status();
    } else {
        eprintln!("skipped: cannot create network namespaces (not root?)");
    }
    ok
}

/// The two namespaces and the daemon; everything is removed on drop.
struct Lab {
    mn: String,
    net: String,
    dir: tempfile::TempDir,
    daemon: Option<Child>,
}

impl Lab {
    fn new() -> Self {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let p = format!(
            "mnd{}x{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let lab = Lab {
            mn: format!("{p}-mn"),
            net: format!("{p}-net"),
            dir: tempfile::tempdir().expect("temp dir"),
            daemon: None,
        };
        for ns in [&lab.mn, &lab.net] {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            for key in ["all", "default"] {
                sysctl(ns, &format!("net.ipv4.conf.{key}.rp_filter"), "0");
            }
        }
        ip(&[
            "-n", &lab.mn, "link", "add", "eth0", "type", "veth", "peer", "name", "lan0", "netns",
            &lab.net,
        ]);
        ip(&["-n", &lab.mn, "link", "set", "eth0", "up"]);
        ip(&["-n", &lab.net, "link", "set", "lan0", "up"]);
        ip(&[
            "-n",
            &lab.net,
            "addr",
            "add",
            "198.18.2.254/24",
            "dev",
            "lan0",
        ]);
        ip(&[
            "-n",
            &lab.net,
            "addr",
            "add",
            "198.18.1.1/24",
            "dev",
            "lan0",
        ]);
        ip(&["-n", &lab.net, "addr", "add", "198.18.0.1/32", "dev", "lo"]);
        ip(&["-n", &lab.net, "addr", "add", "198.19.0.1/32", "dev", "lo"]);
        // The node at home answers on lan0 for its home address.
        ip(&[
            "-n",
            &lab.net,
            "route",
            "add",
            "198.18.0.0/24",
            "dev",
            "lan0",
        ]);
        lab
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn start_daemon(&mut self, reverse_tunnel: bool) {
        let config = format!(
            r#"
[mobile_node]
home_address = "{HOME}"
home_prefix_len = 24
home_gateway = "198.18.0.254"
home_agent = "{HA}"
interface = "eth0"
lifetime = 120
reverse_tunnel = {reverse_tunnel}

[security_association]
spi = {SPI}
key = "{KEY}"

[[colocated]]
prefix = "198.18.2.0/24"
address = "{COA}"
gateway = "{ROUTER}"

[daemon]
gratuitous_arp_count = 2
gratuitous_arp_interval_ms = 300
"#
        );
        let path = self.path("mn.toml");
        std::fs::write(&path, config).expect("write config");
        let log = File::create(self.path("mn.log")).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.mn])
            .arg(env!("CARGO_BIN_EXE_mip-mn"))
            .args(["run", "--config"])
            .arg(&path)
            .arg("--status-file")
            .arg(self.path("status.json"))
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start mip-mn");
        self.daemon = Some(child);
    }

    fn status(&self) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(self.path("status.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Waits until the status file satisfies `pred`; on timeout prints the daemon's log.
    fn wait_status(
        &self,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let start = Instant::now();
        loop {
            if let Some(s) = self.status().filter(|s| pred(s)) {
                return s;
            }
            if start.elapsed() > DEADLINE {
                panic!(
                    "timed out waiting for {what}; status {:?}\n{}",
                    self.status(),
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("mn.log")).unwrap_or_default()
    }

    fn ip_output(&self, ns: &str, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["-n", ns])
            .args(args)
            .output()
            .expect("ip");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// SIGTERM, then a bounded wait (the daemon deregisters first).
    fn stop_daemon(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.daemon.take()?;
        // `ip netns exec` execs the daemon, so the child's pid is the daemon's.
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(8) {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::env::var_os("MN_TEST_SHOW_LOG").is_some() {
            eprintln!("--- mip-mn log ({}) ---\n{}", self.mn, self.log());
        }
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in [&self.mn, &self.net] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Runs `f` on a thread that has entered namespace `ns`; sockets it creates stay there.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = Path::new("/var/run/netns").join(ns);
    thread::spawn(move || {
        let file = File::open(&path).expect("open netns");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("netns thread")
}

/// Spawns `f` on a thread inside `ns` and returns its handle.
fn spawn_in_netns(ns: &str, f: impl FnOnce() + Send + 'static) -> thread::JoinHandle<()> {
    let path = Path::new("/var/run/netns").join(ns);
    thread::spawn(move || {
        let file = File::open(&path).expect("open netns");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
}

fn now() -> Time {
    Time::from_system(SystemTime::now())
}

/// The in-process home agent: a UDP socket on 198.18.0.1:434 in P-net.
struct HomeAgentThread {
    events: mpsc::Receiver<HaEvent>,
    _worker: Worker,
}

impl HomeAgentThread {
    fn start(ns: &str) -> Self {
        let mut cfg = HomeAgentConfig::new(HA, 24);
        cfg.mobile_nodes.push(MobileNodeEntry {
            home_address: Some(HOME),
            nai: None,
            security_associations: vec![SecurityAssociation {
                spi: SPI,
                algorithm: AuthAlgorithm::HmacMd5,
                key: hex::decode(KEY).expect("hex"),
                replay: ReplayMethod::Timestamp,
            }],
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, events) = mpsc::channel();
        let flag = stop.clone();
        let handle = spawn_in_netns(ns, move || {
            let socket = UdpSocket::bind(SocketAddrV4::new(HA, 434)).expect("bind 434");
            socket
                .set_read_timeout(Some(Duration::from_millis(50)))
                .expect("timeout");
            let mut ha = HomeAgent::new(cfg, 1);
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((n, SocketAddr::V4(from))) = socket.recv_from(&mut buf) {
                    ha.handle_datagram(now(), from, &buf[..n]);
                }
                ha.handle_timeout(now());
                while let Some(t) = ha.poll_transmit() {
                    let _ = socket.send_to(&t.payload, t.destination);
                }
                while let Some(ev) = ha.poll_event() {
                    let _ = tx.send(ev);
                }
            }
        });
        Self {
            events,
            _worker: Worker {
                stop,
                handle: Some(handle),
            },
        }
    }

    fn wait_event(&self, what: &str, pred: impl Fn(&HaEvent) -> bool) -> HaEvent {
        let start = Instant::now();
        while start.elapsed() < DEADLINE {
            match self.events.recv_timeout(Duration::from_millis(100)) {
                Ok(ev) if pred(&ev) => return ev,
                _ => {}
            }
        }
        panic!("home agent: no {what}");
    }
}

/// A helper thread that runs until its flag is set; stopped and joined on drop (also
/// when the test panics), so it never outlives its namespaces by much.
struct Worker {
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Worker {
    fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Sends an Agent Advertisement on lan0 every 300 ms, from `source` (which must be local
/// in P-net), until stopped. Returns the stop flag.
fn advertise(ns: &str, source: Ipv4Addr, flags: u16) -> Worker {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handle = spawn_in_netns(ns, move || {
        let socket =
            Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)).expect("raw icmp");
        socket.bind_device(Some(b"lan0")).expect("bind lan0");
        socket
            .bind(&SockAddr::from(SocketAddrV4::new(source, 0)))
            .expect("bind source");
        socket.set_multicast_ttl_v4(1).expect("ttl");
        let dst = SockAddr::from(SocketAddrV4::new(Ipv4Addr::new(224, 0, 0, 1), 0));
        let mut seq = 0u16;
        while !flag.load(Ordering::Relaxed) {
            let adv = AgentAdvertisementRepr {
                code: 0,
                lifetime: 3,
                router_addresses: vec![(source, 0)],
                mobility: MobilityAgentExt {
                    sequence: seq,
                    registration_lifetime: 600,
                    flags: AgentFlags(flags),
                    // A foreign agent offers its own address as care-of address.
                    care_of_addresses: if flags & AgentFlags::F != 0 && source == FA {
                        vec![FA]
                    } else {
                        vec![]
                    },
                },
                prefix_lengths: Some(vec![24]),
            };
            let mut buf = vec![0u8; adv.buffer_len()];
            adv.emit(&mut buf).expect("emit");
            let _ = socket.send_to(&buf, &dst);
            seq = seq.wrapping_add(1);
            thread::sleep(Duration::from_millis(300));
        }
    });
    Worker {
        stop,
        handle: Some(handle),
    }
}

fn udp_packet(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let total = 28 + payload.len();
    let mut p = vec![0u8; total];
    ipv4::write_header(
        &mut p,
        &Ipv4Fields {
            tos: 0,
            total_len: total as u16,
            identification: 7,
            dont_fragment: true,
            more_fragments: false,
            fragment_offset: 0,
            ttl: 64,
            protocol: PROTO_UDP,
            src: *src.ip(),
            dst: *dst.ip(),
        },
    )
    .expect("header");
    p[20..22].copy_from_slice(&src.port().to_be_bytes());
    p[22..24].copy_from_slice(&dst.port().to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    // UDP checksum 0: none (RFC 768), accepted for IPv4.
    p[28..].copy_from_slice(payload);
    p
}

/// The home agent's part of the forward path: tunnel `inner` from HA to the co-located
/// address, sent from P-net.
fn tunnel_to_coa(ns: &str, inner: Vec<u8>) {
    in_netns(ns, move || {
        let mut out = vec![0u8; 4096];
        let len = match encapsulate(
            Encapsulation::IpInIp,
            &inner,
            HA,
            COA,
            &TunnelParams::default(),
            &mut out,
        ) {
            EncapOutcome::Encapsulated { len } => len,
            other => panic!("{other:?}"),
        };
        let raw = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(255))).expect("raw");
        raw.send_to(&out[..len], &SockAddr::from(SocketAddrV4::new(COA, 0)))
            .expect("send tunnel");
    });
}

/// Forward: CN -> home address through the tunnel to the co-located address; then the
/// answer from the home address. Returns the socket in P-mn bound to the home address.
fn forward_path(lab: &Lab) -> UdpSocket {
    let app = in_netns(&lab.mn, || {
        UdpSocket::bind(SocketAddrV4::new(HOME, 6000)).expect("bind home address")
    });
    app.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let inner = udp_packet(
        SocketAddrV4::new(CN, 5000),
        SocketAddrV4::new(HOME, 6000),
        b"hello-mn",
    );
    let mut buf = [0u8; 64];
    // A few tries: the first copy may race the end of the daemon's route changes.
    for _ in 0..10 {
        tunnel_to_coa(&lab.net, inner.clone());
        if let Ok((n, from)) = app.recv_from(&mut buf) {
            assert_eq!(&buf[..n], b"hello-mn");
            assert_eq!(from, SocketAddr::V4(SocketAddrV4::new(CN, 5000)));
            return app;
        }
    }
    panic!(
        "the tunnelled packet never reached the home address socket\n{}",
        lab.log()
    );
}

#[test]
fn colocated_direct_delivery_both_ways_then_return_home() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new();
    let ha = HomeAgentThread::start(&lab.net);
    let adv = advertise(&lab.net, ROUTER, 0);
    lab.start_daemon(false);

    let added = ha.wait_event("binding", |e| matches!(e, HaEvent::BindingAdded { .. }));
    let HaEvent::BindingAdded {
        care_of_address,
        reverse_tunnel,
        ..
    } = added
    else {
        unreachable!()
    };
    assert_eq!((care_of_address, reverse_tunnel), (COA, false));
    let status = lab.wait_status("registered", |s| s["registration"] == "registered");
    assert_eq!(status["location"], "colocated");
    assert_eq!(status["care_of_address"], COA.to_string());
    // Design3.md co-located addressing.
    assert!(lab
        .ip_output(&lab.mn, &["-4", "addr", "show", "dev", "eth0"])
        .contains("198.18.2.100/24"));
    assert!(lab
        .ip_output(&lab.mn, &["-4", "rule"])
        .contains("from 198.18.0.10 lookup 100"));
    assert!(lab
        .ip_output(&lab.mn, &["-4", "route", "show", "table", "100"])
        .contains("default dev mip0"));

    let app = forward_path(&lab);
    // Reverse: from the home address, sent directly by the daemon (source = home address).
    let cn = in_netns(&lab.net, || {
        UdpSocket::bind(SocketAddrV4::new(CN, 5000)).expect("bind cn")
    });
    cn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    app.send_to(b"hello-cn", SocketAddrV4::new(CN, 5000))
        .expect("send from home address");
    let mut buf = [0u8; 64];
    let (n, from) = cn
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("no answer at the CN: {e}\n{}", lab.log()));
    assert_eq!(&buf[..n], b"hello-cn");
    assert_eq!(from, SocketAddr::V4(SocketAddrV4::new(HOME, 6000)));
    lab.wait_status("data counters", |s| {
        s["data"]["tunnel_in_packets"].as_u64() >= Some(1)
            && s["data"]["direct_out_packets"].as_u64() >= Some(1)
    });

    // Returning home: the home agent advertises on the link (RFC 5944 2.4.3).
    let arp = in_netns(&lab.net, || {
        let s = Socket::new(
            Domain::PACKET,
            Type::RAW,
            Some(Protocol::from(i32::from(0x0806u16.to_be()))),
        )
        .expect("packet socket");
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        // Read with recv(2) into an initialised buffer through std's socket type.
        UdpSocket::from(s)
    });
    adv.stop();
    let home_adv = advertise(&lab.net, HA, AgentFlags::H);
    let removed = ha.wait_event("deregistration", |e| {
        matches!(e, HaEvent::BindingRemoved { .. })
    });
    assert!(
        matches!(
            removed,
            HaEvent::BindingRemoved {
                last_for_home: true,
                ..
            }
        ),
        "{removed:?}"
    );
    let status = lab.wait_status("home", |s| {
        s["location"] == "home" && s["registration"] == "idle"
    });
    assert!(status["gratuitous_arps"].as_u64() >= Some(1));
    // RFC 5944 4.6: the gratuitous ARP for the home address with the node's own MAC.
    let start = Instant::now();
    let mut seen = false;
    let mut frame = [0u8; 128];
    while !seen && start.elapsed() < Duration::from_secs(5) {
        if let Ok(n) = arp.recv(&mut frame) {
            if let Ok(eth) = ethernet::parse(&frame[..n]) {
                if let Ok(a) = ArpRepr::parse(eth.payload) {
                    seen = a.operation == ArpOp::Request
                        && a.sender_ip == HOME
                        && a.target_ip == HOME
                        && eth.dst == ethernet::BROADCAST
                        && a.sender_mac == eth.src;
                }
            }
        }
    }
    assert!(seen, "no gratuitous ARP for the home address");
    let routes = lab.ip_output(&lab.mn, &["-4", "route"]);
    assert!(routes.contains("198.18.0.0/24 dev eth0"), "{routes}");
    assert!(routes.contains("src 198.18.0.10"), "{routes}");
    assert!(!lab
        .ip_output(&lab.mn, &["-4", "rule"])
        .contains("lookup 100"));
    assert!(!lab
        .ip_output(&lab.mn, &["-4", "addr", "show", "dev", "eth0"])
        .contains("198.18.2.100"));

    home_adv.stop();
    let exit = lab.stop_daemon();
    assert!(
        exit.is_some_and(|s| s.success()),
        "daemon exit {exit:?}\n{}",
        lab.log()
    );
}

#[test]
fn colocated_reverse_tunnel_to_the_home_agent() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new();
    let ha = HomeAgentThread::start(&lab.net);
    let adv = advertise(&lab.net, ROUTER, AgentFlags::F);
    lab.start_daemon(true);
    let added = ha.wait_event("binding", |e| matches!(e, HaEvent::BindingAdded { .. }));
    assert!(
        matches!(
            added,
            HaEvent::BindingAdded {
                reverse_tunnel: true,
                care_of_address: COA,
                ..
            }
        ),
        "{added:?}"
    );
    lab.wait_status("registered", |s| s["registration"] == "registered");

    let app = forward_path(&lab);
    // Reverse tunnel: the answer arrives at the home agent as IP in IP from the CoA.
    let tunnel = in_netns(&lab.net, || {
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(4))).expect("raw ipip");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        UdpSocket::from(s)
    });
    app.send_to(b"hello-cn", SocketAddrV4::new(CN, 5000))
        .expect("send");
    let mut buf = [0u8; 2048];
    let n = tunnel
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no reverse-tunnelled packet: {e}\n{}", lab.log()));
    let mut inner = [0u8; 2048];
    let d = decapsulate(&buf[..n], &mut inner).expect("decapsulates");
    assert_eq!((d.outer_src, d.outer_dst), (COA, HA));
    assert_eq!((d.inner_src, d.inner_dst), (HOME, CN));
    assert_eq!(&inner[28..d.inner_len], b"hello-cn");
    lab.wait_status("reverse counter", |s| {
        s["data"]["reverse_out_packets"].as_u64() >= Some(1)
    });

    adv.stop();
    // Stopping while away deregisters the co-located binding.
    let exit = lab.stop_daemon();
    assert!(
        exit.is_some_and(|s| s.success()),
        "daemon exit {exit:?}\n{}",
        lab.log()
    );
    ha.wait_event("deregistration on stop", |e| {
        matches!(e, HaEvent::BindingRemoved { .. })
    });
}

#[test]
fn foreign_agent_mode_registers_through_the_agent_without_arp_for_the_home_address() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new();
    // Everything the node broadcasts as ARP while away is recorded.
    let arp = in_netns(&lab.net, || {
        let s = Socket::new(
            Domain::PACKET,
            Type::RAW,
            Some(Protocol::from(i32::from(0x0806u16.to_be()))),
        )
        .expect("packet socket");
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        UdpSocket::from(s)
    });
    // The foreign agent: receives the request on 198.18.1.1:434, hands it to an in-process
    // home agent as if relayed, and relays the reply to the node's MAC (learned, as a real
    // agent would, from the request: here a static neighbour entry).
    let lan0_mac = lab.ip_output(&lab.net, &["-o", "link", "show", "dev", "lan0"]);
    let mn_mac = lab.ip_output(&lab.mn, &["-o", "link", "show", "dev", "eth0"]);
    let mac_of = |line: &str| {
        line.split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .expect("mac")
            .to_owned()
    };
    let (lan0_mac, mn_mac) = (mac_of(&lan0_mac), mac_of(&mn_mac));
    ip(&[
        "-n",
        &lab.net,
        "neigh",
        "replace",
        "198.18.0.10",
        "lladdr",
        &mn_mac,
        "dev",
        "lan0",
        "nud",
        "permanent",
    ]);
    let (tx, requests) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let fa_handle = spawn_in_netns(&lab.net, move || {
        let socket = UdpSocket::bind(SocketAddrV4::new(FA, 434)).expect("bind fa");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let mut cfg = HomeAgentConfig::new(HA, 24);
        cfg.mobile_nodes.push(MobileNodeEntry {
            home_address: Some(HOME),
            nai: None,
            security_associations: vec![SecurityAssociation {
                spi: SPI,
                algorithm: AuthAlgorithm::HmacMd5,
                key: hex::decode(KEY).expect("hex"),
                replay: ReplayMethod::Timestamp,
            }],
        });
        let mut ha = HomeAgent::new(cfg, 2);
        let mut buf = [0u8; 2048];
        while !flag.load(Ordering::Relaxed) {
            let Ok((n, SocketAddr::V4(from))) = socket.recv_from(&mut buf) else {
                continue;
            };
            let view = RegistrationRequest::new_checked(&buf[..n]).expect("request");
            let _ = tx.send((from, RegistrationRequestRepr::parse(&view).expect("parses")));
            ha.handle_datagram(now(), SocketAddrV4::new(FA, 434), &buf[..n]);
            while let Some(t) = ha.poll_transmit() {
                let _ = socket.send_to(&t.payload, from);
            }
        }
    });
    let fa = Worker {
        stop,
        handle: Some(fa_handle),
    };
    let adv = advertise(&lab.net, FA, AgentFlags::F | AgentFlags::T);
    lab.start_daemon(true);

    let (from, req) = requests
        .recv_timeout(DEADLINE)
        .unwrap_or_else(|e| panic!("no request at the agent: {e}\n{}", lab.log()));
    // RFC 5944 3.6.1.1: source = home address, destination = the agent.
    assert_eq!(*from.ip(), HOME);
    assert_eq!(
        (req.care_of_address, req.home_agent, req.home_address),
        (FA, HA, HOME)
    );
    assert!(
        req.flags.contains(RegistrationFlags::T),
        "the agent offers T"
    );
    assert!(!req.flags.contains(RegistrationFlags::D));
    let status = lab.wait_status("registered", |s| s["registration"] == "registered");
    assert_eq!(status["location"], "foreign_agent");
    assert_eq!(status["care_of_address"], FA.to_string());

    let routes = lab.ip_output(&lab.mn, &["-4", "route"]);
    assert!(
        routes.contains("default via 198.18.1.1 dev eth0") && routes.contains("onlink"),
        "{routes}"
    );
    let neigh = lab.ip_output(&lab.mn, &["neigh", "show", "dev", "eth0"]);
    assert!(
        neigh.contains(&format!("198.18.1.1 lladdr {lan0_mac} PERMANENT")),
        "{neigh}"
    );
    // 4.6: the node must not answer ARP for its home address on a foreign link.
    let ignore = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.mn,
            "cat",
            "/proc/sys/net/ipv4/conf/eth0/arp_ignore",
        ])
        .output()
        .expect("cat");
    assert_eq!(String::from_utf8_lossy(&ignore.stdout).trim(), "1");
    let mut frame = [0u8; 128];
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        if let Ok(n) = arp.recv(&mut frame) {
            if let Ok(a) = ethernet::parse(&frame[..n]).and_then(|e| ArpRepr::parse(e.payload)) {
                assert_ne!(
                    a.sender_ip, HOME,
                    "ARP with the home address while away: {a:?}"
                );
            }
        }
    }

    adv.stop();
    let exit = lab.stop_daemon();
    assert!(
        exit.is_some_and(|s| s.success()),
        "daemon exit {exit:?}\n{}",
        lab.log()
    );
    // Stopping while away deregisters through the agent.
    let (_, dereg) = requests
        .recv_timeout(Duration::from_secs(5))
        .expect("deregistration through the agent");
    assert_eq!((dereg.lifetime, dereg.care_of_address), (0, FA));
    fa.stop();
}
