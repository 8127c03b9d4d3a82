//! What the home agent does with each packet, without sockets: the Linux shell feeds it
//! frames from the home link and packets from the tunnel sockets, and gives it an
//! [`Output`] to send through.
//!
//! - ARP (RFC 5944 4.6): a Request for a home address with a binding is answered with
//!   our MAC (proxy ARP); ARP from a served home address at home teaches us the node's
//!   MAC, for the gratuitous ARP when it returns.
//! - Interception (RFC 5944 4.2.3 / 4.3): an IPv4 frame to our MAC for a home address
//!   with bindings is encapsulated to each care-of address (a copy per simultaneous
//!   binding), with the ICMP errors of RFC 2003 (3/4 when too big with DF, 11 when the
//!   TTL runs out).
//! - Hand-back: for [`super::table::HANDBACK_RELAY`] after a node's last binding ends,
//!   frames still sent to our MAC for it are passed on to its own MAC.
//! - Reverse tunnel (RFC 3024): a tunnel packet is accepted only from a registered
//!   care-of address of the inner source's home address, with T granted (or, for
//!   [`super::table::REVERSE_GRACE`], one whose binding just ended); the inner
//!   packet is forwarded (TTL decremented). Everything else is dropped and counted.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicU16, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use mip_core::dataplane::arp::{self, ArpOp, ArpRepr};
use mip_core::dataplane::ethernet::{self, MacAddr, ETHERTYPE_ARP, ETHERTYPE_IPV4, HEADER_LEN};
use mip_core::dataplane::frame::{UdpFrame, MAX_LINK_FRAME, ORIGINATED_TTL};
use mip_core::dataplane::offload::{complete_checksum, GsoType, TcpSegmenter, VnetHdr};
use mip_core::dataplane::{
    decapsulate, encapsulate, icmp_error, ipv4, packets, EncapOutcome, TunnelParams, ENCAP_BUFFER_LEN,
};
use tracing::{debug, trace};

use super::stats::{add, bump, DataplaneStats, DropReason};
use super::table::{Table, Tunnel};

/// The smallest tunnel MTU a report from inside the tunnel may set.
pub const MIN_PATH_MTU: u16 = 576;
/// Where a packet for a home address goes.
#[derive(Debug, Clone, Copy)]
enum Via {
    /// Into the tunnel of every care-of address.
    Tunnels,
    /// To the node itself on the home link, which it has just come back to.
    Relay(MacAddr),
}

/// Where packets go.
pub trait Output {
    /// A whole Ethernet frame onto the home link.
    fn frame(&mut self, frame: &[u8]) -> std::io::Result<()>;
    /// A whole IPv4 packet (header included) to be routed towards `dst`.
    fn ip(&mut self, dst: Ipv4Addr, packet: &[u8]) -> std::io::Result<()>;
}

/// Buffers of one packet thread, allocated once.
pub struct Scratch {
    /// Encapsulated packets (fragments back to back).
    out: Vec<u8>,
    /// A TCP segment cut from a super-packet; a decapsulated inner packet.
    seg: Vec<u8>,
    /// ICMP errors and ARP frames.
    small: Vec<u8>,
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch { out: vec![0; ENCAP_BUFFER_LEN], seg: vec![0; 65_536], small: vec![0; 1024] }
    }
}

pub struct Engine {
    pub address: Ipv4Addr,
    pub mac: MacAddr,
    tunnel_mtu: u16,
    outer_ttl: u8,
    identification: AtomicU16,
    table: Arc<RwLock<Table>>,
    stats: Arc<DataplaneStats>,
}

impl Engine {
    pub fn new(
        address: Ipv4Addr,
        mac: MacAddr,
        tunnel_mtu: u16,
        table: Arc<RwLock<Table>>,
        stats: Arc<DataplaneStats>,
    ) -> Self {
        Engine { address, mac, tunnel_mtu, outer_ttl: 64, identification: AtomicU16::new(1), table, stats }
    }

    pub fn stats(&self) -> &DataplaneStats {
        &self.stats
    }

    fn params(&self, ids: u16, path_mtu: Option<u16>) -> TunnelParams {
        TunnelParams {
            tunnel_mtu: path_mtu.map_or(self.tunnel_mtu, |m| m.min(self.tunnel_mtu)),
            outer_ttl: self.outer_ttl,
            forwarding: true,
            // Enough consecutive values for the fragments of one packet.
            identification: self.identification.fetch_add(ids, Relaxed),
        }
    }

