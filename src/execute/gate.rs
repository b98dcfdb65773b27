//! The gate every invitation of a run passes on its way out: a circuit breaker that shuts for
//! good when the service refuses invitations for the whole tenant (the abuse block, a quota
//! refusal: [`TenantRefusal`]), and the daily quota of `throughput.max_invitations_per_day`,
//! counted over a rolling 24 h from the invitations the event log shows (every run, wave and
//! `invite`) plus those of this run.
//!
//! It owns the decision whether one more invitation may go, and why a run stopped sending
//! ([`Halt`]). It must not send, record or print anything, and it reads no clock: the executor
//! passes "now", records what happened to each user, and the command renders the [`Halt`].
//!
//! A user takes a [`Slot`] before anything is done for it (no `mail` is set for a user the
//! quota has no room for), and spends it right before its invitation's intent is recorded.
//! The quota closes the gate as soon as every remaining invitation of the day is spoken for;
//! users holding a slot then still go (their invitations fit). The breaker stops everything
//! not yet sent, slots or not.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

use crate::graph::{self, invitations::TenantRefusal};

/// The quota's window.
pub const QUOTA_WINDOW: time::Duration = time::Duration::DAY;

/// A tenant younger than this has a daily B2B invitation quota (NOTES §8.2a).
pub const YOUNG_TENANT: time::Duration = time::Duration::days(30);

/// The daily invitation quota of a paid tenant younger than [`YOUNG_TENANT`] (an unpaid one:
/// 10 when new, then 100).
pub const YOUNG_TENANT_DAILY_INVITATIONS: u64 = 200;

/// What to tell the operator about a tenant created at `created_at`, as of `now`: nothing
/// unless it is younger than 30 days, and, when `invitations` (a wave's users to invite) is
/// given, unless they are more than a young tenant's 200 a day.
pub fn young_tenant_warning(
    created_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
    invitations: Option<u64>,
) -> Option<String> {
    let created_at = created_at?;
    let age = now - created_at;
    if age >= YOUNG_TENANT || invitations.is_some_and(|n| n <= YOUNG_TENANT_DAILY_INVITATIONS) {
        return None;
    }
    let wave = invitations.map_or(String::new(), |n| {
        format!("; this wave has {n} users to invite, more than one day's quota")
    });
    Some(format!(
        "the tenant was created {} ({} day(s) ago): Microsoft allows a paid tenant younger than 30 days {YOUNG_TENANT_DAILY_INVITATIONS} B2B invitations a day (an unpaid one 10, later 100), and conversions may count{wave}. Set throughput.max_invitations_per_day so runs stop cleanly at the quota and resume the next day",
        utc(&created_at),
        age.whole_days(),
    ))
}

/// Why a run stopped sending invitations. Each says what the operator does next.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum Halt {
    /// The abuse block: nothing more is sent until Microsoft support lifts it.
    #[error(
        "Microsoft's abuse protection blocked invitations from this tenant (403: {message}; request-id {request_id}); no further invitation was sent. Only Microsoft support can lift the block: open a support request with this request id. After it is lifted, run the same command again: it resumes where this run stopped, without inviting anyone twice"
    )]
    AbuseBlock { message: String, request_id: String },
    /// The service refused an invitation for a quota.
    #[error(
        "the service refused invitations for a quota ({status}: {message}; request-id {request_id}); no further invitation was sent; resume after {} (24 h after the oldest invitation of the last 24 h in the event log) by running the same command again: it resumes where this run stopped",
        utc(resume_after)
    )]
    ServiceQuota {
        status: u16,
        message: String,
        request_id: String,
        #[serde(with = "time::serde::rfc3339")]
        resume_after: OffsetDateTime,
    },
    /// `throughput.max_invitations_per_day` is used up.
    #[error(
        "daily invitation quota of {limit} reached; resume after {} (throughput.max_invitations_per_day counts the invitations of the last 24 h, from the event log): run the same command again then, it resumes where this run stopped",
        utc(resume_after)
    )]
    DailyQuota {
        limit: u32,
        #[serde(with = "time::serde::rfc3339")]
        resume_after: OffsetDateTime,
    },
}

/// `at` as an ISO 8601 UTC time, rounded up to the whole second (never earlier than `at`).
fn utc(at: &OffsetDateTime) -> String {
    let whole = if at.nanosecond() == 0 {
        *at
    } else {
        at.replace_nanosecond(0).unwrap_or(*at) + time::Duration::SECOND
    };
    whole
        .to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}

impl Halt {
    /// Whether the service itself refuses: then nothing not yet sent may go, not even a user
    /// holding a slot.
    fn is_the_services(&self) -> bool {
        matches!(self, Self::AbuseBlock { .. } | Self::ServiceQuota { .. })
    }

    /// Whether a quota stopped the run (the run resumes by itself after a time), not a block
    /// that needs people.
    pub fn is_quota(&self) -> bool {
        matches!(self, Self::ServiceQuota { .. } | Self::DailyQuota { .. })
    }
}

