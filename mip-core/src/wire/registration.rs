//! Registration Request and Registration Reply (RFC 5944 sections 3.3 and 3.4).

use core::net::Ipv4Addr;

use super::bytes::{array, put, put_u8, u16_at, u64_at, u8_at};
use super::extension::ExtensionIter;
use super::reply_code::ReplyCode;
use super::{Result, WireError};

/// Message type of a Registration Request.
pub const REQUEST_TYPE: u8 = 1;
/// Message type of a Registration Reply.
pub const REPLY_TYPE: u8 = 3;
/// Length of the fixed part of a Registration Request; extensions follow it.
pub const REQUEST_FIXED_LEN: usize = 24;
/// Length of the fixed part of a Registration Reply; extensions follow it.
pub const REPLY_FIXED_LEN: usize = 20;

/// Peek at the first byte to dispatch a UDP 434 datagram.
pub fn message_type(bytes: &[u8]) -> Option<u8> {
    bytes.first().copied()
}

/// The flags byte of a Registration Request, bit 7 first: S B D M G r T x (RFC 5944 3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RegistrationFlags(pub u8);

impl RegistrationFlags {
    /// Simultaneous bindings: keep the other care-of addresses.
    pub const S: u8 = 0x80;
    /// Broadcast datagrams: tunnel broadcasts from the home network too.
    pub const B: u8 = 0x40;
    /// Decapsulation by the mobile node (co-located care-of address).
    pub const D: u8 = 0x20;
    /// Minimal encapsulation (RFC 2004) requested.
    pub const M: u8 = 0x10;
    /// GRE encapsulation (RFC 2784) requested.
    pub const G: u8 = 0x08;
    /// `r`: sent as zero, ignored on reception; kept so a request round-trips exactly.
    pub const R_RESERVED: u8 = 0x04;
    /// Reverse tunnelling requested (RFC 3024).
    pub const T: u8 = 0x02;
    /// `x`: sent as zero, ignored on reception.
    pub const X: u8 = 0x01;

    /// Whether every bit of `bit` is set.
    pub fn contains(self, bit: u8) -> bool {
        self.0 & bit == bit
    }

    /// These flags with `bit` also set.
    #[must_use]
    pub fn with(self, bit: u8) -> Self {
        Self(self.0 | bit)
    }

    /// The raw flags byte.
    pub fn bits(self) -> u8 {
        self.0
    }
}

/// RFC 5944 section 3.3, Registration Request (UDP payload, port 434):
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     Type      |S|B|D|M|G|r|T|x|          Lifetime             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                          Home Address                         |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                           Home Agent                          |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                        Care-of Address                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                                                               |
/// +                         Identification                        +
/// |                                                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// | Extensions ...
/// +-+-+-+-+-+-+-+-
/// ```
mod req_field {
    use core::ops::Range;
    pub const TYPE: usize = 0;
    pub const FLAGS: usize = 1;
    pub const LIFETIME: Range<usize> = 2..4;
    pub const HOME_ADDRESS: Range<usize> = 4..8;
    pub const HOME_AGENT: Range<usize> = 8..12;
    pub const CARE_OF_ADDRESS: Range<usize> = 12..16;
    pub const IDENTIFICATION: Range<usize> = 16..24;
    pub const EXTENSIONS: usize = IDENTIFICATION.end;
}

/// RFC 5944 section 3.4, Registration Reply (UDP payload, port 434):
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     Type      |     Code      |           Lifetime            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                          Home Address                         |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                           Home Agent                          |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                                                               |
/// +                         Identification                        +
/// |                                                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// | Extensions ...
/// +-+-+-+-+-+-+-+-
/// ```
mod rep_field {
    use core::ops::Range;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const LIFETIME: Range<usize> = 2..4;
    pub const HOME_ADDRESS: Range<usize> = 4..8;
    pub const HOME_AGENT: Range<usize> = 8..12;
    pub const IDENTIFICATION: Range<usize> = 12..20;
    pub const EXTENSIONS: usize = IDENTIFICATION.end;
}

fn check_min_len(have: usize, need: usize) -> Result<()> {
    if have < need {
        Err(WireError::Truncated { need, have })
    } else {
        Ok(())
    }
}

fn addr_at(buf: &[u8], field: core::ops::Range<usize>) -> Ipv4Addr {
    Ipv4Addr::from(array::<4>(buf, field.start))
}

