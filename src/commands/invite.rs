//! `invite`: convert one user now. Orchestration only: the user is read from Graph and judged
//! through the planning engine's decision path ([`crate::plan::decision`], the same as `plan`'s),
//! recorded as a one-user wave, and converted by the same executor as `run` (with its lock,
//! drift check, baseline, intent record and reconciliation).

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use time::OffsetDateTime;

use super::{
    Confirmation, Ctx, Outcome, Refused, UsageError, confirm, connect, convert, realm_client,
};
use crate::cli::InviteArgs;
use crate::config::Settings;
use crate::domain::{Decision, Rule, RuleMode, UserId, UserSnapshot};
use crate::execute::{Concurrency, InvitationTemplate, Pace, RunLock};
use crate::graph::{GraphClient, LookupKey};
use crate::output;
use crate::plan::{self, Alone, Basis};
use crate::report::requests::{DryRun, PlannedRequest};
use crate::report::run::RunDocument;
use crate::rules::{self, Candidate, Evaluation};
use crate::store::{NewWave, Store};

impl InviteArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<Outcome> {
        let settings = ctx.settings()?;
        let store = ctx.store(&settings).await?;
        super::same_tenant(&store, &settings).await?;
        let client = connect(&settings)?;
        let now = OffsetDateTime::now_utc();
        let user = find_user(&client, &self.user, now).await?;
        let mut template = self.template(&settings)?;
        template.display_name.clone_from(&self.display_name);
        let evaluation = self
            .evaluate(&settings, &store, &client, &user, &template)
            .await?;
        if !self.json {
            output::write_stdout(&describe(&user, &evaluation))?;
        } else if evaluation.decision == Decision::Blocked {
            output::write_json(&InviteDocument::of(&user, &evaluation))?;
        }
        if evaluation.decision == Decision::Blocked {
            return Err(Refused(format!(
                "{} is not converted: the rules block it (see the findings above); fix what they say, or use `plan` and `report` for the details",
                user.user_principal_name
            ))
            .into());
        }
        let address = evaluation
            .address
            .as_ref()
            .map(|a| a.address.clone())
            .context("an eligible user has an address")?;
        let request = template.request(
            user.id,
            &address,
            user.display_name.as_deref(),
            &user.profile,
        );
        if self.dry_run {
            let base = settings.tenant.graph_url.as_str().trim_end_matches('/');
            let upn = &user.user_principal_name;
            let mut dry = DryRun::new(
                "invite",
                None,
                "The user was read and evaluated just now; run re-reads it before sending.".into(),
            );
            dry.push_user(
                evaluation
                    .set_mail
                    .then(|| PlannedRequest::set_mail(base, user.id, upn, &address)),
                PlannedRequest::invitation(base, upn, &request),
            );
            let document = InviteDocument {
                dry_run: Some(&dry),
                ..InviteDocument::of(&user, &evaluation)
            };
            output::write_result(self.json, &document, |_| dry.render())?;
            return Ok(Outcome::Done);
        }
        self.confirm(&user)?;
        let _lock = RunLock::acquire(
            &settings.store.path,
            &format!("invite --user {}", user.user_principal_name),
        )?;
        store.store_users(std::slice::from_ref(&user)).await?;
        let wave = record_wave(&store, &user, &evaluation, &template, now).await?;
        let pace = Pace {
            rate: settings.throughput.max_invitations_per_second,
            concurrency: Concurrency::Fixed(1),
            limit: None,
            reconcile_delay: Duration::from_secs(5),
            directory_writes_per_second: settings.throughput.max_directory_writes_per_second,
            restore_mail_on_failure: settings.invitation.restore_mail_on_failure,
            max_invitations_per_day: settings.throughput.max_invitations_per_day,
        };
        convert(
            &settings,
            &store,
            &wave,
            template,
            &pace,
            1,
            "invite",
            &ctx.operator(),
            &|result| {
                let document = InviteDocument {
                    run: Some(result),
                    ..InviteDocument::of(&user, &evaluation)
                };
                Ok(output::write_result(self.json, &document, |_| {
                    result.render()
                })?)
            },
        )
        .await
    }

    /// The configured invitation settings with this command's options on top.
    fn template(&self, settings: &Settings) -> anyhow::Result<InvitationTemplate> {
        let mut template = match &self.redirect_url {
            Some(url) => {
                let mut invitation = settings.invitation.clone();
                invitation.redirect_url = Some(url.clone());
                InvitationTemplate::from_settings(&invitation)?
            }
            None => InvitationTemplate::from_settings(&settings.invitation)?,
        };
        if self.send_message {
            template.send_message = true;
        }
        if self.no_send_message {
            template.send_message = false;
        }
        if let Some(message) = &self.custom_message {
            template.custom_message = Some(message.clone());
        }
        if let Some(language) = &self.message_language {
            template.message_language = Some(language.clone());
        }
        if let Some(cc) = &self.cc_recipient {
            if !crate::domain::is_plausible_email(cc) {
                return Err(
                    UsageError(format!("--cc-recipient {cc} is not an email address")).into(),
                );
            }
            template.cc_recipient = Some((cc.clone(), None));
        }
        if let Some(kind) = &self.invited_user_type {
            template.invited_user_type = Some(kind.clone());
        }
        template.reset_redemption = self.reset_redemption;
        if !template.send_message && (self.custom_message.is_some() || self.cc_recipient.is_some())
        {
            return Err(UsageError(
                "--custom-message and --cc-recipient go into Microsoft's email, which is not sent here (--no-send-message or invitation.send_message = false); drop them or send the email".into(),
            )
            .into());
        }
        Ok(template)
    }

    /// The rules' verdict on the user, with everything `plan` would give them.
    async fn evaluate(
        &self,
        settings: &Settings,
        store: &Store,
        client: &GraphClient,
        user: &UserSnapshot,
        template: &InvitationTemplate,
    ) -> anyhow::Result<Evaluation> {
        let now = OffsetDateTime::now_utc();
        let facts = if let Some(facts) = store.tenant_facts().await? {
            facts
        } else {
            let with_federation = settings.rules.mode(Rule::DirectFederation) != RuleMode::Off;
            let facts = client.tenant_facts(now, with_federation).await?;
            store.save_tenant_facts(&facts).await?;
            facts
        };
        let mut basis = Basis::new(settings, &facts, self.allow_new_address);
        let other_waves = store.pending_in_other_waves(None).await?;
        let candidate = Candidate {
            user,
            override_address: self.address.as_deref(),
            excluded: None,
            other_waves: other_waves.get(&user.id).map_or(&[][..], Vec::as_slice),
        };
        let alone = Alone::choose(store, &basis, candidate).await?;
        if let Some(domain) = alone.realm_to_ask(&basis) {
            basis
                .add_realms(&realm_client(settings)?, store, vec![domain], now)
                .await?;
        }
        let wave_findings = basis.wave_findings(&plan::wave_settings(settings, Some(template)));
        let evaluation = alone.decide(&basis, &wave_findings, self.reset_redemption);
        Ok(evaluation)
    }

    /// `--yes`, or the user's UPN typed at the terminal.
    fn confirm(&self, user: &UserSnapshot) -> anyhow::Result<()> {
        confirm(&Confirmation {
            yes: self.yes,
            changes: "invite changes the tenant",
            prompt: format!(
                "About to convert {} into a B2B user. Type its user principal name to go ahead:",
                user.user_principal_name
            ),
            expected: &user.user_principal_name,
            ignore_case: true,
            not_done: "sent",
        })
    }
}

