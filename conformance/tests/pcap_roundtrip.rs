//! The pcap writer produces files tshark decodes cleanly, the tshark runner sees what it
//! should (fields, raw bytes, malformed packets, bad checksums), and the reader reads the
//! shared third-party captures.
//!
//! Messages here are byte arrays written by hand from RFC 5944 3.3/3.4/2.1, on purpose
//! independent of `mip_core::wire`.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};

use conformance::pcap::{self, PcapFile};
use conformance::tshark::{Packet, Tshark};
use mip_core::auth::{self, AuthAlgorithm, ReplayMethod, SecurityAssociation};
use mip_core::time::Time;

const NO_ARGS: &[&str] = &[];

fn tshark() -> Tshark {
    Tshark::find().unwrap_or_else(|e| panic!("{e}"))
}

fn sock(a: [u8; 4], port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from(a), port)
}

const MN: [u8; 4] = [198, 18, 1, 10];
const HA: [u8; 4] = [198, 18, 0, 1];
const COA: [u8; 4] = [198, 18, 2, 1];
const IDENT: [u8; 8] = [0xe9, 0x0b, 0x2a, 0x80, 0x12, 0x34, 0x50, 0x00];

fn sa() -> SecurityAssociation {
    SecurityAssociation {
        spi: 0x0000_0100,
        algorithm: AuthAlgorithm::HmacMd5,
        key: b"sixteen byte key".to_vec(),
        replay: ReplayMethod::Timestamp,
    }
}

/// Registration Request (RFC 5944 3.3): S and T set, lifetime 300, then a
/// Mobile-Home Authentication Extension.
fn registration_request() -> Vec<u8> {
    let mut m = vec![1, 0x82, 0x01, 0x2c];
    m.extend_from_slice(&MN);
    m.extend_from_slice(&HA);
    m.extend_from_slice(&COA);
    m.extend_from_slice(&IDENT);
    auth::append_auth_extension(&mut m, 32, &sa());
    m
}

/// Registration Reply (RFC 5944 3.4): code 0, lifetime 300.
fn registration_reply() -> Vec<u8> {
    let mut m = vec![3, 0, 0x01, 0x2c];
    m.extend_from_slice(&MN);
    m.extend_from_slice(&HA);
    m.extend_from_slice(&IDENT);
    auth::append_auth_extension(&mut m, 32, &sa());
    m
}

/// Agent Advertisement (RFC 1256 + RFC 5944 2.1.1): one router address, mobility agent
/// extension with H and F set and one care-of address.
fn agent_advertisement() -> Vec<u8> {
    let mut m = vec![9, 0, 0, 0, 1, 2, 0x07, 0x08];
    m.extend_from_slice(&HA);
    m.extend_from_slice(&[0, 0, 0, 0]);
    m.extend_from_slice(&[16, 10, 0, 1, 0x01, 0x2c, 0x30, 0x00]);
    m.extend_from_slice(&COA);
    let sum = pcap::internet_checksum(&m);
    m[2..4].copy_from_slice(&sum.to_be_bytes());
    m
}

fn write(dir: &Path, name: &str, frames: &[Vec<u8>]) -> PathBuf {
    let path = dir.join(name);
    let stamped: Vec<(Time, Vec<u8>)> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            (
                Time::from_secs(1_700_000_000) + std::time::Duration::from_millis(10 * i as u64),
                f.clone(),
            )
        })
        .collect();
    pcap::write_pcap_file(&path, &stamped)
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}

fn frame_udp(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    pcap::ethernet_ipv4_udp(src, dst, payload).unwrap_or_else(|e| panic!("{e}"))
}

fn only(packets: &[Packet], n: usize) -> &Packet {
    assert_eq!(packets.len(), n, "packets decoded");
    &packets[0]
}

