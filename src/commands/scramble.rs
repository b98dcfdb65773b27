//! `scramble`: replace the on-premises AD passwords of a wave's converted synced users with
//! random values nobody knows. Orchestration only: which members (`directory::select`), the
//! confirmation and the lock, then per user the directory client's work and the store's
//! record; or the PowerShell script instead, and the import of its results.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead as _, IsTerminal as _};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Ctx, Outcome, Refused, UsageError, interruption, open_store, stored_wave};
use crate::cli::ScrambleArgs;
use crate::config::{NewPasswordKind, Settings};
use crate::directory::powershell::{self, ScriptSpec};
use crate::directory::select::{judge_result, select};
use crate::directory::{
    Directory, Member, NewPassword, ResultAction, Scope, Skipped, Target, Timeouts, UserFailure,
};
use crate::domain::{RunId, UserId, UserState, WaveId};
use crate::execute::RunLock;
use crate::fsutil::{self, Overwrite};
use crate::input::{self, ScrambleOutcome, ScrambleResultRow};
use crate::output;
use crate::store::{NewEvent, RunStatus, Store, Transition, Wave};

impl ScrambleArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<Outcome> {
        let settings = ctx.settings()?;
        let store = open_store(&settings).await?;
        let wave = stored_wave(&store, &self.wave).await?;
        if let Some(path) = &self.import_results {
            let _lock = RunLock::acquire(
                &settings.store.path,
                &format!("scramble --wave {} --import-results", wave.name),
            )?;
            return import(&store, &wave, path).await;
        }
        let scope = if self.include_invited {
            Scope::Invited
        } else {
            Scope::Accepted
        };
        if self.dry_run {
            let (targets, skipped) = selection(&store, &wave, scope).await?;
            output::write_stdout(&render_dry_run(
                &settings, &wave, &targets, &skipped, self.limit,
            ))?;
            return Ok(Outcome::Done);
        }
        if let Some(path) = &self.emit_powershell {
            let (targets, skipped) = selection(&store, &wave, scope).await?;
            let targets = limited(targets, self.limit);
            return emit(
                &settings, &store, &wave, &targets, &skipped, path, self.force,
            )
            .await;
        }
        if settings.directory.url.is_none() {
            return Err(UsageError(
                "set directory.url (and bind_dn, base_dn, the bind password) to scramble over LDAPS, or use --emit-powershell to scramble with a script on-prem; see docs/operations.md".into(),
            )
            .into());
        }
        let _lock = RunLock::acquire(
            &settings.store.path,
            &format!("scramble --wave {}", wave.name),
        )?;
        let (targets, skipped) = selection(&store, &wave, scope).await?;
        if targets.is_empty() {
            output::write_stdout(&format!(
                "Wave {}: nothing to scramble.\n{}",
                wave.name,
                render_skips(&skipped)
            ))?;
            return Ok(Outcome::Done);
        }
        let targets = limited(targets, self.limit);
        confirm(&self, &settings, &wave, targets.len())?;
        direct(&settings, &store, &wave, targets, &skipped, scope).await
    }
}

/// The wave's members, split into scramble targets (with their current state) and skips.
async fn selection(
    store: &Store,
    wave: &Wave,
    scope: Scope,
) -> anyhow::Result<(Vec<(Target, UserState)>, Vec<Skipped>)> {
    let members = members(store, wave.id).await?;
    let states: HashMap<UserId, UserState> = members.iter().map(|m| (m.user_id, m.state)).collect();
    let (targets, skipped) = select(&members, scope);
    let targets = targets
        .into_iter()
        .map(|t| {
            let state = states[&t.user_id];
            (t, state)
        })
        .collect();
    Ok((targets, skipped))
}

