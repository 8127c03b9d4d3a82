//! Keeping the Transferring Node quiet on ARP while the Agent holds its address.
//!
//! The TN keeps its address on the interface during a transfer (the wake-up must still be
//! delivered locally), so every ARP request its kernel sends carries that address as the
//! sender, with the TN's MAC. Neighbours update an existing cache entry from any such
//! request: one unicast probe from the TN (its own entry for the router going stale) is
//! enough to pull the stream back from the Agent to the TN mid-transfer. Seen on real
//! packets in tools/tests/sid_transfer.rs. So on release the TN pins the neighbour
//! entries it has (no probes are sent for permanent entries) and on take-back turns them
//! back into ordinary entries.

use std::net::Ipv4Addr;

use crate::mn::netcfg::{IpCommand, NetPlan};

/// One resolved neighbour the kernel would otherwise re-probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub address: Ipv4Addr,
    pub lladdr: String,
}

/// Entries of `ip -4 neigh show dev IFACE` that have a link-layer address and are not
/// already static (`PERMANENT`, `NOARP`): `198.18.0.254 lladdr 02:53:4c:00:01:00 STALE`.
pub fn parse_neighbours(text: &str) -> Vec<Neighbour> {
    text.lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let address = words.first()?.parse().ok()?;
            let at = words.iter().position(|w| *w == "lladdr")?;
            let lladdr = (*words.get(at + 1)?).to_owned();
            let is_static = words.iter().any(|w| matches!(*w, "PERMANENT" | "NOARP"));
            (!is_static).then_some(Neighbour { address, lladdr })
        })
        .collect()
}

fn neigh(n: &Neighbour, interface: &str, nud: &str) -> IpCommand {
    let args = ["-4", "neigh", "replace", &n.address.to_string(), "lladdr", &n.lladdr, "dev", interface, "nud", nud];
    IpCommand { args: args.iter().map(|s| (*s).to_owned()).collect(), may_fail: true }
}

/// Release: the entries become permanent, so the kernel sends no probe for them.
pub fn pin_plan(neighbours: &[Neighbour], interface: &str) -> NetPlan {
    let mut plan = NetPlan::default();
    plan.commands.extend(neighbours.iter().map(|n| neigh(n, interface, "permanent")));
    plan
}

/// Take-back: ordinary entries again, stale so that the kernel re-confirms them.
pub fn unpin_plan(neighbours: &[Neighbour], interface: &str) -> NetPlan {
    let mut plan = NetPlan::default();
    plan.commands.extend(neighbours.iter().map(|n| neigh(n, interface, "stale")));
    plan
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_resolved_entries_are_pinned_and_released() {
        let text = "198.18.0.254 lladdr 02:53:4c:00:01:00 STALE\n\
                    198.18.0.1 lladdr 02:53:4c:00:02:00 REACHABLE\n\
                    198.18.0.7  FAILED\n\
                    198.18.0.9 lladdr 02:00:00:00:00:09 PERMANENT\n\
                    garbage\n";
        let n = parse_neighbours(text);
        assert_eq!(n.len(), 2);
        assert_eq!(n[0], Neighbour { address: Ipv4Addr::new(198, 18, 0, 254), lladdr: "02:53:4c:00:01:00".into() });
        let pin = pin_plan(&n, "eth0");
        assert_eq!(
            pin.commands[1].args.join(" "),
            "-4 neigh replace 198.18.0.1 lladdr 02:53:4c:00:02:00 dev eth0 nud permanent"
        );
        assert_eq!(unpin_plan(&n, "eth0").commands[0].args.last().map(String::as_str), Some("stale"));
    }
}
