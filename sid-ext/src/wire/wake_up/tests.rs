//! The wake-up and its acknowledgement, built and read back, byte for byte.

use super::*;
use crate::wire::DEFAULT_ORG_ID;
use core::net::Ipv4Addr;
use mip_core::auth::{verify_authenticator, AuthAlgorithm, ReplayMethod};
use mip_core::wire::notification::{NotificationDirection, ACK_CODE_SUCCESS};

const TN: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const AGENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const TARGET: Ipv4Addr = Ipv4Addr::new(198, 19, 1, 10);

fn sa() -> SecurityAssociation {
    SecurityAssociation {
        spi: 256,
        algorithm: AuthAlgorithm::HmacMd5,
        key: b"0123456789abcdef".to_vec(),
        replay: ReplayMethod::Timestamp,
    }
}

fn notification() -> GenericNotificationRepr {
    GenericNotificationRepr {
        direction: NotificationDirection::HomeAgentToMobileNode,
        home_address: TN,
        home_agent: AGENT,
        care_of_address: TARGET,
        identification: 0x6b2e_c980_0000_002a,
    }
}

#[test]
fn wake_up_layout() {
    let m = build_wake_up(
        &notification(),
        DEFAULT_ORG_ID,
        WakeUpReason::BindingExpired,
        &sa(),
    )
    .expect("valid");
    #[rustfmt::skip]
    let head: [u8; 36] = [
        0x16, 0x00, 0x00, 0x00, 0xc6, 0x12, 0x00, 0x0a, 0xc6, 0x12, 0x00, 0x01,
        0xc6, 0x13, 0x01, 0x0a, 0x6b, 0x2e, 0xc9, 0x80, 0x00, 0x00, 0x00, 0x2a,
        0x26, 0x00, 0x00, 0x08, 0x00, 0x00, 0x7e, 0xd9, 0x00, 0x08, 0x00, 0x00,
    ];
    assert_eq!(m.len(), 58);
    assert_eq!(m.get(..36), Some(&head[..]));
    assert_eq!(
        m.get(36..42),
        Some(&[0x20, 0x14, 0x00, 0x00, 0x01, 0x00][..])
    );
}

#[test]
fn wake_up_round_trip_and_authenticator() {
    let m = build_wake_up(
        &notification(),
        DEFAULT_ORG_ID,
        WakeUpReason::Revoked,
        &sa(),
    )
    .expect("valid");
    let got = parse_wake_up(&m, DEFAULT_ORG_ID).expect("valid");
    assert_eq!(got.notification, notification());
    assert_eq!(got.reason, WakeUpReason::Revoked);
    assert_eq!(got.sid.wake_up, Some(WakeUpReason::Revoked));
    assert_eq!(got.auth.spi, 256);
    assert_eq!(got.auth.covered, m.get(..42).expect("covered"));
    assert!(verify_authenticator(
        AuthAlgorithm::HmacMd5,
        &sa().key,
        got.auth.covered,
        got.auth.authenticator
    ));
    let mut tampered = m.clone();
    tampered[34] ^= 1; // the reason
    let t = parse_wake_up(&tampered, DEFAULT_ORG_ID).expect("still well formed");
    assert!(!verify_authenticator(
        AuthAlgorithm::HmacMd5,
        &sa().key,
        t.auth.covered,
        t.auth.authenticator
    ));
}

#[test]
fn ack_round_trip() {
    let ack = GenericNotificationAckRepr::answering(
        &notification(),
        NotificationDirection::MobileNodeToHomeAgent,
        ACK_CODE_SUCCESS,
    );
    let m = build_wake_up_ack(&ack, &sa());
    assert_eq!(m.len(), 46);
    assert_eq!(m.get(..4), Some(&[0x17, 0x02, 0x00, 0x00][..]));
    let got = parse_wake_up_ack(&m).expect("valid");
    assert_eq!(got.ack, ack);
    assert!(verify_authenticator(
        AuthAlgorithm::HmacMd5,
        &sa().key,
        got.auth.covered,
        got.auth.authenticator
    ));
}

#[test]
fn refusals() {
    // No Wake-Up element.
    let mut m = notification().to_bytes();
    append_auth_extension(&mut m, MOBILE_HOME_AUTH, &sa());
    assert_eq!(
        parse_wake_up(&m, DEFAULT_ORG_ID),
        Err(WakeUpError::NotAWakeUp)
    );
    // Another organization's wake-up is not ours.
    let m = build_wake_up(&notification(), 9, WakeUpReason::Revoked, &sa()).expect("valid");
    assert_eq!(
        parse_wake_up(&m, DEFAULT_ORG_ID),
        Err(WakeUpError::NotAWakeUp)
    );
    // No authenticator.
    let mut m = notification().to_bytes();
    SidElement::WakeUp(WakeUpReason::Revoked)
        .append_to(DEFAULT_ORG_ID, &mut m)
        .expect("valid");
    assert_eq!(
        parse_wake_up(&m, DEFAULT_ORG_ID),
        Err(WakeUpError::Unauthenticated)
    );
    // A registration request is not a notification.
    let mut r = notification().to_bytes();
    r[0] = 1;
    assert_eq!(
        parse_wake_up(&r, DEFAULT_ORG_ID),
        Err(WakeUpError::Wire(WireError::WrongType {
            expected: 22,
            got: 1
        }))
    );
    // An ack must be type 23, authenticated, and framed right to the end.
    let ack = GenericNotificationAckRepr::answering(
        &notification(),
        NotificationDirection::MobileNodeToHomeAgent,
        ACK_CODE_SUCCESS,
    );
    assert_eq!(
        parse_wake_up_ack(&ack.to_bytes()),
        Err(WakeUpError::Unauthenticated)
    );
    let mut cut = build_wake_up_ack(&ack, &sa());
    cut.push(0x86);
    assert!(matches!(parse_wake_up_ack(&cut), Err(WakeUpError::Wire(_))));
    let wake = build_wake_up(
        &notification(),
        DEFAULT_ORG_ID,
        WakeUpReason::Revoked,
        &sa(),
    )
    .expect("valid");
    assert!(matches!(
        parse_wake_up_ack(&wake),
        Err(WakeUpError::Wire(WireError::WrongType {
            expected: 23,
            got: 22
        }))
    ));
}
