//! The home agent's registration processing (RFC 5944 section 3.8), sans-IO.
//!
//! Fed datagrams and time; returns replies, events and its next deadline. It opens no
//! socket and reads no clock.

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use mip_core::auth::{append_auth_extension, verify_authenticator, ReplayMethod, SecurityAssociation};
use mip_core::replay;
use mip_core::time::Time;
use mip_core::wire::notification::NOTIFICATION_ACK_TYPE;
use mip_core::wire::{
    ext_type, message_type, RegistrationFlags, RegistrationReplyRepr, ReplyCode, REQUEST_TYPE,
};
use mip_core::Transmit;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tracing::{debug, info, warn};

use crate::bindings::{Binding, BindingSnapshot, BindingTable, TunnelKind};
use crate::config::{HomeAgentConfig, MobileNodeEntry};
use crate::request::{scan, AuthAt, ScanError, ScannedRequest};
use crate::sid::{SidState, TransferEnd};
use crate::stats::{DiscardReason, HaStats};

/// A change of the binding list, for the data plane and for logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum HaEvent {
    BindingAdded {
        home_address: Ipv4Addr,
        care_of_address: Ipv4Addr,
        lifetime: u16,
        tunnel: TunnelKind,
        reverse_tunnel: bool,
        /// The mobile node had no binding before: it just left home (RFC 5944 4.6).
        first_for_home: bool,
    },
    /// A binding renewed; the tunnel and T may change with the new request's flags.
    BindingRefreshed {
        home_address: Ipv4Addr,
        care_of_address: Ipv4Addr,
        lifetime: u16,
        tunnel: TunnelKind,
        reverse_tunnel: bool,
    },
    BindingRemoved {
        home_address: Ipv4Addr,
        care_of_address: Ipv4Addr,
        reason: RemovalReason,
        /// No binding is left: the mobile node is at home again.
        last_for_home: bool,
    },
    BindingExpired { home_address: Ipv4Addr, care_of_address: Ipv4Addr, last_for_home: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalReason {
    /// Lifetime 0 from the mobile node.
    Deregistered,
    /// A new registration without the S bit replaced it.
    Replaced,
    /// An administrator revoked it.
    Revoked,
    /// The Transferring Node of a SID transfer demanded that it stop.
    StopTransfer,
}

/// Per mobile node replay state, kept apart from bindings so that it outlives them:
/// an old request must stay stale after its binding expired.
#[derive(Debug, Default, Clone)]
struct ReplayState {
    last_timestamp: Option<u64>,
    /// The nonce we last gave this node (5.7.2).
    nonce: Option<u32>,
}

/// Everything a reply needs besides its code and lifetime.
pub(crate) struct ReplyContext<'a> {
    pub destination: SocketAddrV4,
    pub home_address: Ipv4Addr,
    pub home_agent: Ipv4Addr,
    pub identification: u64,
    pub mobile_sa: &'a SecurityAssociation,
    pub foreign_sa: Option<&'a SecurityAssociation>,
}

pub struct HomeAgent {
    pub(crate) config: HomeAgentConfig,
    by_home: HashMap<Ipv4Addr, usize>,
    by_nai: HashMap<Vec<u8>, usize>,
    replay: Vec<ReplayState>,
    pub(crate) bindings: BindingTable,
    pub(crate) transmits: VecDeque<Transmit>,
    pub(crate) events: VecDeque<HaEvent>,
    pub(crate) stats: HaStats,
    /// Nonces must be unguessable (5.7.2): a CSPRNG, seeded by the shell.
    rng: StdRng,
    /// Session Inter-Device transfers and wake-ups (crate::sid).
    pub(crate) sid: SidState,
}

impl HomeAgent {
    /// A home agent whose nonces (5.7.2) come from a generator seeded with `rng_seed`:
    /// for tests and simulations. The daemon uses [`with_rng`](Self::with_rng).
    pub fn new(config: HomeAgentConfig, rng_seed: u64) -> Self {
        Self::with_rng(config, StdRng::seed_from_u64(rng_seed))
    }

