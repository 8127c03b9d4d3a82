//! The foreign agent's control plane (RFC 5944 sections 2.3 and 3.7, RFC 3024), sans-IO.
//!
//! Fed registration datagrams, solicitations, ICMP errors and time; returns datagrams to
//! send (to home agents and to mobile nodes on the link), Agent Advertisements, events
//! for the data plane and its next deadline. It opens no socket and reads no clock.

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use mip_core::auth::{append_auth_extension, verify_authenticator, SecurityAssociation};
use mip_core::dataplane::Encapsulation;
use mip_core::time::Time;
use mip_core::wire::{
    ext_type, message_type, RegistrationFlags, RegistrationReplyRepr, RegistrationRequest,
    RegistrationRequestRepr, ReplyCode, REPLY_TYPE, REQUEST_TYPE,
};
use mip_core::REGISTRATION_PORT;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tracing::{debug, info, warn};

use crate::advertise::{Advertisement, Advertiser, Env};
use crate::config::{ForeignAgentConfig, DENIAL_INTERVAL};
use crate::scan::{scan_request, AuthAt, ScanError, Scanned};
use crate::stats::{DiscardReason, FaStats};
use crate::visitors::{DeliveryStyle, Pending, Visitor, VisitorList, VisitorSnapshot};
use crate::MacAddr;

/// "All mobility agents" (RFC 5944 3.6.1.1): requests may be sent here.
pub const ALL_MOBILITY_AGENTS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 11);
/// Most remembered denial times (for the one-per-second rule); past it, denials are
/// rate limited wholesale until entries age out.
const MAX_DENIAL_KEYS: usize = 4096;

/// What the shell knows about a datagram that came from the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkDatagram {
    /// IP source (the home address, or 0.0.0.0) and UDP source port.
    pub source: SocketAddrV4,
    /// IP destination: our address, 224.0.0.11 or 255.255.255.255.
    pub destination: Ipv4Addr,
    /// IP TTL, when known (RFC 3024 code 76).
    pub ttl: Option<u8>,
    /// The Ethernet source of the frame (RFC 5944 3.7.1: kept in the visitor entry).
    pub link_source: Option<MacAddr>,
}

/// A datagram the foreign agent wants sent, always from UDP port 434.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaTransmit {
    /// A relayed request, from our care-of address to the home agent (3.7.2.2).
    ToHomeAgent {
        source: Ipv4Addr,
        destination: SocketAddrV4,
        payload: Vec<u8>,
    },
    /// A relayed reply or our own denial to a mobile node on the link (3.7.2.3). The
    /// IP destination is the node's home address (not on this link) or
    /// 255.255.255.255: the shell MUST send it as a frame to `link_destination` when
    /// given, never through ARP (RFC 5944 4.2.2).
    ToMobileNode {
        source: SocketAddrV4,
        destination: SocketAddrV4,
        link_destination: Option<MacAddr>,
        payload: Vec<u8>,
    },
}

impl FaTransmit {
    pub fn payload(&self) -> &[u8] {
        match self {
            FaTransmit::ToHomeAgent { payload, .. } | FaTransmit::ToMobileNode { payload, .. } => {
                payload
            }
        }
    }
}

/// Why a visitor left the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalReason {
    /// Its home agent accepted a deregistration (lifetime 0).
    Deregistered,
    /// Its lifetime ran out (no message is sent, 3.7).
    Expired,
}

/// A change of the visitor list, for the data plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaEvent {
    /// A visitor is new, or a field the data plane uses changed (an upsert).
    VisitorAdded {
        home_address: Ipv4Addr,
        home_agent: Ipv4Addr,
        care_of_address: Ipv4Addr,
        mac: Option<MacAddr>,
        reverse_tunnel: bool,
        encapsulation: Encapsulation,
        delivery: DeliveryStyle,
        lifetime: u16,
    },
    /// Same registration, new lifetime.
    VisitorRefreshed {
        home_address: Ipv4Addr,
        lifetime: u16,
    },
    VisitorRemoved {
        home_address: Ipv4Addr,
        home_agent: Ipv4Addr,
        reason: RemovalReason,
    },
}