/// Zero-copy view of a Registration Request: the whole UDP payload, extensions included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationRequest<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> RegistrationRequest<T> {
    /// Wraps a buffer without checking its length; call [`Self::check_len`] before trusting
    /// the getters (they never panic, but read zeros from a short buffer).
    pub fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer that holds at least the fixed part.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Truncated` unless the buffer holds the 24-byte fixed part.
    pub fn check_len(&self) -> Result<()> {
        check_min_len(self.buffer.as_ref().len(), REQUEST_FIXED_LEN)
    }

    pub fn msg_type(&self) -> u8 {
        u8_at(self.buffer.as_ref(), req_field::TYPE)
    }

    pub fn flags(&self) -> RegistrationFlags {
        RegistrationFlags(u8_at(self.buffer.as_ref(), req_field::FLAGS))
    }

    /// Requested lifetime in seconds; 0 deregisters, 0xffff is infinity.
    pub fn lifetime(&self) -> u16 {
        u16_at(self.buffer.as_ref(), req_field::LIFETIME)
    }

    pub fn home_address(&self) -> Ipv4Addr {
        addr_at(self.buffer.as_ref(), req_field::HOME_ADDRESS)
    }

    pub fn home_agent(&self) -> Ipv4Addr {
        addr_at(self.buffer.as_ref(), req_field::HOME_AGENT)
    }

    pub fn care_of_address(&self) -> Ipv4Addr {
        addr_at(self.buffer.as_ref(), req_field::CARE_OF_ADDRESS)
    }

    pub fn identification(&self) -> u64 {
        u64_at(self.buffer.as_ref(), req_field::IDENTIFICATION)
    }

    /// The extensions after the fixed part; offsets are from the start of the message.
    pub fn extensions(&self) -> ExtensionIter<'_> {
        ExtensionIter::new(self.buffer.as_ref(), req_field::EXTENSIONS)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> RegistrationRequest<T> {
    pub fn set_msg_type(&mut self, value: u8) {
        put_u8(self.buffer.as_mut(), req_field::TYPE, value);
    }

    pub fn set_flags(&mut self, value: RegistrationFlags) {
        put_u8(self.buffer.as_mut(), req_field::FLAGS, value.0);
    }

    pub fn set_lifetime(&mut self, value: u16) {
        put(
            self.buffer.as_mut(),
            req_field::LIFETIME,
            &value.to_be_bytes(),
        );
    }

    pub fn set_home_address(&mut self, value: Ipv4Addr) {
        put(
            self.buffer.as_mut(),
            req_field::HOME_ADDRESS,
            &value.octets(),
        );
    }

    pub fn set_home_agent(&mut self, value: Ipv4Addr) {
        put(self.buffer.as_mut(), req_field::HOME_AGENT, &value.octets());
    }

    pub fn set_care_of_address(&mut self, value: Ipv4Addr) {
        put(
            self.buffer.as_mut(),
            req_field::CARE_OF_ADDRESS,
            &value.octets(),
        );
    }

    pub fn set_identification(&mut self, value: u64) {
        put(
            self.buffer.as_mut(),
            req_field::IDENTIFICATION,
            &value.to_be_bytes(),
        );
    }
}

/// The fixed part of a Registration Request as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrationRequestRepr {
    pub flags: RegistrationFlags,
    pub lifetime: u16,
    pub home_address: Ipv4Addr,
    pub home_agent: Ipv4Addr,
    pub care_of_address: Ipv4Addr,
    pub identification: u64,
}

impl RegistrationRequestRepr {
    /// Reads the fixed part; `WrongType` unless the type is 1. Extensions are left to
    /// [`RegistrationRequest::extensions`].
    pub fn parse<T: AsRef<[u8]>>(p: &RegistrationRequest<T>) -> Result<Self> {
        p.check_len()?;
        if p.msg_type() != REQUEST_TYPE {
            return Err(WireError::WrongType {
                expected: REQUEST_TYPE,
                got: p.msg_type(),
            });
        }
        Ok(Self {
            flags: p.flags(),
            lifetime: p.lifetime(),
            home_address: p.home_address(),
            home_agent: p.home_agent(),
            care_of_address: p.care_of_address(),
            identification: p.identification(),
        })
    }

    /// Bytes the fixed part takes (extensions are appended by the caller).
    pub fn buffer_len(&self) -> usize {
        REQUEST_FIXED_LEN
    }

    /// Writes the fixed part into a buffer of at least [`Self::buffer_len`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut RegistrationRequest<T>) {
        p.set_msg_type(REQUEST_TYPE);
        p.set_flags(self.flags);
        p.set_lifetime(self.lifetime);
        p.set_home_address(self.home_address);
        p.set_home_agent(self.home_agent);
        p.set_care_of_address(self.care_of_address);
        p.set_identification(self.identification);
    }

    /// The fixed part as a new vector, ready for extensions to be appended.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut p = RegistrationRequest::new_unchecked(vec![0u8; self.buffer_len()]);
        self.emit(&mut p);
        p.into_inner()
    }
}

/// Zero-copy view of a Registration Reply: the whole UDP payload, extensions included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationReply<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> RegistrationReply<T> {
    /// Wraps a buffer without checking its length; see [`RegistrationRequest::new_unchecked`].
    pub fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer that holds at least the fixed part.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Truncated` unless the buffer holds the 20-byte fixed part.
    pub fn check_len(&self) -> Result<()> {
        check_min_len(self.buffer.as_ref().len(), REPLY_FIXED_LEN)
    }

    pub fn msg_type(&self) -> u8 {
        u8_at(self.buffer.as_ref(), rep_field::TYPE)
    }

    pub fn code(&self) -> ReplyCode {
        ReplyCode::from(u8_at(self.buffer.as_ref(), rep_field::CODE))
    }

    /// Granted lifetime in seconds; meaningless when the code is a denial.
    pub fn lifetime(&self) -> u16 {
        u16_at(self.buffer.as_ref(), rep_field::LIFETIME)
    }

    pub fn home_address(&self) -> Ipv4Addr {
        addr_at(self.buffer.as_ref(), rep_field::HOME_ADDRESS)
    }

    pub fn home_agent(&self) -> Ipv4Addr {
        addr_at(self.buffer.as_ref(), rep_field::HOME_AGENT)
    }

    pub fn identification(&self) -> u64 {
        u64_at(self.buffer.as_ref(), rep_field::IDENTIFICATION)
    }

    /// The extensions after the fixed part; offsets are from the start of the message.
    pub fn extensions(&self) -> ExtensionIter<'_> {
        ExtensionIter::new(self.buffer.as_ref(), rep_field::EXTENSIONS)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> RegistrationReply<T> {
    pub fn set_msg_type(&mut self, value: u8) {
        put_u8(self.buffer.as_mut(), rep_field::TYPE, value);
    }

    pub fn set_code(&mut self, value: ReplyCode) {
        put_u8(self.buffer.as_mut(), rep_field::CODE, u8::from(value));
    }

    pub fn set_lifetime(&mut self, value: u16) {
        put(
            self.buffer.as_mut(),
            rep_field::LIFETIME,
            &value.to_be_bytes(),
        );
    }

    pub fn set_home_address(&mut self, value: Ipv4Addr) {
        put(
            self.buffer.as_mut(),
            rep_field::HOME_ADDRESS,
            &value.octets(),
        );
    }

    pub fn set_home_agent(&mut self, value: Ipv4Addr) {
        put(self.buffer.as_mut(), rep_field::HOME_AGENT, &value.octets());
    }

    pub fn set_identification(&mut self, value: u64) {
        put(
            self.buffer.as_mut(),
            rep_field::IDENTIFICATION,
            &value.to_be_bytes(),
        );
    }
}

