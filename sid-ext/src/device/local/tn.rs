//! The Transferring Node of a same-subnet transfer: take-over request to the Target, release
//! on its authenticated reply, take-back on the wake-up or after a stop-transfer demand.

use core::net::{Ipv4Addr, SocketAddrV4};
use std::collections::VecDeque;
use std::time::Duration;

use mip_core::auth::SecurityAssociation;
use mip_core::replay;
use mip_core::time::Time;
use mip_core::wire::notification::NOTIFICATION_TYPE;
use mip_core::wire::{message_type, RegistrationFlags, REPLY_TYPE};
use mip_core::Transmit;

use super::super::exchange::{Exchange, Outcome, RequestSpec, WakeUpCheck};
use super::super::{DeviceError, DeviceStats, LinkAddress, RequestFailure, Timers};
use super::{local_association, Announcer, DEFAULT_ANNOUNCE_AFTER};
use crate::crypto::SessionKey;
use crate::wire::{SidExtensions, StopReason, WakeUpReason};

/// The TN's standing configuration for same-subnet transfers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTnConfig {
    /// The address that moves.
    pub address: Ipv4Addr,
    /// Vendor/Org-ID of the SID CVSEs.
    pub org_id: u32,
    /// Where the wake-up should reach the TN: its link-layer address...
    pub link_address: Option<LinkAddress>,
    /// ...and/or an interim address it holds during the transfer.
    pub interim: Option<Ipv4Addr>,
    pub timers: Timers,
    /// How far a wake-up's timestamp may be from the TN's clock.
    pub wake_up_window: Duration,
    /// Gratuitous ARP repeats after the take-back.
    pub announce_after: Vec<Duration>,
    /// A TN still released this long after the granted lifetime ran out has missed the
    /// wake-up: it sends a stop-transfer demand (reason 4) and takes the address back.
    pub missed_wake_up_after: Duration,
}

impl LocalTnConfig {
    pub fn new(address: Ipv4Addr) -> Self {
        LocalTnConfig {
            address,
            org_id: crate::wire::DEFAULT_ORG_ID,
            link_address: None,
            interim: None,
            timers: Timers::default(),
            wake_up_window: replay::DEFAULT_TIMESTAMP_WINDOW,
            announce_after: DEFAULT_ANNOUNCE_AFTER.to_vec(),
            missed_wake_up_after: Duration::from_secs(5),
        }
    }
}

/// One same-subnet transfer to start: the outcome of a negotiation without an Agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPlan {
    pub target: Ipv4Addr,
    pub session_key: SessionKey,
    pub lifetime: u16,
}

/// Where the TN stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LocalTnState {
    /// The TN holds its address.
    Home,
    /// Take-over request sent, no answer yet; the TN still holds its address.
    Requesting { target: Ipv4Addr },
    /// The Target holds the address; the TN does not answer ARP for it.
    Transferred { target: Ipv4Addr, lifetime: u16 },
    /// Stop-transfer demand sent, no answer yet.
    Stopping { target: Ipv4Addr },
}

impl LocalTnState {
    pub fn name(&self) -> &'static str {
        match self {
            LocalTnState::Home => "home",
            LocalTnState::Requesting { .. } => "requesting",
            LocalTnState::Transferred { .. } => "transferred",
            LocalTnState::Stopping { .. } => "stopping",
        }
    }
}

/// What the shell reports or acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalTnEvent {
    /// The Target confirmed it holds the address.
    TakenOver { target: Ipv4Addr, lifetime: u16, session_spi: u32 },
    /// Stop answering ARP for the address (the Target now does).
    ReleaseAddress { address: Ipv4Addr },
    /// The Target refused or never answered; the TN kept its address.
    TakeOverFailed { target: Ipv4Addr, failure: RequestFailure },
    /// The Target accepted the stop-transfer demand.
    StopAccepted,
    /// No authenticated answer to the stop-transfer demand: the address is taken back
    /// anyway (it is the TN's).
    StopUnanswered { failure: RequestFailure },
    /// An authenticated, fresh wake-up arrived and was acknowledged.
    WokenUp { reason: WakeUpReason, target: Ipv4Addr },
    /// Answer ARP for the address again and announce it (gratuitous ARP).
    TakeBackAddress { address: Ipv4Addr },
    /// Announce the address again (gratuitous ARP, request and reply).
    Announce { address: Ipv4Addr },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    TakeOver,
    Stop,
}

