//! Re-sent invitations (`reinvite`): the members a selection picks, and each one's re-send,
//! recorded like a run's invitation (intent before, outcome after, in the event log with
//! Graph's request ids) and sent through the executor's one invitation path (its pacer, and
//! whatever guards that path), inside a [`RunRecord`].
//!
//! ```text
//! selected --(re-read: still PendingAcceptance, or Accepted for a reset)--> sending --> sent
//!    |                                                                        |  \
//!    +--> skipped (redeemed meanwhile, no longer pending …)                  |   +--> failed
//!                                                       (answer lost, or a kill) --> settled by reading:
//!                                                       resend: unknown (never sent again by this operation)
//!                                                       reset:  sent (pending again) or selected again (still accepted)
//! ```
//!
//! The member's state: a resend leaves it `invited` (with the new invitation id, and the new
//! link when the wave keeps links); a redemption reset moves it `accepted → invited` (it must
//! redeem again). Both through the store's compare-and-set.
//!
//! A selection is one *operation* (`reinvites`): its members are fixed when it starts, and a
//! rerun after an interruption resumes it, so nobody it recorded as sending, sent or unknown is
//! sent again. Graph does not say whether a resend to a pending user changes anything that can
//! be read back (NOTES §1.6), so a resend whose answer was lost is `unknown`, never re-sent by
//! the same operation; a redemption reset is visible (the intent is recorded only while Graph
//! shows `Accepted`, and only a reset leads back to `PendingAcceptance`) and is settled by
//! reading. It must not print, decide eligibility, or
//! send an invitation anywhere but through the executor's `post_invitation`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use futures_util::StreamExt;
use secrecy::ExposeSecret;
use serde::Serialize;
use time::OffsetDateTime;

use super::{
    Executor, Halt, INVITATION_WINDOW, InFlight, InvitationGate, InvitationTemplate, Pace, Pacer,
    RunError, RunObserver, RunOptions, RunRecord, Step, UserOutcome, gate, invitation_guard,
    invitation_retry_pacing, millis, now, throttle_reporter, with_failure, with_meta,
};
use crate::domain::{FailureKind, RunId, UserId, UserState};
use crate::graph::{self, GraphClient};
use crate::operator::Operator;
use crate::store::{
    self, NewEvent, Reinvite, ResendCriteria, ResendMember, ResendState, Resent, Store, Wave,
};

/// What a reinvite re-sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The invitation again, to members still waiting to redeem (`PendingAcceptance`).
    Resend,
    /// `resetRedemption`, to members who redeemed (`Accepted`) and must redeem again.
    ResetRedemption,
}

impl Mode {
    /// The member state a re-send starts from.
    pub const fn member_state(self) -> UserState {
        match self {
            Self::Resend => UserState::Invited,
            Self::ResetRedemption => UserState::Accepted,
        }
    }

    /// The `externalUserState` Graph must show before the re-send.
    pub const fn graph_state(self) -> &'static str {
        match self {
            Self::Resend => "PendingAcceptance",
            Self::ResetRedemption => "Accepted",
        }
    }
}

/// Which members a reinvite selects, as the operator gave it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Selection {
    pub mode: Mode,
    /// Only members without a stored redemption link.
    pub missing_links: bool,
    /// Only members whose invitation was last sent longer ago than this.
    #[serde(with = "seconds")]
    pub older_than: Option<time::Duration>,
    /// Only these users (all when empty).
    pub users: Vec<UserId>,
}

mod seconds {
    #[allow(clippy::ref_option)] // the signature serde's `with` expects
    pub fn serialize<S: serde::Serializer>(
        value: &Option<time::Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&value.map(time::Duration::whole_seconds), serializer)
    }
}

impl Selection {
    /// The store's criteria at `now`.
    pub fn criteria(&self, now: OffsetDateTime) -> ResendCriteria {
        ResendCriteria {
            state: Some(self.mode.member_state()),
            missing_link: self.missing_links,
            sent_before: self.older_than.map(|age| now - age),
            users: self.users.clone(),
        }
    }

    /// The selection as the operation records it.
    pub fn json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a selection is plain JSON")
    }
}

