//! The mobile node registration client, sans-IO (RFC 5944 section 3.6).
//!
//! [`MobileNode`] builds Registration Requests, retransmits them with exponential
//! back-off (3.6.3), validates and authenticates replies (3.6.2.1), keeps its
//! identification in step with the home agent (5.7) and re-registers before the granted
//! lifetime runs out (3.6.2.2). It opens no socket and reads no clock: the shell feeds it
//! datagrams and the time, sends what [`MobileNode::poll_transmit`] returns and wakes it at
//! [`MobileNode::poll_timeout`].
//!
//! Choices the RFC leaves open, made here:
//! - A reply matches only the most recent request (3.6.2.1). Under timestamps every
//!   retransmission carries a new identification, so a late reply to an earlier copy is
//!   discarded; the reply to the newer copy follows.
//! - On an authenticated 133 the node resynchronises and sends a new request at once, once
//!   per transaction; a second 133 in the same transaction is reported as a denial, so a
//!   misconfigured home agent cannot keep it looping.
//! - A denied or abandoned re-registration leaves the previous binding in place until its
//!   lifetime ends (the home agent keeps it too), then [`MnEvent::Expired`] is reported.
//! - Registration lifetime is timed from the moment the accepted request was sent
//!   (3.6.2.2), so the node's view always ends before the home agent's.

mod message;
mod rng;
#[cfg(test)]
mod tests;

use core::net::{Ipv4Addr, SocketAddrV4};
use std::collections::VecDeque;
use std::time::Duration;

use crate::auth::{ReplayMethod, SecurityAssociation};
use crate::replay;
use crate::time::Time;
use crate::wire::{RegistrationFlags, ReplyCode, WireError};
use crate::{Transmit, REGISTRATION_PORT};

use message::{check_reply, Discard, Expected, RequestFields};
use rng::SplitMix64;

/// Lifetime requested when the configuration does not say otherwise, in seconds.
pub const DEFAULT_LIFETIME: u16 = 300;
/// First retransmission timeout (RFC 5944 3.6.3 floor).
pub const DEFAULT_INITIAL_RETRANSMIT: Duration = Duration::from_secs(1);
/// Longest retransmission timeout.
pub const DEFAULT_MAX_RETRANSMIT: Duration = Duration::from_secs(32);
/// Requests sent per transaction (the first and its retransmissions) before giving up.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// RFC 5944 3.6.3: the time between Registration Requests MUST NOT be less than 1 second.
pub const MIN_REQUEST_INTERVAL: Duration = Duration::from_secs(1);
/// A lifetime of 0xffff means infinity (RFC 5944 3.3).
pub const INFINITE_LIFETIME: u16 = 0xffff;
/// Longest NAI that fits the one-byte length of its extension (RFC 2794).
pub const MAX_NAI_LEN: usize = 255;

/// What a mobile node needs to register with its home agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MobileNodeConfig {
    /// `0.0.0.0` to register by NAI and learn the address from the reply (RFC 5944 3.6).
    pub home_address: Ipv4Addr,
    pub home_agent: Ipv4Addr,
    /// Equal to `home_address` when at home (a request then deregisters all bindings).
    pub care_of_address: Ipv4Addr,
    /// Requested lifetime in seconds; [`INFINITE_LIFETIME`] asks for no expiry.
    pub lifetime: u16,
    /// The mobility security association shared with the home agent.
    pub sa: SecurityAssociation,
    /// S B D M G T as wanted; `r` and `x` are always sent as zero.
    pub flags: RegistrationFlags,
    /// Mobile Node NAI extension (RFC 2794), sent before the authenticator.
    pub nai: Option<Vec<u8>>,
    /// First retransmission timeout; raised to 1 s if smaller (RFC 5944 3.6.3).
    pub initial_retransmit: Duration,
    /// Cap on the doubling timeout; also capped by the requested lifetime (3.6.3).
    pub max_retransmit: Duration,
    /// Requests per transaction, the first included; 0 counts as 1.
    pub max_attempts: u32,
}

