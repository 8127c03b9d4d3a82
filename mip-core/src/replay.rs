//! Replay protection for registrations (RFC 5944 section 5.7).
//!
//! The 64-bit Identification field means different things under the two methods a
//! mobility security association can choose:
//!
//! - Timestamps (5.7.1, mandatory): the mobile node sends its time of day as a 64-bit NTP
//!   timestamp. The home agent accepts it when it is within a window of its own clock
//!   (7 s by default) *and* greater than every timestamp it accepted before from that
//!   mobile node — the window alone would let a delayed duplicate be applied out of order.
//!   A rejected request gets code 133 and a reply Identification whose high 32 bits are
//!   the home agent's time (NTP seconds) and whose low 32 bits are copied from the request,
//!   so the mobile node can resynchronise.
//! - Nonces (5.7.2, optional): the home agent puts a new random nonce in the high 32 bits
//!   of every reply; the mobile node echoes it in the high 32 bits of its next request
//!   and puts its own nonce in the low 32 bits.
//!
//! Under both methods the low 32 bits of a reply are those of the request (5.7), and the
//! mobile node must check that before trusting anything else in the reply.
//!
//! Deliberate choices where the contract sketch was silent or the RFC is more precise:
//! - Timestamps are compared with wrapping ("serial number") arithmetic, so the NTP era
//!   rollover of 2036-02-07 does not turn every timestamp stale.
//! - [`nonce_request_matches`] with no nonce yet given is a mismatch: the RFC makes the
//!   nonce scheme self-synchronising through the 133 reply, which carries the first nonce.
//! - [`nonce_reply_identification`] and [`nonce_mismatch_reply_identification`] return
//!   the same value: the RFC asks for a new nonce in *every* reply, accepted or not.
//! - The mobile node's low-order "random" bits are only those below the clock's
//!   resolution ([`TIMESTAMP_RANDOM_BITS`]), as 5.7.1 says ("those bits that are not
//!   available from a time source"); the rest of the fraction is the clock's.

use std::time::Duration;

use crate::time::Time;

/// The default tolerance between a request's timestamp and the home agent's clock
/// (RFC 5944 5.7.1: "a default value of 7 seconds MAY be used"; it SHOULD exceed 3 s).
pub const DEFAULT_TIMESTAMP_WINDOW: Duration = Duration::from_secs(7);

/// Low-order bits of a timestamp Identification that [`Time`] (microseconds) cannot
/// supply: 2^12 NTP fraction units are 0.95 µs, so bits 0..12 are below the clock's
/// resolution and are filled with randomness (5.7.1).
pub const TIMESTAMP_RANDOM_BITS: u32 = 12;

const RANDOM_MASK: u64 = (1 << TIMESTAMP_RANDOM_BITS) - 1;
const LOW_MASK: u64 = 0xffff_ffff;
const HIGH_MASK: u64 = !LOW_MASK;
/// NTP fraction units (2^-32 s) per second.
const NTP_UNITS_PER_SEC: i128 = 1 << 32;

/// The home agent's judgement of a request's Identification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplayVerdict {
    Fresh,
    /// Reject with code 133 (registration Identification mismatch).
    Stale,
}

/// Why a timestamp Identification was judged stale (for logs and statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimestampFault {
    /// Too far from the home agent's clock. `skew_micros` is the request's time minus
    /// the home agent's: positive when the mobile node's clock is ahead.
    OutsideWindow { skew_micros: i64 },
    /// Within the window but not greater than the last accepted Identification: a
    /// replay, a duplicate, or a request overtaken by a newer one.
    NotIncreasing { last_accepted: u64 },
}

/// Home agent, timestamps (5.7.1): fresh when the timestamp is within `window` of `now`
/// (inclusive at both edges) and greater than `last_accepted`, the last Identification
/// accepted for this mobile node (if any). An equal Identification is a replay.
///
/// The caller should record the Identification as accepted only once the whole
/// registration succeeds (authentication included).
pub fn check_timestamp(
    identification: u64,
    now: Time,
    window: Duration,
    last_accepted: Option<u64>,
) -> ReplayVerdict {
    match check_timestamp_detailed(identification, now, window, last_accepted) {
        Ok(()) => ReplayVerdict::Fresh,
        Err(_) => ReplayVerdict::Stale,
    }
}

