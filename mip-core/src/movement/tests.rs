//! Unit tests of movement detection (RFC 5944 2.4), on a virtual clock.

use super::*;
use crate::wire::MobilityAgentExt;

const HA: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const FA1: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const FA1B: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
const FA2: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 1);
const FA3: Ipv4Addr = Ipv4Addr::new(198, 18, 3, 1);
const MAC1: [u8; 6] = [2, 0, 0, 0, 1, 1];

fn t0() -> Time {
    Time::from_secs(1_700_000_000)
}

fn at(ms: u64) -> Time {
    t0() + Duration::from_millis(ms)
}

fn prefix(s: &str) -> Ipv4Prefix {
    s.parse().expect("valid prefix")
}

fn config() -> MovementConfig {
    let mut cfg = MovementConfig::new(HA, prefix("198.18.0.0/24"));
    cfg.colocated_prefixes = vec![prefix("198.18.2.0/24")];
    cfg
}

fn detector() -> MovementDetector {
    MovementDetector::new(config(), 7)
}

/// An advertisement from `source`, advertising itself as router and care-of address.
fn adv(
    source: Ipv4Addr,
    flags: u16,
    seq: u16,
    lifetime: u16,
    prefix_len: Option<u8>,
) -> AgentAdvertisementRepr {
    AgentAdvertisementRepr {
        code: 0,
        lifetime,
        router_addresses: vec![(source, 0)],
        mobility: MobilityAgentExt {
            sequence: seq,
            registration_lifetime: 600,
            flags: AgentFlags(flags),
            care_of_addresses: if flags & AgentFlags::F != 0 {
                vec![source]
            } else {
                vec![]
            },
        },
        prefix_lengths: prefix_len.map(|l| vec![l]),
    }
}

fn fa(source: Ipv4Addr, seq: u16) -> AgentAdvertisementRepr {
    adv(source, AgentFlags::F | AgentFlags::T, seq, 9, None)
}

fn home(seq: u16) -> AgentAdvertisementRepr {
    adv(HA, AgentFlags::H, seq, 9, None)
}

fn events(d: &mut MovementDetector) -> Vec<MovementEvent> {
    std::iter::from_fn(|| d.poll_event()).collect()
}

/// Runs timeouts up to and including `until`, collecting events.
fn run_until(d: &mut MovementDetector, until: Time) -> Vec<(Time, MovementEvent)> {
    let mut out = Vec::new();
    while let Some(t) = d.poll_timeout().filter(|t| *t <= until) {
        d.handle_timeout(t);
        out.extend(events(d).into_iter().map(|e| (t, e)));
    }
    out
}

#[test]
fn prefix_parsing_and_matching() {
    let p = prefix("198.18.2.77/24");
    assert_eq!(p.network(), Ipv4Addr::new(198, 18, 2, 0));
    assert_eq!(p.to_string(), "198.18.2.0/24");
    assert!(p.contains(Ipv4Addr::new(198, 18, 2, 254)));
    assert!(!p.contains(Ipv4Addr::new(198, 18, 3, 1)));
    assert!(prefix("0.0.0.0/0").contains(FA1));
    assert!(prefix("198.18.1.1/32").contains(FA1));
    assert_eq!(
        "1.2.3.4/33".parse::<Ipv4Prefix>(),
        Err(PrefixError::Length(33))
    );
    assert_eq!("1.2.3.4".parse::<Ipv4Prefix>(), Err(PrefixError::Syntax));
    assert_eq!("x/8".parse::<Ipv4Prefix>(), Err(PrefixError::Syntax));
}

#[test]
fn home_agent_advertisement_means_home() {
    let mut d = detector();
    d.start(t0());
    d.handle_advertisement(at(10), HA, None, &home(0));
    assert_eq!(events(&mut d), vec![MovementEvent::MovedHome { agent: HA }]);
    assert_eq!(d.location(), Location::Home { agent: HA });
    assert!(!d.searching(), "an agent was heard: no solicitations");
    // Repeated advertisements change nothing.
    d.handle_advertisement(at(1000), HA, None, &home(1));
    assert!(events(&mut d).is_empty());
}

#[test]
fn another_agent_on_the_home_prefix_is_home_too() {
    let mut d = detector();
    let other = Ipv4Addr::new(198, 18, 0, 2);
    d.handle_advertisement(t0(), other, None, &adv(other, AgentFlags::H, 0, 9, None));
    assert_eq!(
        events(&mut d),
        vec![MovementEvent::MovedHome { agent: other }]
    );
}

