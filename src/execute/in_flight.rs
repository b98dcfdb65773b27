//! How many users a run (or a reinvite) keeps in flight at once. Fixed when the operator says
//! so (`--concurrency`); otherwise sized from what the run measures: to send `rate`
//! invitations per second when each user keeps a task busy for `t` seconds (reads, the `mail`
//! change, the invitation, recording), `rate × t` users must be in flight (Little's law), plus
//! [`HEADROOM`] for the spread of `t`, within [`ADAPTIVE_BOUND`].
//!
//! `t` leaves out the time a user waits for a pacer's slot ([`record_paced_wait`]): that wait
//! is the pace working, not the service being slow; counting it would make more users in
//! flight look necessary the more of them wait. Owns the sizing and its permits; it must not
//! decide the pace (that is [`super::Pacer`]'s).

use std::cell::Cell;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Users in flight are at most this many when the run sizes them itself.
pub const ADAPTIVE_BOUND: usize = 64;
/// ... and at least this many.
const ADAPTIVE_FLOOR: usize = 2;
/// `rate × t` is raised by this share, for the users that take longer than the average.
const HEADROOM: f64 = 1.25;
/// The weight of each new measurement in the running average of `t`.
const SMOOTHING: f64 = 0.2;

tokio::task_local! {
    /// The time the user in hand spent waiting for pacer slots (see [`InFlight::timed`]).
    static PACED_WAIT: Cell<Duration>;
}

/// How many users are in flight at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Concurrency {
    /// Exactly this many (`--concurrency N`, or one for `invite`).
    Fixed(usize),
    /// Sized from the measured time per user, starting at `start`.
    Adaptive { start: usize },
}

/// The permits of a run's users in flight.
#[derive(Debug)]
pub struct InFlight {
    permits: Arc<Semaphore>,
    rate: f64,
    adaptive: bool,
    sizing: Mutex<Sizing>,
}

#[derive(Debug)]
struct Sizing {
    /// How many users may be in flight now.
    target: usize,
    /// Permits in circulation (held or free); above `target` after a decrease, until enough
    /// come back.
    issued: usize,
    /// The running average of the busy time per user, in seconds.
    busy_seconds: Option<f64>,
}

/// A user's place in flight; hand it back with [`InFlight::leave`].
#[derive(Debug)]
pub struct Place(OwnedSemaphorePermit);

impl InFlight {
    /// Users in flight for a run at `rate` invitations per second.
    pub fn new(concurrency: Concurrency, rate: f64) -> Self {
        let (start, adaptive) = match concurrency {
            Concurrency::Fixed(n) => (n.max(1), false),
            Concurrency::Adaptive { start } => (start.clamp(ADAPTIVE_FLOOR, ADAPTIVE_BOUND), true),
        };
        Self {
            permits: Arc::new(Semaphore::new(start)),
            rate,
            adaptive,
            sizing: Mutex::new(Sizing {
                target: start,
                issued: start,
                busy_seconds: None,
            }),
        }
    }

    /// The most users that can ever be in flight: what the stream of users may buffer.
    pub fn bound(&self) -> usize {
        if self.adaptive {
            ADAPTIVE_BOUND
        } else {
            self.limit()
        }
    }

    /// How many users may be in flight now.
    pub fn limit(&self) -> usize {
        self.sizing.lock().expect("sizing lock").target
    }

    /// Waits for a place in flight.
    pub async fn enter(&self) -> Place {
        Place(
            Arc::clone(&self.permits)
                .acquire_owned()
                .await
                .expect("the semaphore is never closed"),
        )
    }

    /// Runs one user's work, and returns its output with the time it kept its place busy:
    /// the time it took, less the time it waited for pacer slots.
    pub async fn timed<T>(work: impl Future<Output = T>) -> (T, Duration) {
        let started = Instant::now();
        let (output, paced) = PACED_WAIT
            .scope(Cell::new(Duration::ZERO), async {
                let output = work.await;
                (output, PACED_WAIT.with(Cell::get))
            })
            .await;
        (output, started.elapsed().saturating_sub(paced))
    }

    /// Gives a place back after its user kept it `busy`, and resizes when adaptive.
    pub fn leave(&self, place: Place, busy: Duration) {
        let mut sizing = self.sizing.lock().expect("sizing lock");
        if self.adaptive {
            let seconds = busy.as_secs_f64();
            let average = sizing
                .busy_seconds
                .map_or(seconds, |average| average + SMOOTHING * (seconds - average));
            sizing.busy_seconds = Some(average);
            sizing.target = wanted(self.rate, average);
            if sizing.target > sizing.issued {
                self.permits.add_permits(sizing.target - sizing.issued);
                sizing.issued = sizing.target;
            }
        }
        if sizing.issued > sizing.target {
            // Fewer wanted now: this place is not handed out again.
            place.0.forget();
            sizing.issued -= 1;
        }
    }
}

/// Users to keep in flight at `rate` when each is busy `busy_seconds` on average.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // bounded, non-negative
fn wanted(rate: f64, busy_seconds: f64) -> usize {
    ((rate * busy_seconds * HEADROOM).ceil() as usize).clamp(ADAPTIVE_FLOOR, ADAPTIVE_BOUND)
}

/// Counts `waited` as time the user in hand waited for a pacer's slot (outside a user's work,
/// as when `discover` paces nothing, it is ignored).
pub fn record_paced_wait(waited: Duration) {
    let _ = PACED_WAIT.try_with(|paced| paced.set(paced.get() + waited));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_keeps_rate_times_busy_time_in_flight_within_bounds() {
        assert_eq!(wanted(24.0, 0.76), 23, "24/s × 0.76 s × 1.25");
        assert_eq!(wanted(24.0, 0.01), ADAPTIVE_FLOOR);
        assert_eq!(wanted(30.0, 10.0), ADAPTIVE_BOUND);
    }

    #[tokio::test]
    async fn an_adaptive_run_grows_to_what_the_latency_needs_and_shrinks_back() {
        let flight = InFlight::new(Concurrency::Adaptive { start: 16 }, 24.0);
        assert_eq!(flight.limit(), 16);
        for _ in 0..40 {
            let place = flight.enter().await;
            flight.leave(place, Duration::from_millis(760));
        }
        assert_eq!(flight.limit(), 23);
        assert_eq!(flight.permits.available_permits(), 23);
        for _ in 0..60 {
            let place = flight.enter().await;
            flight.leave(place, Duration::from_millis(90));
        }
        assert_eq!(flight.limit(), 3);
        assert_eq!(
            flight.permits.available_permits(),
            3,
            "the extra places are gone"
        );
    }

    #[tokio::test]
    async fn a_fixed_concurrency_never_changes() {
        let flight = InFlight::new(Concurrency::Fixed(4), 24.0);
        for _ in 0..20 {
            let place = flight.enter().await;
            flight.leave(place, Duration::from_secs(5));
        }
        assert_eq!(flight.limit(), 4);
        assert_eq!(flight.bound(), 4);
    }

    #[tokio::test]
    async fn time_waiting_for_a_pacer_is_not_busy_time() {
        let ((), busy) = InFlight::timed(async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            record_paced_wait(Duration::from_millis(40));
        })
        .await;
        assert!(busy >= Duration::from_millis(10), "{busy:?}");
        assert!(busy < Duration::from_millis(45), "{busy:?}");
        // Outside a user's work the wait goes nowhere.
        record_paced_wait(Duration::from_secs(1));
    }
}
