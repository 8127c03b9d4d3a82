//! The receiving half of the endpoint: one handler per message type.

use core::net::SocketAddrV4;

use mip_core::time::Time;
use rand_core::CryptoRngCore;

use super::{refuse_bytes, Conflict, Negotiation, Negotiator};
use crate::crypto::{self, SessionKey};
use crate::negotiation::keys::{self, MacKey, Transcript};
use crate::negotiation::wire::{
    Accept, Confirm, Message, Offer, Refuse, RefuseCode, SessionKeyMessage, NONCE_LEN,
    OFFER_SECRET_LEN,
};
use crate::negotiation::{
    Association, FailReason, NegotiationEvent, NegotiationState, RejectReason, SessionTerms,
};

impl<R: CryptoRngCore> Negotiator<R> {
    pub(super) fn on_offer(
        &mut self,
        now: Time,
        from: SocketAddrV4,
        offer: Offer,
        datagram: &[u8],
        covered: &[u8],
        mac: &[u8; 32],
    ) {
        if offer.responder_id != self.config.identity {
            self.stats.discarded_unmatched += 1;
            return;
        }
        let Some(peer_idx) = self.peer_index(&offer.initiator_id) else {
            self.stats.discarded_unmatched += 1;
            return;
        };
        let peer = offer.initiator_id.clone();
        // A repeat of an Offer we hold: answer it again, without any crypto.
        if let Some(idx) = self.index_by_nonce(&offer.nonce_i) {
            self.on_repeated_offer(now, idx, from, datagram);
            return;
        }
        let peer_cfg = &self.config.peers[peer_idx];
        if peer_cfg.association.mode() != offer.mode {
            self.reject(from, peer, RejectReason::ModeMismatch);
            return;
        }
        let Some(k_auth) = self.offer_auth_key(peer_idx, &offer, covered) else {
            self.reject(from, peer, RejectReason::BadAuthenticator);
            return;
        };
        let th0 = Transcript::new();
        if !keys::verify(&k_auth, &th0, covered, mac) {
            self.reject(from, peer, RejectReason::BadAuthenticator);
            return;
        }
        let mut transcript = th0;
        transcript.absorb(datagram);
        let offer_time = Time::from_ntp(offer.timestamp);
        let window = self.config.timestamp_window;
        if offer_time > now + window || offer_time + window < now {
            // Authenticated but outside the window: say so (the initiator learns our clock),
            // keep no state. A replay of an old Offer gets the same answer and changes nothing.
            let refuse = refuse_bytes(
                offer.mode,
                offer.nonce_i,
                RefuseCode::ClockSkew,
                now,
                &k_auth,
                &transcript,
            );
            if let Ok(bytes) = refuse {
                self.send(from, bytes);
            }
            self.stats.discarded_stale += 1;
            self.reject(from, peer, RejectReason::Stale);
            return;
        }
        // Inside the window, a nonce seen before is a replay. Entries leave the cache when
        // their Offer's timestamp leaves the window: from then on the check above refuses it.
        self.seen_nonces.retain(|_, expiry| *expiry >= now);
        if self.seen_nonces.contains_key(&offer.nonce_i) {
            self.reject(from, peer, RejectReason::Replay);
            return;
        }
        self.seen_nonces.insert(offer.nonce_i, offer_time + window);
        let automatic_refusal = if offer.terms.check_offer(offer.role).is_err() {
            Some(RefuseCode::BadTerms)
        } else {
            match self.resolve_conflict(now, peer_idx, &offer) {
                Conflict::None => None,
                Conflict::Refuse(code) => Some(code),
                Conflict::Drop => {
                    // Glare lost by the peer: our own Offer stands, theirs is dropped.
                    self.stats.glare_dropped += 1;
                    return;
                }
            }
        };
        let id = self.next_id();
        let span = self.retransmit_span();
        let decision = self.config.decision_timeout;
        self.negotiations.push(Negotiation {
            id,
            peer: peer_idx,
            remote: from,
            mode: offer.mode,
            initiator: false,
            local_role: offer.role.other(),
            nonce_i: offer.nonce_i,
            nonce_r: [0; NONCE_LEN],
            offer_time,
            offered: offer.terms.clone(),
            agreed: None,
            k_auth,
            transcript,
            session_key: None,
            state: NegotiationState::AwaitingDecision,
            last_sent: Vec::new(),
            last_received: datagram.to_vec(),
            attempts: 0,
            deadline: now + decision.min(span),
            auth_failures: 0,
        });
        let idx = self.negotiations.len() - 1;
        match automatic_refusal {
            Some(code) => {
                // Not reported as Offered: nothing for the user to decide.
                let _ = self.refuse_at(now, idx, code);
            }
            None => self.events.push_back(NegotiationEvent::Offered {
                id,
                peer,
                from,
                peer_role: offer.role,
                terms: offer.terms,
            }),
        }
    }