#[test]
fn foreign_agent_gives_its_care_of_address() {
    let mut d = detector();
    d.handle_advertisement(t0(), FA1, Some(MAC1), &fa(FA1, 5));
    assert_eq!(
        events(&mut d),
        vec![MovementEvent::MovedToForeignAgent {
            agent: FA1,
            care_of: FA1,
            agent_mac: Some(MAC1),
            flags: AgentFlags(AgentFlags::F | AgentFlags::T),
        }]
    );
    assert_eq!(
        d.location(),
        Location::ForeignAgent {
            agent: FA1,
            care_of: FA1
        }
    );
    assert_eq!(d.current().map(|a| a.mac), Some(Some(MAC1)));
}

#[test]
fn first_advertised_care_of_address_is_used() {
    let mut d = detector();
    let mut a = fa(FA1, 0);
    let coa = Ipv4Addr::new(198, 18, 1, 50);
    a.mobility.care_of_addresses = vec![coa, FA1];
    d.handle_advertisement(t0(), FA1, None, &a);
    assert_eq!(
        d.location(),
        Location::ForeignAgent {
            agent: FA1,
            care_of: coa
        }
    );
}

#[test]
fn configured_colocated_link_prefers_colocated_unless_r() {
    let mut d = detector();
    d.handle_advertisement(t0(), FA2, None, &fa(FA2, 0));
    let p = prefix("198.18.2.0/24");
    assert_eq!(
        events(&mut d),
        vec![MovementEvent::NeedsColocated {
            prefix: p,
            agent: FA2
        }]
    );
    assert_eq!(
        d.location(),
        Location::Colocated {
            prefix: p,
            agent: FA2
        }
    );

    // 2.4.1: R set means register through the foreign agent.
    let mut d = detector();
    d.handle_advertisement(
        t0(),
        FA2,
        None,
        &adv(FA2, AgentFlags::F | AgentFlags::R, 0, 9, None),
    );
    assert!(matches!(
        events(&mut d).as_slice(),
        [MovementEvent::MovedToForeignAgent { agent: FA2, .. }]
    ));
}

#[test]
fn colocated_link_needs_no_foreign_agent() {
    // A plain router advertisement with the mobility extension but no F, on a configured link.
    let mut d = detector();
    let rtr = Ipv4Addr::new(198, 18, 2, 254);
    d.handle_advertisement(t0(), rtr, None, &adv(rtr, 0, 0, 9, Some(24)));
    assert_eq!(
        events(&mut d),
        vec![MovementEvent::NeedsColocated {
            prefix: prefix("198.18.2.0/24"),
            agent: rtr
        }]
    );
}

#[test]
fn unusable_and_busy_agents_are_ignored() {
    let mut d = detector();
    d.start(t0());
    // No F and no co-located address for 198.18.3.0/24.
    d.handle_advertisement(at(1), FA3, None, &adv(FA3, 0, 0, 9, None));
    // Busy foreign agent.
    d.handle_advertisement(
        at(2),
        FA1,
        None,
        &adv(FA1, AgentFlags::F | AgentFlags::B, 0, 9, None),
    );
    assert!(events(&mut d).is_empty());
    assert_eq!(d.location(), Location::Unknown);
    assert!(d.searching());
    assert_eq!(d.stats().unusable_advertisements, 1);
}

#[test]
fn lifetime_expiry_loses_the_agent_and_solicits() {
    let mut d = detector();
    d.handle_advertisement(t0(), FA1, None, &fa(FA1, 0));
    let _ = events(&mut d);
    d.handle_advertisement(at(3000), FA1, None, &fa(FA1, 1));
    // Lifetime 9 s from the last advertisement at 3 s: still there at 11.9 s.
    assert!(run_until(&mut d, at(11_999)).is_empty());
    let evs = run_until(&mut d, at(12_000));
    assert_eq!(
        evs.first().map(|(_, e)| e.clone()),
        Some(MovementEvent::Lost { agent: Some(FA1) })
    );
    assert_eq!(d.location(), Location::Lost);
    // The first solicitation comes within MAX_SOLICITATION_DELAY.
    let evs = run_until(&mut d, at(13_000));
    assert!(matches!(evs.as_slice(), [(t, MovementEvent::SolicitNow)] if *t < at(13_000)));
}

