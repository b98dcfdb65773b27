//! Waves, their stored plans, and each member's state transitions.

use std::collections::HashMap;

use sqlx::{QueryBuilder, Sqlite};
use time::OffsetDateTime;

use super::events::insert_event;
use super::{
    Error, NewEvent, Result, Store, parse_code, parse_json, parse_optional_timestamp,
    parse_timestamp, timestamp, to_json,
};
use crate::domain::{
    Decision, FailureKind, InvitationId, OnPremisesProperties, UserId, UserState, WaveId,
};
use crate::rules::{AddressOrigin, Finding};

/// Members per multi-row insert: 12 parameters each, well under SQLite's limit.
const MEMBERS_PER_STATEMENT: usize = 500;
/// Members inserted per statement, as one JSON document.
const MEMBERS_PER_DOCUMENT: usize = 5_000;

/// What `plan` records when it creates a wave.
#[derive(Clone, Debug, PartialEq)]
pub struct NewWave {
    pub name: String,
    /// How the members were selected (CSV, group, filter, all), as JSON.
    pub selector: serde_json::Value,
    /// At most this many members; planning more fails.
    pub cap: Option<u32>,
    /// The invitation settings and rule modes the plan was made with, as JSON.
    pub settings: serde_json::Value,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Wave {
    pub id: WaveId,
    pub name: String,
    pub selector: serde_json::Value,
    pub cap: Option<u32>,
    pub settings: serde_json::Value,
    pub plan_hash: Option<String>,
    pub created_at: OffsetDateTime,
    pub planned_at: Option<OffsetDateTime>,
}

/// One user's decision in a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedMember {
    pub user_id: UserId,
    pub decision: Decision,
    /// Blockers, warnings and information, with details; their codes are stored apart too.
    pub findings: Vec<Finding>,
    pub chosen_address: Option<String>,
    pub address_origin: Option<AddressOrigin>,
    /// Whether `run` sets `mail` to the chosen address before inviting.
    pub set_mail: bool,
    /// A digest of the rule inputs at plan time; `run` skips the user if it changed.
    pub snapshot_fingerprint: String,
}

/// A member as stored: the plan plus its progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaveMember {
    pub plan: PlannedMember,
    pub state: UserState,
    pub failure_kind: Option<FailureKind>,
    pub attempts: u32,
    pub last_error_code: Option<String>,
    pub last_error_message: Option<String>,
    pub invitation_id: Option<InvitationId>,
    /// Only kept in own-distribution mode; sensitive.
    pub invite_redeem_url: Option<String>,
    pub planned_at: OffsetDateTime,
    pub state_changed_at: OffsetDateTime,
    pub invited_at: Option<OffsetDateTime>,
    pub accepted_at: Option<OffsetDateTime>,
    pub scrambled_at: Option<OffsetDateTime>,
    pub scrambled_on: Option<String>,
    /// The user's fingerprint right after `run` set its `mail`: a resumed run's drift check
    /// accepts it as well as the plan's.
    pub mail_set_fingerprint: Option<String>,
    /// Graph's `externalUserStateChangeDateTime` as last read.
    pub external_state_changed_at: Option<OffsetDateTime>,
}

/// A compare-and-set state change: it applies only if the member is still in `from`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub from: UserState,
    pub to: UserState,
    pub at: OffsetDateTime,
    /// Required when `to` is [`UserState::Failed`]: kind, the service's code, its message.
    pub failure: Option<(FailureKind, Option<String>, String)>,
    /// Why a member went to a state other than `failed` (e.g. what drifted): code, message.
    pub note: Option<(String, String)>,
    pub invitation_id: Option<InvitationId>,
    pub invite_redeem_url: Option<String>,
    /// The domain controller that took a password scramble.
    pub scrambled_on: Option<String>,
    /// Graph's `externalUserStateChangeDateTime`, when the change was read from Graph.
    pub external_state_changed_at: Option<OffsetDateTime>,
}

impl Transition {
    pub fn new(from: UserState, to: UserState, at: OffsetDateTime) -> Self {
        Self {
            from,
            to,
            at,
            failure: None,
            note: None,
            invitation_id: None,
            invite_redeem_url: None,
            scrambled_on: None,
            external_state_changed_at: None,
        }
    }
}

type WaveRow = (
    i64,
    String,
    String,
    Option<i64>,
    String,
    Option<String>,
    String,
    Option<String>,
);

fn wave_from_row(row: WaveRow) -> Result<Wave> {
    let (id, name, selector, cap, settings, plan_hash, created_at, planned_at) = row;
    Ok(Wave {
        id: WaveId(id),
        name,
        selector: parse_json("waves.selector", &selector)?,
        cap: cap.and_then(|c| u32::try_from(c).ok()),
        settings: parse_json("waves.settings", &settings)?,
        plan_hash,
        created_at: parse_timestamp("waves.created_at", &created_at)?,
        planned_at: parse_optional_timestamp("waves.planned_at", planned_at.as_deref())?,
    })
}

#[derive(sqlx::FromRow)]
struct MemberRow {
    user_id: String,
    decision: String,
    findings: String,
    chosen_address: Option<String>,
    address_origin: Option<String>,
    set_mail: bool,
    snapshot_fingerprint: String,
    state: String,
    failure_kind: Option<String>,
    attempts: i64,
    last_error_code: Option<String>,
    last_error_message: Option<String>,
    invitation_id: Option<String>,
    invite_redeem_url: Option<String>,
    planned_at: String,
    state_changed_at: String,
    invited_at: Option<String>,
    accepted_at: Option<String>,
    scrambled_at: Option<String>,
    scrambled_on: Option<String>,
    mail_set_fingerprint: Option<String>,
    external_state_changed_at: Option<String>,
}

/// How a member's user is named and whether it is synced, from its snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberNames {
    pub user_principal_name: String,
    pub display_name: Option<String>,
    pub synced: bool,
}

#[derive(sqlx::FromRow)]
struct NamedMemberRow {
    #[sqlx(flatten)]
    member: MemberRow,
    upn: Option<String>,
    name: Option<String>,
    synced: Option<bool>,
}

