//! `plan`: evaluate a wave's users with the eligibility rules and store the plan. Read-only on
//! the tenant (it may read group members, filtered users and home realms).
//!
//! Orchestration only: the rules decide (`rules`), the store keeps (`store`), Graph and the
//! realm endpoint answer (`graph`). Everything an evaluation needs is loaded first, so the
//! rules stay pure.
//!
//! Two passes over the wave, so that memory is bounded by a chunk of users rather than the
//! wave (docs/performance.md). The first reads only what the address choice needs, in the
//! order the snapshot is stored, and gathers what depends on the whole wave: the chosen
//! addresses' other owners, the addresses chosen twice, the domains whose realms to ask. The
//! second reads the users in chunks in id order, decides them for good and stores each chunk
//! in the plan's transaction, hashing the plan as it goes. Both passes read the snapshot in
//! one read transaction ([`SnapshotRead`]), so they see the same users; the reads go on while
//! the plan's transaction writes. The address index is read on the writing connection: if
//! another process commits before the first pass is over, the plan stops.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::realms::{RealmOptions, RealmSummary, realm_client, resolve_realms};
use super::{Ctx, Outcome, Refused, UsageError, connect, open_store};
use crate::cli::PlanArgs;
use crate::config::{AuthMethod, Settings};
use crate::domain::{Decision, Rule, RuleMode, UserId, UserSnapshot};
use crate::graph::UserSelection;
use crate::input::{self, UserKey};
use crate::output;
use crate::rules::address::{self, AddressInputs};
use crate::rules::{
    self, Candidate, Collision, DomainSet, Evaluation, Finding, PlanHasher, Policy, Severity,
    TenantView, WaveSettings,
};
use crate::store::{
    AddressFields, AddressOwner, NewWave, PlanTransaction, PlannedMember, Replaced, SnapshotRead,
    StoragePosition, Store, Wave,
};

/// Users read, decided and stored at a time in the second pass: memory holds one chunk of
/// snapshots, whatever the wave's size.
const USERS_PER_CHUNK: usize = 5_000;

/// Users decided before the store's next statement gets its turn (about a millisecond).
const USERS_BETWEEN_YIELDS: usize = 200;

/// How a wave's users are chosen; stored with the wave so a re-plan selects the same way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Selection {
    users: Users,
    exclude_csv: Option<PathBuf>,
    exclude_groups: Vec<Uuid>,
    allow_new_address: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum Users {
    All,
    Csv { path: PathBuf },
    Group { id: Uuid, transitive: bool },
    Filter { filter: String },
}

/// The stored snapshot's owners of the chosen addresses, by lower-cased address. Only the
/// addresses some object other than the user choosing them answers to are kept: for the rest
/// the rules would find no collision either way.
type StoredOwners = HashMap<String, Vec<Collision>>;

impl PlanArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<Outcome> {
        let settings = ctx.settings()?;
        let store = open_store(&settings).await?;
        let facts = store.tenant_facts().await?.ok_or_else(|| {
            UsageError(
                "the database has no tenant facts yet; run `b2b-convert discover` first".into(),
            )
        })?;
        let existing = store.wave_by_name(&self.wave).await?;
        let (selection, cap) = self.settle_selection(existing.as_ref())?;

        let (users, overrides) = select_users(&settings, &store, &selection).await?;
        let policy = Policy {
            modes: rules_modes(&settings),
            set_mail_before_invite: settings.invitation.set_mail_before_invite,
            allow_new_address: selection.allow_new_address,
        };
        let (mut tenant, verified) = tenant_view(&facts);
        let mut snapshot = store.read_snapshot().await?;
        let (first, domains) = first_pass(
            &store,
            &mut snapshot,
            &users,
            &overrides,
            &tenant.verified_domains,
            &policy,
        )
        .await?;
        if let Some(cap) = cap
            && first.users > u64::from(cap)
        {
            return Err(Refused(format!(
                "wave {} would have {} users, more than its cap of {cap}; narrow the selection or raise --max",
                self.wave, first.users
            ))
            .into());
        }
        let excluded = exclusions(&settings, &store, &selection).await?;
        let other_waves = store
            .pending_in_other_waves(existing.as_ref().map(|w| w.id))
            .await?;
        let wave_users = WaveUsers {
            users,
            overrides,
            excluded,
            other_waves,
        };
        let realm_summary = if policy.mode(Rule::HomeRealmNotEntra) == RuleMode::Off {
            None
        } else {
            let summary = realms_of(&settings, &store, domains, &verified).await?;
            tenant.realms = summary
                .records
                .iter()
                .filter_map(|(domain, record)| {
                    record
                        .outcome
                        .as_ref()
                        .ok()
                        .map(|a| (domain.clone(), a.kind))
                })
                .collect();
            Some(summary)
        };

        let wave_findings = rules::wave_findings(&wave_settings(&settings), &policy);
        let decider = Decider {
            wave: &wave_users,
            first: &first,
            tenant: &tenant,
            policy: &policy,
            wave_findings: &wave_findings,
        };
        let new = NewWave {
            name: self.wave.clone(),
            selector: serde_json::to_value(&selection)?,
            cap,
            settings: settings_json(&settings, &policy),
        };
        let (wave, tally, hash) = store_plan(
            &store,
            snapshot,
            existing.as_ref(),
            &new,
            &decider,
            USERS_PER_CHUNK,
        )
        .await?;