#[test]
fn solicitations_three_at_one_per_second_then_back_off_to_a_minute() {
    let mut d = detector();
    d.start(t0());
    let sent: Vec<Time> = run_until(&mut d, at(600_000))
        .into_iter()
        .filter(|(_, e)| *e == MovementEvent::SolicitNow)
        .map(|(t, _)| t)
        .collect();
    assert!(sent[0] < at(1000), "first within the 1 s delay");
    let gaps: Vec<Duration> = sent
        .windows(2)
        .map(|w| w[1].saturating_duration_since(w[0]))
        .collect();
    let nominal = [1, 1, 2, 4, 8, 16, 32, 60, 60, 60];
    for (gap, n) in gaps.iter().zip(nominal) {
        let n = Duration::from_secs(n);
        assert!(
            *gap >= n && *gap < n + n / 4,
            "gap {gap:?} not in [{n:?}, 1.25 x)"
        );
    }
    assert!(
        gaps.iter().all(|g| *g < Duration::from_secs(75)),
        "capped at the maximum"
    );
    assert_eq!(d.stats().solicitations, sent.len() as u64);
}

#[test]
fn hearing_an_agent_stops_soliciting_and_losing_it_restarts_fast() {
    let mut d = detector();
    d.start(t0());
    let _ = run_until(&mut d, at(30_000)); // well into the back-off
    d.handle_advertisement(at(30_000), FA1, None, &fa(FA1, 0));
    let _ = events(&mut d);
    assert!(!d.searching());
    let evs = run_until(&mut d, at(45_000));
    let sols: Vec<Time> = evs
        .iter()
        .filter(|(_, e)| *e == MovementEvent::SolicitNow)
        .map(|(t, _)| *t)
        .collect();
    // Lost at 39 s: the fast rate again (1 s gaps), not the back-off reached before.
    assert!(sols.len() >= 3, "{sols:?}");
    assert!(sols[1].saturating_duration_since(sols[0]) < Duration::from_millis(1250));
}

#[test]
fn restart_search_forgets_agents() {
    let mut d = detector();
    d.handle_advertisement(t0(), FA1, None, &fa(FA1, 0));
    let _ = events(&mut d);
    d.restart_search(at(100));
    assert_eq!(d.location(), Location::Lost);
    assert!(d.agents().is_empty());
    assert!(d.searching());
}

#[test]
fn expiry_switches_to_another_live_agent() {
    let mut d = detector();
    d.handle_advertisement(t0(), FA1, None, &fa(FA1, 0));
    // A second agent on another link without prefix knowledge: no move yet (Algorithm 1).
    d.handle_advertisement(at(5000), FA3, None, &fa(FA3, 0));
    assert_eq!(events(&mut d).len(), 1);
    let evs = run_until(&mut d, at(9000));
    assert!(
        matches!(
            evs.as_slice(),
            [(
                _,
                MovementEvent::MovedToForeignAgent {
                    agent: FA3,
                    care_of: FA3,
                    ..
                }
            )]
        ),
        "{evs:?}"
    );
}

#[test]
fn prefix_change_moves_at_once_when_both_advertise_prefix_lengths() {
    let mut d = detector();
    d.handle_advertisement(t0(), FA1, None, &adv(FA1, AgentFlags::F, 0, 9, Some(24)));
    d.handle_advertisement(at(100), FA3, None, &adv(FA3, AgentFlags::F, 0, 9, Some(24)));
    let evs = events(&mut d);
    assert_eq!(evs.len(), 2, "{evs:?}");
    assert_eq!(
        d.location(),
        Location::ForeignAgent {
            agent: FA3,
            care_of: FA3
        }
    );

    // Same prefix: a second agent on the same link is not a move.
    d.handle_advertisement(
        at(200),
        Ipv4Addr::new(198, 18, 3, 2),
        None,
        &adv(Ipv4Addr::new(198, 18, 3, 2), AgentFlags::F, 0, 9, Some(24)),
    );
    assert!(events(&mut d).is_empty());
}

#[test]
fn prefix_lengths_missing_on_one_side_does_not_move() {
    let mut d = detector();
    d.handle_advertisement(t0(), FA1, None, &fa(FA1, 0));
    let _ = events(&mut d);
    d.handle_advertisement(at(100), FA3, None, &adv(FA3, AgentFlags::F, 0, 9, Some(24)));
    assert!(events(&mut d).is_empty());
    // Same link, second agent, same (unknown) prefix: nothing either.
    d.handle_advertisement(at(200), FA1B, None, &fa(FA1B, 0));
    assert!(events(&mut d).is_empty());
}

