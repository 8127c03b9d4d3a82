//! Counters of the foreign agent's control plane, shown by the control socket.

use std::collections::BTreeMap;

use serde::Serialize;

/// Why a message was dropped without an answer. Each reason has its own counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscardReason {
    /// A UDP 434 datagram that is neither a request (from the link) nor a reply.
    NotRegistrationMessage,
    /// A request shorter than its fixed part: nothing to answer with.
    TruncatedRequest,
    /// An extension of type 0-127 we do not know among the extensions meant for us
    /// (RFC 5944 1.8: silently discard).
    UnknownExtension,
    /// Mobile-Foreign authentication missing, repeated or wrong (3.7.2.1).
    MobileForeignAuthFailed,
    /// A reply shorter than its fixed part or not of type 3.
    MalformedReply,
    /// A reply that matches no pending request (3.7.3.1).
    UnmatchedReply,
    /// Foreign-Home authentication of a reply missing, repeated or wrong (3.7.3.1).
    HomeAgentAuthFailed,
    /// A denial we would have sent within a second of the previous one to the same
    /// mobile node (3.7.2).
    DenialRateLimited,
    /// A solicitation that is not a valid ICMP Router Solicitation.
    MalformedSolicitation,
    /// A solicitation answered too recently.
    SolicitationRateLimited,
    /// An ICMP error quoting something that is not one of our pending relays.
    UnmatchedIcmpError,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct FaStats {
    /// Registration datagrams handed to the agent.
    pub datagrams: u64,
    /// Registration Requests from mobile nodes that parsed.
    pub requests: u64,
    /// Requests relayed to a home agent (first time for that identification).
    pub requests_relayed: u64,
    /// Requests relayed again with the identification of a pending one.
    pub retransmissions_relayed: u64,
    /// A new request that replaced the pending one of the same mobile node.
    pub pending_replaced: u64,
    /// Pending requests dropped after `pending_timeout` (answered with code 78).
    pub pending_timeouts: u64,
    /// Pending requests whose requested lifetime ran out first (3.7.2.2, no answer).
    pub pending_expired: u64,
    /// Replies received from home agents.
    pub replies_received: u64,
    /// Replies relayed to mobile nodes, by code.
    pub replies_relayed: BTreeMap<u8, u64>,
    /// Denials the foreign agent itself sent, by code.
    pub denied: BTreeMap<u8, u64>,
    /// Requests whose Mobile-Foreign authenticator failed.
    pub mobile_node_authentication_failures: u64,
    /// Replies whose Foreign-Home authenticator failed.
    pub home_agent_authentication_failures: u64,
    /// ICMP errors about relayed requests (answered with codes 80-88).
    pub icmp_errors: u64,
    pub visitors_added: u64,
    pub visitors_refreshed: u64,
    pub visitors_removed: u64,
    pub visitors_expired: u64,
    pub solicitations: u64,
    pub advertisements_unsolicited: u64,
    pub advertisements_solicited_unicast: u64,
    pub advertisements_solicited_multicast: u64,
    /// Silent drops, by reason.
    pub discarded: BTreeMap<DiscardReason, u64>,
}

impl FaStats {
    pub(crate) fn discard(&mut self, reason: DiscardReason) {
        *self.discarded.entry(reason).or_default() += 1;
    }

    pub(crate) fn deny(&mut self, code: u8) {
        *self.denied.entry(code).or_default() += 1;
    }

    pub(crate) fn relayed(&mut self, code: u8) {
        *self.replies_relayed.entry(code).or_default() += 1;
    }

    pub fn discarded(&self, reason: DiscardReason) -> u64 {
        self.discarded.get(&reason).copied().unwrap_or(0)
    }

    pub fn denied(&self, code: u8) -> u64 {
        self.denied.get(&code).copied().unwrap_or(0)
    }

    pub fn relayed_with(&self, code: u8) -> u64 {
        self.replies_relayed.get(&code).copied().unwrap_or(0)
    }

    pub fn total_discarded(&self) -> u64 {
        self.discarded.values().sum()
    }
}