        output::write_stdout(&summary(&wave, &tally, realm_summary.as_ref(), &hash))?;
        Ok(Outcome::Done)
    }

    /// The selection and cap to plan with: the given ones for a new wave, the stored ones for
    /// a re-plan (a different selection for an existing wave is refused).
    fn settle_selection(
        &self,
        existing: Option<&Wave>,
    ) -> anyhow::Result<(Selection, Option<u32>)> {
        let given = self.given_selection()?;
        match (existing, given) {
            (None, Some(selection)) => Ok((selection, self.max)),
            (None, None) => Err(UsageError(format!(
                "wave {} is new: choose its users with --csv, --group, --filter or --all",
                self.wave
            ))
            .into()),
            (Some(wave), given) => {
                let stored: Selection = serde_json::from_value(wave.selector.clone())
                    .context("reading the wave's stored selection")?;
                if given.as_ref().is_some_and(|g| *g != stored) {
                    return Err(UsageError(format!(
                        "wave {} was planned with another selection; re-plan it with `plan --wave {}` \
                         alone, or plan a new wave",
                        wave.name, wave.name
                    ))
                    .into());
                }
                Ok((stored, self.max.or(wave.cap)))
            }
        }
    }

    fn given_selection(&self) -> anyhow::Result<Option<Selection>> {
        let absolute = |path: &PathBuf| {
            std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
        };
        let users = if let Some(path) = &self.users.csv {
            Users::Csv {
                path: absolute(path)?,
            }
        } else if let Some(id) = self.users.group {
            Users::Group {
                id,
                transitive: self.users.transitive,
            }
        } else if let Some(filter) = &self.users.filter {
            Users::Filter {
                filter: filter.clone(),
            }
        } else if self.users.all {
            Users::All
        } else {
            return Ok(None);
        };
        Ok(Some(Selection {
            users,
            exclude_csv: self.exclude_csv.as_ref().map(absolute).transpose()?,
            exclude_groups: self.exclude_group.clone(),
            allow_new_address: self.allow_new_address,
        }))
    }
}

/// A wave's users with what the operator said about them.
struct WaveUsers {
    users: Roster,
    overrides: HashMap<UserId, String>,
    excluded: HashMap<UserId, String>,
    /// Other waves that still plan to convert the user.
    other_waves: HashMap<UserId, Vec<String>>,
}

/// A wave's users, as both passes see them: in ascending id order.
enum Roster {
    /// Every user of the stored snapshot that is not retired (`--all`): read from the store
    /// as the passes go, never all at once.
    Snapshot,
    /// The users a list, a group or a filter named, held in memory, sorted by id.
    Listed {
        users: Vec<UserSnapshot>,
        /// Each user's place in the selection as given: the wave's order, in which a
        /// duplicate finding names the other users.
        places: Vec<usize>,
    },
}

impl Roster {
    /// Sorts the selection's users by id, remembering the order they were given in. The sort
    /// is stable: a user listed twice comes twice, in list order.
    fn listed(users: Vec<UserSnapshot>) -> Self {
        let mut numbered: Vec<(usize, UserSnapshot)> = users.into_iter().enumerate().collect();
        numbered.sort_by_key(|(_, user)| user.id);
        let (places, users) = numbered.into_iter().unzip();
        Self::Listed { users, places }
    }
}

/// What the first pass learns about the wave as a whole, for the second.
struct FirstPass {
    book: StoredOwners,
    /// Users whose address other users of the wave chose too: the lower-cased address and
    /// those others, in the wave's order.
    duplicates: HashMap<UserId, (String, Vec<UserId>)>,
    /// How many users the wave has.
    users: u64,
}

/// One user's chosen address in the first pass, with the user and their place in the wave
/// (for a listed wave; users of the whole snapshot are in id order and all in place 0).
struct Chosen {
    address: Box<str>,
    place: usize,
    user: UserId,
    /// The address is the user's `mail` or an `otherMails` entry as stored: for a user of
    /// the active snapshot, the address index has it for the user (not so for a listed user
    /// who is retired).
    own: bool,
}

/// The first pass: reads what the address choice needs for every user, finds the addresses
/// chosen twice and the chosen addresses' other owners. Returns those, and the domains of
/// cloud-only users' chosen addresses (whose realms the rules ask about), first seen first.
/// A wave of the whole snapshot is read from `snapshot`, which the second pass reads again.
async fn first_pass(
    store: &Store,
    snapshot: &mut SnapshotRead,
    users: &Roster,
    overrides: &HashMap<UserId, String>,
    verified: &DomainSet,
    policy: &Policy,
) -> anyhow::Result<(FirstPass, Vec<String>)> {
    let started = Instant::now();
    let mut chosen: Vec<Chosen> = Vec::new();
    let mut domains: Vec<String> = Vec::new();
    let mut seen_domains: HashSet<String> = HashSet::new();
    let mut read: u64 = 0;
    let mut choose =
        |place: usize, id: UserId, synced: bool, mail: Option<&str>, other_mails: &[String]| {
            read += 1;
            let inputs = AddressInputs {
                synced,
                mail,
                other_mails,
                override_address: overrides.get(&id).map(String::as_str),
                allow_new_address: policy.allow_new_address,
            };
            let Ok(address) = address::choose(&inputs, verified) else {
                return;
            };
            if !synced
                && let Some(domain) = address::domain_of(&address.address)
                && seen_domains.insert(domain.clone())
            {
                domains.push(domain);
            }
            let own =
                mail == Some(address.address.as_str()) || other_mails.contains(&address.address);
            chosen.push(Chosen {
                address: address.address.to_lowercase().into_boxed_str(),
                place,
                user: id,
                own,
            });
        };
    let shared = match users {
        Roster::Snapshot => {
            // Read in the order the rows are stored: sequential reads. The wave's order is
            // the users' id order, which sorting the choosers by id restores. Meanwhile the
            // store's other connection finds the addresses of more than one object.
            let (shared, read) = futures_util::future::join(
                store.shared_addresses(),
                for_each_address_fields(snapshot, |row| {
                    choose(0, row.id, row.synced, row.mail.as_deref(), &row.other_mails);
                }),
            )
            .await;
            read?;
            Some(shared.context("reading the stored addresses")?)
        }
        Roster::Listed { users, places } => {
            for (user, place) in users.iter().zip(places) {
                choose(
                    *place,
                    user.id,
                    user.is_synced(),
                    user.mail.as_deref(),
                    &user.other_mails,
                );
            }
            None
        }
    };
    tracing::debug!(
        users = read,
        addresses = chosen.len(),
        elapsed = ?started.elapsed(),
        "first pass: addresses chosen"
    );
    let started = Instant::now();

    // In address order, the index is read in order; each address's choosers in wave order.
    chosen
        .sort_unstable_by(|a, b| (&a.address, a.place, a.user).cmp(&(&b.address, b.place, b.user)));
    let duplicates = duplicates_of(&chosen);
    let book = owners_of(store, &chosen, shared.as_ref()).await?;
    drop(chosen);
    // The owners were read on the writing connection, the users in the snapshot: they agree
    // unless another process stored something in between.
    if !store.agrees_with(snapshot).await? {
        anyhow::bail!(
            "the stored users changed while the plan was made (is `discover` running?); nothing was stored: plan again"
        );
    }
    tracing::debug!(
        duplicates = duplicates.len(),
        colliding = book.len(),
        elapsed = ?started.elapsed(),
        "first pass: duplicates and other owners found"
    );

    Ok((
        FirstPass {
            book,
            duplicates,
            users: read,
        },
        domains,
    ))
}

