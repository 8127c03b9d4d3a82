//! `sidctl serve`: the I/O shell around [`Core`]. Sockets: negotiation (UDP 4343),
//! registration and wake-up (UDP 434), the Unix control socket; with the data plane on,
//! also the TUN device holding a transferred address, the IP-in-IP raw socket, a raw
//! sender and an ARP sender on the interface (the mobile node daemon's helpers), and a
//! send-only packet socket for the same-subnet Target's wake-up, an Ethernet frame built
//! by hand to the TN's MAC (bypassing ARP, which maps the TN's address to us).
//!
//! The loop polls the data plane first (`biased`), and a Target taking an address off
//! first delivers what the tunnel socket already holds: a reply that ends a binding must
//! not overtake the tunnelled packets that arrived before it.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, SystemTime};

use mip_core::dataplane::arp::{gratuitous_frame, ArpOp};
use mip_core::dataplane::Encapsulation;
use mip_core::time::Time;
use mip_core::dataplane::frame::{UdpFrame, MAX_LINK_FRAME, ORIGINATED_TTL};
use nix::sys::socket::MsgFlags;
use sid_ext::device::local::LinkTransmit;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UdpSocket, UnixListener, UnixStream};
use tracing::{info, warn};

use super::config::SidConfig;
use super::control::{Request, Response};
use super::core::{Core, NetAction};
use super::datapath::{suppress, Suppressed};
use super::neigh::{self, Neighbour};
use crate::mn::datapath::{inbound, outbound, Buffers, Colocation, Inbound, Outbound};
use crate::mn::netcfg::{self, IpCommand, NetPlan, Sysctl};
use crate::mn::packet::{self, ArpSender, RawSender, Receiver};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{what}: {source}")]
    Io { what: &'static str, source: std::io::Error },
    #[error("{0}")]
    Setup(String),
}

fn io_err(what: &'static str) -> impl FnOnce(std::io::Error) -> ServeError {
    move |source| ServeError::Io { what, source }
}

fn now() -> Time {
    Time::from_system(SystemTime::now())
}

fn instant_at(t: Time) -> tokio::time::Instant {
    tokio::time::Instant::now() + t.saturating_duration_since(now())
}

/// Data-plane handles (root only).
struct Net {
    mac: [u8; 6],
    arp: ArpSender,
    raw: RawSender,
    ipip: Receiver,
    tun: tun::AsyncDevice,
    /// Send-only AF_PACKET socket (protocol 0: nothing is ever queued to it).
    frames: socket2::Socket,
}

fn ip(args: &[&str], may_fail: bool) -> IpCommand {
    IpCommand { args: args.iter().map(|s| (*s).to_owned()).collect(), may_fail }
}

fn sysctl(interface: &str, name: &str, value: &'static str) -> Sysctl {
    Sysctl { key: format!("net/ipv4/conf/{interface}/{name}"), value }
}