    /// The key that authenticates an Offer: from the pre-shared secret, or from the Offer
    /// Secret opened with our private key and the peer's public key (HPKE auth mode).
    fn offer_auth_key(&self, peer_idx: usize, offer: &Offer, covered: &[u8]) -> Option<MacKey> {
        match &self.config.peers.get(peer_idx)?.association {
            Association::PreShared(secret) => keys::auth_key_from_psk(secret.as_bytes()).ok(),
            Association::PublicKey(peer_pk) => {
                let sealed = offer.offer_secret.as_deref()?;
                let prefix = covered.get(..covered.len().checked_sub(OFFER_SECRET_LEN)?)?;
                let own_sk = self.config.private_key.as_ref()?;
                let info = [keys::OFFER_SECRET_INFO, prefix].concat();
                let secret =
                    crypto::open_authenticated(sealed, own_sk, peer_pk, &info, &[]).ok()?;
                keys::auth_key_from_offer_secret(&secret).ok()
            }
        }
    }

    /// What to do with a fresh Offer from a peer we already negotiate with. A negotiation
    /// the new Offer supersedes is failed here.
    fn resolve_conflict(&mut self, now: Time, peer_idx: usize, offer: &Offer) -> Conflict {
        let Some(idx) = self.active_with(peer_idx) else {
            return Conflict::None;
        };
        let n = &self.negotiations[idx];
        match n.state {
            // Both sides offered at once: the larger initiator nonce wins on both sides.
            NegotiationState::OfferSent if offer.nonce_i > n.nonce_i => {
                self.fail(idx, FailReason::Superseded);
                Conflict::None
            }
            NegotiationState::OfferSent => Conflict::Drop,
            // The peer restarted: a newer Offer replaces one it can no longer complete.
            NegotiationState::AwaitingDecision | NegotiationState::Accepted
                if Time::from_ntp(offer.timestamp) > n.offer_time =>
            {
                if n.state == NegotiationState::AwaitingDecision {
                    let _ = self.refuse_at(now, idx, RefuseCode::Busy);
                    self.emit_failed(idx, FailReason::Superseded);
                } else {
                    self.fail(idx, FailReason::Superseded);
                }
                Conflict::None
            }
            _ => Conflict::Refuse(RefuseCode::Busy),
        }
    }

    pub(super) fn on_repeated_offer(
        &mut self,
        now: Time,
        idx: usize,
        from: SocketAddrV4,
        datagram: &[u8],
    ) {
        let span = self.retransmit_span();
        let n = &mut self.negotiations[idx];
        if n.initiator || n.last_received != datagram || n.remote != from {
            self.stats.discarded_unmatched += 1;
            return;
        }
        match n.state {
            NegotiationState::Accepted | NegotiationState::Refused => {
                n.deadline = n.deadline.max(now + span);
                let (remote, bytes) = (n.remote, n.last_sent.clone());
                self.stats.repeated_answers += 1;
                self.send(remote, bytes);
            }
            // Still deciding, or already past this step: nothing to repeat.
            _ => {}
        }
    }

