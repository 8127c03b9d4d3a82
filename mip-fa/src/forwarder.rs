//! The foreign agent's data plane (RFC 5944 4.2.2, RFC 3024), sans-IO.
//!
//! - Tunnel packets from a home agent to our care-of address are decapsulated and the
//!   inner packet is framed to the visitor's link-layer address (no ARP, 4.2.2).
//! - Packets a visitor sends (captured from the link by its source MAC and home
//!   address) are reverse-tunnelled to its home agent when it registered with T, or
//!   else routed: TTL decremented, checksum fixed, handed back for normal routing.
//!
//! Every call writes into a buffer the caller sized once ([`BUFFER_LEN`]); nothing here
//! allocates per packet. Each drop has a counter.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use mip_core::dataplane::ethernet::{self, ETHERTYPE_IPV4};
use mip_core::dataplane::icmp_error;
use mip_core::dataplane::ipv4;
use mip_core::dataplane::{
    decapsulate, encapsulate, DataplaneError, DropReason, EncapOutcome, Encapsulation,
    TunnelParams, ENCAP_BUFFER_LEN,
};
use serde::Serialize;

use crate::foreign_agent::FaEvent;
use crate::visitors::DeliveryStyle;
use crate::MacAddr;

/// Output buffer size for every call: any encapsulated packet or set of fragments,
/// plus an Ethernet header.
pub const BUFFER_LEN: usize = ENCAP_BUFFER_LEN + ethernet::HEADER_LEN;

/// Why the data plane dropped a packet. Each has a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataDrop {
    /// A tunnel packet that does not decapsulate (bad header, checksum, GRE flags ...).
    TunnelMalformed,
    /// A tunnel packet whose outer destination is not our care-of address.
    TunnelNotForUs,
    /// Inner destination not in the visitor list (4.2.2: silently discard, no ICMP).
    TunnelNoVisitor,
    /// Outer source is not the visitor's home agent.
    TunnelWrongSource,
    /// A visitor whose link-layer address we never learnt.
    NoLinkAddress,
    /// Inner TTL 0 (RFC 2003 3.1).
    TtlExpired,
    /// A packet from a visitor's home address but another MAC (RFC 3024: hijacking).
    VisitorMacMismatch,
    /// A visitor's packet that does not parse.
    VisitorMalformed,
    /// RFC 2003 3.2 loop, or minimal encapsulation of a fragment.
    EncapsulationRefused,
    /// A packet encapsulated to us by a visitor that did not register that style.
    UnexpectedEncapsulation,
    /// A frame too large for our buffers.
    TooLarge,
}

/// Packet and byte counters of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

impl Counter {
    fn add(&mut self, len: usize) {
        self.packets += 1;
        self.bytes += len as u64;
    }
}

/// What the data plane did, in total.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DataPlaneStats {
    /// Tunnel packets received for our care-of address.
    pub tunnel_received: Counter,
    /// Decapsulated packets framed to a visitor.
    pub delivered: Counter,
    /// Visitor packets sent to a home agent through the reverse tunnel.
    pub reverse_tunnelled: Counter,
    /// Visitor packets routed natively (no T bit).
    pub routed: Counter,
    /// ICMP errors sent back to visitors (fragmentation needed, time exceeded).
    pub icmp_to_visitors: u64,
    pub dropped: BTreeMap<DataDrop, u64>,
}

impl DataPlaneStats {
    fn drop(&mut self, why: DataDrop) {
        *self.dropped.entry(why).or_default() += 1;
    }

    pub fn dropped(&self, why: DataDrop) -> u64 {
        self.dropped.get(&why).copied().unwrap_or(0)
    }
}

/// One visitor as the data plane sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    pub home_agent: Ipv4Addr,
    #[serde(skip)]
    pub mac: Option<MacAddr>,
    pub reverse_tunnel: bool,
    #[serde(skip)]
    pub encapsulation: Encapsulation,
    pub delivery: DeliveryStyle,
    /// Decapsulated and framed to the visitor.
    pub to_visitor: Counter,
    /// Reverse-tunnelled or routed for the visitor.
    pub from_visitor: Counter,
}

/// What to do with a tunnel packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelVerdict {
    /// `out[..len]` is an Ethernet frame for the visitor: send it on the link.
    Deliver {
        len: usize,
        home_address: Ipv4Addr,
    },
    /// A visitor's own packet encapsulated to us (encapsulating delivery): it is
    /// handled where frames from the link are, not here.
    FromVisitor,
    Dropped(DataDrop),
}