async fn members(store: &Store, wave: WaveId) -> anyhow::Result<Vec<Member>> {
    Ok(store
        .members_with_on_premises(wave)
        .await?
        .into_iter()
        .map(|(member, names, on_premises)| Member {
            user_id: member.plan.user_id,
            user_principal_name: names.user_principal_name,
            state: member.state,
            scrambled_at: member.scrambled_at,
            scrambled_on: member.scrambled_on,
            on_premises,
        })
        .collect())
}

fn limited<T>(mut targets: Vec<T>, limit: Option<u64>) -> Vec<T> {
    if let Some(limit) = limit {
        targets.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    targets
}

/// The operator said yes: `--yes`, or the wave name typed at the terminal.
fn confirm(
    args: &ScrambleArgs,
    settings: &Settings,
    wave: &Wave,
    count: usize,
) -> anyhow::Result<()> {
    if args.yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Refused(
            "scramble changes on-premises passwords and stdin is not a terminal: pass --yes to confirm".into(),
        )
        .into());
    }
    output::notice(&format!(
        "About to replace the on-premises AD passwords of {count} user(s) of wave {} ({}) with random values nobody will know.\n\
         Their old internal passwords stop working on-prem; the accounts stay enabled.\n\
         Type the wave name to go ahead:",
        wave.name,
        settings
            .directory
            .url
            .as_ref()
            .map_or_else(String::new, ToString::to_string),
    ));
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .context("reading the confirmation")?;
    if answer.trim() != wave.name {
        return Err(Refused("not confirmed; nothing was changed".into()).into());
    }
    Ok(())
}

/// What a direct scramble did (stored with its run, printed at the end).
#[derive(Debug, Default, Serialize)]
struct Summary {
    scrambled: u64,
    failed: u64,
    skipped: u64,
    not_started: u64,
    interrupted: bool,
}

/// Scrambles each target over LDAPS and records each outcome as it comes.
async fn direct(
    settings: &Settings,
    store: &Store,
    wave: &Wave,
    targets: Vec<(Target, UserState)>,
    skipped: &[Skipped],
    scope: Scope,
) -> anyhow::Result<Outcome> {
    let timeouts = Timeouts {
        connect: settings.throughput.connect_timeout,
        operation: settings.throughput.request_timeout,
    };
    let mut directory = Directory::connect(&settings.directory, timeouts)
        .await
        .context("connecting to the domain controller; nothing was changed")?;
    let dc = directory.domain_controller().to_owned();
    let run_id = RunId::new();
    store
        .start_run(
            run_id,
            wave.id,
            "scramble",
            &serde_json::json!({
                "mode": "ldap",
                "url": settings.directory.url.as_ref().map(ToString::to_string),
                "domain_controller": dc,
                "base_dn": directory.base_dn(),
                "bind_dn": directory.bind_dn(),
                "new_password": password_kind(settings.directory.new_password),
                "include_invited": scope == Scope::Invited,
            }),
            OffsetDateTime::now_utc(),
        )
        .await?;
    let pass = Pass {
        settings,
        store,
        wave,
        run_id,
    };
    let mut summary = Summary {
        skipped: skipped.len() as u64,
        ..Summary::default()
    };
    let (failures, fatal) = pass
        .scramble_each(&mut directory, targets, &mut summary)
        .await?;
    directory.close().await;
    let status = match (&fatal, summary.interrupted) {
        (Some(_), _) => RunStatus::Failed,
        (None, true) => RunStatus::Interrupted,
        (None, false) => RunStatus::Completed,
    };
    let mut summary_json = serde_json::to_value(&summary)?;
    if let Some(err) = &fatal {
        summary_json["error"] = err.to_string().into();
    }
    store
        .finish_run(run_id, status, &summary_json, OffsetDateTime::now_utc())
        .await?;
    if let Some(err) = fatal {
        return Err(anyhow::Error::new(err).context(format!(
            "scramble of wave {} stopped after {} scrambled and {} failed user(s), which are recorded; run it again to continue",
            wave.name, summary.scrambled, summary.failed
        )));
    }
    output::write_stdout(&render_summary(wave, &dc, &summary, &failures, skipped))?;
    Ok(if summary.failed > 0 {
        Outcome::SomeUsersFailed
    } else {
        Outcome::Done
    })
}

