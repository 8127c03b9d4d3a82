//! The moving-node scenario (issue 3): the real `mip-ha`, `mip-fa` and `mip-mn` daemons
//! in the base topology, a correspondent streaming UDP and TCP to the node's home address
//! while the node moves home -> foreign 1 (through the foreign agent) -> foreign 2
//! (co-located care-of address) -> home.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::guard::find_tool;
use super::process::LabChild;
use super::scenario::{move_reports, MoveLog, ScenarioOptions, ScenarioReport, TcpFlow, UdpFlow};
use super::topology::Topology;
use super::{Lab, LabError, Result};

/// The lab key of mobile node 198.18.0.10 (also in config/ha.toml and config/mn.toml).
pub const LAB_KEY: &str = "6d69702d68612d6c61622d6b65792d31";
/// How long the node may take to notice a move and register.
const MOVE_DEADLINE: Duration = Duration::from_secs(10);

/// The base topology with the mobile node's eth0 left bare: its daemon owns its addresses.
pub fn topology() -> Topology {
    let mut t = Topology::base();
    // The base topology always has an "mn" host; if that ever changes, the scenario
    // fails at `Lab::up` with a clear error instead.
    let _ = t.strip_host_config("mn");
    t
}

/// What `mip-mn run --status-file` writes; only the fields the scenario reads.
#[derive(Debug, Clone, Deserialize)]
pub struct NodeStatus {
    pub location: String,
    pub registration: String,
    pub care_of_address: Option<std::net::Ipv4Addr>,
    pub moves: u64,
}

/// The three daemons of a mobility run, stopped on drop.
pub struct MobilityDaemons {
    pub ha: LabChild,
    pub fa: LabChild,
    /// Foreign 2's agent: it only advertises there (the node registers a co-located
    /// care-of address on that link, as its configuration asks), so that the node can
    /// tell from the advertised prefix that it moved.
    pub fa2: LabChild,
    pub mn: LabChild,
    pub status_file: PathBuf,
    pub ha_control: PathBuf,
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| LabError::io(format!("writing {path:?}"), e))
}

fn tool(name: &str) -> Result<String> {
    Ok(find_tool(name)?.to_string_lossy().into_owned())
}

/// Writes the three configurations into the lab's work directory and starts the daemons.
/// `encapsulation` is what the node asks of the home agent: ip-in-ip, minimal or gre.
pub fn start_daemons(lab: &Lab, encapsulation: &str, reverse_tunnel: bool) -> Result<MobilityDaemons> {
    let dir = lab.workdir();
    let ha_control = dir.join("ha.sock");
    let fa_control = dir.join("fa1.sock");
    let fa2_control = dir.join("fa2.sock");
    let status_file = dir.join("mn-status.json");
    let ha_cfg = dir.join("ha.toml");
    let fa_cfg = dir.join("fa1.toml");
    let fa2_cfg = dir.join("fa2.toml");
    let mn_cfg = dir.join("mn.toml");
    write(
        &ha_cfg,
        &format!(
            r#"[home_agent]
address = "198.18.0.1"
prefix_len = 24
listen = "0.0.0.0:434"
control_socket = "{}"
max_lifetime = 600
home_interface = "eth0"

[[mobile_node]]
home_address = "198.18.0.10"
[[mobile_node.sa]]
spi = 256
key = "{LAB_KEY}"
"#,
            ha_control.display()
        ),
    )?;
    for (path, address, control) in [(&fa_cfg, "198.18.1.1", &fa_control), (&fa2_cfg, "198.18.2.1", &fa2_control)] {
        write(
            path,
            &format!(
                r#"[foreign_agent]
interface = "eth0"
care_of_address = "{address}"
prefix_len = 24
control_socket = "{}"

[advertisement]
prefix_lengths = true
"#,
                control.display()
            ),
        )?;
    }
    write(
        &mn_cfg,
        &format!(
            r#"[mobile_node]
home_address = "198.18.0.10"
home_prefix_len = 24
home_gateway = "198.18.0.254"
home_agent = "198.18.0.1"
interface = "eth0"
lifetime = 120
reverse_tunnel = {reverse_tunnel}
encapsulation = "{encapsulation}"

[security_association]
spi = 256
key = "{LAB_KEY}"

[[colocated]]
prefix = "198.18.2.0/24"
address = "198.18.2.100"
gateway = "198.18.2.254"

[daemon]
status_file = "{}"
"#,
            status_file.display()
        ),
    )?;
    let cfg = |p: &Path| p.to_string_lossy().into_owned();
    let ha = lab.spawn("ha", &[&tool("mip-ha")?, "--config", &cfg(&ha_cfg)])?;
    let fa = lab.spawn("fa1", &[&tool("mip-fa")?, "--config", &cfg(&fa_cfg)])?;
    let fa2 = lab.spawn("fa2", &[&tool("mip-fa")?, "--config", &cfg(&fa2_cfg)])?;
    let mn = lab.spawn("mn", &[&tool("mip-mn")?, "run", "--config", &cfg(&mn_cfg)])?;
    Ok(MobilityDaemons { ha, fa, fa2, mn, status_file, ha_control })
}

