//! Issue 4, "each message of the exchange is captured in the lab and decoded by tshark
//! without error": the real daemons (`mip-ha` as the Agent, `sidctl serve` on the
//! Transferring Node and two Targets) run a whole SID exchange in the lab while dumpcap
//! captures on the home LAN (the Agent's and the TN's interfaces) and both foreign LANs;
//! every capture is decoded by tshark with `tools/sid.lua`.
//!
//! The exchange: negotiation TN -> Target 1 (Offer, Accept, Session Key, Confirm, with the
//! further-transfer permission), the transfer request and reply, renewals by Target 1
//! (its confirming one and `sidctl renew`), a further transfer (negotiation Target 1 ->
//! Target 2, further-transfer request and reply), renewals by Target 2, its end
//! (`sidctl stop`: lifetime 0), the Agent's wake-up to the TN and the TN's
//! acknowledgement; then a second transfer to Target 1 ended by the TN's stop-transfer
//! demand. Every message kind must appear, decoded (negotiation fields, `mip.type`,
//! `sid.*`, `mipgn.*`), with no malformed packet, no expert error and no Lua error. A
//! compact table (kind, count, first frame, from -> to) is printed. Needs root (CI runs
//! as root), tshark and dumpcap.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use conformance::tshark::{Packet, Tshark};
use tools::lab::mobility;
use tools::lab::sid::{negotiate_and_transfer, sidctl, start_devices, wait_status, Device, TargetSpec};
use tools::lab::{Capture, Lab, LabError};

const TN: &str = "198.18.0.10";
const AGENT: &str = "198.18.0.1";
const T1: &str = "198.18.1.1";
const T2: &str = "198.18.2.1";
/// What the captures keep: registrations, wake-ups and the negotiation.
const FILTER: &str = "udp port 434 or udp port 4343";

/// Lab captures are taken on veth interfaces, where the kernel's own UDP checksums are
/// still partial (transmit offload): not judged here, as in lab_mobility.rs. Everything
/// else (IP checksums, every dissector's expert items) must be clean.
fn tshark_args() -> Vec<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("sid.lua");
    assert!(script.is_file(), "{} is missing", script.display());
    vec!["-o".into(), "udp.check_checksum:FALSE".into(), "-X".into(), format!("lua_script:{}", script.display())]
}

fn name(ip: &str) -> &str {
    match ip {
        TN => "TN",
        AGENT => "Agent",
        T1 => "Target1",
        T2 => "Target2",
        other => other,
    }
}

/// How many times the daemon's recent log mentions `what`.
fn log_count(status: &serde_json::Value, what: &str) -> usize {
    status["log"].as_array().map_or(0, |l| l.iter().filter(|e| e.as_str().is_some_and(|s| s.contains(what))).count())
}

/// Waits until `device`'s log mentions `what` more than `before` times.
fn wait_log(lab: &Lab, device: &Device, what: &str, before: usize) -> Result<(), LabError> {
    wait_status(lab, device, what, |s| (log_count(s, what) > before).then_some(()))
}

fn logged(lab: &Lab, device: &Device, what: &str) -> Result<usize, LabError> {
    Ok(log_count(&sidctl(lab, device, &["status"])?["data"], what))
}