/// What a reinvite of a wave would do now.
#[derive(Clone, Debug, PartialEq)]
pub enum Planned {
    /// Resume the wave's unfinished operation of the same selection: its members still open.
    Resume { reinvite: Reinvite, open: u64 },
    /// Start a new operation over these members.
    New(Vec<UserId>),
}

impl Planned {
    /// How many members would be worked on.
    pub fn count(&self) -> u64 {
        match self {
            Self::Resume { open, .. } => *open,
            Self::New(users) => users.len() as u64,
        }
    }
}

/// A reinvite cannot start as asked.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(
        "wave {wave} has an unfinished reinvite (started {started}, selection {selection}): run reinvite again with the same selection to finish it first, so nobody it may have reached is sent twice"
    )]
    OtherOpen {
        wave: String,
        started: String,
        selection: String,
    },
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// What a reinvite of `wave` with `selection` would do at `now` (reads only).
pub async fn plan(
    store: &Store,
    wave: &Wave,
    selection: &Selection,
    now: OffsetDateTime,
) -> Result<Planned, PlanError> {
    if let Some(reinvite) = store.open_reinvite(wave.id).await? {
        let open = store
            .reinvite_members(reinvite.id)
            .await?
            .iter()
            .filter(|m| m.state.is_open())
            .count() as u64;
        // An operation stopped after its last member was recorded is over: [`start`] closes it.
        if open == 0 {
            return Ok(Planned::New(
                store
                    .resend_candidates(wave.id, &selection.criteria(now))
                    .await?,
            ));
        }
        if reinvite.selection != selection.json() {
            return Err(PlanError::OtherOpen {
                wave: wave.name.clone(),
                started: reinvite.started_at.to_string(),
                selection: reinvite.selection.to_string(),
            });
        }
        return Ok(Planned::Resume { reinvite, open });
    }
    Ok(Planned::New(
        store
            .resend_candidates(wave.id, &selection.criteria(now))
            .await?,
    ))
}

/// The template of the wave's invitations: the one its last `run` (or, for a one-user wave,
/// `invite`) sent, recorded with that run, with `resetRedemption` as `mode` says. `None` when
/// the wave was never run.
pub async fn wave_template(
    store: &Store,
    wave: &Wave,
    mode: Mode,
) -> Result<Option<InvitationTemplate>, store::Error> {
    let runs = store.runs(wave.id).await?;
    let Some(run) = runs
        .iter()
        .rev()
        .find(|r| r.command == "run" || r.command == "invite")
    else {
        return Ok(None);
    };
    let mut template: InvitationTemplate =
        serde_json::from_value(run.settings.clone()).map_err(|e| store::Error::Corrupt {
            column: "runs.settings",
            message: e.to_string(),
        })?;
    template.reset_redemption = mode == Mode::ResetRedemption;
    Ok(Some(template))
}

/// How one member's re-send ended in this invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResendOutcome {
    /// Graph answered: re-sent (with a stored link when the wave keeps links).
    Sent {
        link: bool,
    },
    /// No answer, but Graph shows the redemption reset: re-sent, its link unknown.
    Reconciled,
    /// No answer: it may have been re-sent; not sent again by this operation.
    Unknown(String),
    Skipped(String),
    Failed {
        code: Option<String>,
        message: String,
    },
    /// The user could not be read; the operation stays open for a rerun.
    Unresolved(String),
}

impl ResendOutcome {
    /// The same outcome in a run's terms, for a [`RunObserver`].
    fn as_run_outcome(&self) -> UserOutcome {
        match self {
            Self::Sent { .. } => UserOutcome::Invited,
            Self::Reconciled => UserOutcome::Reconciled,
            Self::Skipped(note) => UserOutcome::Drifted(note.clone()),
            Self::Failed { code, message } => UserOutcome::Failed {
                kind: FailureKind::Permanent,
                code: code.clone(),
                message: message.clone(),
                hint: None,
            },
            Self::Unknown(note) | Self::Unresolved(note) => UserOutcome::Unresolved(note.clone()),
        }
    }
}

/// A member whose re-send was not sent, or not answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResendProblem {
    pub user_id: UserId,
    /// Its state in the operation (`unknown`, `failed`).
    pub state: String,
    /// Why, as recorded.
    pub note: String,
}

