//! Extensions tested against a hand-laid array whose decoding Wireshark 4.0 agrees with
//! (NAI, CVSE and NVSE with enterprise number 32473 of RFC 5612, delivery style, MHAE).

use super::*;

/// Extensions after a 24-byte request fixed part (zeroed here; offsets count it).
const FIXED: usize = 24;
#[rustfmt::skip]
const EXTENSIONS: [u8; 67] = [
    // NAI "mn1@example.org"
    0x83, 0x0f, b'm', b'n', b'1', b'@', b'e', b'x', b'a', b'm', b'p', b'l', b'e', b'.', b'o', b'r', b'g',
    // CVSE: type, reserved, length 10, org 32473, vendor type 1, value cafebabe
    0x26, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x7e, 0xd9, 0x00, 0x01, 0xca, 0xfe, 0xba, 0xbe,
    // NVSE: type, length 10, reserved, org 32473, vendor type 2, value beef
    0x86, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x7e, 0xd9, 0x00, 0x02, 0xbe, 0xef,
    // Encapsulating Delivery Style (RFC 3024), length 0
    0x82, 0x00,
    // MHAE: SPI 256, 16-byte authenticator 00..0f
    0x20, 0x14, 0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09,
    0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
];
#[rustfmt::skip]
const AUTHENTICATOR: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

fn message() -> Vec<u8> {
    let mut m = vec![0u8; FIXED];
    m.extend_from_slice(&EXTENSIONS);
    m
}

fn expected() -> Vec<ExtensionItem<'static>> {
    vec![
        ExtensionItem {
            offset: 24,
            len: 17,
            ext: Extension::Nai(b"mn1@example.org"),
        },
        ExtensionItem {
            offset: 41,
            len: 14,
            ext: Extension::CriticalVendor(VendorExtension {
                org_id: 32473,
                vendor_type: 1,
                value: &[0xca, 0xfe, 0xba, 0xbe],
            }),
        },
        ExtensionItem {
            offset: 55,
            len: 12,
            ext: Extension::NormalVendor(VendorExtension {
                org_id: 32473,
                vendor_type: 2,
                value: &[0xbe, 0xef],
            }),
        },
        ExtensionItem {
            offset: 67,
            len: 2,
            ext: Extension::Unknown {
                ext_type: ext_type::ENCAPSULATING_DELIVERY_STYLE,
                data: &[],
            },
        },
        ExtensionItem {
            offset: 69,
            len: 22,
            ext: Extension::MobileHomeAuth(AuthExtension {
                spi: 256,
                authenticator: &AUTHENTICATOR,
            }),
        },
    ]
}

#[test]
fn deconstruct() {
    let m = message();
    let items: Vec<_> = ExtensionIter::new(&m, FIXED)
        .collect::<Result<_>>()
        .expect("valid");
    assert_eq!(items, expected());
    let types: Vec<u8> = items.iter().map(|i| i.ext.ext_type()).collect();
    assert_eq!(types, [131, 38, 134, 130, 32]);
    for item in &items {
        assert_eq!(item.len, item.ext.buffer_len());
    }
}

#[test]
fn construct_with_emit() {
    let mut buf = [0xeeu8; 67];
    let mut at = 0;
    for item in expected() {
        let n = item
            .ext
            .emit(buf.get_mut(at..).expect("room"))
            .expect("fits");
        assert_eq!(n, item.len);
        at += n;
    }
    assert_eq!(at, EXTENSIONS.len());
    assert_eq!(buf, EXTENSIONS);
}

#[test]
fn append_builds_the_message() {
    let mut m = vec![0u8; FIXED];
    for item in expected() {
        item.ext.append_to(&mut m).expect("fits");
    }
    assert_eq!(m, message());
}

#[test]
fn auth_and_foreign_types() {
    let auth = AuthExtension {
        spi: 0x0102_0304,
        authenticator: &[9, 9],
    };
    for (ext, t) in [
        (Extension::MobileHomeAuth(auth), 32u8),
        (Extension::MobileForeignAuth(auth), 33),
        (Extension::ForeignHomeAuth(auth), 34),
    ] {
        let mut m = Vec::new();
        ext.append_to(&mut m).expect("fits");
        assert_eq!(m, [t, 6, 1, 2, 3, 4, 9, 9]);
        let items: Vec<_> = ExtensionIter::new(&m, 0).collect();
        assert_eq!(
            items,
            vec![Ok(ExtensionItem {
                offset: 0,
                len: 8,
                ext
            })]
        );
    }
}

