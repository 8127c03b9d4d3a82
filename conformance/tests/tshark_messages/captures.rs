//! The shared third-party captures (/work/shared/mip-captures, see its SOURCES.md): tshark
//! decodes them cleanly, and our parsers read every registration message, advertisement
//! and solicitation in them exactly as tshark does, field by field.

use std::path::{Path, PathBuf};

use conformance::pcap::{self, IP_PROTO_ICMP};
use mip_core::wire::{
    AgentAdvertisementRepr, WireError, ICMP_ROUTER_ADVERTISEMENT, ICMP_ROUTER_SOLICITATION,
    REPLY_TYPE, REQUEST_TYPE,
};

use crate::check;
use crate::common::*;
use crate::discovery;

fn captures_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/mip-captures");
    assert!(
        dir.is_dir(),
        "shared captures not found at {}",
        dir.display()
    );
    dir
}

/// Messages found in one file: requests, replies, advertisements (with the mobility
/// extension), solicitations.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    requests: usize,
    replies: usize,
    advertisements: usize,
    solicitations: usize,
}

fn check_file(name: &str) -> Counts {
    let path = captures_dir().join(name);
    let file = pcap::read_pcap_file(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let packets = tshark()
        .decode(&path, &[] as &[&str])
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        packets.len(),
        file.frames.len(),
        "{name}: one decoded packet per frame"
    );
    assert_clean(name, &packets, |i| format!("frame {}", i + 1));
    let view = |i: usize| View {
        packet: &packets[i],
        what: format!("{name} #{}", i + 1),
    };
    let mut counts = Counts::default();

    let datagrams = file.udp_datagrams(434);
    for (i, d) in &datagrams {
        let v = view(*i);
        match d.payload.first().copied() {
            Some(REQUEST_TYPE) => {
                check::request(&v, d.payload);
                counts.requests += 1;
            }
            Some(REPLY_TYPE) => {
                check::reply(&v, d.payload);
                counts.replies += 1;
            }
            other => panic!("{}: registration port message of type {other:?}", v.what),
        }
    }
    // Nothing tshark calls Mobile IP was missed.
    let mip: Vec<usize> = (0..packets.len())
        .filter(|i| packets[*i].has("mip.type"))
        .collect();
    let ours: Vec<usize> = datagrams.iter().map(|(i, _)| *i).collect();
    assert_eq!(ours, mip, "{name}: registration messages found");

    for (i, ip) in file.ipv4_packets(IP_PROTO_ICMP) {
        let v = view(i);
        match ip.payload.first().copied() {
            Some(ICMP_ROUTER_ADVERTISEMENT) => match AgentAdvertisementRepr::parse(ip.payload) {
                Ok(a) => {
                    discovery::advertisement(&v, ip.payload, &a);
                    counts.advertisements += 1;
                }
                // A plain router advertisement is not an agent advertisement.
                Err(WireError::Malformed(_)) if !v.packet.has("icmp.mip.type") => {}
                Err(e) => panic!("{}: our parser: {e}", v.what),
            },
            Some(ICMP_ROUTER_SOLICITATION) => {
                discovery::solicitation_fields(&v, ip.payload);
                counts.solicitations += 1;
            }
            _ => {}
        }
    }
    counts
}

#[test]
fn shared_captures_decode_cleanly_and_our_parsers_agree_with_tshark() {
    // As counted with tshark display filters (mip.type==1, mip.type==3,
    // icmp.type==9 && icmp.mip.type==16, icmp.type==10).
    let expected = [
        ("clickref-public.pcap", (3, 3, 0, 0)),
        ("clickref-foreign.pcap", (3, 3, 95, 0)),
        ("clickref-home.pcap", (1, 1, 95, 0)),
        ("jv-away-public.pcap", (3, 3, 0, 0)),
        ("jv-return-home.pcap", (1, 1, 4, 1)),
    ];
    let mut all_names: Vec<String> = std::fs::read_dir(captures_dir())
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".pcap"))
        .collect();
    all_names.sort();
    let mut listed: Vec<&str> = expected.iter().map(|(n, _)| *n).collect();
    listed.sort_unstable();
    assert_eq!(all_names, listed, "every shared capture is checked");
    for (name, (requests, replies, advertisements, solicitations)) in expected {
        let counts = check_file(name);
        assert_eq!(
            counts,
            Counts {
                requests,
                replies,
                advertisements,
                solicitations
            },
            "{name}: messages checked"
        );
    }
}
