//! What every group of tshark checks shares: lab addresses and keys, a capture that is
//! written to a pcap file and decoded by one tshark run, and field accessors whose
//! failures name the packet and the field.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

use conformance::{capture, pcap};
use conformance::tshark::Packet;
use mip_core::auth::{AuthAlgorithm, ReplayMethod, SecurityAssociation};
use mip_core::time::Time;
use mip_ha::config::MobileNodeEntry;
use mip_ha::HomeAgentConfig;

pub const HA: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const HOME: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
pub const HOME2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
pub const COA1: Ipv4Addr = Ipv4Addr::new(198, 19, 1, 10);
pub const COA2: Ipv4Addr = Ipv4Addr::new(198, 19, 2, 10);
pub const COA3: Ipv4Addr = Ipv4Addr::new(198, 19, 3, 10);
pub const FA: Ipv4Addr = Ipv4Addr::new(198, 19, 1, 1);
pub const NAI: &str = "mn1@sidmip.example";
/// IANA's enterprise number for documentation (RFC 5612).
pub const DOC_ENTERPRISE: u32 = 32473;
/// 2026-11-26T00:00:00Z, so that timestamp identifications look like real ones.
pub const T0: u64 = 1_795_651_200;

pub fn t(secs: u64) -> Time {
    Time::from_secs(T0 + secs)
}

pub fn sock(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

fn hmac_sa(spi: u32, key: &[u8]) -> SecurityAssociation {
    SecurityAssociation {
        spi,
        algorithm: AuthAlgorithm::HmacMd5,
        key: key.to_vec(),
        replay: ReplayMethod::Timestamp,
    }
}

/// Mobile node - home agent.
pub fn mn_sa() -> SecurityAssociation {
    hmac_sa(256, b"0123456789abcdef")
}

/// Mobile node - foreign agent.
pub fn mf_sa() -> SecurityAssociation {
    hmac_sa(0x0001_0203, b"mn-fa shared key")
}

/// Foreign agent - home agent.
pub fn fa_sa() -> SecurityAssociation {
    hmac_sa(300, b"fa-ha shared key")
}

/// The second mobile node's association.
pub fn home2_sa() -> SecurityAssociation {
    hmac_sa(257, b"another key 1234")
}

/// A home agent at [`HA`] serving [`HOME`] (also known by [`NAI`]) and [`HOME2`], with
/// lifetimes capped at 600 s.
pub fn ha_config() -> HomeAgentConfig {
    let mut c = HomeAgentConfig::new(HA, 24);
    c.max_lifetime = 600;
    c.mobile_nodes.push(MobileNodeEntry {
        home_address: Some(HOME),
        nai: Some(NAI.to_string()),
        security_associations: vec![mn_sa()],
    });
    c.mobile_nodes.push(MobileNodeEntry {
        home_address: Some(HOME2),
        nai: None,
        security_associations: vec![home2_sa()],
    });
    c
}

/// tshark, or a failed test: a conformance run without its decoder must not pass.
pub use conformance::capture::tshark;

/// Frames collected for one pcap file, decoded by a single tshark run.
pub struct Capture {
    name: &'static str,
    frames: Vec<Vec<u8>>,
    labels: Vec<String>,
}

impl Capture {
    pub fn new(name: &'static str) -> Self {
        Capture {
            name,
            frames: Vec::new(),
            labels: Vec::new(),
        }
    }

    /// Adds an Ethernet/IPv4/UDP frame; returns its index (frame number - 1).
    pub fn udp(
        &mut self,
        label: impl Into<String>,
        src: SocketAddrV4,
        dst: SocketAddrV4,
        payload: &[u8],
    ) -> usize {
        let frame =
            pcap::ethernet_ipv4_udp(src, dst, payload).unwrap_or_else(|e| panic!("framing: {e}"));
        self.push(label.into(), frame)
    }

    /// Adds an Ethernet/IPv4 (TTL 1)/ICMP frame; `icmp` carries its own checksum.
    pub fn icmp(
        &mut self,
        label: impl Into<String>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        icmp: &[u8],
    ) -> usize {
        let frame =
            pcap::ethernet_ipv4_icmp(src, dst, icmp).unwrap_or_else(|e| panic!("framing: {e}"));
        self.push(label.into(), frame)
    }

    fn push(&mut self, label: String, frame: Vec<u8>) -> usize {
        self.frames.push(frame);
        self.labels.push(label);
        self.frames.len() - 1
    }

    pub fn label(&self, index: usize) -> &str {
        self.labels.get(index).map_or("?", String::as_str)
    }

    /// Writes the pcap file in a fresh temporary directory and decodes it with tshark;
    /// checks one decoded packet per frame, carrying exactly our bytes.
    pub fn run(&self) -> Decoded {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = capture::write_pcap(dir.path(), self.name, &self.frames, capture::FRAME_SPACING);
        let packets = capture::decode(self.name, &path, &[] as &[&str], self.frames.len());
        capture::assert_same_bytes(self.name, &packets, &self.frames, |i| self.label(i).to_owned());
        Decoded {
            _dir: dir,
            path,
            packets,
        }
    }

    /// [`run`](Self::run), then no packet may be malformed or carry an expert item of
    /// error severity.
    pub fn checked(&self) -> Decoded {
        let decoded = self.run();
        assert_clean(self.name, &decoded.packets, |i| self.label(i).to_owned());
        decoded
    }

    /// The packets of [`checked`](Self::checked).
    pub fn decode(&self) -> Vec<Packet> {
        self.checked().packets
    }

    /// The packets of [`run`](Self::run), problems allowed.
    pub fn decode_unchecked(&self) -> Vec<Packet> {
        self.run().packets
    }
}

/// A decoded capture; the pcap file lives as long as this.
pub struct Decoded {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
    pub packets: Vec<Packet>,
}

/// No packet is malformed or carries an expert item of error severity (bad checksums
/// included, as `Tshark` switches their checking on).
pub fn assert_clean(name: &str, packets: &[Packet], label: impl Fn(usize) -> String) {
    let problems: Vec<String> = packets
        .iter()
        .enumerate()
        .filter(|(_, p)| p.is_malformed() || !p.errors().is_empty())
        .map(|(i, p)| {
            format!(
                "#{} ({}): malformed={} errors={:?}",
                p.number,
                label(i),
                p.is_malformed(),
                p.errors()
            )
        })
        .collect();
    assert!(
        problems.is_empty(),
        "{name}: tshark problems:\n{}",
        problems.join("\n")
    );
}

/// Field access whose failures say which packet and which field.
pub struct View<'a> {
    pub packet: &'a Packet,
    pub what: String,
}