#[test]
fn skippable_ranges() {
    assert!(!is_skippable(0));
    assert!(!is_skippable(ext_type::MOBILE_HOME_AUTH));
    assert!(!is_skippable(ext_type::CVSE));
    assert!(!is_skippable(127));
    assert!(is_skippable(128));
    assert!(is_skippable(ext_type::NAI));
    assert!(is_skippable(ext_type::NVSE));
    assert!(is_skippable(255));
}

/// The first error the iterator reports over `m[start..]`, if any.
fn first_error(m: &[u8], start: usize) -> Option<WireError> {
    ExtensionIter::new(m, start).find_map(|r| r.err())
}

#[test]
fn zero_length_where_data_is_needed() {
    for t in [32u8, 33, 34, 131] {
        assert_eq!(
            first_error(&[t, 0], 0),
            Some(WireError::BadExtensionLength {
                ext_type: t,
                offset: 0,
                len: 0
            })
        );
    }
    assert_eq!(
        first_error(&[134, 0], 0),
        Some(WireError::BadExtensionLength {
            ext_type: 134,
            offset: 0,
            len: 0
        })
    );
    assert_eq!(
        first_error(&[38, 0, 0, 0], 0),
        Some(WireError::BadExtensionLength {
            ext_type: 38,
            offset: 0,
            len: 0
        })
    );
    // Zero length is fine for a type whose data may be empty.
    assert_eq!(first_error(&[130, 0, 200, 0], 0), None);
}

#[test]
fn auth_shorter_than_spi() {
    let m = [32u8, 3, 0, 0, 1];
    assert_eq!(
        first_error(&m, 0),
        Some(WireError::BadExtensionLength {
            ext_type: 32,
            offset: 0,
            len: 3
        })
    );
    // Exactly an SPI and no authenticator still frames correctly; verification will fail.
    let m = [33u8, 4, 0, 0, 0, 5];
    let items: Vec<_> = ExtensionIter::new(&m, 0).collect();
    assert_eq!(
        items,
        vec![Ok(ExtensionItem {
            offset: 0,
            len: 6,
            ext: Extension::MobileForeignAuth(AuthExtension {
                spi: 5,
                authenticator: &[]
            })
        })]
    );
}

#[test]
fn vendor_shorter_than_header() {
    let nvse = [134u8, 7, 0, 0, 0, 0, 0x7e, 0xd9, 0];
    assert_eq!(
        first_error(&nvse, 0),
        Some(WireError::BadExtensionLength {
            ext_type: 134,
            offset: 0,
            len: 7
        })
    );
    let cvse = [38u8, 0, 0, 5, 0, 0, 0x7e, 0xd9, 0];
    assert_eq!(
        first_error(&cvse, 0),
        Some(WireError::BadExtensionLength {
            ext_type: 38,
            offset: 0,
            len: 5
        })
    );
    // Header only, empty value: valid.
    let cvse = [38u8, 0, 0, 6, 0, 0, 0x7e, 0xd9, 0, 9];
    assert_eq!(first_error(&cvse, 0), None);
}

#[test]
fn length_past_the_end() {
    let mut m = message();
    // The MHAE at 69 claims one byte more than is left.
    m[70] = 21;
    let results: Vec<_> = ExtensionIter::new(&m, FIXED).collect();
    assert_eq!(results.len(), 5);
    assert!(results[..4].iter().all(|r| r.is_ok()));
    assert_eq!(
        results[4],
        Err(WireError::BadExtensionLength {
            ext_type: 32,
            offset: 69,
            len: 21
        })
    );
    // A CVSE whose 16-bit length runs far past the end.
    let cvse = [38u8, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        first_error(&cvse, 0),
        Some(WireError::BadExtensionLength {
            ext_type: 38,
            offset: 0,
            len: 0xffff
        })
    );
}

#[test]
fn fused_after_error() {
    // A bad first extension hides a good second one for good.
    let m = [32u8, 0, 131, 1, b'x'];
    let mut it = ExtensionIter::new(&m, 0);
    assert!(matches!(it.next(), Some(Err(_))));
    assert_eq!(it.next(), None);
    assert_eq!(it.next(), None);
}

