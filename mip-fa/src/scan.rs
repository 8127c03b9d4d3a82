//! One pass over the extensions of a Registration Request or Reply, noting what the
//! foreign agent needs before it decides anything.
//!
//! The first Mobile-Home Authentication Extension is the authorization-enabling extension
//! (RFC 5944 3.7.2.2): everything up to its end belongs to the mobile node and the home
//! agent and is relayed untouched; what follows it is for the foreign agent, which
//! processes and removes it.

use mip_core::wire::{
    ext_type, is_skippable, Extension, ExtensionIter, VendorExtension, WireError,
    AUTH_EXT_COVERED_HEADER, REPLY_FIXED_LEN, REQUEST_FIXED_LEN,
};

/// An authentication extension and the bytes its authenticator covers (RFC 5944 3.5.1).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AuthAt<'a> {
    pub spi: u32,
    pub authenticator: &'a [u8],
    pub covered: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanError {
    /// The extensions cannot be walked (bad length, truncated).
    Malformed(WireError),
    /// A non-skippable type we do not know, among the extensions meant for us (1.8).
    UnknownExtension(u8),
}

/// What the foreign agent needs from a message's extensions.
#[derive(Debug, Default)]
pub(crate) struct Scanned<'a> {
    /// End of the first Mobile-Home Authentication Extension: the relayed prefix.
    pub mobile_home_end: Option<usize>,
    /// The first NAI (RFC 2794), wherever it is.
    pub nai: Option<&'a [u8]>,
    /// Mobile-Foreign Authentication Extensions after the Mobile-Home one.
    pub mobile_foreign: usize,
    pub first_mobile_foreign: Option<AuthAt<'a>>,
    /// Foreign-Home Authentication Extensions after the Mobile-Home one.
    pub foreign_home: usize,
    pub first_foreign_home: Option<AuthAt<'a>>,
    /// RFC 3024 Encapsulating Delivery Style Extension, anywhere.
    pub delivery_style: bool,
    /// A critical vendor extension meant for us (after the Mobile-Home one): not
    /// understood (RFC 3115, codes 100/101).
    pub critical_vendor_for_us: Option<VendorExtension<'a>>,
}

pub(crate) fn scan_request(payload: &[u8]) -> Result<Scanned<'_>, ScanError> {
    scan(payload, REQUEST_FIXED_LEN)
}

pub(crate) fn scan_reply(payload: &[u8]) -> Result<Scanned<'_>, ScanError> {
    scan(payload, REPLY_FIXED_LEN)
}

fn scan(payload: &[u8], fixed: usize) -> Result<Scanned<'_>, ScanError> {
    let mut s = Scanned::default();
    for item in ExtensionIter::new(payload, fixed) {
        let item = item.map_err(ScanError::Malformed)?;
        let covered = || {
            payload
                .get(..item.offset + AUTH_EXT_COVERED_HEADER)
                .ok_or(ScanError::Malformed(WireError::Malformed(
                    "authenticator past the end",
                )))
        };
        let ours = s.mobile_home_end.is_some();
        match item.ext {
            Extension::MobileHomeAuth(_) if !ours => {
                s.mobile_home_end = Some(item.offset + item.len)
            }
            Extension::MobileForeignAuth(a) if ours => {
                s.mobile_foreign += 1;
                if s.first_mobile_foreign.is_none() {
                    s.first_mobile_foreign = Some(AuthAt {
                        spi: a.spi,
                        authenticator: a.authenticator,
                        covered: covered()?,
                    });
                }
            }
            Extension::ForeignHomeAuth(a) if ours => {
                s.foreign_home += 1;
                if s.first_foreign_home.is_none() {
                    s.first_foreign_home = Some(AuthAt {
                        spi: a.spi,
                        authenticator: a.authenticator,
                        covered: covered()?,
                    });
                }
            }
            Extension::Nai(n) if s.nai.is_none() => s.nai = Some(n),
            Extension::CriticalVendor(v) if ours && s.critical_vendor_for_us.is_none() => {
                s.critical_vendor_for_us = Some(v);
            }
            Extension::Unknown { ext_type: t, .. } => {
                if t == ext_type::ENCAPSULATING_DELIVERY_STYLE {
                    s.delivery_style = true;
                } else if ours && !is_skippable(t) {
                    return Err(ScanError::UnknownExtension(t));
                }
            }
            // Before the Mobile-Home extension everything is the home agent's business;
            // after it, normal vendor extensions are skipped (RFC 3115).
            _ => {}
        }
    }
    Ok(s)
}