/// Shared by the tasks of one run.
#[derive(Debug)]
pub struct InvitationGate {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    halt: Option<Halt>,
    limit: Option<NonZeroU32>,
    /// Invitations sent in the window, oldest first: the event log's, then this run's.
    sent: VecDeque<OffsetDateTime>,
    /// Slots taken and not yet spent or given back.
    reserved: u32,
}

/// Room for one invitation, held from a user's start to its invitation. Given back when
/// dropped unspent.
#[derive(Debug)]
#[must_use = "a slot is spent right before the invitation, or given back when dropped"]
pub struct Slot {
    gate: Arc<InvitationGate>,
    spent: bool,
}

impl InvitationGate {
    /// An open gate. `sent` are the times of the invitations sent in the last 24 h (from the
    /// event log, any order); `limit` is `throughput.max_invitations_per_day`.
    pub fn new(limit: Option<NonZeroU32>, mut sent: Vec<OffsetDateTime>) -> Arc<Self> {
        sent.sort_unstable();
        Arc::new(Self {
            state: Mutex::new(State {
                halt: None,
                limit,
                sent: sent.into(),
                reserved: 0,
            }),
        })
    }

    /// Counts the invitations the event log shows sent (any order), in place of those counted
    /// so far: the log has every invitation this gate let through, once its intent is recorded.
    pub fn remember_sent(&self, mut times: Vec<OffsetDateTime>) {
        times.sort_unstable();
        self.lock().sent = times.into();
    }

    /// A slot for one user's invitation at `now`, or why there is none. Closes the gate when
    /// the day's quota is spoken for.
    pub fn reserve(self: &Arc<Self>, now: OffsetDateTime) -> Result<Slot, Halt> {
        let mut state = self.lock();
        if let Some(halt) = &state.halt {
            return Err(halt.clone());
        }
        state.forget_before(now);
        if let Some(limit) = state.limit {
            let spoken_for = state.sent.len() + state.reserved as usize;
            if spoken_for >= limit.get() as usize {
                let halt = Halt::DailyQuota {
                    limit: limit.get(),
                    resume_after: state.resume_after(limit.get(), now),
                };
                state.halt = Some(halt.clone());
                return Err(halt);
            }
        }
        state.reserved += 1;
        Ok(Slot {
            gate: Arc::clone(self),
            spent: false,
        })
    }

    /// Why the gate is closed, if it is.
    pub fn halt(&self) -> Option<Halt> {
        self.lock().halt.clone()
    }

    /// Whether nothing more may be sent now, slot or not: the service refused the tenant.
    pub fn is_blocked(&self) -> Option<Halt> {
        self.lock().halt.clone().filter(Halt::is_the_services)
    }

    /// Looks at a failed invitation: a tenant-wide refusal closes the gate for good (the first
    /// one seen gives the reason). Returns the refusal when it was one.
    pub fn observe(&self, error: &graph::Error, now: OffsetDateTime) -> Option<Halt> {
        let refusal = error.tenant_refusal()?;
        let graph::Error::Api(api) = error else {
            return None;
        };
        let mut state = self.lock();
        state.forget_before(now);
        let halt = match refusal {
            TenantRefusal::AbuseBlock => Halt::AbuseBlock {
                message: api.message.clone(),
                request_id: api.request_id.clone(),
            },
            TenantRefusal::Quota => Halt::ServiceQuota {
                status: api.status,
                message: api.message.clone(),
                request_id: api.request_id.clone(),
                resume_after: state.sent.front().map_or(now, |oldest| *oldest) + QUOTA_WINDOW,
            },
        };
        // A service refusal outranks our own quota: it stops users holding slots too.
        if !state.halt.as_ref().is_some_and(Halt::is_the_services) {
            state.halt = Some(halt.clone());
        }
        Some(halt)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("gate lock")
    }
}

impl Slot {
    /// The invitation goes now: counted. Refused (the slot given back) when the service has
    /// refused the tenant since the slot was taken.
    pub fn spend(mut self, now: OffsetDateTime) -> Result<(), Halt> {
        let mut state = self.gate.lock();
        state.reserved -= 1;
        self.spent = true;
        if let Some(halt) = state.halt.clone().filter(Halt::is_the_services) {
            return Err(halt);
        }
        state.sent.push_back(now);
        Ok(())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.spent {
            self.gate.lock().reserved -= 1;
        }
    }
}

impl State {
    fn forget_before(&mut self, now: OffsetDateTime) {
        while self
            .sent
            .front()
            .is_some_and(|&at| at + QUOTA_WINDOW <= now)
        {
            self.sent.pop_front();
        }
    }