#[derive(sqlx::FromRow)]
struct OnPremisesMemberRow {
    #[sqlx(flatten)]
    named: NamedMemberRow,
    has_snapshot: bool,
    immutable_id: Option<String>,
    sam_account_name: Option<String>,
    distinguished_name: Option<String>,
    domain_name: Option<String>,
    on_premises_upn: Option<String>,
}

impl TryFrom<MemberRow> for WaveMember {
    type Error = Error;

    fn try_from(row: MemberRow) -> Result<Self> {
        Ok(Self {
            plan: PlannedMember {
                user_id: parse_code("wave_members.user_id", &row.user_id)?,
                decision: parse_code("wave_members.decision", &row.decision)?,
                findings: parse_json("wave_members.findings", &row.findings)?,
                chosen_address: row.chosen_address,
                address_origin: row
                    .address_origin
                    .map(|o| parse_json("wave_members.address_origin", &format!("\"{o}\"")))
                    .transpose()?,
                set_mail: row.set_mail,
                snapshot_fingerprint: row.snapshot_fingerprint,
            },
            state: parse_code("wave_members.state", &row.state)?,
            failure_kind: row
                .failure_kind
                .as_deref()
                .map(|k| parse_code("wave_members.failure_kind", k))
                .transpose()?,
            attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
            last_error_code: row.last_error_code,
            last_error_message: row.last_error_message,
            invitation_id: row.invitation_id.map(InvitationId),
            invite_redeem_url: row.invite_redeem_url,
            planned_at: parse_timestamp("wave_members.planned_at", &row.planned_at)?,
            state_changed_at: parse_timestamp(
                "wave_members.state_changed_at",
                &row.state_changed_at,
            )?,
            invited_at: parse_optional_timestamp(
                "wave_members.invited_at",
                row.invited_at.as_deref(),
            )?,
            accepted_at: parse_optional_timestamp(
                "wave_members.accepted_at",
                row.accepted_at.as_deref(),
            )?,
            scrambled_at: parse_optional_timestamp(
                "wave_members.scrambled_at",
                row.scrambled_at.as_deref(),
            )?,
            scrambled_on: row.scrambled_on,
            mail_set_fingerprint: row.mail_set_fingerprint,
            external_state_changed_at: parse_optional_timestamp(
                "wave_members.external_state_changed_at",
                row.external_state_changed_at.as_deref(),
            )?,
        })
    }
}

impl Store {
    /// Creates a wave; its name must be new (names compare case-insensitively).
    #[tracing::instrument(skip_all, fields(wave = %wave.name), err)]
    pub async fn create_wave(&self, wave: &NewWave, at: OffsetDateTime) -> Result<Wave> {
        let mut tx = self.pool.begin().await?;
        insert_wave(&mut tx, wave, at).await?;
        tx.commit().await?;
        self.stored_wave(&wave.name).await
    }

    /// Creates a wave and stores its first plan in one transaction: a failure leaves no wave
    /// without a plan behind.
    #[tracing::instrument(skip_all, fields(wave = %wave.name, members = members.len()), err)]
    pub async fn create_planned_wave(
        &self,
        wave: &NewWave,
        members: &[PlannedMember],
        plan_hash: &str,
        at: OffsetDateTime,
    ) -> Result<Wave> {
        let mut plan = self.begin_plan(wave, at).await?;
        plan.write(&in_user_order(members)).await?;
        Ok(plan.commit(wave.cap, &wave.settings, plan_hash).await?.0)
    }

    async fn stored_wave(&self, name: &str) -> Result<Wave> {
        self.wave_by_name(name)
            .await?
            .ok_or_else(|| Error::Corrupt {
                column: "waves.name",
                message: format!("wave `{name}` vanished after insert"),
            })
    }

    pub async fn wave_by_name(&self, name: &str) -> Result<Option<Wave>> {
        sqlx::query_as::<_, WaveRow>(
            "SELECT id, name, selector, cap, settings, plan_hash, created_at, planned_at
             FROM waves WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .map(wave_from_row)
        .transpose()
    }

    pub async fn waves(&self) -> Result<Vec<Wave>> {
        sqlx::query_as::<_, WaveRow>(
            "SELECT id, name, selector, cap, settings, plan_hash, created_at, planned_at
             FROM waves ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(wave_from_row)
        .collect()
    }

    /// Stores a wave's plan, replacing the previous one in one transaction, together with the
    /// wave's cap and settings as given in `wave`. Refused once any member has started
    /// converting: a started wave keeps the plan it runs.
    #[tracing::instrument(skip_all, fields(wave = %wave.name, members = members.len()), err)]
    pub async fn replace_plan(
        &self,
        wave: &Wave,
        members: &[PlannedMember],
        plan_hash: &str,
        at: OffsetDateTime,
    ) -> Result<()> {
        let mut plan = self.begin_replan(wave, at).await?;
        plan.write(&in_user_order(members)).await?;
        plan.commit(wave.cap, &wave.settings, plan_hash).await?;
        Ok(())
    }

    /// A wave's members, ordered by user id.
    pub async fn members(&self, wave: WaveId) -> Result<Vec<WaveMember>> {
        sqlx::query_as::<_, MemberRow>(
            "SELECT * FROM wave_members WHERE wave_id = ? ORDER BY user_id",
        )
        .bind(wave.0)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(WaveMember::try_from)
        .collect()
    }

    /// A wave's members with their users' names, in one query (for reports).
    pub async fn members_with_names(&self, wave: WaveId) -> Result<Vec<(WaveMember, MemberNames)>> {
        sqlx::query_as::<_, NamedMemberRow>(
            "SELECT m.*, u.user_principal_name AS upn, u.display_name AS name,
                    u.on_premises_sync_enabled AS synced
             FROM wave_members m LEFT JOIN user_snapshots u ON u.id = m.user_id
             WHERE m.wave_id = ? ORDER BY m.user_id",
        )
        .bind(wave.0)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(named_member)
        .collect()
    }

    pub async fn member(&self, wave: WaveId, user: UserId) -> Result<Option<WaveMember>> {
        sqlx::query_as::<_, MemberRow>(
            "SELECT * FROM wave_members WHERE wave_id = ? AND user_id = ?",
        )
        .bind(wave.0)
        .bind(user.to_string())
        .fetch_optional(&self.pool)
        .await?
        .map(WaveMember::try_from)
        .transpose()
    }

    /// For every user some wave other than `except` still plans to convert (ready, or in the
    /// middle of it), the names of those waves.
    pub async fn pending_in_other_waves(
        &self,
        except: Option<WaveId>,
    ) -> Result<HashMap<UserId, Vec<String>>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT m.user_id, w.name FROM wave_members m JOIN waves w ON w.id = m.wave_id
             WHERE m.wave_id IS NOT ? AND m.state IN ('planned', 'ready', 'inviting')
             ORDER BY w.name",
        )
        .bind(except.map(|w| w.0))
        .fetch_all(&self.pool)
        .await?;
        let mut waves: HashMap<UserId, Vec<String>> = HashMap::new();
        for (user, wave) in rows {
            waves
                .entry(parse_code("wave_members.user_id", &user)?)
                .or_default()
                .push(wave);
        }
        Ok(waves)
    }

