//! ICMP echo (RFC 792) over a raw socket, in the namespace of the calling thread: the lab's
//! reachability checks need no `ping` binary. Run it inside a namespace with
//! [`super::netns::in_netns`] or [`super::Lab::ping`].

use std::io::{ErrorKind, Read};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use socket2::{Domain, Protocol, Socket, Type};

const ECHO_REQUEST: u8 = 8;
const ECHO_REPLY: u8 = 0;
const PAYLOAD: &[u8; 16] = b"sid-lab-ping-001";

/// Raw ICMP sockets see every ICMP packet of the namespace: each ping uses its own identifier.
static NEXT_ID: AtomicU16 = AtomicU16::new(0);

/// Outcome of [`ping`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PingReport {
    pub target: Ipv4Addr,
    pub sent: u32,
    pub received: u32,
    /// Round-trip time of each reply, in milliseconds.
    pub rtt_ms: Vec<f64>,
}

impl PingReport {
    pub fn reachable(&self) -> bool {
        self.received > 0
    }
}

fn echo_request(id: u16, seq: u16) -> [u8; 8 + PAYLOAD.len()] {
    let mut pkt = [0u8; 8 + PAYLOAD.len()];
    pkt[0] = ECHO_REQUEST;
    pkt[4..6].copy_from_slice(&id.to_be_bytes());
    pkt[6..8].copy_from_slice(&seq.to_be_bytes());
    pkt[8..].copy_from_slice(PAYLOAD);
    let sum = mip_core::wire::icmp_checksum(&pkt);
    pkt[2..4].copy_from_slice(&sum.to_be_bytes());
    pkt
}

/// An echo reply from `target` with our `id` and `seq`, given a whole IPv4 packet.
fn is_our_reply(packet: &[u8], target: Ipv4Addr, id: u16, seq: u16) -> bool {
    let Some(&first) = packet.first() else {
        return false;
    };
    let ihl = usize::from(first & 0x0f) * 4;
    let (Some(src), Some(icmp)) = (packet.get(12..16), packet.get(ihl..)) else {
        return false;
    };
    if ihl < 20 || src != target.octets() || icmp.len() < 8 {
        return false;
    }
    icmp.first() == Some(&ECHO_REPLY)
        && icmp.get(4..6) == Some(&id.to_be_bytes()[..])
        && icmp.get(6..8) == Some(&seq.to_be_bytes()[..])
}

/// Sends up to `count` echo requests to `target`, one at a time, each waiting up to `timeout`
/// for its reply. With `stop_on_reply`, returns at the first reply.
pub fn ping(
    target: Ipv4Addr,
    count: u32,
    timeout: Duration,
    stop_on_reply: bool,
) -> std::io::Result<PingReport> {
    let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?;
    let id = NEXT_ID
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_add((std::process::id() as u16).wrapping_mul(64));
    let dest = SocketAddrV4::new(target, 0).into();
    let mut report = PingReport {
        target,
        sent: 0,
        received: 0,
        rtt_ms: Vec::new(),
    };
    let mut buf = [0u8; 2048];
    for i in 0..count {
        let seq = (i & 0xffff) as u16;
        let start = Instant::now();
        report.sent += 1;
        if let Err(e) = sock.send_to(&echo_request(id, seq), &dest) {
            // Unreachable networks fail right away: count it as lost and wait out the timeout
            // so that `count` keeps its meaning of "how long we tried".
            if e.kind() != ErrorKind::PermissionDenied {
                std::thread::sleep(timeout);
                continue;
            }
            return Err(e);
        }
        let deadline = start + timeout;
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            sock.set_read_timeout(Some(deadline - now))?;
            match (&sock).read(&mut buf) {
                Ok(n) => {
                    if is_our_reply(buf.get(..n).unwrap_or_default(), target, id, seq) {
                        report.received += 1;
                        report.rtt_ms.push(start.elapsed().as_secs_f64() * 1000.0);
                        break;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if stop_on_reply && report.received > 0 {
            break;
        }
    }
    Ok(report)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn request_has_valid_checksum_and_reply_matching_works() {
        let req = echo_request(0x1234, 7);
        assert_eq!(mip_core::wire::icmp_checksum(&req), 0);
        let mut ip = vec![
            0x45u8, 0, 0, 44, 0, 0, 0, 0, 64, 1, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2,
        ];
        let mut icmp = req.to_vec();
        icmp[0] = ECHO_REPLY;
        ip.extend_from_slice(&icmp);
        assert!(is_our_reply(&ip, Ipv4Addr::new(198, 18, 0, 1), 0x1234, 7));
        assert!(!is_our_reply(&ip, Ipv4Addr::new(198, 18, 0, 9), 0x1234, 7));
        assert!(!is_our_reply(&ip, Ipv4Addr::new(198, 18, 0, 1), 0x1234, 8));
        assert!(!is_our_reply(
            &ip[..22],
            Ipv4Addr::new(198, 18, 0, 1),
            0x1234,
            7
        ));
    }
}
