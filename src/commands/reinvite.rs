//! `reinvite`: re-send the invitations of a wave's members (lost links, old pending
//! invitations, or a redemption reset). Orchestration only: the checks before anything is sent
//! (the wave was run, its links are kept for `--missing-links`, an unfinished reinvite of
//! another selection), the confirmation, the database lock; then
//! [`crate::execute::reinvite`] selects, sends and records, and its summary is printed.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use super::{
    Confirmation, Ctx, Outcome, ProgressObserver, Refused, UsageError, confirm, connect,
    interruption, same_tenant, stored_wave, token_operator,
};
use crate::cli::ReinviteArgs;
use crate::config::INVITATIONS_PER_SECOND_CEILING;
use crate::domain::UserId;
use crate::execute::reinvite::{self, Mode, PlanError, Planned, ResendSummary, Selection};
use crate::execute::{Concurrency, InvitationTemplate, Pace, RunError, RunLock};
use crate::output;
use crate::report::requests::{DryRun, PlannedRequest};
use crate::store::{Store, Wave};

impl ReinviteArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<Outcome> {
        let settings = ctx.settings()?;
        let store = ctx.existing_store(&settings).await?;
        let wave = stored_wave(&store, &self.wave).await?;
        same_tenant(&store, &settings).await?;
        let mode = if self.reset_redemption {
            Mode::ResetRedemption
        } else {
            Mode::Resend
        };
        let keeps_links =
            wave.settings["invitation"]["send_message"] == serde_json::Value::Bool(false);
        let template = template(&store, &wave, mode, self.missing_links && !keeps_links).await?;
        let selection = Selection {
            mode,
            missing_links: self.missing_links,
            older_than: self.older_than,
            users: resolve_users(&store, &wave, &self.users).await?,
        };
        let planned = plan(&store, &wave, &selection).await?;
        if planned.count() == 0 {
            let document = ReinviteDocument {
                wave: &wave.name,
                mode,
                summary: None,
            };
            output::write_result(self.json, &document, |_| {
                format!(
                    "Wave {}: nobody to re-invite with this selection.\n",
                    wave.name
                )
            })?;
            return Ok(Outcome::Done);
        }
        if self.dry_run {
            let dry = dry_run(&settings, &store, &wave, &template, &planned).await?;
            output::write_result(self.json, &dry, DryRun::render)?;
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
        confirm(&Confirmation {
            yes: self.yes,
            changes: "reinvite changes the tenant",
            prompt: prompt(&wave, mode, &planned, template.send_message),
            expected: &wave.name,
            ignore_case: false,
            not_done: "sent",
        })?;
        let _lock = RunLock::acquire(
            &settings.store.path,
            &format!("reinvite --wave {}", wave.name),
        )?;
        // Under the lock, what to do is decided again: another process may have moved on.
        let planned = plan(&store, &wave, &selection).await?;
        let now = time::OffsetDateTime::now_utc();
        let (operation, resumed) = reinvite::start(&store, &wave, &selection, planned, now).await?;
        let pace = self.pace(&settings, rate);
        let open = store
            .reinvite_members(operation.id)
            .await?
            .iter()
            .filter(|m| m.state.is_open())
            .count() as u64;
        let client = connect(&settings)?;
        let operator = token_operator(&ctx.operator(), &client).await;
        let progress = Arc::new(ProgressObserver::new(open));
        let stop = interruption()?;
        let mut summary = reinvite::reinvite_wave(
            client, &store, &wave, template, &pace, &operation, mode, &operator, progress, stop,
        )
        .await?
        .map_err(|err| match err {
            RunError::Graph(err) => anyhow::Error::new(err).context(format!(
                "reinvite of wave {} stopped; re-sends in flight were recorded, run the same command again to resume",
                wave.name
            )),
            RunError::Store(err) => anyhow::Error::new(err).context("reinvite stopped"),
        })?;
        summary.resumed = resumed;
        let text = if self.json {
            String::new()
        } else {
            render(&store, &wave, &summary, keeps_links).await?
        };
        let document = ReinviteDocument {
            wave: &wave.name,
            mode,
            summary: Some(&summary),
        };
        output::write_result(self.json, &document, |_| text)?;
        outcome(summary, &wave.name)
    }

