//! `status`: a wave's funnel (planned → invited → accepted …) and the age of pending
//! invitations, from the store; with `--refresh`, redemption states are read from Graph first
//! (read-only on the tenant) and newly accepted users recorded.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use futures_util::{StreamExt as _, TryStreamExt as _};
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use super::{Ctx, Outcome, connect, open_store, stored_wave};
use crate::cli::StatusArgs;
use crate::domain::{FailureKind, UserId, UserState};
use crate::graph::LookupKey;
use crate::graph::users::IN_CLAUSE_LIMIT;
use crate::output;
use crate::store::{NewEvent, Store, Transition, Wave};

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
    pending: Pending,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh: Option<Refresh>,
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

/// What a refresh found in Graph.
#[derive(Debug, Default, Serialize)]
struct Refresh {
    checked: u64,
    newly_accepted: u64,
    still_pending: u64,
    /// Invited by us, but Graph shows no invitation state (reset by someone, or replication).
    not_invited_in_graph: u64,
    /// Invited by us, but the user no longer exists.
    missing: u64,
}

impl StatusArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<Outcome> {
        let settings = ctx.settings()?;
        let store = open_store(&settings).await?;
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
        let status = status(&store, &wave, refresh, OffsetDateTime::now_utc()).await?;
        if self.json {
            let mut text = serde_json::to_string_pretty(&status)?;
            text.push('\n');
            output::write_stdout(&text)?;
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
    let invited = store
        .members_in_states(wave.id, &[UserState::Invited])
        .await?;
    let ids: Vec<String> = invited
        .iter()
        .map(|(m, _)| m.plan.user_id.to_string())
        .collect();
    let now = OffsetDateTime::now_utc();
    let progress = output::Progress::spinner(&format!("reading {} invited user(s)", ids.len()));
    let answers: Vec<_> = futures_util::stream::iter(ids.chunks(IN_CLAUSE_LIMIT))
        .map(|chunk| client.users_by_key(LookupKey::Id, chunk, now))
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    progress.finish();
    let mut seen: BTreeMap<UserId, _> = BTreeMap::new();
    for user in answers.into_iter().flatten() {
        seen.insert(user.id, user);
    }
    let mut result = Refresh {
        checked: ids.len() as u64,
        ..Refresh::default()
    };
    for (member, _) in &invited {
        let id = member.plan.user_id;
        let Some(user) = seen.get(&id) else {
            result.missing += 1;
            continue;
        };
        match user.external_user_state.as_deref() {
            Some("Accepted") => {
                let at = user.external_user_state_changed_at.unwrap_or(now);
                let mut transition = Transition::new(UserState::Invited, UserState::Accepted, at);
                transition.external_state_changed_at = user.external_user_state_changed_at;
                let event = NewEvent {
                    wave_id: Some(wave.id),
                    user_id: Some(id),
                    kind: "invitation.accepted".into(),
                    detail: serde_json::json!({ "external_user_state_changed_at": user.external_user_state_changed_at.map(|t| t.to_string()) }),
                    ..NewEvent::default()
                };
                store.record(wave.id, id, &transition, Some(&event)).await?;
                result.newly_accepted += 1;
            }
            Some(_) => result.still_pending += 1,
            None => result.not_invited_in_graph += 1,
        }
    }
    Ok(result)
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
