//! `run`: convert a wave's stored plan. Orchestration only: the safety checks before anything
//! is sent (plan present, settings unchanged since the plan, cap, confirmation, the database
//! lock), then [`crate::execute::Executor`] does the work and this prints its summary.

use std::fmt::Write as _;
use std::io::{BufRead as _, IsTerminal as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use time::OffsetDateTime;

use super::{Ctx, Outcome, Refused, UsageError, connect, interruption, open_store, stored_wave};
use crate::cli::RunArgs;
use crate::config::{INVITATIONS_PER_SECOND_CEILING, Settings};
use crate::domain::{FailureKind, RunId, UserId, UserState};
use crate::execute::{
    Executor, InvitationTemplate, Pacer, RunError, RunLock, RunObserver, RunOptions, RunSummary,
    UserOutcome, throttle_reporter,
};
use crate::output::{self, Progress};
use crate::store::{RunStatus, Store, Wave};

impl RunArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<Outcome> {
        let settings = ctx.settings()?;
        let store = open_store(&settings).await?;
        let wave = stored_wave(&store, &self.wave).await?;
        super::same_tenant(&store, &settings).await?;
        let template = runnable(&settings, &wave)?;
        let counts = store.state_counts(wave.id).await?;
        let count = |state: UserState| {
            counts
                .iter()
                .find(|(s, _)| *s == state)
                .map_or(0, |(_, n)| *n)
        };
        let members: u64 = counts.iter().map(|(_, n)| n).sum();
        if let Some(cap) = wave.cap
            && members > u64::from(cap)
        {
            return Err(Refused(format!(
                "wave {} has {members} members, more than its cap of {cap}; re-plan it",
                wave.name
            ))
            .into());
        }
        let to_do = count(UserState::Ready) + count(UserState::Inviting) + count(UserState::Failed);
        if to_do == 0 {
            output::write_stdout(&format!(
                "Wave {}: nothing to convert ({} invited, {} accepted, {} excluded, {} drifted).\n",
                wave.name,
                count(UserState::Invited),
                count(UserState::Accepted),
                count(UserState::Excluded),
                count(UserState::Drifted),
            ))?;
            return Ok(Outcome::Done);
        }
        if self.dry_run {
            print_dry_run(&settings, &store, &wave, &template, self.limit).await?;
            return Ok(Outcome::Done);
        }
        let rate = self
            .rate
            .unwrap_or(settings.throughput.max_invitations_per_second);
        if !(rate > 0.0 && rate <= INVITATIONS_PER_SECOND_CEILING) {
            return Err(UsageError(format!(
                "--rate must be above 0 and at most {INVITATIONS_PER_SECOND_CEILING} (the service allows 150 invitations per 5 seconds per tenant)"
            ))
            .into());
        }
        confirm(&self, &settings, &wave, count(UserState::Ready))?;
        let _lock = RunLock::acquire(&settings.store.path, &format!("run --wave {}", wave.name))?;
        let pace = Pace {
            rate,
            concurrency: self
                .concurrency
                .map_or(settings.throughput.max_concurrency.get(), |c| c as usize),
            limit: self.limit,
            reconcile_delay: Duration::from_secs(self.reconcile_delay),
        };
        let summary = execute(
            &settings,
            &store,
            &wave,
            template,
            &pace,
            count(UserState::Ready),
            "run",
        )
        .await?;
        output::write_stdout(&render_summary(&wave, &summary, &store).await?)?;
        Ok(if summary.failed() > 0 {
            Outcome::SomeUsersFailed
        } else {
            Outcome::Done
        })
    }
}

/// How fast and how much a run goes.
pub(super) struct Pace {
    pub rate: f64,
    pub concurrency: usize,
    pub limit: Option<usize>,
    pub reconcile_delay: Duration,
}

