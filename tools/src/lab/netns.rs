//! Lab namespaces: their names, finding the processes inside them, removing them, and running
//! a closure inside one.
//!
//! Naming: every lab has a prefix, and each of its namespaces is `PREFIX-HOST` (the switch is
//! `PREFIX-sw`). A lab made by a process is `sl<pid>-<counter>` (so parallel tests never clash
//! and leftovers of a killed process are recognised by its dead pid); a lab made with a name by
//! `sid-lab up --name N` is `sl-N`.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{LabError, Result};

/// Where `ip netns` keeps its namespaces.
pub const NETNS_DIR: &str = "/run/netns";
/// Every lab namespace starts with this.
pub const LAB_PREFIX: &str = "sl";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Who made a lab.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LabOwner {
    /// Made by process `pid` (its `counter`-th lab): removable once `pid` is gone.
    Process { pid: u32, counter: u32 },
    /// Made by `sid-lab up --name`: stays until `sid-lab down`.
    Named(String),
}

/// A namespace that belongs to a lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabNamespace {
    pub name: String,
    pub prefix: String,
    pub host: String,
    pub owner: LabOwner,
}

/// A fresh prefix for a lab owned by this process.
pub fn auto_prefix() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{LAB_PREFIX}{}-{n}", std::process::id())
}

/// The prefix of a named lab; names are 1 to 12 characters a-z, 0-9.
pub fn named_prefix(name: &str) -> Result<String> {
    let ok = !name.is_empty()
        && name.len() <= 12
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(format!("{LAB_PREFIX}-{name}"))
    } else {
        Err(LabError::BadName(name.to_owned()))
    }
}

pub fn ns_name(prefix: &str, host: &str) -> String {
    format!("{prefix}-{host}")
}

fn is_word(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Recognises `sl<pid>-<n>-<host>` and `sl-<name>-<host>`; anything else is not ours.
pub fn parse_ns_name(ns: &str) -> Option<LabNamespace> {
    let rest = ns.strip_prefix(LAB_PREFIX)?;
    let (owner, host) = if let Some(named) = rest.strip_prefix('-') {
        let (name, host) = named.split_once('-')?;
        if !is_word(name) {
            return None;
        }
        (LabOwner::Named(name.to_owned()), host)
    } else {
        let (pid, rest) = rest.split_once('-')?;
        let (counter, host) = rest.split_once('-')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(pid) || !digits(counter) {
            return None;
        }
        let owner = LabOwner::Process {
            pid: pid.parse().ok()?,
            counter: counter.parse().ok()?,
        };
        (owner, host)
    };
    if !is_word(host) {
        return None;
    }
    let prefix = ns.strip_suffix(host)?.strip_suffix('-')?.to_owned();
    Some(LabNamespace {
        name: ns.to_owned(),
        prefix,
        host: host.to_owned(),
        owner,
    })
}

/// Where a lab keeps captures and the output of its processes.
pub fn workdir_of(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(format!("sid-lab-{prefix}"))
}

pub fn netns_path(ns: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(ns)
}

/// All namespaces `ip netns` knows (none when the directory does not exist yet).
pub fn list_namespaces() -> Result<Vec<String>> {
    let dir = match std::fs::read_dir(NETNS_DIR) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LabError::io(format!("reading {NETNS_DIR}"), e)),
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        if let Some(name) = entry.file_name().to_str() {
            out.push(name.to_owned());
        }
    }
    out.sort();
    Ok(out)
}

/// The lab namespaces that exist now.
pub fn list_lab_namespaces() -> Result<Vec<LabNamespace>> {
    Ok(list_namespaces()?
        .iter()
        .filter_map(|n| parse_ns_name(n))
        .collect())
}

/// Whether the process that made a lab still runs.
pub fn owner_alive(owner: &LabOwner) -> bool {
    match owner {
        LabOwner::Process { pid, .. } => Path::new(&format!("/proc/{pid}")).exists(),
        LabOwner::Named(_) => true,
    }
}

fn ns_identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Processes whose network namespace is one of `namespaces` (like `ip netns pids`).
pub fn pids_in(namespaces: &[String]) -> Vec<u32> {
    let ids: Vec<(u64, u64)> = namespaces
        .iter()
        .filter_map(|n| ns_identity(&netns_path(n)))
        .collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let me = std::process::id();
    let mut out = Vec::new();
    let Ok(proc_dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in proc_dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        // A zombie has no namespaces left (the read fails): it holds nothing of ours.
        if let Some(id) = ns_identity(&entry.path().join("ns/net")) {
            if ids.contains(&id) {
                out.push(pid);
            }
        }
    }
    out
}

fn signal_all(pids: &[u32], sig: Signal) {
    for &pid in pids {
        if let Ok(raw) = i32::try_from(pid) {
            // The process may have exited since the scan: ESRCH is fine.
            let _ = kill(Pid::from_raw(raw), sig);
        }
    }
}

