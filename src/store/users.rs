//! User snapshots, the address index used for collision checks, and discovery runs.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use sqlx::{QueryBuilder, Sqlite, Transaction};
use time::OffsetDateTime;

use super::{
    Error, Result, Store, parse_code, parse_json, parse_optional_timestamp, parse_timestamp,
    timestamp, to_json,
};
use crate::domain::{
    AssignedLicense, AssignedPlan, ObjectIdentity, OnPremisesProperties, RunId, UserId,
    UserSnapshot,
};

/// Which property of a directory object holds an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressSource {
    Mail,
    OtherMails,
    ProxyAddresses,
    UserPrincipalName,
}

impl AddressSource {
    fn code(self) -> &'static str {
        match self {
            Self::Mail => "mail",
            Self::OtherMails => "other_mails",
            Self::ProxyAddresses => "proxy_addresses",
            Self::UserPrincipalName => "user_principal_name",
        }
    }
}

impl std::fmt::Display for AddressSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl std::str::FromStr for AddressSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "mail" => Self::Mail,
            "other_mails" => Self::OtherMails,
            "proxy_addresses" => Self::ProxyAddresses,
            "user_principal_name" => Self::UserPrincipalName,
            other => return Err(format!("unknown address source `{other}`")),
        })
    }
}

/// An object that answers to an address, and through which property.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressOwner {
    pub object_id: String,
    pub source: AddressSource,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    user_principal_name: String,
    display_name: Option<String>,
    mail: Option<String>,
    other_mails: String,
    proxy_addresses: String,
    user_type: Option<String>,
    account_enabled: Option<bool>,
    creation_type: Option<String>,
    external_user_state: Option<String>,
    external_user_state_changed_at: Option<String>,
    on_premises_sync_enabled: Option<bool>,
    on_premises_immutable_id: Option<String>,
    on_premises_sam_account_name: Option<String>,
    on_premises_distinguished_name: Option<String>,
    on_premises_domain_name: Option<String>,
    on_premises_user_principal_name: Option<String>,
    assigned_plans: String,
    assigned_licenses: String,
    identities: String,
    snapshot_at: String,
}

impl TryFrom<UserRow> for UserSnapshot {
    type Error = Error;

    fn try_from(row: UserRow) -> Result<Self> {
        Ok(Self {
            id: parse_code("user_snapshots.id", &row.id)?,
            user_principal_name: row.user_principal_name,
            display_name: row.display_name,
            mail: row.mail,
            other_mails: parse_json("user_snapshots.other_mails", &row.other_mails)?,
            proxy_addresses: parse_json("user_snapshots.proxy_addresses", &row.proxy_addresses)?,
            user_type: row.user_type,
            account_enabled: row.account_enabled,
            creation_type: row.creation_type,
            external_user_state: row.external_user_state,
            external_user_state_changed_at: parse_optional_timestamp(
                "user_snapshots.external_user_state_changed_at",
                row.external_user_state_changed_at.as_deref(),
            )?,
            on_premises: OnPremisesProperties {
                sync_enabled: row.on_premises_sync_enabled,
                immutable_id: row.on_premises_immutable_id,
                sam_account_name: row.on_premises_sam_account_name,
                distinguished_name: row.on_premises_distinguished_name,
                domain_name: row.on_premises_domain_name,
                user_principal_name: row.on_premises_user_principal_name,
            },
            assigned_plans: parse_json("user_snapshots.assigned_plans", &row.assigned_plans)?,
            assigned_licenses: parse_json(
                "user_snapshots.assigned_licenses",
                &row.assigned_licenses,
            )?,
            identities: parse_json("user_snapshots.identities", &row.identities)?,
            snapshot_at: parse_timestamp("user_snapshots.snapshot_at", &row.snapshot_at)?,
        })
    }
}

/// What choosing a user's invitation address reads from the snapshot: a few columns, so a
/// planner can go over a whole wave for the addresses before it reads each user in full.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressFields {
    pub id: UserId,
    /// `onPremisesSyncEnabled == true`, as [`UserSnapshot::is_synced`] has it.
    pub synced: bool,
    pub mail: Option<String>,
    pub other_mails: Vec<String>,
}

/// One user's [`AddressFields`] as [`SnapshotRead::active_address_fields`] reads them: id, the sync
/// flag, mail, and otherMails as the stored JSON text.
#[derive(Deserialize)]
struct AddressFieldsJson(String, Option<u8>, Option<String>, String);

impl TryFrom<AddressFieldsJson> for AddressFields {
    type Error = Error;

    fn try_from(
        AddressFieldsJson(id, synced, mail, other_mails): AddressFieldsJson,
    ) -> Result<Self> {
        Ok(Self {
            id: parse_code("user_snapshots.id", &id)?,
            synced: synced == Some(1),
            mail,
            other_mails: parse_json("user_snapshots.other_mails", &other_mails)?,
        })
    }
}

/// Where a read of the snapshot in storage order stopped; the next read goes on from there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoragePosition(i64);

