//! The wake-up (docs/sid-formats.md 5): an RFC 6098 Generic Notification with the
//! Wake-Up element, authenticated under the TN's association, retransmitted until the TN
//! acknowledges it (type 23) or the configured tries are spent.
//!
//! Identification: a fresh NTP timestamp of the Agent's clock per copy (RFC 5944 5.7.1
//! style), whatever replay method the TN's association uses for registrations: the TN
//! judges a wake-up by the timestamp window, and an acknowledgement may answer any copy.

use std::net::{Ipv4Addr, SocketAddrV4};

use mip_core::auth::verify_authenticator;
use mip_core::time::Time;
use mip_core::wire::notification::{GenericNotificationRepr, NotificationDirection, ACK_CODE_SUCCESS};
use mip_core::{Transmit, REGISTRATION_PORT};
use sid_ext::wire::wake_up::{build_wake_up, parse_wake_up_ack};
use sid_ext::wire::WakeUpReason;
use tracing::{debug, info, warn};

use super::state::{PendingWakeUp, Transfer};
use super::{LinkTransmit, SidEvent, WakeUpRoute};
use crate::home_agent::HomeAgent;

impl HomeAgent {
    /// Starts waking the TN of a transfer that just ended; the first copy goes now.
    pub(crate) fn start_wake_up(&mut self, now: Time, t: &Transfer, reason: WakeUpReason) {
        self.sid.cancel_wake_up(t.transferring_node);
        self.sid.wake_ups.push(PendingWakeUp {
            mobile_node: t.mobile_node,
            transferring_node: t.transferring_node,
            tn_spi: t.tn_spi,
            target: t.target,
            reason,
            route: t.route(),
            attempts: 0,
            next_at: now,
            interval: self.config.sid.wake_up_interval,
            sent: Vec::new(),
        });
        self.sid_wake_up_timers(now);
    }

    /// Sends the copies that are due and gives up on wake-ups whose tries are spent.
    pub(crate) fn sid_wake_up_timers(&mut self, now: Time) {
        let max = self.config.sid.wake_up_attempts;
        let mut i = 0;
        while let Some(w) = self.sid.wake_ups.get(i) {
            if w.next_at > now {
                i += 1;
                continue;
            }
            if w.attempts >= max {
                let w = self.sid.wake_ups.remove(i);
                self.stats.sid.wake_ups_abandoned += 1;
                warn!(tn = %w.transferring_node, attempts = w.attempts, "wake-up never acknowledged; giving up");
                self.sid.push_event(SidEvent::WakeUpAbandoned {
                    transferring_node: w.transferring_node,
                    attempts: w.attempts,
                });
                continue;
            }
            let w = w.clone();
            let sent = self.send_wake_up(now, &w);
            if let Some(p) = self.sid.wake_ups.get_mut(i) {
                p.attempts = p.attempts.saturating_add(1);
                p.next_at = now + p.interval;
                p.interval = p.interval.saturating_mul(2);
                if let Some(id) = sent {
                    p.sent.push(id);
                }
            }
            i += 1;
        }
    }

    /// One copy of the wake-up; returns its Identification.
    fn send_wake_up(&mut self, now: Time, w: &PendingWakeUp) -> Option<u64> {
        let mn = self.config.mobile_nodes.get(w.mobile_node)?;
        let sa = mn.sa(w.tn_spi).or(mn.security_associations.first())?;
        // Strictly increasing per wake-up even if the clock stood still.
        let identification = now.to_ntp().max(w.sent.last().map_or(0, |l| l.wrapping_add(1)));
        let repr = GenericNotificationRepr {
            direction: NotificationDirection::HomeAgentToMobileNode,
            home_address: w.transferring_node,
            home_agent: self.config.address,
            care_of_address: w.target,
            identification,
        };
        let payload = match build_wake_up(&repr, self.config.sid.org_id, w.reason, sa) {
            Ok(p) => p,
            Err(e) => {
                warn!(tn = %w.transferring_node, "cannot build the wake-up: {e}");
                return None;
            }
        };
        let tn = w.transferring_node;
        let to_port = |a: Ipv4Addr| SocketAddrV4::new(a, REGISTRATION_PORT);
        match w.route {
            WakeUpRoute::LinkLayer { mac } => self.sid.push_link(LinkTransmit {
                mac,
                source: to_port(self.config.address),
                destination: to_port(tn),
                payload,
            }),
            WakeUpRoute::Interim { address } => {
                self.transmits.push_back(Transmit { destination: to_port(address), payload })
            }
            WakeUpRoute::HomeAddress => self.transmits.push_back(Transmit { destination: to_port(tn), payload }),
        }
        let attempt = w.attempts.saturating_add(1);
        self.stats.sid.wake_ups_sent += 1;
        info!(%tn, route = ?w.route, attempt, "wake-up sent");
        self.sid.push_event(SidEvent::WakeUpSent { transferring_node: tn, route: w.route, attempt, identification });
        Some(identification)
    }

    /// A Generic Notification Acknowledgement (type 23): the TN is awake when it answers
    /// one of our wake-ups under its association. Anything else is dropped.
    pub(crate) fn handle_wake_up_ack(&mut self, _now: Time, source: SocketAddrV4, payload: &[u8]) {
        let ack = match parse_wake_up_ack(payload) {
            Ok(a) => a,
            Err(e) => {
                debug!(%source, "unusable wake-up acknowledgement: {e}");
                self.stats.sid.bad_acknowledgements += 1;
                return;
            }
        };
        let a = ack.ack;
        let found = self.sid.wake_ups.iter().position(|w| {
            w.transferring_node == a.home_address && w.sent.contains(&a.identification)
        });
        let verified = found.and_then(|i| self.sid.wake_ups.get(i)).is_some_and(|w| {
            self.config
                .mobile_nodes
                .get(w.mobile_node)
                .and_then(|mn| mn.sa(ack.auth.spi))
                .is_some_and(|sa| verify_authenticator(sa.algorithm, &sa.key, ack.auth.covered, ack.auth.authenticator))
        });
        let Some(i) = found.filter(|_| verified) else {
            warn!(%source, home = %a.home_address, "wake-up acknowledgement matches no wake-up or fails authentication");
            self.stats.sid.bad_acknowledgements += 1;
            return;
        };
        let w = self.sid.wake_ups.remove(i);
        if a.code != ACK_CODE_SUCCESS {
            info!(tn = %w.transferring_node, code = a.code, "wake-up acknowledged with a non-zero code");
        }
        self.stats.sid.wake_ups_acknowledged += 1;
        info!(tn = %w.transferring_node, attempts = w.attempts, "wake-up acknowledged");
        self.sid.push_event(SidEvent::WakeUpAcknowledged { transferring_node: w.transferring_node, attempts: w.attempts });
    }
}
