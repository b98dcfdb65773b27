//! `verify`: after a conversion, checks every converted member of a wave (invited, accepted or
//! scrambled) against the baseline recorded right before its invitation: same object id, same
//! UPN, same direct groups, same number of app role assignments. Reads Graph at bounded
//! concurrency, prints the differences and a summary, and records each difference in the
//! event log. Read-only on the tenant; the comparison itself is `crate::verify`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use anyhow::Context;
use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Ctx, Outcome, connect};
use crate::cli::VerifyArgs;
use crate::domain::{ConversionBaseline, RunId, UserId, UserState};
use crate::graph::{ConversionState, GraphClient};
use crate::output::{self, Progress};
use crate::store::{MemberNames, NewEvent, Store, Wave, WaveMember};
use crate::verify::{self, Current, Difference, Verdict};

/// Member states that mean "converted": the invitation went out.
const CONVERTED: [UserState; 3] = [
    UserState::Invited,
    UserState::Accepted,
    UserState::Scrambled,
];

/// The event kind of one difference.
const DIFFERENCE_EVENT: &str = "verify.difference";

/// What reading one user from Graph gave.
enum Reading {
    Found(Box<ConversionState>),
    Gone,
    /// A failure that concerns this user only (after the client's retries).
    Failed(String),
}

/// One converted member, verified.
#[derive(Serialize)]
struct UserReport {
    user_id: UserId,
    user_principal_name: String,
    state: UserState,
    verdict: Verdict,
    #[serde(with = "time::serde::rfc3339::option")]
    baseline_taken_at: Option<OffsetDateTime>,
    /// Why the user could not be read, when it could not.
    error: Option<String>,
    differences: Vec<Difference>,
}

#[derive(Serialize)]
struct Report {
    wave: String,
    #[serde(with = "time::serde::rfc3339")]
    checked_at: OffsetDateTime,
    /// Converted members checked.
    checked: usize,
    matching: usize,
    differing: usize,
    not_verifiable: usize,
    /// Members not converted (planned, ready, failed, …): not checked.
    not_converted: usize,
    users: Vec<UserReport>,
}

impl VerifyArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<Outcome> {
        let settings = ctx.settings()?;
        let store = ctx.existing_store(&settings).await?;
        let wave = super::stored_wave(&store, &self.wave).await?;
        let members = store.members_with_names(wave.id).await?;
        let total = members.len();
        let converted: Vec<(WaveMember, MemberNames)> = members
            .into_iter()
            .filter(|(m, _)| CONVERTED.contains(&m.state))
            .collect();
        let now = OffsetDateTime::now_utc();
        if converted.is_empty() {
            let message = format!(
                "Wave {} has no converted member yet ({total} member(s), none invited, accepted \
                 or scrambled): nothing to verify.\n",
                wave.name
            );
            if self.json {
                let report = summarise(&wave, now, total, Vec::new());
                write_json(&report)?;
            } else {
                output::write_stdout(&message)?;
            }
            return Ok(Outcome::Done);
        }
        super::same_tenant(&store, &settings).await?;
        let baselines: HashMap<UserId, ConversionBaseline> = store
            .baselines(wave.id)
            .await?
            .into_iter()
            .map(|b| (b.user_id, b))
            .collect();
        let client = connect(&settings)?;
        let concurrency = settings.throughput.max_concurrency.get();
        let to_read: Vec<UserId> = converted
            .iter()
            .map(|(m, _)| m.plan.user_id)
            .filter(|id| baselines.contains_key(id))
            .collect();
        let progress = Progress::bar(to_read.len() as u64);
        progress.set_message("converted users read".to_owned());
        let readings = read_users(&client, &to_read, now, concurrency, &progress).await;
        let readings = match readings {
            Ok(readings) => readings,
            Err(err) => {
                progress.finish();
                return Err(err);
            }
        };
        let names = group_names(&client, &baselines, &readings, concurrency).await;
        progress.finish();

        let users: Vec<UserReport> = converted
            .iter()
            .map(|(member, names_of)| user_report(member, names_of, &baselines, &readings, &names))
            .collect();
        record_differences(&store, &wave, &users, now).await?;
        let report = summarise(&wave, now, total, users);
        if self.json {
            write_json(&report)?;
        } else {
            output::write_stdout(&render(&report))?;
        }
        Ok(if report.differing + report.not_verifiable > 0 {
            Outcome::SomeUsersFailed
        } else {
            Outcome::Done
        })
    }
}

