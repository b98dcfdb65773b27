//! The scramble's state changes: a converted member's on-premises password replaced
//! (`invited | accepted → scrambled`), over LDAPS one user after the other, or from the
//! results file of the PowerShell script an administrator ran. It owns recording each
//! outcome as it comes (a scramble with its event, compare-and-set; a refusal as an event
//! only: the member stays converted), the recovery when a member moved on meanwhile (a
//! `status --refresh` recorded its redemption), and the run record around each pass. It must
//! not choose the members (`directory::select`), speak LDAP itself (`directory`), let a
//! generated password out, or print.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::RunRecord;
use crate::config::DirectorySettings;
use crate::directory::select::judge_result;
use crate::directory::{self, Directory, Member, NewPassword, ResultAction, Target, UserFailure};
use crate::domain::{RunId, UserId, UserState, WaveId};
use crate::input::{self, ScrambleOutcome, ScrambleResultRow};
use crate::operator::Operator;
use crate::store::{self, NewEvent, Store, Transition, Wave};

/// A scramble could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum ScrambleError {
    #[error(transparent)]
    Store(#[from] store::Error),
    /// The member left the converted states while its password was scrambled.
    #[error(
        "user {user} of wave {wave} changed state during its scramble; its password was scrambled but the state could not be recorded"
    )]
    StateChanged { user: UserId, wave: String },
}

/// A wave's members as the scramble's selection sees them.
pub async fn members(store: &Store, wave: WaveId) -> Result<Vec<Member>, store::Error> {
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

/// What a scramble over LDAPS did (stored with its run).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ScrambleSummary {
    pub scrambled: u64,
    pub failed: u64,
    pub skipped: u64,
    pub not_started: u64,
    pub interrupted: bool,
}

/// Receives a scramble's progress.
pub trait ScrambleObserver {
    /// One more target done (scrambled or refused).
    fn user_done(&self, _summary: &ScrambleSummary) {}

    /// No more targets will be done; called before the connection closes and the run's end
    /// is recorded.
    fn ended(&self) {}
}

/// How a scramble over LDAPS ended.
#[derive(Debug)]
pub struct ScrambledOverLdap {
    pub summary: ScrambleSummary,
    /// The targets the directory refused, with why.
    pub failures: Vec<(Target, UserFailure)>,
    /// The connection's error that stopped the pass, if one did (recorded as the run's failure).
    pub fatal: Option<directory::Error>,
}

/// Scrambles each target (with its state when selected) over `directory`, one after the
/// other, recording each outcome as it comes, until done, `stop` resolves (no new target is
/// started), or the connection fails; then closes the connection. The pass is one run,
/// recorded with `run_settings`; `skipped` members were left out by the selection.
#[allow(clippy::too_many_arguments)] // the parts of one pass, given once
pub async fn scramble_over_ldap(
    mut directory: Directory,
    store: &Store,
    wave: &Wave,
    targets: Vec<(Target, UserState)>,
    skipped: u64,
    password: &DirectorySettings,
    run_settings: &serde_json::Value,
    operator: &Operator,
    stop: impl Future<Output = ()> + Send + 'static,
    observer: &dyn ScrambleObserver,
) -> Result<ScrambledOverLdap, ScrambleError> {
    let record = RunRecord::start(store, wave.id, "scramble", run_settings, operator).await?;
    let stopped = Arc::new(AtomicBool::new(false));
    {
        let stopped = Arc::clone(&stopped);
        tokio::spawn(async move {
            stop.await;
            stopped.store(true, Ordering::SeqCst);
        });
    }
    let dc = directory.domain_controller().to_owned();
    let mut summary = ScrambleSummary {
        skipped,
        ..ScrambleSummary::default()
    };
    let mut failures = Vec::new();
    let mut fatal = None;
    let total = targets.len();
    for (done, (target, state)) in targets.into_iter().enumerate() {
        if stopped.load(Ordering::SeqCst) {
            summary.interrupted = true;
            summary.not_started = (total - done) as u64;
            break;
        }
        let new_password =
            NewPassword::generate(password.new_password, password.random_password_length);
        match directory.scramble(&target, new_password).await {
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
                let done = Scrambled {
                    run: record.id(),
                    user: target.user_id,
                    state,
                    at,
                    dc: &dc,
                    detail,
                };
                done.record(store, wave).await?;
                summary.scrambled += 1;
            }
            Ok(Err(failure)) => {
                record_failure(
                    store,
                    wave.id,
                    Some(record.id()),
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
                fatal = Some(err);
                break;
            }
        }
        observer.user_done(&summary);
    }
    observer.ended();
    directory.close().await;
    let summary_json = serde_json::to_value(&summary).expect("a scramble summary is plain JSON");
    record
        .finish(
            store,
            summary_json,
            summary.interrupted,
            fatal.as_ref().map(ToString::to_string),
        )
        .await?;
    Ok(ScrambledOverLdap {
        summary,
        failures,
        fatal,
    })
}

