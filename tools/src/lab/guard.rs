//! [`Lab`]: a topology brought up in namespaces, torn down on drop.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::netns::{self, ns_name};
use super::ping::PingReport;
use super::process::{Capture, LabChild};
use super::topology::{Cidr, HostSpec, IfaceSpec, Topology, SWITCH};
use super::{LabError, Result};

/// Prefixes of the labs this process owns and has not torn down yet, for
/// [`teardown_live_labs`] (a signal handler in a binary).
static LIVE: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn live() -> std::sync::MutexGuard<'static, BTreeSet<String>> {
    // A panic while holding the lock leaves the set itself consistent.
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Tears down every lab this process still owns. For a binary's SIGINT/SIGTERM handler,
/// where destructors will not run.
pub fn teardown_live_labs() {
    let prefixes: Vec<String> = live().iter().cloned().collect();
    for prefix in prefixes {
        let names: Vec<String> = netns::list_lab_namespaces()
            .unwrap_or_default()
            .into_iter()
            .filter(|n| n.prefix == prefix)
            .map(|n| n.name)
            .collect();
        if let Err(e) = netns::delete_namespaces(&names) {
            eprintln!("sid-lab: tearing down {prefix}: {e}");
        }
        if !keep_requested() {
            let _ = std::fs::remove_dir_all(netns::workdir_of(&prefix));
        }
        live().remove(&prefix);
    }
}

/// `SIDLAB_KEEP=1`: keep work directories (captures, child output) for a post-mortem.
fn keep_requested() -> bool {
    std::env::var("SIDLAB_KEEP").is_ok_and(|v| v == "1")
}

/// Finds a binary of this workspace (`sid-traffic`, `mip-ha`, ...): `$SIDLAB_BIN_DIR`, then
/// the directory of the running executable, then its parent (tests run from `target/*/deps`).
pub fn find_tool(name: &str) -> Result<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("SIDLAB_BIN_DIR") {
        dirs.push(PathBuf::from(d));
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            dirs.push(dir.to_path_buf());
            if let Some(up) = dir.parent() {
                dirs.push(up.to_path_buf());
            }
        }
    }
    for d in &dirs {
        let p = d.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(LabError::ToolNotFound {
        name: name.to_owned(),
        searched: dirs,
    })
}

#[derive(Debug)]
struct HostState {
    ns: String,
    index: usize,
}

/// A running lab. Dropping it (also while unwinding from a panic) kills every process in its
/// namespaces, deletes the namespaces (and with them every veth and bridge) and removes its
/// work directory (kept when `SIDLAB_KEEP=1` or [`Lab::keep_workdir`]).
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    topology: Topology,
    hosts: HashMap<String, HostState>,
    switch_ns: String,
    /// Current LAN of each (host, interface) port: changed by [`Lab::move_iface`].
    ports: Mutex<HashMap<(String, String), String>>,
    workdir: PathBuf,
    keep_workdir: bool,
    owned: bool,
    seq: AtomicUsize,
}

impl Lab {
    /// Builds `topology` under a fresh prefix owned by this process. Labs left by processes
    /// that died are removed first.
    pub fn up(topology: Topology) -> Result<Lab> {
        if let Err(e) = netns::remove_stale_labs() {
            eprintln!("sid-lab: removing stale labs: {e}");
        }
        let prefix = netns::auto_prefix();
        // Only a process that had our pid before us can have left these.
        let leftovers: Vec<String> = netns::list_lab_namespaces()?
            .into_iter()
            .filter(|n| n.prefix == prefix)
            .map(|n| n.name)
            .collect();
        netns::delete_namespaces(&leftovers)?;
        Self::build(topology, prefix)
    }

    /// Builds `topology` as the named lab `sl-NAME` (see [`Lab::persist`]).
    pub fn up_named(topology: Topology, name: &str) -> Result<Lab> {
        let prefix = netns::named_prefix(name)?;
        if netns::list_lab_namespaces()?
            .iter()
            .any(|n| n.prefix == prefix)
        {
            return Err(LabError::Exists(name.to_owned()));
        }
        Self::build(topology, prefix)
    }