/// The whole exchange, step by step; stops at the first step that fails and says which.
fn exchange(lab: &Lab, tn: &Device, t1: &Device, t2: &Device) -> Result<(), String> {
    let step = |what: &str, r: Result<(), LabError>| r.map_err(|e| format!("{what}: {e}"));
    let tn_home = |what: &str| {
        step(what, wait_status(lab, tn, "TN home", |s| (s["transferring_node"]["state"] == "home").then_some(())))
    };
    let holding = |d: &Device, what: &str| {
        step(what, wait_status(lab, d, "holding, confirmed", |s| (s["target"]["state"] == "holding").then_some(())))
    };
    step("negotiation TN -> Target 1 and transfer (--further)", negotiate_and_transfer(lab, tn, t1, &["--further"]))?;
    holding(t1, "Target 1's confirming renewal")?;
    let before = logged(lab, t1, "Renewed").map_err(|e| e.to_string())?;
    step("sidctl renew on Target 1", sidctl(lab, t1, &["renew"]).map(drop))?;
    step("Target 1's renewal accepted", wait_log(lab, t1, "Renewed", before))?;
    step("further transfer Target 1 -> Target 2", negotiate_and_transfer(lab, t1, t2, &[]))?;
    step("Target 1 handed over", wait_log(lab, t1, "HandedOver", 0))?;
    holding(t2, "Target 2's confirming renewal")?;
    let before = logged(lab, t2, "Renewed").map_err(|e| e.to_string())?;
    step("sidctl renew on Target 2", sidctl(lab, t2, &["renew"]).map(drop))?;
    step("Target 2's renewal accepted", wait_log(lab, t2, "Renewed", before))?;
    let woken = |s: &serde_json::Value| s["transferring_node"]["wake_ups_accepted"].as_u64();
    let wake_ups = sidctl(lab, tn, &["status"]).map(|s| woken(&s["data"]).unwrap_or(0)).map_err(|e| e.to_string())?;
    step("sidctl stop on Target 2 (lifetime 0)", sidctl(lab, t2, &["stop"]).map(drop))?;
    step("Target 2 ended", wait_log(lab, t2, "Ended", 0))?;
    step("the TN woken", wait_status(lab, tn, "wake-up accepted", |s| (woken(s)? > wake_ups).then_some(())))?;
    tn_home("the TN home after the wake-up")?;
    step("second negotiation TN -> Target 1 and transfer", negotiate_and_transfer(lab, tn, t1, &[]))?;
    holding(t1, "Target 1's confirming renewal (second transfer)")?;
    step("sidctl stop on the TN (stop-transfer demand)", sidctl(lab, tn, &["stop"]).map(drop))?;
    tn_home("the TN home after its stop-transfer demand")?;
    // The Agent's wake-up after the demand, and the TN's answer, if any, come within a second.
    std::thread::sleep(Duration::from_secs(1));
    Ok(())
}

/// One UDP datagram as captured somewhere.
struct Seen {
    capture: &'static str,
    frame: u64,
    time: f64,
    src: String,
    dst: String,
    /// The UDP payload, to recognise the same datagram in several captures.
    payload: Vec<u8>,
    packet: Packet,
}

fn udp_payload(p: &Packet) -> Option<Vec<u8>> {
    let frame = p.raw("frame")?;
    let ihl = usize::from(frame.get(14)? & 0x0f) * 4;
    frame.get(14 + ihl + 8..).map(<[u8]>::to_vec)
}

const NEG_TYPES: [&str; 6] = ["?", "Offer", "Accept", "Refuse", "Session Key", "Confirm"];

/// A request's kind from its SID elements and lifetime.
fn request_kind(p: &Packet) -> &'static str {
    if p.has("sid.stop.reason") {
        "stop-transfer demand"
    } else if p.has("sid.tn") {
        "further-transfer request"
    } else if p.has("sid.target") {
        "transfer request"
    } else if p.get_u64("mip.life") == Some(0) {
        "end (lifetime 0)"
    } else {
        "renewal"
    }
}

/// The kind of one datagram; replies are named after the request with their
/// Identification (`requests`), with their code when not 0.
fn kind(s: &Seen, requests: &HashMap<String, &'static str>) -> String {
    let p = &s.packet;
    let route = format!("{} -> {}", name(&s.src), name(&s.dst));
    let what = if let Some(t) = p.get_u64("sidneg.type") {
        format!("negotiation {}", NEG_TYPES.get(t as usize).copied().unwrap_or("?"))
    } else if p.get_u64("mip.type") == Some(1) {
        request_kind(p).to_owned()
    } else if p.get_u64("mip.type") == Some(3) {
        let request = p.get("mip.ident").and_then(|i| requests.get(i)).copied().unwrap_or("unmatched request");
        let code = p.get_u64("mip.code").unwrap_or(u64::MAX);
        let request = request.trim_end_matches(" request").trim_end_matches(" demand");
        if code == 0 { format!("{request} reply") } else { format!("{request} reply (denied {code})") }
    } else if p.get_u64("mipgn.type") == Some(22) {
        format!("wake-up (reason {})", p.get("sid.wakeup.reason").unwrap_or("none"))
    } else if p.get_u64("mipgn.type") == Some(23) {
        "wake-up acknowledgement".to_owned()
    } else {
        "other UDP".to_owned()
    };
    format!("{what}|{route}")
}

