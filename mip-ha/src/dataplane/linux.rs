//! The Linux shell of the data plane: sockets and threads around [`Engine`].
//!
//! - link thread: an AF_PACKET socket bound to the home interface (virtio-net headers
//!   on, our own outgoing frames ignored) feeds [`Engine::on_frame`]; it also sends the
//!   gratuitous ARPs the control plane asks for, retransmitted a few times;
//! - one thread per tunnel protocol (4, 47, 55): a raw IPv4 socket feeds
//!   [`Engine::on_tunnel_packet`];
//! - an ICMP raw socket: Datagram Too Big from inside a tunnel lowers its MTU;
//! - every thread sends IP packets through a shared IPPROTO_RAW socket (IP_HDRINCL) and
//!   frames through a shared AF_PACKET socket.
//!
//! Threads poll a stop flag every [`POLL`]; buffers are allocated once per thread.

use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mip_core::dataplane::ethernet::MacAddr;
use mip_core::dataplane::ipv4;
use mip_core::dataplane::offload::VnetHdr;
use nix::libc;
use nix::sys::socket::{recvfrom, setsockopt, LinkAddr};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tracing::{debug, info, warn};

use super::engine::{Engine, Output, Scratch};
use super::stats::{DataplaneReport, DataplaneStats, TrafficCounters};
use super::table::{Announce, Table};
use super::{DataplaneConfig, GRATUITOUS_ARP_INTERVAL};
use crate::home_agent::HaEvent;

/// How often threads look at the stop flag and the gratuitous-ARP schedule.
pub const POLL: Duration = Duration::from_millis(50);
const ETH_P_ALL: u16 = 0x0003;
const PACKET_OUTGOING: u8 = 4;
/// Frames up to 64 KB (GSO super-packets) plus the virtio-net header.
const LINK_BUFFER: usize = 65_536 + 256;
const RAW_BUFFER: usize = 65_536;
const RECV_BUFFER_BYTES: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error("home interface {name}: {reason}")]
    Interface { name: String, reason: String },
    #[error("{what}: {source}")]
    Socket { what: &'static str, source: io::Error },
}

fn sock_err(what: &'static str) -> impl Fn(io::Error) -> DataplaneError {
    move |source| DataplaneError::Socket { what, source }
}

mod opt {
    use nix::libc;
    use nix::{setsockopt_impl, sockopt_impl};
    // Values from <linux/if_packet.h>.
    const PACKET_VNET_HDR: libc::c_int = 15;
    const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
    sockopt_impl!(
        /// Prefix every frame read with a `struct virtio_net_hdr`.
        PacketVnetHdr, SetOnly, libc::SOL_PACKET, PACKET_VNET_HDR, bool);
    sockopt_impl!(
        /// Do not hand us frames this host sends.
        PacketIgnoreOutgoing, SetOnly, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, bool);
}

/// The `sockaddr_ll` that binds a packet socket to one interface and protocol.
#[allow(unsafe_code)]
fn link_address(ifindex: u32, protocol: u16) -> io::Result<SockAddr> {
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

/// Index and MAC address of `name`.
fn interface(name: &str) -> Result<(u32, MacAddr), DataplaneError> {
    let err = |reason: String| DataplaneError::Interface { name: name.to_string(), reason };
    let index = nix::net::if_::if_nametoindex(name).map_err(|e| err(e.to_string()))?;
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| err(e.to_string()))?;
    let mac = addrs
        .filter(|a| a.interface_name == name)
        .find_map(|a| a.address.and_then(|s| s.as_link_addr().and_then(LinkAddr::addr)))
        .filter(|m| *m != [0; 6])
        .ok_or_else(|| err("no Ethernet address".into()))?;
    Ok((index, mac))
}

fn packet_socket(ifindex: u32, protocol: u16) -> Result<Socket, DataplaneError> {
    // Protocol 0 at creation: nothing is queued until bind() picks the interface.
    let s = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(0))).map_err(sock_err("AF_PACKET socket"))?;
    s.bind(&link_address(ifindex, protocol).map_err(sock_err("AF_PACKET address"))?)
        .map_err(sock_err("AF_PACKET bind"))?;
    Ok(s)
}

/// An AF_PACKET socket on `interface` that sees every frame, ours included, without
/// virtio-net headers, and can send frames there: for captures and tests.
pub fn open_packet_socket(interface: &str) -> Result<Socket, DataplaneError> {
    let (index, _) = interface_index_and_mac(interface)?;
    packet_socket(index, ETH_P_ALL)
}