impl MobileNodeConfig {
    /// A configuration with the default lifetime, flags and back-off.
    pub fn new(
        home_address: Ipv4Addr,
        home_agent: Ipv4Addr,
        care_of_address: Ipv4Addr,
        sa: SecurityAssociation,
    ) -> Self {
        MobileNodeConfig {
            home_address,
            home_agent,
            care_of_address,
            lifetime: DEFAULT_LIFETIME,
            sa,
            flags: RegistrationFlags::default(),
            nai: None,
            initial_retransmit: DEFAULT_INITIAL_RETRANSMIT,
            max_retransmit: DEFAULT_MAX_RETRANSMIT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }

    /// Checks what would otherwise only fail when the first request is built.
    pub fn validate(&self) -> Result<(), MnError> {
        if let Some(nai) = &self.nai {
            if nai.is_empty() || nai.len() > MAX_NAI_LEN {
                return Err(MnError::NaiLength { len: nai.len() });
            }
        }
        if self.home_address.is_unspecified() && self.nai.is_none() {
            return Err(MnError::NoIdentity);
        }
        if self.home_agent.is_unspecified() {
            return Err(MnError::NoHomeAgent);
        }
        Ok(())
    }
}

/// Why a configuration cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MnError {
    #[error("NAI of {len} bytes: it must be 1 to 255 bytes long (RFC 2794)")]
    NaiLength { len: usize },
    #[error("no home address and no NAI: the home agent could not tell who is registering")]
    NoIdentity,
    #[error("no home agent address")]
    NoHomeAgent,
    #[error("request could not be built: {0}")]
    Wire(#[from] WireError),
}

/// Where the node stands, as its own view of the registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MnState {
    /// No binding and nothing in flight.
    Idle,
    /// First registration in flight; no binding yet.
    Registering,
    /// A binding is in force and nothing is in flight.
    Registered,
    /// A binding is in force and its renewal (or a move) is in flight.
    Reregistering,
    /// A lifetime-zero request is in flight.
    Deregistering,
}

/// Something the shell may want to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MnEvent {
    /// The home agent accepted a registration with a non-zero lifetime.
    Registered {
        home_address: Ipv4Addr,
        care_of_address: Ipv4Addr,
        code: ReplyCode,
        /// Granted lifetime in seconds (never more than requested).
        lifetime: u16,
        requested_lifetime: u16,
        /// When the binding ends in the node's view; `None` for an infinite lifetime.
        expires: Option<Time>,
        /// Whether this renewed a binding that was still in force.
        renewal: bool,
    },
    /// A lifetime-zero request was accepted (or the home agent granted lifetime zero).
    Deregistered {
        care_of_address: Ipv4Addr,
        code: ReplyCode,
    },
    /// The request was denied with `code` (after at most one resynchronisation on 133).
    Denied {
        code: ReplyCode,
        deregistration: bool,
    },
    /// A 133 reply taught the node the home agent's clock or nonce; a new request is out.
    Resynchronized {
        replay: ReplayMethod,
        clock_offset_micros: i64,
    },
    /// A reply matched the pending request but its authenticator did not verify: it was
    /// discarded (RFC 5944 3.6.2.1). Reported so that a user sees a likely key mismatch.
    UnauthenticatedReply { claimed: ReplyCode },
    /// No acceptable reply after `attempts` requests.
    GaveUp { attempts: u32, deregistration: bool },
    /// The binding's lifetime ran out before a renewal was accepted.
    Expired { care_of_address: Ipv4Addr },
    /// The configuration cannot produce a request; the transaction was dropped.
    Failed { error: MnError },
}

/// Counters, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MnStats {
    pub requests_sent: u64,
    pub retransmissions: u64,
    pub replies_accepted: u64,
    pub replies_denied: u64,
    pub resyncs: u64,
    /// Not a well-formed reply, or one with an extension we may not skip.
    pub discarded_malformed: u64,
    /// No pending request, or home address / identification mismatch.
    pub discarded_unmatched: u64,
    /// Missing, repeated or wrong Mobile-Home authenticator (a security exception, 3.6.2.1).
    pub discarded_auth: u64,
    pub gave_up: u64,
}

