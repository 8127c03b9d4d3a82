//! The advertiser driven by a virtual clock: no sockets, no sleeps.
#![allow(clippy::unwrap_used)]

use super::*;
use mip_core::dataplane::ipv4::{write_header, Ipv4Fields};

const HA: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const MN: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const T0: Time = Time::from_secs(1_000);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config() -> AdvertConfig {
    AdvertConfig::new(HA, 24, 600)
}

/// An advertiser whose first (periodic) advertisement has been taken, so the tests see
/// only what they cause.
fn quiet(cfg: AdvertConfig) -> Advertiser {
    let mut a = Advertiser::new(cfg, T0, 7);
    a.handle_timeout(T0);
    let _ = drain(&mut a);
    a
}

/// Everything due, parsed.
fn drain(a: &mut Advertiser) -> Vec<(Outgoing, AgentAdvertisementRepr)> {
    let mut buf = [0u8; 64];
    let mut out = Vec::new();
    while let Some(r) = a.poll_transmit(&mut buf) {
        let o = r.unwrap();
        out.push((o, AgentAdvertisementRepr::parse(&buf[..o.len]).unwrap()));
    }
    out
}

/// Runs the advertiser from `from` to `to`, waking at each deadline; returns what it
/// sent with the time.
fn run(a: &mut Advertiser, from: Time, to: Time) -> Vec<(Time, Outgoing)> {
    let mut now = from;
    let mut sent = Vec::new();
    while let Some(t) = a.poll_timeout().filter(|t| *t <= to) {
        now = now.max(t);
        a.handle_timeout(now);
        sent.extend(drain(a).into_iter().map(|(o, _)| (now, o)));
    }
    sent
}

/// A solicitation as an IP packet, `ttl`, with the ICMP bytes changed by `tweak`.
fn solicitation(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, tweak: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut icmp = vec![0u8; 8];
    AgentSolicitationRepr.emit(&mut icmp).unwrap();
    tweak(&mut icmp);
    let mut p = vec![0u8; 20 + icmp.len()];
    let fields = Ipv4Fields {
        tos: 0,
        total_len: p.len() as u16,
        identification: 1,
        dont_fragment: false,
        more_fragments: false,
        fragment_offset: 0,
        ttl,
        protocol: PROTO_ICMP,
        src,
        dst,
    };
    write_header(&mut p, &fields).unwrap();
    p[20..].copy_from_slice(&icmp);
    p
}

fn solicit(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    solicitation(src, dst, 1, |_| {})
}

#[test]
fn first_advertisement_is_sent_at_start_with_sequence_0_and_the_home_agent_fields() {
    let mut a = Advertiser::new(config(), T0, 1);
    assert_eq!(a.poll_timeout(), Some(T0));
    a.handle_timeout(T0);
    let sent = drain(&mut a);
    assert_eq!(sent.len(), 1);
    let (o, adv) = &sent[0];
    assert_eq!((o.destination, o.sequence, o.solicited), (ALL_SYSTEMS, 0, false));
    assert_eq!(adv.code, 16, "does not route common traffic");
    assert_eq!(adv.lifetime, 3, "3 x 1000 ms");
    assert_eq!(adv.router_addresses, vec![(HA, i32::MIN)], "own address, not a default router");
    assert_eq!(adv.mobility.flags, AgentFlags(AgentFlags::H), "H only: no F, R, B, T");
    assert_eq!(adv.mobility.registration_lifetime, 600);
    assert!(adv.mobility.care_of_addresses.is_empty());
    assert_eq!(adv.prefix_lengths, None);
    assert_eq!(a.stats().advertisements_sent, 1);

    let cfg = AdvertConfig { prefix_lengths: true, ..config() };
    let mut a = Advertiser::new(cfg, T0, 1);
    a.handle_timeout(T0);
    assert_eq!(drain(&mut a)[0].1.prefix_lengths, Some(vec![24]));
}

