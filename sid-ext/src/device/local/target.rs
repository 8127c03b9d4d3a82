//! The Target of a same-subnet transfer: plays the Agent's part towards the TN (answers its
//! take-over and stop-transfer requests on UDP 434, sends the wake-up) and holds the
//! address itself.

use core::net::{Ipv4Addr, SocketAddrV4};
use std::collections::VecDeque;
use std::time::Duration;

use mip_core::auth::{append_auth_extension, verify_authenticator, SecurityAssociation};
use mip_core::replay::{self, ReplayVerdict};
use mip_core::time::Time;
use mip_core::wire::notification::{
    GenericNotificationRepr, NotificationDirection, NOTIFICATION_ACK_TYPE,
};
use mip_core::wire::{
    ext_type, is_skippable, message_type, Extension, RegistrationReplyRepr, RegistrationRequest,
    RegistrationRequestRepr, ReplyCode, AUTH_EXT_COVERED_HEADER, REQUEST_TYPE,
};
use mip_core::{Transmit, REGISTRATION_PORT};

use super::super::{DeviceError, LinkAddress};
use super::{local_association, Announcer, LinkTransmit, DEFAULT_ANNOUNCE_AFTER};
use crate::crypto::SessionKey;
use crate::wire::wake_up::{build_wake_up, parse_wake_up_ack};
use crate::wire::{SidExtensions, StopReason, WakeUpReason};

/// The Target's standing configuration for same-subnet sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTargetConfig {
    /// The Target's own address (the Home Agent Address the TN writes, the wake-up's source).
    pub address: Ipv4Addr,
    pub org_id: u32,
    /// How far a request's timestamp may be from the Target's clock (RFC 5944 5.7.1).
    pub window: Duration,
    /// First wake-up retransmission interval; doubled after each copy.
    pub wake_up_interval: Duration,
    /// Copies sent before giving up.
    pub wake_up_attempts: u32,
    /// After the first wake-up the address is kept until the TN acknowledges (it has taken
    /// the address back by then), but never longer than this.
    pub hand_back_grace: Duration,
    /// Gratuitous ARP repeats after the take-over.
    pub announce_after: Vec<Duration>,
}

impl LocalTargetConfig {
    pub fn new(address: Ipv4Addr) -> Self {
        LocalTargetConfig {
            address,
            org_id: crate::wire::DEFAULT_ORG_ID,
            window: replay::DEFAULT_TIMESTAMP_WINDOW,
            wake_up_interval: Duration::from_secs(1),
            wake_up_attempts: 5,
            hand_back_grace: Duration::from_secs(1),
            announce_after: DEFAULT_ANNOUNCE_AFTER.to_vec(),
        }
    }
}

/// A same-subnet session received in a negotiation (terms without an Agent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSession {
    pub tn_address: Ipv4Addr,
    /// Where the wake-up goes: the TN's link-layer address (Ethernet)...
    pub tn_link: Option<LinkAddress>,
    /// ...or, preferred when given, its interim address.
    pub interim: Option<Ipv4Addr>,
    pub session_key: SessionKey,
    /// The negotiated lifetime: the most a take-over grants.
    pub lifetime: u16,
}

/// Where the Target stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LocalTargetState {
    Idle,
    /// Negotiated, waiting for the TN's take-over request.
    Ready { tn_address: Ipv4Addr },
    /// Holding the TN's address.
    Holding { tn_address: Ipv4Addr },
    /// The transfer ended, the wake-up is out, the address kept until acknowledged.
    HandingBack { tn_address: Ipv4Addr },
    /// Over; the association is kept to answer a late stop demand and the wake-up's
    /// acknowledgement.
    Ended { tn_address: Ipv4Addr },
}

impl LocalTargetState {
    pub fn name(&self) -> &'static str {
        match self {
            LocalTargetState::Idle => "idle",
            LocalTargetState::Ready { .. } => "ready",
            LocalTargetState::Holding { .. } => "holding",
            LocalTargetState::HandingBack { .. } => "handing-back",
            LocalTargetState::Ended { .. } => "ended",
        }
    }
}

