//! Linux socket helpers shared by the I/O shells of the daemons (the home agent's data
//! plane, mip-fa, the mobile node and the SID devices in tools): packet sockets bound to
//! one interface, with or without virtio-net headers, and an interface's index and MAC.
//! Behind the `linux` feature; no protocol logic here, and nothing else in mip-core uses it.

use std::io;
use std::os::fd::AsFd;

use crate::dataplane::ethernet::MacAddr;
use nix::sys::socket::{setsockopt, LinkAddr};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// ETH_P_ALL: every EtherType.
pub const ETH_P_ALL: u16 = 0x0003;
/// `sll_pkttype` of a frame this host sent.
pub const PACKET_OUTGOING: u8 = 4;

mod opt {
        use nix::{setsockopt_impl, sockopt_impl};
    // <linux/if_packet.h>
    const PACKET_VNET_HDR: libc::c_int = 15;
    sockopt_impl!(
        /// Prefix every frame read or written with a `struct virtio_net_hdr`.
        PacketVnetHdr, SetOnly, libc::SOL_PACKET, PACKET_VNET_HDR, bool);
}

/// The `sockaddr_ll` that binds a packet socket to interface `ifindex` and EtherType
/// `protocol` (host order).
#[allow(unsafe_code)]
pub fn link_sockaddr(ifindex: u32, protocol: u16) -> io::Result<SockAddr> {
    let ll = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as libc::c_ushort,
        sll_protocol: protocol.to_be(),
        sll_ifindex: i32::try_from(ifindex).map_err(|_| io::Error::other("interface index out of range"))?,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    // SAFETY: `try_init` passes a zeroed `sockaddr_storage`, which is larger than and
    // aligned at least as strictly as `sockaddr_ll`; we write one `sockaddr_ll` at its
    // start and report exactly that length.
    let ((), addr) = unsafe {
        SockAddr::try_init(|storage, len| {
            storage.cast::<libc::sockaddr_ll>().write(ll);
            *len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            Ok(())
        })
    }?;
    Ok(addr)
}

/// Turns on virtio-net headers on a packet socket (nix has no wrapper for the option).
pub fn set_packet_vnet_hdr(socket: &impl AsFd) -> io::Result<()> {
    setsockopt(socket, opt::PacketVnetHdr, &true).map_err(io::Error::from)
}

/// An AF_PACKET socket bound to `ifindex` for EtherType `protocol` (host order;
/// [`ETH_P_ALL`] for every frame, 0 for a send-only socket), blocking, close-on-exec.
/// With `vnet_hdr` every frame read or written starts with a virtio-net header, set
/// before the bind so that no frame is queued without one.
pub fn packet_socket(ifindex: u32, protocol: u16, vnet_hdr: bool) -> io::Result<Socket> {
    // Protocol 0 at creation: nothing is queued until bind() picks the interface.
    let s = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(0)))?;
    if vnet_hdr {
        set_packet_vnet_hdr(&s)?;
    }
    s.bind(&link_sockaddr(ifindex, protocol)?)?;
    Ok(s)
}

/// Index and MAC address of interface `name`, asked of the kernel in our own network
/// namespace (getifaddrs; sysfs would show the namespace /sys was mounted in).
pub fn interface_index_and_mac(name: &str) -> io::Result<(u32, MacAddr)> {
    let index = nix::net::if_::if_nametoindex(name).map_err(io::Error::from)?;
    let mac = nix::ifaddrs::getifaddrs()
        .map_err(io::Error::from)?
        .filter(|a| a.interface_name == name)
        .find_map(|a| a.address.and_then(|s| s.as_link_addr().and_then(LinkAddr::addr)))
        .filter(|m| *m != [0; 6])
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{name}: no Ethernet address")))?;
    Ok((index, mac))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_no_ethernet_address_and_unknown_interfaces_are_errors() {
        // `lo` exists in every namespace; its link address is all zeros.
        let e = interface_index_and_mac("lo").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(interface_index_and_mac("no-such-if0").is_err());
    }

    #[test]
    #[allow(unsafe_code)]
    fn sockaddr_ll_carries_the_index_and_protocol_in_network_order() {
        let a = link_sockaddr(7, ETH_P_ALL).unwrap();
        assert_eq!(a.len() as usize, std::mem::size_of::<libc::sockaddr_ll>());
        assert_eq!(a.family(), libc::AF_PACKET as libc::sa_family_t);
        // SAFETY: `a` holds `a.len()` initialised bytes for as long as it lives.
        let raw = unsafe { std::slice::from_raw_parts(a.as_ptr().cast::<u8>(), a.len() as usize) };
        // sockaddr_ll: family (2 octets), protocol (2, network order), ifindex (4, host order).
        assert_eq!(raw[2..4], ETH_P_ALL.to_be_bytes());
        assert_eq!(raw[4..8], 7i32.to_ne_bytes());
    }
}
