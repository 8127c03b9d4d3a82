//! `ha-admin`: inspect and manage a running mip-ha through its control socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use mip_core::wire::ReplyCode;
use mip_ha::config::DEFAULT_CONTROL_SOCKET;
use mip_ha::control::{BindingInfo, ControlOk, ControlRequest, ControlResponse, ErrorKind, StatsReport};
use mip_ha::SidStats;
use serde::Serialize;

const EXIT_USAGE: u8 = 2;
const EXIT_UNREACHABLE: u8 = 3;
const EXIT_REFUSED: u8 = 4;
/// How long the daemon may take to answer.
const TIMEOUT: Duration = Duration::from_secs(5);
/// A response larger than this is not from a sane daemon (65,536 bindings fit).
const MAX_RESPONSE: u64 = 64 << 20;

#[derive(Debug, Parser)]
#[command(
    name = "ha-admin",
    version,
    about = "Inspect and manage a running mip-ha home agent",
    after_help = "Exit status:\n  0  success\n  2  usage error\n  3  daemon unreachable \
(no socket, nobody listening, no or garbled answer)\n  4  not found or denied \
(no such binding, permission denied on the socket, request refused)"
)]
struct Cli {
    /// The daemon's control socket.
    #[arg(long, global = true, value_name = "PATH", default_value = DEFAULT_CONTROL_SOCKET)]
    socket: PathBuf,
    /// Print results (stdout) and errors (stderr) as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Mobility bindings.
    #[command(subcommand)]
    Binding(BindingCommand),
    /// The home agent's counters.
    Stats,
}

#[derive(Debug, Subcommand)]
enum BindingCommand {
    /// Every current binding.
    List,
    /// The bindings of one home address.
    Show { home: Ipv4Addr },
    /// Remove every binding of a home address.
    Revoke { home: Ipv4Addr },
}

/// The one value a command prints, as a table/text or as JSON.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Output {
    Bindings(Vec<BindingInfo>),
    Revoked { home: Ipv4Addr, removed: usize },
    Stats(StatsReport),
}

#[derive(Debug, thiserror::Error)]
enum AdminError {
    #[error("cannot reach mip-ha at {path}: {reason}")]
    Unreachable { path: PathBuf, reason: String },
    #[error("permission denied on {0}")]
    PermissionDenied(PathBuf),
    #[error("{message}")]
    Daemon { kind: ErrorKind, message: String },
}

