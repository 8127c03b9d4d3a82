//! The control socket protocol between the mip-ha daemon and ha-admin.
//!
//! One JSON object per line each way: a [`ControlRequest`], answered by one
//! [`ControlResponse`]. The protocol has its own types (both `Serialize` and
//! `Deserialize`) so that ha-admin can read what the daemon writes without the state
//! machine's types having to be deserialisable. [`execute`] is pure: the daemon only
//! moves lines between the socket and it.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use mip_core::time::Time;
use serde::{Deserialize, Serialize};

use crate::bindings::BindingSnapshot;
use crate::dataplane::{DataplaneReport, TrafficCounters};
use crate::home_agent::HomeAgent;
use crate::sid::TransferSnapshot;
use crate::stats::{HaStats, SidStats};

/// What the control socket reads from a running data plane.
pub trait DataplaneView {
    fn traffic(&self, home: Ipv4Addr, care_of: Ipv4Addr) -> Option<TrafficCounters>;
    fn report(&self) -> DataplaneReport;
}

impl DataplaneView for crate::dataplane::Dataplane {
    fn traffic(&self, home: Ipv4Addr, care_of: Ipv4Addr) -> Option<TrafficCounters> {
        crate::dataplane::Dataplane::traffic(self, home, care_of)
    }
    fn report(&self) -> DataplaneReport {
        crate::dataplane::Dataplane::report(self)
    }
}

/// Longest request line accepted, newline excluded. Real requests are < 100 bytes.
pub const MAX_REQUEST_LEN: usize = 4096;

/// `{"command":"binding_show","home":"198.18.0.10"}`. A misspelt field of a request
/// that takes arguments is refused; serde cannot refuse extra fields of the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum ControlRequest {
    BindingList,
    BindingShow { home: Ipv4Addr },
    BindingRevoke { home: Ipv4Addr },
    Stats,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No binding for the home address asked about.
    NotFound,
    /// The request line was not a valid request.
    BadRequest,
}

/// `{"ok":{"bindings":[...]}}` or `{"error":{"kind":"not_found","message":"..."}}`.
///
/// Externally tagged on purpose: serde buffers internally tagged enums, and the
/// buffered form cannot turn the string keys of `denied` back into numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlResponse {
    Ok(ControlOk),
    Error { kind: ErrorKind, message: String },
}

/// What a successful request returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlOk {
    /// Every current binding.
    Bindings(Vec<BindingInfo>),
    /// The bindings of one home address (several with simultaneous bindings).
    Binding {
        home: Ipv4Addr,
        bindings: Vec<BindingInfo>,
    },
    Revoked {
        home: Ipv4Addr,
        removed: usize,
    },
    Stats(StatsReport),
}

/// One binding as the control protocol carries it (mirrors [`BindingSnapshot`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingInfo {
    pub home_address: Ipv4Addr,
    pub care_of_address: Ipv4Addr,
    pub nai: Option<String>,
    pub lifetime_granted: u16,
    pub lifetime_remaining: u64,
    pub identification: String,
    pub flags: String,
    /// `ip-in-ip`, `minimal` or `gre`.
    pub tunnel: String,
    pub reverse_tunnel: bool,
    pub request_source: SocketAddrV4,
    /// Packets and bytes through the tunnel, when the data plane runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<TrafficCounters>,
    /// A SID transfer binding: Transferring Node, Target, permission F, reverse path,
    /// session SPI, renewals, hops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferSnapshot>,
}

impl From<BindingSnapshot> for BindingInfo {
    fn from(b: BindingSnapshot) -> Self {
        BindingInfo {
            home_address: b.home_address,
            care_of_address: b.care_of_address,
            nai: b.nai,
            lifetime_granted: b.lifetime_granted,
            lifetime_remaining: b.lifetime_remaining,
            identification: b.identification,
            flags: b.flags,
            tunnel: serde_name(&b.tunnel),
            reverse_tunnel: b.reverse_tunnel,
            request_source: b.request_source,
            traffic: None,
            transfer: b.transfer,
        }
    }
}

/// The home agent's counters as the control protocol carries them (mirrors [`HaStats`];
/// a unit test checks that no counter is left out).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsReport {
    /// Bindings held right now.
    pub bindings: usize,
    pub datagrams: u64,
    pub requests: u64,
    pub accepted: u64,
    pub deregistrations: u64,
    pub duplicates: u64,
    pub authentication_failures: u64,
    pub replies_sent: u64,
    pub bindings_added: u64,
    pub bindings_removed: u64,
    pub bindings_expired: u64,
    pub bindings_revoked: u64,
    /// SID transfers and wake-ups (boxed: the response enum stays small).
    #[serde(default)]
    pub sid: Box<SidStats>,
    /// Denials by reply code.
    pub denied: BTreeMap<u8, u64>,
    /// Silent drops by reason (`malformed`, `unknown_extension`, ...).
    pub discarded: BTreeMap<String, u64>,
    /// The data plane's counters, when it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataplane: Option<Box<DataplaneReport>>,
}

