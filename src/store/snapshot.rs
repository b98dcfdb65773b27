//! Reading the stored snapshot to plan: one read transaction on the store's read-only
//! connection ([`SnapshotRead`]) that sees one moment however long it takes, in two shapes —
//! the few columns the address choice needs, in storage order, and the rule inputs of a part
//! of the users, in id order, as one JSON document SQLite assembles. It never writes.

use serde::Deserialize;
use sqlx::{Sqlite, Transaction};

use time::OffsetDateTime;

use super::{Error, Result, Store, parse_code, parse_json, parse_optional_timestamp};
use crate::domain::{
    AssignedLicense, AssignedPlan, ObjectIdentity, OnPremisesProperties, UserId, UserSnapshot,
};

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
/// flag, mail, and otherMails nested as JSON.
#[derive(Deserialize)]
struct AddressFieldsJson(String, Option<u8>, Option<String>, Vec<String>);

impl TryFrom<AddressFieldsJson> for AddressFields {
    type Error = Error;

    fn try_from(
        AddressFieldsJson(id, synced, mail, other_mails): AddressFieldsJson,
    ) -> Result<Self> {
        Ok(Self {
            id: parse_code("user_snapshots.id", &id)?,
            synced: synced == Some(1),
            mail,
            other_mails,
        })
    }
}

/// Where a read of the snapshot in storage order stopped; the next read goes on from there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoragePosition(i64);

/// One user's rule inputs as [`SnapshotRead::rule_inputs_after`] reads them: the columns of a snapshot the
/// eligibility rules and the rule-input fingerprint read
/// ([`rules::fingerprint`](crate::rules::fingerprint) names them all), in this order.
///
/// The JSON columns come nested as JSON (`json(..)`), not as strings of their stored text: SQLite
/// takes no longer to embed them so (3.51, measured), and they are taken apart once, with no
/// string escaped by SQLite and unescaped here on the way.
#[derive(Deserialize)]
struct RuleInputsJson(
    String,
    String,
    Option<String>,
    Vec<String>,
    Vec<String>,
    Option<String>,
    Option<u8>,
    Option<String>,
    Option<String>,
    Option<u8>,
    Option<String>,
    Vec<PlanInputs>,
    Vec<LicenseInputs>,
    Vec<IdentityInputs>,
    Option<String>,
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
            converted_to_internal_at,
        ) = row;
        Ok(Self {
            id: parse_code("user_snapshots.id", &id)?,
            user_principal_name,
            display_name: None,
            mail,
            other_mails,
            proxy_addresses,
            user_type,
            account_enabled: account_enabled.map(|v| v != 0),
            creation_type,
            external_user_state,
            external_user_state_changed_at: None,
            converted_to_internal_at: parse_optional_timestamp(
                "user_snapshots.converted_to_internal_at",
                converted_to_internal_at.as_deref(),
            )?,
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
            profile: crate::domain::UserProfile::default(),
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
    /// would read the table's pages out of order), and where the next read goes on; `None` at
    /// the end.
    ///
    /// SQLite gathers the part into one JSON document, so a part is one value to hand over
    /// rather than four per user (otherMails is nested in it as JSON);
    /// [`AddressPart::fields`] takes it apart, which a caller can do while the store reads the
    /// next part.
    pub async fn active_address_fields(
        &mut self,
        after: StoragePosition,
        limit: usize,
    ) -> Result<Option<(AddressPart, StoragePosition)>> {
        let (last, part): (Option<i64>, Option<String>) = sqlx::query_as(
            "SELECT max(rowid), json_group_array(json_array(id, on_premises_sync_enabled, mail,
                    json(other_mails)))
             FROM (SELECT rowid, id, on_premises_sync_enabled, mail, other_mails
                   FROM user_snapshots
                   WHERE retired_at IS NULL AND rowid > ? ORDER BY rowid LIMIT ?)",
        )
        .bind(after.0)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(last.map(|last| (AddressPart(part), StoragePosition(last))))
    }

    /// Up to `limit` users that are not retired, the next ones after `after` in id order,
    /// with the properties the rules read and no others (names, dates, directory paths are
    /// left empty: a planner reads a million of them).
    ///
    /// SQLite gathers the part into one JSON document, so a part is one value to hand over
    /// rather than fifteen per user; [`RuleInputs::users`] takes it apart, which a caller can
    /// do while the store goes on with its next statement.
    pub async fn rule_inputs_after(
        &mut self,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<RuleInputs> {
        // One JSON array per user, in `RuleInputsJson`'s order.
        let part: Option<String> = sqlx::query_scalar(
            "SELECT json_group_array(json_array(id, user_principal_name, mail, json(other_mails),
                    json(proxy_addresses), user_type, account_enabled, creation_type,
                    external_user_state, on_premises_sync_enabled, on_premises_user_principal_name,
                    json(assigned_plans), json(assigned_licenses), json(identities),
                    converted_to_internal_at))
             FROM (SELECT id, user_principal_name, mail, other_mails, proxy_addresses,
                          user_type, account_enabled, creation_type, external_user_state,
                          on_premises_sync_enabled, on_premises_user_principal_name,
                          assigned_plans, assigned_licenses, identities, converted_to_internal_at
                   FROM user_snapshots
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

/// A part of the snapshot's address fields as [`SnapshotRead::active_address_fields`] read
/// it, not taken apart.
#[derive(Debug)]
pub struct AddressPart(Option<String>);

impl AddressPart {
    /// The users' address fields, in the order they are stored.
    pub fn fields(&self) -> Result<Vec<AddressFields>> {
        let rows: Vec<AddressFieldsJson> = parse_json(
            "user_snapshots (address fields)",
            self.0.as_deref().unwrap_or("[]"),
        )?;
        rows.into_iter().map(AddressFields::try_from).collect()
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::store::testing::temp_store;
    use crate::store::users::tests::sample_user;

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
        let (part, after) = read
            .active_address_fields(StoragePosition::default(), 2)
            .await
            .unwrap()
            .unwrap();
        let mut fields = part.fields().unwrap();
        assert_eq!(fields.len(), 2, "a part at a time");
        let (rest, end) = read.active_address_fields(after, 2).await.unwrap().unwrap();
        fields.extend(rest.fields().unwrap());
        let none = read.active_address_fields(end, 2).await.unwrap();
        assert!(none.is_none(), "then the end");
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
}
