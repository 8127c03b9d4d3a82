//! The co-located data plane of the mobile node (design3.md, co-located mode).
//!
//! - Tunnel -> apps: a packet of protocol 4/55/47 to the co-located address from the home
//!   agent is decapsulated and its inner packet (to the home address) written into the TUN
//!   device; the kernel then delivers it to the applications.
//! - Apps -> network: a packet from the home address read out of the TUN device goes out
//!   of the interface as it is (raw IP_HDRINCL, source the home address), or encapsulated
//!   to the home agent from the co-located address when reverse tunnelling (T) was asked.
//!
//! The decisions are plain functions over caller-owned buffers (sized once by
//! [`Buffers::new`]); the daemon does the I/O.

use std::net::Ipv4Addr;

use mip_core::dataplane::{
    self, decapsulate, encapsulate, icmp_error, ipv4, DropReason, EncapOutcome, Encapsulation,
    TunnelParams, ENCAP_BUFFER_LEN,
};
use serde::Serialize;

/// Largest IP packet read from a socket or the TUN device.
pub const PACKET_BUFFER_LEN: usize = 65_536;

/// Per-direction buffers, allocated once for the life of the daemon.
pub struct Buffers {
    pub tun_in: Vec<u8>,
    pub tunnel_in: [Vec<u8>; 3],
    pub out: Vec<u8>,
    pub icmp: Vec<u8>,
}

impl Buffers {
    pub fn new() -> Self {
        Self {
            tun_in: vec![0; PACKET_BUFFER_LEN],
            tunnel_in: [
                vec![0; PACKET_BUFFER_LEN],
                vec![0; PACKET_BUFFER_LEN],
                vec![0; PACKET_BUFFER_LEN],
            ],
            out: vec![0; ENCAP_BUFFER_LEN],
            icmp: vec![0; 1024],
        }
    }
}

impl Default for Buffers {
    fn default() -> Self {
        Self::new()
    }
}

/// Counters of the data plane, shown in the status output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DataStats {
    /// Tunnelled packets decapsulated and written into the TUN device.
    pub tunnel_in_packets: u64,
    pub tunnel_in_bytes: u64,
    /// Packets from the applications sent directly (source the home address).
    pub direct_out_packets: u64,
    pub direct_out_bytes: u64,
    /// Packets from the applications reverse-tunnelled to the home agent.
    pub reverse_out_packets: u64,
    pub reverse_out_bytes: u64,
    /// Tunnel packets not for our co-located address (or not co-located now).
    pub tunnel_ignored: u64,
    /// Tunnel packets for us that failed decapsulation or the checks.
    pub tunnel_rejected: u64,
    /// Packets read from the TUN device that could not be sent.
    pub tun_dropped: u64,
    /// ICMP Fragmentation Needed written back to the applications.
    pub icmp_to_apps: u64,
    pub send_errors: u64,
}

/// What the co-located data plane knows while it is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Colocation {
    pub home_address: Ipv4Addr,
    pub home_agent: Ipv4Addr,
    pub care_of: Ipv4Addr,
    pub reverse_tunnel: bool,
    pub encapsulation: Encapsulation,
    /// Largest packet the interface sends.
    pub link_mtu: u16,
}

/// What to do with a tunnelled packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// Write `out[..len]` into the TUN device.
    Deliver { len: usize },
    /// Not addressed to our tunnel endpoint: someone else's business.
    Ignore,
    /// For us but refused (malformed, wrong source, not to the home address).
    Reject(&'static str),
}

