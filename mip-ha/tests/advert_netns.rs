//! Agent Advertisements from the real mip-ha daemon on a (virtual) home link (RFC 5944
//! 2.1-2.3): two network namespaces joined by a veth pair, removed by a guard even on
//! panic. Needs root; skipped (with a message) otherwise. Every wait is bounded.
//!
//! ```text
//!  P-ha (mip-ha)                     P-lan (captures, solicits)
//!  eth0 198.18.0.1/24  ============  eth-home 198.18.0.254/24
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use mip_core::dataplane::ethernet::{self, ETHERTYPE_IPV4};
use mip_core::dataplane::ipv4::{self, Ipv4Fields, PROTO_ICMP};
use mip_core::wire::{AgentAdvertisementRepr, AgentFlags, AgentSolicitationRepr, ICMP_ROUTER_ADVERTISEMENT};
use mip_ha::control::{ControlOk, ControlRequest, ControlResponse, StatsReport};
use mip_ha::dataplane::advert::MAX_RESPONSE_DELAY;
use mip_ha::dataplane::linux::open_packet_socket;
use mip_ha::dataplane::DataplaneReport;
use nix::sched::{setns, CloneFlags};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

const HA: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const MN_HOME: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
/// A solicitor that is no neighbour of the home agent (RFC 5944 2.3: still answered).
const OFF_LINK: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 99);
const ALL_SYSTEMS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 1);
const MOBILE_AGENTS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 11);
const HA_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x12, 0x01, 0x01];
const WAIT: Duration = Duration::from_secs(10);
const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f";

fn can_run() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false);
    let ip = Command::new("ip").arg("-V").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    if !(root && ip) {
        eprintln!("skipped: namespace tests need root and iproute2");
    }
    root && ip
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

fn sysctl(ns: &str, key: &str, value: &str) {
    ip(&["netns", "exec", ns, "sysctl", "-qw", &format!("{key}={value}")]);
}

