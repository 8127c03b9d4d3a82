//! Registration extensions (RFC 5944 section 3.5, RFC 2794, RFC 3115).

use super::bytes::{u16_at, u32_at, u8_at};
use super::{Result, WireError};

/// Extension type numbers used in registration messages.
pub mod ext_type {
    /// One-byte Padding (RFC 5944 1.9): a lone type byte, no length, no data. The
    /// iterator steps over it and yields nothing for it.
    pub const PADDING: u8 = 0;
    /// Mobile-Home Authentication Extension (RFC 5944 3.5.2).
    pub const MOBILE_HOME_AUTH: u8 = 32;
    /// Mobile-Foreign Authentication Extension (RFC 5944 3.5.3).
    pub const MOBILE_FOREIGN_AUTH: u8 = 33;
    /// Foreign-Home Authentication Extension (RFC 5944 3.5.4).
    pub const FOREIGN_HOME_AUTH: u8 = 34;
    /// Critical Vendor/Organization Specific Extension (RFC 3115), long form.
    pub const CVSE: u8 = 38;
    /// Encapsulating Delivery Style Extension (RFC 3024), length 0.
    pub const ENCAPSULATING_DELIVERY_STYLE: u8 = 130;
    /// Mobile Node NAI Extension (RFC 2794).
    pub const NAI: u8 = 131;
    /// Normal Vendor/Organization Specific Extension (RFC 3115).
    pub const NVSE: u8 = 134;
}

/// RFC 5944 1.8: types 0..=127 MUST cause rejection when not understood; 128..=255
/// are skipped.
pub fn is_skippable(ext_type: u8) -> bool {
    ext_type >= 128
}

/// Auth extensions are laid out type(1) length(1) SPI(4) authenticator: the bytes an
/// authenticator covers (RFC 5944 3.5.1) are exactly `message[..item.offset + 6]`.
pub const AUTH_EXT_COVERED_HEADER: usize = 6;

/// RFC 5944 3.5.2-3.5.4, the three authentication extensions (short form):
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     Type      |    Length     |              SPI  ....
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///        ... SPI (cont.)          |       Authenticator ...
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// Length counts the bytes after the Length field (4 + authenticator). Any other short-form
/// extension (RFC 5944 1.9, e.g. the NAI of RFC 2794) is Type, Length, Data.
///
/// RFC 3115, Critical (CVSE, long form) and Normal (NVSE) vendor extensions:
///
/// ```text
/// CVSE:
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Type (38)   |   Reserved    |            Length             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                      Vendor/Org-ID                            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |      Vendor-CVSE-Type         |   Vendor-CVSE-Value ...
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// NVSE:
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  Type (134)   |    Length     |           Reserved            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                      Vendor/Org-ID                            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |      Vendor-NVSE-Type         |   Vendor-NVSE-Value ...
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// In both, Length counts the bytes after the Length field. Offsets below are from the start
/// of the extension.
mod field {
    use core::ops::Range;
    pub const TYPE: usize = 0;
    /// Short form (and NVSE) length byte.
    pub const LENGTH: usize = 1;
    /// Bytes before the data of a short-form extension.
    pub const SHORT_HEADER: usize = 2;
    pub const AUTH_SPI: Range<usize> = 2..6;
    pub const AUTH_DATA: usize = AUTH_SPI.end;
    /// CVSE 16-bit length.
    pub const CVSE_LENGTH: Range<usize> = 2..4;
    pub const CVSE_ORG_ID: Range<usize> = 4..8;
    pub const CVSE_VENDOR_TYPE: Range<usize> = 8..10;
    pub const CVSE_VALUE: usize = CVSE_VENDOR_TYPE.end;
    /// Bytes before the CVSE length's count starts.
    pub const CVSE_HEADER: usize = CVSE_LENGTH.end;
    pub const NVSE_RESERVED: Range<usize> = 2..4;
    pub const NVSE_ORG_ID: Range<usize> = 4..8;
    pub const NVSE_VENDOR_TYPE: Range<usize> = 8..10;
    pub const NVSE_VALUE: usize = NVSE_VENDOR_TYPE.end;
}

