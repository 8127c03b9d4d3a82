//! The SID device-to-device negotiation (UDP 4343, `sid_ext::negotiation`) as tshark and
//! `tools/sid.lua` see it. Every message is made by sid-ext's own `Negotiator`s (seeded
//! RNGs, a fixed clock) driven through whole exchanges: a Transferring Node's Offer
//! accepted by a Target (pre-shared secret), a Target's Offer accepted by the TN (public
//! keys: HPKE Offer Secret and sealed session key), and an Offer refused. The capture
//! must decode with every field named and carrying the value we set, with nothing
//! malformed; truncated and garbled copies must never raise a Lua error, and the
//! dissector must call a datagram malformed exactly when `Message::parse` refuses it.
//! Also: the heuristic dissector finds the messages on another UDP port.
//!
//! `SIDMIP_KEEP_PCAP=<dir>` keeps the pcap files for a look in Wireshark.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use conformance::capture;
use conformance::pcap;
use conformance::tshark::{Packet, Severity};
use mip_core::time::Time;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sid_ext::crypto::PrivateKey;
use sid_ext::negotiation::wire::{Message, MessageType};
use sid_ext::negotiation::{
    Association, NegotiationEvent, Negotiator, NegotiatorConfig, PeerConfig, RefuseCode,
    ReversePath, Role, SessionTerms, SharedSecret, NEGOTIATION_PORT,
};

const DESK: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const LAPTOP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const TABLET: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 1);
const AGENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const INTERIM: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 99);
const DESK_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x01, 0x0a];
const PSK: &[u8] = b"desk+laptop pre-shared secret 01";
/// 2026-11-26T00:00:00Z.
const START_SECS: u64 = 1_795_651_200;

fn sock(ip: Ipv4Addr) -> SocketAddrV4 {
    SocketAddrV4::new(ip, NEGOTIATION_PORT)
}

/// One device's endpoint.
struct Device {
    name: &'static str,
    addr: SocketAddrV4,
    neg: Negotiator<StdRng>,
}

/// One datagram as sent.
#[derive(Clone)]
struct Sent {
    from: SocketAddrV4,
    to: SocketAddrV4,
    payload: Vec<u8>,
}

/// How a responder answers an Offer.
enum Decision {
    Accept(SessionTerms),
    Refuse(RefuseCode),
}

/// The three devices, every datagram between them and every event.
struct World {
    devices: Vec<Device>,
    sent: Vec<Sent>,
    events: Vec<(&'static str, NegotiationEvent)>,
}

fn peer(identity: &str, ip: Ipv4Addr, association: Association) -> PeerConfig {
    PeerConfig {
        identity: identity.into(),
        address: Some(sock(ip)),
        association,
    }
}

impl World {
    /// desk (the TN) shares a secret with laptop and knows tablet by public key.
    fn new() -> World {
        let mut keys = StdRng::seed_from_u64(0x5151);
        let (desk_sk, tablet_sk) = (
            PrivateKey::generate(&mut keys),
            PrivateKey::generate(&mut keys),
        );
        let psk = || Association::PreShared(SharedSecret::new(PSK.to_vec()));
        let mut desk = NegotiatorConfig::new("desk");
        desk.private_key = Some(desk_sk.clone());
        desk.peers = vec![
            peer("laptop", LAPTOP, psk()),
            peer(
                "tablet",
                TABLET,
                Association::PublicKey(tablet_sk.public_key()),
            ),
        ];
        let mut laptop = NegotiatorConfig::new("laptop");
        laptop.peers = vec![peer("desk", DESK, psk())];
        let mut tablet = NegotiatorConfig::new("tablet");
        tablet.private_key = Some(tablet_sk);
        tablet.peers = vec![peer(
            "desk",
            DESK,
            Association::PublicKey(desk_sk.public_key()),
        )];
        let device = |name, ip, cfg, seed| Device {
            name,
            addr: sock(ip),
            neg: Negotiator::new(cfg, StdRng::seed_from_u64(seed))
                .unwrap_or_else(|e| panic!("{name}: {e}")),
        };
        World {
            devices: vec![
                device("desk", DESK, desk, 1),
                device("laptop", LAPTOP, laptop, 2),
                device("tablet", TABLET, tablet, 3),
            ],
            sent: Vec::new(),
            events: Vec::new(),
        }
    }

    fn device(&mut self, name: &str) -> &mut Device {
        self.devices
            .iter_mut()
            .find(|d| d.name == name)
            .unwrap_or_else(|| panic!("no device {name}"))
    }