/// The node's view of its binding at the home agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    pub home_address: Ipv4Addr,
    pub care_of_address: Ipv4Addr,
    /// Granted lifetime in seconds.
    pub lifetime: u16,
    /// When the accepted request was sent: the lifetime runs from here (3.6.2.2).
    pub registered_at: Time,
    /// `None` for an infinite lifetime.
    pub expires: Option<Time>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Register,
    Deregister,
}

/// One registration transaction: a request and its retransmissions.
#[derive(Debug, Clone)]
struct Pending {
    kind: Kind,
    renewal: bool,
    care_of: Ipv4Addr,
    lifetime: u16,
    /// Identification and bytes of the most recent transmission.
    identification: u64,
    payload: Vec<u8>,
    attempts: u32,
    last_sent: Time,
    /// Next transmission, or giving up once `attempts` reached the maximum.
    deadline: Time,
    /// Wait after the next transmission.
    interval: Duration,
    resynced: bool,
}

/// The mobile node registration client. See the module documentation.
#[derive(Debug)]
pub struct MobileNode {
    cfg: MobileNodeConfig,
    rng: SplitMix64,
    /// Learned from the reply when registering by NAI.
    home_address: Ipv4Addr,
    /// Timestamps (5.7.1): offset to the home agent's clock, last identification sent.
    clock: replay::MobileNodeClock,
    /// Nonces (5.7.2): the home agent's nonce for our next request, and our last own.
    ha_nonce: Option<u32>,
    last_mn_nonce: Option<u32>,
    last_request_at: Option<Time>,
    pending: Option<Pending>,
    binding: Option<Binding>,
    refresh_at: Option<Time>,
    /// A foreign agent that relays our requests (RFC 5944 3.6.1.1), or `None` to send
    /// them to the home agent.
    relay: Option<Ipv4Addr>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<MnEvent>,
    stats: MnStats,
}

impl MobileNode {
    /// A node that does nothing until [`register`](Self::register). `rng_seed` drives the
    /// random identification bits: seed it from the OS in a shell, with a constant in tests.
    pub fn new(cfg: MobileNodeConfig, rng_seed: u64) -> Self {
        MobileNode {
            home_address: cfg.home_address,
            cfg,
            rng: SplitMix64::new(rng_seed),
            clock: replay::MobileNodeClock::new(),
            ha_nonce: None,
            last_mn_nonce: None,
            last_request_at: None,
            pending: None,
            binding: None,
            refresh_at: None,
            relay: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: MnStats::default(),
        }
    }

    /// Registers the configured care-of address with the configured lifetime, replacing any
    /// transaction in flight. The request goes out now, or 1 s after the previous one.
    pub fn register(&mut self, now: Time) {
        self.start(now, Kind::Register);
    }

    /// Deregisters the current care-of address (lifetime zero, RFC 5944 3.6.1.2). At home
    /// the care-of address is the home address, which deregisters every binding.
    pub fn deregister(&mut self, now: Time) {
        self.start(now, Kind::Deregister);
    }

    /// A move: registers `care_of` or, when it is the home address, deregisters all
    /// bindings (RFC 5944 3.6.1.2: care-of = home address, lifetime zero).
    pub fn move_to(&mut self, now: Time, care_of: Ipv4Addr) {
        self.cfg.care_of_address = care_of;
        if care_of == self.home_address {
            // At home the node deregisters directly with its home agent (3.6.1.2).
            self.relay = None;
            self.deregister(now);
        } else {
            self.register(now);
        }
    }

    /// A move through a foreign agent: requests go to `agent` (the IP source of its
    /// advertisement, RFC 5944 3.6.1.1) and register its `care_of` address. `None`
    /// registers directly with the home agent (co-located care-of address, or at home).
    pub fn move_via(&mut self, now: Time, agent: Option<Ipv4Addr>, care_of: Ipv4Addr) {
        self.relay = agent;
        self.move_to(now, care_of);
    }

