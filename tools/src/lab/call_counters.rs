//! The counters of a call-transfer run: each device's `sidctl status` and the Agent's
//! bindings and counters, taken at the end of every phase ([`Snapshot`]), and what a
//! forged stop demand changed ([`Forgery`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::sid::TN_ADDRESS;
use crate::sid::datapath::SidDataStats;

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn s(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

/// One device's `sidctl status`, the parts the report uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceCounters {
    pub role: String,
    pub host: String,
    /// The Transferring Node role's state through the Agent (a TN with an `[agent]`).
    pub tn_state: Option<String>,
    /// The Target role's state through the Agent (FIG. 1a).
    pub target_state: String,
    /// The same-subnet roles' states (FIG. 1b).
    pub local_tn_state: String,
    pub local_target_state: String,
    /// Wake-ups the TN accepted (from the Agent or a same-subnet Target).
    pub wake_ups_accepted: u64,
    /// A same-subnet Target's wake-ups to the TN, and the TN's acknowledgements of them.
    pub wake_ups_sent: u64,
    pub wake_ups_acknowledged: u64,
    /// Requests to a same-subnet Target that did not authenticate (dropped unanswered).
    pub discarded_auth: u64,
    pub data: SidDataStats,
}

impl DeviceCounters {
    /// From the `data` of a `sidctl --json status` answer.
    pub fn from_status(role: &str, host: &str, status: &Value) -> Self {
        let (tn, local) = (&status["transferring_node"], &status["same_subnet"]);
        DeviceCounters {
            role: role.to_owned(),
            host: host.to_owned(),
            tn_state: tn["state"].as_str().map(str::to_owned),
            target_state: s(&status["target"]["state"]),
            local_tn_state: s(&local["tn"]["state"]),
            local_target_state: s(&local["target"]["state"]),
            wake_ups_accepted: u(&tn["wake_ups_accepted"]) + u(&local["tn"]["wake_ups_accepted"]),
            wake_ups_sent: u(&local["target"]["wake_ups_sent"]),
            wake_ups_acknowledged: u(&local["target"]["wake_ups_acknowledged"]),
            discarded_auth: u(&local["target"]["discarded_auth"]),
            // The daemon's own type, read back; a counter the status lacks reads 0.
            data: SidDataStats::deserialize(&status["data"]).unwrap_or_default(),
        }
    }

    /// The TN's address is home in every role.
    pub fn tn_home(&self) -> bool {
        self.tn_state.as_deref().is_none_or(|x| x == "home") && self.local_tn_state == "home"
    }

    /// The device holds the session as Target, in either case.
    pub fn holds(&self) -> bool {
        self.target_state.starts_with("holding") || self.local_target_state == "holding"
    }

    /// The states, short: FIG. 1a `tn/target` (a Target: `target`); FIG. 1b the same of
    /// the same-subnet roles.
    pub fn state(&self, same_subnet: bool) -> String {
        let (tn, target) = if same_subnet {
            (Some(self.local_tn_state.as_str()).filter(|_| self.role == "TN"), &self.local_target_state)
        } else {
            (self.tn_state.as_deref(), &self.target_state)
        };
        match tn {
            Some(tn) => format!("{tn}/{target}"),
            None => target.clone(),
        }
    }
}

/// A transfer binding at the Agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransferView {
    pub transferring_node: String,
    pub target: String,
    pub further_transfer: bool,
    pub reverse_path: String,
    pub hops: u64,
    pub previous_targets: Vec<String>,
    pub renewals: u64,
}

/// One binding at the Agent, with its tunnel counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BindingView {
    pub home_address: String,
    pub care_of_address: String,
    pub reverse_tunnel: bool,
    /// Tunnelled to the care-of address / received through its reverse tunnel.
    pub packets_out: u64,
    pub packets_in: u64,
    pub transfer: Option<TransferView>,
}

