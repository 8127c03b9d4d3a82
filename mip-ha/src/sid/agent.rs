//! The Agent's processing of SID requests (RFC-NOTES.md, "SID — the Agent (home agent) side"): transfers and
//! stop-transfer demands from the Transferring Node (TN), renewals and further transfers
//! from the Target. The TN's requests reach here after the home agent authenticated them
//! under the TN's own association and checked their Identification (RFC 5944 3.8.2.1);
//! the Target's are authenticated here, under the session association.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use mip_core::auth::verify_authenticator;
use mip_core::replay::{self, ReplayVerdict};
use mip_core::time::Time;
use mip_core::wire::{RegistrationFlags, ReplyCode};
use sid_ext::wire::{SidExtensions, TransferFlags};
use tracing::{info, warn};

use super::keys::{self, TransferStage};
use super::state::{LinkAddress, Transfer};
use super::{LinkTransmit, SidEvent, TransferEnd, TransferSnapshot};
use crate::bindings::{Binding, TunnelKind};
use crate::home_agent::{HaEvent, HomeAgent, RemovalReason, ReplyContext};
use crate::request::{AuthAt, ScannedRequest};
use crate::stats::DiscardReason;

const POORLY_FORMED: ReplyCode = ReplyCode::PoorlyFormedRequest;

/// The binding's flags: the request's tunnel choices (B, D, M, G; policy already checked
/// them), never S (a transfer is the only binding of the address), and T exactly when
/// the Transfer Flags ask for the reverse path through the Agent.
fn binding_flags(request: RegistrationFlags, transfer: TransferFlags) -> RegistrationFlags {
    let keep = RegistrationFlags::B | RegistrationFlags::D | RegistrationFlags::M | RegistrationFlags::G;
    let flags = RegistrationFlags(request.bits() & keep);
    if transfer.reverse_tunnel() {
        flags.with(RegistrationFlags::T)
    } else {
        flags
    }
}

fn seconds(lifetime: u16) -> Duration {
    Duration::from_secs(u64::from(lifetime))
}

impl HomeAgent {
    /// The next SID event (transfer started, renewed, moved, ended; wake-ups).
    #[must_use]
    pub fn poll_sid_event(&mut self) -> Option<SidEvent> {
        self.sid.events.pop_front()
    }

    /// The next wake-up to send as an Ethernet frame to the TN's stored MAC.
    #[must_use]
    pub fn poll_link_transmit(&mut self) -> Option<LinkTransmit> {
        self.sid.link_transmits.pop_front()
    }

    /// The running transfer of a TN, as `ha-admin` shows it.
    pub fn transfer(&self, now: Time, transferring_node: Ipv4Addr) -> Option<TransferSnapshot> {
        self.sid.transfers.get(&transferring_node).map(|t| t.snapshot(now))
    }

    /// Wake-ups sent and not yet acknowledged nor given up.
    pub fn pending_wake_ups(&self) -> usize {
        self.sid.wake_ups.len()
    }

    fn sid_refuse(&mut self, ctx: &ReplyContext<'_>, code: ReplyCode, why: &str) {
        self.stats.sid.refused += 1;
        info!(home = %ctx.home_address, code = u8::from(code), "SID request refused: {why}");
        self.deny(ctx, code);
    }

    /// A request of the TN, authenticated under its association, that carries SID
    /// elements: a stop-transfer demand when it has the Stop-Transfer element, else a
    /// transfer.
    pub(crate) fn process_transferring_node(
        &mut self,
        now: Time,
        source: SocketAddrV4,
        request: &ScannedRequest<'_>,
        mn_index: usize,
        ctx: &ReplyContext<'_>,
        sid: &SidExtensions<'_>,
    ) {
        if sid.stop_transfer.is_some() {
            self.stop_transfer(now, ctx, sid);
        } else {
            self.start_transfer(now, source, request, mn_index, ctx, sid);
        }
    }

