//! The Target: holds the transferred address while the Agent's binding lasts, renews it
//! under the temporary session association, ends it, or hands it on.

use core::net::{Ipv4Addr, SocketAddrV4};
use std::collections::VecDeque;
use std::time::Duration;

use mip_core::auth::SecurityAssociation;
use mip_core::time::Time;
use mip_core::wire::{message_type, RegistrationFlags, ReplyCode, REPLY_TYPE};
use mip_core::Transmit;

use super::exchange::{Exchange, Outcome, RequestSpec};
use super::{
    session_association, session_spi, transfer_context, DeviceError, DeviceStats,
    RequestFailure, Timers, TransferStage,
};
use crate::crypto::{self, SessionKey};
use crate::wire::{EncryptedSessionKey, SessionKeyAlgorithm, SidExtensions, TransferFlags};

/// The Target's standing configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetConfig {
    /// The Target's own address: the tunnel's end, the Care-of Address of its requests.
    pub address: Ipv4Addr,
    pub org_id: u32,
    pub timers: Timers,
    /// The first renewal goes this long after the session is received: it confirms the
    /// binding exists and learns the lifetime the Agent granted (the Target only knows the
    /// negotiated one, which the Agent may cap).
    pub confirm_delay: Duration,
    /// Confirming renewals refused (the TN's request may not have reached the Agent yet)
    /// before giving up.
    pub confirm_attempts: u32,
}

impl TargetConfig {
    pub fn new(address: Ipv4Addr) -> Self {
        TargetConfig {
            address,
            org_id: crate::wire::DEFAULT_ORG_ID,
            timers: Timers::default(),
            confirm_delay: Duration::from_secs(2),
            confirm_attempts: 4,
        }
    }
}

/// A session received in a negotiation (this device being the Target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSession {
    pub tn_address: Ipv4Addr,
    pub agent: Ipv4Addr,
    pub session_key: SessionKey,
    pub lifetime: u16,
    /// F: this Target may hand the session on.
    pub further_transfer: bool,
    /// T: return traffic goes reverse-tunnelled through the Agent.
    pub reverse_tunnel: bool,
}

/// Where the Target stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetState {
    Idle,
    /// Holding the TN's address; `confirmed` once the Agent accepted a renewal.
    Holding { tn_address: Ipv4Addr, confirmed: bool },
    /// A renewal with lifetime 0 is in flight.
    Ending { tn_address: Ipv4Addr },
    /// A further transfer is in flight.
    HandingOver { tn_address: Ipv4Addr, to: Ipv4Addr },
}

impl TargetState {
    pub fn name(&self) -> &'static str {
        match self {
            TargetState::Idle => "idle",
            TargetState::Holding { confirmed: false, .. } => "holding-unconfirmed",
            TargetState::Holding { .. } => "holding",
            TargetState::Ending { .. } => "ending",
            TargetState::HandingOver { .. } => "handing-over",
        }
    }
}

/// What the shell reports or acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetEvent {
    /// Put the address on the TUN device and receive the Agent's tunnel.
    InstallAddress { address: Ipv4Addr, agent: Ipv4Addr, reverse_tunnel: bool },
    /// The Agent accepted a renewal.
    Renewed { lifetime: u16 },
    RenewFailed { failure: RequestFailure },
    /// The Agent accepted the lifetime-0 renewal.
    Ended,
    /// The binding ran out in our view.
    Expired,
    /// A further transfer was accepted: the second Target has the address.
    HandedOver { to: Ipv4Addr, session_spi: u32 },
    FurtherTransferFailed { to: Ipv4Addr, failure: RequestFailure },
    /// Take the address off the TUN device.
    RemoveAddress { address: Ipv4Addr },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Renew,
    End,
    Further { to: Ipv4Addr, spi: u32 },
}

#[derive(Debug)]
struct Active {
    session: TargetSession,
    sa: SecurityAssociation,
    expires: Time,
    refresh_at: Option<Time>,
    confirmed: bool,
    confirm_failures: u32,
}

/// The Target's side. One session at a time.
#[derive(Debug)]
pub struct Target {
    cfg: TargetConfig,
    exchange: Exchange<Kind>,
    active: Option<Active>,
    events: VecDeque<TargetEvent>,
}

