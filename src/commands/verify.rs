//! `verify`: after a conversion, checks every converted member of a wave (invited, accepted or
//! scrambled) against the baseline recorded right before its invitation: same object id, same
//! UPN, same direct groups, same number of app role assignments. Reads Graph at bounded
//! concurrency, prints the differences and a summary, and records each difference in the
//! event log. With `AuditLog.Read.All` (or `--audit-log on`) it also reads the directory audit
//! log's conversion events since the wave's first invitation and lists users whose event is
//! missing or failed. Read-only on the tenant; the comparison and the corroboration themselves
//! are `crate::verify`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::pin::pin;
use std::time::Duration;

use anyhow::Context;
use futures_util::{StreamExt, TryStreamExt};
use secrecy::ExposeSecret;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Ctx, Outcome, connect};
use crate::cli::{AuditLogChoice, VerifyArgs};
use crate::domain::{ConversionBaseline, RunId, UserId, UserState};
use crate::graph::audit_logs::ConversionEvent;
use crate::graph::auth::TokenClaims;
use crate::graph::permissions::Capability;
use crate::graph::{ConversionState, GraphClient};
use crate::output::{self, Progress};
use crate::store::{AuditFilter, MemberNames, NewEvent, Store, Wave, WaveMember};
use crate::verify::{self, AuditFinding, AuditLogReach, Current, Difference, Verdict};

/// Member states that mean "converted": the invitation went out.
const CONVERTED: [UserState; 3] = [
    UserState::Invited,
    UserState::Accepted,
    UserState::Scrambled,
];

/// The event kind of one difference.
const DIFFERENCE_EVENT: &str = "verify.difference";

/// The event kind of a conversion the audit log does not confirm (missing or failed).
const AUDIT_LOG_EVENT: &str = "verify.audit-log";

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
    /// What the directory audit log says about the conversion (absent when it was not read).
    audit_log: Option<AuditFinding>,
}

/// The directory audit log's part of the report.
#[derive(Serialize)]
struct AuditLogReport {
    /// `read`, or `skipped` (`note` says why).
    status: &'static str,
    note: Option<String>,
    /// The start of the events read (`activityDateTime ge`).
    #[serde(with = "time::serde::rfc3339::option")]
    read_from: Option<OffsetDateTime>,
    retention_days: u16,
    latency_minutes: u32,
    /// Requests (pages) it took.
    requests: usize,
    /// Conversion events read that name a member of the wave.
    events_read: usize,
    logged: usize,
    missing: usize,
    failed: usize,
    beyond_retention: usize,
    too_recent: usize,
}

impl AuditLogReport {
    fn skipped(args: &VerifyArgs, note: String) -> Self {
        Self {
            status: "skipped",
            note: Some(note),
            read_from: None,
            retention_days: args.audit_retention_days,
            latency_minutes: args.audit_latency_minutes,
            requests: 0,
            events_read: 0,
            logged: 0,
            missing: 0,
            failed: 0,
            beyond_retention: 0,
            too_recent: 0,
        }
    }

    /// Users whose conversion the log contradicts.
    fn unconfirmed(&self) -> usize {
        self.missing + self.failed
    }
}

/// The audit log's findings and their summary.
struct AuditLogOutcome {
    report: AuditLogReport,
    findings: HashMap<UserId, AuditFinding>,
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
    audit_log: AuditLogReport,
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
                let audit_log =
                    AuditLogReport::skipped(&self, "no converted member to look for".to_owned());
                let report = summarise(&wave, now, total, Vec::new(), audit_log);
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
        let mut audit = read_audit_log(&client, &store, &wave, &converted, &self, now).await?;

        let users: Vec<UserReport> = converted
            .iter()
            .map(|(member, names_of)| {
                let mut report = user_report(member, names_of, &baselines, &readings, &names);
                report.audit_log = audit.findings.remove(&member.plan.user_id);
                report
            })
            .collect();
        record_differences(&store, &wave, &users, now).await?;
        let report = summarise(&wave, now, total, users, audit.report);
        if self.json {
            write_json(&report)?;
        } else {
            output::write_stdout(&render(&report))?;
        }
        Ok(
            if report.differing + report.not_verifiable + report.audit_log.unconfirmed() > 0 {
                Outcome::SomeUsersFailed
            } else {
                Outcome::Done
            },
        )
    }
}