/// Ends every process inside `namespaces`: SIGTERM, then SIGKILL after `grace`.
/// Returns how many processes were found.
pub fn kill_processes_in(namespaces: &[String], grace: Duration) -> usize {
    let first = pids_in(namespaces);
    if first.is_empty() {
        return 0;
    }
    signal_all(&first, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    loop {
        let left = pids_in(namespaces);
        if left.is_empty() {
            return first.len();
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let hard_deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let left = pids_in(namespaces);
        if left.is_empty() || Instant::now() >= hard_deadline {
            return first.len();
        }
        signal_all(&left, Signal::SIGKILL);
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The `ip` binary (root's PATH may lack /usr/sbin under some runners).
pub fn ip_bin() -> &'static str {
    ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("ip")
}

/// Starts `ip [-n NS] -batch -` with `commands` on its standard input (not waited for).
pub fn spawn_ip_batch(ns: Option<&str>, commands: &str) -> Result<std::process::Child> {
    let mut cmd = Command::new(ip_bin());
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    cmd.args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| LabError::io("starting ip -batch", e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(commands.as_bytes())
            .map_err(|e| LabError::io("writing to ip -batch", e))?;
    }
    Ok(child)
}

/// Waits for a batch started by [`spawn_ip_batch`]; a failure carries the first lines.
pub fn finish_ip_batch(ns: Option<&str>, commands: &str, child: std::process::Child) -> Result<()> {
    let out = child
        .wait_with_output()
        .map_err(|e| LabError::io("waiting for ip -batch", e))?;
    if out.status.success() {
        return Ok(());
    }
    let head: Vec<&str> = commands.lines().take(3).collect();
    Err(LabError::Command {
        command: format!(
            "ip {}-batch [{} ...]",
            ns.map(|n| format!("-n {n} ")).unwrap_or_default(),
            head.join("; ")
        ),
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    })
}

/// Runs `ip [-n NS] -batch -` and waits for it.
pub fn ip_batch(ns: Option<&str>, commands: &str) -> Result<()> {
    let child = spawn_ip_batch(ns, commands)?;
    finish_ip_batch(ns, commands, child)
}

/// Runs `f` on a thread that has entered namespace `ns` (only that thread moves; processes
/// it spawns start inside `ns`). A panic in `f` is resumed on the caller's thread.
pub fn in_netns<R, F>(ns: &str, f: F) -> Result<R>
where
    R: Send,
    F: FnOnce() -> R + Send,
{
    let path = netns_path(ns);
    let file = File::open(&path).map_err(|e| LabError::io(format!("opening {path:?}"), e))?;
    std::thread::scope(|s| {
        let handle = s.spawn(move || -> Result<R> {
            setns(&file, CloneFlags::CLONE_NEWNET)
                .map_err(|e| LabError::sys(format!("entering namespace {ns}"), e))?;
            Ok(f())
        });
        match handle.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Writes `net.*` sysctls of namespace `ns` (`("net.ipv4.ip_forward", "1")`): /proc/sys/net
/// shows the namespace of the thread that opens it.
pub fn set_sysctls(ns: &str, values: &[(String, String)]) -> Result<()> {
    in_netns(ns, || -> Result<()> {
        for (key, value) in values {
            let path = format!("/proc/sys/{}", key.replace('.', "/"));
            std::fs::write(&path, value)
                .map_err(|e| LabError::io(format!("{ns}: sysctl {key}={value}"), e))?;
        }
        Ok(())
    })?
}

/// Kills the processes inside `namespaces` and deletes them. Missing ones are skipped.
pub fn delete_namespaces(namespaces: &[String]) -> Result<()> {
    let existing: Vec<String> = namespaces
        .iter()
        .filter(|n| netns_path(n).exists())
        .cloned()
        .collect();
    if existing.is_empty() {
        return Ok(());
    }
    kill_processes_in(&existing, Duration::from_millis(300));
    let batch: String = existing
        .iter()
        .map(|n| format!("netns del {n}\n"))
        .collect();
    let Err(first) = ip_batch(None, &batch) else { return Ok(()) };
    // Another process (a `sid-lab down`, or a test removing stale labs) may delete some of
    // the same namespaces at the same moment, which stops the batch at that line: finish
    // one by one. What counts is that none is left.
    for n in existing.iter().filter(|n| netns_path(n).exists()) {
        let _ = ip_batch(None, &format!("netns del {n}\n"));
    }
    if existing.iter().all(|n| !netns_path(n).exists()) {
        Ok(())
    } else {
        Err(first)
    }
}

/// Removes every lab whose namespaces match `pick`; returns the prefixes removed.
pub fn remove_labs(pick: impl Fn(&LabNamespace) -> bool) -> Result<Vec<String>> {
    let chosen: Vec<LabNamespace> = list_lab_namespaces()?.into_iter().filter(pick).collect();
    let names: Vec<String> = chosen.iter().map(|n| n.name.clone()).collect();
    delete_namespaces(&names)?;
    let mut prefixes: Vec<String> = chosen.into_iter().map(|n| n.prefix).collect();
    prefixes.sort();
    prefixes.dedup();
    for p in &prefixes {
        // The work directory of a lab nobody will drop (see `Lab::workdir`).
        let _ = std::fs::remove_dir_all(workdir_of(p));
    }
    Ok(prefixes)
}

/// Removes the labs of processes that no longer run (left behind by a killed test).
pub fn remove_stale_labs() -> Result<Vec<String>> {
    remove_labs(|n| !owner_alive(&n.owner))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_lab_names() {
        let a = parse_ns_name("sl1234-7-mn").unwrap();
        assert_eq!(a.prefix, "sl1234-7");
        assert_eq!(a.host, "mn");
        assert_eq!(
            a.owner,
            LabOwner::Process {
                pid: 1234,
                counter: 7
            }
        );
        let b = parse_ns_name("sl-demo-sw").unwrap();
        assert_eq!(b.prefix, "sl-demo");
        assert_eq!(b.owner, LabOwner::Named("demo".to_owned()));
        for other in [
            "slack",
            "sl12-mn",
            "sl-demo",
            "sl-Demo-mn",
            "x-1-2",
            "sl1-2-",
            "sl1-2-a-b",
        ] {
            assert!(parse_ns_name(other).is_none(), "{other}");
        }
        let p = auto_prefix();
        assert!(parse_ns_name(&ns_name(&p, "rtr")).is_some());
        assert!(named_prefix("bad-name").is_err());
        assert_eq!(named_prefix("lab").unwrap(), "sl-lab");
    }
}
