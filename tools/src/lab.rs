//! A virtual network lab for real-packet tests: network namespaces joined by veth pairs and
//! Linux bridges (design3.md, "Lab topology").
//!
//! - [`topology`]: a description of LANs and hosts; [`Topology::base`] is the issue-3 lab.
//! - [`Lab`]: builds a topology with `ip -batch` and removes it on drop (also on panic):
//!   every process started in its namespaces is killed and every namespace deleted.
//! - [`netns`]: naming of lab namespaces, leftovers of killed processes, running a closure
//!   inside a namespace.
//! - [`traffic`]: the probe formats of `sid-traffic` and their analysis (loss and gaps per move).
//! - [`sid`]: the SID devices (Agent, Transferring Node, Targets) and the `sidctl` calls that drive them.
//! - [`callapp`]: the call application (`sid-traffic udp-echo`/`udp-call`); [`call`]: the
//!   SID call-transfer scenario and its report, on an itinerary of [`call_plan`] (FIG. 1a:
//!   TN -> Target 1 -> Target 2 -> TN through the Agent; FIG. 1b: a Target on the TN's LAN,
//!   no Agent).
//! - [`scenario`]: scenarios over a `Lab` that return a serializable report (`sid-lab run`).
//!
//! Everything here needs root (namespaces, bridges, raw sockets) and touches only
//! 198.18.0.0/15 and loopback.

pub mod call;
mod call_checks;
mod call_counters;
pub mod call_plan;
pub mod call_report;
mod call_text;
pub mod callapp;
pub mod guard;
pub mod mobility;
pub mod netns;
pub mod ping;
pub mod process;
pub mod scenario;
pub mod sid;
pub mod topology;
pub mod traffic;

pub use guard::Lab;
pub use process::{Capture, ChildOutput, LabChild};
pub use topology::{Cidr, HostSpec, IfaceSpec, LanSpec, Route, Topology};

use std::path::PathBuf;

/// Why a lab operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("invalid topology: {0}")]
    Topology(String),
    #[error("unknown host {0:?} in this lab")]
    UnknownHost(String),
    #[error("unknown LAN {0:?} in this lab")]
    UnknownLan(String),
    #[error("host {host:?} has no interface {iface:?}")]
    UnknownIface { host: String, iface: String },
    #[error("invalid lab name {0:?}: 1 to 12 characters a-z, 0-9")]
    BadName(String),
    #[error("lab {0:?} already exists (remove it with `sid-lab down --name {0}`)")]
    Exists(String),
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Sys {
        what: String,
        #[source]
        source: nix::Error,
    },
    #[error("timed out after {millis} ms waiting for {what}")]
    Timeout { what: String, millis: u128 },
    #[error("tool {name:?} not found (looked in {searched:?}); build it or set SIDLAB_BIN_DIR")]
    ToolNotFound {
        name: String,
        searched: Vec<PathBuf>,
    },
    #[error("report of {what}: {reason}")]
    Report { what: String, reason: String },
    #[error("scenario check failed: {0}")]
    Check(String),
}

impl LabError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        LabError::Io {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn sys(what: impl Into<String>, source: nix::Error) -> Self {
        LabError::Sys {
            what: what.into(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, LabError>;
