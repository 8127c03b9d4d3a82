//! The mip-fa control socket: one JSON object per line each way.
//!
//! Requests: `{"command":"stats"}`, `{"command":"visitors"}`. Answers:
//! `{"ok":{"stats":{...}}}`, `{"ok":{"visitors":[...]}}` or
//! `{"error":{"message":"..."}}`. [`execute`] is pure; the daemon moves lines.

use mip_core::time::Time;
use serde::{Deserialize, Serialize};

use crate::forwarder::{Counter, DataPlaneStats, Forwarder};
use crate::shell::ShellStats;
use crate::stats::FaStats;
use crate::visitors::VisitorSnapshot;
use crate::ForeignAgent;

/// Longest request line accepted, newline excluded.
pub const MAX_REQUEST_LEN: usize = 4096;

/// serde cannot refuse extra fields next to the tag of a variant without fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum ControlRequest {
    Stats,
    Visitors,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlResponse {
    Ok(ControlOk),
    Error { message: String },
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlOk {
    Stats(Box<StatsReport>),
    Visitors(Vec<VisitorReport>),
}

#[derive(Debug, Clone, Serialize)]
pub struct StatsReport {
    pub visitors: usize,
    pub pending: usize,
    pub control: FaStats,
    /// Absent when the data plane is off.
    pub data_plane: Option<DataPlaneStats>,
    /// The daemon's own counters (socket errors, frames); absent in tests.
    pub io: Option<ShellStats>,
}

/// A visitor with its data-plane counters.
#[derive(Debug, Clone, Serialize)]
pub struct VisitorReport {
    #[serde(flatten)]
    pub visitor: VisitorSnapshot,
    pub to_visitor: Option<Counter>,
    pub from_visitor: Option<Counter>,
}

impl ControlResponse {
    /// The response as one line, newline included.
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_else(|e| {
            format!(r#"{{"error":{{"message":"cannot encode response: {e}"}}}}"#)
        });
        line.push('\n');
        line
    }
}

/// Parses one request line (without its newline).
pub fn parse_request(line: &[u8]) -> Result<ControlRequest, String> {
    if line.len() > MAX_REQUEST_LEN {
        return Err(format!(
            "request is {} bytes; at most {MAX_REQUEST_LEN} are accepted",
            line.len()
        ));
    }
    let text = std::str::from_utf8(line).map_err(|e| format!("request is not UTF-8: {e}"))?;
    serde_json::from_str(text.trim()).map_err(|e| format!("not a control request: {e}"))
}

/// What a request is answered from.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub fa: &'a ForeignAgent,
    pub forwarder: Option<&'a Forwarder>,
    pub io: Option<&'a ShellStats>,
}

pub fn execute(view: View<'_>, now: Time, req: ControlRequest) -> ControlResponse {
    let View { fa, forwarder, io } = view;
    match req {
        ControlRequest::Stats => ControlResponse::Ok(ControlOk::Stats(Box::new(StatsReport {
            visitors: fa.visitors(now).len(),
            pending: fa.pending_count(),
            control: fa.stats().clone(),
            data_plane: forwarder.map(|f| f.stats().clone()),
            io: io.cloned(),
        }))),
        ControlRequest::Visitors => {
            let visitors = fa
                .visitors(now)
                .into_iter()
                .map(|v| {
                    let route = forwarder.and_then(|f| f.route(v.home_address));
                    VisitorReport {
                        to_visitor: route.map(|r| r.to_visitor),
                        from_visitor: route.map(|r| r.from_visitor),
                        visitor: v,
                    }
                })
                .collect();
            ControlResponse::Ok(ControlOk::Visitors(visitors))
        }
    }
}

/// Parses and carries out one request line.
pub fn handle_line(view: View<'_>, now: Time, line: &[u8]) -> ControlResponse {
    match parse_request(line) {
        Ok(req) => execute(view, now, req),
        Err(message) => ControlResponse::Error { message },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{ForeignAgentConfig, LinkDatagram};
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn fa() -> ForeignAgent {
        ForeignAgent::new(
            ForeignAgentConfig::new(Ipv4Addr::new(198, 18, 1, 1), 24),
            Time::from_secs(1_000),
            1,
        )
    }

    fn line(fa: &ForeignAgent, forwarder: Option<&Forwarder>, text: &str) -> serde_json::Value {
        let view = View {
            fa,
            forwarder,
            io: None,
        };
        let out = handle_line(view, Time::from_secs(1_000), text.as_bytes()).to_line();
        assert!(out.ends_with('\n') && !out.trim_end().contains('\n'));
        serde_json::from_str(&out).expect("JSON")
    }

    #[test]
    fn stats_and_visitors_answer_one_json_line() {
        let mut fa = fa();
        let info = LinkDatagram {
            source: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 10), 40_000),
            destination: Ipv4Addr::new(198, 18, 1, 1),
            ttl: Some(255),
            link_source: None,
        };
        fa.handle_request(Time::from_secs(1_000), &info, &[1, 2, 3]);
        let fwd = Forwarder::new(Ipv4Addr::new(198, 18, 1, 1), vec![], [2; 6], 1500);
        let v = line(&fa, Some(&fwd), r#"{"command":"stats"}"#);
        assert_eq!(
            v["ok"]["stats"]["control"]["discarded"]["truncated_request"], 1,
            "{v}"
        );
        assert_eq!(
            v["ok"]["stats"]["data_plane"]["delivered"]["packets"], 0,
            "{v}"
        );
        let v = line(&fa, None, r#" {"command":"visitors"} "#);
        assert_eq!(v["ok"]["visitors"], serde_json::json!([]));
        assert!(line(&fa, None, r#"{"command":"stats"}"#)["ok"]["stats"]["data_plane"].is_null());
    }

    #[test]
    fn bad_lines_get_an_error_never_a_panic() {
        let fa = fa();
        let long = "x".repeat(MAX_REQUEST_LEN + 1);
        for bad in [
            "",
            "{",
            "\u{fffd}",
            r#"{"command":"reboot"}"#,
            r#"{"command":1}"#,
            &long,
        ] {
            let v = line(&fa, None, bad);
            assert!(v["error"]["message"].is_string(), "{bad:?} -> {v}");
        }
        let view = View {
            fa: &fa,
            forwarder: None,
            io: None,
        };
        let v = serde_json::to_value(handle_line(view, Time::from_secs(0), b"\xff\xfe")).unwrap();
        assert!(v["error"]["message"].as_str().unwrap().contains("UTF-8"));
    }
}
