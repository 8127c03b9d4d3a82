//! Field-by-field comparison of a registration message as tshark decoded it with the same
//! bytes read by `mip_core::wire`, and authenticators recomputed over the bytes tshark
//! says they cover.

use mip_core::auth::{compute_authenticator, SecurityAssociation};
use mip_core::wire::{
    ext_type, Extension, ExtensionItem, ExtensionIter, RegistrationReply, RegistrationReplyRepr,
    RegistrationRequest, RegistrationRequestRepr, REPLY_FIXED_LEN, REQUEST_FIXED_LEN,
};

use crate::common::View;

/// Registration Request flag bits and the tshark field for each, high bit first. tshark
/// 4.0 still names bit 2 "Van Jacobson" (`mip.v`, RFC 3344); RFC 5944 made it the
/// reserved `r`.
pub const REQUEST_FLAG_FIELDS: [(u8, &str); 8] = [
    (0x80, "mip.s"),
    (0x40, "mip.b"),
    (0x20, "mip.d"),
    (0x10, "mip.m"),
    (0x08, "mip.g"),
    (0x04, "mip.v"),
    (0x02, "mip.t"),
    (0x01, "mip.x"),
];

/// Hex as tshark prints bytes (`de:ad:be:ef`), or plain hex.
pub fn hex_bytes(text: &str) -> Vec<u8> {
    let plain: String = text.chars().filter(|c| *c != ':').collect();
    hex::decode(&plain).unwrap_or_else(|e| panic!("not hex: {text:?}: {e}"))
}

/// Checks the fixed part of a Registration Request and returns it as our parser reads it.
/// Also checks that the bytes tshark took for the message are exactly `payload`.
pub fn request(v: &View<'_>, payload: &[u8]) -> RegistrationRequestRepr {
    let packet = RegistrationRequest::new_checked(payload)
        .unwrap_or_else(|e| panic!("{}: our parser: {e}", v.what));
    let r = RegistrationRequestRepr::parse(&packet)
        .unwrap_or_else(|e| panic!("{}: our parser: {e}", v.what));
    let w = &v.what;
    assert_eq!(v.raw("mip"), payload, "{w}: message bytes");
    assert_eq!(v.u64("mip.type"), 1, "{w}: type");
    assert_eq!(v.u64("mip.flags"), u64::from(r.flags.bits()), "{w}: flags");
    for (bit, field) in REQUEST_FLAG_FIELDS {
        assert_eq!(v.flag(field), r.flags.contains(bit), "{w}: {field}");
    }
    assert_eq!(v.u64("mip.life"), u64::from(r.lifetime), "{w}: lifetime");
    assert_eq!(v.ip("mip.homeaddr"), r.home_address, "{w}: home address");
    assert_eq!(v.ip("mip.haaddr"), r.home_agent, "{w}: home agent");
    assert_eq!(v.ip("mip.coa"), r.care_of_address, "{w}: care-of address");
    assert_eq!(v.ident(), r.identification, "{w}: identification");
    assert!(!v.packet.has("mip.code"), "{w}: a request has no code");
    extensions(v, payload, REQUEST_FIXED_LEN);
    r
}

/// Checks the fixed part of a Registration Reply and returns it as our parser reads it.
pub fn reply(v: &View<'_>, payload: &[u8]) -> RegistrationReplyRepr {
    let packet = RegistrationReply::new_checked(payload)
        .unwrap_or_else(|e| panic!("{}: our parser: {e}", v.what));
    let r = RegistrationReplyRepr::parse(&packet)
        .unwrap_or_else(|e| panic!("{}: our parser: {e}", v.what));
    let w = &v.what;
    assert_eq!(v.raw("mip"), payload, "{w}: message bytes");
    assert_eq!(v.u64("mip.type"), 3, "{w}: type");
    assert_eq!(v.u64("mip.code"), u64::from(u8::from(r.code)), "{w}: code");
    assert_eq!(v.u64("mip.life"), u64::from(r.lifetime), "{w}: lifetime");
    assert_eq!(v.ip("mip.homeaddr"), r.home_address, "{w}: home address");
    assert_eq!(v.ip("mip.haaddr"), r.home_agent, "{w}: home agent");
    assert_eq!(v.ident(), r.identification, "{w}: identification");
    assert!(
        !v.packet.has("mip.coa"),
        "{w}: a reply has no care-of address"
    );
    extensions(v, payload, REPLY_FIXED_LEN);
    r
}

/// The value of an extension's Length field: 16 bits after a 4-byte header for the long
/// form (CVSE), 8 bits after a 2-byte header otherwise.
fn length_field(item: &ExtensionItem<'_>) -> usize {
    let header = if item.ext.ext_type() == ext_type::CVSE {
        4
    } else {
        2
    };
    item.len - header
}

