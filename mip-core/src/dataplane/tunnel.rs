//! Encapsulation and decapsulation: IP in IP (RFC 2003), minimal encapsulation
//! (RFC 2004) and GRE (RFC 2784).
//!
//! ```text
//! IP in IP:  | outer IPv4 (20, proto 4)  | inner packet as received, TTL-1 when forwarding |
//! GRE:       | outer IPv4 (20, proto 47) | C|0..|Ver=0 | 0x0800 | inner packet ... |
//! minimal:   | inner header, proto 55, src=encapsulator, dst=tunnel exit, length+8/12 |
//!            | Protocol | S|rsvd | Checksum | Original Destination | [Original Source] | payload |
//! ```

use std::net::Ipv4Addr;

use super::ipv4::{self, Fragmenter, Ipv4Fields, Ipv4Info, MIN_HEADER_LEN};
use super::{array, be16, room, DataplaneError, Result};

/// A buffer this large holds any encapsulated packet, and the fragments of any packet
/// up to 65,535 bytes cut for a tunnel MTU of 576 or more.
pub const ENCAP_BUFFER_LEN: usize = 2 * 65_536;

const GRE_HEADER_LEN: usize = 4;
const GRE_CHECKSUM_LEN: usize = 4;
const GRE_C: u16 = 0x8000;
/// RFC 2784 2.3: bits 1-5 (RFC 1701's routing, key, sequence, strict route, recursion)
/// MUST make a receiver that does not implement RFC 1701 discard the packet.
const GRE_RFC1701_BITS: u16 = 0x7c00;
const GRE_VERSION: u16 = 0x0007;
const ETHERTYPE_IPV4: u16 = 0x0800;
const MINIMAL_S: u8 = 0x80;
const MINIMAL_SHORT: usize = 8;
const MINIMAL_LONG: usize = 12;

/// How a packet is carried through a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encapsulation {
    /// RFC 2003, IP protocol 4.
    IpInIp,
    /// RFC 2004, IP protocol 55.
    Minimal,
    /// RFC 2784, IP protocol 47, no checksum, key or sequence number.
    Gre,
}

impl Encapsulation {
    pub fn protocol(self) -> u8 {
        match self {
            Encapsulation::IpInIp => ipv4::PROTO_IPIP,
            Encapsulation::Minimal => ipv4::PROTO_MINIMAL,
            Encapsulation::Gre => ipv4::PROTO_GRE,
        }
    }

    pub fn from_protocol(protocol: u8) -> Option<Self> {
        match protocol {
            ipv4::PROTO_IPIP => Some(Encapsulation::IpInIp),
            ipv4::PROTO_MINIMAL => Some(Encapsulation::Minimal),
            ipv4::PROTO_GRE => Some(Encapsulation::Gre),
            _ => None,
        }
    }

    /// Bytes added to a packet; for minimal encapsulation, with the original source
    /// (S bit) or without.
    pub fn overhead(self, original_source_present: bool) -> usize {
        match self {
            Encapsulation::IpInIp => MIN_HEADER_LEN,
            Encapsulation::Gre => MIN_HEADER_LEN + GRE_HEADER_LEN,
            Encapsulation::Minimal if original_source_present => MINIMAL_LONG,
            Encapsulation::Minimal => MINIMAL_SHORT,
        }
    }

    /// A stable lower-case name for counters and logs.
    pub fn name(self) -> &'static str {
        match self {
            Encapsulation::IpInIp => "ip-in-ip",
            Encapsulation::Minimal => "minimal",
            Encapsulation::Gre => "gre",
        }
    }
}

