//! Runs Wireshark's `tshark` over pcap files so tests can check our bytes against an
//! independent decoder.
//!
//! [`Tshark::decode`] runs `tshark -n -r FILE -T json -x` and flattens each packet's
//! tree into a [`Packet`]: field name -> every value shown, in packet order (`mip.type`, `mip.s`, `mip.life`, `mip.homeaddr`, `mip.ext.type`,
//! `mip.auth.spi`, ...; list them with `tshark -G fields | grep -P '\tmip\.'`), plus the
//! raw bytes of each field (`-x`), plus every expert item. IP and UDP checksum checking
//! is switched on, so a bad checksum shows up as an expert error.
//!
//! [`Tshark::problems`] reports, per packet, malformed-packet markers and expert items of
//! error severity: a test asserts it is empty.
//!
//! Extra arguments go straight to tshark: `-d udp.port==4340,mip` (decode as),
//! `-X lua_script:FILE` (our dissector), `-Y mip` (display filter), `-o pref:value`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// How to get tshark, for error messages.
pub const INSTALL_HINT: &str =
    "install it with `apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y tshark` \
     (Debian/Ubuntu), or point the TSHARK environment variable at the binary";

#[derive(Debug, thiserror::Error)]
pub enum TsharkError {
    #[error("tshark not found (looked at $TSHARK and on $PATH): {INSTALL_HINT}")]
    NotFound,
    #[error("could not run {path}: {source}")]
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("tshark failed ({status}) on {file}: {stderr}")]
    Failed {
        file: PathBuf,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("tshark printed JSON we could not read: {0}")]
    Json(#[from] serde_json::Error),
    #[error("tshark JSON has an unexpected shape: {0}")]
    Shape(&'static str),
}

/// Expert-info severities (Wireshark's `PI_*` values, as `_ws.expert.severity` prints them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Comment,
    Chat,
    Note,
    Warning,
    Error,
    Other(u32),
}

impl Severity {
    pub fn from_raw(raw: u32) -> Self {
        match raw {
            0x0010_0000 => Severity::Comment,
            0x0020_0000 => Severity::Chat,
            0x0040_0000 => Severity::Note,
            0x0060_0000 => Severity::Warning,
            0x0080_0000 => Severity::Error,
            other => Severity::Other(other),
        }
    }
}

/// One expert-info item of a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpertInfo {
    pub severity: Severity,
    /// Wireshark's `PI_*` group (malformed 0x07000000, checksum 0x01000000, ...).
    pub group: u32,
    pub message: String,
}

/// One decoded packet, flattened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Packet {
    /// `frame.number`, counted from 1.
    pub number: u64,
    fields: BTreeMap<String, Vec<String>>,
    raw: BTreeMap<String, Vec<String>>,
    experts: Vec<ExpertInfo>,
    malformed: bool,
}

impl Packet {
    /// The first value of `field`, as tshark shows it (`"1"`, `"0x00000100"`, `"198.18.0.1"`).
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields
            .get(field)
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    /// Every value of `field`, in packet order (one per extension, say).
    pub fn all(&self, field: &str) -> &[String] {
        self.fields.get(field).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn has(&self, field: &str) -> bool {
        self.fields.contains_key(field)
    }

    /// The first value of `field` as an integer (decimal or `0x` hex).
    pub fn get_u64(&self, field: &str) -> Option<u64> {
        self.get(field).and_then(parse_int)
    }

    /// Every value of `field` that reads as an integer.
    pub fn all_u64(&self, field: &str) -> Vec<u64> {
        self.all(field)
            .iter()
            .filter_map(|v| parse_int(v))
            .collect()
    }

    /// A boolean field (`mip.s`, ...): tshark prints `1`/`0`.
    pub fn get_bool(&self, field: &str) -> Option<bool> {
        match self.get(field)? {
            "1" | "True" | "true" => Some(true),
            "0" | "False" | "false" => Some(false),
            _ => None,
        }
    }

    /// The bytes of the first occurrence of `field` (`mip.ident`, `mip.auth.auth`, or a
    /// whole protocol such as `mip`), from tshark's `-x` output.
    pub fn raw(&self, field: &str) -> Option<Vec<u8>> {
        self.raw
            .get(field)
            .and_then(|v| v.first())
            .and_then(|h| hex::decode(h).ok())
    }

    /// `frame.protocols` split: `["eth", "ethertype", "ip", "udp", "mip"]`.
    pub fn protocols(&self) -> Vec<&str> {
        self.get("frame.protocols")
            .map(|p| p.split(':').collect())
            .unwrap_or_default()
    }

    pub fn fields(&self) -> &BTreeMap<String, Vec<String>> {
        &self.fields
    }

    pub fn experts(&self) -> &[ExpertInfo] {
        &self.experts
    }

    /// Whether a dissector threw (tshark's "[Malformed Packet]").
    pub fn is_malformed(&self) -> bool {
        self.malformed
    }

    /// Expert items of error severity.
    pub fn errors(&self) -> Vec<&ExpertInfo> {
        self.experts
            .iter()
            .filter(|e| e.severity == Severity::Error)
            .collect()
    }

    /// Expert items of warning or error severity.
    pub fn warnings_and_errors(&self) -> Vec<&ExpertInfo> {
        self.experts
            .iter()
            .filter(|e| matches!(e.severity, Severity::Error | Severity::Warning))
            .collect()
    }

    /// Errors a Lua dissector raised while decoding this packet (Wireshark turns each
    /// into an expert error "Lua Error: FILE:LINE: ..." marked `_ws.lua.error`). A
    /// dissector that checks its bounds raises none, whatever the bytes.
    pub fn lua_errors(&self) -> Vec<&ExpertInfo> {
        self.experts
            .iter()
            .filter(|e| e.message.starts_with("Lua Error"))
            .collect()
    }
}

/// What is wrong with one packet: see [`Tshark::problems`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketProblems {
    pub number: u64,
    pub malformed: bool,
    pub errors: Vec<ExpertInfo>,
}

