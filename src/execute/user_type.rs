//! The optional step after redemption: a converted member's `userType` set to `Guest` (MAU
//! billing, guest restrictions; NOTES §2), or back to `Member` (the back-out). Conversion
//! itself keeps `Member`.
//!
//! Only members this tool converted and recorded as redeemed (`accepted` or `scrambled`) are
//! considered, and each is read from Graph first: a user Graph does not show `Accepted` is
//! left alone, a user already of the wanted type is done without a write (so a rerun after a
//! crash or an interruption finishes what is left and repeats nothing). Back to `Member`, only
//! the members whose `userType` this tool set to `Guest` are considered (a local guest that
//! was `Guest` before its conversion stays one). Each write is paced
//! with the run's directory writes, recorded as an intent (`user-type.intent`, the value
//! before and after under `user_type`, never top-level `from`/`to`, which the audit trail reads
//! as a `mail` change) before it is sent and as an outcome (`user-type.set` or
//! `user-type.failed`, with Graph's request ids) after it, inside a [`RunRecord`], so `audit
//! export` lists every attempt. The replication-lag refusal right after an invitation (400
//! "Not a valid reference update.", NOTES §2.x) is waited out: each refusal is recorded
//! (`user-type.lag`) and the write tried again after a delay, a bounded number of times. The
//! member's state does not change: `userType` is not part of the conversion's state machine.
//!
//! It must not choose the wave, ask for confirmation or print.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;
use time::OffsetDateTime;

use super::{Pacer, RunError, RunRecord, millis, now, with_failure, with_meta};
use crate::domain::{RunId, UserId, UserState, UserType, WaveId};
use crate::graph::GraphClient;
use crate::operator::Operator;
use crate::store::{MemberNames, NewEvent, Store, Wave, WaveMember};

/// Member states that mean "converted and redeemed", as this tool recorded them.
pub const REDEEMED: [UserState; 2] = [UserState::Accepted, UserState::Scrambled];

/// How the step runs.
#[derive(Clone, Debug, PartialEq)]
pub struct UserTypeOptions {
    pub target: UserType,
    /// Read and report, write nothing.
    pub dry_run: bool,
    /// Users read and written at a time.
    pub concurrency: usize,
    /// The run's directory writes per second (`throughput.max_directory_writes_per_second`).
    pub directory_writes_per_second: f64,
    /// How long to wait after a replication-lag refusal before trying again.
    pub lag_retry_delay: Duration,
    /// How many times to try again after replication-lag refusals before giving up on a user.
    pub lag_retries: u32,
}

/// What became of one member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UserTypeOutcome {
    /// Written now.
    Set,
    /// A dry run: would be written.
    WouldSet,
    /// Graph already shows the wanted type: nothing to write.
    Already,
    /// Not recorded as redeemed (`invited`: `status --refresh` records redemptions), or Graph
    /// does not show `externalUserState` `Accepted`.
    NotRedeemed,
    /// Back to `Member` only where this tool set `Guest`: a user that was `Guest` before (a
    /// local guest), or made one by someone else, is left alone.
    NotSetByTool,
    /// The write or the read failed for this user (the detail says why).
    Failed,
}

/// One member's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserTypeResult {
    pub user_id: UserId,
    pub user_principal_name: String,
    pub outcome: UserTypeOutcome,
    /// `userType` as read before any write.
    pub before: Option<String>,
    /// Replication-lag refusals waited out for this user.
    pub lag_retries: u32,
    pub detail: Option<String>,
}

/// The step's counts and results.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UserTypeSummary {
    pub target: Option<UserType>,
    pub dry_run: bool,
    pub set: u64,
    pub would_set: u64,
    pub already: u64,
    pub not_redeemed: u64,
    pub not_set_by_tool: u64,
    pub failed: u64,
    /// Members not converted (planned, ready, failed, …): not considered.
    pub not_converted: u64,
    pub lag_retries: u64,
    pub interrupted: bool,
    pub users: Vec<UserTypeResult>,
}

impl UserTypeSummary {
    fn add(&mut self, result: UserTypeResult) {
        match result.outcome {
            UserTypeOutcome::Set => self.set += 1,
            UserTypeOutcome::WouldSet => self.would_set += 1,
            UserTypeOutcome::Already => self.already += 1,
            UserTypeOutcome::NotRedeemed => self.not_redeemed += 1,
            UserTypeOutcome::NotSetByTool => self.not_set_by_tool += 1,
            UserTypeOutcome::Failed => self.failed += 1,
        }
        self.lag_retries += u64::from(result.lag_retries);
        self.users.push(result);
    }
}