/// Minimum values of the length field.
const AUTH_MIN_LEN: usize = field::AUTH_DATA - field::SHORT_HEADER;
const CVSE_MIN_LEN: usize = field::CVSE_VALUE - field::CVSE_HEADER;
const NVSE_MIN_LEN: usize = field::NVSE_VALUE - field::SHORT_HEADER;

/// An authentication extension: SPI and the authenticator bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthExtension<'a> {
    pub spi: u32,
    pub authenticator: &'a [u8],
}

/// A vendor extension (CVSE or NVSE) without its framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VendorExtension<'a> {
    /// IANA Private Enterprise Number of the vendor.
    pub org_id: u32,
    pub vendor_type: u16,
    pub value: &'a [u8],
}

/// One registration extension, borrowing its data from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension<'a> {
    MobileHomeAuth(AuthExtension<'a>),
    MobileForeignAuth(AuthExtension<'a>),
    ForeignHomeAuth(AuthExtension<'a>),
    /// RFC 2794; never empty.
    Nai(&'a [u8]),
    /// CVSE 38, long form: type, reserved, length(16), org id(32), vendor type(16), value.
    CriticalVendor(VendorExtension<'a>),
    /// NVSE 134: type, length(8), reserved(16), org id(32), vendor type(16), value.
    NormalVendor(VendorExtension<'a>),
    /// Any other type, read in the short form: type, length(8), data. The parser never
    /// yields this for a type that has its own variant, and `emit` refuses such a type, so
    /// what is written always reads back the same. A type below 128 may use the long form
    /// of RFC 5944 1.10 and then be framed wrongly here; such a message is discarded anyway
    /// (1.8), so only its type matters.
    Unknown {
        ext_type: u8,
        data: &'a [u8],
    },
}

/// Whether a type has its own variant in [`Extension`].
fn has_own_variant(t: u8) -> bool {
    matches!(
        t,
        ext_type::PADDING
            | ext_type::MOBILE_HOME_AUTH
            | ext_type::MOBILE_FOREIGN_AUTH
            | ext_type::FOREIGN_HOME_AUTH
            | ext_type::NAI
            | ext_type::CVSE
            | ext_type::NVSE
    )
}

impl<'a> Extension<'a> {
    /// The type byte.
    pub fn ext_type(&self) -> u8 {
        match self {
            Extension::MobileHomeAuth(_) => ext_type::MOBILE_HOME_AUTH,
            Extension::MobileForeignAuth(_) => ext_type::MOBILE_FOREIGN_AUTH,
            Extension::ForeignHomeAuth(_) => ext_type::FOREIGN_HOME_AUTH,
            Extension::Nai(_) => ext_type::NAI,
            Extension::CriticalVendor(_) => ext_type::CVSE,
            Extension::NormalVendor(_) => ext_type::NVSE,
            Extension::Unknown { ext_type, .. } => *ext_type,
        }
    }

    /// Total bytes on the wire, header included.
    pub fn buffer_len(&self) -> usize {
        match self {
            Extension::MobileHomeAuth(a)
            | Extension::MobileForeignAuth(a)
            | Extension::ForeignHomeAuth(a) => field::AUTH_DATA + a.authenticator.len(),
            Extension::Nai(nai) => field::SHORT_HEADER + nai.len(),
            Extension::CriticalVendor(v) => field::CVSE_VALUE + v.value.len(),
            Extension::NormalVendor(v) => field::NVSE_VALUE + v.value.len(),
            Extension::Unknown { data, .. } => field::SHORT_HEADER + data.len(),
        }
    }

    /// The value of the length field, or an error when the data does not fit it (or the
    /// extension could not be read back as itself).
    fn length_field(&self) -> Result<usize> {
        const TOO_LONG: WireError =
            WireError::Malformed("extension data too long for its length field");
        let (len, max) = match self {
            Extension::MobileHomeAuth(a)
            | Extension::MobileForeignAuth(a)
            | Extension::ForeignHomeAuth(a) => (AUTH_MIN_LEN + a.authenticator.len(), 255),
            Extension::Nai(nai) => {
                if nai.is_empty() {
                    return Err(WireError::Malformed("NAI extension must not be empty"));
                }
                (nai.len(), 255)
            }
            Extension::CriticalVendor(v) => (CVSE_MIN_LEN + v.value.len(), usize::from(u16::MAX)),
            Extension::NormalVendor(v) => (NVSE_MIN_LEN + v.value.len(), 255),
            Extension::Unknown { ext_type, data } => {
                if has_own_variant(*ext_type) {
                    return Err(WireError::Malformed(
                        "unknown extension uses a known type number",
                    ));
                }
                (data.len(), 255)
            }
        };
        if len > max {
            Err(TOO_LONG)
        } else {
            Ok(len)
        }
    }

    /// Writes the extension at the start of `buf` and returns the bytes written.
    /// `Truncated` if `buf` is too small; `Malformed` if the data is too long for the
    /// length field, an NAI is empty, or an `Unknown` uses a type that has its own variant.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let length = self.length_field()?;
        let total = self.buffer_len();
        let have = buf.len();
        let out = buf
            .get_mut(..total)
            .ok_or(WireError::Truncated { need: total, have })?;
        out.fill(0);
        // Length was checked against its field above, so these casts cannot truncate.
        let short_len = u8::try_from(length).unwrap_or(u8::MAX);
        let mut w = Writer { out };
        w.u8(field::TYPE, self.ext_type());
        match self {
            Extension::MobileHomeAuth(a)
            | Extension::MobileForeignAuth(a)
            | Extension::ForeignHomeAuth(a) => {
                w.u8(field::LENGTH, short_len);
                w.bytes(field::AUTH_SPI.start, &a.spi.to_be_bytes());
                w.bytes(field::AUTH_DATA, a.authenticator);
            }
            Extension::Nai(data) | Extension::Unknown { data, .. } => {
                w.u8(field::LENGTH, short_len);
                w.bytes(field::SHORT_HEADER, data);
            }
            Extension::CriticalVendor(v) => {
                let long_len = u16::try_from(length).unwrap_or(u16::MAX);
                w.bytes(field::CVSE_LENGTH.start, &long_len.to_be_bytes());
                w.bytes(field::CVSE_ORG_ID.start, &v.org_id.to_be_bytes());
                w.bytes(field::CVSE_VENDOR_TYPE.start, &v.vendor_type.to_be_bytes());
                w.bytes(field::CVSE_VALUE, v.value);
            }
            Extension::NormalVendor(v) => {
                w.u8(field::LENGTH, short_len);
                w.bytes(field::NVSE_RESERVED.start, &[0, 0]);
                w.bytes(field::NVSE_ORG_ID.start, &v.org_id.to_be_bytes());
                w.bytes(field::NVSE_VENDOR_TYPE.start, &v.vendor_type.to_be_bytes());
                w.bytes(field::NVSE_VALUE, v.value);
            }
        }
        Ok(total)
    }

    /// Appends the extension to `out`; on error `out` is left as it was.
    pub fn append_to(&self, out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        out.resize(start + self.buffer_len(), 0);
        match out.get_mut(start..).map(|tail| self.emit(tail)) {
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) => {
                out.truncate(start);
                Err(e)
            }
            None => {
                out.truncate(start);
                Err(WireError::Malformed("extension buffer"))
            }
        }
    }
}

/// Writes into a slice already sized to the whole extension; out-of-range writes are
/// dropped rather than panicking (they cannot happen once `buffer_len` sized the slice).
struct Writer<'b> {
    out: &'b mut [u8],
}

impl Writer<'_> {
    fn u8(&mut self, at: usize, value: u8) {
        if let Some(b) = self.out.get_mut(at) {
            *b = value;
        }
    }

    fn bytes(&mut self, at: usize, value: &[u8]) {
        if let Some(dst) = self.out.get_mut(at..at.saturating_add(value.len())) {
            dst.copy_from_slice(value);
        }
    }
}

/// One extension as found in a message: where it starts (offset from the start of the
/// message) and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtensionItem<'a> {
    pub offset: usize,
    /// Total bytes, header included.
    pub len: usize,
    pub ext: Extension<'a>,
}