/// The counts of a reinvite: this invocation's, and where its operation stands.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ResendSummary {
    pub reinvite: RunId,
    pub resumed: bool,
    /// Re-sent in this invocation, with an answer.
    pub sent: u64,
    /// Of those, with a new link stored.
    pub links_stored: u64,
    pub reconciled: u64,
    pub unknown: u64,
    pub skipped: u64,
    pub failed: u64,
    pub unresolved: u64,
    pub interrupted: bool,
    /// Members of the operation still open (it resumes on the next reinvite).
    pub open: u64,
    /// The operation is over.
    pub finished: bool,
    /// The operation's members whose re-send was not sent or not answered, with why.
    pub problems: Vec<ResendProblem>,
    pub elapsed_seconds: f64,
    /// Why sending stopped early: the service refused invitations for the tenant, or the
    /// daily quota is used up. The members not sent stay open for a later reinvite.
    pub halted: Option<Halt>,
}

impl ResendSummary {
    fn count(&mut self, outcome: &ResendOutcome) {
        match outcome {
            ResendOutcome::Sent { link } => {
                self.sent += 1;
                self.links_stored += u64::from(*link);
            }
            ResendOutcome::Reconciled => self.reconciled += 1,
            ResendOutcome::Unknown(_) => self.unknown += 1,
            ResendOutcome::Skipped(_) => self.skipped += 1,
            ResendOutcome::Failed { .. } => self.failed += 1,
            ResendOutcome::Unresolved(_) => self.unresolved += 1,
        }
    }
}

/// Starts the operation `planned` describes (a resumed one is returned as it is).
pub async fn start(
    store: &Store,
    wave: &Wave,
    selection: &Selection,
    planned: Planned,
    now: OffsetDateTime,
) -> Result<(Reinvite, bool), store::Error> {
    match planned {
        Planned::Resume { reinvite, .. } => Ok((reinvite, true)),
        Planned::New(users) => {
            if let Some(stale) = store.open_reinvite(wave.id).await? {
                store.finish_reinvite_if_done(stale.id, now).await?;
            }
            Ok((
                store
                    .start_reinvite(RunId::new(), wave.id, &selection.json(), &users, now)
                    .await?,
                false,
            ))
        }
    }
}

/// Re-sends the open members of `reinvite` until done or `stop` resolves, recorded as one run
/// of `reinvite`. The outer error is the run's record failing; the inner result is how the
/// re-sends went, as recorded.
#[allow(clippy::too_many_arguments)] // the parts of a run, given once (as `run_wave`)
pub async fn reinvite_wave(
    client: GraphClient,
    store: &Store,
    wave: &Wave,
    template: InvitationTemplate,
    pace: &Pace,
    reinvite: &Reinvite,
    mode: Mode,
    operator: &Operator,
    observer: Arc<dyn RunObserver>,
    stop: impl Future<Output = ()>,
) -> Result<Result<ResendSummary, RunError>, store::Error> {
    let invitations = Arc::new(Pacer::new(pace.rate).with_window(INVITATION_WINDOW));
    let gate = InvitationGate::new(pace.max_invitations_per_day, Vec::new());
    let client = Arc::new(
        client
            .with_retry_observer(throttle_reporter(Arc::clone(&invitations)))
            .with_retry_pacing(invitation_retry_pacing(Arc::clone(&invitations)))
            .with_retry_guard(invitation_guard(Arc::clone(&gate))),
    );
    let options = RunOptions {
        concurrency: pace.concurrency,
        invitations_per_second: pace.rate,
        directory_writes_per_second: pace.directory_writes_per_second,
        reconcile_delay: pace.reconcile_delay,
        limit: pace.limit,
        attempts_per_run: 1,
        restore_mail_on_failure: false,
        max_invitations_per_day: pace.max_invitations_per_day,
    };
    let mut settings = serde_json::to_value(&template).expect("a template is plain JSON");
    settings["reinvite"] = serde_json::json!({
        "id": reinvite.id,
        "selection": reinvite.selection,
    });
    let record = RunRecord::start(store, wave.id, "reinvite", &settings, operator).await?;
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
    tracing::info!(run = %record.id(), reinvite = %reinvite.id, wave = %wave.name, "reinvite started");
    let result = executor.resend_all(reinvite, mode, stop).await;
    observer.run_ended();
    let result = match result {
        Ok(mut summary) => match close(store, reinvite, &mut summary).await {
            Ok(()) => Ok(summary),
            Err(err) => Err(RunError::Store(err)),
        },
        Err(err) => Err(err),
    };
    let (summary, interrupted, error) = match &result {
        Ok(summary) => (
            serde_json::to_value(summary).expect("a summary is plain JSON"),
            summary.interrupted,
            None,
        ),
        Err(err) => (serde_json::json!({}), false, Some(err.to_string())),
    };
    record.finish(store, summary, interrupted, error).await?;
    Ok(result)
}

