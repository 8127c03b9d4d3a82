//! Packets as Linux hands them to an AF_PACKET reader with `PACKET_VNET_HDR` set.
//!
//! On veth links and bridges the kernel does not finish checksums nor cut TCP into
//! MTU-sized segments: a packet captured there may carry only the pseudo-header sum in
//! its TCP/UDP checksum (CHECKSUM_PARTIAL) and may be a 64 KB TCP super-packet (GSO).
//! Forwarding such bytes into a tunnel would deliver corrupt or oversized packets. With
//! `PACKET_VNET_HDR` each packet is preceded by a `struct virtio_net_hdr` (10 bytes,
//! host byte order) telling where the checksum starts and the segment size; this
//! module reads it, finishes checksums and segments TCP, without allocating.
//!
//! ```text
//! | flags (1) | gso_type (1) | hdr_len (2) | gso_size (2) | csum_start (2) | csum_offset (2) |
//! ```

use super::ipv4::{self, PROTO_TCP};
use super::{array, room, DataplaneError, Result};

pub const VNET_HDR_LEN: usize = 10;
const F_NEEDS_CSUM: u8 = 1;
const F_DATA_VALID: u8 = 2;
const GSO_ECN: u8 = 0x80;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GsoType {
    None,
    TcpV4,
    /// UFO: the kernel would fragment it.
    Udp,
    TcpV6,
    /// UDP segmentation (USO).
    UdpL4,
    Other(u8),
}

/// A `struct virtio_net_hdr`. Offsets count from the start of the frame that follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VnetHdr {
    /// The L4 checksum is partial: finish it with [`complete_checksum`].
    pub needs_csum: bool,
    pub data_valid: bool,
    pub gso_type: GsoType,
    pub ecn: bool,
    pub hdr_len: u16,
    /// Payload bytes per segment of a GSO packet.
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Splits `buf` into the header and the frame after it.
    pub fn parse(buf: &[u8]) -> Result<(VnetHdr, &[u8])> {
        let h = array::<VNET_HDR_LEN>(buf, 0)?;
        let u16_at = |i: usize| u16::from_ne_bytes([h[i], h[i + 1]]);
        let gso = h[1] & !GSO_ECN;
        let hdr = VnetHdr {
            needs_csum: h[0] & F_NEEDS_CSUM != 0,
            data_valid: h[0] & F_DATA_VALID != 0,
            gso_type: match gso {
                0 => GsoType::None,
                1 => GsoType::TcpV4,
                3 => GsoType::Udp,
                4 => GsoType::TcpV6,
                5 => GsoType::UdpL4,
                other => GsoType::Other(other),
            },
            ecn: h[1] & GSO_ECN != 0,
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        };
        Ok((hdr, buf.get(VNET_HDR_LEN..).unwrap_or_default()))
    }
}