    /// How fast re-sends go: `--rate`, `--concurrency` and the configured limits.
    fn pace(&self, settings: &crate::config::Settings, rate: f64) -> Pace {
        Pace {
            rate,
            concurrency: self.concurrency.map_or(
                Concurrency::Adaptive {
                    start: settings.throughput.max_concurrency.get(),
                },
                |c| Concurrency::Fixed(c as usize),
            ),
            limit: None,
            reconcile_delay: Duration::from_secs(self.reconcile_delay),
            directory_writes_per_second: settings.throughput.max_directory_writes_per_second,
            restore_mail_on_failure: false,
            max_invitations_per_day: settings.throughput.max_invitations_per_day,
        }
    }
}

/// `reinvite --json`: what this invocation did and where the operation stands (no counts when
/// nobody matched the selection).
#[derive(serde::Serialize)]
struct ReinviteDocument<'a> {
    wave: &'a str,
    mode: Mode,
    #[serde(flatten)]
    summary: Option<&'a ResendSummary>,
}

impl output::JsonDocument for ReinviteDocument<'_> {
    const SCHEMA: &'static str = "reinvite";
    const VERSION: u32 = 1;
}

/// How a reinvite ended, as an exit: a closed invitation gate is an error of its own (the
/// abuse block: 1, a daily quota: 5), then an interruption, then members not re-sent.
fn outcome(mut summary: ResendSummary, wave: &str) -> anyhow::Result<Outcome> {
    if let Some(halt) = summary.halted.take() {
        return Err(anyhow::Error::new(halt).context(format!(
            "reinvite of wave {wave} stopped sending invitations"
        )));
    }
    Ok(if summary.interrupted {
        Outcome::Interrupted
    } else if summary.failed + summary.unknown + summary.unresolved > 0
        || summary
            .problems
            .iter()
            .any(|problem| problem.state == "failed")
    {
        Outcome::SomeUsersFailed
    } else {
        Outcome::Done
    })
}

/// The invitation settings the wave's `run` used, or why there is nothing to re-send with.
async fn template(
    store: &Store,
    wave: &Wave,
    mode: Mode,
    links_asked_but_not_kept: bool,
) -> anyhow::Result<InvitationTemplate> {
    if links_asked_but_not_kept {
        return Err(UsageError(format!(
            "wave {} sends Microsoft's invitation email (invitation.send_message = true), so no links are kept and none is missing; use --older-than to have Microsoft mail pending users again",
            wave.name
        ))
        .into());
    }
    reinvite::wave_template(store, wave, mode)
        .await?
        .ok_or_else(|| {
            UsageError(format!(
                "wave {} has not been run: nobody was invited, so there is nothing to re-send; run it first with `b2b-convert run --wave {}`",
                wave.name, wave.name
            ))
            .into()
        })
}

async fn plan(store: &Store, wave: &Wave, selection: &Selection) -> anyhow::Result<Planned> {
    reinvite::plan(store, wave, selection, time::OffsetDateTime::now_utc())
        .await
        .map_err(|err| match err {
            PlanError::OtherOpen { .. } => Refused(err.to_string()).into(),
            PlanError::Store(err) => err.into(),
        })
}

/// `--user` values (object ids or UPNs) as the wave's members' ids.
async fn resolve_users(
    store: &Store,
    wave: &Wave,
    given: &[String],
) -> anyhow::Result<Vec<UserId>> {
    if given.is_empty() {
        return Ok(Vec::new());
    }
    let members = store.members_with_names(wave.id).await?;
    given
        .iter()
        .map(|text| {
            let id = text.parse::<UserId>().ok();
            members
                .iter()
                .find(|(m, names)| {
                    Some(m.plan.user_id) == id
                        || names.user_principal_name.eq_ignore_ascii_case(text.trim())
                })
                .map(|(m, _)| m.plan.user_id)
                .ok_or_else(|| {
                    UsageError(format!(
                        "{} is not a member of wave {}",
                        crate::output::terminal_safe(text),
                        wave.name
                    ))
                    .into()
                })
        })
        .collect()
}

