//! The Transferring Node (TN): asks the Agent to transfer its address, gives the address
//! up, and takes it back on the wake-up or after its own stop-transfer demand.

use core::net::{Ipv4Addr, SocketAddrV4};
use std::collections::VecDeque;
use std::time::Duration;

use mip_core::auth::{ReplayMethod, SecurityAssociation};
use mip_core::replay;
use mip_core::time::Time;
use mip_core::wire::notification::NOTIFICATION_TYPE;
use mip_core::wire::{message_type, RegistrationFlags, REPLY_TYPE};
use mip_core::Transmit;

use super::exchange::{Exchange, Outcome, RequestSpec, WakeUpCheck};
use super::{
    session_spi, transfer_context, DeviceError, DeviceStats, LinkAddress, RequestFailure,
    Timers, TransferStage,
};
use crate::crypto::{self, SessionKey};
use crate::wire::{
    EncryptedSessionKey, SessionKeyAlgorithm, SidExtensions, StopReason, TransferFlags,
    WakeUpReason,
};

/// The TN's standing configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TnConfig {
    /// The address that moves (the TN's home address at the Agent).
    pub address: Ipv4Addr,
    /// The Agent (home agent on the TN's link).
    pub agent: Ipv4Addr,
    /// The TN's mobility security association with the Agent (timestamps).
    pub sa: SecurityAssociation,
    /// Vendor/Org-ID of the SID CVSEs.
    pub org_id: u32,
    /// Where the wake-up should reach the TN: its link-layer address...
    pub link_address: Option<LinkAddress>,
    /// ...and/or an interim address it holds during the transfer.
    pub interim: Option<Ipv4Addr>,
    pub timers: Timers,
    /// How far a wake-up's timestamp may be from the TN's (Agent-corrected) clock.
    pub wake_up_window: Duration,
}

impl TnConfig {
    pub fn new(address: Ipv4Addr, agent: Ipv4Addr, sa: SecurityAssociation) -> Self {
        TnConfig {
            address,
            agent,
            sa,
            org_id: crate::wire::DEFAULT_ORG_ID,
            link_address: None,
            interim: None,
            timers: Timers::default(),
            wake_up_window: replay::DEFAULT_TIMESTAMP_WINDOW,
        }
    }
}

/// One transfer to ask for: the outcome of the negotiation with the Target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferPlan {
    pub target: Ipv4Addr,
    pub session_key: SessionKey,
    pub lifetime: u16,
    /// F: the Target may hand the session on.
    pub further_transfer: bool,
    /// T: the Target reverse-tunnels the return traffic through the Agent.
    pub reverse_tunnel: bool,
}

/// Where the TN stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TnState {
    /// The TN holds its address.
    Home,
    /// Transfer request sent, no answer yet.
    Requesting { target: Ipv4Addr },
    /// The Agent holds the address for the Target; the TN does not answer ARP for it.
    Transferred { target: Ipv4Addr, lifetime: u16 },
    /// Stop-transfer demand sent, no answer yet.
    Stopping,
}

impl TnState {
    pub fn name(&self) -> &'static str {
        match self {
            TnState::Home => "home",
            TnState::Requesting { .. } => "requesting",
            TnState::Transferred { .. } => "transferred",
            TnState::Stopping => "stopping",
        }
    }
}

/// What the shell reports or acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TnEvent {
    /// The Agent accepted the transfer.
    TransferAccepted { target: Ipv4Addr, lifetime: u16, session_spi: u32 },
    /// Stop answering ARP for the address (the Agent now does).
    ReleaseAddress { address: Ipv4Addr },
    TransferFailed { target: Ipv4Addr, failure: RequestFailure },
    /// The Agent accepted the stop-transfer demand.
    StopAccepted,
    StopFailed { failure: RequestFailure },
    /// An authenticated wake-up arrived and was acknowledged.
    WokenUp { reason: WakeUpReason, agent: Ipv4Addr, target: Ipv4Addr },
    /// Answer ARP for the address again and announce it (gratuitous ARP).
    TakeBackAddress { address: Ipv4Addr },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Transfer { target: Ipv4Addr },
    Stop,
}