/// When each converted member was first invited, as this tool recorded it: its first
/// `POST /invitations` in the event log, else `invited_at`, else its last state change.
async fn conversion_times(
    store: &Store,
    wave: &Wave,
    converted: &[(WaveMember, MemberNames)],
) -> anyhow::Result<HashMap<UserId, OffsetDateTime>> {
    let writes = store
        .tenant_writes(AuditFilter {
            wave: Some(wave.id),
            since: None,
        })
        .await?;
    let first = verify::first_invitations(&writes);
    Ok(converted
        .iter()
        .map(|(member, _)| {
            let user = member.plan.user_id;
            let at = first
                .get(&user)
                .copied()
                .or(member.invited_at)
                .unwrap_or(member.state_changed_at);
            (user, at)
        })
        .collect())
}

/// The conversion events since `since` that name one of `members`, and the requests it took.
/// Only those are kept: the log holds the whole tenant's.
async fn conversion_events(
    client: &GraphClient,
    since: OffsetDateTime,
    members: &HashMap<UserId, OffsetDateTime>,
) -> Result<(Vec<ConversionEvent>, usize), crate::graph::Error> {
    let mut events = Vec::new();
    let mut requests = 0;
    let mut pages = pin!(client.conversion_events(since));
    while let Some(page) = pages.next().await {
        requests += 1;
        events.extend(
            page?
                .items
                .into_iter()
                .filter(|e| e.users.iter().any(|u| members.contains_key(u))),
        );
    }
    Ok((events, requests))
}

/// Whether the token may read the audit log, per its claims (`None`: it cannot tell).
async fn token_reads_audit_log(client: &GraphClient) -> anyhow::Result<Option<bool>> {
    let token = client
        .tokens()
        .token()
        .await
        .context("getting an access token")?;
    let claims = TokenClaims::decode(token.expose_secret());
    drop(token);
    Ok(claims.map(|claims| {
        Capability::ReadAuditLogs
            .granted_to(&claims.permissions(), claims.is_delegated())
            .is_some()
    }))
}