    /// When one more invitation fits under `limit`: when enough of those sent or spoken for
    /// have left the window. Those spoken for but not yet sent go at about `now`.
    fn resume_after(&self, limit: u32, now: OffsetDateTime) -> OffsetDateTime {
        let spoken_for = self.sent.len() + self.reserved as usize;
        // The (spoken_for - limit + 1)-th oldest must leave the window.
        let index = spoken_for.saturating_sub(limit as usize);
        self.sent.get(index).map_or(now, |at| *at) + QUOTA_WINDOW
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::graph::ApiError;

    const T0: OffsetDateTime = datetime!(2026-12-06 08:00 UTC);

    fn minutes(n: i64) -> OffsetDateTime {
        T0 + time::Duration::minutes(n)
    }

    fn limit(n: u32) -> Option<NonZeroU32> {
        NonZeroU32::new(n)
    }

    fn refused(status: u16, message: &str) -> graph::Error {
        graph::Error::Api(Box::new(ApiError {
            method: "POST".into(),
            path: "/v1.0/invitations".into(),
            status,
            code: "Forbidden".into(),
            message: message.into(),
            request_id: "req-9".into(),
            client_request_id: "c".into(),
            retry_after: None,
        }))
    }

    #[test]
    fn the_quota_counts_the_log_and_this_run_and_says_when_to_resume() {
        let gate = InvitationGate::new(limit(3), vec![minutes(-60), minutes(-30)]);
        gate.reserve(T0).unwrap().spend(T0).unwrap();
        let halt = gate.reserve(minutes(1)).unwrap_err();
        assert_eq!(
            halt,
            Halt::DailyQuota {
                limit: 3,
                resume_after: minutes(-60) + QUOTA_WINDOW
            }
        );
        assert!(
            halt.to_string()
                .contains("daily invitation quota of 3 reached; resume after 2026-12-07T07:00:00Z"),
            "{halt}"
        );
        assert_eq!(
            gate.halt(),
            Some(halt),
            "the gate stays closed for this run"
        );
    }

    #[test]
    fn invitations_older_than_a_day_do_not_count() {
        let gate = InvitationGate::new(limit(1), vec![minutes(-24 * 60)]);
        gate.reserve(T0).unwrap().spend(T0).unwrap();
    }

    #[test]
    fn slots_in_hand_still_go_when_the_quota_closes_and_unspent_ones_are_given_back() {
        let gate = InvitationGate::new(limit(2), vec![]);
        let first = gate.reserve(T0).unwrap();
        let second = gate.reserve(T0).unwrap();
        assert!(gate.reserve(T0).is_err(), "both remaining are spoken for");
        first.spend(minutes(1)).unwrap();
        drop(second);
        assert_eq!(gate.lock().reserved, 0);
        assert_eq!(gate.lock().sent.len(), 1);
    }

    #[test]
    fn the_abuse_block_stops_everything_not_yet_sent() {
        let gate = InvitationGate::new(None, vec![]);
        let held = gate.reserve(T0).unwrap();
        let halt = gate
            .observe(
                &refused(
                    403,
                    "Invitations are blocked for this directory due to suspicious activity.",
                ),
                T0,
            )
            .unwrap();
        assert!(matches!(halt, Halt::AbuseBlock { ref request_id, .. } if request_id == "req-9"));
        assert!(!halt.is_quota());
        let text = halt.to_string();
        assert!(text.contains("Microsoft support") && text.contains("run the same command again"));
        assert_eq!(
            held.spend(T0),
            Err(halt.clone()),
            "a slot in hand does not go"
        );
        assert_eq!(gate.reserve(T0).unwrap_err(), halt);
        assert_eq!(gate.is_blocked(), Some(halt));
    }

    #[test]
    fn a_service_quota_says_when_the_oldest_invitation_of_the_day_leaves_it() {
        let gate = InvitationGate::new(None, vec![minutes(-90), minutes(-10)]);
        let halt = gate
            .observe(&refused(429, "Invitation quota exceeded."), T0)
            .unwrap();
        assert!(halt.is_quota());
        assert!(
            matches!(halt, Halt::ServiceQuota { resume_after, .. } if resume_after == minutes(-90) + QUOTA_WINDOW)
        );
        assert_eq!(gate.is_blocked(), Some(halt));
    }

    #[test]
    fn a_young_tenant_is_warned_about_when_a_wave_outgrows_its_day() {
        let created = Some(T0 - time::Duration::days(5));
        let text = young_tenant_warning(created, T0, None).unwrap();
        assert!(text.contains("5 day(s) ago") && text.contains("200 B2B invitations a day"));
        assert!(
            young_tenant_warning(created, T0, Some(201))
                .unwrap()
                .contains("this wave has 201 users to invite")
        );
        assert_eq!(young_tenant_warning(created, T0, Some(200)), None);
        let old = Some(T0 - YOUNG_TENANT);
        assert_eq!(young_tenant_warning(old, T0, Some(10_000)), None);
        assert_eq!(young_tenant_warning(None, T0, Some(10_000)), None);
    }

    #[test]
    fn other_failures_leave_the_gate_open() {
        let gate = InvitationGate::new(None, vec![]);
        assert_eq!(
            gate.observe(&refused(400, "Invalid request input."), T0),
            None
        );
        assert_eq!(
            gate.observe(
                &refused(403, "Insufficient privileges to complete the operation."),
                T0
            ),
            None
        );
        assert_eq!(gate.halt(), None);
    }
}