    pub(super) fn on_accept(
        &mut self,
        now: Time,
        from: SocketAddrV4,
        accept: Accept,
        datagram: &[u8],
        covered: &[u8],
        mac: &[u8; 32],
    ) {
        let Some(idx) = self.initiator_match(
            from,
            accept.mode,
            &accept.nonce_i,
            NegotiationState::OfferSent,
        ) else {
            return;
        };
        let n = &mut self.negotiations[idx];
        if !keys::verify(&n.k_auth, &n.transcript, covered, mac) {
            n.auth_failures += 1;
            self.stats.discarded_unauthenticated += 1;
            return;
        }
        if let Err(e) = SessionTerms::check_answer(n.local_role, &n.offered, &accept.terms) {
            self.fail(idx, FailReason::BadTerms(e));
            return;
        }
        n.transcript.absorb(datagram);
        let key = SessionKey::generate(&mut self.rng);
        let th2 = *n.transcript.hash();
        let encrypted = match &self.config.peers[n.peer].association {
            Association::PreShared(secret) => {
                crypto::wrap_for_association(&key, secret.as_bytes(), &th2)
            }
            Association::PublicKey(peer_pk) => {
                let info = [keys::SESSION_KEY_INFO, &th2[..]].concat();
                crypto::seal_for_public_key(&key, peer_pk, &info, &mut self.rng)
            }
        };
        let encrypted = match encrypted {
            Ok(e) => e,
            Err(e) => {
                self.fail(idx, FailReason::Crypto(e));
                return;
            }
        };
        let message = Message::SessionKey(SessionKeyMessage {
            mode: n.mode,
            nonce_i: n.nonce_i,
            nonce_r: accept.nonce_r,
            algorithm: n.mode.key_algorithm(),
            encrypted_key: encrypted,
        });
        let covered = match message.emit_unauthenticated() {
            Ok(c) => c,
            // Cannot happen (the key's length is fixed), but never send what cannot parse.
            Err(_) => {
                self.fail(idx, FailReason::Crypto(crypto::CryptoError::Wrap));
                return;
            }
        };
        let bytes = keys::seal_message(covered, &n.k_auth, &n.transcript);
        n.transcript.absorb(&bytes);
        n.nonce_r = accept.nonce_r;
        n.agreed = Some(accept.terms);
        n.session_key = Some(key);
        n.state = NegotiationState::KeySent;
        n.last_sent = bytes.clone();
        n.attempts = 1;
        let remote = n.remote;
        let rto = self.rto(1);
        self.negotiations[idx].deadline = now + rto;
        self.send(remote, bytes);
    }

    pub(super) fn on_refuse(
        &mut self,
        now: Time,
        from: SocketAddrV4,
        refuse: Refuse,
        covered: &[u8],
        mac: &[u8; 32],
    ) {
        let Some(idx) = self.initiator_match(
            from,
            refuse.mode,
            &refuse.nonce_i,
            NegotiationState::OfferSent,
        ) else {
            return;
        };
        let n = &mut self.negotiations[idx];
        if !keys::verify(&n.k_auth, &n.transcript, covered, mac) {
            n.auth_failures += 1;
            self.stats.discarded_unauthenticated += 1;
            return;
        }
        let reason = match refuse.code {
            RefuseCode::ClockSkew => {
                let theirs = Time::from_ntp(refuse.timestamp).as_micros();
                let offset = i128::from(theirs) - i128::from(now.as_micros());
                FailReason::ClockSkew {
                    offset_micros: i64::try_from(offset).unwrap_or(i64::MAX),
                }
            }
            code => FailReason::Refused(code),
        };
        self.fail(idx, reason);
    }

