//! Arbitrary and mutated datagrams never panic a negotiator and never move it forward.

mod negotiation_net;

use std::net::SocketAddrV4;
use std::time::Duration;

use negotiation_net::*;
use proptest::prelude::*;
use sid_ext::negotiation::wire::Message;
use sid_ext::negotiation::{NegotiationEvent, Role};

/// A pair stopped halfway: the desktop has sent its Session Key (dropped on the way), the
/// laptop has accepted and waits for it. Returns the net and every datagram sent so far.
fn halfway(public_key: bool) -> Net {
    let setup = if public_key {
        Setup::PublicKey
    } else {
        Setup::PreShared
    };
    let mut net = Net::pair(setup, 42);
    net.filter = Box::new(|d| {
        if msg_type(&d.payload) == 4 {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    net.offer("desktop", "laptop", Role::TransferringNode, tn_terms());
    net.drive(Duration::from_millis(500));
    for n in &mut net.nodes {
        n.events.clear();
    }
    net
}

/// Feeds one datagram straight to the endpoint at `to`; returns the events it caused.
fn feed(
    net: &mut Net,
    from: SocketAddrV4,
    to: SocketAddrV4,
    bytes: &[u8],
) -> Vec<NegotiationEvent> {
    let now = net.now;
    let Some(node) = net.nodes.iter_mut().find(|n| n.addr == to) else {
        return Vec::new();
    };
    node.neg.handle_datagram(node.now(now), from, bytes);
    let mut events = Vec::new();
    while let Some(e) = node.neg.poll_event() {
        events.push(e);
    }
    while node.neg.poll_transmit().is_some() {}
    events
}

fn advances(events: &[NegotiationEvent]) -> bool {
    events.iter().any(|e| {
        matches!(
            e,
            NegotiationEvent::Negotiated { .. } | NegotiationEvent::Offered { .. }
        )
    })
}

/// Bytes that start like a negotiation message, to get past the first checks.
fn plausible() -> impl Strategy<Value = Vec<u8>> {
    (
        1u8..=5,
        1u8..=2,
        proptest::collection::vec(any::<u8>(), 0..260),
    )
        .prop_map(|(t, m, rest)| {
            let mut v = vec![1, t, m, 0];
            v.extend(rest);
            v
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Message::parse(&bytes);
    }

    #[test]
    fn parse_of_plausible_bytes_never_panics_and_round_trips(bytes in plausible()) {
        if let Ok(parsed) = Message::parse(&bytes) {
            // Whatever parses emits back to the same covered bytes, save reserved octets.
            let again = parsed.message.emit_unauthenticated();
            prop_assert!(again.is_ok());
            let again = again.unwrap_or_default();
            prop_assert_eq!(again.len(), parsed.covered.len());
        }
    }

    #[test]
    fn arbitrary_datagrams_never_advance_a_negotiation(
        public_key in any::<bool>(),
        datagrams in proptest::collection::vec(
            prop_oneof![proptest::collection::vec(any::<u8>(), 0..200), plausible()], 1..8),
    ) {
        let mut net = halfway(public_key);
        for d in &datagrams {
            for (from, to) in [(tn_addr(), tg_addr()), (tg_addr(), tn_addr())] {
                let events = feed(&mut net, from, to, d);
                prop_assert!(!advances(&events), "{:?}", events);
            }
        }
        // The genuine exchange still completes afterwards.
        net.filter = Box::new(|_| Fate::Deliver);
        net.drive(Duration::from_secs(120));
        prop_assert_eq!(net.node("desktop").negotiated().len(), 1);
        prop_assert_eq!(net.node("laptop").negotiated().len(), 1);
    }

    #[test]
    fn mutated_genuine_messages_are_refused(
        public_key in any::<bool>(),
        which in 0usize..3,
        edit in prop_oneof![
            (any::<prop::sample::Index>(), 1u8..=255).prop_map(|(i, x)| (0u8, i, x)),
            any::<prop::sample::Index>().prop_map(|i| (1u8, i, 0)),
            (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, x)| (2u8, i, x)),
        ],
    ) {
        let mut net = halfway(public_key);
        // Offer (to the laptop), Accept (to the desktop), Session Key (to the laptop).
        let Some(original) = net.log.get(which).cloned() else {
            return Err(TestCaseError::fail("missing datagram"));
        };
        let mut bytes = original.payload.clone();
        match edit {
            (0, i, x) => { let i = i.index(bytes.len()); bytes[i] ^= x; }
            (1, i, _) => bytes.truncate(i.index(bytes.len())),
            (_, i, x) => bytes.insert(i.index(bytes.len() + 1), x),
        }
        prop_assume!(bytes != original.payload);
        let events = feed(&mut net, original.from, original.to, &bytes);
        prop_assert!(!advances(&events), "{:?}", events);
    }
}
