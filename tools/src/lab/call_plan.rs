//! What a call-transfer run does, as data: the devices, whether an Agent runs, and the
//! phases, each with the change that starts it ([`Change`]: the call's start, a transfer
//! to a device, or `sidctl stop` on a device) and what else happens in it. Two itineraries
//! are built in:
//!
//! - [`Itinerary::through_agent`] (patent FIG. 1a): TN -> Target 1 (foreign 1) -> Target 2
//!   (foreign 2, a further transfer) -> back to the TN when Target 2 ends the session (the
//!   Agent wakes the TN).
//! - [`Itinerary::same_subnet`] (FIG. 1b, no Agent): TN -> a Target on the TN's own LAN,
//!   which takes the address over by ARP -> back to the TN by the TN's stop-transfer
//!   demand; then TN -> the Target again -> back when the Target ends it (its own wake-up
//!   to the TN). A third host's forged stop demand is sent while the Target first holds
//!   the session.

use std::net::Ipv4Addr;

use super::sid::{TargetSpec, TN_ADDRESS};
use super::topology::{base, HostSpec, Topology};

/// The devices of the FIG. 1a itinerary, in the order of every per-device column: the TN,
/// Target 1, Target 2.
pub const ROLES: [&str; 3] = ["TN", "Target 1", "Target 2"];
/// Where they run.
pub const HOSTS: [&str; 3] = ["mn", "fa1", "fa2"];
/// Their own addresses (the TN's is the session address).
pub const ADDRESSES: [Ipv4Addr; 3] = [TN_ADDRESS, base::FA1, base::FA2];
const IDENTITIES: [&str; 3] = ["desk", "laptop", "tablet"];
/// The same-subnet Target of the FIG. 1b itinerary: host `tgt` on the home LAN.
pub const SAME_SUBNET_TARGET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 20);
/// The second correspondent, on cn's LAN (TCP with the TN).
pub const CN2: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);

/// One device of the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallDevice {
    /// Its name in the report ("TN", "Target 1").
    pub role: String,
    pub host: String,
    pub identity: String,
    pub address: Ipv4Addr,
    /// A Target on the TN's LAN (FIG. 1b): it takes the address over by ARP.
    pub same_subnet: bool,
}

/// What starts a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The call starts; nothing moves (the baseline: the noise floor).
    Start,
    /// The device holding the session offers it to device `to`, which accepts; the holder
    /// transfers. `further`: the TN lets `to` hand the session on; `reverse_tunnel`: `to`
    /// sends its return traffic through the Agent. Done when the old holder sees the
    /// change accepted (the Agent's reply; the same-subnet Target's).
    Transfer { to: usize, further: bool, reverse_tunnel: bool },
    /// `sidctl stop` on device `by`: the TN's stop-transfer demand, or the holding Target
    /// ending the session (FIG. 1a: lifetime 0, the Agent wakes the TN; FIG. 1b: the
    /// Target wakes the TN itself). Done when the TN is home (and a same-subnet Target has
    /// let the address go).
    Stop { by: usize },
}

/// One phase: its name (unique: the counters taken at its end are found by it), the
/// change that starts it, and what is done once the change is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseSpec {
    pub name: String,
    pub change: Change,
    /// A forged stop-transfer demand (a third party's: the session's SPI, a wrong key)
    /// from this host to the same-subnet Target holding the session; it must change
    /// nothing.
    pub forged_stop_from: Option<String>,
}

impl PhaseSpec {
    /// A phase started by `change`, nothing else done in it.
    pub fn new(name: impl Into<String>, change: Change) -> Self {
        PhaseSpec { name: name.into(), change, forged_stop_from: None }
    }
}

/// A whole run: devices and phases. Device 0 is the TN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Itinerary {
    /// What the run shows, for the report's title.
    pub title: String,
    /// The Agent runs (FIG. 1a). Without it every transfer is a same-subnet one.
    pub agent: bool,
    pub devices: Vec<CallDevice>,
    pub phases: Vec<PhaseSpec>,
}