/// Who a denial is counted against for the one-per-second rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum DenialKey {
    Home(Ipv4Addr),
    Link(MacAddr),
    Source(Ipv4Addr),
}

/// Where a reply to a mobile node goes and what it is signed with (3.7.2.3).
pub(crate) struct ReplyRoute {
    pub ip_source: Ipv4Addr,
    pub destination: SocketAddrV4,
    pub link_destination: Option<MacAddr>,
}

pub struct ForeignAgent {
    pub(crate) config: ForeignAgentConfig,
    pub(crate) advertiser: Advertiser,
    pub(crate) pending: Vec<Pending>,
    pub(crate) visitors: VisitorList,
    last_denial: HashMap<DenialKey, Time>,
    pub(crate) transmits: VecDeque<FaTransmit>,
    pub(crate) events: VecDeque<FaEvent>,
    pub(crate) stats: FaStats,
    /// Advertisement jitter (RFC 1256 5.1); seeded by the shell.
    pub(crate) rng: StdRng,
}

impl ForeignAgent {
    /// A foreign agent started at `now` (its first advertisement is due then); jitter
    /// comes from a generator seeded with `rng_seed` (RFC 1256 suggests an address).
    pub fn new(config: ForeignAgentConfig, now: Time, rng_seed: u64) -> Self {
        ForeignAgent {
            advertiser: Advertiser::new(&config, now),
            config,
            pending: Vec::new(),
            visitors: VisitorList::default(),
            last_denial: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: FaStats::default(),
            rng: StdRng::seed_from_u64(rng_seed),
        }
    }

    pub fn config(&self) -> &ForeignAgentConfig {
        &self.config
    }

    pub fn stats(&self) -> &FaStats {
        &self.stats
    }

    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    pub fn visitor_count(&self) -> usize {
        self.visitors.len()
    }

    pub fn visitor(&self, home: Ipv4Addr) -> Option<&Visitor> {
        self.visitors.get(home)
    }

    /// The visitors current at `now`.
    pub fn visitors(&self, now: Time) -> Vec<VisitorSnapshot> {
        let mut v: Vec<VisitorSnapshot> = self
            .visitors
            .iter()
            .filter(|v| v.expires > now)
            .map(|v| v.snapshot(now))
            .collect();
        v.sort_by_key(|s| s.home_address);
        v
    }

    /// A UDP datagram on port 434 without link-layer details: requests are taken as
    /// sent to our care-of address, replies as coming from a home agent.
    pub fn handle_datagram(&mut self, now: Time, source: SocketAddrV4, payload: &[u8]) {
        match message_type(payload) {
            Some(REPLY_TYPE) => self.handle_reply(now, source, payload),
            _ => {
                let info = LinkDatagram {
                    source,
                    destination: self.config.care_of_address,
                    ttl: None,
                    link_source: None,
                };
                self.handle_request(now, &info, payload);
            }
        }
    }