/// One direct scramble of a wave, recorded as one run.
struct Pass<'a> {
    settings: &'a Settings,
    store: &'a Store,
    wave: &'a Wave,
    run_id: RunId,
}

impl Pass<'_> {
    /// Scrambles the targets one after the other, recording each outcome as it comes, until
    /// done, Ctrl-C, or an error of the connection (returned, not raised: the run is recorded
    /// first).
    async fn scramble_each(
        &self,
        directory: &mut Directory,
        targets: Vec<(Target, UserState)>,
        summary: &mut Summary,
    ) -> anyhow::Result<(Vec<(Target, UserFailure)>, Option<crate::directory::Error>)> {
        let stop = Arc::new(AtomicBool::new(false));
        {
            let stop = Arc::clone(&stop);
            let interrupted = interruption()?;
            tokio::spawn(async move {
                interrupted.await;
                stop.store(true, Ordering::SeqCst);
            });
        }
        let dc = directory.domain_controller().to_owned();
        let progress = output::Progress::bar(targets.len() as u64);
        let mut failures = Vec::new();
        let total = targets.len();
        for (done, (target, state)) in targets.into_iter().enumerate() {
            if stop.load(Ordering::SeqCst) {
                summary.interrupted = true;
                summary.not_started = (total - done) as u64;
                break;
            }
            let password = NewPassword::generate(
                self.settings.directory.new_password,
                self.settings.directory.random_password_length,
            );
            match directory.scramble(&target, password).await {
                Ok(Ok(scrambled)) => {
                    let detail = serde_json::json!({
                        "method": "ldap",
                        "domain_controller": dc,
                        "by": directory.bind_dn(),
                        "dn": scrambled.dn,
                        "pwd_last_set_before": scrambled.pwd_last_set_before.map(rfc3339),
                        "pwd_last_set": rfc3339(scrambled.pwd_last_set),
                    });
                    let at = OffsetDateTime::now_utc();
                    record_scrambled(
                        self.store,
                        self.wave,
                        self.run_id,
                        &target.user_id,
                        state,
                        at,
                        &dc,
                        detail,
                    )
                    .await?;
                    summary.scrambled += 1;
                }
                Ok(Err(failure)) => {
                    record_failure(
                        self.store,
                        self.wave,
                        Some(self.run_id),
                        target.user_id,
                        &failure,
                        "ldap",
                        Some(&dc),
                    )
                    .await?;
                    tracing::warn!(user = %target.user_principal_name, code = failure.code, "{}", failure.message);
                    summary.failed += 1;
                    failures.push((target, failure));
                }
                Err(err) => {
                    summary.not_started = (total - done) as u64;
                    progress.finish();
                    return Ok((failures, Some(err)));
                }
            }
            progress.inc();
            progress.set_message(format!(
                "scrambled {}, failed {}",
                summary.scrambled, summary.failed
            ));
        }
        progress.finish();
        Ok((failures, None))
    }
}

/// Records a scramble: the state and its event in one transaction. If the member moved on
/// meanwhile (a `status --refresh` recorded its redemption), the scramble is recorded from its
/// new state.
#[allow(clippy::too_many_arguments)] // the parts of one record
async fn record_scrambled(
    store: &Store,
    wave: &Wave,
    run_id: RunId,
    user: &UserId,
    state: UserState,
    at: OffsetDateTime,
    dc: &str,
    detail: serde_json::Value,
) -> anyhow::Result<()> {
    let event = NewEvent {
        run_id: Some(run_id),
        wave_id: Some(wave.id),
        user_id: Some(*user),
        kind: "scramble.done".into(),
        detail,
        ..NewEvent::default()
    };
    let mut transition = Transition::new(state, UserState::Scrambled, at);
    transition.scrambled_on = Some(dc.to_owned());
    match store
        .record(wave.id, *user, &transition, Some(&event))
        .await
    {
        Err(crate::store::Error::StateConflict { .. }) => {
            let now = store
                .member(wave.id, *user)
                .await?
                .map(|m| m.state)
                .filter(|s| matches!(s, UserState::Invited | UserState::Accepted));
            let Some(now) = now else {
                anyhow::bail!(
                    "user {user} of wave {} changed state during its scramble; its password was scrambled but the state could not be recorded",
                    wave.name
                );
            };
            transition.from = now;
            store
                .record(wave.id, *user, &transition, Some(&event))
                .await?;
            Ok(())
        }
        other => Ok(other?),
    }
}