impl<'a> View<'a> {
    pub fn new(packets: &'a [Packet], capture: &Capture, index: usize) -> Self {
        let packet = packets
            .get(index)
            .unwrap_or_else(|| panic!("no packet #{}", index + 1));
        View {
            packet,
            what: format!("#{} ({})", index + 1, capture.label(index)),
        }
    }

    pub fn str(&self, field: &str) -> &'a str {
        self.packet.get(field).unwrap_or_else(|| {
            panic!(
                "{}: tshark shows no {field}; fields: {:?}",
                self.what,
                self.packet.fields().keys()
            )
        })
    }

    pub fn u64(&self, field: &str) -> u64 {
        self.packet.get_u64(field).unwrap_or_else(|| {
            panic!(
                "{}: {field} is not a number: {:?}",
                self.what,
                self.packet.get(field)
            )
        })
    }

    pub fn all_u64(&self, field: &str) -> Vec<u64> {
        self.packet.all_u64(field)
    }

    pub fn all_str(&self, field: &str) -> Vec<&'a str> {
        self.packet.all(field).iter().map(String::as_str).collect()
    }

    pub fn flag(&self, field: &str) -> bool {
        self.packet.get_bool(field).unwrap_or_else(|| {
            panic!(
                "{}: {field} is not a boolean: {:?}",
                self.what,
                self.packet.get(field)
            )
        })
    }

    pub fn ip(&self, field: &str) -> Ipv4Addr {
        self.str(field)
            .parse()
            .unwrap_or_else(|e| panic!("{}: {field} is not an address: {e}", self.what))
    }

    pub fn raw(&self, field: &str) -> Vec<u8> {
        self.packet
            .raw(field)
            .unwrap_or_else(|| panic!("{}: no raw bytes for {field}", self.what))
    }

    /// The Identification as the 8 bytes tshark took for it (it shows an NTP time).
    pub fn ident(&self) -> u64 {
        let raw = self.raw("mip.ident");
        let bytes: [u8; 8] = raw
            .as_slice()
            .try_into()
            .unwrap_or_else(|_| panic!("{}: mip.ident is {} bytes", self.what, raw.len()));
        u64::from_be_bytes(bytes)
    }
}