#[test]
fn configured_prefixes_tell_links_apart_without_prefix_lengths() {
    // Foreign agent mode on f1 (198.18.1.0/24 unknown) then f2, a configured co-located
    // link: f2's prefix is known but f1's is not, so Algorithm 1 applies...
    let mut d = detector();
    d.handle_advertisement(t0(), FA1, None, &fa(FA1, 0));
    d.handle_advertisement(at(100), FA2, None, &fa(FA2, 0));
    assert_eq!(events(&mut d).len(), 1);
    // ... but from f2 (known prefix) to home (known prefix) the move is at once.
    let evs = run_until(&mut d, at(9000));
    assert!(matches!(
        evs.as_slice(),
        [(_, MovementEvent::NeedsColocated { agent: FA2, .. })]
    ));
    d.handle_advertisement(at(9100), HA, None, &home(3));
    assert_eq!(events(&mut d), vec![MovementEvent::MovedHome { agent: HA }]);
}

#[test]
fn home_agent_heard_while_away_moves_home_at_once() {
    let mut d = detector();
    d.handle_advertisement(t0(), FA1, None, &fa(FA1, 0));
    let _ = events(&mut d);
    d.handle_advertisement(at(500), HA, None, &home(0));
    assert_eq!(events(&mut d), vec![MovementEvent::MovedHome { agent: HA }]);
}

#[test]
fn leaving_home_is_seen_by_prefix_or_by_expiry() {
    // With Prefix-Lengths from the foreign agent: home prefix is known, so at once.
    let mut d = detector();
    d.handle_advertisement(t0(), HA, None, &home(0));
    d.handle_advertisement(at(100), FA1, None, &adv(FA1, AgentFlags::F, 0, 9, Some(24)));
    assert!(matches!(
        events(&mut d).as_slice(),
        [_, MovementEvent::MovedToForeignAgent { agent: FA1, .. }]
    ));

    // Without: when the home agent's advertisement expires.
    let mut d = detector();
    d.handle_advertisement(t0(), HA, None, &home(0));
    d.handle_advertisement(at(100), FA1, None, &fa(FA1, 0));
    assert_eq!(events(&mut d).len(), 1);
    let evs = run_until(&mut d, at(9000));
    assert!(
        matches!(evs.as_slice(), [(t, MovementEvent::MovedToForeignAgent { agent: FA1, .. })] if *t == at(9000))
    );
}

#[test]
fn sequence_drop_below_256_means_restart_and_rollover_does_not() {
    let mut d = detector();
    d.handle_advertisement(t0(), FA1, None, &fa(FA1, 1000));
    let _ = events(&mut d);
    d.handle_advertisement(at(1000), FA1, None, &fa(FA1, 3));
    assert_eq!(
        events(&mut d),
        vec![MovementEvent::AgentRestarted {
            agent: FA1,
            care_of: FA1
        }]
    );
    d.handle_advertisement(at(2000), FA1, None, &fa(FA1, 0xffff));
    d.handle_advertisement(at(3000), FA1, None, &fa(FA1, 256));
    assert!(
        events(&mut d).is_empty(),
        "0xffff -> 256 is a rollover (2.3.2)"
    );
    assert_eq!(d.stats().agent_restarts, 1);
}

#[test]
fn care_of_address_withdrawn_moves_to_the_new_one() {
    let mut d = detector();
    d.handle_advertisement(t0(), FA1, None, &fa(FA1, 0));
    let _ = events(&mut d);
    let mut a = fa(FA1, 1);
    let coa = Ipv4Addr::new(198, 18, 1, 60);
    a.mobility.care_of_addresses = vec![coa];
    d.handle_advertisement(at(1000), FA1, None, &a);
    assert!(
        matches!(events(&mut d).as_slice(), [MovementEvent::MovedToForeignAgent { care_of, .. }] if *care_of == coa)
    );
}

#[test]
fn zero_lifetime_expires_at_once() {
    let mut d = detector();
    d.handle_advertisement(t0(), FA1, None, &fa(FA1, 0));
    let _ = events(&mut d);
    d.handle_advertisement(at(10), FA1, None, &adv(FA1, AgentFlags::F, 1, 0, None));
    assert_eq!(d.poll_timeout(), Some(at(10)));
    let evs = run_until(&mut d, at(10));
    assert_eq!(
        evs.first().map(|(_, e)| e.clone()),
        Some(MovementEvent::Lost { agent: Some(FA1) })
    );
}

#[test]
fn agent_table_is_bounded() {
    let mut d = detector();
    for i in 0..40u8 {
        let a = Ipv4Addr::new(198, 19, 7, i);
        d.handle_advertisement(at(u64::from(i)), a, None, &fa(a, 0));
    }
    assert!(d.agents().len() <= MAX_AGENTS);
    // The current agent (the first one heard) is never the one forgotten.
    assert_eq!(
        d.current().map(|a| a.address),
        Some(Ipv4Addr::new(198, 19, 7, 0))
    );
}
