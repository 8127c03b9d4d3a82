//! Wire formats of Session Inter-Device (SID) mobility, first embodiment (patent FIG. 1a
//! and 1b): the registration extensions that ask the Agent to transfer a node's address to
//! a Target, renew or stop the transfer, and the wake-up that ends it.
//!
//! Every SID element is one Critical Vendor/Organization Specific Extension (RFC 3115,
//! CVSE, type 38, long form), so that an agent that does not know SID rejects the request
//! (code 140) instead of ignoring it. The Vendor/Org-ID is configurable; the default is
//! RFC 5612's documentation number 32473. The Vendor-CVSE-Type names the element
//! ([`vendor_type`]); its value layout is in [`element`] and, byte by byte, in
//! `RFC-NOTES.md, "SID formats"`.
//!
//! - [`SidElement`]: one element; `parse` from a CVSE value, `emit`/`append_to` a CVSE.
//! - [`SidExtensions`]: every SID element of a message, collected from its
//!   [`ExtensionIter`](mip_core::wire::ExtensionIter), with errors that tell a duplicate, a
//!   malformed value and an unknown vendor type apart ([`SidError::reply_code`]).
//! - [`wake_up`]: the wake-up as an RFC 6098 Generic Notification (type 22, views in
//!   `mip_core::wire::notification`) and its acknowledgement (type 23).

pub mod collect;
pub mod element;
pub mod wake_up;

pub use collect::{SidError, SidExtensions};
pub use element::{
    ElementError, EncryptedSessionKey, LinkLayerAddress, SessionKeyAlgorithm, SidElement,
    StopReason, TransferFlags, WakeUpReason,
};

/// RFC 5612: the Private Enterprise Number set aside for documentation, our default
/// Vendor/Org-ID until a real one is assigned.
pub const DEFAULT_ORG_ID: u32 = 32473;

/// Vendor-CVSE-Type of each SID element (under the configured Vendor/Org-ID).
pub mod vendor_type {
    /// IPv4 address of the Target Node.
    pub const TARGET_ADDRESS: u16 = 1;
    /// The session key, encrypted for the Agent.
    pub const ENCRYPTED_SESSION_KEY: u16 = 2;
    /// SPI of the temporary Agent/Target association keyed by the session key.
    pub const SESSION_SPI: u16 = 3;
    /// F (further transfer permitted) and T (reverse tunnel) flags.
    pub const TRANSFER_FLAGS: u16 = 4;
    /// The Transferring Node's link-layer address.
    pub const LINK_LAYER_ADDRESS: u16 = 5;
    /// The Transferring Node's interim IPv4 address.
    pub const INTERIM_ADDRESS: u16 = 6;
    /// The Transferring Node demands that the transfer stop.
    pub const STOP_TRANSFER: u16 = 7;
    /// The transfer ended: carried by the wake-up.
    pub const WAKE_UP: u16 = 8;
    /// The Transferring Node whose traffic moves (further transfer).
    pub const TRANSFERRING_NODE_ADDRESS: u16 = 9;

    /// Every defined type, in order.
    pub const ALL: [u16; 9] = [1, 2, 3, 4, 5, 6, 7, 8, 9];

    /// A short stable name, for logs and errors.
    pub fn name(vendor_type: u16) -> &'static str {
        match vendor_type {
            TARGET_ADDRESS => "target_address",
            ENCRYPTED_SESSION_KEY => "encrypted_session_key",
            SESSION_SPI => "session_spi",
            TRANSFER_FLAGS => "transfer_flags",
            LINK_LAYER_ADDRESS => "link_layer_address",
            INTERIM_ADDRESS => "interim_address",
            STOP_TRANSFER => "stop_transfer",
            WAKE_UP => "wake_up",
            TRANSFERRING_NODE_ADDRESS => "transferring_node_address",
            _ => "unknown",
        }
    }
}