/// Our extensions, in order, against tshark's: type, length, and each kind's own fields
/// (matched by occurrence: the n-th SPI tshark shows belongs to the n-th auth extension).
pub fn extensions<'p>(v: &View<'_>, payload: &'p [u8], fixed_len: usize) -> Vec<ExtensionItem<'p>> {
    let items: Vec<ExtensionItem<'_>> = ExtensionIter::new(payload, fixed_len)
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{}: our extension parser: {e}", v.what));
    let w = &v.what;
    let types: Vec<u64> = items.iter().map(|i| u64::from(i.ext.ext_type())).collect();
    assert_eq!(v.all_u64("mip.ext.type"), types, "{w}: extension types");
    let lens: Vec<u64> = items.iter().map(|i| length_field(i) as u64).collect();
    assert_eq!(v.all_u64("mip.ext.len"), lens, "{w}: extension lengths");

    let mut spis = Vec::new();
    let mut auths = Vec::new();
    let mut nais = Vec::new();
    let mut cvse = Vec::new();
    let mut nvse = Vec::new();
    let mut unknown = Vec::new();
    for item in &items {
        match item.ext {
            Extension::MobileHomeAuth(a)
            | Extension::MobileForeignAuth(a)
            | Extension::ForeignHomeAuth(a) => {
                spis.push(u64::from(a.spi));
                auths.push(a.authenticator.to_vec());
            }
            Extension::Nai(n) => nais.push(String::from_utf8_lossy(n).into_owned()),
            Extension::CriticalVendor(x) => cvse.push(x),
            Extension::NormalVendor(x) => nvse.push(x),
            Extension::Unknown { data, .. } => unknown.push(data.to_vec()),
        }
    }
    assert_eq!(v.all_u64("mip.auth.spi"), spis, "{w}: SPIs");
    assert_eq!(bytes_of(v, "mip.auth.auth"), auths, "{w}: authenticators");
    assert_eq!(v.all_str("mip.nai"), nais, "{w}: NAIs");
    let vendor = |kind: &str, list: &[mip_core::wire::VendorExtension<'_>]| {
        let ids: Vec<u64> = list.iter().map(|x| u64::from(x.org_id)).collect();
        let types: Vec<u64> = list.iter().map(|x| u64::from(x.vendor_type)).collect();
        let values: Vec<Vec<u8>> = list.iter().map(|x| x.value.to_vec()).collect();
        assert_eq!(
            v.all_u64(&format!("mip.ext.{kind}.vendor_id")),
            ids,
            "{w}: {kind} vendor ids"
        );
        assert_eq!(
            v.all_u64(&format!("mip.ext.{kind}.vendor_type")),
            types,
            "{w}: {kind} types"
        );
        assert_eq!(
            bytes_of(v, &format!("mip.ext.{kind}.vendor_value")),
            values,
            "{w}: {kind} values"
        );
        let reserved = v.all_u64(&format!("mip.ext.{kind}.reserved"));
        assert_eq!(reserved, vec![0; list.len()], "{w}: {kind} reserved");
    };
    vendor("cvse", &cvse);
    vendor("nvse", &nvse);
    assert_eq!(
        bytes_of(v, "mip.extension"),
        unknown,
        "{w}: unknown extension data"
    );
    items
}

/// Every value of a bytes field, in packet order (tshark shows an empty one as "").
pub fn bytes_of(v: &View<'_>, field: &str) -> Vec<Vec<u8>> {
    v.all_str(field).into_iter().map(hex_bytes).collect()
}

/// Recomputes every authentication extension's authenticator over the bytes it covers
/// (RFC 5944 3.5.1: the message up to and including the SPI), locating each extension
/// from tshark's own types and lengths, and compares it with what tshark shows. `keys`
/// gives the association for each auth extension type present.
pub fn authenticators(v: &View<'_>, fixed_len: usize, keys: &[(u8, &SecurityAssociation)]) {
    let w = &v.what;
    let message = v.raw("mip");
    let types = v.all_u64("mip.ext.type");
    let lens = v.all_u64("mip.ext.len");
    let shown = bytes_of(v, "mip.auth.auth");
    let spis = v.all_u64("mip.auth.spi");
    assert_eq!(types.len(), lens.len(), "{w}: one length per extension");
    let mut offset = fixed_len;
    let mut nth_auth = 0;
    for (&t, &len) in types.iter().zip(&lens) {
        let t = u8::try_from(t).unwrap_or_else(|_| panic!("{w}: type {t}"));
        let header = if t == ext_type::CVSE { 4 } else { 2 };
        if matches!(
            t,
            ext_type::MOBILE_HOME_AUTH
                | ext_type::MOBILE_FOREIGN_AUTH
                | ext_type::FOREIGN_HOME_AUTH
        ) {
            let sa = keys
                .iter()
                .find(|(kt, _)| *kt == t)
                .map(|(_, sa)| *sa)
                .unwrap_or_else(|| panic!("{w}: no key given for extension type {t}"));
            let covered = message
                .get(..offset + 6)
                .unwrap_or_else(|| panic!("{w}: extension {t} at {offset} past the end"));
            let expected = compute_authenticator(sa.algorithm, &sa.key, covered);
            assert_eq!(
                spis.get(nth_auth).copied(),
                Some(u64::from(sa.spi)),
                "{w}: SPI of type {t}"
            );
            assert_eq!(
                shown.get(nth_auth).map(Vec::as_slice),
                Some(&expected[..]),
                "{w}: authenticator of type {t} over bytes 0..{}",
                offset + 6
            );
            nth_auth += 1;
        }
        offset += header + len as usize;
    }
    assert_eq!(
        offset,
        message.len(),
        "{w}: extensions end with the message"
    );
    assert_eq!(
        nth_auth,
        spis.len(),
        "{w}: every SPI belongs to an auth extension"
    );
}