/// [`check_timestamp`] with the reason for a stale verdict.
pub fn check_timestamp_detailed(
    identification: u64,
    now: Time,
    window: Duration,
    last_accepted: Option<u64>,
) -> Result<(), TimestampFault> {
    // Signed difference in NTP units; wrapping keeps it right across the NTP era change.
    let skew = identification.wrapping_sub(now.to_ntp()) as i64;
    if u128::from(skew.unsigned_abs()) > duration_to_ntp_units(window) {
        return Err(TimestampFault::OutsideWindow {
            skew_micros: ntp_units_to_micros(i128::from(skew)),
        });
    }
    if let Some(last) = last_accepted {
        if !serial_greater(identification, last) {
            return Err(TimestampFault::NotIncreasing {
                last_accepted: last,
            });
        }
    }
    Ok(())
}

/// Home agent, timestamps: the Identification of a 133 reply — high 32 bits the home
/// agent's time of day (NTP seconds), low 32 bits copied from the request (5.7.1).
pub fn timestamp_resync_identification(request_id: u64, now: Time) -> u64 {
    (now.to_ntp() & HIGH_MASK) | (request_id & LOW_MASK)
}

/// Mobile node, timestamps: the Identification for a new request, from the node's clock
/// `now` corrected by `offset_micros` (see [`resync_offset`]). The NTP fraction is the
/// clock's down to its resolution; the [`TIMESTAMP_RANDOM_BITS`] below it come from
/// `random_low`, which the caller draws from a good random source.
///
/// This alone does not guarantee that Identifications increase (a clock may step back);
/// [`MobileNodeClock`] does.
pub fn mobile_node_timestamp(now: Time, offset_micros: i64, random_low: u32) -> u64 {
    let magnitude = Duration::from_micros(offset_micros.unsigned_abs());
    let corrected = if offset_micros >= 0 {
        now + magnitude
    } else {
        now - magnitude
    };
    (corrected.to_ntp() & !RANDOM_MASK) | (u64::from(random_low) & RANDOM_MASK)
}

/// Mobile node, timestamps: the clock offset to use after a 133 reply, from the home
/// agent's time in the reply's high 32 bits and the node's own *uncorrected* clock
/// `now`. The result replaces any earlier offset. Check [`low_order_matches`] first.
///
/// The home agent sends whole seconds, so its time is somewhere in the following second:
/// half a second is added to centre the error (±0.5 s plus transit time, far inside the
/// window).
pub fn resync_offset(reply_identification: u64, now: Time) -> i64 {
    let ha_time = (reply_identification & HIGH_MASK).wrapping_add(1 << 31);
    let units = ha_time.wrapping_sub(now.to_ntp()) as i64;
    ntp_units_to_micros(i128::from(units))
}

/// A mobile node's timestamp state: the learned offset from the home agent's clock and
/// the last Identification sent, so that each new one is greater (5.7.1 MUST).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MobileNodeClock {
    offset_micros: i64,
    last_sent: Option<u64>,
}

impl MobileNodeClock {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn offset_micros(&self) -> i64 {
        self.offset_micros
    }

    /// The Identification for a new request (not a retransmission, which reuses the
    /// previous one). If the clock has not moved past the last one sent (or stepped
    /// back), the next value above it is used instead.
    pub fn next_identification(&mut self, now: Time, random_low: u32) -> u64 {
        let mut id = mobile_node_timestamp(now, self.offset_micros, random_low);
        if let Some(last) = self.last_sent {
            if !serial_greater(id, last) {
                // Next clock slot above `last`, keeping random low-order bits.
                id = (last | RANDOM_MASK).wrapping_add(1) | (u64::from(random_low) & RANDOM_MASK);
            }
        }
        self.last_sent = Some(id);
        id
    }