    pub fn with_rng(config: HomeAgentConfig, rng: StdRng) -> Self {
        let mut by_home = HashMap::new();
        let mut by_nai = HashMap::new();
        for (i, mn) in config.mobile_nodes.iter().enumerate() {
            if let Some(h) = mn.home_address {
                by_home.insert(h, i);
            }
            if let Some(n) = &mn.nai {
                by_nai.insert(n.as_bytes().to_vec(), i);
            }
        }
        HomeAgent {
            replay: vec![ReplayState::default(); config.mobile_nodes.len()],
            config,
            by_home,
            by_nai,
            bindings: BindingTable::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: HaStats::default(),
            rng,
            sid: SidState::default(),
        }
    }

    pub fn config(&self) -> &HomeAgentConfig {
        &self.config
    }

    pub fn stats(&self) -> &HaStats {
        &self.stats
    }

    pub fn binding_count(&self) -> usize {
        self.bindings.len()
    }

    /// A datagram that arrived on the registration port, addressed to the home agent.
    pub fn handle_datagram(&mut self, now: Time, source: SocketAddrV4, payload: &[u8]) {
        let to = self.config.address;
        self.handle_datagram_to(now, source, to, payload);
    }

    /// Like [`handle_datagram`](Self::handle_datagram), with the IP destination of the
    /// datagram, so that requests sent to a broadcast address get code 136 (3.8.2.1).
    pub fn handle_datagram_to(
        &mut self,
        now: Time,
        source: SocketAddrV4,
        destination: Ipv4Addr,
        payload: &[u8],
    ) {
        self.stats.datagrams += 1;
        // Expire first so that a request never sees a binding past its lifetime.
        self.handle_timeout(now);
        let sid_org = self.config.sid.enabled.then_some(self.config.sid.org_id);
        if sid_org.is_some() && message_type(payload) == Some(NOTIFICATION_ACK_TYPE) {
            self.handle_wake_up_ack(now, source, payload);
            return;
        }
        if message_type(payload) != Some(REQUEST_TYPE) {
            self.stats.discard(DiscardReason::NotARequest);
            return;
        }
        let request = match scan(payload, sid_org) {
            Ok(r) => r,
            Err(ScanError::Malformed(e)) => {
                debug!(%source, error = %e, "malformed registration request dropped");
                self.stats.discard(DiscardReason::Malformed);
                return;
            }
            Err(ScanError::UnknownExtension(t)) => {
                debug!(%source, ext_type = t, "unknown non-skippable extension: request dropped");
                self.stats.discard(DiscardReason::UnknownExtension);
                return;
            }
        };
        self.stats.requests += 1;
        self.process(now, source, destination, &request);
    }

    fn find_mobile_node(&self, request: &ScannedRequest<'_>) -> Option<usize> {
        let home = request.repr.home_address;
        if !home.is_unspecified() {
            if let Some(&i) = self.by_home.get(&home) {
                return Some(i);
            }
        }
        request.nai.and_then(|n| self.by_nai.get(n).copied())
    }

    fn process(
        &mut self,
        now: Time,
        source: SocketAddrV4,
        destination: Ipv4Addr,
        request: &ScannedRequest<'_>,
    ) {
        let repr = &request.repr;
        // 3.8.2.1 a: no association, or no authorization-enabling extension: silence.
        let Some(mn_index) = self.find_mobile_node(request) else {
            warn!(%source, home = %repr.home_address, "request from a mobile node without a security association dropped");
            self.stats.discard(DiscardReason::NoSecurityAssociation);
            return;
        };
        let Some(mh_auth) = request.mobile_home_auth else {
            warn!(%source, home = %repr.home_address, "request without Mobile-Home authentication dropped");
            self.stats.discard(DiscardReason::NoAuthenticator);
            return;
        };
        // SID: the Target of a running transfer authenticates under the session SPI.
        if self.sid.by_session_spi(repr.home_address, mh_auth.spi).is_some() {
            self.process_target(now, source, destination, request, mh_auth);
            return;
        }
        let mn = &self.config.mobile_nodes[mn_index];
        let foreign_sa = self
            .config
            .foreign_agents
            .iter()
            .find(|fa| fa.address == *source.ip())
            .map(|fa| fa.sa.clone());
        let foreign_auth_valid = |auth: Option<AuthAt<'_>>| {
            matches!((auth, &foreign_sa), (Some(a), Some(sa)) if a.spi == sa.spi
                && verify_authenticator(sa.algorithm, &sa.key, a.covered, a.authenticator))
        };
        let reply_home = if repr.home_address.is_unspecified() {
            mn.home_address.unwrap_or(Ipv4Addr::UNSPECIFIED)
        } else {
            repr.home_address
        };

