//! Replies from home agents and ICMP errors about relayed requests (RFC 5944 3.7.3).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use mip_core::auth::append_auth_extension;
use mip_core::time::Time;
use mip_core::wire::{
    ext_type, message_type, RegistrationReply, RegistrationReplyRepr, RegistrationRequest,
    RegistrationRequestRepr, ReplyCode, REPLY_TYPE,
};
use tracing::{debug, info, warn};

use crate::foreign_agent::{auth_valid, FaEvent, ForeignAgent, RemovalReason};
use crate::scan::{scan_reply, ScanError};
use crate::stats::DiscardReason;
use crate::visitors::{encapsulation_of, Pending, Visitor};

/// What an ICMP error about a relayed request said (RFC 5944 3.7.3: codes 80-88).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpErrorKind {
    NetUnreachable,
    HostUnreachable,
    PortUnreachable,
    Other,
}

impl IcmpErrorKind {
    /// From an ICMP type and code (RFC 792, RFC 1122 3.2.2.1).
    pub fn from_icmp(icmp_type: u8, code: u8) -> Self {
        match (icmp_type, code) {
            (3, 0 | 6 | 9 | 11) => IcmpErrorKind::NetUnreachable,
            (3, 1 | 7 | 10 | 12) => IcmpErrorKind::HostUnreachable,
            (3, 3) => IcmpErrorKind::PortUnreachable,
            _ => IcmpErrorKind::Other,
        }
    }

    pub fn reply_code(self) -> ReplyCode {
        match self {
            IcmpErrorKind::NetUnreachable => ReplyCode::FaHomeNetworkUnreachable,
            IcmpErrorKind::HostUnreachable => ReplyCode::FaHomeAgentHostUnreachable,
            IcmpErrorKind::PortUnreachable => ReplyCode::FaHomeAgentPortUnreachable,
            IcmpErrorKind::Other => ReplyCode::FaHomeAgentUnreachable,
        }
    }
}

impl ForeignAgent {
    /// A Registration Reply that arrived on our registration socket from `source`.
    pub fn handle_reply(&mut self, now: Time, source: SocketAddrV4, payload: &[u8]) {
        self.stats.datagrams += 1;
        self.handle_timeout(now);
        if message_type(payload) != Some(REPLY_TYPE) {
            self.stats.discard(DiscardReason::NotRegistrationMessage);
            return;
        }
        let Ok(reply) =
            RegistrationReply::new_checked(payload).and_then(|p| RegistrationReplyRepr::parse(&p))
        else {
            self.stats.discard(DiscardReason::MalformedReply);
            return;
        };
        self.stats.replies_received += 1;
        let scanned = scan_reply(payload);
        let nai = scanned.as_ref().ok().and_then(|s| s.nai);
        // 3.7.3.1: same home address (an NAI picks among zero home addresses) and the
        // same low-order 32 bits of the identification.
        let Some(index) = self.pending.iter().position(|p| {
            p.matches_id(reply.identification)
                && (p.home_address == reply.home_address
                    || (p.home_address.is_unspecified()
                        && nai.is_some()
                        && p.nai.as_deref() == nai))
        }) else {
            debug!(%source, home = %reply.home_address, "reply matches no pending request");
            self.stats.discard(DiscardReason::UnmatchedReply);
            return;
        };
        let scanned = match scanned {
            Ok(s) => s,
            Err(ScanError::UnknownExtension(t)) => {
                // RFC 5944 1.8; the pending entry stays for a good reply or its timeout.
                debug!(%source, ext_type = t, "unknown non-skippable extension: reply dropped");
                self.stats.discard(DiscardReason::UnknownExtension);
                return;
            }
            Err(ScanError::Malformed(e)) => {
                debug!(%source, error = %e, "malformed reply extensions");
                let p = self.pending.remove(index);
                self.deny_pending(now, &p, ReplyCode::FaPoorlyFormedReply);
                return;
            }
        };
        let Some(prefix) = scanned.mobile_home_end.and_then(|end| payload.get(..end)) else {
            let p = self.pending.remove(index);
            self.deny_pending(now, &p, ReplyCode::FaPoorlyFormedReply);
            return;
        };
        if reply.code.is_accepted() && reply.lifetime != 0 && reply.home_address.is_unspecified() {
            let p = self.pending.remove(index);
            self.deny_pending(now, &p, ReplyCode::FaPoorlyFormedReply);
            return;
        }
        // 3.5.4 / 3.7.3.1: the association is chosen by the reply's Home Agent field;
        // the extension is required on a reply with a non-zero lifetime (3.7.1) and
        // checked whenever present.
        if let Some(sa) = self.config.home_agent_sa(reply.home_agent) {
            let required = reply.lifetime != 0 || scanned.foreign_home > 0;
            if required
                && !(scanned.foreign_home == 1 && auth_valid(scanned.first_foreign_home, sa))
            {
                self.stats.home_agent_authentication_failures += 1;
                self.stats.discard(DiscardReason::HomeAgentAuthFailed);
                warn!(%source, ha = %reply.home_agent, home = %reply.home_address,
                    "security exception: Foreign-Home authentication of a reply missing, repeated or invalid");
                let p = self.pending.remove(index);
                self.deny_pending(now, &p, ReplyCode::FaHomeAgentFailedAuthentication);
                return;
            }
        }
        if scanned.critical_vendor_for_us.is_some() {
            let p = self.pending.remove(index);
            self.deny_pending(now, &p, ReplyCode::FaUnsupportedVendorIdFromHomeAgent);
            return;
        }
        let p = self.pending.remove(index);
        // 3.7.3.2: relay up to the Mobile-Home extension, then ours to the node.
        let mut out = Vec::with_capacity(prefix.len() + 32);
        out.extend_from_slice(prefix);
        if let Some(sa) = self
            .config
            .mobile_node_sa(reply.home_address, p.nai.as_deref())
            .cloned()
        {
            append_auth_extension(&mut out, ext_type::MOBILE_FOREIGN_AUTH, &sa);
        }
        let home_for_route = if reply.home_address.is_unspecified() {
            p.home_address
        } else {
            reply.home_address
        };
        let route = self.route_to(
            home_for_route,
            p.source.port(),
            p.request_destination,
            p.link_source,
        );
        self.push_to_mobile_node(route, out);
        self.stats.relayed(u8::from(reply.code));
        info!(home = %reply.home_address, code = u8::from(reply.code), lifetime = reply.lifetime,
            "reply relayed: {}", reply.code.description());
        if reply.code.is_accepted() {
            self.update_visitor(now, &p, &reply);
        }
        // Denied: the pending entry is gone, the visitor entry (if any) untouched (3.7.2).
    }

