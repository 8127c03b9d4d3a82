//! One device's negotiation endpoint: the state of every negotiation it takes part in.

use core::net::SocketAddrV4;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use mip_core::time::Time;
use mip_core::Transmit;
use rand_core::CryptoRngCore;

use super::keys::{self, MacKey, Transcript};
use super::wire::{Accept, Message, Mode, Offer, Refuse, RefuseCode, NONCE_LEN, OFFER_SECRET_LEN};
use super::{
    Association, ConfigError, FailReason, NegotiationError, NegotiationEvent, NegotiationId,
    NegotiationState, NegotiationStats, NegotiatorConfig, RejectReason, Role, SessionTerms,
};
use crate::crypto::{self, SessionKey};

mod receive;

type Nonce = [u8; NONCE_LEN];

/// How a fresh Offer relates to a negotiation already under way with the same peer.
enum Conflict {
    /// None, or none any more: go on.
    None,
    /// Answer with this Refuse.
    Refuse(RefuseCode),
    /// Ignore it (our own simultaneous Offer wins).
    Drop,
}

/// One negotiation, from either side.
struct Negotiation {
    id: NegotiationId,
    /// Index into `config.peers` (the configuration never changes after `new`).
    peer: usize,
    remote: SocketAddrV4,
    mode: Mode,
    initiator: bool,
    local_role: Role,
    nonce_i: Nonce,
    nonce_r: Nonce,
    offer_time: Time,
    offered: SessionTerms,
    agreed: Option<SessionTerms>,
    k_auth: MacKey,
    /// Hash of every message so far: TH_1 after the Offer, TH_2 after the Accept, ...
    transcript: Transcript,
    session_key: Option<SessionKey>,
    state: NegotiationState,
    /// What this side sends and repeats: initiator's Offer or Session Key; responder's
    /// Accept, Refuse or Confirm.
    last_sent: Vec<u8>,
    /// Responder: the message `last_sent` answers, to recognise an exact repeat.
    last_received: Vec<u8>,
    attempts: u32,
    deadline: Time,
    auth_failures: u32,
}

impl Negotiation {
    fn is_active(&self) -> bool {
        !matches!(
            self.state,
            NegotiationState::Confirmed | NegotiationState::Refused
        )
    }
}

/// A device's negotiation endpoint (sans-IO). `R` is the CSPRNG that draws nonces,
/// session keys and HPKE ephemeral keys.
pub struct Negotiator<R> {
    config: NegotiatorConfig,
    rng: R,
    negotiations: Vec<Negotiation>,
    /// Nonces of authenticated Offers, until their timestamp leaves the window.
    seen_nonces: HashMap<Nonce, Time>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<NegotiationEvent>,
    next_id: u64,
    stats: NegotiationStats,
}

