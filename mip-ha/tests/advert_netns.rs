//! Agent Advertisements from the real mip-ha daemon on a (virtual) home link (RFC 5944
//! 2.1-2.3): two network namespaces joined by a veth pair, removed by a guard even on
//! panic. Needs root; skipped (with a message) otherwise. Every wait is bounded.
//!
//! ```text
//!  P-ha (mip-ha)                     P-lan (captures, solicits)
//!  eth0 198.18.0.1/24  ============  eth-home 198.18.0.254/24
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod netns;

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use mip_core::dataplane::ethernet::{self, ETHERTYPE_IPV4};
use mip_core::dataplane::ipv4::{self, Ipv4Fields, PROTO_ICMP};
use mip_core::wire::{AgentAdvertisementRepr, AgentFlags, AgentSolicitationRepr, ICMP_ROUTER_ADVERTISEMENT};
use mip_ha::dataplane::advert::MAX_RESPONSE_DELAY;
use mip_ha::dataplane::linux::open_packet_socket;
use netns::{addrs_up, can_run, home_agent_config, rp_filter_off, set_mac, sysctl, veth, NetLab, WAIT};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

const HA: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const MN_HOME: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
/// A solicitor that is no neighbour of the home agent (RFC 5944 2.3: still answered).
const OFF_LINK: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 99);
const ALL_SYSTEMS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 1);
const MOBILE_AGENTS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 11);
const HA_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x12, 0x01, 0x01];

/// The two namespaces' names.
struct Names {
    ha: String,
    lan: String,
}

/// The two namespaces and the daemon; dropping it stops the daemon and deletes both.
type Lab = NetLab<Names>;

impl Lab {
    fn new(tag: &str) -> Lab {
        NetLab::build("sadv", tag, |nets| {
            let n = Names { ha: nets.add("ha"), lan: nets.add("lan") };
            for ns in [&n.ha, &n.lan] {
                rp_filter_off(ns);
            }
            veth(&n.ha, "eth0", &n.lan, "eth-home");
            set_mac(&n.ha, "eth0", HA_MAC);
            addrs_up(&[(&n.ha, "eth0", "198.18.0.1/24"), (&n.lan, "eth-home", "198.18.0.254/24")]);
            sysctl(&n.ha, "net.ipv4.ip_forward", "0");
            n
        })
    }

    /// Starts mip-ha in the home agent's namespace with `extra` `[home_agent]` keys;
    /// returns when its control socket answers.
    fn start_ha(&mut self, extra: &str) {
        let ha = self.ha.clone();
        self.start_daemon(&ha, |control| home_agent_config(control, &format!("max_lifetime = 600\n{extra}\n")));
    }

    /// SIGTERM, as an operator stops the daemon; waits for it to exit.
    fn stop_ha(&mut self) {
        self.daemon_mut().terminate();
    }
}

/// An Agent Advertisement seen on the link, with the headers it came in.
#[derive(Debug)]
struct Seen {
    eth_dst: [u8; 6],
    ip: ipv4::Ipv4Info,
    adv: AgentAdvertisementRepr,
}

/// The next advertisement from the home agent within `bound`, or `None`.
fn next_advert(cap: &Socket, bound: Duration) -> Option<Seen> {
    let deadline = Instant::now() + bound;
    cap.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = vec![0u8; 65_536];
    while Instant::now() < deadline {
        let Ok(n) = (&*cap).read(&mut buf) else { continue };
        let Ok(f) = ethernet::parse(&buf[..n]) else { continue };
        if f.ethertype != ETHERTYPE_IPV4 || f.src != HA_MAC {
            continue;
        }
        let Ok(ip) = ipv4::parse(f.payload) else { continue };
        let icmp = &f.payload[ip.header_len..ip.total_len];
        if ip.protocol != PROTO_ICMP || icmp.first() != Some(&ICMP_ROUTER_ADVERTISEMENT) {
            continue;
        }
        let adv = AgentAdvertisementRepr::parse(icmp).expect("the home agent's advertisement parses");
        return Some(Seen { eth_dst: f.dst, ip, adv });
    }
    None
}

/// A socket in the LAN namespace that sends whole IP packets out of eth-home.
fn solicitor(lab: &Lab) -> Socket {
    lab.in_ns(&lab.lan, || {
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(nix::libc::IPPROTO_RAW))).unwrap();
        nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::BindToDevice, &"eth-home".into()).unwrap();
        s.set_broadcast(true).unwrap();
        s
    })
}

/// An Agent Solicitation (IP header included) with `ttl`; `corrupt` spoils its checksum.
fn solicitation(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, corrupt: bool) -> Vec<u8> {
    let mut p = vec![0u8; 28];
    let fields = Ipv4Fields {
        tos: 0,
        total_len: 28,
        identification: 9,
        dont_fragment: false,
        more_fragments: false,
        fragment_offset: 0,
        ttl,
        protocol: PROTO_ICMP,
        src,
        dst,
    };
    ipv4::write_header(&mut p, &fields).unwrap();
    AgentSolicitationRepr.emit(&mut p[20..]).unwrap();
    if corrupt {
        p[22] ^= 0x5a;
    }
    p
}