/// What to do with an IPv4 packet captured from the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkVerdict {
    /// Not from a visitor: not ours to forward.
    NotVisitor,
    /// From a visitor, addressed to us, broadcast or multicast: the kernel has it.
    Local,
    /// `out[..len]` holds `count` IPv4 packets back to back for `to` (raw socket).
    ReverseTunnel {
        to: Ipv4Addr,
        len: usize,
        count: usize,
    },
    /// `out[..len]` is the packet with its TTL decremented: send it for routing.
    Route {
        len: usize,
    },
    /// `out[..len]` is an Ethernet frame with an ICMP error for the visitor.
    IcmpToVisitor {
        len: usize,
    },
    Dropped(DataDrop),
}

/// The foreign agent's packet forwarding state.
#[derive(Debug)]
pub struct Forwarder {
    care_of_address: Ipv4Addr,
    local_addresses: Vec<Ipv4Addr>,
    our_mac: MacAddr,
    params: TunnelParams,
    routes: HashMap<Ipv4Addr, Route>,
    stats: DataPlaneStats,
    /// For encapsulating delivery: the visitor's inner packet, sized once.
    scratch: Vec<u8>,
}

impl Forwarder {
    pub fn new(
        care_of_address: Ipv4Addr,
        local_addresses: Vec<Ipv4Addr>,
        our_mac: MacAddr,
        tunnel_mtu: u16,
    ) -> Self {
        Forwarder {
            care_of_address,
            local_addresses,
            our_mac,
            params: TunnelParams {
                tunnel_mtu,
                outer_ttl: 64,
                forwarding: true,
                identification: 0,
            },
            routes: HashMap::new(),
            stats: DataPlaneStats::default(),
            scratch: vec![0u8; ENCAP_BUFFER_LEN],
        }
    }

    pub fn stats(&self) -> &DataPlaneStats {
        &self.stats
    }

    pub fn route(&self, home: Ipv4Addr) -> Option<&Route> {
        self.routes.get(&home)
    }

    pub fn routes(&self) -> impl Iterator<Item = (&Ipv4Addr, &Route)> {
        self.routes.iter()
    }

    /// Follows the control plane.
    pub fn apply(&mut self, event: &FaEvent) {
        match *event {
            FaEvent::VisitorAdded {
                home_address,
                home_agent,
                mac,
                reverse_tunnel,
                encapsulation,
                delivery,
                ..
            } => {
                let counters = self
                    .routes
                    .get(&home_address)
                    .map(|r| (r.to_visitor, r.from_visitor));
                let (to_visitor, from_visitor) = counters.unwrap_or_default();
                self.routes.insert(
                    home_address,
                    Route {
                        home_agent,
                        mac,
                        reverse_tunnel,
                        encapsulation,
                        delivery,
                        to_visitor,
                        from_visitor,
                    },
                );
            }
            FaEvent::VisitorRefreshed { .. } => {}
            FaEvent::VisitorRemoved { home_address, .. } => {
                self.routes.remove(&home_address);
            }
        }
    }

    fn is_local(&self, a: Ipv4Addr) -> bool {
        a == self.care_of_address || self.local_addresses.contains(&a)
    }

    /// A tunnel packet (outer IPv4 header first) that reached us (RFC 5944 4.2.2).
    pub fn from_tunnel(&mut self, outer: &[u8], out: &mut [u8]) -> TunnelVerdict {
        let verdict = self.tunnel_inner(outer, out);
        if let TunnelVerdict::Dropped(why) = verdict {
            self.stats.drop(why);
        }
        verdict
    }