/// Sets the `userType` of the wave's redeemed members to `options.target` (or, with
/// `dry_run`, says what it would do), inside a run record of command `set-user-type` (none for
/// a dry run: it writes nothing). Stops early when `stop` resolves (the writes in flight
/// finish and are recorded) or when a failure concerns the caller (a missing permission, no
/// token): that is the `Err`.
pub async fn set_user_types(
    client: Arc<GraphClient>,
    store: &Store,
    wave: &Wave,
    options: &UserTypeOptions,
    operator: &Operator,
    stop: impl Future<Output = ()>,
) -> Result<Result<UserTypeSummary, RunError>, crate::store::Error> {
    let mut summary = UserTypeSummary {
        target: Some(options.target),
        dry_run: options.dry_run,
        ..UserTypeSummary::default()
    };
    let candidates = candidates(store, wave, options.target, &mut summary).await?;
    let record = if options.dry_run {
        None
    } else {
        let settings = serde_json::json!({
            "target": options.target,
            "lag_retry_delay_secs": options.lag_retry_delay.as_secs_f64(),
            "lag_retries": options.lag_retries,
        });
        Some(RunRecord::start(store, wave.id, "set-user-type", &settings, operator).await?)
    };
    let pass = Pass {
        client,
        store,
        wave: wave.id,
        run: record.as_ref().map(RunRecord::id),
        options,
        writes: Pacer::new(options.directory_writes_per_second),
    };
    // Once set, no further member is started; those in flight finish and are recorded.
    let stopping = AtomicBool::new(false);
    let mut stop = std::pin::pin!(stop);
    let mut results = std::pin::pin!(
        futures_util::stream::iter(candidates)
            .take_while(|_| std::future::ready(!stopping.load(Ordering::SeqCst)))
            .map(|(member, names)| pass.user(member, names))
            .buffer_unordered(options.concurrency.max(1))
    );
    let mut fatal: Option<RunError> = None;
    loop {
        tokio::select! {
            biased;
            () = &mut stop, if !summary.interrupted => summary.interrupted = true,
            next = results.next() => match next {
                None => break,
                Some(Ok(result)) => summary.add(result),
                Some(Err(error)) => {
                    fatal.get_or_insert(error);
                }
            },
        }
        if summary.interrupted || fatal.is_some() {
            stopping.store(true, Ordering::SeqCst);
            while let Some(next) = results.next().await {
                match next {
                    Ok(result) => summary.add(result),
                    Err(error) => {
                        fatal.get_or_insert(error);
                    }
                }
            }
            break;
        }
    }
    if let Some(record) = record {
        let totals = serde_json::to_value(UserTypeSummary {
            users: Vec::new(),
            ..summary.clone()
        })
        .unwrap_or_default();
        let error = fatal.as_ref().map(ToString::to_string);
        record
            .finish(store, totals, summary.interrupted, error)
            .await?;
    }
    Ok(match fatal {
        Some(error) => Err(error),
        None => Ok(summary),
    })
}

/// The wave's members to read: the redeemed ones (for the back-out, only those whose
/// `userType` this tool set to `Guest`). The others are counted in `summary`.
async fn candidates(
    store: &Store,
    wave: &Wave,
    target: UserType,
    summary: &mut UserTypeSummary,
) -> Result<Vec<(WaveMember, MemberNames)>, crate::store::Error> {
    let set_by_tool = if target == UserType::Member {
        Some(store.user_types_set(wave.id).await?)
    } else {
        None
    };
    let mut candidates = Vec::new();
    for (member, names) in store.members_with_names(wave.id).await? {
        let ours = set_by_tool.as_ref().is_none_or(|set| {
            set.get(&member.plan.user_id)
                .is_some_and(|t| UserType::Guest.is(Some(t)))
        });
        if REDEEMED.contains(&member.state) && !ours {
            summary.add(result(
                &member,
                &names,
                UserTypeOutcome::NotSetByTool,
                None,
                Some("this tool did not set its userType to Guest: left alone".to_owned()),
            ));
        } else if REDEEMED.contains(&member.state) {
            candidates.push((member, names));
        } else if member.state == UserState::Invited {
            summary.add(result(
                &member,
                &names,
                UserTypeOutcome::NotRedeemed,
                None,
                Some("not recorded as redeemed: run `status --refresh` first".to_owned()),
            ));
        } else {
            summary.not_converted += 1;
        }
    }
    Ok(candidates)
}

fn result(
    member: &WaveMember,
    names: &MemberNames,
    outcome: UserTypeOutcome,
    before: Option<String>,
    detail: Option<String>,
) -> UserTypeResult {
    UserTypeResult {
        user_id: member.plan.user_id,
        user_principal_name: names.user_principal_name.clone(),
        outcome,
        before,
        lag_retries: 0,
        detail,
    }
}

/// One pass over the members.
struct Pass<'a> {
    client: Arc<GraphClient>,
    store: &'a Store,
    wave: WaveId,
    run: Option<RunId>,
    options: &'a UserTypeOptions,
    writes: Pacer,
}