/// The Transferring Node's side. See the module documentation.
#[derive(Debug)]
pub struct TransferringNode {
    cfg: TnConfig,
    exchange: Exchange<Kind>,
    state: TnState,
    /// SPI of the transfer in flight or in force.
    session_spi: Option<u32>,
    last_wake_up: Option<u64>,
    events: VecDeque<TnEvent>,
}

impl TransferringNode {
    pub fn new(cfg: TnConfig, seed: u64) -> Result<Self, DeviceError> {
        if cfg.sa.replay != ReplayMethod::Timestamp {
            return Err(DeviceError::NonceUnsupported);
        }
        Ok(TransferringNode {
            exchange: Exchange::new(cfg.timers, seed),
            cfg,
            state: TnState::Home,
            session_spi: None,
            last_wake_up: None,
            events: VecDeque::new(),
        })
    }

    pub fn config(&self) -> &TnConfig {
        &self.cfg
    }

    pub fn state(&self) -> TnState {
        self.state
    }

    pub fn stats(&self) -> &DeviceStats {
        &self.exchange.stats
    }

    pub fn session_spi(&self) -> Option<u32> {
        self.session_spi
    }

    /// Asks the Agent to transfer the address to `plan.target` (RFC-NOTES "SID formats" 4:
    /// Target Address, Encrypted Session Key (alg 1), Session SPI, Transfer Flags,
    /// Link-Layer and/or Interim Address; under the TN's association).
    pub fn transfer(&mut self, now: Time, plan: &TransferPlan) -> Result<(), DeviceError> {
        if matches!(self.state, TnState::Stopping) {
            return Err(DeviceError::WrongState(self.state.name()));
        }
        let target = plan.target;
        if target.is_unspecified() || target.is_broadcast() || target.is_multicast() {
            return Err(DeviceError::BadAddress("target must be unicast"));
        }
        if target == self.cfg.address || target == self.cfg.agent {
            return Err(DeviceError::BadAddress("target is the TN or the Agent"));
        }
        if self.cfg.link_address.is_none() && self.cfg.interim.is_none() {
            return Err(DeviceError::NoWakeUpAddress);
        }
        let spi = session_spi(&plan.session_key)?;
        if spi == self.cfg.sa.spi {
            return Err(DeviceError::SpiClash(spi));
        }
        let context = transfer_context(
            TransferStage::Transfer,
            self.cfg.address,
            target,
            spi,
            self.cfg.agent,
        );
        let wrapped = crypto::wrap_for_association(&plan.session_key, &self.cfg.sa.key, &context)?;
        let sid = SidExtensions {
            target_address: Some(target),
            session_key: Some(EncryptedSessionKey {
                algorithm: SessionKeyAlgorithm::AesKeyWrapPadded,
                data: &wrapped,
            }),
            session_spi: Some(spi),
            transfer_flags: Some(TransferFlags::new(plan.further_transfer, plan.reverse_tunnel)),
            link_layer_address: self.cfg.link_address.as_ref().map(LinkAddress::as_element),
            interim_address: self.cfg.interim,
            ..SidExtensions::default()
        };
        let mut extensions = Vec::new();
        sid.append_to(self.cfg.org_id, &mut extensions)?;
        let mut flags = RegistrationFlags::default();
        if plan.reverse_tunnel {
            flags = flags.with(RegistrationFlags::T);
        }
        let spec = RequestSpec {
            flags,
            lifetime: plan.lifetime.max(1),
            home_address: self.cfg.address,
            agent: self.cfg.agent,
            care_of_address: target,
            extensions,
            sa: self.cfg.sa.clone(),
        };
        self.session_spi = Some(spi);
        self.exchange.start(now, Kind::Transfer { target }, spec);
        self.state = TnState::Requesting { target };
        Ok(())
    }

