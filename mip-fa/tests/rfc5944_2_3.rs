//! RFC 5944 section 2 (agent discovery) from the foreign agent's side: 2.1 (the
//! advertisement and its timing), 2.1.1 (flags), 2.1.2 (prefix lengths), 2.3 (answers
//! to solicitations, rate limits), 2.3.2 (sequence numbers). RFC 1256 5.1 timing.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::*;
use mip_core::wire::{icmp_checksum, AgentAdvertisementRepr, AgentFlags, AgentSolicitationRepr};
use mip_fa::config::SolicitedReply;
use mip_fa::{Advertisement, DiscardReason, ForeignAgent, ForeignAgentConfig};

fn periodic() -> ForeignAgentConfig {
    let mut c = config();
    c.advertisement.unsolicited = true;
    c
}

fn solicitation() -> Vec<u8> {
    let mut b = vec![0u8; 8];
    AgentSolicitationRepr.emit(&mut b).unwrap();
    b
}

fn adverts(fa: &mut ForeignAgent) -> Vec<Advertisement> {
    std::iter::from_fn(|| fa.poll_advertisement()).collect()
}

#[test]
fn s2_1_advertisement_bytes_from_the_configuration() {
    let mut fa = fa_with(periodic());
    fa.handle_timeout(t(0));
    let a = adverts(&mut fa);
    assert_eq!(a.len(), 1, "the first advertisement goes out at start");
    assert_eq!(a[0].destination, Ipv4Addr::new(224, 0, 0, 1));
    assert_eq!(a[0].link_destination, None);
    assert!(!a[0].solicited);
    let mut expected = vec![
        9, 16, 0, 0, // type, code 16 (no common traffic), checksum
        1, 2, 0, 3, // one router address, entry size 2, lifetime 3 s
        198, 18, 1, 1, 0, 0, 0, 0, // router address = care-of address, preference 0
        16, 10, 0, 0, // Mobility Agent Advertisement, length 6 + 4, sequence 0
        0x02, 0x58, 0x1d, 0x00, // registration lifetime 600, flags F M G T
        198, 18, 1, 1, // care-of address
    ];
    let sum = icmp_checksum(&expected);
    expected[2..4].copy_from_slice(&sum.to_be_bytes());
    assert_eq!(a[0].icmp, expected);
    let parsed = AgentAdvertisementRepr::parse(&a[0].icmp).expect("our own parser reads it");
    assert_eq!(parsed.mobility.care_of_addresses, vec![COA]);
}

#[test]
fn s2_1_periodic_interval_is_randomised_between_min_and_max() {
    let mut c = periodic();
    c.advertisement.max_interval = Duration::from_millis(1000);
    c.advertisement.min_interval = Duration::from_millis(750);
    let mut fa = fa_with(c);
    fa.handle_timeout(t(0));
    assert_eq!(adverts(&mut fa).len(), 1);
    let mut last = t(0);
    let mut gaps = Vec::new();
    for _ in 0..50 {
        let next = fa.poll_timeout().expect("a next advertisement");
        let gap = next.saturating_duration_since(last);
        assert!(
            gap >= Duration::from_millis(750) && gap <= Duration::from_millis(1000),
            "{gap:?}"
        );
        gaps.push(gap);
        fa.handle_timeout(next);
        assert_eq!(adverts(&mut fa).len(), 1);
        last = next;
    }
    gaps.sort();
    assert!(
        gaps.first() != gaps.last(),
        "RFC 1256 5.1: not strictly periodic"
    );
    assert_eq!(fa.stats().advertisements_unsolicited, 51);
}

#[test]
fn s2_1_first_advertisements_are_at_most_16_seconds_apart() {
    let mut c = periodic();
    c.advertisement.max_interval = Duration::from_secs(600);
    c.advertisement.min_interval = Duration::from_secs(450);
    c.advertisement.lifetime = 1800;
    let mut fa = fa_with(c);
    fa.handle_timeout(t(0));
    let mut now = t(0);
    for i in 0..3 {
        let next = fa.poll_timeout().unwrap();
        assert!(
            next.saturating_duration_since(now) <= Duration::from_secs(16),
            "advertisement {i}"
        );
        fa.handle_timeout(next);
        now = next;
    }
    let next = fa.poll_timeout().unwrap();
    assert!(
        next.saturating_duration_since(now) >= Duration::from_secs(450),
        "then the configured interval"
    );
}

