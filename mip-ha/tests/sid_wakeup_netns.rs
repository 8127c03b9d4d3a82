//! The SID wake-up on a real (virtual) home link: the mip-ha daemon with its data plane,
//! a Transferring Node (TN) on the home link, a Target behind the home agent.
//!
//! ```text
//!  P-tn                          P-ha (mip-ha, home_interface eth0)      P-tgt
//!  eth0 198.18.0.10/24 ========= eth0 198.18.0.1/24
//!  MAC 02:00:5e:12:01:0a         MAC 02:00:5e:12:01:01
//!                                eth1 198.18.1.254/24 =================== eth0 198.18.1.1/24
//! ```
//! Static neighbour entries on both ends of the home link keep the TN from ever sending
//! ARP, so the only way the data plane can know the TN's MAC is the SID events. Needs
//! root; skipped (with a message) otherwise. Every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod netns;

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant, SystemTime};

use mip_core::auth::{append_auth_extension, verify_authenticator};
use mip_core::dataplane::arp::{ArpOp, ArpRepr};
use mip_core::dataplane::ethernet::{self, ETHERTYPE_ARP, ETHERTYPE_IPV4};
use mip_core::dataplane::ipv4;
use mip_core::dataplane::offload::fill_l4_checksum;
use mip_core::time::Time;
use mip_core::wire::notification::{GenericNotificationAckRepr, NotificationDirection};
use mip_core::wire::{ext_type, RegistrationReply, RegistrationReplyRepr, RegistrationRequestRepr, ReplyCode};
use mip_ha::dataplane::linux::open_packet_socket;
use mip_ha::sid::keys::{transfer_context, wrap_session_key, TransferStage};
use netns::{addrs_up, can_run, default_route, home_agent_config, ip, mac, mn_sa as sa, set_mac, veth, wait_for};
use netns::{NetLab, WAIT};
use sid_ext::crypto::SessionKey;
use sid_ext::wire::wake_up::{build_wake_up_ack, parse_wake_up};
use sid_ext::wire::{
    EncryptedSessionKey, LinkLayerAddress, SessionKeyAlgorithm, SidExtensions, StopReason, TransferFlags,
    WakeUpReason, DEFAULT_ORG_ID,
};
use socket2::Socket;

const HA: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const TN: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const TARGET: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const HA_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x12, 0x01, 0x01];
const TN_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x12, 0x01, 0x0a];
/// The MAC the TN gave when it started the transfer; its stop-transfer demand brings
/// its real one (a changed link-layer address).
const OLD_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x12, 0x01, 0x0b];
const SESSION_SPI: u32 = 4096;

/// The namespaces' names.
struct Names {
    ha: String,
    tn: String,
    tgt: String,
}

/// Namespaces and the daemon; dropping it kills the daemon and deletes the namespaces.
type Lab = NetLab<Names>;

impl Lab {
    fn new() -> Lab {
        NetLab::build("swk", "", |nets| {
            let n = Names { ha: nets.add("ha"), tn: nets.add("tn"), tgt: nets.add("tgt") };
            veth(&n.ha, "eth0", &n.tn, "eth0");
            veth(&n.ha, "eth1", &n.tgt, "eth0");
            set_mac(&n.ha, "eth0", HA_MAC);
            set_mac(&n.tn, "eth0", TN_MAC);
            addrs_up(&[
                (&n.ha, "eth0", "198.18.0.1/24"),
                (&n.ha, "eth1", "198.18.1.254/24"),
                (&n.tn, "eth0", "198.18.0.10/24"),
                (&n.tgt, "eth0", "198.18.1.1/24"),
            ]);
            default_route(&n.tgt, "198.18.1.254");
            // No ARP from the TN, ever: the data plane learns its MAC from SID or not at all.
            let (tn_mac, ha_mac) = (mac(TN_MAC), mac(HA_MAC));
            ip(&["-n", &n.ha, "neigh", "replace", "198.18.0.10", "lladdr", &tn_mac, "dev", "eth0", "nud", "permanent"]);
            ip(&["-n", &n.tn, "neigh", "replace", "198.18.0.1", "lladdr", &ha_mac, "dev", "eth0", "nud", "permanent"]);
            n
        })
    }

    fn start_ha(&mut self) {
        let ha = self.ha.clone();
        let sid = "gratuitous_arp_count = 1\n[sid]\nwake_up_interval_ms = 300\nwake_up_attempts = 5\n";
        self.start_daemon(&ha, |control| home_agent_config(control, sid));
    }
}

