//! End-to-end over loopback: the `mip-ha` daemon, `mip-mn` and `ha-admin` as processes.
//!
//! The daemon's home agent address is 127.0.0.1 (what mip-mn writes in the Home Agent
//! field when it sends to 127.0.0.1); home and care-of addresses are lab addresses.
//! Every wait is bounded by `common::DEADLINE`; nothing asserts on a fixed sleep.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::UdpSocket;
use std::process::Command;
use std::time::SystemTime;

use common::*;
use mip_core::replay::{self, MobileNodeClock};
use mip_core::time::Time;
use mip_core::wire::{ext_type, Extension, ReplyCode, REQUEST_FIXED_LEN};
use rand::{Rng, SeedableRng};

fn now() -> Time {
    Time::from_system(SystemTime::now())
}

#[test]
fn validate_accepts_the_sample_config_and_refuses_a_broken_one() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/ha.toml");
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(mip_ha_bin());
    cmd.args(["--config", sample, "--validate"]);
    let run = run_bounded(cmd, dir.path());
    assert_eq!(run.code(), Some(0), "{run:?}");
    assert!(run.stdout.starts_with("configuration ok: home agent 198.18.0.1/24"), "{run:?}");
    assert_eq!(run.stdout.lines().count(), 1);

    let broken = dir.path().join("broken.toml");
    let text = std::fs::read_to_string(sample).unwrap().replace("spi = 256", "spi = 12");
    std::fs::write(&broken, text).unwrap();
    let mut cmd = Command::new(mip_ha_bin());
    cmd.arg("--config").arg(&broken).arg("--validate");
    let run = run_bounded(cmd, dir.path());
    assert_eq!(run.code(), Some(2), "{run:?}");
    assert!(run.stderr.contains("reserved"), "{run:?}");
}

#[test]
fn mip_mn_registers_lists_and_deregisters() {
    let ha = Daemon::start(600);
    let run = ha.mn1("register", &["--lifetime", "300", "--reverse-tunnel"]);
    assert_eq!(run.code(), Some(0), "{run:?}");
    assert!(has_event(&run.stdout, "registered"), "{run:?}");

    let bindings = ha.bindings();
    assert_eq!(bindings.len(), 1, "{bindings:?}");
    let b = &bindings[0];
    assert_eq!((b.home_address, b.care_of_address), (HOME1, COA1));
    assert_eq!(b.nai.as_deref(), Some(NAI1));
    assert_eq!(b.lifetime_granted, 300);
    assert!(b.lifetime_remaining <= 300 && b.lifetime_remaining >= 300 - DEADLINE.as_secs());
    assert!(b.reverse_tunnel);

    let shown = ha.admin(&["binding", "show", "198.18.0.10"]);
    assert_eq!(shown.code(), Some(0), "{shown:?}");
    assert!(shown.stdout.contains("198.19.1.10") && shown.stdout.contains(NAI1), "{shown:?}");

    let run = ha.mn1("deregister", &[]);
    assert_eq!(run.code(), Some(0), "{run:?}");
    assert!(has_event(&run.stdout, "deregistered"), "{run:?}");
    assert!(ha.bindings().is_empty());
    let stats = ha.stats();
    assert_eq!((stats.accepted, stats.deregistrations, stats.bindings), (1, 1, 0));
}

#[test]
fn wrong_key_is_answered_131_and_registers_nothing() {
    let ha = Daemon::start(600);
    // On the wire: a request signed with a key the home agent does not hold.
    let wrong = mip_core::auth::SecurityAssociation { key: hex::decode(WRONG_KEY).unwrap(), ..sa1() };
    let sock = ha.raw_client();
    let id = now().to_ntp();
    let reply = exchange(&sock, &request(id, 300, &wrong), &sa1());
    assert_eq!(reply.repr.code, ReplyCode::MobileNodeFailedAuthentication);
    assert_eq!(u8::from(reply.repr.code), 131);
    assert_eq!(reply.repr.lifetime, 0);
    assert_eq!(reply.repr.identification, id, "a 131 reply echoes the identification");
    assert!(reply.authentic, "the reply is signed with the node's configured key");

    // mip-mn with the wrong key: RFC 5944 3.6.2.1 b makes it discard the 131 it cannot
    // authenticate (nothing acts on it), but it reports it, and exits "denied" with 131.
    let run = ha.mn1("register", &["--key", WRONG_KEY, "--max-attempts", "1"]);
    let lines = json_lines(&run.stdout);
    assert!(lines.iter().any(|v| v["event"] == "unauthenticated_reply" && v["code"] == 131), "{run:?}");
    assert!(lines.iter().any(|v| v["event"] == "denied" && v["code"] == 131), "{run:?}");
    assert_eq!(run.code(), Some(1), "{run:?}");

    assert!(ha.bindings().is_empty());
    let stats = ha.stats();
    assert_eq!(stats.denied.get(&131), Some(&2), "{stats:?}");
    assert_eq!(stats.authentication_failures, 2);
}

