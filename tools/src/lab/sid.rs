//! SID devices in the lab: the Agent (`mip-ha` in `ha`) and `sidctl serve` daemons on the
//! Transferring Node (`mn`, 198.18.0.10 on the home LAN) and on Targets, their
//! configuration files, and the `sidctl --json` client calls that drive a transfer. Used
//! by the SID lab tests and by `sid-lab run` scenarios.
//!
//! Two set-ups: [`start_devices`] (patent FIG. 1a: the Agent runs, the TN has an `[agent]`
//! section, Targets anywhere) and [`start_devices_without_agent`] (FIG. 1b: no Agent at
//! all; the Targets are on the TN's own LAN and take its address over by ARP). A Target
//! made with [`TargetSpec::same_subnet`] is marked `same_subnet = true` in the other
//! devices' peer lists and is offered the session with `--local`.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mip_core::auth::{append_auth_extension, AuthAlgorithm, ReplayMethod, SecurityAssociation};
use mip_core::time::Time;
use mip_core::wire::{ext_type, RegistrationFlags, RegistrationRequestRepr};
use serde_json::Value;
use sid_ext::wire::{SidExtensions, StopReason, DEFAULT_ORG_ID};

use super::guard::find_tool;
use super::mobility::LAB_KEY;
use super::{Lab, LabChild, LabError, Result};

/// The pre-shared secret of every device pair in the lab (an example; never use it
/// outside the lab).
pub const PSK: &str = "7369642d6465736b2d6c6170746f702d70736b2d30303031";
/// The Transferring Node's address: the session address that moves.
pub const TN_ADDRESS: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
/// Every wait for a state change is bounded by this.
pub const DEADLINE: Duration = Duration::from_secs(10);

fn failed(what: impl Into<String>, detail: impl Into<String>) -> LabError {
    LabError::Command { command: what.into(), status: "failed".into(), stderr: detail.into() }
}

fn tool(name: &str) -> Result<String> {
    Ok(find_tool(name)?.to_string_lossy().into_owned())
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| failed(format!("writing {}", path.display()), e.to_string()))
}

/// A Target device: the lab host it runs in, its identity and its own address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    pub host: String,
    pub identity: String,
    pub address: Ipv4Addr,
    /// On the TN's own LAN: transfers to it go without the Agent (FIG. 1b).
    pub same_subnet: bool,
}

impl TargetSpec {
    /// A Target the Agent tunnels to (FIG. 1a).
    pub fn new(host: &str, identity: &str, address: Ipv4Addr) -> Self {
        TargetSpec { host: host.into(), identity: identity.into(), address, same_subnet: false }
    }

    /// A Target on the TN's own LAN that takes the address over by ARP (FIG. 1b).
    pub fn same_subnet(host: &str, identity: &str, address: Ipv4Addr) -> Self {
        TargetSpec { same_subnet: true, ..TargetSpec::new(host, identity, address) }
    }
}

/// One running `sidctl serve` daemon.
pub struct Device {
    pub host: String,
    pub identity: String,
    /// The device's own address (the TN's is the session address).
    pub address: Ipv4Addr,
    pub socket: PathBuf,
    /// A Target on the TN's LAN (FIG. 1b).
    pub same_subnet: bool,
    _daemon: LabChild,
}

/// The last `lines` lines of a daemon's standard error (its log), colour codes removed.
fn log_tail(child: &LabChild, lines: usize) -> String {
    let text = child.stderr();
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
            continue;
        }
        plain.push(c);
    }
    let all: Vec<&str> = plain.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Device {
    /// The end of this device's `sidctl serve` log, for failure reports.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self._daemon, lines)
    }

    /// `sidctl --json ARGS` on this device: [`sidctl`].
    pub fn sidctl(&self, lab: &Lab, args: &[&str]) -> Result<Value> {
        sidctl(lab, self, args)
    }

    /// The `data` of this device's `sidctl status`.
    pub fn status(&self, lab: &Lab) -> Result<Value> {
        let mut v = sidctl(lab, self, &["status"])?;
        Ok(v["data"].take())
    }

    /// Polls this device's status until `pick` returns something: [`wait_status`].
    pub fn wait<T>(&self, lab: &Lab, what: &str, pick: impl Fn(&Value) -> Option<T>) -> Result<T> {
        wait_status(lab, self, what, pick)
    }
}