/// Every SMTP address a user answers to, lower-cased, with where it came from.
fn addresses_of(user: &UserSnapshot) -> Vec<(String, AddressSource)> {
    let mut out = vec![(
        user.user_principal_name.to_lowercase(),
        AddressSource::UserPrincipalName,
    )];
    if let Some(mail) = &user.mail {
        out.push((mail.to_lowercase(), AddressSource::Mail));
    }
    out.extend(
        user.other_mails
            .iter()
            .map(|m| (m.to_lowercase(), AddressSource::OtherMails)),
    );
    out.extend(user.proxy_addresses.iter().filter_map(|p| {
        let (prefix, address) = p.split_once(':')?;
        prefix
            .eq_ignore_ascii_case("smtp")
            .then(|| (address.to_lowercase(), AddressSource::ProxyAddresses))
    }));
    out.retain(|(address, _)| !address.is_empty());
    out.sort();
    out.dedup();
    out
}

impl Store {
    /// Starts a discovery run; `selector` describes which users it reads.
    #[tracing::instrument(skip_all, err)]
    pub async fn begin_discovery(
        &self,
        selector: &serde_json::Value,
        at: OffsetDateTime,
    ) -> Result<RunId> {
        let id = RunId::new();
        sqlx::query("INSERT INTO discoveries (id, selector, started_at) VALUES (?, ?, ?)")
            .bind(id.to_string())
            .bind(selector.to_string())
            .bind(timestamp(at))
            .execute(&self.pool)
            .await?;
        Ok(id)
    }

    /// Stores one page of users and counts it against the discovery, in one transaction, so a
    /// crash loses at most the page in flight.
    #[tracing::instrument(skip_all, fields(discovery = %discovery, users = users.len()), err)]
    pub async fn store_user_page(&self, discovery: RunId, users: &[UserSnapshot]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        upsert_users(&mut tx, Some(discovery), users).await?;
        sqlx::query(
            "UPDATE discoveries SET users_seen = users_seen + ?, pages = pages + 1 WHERE id = ?",
        )
        .bind(i64::try_from(users.len()).unwrap_or(i64::MAX))
        .bind(discovery.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores users outside a discovery (for example a re-read before a conversion).
    #[tracing::instrument(skip_all, fields(users = users.len()), err)]
    pub async fn store_users(&self, users: &[UserSnapshot]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        upsert_users(&mut tx, None, users).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks a discovery finished, successfully or not.
    #[tracing::instrument(skip(self), err)]
    pub async fn finish_discovery(
        &self,
        discovery: RunId,
        completed: bool,
        at: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query("UPDATE discoveries SET status = ?, finished_at = ? WHERE id = ?")
            .bind(if completed { "completed" } else { "failed" })
            .bind(timestamp(at))
            .bind(discovery.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// After a completed discovery of every user, retires the snapshots it did not see: they
    /// leave the collision index and the counts, and stay readable for wave history.
    /// Returns how many were retired.
    #[tracing::instrument(skip(self), err)]
    pub async fn retire_unseen_users(&self, discovery: RunId, at: OffsetDateTime) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let id = discovery.to_string();
        sqlx::query(
            "DELETE FROM directory_addresses WHERE object_id IN (
                SELECT id FROM user_snapshots
                WHERE retired_at IS NULL AND (discovery_id IS NULL OR discovery_id <> ?))",
        )
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        let retired = sqlx::query(
            "UPDATE user_snapshots SET retired_at = ?
             WHERE retired_at IS NULL AND (discovery_id IS NULL OR discovery_id <> ?)",
        )
        .bind(timestamp(at))
        .bind(&id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(retired)
    }

    /// The users seen and pages stored so far by a discovery.
    pub async fn discovery_progress(&self, discovery: RunId) -> Result<Option<(u64, u64)>> {
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT users_seen, pages FROM discoveries WHERE id = ?")
                .bind(discovery.to_string())
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(users, pages)| (users.unsigned_abs(), pages.unsigned_abs())))
    }

    pub async fn user(&self, id: UserId) -> Result<Option<UserSnapshot>> {
        sqlx::query_as::<_, UserRow>("SELECT * FROM user_snapshots WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .map(UserSnapshot::try_from)
            .transpose()
    }

    /// Every user that is not retired, ordered by id.
    pub async fn active_users(&self) -> Result<Vec<UserSnapshot>> {
        sqlx::query_as::<_, UserRow>(
            "SELECT * FROM user_snapshots WHERE retired_at IS NULL ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(UserSnapshot::try_from)
        .collect()
    }

    /// Looks a user up by UPN, ignoring case as Entra ID does.
    pub async fn user_by_upn(&self, upn: &str) -> Result<Option<UserSnapshot>> {
        sqlx::query_as::<_, UserRow>(
            "SELECT * FROM user_snapshots WHERE user_principal_name = ? COLLATE NOCASE",
        )
        .bind(upn)
        .fetch_optional(&self.pool)
        .await?
        .map(UserSnapshot::try_from)
        .transpose()
    }

    /// Users in the snapshot, not counting retired ones.
    pub async fn count_users(&self) -> Result<u64> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM user_snapshots WHERE retired_at IS NULL")
                .fetch_one(&self.pool)
                .await?;
        Ok(count.unsigned_abs())
    }

    /// [`address_owners`](Self::address_owners) for many addresses at once, keyed by the
    /// lower-cased address; addresses nobody owns are absent.
    pub async fn address_owners_of_many<S: AsRef<str>>(
        &self,
        addresses: &[S],
    ) -> Result<HashMap<String, Vec<AddressOwner>>> {
        let mut owners: HashMap<String, Vec<AddressOwner>> = HashMap::new();
        for chunk in addresses.chunks(ADDRESSES_PER_STATEMENT) {
            let mut query = QueryBuilder::<Sqlite>::new(
                "SELECT address, object_id, source FROM directory_addresses WHERE address IN (",
            );
            let mut list = query.separated(", ");
            for address in chunk {
                list.push_bind(address.as_ref().to_lowercase());
            }
            query.push(") ORDER BY address, object_id, source");
            let rows: Vec<(String, String, String)> =
                query.build_query_as().fetch_all(&self.pool).await?;
            for (address, object_id, source) in rows {
                owners.entry(address).or_default().push(AddressOwner {
                    object_id,
                    source: parse_code("directory_addresses.source", &source)?,
                });
            }
        }
        Ok(owners)
    }

    /// Of the `(address, user)` pairs, the addresses (lower-cased, each once) that some
    /// object other than that user answers to: the few worth looking up in full with
    /// [`address_owners_of_many`](Self::address_owners_of_many). Sorted by address, the
    /// pairs read the address index in order.
    pub async fn addresses_owned_by_others<S: AsRef<str>>(
        &self,
        pairs: &[(S, UserId)],
    ) -> Result<Vec<String>> {
        let mut found = Vec::new();
        for chunk in pairs.chunks(PAIRS_PER_STATEMENT) {
            let mut query =
                QueryBuilder::<Sqlite>::new("WITH chosen (address, object_id) AS (VALUES ");
            let mut list = query.separated(", ");
            for (address, user) in chunk {
                list.push("(")
                    .push_bind_unseparated(address.as_ref().to_lowercase())
                    .push_unseparated(", ")
                    .push_bind_unseparated(user.to_string())
                    .push_unseparated(")");
            }
            query.push(
                ") SELECT DISTINCT c.address FROM chosen c
                 JOIN directory_addresses d ON d.address = c.address
                 WHERE d.object_id <> c.object_id",
            );
            let rows: Vec<(String,)> = query.build_query_as().fetch_all(&self.pool).await?;
            found.extend(rows.into_iter().map(|(address,)| address));
        }
        Ok(found)
    }

    /// The addresses (lower-cased) that two objects or more answer to: one pass over the
    /// address index, in address order. For a whole snapshot's chosen addresses this is
    /// cheaper than looking each up, as most are their chooser's alone.
    pub async fn shared_addresses(&self) -> Result<HashSet<String>> {
        let shared: Option<String> = sqlx::query_scalar(
            "SELECT json_group_array(address) FROM (
                 SELECT address FROM directory_addresses
                 GROUP BY address HAVING min(object_id) <> max(object_id))",
        )
        .fetch_one(&self.pool)
        .await?;
        parse_json(
            "directory_addresses (shared)",
            shared.as_deref().unwrap_or("[]"),
        )
    }

    /// Every object that answers to `address` (case-insensitive), through which property.
    pub async fn address_owners(&self, address: &str) -> Result<Vec<AddressOwner>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT object_id, source FROM directory_addresses WHERE address = ? ORDER BY object_id, source",
        )
        .bind(address.to_lowercase())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(object_id, source)| {
                Ok(AddressOwner {
                    object_id,
                    source: parse_code("directory_addresses.source", &source)?,
                })
            })
            .collect()
    }
}