    fn start_transfer(
        &mut self,
        now: Time,
        source: SocketAddrV4,
        request: &ScannedRequest<'_>,
        mn_index: usize,
        ctx: &ReplyContext<'_>,
        sid: &SidExtensions<'_>,
    ) {
        let repr = &request.repr;
        let tn = ctx.home_address;
        let agent = self.config.address;
        let (Some(target), Some(wrapped), Some(spi), Some(flags)) =
            (sid.target_address, sid.session_key, sid.session_spi, sid.transfer_flags)
        else {
            return self.sid_refuse(ctx, POORLY_FORMED, "a transfer needs Target Address, Encrypted Session Key, Session SPI and Transfer Flags");
        };
        let refusal = if sid.wake_up.is_some() {
            Some((POORLY_FORMED, "a request never carries a Wake-Up"))
        } else if sid.link_layer_address.is_none() && sid.interim_address.is_none() {
            Some((POORLY_FORMED, "a transfer needs a Link-Layer Address or an Interim Address"))
        } else if sid.transferring_node.is_some_and(|a| a != tn) {
            Some((POORLY_FORMED, "Transferring Node Address differs from the Home Address"))
        } else if repr.care_of_address != target {
            Some((POORLY_FORMED, "Care-of Address differs from the Target Address"))
        } else if target == tn || target == agent {
            Some((POORLY_FORMED, "the Target is the Transferring Node or the Agent"))
        } else if repr.lifetime == 0 {
            Some((POORLY_FORMED, "a transfer asks for a lifetime"))
        } else if self.config.mobile_nodes.get(mn_index).is_some_and(|m| m.sa(spi).is_some()) {
            // The session SPI is looked up first: it would lock the TN out of its own SPI.
            Some((POORLY_FORMED, "the Session SPI is one of the Transferring Node's own SPIs"))
        } else if flags.reverse_tunnel() && !self.config.reverse_tunnel {
            Some((ReplyCode::ReverseTunnelUnavailable, "reverse tunnelling is not offered"))
        } else if self.bindings.find(tn, target).is_none()
            && self.bindings.len() - self.bindings.for_home(tn).len() >= self.config.max_bindings
        {
            Some((ReplyCode::InsufficientResources, "binding list full"))
        } else {
            None
        };
        if let Some((code, why)) = refusal {
            return self.sid_refuse(ctx, code, why);
        }
        let context = keys::transfer_context(TransferStage::Transfer, tn, target, spi, agent);
        let key = match keys::recover_session_key(
            &wrapped,
            &ctx.mobile_sa.key,
            self.config.sid.private_key.as_ref(),
            &context,
        ) {
            Ok(k) => k,
            Err(e) => {
                self.stats.sid.key_failures += 1;
                warn!(%tn, %target, "session key of a transfer cannot be recovered: {e}");
                return self.sid_refuse(ctx, POORLY_FORMED, "session key cannot be recovered");
            }
        };
        let granted = repr.lifetime.min(self.config.sid.max_transfer_lifetime);
        let session_sa = keys::session_association(spi, &key);
        // The same transfer again (a TN whose reply was lost retries with a new
        // Identification): the association goes on, its replay state with it.
        let mut carried = None;
        // A new transfer replaces the TN's previous one (the TN is evidently awake).
        if let Some(old) = self.sid.transfers.remove(&tn) {
            if old.target == target && old.session_sa == session_sa {
                carried = Some((old.last_timestamp, old.started, old.renewals));
            } else {
                self.transfer_gone(now, old, TransferEnd::Superseded);
            }
        }
        let (last_timestamp, started, renewals) = carried.unwrap_or((None, now, 0));
        self.sid.cancel_wake_up(tn);
        self.install_transfer_binding(Binding {
            home_address: tn,
            care_of_address: target,
            reply_identification: ctx.identification,
            request_identification: repr.identification,
            flags: binding_flags(repr.flags, flags),
            granted_lifetime: granted,
            registered_at: now,
            expires: now + seconds(granted),
            request_source: source,
            mobile_node: mn_index,
        });
        let transfer = Transfer {
            mobile_node: mn_index,
            transferring_node: tn,
            tn_spi: ctx.mobile_sa.spi,
            target,
            session_sa,
            last_timestamp,
            flags,
            link_address: sid
                .link_layer_address
                .map(|l| LinkAddress { hardware_type: l.hardware_type, address: l.address.to_vec() }),
            interim: sid.interim_address,
            started,
            renewals,
            previous_targets: Vec::new(),
        };
        info!(%tn, %target, lifetime = granted, session_spi = spi, further = flags.further_transfer(),
            reverse = flags.reverse_tunnel(), "SID transfer started");
        self.sid.push_event(SidEvent::TransferStarted {
            transferring_node: tn,
            target,
            lifetime: granted,
            session_spi: spi,
            further_transfer: flags.further_transfer(),
            reverse_path: transfer.reverse_path(),
            link_layer_address: transfer.link_address.as_ref().and_then(LinkAddress::ethernet),
            interim_address: transfer.interim,
        });
        self.sid.transfers.insert(tn, transfer);
        self.stats.accepted += 1;
        self.stats.sid.transfers_started += 1;
        self.send_reply(ctx, ReplyCode::Accepted, granted);
    }

