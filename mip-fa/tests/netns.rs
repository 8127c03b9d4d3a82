//! The mip-fa daemon on real (virtual) links, as root: three network namespaces joined
//! by veth pairs, with unique names, removed by a guard even when a test panics.
//!
//! ```text
//!  P-mn                      P-fa                          P-ha
//!  eth0 198.18.0.10/32 ----- eth0 198.18.1.1/24 (CoA)
//!  (home address;            mip-fa daemon
//!   default via FA onlink)   eth1 198.18.9.1/24 ---------- eth0 198.18.9.2/24 + 198.18.0.1/32
//!                                                          mip_ha::HomeAgent on UDP 434
//! ```
//! The visitor hears advertisements, solicits, registers through the foreign agent
//! (reverse tunnel requested) and gets the reply on its MAC; a packet tunnelled by the
//! home agent reaches the visitor's MAC; the visitor's packet comes back reverse-tunnelled.
//! Every wait is bounded.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "netns/lab.rs"]
mod lab;

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::{mn_ha_sa, CN, COA, HA, HOME};
use lab::{in_netns, Capture, Lab};
use mip_core::auth::{append_auth_extension, verify_authenticator};
use mip_core::dataplane::{decapsulate, ethernet, ipv4};
use mip_core::time::Time;
use mip_core::wire::{
    ext_type, AgentAdvertisementRepr, AgentFlags, AgentSolicitationRepr, Extension,
    RegistrationFlags, RegistrationReply, RegistrationReplyRepr, RegistrationRequestRepr,
    ReplyCode, AUTH_EXT_COVERED_HEADER,
};
use mip_fa::frame::{parse_icmp, parse_udp, udp_checksum};

const WAIT: Duration = Duration::from_secs(5);