/// Reads every user's state now, `concurrency` at a time. Stops at the first failure that is
/// not the user's own (a missing permission, a token that cannot be had).
async fn read_users(
    client: &GraphClient,
    users: &[UserId],
    now: OffsetDateTime,
    concurrency: usize,
    progress: &Progress,
) -> anyhow::Result<HashMap<UserId, Reading>> {
    futures_util::stream::iter(users.iter().copied())
        .map(|user| async move {
            let reading = match client.conversion_state(user, now).await {
                Ok(state) => Reading::Found(Box::new(state)),
                Err(error) if error.status() == Some(404) => Reading::Gone,
                Err(error) if error.is_about_the_caller() => {
                    return Err(anyhow::Error::new(error).context(
                        "reading users' memberships and app role assignments (needs \
                         Directory.Read.All; `b2b-convert check` lists what the token has)",
                    ));
                }
                Err(error) => {
                    tracing::warn!(%user, "could not read the user: {error}");
                    Reading::Failed(error.to_string())
                }
            };
            progress.inc();
            Ok((user, reading))
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await
}

/// Names of the groups involved: the current groups' names as read, and the names of groups
/// users are no longer in, looked up (unknown when the group is gone or cannot be read).
async fn group_names(
    client: &GraphClient,
    baselines: &HashMap<UserId, ConversionBaseline>,
    readings: &HashMap<UserId, Reading>,
    concurrency: usize,
) -> BTreeMap<Uuid, String> {
    let mut names = BTreeMap::new();
    let mut removed = BTreeSet::new();
    for (user, reading) in readings {
        let Reading::Found(state) = reading else {
            continue;
        };
        for group in &state.groups {
            if let Some(name) = &group.display_name {
                names.insert(group.id, name.clone());
            }
        }
        if let Some(baseline) = baselines.get(user) {
            removed.extend(verify::removed_groups(baseline, &state.baseline));
        }
    }
    let looked_up: Vec<(Uuid, Option<String>)> = futures_util::stream::iter(removed)
        .filter(|id| std::future::ready(!names.contains_key(id)))
        .map(|id| async move {
            match client.group_name(id).await {
                Ok(name) => (id, name),
                Err(error) => {
                    tracing::debug!(group = %id, "group name not known: {error}");
                    (id, None)
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    names.extend(
        looked_up
            .into_iter()
            .filter_map(|(id, name)| name.map(|n| (id, n))),
    );
    names
}

fn user_report(
    member: &WaveMember,
    names_of: &MemberNames,
    baselines: &HashMap<UserId, ConversionBaseline>,
    readings: &HashMap<UserId, Reading>,
    names: &BTreeMap<Uuid, String>,
) -> UserReport {
    let user = member.plan.user_id;
    let baseline = baselines.get(&user);
    let (differences, error) = match (baseline, readings.get(&user)) {
        (Some(baseline), Some(Reading::Found(state))) => (
            verify::compare(Some(baseline), Current::Found(&state.baseline), names),
            None,
        ),
        (Some(baseline), Some(Reading::Gone)) => {
            (verify::compare(Some(baseline), Current::Gone, names), None)
        }
        (Some(_), Some(Reading::Failed(error))) => (Vec::new(), Some(error.clone())),
        // No baseline: the user was not read.
        _ => (vec![Difference::NoBaseline], None),
    };
    let verdict = if error.is_some() {
        Verdict::NotVerifiable
    } else {
        Verdict::of(&differences)
    };
    UserReport {
        user_id: user,
        user_principal_name: baseline.map_or_else(
            || names_of.user_principal_name.clone(),
            |b| b.user_principal_name.clone(),
        ),
        state: member.state,
        verdict,
        baseline_taken_at: baseline.map(|b| b.taken_at),
        error,
        differences,
    }
}

/// One `verify.difference` event per difference (no secrets: ids, UPNs and group names).
async fn record_differences(
    store: &Store,
    wave: &Wave,
    users: &[UserReport],
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    let run_id = RunId::new();
    for user in users {
        for difference in &user.differences {
            let mut detail = serde_json::to_value(difference)?;
            if let Some(fields) = detail.as_object_mut() {
                fields.insert("message".to_owned(), difference.to_string().into());
            }
            let event = NewEvent {
                run_id: Some(run_id),
                wave_id: Some(wave.id),
                user_id: Some(user.user_id),
                kind: DIFFERENCE_EVENT.to_owned(),
                detail,
                ..NewEvent::default()
            };
            store
                .append_event(&event, now)
                .await
                .context("recording a difference in the event log")?;
        }
    }
    Ok(())
}

fn summarise(wave: &Wave, now: OffsetDateTime, total: usize, users: Vec<UserReport>) -> Report {
    let count = |verdict: Verdict| users.iter().filter(|u| u.verdict == verdict).count();
    Report {
        wave: wave.name.clone(),
        checked_at: now,
        checked: users.len(),
        matching: count(Verdict::Matches),
        differing: count(Verdict::Differs),
        not_verifiable: count(Verdict::NotVerifiable),
        not_converted: total - users.len(),
        users,
    }
}

fn write_json(report: &Report) -> anyhow::Result<()> {
    Ok(output::write_json(report)?)
}

impl output::JsonDocument for Report {
    const SCHEMA: &'static str = "verify";
    const VERSION: u32 = 1;
}

fn render(report: &Report) -> String {
    let mut text = String::new();
    let rows: Vec<[String; 4]> = report
        .users
        .iter()
        .flat_map(|user| {
            let row = |check: &str, detail: String| {
                [
                    user.user_principal_name.clone(),
                    user.state.to_string(),
                    check.to_owned(),
                    detail,
                ]
            };
            let mut rows: Vec<[String; 4]> = user
                .differences
                .iter()
                .map(|d| row(d.code(), d.to_string()))
                .collect();
            if let Some(error) = &user.error {
                rows.push(row("not-read", format!("not verifiable: {error}")));
            }
            rows
        })
        .collect();
    if !rows.is_empty() {
        text.push_str(&output::table(["USER", "STATE", "CHECK", "DETAIL"], rows));
        text.push('\n');
    }
    let _ = write!(
        text,
        "Wave {}: {} converted member(s) checked: {} match, {} differ, {} not verifiable.",
        report.wave, report.checked, report.matching, report.differing, report.not_verifiable
    );
    if report.not_converted > 0 {
        let _ = write!(
            text,
            " {} member(s) not converted were not checked.",
            report.not_converted
        );
    }
    text.push('\n');
    if report.differing + report.not_verifiable == 0 {
        text.push_str(
            "Every converted member kept its object id, UPN, groups and app role assignments.\n",
        );
    } else {
        text.push_str("Each difference is recorded in the event log (verify.difference).\n");
    }
    text
}
