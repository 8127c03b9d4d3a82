//! The Target's data plane decisions (the I/O is in the daemon). A same-subnet Target
//! (FIG. 1b) receives the session's packets on its interface like any local packets and
//! uses only the outbound half (direct, never reverse-tunnelled). Tunnel in and packets out
//! reuse the co-located mobile node's `crate::mn::datapath::{inbound, outbound}`: the
//! Target is to the Agent what a co-located mobile node is to its home agent (the TN's
//! address plays the home address, the Target's own address the care-of address).
//!
//! What SID adds: the Target must not answer for connections it does not hold, so that a
//! connection left on the TN survives a short transfer (issue 4 item 8). Whatever the
//! kernel sends from the transferred address comes out of the TUN device (policy routing),
//! so TCP resets and ICMP destination-unreachable errors from it are dropped there.

use std::net::Ipv4Addr;

use mip_core::dataplane::ipv4::{self, PROTO_ICMP, PROTO_TCP};
use serde::{Deserialize, Serialize};

/// TCP header byte holding the flags, and the RST bit.
const TCP_FLAGS: usize = 13;
const TCP_RST: u8 = 0x04;
const ICMP_DEST_UNREACHABLE: u8 = 3;

/// Why an outgoing packet is suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suppressed {
    TcpReset,
    IcmpUnreachable,
}

/// `Some` when `packet`, read from the TUN device, is a reset or an ICMP destination
/// unreachable sent from the transferred address `tn`: a connection (or port) this
/// device does not hold, which must not be torn down at the correspondent.
pub fn suppress(packet: &[u8], tn: Ipv4Addr) -> Option<Suppressed> {
    let info = ipv4::parse(packet).ok()?;
    if info.src != tn || info.fragment_offset != 0 {
        return None;
    }
    let l4 = packet.get(info.header_len..info.total_len)?;
    match info.protocol {
        PROTO_TCP if l4.get(TCP_FLAGS).is_some_and(|f| f & TCP_RST != 0) => Some(Suppressed::TcpReset),
        PROTO_ICMP if l4.first() == Some(&ICMP_DEST_UNREACHABLE) => Some(Suppressed::IcmpUnreachable),
        _ => None,
    }
}

/// Counters of the Target's data plane, in `status`. Reads back from that JSON; a counter
/// an older `status` lacks reads as 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SidDataStats {
    pub tunnel_in_packets: u64,
    pub tunnel_in_bytes: u64,
    pub tunnel_rejected: u64,
    pub direct_out_packets: u64,
    pub reverse_out_packets: u64,
    pub tun_dropped: u64,
    pub suppressed_tcp_resets: u64,
    pub suppressed_icmp_unreachable: u64,
    pub send_errors: u64,
    pub gratuitous_arps: u64,
    /// Tunnelled packets still queued when the address was taken off, delivered first.
    pub drained_at_removal: u64,
    /// Packets the applications wrote before the address was taken off, still in the
    /// TUN device then, sent on under the old terms.
    pub tun_drained_at_removal: u64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use mip_core::dataplane::ipv4::{Ipv4Fields, PROTO_UDP};

    const TN: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
    const CN: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);

    fn packet(src: Ipv4Addr, protocol: u8, l4: &[u8]) -> Vec<u8> {
        let total = 20 + l4.len();
        let mut p = vec![0u8; total];
        ipv4::write_header(
            &mut p,
            &Ipv4Fields {
                tos: 0,
                total_len: total as u16,
                identification: 1,
                dont_fragment: true,
                more_fragments: false,
                fragment_offset: 0,
                ttl: 64,
                protocol,
                src,
                dst: CN,
            },
        )
        .unwrap();
        p[20..].copy_from_slice(l4);
        p
    }

    #[test]
    fn resets_and_unreachables_from_the_transferred_address_are_suppressed() {
        let mut tcp = [0u8; 20];
        tcp[TCP_FLAGS] = 0x14; // RST|ACK
        assert_eq!(suppress(&packet(TN, PROTO_TCP, &tcp), TN), Some(Suppressed::TcpReset));
        tcp[TCP_FLAGS] = 0x18; // PSH|ACK: data
        assert_eq!(suppress(&packet(TN, PROTO_TCP, &tcp), TN), None);
        let icmp = [3u8, 3, 0, 0, 0, 0, 0, 0];
        assert_eq!(suppress(&packet(TN, PROTO_ICMP, &icmp), TN), Some(Suppressed::IcmpUnreachable));
        let echo_reply = [0u8, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(suppress(&packet(TN, PROTO_ICMP, &echo_reply), TN), None);
        assert_eq!(suppress(&packet(TN, PROTO_UDP, &[0u8; 8]), TN), None);
        // Not from the transferred address: not ours to judge.
        tcp[TCP_FLAGS] = 0x04;
        assert_eq!(suppress(&packet(CN, PROTO_TCP, &tcp), TN), None);
        assert_eq!(suppress(&[0x45, 0, 0], TN), None);
    }
}
