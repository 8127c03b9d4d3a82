//! Unit tests of the mobile node against a hand-written home agent reply builder.

use super::*;
use crate::auth::{self, AuthAlgorithm, SecurityAssociation};
use crate::wire::{
    ext_type, Extension, RegistrationReplyRepr, RegistrationRequest, RegistrationRequestRepr,
};

const HOME: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const HA: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const COA: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 20);
const HA_SOCK: SocketAddrV4 = SocketAddrV4::new(HA, 434);

fn t0() -> Time {
    Time::from_secs(1_700_000_000)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn sa(replay: ReplayMethod) -> SecurityAssociation {
    SecurityAssociation {
        spi: 0x1001,
        algorithm: AuthAlgorithm::HmacMd5,
        key: b"sixteen byte key".to_vec(),
        replay,
    }
}

fn node(replay: ReplayMethod) -> MobileNode {
    MobileNode::new(MobileNodeConfig::new(HOME, HA, COA, sa(replay)), 42)
}

/// The one request the node has queued, parsed, after checking its authenticator.
fn take_request(mn: &mut MobileNode) -> (RegistrationRequestRepr, Vec<u8>) {
    let t = mn.poll_transmit().expect("a request was queued");
    assert_eq!(t.destination, HA_SOCK);
    assert!(mn.poll_transmit().is_none(), "only one request at a time");
    let view = RegistrationRequest::new_checked(&t.payload[..]).expect("well-formed request");
    let repr = RegistrationRequestRepr::parse(&view).expect("parses");
    let mut auth_seen = 0;
    for item in view.extensions() {
        let item = item.expect("well-formed extension");
        if let Extension::MobileHomeAuth(a) = item.ext {
            auth_seen += 1;
            assert_eq!(a.spi, 0x1001);
            assert!(auth::verify_auth_extension(
                &t.payload,
                item.offset,
                &sa(ReplayMethod::Timestamp),
                a.authenticator
            ));
            assert_eq!(
                item.offset + item.len,
                t.payload.len(),
                "the authenticator comes last"
            );
        }
    }
    assert_eq!(auth_seen, 1);
    (repr, t.payload)
}

fn reply_with(
    req: &RegistrationRequestRepr,
    code: ReplyCode,
    lifetime: u16,
    id: u64,
    key: &[u8],
) -> Vec<u8> {
    let repr = RegistrationReplyRepr {
        code,
        lifetime,
        home_address: req.home_address,
        home_agent: req.home_agent,
        identification: id,
    };
    let mut bytes = repr.to_bytes();
    let mut sa = sa(ReplayMethod::Timestamp);
    sa.key = key.to_vec();
    auth::append_auth_extension(&mut bytes, ext_type::MOBILE_HOME_AUTH, &sa);
    bytes
}

fn reply(req: &RegistrationRequestRepr, code: ReplyCode, lifetime: u16) -> Vec<u8> {
    reply_with(req, code, lifetime, req.identification, b"sixteen byte key")
}

fn events(mn: &mut MobileNode) -> Vec<MnEvent> {
    std::iter::from_fn(|| mn.poll_event()).collect()
}

/// Fires every timeout up to `until`, returning the times at which requests went out.
fn run_timers(mn: &mut MobileNode, until: Time) -> Vec<Time> {
    let mut sends = Vec::new();
    while let Some(t) = mn.poll_timeout().filter(|t| *t <= until) {
        mn.handle_timeout(t);
        while mn.poll_transmit().is_some() {
            sends.push(t);
        }
    }
    sends
}

#[test]
fn request_has_fixed_part_nai_and_valid_authenticator() {
    let mut cfg = MobileNodeConfig::new(HOME, HA, COA, sa(ReplayMethod::Timestamp));
    cfg.nai = Some(b"mn1@example.test".to_vec());
    cfg.flags = RegistrationFlags::default()
        .with(RegistrationFlags::T)
        .with(RegistrationFlags::X);
    let mut mn = MobileNode::new(cfg, 1);
    mn.register(t0());
    assert_eq!(mn.state(), MnState::Registering);
    let (req, bytes) = take_request(&mut mn);
    assert_eq!(
        (req.home_address, req.home_agent, req.care_of_address),
        (HOME, HA, COA)
    );
    assert_eq!(req.lifetime, DEFAULT_LIFETIME);
    assert_eq!(req.flags.bits(), RegistrationFlags::T, "x is sent as zero");
    // Timestamp identification: NTP seconds of the node's clock in the high bits.
    assert_eq!(req.identification >> 32, t0().to_ntp() >> 32);
    let view = RegistrationRequest::new_checked(&bytes[..]).expect("request");
    let first = view
        .extensions()
        .next()
        .expect("an extension")
        .expect("valid");
    assert_eq!(first.ext, Extension::Nai(b"mn1@example.test"));
}

#[test]
fn retransmits_with_doubling_backoff_capped_then_gives_up() {
    let mut cfg = MobileNodeConfig::new(HOME, HA, COA, sa(ReplayMethod::Timestamp));
    cfg.max_retransmit = secs(4);
    cfg.max_attempts = 5;
    let mut mn = MobileNode::new(cfg, 2);
    mn.register(t0());
    let _ = take_request(&mut mn);
    let sends = run_timers(&mut mn, t0() + secs(100));
    let at: Vec<u64> = sends
        .iter()
        .map(|t| t.saturating_duration_since(t0()).as_secs())
        .collect();
    assert_eq!(at, vec![1, 3, 7, 11], "1 s, doubling, capped at 4 s");
    assert_eq!(
        events(&mut mn),
        vec![MnEvent::GaveUp {
            attempts: 5,
            deregistration: false
        }]
    );
    assert_eq!(mn.state(), MnState::Idle);
    assert_eq!(mn.stats().requests_sent, 5);
    assert_eq!(mn.stats().retransmissions, 4);
    assert_eq!(mn.stats().gave_up, 1);
    assert_eq!(mn.poll_timeout(), None);
}

#[test]
fn initial_timeout_below_one_second_is_raised() {
    let mut cfg = MobileNodeConfig::new(HOME, HA, COA, sa(ReplayMethod::Timestamp));
    cfg.initial_retransmit = Duration::from_millis(100);
    let mut mn = MobileNode::new(cfg, 3);
    mn.register(t0());
    let _ = take_request(&mut mn);
    assert_eq!(mn.poll_timeout(), Some(t0() + secs(1)));
}

#[test]
fn timestamp_retransmissions_get_new_identification_nonce_ones_do_not() {
    for (replay, same) in [
        (ReplayMethod::Timestamp, false),
        (ReplayMethod::Nonce, true),
    ] {
        let mut mn = node(replay);
        mn.register(t0());
        let (first, first_bytes) = take_request(&mut mn);
        mn.handle_timeout(t0() + secs(1));
        let (second, second_bytes) = take_request(&mut mn);
        assert_eq!(
            first.identification == second.identification,
            same,
            "{replay:?}"
        );
        assert_eq!(first_bytes == second_bytes, same, "{replay:?}");
        if !same {
            assert!(second.identification > first.identification);
        }
    }
}

#[test]
fn accepted_reply_sets_binding_and_schedules_renewal_before_expiry() {
    let mut mn = node(ReplayMethod::Timestamp);
    mn.register(t0());
    let (req, _) = take_request(&mut mn);
    let now = t0() + Duration::from_millis(30);
    mn.handle_datagram(now, HA_SOCK, &reply(&req, ReplyCode::Accepted, 200));
    let expires = t0() + secs(200);
    assert_eq!(
        events(&mut mn),
        vec![MnEvent::Registered {
            home_address: HOME,
            care_of_address: COA,
            code: ReplyCode::Accepted,
            lifetime: 200,
            requested_lifetime: DEFAULT_LIFETIME,
            expires: Some(expires),
            renewal: false,
        }]
    );
    assert_eq!(mn.state(), MnState::Registered);
    // Timed from the send (3.6.2.2). The default budget is 1+2+4+8+16 = 31 s, so the
    // renewal is at 200 - 31 = 169 s, before 7/8 (175 s).
    assert_eq!(mn.refresh_at(), Some(t0() + secs(169)));
    assert_eq!(mn.poll_timeout(), Some(t0() + secs(169)));

    mn.handle_timeout(t0() + secs(169));
    assert_eq!(mn.state(), MnState::Reregistering);
    let (renew, _) = take_request(&mut mn);
    mn.handle_datagram(
        t0() + secs(170),
        HA_SOCK,
        &reply(&renew, ReplyCode::Accepted, 300),
    );
    let ev = events(&mut mn);
    assert!(
        matches!(
            ev.as_slice(),
            [MnEvent::Registered {
                renewal: true,
                lifetime: 300,
                ..
            }]
        ),
        "{ev:?}"
    );
    // 7/8 of 300 is 262.5 s, 300 - 31 = 269 s: the former wins.
    assert_eq!(
        mn.refresh_at(),
        Some(t0() + secs(169) + Duration::from_millis(262_500))
    );
}

#[test]
fn duplicate_reply_is_accepted_once() {
    let mut mn = node(ReplayMethod::Timestamp);
    mn.register(t0());
    let (req, _) = take_request(&mut mn);
    let bytes = reply(&req, ReplyCode::Accepted, 300);
    mn.handle_datagram(t0() + secs(0), HA_SOCK, &bytes);
    mn.handle_datagram(t0() + secs(0), HA_SOCK, &bytes);
    assert_eq!(events(&mut mn).len(), 1);
    assert_eq!(mn.stats().replies_accepted, 1);
    assert_eq!(mn.stats().discarded_unmatched, 1);
}

#[test]
fn reply_failing_authentication_is_silently_discarded_and_counted() {
    let mut mn = node(ReplayMethod::Timestamp);
    mn.register(t0());
    let (req, _) = take_request(&mut mn);
    mn.handle_datagram(
        t0(),
        HA_SOCK,
        &reply_with(
            &req,
            ReplyCode::Accepted,
            300,
            req.identification,
            b"wrong key",
        ),
    );
    // No authenticator at all.
    let bare = RegistrationReplyRepr {
        code: ReplyCode::Accepted,
        lifetime: 300,
        home_address: HOME,
        home_agent: HA,
        identification: req.identification,
    }
    .to_bytes();
    mn.handle_datagram(t0(), HA_SOCK, &bare);
    // A home agent denial needs one too.
    mn.handle_datagram(
        t0(),
        HA_SOCK,
        &reply_with(
            &req,
            ReplyCode::AdministrativelyProhibited,
            0,
            req.identification,
            b"x",
        ),
    );
    // Nothing is acted on; each discard is only reported, with the code it claimed.
    assert!(events(&mut mn)
        .iter()
        .all(|e| matches!(e, MnEvent::UnauthenticatedReply { .. })));
    assert_eq!(mn.stats().discarded_auth, 3);
    assert_eq!(
        mn.state(),
        MnState::Registering,
        "still waiting for a real reply"
    );
    mn.handle_datagram(t0(), HA_SOCK, &reply(&req, ReplyCode::Accepted, 300));
    assert_eq!(mn.state(), MnState::Registered);
}

#[test]
fn reply_to_another_identification_or_home_address_is_discarded() {
    let mut mn = node(ReplayMethod::Timestamp);
    mn.register(t0());
    let (req, _) = take_request(&mut mn);
    mn.handle_datagram(
        t0(),
        HA_SOCK,
        &reply_with(
            &req,
            ReplyCode::Accepted,
            300,
            req.identification ^ 1,
            b"sixteen byte key",
        ),
    );
    let mut other = req;
    other.home_address = Ipv4Addr::new(198, 18, 0, 11);
    mn.handle_datagram(t0(), HA_SOCK, &reply(&other, ReplyCode::Accepted, 300));
    mn.handle_datagram(t0(), HA_SOCK, &[3, 0, 1]);
    assert_eq!(mn.stats().discarded_unmatched, 2);
    assert_eq!(mn.stats().discarded_malformed, 1);
    assert!(events(&mut mn).is_empty());
}

#[test]
fn late_reply_to_an_earlier_timestamp_copy_is_discarded() {
    let mut mn = node(ReplayMethod::Timestamp);
    mn.register(t0());
    let (first, _) = take_request(&mut mn);
    mn.handle_timeout(t0() + secs(1));
    let (second, _) = take_request(&mut mn);
    mn.handle_datagram(
        t0() + secs(1),
        HA_SOCK,
        &reply(&first, ReplyCode::Accepted, 300),
    );
    assert_eq!(mn.state(), MnState::Registering);
    mn.handle_datagram(
        t0() + secs(1),
        HA_SOCK,
        &reply(&second, ReplyCode::Accepted, 300),
    );
    assert_eq!(mn.state(), MnState::Registered);
}

#[test]
fn identification_mismatch_resyncs_clock_and_retries_at_once() {
    let mut mn = node(ReplayMethod::Timestamp);
    mn.register(t0());
    let (req, _) = take_request(&mut mn);
    let ha_now = t0() + secs(100);
    let id = replay::timestamp_resync_identification(req.identification, ha_now);
    mn.handle_datagram(
        t0(),
        HA_SOCK,
        &reply_with(
            &req,
            ReplyCode::IdentificationMismatch,
            0,
            id,
            b"sixteen byte key",
        ),
    );
    let ev = events(&mut mn);
    assert!(
        matches!(
            ev.as_slice(),
            [MnEvent::Resynchronized {
                replay: ReplayMethod::Timestamp,
                ..
            }]
        ),
        "{ev:?}"
    );
    let (retry, _) = take_request(&mut mn);
    let ha_secs = ha_now.to_ntp() >> 32;
    assert!(
        (retry.identification >> 32).abs_diff(ha_secs) <= 1,
        "now on the home agent's clock"
    );
    assert_eq!(
        mn.poll_timeout(),
        Some(t0() + secs(1)),
        "back-off starts afresh"
    );
    // A second 133 in the same transaction is a denial, not a loop.
    let id = replay::timestamp_resync_identification(retry.identification, ha_now);
    mn.handle_datagram(
        t0(),
        HA_SOCK,
        &reply_with(
            &retry,
            ReplyCode::IdentificationMismatch,
            0,
            id,
            b"sixteen byte key",
        ),
    );
    assert_eq!(
        events(&mut mn),
        vec![MnEvent::Denied {
            code: ReplyCode::IdentificationMismatch,
            deregistration: false
        }]
    );
    assert!(mn.poll_transmit().is_none());
    assert_eq!(mn.state(), MnState::Idle);
}

#[test]
fn nonce_mode_learns_the_home_agent_nonce_and_echoes_it() {
    let mut mn = node(ReplayMethod::Nonce);
    mn.register(t0());
    let (req, _) = take_request(&mut mn);
    assert_eq!(req.identification >> 32, 0, "no nonce known yet");
    let id = replay::nonce_mismatch_reply_identification(req.identification, 0xfeed_f00d);
    mn.handle_datagram(
        t0(),
        HA_SOCK,
        &reply_with(
            &req,
            ReplyCode::IdentificationMismatch,
            0,
            id,
            b"sixteen byte key",
        ),
    );
    let (retry, _) = take_request(&mut mn);
    assert_eq!(retry.identification >> 32, 0xfeed_f00d);
    assert_ne!(
        retry.identification & 0xffff_ffff,
        req.identification & 0xffff_ffff
    );
    let id = replay::nonce_reply_identification(retry.identification, 0x1234_5678);
    mn.handle_datagram(
        t0(),
        HA_SOCK,
        &reply_with(&retry, ReplyCode::Accepted, 300, id, b"sixteen byte key"),
    );
    assert_eq!(mn.state(), MnState::Registered);
    mn.deregister(t0() + secs(5));
    let (dereg, _) = take_request(&mut mn);
    assert_eq!(dereg.identification >> 32, 0x1234_5678);
}

#[test]
fn denial_is_reported_with_its_code() {
    let mut mn = node(ReplayMethod::Timestamp);
    mn.register(t0());
    let (req, _) = take_request(&mut mn);
    mn.handle_datagram(
        t0(),
        HA_SOCK,
        &reply(&req, ReplyCode::MobileNodeFailedAuthentication, 0),
    );
    assert_eq!(
        events(&mut mn),
        vec![MnEvent::Denied {
            code: ReplyCode::MobileNodeFailedAuthentication,
            deregistration: false
        }]
    );
    assert_eq!(mn.state(), MnState::Idle);
    assert_eq!(mn.poll_timeout(), None);
}

#[test]
fn foreign_agent_denial_needs_no_home_authenticator() {
    let mut mn = node(ReplayMethod::Timestamp);
    mn.register(t0());
    let (req, _) = take_request(&mut mn);
    let bare = RegistrationReplyRepr {
        code: ReplyCode::from(65),
        lifetime: 0,
        home_address: HOME,
        home_agent: HA,
        identification: req.identification,
    }
    .to_bytes();
    mn.handle_datagram(t0(), HA_SOCK, &bare);
    assert_eq!(
        events(&mut mn),
        vec![MnEvent::Denied {
            code: ReplyCode::from(65),
            deregistration: false
        }]
    );
}

#[test]
fn deregistration_sends_lifetime_zero_and_moving_home_uses_the_home_address() {
    let mut mn = node(ReplayMethod::Timestamp);
    mn.register(t0());
    let (req, _) = take_request(&mut mn);
    mn.handle_datagram(t0(), HA_SOCK, &reply(&req, ReplyCode::Accepted, 300));
    let _ = events(&mut mn);

    mn.deregister(t0() + secs(10));
    assert_eq!(mn.state(), MnState::Deregistering);
    let (dereg, _) = take_request(&mut mn);
    assert_eq!((dereg.lifetime, dereg.care_of_address), (0, COA));
    mn.handle_datagram(
        t0() + secs(10),
        HA_SOCK,
        &reply(&dereg, ReplyCode::Accepted, 0),
    );
    assert_eq!(
        events(&mut mn),
        vec![MnEvent::Deregistered {
            care_of_address: COA,
            code: ReplyCode::Accepted
        }]
    );
    assert_eq!(mn.state(), MnState::Idle);
    assert_eq!(mn.poll_timeout(), None);

    mn.move_to(t0() + secs(20), HOME);
    let (home, _) = take_request(&mut mn);
    assert_eq!(
        (home.lifetime, home.care_of_address),
        (0, HOME),
        "3.6.1.2: deregister all"
    );
}

#[test]
fn binding_expires_when_renewals_get_no_reply() {
    let mut cfg = MobileNodeConfig::new(HOME, HA, COA, sa(ReplayMethod::Timestamp));
    cfg.lifetime = 20;
    let mut mn = MobileNode::new(cfg, 4);
    mn.register(t0());
    let (req, _) = take_request(&mut mn);
    mn.handle_datagram(t0(), HA_SOCK, &reply(&req, ReplyCode::Accepted, 20));
    let _ = events(&mut mn);
    // Budget 1+2+4+8+16 = 31 s exceeds 20 s: renew at half the lifetime.
    assert_eq!(mn.refresh_at(), Some(t0() + secs(10)));
    let sends = run_timers(&mut mn, t0() + secs(24));
    let at: Vec<u64> = sends
        .iter()
        .map(|t| t.saturating_duration_since(t0()).as_secs())
        .collect();
    assert_eq!(at, vec![10, 11, 13, 17]);
    assert_eq!(
        events(&mut mn),
        vec![MnEvent::Expired {
            care_of_address: COA
        }]
    );
    assert_eq!(
        mn.state(),
        MnState::Registering,
        "still trying, without a binding"
    );
}

#[test]
fn requests_are_at_least_one_second_apart() {
    let mut mn = node(ReplayMethod::Timestamp);
    mn.register(t0());
    let _ = take_request(&mut mn);
    mn.register(t0() + Duration::from_millis(200));
    assert!(mn.poll_transmit().is_none());
    assert_eq!(mn.poll_timeout(), Some(t0() + secs(1)));
    mn.handle_timeout(t0() + secs(1));
    let _ = take_request(&mut mn);
}

#[test]
fn granted_lifetime_is_never_more_than_requested() {
    let mut mn = node(ReplayMethod::Timestamp);
    mn.register(t0());
    let (req, _) = take_request(&mut mn);
    mn.handle_datagram(t0(), HA_SOCK, &reply(&req, ReplyCode::Accepted, 5000));
    assert_eq!(mn.binding().map(|b| b.lifetime), Some(DEFAULT_LIFETIME));
}

#[test]
fn registration_by_nai_learns_the_home_address() {
    let mut cfg =
        MobileNodeConfig::new(Ipv4Addr::UNSPECIFIED, HA, COA, sa(ReplayMethod::Timestamp));
    cfg.nai = Some(b"mn2@example.test".to_vec());
    assert_eq!(cfg.validate(), Ok(()));
    let mut mn = MobileNode::new(cfg, 5);
    mn.register(t0());
    let (mut req, _) = take_request(&mut mn);
    assert!(req.home_address.is_unspecified());
    req.home_address = HOME;
    mn.handle_datagram(t0(), HA_SOCK, &reply(&req, ReplyCode::Accepted, 300));
    assert_eq!(mn.home_address(), HOME);
    assert_eq!(mn.binding().map(|b| b.home_address), Some(HOME));
}

#[test]
fn config_validation_names_the_problem() {
    let mut cfg =
        MobileNodeConfig::new(Ipv4Addr::UNSPECIFIED, HA, COA, sa(ReplayMethod::Timestamp));
    assert_eq!(cfg.validate(), Err(MnError::NoIdentity));
    cfg.nai = Some(vec![b'a'; 256]);
    assert_eq!(cfg.validate(), Err(MnError::NaiLength { len: 256 }));
    let mut mn = MobileNode::new(cfg, 6);
    mn.register(t0());
    assert!(matches!(
        events(&mut mn).as_slice(),
        [MnEvent::Failed { .. }]
    ));
    assert_eq!(mn.state(), MnState::Idle);
}

#[test]
fn move_via_foreign_agent_sends_to_it_and_home_goes_direct() {
    let fa = Ipv4Addr::new(198, 18, 1, 1);
    let mut mn = node(ReplayMethod::Timestamp);
    mn.set_flags(RegistrationFlags::default().with(RegistrationFlags::T));
    mn.move_via(t0(), Some(fa), fa);
    assert_eq!(mn.relay(), Some(fa));
    let t = mn.poll_transmit().expect("a request");
    assert_eq!(t.destination, SocketAddrV4::new(fa, 434), "3.6.1.1: to the agent");
    let view = RegistrationRequest::new_checked(&t.payload[..]).expect("well-formed");
    let req = RegistrationRequestRepr::parse(&view).expect("parses");
    assert_eq!((req.care_of_address, req.home_agent), (fa, HA));
    assert!(req.flags.contains(RegistrationFlags::T));
    // The reply comes back through the agent.
    mn.handle_datagram(t0(), SocketAddrV4::new(fa, 434), &reply(&req, ReplyCode::Accepted, 300));
    assert!(matches!(events(&mut mn).as_slice(), [MnEvent::Registered { .. }]));

    // Returning home: deregistration straight to the home agent.
    mn.move_to(t0() + secs(5), HOME);
    assert_eq!(mn.relay(), None);
    let (home, _) = take_request(&mut mn);
    assert_eq!((home.lifetime, home.care_of_address), (0, HOME));
}