    /// A Registration Request from a mobile node on the link (RFC 5944 3.7.2).
    pub fn handle_request(&mut self, now: Time, info: &LinkDatagram, payload: &[u8]) {
        self.stats.datagrams += 1;
        self.handle_timeout(now);
        if message_type(payload) != Some(REQUEST_TYPE) {
            self.stats.discard(DiscardReason::NotRegistrationMessage);
            return;
        }
        let Ok(repr) = RegistrationRequest::new_checked(payload)
            .and_then(|p| RegistrationRequestRepr::parse(&p))
        else {
            debug!(source = %info.source, "request shorter than its fixed part dropped");
            self.stats.discard(DiscardReason::TruncatedRequest);
            return;
        };
        self.stats.requests += 1;
        let scanned = match scan_request(payload) {
            Ok(s) => s,
            Err(ScanError::UnknownExtension(t)) => {
                debug!(source = %info.source, ext_type = t, "unknown non-skippable extension: request dropped");
                self.stats.discard(DiscardReason::UnknownExtension);
                return;
            }
            Err(ScanError::Malformed(e)) => {
                debug!(source = %info.source, error = %e, "malformed extensions");
                let mobile_sa = self.config.mobile_node_sa(repr.home_address, None).cloned();
                self.deny(
                    now,
                    info,
                    &repr,
                    ReplyCode::FaPoorlyFormedRequest,
                    mobile_sa.as_ref(),
                );
                return;
            }
        };
        let mobile_sa = self
            .config
            .mobile_node_sa(repr.home_address, scanned.nai)
            .cloned();
        // 3.7.2.1: with an association, exactly one valid Mobile-Foreign extension.
        if let Some(sa) = &mobile_sa {
            let valid = scanned.mobile_foreign == 1 && auth_valid(scanned.first_mobile_foreign, sa);
            if !valid {
                self.stats.mobile_node_authentication_failures += 1;
                self.stats.discard(DiscardReason::MobileForeignAuthFailed);
                warn!(source = %info.source, home = %repr.home_address,
                    "security exception: Mobile-Foreign authentication missing, repeated or invalid");
                self.deny(
                    now,
                    info,
                    &repr,
                    ReplyCode::FaMobileNodeFailedAuthentication,
                    Some(sa),
                );
                return;
            }
        }
        if let Some(code) = self.request_denial(&repr, &scanned, info) {
            self.deny(now, info, &repr, code, mobile_sa.as_ref());
            return;
        }
        self.relay(now, info, &repr, &scanned, payload);
    }

    /// The checks of 3.7.2 / 3.7.2.1 and RFC 3024 / 2794 / 3115, in order.
    fn request_denial(
        &self,
        repr: &RegistrationRequestRepr,
        scanned: &Scanned<'_>,
        info: &LinkDatagram,
    ) -> Option<ReplyCode> {
        let c = &self.config;
        let flags = repr.flags;
        if flags.contains(RegistrationFlags::R_RESERVED) || flags.contains(RegistrationFlags::X) {
            return Some(ReplyCode::FaPoorlyFormedRequest);
        }
        // Without the authorization-enabling extension we cannot tell what to relay.
        if scanned.mobile_home_end.is_none() {
            return Some(ReplyCode::FaPoorlyFormedRequest);
        }
        let ha = repr.home_agent;
        if ha.is_unspecified() || ha.is_broadcast() || ha.is_multicast() {
            return Some(ReplyCode::FaMissingHomeAgent);
        }
        if c.is_local(ha) {
            // 3.7.2: we do not serve as a home agent.
            return Some(ReplyCode::FaInvalidHomeAgentAddress);
        }
        if repr.home_address.is_unspecified() {
            if scanned.nai.is_none() {
                return Some(ReplyCode::FaMissingNai);
            }
            if !c.allow_zero_home_address {
                return Some(ReplyCode::FaNonZeroHomeAddressRequired);
            }
        }
        let registering = repr.lifetime != 0;
        if registering {
            if repr.lifetime > c.max_lifetime {
                return Some(ReplyCode::FaLifetimeTooLong);
            }
            if !flags.contains(RegistrationFlags::D) && repr.care_of_address != c.care_of_address {
                return Some(ReplyCode::FaInvalidCareOfAddress);
            }
            if (flags.contains(RegistrationFlags::M) && !c.minimal_encapsulation)
                || (flags.contains(RegistrationFlags::G) && !c.gre_encapsulation)
            {
                return Some(ReplyCode::FaEncapsulationUnavailable);
            }
            let t = flags.contains(RegistrationFlags::T);
            if t && !c.reverse_tunnel {
                return Some(ReplyCode::FaReverseTunnelUnavailable);
            }
            if !t && c.reverse_tunnel_mandatory {
                return Some(ReplyCode::FaReverseTunnelMandatory);
            }
            if t && c.reverse_tunnel_ttl_check && info.ttl.is_some_and(|ttl| ttl != 255) {
                return Some(ReplyCode::FaMobileNodeTooDistant);
            }
            if t && scanned.delivery_style && !c.encapsulating_delivery {
                return Some(ReplyCode::FaDeliveryStyleNotSupported);
            }
        }
        if scanned.critical_vendor_for_us.is_some() {
            return Some(ReplyCode::FaUnsupportedVendorId);
        }
        let full = c.busy || self.visitors.len() >= c.max_visitors;
        if registering && full && !self.knows(repr.home_address, scanned.nai) {
            return Some(ReplyCode::FaInsufficientResources);
        }
        None
    }

