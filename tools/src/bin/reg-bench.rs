//! `reg-bench`: authenticated registrations per second through a real `mip-ha` on
//! loopback, against a plain UDP echo server driven by the same client loop.
//!
//! Run it on an otherwise quiet machine, with optimised binaries:
//!
//! ```text
//! cargo build --release -p mip-ha -p tools
//! target/release/reg-bench                      # 20,000 requests, window 32
//! target/release/reg-bench --requests 100000 --window 64
//! ```
//!
//! The client pre-builds every Registration Request (HMAC-MD5, increasing timestamp
//! identifications, one mobile node refreshing one binding) so that the loop measures the
//! daemon, not the client's signing. It keeps `--window` requests outstanding and sends
//! the next one for each reply; a reply that does not come within 200 ms counts the
//! outstanding requests as lost. The daemon runs as a child process with RUST_LOG=warn,
//! the echo server as a thread of this process.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use clap::Parser;
use mip_core::auth::{append_auth_extension, AuthAlgorithm, ReplayMethod, SecurityAssociation};
use mip_core::time::Time;
use mip_core::wire::{ext_type, RegistrationFlags, RegistrationRequestRepr};
use mip_ha::control::{ControlOk, ControlRequest, ControlResponse, StatsReport};

const KEY_HEX: &str = "6d69702d68612d6c61622d6b65792d31";
const HOME: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const COA: Ipv4Addr = Ipv4Addr::new(198, 19, 1, 10);
const REPLY_TIMEOUT: Duration = Duration::from_millis(200);

#[derive(Debug, Parser)]
#[command(name = "reg-bench", about = "Registrations per second through mip-ha on loopback, vs UDP echo")]
struct Cli {
    /// Measured requests per run (a tenth as many more warm up first).
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Requests outstanding at once.
    #[arg(long, default_value_t = 32)]
    window: usize,
    /// The mip-ha binary [default: next to this one].
    #[arg(long, value_name = "PATH")]
    daemon: Option<PathBuf>,
}

#[derive(Debug, Default)]
struct Tally {
    replies: usize,
    accepted: usize,
    lost: usize,
    elapsed: Duration,
}