    /// 3.7.3.2: after relaying an accepted reply.
    fn update_visitor(&mut self, now: Time, p: &Pending, reply: &RegistrationReplyRepr) {
        let home = reply.home_address;
        if reply.lifetime == 0 {
            if let Some(v) = self.visitors.remove(home) {
                self.stats.visitors_removed += 1;
                info!(%home, "visitor deregistered");
                self.events.push_back(FaEvent::VisitorRemoved {
                    home_address: home,
                    home_agent: v.home_agent,
                    reason: RemovalReason::Deregistered,
                });
            }
            return;
        }
        // The lifetime starts now, as we forward the reply, so that we never expire
        // the registration before the mobile node does.
        let granted = reply.lifetime.min(self.config.max_lifetime);
        let visitor = Visitor {
            home_address: home,
            home_agent: p.home_agent,
            care_of_address: p.care_of_address,
            link_address: p.link_source,
            source_port: p.source.port(),
            nai: p.nai.clone(),
            flags: p.flags,
            identification: reply.identification,
            requested_lifetime: p.requested_lifetime,
            granted_lifetime: granted,
            registered_at: now,
            expires: now + Duration::from_secs(u64::from(granted)),
            delivery: p.delivery,
        };
        let changed = |old: &Visitor| {
            old.home_agent != visitor.home_agent
                || old.care_of_address != visitor.care_of_address
                || old.link_address != visitor.link_address
                || old.flags != visitor.flags
                || old.delivery != visitor.delivery
        };
        let event = match self.visitors.get(home) {
            Some(old) if !changed(old) => {
                self.stats.visitors_refreshed += 1;
                FaEvent::VisitorRefreshed {
                    home_address: home,
                    lifetime: granted,
                }
            }
            old => {
                if old.is_none() {
                    self.stats.visitors_added += 1;
                    info!(%home, ha = %p.home_agent, lifetime = granted, "visitor added");
                }
                FaEvent::VisitorAdded {
                    home_address: home,
                    home_agent: visitor.home_agent,
                    care_of_address: visitor.care_of_address,
                    mac: visitor.link_address,
                    reverse_tunnel: visitor.reverse_tunnel(),
                    encapsulation: encapsulation_of(visitor.flags),
                    delivery: visitor.delivery,
                    lifetime: granted,
                }
            }
        };
        self.visitors.upsert(visitor);
        self.events.push_back(event);
    }

    /// An ICMP error about a request we relayed to `home_agent`: `original` is the UDP
    /// payload we sent (RFC 5944 3.7.3: answer the node with a code in 80-95).
    pub fn handle_icmp_error(
        &mut self,
        now: Time,
        home_agent: Ipv4Addr,
        original: &[u8],
        kind: IcmpErrorKind,
    ) {
        self.handle_timeout(now);
        let Ok(req) = RegistrationRequest::new_checked(original)
            .and_then(|p| RegistrationRequestRepr::parse(&p))
        else {
            self.stats.discard(DiscardReason::UnmatchedIcmpError);
            return;
        };
        let Some(index) = self.pending.iter().position(|p| {
            p.home_agent == home_agent
                && p.home_address == req.home_address
                && p.identification == req.identification
        }) else {
            self.stats.discard(DiscardReason::UnmatchedIcmpError);
            return;
        };
        self.stats.icmp_errors += 1;
        let p = self.pending.remove(index);
        warn!(ha = %home_agent, home = %p.home_address, ?kind, "ICMP error for a relayed request");
        self.deny_pending(now, &p, kind.reply_code());
    }
}
