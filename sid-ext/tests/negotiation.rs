//! Two devices negotiate over a simulated network: both directions of who starts, both
//! kinds of association, loss, duplication, tampering, replay and wrong keys.

mod negotiation_net;

use std::net::Ipv4Addr;
use std::time::Duration;

use negotiation_net::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use sid_ext::crypto::PrivateKey;
use sid_ext::negotiation::{
    Association, FailReason, NegotiationEvent, NegotiationState, RefuseCode, RejectReason,
    ReversePath, Role, SessionTerms, SharedSecret,
};

const SETTLE: Duration = Duration::from_secs(120);

fn setups() -> [(Setup, &'static str); 2] {
    [(Setup::PreShared, "psk"), (Setup::PublicKey, "pk")]
}

/// Both ends reported Negotiated once, with one key and one set of terms; returns the
/// Transferring Node's event.
fn assert_agreed(net: &Net, tn_name: &str, tg_name: &str) -> NegotiationEvent {
    let tn = net
        .nodes
        .iter()
        .find(|n| n.name == tn_name)
        .map(|n| n.negotiated());
    let tg = net
        .nodes
        .iter()
        .find(|n| n.name == tg_name)
        .map(|n| n.negotiated());
    let (Some([tn]), Some([tg])) = (tn.as_deref(), tg.as_deref()) else {
        panic!("expected one Negotiated each: {tn:?} / {tg:?}");
    };
    let (
        NegotiationEvent::Negotiated {
            role: r1,
            session_key: k1,
            agent: a1,
            tn_address: t1,
            tn_lla: l1,
            interim: i1,
            further_transfer: f1,
            reverse_path: p1,
            lifetime: lt1,
            peer: peer1,
            ..
        },
        NegotiationEvent::Negotiated {
            role: r2,
            session_key: k2,
            agent: a2,
            tn_address: t2,
            tn_lla: l2,
            interim: i2,
            further_transfer: f2,
            reverse_path: p2,
            lifetime: lt2,
            peer: peer2,
            ..
        },
    ) = (tn, tg)
    else {
        unreachable!()
    };
    assert_eq!(*r1, Role::TransferringNode);
    assert_eq!(*r2, Role::TargetNode);
    assert_eq!(k1, k2, "session keys differ");
    assert_eq!((a1, t1, l1, i1, f1, p1, lt1), (a2, t2, l2, i2, f2, p2, lt2));
    assert_eq!(peer1, tg_name);
    assert_eq!(peer2, tn_name);
    (*tn).clone()
}

#[test]
fn transferring_node_starts_both_modes() {
    for (setup, label) in setups() {
        let mut net = Net::pair(setup, 1);
        net.offer("desktop", "laptop", Role::TransferringNode, tn_terms());
        net.drive(SETTLE);
        let NegotiationEvent::Negotiated {
            agent,
            tn_address,
            tn_lla,
            lifetime,
            reverse_path,
            further_transfer,
            peer_address,
            ..
        } = assert_agreed(&net, "desktop", "laptop")
        else {
            unreachable!()
        };
        let t = tn_terms();
        assert_eq!(
            (agent, tn_address, tn_lla, lifetime),
            (t.agent, t.tn_address, t.tn_lla, t.lifetime),
            "{label}"
        );
        assert_eq!(
            (reverse_path, further_transfer),
            (ReversePath::Tunnel, true)
        );
        assert_eq!(peer_address, tg_addr());
        // Four datagrams, no retransmission.
        let types: Vec<u8> = net.log.iter().map(|d| msg_type(&d.payload)).collect();
        assert_eq!(types, [1, 2, 4, 5], "{label}");
        assert!(net.nodes.iter().all(|n| n.failed().is_empty()));
    }
}

#[test]
fn target_node_starts_and_the_transferring_node_fills_in_the_session() {
    for (setup, label) in setups() {
        let mut net = Net::pair(setup, 2);
        let mut answer = tn_terms();
        answer.lifetime = 120;
        answer.further_transfer = false;
        answer.interim = Some(Ipv4Addr::new(198, 18, 1, 77));
        net.node("desktop").answer = Answer::With(answer.clone());
        let request = SessionTerms::target_request(*tn_addr().ip(), 600, ReversePath::Tunnel, true);
        net.offer("laptop", "desktop", Role::TargetNode, request);
        net.drive(SETTLE);
        let NegotiationEvent::Negotiated {
            lifetime,
            interim,
            further_transfer,
            ..
        } = assert_agreed(&net, "desktop", "laptop")
        else {
            unreachable!()
        };
        assert_eq!(
            (lifetime, interim, further_transfer),
            (120, answer.interim, false),
            "{label}"
        );
        // The Target offered, so it picked the key and sent the Session Key.
        assert_eq!(net.log[2].from, tg_addr());
    }
}

#[test]
fn each_message_lost_once_is_recovered_by_retransmission() {
    for (setup, label) in setups() {
        for lost_type in [1u8, 2, 4, 5] {
            let mut net = Net::pair(setup, 3);
            let mut dropped = false;
            net.filter = Box::new(move |d| {
                if !dropped && msg_type(&d.payload) == lost_type {
                    dropped = true;
                    Fate::Drop
                } else {
                    Fate::Deliver
                }
            });
            net.offer("desktop", "laptop", Role::TransferringNode, tn_terms());
            net.drive(SETTLE);
            assert_agreed(&net, "desktop", "laptop");
            assert!(
                net.node("desktop").neg.stats().retransmissions >= 1,
                "{label} type {lost_type}"
            );
        }
    }
}

#[test]
fn every_message_duplicated_still_negotiates_once() {
    for (setup, _) in setups() {
        let mut net = Net::pair(setup, 4);
        net.filter = Box::new(|_| Fate::Duplicate);
        net.offer("desktop", "laptop", Role::TransferringNode, tn_terms());
        net.drive(SETTLE);
        assert_agreed(&net, "desktop", "laptop");
        // The Target answered the repeated Offer and Session Key from its cache.
        assert!(net.node("laptop").neg.stats().repeated_answers >= 2);
    }
}

#[test]
fn random_loss_never_yields_different_keys() {
    for seed in 0..24u64 {
        for (setup, label) in setups() {
            let mut net = Net::pair(setup, 100 + seed);
            let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            net.filter = Box::new(move |_| {
                // xorshift: 35 % loss, 10 % duplication.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                match state % 100 {
                    0..=34 => Fate::Drop,
                    35..=44 => Fate::Duplicate,
                    _ => Fate::Deliver,
                }
            });
            let starter = if seed % 2 == 0 { "desktop" } else { "laptop" };
            if starter == "desktop" {
                net.offer("desktop", "laptop", Role::TransferringNode, tn_terms());
            } else {
                net.node("desktop").answer = Answer::With(tn_terms());
                let request =
                    SessionTerms::target_request(*tn_addr().ip(), 300, ReversePath::Tunnel, true);
                net.offer("laptop", "desktop", Role::TargetNode, request);
            }
            net.drive(SETTLE);
            let tn = net.node("desktop").negotiated().len();
            let tg = net.node("laptop").negotiated().len();
            assert!(tn <= 1 && tg <= 1, "{label} seed {seed}");
            if tn == 1 && tg == 1 {
                assert_agreed(&net, "desktop", "laptop");
            }
            // The initiator never ends with a key the responder lacks: it finishes last.
            let initiator_done = if starter == "desktop" { tn } else { tg };
            let responder_done = if starter == "desktop" { tg } else { tn };
            assert!(initiator_done <= responder_done, "{label} seed {seed}");
            // Nothing is left running.
            assert!(
                net.nodes.iter().all(|n| n.neg.poll_timeout().is_none()),
                "{label} seed {seed}"
            );
        }
    }
}