/// Ends the operation when nobody is left open, and fills in where it stands.
async fn close(
    store: &Store,
    reinvite: &Reinvite,
    summary: &mut ResendSummary,
) -> Result<(), store::Error> {
    summary.finished = store.finish_reinvite_if_done(reinvite.id, now()).await?;
    let members = store.reinvite_members(reinvite.id).await?;
    summary.open = members.iter().filter(|m| m.state.is_open()).count() as u64;
    summary.problems = members
        .into_iter()
        .filter(|m| matches!(m.state, ResendState::Unknown | ResendState::Failed))
        .map(|m| ResendProblem {
            user_id: m.user_id,
            state: m.state.code().to_owned(),
            note: m.note.unwrap_or_default(),
        })
        .collect();
    Ok(())
}

/// How settling a `sending` member ended.
enum Settled {
    Done(ResendOutcome),
    /// A reset Graph shows not made: the member is `selected` again and may be sent.
    NotSent,
}

impl Executor {
    /// Re-sends every open member of `reinvite`; after `stop`, no new member is started and
    /// those in flight are recorded.
    async fn resend_all(
        &self,
        reinvite: &Reinvite,
        mode: Mode,
        stop: impl Future<Output = ()>,
    ) -> Result<ResendSummary, RunError> {
        let started = Instant::now();
        // The day's invitations so far, from every run and re-send: what the quota counts.
        self.gate.remember_sent(
            self.store
                .invitations_sent_since(now() - gate::QUOTA_WINDOW)
                .await?,
        );
        let open: Vec<ResendMember> = self
            .store
            .reinvite_members(reinvite.id)
            .await?
            .into_iter()
            .filter(|m| m.state.is_open())
            .collect();
        let mut summary = ResendSummary {
            reinvite: reinvite.id,
            ..ResendSummary::default()
        };
        let stopping = Arc::new(AtomicBool::new(false));
        let mut fatal: Option<RunError> = None;
        let flight = InFlight::new(
            self.options.concurrency,
            self.options.invitations_per_second,
        );
        {
            let gate = Arc::clone(&stopping);
            let invitations = Arc::clone(&self.gate);
            let flight = &flight;
            let resends = futures_util::stream::iter(open)
                .then(move |member| async move { (member, flight.enter().await) })
                .take_while(move |_| {
                    std::future::ready(!gate.load(Ordering::SeqCst) && invitations.halt().is_none())
                })
                .map(|(member, place)| async move {
                    let (result, busy) =
                        Box::pin(InFlight::timed(self.resend_one(reinvite, mode, member))).await;
                    flight.leave(place, busy);
                    result
                })
                .buffer_unordered(flight.bound());
            let mut resends = std::pin::pin!(resends);
            tokio::pin!(stop);
            let mut stop_seen = false;
            loop {
                let next = tokio::select! {
                    () = &mut stop, if !stop_seen => {
                        stop_seen = true;
                        summary.interrupted = true;
                        stopping.store(true, Ordering::SeqCst);
                        tracing::info!("stopping: no new re-sends; finishing those in flight");
                        continue;
                    }
                    next = resends.next() => next,
                };
                let Some(result) = next else { break };
                match result {
                    Ok((user, outcome)) => {
                        summary.count(&outcome);
                        self.observer.user_done(user, &outcome.as_run_outcome());
                    }
                    Err(err) => {
                        stopping.store(true, Ordering::SeqCst);
                        fatal.get_or_insert(err);
                    }
                }
            }
        }
        if let Some(err) = fatal {
            return Err(err);
        }
        summary.halted = self.gate.halt();
        summary.elapsed_seconds = started.elapsed().as_secs_f64();
        Ok(summary)
    }

