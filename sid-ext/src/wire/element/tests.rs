//! Each SID element tested four ways against one CVSE laid out by hand from
//! `RFC-NOTES.md, "SID formats"` (organization 32473): deconstruct (mip-core's extension iterator
//! finds the CVSE and its raw value), construct (a raw CVSE with that value emits the same
//! bytes), parse (the value reads as the typed element) and emit (the typed element writes
//! the same bytes). `conformance/tests/tshark_sid.rs` has Wireshark read these too.

use super::*;
use mip_core::wire::{ExtensionItem, ExtensionIter};

const ORG: u32 = 32473;

#[rustfmt::skip]
const TARGET: [u8; 14] = [
    0x26, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x7e, 0xd9, 0x00, 0x01, // CVSE, length 10, org, type 1
    0xc6, 0x13, 0x01, 0x0a,                                     // 198.19.1.10
];

#[rustfmt::skip]
const SESSION_KEY: [u8; 36] = [
    0x26, 0x00, 0x00, 0x20, 0x00, 0x00, 0x7e, 0xd9, 0x00, 0x02, // length 32, type 2
    0x01, 0x00,                                                 // AES key wrap, reserved
    0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, // 24-byte wrapped key
    0xac, 0xad, 0xae, 0xaf, 0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7,
];
#[rustfmt::skip]
const WRAPPED: [u8; 24] = [
    0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab,
    0xac, 0xad, 0xae, 0xaf, 0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7,
];

#[rustfmt::skip]
const SESSION_SPI: [u8; 14] = [
    0x26, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x7e, 0xd9, 0x00, 0x03, // type 3
    0x00, 0x00, 0x10, 0x00,                                     // SPI 4096
];

#[rustfmt::skip]
const FLAGS: [u8; 12] = [
    0x26, 0x00, 0x00, 0x08, 0x00, 0x00, 0x7e, 0xd9, 0x00, 0x04, // length 8, type 4
    0xc0, 0x00,                                                 // F and T, reserved
];

#[rustfmt::skip]
const LINK_LAYER: [u8; 18] = [
    0x26, 0x00, 0x00, 0x0e, 0x00, 0x00, 0x7e, 0xd9, 0x00, 0x05, // length 14, type 5
    0x00, 0x01,                                                 // Ethernet
    0x02, 0x00, 0xc6, 0x12, 0x00, 0x0a,                         // 02:00:c6:12:00:0a
];
const MAC: [u8; 6] = [0x02, 0x00, 0xc6, 0x12, 0x00, 0x0a];

#[rustfmt::skip]
const INTERIM: [u8; 14] = [
    0x26, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x7e, 0xd9, 0x00, 0x06, // type 6
    0xc6, 0x12, 0x00, 0x63,                                     // 198.18.0.99
];

#[rustfmt::skip]
const STOP: [u8; 12] = [
    0x26, 0x00, 0x00, 0x08, 0x00, 0x00, 0x7e, 0xd9, 0x00, 0x07, // type 7
    0x02, 0x00,                                                 // link-layer address changed
];

#[rustfmt::skip]
const WAKE_UP: [u8; 12] = [
    0x26, 0x00, 0x00, 0x08, 0x00, 0x00, 0x7e, 0xd9, 0x00, 0x08, // type 8
    0x01, 0x00,                                                 // ended by lifetime 0
];

#[rustfmt::skip]
const TRANSFERRING_NODE: [u8; 14] = [
    0x26, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x7e, 0xd9, 0x00, 0x09, // type 9
    0xc6, 0x12, 0x00, 0x0a,                                     // 198.18.0.10
];

fn deconstruct(bytes: &[u8], element: SidElement<'_>) {
    let items: Vec<ExtensionItem<'_>> = ExtensionIter::new(bytes, 0)
        .collect::<Result<_, _>>()
        .expect("one valid extension");
    let [item] = items.as_slice() else {
        panic!("expected one extension, got {items:?}");
    };
    assert_eq!(item.offset, 0);
    assert_eq!(item.len, bytes.len());
    let Extension::CriticalVendor(v) = item.ext else {
        panic!("not a CVSE: {:?}", item.ext);
    };
    assert_eq!(v.org_id, ORG);
    assert_eq!(v.vendor_type, element.vendor_type());
    assert_eq!(Some(v.value), bytes.get(CVSE_HEADER_LEN..));
}

