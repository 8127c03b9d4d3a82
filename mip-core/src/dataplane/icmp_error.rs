//! ICMP error messages about a packet we could not forward (RFC 792, RFC 1191).
//!
//! ```text
//! | IPv4 header (20, proto 1, from us to the original source)          |
//! | Type | Code | Checksum | unused (or unused(16) + Next-Hop MTU(16))   |
//! | original IPv4 header + first 8 bytes of its data                   |
//! ```
//! Each builder writes a whole IPv4 packet, ready for a raw IP_HDRINCL socket
//! (Identification 0: the kernel fills it in), and refuses (`IcmpSuppressed`) where
//! RFC 1122 3.2.2 and RFC 1812 4.3.2.7 forbid an error: about an ICMP error, a
//! non-first fragment, a packet to a broadcast or multicast address, or from an
//! address that does not name one host.

use std::net::Ipv4Addr;

use super::ipv4::{self, Ipv4Fields, MIN_HEADER_LEN};
use super::{room, DataplaneError, Result};

pub const TYPE_DEST_UNREACHABLE: u8 = 3;
pub const TYPE_TIME_EXCEEDED: u8 = 11;
pub const CODE_HOST_UNREACHABLE: u8 = 1;
pub const CODE_FRAGMENTATION_NEEDED: u8 = 4;
pub const CODE_TTL_EXCEEDED: u8 = 0;
/// RFC 792: the original header and the first 64 bits of its data.
pub const QUOTED_DATA: usize = 8;
const ICMP_HEADER_LEN: usize = 8;
/// RFC 1812 4.3.2.5: errors go out with precedence 6 (internetwork control).
const TOS_INTERNETWORK_CONTROL: u8 = 0xc0;
const TTL: u8 = 64;

/// Type 3 code 4 with the Next-Hop MTU (RFC 1191 4).
pub fn fragmentation_needed(original: &[u8], from: Ipv4Addr, mtu: u16, out: &mut [u8]) -> Result<usize> {
    build(TYPE_DEST_UNREACHABLE, CODE_FRAGMENTATION_NEEDED, u32::from(mtu), original, from, out)
}

/// Type 11 code 0: TTL reached 0 in transit.
pub fn time_exceeded(original: &[u8], from: Ipv4Addr, out: &mut [u8]) -> Result<usize> {
    build(TYPE_TIME_EXCEEDED, CODE_TTL_EXCEEDED, 0, original, from, out)
}

/// Type 3 with `code` (1 host unreachable, 13 administratively prohibited, ...).
pub fn unreachable(code: u8, original: &[u8], from: Ipv4Addr, out: &mut [u8]) -> Result<usize> {
    build(TYPE_DEST_UNREACHABLE, code, 0, original, from, out)
}

fn unicast(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.octets()[0] >= 240)
}

