//! One registration transaction at a time with the Agent: build, retransmit with
//! back-off (RFC 5944 3.6.3), match and authenticate the reply (3.6.2.1), resynchronise
//! once on an authenticated 133 (5.7.1). Timestamps only.
//!
//! Also the Transferring Node's side of the wake-up that the same peer sends at the end
//! ([`Exchange::accept_wake_up`]), the same for FIG. 1a (the Agent) and FIG. 1b (the
//! same-subnet Target): its freshness is judged against that peer's clock as learned here.

use core::net::{Ipv4Addr, SocketAddrV4};
use std::collections::VecDeque;
use std::time::Duration;

use mip_core::auth::{append_auth_extension, verify_authenticator, SecurityAssociation};
use mip_core::replay::{self, MobileNodeClock, ReplayVerdict};
use mip_core::time::Time;
use mip_core::wire::notification::{
    GenericNotificationAckRepr, NotificationDirection, ACK_CODE_SUCCESS,
};
use mip_core::wire::{
    ext_type, is_skippable, Extension, RegistrationFlags, RegistrationReply,
    RegistrationReplyRepr, RegistrationRequestRepr, ReplyCode, WireError,
    AUTH_EXT_COVERED_HEADER,
};
use mip_core::{Transmit, REGISTRATION_PORT};

use super::{DeviceStats, RequestFailure, Timers};
use crate::wire::wake_up::{build_wake_up_ack, parse_wake_up, ReceivedWakeUp};
use crate::wire::SidExtensions;

/// What a request says, besides its identification.
#[derive(Debug, Clone)]
pub(crate) struct RequestSpec {
    pub flags: RegistrationFlags,
    pub lifetime: u16,
    pub home_address: Ipv4Addr,
    pub agent: Ipv4Addr,
    pub care_of_address: Ipv4Addr,
    /// The SID CVSEs, already encoded, placed before the authenticator.
    pub extensions: Vec<u8>,
    pub sa: SecurityAssociation,
}

impl RequestSpec {
    /// A Transferring Node's stop-transfer demand to `agent` (the Agent, or the
    /// same-subnet Target): lifetime 0, Care-of Address = the TN's own `address`, the
    /// elements of `sid` (the Stop-Transfer Demand, maybe a new Link-Layer Address) before
    /// the authenticator (RFC-NOTES "SID formats" 4).
    pub fn stop_demand(
        address: Ipv4Addr,
        agent: Ipv4Addr,
        sid: &SidExtensions<'_>,
        org_id: u32,
        sa: SecurityAssociation,
    ) -> Result<Self, WireError> {
        let mut extensions = Vec::new();
        sid.append_to(org_id, &mut extensions)?;
        Ok(RequestSpec {
            flags: RegistrationFlags::default(),
            lifetime: 0,
            home_address: address,
            agent,
            care_of_address: address,
            extensions,
            sa,
        })
    }
}

/// What a Transferring Node accepts as its wake-up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WakeUpCheck<'a> {
    /// Vendor/Org-ID of the Wake-Up element.
    pub org_id: u32,
    /// The TN's address: the wake-up's Home Address.
    pub address: Ipv4Addr,
    /// The association it must verify under; `None` (no session known): none is accepted.
    pub sa: Option<&'a SecurityAssociation>,
    /// How far its timestamp may be from the sender's clock.
    pub window: Duration,
}

#[derive(Debug)]
struct Pending<K> {
    kind: K,
    spec: RequestSpec,
    identification: u64,
    attempts: u32,
    last_sent: Time,
    deadline: Time,
    interval: Duration,
    resynced: bool,
}

/// What ended a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome<K> {
    Accepted { kind: K, lifetime: u16, sent_at: Time },
    Failed { kind: K, failure: RequestFailure },
}

/// SplitMix64: the identification's random low bits (RFC 5944 5.7 asks for
/// unpredictability against replay bookkeeping, not secrecy; `MobileNode` does the same).
#[derive(Debug)]
struct SplitMix(u64);

impl SplitMix {
    fn next_u32(&mut self) -> u32 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 32) as u32
    }
}