/// Per-tunnel settings of [`encapsulate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelParams {
    /// Largest outer packet sent into the tunnel (RFC 2003 5.1 soft state), e.g. 1500.
    pub tunnel_mtu: u16,
    /// TTL of a new outer header (IP in IP, GRE); minimal encapsulation keeps the
    /// packet's own TTL (RFC 2004 3).
    pub outer_ttl: u8,
    /// The packet is being forwarded (a home or foreign agent), not sent by its own
    /// source (a mobile node reverse-tunnelling its packets): the inner TTL is
    /// decremented (RFC 2003 3.1) and the routing-loop checks of RFC 2003 3.2 apply.
    pub forwarding: bool,
    /// Identification of new outer headers; fragments made of one packet get this
    /// value plus their index. The caller changes it per packet (a counter). 0 with
    /// DF set lets a raw IP_HDRINCL socket choose.
    pub identification: u16,
}

impl Default for TunnelParams {
    fn default() -> Self {
        TunnelParams { tunnel_mtu: 1500, outer_ttl: 64, forwarding: true, identification: 0 }
    }
}

/// Why [`encapsulate`] did not produce a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The inner packet does not parse (or a buffer/MTU problem, see the error).
    Malformed(DataplaneError),
    /// Its TTL would reach 0 (RFC 2003 3.1: MUST NOT encapsulate; the caller SHOULD
    /// send ICMP Time Exceeded, see [`super::icmp_error::time_exceeded`]).
    TtlExpired,
    /// RFC 2003 3.2: its source is the encapsulator or the tunnel exit itself.
    Loop,
    /// RFC 2004 3: minimal encapsulation cannot carry a fragment.
    FragmentNotAllowed,
}

impl DropReason {
    pub fn name(&self) -> &'static str {
        match self {
            DropReason::Malformed(_) => "malformed",
            DropReason::TtlExpired => "ttl_expired",
            DropReason::Loop => "loop",
            DropReason::FragmentNotAllowed => "fragment_not_allowed",
        }
    }
}

/// What [`encapsulate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncapOutcome {
    /// `out[..len]` is one packet to send.
    Encapsulated { len: usize },
    /// The inner packet had DF clear and did not fit the tunnel MTU: `out[..len]` holds
    /// `count` packets back to back, each within the MTU; walk them with [`packets`].
    /// IP in IP and GRE carry fragments of the inner packet (RFC 2003 5.1: better than
    /// fragmenting the encapsulated one); minimal encapsulation, which cannot carry a
    /// fragment, is fragmented after encapsulation (RFC 2004 3 allows it when DF is clear).
    Fragmented { len: usize, count: usize },
    /// Inner DF set and too big: nothing written; the caller sends ICMP 3/4 with this
    /// MTU (RFC 2003 5.1: the tunnel MTU minus the encapsulation's size).
    FragmentationNeeded { next_hop_mtu: u16 },
    Dropped(DropReason),
}

/// Encapsulates `inner` (an IPv4 packet; bytes past its Total Length are ignored) from
/// `outer_src` (the encapsulator) to `outer_dst` (the tunnel exit) into `out`.
///
/// RFC 2003 3.1: outer TOS copied from the inner header; outer DF set when the inner
/// DF is (else clear); outer TTL `p.outer_ttl`; inner TTL decremented when forwarding,
/// and a packet whose TTL would reach 0 is dropped.
pub fn encapsulate(
    kind: Encapsulation,
    inner: &[u8],
    outer_src: Ipv4Addr,
    outer_dst: Ipv4Addr,
    p: &TunnelParams,
    out: &mut [u8],
) -> EncapOutcome {
    match encapsulate_inner(kind, inner, outer_src, outer_dst, p, out) {
        Ok(outcome) => outcome,
        Err(e) => EncapOutcome::Dropped(DropReason::Malformed(e)),
    }
}