    /// One frame from the home link (after the virtio-net header, if the socket has
    /// one). `frame` is mutable so that a partial checksum can be finished in place.
    pub fn on_frame(&self, vnet: Option<&VnetHdr>, frame: &mut [u8], scratch: &mut Scratch, out: &mut impl Output) {
        bump(&self.stats.frames);
        let Ok(eth) = ethernet::parse(frame) else { return };
        if eth.src == self.mac {
            return;
        }
        match eth.ethertype {
            ETHERTYPE_ARP => {
                if let Ok(req) = ArpRepr::parse(eth.payload) {
                    self.on_arp(&req, eth.src, scratch, out);
                }
            }
            ETHERTYPE_IPV4 if eth.dst == self.mac => {
                let Some(pkt) = frame.get_mut(HEADER_LEN..) else { return };
                self.on_ipv4(vnet, pkt, scratch, out);
            }
            _ => {}
        }
    }

    fn on_arp(&self, a: &ArpRepr, eth_src: MacAddr, scratch: &mut Scratch, out: &mut impl Output) {
        // A served node speaking for itself on the home link: remember its MAC.
        if a.sender_mac == eth_src && !a.sender_ip.is_unspecified() {
            let learn = {
                let t = self.table.read().unwrap_or_else(|p| p.into_inner());
                t.is_configured(a.sender_ip) && t.mac(a.sender_ip) != Some(a.sender_mac)
            };
            if learn {
                let mut t = self.table.write().unwrap_or_else(|p| p.into_inner());
                if t.learn(a.sender_ip, a.sender_mac) {
                    bump(&self.stats.macs_learned);
                    debug!(home = %a.sender_ip, mac = %ethernet::format_mac(&a.sender_mac), "learnt a mobile node's MAC");
                }
            }
        }
        if a.operation != ArpOp::Request {
            return;
        }
        bump(&self.stats.arp_requests);
        // A gratuitous Request (sender = target) announces; it asks nothing.
        if a.sender_ip == a.target_ip {
            return;
        }
        let bound = self.table.read().unwrap_or_else(|p| p.into_inner()).is_bound(a.target_ip);
        if !bound {
            return;
        }
        // RFC 5944 4.6: MUST reply on behalf of a node with a binding, our MAC as sender.
        let reply = arp::proxy_reply(a, self.mac);
        match reply.emit_frame(eth_src, self.mac, &mut scratch.small) {
            Ok(n) => {
                let sent = scratch.small.get(..n).map(|f| out.frame(f));
                if matches!(sent, Some(Ok(()))) {
                    bump(&self.stats.proxy_arp_replies);
                    trace!(home = %a.target_ip, asker = %a.sender_ip, "proxy ARP reply");
                } else {
                    self.stats.count_drop(DropReason::SendFailed);
                }
            }
            Err(_) => self.stats.count_drop(DropReason::SendFailed),
        }
    }

    fn on_ipv4(&self, vnet: Option<&VnetHdr>, pkt: &mut [u8], scratch: &mut Scratch, out: &mut impl Output) {
        // Only packets for bound home addresses are ours, and, for a short while after
        // a node came home, those still sent to our MAC for it; the kernel has the rest
        // (registration requests to us, pings, ...).
        let Ok(info) = ipv4::parse(pkt) else { return };
        let via = {
            let t = self.table.read().unwrap_or_else(|p| p.into_inner());
            if t.is_bound(info.dst) {
                Via::Tunnels
            } else if let Some(mac) = t.relay_mac(info.dst, Instant::now()) {
                Via::Relay(mac)
            } else {
                return;
            }
        };
        match via {
            Via::Tunnels => bump(&self.stats.intercepted),
            Via::Relay(_) => bump(&self.stats.relayed_home),
        }
        let Some(pkt) = pkt.get_mut(..info.total_len) else { return };
        let Some(v) = vnet else {
            self.deliver(via, pkt, scratch, out);
            return;
        };
        if v.needs_csum {
            // Offsets in the header count from the frame start.
            let start = usize::from(v.csum_start).saturating_sub(HEADER_LEN);
            if complete_checksum(pkt, start, usize::from(v.csum_offset)).is_err() {
                self.stats.count_drop(DropReason::Malformed);
                return;
            }
            bump(&self.stats.checksums_completed);
        }
        match v.gso_type {
            GsoType::None => self.deliver(via, pkt, scratch, out),
            GsoType::TcpV4 if v.gso_size > 0 => {
                let Ok(mut segments) = TcpSegmenter::new(pkt, v.gso_size) else {
                    self.stats.count_drop(DropReason::Malformed);
                    return;
                };
                bump(&self.stats.segmented);
                let mut seg = std::mem::take(&mut scratch.seg);
                while let Some(r) = segments.next_into(&mut seg) {
                    match r {
                        Ok(n) => {
                            if let Some(s) = seg.get(..n) {
                                self.deliver(via, s, scratch, out);
                            }
                        }
                        Err(_) => {
                            self.stats.count_drop(DropReason::Malformed);
                            break;
                        }
                    }
                }
                scratch.seg = seg;
            }
            _ => self.stats.count_drop(DropReason::OffloadUnsupported),
        }
    }