#[test]
fn sequence_numbers_count_up_and_roll_over_from_ffff_to_256_rfc5944_2_3_2() {
    assert_eq!(next_sequence(None), 0);
    assert_eq!(next_sequence(Some(0)), 1);
    assert_eq!(next_sequence(Some(255)), 256);
    assert_eq!(next_sequence(Some(0xfffe)), 0xffff);
    assert_eq!(next_sequence(Some(0xffff)), 256);

    let mut a = Advertiser::new(config(), T0, 3);
    let seqs: Vec<u16> = run(&mut a, T0, T0 + ms(10_000)).iter().map(|(_, o)| o.sequence).collect();
    assert!(seqs.len() >= 10, "{seqs:?}");
    assert!(seqs.iter().enumerate().all(|(i, s)| usize::from(*s) == i), "{seqs:?}");

    a.last_sequence = Some(0xfffe);
    let later = T0 + ms(20_000);
    let seqs: Vec<u16> = run(&mut a, later, later + ms(3_000)).iter().map(|(_, o)| o.sequence).collect();
    assert_eq!(seqs[..3], [0xffff, 256, 257]);
}

#[test]
fn periodic_gaps_are_randomised_between_three_quarters_and_one_interval_rfc1256() {
    let mut a = Advertiser::new(config(), T0, 11);
    let sent = run(&mut a, T0, T0 + ms(200_000));
    let gaps: Vec<Duration> = sent.windows(2).map(|w| w[1].0.saturating_duration_since(w[0].0)).collect();
    assert!(gaps.len() > 190);
    assert!(gaps.iter().all(|g| *g >= ms(750) && *g <= ms(1000)), "{gaps:?}");
    let first = gaps[0];
    assert!(gaps.iter().any(|g| *g != first), "not randomised");
    // RFC 5944 2.1: the interval is at most a third of the advertised lifetime.
    assert!(gaps.iter().all(|g| *g * 3 <= Duration::from_secs(3)));
}

#[test]
fn first_intervals_are_capped_at_16_seconds_rfc1256() {
    let cfg = AdvertConfig { interval: Duration::from_secs(60), lifetime: 180, ..config() };
    let mut a = Advertiser::new(cfg, T0, 5);
    let sent = run(&mut a, T0, T0 + Duration::from_secs(400));
    let gaps: Vec<Duration> = sent.windows(2).map(|w| w[1].0.saturating_duration_since(w[0].0)).collect();
    assert!(gaps[..3].iter().all(|g| *g == MAX_INITIAL_ADVERT_INTERVAL), "{gaps:?}");
    assert!(gaps[3..].iter().all(|g| *g >= Duration::from_secs(45)), "{gaps:?}");
}

#[test]
fn solicitation_is_answered_by_one_multicast_advertisement_within_the_response_delay() {
    let mut a = quiet(config());
    let now = T0 + ms(500);
    let r = a.handle_packet(now, &solicit(MN, ALL_MOBILITY_AGENTS));
    let Solicitation::Answered { destination, due } = r else { panic!("{r:?}") };
    assert_eq!(destination, ALL_SYSTEMS);
    assert!(due >= now && due <= now + RESPONSE_DELAY && RESPONSE_DELAY <= MAX_RESPONSE_DELAY);
    assert_eq!(a.poll_timeout(), Some(due));
    a.handle_timeout(due);
    let sent = drain(&mut a);
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].0.destination, sent[0].0.sequence, sent[0].0.solicited), (ALL_SYSTEMS, 1, true));
    let s = a.stats();
    assert_eq!((s.solicitations_received, s.solicitations_answered, s.solicited_advertisements), (1, 1, 1));
}

#[test]
fn any_source_is_answered_even_zero_or_off_link_rfc5944_2_3() {
    for src in [Ipv4Addr::UNSPECIFIED, Ipv4Addr::new(198, 19, 7, 7)] {
        for dst in [ALL_MOBILITY_AGENTS, ALL_ROUTERS, ALL_SYSTEMS, HA] {
            let mut a = quiet(config());
            let r = a.handle_packet(T0 + ms(300), &solicit(src, dst));
            assert!(matches!(r, Solicitation::Answered { destination: ALL_SYSTEMS, .. }), "{src} {dst}: {r:?}");
        }
    }
}

