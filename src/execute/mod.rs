//! The wave executor: converts a wave's stored plan, user by user, safely and at the service's
//! pace. It owns the per-user state machine of a run:
//!
//! ```text
//! ready --(re-read, no drift)--> [set mail] --> baseline --> inviting --> invited
//!   |                                              |  \
//!   +--> drifted (rule inputs changed)             |   +--> failed (retryable | permanent)
//!                                                  +--(outcome unknown)--> reconciled by reading
//!                                                                          externalUserState
//! ```
//!
//! Intent (`inviting`) is recorded before every invitation and the outcome after it. A member
//! found in `inviting` (a crash, a kill, an unknown outcome) is reconciled by reading the user
//! before anything is sent again, so the tool never invites anyone twice. Failures of one user
//! never stop the others; failures that concern the whole run (authentication, a missing
//! permission, the database) stop it after the requests in flight are recorded. Every
//! invitation passes the run's [`InvitationGate`] on its way out: the abuse block or a quota
//! refusal from the service shuts it (nothing not yet sent goes, the user that met it goes back
//! to `ready`), and `throughput.max_invitations_per_day` closes it before the day's quota
//! would be exceeded; the run then ends with its [`Halt`].
//!
//! The executor never recomputes a plan and never decides eligibility: it executes the stored
//! decision, or skips the user when what the decision was based on has changed.
//!
//! Every other change of a member's state goes through this module too, so the state machine
//! has one owner (the store applies each change compare-and-set, with its event):
//! [`redemptions`] (`invited → accepted`, read from Graph), [`reinvite`] (re-sent invitations:
//! `invited` stays `invited` with a new link, a redemption reset `accepted → invited`) and
//! [`scramble`] (`→ scrambled`, over LDAPS or from a script's results). [`user_type`] (the
//! optional `userType` step after redemption) changes no state but writes to the tenant the
//! same recorded, paced way. [`run_wave`] runs the executor inside a
//! [`RunRecord`], the record every `run`, `invite` and `scramble` is bracketed by. Nothing here
//! prints: progress goes to an observer the command gives.

mod failures;
mod gate;
mod in_flight;
mod lock;
mod pacer;
mod record;
pub mod redemptions;
pub mod reinvite;
mod run;
pub mod scramble;
pub mod user_type;
mod withheld;

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt};
use secrecy::ExposeSecret;
use serde::Serialize;
use time::OffsetDateTime;

pub use failures::fix_hint;
pub use gate::{
    Halt, InvitationGate, QUOTA_WINDOW, Slot, YOUNG_TENANT, YOUNG_TENANT_DAILY_INVITATIONS,
    young_tenant_warning,
};
pub use in_flight::{ADAPTIVE_BOUND, Concurrency, InFlight};
pub use lock::{LockError, RunLock};
pub use pacer::{INVITATION_WINDOW, Pacer, Window};
pub use record::RunRecord;
pub use run::{Pace, run_wave};
pub use withheld::invitation_guard;

use crate::config::InvitationSettings;
use crate::domain::{FailureKind, RunId, UserId, UserProfile, UserSnapshot, UserState, WaveId};
use crate::graph::invitations::{
    EmailAddress, InvitationRequest, InvitedUserRef, MessageInfo, Recipient,
};
use crate::graph::{self, GraphClient};
use crate::rules;
use crate::store::{self, MailRestore, MemberNames, NewEvent, Store, Transition, WaveMember};

/// The invitation fields of a run, from the settings: what every request carries besides the
/// user and the address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[allow(clippy::struct_excessive_bools)] // one per invitation setting
pub struct InvitationTemplate {
    pub redirect_url: String,
    pub send_message: bool,
    pub message_language: Option<String>,
    /// `messageLanguage` is the user's own language when they have one, `message_language`
    /// otherwise (`invitation.message_language_from_user`).
    #[serde(default)]
    pub message_language_from_user: bool,
    pub custom_message: Option<String>,
    pub cc_recipient: Option<(String, Option<String>)>,
    pub invited_user_type: Option<String>,
    pub send_display_name: bool,
    /// A fixed `invitedUserDisplayName` (`invite --display-name`), sent whatever
    /// `send_display_name` says.
    pub display_name: Option<String>,
    pub reset_redemption: bool,
}

/// The settings cannot make an invitation.
#[derive(Debug, thiserror::Error)]
#[error(
    "no invitation redirect URL: set invitation.redirect_url (for example https://myapps.microsoft.com/?tenantId=<your tenant id>)"
)]
pub struct NoRedirectUrl;

impl InvitationTemplate {
    pub fn from_settings(settings: &InvitationSettings) -> Result<Self, NoRedirectUrl> {
        Ok(Self {
            redirect_url: settings
                .redirect_url
                .as_ref()
                .ok_or(NoRedirectUrl)?
                .to_string(),
            send_message: settings.send_message,
            message_language: Some(settings.message_language.clone()),
            message_language_from_user: settings.message_language_from_user,
            custom_message: settings.custom_message.clone(),
            cc_recipient: settings
                .cc_recipient
                .as_ref()
                .map(|c| (c.address.clone(), c.name.clone())),
            invited_user_type: settings.invited_user_type.map(|t| format!("{t:?}")),
            send_display_name: settings.send_display_name,
            display_name: None,
            reset_redemption: false,
        })
    }

    /// The `messageLanguage` of a message to a user with `profile`.
    pub fn message_language_of(&self, profile: &UserProfile) -> Option<String> {
        self.message_language_from_user
            .then(|| profile.own_language())
            .flatten()
            .map(str::to_owned)
            .or_else(|| self.message_language.clone())
    }

    /// Whether redemption URLs are kept: only when the operator distributes them
    /// (`sendInvitationMessage` false).
    pub fn keeps_redeem_urls(&self) -> bool {
        !self.send_message
    }

