//! Tenant-wide refusals of `POST /invitations` that are not throttling (NOTES §8.2a): the
//! abuse block ("Invitations are blocked for this directory due to suspicious activity…",
//! observed) and a daily invitation quota (its wording and status are unverified: the
//! simulator's are chosen, see docs/simulator.md).
//!
//! Owns the record of when invitations were created and the decision whether the next one
//! may be. Switched on by the `invitations` faults `abuse-after=N` and `daily-quota=N`
//! ([`crate::faults::FaultSpec`]). It must not touch the directory or build responses: the
//! invitations handler holds [`InvitationLimits::lock`] across its check, the directory's
//! work and [`Ledger::created`], so concurrent requests cannot slip past a limit together.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

/// The quota's window: a rolling day of simulator time.
pub const QUOTA_WINDOW_MS: u64 = 24 * 60 * 60 * 1000;

/// The abuse block's message, as reported (Microsoft Q&A, 2026).
pub const ABUSE_BLOCK_MESSAGE: &str = "Invitations are blocked for this directory due to suspicious activity. Please contact Microsoft support to have the directory reviewed.";

/// Why the next invitation is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The abuse block: 403, every invitation from now on.
    AbuseBlock,
    /// The daily quota is used up until `resume_at_ms` (simulator time), when the oldest
    /// invitation counted leaves the window.
    Quota { limit: u64, resume_at_ms: u64 },
}

/// The creation times of invitations; one per simulator.
#[derive(Debug, Default)]
pub struct InvitationLimits {
    ledger: Mutex<Ledger>,
}

/// The record behind the lock.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Invitations created since the simulator started.
    total: u64,
    /// Creation times (simulator ms) within the last window, oldest first.
    recent: VecDeque<u64>,
}

impl InvitationLimits {
    /// Holds the record for one invitation request.
    pub fn lock(&self) -> MutexGuard<'_, Ledger> {
        crate::lock(&self.ledger)
    }
}

impl Ledger {
    /// Whether an invitation at `now_ms` is refused: the abuse block once `abuse_after`
    /// invitations were created, the quota once `daily_quota` were created in the last
    /// [`QUOTA_WINDOW_MS`].
    pub fn refusal(
        &mut self,
        abuse_after: Option<u64>,
        daily_quota: Option<u64>,
        now_ms: u64,
    ) -> Option<Refusal> {
        if abuse_after.is_some_and(|n| self.total >= n) {
            return Some(Refusal::AbuseBlock);
        }
        while self
            .recent
            .front()
            .is_some_and(|&at| at + QUOTA_WINDOW_MS <= now_ms)
        {
            self.recent.pop_front();
        }
        let limit = daily_quota?;
        let count = self.recent.len() as u64;
        if count < limit {
            return None;
        }
        // The (count - limit + 1)-th oldest must leave before one more fits.
        let index = usize::try_from(count - limit).unwrap_or(usize::MAX);
        let resume_at_ms = self
            .recent
            .get(index)
            .map_or(now_ms, |&at| at + QUOTA_WINDOW_MS);
        Some(Refusal::Quota {
            limit,
            resume_at_ms,
        })
    }

    /// An invitation was created at `now_ms`.
    pub fn created(&mut self, now_ms: u64) {
        self.total += 1;
        self.recent.push_back(now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_abuse_block_falls_after_n_invitations_and_stays() {
        let mut ledger = Ledger::default();
        for i in 0..3 {
            assert_eq!(ledger.refusal(Some(3), None, i), None);
            ledger.created(i);
        }
        assert_eq!(ledger.refusal(Some(3), None, 10), Some(Refusal::AbuseBlock));
        assert_eq!(
            ledger.refusal(Some(3), None, 10 + 2 * QUOTA_WINDOW_MS),
            Some(Refusal::AbuseBlock),
            "no self-service unblock: time does not lift it"
        );
    }

    #[test]
    fn the_quota_counts_a_rolling_day_and_says_when_it_frees() {
        let mut ledger = Ledger::default();
        ledger.created(1_000);
        ledger.created(5_000);
        assert_eq!(
            ledger.refusal(None, Some(2), 6_000),
            Some(Refusal::Quota {
                limit: 2,
                resume_at_ms: 1_000 + QUOTA_WINDOW_MS
            })
        );
        assert_eq!(ledger.refusal(None, Some(2), 1_000 + QUOTA_WINDOW_MS), None);
        ledger.created(1_000 + QUOTA_WINDOW_MS);
        // A lowered quota waits for more than the oldest to leave.
        assert_eq!(
            ledger.refusal(None, Some(1), 2_000 + QUOTA_WINDOW_MS),
            Some(Refusal::Quota {
                limit: 1,
                resume_at_ms: 1_000 + 2 * QUOTA_WINDOW_MS
            })
        );
    }
}