#[test]
fn broadcast_solicitation_is_answered_by_broadcast_rfc1256_5_1() {
    for dst in [Ipv4Addr::BROADCAST, Ipv4Addr::new(198, 18, 0, 255)] {
        let mut a = quiet(config());
        let now = T0 + ms(300);
        let r = a.handle_packet(now, &solicit(MN, dst));
        let Solicitation::Answered { destination, due } = r else { panic!("{r:?}") };
        assert_eq!(destination, Ipv4Addr::BROADCAST);
        a.handle_timeout(due);
        let sent = drain(&mut a);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0.destination, Ipv4Addr::BROADCAST);
    }
}

#[test]
fn one_answer_per_solicitor_per_second() {
    let mut a = quiet(config());
    let t = T0 + ms(300);
    assert!(matches!(a.handle_packet(t, &solicit(MN, ALL_MOBILITY_AGENTS)), Solicitation::Answered { .. }));
    let sent = run(&mut a, t, t + ms(400));
    assert_eq!(sent.len(), 1);
    for dt in [200, 999] {
        assert_eq!(a.handle_packet(t + ms(dt), &solicit(MN, ALL_MOBILITY_AGENTS)), Solicitation::RateLimited);
    }
    assert!(matches!(a.handle_packet(t + ms(1000), &solicit(MN, ALL_MOBILITY_AGENTS)), Solicitation::Answered { .. }));
    let s = a.stats();
    assert_eq!((s.solicitations_received, s.solicitations_rate_limited), (4, 2));
}

#[test]
fn close_solicitations_share_one_advertisement_and_answers_keep_a_gap() {
    let mut a = quiet(config());
    let t = T0 + ms(300);
    let mut dues = Vec::new();
    for i in 0..5u8 {
        let r = a.handle_packet(t + ms(u64::from(i)), &solicit(Ipv4Addr::new(198, 18, 0, 20 + i), ALL_MOBILITY_AGENTS));
        let Solicitation::Answered { due, .. } = r else { panic!("{r:?}") };
        dues.push(due);
    }
    assert!(dues.iter().all(|d| *d == dues[0]), "{dues:?}");
    let sent = run(&mut a, t, t + ms(150));
    assert_eq!(sent.len(), 1);
    assert_eq!(a.stats().solicitations_answered, 5);
    // The next answer waits for the gap after the previous advertisement.
    let sent_at = sent[0].0;
    let r = a.handle_packet(sent_at + ms(1), &solicit(Ipv4Addr::new(198, 18, 0, 99), ALL_MOBILITY_AGENTS));
    let Solicitation::Answered { due, .. } = r else { panic!("{r:?}") };
    assert!(due >= sent_at + MIN_ANSWER_GAP, "{due:?}");
}

#[test]
fn a_flood_from_spoofed_sources_is_bounded() {
    let cfg = AdvertConfig { interval: Duration::from_secs(60), lifetime: 180, ..config() };
    let mut a = quiet(cfg);
    let start = T0 + ms(1);
    let mut now = start;
    let mut sent = 0;
    // 10,000 sources in one second.
    for i in 0..10_000u32 {
        now = start + Duration::from_micros(u64::from(i) * 100);
        let src = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 0, 0)) + i);
        let _ = a.handle_packet(now, &solicit(src, ALL_MOBILITY_AGENTS));
        if a.poll_timeout().is_some_and(|t| t <= now) {
            a.handle_timeout(now);
            sent += drain(&mut a).len();
        }
    }
    assert!(now.saturating_duration_since(start) < Duration::from_secs(1));
    let limit = (Duration::from_secs(1).as_millis() / MIN_ANSWER_GAP.as_millis()) as usize + 1;
    assert!(sent <= limit, "{sent} advertisements");
    assert!(a.solicitors.len() <= MAX_SOLICITORS);
    let s = a.stats();
    assert!(s.solicitations_rate_limited > 9_000, "{s:?}");
    assert_eq!(s.solicitations_received, 10_000);
}

