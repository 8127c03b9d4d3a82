//! What `sid-traffic` sends and how its results are judged: the UDP probe format, the
//! per-window (per-move) analysis of UDP arrivals, and the TCP byte pattern with its checker.
//!
//! All timestamps are microseconds of the wall clock (`SystemTime`): every namespace shares the
//! machine's clock, so sender, receiver and the scenario (which records move times) agree.

use std::net::{SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// First bytes of every UDP probe.
pub const PROBE_MAGIC: [u8; 4] = *b"SIDT";
/// Bytes of the probe header; datagrams may be longer (padding).
pub const PROBE_LEN: usize = 40;

/// One UDP probe:
///
/// ```text
/// 0      4      8              16             24             32             40
/// | SIDT | flow | sequence     | sent (us)    | start (us)   | interval (ns)|
/// ```
///
/// `start + sequence * interval` is when the sender scheduled the probe, so the receiver knows
/// when a probe it never got was due: that is how lost probes are put into windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub flow: u32,
    pub seq: u64,
    pub sent_us: u64,
    pub start_us: u64,
    pub interval_ns: u64,
}

impl Probe {
    /// Writes the header into `buf`; `None` when `buf` is shorter than [`PROBE_LEN`].
    pub fn emit(&self, buf: &mut [u8]) -> Option<usize> {
        let b = buf.get_mut(..PROBE_LEN)?;
        b[..4].copy_from_slice(&PROBE_MAGIC);
        b[4..8].copy_from_slice(&self.flow.to_be_bytes());
        b[8..16].copy_from_slice(&self.seq.to_be_bytes());
        b[16..24].copy_from_slice(&self.sent_us.to_be_bytes());
        b[24..32].copy_from_slice(&self.start_us.to_be_bytes());
        b[32..40].copy_from_slice(&self.interval_ns.to_be_bytes());
        Some(PROBE_LEN)
    }

    /// Reads a probe; `None` for anything else.
    pub fn parse(buf: &[u8]) -> Option<Probe> {
        let b = buf.get(..PROBE_LEN)?;
        if b.get(..4)? != PROBE_MAGIC {
            return None;
        }
        let u64_at = |o: usize| -> Option<u64> {
            Some(u64::from_be_bytes(b.get(o..o + 8)?.try_into().ok()?))
        };
        Some(Probe {
            flow: u32::from_be_bytes(b.get(4..8)?.try_into().ok()?),
            seq: u64_at(8)?,
            sent_us: u64_at(16)?,
            start_us: u64_at(24)?,
            interval_ns: u64_at(32)?,
        })
    }

    /// When this probe's sequence number was due.
    pub fn scheduled_us(start_us: u64, interval_ns: u64, seq: u64) -> u64 {
        let offset_ns = u128::from(seq) * u128::from(interval_ns);
        start_us.saturating_add(u64::try_from(offset_ns / 1000).unwrap_or(u64::MAX))
    }
}

/// A steady stream of probes (`sid-traffic udp-send`, the call's side of `udp-call`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// Put into every probe's `flow` field.
    pub flow: u32,
    pub interval_ns: u64,
    /// Probes to send, numbered 0 to total-1.
    pub total: u64,
    /// Datagram payload bytes (at least the probe header).
    pub size: usize,
}

/// What a paced stream did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paced {
    /// When the first probe was due (monotonic and wall clock).
    pub start: Instant,
    pub start_us: u64,
    pub sent: u64,
    /// Sends that failed (counted; the stream went on).
    pub errors: u64,
    /// Worst lateness of a send against its due time.
    pub max_late: Duration,
}

