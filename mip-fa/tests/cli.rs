//! The `mip-fa` command line: `--validate` and its exit codes.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn mip_fa(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mip-fa"))
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn validate_prints_a_summary_and_exits_0() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/fa.toml");
    let (code, stdout, _) = mip_fa(&["--config", sample, "--validate"]);
    assert_eq!(code, 0);
    assert!(
        stdout.starts_with("configuration ok: foreign agent 198.18.1.1/24 on eth0"),
        "{stdout}"
    );
}

#[test]
fn bad_configuration_and_usage_exit_2_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[foreign_agent]\ninterface = \"eth0\"\ncare_of_address = \"198.18.1.1\"\n",
    )
    .unwrap();
    let (code, _, stderr) = mip_fa(&["--config", bad.to_str().unwrap(), "--validate"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("prefix_len"), "{stderr}");
    let (code, _, stderr) = mip_fa(&["--config", "/nonexistent/fa.toml"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot read"), "{stderr}");
    assert_eq!(mip_fa(&["--bogus"]).0, 2);
    assert_eq!(mip_fa(&["--help"]).0, 0);
}
