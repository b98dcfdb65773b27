//! One file per subcommand: orchestration only. A command loads what it needs through [`Ctx`],
//! calls the modules that do the work, and formats the result through `output`.
//!
//! This layer (with `main.rs`) is the `anyhow` boundary: module errors arrive typed and leave
//! with context. It decides exit codes and must not contain SQL, HTTP, rule logic, a planning
//! step (`plan`) or a member's state change (`execute`). A command never imports another: what
//! several share (settings, store and clients, the confirmation prompt, Ctrl-C, the conversion
//! `run` and `invite` both start) is in this file.

mod audit;
mod backup;
mod check;
mod completions;
mod config;
mod demo;
mod discover;
mod export_links;
mod init;
mod invite;
mod man;
mod plan;
mod reinvite;
mod report;
mod run;
mod scramble;
mod set_user_type;
mod sim;
mod status;
mod verify;
mod waves;

use std::fmt::Write as _;
use std::io::{BufRead as _, IsTerminal as _};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use secrecy::ExposeSecret as _;

use crate::cli::{Cli, Command};
use crate::config::{Environment, FlagOverride, Settings, Sources};
use crate::domain::{GroupRef, UserId, UserState};
use crate::execute::{Halt, InvitationTemplate, Pace, RunError, RunObserver, UserOutcome};
use crate::graph::GraphClient;
use crate::graph::auth::PromptFn;
use crate::graph::realm::RealmClient;
use crate::operator::Operator;
use crate::output::{self, Progress};
use crate::store::{Store, Wave};

/// How a command that ran to its end went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Everything it set out to do is done.
    Done,
    /// It finished, but some users failed (exit code 3).
    SomeUsersFailed,
    /// A signal stopped it before it was done; what it did is recorded (exit code 130).
    Interrupted,
}

/// A signal stopped the command before it was done (exit code 130). The message says what
/// was kept and how to continue.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Interrupted(pub String);

/// The operator's input cannot work as given (exit code 2). The message says what to change.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The command refused to act because acting could do harm (exit code 4). The message says
/// what to do instead.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Exit codes; scripts depend on them (docs/operations.md).
pub mod exit {
    pub const SUCCESS: u8 = 0;
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const USERS_FAILED: u8 = 3;
    pub const REFUSED: u8 = 4;
    /// Stopped at a daily invitation quota (ours or the service's) before it was done; nothing
    /// failed: run again after the time the message gives.
    pub const QUOTA: u8 = 5;
    /// Stopped by a signal (Ctrl-C, SIGTERM, SIGHUP) before it was done: 128 + SIGINT, as
    /// shells report a process Ctrl-C ended.
    pub const INTERRUPTED: u8 = 130;
}

/// The exit code for a command's result.
pub fn exit_code(result: &anyhow::Result<Outcome>) -> u8 {
    match result {
        Ok(Outcome::Done) => exit::SUCCESS,
        Ok(Outcome::SomeUsersFailed) => exit::USERS_FAILED,
        Ok(Outcome::Interrupted) => exit::INTERRUPTED,
        Err(err) if err.chain().any(is_interruption) => exit::INTERRUPTED,
        Err(err) if err.chain().any(is_refusal) => exit::REFUSED,
        Err(err) if err.chain().any(is_quota) => exit::QUOTA,
        Err(err) if err.chain().any(is_configuration_error) => exit::USAGE,
        Err(_) => exit::FAILURE,
    }
}

