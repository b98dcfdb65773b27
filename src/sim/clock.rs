//! The simulator's clock: real time plus an offset that tests can advance.
//!
//! Owns "now" for everything time-based in the simulator (token expiry, throttle windows,
//! device-code polling, delayed redemption, timestamps in JSON). It must not sleep: latency
//! faults use real time through tokio, everything else reads this clock so a test can jump
//! five seconds ahead instead of waiting.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Real time since start, plus a test-controlled offset.
#[derive(Debug)]
pub struct SimClock {
    origin: Instant,
    origin_unix_ms: u64,
    offset_ms: AtomicU64,
}

impl Default for SimClock {
    fn default() -> Self {
        Self::new()
    }
}

impl SimClock {
    pub fn new() -> Self {
        let origin_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Self {
            origin: Instant::now(),
            origin_unix_ms,
            offset_ms: AtomicU64::new(0),
        }
    }

    /// Milliseconds since the Unix epoch, as the simulator sees it.
    pub fn now_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.origin_unix_ms + elapsed + self.offset_ms.load(Ordering::SeqCst)
    }

    /// Seconds since the Unix epoch.
    pub fn now_secs(&self) -> u64 {
        self.now_ms() / 1000
    }

    /// Moves simulated time forward (never backward).
    pub fn advance(&self, by: Duration) {
        self.offset_ms.fetch_add(
            u64::try_from(by.as_millis()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }

    /// "now" formatted like Graph's timestamps (`2026-11-21T08:00:00Z`).
    pub fn now_rfc3339(&self) -> String {
        super::generate::format_unix(i64::try_from(self.now_secs()).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_now_forward() {
        let clock = SimClock::new();
        let before = clock.now_ms();
        clock.advance(Duration::from_secs(5));
        assert!(clock.now_ms() >= before + 5000);
    }
}
