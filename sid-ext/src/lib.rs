//! Session Inter-Device (SID) mobility extensions to Mobile IPv4 (patent FIG. 1a / 1b):
//! a node hands its address, and with it its sessions, to another device through the
//! Agent (the home agent), or on its own link straight to a Target that takes the address
//! by ARP, and takes it back when it is woken up or demands it.
//!
//! - [`wire`]: the SID registration extensions (RFC 3115 CVSEs) and the wake-up
//!   (RFC 6098 Generic Notification); byte layouts in `RFC-NOTES.md, "SID formats"`.
//! - [`negotiation`]: the device-to-device negotiation of the session key and terms.
//! - [`device`]: the Transferring Node and Target roles, with an Agent (FIG. 1a) and
//!   without one on the same link ([`device::local`], FIG. 1b).
//! - [`crypto`]: session keys, key wrap and HPKE from maintained crates.

pub mod crypto;
pub mod device;
pub mod negotiation;
pub mod wire;