impl StatsReport {
    pub fn new(stats: &HaStats, bindings: usize) -> Self {
        StatsReport {
            bindings,
            datagrams: stats.datagrams,
            requests: stats.requests,
            accepted: stats.accepted,
            deregistrations: stats.deregistrations,
            duplicates: stats.duplicates,
            authentication_failures: stats.authentication_failures,
            replies_sent: stats.replies_sent,
            bindings_added: stats.bindings_added,
            bindings_removed: stats.bindings_removed,
            bindings_expired: stats.bindings_expired,
            bindings_revoked: stats.bindings_revoked,
            sid: Box::new(stats.sid.clone()),
            denied: stats.denied.clone(),
            discarded: stats.discarded.iter().map(|(r, n)| (serde_name(r), *n)).collect(),
            dataplane: None,
        }
    }

    pub fn total_discarded(&self) -> u64 {
        self.discarded.values().sum()
    }

    pub fn discarded(&self, reason: &str) -> u64 {
        self.discarded.get(reason).copied().unwrap_or(0)
    }
}

/// The name serde gives a unit enum variant, e.g. `TunnelKind::IpInIp` -> `ip-in-ip`.
fn serde_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::from("?"),
    }
}

impl ControlResponse {
    pub fn ok(result: ControlOk) -> Self {
        ControlResponse::Ok(result)
    }

    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Self {
        ControlResponse::Error { kind, message: message.into() }
    }

    /// The response as one line, newline included.
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_else(|e| {
            // Serialising these types cannot fail; answer something parseable anyway.
            format!(r#"{{"error":{{"kind":"bad_request","message":"cannot encode response: {e}"}}}}"#)
        });
        line.push('\n');
        line
    }
}

impl ControlRequest {
    /// The request as one line, newline included.
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }
}

/// Why a request line was refused; becomes a `bad_request` response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

impl From<BadRequest> for ControlResponse {
    fn from(e: BadRequest) -> Self {
        ControlResponse::error(ErrorKind::BadRequest, e.0)
    }
}

/// Parses one request line (without its newline).
pub fn parse_request(line: &[u8]) -> Result<ControlRequest, BadRequest> {
    if line.len() > MAX_REQUEST_LEN {
        return Err(BadRequest(format!(
            "request is {} bytes; at most {MAX_REQUEST_LEN} are accepted",
            line.len()
        )));
    }
    let text = std::str::from_utf8(line).map_err(|e| BadRequest(format!("request is not UTF-8: {e}")))?;
    serde_json::from_str(text.trim()).map_err(|e| BadRequest(format!("not a control request: {e}")))
}

/// Carries out one request on the home agent at `now`.
pub fn execute(ha: &mut HomeAgent, now: Time, req: ControlRequest) -> ControlResponse {
    match req {
        ControlRequest::BindingList => {
            let bindings = ha.bindings(now).into_iter().map(BindingInfo::from).collect();
            ControlResponse::ok(ControlOk::Bindings(bindings))
        }
        ControlRequest::BindingShow { home } => {
            let bindings: Vec<BindingInfo> = ha
                .bindings(now)
                .into_iter()
                .filter(|b| b.home_address == home)
                .map(BindingInfo::from)
                .collect();
            if bindings.is_empty() {
                not_found(home)
            } else {
                ControlResponse::ok(ControlOk::Binding { home, bindings })
            }
        }
        ControlRequest::BindingRevoke { home } => {
            let removed = ha.bindings(now).iter().filter(|b| b.home_address == home).count();
            if ha.revoke(now, home) {
                ControlResponse::ok(ControlOk::Revoked { home, removed })
            } else {
                not_found(home)
            }
        }
        ControlRequest::Stats => {
            let current = ha.bindings(now).len();
            ControlResponse::ok(ControlOk::Stats(StatsReport::new(ha.stats(), current)))
        }
    }
}

/// [`execute`], with the data plane's counters added to bindings and stats.
pub fn execute_with(
    ha: &mut HomeAgent,
    dataplane: Option<&dyn DataplaneView>,
    now: Time,
    req: ControlRequest,
) -> ControlResponse {
    let mut resp = execute(ha, now, req);
    let Some(dp) = dataplane else { return resp };
    let fill = |list: &mut Vec<BindingInfo>| {
        for b in list {
            b.traffic = Some(dp.traffic(b.home_address, b.care_of_address).unwrap_or_default());
        }
    };
    match &mut resp {
        ControlResponse::Ok(ControlOk::Bindings(list)) => fill(list),
        ControlResponse::Ok(ControlOk::Binding { bindings, .. }) => fill(bindings),
        ControlResponse::Ok(ControlOk::Stats(report)) => report.dataplane = Some(Box::new(dp.report())),
        _ => {}
    }
    resp
}

