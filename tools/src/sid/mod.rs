//! `sidctl`: the Session Inter-Device mobility device daemon and its commands (issue 4,
//! patent FIG. 1a). The protocol logic is `sid_ext::negotiation` and `sid_ext::device`;
//! this is the shell.
//!
//! - [`config`]: the `serve` configuration (TOML);
//! - [`control`]: the JSON-line protocol of the Unix control socket;
//! - [`core`]: the daemon's state without I/O (commands, events, network actions);
//! - [`datapath`]: what the Target's data plane suppresses (resets, unreachables);
//! - [`neigh`]: the TN's neighbour entries pinned while its address is released;
//! - [`daemon`]: the I/O loop.

pub mod config;
pub mod control;
pub mod core;
pub mod daemon;
pub mod datapath;
pub mod neigh;