    fn tunnel_inner(&mut self, outer: &[u8], out: &mut [u8]) -> TunnelVerdict {
        if let Ok(o) = ipv4::parse(outer) {
            if self.routes.contains_key(&o.src) {
                return TunnelVerdict::FromVisitor;
            }
        }
        self.stats.tunnel_received.add(outer.len());
        let Some(body) = out.get_mut(ethernet::HEADER_LEN..) else {
            return TunnelVerdict::Dropped(DataDrop::TooLarge);
        };
        let d = match decapsulate(outer, body) {
            Ok(d) => d,
            Err(DataplaneError::TtlExpired) => return TunnelVerdict::Dropped(DataDrop::TtlExpired),
            Err(DataplaneError::BufferTooSmall { .. }) => {
                return TunnelVerdict::Dropped(DataDrop::TooLarge)
            }
            Err(_) => return TunnelVerdict::Dropped(DataDrop::TunnelMalformed),
        };
        if !self.is_local(d.outer_dst) {
            return TunnelVerdict::Dropped(DataDrop::TunnelNotForUs);
        }
        // 4.2.2: only to a visitor; anything else would loop. No ICMP error either.
        let Some(route) = self.routes.get_mut(&d.inner_dst) else {
            return TunnelVerdict::Dropped(DataDrop::TunnelNoVisitor);
        };
        // 4.2.3: the home agent tunnels from the address it registered the node with.
        if d.outer_src != route.home_agent {
            return TunnelVerdict::Dropped(DataDrop::TunnelWrongSource);
        }
        let Some(mac) = route.mac else {
            return TunnelVerdict::Dropped(DataDrop::NoLinkAddress);
        };
        let len = ethernet::HEADER_LEN + d.inner_len;
        let padded = len.max(ethernet::MIN_FRAME_LEN);
        let Some(frame) = out.get_mut(..padded) else {
            return TunnelVerdict::Dropped(DataDrop::TooLarge);
        };
        if ethernet::write_header(mac, self.our_mac, ETHERTYPE_IPV4, frame).is_err() {
            return TunnelVerdict::Dropped(DataDrop::TooLarge);
        }
        frame.get_mut(len..).unwrap_or_default().fill(0);
        route.to_visitor.add(d.inner_len);
        self.stats.delivered.add(d.inner_len);
        TunnelVerdict::Deliver {
            len: padded,
            home_address: d.inner_dst,
        }
    }

    /// An IPv4 packet in a frame from `src_mac` captured on the visitor link.
    pub fn from_link(&mut self, src_mac: MacAddr, pkt: &[u8], out: &mut [u8]) -> LinkVerdict {
        let verdict = self.link_inner(src_mac, pkt, out);
        if let LinkVerdict::Dropped(why) = verdict {
            self.stats.drop(why);
        }
        verdict
    }

    fn link_inner(&mut self, src_mac: MacAddr, pkt: &[u8], out: &mut [u8]) -> LinkVerdict {
        let Ok(info) = ipv4::parse(pkt) else {
            return LinkVerdict::NotVisitor;
        };
        let Some(route) = self.routes.get(&info.src) else {
            return LinkVerdict::NotVisitor;
        };
        // RFC 3024 5: a packet claiming a visitor's address from another station.
        if route.mac != Some(src_mac) {
            return LinkVerdict::Dropped(DataDrop::VisitorMacMismatch);
        }
        let home = info.src;
        let dst = info.dst;
        let ours = self.is_local(dst) || dst.is_broadcast() || dst.is_multicast();
        if ours {
            let tunnel = Encapsulation::from_protocol(info.protocol);
            if !(self.is_local(dst) && tunnel.is_some()) {
                return LinkVerdict::Local;
            }
            // Encapsulating delivery style (RFC 3024): unwrap, then reverse-tunnel.
            if route.delivery != DeliveryStyle::Encapsulating || !route.reverse_tunnel {
                return LinkVerdict::Dropped(DataDrop::UnexpectedEncapsulation);
            }
            let mut scratch = std::mem::take(&mut self.scratch);
            let verdict = match decapsulate(pkt, &mut scratch) {
                Ok(d) if d.inner_src == home => {
                    let inner = scratch.get(..d.inner_len).unwrap_or_default();
                    self.reverse_tunnel(home, inner, false, out)
                }
                Ok(_) => LinkVerdict::Dropped(DataDrop::UnexpectedEncapsulation),
                Err(_) => LinkVerdict::Dropped(DataDrop::VisitorMalformed),
            };
            self.scratch = scratch;
            return verdict;
        }
        if route.reverse_tunnel {
            return self.reverse_tunnel(home, pkt, true, out);
        }
        self.route_natively(home, pkt, info, out)
    }