/// `invite --json`: the rules' verdict on the user, then the requests (`--dry-run`) or the
/// run's result; neither when the rules block the user.
#[derive(Serialize)]
struct InviteDocument<'a> {
    user_id: UserId,
    user_principal_name: &'a str,
    evaluation: &'a Evaluation,
    #[serde(skip_serializing_if = "Option::is_none")]
    dry_run: Option<&'a DryRun>,
    #[serde(skip_serializing_if = "Option::is_none")]
    run: Option<&'a RunDocument<'a>>,
}

impl<'a> InviteDocument<'a> {
    fn of(user: &'a UserSnapshot, evaluation: &'a Evaluation) -> Self {
        Self {
            user_id: user.id,
            user_principal_name: &user.user_principal_name,
            evaluation,
            dry_run: None,
            run: None,
        }
    }
}

impl output::JsonDocument for InviteDocument<'_> {
    const SCHEMA: &'static str = "invite";
    const VERSION: u32 = 1;
}

/// The user named by object id or UPN, as Graph shows it now.
async fn find_user(
    client: &GraphClient,
    key: &str,
    now: OffsetDateTime,
) -> anyhow::Result<UserSnapshot> {
    let lookup = if key.parse::<UserId>().is_ok() {
        LookupKey::Id
    } else {
        LookupKey::UserPrincipalName
    };
    client
        .users_by_key(lookup, &[key.to_owned()], now)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| UsageError(format!("no user {key} in the tenant")).into())
}

/// Records the one-user wave `invite-<UPN>` (or `invite-<UPN>-2`, … when taken) with its plan.
async fn record_wave(
    store: &Store,
    user: &UserSnapshot,
    evaluation: &Evaluation,
    template: &InvitationTemplate,
    at: OffsetDateTime,
) -> anyhow::Result<crate::store::Wave> {
    let base = format!("invite-{}", user.user_principal_name.to_lowercase());
    let mut name = base.clone();
    let mut n = 1;
    while store.wave_by_name(&name).await?.is_some() {
        n += 1;
        name = format!("{base}-{n}");
    }
    let member = plan::planned_member(evaluation.clone(), user);
    let wave = NewWave {
        name,
        selector: serde_json::json!({ "users": { "kind": "invite", "user": user.id } }),
        cap: Some(1),
        settings: serde_json::json!({ "invitation": template }),
    };
    let hash = rules::plan_hash(std::slice::from_ref(evaluation));
    Ok(store
        .create_planned_wave(&wave, &[member], &hash, at)
        .await?)
}

/// The rules' verdict, for the terminal.
fn describe(user: &UserSnapshot, evaluation: &Evaluation) -> String {
    let mut text = format!(
        "{} ({}): {}",
        user.user_principal_name, user.id, evaluation.decision
    );
    if let Some(chosen) = &evaluation.address {
        let _ = write!(text, ", address {}", chosen.address);
        if evaluation.set_mail {
            text.push_str(" (mail is set to it first)");
        }
    }
    text.push('\n');
    for finding in &evaluation.findings {
        let _ = writeln!(
            text,
            "  {:?} {}: {} (fix: {})",
            finding.severity,
            finding.reason.code(),
            finding.detail,
            finding.reason.fix()
        );
    }
    text
}