#[derive(Debug)]
struct Session {
    target: Ipv4Addr,
    sa: SecurityAssociation,
}

/// The Transferring Node's side of FIG. 1b. One session at a time.
#[derive(Debug)]
pub struct LocalTn {
    cfg: LocalTnConfig,
    exchange: Exchange<Kind>,
    state: LocalTnState,
    /// The association of the current (or last) session: kept after the end, so that late
    /// copies of its wake-up are still acknowledged and a stop demand can still be sent.
    session: Option<Session>,
    last_wake_up: Option<u64>,
    /// When a released TN decides it missed the wake-up.
    overdue_at: Option<Time>,
    announcer: Announcer,
    events: VecDeque<LocalTnEvent>,
}

impl LocalTn {
    pub fn new(cfg: LocalTnConfig, seed: u64) -> Self {
        LocalTn {
            exchange: Exchange::new(cfg.timers, seed),
            cfg,
            state: LocalTnState::Home,
            session: None,
            last_wake_up: None,
            overdue_at: None,
            announcer: Announcer::default(),
            events: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &LocalTnConfig {
        &self.cfg
    }

    pub fn state(&self) -> LocalTnState {
        self.state
    }

    pub fn stats(&self) -> &DeviceStats {
        &self.exchange.stats
    }

    /// SPI of the current (or last) session's association.
    pub fn session_spi(&self) -> Option<u32> {
        self.session.as_ref().map(|s| s.sa.spi)
    }

    /// Tells the Target to take the address now: a Registration Request to the Target's
    /// UDP 434 with Target Address, Session SPI and Link-Layer and/or Interim Address,
    /// under the same-subnet association. The address is released only once the Target
    /// answers (it then already holds it).
    pub fn take_over(&mut self, now: Time, plan: &LocalPlan) -> Result<(), DeviceError> {
        if self.state != LocalTnState::Home {
            return Err(DeviceError::WrongState(self.state.name()));
        }
        let target = plan.target;
        if target.is_unspecified() || target.is_broadcast() || target.is_multicast() {
            return Err(DeviceError::BadAddress("target must be unicast"));
        }
        if target == self.cfg.address {
            return Err(DeviceError::BadAddress("target is the TN itself"));
        }
        if self.cfg.link_address.is_none() && self.cfg.interim.is_none() {
            return Err(DeviceError::NoWakeUpAddress);
        }
        let sa = local_association(&plan.session_key)?;
        let sid = SidExtensions {
            target_address: Some(target),
            session_spi: Some(sa.spi),
            link_layer_address: self.cfg.link_address.as_ref().map(LinkAddress::as_element),
            interim_address: self.cfg.interim,
            ..SidExtensions::default()
        };
        let mut extensions = Vec::new();
        sid.append_to(self.cfg.org_id, &mut extensions)?;
        let spec = RequestSpec {
            flags: RegistrationFlags::default(),
            lifetime: plan.lifetime.max(1),
            home_address: self.cfg.address,
            agent: target,
            care_of_address: target,
            extensions,
            sa: sa.clone(),
        };
        self.session = Some(Session { target, sa });
        self.last_wake_up = None;
        self.overdue_at = None;
        self.announcer.cancel();
        self.exchange.start(now, Kind::TakeOver, spec);
        self.state = LocalTnState::Requesting { target };
        Ok(())
    }

    /// Demands that the Target stop holding the address: at any time while a session is
    /// known, also after its end (a missed wake-up). Lifetime 0, Care-of Address = the
    /// TN's address, the Stop-Transfer Demand element alone.
    pub fn stop(&mut self, now: Time, reason: StopReason) -> Result<(), DeviceError> {
        let s = self
            .session
            .as_ref()
            .ok_or(DeviceError::WrongState("no same-subnet session"))?;
        let target = s.target;
        let sid = SidExtensions {
            stop_transfer: Some(reason),
            ..SidExtensions::default()
        };
        let c = &self.cfg;
        let spec = RequestSpec::stop_demand(c.address, target, &sid, c.org_id, s.sa.clone())?;
        self.overdue_at = None;
        self.exchange.start(now, Kind::Stop, spec);
        self.state = LocalTnState::Stopping { target };
        Ok(())
    }

    pub fn handle_datagram(&mut self, now: Time, source: SocketAddrV4, payload: &[u8]) {
        let _ = source; // The authenticator vouches, not the address.
        match message_type(payload) {
            Some(REPLY_TYPE) => {
                if let Some(outcome) = self.exchange.handle_reply(now, payload) {
                    self.finish(now, outcome);
                }
            }
            Some(NOTIFICATION_TYPE) => self.wake_up(now, payload),
            _ => self.exchange.stats.discarded_malformed += 1,
        }
    }

    pub fn handle_timeout(&mut self, now: Time) {
        if let Some(outcome) = self.exchange.handle_timeout(now) {
            self.finish(now, outcome);
        }
        if matches!(self.state, LocalTnState::Transferred { .. })
            && self.overdue_at.is_some_and(|t| t <= now)
        {
            // Cannot fail: Transferred implies a session.
            let _ = self.stop(now, StopReason::MissedWakeUp);
        }
        if self.announcer.due(now, &self.cfg.announce_after) {
            self.events.push_back(LocalTnEvent::Announce { address: self.cfg.address });
        }
    }

    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.exchange.transmits.pop_front()
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<LocalTnEvent> {
        self.events.pop_front()
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Time> {
        let overdue = self
            .overdue_at
            .filter(|_| matches!(self.state, LocalTnState::Transferred { .. }));
        [
            self.exchange.deadline(),
            overdue,
            self.announcer.deadline(&self.cfg.announce_after),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn take_back(&mut self, now: Time) {
        self.state = LocalTnState::Home;
        self.overdue_at = None;
        self.announcer.start(now);
        self.events.push_back(LocalTnEvent::TakeBackAddress { address: self.cfg.address });
    }

    fn finish(&mut self, now: Time, outcome: Outcome<Kind>) {
        let target = self.session.as_ref().map_or(Ipv4Addr::UNSPECIFIED, |s| s.target);
        match outcome {
            Outcome::Accepted { kind: Kind::TakeOver, lifetime, sent_at } if lifetime > 0 => {
                self.state = LocalTnState::Transferred { target, lifetime };
                let l = Duration::from_secs(u64::from(lifetime));
                self.overdue_at = Some(sent_at + l + self.cfg.missed_wake_up_after);
                self.events.push_back(LocalTnEvent::TakenOver {
                    target,
                    lifetime,
                    session_spi: self.session_spi().unwrap_or(0),
                });
                self.events.push_back(LocalTnEvent::ReleaseAddress { address: self.cfg.address });
            }
            Outcome::Accepted { kind: Kind::TakeOver, .. } => {
                // Nothing granted: the Target does not hold the address.
                self.state = LocalTnState::Home;
                let failure = RequestFailure::Denied(mip_core::wire::ReplyCode::Accepted);
                self.events.push_back(LocalTnEvent::TakeOverFailed { target, failure });
            }
            Outcome::Failed { kind: Kind::TakeOver, failure } => {
                self.events.push_back(LocalTnEvent::TakeOverFailed { target, failure });
                if matches!(failure, RequestFailure::NoAnswer { .. }) {
                    // The Target may have taken the address and lost every reply: the
                    // TN, which never released it, announces it again.
                    self.take_back(now);
                } else {
                    self.state = LocalTnState::Home;
                }
            }
            Outcome::Accepted { kind: Kind::Stop, .. } => {
                self.events.push_back(LocalTnEvent::StopAccepted);
                self.take_back(now);
            }
            Outcome::Failed { kind: Kind::Stop, failure } => {
                self.events.push_back(LocalTnEvent::StopUnanswered { failure });
                self.take_back(now);
            }
        }
    }

    /// A wake-up from the Target: verified under the session's association, fresh by
    /// timestamp, acknowledged (type 23, MD 2) to its Home Agent Address; then the address
    /// is taken back unless the TN is home already. Anything else: silence.
    fn wake_up(&mut self, now: Time, payload: &[u8]) {
        let c = &self.cfg;
        let sa = self.session.as_ref().map(|s| &s.sa);
        let check = WakeUpCheck { org_id: c.org_id, address: c.address, sa, window: c.wake_up_window };
        let last = &mut self.last_wake_up;
        let Some(w) = self.exchange.accept_wake_up(now, payload, &check, last) else { return };
        if self.state != LocalTnState::Home {
            // Accepted: a session is known.
            let target = self.session.as_ref().map_or(Ipv4Addr::UNSPECIFIED, |s| s.target);
            self.exchange.cancel();
            self.events.push_back(LocalTnEvent::WokenUp { reason: w.reason, target });
            self.take_back(now);
        }
    }
}
