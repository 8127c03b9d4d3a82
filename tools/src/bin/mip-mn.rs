//! `mip-mn`: a Mobile IPv4 mobile node registration client (RFC 5944 3.6).
//!
//! A thin tokio shell around the sans-IO [`MobileNode`]: one UDP socket, the wall clock
//! read at each input, and a single timer armed from `poll_timeout`.
//!
//! Exit codes: 0 accepted (or deregistered), 1 denied (code and description printed),
//! 2 usage or configuration error, 3 no reply (gave up or `--timeout`), 4 local I/O error.
//!
//! `mip-mn run --config FILE` is the mobile node daemon instead (tools::mn::daemon).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket as StdUdpSocket};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand, ValueEnum};
use mip_core::auth::{AuthAlgorithm, ReplayMethod};
use mip_core::mobile_node::{MnEvent, MobileNode, DEFAULT_LIFETIME, DEFAULT_MAX_ATTEMPTS};
use mip_core::time::Time;
use mip_core::wire::ReplyCode;
use mip_core::REGISTRATION_PORT;
use serde_json::json;
use tokio::net::UdpSocket;
use tools::mn::config::MnDaemonConfig;
use tools::mn_config::{build_config, parse_home_agent, parse_key, parse_spi, KeyBytes, MnOptions};

const EXIT_DENIED: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_NO_REPLY: u8 = 3;
const EXIT_IO: u8 = 4;

#[derive(Debug, Parser)]
#[command(
    name = "mip-mn",
    version,
    about = "Mobile IPv4 mobile node: register with a home agent (RFC 5944)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Register; stay up re-registering until Ctrl-C or --duration, then deregister.
    #[command(visible_alias = "reg")]
    Register {
        #[command(flatten)]
        common: Common,
        /// Register once, print the outcome and exit (no renewal, no deregistration).
        #[arg(long)]
        once: bool,
        /// Stay registered this long, then deregister and exit.
        #[arg(long, value_name = "SECS", conflicts_with = "once")]
        duration: Option<u64>,
    },
    /// Send a lifetime-zero request for the care-of address and exit.
    #[command(visible_alias = "dereg")]
    Deregister {
        #[command(flatten)]
        common: Common,
    },
    /// Run the mobile node daemon: movement detection, registration, the TUN device mip0
    /// and the co-located data plane (needs root in the node's network namespace).
    Run {
        /// TOML configuration (see config/mn.toml).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Write the JSON status here (overrides daemon.status_file).
        #[arg(long, value_name = "FILE")]
        status_file: Option<PathBuf>,
        /// Check the configuration and exit.
        #[arg(long)]
        validate: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Algorithm {
    HmacMd5,
    KeyedMd5,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Replay {
    Timestamp,
    Nonce,
}

#[derive(Debug, Args)]
struct Common {
    /// Home agent address; the port defaults to 434.
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = |s: &str| parse_home_agent(s))]
    home_agent: SocketAddrV4,
    /// Home address; omit it with --nai to have the home agent assign one.
    #[arg(long, value_name = "ADDR")]
    home_address: Option<Ipv4Addr>,
    /// Care-of address to register [default: the socket's local address towards the home agent].
    /// Equal to the home address means "at home": deregistration of all bindings.
    #[arg(long, value_name = "ADDR")]
    care_of: Option<Ipv4Addr>,
    /// Security parameter index (decimal or 0x hex, > 255).
    #[arg(long, value_parser = |s: &str| parse_spi(s))]
    spi: u32,
    /// Shared key in hex.
    #[arg(long, value_name = "HEX", value_parser = |s: &str| parse_key(s))]
    key: KeyBytes,
    #[arg(long, value_enum, default_value_t = Algorithm::HmacMd5)]
    algorithm: Algorithm,
    #[arg(long, value_enum, default_value_t = Replay::Timestamp)]
    replay: Replay,
    /// Requested lifetime in seconds (65535 = infinite).
    #[arg(long, default_value_t = DEFAULT_LIFETIME)]
    lifetime: u16,
    /// Mobile Node NAI (RFC 2794), e.g. mn1@example.test.
    #[arg(long)]
    nai: Option<String>,
    /// Request reverse tunnelling (the T flag, RFC 3024).
    #[arg(long)]
    reverse_tunnel: bool,
    /// Local address and port of the socket.
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:0")]
    bind: SocketAddrV4,
    /// Requests per transaction before giving up.
    #[arg(long, default_value_t = DEFAULT_MAX_ATTEMPTS)]
    max_attempts: u32,
    /// Give up waiting for an answer to the (de)registration after this many seconds.
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// Print each outcome as one JSON object per line.
    #[arg(long)]
    json: bool,
    /// Send requests to this address and port instead of the home agent's own (a home
    /// agent listening on loopback for a lab, or behind a port mapping); the requests'
    /// Home Agent field still carries --home-agent.
    #[arg(long, value_name = "ADDR:PORT")]
    via: Option<SocketAddrV4>,
}