    /// The stop-transfer demand (patent: "the Transferring Node may demand that the Agent
    /// stop the session transfer"): valid at any time, also with a new link-layer address,
    /// and accepted as a no-op when no transfer runs (the TN may have missed the wake-up).
    fn stop_transfer(&mut self, now: Time, ctx: &ReplyContext<'_>, sid: &SidExtensions<'_>) {
        let tn = ctx.home_address;
        if sid.target_address.is_some()
            || sid.session_key.is_some()
            || sid.session_spi.is_some()
            || sid.transfer_flags.is_some()
            || sid.wake_up.is_some()
            || sid.transferring_node.is_some()
        {
            return self.sid_refuse(
                ctx,
                POORLY_FORMED,
                "a stop-transfer demand carries only Link-Layer and Interim Address elements",
            );
        }
        // The TN is awake: whatever wake-up was still being retried is moot.
        self.sid.cancel_wake_up(tn);
        self.stats.sid.stop_transfer_demands += 1;
        self.stats.deregistrations += 1;
        let Some(t) = self.sid.transfers.get_mut(&tn) else {
            info!(%tn, "stop-transfer demand without a running transfer: accepted, nothing to do");
            self.sid.push_event(SidEvent::StopWithoutTransfer { transferring_node: tn });
            self.send_reply(ctx, ReplyCode::Accepted, 0);
            return;
        };
        let mut changed = None;
        if let Some(l) = sid.link_layer_address {
            let new = LinkAddress { hardware_type: l.hardware_type, address: l.address.to_vec() };
            if t.link_address.as_ref() != Some(&new) {
                changed = new.ethernet();
                t.link_address = Some(new);
            }
        }
        if let Some(interim) = sid.interim_address {
            t.interim = Some(interim);
        }
        if let Some(mac) = changed {
            self.sid.push_event(SidEvent::LinkLayerAddressChanged { transferring_node: tn, link_layer_address: mac });
        }
        info!(%tn, reason = u8::from(sid.stop_transfer.unwrap_or(sid_ext::wire::StopReason::Unspecified)),
            "stop-transfer demand: transfer ends");
        self.send_reply(ctx, ReplyCode::Accepted, 0);
        self.end_transfer(now, tn, RemovalReason::StopTransfer, TransferEnd::StopTransfer);
    }