impl<R: CryptoRngCore> Negotiator<R> {
    pub fn new(config: NegotiatorConfig, rng: R) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Negotiator {
            config,
            rng,
            negotiations: Vec::new(),
            seen_nonces: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_id: 1,
            stats: NegotiationStats::default(),
        })
    }

    pub fn config(&self) -> &NegotiatorConfig {
        &self.config
    }

    pub fn stats(&self) -> &NegotiationStats {
        &self.stats
    }

    pub fn state(&self, id: NegotiationId) -> Option<NegotiationState> {
        self.negotiations
            .iter()
            .find(|n| n.id == id)
            .map(|n| n.state)
    }

    /// Starts a negotiation with `peer`, this device taking `role`.
    pub fn offer(
        &mut self,
        now: Time,
        peer: &str,
        role: Role,
        terms: SessionTerms,
    ) -> Result<NegotiationId, NegotiationError> {
        let peer_idx = self
            .peer_index(peer)
            .ok_or_else(|| NegotiationError::UnknownPeer(peer.to_owned()))?;
        let peer_cfg = &self.config.peers[peer_idx];
        let remote = peer_cfg
            .address
            .ok_or_else(|| NegotiationError::NoPeerAddress(peer.to_owned()))?;
        terms.check_offer(role)?;
        if self.active_with(peer_idx).is_some() {
            return Err(NegotiationError::Busy(peer.to_owned()));
        }
        let mut nonce_i = [0u8; NONCE_LEN];
        self.rng.fill_bytes(&mut nonce_i);
        let mode = peer_cfg.association.mode();
        let mut offer = Offer {
            mode,
            nonce_i,
            timestamp: now.to_ntp(),
            role,
            terms: terms.clone(),
            initiator_id: self.config.identity.clone(),
            responder_id: peer_cfg.identity.clone(),
            offer_secret: None,
        };
        let (covered, k_auth) = match &peer_cfg.association {
            Association::PreShared(secret) => (
                Message::Offer(offer).emit_unauthenticated()?,
                keys::auth_key_from_psk(secret.as_bytes())?,
            ),
            Association::PublicKey(peer_pk) => {
                // The Offer Secret is sealed over the Offer's own earlier bytes: emit with a
                // placeholder of the right length, seal over the prefix, put it in place.
                let own_sk = self
                    .config
                    .private_key
                    .as_ref()
                    .ok_or(NegotiationError::NoPrivateKey)?;
                offer.offer_secret = Some(vec![0; OFFER_SECRET_LEN]);
                let mut covered = Message::Offer(offer).emit_unauthenticated()?;
                let prefix_len = covered.len() - OFFER_SECRET_LEN;
                let secret = SessionKey::generate(&mut self.rng);
                let info = [keys::OFFER_SECRET_INFO, &covered[..prefix_len]].concat();
                let sealed = crypto::seal_authenticated(
                    &secret,
                    peer_pk,
                    own_sk,
                    &info,
                    &[],
                    &mut self.rng,
                )?;
                covered.truncate(prefix_len);
                covered.extend_from_slice(&sealed);
                (covered, keys::auth_key_from_offer_secret(&secret)?)
            }
        };
        let bytes = keys::seal_message(covered, &k_auth, &Transcript::new());
        let mut transcript = Transcript::new();
        transcript.absorb(&bytes);
        let id = self.next_id();
        let rto = self.rto(1);
        self.negotiations.push(Negotiation {
            id,
            peer: peer_idx,
            remote,
            mode,
            initiator: true,
            local_role: role,
            nonce_i,
            nonce_r: [0; NONCE_LEN],
            offer_time: now,
            offered: terms,
            agreed: None,
            k_auth,
            transcript,
            session_key: None,
            state: NegotiationState::OfferSent,
            last_sent: bytes.clone(),
            last_received: Vec::new(),
            attempts: 1,
            deadline: now + rto,
            auth_failures: 0,
        });
        self.send(remote, bytes);
        Ok(id)
    }

    /// Accepts a reported Offer with the final `terms` (see
    /// [`SessionTerms::check_answer`] for what this side may change).
    pub fn accept(
        &mut self,
        now: Time,
        id: NegotiationId,
        terms: SessionTerms,
    ) -> Result<(), NegotiationError> {
        let idx = self.awaiting_decision(id)?;
        let nonce_r = self.nonce();
        let span = self.retransmit_span();
        let n = &mut self.negotiations[idx];
        SessionTerms::check_answer(n.local_role.other(), &n.offered, &terms)?;
        let accept = Message::Accept(Accept {
            mode: n.mode,
            nonce_i: n.nonce_i,
            nonce_r,
            terms: terms.clone(),
        });
        let bytes = keys::seal_message(accept.emit_unauthenticated()?, &n.k_auth, &n.transcript);
        n.transcript.absorb(&bytes);
        n.nonce_r = nonce_r;
        n.agreed = Some(terms);
        n.state = NegotiationState::Accepted;
        n.last_sent = bytes.clone();
        n.attempts = 1;
        n.deadline = now + span;
        let remote = n.remote;
        self.send(remote, bytes);
        Ok(())
    }

    /// Refuses a reported Offer; the peer learns `code`.
    pub fn refuse(
        &mut self,
        now: Time,
        id: NegotiationId,
        code: RefuseCode,
    ) -> Result<(), NegotiationError> {
        let idx = self.awaiting_decision(id)?;
        self.refuse_at(now, idx, code)?;
        self.emit_failed(idx, FailReason::Declined(code));
        Ok(())
    }

    pub fn handle_datagram(&mut self, now: Time, from: SocketAddrV4, datagram: &[u8]) {
        let parsed = match Message::parse(datagram) {
            Ok(p) => p,
            Err(_) => {
                self.stats.discarded_malformed += 1;
                return;
            }
        };
        let (covered, mac) = (parsed.covered, parsed.mac);
        match parsed.message {
            Message::Offer(m) => self.on_offer(now, from, m, datagram, covered, &mac),
            Message::Accept(m) => self.on_accept(now, from, m, datagram, covered, &mac),
            Message::Refuse(m) => self.on_refuse(now, from, m, covered, &mac),
            Message::SessionKey(m) => self.on_session_key(now, from, m, datagram, covered, &mac),
            Message::Confirm(m) => self.on_confirm(from, m, covered, &mac),
        }
    }

    pub fn handle_timeout(&mut self, now: Time) {
        let due: Vec<NegotiationId> = self
            .negotiations
            .iter()
            .filter(|n| n.deadline <= now)
            .map(|n| n.id)
            .collect();
        for id in due {
            let Some(idx) = self.index_of(id) else {
                continue;
            };
            let max_attempts = self.config.max_attempts.max(1);
            let n = &mut self.negotiations[idx];
            match n.state {
                NegotiationState::OfferSent | NegotiationState::KeySent => {
                    if n.attempts < max_attempts {
                        n.attempts += 1;
                        let attempt = n.attempts;
                        let (remote, bytes) = (n.remote, n.last_sent.clone());
                        let rto = self.rto(attempt);
                        self.negotiations[idx].deadline = now + rto;
                        self.stats.retransmissions += 1;
                        self.send(remote, bytes);
                    } else {
                        let reason = give_up_reason(n);
                        self.fail(idx, reason);
                    }
                }
                NegotiationState::AwaitingDecision => {
                    if self.refuse_at(now, idx, RefuseCode::NoAnswer).is_ok() {
                        self.emit_failed(idx, FailReason::Declined(RefuseCode::NoAnswer));
                    } else {
                        self.fail(idx, FailReason::Declined(RefuseCode::NoAnswer));
                    }
                }
                NegotiationState::Accepted => {
                    let reason = give_up_reason(n);
                    self.fail(idx, reason);
                }
                NegotiationState::Confirmed | NegotiationState::Refused => {
                    self.negotiations.remove(idx);
                }
            }
        }
        self.seen_nonces.retain(|_, expiry| *expiry > now);
    }

    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<NegotiationEvent> {
        self.events.pop_front()
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Time> {
        self.negotiations.iter().map(|n| n.deadline).min()
    }

    // ---- helpers ---------------------------------------------------------------------

    /// An initiator-side negotiation in `state` that this answer may belong to.
    fn initiator_match(
        &mut self,
        from: SocketAddrV4,
        mode: Mode,
        nonce_i: &Nonce,
        state: NegotiationState,
    ) -> Option<usize> {
        let found = self.index_by_nonce(nonce_i).filter(|&idx| {
            let n = &self.negotiations[idx];
            n.initiator && n.remote == from && n.mode == mode && n.state == state
        });
        if found.is_none() {
            // Late repeats (an Accept after we moved on) land here too.
            self.stats.discarded_unmatched += 1;
        }
        found
    }

    fn refuse_at(
        &mut self,
        now: Time,
        idx: usize,
        code: RefuseCode,
    ) -> Result<(), NegotiationError> {
        let span = self.retransmit_span();
        let n = &mut self.negotiations[idx];
        let bytes = refuse_bytes(n.mode, n.nonce_i, code, now, &n.k_auth, &n.transcript)?;
        n.state = NegotiationState::Refused;
        n.last_sent = bytes.clone();
        n.deadline = now + span;
        let remote = n.remote;
        self.send(remote, bytes);
        Ok(())
    }

    fn emit_negotiated(&mut self, idx: usize) {
        let n = &self.negotiations[idx];
        let (Some(terms), Some(key)) = (n.agreed.clone(), n.session_key.clone()) else {
            return;
        };
        self.stats.negotiated += 1;
        self.events.push_back(NegotiationEvent::Negotiated {
            id: n.id,
            role: n.local_role,
            session_key: key,
            agent: terms.agent,
            tn_address: terms.tn_address,
            tn_lla: terms.tn_lla,
            interim: terms.interim,
            further_transfer: terms.further_transfer,
            reverse_path: terms.reverse_path,
            lifetime: terms.lifetime,
            peer: self.config.peers[n.peer].identity.clone(),
            peer_address: n.remote,
        });
    }

    /// Reports a failure and forgets the negotiation.
    fn fail(&mut self, idx: usize, reason: FailReason) {
        self.emit_failed(idx, reason);
        self.negotiations.remove(idx);
    }

    fn emit_failed(&mut self, idx: usize, reason: FailReason) {
        let n = &self.negotiations[idx];
        self.stats.failed += 1;
        self.events.push_back(NegotiationEvent::Failed {
            id: n.id,
            peer: self.config.peers[n.peer].identity.clone(),
            reason,
        });
    }

    fn reject(&mut self, from: SocketAddrV4, peer: String, reason: RejectReason) {
        match reason {
            RejectReason::BadAuthenticator | RejectReason::ModeMismatch => {
                self.stats.discarded_unauthenticated += 1
            }
            RejectReason::Replay => self.stats.discarded_replay += 1,
            RejectReason::Stale => {}
        }
        self.events
            .push_back(NegotiationEvent::Rejected { from, peer, reason });
    }

    fn awaiting_decision(&self, id: NegotiationId) -> Result<usize, NegotiationError> {
        let idx = self
            .index_of(id)
            .ok_or(NegotiationError::UnknownNegotiation(id))?;
        match self.negotiations[idx].state {
            NegotiationState::AwaitingDecision => Ok(idx),
            state => Err(NegotiationError::NotAwaitingDecision { id, state }),
        }
    }

    fn send(&mut self, destination: SocketAddrV4, payload: Vec<u8>) {
        self.stats.sent += 1;
        self.transmits.push_back(Transmit {
            destination,
            payload,
        });
    }

    fn peer_index(&self, identity: &str) -> Option<usize> {
        self.config
            .peers
            .iter()
            .position(|p| p.identity == identity)
    }

    fn index_of(&self, id: NegotiationId) -> Option<usize> {
        self.negotiations.iter().position(|n| n.id == id)
    }

    fn index_by_nonce(&self, nonce_i: &Nonce) -> Option<usize> {
        self.negotiations.iter().position(|n| &n.nonce_i == nonce_i)
    }

    fn active_with(&self, peer_idx: usize) -> Option<usize> {
        self.negotiations
            .iter()
            .position(|n| n.peer == peer_idx && n.is_active())
    }

    fn nonce(&mut self) -> Nonce {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill_bytes(&mut nonce);
        nonce
    }

    fn next_id(&mut self) -> NegotiationId {
        let id = NegotiationId(self.next_id);
        self.next_id += 1;
        id
    }

    /// Timeout after the `attempt`-th send: doubling from the initial value, capped.
    fn rto(&self, attempt: u32) -> Duration {
        let initial = self.config.initial_retransmit.max(Duration::from_millis(1));
        let doubled = initial.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        doubled.min(self.config.max_retransmit.max(initial))
    }

    /// How long an initiator keeps sending one message: the responder keeps its answer
    /// that long.
    fn retransmit_span(&self) -> Duration {
        (1..=self.config.max_attempts.max(1))
            .map(|a| self.rto(a))
            .sum()
    }
}

fn give_up_reason(n: &Negotiation) -> FailReason {
    if n.auth_failures > 0 {
        FailReason::AuthenticationFailed {
            count: n.auth_failures,
        }
    } else {
        FailReason::NoResponse {
            attempts: n.attempts,
        }
    }
}

fn refuse_bytes(
    mode: Mode,
    nonce_i: Nonce,
    code: RefuseCode,
    now: Time,
    k_auth: &MacKey,
    transcript: &Transcript,
) -> Result<Vec<u8>, NegotiationError> {
    let refuse = Message::Refuse(Refuse {
        mode,
        nonce_i,
        code,
        timestamp: now.to_ntp(),
    });
    Ok(keys::seal_message(
        refuse.emit_unauthenticated()?,
        k_auth,
        transcript,
    ))
}