    /// A node with a visitor entry or a pending request.
    fn knows(&self, home: Ipv4Addr, nai: Option<&[u8]>) -> bool {
        self.visitors.contains(home) || self.pending_index(home, nai).is_some()
    }

    /// The pending request of the node with this home address (or, for a zero home
    /// address, this NAI).
    fn pending_index(&self, home: Ipv4Addr, nai: Option<&[u8]>) -> Option<usize> {
        self.pending.iter().position(|p| {
            if home.is_unspecified() {
                p.home_address.is_unspecified() && nai.is_some() && p.nai.as_deref() == nai
            } else {
                p.home_address == home
            }
        })
    }

    /// 3.7.2.2: the request up to the Mobile-Home extension, plus our Foreign-Home one.
    fn relay(
        &mut self,
        now: Time,
        info: &LinkDatagram,
        repr: &RegistrationRequestRepr,
        scanned: &Scanned<'_>,
        payload: &[u8],
    ) {
        let c = &self.config;
        let Some(prefix) = scanned.mobile_home_end.and_then(|end| payload.get(..end)) else {
            return;
        };
        let mut out = Vec::with_capacity(prefix.len() + 32);
        out.extend_from_slice(prefix);
        // 3.5.4: never on a deregistration, nor for a care-of address we did not offer.
        if repr.lifetime != 0 && repr.care_of_address == c.care_of_address {
            if let Some(sa) = c.home_agent_sa(repr.home_agent) {
                append_auth_extension(&mut out, ext_type::FOREIGN_HOME_AUTH, sa);
            }
        }
        let destination = SocketAddrV4::new(repr.home_agent, REGISTRATION_PORT);
        let source = c.care_of_address;
        let delivery = if scanned.delivery_style {
            DeliveryStyle::Encapsulating
        } else {
            DeliveryStyle::Direct
        };
        let nai = scanned.nai.map(<[u8]>::to_vec);
        match self.pending_index(repr.home_address, scanned.nai) {
            Some(i) if self.pending[i].identification == repr.identification => {
                // A retransmission: the home agent answers duplicates itself.
                self.stats.retransmissions_relayed += 1;
                if let Some(p) = self.pending.get_mut(i) {
                    p.link_source = info.link_source.or(p.link_source);
                }
                self.transmits.push_back(FaTransmit::ToHomeAgent {
                    source,
                    destination,
                    payload: out,
                });
                return;
            }
            Some(i) => {
                self.pending.remove(i);
                self.stats.pending_replaced += 1;
            }
            None => {}
        }
        if self.pending.len() >= self.config.max_pending {
            let mobile_sa = self
                .config
                .mobile_node_sa(repr.home_address, scanned.nai)
                .cloned();
            self.deny(
                now,
                info,
                repr,
                ReplyCode::FaInsufficientResources,
                mobile_sa.as_ref(),
            );
            return;
        }
        let lifetime = Duration::from_secs(u64::from(repr.lifetime));
        self.pending.push(Pending {
            home_address: repr.home_address,
            nai,
            identification: repr.identification,
            home_agent: repr.home_agent,
            care_of_address: repr.care_of_address,
            flags: repr.flags,
            requested_lifetime: repr.lifetime,
            source: info.source,
            request_destination: info.destination,
            link_source: info.link_source,
            delivery,
            relayed_at: now,
            timeout_at: now + self.config.pending_timeout,
            expires_at: (repr.lifetime != 0 && repr.lifetime != u16::MAX).then(|| now + lifetime),
        });
        self.stats.requests_relayed += 1;
        debug!(home = %repr.home_address, ha = %repr.home_agent, lifetime = repr.lifetime, "request relayed");
        self.transmits.push_back(FaTransmit::ToHomeAgent {
            source,
            destination,
            payload: out,
        });
    }