fn encapsulate_inner(
    kind: Encapsulation,
    inner: &[u8],
    outer_src: Ipv4Addr,
    outer_dst: Ipv4Addr,
    p: &TunnelParams,
    out: &mut [u8],
) -> Result<EncapOutcome> {
    let info = ipv4::parse(inner)?;
    let inner = inner.get(..info.total_len).ok_or(DataplaneError::Truncated { need: info.total_len, have: inner.len() })?;
    let min_ttl = if p.forwarding { 2 } else { 1 };
    if info.ttl < min_ttl {
        return Ok(EncapOutcome::Dropped(DropReason::TtlExpired));
    }
    if p.forwarding && (info.src == outer_src || info.src == outer_dst) {
        return Ok(EncapOutcome::Dropped(DropReason::Loop));
    }
    if kind == Encapsulation::Minimal && info.is_fragment() {
        return Ok(EncapOutcome::Dropped(DropReason::FragmentNotAllowed));
    }
    let ttl = if p.forwarding { info.ttl - 1 } else { info.ttl };
    let s_bit = kind == Encapsulation::Minimal && info.src != outer_src;
    let overhead = kind.overhead(s_bit);
    let mtu = usize::from(p.tunnel_mtu);
    if overhead + info.total_len > mtu {
        if info.dont_fragment {
            let next_hop_mtu = mtu.saturating_sub(overhead) as u16;
            return Ok(EncapOutcome::FragmentationNeeded { next_hop_mtu });
        }
        return fragment_and_encapsulate(kind, inner, &info, ttl, outer_src, outer_dst, p, out);
    }
    let len = match kind {
        Encapsulation::IpInIp | Encapsulation::Gre => {
            let hdr = outer_header(kind, &info, overhead + info.total_len, p.identification, outer_src, outer_dst, p);
            let buf = room(out, overhead + info.total_len)?;
            write_outer(kind, &hdr, buf)?;
            let body = &mut buf[overhead..];
            body.copy_from_slice(inner);
            ipv4::set_ttl(body, info.header_len, ttl)?;
            overhead + info.total_len
        }
        Encapsulation::Minimal => {
            let buf = room(out, overhead + info.total_len)?;
            let hl = info.header_len;
            let (header, fwd) = minimal_headers(inner, &info, ttl, outer_src, outer_dst, s_bit)?;
            buf[..hl].copy_from_slice(&header[..hl]);
            buf[hl..hl + overhead].copy_from_slice(&fwd[..overhead]);
            buf[hl + overhead..].copy_from_slice(&inner[hl..]);
            let total = (overhead + info.total_len) as u16;
            buf[2..4].copy_from_slice(&total.to_be_bytes());
            ipv4::fill_checksum(buf, hl)?;
            overhead + info.total_len
        }
    };
    Ok(EncapOutcome::Encapsulated { len })
}

fn outer_header(
    kind: Encapsulation,
    info: &Ipv4Info,
    total: usize,
    identification: u16,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    p: &TunnelParams,
) -> Ipv4Fields {
    Ipv4Fields {
        tos: info.tos,
        total_len: total as u16,
        identification,
        dont_fragment: info.dont_fragment,
        more_fragments: false,
        fragment_offset: 0,
        ttl: p.outer_ttl,
        protocol: kind.protocol(),
        src,
        dst,
    }
}

/// The outer IPv4 header, and for GRE the GRE header, at the start of `buf`.
fn write_outer(kind: Encapsulation, hdr: &Ipv4Fields, buf: &mut [u8]) -> Result<()> {
    ipv4::write_header(buf, hdr)?;
    if kind == Encapsulation::Gre {
        let g = room(buf.get_mut(MIN_HEADER_LEN..).unwrap_or_default(), GRE_HEADER_LEN)?;
        g[..2].copy_from_slice(&0u16.to_be_bytes());
        g[2..4].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    }
    Ok(())
}

