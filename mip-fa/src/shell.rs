//! What the daemon does with each frame, datagram and tunnel packet, and with what the
//! state machines want sent. No decisions here: parsing just enough to dispatch, and
//! moving bytes between sockets and [`ForeignAgent`] / [`Forwarder`].

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::OwnedFd;
use std::time::SystemTime;

use mip_core::dataplane::ethernet::{self, ETHERTYPE_IPV4};
use mip_core::dataplane::offload::{
    complete_checksum, GsoType, TcpSegmenter, VnetHdr, VNET_HDR_LEN,
};
use mip_core::dataplane::{ipv4, packets};
use mip_core::time::Time;
use mip_core::wire::{message_type, ICMP_ROUTER_SOLICITATION, REPLY_TYPE, REQUEST_TYPE};
use mip_core::REGISTRATION_PORT;
use serde::Serialize;
use tracing::{debug, info, warn};

use crate::forwarder::{Forwarder, LinkVerdict, TunnelVerdict, BUFFER_LEN};
use crate::frame::{link_destination, parse_icmp, parse_udp, write_icmp_frame};
use mip_core::dataplane::frame::UdpFrame;
use crate::sys::{self, PACKET_OUTGOING};
use crate::{FaEvent, FaTransmit, ForeignAgent, IcmpErrorKind, LinkDatagram, MacAddr};

/// A link-layer source learnt from a request frame is used for this long.
const MAC_CACHE_SECS: u64 = 10;
const MAC_CACHE_MAX: usize = 4096;
/// TTL of the registration replies we frame ourselves.
const REPLY_TTL: u8 = 64;
/// RFC 5944 2.1: advertisements go out with TTL 1.
const ADVERTISEMENT_TTL: u8 = 1;

pub fn now() -> Time {
    Time::from_system(SystemTime::now())
}

/// Counters of the shell itself (socket errors, frames it could not use).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ShellStats {
    pub frames_received: u64,
    pub frames_sent: u64,
    pub send_errors: u64,
    pub receive_errors: u64,
    /// Requests that came without a learnt link-layer source (answered by broadcast).
    pub requests_without_link_address: u64,
    /// Datagrams on the registration socket from another interface, or not 1 or 3.
    pub registration_ignored: u64,
    /// Frames that could not be finished (checksum, segmentation) or read.
    pub frames_malformed: u64,
    pub icmp_errors_received: u64,
}

/// Everything the event loop mutates.
pub struct State {
    pub fa: ForeignAgent,
    pub forwarder: Option<Forwarder>,
    pub ifindex: u32,
    pub our_mac: MacAddr,
    pub vnet_hdr: bool,
    pub stats: ShellStats,
    mac_cache: HashMap<(Ipv4Addr, u16), (MacAddr, Time)>,
    rx: Vec<u8>,
    work: Vec<u8>,
    segment: Vec<u8>,
    out: Vec<u8>,
    tx: Vec<u8>,
    cmsg: Vec<u8>,
}

/// The sockets, owned by the loop, borrowed by the handlers.
pub struct Sockets {
    pub packet: OwnedFd,
    pub registration: OwnedFd,
    pub raw_out: Option<OwnedFd>,
}

impl State {
    pub fn new(
        fa: ForeignAgent,
        forwarder: Option<Forwarder>,
        ifindex: u32,
        our_mac: MacAddr,
        vnet_hdr: bool,
    ) -> Self {
        State {
            fa,
            forwarder,
            ifindex,
            our_mac,
            vnet_hdr,
            stats: ShellStats::default(),
            mac_cache: HashMap::new(),
            rx: vec![0u8; VNET_HDR_LEN + 65_536],
            work: vec![0u8; 65_536],
            segment: vec![0u8; 65_536],
            out: vec![0u8; BUFFER_LEN],
            tx: vec![0u8; VNET_HDR_LEN + BUFFER_LEN],
            cmsg: nix::cmsg_space!(
                nix::libc::in_pktinfo,
                nix::libc::c_int,
                nix::libc::sock_extended_err,
                nix::libc::sockaddr_in
            ),
        }
    }