    /// The request converting `user` with `address`; `profile` is the user's, for the
    /// message language. The message fields go only with an email Microsoft sends; without one
    /// they would be ignored, so they are left out.
    pub fn request(
        &self,
        user: UserId,
        address: &str,
        display_name: Option<&str>,
        profile: &UserProfile,
    ) -> InvitationRequest {
        let message_info = self.send_message.then(|| MessageInfo {
            customized_message_body: self.custom_message.clone(),
            message_language: self.message_language_of(profile),
            cc_recipients: self
                .cc_recipient
                .iter()
                .map(|(address, name)| Recipient {
                    email_address: EmailAddress {
                        address: address.clone(),
                        name: name.clone(),
                    },
                })
                .collect(),
        });
        InvitationRequest {
            invited_user_email_address: address.to_owned(),
            invite_redirect_url: self.redirect_url.clone(),
            invited_user: InvitedUserRef { id: user },
            invited_user_display_name: self.display_name.clone().or_else(|| {
                display_name
                    .filter(|_| self.send_display_name)
                    .map(str::to_owned)
            }),
            send_invitation_message: self.send_message,
            invited_user_message_info: message_info,
            invited_user_type: self.invited_user_type.clone(),
            reset_redemption: self.reset_redemption,
        }
    }
}

/// A point in one user's conversion, where a test can stop the executor as a crash would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The user was re-read and passed the drift check; nothing written yet.
    Checked,
    /// `mail` was set; not yet recorded.
    MailSet,
    /// Intent recorded (`inviting`); the invitation not yet sent.
    IntentRecorded,
    /// The invitation was sent and answered (or its outcome is unknown); not yet recorded.
    InvitationAnswered,
}

/// What happened to one user in this run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserOutcome {
    Invited,
    /// An earlier attempt turned out to have worked (read back from Graph); nothing was sent.
    Reconciled,
    /// Rule inputs changed since `plan`; not converted.
    Drifted(String),
    Failed {
        kind: FailureKind,
        code: Option<String>,
        message: String,
        hint: Option<&'static str>,
    },
    /// The outcome is still unknown and Graph could not be read; the next run reconciles.
    Unresolved(String),
    /// Not sent: the run stopped sending invitations (its [`Halt`]); the user is `ready` for a
    /// later run.
    Withheld,
}

/// Receives progress; a test may also park at a [`Step`] to simulate a crash there.
pub trait RunObserver: Send + Sync {
    fn user_done(&self, _user: UserId, _outcome: &UserOutcome) {}

    /// The run is over (done, interrupted or stopped); called before its end is recorded.
    fn run_ended(&self) {}

    /// Awaited at each step of each user.
    fn at_step(&self, _user: UserId, _step: Step) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(std::future::ready(()))
    }
}

/// No progress display.
#[derive(Debug)]
pub struct Quiet;
impl RunObserver for Quiet {}

/// How a run is carried out.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Users in flight at once.
    pub concurrency: Concurrency,
    pub invitations_per_second: f64,
    pub directory_writes_per_second: f64,
    /// How long to wait before reading a user whose invitation outcome is unknown (the
    /// directory may need a moment to show a change that did happen).
    pub reconcile_delay: Duration,
    /// Convert at most this many users in this run.
    pub limit: Option<usize>,
    /// Invitations per user in this run: after an unclear answer and a read showing the user
    /// not invited, it is sent again, up to this many times in all.
    pub attempts_per_run: u32,
    /// Put back the `mail` the run set when the invitation then fails for good
    /// (`invitation.restore_mail_on_failure`).
    pub restore_mail_on_failure: bool,
    /// At most this many invitations in any rolling 24 h, counted with the event log's
    /// (`throughput.max_invitations_per_day`).
    pub max_invitations_per_day: Option<NonZeroU32>,
}

/// A failure that concerns the whole run: it stops, after recording what was in flight.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("Graph refused the run as a whole: {0}")]
    Graph(#[source] graph::Error),
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// The counts of one run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RunSummary {
    /// Members found in `inviting` at the start and settled by reading Graph.
    pub reconciled_at_start: u64,
    pub invited: u64,
    pub reconciled: u64,
    pub drifted: u64,
    pub failed_retryable: u64,
    pub failed_permanent: u64,
    pub unresolved: u64,
    /// Members left for a later run (interrupted, over `--limit`, or withheld by a [`Halt`]).
    pub not_started: u64,
    pub interrupted: bool,
    pub elapsed_seconds: f64,
    /// Invitations sent per second over the run.
    pub invitations_per_second: f64,
    /// How often the service throttled invitations.
    pub throttled: u64,
    /// Why the run stopped sending invitations before it was done, if it did.
    pub halted: Option<Halt>,
}

impl RunSummary {
    pub fn failed(&self) -> u64 {
        self.failed_retryable + self.failed_permanent + self.unresolved
    }

    fn count(&mut self, outcome: &UserOutcome) {
        match outcome {
            UserOutcome::Invited => self.invited += 1,
            UserOutcome::Reconciled => self.reconciled += 1,
            UserOutcome::Drifted(_) => self.drifted += 1,
            UserOutcome::Failed {
                kind: FailureKind::Retryable,
                ..
            } => self.failed_retryable += 1,
            UserOutcome::Failed {
                kind: FailureKind::Permanent,
                ..
            } => self.failed_permanent += 1,
            UserOutcome::Unresolved(_) => self.unresolved += 1,
            UserOutcome::Withheld => self.not_started += 1,
        }
    }
}

/// Converts the members of one wave.
pub struct Executor {
    client: Arc<GraphClient>,
    store: Store,
    wave: WaveId,
    run: RunId,
    template: InvitationTemplate,
    invitations: Arc<Pacer>,
    gate: Arc<InvitationGate>,
    writes: Pacer,
    options: RunOptions,
    observer: Arc<dyn RunObserver>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("wave", &self.wave)
            .field("run", &self.run)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// One user's conversion ended the run early.
type Fatal = RunError;

impl Executor {
    /// `invitations` is the pacer the client's retry observer reports throttling to (see
    /// [`throttle_reporter`]).
    #[allow(clippy::too_many_arguments)] // the parts of a run, given once
    pub fn new(
        client: Arc<GraphClient>,
        store: Store,
        wave: WaveId,
        run: RunId,
        template: InvitationTemplate,
        invitations: Arc<Pacer>,
        options: RunOptions,
        observer: Arc<dyn RunObserver>,
    ) -> Self {
        Self {
            writes: Pacer::new(options.directory_writes_per_second),
            gate: InvitationGate::new(options.max_invitations_per_day, Vec::new()),
            client,
            store,
            wave,
            run,
            template,
            invitations,
            options,
            observer,
        }
    }