fn construct(bytes: &[u8], element: SidElement<'_>) {
    let value = bytes.get(CVSE_HEADER_LEN..).expect("value");
    let mut out = vec![0xeeu8; bytes.len()];
    let n = Extension::CriticalVendor(VendorExtension {
        org_id: ORG,
        vendor_type: element.vendor_type(),
        value,
    })
    .emit(&mut out)
    .expect("fits");
    assert_eq!(n, bytes.len());
    assert_eq!(out, bytes);
}

fn parse(bytes: &[u8], element: SidElement<'_>) {
    let value = bytes.get(CVSE_HEADER_LEN..).expect("value");
    assert_eq!(SidElement::parse(element.vendor_type(), value), Ok(element));
    let v = VendorExtension {
        org_id: ORG,
        vendor_type: element.vendor_type(),
        value,
    };
    assert_eq!(SidElement::from_vendor(ORG, &v), Some(Ok(element)));
    assert_eq!(SidElement::from_vendor(ORG + 1, &v), None);
}

fn emit(bytes: &[u8], element: SidElement<'_>) {
    assert_eq!(element.buffer_len(), bytes.len());
    assert_eq!(element.value_len(), bytes.len() - CVSE_HEADER_LEN);
    let mut out = vec![0xeeu8; bytes.len()];
    assert_eq!(element.emit(ORG, &mut out), Ok(bytes.len()));
    assert_eq!(out, bytes);
    let mut appended = vec![0x55];
    element.append_to(ORG, &mut appended).expect("valid");
    assert_eq!(appended.get(1..), Some(bytes));
    assert_eq!(
        element.value_bytes().ok().as_deref(),
        bytes.get(CVSE_HEADER_LEN..)
    );
}

macro_rules! four_ways {
    ($name:ident, $bytes:expr, $element:expr) => {
        mod $name {
            use super::*;
            #[test]
            fn deconstruct() {
                super::deconstruct(&$bytes, $element);
            }
            #[test]
            fn construct() {
                super::construct(&$bytes, $element);
            }
            #[test]
            fn parse() {
                super::parse(&$bytes, $element);
            }
            #[test]
            fn emit() {
                super::emit(&$bytes, $element);
            }
        }
    };
}

four_ways!(
    target_address,
    TARGET,
    SidElement::TargetAddress(Ipv4Addr::new(198, 19, 1, 10))
);
four_ways!(
    encrypted_session_key,
    SESSION_KEY,
    SidElement::SessionKey(EncryptedSessionKey {
        algorithm: SessionKeyAlgorithm::AesKeyWrapPadded,
        data: &WRAPPED,
    })
);
four_ways!(session_spi, SESSION_SPI, SidElement::SessionSpi(4096));
four_ways!(
    transfer_flags,
    FLAGS,
    SidElement::TransferFlags(TransferFlags::new(true, true))
);
four_ways!(
    link_layer_address,
    LINK_LAYER,
    SidElement::LinkLayerAddress(LinkLayerAddress::ethernet(&MAC))
);
four_ways!(
    interim_address,
    INTERIM,
    SidElement::InterimAddress(Ipv4Addr::new(198, 18, 0, 99))
);
four_ways!(
    stop_transfer,
    STOP,
    SidElement::StopTransfer(StopReason::LinkLayerAddressChanged)
);
four_ways!(
    wake_up,
    WAKE_UP,
    SidElement::WakeUp(WakeUpReason::EndedByZeroLifetime)
);
four_ways!(
    transferring_node_address,
    TRANSFERRING_NODE,
    SidElement::TransferringNode(Ipv4Addr::new(198, 18, 0, 10))
);

fn malformed(vendor_type: u16, value: &[u8]) -> bool {
    matches!(
        SidElement::parse(vendor_type, value),
        Err(ElementError::Malformed(_))
    )
}

#[test]
fn fixed_size_values_must_have_their_size() {
    for (vt, size) in [
        (1u16, 4usize),
        (3, 4),
        (4, 2),
        (6, 4),
        (7, 2),
        (8, 2),
        (9, 4),
    ] {
        for len in 0..=8 {
            let mut value = vec![0x11u8; len];
            if vt == 3 {
                // A usable SPI, so that only the size is wrong.
                value = vec![0x00; len];
                if let Some(b) = value.get_mut(2) {
                    *b = 0x10;
                }
            }
            assert_eq!(
                malformed(vt, &value),
                len != size,
                "vendor type {vt}, {len} bytes"
            );
        }
    }
}