        let mobile_sa = mn.sa(mh_auth.spi).filter(|sa| {
            verify_authenticator(sa.algorithm, &sa.key, mh_auth.covered, mh_auth.authenticator)
        });
        let Some(mobile_sa) = mobile_sa.cloned() else {
            self.stats.authentication_failures += 1;
            warn!(%source, home = %repr.home_address, spi = mh_auth.spi,
                "security exception: Mobile-Home authenticator failed");
            let must_reply = request.foreign_home_auths == 1
                && foreign_auth_valid(request.first_foreign_home_auth);
            if !(must_reply || self.config.reply_to_failed_authentication) {
                self.stats.discard(DiscardReason::FailedAuthenticationSilently);
                return;
            }
            // The reply carries nothing beyond the request's own fields, and is signed
            // with an association the node is likely to hold: the one it named, else
            // its first (3.8.2.1 a).
            let sa = mn.sa(mh_auth.spi).unwrap_or(&mn.security_associations[0]).clone();
            let ctx = ReplyContext {
                destination: source,
                home_address: repr.home_address,
                home_agent: self.reply_home_agent(repr.home_agent),
                identification: repr.identification,
                mobile_sa: &sa,
                foreign_sa: foreign_sa.as_ref(),
            };
            self.deny(&ctx, ReplyCode::MobileNodeFailedAuthentication);
            return;
        };

        let mut ctx = ReplyContext {
            destination: source,
            home_address: reply_home,
            home_agent: self.reply_home_agent(repr.home_agent),
            identification: repr.identification,
            mobile_sa: &mobile_sa,
            foreign_sa: foreign_sa.as_ref(),
        };

        // 3.8.2.2: a retransmission of the request that created a current binding gets
        // the same answer, without extending the lifetime first granted.
        if repr.lifetime != 0 {
            if let Some(b) = self.bindings.find(reply_home, repr.care_of_address) {
                if b.request_identification == repr.identification && b.mobile_node == mn_index {
                    let remaining = u16::try_from(b.remaining(now).as_secs()).unwrap_or(u16::MAX);
                    ctx.identification = b.reply_identification;
                    let code = self.accept_code(b.flags);
                    self.stats.duplicates += 1;
                    self.send_reply(&ctx, code, remaining.min(b.granted_lifetime));
                    return;
                }
            }
        }

        // 3.8.2.1 b: identification (5.7).
        let state = &mut self.replay[mn_index];
        let fresh = match mobile_sa.replay {
            ReplayMethod::Timestamp => {
                let verdict = replay::check_timestamp(
                    repr.identification,
                    now,
                    self.config.replay_window,
                    state.last_timestamp,
                );
                if verdict == replay::ReplayVerdict::Fresh {
                    state.last_timestamp = Some(repr.identification);
                    true
                } else {
                    ctx.identification =
                        replay::timestamp_resync_identification(repr.identification, now);
                    false
                }
            }
            ReplayMethod::Nonce => {
                let ok = replay::nonce_request_matches(repr.identification, state.nonce);
                let next: u32 = self.rng.gen();
                state.nonce = Some(next);
                ctx.identification = if ok {
                    replay::nonce_reply_identification(repr.identification, next)
                } else {
                    replay::nonce_mismatch_reply_identification(repr.identification, next)
                };
                ok
            }
        };
        if !fresh {
            warn!(%source, home = %repr.home_address, id = format_args!("{:#018x}", repr.identification),
                "security exception: registration identification mismatch");
            self.deny(&ctx, ReplyCode::IdentificationMismatch);
            return;
        }

        // 3.8.2.1 c and d: the foreign agent's authentication.
        if foreign_sa.is_some() {
            if repr.lifetime != 0
                && !(request.foreign_home_auths == 1
                    && foreign_auth_valid(request.first_foreign_home_auth))
            {
                warn!(%source, "security exception: Foreign-Home authentication missing or invalid");
                self.deny(&ctx, ReplyCode::ForeignAgentFailedAuthentication);
                return;
            }
        } else if request.foreign_home_auths > 0 {
            warn!(%source, "security exception: Foreign-Home authentication from an agent without an association");
            self.stats.discard(DiscardReason::UnexpectedForeignHomeAuth);
            return;
        }

