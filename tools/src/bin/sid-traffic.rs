//! `sid-traffic`: test traffic for the lab, run inside its namespaces.
//!
//! - `udp-send --to ADDR:PORT --pps N --duration S`: numbered, timestamped probes paced on a
//!   monotonic clock (each send is due at start + seq/pps: no drift); prints a JSON report.
//! - `udp-recv --bind ADDR:PORT [--report FILE] [--log FILE] [--duration S] [--moves T,..]
//!   [--moves-file FILE]`: records every arrival; on SIGTERM/SIGINT or after `--duration`
//!   writes the JSON report (sent, received, lost, duplicates, reordered, longest gap, per-move
//!   windows) and the `seq,sent_us,recv_us` arrival log.
//! - `udp-echo --bind ADDR:PORT [--tag N] [--log FILE]`: the call application on a device.
//!   Binds with `IP_FREEBIND` (a Target binds the session address before it has it),
//!   answers every probe at once to its source (same datagram, the tag in its `flow` field),
//!   logs every arrival as `seq,sent_us,recv_us`; until SIGTERM/SIGINT or `--duration`.
//! - `udp-call --to ADDR:PORT --pps N --duration S [--bind ADDR:PORT] [--log FILE]`: the
//!   correspondent's side of a call: probes from one socket, the answers received on it and
//!   logged as `seq,sent_us,recv_us,tag`; prints a JSON report.
//! - `tcp-send --to ADDR:PORT --rate BYTES/S --duration S --seed N`: a pseudo-random byte
//!   stream at a steady rate, then FIN; waits for the receiver's close as proof of delivery.
//! - `tcp-recv --bind ADDR:PORT --seed N [--report FILE] [--log FILE]`: checks every byte in
//!   order; reports bytes, errors and the longest stall; `--log` writes `recv_us,bytes` (the
//!   stream's progress) per read.
//! - `ping --to ADDR`: ICMP echo without a `ping` binary.
//!
//! Exit codes: 0 done, 1 the traffic failed (connection error, no ping reply), 2 usage,
//! 3 local error (socket, file).

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use nix::sys::signal::{SigSet, Signal};
use socket2::{Domain, Socket, Type};

use tools::lab::callapp::{self, CallPlan};
use tools::lab::traffic::{
    analyze, fill_pattern, now_us, send_paced, Arrival, Pacing, PatternChecker, Probe, Schedule,
    TcpRecvReport, TcpSendReport, UdpSendReport,
};

static STOP: AtomicBool = AtomicBool::new(false);

#[derive(Parser)]
#[command(
    name = "sid-traffic",
    about = "Test traffic for sid-lab: UDP probes, a checked TCP stream, ping"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// The probe stream of `udp-send` and `udp-call`.
#[derive(Args)]
struct ProbeArgs {
    #[arg(long)]
    to: SocketAddrV4,
    #[arg(long, default_value_t = 1000)]
    pps: u32,
    /// Seconds of sending (SIGTERM/SIGINT ends it earlier).
    #[arg(long)]
    duration: f64,
    /// Datagram payload size (at least the 40-byte probe header).
    #[arg(long, default_value_t = 64)]
    size: usize,
}

