//! `sid-lab`: the real-packet lab (design3.md) from the command line.
//!
//! - `sid-lab up [--name N] [--bare HOST]...`: builds the base topology as `sl-N-*` and leaves
//!   it running.
//! - `sid-lab down [--name N | --all]`: removes a named lab (default `lab`) and every lab left
//!   by a process that no longer runs; `--all` removes every `sl*` lab.
//! - `sid-lab exec [--name N | --prefix P] HOST -- CMD...`: runs a command inside a host.
//! - `sid-lab list`: the labs that exist.
//! - `sid-lab run SCENARIO [--json] [--same-subnet]`: a scenario in a lab of its own, torn
//!   down afterwards; `--same-subnet` runs its patent FIG. 1b variant (`call-transfer`).
//!
//! Exit codes: 0 ok, 1 scenario failed, 2 usage, 3 lab error.

use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use nix::sys::signal::{SigSet, Signal};

use tools::lab::guard::{fmt_mac, teardown_live_labs};
use tools::lab::netns::{self, LabOwner};
use tools::lab::scenario::{self, ScenarioOptions, SCENARIOS};
use tools::lab::{Lab, LabError, Topology};

const DEFAULT_NAME: &str = "lab";

#[derive(Parser)]
#[command(
    name = "sid-lab",
    about = "Network-namespace lab for sidmip: topology, commands, scenarios"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the base topology and leave it running.
    Up {
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
        /// Leave this host without addresses and routes (its daemon configures it), e.g. mn.
        #[arg(long)]
        bare: Vec<String>,
    },
    /// Remove a named lab and labs of dead processes (or every lab with --all).
    Down {
        #[arg(long, conflicts_with = "all")]
        name: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// Run a command inside a host of a lab.
    Exec {
        #[arg(long, default_value = DEFAULT_NAME, conflicts_with = "prefix")]
        name: String,
        /// The prefix of a lab made by a process (`sl1234-0`), instead of --name.
        #[arg(long)]
        prefix: Option<String>,
        host: String,
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// List the labs that exist.
    List,
    /// Run a scenario in a fresh lab, then remove the lab.
    Run {
        scenario: String,
        #[arg(long)]
        json: bool,
        /// Seconds of traffic per phase (default: the scenario's, 3).
        #[arg(long)]
        duration: Option<f64>,
        /// UDP packets per second (default: the scenario's, 1000).
        #[arg(long)]
        pps: Option<u32>,
        /// TCP stream rate, bytes per second (default: the scenario's; 1,000,000, or
        /// 20,000 for call-transfer).
        #[arg(long)]
        tcp_rate: Option<u64>,
        /// The scenario's same-subnet variant (patent FIG. 1b, no Agent): `call-transfer
        /// --same-subnet` runs `call-transfer-local`.
        #[arg(long)]
        same_subnet: bool,
    },
}

struct Fail(u8, String);

impl From<LabError> for Fail {
    fn from(e: LabError) -> Self {
        Fail(3, e.to_string())
    }
}

/// Ctrl-C or a kill during `run` still removes the lab: the signal is taken by a thread that
/// tears down the live labs and then ends the process.
fn teardown_on_signals() -> Result<(), Fail> {
    let mut set = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        set.add(s);
    }
    set.thread_block()
        .map_err(|e| Fail(3, format!("blocking signals: {e}")))?;
    std::thread::spawn(move || {
        if let Ok(sig) = set.wait() {
            eprintln!("sid-lab: {sig}, removing the lab");
            teardown_live_labs();
            std::process::exit(128 + sig as i32);
        }
    });
    Ok(())
}

fn up(name: &str, bare: &[String]) -> Result<(), Fail> {
    let mut topology = Topology::base();
    for host in bare {
        topology.strip_host_config(host)?;
    }
    let lab = Lab::up_named(topology, name)?;
    println!(
        "lab {} is up (switch namespace {})",
        lab.prefix(),
        lab.switch_ns()
    );
    for h in &lab.topology().hosts {
        for (i, iface) in h.ifaces.iter().enumerate() {
            let addrs: Vec<String> = iface.addrs.iter().map(|a| a.to_string()).collect();
            println!(
                "  {:<4} {:<18} {:<9} {} lan {:<5} {}",
                if i == 0 { h.name.as_str() } else { "" },
                lab.ns(&h.name)?,
                iface.name,
                fmt_mac(&lab.mac(&h.name, &iface.name)?),
                iface.lan,
                addrs.join(" ")
            );
        }
    }
    println!(
        "  run `sid-lab exec --name {name} HOST -- CMD`, remove with `sid-lab down --name {name}`"
    );
    lab.persist();
    Ok(())
}