/// Runs the executor (the caller holds the lock) and records the run from start to end.
pub(super) async fn execute(
    settings: &Settings,
    store: &Store,
    wave: &Wave,
    template: InvitationTemplate,
    pace: &Pace,
    ready: u64,
    command: &str,
) -> anyhow::Result<RunSummary> {
    let invitations = Arc::new(Pacer::new(pace.rate));
    let client = Arc::new(
        connect(settings)?.with_retry_observer(throttle_reporter(Arc::clone(&invitations))),
    );
    let run_id = RunId::new();
    let options = RunOptions {
        concurrency: pace.concurrency,
        invitations_per_second: pace.rate,
        directory_writes_per_second: settings.throughput.max_directory_writes_per_second,
        reconcile_delay: pace.reconcile_delay,
        limit: pace.limit,
        attempts_per_run: 5,
    };
    let progress = Arc::new(ProgressObserver::new(
        ready.min(pace.limit.map_or(u64::MAX, |l| l as u64)),
    ));
    store
        .start_run(
            run_id,
            wave.id,
            command,
            &serde_json::to_value(&template)?,
            OffsetDateTime::now_utc(),
        )
        .await?;
    let executor = Executor::new(
        client,
        store.clone(),
        wave.id,
        run_id,
        template,
        invitations,
        options,
        progress.clone(),
    );
    tracing::info!(run = %run_id, wave = %wave.name, rate = pace.rate, "run started");
    let result = executor.run(interruption()?).await;
    progress.finish();
    let (status, summary_json) = match &result {
        Ok(summary) if summary.interrupted => {
            (RunStatus::Interrupted, serde_json::to_value(summary)?)
        }
        Ok(summary) => (RunStatus::Completed, serde_json::to_value(summary)?),
        Err(err) => (
            RunStatus::Failed,
            serde_json::json!({ "error": err.to_string() }),
        ),
    };
    store
        .finish_run(run_id, status, &summary_json, OffsetDateTime::now_utc())
        .await?;
    result.map_err(|err| match err {
        RunError::Graph(err) => anyhow::Error::new(err).context(format!(
            "run of wave {} stopped; members in flight were recorded, run again to resume",
            wave.name
        )),
        RunError::Store(err) => anyhow::Error::new(err).context("run stopped"),
    })
}

/// The run may go ahead with these invitation settings: they are the plan's.
fn runnable(settings: &Settings, wave: &Wave) -> anyhow::Result<InvitationTemplate> {
    if wave.plan_hash.is_none() {
        return Err(UsageError(format!(
            "wave {} has no plan; run `b2b-convert plan --wave {}` first",
            wave.name, wave.name
        ))
        .into());
    }
    let now = crate::plan::invitation_json(settings);
    let planned = &wave.settings["invitation"];
    let changed: Vec<&str> = now
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(key, value)| planned.get(key.as_str()) != Some(value))
        .map(|(key, _)| key.as_str())
        .collect();
    if !changed.is_empty() {
        return Err(Refused(format!(
            "the invitation settings changed since wave {} was planned (invitation.{}); the dry-run report no longer shows what would be sent: re-plan the wave (and review its report) or restore the settings",
            wave.name,
            changed.join(", invitation.")
        ))
        .into());
    }
    Ok(InvitationTemplate::from_settings(&settings.invitation)?)
}

/// The operator said yes: `--yes`, or the wave name typed at the terminal.
fn confirm(args: &RunArgs, settings: &Settings, wave: &Wave, ready: u64) -> anyhow::Result<()> {
    if args.yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Refused(
            "run changes the tenant and stdin is not a terminal: pass --yes to confirm".into(),
        )
        .into());
    }
    let limit = args
        .limit
        .map_or(String::new(), |l| format!(" (at most {l} now)"));
    output::notice(&format!(
        "About to convert {ready} user(s){limit} of wave {} into B2B users in tenant {}.\n\
         Microsoft {} the invitation emails. This cannot simply be undone.\n\
         Type the wave name to go ahead:",
        wave.name,
        settings
            .tenant
            .tenant_id
            .as_deref()
            .unwrap_or("(from the token)"),
        if settings.invitation.send_message {
            "sends"
        } else {
            "does not send"
        },
    ));
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .context("reading the confirmation")?;
    if answer.trim() != wave.name {
        return Err(Refused("not confirmed; nothing was sent".into()).into());
    }
    Ok(())
}

