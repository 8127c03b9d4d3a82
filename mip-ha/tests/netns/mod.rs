//! The namespace harness shared by mip-ha's real-packet tests (`*_netns.rs`): a set of
//! network namespaces with per-process unique names, removed by its guard even on panic;
//! veth, address and sysctl helpers; the mip-ha daemon started inside a namespace with
//! a configuration in a tempdir, asked over its control socket, its log's tail printed
//! on panic, and killed on drop; [`in_ns`] to open sockets inside a namespace; bounded
//! [`wait_for`]. Each test file keeps its own topology and checks.
//!
//! Include it from a test crate's root with `mod netns;` (every file in `tests/` is a
//! crate of its own), and start each test with `if !can_run() { return; }`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::ops::{Deref, DerefMut};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use mip_core::auth::{AuthAlgorithm, ReplayMethod, SecurityAssociation};
use mip_ha::control::{BindingInfo, ControlOk, ControlRequest, ControlResponse, StatsReport};
use mip_ha::dataplane::DataplaneReport;
use nix::sched::{setns, CloneFlags};

/// The bound on every wait.
pub const WAIT: Duration = Duration::from_secs(10);
/// The mobile node's key (SPI 256, HMAC-MD5) in [`home_agent_config`].
pub const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f";
/// Lines of the daemon's log printed when a test panics.
const LOG_TAIL: usize = 60;

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

/// Runs `ip args`; panics with its stderr when it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// Sets `key` to `value` inside namespace `ns`.
pub fn sysctl(ns: &str, key: &str, value: &str) {
    ip(&["netns", "exec", ns, "sysctl", "-qw", &format!("{key}={value}")]);
}

/// Turns reverse-path filtering off in `ns` (tunnelled and spoofed sources get through).
pub fn rp_filter_off(ns: &str) {
    sysctl(ns, "net.ipv4.conf.all.rp_filter", "0");
    sysctl(ns, "net.ipv4.conf.default.rp_filter", "0");
}