    /// RFC 3024: from our care-of address to the home agent, in the visitor's
    /// encapsulation.
    fn reverse_tunnel(
        &mut self,
        home: Ipv4Addr,
        pkt: &[u8],
        forwarding: bool,
        out: &mut [u8],
    ) -> LinkVerdict {
        let Some(route) = self.routes.get_mut(&home) else {
            return LinkVerdict::NotVisitor;
        };
        let params = TunnelParams {
            forwarding,
            ..self.params
        };
        self.params.identification = self.params.identification.wrapping_add(1);
        let (kind, ha, our_mac) = (route.encapsulation, route.home_agent, self.our_mac);
        match encapsulate(kind, pkt, self.care_of_address, ha, &params, out) {
            EncapOutcome::Encapsulated { len } => {
                route.from_visitor.add(pkt.len());
                self.stats.reverse_tunnelled.add(pkt.len());
                LinkVerdict::ReverseTunnel {
                    to: ha,
                    len,
                    count: 1,
                }
            }
            EncapOutcome::Fragmented { len, count } => {
                route.from_visitor.add(pkt.len());
                self.stats.reverse_tunnelled.add(pkt.len());
                LinkVerdict::ReverseTunnel { to: ha, len, count }
            }
            EncapOutcome::FragmentationNeeded { next_hop_mtu } => {
                let mac = route.mac;
                self.icmp_to_visitor(mac, our_mac, DataDrop::TooLarge, out, |coa, body| {
                    icmp_error::fragmentation_needed(pkt, coa, next_hop_mtu, body)
                })
            }
            EncapOutcome::Dropped(DropReason::TtlExpired) => {
                let mac = route.mac;
                self.icmp_to_visitor(mac, our_mac, DataDrop::TtlExpired, out, |coa, body| {
                    icmp_error::time_exceeded(pkt, coa, body)
                })
            }
            EncapOutcome::Dropped(DropReason::Malformed(_)) => {
                LinkVerdict::Dropped(DataDrop::VisitorMalformed)
            }
            EncapOutcome::Dropped(_) => LinkVerdict::Dropped(DataDrop::EncapsulationRefused),
        }
    }

    /// 4.2.2: verify the header checksum (parse did), decrement the TTL, recompute.
    fn route_natively(
        &mut self,
        home: Ipv4Addr,
        pkt: &[u8],
        info: ipv4::Ipv4Info,
        out: &mut [u8],
    ) -> LinkVerdict {
        let our_mac = self.our_mac;
        let Some(route) = self.routes.get_mut(&home) else {
            return LinkVerdict::NotVisitor;
        };
        if info.ttl <= 1 {
            let mac = route.mac;
            return self.icmp_to_visitor(mac, our_mac, DataDrop::TtlExpired, out, |coa, body| {
                icmp_error::time_exceeded(pkt, coa, body)
            });
        }
        let Some(src) = pkt.get(..info.total_len) else {
            return LinkVerdict::Dropped(DataDrop::VisitorMalformed);
        };
        let Some(dst) = out.get_mut(..info.total_len) else {
            return LinkVerdict::Dropped(DataDrop::TooLarge);
        };
        dst.copy_from_slice(src);
        if ipv4::set_ttl(dst, info.header_len, info.ttl - 1).is_err() {
            return LinkVerdict::Dropped(DataDrop::VisitorMalformed);
        }
        route.from_visitor.add(info.total_len);
        self.stats.routed.add(info.total_len);
        LinkVerdict::Route {
            len: info.total_len,
        }
    }

    /// Frames an ICMP error to the visitor: `build` writes the whole IPv4 packet, from
    /// our care-of address, after the Ethernet header. When no error may be sent
    /// (RFC 1812 4.3.2.7) the packet is dropped as `why`.
    fn icmp_to_visitor(
        &mut self,
        mac: Option<MacAddr>,
        our_mac: MacAddr,
        why: DataDrop,
        out: &mut [u8],
        build: impl FnOnce(Ipv4Addr, &mut [u8]) -> mip_core::dataplane::Result<usize>,
    ) -> LinkVerdict {
        let Some(mac) = mac else {
            return LinkVerdict::Dropped(DataDrop::NoLinkAddress);
        };
        let Some(body) = out.get_mut(ethernet::HEADER_LEN..) else {
            return LinkVerdict::Dropped(DataDrop::TooLarge);
        };
        let Ok(n) = build(self.care_of_address, body) else {
            return LinkVerdict::Dropped(why);
        };
        let len = (ethernet::HEADER_LEN + n).max(ethernet::MIN_FRAME_LEN);
        let Some(frame) = out.get_mut(..len) else {
            return LinkVerdict::Dropped(DataDrop::TooLarge);
        };
        if ethernet::write_header(mac, our_mac, ETHERTYPE_IPV4, frame).is_err() {
            return LinkVerdict::Dropped(DataDrop::TooLarge);
        }
        frame
            .get_mut(ethernet::HEADER_LEN + n..)
            .unwrap_or_default()
            .fill(0);
        self.stats.icmp_to_visitors += 1;
        LinkVerdict::IcmpToVisitor { len }
    }
}
