//! The two passes over a wave, so that memory is bounded by a chunk of users rather than the
//! wave (docs/performance.md). The first reads only what the address choice needs, in the
//! order the snapshot is stored, and gathers what depends on the whole wave: the chosen
//! addresses' other owners, the addresses chosen twice, the domains whose realms to ask. The
//! second reads the users in chunks in id order, decides them for good and stores each chunk
//! in the plan's transaction, hashing the plan as it goes. Both passes read the snapshot in
//! one read transaction ([`SnapshotRead`]), so they see the same users; the reads go on while
//! the plan's transaction writes. The address index is read on the writing connection: if
//! another process commits before the first pass is over, the plan stops.
//!
//! This module owns the order of the work (what is read when, which owners are looked up,
//! chunking and yielding); it must not decide a user itself (that is
//! [`decision::decide`]'s) nor know which users a selection names
//! (the command hands it a [`Roster`]).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::time::Instant;

use time::OffsetDateTime;
use tokio::sync::mpsc;

use super::decision::{self, Basis, StoredOwners, as_collisions, planned_member};
use super::tally::Tally;
use super::{Doing as _, Error};
use crate::domain::{UserId, UserSnapshot};
use crate::rules::address::{self, AddressInputs};
use crate::rules::{
    self, Candidate, DomainSet, Evaluation, Finding, PlanHasher, Policy, TenantView,
};
use crate::store::{
    AddressFields, NewWave, PlanPart, PlanTransaction, PlannedMember, SnapshotRead,
    StoragePosition, Store, Wave,
};

/// Users read, decided and stored at a time in the second pass: memory holds one chunk of
/// snapshots, whatever the wave's size.
pub const USERS_PER_CHUNK: usize = 5_000;

/// Users decided before the store's next statement gets its turn (about a millisecond).
const USERS_BETWEEN_YIELDS: usize = 200;

/// A wave's users with what the operator said about them.
#[derive(Debug)]
pub struct WaveUsers {
    pub users: Roster,
    /// Addresses the wave list gives for its users.
    pub overrides: HashMap<UserId, String>,
    /// Users the operator excluded, with why.
    pub excluded: HashMap<UserId, String>,
    /// Other waves that still plan to convert the user.
    pub other_waves: HashMap<UserId, Vec<String>>,
    /// Other waves (or `invite`s) in which this tool invited the user or is settling its
    /// invitation, as `<wave> (<state>)`: read from the store before the passes, so the rules
    /// stay pure and a snapshot older than those runs cannot make the user a candidate again.
    pub converted: HashMap<UserId, Vec<String>>,
}

/// A wave's users, as both passes see them: in ascending id order.
#[derive(Debug)]
pub enum Roster {
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
    pub fn listed(users: Vec<UserSnapshot>) -> Self {
        let mut numbered: Vec<(usize, UserSnapshot)> = users.into_iter().enumerate().collect();
        numbered.sort_by_key(|(_, user)| user.id);
        let (places, users) = numbered.into_iter().unzip();
        Self::Listed { users, places }
    }
}

/// What the first pass learns about the wave as a whole, for the second.
#[derive(Debug)]
pub struct FirstPass {
    book: StoredOwners,
    /// Users whose address other users of the wave chose too: the lower-cased address and
    /// those others, in the wave's order.
    duplicates: HashMap<UserId, (String, Vec<UserId>)>,
    /// How many users the wave has.
    users: u64,
}

