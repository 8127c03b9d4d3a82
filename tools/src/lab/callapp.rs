//! The call application of the SID lab (`sid-traffic udp-echo` and `udp-call`).
//!
//! - [`echo`]: the application on each device. It binds the session address with
//!   `IP_FREEBIND`, so a Target's copy can bind before the address is on its TUN device,
//!   answers every probe at once to its source with the same datagram (its own tag in the
//!   probe's `flow` field, so the correspondent knows which device answered), and logs every
//!   arrival.
//! - [`call`]: the correspondent's side. One socket sends sequence-numbered probes at a
//!   steady rate to the session address and receives the answers; every answer is logged.
//!
//! Receive times are the kernel's (`SO_TIMESTAMPNS`, wall clock): when the datagram reached
//! the socket, not when a busy machine got round to running the receiver. The per-packet
//! path allocates nothing: fixed buffers, logs reserved up front (arrivals beyond the
//! reservation are counted, not stored).

use std::io::{ErrorKind, IoSliceMut, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrIn};
use nix::sys::time::TimeSpec;
use serde::{Deserialize, Serialize};
use socket2::{Domain, Socket, Type};

use super::traffic::{now_us, send_paced, Arrival, Pacing, Probe};

/// How long a blocked receive waits before looking at the stop flag.
const POLL: Duration = Duration::from_millis(50);
/// Largest datagram handled.
const BUF: usize = 2048;

/// One answer as the correspondent received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub seq: u64,
    /// When the correspondent sent the probe.
    pub sent_us: u64,
    /// When the answer reached the correspondent's socket.
    pub recv_us: u64,
    /// The answering device's tag.
    pub tag: u32,
}

/// What `udp-echo` prints when it stops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EchoReport {
    pub tag: u32,
    /// Probes received (all logged unless `log_overflow`).
    pub received: u64,
    pub answered: u64,
    pub send_errors: u64,
    /// Datagrams that were not probes (neither answered nor logged).
    pub other: u64,
    pub log_overflow: u64,
}

/// What `udp-call` prints when it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallAppReport {
    pub sent: u64,
    pub send_errors: u64,
    pub start_us: u64,
    pub interval_ns: u64,
    /// Worst lateness of a send against its schedule (pacing quality of this machine).
    pub max_late_ms: f64,
    pub replies: u64,
    /// Distinct sequence numbers answered.
    pub answered: u64,
    pub duplicates: u64,
    /// Longest time between two answers.
    pub longest_gap_ms: f64,
    pub rtt_avg_ms: f64,
    pub rtt_max_ms: f64,
    /// Answers per device tag.
    pub by_tag: std::collections::BTreeMap<u32, u64>,
    pub log_overflow: u64,
}

/// A UDP socket bound to `bind` that reports kernel receive times; with `freebind` it may
/// bind an address the host does not have (yet).
pub fn udp_socket(bind: SocketAddrV4, freebind: bool) -> std::io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    if freebind {
        s.set_freebind_v4(true)?;
    }
    // Room for a burst released after a handover.
    let _ = s.set_recv_buffer_size(4 << 20);
    s.bind(&SocketAddr::V4(bind).into())?;
    let s: UdpSocket = s.into();
    setsockopt(&s, sockopt::ReceiveTimestampns, &true)?;
    s.set_read_timeout(Some(POLL))?;
    Ok(s)
}

/// One datagram received: its length, source and kernel receive time (us since the epoch).
struct Received {
    len: usize,
    from: SocketAddrV4,
    recv_us: u64,
}

/// Receives into `buf`; `Ok(None)` on the poll timeout. `cmsg` is reused for every call.
fn receive(sock: &UdpSocket, buf: &mut [u8], cmsg: &mut [u8]) -> std::io::Result<Option<Received>> {
    let mut iov = [IoSliceMut::new(buf)];
    let msg = match recvmsg::<SockaddrIn>(sock.as_raw_fd(), &mut iov, Some(cmsg), MsgFlags::empty()) {
        Ok(m) => m,
        Err(e) => {
            let e = std::io::Error::from(e);
            return match e.kind() {
                ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
    };
    let mut recv_us = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::ScmTimestampns(ts) = c {
                recv_us = Some(timespec_us(&ts));
            }
        }
    }
    let from = msg.address.map_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0), SocketAddrV4::from);
    Ok(Some(Received { len: msg.bytes, from, recv_us: recv_us.unwrap_or_else(now_us) }))
}

fn timespec_us(ts: &TimeSpec) -> u64 {
    let us = i128::from(ts.tv_sec()) * 1_000_000 + i128::from(ts.tv_nsec()) / 1000;
    u64::try_from(us).unwrap_or(0)
}

fn cmsg_buffer() -> Vec<u8> {
    nix::cmsg_space!(TimeSpec)
}

/// Writes `text` lines to `path`.
fn write_log(path: &Path, text: &str) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    f.write_all(text.as_bytes())?;
    f.flush()
}

