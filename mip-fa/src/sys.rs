//! The Linux sockets of the mip-fa daemon, kept apart from its event loop.
//!
//! - one AF_PACKET socket on the visitor link: every frame in (registration requests'
//!   link-layer sources, solicitations, visitors' packets) and every frame out
//!   (replies and advertisements to mobile nodes, decapsulated packets);
//! - the UDP registration socket (port 434) with IP_PKTINFO, IP_RECVTTL, IP_RECVERR;
//! - raw IPv4 sockets for protocols 4, 47 and 55 (tunnel packets in) and one
//!   IPPROTO_RAW socket (reverse-tunnelled and routed packets out).

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};

use mip_core::dataplane::offload::VNET_HDR_LEN;
use nix::sys::socket::{
    self, setsockopt, sockopt, ControlMessage, ControlMessageOwned,
    IpMembershipRequest, LinkAddr, MsgFlags, SockaddrIn,
};
use tracing::debug;

use crate::MacAddr;

pub use mip_core::linux::PACKET_OUTGOING;

/// Registers `fd` with the tokio reactor.
///
/// tokio's safe constructors are deprecated (they cannot know the fd stays open).
#[allow(unsafe_code)]
pub fn register(
    fd: OwnedFd,
    interest: tokio::io::Interest,
) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd takes ownership of the OwnedFd, which stays open and names the
    // same file description until the AsyncFd drops it; as_raw_fd never changes.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, interest) }
        .map_err(io::Error::from)
}

fn io_err(e: nix::Error) -> io::Error {
    io::Error::from(e)
}

/// Index and MAC address of `name` (in our own network namespace).
pub fn interface_index_and_mac(name: &str) -> io::Result<(u32, MacAddr)> {
    mip_core::linux::interface_index_and_mac(name)
}

pub fn parse_mac(text: &str) -> Option<MacAddr> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Writes a sysctl under /proc/sys (e.g. `net/ipv4/conf/eth0/forwarding`).
pub fn write_sysctl(path: &str, value: &str) -> io::Result<()> {
    std::fs::write(format!("/proc/sys/{path}"), value)
}

pub fn read_sysctl(path: &str) -> io::Result<String> {
    Ok(std::fs::read_to_string(format!("/proc/sys/{path}"))?
        .trim()
        .to_string())
}

/// An AF_PACKET socket bound to `ifindex`, non-blocking, with virtio-net headers when
/// `vnet_hdr` (frames then start with [`VNET_HDR_LEN`] bytes both ways).
pub fn packet_socket(ifindex: u32, vnet_hdr: bool) -> io::Result<OwnedFd> {
    let s = mip_core::linux::packet_socket(ifindex, mip_core::linux::ETH_P_ALL, vnet_hdr)?;
    s.set_nonblocking(true)?;
    Ok(OwnedFd::from(s))
}

/// One frame from a packet socket: its length (virtio header included when enabled)
/// and the packet type (`PACKET_HOST`, `PACKET_OUTGOING`, ...).
pub fn recv_frame(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<(usize, u8)> {
    let (n, addr) = socket::recvfrom::<LinkAddr>(fd.as_raw_fd(), buf).map_err(io_err)?;
    Ok((n, addr.map_or(0, |a| a.pkttype())))
}

/// Sends one frame (with a zeroed virtio header in front when `vnet_hdr`).
pub fn send_frame(
    fd: &OwnedFd,
    vnet_hdr: bool,
    frame: &[u8],
    scratch: &mut [u8],
) -> io::Result<()> {
    let bytes = if vnet_hdr {
        let total = VNET_HDR_LEN + frame.len();
        let out = scratch
            .get_mut(..total)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
        out[..VNET_HDR_LEN].fill(0);
        out[VNET_HDR_LEN..].copy_from_slice(frame);
        &*out
    } else {
        frame
    };
    socket::send(fd.as_raw_fd(), bytes, MsgFlags::empty()).map_err(io_err)?;
    Ok(())
}

/// The registration socket: UDP 0.0.0.0:`port`, with the destination, TTL and
/// interface of each datagram, ICMP errors on the error queue, and membership of
/// 224.0.0.11 on the visitor link (RFC 5944 2.3, 3.6.1.1).
pub fn registration_socket(port: u16, link_address: Ipv4Addr) -> io::Result<OwnedFd> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port).into())?;
    let fd: OwnedFd = s.into();
    setsockopt(&fd, sockopt::Ipv4PacketInfo, &true).map_err(io_err)?;
    setsockopt(&fd, sockopt::Ipv4RecvTtl, &true).map_err(io_err)?;
    setsockopt(&fd, sockopt::Ipv4RecvErr, &true).map_err(io_err)?;
    let group = IpMembershipRequest::new(
        crate::foreign_agent::ALL_MOBILITY_AGENTS,
        Some(link_address),
    );
    if let Err(e) = setsockopt(&fd, sockopt::IpAddMembership, &group) {
        debug!("cannot join 224.0.0.11: {e}");
    }
    Ok(fd)
}