/// RFC 2004 3: the modified original header and the forwarding header.
fn minimal_headers(
    inner: &[u8],
    info: &Ipv4Info,
    ttl: u8,
    outer_src: Ipv4Addr,
    outer_dst: Ipv4Addr,
    s_bit: bool,
) -> Result<([u8; ipv4::MAX_HEADER_LEN], [u8; MINIMAL_LONG])> {
    let hl = info.header_len;
    let mut header = [0u8; ipv4::MAX_HEADER_LEN];
    header[..hl].copy_from_slice(inner.get(..hl).ok_or(DataplaneError::BadHeaderLength(hl))?);
    header[ipv4::TTL_OFFSET] = ttl;
    header[9] = ipv4::PROTO_MINIMAL;
    header[12..16].copy_from_slice(&outer_src.octets());
    header[16..20].copy_from_slice(&outer_dst.octets());
    let mut fwd = [0u8; MINIMAL_LONG];
    fwd[0] = info.protocol;
    fwd[1] = if s_bit { MINIMAL_S } else { 0 };
    fwd[4..8].copy_from_slice(&info.dst.octets());
    let fwd_len = if s_bit {
        fwd[8..12].copy_from_slice(&info.src.octets());
        MINIMAL_LONG
    } else {
        MINIMAL_SHORT
    };
    let c = ipv4::checksum(&fwd[..fwd_len]);
    fwd[2..4].copy_from_slice(&c.to_be_bytes());
    Ok((header, fwd))
}

#[allow(clippy::too_many_arguments)]
fn fragment_and_encapsulate(
    kind: Encapsulation,
    inner: &[u8],
    info: &Ipv4Info,
    ttl: u8,
    outer_src: Ipv4Addr,
    outer_dst: Ipv4Addr,
    p: &TunnelParams,
    out: &mut [u8],
) -> Result<EncapOutcome> {
    let hl = info.header_len;
    let payload = inner.get(hl..).unwrap_or_default();
    let mtu = usize::from(p.tunnel_mtu);
    let mut pos = 0;
    let mut count = 0usize;
    match kind {
        Encapsulation::IpInIp | Encapsulation::Gre => {
            let overhead = kind.overhead(false);
            let mut header = [0u8; ipv4::MAX_HEADER_LEN];
            header[..hl].copy_from_slice(inner.get(..hl).unwrap_or_default());
            header[ipv4::TTL_OFFSET] = ttl;
            let mut frags = Fragmenter::new(&header[..hl], &[], payload, mtu.saturating_sub(overhead))?;
            while let Some(r) = frags.next_into(out.get_mut(pos + overhead..).unwrap_or_default()) {
                let n = r?;
                let id = p.identification.wrapping_add(count as u16);
                let hdr = outer_header(kind, info, overhead + n, id, outer_src, outer_dst, p);
                write_outer(kind, &hdr, out.get_mut(pos..).unwrap_or_default())?;
                pos += overhead + n;
                count += 1;
            }
        }
        Encapsulation::Minimal => {
            let s_bit = info.src != outer_src;
            let (header, fwd) = minimal_headers(inner, info, ttl, outer_src, outer_dst, s_bit)?;
            let fwd_len = kind.overhead(s_bit);
            let mut frags = Fragmenter::new(&header[..hl], &fwd[..fwd_len], payload, mtu)?;
            while let Some(r) = frags.next_into(out.get_mut(pos..).unwrap_or_default()) {
                pos += r?;
                count += 1;
            }
        }
    }
    Ok(EncapOutcome::Fragmented { len: pos, count })
}

/// What [`decapsulate`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decapsulated {
    pub kind: Encapsulation,
    pub outer_src: Ipv4Addr,
    pub outer_dst: Ipv4Addr,
    /// `out[..inner_len]` is the inner packet.
    pub inner_len: usize,
    pub inner_src: Ipv4Addr,
    pub inner_dst: Ipv4Addr,
}