/// One user's rule inputs as [`SnapshotRead::rule_inputs_after`] reads them: the columns of a snapshot the
/// eligibility rules and the rule-input fingerprint read
/// ([`rules::fingerprint`](crate::rules::fingerprint) names them all), in this order.
#[derive(Deserialize)]
/// The JSON columns come as their stored text: parsing them here is cheaper than having SQLite
/// parse them to embed them.
struct RuleInputsJson(
    String,
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<u8>,
    Option<String>,
    Option<String>,
    Option<u8>,
    Option<String>,
    String,
    String,
    String,
);

/// The parts of an assigned plan the rules read.
#[derive(Deserialize)]
struct PlanInputs {
    capability_status: Option<String>,
    service_plan_id: Option<uuid::Uuid>,
}

/// The part of an assigned licence the rules read.
#[derive(Deserialize)]
struct LicenseInputs {
    disabled_plans: Vec<uuid::Uuid>,
}

/// The parts of an identity the rules read.
#[derive(Deserialize)]
struct IdentityInputs {
    sign_in_type: Option<String>,
    issuer: Option<String>,
}

impl TryFrom<RuleInputsJson> for UserSnapshot {
    type Error = Error;

    /// A snapshot with what the rules read, and nothing else: the properties no rule reads
    /// are left empty (`None`, no dates, `snapshot_at` at the Unix epoch).
    fn try_from(row: RuleInputsJson) -> Result<Self> {
        let RuleInputsJson(
            id,
            user_principal_name,
            mail,
            other_mails,
            proxy_addresses,
            user_type,
            account_enabled,
            creation_type,
            external_user_state,
            sync_enabled,
            on_premises_upn,
            plans,
            licenses,
            identities,
        ) = row;
        let plans: Vec<PlanInputs> = parse_json("user_snapshots.assigned_plans", &plans)?;
        let licenses: Vec<LicenseInputs> =
            parse_json("user_snapshots.assigned_licenses", &licenses)?;
        let identities: Vec<IdentityInputs> = parse_json("user_snapshots.identities", &identities)?;
        Ok(Self {
            id: parse_code("user_snapshots.id", &id)?,
            user_principal_name,
            display_name: None,
            mail,
            other_mails: parse_json("user_snapshots.other_mails", &other_mails)?,
            proxy_addresses: parse_json("user_snapshots.proxy_addresses", &proxy_addresses)?,
            user_type,
            account_enabled: account_enabled.map(|v| v != 0),
            creation_type,
            external_user_state,
            external_user_state_changed_at: None,
            on_premises: OnPremisesProperties {
                sync_enabled: sync_enabled.map(|v| v != 0),
                user_principal_name: on_premises_upn,
                ..OnPremisesProperties::default()
            },
            assigned_plans: plans
                .into_iter()
                .map(|p| AssignedPlan {
                    assigned_at: None,
                    capability_status: p.capability_status,
                    service: None,
                    service_plan_id: p.service_plan_id,
                })
                .collect(),
            assigned_licenses: licenses
                .into_iter()
                .map(|l| AssignedLicense {
                    sku_id: None,
                    disabled_plans: l.disabled_plans,
                })
                .collect(),
            identities: identities
                .into_iter()
                .map(|i| ObjectIdentity {
                    sign_in_type: i.sign_in_type,
                    issuer: i.issuer,
                    issuer_assigned_id: None,
                })
                .collect(),
            snapshot_at: OffsetDateTime::UNIX_EPOCH,
        })
    }
}

