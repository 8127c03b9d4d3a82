//! The device daemon's state without I/O: the negotiator, the TN and Target roles, the
//! control commands, and the network actions the events ask for (applied by
//! [`super::daemon`]).

use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};

use mip_core::time::Time;
use mip_core::Transmit;
use rand::rngs::OsRng;
use serde_json::json;
use sid_ext::crypto::SessionKey;
use sid_ext::device::{
    LinkAddress, Target, TargetConfig, TargetEvent, TargetSession, TnConfig, TnEvent,
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
                Some(TransferringNode::new(c, rand::random()).map_err(|e| e.to_string())?)
            }
            None => None,
        };
        let mut tc = TargetConfig::new(cfg.address);
        tc.org_id = cfg.org_id;
        Ok(Core {
            target: Target::new(tc, rand::random()),
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
        self.process(now);
    }

    pub fn negotiation_datagram(&mut self, now: Time, from: SocketAddrV4, payload: &[u8]) {
        self.negotiator.handle_datagram(now, from, payload);
        self.process(now);
    }

    /// UDP 434: replies to the TN or the Target, wake-ups to the TN.
    pub fn registration_datagram(&mut self, now: Time, from: SocketAddrV4, payload: &[u8]) {
        let for_tn = match mip_core::wire::message_type(payload) {
            Some(mip_core::wire::notification::NOTIFICATION_TYPE) => true,
            // A reply is the TN's when it names the TN's address and the TN waits for one.
            Some(mip_core::wire::REPLY_TYPE) => self.tn.as_ref().is_some_and(|tn| {
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
        self.target.poll_transmit()
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
        let n = self.negotiated.get_mut(&id).ok_or("no such negotiation")?;
        let agent = n
            .terms
            .agent
            .ok_or("same-subnet transfer (FIG. 1b, no Agent) is not implemented")?;
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
        if n.terms.tn_address == self.cfg.address {
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

    /// The TN's side of terms: its address, Agent and link-layer address (or, for a
    /// Target offering the session on, the original TN's).
    fn tn_terms(&self, lifetime: u16, further: bool, reverse: bool) -> Result<SessionTerms, String> {
        if let Some(held) = &self.held {
            return Ok(SessionTerms { lifetime, further_transfer: further, reverse_path: reverse_path(reverse), ..held.clone() });
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
            Request::Offer { peer, role, lifetime, further_transfer, reverse_tunnel, tn_address } => {
                let name = self.find_peer(&peer).ok_or_else(|| format!("no configured peer {peer:?}"))?;
                let lifetime = lifetime.unwrap_or(self.cfg.lifetime);
                let (role, terms) = match role.as_str() {
                    "transferring" | "tn" => (Role::TransferringNode, self.tn_terms(lifetime, further_transfer, reverse_tunnel)?),
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
            Request::Accept { id, reverse_tunnel } => {
                let (_, peer_role, offered) = self.offered.get(&id).cloned().ok_or("no such pending offer")?;
                let terms = match peer_role {
                    // We are the TN: fill in our side, keep what the Target asked for.
                    Role::TargetNode => {
                        let t = self.tn_terms(offered.lifetime, offered.further_transfer, offered.reverse_path == ReversePath::Tunnel)?;
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
                self.target.renew(now).map_err(|e| e.to_string())?;
                Ok(Response::ok("renewal sent"))
            }
            Request::Stop => {
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
            "offers": offers,
            "negotiated": negotiated,
            "data": self.data,
            "log": self.log,
        })
    }
}