#[test]
fn wrong_pre_shared_secret_fails_without_leaking_either_secret() {
    let mut net = Net::pair(Setup::PreShared, 5);
    let wrong = b"a different secret, same length!".to_vec();
    let w = wrong.clone();
    reconfigure(&mut net, "laptop", 9, move |c| {
        c.peers[0].association = Association::PreShared(SharedSecret::new(w));
    });
    net.offer("desktop", "laptop", Role::TransferringNode, tn_terms());
    net.drive(SETTLE);
    let desktop = net.node("desktop");
    assert!(desktop.negotiated().is_empty());
    assert!(matches!(
        desktop.failed().as_slice(),
        [NegotiationEvent::Failed {
            reason: FailReason::NoResponse { attempts: 6 },
            ..
        }]
    ));
    let laptop = net.node("laptop");
    assert!(laptop.negotiated().is_empty());
    assert!(laptop.events.iter().all(|e| matches!(
        e,
        NegotiationEvent::Rejected {
            reason: RejectReason::BadAuthenticator,
            ..
        }
    )));
    assert_eq!(laptop.events.len(), 6, "one rejection per Offer sent");
    // Neither secret appears in any datagram or in any event's or config's text.
    let shown = format!(
        "{:?} {:?}",
        net.nodes.iter().map(|n| &n.events).collect::<Vec<_>>(),
        net.nodes.iter().map(|n| n.neg.config()).collect::<Vec<_>>()
    );
    for secret in [PSK, &wrong[..]] {
        for d in &net.log {
            assert!(!d
                .payload
                .windows(8)
                .any(|w| secret.windows(8).any(|s| s == w)));
        }
        assert!(!shown.contains(std::str::from_utf8(&secret[..12]).unwrap_or("?")));
    }
    assert!(shown.contains("redacted"));
}

