//! Registration Replies exactly as `mip_ha::HomeAgent` sends them: the home agent is
//! driven with crafted requests, each request and its reply go into one capture, and
//! tshark's reading of every reply is checked against our parser, against what the home
//! agent was expected to put in, and (for the code's text) against `ReplyCode`.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use mip_core::auth::{append_auth_extension, ReplayMethod, SecurityAssociation};
use mip_core::time::Time;
use mip_core::wire::{
    ext_type, Extension, RegistrationFlags as F, RegistrationRequestRepr, ReplyCode,
    VendorExtension, REPLY_FIXED_LEN,
};
use mip_ha::config::ForeignAgentEntry;
use mip_ha::{HomeAgent, HomeAgentConfig};

use crate::check;
use crate::common::*;

fn with_fa(mut c: HomeAgentConfig) -> HomeAgentConfig {
    c.foreign_agents.push(ForeignAgentEntry {
        address: FA,
        sa: fa_sa(),
    });
    c
}

fn repr(now: Time, flags: u8, coa: Ipv4Addr, lifetime: u16) -> RegistrationRequestRepr {
    RegistrationRequestRepr {
        flags: F(flags),
        lifetime,
        home_address: HOME,
        home_agent: HA,
        care_of_address: coa,
        identification: now.to_ntp(),
    }
}