    /// How many members are in each state.
    pub async fn state_counts(&self, wave: WaveId) -> Result<Vec<(UserState, u64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT state, COUNT(*) FROM wave_members WHERE wave_id = ? GROUP BY state ORDER BY state",
        )
        .bind(wave.0)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(state, n)| Ok((parse_code("wave_members.state", &state)?, n.unsigned_abs())))
            .collect()
    }

    /// Moves a member from `transition.from` to `transition.to`, or fails without change if
    /// the member is not in `from` (another process got there first, or the caller is stale).
    /// Entering `inviting` counts an attempt.
    pub async fn transition(
        &self,
        wave: WaveId,
        user: UserId,
        transition: &Transition,
    ) -> Result<()> {
        self.record(wave, user, transition, None).await
    }

    /// [`Store::transition`] and, in the same database transaction, an event for the log: the
    /// state and its record are written together or not at all.
    #[tracing::instrument(skip_all, fields(wave = %wave, user = %user, to = %transition.to), err)]
    pub async fn record(
        &self,
        wave: WaveId,
        user: UserId,
        transition: &Transition,
        event: Option<&NewEvent>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let updated = apply_transition(&mut tx, wave, user, transition).await?;
        if updated {
            if let Some(event) = event {
                insert_event(&mut tx, event, transition.at).await?;
            }
            tx.commit().await?;
            return Ok(());
        }
        drop(tx);
        match self.member(wave, user).await? {
            None => Err(Error::NotAMember {
                wave: wave.to_string(),
                user: user.to_string(),
            }),
            Some(member) => Err(Error::StateConflict {
                wave: wave.to_string(),
                user: user.to_string(),
                expected: transition.from.to_string(),
                actual: member.state.to_string(),
            }),
        }
    }

    /// A wave's members in any of `states`, with names, ordered by user id.
    pub async fn members_in_states(
        &self,
        wave: WaveId,
        states: &[UserState],
    ) -> Result<Vec<(WaveMember, MemberNames)>> {
        self.members_in_states_after(wave, states, None, usize::MAX)
            .await
    }

    /// Up to `limit` of a wave's members in any of `states` whose user id sorts after `after`,
    /// with names, in user order: a page of a keyset walk through a large wave.
    pub async fn members_in_states_after(
        &self,
        wave: WaveId,
        states: &[UserState],
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<(WaveMember, MemberNames)>> {
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT m.*, u.user_principal_name AS upn, u.display_name AS name,
                    u.on_premises_sync_enabled AS synced
             FROM wave_members m LEFT JOIN user_snapshots u ON u.id = m.user_id
             WHERE m.wave_id = ",
        );
        query.push_bind(wave.0);
        if let Some(after) = after {
            query.push(" AND m.user_id > ").push_bind(after.to_string());
        }
        query.push(" AND m.state IN (");
        let mut list = query.separated(", ");
        for state in states {
            list.push_bind(state.code());
        }
        query
            .push(") ORDER BY m.user_id LIMIT ")
            .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
        query
            .build_query_as::<NamedMemberRow>()
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(named_member)
            .collect()
    }

    /// A wave's members with their names and their users' `onPremises*` properties (`None`
    /// without a snapshot), ordered by user id: what `scramble` selects from.
    pub async fn members_with_on_premises(
        &self,
        wave: WaveId,
    ) -> Result<Vec<(WaveMember, MemberNames, Option<OnPremisesProperties>)>> {
        sqlx::query_as::<_, OnPremisesMemberRow>(
            "SELECT m.*, u.user_principal_name AS upn, u.display_name AS name,
                    u.on_premises_sync_enabled AS synced, u.id IS NOT NULL AS has_snapshot,
                    u.on_premises_immutable_id AS immutable_id,
                    u.on_premises_sam_account_name AS sam_account_name,
                    u.on_premises_distinguished_name AS distinguished_name,
                    u.on_premises_domain_name AS domain_name,
                    u.on_premises_user_principal_name AS on_premises_upn
             FROM wave_members m LEFT JOIN user_snapshots u ON u.id = m.user_id
             WHERE m.wave_id = ? ORDER BY m.user_id",
        )
        .bind(wave.0)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|row| {
            let on_premises = row.has_snapshot.then_some(OnPremisesProperties {
                sync_enabled: row.named.synced,
                immutable_id: row.immutable_id,
                sam_account_name: row.sam_account_name,
                distinguished_name: row.distinguished_name,
                domain_name: row.domain_name,
                user_principal_name: row.on_premises_upn,
            });
            let (member, names) = named_member(row.named)?;
            Ok((member, names, on_premises))
        })
        .collect()
    }

    /// Remembers the user's fingerprint after `run` set its `mail` (see
    /// [`WaveMember::mail_set_fingerprint`]).
    pub async fn set_mail_fingerprint(
        &self,
        wave: WaveId,
        user: UserId,
        fingerprint: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE wave_members SET mail_set_fingerprint = ? WHERE wave_id = ? AND user_id = ?",
        )
        .bind(fingerprint)
        .bind(wave.0)
        .bind(user.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

fn named_member(row: NamedMemberRow) -> Result<(WaveMember, MemberNames)> {
    let names = MemberNames {
        user_principal_name: row.upn.unwrap_or_default(),
        display_name: row.name,
        synced: row.synced == Some(true),
    };
    Ok((WaveMember::try_from(row.member)?, names))
}

/// Applies a compare-and-set transition; `false` when the member is not in `from`.
async fn apply_transition(
    tx: &mut Tx,
    wave: WaveId,
    user: UserId,
    transition: &Transition,
) -> Result<bool> {
    let to = transition.to;
    let at = timestamp(transition.at);
    let (failure_kind, error_code, error_message) = match (&transition.failure, &transition.note) {
        (Some((kind, code, message)), _) => {
            (Some(kind.code()), code.as_deref(), Some(message.as_str()))
        }
        (None, Some((code, message))) => (None, Some(code.as_str()), Some(message.as_str())),
        (None, None) => (None, None, None),
    };
    let stamp = |state: UserState| (to == state).then(|| at.clone());
    let updated = sqlx::query(
        "UPDATE wave_members SET
            state = ?,
            state_changed_at = ?,
            failure_kind = ?,
            last_error_code = COALESCE(?, last_error_code),
            last_error_message = COALESCE(?, last_error_message),
            attempts = attempts + ?,
            invitation_id = COALESCE(?, invitation_id),
            invite_redeem_url = COALESCE(?, invite_redeem_url),
            invited_at = COALESCE(?, invited_at),
            accepted_at = COALESCE(?, accepted_at),
            scrambled_at = COALESCE(?, scrambled_at),
            scrambled_on = COALESCE(?, scrambled_on),
            external_state_changed_at = COALESCE(?, external_state_changed_at)
         WHERE wave_id = ? AND user_id = ? AND state = ?",
    )
    .bind(to.code())
    .bind(&at)
    .bind(failure_kind)
    .bind(error_code)
    .bind(error_message)
    .bind(i64::from(to == UserState::Inviting))
    .bind(transition.invitation_id.as_ref().map(|i| i.0.as_str()))
    .bind(transition.invite_redeem_url.as_deref())
    .bind(stamp(UserState::Invited))
    .bind(stamp(UserState::Accepted))
    .bind(stamp(UserState::Scrambled))
    .bind(transition.scrambled_on.as_deref())
    .bind(transition.external_state_changed_at.map(timestamp))
    .bind(wave.0)
    .bind(user.to_string())
    .bind(transition.from.code())
    .execute(&mut **tx)
    .await?;
    Ok(updated.rows_affected() == 1)
}

type Tx = sqlx::Transaction<'static, Sqlite>;

/// A plan being stored in parts, in one transaction: members are written as they are
/// decided, in ascending user order, so a planner holds one part of a large wave at a time.
/// Until [`commit`](Self::commit), nothing of it is visible; dropped, it is rolled back.
///
/// The transaction holds the store's writing connection: while it is open, the planner reads
/// the snapshot through a [`SnapshotRead`](super::SnapshotRead) and must not use the
/// [`Store`] itself (it would wait for the transaction).
#[derive(Debug)]
pub struct PlanTransaction {
    pub(super) tx: Tx,
    store: Store,
    wave: WaveId,
    name: String,
    /// The wave had a plan: its members are replaced range by range.
    replacing: bool,
    at: String,
    /// The last user written.
    last: Option<UserId>,
}

/// A member of the plan being replaced, as much as a re-plan's summary compares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviousDecision {
    pub user_id: UserId,
    pub decision: Decision,
    pub chosen_address: Option<String>,
}