#[test]
fn wrong_public_key_fails_either_way_round() {
    // The Target knows a wrong key for the desktop; then the desktop a wrong one for the Target.
    for who in ["laptop", "desktop"] {
        let mut net = Net::pair(Setup::PublicKey, 6);
        let stranger = PrivateKey::generate(&mut StdRng::seed_from_u64(77));
        reconfigure(&mut net, who, 10, |c| {
            c.peers[0].association = Association::PublicKey(stranger.public_key());
        });
        net.offer("desktop", "laptop", Role::TransferringNode, tn_terms());
        net.drive(SETTLE);
        assert!(net.nodes.iter().all(|n| n.negotiated().is_empty()), "{who}");
        assert!(matches!(
            net.node("desktop").failed().as_slice(),
            [NegotiationEvent::Failed {
                reason: FailReason::NoResponse { .. },
                ..
            }]
        ));
        assert!(net.node("laptop").events.iter().all(|e| matches!(
            e,
            NegotiationEvent::Rejected {
                reason: RejectReason::BadAuthenticator,
                ..
            }
        )));
    }
}

fn offers_seen(node: &Node) -> usize {
    node.events
        .iter()
        .filter(|e| matches!(e, NegotiationEvent::Offered { .. }))
        .count()
}

#[test]
fn replayed_offer_is_refused_within_and_after_the_window() {
    for (setup, label) in setups() {
        let mut net = Net::pair(setup, 7);
        // A window longer than the Target's memory of a finished negotiation (31 s), so
        // that the nonce cache is what stops the second replay.
        reconfigure(&mut net, "laptop", 70, |c| {
            c.timestamp_window = Duration::from_secs(120)
        });
        net.offer("desktop", "laptop", Role::TransferringNode, tn_terms());
        net.drive(Duration::from_secs(5));
        assert_agreed(&net, "desktop", "laptop");
        let offer = net.log[0].payload.clone();
        let sent = net.node("laptop").neg.stats().sent;

        // While the Target still holds the finished negotiation: nothing happens.
        net.inject(tn_addr(), tg_addr(), offer.clone());
        net.drive(Duration::from_secs(1));
        assert_eq!(net.node("laptop").neg.stats().sent, sent, "{label}");
        assert_eq!(offers_seen(net.node("laptop")), 1);

        // After it forgot it (about +31 s), within the window: the nonce cache refuses it.
        net.drive(SETTLE);
        assert_eq!(net.node("laptop").neg.poll_timeout(), None);
        assert!(net.now < START + Duration::from_secs(60));
        net.inject(tn_addr(), tg_addr(), offer.clone());
        net.drive(SETTLE);
        let laptop = net.node("laptop");
        assert!(
            matches!(
                laptop.events.last(),
                Some(NegotiationEvent::Rejected {
                    reason: RejectReason::Replay,
                    ..
                })
            ),
            "{label}"
        );
        assert_eq!(laptop.neg.stats().sent, sent, "nothing answered");
        assert_eq!(laptop.neg.stats().discarded_replay, 1);
        assert_eq!(offers_seen(laptop), 1);

        // After the window: refused as stale, with an authenticated Refuse that the
        // desktop, which has no such negotiation any more, ignores.
        net.now = START + Duration::from_secs(300);
        net.inject(tn_addr(), tg_addr(), offer);
        net.drive(SETTLE);
        let laptop = net.node("laptop");
        assert!(matches!(
            laptop.events.last(),
            Some(NegotiationEvent::Rejected {
                reason: RejectReason::Stale,
                ..
            })
        ));
        assert_eq!(laptop.neg.stats().sent, sent + 1);
        assert_eq!(offers_seen(laptop), 1);
        assert_eq!(net.node("desktop").negotiated().len(), 1);
        assert!(net.node("desktop").failed().is_empty());
    }
}