#[derive(Debug)]
pub(crate) struct Exchange<K> {
    timers: Timers,
    clock: MobileNodeClock,
    rng: SplitMix,
    pending: Option<Pending<K>>,
    pub transmits: VecDeque<Transmit>,
    pub stats: DeviceStats,
}

impl<K: Copy> Exchange<K> {
    pub fn new(timers: Timers, seed: u64) -> Self {
        Exchange {
            timers,
            clock: MobileNodeClock::new(),
            rng: SplitMix(seed),
            pending: None,
            transmits: VecDeque::new(),
            stats: DeviceStats::default(),
        }
    }

    pub fn pending_kind(&self) -> Option<K> {
        self.pending.as_ref().map(|p| p.kind)
    }

    pub fn deadline(&self) -> Option<Time> {
        self.pending.as_ref().map(|p| p.deadline)
    }

    /// Starts a transaction, replacing the one in flight; the request goes out now.
    pub fn start(&mut self, now: Time, kind: K, spec: RequestSpec) {
        let mut p = Pending {
            kind,
            spec,
            identification: 0,
            attempts: 0,
            last_sent: now,
            deadline: now,
            interval: self.timers.initial_retransmit.max(Duration::from_secs(1)),
            resynced: false,
        };
        self.send(now, &mut p);
        self.pending = Some(p);
    }

    pub fn cancel(&mut self) {
        self.pending = None;
    }

    /// Every transmission is a new registration under timestamps (3.6.3): new id.
    fn send(&mut self, now: Time, p: &mut Pending<K>) {
        p.identification = self.clock.next_identification(now, self.rng.next_u32());
        let repr = RegistrationRequestRepr {
            flags: RegistrationFlags(
                p.spec.flags.bits() & !(RegistrationFlags::R_RESERVED | RegistrationFlags::X),
            ),
            lifetime: p.spec.lifetime,
            home_address: p.spec.home_address,
            home_agent: p.spec.agent,
            care_of_address: p.spec.care_of_address,
            identification: p.identification,
        };
        let mut m = repr.to_bytes();
        m.extend_from_slice(&p.spec.extensions);
        append_auth_extension(&mut m, ext_type::MOBILE_HOME_AUTH, &p.spec.sa);
        if p.attempts > 0 {
            self.stats.retransmissions += 1;
        }
        self.stats.requests_sent += 1;
        p.attempts += 1;
        p.last_sent = now;
        p.deadline = now + p.interval;
        p.interval = p
            .interval
            .saturating_mul(2)
            .min(self.timers.max_retransmit.max(Duration::from_secs(1)));
        self.transmits.push_back(Transmit {
            destination: SocketAddrV4::new(p.spec.agent, REGISTRATION_PORT),
            payload: m,
        });
    }

    pub fn handle_timeout(&mut self, now: Time) -> Option<Outcome<K>> {
        let mut p = self.pending.take()?;
        if p.deadline > now {
            self.pending = Some(p);
            return None;
        }
        if p.attempts >= self.timers.max_attempts.max(1) {
            return Some(Outcome::Failed {
                kind: p.kind,
                failure: RequestFailure::NoAnswer { attempts: p.attempts },
            });
        }
        self.send(now, &mut p);
        self.pending = Some(p);
        None
    }

    /// A Registration Reply (type 3). `None`: discarded, or resynchronised and resent.
    pub fn handle_reply(&mut self, now: Time, payload: &[u8]) -> Option<Outcome<K>> {
        let Ok(view) = RegistrationReply::new_checked(payload) else {
            self.stats.discarded_malformed += 1;
            return None;
        };
        let Ok(repr) = RegistrationReplyRepr::parse(&view) else {
            self.stats.discarded_malformed += 1;
            return None;
        };
        let Some(p) = self.pending.as_ref() else {
            self.stats.discarded_unmatched += 1;
            return None;
        };
        if repr.home_address != p.spec.home_address
            || !replay::low_order_matches(p.identification, repr.identification)
        {
            self.stats.discarded_unmatched += 1;
            return None;
        }
        if !reply_authenticated(payload, &view, &p.spec.sa) {
            self.stats.discarded_auth += 1;
            return None;
        }
        let mut p = self.pending.take()?;
        if repr.code == ReplyCode::IdentificationMismatch && !p.resynced {
            self.stats.resyncs += 1;
            self.clock
                .resynchronise(p.identification, repr.identification, now);
            p.resynced = true;
            p.attempts = 0;
            p.interval = self.timers.initial_retransmit.max(Duration::from_secs(1));
            self.send(now, &mut p);
            self.pending = Some(p);
            return None;
        }
        if repr.code.is_accepted() {
            self.stats.replies_accepted += 1;
            // Never believe more than was asked (3.4).
            let lifetime = repr.lifetime.min(p.spec.lifetime);
            Some(Outcome::Accepted {
                kind: p.kind,
                lifetime,
                sent_at: p.last_sent,
            })
        } else {
            self.stats.replies_denied += 1;
            Some(Outcome::Failed {
                kind: p.kind,
                failure: RequestFailure::Denied(repr.code),
            })
        }
    }
}