    /// One member, from re-reading to the recorded outcome. `Err` only for what stops the
    /// whole reinvite.
    async fn resend_one(
        &self,
        reinvite: &Reinvite,
        mode: Mode,
        member: ResendMember,
    ) -> Result<(UserId, ResendOutcome), RunError> {
        let user = member.user_id;
        if member.state == ResendState::Sending {
            match self.settle(reinvite, mode, &member).await? {
                Settled::Done(outcome) => return Ok((user, outcome)),
                Settled::NotSent => {}
            }
        }
        let outcome = self.resend_selected(reinvite, mode, user).await?;
        Ok((user, outcome))
    }

    async fn resend_selected(
        &self,
        reinvite: &Reinvite,
        mode: Mode,
        user: UserId,
    ) -> Result<ResendOutcome, RunError> {
        let Some(member) = self.store.member(self.wave, user).await? else {
            return self
                .skip(reinvite, user, "no longer a member of the wave".into())
                .await;
        };
        let expected = mode.member_state();
        if member.state != expected {
            return self
                .skip(
                    reinvite,
                    user,
                    format!("the member is {} now, not {expected}", member.state),
                )
                .await;
        }
        let Some(address) = member.plan.chosen_address.clone() else {
            return self
                .skip(reinvite, user, "the plan has no address".into())
                .await;
        };
        let fresh = match self.client.user(user, now()).await {
            Ok(fresh) => fresh,
            Err(err) if err.is_about_the_caller() => return Err(RunError::Graph(err)),
            Err(err) => {
                return Ok(ResendOutcome::Unresolved(format!(
                    "cannot read the user ({err}); run reinvite again"
                )));
            }
        };
        let shown = fresh.external_user_state.as_deref();
        if shown != Some(mode.graph_state()) {
            let note = match (mode, shown) {
                (Mode::Resend, Some("Accepted")) => {
                    "redeemed meanwhile: nothing to re-send (`status --refresh` records it)".into()
                }
                (_, shown) => format!(
                    "Graph shows externalUserState {}, not {}",
                    shown.unwrap_or("null"),
                    mode.graph_state()
                ),
            };
            return self.skip(reinvite, user, note).await;
        }

        // A place in the daily quota, taken and spent right before the intent: the quota counts
        // re-sends like first invitations (they are the same POST /invitations).
        let Ok(slot) = self.gate.reserve(now()) else {
            return Ok(ResendOutcome::Unresolved(
                "not sent: the invitation gate is closed (see above); run reinvite again later"
                    .into(),
            ));
        };
        if slot.spend(now()).is_err() {
            return Ok(ResendOutcome::Unresolved(
                "not sent: the invitation gate closed meanwhile; run reinvite again later".into(),
            ));
        }
        let before = fresh.external_user_state_changed_at;
        let intent = self.resend_event(
            user,
            "invitation.resend-intent",
            reinvite,
            serde_json::json!({ "address": address, "mode": mode }),
        );
        self.store
            .resend_step(
                reinvite.id,
                user,
                ResendState::Selected,
                ResendState::Sending,
                before,
                None,
                &intent,
                now(),
            )
            .await?;
        self.observer.at_step(user, Step::IntentRecorded).await;
        let request = self.template.request(
            user,
            &address,
            fresh.display_name.as_deref(),
            &fresh.profile,
        );
        // The pacer's slot last, so the request leaves when the slot says (a shut gate is
        // seen by `post_invitation`, and the member reopened).
        self.invitations.acquire().await;
        let (answer, elapsed) = self.post_invitation(&request).await;
        self.observer.at_step(user, Step::InvitationAnswered).await;
        self.record_answer(reinvite, mode, user, before, elapsed, answer)
            .await
    }

    /// Puts a member whose re-send did not leave (withheld, refused for the tenant or for the
    /// caller) back to `selected`, with `event`: a later reinvite sends it once.
    async fn reopen(
        &self,
        reinvite: &Reinvite,
        user: UserId,
        event: &NewEvent,
    ) -> Result<(), store::Error> {
        self.store
            .resend_step(
                reinvite.id,
                user,
                ResendState::Sending,
                ResendState::Selected,
                None,
                None,
                event,
                now(),
            )
            .await
    }