/// Decapsulates `packet` into `out` if it is a tunnel from our home agent to our co-located
/// address carrying a packet for the home address.
pub fn inbound(c: &Colocation, packet: &[u8], out: &mut [u8]) -> Inbound {
    let Ok(outer) = ipv4::parse(packet) else {
        return Inbound::Reject("malformed outer header");
    };
    if outer.dst != c.care_of {
        return Inbound::Ignore;
    }
    let d = match decapsulate(packet, out) {
        Ok(d) => d,
        Err(dataplane::DataplaneError::NotATunnel(_)) => return Inbound::Ignore,
        Err(_) => return Inbound::Reject("decapsulation failed"),
    };
    // Only our home agent tunnels to a co-located address (RFC 5944 4.1), and only for
    // our home address: anything else would let any host inject packets for our apps.
    if d.outer_src != c.home_agent {
        return Inbound::Reject("tunnel source is not the home agent");
    }
    if d.inner_dst != c.home_address {
        return Inbound::Reject("inner destination is not the home address");
    }
    Inbound::Deliver { len: d.inner_len }
}

/// What to do with a packet the applications sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outbound {
    /// Send the packet as it is, to its destination.
    Direct {
        dst: Ipv4Addr,
    },
    /// Send `out[..len]` (one packet, or several back to back: see
    /// [`dataplane::packets`]) to the home agent.
    Tunnel {
        len: usize,
        fragments: bool,
    },
    /// Write `icmp[..len]` back into the TUN device (Fragmentation Needed).
    IcmpBack {
        len: usize,
    },
    Drop(&'static str),
}

/// Direct or reverse-tunnelled delivery of `packet` read from the TUN device.
pub fn outbound(
    c: &Colocation,
    packet: &[u8],
    identification: u16,
    out: &mut [u8],
    icmp: &mut [u8],
) -> Outbound {
    let Ok(info) = ipv4::parse(packet) else {
        return Outbound::Drop("malformed");
    };
    if info.src != c.home_address {
        return Outbound::Drop("source is not the home address");
    }
    if !c.reverse_tunnel {
        if info.total_len > usize::from(c.link_mtu) && info.dont_fragment {
            return icmp_back(packet, c, c.link_mtu, icmp);
        }
        return Outbound::Direct { dst: info.dst };
    }
    let params = TunnelParams {
        tunnel_mtu: c.link_mtu,
        outer_ttl: 64,
        // The node sends its own packets: no TTL decrement, no loop checks (RFC 2003 3.1).
        forwarding: false,
        identification,
    };
    match encapsulate(
        c.encapsulation,
        packet,
        c.care_of,
        c.home_agent,
        &params,
        out,
    ) {
        EncapOutcome::Encapsulated { len } => Outbound::Tunnel {
            len,
            fragments: false,
        },
        EncapOutcome::Fragmented { len, .. } => Outbound::Tunnel {
            len,
            fragments: true,
        },
        EncapOutcome::FragmentationNeeded { next_hop_mtu } => {
            icmp_back(packet, c, next_hop_mtu, icmp)
        }
        EncapOutcome::Dropped(reason) => Outbound::Drop(match reason {
            DropReason::Malformed(_) => "malformed",
            DropReason::TtlExpired => "ttl expired",
            DropReason::Loop => "loop",
            DropReason::FragmentNotAllowed => "fragment cannot be minimally encapsulated",
        }),
    }
}

