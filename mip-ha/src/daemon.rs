//! The `mip-ha` daemon: a thin tokio shell around [`HomeAgent`].
//!
//! It owns the registration UDP socket, the clock, one timer and the control socket;
//! every decision is the state machine's. One task (the main loop) owns the home agent;
//! control connections hand their requests to it over a channel. SID wake-ups for the
//! home link (`poll_link_transmit`) leave as frames through the data plane, which also
//! learns the Transferring Node's MAC from the SID events.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::Parser;
use mip_core::time::Time;
use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrIn};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Interest};
use tokio::net::{UdpSocket, UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::config::{ConfigError, DaemonConfig};
use crate::control::{self, ControlRequest, ControlResponse, ErrorKind, MAX_REQUEST_LEN};
use crate::dataplane::Dataplane;
use crate::home_agent::{HaEvent, HomeAgent};
use crate::sid::SidEvent;

/// Datagrams read per wake-up before the loop looks at its timer and control socket.
pub const MAX_DATAGRAMS_PER_WAKE: usize = 256;
/// Control connections served at once; more are told to come back later.
pub const MAX_CONTROL_CONNECTIONS: usize = 16;
/// A control connection that sends nothing for this long is closed.
pub const CONTROL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Large enough for any UDP payload over IPv4, so nothing is ever truncated.
const RECV_BUFFER: usize = 65_536;

/// Exit status for a configuration that does not load or check.
pub const EXIT_CONFIG: u8 = 2;
/// Exit status for a failure at run time (a socket that cannot be bound, ...).
pub const EXIT_RUNTIME: u8 = 1;

#[derive(Debug, Parser)]
#[command(
    name = "mip-ha",
    version,
    about = "Mobile IPv4 home agent (RFC 5944)",
    after_help = "Logging: RUST_LOG (default: info).\n\
Exit status: 0 clean exit (SIGINT/SIGTERM) or valid configuration with --validate; \
1 run-time failure; 2 usage error or invalid configuration."
)]
pub struct Cli {
    /// Configuration file (TOML).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Override home_agent.listen: the IPv4 address and UDP port to serve.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Override home_agent.control_socket: the Unix socket ha-admin talks to.
    #[arg(long, value_name = "PATH")]
    pub control: Option<PathBuf>,
    /// Check the configuration, print a one-line summary and exit.
    #[arg(long)]
    pub validate: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("listen address {0} is not IPv4 (Mobile IPv4 registration runs over IPv4)")]
    ListenNotIpv4(SocketAddr),
    #[error("cannot bind UDP {addr}: {source}")]
    Bind { addr: SocketAddrV4, source: io::Error },
    #[error("control socket {path}: {source}")]
    Control { path: PathBuf, source: io::Error },
    #[error("control socket {0} is in use by a running daemon")]
    ControlInUse(PathBuf),
    #[error("control socket {0} exists and is not a socket; refusing to remove it")]
    ControlNotSocket(PathBuf),
    #[error("data plane: {0}")]
    Dataplane(#[from] crate::dataplane::DataplaneError),
    #[error("runtime: {0}")]
    Runtime(#[from] io::Error),
}

/// The configuration with the command line's overrides applied, checked.
pub fn load(cli: &Cli) -> Result<(DaemonConfig, SocketAddrV4), DaemonError> {
    let mut config = DaemonConfig::load(&cli.config)?;
    if let Some(listen) = cli.listen {
        config.listen = listen;
    }
    if let Some(control) = &cli.control {
        config.control_socket = control.clone();
    }
    match config.listen {
        SocketAddr::V4(v4) => Ok((config, v4)),
        other => Err(DaemonError::ListenNotIpv4(other)),
    }
}

/// The one line `--validate` prints.
pub fn summary(config: &DaemonConfig) -> String {
    let ha = &config.home_agent;
    format!(
        "configuration ok: home agent {}/{}, listen {}, control {}, {} mobile node(s), \
         {} foreign agent(s), max lifetime {} s, replay window {} s, data plane {}",
        ha.address,
        ha.prefix_len,
        config.listen,
        config.control_socket.display(),
        ha.mobile_nodes.len(),
        ha.foreign_agents.len(),
        ha.max_lifetime,
        ha.replay_window.as_secs(),
        config.dataplane.as_ref().map_or_else(
            || "off".to_string(),
            |d| format!("on {} (tunnel MTU {})", d.interface, d.tunnel_mtu)
        ),
    )
}

/// What `main` does: parse the command line, then validate or serve.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let loaded = load(&cli);
    if cli.validate {
        return match loaded {
            Ok((config, _)) => {
                println!("{}", summary(&config));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("mip-ha: {}: {e}", cli.config.display());
                ExitCode::from(EXIT_CONFIG)
            }
        };
    }
    init_logging();
    let (config, listen) = match loaded {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mip-ha: {}: {e}", cli.config.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mip-ha: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    match runtime.block_on(serve(config, listen)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Fatal errors go to stderr whatever RUST_LOG says.
            eprintln!("mip-ha: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // A second initialisation (tests) is harmless: keep the first.
    let ansi = io::IsTerminal::is_terminal(&io::stderr());
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(io::stderr).with_ansi(ansi).try_init();
}

/// Serves until SIGINT or SIGTERM.
pub async fn serve(config: DaemonConfig, listen: SocketAddrV4) -> Result<(), DaemonError> {
    use tokio::signal::unix::{signal, SignalKind};
    // Install the handlers before anything is bound, so that a signal never takes the
    // default action and leaves a stale control socket behind.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: shutting down"),
            _ = int.recv() => info!("SIGINT: shutting down"),
        }
    };
    run_until(config, listen, shutdown).await
}