/// The users whose address other users of the wave chose too, with the address and those
/// others. `chosen` is sorted by address, each address's choosers in the wave's order.
fn duplicates_of(chosen: &[Chosen]) -> HashMap<UserId, (String, Vec<UserId>)> {
    let mut duplicates = HashMap::new();
    for run in chosen.chunk_by(|a, b| a.address == b.address) {
        if run.len() < 2 {
            continue;
        }
        for (i, one) in run.iter().enumerate() {
            let others = run
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, other)| other.user)
                .collect();
            duplicates.insert(one.user, (one.address.to_string(), others));
        }
    }
    duplicates
}

/// Calls `f` with the address fields of every user of the snapshot that is not retired, in
/// the order they are stored, a chunk read at a time.
async fn for_each_address_fields(
    snapshot: &mut SnapshotRead,
    mut f: impl FnMut(AddressFields),
) -> anyhow::Result<()> {
    let mut after = StoragePosition::default();
    loop {
        let (part, next) = snapshot
            .active_address_fields(after, USERS_PER_CHUNK)
            .await
            .context("reading the stored users")?;
        if part.is_empty() {
            return Ok(());
        }
        part.into_iter().for_each(&mut f);
        after = next;
    }
}

/// What the rules know about the tenant before realms are asked, and its verified domains.
fn tenant_view(facts: &crate::domain::TenantFacts) -> (TenantView, Vec<String>) {
    let verified: Vec<String> = facts
        .domains
        .iter()
        .filter(|d| d.is_verified)
        .map(|d| d.name.clone())
        .collect();
    let tenant = TenantView {
        verified_domains: DomainSet::new(&verified),
        federation_domains: DomainSet::new(facts.federation_domains.iter().map(|d| &d.domain)),
        realms: HashMap::new(),
    };
    (tenant, verified)
}

/// The home realms of the domains (the tenant's own `verified` domains aside), from the
/// realm cache or the realm endpoint.
async fn realms_of(
    settings: &Settings,
    store: &Store,
    domains: Vec<String>,
    verified: &[String],
) -> anyhow::Result<RealmSummary> {
    Ok(resolve_realms(
        &realm_client(settings)?,
        store,
        domains,
        verified,
        OffsetDateTime::now_utc(),
        &RealmOptions::default(),
    )
    .await?)
}

/// What deciding a user takes, beyond the user.
struct Decider<'a> {
    wave: &'a WaveUsers,
    first: &'a FirstPass,
    tenant: &'a TenantView,
    policy: &'a Policy,
    wave_findings: &'a [Finding],
}

impl Decider<'_> {
    /// The user's verdict, with what the wave as a whole adds to it.
    fn decide(&self, user: &UserSnapshot) -> Evaluation {
        let wave = self.wave;
        let candidate = Candidate {
            user,
            override_address: wave.overrides.get(&user.id).map(String::as_str),
            excluded: wave.excluded.get(&user.id).map(String::as_str),
            other_waves: wave.other_waves.get(&user.id).map_or(&[], Vec::as_slice),
        };
        let mut eval = rules::evaluate(candidate, self.tenant, self.policy, &self.first.book);
        if let Some((address, others)) = self.first.duplicates.get(&user.id) {
            rules::mark_duplicate(&mut eval, address, others);
        }
        rules::apply_wave_findings(std::slice::from_mut(&mut eval), self.wave_findings);
        eval
    }
}

/// Decides the wave's users and stores the plan in one transaction. Without an `existing`
/// wave, `wave` is created with its plan (a failure leaves no wave without a plan); with one,
/// its cap and settings replace the existing wave's. A wave of the whole snapshot is read
/// from `snapshot`, which the first pass read too. Returns the stored wave, the summary's
/// counts and the plan hash.
async fn store_plan(
    store: &Store,
    mut snapshot: SnapshotRead,
    existing: Option<&Wave>,
    wave: &NewWave,
    decider: &Decider<'_>,
    chunk: usize,
) -> anyhow::Result<(Wave, Tally, String)> {
    let now = OffsetDateTime::now_utc();
    let mut plan = if let Some(existing) = existing {
        store.begin_replan(existing, now).await
    } else {
        store.begin_plan(wave, now).await
    }
    .context("storing the plan")?;
    let (mut tally, hash) = decide_and_store(&mut plan, &mut snapshot, decider, chunk).await?;
    // Read to the end; no need to keep the write-ahead log for it.
    snapshot.end().await.context("reading the stored users")?;
    let started = Instant::now();
    let (stored, removed) = plan
        .commit(wave.cap, &wave.settings, &hash)
        .await
        .context("storing the plan")?;
    tracing::debug!(elapsed = ?started.elapsed(), "plan committed");
    tally.previous += removed;
    tally.removed += removed;
    Ok((stored, tally, hash))
}

