//! `mip-mn run`: the mobile node daemon. A tokio shell (one thread) around the sans-IO
//! [`MobileNode`] and [`MovementDetector`], with the TUN device `mip0` holding the home
//! address, an AF_PACKET socket for Agent Advertisements, a raw IP sender and raw
//! receivers of the three tunnel protocols. Networking changes go through
//! [`super::netcfg`] (the `ip` command).
//!
//! On each move (RFC 5944 2.4): configure the interface for the new place, then register:
//! through the foreign agent (request to the agent, care-of = its advertised address,
//! 3.6.1.1), directly with a co-located address (D flag, source = that address), or,
//! returning home, gratuitous ARP first and then deregistration of all bindings (2.4.3,
//! 4.6), the ARPs repeated in parallel with the deregistration.

use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, SystemTime};

use mip_core::dataplane::arp::{gratuitous_frame, ArpOp};
use mip_core::dataplane::ethernet::MacAddr;
use mip_core::dataplane::packets;
use mip_core::dataplane::Encapsulation;
use mip_core::mobile_node::{MnEvent, MnState, MobileNode};
use mip_core::movement::{Location, MovementDetector, MovementEvent};
use mip_core::time::Time;
use mip_core::wire::{AgentFlags, RegistrationFlags};
use tokio::net::UdpSocket;
use tracing::{debug, error, info, warn};

use super::config::MnDaemonConfig;
use super::datapath::{self, Buffers, Colocation, DataStats, Inbound, Outbound};
use super::netcfg::{self, NetMode, NetParams};
use super::packet::{self, ArpSender, RawSender, Receiver};
use super::status::{self, BindingStatus, Status};