/// What an event means for the run.
enum Outcome {
    Accepted,
    Denied,
    NoReply,
    Failed,
    /// Informational: keep going.
    Note,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Run {
        config,
        status_file,
        validate,
    } = &cli.command
    {
        return run_daemon(config, status_file.clone(), *validate);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mip-mn: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_IO);
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    let (common, mode) = match cli.command {
        Command::Register {
            common, once: true, ..
        } => (common, Mode::Once),
        Command::Register {
            common, duration, ..
        } => (common, Mode::StayUp(duration.map(Duration::from_secs))),
        Command::Deregister { common } => (common, Mode::Deregister),
        Command::Run { .. } => return ExitCode::from(EXIT_USAGE),
    };
    let send_to = common.via.unwrap_or(common.home_agent);
    let care_of = match common.care_of {
        Some(a) => a,
        None => match local_address_towards(common.bind, send_to) {
            Ok(a) => a,
            Err(e) => {
                eprintln!(
                    "mip-mn: cannot find a local address towards {}: {e}; give --care-of",
                    common.home_agent
                );
                return ExitCode::from(EXIT_IO);
            }
        },
    };
    let options = MnOptions {
        home_agent: common.home_agent,
        home_address: common.home_address,
        care_of,
        spi: common.spi,
        key: common.key.clone(),
        algorithm: match common.algorithm {
            Algorithm::HmacMd5 => AuthAlgorithm::HmacMd5,
            Algorithm::KeyedMd5 => AuthAlgorithm::KeyedMd5PrefixSuffix,
        },
        replay: match common.replay {
            Replay::Timestamp => ReplayMethod::Timestamp,
            Replay::Nonce => ReplayMethod::Nonce,
        },
        lifetime: common.lifetime,
        nai: common.nai.clone(),
        max_attempts: common.max_attempts,
        reverse_tunnel: common.reverse_tunnel,
    };
    let cfg = match build_config(&options) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("mip-mn: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let socket = match UdpSocket::bind(common.bind).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mip-mn: cannot bind {}: {e}", common.bind);
            return ExitCode::from(EXIT_IO);
        }
    };
    let mut shell = Shell {
        node: MobileNode::new(cfg, rand::random()),
        socket,
        home_agent: common.home_agent,
        json: common.json,
        timeout: common.timeout.map(Duration::from_secs),
        unauthenticated: None,
        send_to,
    };
    shell.run(mode).await
}

/// `mip-mn run`: exit 0 when stopped by a signal, 2 for a bad configuration, 4 when a
/// socket, the TUN device or the network configuration cannot be set up.
fn run_daemon(config: &Path, status_file: Option<PathBuf>, validate: bool) -> ExitCode {
    let mut cfg = match MnDaemonConfig::load(config) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("mip-mn: {}: {e}", config.display());
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if validate {
        println!("{}: ok", config.display());
        return ExitCode::SUCCESS;
    }
    if status_file.is_some() {
        cfg.status_file = status_file;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mip-mn: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_IO);
        }
    };
    match runtime.block_on(tools::mn::daemon::run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(EXIT_IO)
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Once,
    StayUp(Option<Duration>),
    Deregister,
}

struct Shell {
    node: MobileNode,
    socket: UdpSocket,
    home_agent: SocketAddrV4,
    json: bool,
    timeout: Option<Duration>,
    /// The code of the last reply we had to discard for its authenticator.
    unauthenticated: Option<ReplyCode>,
    /// Where requests go: the home agent, or `--via`.
    send_to: SocketAddrV4,
}

fn now() -> Time {
    Time::from_system(SystemTime::now())
}

impl Shell {
    async fn run(&mut self, mode: Mode) -> ExitCode {
        match mode {
            Mode::Deregister => self.node.deregister(now()),
            Mode::Once | Mode::StayUp(_) => self.node.register(now()),
        }
        // Until the first answer, every mode is a single transaction bounded by --timeout.
        let first = self.until_outcome(self.timeout).await;
        let stay_up = match (mode, &first) {
            (Mode::StayUp(d), Outcome::Accepted) => d,
            _ => return exit_code(first),
        };
        let stop_at = stay_up.map(|d| tokio::time::Instant::now() + d);
        let stopped = self.stay_up(stop_at).await;
        if let Err(code) = stopped {
            return code;
        }
        self.node.deregister(now());
        exit_code(self.until_outcome(self.timeout).await)
    }