#[test]
fn written_registration_decodes_as_mobile_ip_without_errors() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let request = registration_request();
    let reply = registration_reply();
    let frames = vec![
        frame_udp(sock(MN, 49_152), sock(HA, 434), &request),
        frame_udp(sock(HA, 434), sock(MN, 49_152), &reply),
        pcap::ethernet_ipv4_icmp(
            Ipv4Addr::from(HA),
            Ipv4Addr::new(224, 0, 0, 1),
            &agent_advertisement(),
        )
        .unwrap_or_else(|e| panic!("{e}")),
    ];
    let path = write(dir.path(), "registration.pcap", &frames);
    let ts = tshark();
    assert_eq!(
        ts.problems(&path, NO_ARGS)
            .unwrap_or_else(|e| panic!("{e}")),
        vec![]
    );

    let packets = ts.decode(&path, NO_ARGS).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(packets.len(), 3);
    let rrq = &packets[0];
    assert_eq!(rrq.protocols(), ["eth", "ethertype", "ip", "udp", "mip"]);
    assert_eq!(
        rrq.raw("frame"),
        Some(frames[0].clone()),
        "tshark saw our bytes"
    );
    assert_eq!(rrq.get_u64("udp.dstport"), Some(434));
    assert_eq!(rrq.get_u64("mip.type"), Some(1));
    assert_eq!(rrq.get_bool("mip.s"), Some(true));
    assert_eq!(rrq.get_bool("mip.b"), Some(false));
    assert_eq!(rrq.get_bool("mip.t"), Some(true));
    assert_eq!(rrq.get_u64("mip.life"), Some(300));
    assert_eq!(rrq.get("mip.homeaddr"), Some("198.18.1.10"));
    assert_eq!(rrq.get("mip.haaddr"), Some("198.18.0.1"));
    assert_eq!(rrq.get("mip.coa"), Some("198.18.2.1"));
    assert_eq!(rrq.raw("mip.ident"), Some(IDENT.to_vec()));
    assert_eq!(rrq.all_u64("mip.ext.type"), vec![32]);
    assert_eq!(rrq.get_u64("mip.ext.len"), Some(20));
    assert_eq!(rrq.get_u64("mip.auth.spi"), Some(0x100));
    assert_eq!(rrq.raw("mip.auth.auth"), Some(request[30..].to_vec()));

    let rrp = &packets[1];
    assert_eq!(rrp.get_u64("mip.type"), Some(3));
    assert_eq!(rrp.get_u64("mip.code"), Some(0));
    assert_eq!(rrp.raw("mip.ident"), Some(IDENT.to_vec()));

    let adv = &packets[2];
    assert_eq!(adv.get_u64("ip.ttl"), Some(1));
    assert_eq!(adv.get_u64("icmp.type"), Some(9));
    assert_eq!(adv.get_u64("icmp.mip.life"), Some(300));
    assert_eq!(adv.get_bool("icmp.mip.h"), Some(true));
    assert_eq!(adv.get_bool("icmp.mip.f"), Some(true));
    assert_eq!(adv.get_bool("icmp.mip.r"), Some(false));
    assert_eq!(adv.get("icmp.mip.coa"), Some("198.18.2.1"));

    // The -T fields route agrees.
    let rows = ts
        .fields(&path, &["mip.type", "mip.ext.type"], NO_ARGS)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows[0], vec![vec!["1".to_owned()], vec!["32".to_owned()]]);
    assert_eq!(rows[2], vec![Vec::<String>::new(), Vec::new()]);
}

#[test]
fn problems_reports_malformed_packets_and_bad_checksums() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let request = registration_request();
    let mut bad_checksum = frame_udp(sock(MN, 434), sock(HA, 434), &request);
    let last = bad_checksum.len() - 1;
    bad_checksum[last] ^= 0x01; // corrupt the authenticator, not the checksum field
    let mut overlong_ext = request[..30].to_vec();
    overlong_ext[25] = 40; // extension length points past the end
    let frames = vec![
        frame_udp(sock(MN, 434), sock(HA, 434), &request),
        frame_udp(sock(MN, 434), sock(HA, 434), &request[..10]),
        frame_udp(sock(MN, 434), sock(HA, 434), &overlong_ext),
        bad_checksum,
    ];
    let path = write(dir.path(), "bad.pcap", &frames);
    let problems = tshark()
        .problems(&path, NO_ARGS)
        .unwrap_or_else(|e| panic!("{e}"));
    let numbers: Vec<u64> = problems.iter().map(|p| p.number).collect();
    assert_eq!(numbers, vec![2, 3, 4], "{problems:#?}");
    assert!(problems[0].malformed && problems[1].malformed);
    assert!(!problems[2].malformed);
    assert!(
        problems[2]
            .errors
            .iter()
            .any(|e| e.message.contains("checksum")),
        "{problems:#?}"
    );
}