    /// Applies a 133 reply to the request with Identification `request_id`. Returns
    /// false, changing nothing, when the reply's low 32 bits are not the request's
    /// (5.7.1: verify before using the high-order bits).
    ///
    /// The record of the last Identification sent is dropped: if the node's clock was
    /// ahead, the home agent's time is below it, and insisting on "greater than any
    /// previous request" would leave the node rejected until its own clock caught up.
    /// The home agent's check is against what it *accepted*, which the resynchronised
    /// clock will exceed.
    pub fn resynchronise(&mut self, request_id: u64, reply_id: u64, now: Time) -> bool {
        if !low_order_matches(request_id, reply_id) {
            return false;
        }
        self.offset_micros = resync_offset(reply_id, now);
        self.last_sent = None;
        true
    }
}

/// Home agent, nonces (5.7.2): the request's high 32 bits must be the nonce the home
/// agent last sent this mobile node. With none sent yet (`None`) nothing matches: the
/// home agent answers 133 with a first nonce.
pub fn nonce_request_matches(identification: u64, expected_ha_nonce: Option<u32>) -> bool {
    expected_ha_nonce == Some(high_order(identification))
}

/// Home agent, nonces: a reply's Identification — high 32 bits a new nonce, low 32 bits
/// the mobile node's nonce from the request. The home agent must then expect
/// `new_ha_nonce` in the next request, so a replayed request no longer matches.
pub fn nonce_reply_identification(request_id: u64, new_ha_nonce: u32) -> u64 {
    (u64::from(new_ha_nonce) << 32) | (request_id & LOW_MASK)
}

/// Home agent, nonces: the Identification of a 133 reply. Identical to
/// [`nonce_reply_identification`]: every reply carries a new nonce (5.7.2), which is what
/// makes the scheme self-synchronising.
pub fn nonce_mismatch_reply_identification(request_id: u64, new_ha_nonce: u32) -> u64 {
    nonce_reply_identification(request_id, new_ha_nonce)
}

/// Mobile node, nonces: a request's Identification — the home agent's last nonce (from
/// [`high_order`] of its last authenticated reply) and the node's own new nonce.
pub fn nonce_request_identification(ha_nonce: u32, mn_nonce: u32) -> u64 {
    (u64::from(ha_nonce) << 32) | u64::from(mn_nonce)
}

/// A new nonce from `random` that differs from `previous` (5.7.2: both halves SHOULD
/// differ from their previous values).
pub fn next_nonce(random: u32, previous: Option<u32>) -> u32 {
    if previous == Some(random) {
        random.wrapping_add(1)
    } else {
        random
    }
}

/// High-order 32 bits of an Identification.
pub fn high_order(identification: u64) -> u32 {
    (identification >> 32) as u32
}

/// Low-order 32 bits of an Identification.
pub fn low_order(identification: u64) -> u32 {
    (identification & LOW_MASK) as u32
}

/// Whether a reply's low 32 bits are the request's (5.7: the mobile node MUST check this,
/// and the foreign agent matches replies to requests by them).
pub fn low_order_matches(request_id: u64, reply_id: u64) -> bool {
    low_order(request_id) == low_order(reply_id)
}

/// `a` comes after `b` in wrapping order (RFC 1982 style over 64 bits).
fn serial_greater(a: u64, b: u64) -> bool {
    (a.wrapping_sub(b) as i64) > 0
}

fn duration_to_ntp_units(d: Duration) -> u128 {
    u128::from(d.as_secs()) * (NTP_UNITS_PER_SEC as u128)
        + (u128::from(d.subsec_nanos()) * (NTP_UNITS_PER_SEC as u128)) / 1_000_000_000
}