impl Pass<'_> {
    fn event(&self, user: UserId, kind: &str, detail: serde_json::Value) -> NewEvent {
        NewEvent {
            run_id: self.run,
            wave_id: Some(self.wave),
            user_id: Some(user),
            kind: kind.to_owned(),
            detail,
            ..NewEvent::default()
        }
    }

    /// Reads the member, and writes its `userType` when it is redeemed and of the other type.
    async fn user(
        &self,
        member: WaveMember,
        names: MemberNames,
    ) -> Result<UserTypeResult, RunError> {
        let user = member.plan.user_id;
        let target = self.options.target;
        let fresh = match self.client.user(user, OffsetDateTime::now_utc()).await {
            Ok(fresh) => fresh,
            Err(error) if error.is_about_the_caller() => return Err(RunError::Graph(error)),
            Err(error) => {
                let detail = format!("could not read the user: {error}");
                return Ok(result(
                    &member,
                    &names,
                    UserTypeOutcome::Failed,
                    None,
                    Some(detail),
                ));
            }
        };
        let before = fresh.user_type.clone();
        if fresh.external_user_state.as_deref() != Some("Accepted") {
            let detail = format!(
                "Graph shows externalUserState {}, not Accepted",
                fresh.external_user_state.as_deref().unwrap_or("null")
            );
            return Ok(result(
                &member,
                &names,
                UserTypeOutcome::NotRedeemed,
                before,
                Some(detail),
            ));
        }
        if target.is(before.as_deref()) {
            return Ok(result(
                &member,
                &names,
                UserTypeOutcome::Already,
                before,
                None,
            ));
        }
        if self.options.dry_run {
            return Ok(result(
                &member,
                &names,
                UserTypeOutcome::WouldSet,
                before,
                None,
            ));
        }
        let intent = self.event(
            user,
            "user-type.intent",
            serde_json::json!({ "user_type": { "from": before, "to": target } }),
        );
        self.store.append_event(&intent, now()).await?;
        let (outcome, lag_retries, detail) = self.write(user, before.as_deref()).await?;
        Ok(UserTypeResult {
            lag_retries,
            ..result(&member, &names, outcome, before, detail)
        })
    }

    /// Writes the target type, waiting out replication-lag refusals; records each attempt.
    async fn write(
        &self,
        user: UserId,
        before: Option<&str>,
    ) -> Result<(UserTypeOutcome, u32, Option<String>), RunError> {
        let target = self.options.target;
        let path = format!("/v1.0/users/{user}");
        let mut lag_retries = 0;
        loop {
            self.writes.acquire().await;
            let started = Instant::now();
            match self.client.set_user_type(user, target).await {
                Ok(meta) => {
                    let mut event = self.event(
                        user,
                        "user-type.set",
                        serde_json::json!({ "user_type": { "from": before, "to": target } }),
                    );
                    with_meta(&mut event, "PATCH", &path, &meta);
                    event.duration_ms = Some(millis(started.elapsed()));
                    self.store.append_event(&event, now()).await?;
                    return Ok((UserTypeOutcome::Set, lag_retries, None));
                }
                Err(error) if error.is_about_the_caller() => {
                    let mut event = self.event(
                        user,
                        "user-type.failed",
                        serde_json::json!({ "user_type": target, "error": error.to_string() }),
                    );
                    with_failure(&mut event, "PATCH", &path, &error);
                    self.store.append_event(&event, now()).await?;
                    return Err(RunError::Graph(error));
                }
                Err(error)
                    if error.is_replication_lag() && lag_retries < self.options.lag_retries =>
                {
                    lag_retries += 1;
                    let mut event = self.event(
                        user,
                        "user-type.lag",
                        serde_json::json!({
                            "user_type": target,
                            "retry": lag_retries,
                            "wait_secs": self.options.lag_retry_delay.as_secs_f64(),
                            "error": error.to_string(),
                        }),
                    );
                    with_failure(&mut event, "PATCH", &path, &error);
                    self.store.append_event(&event, now()).await?;
                    tracing::info!(%user, retry = lag_retries, "userType refused during replication lag; trying again later");
                    tokio::time::sleep(self.options.lag_retry_delay).await;
                }
                Err(error) => {
                    let mut detail = error.to_string();
                    if error.is_replication_lag() {
                        detail = format!(
                            "{detail} (still refused after {lag_retries} wait(s); run the same command again later)"
                        );
                    }
                    let mut event = self.event(
                        user,
                        "user-type.failed",
                        serde_json::json!({ "user_type": target, "error": detail }),
                    );
                    with_failure(&mut event, "PATCH", &path, &error);
                    self.store.append_event(&event, now()).await?;
                    return Ok((UserTypeOutcome::Failed, lag_retries, Some(detail)));
                }
            }
        }
    }
}