#[test]
fn s2_1_1_flags_follow_the_configuration() {
    let mut c = periodic();
    c.registration_required = true;
    c.busy = true;
    c.minimal_encapsulation = false;
    c.gre_encapsulation = true;
    c.reverse_tunnel = false;
    c.advertisement.home_agent = true;
    let mut fa = fa_with(c);
    fa.handle_timeout(t(0));
    let flags = AgentAdvertisementRepr::parse(&adverts(&mut fa)[0].icmp)
        .unwrap()
        .mobility
        .flags;
    assert_eq!(
        flags.0,
        AgentFlags::R | AgentFlags::B | AgentFlags::H | AgentFlags::F | AgentFlags::G
    );
    assert!(!flags.contains(AgentFlags::R_RESERVED), "r is sent as zero");
}

#[test]
fn s2_1_2_prefix_lengths_extension_and_broadcast_destination() {
    let mut c = periodic();
    c.advertisement.prefix_lengths = true;
    c.advertisement.destination = Ipv4Addr::BROADCAST;
    c.advertisement.routes_common_traffic = true;
    let mut fa = fa_with(c);
    fa.handle_timeout(t(0));
    let a = adverts(&mut fa).remove(0);
    assert_eq!(a.destination, Ipv4Addr::BROADCAST);
    assert_eq!(a.icmp[1], 0, "code 0: routes common traffic");
    // After the Mobility Agent extension: type 19, length 1 (one router), 24, then one
    // byte of padding (RFC 5944 2.1.3) to make the length even.
    assert_eq!(&a.icmp[28..], &[19, 1, 24, 0]);
    assert_eq!(
        AgentAdvertisementRepr::parse(&a.icmp)
            .unwrap()
            .prefix_lengths,
        Some(vec![24])
    );
}

#[test]
fn s2_3_solicitation_is_answered_unicast_to_its_source_and_link_address() {
    let mut fa = fa();
    fa.handle_solicitation(t(0), HOME, Some(MN_MAC), &solicitation());
    let a = adverts(&mut fa);
    assert_eq!(a.len(), 1);
    assert_eq!(
        a[0].destination, HOME,
        "2.1: the home address as IP destination"
    );
    assert_eq!(
        a[0].link_destination,
        Some(MN_MAC),
        "2.1: MUST be the solicitation's link-layer source"
    );
    assert!(a[0].solicited);
    assert_eq!(fa.stats().advertisements_solicited_unicast, 1);
}

#[test]
fn s2_3_unicast_answers_to_one_solicitor_are_rate_limited() {
    let mut fa = fa();
    for ms in [0, 100, 499, 500] {
        fa.handle_solicitation(t_ms(ms), HOME, Some(MN_MAC), &solicitation());
    }
    assert_eq!(adverts(&mut fa).len(), 2);
    assert_eq!(
        fa.stats().discarded(DiscardReason::SolicitationRateLimited),
        2
    );
    // Another solicitor is not affected.
    fa.handle_solicitation(t_ms(100), HOME2, Some(MN2_MAC), &solicitation());
    assert_eq!(adverts(&mut fa).len(), 1);
}