/// `02:00:5e:...` as `ip link` takes it.
pub fn mac(m: [u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// A veth pair: `a_dev` in namespace `a_ns`, its peer `b_dev` in `b_ns`.
pub fn veth(a_ns: &str, a_dev: &str, b_ns: &str, b_dev: &str) {
    ip(&["link", "add", a_dev, "netns", a_ns, "type", "veth", "peer", "name", b_dev, "netns", b_ns]);
}

/// Sets the MAC of `dev` in `ns`.
pub fn set_mac(ns: &str, dev: &str, m: [u8; 6]) {
    ip(&["-n", ns, "link", "set", dev, "address", &mac(m)]);
}

/// For each `(ns, dev, addr)` in order: adds `addr` (with its prefix length) to `dev`
/// in `ns` and brings the link up.
pub fn addrs_up(list: &[(&str, &str, &str)]) {
    for (ns, dev, addr) in list {
        ip(&["-n", ns, "addr", "add", addr, "dev", dev]);
        ip(&["-n", ns, "link", "set", dev, "up"]);
    }
}

/// A default route in `ns` via `gateway`.
pub fn default_route(ns: &str, gateway: &str) {
    ip(&["-n", ns, "route", "add", "default", "via", gateway]);
}

/// Runs `f` on a thread inside namespace `ns`; sockets it opens stay in `ns` and may be
/// used from anywhere.
pub fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
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

/// The mip-ha configuration every namespace test starts from: the home agent
/// 198.18.0.1/24 on `eth0`, listening on port 434, its control socket at `control`, and
/// the mobile node 198.18.0.10 with [`KEY_HEX`] at SPI 256. `middle` goes between the
/// `[home_agent]` keys and `[[mobile_node]]`: more keys, then any other sections.
pub fn home_agent_config(control: &Path, middle: &str) -> String {
    format!(
        "[home_agent]\naddress = \"198.18.0.1\"\nprefix_len = 24\nlisten = \"0.0.0.0:434\"\n\
         control_socket = \"{}\"\nhome_interface = \"eth0\"\n{middle}\
         [[mobile_node]]\nhome_address = \"198.18.0.10\"\n[[mobile_node.sa]]\nspi = 256\nkey = \"{KEY_HEX}\"\n",
        control.display()
    )
}

/// The mobile node's security association of [`home_agent_config`].
pub fn mn_sa() -> SecurityAssociation {
    SecurityAssociation {
        spi: 256,
        algorithm: AuthAlgorithm::HmacMd5,
        key: hex::decode(KEY_HEX).unwrap(),
        replay: ReplayMethod::Timestamp,
    }
}

/// The mip-ha daemon running in a namespace, its configuration, control socket and log
/// in a tempdir. `Drop` kills it and, when the test is panicking, prints its log's tail.
pub struct MipHa {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl MipHa {
    /// Writes the configuration `config(control socket path)` and starts mip-ha inside
    /// `ns` (debug log); returns when its control socket answers.
    pub fn start(ns: &str, config: impl FnOnce(&Path) -> String) -> MipHa {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("ha.toml");
        std::fs::write(&config_path, config(&dir.path().join("ha.sock"))).unwrap();
        let log = File::create(dir.path().join("ha.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_mip-ha"), "--config"])
            .arg(&config_path)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start mip-ha");
        // The guard exists before the wait, so a daemon that never answers is killed and
        // its log shown.
        let ha = MipHa { dir, child: Some(child) };
        wait_for("the control socket", || UnixStream::connect(ha.control_path()).ok());
        ha
    }

    pub fn control_path(&self) -> PathBuf {
        self.dir.path().join("ha.sock")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("ha.log")
    }

    /// One request over the control socket, its one-line answer.
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

    /// SIGTERM, as an operator stops the daemon; waits (bounded) for it to exit.
    pub fn terminate(&mut self) {
        let child = self.child.as_mut().expect("running");
        // `ip netns exec` execs the daemon, so the child is mip-ha itself.
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + WAIT;
        while child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "mip-ha did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = None;
    }
}

impl Drop for MipHa {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            if let Ok(log) = std::fs::read_to_string(self.log_path()) {
                let tail: Vec<&str> = log.lines().rev().take(LOG_TAIL).collect();
                eprintln!("--- mip-ha log (last lines) ---");
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Network namespaces named `{base}{pid}{tag}{n}-{role}`: unique per process and per
/// set. `Drop` deletes every one of them, also on panic.
pub struct Namespaces {
    prefix: String,
    names: Vec<String>,
}

impl Namespaces {
    pub fn new(base: &str, tag: &str) -> Namespaces {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Namespaces { prefix: format!("{base}{}{tag}{n}", std::process::id()), names: Vec::new() }
    }

    /// Creates namespace `{prefix}-{role}` with `lo` up; returns its name. It is deleted
    /// with the set, even when creating it fails half-way.
    pub fn add(&mut self, role: &str) -> String {
        let ns = format!("{}-{role}", self.prefix);
        self.names.push(ns.clone());
        ip(&["netns", "add", &ns]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ns
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A test file's topology `T` (its namespaces' names, derefed to: `lab.ha`), the
/// namespaces and the daemon. Dropping it stops the daemon (printing its log's tail on
/// panic), then deletes the namespaces. Test files add their own methods with
/// `impl NetLab<TheirTopology>`.
pub struct NetLab<T> {
    // Dropped in declaration order: the daemon first.
    daemon: Option<MipHa>,
    namespaces: Namespaces,
    topology: T,
}

impl<T> NetLab<T> {
    /// Namespaces `{base}{pid}{tag}{n}-*`, made and wired up by `build`; a panic in
    /// `build` deletes those made so far.
    pub fn build(base: &str, tag: &str, build: impl FnOnce(&mut Namespaces) -> T) -> NetLab<T> {
        let mut namespaces = Namespaces::new(base, tag);
        let topology = build(&mut namespaces);
        NetLab { daemon: None, namespaces, topology }
    }

    /// Runs `f` on a thread inside namespace `ns` (see [`in_ns`]).
    pub fn in_ns<U: Send>(&self, ns: &str, f: impl FnOnce() -> U + Send) -> U {
        in_ns(ns, f)
    }

    /// Starts mip-ha in `ns` (see [`MipHa::start`]); the lab stops it.
    pub fn start_daemon(&mut self, ns: &str, config: impl FnOnce(&Path) -> String) {
        self.daemon = Some(MipHa::start(ns, config));
    }

    pub fn daemon(&self) -> &MipHa {
        self.daemon.as_ref().expect("mip-ha started")
    }

    pub fn daemon_mut(&mut self) -> &mut MipHa {
        self.daemon.as_mut().expect("mip-ha started")
    }

    pub fn ask(&self, req: ControlRequest) -> ControlResponse {
        self.daemon().ask(req)
    }

    pub fn stats(&self) -> StatsReport {
        self.daemon().stats()
    }

    pub fn bindings(&self) -> Vec<BindingInfo> {
        self.daemon().bindings()
    }

    /// Polls the data-plane counters until `done` accepts them.
    pub fn wait_dataplane(&self, what: &str, done: impl Fn(&DataplaneReport) -> bool) -> DataplaneReport {
        wait_for(what, || self.stats().dataplane.map(|d| *d).filter(|d| done(d)))
    }
}

impl<T> Deref for NetLab<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.topology
    }
}

impl<T> DerefMut for NetLab<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.topology
    }
}
