//! Sans-IO Mobile IPv4 (RFC 5944).
//!
//! Everything in this crate takes bytes and a [`time::Time`] and returns bytes, events
//! and deadlines. It opens no socket and reads no clock; the daemons and tools are thin
//! shells around it. The one exception is opt-in: the `linux` feature adds
//! [`linux`], socket helpers for those shells.

pub mod auth;
pub mod dataplane;
#[cfg(feature = "linux")]
pub mod linux;
pub mod mobile_node;
pub mod movement;
pub mod replay;
pub mod time;
pub mod wire;

/// The UDP port of the registration protocol (RFC 5944 section 3.1).
pub const REGISTRATION_PORT: u16 = 434;

/// A datagram a state machine wants sent: the shell sends `payload` as the UDP payload
/// to `destination`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub destination: std::net::SocketAddrV4,
    pub payload: Vec<u8>,
}