    /// Where a reply to the sender of a request goes (3.7.2.3).
    pub(crate) fn route_to(
        &self,
        home_address: Ipv4Addr,
        source_port: u16,
        request_destination: Ipv4Addr,
        link: Option<MacAddr>,
    ) -> ReplyRoute {
        let ip_source = if self.config.is_local(request_destination) {
            request_destination
        } else {
            // Sent to 224.0.0.11 (or broadcast): our address on the link instead.
            self.config.care_of_address
        };
        let ip_dst = if home_address.is_unspecified() {
            Ipv4Addr::BROADCAST
        } else {
            home_address
        };
        ReplyRoute {
            ip_source,
            destination: SocketAddrV4::new(ip_dst, source_port),
            link_destination: link,
        }
    }

    /// 3.7.2.3: a denial of our own, fields copied from the request.
    pub(crate) fn deny(
        &mut self,
        now: Time,
        info: &LinkDatagram,
        repr: &RegistrationRequestRepr,
        code: ReplyCode,
        mobile_sa: Option<&SecurityAssociation>,
    ) {
        let lifetime = if code == ReplyCode::FaLifetimeTooLong {
            self.config.max_lifetime
        } else {
            repr.lifetime
        };
        let reply = RegistrationReplyRepr {
            code,
            lifetime,
            home_address: repr.home_address,
            home_agent: repr.home_agent,
            identification: repr.identification,
        };
        let route = self.route_to(
            repr.home_address,
            info.source.port(),
            info.destination,
            info.link_source,
        );
        let key = denial_key(repr.home_address, info.link_source, *info.source.ip());
        self.send_denial(now, key, reply, route, mobile_sa);
    }

    /// Sends a denial unless one went to the same node less than a second ago (3.7.2).
    pub(crate) fn send_denial(
        &mut self,
        now: Time,
        key: DenialKeyRef,
        reply: RegistrationReplyRepr,
        route: ReplyRoute,
        mobile_sa: Option<&SecurityAssociation>,
    ) {
        let key = key.0;
        if let Some(last) = self.last_denial.get(&key) {
            if now.saturating_duration_since(*last) < DENIAL_INTERVAL {
                self.stats.discard(DiscardReason::DenialRateLimited);
                return;
            }
        }
        if self.last_denial.len() >= MAX_DENIAL_KEYS {
            self.stats.discard(DiscardReason::DenialRateLimited);
            return;
        }
        self.last_denial.insert(key, now);
        let code = u8::from(reply.code);
        self.stats.deny(code);
        info!(home = %reply.home_address, code, "registration denied: {}", reply.code.description());
        let mut payload = reply.to_bytes();
        if let Some(sa) = mobile_sa {
            append_auth_extension(&mut payload, ext_type::MOBILE_FOREIGN_AUTH, sa);
        }
        self.push_to_mobile_node(route, payload);
    }

    pub(crate) fn push_to_mobile_node(&mut self, route: ReplyRoute, payload: Vec<u8>) {
        self.transmits.push_back(FaTransmit::ToMobileNode {
            source: SocketAddrV4::new(route.ip_source, REGISTRATION_PORT),
            destination: route.destination,
            link_destination: route.link_destination,
            payload,
        });
    }