    /// Reads up to `max` frames; true when the socket is drained.
    pub fn drain_packet(&mut self, s: &Sockets, max: usize) -> bool {
        for _ in 0..max {
            let mut rx = std::mem::take(&mut self.rx);
            let r = sys::recv_frame(&s.packet, &mut rx);
            match r {
                Ok((n, pkttype)) => {
                    if pkttype != PACKET_OUTGOING {
                        self.stats.frames_received += 1;
                        self.handle_frame(s, rx.get(..n).unwrap_or_default());
                    }
                    self.rx = rx;
                }
                Err(e) => {
                    self.rx = rx;
                    if e.kind() == io::ErrorKind::WouldBlock {
                        return true;
                    }
                    self.stats.receive_errors += 1;
                    debug!("packet socket: {e}");
                }
            }
        }
        false
    }

    fn handle_frame(&mut self, s: &Sockets, raw: &[u8]) {
        let (hdr, frame) = if self.vnet_hdr {
            match VnetHdr::parse(raw) {
                Ok((h, f)) => (Some(h), f),
                Err(_) => {
                    self.stats.frames_malformed += 1;
                    return;
                }
            }
        } else {
            (None, raw)
        };
        let Ok(eth) = ethernet::parse(frame) else {
            self.stats.frames_malformed += 1;
            return;
        };
        if eth.ethertype != ETHERTYPE_IPV4 {
            return;
        }
        let pkt = eth.payload;
        if let Ok(udp) = parse_udp(pkt) {
            if udp.destination_port == REGISTRATION_PORT {
                // The datagram itself is read from the UDP socket, where the kernel has
                // checked its checksum; here we only learn who sent it (3.7.1). One
                // addressed elsewhere (a visitor registering with R through us) still
                // goes on to the data plane below.
                self.learn_mac(udp.ip.src, udp.source_port, eth.src);
            }
        }
        if let Ok((ip, icmp)) = parse_icmp(pkt) {
            if icmp.first() == Some(&ICMP_ROUTER_SOLICITATION) {
                self.fa
                    .handle_solicitation(now(), ip.src, Some(eth.src), icmp);
                self.flush(s);
                return;
            }
        }
        if self.forwarder.is_none() {
            return;
        }
        let src_mac = eth.src;
        match hdr {
            Some(h) if h.gso_type == GsoType::TcpV4 && h.gso_size > 0 => {
                self.forward_segments(s, src_mac, pkt, h)
            }
            Some(h) if h.needs_csum => {
                let mut work = std::mem::take(&mut self.work);
                let finished = work.get_mut(..pkt.len()).and_then(|w| {
                    w.copy_from_slice(pkt);
                    let start = usize::from(h.csum_start).checked_sub(ethernet::HEADER_LEN)?;
                    complete_checksum(w, start, usize::from(h.csum_offset)).ok()?;
                    Some(&*w)
                });
                match finished {
                    Some(p) => self.forward_from_link(s, src_mac, p),
                    None => self.stats.frames_malformed += 1,
                }
                self.work = work;
            }
            _ => self.forward_from_link(s, src_mac, pkt),
        }
    }

    fn forward_segments(&mut self, s: &Sockets, src_mac: MacAddr, pkt: &[u8], h: VnetHdr) {
        let Ok(mut seg) = TcpSegmenter::new(pkt, h.gso_size) else {
            self.stats.frames_malformed += 1;
            return;
        };
        let mut buf = std::mem::take(&mut self.segment);
        while let Some(r) = seg.next_into(&mut buf) {
            match r {
                Ok(n) => self.forward_from_link(s, src_mac, buf.get(..n).unwrap_or_default()),
                Err(_) => {
                    self.stats.frames_malformed += 1;
                    break;
                }
            }
        }
        self.segment = buf;
    }

    fn forward_from_link(&mut self, s: &Sockets, src_mac: MacAddr, pkt: &[u8]) {
        let Some(fwd) = self.forwarder.as_mut() else {
            return;
        };
        let mut out = std::mem::take(&mut self.out);
        match fwd.from_link(src_mac, pkt, &mut out) {
            LinkVerdict::ReverseTunnel { to, len, .. } => {
                for p in packets(out.get(..len).unwrap_or_default()) {
                    self.send_ip(s, to, p);
                }
            }
            LinkVerdict::Route { len } => {
                let p = out.get(..len).unwrap_or_default();
                if let Ok(info) = ipv4::parse(p) {
                    self.send_ip(s, info.dst, p);
                }
            }
            LinkVerdict::IcmpToVisitor { len } => {
                self.send_frame(s, out.get(..len).unwrap_or_default())
            }
            LinkVerdict::NotVisitor | LinkVerdict::Local | LinkVerdict::Dropped(_) => {}
        }
        self.out = out;
    }

