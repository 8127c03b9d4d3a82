//! Collecting the SID elements of one message, with errors precise enough for the Agent to
//! choose between "poorly formed" (134) and "CVSE not understood" (140).

use core::net::Ipv4Addr;

use mip_core::wire::{Extension, ExtensionItem, ExtensionIter, ReplyCode, WireError};

use super::element::{
    ElementError, EncryptedSessionKey, LinkLayerAddress, SidElement, StopReason, TransferFlags,
    WakeUpReason,
};
use super::vendor_type;

/// Why the SID elements of a message cannot be collected. Offsets are those of the CVSE
/// from the start of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SidError {
    /// The extensions themselves are not framed correctly (before any SID reading).
    #[error("extension framing: {0}")]
    Wire(#[from] WireError),
    /// The same element twice: which one should count is not defined.
    #[error("SID element {} (type {vendor_type}) repeated at offset {offset}", vendor_type::name(*vendor_type))]
    Duplicate { vendor_type: u16, offset: usize },
    /// A known element whose value breaks its layout or rules.
    #[error("SID element {} (type {vendor_type}) at offset {offset}: {reason}", vendor_type::name(*vendor_type))]
    Malformed {
        vendor_type: u16,
        offset: usize,
        reason: &'static str,
    },
    /// A CVSE of our organization with a vendor type this version does not define.
    #[error("unknown SID vendor type {vendor_type} at offset {offset}")]
    UnknownVendorType { vendor_type: u16, offset: usize },
    /// A SID element after the Mobile-Home Authentication Extension: not covered by the
    /// sender's authenticator, so it cannot be trusted.
    #[error("SID element {} (type {vendor_type}) at offset {offset} follows the authenticator", vendor_type::name(*vendor_type))]
    Unauthenticated { vendor_type: u16, offset: usize },
}

impl SidError {
    /// The registration reply code the Agent answers with: 140 (RFC 3115, a CVSE it does
    /// not understand) for an unknown vendor type, 134 (poorly formed) for the rest.
    pub fn reply_code(&self) -> ReplyCode {
        match self {
            SidError::UnknownVendorType { .. } => ReplyCode::UnsupportedVendorId,
            SidError::Wire(_)
            | SidError::Duplicate { .. }
            | SidError::Malformed { .. }
            | SidError::Unauthenticated { .. } => ReplyCode::PoorlyFormedRequest,
        }
    }
}

/// The SID elements present in one message (at most one of each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SidExtensions<'a> {
    pub target_address: Option<Ipv4Addr>,
    pub session_key: Option<EncryptedSessionKey<'a>>,
    pub session_spi: Option<u32>,
    pub transfer_flags: Option<TransferFlags>,
    pub link_layer_address: Option<LinkLayerAddress<'a>>,
    pub interim_address: Option<Ipv4Addr>,
    pub stop_transfer: Option<StopReason>,
    pub wake_up: Option<WakeUpReason>,
    pub transferring_node: Option<Ipv4Addr>,
}

/// Puts `value` in `slot` unless it is taken.
fn fill<T>(
    slot: &mut Option<T>,
    value: T,
    vendor_type: u16,
    offset: usize,
) -> Result<(), SidError> {
    if slot.is_some() {
        return Err(SidError::Duplicate {
            vendor_type,
            offset,
        });
    }
    *slot = Some(value);
    Ok(())
}

