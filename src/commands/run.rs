//! `run`: convert a wave's stored plan. Orchestration only: the safety checks before anything
//! is sent (plan present, settings unchanged since the plan, cap, confirmation, the database
//! lock), then the executor does the work ([`crate::execute::run_wave`], through the layer's
//! `convert`, shared with `invite`) and its summary is printed.

use std::time::Duration;

use super::{Confirmation, Ctx, Outcome, Refused, UsageError, confirm, convert, stored_wave};
use crate::cli::RunArgs;
use crate::config::{INVITATIONS_PER_SECOND_CEILING, Settings};
use crate::domain::{FailureKind, UserState};
use crate::execute::{Concurrency, InvitationTemplate, Pace, RunLock, RunSummary};
use crate::output::{self, terminal_safe};
use crate::report::requests::{DryRun, PlannedRequest};
use crate::report::run::RunDocument;
use crate::store::{Store, Wave};

impl RunArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<Outcome> {
        let settings = ctx.settings()?;
        let store = ctx.existing_store(&settings).await?;
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
            let nothing = RunSummary::default();
            let document = RunDocument::new("run", &wave.name, &nothing, &[]);
            output::write_result(self.json, &document, |_| {
                format!(
                    "Wave {}: nothing to convert ({} invited, {} accepted, {} excluded, {} drifted).\n",
                    wave.name,
                    count(UserState::Invited),
                    count(UserState::Accepted),
                    count(UserState::Excluded),
                    count(UserState::Drifted),
                )
            })?;
            return Ok(Outcome::Done);
        }
        let rate = self
            .rate
            .unwrap_or(settings.throughput.max_invitations_per_second);
        warn_if_token_will_not_last(&settings, to_do, rate);
        if self.dry_run {
            print_dry_run(&settings, &store, &wave, &template, self.limit, self.json).await?;
            return Ok(Outcome::Done);
        }
        if !(rate > 0.0 && rate <= INVITATIONS_PER_SECOND_CEILING) {
            return Err(UsageError(format!(
                "--rate must be above 0 and at most {INVITATIONS_PER_SECOND_CEILING} (the service allows 150 invitations per 5 seconds per tenant)"
            ))
            .into());
        }
        let prompt = if self.yes {
            String::new()
        } else {
            // Only asked at a terminal: what the operator is about to do, in full.
            let ready = store
                .members_in_states(wave.id, &[UserState::Ready])
                .await?;
            let facts = store.tenant_facts().await?;
            run_prompt(&RunPrompt {
                wave: &wave.name,
                tenant_name: facts.as_ref().and_then(|f| f.display_name.as_deref()),
                tenant_id: settings.tenant.tenant_id.as_deref(),
                users: count(UserState::Ready),
                limit: self.limit.map(|l| l as u64),
                mail_changes: ready.iter().filter(|(m, _)| m.plan.set_mail).count() as u64,
                send_message: settings.invitation.send_message,
            })
        };
        confirm(&Confirmation {
            yes: self.yes,
            changes: "run changes the tenant",
            prompt,
            expected: &wave.name,
            ignore_case: false,
            not_done: "sent",
        })?;
        let _lock = RunLock::acquire(&settings.store.path, &format!("run --wave {}", wave.name))?;
        let pace = self.pace(&settings, rate);
        convert(
            &settings,
            &store,
            &wave,
            template,
            &pace,
            count(UserState::Ready),
            "run",
            &ctx.operator(),
            &|result| {
                Ok(output::write_result(
                    self.json,
                    result,
                    RunDocument::render,
                )?)
            },
        )
        .await
    }

    /// How fast the run goes: `--rate`, `--concurrency`, `--limit` and the configured limits.
    fn pace(&self, settings: &Settings, rate: f64) -> Pace {
        Pace {
            rate,
            concurrency: self.concurrency.map_or(
                Concurrency::Adaptive {
                    start: settings.throughput.max_concurrency.get(),
                },
                |c| Concurrency::Fixed(c as usize),
            ),
            limit: self.limit,
            reconcile_delay: Duration::from_secs(self.reconcile_delay),
            directory_writes_per_second: settings.throughput.max_directory_writes_per_second,
            restore_mail_on_failure: settings.invitation.restore_mail_on_failure,
            max_invitations_per_day: settings.throughput.max_invitations_per_day,
        }
    }
}