/// Prints each request the run would send, in order, without sending any.
async fn print_dry_run(
    settings: &Settings,
    store: &Store,
    wave: &Wave,
    template: &InvitationTemplate,
    limit: Option<usize>,
) -> anyhow::Result<()> {
    let base = settings.tenant.graph_url.as_str().trim_end_matches('/');
    let members = store
        .members_in_states(wave.id, &[UserState::Ready, UserState::Failed])
        .await?;
    let mut out = String::new();
    writeln!(
        out,
        "# Dry run of wave {}: the requests `run` would send, in order. Nothing is sent.\n\
         # Every request also carries `Authorization: Bearer <token>` (not shown) and a client-request-id.\n\
         # Each user is re-read first (GET {base}/v1.0/users/{{id}}); users whose rule inputs changed are skipped.",
        wave.name
    )?;
    let mut count = 0;
    for (member, names) in &members {
        if limit.is_some_and(|l| count >= l) {
            break;
        }
        if member.state == UserState::Failed && member.failure_kind != Some(FailureKind::Retryable)
        {
            continue;
        }
        let Some(address) = member.plan.chosen_address.as_deref() else {
            continue;
        };
        let user = member.plan.user_id;
        writeln!(out, "\n# {} ({user})", names.user_principal_name)?;
        if member.plan.set_mail {
            writeln!(
                out,
                "PATCH {base}/v1.0/users/{user}\nContent-Type: application/json\n\n{}\n",
                serde_json::json!({ "mail": address })
            )?;
        }
        let request = template.request(user, address, names.display_name.as_deref());
        writeln!(
            out,
            "POST {base}/v1.0/invitations\nContent-Type: application/json\n\n{}",
            serde_json::to_string_pretty(&request)?
        )?;
        count += 1;
    }
    let more = match limit {
        Some(_) => " (--limit)",
        None => "",
    };
    writeln!(out, "\n# {count} invitation(s) would be sent{more}.")?;
    output::write_stdout(&out)?;
    Ok(())
}

pub(super) async fn render_summary(
    wave: &Wave,
    summary: &RunSummary,
    store: &Store,
) -> anyhow::Result<String> {
    let mut text = String::new();
    let headline = if summary.interrupted {
        "interrupted (run the same command again to continue)"
    } else {
        "finished"
    };
    writeln!(text, "Run of wave {} {headline}.", wave.name)?;
    let rows = [
        ("invited", summary.invited),
        (
            "already invited (read back from Graph)",
            summary.reconciled + summary.reconciled_at_start,
        ),
        (
            "drifted (changed since the plan; not converted)",
            summary.drifted,
        ),
        ("failed, retryable (run again)", summary.failed_retryable),
        ("failed, permanent (see the fix)", summary.failed_permanent),
        (
            "outcome unknown (the next run reconciles)",
            summary.unresolved,
        ),
        ("not started", summary.not_started),
    ];
    text.push_str(&output::table(
        ["outcome", "users"],
        rows.iter()
            .filter(|(_, n)| *n > 0)
            .map(|(label, n)| [(*label).to_owned(), n.to_string()]),
    ));
    writeln!(
        text,
        "{:.1} s, {:.1} invitations/s, throttled {} time(s).",
        summary.elapsed_seconds, summary.invitations_per_second, summary.throttled
    )?;
    let failed = store
        .members_in_states(wave.id, &[UserState::Failed, UserState::Drifted])
        .await?;
    if !failed.is_empty() {
        writeln!(text, "\nUsers not converted:")?;
        text.push_str(&output::table(
            ["user", "state", "why"],
            failed.iter().take(50).map(|(member, names)| {
                [
                    names.user_principal_name.clone(),
                    member.state.to_string(),
                    member.last_error_message.clone().unwrap_or_default(),
                ]
            }),
        ));
        if failed.len() > 50 {
            writeln!(
                text,
                "… and {} more: `b2b-convert report --wave {}` lists them all.",
                failed.len() - 50,
                wave.name
            )?;
        }
    }
    writeln!(
        text,
        "Next: `b2b-convert status --wave {} --refresh` to follow redemptions.",
        wave.name
    )?;
    Ok(text)
}

/// The progress bar on stderr (hidden when stderr is not a terminal).
struct ProgressObserver {
    bar: Progress,
    invited: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
    started: std::time::Instant,
}

impl ProgressObserver {
    fn new(total: u64) -> Self {
        Self {
            bar: Progress::bar(total),
            invited: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            started: std::time::Instant::now(),
        }
    }

    fn finish(&self) {
        self.bar.finish();
    }
}

impl RunObserver for ProgressObserver {
    fn user_done(&self, _user: UserId, outcome: &UserOutcome) {
        let counter = match outcome {
            UserOutcome::Invited | UserOutcome::Reconciled => &self.invited,
            UserOutcome::Drifted(_) => &self.skipped,
            UserOutcome::Failed { .. } | UserOutcome::Unresolved(_) => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let invited = self.invited.load(Ordering::Relaxed);
        self.bar.inc();
        self.bar.set_message(format!(
            "invited {invited}, failed {}, skipped {}, {:.1}/s",
            self.failed.load(Ordering::Relaxed),
            self.skipped.load(Ordering::Relaxed),
            output::rate(invited, self.started.elapsed()),
        ));
    }
}