/// The two namespaces and the daemon; `Drop` stops the daemon and deletes both.
struct Lab {
    ha: String,
    lan: String,
    dir: tempfile::TempDir,
    daemon: Option<Child>,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Lab {
    fn new(tag: &str) -> Lab {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let p = format!("sadv{}{tag}{n}", std::process::id());
        // The guard exists before anything is created, so a failure below cleans up.
        let lab =
            Lab { ha: format!("{p}-ha"), lan: format!("{p}-lan"), dir: tempfile::tempdir().unwrap(), daemon: None };
        for ns in [&lab.ha, &lab.lan] {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            sysctl(ns, "net.ipv4.conf.all.rp_filter", "0");
            sysctl(ns, "net.ipv4.conf.default.rp_filter", "0");
        }
        ip(&["link", "add", "eth0", "netns", &lab.ha, "type", "veth", "peer", "name", "eth-home", "netns", &lab.lan]);
        let mac = HA_MAC.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
        ip(&["-n", &lab.ha, "link", "set", "eth0", "address", &mac]);
        for (ns, dev, addr) in [(&lab.ha, "eth0", "198.18.0.1/24"), (&lab.lan, "eth-home", "198.18.0.254/24")] {
            ip(&["-n", ns, "addr", "add", addr, "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        sysctl(&lab.ha, "net.ipv4.ip_forward", "0");
        lab
    }

    fn control_path(&self) -> PathBuf {
        self.dir.path().join("ha.sock")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("ha.log")
    }

    /// Starts mip-ha in the home agent's namespace with `extra` `[home_agent]` keys;
    /// returns when its control socket answers.
    fn start_ha(&mut self, extra: &str) {
        let config = self.dir.path().join("ha.toml");
        let text = format!(
            "[home_agent]\naddress = \"198.18.0.1\"\nprefix_len = 24\nlisten = \"0.0.0.0:434\"\n\
             control_socket = \"{}\"\nhome_interface = \"eth0\"\nmax_lifetime = 600\n{extra}\n\
             [[mobile_node]]\nhome_address = \"198.18.0.10\"\n[[mobile_node.sa]]\nspi = 256\nkey = \"{KEY_HEX}\"\n",
            self.control_path().display()
        );
        std::fs::write(&config, text).unwrap();
        let log = File::create(self.log_path()).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ha, env!("CARGO_BIN_EXE_mip-ha"), "--config"])
            .arg(&config)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start mip-ha");
        self.daemon = Some(child);
        wait_for("the control socket", || UnixStream::connect(self.control_path()).ok());
    }

    /// SIGTERM, as an operator stops the daemon; waits for it to exit.
    fn stop_ha(&mut self) {
        let mut child = self.daemon.take().expect("running");
        // `ip netns exec` execs the daemon, so the child is mip-ha itself.
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + WAIT;
        while child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "mip-ha did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `f` on a thread inside namespace `ns`.
    fn in_ns<T: Send>(&self, ns: &str, f: impl FnOnce() -> T + Send) -> T {
        let path = Path::new("/run/netns").join(ns);
        std::thread::scope(|s| {
            s.spawn(|| {
                let fd = File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                setns(fd, CloneFlags::CLONE_NEWNET).expect("setns");
                f()
            })
            .join()
            .expect("namespace thread")
        })
    }

    fn stats(&self) -> StatsReport {
        let mut s = UnixStream::connect(self.control_path()).expect("control socket");
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.write_all(ControlRequest::Stats.to_line().as_bytes()).unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        match serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}")) {
            ControlResponse::Ok(ControlOk::Stats(s)) => s,
            other => panic!("{other:?}"),
        }
    }

    /// Polls the data-plane counters until `done` accepts them.
    fn wait_dataplane(&self, what: &str, done: impl Fn(&DataplaneReport) -> bool) -> DataplaneReport {
        wait_for(what, || self.stats().dataplane.map(|d| *d).filter(|d| done(d)))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            if let Ok(log) = std::fs::read_to_string(self.log_path()) {
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                eprintln!("--- mip-ha log (last lines) ---");
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
        for ns in [&self.ha, &self.lan] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Polls `f` until it gives a value; panics after [`WAIT`].
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An Agent Advertisement seen on the link, with the headers it came in.
#[derive(Debug)]
struct Seen {
    eth_dst: [u8; 6],
    ip: ipv4::Ipv4Info,
    adv: AgentAdvertisementRepr,
}

/// The next advertisement from the home agent within `bound`, or `None`.
fn next_advert(cap: &Socket, bound: Duration) -> Option<Seen> {
    let deadline = Instant::now() + bound;
    cap.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = vec![0u8; 65_536];
    while Instant::now() < deadline {
        let Ok(n) = (&*cap).read(&mut buf) else { continue };
        let Ok(f) = ethernet::parse(&buf[..n]) else { continue };
        if f.ethertype != ETHERTYPE_IPV4 || f.src != HA_MAC {
            continue;
        }
        let Ok(ip) = ipv4::parse(f.payload) else { continue };
        let icmp = &f.payload[ip.header_len..ip.total_len];
        if ip.protocol != PROTO_ICMP || icmp.first() != Some(&ICMP_ROUTER_ADVERTISEMENT) {
            continue;
        }
        let adv = AgentAdvertisementRepr::parse(icmp).expect("the home agent's advertisement parses");
        return Some(Seen { eth_dst: f.dst, ip, adv });
    }
    None
}

/// A socket in the LAN namespace that sends whole IP packets out of eth-home.
fn solicitor(lab: &Lab) -> Socket {
    lab.in_ns(&lab.lan, || {
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(nix::libc::IPPROTO_RAW))).unwrap();
        nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::BindToDevice, &"eth-home".into()).unwrap();
        s.set_broadcast(true).unwrap();
        s
    })
}

/// An Agent Solicitation (IP header included) with `ttl`; `corrupt` spoils its checksum.
fn solicitation(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, corrupt: bool) -> Vec<u8> {
    let mut p = vec![0u8; 28];
    let fields = Ipv4Fields {
        tos: 0,
        total_len: 28,
        identification: 9,
        dont_fragment: false,
        more_fragments: false,
        fragment_offset: 0,
        ttl,
        protocol: PROTO_ICMP,
        src,
        dst,
    };
    ipv4::write_header(&mut p, &fields).unwrap();
    AgentSolicitationRepr.emit(&mut p[20..]).unwrap();
    if corrupt {
        p[22] ^= 0x5a;
    }
    p
}

fn send(sock: &Socket, pkt: &[u8]) {
    let dst = ipv4::parse(pkt).unwrap().dst;
    sock.send_to(pkt, &SockAddr::from(SocketAddrV4::new(dst, 0))).expect("send solicitation");
}

/// The fields every advertisement of this home agent carries (RFC 5944 2.1, 2.1.1).
fn check_home_agent_advert(s: &Seen, lifetime: u16) {
    assert_eq!((s.ip.src, s.ip.ttl, s.ip.protocol), (HA, 1, PROTO_ICMP), "IP: from the HA, TTL 1");
    assert_eq!(s.adv.code, 16);
    assert_eq!(s.adv.lifetime, lifetime);
    assert_eq!(s.adv.router_addresses, vec![(HA, i32::MIN)]);
    assert_eq!(s.adv.mobility.flags, AgentFlags(AgentFlags::H), "H and nothing else");
    assert_eq!(s.adv.mobility.registration_lifetime, 600, "= max_lifetime");
    assert!(s.adv.mobility.care_of_addresses.is_empty());
}

#[test]
fn periodic_advertisements_have_ttl_1_the_h_bit_and_increasing_sequence_numbers() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new("p");
    // Listening before the daemon starts, so its first advertisement (0) is seen.
    let cap = lab.in_ns(&lab.lan, || open_packet_socket("eth-home").unwrap());
    lab.start_ha("advertisement_interval_ms = 300");
    let mut seqs = Vec::new();
    for _ in 0..5 {
        let s = next_advert(&cap, WAIT).expect("a periodic advertisement");
        check_home_agent_advert(&s, 1);
        assert_eq!(s.ip.dst, ALL_SYSTEMS);
        assert_eq!(s.eth_dst, [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01], "224.0.0.1 on Ethernet");
        seqs.push(s.adv.mobility.sequence);
    }
    assert_eq!(seqs, [0, 1, 2, 3, 4], "RFC 5944 2.3.2: 0 first, then one more each time");
    let d = lab.wait_dataplane("5 advertisements counted", |d| d.advertisements_sent >= 5);
    assert_eq!(d.solicited_advertisements, 0);

