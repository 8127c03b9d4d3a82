//! The SID formats (`sid_ext::wire`) written to a pcap file and decoded by tshark twice:
//! by Wireshark alone, which must find nothing wrong with our Registration Requests and
//! read each SID CVSE's organization, vendor type and value as we wrote them; and with
//! our dissector `tools/sid.lua`, which must name every SID field with the value we set,
//! and decode the wake-up (RFC 6098 Generic Notification) that Wireshark 4.0 leaves as
//! bare UDP.
//!
//! `SIDMIP_KEEP_PCAP=<dir>` keeps the pcap files for a look in Wireshark.

use std::net::{Ipv4Addr, SocketAddrV4};

use conformance::capture;
use conformance::pcap;
use conformance::tshark::Packet;
use mip_core::auth::{append_auth_extension, AuthAlgorithm, ReplayMethod, SecurityAssociation};
use mip_core::wire::ext_type::MOBILE_HOME_AUTH;
use mip_core::wire::notification::{
    GenericNotificationAckRepr, GenericNotificationRepr, NotificationDirection, ACK_CODE_SUCCESS,
};
use mip_core::wire::{
    Extension, RegistrationFlags, RegistrationRequestRepr, VendorExtension, REQUEST_FIXED_LEN,
};
use sid_ext::wire::wake_up::{build_wake_up, build_wake_up_ack};
use sid_ext::wire::{
    vendor_type, EncryptedSessionKey, LinkLayerAddress, SessionKeyAlgorithm, SidElement,
    SidExtensions, StopReason, TransferFlags, WakeUpReason, DEFAULT_ORG_ID,
};

const AGENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const TN: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const INTERIM: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 99);
const TARGET: Ipv4Addr = Ipv4Addr::new(198, 19, 1, 10);
const TARGET2: Ipv4Addr = Ipv4Addr::new(198, 19, 2, 10);
const TN_MAC: [u8; 6] = [0x02, 0x00, 0xc6, 0x12, 0x00, 0x0a];
const TN_NEW_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x20, 0x30];
const SESSION_SPI: u32 = 0x0000_1000;
const SESSION_SPI2: u32 = 0x0000_1001;
/// 2026-11-26T00:00:00Z in NTP seconds' place, as timestamp identifications look.
const ID: u64 = 0xecd0_a580_0000_0001;

fn sa(spi: u32, key: &[u8]) -> SecurityAssociation {
    SecurityAssociation {
        spi,
        algorithm: AuthAlgorithm::HmacMd5,
        key: key.to_vec(),
        replay: ReplayMethod::Timestamp,
    }
}

/// The Transferring Node's association with the Agent.
fn tn_sa() -> SecurityAssociation {
    sa(256, b"0123456789abcdef")
}

/// The first Target's temporary association, keyed by the session key.
fn session_sa() -> SecurityAssociation {
    sa(SESSION_SPI, b"session key 0001")
}

/// A 24-byte RFC 5649 output (opaque here: the bytes only need the right size).
fn wrapped_key() -> Vec<u8> {
    (0xa0..0xb8).collect()
}

/// An HPKE output: 32-byte enc, then a 32-byte ciphertext (16-byte key and tag).
fn hpke_key() -> Vec<u8> {
    (0..64u8).map(|b| b.wrapping_mul(7)).collect()
}

fn request(home: Ipv4Addr, coa: Ipv4Addr, lifetime: u16, id: u64) -> RegistrationRequestRepr {
    RegistrationRequestRepr {
        flags: RegistrationFlags::default(),
        lifetime,
        home_address: home,
        home_agent: AGENT,
        care_of_address: coa,
        identification: id,
    }
}

/// Fixed part, the SID elements, then the Mobile-Home Authentication Extension.
fn sid_request(
    r: &RegistrationRequestRepr,
    sid: &SidExtensions<'_>,
    auth: &SecurityAssociation,
) -> Vec<u8> {
    let mut m = r.to_bytes();
    sid.append_to(DEFAULT_ORG_ID, &mut m)
        .unwrap_or_else(|e| panic!("{sid:?}: {e}"));
    append_auth_extension(&mut m, MOBILE_HOME_AUTH, auth);
    m
}