fn now() -> Time {
    Time::from_system(SystemTime::now())
}

/// A request from a control connection, with where to send the answer.
type ControlJob = (ControlRequest, oneshot::Sender<ControlResponse>);

/// Removes the control socket file when the daemon stops, however it stops.
struct ControlSocketGuard(PathBuf);

impl Drop for ControlSocketGuard {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.0) {
            if e.kind() != io::ErrorKind::NotFound {
                warn!(path = %self.0.display(), "cannot remove the control socket: {e}");
            }
        }
    }
}

/// Serves until `shutdown` completes.
pub async fn run_until(
    config: DaemonConfig,
    listen: SocketAddrV4,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let udp = bind_udp(listen)?;
    let (listener, guard) = bind_control(&config.control_socket)?;
    let ha_address = config.home_agent.address;
    info!(
        listen = %udp.local_addr().map_or_else(|_| listen.to_string(), |a| a.to_string()),
        control = %config.control_socket.display(),
        home_agent = %ha_address,
        mobile_nodes = config.home_agent.mobile_nodes.len(),
        "mip-ha serving"
    );
    // The data plane first: a home interface that cannot be opened is a start-up error.
    let dataplane = match &config.dataplane {
        Some(dp) => {
            let homes = config.home_agent.mobile_nodes.iter().filter_map(|m| m.home_address);
            Some(Dataplane::start(dp, ha_address, homes)?)
        }
        None => None,
    };
    // Nonces must be unguessable (RFC 5944 5.7.2): seed from the OS.
    let mut ha = HomeAgent::with_rng(config.home_agent, StdRng::from_entropy());
    let (jobs_tx, mut jobs_rx) = mpsc::channel::<ControlJob>(64);
    let permits = Arc::new(Semaphore::new(MAX_CONTROL_CONNECTIONS));
    let mut buf = vec![0u8; RECV_BUFFER];
    let mut cmsg = nix::cmsg_space!(nix::libc::in_pktinfo);
    let mut unsent_link = 0u64;
    tokio::pin!(shutdown);

    loop {
        // Includes the SID wake-up retries: their next copy is a timeout like any other.
        let deadline = ha.poll_timeout().map(|t| {
            // The tokio timer rounds to milliseconds; wake a little late rather than early.
            Instant::now() + t.saturating_duration_since(now()) + Duration::from_millis(1)
        });
        tokio::select! {
            () = &mut shutdown => break,
            ready = udp.readable() => {
                ready?;
                drain_udp(&udp, &mut ha, ha_address, &mut buf, &mut cmsg);
            }
            Some((req, reply)) = jobs_rx.recv() => {
                let view = dataplane.as_ref().map(|d| d as &dyn control::DataplaneView);
                let resp = control::execute_with(&mut ha, view, now(), req);
                // The connection may have gone; nothing to do then.
                let _ = reply.send(resp);
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let permit = Arc::clone(&permits).try_acquire_owned().ok();
                    let jobs = jobs_tx.clone();
                    tokio::spawn(async move {
                        let _permit = match permit {
                            Some(p) => p,
                            None => return refuse_busy(stream).await,
                        };
                        serve_control(stream, jobs).await;
                    });
                }
                Err(e) => warn!("control socket accept: {e}"),
            },
            () = sleep_until_opt(deadline) => ha.handle_timeout(now()),
        }
        flush(&udp, &mut ha, dataplane.as_ref(), &mut unsent_link).await;
    }
    drop(dataplane);
    drop(guard);
    info!("mip-ha stopped");
    Ok(())
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Sends what the home agent wants sent, hands its events to the data plane and logs
/// them. `unsent_link` counts wake-ups that had no data plane to go out through.
async fn flush(udp: &UdpSocket, ha: &mut HomeAgent, dataplane: Option<&Dataplane>, unsent_link: &mut u64) {
    // SID events before binding events: a stop-transfer demand that carries a new MAC
    // must be learnt before the binding's removal asks for the gratuitous ARP that
    // announces the node.
    while let Some(event) = ha.poll_sid_event() {
        if let Some(dp) = dataplane {
            dp.apply_sid(&event);
        }
        log_sid_event(&event);
    }
    // Events first: the data plane must tunnel to a new care-of address before the
    // reply tells the node it may use it.
    while let Some(event) = ha.poll_event() {
        if let Some(dp) = dataplane {
            dp.apply(&event);
        }
        let json = serde_json::to_string(&event).unwrap_or_default();
        match event {
            HaEvent::BindingRefreshed { .. } => debug!(event = %json, "home agent event"),
            _ => info!(event = %json, "home agent event"),
        }
    }
    while let Some(tx) = ha.poll_link_transmit() {
        match dataplane {
            Some(dp) => {
                if let Err(e) = dp.send_link(&tx) {
                    warn!(destination = %tx.destination, "cannot send the wake-up frame: {e}");
                }
            }
            None => {
                // The sans-IO retries go on; without home_interface none can leave.
                *unsent_link += 1;
                warn!(destination = %tx.destination, unsent = *unsent_link,
                    "wake-up for the home link not sent: no data plane (set home_interface)");
            }
        }
    }
    while let Some(tx) = ha.poll_transmit() {
        if let Err(e) = udp.send_to(&tx.payload, SocketAddr::V4(tx.destination)).await {
            warn!(destination = %tx.destination, "cannot send reply: {e}");
        }
    }
}