/// Sends the probes of `pacing` from `sock` to `to`, each at its due time, start + seq *
/// interval on the monotonic clock (absolute deadlines: a late send does not push the
/// following ones back), until all are sent or `stop` is set. A failed send (unreachable
/// while a node moves is expected) is counted and the stream goes on.
pub fn send_paced(sock: &UdpSocket, to: SocketAddrV4, pacing: &Pacing, stop: &AtomicBool) -> Paced {
    let Pacing { flow, interval_ns, total, size } = *pacing;
    let mut buf = vec![0u8; size.max(PROBE_LEN)];
    let start = Instant::now();
    let start_us = now_us();
    let (mut sent, mut errors, mut max_late) = (0u64, 0u64, Duration::ZERO);
    for seq in 0..total {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let due = start + Duration::from_nanos(interval_ns.saturating_mul(seq));
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        } else {
            max_late = max_late.max(now - due);
        }
        Probe { flow, seq, sent_us: now_us(), start_us, interval_ns }.emit(&mut buf);
        if sock.send_to(&buf, to).is_err() {
            errors += 1;
        }
        sent += 1;
    }
    Paced { start, start_us, sent, errors, max_late }
}

/// One received probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arrival {
    pub seq: u64,
    pub sent_us: u64,
    pub recv_us: u64,
}

/// The sender's schedule, as carried in every probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub start_us: u64,
    pub interval_ns: u64,
}

/// What `udp-send` prints when it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UdpSendReport {
    /// Probes handed to the socket, numbered 0 to sent-1 (failed sends included).
    pub sent: u64,
    pub send_errors: u64,
    pub start_us: u64,
    pub interval_ns: u64,
    pub duration_ms: f64,
    /// Worst lateness of a send against its schedule (pacing quality).
    pub max_late_ms: f64,
}

/// Figures for one window of time: before the first move, then from each move to the next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowReport {
    pub index: usize,
    pub start_us: Option<u64>,
    pub end_us: Option<u64>,
    /// Probes due in this window.
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    /// Longest silence between two consecutive arrivals, counted in the window where the
    /// silence ends (an outage that starts just before a move belongs to that move).
    pub longest_gap_ms: f64,
    pub longest_gap_end_us: Option<u64>,
}

/// The receiver's judgement of a UDP stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UdpReport {
    pub sent: u64,
    /// Distinct sequence numbers received (below `sent`).
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    /// Arrivals with a sequence number below one received earlier.
    pub reordered: u64,
    pub longest_gap_ms: f64,
    pub longest_gap_end_us: Option<u64>,
    pub first_arrival_us: Option<u64>,
    pub last_arrival_us: Option<u64>,
    pub latency_avg_ms: f64,
    pub latency_max_ms: f64,
    pub schedule: Option<Schedule>,
    pub windows: Vec<WindowReport>,
}