    fn deliver(&self, via: Via, pkt: &[u8], scratch: &mut Scratch, out: &mut impl Output) {
        match via {
            Via::Tunnels => self.forward(pkt, scratch, out),
            Via::Relay(mac) => self.relay(mac, pkt, scratch, out),
        }
    }

    /// Sends `pkt` on the home link to the node's own MAC, unchanged: the node is home
    /// again but a neighbour has not yet taken its gratuitous ARP (Linux ignores one
    /// that comes within `locktime` of the last update), so the packet still came to us.
    /// Without this it would be lost in the moment of the hand-back.
    fn relay(&self, mac: MacAddr, pkt: &[u8], scratch: &mut Scratch, out: &mut impl Output) {
        let len = HEADER_LEN + pkt.len();
        let Some(frame) = scratch.out.get_mut(..len) else {
            self.stats.count_drop(DropReason::Malformed);
            return;
        };
        let (header, body) = frame.split_at_mut(HEADER_LEN);
        if ethernet::write_header(mac, self.mac, ETHERTYPE_IPV4, header).is_err() {
            return;
        }
        body.copy_from_slice(pkt);
        if out.frame(frame).is_err() {
            self.stats.count_drop(DropReason::SendFailed);
        }
    }

    /// Encapsulates `pkt` (to a bound home address) to every care-of address.
    pub fn forward(&self, pkt: &[u8], scratch: &mut Scratch, out: &mut impl Output) {
        let Ok(info) = ipv4::parse(pkt) else {
            self.stats.count_drop(DropReason::Malformed);
            return;
        };
        let table = self.table.read().unwrap_or_else(|p| p.into_inner());
        let Some(tunnels) = table.tunnels(info.dst) else { return };
        let now = Instant::now();
        for t in tunnels {
            let p = self.params(64, table.path_mtu(t.care_of, now));
            if !self.encapsulate_one(t, pkt, &p, scratch, out) {
                // An ICMP error was sent or the packet is bad: once is enough.
                break;
            }
        }
    }

    /// False when the packet cannot go into any tunnel (so no more copies are tried).
    fn encapsulate_one(
        &self,
        t: &Tunnel,
        pkt: &[u8],
        p: &TunnelParams,
        scratch: &mut Scratch,
        out: &mut impl Output,
    ) -> bool {
        match encapsulate(t.kind, pkt, self.address, t.care_of, p, &mut scratch.out) {
            EncapOutcome::Encapsulated { len } => {
                if let Some(b) = scratch.out.get(..len) {
                    self.send_tunnel(t, b, out);
                }
                true
            }
            EncapOutcome::Fragmented { len, .. } => {
                bump(&self.stats.fragmented);
                for b in packets(scratch.out.get(..len).unwrap_or_default()) {
                    self.send_tunnel(t, b, out);
                }
                true
            }
            EncapOutcome::FragmentationNeeded { next_hop_mtu } => {
                // RFC 2003 5.1: tell the sender the tunnel MTU less our header.
                match icmp_error::fragmentation_needed(pkt, self.address, next_hop_mtu, &mut scratch.small) {
                    Ok(n) => {
                        self.send_icmp(pkt, n, scratch, out);
                        bump(&self.stats.icmp_fragmentation_needed);
                    }
                    Err(e) => debug!("no fragmentation-needed sent: {e}"),
                }
                false
            }
            EncapOutcome::Dropped(reason) => {
                use mip_core::dataplane::DropReason as Why;
                match reason {
                    Why::TtlExpired => {
                        self.stats.count_drop(DropReason::TtlExpired);
                        // RFC 2003 3.1: an ICMP Time Exceeded SHOULD be returned.
                        if let Ok(n) = icmp_error::time_exceeded(pkt, self.address, &mut scratch.small) {
                            self.send_icmp(pkt, n, scratch, out);
                            bump(&self.stats.icmp_time_exceeded);
                        }
                    }
                    Why::Loop => self.stats.count_drop(DropReason::Loop),
                    Why::FragmentNotAllowed => {
                        self.stats.count_drop(DropReason::FragmentNotAllowed);
                        return true;
                    }
                    Why::Malformed(_) => self.stats.count_drop(DropReason::Malformed),
                }
                false
            }
        }
    }