/// Parses and carries out one request line: what the daemon does per line.
pub fn handle_line(ha: &mut HomeAgent, now: Time, line: &[u8]) -> ControlResponse {
    match parse_request(line) {
        Ok(req) => execute(ha, now, req),
        Err(e) => e.into(),
    }
}

fn not_found(home: Ipv4Addr) -> ControlResponse {
    ControlResponse::error(ErrorKind::NotFound, format!("no binding for home address {home}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::MobileNodeEntry;
    use crate::HomeAgentConfig;
    use mip_core::auth::{append_auth_extension, AuthAlgorithm, ReplayMethod, SecurityAssociation};
    use mip_core::wire::{ext_type, RegistrationFlags, RegistrationRequestRepr};

    const HA: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const HOME: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
    const COA: Ipv4Addr = Ipv4Addr::new(198, 19, 1, 10);

    fn sa() -> SecurityAssociation {
        SecurityAssociation {
            spi: 256,
            algorithm: AuthAlgorithm::HmacMd5,
            key: b"0123456789abcdef".to_vec(),
            replay: ReplayMethod::Timestamp,
        }
    }

    fn now() -> Time {
        Time::from_secs(1_795_651_200)
    }

    /// A home agent holding one binding HOME -> COA with lifetime 600.
    fn ha_with_binding() -> HomeAgent {
        let mut c = HomeAgentConfig::new(HA, 24);
        c.mobile_nodes.push(MobileNodeEntry {
            home_address: Some(HOME),
            nai: Some("mn1@sidmip.example".into()),
            security_associations: vec![sa()],
        });
        let mut ha = HomeAgent::new(c, 1);
        let mut req = RegistrationRequestRepr {
            flags: RegistrationFlags::default().with(RegistrationFlags::T),
            lifetime: 600,
            home_address: HOME,
            home_agent: HA,
            care_of_address: COA,
            identification: now().to_ntp(),
        }
        .to_bytes();
        append_auth_extension(&mut req, ext_type::MOBILE_HOME_AUTH, &sa());
        ha.handle_datagram(now(), SocketAddrV4::new(COA, 40_000), &req);
        assert_eq!(ha.binding_count(), 1);
        while ha.poll_transmit().is_some() {}
        ha
    }

    #[test]
    fn list_shows_the_binding_with_tunnel_name_and_nai() {
        let mut ha = ha_with_binding();
        let resp = execute(&mut ha, now(), ControlRequest::BindingList);
        let ControlResponse::Ok(ControlOk::Bindings(bindings)) = resp else { panic!("unexpected {resp:?}") };
        assert_eq!(bindings.len(), 1);
        let b = &bindings[0];
        assert_eq!((b.home_address, b.care_of_address), (HOME, COA));
        assert_eq!(b.tunnel, "ip-in-ip");
        assert!(b.reverse_tunnel);
        assert_eq!(b.nai.as_deref(), Some("mn1@sidmip.example"));
        assert_eq!((b.lifetime_granted, b.lifetime_remaining), (600, 600));
    }

    #[test]
    fn show_and_revoke_of_an_unknown_home_are_not_found() {
        let mut ha = ha_with_binding();
        let other = Ipv4Addr::new(198, 18, 0, 99);
        for req in
            [ControlRequest::BindingShow { home: other }, ControlRequest::BindingRevoke { home: other }]
        {
            let resp = execute(&mut ha, now(), req);
            assert!(matches!(resp, ControlResponse::Error { kind: ErrorKind::NotFound, .. }), "{resp:?}");
        }
        assert_eq!(ha.binding_count(), 1);
    }

    #[test]
    fn revoke_removes_the_binding_and_counts_it() {
        let mut ha = ha_with_binding();
        let resp = execute(&mut ha, now(), ControlRequest::BindingRevoke { home: HOME });
        assert_eq!(resp, ControlResponse::ok(ControlOk::Revoked { home: HOME, removed: 1 }));
        assert_eq!(ha.binding_count(), 0);
        let resp = execute(&mut ha, now(), ControlRequest::Stats);
        let ControlResponse::Ok(ControlOk::Stats(stats)) = resp else { panic!("{resp:?}") };
        assert_eq!((stats.bindings, stats.bindings_revoked, stats.accepted), (0, 1, 1));
    }

    #[test]
    fn show_after_expiry_is_not_found() {
        let mut ha = ha_with_binding();
        let later = now() + std::time::Duration::from_secs(601);
        let resp = execute(&mut ha, later, ControlRequest::BindingShow { home: HOME });
        assert!(matches!(resp, ControlResponse::Error { kind: ErrorKind::NotFound, .. }));
    }

    #[test]
    fn requests_and_responses_round_trip_as_lines() {
        for req in [
            ControlRequest::BindingList,
            ControlRequest::BindingShow { home: HOME },
            ControlRequest::BindingRevoke { home: HOME },
            ControlRequest::Stats,
        ] {
            let line = req.to_line();
            assert!(line.ends_with('\n') && !line.trim_end().contains('\n'));
            assert_eq!(parse_request(line.trim_end().as_bytes()), Ok(req));
        }
        let mut ha = ha_with_binding();
        // A denial, so that the `denied` map has a numeric key to round-trip.
        let mut bad = RegistrationRequestRepr {
            flags: RegistrationFlags::default(),
            lifetime: 600,
            home_address: HOME,
            home_agent: HA,
            care_of_address: COA,
            identification: 1,
        }
        .to_bytes();
        append_auth_extension(&mut bad, ext_type::MOBILE_HOME_AUTH, &sa());
        ha.handle_datagram(now(), SocketAddrV4::new(COA, 40_000), &bad);
        assert_eq!(ha.stats().denied(133), 1);
        let resp = handle_line(&mut ha, now(), br#"{"command":"stats"}"#);
        let back: ControlResponse = serde_json::from_str(&resp.to_line()).unwrap();
        assert_eq!(back, resp);
    }

    #[test]
    fn bad_input_gets_bad_request_never_a_panic() {
        let mut ha = ha_with_binding();
        let long = vec![b'x'; MAX_REQUEST_LEN + 1];
        let cases: [&[u8]; 8] = [
            b"",
            b"{",
            b"\xff\xfe",
            br#"{"command":"reboot"}"#,
            br#"{"command":"binding_show"}"#,
            br#"{"command":"binding_show","home":"not an address"}"#,
            br#"{"command":"binding_show","home":"198.18.0.10","hom":1}"#,
            &long,
        ];
        for line in cases {
            let resp = handle_line(&mut ha, now(), line);
            assert!(
                matches!(resp, ControlResponse::Error { kind: ErrorKind::BadRequest, .. }),
                "{:?} -> {resp:?}",
                String::from_utf8_lossy(line)
            );
        }
        assert_eq!(ha.binding_count(), 1);
    }

    struct FakeDataplane;

    impl DataplaneView for FakeDataplane {
        fn traffic(&self, home: Ipv4Addr, _: Ipv4Addr) -> Option<TrafficCounters> {
            (home == HOME).then_some(TrafficCounters { packets_out: 3, bytes_out: 300, packets_in: 1, bytes_in: 90 })
        }
        fn report(&self) -> DataplaneReport {
            let mut r = DataplaneReport { intercepted: 3, ..DataplaneReport::default() };
            r.dropped.insert("unregistered_care_of".into(), 2);
            r
        }
    }

    #[test]
    fn data_plane_counters_ride_along_and_round_trip() {
        let mut ha = ha_with_binding();
        let resp = execute_with(&mut ha, Some(&FakeDataplane), now(), ControlRequest::BindingShow { home: HOME });
        let ControlResponse::Ok(ControlOk::Binding { bindings, .. }) = &resp else { panic!("{resp:?}") };
        assert_eq!(bindings[0].traffic.map(|t| (t.packets_out, t.bytes_in)), Some((3, 90)));
        let back: ControlResponse = serde_json::from_str(&resp.to_line()).unwrap();
        assert_eq!(back, resp);
        let resp = execute_with(&mut ha, Some(&FakeDataplane), now(), ControlRequest::Stats);
        let ControlResponse::Ok(ControlOk::Stats(s)) = &resp else { panic!("{resp:?}") };
        assert_eq!(s.dataplane.as_ref().map(|d| d.dropped("unregistered_care_of")), Some(2));
        let back: ControlResponse = serde_json::from_str(&resp.to_line()).unwrap();
        assert_eq!(back, resp);
        // Without a data plane, nothing of it is shown.
        let line = execute(&mut ha, now(), ControlRequest::BindingList).to_line();
        assert!(!line.contains("traffic"), "{line}");
    }

    #[test]
    fn stats_report_carries_every_counter_of_ha_stats() {
        let ha = ha_with_binding();
        let full = serde_json::to_value(ha.stats()).unwrap();
        let report = serde_json::to_value(StatsReport::new(ha.stats(), 1)).unwrap();
        for key in full.as_object().unwrap().keys() {
            assert!(report.get(key).is_some(), "StatsReport lacks HaStats::{key}");
        }
    }
}
