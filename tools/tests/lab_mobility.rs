//! Issue 3 end to end, on real packets in lab namespaces: the mip-ha, mip-fa and mip-mn
//! daemons, a correspondent streaming UDP (1,000 packets per second) and TCP to the
//! node's home address while it moves home -> foreign 1 (foreign agent) -> foreign 2
//! (co-located) -> home; captures decoded by tshark; each encapsulation and reverse
//! tunnelling. Needs root (CI runs as root) and tshark/dumpcap.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use conformance::tshark::{Packet, Tshark};
use tools::lab::mobility::{self, MoveSetup};
use tools::lab::scenario::{ScenarioOptions, ScenarioReport};
use tools::lab::Lab;

fn print(report: &ScenarioReport) {
    eprintln!("{report}");
    if let Ok(dir) = std::env::var("SIDMIP_REPORT_DIR") {
        let path = Path::new(&dir).join(format!("{}-{}.json", report.scenario, report.lab));
        let _ = std::fs::write(path, serde_json::to_string_pretty(report).unwrap_or_default());
    }
}

fn assert_passed(report: &ScenarioReport) {
    let failed: Vec<_> = report.checks.iter().filter(|c| !c.ok).collect();
    assert!(failed.is_empty(), "failed checks: {failed:#?}");
}

/// Lab captures are taken on veth interfaces, where the kernel's own UDP packets (the
/// agents' registration sockets) still carry the partial checksum of transmit offload
/// when captured: Wireshark's "checksum offload" artefact. Those checksums are not
/// judged here (the receiving kernels verify them, and conformance/ checks our own
/// encodings with checksum validation on); everything else must decode cleanly.
const LAB_CAPTURE: [&str; 2] = ["-o", "udp.check_checksum:FALSE"];

fn decode(pcap: &Path) -> Vec<Packet> {
    let tshark = Tshark::find().expect("tshark");
    let problems = tshark.problems(pcap, &LAB_CAPTURE).expect("tshark runs");
    assert!(problems.is_empty(), "{}: malformed or expert errors: {problems:?}", pcap.display());
    tshark.decode(pcap, &LAB_CAPTURE).expect("tshark decodes")
}

fn ip_is(p: &Packet, field: &str, value: &str) -> bool {
    p.all(field).iter().any(|v| v == value)
}

const HOME: &str = "198.18.0.10";
const HA: &str = "198.18.0.1";
const FA1: &str = "198.18.1.1";

#[test]
fn node_moves_through_foreign_agent_and_colocated_and_home_with_udp_and_tcp() {
    let Some(_lab) = common::lab::begin("move") else { return };
    let lab = Lab::up(mobility::topology()).expect("lab up");
    let ha_mac = lab.mac("ha", "eth0").expect("ha mac");
    let home_cap = lab.capture("ha", "eth0", "arp or udp port 434").expect("capture home LAN");
    let f1_cap = lab.capture("fa1", "eth0", "udp port 434 or ip proto 4").expect("capture foreign 1");
    let opts = ScenarioOptions { duration: Duration::from_secs(2), pps: 1000, tcp_rate: 500_000 };
    let (report, daemons) = mobility::run_moves(&lab, &opts, &MoveSetup::default()).expect("scenario runs");
    let home_pcap: PathBuf = home_cap.stop().expect("home capture");
    let f1_pcap: PathBuf = f1_cap.stop().expect("f1 capture");
    print(&report);
    assert_passed(&report);
    assert_eq!(report.moves.iter().filter(|m| m.flow == "cn-mn").count(), 4, "start + three moves");
    drop(daemons);

    // Home LAN: the home agent's gratuitous ARP when the node left (RFC 5944 4.6: sender
    // and target protocol address = the home address, sender hardware address = the
    // home agent's), and one with the node's own address when it came back.
    let home = decode(&home_pcap);
    let garp = |mac: &str| {
        home.iter().any(|p| {
            ip_is(p, "arp.src.proto_ipv4", HOME) && ip_is(p, "arp.dst.proto_ipv4", HOME) && ip_is(p, "arp.src.hw_mac", mac)
        })
    };
    let ha_mac_text = mip_core::dataplane::ethernet::format_mac(&ha_mac);
    assert!(garp(&ha_mac_text), "gratuitous ARP from the home agent for {HOME} ({ha_mac_text})");
    let node_back = home.iter().any(|p| {
        ip_is(p, "arp.src.proto_ipv4", HOME) && ip_is(p, "arp.dst.proto_ipv4", HOME) && !ip_is(p, "arp.src.hw_mac", &ha_mac_text)
    });
    assert!(node_back, "gratuitous ARP with the node's own address when it returned home");

    // Foreign 1: the registration through the foreign agent, both legs each way, and the
    // tunnel from the home agent with the correspondent's packets inside.
    let f1 = decode(&f1_pcap);
    let reg = |src: &str, dst: &str, mip_type: &str| {
        f1.iter().any(|p| p.get("ip.src") == Some(src) && ip_is(p, "ip.dst", dst) && p.get("mip.type") == Some(mip_type))
    };
    assert!(reg(HOME, FA1, "1"), "request from the node to the foreign agent");
    assert!(reg(FA1, HA, "1"), "request relayed to the home agent");
    assert!(reg(HA, FA1, "3"), "reply from the home agent");
    assert!(reg(FA1, HOME, "3"), "reply relayed to the node");
    let tunnelled = f1.iter().filter(|p| {
        let src = p.all("ip.src");
        let dst = p.all("ip.dst");
        p.all("ip.proto").first().map(String::as_str) == Some("4")
            && src.first().map(String::as_str) == Some(HA)
            && dst.first().map(String::as_str) == Some(FA1)
            && dst.get(1).map(String::as_str) == Some(HOME)
            && p.get("udp.dstport") == Some("5001")
    });
    assert!(tunnelled.count() > 100, "IP-in-IP from the home agent to the foreign agent carrying the stream");
}

#[test]
fn each_encapsulation_and_reverse_tunnelling_carry_traffic_both_ways() {
    let Some(_lab) = common::lab::begin("encapsulations") else { return };
    for encapsulation in ["minimal", "gre"] {
        let lab = Lab::up(mobility::topology()).expect("lab up");
        let cap = lab.capture("mn", "eth0", "ip proto 4 or ip proto 47 or ip proto 55").expect("capture");
        let opts = ScenarioOptions { duration: Duration::from_secs(1), pps: 300, tcp_rate: 200_000 };
        let setup = MoveSetup { encapsulation, reverse_tunnel: true, return_flow: true };
        let (report, daemons) = mobility::run_moves(&lab, &opts, &setup).expect("scenario runs");
        let pcap = cap.stop().expect("capture");
        print(&report);
        assert_passed(&report);
        drop(daemons);
        // In co-located mode the node is the tunnel's end: the home agent's packets reach
        // it in the asked encapsulation, and its own go back reverse-tunnelled.
        let proto = if encapsulation == "gre" { "47" } else { "55" };
        let packets = decode(&pcap);
        let from_ha = packets.iter().filter(|p| p.all("ip.proto").first().map(String::as_str) == Some(proto)
            && p.all("ip.src").first().map(String::as_str) == Some(HA)).count();
        assert!(from_ha > 50, "{encapsulation}: {from_ha} packets from the home agent in protocol {proto}");
        let reverse = packets.iter().filter(|p| p.all("ip.dst").first().map(String::as_str) == Some(HA)
            && p.all("ip.src").first().map(String::as_str) == Some("198.18.2.100")).count();
        assert!(reverse > 50, "{encapsulation}: {reverse} reverse-tunnelled packets from the co-located address");
    }
}
