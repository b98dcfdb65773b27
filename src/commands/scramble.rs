//! `scramble`: replace the on-premises AD passwords of a wave's converted synced users with
//! random values nobody knows. Orchestration only: which members (`directory::select`), the
//! confirmation and the lock, then the pass over LDAPS or the import of a script's results
//! ([`crate::execute::scramble`]: each outcome recorded, the run around it); or the
//! PowerShell script instead.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;
use time::OffsetDateTime;

use super::{Confirmation, Ctx, Outcome, UsageError, confirm, interruption, stored_wave};
use crate::cli::ScrambleArgs;
use crate::config::{NewPasswordKind, Settings};
use crate::directory::powershell::{self, ScriptSpec};
use crate::directory::select::select;
use crate::directory::{Directory, Scope, Skipped, Target, Timeouts, UserFailure};
use crate::domain::{UserId, UserState};
use crate::execute::RunLock;
use crate::execute::scramble::{
    self as scrambling, ImportSummary, ScrambleError, ScrambleObserver, ScrambleSummary,
    ScrambledOverLdap,
};
use crate::fsutil::{self, Overwrite};
use crate::input;
use crate::operator::Operator;
use crate::output::{self, Progress};
use crate::store::{NewEvent, Store, Wave};

impl ScrambleArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<Outcome> {
        let settings = ctx.settings()?;
        let store = ctx.existing_store(&settings).await?;
        let wave = stored_wave(&store, &self.wave).await?;
        if let Some(path) = &self.import_results {
            let _lock = RunLock::acquire(
                &settings.store.path,
                &format!("scramble --wave {} --import-results", wave.name),
            )?;
            return import(&store, &wave, path, &ctx.operator(), self.json).await;
        }
        let scope = self.scope();
        if self.dry_run {
            let (targets, skipped) = selection(&store, &wave, scope).await?;
            if self.json {
                let taken = limited(targets.clone(), self.limit);
                output::write_json(&ScrambleDocument {
                    waiting: targets.len() - taken.len(),
                    ..ScrambleDocument::new(&wave, "dry-run", &skipped).with_targets(&taken)
                })?;
            } else {
                output::write_stdout(&render_dry_run(
                    &settings, &wave, &targets, &skipped, self.limit,
                ))?;
            }
            return Ok(Outcome::Done);
        }
        if let Some(path) = &self.emit_powershell {
            let (targets, skipped) = selection(&store, &wave, scope).await?;
            let targets = limited(targets, self.limit);
            return emit(&settings, &store, &wave, &targets, &skipped, path, &self).await;
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
            if self.json {
                output::write_json(&ScrambleDocument::new(&wave, "ldap", &skipped))?;
            } else {
                output::write_stdout(&format!(
                    "Wave {}: nothing to scramble.\n{}",
                    wave.name,
                    render_skips(&skipped)
                ))?;
            }
            return Ok(Outcome::Done);
        }
        let targets = limited(targets, self.limit);
        confirm_scramble(&self, &settings, &wave, targets.len())?;
        direct(
            &settings,
            &store,
            &wave,
            targets,
            &skipped,
            &ctx.operator(),
            &self,
        )
        .await
    }

    /// Which converted members: accepted ones, or with `--include-invited` the invited too.
    fn scope(&self) -> Scope {
        if self.include_invited {
            Scope::Invited
        } else {
            Scope::Accepted
        }
    }
}