/// What the shell reports or acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalTargetEvent {
    /// Put the address on the TUN device (policy routing as for FIG. 1a), answer ARP for
    /// it and announce it (gratuitous ARP, request and reply).
    AssumeAddress { address: Ipv4Addr },
    /// Announce the address again.
    Announce { address: Ipv4Addr },
    TakenOver { tn_address: Ipv4Addr, lifetime: u16 },
    /// A repeated take-over extended the lifetime.
    Refreshed { lifetime: u16 },
    /// The TN demanded the end (authentic, fresh).
    StopDemanded { reason: StopReason },
    /// The transfer ended; the wake-up goes out.
    Ended { reason: WakeUpReason },
    WakeUpSent { attempt: u32 },
    WakeUpAcknowledged { attempts: u32 },
    WakeUpAbandoned { attempts: u32 },
    /// Take the address off: stop answering ARP for it.
    ReleaseAddress { address: Ipv4Addr },
}

/// Counters, for `status` and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocalTargetStats {
    pub requests_accepted: u64,
    /// Authentic requests refused (129, 134, 136, 140).
    pub requests_refused: u64,
    /// Authentic requests with a stale Identification (answered 133).
    pub replays_refused: u64,
    /// Failed authentication: silently discarded.
    pub discarded_auth: u64,
    pub discarded_malformed: u64,
    /// Under an SPI that is not this session's, or with no session.
    pub discarded_unmatched: u64,
    pub wake_ups_sent: u64,
    pub wake_ups_acknowledged: u64,
    pub bad_acknowledgements: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Ready,
    Holding { expires: Time },
    HandingBack { release_at: Time },
    Ended,
}

#[derive(Debug)]
struct Wake {
    reason: WakeUpReason,
    attempts: u32,
    next_at: Time,
    interval: Duration,
    sent: Vec<u64>,
}

#[derive(Debug)]
struct Active {
    session: LocalSession,
    sa: SecurityAssociation,
    phase: Phase,
    last_accepted: Option<u64>,
    wake: Option<Wake>,
}

/// The Target's side of FIG. 1b. One session at a time.
#[derive(Debug)]
pub struct LocalTarget {
    cfg: LocalTargetConfig,
    active: Option<Active>,
    announcer: Announcer,
    transmits: VecDeque<Transmit>,
    link_transmits: VecDeque<LinkTransmit>,
    events: VecDeque<LocalTargetEvent>,
    stats: LocalTargetStats,
}

/// What a request asks, once authenticated and checked.
enum Ask {
    TakeOver { lifetime: u16 },
    Stop { reason: StopReason },
}

impl LocalTarget {
    pub fn new(cfg: LocalTargetConfig) -> Self {
        LocalTarget {
            cfg,
            active: None,
            announcer: Announcer::default(),
            transmits: VecDeque::new(),
            link_transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: LocalTargetStats::default(),
        }
    }

    pub fn config(&self) -> &LocalTargetConfig {
        &self.cfg
    }

    pub fn stats(&self) -> &LocalTargetStats {
        &self.stats
    }

    pub fn session(&self) -> Option<&LocalSession> {
        self.active.as_ref().map(|a| &a.session)
    }

    pub fn session_spi(&self) -> Option<u32> {
        self.active.as_ref().map(|a| a.sa.spi)
    }

    /// When the hold ends unless the TN extends it.
    pub fn expires(&self) -> Option<Time> {
        match self.active.as_ref()?.phase {
            Phase::Holding { expires } => Some(expires),
            _ => None,
        }
    }

    pub fn state(&self) -> LocalTargetState {
        let Some(a) = &self.active else { return LocalTargetState::Idle };
        let tn_address = a.session.tn_address;
        match a.phase {
            Phase::Ready => LocalTargetState::Ready { tn_address },
            Phase::Holding { .. } => LocalTargetState::Holding { tn_address },
            Phase::HandingBack { .. } => LocalTargetState::HandingBack { tn_address },
            Phase::Ended => LocalTargetState::Ended { tn_address },
        }
    }

    /// True while the address is on this device.
    pub fn holds_address(&self) -> bool {
        matches!(self.state(), LocalTargetState::Holding { .. } | LocalTargetState::HandingBack { .. })
    }

