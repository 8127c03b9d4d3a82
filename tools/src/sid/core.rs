//! The device daemon's state without I/O: the negotiator, the TN and Target roles (through
//! the Agent, FIG. 1a, and on the same subnet, FIG. 1b), the control commands, and the
//! network actions the events ask for (applied by [`super::daemon`]).

use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};

use mip_core::time::Time;
use mip_core::Transmit;
use rand::rngs::OsRng;
use serde_json::json;
use sid_ext::crypto::SessionKey;
use sid_ext::device::local::{
    authenticator_spi, LinkTransmit, LocalPlan, LocalSession, LocalTarget, LocalTargetConfig,
    LocalTargetEvent, LocalTn, LocalTnConfig, LocalTnEvent, LocalTnState,
};
use sid_ext::device::{
    LinkAddress, Target, TargetConfig, TargetEvent, TargetSession, TnConfig, TnEvent, TnState,
    TransferPlan, TransferringNode,
};
use sid_ext::negotiation::{
    NegotiationEvent, NegotiationId, Negotiator, ReversePath, Role, SessionTerms,
};
use sid_ext::wire::StopReason;
use tracing::{info, warn};

use super::config::SidConfig;
use super::control::{Request, Response};
use super::datapath::SidDataStats;

/// What the network must do for an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetAction {
    /// TN: stop answering ARP for its address.
    Release { address: Ipv4Addr },
    /// TN: answer ARP again and announce the address (gratuitous ARP).
    TakeBack { address: Ipv4Addr },
    /// Target: put the address on the TUN device, route its traffic through it.
    Install { address: Ipv4Addr, agent: Ipv4Addr, reverse_tunnel: bool },
    /// Target: take it off.
    Remove { address: Ipv4Addr },
    /// Target, same subnet: the address on the TUN device as for `Install` (no tunnel),
    /// ARP answered for it on the interface, gratuitous ARP.
    Assume { address: Ipv4Addr },
    /// Target, same subnet: take it off (ARP no longer answered for it).
    Relinquish { address: Ipv4Addr },
    /// Gratuitous ARP again, request and reply, with this device's MAC.
    Announce { address: Ipv4Addr },
}

/// A finished negotiation, kept until used.
#[derive(Debug, Clone)]
struct Negotiated {
    role: Role,
    key: SessionKey,
    terms: SessionTerms,
    peer: String,
    peer_address: SocketAddrV4,
    used: bool,
}

pub struct Core {
    pub cfg: SidConfig,
    pub negotiator: Negotiator<OsRng>,
    pub tn: Option<TransferringNode>,
    pub target: Target,
    /// Same-subnet roles (FIG. 1b): no Agent needed, so always present.
    pub local_tn: LocalTn,
    pub local_target: LocalTarget,
    offered: BTreeMap<u64, (String, Role, SessionTerms)>,
    negotiated: BTreeMap<u64, Negotiated>,
    /// Terms of the session held as Target (to offer it further).
    held: Option<SessionTerms>,
    pub actions: VecDeque<NetAction>,
    pub data: SidDataStats,
    log: VecDeque<String>,
}

const LOG_LEN: usize = 32;

fn reverse_path(reverse: bool) -> ReversePath {
    if reverse {
        ReversePath::Tunnel
    } else {
        ReversePath::Direct
    }
}

impl Core {
    pub fn new(cfg: SidConfig, mac: Option<[u8; 6]>) -> Result<Self, String> {
        let negotiator = Negotiator::new(cfg.negotiator.clone(), OsRng).map_err(|e| e.to_string())?;
        let tn = match &cfg.agent {
            Some((agent, sa)) => {
                let mut c = TnConfig::new(cfg.address, *agent, sa.clone());
                c.org_id = cfg.org_id;
                c.link_address = mac.map(LinkAddress::ethernet);
                c.interim = cfg.interim_address;
                Some(TransferringNode::new(c, rand::random()).map_err(|e| e.to_string())?)
            }
            None => None,
        };
        let mut tc = TargetConfig::new(cfg.address);
        tc.org_id = cfg.org_id;
        let mut ltn = LocalTnConfig::new(cfg.address);
        ltn.org_id = cfg.org_id;
        ltn.link_address = mac.map(LinkAddress::ethernet);
        ltn.interim = cfg.interim_address;
        let mut ltg = LocalTargetConfig::new(cfg.address);
        ltg.org_id = cfg.org_id;
        Ok(Core {
            target: Target::new(tc, rand::random()),
            local_tn: LocalTn::new(ltn, rand::random()),
            local_target: LocalTarget::new(ltg),
            negotiator,
            tn,
            offered: BTreeMap::new(),
            negotiated: BTreeMap::new(),
            held: None,
            actions: VecDeque::new(),
            data: SidDataStats::default(),
            log: VecDeque::new(),
            cfg,
        })
    }