/// What must appear: (kind, from, to).
const REQUIRED: [(&str, &str, &str); 24] = [
    ("negotiation Offer", "TN", "Target1"),
    ("negotiation Accept", "Target1", "TN"),
    ("negotiation Session Key", "TN", "Target1"),
    ("negotiation Confirm", "Target1", "TN"),
    ("transfer request", "TN", "Agent"),
    ("transfer reply", "Agent", "TN"),
    ("renewal", "Target1", "Agent"),
    ("renewal reply", "Agent", "Target1"),
    ("negotiation Offer", "Target1", "Target2"),
    ("negotiation Accept", "Target2", "Target1"),
    ("negotiation Session Key", "Target1", "Target2"),
    ("negotiation Confirm", "Target2", "Target1"),
    ("further-transfer request", "Target1", "Agent"),
    ("further-transfer reply", "Agent", "Target1"),
    ("renewal", "Target2", "Agent"),
    ("renewal reply", "Agent", "Target2"),
    ("end (lifetime 0)", "Target2", "Agent"),
    ("end (lifetime 0) reply", "Agent", "Target2"),
    // RFC-NOTES "SID — the Agent", 6: reason 1 = ended by a renewal with lifetime 0.
    ("wake-up (reason 1)", "Agent", "TN"),
    ("wake-up acknowledgement", "TN", "Agent"),
    ("stop-transfer demand", "TN", "Agent"),
    ("stop-transfer reply", "Agent", "TN"),
    // The stop-transfer demand ends the transfer: the Agent wakes the TN, reason 2.
    ("wake-up (reason 2)", "Agent", "TN"),
    ("wake-up acknowledgement", "TN", "Agent"),
];

