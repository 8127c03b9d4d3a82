//! The `mip-fa` daemon: a thin tokio shell around [`ForeignAgent`] and [`Forwarder`].
//!
//! How packets reach a visitor whose home address is not on this link: every frame to
//! a mobile node (registration replies, unicast advertisements, decapsulated packets)
//! is written by us and sent on an AF_PACKET socket to the MAC address learnt from the
//! frame that carried its request (RFC 5944 4.2.2: no ARP for visitors). The kernel's
//! routing and neighbour tables are left alone, so nothing needs cleaning up and a
//! visitor that leaves leaves no route behind.
//!
//! How visitors' packets are forwarded: the data plane picks them off the link
//! (AF_PACKET: frames from a visitor's MAC with its home address as source) and either
//! reverse-tunnels them (T bit) or routes them itself (TTL-1) through an IPPROTO_RAW
//! socket. The kernel must not forward them as well: we set
//! `net.ipv4.conf.<interface>.forwarding=0` at start (`disable_kernel_forwarding`).

use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Interest};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::control::{self, ControlResponse, MAX_REQUEST_LEN};
use crate::file::{ConfigError, DaemonConfig};
use crate::forwarder::Forwarder;
use crate::shell::{now, Sockets, State};
use crate::sys;
use crate::ForeignAgent;

/// Reads per socket per wake-up before the loop looks at its other sockets.
pub const MAX_PER_WAKE: usize = 256;
pub const CONTROL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Exit status for a configuration that does not load or check.
pub const EXIT_CONFIG: u8 = 2;
/// Exit status for a failure at run time.
pub const EXIT_RUNTIME: u8 = 1;
/// Tunnel protocols we decapsulate: IP in IP, GRE, minimal.
const TUNNEL_PROTOCOLS: [u8; 3] = [4, 47, 55];

#[derive(Debug, Parser)]
#[command(
    name = "mip-fa",
    version,
    about = "Mobile IPv4 foreign agent (RFC 5944, RFC 3024)",
    after_help = "Logging: RUST_LOG (default: info).\n\
Control socket: one JSON request per line, {\"command\":\"stats\"} or {\"command\":\"visitors\"}.\n\
Exit status: 0 clean exit (SIGINT/SIGTERM) or valid configuration with --validate; \
1 run-time failure; 2 usage error or invalid configuration."
)]
pub struct Cli {
    /// Configuration file (TOML).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Override foreign_agent.control_socket.
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
    #[error("interface {name}: {source}")]
    Interface { name: String, source: io::Error },
    #[error("cannot open {what}: {source}")]
    Socket {
        what: &'static str,
        source: io::Error,
    },
    #[error("control socket {path}: {source}")]
    Control { path: PathBuf, source: io::Error },
    #[error("control socket {0} is in use by a running daemon")]
    ControlInUse(PathBuf),
    #[error("{0} exists and is not a socket")]
    ControlNotSocket(PathBuf),
    #[error("{0}")]
    Io(#[from] io::Error),
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_CONFIG } else { 0 });
        }
    };
    let mut config = match DaemonConfig::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mip-fa: {}: {e}", cli.config.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Some(c) = cli.control {
        config.control_socket = c;
    }
    if cli.validate {
        println!("{}", config.summary());
        return ExitCode::SUCCESS;
    }
    init_logging();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mip-fa: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mip-fa: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = io::IsTerminal::is_terminal(&io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(ansi)
        .try_init();
}

/// Serves until SIGINT or SIGTERM.
pub async fn serve(config: DaemonConfig) -> Result<(), DaemonError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: shutting down"),
            _ = int.recv() => info!("SIGINT: shutting down"),
        }
    };
    run_until(config, shutdown).await
}

type ControlJob = (Vec<u8>, oneshot::Sender<ControlResponse>);

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

fn socket_err(what: &'static str) -> impl Fn(io::Error) -> DaemonError {
    move |source| DaemonError::Socket { what, source }
}