    /// Records the answer to a re-send whose intent is recorded.
    #[allow(clippy::too_many_lines)] // one match: each answer and its record
    async fn record_answer(
        &self,
        reinvite: &Reinvite,
        mode: Mode,
        user: UserId,
        before: Option<OffsetDateTime>,
        elapsed: std::time::Duration,
        answer: Result<graph::Response<graph::invitations::Invitation>, graph::Error>,
    ) -> Result<ResendOutcome, RunError> {
        let expected = mode.member_state();
        match answer {
            Ok(response) => {
                let invitation = response.body;
                let redeem_url = if self.template.keeps_redeem_urls() {
                    invitation
                        .redeem_url
                        .as_ref()
                        .map(|u| u.expose_secret().to_owned())
                } else {
                    None
                };
                let link = redeem_url.is_some();
                let mut event = self.resend_event(
                    user,
                    "invitation.resent",
                    reinvite,
                    serde_json::json!({
                        "invitation_id": invitation.id,
                        "status": invitation.status,
                        "mode": mode,
                        "link_stored": link,
                    }),
                );
                with_meta(&mut event, "POST", "/v1.0/invitations", &response.meta);
                event.duration_ms = Some(millis(elapsed));
                let resent = Resent {
                    from: expected,
                    invitation_id: Some(invitation.id),
                    invite_redeem_url: redeem_url,
                    external_state_changed_at: None,
                };
                match self
                    .store
                    .record_resent(reinvite.id, self.wave, user, &resent, &event, now())
                    .await
                {
                    Ok(()) => Ok(ResendOutcome::Sent { link }),
                    // The member moved on meanwhile (say `status --refresh` saw a redemption):
                    // the re-send is recorded as sent, the member left as it is now.
                    Err(store::Error::StateConflict { actual, .. }) => {
                        let note =
                            format!("sent, but the member was {actual} by then and is left so");
                        self.store
                            .resend_step(
                                reinvite.id,
                                user,
                                ResendState::Sending,
                                ResendState::Sent,
                                None,
                                Some(&note),
                                &event,
                                now(),
                            )
                            .await?;
                        Ok(ResendOutcome::Sent { link: false })
                    }
                    Err(err) => Err(err.into()),
                }
            }
            Err(graph::Error::OutcomeUnknown {
                reason,
                status,
                request_id,
                client_request_id,
                ..
            }) => {
                let mut event = self.resend_event(
                    user,
                    "invitation.resend-outcome-unknown",
                    reinvite,
                    serde_json::json!({ "reason": reason }),
                );
                event.http_method = Some("POST".into());
                event.http_path = Some("/v1.0/invitations".into());
                event.http_status = status;
                event.request_id = request_id;
                event.client_request_id = Some(client_request_id);
                event.duration_ms = Some(millis(elapsed));
                self.store.append_event(&event, now()).await?;
                tokio::time::sleep(self.options.reconcile_delay).await;
                let sending = ResendMember {
                    user_id: user,
                    state: ResendState::Sending,
                    state_before: before,
                    note: None,
                };
                match self.settle(reinvite, mode, &sending).await? {
                    Settled::Done(outcome) => Ok(outcome),
                    Settled::NotSent => {
                        let message = format!(
                            "no answer to the redemption reset ({reason}) and Graph shows it not made; run reinvite again"
                        );
                        self.fail_selected(reinvite, user, Some("OutcomeUnknown".into()), message)
                            .await
                    }
                }
            }
            Err(err @ graph::Error::Withheld { .. }) => {
                // Nothing was sent: the gate closed while this member waited for its turn.
                let event = self.resend_event(
                    user,
                    "invitation.withheld",
                    reinvite,
                    serde_json::json!({ "reason": err.to_string() }),
                );
                self.reopen(reinvite, user, &event).await?;
                Ok(ResendOutcome::Unresolved(format!("not sent: {err}")))
            }
            Err(err) if err.tenant_refusal().is_some() => {
                // The service refused invitations for the whole tenant (the executor's gate
                // has shut): nothing was re-sent, the member stays open for a later reinvite.
                let mut event = self.resend_event(
                    user,
                    "invitation.tenant-refused",
                    reinvite,
                    serde_json::json!({ "error": err.to_string() }),
                );
                with_failure(&mut event, "POST", "/v1.0/invitations", &err);
                event.duration_ms = Some(millis(elapsed));
                self.reopen(reinvite, user, &event).await?;
                Ok(ResendOutcome::Unresolved(format!("not re-sent: {err}")))
            }
            Err(err) if err.is_about_the_caller() => {
                // Refused before anything happened: the member is as it was.
                let event = self.resend_event(
                    user,
                    "invitation.refused",
                    reinvite,
                    serde_json::Value::Null,
                );
                self.reopen(reinvite, user, &event).await?;
                Err(RunError::Graph(err))
            }
            Err(err) => {
                let (code, message) = match &err {
                    graph::Error::Api(api) => (Some(api.code.clone()), api.message.clone()),
                    other => (None, other.to_string()),
                };
                let mut event = self.resend_event(
                    user,
                    "invitation.resend-failed",
                    reinvite,
                    serde_json::json!({ "code": code, "message": message }),
                );
                with_failure(&mut event, "POST", "/v1.0/invitations", &err);
                self.store
                    .resend_step(
                        reinvite.id,
                        user,
                        ResendState::Sending,
                        ResendState::Failed,
                        None,
                        Some(&message),
                        &event,
                        now(),
                    )
                    .await?;
                Ok(ResendOutcome::Failed { code, message })
            }
        }
    }

