//! The daemon's JSON status file: rewritten on each change, replaced atomically (write to
//! a temporary file beside it, then rename), so a reader never sees half a document.
//!
//! ```json
//! {"pid":123,"location":"colocated","agent":"198.18.2.1","care_of_address":"198.18.2.100",
//!  "registration":"registered","binding":{...},"moves":2,"data":{...},...}
//! ```

use std::net::Ipv4Addr;
use std::path::Path;

use mip_core::mobile_node::MnState;
use mip_core::movement::Location;
use serde::Serialize;

use super::datapath::DataStats;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BindingStatus {
    pub care_of_address: Ipv4Addr,
    pub lifetime: u16,
    pub expires_unix_micros: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub pid: u32,
    pub home_address: Ipv4Addr,
    pub home_agent: Ipv4Addr,
    /// unknown, home, foreign_agent, colocated, lost
    pub location: &'static str,
    pub agent: Option<Ipv4Addr>,
    /// The care-of address being registered (the home address at home).
    pub care_of_address: Option<Ipv4Addr>,
    /// idle, registering, registered, reregistering, deregistering
    pub registration: &'static str,
    pub binding: Option<BindingStatus>,
    pub reverse_tunnel: bool,
    pub moves: u64,
    pub advertisements: u64,
    pub solicitations: u64,
    pub registrations_accepted: u64,
    pub requests_sent: u64,
    pub gratuitous_arps: u64,
    pub last_event: String,
    pub data: DataStats,
    pub updated_unix_micros: u64,
}

pub fn location_name(l: Location) -> &'static str {
    match l {
        Location::Unknown => "unknown",
        Location::Home { .. } => "home",
        Location::ForeignAgent { .. } => "foreign_agent",
        Location::Colocated { .. } => "colocated",
        Location::Lost => "lost",
    }
}

pub fn registration_name(s: MnState) -> &'static str {
    match s {
        MnState::Idle => "idle",
        MnState::Registering => "registering",
        MnState::Registered => "registered",
        MnState::Reregistering => "reregistering",
        MnState::Deregistering => "deregistering",
    }
}

/// Writes `status` to `path` atomically.
pub fn write(path: &Path, status: &Status) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(status).map_err(std::io::Error::other)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}
