//! Agent discovery (RFC 5944 section 2): Agent Advertisement, an ICMP Router Advertisement
//! (RFC 1256) carrying the Mobility Agent Advertisement extension, and Agent Solicitation,
//! an ICMP Router Solicitation. The bytes handled here are the ICMP message, IP header
//! excluded.

use core::net::Ipv4Addr;

use super::bytes::{array, put, put_u8, u16_at, u8_at};
use super::{Result, WireError};

/// ICMP type of a Router (Agent) Advertisement.
pub const ICMP_ROUTER_ADVERTISEMENT: u8 = 9;
/// ICMP type of a Router (Agent) Solicitation.
pub const ICMP_ROUTER_SOLICITATION: u8 = 10;

/// Extension types found in an Agent Advertisement (RFC 5944 2.1).
mod adv_ext {
    pub const PADDING: u8 = 0;
    pub const MOBILITY_AGENT: u8 = 16;
    pub const PREFIX_LENGTHS: u8 = 19;
}

/// The Internet checksum (RFC 1071) of `bytes`: the one's complement of the one's
/// complement sum of its 16-bit words, an odd last byte padded with zero. Computed over a
/// message whose checksum field holds a correct value, it is 0.
pub fn icmp_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut words = bytes.chunks_exact(2);
    for w in &mut words {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The loop above leaves at most 16 bits.
    !(sum as u16)
}

/// RFC 1256 section 3 with RFC 5944 section 2.1, Agent Advertisement (ICMP message):
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Type (9)    |  Code (0/16)  |           Checksum            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Num Addrs   |Addr Entry Size|           Lifetime            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                       Router Address[1]                       |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                      Preference Level[1]                      |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                              ...                              |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// | Extensions: Mobility Agent Advertisement (2.1.1), Prefix-Lengths (2.1.2),
/// | One-byte Padding (2.1.3) ...
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///
/// Mobility Agent Advertisement Extension (RFC 5944 2.1.1), Length = 6 + 4 * N:
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Type (16)   |    Length     |        Sequence Number        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     Registration Lifetime     |R|B|H|F|M|G|r|T|U|X|I|reserved |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                 zero or more Care-of Addresses                |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///
/// Prefix-Lengths Extension (RFC 5944 2.1.2), Length = Num Addrs:
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Type (19)   |    Length     | Prefix Length | ...
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// Agent Solicitation (RFC 1256 section 3, RFC 5944 2.2) is Type (10), Code (0), Checksum
/// and 4 reserved bytes.
mod field {
    use core::ops::Range;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const NUM_ADDRS: usize = 4;
    pub const ADDR_ENTRY_SIZE: usize = 5;
    pub const LIFETIME: Range<usize> = 6..8;
    pub const ADDRESSES: usize = 8;
    /// Length of the fixed ICMP header, for both advertisement and solicitation.
    pub const HEADER_LEN: usize = 8;
    /// Within one router entry.
    pub const ENTRY_ADDRESS: Range<usize> = 0..4;
    pub const ENTRY_PREFERENCE: Range<usize> = 4..8;
    /// Within an extension.
    pub const EXT_TYPE: usize = 0;
    pub const EXT_LENGTH: usize = 1;
    pub const EXT_HEADER: usize = 2;
    /// Within the Mobility Agent Advertisement extension.
    pub const MA_SEQUENCE: Range<usize> = 2..4;
    pub const MA_REG_LIFETIME: Range<usize> = 4..6;
    pub const MA_FLAGS: Range<usize> = 6..8;
    pub const MA_CARE_OF: usize = 8;
}

/// Router entry size this implementation writes, in 32-bit words (RFC 1256).
const ADDR_ENTRY_WORDS: u8 = 2;
const ENTRY_LEN: usize = 4 * ADDR_ENTRY_WORDS as usize;
/// Mobility Agent extension bytes counted by its Length before the care-of addresses.
const MA_FIXED_LEN: usize = field::MA_CARE_OF - field::EXT_HEADER;
/// Most care-of addresses an 8-bit Length can describe: (255 - 6) / 4.
const MAX_CARE_OF: usize = (255 - MA_FIXED_LEN) / 4;