impl ProbeArgs {
    /// The stream's schedule, with `flow` in every probe.
    fn pacing(&self, flow: u32) -> Result<Pacing, Fail> {
        if self.pps == 0 {
            return Err(Fail(2, "--pps must be at least 1".into()));
        }
        let duration = seconds(self.duration, "--duration")?;
        Ok(Pacing {
            flow,
            interval_ns: 1_000_000_000 / u64::from(self.pps),
            total: (duration.as_secs_f64() * f64::from(self.pps)).round() as u64,
            size: self.size,
        })
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Send numbered UDP probes at a steady rate.
    UdpSend {
        #[command(flatten)]
        probes: ProbeArgs,
        #[arg(long, default_value_t = 0)]
        flow: u32,
        /// Local address to send from.
        #[arg(long)]
        bind: Option<SocketAddrV4>,
    },
    /// Receive UDP probes and report on them.
    UdpRecv {
        #[arg(long)]
        bind: SocketAddrV4,
        #[arg(long)]
        report: Option<PathBuf>,
        /// Arrival log, one `seq,sent_us,recv_us` line per probe.
        #[arg(long)]
        log: Option<PathBuf>,
        /// Seconds; default: until SIGTERM/SIGINT.
        #[arg(long)]
        duration: Option<f64>,
        /// Probes sent, when known (default: highest sequence number + 1).
        #[arg(long)]
        sent: Option<u64>,
        /// Move times, microseconds since the epoch, comma-separated.
        #[arg(long, value_delimiter = ',')]
        moves: Vec<u64>,
        /// A file of move times (one per line), read when the report is made.
        #[arg(long)]
        moves_file: Option<PathBuf>,
    },
    /// The call application on a device: answer every probe at once, log arrivals.
    UdpEcho {
        #[arg(long)]
        bind: SocketAddrV4,
        /// Put into the `flow` field of every answer (which device answered).
        #[arg(long, default_value_t = 0)]
        tag: u32,
        /// Arrival log, one `seq,sent_us,recv_us` line per probe.
        #[arg(long)]
        log: Option<PathBuf>,
        /// Seconds; default: until SIGTERM/SIGINT.
        #[arg(long)]
        duration: Option<f64>,
        /// Arrivals kept for the log (reserved up front; more are counted, not logged).
        #[arg(long, default_value_t = 1 << 20)]
        capacity: usize,
    },
    /// The correspondent's call: probes out, answers back on the same socket.
    UdpCall {
        #[command(flatten)]
        probes: ProbeArgs,
        #[arg(long, default_value = "0.0.0.0:0")]
        bind: SocketAddrV4,
        /// Answer log, one `seq,sent_us,recv_us,tag` line per answer.
        #[arg(long)]
        log: Option<PathBuf>,
        /// Seconds to wait for answers after the last probe.
        #[arg(long, default_value_t = 0.3)]
        linger: f64,
    },
    /// Send a pseudo-random byte stream over TCP at a steady rate.
    TcpSend {
        #[arg(long)]
        to: SocketAddrV4,
        /// Bytes per second.
        #[arg(long, default_value_t = 1_000_000)]
        rate: u64,
        #[arg(long)]
        duration: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Seconds to keep trying to connect.
        #[arg(long, default_value_t = 5.0)]
        connect_timeout: f64,
    },
    /// Accept one TCP connection and check its byte stream.
    TcpRecv {
        #[arg(long)]
        bind: SocketAddrV4,
        #[arg(long)]
        report: Option<PathBuf>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        duration: Option<f64>,
        /// Progress log, one `recv_us,bytes` line per read that returned data.
        #[arg(long)]
        log: Option<PathBuf>,
    },
    /// ICMP echo.
    Ping {
        #[arg(long)]
        to: Ipv4Addr,
        #[arg(long, default_value_t = 3)]
        count: u32,
        /// Seconds to wait for each reply.
        #[arg(long, default_value_t = 1.0)]
        timeout: f64,
    },
}

/// A failure: what, and the exit code it maps to.
struct Fail(u8, String);

fn local<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> Fail + '_ {
    move |e| Fail(3, format!("{what}: {e}"))
}

fn seconds(s: f64, what: &str) -> Result<Duration, Fail> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| Fail(2, format!("{what}: {s} is not a duration in seconds")))
}

/// SIGTERM, SIGINT and SIGHUP set [`STOP`] instead of killing us, so reports get written.
/// Blocked here, before any thread exists, so every thread inherits the mask.
fn catch_stop_signals() -> Result<(), Fail> {
    let mut set = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        set.add(s);
    }
    set.thread_block().map_err(local("blocking signals"))?;
    std::thread::spawn(move || {
        if set.wait().is_ok() {
            STOP.store(true, Ordering::SeqCst);
        }
    });
    Ok(())
}

fn stopped(deadline: Option<Instant>) -> bool {
    STOP.load(Ordering::SeqCst) || deadline.is_some_and(|d| Instant::now() >= d)
}