fn prompt(wave: &Wave, mode: Mode, planned: &Planned, send_message: bool) -> String {
    let what = match mode {
        Mode::Resend => "re-send the invitation of",
        Mode::ResetRedemption => "reset the redemption of (they must redeem again)",
    };
    let resuming = match planned {
        Planned::Resume { .. } => " (resuming the unfinished reinvite)",
        Planned::New(_) => "",
    };
    format!(
        "About to {what} {} member(s) of wave {}{resuming}.\n\
         Microsoft {} the invitation emails.\n\
         Type the wave name to go ahead:",
        planned.count(),
        wave.name,
        if send_message {
            "sends"
        } else {
            "does not send"
        },
    )
}

/// The requests reinvite would send, in order.
async fn dry_run(
    settings: &crate::config::Settings,
    store: &Store,
    wave: &Wave,
    template: &InvitationTemplate,
    planned: &Planned,
) -> anyhow::Result<DryRun> {
    let base = settings.tenant.graph_url.as_str().trim_end_matches('/');
    let users: Vec<UserId> = match planned {
        Planned::New(users) => users.clone(),
        Planned::Resume { reinvite, .. } => store
            .reinvite_members(reinvite.id)
            .await?
            .into_iter()
            .filter(|m| m.state.is_open())
            .map(|m| m.user_id)
            .collect(),
    };
    let members = store.members_with_names(wave.id).await?;
    let mut dry = DryRun::new(
        "reinvite",
        Some(&wave.name),
        format!(
            "Each user is re-read first (GET {base}/v1.0/users/{{id}}) and skipped unless Graph shows it pending (accepted, for a reset)."
        ),
    );
    for user in &users {
        let Some((member, names)) = members.iter().find(|(m, _)| m.plan.user_id == *user) else {
            continue;
        };
        let Some(address) = member.plan.chosen_address.as_deref() else {
            continue;
        };
        let request = template.request(
            *user,
            address,
            names.display_name.as_deref(),
            &names.profile,
        );
        dry.push_user(
            None,
            PlannedRequest::invitation(base, &names.user_principal_name, &request),
        );
    }
    Ok(dry)
}

async fn render(
    store: &Store,
    wave: &Wave,
    summary: &ResendSummary,
    keeps_links: bool,
) -> anyhow::Result<String> {
    let mut text = String::new();
    writeln!(
        text,
        "Reinvite of wave {}{}: {} re-sent ({} with a new link stored), {} re-sent without an answer (reset seen in Graph), {} answer(s) lost, {} skipped, {} failed, {} not settled.",
        wave.name,
        if summary.resumed { " (resumed)" } else { "" },
        summary.sent,
        summary.links_stored,
        summary.reconciled,
        summary.unknown,
        summary.skipped,
        summary.failed,
        summary.unresolved,
    )?;
    if summary.interrupted || summary.open > 0 {
        writeln!(
            text,
            "{} member(s) left: run the same command again to finish this reinvite (nobody it may have reached is sent again).",
            summary.open
        )?;
    }
    if !summary.problems.is_empty() {
        let names = store.members_with_names(wave.id).await?;
        let upn = |user: UserId| {
            names
                .iter()
                .find(|(m, _)| m.plan.user_id == user)
                .map_or_else(|| user.to_string(), |(_, n)| n.user_principal_name.clone())
        };
        writeln!(text, "Not re-sent, or its answer lost:")?;
        for problem in &summary.problems {
            writeln!(
                text,
                "  {} ({}): {}: {}",
                crate::output::terminal_safe(&upn(problem.user_id)),
                problem.user_id,
                problem.state,
                crate::output::terminal_safe(&problem.note)
            )?;
        }
        if summary.finished && keeps_links {
            writeln!(
                text,
                "This reinvite is over. Those whose answer was lost still have no link: `reinvite --missing-links` again sends them a new invitation (no email reaches the partner with invitation.send_message = false)."
            )?;
        }
    }
    if keeps_links && summary.links_stored > 0 {
        writeln!(
            text,
            "New links are stored: write them with `b2b-convert export-links --wave {}`.",
            wave.name
        )?;
    }
    Ok(text)
}