    fn send_ip(&mut self, s: &Sockets, to: Ipv4Addr, pkt: &[u8]) {
        let Some(fd) = &s.raw_out else { return };
        if let Err(e) = sys::send_ip(fd, to, pkt) {
            self.stats.send_errors += 1;
            debug!(%to, "raw send: {e}");
        }
    }

    fn send_frame(&mut self, s: &Sockets, frame: &[u8]) {
        match sys::send_frame(&s.packet, self.vnet_hdr, frame, &mut self.tx) {
            Ok(()) => self.stats.frames_sent += 1,
            Err(e) => {
                self.stats.send_errors += 1;
                debug!("frame send: {e}");
            }
        }
    }

    fn learn_mac(&mut self, ip: Ipv4Addr, port: u16, mac: MacAddr) {
        let t = now();
        if self.mac_cache.len() >= MAC_CACHE_MAX {
            self.mac_cache.retain(|_, (_, seen)| {
                t.saturating_duration_since(*seen).as_secs() < MAC_CACHE_SECS
            });
            if self.mac_cache.len() >= MAC_CACHE_MAX {
                self.mac_cache.clear();
            }
        }
        self.mac_cache.insert((ip, port), (mac, t));
    }

    fn learnt_mac(&self, ip: Ipv4Addr, port: u16) -> Option<MacAddr> {
        let t = now();
        self.mac_cache
            .get(&(ip, port))
            .filter(|(_, seen)| t.saturating_duration_since(*seen).as_secs() < MAC_CACHE_SECS)
            .map(|(mac, _)| *mac)
    }

    /// Reads up to `max` datagrams from the registration socket; true when drained.
    pub fn drain_registration(&mut self, s: &Sockets, max: usize) -> bool {
        // The frames that carried these datagrams are already queued on the packet
        // socket (taps run before IP delivery): read them first for the MACs.
        self.drain_packet(s, max);
        for _ in 0..max {
            let mut rx = std::mem::take(&mut self.rx);
            let mut cmsg = std::mem::take(&mut self.cmsg);
            let r = sys::recv_registration(&s.registration, &mut rx, &mut cmsg);
            self.cmsg = cmsg;
            match r {
                Ok(d) => {
                    self.handle_registration(&d, rx.get(..d.len).unwrap_or_default());
                    self.rx = rx;
                    self.flush(s);
                }
                Err(e) => {
                    self.rx = rx;
                    if e.kind() == io::ErrorKind::WouldBlock {
                        return true;
                    }
                    // With IP_RECVERR an ICMP error also surfaces here (ECONNREFUSED...).
                    self.stats.receive_errors += 1;
                    debug!("registration socket: {e}");
                    self.drain_errors(s, max);
                }
            }
        }
        false
    }

    fn handle_registration(&mut self, d: &sys::Received, payload: &[u8]) {
        let t = now();
        match message_type(payload) {
            Some(REPLY_TYPE) => self.fa.handle_reply(t, d.source, payload),
            Some(REQUEST_TYPE) if !matches!(d.ifindex, Some(i) if i != self.ifindex) => {
                let link_source = self.learnt_mac(*d.source.ip(), d.source.port());
                if link_source.is_none() {
                    self.stats.requests_without_link_address += 1;
                }
                let info = LinkDatagram {
                    source: d.source,
                    destination: d.destination.unwrap_or(self.fa.config().care_of_address),
                    ttl: d.ttl,
                    link_source,
                };
                self.fa.handle_request(t, &info, payload);
            }
            _ => self.stats.registration_ignored += 1,
        }
    }

    /// Reads the registration socket's error queue (ICMP errors about relayed requests).
    pub fn drain_errors(&mut self, s: &Sockets, max: usize) {
        for _ in 0..max {
            let mut rx = std::mem::take(&mut self.rx);
            let mut cmsg = std::mem::take(&mut self.cmsg);
            let r = sys::recv_error(&s.registration, &mut rx, &mut cmsg);
            self.cmsg = cmsg;
            match r {
                Ok(Some(e)) => {
                    self.stats.icmp_errors_received += 1;
                    if let Some(dst) = e.destination {
                        let kind = IcmpErrorKind::from_icmp(e.icmp_type, e.icmp_code);
                        self.fa.handle_icmp_error(
                            now(),
                            *dst.ip(),
                            rx.get(..e.len).unwrap_or_default(),
                            kind,
                        );
                    }
                    self.rx = rx;
                    self.flush(s);
                }
                Ok(None) => self.rx = rx,
                Err(_) => {
                    self.rx = rx;
                    return;
                }
            }
        }
    }