/// The second pass: decides the users chunk by chunk and stores each chunk in the plan's
/// transaction. Returns the summary's counts and the plan hash.
///
/// The database works on threads of its own, one connection each: while a chunk is decided,
/// the store reads the next one and writes the previous one, and the read is taken apart
/// while the write goes on.
async fn decide_and_store(
    plan: &mut PlanTransaction,
    snapshot: &mut SnapshotRead,
    decider: &Decider<'_>,
    chunk: usize,
) -> anyhow::Result<(Tally, String)> {
    let mut pass = SecondPass {
        decider,
        tally: Tally::default(),
        hasher: PlanHasher::new(),
    };
    let started = Instant::now();
    let roster = &decider.wave.users;
    let mut to_store: Vec<PlannedMember> = Vec::new();
    let (_, mut users) = store_and_read(plan, snapshot, roster, None, 0, chunk, &to_store).await?;
    let mut done = users.len();
    while let Some(last) = users.last().map(|u| u.id) {
        // Polled in this order, so the store has its statements before the rules start.
        let (stored, members) = futures_util::future::join(
            store_and_read(plan, snapshot, roster, Some(last), done, chunk, &to_store),
            pass.decide_part(&users),
        )
        .await;
        let (replaced, next) = stored?;
        pass.tally.compare(&to_store, &replaced);
        to_store = members;
        done += next.len();
        users = next;
    }
    let replaced = plan.write(&to_store).await.context("storing the plan")?;
    pass.tally.compare(&to_store, &replaced);
    tracing::debug!(
        users = pass.tally.users,
        elapsed = ?started.elapsed(),
        "second pass: users decided and stored"
    );
    // One snapshot, read twice: the same users, unless the store is broken.
    anyhow::ensure!(
        pass.tally.users as u64 == decider.first.users,
        "the second pass read {} users where the first read {}; nothing was stored",
        pass.tally.users,
        decider.first.users
    );
    Ok((pass.tally, pass.hasher.finish()))
}

/// Stores the members just decided, and returns what that replaced with the wave's next
/// `chunk` users in id order, after user `after`, the `done`th: read from the snapshot for
/// the whole snapshot (while the members are written), taken from memory for a listed wave.
async fn store_and_read<'a>(
    plan: &mut PlanTransaction,
    snapshot: &mut SnapshotRead,
    roster: &'a Roster,
    after: Option<UserId>,
    done: usize,
    chunk: usize,
    decided: &[PlannedMember],
) -> anyhow::Result<(Replaced, Cow<'a, [UserSnapshot]>)> {
    match roster {
        Roster::Snapshot => {
            let (replaced, users) = futures_util::future::join(plan.write(decided), async {
                snapshot.rule_inputs_after(after, chunk).await?.users()
            })
            .await;
            Ok((
                replaced.context("storing the plan")?,
                Cow::Owned(users.context("reading the stored users")?),
            ))
        }
        Roster::Listed { users, .. } => {
            let replaced = plan.write(decided).await.context("storing the plan")?;
            let start = done.min(users.len());
            Ok((
                replaced,
                Cow::Borrowed(&users[start..(start + chunk).min(users.len())]),
            ))
        }
    }
}

/// What the second pass accumulates as it decides the users, in id order.
struct SecondPass<'a> {
    decider: &'a Decider<'a>,
    tally: Tally,
    hasher: PlanHasher,
}

impl SecondPass<'_> {
    /// Decides a part of the wave, letting the store's work go on in between (see
    /// [`decide_and_store`]).
    async fn decide_part(&mut self, users: &[UserSnapshot]) -> Vec<PlannedMember> {
        let mut members = Vec::with_capacity(users.len());
        for some in users.chunks(USERS_BETWEEN_YIELDS) {
            members.extend(some.iter().map(|user| self.decide(user)));
            tokio::task::yield_now().await;
        }
        members
    }

    /// Decides one user, counts and hashes the verdict, and returns it as a member to store.
    fn decide(&mut self, user: &UserSnapshot) -> PlannedMember {
        let eval = self.decider.decide(user);
        self.hasher.push(&eval);
        self.tally.count(&eval);
        planned_member(eval, user)
    }
}

/// A user's evaluation as a plan stores it, with the fingerprint of the rule inputs it was
/// made from (`run` skips the user if they changed).
pub(super) fn planned_member(eval: Evaluation, user: &UserSnapshot) -> PlannedMember {
    PlannedMember {
        user_id: eval.user,
        decision: eval.decision,
        chosen_address: eval.address.as_ref().map(|a| a.address.clone()),
        address_origin: eval.address.as_ref().map(|a| a.origin),
        set_mail: eval.set_mail,
        findings: eval.findings,
        snapshot_fingerprint: rules::fingerprint(user),
    }
}

/// What the summary reports, counted as the users are decided.
#[derive(Debug, Default)]
struct Tally {
    users: usize,
    eligible: usize,
    /// Eligible users whose mail is set first.
    set_mail: usize,
    /// Findings by severity and reason code.
    findings: BTreeMap<(Severity, &'static str), usize>,
    /// Compared with the wave's previous plan: its members, and what changed.
    previous: u64,
    added: usize,
    removed: u64,
    changed: usize,
}

impl Tally {
    fn count(&mut self, eval: &Evaluation) {
        self.users += 1;
        if eval.decision == Decision::Eligible {
            self.eligible += 1;
            if eval.set_mail {
                self.set_mail += 1;
            }
        }
        for finding in &eval.findings {
            *self
                .findings
                .entry((finding.severity, finding.reason.code()))
                .or_default() += 1;
        }
    }

