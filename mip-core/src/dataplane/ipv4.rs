//! IPv4 headers (RFC 791): parse, checksum, write, fragment.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |Version|  IHL  |Type of Service|          Total Length         |
//! |         Identification        |Flags|      Fragment Offset    |
//! |  Time to Live |    Protocol   |         Header Checksum       |
//! |                       Source Address                          |
//! |                    Destination Address                        |
//! |                    Options                    |    Padding    |
//! ```

use std::net::Ipv4Addr;

use super::{array, be16, room, DataplaneError, Result};

pub const MIN_HEADER_LEN: usize = 20;
pub const MAX_HEADER_LEN: usize = 60;
/// RFC 791: every host must accept 576-byte datagrams; every link carries 68.
pub const MIN_MTU: usize = 68;

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_IPIP: u8 = 4;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_GRE: u8 = 47;
pub const PROTO_MINIMAL: u8 = 55;

mod field {
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLAGS_FRAG: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// Offsets of the fields a shell or a test may want to patch in place.
pub use field::{CHECKSUM as CHECKSUM_OFFSET, TTL as TTL_OFFSET};

/// What the data plane needs to know about a packet, read from a checked header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Info {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub ttl: u8,
    pub tos: u8,
    pub dont_fragment: bool,
    pub more_fragments: bool,
    /// In bytes (the wire field times 8).
    pub fragment_offset: u16,
    /// IHL in bytes, options included.
    pub header_len: usize,
    /// The Total Length field; bytes past it (Ethernet padding) are not the packet's.
    pub total_len: usize,
    pub identification: u16,
}

impl Ipv4Info {
    /// A fragment: more to come, or not the first.
    pub fn is_fragment(&self) -> bool {
        self.more_fragments || self.fragment_offset != 0
    }
}

/// Reads and checks an IPv4 header: version 4, 20 <= IHL <= total length <= the bytes
/// given, header checksum right.
pub fn parse(pkt: &[u8]) -> Result<Ipv4Info> {
    let first = array::<1>(pkt, field::VER_IHL).map(|[b]| b)?;
    let version = first >> 4;
    if version != 4 {
        return Err(DataplaneError::BadVersion(version));
    }
    if pkt.len() < MIN_HEADER_LEN {
        return Err(DataplaneError::Truncated { need: MIN_HEADER_LEN, have: pkt.len() });
    }
    let header_len = usize::from(first & 0x0f) * 4;
    if header_len < MIN_HEADER_LEN {
        return Err(DataplaneError::BadHeaderLength(header_len));
    }
    let total_len = usize::from(be16(pkt, field::LENGTH)?);
    if total_len < header_len {
        return Err(DataplaneError::BadTotalLength { total: total_len, header: header_len });
    }
    if total_len > pkt.len() {
        return Err(DataplaneError::Truncated { need: total_len, have: pkt.len() });
    }
    let header = pkt.get(..header_len).ok_or(DataplaneError::Truncated { need: header_len, have: pkt.len() })?;
    if checksum(header) != 0 {
        return Err(DataplaneError::BadChecksum);
    }
    let flags = be16(pkt, field::FLAGS_FRAG)?;
    let [tos] = array::<1>(pkt, field::TOS)?;
    let [ttl] = array::<1>(pkt, field::TTL)?;
    let [protocol] = array::<1>(pkt, field::PROTOCOL)?;
    Ok(Ipv4Info {
        src: Ipv4Addr::from(array::<4>(pkt, field::SRC)?),
        dst: Ipv4Addr::from(array::<4>(pkt, field::DST)?),
        protocol,
        ttl,
        tos,
        dont_fragment: flags & FLAG_DF != 0,
        more_fragments: flags & FLAG_MF != 0,
        fragment_offset: (flags & OFFSET_MASK) << 3,
        header_len,
        total_len,
        identification: be16(pkt, field::IDENT)?,
    })
}

/// The Internet checksum (RFC 1071) of `data`: 0 over a header whose checksum is right.
pub fn header_checksum(data: &[u8]) -> u16 {
    checksum(data)
}

/// One's complement of the one's complement sum of the 16-bit words of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    fold(sum(data, 0))
}