    fn note(&mut self, s: String) {
        info!("{s}");
        if self.log.len() >= LOG_LEN {
            self.log.pop_front();
        }
        self.log.push_back(s);
    }

    pub fn poll_timeout(&self) -> Option<Time> {
        [
            self.negotiator.poll_timeout(),
            self.tn.as_ref().and_then(TransferringNode::poll_timeout),
            self.target.poll_timeout(),
            self.local_tn.poll_timeout(),
            self.local_target.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn handle_timeout(&mut self, now: Time) {
        self.negotiator.handle_timeout(now);
        if let Some(tn) = self.tn.as_mut() {
            tn.handle_timeout(now);
        }
        self.target.handle_timeout(now);
        self.local_tn.handle_timeout(now);
        self.local_target.handle_timeout(now);
        self.process(now);
    }

    pub fn negotiation_datagram(&mut self, now: Time, from: SocketAddrV4, payload: &[u8]) {
        self.negotiator.handle_datagram(now, from, payload);
        self.process(now);
    }

    /// UDP 434: replies to the TN or the Target, wake-ups to the TN; requests and
    /// wake-up acknowledgements to the same-subnet Target; replies and wake-ups under the
    /// same-subnet session's SPI to the same-subnet TN.
    pub fn registration_datagram(&mut self, now: Time, from: SocketAddrV4, payload: &[u8]) {
        use mip_core::wire::notification::{NOTIFICATION_ACK_TYPE, NOTIFICATION_TYPE};
        use mip_core::wire::{REPLY_TYPE, REQUEST_TYPE};
        let kind = mip_core::wire::message_type(payload);
        let local_tn_spi = self.local_tn.session_spi();
        if matches!(kind, Some(REQUEST_TYPE | NOTIFICATION_ACK_TYPE)) {
            self.local_target.handle_datagram(now, from, payload);
            return self.process(now);
        }
        if matches!(kind, Some(REPLY_TYPE | NOTIFICATION_TYPE))
            && local_tn_spi.is_some()
            && authenticator_spi(payload) == local_tn_spi
        {
            self.local_tn.handle_datagram(now, from, payload);
            return self.process(now);
        }
        let for_tn = match kind {
            Some(NOTIFICATION_TYPE) => true,
            // A reply is the TN's when it names the TN's address and the TN waits for one.
            Some(REPLY_TYPE) => self.tn.as_ref().is_some_and(|tn| {
                tn.poll_timeout().is_some() && self.target.session().map(|s| s.tn_address) != Some(tn.config().address)
            }),
            _ => false,
        };
        match (for_tn, self.tn.as_mut()) {
            (true, Some(tn)) => tn.handle_datagram(now, from, payload),
            _ => self.target.handle_datagram(now, from, payload),
        }
        self.process(now);
    }

    /// Negotiation datagrams to send.
    pub fn poll_negotiation_transmit(&mut self) -> Option<Transmit> {
        self.negotiator.poll_transmit()
    }

    /// Registration datagrams to send (from UDP 434).
    pub fn poll_registration_transmit(&mut self) -> Option<Transmit> {
        if let Some(t) = self.tn.as_mut().and_then(TransferringNode::poll_transmit) {
            return Some(t);
        }
        self.target
            .poll_transmit()
            .or_else(|| self.local_tn.poll_transmit())
            .or_else(|| self.local_target.poll_transmit())
    }

    /// Wake-ups to send as Ethernet frames to the TN's MAC, bypassing ARP.
    pub fn poll_link_transmit(&mut self) -> Option<LinkTransmit> {
        self.local_target.poll_link_transmit()
    }

    /// Drains the events of every part.
    fn process(&mut self, now: Time) {
        while let Some(ev) = self.negotiator.poll_event() {
            self.on_negotiation(now, ev);
        }
        while let Some(ev) = self.tn.as_mut().and_then(TransferringNode::poll_event) {
            self.on_tn(ev);
        }
        while let Some(ev) = self.target.poll_event() {
            self.on_target(ev);
        }
        while let Some(ev) = self.local_tn.poll_event() {
            self.note(format!("tn (same subnet): {ev:?}"));
            self.actions.extend(match ev {
                LocalTnEvent::ReleaseAddress { address } => Some(NetAction::Release { address }),
                LocalTnEvent::TakeBackAddress { address } => Some(NetAction::TakeBack { address }),
                LocalTnEvent::Announce { address } => Some(NetAction::Announce { address }),
                _ => None,
            });
        }
        while let Some(ev) = self.local_target.poll_event() {
            self.note(format!("target (same subnet): {ev:?}"));
            self.actions.extend(match ev {
                LocalTargetEvent::AssumeAddress { address } => Some(NetAction::Assume { address }),
                LocalTargetEvent::ReleaseAddress { address } => Some(NetAction::Relinquish { address }),
                LocalTargetEvent::Announce { address } => Some(NetAction::Announce { address }),
                _ => None,
            });
        }
    }

    fn on_negotiation(&mut self, now: Time, ev: NegotiationEvent) {
        match ev {
            NegotiationEvent::Offered { id, peer, from, peer_role, terms } => {
                self.note(format!("offer {} from {peer} ({from}) as {peer_role:?}: {terms:?}", id.0));
                self.offered.insert(id.0, (peer, peer_role, terms));
            }
            NegotiationEvent::Negotiated {
                id, role, session_key, agent, tn_address, tn_lla, interim, further_transfer,
                reverse_path, lifetime, peer, peer_address,
            } => {
                self.offered.remove(&id.0);
                self.note(format!("negotiated {} with {peer} as {role:?}", id.0));
                let terms = SessionTerms {
                    tn_address, agent, tn_lla, interim, further_transfer, lifetime, reverse_path,
                };
                let n = Negotiated { role, key: session_key, terms, peer, peer_address, used: false };
                self.negotiated.insert(id.0, n);
                match role {
                    Role::TargetNode => {
                        if let Err(e) = self.take_session(now, id.0) {
                            self.note(format!("session {} not taken: {e}", id.0));
                        }
                    }
                    Role::TransferringNode if self.cfg.auto_transfer => {
                        if let Err(e) = self.transfer(now, id.0) {
                            self.note(format!("transfer {} not started: {e}", id.0));
                        }
                    }
                    Role::TransferringNode => {}
                }
            }
            NegotiationEvent::Failed { id, peer, reason } => {
                self.offered.remove(&id.0);
                self.note(format!("negotiation {} with {peer} failed: {reason}", id.0));
            }
            NegotiationEvent::Rejected { from, peer, reason } => {
                warn!(%from, %peer, ?reason, "negotiation datagram rejected");
            }
        }
    }

    fn take_session(&mut self, now: Time, id: u64) -> Result<(), String> {
        let holds_local = self.local_target.holds_address();
        let holds_agent = self.target.session().is_some();
        let n = self.negotiated.get_mut(&id).ok_or("no such negotiation")?;
        let Some(agent) = n.terms.agent else {
            // FIG. 1b: ready to take the address over when the TN says so.
            if holds_agent {
                return Err("this device holds a session through an Agent; end it first".into());
            }
            let tn_link = <[u8; 6]>::try_from(n.terms.tn_lla.as_slice()).ok().map(LinkAddress::ethernet);
            let session = LocalSession {
                tn_address: n.terms.tn_address,
                tn_link,
                interim: n.terms.interim,
                session_key: n.key.clone(),
                lifetime: n.terms.lifetime,
            };
            self.local_target.accept_session(session).map_err(|e| e.to_string())?;
            if let Some(n) = self.negotiated.get_mut(&id) {
                n.used = true;
            }
            return Ok(());
        };
        if holds_local {
            return Err("this device holds a same-subnet session; end it first".into());
        }
        n.used = true;
        let session = TargetSession {
            tn_address: n.terms.tn_address,
            agent,
            session_key: n.key.clone(),
            lifetime: n.terms.lifetime,
            further_transfer: n.terms.further_transfer,
            reverse_tunnel: n.terms.reverse_path == ReversePath::Tunnel,
        };
        self.held = Some(n.terms.clone());
        self.target.accept_session(now, session).map_err(|e| e.to_string())
    }

    fn on_tn(&mut self, ev: TnEvent) {
        self.note(format!("tn: {ev:?}"));
        match ev {
            TnEvent::ReleaseAddress { address } => self.actions.push_back(NetAction::Release { address }),
            TnEvent::TakeBackAddress { address } => self.actions.push_back(NetAction::TakeBack { address }),
            _ => {}
        }
    }

    /// FIG. 1b: the TN tells the same-subnet Target to take the address now.
    fn transfer_local(&mut self, now: Time, n: &Negotiated) -> Result<(), String> {
        if n.terms.tn_address != self.cfg.address {
            return Err("a same-subnet session is not handed on: further transfer needs an Agent".into());
        }
        if self.tn.as_ref().is_some_and(|tn| tn.state() != TnState::Home) {
            return Err("the address is already transferred through the Agent".into());
        }
        let plan = LocalPlan { target: *n.peer_address.ip(), session_key: n.key.clone(), lifetime: n.terms.lifetime };
        self.local_tn.take_over(now, &plan).map_err(|e| e.to_string())
    }

    fn on_target(&mut self, ev: TargetEvent) {
        self.note(format!("target: {ev:?}"));
        match ev {
            TargetEvent::InstallAddress { address, agent, reverse_tunnel } => {
                self.actions.push_back(NetAction::Install { address, agent, reverse_tunnel })
            }
            TargetEvent::RemoveAddress { address } => {
                self.held = None;
                self.actions.push_back(NetAction::Remove { address })
            }
            _ => {}
        }
    }

    /// `transfer ID`: the TN asks the Agent; a Target holding the session hands it on.
    fn transfer(&mut self, now: Time, id: u64) -> Result<String, String> {
        let n = self.negotiated.get(&id).ok_or("no such negotiated session")?.clone();
        if n.role != Role::TransferringNode {
            return Err("this device is the Target of that negotiation".into());
        }
        let target_ip = *n.peer_address.ip();
        let reverse = n.terms.reverse_path == ReversePath::Tunnel;
        if n.terms.agent.is_none() {
            self.transfer_local(now, &n)?;
        } else if n.terms.tn_address == self.cfg.address {
            if self.local_tn.state() != LocalTnState::Home {
                return Err("the address is with a same-subnet Target".into());
            }
            let tn = self.tn.as_mut().ok_or("no [agent] configured: cannot act as Transferring Node")?;
            let plan = TransferPlan {
                target: target_ip,
                session_key: n.key.clone(),
                lifetime: n.terms.lifetime,
                further_transfer: n.terms.further_transfer,
                reverse_tunnel: reverse,
            };
            tn.transfer(now, &plan).map_err(|e| e.to_string())?;
        } else {
            self.target
                .transfer_further(now, target_ip, &n.key, n.terms.lifetime, n.terms.further_transfer, reverse)
                .map_err(|e| e.to_string())?;
        }
        if let Some(n) = self.negotiated.get_mut(&id) {
            n.used = true;
        }
        self.process(now);
        Ok(format!("transfer of {} to {target_ip} requested", n.terms.tn_address))
    }

    fn find_peer(&self, peer: &str) -> Option<String> {
        let peers = &self.cfg.negotiator.peers;
        if let Some(p) = peers.iter().find(|p| p.identity == peer) {
            return Some(p.identity.clone());
        }
        let by_addr = |a: SocketAddrV4| peers.iter().find(|p| p.address == Some(a)).map(|p| p.identity.clone());
        if let Ok(a) = peer.parse::<SocketAddrV4>() {
            return by_addr(a);
        }
        let ip: Ipv4Addr = peer.parse().ok()?;
        peers
            .iter()
            .find(|p| p.address.is_some_and(|a| *a.ip() == ip))
            .map(|p| p.identity.clone())
    }

    /// Whether a transfer with `peer` goes without the Agent (FIG. 1b): asked for, set for
    /// the peer in the configuration, or no Agent configured at all.
    fn same_subnet(&self, peer: &str, asked: bool) -> bool {
        asked || self.tn.is_none() || self.cfg.same_subnet_peers.iter().any(|p| p == peer)
    }

    /// The TN's side of terms: its address, Agent and link-layer address (or, for a
    /// Target offering the session on, the original TN's). `local`: no Agent (FIG. 1b).
    fn tn_terms(&self, lifetime: u16, further: bool, reverse: bool, local: bool) -> Result<SessionTerms, String> {
        if let Some(held) = &self.held {
            return Ok(SessionTerms { lifetime, further_transfer: further, reverse_path: reverse_path(reverse), ..held.clone() });
        }
        if local {
            if reverse {
                return Err("a same-subnet transfer has no Agent to reverse-tunnel through".into());
            }
            if further {
                return Err("further transfer needs an Agent; a same-subnet transfer cannot grant it".into());
            }
            let c = self.local_tn.config();
            return Ok(SessionTerms {
                tn_address: self.cfg.address,
                agent: None,
                tn_lla: c.link_address.as_ref().map(|l| l.address.clone()).unwrap_or_default(),
                interim: c.interim,
                further_transfer: false,
                lifetime,
                reverse_path: ReversePath::Direct,
            });
        }
        let tn = self.tn.as_ref().ok_or("no [agent] configured and no session held")?;
        Ok(SessionTerms {
            tn_address: self.cfg.address,
            agent: Some(tn.config().agent),
            tn_lla: tn.config().link_address.as_ref().map(|l| l.address.clone()).unwrap_or_default(),
            interim: tn.config().interim,
            further_transfer: further,
            lifetime,
            reverse_path: reverse_path(reverse),
        })
    }

    pub fn command(&mut self, now: Time, req: Request) -> Response {
        let r = self.command_inner(now, req);
        self.process(now);
        match r {
            Ok(resp) => resp,
            Err(e) => Response::refused(e),
        }
    }

    fn command_inner(&mut self, now: Time, req: Request) -> Result<Response, String> {
        match req {
            Request::Offer { peer, role, lifetime, further_transfer, reverse_tunnel, tn_address, local } => {
                let name = self.find_peer(&peer).ok_or_else(|| format!("no configured peer {peer:?}"))?;
                let lifetime = lifetime.unwrap_or(self.cfg.lifetime);
                let local = self.same_subnet(&name, local);
                let (role, terms) = match role.as_str() {
                    "transferring" | "tn" => (Role::TransferringNode, self.tn_terms(lifetime, further_transfer, reverse_tunnel, local)?),
                    "target" => (
                        Role::TargetNode,
                        SessionTerms::target_request(
                            tn_address.unwrap_or(Ipv4Addr::UNSPECIFIED),
                            lifetime,
                            reverse_path(reverse_tunnel),
                            further_transfer,
                        ),
                    ),
                    other => return Err(format!("role {other:?}: transferring or target")),
                };
                let id = self.negotiator.offer(now, &name, role, terms).map_err(|e| e.to_string())?;
                let mut r = Response::ok(format!("offer {} sent to {name}", id.0));
                r.data = json!({ "id": id.0 });
                Ok(r)
            }
            Request::Accept { id, reverse_tunnel, local } => {
                let (peer, peer_role, offered) = self.offered.get(&id).cloned().ok_or("no such pending offer")?;
                let terms = match peer_role {
                    // We are the TN: fill in our side, keep what the Target asked for (a
                    // same-subnet answer clears F, which the rules allow).
                    Role::TargetNode => {
                        let local = self.same_subnet(&peer, local);
                        let further = offered.further_transfer && !local;
                        let t = self.tn_terms(offered.lifetime, further, offered.reverse_path == ReversePath::Tunnel, local)?;
                        if !offered.tn_address.is_unspecified() && offered.tn_address != t.tn_address {
                            return Err(format!("the Target asks for {}, not ours", offered.tn_address));
                        }
                        t
                    }
                    // We are the Target: the TN's terms, with our reverse-path choice.
                    Role::TransferringNode => {
                        let mut t = offered;
                        if let Some(r) = reverse_tunnel {
                            t.reverse_path = reverse_path(r);
                        }
                        t
                    }
                };
                self.negotiator.accept(now, NegotiationId(id), terms).map_err(|e| e.to_string())?;
                self.offered.remove(&id);
                Ok(Response::ok(format!("offer {id} accepted")))
            }
            Request::Transfer { id } => Ok(Response::ok(self.transfer(now, id)?)),
            Request::Renew => {
                if self.local_target.holds_address() {
                    return Err("a same-subnet transfer is not renewed: its lifetime is the TN's grant".into());
                }
                self.target.renew(now).map_err(|e| e.to_string())?;
                Ok(Response::ok("renewal sent"))
            }
            Request::Stop => {
                if self.local_target.holds_address() {
                    self.local_target.end(now).map_err(|e| e.to_string())?;
                    return Ok(Response::ok("ending the same-subnet transfer: wake-up sent to the TN"));
                }
                if self.local_tn.state() != LocalTnState::Home
                    || (self.tn.is_none() && self.local_tn.session_spi().is_some())
                {
                    self.local_tn.stop(now, StopReason::Override).map_err(|e| e.to_string())?;
                    return Ok(Response::ok("stop-transfer demand sent to the same-subnet Target"));
                }
                if self.target.session().is_some() {
                    self.target.end(now).map_err(|e| e.to_string())?;
                    return Ok(Response::ok("ending the transfer (lifetime 0)"));
                }
                let tn = self.tn.as_mut().ok_or("nothing to stop: no session held and no [agent]")?;
                tn.stop(now, StopReason::Override, None).map_err(|e| e.to_string())?;
                Ok(Response::ok("stop-transfer demand sent"))
            }
            Request::Status => {
                let mut r = Response::ok("status");
                r.data = self.status(now);
                Ok(r)
            }
        }
    }

    pub fn status(&self, now: Time) -> serde_json::Value {
        let tn = self.tn.as_ref().map(|tn| {
            json!({
                "address": tn.config().address,
                "agent": tn.config().agent,
                "state": tn.state().name(),
                "session_spi": tn.session_spi(),
                "requests_sent": tn.stats().requests_sent,
                "wake_ups_accepted": tn.stats().wake_ups_accepted,
                "wake_ups_discarded": tn.stats().wake_ups_discarded,
            })
        });
        let target = json!({
            "state": self.target.state().name(),
            "tn_address": self.target.session().map(|s| s.tn_address),
            "agent": self.target.session().map(|s| s.agent),
            "further_transfer": self.target.session().map(|s| s.further_transfer),
            "reverse_tunnel": self.target.session().map(|s| s.reverse_tunnel),
            "session_spi": self.target.session_spi(),
            "expires_in": self.target.expires().map(|e| e.saturating_duration_since(now).as_secs()),
            "requests_sent": self.target.stats().requests_sent,
        });
        let (ltn, ltg) = (&self.local_tn, &self.local_target);
        let same_subnet = json!({
            "tn": {
                "state": ltn.state().name(),
                "session_spi": ltn.session_spi(),
                "requests_sent": ltn.stats().requests_sent,
                "retransmissions": ltn.stats().retransmissions,
                "wake_ups_accepted": ltn.stats().wake_ups_accepted,
                "wake_ups_discarded": ltn.stats().wake_ups_discarded,
            },
            "target": {
                "state": ltg.state().name(),
                "tn_address": ltg.session().map(|s| s.tn_address),
                "session_spi": ltg.session_spi(),
                "expires_in": ltg.expires().map(|e| e.saturating_duration_since(now).as_secs()),
                "requests_accepted": ltg.stats().requests_accepted,
                "requests_refused": ltg.stats().requests_refused,
                "replays_refused": ltg.stats().replays_refused,
                "discarded_auth": ltg.stats().discarded_auth,
                "discarded_unmatched": ltg.stats().discarded_unmatched,
                "wake_ups_sent": ltg.stats().wake_ups_sent,
                "wake_ups_acknowledged": ltg.stats().wake_ups_acknowledged,
                "bad_acknowledgements": ltg.stats().bad_acknowledgements,
            },
        });
        let offers: Vec<_> = self
            .offered
            .iter()
            .map(|(id, (peer, role, t))| json!({ "id": id, "peer": peer, "peer_role": format!("{role:?}"), "terms": format!("{t:?}") }))
            .collect();
        let negotiated: Vec<_> = self
            .negotiated
            .iter()
            .map(|(id, n)| json!({ "id": id, "peer": n.peer, "peer_address": n.peer_address.to_string(), "role": format!("{:?}", n.role), "tn_address": n.terms.tn_address, "used": n.used }))
            .collect();
        json!({
            "identity": self.cfg.identity,
            "address": self.cfg.address,
            "transferring_node": tn,
            "target": target,
            "same_subnet": same_subnet,
            "offers": offers,
            "negotiated": negotiated,
            "data": self.data,
            "log": self.log,
        })
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