/// The stored snapshot as one moment saw it, however long it takes to read: a read
/// transaction on the store's read-only connection, which goes on reading while the store's
/// other connection writes (a plan reads its users while it stores their members). Dropped,
/// the transaction ends.
#[derive(Debug)]
pub struct SnapshotRead {
    tx: Transaction<'static, Sqlite>,
    /// The writing connection's `PRAGMA data_version` before the read began.
    writer_version: i64,
}

impl Store {
    /// Starts reading the snapshot; the moment is taken at the first read.
    pub async fn read_snapshot(&self) -> Result<SnapshotRead> {
        let writer_version = self.data_version().await?;
        Ok(SnapshotRead {
            tx: self.readers.begin().await?,
            writer_version,
        })
    }

    /// Whether what the writing connection reads now is what `snapshot` reads: no other
    /// connection (another process: a `discover`, an `invite`) committed since the snapshot
    /// began. What the writing connection itself committed does not count.
    pub async fn agrees_with(&self, snapshot: &SnapshotRead) -> Result<bool> {
        Ok(self.data_version().await? == snapshot.writer_version)
    }

    async fn data_version(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("PRAGMA data_version")
            .fetch_one(&self.pool)
            .await?)
    }
}

impl SnapshotRead {
    /// Ends the read transaction now (dropped, it ends soon after), so that the write-ahead
    /// log can be folded into the database past it.
    pub async fn end(self) -> Result<()> {
        Ok(self.tx.rollback().await?)
    }

    /// The address fields of up to `limit` users that are not retired, the next ones after
    /// `after` in the order they are stored (sequential reads: a million users read in id order
    /// would read the table's pages out of order), and where the next read goes on. No users
    /// means the end.
    ///
    /// SQLite gathers the part into one JSON document, so a part is one value to hand over
    /// rather than four per user.
    pub async fn active_address_fields(
        &mut self,
        after: StoragePosition,
        limit: usize,
    ) -> Result<(Vec<AddressFields>, StoragePosition)> {
        let (last, part): (Option<i64>, Option<String>) = sqlx::query_as(
            "SELECT max(rowid), json_group_array(json_array(id, on_premises_sync_enabled, mail,
                    other_mails))
             FROM (SELECT rowid, * FROM user_snapshots
                   WHERE retired_at IS NULL AND rowid > ? ORDER BY rowid LIMIT ?)",
        )
        .bind(after.0)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_one(&mut *self.tx)
        .await?;
        let rows: Vec<AddressFieldsJson> = parse_json(
            "user_snapshots (address fields)",
            part.as_deref().unwrap_or("[]"),
        )?;
        let fields = rows
            .into_iter()
            .map(AddressFields::try_from)
            .collect::<Result<_>>()?;
        Ok((fields, last.map_or(after, StoragePosition)))
    }

    /// Up to `limit` users that are not retired, the next ones after `after` in id order,
    /// with the properties the rules read and no others (names, dates, directory paths are
    /// left empty: a planner reads a million of them).
    ///
    /// SQLite gathers the part into one JSON document, so a part is one value to hand over
    /// rather than fourteen per user; [`RuleInputs::users`] takes it apart, which a caller can
    /// do while the store goes on with its next statement.
    pub async fn rule_inputs_after(
        &mut self,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<RuleInputs> {
        // One JSON array per user, in `RuleInputsJson`'s order.
        let part: Option<String> = sqlx::query_scalar(
            "SELECT json_group_array(json_array(id, user_principal_name, mail, other_mails,
                    proxy_addresses, user_type, account_enabled, creation_type,
                    external_user_state, on_premises_sync_enabled, on_premises_user_principal_name,
                    assigned_plans, assigned_licenses, identities))
             FROM (SELECT * FROM user_snapshots
                   WHERE retired_at IS NULL AND id > ? ORDER BY id LIMIT ?)",
        )
        // Every id sorts after the empty string; ids are stored lower-case, so text order is
        // `UserId` order.
        .bind(after.map(|id| id.to_string()).unwrap_or_default())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(RuleInputs(part))
    }
}