/// The fixed part of a Registration Reply as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrationReplyRepr {
    pub code: ReplyCode,
    pub lifetime: u16,
    pub home_address: Ipv4Addr,
    pub home_agent: Ipv4Addr,
    pub identification: u64,
}

impl RegistrationReplyRepr {
    /// Reads the fixed part; `WrongType` unless the type is 3.
    pub fn parse<T: AsRef<[u8]>>(p: &RegistrationReply<T>) -> Result<Self> {
        p.check_len()?;
        if p.msg_type() != REPLY_TYPE {
            return Err(WireError::WrongType {
                expected: REPLY_TYPE,
                got: p.msg_type(),
            });
        }
        Ok(Self {
            code: p.code(),
            lifetime: p.lifetime(),
            home_address: p.home_address(),
            home_agent: p.home_agent(),
            identification: p.identification(),
        })
    }

    /// Bytes the fixed part takes (extensions are appended by the caller).
    pub fn buffer_len(&self) -> usize {
        REPLY_FIXED_LEN
    }

    /// Writes the fixed part into a buffer of at least [`Self::buffer_len`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut RegistrationReply<T>) {
        p.set_msg_type(REPLY_TYPE);
        p.set_code(self.code);
        p.set_lifetime(self.lifetime);
        p.set_home_address(self.home_address);
        p.set_home_agent(self.home_agent);
        p.set_identification(self.identification);
    }

    /// The fixed part as a new vector, ready for extensions to be appended.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut p = RegistrationReply::new_unchecked(vec![0u8; self.buffer_len()]);
        self.emit(&mut p);
        p.into_inner()
    }
}

#[cfg(test)]
mod tests;