/// The Agent (with [`start_devices`]) and the devices' daemons, running.
pub struct Devices {
    ha: Option<LabChild>,
    /// The Agent's control socket (`ha-admin --socket`); it exists only with an Agent.
    pub ha_socket: PathBuf,
    pub tn: Device,
    pub targets: Vec<Device>,
}

impl Devices {
    /// Whether an Agent runs (FIG. 1a).
    pub fn has_agent(&self) -> bool {
        self.ha.is_some()
    }

    /// The end of the Agent's (`mip-ha`) log, for failure reports; empty without one.
    pub fn agent_log_tail(&self, lines: usize) -> String {
        self.ha.as_ref().map(|h| log_tail(h, lines)).unwrap_or_default()
    }

    /// Device `i`: 0 the TN, then the Targets in the order they were given.
    pub fn device(&self, i: usize) -> Option<&Device> {
        match i.checked_sub(1) {
            None => Some(&self.tn),
            Some(t) => self.targets.get(t),
        }
    }

    /// The TN, then the Targets.
    pub fn all(&self) -> impl Iterator<Item = &Device> {
        std::iter::once(&self.tn).chain(self.targets.iter())
    }
}

/// The peers section of one device's configuration: every other device (`same_subnet`
/// for those on the TN's LAN, seen from the TN and from each other).
fn peers(me: &str, me_local: bool, all: &[(String, Ipv4Addr, bool)]) -> String {
    all.iter()
        .filter(|(id, _, _)| id != me)
        .map(|(id, a, local)| {
            let mark = if *local || me_local { "same_subnet = true\n" } else { "" };
            format!("[[peer]]\nidentity = \"{id}\"\naddress = \"{a}:4343\"\npsk = \"{PSK}\"\n{mark}\n")
        })
        .collect()
}

/// Gives the TN its address and starts `mip-ha` in `ha` (with `[sid]` on), `sidctl serve`
/// on `mn` (identity "desk") and on each Target; returns once every control socket exists.
/// Every device knows every other as a peer, so that a Target may hand the session on.
pub fn start_devices(lab: &Lab, targets: &[TargetSpec]) -> Result<Devices> {
    start(lab, targets, true)
}

/// As [`start_devices`] but without an Agent (patent FIG. 1b): no `mip-ha`, and the TN has
/// no `[agent]` section, so every transfer of it is a same-subnet one.
pub fn start_devices_without_agent(lab: &Lab, targets: &[TargetSpec]) -> Result<Devices> {
    start(lab, targets, false)
}

