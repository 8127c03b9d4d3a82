//! Addresses, routes, rules, neighbour entries and ARP sysctls of the mobile node for
//! each place it can be (design3.md "Mobile node addressing").
//!
//! The changes are planned here as plain data ([`plan`]) and applied by running the
//! iproute2 `ip` command ([`apply`]): the same tool a person uses to inspect the result,
//! no netlink code of our own, and each step shows up in the log as the command it is.
//! Steps that only undo what another mode may have left behind are allowed to fail.
//!
//! - Home: eth0 has no address; `HOME_PREFIX dev eth0 src HOME`, `default via HOME_GW dev
//!   eth0 src HOME`; arp_ignore=0 so the kernel answers ARP for the home address (on mip0)
//!   on eth0 (RFC 5944 4.6: the node is an ordinary host at home).
//! - Foreign agent: eth0 has no address; a permanent neighbour entry for the agent with
//!   the MAC of its advertisement (4.2.1, 4.6: no broadcast ARP while away);
//!   `default via FA dev eth0 onlink src HOME`.
//! - Co-located: eth0 gets COA/len; `default via GW dev eth0 src HOME`; rule `from HOME
//!   lookup TABLE`, and `default dev mip0 table TABLE`, so packets from the home address
//!   enter the daemon. The main default route carries `src HOME` (design3.md has no src):
//!   an application that does not bind the home address then still gets it, and mobility,
//!   instead of the co-located address.
//! - Away (both modes): arp_ignore=1 (answer only for addresses on eth0 itself: never the
//!   home address, 4.6) and arp_announce=2 (ARP requests carry the co-located address,
//!   never the home address).

use std::net::Ipv4Addr;
use std::path::Path;

use mip_core::dataplane::ethernet::format_mac;
use mip_core::movement::Ipv4Prefix;

use super::config::Colocated;

/// Priority of the policy rule for the home address (before `main` at 32766).
pub const RULE_PRIORITY: u32 = 1000;

/// Where the node is, as far as its interfaces are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetMode {
    Home,
    ForeignAgent {
        agent: Ipv4Addr,
        agent_mac: Option<[u8; 6]>,
    },
    Colocated(Colocated),
}

/// What is fixed for the node.
#[derive(Debug, Clone)]
pub struct NetParams {
    pub interface: String,
    pub tun_name: String,
    pub home_address: Ipv4Addr,
    pub home_prefix: Ipv4Prefix,
    pub home_gateway: Ipv4Addr,
    pub route_table: u32,
}

/// One `ip` invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpCommand {
    pub args: Vec<String>,
    /// Cleanup of state that may not exist.
    pub may_fail: bool,
}

/// A sysctl under /proc/sys, e.g. `net/ipv4/conf/eth0/arp_ignore`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysctl {
    pub key: String,
    pub value: &'static str,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetPlan {
    pub sysctls: Vec<Sysctl>,
    pub commands: Vec<IpCommand>,
}

impl NetPlan {
    fn ip(&mut self, args: &[&str]) {
        self.push(args, false);
    }

    fn cleanup(&mut self, args: &[&str]) {
        self.push(args, true);
    }

    fn push(&mut self, args: &[&str], may_fail: bool) {
        self.commands.push(IpCommand {
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            may_fail,
        });
    }

    fn sysctl(&mut self, interface: &str, name: &str, value: &'static str) {
        self.sysctls.push(Sysctl {
            key: format!("net/ipv4/conf/{interface}/{name}"),
            value,
        });
    }
}

/// Once at start: the home address on the TUN device (/32: a local route only) and
/// reverse-path filtering off on it (tunnelled packets from any source arrive there).
pub fn plan_tun(p: &NetParams) -> NetPlan {
    let mut plan = NetPlan::default();
    plan.sysctl(&p.tun_name, "rp_filter", "0");
    let home = format!("{}/32", p.home_address);
    plan.ip(&["-4", "addr", "replace", &home, "dev", &p.tun_name]);
    plan.ip(&["link", "set", "dev", &p.tun_name, "up"]);
    plan
}