    /// Sends through `gate` (shared with the client's [`invitation_guard`]) instead of a gate
    /// of its own.
    #[must_use]
    pub fn with_gate(mut self, gate: Arc<InvitationGate>) -> Self {
        self.gate = gate;
        self
    }

    /// Settles what an earlier run left open: members in `inviting` are read from Graph and
    /// become `invited` (the invitation took effect) or `ready` (it did not); members that
    /// failed for a retryable reason become `ready` again. Returns how many turned out invited.
    pub async fn prepare(&self) -> Result<u64, RunError> {
        let open = self
            .store
            .members_in_states(self.wave, &[UserState::Inviting, UserState::Failed])
            .await?;
        let mut landed = 0;
        for (member, _) in open {
            let user = member.plan.user_id;
            if member.state == UserState::Failed {
                if member.failure_kind == Some(FailureKind::Retryable) {
                    self.move_to(user, UserState::Failed, UserState::Ready, "retry", None)
                        .await?;
                }
                continue;
            }
            let fresh = match self.client.user(user, now()).await {
                Ok(fresh) => fresh,
                Err(err) if err.is_about_the_caller() => return Err(RunError::Graph(err)),
                Err(err) => {
                    tracing::warn!(%user, "cannot reconcile yet: {err}");
                    continue;
                }
            };
            if self.invitation_landed(member.external_state_changed_at, &fresh) {
                self.reconciled(user, UserState::Inviting, &fresh).await?;
                landed += 1;
            } else {
                self.not_invited(user).await?;
            }
        }
        Ok(landed)
    }

    /// Converts every `ready` member, at most `options.limit`, until done or `stop` resolves.
    /// After `stop`, no new user is started; those in flight finish and are recorded.
    pub async fn run(&self, stop: impl Future<Output = ()>) -> Result<RunSummary, RunError> {
        let started = Instant::now();
        let mut summary = RunSummary {
            reconciled_at_start: self.prepare().await?,
            ..RunSummary::default()
        };
        // The day's invitations so far, from every run: what the daily quota counts.
        self.gate.remember_sent(
            self.store
                .invitations_sent_since(now() - gate::QUOTA_WINDOW)
                .await?,
        );
        let ready = self
            .store
            .state_counts(self.wave)
            .await?
            .into_iter()
            .find(|(state, _)| *state == UserState::Ready)
            .map_or(0, |(_, n)| n);
        let total = self
            .options
            .limit
            .map_or(ready, |limit| ready.min(limit as u64));
        summary.not_started += ready - total;
        let stopping = Arc::new(AtomicBool::new(false));
        let mut started_count = 0u64;
        let fatal: std::sync::Mutex<Option<Fatal>> = std::sync::Mutex::new(None);
        let flight = InFlight::new(
            self.options.concurrency,
            self.options.invitations_per_second,
        );
        {
            let gate = Arc::clone(&stopping);
            let invitations = Arc::clone(&self.gate);
            let flight = &flight;
            // A user is taken from the list once it has a place in flight, and only while the
            // run goes on: after a stop, those waiting for a place never start.
            let conversions = self
                .ready_members()
                .take(usize::try_from(total).unwrap_or(usize::MAX))
                .then(move |item| async move { (item, flight.enter().await) })
                .take_while(move |_| {
                    std::future::ready(!gate.load(Ordering::SeqCst) && invitations.halt().is_none())
                })
                .map(|(item, place)| {
                    started_count += 1;
                    async move {
                        let (member, names) = item?;
                        let (result, busy) =
                            Box::pin(InFlight::timed(self.convert(member, names))).await;
                        flight.leave(place, busy);
                        result
                    }
                })
                .buffer_unordered(flight.bound());
            let mut conversions = std::pin::pin!(conversions);
            tokio::pin!(stop);
            let mut stop_seen = false;
            loop {
                let next = tokio::select! {
                    () = &mut stop, if !stop_seen => {
                        stop_seen = true;
                        summary.interrupted = true;
                        stopping.store(true, Ordering::SeqCst);
                        tracing::info!("stopping: no new users; finishing those in flight");
                        continue;
                    }
                    next = conversions.next() => next,
                };
                let Some(result) = next else { break };
                match result {
                    Ok((user, outcome)) => {
                        summary.count(&outcome);
                        self.observer.user_done(user, &outcome);
                    }
                    Err(err) => {
                        stopping.store(true, Ordering::SeqCst);
                        fatal.lock().expect("fatal slot").get_or_insert(err);
                    }
                }
            }
        }
        if let Some(err) = fatal.into_inner().expect("fatal slot") {
            return Err(err);
        }
        summary.not_started += total - started_count;
        let elapsed = started.elapsed();
        summary.elapsed_seconds = elapsed.as_secs_f64();
        summary.invitations_per_second = crate::output::rate(summary.invited, elapsed);
        summary.throttled = self.invitations.throttled_count();
        tracing::debug!(
            in_flight = flight.limit(),
            "users in flight at the end of the run"
        );
        summary.halted = self.gate.halt();
        Ok(summary)
    }

    /// The `ready` members in user order, read a page at a time (a wave of a million users is
    /// never held in memory).
    fn ready_members(
        &self,
    ) -> impl futures_util::Stream<Item = Result<(WaveMember, MemberNames), Fatal>> + '_ {
        const PAGE: usize = 1_000;
        futures_util::stream::try_unfold(
            Some(None),
            move |after: Option<Option<UserId>>| async move {
                let Some(after) = after else {
                    return Ok(None);
                };
                let page = self
                    .store
                    .members_in_states_after(self.wave, &[UserState::Ready], after, PAGE)
                    .await?;
                let next = (page.len() == PAGE).then(|| page.last().map(|(m, _)| m.plan.user_id));
                Ok::<_, Fatal>(Some((
                    futures_util::stream::iter(page.into_iter().map(Ok)),
                    next,
                )))
            },
        )
        .try_flatten()
    }