    /// Where requests are sent: the relaying foreign agent, or `None` for the home agent.
    pub fn relay(&self) -> Option<Ipv4Addr> {
        self.relay
    }

    /// Replaces the flags of the following requests (e.g. D for a co-located care-of
    /// address, T only where the foreign agent offers reverse tunnelling).
    pub fn set_flags(&mut self, flags: RegistrationFlags) {
        self.cfg.flags = flags;
    }

    pub fn handle_datagram(&mut self, now: Time, source: SocketAddrV4, payload: &[u8]) {
        // The source is not checked: a reply may come through a foreign agent, and what
        // vouches for it is the identification and the authenticator, not the address.
        let _ = source;
        let verdict = {
            let expected = self
                .pending
                .as_ref()
                .filter(|p| p.attempts > 0)
                .map(|p| Expected {
                    home_address: self.home_address,
                    identification: p.identification,
                    sa: &self.cfg.sa,
                });
            check_reply(payload, expected.as_ref())
        };
        let reply = match verdict {
            Ok(reply) => reply,
            Err(Discard::Malformed) => return self.stats.discarded_malformed += 1,
            Err(Discard::Unmatched) => return self.stats.discarded_unmatched += 1,
            Err(Discard::Authentication { claimed }) => {
                self.stats.discarded_auth += 1;
                self.events.push_back(MnEvent::UnauthenticatedReply { claimed });
                return;
            }
        };
        let Some(mut p) = self.pending.take() else {
            return;
        };
        let repr = reply.repr;
        if reply.authenticated && self.cfg.sa.replay == ReplayMethod::Nonce {
            // 5.7.2: every authenticated home agent reply carries our next nonce.
            self.ha_nonce = Some(replay::high_order(repr.identification));
        }

        if repr.code.is_accepted() {
            self.stats.replies_accepted += 1;
            self.accepted(&p, repr.code, repr.lifetime, repr.home_address);
        } else if repr.code == ReplyCode::IdentificationMismatch
            && reply.authenticated
            && !p.resynced
        {
            self.stats.resyncs += 1;
            if self.cfg.sa.replay == ReplayMethod::Timestamp {
                // 5.7.1: the reply's high bits are the home agent's time of day; the low
                // bits were checked against this request already.
                self.clock
                    .resynchronise(p.identification, repr.identification, now);
            }
            self.events.push_back(MnEvent::Resynchronized {
                replay: self.cfg.sa.replay,
                clock_offset_micros: self.clock.offset_micros(),
            });
            // A new registration with a fresh identification, not a retransmission: it
            // gets the full back-off again.
            p.resynced = true;
            p.attempts = 0;
            p.interval = self.initial_interval();
            if self.transmit(now, &mut p) {
                self.pending = Some(p);
            }
        } else {
            self.stats.replies_denied += 1;
            self.events.push_back(MnEvent::Denied {
                code: repr.code,
                deregistration: p.kind == Kind::Deregister,
            });
        }
    }

    pub fn handle_timeout(&mut self, now: Time) {
        if let Some(b) = self.binding {
            if b.expires.is_some_and(|e| e <= now) {
                self.binding = None;
                self.refresh_at = None;
                self.events.push_back(MnEvent::Expired {
                    care_of_address: b.care_of_address,
                });
            }
        }
        if self.refresh_at.is_some_and(|t| t <= now) {
            self.refresh_at = None;
            if self.pending.is_none() {
                self.start(now, Kind::Register);
            }
        }
        let Some(mut p) = self.pending.take() else {
            return;
        };
        if p.deadline > now {
            self.pending = Some(p);
            return;
        }
        if p.attempts >= self.cfg.max_attempts.max(1) {
            self.stats.gave_up += 1;
            let deregistration = p.kind == Kind::Deregister;
            if deregistration {
                // We meant to be rid of it; the home agent will age it out if it lives on.
                self.binding = None;
                self.refresh_at = None;
            }
            self.events.push_back(MnEvent::GaveUp {
                attempts: p.attempts,
                deregistration,
            });
            return;
        }
        if self.transmit(now, &mut p) {
            self.pending = Some(p);
        }
    }

    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<MnEvent> {
        self.events.pop_front()
    }