/// Records a user's failure in the event log (its state does not change: it stays converted).
async fn record_failure(
    store: &Store,
    wave: &Wave,
    run_id: Option<RunId>,
    user: UserId,
    failure: &UserFailure,
    method: &str,
    dc: Option<&str>,
) -> anyhow::Result<()> {
    let event = NewEvent {
        run_id,
        wave_id: Some(wave.id),
        user_id: Some(user),
        kind: "scramble.failed".into(),
        detail: serde_json::json!({
            "method": method,
            "domain_controller": dc,
            "code": failure.code,
            "message": failure.message,
            "fix": failure.fix,
        }),
        ..NewEvent::default()
    };
    store
        .append_event(&event, OffsetDateTime::now_utc())
        .await?;
    Ok(())
}

/// Writes the PowerShell script for the targets (atomically, mode 0600) and logs that it did.
async fn emit(
    settings: &Settings,
    store: &Store,
    wave: &Wave,
    targets: &[(Target, UserState)],
    skipped: &[Skipped],
    path: &Path,
    force: bool,
) -> anyhow::Result<Outcome> {
    if targets.is_empty() {
        output::write_stdout(&format!(
            "Wave {}: nothing to scramble; no script written.\n{}",
            wave.name,
            render_skips(skipped)
        ))?;
        return Ok(Outcome::Done);
    }
    let now = OffsetDateTime::now_utc();
    let server = settings
        .directory
        .url
        .as_ref()
        .and_then(|u| u.host_str())
        .map(str::to_owned);
    let spec = ScriptSpec {
        wave: &wave.name,
        tool_version: env!("CARGO_PKG_VERSION"),
        generated_at: now,
        new_password: settings.directory.new_password,
        random_password_length: settings.directory.random_password_length,
        server: server.as_deref(),
    };
    let just_targets: Vec<Target> = targets.iter().map(|(t, _)| t.clone()).collect();
    let text = powershell::script(&spec, &just_targets);
    let overwrite = if force { Overwrite::Yes } else { Overwrite::No };
    fsutil::write_private(path, text.as_bytes(), overwrite)?;
    store
        .append_event(
            &NewEvent {
                wave_id: Some(wave.id),
                kind: "scramble.script-written".into(),
                detail: serde_json::json!({
                    "file": path.display().to_string(),
                    "users": just_targets.len(),
                    // Who is in it, for the record; a huge wave keeps the first thousand.
                    "user_ids": just_targets
                        .iter()
                        .take(1000)
                        .map(|t| t.user_id.to_string())
                        .collect::<Vec<_>>(),
                    "new_password": password_kind(settings.directory.new_password),
                }),
                ..NewEvent::default()
            },
            now,
        )
        .await?;
    let results = powershell::results_file_name(&wave.name);
    output::write_stdout(&format!(
        "Wrote {} (mode 0600): scrambles {} user(s) of wave {}.\n{}\
         Review it, copy it to a host with the ActiveDirectory module, try it with -WhatIf, then run it.\n\
         It writes {results} next to itself; record that with:\n  \
         b2b-convert scramble --wave {} --import-results {results}\n",
        path.display(),
        just_targets.len(),
        wave.name,
        render_skips(skipped),
        wave.name,
    ))?;
    Ok(Outcome::Done)
}