impl Target {
    pub fn new(cfg: TargetConfig, seed: u64) -> Self {
        Target {
            exchange: Exchange::new(cfg.timers, seed),
            cfg,
            active: None,
            events: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &TargetConfig {
        &self.cfg
    }

    pub fn stats(&self) -> &DeviceStats {
        &self.exchange.stats
    }

    pub fn session(&self) -> Option<&TargetSession> {
        self.active.as_ref().map(|a| &a.session)
    }

    pub fn session_spi(&self) -> Option<u32> {
        self.active.as_ref().map(|a| a.sa.spi)
    }

    /// When the binding ends in our view.
    pub fn expires(&self) -> Option<Time> {
        self.active.as_ref().map(|a| a.expires)
    }

    pub fn state(&self) -> TargetState {
        let Some(a) = &self.active else { return TargetState::Idle };
        let tn_address = a.session.tn_address;
        match self.exchange.pending_kind() {
            Some(Kind::End) => TargetState::Ending { tn_address },
            Some(Kind::Further { to, .. }) => TargetState::HandingOver { tn_address, to },
            _ => TargetState::Holding { tn_address, confirmed: a.confirmed },
        }
    }

    /// Takes a session negotiated with a TN (or with a Target handing it on). Replaces
    /// any session held (reported removed).
    pub fn accept_session(&mut self, now: Time, session: TargetSession) -> Result<(), DeviceError> {
        if session.tn_address.is_unspecified() || session.agent.is_unspecified() {
            return Err(DeviceError::BadAddress("session without TN or Agent address"));
        }
        let spi = session_spi(&session.session_key)?;
        if let Some(old) = self.active.take() {
            self.exchange.cancel();
            self.events.push_back(TargetEvent::RemoveAddress { address: old.session.tn_address });
        }
        self.events.push_back(TargetEvent::InstallAddress {
            address: session.tn_address,
            agent: session.agent,
            reverse_tunnel: session.reverse_tunnel,
        });
        let lifetime = Duration::from_secs(u64::from(session.lifetime.max(1)));
        self.active = Some(Active {
            sa: session_association(spi, &session.session_key),
            expires: now + lifetime + self.cfg.confirm_delay,
            refresh_at: Some(now + self.cfg.confirm_delay),
            confirmed: false,
            confirm_failures: 0,
            session,
        });
        Ok(())
    }

    /// Renews now (also on the user's command).
    pub fn renew(&mut self, now: Time) -> Result<(), DeviceError> {
        let spec = self.renewal_spec(None)?;
        self.exchange.start(now, Kind::Renew, spec);
        Ok(())
    }

    /// Ends the transfer: renewal with lifetime 0.
    pub fn end(&mut self, now: Time) -> Result<(), DeviceError> {
        let spec = self.renewal_spec(Some(0))?;
        self.exchange.start(now, Kind::End, spec);
        Ok(())
    }

    /// Hands the session on to `to` with a new key negotiated with it (only when the TN
    /// granted F). `further_transfer` is the second Target's own permission.
    pub fn transfer_further(
        &mut self,
        now: Time,
        to: Ipv4Addr,
        new_key: &SessionKey,
        lifetime: u16,
        further_transfer: bool,
        reverse_tunnel: bool,
    ) -> Result<(), DeviceError> {
        let a = self.active.as_ref().ok_or(DeviceError::WrongState("idle"))?;
        if !a.session.further_transfer {
            return Err(DeviceError::FurtherTransferNotPermitted);
        }
        if to.is_unspecified() || to.is_broadcast() || to.is_multicast() || to == self.cfg.address {
            return Err(DeviceError::BadAddress("second Target must be another unicast address"));
        }
        let spi = session_spi(new_key)?;
        if spi == a.sa.spi {
            return Err(DeviceError::SpiClash(spi));
        }
        let tn = a.session.tn_address;
        let context = transfer_context(TransferStage::FurtherTransfer, tn, to, spi, a.session.agent);
        let wrapped = crypto::wrap_for_association(new_key, &a.sa.key, &context)?;
        let sid = SidExtensions {
            target_address: Some(to),
            session_key: Some(EncryptedSessionKey {
                algorithm: SessionKeyAlgorithm::AesKeyWrapPadded,
                data: &wrapped,
            }),
            session_spi: Some(spi),
            transfer_flags: Some(TransferFlags::new(further_transfer, reverse_tunnel)),
            transferring_node: Some(tn),
            ..SidExtensions::default()
        };
        let mut extensions = Vec::new();
        sid.append_to(self.cfg.org_id, &mut extensions)?;
        let mut flags = RegistrationFlags::default();
        if reverse_tunnel {
            flags = flags.with(RegistrationFlags::T);
        }
        let spec = RequestSpec {
            flags,
            lifetime: lifetime.max(1),
            home_address: tn,
            agent: a.session.agent,
            care_of_address: to,
            extensions,
            sa: a.sa.clone(),
        };
        self.exchange.start(now, Kind::Further { to, spi }, spec);
        Ok(())
    }

    fn renewal_spec(&self, lifetime: Option<u16>) -> Result<RequestSpec, DeviceError> {
        let a = self.active.as_ref().ok_or(DeviceError::WrongState("idle"))?;
        let mut flags = RegistrationFlags::default();
        if a.session.reverse_tunnel {
            flags = flags.with(RegistrationFlags::T);
        }
        Ok(RequestSpec {
            flags,
            lifetime: lifetime.unwrap_or(a.session.lifetime.max(1)),
            home_address: a.session.tn_address,
            agent: a.session.agent,
            care_of_address: self.cfg.address,
            extensions: Vec::new(),
            sa: a.sa.clone(),
        })
    }

    pub fn handle_datagram(&mut self, now: Time, source: SocketAddrV4, payload: &[u8]) {
        let _ = source;
        if message_type(payload) != Some(REPLY_TYPE) {
            self.exchange.stats.discarded_malformed += 1;
            return;
        }
        if let Some(outcome) = self.exchange.handle_reply(now, payload) {
            self.finish(now, outcome);
        }
    }

    pub fn handle_timeout(&mut self, now: Time) {
        if let Some(outcome) = self.exchange.handle_timeout(now) {
            self.finish(now, outcome);
        }
        let Some(a) = self.active.as_mut() else { return };
        if a.expires <= now {
            let address = a.session.tn_address;
            self.active = None;
            self.exchange.cancel();
            self.events.push_back(TargetEvent::Expired);
            self.events.push_back(TargetEvent::RemoveAddress { address });
            return;
        }
        if a.refresh_at.is_some_and(|t| t <= now) && self.exchange.pending_kind().is_none() {
            a.refresh_at = None;
            if let Ok(spec) = self.renewal_spec(None) {
                self.exchange.start(now, Kind::Renew, spec);
            }
        }
    }

    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.exchange.transmits.pop_front()
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<TargetEvent> {
        self.events.pop_front()
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Time> {
        let a = self.active.as_ref();
        [
            self.exchange.deadline(),
            a.and_then(|a| a.refresh_at),
            a.map(|a| a.expires),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn finish(&mut self, now: Time, outcome: Outcome<Kind>) {
        let Some(a) = self.active.as_mut() else { return };
        let address = a.session.tn_address;
        match outcome {
            Outcome::Accepted { kind: Kind::Renew, lifetime, sent_at } => {
                if lifetime == 0 {
                    // The Agent granted nothing: the transfer is over.
                    self.active = None;
                    self.events.push_back(TargetEvent::Ended);
                    self.events.push_back(TargetEvent::RemoveAddress { address });
                    return;
                }
                let l = Duration::from_secs(u64::from(lifetime));
                a.confirmed = true;
                a.expires = sent_at + l;
                // 3/4 of the lifetime leaves a whole retransmission budget for short ones.
                a.refresh_at = Some(sent_at + (l * 3 / 4).max(Duration::from_secs(1)));
                self.events.push_back(TargetEvent::Renewed { lifetime });
            }
            Outcome::Failed { kind: Kind::Renew, failure } => {
                self.events.push_back(TargetEvent::RenewFailed { failure });
                let retry = match failure {
                    // Before confirmation a 131 most likely means the Agent has not seen
                    // the TN's request yet.
                    RequestFailure::Denied(ReplyCode::MobileNodeFailedAuthentication) if !a.confirmed => {
                        a.confirm_failures += 1;
                        a.confirm_failures < self.cfg.confirm_attempts
                    }
                    RequestFailure::Denied(ReplyCode::MobileNodeFailedAuthentication) => false,
                    _ => true,
                };
                if retry {
                    let at = now + self.cfg.confirm_delay;
                    a.refresh_at = (at < a.expires).then_some(at);
                } else {
                    // The Agent does not know this session (ended, or never started).
                    self.active = None;
                    self.events.push_back(TargetEvent::RemoveAddress { address });
                }
            }
            Outcome::Accepted { kind: Kind::End, .. } => {
                self.active = None;
                self.events.push_back(TargetEvent::Ended);
                self.events.push_back(TargetEvent::RemoveAddress { address });
            }
            Outcome::Failed { kind: Kind::End, failure } => {
                // Keep the address until the binding runs out: the Agent still tunnels.
                self.events.push_back(TargetEvent::RenewFailed { failure });
            }
            Outcome::Accepted { kind: Kind::Further { to, spi }, .. } => {
                self.active = None;
                self.events.push_back(TargetEvent::HandedOver { to, session_spi: spi });
                self.events.push_back(TargetEvent::RemoveAddress { address });
            }
            Outcome::Failed { kind: Kind::Further { to, .. }, failure } => {
                self.events.push_back(TargetEvent::FurtherTransferFailed { to, failure });
            }
        }
    }
}
