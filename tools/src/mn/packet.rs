//! The mobile node's sockets: Agent Advertisements from AF_PACKET (their link-layer source
//! is needed, RFC 5944 4.2.1), gratuitous ARP out of AF_PACKET (4.6), raw IP for
//! solicitations and the co-located data plane.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;

use mip_core::dataplane::ethernet::{self, MacAddr, ETHERTYPE_ARP, ETHERTYPE_IPV4};
use mip_core::dataplane::ipv4::{self, Ipv4Fields, PROTO_ICMP};
use mip_core::wire::{AgentAdvertisementRepr, AgentSolicitationRepr, ICMP_ROUTER_ADVERTISEMENT};
use socket2::{Domain, Protocol, SockAddr, SockFilter, Socket, Type};

/// Classic BPF: accept only unfragmented (or first-fragment-free) IPv4 ICMP type 9 frames,
/// so the advertisement socket never copies data traffic to user space.
///
/// ```text
/// 0: ldh [12]                 ; EtherType
/// 1: jeq #0x0800, 2, 10
/// 2: ldb [23]                 ; IP protocol
/// 3: jeq #1, 4, 10
/// 4: ldh [20]                 ; flags + fragment offset
/// 5: jset #0x1fff, 10, 6      ; not a first fragment: drop
/// 6: ldxb 4*([14]&0xf)        ; X = IP header length
/// 7: ldb [x+14]               ; ICMP type
/// 8: jeq #9, 9, 10
/// 9: ret #262144
/// 10: ret #0
/// ```
fn advertisement_filter() -> [SockFilter; 11] {
    const LDH_ABS: u16 = 0x28;
    const LDB_ABS: u16 = 0x30;
    const JEQ_K: u16 = 0x15;
    const JSET_K: u16 = 0x45;
    const LDXB_MSH: u16 = 0xb1;
    const LDB_IND: u16 = 0x50;
    const RET_K: u16 = 0x06;
    [
        SockFilter::new(LDH_ABS, 0, 0, 12),
        SockFilter::new(JEQ_K, 0, 8, u32::from(ETHERTYPE_IPV4)),
        SockFilter::new(LDB_ABS, 0, 0, 23),
        SockFilter::new(JEQ_K, 0, 6, u32::from(PROTO_ICMP)),
        SockFilter::new(LDH_ABS, 0, 0, 20),
        SockFilter::new(JSET_K, 4, 0, 0x1fff),
        SockFilter::new(LDXB_MSH, 0, 0, 14),
        SockFilter::new(LDB_IND, 0, 0, 14),
        SockFilter::new(JEQ_K, 0, 1, u32::from(ICMP_ROUTER_ADVERTISEMENT)),
        SockFilter::new(RET_K, 0, 0, 0x40000),
        SockFilter::new(RET_K, 0, 0, 0),
    ]
}

fn packet_socket(ifindex: u32, ethertype: u16) -> io::Result<Socket> {
    let socket = mip_core::linux::packet_socket(ifindex, ethertype, false)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// A nonblocking socket read through tokio.
///
/// The raw and packet sockets are wrapped in a tokio `UdpSocket` and read with `recv(2)`
/// only: that call does not care about the socket's family or type, tokio's `UdpSocket`
/// owns the descriptor (no unsafe registration), and `recv_from`, which would try to
/// decode a sockaddr_ll as an IP address, is never used on them.
pub struct Receiver {
    socket: tokio::net::UdpSocket,
}

impl Receiver {
    fn new(socket: Socket) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        let std_socket: std::net::UdpSocket = socket.into();
        Ok(Self {
            socket: tokio::net::UdpSocket::from_std(std_socket)?,
        })
    }

    /// One datagram (a whole frame for AF_PACKET, a whole IP packet for raw IP).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.recv(buf).await
    }

    pub fn raw_fd(&self) -> i32 {
        self.socket.as_raw_fd()
    }
}

