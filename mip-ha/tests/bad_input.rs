//! Bad input from the network: whatever arrives, the home agent never panics, counts
//! what it dropped, and keeps serving valid mobile nodes.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use mip_core::wire::{ext_type, Extension, ReplyCode};
use mip_ha::DiscardReason;
use proptest::prelude::*;

fn accepted_after(ha: &mut mip_ha::HomeAgent, secs: u64) -> bool {
    while ha.poll_transmit().is_some() {}
    let bytes = signed(&repr(t(secs), COA1, 300), &[], &mn_sa());
    ha.handle_datagram(t(secs), from_mn(COA1), &bytes);
    reply(ha, &mn_sa()).1.code == ReplyCode::Accepted
}

#[test]
fn truncated_overlong_and_broken_lengths_are_counted_as_malformed() {
    let mut ha = ha();
    let good = signed(&repr(t(0), COA1, 300), &[], &mn_sa());
    let mut cases: Vec<Vec<u8>> = Vec::new();
    // Truncated inside the fixed part and inside the authentication extension.
    cases.push(good[..10].to_vec());
    cases.push(good[..good.len() - 3].to_vec());
    // A zero-length extension of a type that needs content (the NAI, before the auth).
    let mut zero = repr(t(0), COA1, 300).to_bytes();
    zero.extend_from_slice(&[ext_type::MOBILE_HOME_AUTH, 0]);
    cases.push(zero);
    // A length that points past the end.
    let mut past = repr(t(0), COA1, 300).to_bytes();
    past.extend_from_slice(&[ext_type::NAI, 200, b'a', b'b']);
    cases.push(past);
    // A critical vendor extension whose 16-bit length points past the end.
    let mut cvse = repr(t(0), COA1, 300).to_bytes();
    cvse.extend_from_slice(&[ext_type::CVSE, 0, 0x10, 0x00, 0, 0, 0x7e, 0xd9]);
    cases.push(cvse);
    for case in &cases {
        ha.handle_datagram(t(0), from_mn(COA1), case);
        assert!(ha.poll_transmit().is_none(), "no reply to a malformed request");
    }
    assert_eq!(ha.stats().discarded(DiscardReason::Malformed), cases.len() as u64);
    assert!(ha.bindings(t(0)).is_empty());
    assert!(accepted_after(&mut ha, 1));
}

#[test]
fn over_long_request_with_trailing_skippable_extensions_is_still_processed() {
    // 8 KiB of skippable extensions after the authenticator: authenticated, accepted.
    let mut ha = ha();
    let mut bytes = signed(&repr(t(0), COA1, 300), &[], &mn_sa());
    while bytes.len() < 8192 {
        Extension::Unknown { ext_type: 250, data: &[0x55; 200] }.append_to(&mut bytes).unwrap();
    }
    ha.handle_datagram(t(0), from_mn(COA1), &bytes);
    assert_eq!(reply(&mut ha, &mn_sa()).1.code, ReplyCode::Accepted);
}

#[test]
fn replies_and_other_message_types_sent_to_the_home_agent_are_dropped() {
    let mut ha = ha();
    for first in [0u8, 2, 3, 9, 22, 255] {
        ha.handle_datagram(t(0), from_mn(COA1), &[first; 40]);
    }
    ha.handle_datagram(t(0), from_mn(COA1), &[]);
    assert!(ha.poll_transmit().is_none());
    assert_eq!(ha.stats().discarded(DiscardReason::NotARequest), 7);
}

#[test]
fn every_shared_capture_payload_is_handled_without_panic() {
    // Registration messages written by other implementations (no authentication
    // extension: a conformant home agent must refuse them, 3.8.2.1 a).
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/mip-captures");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        assert!(std::env::var_os("CI").is_none(), "shared captures missing under CI: {dir:?}");
        return;
    };
    let mut ha = ha();
    let mut fed = 0;
    for entry in entries.flatten() {
        let bytes = std::fs::read(entry.path()).unwrap_or_default();
        // Feed every window of the capture file: a crude but thorough corpus.
        for start in (0..bytes.len()).step_by(7) {
            let end = (start + 90).min(bytes.len());
            ha.handle_datagram(t(0), from_mn(COA1), &bytes[start..end]);
            fed += 1;
        }
    }
    assert!(fed > 100);
    assert!(ha.bindings(t(0)).is_empty());
    assert!(accepted_after(&mut ha, 1));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_datagrams_never_panic_nor_create_bindings(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut ha = ha();
        ha.handle_datagram(t(0), from_mn(COA1), &bytes);
        prop_assert!(ha.bindings(t(0)).is_empty());
        prop_assert_eq!(ha.stats().datagrams, 1);
    }

    #[test]
    fn mutated_valid_requests_never_panic_and_valid_nodes_are_still_served(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut ha = ha();
        let mut bytes = signed(&repr(t(0), COA1, 300), &[Extension::Nai(NAI.as_bytes())], &mn_sa());
        for (pos, value) in edits {
            let n = bytes.len();
            bytes[pos % n] = value;
        }
        let n = bytes.len();
        bytes.truncate(cut % (n + 1));
        ha.handle_datagram(t(0), from_mn(COA1), &bytes);
        prop_assert!(accepted_after(&mut ha, 1));
    }
}