fn device(role: &str, host: &str, identity: &str, address: Ipv4Addr, same_subnet: bool) -> CallDevice {
    CallDevice { role: role.into(), host: host.into(), identity: identity.into(), address, same_subnet }
}

impl Itinerary {
    /// FIG. 1a: TN -> Target 1 -> Target 2 (further transfer) -> TN; `reverse_tunnel` is
    /// the reverse path of each of the two transfers.
    pub fn through_agent(reverse_tunnel: [bool; 2]) -> Self {
        let path = |r: bool| if r { "tunnelled" } else { "direct" };
        Itinerary {
            title: "FIG. 1a, through the Agent: TN -> Target 1 -> Target 2 (further transfer) -> TN".into(),
            agent: true,
            devices: (0..3).map(|i| device(ROLES[i], HOSTS[i], IDENTITIES[i], ADDRESSES[i], false)).collect(),
            phases: vec![
                PhaseSpec::new("TN (home, baseline)", Change::Start),
                PhaseSpec::new(
                    format!("Target 1 (fa1, reverse {})", path(reverse_tunnel[0])),
                    Change::Transfer { to: 1, further: true, reverse_tunnel: reverse_tunnel[0] },
                ),
                PhaseSpec::new(
                    format!("Target 2 (fa2, reverse {})", path(reverse_tunnel[1])),
                    Change::Transfer { to: 2, further: false, reverse_tunnel: reverse_tunnel[1] },
                ),
                PhaseSpec::new("TN (home again)", Change::Stop { by: 2 }),
            ],
        }
    }

    /// FIG. 1b, no Agent: TN -> Target (same LAN) -> TN by its stop-transfer demand ->
    /// Target -> TN by the Target's end of the session; cn forges a stop demand while the
    /// Target first holds the session.
    pub fn same_subnet() -> Self {
        let mut first = PhaseSpec::new("Target (tgt, same LAN)", Change::Transfer { to: 1, further: false, reverse_tunnel: false });
        first.forged_stop_from = Some("cn".into());
        Itinerary {
            title: "FIG. 1b, same subnet, no Agent: TN -> Target -> TN (stop demand) -> Target -> TN (the Target ends it)".into(),
            agent: false,
            devices: vec![
                device("TN", "mn", "desk", TN_ADDRESS, false),
                device("Target", "tgt", "phone", SAME_SUBNET_TARGET, true),
            ],
            phases: vec![
                PhaseSpec::new("TN (home, baseline)", Change::Start),
                first,
                PhaseSpec::new("TN (home: its stop demand)", Change::Stop { by: 0 }),
                PhaseSpec::new("Target again (tgt, same LAN)", Change::Transfer { to: 1, further: false, reverse_tunnel: false }),
                PhaseSpec::new("TN (home: the Target ended it)", Change::Stop { by: 1 }),
            ],
        }
    }

    /// The device meant to hold the session in each phase.
    pub fn holders(&self) -> Vec<usize> {
        let mut holder = 0;
        self.phases
            .iter()
            .map(|p| {
                match p.change {
                    Change::Start => {}
                    Change::Transfer { to, .. } => holder = to,
                    Change::Stop { .. } => holder = 0,
                }
                holder
            })
            .collect()
    }

