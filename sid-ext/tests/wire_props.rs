//! Property tests for `sid_ext::wire`: every valid element and every set of elements
//! written reads back the same, and no reader panics on any bytes.

use std::net::Ipv4Addr;

use mip_core::auth::{AuthAlgorithm, ReplayMethod, SecurityAssociation};
use mip_core::wire::notification::{GenericNotificationRepr, NotificationDirection};
use mip_core::wire::{
    ExtensionIter, RegistrationFlags, RegistrationRequestRepr, REQUEST_FIXED_LEN,
};
use proptest::collection::vec;
use proptest::prelude::*;
use sid_ext::wire::element::{
    ETHERNET_ADDRESS_LEN, KEY_WRAP_BLOCK, MIN_HPKE_LEN, MIN_KEY_WRAP_LEN,
};
use sid_ext::wire::wake_up::{build_wake_up, parse_wake_up, parse_wake_up_ack};
use sid_ext::wire::{
    EncryptedSessionKey, LinkLayerAddress, SessionKeyAlgorithm, SidElement, SidExtensions,
    StopReason, TransferFlags, WakeUpReason,
};

/// An element that owns its data, so a strategy can produce it.
#[derive(Debug, Clone)]
enum Owned {
    Target([u8; 4]),
    Key(u8, Vec<u8>),
    Spi(u32),
    Flags(u8),
    Lla(u16, Vec<u8>),
    Interim([u8; 4]),
    Stop(u8),
    WakeUp(u8),
    Tn([u8; 4]),
}

impl Owned {
    fn element(&self) -> SidElement<'_> {
        match self {
            Owned::Target(a) => SidElement::TargetAddress(Ipv4Addr::from(*a)),
            Owned::Key(alg, data) => SidElement::SessionKey(EncryptedSessionKey {
                algorithm: SessionKeyAlgorithm::from(*alg),
                data,
            }),
            Owned::Spi(s) => SidElement::SessionSpi(*s),
            Owned::Flags(f) => SidElement::TransferFlags(TransferFlags(*f)),
            Owned::Lla(hw, address) => SidElement::LinkLayerAddress(LinkLayerAddress {
                hardware_type: *hw,
                address,
            }),
            Owned::Interim(a) => SidElement::InterimAddress(Ipv4Addr::from(*a)),
            Owned::Stop(r) => SidElement::StopTransfer(StopReason::from(*r)),
            Owned::WakeUp(r) => SidElement::WakeUp(WakeUpReason::from(*r)),
            Owned::Tn(a) => SidElement::TransferringNode(Ipv4Addr::from(*a)),
        }
    }
}

/// A unicast address: first octet 1-223, not 255.255.255.255.
fn unicast() -> impl Strategy<Value = [u8; 4]> {
    (1u8..224, any::<[u8; 3]>()).prop_map(|(a, [b, c, d])| [a, b, c, d])
}

fn session_key() -> impl Strategy<Value = Owned> {
    prop_oneof![
        (MIN_KEY_WRAP_LEN / KEY_WRAP_BLOCK..12usize)
            .prop_flat_map(|blocks| vec(any::<u8>(), blocks * KEY_WRAP_BLOCK))
            .prop_map(|d| Owned::Key(1, d)),
        vec(any::<u8>(), MIN_HPKE_LEN..120).prop_map(|d| Owned::Key(2, d)),
        (3u8.., vec(any::<u8>(), 1..64)).prop_map(|(a, d)| Owned::Key(a, d)),
    ]
}

fn link_layer() -> impl Strategy<Value = Owned> {
    prop_oneof![
        any::<[u8; ETHERNET_ADDRESS_LEN]>()
            .prop_filter("unicast, not zero", |m| m[0] & 1 == 0
                && m.iter().any(|b| *b != 0))
            .prop_map(|m| Owned::Lla(1, m.to_vec())),
        (2u16.., vec(any::<u8>(), 1..=255)).prop_map(|(hw, a)| Owned::Lla(hw, a)),
    ]
}