    /// An Agent Solicitation (ICMP message, IP header removed) from `source`.
    pub fn handle_solicitation(
        &mut self,
        now: Time,
        source: Ipv4Addr,
        link_source: Option<MacAddr>,
        icmp: &[u8],
    ) {
        self.handle_timeout(now);
        let env = Env {
            config: &self.config,
            rng: &mut self.rng,
            stats: &mut self.stats,
        };
        self.advertiser
            .handle_solicitation(env, now, source, link_source, icmp);
    }

    /// Sends due advertisements, drops stale pending requests (code 78 after the
    /// pending timeout, 3.7.1) and expired visitors (silently, 3.7).
    pub fn handle_timeout(&mut self, now: Time) {
        let env = Env {
            config: &self.config,
            rng: &mut self.rng,
            stats: &mut self.stats,
        };
        self.advertiser.handle_timeout(env, now);
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].deadline() > now {
                i += 1;
                continue;
            }
            let p = self.pending.remove(i);
            if p.expires_at.is_some_and(|e| e < p.timeout_at) {
                self.stats.pending_expired += 1;
                debug!(home = %p.home_address, "pending registration lifetime ran out");
            } else {
                self.stats.pending_timeouts += 1;
                self.deny_pending(now, &p, ReplyCode::FaRegistrationTimeout);
            }
        }
        for v in self.visitors.expire(now) {
            self.stats.visitors_expired += 1;
            self.stats.visitors_removed += 1;
            info!(home = %v.home_address, "visitor expired");
            self.events.push_back(FaEvent::VisitorRemoved {
                home_address: v.home_address,
                home_agent: v.home_agent,
                reason: RemovalReason::Expired,
            });
        }
        self.last_denial
            .retain(|_, t| now.saturating_duration_since(*t) < DENIAL_INTERVAL);
    }

    /// A denial about a relayed request, built from what we kept of it.
    pub(crate) fn deny_pending(&mut self, now: Time, p: &Pending, code: ReplyCode) {
        let reply = RegistrationReplyRepr {
            code,
            lifetime: p.requested_lifetime,
            home_address: p.home_address,
            home_agent: p.home_agent,
            identification: p.identification,
        };
        let route = self.route_to(
            p.home_address,
            p.source.port(),
            p.request_destination,
            p.link_source,
        );
        let key = denial_key(p.home_address, p.link_source, *p.source.ip());
        let sa = self
            .config
            .mobile_node_sa(p.home_address, p.nai.as_deref())
            .cloned();
        self.send_denial(now, key, reply, route, sa.as_ref());
    }

    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<FaTransmit> {
        self.transmits.pop_front()
    }

    #[must_use]
    pub fn poll_advertisement(&mut self) -> Option<Advertisement> {
        self.advertiser.poll()
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<FaEvent> {
        self.events.pop_front()
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Time> {
        [
            self.advertiser.next_deadline(),
            self.pending.iter().map(Pending::deadline).min(),
            self.visitors.next_expiry(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The sequence number the next advertisement will carry.
    pub fn next_advertisement_sequence(&self) -> u16 {
        self.advertiser.upcoming_sequence()
    }
}

/// An opaque denial key, so that other modules can pass one along.
pub(crate) struct DenialKeyRef(DenialKey);

pub(crate) fn denial_key(home: Ipv4Addr, link: Option<MacAddr>, source: Ipv4Addr) -> DenialKeyRef {
    DenialKeyRef(if !home.is_unspecified() {
        DenialKey::Home(home)
    } else if let Some(mac) = link {
        DenialKey::Link(mac)
    } else {
        DenialKey::Source(source)
    })
}

/// Whether an authentication extension verifies under `sa`.
pub(crate) fn auth_valid(auth: Option<AuthAt<'_>>, sa: &SecurityAssociation) -> bool {
    matches!(auth, Some(a) if a.spi == sa.spi
        && verify_authenticator(sa.algorithm, &sa.key, a.covered, a.authenticator))
}