    pub(super) fn on_session_key(
        &mut self,
        now: Time,
        from: SocketAddrV4,
        message: SessionKeyMessage,
        datagram: &[u8],
        covered: &[u8],
        mac: &[u8; 32],
    ) {
        let span = self.retransmit_span();
        let Some(idx) = self.index_by_nonce(&message.nonce_i) else {
            self.stats.discarded_unmatched += 1;
            return;
        };
        let n = &mut self.negotiations[idx];
        if n.initiator || n.remote != from || n.mode != message.mode || n.nonce_r != message.nonce_r
        {
            self.stats.discarded_unmatched += 1;
            return;
        }
        match n.state {
            NegotiationState::Accepted => {}
            NegotiationState::Confirmed if n.last_received == datagram => {
                n.deadline = n.deadline.max(now + span);
                let (remote, bytes) = (n.remote, n.last_sent.clone());
                self.stats.repeated_answers += 1;
                self.send(remote, bytes);
                return;
            }
            _ => {
                self.stats.discarded_unmatched += 1;
                return;
            }
        }
        if !keys::verify(&n.k_auth, &n.transcript, covered, mac) {
            n.auth_failures += 1;
            self.stats.discarded_unauthenticated += 1;
            return;
        }
        let th2 = *n.transcript.hash();
        let key = match &self.config.peers[n.peer].association {
            Association::PreShared(secret) => {
                crypto::unwrap_for_association(&message.encrypted_key, secret.as_bytes(), &th2)
            }
            Association::PublicKey(_) => match &self.config.private_key {
                Some(own_sk) => {
                    let info = [keys::SESSION_KEY_INFO, &th2[..]].concat();
                    crypto::open_with_private_key(&message.encrypted_key, own_sk, &info)
                }
                None => Err(crypto::CryptoError::Open),
            },
        };
        let (key, k_confirm) =
            match key.and_then(|k| keys::confirm_key(&n.k_auth, &k).map(|c| (k, c))) {
                Ok(pair) => pair,
                Err(_) => {
                    // Authentic sender, but the key does not open: count it like a bad MAC.
                    n.auth_failures += 1;
                    self.stats.discarded_unauthenticated += 1;
                    return;
                }
            };
        n.transcript.absorb(datagram);
        let confirm = Message::Confirm(Confirm {
            mode: n.mode,
            nonce_i: n.nonce_i,
            nonce_r: n.nonce_r,
        });
        let Ok(covered) = confirm.emit_unauthenticated() else {
            return;
        };
        let bytes = keys::seal_message(covered, &k_confirm, &n.transcript);
        n.session_key = Some(key);
        n.state = NegotiationState::Confirmed;
        n.last_received = datagram.to_vec();
        n.last_sent = bytes.clone();
        n.deadline = now + span;
        let remote = n.remote;
        self.send(remote, bytes);
        self.emit_negotiated(idx);
        // Repeats of the Session Key are answered from the cached Confirm: the key itself
        // need not stay here.
        self.negotiations[idx].session_key = None;
    }

    pub(super) fn on_confirm(
        &mut self,
        from: SocketAddrV4,
        confirm: Confirm,
        covered: &[u8],
        mac: &[u8; 32],
    ) {
        let Some(idx) = self.initiator_match(
            from,
            confirm.mode,
            &confirm.nonce_i,
            NegotiationState::KeySent,
        ) else {
            return;
        };
        let n = &mut self.negotiations[idx];
        let verified = n.nonce_r == confirm.nonce_r
            && match &n.session_key {
                Some(key) => keys::confirm_key(&n.k_auth, key)
                    .is_ok_and(|k| keys::verify(&k, &n.transcript, covered, mac)),
                None => false,
            };
        if !verified {
            n.auth_failures += 1;
            self.stats.discarded_unauthenticated += 1;
            return;
        }
        self.emit_negotiated(idx);
        self.negotiations.remove(idx);
    }
}