/// Finishes a partial checksum in place: the 16-bit field at `start + offset` holds the
/// pseudo-header sum, and the checksum covers `pkt[start..]` (the IP packet up to its
/// Total Length). A result of 0 is sent as 0xffff, as Linux does.
pub fn complete_checksum(pkt: &mut [u8], start: usize, offset: usize) -> Result<()> {
    let at = start + offset;
    array::<2>(pkt, at)?;
    let covered = pkt.get(start..).ok_or(DataplaneError::Truncated { need: start, have: pkt.len() })?;
    let c = match ipv4::checksum(covered) {
        0 => 0xffff,
        c => c,
    };
    pkt[at..at + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// Recomputes the TCP or UDP checksum of an unfragmented IPv4 packet from scratch.
pub fn fill_l4_checksum(pkt: &mut [u8]) -> Result<()> {
    let info = ipv4::parse(pkt)?;
    if info.is_fragment() {
        return Err(DataplaneError::Fragment);
    }
    let field = match info.protocol {
        ipv4::PROTO_TCP => 16,
        ipv4::PROTO_UDP => 6,
        _ => return Err(DataplaneError::Malformed("not TCP or UDP")),
    };
    let at = info.header_len + field;
    array::<2>(pkt, at)?;
    pkt[at] = 0;
    pkt[at + 1] = 0;
    let l4 = pkt.get(info.header_len..info.total_len).unwrap_or_default();
    let c = fold_l4(&info, l4);
    let c = if c == 0 && info.protocol == ipv4::PROTO_UDP { 0xffff } else { c };
    pkt[at..at + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

fn fold_l4(info: &ipv4::Ipv4Info, l4: &[u8]) -> u16 {
    let mut acc = ipv4::sum(&info.src.octets(), 0);
    acc = ipv4::sum(&info.dst.octets(), acc);
    acc = ipv4::sum(&[0, info.protocol], acc);
    acc = ipv4::sum(&(l4.len() as u16).to_be_bytes(), acc);
    ipv4::fold(ipv4::sum(l4, acc))
}

const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// Cuts an IPv4 TCP super-packet into segments of at most `mss` payload bytes, each
/// with its own IP length, Identification (+1 per segment), checksums and sequence
/// number; FIN and PSH only on the last segment, CWR only on the first (as Linux's
/// software GSO does).
#[derive(Debug)]
pub struct TcpSegmenter<'a> {
    pkt: &'a [u8],
    info: ipv4::Ipv4Info,
    headers_len: usize,
    mss: usize,
    pos: usize,
    index: u16,
}

impl<'a> TcpSegmenter<'a> {
    pub fn new(pkt: &'a [u8], mss: u16) -> Result<Self> {
        let info = ipv4::parse(pkt)?;
        if info.protocol != PROTO_TCP || info.is_fragment() {
            return Err(DataplaneError::Malformed("not an unfragmented TCP packet"));
        }
        let [off] = array::<1>(pkt, info.header_len + 12)?;
        let tcp_len = usize::from(off >> 4) * 4;
        let headers_len = info.header_len + tcp_len;
        if tcp_len < 20 || headers_len > info.total_len {
            return Err(DataplaneError::Malformed("bad TCP data offset"));
        }
        if mss == 0 {
            return Err(DataplaneError::MtuTooSmall(0));
        }
        Ok(TcpSegmenter { pkt: &pkt[..info.total_len], info, headers_len, mss: usize::from(mss), pos: 0, index: 0 })
    }

    fn payload_len(&self) -> usize {
        self.info.total_len - self.headers_len
    }

    /// Writes the next segment into `out`; `None` when done. A packet without payload
    /// gives itself, checksummed.
    pub fn next_into(&mut self, out: &mut [u8]) -> Option<Result<usize>> {
        let payload_len = self.payload_len();
        if self.pos >= payload_len && !(self.index == 0 && payload_len == 0) {
            return None;
        }
        let data = (payload_len - self.pos).min(self.mss);
        let first = self.pos == 0;
        let last = self.pos + data >= payload_len;
        let total = self.headers_len + data;
        let r = self.write(out, data, total, first, last);
        if r.is_ok() {
            self.pos += data.max(1);
            self.index = self.index.wrapping_add(1);
        }
        Some(r)
    }

    fn write(&self, out: &mut [u8], data: usize, total: usize, first: bool, last: bool) -> Result<usize> {
        let hl = self.info.header_len;
        let buf = room(out, total)?;
        buf[..self.headers_len].copy_from_slice(&self.pkt[..self.headers_len]);
        let from = self.headers_len + self.pos;
        buf[self.headers_len..].copy_from_slice(self.pkt.get(from..from + data).unwrap_or_default());
        buf[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        let id = self.info.identification.wrapping_add(self.index);
        buf[4..6].copy_from_slice(&id.to_be_bytes());
        ipv4::fill_checksum(buf, hl)?;
        let seq = u32::from_be_bytes(array::<4>(buf, hl + 4)?).wrapping_add(self.pos as u32);
        buf[hl + 4..hl + 8].copy_from_slice(&seq.to_be_bytes());
        let flags = &mut buf[hl + 13];
        if !last {
            *flags &= !(TCP_FIN | TCP_PSH);
        }
        if !first {
            *flags &= !TCP_CWR;
        }
        fill_l4_checksum(buf)?;
        Ok(total)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::dataplane::ipv4::{write_header, Ipv4Fields};
    use std::net::Ipv4Addr;

    fn tcp(payload: usize, flags: u8) -> Vec<u8> {
        let total = 40 + payload;
        let mut p = vec![0u8; total];
        write_header(
            &mut p,
            &Ipv4Fields {
                tos: 0,
                total_len: total as u16,
                identification: 100,
                dont_fragment: true,
                more_fragments: false,
                fragment_offset: 0,
                ttl: 64,
                protocol: PROTO_TCP,
                src: Ipv4Addr::new(198, 19, 0, 1),
                dst: Ipv4Addr::new(198, 18, 0, 10),
            },
        )
        .unwrap();
        p[20..24].copy_from_slice(&[0x13, 0x88, 0x00, 0x50]);
        p[24..28].copy_from_slice(&1000u32.to_be_bytes());
        p[32] = 0x50;
        p[33] = flags;
        for (i, b) in p[40..].iter_mut().enumerate() {
            *b = i as u8;
        }
        p
    }

    fn l4_ok(p: &[u8]) -> bool {
        let info = ipv4::parse(p).unwrap();
        fold_l4(&info, &p[info.header_len..info.total_len]) == 0
    }

    #[test]
    fn vnet_header_fields() {
        let mut b = [0u8; 12];
        b[0] = 1;
        b[1] = 0x81;
        b[4..6].copy_from_slice(&1448u16.to_ne_bytes());
        b[6..8].copy_from_slice(&34u16.to_ne_bytes());
        b[8..10].copy_from_slice(&16u16.to_ne_bytes());
        let (h, rest) = VnetHdr::parse(&b).unwrap();
        assert!(h.needs_csum && h.ecn && !h.data_valid);
        assert_eq!((h.gso_type, h.gso_size, h.csum_start, h.csum_offset, rest.len()), (GsoType::TcpV4, 1448, 34, 16, 2));
        assert!(VnetHdr::parse(&b[..9]).is_err());
    }

    #[test]
    fn partial_checksum_is_completed() {
        let mut p = tcp(33, 0x18);
        fill_l4_checksum(&mut p).unwrap();
        assert!(l4_ok(&p));
        // What the kernel leaves: the folded pseudo-header sum, not complemented.
        let info = ipv4::parse(&p).unwrap();
        let mut acc = ipv4::sum(&info.src.octets(), 0);
        acc = ipv4::sum(&info.dst.octets(), acc);
        acc = ipv4::sum(&[0, 6], acc);
        acc = ipv4::sum(&((p.len() - 20) as u16).to_be_bytes(), acc);
        let partial = !ipv4::fold(acc);
        p[36..38].copy_from_slice(&partial.to_be_bytes());
        assert!(!l4_ok(&p));
        complete_checksum(&mut p, 20, 16).unwrap();
        assert!(l4_ok(&p));
    }

    #[test]
    fn tcp_super_packet_is_cut_with_right_seq_flags_and_checksums() {
        let p = tcp(3000, 0x19 | TCP_CWR); // FIN PSH ACK CWR
        let mut seg = TcpSegmenter::new(&p, 1400).unwrap();
        let mut out = [0u8; 2000];
        let mut seen = Vec::new();
        while let Some(r) = seg.next_into(&mut out) {
            let n = r.unwrap();
            let s = &out[..n];
            assert!(l4_ok(s));
            let i = ipv4::parse(s).unwrap();
            let seq = u32::from_be_bytes([s[24], s[25], s[26], s[27]]);
            assert_eq!(s[40], ((seq - 1000) % 256) as u8);
            seen.push((n - 40, seq, s[33], i.identification));
        }
        assert_eq!(
            seen,
            vec![(1400, 1000, 0x10 | TCP_CWR, 100), (1400, 2400, 0x10, 101), (200, 3800, 0x19, 102)]
        );
    }
}