impl<'a> SidExtensions<'a> {
    /// Collects the SID elements (CVSEs whose Vendor/Org-ID is `org_id`) from a message's
    /// extensions, e.g. `RegistrationRequest::extensions()`.
    ///
    /// Only the extensions before the first Mobile-Home Authentication Extension count: a
    /// SID element after it is `Unauthenticated`. Every other extension (NAI, auth, NVSE,
    /// another organization's CVSE, unknown types) is left to the caller, which decides
    /// on them as RFC 5944 1.9 and RFC 3115 say. The first error wins.
    pub fn collect<I>(org_id: u32, items: I) -> Result<Self, SidError>
    where
        I: IntoIterator<Item = Result<ExtensionItem<'a>, WireError>>,
    {
        let mut out = SidExtensions::default();
        let mut authenticated = false;
        for item in items {
            let item = item?;
            let cvse = match item.ext {
                Extension::MobileHomeAuth(_) => {
                    authenticated = true;
                    continue;
                }
                Extension::CriticalVendor(v) if v.org_id == org_id => v,
                _ => continue,
            };
            let (vt, offset) = (cvse.vendor_type, item.offset);
            if authenticated {
                return Err(SidError::Unauthenticated {
                    vendor_type: vt,
                    offset,
                });
            }
            let element = SidElement::parse(vt, cvse.value).map_err(|e| match e {
                ElementError::UnknownVendorType(_) => SidError::UnknownVendorType {
                    vendor_type: vt,
                    offset,
                },
                ElementError::Malformed(reason) => SidError::Malformed {
                    vendor_type: vt,
                    offset,
                    reason,
                },
            })?;
            out.insert(element, offset)?;
        }
        Ok(out)
    }

    /// [`Self::collect`] over the extensions of `message` after its fixed part of
    /// `fixed_len` bytes (24 for a Registration Request or a Generic Notification).
    pub fn from_message(
        message: &'a [u8],
        fixed_len: usize,
        org_id: u32,
    ) -> Result<Self, SidError> {
        Self::collect(org_id, ExtensionIter::new(message, fixed_len))
    }

    /// Adds one element; `Duplicate` if its slot is taken (`offset` goes into the error).
    pub fn insert(&mut self, element: SidElement<'a>, offset: usize) -> Result<(), SidError> {
        let vt = element.vendor_type();
        match element {
            SidElement::TargetAddress(a) => fill(&mut self.target_address, a, vt, offset),
            SidElement::SessionKey(k) => fill(&mut self.session_key, k, vt, offset),
            SidElement::SessionSpi(s) => fill(&mut self.session_spi, s, vt, offset),
            SidElement::TransferFlags(f) => fill(&mut self.transfer_flags, f, vt, offset),
            SidElement::LinkLayerAddress(l) => fill(&mut self.link_layer_address, l, vt, offset),
            SidElement::InterimAddress(a) => fill(&mut self.interim_address, a, vt, offset),
            SidElement::StopTransfer(r) => fill(&mut self.stop_transfer, r, vt, offset),
            SidElement::WakeUp(r) => fill(&mut self.wake_up, r, vt, offset),
            SidElement::TransferringNode(a) => fill(&mut self.transferring_node, a, vt, offset),
        }
    }

    /// The elements present, in vendor-type order (the order [`Self::append_to`] writes).
    pub fn elements(&self) -> Vec<SidElement<'a>> {
        [
            self.target_address.map(SidElement::TargetAddress),
            self.session_key.map(SidElement::SessionKey),
            self.session_spi.map(SidElement::SessionSpi),
            self.transfer_flags.map(SidElement::TransferFlags),
            self.link_layer_address.map(SidElement::LinkLayerAddress),
            self.interim_address.map(SidElement::InterimAddress),
            self.stop_transfer.map(SidElement::StopTransfer),
            self.wake_up.map(SidElement::WakeUp),
            self.transferring_node.map(SidElement::TransferringNode),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// No SID element at all (an ordinary registration, or a Target's plain renewal).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Appends every element present as a CVSE for `org_id`, in vendor-type order. Call
    /// before appending the authentication extension. On error `out` is left as it was.
    pub fn append_to(&self, org_id: u32, out: &mut Vec<u8>) -> Result<(), WireError> {
        let start = out.len();
        for element in self.elements() {
            if let Err(e) = element.append_to(org_id, out) {
                out.truncate(start);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Bytes [`Self::append_to`] writes.
    pub fn buffer_len(&self) -> usize {
        self.elements().iter().map(SidElement::buffer_len).sum()
    }
}

#[cfg(test)]
mod tests;