/// The running 32-bit sum of `data`'s 16-bit words (odd last byte padded with zero),
/// for checksums over several pieces (pseudo-headers).
pub fn sum(data: &[u8], initial: u32) -> u32 {
    let mut acc = u64::from(initial);
    let mut chunks = data.chunks_exact(2);
    for w in &mut chunks {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(u16::from_be_bytes([*last, 0]));
    }
    while acc > 0xffff_ffff {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    acc as u32
}

/// Folds a running sum to 16 bits and complements it.
pub fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Recomputes the header checksum of the header at the start of `pkt` in place.
pub fn fill_checksum(pkt: &mut [u8], header_len: usize) -> Result<()> {
    let have = pkt.len();
    let header = pkt.get_mut(..header_len).ok_or(DataplaneError::Truncated { need: header_len, have })?;
    header[field::CHECKSUM] = 0;
    header[field::CHECKSUM + 1] = 0;
    let c = checksum(header);
    header[field::CHECKSUM..field::CHECKSUM + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// The fields of a 20-byte header without options, for [`write_header`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Fields {
    pub tos: u8,
    pub total_len: u16,
    pub identification: u16,
    pub dont_fragment: bool,
    pub more_fragments: bool,
    /// In bytes; a multiple of 8.
    pub fragment_offset: u16,
    pub ttl: u8,
    pub protocol: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
}

/// Writes a 20-byte header with its checksum; returns 20.
pub fn write_header(out: &mut [u8], f: &Ipv4Fields) -> Result<usize> {
    if !f.fragment_offset.is_multiple_of(8) {
        return Err(DataplaneError::Malformed("fragment offset is not a multiple of 8"));
    }
    if usize::from(f.total_len) < MIN_HEADER_LEN {
        return Err(DataplaneError::BadTotalLength { total: usize::from(f.total_len), header: MIN_HEADER_LEN });
    }
    let h = room(out, MIN_HEADER_LEN)?;
    let mut flags = f.fragment_offset >> 3;
    if f.dont_fragment {
        flags |= FLAG_DF;
    }
    if f.more_fragments {
        flags |= FLAG_MF;
    }
    h[field::VER_IHL] = 0x45;
    h[field::TOS] = f.tos;
    h[field::LENGTH..field::LENGTH + 2].copy_from_slice(&f.total_len.to_be_bytes());
    h[field::IDENT..field::IDENT + 2].copy_from_slice(&f.identification.to_be_bytes());
    h[field::FLAGS_FRAG..field::FLAGS_FRAG + 2].copy_from_slice(&flags.to_be_bytes());
    h[field::TTL] = f.ttl;
    h[field::PROTOCOL] = f.protocol;
    h[field::SRC..field::SRC + 4].copy_from_slice(&f.src.octets());
    h[field::DST..field::DST + 4].copy_from_slice(&f.dst.octets());
    fill_checksum(h, MIN_HEADER_LEN)?;
    Ok(MIN_HEADER_LEN)
}

/// Sets the TTL of the packet at the start of `pkt` and fixes its checksum.
pub fn set_ttl(pkt: &mut [u8], header_len: usize, ttl: u8) -> Result<()> {
    let have = pkt.len();
    *pkt.get_mut(field::TTL).ok_or(DataplaneError::Truncated { need: field::TTL + 1, have })? = ttl;
    fill_checksum(pkt, header_len)
}

/// The options of a header that RFC 791 copies into every fragment (copied flag set),
/// padded to 4 bytes. Returns their length.
fn copied_options(options: &[u8], out: &mut [u8; MAX_HEADER_LEN - MIN_HEADER_LEN]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while let Some(&kind) = options.get(i) {
        let len = match kind {
            0 => break,
            1 => 1,
            _ => match options.get(i + 1) {
                Some(&l) if l >= 2 => usize::from(l),
                _ => break,
            },
        };
        let Some(opt) = options.get(i..i + len) else { break };
        if kind & 0x80 != 0 {
            if let Some(dst) = out.get_mut(n..n + len) {
                dst.copy_from_slice(opt);
                n += len;
            }
        }
        i += len;
    }
    let padded = (n + 3) & !3;
    for b in out.iter_mut().take(padded).skip(n) {
        *b = 0;
    }
    padded
}

/// Cuts a packet into RFC 791 fragments of at most `mtu` bytes each, one at a time.
///
/// The packet is given as a header (options included; its length, flags, offset and
/// checksum fields are rewritten per fragment) and a body made of `prefix` then
/// `payload`, so that a header can be changed (TTL) or a forwarding header inserted
/// (RFC 2004) without first copying the whole packet. A packet that already is a
/// fragment keeps its place: offsets are added to its own, and its MF bit stays on
/// the last piece.
#[derive(Debug)]
pub struct Fragmenter<'a> {
    header: [u8; MAX_HEADER_LEN],
    header_len: usize,
    later: [u8; MAX_HEADER_LEN - MIN_HEADER_LEN],
    later_options: usize,
    prefix: [u8; 12],
    prefix_len: usize,
    payload: &'a [u8],
    base_offset: usize,
    last_has_more: bool,
    mtu: usize,
    pos: usize,
    done: bool,
}

impl<'a> Fragmenter<'a> {
    pub fn new(header: &[u8], prefix: &[u8], payload: &'a [u8], mtu: usize) -> Result<Self> {
        let header_len = header.len();
        if !(MIN_HEADER_LEN..=MAX_HEADER_LEN).contains(&header_len) || !header_len.is_multiple_of(4) {
            return Err(DataplaneError::BadHeaderLength(header_len));
        }
        if prefix.len() > 12 {
            return Err(DataplaneError::Malformed("fragmenter prefix longer than 12 bytes"));
        }
        let mut h = [0u8; MAX_HEADER_LEN];
        h[..header_len].copy_from_slice(header);
        let mut later = [0u8; MAX_HEADER_LEN - MIN_HEADER_LEN];
        let later_options = copied_options(&header[MIN_HEADER_LEN..], &mut later);
        // Every fragment but the last carries a multiple of 8 bytes of data.
        if mtu < header_len + 8 || mtu < MIN_HEADER_LEN + later_options + 8 {
            return Err(DataplaneError::MtuTooSmall(mtu));
        }
        let flags = u16::from_be_bytes([h[field::FLAGS_FRAG], h[field::FLAGS_FRAG + 1]]);
        let mut p = [0u8; 12];
        p[..prefix.len()].copy_from_slice(prefix);
        let body_len = prefix.len() + payload.len();
        let base_offset = usize::from(flags & OFFSET_MASK) << 3;
        if base_offset + body_len > 0xffff {
            return Err(DataplaneError::Malformed("fragment would end past offset 65535"));
        }
        Ok(Fragmenter {
            header: h,
            header_len,
            later,
            later_options,
            prefix: p,
            prefix_len: prefix.len(),
            payload,
            base_offset,
            last_has_more: flags & FLAG_MF != 0,
            mtu,
            pos: 0,
            done: false,
        })
    }

    fn body_len(&self) -> usize {
        self.prefix_len + self.payload.len()
    }

    /// True when every fragment has been written (an empty body makes one fragment).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Writes the next fragment into `out`; `None` when the packet is finished.
    pub fn next_into(&mut self, out: &mut [u8]) -> Option<Result<usize>> {
        if self.done {
            return None;
        }
        let body_len = self.body_len();
        let first = self.pos == 0;
        let hlen = if first { self.header_len } else { MIN_HEADER_LEN + self.later_options };
        let room_for_data = (self.mtu - hlen) & !7;
        let data = (body_len - self.pos).min(room_for_data);
        let last = self.pos + data >= body_len;
        let total = hlen + data;
        let buf = match room(out, total) {
            Ok(b) => b,
            Err(e) => return Some(Err(e)),
        };
        buf[..MIN_HEADER_LEN].copy_from_slice(&self.header[..MIN_HEADER_LEN]);
        if first {
            buf[MIN_HEADER_LEN..hlen].copy_from_slice(&self.header[MIN_HEADER_LEN..hlen]);
        } else {
            buf[MIN_HEADER_LEN..hlen].copy_from_slice(&self.later[..self.later_options]);
        }
        buf[field::VER_IHL] = 0x40 | (hlen / 4) as u8;
        buf[field::LENGTH..field::LENGTH + 2].copy_from_slice(&(total as u16).to_be_bytes());
        let old = u16::from_be_bytes([self.header[field::FLAGS_FRAG], self.header[field::FLAGS_FRAG + 1]]);
        let mut flags = (old & FLAG_DF) | (((self.base_offset + self.pos) >> 3) as u16 & OFFSET_MASK);
        if !last || self.last_has_more {
            flags |= FLAG_MF;
        }
        buf[field::FLAGS_FRAG..field::FLAGS_FRAG + 2].copy_from_slice(&flags.to_be_bytes());
        // The data: the part of the prefix, then of the payload, that falls in range.
        let mut w = hlen;
        let end = self.pos + data;
        if self.pos < self.prefix_len {
            let take = end.min(self.prefix_len);
            let piece = &self.prefix[self.pos..take];
            buf[w..w + piece.len()].copy_from_slice(piece);
            w += piece.len();
        }
        let from = self.pos.max(self.prefix_len) - self.prefix_len;
        let to = end.saturating_sub(self.prefix_len);
        if let Some(piece) = self.payload.get(from..to) {
            buf[w..w + piece.len()].copy_from_slice(piece);
        }
        if let Err(e) = fill_checksum(buf, hlen) {
            return Some(Err(e));
        }
        self.pos = end;
        self.done = last;
        Some(Ok(total))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// An ICMP echo header 198.18.0.1 -> 198.18.0.10, id 0x1c46, DF, TTL 64.
    fn sample() -> [u8; 20] {
        let mut h = [
            0x45, 0x00, 0x00, 0x54, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x01, 0x00, 0x00, 198, 18, 0, 1, 198, 18, 0, 10,
        ];
        let c = checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    #[test]
    fn checksum_of_a_known_header() {
        // By hand: 4500+0054+1c46+4000+4001+c612+0001+c612+000a = 0x2_6dca -> 0x6dcc -> !0x6dcc.
        assert_eq!(checksum(&sample()), 0);
        let h = sample();
        assert_eq!(u16::from_be_bytes([h[10], h[11]]), 0x9233);
    }

    #[test]
    fn parse_reads_every_field() {
        let mut p = sample().to_vec();
        p.resize(0x54, 0);
        let i = parse(&p).unwrap();
        assert_eq!(i.src, Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(i.dst, Ipv4Addr::new(198, 18, 0, 10));
        assert_eq!((i.protocol, i.ttl, i.tos, i.header_len, i.total_len), (1, 64, 0, 20, 84));
        assert!(i.dont_fragment && !i.is_fragment());
        assert_eq!(i.identification, 0x1c46);
    }

    #[test]
    fn parse_refuses_bad_headers() {
        let mut p = sample().to_vec();
        p.resize(0x54, 0);
        assert_eq!(parse(&p[..10]), Err(DataplaneError::Truncated { need: 20, have: 10 }));
        assert_eq!(parse(&p[..50]), Err(DataplaneError::Truncated { need: 84, have: 50 }));
        let mut q = p.clone();
        q[0] = 0x65;
        assert_eq!(parse(&q), Err(DataplaneError::BadVersion(6)));
        let mut q = p.clone();
        q[0] = 0x44;
        assert_eq!(parse(&q), Err(DataplaneError::BadHeaderLength(16)));
        let mut q = p.clone();
        q[8] = 63;
        assert_eq!(parse(&q), Err(DataplaneError::BadChecksum));
    }

    #[test]
    fn write_header_matches_the_sample() {
        let mut out = [0u8; 20];
        let f = Ipv4Fields {
            tos: 0,
            total_len: 0x54,
            identification: 0x1c46,
            dont_fragment: true,
            more_fragments: false,
            fragment_offset: 0,
            ttl: 64,
            protocol: 1,
            src: Ipv4Addr::new(198, 18, 0, 1),
            dst: Ipv4Addr::new(198, 18, 0, 10),
        };
        assert_eq!(write_header(&mut out, &f), Ok(20));
        assert_eq!(out, sample());
        assert!(matches!(write_header(&mut out[..19], &f), Err(DataplaneError::BufferTooSmall { .. })));
    }

    #[test]
    fn fragmenter_splits_on_8_byte_boundaries_and_copies_only_copied_options() {
        // Header with options: NOP, record route (not copied, 7 bytes), security-like
        // option 0x82 len 4 (copied) -> 12 bytes of options, IHL 8.
        let mut h = vec![0x48, 0, 0, 0, 0xab, 0xcd, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2];
        h.extend_from_slice(&[1, 7, 7, 4, 0, 0, 0, 0, 0x82, 4, 0xee, 0xff]);
        let payload: Vec<u8> = (0..100u8).collect();
        let mut f = Fragmenter::new(&h, &[], &payload, 32 + 40).unwrap();
        let mut out = [0u8; 100];
        let mut got = Vec::new();
        while let Some(r) = f.next_into(&mut out) {
            let n = r.unwrap();
            let i = parse(&out[..n]).unwrap();
            got.push((i.header_len, i.fragment_offset, i.more_fragments, n - i.header_len));
            if i.fragment_offset > 0 {
                assert_eq!(&out[20..24], &[0x82, 4, 0xee, 0xff]);
            }
            let data = &out[i.header_len..n];
            let off = usize::from(i.fragment_offset);
            assert_eq!(data, &payload[off..off + data.len()]);
        }
        assert_eq!(got, vec![(32, 0, true, 40), (24, 40, true, 48), (24, 88, false, 12)]);
    }
}