fn down(name: Option<&str>, all: bool) -> Result<(), Fail> {
    let removed = if all {
        netns::remove_labs(|_| true)?
    } else {
        let prefix = netns::named_prefix(name.unwrap_or(DEFAULT_NAME))?;
        netns::remove_labs(|n| n.prefix == prefix || !netns::owner_alive(&n.owner))?
    };
    if removed.is_empty() {
        println!("no lab to remove");
    }
    for p in removed {
        println!("removed {p}");
    }
    Ok(())
}

fn exec(name: &str, prefix: Option<&str>, host: &str, cmd: &[String]) -> Result<(), Fail> {
    let prefix = match prefix {
        Some(p) => p.to_owned(),
        None => netns::named_prefix(name)?,
    };
    let ns = netns::ns_name(&prefix, host);
    if !netns::netns_path(&ns).exists() {
        return Err(Fail(3, format!("no namespace {ns} (is the lab up?)")));
    }
    let err = Command::new(netns::ip_bin())
        .args(["netns", "exec", &ns])
        .args(cmd)
        .exec();
    Err(Fail(3, format!("running ip netns exec: {err}")))
}

fn list() -> Result<(), Fail> {
    let mut labs: std::collections::BTreeMap<String, (LabOwner, Vec<String>)> = Default::default();
    for n in netns::list_lab_namespaces()? {
        labs.entry(n.prefix.clone())
            .or_insert_with(|| (n.owner.clone(), Vec::new()))
            .1
            .push(n.host);
    }
    if labs.is_empty() {
        println!("no lab");
    }
    for (prefix, (owner, hosts)) in labs {
        let who = match &owner {
            LabOwner::Named(n) => format!("named {n}"),
            LabOwner::Process { pid, .. } if netns::owner_alive(&owner) => format!("process {pid}"),
            LabOwner::Process { pid, .. } => format!("process {pid} (gone: stale)"),
        };
        println!("{prefix:<14} {who:<28} {}", hosts.join(" "));
    }
    Ok(())
}

/// The flags of `sid-lab run`, `None` where not given.
struct RunFlags {
    duration: Option<f64>,
    pps: Option<u32>,
    tcp_rate: Option<u64>,
    same_subnet: bool,
}

fn run_scenario(name: &str, json: bool, flags: RunFlags) -> Result<bool, Fail> {
    let s = scenario::find(name).ok_or_else(|| {
        let names: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
        Fail(
            2,
            format!("unknown scenario {name:?}; known: {}", names.join(", ")),
        )
    })?;
    let s = match flags.same_subnet {
        false => s,
        true => scenario::same_subnet_variant(name).ok_or_else(|| {
            Fail(
                2,
                format!("scenario {name:?} has no same-subnet variant (--same-subnet: call-transfer)"),
            )
        })?,
    };
    let d = &s.defaults;
    let duration = match flags.duration {
        None => d.duration,
        Some(secs) => Duration::try_from_secs_f64(secs)
            .map_err(|_| Fail(2, format!("--duration {secs}: not a duration in seconds")))?,
    };
    let opts = ScenarioOptions {
        duration,
        pps: flags.pps.unwrap_or(d.pps),
        tcp_rate: flags.tcp_rate.unwrap_or(d.tcp_rate),
    };
    teardown_on_signals()?;
    let report = scenario::run_scenario(s, &opts)?;
    if json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Fail(3, format!("encoding report: {e}")))?;
        println!("{text}");
    } else {
        print!("{report}");
    }
    Ok(report.passed)
}

fn main() -> ExitCode {
    let mut help = String::from("Scenarios (sid-lab run NAME):\n");
    for s in SCENARIOS {
        help.push_str(&format!("  {:<18} {}\n", s.name, s.about));
    }
    let matches = Cli::command().after_help(help).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let result = match cli.cmd {
        Cmd::Up { name, bare } => up(&name, &bare).map(|()| true),
        Cmd::Down { name, all } => down(name.as_deref(), all).map(|()| true),
        Cmd::Exec {
            name,
            prefix,
            host,
            cmd,
        } => exec(&name, prefix.as_deref(), &host, &cmd).map(|()| true),
        Cmd::List => list().map(|()| true),
        Cmd::Run {
            scenario,
            json,
            duration,
            pps,
            tcp_rate,
            same_subnet,
        } => run_scenario(
            &scenario,
            json,
            RunFlags {
                duration,
                pps,
                tcp_rate,
                same_subnet,
            },
        ),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(Fail(code, msg)) => {
            eprintln!("sid-lab: {msg}");
            ExitCode::from(code)
        }
    }
}