    /// A member left `sending` (its answer lost, or the process stopped after the intent):
    /// what Graph shows decides; nothing is sent here.
    async fn settle(
        &self,
        reinvite: &Reinvite,
        mode: Mode,
        member: &ResendMember,
    ) -> Result<Settled, RunError> {
        let user = member.user_id;
        let fresh = match self.client.user(user, now()).await {
            Ok(fresh) => fresh,
            Err(err) if err.is_about_the_caller() => return Err(RunError::Graph(err)),
            Err(err) => {
                return Ok(Settled::Done(ResendOutcome::Unresolved(format!(
                    "the re-send's outcome is unknown and the user cannot be read ({err}); run reinvite again"
                ))));
            }
        };
        let shown = fresh.external_user_state.as_deref();
        let changed_after = fresh.external_user_state_changed_at > member.state_before;
        match (mode, shown) {
            // The intent was recorded only after Graph showed the user `Accepted`, and only a
            // reset leads from there back to pending: it landed (the change time, in whole
            // seconds, may equal the redemption's).
            (Mode::ResetRedemption, Some("PendingAcceptance")) => {
                let event = self.resend_event(
                    user,
                    "invitation.resend-reconciled",
                    reinvite,
                    serde_json::json!({ "external_user_state": shown, "landed": true }),
                );
                let resent = Resent {
                    from: UserState::Accepted,
                    invitation_id: None,
                    invite_redeem_url: None,
                    external_state_changed_at: fresh.external_user_state_changed_at,
                };
                self.store
                    .record_resent(reinvite.id, self.wave, user, &resent, &event, now())
                    .await?;
                Ok(Settled::Done(ResendOutcome::Reconciled))
            }
            (Mode::ResetRedemption, Some("Accepted")) if !changed_after => {
                let event = self.resend_event(
                    user,
                    "invitation.resend-not-found",
                    reinvite,
                    serde_json::json!({ "external_user_state": shown }),
                );
                self.reopen(reinvite, user, &event).await?;
                Ok(Settled::NotSent)
            }
            (Mode::Resend, Some("Accepted")) => {
                let note = "redeemed meanwhile (`status --refresh` records it)";
                let event = self.resend_event(
                    user,
                    "invitation.resend-skipped",
                    reinvite,
                    serde_json::json!({ "note": note }),
                );
                self.store
                    .resend_step(
                        reinvite.id,
                        user,
                        ResendState::Sending,
                        ResendState::Skipped,
                        None,
                        Some(note),
                        &event,
                        now(),
                    )
                    .await?;
                Ok(Settled::Done(ResendOutcome::Skipped(note.into())))
            }
            _ => {
                let note = "no answer to the re-send (or the process stopped after recording it): it may have been sent, so this reinvite does not send it again; its link, if any, is unknown";
                let event = self.resend_event(
                    user,
                    "invitation.resend-reconciled",
                    reinvite,
                    serde_json::json!({ "external_user_state": shown, "landed": "unknown" }),
                );
                self.store
                    .record_resend_unknown(reinvite.id, self.wave, user, note, &event, now())
                    .await?;
                Ok(Settled::Done(ResendOutcome::Unknown(note.into())))
            }
        }
    }

