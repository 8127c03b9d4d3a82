//! The one notion of time the sans-IO core knows: microseconds since the Unix epoch,
//! handed in by the caller.
//!
//! Registration replay protection (RFC 5944 section 5.7) compares wall-clock
//! timestamps, so the core's time is wall-clock time; a simulation simply starts its
//! virtual clock at some fixed instant.

use std::ops::{Add, Sub};
use std::time::Duration;

/// Seconds between the NTP epoch (1900) and the Unix epoch (1970).
pub const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;

/// An instant, in microseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time(u64);

impl Time {
    pub const fn from_micros(micros: u64) -> Self {
        Time(micros)
    }

    pub const fn from_secs(secs: u64) -> Self {
        Time(secs.saturating_mul(1_000_000))
    }

    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Converts a `SystemTime`; times before 1970 become the epoch.
    pub fn from_system(t: std::time::SystemTime) -> Self {
        let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Time(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    /// This instant as a 64-bit NTP timestamp (RFC 5905): seconds since 1900 in the
    /// high 32 bits, the binary fraction of a second in the low 32 bits.
    pub fn to_ntp(self) -> u64 {
        let secs = self.0 / 1_000_000 + NTP_UNIX_OFFSET_SECS;
        let micros = self.0 % 1_000_000;
        let frac = (micros << 32) / 1_000_000;
        (secs << 32) | frac
    }

    /// The instant of a 64-bit NTP timestamp; timestamps before 1970 become the epoch.
    pub fn from_ntp(ntp: u64) -> Self {
        let secs = (ntp >> 32).saturating_sub(NTP_UNIX_OFFSET_SECS);
        let micros = ((ntp & 0xffff_ffff) * 1_000_000) >> 32;
        Time(secs * 1_000_000 + micros)
    }

    pub fn saturating_duration_since(self, earlier: Time) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, d: Duration) -> Time {
        Time(self.0.saturating_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX)))
    }
}

impl Sub<Duration> for Time {
    type Output = Time;
    fn sub(self, d: Duration) -> Time {
        Time(self.0.saturating_sub(u64::try_from(d.as_micros()).unwrap_or(u64::MAX)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntp_round_trip_keeps_microseconds() {
        let t = Time::from_micros(1_700_000_000_123_456);
        assert_eq!(Time::from_ntp(t.to_ntp()).as_micros() / 1_000, t.as_micros() / 1_000);
        assert_eq!(t.to_ntp() >> 32, 1_700_000_000 + NTP_UNIX_OFFSET_SECS);
    }

    #[test]
    fn ntp_fraction_of_half_a_second() {
        let t = Time::from_micros(500_000);
        assert_eq!(t.to_ntp() & 0xffff_ffff, 0x8000_0000);
    }
}