/// Judges arrivals (in arrival order). `sent`: how many probes were sent (from the sender's
/// report); without it, the highest sequence number received + 1. `moves`: move times (us),
/// which split the stream into windows (none: one window).
pub fn analyze(
    arrivals: &[Arrival],
    schedule: Option<Schedule>,
    sent: Option<u64>,
    moves: &[u64],
) -> UdpReport {
    let max_seq = arrivals.iter().map(|a| a.seq).max();
    let sent = sent.unwrap_or_else(|| max_seq.map_or(0, |m| m.saturating_add(1)));
    let slots = usize::try_from(sent).unwrap_or(usize::MAX);
    let mut seen = vec![false; slots.min(arrivals.len().saturating_mul(2).max(1 << 20))];
    let mut seen_extra = std::collections::HashSet::new();
    let mut duplicates = 0;
    let mut reordered = 0;
    let mut highest: Option<u64> = None;
    let mut received = 0;
    let mut latency_sum = 0u128;
    let mut latency_max = 0u64;
    for a in arrivals {
        if a.seq >= sent {
            continue;
        }
        let fresh = match usize::try_from(a.seq).ok().and_then(|i| seen.get_mut(i)) {
            Some(slot) => !std::mem::replace(slot, true),
            None => seen_extra.insert(a.seq),
        };
        if !fresh {
            duplicates += 1;
            continue;
        }
        received += 1;
        if highest.is_some_and(|h| a.seq < h) {
            reordered += 1;
        }
        highest = Some(highest.map_or(a.seq, |h| h.max(a.seq)));
        let lat = a.recv_us.saturating_sub(a.sent_us);
        latency_sum += u128::from(lat);
        latency_max = latency_max.max(lat);
    }
    let is_seen = |seq: u64| match usize::try_from(seq).ok().and_then(|i| seen.get(i)) {
        Some(s) => *s,
        None => seen_extra.contains(&seq),
    };

    let mut moves: Vec<u64> = moves.to_vec();
    moves.sort_unstable();
    let window_of = |t: u64| moves.partition_point(|&m| m <= t);
    let mut windows: Vec<WindowReport> = (0..=moves.len())
        .map(|i| WindowReport {
            index: i,
            start_us: i.checked_sub(1).and_then(|j| moves.get(j).copied()),
            end_us: moves.get(i).copied(),
            sent: 0,
            received: 0,
            lost: 0,
            longest_gap_ms: 0.0,
            longest_gap_end_us: None,
        })
        .collect();
    // A bogus `sent` must not make this loop run for ever.
    if let Some(s) = schedule.filter(|_| sent <= 100_000_000) {
        for seq in 0..sent {
            let w = window_of(Probe::scheduled_us(s.start_us, s.interval_ns, seq));
            if let Some(win) = windows.get_mut(w) {
                win.sent += 1;
                if is_seen(seq) {
                    win.received += 1;
                } else {
                    win.lost += 1;
                }
            }
        }
    } else if let Some(win) = windows.first_mut() {
        win.sent = sent;
        win.received = received;
        win.lost = sent - received;
    }

    let mut longest = (0u64, None);
    for pair in arrivals.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let gap = b.recv_us.saturating_sub(a.recv_us);
        if gap > longest.0 {
            longest = (gap, Some(b.recv_us));
        }
        if let Some(win) = windows.get_mut(window_of(b.recv_us)) {
            let ms = gap as f64 / 1000.0;
            if ms > win.longest_gap_ms {
                win.longest_gap_ms = ms;
                win.longest_gap_end_us = Some(b.recv_us);
            }
        }
    }

    UdpReport {
        sent,
        received,
        lost: sent - received,
        duplicates,
        reordered,
        longest_gap_ms: longest.0 as f64 / 1000.0,
        longest_gap_end_us: longest.1,
        first_arrival_us: arrivals.first().map(|a| a.recv_us),
        last_arrival_us: arrivals.last().map(|a| a.recv_us),
        latency_avg_ms: if received > 0 {
            latency_sum as f64 / received as f64 / 1000.0
        } else {
            0.0
        },
        latency_max_ms: latency_max as f64 / 1000.0,
        schedule,
        windows,
    }
}

/// The byte at `offset` of the TCP test stream for `seed` (splitmix64 per 8-byte block).
pub fn pattern_byte(seed: u64, offset: u64) -> u8 {
    let block = splitmix64(seed ^ (offset / 8).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    block.to_le_bytes()[(offset % 8) as usize]
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fills `buf` with the stream bytes starting at `offset`.
pub fn fill_pattern(seed: u64, offset: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern_byte(seed, offset + i as u64);
    }
}

/// Checks a received byte stream against the pattern, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternChecker {
    seed: u64,
    offset: u64,
    errors: u64,
    first_error_offset: Option<u64>,
}

impl PatternChecker {
    pub fn new(seed: u64) -> Self {
        PatternChecker {
            seed,
            offset: 0,
            errors: 0,
            first_error_offset: None,
        }
    }

    /// Checks the next bytes of the stream.
    pub fn check(&mut self, data: &[u8]) {
        for &b in data {
            if b != pattern_byte(self.seed, self.offset) {
                self.errors += 1;
                self.first_error_offset.get_or_insert(self.offset);
            }
            self.offset += 1;
        }
    }

    pub fn bytes(&self) -> u64 {
        self.offset
    }

    pub fn errors(&self) -> u64 {
        self.errors
    }

    pub fn first_error_offset(&self) -> Option<u64> {
        self.first_error_offset
    }
}

/// What `tcp-send` prints when it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TcpSendReport {
    pub bytes: u64,
    pub duration_ms: f64,
    /// Longest time one write waited for room in the send buffer.
    pub longest_block_ms: f64,
    /// The receiver closed after our end of stream: it saw every byte.
    pub acknowledged: bool,
    pub error: Option<String>,
}