#[test]
fn addresses_must_be_unicast() {
    for vt in [
        vendor_type::TARGET_ADDRESS,
        vendor_type::INTERIM_ADDRESS,
        vendor_type::TRANSFERRING_NODE_ADDRESS,
    ] {
        assert!(malformed(vt, &[0, 0, 0, 0]));
        assert!(malformed(vt, &[255, 255, 255, 255]));
        assert!(malformed(vt, &[224, 0, 0, 1]));
        assert!(!malformed(vt, &[127, 0, 0, 1]), "loopback is a lab address");
        assert!(!malformed(vt, &[198, 18, 0, 10]));
    }
}

#[test]
fn reserved_spis_are_refused() {
    assert!(malformed(vendor_type::SESSION_SPI, &[0, 0, 0, 0]));
    assert!(malformed(vendor_type::SESSION_SPI, &[0, 0, 0, 255]));
    assert_eq!(
        SidElement::parse(vendor_type::SESSION_SPI, &[0, 0, 1, 0]),
        Ok(SidElement::SessionSpi(256))
    );
    assert!(SidElement::SessionSpi(255).value_bytes().is_err());
}

#[test]
fn session_key_sizes() {
    let kw = |len: usize| {
        let mut v = vec![1u8, 0];
        v.resize(2 + len, 0xab);
        v
    };
    assert!(malformed(vendor_type::ENCRYPTED_SESSION_KEY, &[]));
    assert!(malformed(vendor_type::ENCRYPTED_SESSION_KEY, &[1, 0]));
    assert!(malformed(vendor_type::ENCRYPTED_SESSION_KEY, &kw(16)));
    assert!(malformed(vendor_type::ENCRYPTED_SESSION_KEY, &kw(25)));
    assert!(!malformed(vendor_type::ENCRYPTED_SESSION_KEY, &kw(24)));
    assert!(!malformed(vendor_type::ENCRYPTED_SESSION_KEY, &kw(40)));

    let mut hpke = vec![2u8, 0];
    hpke.resize(2 + MIN_HPKE_LEN - 1, 0x5a);
    assert!(malformed(vendor_type::ENCRYPTED_SESSION_KEY, &hpke));
    hpke.push(0x5b);
    let Ok(SidElement::SessionKey(k)) =
        SidElement::parse(vendor_type::ENCRYPTED_SESSION_KEY, &hpke)
    else {
        panic!("a 64-byte HPKE output is valid");
    };
    assert_eq!(k.algorithm, SessionKeyAlgorithm::HpkeX25519Aes128Gcm);
    let (enc, ct) = k.hpke_parts().expect("HPKE");
    assert_eq!((enc.len(), ct.len()), (32, 32));
    assert_eq!(ct.last(), Some(&0x5b));

    // An algorithm we do not know is framed all the same; its data must not be empty.
    assert_eq!(
        SidElement::parse(vendor_type::ENCRYPTED_SESSION_KEY, &[9, 0, 7]),
        Ok(SidElement::SessionKey(EncryptedSessionKey {
            algorithm: SessionKeyAlgorithm::Unknown(9),
            data: &[7],
        }))
    );
    for v in 0..=255u8 {
        assert_eq!(u8::from(SessionKeyAlgorithm::from(v)), v);
    }
    let wrapped = EncryptedSessionKey {
        algorithm: SessionKeyAlgorithm::AesKeyWrapPadded,
        data: &WRAPPED,
    };
    assert_eq!(wrapped.hpke_parts(), None);
}

#[test]
fn link_layer_address_rules() {
    let lla = |hw: u16, addr: &[u8]| {
        let mut v = hw.to_be_bytes().to_vec();
        v.extend_from_slice(addr);
        v
    };
    let vt = vendor_type::LINK_LAYER_ADDRESS;
    assert!(malformed(vt, &[]));
    assert!(malformed(vt, &[0]));
    assert!(malformed(vt, &lla(1, &[2, 0, 0, 0, 0])));
    assert!(malformed(vt, &lla(1, &[2, 0, 0, 0, 0, 1, 0])));
    assert!(malformed(vt, &lla(1, &[0; 6])), "all zero");
    assert!(malformed(vt, &lla(1, &[0xff; 6])), "broadcast");
    assert!(
        malformed(vt, &lla(1, &[0x01, 0, 0x5e, 0, 0, 1])),
        "multicast"
    );
    assert!(
        malformed(vt, &lla(0, &[2, 0, 0, 0, 0, 1])),
        "hardware type 0"
    );
    assert!(malformed(vt, &lla(6, &[])));
    assert!(malformed(vt, &lla(6, &[1; 256])));
    let long = lla(32, &[9; 20]);
    let Ok(SidElement::LinkLayerAddress(other)) = SidElement::parse(vt, &long) else {
        panic!("InfiniBand-sized address of another hardware type is valid");
    };
    assert_eq!(other.hardware_type, 32);
    assert_eq!(other.address.len(), 20);
    assert_eq!(other.as_ethernet(), None);
    assert_eq!(LinkLayerAddress::ethernet(&MAC).as_ethernet(), Some(MAC));
}