/// Flags of the Mobility Agent Advertisement extension, high bit first:
/// R B H F M G r T U X I, then 5 reserved bits (RFC 5944 2.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AgentFlags(pub u16);

impl AgentFlags {
    /// Registration required, even with a co-located care-of address.
    pub const R: u16 = 0x8000;
    /// Busy: no registrations from new mobile nodes.
    pub const B: u16 = 0x4000;
    /// Offers home agent service on this link.
    pub const H: u16 = 0x2000;
    /// Offers foreign agent service on this link.
    pub const F: u16 = 0x1000;
    /// Receives minimal encapsulation.
    pub const M: u16 = 0x0800;
    /// Receives GRE encapsulation.
    pub const G: u16 = 0x0400;
    /// `r`: sent as zero, ignored on reception.
    pub const R_RESERVED: u16 = 0x0200;
    /// Supports reverse tunnelling (RFC 3024).
    pub const T: u16 = 0x0100;
    /// Supports UDP tunnelling (RFC 3519).
    pub const U: u16 = 0x0080;
    /// Supports registration revocation (RFC 3543).
    pub const X: u16 = 0x0040;
    /// Supports regional registration (RFC 4857).
    pub const I: u16 = 0x0020;

    /// Whether every bit of `bit` is set.
    pub fn contains(self, bit: u16) -> bool {
        self.0 & bit == bit
    }

    /// These flags with `bit` also set.
    #[must_use]
    pub fn with(self, bit: u16) -> Self {
        Self(self.0 | bit)
    }

    /// The raw 16 bits.
    pub fn bits(self) -> u16 {
        self.0
    }
}

