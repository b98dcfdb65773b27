//! The pace of one kind of write: evenly spaced slots at a target rate, halved when the service
//! throttles, then raised back step by step while it stays quiet (additive increase,
//! multiplicative decrease). A `Retry-After` pauses every caller, not just the one that got it.
//!
//! Evenly spaced slots never burst, so a rate under the service's window (150 per 5 s for
//! invitations) never trips it on its own; what trips it is other apps sharing the tenant's
//! budget, which is what the adaptation answers.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::clock::{self, SharedClock};

/// How long the service must stay quiet before the rate goes up again.
const QUIET_BEFORE_INCREASE: Duration = Duration::from_secs(5);
/// Each increase adds this share of the target rate.
const INCREASE_STEP: f64 = 0.1;
/// Throttling within this long of a decrease belongs to the same episode.
const DECREASE_EPISODE: Duration = Duration::from_secs(2);
/// The rate never drops below this share of the target.
const FLOOR: f64 = 0.05;

/// Hands out send times at an adaptive rate. Shared by all the tasks of a run.
#[derive(Debug)]
pub struct Pacer {
    target: f64,
    clock: SharedClock,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    rate: f64,
    next_slot: Instant,
    paused_until: Instant,
    quiet_since: Instant,
    last_decrease: Instant,
    throttled: u64,
}

impl Pacer {
    /// A pacer at `per_second` (must be positive) on the system clock.
    pub fn new(per_second: f64) -> Self {
        Self::with_clock(per_second, clock::system())
    }

    /// A pacer at `per_second` (must be positive) that reads the time from `clock`.
    pub fn with_clock(per_second: f64, clock: SharedClock) -> Self {
        assert!(per_second > 0.0, "a pacer needs a positive rate");
        let now = clock.now();
        Self {
            target: per_second,
            clock,
            state: Mutex::new(State {
                rate: per_second,
                next_slot: now,
                paused_until: now,
                quiet_since: now,
                last_decrease: now.checked_sub(DECREASE_EPISODE).unwrap_or(now),
                throttled: 0,
            }),
        }
    }

    /// Waits for the next free slot.
    pub async fn acquire(&self) {
        let (now, slot) = self.reserve();
        tokio::time::sleep(slot.saturating_duration_since(now)).await;
    }

    /// Reserves the next slot at or after now; returns now and the slot.
    fn reserve(&self) -> (Instant, Instant) {
        let now = self.clock.now();
        let mut state = self.state.lock().expect("pacer lock");
        if state.rate < self.target
            && now.duration_since(state.quiet_since) >= QUIET_BEFORE_INCREASE
        {
            state.rate = (state.rate + self.target * INCREASE_STEP).min(self.target);
            state.quiet_since = now;
        }
        let slot = state.next_slot.max(state.paused_until).max(now);
        state.next_slot = slot + spacing(state.rate);
        (now, slot)
    }

    /// The service throttled a request: halve the rate and pause everyone for `retry_after`.
    pub fn throttled(&self, retry_after: Duration) {
        let now = self.clock.now();
        let mut state = self.state.lock().expect("pacer lock");
        // Requests in flight when the service starts refusing all come back throttled: that is
        // one signal, so the rate is halved once per episode, not once per refusal.
        if now >= state.last_decrease + DECREASE_EPISODE {
            state.rate = (state.rate / 2.0).max(self.target * FLOOR);
            state.last_decrease = now;
        }
        state.paused_until = state.paused_until.max(now + retry_after);
        state.quiet_since = now.max(state.paused_until);
        state.throttled += 1;
    }

    /// The rate in effect now, per second.
    pub fn rate(&self) -> f64 {
        self.state.lock().expect("pacer lock").rate
    }

    /// How many times the service throttled so far.
    pub fn throttled_count(&self) -> u64 {
        self.state.lock().expect("pacer lock").throttled
    }
}

