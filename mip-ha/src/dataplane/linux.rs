//! The Linux shell of the data plane: sockets and threads around [`Engine`].
//!
//! - link thread: an AF_PACKET socket bound to the home interface (virtio-net headers
//!   on, our own outgoing frames ignored) feeds [`Engine::on_frame`]; it also sends the
//!   gratuitous ARPs the control plane asks for, retransmitted a few times;
//! - one thread per tunnel protocol (4, 47, 55): a raw IPv4 socket feeds
//!   [`Engine::on_tunnel_packet`];
//! - an ICMP raw socket: Datagram Too Big from inside a tunnel lowers its MTU;
//! - advertisement thread: a raw ICMP socket bound to the home interface, in the
//!   Mobile-Agents and all-routers groups, sends what [`Advertiser`] decides (TTL 1,
//!   source the home agent's address) and feeds it the Agent Solicitations it reads;
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
use mip_core::time::Time;
use mip_core::wire::WireError;
use nix::libc;
use nix::sys::socket::{recvfrom, sendmsg, setsockopt, sockopt, ControlMessage, LinkAddr, MsgFlags, SockaddrIn};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
use tracing::{debug, info, warn};

use super::advert::{Advertiser, Outgoing, ALL_MOBILITY_AGENTS, ALL_ROUTERS};
use super::engine::{Engine, Output, Scratch};
use super::stats::{DataplaneReport, DataplaneStats, TrafficCounters};
use super::table::{Announce, Table};
use super::{AdvertConfig, DataplaneConfig, GRATUITOUS_ARP_INTERVAL};
use crate::home_agent::HaEvent;
use crate::sid::{LinkTransmit, SidEvent};
use mip_core::linux::{self as sys, ETH_P_ALL, PACKET_OUTGOING};

/// How often threads look at the stop flag and the gratuitous-ARP schedule.
pub const POLL: Duration = Duration::from_millis(50);
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
    const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
    // <linux/icmp.h>: on a raw ICMP socket, a bit mask of the ICMP types NOT wanted.
    const ICMP_FILTER: libc::c_int = 1;
    sockopt_impl!(
        /// Do not hand us frames this host sends.
        PacketIgnoreOutgoing, SetOnly, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, bool);
    sockopt_impl!(
        /// Drop every ICMP type whose bit is set before it is queued to us.
        IcmpFilter, SetOnly, libc::SOL_RAW, ICMP_FILTER, u32);
}

fn packet_socket(ifindex: u32, protocol: u16, vnet_hdr: bool) -> Result<Socket, DataplaneError> {
    sys::packet_socket(ifindex, protocol, vnet_hdr).map_err(sock_err("AF_PACKET socket"))
}

/// An AF_PACKET socket on `interface` that sees every frame, ours included, without
/// virtio-net headers, and can send frames there: for captures and tests.
pub fn open_packet_socket(interface: &str) -> Result<Socket, DataplaneError> {
    let (index, _) = interface_index_and_mac(interface)?;
    packet_socket(index, ETH_P_ALL, false)
}

/// Index and MAC address of `name`.
pub fn interface_index_and_mac(name: &str) -> Result<(u32, MacAddr), DataplaneError> {
    sys::interface_index_and_mac(name)
        .map_err(|e| DataplaneError::Interface { name: name.to_string(), reason: e.to_string() })
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

/// Frames from the control plane's task: never blocks it (a full queue is an error,
/// counted; the sans-IO wake-up retries).
struct ControlOutput<'a>(&'a Socket);

impl Output for ControlOutput<'_> {
    fn frame(&mut self, frame: &[u8]) -> io::Result<()> {
        self.0.send_with_flags(frame, libc::MSG_DONTWAIT).map(drop)
    }

    fn ip(&mut self, _dst: Ipv4Addr, _packet: &[u8]) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "the control plane sends IP through its UDP socket"))
    }
}