impl AdminError {
    fn exit_code(&self) -> u8 {
        match self {
            AdminError::Unreachable { .. } => EXIT_UNREACHABLE,
            AdminError::PermissionDenied(_) | AdminError::Daemon { .. } => EXIT_REFUSED,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            AdminError::Unreachable { .. } => "unreachable",
            AdminError::PermissionDenied(_) => "permission_denied",
            AdminError::Daemon { kind: ErrorKind::NotFound, .. } => "not_found",
            AdminError::Daemon { kind: ErrorKind::BadRequest, .. } => "bad_request",
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(EXIT_USAGE) } else { ExitCode::SUCCESS };
        }
    };
    let request = match &cli.command {
        Command::Binding(BindingCommand::List) => ControlRequest::BindingList,
        Command::Binding(BindingCommand::Show { home }) => ControlRequest::BindingShow { home: *home },
        Command::Binding(BindingCommand::Revoke { home }) => ControlRequest::BindingRevoke { home: *home },
        Command::Stats => ControlRequest::Stats,
    };
    match ask(&cli.socket, &request).and_then(into_output) {
        Ok(output) => {
            let text = if cli.json {
                serde_json::to_string_pretty(&output).unwrap_or_default()
            } else {
                render(&output)
            };
            println!("{}", text.trim_end());
            ExitCode::SUCCESS
        }
        Err(e) => {
            if cli.json {
                let v = serde_json::json!({ "error": { "kind": e.kind(), "message": e.to_string() } });
                eprintln!("{v}");
            } else {
                eprintln!("ha-admin: {e}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}

/// One request, one response line.
fn ask(path: &Path, request: &ControlRequest) -> Result<ControlResponse, AdminError> {
    let unreachable = |reason: String| AdminError::Unreachable { path: path.to_path_buf(), reason };
    let mut stream = UnixStream::connect(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => AdminError::PermissionDenied(path.to_path_buf()),
        _ => unreachable(e.to_string()),
    })?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(|e| unreachable(e.to_string()))?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(|e| unreachable(e.to_string()))?;
    stream.write_all(request.to_line().as_bytes()).map_err(|e| unreachable(e.to_string()))?;
    let mut line = String::new();
    BufReader::new(stream.take(MAX_RESPONSE))
        .read_line(&mut line)
        .map_err(|e| unreachable(format!("no answer: {e}")))?;
    if line.is_empty() {
        return Err(unreachable("connection closed without an answer".into()));
    }
    serde_json::from_str(&line).map_err(|e| unreachable(format!("garbled answer: {e}")))
}

fn into_output(resp: ControlResponse) -> Result<Output, AdminError> {
    match resp {
        ControlResponse::Ok(result) => Ok(match result {
            ControlOk::Bindings(bindings) | ControlOk::Binding { bindings, .. } => Output::Bindings(bindings),
            ControlOk::Revoked { home, removed } => Output::Revoked { home, removed },
            ControlOk::Stats(stats) => Output::Stats(stats),
        }),
        ControlResponse::Error { kind, message } => Err(AdminError::Daemon { kind, message }),
    }
}

fn render(output: &Output) -> String {
    match output {
        Output::Bindings(bindings) => bindings_table(bindings),
        Output::Revoked { home, removed } => format!("revoked {removed} binding(s) of {home}"),
        Output::Stats(stats) => stats_text(stats),
    }
}

fn bindings_table(bindings: &[BindingInfo]) -> String {
    if bindings.is_empty() {
        return "no bindings".into();
    }
    // Traffic columns only when the daemon runs a data plane.
    let traffic = bindings.iter().any(|b| b.traffic.is_some());
    let mut header: Vec<String> =
        ["HOME", "CARE-OF", "LIFETIME", "TUNNEL", "FLAGS"].iter().map(|h| h.to_string()).collect();
    if traffic {
        header.extend(["PKTS-OUT", "BYTES-OUT", "PKTS-IN", "BYTES-IN"].map(String::from));
    }
    header.push("NAI".into());
    let rows: Vec<Vec<String>> = bindings
        .iter()
        .map(|b| {
            let tunnel = if b.reverse_tunnel { format!("{}+reverse", b.tunnel) } else { b.tunnel.clone() };
            let mut row = vec![
                b.home_address.to_string(),
                b.care_of_address.to_string(),
                format!("{}/{}s", b.lifetime_remaining, b.lifetime_granted),
                tunnel,
                b.flags.clone(),
            ];
            if traffic {
                let t = b.traffic.unwrap_or_default();
                row.extend([t.packets_out, t.bytes_out, t.packets_in, t.bytes_in].map(|n| n.to_string()));
            }
            row.push(b.nai.clone().unwrap_or_else(|| "-".into()));
            row
        })
        .collect();
    let mut out = aligned(&header, &rows);
    let transfers = transfers_table(bindings, traffic);
    if !transfers.is_empty() {
        out.push_str("\nSID transfers:\n");
        out.push_str(&transfers);
    }
    out
}

/// The transfer bindings (issue 4): Transferring Node, Target, lifetime left, permission
/// F, reverse-path mode and counters; empty when there is none.
fn transfers_table(bindings: &[BindingInfo], traffic: bool) -> String {
    let mut header: Vec<String> =
        ["TRANSFERRING-NODE", "TARGET", "LIFETIME", "F", "REVERSE-PATH", "SESSION-SPI", "RENEWALS", "HOPS", "AGE"]
            .map(String::from)
            .to_vec();
    if traffic {
        header.extend(["PKTS-OUT", "PKTS-IN"].map(String::from));
    }
    header.push("WAKE-UP-TO".into());
    let rows: Vec<Vec<String>> = bindings
        .iter()
        .filter_map(|b| b.transfer.as_ref().map(|t| (b, t)))
        .map(|(b, t)| {
            let reverse = serde_json::to_value(t.reverse_path)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_else(|| "?".into());
            let mut row = vec![
                t.transferring_node.to_string(),
                t.target.to_string(),
                format!("{}/{}s", b.lifetime_remaining, b.lifetime_granted),
                if t.further_transfer { "yes".into() } else { "no".into() },
                reverse,
                t.session_spi.to_string(),
                t.renewals.to_string(),
                t.hops.to_string(),
                format!("{}s", t.age),
            ];
            if traffic {
                let c = b.traffic.unwrap_or_default();
                row.extend([c.packets_out, c.packets_in].map(|n| n.to_string()));
            }
            row.push(match (t.interim_address, &t.link_layer_address) {
                (Some(a), _) => a.to_string(),
                (None, Some(mac)) => mac.clone(),
                (None, None) => "-".into(),
            });
            row
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    aligned(&header, &rows)
}

/// Left-aligned columns two spaces apart, one line per row, header first.
fn aligned(header: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(String::len).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn stats_text(s: &StatsReport) -> String {
    let counters = [
        ("bindings now", s.bindings as u64),
        ("datagrams", s.datagrams),
        ("requests", s.requests),
        ("accepted", s.accepted),
        ("deregistrations", s.deregistrations),
        ("duplicates", s.duplicates),
        ("authentication failures", s.authentication_failures),
        ("replies sent", s.replies_sent),
        ("bindings added", s.bindings_added),
        ("bindings removed", s.bindings_removed),
        ("bindings expired", s.bindings_expired),
        ("bindings revoked", s.bindings_revoked),
        ("denied", s.denied.values().sum()),
        ("discarded", s.total_discarded()),
    ];
    let mut out = String::new();
    for (name, n) in counters {
        out.push_str(&format!("{name:<24} {n:>10}\n"));
    }
    if *s.sid != SidStats::default() {
        out.push_str("\nSID transfers:\n");
        let x = &s.sid;
        let counters = [
            ("transfers started", x.transfers_started),
            ("renewals", x.renewals),
            ("further transfers", x.further_transfers),
            ("stop-transfer demands", x.stop_transfer_demands),
            ("transfers ended", x.transfers_ended),
            ("session auth. failures", x.target_authentication_failures),
            ("session keys unusable", x.key_failures),
            ("SID requests refused", x.refused),
            ("wake-ups sent", x.wake_ups_sent),
            ("wake-ups acknowledged", x.wake_ups_acknowledged),
            ("wake-ups abandoned", x.wake_ups_abandoned),
            ("bad acknowledgements", x.bad_acknowledgements),
        ];
        for (name, n) in counters {
            out.push_str(&format!("  {name:<26} {n:>10}\n"));
        }
    }
    if !s.denied.is_empty() {
        out.push_str("\ndenied by code:\n");
        for (code, n) in &s.denied {
            let desc = ReplyCode::from(*code).description();
            out.push_str(&format!("  {code:>3}  {n:>10}  {desc}\n"));
        }
    }
    if !s.discarded.is_empty() {
        out.push_str("\ndiscarded by reason:\n");
        for (reason, n) in &s.discarded {
            out.push_str(&format!("  {:<28} {n:>10}\n", reason.replace('_', " ")));
        }
    }
    if let Some(d) = &s.dataplane {
        out.push_str("\ndata plane:\n");
        let counters = [
            ("frames seen", d.frames),
            ("ARP requests", d.arp_requests),
            ("proxy ARP replies", d.proxy_arp_replies),
            ("gratuitous ARPs", d.gratuitous_arps),
            ("MACs learnt", d.macs_learned),
            ("intercepted", d.intercepted),
            ("relayed home (hand-back)", d.relayed_home),
            ("tunnelled packets", d.tunnelled_packets),
            ("tunnelled bytes", d.tunnelled_bytes),
            ("fragmented", d.fragmented),
            ("ICMP frag. needed sent", d.icmp_fragmentation_needed),
            ("ICMP time exceeded sent", d.icmp_time_exceeded),
            ("tunnel MTU updates", d.tunnel_mtu_updates),
            ("reverse-tunnel packets", d.reverse_packets),
            ("reverse-tunnel bytes", d.reverse_bytes),
            ("  of which after the end", d.reverse_after_end),
            ("TCP super-packets cut", d.segmented),
            ("checksums completed", d.checksums_completed),
            ("agent advertisements", d.advertisements_sent),
            ("  of which solicited", d.solicited_advertisements),
            ("solicitations received", d.solicitations_received),
            ("solicitations answered", d.solicitations_answered),
            ("solicitations rate-limited", d.solicitations_rate_limited),
            ("solicitations malformed", d.solicitations_malformed),
            ("SID wake-up frames sent", d.link_frames_sent),
            ("SID wake-up frames failed", d.link_frames_failed),
            ("dropped", d.total_dropped()),
        ];
        for (name, n) in counters {
            out.push_str(&format!("  {name:<26} {n:>10}\n"));
        }
        if !d.dropped.is_empty() {
            out.push_str("\ndata plane drops by reason:\n");
            for (reason, n) in &d.dropped {
                out.push_str(&format!("  {:<28} {n:>10}\n", reason.replace('_', " ")));
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use mip_ha::dataplane::{DataplaneReport, TrafficCounters};

    fn binding(home: [u8; 4], nai: Option<&str>) -> BindingInfo {
        BindingInfo {
            home_address: home.into(),
            care_of_address: [198, 19, 1, 10].into(),
            nai: nai.map(String::from),
            lifetime_granted: 600,
            lifetime_remaining: 42,
            identification: "0x0".into(),
            flags: "-----T".into(),
            tunnel: "gre".into(),
            reverse_tunnel: true,
            request_source: "198.19.1.10:434".parse().unwrap(),
            traffic: None,
            transfer: None,
        }
    }

    #[test]
    fn transfer_bindings_get_their_own_table() {
        use mip_ha::sid::{ReversePath, TransferSnapshot};
        let mut b = binding([198, 18, 0, 10], None);
        b.transfer = Some(TransferSnapshot {
            transferring_node: [198, 18, 0, 10].into(),
            target: [198, 19, 1, 10].into(),
            further_transfer: true,
            reverse_path: ReversePath::ReverseTunnel,
            session_spi: 4096,
            age: 75,
            renewals: 3,
            hops: 1,
            previous_targets: vec![[198, 19, 2, 10].into()],
            link_layer_address: Some("02:00:c6:12:00:0a".into()),
            interim_address: None,
        });
        let text = render(&Output::Bindings(vec![b, binding([198, 18, 0, 11], None)]));
        let lines: Vec<&str> = text.lines().collect();
        let at = lines.iter().position(|l| *l == "SID transfers:").unwrap();
        assert!(lines[at + 1].starts_with("TRANSFERRING-NODE  TARGET"), "{text}");
        let row = lines[at + 2];
        assert!(row.starts_with("198.18.0.10        198.19.1.10  42/600s"), "{text}");
        assert!(row.contains(" yes ") && row.contains(" reverse-tunnel ") && row.contains(" 4096 "), "{text}");
        assert!(row.ends_with("02:00:c6:12:00:0a") && lines.len() == at + 3, "{text}");
        let no_transfer = render(&Output::Bindings(vec![binding([198, 18, 0, 11], None)]));
        assert!(!no_transfer.contains("SID"));
    }

    #[test]
    fn traffic_columns_and_data_plane_stats_when_present() {
        let mut b = binding([198, 18, 0, 10], None);
        b.traffic = Some(TrafficCounters { packets_out: 12, bytes_out: 3456, packets_in: 7, bytes_in: 890 });
        let text = render(&Output::Bindings(vec![b]));
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("PKTS-OUT") && lines[0].contains("BYTES-IN"), "{text}");
        assert!(lines[1].contains(" 12 ") && lines[1].contains(" 3456 ") && lines[1].contains(" 890 "), "{text}");
        let mut d = DataplaneReport {
            intercepted: 5,
            advertisements_sent: 31,
            solicitations_rate_limited: 4,
            ..DataplaneReport::default()
        };
        d.dropped.insert("unregistered_care_of".into(), 2);
        let text = render(&Output::Stats(StatsReport { dataplane: Some(Box::new(d)), ..StatsReport::default() }));
        assert!(text.contains("data plane:") && text.contains("unregistered care of"), "{text}");
        let line = |name: &str| text.lines().find(|l| l.trim_start().starts_with(name)).unwrap_or_default();
        assert!(line("agent advertisements").ends_with(" 31"), "{text}");
        assert!(line("solicitations rate-limited").ends_with(" 4"), "{text}");
    }

    #[test]
    fn bindings_render_as_an_aligned_table() {
        let text = render(&Output::Bindings(vec![
            binding([198, 18, 0, 10], Some("mn1@sidmip.example")),
            binding([198, 18, 0, 111], None),
        ]));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("HOME          CARE-OF"), "{text}");
        assert!(
            lines[1].contains("42/600s")
                && lines[1].contains("gre+reverse")
                && lines[1].ends_with("mn1@sidmip.example")
        );
        assert!(lines[2].ends_with(" -"));
        let col = lines[0].find("CARE-OF").unwrap();
        assert_eq!(lines[2].find("198.19.1.10"), Some(col));
        assert_eq!(render(&Output::Bindings(Vec::new())), "no bindings");
    }

    #[test]
    fn stats_show_denials_with_descriptions_and_json_is_flat() {
        let mut stats = StatsReport { requests: 7, ..StatsReport::default() };
        stats.denied.insert(131, 2);
        stats.discarded.insert("unknown_extension".into(), 3);
        let text = render(&Output::Stats(stats.clone()));
        assert!(text.contains("131") && text.contains("mobile node failed authentication"), "{text}");
        assert!(text.contains("unknown extension"), "{text}");
        let json = serde_json::to_value(Output::Stats(stats)).unwrap();
        assert_eq!(json["requests"], 7);
        assert_eq!(json["denied"]["131"], 2);
    }

    #[test]
    fn every_command_takes_json_and_bad_usage_is_an_error() {
        for args in [
            &["binding", "list", "--json"][..],
            &["--json", "stats"],
            &["binding", "show", "198.18.0.1", "--json"],
        ] {
            let cli = Cli::try_parse_from(std::iter::once("ha-admin").chain(args.iter().copied())).unwrap();
            assert!(cli.json);
        }
        assert!(Cli::try_parse_from(["ha-admin", "binding"]).is_err());
        assert!(Cli::try_parse_from(["ha-admin", "binding", "revoke", "nope"]).is_err());
    }
}
