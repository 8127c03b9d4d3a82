//! Generic Notification and its Acknowledgement tested four ways against bytes laid out by
//! hand from RFC 6098 4.1 / 4.2 (Wireshark 4.0 does not dissect types 22 and 23, so there
//! is no third-party decoding to compare with).

use super::*;
use crate::wire::{AuthExtension, Extension, ExtensionItem, VendorExtension};

/// A wake-up as the SID Agent 198.18.0.1 sends it to the Transferring Node 198.18.0.10
/// whose transfer to 198.19.1.10 ended: MD 0, then a CVSE (org 32473, vendor type 8,
/// value 00 00) and a Mobile-Home Authentication Extension (SPI 256, authenticator 00..0f).
#[rustfmt::skip]
const NOTIFICATION: [u8; 58] = [
    0x16, 0x00, 0x00, 0x00,                         // type 22, MD 0, reserved
    0xc6, 0x12, 0x00, 0x0a,                         // home address
    0xc6, 0x12, 0x00, 0x01,                         // home agent address
    0xc6, 0x13, 0x01, 0x0a,                         // care-of address
    0x6b, 0x2e, 0xc9, 0x80, 0x00, 0x00, 0x00, 0x2a, // identification
    0x26, 0x00, 0x00, 0x08, 0x00, 0x00, 0x7e, 0xd9, 0x00, 0x08, 0x00, 0x00, // CVSE
    0x20, 0x14, 0x00, 0x00, 0x01, 0x00,             // MHAE header, SPI
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
];

/// The Transferring Node's acknowledgement of it: MD 2, code 0, same addresses and
/// Identification, its own Mobile-Home Authentication Extension.
#[rustfmt::skip]
const ACK: [u8; 46] = [
    0x17, 0x02, 0x00, 0x00,                         // type 23, MD 2, code 0, reserved
    0xc6, 0x12, 0x00, 0x0a,
    0xc6, 0x12, 0x00, 0x01,
    0xc6, 0x13, 0x01, 0x0a,
    0x6b, 0x2e, 0xc9, 0x80, 0x00, 0x00, 0x00, 0x2a,
    0x20, 0x14, 0x00, 0x00, 0x01, 0x00,
    0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff,
];

const HOME: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const AGENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const TARGET: Ipv4Addr = Ipv4Addr::new(198, 19, 1, 10);
const ID: u64 = 0x6b2e_c980_0000_002a;

fn notification_repr() -> GenericNotificationRepr {
    GenericNotificationRepr {
        direction: NotificationDirection::HomeAgentToMobileNode,
        home_address: HOME,
        home_agent: AGENT,
        care_of_address: TARGET,
        identification: ID,
    }
}

fn ack_repr() -> GenericNotificationAckRepr {
    GenericNotificationAckRepr::answering(
        &notification_repr(),
        NotificationDirection::MobileNodeToHomeAgent,
        ACK_CODE_SUCCESS,
    )
}

#[test]
fn notification_deconstruct() {
    let p = GenericNotification::new_checked(&NOTIFICATION[..]).expect("valid length");
    assert_eq!(p.msg_type(), NOTIFICATION_TYPE);
    assert_eq!(p.direction(), NotificationDirection::HomeAgentToMobileNode);
    assert_eq!(p.reserved(), 0);
    assert_eq!(p.home_address(), HOME);
    assert_eq!(p.home_agent(), AGENT);
    assert_eq!(p.care_of_address(), TARGET);
    assert_eq!(p.identification(), ID);
    let items: Vec<ExtensionItem<'_>> = p
        .extensions()
        .collect::<Result<_>>()
        .expect("valid extensions");
    let authenticator: Vec<u8> = (0..16).collect();
    assert_eq!(
        items,
        vec![
            ExtensionItem {
                offset: 24,
                len: 12,
                ext: Extension::CriticalVendor(VendorExtension {
                    org_id: 32473,
                    vendor_type: 8,
                    value: &[0, 0],
                }),
            },
            ExtensionItem {
                offset: 36,
                len: 22,
                ext: Extension::MobileHomeAuth(AuthExtension {
                    spi: 256,
                    authenticator: &authenticator,
                }),
            },
        ]
    );
}

#[test]
fn notification_construct() {
    let mut p = GenericNotification::new_unchecked([0xeeu8; 24]);
    p.set_msg_type(NOTIFICATION_TYPE);
    p.set_direction(NotificationDirection::HomeAgentToMobileNode);
    p.set_reserved(0);
    p.set_home_address(HOME);
    p.set_home_agent(AGENT);
    p.set_care_of_address(TARGET);
    p.set_identification(ID);
    assert_eq!(&p.into_inner()[..], &NOTIFICATION[..24]);
}

#[test]
fn notification_parse() {
    let p = GenericNotification::new_checked(&NOTIFICATION[..]).expect("valid length");
    assert_eq!(GenericNotificationRepr::parse(&p), Ok(notification_repr()));
}

#[test]
fn notification_emit() {
    let repr = notification_repr();
    assert_eq!(repr.buffer_len(), NOTIFICATION_FIXED_LEN);
    let mut m = repr.to_bytes();
    let cvse = Extension::CriticalVendor(VendorExtension {
        org_id: 32473,
        vendor_type: 8,
        value: &[0, 0],
    });
    cvse.append_to(&mut m).expect("fits");
    let authenticator: Vec<u8> = (0..16).collect();
    Extension::MobileHomeAuth(AuthExtension {
        spi: 256,
        authenticator: &authenticator,
    })
    .append_to(&mut m)
    .expect("fits");
    assert_eq!(m, NOTIFICATION);
}