/// The network changes of one action (see [`NetAction`]).
fn plan_for(cfg: &SidConfig, action: &NetAction) -> NetPlan {
    let eth = cfg.interface.as_str();
    let table = cfg.route_table.to_string();
    let mut plan = NetPlan::default();
    match action {
        // arp_ignore 8: answer no ARP request at all on the interface while the Agent
        // holds the address; the address stays configured so that the wake-up (sent to
        // our MAC, bypassing ARP) is still delivered locally.
        NetAction::Release { .. } => {
            plan.sysctls.push(sysctl(eth, "arp_ignore", "8"));
            plan.sysctls.push(sysctl(eth, "arp_announce", "2"));
        }
        NetAction::TakeBack { .. } => {
            plan.sysctls.push(sysctl(eth, "arp_ignore", "0"));
            plan.sysctls.push(sysctl(eth, "arp_announce", "0"));
        }
        NetAction::Install { address, .. } => {
            let a32 = format!("{address}/32");
            let prio = cfg.route_table.to_string();
            plan.sysctls.push(sysctl(&cfg.tun_name, "rp_filter", "0"));
            plan.commands.push(ip(&["-4", "addr", "replace", &a32, "dev", &cfg.tun_name], false));
            // Everything from the transferred address goes into the TUN device, where
            // the daemon sends it on (direct or reverse-tunnelled) or suppresses it.
            plan.commands.push(ip(&["-4", "rule", "del", "priority", &prio], true));
            plan.commands.push(ip(&["-4", "rule", "add", "from", &a32, "lookup", &table, "priority", &prio], false));
            plan.commands.push(ip(&["-4", "route", "replace", "default", "dev", &cfg.tun_name, "table", &table], false));
        }
        NetAction::Remove { address } => {
            let a32 = format!("{address}/32");
            plan.commands.push(ip(&["-4", "rule", "del", "priority", &cfg.route_table.to_string()], true));
            plan.commands.push(ip(&["-4", "route", "flush", "table", &table], true));
            plan.commands.push(ip(&["-4", "addr", "del", &a32, "dev", &cfg.tun_name], true));
        }
        // Same subnet: the address on the TUN device exactly as for the Agent's tunnel
        // (so RST/ICMP suppression works), and since it is local, Linux answers ARP for it
        // on the interface (arp_ignore 0). arp_announce 2: this device's own ARP requests
        // carry its own address, never the held one, so they cannot pull the TN's
        // neighbours back once the TN has taken the address back. accept_local 1: the
        // TN's stop demand and acknowledgement come from the held address, which Linux
        // would otherwise drop as a martian source (needs rp_filter 0 or 2).
        NetAction::Assume { address } => {
            plan = plan_for(cfg, &NetAction::Install { address: *address, agent: Ipv4Addr::UNSPECIFIED, reverse_tunnel: false });
            plan.sysctls.push(sysctl(eth, "arp_ignore", "0"));
            plan.sysctls.push(sysctl(eth, "arp_announce", "2"));
            plan.sysctls.push(sysctl(eth, "accept_local", "1"));
        }
        NetAction::Relinquish { address } => {
            plan = plan_for(cfg, &NetAction::Remove { address: *address });
            plan.sysctls.push(sysctl(eth, "arp_announce", "0"));
            plan.sysctls.push(sysctl(eth, "accept_local", "0"));
        }
        NetAction::Announce { .. } => {}
    }
    plan
}

struct Shell {
    core: Core,
    neg: UdpSocket,
    reg: UdpSocket,
    net: Option<Net>,
    colocation: Option<Colocation>,
    link_mtu: u16,
    identification: u16,
    /// Neighbour entries made permanent at release (see [`neigh`]).
    pinned: Vec<Neighbour>,
}

enum Wake {
    Neg(std::io::Result<(usize, SocketAddr)>),
    Reg(std::io::Result<(usize, SocketAddr)>),
    Control(std::io::Result<(UnixStream, tokio::net::unix::SocketAddr)>),
    Tunnel(std::io::Result<usize>),
    Tun(std::io::Result<usize>),
    Timer,
    Stop,
}

async fn recv_opt(r: Option<&Receiver>, buf: &mut [u8]) -> std::io::Result<usize> {
    match r {
        Some(r) => r.recv(buf).await,
        None => std::future::pending().await,
    }
}

async fn tun_opt(t: Option<&tun::AsyncDevice>, active: bool, buf: &mut [u8]) -> std::io::Result<usize> {
    match t {
        Some(t) if active => t.recv(buf).await,
        _ => std::future::pending().await,
    }
}