/// The echo: answers every probe on `sock` until `stop`, logging arrivals (at most
/// `capacity`) to `log` as `seq,sent_us,recv_us` lines (the `udp-recv --log` format).
pub fn echo(sock: &UdpSocket, tag: u32, capacity: usize, log: Option<&Path>, stop: &AtomicBool) -> std::io::Result<EchoReport> {
    let mut arrivals: Vec<Arrival> = Vec::with_capacity(capacity);
    let mut r = EchoReport { tag, received: 0, answered: 0, send_errors: 0, other: 0, log_overflow: 0 };
    let mut buf = [0u8; BUF];
    let mut cmsg = cmsg_buffer();
    let tag_bytes = tag.to_be_bytes();
    while !stop.load(Ordering::Relaxed) {
        let Some(m) = receive(sock, &mut buf, &mut cmsg)? else { continue };
        let Some(datagram) = buf.get_mut(..m.len) else { continue };
        let Some(p) = Probe::parse(datagram) else {
            r.other += 1;
            continue;
        };
        r.received += 1;
        // The answer: the same datagram, our tag in the flow field (bytes 4..8).
        if let Some(flow) = datagram.get_mut(4..8) {
            flow.copy_from_slice(&tag_bytes);
        }
        match sock.send_to(datagram, m.from) {
            Ok(_) => r.answered += 1,
            Err(_) => r.send_errors += 1,
        }
        if arrivals.len() < arrivals.capacity() {
            arrivals.push(Arrival { seq: p.seq, sent_us: p.sent_us, recv_us: m.recv_us });
        } else {
            r.log_overflow += 1;
        }
    }
    if let Some(path) = log {
        let mut text = String::with_capacity(arrivals.len() * 40);
        for a in &arrivals {
            text.push_str(&format!("{},{},{}\n", a.seq, a.sent_us, a.recv_us));
        }
        write_log(path, &text)?;
    }
    Ok(r)
}

/// What the correspondent's call sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallPlan {
    /// The session address and port.
    pub to: SocketAddrV4,
    /// The probes (the echo puts its own tag into their `flow` field).
    pub pacing: Pacing,
    /// How long answers are awaited after the last send.
    pub linger: Duration,
}

/// The correspondent's call: the probes of `plan` from `sock`, whose answers are received
/// on a second thread until `plan.linger` after the last send (or after `stop`). Answers go
/// to `log` as `seq,sent_us,recv_us,tag` lines.
pub fn call(sock: &UdpSocket, plan: CallPlan, log: Option<&Path>, stop: &AtomicBool) -> std::io::Result<CallAppReport> {
    let CallPlan { to, pacing, linger } = plan;
    let (interval_ns, total) = (pacing.interval_ns, pacing.total);
    let rx = sock.try_clone()?;
    let done = AtomicBool::new(false);
    let capacity = usize::try_from(total.saturating_add(total / 4).saturating_add(1024)).unwrap_or(1 << 24).min(1 << 24);
    let (paced, received) = std::thread::scope(|s| {
        let receiver = s.spawn(|| -> std::io::Result<(Vec<Reply>, u64)> {
            let mut replies: Vec<Reply> = Vec::with_capacity(capacity);
            let mut overflow = 0u64;
            let mut buf = [0u8; BUF];
            let mut cmsg = cmsg_buffer();
            let mut done_at: Option<Instant> = None;
            loop {
                if done_at.is_none() && (done.load(Ordering::Acquire) || stop.load(Ordering::Relaxed)) {
                    done_at = Some(Instant::now());
                }
                if done_at.is_some_and(|d| d.elapsed() >= linger) {
                    break;
                }
                let Some(m) = receive(&rx, &mut buf, &mut cmsg)? else { continue };
                let Some(p) = buf.get(..m.len).and_then(Probe::parse) else { continue };
                if replies.len() < replies.capacity() {
                    replies.push(Reply { seq: p.seq, sent_us: p.sent_us, recv_us: m.recv_us, tag: p.flow });
                } else {
                    overflow += 1;
                }
            }
            Ok((replies, overflow))
        });
        let paced = send_paced(sock, to, &pacing, stop);
        done.store(true, Ordering::Release);
        let received = receiver.join().unwrap_or_else(|_| Err(std::io::Error::other("receiver thread panicked")));
        (paced, received)
    });
    let (replies, log_overflow) = received?;
    if let Some(path) = log {
        let mut text = String::with_capacity(replies.len() * 48);
        for r in &replies {
            text.push_str(&format!("{},{},{},{}\n", r.seq, r.sent_us, r.recv_us, r.tag));
        }
        write_log(path, &text)?;
    }
    Ok(summarize(&replies, paced.sent, paced.errors, paced.start_us, interval_ns, paced.max_late, log_overflow))
}