/// The frames of one capture, with labels for failure messages.
struct Frames {
    frames: Vec<Vec<u8>>,
    labels: Vec<&'static str>,
}

impl Frames {
    fn new() -> Self {
        Frames {
            frames: Vec::new(),
            labels: Vec::new(),
        }
    }

    fn udp(&mut self, label: &'static str, src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) {
        let frame = pcap::ethernet_ipv4_udp(
            SocketAddrV4::new(src, 434),
            SocketAddrV4::new(dst, 434),
            payload,
        )
        .unwrap_or_else(|e| panic!("{label}: framing: {e}"));
        self.frames.push(frame);
        self.labels.push(label);
    }

    /// Writes the pcap and decodes it with tshark and `extra` arguments; checks one
    /// packet per frame carrying exactly our bytes.
    fn decode(&self, name: &str, extra: &[String]) -> Vec<Packet> {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = capture::write_pcap(dir.path(), name, &self.frames, capture::FRAME_SPACING);
        let packets = capture::decode(name, &path, extra, self.frames.len());
        capture::assert_same_bytes(name, &packets, &self.frames, |i| self.label(i).to_owned());
        packets
    }

    fn label(&self, i: usize) -> &'static str {
        self.labels.get(i).copied().unwrap_or("?")
    }
}

/// No packet malformed, no expert item of error or warning severity.
fn assert_clean(name: &str, frames: &Frames, packets: &[Packet]) {
    let problems: Vec<String> = packets
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let bad = p.warnings_and_errors();
            (p.is_malformed() || !bad.is_empty()).then(|| {
                format!(
                    "#{} ({}): malformed={} experts={bad:?}",
                    i + 1,
                    frames.label(i),
                    p.is_malformed()
                )
            })
        })
        .collect();
    assert!(
        problems.is_empty(),
        "{name}: tshark problems:\n{}",
        problems.join("\n")
    );
}

/// What each frame of [`exchange`] carries.
struct Exchange {
    frames: Frames,
    /// SID elements of the three requests, in frame order.
    requests: Vec<Vec<u8>>,
    wake_up: Vec<u8>,
    ack: Vec<u8>,
}

/// A whole transfer as the capture shows it: the Transferring Node's transfer request
/// (elements 1-6), the Target's further-transfer request (1-4 and 9), the Transferring
/// Node's stop-transfer demand (7 and a new link-layer address), the Agent's wake-up (8)
/// and its acknowledgement.
fn exchange() -> Exchange {
    let wrapped = wrapped_key();
    let hpke = hpke_key();
    let transfer = SidExtensions {
        target_address: Some(TARGET),
        session_key: Some(EncryptedSessionKey {
            algorithm: SessionKeyAlgorithm::AesKeyWrapPadded,
            data: &wrapped,
        }),
        session_spi: Some(SESSION_SPI),
        transfer_flags: Some(TransferFlags::new(true, false)),
        link_layer_address: Some(LinkLayerAddress::ethernet(&TN_MAC)),
        interim_address: Some(INTERIM),
        ..SidExtensions::default()
    };
    let further = SidExtensions {
        target_address: Some(TARGET2),
        session_key: Some(EncryptedSessionKey {
            algorithm: SessionKeyAlgorithm::HpkeX25519Aes128Gcm,
            data: &hpke,
        }),
        session_spi: Some(SESSION_SPI2),
        transfer_flags: Some(TransferFlags::new(false, true)),
        transferring_node: Some(TN),
        ..SidExtensions::default()
    };
    let stop = SidExtensions {
        link_layer_address: Some(LinkLayerAddress::ethernet(&TN_NEW_MAC)),
        stop_transfer: Some(StopReason::LinkLayerAddressChanged),
        ..SidExtensions::default()
    };
    let r1 = sid_request(&request(TN, TARGET, 60, ID), &transfer, &tn_sa());
    let r2 = sid_request(&request(TN, TARGET2, 60, ID + 1), &further, &session_sa());
    let r3 = sid_request(&request(TN, TN, 0, ID + 2), &stop, &tn_sa());
    let notification = GenericNotificationRepr {
        direction: NotificationDirection::HomeAgentToMobileNode,
        home_address: TN,
        home_agent: AGENT,
        care_of_address: TARGET2,
        identification: ID + 3,
    };
    let wake_up = build_wake_up(
        &notification,
        DEFAULT_ORG_ID,
        WakeUpReason::StopTransferDemand,
        &tn_sa(),
    )
    .unwrap_or_else(|e| panic!("wake-up: {e}"));
    let ack = build_wake_up_ack(
        &GenericNotificationAckRepr::answering(
            &notification,
            NotificationDirection::MobileNodeToHomeAgent,
            ACK_CODE_SUCCESS,
        ),
        &tn_sa(),
    );
    let mut frames = Frames::new();
    frames.udp("transfer request", TN, AGENT, &r1);
    frames.udp("further transfer", TARGET, AGENT, &r2);
    frames.udp("stop-transfer demand", TN, AGENT, &r3);
    frames.udp("wake-up", AGENT, TN, &wake_up);
    frames.udp("wake-up ack", TN, AGENT, &ack);
    Exchange {
        frames,
        requests: vec![r1, r2, r3],
        wake_up,
        ack,
    }
}