        if let Some(code) = self.policy_denial(request, destination, mn) {
            self.deny(&ctx, code);
            return;
        }
        // SID elements make it a transfer or a stop-transfer demand of the TN.
        match &request.sid {
            Some(Err(e)) => {
                info!(%source, home = %repr.home_address, error = %e, "SID request refused");
                self.stats.sid.refused += 1;
                self.deny(&ctx, e.reply_code());
                return;
            }
            Some(Ok(elements)) if !elements.is_empty() => {
                self.process_transferring_node(now, source, request, mn_index, &ctx, elements);
                return;
            }
            _ => {}
        }
        if repr.lifetime == 0 {
            self.deregister(now, reply_home, repr.care_of_address);
            self.stats.deregistrations += 1;
            let code = self.accept_code(repr.flags);
            self.send_reply(&ctx, code, 0);
            return;
        }
        match self.register(now, mn_index, reply_home, source, request, ctx.identification) {
            Ok(granted) => {
                self.stats.accepted += 1;
                let code = self.accept_code(repr.flags);
                self.send_reply(&ctx, code, granted);
            }
            Err(code) => self.deny(&ctx, code),
        }
    }

    /// The checks of 3.8.2.1 (broadcast), 3.8.2.3 and 3.8.3.2 that do not depend on
    /// the binding list, in the order a careful reader of the request would notice them.
    pub(crate) fn policy_denial(
        &self,
        request: &ScannedRequest<'_>,
        destination: Ipv4Addr,
        mn: &MobileNodeEntry,
    ) -> Option<ReplyCode> {
        let repr = &request.repr;
        if repr.flags.contains(RegistrationFlags::R_RESERVED) || repr.flags.contains(RegistrationFlags::X) {
            return Some(ReplyCode::PoorlyFormedRequest);
        }
        if destination == self.config.home_broadcast() || destination.is_broadcast() {
            return Some(ReplyCode::UnknownHomeAgentAddress);
        }
        if repr.home_agent != self.config.address {
            return Some(ReplyCode::UnknownHomeAgentAddress);
        }
        let home = repr.home_address;
        match (home.is_unspecified(), mn.home_address) {
            (false, Some(configured)) if configured != home => {
                return Some(ReplyCode::AdministrativelyProhibited)
            }
            (false, None) => return Some(ReplyCode::AdministrativelyProhibited),
            (true, None) => return Some(ReplyCode::InsufficientResources),
            _ => {}
        }
        if request.mobile_critical_vendor.is_some() {
            return Some(ReplyCode::from(ext_code::UNSUPPORTED_MN_HA_CVSE));
        }
        if request.foreign_critical_vendor.is_some() {
            return Some(ReplyCode::from(ext_code::UNSUPPORTED_FA_HA_CVSE));
        }
        if repr.lifetime != 0 {
            if repr.flags.contains(RegistrationFlags::T) && !self.config.reverse_tunnel {
                return Some(ReplyCode::ReverseTunnelUnavailable);
            }
            if (repr.flags.contains(RegistrationFlags::M) && !self.config.minimal_encapsulation)
                || (repr.flags.contains(RegistrationFlags::G) && !self.config.gre_encapsulation)
            {
                return Some(ReplyCode::EncapsulationUnavailable);
            }
        }
        None
    }

    /// 3.8.3.2: the Home Agent field is copied when it is ours, else ours is put in.
    pub(crate) fn reply_home_agent(&self, requested: Ipv4Addr) -> Ipv4Addr {
        if requested == self.config.address {
            requested
        } else {
            self.config.address
        }
    }

    /// 3.8.2.2: code 1 tells a node that asked for simultaneous bindings that it did
    /// not get them.
    fn accept_code(&self, flags: RegistrationFlags) -> ReplyCode {
        if flags.contains(RegistrationFlags::S) && self.config.simultaneous_bindings <= 1 {
            ReplyCode::AcceptedNoSimultaneousBindings
        } else {
            ReplyCode::Accepted
        }
    }

    fn register(
        &mut self,
        now: Time,
        mn_index: usize,
        home: Ipv4Addr,
        source: SocketAddrV4,
        request: &ScannedRequest<'_>,
        reply_identification: u64,
    ) -> Result<u16, ReplyCode> {
        let repr = &request.repr;
        let coa = repr.care_of_address;
        let simultaneous =
            repr.flags.contains(RegistrationFlags::S) && self.config.simultaneous_bindings > 1;
        let existing = self.bindings.for_home(home);
        let had_any = !existing.is_empty();
        let is_new_coa = !existing.iter().any(|b| b.care_of_address == coa);
        if simultaneous && is_new_coa && existing.len() >= usize::from(self.config.simultaneous_bindings) {
            return Err(ReplyCode::TooManySimultaneousBindings);
        }
        // Entries this request frees: all others when it replaces them.
        let freed = if simultaneous { 0 } else { existing.len().saturating_sub(usize::from(!is_new_coa)) };
        if is_new_coa && self.bindings.len() - freed >= self.config.max_bindings {
            return Err(ReplyCode::InsufficientResources);
        }
        // The node may ask for less than our maximum, never more; 0xffff (infinity)
        // is capped the same way.
        let granted = repr.lifetime.min(self.config.max_lifetime);
        // A TN that registers a care-of address of its own is back in charge: its
        // transfer ends without a wake-up.
        self.sid_supersede(now, home);
        if !simultaneous {
            for old in self.bindings.remove_others(home, coa) {
                self.stats.bindings_removed += 1;
                self.events.push_back(HaEvent::BindingRemoved {
                    home_address: home,
                    care_of_address: old.care_of_address,
                    reason: RemovalReason::Replaced,
                    last_for_home: false,
                });
            }
        }
        let binding = Binding {
            home_address: home,
            care_of_address: coa,
            reply_identification,
            request_identification: repr.identification,
            flags: repr.flags,
            granted_lifetime: granted,
            registered_at: now,
            expires: now + Duration::from_secs(u64::from(granted)),
            request_source: source,
            mobile_node: mn_index,
        };
        let event = if self.bindings.upsert(binding) {
            self.stats.bindings_added += 1;
            info!(%home, %coa, lifetime = granted, "binding added");
            HaEvent::BindingAdded {
                home_address: home,
                care_of_address: coa,
                lifetime: granted,
                tunnel: TunnelKind::from_flags(repr.flags),
                reverse_tunnel: repr.flags.contains(RegistrationFlags::T),
                first_for_home: !had_any,
            }
        } else {
            debug!(%home, %coa, lifetime = granted, "binding refreshed");
            HaEvent::BindingRefreshed {
                home_address: home,
                care_of_address: coa,
                lifetime: granted,
                tunnel: TunnelKind::from_flags(repr.flags),
                reverse_tunnel: repr.flags.contains(RegistrationFlags::T),
            }
        };
        self.events.push_back(event);
        Ok(granted)
    }

    fn deregister(&mut self, now: Time, home: Ipv4Addr, care_of: Ipv4Addr) {
        let removed = if care_of == home {
            self.bindings.remove_home(home)
        } else {
            self.bindings.remove(home, care_of).into_iter().collect()
        };
        let left = self.bindings.for_home(home).len();
        let n = removed.len();
        for (i, b) in removed.into_iter().enumerate() {
            self.stats.bindings_removed += 1;
            info!(%home, coa = %b.care_of_address, "binding deregistered");
            self.events.push_back(HaEvent::BindingRemoved {
                home_address: home,
                care_of_address: b.care_of_address,
                reason: RemovalReason::Deregistered,
                last_for_home: left == 0 && i + 1 == n,
            });
            self.sid_binding_gone(now, home, b.care_of_address, TransferEnd::Deregistered);
        }
    }

    pub(crate) fn deny(&mut self, ctx: &ReplyContext<'_>, code: ReplyCode) {
        self.stats.deny(u8::from(code));
        info!(destination = %ctx.destination, home = %ctx.home_address, code = u8::from(code),
            "registration denied: {}", code.description());
        self.send_reply(ctx, code, 0);
    }

    /// 3.8.3.3: fixed part, the Mobile-Home Authentication Extension, then the
    /// Foreign-Home one when we share an association with the relaying agent.
    pub(crate) fn send_reply(&mut self, ctx: &ReplyContext<'_>, code: ReplyCode, lifetime: u16) {
        let repr = RegistrationReplyRepr {
            code,
            lifetime,
            home_address: ctx.home_address,
            home_agent: ctx.home_agent,
            identification: ctx.identification,
        };
        let mut payload = repr.to_bytes();
        append_auth_extension(&mut payload, ext_type::MOBILE_HOME_AUTH, ctx.mobile_sa);
        if let Some(fa) = ctx.foreign_sa {
            append_auth_extension(&mut payload, ext_type::FOREIGN_HOME_AUTH, fa);
        }
        self.stats.replies_sent += 1;
        self.transmits.push_back(Transmit { destination: ctx.destination, payload });
    }

    /// Drops every binding whose lifetime ran out (3.8.2.2: MUST delete), silently:
    /// a home agent never sends a reply to say a lifetime expired (3.8).
    pub fn handle_timeout(&mut self, now: Time) {
        for b in self.bindings.expire(now) {
            self.stats.bindings_expired += 1;
            let last = self.bindings.for_home(b.home_address).is_empty();
            info!(home = %b.home_address, coa = %b.care_of_address, "binding expired");
            self.events.push_back(HaEvent::BindingExpired {
                home_address: b.home_address,
                care_of_address: b.care_of_address,
                last_for_home: last,
            });
            self.sid_binding_gone(now, b.home_address, b.care_of_address, TransferEnd::Expired);
        }
        self.sid_wake_up_timers(now);
    }

    /// Removes every binding of a home address at an administrator's request.
    pub fn revoke(&mut self, now: Time, home: Ipv4Addr) -> bool {
        self.handle_timeout(now);
        let removed = self.bindings.remove_home(home);
        let n = removed.len();
        for (i, b) in removed.into_iter().enumerate() {
            self.stats.bindings_revoked += 1;
            self.stats.bindings_removed += 1;
            info!(%home, coa = %b.care_of_address, "binding revoked");
            self.events.push_back(HaEvent::BindingRemoved {
                home_address: home,
                care_of_address: b.care_of_address,
                reason: RemovalReason::Revoked,
                last_for_home: i + 1 == n,
            });
            self.sid_binding_gone(now, home, b.care_of_address, TransferEnd::Revoked);
        }
        n > 0
    }

    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<HaEvent> {
        self.events.pop_front()
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Time> {
        match (self.bindings.next_expiry(), self.sid.next_wake_up()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The bindings current at `now` (expired ones are not shown even before the
    /// timer fired).
    pub fn bindings(&self, now: Time) -> Vec<BindingSnapshot> {
        self.bindings
            .iter()
            .filter(|b| b.expires > now)
            .map(|b| BindingSnapshot {
                home_address: b.home_address,
                care_of_address: b.care_of_address,
                nai: self.config.mobile_nodes.get(b.mobile_node).and_then(|m| m.nai.clone()),
                lifetime_granted: b.granted_lifetime,
                lifetime_remaining: b.remaining(now).as_secs(),
                identification: format!("{:#018x}", b.reply_identification),
                flags: flag_letters(b.flags),
                tunnel: TunnelKind::from_flags(b.flags),
                reverse_tunnel: b.flags.contains(RegistrationFlags::T),
                request_source: b.request_source,
                transfer: self
                    .sid
                    .transfers
                    .get(&b.home_address)
                    .filter(|t| t.target == b.care_of_address)
                    .map(|t| t.snapshot(now)),
            })
            .collect()
    }
}

/// The codes RFC 3115 gives a home agent for critical vendor extensions it does not
/// understand, by where they sat.
mod ext_code {
    pub const UNSUPPORTED_MN_HA_CVSE: u8 = 140;
    pub const UNSUPPORTED_FA_HA_CVSE: u8 = 141;
}

/// "SBDMGT"-style letters of the granted flags, dashes for the others.
fn flag_letters(flags: RegistrationFlags) -> String {
    [
        (RegistrationFlags::S, 'S'),
        (RegistrationFlags::B, 'B'),
        (RegistrationFlags::D, 'D'),
        (RegistrationFlags::M, 'M'),
        (RegistrationFlags::G, 'G'),
        (RegistrationFlags::T, 'T'),
    ]
    .iter()
    .map(|&(bit, c)| if flags.contains(bit) { c } else { '-' })
    .collect()
}