/// A tshark binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tshark {
    path: PathBuf,
}

impl Tshark {
    /// `$TSHARK` if set, else `tshark` on `$PATH`.
    pub fn find() -> Result<Self, TsharkError> {
        if let Some(path) = std::env::var_os("TSHARK").filter(|p| !p.is_empty()) {
            let path = PathBuf::from(path);
            return if path.is_file() {
                Ok(Tshark { path })
            } else {
                Err(TsharkError::NotFound)
            };
        }
        let paths = std::env::var_os("PATH").ok_or(TsharkError::NotFound)?;
        std::env::split_paths(&paths)
            .map(|dir| dir.join("tshark"))
            .find(|p| p.is_file())
            .map(|path| Tshark { path })
            .ok_or(TsharkError::NotFound)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The first line of `tshark --version`.
    pub fn version(&self) -> Result<String, TsharkError> {
        let out = self.run_raw(&self.path, &[OsString::from("--version")])?;
        Ok(out.lines().next().unwrap_or_default().to_owned())
    }

    /// Decodes every packet of `pcap`. `extra_args` are passed to tshark (before the
    /// output options), e.g. `["-d", "udp.port==4340,mip"]` or `["-Y", "mip"]`.
    pub fn decode<S: AsRef<str>>(
        &self,
        pcap: &Path,
        extra_args: &[S],
    ) -> Result<Vec<Packet>, TsharkError> {
        let mut args = base_args(pcap);
        args.extend(extra_args.iter().map(|a| OsString::from(a.as_ref())));
        args.extend(["-T", "json", "-x"].map(OsString::from));
        let out = self.run_raw(pcap, &args)?;
        parse_json(&out)
    }

    /// Runs `-T fields` with one `-e` per entry of `fields` and every occurrence of each
    /// (`-E occurrence=a`); returns, per packet, one `Vec` of values per field.
    pub fn fields<S: AsRef<str>>(
        &self,
        pcap: &Path,
        fields: &[&str],
        extra_args: &[S],
    ) -> Result<Vec<Vec<Vec<String>>>, TsharkError> {
        let mut args = base_args(pcap);
        args.extend(extra_args.iter().map(|a| OsString::from(a.as_ref())));
        args.extend(
            [
                "-T",
                "fields",
                "-E",
                "occurrence=a",
                "-E",
                "aggregator=\u{1f}",
                "-E",
                "separator=\u{1e}",
            ]
            .map(OsString::from),
        );
        for f in fields {
            args.push(OsString::from("-e"));
            args.push(OsString::from(*f));
        }
        let out = self.run_raw(pcap, &args)?;
        Ok(out
            .lines()
            .map(|line| {
                line.split('\u{1e}')
                    .map(|col| {
                        if col.is_empty() {
                            Vec::new()
                        } else {
                            col.split('\u{1f}').map(str::to_owned).collect()
                        }
                    })
                    .collect()
            })
            .collect())
    }

    /// Packets that are malformed or carry an expert item of error severity (bad
    /// checksums included). Empty means tshark found nothing wrong.
    pub fn problems<S: AsRef<str>>(
        &self,
        pcap: &Path,
        extra_args: &[S],
    ) -> Result<Vec<PacketProblems>, TsharkError> {
        Ok(self
            .decode(pcap, extra_args)?
            .into_iter()
            .filter_map(|p| {
                let errors: Vec<ExpertInfo> = p.errors().into_iter().cloned().collect();
                (p.malformed || !errors.is_empty()).then_some(PacketProblems {
                    number: p.number,
                    malformed: p.malformed,
                    errors,
                })
            })
            .collect())
    }

    fn run_raw(&self, file: &Path, args: &[OsString]) -> Result<String, TsharkError> {
        let output = Command::new(&self.path)
            .args(args)
            // tshark reads a personal profile from $HOME; a fixed, empty one keeps runs
            // independent of whoever runs the tests.
            .env(
                "WIRESHARK_CONFIG_DIR",
                std::env::temp_dir().join("sidmip-tshark-profile"),
            )
            .output()
            .map_err(|source| TsharkError::Spawn {
                path: self.path.clone(),
                source,
            })?;
        if !output.status.success() {
            return Err(TsharkError::Failed {
                file: file.to_path_buf(),
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

fn base_args(pcap: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "-n",
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
        "-r",
    ]
    .map(OsString::from)
    .to_vec();
    args.push(pcap.as_os_str().to_owned());
    args
}

/// A JSON value that keeps object members in document order, duplicates included.
/// tshark's JSON repeats keys (a field that occurs twice, two extensions with the same
/// label) and its order is the packet's order; a map type would lose both.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Scalar(String),
    Null,
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Scalar(if v { "1" } else { "0" }.to_owned()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Scalar(v))
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut members = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Node>()? {
            members.push((key, value));
        }
        Ok(Node::Object(members))
    }
}

impl Node {
    fn member(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Parses `tshark -T json [-x]` output (with or without `--no-duplicate-keys`).
pub fn parse_json(text: &str) -> Result<Vec<Packet>, TsharkError> {
    let value: Node = serde_json::from_str(text)?;
    let Node::Array(packets) = value else {
        return Err(TsharkError::Shape("top level is not an array"));
    };
    packets
        .iter()
        .map(|p| {
            let Some(Node::Object(layers)) = p.member("_source").and_then(|s| s.member("layers"))
            else {
                return Err(TsharkError::Shape("packet without _source.layers"));
            };
            let mut packet = Packet::default();
            for (key, value) in layers {
                walk(&mut packet, key, value);
            }
            packet.number = packet.get_u64("frame.number").unwrap_or(0);
            Ok(packet)
        })
        .collect()
}

fn walk(packet: &mut Packet, key: &str, value: &Node) {
    if key == "_ws.malformed" {
        packet.malformed = true;
    }
    if let Some(field) = key.strip_suffix("_raw") {
        collect_raw(packet, field, value);
        return;
    }
    match value {
        Node::Object(members) => {
            if key == "_ws.expert" {
                packet.experts.push(expert(members));
            }
            // An object is a subtree ("mip.flags_tree", "Extensions", ...): its key is
            // a label, not a field value.
            for (k, v) in members {
                walk(packet, k, v);
            }
        }
        Node::Array(items) => {
            for item in items {
                walk(packet, key, item);
            }
        }
        Node::Scalar(s) => push(&mut packet.fields, key, s.clone()),
        Node::Null => {}
    }
}

/// `-x` gives `"field_raw": [hex, offset, length, bitmask, type]`, or an array of those
/// when duplicate keys were merged.
fn collect_raw(packet: &mut Packet, field: &str, value: &Node) {
    let Node::Array(items) = value else { return };
    match items.first() {
        Some(Node::Scalar(hex)) => push(&mut packet.raw, field, hex.clone()),
        Some(Node::Array(_)) => {
            for item in items {
                collect_raw(packet, field, item);
            }
        }
        _ => {}
    }
}

fn expert(members: &[(String, Node)]) -> ExpertInfo {
    let text = |key: &str| {
        members
            .iter()
            .find_map(|(k, v)| match v {
                Node::Scalar(s) if k == key => Some(s.as_str()),
                _ => None,
            })
            .unwrap_or_default()
    };
    let num = |k: &str| {
        parse_int(text(k))
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0)
    };
    ExpertInfo {
        severity: Severity::from_raw(num("_ws.expert.severity")),
        group: num("_ws.expert.group"),
        message: text("_ws.expert.message").to_owned(),
    }
}

fn push(map: &mut BTreeMap<String, Vec<String>>, key: &str, value: String) {
    map.entry(key.to_owned()).or_default().push(value);
}

fn parse_int(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"[{"_source":{"layers":{
        "frame":{"frame.number":"3","frame.protocols":"eth:ethertype:ip:udp:mip"},
        "udp":{"udp.checksum_tree":{"_ws.expert":{"udp.checksum.bad":"","_ws.expert.message":"Bad checksum",
               "_ws.expert.severity":"8388608","_ws.expert.group":"16777216"}}},
        "mip_raw":["0140",42,2,0,1],
        "mip":{"mip.type":"1","mip.type_raw":["01",42,1,0,4],"mip.flags_tree":{"mip.s":"1","mip.b":"0"},
               "mip.life":"30","Extensions":{"Extension: A":{"mip.ext.type":["32","131"],"mip.auth.spi":"0x00000100"}}},
        "_ws.malformed":{"_ws.expert":{"_ws.malformed.expert":"","_ws.expert.message":"Malformed Packet (Exception occurred)",
               "_ws.expert.severity":"8388608","_ws.expert.group":"117440512"},"_ws.malformed":"Malformed Packet"}
    }}}]"#;

