//! Collecting SID elements from whole Registration Requests.

use super::*;
use crate::wire::element::{SessionKeyAlgorithm, CVSE_HEADER_LEN};
use crate::wire::DEFAULT_ORG_ID;
use mip_core::auth::{append_auth_extension, AuthAlgorithm, ReplayMethod, SecurityAssociation};
use mip_core::wire::{
    ext_type, RegistrationFlags, RegistrationRequest, RegistrationRequestRepr, VendorExtension,
    REQUEST_FIXED_LEN,
};

const ORG: u32 = DEFAULT_ORG_ID;
const TN: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const AGENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const TARGET: Ipv4Addr = Ipv4Addr::new(198, 19, 1, 10);
const MAC: [u8; 6] = [0x02, 0x00, 0xc6, 0x12, 0x00, 0x0a];
const WRAPPED: [u8; 24] = [0xa5; 24];

fn sa() -> SecurityAssociation {
    SecurityAssociation {
        spi: 256,
        algorithm: AuthAlgorithm::HmacMd5,
        key: b"0123456789abcdef".to_vec(),
        replay: ReplayMethod::Timestamp,
    }
}

fn fixed() -> Vec<u8> {
    RegistrationRequestRepr {
        flags: RegistrationFlags::default(),
        lifetime: 60,
        home_address: TN,
        home_agent: AGENT,
        care_of_address: TARGET,
        identification: 0x6b2e_c980_0000_0001,
    }
    .to_bytes()
}

/// What the Transferring Node asks of the Agent, every element it can send.
fn transfer() -> SidExtensions<'static> {
    SidExtensions {
        target_address: Some(TARGET),
        session_key: Some(EncryptedSessionKey {
            algorithm: SessionKeyAlgorithm::AesKeyWrapPadded,
            data: &WRAPPED,
        }),
        session_spi: Some(0x1000),
        transfer_flags: Some(TransferFlags::new(true, false)),
        link_layer_address: Some(LinkLayerAddress::ethernet(&MAC)),
        interim_address: Some(Ipv4Addr::new(198, 18, 0, 99)),
        stop_transfer: None,
        wake_up: None,
        transferring_node: Some(TN),
    }
}

fn raw_cvse(out: &mut Vec<u8>, org_id: u32, vendor_type: u16, value: &[u8]) {
    Extension::CriticalVendor(VendorExtension {
        org_id,
        vendor_type,
        value,
    })
    .append_to(out)
    .expect("fits");
}

#[test]
fn a_whole_transfer_request() {
    let mut m = fixed();
    transfer().append_to(ORG, &mut m).expect("valid");
    append_auth_extension(&mut m, ext_type::MOBILE_HOME_AUTH, &sa());
    let request = RegistrationRequest::new_checked(&m[..]).expect("length");
    let got = SidExtensions::collect(ORG, request.extensions()).expect("valid");
    assert_eq!(got, transfer());
    assert_eq!(
        SidExtensions::from_message(&m, REQUEST_FIXED_LEN, ORG),
        Ok(got)
    );
    assert_eq!(got.elements().len(), 7);
    assert_eq!(
        got.buffer_len(),
        m.len() - REQUEST_FIXED_LEN - 22,
        "everything but the fixed part and the 22-byte MHAE"
    );
    let types: Vec<u16> = got.elements().iter().map(SidElement::vendor_type).collect();
    assert_eq!(types, [1, 2, 3, 4, 5, 6, 9]);
}

#[test]
fn a_plain_request_has_no_sid_element() {
    let mut m = fixed();
    Extension::Nai(b"tn@sidmip.example")
        .append_to(&mut m)
        .expect("fits");
    append_auth_extension(&mut m, ext_type::MOBILE_HOME_AUTH, &sa());
    let got = SidExtensions::from_message(&m, REQUEST_FIXED_LEN, ORG).expect("valid");
    assert!(got.is_empty());
    assert!(got.elements().is_empty());
    assert!(!transfer().is_empty());
}

#[test]
fn other_organizations_and_normal_extensions_are_left_to_the_caller() {
    let mut m = fixed();
    raw_cvse(&mut m, ORG + 1, 1, &[0xde, 0xad]);
    Extension::NormalVendor(VendorExtension {
        org_id: ORG,
        vendor_type: 1,
        value: &[0xbe, 0xef],
    })
    .append_to(&mut m)
    .expect("fits");
    SidElement::StopTransfer(StopReason::Override)
        .append_to(ORG, &mut m)
        .expect("valid");
    append_auth_extension(&mut m, ext_type::MOBILE_HOME_AUTH, &sa());
    let got = SidExtensions::from_message(&m, REQUEST_FIXED_LEN, ORG).expect("valid");
    assert_eq!(
        got,
        SidExtensions {
            stop_transfer: Some(StopReason::Override),
            ..SidExtensions::default()
        }
    );
    // With another organization configured, the same message is read the other way.
    assert_eq!(
        SidExtensions::from_message(&m, REQUEST_FIXED_LEN, ORG + 1),
        Err(SidError::Malformed {
            vendor_type: 1,
            offset: 24,
            reason: "Target Address is 4 bytes",
        })
    );
}

