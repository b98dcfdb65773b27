//! The pace of one kind of write: evenly spaced slots at a target rate that also respect the
//! service's own window (for invitations: 150 per 5 s per tenant), slowed when the service
//! throttles and raised back step by step while it stays quiet. A `Retry-After` pauses every
//! caller, not just the one that got it.
//!
//! Evenly spaced slots never burst, but the service counts requests when they reach it, and
//! that moment jitters: at the ceiling (30/s), 151 slots 33.3 ms apart span 5.0 s, and one
//! early arrival makes a 429. So when a [`Window`] is given, no slot is handed out while the
//! window before it, lengthened by a guard, already holds the window's limit less one. The guard
//! starts at [`INITIAL_GUARD`] (149 per 5.1 s: 29.2/s at the ceiling). A 429 tells which of two
//! things happened:
//! - our own requests filled the whole window (it held at least [`NEAR_THE_LIMIT`] of what the
//!   pacer lets it hold, and no other app was known to share it): the service counts them later,
//!   or less evenly, than we sent them. The guard grows by [`GUARD_GROWTH`], or to half the
//!   refused request's round trip when that is more (the service counted it somewhere within
//!   it), up to [`MAX_GUARD`], and stays so for the rest of the run — the cliff is remembered, not probed
//!   again — and the rate is left alone;
//! - otherwise other apps share the tenant's budget. The rate drops to just under what the
//!   service admitted over its window, not to half, and climbs back while it is quiet, more
//!   slowly than before (each step above the level they left us costs a 429 when they are
//!   still there).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::clock::{self, SharedClock};

/// How long the service must stay quiet before the rate goes up again.
const QUIET_BEFORE_INCREASE: Duration = Duration::from_secs(5);
/// Once other apps were found sharing the window, each step back up waits this many quiet
/// periods instead: the level they left us is remembered, and probing above it costs a 429 and
/// a pause for every caller.
const QUIET_PERIODS_AFTER_SHARING: u32 = 4;
/// Each increase adds this share of the target rate (and of the window's limit).
const INCREASE_STEP: f64 = 0.1;
/// Throttling within this long of a decrease belongs to the same episode.
const DECREASE_EPISODE: Duration = Duration::from_secs(2);
/// The rate never drops below this share of the target.
const FLOOR: f64 = 0.05;
/// After a 429, the rate resumes at this share of the rate the service admitted.
const UNDER_ADMITTED: f64 = 0.95;
/// How much later than we sent it the service may count a request at first (scheduling,
/// connection reuse, the network): the window is kept this much longer than the service's.
pub const INITIAL_GUARD: Duration = Duration::from_millis(100);
/// Each 429 of our own making lengthens the guard by this factor (100, 150, 225, 338 ms …):
/// by small steps, as every step lowers the pace at the ceiling for the rest of the run.
pub const GUARD_GROWTH: f64 = 1.5;
/// The widest the guard grows (149 per 6 s: 24.8/s), whatever the service does.
pub const MAX_GUARD: Duration = Duration::from_secs(1);
/// A 429 when the last window held at least this share of what the pacer lets it hold is of our
/// own making (the service counted our requests unevenly), not another app's.
pub const NEAR_THE_LIMIT: f64 = 0.95;

/// A service limit: at most `limit` requests in any `length` (a sliding window).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub limit: u32,
    pub length: Duration,
}

/// The invitation manager's limit (NOTES §8.2): 150 per 5 s per tenant, all apps together.
pub const INVITATION_WINDOW: Window = Window {
    limit: 150,
    length: Duration::from_secs(5),
};