/// Decapsulates a tunnel packet (outer IPv4 header first, protocol 4, 47 or 55) and
/// writes the inner packet into `out` (rebuilt for minimal encapsulation, RFC 2004 3).
///
/// Refused: a malformed or fragmented outer packet, a GRE header with version != 0 or
/// routing/key/sequence bits, a wrong GRE or minimal checksum, an inner packet that
/// does not parse or whose length disagrees with the tunnel's, an inner TTL of 0
/// (RFC 2003 3.1). The inner TTL is not changed.
pub fn decapsulate(outer: &[u8], out: &mut [u8]) -> Result<Decapsulated> {
    let o = ipv4::parse(outer)?;
    if o.is_fragment() {
        return Err(DataplaneError::Fragment);
    }
    let kind = Encapsulation::from_protocol(o.protocol).ok_or(DataplaneError::NotATunnel(o.protocol))?;
    let payload = outer.get(o.header_len..o.total_len).unwrap_or_default();
    let inner_len = match kind {
        Encapsulation::IpInIp => copy_inner(payload, out)?,
        Encapsulation::Gre => {
            let flags = be16(payload, 0)?;
            if flags & (GRE_RFC1701_BITS | GRE_VERSION) != 0 {
                return Err(DataplaneError::UnsupportedGre(flags));
            }
            let ptype = be16(payload, 2)?;
            if ptype != ETHERTYPE_IPV4 {
                return Err(DataplaneError::GreProtocol(ptype));
            }
            let mut start = GRE_HEADER_LEN;
            if flags & GRE_C != 0 {
                array::<GRE_CHECKSUM_LEN>(payload, GRE_HEADER_LEN)?;
                // RFC 2784 2.5: the checksum covers the GRE header and the payload.
                if ipv4::checksum(payload) != 0 {
                    return Err(DataplaneError::BadChecksum);
                }
                start += GRE_CHECKSUM_LEN;
            }
            copy_inner(payload.get(start..).unwrap_or_default(), out)?
        }
        Encapsulation::Minimal => rebuild_minimal(outer, &o, payload, out)?,
    };
    let written = out.get(..inner_len).unwrap_or_default();
    let inner = ipv4::parse(written)?;
    if inner.ttl == 0 {
        return Err(DataplaneError::TtlExpired);
    }
    Ok(Decapsulated {
        kind,
        outer_src: o.src,
        outer_dst: o.dst,
        inner_len,
        inner_src: inner.src,
        inner_dst: inner.dst,
    })
}

fn copy_inner(inner: &[u8], out: &mut [u8]) -> Result<usize> {
    let info = ipv4::parse(inner)?;
    if info.total_len != inner.len() {
        return Err(DataplaneError::Malformed("inner length differs from the tunnel payload"));
    }
    room(out, inner.len())?.copy_from_slice(inner);
    Ok(inner.len())
}

fn rebuild_minimal(outer: &[u8], o: &Ipv4Info, payload: &[u8], out: &mut [u8]) -> Result<usize> {
    let [protocol, s] = array::<2>(payload, 0)?;
    let fwd_len = if s & MINIMAL_S != 0 { MINIMAL_LONG } else { MINIMAL_SHORT };
    let fwd = payload.get(..fwd_len).ok_or(DataplaneError::Truncated { need: fwd_len, have: payload.len() })?;
    if ipv4::checksum(fwd) != 0 {
        return Err(DataplaneError::BadChecksum);
    }
    let dst = array::<4>(fwd, 4)?;
    let src = if fwd_len == MINIMAL_LONG { array::<4>(fwd, 8)? } else { o.src.octets() };
    let hl = o.header_len;
    let total = o.total_len - fwd_len;
    let buf = room(out, total)?;
    buf[..hl].copy_from_slice(outer.get(..hl).unwrap_or_default());
    buf[hl..].copy_from_slice(payload.get(fwd_len..).unwrap_or_default());
    buf[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    buf[9] = protocol;
    buf[12..16].copy_from_slice(&src);
    buf[16..20].copy_from_slice(&dst);
    ipv4::fill_checksum(buf, hl)?;
    Ok(total)
}

/// The IPv4 packets laid back to back in `buf` (as [`EncapOutcome::Fragmented`]
/// leaves them), by their Total Length. Stops at the first that does not parse.
pub fn packets(buf: &[u8]) -> Packets<'_> {
    Packets { rest: buf }
}

#[derive(Debug, Clone)]
pub struct Packets<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Packets<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let len = usize::from(be16(self.rest, 2).ok()?);
        if len < MIN_HEADER_LEN || len > self.rest.len() {
            return None;
        }
        let (pkt, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(pkt)
    }
}

#[cfg(test)]
#[path = "tunnel_tests.rs"]
mod tests;