/// Reads the conversion events since the wave's first invitation (when `--audit-log` and the
/// token allow it) and says, for each converted member, what the log holds. With `auto`, a
/// log that cannot be read is a note; with `on`, an error.
async fn read_audit_log(
    client: &GraphClient,
    store: &Store,
    wave: &Wave,
    converted: &[(WaveMember, MemberNames)],
    args: &VerifyArgs,
    now: OffsetDateTime,
) -> anyhow::Result<AuditLogOutcome> {
    let skipped = |note: String| AuditLogOutcome {
        report: AuditLogReport::skipped(args, note),
        findings: HashMap::new(),
    };
    match args.audit_log {
        AuditLogChoice::Off => return Ok(skipped("not asked for (--audit-log off)".to_owned())),
        AuditLogChoice::On => {}
        AuditLogChoice::Auto => match token_reads_audit_log(client).await? {
            Some(true) => {}
            Some(false) => {
                return Ok(skipped(
                    "the token does not claim AuditLog.Read.All (grant it to corroborate \
                     conversions with the service's own events)"
                        .to_owned(),
                ));
            }
            None => {
                return Ok(skipped(
                    "the token's permissions cannot be read (not a JWT): use --audit-log on \
                     to read the audit log anyway"
                        .to_owned(),
                ));
            }
        },
    }
    let reach = AuditLogReach {
        retention: Duration::from_hours(u64::from(args.audit_retention_days) * 24),
        latency: Duration::from_mins(u64::from(args.audit_latency_minutes)),
    };
    let converted_at = conversion_times(store, wave, converted).await?;
    let read_from = reach.read_from(converted_at.values().copied(), now);
    let (events, requests) = match read_from {
        None => (Vec::new(), 0),
        Some(since) => match conversion_events(client, since, &converted_at).await {
            Ok(read) => read,
            Err(error) if args.audit_log == AuditLogChoice::Auto => {
                tracing::warn!("could not read the directory audit log: {error}");
                return Ok(skipped(format!("the audit log could not be read: {error}")));
            }
            Err(error) => {
                return Err(anyhow::Error::new(error).context(
                    "reading the directory audit log (needs AuditLog.Read.All and \
                     Directory.Read.All; `b2b-convert check` lists what the token has; \
                     --audit-log off skips it)",
                ));
            }
        },
    };
    let by_user = verify::events_by_user(&events);
    let findings: HashMap<UserId, AuditFinding> = converted_at
        .iter()
        .map(|(user, at)| {
            let events = by_user.get(user).map_or(&[][..], Vec::as_slice);
            (*user, verify::corroborate(*at, events, &reach, now))
        })
        .collect();
    let count = |code: &str| findings.values().filter(|f| f.code() == code).count();
    let report = AuditLogReport {
        status: "read",
        note: read_from.is_none().then(|| {
            format!(
                "every conversion is older than the {}-day retention: no event to look for",
                args.audit_retention_days
            )
        }),
        read_from,
        retention_days: args.audit_retention_days,
        latency_minutes: args.audit_latency_minutes,
        requests,
        events_read: events.len(),
        logged: count("logged"),
        missing: count("missing"),
        failed: count("failed"),
        beyond_retention: count("beyond-retention"),
        too_recent: count("too-recent"),
    };
    Ok(AuditLogOutcome { report, findings })
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
        audit_log: None,
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
        if let Some(finding) = user.audit_log.as_ref().filter(|f| f.is_unconfirmed()) {
            let mut detail = serde_json::to_value(finding)?;
            if let Some(fields) = detail.as_object_mut() {
                fields.insert("message".to_owned(), finding.to_string().into());
            }
            let event = NewEvent {
                run_id: Some(run_id),
                wave_id: Some(wave.id),
                user_id: Some(user.user_id),
                kind: AUDIT_LOG_EVENT.to_owned(),
                detail,
                ..NewEvent::default()
            };
            store
                .append_event(&event, now)
                .await
                .context("recording an unconfirmed conversion in the event log")?;
        }
    }
    Ok(())
}

fn summarise(
    wave: &Wave,
    now: OffsetDateTime,
    total: usize,
    users: Vec<UserReport>,
    audit_log: AuditLogReport,
) -> Report {
    let count = |verdict: Verdict| users.iter().filter(|u| u.verdict == verdict).count();
    Report {
        wave: wave.name.clone(),
        checked_at: now,
        checked: users.len(),
        matching: count(Verdict::Matches),
        differing: count(Verdict::Differs),
        not_verifiable: count(Verdict::NotVerifiable),
        not_converted: total - users.len(),
        audit_log,
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
            if let Some(finding) = user.audit_log.as_ref().filter(|f| f.is_unconfirmed()) {
                rows.push(row(
                    &format!("audit-log-{}", finding.code()),
                    finding.to_string(),
                ));
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
    text.push_str(&render_audit_log(&report.audit_log));
    text
}

fn render_audit_log(audit: &AuditLogReport) -> String {
    let mut text = String::new();
    if audit.status != "read" {
        let _ = writeln!(
            text,
            "Audit log not read: {}.",
            audit.note.as_deref().unwrap_or("skipped")
        );
        return text;
    }
    match audit.read_from {
        Some(from) => {
            let _ = write!(
                text,
                "Audit log (events since {from}, {} request(s)): {} conversion(s) logged, {} \
                 missing, {} logged as failed.",
                audit.requests, audit.logged, audit.missing, audit.failed
            );
        }
        None => {
            let _ = write!(text, "Audit log: {}.", audit.note.as_deref().unwrap_or(""));
        }
    }
    if audit.beyond_retention > 0 {
        let _ = write!(
            text,
            " {} converted before the {}-day retention (no event can be found).",
            audit.beyond_retention, audit.retention_days
        );
    }
    if audit.too_recent > 0 {
        let _ = write!(
            text,
            " {} converted in the last {} minute(s) without an event yet (run verify again later).",
            audit.too_recent, audit.latency_minutes
        );
    }
    text.push('\n');
    if audit.unconfirmed() > 0 {
        text.push_str(
            "Each missing or failed event is recorded in the event log (verify.audit-log).\n",
        );
    }
    text
}