/// The receiver's judgement of a TCP stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TcpRecvReport {
    pub bytes: u64,
    /// Bytes that differ from the pattern.
    pub errors: u64,
    pub first_error_offset: Option<u64>,
    /// Longest time between two reads that returned data.
    pub longest_stall_ms: f64,
    pub longest_stall_end_us: Option<u64>,
    pub connected_us: Option<u64>,
    /// The sender ended the stream (FIN) rather than the connection failing or being cut.
    pub eof: bool,
    pub error: Option<String>,
}

impl TcpRecvReport {
    /// Every byte right, the stream ended by the sender, no connection error.
    pub fn ok(&self) -> bool {
        self.errors == 0 && self.eof && self.error.is_none()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn arrivals(seqs: &[u64], start: u64, step: u64) -> Vec<Arrival> {
        seqs.iter()
            .enumerate()
            .map(|(i, &s)| Arrival {
                seq: s,
                sent_us: start + s * step,
                recv_us: start + i as u64 * step + 100,
            })
            .collect()
    }

    #[test]
    fn probe_round_trip() {
        let p = Probe {
            flow: 7,
            seq: 123_456,
            sent_us: 1,
            start_us: 2,
            interval_ns: 1_000_000,
        };
        let mut buf = [0u8; 64];
        assert_eq!(p.emit(&mut buf), Some(PROBE_LEN));
        assert_eq!(Probe::parse(&buf), Some(p));
        assert_eq!(Probe::parse(&buf[..39]), None);
        buf[0] = b'X';
        assert_eq!(Probe::parse(&buf), None);
        assert_eq!(Probe::scheduled_us(1_000, 1_000_000, 5), 6_000);
    }

    #[test]
    fn counts_loss_duplicates_reordering_and_gaps() {
        // 10 probes at 1 ms; 3 and 4 lost, 6 arrives after 7, 8 twice.
        let a = arrivals(&[0, 1, 2, 5, 7, 6, 8, 8, 9], 1_000_000, 1_000);
        let r = analyze(&a, None, Some(10), &[]);
        assert_eq!((r.sent, r.received, r.lost), (10, 8, 2));
        assert_eq!(r.duplicates, 1);
        assert_eq!(r.reordered, 1);
        assert_eq!(r.windows.len(), 1);
        assert_eq!(r.windows[0].lost, 2);
    }

    #[test]
    fn splits_by_moves() {
        let start = 1_000_000;
        let sched = Schedule {
            start_us: start,
            interval_ns: 1_000_000,
        };
        // Probes 0..100 at 1 ms; a move at 50 ms; probes 50..60 lost.
        let seqs: Vec<u64> = (0..50).chain(60..100).collect();
        let a: Vec<Arrival> = seqs
            .iter()
            .map(|&s| Arrival {
                seq: s,
                sent_us: start + s * 1000,
                recv_us: start + s * 1000 + 200,
            })
            .collect();
        let r = analyze(&a, Some(sched), Some(100), &[start + 50_000]);
        assert_eq!(r.lost, 10);
        assert_eq!(r.windows.len(), 2);
        assert_eq!((r.windows[0].sent, r.windows[0].lost), (50, 0));
        assert_eq!((r.windows[1].sent, r.windows[1].lost), (50, 10));
        assert!((r.windows[1].longest_gap_ms - 11.0).abs() < 1e-9);
        assert!((r.windows[0].longest_gap_ms - 1.0).abs() < 1e-9);
        assert!((r.longest_gap_ms - 11.0).abs() < 1e-9);
    }

    #[test]
    fn pattern_checker_finds_errors() {
        let mut buf = vec![0u8; 1000];
        fill_pattern(9, 0, &mut buf);
        let mut c = PatternChecker::new(9);
        c.check(&buf[..333]);
        c.check(&buf[333..]);
        assert_eq!((c.bytes(), c.errors()), (1000, 0));
        buf[500] ^= 1;
        let mut c = PatternChecker::new(9);
        c.check(&buf);
        assert_eq!(c.errors(), 1);
        assert_eq!(c.first_error_offset(), Some(500));
        let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
        fill_pattern(1, 0, &mut a);
        fill_pattern(2, 0, &mut b);
        assert_ne!(a, b);
    }
}