/// Runs until SIGINT or SIGTERM.
pub async fn serve(cfg: SidConfig) -> Result<(), ServeError> {
    let (net, mac) = if cfg.data_plane {
        let (ifindex, mac) = netcfg::link_info(&cfg.ip_command, &cfg.interface)
            .await
            .map_err(|e| ServeError::Setup(e.to_string()))?;
        let mut tun_cfg = tun::Configuration::default();
        tun_cfg.tun_name(&cfg.tun_name).mtu(cfg.tun_mtu).up();
        let tun = tun::create_as_async(&tun_cfg).map_err(|e| ServeError::Setup(format!("TUN: {e}")))?;
        let net = Net {
            mac,
            arp: ArpSender::new(ifindex).map_err(io_err("ARP socket"))?,
            raw: RawSender::new(&cfg.interface).map_err(io_err("raw IP socket"))?,
            ipip: packet::tunnel_receiver(4).map_err(io_err("IP-in-IP socket"))?,
            tun,
            frames: mip_core::linux::packet_socket(ifindex, 0, false).map_err(io_err("frame socket"))?,
        };
        (Some(net), Some(mac))
    } else {
        (None, cfg.link_address)
    };
    let neg = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, cfg.negotiation_port))
        .await
        .map_err(io_err("negotiation socket"))?;
    let reg = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, cfg.registration_port))
        .await
        .map_err(io_err("registration socket"))?;
    let _ = std::fs::remove_file(&cfg.control_socket);
    let control = UnixListener::bind(&cfg.control_socket).map_err(io_err("control socket"))?;
    let link_mtu = cfg.tun_mtu;
    info!(identity = %cfg.identity, address = %cfg.address, data_plane = cfg.data_plane, "sidctl serve started");
    let core = Core::new(cfg, mac).map_err(ServeError::Setup)?;
    let mut s = Shell { core, neg, reg, net, colocation: None, link_mtu, identification: rand::random(), pinned: Vec::new() };
    use tokio::signal::unix::{signal, SignalKind};
    let mut sigterm = signal(SignalKind::terminate()).map_err(io_err("SIGTERM handler"))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(io_err("SIGINT handler"))?;
    let mut bufs = Buffers::new();
    let mut nbuf = vec![0u8; 4096];
    let mut rbuf = vec![0u8; 4096];
    loop {
        s.flush(&mut bufs).await;
        let wake_at = s.core.poll_timeout().map(instant_at);
        let far = tokio::time::Instant::now() + Duration::from_secs(3600);
        let active = s.colocation.is_some();
        // Data plane first: what arrived earlier is delivered before a control message
        // that may take the address away.
        let w = tokio::select! {
            biased;
            r = recv_opt(s.net.as_ref().map(|n| &n.ipip), &mut bufs.tunnel_in[0]) => Wake::Tunnel(r),
            r = tun_opt(s.net.as_ref().map(|n| &n.tun), active, &mut bufs.tun_in) => Wake::Tun(r),
            r = s.reg.recv_from(&mut rbuf) => Wake::Reg(r),
            r = s.neg.recv_from(&mut nbuf) => Wake::Neg(r),
            r = control.accept() => Wake::Control(r),
            () = tokio::time::sleep_until(wake_at.unwrap_or(far)) => Wake::Timer,
            _ = sigterm.recv() => Wake::Stop,
            _ = sigint.recv() => Wake::Stop,
        };
        match w {
            Wake::Neg(Ok((n, SocketAddr::V4(from)))) => {
                s.core.negotiation_datagram(now(), from, nbuf.get(..n).unwrap_or_default())
            }
            Wake::Reg(Ok((n, SocketAddr::V4(from)))) => {
                s.core.registration_datagram(now(), from, rbuf.get(..n).unwrap_or_default())
            }
            Wake::Neg(Err(e)) | Wake::Reg(Err(e)) => warn!("receive: {e}"),
            Wake::Neg(_) | Wake::Reg(_) => {}
            Wake::Control(Ok((stream, _))) => s.control(stream).await,
            Wake::Control(Err(e)) => warn!("control accept: {e}"),
            Wake::Tunnel(Ok(n)) => s.tunnel_in(&mut bufs, n).await,
            Wake::Tun(Ok(n)) => s.tun_out(&mut bufs, n).await,
            Wake::Tunnel(Err(e)) | Wake::Tun(Err(e)) => warn!("data plane: {e}"),
            Wake::Timer => s.core.handle_timeout(now()),
            Wake::Stop => break,
        }
    }
    // A same-subnet Target going away still wakes its TN (one copy, no waiting).
    if s.core.local_target.holds_address() {
        let _ = s.core.local_target.end(now());
        s.flush(&mut bufs).await;
    }
    // Leave the network as found: a held address off, ARP answered again. (A same-subnet
    // hold is the colocation without an Agent.)
    let released = s.core.tn.is_some() || s.core.local_tn.state() != sid_ext::device::local::LocalTnState::Home;
    for a in [
        s.colocation.map(|c| match c.home_agent.is_unspecified() {
            true => NetAction::Relinquish { address: c.home_address },
            false => NetAction::Remove { address: c.home_address },
        }),
        Some(NetAction::TakeBack { address: s.core.cfg.address }).filter(|_| released),
    ]
    .into_iter()
    .flatten()
    {
        if s.net.is_some() {
            if let Err(e) = netcfg::apply(&s.core.cfg.ip_command, &plan_for(&s.core.cfg, &a)).await {
                warn!("cleanup: {e}");
            }
        }
    }
    s.unpin().await;
    let _ = std::fs::remove_file(&s.core.cfg.control_socket);
    info!("stopped");
    Ok(())
}