fn owned() -> impl Strategy<Value = Owned> {
    prop_oneof![
        unicast().prop_map(Owned::Target),
        session_key(),
        (256u32..).prop_map(Owned::Spi),
        any::<u8>().prop_map(Owned::Flags),
        link_layer(),
        unicast().prop_map(Owned::Interim),
        any::<u8>().prop_map(Owned::Stop),
        any::<u8>().prop_map(Owned::WakeUp),
        unicast().prop_map(Owned::Tn),
    ]
}

fn request_fixed() -> Vec<u8> {
    RegistrationRequestRepr {
        flags: RegistrationFlags::default(),
        lifetime: 30,
        home_address: Ipv4Addr::new(198, 18, 0, 10),
        home_agent: Ipv4Addr::new(198, 18, 0, 1),
        care_of_address: Ipv4Addr::new(198, 19, 1, 10),
        identification: 1,
    }
    .to_bytes()
}

proptest! {
    #[test]
    fn element_round_trips(o in owned(), org in any::<u32>()) {
        let element = o.element();
        let mut m = Vec::new();
        element.append_to(org, &mut m).expect("valid elements emit");
        prop_assert_eq!(m.len(), element.buffer_len());
        let items: Vec<_> = ExtensionIter::new(&m, 0).collect();
        prop_assert_eq!(items.len(), 1);
        let item = items.into_iter().next().and_then(Result::ok).expect("one CVSE");
        let mip_core::wire::Extension::CriticalVendor(v) = item.ext else {
            panic!("not a CVSE");
        };
        prop_assert_eq!(SidElement::from_vendor(org, &v), Some(Ok(element)));
    }

    #[test]
    fn every_set_of_elements_round_trips(set in vec(owned(), 0..12), org in any::<u32>()) {
        let mut expected = SidExtensions::default();
        for (i, o) in set.iter().enumerate() {
            // Keep the first of each kind, as a sender would.
            let _ = expected.insert(o.element(), i);
        }
        let mut m = request_fixed();
        expected.append_to(org, &mut m).expect("valid");
        prop_assert_eq!(m.len(), REQUEST_FIXED_LEN + expected.buffer_len());
        prop_assert_eq!(SidExtensions::from_message(&m, REQUEST_FIXED_LEN, org), Ok(expected));
    }

    #[test]
    fn parsed_values_emit_and_parse_back(vendor_type in 0u16..12, value in vec(any::<u8>(), 0..80)) {
        if let Ok(element) = SidElement::parse(vendor_type, &value) {
            let bytes = element.value_bytes().expect("what parsed emits");
            prop_assert_eq!(bytes.len(), value.len());
            prop_assert_eq!(SidElement::parse(vendor_type, &bytes), Ok(element));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..200), start in 0usize..40, org in prop_oneof![Just(32473u32), any::<u32>()]) {
        let _ = SidExtensions::from_message(&bytes, start, org);
        let _ = parse_wake_up(&bytes, org);
        let _ = parse_wake_up_ack(&bytes);
        for vt in 0..12u16 {
            let _ = SidElement::parse(vt, &bytes);
        }
    }

    #[test]
    fn mutated_wake_ups_never_panic(flips in vec((0usize..80, any::<u8>()), 1..6), cut in 0usize..80) {
        let sa = SecurityAssociation {
            spi: 256,
            algorithm: AuthAlgorithm::HmacMd5,
            key: b"0123456789abcdef".to_vec(),
            replay: ReplayMethod::Timestamp,
        };
        let repr = GenericNotificationRepr {
            direction: NotificationDirection::HomeAgentToMobileNode,
            home_address: Ipv4Addr::new(198, 18, 0, 10),
            home_agent: Ipv4Addr::new(198, 18, 0, 1),
            care_of_address: Ipv4Addr::new(198, 19, 1, 10),
            identification: 7,
        };
        let mut m = build_wake_up(&repr, 32473, WakeUpReason::BindingExpired, &sa).expect("valid");
        for (at, b) in flips {
            if let Some(x) = m.get_mut(at) {
                *x ^= b;
            }
        }
        m.truncate(cut.min(m.len()));
        let _ = parse_wake_up(&m, 32473);
        let _ = parse_wake_up_ack(&m);
        let _ = SidExtensions::from_message(&m, 24, 32473);
    }
}