fn log_sid_event(event: &SidEvent) {
    let json = serde_json::to_string(event).unwrap_or_default();
    info!(event = %json, "SID event");
}

/// Reads at most [`MAX_DATAGRAMS_PER_WAKE`] datagrams and feeds them to the home agent.
fn drain_udp(udp: &UdpSocket, ha: &mut HomeAgent, ha_address: Ipv4Addr, buf: &mut [u8], cmsg: &mut [u8]) {
    for _ in 0..MAX_DATAGRAMS_PER_WAKE {
        match udp.try_io(Interest::READABLE, || recv_with_destination(udp, buf, cmsg)) {
            Ok((len, source, destination)) => {
                let Some(payload) = buf.get(..len) else { continue };
                ha.handle_datagram_to(now(), source, destination.unwrap_or(ha_address), payload);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) => {
                // ICMP errors for earlier replies surface here (ECONNREFUSED): not fatal.
                debug!("udp receive: {e}");
            }
        }
    }
}

/// One datagram: its length, source, and IP destination from IP_PKTINFO when present.
fn recv_with_destination(
    udp: &UdpSocket,
    buf: &mut [u8],
    cmsg: &mut [u8],
) -> io::Result<(usize, SocketAddrV4, Option<Ipv4Addr>)> {
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrIn>(udp.as_raw_fd(), &mut iov, Some(cmsg), MsgFlags::empty())
        .map_err(io::Error::from)?;
    let source = msg
        .address
        .map(SocketAddrV4::from)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "datagram without a source address"))?;
    let mut destination = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::Ipv4PacketInfo(info) = c {
                destination = Some(Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr)));
            }
        }
    }
    Ok((msg.bytes, source, destination))
}

/// The registration socket: SO_REUSEADDR so that a restart does not wait, IP_PKTINFO
/// so that requests sent to a broadcast address can be told apart (RFC 5944 3.8.2.1).
fn bind_udp(addr: SocketAddrV4) -> Result<UdpSocket, DaemonError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let bind_err = |source| DaemonError::Bind { addr, source };
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(bind_err)?;
    socket.set_reuse_address(true).map_err(bind_err)?;
    socket.set_nonblocking(true).map_err(bind_err)?;
    if let Err(e) = setsockopt(&socket, sockopt::Ipv4PacketInfo, &true) {
        warn!("IP_PKTINFO unavailable ({e}): broadcast requests cannot be detected");
    }
    socket.bind(&SocketAddr::V4(addr).into()).map_err(bind_err)?;
    UdpSocket::from_std(socket.into()).map_err(bind_err)
}