fn start(lab: &Lab, targets: &[TargetSpec], agent: bool) -> Result<Devices> {
    let dir = lab.workdir().to_path_buf();
    lab.sh("mn", "ip addr add 198.18.0.10/24 dev eth0 && ip link set eth0 up && ip route replace default via 198.18.0.254")?;

    let ha_socket = dir.join("ha.sock");
    let cfg = |p: &Path| p.to_string_lossy().into_owned();
    let ha = if agent {
        let ha_cfg = dir.join("ha.toml");
        write(
            &ha_cfg,
            &format!(
                "[home_agent]\naddress = \"198.18.0.1\"\nprefix_len = 24\nlisten = \"0.0.0.0:434\"\n\
                 control_socket = \"{}\"\nmax_lifetime = 600\nhome_interface = \"eth0\"\n\n\
                 [sid]\nenabled = true\nwake_up_interval_ms = 200\n\n\
                 [[mobile_node]]\nhome_address = \"198.18.0.10\"\n[[mobile_node.sa]]\nspi = 256\nkey = \"{LAB_KEY}\"\n",
                ha_socket.display()
            ),
        )?;
        Some(lab.spawn("ha", &[&tool("mip-ha")?, "--config", &cfg(&ha_cfg)])?)
    } else {
        None
    };
    let mut all = vec![("desk".to_owned(), TN_ADDRESS, false)];
    all.extend(targets.iter().map(|t| (t.identity.clone(), t.address, t.same_subnet)));

    let start = |host: &str, identity: &str, address: Ipv4Addr, same_subnet: bool, text: String| -> Result<Device> {
        let socket = dir.join(format!("sid-{identity}.sock"));
        let path = dir.join(format!("sid-{identity}.toml"));
        write(&path, &text.replace("@SOCKET@", &socket.to_string_lossy()))?;
        let daemon = lab.spawn(host, &[&tool("sidctl")?, "serve", "--config", &cfg(&path)])?;
        Ok(Device { host: host.into(), identity: identity.into(), address, socket, same_subnet, _daemon: daemon })
    };
    let agent_section = if agent {
        format!("[agent]\naddress = \"198.18.0.1\"\nspi = 256\nkey = \"{LAB_KEY}\"\n\n")
    } else {
        String::new()
    };
    let tn = start(
        "mn",
        "desk",
        TN_ADDRESS,
        false,
        format!(
            "[device]\nidentity = \"desk\"\naddress = \"{TN_ADDRESS}\"\ninterface = \"eth0\"\n\
             control_socket = \"@SOCKET@\"\nlifetime = 120\n\n{agent_section}{}",
            peers("desk", false, &all)
        ),
    )?;
    let mut devices = Vec::new();
    for t in targets {
        devices.push(start(
            &t.host,
            &t.identity,
            t.address,
            t.same_subnet,
            format!(
                "[device]\nidentity = \"{}\"\naddress = \"{}\"\ninterface = \"eth0\"\n\
                 control_socket = \"@SOCKET@\"\ntun_name = \"sid0\"\n\n{}",
                t.identity,
                t.address,
                peers(&t.identity, t.same_subnet, &all)
            ),
        )?);
    }
    for d in std::iter::once(&tn).chain(devices.iter()) {
        let begun = Instant::now();
        while !d.socket.exists() {
            if begun.elapsed() > DEADLINE {
                return Err(failed(format!("sidctl serve on {}", d.host), "no control socket"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(Devices { ha, ha_socket, tn, targets: devices })
}

/// One `sidctl --json` client call on `device`; the daemon's whole response, which must
/// say `ok`.
pub fn sidctl(lab: &Lab, device: &Device, args: &[&str]) -> Result<Value> {
    let sock = device.socket.to_string_lossy().into_owned();
    // coreutils `timeout`: a daemon that never answers fails the call, not the run.
    let sidctl = tool("sidctl")?;
    let mut cmd = vec!["timeout", "5", &sidctl, "--socket", &sock, "--json"];
    cmd.extend_from_slice(args);
    let out = lab.exec(&device.host, &cmd)?;
    let text = String::from_utf8_lossy(&out.stdout);
    let what = format!("sidctl {} on {}", args.join(" "), device.host);
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| failed(what.clone(), format!("{e}: {text} {}", String::from_utf8_lossy(&out.stderr))))?;
    if v["ok"] != true {
        return Err(failed(what, format!("refused: {v}")));
    }
    Ok(v)
}

/// Polls `status` on `device` until `pick` returns something, within [`DEADLINE`].
pub fn wait_status<T>(lab: &Lab, device: &Device, what: &str, pick: impl Fn(&Value) -> Option<T>) -> Result<T> {
    let begun = Instant::now();
    loop {
        let s = sidctl(lab, device, &["status"])?;
        if let Some(t) = pick(&s["data"]) {
            return Ok(t);
        }
        if begun.elapsed() > DEADLINE {
            return Err(failed(format!("{}: {what}", device.host), format!("not within {DEADLINE:?}; status: {s:#}")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether a device's status (`data`) says it holds a session as Target, through the
/// Agent (`holding...`) or on the TN's LAN (`holding`).
pub fn holds_session(s: &Value) -> bool {
    s["target"]["state"].as_str().is_some_and(|x| x.starts_with("holding")) || s["same_subnet"]["target"]["state"] == "holding"
}

/// Whether the TN's status says its address is home: its Agent role (if it has one) and
/// its same-subnet role both at home.
pub fn tn_home(s: &Value) -> bool {
    (s["transferring_node"].is_null() || s["transferring_node"]["state"] == "home") && s["same_subnet"]["tn"]["state"] == "home"
}

/// Whether the TN's status says its address is with a Target: the Agent accepted the
/// transfer, or the same-subnet Target confirmed the take-over.
pub fn tn_transferred(s: &Value) -> bool {
    s["transferring_node"]["state"] == "transferred" || s["same_subnet"]["tn"]["state"] == "transferred"
}

/// `from` offers the session it holds (as Transferring Node, or as a Target with the
/// further-transfer permission) to `to`, which accepts; then `from` transfers. Returns
/// once `to` holds the address. `extra` goes on the offer (`--further`, `--reverse-tunnel`);
/// a same-subnet `to` is offered the session with `--local`.
pub fn negotiate_and_transfer(lab: &Lab, from: &Device, to: &Device, extra: &[&str]) -> Result<()> {
    let mut offer = vec!["offer", "--peer", to.identity.as_str(), "--role", "transferring"];
    offer.extend_from_slice(extra);
    if to.same_subnet && !extra.contains(&"--local") {
        offer.push("--local");
    }
    sidctl(lab, from, &offer)?;
    let id = wait_status(lab, to, "the offer", |s| s["offers"].get(0)?["id"].as_u64())?;
    sidctl(lab, to, &["accept", &id.to_string()])?;
    let id = wait_status(lab, from, "the negotiation", |s| {
        s["negotiated"]
            .as_array()?
            .iter()
            .find(|n| n["role"] == "TransferringNode" && n["used"] == false && n["peer"] == to.identity.as_str())?["id"]
            .as_u64()
    })?;
    sidctl(lab, from, &["transfer", &id.to_string()])?;
    wait_status(lab, to, "state holding", |s| holds_session(s).then_some(()))
}

/// A third party's stop-transfer demand for a same-subnet session (RFC-NOTES, FIG. 1b,
/// 3.2): from `host` (an address that is neither device), under the session's SPI, which
/// is visible on the wire, but keyed with a guess, not the session's key. Sent once to
/// each of `to` (UDP 434). A Target must drop it unanswered and change nothing.
pub fn forge_stop_demand(lab: &Lab, host: &str, spi: u32, target: Ipv4Addr, to: &[Ipv4Addr]) -> Result<()> {
    let sa = SecurityAssociation {
        spi,
        algorithm: AuthAlgorithm::HmacMd5,
        key: b"an attacker's guess at the key".to_vec(),
        replay: ReplayMethod::Timestamp,
    };
    let mut m = RegistrationRequestRepr {
        flags: RegistrationFlags::default(),
        lifetime: 0,
        home_address: TN_ADDRESS,
        home_agent: target,
        care_of_address: TN_ADDRESS,
        identification: Time::from_system(std::time::SystemTime::now()).to_ntp(),
    }
    .to_bytes();
    SidExtensions { stop_transfer: Some(StopReason::Override), ..SidExtensions::default() }
        .append_to(DEFAULT_ORG_ID, &mut m)
        .map_err(|e| failed("forged stop demand", e.to_string()))?;
    append_auth_extension(&mut m, ext_type::MOBILE_HOME_AUTH, &sa);
    let from = lab.addr(host)?;
    let to = to.to_vec();
    lab.in_ns(host, move || -> std::io::Result<()> {
        let s = UdpSocket::bind(SocketAddrV4::new(from, 0))?;
        for a in to {
            s.send_to(&m, SocketAddrV4::new(a, 434))?;
        }
        Ok(())
    })?
    .map_err(|e| LabError::io(format!("{host}: sending the forged stop demand"), e))
}
