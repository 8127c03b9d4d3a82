//! Wire formats of Mobile IPv4.
//!
//! Each message has a zero-copy view over a byte buffer (`RegistrationRequest<T>`), whose
//! getters are safe once `check_len` has passed, and a plain `...Repr` value with `parse`,
//! `emit` and `buffer_len`. Extensions are read with [`ExtensionIter`], which yields one
//! `Result` per extension and stops after the first error.
//!
//! Layouts: RFC 5944 sections 2.1 (agent advertisement), 3.3 (request), 3.4 (reply) and 3.5
//! (extensions); RFC 3115 (vendor extensions); RFC 2794 (NAI); RFC 1256 (ICMP router discovery).

pub mod extension;
pub mod icmp;
pub mod notification;
pub mod registration;
pub mod reply_code;

pub use extension::{
    ext_type, is_skippable, AuthExtension, Extension, ExtensionItem, ExtensionIter,
    VendorExtension, AUTH_EXT_COVERED_HEADER,
};
pub use icmp::{
    icmp_checksum, AgentAdvertisement, AgentAdvertisementRepr, AgentFlags, AgentSolicitationRepr,
    MobilityAgentExt, ICMP_ROUTER_ADVERTISEMENT, ICMP_ROUTER_SOLICITATION,
};
pub use registration::{
    message_type, RegistrationFlags, RegistrationReply, RegistrationReplyRepr, RegistrationRequest,
    RegistrationRequestRepr, REPLY_FIXED_LEN, REPLY_TYPE, REQUEST_FIXED_LEN, REQUEST_TYPE,
};
pub use reply_code::ReplyCode;

/// Why bytes could not be read as, or written to, a Mobile IP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The buffer is shorter than the format needs.
    #[error("truncated: need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    /// The type byte names another message.
    #[error("wrong message type: expected {expected}, got {got}")]
    WrongType { expected: u8, got: u8 },
    /// An extension's length is invalid for its type or points past the end of the message.
    /// `offset` is where the extension starts (from the start of the message); `len` is the
    /// value of its length field, or the number of bytes left when even the header is cut.
    #[error("bad length {len} for extension type {ext_type} at offset {offset}")]
    BadExtensionLength {
        ext_type: u8,
        offset: usize,
        len: usize,
    },
    /// The ICMP checksum does not verify.
    #[error("bad ICMP checksum")]
    BadChecksum,
    /// Any other violation of the format; the text says which.
    #[error("malformed message: {0}")]
    Malformed(&'static str),
}

/// Result of wire parsing and emitting.
pub type Result<T> = core::result::Result<T, WireError>;

/// Bounds-checked big-endian field access: on a buffer too short for the range (reachable
/// only through `new_unchecked` without `check_len`) reads give zero and writes do nothing,
/// so no getter or setter can panic whatever the buffer holds.
pub(crate) mod bytes {
    use core::ops::Range;

    pub(crate) fn array<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
        buf.get(at..at.saturating_add(N))
            .and_then(|s| <[u8; N]>::try_from(s).ok())
            .unwrap_or([0; N])
    }

    pub(crate) fn u8_at(buf: &[u8], at: usize) -> u8 {
        buf.get(at).copied().unwrap_or(0)
    }

    pub(crate) fn u16_at(buf: &[u8], field: Range<usize>) -> u16 {
        u16::from_be_bytes(array(buf, field.start))
    }

    pub(crate) fn u32_at(buf: &[u8], field: Range<usize>) -> u32 {
        u32::from_be_bytes(array(buf, field.start))
    }

    pub(crate) fn u64_at(buf: &[u8], field: Range<usize>) -> u64 {
        u64::from_be_bytes(array(buf, field.start))
    }

    pub(crate) fn put(buf: &mut [u8], field: Range<usize>, value: &[u8]) {
        if let Some(dst) = buf.get_mut(field) {
            if dst.len() == value.len() {
                dst.copy_from_slice(value);
            }
        }
    }

    pub(crate) fn put_u8(buf: &mut [u8], at: usize, value: u8) {
        if let Some(b) = buf.get_mut(at) {
            *b = value;
        }
    }
}
