//! Ethernet frames carrying a UDP datagram we originate, built by hand for the cases where
//! the kernel's routing and ARP cannot be used: a foreign agent's reply to a visitor whose
//! address is not on its link (RFC 5944 4.2.2), and a SID wake-up to a node whose address
//! the neighbour table maps to the sender itself.

use std::net::SocketAddrV4;

use super::ethernet::{self, MacAddr, ETHERTYPE_IPV4, HEADER_LEN, MIN_FRAME_LEN};
use super::ipv4::{self, Ipv4Fields};
use super::offload::fill_l4_checksum;
use super::{DataplaneError, Result};

pub const UDP_HEADER_LEN: usize = 8;
/// The largest frame of a datagram sent straight onto an Ethernet link with an MTU of 1500.
/// Larger would need fragments, which none of ours does.
pub const MAX_LINK_FRAME: usize = HEADER_LEN + 1500;
/// TTL of the datagrams we originate (the Linux default).
pub const ORIGINATED_TTL: u8 = 64;

/// The headers of one UDP datagram in an Ethernet frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpFrame {
    pub dst_mac: MacAddr,
    pub src_mac: MacAddr,
    pub source: SocketAddrV4,
    pub destination: SocketAddrV4,
    pub ttl: u8,
    pub identification: u16,
}

impl UdpFrame {
    /// Writes the frame with `payload` into `out`: DF set, header and UDP checksums
    /// filled, padded with zeros to the Ethernet minimum. Returns the frame's length.
    pub fn emit(&self, payload: &[u8], out: &mut [u8]) -> Result<usize> {
        let udp_len = UDP_HEADER_LEN + payload.len();
        let ip_len = ipv4::MIN_HEADER_LEN + udp_len;
        let total_len =
            u16::try_from(ip_len).map_err(|_| DataplaneError::Malformed("UDP payload too long for one IPv4 datagram"))?;
        let frame_len = (HEADER_LEN + ip_len).max(MIN_FRAME_LEN);
        let have = out.len();
        let frame = out.get_mut(..frame_len).ok_or(DataplaneError::BufferTooSmall { need: frame_len, have })?;
        ethernet::write_header(self.dst_mac, self.src_mac, ETHERTYPE_IPV4, frame)?;
        // frame_len >= HEADER_LEN + ip_len, so both splits are in range.
        let (_, rest) = frame.split_at_mut(HEADER_LEN);
        let (pkt, padding) = rest.split_at_mut(ip_len);
        padding.fill(0);
        ipv4::write_header(
            pkt,
            &Ipv4Fields {
                tos: 0,
                total_len,
                identification: self.identification,
                dont_fragment: true,
                more_fragments: false,
                fragment_offset: 0,
                ttl: self.ttl,
                protocol: ipv4::PROTO_UDP,
                src: *self.source.ip(),
                dst: *self.destination.ip(),
            },
        )?;
        let (_, udp) = pkt.split_at_mut(ipv4::MIN_HEADER_LEN);
        let (header, data) = udp.split_at_mut(UDP_HEADER_LEN);
        header[0..2].copy_from_slice(&self.source.port().to_be_bytes());
        header[2..4].copy_from_slice(&self.destination.port().to_be_bytes());
        // udp_len < ip_len, which fits in 16 bits.
        header[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
        header[6..8].fill(0);
        data.copy_from_slice(payload);
        fill_l4_checksum(pkt)?;
        Ok(frame_len)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn frame() -> UdpFrame {
        UdpFrame {
            dst_mac: [2, 0, 0, 0, 0, 10],
            src_mac: [2, 0, 0, 0, 0, 1],
            source: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 434),
            destination: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 10), 434),
            ttl: ORIGINATED_TTL,
            identification: 0x1234,
        }
    }

    #[test]
    fn headers_and_both_checksums_are_right_and_short_frames_are_padded() {
        let mut out = [0xaau8; MAX_LINK_FRAME];
        let n = frame().emit(b"hello", &mut out).unwrap();
        assert_eq!(n, MIN_FRAME_LEN, "padded to the Ethernet minimum");
        let f = ethernet::parse(&out[..n]).unwrap();
        assert_eq!((f.dst, f.src, f.ethertype), ([2, 0, 0, 0, 0, 10], [2, 0, 0, 0, 0, 1], ETHERTYPE_IPV4));
        let ip = ipv4::parse(f.payload).unwrap();
        assert_eq!((ip.src, ip.dst, ip.ttl, ip.protocol, ip.total_len), (*frame().source.ip(), *frame().destination.ip(), 64, ipv4::PROTO_UDP, 33));
        assert_eq!(ipv4::fold(ipv4::sum(&f.payload[..20], 0)), 0, "header checksum verifies");
        let udp = &f.payload[20..33];
        let mut pseudo = [0u8; 12];
        pseudo[..4].copy_from_slice(&ip.src.octets());
        pseudo[4..8].copy_from_slice(&ip.dst.octets());
        pseudo[9] = ipv4::PROTO_UDP;
        pseudo[10..12].copy_from_slice(&13u16.to_be_bytes());
        assert_eq!(ipv4::fold(ipv4::sum(udp, ipv4::sum(&pseudo, 0))), 0, "UDP checksum verifies");
        assert_eq!(&udp[8..], b"hello");
        assert!(out[47..n].iter().all(|b| *b == 0), "padding is zero");
    }

    #[test]
    fn too_small_a_buffer_and_too_long_a_payload_are_errors() {
        let mut small = [0u8; 40];
        assert!(matches!(frame().emit(b"x", &mut small), Err(DataplaneError::BufferTooSmall { need: 60, have: 40 })));
        let big = vec![0u8; 70_000];
        let mut out = vec![0u8; 70_100];
        assert!(frame().emit(&big, &mut out).is_err());
    }
}