/// Index and MAC address of `name`.
pub fn interface_index_and_mac(name: &str) -> Result<(u32, MacAddr), DataplaneError> {
    interface(name)
}

fn raw_socket(protocol: i32) -> Result<Socket, DataplaneError> {
    Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(protocol))).map_err(sock_err("raw IPv4 socket"))
}

/// Sends through the shared sockets.
#[derive(Clone)]
struct Sockets {
    link: Arc<Socket>,
    raw: Arc<Socket>,
}

impl Output for Sockets {
    fn frame(&mut self, frame: &[u8]) -> io::Result<()> {
        self.link.send(frame).map(drop)
    }

    fn ip(&mut self, dst: Ipv4Addr, packet: &[u8]) -> io::Result<()> {
        self.raw.send_to(packet, &SockAddr::from(SocketAddrV4::new(dst, 0))).map(drop)
    }
}

/// A running data plane. Dropping it stops its threads.
pub struct Dataplane {
    table: Arc<RwLock<Table>>,
    stats: Arc<DataplaneStats>,
    mac: MacAddr,
    announce: mpsc::Sender<Announce>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Dataplane {
    /// Opens the sockets and starts the threads. `homes`: the home addresses served.
    pub fn start(
        config: &DataplaneConfig,
        address: Ipv4Addr,
        homes: impl IntoIterator<Item = Ipv4Addr>,
    ) -> Result<Self, DataplaneError> {
        let (ifindex, mac) = interface(&config.interface)?;
        let recv = packet_socket(ifindex, ETH_P_ALL)?;
        setsockopt(&recv, opt::PacketVnetHdr, &true).map_err(|e| sock_err("PACKET_VNET_HDR")(e.into()))?;
        if let Err(e) = setsockopt(&recv, opt::PacketIgnoreOutgoing, &true) {
            // Older kernels: outgoing frames are filtered by packet type instead.
            debug!("PACKET_IGNORE_OUTGOING: {e}");
        }
        let _ = recv.set_recv_buffer_size(RECV_BUFFER_BYTES);
        recv.set_read_timeout(Some(POLL)).map_err(sock_err("AF_PACKET timeout"))?;
        let send = Sockets { link: Arc::new(packet_socket(ifindex, 0)?), raw: Arc::new(raw_socket(libc::IPPROTO_RAW)?) };
        let mut tunnels = Vec::new();
        for proto in [ipv4::PROTO_IPIP, ipv4::PROTO_GRE, ipv4::PROTO_MINIMAL] {
            let s = raw_socket(i32::from(proto))?;
            let _ = s.set_recv_buffer_size(RECV_BUFFER_BYTES);
            s.set_read_timeout(Some(POLL)).map_err(sock_err("raw socket timeout"))?;
            tunnels.push((proto, s));
        }

        let table = Arc::new(RwLock::new(Table::new(homes)));
        let stats = Arc::new(DataplaneStats::default());
        let engine = Arc::new(Engine::new(address, mac, config.tunnel_mtu, Arc::clone(&table), Arc::clone(&stats)));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let mut threads = Vec::new();
        let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new().name(name).spawn(f).map_err(sock_err("thread"))
        };
        {
            let (engine, stop, out) = (Arc::clone(&engine), Arc::clone(&stop), send.clone());
            let count = config.gratuitous_arp_count;
            threads.push(spawn("ha-dp-link".into(), Box::new(move || link_loop(&engine, recv, out, rx, count, &stop)))?);
        }
        {
            // ICMP errors from inside our tunnels (RFC 2003 5.1 soft state).
            let icmp = raw_socket(libc::IPPROTO_ICMP)?;
            icmp.set_read_timeout(Some(POLL)).map_err(sock_err("raw socket timeout"))?;
            let (engine, stop) = (Arc::clone(&engine), Arc::clone(&stop));
            threads.push(spawn("ha-dp-icmp".into(), Box::new(move || icmp_loop(&engine, icmp, &stop)))?);
        }
        for (proto, sock) in tunnels {
            let (engine, stop, out) = (Arc::clone(&engine), Arc::clone(&stop), send.clone());
            threads.push(spawn(format!("ha-dp-proto{proto}"), Box::new(move || tunnel_loop(&engine, sock, out, &stop)))?);
        }
        info!(interface = %config.interface, mac = %mip_core::dataplane::ethernet::format_mac(&mac),
            tunnel_mtu = config.tunnel_mtu, "home agent data plane running");
        Ok(Dataplane { table, stats, mac, announce: tx, stop, threads })
    }

    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    /// Follows the binding list; asks the link thread for the gratuitous ARPs of
    /// RFC 5944 4.6.
    pub fn apply(&self, event: &HaEvent) {
        let announce = self.table.write().unwrap_or_else(|p| p.into_inner()).apply(event);
        if let Some(a) = announce {
            if let Announce::HomeMacUnknown { ip } = a {
                info!(home = %ip, "node is home; its MAC was never learnt, so only proxy ARP stops \
                    (its own gratuitous ARP updates the caches)");
            }
            let _ = self.announce.send(a);
        }
    }