fn control(lab: &Lab, command: &str) -> serde_json::Value {
    let mut s = UnixStream::connect(&lab.control_socket).expect("control socket");
    s.set_read_timeout(Some(WAIT)).unwrap();
    writeln!(s, r#"{{"command":"{command}"}}"#).unwrap();
    let mut line = String::new();
    BufReader::new(s)
        .read_line(&mut line)
        .expect("control answer");
    serde_json::from_str(&line).expect("JSON answer")
}

#[test]
fn visitor_discovers_registers_and_exchanges_packets_through_the_foreign_agent() {
    let Some(lab) = Lab::start("fa") else { return };
    let mn_mac = lab.mac("mn", "eth0");
    let fa_mac = lab.mac("fa", "eth0");
    let capture = in_netns(&lab.ns("mn"), Capture::open);

    // 2.1: unsolicited advertisements, multicast, TTL 1, from the care-of address.
    let adv = capture
        .wait(WAIT, |f| {
            let (ip, icmp) = parse_icmp(ethernet::parse(f).ok()?.payload).ok()?;
            (icmp.first() == Some(&9)).then(|| (ip, AgentAdvertisementRepr::parse(icmp).ok()))
        })
        .expect("an unsolicited agent advertisement within 5 s");
    let (ip, parsed) = adv;
    let parsed = parsed.expect("it parses");
    assert_eq!(
        (ip.src, ip.dst, ip.ttl),
        (COA, Ipv4Addr::new(224, 0, 0, 1), 1)
    );
    assert_eq!(parsed.mobility.care_of_addresses, vec![COA]);
    assert!(
        parsed.mobility.flags.contains(AgentFlags::F)
            && parsed.mobility.flags.contains(AgentFlags::T)
    );

    // 2.3: a solicitation is answered to our home address and our MAC.
    let solicit = in_netns(&lab.ns("mn"), || {
        let s = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::RAW,
            Some(socket2::Protocol::ICMPV4),
        )
        .expect("raw ICMP");
        s.set_ttl_v4(1).unwrap();
        s.set_broadcast(true).unwrap();
        nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::BindToDevice, &"eth0".into())
            .unwrap();
        s
    });
    let mut sol = [0u8; 8];
    AgentSolicitationRepr.emit(&mut sol).unwrap();
    solicit
        .send_to(&sol, &SocketAddrV4::new(Ipv4Addr::BROADCAST, 0).into())
        .expect("solicitation sent");
    let answer = capture
        .wait(WAIT, |f| {
            let eth = ethernet::parse(f).ok()?;
            let (ip, icmp) = parse_icmp(eth.payload).ok()?;
            (icmp.first() == Some(&9) && ip.dst == HOME).then_some((eth.dst, eth.src, ip.ttl))
        })
        .expect("a unicast answer to the solicitation");
    assert_eq!(
        answer,
        (mn_mac, fa_mac, 1),
        "to the solicitor's MAC, from the agent, TTL 1"
    );

    // 3.7: registration through the foreign agent, reverse tunnel requested (TTL 255).
    let udp = in_netns(&lab.ns("mn"), || {
        let s = std::net::UdpSocket::bind(SocketAddrV4::new(HOME, 0)).expect("bind home address");
        s.set_ttl(255).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s
    });
    let now = Time::from_system(std::time::SystemTime::now());
    let req = RegistrationRequestRepr {
        flags: RegistrationFlags::default().with(RegistrationFlags::T),
        lifetime: 120,
        home_address: HOME,
        home_agent: HA,
        care_of_address: COA,
        identification: now.to_ntp() | 0x1234,
    };
    let mut bytes = req.to_bytes();
    append_auth_extension(&mut bytes, ext_type::MOBILE_HOME_AUTH, &mn_ha_sa());
    let mut buf = [0u8; 1500];
    let mut got = None;
    for _ in 0..3 {
        udp.send_to(&bytes, SocketAddrV4::new(COA, 434))
            .expect("request sent");
        if let Ok((n, from)) = udp.recv_from(&mut buf) {
            got = Some((buf[..n].to_vec(), from));
            break;
        }
    }
    let (reply, from) = got.expect("a registration reply within 15 s");
    assert_eq!(from, std::net::SocketAddr::V4(SocketAddrV4::new(COA, 434)));
    let rep =
        RegistrationReplyRepr::parse(&RegistrationReply::new_checked(&reply[..]).unwrap()).unwrap();
    assert_eq!(rep.code, ReplyCode::Accepted, "{rep:?}");
    assert_eq!(
        (rep.home_address, rep.home_agent, rep.lifetime),
        (HOME, HA, 120)
    );
    let view = RegistrationReply::new_checked(&reply[..]).unwrap();
    let first = view.extensions().next().unwrap().unwrap();
    let Extension::MobileHomeAuth(a) = first.ext else {
        panic!("{first:?}")
    };
    let sa = mn_ha_sa();
    let covered = &reply[..first.offset + AUTH_EXT_COVERED_HEADER];
    assert!(
        verify_authenticator(sa.algorithm, &sa.key, covered, a.authenticator),
        "relayed untouched"
    );
    let visitors = control(&lab, "visitors");
    let v = &visitors["ok"]["visitors"][0];
    assert_eq!(v["home_address"], "198.18.0.10", "{visitors}");
    assert_eq!(v["link_address"], ethernet::format_mac(&mn_mac));
    assert_eq!(v["reverse_tunnel"], true);

    // 4.2.2: a packet the home agent tunnels to the care-of address reaches our MAC.
    let raw_ha = in_netns(&lab.ns("ha"), lab::raw_ip_socket);
    let inner = common::udp_packet(CN, HOME, 60, b"forward path");
    let outer = common::tunnel(mip_core::dataplane::Encapsulation::IpInIp, HA, COA, &inner);
    let mut delivered = None;
    for _ in 0..3 {
        raw_ha
            .send_to(&outer, &SocketAddrV4::new(COA, 0).into())
            .expect("tunnel packet sent");
        delivered = capture.wait(Duration::from_secs(2), |f| {
            let eth = ethernet::parse(f).ok()?;
            let u = parse_udp(eth.payload).ok()?;
            (u.payload == b"forward path")
                .then_some((eth.dst, eth.src, u.ip.src, u.ip.dst, u.ip.ttl))
        });
        if delivered.is_some() {
            break;
        }
    }
    assert_eq!(
        delivered,
        Some((mn_mac, fa_mac, CN, HOME, 60)),
        "decapsulated, framed to the visitor"
    );

    // RFC 3024: what the visitor sends comes out of the reverse tunnel at the home agent.
    let tunnel_in = in_netns(&lab.ns("ha"), || lab::raw_receive_socket(4));
    let mut reversed = None;
    for _ in 0..3 {
        udp.send_to(b"reverse path", SocketAddrV4::new(CN, 7000))
            .expect("visitor packet sent");
        reversed = lab::recv_until(&tunnel_in, Duration::from_secs(2), |pkt| {
            let o = ipv4::parse(pkt).ok()?;
            let mut inner = vec![0u8; 2048];
            let d = decapsulate(pkt, &mut inner).ok()?;
            let u = parse_udp(&inner[..d.inner_len]).ok()?;
            if u.payload != b"reverse path" {
                return None;
            }
            let l4 = &inner[u.ip.header_len..u.ip.total_len];
            let mut zeroed = l4.to_vec();
            zeroed[6..8].copy_from_slice(&[0, 0]);
            let sum_ok =
                udp_checksum(u.ip.src, u.ip.dst, &zeroed) == u16::from_be_bytes([l4[6], l4[7]]);
            Some((o.src, o.dst, u.ip.src, u.ip.dst, u.ip.ttl, sum_ok))
        });
        if reversed.is_some() {
            break;
        }
    }
    assert_eq!(
        reversed,
        Some((COA, HA, HOME, CN, 254, true)),
        "outer CoA -> HA, inner from the home address, its TTL (255 on this socket) decremented, a complete UDP checksum"
    );

    // 3.7.3: a request relayed to an address where no home agent listens comes back as
    // an ICMP port unreachable (IP_RECVERR), answered with code 82.
    let mut nowhere = req;
    nowhere.home_agent = Ipv4Addr::new(198, 18, 9, 2);
    nowhere.identification ^= 0x5555;
    let mut bytes = nowhere.to_bytes();
    append_auth_extension(&mut bytes, ext_type::MOBILE_HOME_AUTH, &mn_ha_sa());
    udp.send_to(&bytes, SocketAddrV4::new(COA, 434))
        .expect("request sent");
    let code = loop {
        let (n, _) = udp.recv_from(&mut buf).expect("a denial within 5 s");
        if let Ok(r) =
            RegistrationReply::new_checked(&buf[..n]).and_then(|p| RegistrationReplyRepr::parse(&p))
        {
            if r.identification == nowhere.identification {
                break r.code;
            }
        }
    };
    assert_eq!(code, ReplyCode::FaHomeAgentPortUnreachable);

    let stats = control(&lab, "stats");
    let dp = &stats["ok"]["stats"]["data_plane"];
    assert!(dp["delivered"]["packets"].as_u64() >= Some(1), "{stats}");
    assert!(
        dp["reverse_tunnelled"]["packets"].as_u64() >= Some(1),
        "{stats}"
    );
    assert_eq!(
        stats["ok"]["stats"]["control"]["requests_relayed"], 2,
        "{stats}"
    );
    assert_eq!(stats["ok"]["stats"]["control"]["icmp_errors"], 1, "{stats}");
    let io = &stats["ok"]["stats"]["io"];
    assert!(io["frames_sent"].as_u64() >= Some(3), "{stats}");
    assert_eq!(io["requests_without_link_address"], 0, "every request's MAC was learnt: {stats}");
}
