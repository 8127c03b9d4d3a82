//! Building requests from a mobile node and replies from a home agent, and reading what
//! the foreign agent sends, for the foreign agent's tests.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddrV4};

use mip_core::auth::{
    append_auth_extension, verify_authenticator, AuthAlgorithm, ReplayMethod, SecurityAssociation,
};
use mip_core::dataplane::{encapsulate, EncapOutcome, Encapsulation, TunnelParams};
use mip_core::time::Time;
use mip_core::wire::{
    ext_type, Extension, RegistrationFlags, RegistrationReply, RegistrationReplyRepr,
    RegistrationRequestRepr, ReplyCode, AUTH_EXT_COVERED_HEADER,
};
use mip_fa::config::{HomeAgentEntry, MobileNodeEntry};
use mip_fa::forwarder::Forwarder;
use mip_fa::{
    DeliveryStyle, FaEvent, FaTransmit, ForeignAgent, ForeignAgentConfig, LinkDatagram, MacAddr,
};

pub const COA: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
pub const HA: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const HOME: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
pub const HOME2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
pub const OTHER_COA: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 1);
pub const MN_MAC: MacAddr = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0a];
pub const MN2_MAC: MacAddr = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0b];
pub const FA_MAC: MacAddr = [0x02, 0x00, 0x00, 0x00, 0x01, 0x01];
pub const MN_PORT: u16 = 40_000;
pub const NAI: &str = "mn1@sidmip.example";
/// 2026-11-26T00:00:00Z.
pub const T0: u64 = 1_795_651_200;

pub fn t(secs: u64) -> Time {
    Time::from_secs(T0 + secs)
}

pub fn t_ms(ms: u64) -> Time {
    Time::from_micros((T0 * 1000 + ms) * 1000)
}

pub fn mn_ha_sa() -> SecurityAssociation {
    SecurityAssociation {
        spi: 256,
        algorithm: AuthAlgorithm::HmacMd5,
        key: b"0123456789abcdef".to_vec(),
        replay: ReplayMethod::Timestamp,
    }
}

pub fn fa_ha_sa() -> SecurityAssociation {
    SecurityAssociation {
        spi: 300,
        algorithm: AuthAlgorithm::HmacMd5,
        key: b"fa-ha shared key".to_vec(),
        replay: ReplayMethod::Timestamp,
    }
}

pub fn mn_fa_sa() -> SecurityAssociation {
    SecurityAssociation {
        spi: 400,
        algorithm: AuthAlgorithm::HmacMd5,
        key: b"mn-fa shared key".to_vec(),
        replay: ReplayMethod::Timestamp,
    }
}

/// Defaults, no unsolicited advertisements (so that only what a test asks for is sent).
pub fn config() -> ForeignAgentConfig {
    let mut c = ForeignAgentConfig::new(COA, 24);
    c.max_lifetime = 600;
    c.advertisement.unsolicited = false;
    c
}

pub fn with_ha_sa(mut c: ForeignAgentConfig) -> ForeignAgentConfig {
    c.home_agents.push(HomeAgentEntry {
        address: HA,
        sa: fa_ha_sa(),
    });
    c
}

pub fn with_mn_sa(mut c: ForeignAgentConfig) -> ForeignAgentConfig {
    c.mobile_nodes.push(MobileNodeEntry {
        home_address: Some(HOME),
        nai: None,
        sa: mn_fa_sa(),
    });
    c
}

pub fn fa_with(c: ForeignAgentConfig) -> ForeignAgent {
    ForeignAgent::new(c, t(0), 7)
}

pub fn fa() -> ForeignAgent {
    fa_with(config())
}

pub fn id(now: Time) -> u64 {
    now.to_ntp()
}

pub fn repr(now: Time, lifetime: u16) -> RegistrationRequestRepr {
    RegistrationRequestRepr {
        flags: RegistrationFlags::default(),
        lifetime,
        home_address: HOME,
        home_agent: HA,
        care_of_address: COA,
        identification: id(now),
    }
}