/// `(vendor type, value)` of each SID CVSE in a request we built.
fn cvses(request: &[u8]) -> Vec<(u16, Vec<u8>)> {
    mip_core::wire::ExtensionIter::new(request, REQUEST_FIXED_LEN)
        .filter_map(Result::ok)
        .filter_map(|item| match item.ext {
            Extension::CriticalVendor(VendorExtension {
                org_id,
                vendor_type,
                value,
            }) if org_id == DEFAULT_ORG_ID => Some((vendor_type, value.to_vec())),
            _ => None,
        })
        .collect()
}

/// tshark prints FT_BYTES as colon-separated hex in JSON.
fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn field_eq(p: &Packet, what: &str, field: &str, expected: &[&str]) {
    let got: Vec<&str> = p.all(field).iter().map(String::as_str).collect();
    assert_eq!(got, expected, "{what}: {field}");
}

#[test]
fn wireshark_alone_reads_every_sid_cvse_and_finds_nothing_wrong() {
    let x = exchange();
    let packets = x.frames.decode("sid_plain", &[]);
    assert_clean("sid_plain", &x.frames, &packets);
    for (i, request) in x.requests.iter().enumerate() {
        let p = &packets[i];
        let what = x.frames.label(i);
        assert_eq!(p.get_u64("mip.type"), Some(1), "{what}");
        let expected = cvses(request);
        assert!(!expected.is_empty());
        assert_eq!(
            p.all_u64("mip.ext.cvse.vendor_id"),
            vec![u64::from(DEFAULT_ORG_ID); expected.len()],
            "{what}"
        );
        let types: Vec<u64> = expected.iter().map(|(t, _)| u64::from(*t)).collect();
        assert_eq!(p.all_u64("mip.ext.cvse.vendor_type"), types, "{what}");
        let values: Vec<String> = expected.iter().map(|(_, v)| colon_hex(v)).collect();
        assert_eq!(
            p.all("mip.ext.cvse.vendor_value"),
            values.as_slice(),
            "{what}"
        );
        assert_eq!(
            p.all_u64("mip.ext.type").last(),
            Some(&32),
            "{what}: MHAE last"
        );
    }
    // Wireshark 4.0 names types 22/23 but does not dissect them: the wake-up and its ack
    // stay bare UDP. If a newer tshark decodes them, compare its fields with ours.
    for i in [3, 4] {
        let p = &packets[i];
        assert_eq!(
            p.protocols(),
            ["eth", "ethertype", "ip", "udp"],
            "{}: tshark now dissects RFC 6098 itself; check its reading against ours",
            x.frames.label(i)
        );
    }
    assert_eq!(x.wake_up.first(), Some(&22));
    assert_eq!(x.ack.first(), Some(&23));
}

