//! When to try a Graph request again, and how long to wait first (NOTES.md §8); and the one
//! loop that does it, for Graph calls, realm look-ups and token requests alike.
//!
//! [`RetryPolicy::verdict`] is pure policy: no I/O, no clock, randomness passed in. Reads are
//! retried on throttling (429) and transient failures (500, 502, 503, 504, connection errors)
//! honouring `Retry-After`, else with capped exponential backoff and full jitter. Writes are
//! retried only where the service cannot have acted (a 429, a connection that was never
//! established); everything else is an unknown outcome that the caller must reconcile, never a
//! blind resend.
//!
//! `drive` applies the policy: it runs the caller's attempts, asks the verdict after each
//! failure, waits and draws the jitter. It does nothing else: sending, reading answers and
//! logging each retry are the caller's.

use std::future::Future;
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// Whether repeating a request could change the tenant twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idempotency {
    /// GET and friends: repeating is harmless.
    Read,
    /// POST/PATCH: the first attempt may already have taken effect.
    Write,
    /// A write whose repetition changes nothing more (a PATCH setting `mail` to a fixed value):
    /// the first attempt may have taken effect, but sending it again is harmless, so a lost
    /// answer or a 5xx is retried like a read. Never for a write that creates something
    /// (`POST /invitations`).
    Repeatable,
}

/// What went wrong with one attempt, as far as retrying cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptFailure {
    /// The service answered with this status.
    Status(u16),
    /// No connection could be made: the request never left.
    ConnectFailed,
    /// The request may have been sent but no (complete) answer came back: timeout, reset.
    NoAnswer,
}

/// The verdict for one failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Wait this long, then send the request again.
    RetryAfter(Duration),
    /// Do not retry: the failure is final (or the attempts are used up).
    GiveUp,
    /// A write whose effect is unknown: reconcile with the tenant before anything else.
    OutcomeUnknown,
}

/// Bounded retries with exponential backoff.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included.
    pub max_attempts: u32,
    /// The first backoff step when the service gives no `Retry-After`.
    pub base_delay: Duration,
    /// No single wait is longer than this, whatever the service asks.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_mins(3),
        }
    }
}

impl RetryPolicy {
    /// Decides what to do after failed attempt number `attempt` (1-based). `retry_after` is the
    /// service's `Retry-After`, if any; `jitter` is a uniform random number in `[0, 1)`.
    pub fn verdict(
        &self,
        idempotency: Idempotency,
        failure: AttemptFailure,
        attempt: u32,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Verdict {
        let transient = match (idempotency, failure) {
            (_, AttemptFailure::Status(429) | AttemptFailure::ConnectFailed)
            | (
                Idempotency::Read | Idempotency::Repeatable,
                AttemptFailure::Status(500 | 502 | 503 | 504) | AttemptFailure::NoAnswer,
            ) => true,
            (Idempotency::Write, AttemptFailure::Status(500..=599) | AttemptFailure::NoAnswer) => {
                return Verdict::OutcomeUnknown;
            }
            _ => false,
        };
        if !transient || attempt >= self.max_attempts {
            return Verdict::GiveUp;
        }
        // The service's Retry-After is honoured in full: retrying earlier still counts against
        // the quota. Only our own backoff is capped.
        Verdict::RetryAfter(retry_after.unwrap_or_else(|| self.backoff(attempt, jitter)))
    }

    /// Full-jitter exponential backoff: a random wait in `[0, base * 2^(attempt-1)]`, at least
    /// a tenth of the step so a retry is never immediate.
    fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let step = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_delay);
        step.mul_f64(jitter.clamp(0.1, 1.0))
    }
}

/// What one attempt came to, as the caller tells [`drive`].
pub(crate) enum Attempt<T, E> {
    /// Finished, well or not: returned as it is, without asking the policy.
    Done(Result<T, E>),
    /// Send again at once, and do not count this attempt (a 401, after the token it was sent
    /// with has been dropped from the cache).
    Again,
    /// Failed: the policy decides whether to try again.
    Failed {
        failure: AttemptFailure,
        /// The service's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
        error: E,
    },
}

/// Where a request stands when one of its attempts starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Progress {
    /// This attempt's number, 1-based (attempts sent [`Attempt::Again`] do not count).
    pub attempt: u32,
    /// Time waited between the attempts so far.
    pub waited: Duration,
}