    /// Starts a negotiation and runs it to its end: every datagram is delivered at once,
    /// and every Offer is answered by `decide`.
    fn exchange(
        &mut self,
        now: Time,
        from: &str,
        to: &str,
        role: Role,
        terms: SessionTerms,
        decide: impl Fn(&SessionTerms) -> Decision,
    ) {
        self.device(from)
            .neg
            .offer(now, to, role, terms)
            .unwrap_or_else(|e| panic!("{from} offers to {to}: {e}"));
        for _ in 0..100 {
            let mut moved = false;
            for i in 0..self.devices.len() {
                while let Some(t) = self.devices[i].neg.poll_transmit() {
                    moved = true;
                    let from = self.devices[i].addr;
                    self.sent.push(Sent {
                        from,
                        to: t.destination,
                        payload: t.payload.clone(),
                    });
                    if let Some(d) = self.devices.iter_mut().find(|d| d.addr == t.destination) {
                        d.neg.handle_datagram(now, from, &t.payload);
                    }
                }
                while let Some(ev) = self.devices[i].neg.poll_event() {
                    moved = true;
                    if let NegotiationEvent::Offered { id, terms, .. } = &ev {
                        let neg = &mut self.devices[i].neg;
                        let r = match decide(terms) {
                            Decision::Accept(t) => neg.accept(now, *id, t),
                            Decision::Refuse(code) => neg.refuse(now, *id, code),
                        };
                        r.unwrap_or_else(|e| panic!("deciding: {e}"));
                    }
                    self.events.push((self.devices[i].name, ev));
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the exchange did not settle");
    }

    fn negotiated(&self, name: &str) -> usize {
        self.events
            .iter()
            .filter(|(n, e)| *n == name && matches!(e, NegotiationEvent::Negotiated { .. }))
            .count()
    }
}

/// What desk offers laptop: its address, the Agent, its MAC, F, reverse tunnel proposed.
fn desk_offer() -> SessionTerms {
    SessionTerms {
        tn_address: DESK,
        agent: Some(AGENT),
        tn_lla: DESK_MAC.to_vec(),
        interim: None,
        further_transfer: true,
        lifetime: 120,
        reverse_path: ReversePath::Tunnel,
    }
}

/// laptop's answer: the reverse path is the Target's to choose.
fn laptop_final() -> SessionTerms {
    SessionTerms {
        reverse_path: ReversePath::Direct,
        ..desk_offer()
    }
}

/// tablet asks desk for any session, 60 s, reverse-tunnelled, with further transfer.
fn tablet_asks() -> SessionTerms {
    SessionTerms::target_request(Ipv4Addr::UNSPECIFIED, 60, ReversePath::Tunnel, true)
}

/// desk's answer to tablet: its side filled in, an interim address besides the MAC.
fn desk_answers_tablet() -> SessionTerms {
    SessionTerms {
        interim: Some(INTERIM),
        lifetime: 60,
        ..desk_offer()
    }
}

/// Every datagram of the three exchanges, with what each carries.
struct Run {
    sent: Vec<Sent>,
    /// Terms each Offer or Accept must show, in datagram order (None for other types).
    terms: Vec<Option<SessionTerms>>,
}

fn run() -> Run {
    let mut w = World::new();
    let t0 = Time::from_secs(START_SECS);
    w.exchange(
        t0,
        "desk",
        "laptop",
        Role::TransferringNode,
        desk_offer(),
        |_| Decision::Accept(laptop_final()),
    );
    let n1 = w.sent.len();
    w.exchange(
        t0 + Duration::from_secs(10),
        "tablet",
        "desk",
        Role::TargetNode,
        tablet_asks(),
        |_| Decision::Accept(desk_answers_tablet()),
    );
    let n2 = w.sent.len();
    w.exchange(
        t0 + Duration::from_secs(20),
        "desk",
        "laptop",
        Role::TransferringNode,
        desk_offer(),
        |_| Decision::Refuse(RefuseCode::Declined),
    );
    assert_eq!(w.negotiated("desk"), 2, "desk: two negotiations succeed");
    assert_eq!(
        w.negotiated("laptop"),
        1,
        "laptop: one succeeds, one refused"
    );
    assert_eq!(w.negotiated("tablet"), 1, "tablet: one succeeds");
    let types: Vec<Option<MessageType>> = w
        .sent
        .iter()
        .map(|s| sid_ext::negotiation::wire::peek_type(&s.payload))
        .collect();
    use MessageType::*;
    let full = [Offer, Accept, SessionKey, Confirm].map(Some);
    assert_eq!(&types[..n1], &full, "PSK exchange");
    assert_eq!(&types[n1..n2], &full, "public-key exchange");
    assert_eq!(
        &types[n2..],
        &[Some(Offer), Some(Refuse)],
        "refused exchange"
    );
    let terms = vec![
        Some(desk_offer()),
        Some(laptop_final()),
        None,
        None,
        Some(tablet_asks()),
        Some(desk_answers_tablet()),
        None,
        None,
        Some(desk_offer()),
        None,
    ];
    Run {
        sent: w.sent,
        terms,
    }
}

/// Writes `datagrams` (one frame each) to `name.pcap` and decodes it with sid.lua.
fn decode(name: &str, datagrams: &[Sent]) -> Vec<Packet> {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let frames: Vec<Vec<u8>> = datagrams
        .iter()
        .enumerate()
        .map(|(i, d)| {
            pcap::ethernet_ipv4_udp(d.from, d.to, &d.payload)
                .unwrap_or_else(|e| panic!("{name} #{}: framing: {e}", i + 1))
        })
        .collect();
    let path = capture::write_pcap(dir.path(), name, &frames, capture::FRAME_SPACING);
    capture::decode(name, &path, &capture::sid_lua_args(), frames.len())
}

fn field_is(p: &Packet, what: &str, field: &str, expected: &str) {
    assert_eq!(p.get(field), Some(expected), "{what}: {field}");
}

fn raw_is(p: &Packet, what: &str, field: &str, expected: &[u8]) {
    assert_eq!(
        p.raw(field).as_deref(),
        Some(expected),
        "{what}: {field} bytes"
    );
}

fn addr_text(a: Option<Ipv4Addr>) -> String {
    a.unwrap_or(Ipv4Addr::UNSPECIFIED).to_string()
}

fn check_terms(p: &Packet, what: &str, t: &SessionTerms) {
    assert_eq!(
        p.get_bool("sidneg.terms.f"),
        Some(t.further_transfer),
        "{what}: F"
    );
    assert_eq!(
        p.get_bool("sidneg.terms.t"),
        Some(t.reverse_path == ReversePath::Tunnel),
        "{what}: T"
    );
    assert_eq!(p.get_u64("sidneg.terms.reserved"), Some(0), "{what}");
    assert_eq!(
        p.get_u64("sidneg.terms.lla_len"),
        Some(t.tn_lla.len() as u64),
        "{what}"
    );
    assert_eq!(
        p.get_u64("sidneg.terms.lifetime"),
        Some(u64::from(t.lifetime)),
        "{what}"
    );
    field_is(p, what, "sidneg.terms.tn", &t.tn_address.to_string());
    field_is(p, what, "sidneg.terms.agent", &addr_text(t.agent));
    field_is(p, what, "sidneg.terms.interim", &addr_text(t.interim));
    if t.tn_lla.len() == 6 {
        raw_is(p, what, "sidneg.terms.lla", &t.tn_lla);
        let text: Vec<String> = t.tn_lla.iter().map(|b| format!("{b:02x}")).collect();
        field_is(p, what, "sidneg.terms.lla", &text.join(":"));
    } else {
        assert!(!p.has("sidneg.terms.lla"), "{what}: no link-layer address");
    }
}

/// The header, the body of each type and the MAC, against `Message::parse` of the same
/// bytes and against the terms the exchange set.
fn check_message(p: &Packet, what: &str, bytes: &[u8], terms: Option<&SessionTerms>) {
    let parsed = Message::parse(bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
    let m = &parsed.message;
    assert_eq!(p.get_u64("sidneg.version"), Some(1), "{what}");
    assert_eq!(
        p.get_u64("sidneg.type"),
        Some(m.message_type() as u64),
        "{what}"
    );
    assert_eq!(p.get_u64("sidneg.mode"), Some(m.mode() as u64), "{what}");
    raw_is(p, what, "sidneg.nonce_i", m.nonce_i());
    raw_is(p, what, "sidneg.mac", &parsed.mac);
    assert_eq!(&bytes[bytes.len() - 32..], &parsed.mac);
    let reserved = p.all_u64("sidneg.reserved");
    assert!(
        reserved.iter().all(|r| *r == 0),
        "{what}: reserved {reserved:?}"
    );
    let hpke = |p: &Packet, field: &str, data: &[u8]| {
        raw_is(p, what, field, data);
        raw_is(p, what, "sidneg.hpke.enc", &data[..32]);
        raw_is(p, what, "sidneg.hpke.ct", &data[32..64]);
        raw_is(p, what, "sidneg.hpke.tag", &data[64..]);
    };
    match m {
        Message::Offer(o) => {
            assert_eq!(
                reserved.len(),
                2,
                "{what}: header and offer reserved octets"
            );
            raw_is(p, what, "sidneg.timestamp", &o.timestamp.to_be_bytes());
            assert!(
                p.get("sidneg.timestamp")
                    .is_some_and(|t| t.contains("2026")),
                "{what}: timestamp {:?}",
                p.get("sidneg.timestamp")
            );
            assert_eq!(
                p.get_u64("sidneg.role"),
                Some(u64::from(o.role.code())),
                "{what}"
            );
            field_is(p, what, "sidneg.init_id", &o.initiator_id);
            field_is(p, what, "sidneg.resp_id", &o.responder_id);
            let id_i = o.initiator_id.len() as u64;
            assert_eq!(p.get_u64("sidneg.init_id_len"), Some(id_i), "{what}");
            let id_r = o.responder_id.len() as u64;
            assert_eq!(p.get_u64("sidneg.resp_id_len"), Some(id_r), "{what}");
            match &o.offer_secret {
                Some(s) => hpke(p, "sidneg.offer_secret", s),
                None => assert!(!p.has("sidneg.offer_secret"), "{what}"),
            }
            let expected = terms.unwrap_or_else(|| panic!("{what}: terms expected"));
            assert_eq!(&o.terms, expected, "{what}: the terms sent");
            check_terms(p, what, expected);
        }
        Message::Accept(a) => {
            raw_is(p, what, "sidneg.nonce_r", &a.nonce_r);
            let expected = terms.unwrap_or_else(|| panic!("{what}: terms expected"));
            assert_eq!(&a.terms, expected, "{what}: the terms sent");
            check_terms(p, what, expected);
        }
        Message::Refuse(r) => {
            assert_eq!(
                p.get_u64("sidneg.refuse.code"),
                Some(u64::from(u8::from(r.code))),
                "{what}"
            );
            assert_eq!(p.get_u64("sidneg.refuse.reserved"), Some(0), "{what}");
            raw_is(p, what, "sidneg.timestamp", &r.timestamp.to_be_bytes());
        }
        Message::SessionKey(k) => {
            raw_is(p, what, "sidneg.nonce_r", &k.nonce_r);
            assert_eq!(
                p.get_u64("sidneg.key.alg"),
                Some(u64::from(k.algorithm)),
                "{what}"
            );
            let len = k.encrypted_key.len() as u64;
            assert_eq!(p.get_u64("sidneg.key.len"), Some(len), "{what}");
            if k.algorithm == 2 {
                hpke(p, "sidneg.key.data", &k.encrypted_key);
            } else {
                raw_is(p, what, "sidneg.key.data", &k.encrypted_key);
                assert!(!p.has("sidneg.hpke.enc"), "{what}");
            }
        }
        Message::Confirm(c) => raw_is(p, what, "sidneg.nonce_r", &c.nonce_r),
    }
    if !matches!(m, Message::Offer(_) | Message::Accept(_)) {
        assert!(!p.has("sidneg.terms.tn"), "{what}: no terms");
    }
}

fn label(i: usize, s: &Sent) -> String {
    let t = sid_ext::negotiation::wire::peek_type(&s.payload);
    format!("#{} {t:?} {} -> {}", i + 1, s.from, s.to)
}

#[test]
fn every_negotiation_message_is_named_field_by_field() {
    let run = run();
    let packets = decode("negotiation", &run.sent);
    for (i, ((p, s), terms)) in packets.iter().zip(&run.sent).zip(&run.terms).enumerate() {
        let what = label(i, s);
        assert!(!p.is_malformed(), "{what}: malformed");
        let bad = p.warnings_and_errors();
        assert!(bad.is_empty(), "{what}: expert items {bad:?}");
        assert_eq!(
            p.protocols().last().copied(),
            Some("sidneg"),
            "{what}: decoded as the negotiation"
        );
        raw_is(p, &what, "sidneg", &s.payload);
        check_message(p, &what, &s.payload, terms.as_ref());
    }
    // The modes, roles and algorithms each appear.
    let all = |f: &str| -> Vec<u64> { packets.iter().flat_map(|p| p.all_u64(f)).collect() };
    assert!(all("sidneg.mode").contains(&1) && all("sidneg.mode").contains(&2));
    assert_eq!(all("sidneg.role"), vec![1, 2, 1]);
    assert_eq!(all("sidneg.key.alg"), vec![1, 2]);
    assert_eq!(all("sidneg.refuse.code"), vec![1]);
}

#[test]
fn the_heuristic_finds_the_negotiation_on_another_port() {
    let run = run();
    let moved: Vec<Sent> = run
        .sent
        .iter()
        .map(|s| Sent {
            from: SocketAddrV4::new(*s.from.ip(), 5343),
            to: SocketAddrV4::new(*s.to.ip(), 5343),
            payload: s.payload.clone(),
        })
        .chain(std::iter::once(Sent {
            from: SocketAddrV4::new(DESK, 5343),
            to: SocketAddrV4::new(LAPTOP, 5343),
            payload: (0..60u8).collect(),
        }))
        .collect();
    let packets = decode("negotiation_port_5343", &moved);
    let (last, messages) = packets.split_last().unwrap_or_else(|| panic!("no packets"));
    for (i, p) in messages.iter().enumerate() {
        assert_eq!(
            p.protocols().last().copied(),
            Some("sidneg"),
            "{}",
            label(i, &moved[i])
        );
        assert!(
            p.errors().is_empty(),
            "{}: {:?}",
            label(i, &moved[i]),
            p.experts()
        );
    }
    assert!(
        !last.has("sidneg.type"),
        "60 counting octets are not a negotiation"
    );
}

/// Truncated and garbled copies of every message: tshark must decode each without a Lua
/// error, and the dissector must report a malformed message (expert error, which also
/// sets Wireshark's malformed-packet marker) exactly when sid-ext's parser refuses the
/// bytes.
#[test]
fn truncated_and_garbled_messages_never_break_the_dissector() {
    let run = run();
    let mut rng = StdRng::seed_from_u64(0x006e_6567);
    let mut broken: Vec<Sent> = Vec::new();
    for s in &run.sent {
        let with = |payload: Vec<u8>| Sent {
            payload,
            ..s.clone()
        };
        // Every truncation (an empty UDP payload reaches no dissector).
        for n in 1..s.payload.len() {
            broken.push(with(s.payload[..n].to_vec()));
        }
        // One octet too many before the MAC, and at the end.
        let mut longer = s.payload.clone();
        longer.insert(longer.len() - 32, 0);
        broken.push(with(longer));
        let mut longer = s.payload.clone();
        longer.push(0xff);
        broken.push(with(longer));
        // Each octet of the first 48 (header, lengths, terms) set to 0xff, then to 0.
        for i in 0..s.payload.len().min(48) {
            for v in [0xff, 0x00] {
                let mut g = s.payload.clone();
                g[i] = v;
                broken.push(with(g));
            }
        }
        // Random octets changed anywhere.
        for _ in 0..24 {
            let mut g = s.payload.clone();
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..g.len());
                g[i] = rng.gen();
            }
            broken.push(with(g));
        }
    }
    let packets = decode("negotiation_broken", &broken);
    let mut disagreements = Vec::new();
    let (mut refused, mut accepted) = (0, 0);
    for (i, (p, s)) in packets.iter().zip(&broken).enumerate() {
        let what = format!("{} ({} octets)", label(i, s), s.payload.len());
        assert!(p.lua_errors().is_empty(), "{what}: {:?}", p.lua_errors());
        assert_eq!(
            p.raw("sidneg"),
            Some(s.payload.clone()),
            "{what}: not decoded as the negotiation"
        );
        let flagged = p
            .experts()
            .iter()
            .any(|e| e.severity == Severity::Error && e.message.contains("SID negotiation"));
        // Wireshark marks a packet malformed for every expert item of the malformed
        // group, ours included; any other cause (a dissector that threw) is a failure.
        assert_eq!(
            p.is_malformed(),
            flagged,
            "{what}: malformed marker {:?}",
            p.experts()
        );
        let parses = Message::parse(&s.payload).is_ok();
        if parses {
            accepted += 1;
        } else {
            refused += 1;
        }
        if flagged == parses {
            disagreements.push(format!(
                "{what}: parser {}, dissector {}: {:02x?} {:?}",
                if parses { "accepts" } else { "refuses" },
                if flagged { "flags it" } else { "does not" },
                s.payload,
                p.experts()
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} disagree:\n{}",
        disagreements.len(),
        broken.len(),
        disagreements.join("\n")
    );
    assert!(
        refused > 500 && accepted > 50,
        "refused {refused}, accepted {accepted}"
    );
}
