//! The `waves` overview: one row per wave with its funnel (members, eligible, blocked, then
//! each state a member can be in) and its last run, as a table or JSON.
//!
//! Pure: a wave's stored counts and runs in, rows and text out. It must not read the store or
//! a clock.

use serde::Serialize;

use super::text::human_time;
use crate::domain::UserState;
use crate::output::terminal_safe;
use crate::store::{Run, Wave};

/// One wave's funnel (stable JSON: scripts read `waves --json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WaveRow {
    pub wave: String,
    /// When it was last planned (RFC 3339), if it was.
    pub planned_at: Option<String>,
    /// Members in its plan.
    pub planned: u64,
    pub eligible: u64,
    /// Members the plan excluded.
    pub blocked: u64,
    pub ready: u64,
    pub inviting: u64,
    pub invited: u64,
    pub accepted: u64,
    pub scrambled: u64,
    pub failed: u64,
    pub drifted: u64,
    /// The start of its last run (`run`, `invite`, `reinvite`, `scramble`), RFC 3339.
    pub last_run_at: Option<String>,
    pub last_run_command: Option<String>,
    pub last_run_status: Option<String>,
}

impl WaveRow {
    /// The row of `wave` from its state counts and its runs.
    pub fn new(wave: &Wave, counts: &[(UserState, u64)], runs: &[Run]) -> Self {
        let count = |state: UserState| {
            counts
                .iter()
                .filter(|(s, _)| *s == state)
                .map(|(_, n)| n)
                .sum::<u64>()
        };
        let planned: u64 = counts.iter().map(|(_, n)| n).sum();
        let blocked = count(UserState::Excluded);
        let last = runs.iter().max_by_key(|r| r.started_at);
        Self {
            wave: wave.name.clone(),
            planned_at: wave.planned_at.map(rfc3339),
            planned,
            eligible: planned - blocked,
            blocked,
            ready: count(UserState::Ready) + count(UserState::Planned),
            inviting: count(UserState::Inviting),
            invited: count(UserState::Invited),
            accepted: count(UserState::Accepted),
            scrambled: count(UserState::Scrambled),
            failed: count(UserState::Failed),
            drifted: count(UserState::Drifted),
            last_run_at: last.map(|r| rfc3339(r.started_at)),
            last_run_command: last.map(|r| r.command.clone()),
            last_run_status: last.map(|r| r.status.code().to_owned()),
        }
    }
}

fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The rows as a terminal table.
pub fn render(rows: &[WaveRow]) -> String {
    if rows.is_empty() {
        return "No waves yet: plan one with `b2b-convert plan --wave NAME ...`.\n".to_owned();
    }
    crate::output::table(
        [
            "wave",
            "planned",
            "eligible",
            "blocked",
            "ready",
            "inviting",
            "invited",
            "accepted",
            "scrambled",
            "failed",
            "drifted",
            "last run",
        ],
        rows.iter().map(|r| {
            let last = match (&r.last_run_at, &r.last_run_command, &r.last_run_status) {
                (Some(at), Some(command), Some(status)) => {
                    let at = time::OffsetDateTime::parse(
                        at,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .map_or_else(|_| at.clone(), human_time);
                    format!("{at} ({command}, {status})")
                }
                _ => "never".to_owned(),
            };
            [
                terminal_safe(&r.wave),
                r.planned.to_string(),
                r.eligible.to_string(),
                r.blocked.to_string(),
                r.ready.to_string(),
                r.inviting.to_string(),
                r.invited.to_string(),
                r.accepted.to_string(),
                r.scrambled.to_string(),
                r.failed.to_string(),
                r.drifted.to_string(),
                last,
            ]
        }),
    )
}