/// Where to flip a bit in a message of `msg_type`: its last MAC byte, or a field the
/// receiver acts on (lifetime, encrypted key, responder nonce).
fn tamper_points(msg_type: u8) -> [usize; 2] {
    let body = match msg_type {
        1 => 35, // Offer: lifetime
        2 => 39, // Accept: lifetime
        4 => 45, // Session Key: inside the encrypted key
        _ => 25, // Confirm: responder nonce
    };
    [usize::MAX, body]
}

#[test]
fn a_tampered_copy_of_each_message_is_refused_and_the_original_still_works() {
    for (setup, label) in setups() {
        for target_type in [1u8, 2, 4, 5] {
            for point in tamper_points(target_type) {
                let mut net = Net::pair(setup, 8);
                let mut done = false;
                net.filter = Box::new(move |d| {
                    if !done && msg_type(&d.payload) == target_type {
                        done = true;
                        let mut bad = d.payload.clone();
                        let i = point.min(bad.len() - 1);
                        bad[i] ^= 0x04;
                        Fate::Replace(bad)
                    } else {
                        Fate::Deliver
                    }
                });
                net.offer("desktop", "laptop", Role::TransferringNode, tn_terms());
                net.drive(SETTLE);
                assert_agreed(&net, "desktop", "laptop");
                let refused: u64 = net
                    .nodes
                    .iter()
                    .map(|n| n.neg.stats().discarded_unauthenticated)
                    .sum();
                assert_eq!(refused, 1, "{label} type {target_type} at {point}");
            }
        }
    }
}

#[test]
fn a_session_key_always_tampered_fails_both_sides() {
    for (setup, label) in setups() {
        let mut net = Net::pair(setup, 9);
        net.filter = Box::new(|d| {
            if msg_type(&d.payload) == 4 {
                let mut bad = d.payload.clone();
                bad[45] ^= 0x80; // inside the encrypted key
                Fate::Replace(bad)
            } else {
                Fate::Deliver
            }
        });
        net.offer("desktop", "laptop", Role::TransferringNode, tn_terms());
        net.drive(SETTLE);
        assert!(
            net.nodes.iter().all(|n| n.negotiated().is_empty()),
            "{label}"
        );
        assert!(
            matches!(
                net.node("laptop").failed().as_slice(),
                [NegotiationEvent::Failed {
                    reason: FailReason::AuthenticationFailed { .. },
                    ..
                }]
            ),
            "{label}"
        );
        assert!(
            matches!(
                net.node("desktop").failed().as_slice(),
                [NegotiationEvent::Failed {
                    reason: FailReason::NoResponse { .. },
                    ..
                }]
            ),
            "{label}"
        );
    }
}

#[test]
fn refusal_reaches_the_initiator() {
    for (setup, _) in setups() {
        let mut net = Net::pair(setup, 10);
        net.node("laptop").answer = Answer::Refuse(RefuseCode::Declined);
        net.offer("desktop", "laptop", Role::TransferringNode, tn_terms());
        net.drive(SETTLE);
        assert!(matches!(
            net.node("desktop").failed().as_slice(),
            [NegotiationEvent::Failed {
                reason: FailReason::Refused(RefuseCode::Declined),
                ..
            }]
        ));
        assert!(matches!(
            net.node("laptop").failed().as_slice(),
            [NegotiationEvent::Failed {
                reason: FailReason::Declined(RefuseCode::Declined),
                ..
            }]
        ));
    }
}

