//! Ethernet frames the foreign agent writes itself: registration replies and unicast
//! advertisements go to a mobile node whose (home) IP address is not on this link, so
//! they cannot go through the kernel's routing and ARP (RFC 5944 4.2.2: no broadcast
//! ARP for a visitor). Also the small reads of captured frames the shell needs.

use std::net::Ipv4Addr;

use mip_core::dataplane::ethernet::{self, ETHERTYPE_IPV4};
use mip_core::dataplane::ipv4::{
    self, Ipv4Fields, Ipv4Info, MIN_HEADER_LEN, PROTO_ICMP, PROTO_UDP,
};
use mip_core::dataplane::{DataplaneError, Result};

use crate::MacAddr;

use mip_core::dataplane::frame::UDP_HEADER_LEN;

/// The Ethernet destination of an IPv4 destination: broadcast, the RFC 1112 multicast
/// mapping, or the given unicast address.
pub fn link_destination(ip: Ipv4Addr, unicast: Option<MacAddr>) -> Option<MacAddr> {
    if ip.is_broadcast() {
        Some(ethernet::BROADCAST)
    } else if ip.is_multicast() {
        let o = ip.octets();
        Some([0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]])
    } else {
        unicast
    }
}

/// The UDP checksum (RFC 768) of `udp` (header with a zero checksum, then data) sent
/// from `src` to `dst`; 0 is sent as 0xffff.
pub fn udp_checksum(src: Ipv4Addr, dst: Ipv4Addr, udp: &[u8]) -> u16 {
    let mut pseudo = [0u8; 12];
    pseudo[..4].copy_from_slice(&src.octets());
    pseudo[4..8].copy_from_slice(&dst.octets());
    pseudo[9] = PROTO_UDP;
    pseudo[10..12].copy_from_slice(&(udp.len() as u16).to_be_bytes());
    let c = ipv4::fold(ipv4::sum(udp, ipv4::sum(&pseudo, 0)));
    if c == 0 {
        0xffff
    } else {
        c
    }
}

/// Writes an Ethernet frame carrying an IPv4/ICMP message (checksum already in `icmp`).
pub fn write_icmp_frame(
    dst_mac: MacAddr,
    src_mac: MacAddr,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    icmp: &[u8],
    out: &mut [u8],
) -> Result<usize> {
    let total = MIN_HEADER_LEN + icmp.len();
    let total16 =
        u16::try_from(total).map_err(|_| DataplaneError::Malformed("message too long"))?;
    let frame_len = (ethernet::HEADER_LEN + total).max(ethernet::MIN_FRAME_LEN);
    let have = out.len();
    let buf = out
        .get_mut(..frame_len)
        .ok_or(DataplaneError::BufferTooSmall {
            need: frame_len,
            have,
        })?;
    buf.fill(0);
    ethernet::write_header(dst_mac, src_mac, ETHERTYPE_IPV4, buf)?;
    let ip = buf.get_mut(ethernet::HEADER_LEN..).unwrap_or_default();
    ipv4::write_header(
        ip,
        &Ipv4Fields {
            tos: 0,
            total_len: total16,
            identification: 0,
            dont_fragment: false,
            more_fragments: false,
            fragment_offset: 0,
            ttl,
            protocol: PROTO_ICMP,
            src,
            dst,
        },
    )?;
    ip.get_mut(MIN_HEADER_LEN..total)
        .unwrap_or_default()
        .copy_from_slice(icmp);
    Ok(frame_len)
}

/// A UDP datagram read from an IPv4 packet (checksum not checked: on veth links a
/// captured packet may carry only a partial one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpView<'a> {
    pub ip: Ipv4Info,
    pub source_port: u16,
    pub destination_port: u16,
    pub payload: &'a [u8],
}