/// A signal stopped the command.
fn is_interruption(err: &(dyn std::error::Error + 'static)) -> bool {
    err.is::<Interrupted>()
}

/// A run stopped at a daily invitation quota. (The abuse block, the other [`Halt`], is an
/// operational failure: exit 1.)
fn is_quota(err: &(dyn std::error::Error + 'static)) -> bool {
    err.downcast_ref::<Halt>().is_some_and(Halt::is_quota)
}

/// A refusal to act because acting could do harm.
fn is_refusal(err: &(dyn std::error::Error + 'static)) -> bool {
    err.is::<Refused>()
        || matches!(
            err.downcast_ref::<crate::fsutil::Error>(),
            Some(crate::fsutil::Error::Exists(_))
        )
        || matches!(
            err.downcast_ref::<crate::execute::LockError>(),
            Some(crate::execute::LockError::Held { .. })
        )
        || matches!(
            err.downcast_ref::<crate::store::Error>(),
            Some(crate::store::Error::WaveStarted { .. } | crate::store::Error::HardLinked { .. })
        )
}

/// An error the operator fixes in the configuration or the environment.
fn is_configuration_error(err: &(dyn std::error::Error + 'static)) -> bool {
    err.is::<crate::config::Error>()
        || err.is::<crate::input::Error>()
        || err.is::<UsageError>()
        || err.is::<sim::BadFaults>()
        || err
            .downcast_ref::<crate::directory::Error>()
            .is_some_and(crate::directory::Error::is_configuration)
        || matches!(
            err.downcast_ref::<crate::store::Error>(),
            Some(
                crate::store::Error::TenantMismatch { .. }
                    | crate::store::Error::Missing { .. }
                    | crate::store::Error::NotADatabase { .. }
            )
        )
}

/// What every command receives: how to load settings, and helpers built on them.
#[derive(Debug)]
pub struct Ctx {
    pub sources: Sources,
    /// The state database once the command opened it, closed when the command ends
    /// ([`run()`]): the last connection to close folds the write-ahead log into the database
    /// file, so the `.db` file is complete when the process exits.
    store: std::sync::Mutex<Option<Store>>,
}

impl Ctx {
    pub fn new(cli: &Cli, env: Environment) -> Self {
        let mut flags = Vec::new();
        if let Some(db) = &cli.db {
            flags.push(FlagOverride {
                flag: "--db".into(),
                key: "store.path".into(),
                value: toml::Value::String(db.to_string_lossy().into_owned()),
            });
        }
        Self {
            sources: Sources {
                config_path: cli.config.clone(),
                env,
                flags,
            },
            store: std::sync::Mutex::new(None),
        }
    }

    /// The state database, created if it is missing: for the commands that start the state
    /// (`init`, `discover`) or may be the first to write it (`invite`).
    async fn store(&self, settings: &Settings) -> anyhow::Result<Store> {
        Ok(self.keep(Store::open(&settings.store.path).await?))
    }

    /// The state database, which must exist: for commands that work on what earlier commands
    /// stored. A missing database is a usage error, and nothing is created.
    async fn existing_store(&self, settings: &Settings) -> anyhow::Result<Store> {
        Ok(self.keep(Store::open_existing(&settings.store.path).await?))
    }

    fn keep(&self, store: Store) -> Store {
        let mut kept = self
            .store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *kept = Some(store.clone());
        store
    }

    /// Closes the state database if the command opened it.
    async fn close(&self) {
        let store = self
            .store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(store) = store {
            store.close().await;
        }
    }

    /// Loads and validates the settings (file, environment, flags).
    pub fn settings(&self) -> Result<Settings, crate::config::Error> {
        crate::config::load(&self.sources)
    }

    /// The config file path in effect.
    pub fn config_path(&self) -> &Path {
        self.sources.config_path()
    }

    /// Who runs this command, as far as the machine tells: OS user, host, version (a Graph
    /// command adds the token's identity with `token_operator`).
    pub fn operator(&self) -> Operator {
        Operator::local(&self.sources.env)
    }
}

/// `operator` with the identity `client`'s access token names (its app id, or the signed-in
/// user), for the run's record. Fetching the token is what the run's first request does
/// anyway (it is cached); when it fails here, the run records no token identity and the
/// run's own requests report the failure.
async fn token_operator(operator: &Operator, client: &GraphClient) -> Operator {
    let claims = match client.tokens().token().await {
        Ok(token) => crate::graph::auth::TokenClaims::decode(token.expose_secret()),
        Err(err) => {
            tracing::debug!("no token identity for the run's record: {err}");
            None
        }
    };
    operator.clone().with_token(claims.as_ref())
}

/// The wave named `name`, or an error naming the waves there are.
async fn stored_wave(store: &Store, name: &str) -> anyhow::Result<crate::store::Wave> {
    if let Some(wave) = store.wave_by_name(name).await? {
        return Ok(wave);
    }
    let known: Vec<String> = store.waves().await?.into_iter().map(|w| w.name).collect();
    Err(UsageError(if known.is_empty() {
        format!("there is no wave {name}; plan one first with `b2b-convert plan`")
    } else {
        format!(
            "there is no wave {name}; the waves are: {}",
            known.join(", ")
        )
    })
    .into())
}

/// Refuses a database of another tenant than the configured one: its users would all look
/// deleted, or a write would aim at the wrong tenant. Only a GUID tenant id can be compared
/// without asking Graph.
async fn same_tenant(store: &Store, settings: &Settings) -> anyhow::Result<()> {
    let (Some(configured), Some(facts)) = (
        settings
            .tenant
            .tenant_id
            .as_deref()
            .and_then(|t| t.parse::<uuid::Uuid>().ok()),
        store.tenant_facts().await?,
    ) else {
        return Ok(());
    };
    if facts.tenant_id != configured {
        return Err(UsageError(format!(
            "the database holds tenant {}, but the configuration names tenant {configured}; use the database of that tenant (--db) or its configuration",
            facts.tenant_id
        ))
        .into());
    }
    Ok(())
}

/// Builds the Graph client the settings describe (credential, hosts, timeouts, retries).
fn connect(settings: &Settings) -> anyhow::Result<GraphClient> {
    let prompt: PromptFn = Box::new(|prompt| crate::output::notice(&prompt.message));
    let auth = settings.graph_auth(prompt)?;
    Ok(settings.graph_connection().graph_client(auth)?)
}

/// The object id of the group the operator named (`--group`, `--exclude-group`), with its
/// display name when it was named by it. A name no group has, or one several groups share, is a
/// usage error (exit 2) that lists the groups with their ids, so the operator can pass one.
async fn resolve_group(
    client: &GraphClient,
    group: &GroupRef,
) -> anyhow::Result<(uuid::Uuid, Option<String>)> {
    let name = match group {
        GroupRef::Id(id) => return Ok((*id, None)),
        GroupRef::Name(name) => name,
    };
    let mut found = client
        .groups_named(name)
        .await
        .with_context(|| format!("looking up the group named {group} in Graph"))?;
    match found.len() {
        0 => Err(UsageError(format!(
            "no group has the display name {group} (names must match exactly); check the name, or pass the group's object id"
        ))
        .into()),
        1 => {
            let only = found.remove(0);
            Ok((only.id, Some(only.display_name)))
        }
        n => {
            let mut text = format!(
                "{n} groups have the display name {group}; pass the one you mean by its object id:"
            );
            for g in &found {
                let _ = write!(text, "\n  {}  {}", g.id, g.display_name);
            }
            Err(UsageError(text).into())
        }
    }
}

/// The realm client the settings describe: the login host, the timeouts and the configured
/// number of attempts.
fn realm_client(settings: &Settings) -> anyhow::Result<RealmClient> {
    Ok(settings.graph_connection().realm_client()?)
}

/// Resolves when the process is asked to stop: Ctrl-C (SIGINT), SIGTERM (`kill`, systemd, a
/// scheduler's timeout) or SIGHUP (the terminal went away), all handled alike. The handlers are
/// installed by this call, not on first poll, so a signal that comes right after (say, right
/// after a banner) is not lost.
///
/// Once the first signal has been seen (when this future resolves), a second one of any kind
/// ends the process at once with [`exit::INTERRUPTED`]: whatever was in flight is left as the
/// store last recorded it (each change is one transaction), and the next run reconciles
/// members left in `inviting` by reading them before anything is sent.
fn interruption() -> anyhow::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut signals = [
            SignalKind::interrupt(),
            SignalKind::terminate(),
            SignalKind::hangup(),
        ]
        .into_iter()
        .map(signal)
        .collect::<Result<Vec<_>, _>>()
        .context("installing the handlers for Ctrl-C, SIGTERM and SIGHUP")?;
        Ok(async move {
            any_signal(&mut signals).await;
            tokio::spawn(async move {
                any_signal(&mut signals).await;
                output::notice(
                    "interrupted again: stopping at once; run the same command again (members in flight are reconciled by reading them first)",
                );
                std::process::exit(i32::from(exit::INTERRUPTED));
            });
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// Waits for the next of `signals`.
#[cfg(unix)]
async fn any_signal(signals: &mut [tokio::signal::unix::Signal]) {
    futures_util::future::select_all(signals.iter_mut().map(|s| Box::pin(s.recv()))).await;
}

/// What the operator confirms before a command changes what cannot simply be undone: `run`,
/// `invite` and `scramble` ask for the same thing, typed at the terminal.
struct Confirmation<'a> {
    /// `--yes` was given.
    yes: bool,
    /// What the command changes, for the refusal without a terminal: `run changes the tenant`.
    changes: &'a str,
    /// What is about to happen, ending with what to type.
    prompt: String,
    /// What the operator types to go ahead (the wave's name, or a user's UPN).
    expected: &'a str,
    /// The answer may differ from `expected` in ASCII case.
    ignore_case: bool,
    /// What did not happen when the answer is something else: `sent`, `changed`.
    not_done: &'a str,
}

/// The operator said yes: `--yes`, or what `confirmation` expects typed at the terminal.
/// Without `--yes`, a stdin that is not a terminal is a refusal.
fn confirm(confirmation: &Confirmation<'_>) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    confirmed(confirmation, stdin.is_terminal(), || {
        output::notice(&confirmation.prompt);
        let mut answer = String::new();
        stdin
            .lock()
            .read_line(&mut answer)
            .context("reading the confirmation")?;
        Ok(answer)
    })
}

/// [`confirm`] with the terminal's part given: whether stdin is one, and how the answer is
/// asked and read.
fn confirmed(
    confirmation: &Confirmation<'_>,
    terminal: bool,
    ask: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    if confirmation.yes {
        return Ok(());
    }
    if !terminal {
        return Err(Refused(format!(
            "{} and stdin is not a terminal: pass --yes to confirm",
            confirmation.changes
        ))
        .into());
    }
    let answer = ask()?;
    let answer = answer.trim();
    let expected = confirmation.expected;
    let matches = if confirmation.ignore_case {
        answer.eq_ignore_ascii_case(expected)
    } else {
        answer == expected
    };
    if !matches {
        return Err(Refused(format!(
            "not confirmed; nothing was {}",
            confirmation.not_done
        ))
        .into());
    }
    Ok(())
}

/// Converts `wave`'s `ready` members with the executor (the caller holds the lock), with a
/// progress bar for `ready` users on stderr, and hands the run's summary to `show` (text or
/// JSON, standing alone or inside a command's document): `run` and `invite`.
#[allow(clippy::too_many_arguments)] // the parts of a conversion, given once (as `run_wave`)
async fn convert(
    settings: &Settings,
    store: &Store,
    wave: &Wave,
    template: InvitationTemplate,
    pace: &Pace,
    ready: u64,
    command: &str,
    operator: &Operator,
    show: &dyn Fn(&crate::report::run::RunDocument<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<Outcome> {
    let client = connect(settings)?;
    let operator = token_operator(operator, &client).await;
    let progress = Arc::new(ProgressObserver::new(
        ready.min(pace.limit.map_or(u64::MAX, |l| l as u64)),
    ));
    let stop = interruption()?;
    let summary = crate::execute::run_wave(
        client, store, wave, template, pace, command, &operator, progress, stop,
    )
    .await?
    .map_err(|err| match err {
        RunError::Graph(err) => anyhow::Error::new(err).context(format!(
            "run of wave {} stopped; members in flight were recorded, run again to resume",
            wave.name
        )),
        RunError::Store(err) => anyhow::Error::new(err).context("run stopped"),
    })?;
    let not_converted = store
        .members_in_states(wave.id, &[UserState::Failed, UserState::Drifted])
        .await?;
    show(&crate::report::run::RunDocument::new(
        command,
        &wave.name,
        &summary,
        &not_converted,
    ))?;
    if let Some(halt) = summary.halted {
        return Err(anyhow::Error::new(halt).context(format!(
            "run of wave {} stopped sending invitations",
            wave.name
        )));
    }
    Ok(if summary.interrupted {
        Outcome::Interrupted
    } else if summary.failed() > 0 {
        Outcome::SomeUsersFailed
    } else {
        Outcome::Done
    })
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
}

impl RunObserver for ProgressObserver {
    fn run_ended(&self) {
        self.bar.finish();
    }

    fn user_done(&self, _user: UserId, outcome: &UserOutcome) {
        let counter = match outcome {
            UserOutcome::Invited | UserOutcome::Reconciled => &self.invited,
            UserOutcome::Drifted(_) | UserOutcome::Withheld => &self.skipped,
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

/// Runs the parsed command line.
pub async fn run(cli: Cli, env: Environment) -> anyhow::Result<Outcome> {
    let ctx = Ctx::new(&cli, env);
    let outcome = dispatch(cli.command, &ctx).await;
    ctx.close().await;
    outcome
}

async fn dispatch(command: Command, ctx: &Ctx) -> anyhow::Result<Outcome> {
    match command {
        Command::Init(args) => args.run(ctx).await,
        Command::Config(args) => args.run(ctx),
        Command::Check(args) => args.run(ctx).await,
        Command::Discover(args) => args.run(ctx).await,
        Command::Plan(args) => args.run(ctx).await,
        Command::Report(args) => args.run(ctx).await,
        Command::Run(args) => args.run(ctx).await,
        Command::Invite(args) => args.run(ctx).await,
        Command::Status(args) => args.run(ctx).await,
        Command::Waves(args) => args.run(ctx).await,
        Command::Reinvite(args) => args.run(ctx).await,
        Command::ExportLinks(args) => args.run(ctx).await,
        Command::Audit(args) => args.run(ctx).await,
        Command::Backup(args) => args.run(ctx).await,
        Command::Demo(args) => args.run(ctx).await,
        Command::Verify(args) => args.run(ctx).await,
        Command::SetUserType(args) => args.run(ctx).await,
        Command::Scramble(args) => args.run(ctx).await,
        Command::Sim(args) => args.run().await,
        Command::Completions(args) => args.run(),
        Command::Man(args) => args.run(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_error_kind() {
        assert_eq!(exit_code(&Ok(Outcome::Done)), 0);
        assert_eq!(exit_code(&Ok(Outcome::SomeUsersFailed)), 3);
        assert_eq!(exit_code(&Ok(Outcome::Interrupted)), 130);
        let interrupted = anyhow::Error::new(Interrupted("stopped".into())).context("discover");
        assert_eq!(exit_code(&Err(interrupted)), 130);
        let refused = anyhow::Error::new(Refused("no".into())).context("init");
        assert_eq!(exit_code(&Err(refused)), 4);
        let config = anyhow::Error::new(crate::config::Error::FileNotFound {
            path: "x.toml".into(),
        })
        .context("loading settings");
        assert_eq!(exit_code(&Err(config)), 2);
        let no_secret = anyhow::Error::new(crate::config::Error::Missing {
            what: "the client secret",
            key: "auth.client_secret",
            hint: "export AZURE_CLIENT_SECRET",
            method: "client-secret".into(),
            origin: crate::config::Origin::Default,
        })
        .context("signing in");
        assert_eq!(exit_code(&Err(no_secret)), 2, "a missing credential");
        assert_eq!(exit_code(&Err(anyhow::anyhow!("network down"))), 1);
    }

    #[test]
    fn a_confirmation_takes_yes_or_the_typed_name_and_refuses_anything_else() {
        let confirmation = |yes, ignore_case| Confirmation {
            yes,
            changes: "run changes the tenant",
            prompt: "Type the wave name to go ahead:".into(),
            expected: "Pilot",
            ignore_case,
            not_done: "sent",
        };
        let typed = |text: &'static str| move || Ok(text.to_owned());
        let refusal = |result: anyhow::Result<()>| {
            let err = result.unwrap_err();
            let text = err.to_string();
            assert_eq!(exit_code(&Err(err)), exit::REFUSED, "{text}");
            text
        };
        assert!(confirmed(&confirmation(true, false), false, || unreachable!()).is_ok());
        assert_eq!(
            refusal(confirmed(
                &confirmation(false, false),
                false,
                || unreachable!()
            )),
            "run changes the tenant and stdin is not a terminal: pass --yes to confirm"
        );
        assert!(confirmed(&confirmation(false, false), true, typed(" Pilot\n")).is_ok());
        assert_eq!(
            refusal(confirmed(
                &confirmation(false, false),
                true,
                typed("pilot\n")
            )),
            "not confirmed; nothing was sent"
        );
        assert!(confirmed(&confirmation(false, true), true, typed("PILOT\n")).is_ok());
    }
}