/// A static `access-token` cannot be refreshed: say so before starting when it expires
/// before the run's estimated end (users ÷ rate). The run still starts; when the token
/// expires, it stops with every finished user recorded.
fn warn_if_token_will_not_last(settings: &Settings, users: u64, rate: f64) {
    let Some(expires) = settings.static_token_expiry() else {
        return;
    };
    #[allow(clippy::cast_precision_loss)] // an estimate
    let seconds = (users as f64 / rate).ceil();
    let now = time::OffsetDateTime::now_utc();
    #[allow(clippy::cast_possible_truncation)] // whole seconds of an estimate
    let end = now + time::Duration::seconds(seconds as i64);
    if expires < end {
        output::notice(&format!(
            "warning: the access token expires at {expires} ({} s from now), before the run's \
             estimated end at {end} ({users} users at {rate}/s); the run will stop when it \
             expires. Use a method that refreshes its token (managed-identity, \
             workload-identity, azure-cli, certificate) for long waves.",
            (expires - now).whole_seconds().max(0),
        ));
    }
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
    // Both ways: a setting kept only when on is in the plan and not in `now` when turned off.
    let keys: std::collections::BTreeSet<&str> = [&now, planned]
        .into_iter()
        .filter_map(serde_json::Value::as_object)
        .flat_map(|settings| settings.keys().map(String::as_str))
        .collect();
    let changed: Vec<&str> = keys
        .into_iter()
        .filter(|key| now.get(key) != planned.get(key))
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

/// What `run` asks the operator to confirm.
struct RunPrompt<'a> {
    wave: &'a str,
    tenant_name: Option<&'a str>,
    tenant_id: Option<&'a str>,
    /// Members ready to be converted.
    users: u64,
    limit: Option<u64>,
    /// Of them, those whose `mail` is set to the invitation address first.
    mail_changes: u64,
    send_message: bool,
}

/// The confirmation prompt: the tenant by name and id, the wave, the invitations and `mail`
/// changes, whether Microsoft mails the partners; then the wave name to type.
fn run_prompt(prompt: &RunPrompt<'_>) -> String {
    let tenant = match (prompt.tenant_name, prompt.tenant_id) {
        (Some(name), Some(id)) => format!("{} ({id})", terminal_safe(name)),
        (Some(name), None) => terminal_safe(name),
        (None, Some(id)) => id.to_owned(),
        (None, None) => "(the token's tenant)".to_owned(),
    };
    let now = prompt.limit.map_or(prompt.users, |l| l.min(prompt.users));
    let limit = if now < prompt.users {
        format!(" (at most {now} now, --limit)")
    } else {
        String::new()
    };
    format!(
        "About to convert {} user(s){limit} of wave {} into B2B users in tenant {tenant}:\n  \
         {} invitation(s) (POST /invitations), {} of them after setting mail to the invitation address;\n  \
         Microsoft {} the invitation emails.\n\
         This cannot simply be undone. Type the wave name to go ahead:",
        prompt.users,
        terminal_safe(prompt.wave),
        now,
        prompt.mail_changes.min(now),
        if prompt.send_message {
            "sends"
        } else {
            "does not send (own distribution: `export-links`)"
        },
    )
}

/// Shows each request the run would send, in order, without sending any.
async fn print_dry_run(
    settings: &Settings,
    store: &Store,
    wave: &Wave,
    template: &InvitationTemplate,
    limit: Option<usize>,
    json: bool,
) -> anyhow::Result<()> {
    let base = settings.tenant.graph_url.as_str().trim_end_matches('/');
    let members = store
        .members_in_states(wave.id, &[UserState::Ready, UserState::Failed])
        .await?;
    let mut dry = DryRun::new(
        "run",
        Some(&wave.name),
        format!(
            "Each user is re-read first (GET {base}/v1.0/users/{{id}}); users whose rule inputs changed are skipped."
        ),
    );
    for (member, names) in &members {
        if limit.is_some_and(|l| dry.invitations >= l) {
            dry.limited = true;
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
        let upn = &names.user_principal_name;
        let request =
            template.request(user, address, names.display_name.as_deref(), &names.profile);
        dry.push_user(
            member
                .plan
                .set_mail
                .then(|| PlannedRequest::set_mail(base, user, upn, address)),
            PlannedRequest::invitation(base, upn, &request),
        );
    }
    Ok(output::write_result(json, &dry, DryRun::render)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_names_the_tenant_the_wave_the_invitations_mail_changes_and_the_emails() {
        let prompt = run_prompt(&RunPrompt {
            wave: "pilot",
            tenant_name: Some("Contoso\u{1b}[2J Ltd"),
            tenant_id: Some("0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"),
            users: 120,
            limit: Some(50),
            mail_changes: 70,
            send_message: false,
        });
        assert_eq!(
            prompt,
            "About to convert 120 user(s) (at most 50 now, --limit) of wave pilot into B2B users \
             in tenant Contoso\u{fffd}[2J Ltd (0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0):\n  \
             50 invitation(s) (POST /invitations), 50 of them after setting mail to the invitation address;\n  \
             Microsoft does not send (own distribution: `export-links`) the invitation emails.\n\
             This cannot simply be undone. Type the wave name to go ahead:"
        );
        let unlimited = run_prompt(&RunPrompt {
            wave: "pilot",
            tenant_name: None,
            tenant_id: Some("t"),
            users: 3,
            limit: None,
            mail_changes: 1,
            send_message: true,
        });
        assert!(unlimited.contains("3 user(s) of wave pilot into B2B users in tenant t:"));
        assert!(unlimited.contains("3 invitation(s) (POST /invitations), 1 of them"));
        assert!(unlimited.contains("Microsoft sends the invitation emails."));
    }
}