    fn build(topology: Topology, prefix: String) -> Result<Lab> {
        topology.validate()?;
        let workdir = netns::workdir_of(&prefix);
        std::fs::create_dir_all(&workdir)
            .map_err(|e| LabError::io(format!("creating {workdir:?}"), e))?;
        let hosts = topology
            .hosts
            .iter()
            .enumerate()
            .map(|(index, h)| {
                let state = HostState {
                    ns: ns_name(&prefix, &h.name),
                    index,
                };
                (h.name.clone(), state)
            })
            .collect();
        let ports = topology
            .hosts
            .iter()
            .flat_map(|h| {
                h.ifaces
                    .iter()
                    .map(|i| ((h.name.clone(), i.name.clone()), i.lan.clone()))
            })
            .collect();
        live().insert(prefix.clone());
        // From here on, dropping `lab` undoes whatever part of the build succeeded.
        let lab = Lab {
            switch_ns: ns_name(&prefix, SWITCH),
            prefix,
            topology,
            hosts,
            ports: Mutex::new(ports),
            workdir,
            keep_workdir: keep_requested(),
            owned: true,
            seq: AtomicUsize::new(0),
        };
        lab.create()?;
        Ok(lab)
    }

    fn all_namespaces(&self) -> Vec<String> {
        let mut v = vec![self.switch_ns.clone()];
        v.extend(
            self.topology
                .hosts
                .iter()
                .map(|h| ns_name(&self.prefix, &h.name)),
        );
        v
    }