    /// Keeps the registration alive until Ctrl-C or `stop_at`. Renewals that give up are
    /// started again: the binding may still be alive and the home agent may come back.
    async fn stay_up(&mut self, stop_at: Option<tokio::time::Instant>) -> Result<(), ExitCode> {
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        let far = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
        let stop = tokio::time::sleep_until(stop_at.unwrap_or(far));
        tokio::pin!(stop);
        loop {
            tokio::select! {
                r = &mut ctrl_c => {
                    if let Err(e) = r {
                        eprintln!("mip-mn: cannot wait for Ctrl-C: {e}");
                    }
                    return Ok(());
                }
                () = &mut stop => return Ok(()),
                step = self.step() => {
                    match step {
                        Some(Outcome::NoReply) => self.node.register(now()),
                        Some(Outcome::Denied) => return Err(ExitCode::from(EXIT_DENIED)),
                        Some(Outcome::Failed) => return Err(ExitCode::from(EXIT_USAGE)),
                        _ => {}
                    }
                }
            }
        }
    }

    /// Drives the node until an accept, denial, give-up or failure, or until `timeout`.
    async fn until_outcome(&mut self, timeout: Option<Duration>) -> Outcome {
        let deadline = timeout.map(|d| tokio::time::Instant::now() + d);
        loop {
            let step = match deadline {
                Some(d) => match tokio::time::timeout_at(d, self.step()).await {
                    Ok(step) => step,
                    Err(_) => {
                        self.print_timeout(timeout.unwrap_or_default());
                        return Outcome::NoReply;
                    }
                },
                None => self.step().await,
            };
            match step {
                Some(Outcome::Note) | None => {}
                Some(outcome) => return outcome,
            }
        }
    }

    /// One round: send what is queued, report events, then wait for a datagram or the
    /// node's timer. Returns the most significant outcome reported in this round.
    async fn step(&mut self) -> Option<Outcome> {
        while let Some(t) = self.node.poll_transmit() {
            // The core addresses the home agent at port 434; a lab home agent may listen
            // elsewhere, so send to the configured socket address instead.
            let to = if t.destination == SocketAddrV4::new(*self.home_agent.ip(), REGISTRATION_PORT)
            {
                self.send_to
            } else {
                t.destination
            };
            if let Err(e) = self.socket.send_to(&t.payload, to).await {
                eprintln!("mip-mn: send to {to}: {e}");
            }
        }
        let mut result = None;
        while let Some(ev) = self.node.poll_event() {
            let outcome = self.print_event(&ev);
            if !matches!(outcome, Outcome::Note) || result.is_none() {
                result = Some(outcome);
            }
        }
        if result.as_ref().is_some_and(|o| !matches!(o, Outcome::Note)) {
            return result;
        }
        let wake = self.node.poll_timeout().map(|t| {
            let wait = t.saturating_duration_since(now());
            tokio::time::Instant::now() + wait
        });
        let far = tokio::time::Instant::now() + Duration::from_secs(3_600);
        let mut buf = [0u8; 2048];
        tokio::select! {
            r = self.socket.recv_from(&mut buf) => match r {
                Ok((n, SocketAddr::V4(from))) => {
                    let payload = buf.get(..n).unwrap_or_default();
                    self.node.handle_datagram(now(), from, payload);
                }
                Ok((_, SocketAddr::V6(_))) => {}
                // ICMP port unreachable and the like surface here; retransmission copes.
                Err(e) => eprintln!("mip-mn: receive: {e}"),
            },
            () = tokio::time::sleep_until(wake.unwrap_or(far)) => self.node.handle_timeout(now()),
        }
        result
    }

    fn print_event(&mut self, ev: &MnEvent) -> Outcome {
        let (mut text, mut value, mut outcome) = describe(ev);
        match ev {
            MnEvent::UnauthenticatedReply { claimed } => self.unauthenticated = Some(*claimed),
            MnEvent::GaveUp { .. }
                if self.unauthenticated == Some(ReplyCode::MobileNodeFailedAuthentication) =>
            {
                // Every answer was a 131 we could not verify: the home agent holds another
                // key or SPI for us. Say so instead of "no reply".
                text = format!("denied: code 131 ({}); the replies could not be authenticated either: check --spi and --key",
                    ReplyCode::MobileNodeFailedAuthentication.description());
                value = json!({ "event": "denied", "code": 131, "authenticated": false,
                    "description": ReplyCode::MobileNodeFailedAuthentication.description() });
                outcome = Outcome::Denied;
            }
            _ => {}
        }
        if self.json {
            println!("{value}");
        } else if matches!(outcome, Outcome::Failed) {
            eprintln!("mip-mn: {text}");
        } else {
            println!("{text}");
        }
        outcome
    }