    pub fn report(&self) -> DataplaneReport {
        self.stats.report()
    }

    pub fn traffic(&self, home: Ipv4Addr, care_of: Ipv4Addr) -> Option<TrafficCounters> {
        self.table.read().unwrap_or_else(|p| p.into_inner()).counters(home, care_of).map(|c| c.snapshot())
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted)
}

/// A gratuitous ARP still to be (re)sent.
struct Pending {
    ip: Ipv4Addr,
    mac: MacAddr,
    left: u8,
    due: Instant,
}

fn link_loop(
    engine: &Engine,
    recv: Socket,
    mut out: Sockets,
    announce: mpsc::Receiver<Announce>,
    count: u8,
    stop: &AtomicBool,
) {
    let mut buf = vec![0u8; LINK_BUFFER];
    let mut scratch = Scratch::default();
    let mut pending: Vec<Pending> = Vec::with_capacity(64);
    while !stop.load(Ordering::Relaxed) {
        while let Ok(a) = announce.try_recv() {
            let (ip, mac) = match a {
                Announce::Away { ip } => (ip, engine.mac),
                Announce::Home { ip, mac } => (ip, mac),
                Announce::HomeMacUnknown { ip } => {
                    pending.retain(|p| p.ip != ip);
                    continue;
                }
            };
            // A newer announcement for the address replaces what is left of an older.
            pending.retain(|p| p.ip != ip);
            pending.push(Pending { ip, mac, left: count, due: Instant::now() });
        }
        let now = Instant::now();
        for p in pending.iter_mut().filter(|p| p.due <= now && p.left > 0) {
            engine.gratuitous(p.ip, p.mac, &mut scratch, &mut out);
            p.left -= 1;
            p.due = now + GRATUITOUS_ARP_INTERVAL;
        }
        pending.retain(|p| p.left > 0);
        match recvfrom::<LinkAddr>(recv.as_raw_fd(), &mut buf) {
            Ok((n, from)) => {
                if from.is_some_and(|a| a.pkttype() == PACKET_OUTGOING) {
                    continue;
                }
                let Some(data) = buf.get_mut(..n) else { continue };
                let Ok((vnet, _)) = VnetHdr::parse(data) else { continue };
                let Some(frame) = data.get_mut(mip_core::dataplane::offload::VNET_HDR_LEN..) else { continue };
                engine.on_frame(Some(&vnet), frame, &mut scratch, &mut out);
            }
            Err(e) => {
                let e = io::Error::from(e);
                if !is_timeout(&e) {
                    warn!("home link receive: {e}");
                    std::thread::sleep(POLL);
                }
            }
        }
    }
}

fn tunnel_loop(engine: &Engine, sock: Socket, mut out: Sockets, stop: &AtomicBool) {
    let mut buf = vec![0u8; RAW_BUFFER];
    let mut scratch = Scratch::default();
    while !stop.load(Ordering::Relaxed) {
        match (&sock).read(&mut buf) {
            Ok(n) => {
                if let Some(pkt) = buf.get(..n) {
                    engine.on_tunnel_packet(pkt, &mut scratch, &mut out);
                }
            }
            Err(e) if is_timeout(&e) => {}
            Err(e) => {
                warn!("tunnel socket receive: {e}");
                std::thread::sleep(POLL);
            }
        }
    }
}

fn icmp_loop(engine: &Engine, sock: Socket, stop: &AtomicBool) {
    let mut buf = vec![0u8; RAW_BUFFER];
    while !stop.load(Ordering::Relaxed) {
        match (&sock).read(&mut buf) {
            Ok(n) => {
                if let Some(pkt) = buf.get(..n) {
                    engine.on_icmp(pkt);
                }
            }
            Err(e) if is_timeout(&e) => {}
            Err(e) => {
                warn!("ICMP socket receive: {e}");
                std::thread::sleep(POLL);
            }
        }
    }
}