/// Fixed part, `before`, the Mobile-Home Authentication Extension, then `after`.
pub fn request(
    r: &RegistrationRequestRepr,
    before: &[Extension<'_>],
    after: &[Extension<'_>],
) -> Vec<u8> {
    let mut b = r.to_bytes();
    for e in before {
        e.append_to(&mut b).expect("extension fits");
    }
    append_auth_extension(&mut b, ext_type::MOBILE_HOME_AUTH, &mn_ha_sa());
    for e in after {
        e.append_to(&mut b).expect("extension fits");
    }
    b
}

/// A request as the mobile node sends it, with a Mobile-Foreign extension at the end.
pub fn request_with_mf(r: &RegistrationRequestRepr, sa: &SecurityAssociation) -> Vec<u8> {
    let mut b = request(r, &[], &[]);
    append_auth_extension(&mut b, ext_type::MOBILE_FOREIGN_AUTH, sa);
    b
}

pub fn link() -> LinkDatagram {
    LinkDatagram {
        source: SocketAddrV4::new(HOME, MN_PORT),
        destination: COA,
        ttl: Some(255),
        link_source: Some(MN_MAC),
    }
}

/// The one transmit queued, which must be a relayed request.
pub fn relayed(fa: &mut ForeignAgent) -> (Ipv4Addr, SocketAddrV4, Vec<u8>) {
    match take_one(fa) {
        FaTransmit::ToHomeAgent {
            source,
            destination,
            payload,
        } => (source, destination, payload),
        other => panic!("expected a relayed request, got {other:?}"),
    }
}

pub fn take_one(fa: &mut ForeignAgent) -> FaTransmit {
    let tx = fa.poll_transmit().expect("a transmit");
    assert!(fa.poll_transmit().is_none(), "exactly one transmit");
    tx
}

/// A reply to a mobile node: the route fields and the parsed fixed part.
#[derive(Debug)]
pub struct ToMn {
    pub source: SocketAddrV4,
    pub destination: SocketAddrV4,
    pub link: Option<MacAddr>,
    pub reply: RegistrationReplyRepr,
    pub payload: Vec<u8>,
}

pub fn to_mn(fa: &mut ForeignAgent) -> ToMn {
    match take_one(fa) {
        FaTransmit::ToMobileNode {
            source,
            destination,
            link_destination,
            payload,
        } => {
            let p = RegistrationReply::new_checked(&payload[..]).expect("reply parses");
            let reply = RegistrationReplyRepr::parse(&p).expect("reply parses");
            ToMn {
                source,
                destination,
                link: link_destination,
                reply,
                payload,
            }
        }
        other => panic!("expected a reply to the mobile node, got {other:?}"),
    }
}

pub fn denial(fa: &mut ForeignAgent) -> ReplyCode {
    to_mn(fa).reply.code
}

/// The home agent's reply to `r`: fixed part, Mobile-Home extension, then `after`.
pub fn ha_reply(
    r: &RegistrationRequestRepr,
    code: ReplyCode,
    lifetime: u16,
) -> RegistrationReplyRepr {
    RegistrationReplyRepr {
        code,
        lifetime,
        home_address: r.home_address,
        home_agent: r.home_agent,
        identification: r.identification,
    }
}

pub fn reply_bytes(rep: &RegistrationReplyRepr, fh: Option<&SecurityAssociation>) -> Vec<u8> {
    let mut b = rep.to_bytes();
    append_auth_extension(&mut b, ext_type::MOBILE_HOME_AUTH, &mn_ha_sa());
    if let Some(sa) = fh {
        append_auth_extension(&mut b, ext_type::FOREIGN_HOME_AUTH, sa);
    }
    b
}

pub fn from_ha() -> SocketAddrV4 {
    SocketAddrV4::new(HA, 434)
}

/// Registers HOME through `fa` (relay, accepted reply) and clears the queues.
pub fn register(
    fa: &mut ForeignAgent,
    now: Time,
    flags: RegistrationFlags,
    lifetime: u16,
) -> RegistrationRequestRepr {
    let mut r = repr(now, lifetime);
    r.flags = flags;
    fa.handle_request(now, &link(), &request(&r, &[], &[]));
    let _ = relayed(fa);
    let fh = fa.config().home_agents.first().map(|h| h.sa.clone());
    fa.handle_reply(
        now,
        from_ha(),
        &reply_bytes(&ha_reply(&r, ReplyCode::Accepted, lifetime), fh.as_ref()),
    );
    let out = to_mn(fa);
    assert_eq!(out.reply.code, ReplyCode::Accepted);
    while fa.poll_event().is_some() {}
    r
}

/// Checks an authentication extension of type `ty` at `offset` in `msg` under `sa`.
pub fn assert_auth_at(msg: &[u8], offset: usize, ty: u8, sa: &SecurityAssociation) {
    assert_eq!(msg[offset], ty, "extension type");
    assert_eq!(msg[offset + 1], 20, "length: SPI + 16-byte authenticator");
    assert_eq!(&msg[offset + 2..offset + 6], &sa.spi.to_be_bytes(), "SPI");
    assert_eq!(msg.len(), offset + 22, "the authenticator ends the message");
    let covered = &msg[..offset + AUTH_EXT_COVERED_HEADER];
    assert!(
        verify_authenticator(sa.algorithm, &sa.key, covered, &msg[offset + 6..]),
        "authenticator verifies"
    );
}

// ---- data plane -------------------------------------------------------------------

pub const CN: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);

pub fn visitor(kind: Encapsulation, reverse_tunnel: bool) -> FaEvent {
    FaEvent::VisitorAdded {
        home_address: HOME,
        home_agent: HA,
        care_of_address: COA,
        mac: Some(MN_MAC),
        reverse_tunnel,
        encapsulation: kind,
        delivery: DeliveryStyle::Direct,
        lifetime: 300,
    }
}

pub fn forwarder(event: FaEvent) -> Forwarder {
    let mut f = Forwarder::new(COA, vec![COA], FA_MAC, 1500);
    f.apply(&event);
    f
}

/// An IPv4/UDP packet from `src` to `dst` with `ttl` and `data`.
pub fn udp_packet(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, data: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8; 2048];
    let n = mip_core::dataplane::frame::UdpFrame {
        dst_mac: [0; 6],
        src_mac: [0; 6],
        source: SocketAddrV4::new(src, 5000),
        destination: SocketAddrV4::new(dst, 6000),
        ttl,
        identification: 0,
    }
    .emit(data, &mut frame)
    .unwrap();
    let total = 20 + 8 + data.len();
    frame[14..n.max(14 + total)][..total].to_vec()
}

pub fn tunnel(kind: Encapsulation, from: Ipv4Addr, to: Ipv4Addr, inner: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 4096];
    let p = TunnelParams {
        forwarding: false,
        ..TunnelParams::default()
    };
    match encapsulate(kind, inner, from, to, &p, &mut out) {
        EncapOutcome::Encapsulated { len } => out[..len].to_vec(),
        other => panic!("{other:?}"),
    }
}