/// Opens everything, then serves until `shutdown` completes.
pub async fn run_until(
    config: DaemonConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let name = config.interface.clone();
    let iface_err = |source| DaemonError::Interface {
        name: name.clone(),
        source,
    };
    let (ifindex, our_mac) = sys::interface_index_and_mac(&name).map_err(iface_err)?;
    let coa = config.foreign_agent.care_of_address;
    if config.data_plane && config.disable_kernel_forwarding {
        let path = format!("net/ipv4/conf/{name}/forwarding");
        match sys::write_sysctl(&path, "0") {
            Ok(()) => info!("{path} = 0: visitors' packets are forwarded by mip-fa only"),
            Err(e) => {
                warn!("cannot set {path} to 0 ({e}): the kernel may forward visitors' packets too")
            }
        }
    }
    // Virtio-net headers let us finish partial checksums and cut TCP super-packets that
    // veth hands to AF_PACKET; without a data plane nothing is forwarded.
    let vnet_hdr = config.data_plane;
    let packet = sys::packet_socket(ifindex, vnet_hdr).map_err(socket_err("AF_PACKET socket"))?;
    let registration = sys::registration_socket(mip_core::REGISTRATION_PORT, coa)
        .map_err(socket_err("UDP registration socket (port 434)"))?;
    let mut tunnels: Vec<AsyncFd<OwnedFd>> = Vec::new();
    let mut raw_out = None;
    let forwarder = if config.data_plane {
        for p in TUNNEL_PROTOCOLS {
            let fd = sys::raw_receive_socket(p).map_err(socket_err("raw tunnel socket"))?;
            tunnels.push(sys::register(fd, Interest::READABLE)?);
        }
        raw_out = Some(sys::raw_send_socket().map_err(socket_err("raw send socket"))?);
        Some(Forwarder::new(
            coa,
            config.foreign_agent.local_addresses.clone(),
            our_mac,
            config.tunnel_mtu,
        ))
    } else {
        None
    };
    let (listener, guard) = bind_control(&config.control_socket)?;
    info!(interface = %name, care_of_address = %coa, control = %config.control_socket.display(),
        data_plane = config.data_plane, "mip-fa serving");
    // RFC 1256 5.1: seed the jitter with something unique to this agent.
    let seed = u64::from(u32::from(coa)) ^ u64::from(ifindex) << 32 ^ now().as_micros();
    let fa = ForeignAgent::new(config.foreign_agent, now(), seed);
    let mut state = State::new(fa, forwarder, ifindex, our_mac, vnet_hdr);

    let packet = sys::register(packet, Interest::READABLE)?;
    let registration = sys::register(registration, Interest::READABLE | Interest::ERROR)?;
    let (jobs_tx, mut jobs_rx) = mpsc::channel::<ControlJob>(16);
    tokio::pin!(shutdown);
    // One struct of plain fds for the handlers; the AsyncFds only report readiness.
    let fds = Sockets {
        packet: packet.get_ref().try_clone()?,
        registration: registration.get_ref().try_clone()?,
        raw_out,
    };
    state.handle_timeout(&fds);
    loop {
        let deadline = state.fa.poll_timeout().map(|t| {
            Instant::now() + t.saturating_duration_since(now()) + Duration::from_millis(1)
        });
        tokio::select! {
            () = &mut shutdown => break,
            ready = packet.readable() => {
                let mut g = ready?;
                if state.drain_packet(&fds, MAX_PER_WAKE) {
                    g.clear_ready();
                }
            }
            ready = registration.ready(Interest::READABLE | Interest::ERROR) => {
                let mut g = ready?;
                let r = g.ready();
                if r.is_error() {
                    state.drain_errors(&fds, MAX_PER_WAKE);
                }
                if state.drain_registration(&fds, MAX_PER_WAKE) {
                    g.clear_ready();
                }
            }
            (i, ready) = readable_any(&tunnels) => {
                let mut g = ready?;
                let Some(fd) = tunnels.get(i) else { continue };
                if state.drain_tunnel(&fds, fd.get_ref(), MAX_PER_WAKE) {
                    g.clear_ready();
                }
            }
            Some((line, reply)) = jobs_rx.recv() => {
                let view = control::View {
                    fa: &state.fa,
                    forwarder: state.forwarder.as_ref(),
                    io: Some(&state.stats),
                };
                let resp = control::handle_line(view, now(), &line);
                let _ = reply.send(resp);
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve_control(stream, jobs_tx.clone()));
                }
                Err(e) => warn!("control socket accept: {e}"),
            },
            () = sleep_until_opt(deadline) => state.handle_timeout(&fds),
        }
    }
    drop(guard);
    info!("mip-fa stopped");
    Ok(())
}

/// The first of the tunnel sockets to become readable (pending forever when none).
async fn readable_any(
    fds: &[AsyncFd<OwnedFd>],
) -> (
    usize,
    io::Result<tokio::io::unix::AsyncFdReadyGuard<'_, OwnedFd>>,
) {
    if fds.is_empty() {
        return std::future::pending().await;
    }
    let futures = fds
        .iter()
        .enumerate()
        .map(|(i, fd)| Box::pin(async move { (i, fd.readable().await) }));
    futures_select(futures.collect()).await
}

/// Polls several boxed futures and returns the first output.
async fn futures_select<F: Future + Unpin>(mut futs: Vec<F>) -> F::Output {
    std::future::poll_fn(move |cx| {
        for f in futs.iter_mut() {
            if let std::task::Poll::Ready(v) = std::pin::Pin::new(f).poll(cx) {
                return std::task::Poll::Ready(v);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Binds the control socket, mode 0600; a stale socket file is replaced, a live one
/// or a file that is not a socket is not.
fn bind_control(path: &Path) -> Result<(UnixListener, ControlSocketGuard), DaemonError> {
    use nix::sys::stat::{umask, Mode};
    let err = |source| DaemonError::Control {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(DaemonError::ControlInUse(path.to_path_buf()));
            }
            std::fs::remove_file(path).map_err(err)?;
        }
        Ok(_) => return Err(DaemonError::ControlNotSocket(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let old = umask(Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    umask(old);
    let listener = bound.map_err(err)?;
    let guard = ControlSocketGuard(path.to_path_buf());
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    Ok((listener, guard))
}

/// One control connection: request lines in, response lines out.
async fn serve_control(stream: UnixStream, jobs: mpsc::Sender<ControlJob>) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        let mut bounded = (&mut read).take((MAX_REQUEST_LEN + 2) as u64);
        let n =
            match tokio::time::timeout(CONTROL_IDLE_TIMEOUT, bounded.read_until(b'\n', &mut line))
                .await
            {
                Ok(Ok(n)) => n,
                _ => return,
            };
        if n == 0 {
            return;
        }
        let complete = line.last() == Some(&b'\n');
        if complete {
            line.pop();
        }
        let (tx, rx) = oneshot::channel();
        if jobs.send((line.clone(), tx)).await.is_err() {
            return;
        }
        let Ok(resp) = rx.await else { return };
        if write.write_all(resp.to_line().as_bytes()).await.is_err() || !complete {
            return;
        }
    }
}