impl Shell {
    /// Sends what the state machines queued and applies network actions, in this order:
    /// negotiation messages first (a FIG. 1a Target installs the TN's address when the
    /// negotiation completes: its last message to the TN must leave before the address
    /// is local), then the actions, then UDP 434 (a same-subnet Target's "accepted" once
    /// it holds the address; a TN's wake-up acknowledgement once its gratuitous ARP has
    /// taken the address back, so that the Target lets go only then).
    async fn flush(&mut self, bufs: &mut Buffers) {
        while let Some(t) = self.core.poll_negotiation_transmit() {
            if let Err(e) = self.neg.send_to(&t.payload, SocketAddr::V4(t.destination)).await {
                warn!(to = %t.destination, "negotiation send: {e}");
            }
        }
        while let Some(a) = self.core.actions.pop_front() {
            self.apply(bufs, a).await;
        }
        while let Some(t) = self.core.poll_link_transmit() {
            self.send_link(&t).await;
        }
        while let Some(t) = self.core.poll_registration_transmit() {
            if let Err(e) = self.reg.send_to(&t.payload, SocketAddr::V4(t.destination)).await {
                warn!(to = %t.destination, "registration send: {e}");
            }
        }
    }

    /// A wake-up to the TN's MAC: Ethernet + IPv4 + UDP built here, sent as a frame, so
    /// that the ARP table (which maps the TN's address to us) is not consulted. Without a
    /// data plane the address never moved, so plain UDP reaches the TN.
    async fn send_link(&mut self, t: &LinkTransmit) {
        let Some(net) = &self.net else {
            if let Err(e) = self.reg.send_to(&t.payload, SocketAddr::V4(t.destination)).await {
                warn!(to = %t.destination, "wake-up send: {e}");
            }
            return;
        };
        let mut frame = [0u8; MAX_LINK_FRAME];
        self.identification = self.identification.wrapping_add(1);
        let udp = UdpFrame {
            dst_mac: t.mac,
            src_mac: net.mac,
            source: t.source,
            destination: t.destination,
            ttl: ORIGINATED_TTL,
            identification: self.identification,
        };
        match udp.emit(&t.payload, &mut frame) {
            Ok(len) => {
                if let Err(e) = net.frames.send_with_flags(frame.get(..len).unwrap_or_default(), libc::MSG_DONTWAIT) {
                    warn!(to = %t.destination, "wake-up frame: {e}");
                }
            }
            Err(e) => warn!(to = %t.destination, "wake-up frame not built: {e}"),
        }
    }

    /// Gratuitous ARP for `address` with our MAC, request and reply (RFC 5944 4.6).
    fn announce(&mut self, address: Ipv4Addr) {
        let Some(net) = &self.net else { return };
        let mut frame = [0u8; 64];
        for op in [ArpOp::Request, ArpOp::Reply] {
            if let Ok(len) = gratuitous_frame(address, net.mac, op, net.mac, &mut frame) {
                match net.arp.send(frame.get(..len).unwrap_or_default()) {
                    Ok(_) => self.core.data.gratuitous_arps += 1,
                    Err(e) => warn!("gratuitous ARP: {e}"),
                }
            }
        }
    }