/// Binds the control socket, mode 0600. A stale file from a daemon that died is
/// removed; a live daemon's socket, or something that is not a socket, is not.
fn bind_control(path: &Path) -> Result<(UnixListener, ControlSocketGuard), DaemonError> {
    use nix::sys::stat::{umask, Mode};
    let err = |source| DaemonError::Control { path: path.to_path_buf(), source };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(DaemonError::ControlInUse(path.to_path_buf()));
            }
            info!(path = %path.display(), "removing a stale control socket");
            std::fs::remove_file(path).map_err(err)?;
        }
        Ok(_) => return Err(DaemonError::ControlNotSocket(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    // Create it 0600 from the start rather than tightening it after a window.
    let old = umask(Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    umask(old);
    let listener = bound.map_err(err)?;
    let guard = ControlSocketGuard(path.to_path_buf());
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    Ok((listener, guard))
}

async fn refuse_busy(mut stream: UnixStream) {
    let resp = ControlResponse::error(ErrorKind::BadRequest, "too many control connections; try again");
    let _ = stream.write_all(resp.to_line().as_bytes()).await;
}

/// One control connection: request lines in, response lines out, until EOF, idleness,
/// or a line too long to resynchronise after.
async fn serve_control(stream: UnixStream, jobs: mpsc::Sender<ControlJob>) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        // Reading one byte past the limit tells an over-long line from a full one.
        let limit = (MAX_REQUEST_LEN + 2) as u64;
        let mut bounded = (&mut read).take(limit);
        let n = match tokio::time::timeout(CONTROL_IDLE_TIMEOUT, bounded.read_until(b'\n', &mut line)).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                debug!("control read: {e}");
                return;
            }
            Err(_) => return,
        };
        if n == 0 {
            return;
        }
        let complete = line.last() == Some(&b'\n');
        if complete {
            line.pop();
        }
        let oversized = line.len() > MAX_REQUEST_LEN;
        let resp = match control::parse_request(&line) {
            Ok(req) => ask(&jobs, req).await,
            Err(e) => e.into(),
        };
        if write.write_all(resp.to_line().as_bytes()).await.is_err() || oversized || !complete {
            return;
        }
    }
}

async fn ask(jobs: &mpsc::Sender<ControlJob>, req: ControlRequest) -> ControlResponse {
    let (tx, rx) = oneshot::channel();
    if jobs.send((req, tx)).await.is_err() {
        return ControlResponse::error(ErrorKind::BadRequest, "daemon is shutting down");
    }
    rx.await.unwrap_or_else(|_| ControlResponse::error(ErrorKind::BadRequest, "daemon is shutting down"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn sample_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/ha.toml")
    }

    #[test]
    fn sample_config_loads_with_lab_addresses_and_both_replay_methods() {
        use mip_core::auth::{AuthAlgorithm, ReplayMethod};
        let c = DaemonConfig::load(&sample_path()).expect("config/ha.toml must load");
        let lab = |a: Ipv4Addr| a.octets()[0] == 198 && (a.octets()[1] & 0xfe) == 18;
        assert!(lab(c.home_agent.address));
        assert!(matches!(c.listen, SocketAddr::V4(v4) if v4.ip().is_loopback() && v4.port() > 1024));
        assert!(c.control_socket.starts_with("/tmp"));
        let sas: Vec<_> = c
            .home_agent
            .mobile_nodes
            .iter()
            .inspect(|mn| assert!(mn.home_address.is_some_and(lab)))
            .flat_map(|mn| mn.security_associations.iter().map(|sa| (sa.algorithm, sa.replay)))
            .collect();
        assert!(sas.contains(&(AuthAlgorithm::HmacMd5, ReplayMethod::Timestamp)));
        assert!(sas.contains(&(AuthAlgorithm::KeyedMd5PrefixSuffix, ReplayMethod::Nonce)));
        let first = &c.home_agent.mobile_nodes[0];
        assert_eq!(first.home_address, Some(Ipv4Addr::new(198, 18, 0, 10)));
        assert!(first.nai.is_some());
        assert!(summary(&c).starts_with("configuration ok: home agent 198.18.0.1/24"));
    }

    #[test]
    fn command_line_overrides_listen_and_control() {
        let cli = Cli::try_parse_from([
            "mip-ha",
            "--config",
            sample_path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:50000",
            "--control",
            "/tmp/other.sock",
        ])
        .unwrap();
        let (c, listen) = load(&cli).unwrap();
        assert_eq!(listen, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 50000));
        assert_eq!(c.control_socket, PathBuf::from("/tmp/other.sock"));
        let cli = Cli::try_parse_from([
            "mip-ha",
            "--config",
            sample_path().to_str().unwrap(),
            "--listen",
            "[::1]:5000",
        ])
        .unwrap();
        assert!(matches!(load(&cli), Err(DaemonError::ListenNotIpv4(_))));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn control_socket_is_private_stale_file_replaced_and_removed_on_exit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ha.sock");
        // A stale socket: bound, then its listener dropped without removing the file.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let (listener, guard) = bind_control(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(matches!(bind_control(&path), Err(DaemonError::ControlInUse(_))));
        drop(listener);
        drop(guard);
        assert!(!path.exists());
        std::fs::write(&path, b"not a socket").unwrap();
        assert!(matches!(bind_control(&path), Err(DaemonError::ControlNotSocket(_))));
    }
}