    /// One user, from re-reading to the recorded outcome. `Err` only for what stops the run.
    async fn convert(
        &self,
        member: WaveMember,
        names: MemberNames,
    ) -> Result<(UserId, UserOutcome), Fatal> {
        let user = member.plan.user_id;
        let outcome = self.convert_inner(&member, &names).await?;
        Ok((user, outcome))
    }

    async fn convert_inner(
        &self,
        member: &WaveMember,
        names: &MemberNames,
    ) -> Result<UserOutcome, Fatal> {
        let user = member.plan.user_id;
        // Room for this user's invitation before anything is done for it (no `mail` is set for
        // a user the day's quota has no room for).
        let Ok(slot) = self.gate.reserve(now()) else {
            return Ok(UserOutcome::Withheld);
        };
        let mut slot = Some(slot);
        let Some(address) = member.plan.chosen_address.as_deref() else {
            return self
                .fail(
                    user,
                    UserState::Ready,
                    FailureKind::Permanent,
                    None,
                    "the plan has no address for this user".into(),
                )
                .await;
        };
        let mut fresh = match self.client.user(user, now()).await {
            Ok(fresh) => fresh,
            Err(err) => return self.failed_call(user, UserState::Ready, err).await,
        };

        match self.drift(member, &fresh, address).await? {
            Drift::None => {}
            Drift::AlreadyInvited => {
                self.reconciled(user, UserState::Ready, &fresh).await?;
                return Ok(UserOutcome::Reconciled);
            }
            Drift::Changed(what) => {
                let transition = Transition {
                    note: Some(("drifted".into(), what.clone())),
                    ..Transition::new(UserState::Ready, UserState::Drifted, now())
                };
                let event = self.event(
                    user,
                    "member.drifted",
                    serde_json::json!({ "changed": what }),
                );
                self.store
                    .record(self.wave, user, &transition, Some(&event))
                    .await?;
                return Ok(UserOutcome::Drifted(what));
            }
        }
        self.observer.at_step(user, Step::Checked).await;

        if member.plan.set_mail
            && let Some(outcome) = self.set_mail_first(user, address, &mut fresh).await?
        {
            return Ok(outcome);
        }

        // What verify compares with after the conversion: taken once, right before the first
        // invitation (never on a reconcile path, where the invitation may already have landed).
        let baseline = match self.client.conversion_baseline(user, now()).await {
            Ok(baseline) => baseline,
            Err(err) => return self.failed_call(user, UserState::Ready, err).await,
        };
        self.store.save_baseline(self.wave, &baseline).await?;

        let display_name = names
            .display_name
            .as_deref()
            .or(fresh.display_name.as_deref());
        let request = self
            .template
            .request(user, address, display_name, &fresh.profile);
        let mut attempt = member.attempts;
        loop {
            attempt += 1;
            // A resend (the first answer was lost and Graph shows no invitation) needs room too.
            let Some(this) = slot.take().or_else(|| self.gate.reserve(now()).ok()) else {
                return Ok(UserOutcome::Withheld);
            };
            if this.spend(now()).is_err() {
                // The service refused the tenant while this user waited for its turn.
                return Ok(UserOutcome::Withheld);
            }
            let intent = self.event(
                user,
                "invitation.intent",
                serde_json::json!({ "address": address, "attempt": attempt }),
            );
            self.store
                .record(
                    self.wave,
                    user,
                    &Transition {
                        // Graph's state time before the invitation: how a reconcile tells a
                        // redemption reset that landed from the state the user already had.
                        external_state_changed_at: fresh.external_user_state_changed_at,
                        ..Transition::new(UserState::Ready, UserState::Inviting, now())
                    },
                    Some(&intent),
                )
                .await?;
            self.observer.at_step(user, Step::IntentRecorded).await;
            let may_retry = attempt - member.attempts < self.options.attempts_per_run;
            let before = fresh.external_user_state_changed_at;
            // The pacer's slot last: the request leaves when the slot says, not after a wait
            // for the store's writer (the service counts arrivals, and a late one bunches up
            // with the next). A gate shut meanwhile is seen by `post_invitation`.
            self.invitations.acquire().await;
            match self
                .send_invitation(user, &request, before, may_retry)
                .await?
            {
                Sent::Done(outcome) => return Ok(outcome),
                Sent::NotInvited => self.not_invited(user).await?,
            }
        }
    }

