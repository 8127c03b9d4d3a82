//! The namespace topology of `netns.rs`, its guard, and socket helpers.

use std::net::SocketAddrV4;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mip_core::time::Time;
use mip_fa::MacAddr;
use nix::sys::socket::{
    self, sockopt, AddressFamily, LinkAddr, MsgFlags, SockFlag, SockProtocol, SockType,
};

use crate::common::{mn_ha_sa, COA, HA, HOME};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Runs `f` on a thread inside namespace `ns`; sockets it opens stay in that namespace.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("namespace file");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("namespace thread")
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Three namespaces, the foreign agent daemon and a home agent; all removed on drop.
pub struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    fa: Option<Child>,
    ha_stop: Arc<AtomicBool>,
    ha: Option<JoinHandle<()>>,
    dir: tempfile::TempDir,
    pub control_socket: PathBuf,
}

impl Lab {
    /// Builds the topology; `None` (test skipped) where namespaces cannot be made and
    /// this is not CI.
    pub fn start(tag: &str) -> Option<Lab> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let prefix = format!(
            "{tag}{:05}{}",
            std::process::id() % 100_000,
            char::from(b'a' + (n % 26) as u8)
        );
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut lab = Lab {
            control_socket: dir.path().join("fa.sock"),
            prefix,
            namespaces: Vec::new(),
            fa: None,
            ha_stop: Arc::new(AtomicBool::new(false)),
            ha: None,
            dir,
        };
        let first = lab.ns("mn");
        if let Err(e) = run(&["ip", "netns", "add", &first]) {
            assert!(
                std::env::var_os("CI").is_none(),
                "network namespaces are needed under CI: {e}"
            );
            eprintln!("skipped: cannot create a network namespace ({e}); run as root");
            return None;
        }
        lab.namespaces.push(first);
        if let Err(e) = lab.build() {
            panic!("building the lab: {e}");
        }
        Some(lab)
    }

    pub fn ns(&self, short: &str) -> String {
        format!("{}-{short}", self.prefix)
    }

    fn exec(&self, short: &str, args: &[&str]) -> Result<(), String> {
        let ns = self.ns(short);
        let mut all = vec!["ip", "netns", "exec", ns.as_str()];
        all.extend_from_slice(args);
        run(&all)
    }

    fn sysctl(&self, short: &str, path: &str, value: &str) -> Result<(), String> {
        self.exec(
            short,
            &["sh", "-c", &format!("echo {value} > /proc/sys/{path}")],
        )
    }

    fn build(&mut self) -> Result<(), String> {
        for short in ["fa", "ha"] {
            let ns = self.ns(short);
            run(&["ip", "netns", "add", &ns])?;
            self.namespaces.push(ns);
        }
        let p = self.prefix.clone();
        let (mn, fa, ha) = (self.ns("mn"), self.ns("fa"), self.ns("ha"));
        // Visitor link mn.eth0 <-> fa.eth0, backbone fa.eth1 <-> ha.eth0.
        run(&[
            "ip",
            "link",
            "add",
            &format!("{p}a"),
            "type",
            "veth",
            "peer",
            "name",
            &format!("{p}b"),
        ])?;
        run(&[
            "ip",
            "link",
            "set",
            &format!("{p}a"),
            "netns",
            &mn,
            "name",
            "eth0",
        ])?;
        run(&[
            "ip",
            "link",
            "set",
            &format!("{p}b"),
            "netns",
            &fa,
            "name",
            "eth0",
        ])?;
        run(&[
            "ip",
            "link",
            "add",
            &format!("{p}c"),
            "type",
            "veth",
            "peer",
            "name",
            &format!("{p}d"),
        ])?;
        run(&[
            "ip",
            "link",
            "set",
            &format!("{p}c"),
            "netns",
            &fa,
            "name",
            "eth1",
        ])?;
        run(&[
            "ip",
            "link",
            "set",
            &format!("{p}d"),
            "netns",
            &ha,
            "name",
            "eth0",
        ])?;
        for (short, ifs) in [
            ("mn", &["lo", "eth0"][..]),
            ("fa", &["lo", "eth0", "eth1"][..]),
            ("ha", &["lo", "eth0"][..]),
        ] {
            // The home address appears on a foreign link: no reverse-path filtering.
            for name in ["all", "default"].iter().chain(ifs.iter()) {
                self.sysctl(short, &format!("net/ipv4/conf/{name}/rp_filter"), "0")?;
            }
            for i in ifs {
                self.exec(short, &["ip", "link", "set", i, "up"])?;
            }
        }
        self.exec(
            "mn",
            &["ip", "addr", "add", "198.18.0.10/32", "dev", "eth0"],
        )?;
        self.exec(
            "mn",
            &[
                "ip",
                "route",
                "add",
                "default",
                "via",
                "198.18.1.1",
                "dev",
                "eth0",
                "onlink",
                "src",
                "198.18.0.10",
            ],
        )?;
        self.exec("fa", &["ip", "addr", "add", "198.18.1.1/24", "dev", "eth0"])?;
        self.exec("fa", &["ip", "addr", "add", "198.18.9.1/24", "dev", "eth1"])?;
        self.exec(
            "fa",
            &["ip", "route", "add", "default", "via", "198.18.9.2"],
        )?;
        self.exec("ha", &["ip", "addr", "add", "198.18.9.2/24", "dev", "eth0"])?;
        self.exec("ha", &["ip", "addr", "add", "198.18.0.1/32", "dev", "eth0"])?;
        self.exec(
            "ha",
            &["ip", "route", "add", "198.18.1.0/24", "via", "198.18.9.1"],
        )?;
        self.start_home_agent();
        self.start_foreign_agent()?;
        Ok(())
    }

    fn start_home_agent(&mut self) {
        let socket = in_netns(&self.ns("ha"), || {
            let s =
                std::net::UdpSocket::bind(SocketAddrV4::new(HA, 434)).expect("home agent socket");
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            s
        });
        let mut config = mip_ha::HomeAgentConfig::new(HA, 24);
        config.mobile_nodes.push(mip_ha::config::MobileNodeEntry {
            home_address: Some(HOME),
            nai: None,
            security_associations: vec![mn_ha_sa()],
        });
        let stop = Arc::clone(&self.ha_stop);
        self.ha = Some(std::thread::spawn(move || {
            let mut ha = mip_ha::HomeAgent::new(config, 1);
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, std::net::SocketAddr::V4(from))) = socket.recv_from(&mut buf) {
                    ha.handle_datagram(
                        Time::from_system(std::time::SystemTime::now()),
                        from,
                        &buf[..n],
                    );
                }
                while let Some(tx) = ha.poll_transmit() {
                    let _ = socket.send_to(&tx.payload, tx.destination);
                }
            }
        }));
    }

    fn start_foreign_agent(&mut self) -> Result<(), String> {
        let config = self.dir.path().join("fa.toml");
        let text = format!(
            "[foreign_agent]\ninterface = \"eth0\"\ncare_of_address = \"{COA}\"\nprefix_len = 24\n\
             control_socket = \"{}\"\nmax_lifetime = 600\n\n[advertisement]\ninterval_ms = 300\nlifetime = 1\n",
            self.control_socket.display()
        );
        std::fs::write(&config, text).map_err(|e| e.to_string())?;
        let log =
            std::fs::File::create(self.dir.path().join("fa.log")).map_err(|e| e.to_string())?;
        let ns = self.ns("fa");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns,
                env!("CARGO_BIN_EXE_mip-fa"),
                "--config",
            ])
            .arg(&config)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("mip-fa: {e}"))?;
        self.fa = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&self.control_socket).is_err() {
            if let Some(Ok(Some(status))) = self.fa.as_mut().map(|c| c.try_wait()) {
                return Err(format!("mip-fa exited: {status}; log:\n{}", self.log()));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "mip-fa did not open its control socket; log:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("fa.log")).unwrap_or_default()
    }

    /// The MAC of `iface` in namespace `short` (read through `ip netns exec`, which
    /// mounts that namespace's /sys).
    pub fn mac(&self, short: &str, iface: &str) -> MacAddr {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns(short),
                "cat",
                &format!("/sys/class/net/{iface}/address"),
            ])
            .output()
            .expect("ip netns exec");
        mip_fa::sys::parse_mac(String::from_utf8_lossy(&out.stdout).trim()).expect("a MAC address")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut child) = self.fa.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.ha_stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.ha.take() {
            let _ = h.join();
        }
        if std::thread::panicking() {
            eprintln!("---- mip-fa log ----\n{}", self.log());
        }
        for ns in self.namespaces.drain(..).rev() {
            if let Err(e) = run(&["ip", "netns", "del", &ns]) {
                eprintln!("cannot remove namespace {ns}: {e}");
            }
        }
    }
}