/// What writing a part of a plan replaced of the previous plan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replaced {
    /// The previous decisions of the users just written, for those that had one.
    pub previous: Vec<PreviousDecision>,
    /// Previous members dropped: within the part's range of user ids but not in it.
    pub removed: u64,
}

impl Store {
    /// Starts storing the first plan of a new wave; the wave is created in the same
    /// transaction, so a failure leaves no wave without a plan behind.
    #[tracing::instrument(skip_all, fields(wave = %wave.name), err)]
    pub async fn begin_plan(&self, wave: &NewWave, at: OffsetDateTime) -> Result<PlanTransaction> {
        let mut tx = self.pool.begin().await?;
        let id = insert_wave(&mut tx, wave, at).await?;
        Ok(PlanTransaction::new(tx, self, id, &wave.name, false, at))
    }

    /// Starts replacing a wave's plan. Refused once any member has started converting: a
    /// started wave keeps the plan it runs.
    #[tracing::instrument(skip_all, fields(wave = %wave.name), err)]
    pub async fn begin_replan(&self, wave: &Wave, at: OffsetDateTime) -> Result<PlanTransaction> {
        let mut tx = self.pool.begin().await?;
        ensure_not_started(&mut tx, wave.id, &wave.name).await?;
        Ok(PlanTransaction::new(
            tx, self, wave.id, &wave.name, true, at,
        ))
    }
}

impl PlanTransaction {
    fn new(
        tx: Tx,
        store: &Store,
        wave: WaveId,
        name: &str,
        replacing: bool,
        at: OffsetDateTime,
    ) -> Self {
        Self {
            tx,
            store: store.clone(),
            wave,
            name: name.to_owned(),
            replacing,
            at: timestamp(at),
            last: None,
        }
    }

    /// Stores the next members, which must follow those already written in ascending user
    /// order, and drops the previous plan's members up to the last of them.
    #[tracing::instrument(skip_all, fields(wave = %self.name, members = members.len()), err)]
    pub async fn write(&mut self, members: &[PlannedMember]) -> Result<Replaced> {
        let (Some(first), Some(last)) = (members.first(), members.last()) else {
            return Ok(Replaced::default());
        };
        assert!(
            self.last.is_none_or(|before| before < first.user_id)
                && members.windows(2).all(|w| w[0].user_id <= w[1].user_id),
            "plan members are written in ascending user order"
        );
        let last = last.user_id;
        let replaced = if self.replacing {
            self.replace_until(members, last).await?
        } else {
            Replaced::default()
        };
        insert_members(&mut self.tx, self.wave, members, &self.at).await?;
        self.last = Some(last);
        Ok(replaced)
    }