    /// Sets `mail` to `address` unless it already holds it, and remembers how the user looks
    /// afterwards. `Some` when the user failed here.
    async fn set_mail_first(
        &self,
        user: UserId,
        address: &str,
        fresh: &mut UserSnapshot,
    ) -> Result<Option<UserOutcome>, Fatal> {
        let holds = |u: &UserSnapshot| {
            u.mail
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case(address))
        };
        if holds(fresh) {
            return Ok(None);
        }
        // The value before ours, recorded before the change (the event log is the record of
        // it: a run resumed after a crash puts it back from there too).
        let intent = self.event(
            user,
            "mail.intent",
            serde_json::json!({ "from": fresh.mail, "to": address }),
        );
        self.store.append_event(&intent, now()).await?;
        self.writes.acquire().await;
        let started = Instant::now();
        match self.client.set_mail(user, Some(address)).await {
            Ok(meta) => {
                self.observer.at_step(user, Step::MailSet).await;
                let mut event =
                    self.event(user, "mail.set", serde_json::json!({ "mail": address }));
                with_meta(&mut event, "PATCH", &format!("/v1.0/users/{user}"), &meta);
                event.duration_ms = Some(millis(started.elapsed()));
                self.store.append_event(&event, now()).await?;
            }
            Err(err) => {
                // Refused outright (a 4xx): `mail` was not changed, so there is nothing to put
                // back. After 5xx or lost answers past the retries it may have been.
                let refused =
                    matches!(&err, graph::Error::Api(api) if api.status < 500 && api.status != 429);
                return self
                    .failed_call_restoring(user, UserState::Ready, err, !refused)
                    .await
                    .map(Some);
            }
        }
        // Remember how the user looks with our change, so a resumed run recognises it.
        match self.client.user(user, now()).await {
            Ok(after) => {
                if holds(&after) {
                    self.store
                        .set_mail_fingerprint(self.wave, user, &rules::fingerprint(&after))
                        .await?;
                }
                *fresh = after;
                Ok(None)
            }
            Err(err) => self
                .failed_call(user, UserState::Ready, err)
                .await
                .map(Some),
        }
    }

    /// Sends the invitation (paced, intent already recorded) and records its outcome.
    async fn send_invitation(
        &self,
        user: UserId,
        request: &InvitationRequest,
        before: Option<OffsetDateTime>,
        may_retry: bool,
    ) -> Result<Sent, Fatal> {
        let (answer, elapsed) = self.post_invitation(request).await;
        self.observer.at_step(user, Step::InvitationAnswered).await;
        match answer {
            Ok(response) => {
                let invitation = response.body;
                let mut transition =
                    Transition::new(UserState::Inviting, UserState::Invited, now());
                transition.invitation_id = Some(invitation.id.clone());
                if self.template.keeps_redeem_urls() {
                    transition.invite_redeem_url = invitation
                        .redeem_url
                        .as_ref()
                        .map(|u| u.expose_secret().to_owned());
                }
                let mut event = self.event(
                    user,
                    "invitation.sent",
                    serde_json::json!({
                        "invitation_id": invitation.id,
                        "status": invitation.status,
                        "invited_user_matches": invitation.invited_user.is_none_or(|u| u == user),
                    }),
                );
                with_meta(&mut event, "POST", "/v1.0/invitations", &response.meta);
                event.duration_ms = Some(millis(elapsed));
                self.store
                    .record(self.wave, user, &transition, Some(&event))
                    .await?;
                Ok(Sent::Done(UserOutcome::Invited))
            }
            Err(graph::Error::OutcomeUnknown {
                reason,
                status,
                request_id,
                client_request_id,
                ..
            }) => {
                let mut event = self.event(
                    user,
                    "invitation.outcome-unknown",
                    serde_json::json!({ "reason": reason }),
                );
                event.http_method = Some("POST".into());
                event.http_path = Some("/v1.0/invitations".into());
                event.http_status = status;
                event.request_id = request_id;
                event.client_request_id = Some(client_request_id);
                event.duration_ms = Some(millis(elapsed));
                self.store.append_event(&event, now()).await?;
                // A 2xx whose body could not be read: the invitation was made, even if reading
                // the user does not show it yet. Never send it again in this run.
                let accepted = status.is_some_and(|s| (200..300).contains(&s));
                self.reconcile_after_unknown(user, before, &reason, may_retry && !accepted)
                    .await
            }
            Err(err) if err.tenant_refusal().is_some() => {
                self.refused_for_the_tenant(user, &err, elapsed).await
            }
            Err(graph::Error::Withheld { reason, .. }) => self.withheld(user, &reason).await,
            Err(err) => self
                .failed_call(user, UserState::Inviting, err)
                .await
                .map(Sent::Done),
        }
    }

    /// Sends one `POST /invitations` through the invitation gate: the one place every
    /// invitation of a run, an `invite` or a `reinvite` leaves through. The caller has waited
    /// for the pacer, spent its place in the quota and recorded its intent, and records the
    /// answer; a shut gate answers [`graph::Error::Withheld`] without sending, and a refusal
    /// for the tenant shuts it. The time is the request's.
    pub(crate) async fn post_invitation(
        &self,
        request: &InvitationRequest,
    ) -> (
        Result<graph::Response<graph::invitations::Invitation>, graph::Error>,
        Duration,
    ) {
        if let Some(halt) = self.gate.is_blocked() {
            // Refused for the tenant since this one's turn came: nothing is sent.
            return (
                Err(graph::Error::Withheld {
                    method: "POST".into(),
                    path: "/v1.0/invitations".into(),
                    reason: halt.to_string(),
                    last: String::new(),
                }),
                Duration::ZERO,
            );
        }
        let started = Instant::now();
        let answer = self.client.invite(request).await;
        if let Err(err) = &answer {
            // The abuse block or a quota refusal shuts the gate for everything not yet sent.
            self.gate.observe(err, now());
        }
        (answer, started.elapsed())
    }

    /// Whether the user may be converted as planned.
    async fn drift(
        &self,
        member: &WaveMember,
        fresh: &UserSnapshot,
        address: &str,
    ) -> Result<Drift, Fatal> {
        let now_fingerprint = rules::fingerprint(fresh);
        if now_fingerprint == member.plan.snapshot_fingerprint
            || member.mail_set_fingerprint.as_deref() == Some(now_fingerprint.as_str())
        {
            return Ok(Drift::None);
        }
        let stored = self.store.user(member.plan.user_id).await?;
        let stored = stored.filter(|s| rules::fingerprint(s) == member.plan.snapshot_fingerprint);
        if member.attempts > 0 && self.invitation_landed(member.external_state_changed_at, fresh) {
            // An earlier attempt of ours took effect after all.
            return Ok(Drift::AlreadyInvited);
        }
        let Some(planned) = stored else {
            return Ok(Drift::Changed(
                "the user changed since the plan, and the stored snapshot is newer than the plan (a discover ran after it); plan the user again (a new wave: a started wave keeps its plan)".into(),
            ));
        };
        if member.plan.set_mail && rules::only_mail_was_set(&planned, fresh, address) {
            return Ok(Drift::None);
        }
        let changed = rules::changed_rule_inputs(&planned, fresh);
        Ok(Drift::Changed(format!(
            "changed since the plan: {}; to convert the user, plan it again in a new wave (a started wave keeps its plan)",
            changed.join(", ")
        )))
    }

    /// The invitation may or may not have been made: wait, read the user, and record what
    /// Graph shows. Nothing is sent again here.
    async fn reconcile_after_unknown(
        &self,
        user: UserId,
        before: Option<OffsetDateTime>,
        reason: &str,
        may_retry: bool,
    ) -> Result<Sent, Fatal> {
        tokio::time::sleep(self.options.reconcile_delay).await;
        match self.client.user(user, now()).await {
            Ok(fresh) if self.invitation_landed(before, &fresh) => {
                self.reconciled(user, UserState::Inviting, &fresh).await?;
                Ok(Sent::Done(UserOutcome::Reconciled))
            }
            Ok(_) if may_retry => Ok(Sent::NotInvited),
            Ok(_) => self
                .fail(
                    user,
                    UserState::Inviting,
                    FailureKind::Retryable,
                    Some("OutcomeUnknown".into()),
                    format!(
                        "no answer to the invitation ({reason}) and Graph shows no invitation; the next run reads the user again before trying"
                    ),
                )
                .await
                .map(Sent::Done),
            Err(err) if err.is_about_the_caller() => Err(RunError::Graph(err)),
            Err(err) => {
                let message = format!(
                    "the invitation's outcome is unknown and the user cannot be read ({err}); the next run reconciles it"
                );
                Ok(Sent::Done(UserOutcome::Unresolved(message)))
            }
        }
    }

    /// Whether Graph shows our invitation as made. A conversion: the user has an invitation
    /// state at all. A redemption reset (the user had one before): the state is
    /// `PendingAcceptance` and changed after `before`, the time read before the invitation.
    fn invitation_landed(&self, before: Option<OffsetDateTime>, fresh: &UserSnapshot) -> bool {
        if !self.template.reset_redemption {
            return fresh.external_user_state.is_some();
        }
        fresh.external_user_state.as_deref() == Some("PendingAcceptance")
            && fresh.external_user_state_changed_at > before
    }

    /// Records that Graph shows the user invited, without an answer of ours to go by.
    async fn reconciled(
        &self,
        user: UserId,
        from: UserState,
        fresh: &UserSnapshot,
    ) -> Result<(), Fatal> {
        let mut transition = Transition::new(from, UserState::Invited, now());
        transition.external_state_changed_at = fresh.external_user_state_changed_at;
        let event = self.event(
            user,
            "invitation.reconciled",
            serde_json::json!({ "external_user_state": fresh.external_user_state }),
        );
        self.store
            .record(self.wave, user, &transition, Some(&event))
            .await?;
        Ok(())
    }

    /// A Graph call for this user failed: record it, or stop the run when it is not about
    /// this user.
    async fn failed_call(
        &self,
        user: UserId,
        from: UserState,
        err: graph::Error,
    ) -> Result<UserOutcome, Fatal> {
        self.failed_call_restoring(user, from, err, true).await
    }

    /// [`Self::failed_call`]; a permanent failure puts back the `mail` this tool set only
    /// when `may_restore` (not when the PATCH of `mail` itself was refused).
    async fn failed_call_restoring(
        &self,
        user: UserId,
        from: UserState,
        err: graph::Error,
        may_restore: bool,
    ) -> Result<UserOutcome, Fatal> {
        if err.is_about_the_caller() {
            if from == UserState::Inviting {
                // Refused before anything happened: the member is as it was.
                self.move_to(user, from, UserState::Ready, "invitation.refused", None)
                    .await?;
            }
            return Err(RunError::Graph(err));
        }
        let (kind, code, message, hint) = match &err {
            graph::Error::Api(api) => {
                let kind = if api.status == 429 || api.status >= 500 {
                    FailureKind::Retryable
                } else {
                    FailureKind::Permanent
                };
                (
                    kind,
                    Some(api.code.clone()),
                    api.message.clone(),
                    fix_hint(api.status, &api.code, &api.message),
                )
            }
            graph::Error::OutcomeUnknown { .. } => (
                FailureKind::Retryable,
                Some("OutcomeUnknown".into()),
                format!("{err}; the next run reads the user again first"),
                None,
            ),
            other => (FailureKind::Retryable, None, other.to_string(), None),
        };
        let text = match hint {
            Some(hint) => format!("{message} (fix: {hint})"),
            None => message.clone(),
        };
        let mut event = self.event(
            user,
            "member.failed",
            serde_json::json!({ "kind": kind.code(), "code": code, "message": message }),
        );
        if let graph::Error::Api(api) = &err {
            event.http_method = Some(api.method.clone());
            event.http_path = Some(api.path.clone());
            event.http_status = Some(api.status);
            event.request_id = Some(api.request_id.clone());
            event.client_request_id = Some(api.client_request_id.clone());
        }
        let mut transition = Transition::new(from, UserState::Failed, now());
        transition.failure = Some((kind, code.clone(), text));
        self.store
            .record(self.wave, user, &transition, Some(&event))
            .await?;
        if kind == FailureKind::Permanent && may_restore {
            self.restore_mail(user).await?;
        }
        Ok(UserOutcome::Failed {
            kind,
            code,
            message,
            hint,
        })
    }

    /// The member failed for good: puts back the `mail` this tool set for it (the last
    /// `mail.intent` recorded), when `restore_mail_on_failure` says so, and records how that
    /// went (`mail.restored` or `mail.restore-failed`, and the member's `mail_restore`). The
    /// PATCH is paced like every directory write and retried on 503/504/lost answers; when it
    /// still fails, the user is read: the value it shows decides. Stops the run only for what
    /// concerns the whole run (after recording the failed restore).
    async fn restore_mail(&self, user: UserId) -> Result<(), Fatal> {
        if !self.options.restore_mail_on_failure {
            return Ok(());
        }
        let Some((previous, ours)) = self.store.mail_change(self.wave, user).await? else {
            return Ok(());
        };
        self.writes.acquire().await;
        let started = Instant::now();
        let answer = self.client.set_mail(user, previous.as_deref()).await;
        let detail = serde_json::json!({ "from": ours, "to": previous });
        let (outcome, mut event, stop) = match answer {
            Ok(meta) => {
                let mut event = self.event(user, "mail.restored", detail);
                with_meta(&mut event, "PATCH", &format!("/v1.0/users/{user}"), &meta);
                (MailRestore::Restored, event, None)
            }
            Err(err) if err.is_about_the_caller() => {
                let mut detail = detail;
                detail["error"] = err.to_string().into();
                let mut event = self.event(user, "mail.restore-failed", detail);
                with_failure(&mut event, "PATCH", &format!("/v1.0/users/{user}"), &err);
                (MailRestore::Failed, event, Some(err))
            }
            Err(err) => {
                // Unclear or refused: what the user shows now decides.
                let same = |m: Option<&str>| match (m, previous.as_deref()) {
                    (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                    (None, None) => true,
                    _ => false,
                };
                let path = format!("/v1.0/users/{user}");
                match self.client.user(user, now()).await {
                    Ok(fresh) if same(fresh.mail.as_deref()) => {
                        let mut detail = detail;
                        detail["reconciled"] = true.into();
                        let mut event = self.event(user, "mail.restored", detail);
                        with_failure(&mut event, "PATCH", &path, &err);
                        (MailRestore::Restored, event, None)
                    }
                    read => {
                        let mut detail = detail;
                        detail["error"] = match read {
                            Ok(_) => err.to_string(),
                            Err(read_err) => {
                                format!("{err}; reading the user failed too: {read_err}")
                            }
                        }
                        .into();
                        let mut event = self.event(user, "mail.restore-failed", detail);
                        with_failure(&mut event, "PATCH", &path, &err);
                        (MailRestore::Failed, event, None)
                    }
                }
            }
        };
        event.duration_ms = Some(millis(started.elapsed()));
        if outcome == MailRestore::Failed {
            tracing::warn!(%user, "could not put back the mail run had set: {}", event.detail["error"]);
        }
        self.store
            .record_mail_restore(self.wave, user, outcome, &event, now())
            .await?;
        match stop {
            Some(err) => Err(RunError::Graph(err)),
            None => Ok(()),
        }
    }

    async fn fail(
        &self,
        user: UserId,
        from: UserState,
        kind: FailureKind,
        code: Option<String>,
        message: String,
    ) -> Result<UserOutcome, Fatal> {
        let mut transition = Transition::new(from, UserState::Failed, now());
        transition.failure = Some((kind, code.clone(), message.clone()));
        let event = self.event(
            user,
            "member.failed",
            serde_json::json!({ "kind": kind.code(), "code": code, "message": message }),
        );
        self.store
            .record(self.wave, user, &transition, Some(&event))
            .await?;
        Ok(UserOutcome::Failed {
            kind,
            code,
            message,
            hint: None,
        })
    }

    /// Graph shows no invitation for a member in `inviting`: it is `ready` again, and may be
    /// sent.
    async fn not_invited(&self, user: UserId) -> Result<(), Fatal> {
        self.move_to(
            user,
            UserState::Inviting,
            UserState::Ready,
            "invitation.not-found",
            None,
        )
        .await
    }

    async fn move_to(
        &self,
        user: UserId,
        from: UserState,
        to: UserState,
        kind: &str,
        detail: Option<serde_json::Value>,
    ) -> Result<(), Fatal> {
        let event = self.event(user, kind, detail.unwrap_or(serde_json::Value::Null));
        self.store
            .record(
                self.wave,
                user,
                &Transition::new(from, to, now()),
                Some(&event),
            )
            .await?;
        Ok(())
    }

    fn event(&self, user: UserId, kind: &str, detail: serde_json::Value) -> NewEvent {
        NewEvent {
            run_id: Some(self.run),
            wave_id: Some(self.wave),
            user_id: Some(user),
            kind: kind.into(),
            detail,
            ..NewEvent::default()
        }
    }
}

