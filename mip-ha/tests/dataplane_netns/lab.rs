//! A three-namespace lab for the data-plane tests, removed by its guard even on panic.
//!
//! ```text
//!  P-ha (mip-ha)            P-rtr (ip_forward=1)                P-coa
//!  eth0 198.18.0.1/24 ===== eth-home 198.18.0.254/24
//!  MAC 02:00:5e:12:00:01    MAC 02:00:5e:12:00:fe
//!                           eth-f1 198.18.1.254/24 ========== eth0 198.18.1.1/24 (+ .2)
//! ```
//! The home address 198.18.0.10 belongs to nobody on the home link: while bound, only
//! the home agent's proxy ARP answers for it. Sockets are opened inside a namespace by
//! a thread that setns(2)s into it, and then used from anywhere.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use mip_core::auth::{append_auth_extension, AuthAlgorithm, ReplayMethod, SecurityAssociation};
use mip_core::time::Time;
use mip_core::wire::{ext_type, RegistrationFlags, RegistrationReply, RegistrationReplyRepr, RegistrationRequestRepr};
use mip_ha::control::{ControlOk, ControlRequest, ControlResponse, StatsReport, BindingInfo};
use nix::sched::{setns, CloneFlags};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

pub const HA: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const RTR_HOME: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);
pub const HOME: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
pub const COA: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
pub const OTHER: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
pub const HA_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x12, 0x00, 0x01];
pub const RTR_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x12, 0x00, 0xfe];
pub const MN_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x12, 0x00, 0x0a];
pub const WAIT: Duration = Duration::from_secs(10);
const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f";