/// A part of the snapshot as [`SnapshotRead::rule_inputs_after`] read it, not taken apart.
#[derive(Debug)]
pub struct RuleInputs(Option<String>);

impl RuleInputs {
    /// The users read, in id order.
    pub fn users(&self) -> Result<Vec<UserSnapshot>> {
        let rows: Vec<RuleInputsJson> = parse_json(
            "user_snapshots (rule inputs)",
            self.0.as_deref().unwrap_or("[]"),
        )?;
        let mut users = rows
            .into_iter()
            .map(UserSnapshot::try_from)
            .collect::<Result<Vec<_>>>()?;
        // The aggregate sees the rows in the subquery's order; should SQLite ever not keep it,
        // the part is still handed out in id order.
        if !users.is_sorted_by_key(|u| u.id) {
            users.sort_unstable_by_key(|u| u.id);
        }
        Ok(users)
    }
}

/// Users per multi-row statement: 22 parameters each, well under SQLite's 32,766.
const USERS_PER_STATEMENT: usize = 200;
/// Address rows per multi-row statement: 3 parameters each.
const ADDRESSES_PER_STATEMENT: usize = 1_000;
/// `(address, user)` pairs per look-up statement: 2 parameters each.
const PAIRS_PER_STATEMENT: usize = 5_000;