impl MobilityDaemons {
    pub fn status(&self) -> Option<NodeStatus> {
        let text = std::fs::read_to_string(&self.status_file).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Waits until the node reports `location` with a settled registration (registered
    /// away, idle at home). Returns how long it took.
    pub fn wait_for(&self, location: &str, deadline: Duration) -> Result<Duration> {
        let start = Instant::now();
        let settled = if location == "home" { "idle" } else { "registered" };
        loop {
            if let Some(s) = self.status() {
                if s.location == location && s.registration == settled {
                    return Ok(start.elapsed());
                }
            }
            if start.elapsed() > deadline {
                return Err(LabError::Report {
                    what: "mobile node".into(),
                    reason: format!(
                        "not {location}/{settled} after {deadline:?}: {:?}; mip-mn log: {}",
                        self.status(),
                        tail(&self.mn.stderr())
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// What a mobility run asks of the node and measures.
#[derive(Debug, Clone)]
pub struct MoveSetup {
    /// What the node asks of the home agent: "ip-in-ip", "minimal" or "gre".
    pub encapsulation: &'static str,
    /// The T bit: the node's packets go back through the home agent.
    pub reverse_tunnel: bool,
    /// Also stream UDP from the node to the correspondent (the reverse path).
    pub return_flow: bool,
}

impl Default for MoveSetup {
    fn default() -> Self {
        MoveSetup { encapsulation: "ip-in-ip", reverse_tunnel: false, return_flow: false }
    }
}

/// `sid-lab run move`.
pub fn move_scenario(lab: &Lab, opts: &ScenarioOptions) -> Result<ScenarioReport> {
    run_moves(lab, opts, &MoveSetup::default()).map(|(report, _daemons)| report)
}

/// Starts the daemons, waits for the node at home, streams from the correspondent (and
/// back, with `return_flow`), and moves the node home -> f1 -> f2 -> home. The daemons
/// are returned still running so that a test can read their counters.
pub fn run_moves(lab: &Lab, opts: &ScenarioOptions, setup: &MoveSetup) -> Result<(ScenarioReport, MobilityDaemons)> {
    let mut report = ScenarioReport::new("move", lab);
    let daemons = start_daemons(lab, setup.encapsulation, setup.reverse_tunnel)?;
    let home_settle = daemons.wait_for("home", MOVE_DEADLINE)?;
    report.check("node starts at home", true, format!("after {} ms", home_settle.as_millis()));

    let home = std::net::Ipv4Addr::new(198, 18, 0, 10);
    let cn = lab.addr("cn")?;
    lab.wait_reachable("cn", home, Duration::from_secs(3))?;
    // Four dwell phases of `duration` each, plus the time moves take.
    let total = opts.duration * 4 + MOVE_DEADLINE;
    let udp = UdpFlow::start(lab, "cn-mn", "cn", "mn", home, 5001, opts.pps, total)?;
    let back = if setup.return_flow {
        Some(UdpFlow::start(lab, "mn-cn", "mn", "cn", cn, 5002, opts.pps, total)?)
    } else {
        None
    };
    let tcp = TcpFlow::start(lab, "cn-mn", "cn", "mn", home, 5003, opts.tcp_rate, total)?;
    std::thread::sleep(opts.duration);

    let mut moves = MoveLog::new();
    for (label, lan, location) in [
        ("home -> foreign 1 (foreign agent)", "f1", "foreign_agent"),
        ("foreign 1 -> foreign 2 (co-located)", "f2", "colocated"),
        ("foreign 2 -> home", "home", "home"),
    ] {
        moves.record(label);
        lab.move_port("mn", lan)?;
        let took = daemons.wait_for(location, MOVE_DEADLINE);
        report.check(
            format!("move {label}: node registered"),
            took.is_ok(),
            match &took {
                Ok(d) => format!("{location} after {} ms", d.as_millis()),
                Err(e) => e.to_string(),
            },
        );
        std::thread::sleep(opts.duration);
    }
    for (flow, name) in [(Some(udp), "cn-mn"), (back, "mn-cn")] {
        let Some(flow) = flow else { continue };
        let flow = flow.finish(&moves.times())?;
        report.moves.extend(move_reports(name, &moves, &flow.recv));
        report.check(
            format!("udp {name}: delivered in every phase"),
            flow.recv.windows.iter().all(|w| w.received > 0),
            format!("sent {} received {} lost {}", flow.recv.sent, flow.recv.received, flow.recv.lost),
        );
        report.udp.push(flow);
    }
    let t = tcp.finish()?;
    report.check(
        "tcp connection survives every move, every byte in order",
        t.ok && t.send.bytes > 0,
        format!(
            "{} of {} bytes, {} errors, longest stall {:.1} ms",
            t.recv.bytes, t.send.bytes, t.recv.errors, t.recv.longest_stall_ms
        ),
    );
    report.tcp.push(t);
    Ok((report, daemons))
}
