//! Property tests for `mip_core::wire`: whatever a Repr or extension can emit parses back to
//! the same value, and no parser panics on any bytes.

use std::net::Ipv4Addr;

use mip_core::wire::{
    icmp_checksum, AgentAdvertisementRepr, AgentFlags, AgentSolicitationRepr, AuthExtension,
    Extension, ExtensionItem, ExtensionIter, MobilityAgentExt, RegistrationFlags,
    RegistrationReply, RegistrationReplyRepr, RegistrationRequest, RegistrationRequestRepr,
    ReplyCode, VendorExtension, REPLY_FIXED_LEN, REQUEST_FIXED_LEN,
};
use proptest::collection::vec;
use proptest::prelude::*;

fn addr() -> impl Strategy<Value = Ipv4Addr> {
    any::<[u8; 4]>().prop_map(Ipv4Addr::from)
}

fn request_repr() -> impl Strategy<Value = RegistrationRequestRepr> {
    (
        any::<u8>(),
        any::<u16>(),
        addr(),
        addr(),
        addr(),
        any::<u64>(),
    )
        .prop_map(
            |(flags, lifetime, home_address, home_agent, care_of_address, identification)| {
                RegistrationRequestRepr {
                    flags: RegistrationFlags(flags),
                    lifetime,
                    home_address,
                    home_agent,
                    care_of_address,
                    identification,
                }
            },
        )
}

fn reply_repr() -> impl Strategy<Value = RegistrationReplyRepr> {
    (any::<u8>(), any::<u16>(), addr(), addr(), any::<u64>()).prop_map(
        |(code, lifetime, home_address, home_agent, identification)| RegistrationReplyRepr {
            code: ReplyCode::from(code),
            lifetime,
            home_address,
            home_agent,
            identification,
        },
    )
}

/// An extension that owns its data, so a strategy can produce it; `borrow` gives the
/// `Extension` view of it.
#[derive(Debug, Clone)]
enum OwnedExt {
    Auth {
        ext_type: u8,
        spi: u32,
        authenticator: Vec<u8>,
    },
    Nai(Vec<u8>),
    Cvse {
        org_id: u32,
        vendor_type: u16,
        value: Vec<u8>,
    },
    Nvse {
        org_id: u32,
        vendor_type: u16,
        value: Vec<u8>,
    },
    Unknown {
        ext_type: u8,
        data: Vec<u8>,
    },
}

impl OwnedExt {
    fn borrow(&self) -> Extension<'_> {
        match self {
            OwnedExt::Auth {
                ext_type,
                spi,
                authenticator,
            } => {
                let a = AuthExtension {
                    spi: *spi,
                    authenticator,
                };
                match ext_type {
                    32 => Extension::MobileHomeAuth(a),
                    33 => Extension::MobileForeignAuth(a),
                    _ => Extension::ForeignHomeAuth(a),
                }
            }
            OwnedExt::Nai(nai) => Extension::Nai(nai),
            OwnedExt::Cvse {
                org_id,
                vendor_type,
                value,
            } => Extension::CriticalVendor(VendorExtension {
                org_id: *org_id,
                vendor_type: *vendor_type,
                value,
            }),
            OwnedExt::Nvse {
                org_id,
                vendor_type,
                value,
            } => Extension::NormalVendor(VendorExtension {
                org_id: *org_id,
                vendor_type: *vendor_type,
                value,
            }),
            OwnedExt::Unknown { ext_type, data } => Extension::Unknown {
                ext_type: *ext_type,
                data,
            },
        }
    }
}

fn owned_ext() -> impl Strategy<Value = OwnedExt> {
    prop_oneof![
        (32u8..=34, any::<u32>(), vec(any::<u8>(), 0..=251)).prop_map(
            |(ext_type, spi, authenticator)| OwnedExt::Auth {
                ext_type,
                spi,
                authenticator
            }
        ),
        vec(any::<u8>(), 1..=255).prop_map(OwnedExt::Nai),
        (
            any::<u32>(),
            any::<u16>(),
            prop_oneof![vec(any::<u8>(), 0..=300), vec(any::<u8>(), 65_529..=65_529)]
        )
            .prop_map(|(org_id, vendor_type, value)| OwnedExt::Cvse {
                org_id,
                vendor_type,
                value
            }),
        (any::<u32>(), any::<u16>(), vec(any::<u8>(), 0..=247)).prop_map(
            |(org_id, vendor_type, value)| OwnedExt::Nvse {
                org_id,
                vendor_type,
                value
            }
        ),
        (
            any::<u8>().prop_filter("types with their own variant", |t| ![
                0, 32, 33, 34, 38, 131, 134
            ]
            .contains(t)),
            vec(any::<u8>(), 0..=255)
        )
            .prop_map(|(ext_type, data)| OwnedExt::Unknown { ext_type, data }),
    ]
}