impl FirstPass {
    /// How many users the wave has.
    pub fn users(&self) -> u64 {
        self.users
    }
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
pub async fn first_pass<S: BuildHasher>(
    store: &Store,
    snapshot: &mut SnapshotRead,
    users: &Roster,
    overrides: &HashMap<UserId, String, S>,
    verified: &DomainSet,
    policy: &Policy,
) -> Result<(FirstPass, Vec<String>), Error> {
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
            Some(shared.doing("reading the stored addresses")?)
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

    let duplicates =
        rules::duplicates_in_wave(&chosen_more_than_once(&chosen), |c| &c.address, |c| c.user);
    let book = owners_of(store, &chosen, shared.as_ref()).await?;
    drop(chosen);
    // The owners were read on the writing connection, the users in the snapshot: they agree
    // unless another process stored something in between.
    if !store.agrees_with(snapshot).await? {
        return Err(Error::SnapshotChanged);
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

/// Calls `f` with the address fields of every user of the snapshot that is not retired, in
/// the order they are stored, a chunk read at a time: each chunk is taken apart while the
/// store reads the next.
async fn for_each_address_fields(
    snapshot: &mut SnapshotRead,
    mut f: impl FnMut(AddressFields),
) -> Result<(), Error> {
    let reading = "reading the stored users";
    let mut read = snapshot
        .active_address_fields(StoragePosition::default(), USERS_PER_CHUNK)
        .await
        .doing(reading)?;
    while let Some((part, after)) = read {
        // Polled in this order, so the store has its statement before the part is taken apart.
        let (next, fields) = futures_util::future::join(
            snapshot.active_address_fields(after, USERS_PER_CHUNK),
            async {
                part.fields()
                    .map(|fields| fields.into_iter().for_each(&mut f))
            },
        )
        .await;
        fields.doing(reading)?;
        read = next.doing(reading)?;
    }
    Ok(())
}

/// The entries of the addresses chosen more than once, by address and each address's
/// choosers in wave order. Counted rather than found by sorting every entry: almost every
/// address of a wave is chosen once, and sorting a million of them cost more than counting.
fn chosen_more_than_once(chosen: &[Chosen]) -> Vec<&Chosen> {
    let mut choosers: HashMap<&str, u32, foldhash::fast::RandomState> =
        HashMap::with_capacity_and_hasher(chosen.len(), foldhash::fast::RandomState::default());
    for one in chosen {
        *choosers.entry(&one.address).or_default() += 1;
    }
    let mut repeated: Vec<&Chosen> = chosen
        .iter()
        .filter(|one| choosers[&*one.address] > 1)
        .collect();
    repeated
        .sort_unstable_by(|a, b| (&a.address, a.place, a.user).cmp(&(&b.address, b.place, b.user)));
    repeated
}

/// The stored owners of the chosen addresses that some object other than the user choosing
/// them answers to. `shared` (the addresses of two objects or more) only for users of the
/// active snapshot, whose own addresses are in the index.
async fn owners_of(
    store: &Store,
    chosen: &[Chosen],
    shared: Option<&HashSet<String, foldhash::fast::RandomState>>,
) -> Result<StoredOwners, crate::store::Error> {
    // A user's own address that no other object has is nobody else's: with the addresses of
    // more than one object at hand, only the others are worth a look-up.
    let (mut colliding, mut to_look_up): (Vec<&str>, Vec<&Chosen>) = match shared {
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
    // In address order, the index is read in order.
    to_look_up.sort_unstable_by(|a, b| (&a.address, a.user).cmp(&(&b.address, b.user)));
    let pairs: Vec<(&str, UserId)> = to_look_up.iter().map(|c| (&*c.address, c.user)).collect();
    let looked_up = store.addresses_owned_by_others(&pairs).await?;
    colliding.extend(looked_up.iter().map(String::as_str));
    colliding.sort_unstable();
    colliding.dedup();
    Ok(as_collisions(
        store.address_owners_of_many(&colliding).await?,
    ))
}

/// What deciding a wave's user takes, beyond the user.
#[derive(Debug)]
pub struct Decider<'a> {
    wave: &'a WaveUsers,
    first: &'a FirstPass,
    tenant: &'a TenantView,
    policy: &'a Policy,
    wave_findings: &'a [Finding],
}

impl<'a> Decider<'a> {
    /// Decides `wave`'s users with what its first pass found, on `basis`, adding the wave's
    /// own findings to each.
    pub fn new(
        wave: &'a WaveUsers,
        first: &'a FirstPass,
        basis: &'a Basis,
        wave_findings: &'a [Finding],
    ) -> Self {
        Self {
            wave,
            first,
            tenant: &basis.tenant,
            policy: &basis.policy,
            wave_findings,
        }
    }

    /// The user's verdict, with what the wave as a whole adds to it.
    fn decide(&self, user: &UserSnapshot) -> Evaluation {
        let wave = self.wave;
        let candidate = Candidate {
            user,
            override_address: wave.overrides.get(&user.id).map(String::as_str),
            excluded: wave.excluded.get(&user.id).map(String::as_str),
            other_waves: wave.other_waves.get(&user.id).map_or(&[], Vec::as_slice),
        };
        let duplicate = self
            .first
            .duplicates
            .get(&user.id)
            .map(|(address, others)| (address.as_str(), others.as_slice()));
        decision::decide(
            candidate,
            self.tenant,
            self.policy,
            &self.first.book,
            duplicate,
            wave.converted.get(&user.id).map_or(&[], Vec::as_slice),
            self.wave_findings,
        )
    }
}

/// Decides the wave's users and stores the plan in one transaction. Without an `existing`
/// wave, `wave` is created with its plan (a failure leaves no wave without a plan); with one,
/// its cap and settings replace the existing wave's. A wave of the whole snapshot is read
/// from `snapshot`, which the first pass read too. Returns the stored wave, the summary's
/// counts and the plan hash.
pub async fn store_plan(
    store: &Store,
    mut snapshot: SnapshotRead,
    existing: Option<&Wave>,
    wave: &NewWave,
    decider: &Decider<'_>,
    chunk: usize,
) -> Result<(Wave, Tally, String), Error> {
    let now = OffsetDateTime::now_utc();
    let mut plan = if let Some(existing) = existing {
        store.begin_replan(existing, now).await
    } else {
        store.begin_plan(wave, now).await
    }
    .doing("storing the plan")?;
    let (mut tally, hash) = decide_and_store(&mut plan, &mut snapshot, decider, chunk).await?;
    // Read to the end; no need to keep the write-ahead log for it.
    snapshot.end().await.doing("reading the stored users")?;
    let started = Instant::now();
    let (stored, removed) = plan
        .commit(wave.cap, &wave.settings, &hash)
        .await
        .doing("storing the plan")?;
    tracing::debug!(elapsed = ?started.elapsed(), "plan committed");
    tally.previous += removed;
    tally.removed += removed;
    Ok((stored, tally, hash))
}

/// The second pass: decides the users chunk by chunk and stores each chunk in the plan's
/// transaction. Returns the summary's counts and the plan hash.
///
/// Three stages hand each other a chunk at a time, each waiting only when the next has a
/// chunk waiting already: the store reads the next users on its reading connection's thread
/// (taken apart here), the rules decide a chunk and encode it for the store, and the store
/// writes the chunk decided before on its writing connection's thread. Handing over rather
/// than going in step, a stage that finishes its chunk first goes on with the next one
/// instead of waiting for the slowest of the three.
async fn decide_and_store(
    plan: &mut PlanTransaction,
    snapshot: &mut SnapshotRead,
    decider: &Decider<'_>,
    chunk: usize,
) -> Result<(Tally, String), Error> {
    let started = Instant::now();
    let (users_read, users_to_decide) = mpsc::channel(1);
    let (chunks_decided, chunks_to_write) = mpsc::channel(1);
    // Polled in this order, so the store has its statements before the rules start.
    let ((), (mut tally, hash), changes) = futures_util::future::try_join3(
        read_chunks(snapshot, &decider.wave.users, chunk, users_read),
        decide_chunks(decider, users_to_decide, chunks_decided),
        write_chunks(plan, chunks_to_write),
    )
    .await?;
    tally.add_changes(&changes);
    tracing::debug!(
        users = tally.users,
        elapsed = ?started.elapsed(),
        "second pass: users decided and stored"
    );
    // One snapshot, read twice: the same users, unless the store is broken.
    if tally.users as u64 != decider.first.users {
        return Err(Error::PassesDisagree {
            first: decider.first.users,
            second: tally.users,
        });
    }
    Ok((tally, hash))
}

/// Hands the wave's users to the rules a chunk at a time, in id order: read from the snapshot
/// and taken apart for the whole snapshot, taken from memory for a listed wave.
async fn read_chunks<'a>(
    snapshot: &mut SnapshotRead,
    roster: &'a Roster,
    chunk: usize,
    to_decide: mpsc::Sender<Cow<'a, [UserSnapshot]>>,
) -> Result<(), Error> {
    match roster {
        Roster::Snapshot => {
            let mut after = None;
            loop {
                let users = snapshot
                    .rule_inputs_after(after, chunk)
                    .await
                    .and_then(|part| part.users())
                    .doing("reading the stored users")?;
                let Some(last) = users.last() else {
                    return Ok(());
                };
                after = Some(last.id);
                // Closed only once another stage has stopped, with the error to report.
                if to_decide.send(Cow::Owned(users)).await.is_err() {
                    return Ok(());
                }
            }
        }
        Roster::Listed { users, .. } => {
            for part in users.chunks(chunk) {
                if to_decide.send(Cow::Borrowed(part)).await.is_err() {
                    return Ok(());
                }
            }
            Ok(())
        }
    }
}

/// Decides each chunk handed over and hands it, with the same encoded for the store, to be
/// written. Returns the summary's counts (what changed from a previous plan aside) and the
/// plan hash.
async fn decide_chunks(
    decider: &Decider<'_>,
    mut to_decide: mpsc::Receiver<Cow<'_, [UserSnapshot]>>,
    to_write: mpsc::Sender<(Vec<PlannedMember>, PlanPart)>,
) -> Result<(Tally, String), Error> {
    let mut pass = SecondPass {
        decider,
        tally: Tally::default(),
        hasher: PlanHasher::new(),
    };
    while let Some(users) = to_decide.recv().await {
        let part = pass.decide_part(&users).await;
        // Closed only once another stage has stopped, with the error to report.
        if to_write.send(part).await.is_err() {
            break;
        }
    }
    Ok((pass.tally, pass.hasher.finish()))
}

/// Writes each decided chunk in the plan's transaction, in the order handed over. Returns
/// what the writes changed from the wave's previous plan, as a tally of that alone.
async fn write_chunks(
    plan: &mut PlanTransaction,
    mut to_write: mpsc::Receiver<(Vec<PlannedMember>, PlanPart)>,
) -> Result<Tally, Error> {
    let mut changes = Tally::default();
    while let Some((members, part)) = to_write.recv().await {
        let replaced = plan.write_part(part).await.doing("storing the plan")?;
        changes.compare(&members, &replaced);
    }
    Ok(changes)
}

/// What the second pass accumulates as it decides the users, in id order.
struct SecondPass<'a> {
    decider: &'a Decider<'a>,
    tally: Tally,
    hasher: PlanHasher,
}

impl SecondPass<'_> {
    /// Decides a part of the wave, letting the other stages go on in between (see
    /// [`decide_and_store`]); returns its members, and the same encoded for the store.
    async fn decide_part(&mut self, users: &[UserSnapshot]) -> (Vec<PlannedMember>, PlanPart) {
        let mut members = Vec::with_capacity(users.len());
        for some in users.chunks(USERS_BETWEEN_YIELDS) {
            members.extend(some.iter().map(|user| self.decide(user)));
            tokio::task::yield_now().await;
        }
        let part = PlanPart::encode(&members);
        (members, part)
    }

    /// Decides one user, counts and hashes the verdict, and returns it as a member to store.
    fn decide(&mut self, user: &UserSnapshot) -> PlannedMember {
        let eval = self.decider.decide(user);
        self.hasher.push(&eval);
        self.tally.count(&eval);
        planned_member(eval, user)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;
    use crate::domain::{AssignedPlan, Decision, OnPremisesProperties, RealmKind, WaveId};
    use crate::rules::WaveSettings;
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
            converted_to_internal_at: None,
            on_premises: OnPremisesProperties::default(),
            assigned_plans: vec![],
            assigned_licenses: vec![],
            identities: vec![],
            profile: crate::domain::UserProfile::default(),
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
            converted: HashMap::new(),
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
    ) -> Result<FirstPass, Error> {
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
    ) -> Result<(Wave, Tally, String), Error> {
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
        let addresses: Vec<String> = evaluate_all(&StoredOwners::default())
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
            tally.domains.iter().cloned().collect::<Vec<_>>(),
            store.wave_address_domains(stored.id).await.unwrap(),
            "the chosen addresses' domains, as stored"
        );
        assert!(
            tally.domains.contains("fabrikam.com"),
            "user 8's FABRIKAM.com"
        );
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
            .expect_err("the plan stops");
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
