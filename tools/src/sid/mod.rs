//! `sidctl`: the Session Inter-Device mobility device daemon and its commands (issue 4,
//! patent FIG. 1a through the Agent, FIG. 1b on the same subnet without one). The protocol
//! logic is `sid_ext::negotiation`, `sid_ext::device` and `sid_ext::device::local`; this is
//! the shell.
//!
//! - [`config`]: the `serve` configuration (TOML);
//! - [`control`]: the JSON-line protocol of the Unix control socket;
//! - [`core`]: the daemon's state without I/O (commands, events, network actions);
//! - [`datapath`]: what the Target's data plane suppresses (resets, unreachables);
//!   a same-subnet Target uses its outbound half only;
//! - [`neigh`]: the TN's neighbour entries pinned while its address is released;
//! - [`daemon`]: the I/O loop.

pub mod config;
pub mod control;
pub mod core;
pub mod daemon;
pub mod datapath;
pub mod neigh;