/// How sending one invitation ended.
enum Sent {
    Done(UserOutcome),
    /// No answer came, and Graph shows the user not invited: it may be sent again.
    NotInvited,
}

enum Drift {
    None,
    /// An earlier attempt of ours took effect (Graph shows the user invited).
    AlreadyInvited,
    Changed(String),
}

/// Sends every retry of an invitation through `pacer`: it takes a slot like a first attempt,
/// so retries never arrive together when a `Retry-After` pause ends.
pub fn invitation_retry_pacing(pacer: Arc<Pacer>) -> graph::client::RetryPacing {
    Arc::new(move |event: &graph::client::RetryEvent| {
        if event.method == "POST" && event.path.contains("/invitations") {
            let pacer = Arc::clone(&pacer);
            Some(Box::pin(async move { pacer.acquire().await }))
        } else {
            None
        }
    })
}

/// Tells `pacer` about every throttled invitation the client retries, so all tasks slow down.
pub fn throttle_reporter(pacer: Arc<Pacer>) -> graph::client::RetryObserver {
    Arc::new(move |event: &graph::client::RetryEvent| {
        if event.status == Some(429) && event.path.contains("/invitations") {
            pacer.throttled(event.wait, event.answered_after);
        }
    })
}

pub(super) fn with_meta(
    event: &mut NewEvent,
    method: &str,
    path: &str,
    meta: &graph::ResponseMeta,
) {
    event.http_method = Some(method.into());
    event.http_path = Some(path.into());
    event.http_status = Some(meta.status);
    event.request_id.clone_from(&meta.request_id);
    event.client_request_id = Some(meta.client_request_id.clone());
}