    /// Demands that the Agent stop the transfer: at any time, also when no binding is
    /// known (a missed wake-up). `new_link_address` is the TN's new link-layer address
    /// when it changed; it is remembered and sent.
    pub fn stop(
        &mut self,
        now: Time,
        reason: StopReason,
        new_link_address: Option<LinkAddress>,
    ) -> Result<(), DeviceError> {
        if let Some(l) = new_link_address.clone() {
            self.cfg.link_address = Some(l);
        }
        let sid = SidExtensions {
            link_layer_address: new_link_address.as_ref().map(LinkAddress::as_element),
            stop_transfer: Some(reason),
            ..SidExtensions::default()
        };
        let c = &self.cfg;
        let spec = RequestSpec::stop_demand(c.address, c.agent, &sid, c.org_id, c.sa.clone())?;
        self.exchange.start(now, Kind::Stop, spec);
        self.state = TnState::Stopping;
        Ok(())
    }

    pub fn handle_datagram(&mut self, now: Time, source: SocketAddrV4, payload: &[u8]) {
        let _ = source; // Authenticators vouch, not addresses (the Agent may be multihomed).
        match message_type(payload) {
            Some(REPLY_TYPE) => {
                if let Some(outcome) = self.exchange.handle_reply(now, payload) {
                    self.finish(outcome);
                }
            }
            Some(NOTIFICATION_TYPE) => self.wake_up(now, payload),
            _ => self.exchange.stats.discarded_malformed += 1,
        }
    }

    pub fn handle_timeout(&mut self, now: Time) {
        if let Some(outcome) = self.exchange.handle_timeout(now) {
            self.finish(outcome);
        }
    }

    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.exchange.transmits.pop_front()
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<TnEvent> {
        self.events.pop_front()
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Time> {
        self.exchange.deadline()
    }

    fn finish(&mut self, outcome: Outcome<Kind>) {
        let address = self.cfg.address;
        match outcome {
            Outcome::Accepted { kind: Kind::Transfer { target }, lifetime, .. } => {
                self.state = TnState::Transferred { target, lifetime };
                self.events.push_back(TnEvent::TransferAccepted {
                    target,
                    lifetime,
                    session_spi: self.session_spi.unwrap_or(0),
                });
                self.events.push_back(TnEvent::ReleaseAddress { address });
            }
            Outcome::Failed { kind: Kind::Transfer { target }, failure } => {
                self.state = TnState::Home;
                self.session_spi = None;
                self.events.push_back(TnEvent::TransferFailed { target, failure });
            }
            Outcome::Accepted { kind: Kind::Stop, .. } => {
                self.state = TnState::Home;
                self.session_spi = None;
                self.events.push_back(TnEvent::StopAccepted);
                self.events.push_back(TnEvent::TakeBackAddress { address });
            }
            Outcome::Failed { kind: Kind::Stop, failure } => {
                // We do not know whether the Agent still holds the address: say so, and
                // let the user decide (retry, or take it back anyway).
                self.state = TnState::Home;
                self.events.push_back(TnEvent::StopFailed { failure });
            }
        }
    }

    /// RFC-NOTES "SID formats" 5: verify under the TN's association, check freshness,
    /// acknowledge (type 23, MD 2), take the address back. Anything else: silence.
    fn wake_up(&mut self, now: Time, payload: &[u8]) {
        let c = &self.cfg;
        let sa = Some(&c.sa);
        let check = WakeUpCheck { org_id: c.org_id, address: c.address, sa, window: c.wake_up_window };
        let last = &mut self.last_wake_up;
        let Some(w) = self.exchange.accept_wake_up(now, payload, &check, last) else { return };
        let n = w.notification;
        // A transfer request in flight is a newer decision of the user: keep it.
        if !matches!(self.state, TnState::Requesting { .. }) {
            if self.state == TnState::Stopping {
                self.exchange.cancel();
            }
            self.state = TnState::Home;
            self.session_spi = None;
        }
        self.events.push_back(TnEvent::WokenUp {
            reason: w.reason,
            agent: n.home_agent,
            target: n.care_of_address,
        });
        self.events.push_back(TnEvent::TakeBackAddress { address: self.cfg.address });
    }
}