/// The changes that put the node's networking in `mode`, from whatever it was before.
pub fn plan(p: &NetParams, mode: &NetMode) -> NetPlan {
    let mut plan = NetPlan::default();
    let eth = p.interface.as_str();
    let home = p.home_address.to_string();
    let table = p.route_table.to_string();
    let prio = RULE_PRIORITY.to_string();
    let away = !matches!(mode, NetMode::Home);
    // ARP rules first: from here on eth0 must not answer for the home address when away.
    plan.sysctl(eth, "arp_ignore", if away { "1" } else { "0" });
    plan.sysctl(eth, "arp_announce", if away { "2" } else { "0" });

    // Undo every mode.
    plan.cleanup(&["-4", "rule", "del", "priority", &prio]);
    plan.cleanup(&["-4", "route", "flush", "table", &table]);
    plan.ip(&["-4", "addr", "flush", "dev", eth]);
    plan.cleanup(&["-4", "route", "flush", "dev", eth]);
    plan.cleanup(&["neigh", "flush", "dev", eth, "nud", "all"]);

    match mode {
        NetMode::Home => {
            let prefix = p.home_prefix.to_string();
            let gw = p.home_gateway.to_string();
            plan.ip(&["-4", "route", "replace", &prefix, "dev", eth, "src", &home]);
            plan.ip(&[
                "-4", "route", "replace", "default", "via", &gw, "dev", eth, "src", &home,
            ]);
        }
        NetMode::ForeignAgent { agent, agent_mac } => {
            let agent = agent.to_string();
            if let Some(mac) = agent_mac {
                let mac = format_mac(mac);
                plan.ip(&[
                    "neigh",
                    "replace",
                    &agent,
                    "lladdr",
                    &mac,
                    "dev",
                    eth,
                    "nud",
                    "permanent",
                ]);
            }
            plan.ip(&[
                "-4", "route", "replace", "default", "via", &agent, "dev", eth, "onlink", "src",
                &home,
            ]);
        }
        NetMode::Colocated(c) => {
            let addr = format!("{}/{}", c.address, c.prefix.len());
            let gw = c.gateway.to_string();
            plan.ip(&["-4", "addr", "add", &addr, "dev", eth]);
            plan.ip(&[
                "-4", "route", "replace", "default", "via", &gw, "dev", eth, "src", &home,
            ]);
            let from = format!("{home}/32");
            plan.ip(&[
                "-4", "rule", "add", "from", &from, "lookup", &table, "priority", &prio,
            ]);
            plan.ip(&[
                "-4",
                "route",
                "replace",
                "default",
                "dev",
                &p.tun_name,
                "table",
                &table,
            ]);
        }
    }
    plan
}

/// The policy rule and table of co-located mode, removed when the daemon stops (the TUN
/// device and its address go away with the process).
pub fn plan_shutdown(p: &NetParams) -> NetPlan {
    let mut plan = NetPlan::default();
    plan.cleanup(&["-4", "rule", "del", "priority", &RULE_PRIORITY.to_string()]);
    plan.cleanup(&["-4", "route", "flush", "table", &p.route_table.to_string()]);
    plan
}

/// Why a plan could not be applied completely.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("cannot run {command}: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`ip {args}` failed: {stderr}")]
    Failed { args: String, stderr: String },
    #[error("cannot write /proc/sys/{key}: {source}")]
    Sysctl { key: String, source: std::io::Error },
}