/// Records on `event` the write that failed: its method and path, and what the service said
/// when it answered (status, request ids), so the audit trail lists the attempt too.
pub(super) fn with_failure(event: &mut NewEvent, method: &str, path: &str, err: &graph::Error) {
    event.http_method = Some(method.into());
    event.http_path = Some(path.into());
    match err {
        graph::Error::Api(api) => {
            event.http_status = Some(api.status);
            event.request_id = Some(api.request_id.clone());
            event.client_request_id = Some(api.client_request_id.clone());
        }
        graph::Error::OutcomeUnknown {
            status,
            request_id,
            client_request_id,
            ..
        } => {
            event.http_status = *status;
            event.request_id.clone_from(request_id);
            event.client_request_id = Some(client_request_id.clone());
        }
        _ => {}
    }
}

pub(super) fn millis(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}

pub(super) fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// What the executor's unit tests start from.
#[cfg(test)]
pub(crate) mod testing {
    use base64::Engine as _;
    use time::macros::datetime;
    use uuid::Uuid;

    use crate::domain::{Decision, OnPremisesProperties, UserId, UserSnapshot, UserState};
    use crate::store::{NewWave, PlannedMember, Store, Transition, Wave};

    pub fn id(n: u128) -> UserId {
        UserId::from_uuid(Uuid::from_u128(n))
    }

    /// The `objectGUID` of user `n`'s AD account.
    pub fn object_guid(n: u128) -> Uuid {
        Uuid::from_u128(0xAD00 + n)
    }