    /// Counts what a chunk of members changed from the previous plan.
    fn compare(&mut self, members: &[PlannedMember], replaced: &Replaced) {
        let before: HashMap<UserId, (&Decision, &Option<String>)> = replaced
            .previous
            .iter()
            .map(|p| (p.user_id, (&p.decision, &p.chosen_address)))
            .collect();
        self.previous += before.len() as u64 + replaced.removed;
        self.removed += replaced.removed;
        for member in members {
            match before.get(&member.user_id) {
                None => self.added += 1,
                Some((decision, address)) => {
                    if **decision != member.decision || **address != member.chosen_address {
                        self.changed += 1;
                    }
                }
            }
        }
    }
}

/// The users a selection names, from the stored snapshot (group and filter selections are
/// read from Graph now, and their snapshots refreshed), with the list's address overrides.
async fn select_users(
    settings: &Settings,
    store: &Store,
    selection: &Selection,
) -> anyhow::Result<(Roster, HashMap<UserId, String>)> {
    let mut overrides = HashMap::new();
    let users = match &selection.users {
        Users::All => return Ok((Roster::Snapshot, overrides)),
        Users::Csv { path } => {
            let entries = input::read_user_list(path)?;
            let mut users = Vec::with_capacity(entries.len());
            let mut missing = Vec::new();
            for entry in entries {
                let found = match &entry.key {
                    UserKey::Id(id) => store.user(*id).await?,
                    UserKey::Upn(upn) => store.user_by_upn(upn).await?,
                };
                match found {
                    Some(user) => {
                        if let Some(address) = entry.address {
                            overrides.insert(user.id, address);
                        }
                        users.push(user);
                    }
                    None => missing.push(entry.line),
                }
            }
            if !missing.is_empty() {
                let lines: Vec<String> = missing.iter().take(10).map(u64::to_string).collect();
                return Err(UsageError(format!(
                    "{} user(s) of {} are not in the snapshot (lines {}{}); run `b2b-convert discover --csv {}` first",
                    missing.len(),
                    path.display(),
                    lines.join(", "),
                    if missing.len() > 10 { ", …" } else { "" },
                    path.display()
                ))
                .into());
            }
            users
        }
        Users::Group { id, transitive } => {
            read_and_store(
                settings,
                store,
                &UserSelection::Group {
                    id: *id,
                    transitive: *transitive,
                },
            )
            .await?
        }
        Users::Filter { filter } => {
            read_and_store(settings, store, &UserSelection::Filter(filter.clone())).await?
        }
    };
    Ok((Roster::listed(users), overrides))
}

/// Reads a selection from Graph, refreshing the stored snapshots on the way.
async fn read_and_store(
    settings: &Settings,
    store: &Store,
    selection: &UserSelection,
) -> anyhow::Result<Vec<UserSnapshot>> {
    let client = connect(settings)?;
    let mut users = Vec::new();
    let mut pages = std::pin::pin!(client.users(selection, OffsetDateTime::now_utc()));
    while let Some(page) = pages
        .try_next()
        .await
        .context("reading the wave's users from Graph")?
    {
        store.store_users(&page.items).await?;
        users.extend(page.items);
    }
    Ok(users)
}

/// Users the operator excluded, with why.
async fn exclusions(
    settings: &Settings,
    store: &Store,
    selection: &Selection,
) -> anyhow::Result<HashMap<UserId, String>> {
    let mut excluded = HashMap::new();
    if let Some(path) = &selection.exclude_csv {
        for entry in input::read_user_list(path)? {
            let found = match &entry.key {
                UserKey::Id(id) => Some(*id),
                UserKey::Upn(upn) => store.user_by_upn(upn).await?.map(|u| u.id),
            };
            if let Some(id) = found {
                excluded.insert(id, format!("{}, line {}", path.display(), entry.line));
            }
        }
    }
    if !selection.exclude_groups.is_empty() {
        let client = connect(settings)?;
        for group in &selection.exclude_groups {
            let selection = UserSelection::Group {
                id: *group,
                transitive: true,
            };
            let mut pages = std::pin::pin!(client.users(&selection, OffsetDateTime::now_utc()));
            while let Some(page) = pages
                .try_next()
                .await
                .context("reading an exclusion group from Graph")?
            {
                for user in page.items {
                    excluded.insert(user.id, format!("member of exclusion group {group}"));
                }
            }
        }
    }
    Ok(excluded)
}

/// The stored owners of the chosen addresses that some object other than the user choosing
/// them answers to. `chosen` is sorted by address. `shared` (the addresses of two objects or
/// more) only for users of the active snapshot, whose own addresses are in the index.
async fn owners_of(
    store: &Store,
    chosen: &[Chosen],
    shared: Option<&HashSet<String>>,
) -> anyhow::Result<StoredOwners> {
    // A user's own address that no other object has is nobody else's: with the addresses of
    // more than one object at hand, only the others are worth a look-up.
    let (mut colliding, to_look_up): (Vec<&str>, Vec<&Chosen>) = match shared {
        Some(shared) => {
            let (own, others): (Vec<&Chosen>, Vec<&Chosen>) = chosen.iter().partition(|c| c.own);
            let colliding = own
                .iter()
                .map(|c| &*c.address)
                .filter(|address| shared.contains(*address))
                .collect();
            (colliding, others)
        }
        None => (Vec::new(), chosen.iter().collect()),
    };
    let pairs: Vec<(&str, UserId)> = to_look_up.iter().map(|c| (&*c.address, c.user)).collect();
    let looked_up = store.addresses_owned_by_others(&pairs).await?;
    colliding.extend(looked_up.iter().map(String::as_str));
    colliding.sort_unstable();
    colliding.dedup();
    Ok(as_collisions(
        store.address_owners_of_many(&colliding).await?,
    ))
}

/// Stored address owners as the rules see them: collisions, by lower-cased address.
pub(super) fn as_collisions(owners: HashMap<String, Vec<AddressOwner>>) -> StoredOwners {
    owners
        .into_iter()
        .map(|(address, owners)| {
            let collisions = owners
                .into_iter()
                .map(|o| Collision {
                    object_id: o.object_id,
                    property: o.source.to_string(),
                })
                .collect();
            (address, collisions)
        })
        .collect()
}

fn rules_modes(settings: &Settings) -> BTreeMap<Rule, RuleMode> {
    Rule::ALL
        .iter()
        .map(|rule| (*rule, settings.rules.mode(*rule)))
        .collect()
}

fn wave_settings(settings: &Settings) -> WaveSettings {
    WaveSettings {
        custom_message: settings.invitation.custom_message.is_some(),
        app_only: matches!(
            settings.auth.method,
            AuthMethod::ClientSecret | AuthMethod::Certificate
        ),
        send_message: settings.invitation.send_message,
        redirect_url: settings
            .invitation
            .redirect_url
            .as_ref()
            .map(ToString::to_string),
    }
}

/// What the plan was made with, kept with the wave (no secrets: none are involved).
fn settings_json(settings: &Settings, policy: &Policy) -> serde_json::Value {
    serde_json::json!({
        "auth_method": settings.auth.method,
        "invitation": invitation_json(settings),
        "rules": policy.modes.iter().map(|(rule, mode)| (rule.code(), mode.to_string())).collect::<BTreeMap<_, _>>(),
        "allow_new_address": policy.allow_new_address,
    })
}

/// The invitation settings as a plan keeps them; `run` sends only what they were.
pub(super) fn invitation_json(settings: &Settings) -> serde_json::Value {
    let invitation = &settings.invitation;
    serde_json::json!({
        "redirect_url": invitation.redirect_url.as_ref().map(ToString::to_string),
        "send_message": invitation.send_message,
        "message_language": invitation.message_language,
        "custom_message": invitation.custom_message,
        "cc_recipient": invitation.cc_recipient.as_ref().map(|c| &c.address),
        "invited_user_type": invitation.invited_user_type,
        "send_display_name": invitation.send_display_name,
        "set_mail_before_invite": invitation.set_mail_before_invite,
    })
}

fn summary(wave: &Wave, tally: &Tally, realms: Option<&RealmSummary>, hash: &str) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "Wave {}: {} user(s): {} eligible ({} with mail set first), {} blocked",
        wave.name,
        tally.users,
        tally.eligible,
        tally.set_mail,
        tally.users - tally.eligible
    );
    for (severity, label) in [
        (Severity::Blocker, "Blocked by"),
        (Severity::Warning, "Warnings"),
    ] {
        let list: Vec<String> = tally
            .findings
            .iter()
            .filter(|((s, _), _)| *s == severity)
            .map(|((_, code), n)| format!("{code} {n}"))
            .collect();
        if !list.is_empty() {
            let _ = writeln!(text, "{label}: {}", list.join(", "));
        }
    }
    if let Some(realms) = realms {
        let _ = writeln!(
            text,
            "Realms: {} domain(s), {} cached, {} asked: {} managed, {} federated, {} unknown, {} failed",
            realms.cached + realms.asked + realms.invalid,
            realms.cached,
            realms.asked,
            realms.managed,
            realms.federated,
            realms.unknown,
            realms.failed
        );
    }
    if tally.previous > 0 {
        let _ = writeln!(
            text,
            "Re-planned: {} added, {} removed, {} changed (decision or address)",
            tally.added, tally.removed, tally.changed
        );
    }
    let _ = writeln!(text, "Plan hash {}", &hash[..16]);
    let _ = writeln!(
        text,
        "\nNext: b2b-convert report --wave {} --format html --out {}.html",
        wave.name, wave.name
    );
    text
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use time::macros::datetime;

    use super::*;
    use crate::domain::{AssignedPlan, OnPremisesProperties, RealmKind, WaveId};
    use crate::store::testing::temp_store;

    /// Chunks this small put users that share an address in different chunks.
    const CHUNK: usize = 7;

    fn id(n: u128) -> UserId {
        UserId::from_uuid(Uuid::from_u128(n))
    }

    /// User `n` of a wave with a bit of everything: eligible users, users sharing an address
    /// (every seventh, in three groups spread over many chunks), an address another user
    /// answers to (every eleventh), no address, a mailbox, synced users.
    fn user(n: u128) -> UserSnapshot {
        let mut user = UserSnapshot {
            id: id(n),
            user_principal_name: format!("u{n}@contoso.com"),
            display_name: Some(format!("User {n}")),
            mail: None,
            other_mails: vec![format!("p{n}@fabrikam.com")],
            proxy_addresses: vec![
                format!("SMTP:u{n}@contoso.com"),
                format!("smtp:alias{n}@fabrikam.com"),
            ],
            user_type: Some("Member".into()),
            account_enabled: Some(!n.is_multiple_of(9)),
            creation_type: None,
            external_user_state: None,
            external_user_state_changed_at: None,
            on_premises: OnPremisesProperties::default(),
            assigned_plans: vec![],
            assigned_licenses: vec![],
            identities: vec![],
            snapshot_at: datetime!(2026-11-21 08:00 UTC),
        };
        if n.is_multiple_of(7) {
            user.other_mails = vec![format!("Shared{}@Fabrikam.com", n % 3)];
        } else if n.is_multiple_of(11) {
            user.other_mails = vec![format!("alias{}@fabrikam.com", n + 1)];
        } else if n.is_multiple_of(13) {
            user.other_mails.clear();
        } else if n.is_multiple_of(10) {
            user.mail = Some(format!("S{n}@fabrikam.com"));
            user.on_premises.sync_enabled = Some(true);
        } else if n.is_multiple_of(5) {
            user.mail = Some(format!("P{n}@Fabrikam.com"));
        }
        if n.is_multiple_of(17) {
            user.assigned_plans.push(AssignedPlan {
                assigned_at: Some(datetime!(2025-01-01 00:00 UTC)),
                capability_status: Some("Enabled".into()),
                service: Some("exchange".into()),
                service_plan_id: Some(rules::MAILBOX_PLANS[0]),
            });
        }
        user
    }

    fn tenant() -> TenantView {
        TenantView {
            verified_domains: DomainSet::new(["contoso.com"]),
            federation_domains: DomainSet::new(["woodgrovebank.com"]),
            realms: HashMap::from([("fabrikam.com".to_owned(), RealmKind::Managed)]),
        }
    }

    /// Addresses the wave list gives that are not their user's as stored: user 3's alias
    /// (another user's address, allowed as a new one), and user 8's own in other spelling.
    fn wave(users: Roster) -> WaveUsers {
        WaveUsers {
            users,
            overrides: HashMap::from([
                (id(2), "Alias3@fabrikam.com".to_owned()),
                (id(8), " P8@FABRIKAM.com ".to_owned()),
            ]),
            excluded: HashMap::from([(id(4), "keep.csv, line 2".to_owned())]),
            other_waves: HashMap::new(),
        }
    }

    fn new_wave(name: &str) -> NewWave {
        NewWave {
            name: name.into(),
            selector: serde_json::json!({"kind": "all"}),
            cap: None,
            settings: serde_json::json!({}),
        }
    }

    fn policy() -> Policy {
        Policy {
            allow_new_address: true,
            ..Policy::default()
        }
    }

    fn wave_findings() -> Vec<Finding> {
        let settings = WaveSettings {
            redirect_url: Some("https://myapps.microsoft.com/".into()),
            ..WaveSettings::default()
        };
        rules::wave_findings(&settings, &Policy::default())
    }

    /// The first pass over `wave` with the tests' tenant and policy.
    async fn test_first_pass(
        store: &Store,
        snapshot: &mut SnapshotRead,
        wave: &WaveUsers,
    ) -> anyhow::Result<FirstPass> {
        let (first, _domains) = first_pass(
            store,
            snapshot,
            &wave.users,
            &wave.overrides,
            &tenant().verified_domains,
            &policy(),
        )
        .await?;
        Ok(first)
    }

    /// Plans `wave` the streamed way, in chunks of [`CHUNK`].
    async fn plan_streamed(
        store: &Store,
        wave: &WaveUsers,
        existing: Option<&Wave>,
    ) -> anyhow::Result<(Wave, Tally, String)> {
        let (tenant, policy, findings) = (tenant(), policy(), wave_findings());
        let mut snapshot = store.read_snapshot().await?;
        let first = test_first_pass(store, &mut snapshot, wave).await?;
        let decider = Decider {
            wave,
            first: &first,
            tenant: &tenant,
            policy: &policy,
            wave_findings: &findings,
        };
        store_plan(store, snapshot, existing, &new_wave("all"), &decider, CHUNK).await
    }

    /// The plan as it was made before planning was streamed: every user held, evaluated
    /// twice, duplicates marked over the whole wave. In the wave's order.
    async fn plan_at_once(
        store: &Store,
        users: &[UserSnapshot],
        wave: &WaveUsers,
    ) -> (Vec<PlannedMember>, String) {
        let (tenant, policy) = (tenant(), policy());
        let evaluate_all = |book: &StoredOwners| -> Vec<Evaluation> {
            users
                .iter()
                .map(|user| {
                    let candidate = Candidate {
                        user,
                        override_address: wave.overrides.get(&user.id).map(String::as_str),
                        excluded: wave.excluded.get(&user.id).map(String::as_str),
                        other_waves: wave.other_waves.get(&user.id).map_or(&[], Vec::as_slice),
                    };
                    rules::evaluate(candidate, &tenant, &policy, book)
                })
                .collect()
        };
        let addresses: Vec<String> = evaluate_all(&StoredOwners::new())
            .iter()
            .filter_map(|e| e.address.as_ref().map(|a| a.address.to_lowercase()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let book = as_collisions(store.address_owners_of_many(&addresses).await.unwrap());
        let mut evaluations = evaluate_all(&book);
        rules::mark_duplicates(&mut evaluations);
        rules::apply_wave_findings(&mut evaluations, &wave_findings());
        let members = evaluations
            .iter()
            .zip(users)
            .map(|(eval, user)| planned_member(eval.clone(), user))
            .collect();
        (members, rules::plan_hash(&evaluations))
    }

    async fn stored_plan(store: &Store, wave: WaveId) -> Vec<PlannedMember> {
        store
            .members(wave)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.plan)
            .collect()
    }

    fn sorted(mut members: Vec<PlannedMember>) -> Vec<PlannedMember> {
        members.sort_by_key(|m| m.user_id);
        members
    }

    /// Stores users 1..=60 in a completed discovery, and user 99 outside it (then retired).
    async fn snapshot(store: &Store) -> Vec<UserSnapshot> {
        let at = datetime!(2026-11-21 08:00 UTC);
        store.store_users(&[user(99)]).await.unwrap();
        let users: Vec<UserSnapshot> = (1..=60).map(user).collect();
        let discovery = store
            .begin_discovery(&serde_json::json!({}), at)
            .await
            .unwrap();
        // Stored out of id order, as a directory pages them.
        for page in users.rchunks(9) {
            store.store_user_page(discovery, page).await.unwrap();
        }
        assert_eq!(store.retire_unseen_users(discovery, at).await.unwrap(), 1);
        users
    }

    #[tokio::test]
    async fn a_plan_of_the_whole_snapshot_in_chunks_is_the_plan_made_at_once() {
        let (_dir, store) = temp_store().await;
        let users = snapshot(&store).await;
        let wave = wave(Roster::Snapshot);
        let (stored, tally, hash) = plan_streamed(&store, &wave, None).await.unwrap();
        let (expected, expected_hash) = plan_at_once(&store, &users, &wave).await;

        assert_eq!(hash, expected_hash);
        assert_eq!(stored.plan_hash.as_deref(), Some(expected_hash.as_str()));
        assert_eq!(
            stored_plan(&store, stored.id).await,
            sorted(expected.clone())
        );
        assert_eq!(tally.users, 60, "the retired user is not planned");
        assert_eq!(
            tally.eligible,
            expected
                .iter()
                .filter(|m| m.decision == Decision::Eligible)
                .count()
        );
        assert_eq!(tally.previous, 0);

        // The cases this test is for did occur, across chunks.
        let reasons = |n: u128| -> Vec<&'static str> {
            let member = expected.iter().find(|m| m.user_id == id(n)).unwrap();
            member.findings.iter().map(|f| f.reason.code()).collect()
        };
        assert!(reasons(7).contains(&"duplicate-in-wave"));
        let shared = expected.iter().find(|m| m.user_id == id(7)).unwrap();
        let duplicate = shared
            .findings
            .iter()
            .find(|f| f.reason.code() == "duplicate-in-wave")
            .unwrap();
        assert_eq!(
            duplicate.detail,
            format!(
                "shared1@fabrikam.com also chosen for {}, {}",
                id(28),
                id(49)
            )
        );
        assert!(reasons(11).contains(&"address-collision"));
        assert!(reasons(2).contains(&"address-collision"), "user 3's alias");
        assert!(!reasons(8).contains(&"address-collision"), "user 8's own");
        assert!(reasons(4).contains(&"operator-excluded"));
        assert!(reasons(17).contains(&"exchange-mailbox"));
        assert!(reasons(13).contains(&"no-address"));
    }

    #[tokio::test]
    async fn a_listed_wave_in_chunks_names_duplicates_in_list_order() {
        let (_dir, store) = temp_store().await;
        let snapshot = snapshot(&store).await;
        // Listed out of id order: the duplicate findings name the others as the list does.
        let listed: Vec<UserSnapshot> = snapshot
            .iter()
            .rev()
            .filter(|u| *u.id.as_uuid() != Uuid::from_u128(20))
            .cloned()
            .collect();
        let wave = wave(Roster::listed(listed.clone()));
        let (stored, tally, hash) = plan_streamed(&store, &wave, None).await.unwrap();
        let (expected, expected_hash) = plan_at_once(&store, &listed, &wave).await;
        assert_eq!(hash, expected_hash);
        assert_eq!(stored_plan(&store, stored.id).await, sorted(expected));
        assert_eq!(tally.users, listed.len());
        let shared = stored_plan(&store, stored.id).await;
        let duplicate = shared
            .iter()
            .find(|m| m.user_id == id(7))
            .and_then(|m| {
                m.findings
                    .iter()
                    .find(|f| f.reason.code() == "duplicate-in-wave")
            })
            .unwrap();
        assert_eq!(
            duplicate.detail,
            format!(
                "shared1@fabrikam.com also chosen for {}, {}",
                id(49),
                id(28)
            )
        );
    }

    #[tokio::test]
    async fn a_re_plan_in_chunks_counts_what_changed() {
        let (_dir, store) = temp_store().await;
        let users = snapshot(&store).await;
        let (first, _, _) = plan_streamed(&store, &wave(Roster::Snapshot), None)
            .await
            .unwrap();
        let before = stored_plan(&store, first.id).await;

        // A new discovery: two users gone, one new, one with a new address.
        let at = datetime!(2026-11-22 08:00 UTC);
        let mut now: Vec<UserSnapshot> = users[..58].to_vec();
        now[2].other_mails = vec!["new3@adatum.com".into()];
        now.push(user(70));
        let discovery = store
            .begin_discovery(&serde_json::json!({}), at)
            .await
            .unwrap();
        store.store_user_page(discovery, &now).await.unwrap();
        assert_eq!(store.retire_unseen_users(discovery, at).await.unwrap(), 2);

        let wave = wave(Roster::Snapshot);
        let (second, tally, hash) = plan_streamed(&store, &wave, Some(&first)).await.unwrap();
        now.sort_by_key(|u| u.id);
        let (expected, expected_hash) = plan_at_once(&store, &now, &wave).await;
        assert_eq!(second.id, first.id);
        assert_eq!(hash, expected_hash);
        let after = stored_plan(&store, second.id).await;
        assert_eq!(after, sorted(expected));

        let old: HashMap<UserId, &PlannedMember> = before.iter().map(|m| (m.user_id, m)).collect();
        let changed = after
            .iter()
            .filter(|m| {
                old.get(&m.user_id).is_some_and(|o| {
                    o.decision != m.decision || o.chosen_address != m.chosen_address
                })
            })
            .count();
        assert_eq!(
            (tally.previous, tally.added, tally.removed, tally.changed),
            (60, 1, 2, changed)
        );
        assert!(changed >= 1, "user 3's address changed");
    }

    #[tokio::test]
    async fn another_process_storing_users_during_the_first_pass_stops_the_plan() {
        let (_dir, store) = temp_store().await;
        snapshot(&store).await;
        let wave = wave(Roster::Snapshot);
        let mut snapshot = store.read_snapshot().await.unwrap();
        // Another process (another connection) moves user 5 onto an address user 61 has.
        let other = Store::open(store.path()).await.unwrap();
        let mut moved = user(5);
        moved.mail = Some("alias12@fabrikam.com".into());
        other.store_users(&[moved, user(61)]).await.unwrap();
        other.close().await;

        let err = test_first_pass(&store, &mut snapshot, &wave)
            .await
            .err()
            .expect("the plan stops");
        assert!(format!("{err:#}").contains("changed while"), "{err:#}");
    }

    #[tokio::test]
    async fn users_stored_between_the_passes_wait_for_the_next_plan() {
        let (_dir, store) = temp_store().await;
        let users = snapshot(&store).await;
        let wave = wave(Roster::Snapshot);
        let (tenant, policy, findings) = (tenant(), policy(), wave_findings());
        let mut snapshot = store.read_snapshot().await.unwrap();
        let first = test_first_pass(&store, &mut snapshot, &wave).await.unwrap();
        // A discovery stores a changed user and a new one between the passes.
        let mut changed = user(30);
        changed.other_mails = vec!["moved@adatum.com".into()];
        store.store_users(&[changed, user(61)]).await.unwrap();

        let decider = Decider {
            wave: &wave,
            first: &first,
            tenant: &tenant,
            policy: &policy,
            wave_findings: &findings,
        };
        let (stored, tally, hash) =
            store_plan(&store, snapshot, None, &new_wave("all"), &decider, CHUNK)
                .await
                .unwrap();
        let (expected, expected_hash) = plan_at_once(&store, &users, &wave).await;
        assert_eq!(tally.users, 60, "the users of the moment the plan began");
        assert_eq!(stored_plan(&store, stored.id).await, sorted(expected));
        assert_eq!(hash, expected_hash);
    }
}
