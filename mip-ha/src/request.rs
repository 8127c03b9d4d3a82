//! One pass over a Registration Request: the fixed part and what the home agent needs
//! from its extensions, before any decision is taken.

use mip_core::wire::{
    is_skippable, Extension, ExtensionIter, RegistrationRequest, RegistrationRequestRepr,
    VendorExtension, WireError, AUTH_EXT_COVERED_HEADER, REQUEST_FIXED_LEN,
};
use sid_ext::wire::{SidError, SidExtensions};

/// An authentication extension and the bytes its authenticator covers (RFC 5944 3.5.1).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AuthAt<'a> {
    pub spi: u32,
    pub authenticator: &'a [u8],
    pub covered: &'a [u8],
}

#[derive(Debug)]
pub(crate) struct ScannedRequest<'a> {
    pub repr: RegistrationRequestRepr,
    /// The NAI, when it comes before the Mobile-Home Authentication Extension and is
    /// therefore covered by it.
    pub nai: Option<&'a [u8]>,
    pub mobile_home_auth: Option<AuthAt<'a>>,
    /// Foreign-Home Authentication Extensions; 3.8.2.1 c wants exactly one.
    pub foreign_home_auths: usize,
    pub first_foreign_home_auth: Option<AuthAt<'a>>,
    /// A critical vendor extension covered by the mobile node's authenticator.
    pub mobile_critical_vendor: Option<VendorExtension<'a>>,
    /// A critical vendor extension added after it (by a foreign agent).
    pub foreign_critical_vendor: Option<VendorExtension<'a>>,
    /// The SID elements (CVSEs of the SID organization, which the two fields above
    /// leave out) when SID is enabled; their errors are answered once the sender is
    /// authenticated.
    pub sid: Option<Result<SidExtensions<'a>, SidError>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanError {
    Malformed(WireError),
    /// A non-skippable extension type we do not know (RFC 5944 1.9).
    UnknownExtension(u8),
}

impl From<WireError> for ScanError {
    fn from(e: WireError) -> Self {
        ScanError::Malformed(e)
    }
}

/// `sid_org`: the SID Vendor/Org-ID when SID is enabled.
pub(crate) fn scan(payload: &[u8], sid_org: Option<u32>) -> Result<ScannedRequest<'_>, ScanError> {
    let packet = RegistrationRequest::new_checked(payload)?;
    let repr = RegistrationRequestRepr::parse(&packet)?;
    let mut scanned = ScannedRequest {
        repr,
        nai: None,
        mobile_home_auth: None,
        foreign_home_auths: 0,
        first_foreign_home_auth: None,
        mobile_critical_vendor: None,
        foreign_critical_vendor: None,
        sid: sid_org.map(|org| SidExtensions::collect(org, ExtensionIter::new(payload, REQUEST_FIXED_LEN))),
    };
    // The iterator borrows `packet`, which borrows `payload`; take slices of `payload`
    // itself so that what we keep lives as long as the datagram.
    let extensions = ExtensionIter::new(payload, REQUEST_FIXED_LEN);
    for item in extensions {
        let item = item?;
        let covered = payload
            .get(..item.offset + AUTH_EXT_COVERED_HEADER)
            .ok_or(ScanError::Malformed(WireError::Malformed("authenticator past the end")));
        let before_mobile_home_auth = scanned.mobile_home_auth.is_none();
        match item.ext {
            Extension::MobileHomeAuth(a) if before_mobile_home_auth => {
                scanned.mobile_home_auth =
                    Some(AuthAt { spi: a.spi, authenticator: a.authenticator, covered: covered? });
            }
            Extension::MobileHomeAuth(_) => {}
            Extension::ForeignHomeAuth(a) => {
                scanned.foreign_home_auths += 1;
                if scanned.first_foreign_home_auth.is_none() {
                    scanned.first_foreign_home_auth =
                        Some(AuthAt { spi: a.spi, authenticator: a.authenticator, covered: covered? });
                }
            }
            // Between a mobile node and a foreign agent; not the home agent's business.
            Extension::MobileForeignAuth(_) => {}
            Extension::Nai(nai) if before_mobile_home_auth && scanned.nai.is_none() => scanned.nai = Some(nai),
            Extension::Nai(_) => {}
            Extension::CriticalVendor(v) if Some(v.org_id) == sid_org => {}
            Extension::CriticalVendor(v) => {
                let slot = if before_mobile_home_auth {
                    &mut scanned.mobile_critical_vendor
                } else {
                    &mut scanned.foreign_critical_vendor
                };
                if slot.is_none() {
                    *slot = Some(v);
                }
            }
            Extension::NormalVendor(_) => {}
            Extension::Unknown { ext_type, .. } if !is_skippable(ext_type) => {
                return Err(ScanError::UnknownExtension(ext_type));
            }
            Extension::Unknown { .. } => {}
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }
    Ok(scanned)
}
