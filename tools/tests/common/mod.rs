//! Harness of the loopback end-to-end tests: a `mip-ha` child process with its own
//! configuration, port and control socket; the `mip-mn` and `ha-admin` binaries run as
//! processes; raw registration messages built with mip-core.
//!
//! Finding `mip-ha`: cargo only gives a test the binaries of its own package
//! (`CARGO_BIN_EXE_*`), and a dev-dependency on mip-ha builds its library, not its
//! binary. So the harness runs `cargo build -p mip-ha --bin mip-ha` once per test
//! process (a no-op when it is current; same cargo, same target directory and profile
//! as the test) and takes the binary next to `ha-admin`. Cargo releases its build lock
//! before it runs tests, so the nested build does not wait on the outer one.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mip_core::auth::{
    append_auth_extension, verify_authenticator, AuthAlgorithm, ReplayMethod, SecurityAssociation,
};
use mip_core::wire::{
    ext_type, Extension, RegistrationFlags, RegistrationReply, RegistrationReplyRepr,
    RegistrationRequestRepr, AUTH_EXT_COVERED_HEADER,
};
use mip_ha::control::{BindingInfo, ControlOk, ControlRequest, ControlResponse, StatsReport};

/// Root, the daemons and the machine to itself: what the lab tests need first.
pub mod lab;

/// The home agent's address as mip-mn puts it in requests: the address it sends to.
pub const HA: Ipv4Addr = Ipv4Addr::LOCALHOST;
pub const HOME1: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
pub const HOME2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
pub const COA1: Ipv4Addr = Ipv4Addr::new(198, 19, 1, 10);
pub const COA2: Ipv4Addr = Ipv4Addr::new(198, 19, 1, 11);
/// The care-of address of requests the tests build themselves.
pub const COA_RAW: Ipv4Addr = Ipv4Addr::new(198, 19, 9, 9);
pub const NAI1: &str = "mn1@sidmip.example";
pub const KEY1: &str = "6d69702d68612d6c61622d6b65792d31";
pub const KEY2: &str = "6d69702d68612d6c61622d6b65792d32";
pub const WRONG_KEY: &str = "77726f6e672d6b65792d77726f6e6721";
/// Every wait in these tests is bounded by this.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub fn ha_admin_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ha-admin"))
}

pub fn mip_mn_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mip-mn"))
}

pub fn mip_ha_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = ha_admin_bin().parent().expect("ha-admin has a directory").to_path_buf();
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args(["build", "--quiet", "-p", "mip-ha", "--bin", "mip-ha"]);
        if dir.file_name().and_then(|n| n.to_str()) == Some("release") {
            cargo.arg("--release");
        }
        let out = cargo.current_dir(env!("CARGO_MANIFEST_DIR")).output().expect("cannot run cargo");
        assert!(out.status.success(), "building mip-ha failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let bin = dir.join("mip-ha");
        assert!(bin.is_file(), "mip-ha was built but is not at {}", bin.display());
        bin
    })
    .clone()
}

pub fn sa(spi: u32, key_hex: &str, algorithm: AuthAlgorithm, replay: ReplayMethod) -> SecurityAssociation {
    SecurityAssociation { spi, algorithm, key: hex::decode(key_hex).unwrap(), replay }
}

/// The association of mobile node 1 (HMAC-MD5, timestamps).
pub fn sa1() -> SecurityAssociation {
    sa(256, KEY1, AuthAlgorithm::HmacMd5, ReplayMethod::Timestamp)
}

pub fn config_text(listen: SocketAddrV4, socket: &Path, max_lifetime: u16) -> String {
    format!(
        r#"[home_agent]
address = "{HA}"
prefix_len = 8
listen = "{listen}"
control_socket = "{socket}"
max_lifetime = {max_lifetime}

[[mobile_node]]
home_address = "{HOME1}"
nai = "{NAI1}"
[[mobile_node.sa]]
spi = 256
algorithm = "hmac-md5"
replay = "timestamp"
key = "{KEY1}"

[[mobile_node]]
home_address = "{HOME2}"
[[mobile_node.sa]]
spi = 257
algorithm = "keyed-md5"
replay = "nonce"
key = "{KEY2}"
"#,
        socket = socket.display()
    )
}