fn ntp_units_to_micros(units: i128) -> i64 {
    // Floor division, so that negative values round towards minus infinity too.
    let micros = (units * 1_000_000).div_euclid(NTP_UNITS_PER_SEC);
    i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = DEFAULT_TIMESTAMP_WINDOW;
    /// 2023-11-14T22:13:20Z, an arbitrary "now" with a fraction.
    fn now() -> Time {
        Time::from_micros(1_700_000_000_250_000)
    }
    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }
    const ONE_SEC_UNITS: u64 = 1 << 32;

    #[test]
    fn fresh_at_the_same_instant() {
        assert_eq!(
            check_timestamp(now().to_ntp(), now(), W, None),
            ReplayVerdict::Fresh
        );
    }

    #[test]
    fn window_edges_are_inclusive() {
        let ahead = (now() + W).to_ntp();
        let behind = (now() - W).to_ntp();
        assert_eq!(ahead - now().to_ntp(), 7 * ONE_SEC_UNITS);
        assert_eq!(check_timestamp(ahead, now(), W, None), ReplayVerdict::Fresh);
        assert_eq!(
            check_timestamp(behind, now(), W, None),
            ReplayVerdict::Fresh
        );
        // One NTP unit (~0.23 ns) past either edge is stale.
        assert_eq!(
            check_timestamp(ahead + 1, now(), W, None),
            ReplayVerdict::Stale
        );
        assert_eq!(
            check_timestamp(behind - 1, now(), W, None),
            ReplayVerdict::Stale
        );
    }

    #[test]
    fn mobile_node_clock_ahead_or_behind() {
        for (skew_s, ahead, verdict) in [
            (3, true, ReplayVerdict::Fresh),
            (3, false, ReplayVerdict::Fresh),
            (8, true, ReplayVerdict::Stale),
            (8, false, ReplayVerdict::Stale),
            (3600, true, ReplayVerdict::Stale),
            (3600, false, ReplayVerdict::Stale),
        ] {
            let mn = if ahead {
                now() + secs(skew_s)
            } else {
                now() - secs(skew_s)
            };
            assert_eq!(
                check_timestamp(mn.to_ntp(), now(), W, None),
                verdict,
                "{skew_s} s ahead={ahead}"
            );
        }
    }

    #[test]
    fn stale_reports_signed_skew() {
        let fault = check_timestamp_detailed((now() + secs(10)).to_ntp(), now(), W, None);
        assert_eq!(
            fault,
            Err(TimestampFault::OutsideWindow {
                skew_micros: 10_000_000
            })
        );
        let fault = check_timestamp_detailed((now() - secs(10)).to_ntp(), now(), W, None);
        assert_eq!(
            fault,
            Err(TimestampFault::OutsideWindow {
                skew_micros: -10_000_000
            })
        );
    }

    #[test]
    fn equal_identification_is_a_replay() {
        let id = now().to_ntp();
        assert_eq!(
            check_timestamp(id, now(), W, Some(id)),
            ReplayVerdict::Stale
        );
        assert_eq!(
            check_timestamp_detailed(id, now(), W, Some(id)),
            Err(TimestampFault::NotIncreasing { last_accepted: id })
        );
    }

    #[test]
    fn older_identification_inside_window_is_stale() {
        // A delayed duplicate of an earlier request, still within the window.
        let older = (now() - secs(2)).to_ntp();
        let newer = (now() - secs(1)).to_ntp();
        assert_eq!(
            check_timestamp(older, now(), W, Some(newer)),
            ReplayVerdict::Stale
        );
        assert_eq!(
            check_timestamp(newer, now(), W, Some(older)),
            ReplayVerdict::Fresh
        );
        assert_eq!(
            check_timestamp(newer + 1, now(), W, Some(newer)),
            ReplayVerdict::Fresh
        );
    }

    #[test]
    fn window_is_configurable() {
        let id = (now() + secs(5)).to_ntp();
        assert_eq!(
            check_timestamp(id, now(), secs(4), None),
            ReplayVerdict::Stale
        );
        assert_eq!(
            check_timestamp(id, now(), secs(5), None),
            ReplayVerdict::Fresh
        );
        assert_eq!(
            check_timestamp(id, now(), Duration::from_millis(4_999), None),
            ReplayVerdict::Stale
        );
        // A zero window accepts only the exact instant; a huge one does not overflow.
        assert_eq!(
            check_timestamp(now().to_ntp(), now(), Duration::ZERO, None),
            ReplayVerdict::Fresh
        );
        assert_eq!(
            check_timestamp(now().to_ntp() + 1, now(), Duration::ZERO, None),
            ReplayVerdict::Stale
        );
        assert_eq!(
            check_timestamp(0, now(), Duration::MAX, None),
            ReplayVerdict::Fresh
        );
    }

    #[test]
    fn ntp_era_rollover_2036() {
        // 2036-02-07T06:28:16Z is NTP second 2^32, which wraps to 0 in 64-bit NTP.
        let rollover = Time::from_secs((1u64 << 32) - crate::time::NTP_UNIX_OFFSET_SECS);
        let before = (rollover - secs(2)).to_ntp();
        let after = (rollover + secs(1)).to_ntp();
        assert!(after < before, "NTP wraps at the era change");
        assert_eq!(
            check_timestamp(before, rollover, W, None),
            ReplayVerdict::Fresh
        );
        assert_eq!(
            check_timestamp(after, rollover, W, Some(before)),
            ReplayVerdict::Fresh
        );
        assert_eq!(
            check_timestamp(before, rollover, W, Some(after)),
            ReplayVerdict::Stale
        );
    }

    #[test]
    fn resync_identification_has_ha_seconds_and_request_low_bits() {
        let request = 0x1122_3344_5566_7788;
        let id = timestamp_resync_identification(request, now());
        assert_eq!(high_order(id), high_order(now().to_ntp()));
        assert_eq!(low_order(id), 0x5566_7788);
        assert!(low_order_matches(request, id));
    }

    #[test]
    fn mobile_node_timestamp_fills_only_sub_resolution_bits_randomly() {
        let id = mobile_node_timestamp(now(), 0, 0xffff_ffff);
        assert_eq!(id & RANDOM_MASK, RANDOM_MASK);
        assert_eq!(id & !RANDOM_MASK, now().to_ntp() & !RANDOM_MASK);
        assert_eq!(mobile_node_timestamp(now(), 0, 0) & RANDOM_MASK, 0);
        // One microsecond later is always greater, whatever the random bits.
        let later = mobile_node_timestamp(now() + Duration::from_micros(1), 0, 0);
        assert!(later > id);
    }

    #[test]
    fn mobile_node_timestamp_applies_offset() {
        let plus = mobile_node_timestamp(now(), 5_000_000, 0);
        assert_eq!(plus, (now() + secs(5)).to_ntp() & !RANDOM_MASK);
        let minus = mobile_node_timestamp(now(), -5_000_000, 0);
        assert_eq!(minus, (now() - secs(5)).to_ntp() & !RANDOM_MASK);
        // Extreme offsets saturate rather than panic.
        let _ = mobile_node_timestamp(now(), i64::MIN, 7);
        let _ = mobile_node_timestamp(now(), i64::MAX, 7);
    }

    #[test]
    fn resync_offset_recovers_skew_within_half_a_second() {
        for mn_skew in [-100_000_000i64, -3_000_000, 0, 2_500_000, 86_400_000_000] {
            let ha_now = now();
            let mn_raw = Time::from_micros(ha_now.as_micros().wrapping_add_signed(mn_skew));
            let reply = timestamp_resync_identification(0xdead_beef, ha_now);
            let offset = resync_offset(reply, mn_raw);
            assert!(
                (offset + mn_skew).abs() <= 500_000,
                "skew {mn_skew}: offset {offset}"
            );
        }
    }

    #[test]
    fn clock_resync_round_trip() {
        let ha_now = now();
        let mn_raw = ha_now + secs(60); // the mobile node's clock runs a minute fast
        let mut clock = MobileNodeClock::new();
        let first = clock.next_identification(mn_raw, 0x123);
        assert_eq!(
            check_timestamp(first, ha_now, W, None),
            ReplayVerdict::Stale
        );
        let reply = timestamp_resync_identification(first, ha_now);
        // A reply whose low bits are not ours is ignored.
        assert!(!clock.resynchronise(first ^ 1, reply, mn_raw));
        assert_eq!(clock.offset_micros(), 0);
        assert!(clock.resynchronise(first, reply, mn_raw));
        let second = clock.next_identification(mn_raw + Duration::from_millis(10), 0x456);
        assert!(
            second < first,
            "after resync the identification goes back to the HA's time"
        );
        let ha_later = ha_now + Duration::from_millis(10);
        assert_eq!(
            check_timestamp(second, ha_later, W, None),
            ReplayVerdict::Fresh
        );
    }

    #[test]
    fn clock_identifications_always_increase() {
        let mut clock = MobileNodeClock::new();
        let a = clock.next_identification(now(), 0xfff);
        // Same instant, then the clock steps back a second.
        let b = clock.next_identification(now(), 0);
        let c = clock.next_identification(now() - secs(1), 0x5);
        assert!(a < b && b < c, "{a:x} {b:x} {c:x}");
        assert_eq!(c & RANDOM_MASK, 0x5);
        // Each is still accepted in sequence by a home agent.
        assert_eq!(check_timestamp(b, now(), W, Some(a)), ReplayVerdict::Fresh);
        assert_eq!(check_timestamp(c, now(), W, Some(b)), ReplayVerdict::Fresh);
    }

    #[test]
    fn nonce_request_matching() {
        let id = nonce_request_identification(0xaaaa_0001, 0x0000_bbbb);
        assert_eq!(id, 0xaaaa_0001_0000_bbbb);
        assert!(nonce_request_matches(id, Some(0xaaaa_0001)));
        assert!(!nonce_request_matches(id, Some(0xaaaa_0002)));
        // Matching on the low half is not enough.
        assert!(!nonce_request_matches(id, Some(0x0000_bbbb)));
        // No nonce given yet: the first request is answered with 133 and a nonce.
        assert!(!nonce_request_matches(id, None));
        assert!(!nonce_request_matches(0, None));
    }

    #[test]
    fn nonce_replies_carry_new_ha_nonce_and_mn_nonce() {
        let request = 0x1111_1111_2222_2222;
        let ok = nonce_reply_identification(request, 0x3333_3333);
        assert_eq!(ok, 0x3333_3333_2222_2222);
        let bad = nonce_mismatch_reply_identification(request, 0x4444_4444);
        assert_eq!(bad, 0x4444_4444_2222_2222);
        assert!(low_order_matches(request, ok) && low_order_matches(request, bad));
    }

    #[test]
    fn nonce_exchange_blocks_replay_and_resynchronises() {
        // HA has given nonce N1; MN sends a request with it.
        let n1 = 0x0101_0101;
        let req1 = nonce_request_identification(n1, 0x0a0a_0a0a);
        assert!(nonce_request_matches(req1, Some(n1)));
        // HA accepts and moves to N2.
        let n2 = next_nonce(0x0202_0202, Some(n1));
        let reply = nonce_reply_identification(req1, n2);
        // An attacker replaying req1 now fails.
        assert!(!nonce_request_matches(req1, Some(n2)));
        // The MN uses the nonce from the reply, with a new nonce of its own.
        let mn_nonce = next_nonce(0x0a0a_0a0a, Some(low_order(req1)));
        let req2 = nonce_request_identification(high_order(reply), mn_nonce);
        assert!(nonce_request_matches(req2, Some(n2)));
        assert_ne!(low_order(req2), low_order(req1));
    }

    #[test]
    fn next_nonce_differs_from_previous() {
        assert_eq!(next_nonce(5, None), 5);
        assert_eq!(next_nonce(5, Some(4)), 5);
        assert_eq!(next_nonce(5, Some(5)), 6);
        assert_eq!(next_nonce(u32::MAX, Some(u32::MAX)), 0);
    }

    #[test]
    fn low_order_helpers() {
        assert_eq!(high_order(0x0102_0304_0506_0708), 0x0102_0304);
        assert_eq!(low_order(0x0102_0304_0506_0708), 0x0506_0708);
        assert!(low_order_matches(
            0xffff_ffff_0000_0001,
            0x0000_0000_0000_0001
        ));
        assert!(!low_order_matches(1, 2));
    }
}