    /// Why this itinerary cannot run, if it cannot.
    pub fn problem(&self) -> Option<String> {
        let n = self.devices.len();
        let holders = self.holders();
        if self.phases.first().map(|p| p.change) != Some(Change::Start) {
            return Some("the first phase must be the call's start".into());
        }
        if self.devices.first().map(|d| d.address) != Some(TN_ADDRESS) || self.devices.iter().skip(1).any(|d| d.address == TN_ADDRESS) {
            return Some(format!("device 0, and only it, is the TN ({TN_ADDRESS})"));
        }
        for (k, p) in self.phases.iter().enumerate() {
            let before = k.checked_sub(1).map_or(0, |j| holders[j]);
            let bad = match p.change {
                Change::Start => k > 0,
                Change::Transfer { to, further, reverse_tunnel } => {
                    let local = self.devices.get(to).is_some_and(|d| d.same_subnet) || !self.agent;
                    to == 0 || to >= n || to == before || (local && (before != 0 || further || reverse_tunnel))
                }
                Change::Stop { by } => before == 0 || (by != 0 && by != before),
            };
            if bad {
                return Some(format!("phase {k} ({}): {:?} is not possible there (holder: device {before})", p.name, p.change));
            }
            if p.forged_stop_from.is_some() && !self.devices.get(holders[k]).is_some_and(|d| d.same_subnet) {
                return Some(format!("phase {k} ({}): a forged stop demand needs a same-subnet Target holding", p.name));
            }
            if self.phases[..k].iter().any(|q| q.name == p.name) {
                return Some(format!("phase {k}: the name {:?} is taken", p.name));
            }
        }
        None
    }

    /// The Targets, for [`super::sid::start_devices`].
    pub fn targets(&self) -> Vec<TargetSpec> {
        self.devices
            .iter()
            .skip(1)
            .map(|d| {
                if d.same_subnet {
                    TargetSpec::same_subnet(&d.host, &d.identity, d.address)
                } else {
                    TargetSpec::new(&d.host, &d.identity, d.address)
                }
            })
            .collect()
    }

    /// The lab: the mobility topology (mn bare: the SID fixture configures it), a second
    /// correspondent `cn2` next to `cn`, and each device's host that the topology lacks, on
    /// the home LAN (a same-subnet Target is on the TN's LAN).
    pub fn topology(&self) -> Topology {
        let mut t = super::mobility::topology();
        t.hosts.push(HostSpec::single("cn2", "cn", base::CN_LAN.with_addr(CN2), Some(base::RTR_CN)));
        for d in &self.devices {
            if !t.hosts.iter().any(|h| h.name == d.host) {
                t.hosts.push(HostSpec::single(&d.host, "home", base::HOME_LAN.with_addr(d.address), Some(base::RTR_HOME)));
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_itineraries_are_possible() {
        for it in [Itinerary::through_agent([false, true]), Itinerary::same_subnet()] {
            assert_eq!(it.problem(), None, "{}", it.title);
        }
        assert_eq!(Itinerary::through_agent([false, true]).holders(), [0, 1, 2, 0]);
        assert_eq!(Itinerary::same_subnet().holders(), [0, 1, 0, 1, 0]);
    }

    #[test]
    fn impossible_changes_are_refused() {
        // A same-subnet session is never handed on, nor reverse-tunnelled.
        let mut it = Itinerary::same_subnet();
        it.phases[3].change = Change::Transfer { to: 1, further: false, reverse_tunnel: true };
        assert!(it.problem().is_some());
        let mut it = Itinerary::through_agent([false, false]);
        it.phases[3].change = Change::Stop { by: 1 };
        assert!(it.problem().is_some(), "only the holder or the TN stops");
        let mut it = Itinerary::through_agent([false, false]);
        it.phases[1].forged_stop_from = Some("cn".into());
        assert!(it.problem().is_some(), "forgery needs a same-subnet holder");
        let mut it = Itinerary::same_subnet();
        it.phases[3].name = it.phases[1].name.clone();
        assert!(it.problem().is_some(), "names are unique");
    }

    #[test]
    fn the_same_lan_target_gets_a_host_on_the_home_lan() {
        let t = Itinerary::same_subnet().topology();
        let tgt = t.hosts.iter().find(|h| h.name == "tgt").map(|h| h.ifaces[0].lan.clone());
        assert_eq!(tgt.as_deref(), Some("home"));
        assert!(Itinerary::through_agent([false, true]).topology().hosts.iter().all(|h| h.name != "tgt"));
    }
}
