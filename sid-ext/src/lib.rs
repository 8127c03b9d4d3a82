//! Session Inter-Device (SID) mobility extensions to Mobile IPv4 (patent FIG. 1a / 1b):
//! a node hands its address, and with it its sessions, to another device through the
//! Agent (the home agent), and takes it back when the Agent wakes it up.
//!
//! - [`wire`]: the SID registration extensions (RFC 3115 CVSEs) and the wake-up
//!   (RFC 6098 Generic Notification); byte layouts in `RFC-NOTES.md, "SID formats"`.

pub mod crypto;
pub mod device;
pub mod negotiation;
pub mod wire;