/// Reads the UDP header of an unfragmented IPv4/UDP packet.
pub fn parse_udp(pkt: &[u8]) -> Result<UdpView<'_>> {
    let ip = ipv4::parse(pkt)?;
    if ip.protocol != PROTO_UDP {
        return Err(DataplaneError::Malformed("not UDP"));
    }
    if ip.is_fragment() {
        return Err(DataplaneError::Fragment);
    }
    let udp = pkt.get(ip.header_len..ip.total_len).unwrap_or_default();
    let hdr = udp.get(..UDP_HEADER_LEN).ok_or(DataplaneError::Truncated {
        need: UDP_HEADER_LEN,
        have: udp.len(),
    })?;
    let len = usize::from(u16::from_be_bytes([hdr[4], hdr[5]]));
    if len < UDP_HEADER_LEN || len > udp.len() {
        return Err(DataplaneError::Malformed("bad UDP length"));
    }
    Ok(UdpView {
        ip,
        source_port: u16::from_be_bytes([hdr[0], hdr[1]]),
        destination_port: u16::from_be_bytes([hdr[2], hdr[3]]),
        payload: udp.get(UDP_HEADER_LEN..len).unwrap_or_default(),
    })
}

/// The ICMP message of an unfragmented IPv4/ICMP packet, with the IP header read.
pub fn parse_icmp(pkt: &[u8]) -> Result<(Ipv4Info, &[u8])> {
    let ip = ipv4::parse(pkt)?;
    if ip.protocol != PROTO_ICMP {
        return Err(DataplaneError::Malformed("not ICMP"));
    }
    if ip.is_fragment() {
        return Err(DataplaneError::Fragment);
    }
    Ok((ip, pkt.get(ip.header_len..ip.total_len).unwrap_or_default()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::SocketAddrV4;

    use super::*;

    #[test]
    fn udp_frame_round_trips_and_its_checksum_verifies() {
        let src = SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, 1), 434);
        let dst = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 10), 40000);
        let mut out = [0u8; 200];
        let frame = mip_core::dataplane::frame::UdpFrame {
            dst_mac: [2; 6],
            src_mac: [4; 6],
            source: src,
            destination: dst,
            ttl: 64,
            identification: 0,
        };
        let n = frame.emit(b"hello", &mut out).unwrap();
        assert_eq!(n, 60, "padded to the Ethernet minimum");
        let f = ethernet::parse(&out[..n]).unwrap();
        assert_eq!(
            (f.dst, f.src, f.ethertype),
            ([2; 6], [4; 6], ETHERTYPE_IPV4)
        );
        let u = parse_udp(f.payload).unwrap();
        assert_eq!((u.ip.src, u.ip.dst, u.ip.ttl), (*src.ip(), *dst.ip(), 64));
        assert_eq!(
            (u.source_port, u.destination_port, u.payload),
            (434, 40000, &b"hello"[..])
        );
        let udp = &f.payload[20..20 + 13];
        // Summing with the checksum in place gives 0 (complemented: 0xffff -> 0).
        let mut pseudo = [0u8; 12];
        pseudo[..4].copy_from_slice(&src.ip().octets());
        pseudo[4..8].copy_from_slice(&dst.ip().octets());
        pseudo[9] = 17;
        pseudo[11] = 13;
        assert_eq!(ipv4::fold(ipv4::sum(udp, ipv4::sum(&pseudo, 0))), 0);
    }

    #[test]
    fn multicast_and_broadcast_map_to_their_link_addresses() {
        assert_eq!(
            link_destination(Ipv4Addr::new(224, 0, 0, 1), None),
            Some([1, 0, 0x5e, 0, 0, 1])
        );
        assert_eq!(
            link_destination(Ipv4Addr::new(239, 200, 1, 2), None),
            Some([1, 0, 0x5e, 0x48, 1, 2])
        );
        assert_eq!(link_destination(Ipv4Addr::BROADCAST, None), Some([0xff; 6]));
        assert_eq!(link_destination(Ipv4Addr::new(198, 18, 0, 10), None), None);
        assert_eq!(
            link_destination(Ipv4Addr::new(198, 18, 0, 10), Some([2; 6])),
            Some([2; 6])
        );
    }
}