    fn send_icmp(&self, original: &[u8], n: usize, scratch: &Scratch, out: &mut impl Output) {
        let Ok(info) = ipv4::parse(original) else { return };
        if let Some(b) = scratch.small.get(..n) {
            if out.ip(info.src, b).is_err() {
                self.stats.count_drop(DropReason::SendFailed);
            }
        }
    }

    fn send_tunnel(&self, t: &Tunnel, b: &[u8], out: &mut impl Output) {
        if out.ip(t.care_of, b).is_ok() {
            bump(&self.stats.tunnelled_packets);
            add(&self.stats.tunnelled_bytes, b.len());
            bump(&t.counters.packets_out);
            add(&t.counters.bytes_out, b.len());
        } else {
            self.stats.count_drop(DropReason::SendFailed);
        }
    }

    /// A packet from a tunnel socket (protocol 4, 47 or 55), outer header first.
    pub fn on_tunnel_packet(&self, pkt: &[u8], scratch: &mut Scratch, out: &mut impl Output) {
        let mut inner_buf = std::mem::take(&mut scratch.seg);
        self.reverse(pkt, &mut inner_buf, scratch, out);
        scratch.seg = inner_buf;
    }

    fn reverse(&self, pkt: &[u8], inner_buf: &mut [u8], scratch: &mut Scratch, out: &mut impl Output) {
        let d = match decapsulate(pkt, inner_buf) {
            Ok(d) => d,
            Err(e) => {
                trace!("tunnel packet dropped: {e}");
                self.stats.count_drop(DropReason::from_decap(&e));
                return;
            }
        };
        let verdict = {
            let table = self.table.read().unwrap_or_else(|p| p.into_inner());
            let list = table.tunnels(d.inner_src);
            match list.and_then(|l| l.iter().find(|t| t.care_of == d.outer_src)) {
                Some(t) if !t.reverse => Err(DropReason::ReverseTunnelNotGranted),
                Some(t) => {
                    bump(&t.counters.packets_in);
                    add(&t.counters.bytes_in, pkt.len());
                    Ok(table.is_bound(d.inner_dst))
                }
                None if table.in_reverse_grace(d.inner_src, d.outer_src, Instant::now()) => {
                    bump(&self.stats.reverse_after_end);
                    Ok(table.is_bound(d.inner_dst))
                }
                None if list.is_none() => Err(DropReason::NoBinding),
                None => Err(DropReason::UnregisteredCareOf),
            }
        };
        let to_bound_home = match verdict {
            Ok(b) => b,
            Err(reason) => {
                debug!(outer = %d.outer_src, inner = %d.inner_src, "reverse-tunnelled packet refused: {}", reason.name());
                self.stats.count_drop(reason);
                return;
            }
        };
        bump(&self.stats.reverse_packets);
        add(&self.stats.reverse_bytes, pkt.len());
        let Some(inner) = inner_buf.get_mut(..d.inner_len) else { return };
        if to_bound_home {
            // Another node away from home: our own kernel's ARP for it would go
            // unanswered (we do not see outgoing frames), so tunnel it straight on;
            // encapsulating decrements the TTL.
            self.forward(inner, scratch, out);
            return;
        }
        // We forward it: TTL - 1 (RFC 2003 3.1, decapsulation then normal forwarding).
        let Ok(info) = ipv4::parse(inner) else { return };
        if info.ttl <= 1 || ipv4::set_ttl(inner, info.header_len, info.ttl - 1).is_err() {
            self.stats.count_drop(DropReason::TtlExpired);
            return;
        }
        if out.ip(d.inner_dst, inner).is_err() {
            self.stats.count_drop(DropReason::SendFailed);
        }
    }