/// A running data plane. Dropping it stops its threads.
pub struct Dataplane {
    table: Arc<RwLock<Table>>,
    stats: Arc<DataplaneStats>,
    engine: Arc<Engine>,
    link: Arc<Socket>,
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
        let (ifindex, mac) = interface_index_and_mac(&config.interface)?;
        let recv = packet_socket(ifindex, ETH_P_ALL, true)?;
        if let Err(e) = setsockopt(&recv, opt::PacketIgnoreOutgoing, &true) {
            // Older kernels: outgoing frames are filtered by packet type instead.
            debug!("PACKET_IGNORE_OUTGOING: {e}");
        }
        let _ = recv.set_recv_buffer_size(RECV_BUFFER_BYTES);
        recv.set_read_timeout(Some(POLL)).map_err(sock_err("AF_PACKET timeout"))?;
        let send = Sockets { link: Arc::new(packet_socket(ifindex, 0, false)?), raw: Arc::new(raw_socket(libc::IPPROTO_RAW)?) };
        let mut tunnels = Vec::new();
        for proto in [ipv4::PROTO_IPIP, ipv4::PROTO_GRE, ipv4::PROTO_MINIMAL] {
            let s = raw_socket(i32::from(proto))?;
            let _ = s.set_recv_buffer_size(RECV_BUFFER_BYTES);
            s.set_read_timeout(Some(POLL)).map_err(sock_err("raw socket timeout"))?;
            tunnels.push((proto, s));
        }
        // Every socket is opened before the first thread starts, so an error leaves
        // nothing running.
        let advert = advert_socket(&config.interface, ifindex, address)?;

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
        {
            // RFC 5944 2.1-2.3: Agent Advertisements, answers to Agent Solicitations.
            let sock = advert;
            let (cfg, stats, stop) = (config.advertisement.clone(), Arc::clone(&stats), Arc::clone(&stop));
            threads.push(spawn(
                "ha-dp-advert".into(),
                Box::new(move || advert_loop(cfg, &sock, ifindex, &stats, &stop)),
            )?);
        }
        for (proto, sock) in tunnels {
            let (engine, stop, out) = (Arc::clone(&engine), Arc::clone(&stop), send.clone());
            threads.push(spawn(format!("ha-dp-proto{proto}"), Box::new(move || tunnel_loop(&engine, sock, out, &stop)))?);
        }
        let adv = &config.advertisement;
        info!(interface = %config.interface, mac = %mip_core::dataplane::ethernet::format_mac(&mac),
            tunnel_mtu = config.tunnel_mtu, advertise = adv.periodic,
            advertisement_interval_ms = adv.interval.as_millis() as u64,
            advertisement_lifetime = adv.lifetime, "home agent data plane running");
        let link = Arc::clone(&send.link);
        Ok(Dataplane { table, stats, engine, link, mac, announce: tx, stop, threads })
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

    /// Records `mac` for the served address `home` (as if learnt from its ARP); true
    /// when it is new or changed.
    pub fn learn(&self, home: Ipv4Addr, mac: MacAddr) -> bool {
        let learnt = self.table.write().unwrap_or_else(|p| p.into_inner()).learn(home, mac);
        if learnt {
            super::stats::bump(&self.stats.macs_learned);
        }
        learnt
    }

    /// Learns a Transferring Node's MAC from the SID events that carry it, so that the
    /// gratuitous ARP at the end of the transfer announces the node, not us. The event
    /// must reach us before the binding removal it precedes (the daemon sees to it).
    pub fn apply_sid(&self, event: &SidEvent) {
        let (tn, mac) = match *event {
            SidEvent::TransferStarted { transferring_node, link_layer_address: Some(mac), .. } => {
                (transferring_node, mac)
            }
            SidEvent::LinkLayerAddressChanged { transferring_node, link_layer_address } => {
                (transferring_node, link_layer_address)
            }
            _ => return,
        };
        if self.learn(tn, mac) {
            debug!(tn = %tn, mac = %mip_core::dataplane::ethernet::format_mac(&mac),
                "learnt a transferring node's MAC from SID");
        }
    }

