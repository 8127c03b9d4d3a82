//! What the tshark tests share around one capture: tshark itself (a conformance run
//! without its decoder must fail, not pass), the arguments that load our dissector
//! `tools/sid.lua`, the pcap file (kept where [`KEEP_PCAP_ENV`] says) and the checks that
//! tshark decoded one packet per frame, carrying exactly our bytes.
//!
//! These helpers panic with a message that names the capture: they are for tests.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mip_core::time::Time;

use crate::pcap;
use crate::tshark::{Packet, Tshark};

/// `SIDMIP_KEEP_PCAP=<dir>` keeps the tests' pcap files there, for a look in Wireshark.
pub const KEEP_PCAP_ENV: &str = "SIDMIP_KEEP_PCAP";

/// The first frame's time: 2026-11-26T00:00:00Z, so that timestamp identifications look
/// like real ones.
pub const CAPTURE_START_SECS: u64 = 1_795_651_200;

/// Time between two frames of a capture, unless a test needs another.
pub const FRAME_SPACING: Duration = Duration::from_millis(10);

/// tshark, or a failed test.
pub fn tshark() -> Tshark {
    Tshark::find().unwrap_or_else(|e| panic!("tshark is required for these tests: {e}"))
}

/// tshark's arguments that load `tools/sid.lua` of this workspace (which must exist).
pub fn sid_lua_args() -> Vec<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/sid.lua");
    assert!(script.is_file(), "{} is missing", script.display());
    vec!["-X".into(), format!("lua_script:{}", script.display())]
}

/// Writes `frames` to `<name>.pcap` in `$SIDMIP_KEEP_PCAP` when set, else in `scratch`,
/// frame i stamped [`CAPTURE_START_SECS`] + i × `spacing`; returns the file's path.
pub fn write_pcap(scratch: &Path, name: &str, frames: &[Vec<u8>], spacing: Duration) -> PathBuf {
    let keep = std::env::var_os(KEEP_PCAP_ENV).map(PathBuf::from);
    let path = keep
        .as_deref()
        .unwrap_or(scratch)
        .join(format!("{name}.pcap"));
    let stamped: Vec<(Time, Vec<u8>)> = frames
        .iter()
        .zip(0u32..)
        .map(|(f, i)| (Time::from_secs(CAPTURE_START_SECS) + spacing * i, f.clone()))
        .collect();
    pcap::write_pcap_file(&path, &stamped)
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}

/// Decodes the capture `name` at `path` with tshark and `extra` arguments; checks that it
/// holds `frames` packets.
pub fn decode<S: AsRef<str>>(name: &str, path: &Path, extra: &[S], frames: usize) -> Vec<Packet> {
    let packets = tshark()
        .decode(path, extra)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(packets.len(), frames, "{name}: packets decoded");
    packets
}

/// Each packet carries exactly the bytes of its frame; `label(i)` names frame i in a
/// failure.
pub fn assert_same_bytes(
    name: &str,
    packets: &[Packet],
    frames: &[Vec<u8>],
    label: impl Fn(usize) -> String,
) {
    for (i, (packet, frame)) in packets.iter().zip(frames).enumerate() {
        assert_eq!(
            packet.raw("frame").as_deref(),
            Some(frame.as_slice()),
            "{name} #{} ({}): tshark saw other bytes",
            i + 1,
            label(i)
        );
    }
}