/// What an import did.
#[derive(Debug, Default, Serialize)]
struct ImportSummary {
    recorded: u64,
    already_recorded: u64,
    failed: u64,
}

/// Records a script's results file: every row is checked first (a bad row stops the import,
/// with its line, before anything is recorded).
async fn import(store: &Store, wave: &Wave, path: &Path) -> anyhow::Result<Outcome> {
    let rows = input::read_scramble_results(path)?;
    let members = members(store, wave.id).await?;
    let by_id: HashMap<UserId, &Member> = members.iter().map(|m| (m.user_id, m)).collect();
    let mut actions = Vec::with_capacity(rows.len());
    for row in &rows {
        let member = by_id.get(&row.user_id).copied();
        let action =
            judge_result(row, &wave.name, member).map_err(|message| input::Error::Malformed {
                path: path.to_path_buf(),
                line: row.line,
                message,
            })?;
        if action == ResultAction::Record {
            let state = member.expect("a row to record has a member").state;
            actions.push((row, Some(state)));
        } else {
            actions.push((row, None));
        }
    }
    let run_id = RunId::new();
    store
        .start_run(
            run_id,
            wave.id,
            "scramble",
            &serde_json::json!({ "mode": "powershell-import", "file": path.display().to_string() }),
            OffsetDateTime::now_utc(),
        )
        .await?;
    let mut summary = ImportSummary::default();
    let mut failures: Vec<(&ScrambleResultRow, String)> = Vec::new();
    for (row, state) in actions {
        let Some(state) = state else {
            summary.already_recorded += 1;
            continue;
        };
        if let Some(error) = record_row(store, wave, run_id, path, row, state).await? {
            summary.failed += 1;
            failures.push((row, error));
        } else {
            summary.recorded += 1;
        }
    }
    store
        .finish_run(
            run_id,
            RunStatus::Completed,
            &serde_json::to_value(&summary)?,
            OffsetDateTime::now_utc(),
        )
        .await?;
    let mut text = format!(
        "Imported {} into wave {}: {} scramble(s) recorded, {} already recorded, {} failed.\n",
        path.display(),
        wave.name,
        summary.recorded,
        summary.already_recorded,
        summary.failed
    );
    if !failures.is_empty() {
        text.push_str("\nUsers the script could not scramble:\n");
        text.push_str(&output::table(
            ["line", "user", "error"],
            failures
                .iter()
                .map(|(row, error)| [row.line.to_string(), row.user_id.to_string(), error.clone()]),
        ));
    }
    output::write_stdout(&text)?;
    Ok(if summary.failed > 0 {
        Outcome::SomeUsersFailed
    } else {
        Outcome::Done
    })
}

/// Records one checked row; `Some(error)` when the script reported a failure.
async fn record_row(
    store: &Store,
    wave: &Wave,
    run_id: RunId,
    path: &Path,
    row: &ScrambleResultRow,
    state: UserState,
) -> anyhow::Result<Option<String>> {
    match &row.outcome {
        ScrambleOutcome::Scrambled {
            domain_controller,
            pwd_last_set,
            completed_at,
        } => {
            let detail = serde_json::json!({
                "method": "powershell",
                "domain_controller": domain_controller,
                "sam_account_name": row.sam_account_name,
                "pwd_last_set": rfc3339(*pwd_last_set),
                "results_file": path.display().to_string(),
                "line": row.line,
            });
            record_scrambled(
                store,
                wave,
                run_id,
                &row.user_id,
                state,
                *completed_at,
                domain_controller,
                detail,
            )
            .await?;
            Ok(None)
        }
        ScrambleOutcome::Failed { error, .. } => {
            let failure = UserFailure {
                code: UserFailure::SCRIPT_FAILED,
                message: error.clone(),
                fix: "fix the cause on-prem, then emit and run a new script (it takes the users not yet scrambled)".into(),
            };
            record_failure(
                store,
                wave,
                Some(run_id),
                row.user_id,
                &failure,
                "powershell",
                None,
            )
            .await?;
            Ok(Some(error.clone()))
        }
    }
}