    /// Drops the previous plan's members after the last one written and up to `until`,
    /// reading the decisions of those among `members` first.
    async fn replace_until(
        &mut self,
        members: &[PlannedMember],
        until: UserId,
    ) -> Result<Replaced> {
        let mut previous = Vec::new();
        for chunk in members.chunks(MEMBERS_PER_STATEMENT) {
            let mut query = QueryBuilder::<Sqlite>::new(
                "SELECT user_id, decision, chosen_address FROM wave_members WHERE wave_id = ",
            );
            query.push_bind(self.wave.0).push(" AND user_id IN (");
            let mut ids = query.separated(", ");
            for member in chunk {
                ids.push_bind(member.user_id.to_string());
            }
            query.push(") ORDER BY user_id");
            let rows: Vec<(String, String, Option<String>)> =
                query.build_query_as().fetch_all(&mut *self.tx).await?;
            for (user_id, decision, chosen_address) in rows {
                previous.push(PreviousDecision {
                    user_id: parse_code("wave_members.user_id", &user_id)?,
                    decision: parse_code("wave_members.decision", &decision)?,
                    chosen_address,
                });
            }
        }
        let dropped = self.drop_previous(Some(until)).await?;
        Ok(Replaced {
            removed: dropped.saturating_sub(previous.len() as u64),
            previous,
        })
    }

    /// Deletes the previous plan's members after the last one written (and up to `until`);
    /// returns how many.
    async fn drop_previous(&mut self, until: Option<UserId>) -> Result<u64> {
        // Every id sorts after the empty string; ids are stored lower-case, so text order is
        // `UserId` order.
        let after = self.last.map(|id| id.to_string()).unwrap_or_default();
        let deleted =
            match until {
                Some(until) => sqlx::query(
                    "DELETE FROM wave_members WHERE wave_id = ? AND user_id > ? AND user_id <= ?",
                )
                .bind(self.wave.0)
                .bind(after)
                .bind(until.to_string())
                .execute(&mut *self.tx)
                .await?,
                None => {
                    sqlx::query("DELETE FROM wave_members WHERE wave_id = ? AND user_id > ?")
                        .bind(self.wave.0)
                        .bind(after)
                        .execute(&mut *self.tx)
                        .await?
                }
            };
        Ok(deleted.rows_affected())
    }

    /// Drops what remains of the previous plan, records the plan's hash, cap and settings
    /// with the wave, and commits. Returns the wave and how many previous members were
    /// dropped at the end (after the last one written).
    #[tracing::instrument(skip_all, fields(wave = %self.name), err)]
    pub async fn commit(
        mut self,
        cap: Option<u32>,
        settings: &serde_json::Value,
        plan_hash: &str,
    ) -> Result<(Wave, u64)> {
        let removed = if self.replacing {
            self.drop_previous(None).await?
        } else {
            0
        };
        finish_plan(&mut self.tx, self.wave, cap, settings, plan_hash, &self.at).await?;
        self.tx.commit().await?;
        Ok((self.store.stored_wave(&self.name).await?, removed))
    }
}

/// Inserts a wave; its name must be new (names compare case-insensitively).
async fn insert_wave(tx: &mut Tx, wave: &NewWave, at: OffsetDateTime) -> Result<WaveId> {
    let result = sqlx::query(
        "INSERT INTO waves (name, selector, cap, settings, created_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&wave.name)
    .bind(wave.selector.to_string())
    .bind(wave.cap.map(i64::from))
    .bind(wave.settings.to_string())
    .bind(timestamp(at))
    .execute(&mut **tx)
    .await;
    match result {
        Ok(done) => Ok(WaveId(done.last_insert_rowid())),
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            Err(Error::WaveExists(wave.name.clone()))
        }
        Err(other) => Err(other.into()),
    }
}

/// A whole plan's members as [`PlanTransaction::write`] takes them: in ascending user order.
fn in_user_order(members: &[PlannedMember]) -> Vec<PlannedMember> {
    let mut sorted = members.to_vec();
    sorted.sort_by_key(|m| m.user_id);
    sorted
}

/// Refuses to replace the plan of a wave any member of which has started converting.
async fn ensure_not_started(tx: &mut Tx, id: WaveId, name: &str) -> Result<()> {
    let started: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM wave_members
             WHERE wave_id = ? AND state NOT IN ('planned', 'excluded', 'ready')",
    )
    .bind(id.0)
    .fetch_one(&mut **tx)
    .await?;
    if started > 0 {
        return Err(Error::WaveStarted {
            wave: name.to_owned(),
        });
    }
    Ok(())
}

/// Inserts planned members, ready or excluded by their decision.
async fn insert_members(
    tx: &mut Tx,
    id: WaveId,
    members: &[PlannedMember],
    at_text: &str,
) -> Result<()> {
    // Each statement takes its members as one JSON document, which SQLite takes apart: a
    // value to hand over per part rather than a dozen per member. The reasons and findings
    // are nested in it as JSON, not as strings of JSON, and come out as their JSON text
    // (`->`): what `to_json` of them would store, without escaping them twice.
    for chunk in members.chunks(MEMBERS_PER_DOCUMENT) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|member| {
                let state = match member.decision {
                    Decision::Eligible => UserState::Ready,
                    Decision::Blocked => UserState::Excluded,
                };
                let codes: Vec<&str> = member.findings.iter().map(|f| f.reason.code()).collect();
                (
                    member.user_id,
                    member.decision.code(),
                    codes,
                    &member.findings,
                    &member.chosen_address,
                    member.address_origin,
                    member.set_mail,
                    &member.snapshot_fingerprint,
                    state.code(),
                )
            })
            .collect();
        sqlx::query(
            "INSERT INTO wave_members (wave_id, user_id, decision, reasons, findings,
                    chosen_address, address_origin, set_mail, snapshot_fingerprint, state,
                    planned_at, state_changed_at)
             SELECT ?, m ->> 0, m ->> 1, m -> 2, m -> 3, m ->> 4, m ->> 5, m ->> 6, m ->> 7,
                    m ->> 8, ?, ?
             FROM (SELECT value AS m FROM jsonb_each(?) ORDER BY key)",
        )
        .bind(id.0)
        .bind(at_text)
        .bind(at_text)
        .bind(to_json(&rows))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Records a stored plan's hash, cap and settings with its wave.