/// True when we may build namespaces (root with `ip`); tests print why they skip.
pub fn can_run() -> bool {
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

fn mac(m: [u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// The namespaces and the daemon; `Drop` kills the daemon and deletes the namespaces.
pub struct Lab {
    pub ha: String,
    pub rtr: String,
    pub coa: String,
    dir: tempfile::TempDir,
    daemon: Option<Child>,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Lab {
    /// Namespaces and links; the daemon is started by [`start_ha`](Self::start_ha).
    pub fn new(tag: &str) -> Lab {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let p = format!("sdp{}{}{n}", std::process::id(), tag);
        let lab = Lab {
            ha: format!("{p}-ha"),
            rtr: format!("{p}-rtr"),
            coa: format!("{p}-coa"),
            dir: tempfile::tempdir().unwrap(),
            daemon: None,
        };
        for ns in [&lab.ha, &lab.rtr, &lab.coa] {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            sysctl(ns, "net.ipv4.conf.all.rp_filter", "0");
            sysctl(ns, "net.ipv4.conf.default.rp_filter", "0");
        }
        ip(&["link", "add", "eth0", "netns", &lab.ha, "type", "veth", "peer", "name", "eth-home", "netns", &lab.rtr]);
        ip(&["link", "add", "eth0", "netns", &lab.coa, "type", "veth", "peer", "name", "eth-f1", "netns", &lab.rtr]);
        ip(&["-n", &lab.ha, "link", "set", "eth0", "address", &mac(HA_MAC)]);
        ip(&["-n", &lab.rtr, "link", "set", "eth-home", "address", &mac(RTR_MAC)]);
        for (ns, dev, addr) in [
            (&lab.ha, "eth0", "198.18.0.1/24"),
            (&lab.rtr, "eth-home", "198.18.0.254/24"),
            (&lab.rtr, "eth-f1", "198.18.1.254/24"),
            (&lab.coa, "eth0", "198.18.1.1/24"),
            (&lab.coa, "eth0", "198.18.1.2/24"),
        ] {
            ip(&["-n", ns, "addr", "add", addr, "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        ip(&["-n", &lab.ha, "route", "add", "default", "via", "198.18.0.254"]);
        ip(&["-n", &lab.coa, "route", "add", "default", "via", "198.18.1.254"]);
        sysctl(&lab.rtr, "net.ipv4.ip_forward", "1");
        sysctl(&lab.ha, "net.ipv4.ip_forward", "0");
        lab
    }

    pub fn control_path(&self) -> PathBuf {
        self.dir.path().join("ha.sock")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("ha.log")
    }

    /// Writes the configuration and starts mip-ha in the home agent's namespace;
    /// returns when its control socket answers.
    pub fn start_ha(&mut self, extra: &str) {
        let config = self.dir.path().join("ha.toml");
        let text = format!(
            "[home_agent]\naddress = \"198.18.0.1\"\nprefix_len = 24\nlisten = \"0.0.0.0:434\"\n\
             control_socket = \"{}\"\nhome_interface = \"eth0\"\n{extra}\n\
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

    /// Runs `f` on a thread inside namespace `ns`.
    pub fn in_ns<T: Send>(&self, ns: &str, f: impl FnOnce() -> T + Send) -> T {
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

    pub fn ask(&self, req: ControlRequest) -> ControlResponse {
        let mut s = UnixStream::connect(self.control_path()).expect("control socket");
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.write_all(req.to_line().as_bytes()).unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    pub fn stats(&self) -> StatsReport {
        match self.ask(ControlRequest::Stats) {
            ControlResponse::Ok(ControlOk::Stats(s)) => s,
            other => panic!("{other:?}"),
        }
    }

    pub fn bindings(&self) -> Vec<BindingInfo> {
        match self.ask(ControlRequest::BindingList) {
            ControlResponse::Ok(ControlOk::Bindings(b)) => b,
            other => panic!("{other:?}"),
        }
    }

    /// Polls a data-plane drop counter until it reaches `n`.
    pub fn wait_dropped(&self, reason: &str, n: u64) {
        wait_for(&format!("{n} drop(s) '{reason}'"), || {
            let s = self.stats();
            (s.dataplane.as_ref().map(|d| d.dropped(reason)) >= Some(n)).then_some(())
        });
    }

    /// Registers HOME at COA with `flags` (T always added) and `lifetime`, from the
    /// care-of namespace; returns the reply code.
    pub fn register(&self, flags: RegistrationFlags, lifetime: u16) -> u8 {
        let sa = SecurityAssociation {
            spi: 256,
            algorithm: AuthAlgorithm::HmacMd5,
            key: hex::decode(KEY_HEX).unwrap(),
            replay: ReplayMethod::Timestamp,
        };
        let mut req = RegistrationRequestRepr {
            flags: flags.with(RegistrationFlags::T),
            lifetime,
            home_address: HOME,
            home_agent: HA,
            care_of_address: COA,
            identification: Time::from_system(std::time::SystemTime::now()).to_ntp(),
        }
        .to_bytes();
        append_auth_extension(&mut req, ext_type::MOBILE_HOME_AUTH, &sa);
        let udp = self.in_ns(&self.coa, || UdpSocket::bind("198.18.1.1:0").unwrap());
        udp.set_read_timeout(Some(WAIT)).unwrap();
        udp.send_to(&req, SocketAddrV4::new(HA, 434)).unwrap();
        let mut buf = [0u8; 1500];
        let (n, _) = udp.recv_from(&mut buf).expect("registration reply");
        let reply = RegistrationReplyRepr::parse(&RegistrationReply::new_checked(&buf[..n]).unwrap()).unwrap();
        u8::from(reply.code)
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
        for ns in [&self.ha, &self.rtr, &self.coa] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Polls `f` until it gives a value; panics after [`WAIT`].
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads from `sock` until `pick` accepts a packet; panics after [`WAIT`].
pub fn recv_until<T>(sock: &Socket, what: &str, mut pick: impl FnMut(&[u8]) -> Option<T>) -> T {
    use std::io::Read;
    let deadline = Instant::now() + WAIT;
    sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut buf = vec![0u8; 65_536];
    loop {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        if let Ok(n) = (&*sock).read(&mut buf) {
            if let Some(v) = pick(&buf[..n]) {
                return v;
            }
        }
    }
}

pub fn raw_socket(protocol: i32) -> Socket {
    Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(protocol))).expect("raw socket")
}

/// Sends a whole IPv4 packet (IPPROTO_RAW: header included).
pub fn send_raw(sock: &Socket, dst: Ipv4Addr, pkt: &[u8]) {
    sock.send_to(pkt, &SockAddr::from(SocketAddrV4::new(dst, 0))).expect("raw send");
}