    /// Takes a negotiated same-subnet session; the address moves only on the TN's
    /// take-over request. Replaces a session that is ready or over, never one held.
    pub fn accept_session(&mut self, session: LocalSession) -> Result<(), DeviceError> {
        let tn = session.tn_address;
        if tn.is_unspecified() || tn.is_broadcast() || tn.is_multicast() || tn == self.cfg.address {
            return Err(DeviceError::BadAddress("the TN must be another unicast address"));
        }
        let ethernet = session.tn_link.as_ref().and_then(|l| l.as_element().as_ethernet());
        if ethernet.is_none() && session.interim.is_none() {
            return Err(DeviceError::NoWakeUpAddress);
        }
        if self.holds_address() {
            return Err(DeviceError::WrongState(self.state().name()));
        }
        let sa = local_association(&session.session_key)?;
        self.announcer.cancel();
        self.active = Some(Active { session, sa, phase: Phase::Ready, last_accepted: None, wake: None });
        Ok(())
    }

    /// The user ends the transfer: the address goes back to the TN with a wake-up
    /// (reason 1, as a lifetime-0 renewal at the Agent). A session not yet taken over is
    /// simply dropped.
    pub fn end(&mut self, now: Time) -> Result<(), DeviceError> {
        let a = self.active.as_ref().ok_or(DeviceError::WrongState("idle"))?;
        match a.phase {
            Phase::Ready => {
                self.active = None;
                Ok(())
            }
            Phase::Holding { .. } => {
                self.hand_back(now, WakeUpReason::EndedByZeroLifetime);
                Ok(())
            }
            Phase::HandingBack { .. } | Phase::Ended => Err(DeviceError::WrongState(self.state().name())),
        }
    }

    pub fn handle_datagram(&mut self, now: Time, source: SocketAddrV4, payload: &[u8]) {
        match message_type(payload) {
            Some(REQUEST_TYPE) => self.request(now, source, payload),
            Some(NOTIFICATION_ACK_TYPE) => self.acknowledgement(payload),
            _ => self.stats.discarded_malformed += 1,
        }
    }

