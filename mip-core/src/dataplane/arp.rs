//! ARP for IPv4 over Ethernet (RFC 826), with the proxy and gratuitous forms of
//! RFC 5944 4.6.
//!
//! ```text
//! | HTYPE=1 (2) | PTYPE=0x0800 (2) | HLEN=6 | PLEN=4 | OPER (2) |
//! | SHA (6) | SPA (4) | THA (6) | TPA (4) |                       28 bytes
//! ```

use std::net::Ipv4Addr;

use super::ethernet::{self, MacAddr, BROADCAST, ETHERTYPE_ARP};
use super::{array, be16, room, DataplaneError, Result};

pub const ARP_LEN: usize = 28;
const HTYPE_ETHERNET: u16 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOp {
    Request,
    Reply,
    Unknown(u16),
}

impl From<u16> for ArpOp {
    fn from(v: u16) -> Self {
        match v {
            1 => ArpOp::Request,
            2 => ArpOp::Reply,
            other => ArpOp::Unknown(other),
        }
    }
}

impl From<ArpOp> for u16 {
    fn from(op: ArpOp) -> u16 {
        match op {
            ArpOp::Request => 1,
            ArpOp::Reply => 2,
            ArpOp::Unknown(v) => v,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpRepr {
    pub operation: ArpOp,
    pub sender_mac: MacAddr,
    pub sender_ip: Ipv4Addr,
    pub target_mac: MacAddr,
    pub target_ip: Ipv4Addr,
}

impl ArpRepr {
    /// Reads an Ethernet/IPv4 ARP packet; bytes past 28 (padding) are ignored.
    pub fn parse(payload: &[u8]) -> Result<Self> {
        if payload.len() < ARP_LEN {
            return Err(DataplaneError::Truncated { need: ARP_LEN, have: payload.len() });
        }
        let [hlen, plen] = array::<2>(payload, 4)?;
        if be16(payload, 0)? != HTYPE_ETHERNET || be16(payload, 2)? != ethernet::ETHERTYPE_IPV4 || hlen != 6 || plen != 4 {
            return Err(DataplaneError::Malformed("ARP is not Ethernet/IPv4"));
        }
        Ok(ArpRepr {
            operation: ArpOp::from(be16(payload, 6)?),
            sender_mac: array::<6>(payload, 8)?,
            sender_ip: Ipv4Addr::from(array::<4>(payload, 14)?),
            target_mac: array::<6>(payload, 18)?,
            target_ip: Ipv4Addr::from(array::<4>(payload, 24)?),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        ARP_LEN
    }

    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        let b = room(out, ARP_LEN)?;
        b[0..2].copy_from_slice(&HTYPE_ETHERNET.to_be_bytes());
        b[2..4].copy_from_slice(&ethernet::ETHERTYPE_IPV4.to_be_bytes());
        b[4] = 6;
        b[5] = 4;
        b[6..8].copy_from_slice(&u16::from(self.operation).to_be_bytes());
        b[8..14].copy_from_slice(&self.sender_mac);
        b[14..18].copy_from_slice(&self.sender_ip.octets());
        b[18..24].copy_from_slice(&self.target_mac);
        b[24..28].copy_from_slice(&self.target_ip.octets());
        Ok(ARP_LEN)
    }

    /// This packet in a whole Ethernet frame from `src_mac` to `dst_mac`.
    pub fn emit_frame(&self, dst_mac: MacAddr, src_mac: MacAddr, out: &mut [u8]) -> Result<usize> {
        let mut arp = [0u8; ARP_LEN];
        self.emit(&mut arp)?;
        ethernet::write_frame(dst_mac, src_mac, ETHERTYPE_ARP, &arp, out)
    }
}

/// RFC 5944 4.6: sender and target protocol address both `ip`, sender hardware address
/// `mac`; target hardware address `mac` in a Reply, zero in a Request. It MUST go out as
/// a link broadcast: see [`gratuitous_frame`].
pub fn gratuitous(ip: Ipv4Addr, mac: MacAddr, op: ArpOp) -> ArpRepr {
    ArpRepr {
        operation: op,
        sender_mac: mac,
        sender_ip: ip,
        target_mac: if op == ArpOp::Reply { mac } else { [0; 6] },
        target_ip: ip,
    }
}

/// A gratuitous ARP for `ip` -> `mac`, broadcast from `our_mac` (the interface sending
/// it: a home agent announcing a returned node's MAC still sends from its own).
pub fn gratuitous_frame(ip: Ipv4Addr, mac: MacAddr, op: ArpOp, our_mac: MacAddr, out: &mut [u8]) -> Result<usize> {
    gratuitous(ip, mac, op).emit_frame(BROADCAST, our_mac, out)
}

/// RFC 5944 4.6 / RFC 925: the Reply a proxy sends for `request`: sender and target
/// swapped, sender hardware address ours. Send it unicast to `request.sender_mac`.
pub fn proxy_reply(request: &ArpRepr, our_mac: MacAddr) -> ArpRepr {
    ArpRepr {
        operation: ArpOp::Reply,
        sender_mac: our_mac,
        sender_ip: request.target_ip,
        target_mac: request.sender_mac,
        target_ip: request.sender_ip,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const HA_MAC: MacAddr = [0x02, 0x00, 0x5e, 0x00, 0x00, 0x01];
    const CN_MAC: MacAddr = [0x02, 0x00, 0x5e, 0x00, 0x00, 0xfe];
    const HOME: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);

    /// Request "who has 198.18.0.10? tell 198.18.0.254" worked out from RFC 826.
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01, // htype, ptype, hlen, plen, op=1
        0x02, 0x00, 0x5e, 0x00, 0x00, 0xfe, 198, 18, 0, 254, // sha, spa
        0, 0, 0, 0, 0, 0, 198, 18, 0, 10, // tha, tpa
    ];

    #[test]
    fn parse_emit_request() {
        let r = ArpRepr::parse(&REQUEST).unwrap();
        assert_eq!(r.operation, ArpOp::Request);
        assert_eq!((r.sender_mac, r.sender_ip, r.target_ip), (CN_MAC, Ipv4Addr::new(198, 18, 0, 254), HOME));
        let mut out = [0u8; 28];
        assert_eq!(r.emit(&mut out), Ok(28));
        assert_eq!(out, REQUEST);
    }

    #[test]
    fn proxy_reply_swaps_and_supplies_our_mac() {
        let reply = proxy_reply(&ArpRepr::parse(&REQUEST).unwrap(), HA_MAC);
        let mut out = [0u8; 28];
        reply.emit(&mut out).unwrap();
        let expected: [u8; 28] = [
            0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x02, 0x02, 0x00, 0x5e, 0x00, 0x00, 0x01, 198, 18, 0, 10, 0x02, 0x00,
            0x5e, 0x00, 0x00, 0xfe, 198, 18, 0, 254,
        ];
        assert_eq!(out, expected);
    }

    #[test]
    fn gratuitous_fields_rfc5944_4_6() {
        let req = gratuitous(HOME, HA_MAC, ArpOp::Request);
        assert_eq!((req.sender_ip, req.target_ip, req.sender_mac, req.target_mac), (HOME, HOME, HA_MAC, [0; 6]));
        let rep = gratuitous(HOME, HA_MAC, ArpOp::Reply);
        assert_eq!(rep.target_mac, HA_MAC);
        let mut frame = [0u8; 64];
        let n = gratuitous_frame(HOME, HA_MAC, ArpOp::Request, HA_MAC, &mut frame).unwrap();
        assert_eq!(n, 60);
        assert_eq!(&frame[..14], &[255, 255, 255, 255, 255, 255, 2, 0, 0x5e, 0, 0, 1, 8, 6]);
        assert_eq!(ArpRepr::parse(&frame[14..n]).unwrap(), req);
    }

    #[test]
    fn refuses_other_hardware_and_short_packets() {
        let mut bad = REQUEST;
        bad[1] = 6; // IEEE 802
        assert!(matches!(ArpRepr::parse(&bad), Err(DataplaneError::Malformed(_))));
        assert!(matches!(ArpRepr::parse(&REQUEST[..27]), Err(DataplaneError::Truncated { .. })));
        assert_eq!(ArpOp::from(9), ArpOp::Unknown(9));
    }
}