#[test]
fn replayed_request_gets_133_and_resynchronisation_succeeds() {
    let ha = Daemon::start(600);
    let sa = sa1();
    let sock = ha.raw_client();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);

    // A node whose clock is a minute slow: 133, the home agent's time in the reply's
    // high 32 bits and our low 32 bits echoed (RFC 5944 5.7.1).
    let mut clock = MobileNodeClock::new();
    let slow = now() - std::time::Duration::from_secs(60);
    let stale_id = clock.next_identification(slow, rng.gen());
    let reply = exchange(&sock, &request(stale_id, 300, &sa), &sa);
    assert_eq!(reply.repr.code, ReplyCode::IdentificationMismatch, "{:?}", reply.repr);
    assert!(reply.authentic);
    assert!(replay::low_order_matches(stale_id, reply.repr.identification));
    let ha_secs = i64::from(replay::high_order(reply.repr.identification));
    let our_secs = (now().to_ntp() >> 32) as i64;
    assert!((ha_secs - our_secs).abs() <= 2, "HA time {ha_secs} vs ours {our_secs}");
    // The client resynchronises from the reply and is accepted.
    assert!(clock.resynchronise(stale_id, reply.repr.identification, slow));
    let id = clock.next_identification(slow, rng.gen());
    let reply = exchange(&sock, &request(id, 300, &sa), &sa);
    assert_eq!(reply.repr.code, ReplyCode::Accepted, "{:?}", reply.repr);

    // Replay: A and B accepted, then A again is stale.
    let a = request(clock.next_identification(slow, rng.gen()), 300, &sa);
    assert_eq!(exchange(&sock, &a, &sa).repr.code, ReplyCode::Accepted);
    let b = request(clock.next_identification(slow, rng.gen()), 300, &sa);
    assert_eq!(exchange(&sock, &b, &sa).repr.code, ReplyCode::Accepted);
    let replayed = exchange(&sock, &a, &sa);
    assert_eq!(replayed.repr.code, ReplyCode::IdentificationMismatch);
    assert_eq!(replayed.bytes[1], 133, "code byte on the wire");
    // The client's next request is fresh again.
    let c = request(clock.next_identification(slow, rng.gen()), 300, &sa);
    assert_eq!(exchange(&sock, &c, &sa).repr.code, ReplyCode::Accepted);
    assert_eq!(ha.stats().denied.get(&133), Some(&2));
}

#[test]
fn mip_mn_recovers_from_133_with_nonces() {
    let ha = Daemon::start(600);
    // The home agent has given this node no nonce yet: the first request gets 133
    // carrying one, and mip-mn retries with it (RFC 5944 5.7.2).
    let run = ha.mn(
        "register",
        &[
            "--home-address",
            "198.18.0.11",
            "--care-of",
            "198.19.1.11",
            "--spi",
            "257",
            "--key",
            KEY2,
            "--algorithm",
            "keyed-md5",
            "--replay",
            "nonce",
        ],
    );
    assert_eq!(run.code(), Some(0), "{run:?}");
    let events: Vec<_> = json_lines(&run.stdout).iter().map(|v| v["event"].to_string()).collect();
    assert_eq!(events, ["\"resynchronized\"", "\"registered\""], "{run:?}");
    assert_eq!(ha.stats().denied.get(&133), Some(&1));
    assert_eq!(ha.bindings()[0].care_of_address, COA2);
}