/// A child process that is killed when the guard goes, whatever happened.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a finished child printed.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Runs `cmd` to completion within [`DEADLINE`], output through files (no pipe can fill).
pub fn run_bounded(mut cmd: Command, scratch: &Path) -> Run {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let out_path = scratch.join(format!("run{n}.out"));
    let err_path = scratch.join(format!("run{n}.err"));
    cmd.stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap());
    let mut child = ChildGuard(cmd.spawn().unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}")));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < DEADLINE, "{cmd:?} still running after {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        status,
        stdout: std::fs::read_to_string(out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(err_path).unwrap_or_default(),
    }
}

/// Polls `f` until it returns `Some`, or panics after [`DEADLINE`] with `what`.
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `mip-ha` with its own temporary directory, port and control socket.
pub struct Daemon {
    child: ChildGuard,
    pub dir: tempfile::TempDir,
    pub addr: SocketAddrV4,
    pub socket: PathBuf,
    pub config: PathBuf,
    log: PathBuf,
}

impl Daemon {
    pub fn start(max_lifetime: u16) -> Daemon {
        Self::start_on(Ipv4Addr::LOCALHOST, max_lifetime)
    }

    /// A daemon listening on `ip` (0.0.0.0 to receive broadcasts too).
    pub fn start_on(ip: Ipv4Addr, max_lifetime: u16) -> Daemon {
        let bin = mip_ha_bin();
        let dir = tempfile::Builder::new().prefix("mip-ha-e2e").tempdir().unwrap();
        // A free port can be taken by someone else before the daemon binds it: retry.
        for attempt in 0..5 {
            let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let socket = dir.path().join("ha.sock");
            let config = dir.path().join("ha.toml");
            let listen = SocketAddrV4::new(ip, port);
            std::fs::write(&config, config_text(listen, &socket, max_lifetime)).unwrap();
            let log = dir.path().join(format!("mip-ha.{attempt}.log"));
            let log_file = File::create(&log).unwrap();
            let child = Command::new(&bin)
                .arg("--config")
                .arg(&config)
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file)
                .spawn()
                .expect("cannot start mip-ha");
            let mut child = ChildGuard(child);
            let up = wait_for("mip-ha to come up", || {
                if child.0.try_wait().unwrap().is_some() {
                    return Some(false);
                }
                UnixStream::connect(&socket).ok().map(|_| true)
            });
            if up {
                let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
                return Daemon { child, dir, addr, socket, config, log };
            }
            eprintln!(
                "mip-ha exited at start (attempt {attempt}):\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        panic!("mip-ha would not start");
    }

    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.0.try_wait().unwrap().is_none()
    }

    /// Waits for the daemon to exit (after a signal).
    pub fn wait_exit(&mut self) -> ExitStatus {
        wait_for("mip-ha to exit", || self.child.0.try_wait().unwrap())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn admin(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(ha_admin_bin());
        cmd.arg("--socket").arg(&self.socket).args(args);
        run_bounded(cmd, self.dir.path())
    }

    /// `mip-mn` aimed at this daemon: `verb` is register/deregister, then extra args.
    pub fn mn(&self, verb: &str, args: &[&str]) -> Run {
        let mut cmd = Command::new(mip_mn_bin());
        cmd.arg(verb).arg("--home-agent").arg(self.addr.to_string()).args(args);
        if verb == "register" {
            cmd.arg("--once");
        }
        cmd.args(["--timeout", "10", "--json"]);
        run_bounded(cmd, self.dir.path())
    }

    /// mip-mn for mobile node 1 (HMAC-MD5, timestamps, NAI) at COA1.
    pub fn mn1(&self, verb: &str, extra: &[&str]) -> Run {
        let mut args =
            vec!["--home-address", "198.18.0.10", "--care-of", "198.19.1.10", "--spi", "256", "--nai", NAI1];
        if !extra.contains(&"--key") {
            args.extend(["--key", KEY1]);
        }
        args.extend(extra);
        self.mn(verb, &args)
    }

    /// `ha-admin binding list --json`, parsed.
    pub fn bindings(&self) -> Vec<BindingInfo> {
        let run = self.admin(&["binding", "list", "--json"]);
        assert_eq!(run.code(), Some(0), "ha-admin binding list: {run:?}");
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("binding list JSON: {e}: {}", run.stdout))
    }

