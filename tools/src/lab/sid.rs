//! SID devices in the lab: the Agent (`mip-ha` in `ha`) and `sidctl serve` daemons on the
//! Transferring Node (`mn`, 198.18.0.10 on the home LAN) and on Targets, their
//! configuration files, and the `sidctl --json` client calls that drive a transfer. Used
//! by the SID lab tests and by `sid-lab run` scenarios.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
#[derive(Debug, Clone)]
pub struct TargetSpec {
    pub host: String,
    pub identity: String,
    pub address: Ipv4Addr,
}

impl TargetSpec {
    pub fn new(host: &str, identity: &str, address: Ipv4Addr) -> Self {
        TargetSpec { host: host.into(), identity: identity.into(), address }
    }
}

/// One running `sidctl serve` daemon.
pub struct Device {
    pub host: String,
    pub identity: String,
    pub socket: PathBuf,
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
}

/// The Agent and the devices' daemons, running.
pub struct Devices {
    _ha: LabChild,
    pub ha_socket: PathBuf,
    pub tn: Device,
    pub targets: Vec<Device>,
}

/// The peers section of one device's configuration: every other device.
fn peers(me: &str, all: &[(String, Ipv4Addr)]) -> String {
    all.iter()
        .filter(|(id, _)| id != me)
        .map(|(id, a)| format!("[[peer]]\nidentity = \"{id}\"\naddress = \"{a}:4343\"\npsk = \"{PSK}\"\n\n"))
        .collect()
}

/// Gives the TN its address and starts `mip-ha` in `ha` (with `[sid]` on), `sidctl serve`
/// on `mn` (identity "desk") and on each Target; returns once every control socket exists.
/// Every device knows every other as a peer, so that a Target may hand the session on.
pub fn start_devices(lab: &Lab, targets: &[TargetSpec]) -> Result<Devices> {
    let dir = lab.workdir().to_path_buf();
    lab.sh("mn", "ip addr add 198.18.0.10/24 dev eth0 && ip link set eth0 up && ip route replace default via 198.18.0.254")?;

    let ha_socket = dir.join("ha.sock");
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
    let mut all = vec![("desk".to_owned(), TN_ADDRESS)];
    all.extend(targets.iter().map(|t| (t.identity.clone(), t.address)));

    let cfg = |p: &Path| p.to_string_lossy().into_owned();
    let ha = lab.spawn("ha", &[&tool("mip-ha")?, "--config", &cfg(&ha_cfg)])?;
    let start = |host: &str, identity: &str, text: String| -> Result<Device> {
        let socket = dir.join(format!("sid-{identity}.sock"));
        let path = dir.join(format!("sid-{identity}.toml"));
        write(&path, &text.replace("@SOCKET@", &socket.to_string_lossy()))?;
        let daemon = lab.spawn(host, &[&tool("sidctl")?, "serve", "--config", &cfg(&path)])?;
        Ok(Device { host: host.into(), identity: identity.into(), socket, _daemon: daemon })
    };
    let tn = start(
        "mn",
        "desk",
        format!(
            "[device]\nidentity = \"desk\"\naddress = \"{TN_ADDRESS}\"\ninterface = \"eth0\"\n\
             control_socket = \"@SOCKET@\"\nlifetime = 120\n\n\
             [agent]\naddress = \"198.18.0.1\"\nspi = 256\nkey = \"{LAB_KEY}\"\n\n{}",
            peers("desk", &all)
        ),
    )?;
    let mut devices = Vec::new();
    for t in targets {
        devices.push(start(
            &t.host,
            &t.identity,
            format!(
                "[device]\nidentity = \"{}\"\naddress = \"{}\"\ninterface = \"eth0\"\n\
                 control_socket = \"@SOCKET@\"\ntun_name = \"sid0\"\n\n{}",
                t.identity,
                t.address,
                peers(&t.identity, &all)
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
    Ok(Devices { _ha: ha, ha_socket, tn, targets: devices })
}

impl Devices {
    /// The end of the Agent's (`mip-ha`) log, for failure reports.
    pub fn agent_log_tail(&self, lines: usize) -> String {
        log_tail(&self._ha, lines)
    }
}

/// One `sidctl --json` client call on `device`; the daemon's whole response, which must
/// say `ok`.
pub fn sidctl(lab: &Lab, device: &Device, args: &[&str]) -> Result<serde_json::Value> {
    let sock = device.socket.to_string_lossy().into_owned();
    // coreutils `timeout`: a daemon that never answers fails the call, not the run.
    let sidctl = tool("sidctl")?;
    let mut cmd = vec!["timeout", "5", &sidctl, "--socket", &sock, "--json"];
    cmd.extend_from_slice(args);
    let out = lab.exec(&device.host, &cmd)?;
    let text = String::from_utf8_lossy(&out.stdout);
    let what = format!("sidctl {} on {}", args.join(" "), device.host);
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| failed(what.clone(), format!("{e}: {text} {}", String::from_utf8_lossy(&out.stderr))))?;
    if v["ok"] != true {
        return Err(failed(what, format!("refused: {v}")));
    }
    Ok(v)
}

/// Polls `status` on `device` until `pick` returns something, within [`DEADLINE`].
pub fn wait_status<T>(
    lab: &Lab,
    device: &Device,
    what: &str,
    pick: impl Fn(&serde_json::Value) -> Option<T>,
) -> Result<T> {
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

/// `from` offers the session it holds (as Transferring Node, or as a Target with the
/// further-transfer permission) to `to`, which accepts; then `from` transfers. Returns
/// once `to` holds the address. `extra` goes on the offer (`--further`, `--reverse-tunnel`).
pub fn negotiate_and_transfer(lab: &Lab, from: &Device, to: &Device, extra: &[&str]) -> Result<()> {
    let mut offer = vec!["offer", "--peer", to.identity.as_str(), "--role", "transferring"];
    offer.extend_from_slice(extra);
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
    wait_status(lab, to, "state holding", |s| s["target"]["state"].as_str()?.starts_with("holding").then_some(()))
}

/// True when `v` (a status or binding list) mentions a transfer anywhere.
pub fn any_transfer(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Object(m) => m.iter().any(|(k, x)| (k == "transfer" && !x.is_null()) || any_transfer(x)),
        serde_json::Value::Array(a) => a.iter().any(any_transfer),
        _ => false,
    }
}