/// Agent Advertisements on `ifindex`, with their link-layer source.
pub fn advertisement_receiver(ifindex: u32) -> io::Result<Receiver> {
    let socket = packet_socket(ifindex, ETHERTYPE_IPV4)?;
    socket.attach_filter(&advertisement_filter())?;
    // Frames queued between socket() and attach_filter() escaped the filter; the parser
    // below rejects them anyway.
    Receiver::new(socket)
}

/// An Agent Advertisement read from a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedAdvertisement {
    pub source_mac: MacAddr,
    pub source: Ipv4Addr,
    pub ttl: u8,
    pub advertisement: AgentAdvertisementRepr,
}

/// Why a frame is not an advertisement we accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdvertError {
    #[error("not an IPv4 ICMP router advertisement")]
    NotAdvertisement,
    #[error("IPv4: {0}")]
    Ip(#[from] mip_core::dataplane::DataplaneError),
    #[error("advertisement: {0}")]
    Wire(#[from] mip_core::wire::WireError),
}

/// Ethernet + IPv4 + ICMP type 9 with the mobility extension (RFC 5944 2.4: that is what
/// makes a router advertisement an agent advertisement).
pub fn parse_advertisement_frame(frame: &[u8]) -> Result<ReceivedAdvertisement, AdvertError> {
    let eth = ethernet::parse(frame)?;
    if eth.ethertype != ETHERTYPE_IPV4 {
        return Err(AdvertError::NotAdvertisement);
    }
    let ip = ipv4::parse(eth.payload)?;
    if ip.protocol != PROTO_ICMP || ip.is_fragment() {
        return Err(AdvertError::NotAdvertisement);
    }
    let icmp = eth
        .payload
        .get(ip.header_len..ip.total_len)
        .ok_or(AdvertError::NotAdvertisement)?;
    let advertisement = AgentAdvertisementRepr::parse(icmp)?;
    Ok(ReceivedAdvertisement {
        source_mac: eth.src,
        source: ip.src,
        ttl: ip.ttl,
        advertisement,
    })
}

/// Gratuitous ARP frames out of `ifindex`.
pub struct ArpSender {
    socket: Socket,
}

impl ArpSender {
    pub fn new(ifindex: u32) -> io::Result<Self> {
        let socket = packet_socket(ifindex, ETHERTYPE_ARP)?;
        // Never read: let the kernel drop what would queue here.
        socket.set_recv_buffer_size(0)?;
        Ok(Self { socket })
    }

    /// Sends a whole Ethernet frame (the socket is bound, so no address is needed).
    pub fn send(&self, frame: &[u8]) -> io::Result<usize> {
        self.socket.send(frame)
    }
}

/// Raw IP sender (IPPROTO_RAW: IP_HDRINCL, never receives) bound to the interface, so
/// nothing it sends can loop back through the TUN device: the kernel routes by the
/// destination on `interface` only and keeps the source we wrote (the home address, or
/// the co-located address for the tunnel).
pub struct RawSender {
    socket: Socket,
}

impl RawSender {
    pub fn new(interface: &str) -> io::Result<Self> {
        let socket = Socket::new(
            Domain::IPV4,
            Type::RAW,
            Some(Protocol::from(libc::IPPROTO_RAW)),
        )?;
        socket.bind_device(Some(interface.as_bytes()))?;
        socket.set_broadcast(true)?;
        socket.set_multicast_loop_v4(false)?;
        socket.set_nonblocking(true)?;
        Ok(Self { socket })
    }

    /// Sends an IPv4 packet with its header to `dst`.
    pub fn send(&self, packet: &[u8], dst: Ipv4Addr) -> io::Result<usize> {
        self.socket
            .send_to(packet, &SockAddr::from(SocketAddrV4::new(dst, 0)))
    }
}

/// Raw IP receiver of one tunnel protocol (4, 47 or 55), for the co-located address.
pub fn tunnel_receiver(protocol: u8) -> io::Result<Receiver> {
    let socket = Socket::new(
        Domain::IPV4,
        Type::RAW,
        Some(Protocol::from(i32::from(protocol))),
    )?;
    Receiver::new(socket)
}

/// An Agent Solicitation (RFC 5944 2.2: TTL 1) as a whole IP packet to `dst`; source
/// zero, which the kernel fills in with the interface's address (IP_HDRINCL, raw(7)).
pub fn solicitation_packet(dst: Ipv4Addr, out: &mut [u8]) -> Result<usize, AdvertError> {
    let icmp_len = AgentSolicitationRepr.buffer_len();
    let total = ipv4::MIN_HEADER_LEN + icmp_len;
    let fields = Ipv4Fields {
        tos: 0,
        total_len: total as u16,
        identification: 0,
        dont_fragment: false,
        more_fragments: false,
        fragment_offset: 0,
        ttl: 1,
        protocol: PROTO_ICMP,
        src: Ipv4Addr::UNSPECIFIED,
        dst,
    };
    let header = ipv4::write_header(out, &fields)?;
    let body = out.get_mut(header..).ok_or(AdvertError::NotAdvertisement)?;
    AgentSolicitationRepr.emit(body)?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mip_core::wire::{AgentFlags, MobilityAgentExt};

    fn frame(adv: &AgentAdvertisementRepr, ttl: u8) -> Vec<u8> {
        let mut icmp = vec![0u8; adv.buffer_len()];
        adv.emit(&mut icmp).expect("emit");
        let mut ip = vec![0u8; 20 + icmp.len()];
        ipv4::write_header(
            &mut ip,
            &Ipv4Fields {
                tos: 0,
                total_len: (20 + icmp.len()) as u16,
                identification: 1,
                dont_fragment: false,
                more_fragments: false,
                fragment_offset: 0,
                ttl,
                protocol: PROTO_ICMP,
                src: Ipv4Addr::new(198, 18, 1, 1),
                dst: Ipv4Addr::new(224, 0, 0, 1),
            },
        )
        .expect("header");
        ip[20..].copy_from_slice(&icmp);
        let mut out = vec![0u8; 14 + ip.len() + 60];
        let n = ethernet::write_frame([0xff; 6], [2, 0, 0, 0, 0, 1], ETHERTYPE_IPV4, &ip, &mut out)
            .expect("frame");
        out.truncate(n);
        out
    }

    #[test]
    fn advertisement_frame_round_trip() {
        let adv = AgentAdvertisementRepr {
            code: 0,
            lifetime: 9,
            router_addresses: vec![(Ipv4Addr::new(198, 18, 1, 1), 0)],
            mobility: MobilityAgentExt {
                sequence: 4,
                registration_lifetime: 600,
                flags: AgentFlags(AgentFlags::F),
                care_of_addresses: vec![Ipv4Addr::new(198, 18, 1, 1)],
            },
            prefix_lengths: Some(vec![24]),
        };
        let got = parse_advertisement_frame(&frame(&adv, 1)).expect("parses");
        assert_eq!(got.source, Ipv4Addr::new(198, 18, 1, 1));
        assert_eq!(got.source_mac, [2, 0, 0, 0, 0, 1]);
        assert_eq!(got.advertisement, adv);
        let mut cut = frame(&adv, 1);
        cut.truncate(30);
        assert!(parse_advertisement_frame(&cut).is_err());
        assert!(parse_advertisement_frame(&[]).is_err());
    }

    #[test]
    fn solicitation_has_ttl_one() {
        let mut buf = [0u8; 64];
        let n = solicitation_packet(Ipv4Addr::new(224, 0, 0, 11), &mut buf).expect("builds");
        assert_eq!(n, 28);
        let info = ipv4::parse(&buf[..n]).expect("ip");
        assert_eq!((info.ttl, info.protocol), (1, 1));
        assert!(AgentSolicitationRepr::parse(&buf[20..n]).is_ok());
    }
}
