//! Building signed requests and reading replies for the home agent's tests.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddrV4};

use mip_core::auth::{
    append_auth_extension, verify_authenticator, AuthAlgorithm, ReplayMethod, SecurityAssociation,
};
use mip_core::time::Time;
use mip_core::wire::{
    ext_type, Extension, RegistrationFlags, RegistrationReply, RegistrationReplyRepr,
    RegistrationRequestRepr, AUTH_EXT_COVERED_HEADER,
};
use mip_ha::config::{ForeignAgentEntry, MobileNodeEntry};
use mip_ha::{HomeAgent, HomeAgentConfig};

pub const HA: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const HOME: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
pub const HOME2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
pub const COA1: Ipv4Addr = Ipv4Addr::new(198, 19, 1, 10);
pub const COA2: Ipv4Addr = Ipv4Addr::new(198, 19, 2, 10);
pub const COA3: Ipv4Addr = Ipv4Addr::new(198, 19, 3, 10);
pub const FA: Ipv4Addr = Ipv4Addr::new(198, 19, 1, 1);
pub const NAI: &str = "mn1@sidmip.example";
/// 2026-11-26T00:00:00Z, so that timestamps look like real ones.
pub const T0: u64 = 1_795_651_200;

pub fn t(secs: u64) -> Time {
    Time::from_secs(T0 + secs)
}

pub fn mn_sa() -> SecurityAssociation {
    SecurityAssociation {
        spi: 256,
        algorithm: AuthAlgorithm::HmacMd5,
        key: b"0123456789abcdef".to_vec(),
        replay: ReplayMethod::Timestamp,
    }
}

pub fn fa_sa() -> SecurityAssociation {
    SecurityAssociation {
        spi: 300,
        algorithm: AuthAlgorithm::HmacMd5,
        key: b"fa-ha shared key".to_vec(),
        replay: ReplayMethod::Timestamp,
    }
}

pub fn config() -> HomeAgentConfig {
    let mut c = HomeAgentConfig::new(HA, 24);
    c.max_lifetime = 600;
    c.mobile_nodes.push(MobileNodeEntry {
        home_address: Some(HOME),
        nai: Some(NAI.to_string()),
        security_associations: vec![mn_sa()],
    });
    let mut sa2 = mn_sa();
    sa2.spi = 257;
    sa2.key = b"another key 1234".to_vec();
    c.mobile_nodes.push(MobileNodeEntry {
        home_address: Some(HOME2),
        nai: None,
        security_associations: vec![sa2],
    });
    c
}

pub fn with_foreign_agent(mut c: HomeAgentConfig) -> HomeAgentConfig {
    c.foreign_agents.push(ForeignAgentEntry { address: FA, sa: fa_sa() });
    c
}

pub fn ha() -> HomeAgent {
    HomeAgent::new(config(), 7)
}

/// The identification a well-behaved mobile node would send at `now`.
pub fn id_at(now: Time) -> u64 {
    now.to_ntp()
}

pub fn repr(now: Time, coa: Ipv4Addr, lifetime: u16) -> RegistrationRequestRepr {
    RegistrationRequestRepr {
        flags: RegistrationFlags::default(),
        lifetime,
        home_address: HOME,
        home_agent: HA,
        care_of_address: coa,
        identification: id_at(now),
    }
}

/// Fixed part, `before` extensions, the Mobile-Home Authentication Extension.
pub fn signed(r: &RegistrationRequestRepr, before: &[Extension<'_>], sa: &SecurityAssociation) -> Vec<u8> {
    let mut b = r.to_bytes();
    for e in before {
        e.append_to(&mut b).expect("extension fits");
    }
    append_auth_extension(&mut b, ext_type::MOBILE_HOME_AUTH, sa);
    b
}

pub fn from_mn(coa: Ipv4Addr) -> SocketAddrV4 {
    SocketAddrV4::new(coa, 40_000)
}

/// The one reply the home agent sent, parsed, with its authenticator checked against `sa`.
pub fn reply(ha: &mut HomeAgent, sa: &SecurityAssociation) -> (SocketAddrV4, RegistrationReplyRepr, Vec<u8>) {
    let tx = ha.poll_transmit().expect("a reply");
    assert!(ha.poll_transmit().is_none(), "exactly one reply");
    let packet = RegistrationReply::new_checked(&tx.payload[..]).expect("reply parses");
    let repr = RegistrationReplyRepr::parse(&packet).expect("reply parses");
    let first = packet.extensions().next().expect("an extension").expect("well formed");
    match first.ext {
        Extension::MobileHomeAuth(a) => {
            assert_eq!(a.spi, sa.spi);
            let covered = &tx.payload[..first.offset + AUTH_EXT_COVERED_HEADER];
            assert!(
                verify_authenticator(sa.algorithm, &sa.key, covered, a.authenticator),
                "reply authenticator must verify under the mobile node's association"
            );
        }
        other => panic!("first reply extension must be Mobile-Home auth, got {other:?}"),
    }
    (tx.destination, repr, tx.payload)
}