    pub fn handle_timeout(&mut self, now: Time) {
        let Some(a) = self.active.as_mut() else { return };
        match a.phase {
            Phase::Holding { expires } if expires <= now => {
                self.hand_back(now, WakeUpReason::BindingExpired);
            }
            Phase::HandingBack { release_at } if release_at <= now => self.release(),
            _ => {}
        }
        self.wake_up_timers(now);
        if self.announcer.due(now, &self.cfg.announce_after) {
            if let Some(address) = self.held_address() {
                self.events.push_back(LocalTargetEvent::Announce { address });
            }
        }
    }

    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Wake-ups to send as Ethernet frames to the TN's link-layer address.
    #[must_use]
    pub fn poll_link_transmit(&mut self) -> Option<LinkTransmit> {
        self.link_transmits.pop_front()
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<LocalTargetEvent> {
        self.events.pop_front()
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Time> {
        let a = self.active.as_ref()?;
        let phase = match a.phase {
            Phase::Holding { expires } => Some(expires),
            Phase::HandingBack { release_at } => Some(release_at),
            _ => None,
        };
        [phase, a.wake.as_ref().map(|w| w.next_at), self.announcer.deadline(&self.cfg.announce_after)]
            .into_iter()
            .flatten()
            .min()
    }

    fn held_address(&self) -> Option<Ipv4Addr> {
        let a = self.active.as_ref()?;
        matches!(a.phase, Phase::Holding { .. }).then_some(a.session.tn_address)
    }

    /// RFC-NOTES "SID formats" 4 read by the Target (processing rules: notes-fig1b.md).
    fn request(&mut self, now: Time, source: SocketAddrV4, payload: &[u8]) {
        let Some(repr) = RegistrationRequest::new_checked(payload)
            .ok()
            .and_then(|v| RegistrationRequestRepr::parse(&v).ok())
        else {
            self.stats.discarded_malformed += 1;
            return;
        };
        let Some(a) = self.active.as_ref() else {
            self.stats.discarded_unmatched += 1;
            return;
        };
        match authenticate(payload, &a.sa) {
            Auth::Verified => {}
            Auth::OtherSpi => return self.stats.discarded_unmatched += 1,
            Auth::Failed => return self.stats.discarded_auth += 1,
            Auth::Malformed => return self.stats.discarded_malformed += 1,
        }
        // Authentic: from the TN (or a copy of its message). Every answer is signed.
        let id = repr.identification;
        if replay::check_timestamp(id, now, self.cfg.window, a.last_accepted) != ReplayVerdict::Fresh {
            self.stats.replays_refused += 1;
            let resync = replay::timestamp_resync_identification(id, now);
            return self.reply(source, &repr, ReplyCode::IdentificationMismatch, 0, resync);
        }
        let ask = match self.check(payload, &repr) {
            Ok(ask) => ask,
            Err(code) => {
                self.stats.requests_refused += 1;
                return self.reply(source, &repr, code, 0, id);
            }
        };
        match ask {
            Ask::TakeOver { lifetime } => self.take_over(now, source, &repr, lifetime),
            Ask::Stop { reason } => self.stop_demanded(now, source, &repr, reason),
        }
    }

    /// The fixed part and the elements of an authentic request (notes-fig1b.md 3).
    fn check(&mut self, payload: &[u8], repr: &RegistrationRequestRepr) -> Result<Ask, ReplyCode> {
        let Some(a) = self.active.as_mut() else { return Err(ReplyCode::ReasonUnspecified) };
        if repr.home_address != a.session.tn_address {
            return Err(ReplyCode::PoorlyFormedRequest);
        }
        if repr.home_agent != self.cfg.address {
            return Err(ReplyCode::UnknownHomeAgentAddress);
        }
        let view = RegistrationRequest::new_unchecked(payload);
        for item in view.extensions() {
            let item = item.map_err(|_| ReplyCode::PoorlyFormedRequest)?;
            match item.ext {
                Extension::MobileHomeAuth(_) => break,
                Extension::CriticalVendor(v) if v.org_id != self.cfg.org_id => {
                    return Err(ReplyCode::UnsupportedVendorId)
                }
                Extension::Unknown { ext_type, .. } if !is_skippable(ext_type) => {
                    return Err(ReplyCode::PoorlyFormedRequest)
                }
                _ => {}
            }
        }
        let sid = SidExtensions::collect(self.cfg.org_id, view.extensions()).map_err(|e| e.reply_code())?;
        let foreign = sid.session_key.is_some()
            || sid.transfer_flags.is_some()
            || sid.wake_up.is_some()
            || sid.transferring_node.is_some_and(|t| t != repr.home_address);
        if foreign {
            return Err(ReplyCode::PoorlyFormedRequest);
        }
        if let Some(reason) = sid.stop_transfer {
            if sid.target_address.is_some() || sid.session_spi.is_some() {
                return Err(ReplyCode::PoorlyFormedRequest);
            }
            remember_wake_up_address(&mut a.session, &sid);
            return Ok(Ask::Stop { reason });
        }
        if sid.session_spi != Some(a.sa.spi)
            || sid.target_address != Some(self.cfg.address)
            || repr.care_of_address != self.cfg.address
            || repr.lifetime == 0
        {
            return Err(ReplyCode::PoorlyFormedRequest);
        }
        if matches!(a.phase, Phase::HandingBack { .. } | Phase::Ended) {
            // The session is over: a new transfer needs a new negotiation.
            return Err(ReplyCode::AdministrativelyProhibited);
        }
        remember_wake_up_address(&mut a.session, &sid);
        Ok(Ask::TakeOver { lifetime: repr.lifetime })
    }

    fn take_over(&mut self, now: Time, source: SocketAddrV4, repr: &RegistrationRequestRepr, asked: u16) {
        let Some(a) = self.active.as_mut() else { return };
        let granted = asked.min(a.session.lifetime.max(1));
        let expires = now + Duration::from_secs(u64::from(granted));
        a.last_accepted = Some(repr.identification);
        let tn_address = a.session.tn_address;
        if matches!(a.phase, Phase::Holding { .. }) {
            a.phase = Phase::Holding { expires };
            self.events.push_back(LocalTargetEvent::Refreshed { lifetime: granted });
        } else {
            a.phase = Phase::Holding { expires };
            self.announcer.start(now);
            self.events.push_back(LocalTargetEvent::AssumeAddress { address: tn_address });
            self.events.push_back(LocalTargetEvent::TakenOver { tn_address, lifetime: granted });
        }
        self.stats.requests_accepted += 1;
        self.reply(source, repr, ReplyCode::Accepted, granted, repr.identification);
    }

    fn stop_demanded(&mut self, now: Time, source: SocketAddrV4, repr: &RegistrationRequestRepr, reason: StopReason) {
        let Some(a) = self.active.as_mut() else { return };
        a.last_accepted = Some(repr.identification);
        let phase = a.phase;
        self.stats.requests_accepted += 1;
        self.events.push_back(LocalTargetEvent::StopDemanded { reason });
        self.reply(source, repr, ReplyCode::Accepted, 0, repr.identification);
        match phase {
            Phase::Holding { .. } => self.hand_back(now, WakeUpReason::StopTransferDemand),
            // Never taken over: nothing to give back.
            Phase::Ready => {
                if let Some(a) = self.active.as_mut() {
                    a.phase = Phase::Ended;
                }
            }
            // The TN did not get (or raced) the wake-up: it is evidently awake, so the
            // retries stop; the address still goes at the end of the grace.
            Phase::HandingBack { .. } | Phase::Ended => {
                if let Some(a) = self.active.as_mut() {
                    a.wake = None;
                }
            }
        }
    }

    fn reply(&mut self, to: SocketAddrV4, repr: &RegistrationRequestRepr, code: ReplyCode, lifetime: u16, identification: u64) {
        let Some(a) = self.active.as_ref() else { return };
        let mut m = RegistrationReplyRepr {
            code,
            lifetime,
            home_address: repr.home_address,
            home_agent: self.cfg.address,
            identification,
        }
        .to_bytes();
        append_auth_extension(&mut m, ext_type::MOBILE_HOME_AUTH, &a.sa);
        self.send(to, m);
    }

    /// Sends to `to`; anything for the TN's own address goes as a frame to its MAC (or to
    /// its interim address): while this device holds that address, the kernel would
    /// deliver the datagram locally instead.
    fn send(&mut self, to: SocketAddrV4, payload: Vec<u8>) {
        let Some(a) = self.active.as_ref() else { return };
        if *to.ip() == a.session.tn_address {
            if let Some(mac) = a.session.tn_link.as_ref().and_then(|l| l.as_element().as_ethernet()) {
                let source = SocketAddrV4::new(self.cfg.address, REGISTRATION_PORT);
                return self.link_transmits.push_back(LinkTransmit { mac, source, destination: to, payload });
            }
            if let Some(interim) = a.session.interim {
                let destination = SocketAddrV4::new(interim, to.port());
                return self.transmits.push_back(Transmit { destination, payload });
            }
        }
        self.transmits.push_back(Transmit { destination: to, payload });
    }

    /// The transfer is over: the wake-up goes out now; the address stays until it is
    /// acknowledged or the grace runs out.
    fn hand_back(&mut self, now: Time, reason: WakeUpReason) {
        let Some(a) = self.active.as_mut() else { return };
        a.phase = Phase::HandingBack { release_at: now + self.cfg.hand_back_grace };
        a.wake = Some(Wake {
            reason,
            attempts: 0,
            next_at: now,
            interval: self.cfg.wake_up_interval.max(Duration::from_millis(10)),
            sent: Vec::new(),
        });
        self.announcer.cancel();
        self.events.push_back(LocalTargetEvent::Ended { reason });
        self.wake_up_timers(now);
    }

    fn release(&mut self) {
        let Some(a) = self.active.as_mut() else { return };
        if matches!(a.phase, Phase::Holding { .. } | Phase::HandingBack { .. }) {
            a.phase = Phase::Ended;
            self.announcer.cancel();
            self.events.push_back(LocalTargetEvent::ReleaseAddress { address: a.session.tn_address });
        }
    }

    fn wake_up_timers(&mut self, now: Time) {
        let max = self.cfg.wake_up_attempts.max(1);
        let Some(a) = self.active.as_mut() else { return };
        let Some(w) = a.wake.as_mut() else { return };
        if w.next_at > now {
            return;
        }
        if w.attempts >= max {
            let attempts = w.attempts;
            a.wake = None;
            self.events.push_back(LocalTargetEvent::WakeUpAbandoned { attempts });
            return self.release();
        }
        // Strictly increasing per copy even if the clock stood still.
        let identification = now.to_ntp().max(w.sent.last().map_or(0, |l| l.wrapping_add(1)));
        w.attempts += 1;
        w.next_at = now + w.interval;
        w.interval = w.interval.saturating_mul(2);
        w.sent.push(identification);
        let (attempt, reason) = (w.attempts, w.reason);
        let tn = a.session.tn_address;
        let repr = GenericNotificationRepr {
            direction: NotificationDirection::HomeAgentToMobileNode,
            home_address: tn,
            home_agent: self.cfg.address,
            care_of_address: self.cfg.address,
            identification,
        };
        let Ok(payload) = build_wake_up(&repr, self.cfg.org_id, reason, &a.sa) else { return };
        // The interim address when given (ordinary UDP), else a frame to the stored MAC
        // (accept_session refuses a session with neither).
        let to = SocketAddrV4::new(a.session.interim.unwrap_or(tn), REGISTRATION_PORT);
        self.send(to, payload);
        self.stats.wake_ups_sent += 1;
        self.events.push_back(LocalTargetEvent::WakeUpSent { attempt });
    }

    /// The TN's Generic Notification Acknowledgement: it answers a copy we sent, under the
    /// session's association. The address is then released at once (the TN has it back).
    fn acknowledgement(&mut self, payload: &[u8]) {
        let Ok(ack) = parse_wake_up_ack(payload) else {
            self.stats.bad_acknowledgements += 1;
            return;
        };
        let ok = self.active.as_ref().is_some_and(|a| {
            a.wake.as_ref().is_some_and(|w| w.sent.contains(&ack.ack.identification))
                && ack.ack.home_address == a.session.tn_address
                && ack.auth.spi == a.sa.spi
                && verify_authenticator(a.sa.algorithm, &a.sa.key, ack.auth.covered, ack.auth.authenticator)
        });
        let Some(a) = self.active.as_mut().filter(|_| ok) else {
            self.stats.bad_acknowledgements += 1;
            return;
        };
        let attempts = a.wake.take().map_or(0, |w| w.attempts);
        self.stats.wake_ups_acknowledged += 1;
        self.events.push_back(LocalTargetEvent::WakeUpAcknowledged { attempts });
        self.release();
    }
}

/// A newer wake-up address from the TN (authenticated) replaces the negotiated one.
fn remember_wake_up_address(session: &mut LocalSession, sid: &SidExtensions<'_>) {
    if let Some(mac) = sid.link_layer_address.and_then(|l| l.as_ethernet()) {
        session.tn_link = Some(LinkAddress::ethernet(mac));
    }
    if let Some(i) = sid.interim_address {
        session.interim = Some(i);
    }
}

enum Auth {
    Verified,
    OtherSpi,
    Failed,
    Malformed,
}

/// Exactly one Mobile-Home Authentication Extension matters: the first. It must name the
/// session's SPI and verify (RFC 5944 3.5.1 coverage).
fn authenticate(payload: &[u8], sa: &SecurityAssociation) -> Auth {
    let view = RegistrationRequest::new_unchecked(payload);
    for item in view.extensions() {
        let Ok(item) = item else { return Auth::Malformed };
        if let Extension::MobileHomeAuth(x) = item.ext {
            if x.spi != sa.spi {
                return Auth::OtherSpi;
            }
            let Some(covered) = payload.get(..item.offset + AUTH_EXT_COVERED_HEADER) else {
                return Auth::Malformed;
            };
            return if verify_authenticator(sa.algorithm, &sa.key, covered, x.authenticator) {
                Auth::Verified
            } else {
                Auth::Failed
            };
        }
    }
    Auth::Failed
}