#[test]
fn undecided_offer_is_refused_with_no_answer() {
    let mut net = Net::pair(Setup::PreShared, 11);
    net.node("laptop").answer = Answer::Ignore;
    net.offer("desktop", "laptop", Role::TransferringNode, tn_terms());
    net.drive(SETTLE);
    assert!(matches!(
        net.node("desktop").failed().as_slice(),
        [NegotiationEvent::Failed {
            reason: FailReason::Refused(RefuseCode::NoAnswer),
            ..
        }]
    ));
}

#[test]
fn simultaneous_offers_settle_on_one_negotiation() {
    for (setup, label) in setups() {
        let mut net = Net::pair(setup, 12);
        net.node("desktop").answer = Answer::With(tn_terms());
        net.offer("desktop", "laptop", Role::TransferringNode, tn_terms());
        let request = SessionTerms::target_request(*tn_addr().ip(), 300, ReversePath::Tunnel, true);
        net.offer("laptop", "desktop", Role::TargetNode, request);
        net.drive(SETTLE);
        assert_agreed(&net, "desktop", "laptop");
        let superseded = net
            .nodes
            .iter()
            .flat_map(|n| n.failed())
            .filter(|e| {
                matches!(
                    e,
                    NegotiationEvent::Failed {
                        reason: FailReason::Superseded,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(superseded, 1, "{label}");
    }
}

#[test]
fn initiator_clock_far_off_is_told_the_skew() {
    let mut net = Net::pair(Setup::PreShared, 13);
    net.node("desktop").clock_offset = -90_000_000;
    net.offer("desktop", "laptop", Role::TransferringNode, tn_terms());
    net.drive(SETTLE);
    let failed = net.node("desktop").failed();
    let [NegotiationEvent::Failed {
        reason: FailReason::ClockSkew { offset_micros },
        ..
    }] = failed.as_slice()
    else {
        panic!("{failed:?}");
    };
    // The Refuse left the Target 20 ms before it reached the desktop: 90 s less 20 ms,
    // to NTP precision.
    assert!((offset_micros - 89_980_000).abs() < 10, "{offset_micros}");
}

#[test]
fn an_answer_changing_what_only_the_offerer_sets_is_refused_locally() {
    let mut net = Net::pair(Setup::PreShared, 14);
    net.node("laptop").answer = Answer::Ignore;
    let id = net.offer("desktop", "laptop", Role::TransferringNode, tn_terms());
    net.drive(Duration::from_millis(100));
    let offered = net.node("laptop").events.iter().find_map(|e| match e {
        NegotiationEvent::Offered { id, .. } => Some(*id),
        _ => None,
    });
    let Some(their_id) = offered else {
        panic!("no offer")
    };
    let mut changed = tn_terms();
    changed.agent = Some(Ipv4Addr::new(198, 18, 0, 99));
    let now = net.now;
    let r = net.node("laptop").neg.accept(now, their_id, changed);
    assert!(r.is_err());
    assert_eq!(
        net.node("laptop").neg.state(their_id),
        Some(NegotiationState::AwaitingDecision)
    );
    assert_eq!(
        net.node("desktop").neg.state(id),
        Some(NegotiationState::OfferSent)
    );
    // A second offer to the same peer while one is under way is refused locally.
    let second = net
        .node("desktop")
        .neg
        .offer(now, "laptop", Role::TransferringNode, tn_terms());
    assert!(second.is_err());
}

#[test]
fn no_datagram_carries_the_session_key() {
    for (setup, _) in setups() {
        let mut net = Net::pair(setup, 15);
        net.offer("desktop", "laptop", Role::TransferringNode, tn_terms());
        net.drive(SETTLE);
        let NegotiationEvent::Negotiated { session_key, .. } =
            assert_agreed(&net, "desktop", "laptop")
        else {
            unreachable!()
        };
        let key = session_key.as_bytes();
        for d in &net.log {
            assert!(!d.payload.windows(8).any(|w| key.windows(8).any(|k| k == w)));
        }
        assert_eq!(format!("{session_key:?}"), "SessionKey(<redacted>)");
    }
}