fn advertisement_repr() -> impl Strategy<Value = AgentAdvertisementRepr> {
    (
        prop_oneof![Just(0u8), Just(16u8)],
        any::<u16>(),
        vec((addr(), any::<i32>()), 0..=12),
        (
            any::<u16>(),
            any::<u16>(),
            any::<u16>(),
            vec(addr(), 0..=62),
        ),
        any::<bool>(),
    )
        .prop_flat_map(|(code, lifetime, router_addresses, ma, with_prefixes)| {
            let n = router_addresses.len();
            let prefixes = vec(0u8..=32, n).prop_map(move |p| with_prefixes.then_some(p));
            (Just((code, lifetime, router_addresses, ma)), prefixes)
        })
        .prop_map(|((code, lifetime, router_addresses, ma), prefix_lengths)| {
            AgentAdvertisementRepr {
                code,
                lifetime,
                router_addresses,
                mobility: MobilityAgentExt {
                    sequence: ma.0,
                    registration_lifetime: ma.1,
                    flags: AgentFlags(ma.2),
                    care_of_addresses: ma.3,
                },
                prefix_lengths,
            }
        })
}

/// Runs every parser over `bytes`; they may fail but must not panic, and the extension
/// iterator must keep its promises.
fn exercise_parsers(bytes: &[u8], start: usize) {
    let _ =
        RegistrationRequest::new_checked(bytes).and_then(|p| RegistrationRequestRepr::parse(&p));
    let _ = RegistrationReplyRepr::parse(&RegistrationReply::new_unchecked(bytes));
    let _ = AgentAdvertisementRepr::parse(bytes);
    let _ = AgentSolicitationRepr::parse(bytes);
    for s in [start, REQUEST_FIXED_LEN, REPLY_FIXED_LEN] {
        check_iterator(bytes, s);
    }
    let _ = RegistrationRequest::new_unchecked(bytes)
        .extensions()
        .count();
    let _ = RegistrationReply::new_unchecked(bytes).extensions().count();
}

fn check_iterator(bytes: &[u8], start: usize) {
    let results: Vec<_> = ExtensionIter::new(bytes, start).collect();
    let mut at = start;
    for (i, r) in results.iter().enumerate() {
        match r {
            Ok(item) => {
                // One-byte padding (type 0) may sit between extensions.
                while at < item.offset && bytes.get(at) == Some(&0) {
                    at += 1;
                }
                assert_eq!(item.offset, at, "extensions are contiguous");
                assert!(item.len >= 2);
                assert_eq!(item.len, item.ext.buffer_len());
                at += item.len;
                assert!(at <= bytes.len());
            }
            Err(_) => assert_eq!(i + 1, results.len(), "an error is the last item"),
        }
    }
    if results.last().is_some_and(|r| r.is_ok()) || results.is_empty() {
        while at < bytes.len() && bytes.get(at) == Some(&0) {
            at += 1;
        }
        assert_eq!(at, bytes.len().max(start), "a clean walk ends at the end");
    }
}