/// The Agent's bindings (`ha-admin --json binding list`) and counters (`stats`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentView {
    pub bindings: Vec<BindingView>,
    pub transfers_started: u64,
    pub further_transfers: u64,
    pub renewals: u64,
    pub transfers_ended: u64,
    pub wake_ups_sent: u64,
    pub wake_ups_acknowledged: u64,
    pub intercepted: u64,
    pub tunnelled_packets: u64,
    pub reverse_packets: u64,
    /// Sent on to the TN's own MAC after its binding ended (hand-back relay).
    pub relayed_home: u64,
    /// The data plane's drops by reason.
    pub dropped: std::collections::BTreeMap<String, u64>,
}

impl AgentView {
    pub fn from_json(bindings: &Value, stats: &Value) -> Self {
        let list = bindings.as_array().map(Vec::as_slice).unwrap_or_default();
        let bindings = list
            .iter()
            .map(|b| BindingView {
                home_address: s(&b["home_address"]),
                care_of_address: s(&b["care_of_address"]),
                reverse_tunnel: b["reverse_tunnel"] == true,
                packets_out: u(&b["traffic"]["packets_out"]),
                packets_in: u(&b["traffic"]["packets_in"]),
                transfer: b["transfer"].as_object().map(|_| {
                    let t = &b["transfer"];
                    TransferView {
                        transferring_node: s(&t["transferring_node"]),
                        target: s(&t["target"]),
                        further_transfer: t["further_transfer"] == true,
                        reverse_path: s(&t["reverse_path"]),
                        hops: u(&t["hops"]),
                        previous_targets: t["previous_targets"].as_array().map(|a| a.iter().map(s).collect()).unwrap_or_default(),
                        renewals: u(&t["renewals"]),
                    }
                }),
            })
            .collect();
        let (x, dp) = (&stats["sid"], &stats["dataplane"]);
        AgentView {
            bindings,
            transfers_started: u(&x["transfers_started"]),
            further_transfers: u(&x["further_transfers"]),
            renewals: u(&x["renewals"]),
            transfers_ended: u(&x["transfers_ended"]),
            wake_ups_sent: u(&x["wake_ups_sent"]),
            wake_ups_acknowledged: u(&x["wake_ups_acknowledged"]),
            intercepted: u(&dp["intercepted"]),
            tunnelled_packets: u(&dp["tunnelled_packets"]),
            reverse_packets: u(&dp["reverse_packets"]),
            relayed_home: u(&dp["relayed_home"]),
            dropped: dp["dropped"].as_object().map(|m| m.iter().map(|(k, v)| (k.clone(), u(v))).collect()).unwrap_or_default(),
        }
    }

    /// The binding of the session address, if any.
    pub fn session(&self) -> Option<&BindingView> {
        let tn = TN_ADDRESS.to_string();
        self.bindings.iter().find(|b| b.home_address == tn)
    }

    /// Whether a transfer binding for the session address is left.
    pub fn transfer_left(&self) -> bool {
        self.session().is_some_and(|b| b.transfer.is_some())
    }
}

/// Counters at the end of one phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub phase: String,
    pub at_us: u64,
    pub devices: Vec<DeviceCounters>,
    /// `None` when no Agent runs (FIG. 1b).
    pub agent: Option<AgentView>,
}

/// A forged stop-transfer demand sent while a same-subnet Target held the session, and
/// the Target's and the TN's state around it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Forgery {
    pub phase: String,
    /// The third host it came from.
    pub from: String,
    /// Where it was sent (UDP 434): the Target's own address and the one it holds.
    pub sent_to: Vec<String>,
    /// The Target's `discarded_auth` before, and once it had counted them (or at the
    /// deadline).
    pub discarded_before: u64,
    pub discarded_after: u64,
    pub target_state_after: String,
    pub wake_ups_sent_before: u64,
    pub wake_ups_sent_after: u64,
    pub tn_state_after: String,
}

impl Forgery {
    /// Dropped, every copy counted, nothing changed.
    pub fn refused(&self) -> bool {
        self.discarded_after >= self.discarded_before + self.sent_to.len() as u64
            && self.target_state_after == "holding"
            && self.wake_ups_sent_after == self.wake_ups_sent_before
            && self.tn_state_after == "transferred"
    }
}