#[test]
fn duplicates_are_poorly_formed() {
    let mut m = fixed();
    SidElement::TargetAddress(TARGET)
        .append_to(ORG, &mut m)
        .expect("valid");
    let second = m.len();
    SidElement::TargetAddress(TARGET)
        .append_to(ORG, &mut m)
        .expect("valid");
    let err = SidExtensions::from_message(&m, REQUEST_FIXED_LEN, ORG).expect_err("duplicate");
    assert_eq!(
        err,
        SidError::Duplicate {
            vendor_type: 1,
            offset: second
        }
    );
    assert_eq!(err.reply_code(), ReplyCode::PoorlyFormedRequest);
    assert_eq!(
        err.to_string(),
        "SID element target_address (type 1) repeated at offset 38"
    );
}

#[test]
fn malformed_values_are_poorly_formed() {
    let mut m = fixed();
    SidElement::TargetAddress(TARGET)
        .append_to(ORG, &mut m)
        .expect("valid");
    let at = m.len();
    raw_cvse(&mut m, ORG, vendor_type::SESSION_SPI, &[0, 0, 0, 7]);
    let err = SidExtensions::from_message(&m, REQUEST_FIXED_LEN, ORG).expect_err("bad SPI");
    assert_eq!(
        err,
        SidError::Malformed {
            vendor_type: 3,
            offset: at,
            reason: "session SPI is in the reserved range 0-255",
        }
    );
    assert_eq!(err.reply_code(), ReplyCode::PoorlyFormedRequest);
}

#[test]
fn unknown_vendor_types_are_not_understood() {
    let mut m = fixed();
    raw_cvse(&mut m, ORG, 10, &[]);
    let err = SidExtensions::from_message(&m, REQUEST_FIXED_LEN, ORG).expect_err("unknown");
    assert_eq!(
        err,
        SidError::UnknownVendorType {
            vendor_type: 10,
            offset: 24
        }
    );
    assert_eq!(err.reply_code(), ReplyCode::UnsupportedVendorId);
    assert_eq!(u8::from(err.reply_code()), 140);
}

#[test]
fn elements_after_the_authenticator_are_not_trusted() {
    let mut m = fixed();
    SidElement::TargetAddress(TARGET)
        .append_to(ORG, &mut m)
        .expect("valid");
    append_auth_extension(&mut m, ext_type::MOBILE_HOME_AUTH, &sa());
    let at = m.len();
    SidElement::TransferFlags(TransferFlags::new(true, true))
        .append_to(ORG, &mut m)
        .expect("valid");
    assert_eq!(
        SidExtensions::from_message(&m, REQUEST_FIXED_LEN, ORG),
        Err(SidError::Unauthenticated {
            vendor_type: 4,
            offset: at
        })
    );
    // Another organization's CVSE there (a foreign agent's) is the caller's business.
    let mut m2 = m.get(..at).expect("prefix").to_vec();
    raw_cvse(&mut m2, ORG + 1, 4, &[1]);
    assert!(SidExtensions::from_message(&m2, REQUEST_FIXED_LEN, ORG).is_ok());
}

#[test]
fn broken_framing_is_a_wire_error() {
    let mut m = fixed();
    SidElement::TargetAddress(TARGET)
        .append_to(ORG, &mut m)
        .expect("valid");
    m.truncate(m.len() - 1);
    let err = SidExtensions::from_message(&m, REQUEST_FIXED_LEN, ORG).expect_err("cut");
    assert!(matches!(
        err,
        SidError::Wire(WireError::BadExtensionLength { ext_type: 38, .. })
    ));
    assert_eq!(err.reply_code(), ReplyCode::PoorlyFormedRequest);
}

#[test]
fn the_first_error_wins() {
    let mut m = fixed();
    raw_cvse(&mut m, ORG, 10, &[]);
    raw_cvse(&mut m, ORG, vendor_type::TARGET_ADDRESS, &[1]);
    assert!(matches!(
        SidExtensions::from_message(&m, REQUEST_FIXED_LEN, ORG),
        Err(SidError::UnknownVendorType { .. })
    ));
}

#[test]
fn append_to_leaves_the_buffer_on_error() {
    let mut bad = transfer();
    bad.session_spi = Some(1);
    let mut out = vec![9u8; 3];
    assert!(bad.append_to(ORG, &mut out).is_err());
    assert_eq!(out, [9, 9, 9]);
}

#[test]
fn insert_reports_duplicates() {
    let mut s = SidExtensions::default();
    s.insert(SidElement::WakeUp(WakeUpReason::Revoked), 40)
        .expect("first");
    assert_eq!(
        s.insert(SidElement::WakeUp(WakeUpReason::BindingExpired), 52),
        Err(SidError::Duplicate {
            vendor_type: 8,
            offset: 52
        })
    );
    assert_eq!(s.wake_up, Some(WakeUpReason::Revoked));
    assert_eq!(CVSE_HEADER_LEN, 10);
}