    /// A request authenticated (or claiming to be) under the session SPI of the running
    /// transfer of its Home Address: from the Target.
    pub(crate) fn process_target(
        &mut self,
        now: Time,
        source: SocketAddrV4,
        destination: Ipv4Addr,
        request: &ScannedRequest<'_>,
        mh_auth: AuthAt<'_>,
    ) {
        let repr = &request.repr;
        let tn = repr.home_address;
        let Some(t) = self.sid.transfers.get(&tn) else { return };
        let (session_sa, last, mn_index) = (t.session_sa.clone(), t.last_timestamp, t.mobile_node);
        let mut ctx = ReplyContext {
            destination: source,
            home_address: tn,
            home_agent: self.reply_home_agent(repr.home_agent),
            identification: repr.identification,
            mobile_sa: &session_sa,
            foreign_sa: None,
        };
        if !verify_authenticator(session_sa.algorithm, &session_sa.key, mh_auth.covered, mh_auth.authenticator) {
            self.stats.authentication_failures += 1;
            self.stats.sid.target_authentication_failures += 1;
            warn!(%source, %tn, spi = mh_auth.spi, "security exception: session authenticator failed");
            if !self.config.reply_to_failed_authentication {
                self.stats.discard(DiscardReason::FailedAuthenticationSilently);
                return;
            }
            // Signed under the session association: the one the request named.
            return self.deny(&ctx, ReplyCode::MobileNodeFailedAuthentication);
        }
        // Only the TN, under its own association, may demand a stop.
        if matches!(&request.sid, Some(Ok(s)) if s.stop_transfer.is_some()) {
            self.stats.authentication_failures += 1;
            return self.sid_refuse(
                &ctx,
                ReplyCode::MobileNodeFailedAuthentication,
                "stop-transfer demand under a session SPI, not the Transferring Node's association",
            );
        }
        if replay::check_timestamp(repr.identification, now, self.config.replay_window, last)
            != ReplayVerdict::Fresh
        {
            warn!(%source, %tn, id = format_args!("{:#018x}", repr.identification),
                "security exception: session request identification mismatch");
            ctx.identification = replay::timestamp_resync_identification(repr.identification, now);
            return self.sid_refuse(&ctx, ReplyCode::IdentificationMismatch, "stale timestamp");
        }
        if let Some(t) = self.sid.transfers.get_mut(&tn) {
            t.last_timestamp = Some(repr.identification);
        }
        let denial = self
            .config
            .mobile_nodes
            .get(mn_index)
            .and_then(|mn| self.policy_denial(request, destination, mn));
        if let Some(code) = denial {
            return self.sid_refuse(&ctx, code, "registration policy");
        }
        let sid = match &request.sid {
            Some(Ok(s)) => *s,
            Some(Err(e)) => return self.sid_refuse(&ctx, e.reply_code(), &e.to_string()),
            None => SidExtensions::default(),
        };
        let refusal = if sid.link_layer_address.is_some() || sid.interim_address.is_some() || sid.wake_up.is_some() {
            Some("Link-Layer Address, Interim Address and Wake-Up are not the Target's to send")
        } else if sid.transferring_node.is_some_and(|a| a != tn) {
            Some("Transferring Node Address differs from the Home Address")
        } else if sid.target_address.is_some_and(|a| a != repr.care_of_address) {
            Some("Care-of Address differs from the Target Address")
        } else {
            None
        };
        if let Some(why) = refusal {
            return self.sid_refuse(&ctx, POORLY_FORMED, why);
        }
        if sid.session_key.is_some() || sid.session_spi.is_some() || sid.transfer_flags.is_some() {
            self.further_transfer(now, source, request, &ctx, &sid);
        } else {
            self.renewal(now, source, request, &ctx);
        }
    }

    /// The Target asks for more time (or, with lifetime 0, ends the transfer).
    fn renewal(&mut self, now: Time, source: SocketAddrV4, request: &ScannedRequest<'_>, ctx: &ReplyContext<'_>) {
        let repr = &request.repr;
        let tn = ctx.home_address;
        let Some(target) = self.sid.transfers.get(&tn).map(|t| t.target) else { return };
        if repr.care_of_address != target {
            return self.sid_refuse(
                ctx,
                ReplyCode::AdministrativelyProhibited,
                "a Target moves the binding only by a further transfer",
            );
        }
        self.stats.sid.renewals += 1;
        if repr.lifetime == 0 {
            info!(%tn, %target, "Target ended the transfer (lifetime 0)");
            self.stats.deregistrations += 1;
            // Answered under the session association before it is dropped.
            self.send_reply(ctx, ReplyCode::Accepted, 0);
            self.end_transfer(now, tn, RemovalReason::Deregistered, TransferEnd::ZeroLifetime);
            return;
        }
        let Some(mut b) = self.bindings.find(tn, target).cloned() else { return };
        // Never past the cap, counted from now: the Target may renew as long as the
        // session lasts, the TN can stop it at any time.
        let granted = repr.lifetime.min(self.config.sid.max_transfer_lifetime);
        b.granted_lifetime = granted;
        b.registered_at = now;
        b.expires = now + seconds(granted);
        b.request_identification = repr.identification;
        b.reply_identification = ctx.identification;
        b.request_source = source;
        let (tunnel, reverse_tunnel) = (TunnelKind::from_flags(b.flags), b.flags.contains(RegistrationFlags::T));
        self.bindings.upsert(b);
        self.events.push_back(HaEvent::BindingRefreshed {
            home_address: tn,
            care_of_address: target,
            lifetime: granted,
            tunnel,
            reverse_tunnel,
        });
        if let Some(t) = self.sid.transfers.get_mut(&tn) {
            t.renewals += 1;
        }
        self.sid.push_event(SidEvent::TransferRenewed { transferring_node: tn, target, lifetime: granted });
        self.stats.accepted += 1;
        self.send_reply(ctx, ReplyCode::Accepted, granted);
    }