/// A retry about to happen, shown to the caller before the wait.
#[derive(Debug)]
pub(crate) struct Retry<'a, E> {
    /// The number of the attempt that failed.
    pub attempt: u32,
    pub failure: AttemptFailure,
    pub error: &'a E,
    /// How long [`drive`] will wait before the next attempt.
    pub wait: Duration,
}

/// Why [`drive`] ended without a value.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stop<E> {
    /// A final failure: the attempt said so, the policy gave up, or the caller refused the
    /// retry.
    Failed(E),
    /// A write that may have landed ([`Verdict::OutcomeUnknown`]): the last attempt's error,
    /// for the caller to turn into an unknown outcome. Never for a [`Idempotency::Read`].
    OutcomeUnknown(E),
}

impl<E> Stop<E> {
    /// The error, whichever way it ended (for reads, which never end in an unknown outcome).
    pub fn into_error(self) -> E {
        match self {
            Self::Failed(error) | Self::OutcomeUnknown(error) => error,
        }
    }
}

/// Sends a request through `attempt` until it succeeds or `policy` says to stop, waiting
/// between attempts as the verdict says. `before_retry` sees every retry before its wait
/// (to log it, report it, or refuse it with an error, which ends the request).
pub(crate) async fn drive<T, E, Fut>(
    policy: &RetryPolicy,
    idempotency: Idempotency,
    mut attempt: impl FnMut(Progress) -> Fut,
    mut before_retry: impl FnMut(&Retry<'_, E>) -> Result<(), E>,
) -> Result<T, Stop<E>>
where
    Fut: Future<Output = Attempt<T, E>>,
{
    let mut progress = Progress {
        attempt: 0,
        waited: Duration::ZERO,
    };
    loop {
        progress.attempt += 1;
        let (failure, retry_after, error) = match attempt(progress).await {
            Attempt::Done(Ok(value)) => return Ok(value),
            Attempt::Done(Err(error)) => return Err(Stop::Failed(error)),
            Attempt::Again => {
                progress.attempt -= 1;
                continue;
            }
            Attempt::Failed {
                failure,
                retry_after,
                error,
            } => (failure, retry_after, error),
        };
        let verdict = policy.verdict(
            idempotency,
            failure,
            progress.attempt,
            retry_after,
            rand::random::<f64>(),
        );
        match verdict {
            Verdict::RetryAfter(wait) => {
                before_retry(&Retry {
                    attempt: progress.attempt,
                    failure,
                    error: &error,
                    wait,
                })
                .map_err(Stop::Failed)?;
                tokio::time::sleep(wait).await;
                progress.waited += wait;
            }
            Verdict::GiveUp => return Err(Stop::Failed(error)),
            Verdict::OutcomeUnknown => return Err(Stop::OutcomeUnknown(error)),
        }
    }
}

/// The longest `Retry-After` taken as given; a longer one (or an absurd number) is read as this.
const LONGEST_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// Reads `Retry-After` as delay-seconds (what Graph sends; possibly decimal, `2.128` in
/// Microsoft's own sample, NOTES §8.2a) or an HTTP date. Without one (or with one that is not
/// a number of seconds or a date) the caller backs off exponentially with jitter.
pub fn retry_after(headers: &HeaderMap, now: std::time::SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if value.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let seconds: f64 = value.parse().ok()?;
        return Duration::try_from_secs_f64(seconds.min(LONGEST_RETRY_AFTER.as_secs_f64())).ok();
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;
    use rstest::rstest;

    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_secs(2),
        max_delay: Duration::from_secs(60),
    };
    const SECS: fn(u64) -> Duration = Duration::from_secs;

    #[rstest]
    #[case::read_throttled(
        Idempotency::Read,
        AttemptFailure::Status(429),
        Verdict::RetryAfter(SECS(7))
    )]
    #[case::read_unavailable(
        Idempotency::Read,
        AttemptFailure::Status(503),
        Verdict::RetryAfter(SECS(7))
    )]
    #[case::read_gateway_timeout(
        Idempotency::Read,
        AttemptFailure::Status(504),
        Verdict::RetryAfter(SECS(7))
    )]
    #[case::read_no_answer(
        Idempotency::Read,
        AttemptFailure::NoAnswer,
        Verdict::RetryAfter(SECS(7))
    )]
    #[case::read_server_error(
        Idempotency::Read,
        AttemptFailure::Status(500),
        Verdict::RetryAfter(SECS(7))
    )]
    #[case::read_not_implemented(Idempotency::Read, AttemptFailure::Status(501), Verdict::GiveUp)]
    #[case::read_bad_request(Idempotency::Read, AttemptFailure::Status(400), Verdict::GiveUp)]
    #[case::read_forbidden(Idempotency::Read, AttemptFailure::Status(403), Verdict::GiveUp)]
    #[case::write_throttled(
        Idempotency::Write,
        AttemptFailure::Status(429),
        Verdict::RetryAfter(SECS(7))
    )]
    #[case::write_never_connected(
        Idempotency::Write,
        AttemptFailure::ConnectFailed,
        Verdict::RetryAfter(SECS(7))
    )]
    #[case::write_unavailable(
        Idempotency::Write,
        AttemptFailure::Status(503),
        Verdict::OutcomeUnknown
    )]
    #[case::write_gateway_timeout(
        Idempotency::Write,
        AttemptFailure::Status(504),
        Verdict::OutcomeUnknown
    )]
    #[case::write_server_error(
        Idempotency::Write,
        AttemptFailure::Status(500),
        Verdict::OutcomeUnknown
    )]
    #[case::write_no_answer(Idempotency::Write, AttemptFailure::NoAnswer, Verdict::OutcomeUnknown)]
    #[case::write_bad_request(Idempotency::Write, AttemptFailure::Status(400), Verdict::GiveUp)]
    #[case::repeatable_unavailable(
        Idempotency::Repeatable,
        AttemptFailure::Status(503),
        Verdict::RetryAfter(SECS(7))
    )]
    #[case::repeatable_gateway_timeout(
        Idempotency::Repeatable,
        AttemptFailure::Status(504),
        Verdict::RetryAfter(SECS(7))
    )]
    #[case::repeatable_no_answer(
        Idempotency::Repeatable,
        AttemptFailure::NoAnswer,
        Verdict::RetryAfter(SECS(7))
    )]
    #[case::repeatable_throttled(
        Idempotency::Repeatable,
        AttemptFailure::Status(429),
        Verdict::RetryAfter(SECS(7))
    )]
    #[case::repeatable_bad_request(
        Idempotency::Repeatable,
        AttemptFailure::Status(400),
        Verdict::GiveUp
    )]
    fn verdicts(
        #[case] idempotency: Idempotency,
        #[case] failure: AttemptFailure,
        #[case] expected: Verdict,
    ) {
        assert_eq!(
            POLICY.verdict(idempotency, failure, 1, Some(SECS(7)), 0.5),
            expected
        );
    }

    #[test]
    fn attempts_are_bounded() {
        let throttled = AttemptFailure::Status(429);
        assert!(matches!(
            POLICY.verdict(Idempotency::Read, throttled, 3, None, 0.5),
            Verdict::RetryAfter(_)
        ));
        assert_eq!(
            POLICY.verdict(Idempotency::Read, throttled, 4, None, 0.5),
            Verdict::GiveUp
        );
    }

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        let wait = |attempt, jitter| match POLICY.verdict(
            Idempotency::Read,
            AttemptFailure::Status(503),
            attempt,
            None,
            jitter,
        ) {
            Verdict::RetryAfter(wait) => wait,
            other => panic!("{other:?}"),
        };
        assert_eq!(wait(1, 0.999_999), SECS(2).mul_f64(0.999_999));
        assert_eq!(wait(3, 0.5), SECS(4));
        assert_eq!(wait(2, 0.0), SECS(4).mul_f64(0.1), "never immediate");
        let long = RetryPolicy {
            max_attempts: 40,
            ..POLICY
        };
        match long.verdict(
            Idempotency::Read,
            AttemptFailure::Status(503),
            30,
            None,
            1.0,
        ) {
            Verdict::RetryAfter(wait) => assert_eq!(wait, SECS(60)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retry_after_is_honoured_in_full() {
        assert_eq!(
            POLICY.verdict(
                Idempotency::Read,
                AttemptFailure::Status(429),
                1,
                Some(SECS(600)),
                0.5
            ),
            Verdict::RetryAfter(SECS(600))
        );
    }

    /// Runs `drive` over scripted attempts; returns its result and the attempts it made.
    async fn driven(
        idempotency: Idempotency,
        script: Vec<Attempt<&'static str, String>>,
        veto: Option<u32>,
    ) -> (Result<&'static str, Stop<String>>, Vec<Progress>, Vec<u32>) {
        let policy = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        };
        let script = std::sync::Mutex::new(script.into_iter());
        let seen = std::sync::Mutex::new(Vec::new());
        let mut retried = Vec::new();
        let result = drive(
            &policy,
            idempotency,
            |progress| {
                seen.lock().unwrap().push(progress);
                let next = script
                    .lock()
                    .unwrap()
                    .next()
                    .expect("no more attempts scripted");
                async move { next }
            },
            |retry| {
                retried.push(retry.attempt);
                match veto {
                    Some(at) if at == retry.attempt => Err(format!("vetoed: {}", retry.error)),
                    _ => Ok(()),
                }
            },
        )
        .await;
        (result, seen.into_inner().unwrap(), retried)
    }

    fn failed(status: u16) -> Attempt<&'static str, String> {
        Attempt::Failed {
            failure: AttemptFailure::Status(status),
            retry_after: Some(Duration::ZERO),
            error: format!("status {status}"),
        }
    }

    #[tokio::test]
    async fn the_driver_retries_transient_failures_until_success() {
        let (result, seen, retried) = driven(
            Idempotency::Read,
            vec![failed(503), failed(429), Attempt::Done(Ok("ok"))],
            None,
        )
        .await;
        assert_eq!(result, Ok("ok"));
        assert_eq!(
            seen.iter().map(|p| p.attempt).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(retried, [1, 2], "every retry is shown before its wait");
    }

    #[tokio::test]
    async fn an_again_is_not_counted_and_the_attempts_stay_bounded() {
        let (result, seen, _) = driven(
            Idempotency::Read,
            vec![failed(503), Attempt::Again, failed(503), failed(503)],
            None,
        )
        .await;
        assert_eq!(result, Err(Stop::Failed("status 503".into())));
        assert_eq!(
            seen.iter().map(|p| p.attempt).collect::<Vec<_>>(),
            [1, 2, 2, 3],
            "the attempt after an Again keeps its number; three counted attempts in all"
        );
    }

    #[tokio::test]
    async fn a_write_that_may_have_landed_is_not_sent_again() {
        let (result, seen, retried) = driven(Idempotency::Write, vec![failed(503)], None).await;
        assert_eq!(result, Err(Stop::OutcomeUnknown("status 503".into())));
        assert_eq!(seen.len(), 1, "sent once");
        assert!(retried.is_empty());
        let (result, seen, _) = driven(
            Idempotency::Write,
            vec![failed(429), Attempt::Done(Ok("created"))],
            None,
        )
        .await;
        assert_eq!(result, Ok("created"), "a 429 was not acted on: sent again");
        assert_eq!(seen.len(), 2);
    }

    #[tokio::test]
    async fn final_failures_and_vetoed_retries_stop_at_once() {
        let (result, seen, _) = driven(
            Idempotency::Read,
            vec![Attempt::Done(Err("not found".into()))],
            None,
        )
        .await;
        assert_eq!(result, Err(Stop::Failed("not found".into())));
        assert_eq!(seen.len(), 1);
        let (result, seen, _) = driven(Idempotency::Read, vec![failed(503)], Some(1)).await;
        assert_eq!(result, Err(Stop::Failed("vetoed: status 503".into())));
        assert_eq!(seen.len(), 1);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = std::time::UNIX_EPOCH + SECS(1_000_000_000);
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers, now), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("12"));
        assert_eq!(retry_after(&headers, now), Some(SECS(12)));
        let later = httpdate::fmt_http_date(now + SECS(30));
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        assert_eq!(retry_after(&headers, now), Some(SECS(30)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn retry_after_may_be_decimal_seconds() {
        let now = std::time::UNIX_EPOCH;
        let mut headers = HeaderMap::new();
        for (value, expected) in [
            ("2.128", Some(Duration::from_millis(2_128))),
            ("0.249", Some(Duration::from_millis(249))),
            ("0", Some(Duration::ZERO)),
            ("1e3", None),
            ("-1", None),
            ("1.2.3", None),
            ("99999999999999999999", Some(LONGEST_RETRY_AFTER)),
        ] {
            headers.insert(RETRY_AFTER, HeaderValue::from_static(value));
            assert_eq!(retry_after(&headers, now), expected, "{value}");
        }
    }
}