    /// An ICMP message to us (raw ICMP socket, IP header first). A Datagram Too Big
    /// about one of our tunnel packets lowers that tunnel's MTU (RFC 2003 5.1 soft
    /// state, RFC 1191): the next too-big packet with DF gets an ICMP 3/4 from us with
    /// the right MTU. Anything else is ignored.
    pub fn on_icmp(&self, pkt: &[u8]) {
        let Some((care_of, mtu)) = self.too_big_about_our_tunnel(pkt) else { return };
        let now = Instant::now();
        let lowered = self.table.write().unwrap_or_else(|p| p.into_inner()).learn_path_mtu(care_of, mtu, now);
        if lowered {
            bump(&self.stats.tunnel_mtu_updates);
            debug!(%care_of, mtu, "tunnel MTU lowered by ICMP from inside the tunnel");
        }
    }

    fn too_big_about_our_tunnel(&self, pkt: &[u8]) -> Option<(Ipv4Addr, u16)> {
        let outer = ipv4::parse(pkt).ok()?;
        let icmp = pkt.get(outer.header_len..outer.total_len)?;
        let (&t, &c) = (icmp.first()?, icmp.get(1)?);
        if (t, c) != (icmp_error::TYPE_DEST_UNREACHABLE, icmp_error::CODE_FRAGMENTATION_NEEDED)
            || ipv4::checksum(icmp) != 0
        {
            return None;
        }
        let mtu = u16::from_be_bytes([*icmp.get(6)?, *icmp.get(7)?]);
        // The quoted header: ours, a tunnel protocol. Only its first bytes are quoted,
        // so read the fields directly rather than parse a whole packet.
        let q = icmp.get(8..28)?;
        let proto = q[9];
        let src = Ipv4Addr::new(q[12], q[13], q[14], q[15]);
        let dst = Ipv4Addr::new(q[16], q[17], q[18], q[19]);
        let ours = src == self.address && mip_core::dataplane::Encapsulation::from_protocol(proto).is_some();
        // RFC 1191: an old router reports 0; a report below 576 is not believed.
        (ours && mtu >= MIN_PATH_MTU).then_some((dst, mtu))
    }

    /// Sends a UDP datagram we originate as a frame to `mac` on the home link, without
    /// ARP: a SID wake-up goes to the Transferring Node's stored MAC while ARP still
    /// maps its address to us. Counted as sent or failed; built on the stack.
    pub fn send_udp_frame(
        &self,
        mac: MacAddr,
        source: SocketAddrV4,
        destination: SocketAddrV4,
        payload: &[u8],
        out: &mut impl Output,
    ) -> std::io::Result<()> {
        let mut buf = [0u8; MAX_LINK_FRAME];
        let frame = UdpFrame {
            dst_mac: mac,
            src_mac: self.mac,
            source,
            destination,
            ttl: ORIGINATED_TTL,
            identification: self.identification.fetch_add(1, Relaxed),
        };
        let sent = match frame.emit(payload, &mut buf) {
            Ok(n) => match buf.get(..n) {
                Some(f) => out.frame(f),
                None => Err(std::io::Error::other("frame longer than its buffer")),
            },
            Err(e) => Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)),
        };
        bump(if sent.is_ok() { &self.stats.link_frames_sent } else { &self.stats.link_frames_failed });
        sent
    }

    /// A gratuitous ARP frame for `ip` at `mac`, from our MAC (RFC 5944 4.6).
    pub fn gratuitous(&self, ip: Ipv4Addr, mac: MacAddr, scratch: &mut Scratch, out: &mut impl Output) {
        match arp::gratuitous_frame(ip, mac, ArpOp::Request, self.mac, &mut scratch.small) {
            Ok(n) => {
                if scratch.small.get(..n).map(|f| out.frame(f)).is_some_and(|r| r.is_ok()) {
                    bump(&self.stats.gratuitous_arps);
                } else {
                    self.stats.count_drop(DropReason::SendFailed);
                }
            }
            Err(e) => debug!("gratuitous ARP not built: {e}"),
        }
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