    fn create(&self) -> Result<()> {
        let t = &self.topology;
        let namespaces = self.all_namespaces();
        let batch: String = namespaces
            .iter()
            .map(|n| format!("netns add {n}\n"))
            .collect();
        netns::ip_batch(None, &batch)?;

        // Before any interface exists, so that each one copies `default`.
        // IPv6 off: keeps captures free of router solicitations and DAD.
        for ns in &namespaces {
            let forward = t
                .hosts
                .iter()
                .find(|h| ns_name(&self.prefix, &h.name) == *ns)
                .is_some_and(|h| h.ip_forward);
            let mut values: Vec<(String, String)> = Vec::new();
            for scope in ["all", "default"] {
                values.push((format!("net.ipv4.conf.{scope}.rp_filter"), "0".into()));
                values.push((format!("net.ipv4.conf.{scope}.send_redirects"), "0".into()));
                values.push((format!("net.ipv6.conf.{scope}.disable_ipv6"), "1".into()));
            }
            values.push((
                "net.ipv4.ip_forward".into(),
                if forward { "1" } else { "0" }.into(),
            ));
            netns::set_sysctls(ns, &values)?;
        }

        let mut sw = String::from("link set lo up\n");
        for lan in &t.lans {
            sw.push_str(&format!(
                "link add {} type bridge forward_delay 0 stp_state 0 mcast_snooping 0\nlink set {} up\n",
                lan.bridge, lan.bridge
            ));
        }
        netns::ip_batch(Some(&self.switch_ns), &sw)?;

        let mut veths = String::new();
        let mut ports = String::new();
        for (hi, h) in t.hosts.iter().enumerate() {
            for (ii, i) in h.ifaces.iter().enumerate() {
                let port = Topology::port_name(h, i);
                veths.push_str(&format!(
                    "link add {} netns {} address {} type veth peer name {} netns {}\n",
                    i.name,
                    ns_name(&self.prefix, &h.name),
                    fmt_mac(&Topology::mac_for(hi, ii)),
                    port,
                    self.switch_ns
                ));
                let bridge = self.bridge(&i.lan)?;
                ports.push_str(&format!("link set {port} master {bridge} up\n"));
            }
        }
        netns::ip_batch(None, &veths)?;
        netns::ip_batch(Some(&self.switch_ns), &ports)?;

        // Hosts are independent: configure them all at once.
        let mut running = Vec::new();
        for h in &t.hosts {
            let ns = ns_name(&self.prefix, &h.name);
            let batch = host_batch(h);
            let child = netns::spawn_ip_batch(Some(&ns), &batch)?;
            running.push((ns, batch, child));
        }
        let mut first_err = None;
        for (ns, batch, child) in running {
            if let Err(e) = netns::finish_ip_batch(Some(&ns), &batch, child) {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Keeps the lab after this value is gone (for `sid-lab up`); returns its prefix.
    pub fn persist(mut self) -> String {
        self.owned = false;
        self.keep_workdir = true;
        live().remove(&self.prefix);
        self.prefix.clone()
    }

    /// Keeps the work directory (captures, child output) after the lab is dropped.
    pub fn keep_workdir(&mut self, keep: bool) {
        self.keep_workdir = keep;
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Where captures and child output go.
    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    /// The namespace that holds the bridges.
    pub fn switch_ns(&self) -> &str {
        &self.switch_ns
    }

    /// The namespace of `host`.
    pub fn ns(&self, host: &str) -> Result<&str> {
        self.hosts
            .get(host)
            .map(|h| h.ns.as_str())
            .ok_or_else(|| LabError::UnknownHost(host.to_owned()))
    }

    /// Every namespace of the lab (switch first).
    pub fn namespaces(&self) -> Vec<String> {
        self.all_namespaces()
    }

    fn host_spec(&self, host: &str) -> Result<(&HostSpec, usize)> {
        let state = self
            .hosts
            .get(host)
            .ok_or_else(|| LabError::UnknownHost(host.to_owned()))?;
        let spec = self
            .topology
            .hosts
            .get(state.index)
            .ok_or_else(|| LabError::UnknownHost(host.to_owned()))?;
        Ok((spec, state.index))
    }

    fn iface_spec(&self, host: &str, iface: &str) -> Result<(&HostSpec, &IfaceSpec, usize, usize)> {
        let (h, hi) = self.host_spec(host)?;
        let (ii, i) = h
            .ifaces
            .iter()
            .enumerate()
            .find(|(_, i)| i.name == iface)
            .ok_or_else(|| LabError::UnknownIface {
                host: host.to_owned(),
                iface: iface.to_owned(),
            })?;
        Ok((h, i, hi, ii))
    }

    /// The first configured address of `host` (its first interface), from the topology.
    pub fn addr(&self, host: &str) -> Result<Ipv4Addr> {
        let (h, _) = self.host_spec(host)?;
        h.ifaces
            .iter()
            .flat_map(|i| i.addrs.iter())
            .next()
            .map(|c| c.addr)
            .ok_or_else(|| LabError::Topology(format!("host {host:?} has no address")))
    }

    /// The addresses the topology gives `host`'s interface `iface`.
    pub fn iface_addrs(&self, host: &str, iface: &str) -> Result<Vec<Cidr>> {
        Ok(self.iface_spec(host, iface)?.1.addrs.clone())
    }

    /// The MAC of `host`'s interface `iface` (fixed at creation: 02:53:4c:00:HOST:IFACE).
    pub fn mac(&self, host: &str, iface: &str) -> Result<[u8; 6]> {
        let (_, _, hi, ii) = self.iface_spec(host, iface)?;
        Ok(Topology::mac_for(hi, ii))
    }

    /// The bridge of LAN `lan`.
    pub fn bridge(&self, lan: &str) -> Result<&str> {
        self.topology
            .lan(lan)
            .map(|l| l.bridge.as_str())
            .ok_or_else(|| LabError::UnknownLan(lan.to_owned()))
    }

    /// The LAN `host`'s first interface is on now.
    pub fn lan_of(&self, host: &str) -> Result<String> {
        let (h, _) = self.host_spec(host)?;
        let iface = h
            .ifaces
            .first()
            .ok_or_else(|| LabError::UnknownHost(host.to_owned()))?;
        self.ports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(host.to_owned(), iface.name.clone()))
            .cloned()
            .ok_or_else(|| LabError::UnknownHost(host.to_owned()))
    }

    /// Moves `host`'s first interface to LAN `lan` (see [`Lab::move_iface`]).
    pub fn move_port(&self, host: &str, lan: &str) -> Result<()> {
        let (h, _) = self.host_spec(host)?;
        let iface = h
            .ifaces
            .first()
            .map(|i| i.name.clone())
            .ok_or_else(|| LabError::UnknownHost(host.to_owned()))?;
        self.move_iface(host, &iface, lan)
    }

    /// Re-enslaves the switch port of `host`'s `iface` to `lan`'s bridge: the host is now on
    /// that LAN. Its carrier stays up and its addresses stay as they are.
    pub fn move_iface(&self, host: &str, iface: &str, lan: &str) -> Result<()> {
        let (h, i, _, _) = self.iface_spec(host, iface)?;
        let port = Topology::port_name(h, i);
        let bridge = self.bridge(lan)?;
        netns::ip_batch(
            Some(&self.switch_ns),
            &format!("link set {port} master {bridge}\n"),
        )?;
        self.ports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((host.to_owned(), iface.to_owned()), lan.to_owned());
        Ok(())
    }

    fn netns_exec(&self, host: &str, cmd: &[&str]) -> Result<Command> {
        let ns = self.ns(host)?;
        let mut c = Command::new(netns::ip_bin());
        c.args(["netns", "exec", ns]).args(cmd).stdin(Stdio::null());
        Ok(c)
    }

    /// Runs `cmd` inside `host` (`ip netns exec`) and waits for it.
    pub fn exec(&self, host: &str, cmd: &[&str]) -> Result<Output> {
        self.netns_exec(host, cmd)?
            .output()
            .map_err(|e| LabError::io(format!("{host}: running {cmd:?}"), e))
    }

    /// Like [`Lab::exec`], but a non-zero exit is an error; returns standard output.
    pub fn exec_ok(&self, host: &str, cmd: &[&str]) -> Result<String> {
        let out = self.exec(host, cmd)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(LabError::Command {
                command: format!("{host}: {}", cmd.join(" ")),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            })
        }
    }

    /// Runs a shell script inside `host`; a non-zero exit is an error.
    pub fn sh(&self, host: &str, script: &str) -> Result<String> {
        self.exec_ok(host, &["sh", "-c", script])
    }

    /// Starts `cmd` inside `host`; its output goes to files in the work directory.
    pub fn spawn(&self, host: &str, cmd: &[&str]) -> Result<LabChild> {
        let program = cmd
            .first()
            .map(|p| {
                Path::new(p)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let base = self.workdir.join(format!("{host}-{program}-{n}"));
        let stdout_path = base.with_extension("out");
        let stderr_path = base.with_extension("err");
        let open = |p: &Path| {
            std::fs::File::create(p).map_err(|e| LabError::io(format!("creating {p:?}"), e))
        };
        let (out, err) = (open(&stdout_path)?, open(&stderr_path)?);
        let child = self
            .netns_exec(host, cmd)?
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| LabError::io(format!("{host}: starting {cmd:?}"), e))?;
        Ok(LabChild::new(
            child,
            format!("{host}: {program}"),
            stdout_path,
            stderr_path,
        ))
    }

    /// Starts a capture of `iface` inside `host` (`dumpcap -i IFACE -w FILE [-f FILTER]`,
    /// the capture engine of `tshark -w`) and returns once it captures. The pcapng file is in
    /// the work directory. dumpcap rather than tshark: tshark hands `-w` to a dumpcap child
    /// that may still be writing after tshark has exited, so a stopped capture could miss
    /// its last packets; dumpcap alone flushes and exits on SIGTERM.
    pub fn capture(&self, host: &str, iface: &str, filter: &str) -> Result<Capture> {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let path = self.workdir.join(format!("{host}-{iface}-{n}.pcapng"));
        let path_str = path.to_string_lossy().into_owned();
        let mut cmd = vec!["dumpcap", "-i", iface, "-w", &path_str];
        if !filter.is_empty() {
            cmd.extend(["-f", filter]);
        }
        let mut child = self.spawn(host, &cmd)?;
        child.wait_for_output("Capturing on", Duration::from_secs(20))?;
        // dumpcap says so a few milliseconds before libpcap has installed the filter (and
        // dropped what arrived meanwhile).
        std::thread::sleep(super::process::CAPTURE_SETTLE);
        Ok(Capture::new(child, path))
    }

    /// Runs `f` on a thread inside `host`'s namespace (raw sockets, sysctls, ...).
    pub fn in_ns<R, F>(&self, host: &str, f: F) -> Result<R>
    where
        R: Send,
        F: FnOnce() -> R + Send,
    {
        netns::in_netns(self.ns(host)?, f)
    }

    /// ICMP echo from `host` to `target`: up to `attempts` requests, each waiting `timeout`;
    /// stops at the first reply.
    pub fn ping(
        &self,
        host: &str,
        target: Ipv4Addr,
        attempts: u32,
        timeout: Duration,
    ) -> Result<PingReport> {
        self.in_ns(host, || super::ping::ping(target, attempts, timeout, true))?
            .map_err(|e| LabError::io(format!("{host}: ping {target}"), e))
    }

    /// Waits until `host` reaches `target` (one echo at a time), at most `timeout` in all.
    pub fn wait_reachable(&self, host: &str, target: Ipv4Addr, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self
                .ping(host, target, 1, Duration::from_millis(200))?
                .reachable()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout {
                    what: format!("{host} to reach {target}"),
                    millis: timeout.as_millis(),
                });
            }
        }
    }

    /// Removes everything now (as drop does), reporting errors.
    pub fn down(mut self) -> Result<()> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<()> {
        if !self.owned {
            return Ok(());
        }
        self.owned = false;
        let result = netns::delete_namespaces(&self.all_namespaces());
        live().remove(&self.prefix);
        if !self.keep_workdir {
            let _ = std::fs::remove_dir_all(&self.workdir);
        }
        result
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            eprintln!("sid-lab: tearing down {}: {e}", self.prefix);
        }
    }
}

pub fn fmt_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The `ip -batch` lines that configure one host.
fn host_batch(h: &HostSpec) -> String {
    let mut b = String::from("link set lo up\n");
    for i in &h.ifaces {
        b.push_str(&format!("link set {} up\n", i.name));
        for a in &i.addrs {
            b.push_str(&format!("addr add {a} dev {}\n", i.name));
        }
    }
    for r in &h.routes {
        b.push_str(&format!("route add {}\n", r.to_ip_args()));
    }
    b
}