impl<K> Exchange<K> {
    /// A wake-up (Generic Notification, type 22) as the Transferring Node takes it
    /// (RFC-NOTES "SID formats" 5): for `check.address`, verified under `check.sa`,
    /// fresh by timestamp against the sender's clock (as learned from its 133 replies, if
    /// any) and newer than `last`. Then it is counted, remembered in `last` and
    /// acknowledged (type 23, MD 2, under the same association) to its Home Agent
    /// Address. `None`: discarded and counted, nothing sent (silence).
    pub fn accept_wake_up<'p>(
        &mut self,
        now: Time,
        payload: &'p [u8],
        check: &WakeUpCheck<'_>,
        last: &mut Option<u64>,
    ) -> Option<ReceivedWakeUp<'p>> {
        let Some((w, sa)) = self.verify_wake_up(now, payload, check, *last) else {
            self.stats.wake_ups_discarded += 1;
            return None;
        };
        let n = w.notification;
        *last = Some(n.identification);
        self.stats.wake_ups_accepted += 1;
        let ack = GenericNotificationAckRepr::answering(
            &n,
            NotificationDirection::MobileNodeToHomeAgent,
            ACK_CODE_SUCCESS,
        );
        self.transmits.push_back(Transmit {
            destination: SocketAddrV4::new(n.home_agent, REGISTRATION_PORT),
            payload: build_wake_up_ack(&ack, sa),
        });
        Some(w)
    }

    fn verify_wake_up<'p, 's>(
        &self,
        now: Time,
        payload: &'p [u8],
        check: &WakeUpCheck<'s>,
        last: Option<u64>,
    ) -> Option<(ReceivedWakeUp<'p>, &'s SecurityAssociation)> {
        let w = parse_wake_up(payload, check.org_id).ok()?;
        let sa = check.sa?;
        let n = w.notification;
        if n.home_address != check.address
            || w.auth.spi != sa.spi
            || !verify_authenticator(sa.algorithm, &sa.key, w.auth.covered, w.auth.authenticator)
        {
            return None;
        }
        // The sender's clock, as learned from its 133 replies, if any.
        let sender_now =
            Time::from_micros(now.as_micros().saturating_add_signed(self.clock.offset_micros()));
        (replay::check_timestamp(n.identification, sender_now, check.window, last)
            == ReplayVerdict::Fresh)
            .then_some((w, sa))
    }
}

/// Exactly one Mobile-Home Authentication Extension, under our SPI, that verifies; no
/// critical extension we do not understand (RFC 5944 1.9, 3.6.2.1).
fn reply_authenticated(
    payload: &[u8],
    view: &RegistrationReply<&[u8]>,
    sa: &SecurityAssociation,
) -> bool {
    let mut found = None;
    for item in view.extensions() {
        let Ok(item) = item else { return false };
        match item.ext {
            Extension::MobileHomeAuth(a) => {
                if found.is_some() {
                    return false;
                }
                found = Some((item.offset, a));
            }
            Extension::CriticalVendor(_) => return false,
            Extension::Unknown { ext_type, .. } if !is_skippable(ext_type) => return false,
            _ => {}
        }
    }
    let Some((offset, a)) = found else { return false };
    let Some(covered) = payload.get(..offset + AUTH_EXT_COVERED_HEADER) else {
        return false;
    };
    a.spi == sa.spi && verify_authenticator(sa.algorithm, &sa.key, covered, a.authenticator)
}