proptest! {
    #[test]
    fn request_round_trips(repr in request_repr(), tail in vec(any::<u8>(), 0..8)) {
        let mut bytes = repr.to_bytes();
        prop_assert_eq!(bytes.len(), repr.buffer_len());
        bytes.extend_from_slice(&tail);
        let view = RegistrationRequest::new_checked(&bytes[..]).expect("long enough");
        prop_assert_eq!(RegistrationRequestRepr::parse(&view), Ok(repr));
        // Emitting into a view over a dirty buffer gives the same bytes.
        let mut dirty = RegistrationRequest::new_unchecked(vec![0xa5u8; REQUEST_FIXED_LEN]);
        repr.emit(&mut dirty);
        prop_assert_eq!(dirty.into_inner(), repr.to_bytes());
    }

    #[test]
    fn reply_round_trips(repr in reply_repr()) {
        let bytes = repr.to_bytes();
        prop_assert_eq!(bytes.len(), repr.buffer_len());
        let view = RegistrationReply::new_checked(&bytes[..]).expect("long enough");
        prop_assert_eq!(RegistrationReplyRepr::parse(&view), Ok(repr));
        let mut dirty = RegistrationReply::new_unchecked(vec![0xa5u8; REPLY_FIXED_LEN]);
        repr.emit(&mut dirty);
        prop_assert_eq!(dirty.into_inner(), bytes);
    }

    #[test]
    fn extension_round_trips(owned in owned_ext(), prefix in vec(any::<u8>(), 0..4)) {
        let ext = owned.borrow();
        let mut buf = prefix.clone();
        ext.append_to(&mut buf).expect("generated to fit");
        prop_assert_eq!(buf.len(), prefix.len() + ext.buffer_len());
        let items: Vec<_> = ExtensionIter::new(&buf, prefix.len()).collect();
        prop_assert_eq!(items, vec![Ok(ExtensionItem { offset: prefix.len(), len: ext.buffer_len(), ext })]);
        // emit into an exact-size slice writes the same bytes; one byte less is refused.
        let mut exact = vec![0u8; ext.buffer_len()];
        prop_assert_eq!(ext.emit(&mut exact), Ok(ext.buffer_len()));
        prop_assert_eq!(&exact[..], &buf[prefix.len()..]);
        let short = ext.buffer_len() - 1;
        prop_assert!(ext.emit(&mut exact[..short]).is_err());
    }

    #[test]
    fn message_with_extensions_round_trips(repr in request_repr(), owned in vec(owned_ext(), 0..6)) {
        let mut bytes = repr.to_bytes();
        for o in &owned {
            o.borrow().append_to(&mut bytes).expect("generated to fit");
        }
        let view = RegistrationRequest::new_checked(&bytes[..]).expect("long enough");
        prop_assert_eq!(RegistrationRequestRepr::parse(&view), Ok(repr));
        let parsed: Vec<Extension<'_>> = view
            .extensions()
            .map(|r| r.map(|item| item.ext))
            .collect::<Result<_, _>>()
            .expect("well formed");
        let expected: Vec<Extension<'_>> = owned.iter().map(OwnedExt::borrow).collect();
        prop_assert_eq!(parsed, expected);
    }

    #[test]
    fn advertisement_round_trips(repr in advertisement_repr()) {
        let mut buf = vec![0u8; repr.buffer_len()];
        prop_assert_eq!(repr.emit(&mut buf), Ok(repr.buffer_len()));
        prop_assert_eq!(buf.len() % 2, 0, "padded to an even length");
        prop_assert_eq!(icmp_checksum(&buf), 0);
        prop_assert_eq!(AgentAdvertisementRepr::parse(&buf), Ok(repr));
    }

    #[test]
    fn solicitation_round_trips(tail in vec(any::<u8>(), 0..4)) {
        let mut buf = vec![0u8; AgentSolicitationRepr.buffer_len()];
        AgentSolicitationRepr.emit(&mut buf).expect("fits");
        prop_assert_eq!(AgentSolicitationRepr::parse(&buf), Ok(AgentSolicitationRepr));
        // Trailing bytes of even length with a fixed-up checksum are ignored.
        buf.extend_from_slice(&tail);
        let _ = AgentSolicitationRepr::parse(&buf);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..400), start in 0usize..420) {
        exercise_parsers(&bytes, start);
    }

    #[test]
    fn arbitrary_icmp_with_valid_checksum_never_panics(
        ty in prop_oneof![Just(9u8), Just(10u8)],
        code in prop_oneof![Just(0u8), Just(16u8), any::<u8>()],
        num in 0u8..4,
        size in 0u8..4,
        mut bytes in vec(any::<u8>(), 0..120),
    ) {
        // Shape the header so parsing gets past the cheap checks.
        for (i, b) in [ty, code, 0, 0, num, size].into_iter().enumerate() {
            if let Some(slot) = bytes.get_mut(i) {
                *slot = b;
            }
        }
        if bytes.len() >= 4 {
            let sum = icmp_checksum(&bytes);
            bytes[2..4].copy_from_slice(&sum.to_be_bytes());
        }
        exercise_parsers(&bytes, 0);
    }

    #[test]
    fn arbitrary_extension_chains_never_panic(
        chunks in vec((any::<u8>(), any::<u8>(), vec(any::<u8>(), 0..40)), 0..8),
    ) {
        // Plausible type/length headers with random bodies: mostly valid, sometimes cut.
        let mut bytes = vec![0u8; REQUEST_FIXED_LEN];
        bytes[0] = 1;
        for (t, l, body) in chunks {
            bytes.push(t);
            bytes.push(l % 48);
            bytes.extend_from_slice(&body);
        }
        exercise_parsers(&bytes, REQUEST_FIXED_LEN);
        for n in 0..bytes.len() {
            check_iterator(&bytes[..n], REQUEST_FIXED_LEN.min(n));
        }
    }
}