/// A script's results file checked against its wave: every row, with the member's state
/// when it is to be recorded (`None`: already recorded).
#[derive(Debug)]
pub struct CheckedResults<'r> {
    rows: Vec<(&'r ScrambleResultRow, Option<UserState>)>,
}

/// Checks every row of `path` against the wave's `members` before anything is recorded: a
/// row that cannot be recorded stops the import, with its line.
pub fn check_results<'r>(
    wave: &str,
    path: &Path,
    rows: &'r [ScrambleResultRow],
    members: &[Member],
) -> Result<CheckedResults<'r>, input::Error> {
    let by_id: HashMap<UserId, &Member> = members.iter().map(|m| (m.user_id, m)).collect();
    let mut checked = Vec::with_capacity(rows.len());
    for row in rows {
        let member = by_id.get(&row.user_id).copied();
        let action =
            judge_result(row, wave, member).map_err(|message| input::Error::Malformed {
                path: path.to_path_buf(),
                line: row.line,
                message,
            })?;
        if action == ResultAction::Record {
            let state = member.expect("a row to record has a member").state;
            checked.push((row, Some(state)));
        } else {
            checked.push((row, None));
        }
    }
    Ok(CheckedResults { rows: checked })
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    pub recorded: u64,
    pub already_recorded: u64,
    pub failed: u64,
}

/// Records a checked results file of `path` as one run: each scramble the script did, and
/// each failure it reported (returned with the script's error).
pub async fn import_results<'r>(
    store: &Store,
    wave: &Wave,
    path: &Path,
    checked: CheckedResults<'r>,
    operator: &Operator,
) -> Result<(ImportSummary, Vec<(&'r ScrambleResultRow, String)>), ScrambleError> {
    let record = RunRecord::start(
        store,
        wave.id,
        "scramble",
        &serde_json::json!({ "mode": "powershell-import", "file": path.display().to_string() }),
        operator,
    )
    .await?;
    let mut summary = ImportSummary::default();
    let mut failures = Vec::new();
    for (row, state) in checked.rows {
        let Some(state) = state else {
            summary.already_recorded += 1;
            continue;
        };
        if let Some(error) = record_row(store, wave, record.id(), path, row, state).await? {
            summary.failed += 1;
            failures.push((row, error));
        } else {
            summary.recorded += 1;
        }
    }
    let summary_json = serde_json::to_value(&summary).expect("an import summary is plain JSON");
    record.finish(store, summary_json, false, None).await?;
    Ok((summary, failures))
}

/// Records one checked row; `Some(error)` when the script reported a failure.
async fn record_row(
    store: &Store,
    wave: &Wave,
    run: RunId,
    path: &Path,
    row: &ScrambleResultRow,
    state: UserState,
) -> Result<Option<String>, ScrambleError> {
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
            let done = Scrambled {
                run,
                user: row.user_id,
                state,
                at: *completed_at,
                dc: domain_controller,
                detail,
            };
            done.record(store, wave).await?;
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
                wave.id,
                Some(run),
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

/// One member's password scrambled, to be recorded.
struct Scrambled<'a> {
    run: RunId,
    user: UserId,
    /// The member's state when it was selected.
    state: UserState,
    at: OffsetDateTime,
    /// The domain controller that took the change.
    dc: &'a str,
    detail: serde_json::Value,
}

impl Scrambled<'_> {
    /// Records the scramble: the state and its event in one transaction. If the member moved
    /// on meanwhile (a `status --refresh` recorded its redemption), the scramble is recorded
    /// from its new state.
    async fn record(self, store: &Store, wave: &Wave) -> Result<(), ScrambleError> {
        let user = self.user;
        let event = NewEvent {
            run_id: Some(self.run),
            wave_id: Some(wave.id),
            user_id: Some(user),
            kind: "scramble.done".into(),
            detail: self.detail,
            ..NewEvent::default()
        };
        let mut transition = Transition::new(self.state, UserState::Scrambled, self.at);
        transition.scrambled_on = Some(self.dc.to_owned());
        match store.record(wave.id, user, &transition, Some(&event)).await {
            Err(store::Error::StateConflict { .. }) => {
                let now = store
                    .member(wave.id, user)
                    .await?
                    .map(|m| m.state)
                    .filter(|s| matches!(s, UserState::Invited | UserState::Accepted));
                let Some(now) = now else {
                    return Err(ScrambleError::StateChanged {
                        user,
                        wave: wave.name.clone(),
                    });
                };
                transition.from = now;
                store
                    .record(wave.id, user, &transition, Some(&event))
                    .await?;
                Ok(())
            }
            other => Ok(other?),
        }
    }
}