#[test]
fn mip_mn_recovers_from_133_with_timestamps() {
    let ha = Daemon::start(600);
    let sa = sa1();
    let sock = ha.raw_client();
    // Make the home agent's last accepted timestamp L = (this second) + 0.49 s, just
    // after we look at the clock at the start of a second. mip-mn's first request
    // (its clock, a few ms later) is below L: 133. Its resynchronised clock is the home
    // agent's second + 0.5 s, above L: accepted. If mip-mn took longer than ~0.4 s to
    // start, its first request is simply accepted; try again then.
    for attempt in 0..5 {
        let t = wait_for("the start of a second", || {
            let t = now();
            (t.as_micros() % 1_000_000 < 50_000).then_some(t)
        });
        let second = Time::from_secs(t.as_micros() / 1_000_000);
        let l = (second + std::time::Duration::from_millis(490)).to_ntp();
        let reply = exchange(&sock, &request(l, 300, &sa), &sa);
        assert_eq!(reply.repr.code, ReplyCode::Accepted, "attempt {attempt}");
        let run = ha.mn1("register", &[]);
        assert_eq!(run.code(), Some(0), "{run:?}");
        if has_event(&run.stdout, "resynchronized") {
            assert!(has_event(&run.stdout, "registered"), "{run:?}");
            assert_eq!(ha.bindings()[0].care_of_address, COA1);
            return;
        }
        eprintln!("attempt {attempt}: mip-mn started too late to be refused; again");
        // Wait out the second so that the next L is above what mip-mn just registered.
        wait_for("the next second", || {
            (now().as_micros() / 1_000_000 > second.as_micros() / 1_000_000 + 1).then_some(())
        });
    }
    panic!("mip-mn never sent a request below the home agent's last timestamp");
}

#[test]
fn short_lifetime_binding_expires() {
    let ha = Daemon::start(2);
    let run = ha.mn1("register", &["--lifetime", "300"]);
    assert_eq!(run.code(), Some(0), "{run:?}");
    let bindings = ha.bindings();
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0].lifetime_granted, 2, "max_lifetime caps the grant");
    wait_for("the binding to expire", || ha.bindings().is_empty().then_some(()));
    // The daemon's timer removed it (not only hid it): the counter says so.
    wait_for("the expiry to be counted", || (ha.stats().bindings_expired == 1).then_some(()));
}

#[test]
fn revoke_and_unknown_homes() {
    let ha = Daemon::start(600);
    assert_eq!(ha.mn1("register", &[]).code(), Some(0));
    let run = ha.admin(&["binding", "revoke", "198.18.0.10"]);
    assert_eq!(run.code(), Some(0), "{run:?}");
    assert!(run.stdout.contains("revoked 1 binding"), "{run:?}");
    assert!(ha.bindings().is_empty());

    let run = ha.admin(&["binding", "show", "198.18.0.99"]);
    assert_eq!(run.code(), Some(4), "{run:?}");
    assert!(run.stdout.is_empty() && run.stderr.contains("no binding"), "{run:?}");
    let run = ha.admin(&["--json", "binding", "revoke", "198.18.0.10"]);
    assert_eq!(run.code(), Some(4), "{run:?}");
    let err: serde_json::Value = serde_json::from_str(&run.stderr).unwrap();
    assert_eq!(err["error"]["kind"], "not_found");
    assert_eq!(ha.admin(&["binding", "show", "not-an-address"]).code(), Some(2));
    assert_eq!(ha.stats().bindings_revoked, 1);
}

#[test]
fn ha_admin_without_a_daemon_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nobody.sock");
    for args in [&["binding", "list"][..], &["stats", "--json"][..]] {
        let mut cmd = Command::new(ha_admin_bin());
        cmd.arg("--socket").arg(&missing).args(args);
        let run = run_bounded(cmd, dir.path());
        assert_eq!(run.code(), Some(3), "{run:?}");
        assert!(run.stdout.is_empty(), "{run:?}");
    }
}