#[test]
fn the_lua_dissector_names_every_sid_field() {
    let x = exchange();
    let packets = x.frames.decode("sid_lua", &capture::sid_lua_args());
    assert_clean("sid_lua", &x.frames, &packets);
    let (p1, p2, p3, p4, p5) = (
        &packets[0],
        &packets[1],
        &packets[2],
        &packets[3],
        &packets[4],
    );

    // Transfer request: elements 1-6.
    let w = "transfer request";
    field_eq(p1, w, "sid.vendor_type", &["1", "2", "3", "4", "5", "6"]);
    field_eq(p1, w, "sid.target", &["198.19.1.10"]);
    field_eq(p1, w, "sid.session_key.alg", &["1"]);
    assert_eq!(p1.raw("sid.session_key.data"), Some(wrapped_key()), "{w}");
    assert_eq!(p1.get_u64("sid.spi"), Some(u64::from(SESSION_SPI)), "{w}");
    assert_eq!(p1.get_bool("sid.flags.f"), Some(true), "{w}");
    assert_eq!(p1.get_bool("sid.flags.t"), Some(false), "{w}");
    assert_eq!(p1.get_u64("sid.flags.reserved"), Some(0), "{w}");
    field_eq(p1, w, "sid.lla.hwtype", &["1"]);
    field_eq(p1, w, "sid.lla", &["02:00:c6:12:00:0a"]);
    field_eq(p1, w, "sid.interim", &["198.18.0.99"]);
    assert!(!p1.has("sid.tn") && !p1.has("sid.stop.reason") && !p1.has("sid.wakeup.reason"));

    // Further transfer by the Target: 1-4 and 9, HPKE, reverse tunnel.
    let w = "further transfer";
    field_eq(p2, w, "sid.vendor_type", &["1", "2", "3", "4", "9"]);
    field_eq(p2, w, "sid.target", &["198.19.2.10"]);
    field_eq(p2, w, "sid.session_key.alg", &["2"]);
    let hpke = hpke_key();
    assert_eq!(p2.raw("sid.session_key.data"), Some(hpke.clone()), "{w}");
    assert_eq!(
        p2.raw("sid.session_key.hpke_enc").as_deref(),
        hpke.get(..32),
        "{w}"
    );
    assert_eq!(
        p2.raw("sid.session_key.hpke_ct").as_deref(),
        hpke.get(32..),
        "{w}"
    );
    assert_eq!(p2.get_u64("sid.spi"), Some(u64::from(SESSION_SPI2)), "{w}");
    assert_eq!(p2.get_bool("sid.flags.f"), Some(false), "{w}");
    assert_eq!(p2.get_bool("sid.flags.t"), Some(true), "{w}");
    field_eq(p2, w, "sid.tn", &["198.18.0.10"]);
    assert_eq!(
        p2.get_u64("mip.auth.spi"),
        Some(u64::from(SESSION_SPI)),
        "{w}"
    );

    // Stop-transfer demand after a link-layer address change.
    let w = "stop-transfer demand";
    field_eq(p3, w, "sid.vendor_type", &["5", "7"]);
    field_eq(p3, w, "sid.stop.reason", &["2"]);
    field_eq(p3, w, "sid.lla", &["02:00:5e:10:20:30"]);
    assert_eq!(p3.get_u64("mip.life"), Some(0), "{w}");

    // The wake-up, decoded by the dissector's RFC 6098 part.
    let w = "wake-up";
    // A post-dissector's protocol does not show in frame.protocols.
    assert_eq!(p4.protocols(), ["eth", "ethertype", "ip", "udp"], "{w}");
    field_eq(p4, w, "mipgn.type", &["22"]);
    field_eq(p4, w, "mipgn.md", &["0"]);
    field_eq(p4, w, "mipgn.homeaddr", &["198.18.0.10"]);
    field_eq(p4, w, "mipgn.haaddr", &["198.18.0.1"]);
    field_eq(p4, w, "mipgn.coa", &["198.19.2.10"]);
    assert_eq!(p4.get_u64("mipgn.ident"), Some(ID + 3), "{w}");
    field_eq(p4, w, "mipgn.ext.type", &["38", "32"]);
    field_eq(p4, w, "sid.vendor_type", &["8"]);
    field_eq(p4, w, "sid.wakeup.reason", &["2"]);
    assert_eq!(p4.get_u64("mipgn.auth.spi"), Some(256), "{w}");
    assert_eq!(
        p4.raw("mipgn.auth.auth").as_deref(),
        x.wake_up.get(42..),
        "{w}"
    );

    let w = "wake-up ack";
    field_eq(p5, w, "mipgn.type", &["23"]);
    field_eq(p5, w, "mipgn.md", &["2"]);
    field_eq(p5, w, "mipgn.code", &["0"]);
    assert_eq!(p5.get_u64("mipgn.ident"), Some(ID + 3), "{w}");
    field_eq(p5, w, "mipgn.ext.type", &["32"]);
    assert_eq!(p5.raw("mipgn.auth.auth").as_deref(), x.ack.get(30..), "{w}");
    assert!(!p5.has("sid.vendor_type"), "{w}");

    // Every SID element type shows up somewhere, with our field names.
    let mut seen: Vec<u64> = packets
        .iter()
        .flat_map(|p| p.all_u64("sid.vendor_type"))
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen, vendor_type::ALL.map(u64::from));
}