/// Records a user's failure in the event log (its state does not change: it stays converted).
async fn record_failure(
    store: &Store,
    wave: WaveId,
    run: Option<RunId>,
    user: UserId,
    failure: &UserFailure,
    method: &str,
    dc: Option<&str>,
) -> Result<(), store::Error> {
    let event = NewEvent {
        run_id: run,
        wave_id: Some(wave),
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

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::execute::testing::{id, invited_wave, object_guid};
    use crate::store::RunStatus;

    fn row(line: u64, n: u128, outcome: ScrambleOutcome) -> ScrambleResultRow {
        ScrambleResultRow {
            line,
            wave: "pilot".into(),
            user_id: id(n),
            object_guid: object_guid(n),
            sam_account_name: Some(format!("u{n}")),
            outcome,
        }
    }

    fn scrambled(completed_at: OffsetDateTime) -> ScrambleOutcome {
        ScrambleOutcome::Scrambled {
            domain_controller: "dc1.corp.contoso.com".into(),
            pwd_last_set: completed_at,
            completed_at,
        }
    }

    #[tokio::test]
    async fn a_scramble_is_recorded_from_the_state_the_member_moved_to_meanwhile() {
        let (_dir, store) = crate::store::testing::temp_store().await;
        let wave = invited_wave(&store, 2).await;
        // Selected while invited; a `status --refresh` records the redemption before the
        // scramble is recorded.
        store
            .transition(
                wave.id,
                id(1),
                &Transition::new(
                    UserState::Invited,
                    UserState::Accepted,
                    datetime!(2026-11-22 08:00 UTC),
                ),
            )
            .await
            .unwrap();
        let at = datetime!(2026-11-22 09:00 UTC);
        let done = |n| Scrambled {
            run: RunId::new(),
            user: id(n),
            state: UserState::Invited,
            at,
            dc: "dc1",
            detail: serde_json::json!({}),
        };
        done(1).record(&store, &wave).await.unwrap();
        let member = store.member(wave.id, id(1)).await.unwrap().unwrap();
        assert_eq!(member.state, UserState::Scrambled);
        assert_eq!(member.scrambled_at, Some(at));
        assert_eq!(member.scrambled_on.as_deref(), Some("dc1"));

        // A member that left the converted states is not recorded as scrambled.
        store
            .transition(
                wave.id,
                id(2),
                &Transition::new(UserState::Invited, UserState::Drifted, at),
            )
            .await
            .unwrap();
        let err = done(2).record(&store, &wave).await.unwrap_err();
        assert!(matches!(err, ScrambleError::StateChanged { .. }), "{err}");
        let events = store.wave_events(wave.id).await.unwrap();
        let scrambles: Vec<_> = events
            .iter()
            .filter(|e| e.event.kind == "scramble.done")
            .map(|e| e.event.user_id)
            .collect();
        assert_eq!(
            scrambles,
            [Some(id(1))],
            "one event, for the recorded scramble"
        );
    }

    #[tokio::test]
    async fn an_import_records_scrambles_and_failures_as_one_run_and_counts_repeats() {
        let (_dir, store) = crate::store::testing::temp_store().await;
        let wave = invited_wave(&store, 3).await;
        let path = Path::new("scramble-pilot-results.csv");
        let at = datetime!(2026-11-22 09:00 UTC);
        let rows = vec![
            row(2, 1, scrambled(at)),
            row(
                3,
                2,
                ScrambleOutcome::Failed {
                    completed_at: Some(at),
                    error: "Access is denied".into(),
                },
            ),
        ];
        let members = members(&store, wave.id).await.unwrap();
        let checked = check_results(&wave.name, path, &rows, &members).unwrap();
        let (summary, failures) =
            import_results(&store, &wave, path, checked, &Operator::default())
                .await
                .unwrap();
        assert_eq!(
            summary,
            ImportSummary {
                recorded: 1,
                already_recorded: 0,
                failed: 1
            }
        );
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].1, "Access is denied");
        let state = |n| {
            let store = &store;
            async move { store.member(wave.id, id(n)).await.unwrap().unwrap().state }
        };
        assert_eq!(state(1).await, UserState::Scrambled);
        assert_eq!(
            state(2).await,
            UserState::Invited,
            "a failure leaves it converted"
        );

        // The same file again: the scramble is on record already.
        let members = super::members(&store, wave.id).await.unwrap();
        let checked = check_results(&wave.name, path, &rows[..1], &members).unwrap();
        let (summary, _) = import_results(&store, &wave, path, checked, &Operator::default())
            .await
            .unwrap();
        assert_eq!(summary.already_recorded, 1);
        let runs = store.runs(wave.id).await.unwrap();
        assert_eq!(runs.len(), 2);
        assert!(runs.iter().all(|r| r.command == "scramble"
            && r.status == RunStatus::Completed
            && r.settings["mode"] == "powershell-import"));

        // A row of another wave stops the import before anything is recorded.
        let mut stray = row(4, 3, scrambled(at));
        stray.wave = "other".into();
        let err = check_results(&wave.name, path, &[stray], &members).unwrap_err();
        assert!(err.to_string().contains("line 4"), "{err}");
    }
}