    /// The earliest of: the next (re)transmission or give-up, the scheduled re-registration,
    /// the binding's expiry.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Time> {
        let pending = self.pending.as_ref().map(|p| p.deadline);
        let expiry = self.binding.and_then(|b| b.expires);
        [pending, self.refresh_at, expiry]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn state(&self) -> MnState {
        match (&self.pending, &self.binding) {
            (Some(p), _) if p.kind == Kind::Deregister => MnState::Deregistering,
            (Some(_), Some(_)) => MnState::Reregistering,
            (Some(_), None) => MnState::Registering,
            (None, Some(_)) => MnState::Registered,
            (None, None) => MnState::Idle,
        }
    }

    /// The binding in force in the node's view, if any.
    pub fn binding(&self) -> Option<Binding> {
        self.binding
    }

    /// When the node will renew its binding on its own, if it will.
    pub fn refresh_at(&self) -> Option<Time> {
        self.refresh_at
    }

    /// The home address: configured, or learned from an accepted reply (NAI).
    pub fn home_address(&self) -> Ipv4Addr {
        self.home_address
    }

    /// Offset added to the local clock for timestamps, learned from a 133 reply.
    pub fn clock_offset_micros(&self) -> i64 {
        self.clock.offset_micros()
    }

    pub fn config(&self) -> &MobileNodeConfig {
        &self.cfg
    }

    pub fn stats(&self) -> &MnStats {
        &self.stats
    }

    fn start(&mut self, now: Time, kind: Kind) {
        if kind == Kind::Deregister {
            self.refresh_at = None;
        }
        let lifetime = match kind {
            Kind::Register => self.cfg.lifetime,
            Kind::Deregister => 0,
        };
        // RFC 5944 3.6 / 3.6.3: no more than one request per second.
        let earliest = self
            .last_request_at
            .map_or(now, |t| t + MIN_REQUEST_INTERVAL);
        let mut p = Pending {
            kind,
            renewal: self.binding.is_some(),
            care_of: self.cfg.care_of_address,
            lifetime,
            identification: 0,
            payload: Vec::new(),
            attempts: 0,
            last_sent: now,
            deadline: earliest.max(now),
            interval: self.initial_interval(),
            resynced: false,
        };
        if p.deadline <= now && !self.transmit(now, &mut p) {
            self.pending = None;
            return;
        }
        self.pending = Some(p);
    }

    /// Sends the pending request: a new identification under timestamps (3.6.3: each
    /// retransmission counts as a new registration), the same bytes under nonces.
    /// Returns false, having reported [`MnEvent::Failed`], when the request cannot be built;
    /// the caller then drops the transaction.
    #[must_use]
    fn transmit(&mut self, now: Time, p: &mut Pending) -> bool {
        if p.attempts == 0 || self.cfg.sa.replay == ReplayMethod::Timestamp {
            let identification = self.next_identification(now);
            let fields = RequestFields {
                flags: self.cfg.flags,
                lifetime: p.lifetime,
                home_address: self.home_address,
                home_agent: self.cfg.home_agent,
                care_of_address: p.care_of,
                identification,
            };
            match message::build_request(&fields, self.cfg.nai.as_deref(), &self.cfg.sa) {
                Ok(payload) => {
                    p.identification = identification;
                    p.payload = payload;
                }
                Err(e) => {
                    self.events.push_back(MnEvent::Failed {
                        error: MnError::Wire(e),
                    });
                    return false;
                }
            }
        }
        if p.attempts > 0 {
            self.stats.retransmissions += 1;
        }
        p.attempts += 1;
        p.last_sent = now;
        p.deadline = now + p.interval;
        p.interval = (p.interval.saturating_mul(2)).min(self.retransmit_cap(p.lifetime));
        self.last_request_at = Some(now);
        self.stats.requests_sent += 1;
        self.transmits.push_back(Transmit {
            destination: SocketAddrV4::new(
                self.relay.unwrap_or(self.cfg.home_agent),
                REGISTRATION_PORT,
            ),
            payload: p.payload.clone(),
        });
        true
    }