    /// Sends on what the TUN device already holds (without waiting).
    async fn drain_tun(&mut self, bufs: &mut Buffers) {
        // Bounded: with the route gone the queue only shrinks.
        for _ in 0..4096 {
            let Some(net) = self.net.as_ref() else { return };
            // A zero timeout polls the read once: ready data or nothing.
            match tokio::time::timeout(Duration::ZERO, net.tun.recv(&mut bufs.tun_in)).await {
                Ok(Ok(n)) => {
                    self.core.data.tun_drained_at_removal += 1;
                    self.tun_out(bufs, n).await;
                }
                _ => return,
            }
        }
    }

    /// Delivers what the IP-in-IP socket already holds (without waiting), before the
    /// colocation that accepts it goes away.
    async fn drain_tunnel(&mut self, bufs: &mut Buffers) {
        let Some(fd) = self.net.as_ref().map(|n| n.ipip.raw_fd()) else { return };
        // Bounded: the Agent stopped tunnelling before it answered, so the queue is finite.
        for _ in 0..4096 {
            let Some(buf) = bufs.tunnel_in.first_mut() else { return };
            match nix::sys::socket::recv(fd, buf, MsgFlags::MSG_DONTWAIT) {
                Ok(n) => {
                    self.core.data.drained_at_removal += 1;
                    self.tunnel_in(bufs, n).await;
                }
                Err(_) => return,
            }
        }
    }

    async fn apply(&mut self, bufs: &mut Buffers, a: NetAction) {
        if let NetAction::Announce { address } = a {
            return self.announce(address);
        }
        if matches!(a, NetAction::Remove { .. }) {
            self.drain_tunnel(bufs).await;
        }
        // Taking back: announce first (a sysctl and the unpinning take milliseconds the
        // stream would otherwise spend at a device that is letting the address go).
        if let NetAction::TakeBack { address } = a {
            self.announce(address);
        }
        match &a {
            NetAction::Install { address, agent, reverse_tunnel } => {
                self.colocation = Some(Colocation {
                    home_address: *address,
                    home_agent: *agent,
                    care_of: self.core.cfg.address,
                    reverse_tunnel: *reverse_tunnel,
                    encapsulation: Encapsulation::IpInIp,
                    link_mtu: self.link_mtu,
                });
            }
            NetAction::Assume { address } => {
                // No tunnel: the address is reached on the link. Only the outbound half
                // is used; an unspecified Agent makes the tunnel half accept nothing.
                self.colocation = Some(Colocation {
                    home_address: *address,
                    home_agent: Ipv4Addr::UNSPECIFIED,
                    care_of: self.core.cfg.address,
                    reverse_tunnel: false,
                    encapsulation: Encapsulation::IpInIp,
                    link_mtu: self.link_mtu,
                });
            }
            _ => {}
        }
        let removing = matches!(a, NetAction::Remove { .. } | NetAction::Relinquish { .. });
        if self.net.is_none() {
            if removing {
                self.colocation = None;
            }
            return;
        }
        if let Err(e) = netcfg::apply(&self.core.cfg.ip_command, &plan_for(&self.core.cfg, &a)).await {
            warn!(?a, "network change failed: {e}");
        }
        if removing {
            // The address and its rule are gone, so nothing new enters the TUN device;
            // what the applications wrote before still goes out under the old terms.
            self.drain_tun(bufs).await;
            self.colocation = None;
        }
        match a {
            NetAction::Release { .. } => self.pin().await,
            NetAction::TakeBack { .. } => self.unpin().await,
            // Same subnet: the address is ours now; tell the link (RFC 5944 4.6 form).
            NetAction::Assume { address } => self.announce(address),
            _ => {}
        }
    }