/// Any ICMP error, `rest` being the second 32-bit word of the ICMP header.
pub fn build(icmp_type: u8, code: u8, rest: u32, original: &[u8], from: Ipv4Addr, out: &mut [u8]) -> Result<usize> {
    let info = ipv4::parse(original)?;
    if info.fragment_offset != 0 {
        return Err(DataplaneError::IcmpSuppressed("not the first fragment"));
    }
    if !unicast(info.dst) {
        return Err(DataplaneError::IcmpSuppressed("destination is broadcast or multicast"));
    }
    if !unicast(info.src) || info.src.is_loopback() {
        return Err(DataplaneError::IcmpSuppressed("source does not name one host"));
    }
    if info.protocol == ipv4::PROTO_ICMP {
        // Errors about errors loop; queries (echo, ...) may be answered.
        let t = original.get(info.header_len).copied();
        if !matches!(t, Some(0 | 8 | 13 | 14 | 15 | 16 | 17 | 18)) {
            return Err(DataplaneError::IcmpSuppressed("the packet is an ICMP error"));
        }
    }
    let quoted = (info.header_len + QUOTED_DATA).min(info.total_len);
    let total = MIN_HEADER_LEN + ICMP_HEADER_LEN + quoted;
    let buf = room(out, total)?;
    ipv4::write_header(
        buf,
        &Ipv4Fields {
            tos: TOS_INTERNETWORK_CONTROL,
            total_len: total as u16,
            identification: 0,
            dont_fragment: false,
            more_fragments: false,
            fragment_offset: 0,
            ttl: TTL,
            protocol: ipv4::PROTO_ICMP,
            src: from,
            dst: info.src,
        },
    )?;
    let icmp = &mut buf[MIN_HEADER_LEN..];
    icmp[0] = icmp_type;
    icmp[1] = code;
    icmp[2] = 0;
    icmp[3] = 0;
    icmp[4..8].copy_from_slice(&rest.to_be_bytes());
    icmp[ICMP_HEADER_LEN..].copy_from_slice(original.get(..quoted).unwrap_or_default());
    let c = ipv4::checksum(icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    Ok(total)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// UDP 198.19.0.1:5000 -> 198.18.0.10:6000, DF, TTL 63, 1472 bytes of payload.
    fn big_udp() -> Vec<u8> {
        let mut p = vec![0u8; 1500];
        ipv4::write_header(
            &mut p,
            &Ipv4Fields {
                tos: 0,
                total_len: 1500,
                identification: 7,
                dont_fragment: true,
                more_fragments: false,
                fragment_offset: 0,
                ttl: 63,
                protocol: ipv4::PROTO_UDP,
                src: Ipv4Addr::new(198, 19, 0, 1),
                dst: Ipv4Addr::new(198, 18, 0, 10),
            },
        )
        .unwrap();
        p[20..28].copy_from_slice(&[0x13, 0x88, 0x17, 0x70, 0x05, 0xc8, 0, 0]);
        p
    }

    #[test]
    fn fragmentation_needed_layout_rfc1191() {
        let orig = big_udp();
        let mut out = [0u8; 128];
        let n = fragmentation_needed(&orig, Ipv4Addr::new(198, 18, 0, 1), 1480, &mut out).unwrap();
        assert_eq!(n, 20 + 8 + 28);
        let ip = ipv4::parse(&out[..n]).unwrap();
        assert_eq!((ip.src, ip.dst, ip.protocol, ip.tos), (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 19, 0, 1), 1, 0xc0));
        // type 3, code 4, checksum, unused 0, next-hop MTU 1480 = 0x05c8
        assert_eq!(&out[20..22], &[3, 4]);
        assert_eq!(&out[24..28], &[0, 0, 0x05, 0xc8]);
        assert_eq!(&out[28..56], &orig[..28]);
        assert_eq!(ipv4::checksum(&out[20..n]), 0);
    }

    #[test]
    fn no_error_about_errors_fragments_or_broadcasts() {
        let from = Ipv4Addr::new(198, 18, 0, 1);
        let mut out = [0u8; 128];
        let mut first = [0u8; 128];
        let n = time_exceeded(&big_udp(), from, &mut first).unwrap();
        assert!(matches!(unreachable(1, &first[..n], from, &mut out), Err(DataplaneError::IcmpSuppressed(_))));
        let mut frag = big_udp();
        frag[6..8].copy_from_slice(&0x2001u16.to_be_bytes());
        ipv4::fill_checksum(&mut frag, 20).unwrap();
        assert!(matches!(time_exceeded(&frag, from, &mut out), Err(DataplaneError::IcmpSuppressed(_))));
        let mut bcast = big_udp();
        bcast[16..20].copy_from_slice(&[255, 255, 255, 255]);
        ipv4::fill_checksum(&mut bcast, 20).unwrap();
        assert!(matches!(time_exceeded(&bcast, from, &mut out), Err(DataplaneError::IcmpSuppressed(_))));
        assert!(matches!(time_exceeded(&big_udp(), from, &mut out[..30]), Err(DataplaneError::BufferTooSmall { .. })));
    }
}