/// An AF_PACKET socket seeing every frame of eth0 in the namespace it was opened in.
pub struct Capture {
    fd: OwnedFd,
    ifindex: usize,
}

impl Capture {
    pub fn open() -> Capture {
        let fd = socket::socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::EthAll,
        )
        .expect("AF_PACKET socket");
        socket::setsockopt(
            &fd,
            sockopt::ReceiveTimeout,
            &nix::sys::time::TimeVal::new(0, 100_000),
        )
        .unwrap();
        let ifindex = nix::net::if_::if_nametoindex("eth0").expect("eth0") as usize;
        Capture { fd, ifindex }
    }

    /// The first incoming eth0 frame for which `f` says something, within `limit`.
    pub fn wait<T>(&self, limit: Duration, mut f: impl FnMut(&[u8]) -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + limit;
        let mut buf = vec![0u8; 65_536];
        while Instant::now() < deadline {
            let Ok((n, Some(addr))) = socket::recvfrom::<LinkAddr>(self.fd.as_raw_fd(), &mut buf)
            else {
                continue;
            };
            if addr.ifindex() != self.ifindex || addr.pkttype() == 4 {
                continue;
            }
            if let Some(v) = f(&buf[..n]) {
                return Some(v);
            }
        }
        None
    }
}

/// IPPROTO_RAW: send whole IPv4 packets.
pub fn raw_ip_socket() -> socket2::Socket {
    socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::RAW,
        Some(socket2::Protocol::from(255)),
    )
    .expect("raw IP socket")
}

/// Receives IP protocol `protocol` (IP header included), 100 ms receive timeout.
pub fn raw_receive_socket(protocol: i32) -> socket2::Socket {
    let s = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::RAW,
        Some(socket2::Protocol::from(protocol)),
    )
    .expect("raw socket");
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    s
}

/// The first packet on `s` for which `f` says something, within `limit`.
pub fn recv_until<T>(
    s: &socket2::Socket,
    limit: Duration,
    mut f: impl FnMut(&[u8]) -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + limit;
    let mut buf = vec![0u8; 65_536];
    while Instant::now() < deadline {
        if let Ok(n) = socket::recv(s.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            if let Some(v) = f(&buf[..n]) {
                return Some(v);
            }
        }
    }
    None
}
