//! Mobile IPv4 Home Agent (RFC 5944 section 3.8).
//!
//! [`HomeAgent`] is the sans-IO registration state machine; the `mip-ha` binary is a
//! thin tokio shell around it, with a Unix control socket for `ha-admin`.

pub mod bindings;
pub mod config;
pub mod control;
pub mod daemon;
pub mod dataplane;
pub mod home_agent;
mod request;
pub mod sid;
pub mod stats;

pub use bindings::{BindingSnapshot, TunnelKind};
pub use config::{DaemonConfig, HomeAgentConfig};
pub use home_agent::{HaEvent, HomeAgent, RemovalReason};
pub use sid::{SidConfig, SidEvent, TransferEnd};
pub use stats::{DiscardReason, HaStats, SidStats};