fn now_id() -> u64 {
    Time::from_system(SystemTime::now()).to_ntp()
}

/// Fixed part (Home Address = the TN), SID elements, Mobile-Home Authentication.
fn request(care_of: Ipv4Addr, lifetime: u16, sid: &SidExtensions<'_>) -> Vec<u8> {
    let repr = RegistrationRequestRepr {
        flags: Default::default(),
        lifetime,
        home_address: TN,
        home_agent: HA,
        care_of_address: care_of,
        identification: now_id(),
    };
    let mut b = repr.to_bytes();
    sid.append_to(DEFAULT_ORG_ID, &mut b).expect("elements fit");
    append_auth_extension(&mut b, ext_type::MOBILE_HOME_AUTH, &sa());
    b
}

/// Sends `req` from the TN's socket; the reply code.
fn register(udp: &UdpSocket, req: &[u8]) -> ReplyCode {
    udp.send_to(req, SocketAddrV4::new(HA, 434)).unwrap();
    let mut buf = [0u8; 1500];
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "timed out waiting for a registration reply");
        let Ok((n, _)) = udp.recv_from(&mut buf) else { continue };
        if buf[0] == mip_core::wire::REPLY_TYPE {
            let r = RegistrationReplyRepr::parse(&RegistrationReply::new_checked(&buf[..n]).unwrap()).unwrap();
            return r.code;
        }
    }
}

/// What the TN's interface saw of the home agent.
#[derive(Default)]
struct Seen {
    /// UDP payloads of wake-up frames, in order.
    wake_ups: Vec<Vec<u8>>,
    /// Senders' MACs of gratuitous ARPs for the TN's address.
    announced: Vec<[u8; 6]>,
}

/// One captured frame: a wake-up to the TN's MAC (checked down to its checksums), or a
/// gratuitous ARP for the TN's address.
fn classify(frame: &[u8], seen: &mut Seen) {
    let Ok(f) = ethernet::parse(frame) else { return };
    if f.src != HA_MAC {
        return;
    }
    if f.ethertype == ETHERTYPE_ARP {
        if let Ok(a) = ArpRepr::parse(f.payload) {
            if a.operation == ArpOp::Request && a.sender_ip == TN && a.target_ip == TN {
                seen.announced.push(a.sender_mac);
            }
        }
        return;
    }
    if f.ethertype != ETHERTYPE_IPV4 {
        return;
    }
    let Ok(info) = ipv4::parse(f.payload) else { return };
    let pkt = &f.payload[..info.total_len];
    let udp = &pkt[info.header_len..];
    let is_wake_up = info.protocol == ipv4::PROTO_UDP && udp.len() > 8 && udp[2..4] == 434u16.to_be_bytes() && udp[8] == 22;
    if !is_wake_up {
        return;
    }
    assert_eq!(f.dst, TN_MAC, "to the TN's (new) MAC, not through ARP");
    assert_eq!((info.src, info.dst, info.ttl), (HA, TN, 64));
    assert_eq!(ipv4::checksum(&pkt[..info.header_len]), 0, "IPv4 header checksum");
    assert_eq!(&udp[0..2], &434u16.to_be_bytes(), "from port 434");
    let mut again = pkt.to_vec();
    fill_l4_checksum(&mut again).unwrap();
    assert_eq!(again, pkt, "UDP checksum right");
    seen.wake_ups.push(udp[8..].to_vec());
}

/// Reads the TN's interface until `done` or [`WAIT`].
fn capture(sock: &Socket, seen: &mut Seen, done: impl Fn(&Seen) -> bool) {
    let deadline = Instant::now() + WAIT;
    sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut buf = vec![0u8; 65_536];
    while !done(seen) {
        assert!(
            Instant::now() < deadline,
            "timed out: {} wake-up(s), announcements {:?}",
            seen.wake_ups.len(),
            seen.announced
        );
        if let Ok(n) = (&*sock).read(&mut buf) {
            classify(&buf[..n], seen);
        }
    }
}