    fn next_identification(&mut self, now: Time) -> u64 {
        match self.cfg.sa.replay {
            // 5.7.1: the (offset-corrected) time of day, strictly above the last one sent.
            ReplayMethod::Timestamp => self.clock.next_identification(now, self.rng.next_u32()),
            ReplayMethod::Nonce => {
                // 5.7.2: high bits echo the home agent's nonce (zero before we know one:
                // its 133 reply hands us one), low bits are our own fresh nonce.
                let mn_nonce = replay::next_nonce(self.rng.next_u32(), self.last_mn_nonce);
                self.last_mn_nonce = Some(mn_nonce);
                replay::nonce_request_identification(self.ha_nonce.unwrap_or(0), mn_nonce)
            }
        }
    }

    fn accepted(&mut self, p: &Pending, code: ReplyCode, granted: u16, reply_home: Ipv4Addr) {
        if self.home_address.is_unspecified() {
            self.home_address = reply_home;
        }
        if p.kind == Kind::Deregister || granted == 0 {
            self.binding = None;
            self.refresh_at = None;
            self.events.push_back(MnEvent::Deregistered {
                care_of_address: p.care_of,
                code,
            });
            return;
        }
        // The home agent MUST NOT grant more than asked (3.4); never believe it did.
        let lifetime = granted.min(p.lifetime);
        let (expires, refresh_at) = if lifetime == INFINITE_LIFETIME {
            (None, None)
        } else {
            let secs = Duration::from_secs(u64::from(lifetime));
            (
                Some(p.last_sent + secs),
                Some(p.last_sent + self.refresh_delay(lifetime)),
            )
        };
        self.binding = Some(Binding {
            home_address: self.home_address,
            care_of_address: p.care_of,
            lifetime,
            registered_at: p.last_sent,
            expires,
        });
        self.refresh_at = refresh_at;
        self.events.push_back(MnEvent::Registered {
            home_address: self.home_address,
            care_of_address: p.care_of,
            code,
            lifetime,
            requested_lifetime: p.lifetime,
            expires,
            renewal: p.renewal,
        });
    }

    fn initial_interval(&self) -> Duration {
        self.cfg.initial_retransmit.max(MIN_REQUEST_INTERVAL)
    }

    /// 3.6.3: the timeout doubles up to the configured cap and never beyond the requested
    /// lifetime, but never below the first timeout.
    fn retransmit_cap(&self, lifetime: u16) -> Duration {
        let mut cap = self.cfg.max_retransmit;
        if lifetime != 0 {
            cap = cap.min(Duration::from_secs(u64::from(lifetime)));
        }
        cap.max(self.initial_interval())
    }

    /// Time a whole transaction can take: every timeout of `max_attempts` requests.
    fn retransmission_budget(&self, lifetime: u16) -> Duration {
        let cap = self.retransmit_cap(lifetime);
        let mut interval = self.initial_interval().min(cap);
        let mut total = Duration::ZERO;
        for _ in 0..self.cfg.max_attempts.max(1) {
            total = total.saturating_add(interval);
            interval = interval.saturating_mul(2).min(cap);
        }
        total
    }

    /// When to renew after the accepted request was sent: at 7/8 of the lifetime, earlier
    /// if a full retransmission budget would not fit before expiry, but never before half
    /// the lifetime (short lifetimes cannot hold a whole budget anyway) nor within 1 s.
    fn refresh_delay(&self, lifetime: u16) -> Duration {
        let l = Duration::from_secs(u64::from(lifetime));
        let seven_eighths = l * 7 / 8;
        let before_budget = l.saturating_sub(self.retransmission_budget(lifetime));
        seven_eighths
            .min(before_budget)
            .max(l / 2)
            .max(MIN_REQUEST_INTERVAL)
    }
}
