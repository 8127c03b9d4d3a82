//! `sidctl`: Session Inter-Device mobility on a device (issue 4).
//!
//! `sidctl serve --config FILE` runs the device daemon; the other subcommands talk to it
//! over its control socket. Exit codes: 0 ok, 2 usage or configuration, 3 daemon
//! unreachable, 4 refused.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tools::sid::config::SidConfig;
use tools::sid::control::{call, ClientError, Request};

#[derive(Parser)]
#[command(name = "sidctl", about = "Session Inter-Device mobility: move a session's address to another device")]
struct Cli {
    /// The daemon's control socket (client commands).
    #[arg(long, global = true, default_value = "/run/sidctl.sock")]
    socket: PathBuf,
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Transferring,
    Target,
}

#[derive(Subcommand)]
enum Command {
    /// Run the device daemon.
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// Start a negotiation with a configured peer (identity or address).
    Offer {
        #[arg(long)]
        peer: String,
        /// This device's role in the transfer.
        #[arg(long, value_enum)]
        role: RoleArg,
        #[arg(long)]
        lifetime: Option<u16>,
        /// Grant (TN) or ask for (Target) permission to transfer further.
        #[arg(long)]
        further: bool,
        /// Return traffic reverse-tunnelled through the Agent.
        #[arg(long)]
        reverse_tunnel: bool,
        /// Target: the session (TN address) asked for.
        #[arg(long)]
        tn_address: Option<Ipv4Addr>,
        /// TN: the peer is on this link; transfer without the Agent (FIG. 1b). Implied
        /// without an [agent] section or for a peer with `same_subnet = true`.
        #[arg(long)]
        local: bool,
    },
    /// Accept a pending offer.
    Accept {
        id: u64,
        /// Target: choose the reverse path (default: as offered).
        #[arg(long)]
        reverse_tunnel: Option<bool>,
        /// TN answering a Target's offer: transfer without the Agent (FIG. 1b).
        #[arg(long)]
        local: bool,
    },
    /// Start a negotiated transfer: through the Agent (TN), by telling a same-subnet Target
    /// to take the address now (TN, FIG. 1b), or hand the session on (Target).
    Transfer { id: u64 },
    /// Target: renew the binding now (not for same-subnet transfers).
    Renew,
    /// Target: end the transfer (lifetime 0 to the Agent; on the same subnet, the wake-up
    /// to the TN); TN: stop-transfer demand (to the Agent, or to the same-subnet Target).
    Stop,
    /// Show the daemon's state.
    Status,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sidctl: runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let request = match cli.command {
        Command::Serve { config } => {
            let cfg = match SidConfig::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("sidctl: {}: {e}", config.display());
                    return ExitCode::from(2);
                }
            };
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_writer(std::io::stderr)
                .init();
            return match rt.block_on(tools::sid::daemon::serve(cfg)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sidctl serve: {e}");
                    ExitCode::from(1)
                }
            };
        }
        Command::Offer { peer, role, lifetime, further, reverse_tunnel, tn_address, local } => Request::Offer {
            peer,
            role: match role {
                RoleArg::Transferring => "transferring".into(),
                RoleArg::Target => "target".into(),
            },
            lifetime,
            further_transfer: further,
            reverse_tunnel,
            tn_address,
            local,
        },
        Command::Accept { id, reverse_tunnel, local } => Request::Accept { id, reverse_tunnel, local },
        Command::Transfer { id } => Request::Transfer { id },
        Command::Renew => Request::Renew,
        Command::Stop => Request::Stop,
        Command::Status => Request::Status,
    };
    match rt.block_on(call(&cli.socket, &request)) {
        Ok(resp) => {
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&resp).unwrap_or_default());
            } else if resp.data.is_null() || !resp.ok {
                println!("{}", resp.message);
            } else {
                println!("{}", serde_json::to_string_pretty(&resp.data).unwrap_or_default());
            }
            if resp.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(4)
            }
        }
        Err(ClientError::Unreachable { path, source }) => {
            eprintln!("sidctl: daemon unreachable at {path}: {source}");
            ExitCode::from(3)
        }
        Err(e) => {
            eprintln!("sidctl: {e}");
            ExitCode::from(3)
        }
    }
}