#[test]
fn s2_3_multicast_answer_is_delayed_coalesced_and_resets_the_timer() {
    let mut c = periodic();
    c.advertisement.solicited_reply = SolicitedReply::Multicast;
    c.advertisement.max_interval = Duration::from_secs(10);
    c.advertisement.min_interval = Duration::from_secs(10);
    c.advertisement.lifetime = 30;
    let mut fa = fa_with(c);
    fa.handle_timeout(t(0));
    let _ = adverts(&mut fa);
    fa.handle_solicitation(t(1), HOME, Some(MN_MAC), &solicitation());
    fa.handle_solicitation(t(1), HOME2, Some(MN2_MAC), &solicitation());
    assert!(
        adverts(&mut fa).is_empty(),
        "RFC 1256: a multicast answer MUST be delayed"
    );
    let due = fa.poll_timeout().unwrap();
    assert!(due <= t(3) && due >= t(1), "within MAX_RESPONSE_DELAY");
    fa.handle_timeout(due);
    let a = adverts(&mut fa);
    assert_eq!(a.len(), 1, "one advertisement answers both");
    assert_eq!(a[0].destination, Ipv4Addr::new(224, 0, 0, 1));
    assert!(a[0].solicited);
    assert_eq!(
        fa.poll_timeout(),
        Some(due + Duration::from_secs(10)),
        "the periodic timer restarts"
    );
}

#[test]
fn s2_3_solicitation_from_0_0_0_0_is_answered_by_multicast() {
    let mut fa = fa();
    fa.handle_solicitation(t(0), Ipv4Addr::UNSPECIFIED, Some(MN_MAC), &solicitation());
    assert!(adverts(&mut fa).is_empty());
    fa.handle_timeout(t(3));
    let a = adverts(&mut fa);
    assert_eq!(
        (a.len(), a[0].destination),
        (1, Ipv4Addr::new(224, 0, 0, 1))
    );
}

#[test]
fn s2_3_multicast_advertisements_are_rate_limited() {
    let mut c = periodic();
    c.advertisement.solicited_reply = SolicitedReply::Multicast;
    c.advertisement.max_response_delay = Duration::ZERO;
    let mut fa = fa_with(c);
    fa.handle_timeout(t(0));
    assert_eq!(adverts(&mut fa).len(), 1);
    fa.handle_solicitation(t_ms(10), HOME, Some(MN_MAC), &solicitation());
    fa.handle_timeout(t_ms(10));
    assert!(
        adverts(&mut fa).is_empty(),
        "not within min_multicast_gap of the last one"
    );
    assert_eq!(fa.poll_timeout(), Some(t_ms(500)));
    fa.handle_timeout(t_ms(500));
    assert_eq!(adverts(&mut fa).len(), 1);
}

#[test]
fn s2_3_solicited_only_agent_sends_nothing_on_its_own() {
    let mut fa = fa();
    assert_eq!(fa.poll_timeout(), None);
    fa.handle_timeout(t(100));
    assert!(adverts(&mut fa).is_empty());
}

#[test]
fn s2_3_invalid_solicitations_are_counted_and_ignored() {
    let mut fa = fa();
    let mut bad_sum = solicitation();
    bad_sum[2] ^= 1;
    let mut bad_code = solicitation();
    bad_code[1] = 1;
    bad_code[2..4].copy_from_slice(&[0, 0]);
    let sum = icmp_checksum(&bad_code);
    bad_code[2..4].copy_from_slice(&sum.to_be_bytes());
    for case in [&bad_sum[..], &bad_code[..], &[10, 0, 0], &[]] {
        fa.handle_solicitation(t(0), HOME, Some(MN_MAC), case);
    }
    assert!(adverts(&mut fa).is_empty());
    assert_eq!(
        fa.stats().discarded(DiscardReason::MalformedSolicitation),
        4
    );
}

#[test]
fn s2_3_2_sequence_numbers_start_at_0_and_roll_over_to_256() {
    let mut fa = fa_with(periodic());
    let mut now = t(0);
    let mut seqs = Vec::new();
    for _ in 0..3 {
        fa.handle_timeout(now);
        seqs.extend(adverts(&mut fa).iter().map(|a| a.sequence));
        now = fa.poll_timeout().unwrap();
    }
    assert_eq!(seqs, vec![0, 1, 2]);
    fa.handle_solicitation(now, HOME, Some(MN_MAC), &solicitation());
    let a = adverts(&mut fa);
    assert_eq!(a[0].sequence, 3, "solicited advertisements count too");
    assert_eq!(
        AgentAdvertisementRepr::parse(&a[0].icmp)
            .unwrap()
            .mobility
            .sequence,
        3
    );
    assert_eq!(mip_fa::advertise::next_sequence(Some(0xffff)), 256);
}
