//! Registration Requests exactly as `mip_core::mobile_node::MobileNode` sends them, driven
//! against the real `mip_ha::HomeAgent`: first registration, renewal, a retransmission,
//! a move, deregistration away and at home, and registration by NAI under nonces.

use std::net::Ipv4Addr;

use mip_core::auth::{ReplayMethod, SecurityAssociation};
use mip_core::mobile_node::{MnState, MobileNode, MobileNodeConfig};
use mip_core::time::Time;
use mip_core::wire::{ext_type, RegistrationFlags as F, REPLY_FIXED_LEN, REQUEST_FIXED_LEN};
use mip_ha::HomeAgent;

use crate::check;
use crate::common::*;

/// The mobile node's UDP port: an ephemeral one, as a shell would bind.
const MN_PORT: u16 = 49_152;

/// What a request from the mobile node must say beyond its configuration.
#[derive(Debug, Clone, Copy)]
struct Want {
    lifetime: u16,
    home: Ipv4Addr,
    care_of: Ipv4Addr,
}

struct Sent {
    frame: usize,
    now: Time,
    payload: Vec<u8>,
    want: Want,
    nai: Option<Vec<u8>>,
    flags: u8,
    sa: SecurityAssociation,
}

struct Run {
    cap: Capture,
    requests: Vec<Sent>,
    /// Frame and payload of each home agent reply.
    replies: Vec<(usize, Vec<u8>)>,
}

impl Run {
    /// Takes the one request the node has queued, frames it from its care-of address
    /// (the home address when at home) to HA:434 and records what it must contain.
    fn take(&mut self, mn: &mut MobileNode, now: Time, label: &str, want: Want) -> Vec<u8> {
        let tx = mn
            .poll_transmit()
            .unwrap_or_else(|| panic!("{label}: the mobile node sent nothing"));
        assert!(mn.poll_transmit().is_none(), "{label}: one request");
        assert_eq!(
            tx.destination,
            sock(HA, 434),
            "{label}: to the home agent's port 434"
        );
        let frame = self.cap.udp(
            label,
            sock(want.care_of, MN_PORT),
            tx.destination,
            &tx.payload,
        );
        let cfg = mn.config();
        self.requests.push(Sent {
            frame,
            now,
            payload: tx.payload.clone(),
            want,
            nai: cfg.nai.clone(),
            flags: cfg.flags.bits(),
            sa: cfg.sa.clone(),
        });
        tx.payload
    }

    /// Hands a request to the home agent and its reply back to the node, framing the reply.
    fn deliver(
        &mut self,
        ha: &mut HomeAgent,
        mn: &mut MobileNode,
        now: Time,
        from: Ipv4Addr,
        request: &[u8],
    ) {
        let source = sock(from, MN_PORT);
        ha.handle_datagram(now, source, request);
        let tx = ha
            .poll_transmit()
            .unwrap_or_else(|| panic!("no reply to {request:02x?}"));
        let label = format!("home agent reply {}", self.replies.len() + 1);
        let frame = self
            .cap
            .udp(label, sock(HA, 434), tx.destination, &tx.payload);
        mn.handle_datagram(now, sock(HA, 434), &tx.payload);
        self.replies.push((frame, tx.payload));
    }

    /// Register, deliver, expect `state`: the common step.
    fn step(
        &mut self,
        ha: &mut HomeAgent,
        mn: &mut MobileNode,
        now: Time,
        label: &str,
        want: Want,
        state: MnState,
    ) {
        let request = self.take(mn, now, label, want);
        self.deliver(ha, mn, now, want.care_of, &request);
        assert_eq!(
            mn.state(),
            state,
            "{label}: {:?}",
            std::iter::from_fn(|| mn.poll_event()).collect::<Vec<_>>()
        );
    }
}

fn node(cfg: MobileNodeConfig) -> MobileNode {
    cfg.validate().unwrap_or_else(|e| panic!("{e}"));
    MobileNode::new(cfg, 7)
}

/// Timestamps, NAI sent along, T B and (to be dropped) r configured.
fn timestamp_node_run(run: &mut Run) {
    let mut ha = HomeAgent::new(ha_config(), 1);
    let mut cfg = MobileNodeConfig::new(HOME, HA, COA1, mn_sa());
    cfg.flags = F(F::T | F::B | F::R_RESERVED);
    cfg.nai = Some(NAI.as_bytes().to_vec());
    let mut mn = node(cfg);
    let away = |care_of, lifetime| Want {
        lifetime,
        home: HOME,
        care_of,
    };

    mn.register(t(0));
    run.step(
        &mut ha,
        &mut mn,
        t(0),
        "register",
        away(COA1, 300),
        MnState::Registered,
    );

    let renew = mn
        .refresh_at()
        .unwrap_or_else(|| panic!("no renewal scheduled"));
    mn.handle_timeout(renew);
    run.step(
        &mut ha,
        &mut mn,
        renew,
        "re-register (renewal)",
        away(COA1, 300),
        MnState::Registered,
    );

    // A request lost on the way, then its retransmission (a new identification, 3.6.3).
    let now = renew + std::time::Duration::from_secs(5);
    mn.register(now);
    let _lost = run.take(&mut mn, now, "re-register, lost", away(COA1, 300));
    let again = mn
        .poll_timeout()
        .unwrap_or_else(|| panic!("no retransmission timer"));
    mn.handle_timeout(again);
    run.step(
        &mut ha,
        &mut mn,
        again,
        "re-register, retransmitted",
        away(COA1, 300),
        MnState::Registered,
    );

    let now = again + std::time::Duration::from_secs(2);
    mn.move_to(now, COA2);
    run.step(
        &mut ha,
        &mut mn,
        now,
        "move to a new care-of address",
        away(COA2, 300),
        MnState::Registered,
    );

    let now = now + std::time::Duration::from_secs(2);
    mn.deregister(now);
    run.step(
        &mut ha,
        &mut mn,
        now,
        "deregister away",
        away(COA2, 0),
        MnState::Idle,
    );

    // Home again: care-of address = home address, lifetime 0 (3.6.1.2).
    let now = now + std::time::Duration::from_secs(2);
    mn.move_to(now, HOME);
    run.step(
        &mut ha,
        &mut mn,
        now,
        "deregister at home",
        away(HOME, 0),
        MnState::Idle,
    );
}