/// Why the daemon could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: io::Error,
    },
    #[error("TUN device: {0}")]
    Tun(#[from] tun::Error),
    #[error(transparent)]
    Net(#[from] netcfg::NetError),
}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> DaemonError {
    move |source| DaemonError::Io { what, source }
}

/// Wait after a registration attempt gave up, and after a denial, before trying again.
const RETRY_AFTER_GIVE_UP: Duration = Duration::from_secs(5);
const RETRY_AFTER_DENIAL: Duration = Duration::from_secs(30);
/// Longest wait for the deregistration reply when stopping.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Counters-only status changes are written at most this often.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);

fn now() -> Time {
    Time::from_system(SystemTime::now())
}

fn instant_at(t: Time) -> tokio::time::Instant {
    tokio::time::Instant::now() + t.saturating_duration_since(now())
}

struct Io {
    adv: Receiver,
    arp: ArpSender,
    raw: RawSender,
    ipip: Receiver,
    minimal: Receiver,
    gre: Receiver,
    tun: tun::AsyncDevice,
}

/// What woke the loop.
enum Wake {
    Advertisement(io::Result<usize>),
    Registration(io::Result<(usize, SocketAddr)>),
    Tun(io::Result<usize>),
    Tunnel(usize, io::Result<usize>),
    Timer,
    Stop,
}

struct Daemon {
    cfg: MnDaemonConfig,
    net: NetParams,
    node: MobileNode,
    movement: MovementDetector,
    mac: MacAddr,
    /// Registration socket, bound to the source address of the current mode (3.6.1.1).
    reg: Option<UdpSocket>,
    /// The networking mode last configured completely.
    applied: Option<NetMode>,
    colocation: Option<Colocation>,
    garp_left: u32,
    garp_next: Option<Time>,
    garps_sent: u64,
    retry_at: Option<Time>,
    data: DataStats,
    identification: u16,
    last_event: String,
    dirty_control: bool,
    dirty_data: bool,
    last_status: Option<Time>,
}

/// Runs the daemon until SIGINT or SIGTERM.
pub async fn run(cfg: MnDaemonConfig) -> Result<(), DaemonError> {
    let (ifindex, mac) = netcfg::link_info(&cfg.ip_command, &cfg.interface).await?;
    let net = NetParams {
        interface: cfg.interface.clone(),
        tun_name: cfg.tun_name.clone(),
        home_address: cfg.home_address,
        home_prefix: cfg.home_prefix,
        home_gateway: cfg.home_gateway,
        route_table: cfg.route_table,
    };
    let mut tun_cfg = tun::Configuration::default();
    tun_cfg.tun_name(&cfg.tun_name).mtu(cfg.tun_mtu).up();
    let tun = tun::create_as_async(&tun_cfg)?;
    netcfg::apply(&cfg.ip_command, &netcfg::plan_tun(&net)).await?;
    let io = Io {
        adv: packet::advertisement_receiver(ifindex).map_err(io_err("advertisement socket"))?,
        arp: ArpSender::new(ifindex).map_err(io_err("ARP socket"))?,
        raw: RawSender::new(&cfg.interface).map_err(io_err("raw IP socket"))?,
        ipip: packet::tunnel_receiver(4).map_err(io_err("IP-in-IP socket"))?,
        minimal: packet::tunnel_receiver(55).map_err(io_err("minimal encapsulation socket"))?,
        gre: packet::tunnel_receiver(47).map_err(io_err("GRE socket"))?,
        tun,
    };
    let mut d = Daemon {
        node: MobileNode::new(cfg.node.clone(), rand::random()),
        movement: MovementDetector::new(cfg.movement.clone(), rand::random()),
        net,
        mac,
        reg: None,
        applied: None,
        colocation: None,
        garp_left: 0,
        garp_next: None,
        garps_sent: 0,
        retry_at: None,
        data: DataStats::default(),
        identification: rand::random(),
        last_event: "started".into(),
        dirty_control: true,
        dirty_data: false,
        last_status: None,
        cfg,
    };
    info!(
        home = %d.cfg.home_address, ha = %d.cfg.home_agent, interface = %d.cfg.interface,
        tun = %d.cfg.tun_name, "mobile node started; listening for agent advertisements"
    );
    d.movement.start(now());
    let mut bufs = Buffers::new();
    let mut adv_buf = vec![0u8; 2048];
    let mut reg_buf = vec![0u8; 2048];
    use tokio::signal::unix::{signal, SignalKind};
    let mut sigterm = signal(SignalKind::terminate()).map_err(io_err("SIGTERM handler"))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(io_err("SIGINT handler"))?;
    loop {
        d.process(&io).await;
        d.write_status(now());
        let wake = d.next_wake().map(instant_at);
        let far = tokio::time::Instant::now() + Duration::from_secs(3600);
        let [t0, t1, t2] = &mut bufs.tunnel_in;
        let woke = tokio::select! {
            _ = sigint.recv() => Wake::Stop,
            _ = sigterm.recv() => Wake::Stop,
            r = io.adv.recv(&mut adv_buf) => Wake::Advertisement(r),
            r = recv_registration(d.reg.as_ref(), &mut reg_buf) => Wake::Registration(r),
            r = io.tun.recv(&mut bufs.tun_in) => Wake::Tun(r),
            r = io.ipip.recv(t0) => Wake::Tunnel(0, r),
            r = io.minimal.recv(t1) => Wake::Tunnel(1, r),
            r = io.gre.recv(t2) => Wake::Tunnel(2, r),
            () = tokio::time::sleep_until(wake.unwrap_or(far)) => Wake::Timer,
        };
        let t = now();
        match woke {
            Wake::Stop => break,
            Wake::Advertisement(r) => match r {
                Ok(n) => d.on_advertisement(t, adv_buf.get(..n).unwrap_or_default()),
                Err(e) => warn!("advertisement socket: {e}"),
            },
            Wake::Registration(r) => match r {
                Ok((n, SocketAddr::V4(from))) => {
                    d.node
                        .handle_datagram(t, from, reg_buf.get(..n).unwrap_or_default());
                    d.dirty_control = true;
                }
                Ok(_) => {}
                // ICMP errors for earlier requests surface here; retransmission copes.
                Err(e) => debug!("registration socket: {e}"),
            },
            Wake::Tun(r) => match r {
                Ok(n) => d.on_tun_packet(&io, &mut bufs, n).await,
                Err(e) => warn!("{}: {e}", d.cfg.tun_name),
            },
            Wake::Tunnel(i, r) => match r {
                Ok(n) => d.on_tunnel_packet(&io, &mut bufs, i, n).await,
                Err(e) => warn!("tunnel socket: {e}"),
            },
            Wake::Timer => d.on_timeout(&io, t),
        }
    }
    d.shutdown(&io, &mut reg_buf).await;
    Ok(())
}

/// Pending forever without a socket, so the select branch just never fires.
async fn recv_registration(
    socket: Option<&UdpSocket>,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

impl Daemon {
    fn next_wake(&self) -> Option<Time> {
        let status = self
            .dirty_data
            .then(|| self.last_status.map_or(now(), |t| t + STATUS_INTERVAL));
        [
            self.node.poll_timeout(),
            self.movement.poll_timeout(),
            self.garp_next,
            self.retry_at,
            status,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn on_advertisement(&mut self, t: Time, frame: &[u8]) {
        match packet::parse_advertisement_frame(frame) {
            Ok(a) => {
                debug!(source = %a.source, seq = a.advertisement.mobility.sequence,
                    lifetime = a.advertisement.lifetime, "agent advertisement");
                self.movement.handle_advertisement(
                    t,
                    a.source,
                    Some(a.source_mac),
                    &a.advertisement,
                );
            }
            Err(e) => debug!("ignored frame: {e}"),
        }
    }

    fn on_timeout(&mut self, io: &Io, t: Time) {
        self.node.handle_timeout(t);
        self.movement.handle_timeout(t);
        if self.garp_next.is_some_and(|g| g <= t) {
            self.send_garp(io, t);
        }
        if self.retry_at.is_some_and(|r| r <= t) {
            self.retry_at = None;
            if !matches!(self.movement.location(), Location::Home { .. }) && self.reg.is_some() {
                info!("registering again");
                self.node.register(t);
            }
        }
    }

    /// Acts on everything the state machines queued, until they are quiet.
    async fn process(&mut self, io: &Io) {
        loop {
            let mut busy = false;
            while let Some(ev) = self.movement.poll_event() {
                busy = true;
                self.on_movement(io, ev).await;
            }
            while let Some(t) = self.node.poll_transmit() {
                busy = true;
                let Some(reg) = &self.reg else { continue };
                if let Err(e) = reg.send_to(&t.payload, SocketAddr::V4(t.destination)).await {
                    warn!("registration request to {}: {e}", t.destination);
                }
            }
            while let Some(ev) = self.node.poll_event() {
                busy = true;
                self.on_node_event(ev);
            }
            if !busy {
                return;
            }
            self.dirty_control = true;
        }
    }

    async fn on_movement(&mut self, io: &Io, ev: MovementEvent) {
        let t = now();
        match ev {
            MovementEvent::SolicitNow => {
                let mut buf = [0u8; 64];
                let dst = self.cfg.solicitation_address;
                match packet::solicitation_packet(dst, &mut buf) {
                    Ok(n) => match io.raw.send(buf.get(..n).unwrap_or_default(), dst) {
                        Ok(_) => debug!(%dst, "agent solicitation"),
                        Err(e) => debug!(%dst, "agent solicitation not sent: {e}"),
                    },
                    Err(e) => warn!("solicitation: {e}"),
                }
            }
            MovementEvent::Lost { agent } => {
                self.note(format!("lost contact with agent {agent:?}; soliciting"));
            }
            MovementEvent::MovedHome { agent } => {
                self.note(format!("at home (agent {agent})"));
                self.enter(NetMode::Home).await;
                // 4.6: gratuitous ARP before the deregistration, repeated alongside it.
                self.garp_left = self.cfg.gratuitous_arp_count.max(1);
                self.send_garp(io, t);
                self.node.set_flags(RegistrationFlags::default());
                self.node.move_via(t, None, self.cfg.home_address);
            }
            MovementEvent::MovedToForeignAgent {
                agent,
                care_of,
                agent_mac,
                flags,
            } => {
                self.note(format!("foreign agent {agent}, care-of address {care_of}"));
                self.enter(NetMode::ForeignAgent { agent, agent_mac }).await;
                self.node.set_flags(self.flags(Some(flags), false));
                self.node.move_via(t, Some(agent), care_of);
            }
            MovementEvent::NeedsColocated { prefix, agent } => {
                let Some(c) = self.cfg.colocated_for(prefix) else {
                    warn!(%prefix, "no co-located address configured for this link");
                    return;
                };
                self.note(format!(
                    "co-located care-of address {} on {prefix} (agent {agent})",
                    c.address
                ));
                self.enter(NetMode::Colocated(c)).await;
                self.colocation = Some(Colocation {
                    home_address: self.cfg.home_address,
                    home_agent: self.cfg.home_agent,
                    care_of: c.address,
                    reverse_tunnel: self.cfg.reverse_tunnel,
                    encapsulation: self.cfg.encapsulation,
                    link_mtu: self.cfg.link_mtu,
                });
                self.node.set_flags(self.flags(None, true));
                self.node.move_via(t, None, c.address);
            }
            MovementEvent::AgentRestarted { agent, care_of } => {
                self.note(format!(
                    "foreign agent {agent} restarted; registering again"
                ));
                self.node.move_via(t, Some(agent), care_of);
            }
        }
    }

    /// Registration flags for a move: D with a co-located address; T, M or G as
    /// configured, through a foreign agent only if it advertises them.
    fn flags(&self, agent: Option<AgentFlags>, colocated: bool) -> RegistrationFlags {
        let offers = |bit: u16| agent.is_none_or(|a| a.contains(bit));
        let mut f = RegistrationFlags::default();
        if colocated {
            f = f.with(RegistrationFlags::D);
        }
        if self.cfg.reverse_tunnel && offers(AgentFlags::T) {
            f = f.with(RegistrationFlags::T);
        }
        match self.cfg.encapsulation {
            Encapsulation::Minimal if offers(AgentFlags::M) => f = f.with(RegistrationFlags::M),
            Encapsulation::Gre if offers(AgentFlags::G) => f = f.with(RegistrationFlags::G),
            _ => {}
        }
        f
    }

    /// Reconfigures the interface and rebinds the registration socket for `mode`.
    async fn enter(&mut self, mode: NetMode) {
        self.colocation = None;
        self.garp_left = 0;
        self.garp_next = None;
        self.retry_at = None;
        if self.applied == Some(mode) && self.reg.is_some() {
            // Back to the same place (e.g. the agent heard again after a loss): the
            // interface is still set up; re-registering is all that is needed.
            return;
        }
        self.applied =
            match netcfg::apply(&self.cfg.ip_command, &netcfg::plan(&self.net, &mode)).await {
                Ok(()) => Some(mode),
                Err(e) => {
                    error!("network configuration for {mode:?} incomplete: {e}");
                    None
                }
            };
        let source = match mode {
            NetMode::Colocated(c) => c.address,
            NetMode::Home | NetMode::ForeignAgent { .. } => self.cfg.home_address,
        };
        self.reg = match UdpSocket::bind(SocketAddrV4::new(source, 0)).await {
            Ok(s) => {
                // RFC 3024: a foreign agent refuses a reverse-tunnel request (code 76)
                // unless it arrives with TTL 255, its proof that the node is on-link.
                if let Err(e) = s.set_ttl(255) {
                    warn!("cannot set TTL 255 on the registration socket: {e}");
                }
                Some(s)
            }
            Err(e) => {
                error!("cannot bind the registration socket to {source}: {e}");
                None
            }
        };
    }

    fn send_garp(&mut self, io: &Io, t: Time) {
        let mut frame = [0u8; 64];
        let home = self.cfg.home_address;
        match gratuitous_frame(home, self.mac, ArpOp::Request, self.mac, &mut frame) {
            Ok(n) => match io.arp.send(frame.get(..n).unwrap_or_default()) {
                Ok(_) => {
                    self.garps_sent += 1;
                    debug!(%home, "gratuitous ARP");
                }
                Err(e) => warn!("gratuitous ARP: {e}"),
            },
            Err(e) => warn!("gratuitous ARP frame: {e}"),
        }
        self.garp_left = self.garp_left.saturating_sub(1);
        self.garp_next = (self.garp_left > 0).then(|| t + self.cfg.gratuitous_arp_interval);
    }

    fn on_node_event(&mut self, ev: MnEvent) {
        let t = now();
        let away = !matches!(self.movement.location(), Location::Home { .. });
        match &ev {
            MnEvent::Registered {
                care_of_address,
                lifetime,
                code,
                renewal,
                ..
            } => {
                self.retry_at = None;
                let what = if *renewal {
                    "re-registered"
                } else {
                    "registered"
                };
                self.note(format!(
                    "{what}: care-of {care_of_address}, lifetime {lifetime} s, code {}",
                    u8::from(*code)
                ));
            }
            MnEvent::Deregistered {
                care_of_address, ..
            } => {
                self.note(format!("deregistered (care-of {care_of_address})"));
            }
            MnEvent::Denied {
                code,
                deregistration,
            } => {
                self.note(format!(
                    "denied: code {} ({})",
                    u8::from(*code),
                    code.description()
                ));
                if away && !deregistration {
                    self.retry_at = Some(t + RETRY_AFTER_DENIAL);
                }
            }
            MnEvent::GaveUp {
                attempts,
                deregistration,
            } => {
                self.note(format!("no reply after {attempts} requests"));
                if away && !deregistration {
                    self.retry_at = Some(t + RETRY_AFTER_GIVE_UP);
                }
            }
            MnEvent::Expired { care_of_address } => {
                self.note(format!("binding for {care_of_address} expired"));
                if away {
                    self.retry_at = Some(t);
                }
            }
            MnEvent::Resynchronized { .. } | MnEvent::UnauthenticatedReply { .. } => {
                warn!("{ev:?}");
            }
            MnEvent::Failed { error } => error!("registration cannot be built: {error}"),
        }
    }

    fn note(&mut self, text: String) {
        info!("{text}");
        self.last_event = text;
        self.dirty_control = true;
    }

    async fn on_tun_packet(&mut self, io: &Io, bufs: &mut Buffers, n: usize) {
        let Some(c) = self.colocation else {
            // Not co-located: nothing is routed into the TUN device on purpose.
            self.data.tun_dropped += 1;
            return;
        };
        self.dirty_data = true;
        let packet = bufs.tun_in.get(..n).unwrap_or_default();
        self.identification = self.identification.wrapping_add(1);
        match datapath::outbound(
            &c,
            packet,
            self.identification,
            &mut bufs.out,
            &mut bufs.icmp,
        ) {
            Outbound::Direct { dst } => match io.raw.send(packet, dst) {
                Ok(_) => {
                    self.data.direct_out_packets += 1;
                    self.data.direct_out_bytes += n as u64;
                }
                Err(e) => {
                    self.data.send_errors += 1;
                    debug!(%dst, "direct send: {e}");
                }
            },
            Outbound::Tunnel { len, .. } => {
                for p in packets(bufs.out.get(..len).unwrap_or_default()) {
                    match io.raw.send(p, c.home_agent) {
                        Ok(_) => {
                            self.data.reverse_out_packets += 1;
                            self.data.reverse_out_bytes += p.len() as u64;
                        }
                        Err(e) => {
                            self.data.send_errors += 1;
                            debug!("reverse tunnel send: {e}");
                        }
                    }
                }
            }
            Outbound::IcmpBack { len } => {
                if io
                    .tun
                    .send(bufs.icmp.get(..len).unwrap_or_default())
                    .await
                    .is_ok()
                {
                    self.data.icmp_to_apps += 1;
                }
            }
            Outbound::Drop(why) => {
                self.data.tun_dropped += 1;
                debug!("dropped a packet from {}: {why}", self.cfg.tun_name);
            }
        }
    }

    async fn on_tunnel_packet(&mut self, io: &Io, bufs: &mut Buffers, which: usize, n: usize) {
        let Some(c) = self.colocation else {
            self.data.tunnel_ignored += 1;
            return;
        };
        let input = bufs
            .tunnel_in
            .get(which)
            .and_then(|b| b.get(..n))
            .unwrap_or_default();
        match datapath::inbound(&c, input, &mut bufs.out) {
            Inbound::Deliver { len } => {
                self.dirty_data = true;
                match io.tun.send(bufs.out.get(..len).unwrap_or_default()).await {
                    Ok(_) => {
                        self.data.tunnel_in_packets += 1;
                        self.data.tunnel_in_bytes += len as u64;
                    }
                    Err(e) => {
                        self.data.send_errors += 1;
                        debug!("{}: {e}", self.cfg.tun_name);
                    }
                }
            }
            Inbound::Ignore => self.data.tunnel_ignored += 1,
            Inbound::Reject(why) => {
                self.dirty_data = true;
                self.data.tunnel_rejected += 1;
                debug!("tunnel packet refused: {why}");
            }
        }
    }

    fn status(&self, t: Time) -> Status {
        let (agent, care_of) = match self.movement.location() {
            Location::Home { agent } => (Some(agent), Some(self.cfg.home_address)),
            Location::ForeignAgent { agent, care_of } => (Some(agent), Some(care_of)),
            Location::Colocated { agent, .. } => (Some(agent), self.colocation.map(|c| c.care_of)),
            Location::Unknown | Location::Lost => {
                (None, self.node.binding().map(|b| b.care_of_address))
            }
        };
        Status {
            pid: std::process::id(),
            home_address: self.cfg.home_address,
            home_agent: self.cfg.home_agent,
            location: status::location_name(self.movement.location()),
            agent,
            care_of_address: care_of,
            registration: status::registration_name(self.node.state()),
            binding: self.node.binding().map(|b| BindingStatus {
                care_of_address: b.care_of_address,
                lifetime: b.lifetime,
                expires_unix_micros: b.expires.map(|e| e.as_micros()),
            }),
            reverse_tunnel: self.cfg.reverse_tunnel,
            moves: self.movement.stats().moves,
            advertisements: self.movement.stats().advertisements,
            solicitations: self.movement.stats().solicitations,
            registrations_accepted: self.node.stats().replies_accepted,
            requests_sent: self.node.stats().requests_sent,
            gratuitous_arps: self.garps_sent,
            last_event: self.last_event.clone(),
            data: self.data,
            updated_unix_micros: t.as_micros(),
        }
    }

    fn write_status(&mut self, t: Time) {
        let due = self.dirty_control
            || (self.dirty_data && self.last_status.is_none_or(|l| l + STATUS_INTERVAL <= t));
        if !due {
            return;
        }
        self.dirty_control = false;
        self.dirty_data = false;
        self.last_status = Some(t);
        if let Some(path) = &self.cfg.status_file {
            if let Err(e) = status::write(path, &self.status(t)) {
                warn!("status file {}: {e}", path.display());
            }
        }
    }

    /// Deregisters a binding held while away (bounded wait), then removes the policy rule.
    async fn shutdown(&mut self, io: &Io, buf: &mut [u8]) {
        let away = !matches!(self.movement.location(), Location::Home { .. });
        if away && self.node.binding().is_some() && self.reg.is_some() {
            info!("stopping: deregistering");
            self.node.deregister(now());
            let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
            while self.node.state() == MnState::Deregistering {
                while let Some(t) = self.node.poll_transmit() {
                    if let Some(reg) = &self.reg {
                        let _ = reg.send_to(&t.payload, SocketAddr::V4(t.destination)).await;
                    }
                }
                let wake = self
                    .node
                    .poll_timeout()
                    .map_or(deadline, instant_at)
                    .min(deadline);
                tokio::select! {
                    r = recv_registration(self.reg.as_ref(), buf) => {
                        if let Ok((n, SocketAddr::V4(from))) = r {
                            self.node.handle_datagram(now(), from, buf.get(..n).unwrap_or_default());
                        }
                    }
                    () = tokio::time::sleep_until(wake) => self.node.handle_timeout(now()),
                }
                if tokio::time::Instant::now() >= deadline {
                    break;
                }
            }
            while let Some(ev) = self.node.poll_event() {
                self.on_node_event(ev);
            }
        }
        let _ = io;
        if let Err(e) = netcfg::apply(&self.cfg.ip_command, &netcfg::plan_shutdown(&self.net)).await
        {
            warn!("cleanup: {e}");
        }
        self.last_event = "stopped".into();
        self.dirty_control = true;
        self.write_status(now());
        info!("stopped");
    }
}