/// Upserts users and replaces their addresses, a few multi-row statements per page rather
/// than a statement per row (a million users would otherwise take minutes).
async fn upsert_users(
    tx: &mut Transaction<'static, Sqlite>,
    discovery: Option<RunId>,
    users: &[UserSnapshot],
) -> Result<()> {
    let discovery = discovery.map(|d| d.to_string());
    for chunk in users.chunks(USERS_PER_STATEMENT) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO user_snapshots (
                id, user_principal_name, display_name, mail, other_mails, proxy_addresses,
                user_type, account_enabled, creation_type, external_user_state,
                external_user_state_changed_at, on_premises_sync_enabled, on_premises_immutable_id,
                on_premises_sam_account_name, on_premises_distinguished_name,
                on_premises_domain_name, on_premises_user_principal_name, assigned_plans,
                assigned_licenses, identities, snapshot_at, discovery_id) ",
        );
        insert.push_values(chunk, |mut row, user| {
            row.push_bind(user.id.to_string())
                .push_bind(user.user_principal_name.clone())
                .push_bind(user.display_name.clone())
                .push_bind(user.mail.clone())
                .push_bind(to_json(&user.other_mails))
                .push_bind(to_json(&user.proxy_addresses))
                .push_bind(user.user_type.clone())
                .push_bind(user.account_enabled)
                .push_bind(user.creation_type.clone())
                .push_bind(user.external_user_state.clone())
                .push_bind(user.external_user_state_changed_at.map(timestamp))
                .push_bind(user.on_premises.sync_enabled)
                .push_bind(user.on_premises.immutable_id.clone())
                .push_bind(user.on_premises.sam_account_name.clone())
                .push_bind(user.on_premises.distinguished_name.clone())
                .push_bind(user.on_premises.domain_name.clone())
                .push_bind(user.on_premises.user_principal_name.clone())
                .push_bind(to_json(&user.assigned_plans))
                .push_bind(to_json(&user.assigned_licenses))
                .push_bind(to_json(&user.identities))
                .push_bind(timestamp(user.snapshot_at))
                .push_bind(discovery.clone());
        });
        insert.push(
            " ON CONFLICT (id) DO UPDATE SET
                user_principal_name = excluded.user_principal_name,
                display_name = excluded.display_name,
                mail = excluded.mail,
                other_mails = excluded.other_mails,
                proxy_addresses = excluded.proxy_addresses,
                user_type = excluded.user_type,
                account_enabled = excluded.account_enabled,
                creation_type = excluded.creation_type,
                external_user_state = excluded.external_user_state,
                external_user_state_changed_at = excluded.external_user_state_changed_at,
                on_premises_sync_enabled = excluded.on_premises_sync_enabled,
                on_premises_immutable_id = excluded.on_premises_immutable_id,
                on_premises_sam_account_name = excluded.on_premises_sam_account_name,
                on_premises_distinguished_name = excluded.on_premises_distinguished_name,
                on_premises_domain_name = excluded.on_premises_domain_name,
                on_premises_user_principal_name = excluded.on_premises_user_principal_name,
                assigned_plans = excluded.assigned_plans,
                assigned_licenses = excluded.assigned_licenses,
                identities = excluded.identities,
                snapshot_at = excluded.snapshot_at,
                discovery_id = COALESCE(excluded.discovery_id, user_snapshots.discovery_id),
                retired_at = NULL",
        );
        insert.build().execute(&mut **tx).await?;

        let mut delete =
            QueryBuilder::<Sqlite>::new("DELETE FROM directory_addresses WHERE object_id IN (");
        let mut ids = delete.separated(", ");
        for user in chunk {
            ids.push_bind(user.id.to_string());
        }
        delete.push(")");
        delete.build().execute(&mut **tx).await?;

        let addresses: Vec<(String, String, AddressSource)> = chunk
            .iter()
            .flat_map(|user| {
                let id = user.id.to_string();
                addresses_of(user)
                    .into_iter()
                    .map(move |(address, source)| (address, id.clone(), source))
            })
            .collect();
        for rows in addresses.chunks(ADDRESSES_PER_STATEMENT) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT OR IGNORE INTO directory_addresses (address, object_id, source) ",
            );
            insert.push_values(rows, |mut row, (address, id, source)| {
                row.push_bind(address.clone())
                    .push_bind(id.clone())
                    .push_bind(source.code());
            });
            insert.build().execute(&mut **tx).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;
    use crate::domain::{AssignedLicense, AssignedPlan, ObjectIdentity};
    use crate::store::testing::temp_store;

    /// A synced user with every property filled, for round-trip tests.
    pub fn sample_user(n: u128) -> UserSnapshot {
        UserSnapshot {
            id: UserId::from_uuid(Uuid::from_u128(n)),
            user_principal_name: format!("partner{n}@contoso.com"),
            display_name: Some(format!("Partner Nº{n}")),
            mail: Some(format!("Partner{n}@Fabrikam.com")),
            other_mails: vec![format!("p{n}@example.org")],
            proxy_addresses: vec![
                format!("SMTP:partner{n}@contoso.com"),
                format!("smtp:alias{n}@contoso.com"),
                "SIP:ignored@contoso.com".into(),
            ],
            user_type: Some("Member".into()),
            account_enabled: Some(true),
            creation_type: None,
            external_user_state: Some("PendingAcceptance".into()),
            external_user_state_changed_at: Some(datetime!(2026-11-20 10:00:00 UTC)),
            on_premises: OnPremisesProperties {
                sync_enabled: Some(true),
                immutable_id: Some("b64guid==".into()),
                sam_account_name: Some(format!("partner{n}")),
                distinguished_name: Some(format!(
                    "CN=Partner {n},OU=Partners,DC=corp,DC=contoso,DC=com"
                )),
                domain_name: Some("corp.contoso.com".into()),
                user_principal_name: Some(format!("partner{n}@corp.contoso.com")),
            },
            assigned_plans: vec![AssignedPlan {
                assigned_at: Some(datetime!(2025-01-01 00:00:00 UTC)),
                capability_status: Some("Enabled".into()),
                service: Some("exchange".into()),
                service_plan_id: Some(
                    Uuid::parse_str("9aaf7827-d63c-4b61-89c3-182f06f82e5c").unwrap(),
                ),
            }],
            assigned_licenses: vec![AssignedLicense {
                sku_id: Some(Uuid::from_u128(7)),
                disabled_plans: vec![Uuid::from_u128(8)],
            }],
            identities: vec![ObjectIdentity {
                sign_in_type: Some("userPrincipalName".into()),
                issuer: Some("contoso.com".into()),
                issuer_assigned_id: Some(format!("partner{n}@contoso.com")),
            }],
            snapshot_at: datetime!(2026-11-21 08:00:00.123456 UTC),
        }
    }

    #[tokio::test]
    async fn a_user_page_round_trips_and_counts_against_its_discovery() {
        let (_dir, store) = temp_store().await;
        let discovery = store
            .begin_discovery(
                &serde_json::json!({"all": true}),
                datetime!(2026-11-21 08:00 UTC),
            )
            .await
            .unwrap();
        let users = [sample_user(1), sample_user(2)];
        store.store_user_page(discovery, &users).await.unwrap();
        assert_eq!(
            store.user(users[0].id).await.unwrap().as_ref(),
            Some(&users[0])
        );
        assert_eq!(store.count_users().await.unwrap(), 2);
        assert_eq!(
            store.discovery_progress(discovery).await.unwrap(),
            Some((2, 1))
        );
        store
            .finish_discovery(discovery, true, datetime!(2026-11-21 08:05 UTC))
            .await
            .unwrap();
        let status: String = sqlx::query_scalar("SELECT status FROM discoveries WHERE id = ?")
            .bind(discovery.to_string())
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(status, "completed");
    }

    #[tokio::test]
    async fn a_second_snapshot_replaces_the_first_and_its_addresses() {
        let (_dir, store) = temp_store().await;
        let mut user = sample_user(1);
        store
            .store_users(std::slice::from_ref(&user))
            .await
            .unwrap();
        user.mail = Some("new@fabrikam.com".into());
        user.other_mails.clear();
        store
            .store_users(std::slice::from_ref(&user))
            .await
            .unwrap();
        assert_eq!(store.count_users().await.unwrap(), 1);
        assert_eq!(store.user(user.id).await.unwrap().unwrap().mail, user.mail);
        assert!(
            store
                .address_owners("partner1@fabrikam.com")
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .address_owners("p1@example.org")
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store
                .address_owners("NEW@fabrikam.com")
                .await
                .unwrap()
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn addresses_are_indexed_case_insensitively_by_source() {
        let (_dir, store) = temp_store().await;
        let user = sample_user(3);
        store.store_users(&[user]).await.unwrap();
        let owners = store.address_owners("ALIAS3@contoso.com").await.unwrap();
        assert_eq!(
            owners,
            vec![AddressOwner {
                object_id: Uuid::from_u128(3).to_string(),
                source: AddressSource::ProxyAddresses
            }]
        );
        let upn = store.address_owners("partner3@contoso.com").await.unwrap();
        let sources: Vec<_> = upn.iter().map(|o| o.source).collect();
        assert_eq!(
            sources,
            vec![
                AddressSource::ProxyAddresses,
                AddressSource::UserPrincipalName
            ]
        );
        assert!(
            store
                .address_owners("ignored@contoso.com")
                .await
                .unwrap()
                .is_empty(),
            "SIP is not SMTP"
        );
    }

    #[tokio::test]
    async fn pages_larger_than_one_statement_and_repeated_ids_are_stored_once() {
        let (_dir, store) = temp_store().await;
        let mut users: Vec<UserSnapshot> = (1..=450).map(sample_user).collect();
        let mut again = sample_user(7);
        again.mail = Some("latest@fabrikam.com".into());
        users.push(again);
        store.store_users(&users).await.unwrap();
        assert_eq!(store.count_users().await.unwrap(), 450);
        let user = store
            .user(UserId::from_uuid(Uuid::from_u128(7)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            user.mail.as_deref(),
            Some("latest@fabrikam.com"),
            "the last row wins"
        );
        assert_eq!(
            store
                .address_owners("latest@fabrikam.com")
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            store
                .address_owners("p449@example.org")
                .await
                .unwrap()
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn users_a_full_discovery_did_not_see_are_retired_and_come_back_when_seen() {
        let (_dir, store) = temp_store().await;
        let at = datetime!(2026-11-21 08:00 UTC);
        let first = store
            .begin_discovery(&serde_json::json!({}), at)
            .await
            .unwrap();
        store
            .store_user_page(first, &[sample_user(1), sample_user(2)])
            .await
            .unwrap();
        let second = store
            .begin_discovery(&serde_json::json!({}), at)
            .await
            .unwrap();
        store
            .store_user_page(second, &[sample_user(1)])
            .await
            .unwrap();
        assert_eq!(store.retire_unseen_users(second, at).await.unwrap(), 1);
        assert_eq!(store.count_users().await.unwrap(), 1);
        assert!(
            store
                .address_owners("partner2@fabrikam.com")
                .await
                .unwrap()
                .is_empty(),
            "a retired user's addresses collide with nobody"
        );
        assert!(
            store.user(sample_user(2).id).await.unwrap().is_some(),
            "history stays"
        );

        store
            .store_user_page(second, &[sample_user(2)])
            .await
            .unwrap();
        assert_eq!(
            store.count_users().await.unwrap(),
            2,
            "seen again, active again"
        );
        assert_eq!(
            store
                .address_owners("partner2@fabrikam.com")
                .await
                .unwrap()
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn owners_of_many_addresses_come_in_one_map() {
        let (_dir, store) = temp_store().await;
        store
            .store_users(&[sample_user(1), sample_user(2)])
            .await
            .unwrap();
        let owners = store
            .address_owners_of_many(&[
                "PARTNER1@fabrikam.com",
                "p2@example.org",
                "nobody@example.org",
            ])
            .await
            .unwrap();
        assert_eq!(owners.len(), 2);
        assert_eq!(
            owners["partner1@fabrikam.com"][0].source,
            AddressSource::Mail
        );
        assert_eq!(
            owners["p2@example.org"][0].source,
            AddressSource::OtherMails
        );
    }

    #[tokio::test]
    async fn owners_other_than_the_chooser_are_the_addresses_worth_looking_up() {
        let (_dir, store) = temp_store().await;
        store
            .store_users(&[sample_user(1), sample_user(2)])
            .await
            .unwrap();
        let (one, two) = (sample_user(1).id, sample_user(2).id);
        let found = store
            .addresses_owned_by_others(&[
                ("nobody@example.org", one),
                ("partner1@fabrikam.com", one),
                ("PARTNER1@fabrikam.com", two),
                ("p2@example.org", two),
            ])
            .await
            .unwrap();
        assert_eq!(found, vec!["partner1@fabrikam.com".to_owned()]);
    }

    #[tokio::test]
    async fn shared_addresses_are_those_of_two_objects_or_more() {
        let (_dir, store) = temp_store().await;
        let mut two = sample_user(2);
        // User 1's mail, as user 2's other address; and an address user 2 has twice.
        two.other_mails = vec![
            "PARTNER1@fabrikam.com".into(),
            "partner2@fabrikam.com".into(),
        ];
        store.store_users(&[sample_user(1), two]).await.unwrap();
        let shared = store.shared_addresses().await.unwrap();
        assert_eq!(shared, HashSet::from(["partner1@fabrikam.com".to_owned()]));
    }

    #[tokio::test]
    async fn address_fields_of_every_active_user_are_read_part_by_part() {
        let (_dir, store) = temp_store().await;
        let at = time::macros::datetime!(2026-11-21 08:00 UTC);
        store.store_users(&[sample_user(9)]).await.unwrap();
        let discovery = store
            .begin_discovery(&serde_json::json!({}), at)
            .await
            .unwrap();
        store
            .store_user_page(discovery, &[sample_user(3), sample_user(1), sample_user(2)])
            .await
            .unwrap();
        store.retire_unseen_users(discovery, at).await.unwrap();
        let mut read = store.read_snapshot().await.unwrap();
        let (mut fields, after) = read
            .active_address_fields(StoragePosition::default(), 2)
            .await
            .unwrap();
        assert_eq!(fields.len(), 2, "a part at a time");
        let (rest, end) = read.active_address_fields(after, 2).await.unwrap();
        fields.extend(rest);
        let (none, _) = read.active_address_fields(end, 2).await.unwrap();
        assert!(none.is_empty(), "then the end");
        fields.sort_by_key(|f| f.id);
        let user = sample_user(1);
        assert_eq!(fields.len(), 3, "the retired user is not read");
        assert_eq!(
            fields[0],
            AddressFields {
                id: user.id,
                synced: true,
                mail: user.mail,
                other_mails: user.other_mails,
            }
        );
    }

    #[tokio::test]
    async fn a_snapshot_read_sees_one_moment_while_the_store_writes() {
        let (_dir, store) = temp_store().await;
        store
            .store_users(&[sample_user(1), sample_user(2)])
            .await
            .unwrap();
        let mut snapshot = store.read_snapshot().await.unwrap();
        let first = snapshot.rule_inputs_after(None, 1).await.unwrap();
        let first = first.users().unwrap();

        // A plan's transaction holds the writing connection; a discovery changed user 2.
        let mut changed = sample_user(2);
        changed.mail = Some("moved@adatum.com".into());
        store.store_users(&[changed]).await.unwrap();
        let wave = crate::store::NewWave {
            name: "w".into(),
            selector: serde_json::json!({}),
            cap: None,
            settings: serde_json::json!({}),
        };
        let plan = store
            .begin_plan(&wave, time::macros::datetime!(2026-11-21 08:00 UTC))
            .await
            .unwrap();
        let rest = snapshot
            .rule_inputs_after(first.last().map(|u| u.id), 10)
            .await
            .unwrap()
            .users()
            .unwrap();
        drop(plan);
        assert_eq!(rest.len(), 1);
        assert_eq!(
            rest[0].mail,
            sample_user(2).mail,
            "read as it was when the read began"
        );
        drop(snapshot);
        let now = store
            .read_snapshot()
            .await
            .unwrap()
            .rule_inputs_after(None, 10)
            .await;
        assert_eq!(
            now.unwrap().users().unwrap()[1].mail.as_deref(),
            Some("moved@adatum.com")
        );
    }

    #[tokio::test]
    async fn the_rule_inputs_read_to_plan_decide_as_the_whole_snapshot_does() {
        let (_dir, store) = temp_store().await;
        let mut users: Vec<UserSnapshot> = (1..=5).map(sample_user).collect();
        users[1].on_premises.sync_enabled = None;
        users[1].assigned_plans[0].capability_status = Some("Deleted".into());
        users[2].identities[0].issuer = Some("ExternalAzureAD".into());
        users[3].account_enabled = Some(false);
        users[3].external_user_state = None;
        users[4].assigned_licenses[0].disabled_plans = vec![crate::rules::MAILBOX_PLANS[0]];
        store.store_users(&users).await.unwrap();

        let mut snapshot = store.read_snapshot().await.unwrap();
        let mut read = snapshot
            .rule_inputs_after(None, 2)
            .await
            .unwrap()
            .users()
            .unwrap();
        assert_eq!(read.len(), 2, "a part at a time");
        let after = read.last().map(|u| u.id);
        read.extend(
            snapshot
                .rule_inputs_after(after, 10)
                .await
                .unwrap()
                .users()
                .unwrap(),
        );

        let tenant = crate::rules::TenantView {
            verified_domains: crate::rules::DomainSet::new(["contoso.com"]),
            ..crate::rules::TenantView::default()
        };
        let policy = crate::rules::Policy::default();
        let decide = |user: &UserSnapshot| {
            let candidate = crate::rules::Candidate {
                user,
                override_address: None,
                excluded: None,
                other_waves: &[],
            };
            crate::rules::evaluate(
                candidate,
                &tenant,
                &policy,
                &HashMap::<String, Vec<_>>::new(),
            )
        };
        assert_eq!(read.len(), users.len());
        for (lean, full) in read.iter().zip(&users) {
            assert_eq!(lean.id, full.id, "in id order");
            assert_eq!(
                crate::rules::fingerprint(lean),
                crate::rules::fingerprint(full),
                "every rule input is read"
            );
            assert_eq!(decide(lean), decide(full));
        }
    }

    #[tokio::test]
    async fn users_are_found_by_upn_ignoring_case() {
        let (_dir, store) = temp_store().await;
        store.store_users(&[sample_user(4)]).await.unwrap();
        let found = store.user_by_upn("PARTNER4@Contoso.com").await.unwrap();
        assert_eq!(found.unwrap().id, UserId::from_uuid(Uuid::from_u128(4)));
        assert!(
            store
                .user_by_upn("nobody@contoso.com")
                .await
                .unwrap()
                .is_none()
        );
    }
}