#[test]
fn decode_as_on_another_port() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let frames = vec![frame_udp(
        sock(MN, 4340),
        sock(HA, 4340),
        &registration_request(),
    )];
    let path = write(dir.path(), "port4340.pcap", &frames);
    let ts = tshark();
    let plain = ts.decode(&path, NO_ARGS).unwrap_or_else(|e| panic!("{e}"));
    assert!(!only(&plain, 1).has("mip.type"));
    let as_mip = ts
        .decode(&path, &["-d", "udp.port==4340,mip"])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(only(&as_mip, 1).get_u64("mip.type"), Some(1));
}

#[test]
fn bad_arguments_are_reported_with_stderr() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = write(
        dir.path(),
        "one.pcap",
        &[frame_udp(
            sock(MN, 434),
            sock(HA, 434),
            &registration_request(),
        )],
    );
    let err = tshark().decode(&path, &["-Y", "this is not a filter ((("]);
    let message = format!(
        "{}",
        err.err()
            .unwrap_or_else(|| panic!("a bad filter must fail"))
    );
    assert!(message.contains("tshark failed"), "{message}");
}

fn captures_dir() -> PathBuf {
    // The shared folder sits beside the repository, in development and in CI.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/mip-captures");
    assert!(
        dir.is_dir(),
        "shared captures not found at {}",
        dir.display()
    );
    dir
}

fn read_capture(name: &str) -> PcapFile {
    let path = captures_dir().join(name);
    pcap::read_pcap_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn reader_reads_the_shared_captures() {
    let ts = tshark();
    for name in [
        "clickref-public.pcap",
        "clickref-foreign.pcap",
        "clickref-home.pcap",
        "jv-away-public.pcap",
        "jv-return-home.pcap",
    ] {
        let file = read_capture(name);
        assert_eq!(file.linktype, pcap::LINKTYPE_ETHERNET, "{name}");
        assert!(
            file.nanosecond,
            "{name}: these files use nanosecond timestamps"
        );
        assert!(!file.frames.is_empty(), "{name}");

        // Every frame is what tshark saw, and our UDP 434 extraction finds exactly the
        // packets tshark decodes as Mobile IP.
        let packets = ts
            .decode(&captures_dir().join(name), NO_ARGS)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(packets.len(), file.frames.len(), "{name}");
        for (frame, packet) in file.frames.iter().zip(&packets) {
            assert_eq!(
                packet.raw("frame").as_deref(),
                Some(frame.data.as_slice()),
                "{name} #{}",
                packet.number
            );
        }
        let ours: Vec<u64> = file
            .udp_datagrams(434)
            .iter()
            .map(|(i, _)| *i as u64 + 1)
            .collect();
        let theirs: Vec<u64> = packets
            .iter()
            .filter(|p| p.has("mip.type"))
            .map(|p| p.number)
            .collect();
        assert_eq!(ours, theirs, "{name}");
        for (i, d) in file.udp_datagrams(434) {
            let tshark_type = packets[i].get_u64("mip.type");
            assert_eq!(
                d.payload.first().map(|b| u64::from(*b)),
                tshark_type,
                "{name} frame {}",
                i + 1
            );
            assert_eq!(
                packets[i].raw("mip").as_deref(),
                Some(d.payload),
                "{name} frame {}",
                i + 1
            );
        }
    }
    // The away scenario holds both requests and replies.
    let away = read_capture("jv-away-public.pcap");
    let types: Vec<u8> = away
        .udp_datagrams(434)
        .iter()
        .filter_map(|(_, d)| d.payload.first().copied())
        .collect();
    assert!(types.contains(&1) && types.contains(&3), "{types:?}");
    // Agent advertisements (ICMP type 9) and IP-in-IP tunnels are found by protocol,
    // as many as tshark finds.
    let foreign = read_capture("clickref-foreign.pcap");
    let adverts = foreign
        .ipv4_packets(pcap::IP_PROTO_ICMP)
        .into_iter()
        .filter(|(_, p)| p.payload.first() == Some(&9))
        .count();
    assert_eq!(adverts, 95);
    assert_eq!(away.ipv4_packets(pcap::IP_PROTO_IPIP).len(), 75);
}