#[test]
fn the_lua_dissector_flags_broken_sid_elements() {
    // Raw CVSEs of our organization that break the layout; Wireshark alone sees nothing
    // wrong (they are well-framed CVSEs), the dissector flags each one.
    let broken: [(&str, u16, &[u8], &str); 5] = [
        (
            "short target",
            vendor_type::TARGET_ADDRESS,
            &[198, 19, 1],
            "Malformed",
        ),
        (
            "reserved SPI",
            vendor_type::SESSION_SPI,
            &[0, 0, 0, 5],
            "Malformed",
        ),
        (
            "multicast MAC",
            vendor_type::LINK_LAYER_ADDRESS,
            &[0, 1, 1, 0, 0x5e, 0, 0, 1],
            "Malformed",
        ),
        (
            "short key wrap",
            vendor_type::ENCRYPTED_SESSION_KEY,
            &[1, 0, 1, 2, 3, 4, 5, 6, 7, 8],
            "Malformed",
        ),
        ("unknown type", 77, &[1, 2], "Unknown SID element type"),
    ];
    let mut frames = Frames::new();
    for (label, vt, value, _) in broken {
        let mut m = request(TN, TARGET, 60, ID).to_bytes();
        Extension::CriticalVendor(VendorExtension {
            org_id: DEFAULT_ORG_ID,
            vendor_type: vt,
            value,
        })
        .append_to(&mut m)
        .unwrap_or_else(|e| panic!("{label}: {e}"));
        append_auth_extension(&mut m, MOBILE_HOME_AUTH, &tn_sa());
        frames.udp(label, TN, AGENT, &m);
    }
    // And an element after the authenticator.
    let mut m = request(TN, TARGET, 60, ID).to_bytes();
    append_auth_extension(&mut m, MOBILE_HOME_AUTH, &tn_sa());
    SidElement::TargetAddress(TARGET)
        .append_to(DEFAULT_ORG_ID, &mut m)
        .unwrap_or_else(|e| panic!("{e}"));
    frames.udp("after authenticator", TN, AGENT, &m);

    let plain = frames.decode("sid_broken_plain", &[]);
    for (i, p) in plain.iter().enumerate() {
        assert!(
            !p.is_malformed() && p.errors().is_empty(),
            "{}: {:?}",
            frames.label(i),
            p.experts()
        );
    }
    let lua = frames.decode("sid_broken_lua", &capture::sid_lua_args());
    for (i, (_, _, _, message)) in broken.iter().enumerate() {
        let p = &lua[i];
        assert!(
            p.experts().iter().any(|e| e.message.contains(message)),
            "{}: expected an expert item containing {message:?}, got {:?}",
            frames.label(i),
            p.experts()
        );
    }
    let last = &lua[broken.len()];
    assert!(
        last.experts()
            .iter()
            .any(|e| e.message.contains("after the Mobile-Home Authentication")),
        "after authenticator: {:?}",
        last.experts()
    );
}