/// The gap between slots at `rate`, rounded up to a whole microsecond so that `n` slots never
/// fit in a window the service allows only `n - 1` more in (at 30/s: 33,334 µs, not 33,333.3).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // a positive, bounded rate
fn spacing(rate: f64) -> Duration {
    Duration::from_micros((1_000_000.0 / rate).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::{Clock, ManualClock};

    fn paced(per_second: f64) -> (Arc<ManualClock>, Pacer) {
        let clock = Arc::new(ManualClock::new());
        let pacer = Pacer::with_clock(per_second, Arc::clone(&clock) as SharedClock);
        (clock, pacer)
    }

    fn slot(pacer: &Pacer) -> Instant {
        pacer.reserve().1
    }

    #[test]
    fn slots_are_evenly_spaced_at_the_target_rate() {
        let (clock, pacer) = paced(20.0);
        let start = clock.now();
        let slots: Vec<_> = (0..5).map(|_| slot(&pacer)).collect();
        for (i, slot) in slots.iter().enumerate() {
            let expected = Duration::from_millis(50 * i as u64);
            let got = slot.duration_since(start);
            assert!(got.abs_diff(expected) < Duration::from_millis(1), "{got:?}");
        }
    }

    #[test]
    fn no_window_of_five_seconds_gets_more_than_rate_times_five() {
        let (_clock, pacer) = paced(30.0);
        let slots: Vec<_> = (0..600).map(|_| slot(&pacer)).collect();
        for (i, first) in slots.iter().enumerate() {
            let in_window = slots[i..]
                .iter()
                .take_while(|s| s.duration_since(*first) < Duration::from_secs(5))
                .count();
            assert!(in_window <= 150, "{in_window} slots in 5 s from slot {i}");
        }
    }

    #[test]
    fn throttling_pauses_halves_then_recovers_when_quiet() {
        let (clock, pacer) = paced(20.0);
        let start = clock.now();
        slot(&pacer);
        pacer.throttled(Duration::from_secs(2));
        assert!((pacer.rate() - 10.0).abs() < f64::EPSILON);
        let next = slot(&pacer);
        assert!(
            next >= start + Duration::from_secs(2),
            "paused for Retry-After"
        );

        // Quiet for long enough: back up by a tenth of the target per quiet period.
        clock.advance(Duration::from_secs(2) + QUIET_BEFORE_INCREASE);
        slot(&pacer);
        assert!((pacer.rate() - 12.0).abs() < 1e-9, "{}", pacer.rate());
        for _ in 0..10 {
            clock.advance(QUIET_BEFORE_INCREASE);
            slot(&pacer);
        }
        assert!((pacer.rate() - 20.0).abs() < 1e-9, "never above the target");
        assert_eq!(pacer.throttled_count(), 1);
    }

    #[test]
    fn a_burst_of_refusals_halves_the_rate_once() {
        let (clock, pacer) = paced(20.0);
        clock.advance(DECREASE_EPISODE);
        for _ in 0..30 {
            pacer.throttled(Duration::from_secs(1));
        }
        assert!((pacer.rate() - 10.0).abs() < 1e-9, "{}", pacer.rate());
        assert_eq!(pacer.throttled_count(), 30);
    }

    #[test]
    fn the_rate_has_a_floor() {
        let (clock, pacer) = paced(20.0);
        for _ in 0..20 {
            clock.advance(DECREASE_EPISODE);
            pacer.throttled(Duration::ZERO);
        }
        assert!((pacer.rate() - 1.0).abs() < 1e-9);
    }

    #[tokio::test]
    async fn acquire_waits_only_as_long_as_the_clock_says() {
        let (clock, pacer) = paced(0.001);
        pacer.acquire().await; // the first slot is now
        // The next slot is 1,000 s away on the pacer's clock; once the clock has moved there,
        // acquiring does not wait.
        clock.advance(Duration::from_secs(1_000));
        tokio::time::timeout(Duration::from_secs(30), pacer.acquire())
            .await
            .expect("no real second is waited for");
    }
}