    /// Sends a SID wake-up as an Ethernet frame to the stored MAC on the home link,
    /// bypassing ARP; counted in `link_frames_sent` / `link_frames_failed`.
    pub fn send_link(&self, t: &LinkTransmit) -> io::Result<()> {
        self.engine.send_udp_frame(t.mac, t.source, t.destination, &t.payload, &mut ControlOutput(&self.link))
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

/// The advertisement socket: raw ICMP on the home interface only, reading only
/// solicitations, in the groups mobile nodes solicit (224.0.0.11, RFC 5944 2.3; and
/// RFC 1256's 224.0.0.2), sending with TTL 1 (2.1) from `address`.
fn advert_socket(interface: &str, ifindex: u32, address: Ipv4Addr) -> Result<Socket, DataplaneError> {
    let s = raw_socket(libc::IPPROTO_ICMP)?;
    setsockopt(&s, sockopt::BindToDevice, &std::ffi::OsString::from(interface))
        .map_err(|e| sock_err("SO_BINDTODEVICE")(e.into()))?;
    let only_solicitations = !(1u32 << mip_core::wire::ICMP_ROUTER_SOLICITATION);
    if let Err(e) = setsockopt(&s, opt::IcmpFilter, &only_solicitations) {
        // Without the filter every ICMP message is read and ignored by type.
        debug!("ICMP_FILTER: {e}");
    }
    for group in [ALL_MOBILITY_AGENTS, ALL_ROUTERS] {
        s.join_multicast_v4_n(&group, &InterfaceIndexOrAddress::Index(ifindex))
            .map_err(sock_err("IP_ADD_MEMBERSHIP"))?;
    }
    s.set_multicast_if_v4(&address).map_err(sock_err("IP_MULTICAST_IF"))?;
    s.set_multicast_ttl_v4(1).map_err(sock_err("IP_MULTICAST_TTL"))?;
    s.set_ttl_v4(1).map_err(sock_err("IP_TTL"))?;
    // Our own advertisements need not come back to us.
    s.set_multicast_loop_v4(false).map_err(sock_err("IP_MULTICAST_LOOP"))?;
    s.set_broadcast(true).map_err(sock_err("SO_BROADCAST"))?;
    Ok(s)
}

/// Sends one advertisement: IP_PKTINFO pins the source to the home agent's address and
/// the interface, also for 255.255.255.255.
fn send_advert(sock: &Socket, ifindex: u32, source: Ipv4Addr, out: &Outgoing, buf: &[u8]) -> io::Result<()> {
    let info = libc::in_pktinfo {
        ipi_ifindex: i32::try_from(ifindex).map_err(|_| io::Error::other("interface index out of range"))?,
        ipi_spec_dst: libc::in_addr { s_addr: u32::from(source).to_be() },
        ipi_addr: libc::in_addr { s_addr: 0 },
    };
    let payload = buf.get(..out.len).ok_or_else(|| io::Error::other("advertisement longer than its buffer"))?;
    let dst = SockaddrIn::from(SocketAddrV4::new(out.destination, 0));
    sendmsg(
        sock.as_raw_fd(),
        &[io::IoSlice::new(payload)],
        &[ControlMessage::Ipv4PacketInfo(&info)],
        MsgFlags::empty(),
        Some(&dst),
    )
    .map(drop)
    .map_err(io::Error::from)
}

/// Sends what the advertiser wrote; failures are logged (the next one may go).
fn send_outgoing(sock: &Socket, ifindex: u32, source: Ipv4Addr, o: Result<Outgoing, WireError>, buf: &[u8]) {
    match o {
        Ok(o) => match send_advert(sock, ifindex, source, &o, buf) {
            Ok(()) => {
                debug!(destination = %o.destination, sequence = o.sequence, solicited = o.solicited,
                    "agent advertisement");
            }
            Err(e) => warn!(destination = %o.destination, "agent advertisement not sent: {e}"),
        },
        Err(e) => warn!("agent advertisement not built: {e}"),
    }
}

fn advert_loop(cfg: AdvertConfig, sock: &Socket, ifindex: u32, stats: &DataplaneStats, stop: &AtomicBool) {
    // A monotonic clock for the sans-IO advertiser: wall-clock steps must not bunch or
    // stall advertisements.
    let epoch = Instant::now();
    let clock = || Time::from_micros(u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX));
    let source = cfg.address;
    // RFC 1256 suggests seeding with an address of ours.
    let seed = rand::random::<u64>() ^ u64::from(u32::from(source));
    let mut adv = Advertiser::new(cfg, clock(), seed);
    let mut out = vec![0u8; adv.buffer_len()];
    let mut buf = vec![0u8; RAW_BUFFER];
    while !stop.load(Ordering::Relaxed) {
        adv.handle_timeout(clock());
        while let Some(o) = adv.poll_transmit(&mut out) {
            send_outgoing(sock, ifindex, source, o, &out);
        }
        stats.set_advertisements(&adv.stats());
        // Sleep in the receive until the next deadline, looking at the stop flag often.
        let wait = adv.poll_timeout().map_or(POLL, |t| t.saturating_duration_since(clock()).min(POLL));
        let _ = sock.set_read_timeout(Some(wait.max(Duration::from_millis(1))));
        match (&*sock).read(&mut buf) {
            Ok(n) => {
                if let Some(pkt) = buf.get(..n) {
                    let verdict = adv.handle_packet(clock(), pkt);
                    debug!(?verdict, "ICMP on the home link");
                }
            }
            Err(e) if is_timeout(&e) => {}
            Err(e) => {
                warn!("advertisement socket receive: {e}");
                std::thread::sleep(POLL);
            }
        }
    }
    // RFC 1256 5.1 recommends a last advertisement with Lifetime 0 when we stop.
    if let Some(o) = adv.withdraw(&mut out) {
        send_outgoing(sock, ifindex, source, o, &out);
    }
    stats.set_advertisements(&adv.stats());
}