/// Malformed datagrams and a flood of random ones are counted, never answered, and
/// leave the daemon serving.
#[test]
fn bad_input_is_counted_and_the_daemon_survives() {
    let mut ha = Daemon::start(600);
    let sa = sa1();
    let sock = ha.raw_client();
    let valid = request(now().to_ntp(), 300, &sa);
    let signed_with = |ext: Extension<'_>| {
        let mut b = valid[..REQUEST_FIXED_LEN].to_vec();
        ext.append_to(&mut b).unwrap();
        mip_core::auth::append_auth_extension(&mut b, ext_type::MOBILE_HOME_AUTH, &sa);
        b
    };
    // Over-long: 8 KiB of skippable extensions and no authenticator.
    let mut long = valid[..REQUEST_FIXED_LEN].to_vec();
    while long.len() + 255 <= 8192 {
        Extension::Unknown { ext_type: 200, data: &[0xa5; 253] }.append_to(&mut long).unwrap();
    }
    let mut zero_nai = valid[..REQUEST_FIXED_LEN].to_vec();
    zero_nai.extend_from_slice(&[ext_type::NAI, 0]);
    mip_core::auth::append_auth_extension(&mut zero_nai, ext_type::MOBILE_HOME_AUTH, &sa);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated fixed part", valid[..10].to_vec(), "malformed"),
        ("length past the end", valid[..valid.len() - 5].to_vec(), "malformed"),
        ("zero-length NAI", zero_nai, "malformed"),
        ("over-long", long, "no_authenticator"),
        (
            "unknown critical extension",
            signed_with(Extension::Unknown { ext_type: 100, data: &[1, 2] }),
            "unknown_extension",
        ),
        ("empty", Vec::new(), "not_a_request"),
    ];
    let before = ha.stats();
    for (_, bytes, _) in &cases {
        sock.send(bytes).unwrap();
    }
    // Nothing answered them: the first reply on this socket is the valid request's.
    let reply = exchange(&sock, &valid, &sa);
    assert_eq!(reply.repr.code, ReplyCode::Accepted, "{:?}", reply.repr);
    let after = ha.stats();
    for reason in ["malformed", "no_authenticator", "unknown_extension", "not_a_request"] {
        let expected = cases.iter().filter(|c| c.2 == reason).count() as u64;
        assert_eq!(after.discarded(reason) - before.discarded(reason), expected, "{reason}: {after:?}");
    }

    // 10,000 random datagrams, in paced batches so that none is lost in a socket
    // buffer and each must be counted.
    let flood = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let base = ha.stats_direct();
    let total = 10_000u64;
    // Well under what a default socket receive buffer holds.
    const BATCH: u64 = 100;
    let mut sent = 0u64;
    while sent < total {
        for _ in 0..BATCH {
            let len = rng.gen_range(0..600);
            let mut d: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            if let Some(first) = d.first_mut() {
                // A quarter look like requests, to get past the type check.
                if rng.gen_ratio(1, 4) {
                    *first = 1;
                }
            }
            flood.send_to(&d, ha.addr).unwrap();
        }
        sent += BATCH;
        wait_for("the daemon to read a batch", || {
            (ha.stats_direct().datagrams - base.datagrams >= sent).then_some(())
        });
    }
    let stats = ha.stats();
    assert!(ha.is_running());
    assert_eq!(stats.datagrams - base.datagrams, total);
    // A random datagram whose first byte is 23 looks like a Generic Notification
    // Acknowledgement (RFC 6098): the SID Agent counts it as a bad acknowledgement.
    let dropped = |s: &mip_ha::control::StatsReport| s.total_discarded() + s.sid.bad_acknowledgements;
    assert_eq!(dropped(&stats) - dropped(&base), total, "{stats:?}");
    assert_eq!(stats.replies_sent, base.replies_sent, "no random datagram was answered");

    // And it still serves.
    let run = ha.mn1("register", &[]);
    assert_eq!(run.code(), Some(0), "{run:?}\n{}", ha.log());
}

#[test]
fn sigterm_stops_cleanly_and_removes_the_control_socket() {
    let mut ha = Daemon::start(600);
    assert!(ha.socket.exists());
    // A second daemon on the same control socket refuses to start and leaves it alone.
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(mip_ha_bin());
    cmd.arg("--config").arg(&ha.config).args(["--listen", "127.0.0.1:0"]);
    let second = run_bounded(cmd, dir.path());
    assert_eq!(second.code(), Some(1), "{second:?}");
    assert!(second.stderr.contains("in use"), "{second:?}");
    assert!(ha.socket.exists());

    let mut kill = Command::new("kill");
    kill.args(["-TERM", &ha.pid().to_string()]);
    assert_eq!(run_bounded(kill, dir.path()).code(), Some(0));
    let status = ha.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", ha.log());
    assert!(!ha.socket.exists(), "control socket left behind");
}