    /// The current Target hands the session on (patent: only "if the Transferring Node has
    /// granted permission"). The chain keeps the TN's wake-up data.
    fn further_transfer(
        &mut self,
        now: Time,
        source: SocketAddrV4,
        request: &ScannedRequest<'_>,
        ctx: &ReplyContext<'_>,
        sid: &SidExtensions<'_>,
    ) {
        let repr = &request.repr;
        let tn = ctx.home_address;
        let agent = self.config.address;
        let Some((permitted, old_target, mn_index)) =
            self.sid.transfers.get(&tn).map(|t| (t.flags.further_transfer(), t.target, t.mobile_node))
        else {
            return;
        };
        if !permitted {
            return self.sid_refuse(
                ctx,
                ReplyCode::AdministrativelyProhibited,
                "the Transferring Node did not permit further transfer",
            );
        }
        let (Some(target), Some(wrapped), Some(spi), Some(flags), Some(_)) =
            (sid.target_address, sid.session_key, sid.session_spi, sid.transfer_flags, sid.transferring_node)
        else {
            return self.sid_refuse(ctx, POORLY_FORMED, "a further transfer needs Target Address, Encrypted Session Key, Session SPI, Transfer Flags and Transferring Node Address");
        };
        let refusal = if repr.lifetime == 0 {
            Some((POORLY_FORMED, "a further transfer asks for a lifetime"))
        } else if target == tn || target == agent {
            Some((POORLY_FORMED, "the Target is the Transferring Node or the Agent"))
        } else if spi == ctx.mobile_sa.spi
            || self.config.mobile_nodes.get(mn_index).is_some_and(|m| m.sa(spi).is_some())
        {
            Some((POORLY_FORMED, "the new Session SPI is the current one or one of the Transferring Node's"))
        } else if flags.reverse_tunnel() && !self.config.reverse_tunnel {
            Some((ReplyCode::ReverseTunnelUnavailable, "reverse tunnelling is not offered"))
        } else {
            None
        };
        if let Some((code, why)) = refusal {
            return self.sid_refuse(ctx, code, why);
        }
        let context = keys::transfer_context(TransferStage::FurtherTransfer, tn, target, spi, agent);
        let key = match keys::recover_session_key(
            &wrapped,
            &ctx.mobile_sa.key,
            self.config.sid.private_key.as_ref(),
            &context,
        ) {
            Ok(k) => k,
            Err(e) => {
                self.stats.sid.key_failures += 1;
                warn!(%tn, %target, "session key of a further transfer cannot be recovered: {e}");
                return self.sid_refuse(ctx, POORLY_FORMED, "session key cannot be recovered");
            }
        };
        let granted = repr.lifetime.min(self.config.sid.max_transfer_lifetime);
        self.install_transfer_binding(Binding {
            home_address: tn,
            care_of_address: target,
            reply_identification: ctx.identification,
            request_identification: repr.identification,
            flags: binding_flags(repr.flags, flags),
            granted_lifetime: granted,
            registered_at: now,
            expires: now + seconds(granted),
            request_source: source,
            mobile_node: mn_index,
        });
        let Some(t) = self.sid.transfers.get_mut(&tn) else { return };
        t.previous_targets.push(old_target);
        t.target = target;
        // The first Target's association dies here; the second's starts fresh.
        t.session_sa = keys::session_association(spi, &key);
        t.last_timestamp = None;
        t.flags = flags;
        t.renewals = 0;
        let event = SidEvent::TransferMoved {
            transferring_node: tn,
            from: old_target,
            to: target,
            lifetime: granted,
            session_spi: spi,
            further_transfer: flags.further_transfer(),
            reverse_path: t.reverse_path(),
            hops: t.hops(),
        };
        info!(%tn, from = %old_target, to = %target, lifetime = granted, "SID further transfer");
        self.sid.push_event(event);
        self.stats.accepted += 1;
        self.stats.sid.further_transfers += 1;
        // Under the first Target's association, which authenticated the request.
        self.send_reply(ctx, ReplyCode::Accepted, granted);
    }