/// Nonces, no home address: the first request is answered 133 with the home agent's
/// nonce, the node's immediate second request is accepted and teaches it its address.
fn nonce_nai_node_run(run: &mut Run) {
    let mut c = ha_config();
    c.mobile_nodes[0].security_associations[0].replay = ReplayMethod::Nonce;
    let mut ha = HomeAgent::new(c, 42);
    let mut sa = mn_sa();
    sa.replay = ReplayMethod::Nonce;
    let mut cfg = MobileNodeConfig::new(Ipv4Addr::UNSPECIFIED, HA, COA3, sa);
    cfg.nai = Some(NAI.as_bytes().to_vec());
    cfg.flags = F(F::S | F::D | F::G);
    cfg.lifetime = 900;
    let mut mn = node(cfg);
    let want = Want {
        lifetime: 900,
        home: Ipv4Addr::UNSPECIFIED,
        care_of: COA3,
    };
    mn.register(t(100));
    run.step(
        &mut ha,
        &mut mn,
        t(100),
        "register by NAI, no nonce yet",
        want,
        MnState::Registering,
    );
    run.step(
        &mut ha,
        &mut mn,
        t(100),
        "register by NAI, home agent's nonce",
        want,
        MnState::Registered,
    );
    assert_eq!(mn.home_address(), HOME, "learned from the reply");
}

#[test]
fn mobile_node_requests_decode_field_by_field() {
    let mut run = Run {
        cap: Capture::new("rrq_mobile_node"),
        requests: Vec::new(),
        replies: Vec::new(),
    };
    timestamp_node_run(&mut run);
    let timestamp_requests = run.requests.len();
    nonce_nai_node_run(&mut run);
    let packets = run.cap.decode();

    let mut idents = Vec::new();
    let mut seconds = Vec::new();
    for sent in &run.requests {
        let v = View::new(&packets, &run.cap, sent.frame);
        let w = &v.what;
        let r = check::request(&v, &sent.payload);
        assert_eq!(v.u64("udp.dstport"), 434, "{w}");
        assert_eq!(
            v.ip("ip.src"),
            r.care_of_address,
            "{w}: sent from the care-of address"
        );
        assert_eq!(
            v.u64("mip.life"),
            u64::from(sent.want.lifetime),
            "{w}: lifetime"
        );
        assert_eq!(v.ip("mip.homeaddr"), sent.want.home, "{w}: home address");
        assert_eq!(v.ip("mip.haaddr"), HA, "{w}: home agent");
        assert_eq!(v.ip("mip.coa"), sent.want.care_of, "{w}: care-of address");
        // 3.3: r and x are sent as zero whatever the configuration holds.
        let flags = sent.flags & !(F::R_RESERVED | F::X);
        assert_eq!(v.u64("mip.flags"), u64::from(flags), "{w}: flags");
        assert!(!v.flag("mip.v") && !v.flag("mip.x"), "{w}: reserved bits");
        // 3.6.1.3: the NAI, then the Mobile-Home authenticator covering it.
        let nai = sent.nai.as_deref().map(String::from_utf8_lossy);
        assert_eq!(v.packet.get("mip.nai"), nai.as_deref(), "{w}: NAI");
        assert_eq!(v.all_u64("mip.ext.type"), [131, 32], "{w}: extensions");
        check::authenticators(
            &v,
            REQUEST_FIXED_LEN,
            &[(ext_type::MOBILE_HOME_AUTH, &sent.sa)],
        );
        idents.push(v.ident());
        seconds.push(sent.now.to_ntp() >> 32);
    }
    // 5.7.1: every timestamp request, retransmissions included, has a new, larger one,
    // whose high bits are the time of sending in NTP seconds.
    let stamps = &idents[..timestamp_requests];
    assert!(stamps.windows(2).all(|p| p[0] < p[1]), "{stamps:#x?}");
    let high: Vec<u64> = stamps.iter().map(|id| id >> 32).collect();
    assert_eq!(high, seconds[..timestamp_requests], "{stamps:#x?}");
    // 5.7.2: the second nonce request echoes, in its high bits, the nonce the 133 reply gave.
    let nonce_reply = run.replies.len() - 2;
    let ha_nonce = View::new(&packets, &run.cap, run.replies[nonce_reply].0).ident() >> 32;
    assert_eq!(idents[timestamp_requests] >> 32, 0, "no nonce known yet");
    assert_eq!(idents[timestamp_requests + 1] >> 32, ha_nonce);

    for (frame, payload) in &run.replies {
        let v = View::new(&packets, &run.cap, *frame);
        check::reply(&v, payload);
        check::authenticators(
            &v,
            REPLY_FIXED_LEN,
            &[(ext_type::MOBILE_HOME_AUTH, &mn_sa())],
        );
    }
    let codes: Vec<u64> = run
        .replies
        .iter()
        .map(|(f, _)| View::new(&packets, &run.cap, *f).u64("mip.code"))
        .collect();
    assert_eq!(codes, [0, 0, 0, 0, 0, 0, 133, 0]);
    assert_eq!(run.requests.len(), 9, "including the lost one");
}
