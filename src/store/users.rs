//! User snapshots as discovery stores them (upserts a page at a time, with their addresses
//! indexed in the same transaction), discovery runs, retiring users a complete discovery no
//! longer sees, and single-user look-ups. Reading the whole snapshot to plan is `snapshot`'s;
//! who owns an address is `addresses`'.

use std::collections::HashMap;

use sqlx::{QueryBuilder, Sqlite, Transaction};
use time::OffsetDateTime;

use super::addresses::replace_addresses;
use super::{
    Error, Result, Store, parse_code, parse_json, parse_optional_timestamp, parse_timestamp,
    timestamp, to_json,
};
use crate::domain::{OnPremisesProperties, RunId, UserId, UserProfile, UserSnapshot};

/// Users per multi-row statement: 26 parameters each, well under SQLite's 32,766.
const USERS_PER_STATEMENT: usize = 200;

/// Keys per batched look-up: one JSON array parameter, so only memory bounds it.
const KEYS_PER_LOOKUP: usize = 5_000;

/// A UPN as [`Store::users_by_upns`] keys it: ASCII case folded, as SQLite's `NOCASE` does.
pub fn upn_key(upn: &str) -> String {
    upn.to_ascii_lowercase()
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
    converted_to_internal_at: Option<String>,
    on_premises_sync_enabled: Option<bool>,
    on_premises_immutable_id: Option<String>,
    on_premises_sam_account_name: Option<String>,
    on_premises_distinguished_name: Option<String>,
    on_premises_domain_name: Option<String>,
    on_premises_user_principal_name: Option<String>,
    assigned_plans: String,
    assigned_licenses: String,
    identities: String,
    given_name: Option<String>,
    surname: Option<String>,
    preferred_language: Option<String>,
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
            converted_to_internal_at: parse_optional_timestamp(
                "user_snapshots.converted_to_internal_at",
                row.converted_to_internal_at.as_deref(),
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
            profile: UserProfile {
                given_name: row.given_name,
                surname: row.surname,
                preferred_language: row.preferred_language,
            },
            snapshot_at: parse_timestamp("user_snapshots.snapshot_at", &row.snapshot_at)?,
        })
    }
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

    /// Retires the users a delta read reported removed (deleted, restorably or not): they
    /// leave the collision index and the counts, and stay readable for wave history, as
    /// [`retire_unseen_users`](Self::retire_unseen_users) leaves them. Returns how many were
    /// active.
    #[tracing::instrument(skip_all, fields(users = ids.len()), err)]
    pub async fn retire_users(&self, ids: &[UserId], at: OffsetDateTime) -> Result<u64> {
        let ids = serde_json::to_string(&ids.iter().map(ToString::to_string).collect::<Vec<_>>())
            .expect("ids serialize");
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM directory_addresses WHERE object_id IN (SELECT value FROM json_each(?))",
        )
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
        let retired = sqlx::query(
            "UPDATE user_snapshots SET retired_at = ?
             WHERE retired_at IS NULL AND id IN (SELECT value FROM json_each(?))",
        )
        .bind(timestamp(at))
        .bind(&ids)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(retired)
    }

    /// How many distinct users a discovery stored (a user read twice counts once).
    pub async fn count_users_seen_by(&self, discovery: RunId) -> Result<u64> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM user_snapshots WHERE discovery_id = ?")
                .bind(discovery.to_string())
                .fetch_one(&self.pool)
                .await?;
        Ok(count.unsigned_abs())
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

    /// Looks many users up by id at once, a statement per 5,000 ids (a list of
    /// 100,000 users looked up one statement at a time spent most of `plan`'s time in
    /// round-trips). Ids not in the snapshot are absent from the map.
    pub async fn users_by_ids(&self, ids: &[UserId]) -> Result<HashMap<UserId, UserSnapshot>> {
        let mut found = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(KEYS_PER_LOOKUP) {
            let keys: Vec<String> = chunk.iter().map(UserId::to_string).collect();
            let rows = sqlx::query_as::<_, UserRow>(
                "SELECT * FROM user_snapshots WHERE id IN (SELECT value FROM json_each(?))",
            )
            .bind(to_json(&keys))
            .fetch_all(&self.pool)
            .await?;
            for row in rows {
                let user = UserSnapshot::try_from(row)?;
                found.insert(user.id, user);
            }
        }
        Ok(found)
    }

    /// Looks many users up by UPN at once, ignoring case as Entra ID does (ASCII case, as
    /// SQLite's `NOCASE` and [`upn_key`] fold it). The map is keyed by [`upn_key`].
    pub async fn users_by_upns(&self, upns: &[&str]) -> Result<HashMap<String, UserSnapshot>> {
        let mut found = HashMap::with_capacity(upns.len());
        for chunk in upns.chunks(KEYS_PER_LOOKUP) {
            let rows = sqlx::query_as::<_, UserRow>(
                "SELECT * FROM user_snapshots \
                 WHERE user_principal_name COLLATE NOCASE IN (SELECT value FROM json_each(?))",
            )
            .bind(to_json(&chunk))
            .fetch_all(&self.pool)
            .await?;
            for row in rows {
                let user = UserSnapshot::try_from(row)?;
                found.insert(upn_key(&user.user_principal_name), user);
            }
        }
        Ok(found)
    }

    /// Users in the snapshot, not counting retired ones.
    pub async fn count_users(&self) -> Result<u64> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM user_snapshots WHERE retired_at IS NULL")
                .fetch_one(&self.pool)
                .await?;
        Ok(count.unsigned_abs())
    }
}

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
                assigned_licenses, identities, snapshot_at, discovery_id,
                converted_to_internal_at, given_name, surname, preferred_language) ",
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
                .push_bind(discovery.clone())
                .push_bind(user.converted_to_internal_at.map(timestamp))
                .push_bind(user.profile.given_name.clone())
                .push_bind(user.profile.surname.clone())
                .push_bind(user.profile.preferred_language.clone());
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
                converted_to_internal_at = excluded.converted_to_internal_at,
                on_premises_sync_enabled = excluded.on_premises_sync_enabled,
                on_premises_immutable_id = excluded.on_premises_immutable_id,
                on_premises_sam_account_name = excluded.on_premises_sam_account_name,
                on_premises_distinguished_name = excluded.on_premises_distinguished_name,
                on_premises_domain_name = excluded.on_premises_domain_name,
                on_premises_user_principal_name = excluded.on_premises_user_principal_name,
                assigned_plans = excluded.assigned_plans,
                assigned_licenses = excluded.assigned_licenses,
                identities = excluded.identities,
                given_name = excluded.given_name,
                surname = excluded.surname,
                preferred_language = excluded.preferred_language,
                snapshot_at = excluded.snapshot_at,
                discovery_id = COALESCE(excluded.discovery_id, user_snapshots.discovery_id),
                retired_at = NULL",
        );
        insert.build().execute(&mut **tx).await?;

        replace_addresses(tx, chunk).await?;
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
            converted_to_internal_at: Some(datetime!(2026-03-08 16:21:33 UTC)),
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
            profile: UserProfile {
                given_name: Some(format!("Zoë{n}")),
                surname: Some("O'Neil".into()),
                preferred_language: Some("fr-FR".into()),
            },
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

    #[tokio::test]
    async fn many_users_are_found_at_once_by_id_and_by_upn_ignoring_case() {
        let (_dir, store) = temp_store().await;
        let users: Vec<UserSnapshot> = (1..=3).map(sample_user).collect();
        store.store_users(&users).await.unwrap();
        let absent = UserId::from_uuid(Uuid::from_u128(99));

        let by_id = store
            .users_by_ids(&[users[0].id, absent, users[2].id])
            .await
            .unwrap();
        assert_eq!(by_id.len(), 2);
        assert_eq!(by_id[&users[2].id], users[2]);

        let by_upn = store
            .users_by_upns(&["PARTNER2@Contoso.com", "nobody@contoso.com"])
            .await
            .unwrap();
        assert_eq!(by_upn.len(), 1);
        assert_eq!(by_upn[&upn_key("partner2@CONTOSO.com")].id, users[1].id);
    }
}
