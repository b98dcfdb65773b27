//! `status`: a wave's funnel (planned → invited → accepted …) and the age of pending
//! invitations, from the store; with `--refresh`, redemption states are read from Graph first
//! (read-only on the tenant) and newly accepted users recorded by
//! [`crate::execute::redemptions`]. With `--pending`, the members who have not redeemed,
//! oldest first ([`crate::report::pending`]), after the refresh when both are asked.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use time::{Duration, OffsetDateTime};

use super::{Ctx, Outcome, connect, stored_wave};
use crate::cli::StatusArgs;
use crate::domain::{FailureKind, UserState};
use crate::execute::redemptions::{Invited, Refresh};
use crate::output;
use crate::report::pending;
use crate::store::{MailRestore, Store, Wave};

/// What `status --json` prints (stable: scripts read it).
#[derive(Debug, Serialize)]
struct Status {
    wave: String,
    generated_at: String,
    members: u64,
    /// Members by state, every state present (zero when none).
    states: BTreeMap<&'static str, u64>,
    failed_retryable: u64,
    failed_permanent: u64,
    /// Permanent failures whose `mail`, set by `run`, was put back.
    mail_restored: u64,
    /// Permanent failures whose `mail` could not be put back (by UPN): never silent.
    mail_restore_failed: Vec<String>,
    pending: Pending,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh: Option<Refresh>,
}

impl output::JsonDocument for Status {
    const SCHEMA: &'static str = "status";
    const VERSION: u32 = 1;
}

/// What `status --pending --json` prints: who has not redeemed, oldest invitation first.
#[derive(Serialize)]
struct PendingDocument<'a> {
    wave: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    generated_at: OffsetDateTime,
    users: &'a [pending::PendingRow],
}

impl output::JsonDocument for PendingDocument<'_> {
    const SCHEMA: &'static str = "status-pending";
    const VERSION: u32 = 1;
}

/// Invitations sent and not yet redeemed, by age.
#[derive(Debug, Default, Serialize)]
struct Pending {
    count: u64,
    under_1_day: u64,
    from_1_to_7_days: u64,
    from_7_to_30_days: u64,
    over_30_days: u64,
    oldest_invited_at: Option<String>,
}

impl StatusArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<Outcome> {
        let settings = ctx.settings()?;
        let store = ctx.existing_store(&settings).await?;
        let wave = stored_wave(&store, &self.wave).await?;
        let refresh = if self.refresh {
            let client = connect(&settings)?;
            Some(
                refresh(
                    &client,
                    &store,
                    &wave,
                    settings.throughput.max_concurrency.get(),
                )
                .await?,
            )
        } else {
            None
        };
        let now = OffsetDateTime::now_utc();
        if self.pending {
            let members = store.pending_members(wave.id).await?;
            let rows = pending::rows(&members, now, self.older_than.map(|age| now - age));
            if self.json {
                output::write_json(&PendingDocument {
                    wave: &wave.name,
                    generated_at: now,
                    users: &rows,
                })?;
                return Ok(Outcome::Done);
            }
            let text = if self.csv {
                pending::csv(&rows)
            } else {
                pending::table(&wave.name, &rows)
            };
            output::write_stdout(&text)?;
            return Ok(Outcome::Done);
        }
        let status = status(&store, &wave, refresh, now).await?;
        if self.json {
            output::write_json(&status)?;
        } else {
            output::write_stdout(&render(&status))?;
        }
        Ok(Outcome::Done)
    }
}

/// Reads each invited member's `externalUserState` (15 users per request) and records those
/// who redeemed.
async fn refresh(
    client: &crate::graph::GraphClient,
    store: &Store,
    wave: &Wave,
    concurrency: usize,
) -> anyhow::Result<Refresh> {
    let invited = Invited::of(store, wave.id).await?;
    let now = OffsetDateTime::now_utc();
    let progress = output::Progress::bar(invited.len() as u64);
    progress.set_message("invited users read".to_owned());
    let redemptions = invited
        .read(client, concurrency, now, |n| progress.inc_by(n as u64))
        .await?;
    progress.finish();
    Ok(redemptions.record_accepted(store, wave.id, now).await?)
}