/// A datagram from the registration socket.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    pub len: usize,
    pub source: SocketAddrV4,
    pub destination: Option<Ipv4Addr>,
    pub ifindex: Option<u32>,
    pub ttl: Option<u8>,
}

pub fn recv_registration(fd: &OwnedFd, buf: &mut [u8], cmsg: &mut [u8]) -> io::Result<Received> {
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg =
        socket::recvmsg::<SockaddrIn>(fd.as_raw_fd(), &mut iov, Some(cmsg), MsgFlags::empty())
            .map_err(io_err)?;
    let source = msg
        .address
        .map(SocketAddrV4::from)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "datagram without a source"))?;
    let mut r = Received {
        len: msg.bytes,
        source,
        destination: None,
        ifindex: None,
        ttl: None,
    };
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            match c {
                ControlMessageOwned::Ipv4PacketInfo(info) => {
                    r.destination = Some(Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr)));
                    r.ifindex = u32::try_from(info.ipi_ifindex).ok();
                }
                ControlMessageOwned::Ipv4Ttl(ttl) => r.ttl = u8::try_from(ttl).ok(),
                _ => {}
            }
        }
    }
    Ok(r)
}

/// An ICMP error about a datagram we sent: where it was going, what it carried
/// (`buf[..len]`), and the ICMP type and code.
#[derive(Debug, Clone, Copy)]
pub struct SendError {
    pub len: usize,
    pub destination: Option<SocketAddrV4>,
    pub icmp_type: u8,
    pub icmp_code: u8,
}

/// One entry of the error queue (IP_RECVERR), if any.
pub fn recv_error(fd: &OwnedFd, buf: &mut [u8], cmsg: &mut [u8]) -> io::Result<Option<SendError>> {
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg =
        socket::recvmsg::<SockaddrIn>(fd.as_raw_fd(), &mut iov, Some(cmsg), MsgFlags::MSG_ERRQUEUE)
            .map_err(io_err)?;
    let destination = msg.address.map(SocketAddrV4::from);
    let mut found = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::Ipv4RecvErr(err, _) = c {
                if u32::from(err.ee_origin) == u32::from(nix::libc::SO_EE_ORIGIN_ICMP) {
                    found = Some(SendError {
                        len: msg.bytes,
                        destination,
                        icmp_type: err.ee_type,
                        icmp_code: err.ee_code,
                    });
                }
            }
        }
    }
    Ok(found)
}

/// Sends a datagram from `source` (IP_PKTINFO) to `destination`.
pub fn send_registration(
    fd: &OwnedFd,
    source: Ipv4Addr,
    destination: SocketAddrV4,
    payload: &[u8],
) -> io::Result<()> {
    let info = nix::libc::in_pktinfo {
        ipi_ifindex: 0,
        ipi_spec_dst: nix::libc::in_addr {
            s_addr: u32::from(source).to_be(),
        },
        ipi_addr: nix::libc::in_addr { s_addr: 0 },
    };
    let cmsgs = [ControlMessage::Ipv4PacketInfo(&info)];
    let iov = [io::IoSlice::new(payload)];
    let to = SockaddrIn::from(destination);
    socket::sendmsg(fd.as_raw_fd(), &iov, &cmsgs, MsgFlags::empty(), Some(&to)).map_err(io_err)?;
    Ok(())
}

/// A raw IPv4 socket receiving IP protocol `protocol` (IP header included).
pub fn raw_receive_socket(protocol: u8) -> io::Result<OwnedFd> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(
        Domain::IPV4,
        Type::RAW,
        Some(Protocol::from(i32::from(protocol))),
    )?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// IPPROTO_RAW: we write whole IPv4 packets (IP_HDRINCL is implied); the kernel routes
/// them by destination. Receives nothing.
pub fn raw_send_socket() -> io::Result<OwnedFd> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(
        Domain::IPV4,
        Type::RAW,
        Some(Protocol::from(nix::libc::IPPROTO_RAW)),
    )?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

pub fn recv(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    socket::recv(fd.as_raw_fd(), buf, MsgFlags::empty()).map_err(io_err)
}

/// Sends a whole IPv4 packet to `destination` through an IPPROTO_RAW socket.
pub fn send_ip(fd: &OwnedFd, destination: Ipv4Addr, packet: &[u8]) -> io::Result<()> {
    let to = SockaddrIn::from(SocketAddrV4::new(destination, 0));
    socket::sendto(fd.as_raw_fd(), packet, &to, MsgFlags::empty()).map_err(io_err)?;
    Ok(())
}