fn summarize(
    replies: &[Reply],
    sent: u64,
    send_errors: u64,
    start_us: u64,
    interval_ns: u64,
    max_late: Duration,
    log_overflow: u64,
) -> CallAppReport {
    let mut seqs: Vec<u64> = replies.iter().map(|r| r.seq).collect();
    seqs.sort_unstable();
    seqs.dedup();
    let gap = replies.windows(2).map(|w| w[1].recv_us.saturating_sub(w[0].recv_us)).max().unwrap_or(0);
    let rtts = replies.iter().map(|r| r.recv_us.saturating_sub(r.sent_us));
    let rtt_max = rtts.clone().max().unwrap_or(0);
    let rtt_sum: u128 = rtts.map(u128::from).sum();
    let mut by_tag = std::collections::BTreeMap::new();
    for r in replies {
        *by_tag.entry(r.tag).or_insert(0u64) += 1;
    }
    CallAppReport {
        sent,
        send_errors,
        start_us,
        interval_ns,
        max_late_ms: max_late.as_secs_f64() * 1000.0,
        replies: replies.len() as u64,
        answered: seqs.len() as u64,
        duplicates: (replies.len() - seqs.len()) as u64,
        longest_gap_ms: gap as f64 / 1000.0,
        rtt_avg_ms: if replies.is_empty() { 0.0 } else { rtt_sum as f64 / replies.len() as f64 / 1000.0 },
        rtt_max_ms: rtt_max as f64 / 1000.0,
        by_tag,
        log_overflow,
    }
}

/// Reads a `udp-call --log` file (`seq,sent_us,recv_us,tag` lines).
pub fn read_replies(path: &Path) -> std::io::Result<Vec<Reply>> {
    let text = std::fs::read_to_string(path)?;
    let mut out = Vec::new();
    for line in text.lines() {
        let mut it = line.split(',').map(|f| f.trim().parse::<u64>());
        if let (Some(Ok(seq)), Some(Ok(sent_us)), Some(Ok(recv_us)), Some(Ok(tag))) = (it.next(), it.next(), it.next(), it.next()) {
            out.push(Reply { seq, sent_us, recv_us, tag: u32::try_from(tag).unwrap_or(u32::MAX) });
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Echo and call over loopback: every probe answered, by the echo's tag, logged on
    /// both sides with kernel receive times.
    #[test]
    fn echo_answers_every_probe_of_a_call() {
        let dir = tempfile::tempdir().unwrap();
        let echo_sock = udp_socket(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0), true).unwrap();
        let SocketAddr::V4(echo_addr) = echo_sock.local_addr().unwrap() else { panic!("v4") };
        let call_sock = udp_socket(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0), false).unwrap();
        let stop_echo = AtomicBool::new(false);
        let stop_call = AtomicBool::new(false);
        let (echo_log, call_log) = (dir.path().join("echo.csv"), dir.path().join("call.csv"));
        let (er, cr) = std::thread::scope(|s| {
            let e = s.spawn(|| echo(&echo_sock, 7, 1000, Some(&echo_log), &stop_echo).unwrap());
            let pacing = Pacing { flow: 0, interval_ns: 1_000_000, total: 200, size: 64 };
            let plan = CallPlan { to: echo_addr, pacing, linger: Duration::from_millis(200) };
            let c = call(&call_sock, plan, Some(&call_log), &stop_call).unwrap();
            stop_echo.store(true, Ordering::Relaxed);
            (e.join().unwrap(), c)
        });
        assert_eq!((er.received, er.answered, er.tag), (200, 200, 7));
        assert_eq!((cr.sent, cr.replies, cr.answered, cr.duplicates), (200, 200, 200, 0));
        assert_eq!(cr.by_tag.get(&7), Some(&200));
        let replies = read_replies(&call_log).unwrap();
        assert_eq!(replies.len(), 200);
        assert!(replies.iter().all(|r| r.tag == 7 && r.recv_us >= r.sent_us));
        let arrivals = super::super::scenario::read_arrivals(&echo_log).unwrap();
        assert_eq!(arrivals.iter().map(|a| a.seq).collect::<Vec<_>>(), (0..200).collect::<Vec<_>>());
    }

    /// IP_FREEBIND: the echo binds an address no interface has.
    #[test]
    fn echo_binds_an_address_the_host_does_not_have() {
        let a = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 10), 0);
        assert!(udp_socket(a, true).is_ok());
    }

    #[test]
    fn summary_counts_duplicates_gaps_and_tags() {
        let r = |seq, recv_us, tag| Reply { seq, sent_us: seq * 1000, recv_us, tag };
        let replies = [r(0, 500, 0), r(1, 1500, 0), r(1, 1600, 0), r(3, 5500, 1)];
        let s = summarize(&replies, 4, 0, 0, 1_000_000, Duration::ZERO, 0);
        assert_eq!((s.replies, s.answered, s.duplicates), (4, 3, 1));
        assert!((s.longest_gap_ms - 3.9).abs() < 1e-9);
        assert_eq!(s.by_tag.get(&0), Some(&3));
        assert_eq!(s.by_tag.get(&1), Some(&1));
    }
}