/// Hands out send times at an adaptive rate. Shared by all the tasks of a run.
#[derive(Debug)]
pub struct Pacer {
    target: f64,
    window: Option<Window>,
    clock: SharedClock,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    rate: f64,
    next_slot: Instant,
    paused_until: Instant,
    quiet_since: Instant,
    /// How long the service must stay quiet before the next step up.
    climb_after: Duration,
    last_decrease: Instant,
    throttled: u64,
    /// With a window: the slots handed out over the last window (and guard), oldest first.
    granted: VecDeque<Instant>,
    /// With a window: when the service throttled over the last window, oldest first.
    refused: VecDeque<Instant>,
    /// With a window: how many slots one window may hold now (lowered after a 429).
    window_limit: f64,
    /// With a window: how much longer than the service's window ours is.
    guard: Duration,
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
            window: None,
            clock,
            state: Mutex::new(State {
                rate: per_second,
                next_slot: now,
                paused_until: now,
                quiet_since: now,
                climb_after: QUIET_BEFORE_INCREASE,
                last_decrease: now.checked_sub(DECREASE_EPISODE).unwrap_or(now),
                throttled: 0,
                granted: VecDeque::new(),
                refused: VecDeque::new(),
                window_limit: 0.0,
                guard: INITIAL_GUARD,
            }),
        }
    }

    /// Also keeps every stretch of `window.length` (plus the guard) under the window's limit,
    /// and after a 429 widens the guard or resumes just under the rate the service admitted.
    #[must_use]
    pub fn with_window(mut self, window: Window) -> Self {
        self.state.get_mut().expect("pacer lock").window_limit = f64::from(window.limit);
        self.window = Some(window);
        self
    }

    /// Waits for the next free slot (a wait [`super::InFlight`] does not count as busy time).
    pub async fn acquire(&self) {
        let (now, slot) = self.reserve();
        let wait = slot.saturating_duration_since(now);
        tokio::time::sleep(wait).await;
        super::in_flight::record_paced_wait(wait);
    }

    /// Reserves the next slot at or after now; returns now and the slot.
    fn reserve(&self) -> (Instant, Instant) {
        let now = self.clock.now();
        let mut state = self.state.lock().expect("pacer lock");
        if now.duration_since(state.quiet_since) >= state.climb_after {
            let mut raised = false;
            if state.rate < self.target {
                state.rate = (state.rate + self.target * INCREASE_STEP).min(self.target);
                raised = true;
            }
            if let Some(window) = self.window
                && state.window_limit < f64::from(window.limit)
            {
                state.window_limit = (state.window_limit + f64::from(window.limit) * INCREASE_STEP)
                    .min(f64::from(window.limit));
                raised = true;
            }
            if raised {
                state.quiet_since = now;
            } else {
                state.climb_after = QUIET_BEFORE_INCREASE;
            }
        }
        let mut slot = state.next_slot.max(state.paused_until).max(now);
        if let Some(window) = self.window {
            let span = window.length + state.guard;
            // One under the limit: the slot itself must fit too.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // 1..=limit
            let room = (state.window_limit.floor() as usize)
                .saturating_sub(1)
                .max(1);
            if state.granted.len() >= room {
                let earliest = state.granted[state.granted.len() - room] + span;
                slot = slot.max(earliest);
            }
            state.granted.push_back(slot);
            while state
                .granted
                .front()
                .is_some_and(|&first| first + span <= slot)
            {
                state.granted.pop_front();
            }
        }
        state.next_slot = slot + spacing(state.rate);
        (now, slot)
    }

    /// The service throttled a request that was answered `answered_after` it left: pause
    /// everyone for `retry_after` and slow down. With a window, either the guard widens (our own
    /// requests filled the window) or the rate drops to just under what the service admitted
    /// over it; without, the rate halves.
    pub fn throttled(&self, retry_after: Duration, answered_after: Duration) {
        let now = self.clock.now();
        let mut state = self.state.lock().expect("pacer lock");
        // Requests in flight when the service starts refusing all come back throttled: that is
        // one signal, so the rate drops once per episode, not once per refusal.
        let episode = now >= state.last_decrease + DECREASE_EPISODE;
        match self.window {
            Some(window) => {
                state.refused.push_back(now);
                let since = now.checked_sub(window.length).unwrap_or(now);
                while state.refused.front().is_some_and(|&t| t <= since) {
                    state.refused.pop_front();
                }
                if episode {
                    let sent: Vec<Instant> = state
                        .granted
                        .iter()
                        .copied()
                        .filter(|&slot| slot > since && slot <= now)
                        .collect();
                    #[allow(clippy::cast_precision_loss)] // at most a window's limit
                    let admitted = sent.len().saturating_sub(state.refused.len()) as f64;
                    // What the pacer lets a window of the service's length hold when it has
                    // the whole window (not lowered for other apps).
                    let whole = f64::from(window.limit);
                    let own_cap = (whole - 1.0) * window.length.as_secs_f64()
                        / (window.length + state.guard).as_secs_f64();
                    if state.window_limit >= whole && admitted >= own_cap * NEAR_THE_LIMIT {
                        // Our own window was full: keep the rate, keep a wider margin.
                        // The service counted the refused request at some moment between
                        // its leaving and its answer; half that time covers how far apart
                        // such moments fall for requests sent in order.
                        state.guard = state
                            .guard
                            .mul_f64(GUARD_GROWTH)
                            .max(answered_after / 2)
                            .min(MAX_GUARD);
                    } else {
                        state.window_limit = admitted.clamp(1.0, state.window_limit.max(1.0));
                        // Over the window, or since the first send when the run is younger.
                        let over = sent
                            .first()
                            .map_or(window.length, |&first| now.duration_since(first))
                            .clamp(Duration::from_secs(1), window.length);
                        let admitted_rate = admitted / over.as_secs_f64();
                        state.climb_after = QUIET_BEFORE_INCREASE * QUIET_PERIODS_AFTER_SHARING;
                        state.rate = (admitted_rate * UNDER_ADMITTED)
                            .min(state.rate)
                            .max(self.target * FLOOR);
                    }
                }
            }
            None if episode => {
                state.rate = (state.rate / 2.0).max(self.target * FLOOR);
            }
            None => {}
        }
        if episode {
            state.last_decrease = now;
        }
        state.paused_until = state.paused_until.max(now + retry_after);
        state.quiet_since = now.max(state.paused_until);
        state.throttled += 1;
    }

    /// How much longer than the service's window the pacer keeps its own.
    pub fn guard(&self) -> Duration {
        self.state.lock().expect("pacer lock").guard
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
        pacer.throttled(Duration::from_secs(2), Duration::ZERO);
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
            pacer.throttled(Duration::from_secs(1), Duration::ZERO);
        }
        assert!((pacer.rate() - 10.0).abs() < 1e-9, "{}", pacer.rate());
        assert_eq!(pacer.throttled_count(), 30);
    }

    #[test]
    fn the_rate_has_a_floor() {
        let (clock, pacer) = paced(20.0);
        for _ in 0..20 {
            clock.advance(DECREASE_EPISODE);
            pacer.throttled(Duration::ZERO, Duration::ZERO);
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

    fn windowed(per_second: f64) -> (Arc<ManualClock>, Pacer) {
        let clock = Arc::new(ManualClock::new());
        let pacer = Pacer::with_clock(per_second, Arc::clone(&clock) as SharedClock)
            .with_window(INVITATION_WINDOW);
        (clock, pacer)
    }

    #[test]
    fn at_the_ceiling_every_window_and_its_guard_holds_less_than_the_limit() {
        let (_clock, pacer) = windowed(30.0);
        let slots: Vec<_> = (0..3_000).map(|_| slot(&pacer)).collect();
        let span = INVITATION_WINDOW.length + INITIAL_GUARD;
        for (i, first) in slots.iter().enumerate() {
            let in_window = slots[i..]
                .iter()
                .take_while(|s| s.duration_since(*first) < span)
                .count();
            assert!(in_window < 150, "{in_window} slots in 5.1 s from slot {i}");
        }
        // Yet the pace stays close to the ceiling: at least 29.1 per second.
        let elapsed = slots.last().unwrap().duration_since(slots[0]).as_secs_f64();
        let rate = f64::from(u32::try_from(slots.len() - 1).unwrap()) / elapsed;
        assert!(rate >= 29.1, "{rate:.2}/s");
    }

    #[test]
    fn under_the_ceiling_the_window_changes_nothing() {
        let (clock, pacer) = windowed(24.0);
        let (plain_clock, plain) = paced(24.0);
        for _ in 0..500 {
            assert_eq!(
                slot(&pacer).duration_since(clock.now()),
                slot(&plain).duration_since(plain_clock.now())
            );
        }
    }

    #[test]
    fn after_a_429_it_resumes_just_under_what_the_service_admitted_not_at_half() {
        let (clock, pacer) = windowed(30.0);
        // Another app takes a third of the tenant's window: the service admits 100 of ours in
        // any 5 s and refuses the rest with a 1 s Retry-After.
        let mut admitted: VecDeque<Instant> = VecDeque::new();
        let mut refused = 0;
        let mut sent_at = Vec::new();
        let started = clock.now();
        while clock.now().duration_since(started) < Duration::from_secs(60) {
            let next = slot(&pacer);
            clock.advance(next.saturating_duration_since(clock.now()));
            let now = clock.now();
            while admitted
                .front()
                .is_some_and(|&t| now.duration_since(t) >= Duration::from_secs(5))
            {
                admitted.pop_front();
            }
            if admitted.len() >= 100 {
                refused += 1;
                pacer.throttled(Duration::from_secs(1), Duration::ZERO);
            } else {
                admitted.push_back(now);
                sent_at.push(now);
            }
        }
        // What got through over the last 20 s: just under the 20/s the service admits.
        let recent = sent_at
            .iter()
            .filter(|&&t| clock.now().duration_since(t) < Duration::from_secs(20))
            .count();
        let rate = f64::from(u32::try_from(recent).unwrap()) / 20.0;
        assert!(
            (17.0..=20.0).contains(&rate),
            "settles just under the 20/s admitted, not at 15/s: {rate}"
        );
        assert!(refused <= 12, "{refused} refusals in a minute");
        // Quiet again (the other app is done): it climbs back to the target.
        for _ in 0..20 {
            clock.advance(QUIET_BEFORE_INCREASE);
            slot(&pacer);
        }
        assert!((pacer.rate() - 30.0).abs() < 1e-9, "{}", pacer.rate());
    }

    #[test]
    fn a_429_early_in_a_run_is_measured_over_the_time_the_run_has_sent() {
        let (clock, pacer) = windowed(30.0);
        // Two seconds in: 60 sent, 59 admitted. That is 29.5/s, not 59 / 5 s = 11.8/s.
        for _ in 0..60 {
            let next = slot(&pacer);
            if next > clock.now() {
                clock.advance(next.duration_since(clock.now()));
            }
        }
        pacer.throttled(Duration::ZERO, Duration::ZERO);
        assert!(pacer.rate() > 27.0, "{}", pacer.rate());
    }

    /// A service that counts each request `delay()` after its slot against 150 per 5 s and
    /// refuses the rest with a 1 s `Retry-After`, answering a refusal when it counts it; and a
    /// client that retries each refusal in a new slot, until `conversions` are admitted. Returns
    /// the admitted rate from the first slot to the last admission, and the refusals.
    fn serve(
        pacer: &Pacer,
        clock: &ManualClock,
        conversions: usize,
        mut delay: impl FnMut() -> Duration,
    ) -> (f64, usize) {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let move_to = |at: Instant| clock.advance(at.saturating_duration_since(clock.now()));
        // (counted at, sent at), earliest count first.
        let mut in_flight: BinaryHeap<Reverse<(Instant, Instant)>> = BinaryHeap::new();
        let mut service = Service::default();
        let mut sent = 0;
        let started = clock.now();
        while service.admitted < conversions {
            if sent < conversions + service.refused {
                let slot = slot(pacer);
                // What the service counts before this slot reaches it, in order.
                while let Some(&Reverse((at, sent_at))) = in_flight.peek() {
                    if at > slot {
                        break;
                    }
                    in_flight.pop();
                    move_to(at);
                    service.count(pacer, at, sent_at);
                }
                move_to(slot);
                in_flight.push(Reverse((slot + delay(), slot)));
                sent += 1;
            } else if let Some(Reverse((at, sent_at))) = in_flight.pop() {
                move_to(at);
                service.count(pacer, at, sent_at);
            }
        }
        let elapsed = clock.now().duration_since(started).as_secs_f64();
        let rate = f64::from(u32::try_from(conversions).unwrap()) / elapsed;
        (rate, service.refused)
    }

    #[derive(Default)]
    struct Service {
        window: VecDeque<Instant>,
        admitted: usize,
        refused: usize,
    }

    impl Service {
        fn count(&mut self, pacer: &Pacer, at: Instant, sent_at: Instant) {
            while self
                .window
                .front()
                .is_some_and(|&t| at.duration_since(t) >= INVITATION_WINDOW.length)
            {
                self.window.pop_front();
            }
            if self.window.len() >= 150 {
                self.refused += 1;
                pacer.throttled(Duration::from_secs(1), at.duration_since(sent_at));
            } else {
                self.window.push_back(at);
                self.admitted += 1;
            }
        }
    }

    /// Deterministic delays, uniform in `low..high` milliseconds (splitmix64).
    fn delays(low: u64, high: u64) -> impl FnMut() -> Duration {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        move || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            Duration::from_micros(low * 1_000 + z % ((high - low) * 1_000))
        }
    }

    #[test]
    fn a_service_counting_on_arrival_admits_29_per_second_without_a_refusal() {
        // Arrival jitters by the client's scheduling and the network: 0–80 ms.
        let (clock, pacer) = windowed(30.0);
        let (rate, refused) = serve(&pacer, &clock, 3_000, delays(0, 80));
        assert_eq!(refused, 0);
        assert!(rate >= 29.0, "{rate:.2}/s");
        assert_eq!(pacer.guard(), INITIAL_GUARD);
    }

    #[test]
    fn a_service_counting_after_its_latency_widens_the_guard_and_keeps_the_rate() {
        // The pessimistic model: each request counts after 150–600 ms of the service's work, so
        // the service sees our evenly spaced requests shuffled by up to 450 ms.
        let (clock, pacer) = windowed(30.0);
        let (rate, refused) = serve(&pacer, &clock, 3_000, delays(150, 600));
        assert!(refused <= 6, "{refused} refusals of 3,000");
        assert!(rate >= 28.0, "{rate:.2}/s");
        assert!(pacer.guard() > INITIAL_GUARD, "{:?}", pacer.guard());
        assert!(
            (pacer.rate() - 30.0).abs() < 1e-9,
            "the rate was left alone"
        );
    }

    #[test]
    fn the_guard_never_grows_past_its_bound() {
        let (clock, pacer) = windowed(30.0);
        for _ in 0..10 {
            // A full window of our own, then a refusal.
            let until = clock.now() + Duration::from_secs(6);
            while clock.now() < until {
                let next = slot(&pacer);
                clock.advance(next.saturating_duration_since(clock.now()));
            }
            pacer.throttled(Duration::ZERO, Duration::ZERO);
        }
        assert_eq!(pacer.guard(), MAX_GUARD);
        assert!((pacer.rate() - 30.0).abs() < 1e-9, "{}", pacer.rate());
    }
}