#[test]
fn stop_transfer_wakes_the_tn_at_its_mac_and_the_ack_is_counted() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new();
    lab.start_ha();
    let cap = lab.in_ns(&lab.tn, || open_packet_socket("eth0").unwrap());
    let udp = lab.in_ns(&lab.tn, || UdpSocket::bind("198.18.0.10:434").unwrap());
    udp.set_read_timeout(Some(Duration::from_millis(200))).unwrap();

    // The TN hands its address to the Target, giving OLD_MAC.
    let key = SessionKey::from_bytes([0x5a; 32]);
    let ctx = transfer_context(TransferStage::Transfer, TN, TARGET, SESSION_SPI, HA);
    let wrapped = wrap_session_key(&key, &sa().key, &ctx).expect("wrap");
    let transfer = SidExtensions {
        target_address: Some(TARGET),
        session_key: Some(EncryptedSessionKey { algorithm: SessionKeyAlgorithm::AesKeyWrapPadded, data: &wrapped }),
        session_spi: Some(SESSION_SPI),
        transfer_flags: Some(TransferFlags::new(false, false)),
        link_layer_address: Some(LinkLayerAddress::ethernet(&OLD_MAC)),
        ..SidExtensions::default()
    };
    assert_eq!(register(&udp, &request(TARGET, 60, &transfer)), ReplyCode::Accepted);
    let mut seen = Seen::default();
    // RFC 5944 4.6 on the first binding: the home agent announces itself for the TN.
    capture(&cap, &mut seen, |s| s.announced.contains(&HA_MAC));

    // It stops the transfer from its new MAC.
    let stop = SidExtensions {
        stop_transfer: Some(StopReason::Override),
        link_layer_address: Some(LinkLayerAddress::ethernet(&TN_MAC)),
        ..SidExtensions::default()
    };
    assert_eq!(register(&udp, &request(TN, 0, &stop)), ReplyCode::Accepted);

    // Two copies (the daemon's timer fires the retry), and the data plane announces the
    // TN at the MAC it learnt from the SID events.
    capture(&cap, &mut seen, |s| s.wake_ups.len() >= 2 && s.announced.contains(&TN_MAC));
    assert!(!seen.announced.contains(&OLD_MAC), "the changed MAC was learnt before the removal");
    let sa = sa();
    let mut ids = Vec::new();
    for payload in &seen.wake_ups {
        let w = parse_wake_up(payload, DEFAULT_ORG_ID).expect("a wake-up");
        assert_eq!(w.auth.spi, sa.spi);
        assert!(verify_authenticator(sa.algorithm, &sa.key, w.auth.covered, w.auth.authenticator), "authenticator");
        assert_eq!((w.notification.home_address, w.notification.home_agent), (TN, HA));
        assert_eq!((w.notification.care_of_address, w.reason), (TARGET, WakeUpReason::StopTransferDemand));
        ids.push(w.notification.identification);
    }
    assert!(ids.windows(2).all(|p| p[0] < p[1]), "a fresh Identification per copy: {ids:?}");

    // The TN's own stack took it too (so the checksums are right end to end); answer it.
    let mut buf = [0u8; 1500];
    let deadline = Instant::now() + WAIT;
    let last = loop {
        assert!(Instant::now() < deadline, "the TN's UDP socket got no wake-up");
        let Ok((n, from)) = udp.recv_from(&mut buf) else { continue };
        if buf[0] == 22 {
            assert_eq!(from, std::net::SocketAddr::from(SocketAddrV4::new(HA, 434)));
            break parse_wake_up(&buf[..n], DEFAULT_ORG_ID).expect("a wake-up").notification;
        }
    };
    let ack = GenericNotificationAckRepr::answering(&last, NotificationDirection::MobileNodeToHomeAgent, 0);
    udp.send_to(&build_wake_up_ack(&ack, &sa), SocketAddrV4::new(HA, 434)).unwrap();

    let s = wait_for("the acknowledgement counted", || {
        let s = lab.stats();
        (s.sid.wake_ups_acknowledged == 1).then_some(s)
    });
    assert_eq!((s.sid.transfers_started, s.sid.stop_transfer_demands), (1, 1));
    assert_eq!((s.sid.bad_acknowledgements, s.sid.wake_ups_abandoned), (0, 0));
    let d = s.dataplane.expect("data plane on");
    assert!(d.link_frames_sent >= 2 && d.link_frames_sent == s.sid.wake_ups_sent, "{d:?} {:?}", s.sid);
    assert_eq!(d.link_frames_failed, 0);
    assert_eq!(d.macs_learned, 2, "OLD_MAC at the start, TN_MAC at the stop, nothing from ARP");
}