#[test]
fn malformed_solicitations_are_counted_and_not_answered() {
    let mut a = quiet(config());
    let t = T0 + ms(300);
    let bad = [
        solicitation(MN, ALL_MOBILITY_AGENTS, 1, |i| i[2] ^= 0xff),
        solicitation(MN, ALL_MOBILITY_AGENTS, 1, |i| {
            i[1] = 1;
            i[2..4].fill(0);
            let sum = mip_core::wire::icmp_checksum(i);
            i[2..4].copy_from_slice(&sum.to_be_bytes());
        }),
        solicitation(MN, ALL_MOBILITY_AGENTS, 1, |i| i.truncate(6)),
        solicitation(MN, ALL_MOBILITY_AGENTS, 2, |_| {}),
        solicitation(MN, ALL_MOBILITY_AGENTS, 64, |_| {}),
    ];
    for p in &bad {
        assert!(matches!(a.handle_packet(t, p), Solicitation::Malformed(_)), "{p:?}");
    }
    // Other ICMP (an echo request) and non-ICMP are ignored without counting.
    let echo = solicitation(MN, HA, 64, |i| i[0] = 8);
    assert_eq!(a.handle_packet(t, &echo), Solicitation::NotSolicitation);
    assert_eq!(a.handle_packet(t, &[0x45, 0, 0]), Solicitation::NotSolicitation);
    let s = a.stats();
    assert_eq!((s.solicitations_received, s.solicitations_malformed), (5, 5));
    assert!(run(&mut a, t, t + ms(600)).iter().all(|(_, o)| !o.solicited));
    assert_eq!(a.stats().solicitations_answered, 0);
}

#[test]
fn multicast_answer_resets_the_periodic_timer_rfc1256_5_1() {
    let mut a = quiet(config());
    let before = a.poll_timeout().unwrap();
    let t = T0 + ms(500);
    let Solicitation::Answered { due, .. } = a.handle_packet(t, &solicit(MN, ALL_MOBILITY_AGENTS)) else { panic!() };
    a.handle_timeout(due);
    assert_eq!(drain(&mut a).len(), 1);
    let after = a.poll_timeout().unwrap();
    assert!(after >= due + ms(750) && after > before, "{before:?} {after:?}");
}

#[test]
fn a_periodic_advertisement_due_first_answers_the_pending_solicitation() {
    let mut a = quiet(config());
    let periodic = a.poll_timeout().unwrap();
    // Solicit just before the periodic one: the periodic advertisement answers it.
    let t = periodic - ms(1);
    assert!(matches!(a.handle_packet(t, &solicit(MN, ALL_MOBILITY_AGENTS)), Solicitation::Answered { .. }));
    let sent = run(&mut a, t, t + ms(500));
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(!sent[0].1.solicited);
    assert_eq!(a.stats().solicitations_answered, 1);
}

#[test]
fn solicited_only_mode_sends_nothing_unasked_rfc5944_2_3() {
    let mut a = Advertiser::new(AdvertConfig { periodic: false, ..config() }, T0, 1);
    assert_eq!(a.poll_timeout(), None);
    assert!(run(&mut a, T0, T0 + ms(10_000)).is_empty());
    let t = T0 + ms(10_000);
    let Solicitation::Answered { due, .. } = a.handle_packet(t, &solicit(MN, ALL_MOBILITY_AGENTS)) else { panic!() };
    a.handle_timeout(due);
    let sent = drain(&mut a);
    assert_eq!((sent.len(), sent[0].0.sequence), (1, 0));
    assert_eq!(a.poll_timeout(), None);
}

#[test]
fn withdrawal_repeats_the_last_advertisement_with_lifetime_zero() {
    let mut buf = [0u8; 64];
    let mut a = Advertiser::new(config(), T0, 1);
    assert!(a.withdraw(&mut buf).is_none(), "nothing sent, nothing to withdraw");
    let sent = run(&mut a, T0, T0 + ms(2_500));
    let last = sent.last().unwrap().1;
    let o = a.withdraw(&mut buf).unwrap().unwrap();
    let adv = AgentAdvertisementRepr::parse(&buf[..o.len]).unwrap();
    assert_eq!((o.destination, o.sequence, adv.lifetime), (ALL_SYSTEMS, last.sequence, 0));
    assert_eq!(a.poll_timeout(), None);
}

#[test]
fn default_lifetime_is_three_intervals_in_whole_seconds() {
    assert_eq!(default_lifetime(1000), 3);
    assert_eq!(default_lifetime(1500), 5);
    assert_eq!(default_lifetime(100), 1);
    assert_eq!(default_lifetime(MAX_ADVERTISEMENT_INTERVAL_MS), 5400);
    assert_eq!(default_lifetime(u64::MAX), MAX_ADVERTISEMENT_LIFETIME);
}