    /// User `n`: a synced partner whose source anchor is [`object_guid`]`(n)`.
    pub fn user(n: u128) -> UserSnapshot {
        let anchor = base64::engine::general_purpose::STANDARD.encode(object_guid(n).to_bytes_le());
        UserSnapshot {
            id: id(n),
            user_principal_name: format!("u{n}@contoso.com"),
            display_name: Some(format!("User {n}")),
            mail: Some(format!("p{n}@fabrikam.com")),
            other_mails: vec![],
            proxy_addresses: vec![],
            user_type: Some("Member".into()),
            account_enabled: Some(true),
            creation_type: None,
            external_user_state: None,
            external_user_state_changed_at: None,
            converted_to_internal_at: None,
            on_premises: OnPremisesProperties {
                sync_enabled: Some(true),
                immutable_id: Some(anchor),
                sam_account_name: Some(format!("u{n}")),
                distinguished_name: Some(format!("CN=User {n},OU=Partners,DC=corp")),
                domain_name: Some("corp.contoso.com".into()),
                user_principal_name: None,
            },
            assigned_plans: vec![],
            assigned_licenses: vec![],
            identities: vec![],
            profile: crate::domain::UserProfile::default(),
            snapshot_at: datetime!(2026-11-21 08:00 UTC),
        }
    }

    /// Wave `pilot` of users 1..=`n`, every one invited.
    pub async fn invited_wave(store: &Store, n: u128) -> Wave {
        let users: Vec<UserSnapshot> = (1..=n).map(user).collect();
        store.store_users(&users).await.unwrap();
        let members: Vec<PlannedMember> = users
            .iter()
            .map(|u| PlannedMember {
                user_id: u.id,
                decision: Decision::Eligible,
                findings: vec![],
                chosen_address: u.mail.clone(),
                address_origin: None,
                set_mail: false,
                snapshot_fingerprint: crate::rules::fingerprint(u),
            })
            .collect();
        let at = datetime!(2026-11-21 09:00 UTC);
        let wave = store
            .create_planned_wave(
                &NewWave {
                    name: "pilot".into(),
                    selector: serde_json::json!({}),
                    cap: None,
                    settings: serde_json::json!({}),
                },
                &members,
                "hash",
                at,
            )
            .await
            .unwrap();
        for user in &users {
            for (from, to) in [
                (UserState::Ready, UserState::Inviting),
                (UserState::Inviting, UserState::Invited),
            ] {
                store
                    .transition(wave.id, user.id, &Transition::new(from, to, at))
                    .await
                    .unwrap();
            }
        }
        wave
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::config::{CcRecipient, InvitedUserType};

    fn settings() -> InvitationSettings {
        InvitationSettings {
            redirect_url: Some("https://myapps.microsoft.com/?tenantId=t".parse().unwrap()),
            send_message: true,
            message_language: "de-DE".into(),
            message_language_from_user: false,
            custom_message: Some("Hallo".into()),
            cc_recipient: Some(CcRecipient {
                address: "pm@contoso.com".into(),
                name: None,
            }),
            invited_user_type: Some(InvitedUserType::Guest),
            send_display_name: true,
            set_mail_before_invite: true,
            restore_mail_on_failure: true,
            check_partner_settings: true,
        }
    }

    #[test]
    fn the_template_sends_what_the_settings_say() {
        let template = InvitationTemplate::from_settings(&settings()).unwrap();
        let user = UserId::from_uuid(Uuid::from_u128(1));
        let body = serde_json::to_value(template.request(
            user,
            "a@fabrikam.com",
            Some("Ada"),
            &UserProfile::default(),
        ))
        .unwrap();
        assert_eq!(body["invitedUserDisplayName"], "Ada");
        assert_eq!(body["invitedUserType"], "Guest");
        assert_eq!(body["sendInvitationMessage"], true);
        assert_eq!(body["invitedUserMessageInfo"]["messageLanguage"], "de-DE");
        assert_eq!(
            body["invitedUserMessageInfo"]["customizedMessageBody"],
            "Hallo"
        );
        assert_eq!(
            body["invitedUserMessageInfo"]["ccRecipients"][0]["emailAddress"]["address"],
            "pm@contoso.com"
        );
        assert!(!template.keeps_redeem_urls());
    }

    #[test]
    fn without_an_email_the_message_fields_and_display_name_can_be_left_out() {
        let mut settings = settings();
        settings.send_message = false;
        settings.send_display_name = false;
        let template = InvitationTemplate::from_settings(&settings).unwrap();
        let user = UserId::from_uuid(Uuid::from_u128(1));
        let body = serde_json::to_value(template.request(
            user,
            "a@fabrikam.com",
            Some("Ada"),
            &UserProfile::default(),
        ))
        .unwrap();
        let keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "inviteRedirectUrl",
                "invitedUser",
                "invitedUserEmailAddress",
                "invitedUserType",
                "sendInvitationMessage",
            ],
            "in key order"
        );
        assert!(template.keeps_redeem_urls());
    }

    #[test]
    fn the_users_own_language_is_sent_only_when_switched_on_and_usable() {
        let language = |from_user: bool, preferred: Option<&str>| {
            let mut settings = settings();
            settings.message_language_from_user = from_user;
            let template = InvitationTemplate::from_settings(&settings).unwrap();
            let profile = UserProfile {
                preferred_language: preferred.map(str::to_owned),
                ..UserProfile::default()
            };
            let user = UserId::from_uuid(Uuid::from_u128(1));
            serde_json::to_value(template.request(user, "a@fabrikam.com", None, &profile)).unwrap()
                ["invitedUserMessageInfo"]["messageLanguage"]
                .clone()
        };
        assert_eq!(language(false, Some("ja-JP")), "de-DE", "off by default");
        assert_eq!(language(true, Some("ja-JP")), "ja-JP");
        assert_eq!(language(true, None), "de-DE", "the configured one without");
        assert_eq!(
            language(true, Some("Japanese")),
            "de-DE",
            "or with an unusable one"
        );
    }

    #[test]
    fn a_missing_redirect_url_is_an_error_that_says_what_to_set() {
        let mut settings = settings();
        settings.redirect_url = None;
        let err = InvitationTemplate::from_settings(&settings).unwrap_err();
        assert!(err.to_string().contains("invitation.redirect_url"));
    }
}