    /// Puts a transfer binding in the list, then removes the address's other bindings:
    /// in that order the data plane never sees the address unbound, so it neither stops
    /// proxying nor announces the TN's MAC in between.
    fn install_transfer_binding(&mut self, binding: Binding) {
        let (home, coa, lifetime) = (binding.home_address, binding.care_of_address, binding.granted_lifetime);
        let tunnel = TunnelKind::from_flags(binding.flags);
        let reverse_tunnel = binding.flags.contains(RegistrationFlags::T);
        let had_any = !self.bindings.for_home(home).is_empty();
        let event = if self.bindings.upsert(binding) {
            self.stats.bindings_added += 1;
            HaEvent::BindingAdded {
                home_address: home,
                care_of_address: coa,
                lifetime,
                tunnel,
                reverse_tunnel,
                first_for_home: !had_any,
            }
        } else {
            HaEvent::BindingRefreshed { home_address: home, care_of_address: coa, lifetime, tunnel, reverse_tunnel }
        };
        self.events.push_back(event);
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

    /// Removes the binding of a running transfer and ends the transfer.
    fn end_transfer(&mut self, now: Time, tn: Ipv4Addr, removal: RemovalReason, end: TransferEnd) {
        let Some(target) = self.sid.transfers.get(&tn).map(|t| t.target) else { return };
        if self.bindings.remove(tn, target).is_some() {
            self.stats.bindings_removed += 1;
            self.events.push_back(HaEvent::BindingRemoved {
                home_address: tn,
                care_of_address: target,
                reason: removal,
                last_for_home: self.bindings.for_home(tn).is_empty(),
            });
        }
        self.sid_binding_gone(now, tn, target, end);
    }

    /// Called for every binding that leaves the list: when it was a transfer's, the
    /// transfer (and its session association) ends with it.
    pub(crate) fn sid_binding_gone(&mut self, now: Time, home: Ipv4Addr, care_of: Ipv4Addr, end: TransferEnd) {
        if self.sid.transfers.get(&home).is_some_and(|t| t.target == care_of) {
            if let Some(t) = self.sid.transfers.remove(&home) {
                self.transfer_gone(now, t, end);
            }
        }
    }

    /// A TN registered a care-of address of its own: its transfer, if any, ends without
    /// a wake-up (the TN is awake), and so does any wake-up still being retried.
    pub(crate) fn sid_supersede(&mut self, now: Time, home: Ipv4Addr) {
        if self.sid.transfers.contains_key(&home) {
            self.end_transfer(now, home, RemovalReason::Replaced, TransferEnd::Superseded);
        }
        self.sid.cancel_wake_up(home);
    }

    fn transfer_gone(&mut self, now: Time, t: Transfer, end: TransferEnd) {
        self.stats.sid.transfers_ended += 1;
        info!(tn = %t.transferring_node, target = %t.target, reason = ?end, "SID transfer ended");
        self.sid.push_event(SidEvent::TransferEnded {
            transferring_node: t.transferring_node,
            target: t.target,
            reason: end,
        });
        if let Some(reason) = end.wake_up_reason() {
            self.start_wake_up(now, &t, reason);
        }
    }
}