#[test]
fn ack_deconstruct() {
    let p = GenericNotificationAck::new_checked(&ACK[..]).expect("valid length");
    assert_eq!(p.msg_type(), NOTIFICATION_ACK_TYPE);
    assert_eq!(p.direction(), NotificationDirection::MobileNodeToHomeAgent);
    assert_eq!(p.code(), ACK_CODE_SUCCESS);
    assert_eq!(p.reserved(), 0);
    assert_eq!(p.home_address(), HOME);
    assert_eq!(p.home_agent(), AGENT);
    assert_eq!(p.care_of_address(), TARGET);
    assert_eq!(p.identification(), ID);
    let exts: Vec<_> = p.extensions().collect();
    assert_eq!(exts.len(), 1);
    assert!(matches!(
        exts.first(),
        Some(Ok(ExtensionItem {
            offset: 24,
            len: 22,
            ext: Extension::MobileHomeAuth(AuthExtension { spi: 256, .. })
        }))
    ));
}

#[test]
fn ack_construct() {
    let mut p = GenericNotificationAck::new_unchecked([0xeeu8; 24]);
    p.set_msg_type(NOTIFICATION_ACK_TYPE);
    p.set_direction(NotificationDirection::MobileNodeToHomeAgent);
    p.set_code(ACK_CODE_SUCCESS);
    p.set_reserved(0);
    p.set_home_address(HOME);
    p.set_home_agent(AGENT);
    p.set_care_of_address(TARGET);
    p.set_identification(ID);
    assert_eq!(&p.into_inner()[..], &ACK[..24]);
}

#[test]
fn ack_parse() {
    let p = GenericNotificationAck::new_checked(&ACK[..]).expect("valid length");
    assert_eq!(GenericNotificationAckRepr::parse(&p), Ok(ack_repr()));
}

#[test]
fn ack_emit() {
    let repr = ack_repr();
    assert_eq!(repr.buffer_len(), NOTIFICATION_ACK_FIXED_LEN);
    let mut m = repr.to_bytes();
    m.extend_from_slice(&ACK[24..]);
    assert_eq!(m, ACK);
}

#[test]
fn wrong_types_are_refused() {
    let n = GenericNotification::new_checked(&ACK[..]).expect("valid length");
    assert_eq!(
        GenericNotificationRepr::parse(&n),
        Err(WireError::WrongType {
            expected: 22,
            got: 23
        })
    );
    let a = GenericNotificationAck::new_checked(&NOTIFICATION[..]).expect("valid length");
    assert_eq!(
        GenericNotificationAckRepr::parse(&a),
        Err(WireError::WrongType {
            expected: 23,
            got: 22
        })
    );
}

#[test]
fn reserved_bits_are_ignored_and_emitted_as_zero() {
    let mut bytes = NOTIFICATION;
    bytes[2] = 0x80;
    bytes[3] = 0x01;
    let p = GenericNotification::new_checked(&bytes[..]).expect("valid length");
    assert_eq!(p.reserved(), 0x8001);
    let repr = GenericNotificationRepr::parse(&p).expect("valid");
    assert_eq!(repr, notification_repr());
    assert_eq!(repr.to_bytes()[2..4], [0, 0]);

    let mut ack = ACK;
    ack[3] = 0x55;
    let p = GenericNotificationAck::new_checked(&ack[..]).expect("valid length");
    let repr = GenericNotificationAckRepr::parse(&p).expect("valid");
    assert_eq!(repr, ack_repr());
    assert_eq!(repr.to_bytes()[3], 0);
}

#[test]
fn unknown_direction_round_trips() {
    for v in 0..=255u8 {
        assert_eq!(u8::from(NotificationDirection::from(v)), v);
    }
    assert_eq!(
        NotificationDirection::from(9),
        NotificationDirection::Unknown(9)
    );
}

#[test]
fn truncated_fixed_part() {
    for len in 0..24 {
        assert_eq!(
            GenericNotification::new_checked(&NOTIFICATION[..len]).err(),
            Some(WireError::Truncated {
                need: 24,
                have: len
            })
        );
        assert_eq!(
            GenericNotificationAck::new_checked(&ACK[..len]).err(),
            Some(WireError::Truncated {
                need: 24,
                have: len
            })
        );
        // The unchecked getters read zeros instead of panicking.
        let p = GenericNotificationAck::new_unchecked(&ACK[..len]);
        let _ = (p.code(), p.identification(), p.care_of_address());
        assert!(GenericNotificationAckRepr::parse(&p).is_err());
    }
}

#[test]
fn every_prefix_parses_or_errors() {
    for len in 0..=NOTIFICATION.len() {
        let Ok(p) = GenericNotification::new_checked(&NOTIFICATION[..len]) else {
            continue;
        };
        assert!(GenericNotificationRepr::parse(&p).is_ok());
        let exts: Vec<_> = p.extensions().collect();
        // A cut extension shows up as exactly one error, last.
        let errors = exts.iter().filter(|e| e.is_err()).count();
        assert!(errors <= 1);
        if errors == 1 {
            assert!(exts.last().is_some_and(|e| e.is_err()));
        }
    }
}