/// Yields `Ok(item)` per extension; on the first error yields `Err` once and then `None`
/// (fused).
///
/// A past-the-end length, a zero length where the type needs data (auth, NAI, vendor), an
/// auth extension shorter than its SPI, a vendor extension shorter than its org-id and
/// vendor type: `BadExtensionLength`. A zero-length extension of any other type is valid
/// (RFC 3024's Encapsulating Delivery Style has length 0). Type 0 is One-byte Padding
/// (RFC 5944 1.9, for registration messages as for router discovery): skipped, never
/// yielded.
#[derive(Debug, Clone)]
pub struct ExtensionIter<'a> {
    message: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> ExtensionIter<'a> {
    /// Iterates over `message[start..]`, reporting offsets from the start of `message`.
    /// A `start` past the end yields one `Truncated` error.
    pub fn new(message: &'a [u8], start: usize) -> Self {
        Self {
            message,
            pos: start,
            done: false,
        }
    }

    /// Reads the extension at `self.pos`: its total length and value.
    fn read_one(&self) -> Result<(usize, Extension<'a>)> {
        let offset = self.pos;
        let rest = self.message.get(offset..).ok_or(WireError::Truncated {
            need: offset,
            have: self.message.len(),
        })?;
        let t = u8_at(rest, field::TYPE);
        let bad = |len: usize| WireError::BadExtensionLength {
            ext_type: t,
            offset,
            len,
        };
        let (length, header) = if t == ext_type::CVSE {
            if rest.len() < field::CVSE_HEADER {
                return Err(bad(rest.len()));
            }
            (
                usize::from(u16_at(rest, field::CVSE_LENGTH)),
                field::CVSE_HEADER,
            )
        } else {
            if rest.len() < field::SHORT_HEADER {
                return Err(bad(rest.len()));
            }
            (usize::from(u8_at(rest, field::LENGTH)), field::SHORT_HEADER)
        };
        let total = header + length;
        let ext_bytes = rest.get(..total).ok_or(bad(length))?;
        let body = ext_bytes.get(header..).unwrap_or(&[]);
        let ext = match t {
            ext_type::MOBILE_HOME_AUTH
            | ext_type::MOBILE_FOREIGN_AUTH
            | ext_type::FOREIGN_HOME_AUTH => {
                if length < AUTH_MIN_LEN {
                    return Err(bad(length));
                }
                let auth = AuthExtension {
                    spi: u32_at(ext_bytes, field::AUTH_SPI),
                    authenticator: ext_bytes.get(field::AUTH_DATA..).unwrap_or(&[]),
                };
                match t {
                    ext_type::MOBILE_HOME_AUTH => Extension::MobileHomeAuth(auth),
                    ext_type::MOBILE_FOREIGN_AUTH => Extension::MobileForeignAuth(auth),
                    _ => Extension::ForeignHomeAuth(auth),
                }
            }
            ext_type::NAI => {
                if length == 0 {
                    return Err(bad(length));
                }
                Extension::Nai(body)
            }
            ext_type::CVSE => {
                if length < CVSE_MIN_LEN {
                    return Err(bad(length));
                }
                Extension::CriticalVendor(VendorExtension {
                    org_id: u32_at(ext_bytes, field::CVSE_ORG_ID),
                    vendor_type: u16_at(ext_bytes, field::CVSE_VENDOR_TYPE),
                    value: ext_bytes.get(field::CVSE_VALUE..).unwrap_or(&[]),
                })
            }
            ext_type::NVSE => {
                if length < NVSE_MIN_LEN {
                    return Err(bad(length));
                }
                Extension::NormalVendor(VendorExtension {
                    org_id: u32_at(ext_bytes, field::NVSE_ORG_ID),
                    vendor_type: u16_at(ext_bytes, field::NVSE_VENDOR_TYPE),
                    value: ext_bytes.get(field::NVSE_VALUE..).unwrap_or(&[]),
                })
            }
            other => Extension::Unknown {
                ext_type: other,
                data: body,
            },
        };
        Ok((total, ext))
    }
}

impl<'a> Iterator for ExtensionIter<'a> {
    type Item = Result<ExtensionItem<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done && self.message.get(self.pos) == Some(&ext_type::PADDING) {
            self.pos += 1;
        }
        if self.done || self.pos == self.message.len() {
            return None;
        }
        match self.read_one() {
            Ok((len, ext)) => {
                let item = ExtensionItem {
                    offset: self.pos,
                    len,
                    ext,
                };
                self.pos += len;
                Some(Ok(item))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl core::iter::FusedIterator for ExtensionIter<'_> {}

#[cfg(test)]
mod tests;