async fn status(
    store: &Store,
    wave: &Wave,
    refresh: Option<Refresh>,
    now: OffsetDateTime,
) -> anyhow::Result<Status> {
    let mut states: BTreeMap<&'static str, u64> =
        UserState::ALL.iter().map(|s| (s.code(), 0)).collect();
    for (state, n) in store.state_counts(wave.id).await? {
        states.insert(state.code(), n);
    }
    let failed = store
        .members_in_states(wave.id, &[UserState::Failed])
        .await?;
    let retryable = failed
        .iter()
        .filter(|(m, _)| m.failure_kind == Some(FailureKind::Retryable))
        .count() as u64;
    let mail_restored = failed
        .iter()
        .filter(|(m, _)| m.mail_restore == Some(MailRestore::Restored))
        .count() as u64;
    let mail_restore_failed: Vec<String> = failed
        .iter()
        .filter(|(m, _)| m.mail_restore == Some(MailRestore::Failed))
        .map(|(_, names)| names.user_principal_name.clone())
        .collect();
    let mut pending = Pending::default();
    let mut oldest: Option<OffsetDateTime> = None;
    for (member, _) in store
        .members_in_states(wave.id, &[UserState::Invited])
        .await?
    {
        let Some(invited_at) = member.invited_at else {
            pending.count += 1;
            continue;
        };
        pending.count += 1;
        let age = now - invited_at;
        let bucket = if age < Duration::days(1) {
            &mut pending.under_1_day
        } else if age < Duration::days(7) {
            &mut pending.from_1_to_7_days
        } else if age < Duration::days(30) {
            &mut pending.from_7_to_30_days
        } else {
            &mut pending.over_30_days
        };
        *bucket += 1;
        oldest = oldest.min(Some(invited_at)).or(Some(invited_at));
    }
    pending.oldest_invited_at = oldest.map(rfc3339);
    Ok(Status {
        wave: wave.name.clone(),
        generated_at: rfc3339(now),
        members: states.values().sum(),
        states,
        failed_retryable: retryable,
        failed_permanent: failed.len() as u64 - retryable,
        mail_restored,
        mail_restore_failed,
        pending,
        refresh,
    })
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn render(status: &Status) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "Wave {}: {} member(s)", status.wave, status.members);
    let state = |s: UserState| status.states.get(s.code()).copied().unwrap_or(0);
    let funnel = [
        ("excluded by the plan", state(UserState::Excluded)),
        ("ready (not yet converted)", state(UserState::Ready)),
        (
            "inviting (outcome being settled)",
            state(UserState::Inviting),
        ),
        ("invited, pending redemption", state(UserState::Invited)),
        ("accepted", state(UserState::Accepted)),
        ("on-prem password scrambled", state(UserState::Scrambled)),
        ("failed, retryable", status.failed_retryable),
        ("failed, permanent", status.failed_permanent),
        ("  of which mail restored", status.mail_restored),
        (
            "  of which mail restore failed",
            status.mail_restore_failed.len() as u64,
        ),
        (
            "drifted (changed since the plan)",
            state(UserState::Drifted),
        ),
    ];
    text.push_str(&output::table(
        ["state", "users"],
        funnel
            .iter()
            .map(|(label, n)| [(*label).to_owned(), n.to_string()]),
    ));
    if !status.mail_restore_failed.is_empty() {
        let _ = writeln!(
            text,
            "Mail restore failed (they keep the mail run set; put it back by hand, the event log has the old value): {}",
            crate::output::terminal_safe(&status.mail_restore_failed.join(", "))
        );
    }
    let p = &status.pending;
    if p.count > 0 {
        let _ = writeln!(
            text,
            "Pending invitations by age: {} under a day, {} 1–7 days, {} 7–30 days, {} over 30 days (oldest sent {}).",
            p.under_1_day,
            p.from_1_to_7_days,
            p.from_7_to_30_days,
            p.over_30_days,
            p.oldest_invited_at.as_deref().unwrap_or("?")
        );
    }
    if let Some(r) = &status.refresh {
        let _ = writeln!(
            text,
            "Refreshed from Graph: {} checked, {} newly accepted, {} still pending, {} not shown as invited, {} missing.",
            r.checked, r.newly_accepted, r.still_pending, r.not_invited_in_graph, r.missing
        );
    } else {
        let _ = writeln!(
            text,
            "From the database; add --refresh to read redemptions from Graph."
        );
    }
    text
}