    /// Reads up to `max` tunnel packets from one raw socket; true when drained.
    pub fn drain_tunnel(&mut self, s: &Sockets, fd: &OwnedFd, max: usize) -> bool {
        for _ in 0..max {
            let mut rx = std::mem::take(&mut self.rx);
            match sys::recv(fd, &mut rx) {
                Ok(n) => {
                    self.handle_tunnel(s, rx.get(..n).unwrap_or_default());
                    self.rx = rx;
                }
                Err(e) => {
                    self.rx = rx;
                    if e.kind() == io::ErrorKind::WouldBlock {
                        return true;
                    }
                    self.stats.receive_errors += 1;
                    debug!("tunnel socket: {e}");
                }
            }
        }
        false
    }

    fn handle_tunnel(&mut self, s: &Sockets, pkt: &[u8]) {
        let Some(fwd) = self.forwarder.as_mut() else {
            return;
        };
        let mut out = std::mem::take(&mut self.out);
        if let TunnelVerdict::Deliver { len, .. } = fwd.from_tunnel(pkt, &mut out) {
            self.send_frame(s, out.get(..len).unwrap_or_default());
        }
        self.out = out;
    }

    pub fn handle_timeout(&mut self, s: &Sockets) {
        self.fa.handle_timeout(now());
        self.flush(s);
    }

    /// Sends what the foreign agent wants sent and feeds its events to the data plane.
    pub fn flush(&mut self, s: &Sockets) {
        while let Some(tx) = self.fa.poll_transmit() {
            match tx {
                FaTransmit::ToHomeAgent {
                    source,
                    destination,
                    payload,
                } => {
                    if let Err(e) =
                        sys::send_registration(&s.registration, source, destination, &payload)
                    {
                        self.stats.send_errors += 1;
                        warn!(%destination, "cannot relay the request: {e}");
                    }
                }
                FaTransmit::ToMobileNode {
                    source,
                    destination,
                    link_destination: link,
                    payload,
                } => {
                    self.frame_udp(s, source, destination, link, &payload);
                }
            }
        }
        while let Some(adv) = self.fa.poll_advertisement() {
            let coa = self.fa.config().care_of_address;
            let mac = link_destination(adv.destination, adv.link_destination)
                .unwrap_or(ethernet::BROADCAST);
            let mut out = std::mem::take(&mut self.out);
            match write_icmp_frame(
                mac,
                self.our_mac,
                coa,
                adv.destination,
                ADVERTISEMENT_TTL,
                &adv.icmp,
                &mut out,
            ) {
                Ok(n) => self.send_frame(s, out.get(..n).unwrap_or_default()),
                Err(e) => warn!("cannot frame the advertisement: {e}"),
            }
            self.out = out;
        }
        while let Some(event) = self.fa.poll_event() {
            match &event {
                FaEvent::VisitorRefreshed { .. } => debug!(?event, "foreign agent event"),
                _ => info!(?event, "foreign agent event"),
            }
            if let Some(f) = self.forwarder.as_mut() {
                f.apply(&event);
            }
        }
    }

    /// A datagram for a mobile node, framed to its link-layer address (or broadcast
    /// when we never learnt it: the IP destination still selects the node).
    fn frame_udp(
        &mut self,
        s: &Sockets,
        source: SocketAddrV4,
        destination: SocketAddrV4,
        link: Option<MacAddr>,
        payload: &[u8],
    ) {
        let mac = link_destination(*destination.ip(), link).unwrap_or(ethernet::BROADCAST);
        let mut out = std::mem::take(&mut self.out);
        let frame = UdpFrame {
            dst_mac: mac,
            src_mac: self.our_mac,
            source,
            destination,
            ttl: REPLY_TTL,
            identification: 0,
        };
        match frame.emit(payload, &mut out) {
            Ok(n) => self.send_frame(s, out.get(..n).unwrap_or_default()),
            Err(e) => warn!(%destination, "cannot frame the reply: {e}"),
        }
        self.out = out;
    }
}