async fn finish_plan(
    tx: &mut Tx,
    id: WaveId,
    cap: Option<u32>,
    settings: &serde_json::Value,
    plan_hash: &str,
    at_text: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE waves SET plan_hash = ?, planned_at = ?, cap = ?, settings = ? WHERE id = ?",
    )
    .bind(plan_hash)
    .bind(at_text)
    .bind(cap.map(i64::from))
    .bind(settings.to_string())
    .bind(id.0)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;
    use crate::rules::{Reason, Severity};
    use crate::store::testing::temp_store;
    use crate::store::users::tests::sample_user;

    fn new_wave(name: &str) -> NewWave {
        NewWave {
            name: name.into(),
            selector: serde_json::json!({"csv": "pilot.csv"}),
            cap: Some(50),
            settings: serde_json::json!({"send_message": true}),
        }
    }

    fn planned(n: u128, decision: Decision) -> PlannedMember {
        PlannedMember {
            user_id: UserId::from_uuid(Uuid::from_u128(n)),
            decision,
            findings: match decision {
                Decision::Eligible => vec![],
                Decision::Blocked => vec![Finding {
                    reason: Reason::ExchangeMailbox,
                    severity: Severity::Blocker,
                    detail: "service plan efb87545-963c-4e0d-99df-69c6916d9eb0".into(),
                }],
            },
            chosen_address: Some(format!("p{n}@fabrikam.com")),
            address_origin: Some(AddressOrigin::OtherMails),
            set_mail: n.is_multiple_of(2),
            snapshot_fingerprint: format!("fp{n}"),
        }
    }

    async fn planned_wave(store: &Store) -> Wave {
        store
            .store_users(&[sample_user(1), sample_user(2)])
            .await
            .unwrap();
        let wave = store
            .create_wave(&new_wave("pilot"), datetime!(2026-11-21 08:00 UTC))
            .await
            .unwrap();
        store
            .replace_plan(
                &wave,
                &[
                    planned(1, Decision::Eligible),
                    planned(2, Decision::Blocked),
                ],
                "hash-1",
                datetime!(2026-11-21 08:01 UTC),
            )
            .await
            .unwrap();
        wave
    }

    async fn start_inviting(
        store: &Store,
        wave: &Wave,
        user: UserId,
        at: OffsetDateTime,
    ) -> Result<()> {
        let transition = Transition::new(UserState::Ready, UserState::Inviting, at);
        store.transition(wave.id, user, &transition).await
    }

    #[tokio::test]
    async fn findings_are_stored_as_their_json_text_whatever_the_detail() {
        let (_dir, store) = temp_store().await;
        store.store_users(&[sample_user(1)]).await.unwrap();
        let mut member = planned(1, Decision::Blocked);
        member.findings[0].detail =
            "«Zoë» said \"no\" \\ tab\there, bell\u{7}, emoji 🙂, slash / and <b>".into();
        store
            .create_planned_wave(
                &new_wave("pilot"),
                std::slice::from_ref(&member),
                "hash-1",
                datetime!(2026-11-21 08:00 UTC),
            )
            .await
            .unwrap();
        let (reasons, findings): (String, String) =
            sqlx::query_as("SELECT reasons, findings FROM wave_members")
                .fetch_one(&store.pool)
                .await
                .unwrap();
        assert_eq!(reasons, r#"["exchange-mailbox"]"#);
        assert_eq!(findings, to_json(&member.findings));
        let wave = store.wave_by_name("pilot").await.unwrap().unwrap();
        assert_eq!(store.members(wave.id).await.unwrap()[0].plan, member);
    }

    #[tokio::test]
    async fn waves_are_created_once_per_name() {
        let (_dir, store) = temp_store().await;
        let wave = store
            .create_wave(&new_wave("pilot"), datetime!(2026-11-21 08:00 UTC))
            .await
            .unwrap();
        assert_eq!(wave.cap, Some(50));
        assert_eq!(wave.selector, serde_json::json!({"csv": "pilot.csv"}));
        let err = store
            .create_wave(&new_wave("PILOT"), datetime!(2026-11-21 08:00 UTC))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::WaveExists(_)), "{err}");
        assert_eq!(
            store.wave_by_name("Pilot").await.unwrap(),
            Some(wave.clone())
        );
        assert_eq!(store.waves().await.unwrap(), vec![wave]);
    }

    #[tokio::test]
    async fn a_plan_stores_decisions_as_ready_or_excluded() {
        let (_dir, store) = temp_store().await;
        let wave = planned_wave(&store).await;
        let members = store.members(wave.id).await.unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(members[0].plan, planned(1, Decision::Eligible));
        assert_eq!(members[0].state, UserState::Ready);
        assert_eq!(members[1].state, UserState::Excluded);
        assert_eq!(members[1].plan.findings[0].reason, Reason::ExchangeMailbox);
        let codes: String =
            sqlx::query_scalar("SELECT reasons FROM wave_members WHERE decision = 'blocked'")
                .fetch_one(&store.pool)
                .await
                .unwrap();
        assert_eq!(
            codes, r#"["exchange-mailbox"]"#,
            "codes stay queryable on their own"
        );
        let wave = store.wave_by_name("pilot").await.unwrap().unwrap();
        assert_eq!(wave.plan_hash.as_deref(), Some("hash-1"));
        let named = store.members_with_names(wave.id).await.unwrap();
        assert_eq!(named.len(), 2);
        assert_eq!(named[0].0, members[0]);
        assert_eq!(named[0].1.user_principal_name, "partner1@contoso.com");
        assert!(named[0].1.synced);
        assert_eq!(
            store.state_counts(wave.id).await.unwrap(),
            vec![(UserState::Excluded, 1), (UserState::Ready, 1)]
        );
    }

    #[tokio::test]
    async fn members_are_walked_in_pages_by_user_id() {
        let (_dir, store) = temp_store().await;
        let wave = planned_wave(&store).await;
        let both = [UserState::Ready, UserState::Excluded];
        let first = store
            .members_in_states_after(wave.id, &both, None, 1)
            .await
            .unwrap();
        assert_eq!(first.len(), 1);
        let after = first[0].0.plan.user_id;
        let second = store
            .members_in_states_after(wave.id, &both, Some(after), 1)
            .await
            .unwrap();
        assert_eq!(second.len(), 1);
        assert!(second[0].0.plan.user_id > after);
        let rest = store
            .members_in_states_after(wave.id, &both, Some(second[0].0.plan.user_id), 1)
            .await
            .unwrap();
        assert!(rest.is_empty());
        let ready = store
            .members_in_states(wave.id, &[UserState::Ready])
            .await
            .unwrap();
        assert_eq!(ready.len(), 1, "filtered by state");
    }

    #[tokio::test]
    async fn members_come_with_their_on_premises_properties_and_a_scramble_is_stamped() {
        let (_dir, store) = temp_store().await;
        let wave = planned_wave(&store).await;
        let rows = store.members_with_on_premises(wave.id).await.unwrap();
        assert_eq!(rows.len(), 2);
        let (member, names, on_premises) = &rows[0];
        assert_eq!(member.plan.user_id, UserId::from_uuid(Uuid::from_u128(1)));
        assert!(names.synced);
        let expected = sample_user(1).on_premises;
        assert_eq!(on_premises.as_ref(), Some(&expected));

        let user = member.plan.user_id;
        let t = datetime!(2026-11-21 09:00 UTC);
        start_inviting(&store, &wave, user, t).await.unwrap();
        for (from, to) in [
            (UserState::Inviting, UserState::Invited),
            (UserState::Invited, UserState::Accepted),
        ] {
            store
                .transition(wave.id, user, &Transition::new(from, to, t))
                .await
                .unwrap();
        }
        let mut scrambled = Transition::new(UserState::Accepted, UserState::Scrambled, t);
        scrambled.scrambled_on = Some("dc1.corp.contoso.com".into());
        store.transition(wave.id, user, &scrambled).await.unwrap();
        let member = store.member(wave.id, user).await.unwrap().unwrap();
        assert_eq!(member.scrambled_at, Some(t));
        assert_eq!(member.scrambled_on.as_deref(), Some("dc1.corp.contoso.com"));
        assert_eq!(member.accepted_at, Some(t), "kept");
    }

    #[tokio::test]
    async fn a_member_must_be_a_known_user() {
        let (_dir, store) = temp_store().await;
        let wave = store
            .create_wave(&new_wave("pilot"), datetime!(2026-11-21 08:00 UTC))
            .await
            .unwrap();
        let err = store
            .replace_plan(
                &wave,
                &[planned(9, Decision::Eligible)],
                "h",
                datetime!(2026-11-21 08:00 UTC),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Sqlx(_)),
            "foreign key refuses an unknown user: {err}"
        );
        assert!(
            store.members(wave.id).await.unwrap().is_empty(),
            "nothing half-written"
        );
    }

    #[tokio::test]
    async fn a_new_wave_and_its_plan_are_stored_together_or_not_at_all() {
        let (_dir, store) = temp_store().await;
        store.store_users(&[sample_user(1)]).await.unwrap();
        let at = datetime!(2026-11-21 08:00 UTC);
        let err = store
            .create_planned_wave(
                &new_wave("pilot"),
                &[
                    planned(1, Decision::Eligible),
                    planned(9, Decision::Eligible),
                ],
                "h",
                at,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Sqlx(_)), "user 9 is unknown: {err}");
        assert!(
            store.wave_by_name("pilot").await.unwrap().is_none(),
            "no empty wave left"
        );
        let wave = store
            .create_planned_wave(
                &new_wave("pilot"),
                &[planned(1, Decision::Eligible)],
                "h",
                at,
            )
            .await
            .unwrap();
        assert_eq!(wave.plan_hash.as_deref(), Some("h"));
        assert_eq!(store.members(wave.id).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_plan_written_in_parts_is_stored_once_committed() {
        let (_dir, store) = temp_store().await;
        let users: Vec<_> = (1..=4).map(sample_user).collect();
        store.store_users(&users).await.unwrap();
        let at = datetime!(2026-11-21 08:00 UTC);

        let mut plan = store.begin_plan(&new_wave("pilot"), at).await.unwrap();
        plan.write(&[planned(1, Decision::Eligible)]).await.unwrap();
        drop(plan);
        assert!(
            store.wave_by_name("pilot").await.unwrap().is_none(),
            "a plan dropped before its commit leaves nothing"
        );

        let mut plan = store.begin_plan(&new_wave("pilot"), at).await.unwrap();
        for part in [[1, 2], [3, 4]] {
            let members = part.map(|n| planned(n, Decision::Eligible));
            assert_eq!(plan.write(&members).await.unwrap(), Replaced::default());
        }
        let (wave, removed) = plan
            .commit(Some(9), &serde_json::json!({"s": 1}), "hash-p")
            .await
            .unwrap();
        assert_eq!(removed, 0);
        assert_eq!(wave.plan_hash.as_deref(), Some("hash-p"));
        assert_eq!(wave.cap, Some(9));
        assert_eq!(wave.planned_at, Some(at));
        let members = store.members(wave.id).await.unwrap();
        assert_eq!(members.len(), 4);
        assert_eq!(members[3].plan, planned(4, Decision::Eligible));
        assert_eq!(members[3].state, UserState::Ready);
    }

    #[tokio::test]
    async fn a_re_plan_replaces_the_previous_members_part_by_part() {
        let (_dir, store) = temp_store().await;
        let users: Vec<_> = (1..=5).map(sample_user).collect();
        store.store_users(&users).await.unwrap();
        let wave = store
            .create_planned_wave(
                &new_wave("pilot"),
                &[1, 2, 3, 4].map(|n| planned(n, Decision::Eligible)),
                "hash-1",
                datetime!(2026-11-21 08:00 UTC),
            )
            .await
            .unwrap();

        let mut plan = store
            .begin_replan(&wave, datetime!(2026-11-21 09:00 UTC))
            .await
            .unwrap();
        let replaced = plan
            .write(&[
                planned(1, Decision::Blocked),
                planned(3, Decision::Eligible),
            ])
            .await
            .unwrap();
        let previous = |n: u128| PreviousDecision {
            user_id: UserId::from_uuid(Uuid::from_u128(n)),
            decision: Decision::Eligible,
            chosen_address: Some(format!("p{n}@fabrikam.com")),
        };
        assert_eq!(
            replaced,
            Replaced {
                previous: vec![previous(1), previous(3)],
                removed: 1,
            },
            "user 2 is no longer planned"
        );
        let replaced = plan.write(&[planned(5, Decision::Eligible)]).await.unwrap();
        assert_eq!(
            replaced,
            Replaced {
                previous: vec![],
                removed: 1,
            },
            "nor is user 4"
        );
        let (wave, removed) = plan
            .commit(None, &serde_json::json!({}), "hash-2")
            .await
            .unwrap();
        assert_eq!(removed, 0);
        let ids: Vec<UserId> = store
            .members(wave.id)
            .await
            .unwrap()
            .iter()
            .map(|m| m.plan.user_id)
            .collect();
        assert_eq!(
            ids,
            [1, 3, 5].map(|n| UserId::from_uuid(Uuid::from_u128(n)))
        );

        let mut plan = store
            .begin_replan(&wave, datetime!(2026-11-21 10:00 UTC))
            .await
            .unwrap();
        plan.write(&[planned(1, Decision::Blocked)]).await.unwrap();
        let (wave, removed) = plan
            .commit(None, &serde_json::json!({}), "hash-3")
            .await
            .unwrap();
        assert_eq!(removed, 2, "users 3 and 5, after the last one written");
        assert_eq!(store.members(wave.id).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_started_wave_refuses_a_re_plan_before_it_begins() {
        let (_dir, store) = temp_store().await;
        let wave = planned_wave(&store).await;
        let user = UserId::from_uuid(Uuid::from_u128(1));
        start_inviting(&store, &wave, user, datetime!(2026-11-21 09:00 UTC))
            .await
            .unwrap();
        let err = store
            .begin_replan(&wave, datetime!(2026-11-21 09:01 UTC))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::WaveStarted { .. }), "{err}");
    }

    #[tokio::test]
    #[should_panic(expected = "ascending user order")]
    async fn plan_members_out_of_order_are_refused() {
        let (_dir, store) = temp_store().await;
        store
            .store_users(&[sample_user(1), sample_user(2)])
            .await
            .unwrap();
        let mut plan = store
            .begin_plan(&new_wave("pilot"), datetime!(2026-11-21 08:00 UTC))
            .await
            .unwrap();
        plan.write(&[planned(2, Decision::Eligible)]).await.unwrap();
        let _ = plan.write(&[planned(1, Decision::Eligible)]).await;
    }

    #[tokio::test]
    async fn transitions_are_compare_and_set() {
        let (_dir, store) = temp_store().await;
        let wave = planned_wave(&store).await;
        let user = UserId::from_uuid(Uuid::from_u128(1));
        let t = datetime!(2026-11-21 09:00 UTC);
        start_inviting(&store, &wave, user, t).await.unwrap();
        let again = start_inviting(&store, &wave, user, t).await.unwrap_err();
        assert!(matches!(again, Error::StateConflict { .. }), "{again}");

        let mut invited = Transition::new(UserState::Inviting, UserState::Invited, t);
        invited.invitation_id = Some(InvitationId("inv-1".into()));
        store.transition(wave.id, user, &invited).await.unwrap();
        let member = store.member(wave.id, user).await.unwrap().unwrap();
        assert_eq!(member.state, UserState::Invited);
        assert_eq!(member.attempts, 1);
        assert_eq!(member.invitation_id, Some(InvitationId("inv-1".into())));
        assert_eq!(member.invited_at, Some(t));

        let stranger = UserId::from_uuid(Uuid::from_u128(77));
        let err = start_inviting(&store, &wave, stranger, t)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotAMember { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_failure_records_kind_and_message_and_a_retry_clears_the_kind() {
        let (_dir, store) = temp_store().await;
        let wave = planned_wave(&store).await;
        let user = UserId::from_uuid(Uuid::from_u128(1));
        let t = datetime!(2026-11-21 09:00 UTC);
        start_inviting(&store, &wave, user, t).await.unwrap();
        let mut failed = Transition::new(UserState::Inviting, UserState::Failed, t);
        failed.failure = Some((
            FailureKind::Retryable,
            Some("InternalServerError".into()),
            "Unable to find target address".into(),
        ));
        store.transition(wave.id, user, &failed).await.unwrap();
        let member = store.member(wave.id, user).await.unwrap().unwrap();
        assert_eq!(member.failure_kind, Some(FailureKind::Retryable));
        assert_eq!(
            member.last_error_code.as_deref(),
            Some("InternalServerError")
        );

        store
            .transition(
                wave.id,
                user,
                &Transition::new(UserState::Failed, UserState::Ready, t),
            )
            .await
            .unwrap();
        let member = store.member(wave.id, user).await.unwrap().unwrap();
        assert_eq!(member.failure_kind, None);
        assert_eq!(
            member.last_error_message.as_deref(),
            Some("Unable to find target address"),
            "the last error stays for the report"
        );
    }

    #[tokio::test]
    async fn users_pending_in_other_waves_are_found() {
        let (_dir, store) = temp_store().await;
        let pilot = planned_wave(&store).await;
        let second = store
            .create_wave(&new_wave("second"), datetime!(2026-11-21 08:00 UTC))
            .await
            .unwrap();
        let others = store.pending_in_other_waves(Some(second.id)).await.unwrap();
        let user = UserId::from_uuid(Uuid::from_u128(1));
        assert_eq!(others.get(&user), Some(&vec!["pilot".to_owned()]));
        assert!(
            !others.contains_key(&UserId::from_uuid(Uuid::from_u128(2))),
            "excluded members are not pending"
        );
        assert!(
            store
                .pending_in_other_waves(Some(pilot.id))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.pending_in_other_waves(None).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_started_wave_cannot_be_replanned() {
        let (_dir, store) = temp_store().await;
        let wave = planned_wave(&store).await;
        let user = UserId::from_uuid(Uuid::from_u128(1));
        start_inviting(&store, &wave, user, datetime!(2026-11-21 09:00 UTC))
            .await
            .unwrap();
        let err = store
            .replace_plan(
                &wave,
                &[planned(2, Decision::Eligible)],
                "hash-2",
                datetime!(2026-11-21 09:01 UTC),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::WaveStarted { .. }), "{err}");
        assert_eq!(
            store.members(wave.id).await.unwrap().len(),
            2,
            "the old plan is intact"
        );
    }
}