#[test]
fn start_past_the_end() {
    let mut it = ExtensionIter::new(&[1u8, 2, 3], 5);
    assert_eq!(
        it.next(),
        Some(Err(WireError::Truncated { need: 5, have: 3 }))
    );
    assert_eq!(it.next(), None);
    assert_eq!(ExtensionIter::new(&[1u8, 2, 3], 3).next(), None);
}

#[test]
fn every_prefix_parses_or_errors() {
    let m = message();
    let boundaries = [24usize, 41, 55, 67, 69, 91];
    for n in FIXED..=m.len() {
        let results: Vec<_> = ExtensionIter::new(&m[..n], FIXED).collect();
        let errors = results.iter().filter(|r| r.is_err()).count();
        assert_eq!(errors == 0, boundaries.contains(&n), "prefix {n}");
        assert!(errors <= 1);
        assert!(results.iter().rev().skip(1).all(|r| r.is_ok()));
    }
}

#[test]
fn emit_refuses_data_too_long_for_its_length_field() {
    let big = vec![0u8; 70_000];
    let too_long = WireError::Malformed("extension data too long for its length field");
    let auth = |n: usize| {
        Extension::MobileHomeAuth(AuthExtension {
            spi: 1,
            authenticator: &big[..n],
        })
    };
    let nvse = |n: usize| {
        Extension::NormalVendor(VendorExtension {
            org_id: 1,
            vendor_type: 1,
            value: &big[..n],
        })
    };
    let cvse = |n: usize| {
        Extension::CriticalVendor(VendorExtension {
            org_id: 1,
            vendor_type: 1,
            value: &big[..n],
        })
    };
    let unknown = |n: usize| Extension::Unknown {
        ext_type: 200,
        data: &big[..n],
    };
    let cases: [(Extension<'_>, Extension<'_>); 5] = [
        (auth(251), auth(252)),
        (Extension::Nai(&big[..255]), Extension::Nai(&big[..256])),
        (nvse(247), nvse(248)),
        (cvse(65529), cvse(65530)),
        (unknown(255), unknown(256)),
    ];
    for (fits, too_big) in cases {
        let mut out = vec![1u8, 2];
        fits.append_to(&mut out).expect("largest that fits");
        assert_eq!(out.len(), 2 + fits.buffer_len());
        let back: Vec<_> = ExtensionIter::new(&out, 2).collect();
        assert_eq!(
            back,
            vec![Ok(ExtensionItem {
                offset: 2,
                len: fits.buffer_len(),
                ext: fits
            })]
        );
        let mut out = vec![1u8, 2];
        assert_eq!(too_big.append_to(&mut out), Err(too_long));
        assert_eq!(out, [1, 2], "left as it was");
        let mut buf = vec![0u8; too_big.buffer_len()];
        assert_eq!(too_big.emit(&mut buf), Err(too_long));
    }
}

#[test]
fn emit_refuses_what_would_not_read_back() {
    let mut buf = [0u8; 16];
    assert_eq!(
        Extension::Nai(&[]).emit(&mut buf),
        Err(WireError::Malformed("NAI extension must not be empty"))
    );
    for t in [32u8, 33, 34, 38, 131, 134] {
        assert_eq!(
            Extension::Unknown {
                ext_type: t,
                data: &[1, 2, 3, 4, 5, 6, 7, 8]
            }
            .emit(&mut buf),
            Err(WireError::Malformed(
                "unknown extension uses a known type number"
            ))
        );
    }
}

#[test]
fn emit_into_small_buffer() {
    let ext = Extension::Nai(b"mn1@example.org");
    let mut buf = [0u8; 16];
    assert_eq!(
        ext.emit(&mut buf),
        Err(WireError::Truncated { need: 17, have: 16 })
    );
}

#[test]
fn one_byte_padding_is_skipped_between_and_after_extensions() {
    // RFC 5944 1.9: type 0 has neither length nor data.
    let msg = [0u8, 0, 131, 2, b'a', b'b', 0, 200, 0, 0];
    let items: Vec<_> = ExtensionIter::new(&msg, 0).collect::<Result<Vec<_>>>().expect("valid");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].offset, 2);
    assert_eq!(items[0].ext, Extension::Nai(b"ab"));
    assert_eq!(items[1].offset, 7);
    assert_eq!(items[1].ext, Extension::Unknown { ext_type: 200, data: &[] });
}
