//! "Now", passed in: the token cache (`graph::auth`) and the pacer (`execute::Pacer`) read the
//! time through a [`Clock`], so a test moves a [`ManualClock`] forward instead of sleeping.
//! Everything else gets [`SystemClock`] by default.
//!
//! It owns reading the time and nothing else. It must not sleep (waiting stays with tokio, in
//! real time), and pure modules (`rules`, `report`, `verify`) never read it: they take "now" as
//! a value from their caller.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

/// A source of the current time.
pub trait Clock: fmt::Debug + Send + Sync {
    /// Monotonic time: deadlines, intervals, cache lifetimes.
    fn now(&self) -> Instant;
    /// Calendar time, UTC: for times other parties stamp (a token's `exp`, an assertion's
    /// `iat`).
    fn now_utc(&self) -> OffsetDateTime;
}

/// A clock shared by the parts of a client or a run.
pub type SharedClock = Arc<dyn Clock>;

/// The system's clock: what every command uses.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// The operating system's monotonic and calendar clocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn now_utc(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that stands still until [`advance`](Self::advance) moves it: for tests. It starts
/// at the real time of its creation, so its instants mean something to tokio too.
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    start_utc: OffsetDateTime,
    elapsed: Mutex<Duration>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            start_utc: OffsetDateTime::now_utc(),
            elapsed: Mutex::new(Duration::ZERO),
        }
    }

    /// Moves the clock forward by `by` (it never goes back).
    pub fn advance(&self, by: Duration) {
        *self.elapsed.lock().expect("clock lock") += by;
    }

    fn elapsed(&self) -> Duration {
        *self.elapsed.lock().expect("clock lock")
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + self.elapsed()
    }

    fn now_utc(&self) -> OffsetDateTime {
        self.start_utc + self.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_both_faces_together() {
        let clock = ManualClock::new();
        let (instant, utc) = (clock.now(), clock.now_utc());
        assert_eq!(clock.now(), instant);
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now() - instant, Duration::from_secs(90));
        assert_eq!(clock.now_utc() - utc, time::Duration::seconds(90));
    }
}
