//! `set-user-type`: the optional step after redemption that sets a wave's redeemed members'
//! `userType` to `Guest`, or back to `Member`. Orchestration only: the wave, the confirmation
//! (not for a dry run), the database lock; then [`crate::execute::user_type`] reads, writes and
//! records, and its results are printed.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use super::{
    Confirmation, Ctx, Outcome, confirm, connect, interruption, same_tenant, stored_wave,
    token_operator,
};
use crate::cli::{SetUserTypeArgs, UserTypeChoice};
use crate::domain::UserType;
use crate::execute::RunLock;
use crate::execute::user_type::{self, UserTypeOptions, UserTypeOutcome, UserTypeSummary};
use crate::output;

impl SetUserTypeArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<Outcome> {
        let settings = ctx.settings()?;
        let store = ctx.existing_store(&settings).await?;
        let wave = stored_wave(&store, &self.wave).await?;
        same_tenant(&store, &settings).await?;
        let target = match self.to {
            UserTypeChoice::Guest => UserType::Guest,
            UserTypeChoice::Member => UserType::Member,
        };
        let redeemed: u64 = store
            .state_counts(wave.id)
            .await?
            .into_iter()
            .filter(|(state, _)| user_type::REDEEMED.contains(state))
            .map(|(_, count)| count)
            .sum();
        let _lock = if self.dry_run {
            None
        } else {
            confirm(&Confirmation {
                yes: self.yes,
                changes: "set-user-type changes the tenant",
                prompt: format!(
                    "About to set userType {target} for the redeemed members of wave {} ({redeemed} \
                     recorded as redeemed; each is read first, and those already {target} are \
                     left alone).\nType the wave name to go ahead:",
                    wave.name
                ),
                expected: &wave.name,
                ignore_case: false,
                not_done: "changed",
            })?;
            Some(RunLock::acquire(
                &settings.store.path,
                &format!("set-user-type --wave {}", wave.name),
            )?)
        };
        let options = UserTypeOptions {
            target,
            dry_run: self.dry_run,
            concurrency: self
                .concurrency
                .map_or(settings.throughput.max_concurrency.get(), |c| c as usize),
            directory_writes_per_second: settings.throughput.max_directory_writes_per_second,
            lag_retry_delay: Duration::from_secs_f64(self.lag_retry_delay),
            lag_retries: self.lag_retries,
        };
        let client = Arc::new(connect(&settings)?);
        let operator = token_operator(&ctx.operator(), &client).await;
        let stop = interruption()?;
        let summary = user_type::set_user_types(client, &store, &wave, &options, &operator, stop)
            .await?
            .map_err(|err| {
                anyhow::Error::new(err).context(format!(
                    "set-user-type of wave {} stopped (needs User.ReadWrite.All; `b2b-convert \
                         check` lists what the token has); writes in flight were recorded, run \
                         the same command again to resume",
                    wave.name
                ))
            })?;
        output::write_result(self.json, &summary, |summary| render(&wave.name, summary))?;
        Ok(if summary.interrupted {
            Outcome::Interrupted
        } else if summary.failed > 0 {
            Outcome::SomeUsersFailed
        } else {
            Outcome::Done
        })
    }
}

/// `--json`: the summary, documented in `docs/schema/set-user-type.schema.json`.
impl output::JsonDocument for UserTypeSummary {
    const SCHEMA: &'static str = "set-user-type";
    const VERSION: u32 = 1;
}

fn render(wave: &str, summary: &UserTypeSummary) -> String {
    let target = summary.target.map_or("?", UserType::code);
    let rows: Vec<[String; 4]> = summary
        .users
        .iter()
        .filter(|u| u.outcome != UserTypeOutcome::Already)
        .map(|u| {
            let outcome = match u.outcome {
                UserTypeOutcome::Set => "set",
                UserTypeOutcome::WouldSet => "would set",
                UserTypeOutcome::Already => "already",
                UserTypeOutcome::NotRedeemed => "not redeemed",
                UserTypeOutcome::NotSetByTool => "left alone",
                UserTypeOutcome::Failed => "FAILED",
            };
            let mut detail = u.detail.clone().unwrap_or_default();
            if u.lag_retries > 0 {
                if !detail.is_empty() {
                    detail.push_str("; ");
                }
                let _ = write!(detail, "{} replication-lag wait(s)", u.lag_retries);
            }
            [
                u.user_principal_name.clone(),
                u.before.clone().unwrap_or_else(|| "-".to_owned()),
                outcome.to_owned(),
                detail,
            ]
        })
        .collect();
    let mut text = String::new();
    if !rows.is_empty() {
        text.push_str(&output::table(
            ["USER", "USERTYPE", "OUTCOME", "DETAIL"],
            rows,
        ));
        text.push('\n');
    }
    if summary.dry_run {
        let _ = write!(
            text,
            "Dry run, wave {wave}: {} member(s) would be set to {target}, {} already are, {} not \
             redeemed. Nothing was written.",
            summary.would_set, summary.already, summary.not_redeemed
        );
    } else {
        let _ = write!(
            text,
            "Wave {wave}: userType {target} set for {} member(s), {} already {target}, {} not \
             redeemed, {} failed.",
            summary.set, summary.already, summary.not_redeemed, summary.failed
        );
        if summary.lag_retries > 0 {
            let _ = write!(
                text,
                " {} replication-lag refusal(s) waited out.",
                summary.lag_retries
            );
        }
    }
    if summary.not_set_by_tool > 0 {
        let _ = write!(
            text,
            " {} member(s) whose userType this tool did not set to Guest were left alone.",
            summary.not_set_by_tool
        );
    }
    if summary.not_converted > 0 {
        let _ = write!(
            text,
            " {} member(s) not converted were not considered.",
            summary.not_converted
        );
    }
    text.push('\n');
    if summary.interrupted {
        text.push_str("Interrupted: run the same command again to finish.\n");
    } else if summary.failed > 0 {
        text.push_str(
            "Failed members keep their userType; run the same command again (every attempt is \
             in the event log and `audit export`).\n",
        );
    }
    if summary.not_redeemed > 0 {
        text.push_str(
            "Members not redeemed are left alone: `status --refresh` records redemptions; run \
             set-user-type again after it.\n",
        );
    }
    text
}