/// Fixed part, `exts`, Mobile-Home authentication with `sa`, then Foreign-Home
/// authentication with `fh` when given (as a foreign agent relays it).
fn signed(
    r: &RegistrationRequestRepr,
    exts: &[Extension<'_>],
    sa: &SecurityAssociation,
    fh: Option<&SecurityAssociation>,
) -> Vec<u8> {
    let mut b = r.to_bytes();
    for e in exts {
        e.append_to(&mut b).unwrap_or_else(|e| panic!("{e}"));
    }
    append_auth_extension(&mut b, ext_type::MOBILE_HOME_AUTH, sa);
    if let Some(fh) = fh {
        append_auth_extension(&mut b, ext_type::FOREIGN_HOME_AUTH, fh);
    }
    b
}

#[derive(Debug, Clone, Copy)]
enum Ident {
    /// Copied from the request.
    Echo,
    /// 5.7.1: high 32 bits the home agent's time (NTP seconds), low 32 from the request.
    HomeAgentTime(Time),
    /// 5.7.2: low 32 bits the node's nonce from the request, high a fresh home agent nonce.
    NewNonce,
}

/// What a reply must say.
struct Expect {
    code: u8,
    lifetime: u16,
    home: Ipv4Addr,
    ident: Ident,
    mobile: SecurityAssociation,
    foreign: Option<SecurityAssociation>,
}

impl Expect {
    fn code(code: u8) -> Self {
        Expect {
            code,
            lifetime: 0,
            home: HOME,
            ident: Ident::Echo,
            mobile: mn_sa(),
            foreign: None,
        }
    }

    fn lifetime(self, lifetime: u16) -> Self {
        Expect { lifetime, ..self }
    }
}

struct Exchange {
    reply_frame: usize,
    request: Vec<u8>,
    reply: Vec<u8>,
    source: SocketAddrV4,
    expect: Expect,
}

struct Bench {
    cap: Capture,
    exchanges: Vec<Exchange>,
}

impl Bench {
    /// Hands `request` to the home agent as if from `source`, takes its one reply and
    /// frames both: source -> HA:434, then HA:434 -> where the home agent sends it.
    fn exchange(
        &mut self,
        ha: &mut HomeAgent,
        now: Time,
        label: &str,
        source: SocketAddrV4,
        request: Vec<u8>,
        expect: Expect,
    ) {
        ha.handle_datagram(now, source, &request);
        let tx = ha
            .poll_transmit()
            .unwrap_or_else(|| panic!("{label}: the home agent sent no reply"));
        assert!(ha.poll_transmit().is_none(), "{label}: one reply");
        assert_eq!(
            tx.destination, source,
            "{label}: 3.8.3.1, reply to the request's source"
        );
        self.cap
            .udp(format!("{label}: request"), source, sock(HA, 434), &request);
        let reply_frame = self.cap.udp(
            format!("{label}: reply {}", expect.code),
            sock(HA, 434),
            tx.destination,
            &tx.payload,
        );
        self.exchanges.push(Exchange {
            reply_frame,
            request,
            reply: tx.payload,
            source,
            expect,
        });
    }
}

/// Every reply the home agent gives, one scenario each.
fn scenarios() -> Bench {
    let mut b = Bench {
        cap: Capture::new("rrp_home_agent"),
        exchanges: Vec::new(),
    };
    let mn = sock(COA1, 40_000);
    let mut wrong_key = mn_sa();
    wrong_key.key = b"not the right key".to_vec();

    // 0, then 0 for the deregistration of the same binding.
    let mut ha = HomeAgent::new(ha_config(), 1);
    let r = repr(t(0), F::T, COA1, 300);
    b.exchange(
        &mut ha,
        t(0),
        "accepted",
        mn,
        signed(&r, &[], &mn_sa(), None),
        Expect::code(0).lifetime(300),
    );
    let r = repr(t(2), 0, COA1, 0);
    b.exchange(
        &mut ha,
        t(2),
        "deregistered",
        mn,
        signed(&r, &[], &mn_sa(), None),
        Expect::code(0),
    );

    // 0 with the home address filled in (3.8.1: NAI, zero home address), lifetime capped.
    let mut ha = HomeAgent::new(ha_config(), 1);
    let r = RegistrationRequestRepr {
        home_address: Ipv4Addr::UNSPECIFIED,
        ..repr(t(0), 0, COA1, 0xffff)
    };
    let nai = Extension::Nai(NAI.as_bytes());
    b.exchange(
        &mut ha,
        t(0),
        "accepted by NAI",
        mn,
        signed(&r, &[nai], &mn_sa(), None),
        Expect::code(0).lifetime(600),
    );

    // 0 through a foreign agent sharing an association: Foreign-Home auth in the reply.
    let mut ha = HomeAgent::new(with_fa(ha_config()), 1);
    let r = repr(t(0), 0, FA, 300);
    let fa = sock(FA, 434);
    let via_fa = Expect {
        foreign: Some(fa_sa()),
        ..Expect::code(0).lifetime(300)
    };
    b.exchange(
        &mut ha,
        t(0),
        "accepted via FA",
        fa,
        signed(&r, &[], &mn_sa(), Some(&fa_sa())),
        via_fa,
    );
    // 132: the Foreign-Home authenticator does not verify.
    let mut bad_fa = fa_sa();
    bad_fa.key = b"wrong fa-ha key!".to_vec();
    let r = repr(t(1), 0, FA, 300);
    let denied = Expect {
        foreign: Some(fa_sa()),
        ..Expect::code(132)
    };
    b.exchange(
        &mut ha,
        t(1),
        "FA failed authentication",
        fa,
        signed(&r, &[], &mn_sa(), Some(&bad_fa)),
        denied,
    );
    // 131 through the foreign agent: still signed for both.
    let r = repr(t(2), 0, FA, 300);
    let denied = Expect {
        foreign: Some(fa_sa()),
        ..Expect::code(131)
    };
    b.exchange(
        &mut ha,
        t(2),
        "MN failed authentication via FA",
        fa,
        signed(&r, &[], &wrong_key, Some(&fa_sa())),
        denied,
    );

    // 1: S asked of a home agent without simultaneous bindings.
    let mut c = ha_config();
    c.simultaneous_bindings = 1;
    let mut ha = HomeAgent::new(c, 1);
    let r = repr(t(0), F::S, COA1, 300);
    b.exchange(
        &mut ha,
        t(0),
        "no simultaneous bindings",
        mn,
        signed(&r, &[], &mn_sa(), None),
        Expect::code(1).lifetime(300),
    );

    // 129: the NAI names mobile node 1, the home address is not its own.
    let mut ha = HomeAgent::new(ha_config(), 1);
    let r = RegistrationRequestRepr {
        home_address: Ipv4Addr::new(198, 18, 0, 77),
        ..repr(t(0), 0, COA1, 300)
    };
    let denied = Expect {
        home: r.home_address,
        ..Expect::code(129)
    };
    b.exchange(
        &mut ha,
        t(0),
        "administratively prohibited",
        mn,
        signed(&r, &[nai], &mn_sa(), None),
        denied,
    );

    // 130: binding table full.
    let mut c = ha_config();
    c.max_bindings = 1;
    let mut ha = HomeAgent::new(c, 1);
    let r = repr(t(0), 0, COA1, 300);
    b.exchange(
        &mut ha,
        t(0),
        "fills the table",
        mn,
        signed(&r, &[], &mn_sa(), None),
        Expect::code(0).lifetime(300),
    );
    let r = RegistrationRequestRepr {
        home_address: HOME2,
        ..repr(t(1), 0, COA2, 300)
    };
    let denied = Expect {
        home: HOME2,
        mobile: home2_sa(),
        ..Expect::code(130)
    };
    b.exchange(
        &mut ha,
        t(1),
        "insufficient resources",
        sock(COA2, 40_000),
        signed(&r, &[], &home2_sa(), None),
        denied,
    );

    // 131: wrong key.
    let mut ha = HomeAgent::new(ha_config(), 1);
    let r = repr(t(0), 0, COA1, 300);
    b.exchange(
        &mut ha,
        t(0),
        "MN failed authentication",
        mn,
        signed(&r, &[], &wrong_key, None),
        Expect::code(131),
    );

    // 133: the node's clock is 60 s behind (timestamps).
    let mut ha = HomeAgent::new(ha_config(), 1);
    let r = RegistrationRequestRepr {
        identification: (t(0) - Duration::from_secs(60)).to_ntp(),
        ..repr(t(0), 0, COA1, 300)
    };
    let denied = Expect {
        ident: Ident::HomeAgentTime(t(0)),
        ..Expect::code(133)
    };
    b.exchange(
        &mut ha,
        t(0),
        "identification mismatch (timestamp)",
        mn,
        signed(&r, &[], &mn_sa(), None),
        denied,
    );

    // 133 under nonces: the first request cannot know the home agent's nonce.
    let mut c = ha_config();
    c.mobile_nodes[0].security_associations[0].replay = ReplayMethod::Nonce;
    let mut nonce_sa = mn_sa();
    nonce_sa.replay = ReplayMethod::Nonce;
    let mut ha = HomeAgent::new(c, 42);
    let r = RegistrationRequestRepr {
        identification: 0x1234_5678,
        ..repr(t(0), 0, COA1, 300)
    };
    let denied = Expect {
        ident: Ident::NewNonce,
        ..Expect::code(133)
    };
    b.exchange(
        &mut ha,
        t(0),
        "identification mismatch (nonce)",
        mn,
        signed(&r, &[], &nonce_sa, None),
        denied,
    );

    // 134: the reserved r bit set.
    let mut ha = HomeAgent::new(ha_config(), 1);
    let r = repr(t(0), F::R_RESERVED, COA1, 300);
    b.exchange(
        &mut ha,
        t(0),
        "poorly formed request",
        mn,
        signed(&r, &[], &mn_sa(), None),
        Expect::code(134),
    );

    // 135: a third simultaneous binding where two are allowed.
    let mut c = ha_config();
    c.simultaneous_bindings = 2;
    let mut ha = HomeAgent::new(c, 1);
    for (i, coa) in [COA1, COA2, COA3].into_iter().enumerate() {
        let now = t(i as u64);
        let r = repr(now, F::S, coa, 300);
        let expect = if i < 2 {
            Expect::code(0).lifetime(300)
        } else {
            Expect::code(135)
        };
        let label = format!("simultaneous binding {}", i + 1);
        b.exchange(
            &mut ha,
            now,
            &label,
            sock(coa, 40_000),
            signed(&r, &[], &mn_sa(), None),
            expect,
        );
    }

    // 136: another home agent address.
    let mut ha = HomeAgent::new(ha_config(), 1);
    let r = RegistrationRequestRepr {
        home_agent: Ipv4Addr::new(198, 18, 0, 2),
        ..repr(t(0), 0, COA1, 300)
    };
    b.exchange(
        &mut ha,
        t(0),
        "unknown home agent address",
        mn,
        signed(&r, &[], &mn_sa(), None),
        Expect::code(136),
    );

    // 137, and 139 for G and for M.
    let mut c = ha_config();
    c.reverse_tunnel = false;
    c.gre_encapsulation = false;
    c.minimal_encapsulation = false;
    let mut ha = HomeAgent::new(c, 1);
    for (i, (flag, code, label)) in [
        (F::T, 137, "reverse tunnel unavailable"),
        (F::G, 139, "GRE unavailable"),
        (F::M, 139, "minimal encapsulation unavailable"),
    ]
    .into_iter()
    .enumerate()
    {
        let now = t(i as u64);
        let r = repr(now, flag, COA1, 300);
        b.exchange(
            &mut ha,
            now,
            label,
            mn,
            signed(&r, &[], &mn_sa(), None),
            Expect::code(code),
        );
    }

    // 140: a Critical Vendor/Organization Specific Extension it does not understand (an
    // organization other than the one whose SID extensions the home agent knows).
    let mut ha = HomeAgent::new(ha_config(), 1);
    let r = repr(t(0), 0, COA1, 300);
    let cvse = Extension::CriticalVendor(VendorExtension {
        org_id: 9,
        vendor_type: 9,
        value: &[0; 4],
    });
    b.exchange(
        &mut ha,
        t(0),
        "unsupported CVSE",
        mn,
        signed(&r, &[cvse], &mn_sa(), None),
        Expect::code(140),
    );
    // 141: the foreign agent's CVSE, after the Mobile-Home authenticator.
    let mut ha = HomeAgent::new(with_fa(ha_config()), 1);
    let r = repr(t(0), 0, FA, 300);
    let mut bytes = signed(&r, &[], &mn_sa(), None);
    cvse.append_to(&mut bytes).unwrap_or_else(|e| panic!("{e}"));
    append_auth_extension(&mut bytes, ext_type::FOREIGN_HOME_AUTH, &fa_sa());
    let denied = Expect {
        foreign: Some(fa_sa()),
        ..Expect::code(141)
    };
    b.exchange(
        &mut ha,
        t(0),
        "unsupported CVSE from the FA",
        fa,
        bytes,
        denied,
    );
    b
}

/// The custom column that makes tshark print the code's text, as its GUI would.
const CODE_COLUMN: &str = "gui.column.format:\"Code\",\"%Cus:mip.code:0:R\"";

#[test]
fn home_agent_replies_decode_field_by_field() {
    let b = scenarios();
    let decoded = b.cap.checked();
    let packets = &decoded.packets;
    let mut codes_seen = Vec::new();
    for x in &b.exchanges {
        let v = View::new(packets, &b.cap, x.reply_frame);
        let w = &v.what;
        let request = check::request(&View::new(packets, &b.cap, x.reply_frame - 1), &x.request);
        assert_eq!(v.u64("udp.srcport"), 434, "{w}");
        assert_eq!(v.u64("udp.dstport"), u64::from(x.source.port()), "{w}");
        assert_eq!(v.ip("ip.dst"), *x.source.ip(), "{w}");

        let rep = check::reply(&v, &x.reply);
        let e = &x.expect;
        assert_eq!(v.u64("mip.code"), u64::from(e.code), "{w}: code");
        assert_eq!(u8::from(rep.code), e.code, "{w}: code");
        assert_eq!(v.u64("mip.life"), u64::from(e.lifetime), "{w}: lifetime");
        assert_eq!(v.ip("mip.homeaddr"), e.home, "{w}: home address");
        assert_eq!(
            v.ip("mip.haaddr"),
            HA,
            "{w}: 3.8.3.2, always the home agent's own address"
        );
        let ident = v.ident();
        match e.ident {
            Ident::Echo => assert_eq!(ident, request.identification, "{w}: identification"),
            Ident::HomeAgentTime(now) => {
                assert_eq!(ident >> 32, now.to_ntp() >> 32, "{w}: 5.7.1 high bits");
                assert_eq!(
                    ident as u32, request.identification as u32,
                    "{w}: 5.7.1 low bits"
                );
            }
            Ident::NewNonce => assert_eq!(
                ident as u32, request.identification as u32,
                "{w}: 5.7.2 low bits"
            ),
        }

        // Mobile-Home authentication first, Foreign-Home last when the foreign agent
        // shares an association (3.8.3.3).
        let mut types = vec![u64::from(ext_type::MOBILE_HOME_AUTH)];
        let mut keys = vec![(ext_type::MOBILE_HOME_AUTH, &e.mobile)];
        if let Some(fa) = &e.foreign {
            types.push(u64::from(ext_type::FOREIGN_HOME_AUTH));
            keys.push((ext_type::FOREIGN_HOME_AUTH, fa));
        }
        assert_eq!(v.all_u64("mip.ext.type"), types, "{w}: extensions");
        check::authenticators(&v, REPLY_FIXED_LEN, &keys);
        codes_seen.push(e.code);
    }
    codes_seen.sort_unstable();
    codes_seen.dedup();
    assert_eq!(
        codes_seen,
        [0, 1, 129, 130, 131, 132, 133, 134, 135, 136, 137, 139, 140, 141]
    );

    // The code's text as tshark shows it: known, and meaning what `ReplyCode` says.
    let rows = tshark()
        .fields(
            &decoded.path,
            &["_ws.col.Code", "mip.code"],
            &["-o", CODE_COLUMN],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    for x in &b.exchanges {
        let row = rows
            .get(x.reply_frame)
            .unwrap_or_else(|| panic!("no row {}", x.reply_frame));
        let text = row
            .first()
            .and_then(|c| c.first())
            .map_or("", String::as_str);
        let number = row.get(1).and_then(|c| c.first()).map(String::as_str);
        assert_eq!(
            number,
            Some(x.expect.code.to_string().as_str()),
            "row {}",
            x.reply_frame
        );
        let ours = ReplyCode::from(x.expect.code).description();
        assert!(
            known_text(text, x.expect.code),
            "{}: tshark does not know code {}: {text:?}",
            b.cap.label(x.reply_frame),
            x.expect.code
        );
        assert!(
            same_meaning(text, ours),
            "code {}: tshark {text:?}, ours {ours:?}",
            x.expect.code
        );
    }
}

/// tshark names a value it knows; else it shows "Unknown (n)" or the bare number.
fn known_text(text: &str, code: u8) -> bool {
    !text.is_empty() && !text.starts_with("Unknown") && text != code.to_string()
}

/// Whether tshark's text for a code says the same as our description: tshark's
/// abbreviations spelt out, every word of its text must be among ours.
pub fn same_meaning(tshark: &str, ours: &str) -> bool {
    let lower = tshark.to_lowercase();
    let spelt = lower
        .replace("reg deny (ha)", "denied by home agent")
        .replace("reg deny (fa)(nai)", "denied by foreign agent")
        .replace("reg deny (fa)", "denied by foreign agent")
        .replace("reg accepted", "registration accepted");
    let ours = words(&ours.to_lowercase());
    let has = |w: &str| ours.iter().any(|o| o == w);
    words(&spelt).iter().all(|w| {
        let expanded: &[&str] = match w.as_str() {
            "mn" => &["mobile", "node"],
            "ha" => &["home", "agent"],
            "fa" => &["foreign", "agent"],
            "id" => &["identification"],
            _ => &[],
        };
        has(w) || (!expanded.is_empty() && expanded.iter().all(|x| has(x)))
    })
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `tshark -G values`: Wireshark's table of `mip.code` texts.
fn tshark_code_table() -> Vec<(u8, String)> {
    let out = std::process::Command::new(tshark().path())
        .args(["-G", "values"])
        .output()
        .unwrap_or_else(|e| panic!("tshark -G values: {e}"));
    assert!(out.status.success(), "tshark -G values: {}", out.status);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut cols = line.split('\t');
            match (cols.next(), cols.next(), cols.next(), cols.next()) {
                (Some("V"), Some("mip.code"), Some(n), Some(text)) => {
                    Some((n.parse().ok()?, text.to_owned()))
                }
                _ => None,
            }
        })
        .collect()
}

/// Codes `ReplyCode` names on purpose where Wireshark 4.0 does not (it has no 194, RFC
/// 5944 3.4's "invalid Home Agent address" from a foreign agent).
const ONLY_OURS: &[u8] = &[194];

/// Codes whose texts legitimately differ in words: 73 (RFC 3344's "VJ compression
/// unavailable", reserved since RFC 5944), 127 and 192 ("error code for experimental
/// use"), 149 and 150 (Wireshark's PMIP_ constant names).
const WORDED_DIFFERENTLY: &[u8] = &[73, 127, 149, 150, 192];

#[test]
fn reply_code_table_agrees_with_tshark() {
    let table = tshark_code_table();
    assert!(
        table.len() > 50,
        "tshark's mip.code table looks empty: {table:?}"
    );
    let mut problems = Vec::new();
    for (n, text) in &table {
        let ours = ReplyCode::from(*n);
        if matches!(ours, ReplyCode::Unknown(_)) {
            problems.push(format!("{n}: tshark knows {text:?}, ReplyCode does not"));
        } else if !WORDED_DIFFERENTLY.contains(n) && !same_meaning(text, ours.description()) {
            problems.push(format!(
                "{n}: tshark {text:?} vs ours {:?}",
                ours.description()
            ));
        }
    }
    for code in ReplyCode::ALL {
        let n = u8::from(*code);
        if !ONLY_OURS.contains(&n) && !table.iter().any(|(m, _)| *m == n) {
            problems.push(format!(
                "{n}: ReplyCode names it ({}), tshark does not",
                code.description()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