/// Applies `plan`: sysctls, then the commands in order. Stops at the first required step
/// that fails; cleanup steps that fail are logged at debug level only.
pub async fn apply(ip: &Path, plan: &NetPlan) -> Result<(), NetError> {
    for s in &plan.sysctls {
        let path = Path::new("/proc/sys").join(&s.key);
        // A few bytes to procfs: no need to leave the thread for it.
        std::fs::write(&path, s.value).map_err(|source| NetError::Sysctl {
            key: s.key.clone(),
            source,
        })?;
        tracing::debug!(key = %s.key, value = s.value, "sysctl");
    }
    for c in &plan.commands {
        let out = tokio::process::Command::new(ip)
            .args(&c.args)
            .output()
            .await
            .map_err(|source| NetError::Spawn {
                command: ip.display().to_string(),
                source,
            })?;
        let args = c.args.join(" ");
        if out.status.success() {
            tracing::debug!("ip {args}");
        } else if c.may_fail {
            tracing::debug!("ip {args}: {}", String::from_utf8_lossy(&out.stderr).trim());
        } else {
            return Err(NetError::Failed {
                args,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
    }
    Ok(())
}

/// Index and MAC address of `interface`, from `ip -o link show`.
pub async fn link_info(ip: &Path, interface: &str) -> Result<(u32, [u8; 6]), NetError> {
    let out = tokio::process::Command::new(ip)
        .args(["-o", "link", "show", "dev", interface])
        .output()
        .await
        .map_err(|source| NetError::Spawn {
            command: ip.display().to_string(),
            source,
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let failed = || NetError::Failed {
        args: format!("-o link show dev {interface}"),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    };
    if !out.status.success() {
        return Err(failed());
    }
    parse_link_line(&text).ok_or_else(failed)
}

/// `3: eth0@if4: <...> ... link/ether 02:00:00:00:00:01 brd ...` -> (3, MAC).
fn parse_link_line(line: &str) -> Option<(u32, [u8; 6])> {
    let index = line.split(':').next()?.trim().parse().ok()?;
    let mut words = line.split_whitespace();
    words.find(|w| *w == "link/ether")?;
    let mac_text = words.next()?;
    let mut mac = [0u8; 6];
    let mut parts = mac_text.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some((index, mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> NetParams {
        NetParams {
            interface: "eth0".into(),
            tun_name: "mip0".into(),
            home_address: Ipv4Addr::new(198, 18, 0, 10),
            home_prefix: "198.18.0.0/24".parse().expect("prefix"),
            home_gateway: Ipv4Addr::new(198, 18, 0, 254),
            route_table: 100,
        }
    }

    fn lines(plan: &NetPlan) -> Vec<String> {
        plan.commands
            .iter()
            .filter(|c| !c.may_fail)
            .map(|c| c.args.join(" "))
            .collect()
    }

    fn sysctl(plan: &NetPlan, name: &str) -> Option<&'static str> {
        plan.sysctls
            .iter()
            .find(|s| s.key == format!("net/ipv4/conf/eth0/{name}"))
            .map(|s| s.value)
    }

    #[test]
    fn home_routes_use_the_home_address_and_answer_arp() {
        let plan = plan(&params(), &NetMode::Home);
        assert_eq!(
            lines(&plan),
            vec![
                "-4 addr flush dev eth0",
                "-4 route replace 198.18.0.0/24 dev eth0 src 198.18.0.10",
                "-4 route replace default via 198.18.0.254 dev eth0 src 198.18.0.10",
            ]
        );
        assert_eq!(sysctl(&plan, "arp_ignore"), Some("0"));
        assert!(plan
            .commands
            .iter()
            .any(|c| c.may_fail && c.args.join(" ") == "-4 rule del priority 1000"));
    }

    #[test]
    fn foreign_agent_mode_pins_the_agent_mac_and_routes_onlink() {
        let mode = NetMode::ForeignAgent {
            agent: Ipv4Addr::new(198, 18, 1, 1),
            agent_mac: Some([2, 0, 0, 0, 0, 0x11]),
        };
        let plan = plan(&params(), &mode);
        assert_eq!(
            lines(&plan),
            vec![
                "-4 addr flush dev eth0",
                "neigh replace 198.18.1.1 lladdr 02:00:00:00:00:11 dev eth0 nud permanent",
                "-4 route replace default via 198.18.1.1 dev eth0 onlink src 198.18.0.10",
            ]
        );
        assert_eq!(sysctl(&plan, "arp_ignore"), Some("1"));
        assert_eq!(sysctl(&plan, "arp_announce"), Some("2"));
    }

    #[test]
    fn colocated_mode_sends_home_address_traffic_into_the_tun() {
        let c = Colocated {
            prefix: "198.18.2.0/24".parse().expect("prefix"),
            address: Ipv4Addr::new(198, 18, 2, 100),
            gateway: Ipv4Addr::new(198, 18, 2, 254),
        };
        let plan = plan(&params(), &NetMode::Colocated(c));
        assert_eq!(
            lines(&plan),
            vec![
                "-4 addr flush dev eth0",
                "-4 addr add 198.18.2.100/24 dev eth0",
                "-4 route replace default via 198.18.2.254 dev eth0 src 198.18.0.10",
                "-4 rule add from 198.18.0.10/32 lookup 100 priority 1000",
                "-4 route replace default dev mip0 table 100",
            ]
        );
        assert_eq!(sysctl(&plan, "arp_ignore"), Some("1"));
    }

    #[test]
    fn tun_gets_the_home_address() {
        let plan = plan_tun(&params());
        assert_eq!(lines(&plan)[0], "-4 addr replace 198.18.0.10/32 dev mip0");
        assert_eq!(plan.sysctls[0].key, "net/ipv4/conf/mip0/rp_filter");
    }

    #[test]
    fn link_line_parsing() {
        let line = "7: eth0@if8: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT group default qlen 1000\\    link/ether 36:1a:02:9b:00:fe brd ff:ff:ff:ff:ff:ff link-netns x";
        assert_eq!(
            parse_link_line(line),
            Some((7, [0x36, 0x1a, 0x02, 0x9b, 0x00, 0xfe]))
        );
        assert_eq!(
            parse_link_line("1: lo: <LOOPBACK> link/loopback 00:00:00:00:00:00"),
            None
        );
        assert_eq!(parse_link_line("garbage"), None);
    }
}