    fn print_timeout(&self, after: Duration) {
        if self.json {
            println!(
                "{}",
                json!({ "event": "timeout", "after_secs": after.as_secs() })
            );
        } else {
            println!("no reply within {} s", after.as_secs());
        }
    }
}

fn code_fields(code: ReplyCode) -> (u8, &'static str, &'static str) {
    (u8::from(code), code.name(), code.description())
}

/// One outcome line, as text and as JSON.
fn describe(ev: &MnEvent) -> (String, serde_json::Value, Outcome) {
    match ev {
        MnEvent::Registered {
            home_address,
            care_of_address,
            code,
            lifetime,
            requested_lifetime,
            expires,
            renewal,
        } => {
            let (n, name, desc) = code_fields(*code);
            let text = format!(
                "{} home={home_address} coa={care_of_address} lifetime={lifetime} code={n} ({desc})",
                if *renewal { "reregistered" } else { "registered" }
            );
            let value = json!({
                "event": if *renewal { "reregistered" } else { "registered" },
                "home_address": home_address.to_string(), "care_of_address": care_of_address.to_string(),
                "lifetime": lifetime, "requested_lifetime": requested_lifetime,
                "expires_unix_micros": expires.map(|t| t.as_micros()),
                "code": n, "code_name": name, "description": desc,
            });
            (text, value, Outcome::Accepted)
        }
        MnEvent::Deregistered {
            care_of_address,
            code,
        } => {
            let (n, name, desc) = code_fields(*code);
            let text = format!("deregistered coa={care_of_address} code={n} ({desc})");
            let value = json!({ "event": "deregistered", "care_of_address": care_of_address.to_string(),
                "code": n, "code_name": name, "description": desc });
            (text, value, Outcome::Accepted)
        }
        MnEvent::Denied {
            code,
            deregistration,
        } => {
            let (n, name, desc) = code_fields(*code);
            let what = if *deregistration {
                "deregistration denied"
            } else {
                "denied"
            };
            let text = format!("{what} code={n} ({desc})");
            let value = json!({ "event": "denied", "deregistration": deregistration,
                "code": n, "code_name": name, "description": desc });
            (text, value, Outcome::Denied)
        }
        MnEvent::UnauthenticatedReply { claimed } => {
            let text = format!(
                "discarded a reply with code {} ({}): its authenticator does not verify (RFC 5944 3.6.2.1)",
                u8::from(*claimed), claimed.description()
            );
            let value = json!({ "event": "unauthenticated_reply", "code": u8::from(*claimed) });
            (text, value, Outcome::Note)
        }
        MnEvent::GaveUp {
            attempts,
            deregistration,
        } => {
            let text = format!("no reply after {attempts} requests, gave up");
            let value = json!({ "event": "gave_up", "attempts": attempts, "deregistration": deregistration });
            (text, value, Outcome::NoReply)
        }
        MnEvent::Resynchronized {
            replay,
            clock_offset_micros,
        } => {
            let text = format!("identification mismatch (133): resynchronised {replay:?}, offset {clock_offset_micros} us, retrying");
            let value = json!({ "event": "resynchronized", "replay": format!("{replay:?}").to_lowercase(),
                "clock_offset_micros": clock_offset_micros });
            (text, value, Outcome::Note)
        }
        MnEvent::Expired { care_of_address } => {
            let text = format!("binding for coa={care_of_address} expired");
            let value =
                json!({ "event": "expired", "care_of_address": care_of_address.to_string() });
            (text, value, Outcome::Note)
        }
        MnEvent::Failed { error } => {
            let value = json!({ "event": "failed", "error": error.to_string() });
            (error.to_string(), value, Outcome::Failed)
        }
    }
}

fn exit_code(outcome: Outcome) -> ExitCode {
    match outcome {
        Outcome::Accepted | Outcome::Note => ExitCode::SUCCESS,
        Outcome::Denied => ExitCode::from(EXIT_DENIED),
        Outcome::NoReply => ExitCode::from(EXIT_NO_REPLY),
        Outcome::Failed => ExitCode::from(EXIT_USAGE),
    }
}

/// The address the kernel would send from towards `to` (connecting a UDP socket sends
/// nothing), or the bound address when one was given.
fn local_address_towards(bind: SocketAddrV4, to: SocketAddrV4) -> std::io::Result<Ipv4Addr> {
    if !bind.ip().is_unspecified() {
        return Ok(*bind.ip());
    }
    let probe = StdUdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))?;
    probe.connect(to)?;
    match probe.local_addr()? {
        SocketAddr::V4(a) => Ok(*a.ip()),
        SocketAddr::V6(_) => Err(std::io::Error::other("no IPv4 route")),
    }
}