impl Tally {
    fn rate(&self) -> f64 {
        self.replies as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Kills the daemon and removes the scratch directory.
struct Scratch {
    dir: PathBuf,
    child: Option<Child>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reg-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<(), String> {
    let window = cli.window.max(1);
    let warmup = cli.requests / 10;
    let daemon_bin = match &cli.daemon {
        Some(p) => p.clone(),
        None => std::env::current_exe().map_err(|e| e.to_string())?.with_file_name("mip-ha"),
    };
    if !daemon_bin.is_file() {
        return Err(format!(
            "{} not found; build it (cargo build --release -p mip-ha) or give --daemon",
            daemon_bin.display()
        ));
    }
    let dir = std::env::temp_dir().join(format!("reg-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut scratch = Scratch { dir: dir.clone(), child: None };
    let (target, control) = start_daemon(&daemon_bin, &dir, &mut scratch)?;

    let payloads = signed_requests(warmup + cli.requests);
    let (warm, measured) = payloads.split_at(warmup);
    println!("reg-bench: {} requests (+{warmup} warm-up), window {window}", cli.requests);

    drive(target, warm, window)?;
    let ha = drive(target, measured, window)?;
    let stats = daemon_stats(&control)?;

    let (echo_addr, stop) = start_echo()?;
    drive(echo_addr, warm, window)?;
    let echo = drive(echo_addr, measured, window)?;
    stop.store(true, Ordering::Relaxed);

    println!(
        "  mip-ha, HMAC-MD5 + timestamps: {:>7} replies ({} accepted, {} lost) in {:.3} s = {:>9.0} registrations/s",
        ha.replies, ha.accepted, ha.lost, ha.elapsed.as_secs_f64(), ha.rate()
    );
    println!(
        "  UDP echo baseline:             {:>7} replies ({} lost) in {:.3} s = {:>9.0} datagrams/s",
        echo.replies,
        echo.lost,
        echo.elapsed.as_secs_f64(),
        echo.rate()
    );
    println!("  ratio mip-ha / echo: {:.2}", ha.rate() / echo.rate().max(1e-9));
    println!(
        "  daemon counters: {} datagrams, {} accepted, {} denied, {} discarded",
        stats.datagrams,
        stats.accepted,
        stats.denied.values().sum::<u64>(),
        stats.total_discarded()
    );
    Ok(())
}

fn start_daemon(bin: &Path, dir: &Path, scratch: &mut Scratch) -> Result<(SocketAddrV4, PathBuf), String> {
    let port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let control = dir.join("ha.sock");
    let config = dir.join("ha.toml");
    // A replay window of an hour: the pre-built timestamps must stay valid for the run.
    let text = format!(
        "[home_agent]\naddress = \"127.0.0.1\"\nprefix_len = 8\nlisten = \"127.0.0.1:{port}\"\n\
         control_socket = \"{}\"\nmax_lifetime = 600\nreplay_window = 3600\n\n\
         [[mobile_node]]\nhome_address = \"{HOME}\"\n[[mobile_node.sa]]\nspi = 256\n\
         algorithm = \"hmac-md5\"\nreplay = \"timestamp\"\nkey = \"{KEY_HEX}\"\n",
        control.display()
    );
    std::fs::write(&config, text).map_err(|e| format!("{}: {e}", config.display()))?;
    let log = std::fs::File::create(dir.join("mip-ha.log")).map_err(|e| e.to_string())?;
    let child = Command::new(bin)
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    scratch.child = Some(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(&control).is_err() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("mip-ha.log")).unwrap_or_default();
            return Err(format!("mip-ha did not come up:\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((SocketAddrV4::new(Ipv4Addr::LOCALHOST, port), control))
}

/// `n` requests with increasing identifications from the current time.
fn signed_requests(n: usize) -> Vec<Vec<u8>> {
    let sa = SecurityAssociation {
        spi: 256,
        algorithm: AuthAlgorithm::HmacMd5,
        key: hex::decode(KEY_HEX).unwrap_or_default(),
        replay: ReplayMethod::Timestamp,
    };
    let base = Time::from_system(SystemTime::now()).to_ntp();
    (0..n as u64)
        .map(|i| {
            let mut b = RegistrationRequestRepr {
                flags: RegistrationFlags::default(),
                lifetime: 600,
                home_address: HOME,
                home_agent: Ipv4Addr::LOCALHOST,
                care_of_address: COA,
                // One NTP fraction unit apart (~0.23 ns): strictly increasing.
                identification: base + i,
            }
            .to_bytes();
            append_auth_extension(&mut b, ext_type::MOBILE_HOME_AUTH, &sa);
            b
        })
        .collect()
}

/// Sends every payload with `window` outstanding, one new send per reply.
fn drive(target: SocketAddrV4, payloads: &[Vec<u8>], window: usize) -> Result<Tally, String> {
    let io = |e: std::io::Error| format!("client socket: {e}");
    let sock = UdpSocket::bind("127.0.0.1:0").map_err(io)?;
    sock.connect(target).map_err(io)?;
    sock.set_read_timeout(Some(REPLY_TIMEOUT)).map_err(io)?;
    let mut tally = Tally::default();
    let mut next = 0;
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    let send_up_to = |limit: usize, next: &mut usize| -> Result<(), String> {
        while *next < limit.min(payloads.len()) {
            sock.send(&payloads[*next]).map_err(io)?;
            *next += 1;
        }
        Ok(())
    };
    send_up_to(window, &mut next)?;
    while tally.replies + tally.lost < payloads.len() {
        match sock.recv(&mut buf) {
            Ok(n) => {
                tally.replies += 1;
                // Registration Reply: type 3, then the code; an echo returns type 1.
                if n > 1 && (buf[0] == 1 || buf[1] == 0) {
                    tally.accepted += 1;
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                tally.lost += next - tally.replies - tally.lost;
            }
            Err(e) => return Err(io(e)),
        }
        let done = tally.replies + tally.lost;
        send_up_to(done + window, &mut next)?;
    }
    tally.elapsed = start.elapsed();
    Ok(tally)
}

/// A UDP echo server on a thread; set the flag to stop it.
fn start_echo() -> Result<(SocketAddrV4, Arc<AtomicBool>), String> {
    let sock = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_millis(100))).map_err(|e| e.to_string())?;
    let addr = match sock.local_addr().map_err(|e| e.to_string())? {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => return Err("echo server bound to IPv6".into()),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !flag.load(Ordering::Relaxed) {
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                let _ = sock.send_to(buf.get(..n).unwrap_or_default(), from);
            }
        }
    });
    Ok((addr, stop))
}

fn daemon_stats(control: &Path) -> Result<StatsReport, String> {
    let err = |e: std::io::Error| format!("control socket: {e}");
    let mut s = UnixStream::connect(control).map_err(err)?;
    s.set_read_timeout(Some(Duration::from_secs(5))).map_err(err)?;
    s.write_all(ControlRequest::Stats.to_line().as_bytes()).map_err(err)?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).map_err(err)?;
    match serde_json::from_str(&line) {
        Ok(ControlResponse::Ok(ControlOk::Stats(stats))) => Ok(stats),
        other => Err(format!("unexpected control answer: {other:?}")),
    }
}