fn send(sock: &Socket, pkt: &[u8]) {
    let dst = ipv4::parse(pkt).unwrap().dst;
    sock.send_to(pkt, &SockAddr::from(SocketAddrV4::new(dst, 0))).expect("send solicitation");
}

/// The fields every advertisement of this home agent carries (RFC 5944 2.1, 2.1.1).
fn check_home_agent_advert(s: &Seen, lifetime: u16) {
    assert_eq!((s.ip.src, s.ip.ttl, s.ip.protocol), (HA, 1, PROTO_ICMP), "IP: from the HA, TTL 1");
    assert_eq!(s.adv.code, 16);
    assert_eq!(s.adv.lifetime, lifetime);
    assert_eq!(s.adv.router_addresses, vec![(HA, i32::MIN)]);
    assert_eq!(s.adv.mobility.flags, AgentFlags(AgentFlags::H), "H and nothing else");
    assert_eq!(s.adv.mobility.registration_lifetime, 600, "= max_lifetime");
    assert!(s.adv.mobility.care_of_addresses.is_empty());
}

#[test]
fn periodic_advertisements_have_ttl_1_the_h_bit_and_increasing_sequence_numbers() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new("p");
    // Listening before the daemon starts, so its first advertisement (0) is seen.
    let cap = lab.in_ns(&lab.lan, || open_packet_socket("eth-home").unwrap());
    lab.start_ha("advertisement_interval_ms = 300");
    let mut seqs = Vec::new();
    for _ in 0..5 {
        let s = next_advert(&cap, WAIT).expect("a periodic advertisement");
        check_home_agent_advert(&s, 1);
        assert_eq!(s.ip.dst, ALL_SYSTEMS);
        assert_eq!(s.eth_dst, [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01], "224.0.0.1 on Ethernet");
        seqs.push(s.adv.mobility.sequence);
    }
    assert_eq!(seqs, [0, 1, 2, 3, 4], "RFC 5944 2.3.2: 0 first, then one more each time");
    let d = lab.wait_dataplane("5 advertisements counted", |d| d.advertisements_sent >= 5);
    assert_eq!(d.solicited_advertisements, 0);

    // RFC 1256 5.1: on stopping, the last advertisement again with Lifetime 0.
    lab.stop_ha();
    let mut last = *seqs.last().unwrap();
    let fin = loop {
        let s = next_advert(&cap, WAIT).expect("the final advertisement");
        if s.adv.lifetime == 0 {
            break s;
        }
        last = s.adv.mobility.sequence;
    };
    check_home_agent_advert(&fin, 0);
    assert_eq!(fin.adv.mobility.sequence, last, "identical to the previous one");
}

#[test]
fn solicitations_to_mobile_agents_and_to_broadcast_are_answered_within_the_response_bound() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new("s");
    let cap = lab.in_ns(&lab.lan, || open_packet_socket("eth-home").unwrap());
    // Unsolicited advertisements far apart (the first capped at 16 s by RFC 1256), so
    // every advertisement seen below answers a solicitation.
    lab.start_ha("advertisement_interval_ms = 60000");
    let first = next_advert(&cap, WAIT).expect("the first advertisement");
    assert_eq!(first.adv.mobility.sequence, 0);
    let sock = solicitor(&lab);
    // RFC 1256 5.1: the answer comes within MAX_RESPONSE_DELAY.
    let bound = MAX_RESPONSE_DELAY;

    // The mobile node at home solicits the Mobile-Agents group (RFC 5944 2.3), twice at
    // once: the second is within the solicitor's second, so rate-limited.
    send(&sock, &solicitation(MN_HOME, MOBILE_AGENTS, 1, false));
    send(&sock, &solicitation(MN_HOME, MOBILE_AGENTS, 1, false));
    let s = next_advert(&cap, bound).expect("an answer to the 224.0.0.11 solicitation");
    check_home_agent_advert(&s, 180);
    assert_eq!((s.ip.dst, s.adv.mobility.sequence), (ALL_SYSTEMS, 1));

    // A broadcast solicitation from a source that is no neighbour gets a broadcast answer.
    send(&sock, &solicitation(OFF_LINK, Ipv4Addr::BROADCAST, 1, false));
    let s = next_advert(&cap, bound).expect("an answer to the broadcast solicitation");
    check_home_agent_advert(&s, 180);
    assert_eq!((s.ip.dst, s.eth_dst, s.adv.mobility.sequence), (Ipv4Addr::BROADCAST, [0xff; 6], 2));
    let d = lab.wait_dataplane("2 solicitations answered", |d| d.solicitations_answered >= 2);
    assert_eq!((d.solicitations_received, d.solicited_advertisements, d.solicitations_rate_limited), (3, 2, 1));

    // A bad checksum and TTL 2: refused.
    send(&sock, &solicitation(MN_HOME, MOBILE_AGENTS, 1, true));
    send(&sock, &solicitation(OFF_LINK, MOBILE_AGENTS, 2, false));
    let d = lab.wait_dataplane("5 solicitations read", |d| d.solicitations_received >= 5);
    assert_eq!((d.solicitations_answered, d.solicitations_rate_limited, d.solicitations_malformed), (2, 1, 2), "{d:?}");
    assert!(next_advert(&cap, Duration::from_millis(500)).is_none(), "nothing answers those");
    assert_eq!(lab.stats().dataplane.unwrap().advertisements_sent, 3);
}