    async fn skip(
        &self,
        reinvite: &Reinvite,
        user: UserId,
        note: String,
    ) -> Result<ResendOutcome, RunError> {
        let event = self.resend_event(
            user,
            "invitation.resend-skipped",
            reinvite,
            serde_json::json!({ "note": note }),
        );
        self.store
            .resend_step(
                reinvite.id,
                user,
                ResendState::Selected,
                ResendState::Skipped,
                None,
                Some(&note),
                &event,
                now(),
            )
            .await?;
        Ok(ResendOutcome::Skipped(note))
    }

    async fn fail_selected(
        &self,
        reinvite: &Reinvite,
        user: UserId,
        code: Option<String>,
        message: String,
    ) -> Result<ResendOutcome, RunError> {
        let event = self.resend_event(
            user,
            "invitation.resend-failed",
            reinvite,
            serde_json::json!({ "code": code, "message": message }),
        );
        self.store
            .resend_step(
                reinvite.id,
                user,
                ResendState::Selected,
                ResendState::Failed,
                None,
                Some(&message),
                &event,
                now(),
            )
            .await?;
        Ok(ResendOutcome::Failed { code, message })
    }

    /// An event of this re-send, naming its operation. Never holds a redemption link.
    fn resend_event(
        &self,
        user: UserId,
        kind: &str,
        reinvite: &Reinvite,
        detail: serde_json::Value,
    ) -> NewEvent {
        let mut detail = match detail {
            serde_json::Value::Object(map) => serde_json::Value::Object(map),
            _ => serde_json::json!({}),
        };
        detail["reinvite"] = reinvite.id.to_string().into();
        self.event(user, kind, detail)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::execute::testing::{id, invited_wave};
    use crate::store::testing::temp_store;

    fn missing_links() -> Selection {
        Selection {
            mode: Mode::Resend,
            missing_links: true,
            older_than: None,
            users: vec![],
        }
    }

    #[tokio::test]
    async fn an_unfinished_operation_is_resumed_and_one_with_nobody_left_is_closed() {
        let (_dir, store) = temp_store().await;
        let wave = invited_wave(&store, 2).await;
        let t = datetime!(2026-12-01 09:00 UTC);
        let selection = missing_links();
        let planned = plan(&store, &wave, &selection, t).await.unwrap();
        assert_eq!(planned, Planned::New(vec![id(1), id(2)]));
        let (first, resumed) = start(&store, &wave, &selection, planned, t).await.unwrap();
        assert!(!resumed);

        // Unfinished: the same selection resumes it, another one waits for it.
        let again = plan(&store, &wave, &selection, t).await.unwrap();
        assert!(matches!(&again, Planned::Resume { reinvite, open: 2 } if reinvite.id == first.id));
        let other = Selection {
            older_than: Some(time::Duration::days(1)),
            ..selection.clone()
        };
        assert!(matches!(
            plan(&store, &wave, &other, t).await,
            Err(PlanError::OtherOpen { .. })
        ));

        // Stopped after its last member was recorded: over, and a new selection starts.
        for user in [id(1), id(2)] {
            store
                .resend_step(
                    first.id,
                    user,
                    ResendState::Selected,
                    ResendState::Skipped,
                    None,
                    Some("test"),
                    &NewEvent {
                        kind: "invitation.resend-skipped".into(),
                        ..NewEvent::default()
                    },
                    t,
                )
                .await
                .unwrap();
        }
        let planned = plan(&store, &wave, &other, t).await.unwrap();
        assert!(matches!(planned, Planned::New(_)), "{planned:?}");
        let (second, resumed) = start(&store, &wave, &other, planned, t).await.unwrap();
        assert!(!resumed);
        assert_eq!(
            store.open_reinvite(wave.id).await.unwrap().unwrap().id,
            second.id
        );
    }
}