    /// Release: the TN's kernel must send no ARP with the released address from now on.
    async fn pin(&mut self) {
        let cfg = &self.core.cfg;
        let out = tokio::process::Command::new(&cfg.ip_command)
            .args(["-4", "neigh", "show", "dev", &cfg.interface])
            .output()
            .await;
        let found = match out {
            Ok(o) if o.status.success() => neigh::parse_neighbours(&String::from_utf8_lossy(&o.stdout)),
            Ok(o) => return warn!("ip neigh show: {}", String::from_utf8_lossy(&o.stderr).trim()),
            Err(e) => return warn!("ip neigh show: {e}"),
        };
        if let Err(e) = netcfg::apply(&cfg.ip_command, &neigh::pin_plan(&found, &cfg.interface)).await {
            warn!("pinning neighbours: {e}");
        }
        info!(count = found.len(), "neighbour entries pinned while the address is released");
        self.pinned.extend(found);
    }

    async fn unpin(&mut self) {
        if self.pinned.is_empty() {
            return;
        }
        let cfg = &self.core.cfg;
        if let Err(e) = netcfg::apply(&cfg.ip_command, &neigh::unpin_plan(&self.pinned, &cfg.interface)).await {
            warn!("releasing pinned neighbours: {e}");
        }
        self.pinned.clear();
    }

    async fn control(&mut self, stream: UnixStream) {
        let (read, mut write) = stream.into_split();
        let mut line = String::new();
        let read = tokio::time::timeout(Duration::from_secs(2), BufReader::new(read).read_line(&mut line)).await;
        let response = match read {
            Ok(Ok(_)) => match serde_json::from_str::<Request>(&line) {
                Ok(req) => self.core.command(now(), req),
                Err(e) => Response::refused(format!("bad request: {e}")),
            },
            _ => Response::refused("no request"),
        };
        if let Ok(mut text) = serde_json::to_string(&response) {
            text.push('\n');
            let _ = write.write_all(text.as_bytes()).await;
        }
    }

    async fn tunnel_in(&mut self, bufs: &mut Buffers, n: usize) {
        let (Some(c), Some(net)) = (self.colocation, &self.net) else { return };
        let Buffers { tunnel_in, out, .. } = bufs;
        let packet = tunnel_in[0].get(..n).unwrap_or_default();
        match inbound(&c, packet, out) {
            Inbound::Deliver { len } => {
                let d = &mut self.core.data;
                d.tunnel_in_packets += 1;
                d.tunnel_in_bytes += len as u64;
                if net.tun.send(out.get(..len).unwrap_or_default()).await.is_err() {
                    d.send_errors += 1;
                }
            }
            Inbound::Ignore => {}
            Inbound::Reject(_) => self.core.data.tunnel_rejected += 1,
        }
    }

    async fn tun_out(&mut self, bufs: &mut Buffers, n: usize) {
        let (Some(c), Some(net)) = (self.colocation, &self.net) else { return };
        let Buffers { tun_in, out, icmp, .. } = bufs;
        let packet = tun_in.get(..n).unwrap_or_default();
        let d = &mut self.core.data;
        match suppress(packet, c.home_address) {
            Some(Suppressed::TcpReset) => return d.suppressed_tcp_resets += 1,
            Some(Suppressed::IcmpUnreachable) => return d.suppressed_icmp_unreachable += 1,
            None => {}
        }
        self.identification = self.identification.wrapping_add(1);
        match outbound(&c, packet, self.identification, out, icmp) {
            Outbound::Direct { dst } => match net.raw.send(packet, dst) {
                Ok(_) => d.direct_out_packets += 1,
                Err(_) => d.send_errors += 1,
            },
            Outbound::Tunnel { len, .. } => {
                for p in mip_core::dataplane::packets(out.get(..len).unwrap_or_default()) {
                    match net.raw.send(p, c.home_agent) {
                        Ok(_) => d.reverse_out_packets += 1,
                        Err(_) => d.send_errors += 1,
                    }
                }
            }
            Outbound::IcmpBack { len } => {
                let _ = net.tun.send(icmp.get(..len).unwrap_or_default()).await;
            }
            Outbound::Drop(_) => d.tun_dropped += 1,
        }
    }
}