    /// `ha-admin stats --json`, parsed.
    pub fn stats(&self) -> StatsReport {
        let run = self.admin(&["stats", "--json"]);
        assert_eq!(run.code(), Some(0), "ha-admin stats: {run:?}");
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("stats JSON: {e}: {}", run.stdout))
    }

    /// The counters straight from the control socket: cheap enough to poll.
    pub fn stats_direct(&self) -> StatsReport {
        use std::io::{BufRead, BufReader, Write};
        let mut s = UnixStream::connect(&self.socket).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        s.write_all(ControlRequest::Stats.to_line().as_bytes()).unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        match serde_json::from_str(&line).unwrap() {
            ControlResponse::Ok(ControlOk::Stats(stats)) => stats,
            other => panic!("unexpected {other:?}"),
        }
    }

    /// A raw UDP client of this daemon.
    pub fn raw_client(&self) -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.connect(self.addr).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        s
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- mip-ha log ----\n{}", self.log());
        }
    }
}

/// A Registration Request of mobile node 1 from COA_RAW, signed with `sa`.
pub fn request(identification: u64, lifetime: u16, sa: &SecurityAssociation) -> Vec<u8> {
    let mut b = RegistrationRequestRepr {
        flags: RegistrationFlags::default(),
        lifetime,
        home_address: HOME1,
        home_agent: HA,
        care_of_address: COA_RAW,
        identification,
    }
    .to_bytes();
    append_auth_extension(&mut b, ext_type::MOBILE_HOME_AUTH, sa);
    b
}

/// A reply and whether its Mobile-Home authenticator verifies under `sa`.
pub struct Reply {
    pub repr: RegistrationReplyRepr,
    pub authentic: bool,
    pub bytes: Vec<u8>,
}

pub fn parse_reply(bytes: &[u8], sa: &SecurityAssociation) -> Reply {
    let packet = RegistrationReply::new_checked(bytes).expect("reply parses");
    let repr = RegistrationReplyRepr::parse(&packet).expect("reply parses");
    let mut authentic = false;
    for item in packet.extensions() {
        let item = item.expect("reply extensions are well formed");
        if let Extension::MobileHomeAuth(a) = item.ext {
            let covered = &bytes[..item.offset + AUTH_EXT_COVERED_HEADER];
            authentic =
                a.spi == sa.spi && verify_authenticator(sa.algorithm, &sa.key, covered, a.authenticator);
        }
    }
    Reply { repr, authentic, bytes: bytes.to_vec() }
}

/// Sends one datagram and reads the next reply (bounded by the socket's read timeout).
pub fn exchange(sock: &UdpSocket, payload: &[u8], sa: &SecurityAssociation) -> Reply {
    sock.send(payload).unwrap();
    let mut buf = [0u8; 2048];
    let n = sock.recv(&mut buf).expect("a reply from mip-ha");
    parse_reply(&buf[..n], sa)
}

/// The JSON lines mip-mn printed.
pub fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

pub fn has_event(out: &str, event: &str) -> bool {
    json_lines(out).iter().any(|v| v["event"] == event)
}