#[test]
fn two_nodes_hmac_timestamp_and_keyed_md5_nonce_are_listed() {
    let ha = Daemon::start(600);
    assert_eq!(ha.mn1("register", &[]).code(), Some(0));
    let run = ha.mn(
        "register",
        &[
            "--home-address",
            "198.18.0.11",
            "--care-of",
            "198.19.1.11",
            "--spi",
            "257",
            "--key",
            KEY2,
            "--algorithm",
            "keyed-md5",
            "--replay",
            "nonce",
        ],
    );
    assert_eq!(run.code(), Some(0), "{run:?}");
    let homes: Vec<_> = ha.bindings().iter().map(|b| b.home_address).collect();
    assert_eq!(homes, [HOME1, HOME2]);
    let table = ha.admin(&["binding", "list"]);
    assert_eq!(table.code(), Some(0));
    let lines: Vec<_> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{table:?}");
    assert!(lines[0].starts_with("HOME") && lines[0].contains("CARE-OF") && lines[0].contains("NAI"));
    let text = ha.admin(&["stats"]);
    assert!(text.stdout.contains("133") && text.stdout.contains("identification mismatch"), "{text:?}");
}

/// IP_PKTINFO tells the daemon where a datagram was sent: a request to the home
/// network's broadcast address (127.255.255.255 for 127.0.0.1/8) gets 136 (RFC 5944
/// 3.8.2.1), the same request unicast is accepted.
#[test]
fn request_to_the_broadcast_address_gets_136() {
    let ha = Daemon::start_on(std::net::Ipv4Addr::UNSPECIFIED, 600);
    let sa = sa1();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_broadcast(true).unwrap();
    sock.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut buf = [0u8; 2048];
    let mut clock = MobileNodeClock::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(136);
    let broadcast = std::net::SocketAddrV4::new(std::net::Ipv4Addr::new(127, 255, 255, 255), ha.addr.port());
    for (to, expected) in [(broadcast, ReplyCode::UnknownHomeAgentAddress), (ha.addr, ReplyCode::Accepted)] {
        let id = clock.next_identification(now(), rng.gen());
        sock.send_to(&request(id, 300, &sa), to).unwrap();
        let (n, _) = sock.recv_from(&mut buf).expect("a reply");
        let reply = parse_reply(&buf[..n], &sa);
        assert_eq!(reply.repr.code, expected, "sent to {to}");
        assert!(reply.authentic);
    }
}

/// The control socket answers garbage with `bad_request`, closes on an over-long
/// line, and keeps serving.
#[test]
fn control_socket_refuses_bad_and_oversized_input() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::os::unix::net::UnixStream;
    let ha = Daemon::start(600);
    let mut s = UnixStream::connect(&ha.socket).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    for line in [&b"not json\n"[..], b"{\"command\":\"reboot\"}\n", b"\xff\xfe\n", b"\n"] {
        s.write_all(line).unwrap();
        let mut answer = String::new();
        reader.read_line(&mut answer).unwrap();
        let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(v["error"]["kind"], "bad_request", "{answer}");
    }
    // The same connection still serves a good request.
    s.write_all(b"{\"command\":\"binding_list\"}\n").unwrap();
    let mut answer = String::new();
    reader.read_line(&mut answer).unwrap();
    assert_eq!(answer.trim(), r#"{"ok":{"bindings":[]}}"#);

    let mut s = UnixStream::connect(&ha.socket).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut long = vec![b'x'; 64 * 1024];
    long.push(b'\n');
    // The daemon may close before reading it all: a write error is fine.
    let _ = s.write_all(&long);
    let mut rest = String::new();
    let _ = s.read_to_string(&mut rest);
    assert!(rest.contains("bad_request") && rest.contains("at most"), "{rest}");
    assert_eq!(rest.lines().count(), 1, "one answer, then the connection is closed");

    assert_eq!(ha.stats().datagrams, 0);
}