fn password_kind(kind: NewPasswordKind) -> &'static str {
    match kind {
        NewPasswordKind::Guid => "guid",
        NewPasswordKind::Random => "random",
    }
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

fn describe_value(settings: &Settings) -> String {
    match settings.directory.new_password {
        NewPasswordKind::Guid => "a fresh random GUID".to_owned(),
        NewPasswordKind::Random => format!(
            "{} random characters",
            settings.directory.random_password_length
        ),
    }
}

fn render_dry_run(
    settings: &Settings,
    wave: &Wave,
    targets: &[(Target, UserState)],
    skipped: &[Skipped],
    limit: Option<u64>,
) -> String {
    let mut text = format!(
        "Dry run of scramble for wave {}: nothing is changed and no domain controller is contacted.\n",
        wave.name
    );
    let taken = limited(targets.to_vec(), limit);
    let _ = writeln!(
        text,
        "Would scramble {} user(s), each to {} (found by their anchor GUID as objectGUID or mS-DS-ConsistencyGuid, checked by sAMAccountName and DN):",
        taken.len(),
        describe_value(settings)
    );
    if !taken.is_empty() {
        text.push_str(&output::table(
            [
                "user",
                "state",
                "sAMAccountName",
                "objectGUID",
                "distinguished name",
            ],
            taken.iter().map(|(t, state)| {
                [
                    t.user_principal_name.clone(),
                    state.to_string(),
                    t.sam_account_name.clone().unwrap_or_default(),
                    t.object_guid.to_string(),
                    t.distinguished_name.clone().unwrap_or_default(),
                ]
            }),
        ));
    }
    if taken.len() < targets.len() {
        let _ = writeln!(
            text,
            "{} more would wait for a later run (--limit).",
            targets.len() - taken.len()
        );
    }
    text.push_str(&render_skips(skipped));
    text
}

fn render_skips(skipped: &[Skipped]) -> String {
    if skipped.is_empty() {
        return String::new();
    }
    let mut text = format!("Not scrambled ({}):\n", skipped.len());
    text.push_str(&output::table(
        ["user", "reason", "why"],
        skipped.iter().map(|s| {
            [
                s.user_principal_name.clone(),
                s.reason.code().to_owned(),
                s.reason.to_string(),
            ]
        }),
    ));
    text
}

fn render_summary(
    wave: &Wave,
    dc: &str,
    summary: &Summary,
    failures: &[(Target, UserFailure)],
    skipped: &[Skipped],
) -> String {
    let headline = if summary.interrupted {
        "interrupted (run the same command again to continue)"
    } else {
        "finished"
    };
    let mut text = format!("Scramble of wave {} on {dc} {headline}.\n", wave.name);
    let rows = [
        ("scrambled", summary.scrambled),
        ("failed (see the fix)", summary.failed),
        ("skipped", summary.skipped),
        ("not started", summary.not_started),
    ];
    text.push_str(&output::table(
        ["outcome", "users"],
        rows.iter()
            .filter(|(_, n)| *n > 0)
            .map(|(label, n)| [(*label).to_owned(), n.to_string()]),
    ));
    if !failures.is_empty() {
        text.push_str("\nUsers not scrambled:\n");
        text.push_str(&output::table(
            ["user", "code", "what happened", "fix"],
            failures.iter().map(|(t, f)| {
                [
                    t.user_principal_name.clone(),
                    f.code.to_owned(),
                    f.message.clone(),
                    f.fix.clone(),
                ]
            }),
        ));
    }
    if !skipped.is_empty() {
        text.push('\n');
        text.push_str(&render_skips(skipped));
    }
    text
}
