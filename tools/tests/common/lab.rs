//! What every lab test (real packets in network namespaces) needs before it starts: root,
//! the daemons built next to the test's own binaries, and the machine to itself.
//!
//! ```text
//! let Some(_lab) = common::lab::begin("sid_transfer") else { return };
//! ```
//!
//! Lab tests need root. Without it a test is skipped (it says so), except under CI (env
//! `CI` set), which runs as root: there a missing root is a failure, never a silent skip.

use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

/// Whether this process may build labs.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// True when `test` must be skipped for want of root (said on stderr); panics under CI.
pub fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    assert!(std::env::var_os("CI").is_none(), "{test}: CI runs as root; this test must run there");
    eprintln!("{test}: skipped, needs root");
    true
}

/// Builds every binary the lab runs (`mip-ha`, `mip-fa` and this package's: `sidctl`,
/// `sid-traffic`, `ha-admin`, ...) once per test process, in the test's own profile, and
/// points `tools::lab::guard::find_tool` at them (`SIDLAB_BIN_DIR`). Cargo gives a test only
/// its own package's binaries, and only those it declares; a nested `cargo build` is a
/// no-op when they are current (cargo released its lock before running the tests).
pub fn build_daemons() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        // target/<profile>/deps/<test>: the binaries are in target/<profile>.
        let exe = std::env::current_exe().expect("test executable");
        let bin_dir = exe.parent().and_then(Path::parent).expect("target dir").to_path_buf();
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args(["build", "--quiet", "-p", "mip-ha", "-p", "mip-fa", "-p", "tools", "--bins"]);
        if bin_dir.file_name().and_then(|n| n.to_str()) == Some("release") {
            cargo.arg("--release");
        }
        let out = cargo.current_dir(env!("CARGO_MANIFEST_DIR")).output().expect("cannot run cargo");
        assert!(out.status.success(), "building the daemons failed:\n{}", String::from_utf8_lossy(&out.stderr));
        std::env::set_var("SIDLAB_BIN_DIR", &bin_dir);
    });
}

/// Held while a lab test runs: the lab tests of one test binary run one at a time, so
/// that each has the machine's two cores to itself (cargo runs test binaries one after
/// the other, and the tests of one binary in parallel).
pub struct LabTest {
    _serial: MutexGuard<'static, ()>,
}

/// The start of a lab test: `None` when it is skipped (no root, not under CI); otherwise
/// the daemons are built and the other lab tests of this binary wait until the returned
/// guard is dropped.
pub fn begin(test: &str) -> Option<LabTest> {
    static LAB_LOCK: Mutex<()> = Mutex::new(());
    if skip_unless_root(test) {
        return None;
    }
    // A test that panicked while holding the lock leaves nothing to clean up here (its
    // lab is removed on drop): the next one may go on.
    let serial = LAB_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    build_daemons();
    Some(LabTest { _serial: serial })
}

/// A call-transfer report's robust facts, phase by phase: the scenario ran every step, and
/// in phase k the session is at device `holders[k]` (named `roles[i]` in the report),
/// which gets at least 90% of the forward probes of the phase's settled window (of at least
/// half a second) while the other devices get none, and cn gets at least 90% of the
/// holder's answers. Timings are printed with the report, never asserted.
pub fn assert_each_phase(r: &tools::lab::call_report::CallReport, roles: &[&str], holders: &[usize]) {
    assert!(r.failures.is_empty(), "every step of the scenario worked: {:#?}\n{r}", r.failures);
    assert_eq!(r.phases.len(), holders.len(), "{r}");
    for (k, (p, &want)) in r.phases.iter().zip(holders).enumerate() {
        assert_eq!(p.holder, roles[want], "phase {k} ({}): the session is at the {}\n{r}", p.name, roles[want]);
        let w = &p.settled;
        assert!(w.expected >= 500, "phase {k}: a settled window of at least half a second\n{r}");
        assert!(w.forward[want] * 10 >= w.expected * 9, "phase {k}: the holder gets the forward probes\n{r}");
        for (i, n) in w.forward.iter().enumerate().filter(|(i, _)| *i != want) {
            assert_eq!(*n, 0, "phase {k}: {} gets nothing\n{r}", roles[i]);
        }
        assert!(w.returned[want] * 10 >= w.expected * 9, "phase {k}: cn gets the holder's return stream\n{r}");
    }
}

/// The second correspondent's TCP connection with the TN, never transferred: every byte,
/// the end of stream, no error, and data again once the TN is home.
pub fn assert_tcp_survived(r: &tools::lab::call_report::CallReport) {
    let t = &r.tcp;
    assert_eq!(t.send.error, None, "TCP sender\n{r}");
    assert!(t.send.acknowledged, "the TCP receiver saw the whole stream\n{r}");
    assert_eq!(t.recv.error, None, "TCP receiver\n{r}");
    assert!(t.recv.eof && t.recv.errors == 0, "TCP stream intact\n{r}");
    assert!(t.send.bytes > 0 && t.recv.bytes == t.send.bytes, "every TCP byte\n{r}");
    assert!(t.bytes_after_home > 0, "TCP data after the TN is home again\n{r}");
}

/// The counters at the end of phase `k` of a call-transfer report.
pub fn counters_of(r: &tools::lab::call_report::CallReport, k: usize) -> &tools::lab::call_report::Snapshot {
    r.counters.iter().find(|s| s.phase == r.phases[k].name).unwrap_or_else(|| panic!("counters of phase {k}\n{r}"))
}