/// Zero-copy view of the RFC 1256 part of an Agent Advertisement (header and router
/// entries). Extensions are read by [`AgentAdvertisementRepr::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentAdvertisement<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> AgentAdvertisement<T> {
    /// Wraps a buffer without checking its length; getters never panic but read zeros
    /// from a short buffer.
    pub fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer that holds the header and every router entry it announces.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Truncated` unless the buffer holds the 8-byte header and
    /// `num_addrs * addr_entry_size * 4` bytes of router entries.
    pub fn check_len(&self) -> Result<()> {
        let have = self.buffer.as_ref().len();
        if have < field::HEADER_LEN {
            return Err(WireError::Truncated {
                need: field::HEADER_LEN,
                have,
            });
        }
        let need = self.extensions_offset();
        if have < need {
            return Err(WireError::Truncated { need, have });
        }
        Ok(())
    }

    pub fn msg_type(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::TYPE)
    }

    pub fn code(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::CODE)
    }

    pub fn checksum(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::CHECKSUM)
    }

    pub fn num_addrs(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::NUM_ADDRS)
    }

    /// 32-bit words per router entry; 2 in RFC 1256, larger values are to be skipped over.
    pub fn addr_entry_size(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::ADDR_ENTRY_SIZE)
    }

    /// Seconds the advertisement stays valid.
    pub fn lifetime(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::LIFETIME)
    }

    /// Saturating, so an absurd `index` reads zeros instead of overflowing.
    fn entry_start(&self, index: usize) -> usize {
        let entry_len = 4 * usize::from(self.addr_entry_size());
        field::ADDRESSES.saturating_add(index.saturating_mul(entry_len))
    }

    /// Router address and preference of entry `index` (zeros past the buffer).
    pub fn router_address(&self, index: usize) -> (Ipv4Addr, i32) {
        let start = self.entry_start(index);
        let buf = self.buffer.as_ref();
        let addr = Ipv4Addr::from(array::<4>(
            buf,
            start.saturating_add(field::ENTRY_ADDRESS.start),
        ));
        let pref = i32::from_be_bytes(array::<4>(
            buf,
            start.saturating_add(field::ENTRY_PREFERENCE.start),
        ));
        (addr, pref)
    }

    /// Where the extensions start: after the header and every router entry.
    pub fn extensions_offset(&self) -> usize {
        self.entry_start(usize::from(self.num_addrs()))
    }

    /// Whether the ICMP checksum over the whole buffer verifies.
    pub fn verify_checksum(&self) -> bool {
        icmp_checksum(self.buffer.as_ref()) == 0
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> AgentAdvertisement<T> {
    pub fn set_msg_type(&mut self, value: u8) {
        put_u8(self.buffer.as_mut(), field::TYPE, value);
    }

    pub fn set_code(&mut self, value: u8) {
        put_u8(self.buffer.as_mut(), field::CODE, value);
    }

    pub fn set_checksum(&mut self, value: u16) {
        put(self.buffer.as_mut(), field::CHECKSUM, &value.to_be_bytes());
    }

    pub fn set_num_addrs(&mut self, value: u8) {
        put_u8(self.buffer.as_mut(), field::NUM_ADDRS, value);
    }

    pub fn set_addr_entry_size(&mut self, value: u8) {
        put_u8(self.buffer.as_mut(), field::ADDR_ENTRY_SIZE, value);
    }

    pub fn set_lifetime(&mut self, value: u16) {
        put(self.buffer.as_mut(), field::LIFETIME, &value.to_be_bytes());
    }

    /// Writes entry `index`; set `addr_entry_size` first.
    pub fn set_router_address(&mut self, index: usize, addr: Ipv4Addr, preference: i32) {
        let start = self.entry_start(index);
        let buf = self.buffer.as_mut();
        put(
            buf,
            offset_range(field::ENTRY_ADDRESS, start),
            &addr.octets(),
        );
        put(
            buf,
            offset_range(field::ENTRY_PREFERENCE, start),
            &preference.to_be_bytes(),
        );
    }

    /// Computes the checksum over the whole buffer and stores it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = icmp_checksum(self.buffer.as_ref());
        self.set_checksum(sum);
    }
}

/// The Mobility Agent Advertisement extension (RFC 5944 2.1.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct MobilityAgentExt {
    /// Advertisements sent since the agent started; wraps to 256, not 0 (RFC 5944 2.3.2).
    pub sequence: u16,
    /// Longest registration lifetime the agent accepts, in seconds; 0xffff is infinity.
    pub registration_lifetime: u16,
    pub flags: AgentFlags,
    pub care_of_addresses: Vec<Ipv4Addr>,
}

/// An Agent Advertisement as plain values.
///
/// Parsing skips one-byte padding and unrecognised extensions of types 128-255, and rejects
/// an unrecognised type 1-127 (RFC 5944 1.8); none of those are kept. Emitting writes the
/// Mobility Agent extension, then Prefix-Lengths when present, then one padding byte when
/// that makes the ICMP length even (RFC 5944 2.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AgentAdvertisementRepr {
    /// 0: also routes common traffic; 16: does not (RFC 5944 2.1).
    pub code: u8,
    /// Seconds the advertisement stays valid.
    pub lifetime: u16,
    pub router_addresses: Vec<(Ipv4Addr, i32)>,
    pub mobility: MobilityAgentExt,
    /// One prefix length per router address, in the same order.
    pub prefix_lengths: Option<Vec<u8>>,
}

fn valid_code(code: u8) -> Result<()> {
    if code == 0 || code == 16 {
        Ok(())
    } else {
        Err(WireError::Malformed(
            "agent advertisement code must be 0 or 16",
        ))
    }
}

impl AgentAdvertisementRepr {
    /// Reads an ICMP message: type 9, a checksum that verifies, code 0 or 16, entry size of
    /// at least 2 words, and exactly one Mobility Agent Advertisement extension.
    pub fn parse(icmp: &[u8]) -> Result<Self> {
        let view = AgentAdvertisement::new_unchecked(icmp);
        if icmp.len() < field::HEADER_LEN {
            return Err(WireError::Truncated {
                need: field::HEADER_LEN,
                have: icmp.len(),
            });
        }
        if view.msg_type() != ICMP_ROUTER_ADVERTISEMENT {
            return Err(WireError::WrongType {
                expected: ICMP_ROUTER_ADVERTISEMENT,
                got: view.msg_type(),
            });
        }
        if !view.verify_checksum() {
            return Err(WireError::BadChecksum);
        }
        valid_code(view.code())?;
        if view.addr_entry_size() < ADDR_ENTRY_WORDS {
            return Err(WireError::Malformed(
                "router address entry size below 2 words",
            ));
        }
        view.check_len()?;
        let num_addrs = usize::from(view.num_addrs());
        let router_addresses = (0..num_addrs).map(|i| view.router_address(i)).collect();

        let mut mobility = None;
        let mut prefix_lengths = None;
        let mut pos = view.extensions_offset();
        while let Some(rest) = icmp.get(pos..).filter(|r| !r.is_empty()) {
            let t = u8_at(rest, field::EXT_TYPE);
            if t == adv_ext::PADDING {
                pos += 1;
                continue;
            }
            let bad = |len: usize| WireError::BadExtensionLength {
                ext_type: t,
                offset: pos,
                len,
            };
            if rest.len() < field::EXT_HEADER {
                return Err(bad(rest.len()));
            }
            let length = usize::from(u8_at(rest, field::EXT_LENGTH));
            let ext = rest.get(..field::EXT_HEADER + length).ok_or(bad(length))?;
            match t {
                adv_ext::MOBILITY_AGENT => {
                    if length < MA_FIXED_LEN || !(length - MA_FIXED_LEN).is_multiple_of(4) {
                        return Err(bad(length));
                    }
                    if mobility.is_some() {
                        return Err(WireError::Malformed(
                            "two mobility agent advertisement extensions",
                        ));
                    }
                    let coas = ext.get(field::MA_CARE_OF..).unwrap_or(&[]);
                    mobility = Some(MobilityAgentExt {
                        sequence: u16_at(ext, field::MA_SEQUENCE),
                        registration_lifetime: u16_at(ext, field::MA_REG_LIFETIME),
                        flags: AgentFlags(u16_at(ext, field::MA_FLAGS)),
                        care_of_addresses: coas
                            .chunks_exact(4)
                            .map(|c| Ipv4Addr::from(array::<4>(c, 0)))
                            .collect(),
                    });
                }
                adv_ext::PREFIX_LENGTHS => {
                    if length != num_addrs {
                        return Err(bad(length));
                    }
                    if prefix_lengths.is_some() {
                        return Err(WireError::Malformed("two prefix-lengths extensions"));
                    }
                    prefix_lengths = Some(ext.get(field::EXT_HEADER..).unwrap_or(&[]).to_vec());
                }
                t if t < 128 => {
                    return Err(WireError::Malformed(
                        "unrecognised agent advertisement extension in 1-127",
                    ));
                }
                _ => {}
            }
            pos += ext.len();
        }
        let mobility = mobility.ok_or(WireError::Malformed(
            "no mobility agent advertisement extension",
        ))?;
        Ok(Self {
            code: view.code(),
            lifetime: view.lifetime(),
            router_addresses,
            mobility,
            prefix_lengths,
        })
    }

    /// Bytes without the padding byte.
    fn unpadded_len(&self) -> usize {
        field::HEADER_LEN
            + ENTRY_LEN * self.router_addresses.len()
            + field::MA_CARE_OF
            + 4 * self.mobility.care_of_addresses.len()
            + self
                .prefix_lengths
                .as_ref()
                .map_or(0, |p| field::EXT_HEADER + p.len())
    }

    /// Bytes [`Self::emit`] writes, padding included.
    pub fn buffer_len(&self) -> usize {
        let len = self.unpadded_len();
        len + len % 2
    }

    /// Writes the ICMP message, checksum included, at the start of `buf`; returns its
    /// length. `Malformed` if a count does not fit its field, the code is not 0 or 16, or
    /// the prefix lengths do not match the router addresses one for one.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        valid_code(self.code)?;
        let num_addrs = u8::try_from(self.router_addresses.len())
            .map_err(|_| WireError::Malformed("more than 255 router addresses"))?;
        if self.mobility.care_of_addresses.len() > MAX_CARE_OF {
            return Err(WireError::Malformed("more than 62 care-of addresses"));
        }
        let ma_len = u8::try_from(MA_FIXED_LEN + 4 * self.mobility.care_of_addresses.len())
            .map_err(|_| WireError::Malformed("more than 62 care-of addresses"))?;
        if let Some(p) = &self.prefix_lengths {
            if p.len() != self.router_addresses.len() {
                return Err(WireError::Malformed(
                    "prefix lengths do not match router addresses",
                ));
            }
        }
        let total = self.buffer_len();
        let have = buf.len();
        let out = buf
            .get_mut(..total)
            .ok_or(WireError::Truncated { need: total, have })?;
        out.fill(0);
        let mut view = AgentAdvertisement::new_unchecked(&mut *out);
        view.set_msg_type(ICMP_ROUTER_ADVERTISEMENT);
        view.set_code(self.code);
        view.set_num_addrs(num_addrs);
        view.set_addr_entry_size(ADDR_ENTRY_WORDS);
        view.set_lifetime(self.lifetime);
        for (i, (addr, pref)) in self.router_addresses.iter().enumerate() {
            view.set_router_address(i, *addr, *pref);
        }
        let mut pos = view.extensions_offset();
        let ma = &self.mobility;
        put_u8(out, pos + field::EXT_TYPE, adv_ext::MOBILITY_AGENT);
        put_u8(out, pos + field::EXT_LENGTH, ma_len);
        put(
            out,
            offset_range(field::MA_SEQUENCE, pos),
            &ma.sequence.to_be_bytes(),
        );
        put(
            out,
            offset_range(field::MA_REG_LIFETIME, pos),
            &ma.registration_lifetime.to_be_bytes(),
        );
        put(
            out,
            offset_range(field::MA_FLAGS, pos),
            &ma.flags.0.to_be_bytes(),
        );
        pos += field::MA_CARE_OF;
        for coa in &ma.care_of_addresses {
            put(out, pos..pos + 4, &coa.octets());
            pos += 4;
        }
        if let Some(p) = &self.prefix_lengths {
            put_u8(out, pos + field::EXT_TYPE, adv_ext::PREFIX_LENGTHS);
            put_u8(out, pos + field::EXT_LENGTH, num_addrs);
            pos += field::EXT_HEADER;
            put(out, pos..pos + p.len(), p);
        }
        // Any padding byte is already zero: the One-byte Padding extension is type 0.
        AgentAdvertisement::new_unchecked(&mut *out).fill_checksum();
        Ok(total)
    }
}

/// `range` moved `by` bytes further; saturating, so a wild offset gives an empty or
/// out-of-buffer range (which `put` ignores) rather than an overflow.
fn offset_range(range: core::ops::Range<usize>, by: usize) -> core::ops::Range<usize> {
    range.start.saturating_add(by)..range.end.saturating_add(by)
}

/// An Agent Solicitation: ICMP Router Solicitation, type 10, code 0, 4 reserved bytes
/// (RFC 1256 section 3, RFC 5944 2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AgentSolicitationRepr;

impl AgentSolicitationRepr {
    /// Reads an ICMP message: at least 8 bytes, type 10, code 0 and a checksum that
    /// verifies (the checks of RFC 1256 6.1.1). The reserved bytes are ignored.
    pub fn parse(icmp: &[u8]) -> Result<Self> {
        if icmp.len() < field::HEADER_LEN {
            return Err(WireError::Truncated {
                need: field::HEADER_LEN,
                have: icmp.len(),
            });
        }
        let t = u8_at(icmp, field::TYPE);
        if t != ICMP_ROUTER_SOLICITATION {
            return Err(WireError::WrongType {
                expected: ICMP_ROUTER_SOLICITATION,
                got: t,
            });
        }
        if icmp_checksum(icmp) != 0 {
            return Err(WireError::BadChecksum);
        }
        if u8_at(icmp, field::CODE) != 0 {
            return Err(WireError::Malformed("agent solicitation code must be 0"));
        }
        Ok(Self)
    }

    /// Always 8.
    pub fn buffer_len(&self) -> usize {
        field::HEADER_LEN
    }

    /// Writes the 8-byte message, checksum included; `Truncated` if `buf` is shorter.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let total = self.buffer_len();
        let have = buf.len();
        let out = buf
            .get_mut(..total)
            .ok_or(WireError::Truncated { need: total, have })?;
        out.fill(0);
        put_u8(out, field::TYPE, ICMP_ROUTER_SOLICITATION);
        let sum = icmp_checksum(out);
        put(out, field::CHECKSUM, &sum.to_be_bytes());
        Ok(total)
    }
}

#[cfg(test)]
mod tests;