#[test]
fn every_message_of_a_sid_exchange_is_captured_and_decoded() {
    let Some(_lab) = common::lab::begin("sid_capture") else { return };
    let tshark = Tshark::find().expect("tshark");
    let lab = Lab::up(mobility::topology()).expect("lab up");
    // Home LAN: the Agent's and the TN's interfaces (a bridge forwards a unicast frame
    // only to its destination's port); foreign 1 and 2: the Targets'.
    let points: [(&'static str, &str); 4] = [("home/ha", "ha"), ("home/mn", "mn"), ("foreign1", "fa1"), ("foreign2", "fa2")];
    let captures: Vec<(&'static str, Capture)> =
        points.iter().map(|(label, host)| (*label, lab.capture(host, "eth0", FILTER).expect("capture"))).collect();
    let devices = start_devices(
        &lab,
        &[
            TargetSpec::new("fa1", "laptop", T1.parse().expect("address")),
            TargetSpec::new("fa2", "tablet", T2.parse().expect("address")),
        ],
    )
    .expect("devices start");
    let (tn, t1, t2) = (&devices.tn, &devices.targets[0], &devices.targets[1]);
    let begun = Instant::now();
    let outcome = exchange(&lab, tn, t1, t2);
    let took = begun.elapsed();
    let statuses: Vec<String> = [tn, t1, t2]
        .iter()
        .map(|d| match sidctl(&lab, d, &["status"]) {
            Ok(s) => format!("{} ({}): {:#}", d.identity, d.host, s["data"]),
            Err(e) => format!("{} ({}): {e}", d.identity, d.host),
        })
        .collect();
    let files: Vec<(&'static str, PathBuf)> = captures.into_iter().map(|(l, c)| (l, c.stop().expect("capture stops"))).collect();
    drop(devices);

    // Decode every capture; collect problems and every datagram.
    let args = tshark_args();
    let mut problems = Vec::new();
    let mut seen: Vec<Seen> = Vec::new();
    for (label, path) in &files {
        let packets = tshark.decode(path, &args).unwrap_or_else(|e| panic!("{label}: {e}"));
        for p in packets {
            let lua = p.lua_errors();
            if p.is_malformed() || !p.errors().is_empty() || !lua.is_empty() {
                problems.push(format!("{label} frame {}: malformed={} errors={:?}", p.number, p.is_malformed(), p.errors()));
            }
            let (Some(src), Some(dst), Some(payload)) = (p.get("ip.src"), p.get("ip.dst"), udp_payload(&p)) else { continue };
            let time = p.get("frame.time_epoch").and_then(|t| t.parse().ok()).unwrap_or(0.0);
            seen.push(Seen { capture: label, frame: p.number, time, src: src.to_owned(), dst: dst.to_owned(), payload, packet: p });
        }
    }
    seen.sort_by(|a, b| a.time.total_cmp(&b.time));
    let requests: HashMap<String, &'static str> = seen
        .iter()
        .filter(|s| s.packet.get_u64("mip.type") == Some(1))
        .filter_map(|s| Some((s.packet.get("mip.ident")?.to_owned(), request_kind(&s.packet))))
        .collect();

    // One row per kind: distinct datagrams (the same one seen at two points counts once).
    struct Row {
        count: usize,
        first: String,
        time: f64,
    }
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    let mut distinct: HashSet<(String, String, Vec<u8>)> = HashSet::new();
    for s in &seen {
        if !distinct.insert((s.src.clone(), s.dst.clone(), s.payload.clone())) {
            continue;
        }
        let k = kind(s, &requests);
        let row = rows.entry(k).or_insert(Row { count: 0, first: format!("{}#{}", s.capture, s.frame), time: s.time });
        row.count += 1;
    }
    let t0 = rows.values().map(|r| r.time).fold(f64::INFINITY, f64::min);
    let mut ordered: Vec<(&String, &Row)> = rows.iter().collect();
    ordered.sort_by(|a, b| a.1.time.total_cmp(&b.1.time));
    let mut table = format!(
        "SID exchange on the wire ({} datagrams at {} capture points, exchange {:.1} s)\n{:<34} {:>5}  {:<16} {:>8}  from -> to\n",
        distinct.len(),
        files.len(),
        took.as_secs_f64(),
        "message kind",
        "count",
        "first frame",
        "at (s)"
    );
    for (k, r) in &ordered {
        let (what, route) = k.split_once('|').unwrap_or((k.as_str(), ""));
        table.push_str(&format!("{what:<34} {:>5}  {:<16} {:>8.3}  {route}\n", r.count, r.first, r.time - t0));
    }
    eprintln!("{table}");

    let missing: Vec<String> = REQUIRED
        .iter()
        .filter(|(what, from, to)| !rows.contains_key(&format!("{what}|{from} -> {to}")))
        .map(|(what, from, to)| format!("{what} ({from} -> {to})"))
        .collect();
    let denied: Vec<&String> = rows.keys().filter(|k| k.contains("denied") || k.contains("unmatched")).collect();
    if let Err(step) = &outcome {
        panic!(
            "the exchange stopped at: {step}\nmissing on the wire: {missing:?}\n{table}\ndevice status:\n{}",
            statuses.join("\n")
        );
    }
    assert!(problems.is_empty(), "tshark problems (malformed, expert errors, Lua errors):\n{}\n{table}", problems.join("\n"));
    assert!(missing.is_empty(), "message kinds never seen on the wire: {missing:#?}\n{table}");
    assert!(denied.is_empty(), "requests denied or replies unmatched: {denied:?}\n{table}");
    // The Offers name the devices and the session: what a user reads in the capture.
    let offer = |from: &str, to: &str| {
        seen.iter()
            .find(|s| s.src == from && s.dst == to && s.packet.get_u64("sidneg.type") == Some(1))
            .map(|s| &s.packet)
            .unwrap_or_else(|| panic!("no Offer {from} -> {to}\n{table}"))
    };
    for (p, from, to, further) in [(offer(TN, T1), "desk", "laptop", true), (offer(T1, T2), "laptop", "tablet", false)] {
        let what = format!("Offer {from} -> {to}");
        assert_eq!((p.get("sidneg.init_id"), p.get("sidneg.resp_id")), (Some(from), Some(to)), "{what}");
        assert_eq!(p.get_u64("sidneg.role"), Some(1), "{what}: offered by the holder");
        assert_eq!((p.get("sidneg.terms.tn"), p.get("sidneg.terms.agent")), (Some(TN), Some(AGENT)), "{what}");
        assert_eq!(p.get_bool("sidneg.terms.f"), Some(further), "{what}: F");
        assert_eq!(p.get_u64("sidneg.terms.lla_len"), Some(6), "{what}: the TN's MAC for the wake-up");
    }
    // Every SID element the exchange uses was decoded by the dissector somewhere.
    let mut types: Vec<u64> = seen.iter().flat_map(|s| s.packet.all_u64("sid.vendor_type")).collect();
    types.sort_unstable();
    types.dedup();
    for t in [1, 2, 3, 4, 5, 7, 8, 9] {
        assert!(types.contains(&t), "SID element type {t} decoded somewhere (seen {types:?})\n{table}");
    }
}