#[test]
fn reserved_bytes_are_ignored_on_receipt_and_sent_as_zero() {
    for (vt, value, element) in [
        (
            vendor_type::TRANSFER_FLAGS,
            [0x80u8, 0xff],
            SidElement::TransferFlags(TransferFlags(0x80)),
        ),
        (
            vendor_type::STOP_TRANSFER,
            [0x01, 0xff],
            SidElement::StopTransfer(StopReason::SessionEnded),
        ),
        (
            vendor_type::WAKE_UP,
            [0x03, 0xff],
            SidElement::WakeUp(WakeUpReason::Revoked),
        ),
    ] {
        assert_eq!(SidElement::parse(vt, &value), Ok(element));
        assert_eq!(element.value_bytes().ok(), Some(vec![value[0], 0]));
    }
    let mut key = SESSION_KEY;
    key[11] = 0x77;
    assert_eq!(
        SidElement::parse(vendor_type::ENCRYPTED_SESSION_KEY, &key[10..]),
        SidElement::parse(vendor_type::ENCRYPTED_SESSION_KEY, &SESSION_KEY[10..])
    );
}

#[test]
fn transfer_flags_bits() {
    assert_eq!(TransferFlags::new(false, false).bits(), 0);
    assert_eq!(TransferFlags::new(true, false).bits(), 0x80);
    assert_eq!(TransferFlags::new(false, true).bits(), 0x40);
    let f = TransferFlags(0x3f | 0x40);
    assert!(!f.further_transfer());
    assert!(f.reverse_tunnel());
    // Reserved bits are kept, so a received element round-trips exactly.
    assert_eq!(
        SidElement::TransferFlags(f).value_bytes().ok(),
        Some(vec![0x7f, 0])
    );
}

#[test]
fn reasons_round_trip_every_value() {
    for v in 0..=255u8 {
        assert_eq!(u8::from(StopReason::from(v)), v);
        assert_eq!(u8::from(WakeUpReason::from(v)), v);
    }
    assert_eq!(StopReason::from(4), StopReason::MissedWakeUp);
    assert_eq!(StopReason::from(5), StopReason::Unknown(5));
    assert_eq!(WakeUpReason::from(2), WakeUpReason::StopTransferDemand);
    assert_eq!(WakeUpReason::from(4), WakeUpReason::Unknown(4));
}

#[test]
fn unknown_vendor_types() {
    for vt in [0u16, 10, 11, 0x8000, u16::MAX] {
        assert_eq!(
            SidElement::parse(vt, &[0, 0]),
            Err(ElementError::UnknownVendorType(vt))
        );
    }
}

#[test]
fn invalid_elements_are_not_written() {
    let mut out = vec![1, 2, 3];
    let bad = SidElement::TargetAddress(Ipv4Addr::UNSPECIFIED);
    assert!(matches!(
        bad.append_to(ORG, &mut out),
        Err(WireError::Malformed(_))
    ));
    assert_eq!(out, [1, 2, 3]);
    let mut small = [0u8; 13];
    assert_eq!(
        SidElement::TargetAddress(Ipv4Addr::new(198, 18, 0, 1)).emit(ORG, &mut small),
        Err(WireError::Truncated { need: 14, have: 13 })
    );
    assert_eq!(
        SidElement::WakeUp(WakeUpReason::Revoked).emit_value(&mut [0u8; 1]),
        Err(WireError::Truncated { need: 2, have: 1 })
    );
    let huge = vec![0u8; MAX_VALUE_LEN];
    let too_long = SidElement::SessionKey(EncryptedSessionKey {
        algorithm: SessionKeyAlgorithm::AesKeyWrapPadded,
        data: &huge,
    });
    assert!(too_long.value_bytes().is_err());
}

#[test]
fn the_organization_is_configurable() {
    let element = SidElement::WakeUp(WakeUpReason::BindingExpired);
    let mut out = Vec::new();
    element.append_to(0x0102_0304, &mut out).expect("valid");
    assert_eq!(
        out,
        [0x26, 0, 0, 8, 0x01, 0x02, 0x03, 0x04, 0x00, 0x08, 0x00, 0x00]
    );
}
