//! Mobile IPv4 Foreign Agent (RFC 5944 sections 2.3, 3.7 and 4.2.2; RFC 3024).
//!
//! - [`ForeignAgent`]: the sans-IO control plane — Agent Advertisements and answers to
//!   solicitations, relaying of registrations with the checks and denial codes of 3.7,
//!   the pending table and the visitor list, Foreign-Home and Mobile-Foreign
//!   authentication. Its [`FaEvent`]s drive the data plane.
//! - [`forwarder::Forwarder`]: the sans-IO data plane — decapsulation of tunnelled
//!   packets and delivery to a visitor's link-layer address, reverse tunnelling, and
//!   routing of the other visitors' packets, with a counter for every drop.
//! - `mip-fa --config FILE`: the Linux shell ([`daemon`]), with a control socket
//!   ([`control`]).

pub mod advertise;
pub mod config;
pub mod control;
pub mod daemon;
pub mod file;
pub mod foreign_agent;
pub mod forwarder;
pub mod frame;
mod reply;
mod scan;
pub mod shell;
pub mod stats;
pub mod sys;
pub mod visitors;

/// An Ethernet address.
pub type MacAddr = [u8; 6];

pub use advertise::Advertisement;
pub use config::ForeignAgentConfig;
pub use foreign_agent::{FaEvent, FaTransmit, ForeignAgent, LinkDatagram, RemovalReason};
pub use reply::IcmpErrorKind;
pub use stats::{DiscardReason, FaStats};
pub use visitors::{DeliveryStyle, Visitor, VisitorSnapshot};