fn write_json<T: serde::Serialize>(path: Option<&PathBuf>, value: &T) -> Result<(), Fail> {
    let line = serde_json::to_string(value).map_err(local("encoding report"))?;
    if let Some(p) = path {
        std::fs::write(p, format!("{line}\n")).map_err(local("writing report"))?;
    }
    println!("{line}");
    Ok(())
}

fn udp_send(probes: &ProbeArgs, flow: u32, bind: Option<SocketAddrV4>) -> Result<(), Fail> {
    let pacing = probes.pacing(flow)?;
    let sock = UdpSocket::bind(bind.unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)))
        .map_err(local("binding UDP socket"))?;
    let paced = send_paced(&sock, probes.to, &pacing, &STOP);
    write_json(
        None,
        &UdpSendReport {
            sent: paced.sent,
            send_errors: paced.errors,
            start_us: paced.start_us,
            interval_ns: pacing.interval_ns,
            duration_ms: paced.start.elapsed().as_secs_f64() * 1000.0,
            max_late_ms: paced.max_late.as_secs_f64() * 1000.0,
        },
    )
}

#[allow(clippy::too_many_arguments)]
fn udp_recv(
    bind: SocketAddrV4,
    report: Option<PathBuf>,
    log: Option<PathBuf>,
    duration: Option<Duration>,
    sent: Option<u64>,
    mut moves: Vec<u64>,
    moves_file: Option<PathBuf>,
) -> Result<(), Fail> {
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, None).map_err(local("UDP socket"))?;
    // Room for a burst released after a handover.
    let _ = sock.set_recv_buffer_size(4 << 20);
    sock.bind(&SocketAddr::V4(bind).into())
        .map_err(local("binding UDP socket"))?;
    let sock: UdpSocket = sock.into();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(local("socket timeout"))?;
    println!("listening on {bind}");
    let _ = std::io::stdout().flush();
    let deadline = duration.map(|d| Instant::now() + d);
    let mut arrivals: Vec<Arrival> = Vec::with_capacity(1 << 16);
    let mut schedule: Option<Schedule> = None;
    let mut buf = [0u8; 65536];
    while !stopped(deadline) {
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => {
                let recv_us = now_us();
                if let Some(p) = buf.get(..n).and_then(Probe::parse) {
                    schedule.get_or_insert(Schedule {
                        start_us: p.start_us,
                        interval_ns: p.interval_ns,
                    });
                    arrivals.push(Arrival {
                        seq: p.seq,
                        sent_us: p.sent_us,
                        recv_us,
                    });
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(Fail(3, format!("receiving: {e}"))),
        }
    }
    if let Some(path) = moves_file {
        let text = std::fs::read_to_string(&path).map_err(local("reading moves file"))?;
        moves.extend(text.lines().filter_map(|l| l.trim().parse::<u64>().ok()));
    }
    if let Some(path) = &log {
        let mut text = String::with_capacity(arrivals.len() * 40);
        for a in &arrivals {
            text.push_str(&format!("{},{},{}\n", a.seq, a.sent_us, a.recv_us));
        }
        std::fs::write(path, text).map_err(local("writing arrival log"))?;
    }
    let r = analyze(&arrivals, schedule, sent, &moves);
    write_json(report.as_ref(), &r)
}

fn udp_echo(
    bind: SocketAddrV4,
    tag: u32,
    log: Option<PathBuf>,
    duration: Option<Duration>,
    capacity: usize,
) -> Result<(), Fail> {
    let sock = callapp::udp_socket(bind, true).map_err(local("binding UDP socket"))?;
    println!("listening on {bind}");
    let _ = std::io::stdout().flush();
    if let Some(d) = duration {
        // The stop flag doubles as the deadline.
        std::thread::spawn(move || {
            std::thread::sleep(d);
            STOP.store(true, Ordering::SeqCst);
        });
    }
    let r = callapp::echo(&sock, tag, capacity, log.as_deref(), &STOP).map_err(local("echo"))?;
    write_json(None, &r)
}

