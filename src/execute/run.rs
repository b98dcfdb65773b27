//! A run of the executor over a wave's stored plan, as `run` and `invite` start it: the pacing,
//! the client reporting throttling to the invitation pacer and asking the invitation gate
//! before any retry of an invitation, the [`Executor`] bracketed by the
//! run's [`RunRecord`]. The caller holds the [`RunLock`](super::RunLock), builds the client and
//! shows progress through its [`RunObserver`]; this must not print or decide anything the plan
//! did not.

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use super::{
    Concurrency, Executor, INVITATION_WINDOW, InvitationGate, InvitationTemplate, Pacer, RunError,
    RunObserver, RunOptions, RunRecord, RunSummary, invitation_guard, invitation_retry_pacing,
    throttle_reporter,
};
use crate::graph::GraphClient;
use crate::operator::Operator;
use crate::store::{self, Store, Wave};

/// How fast and how much a run goes.
#[derive(Clone, Debug)]
pub struct Pace {
    /// Invitations per second.
    pub rate: f64,
    /// Users converted at once.
    pub concurrency: Concurrency,
    /// Convert at most this many users in this run.
    pub limit: Option<usize>,
    /// How long to wait before reading a user whose invitation outcome is unknown.
    pub reconcile_delay: Duration,
    /// Directory writes (`PATCH mail`) per second.
    pub directory_writes_per_second: f64,
    /// Put back the `mail` the run set when the invitation then fails for good.
    pub restore_mail_on_failure: bool,
    /// At most this many invitations in any rolling 24 h (`throughput.max_invitations_per_day`).
    pub max_invitations_per_day: Option<NonZeroU32>,
}

/// Runs the executor over `wave` until done or `stop` resolves, recorded as one run of
/// `command` from start to end. The outer error is the run's record failing (its start or its
/// end); the inner result is how the run went, as recorded.
#[allow(clippy::too_many_arguments)] // the parts of a run, given once (as `Executor::new`)
pub async fn run_wave(
    client: GraphClient,
    store: &Store,
    wave: &Wave,
    template: InvitationTemplate,
    pace: &Pace,
    command: &str,
    operator: &Operator,
    observer: Arc<dyn RunObserver>,
    stop: impl Future<Output = ()>,
) -> Result<Result<RunSummary, RunError>, store::Error> {
    let invitations = Arc::new(Pacer::new(pace.rate).with_window(INVITATION_WINDOW));
    let gate = InvitationGate::new(pace.max_invitations_per_day, Vec::new());
    let client = Arc::new(
        client
            .with_retry_observer(throttle_reporter(Arc::clone(&invitations)))
            .with_retry_pacing(invitation_retry_pacing(Arc::clone(&invitations)))
            .with_retry_guard(invitation_guard(Arc::clone(&gate))),
    );
    let (setting_mail, ready) = store.ready_setting_mail(wave.id).await?;
    let options = RunOptions {
        concurrency: pace.concurrency,
        invitations_per_second: pace.rate,
        directory_writes_per_second: writes_needed(
            pace.rate,
            setting_mail,
            ready,
            pace.directory_writes_per_second,
        ),
        reconcile_delay: pace.reconcile_delay,
        limit: pace.limit,
        attempts_per_run: 5,
        restore_mail_on_failure: pace.restore_mail_on_failure,
        max_invitations_per_day: pace.max_invitations_per_day,
    };
    let record = RunRecord::start(
        store,
        wave.id,
        command,
        &serde_json::to_value(&template).expect("an invitation template is plain JSON"),
        operator,
    )
    .await?;
    let executor = Executor::new(
        client,
        store.clone(),
        wave.id,
        record.id(),
        template,
        invitations,
        options,
        Arc::clone(&observer),
    )
    .with_gate(gate);
    tracing::info!(run = %record.id(), wave = %wave.name, rate = pace.rate, "run started");
    let result = executor.run(stop).await;
    observer.run_ended();
    let (summary, interrupted, error) = match &result {
        Ok(summary) => (
            serde_json::to_value(summary).expect("a run summary is plain JSON"),
            summary.interrupted,
            // Stopped sending before it was done: the run did not complete.
            summary.halted.as_ref().map(ToString::to_string),
        ),
        Err(err) => (serde_json::json!({}), false, Some(err.to_string())),
    };
    record.finish(store, summary, interrupted, error).await?;
    Ok(result)
}

/// The pace of `mail` writes a run needs: the invitation rate times the share of its users that
/// need one, with headroom for runs of such users, at most `cap` (the configured budget, within
/// the service's write limit) and never so low that a rare write waits long.
fn writes_needed(rate: f64, setting_mail: u64, ready: u64, cap: f64) -> f64 {
    const HEADROOM: f64 = 1.25;
    const AT_LEAST: f64 = 2.0;
    if ready == 0 {
        return cap;
    }
    #[allow(clippy::cast_precision_loss)] // member counts
    let share = setting_mail as f64 / ready as f64;
    (rate * share * HEADROOM).max(AT_LEAST).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_write_pace_follows_the_share_of_users_that_need_one_within_the_budget() {
        assert!((writes_needed(24.0, 50, 100, 20.0) - 15.0).abs() < 1e-9);
        assert!(
            (writes_needed(24.0, 100, 100, 20.0) - 20.0).abs() < 1e-9,
            "capped"
        );
        assert!(
            (writes_needed(24.0, 0, 100, 20.0) - 2.0).abs() < 1e-9,
            "a floor"
        );
        assert!((writes_needed(24.0, 0, 0, 16.0) - 16.0).abs() < 1e-9);
    }
}