fn icmp_back(packet: &[u8], c: &Colocation, mtu: u16, icmp: &mut [u8]) -> Outbound {
    // From the co-located address: the node itself is the hop that cannot send it.
    match icmp_error::fragmentation_needed(packet, c.care_of, mtu, icmp) {
        Ok(len) => Outbound::IcmpBack { len },
        Err(_) => Outbound::Drop("too big, and no ICMP error may be sent"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mip_core::dataplane::ipv4::{Ipv4Fields, PROTO_UDP};

    const HOME: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
    const HA: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const COA: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 100);
    const CN: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);

    fn colocation(reverse_tunnel: bool) -> Colocation {
        Colocation {
            home_address: HOME,
            home_agent: HA,
            care_of: COA,
            reverse_tunnel,
            encapsulation: Encapsulation::IpInIp,
            link_mtu: 1500,
        }
    }

    fn udp(src: Ipv4Addr, dst: Ipv4Addr, payload_len: usize, df: bool) -> Vec<u8> {
        let total = 28 + payload_len;
        let mut p = vec![0u8; total];
        ipv4::write_header(
            &mut p,
            &Ipv4Fields {
                tos: 0,
                total_len: total as u16,
                identification: 9,
                dont_fragment: df,
                more_fragments: false,
                fragment_offset: 0,
                ttl: 64,
                protocol: PROTO_UDP,
                src,
                dst,
            },
        )
        .expect("header");
        p
    }

    fn tunnel(src: Ipv4Addr, dst: Ipv4Addr, inner: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; ENCAP_BUFFER_LEN];
        // Not forwarding: the tests build tunnels from any source, loop checks would refuse some.
        let p = TunnelParams {
            forwarding: false,
            ..TunnelParams::default()
        };
        match encapsulate(Encapsulation::IpInIp, inner, src, dst, &p, &mut out) {
            EncapOutcome::Encapsulated { len } => out.truncate(len),
            other => panic!("{other:?}"),
        }
        out
    }

    #[test]
    fn inbound_delivers_only_home_agent_tunnels_for_the_home_address() {
        let c = colocation(false);
        let mut out = vec![0u8; PACKET_BUFFER_LEN];
        let inner = udp(CN, HOME, 10, false);
        let ok = tunnel(HA, COA, &inner);
        let Inbound::Deliver { len } = inbound(&c, &ok, &mut out) else {
            panic!("not delivered");
        };
        assert_eq!(
            ipv4::parse(&out[..len]).map(|i| (i.src, i.dst)),
            Ok((CN, HOME))
        );
        assert_eq!(
            inbound(&c, &tunnel(CN, COA, &inner), &mut out),
            Inbound::Reject("tunnel source is not the home agent")
        );
        assert_eq!(
            inbound(&c, &tunnel(HA, COA, &udp(CN, CN, 10, false)), &mut out),
            Inbound::Reject("inner destination is not the home address")
        );
        assert_eq!(
            inbound(&c, &tunnel(HA, HA, &inner), &mut out),
            Inbound::Ignore
        );
        assert_eq!(
            inbound(&c, &[0x45, 0], &mut out),
            Inbound::Reject("malformed outer header")
        );
    }

    #[test]
    fn outbound_direct_or_reverse_tunnelled() {
        let mut out = vec![0u8; ENCAP_BUFFER_LEN];
        let mut icmp = vec![0u8; 1024];
        let pkt = udp(HOME, CN, 100, true);
        assert_eq!(
            outbound(&colocation(false), &pkt, 1, &mut out, &mut icmp),
            Outbound::Direct { dst: CN }
        );
        let Outbound::Tunnel {
            len,
            fragments: false,
        } = outbound(&colocation(true), &pkt, 1, &mut out, &mut icmp)
        else {
            panic!("not tunnelled");
        };
        let outer = ipv4::parse(&out[..len]).expect("outer");
        assert_eq!((outer.src, outer.dst, outer.protocol), (COA, HA, 4));
        assert_eq!(
            outbound(
                &colocation(true),
                &udp(CN, CN, 1, false),
                1,
                &mut out,
                &mut icmp
            ),
            Outbound::Drop("source is not the home address")
        );
    }

    #[test]
    fn too_big_with_df_gets_fragmentation_needed_back() {
        let mut out = vec![0u8; ENCAP_BUFFER_LEN];
        let mut icmp = vec![0u8; 1024];
        let big = udp(HOME, CN, 1472, true); // 1500 bytes: no room for 20 more
        let Outbound::IcmpBack { len } = outbound(&colocation(true), &big, 1, &mut out, &mut icmp)
        else {
            panic!("expected ICMP");
        };
        let info = ipv4::parse(&icmp[..len]).expect("icmp packet");
        assert_eq!((info.dst, info.protocol), (HOME, 1));
        assert_eq!(icmp[info.header_len], 3);
        assert_eq!(icmp[info.header_len + 1], 4);
        // Without DF it is fragmented instead.
        let big = udp(HOME, CN, 1472, false);
        assert!(matches!(
            outbound(&colocation(true), &big, 1, &mut out, &mut icmp),
            Outbound::Tunnel {
                fragments: true,
                ..
            }
        ));
    }
}