fn udp_call(
    probes: &ProbeArgs,
    bind: SocketAddrV4,
    log: Option<PathBuf>,
    linger: Duration,
) -> Result<(), Fail> {
    let plan = CallPlan {
        to: probes.to,
        pacing: probes.pacing(0)?,
        linger,
    };
    let sock = callapp::udp_socket(bind, false).map_err(local("binding UDP socket"))?;
    println!("calling {}", probes.to);
    let _ = std::io::stdout().flush();
    let r = callapp::call(&sock, plan, log.as_deref(), &STOP).map_err(local("call"))?;
    write_json(None, &r)
}

fn connect(to: SocketAddrV4, timeout: Duration) -> Result<TcpStream, Fail> {
    let deadline = Instant::now() + timeout;
    loop {
        match TcpStream::connect_timeout(&SocketAddr::V4(to), Duration::from_secs(1)) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() >= deadline || STOP.load(Ordering::Relaxed) => {
                return Err(Fail(1, format!("connecting to {to}: {e}")))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn tcp_send(
    to: SocketAddrV4,
    rate: u64,
    duration: Duration,
    seed: u64,
    connect_timeout: Duration,
) -> Result<(), Fail> {
    let mut stream = connect(to, connect_timeout)?;
    // Short write timeouts so that a stop request is seen while the path is down.
    stream
        .set_write_timeout(Some(Duration::from_millis(100)))
        .map_err(local("socket timeout"))?;
    let tick = Duration::from_millis(10);
    let per_tick = (rate / 100).max(1);
    let total = (rate as f64 * duration.as_secs_f64()).round() as u64;
    let mut buf = vec![0u8; usize::try_from(per_tick.min(1 << 20)).unwrap_or(1 << 20)];
    let start = Instant::now();
    let (mut offset, mut longest_block) = (0u64, Duration::ZERO);
    let mut error = None;
    let mut k = 0u64;
    'ticks: while offset < total && !STOP.load(Ordering::Relaxed) {
        let due = start + tick.saturating_mul(u32::try_from(k).unwrap_or(u32::MAX));
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        k += 1;
        let target = total.min(per_tick.saturating_mul(k));
        let mut blocked_since: Option<Instant> = None;
        while offset < target {
            let n = usize::try_from(target - offset)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let Some(chunk) = buf.get_mut(..n) else { break };
            fill_pattern(seed, offset, chunk);
            match stream.write(chunk) {
                Ok(0) => {
                    error = Some("connection closed by peer".to_owned());
                    break 'ticks;
                }
                Ok(w) => {
                    offset += w as u64;
                    if let Some(b) = blocked_since.take() {
                        longest_block = longest_block.max(b.elapsed());
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    let b = *blocked_since.get_or_insert_with(Instant::now);
                    longest_block = longest_block.max(b.elapsed());
                    if STOP.load(Ordering::Relaxed) {
                        break 'ticks;
                    }
                }
                Err(e) => {
                    error = Some(e.to_string());
                    break 'ticks;
                }
            }
        }
    }
    let duration_ms = start.elapsed().as_secs_f64() * 1000.0;
    // The receiver closes after reading our FIN: its close proves it has every byte.
    let mut acknowledged = false;
    if error.is_none() {
        let _ = stream.shutdown(Shutdown::Write);
        let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut scratch = [0u8; 512];
        while Instant::now() < deadline && !STOP.load(Ordering::Relaxed) {
            match stream.read(&mut scratch) {
                Ok(0) => {
                    acknowledged = true;
                    break;
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    error = Some(format!("waiting for the receiver to close: {e}"));
                    break;
                }
            }
        }
    }
    let failed = error.is_some();
    write_json(
        None,
        &TcpSendReport {
            bytes: offset,
            duration_ms,
            longest_block_ms: longest_block.as_secs_f64() * 1000.0,
            acknowledged,
            error,
        },
    )?;
    if failed {
        Err(Fail(1, "TCP stream failed".into()))
    } else {
        Ok(())
    }
}

fn tcp_recv(
    bind: SocketAddrV4,
    report: Option<PathBuf>,
    seed: u64,
    duration: Option<Duration>,
    log: Option<PathBuf>,
) -> Result<(), Fail> {
    let listener = TcpListener::bind(bind).map_err(local("binding TCP listener"))?;
    listener
        .set_nonblocking(true)
        .map_err(local("listener mode"))?;
    println!("listening on {bind}");
    let _ = std::io::stdout().flush();
    let deadline = duration.map(|d| Instant::now() + d);
    let mut r = TcpRecvReport {
        bytes: 0,
        errors: 0,
        first_error_offset: None,
        longest_stall_ms: 0.0,
        longest_stall_end_us: None,
        connected_us: None,
        eof: false,
        error: None,
    };
    let mut stream = loop {
        if stopped(deadline) {
            r.error = Some("no connection".to_owned());
            return write_json(report.as_ref(), &r);
        }
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => return Err(Fail(3, format!("accepting: {e}"))),
        }
    };
    r.connected_us = Some(now_us());
    stream
        .set_nonblocking(false)
        .map_err(local("socket mode"))?;
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(local("socket timeout"))?;
    let mut checker = PatternChecker::new(seed);
    let mut progress: Vec<(u64, u64)> = Vec::with_capacity(if log.is_some() { 1 << 16 } else { 0 });
    let mut buf = vec![0u8; 1 << 16];
    let mut last_data = Instant::now();
    let mut longest = Duration::ZERO;
    while !stopped(deadline) {
        match stream.read(&mut buf) {
            Ok(0) => {
                r.eof = true;
                break;
            }
            Ok(n) => {
                checker.check(buf.get(..n).unwrap_or_default());
                if log.is_some() {
                    progress.push((now_us(), checker.bytes()));
                }
                let stall = last_data.elapsed();
                if stall > longest {
                    longest = stall;
                    r.longest_stall_end_us = Some(now_us());
                }
                last_data = Instant::now();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                r.error = Some(e.to_string());
                break;
            }
        }
    }
    drop(stream);
    if let Some(path) = &log {
        let mut text = String::with_capacity(progress.len() * 24);
        for (t, b) in &progress {
            text.push_str(&format!("{t},{b}\n"));
        }
        std::fs::write(path, text).map_err(local("writing progress log"))?;
    }
    r.bytes = checker.bytes();
    r.errors = checker.errors();
    r.first_error_offset = checker.first_error_offset();
    r.longest_stall_ms = longest.as_secs_f64() * 1000.0;
    write_json(report.as_ref(), &r)
}

fn run(cli: Cli) -> Result<(), Fail> {
    catch_stop_signals()?;
    match cli.cmd {
        Cmd::UdpSend {
            probes,
            flow,
            bind,
        } => udp_send(&probes, flow, bind),
        Cmd::UdpRecv {
            bind,
            report,
            log,
            duration,
            sent,
            moves,
            moves_file,
        } => {
            let duration = duration.map(|d| seconds(d, "--duration")).transpose()?;
            udp_recv(bind, report, log, duration, sent, moves, moves_file)
        }
        Cmd::TcpSend {
            to,
            rate,
            duration,
            seed,
            connect_timeout,
        } => tcp_send(
            to,
            rate,
            seconds(duration, "--duration")?,
            seed,
            seconds(connect_timeout, "--connect-timeout")?,
        ),
        Cmd::TcpRecv {
            bind,
            report,
            seed,
            duration,
            log,
        } => {
            let duration = duration.map(|d| seconds(d, "--duration")).transpose()?;
            tcp_recv(bind, report, seed, duration, log)
        }
        Cmd::UdpEcho {
            bind,
            tag,
            log,
            duration,
            capacity,
        } => {
            let duration = duration.map(|d| seconds(d, "--duration")).transpose()?;
            udp_echo(bind, tag, log, duration, capacity)
        }
        Cmd::UdpCall {
            probes,
            bind,
            log,
            linger,
        } => udp_call(&probes, bind, log, seconds(linger, "--linger")?),
        Cmd::Ping { to, count, timeout } => {
            let r = tools::lab::ping::ping(to, count, seconds(timeout, "--timeout")?, false)
                .map_err(local("ping"))?;
            write_json(None, &r)?;
            if r.reachable() {
                Ok(())
            } else {
                Err(Fail(1, format!("no reply from {to}")))
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(code, msg)) => {
            eprintln!("sid-traffic: {msg}");
            ExitCode::from(code)
        }
    }
}
