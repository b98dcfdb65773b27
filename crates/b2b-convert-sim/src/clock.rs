//! The simulator's clock: real time plus an offset that tests can advance, and that tests can
//! freeze so time-window behaviour (throttling, device-code polling) is exact.
//!
//! Owns "now" for everything time-based in the simulator (token expiry, throttle windows,
//! device-code polling, delayed redemption, timestamps in JSON). It must not sleep: latency
//! faults use real time through tokio, everything else reads this clock so a test can jump
//! five seconds ahead instead of waiting.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Real time since start (unless frozen), plus a test-controlled offset.
#[derive(Debug)]
pub struct SimClock {
    origin: Instant,
    origin_unix_ms: u64,
    /// Signed: resuming a frozen clock subtracts the real time that passed while frozen.
    offset_ms: AtomicI64,
    frozen: AtomicBool,
    frozen_elapsed_ms: AtomicU64,
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
            offset_ms: AtomicI64::new(0),
            frozen: AtomicBool::new(false),
            frozen_elapsed_ms: AtomicU64::new(0),
        }
    }

    fn real_elapsed_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Milliseconds since the Unix epoch, as the simulator sees it.
    pub fn now_ms(&self) -> u64 {
        let elapsed = if self.frozen.load(Ordering::SeqCst) {
            self.frozen_elapsed_ms.load(Ordering::SeqCst)
        } else {
            self.real_elapsed_ms()
        };
        let now = i128::from(self.origin_unix_ms)
            + i128::from(elapsed)
            + i128::from(self.offset_ms.load(Ordering::SeqCst));
        u64::try_from(now).unwrap_or(0)
    }

    /// Seconds since the Unix epoch.
    pub fn now_secs(&self) -> u64 {
        self.now_ms() / 1000
    }

    /// Moves simulated time forward (never backward).
    pub fn advance(&self, by: Duration) {
        self.offset_ms.fetch_add(
            i64::try_from(by.as_millis()).unwrap_or(i64::MAX),
            Ordering::SeqCst,
        );
    }

    /// Stops real time from moving simulated time; only [`SimClock::advance`] does then.
    pub fn freeze(&self) {
        if !self.frozen.load(Ordering::SeqCst) {
            self.frozen_elapsed_ms
                .store(self.real_elapsed_ms(), Ordering::SeqCst);
            self.frozen.store(true, Ordering::SeqCst);
        }
    }

    /// Lets real time move simulated time again (the time spent frozen is skipped over).
    pub fn resume(&self) {
        if self.frozen.swap(false, Ordering::SeqCst) {
            let frozen_at = self.frozen_elapsed_ms.load(Ordering::SeqCst);
            let skipped = self.real_elapsed_ms().saturating_sub(frozen_at);
            // Keep "now" continuous: subtract the real time that passed while frozen.
            self.offset_ms
                .fetch_sub(i64::try_from(skipped).unwrap_or(i64::MAX), Ordering::SeqCst);
        }
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

    #[test]
    fn a_frozen_clock_moves_only_when_advanced() {
        let clock = SimClock::new();
        clock.freeze();
        let frozen = clock.now_ms();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(clock.now_ms(), frozen);
        clock.advance(Duration::from_secs(1));
        assert_eq!(clock.now_ms(), frozen + 1000);
        let real = Instant::now();
        clock.resume();
        let resumed = clock.now_ms();
        // Continuous: since resuming, simulated time has moved by at most the real time that
        // passed (+1 for whole milliseconds), not by the 20 ms spent frozen. The bound is
        // measured, not a guess at the machine's speed.
        let since_resume = u64::try_from(real.elapsed().as_millis()).expect("ms") + 1;
        assert!(
            (frozen + 1000..=frozen + 1000 + since_resume).contains(&resumed),
            "continuous: {resumed}, {since_resume} ms after resuming from {frozen} + 1000"
        );
    }
}