    #[test]
    fn flattens_fields_raw_and_experts() {
        let packets = parse_json(SAMPLE).unwrap_or_else(|e| panic!("{e}"));
        let p = &packets[0];
        assert_eq!(p.number, 3);
        assert_eq!(p.get_u64("mip.type"), Some(1));
        assert_eq!(p.get_bool("mip.s"), Some(true));
        assert_eq!(p.get_bool("mip.b"), Some(false));
        assert_eq!(p.get_u64("mip.life"), Some(30));
        assert_eq!(p.all_u64("mip.ext.type"), vec![32, 131]);
        assert_eq!(p.get_u64("mip.auth.spi"), Some(0x100));
        assert_eq!(p.raw("mip"), Some(vec![0x01, 0x40]));
        assert_eq!(p.raw("mip.type"), Some(vec![0x01]));
        assert_eq!(p.protocols().last(), Some(&"mip"));
        assert!(p.is_malformed());
        assert_eq!(p.errors().len(), 2);
        assert_eq!(p.errors()[0].message, "Bad checksum");
        assert_eq!(p.errors()[1].group, 0x0700_0000);
    }

    #[test]
    fn duplicate_keys_keep_packet_order() {
        let text = r#"[{"_source":{"layers":{"mip":{"Extensions":{
            "Extension: B":{"mip.ext.type":"131","mip.ext.type_raw":["83",1,1,0,4]},
            "Extension: A":{"mip.ext.type":"32","mip.ext.type_raw":["20",2,1,0,4]},
            "Extension: B":{"mip.ext.type":"134","mip.ext.type_raw":["86",3,1,0,4]}}}}}}]"#;
        let packets = parse_json(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(packets[0].all_u64("mip.ext.type"), vec![131, 32, 134]);
        assert_eq!(packets[0].raw("mip.ext.type"), Some(vec![0x83]));
        assert_eq!(packets[0].number, 0);
    }

    #[test]
    fn merged_duplicate_raw_arrays() {
        let text = r#"[{"_source":{"layers":{"x_raw":[["0102",0,2,0,1],["03",2,1,0,1]]}}}]"#;
        let packets = parse_json(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(packets[0].raw("x"), Some(vec![1, 2]));
    }

    #[test]
    fn lua_errors_are_found() {
        let text = r#"[{"_source":{"layers":{"errp":{"errp.x":"1"},
            "Lua Error: err.lua:6: Range is out of bounds":{"_ws.expert":{"_ws.lua.error":"",
            "_ws.expert.message":"Lua Error: err.lua:6: Range is out of bounds",
            "_ws.expert.severity":"8388608","_ws.expert.group":"83886080"}}}}}]"#;
        let packets = parse_json(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(packets[0].lua_errors().len(), 1);
        assert_eq!(packets[0].errors().len(), 1);
        assert!(packets[0].has("_ws.lua.error"));
        let clean = parse_json(SAMPLE).unwrap_or_else(|e| panic!("{e}"));
        assert!(clean[0].lua_errors().is_empty());
    }

    #[test]
    fn severity_ordering() {
        assert!(Severity::from_raw(0x0080_0000) == Severity::Error);
        assert!(Severity::Warning < Severity::Error);
        assert_eq!(Severity::from_raw(5), Severity::Other(5));
    }

    #[test]
    fn bad_json_is_an_error() {
        assert!(matches!(parse_json("{"), Err(TsharkError::Json(_))));
        assert!(matches!(parse_json("{}"), Err(TsharkError::Shape(_))));
        assert!(matches!(parse_json("[{}]"), Err(TsharkError::Shape(_))));
        assert_eq!(parse_json("[]").map(|v| v.len()).ok(), Some(0));
    }
}