    // RFC 1256 5.1: on stopping, the last advertisement again with Lifetime 0.
    lab.stop_ha();
    let mut last = *seqs.last().unwrap();
    let fin = loop {
        let s = next_advert(&cap, WAIT).expect("the final advertisement");
        if s.adv.lifetime == 0 {
            break s;
        }
        last = s.adv.mobility.sequence;
    };
    check_home_agent_advert(&fin, 0);
    assert_eq!(fin.adv.mobility.sequence, last, "identical to the previous one");
}

#[test]
fn solicitations_to_mobile_agents_and_to_broadcast_are_answered_within_the_response_bound() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new("s");
    let cap = lab.in_ns(&lab.lan, || open_packet_socket("eth-home").unwrap());
    // Unsolicited advertisements far apart (the first capped at 16 s by RFC 1256), so
    // every advertisement seen below answers a solicitation.
    lab.start_ha("advertisement_interval_ms = 60000");
    let first = next_advert(&cap, WAIT).expect("the first advertisement");
    assert_eq!(first.adv.mobility.sequence, 0);
    let sock = solicitor(&lab);
    // RFC 1256 5.1: the answer comes within MAX_RESPONSE_DELAY.
    let bound = MAX_RESPONSE_DELAY;

    // The mobile node at home solicits the Mobile-Agents group (RFC 5944 2.3), twice at
    // once: the second is within the solicitor's second, so rate-limited.
    send(&sock, &solicitation(MN_HOME, MOBILE_AGENTS, 1, false));
    send(&sock, &solicitation(MN_HOME, MOBILE_AGENTS, 1, false));
    let s = next_advert(&cap, bound).expect("an answer to the 224.0.0.11 solicitation");
    check_home_agent_advert(&s, 180);
    assert_eq!((s.ip.dst, s.adv.mobility.sequence), (ALL_SYSTEMS, 1));

    // A broadcast solicitation from a source that is no neighbour gets a broadcast answer.
    send(&sock, &solicitation(OFF_LINK, Ipv4Addr::BROADCAST, 1, false));
    let s = next_advert(&cap, bound).expect("an answer to the broadcast solicitation");
    check_home_agent_advert(&s, 180);
    assert_eq!((s.ip.dst, s.eth_dst, s.adv.mobility.sequence), (Ipv4Addr::BROADCAST, [0xff; 6], 2));
    let d = lab.wait_dataplane("2 solicitations answered", |d| d.solicitations_answered >= 2);
    assert_eq!((d.solicitations_received, d.solicited_advertisements, d.solicitations_rate_limited), (3, 2, 1));

    // A bad checksum and TTL 2: refused.
    send(&sock, &solicitation(MN_HOME, MOBILE_AGENTS, 1, true));
    send(&sock, &solicitation(OFF_LINK, MOBILE_AGENTS, 2, false));
    let d = lab.wait_dataplane("5 solicitations read", |d| d.solicitations_received >= 5);
    assert_eq!((d.solicitations_answered, d.solicitations_rate_limited, d.solicitations_malformed), (2, 1, 2), "{d:?}");
    assert!(next_advert(&cap, Duration::from_millis(500)).is_none(), "nothing answers those");
    assert_eq!(lab.stats().dataplane.unwrap().advertisements_sent, 3);
}