/// The wave's members, split into scramble targets (with their current state) and skips.
async fn selection(
    store: &Store,
    wave: &Wave,
    scope: Scope,
) -> anyhow::Result<(Vec<(Target, UserState)>, Vec<Skipped>)> {
    let members = scrambling::members(store, wave.id).await?;
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

fn limited<T>(mut targets: Vec<T>, limit: Option<u64>) -> Vec<T> {
    if let Some(limit) = limit {
        targets.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    targets
}

/// The operator said yes: `--yes`, or the wave name typed at the terminal.
fn confirm_scramble(
    args: &ScrambleArgs,
    settings: &Settings,
    wave: &Wave,
    count: usize,
) -> anyhow::Result<()> {
    confirm(&Confirmation {
        yes: args.yes,
        changes: "scramble changes on-premises passwords",
        prompt: format!(
            "About to replace the on-premises AD passwords of {count} user(s) of wave {} ({}) with random values nobody will know.\n\
             Their old internal passwords stop working on-prem; the accounts stay enabled.\n\
             Type the wave name to go ahead:",
            wave.name,
            settings
                .directory
                .url
                .as_ref()
                .map_or_else(String::new, ToString::to_string),
        ),
        expected: &wave.name,
        ignore_case: false,
        not_done: "changed",
    })
}

/// Scrambles each target over LDAPS and records each outcome as it comes.
async fn direct(
    settings: &Settings,
    store: &Store,
    wave: &Wave,
    targets: Vec<(Target, UserState)>,
    skipped: &[Skipped],
    operator: &Operator,
    args: &ScrambleArgs,
) -> anyhow::Result<Outcome> {
    let scope = args.scope();
    let timeouts = Timeouts {
        connect: settings.throughput.connect_timeout,
        operation: settings.throughput.request_timeout,
    };
    let directory = Directory::connect(&settings.directory, timeouts)
        .await
        .context("connecting to the domain controller; nothing was changed")?;
    let dc = directory.domain_controller().to_owned();
    let run_settings = serde_json::json!({
        "mode": "ldap",
        "url": settings.directory.url.as_ref().map(ToString::to_string),
        "domain_controller": dc,
        "base_dn": directory.base_dn(),
        "bind_dn": directory.bind_dn(),
        "new_password": password_kind(settings.directory.new_password),
        "include_invited": scope == Scope::Invited,
    });
    let progress = ScrambleProgress(Progress::bar(targets.len() as u64));
    let ScrambledOverLdap {
        summary,
        failures,
        fatal,
    } = scrambling::scramble_over_ldap(
        directory,
        store,
        wave,
        targets,
        skipped.len() as u64,
        &settings.directory,
        &run_settings,
        operator,
        interruption()?,
        &progress,
    )
    .await
    .map_err(scramble_error)?;
    if let Some(err) = fatal {
        return Err(anyhow::Error::new(err).context(format!(
            "scramble of wave {} stopped after {} scrambled and {} failed user(s), which are recorded; run it again to continue",
            wave.name, summary.scrambled, summary.failed
        )));
    }
    if args.json {
        output::write_json(&ScrambleDocument {
            domain_controller: Some(dc),
            summary: Some(summary.clone()),
            failures: failures
                .iter()
                .map(|(t, f)| FailureRow {
                    user_id: t.user_id,
                    user_principal_name: Some(t.user_principal_name.clone()),
                    line: None,
                    code: Some(f.code),
                    error: f.message.clone(),
                    fix: Some(f.fix.clone()),
                })
                .collect(),
            ..ScrambleDocument::new(wave, "ldap", skipped)
        })?;
    } else {
        output::write_stdout(&render_summary(wave, &dc, &summary, &failures, skipped))?;
    }
    Ok(if summary.interrupted {
        Outcome::Interrupted
    } else if summary.failed > 0 {
        Outcome::SomeUsersFailed
    } else {
        Outcome::Done
    })
}

/// A scramble's error with the store's own error kept as itself (its kind decides the exit
/// code).
fn scramble_error(err: ScrambleError) -> anyhow::Error {
    match err {
        ScrambleError::Store(err) => err.into(),
        other @ ScrambleError::StateChanged { .. } => other.into(),
    }
}

/// The progress bar of a scramble over LDAPS, on stderr.
struct ScrambleProgress(Progress);

impl ScrambleObserver for ScrambleProgress {
    fn user_done(&self, summary: &ScrambleSummary) {
        self.0.inc();
        self.0.set_message(format!(
            "scrambled {}, failed {}",
            summary.scrambled, summary.failed
        ));
    }

    fn ended(&self) {
        self.0.finish();
    }
}

/// Writes the PowerShell script for the targets (atomically, mode 0600) and logs that it did.
async fn emit(
    settings: &Settings,
    store: &Store,
    wave: &Wave,
    targets: &[(Target, UserState)],
    skipped: &[Skipped],
    path: &Path,
    args: &ScrambleArgs,
) -> anyhow::Result<Outcome> {
    let json = args.json;
    if targets.is_empty() && json {
        output::write_json(&ScrambleDocument::new(wave, "script", skipped))?;
        return Ok(Outcome::Done);
    }
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
    let overwrite = if args.force {
        Overwrite::Yes
    } else {
        Overwrite::No
    };
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
    if json {
        output::write_json(&ScrambleDocument {
            file: Some(path.display().to_string()),
            ..ScrambleDocument::new(wave, "script", skipped).with_targets(targets)
        })?;
        return Ok(Outcome::Done);
    }
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

/// Records a script's results file: every row is checked first (a bad row stops the import,
/// with its line, before anything is recorded).
async fn import(
    store: &Store,
    wave: &Wave,
    path: &Path,
    operator: &Operator,
    json: bool,
) -> anyhow::Result<Outcome> {
    let rows = input::read_scramble_results(path)?;
    let members = scrambling::members(store, wave.id).await?;
    let checked = scrambling::check_results(&wave.name, path, &rows, &members)?;
    let (summary, failures) = scrambling::import_results(store, wave, path, checked, operator)
        .await
        .map_err(scramble_error)?;
    if json {
        output::write_json(&ScrambleDocument {
            file: Some(path.display().to_string()),
            imported: Some(summary.clone()),
            failures: failures
                .iter()
                .map(|(row, error)| FailureRow {
                    user_id: row.user_id,
                    user_principal_name: None,
                    line: Some(row.line),
                    code: None,
                    error: error.clone(),
                    fix: None,
                })
                .collect(),
            ..ScrambleDocument::new(wave, "import", &[])
        })?;
        return Ok(if summary.failed > 0 {
            Outcome::SomeUsersFailed
        } else {
            Outcome::Done
        });
    }
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

/// `scramble --json`: what one scramble did (or, with `--dry-run`, would do), by mode.
#[derive(Serialize)]
struct ScrambleDocument {
    wave: String,
    /// `dry-run`, `ldap` (over LDAPS), `script` (`--emit-powershell`) or `import`
    /// (`--import-results`).
    mode: &'static str,
    /// `ldap`: the domain controller that was used.
    #[serde(skip_serializing_if = "Option::is_none")]
    domain_controller: Option<String>,
    /// `script`: the script written; `import`: the results file read.
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    /// `dry-run`: who would be scrambled now; `script`: who the script scrambles.
    targets: Vec<TargetRow>,
    /// `dry-run`: targets left for a later run by `--limit`.
    waiting: usize,
    /// Members not scrambled, and why.
    skipped: Vec<SkippedRow>,
    /// `ldap`: the outcome counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<ScrambleSummary>,
    /// `import`: the results recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    imported: Option<ImportSummary>,
    /// `ldap` and `import`: the users that could not be scrambled.
    failures: Vec<FailureRow>,
}

#[derive(Serialize)]
struct TargetRow {
    user_id: UserId,
    user_principal_name: String,
    state: UserState,
    sam_account_name: Option<String>,
    object_guid: String,
    distinguished_name: Option<String>,
}

#[derive(Serialize)]
struct SkippedRow {
    user_id: UserId,
    user_principal_name: String,
    reason: &'static str,
    why: String,
}

#[derive(Serialize)]
struct FailureRow {
    user_id: UserId,
    /// `ldap` only (the results file has ids).
    user_principal_name: Option<String>,
    /// `import`: the line of the results file.
    line: Option<u64>,
    code: Option<&'static str>,
    error: String,
    fix: Option<String>,
}

impl output::JsonDocument for ScrambleDocument {
    const SCHEMA: &'static str = "scramble";
    const VERSION: u32 = 1;
}

impl ScrambleDocument {
    fn new(wave: &Wave, mode: &'static str, skipped: &[Skipped]) -> Self {
        Self {
            wave: wave.name.clone(),
            mode,
            domain_controller: None,
            file: None,
            targets: Vec::new(),
            waiting: 0,
            skipped: skipped
                .iter()
                .map(|s| SkippedRow {
                    user_id: s.user_id,
                    user_principal_name: s.user_principal_name.clone(),
                    reason: s.reason.code(),
                    why: s.reason.to_string(),
                })
                .collect(),
            summary: None,
            imported: None,
            failures: Vec::new(),
        }
    }

    fn with_targets(mut self, targets: &[(Target, UserState)]) -> Self {
        self.targets = targets
            .iter()
            .map(|(t, state)| TargetRow {
                user_id: t.user_id,
                user_principal_name: t.user_principal_name.clone(),
                state: *state,
                sam_account_name: t.sam_account_name.clone(),
                object_guid: t.object_guid.to_string(),
                distinguished_name: t.distinguished_name.clone(),
            })
            .collect();
        self
    }
}

fn password_kind(kind: NewPasswordKind) -> &'static str {
    match kind {
        NewPasswordKind::Guid => "guid",
        NewPasswordKind::Random => "random",
    }
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
    summary: &ScrambleSummary,
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
