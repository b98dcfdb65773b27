//! A plan being stored: the first plan of a new wave (created in the same transaction) or a
//! re-plan replacing the previous members range by range, written in parts in ascending user
//! order and committed with the plan's hash, cap and settings. Nothing of it is visible until
//! it commits. It does not decide anything: members arrive decided (`plan`), as they are or
//! already encoded for the insert ([`PlanPart`]).

use sqlx::{QueryBuilder, Sqlite};
use time::OffsetDateTime;

use super::waves::insert_wave;
use super::{
    Error, NewWave, PlannedMember, Result, Store, Tx, Wave, parse_code, timestamp, to_json,
};
use crate::domain::{Decision, UserId, UserState, WaveId};

/// Members per multi-row insert: 12 parameters each, well under SQLite's limit.
const MEMBERS_PER_STATEMENT: usize = 500;
/// Members inserted per statement, as one JSON document.
const MEMBERS_PER_DOCUMENT: usize = 5_000;

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

/// A part of a plan ready to be written: its members' user ids, in ascending order, and the
/// insert's JSON documents. A planner encodes a part where it decides it, so the store's
/// thread starts writing it as soon as it is handed over.
#[derive(Clone, Debug, Default)]
pub struct PlanPart {
    users: Vec<UserId>,
    documents: Vec<String>,
}

impl PlanPart {
    /// Encodes `members` for [`PlanTransaction::write_part`].
    pub fn encode(members: &[PlannedMember]) -> Self {
        Self {
            users: members.iter().map(|m| m.user_id).collect(),
            documents: members
                .chunks(MEMBERS_PER_DOCUMENT)
                .map(members_document)
                .collect(),
        }
    }
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

    /// Stores a wave's whole plan at once, replacing the previous one in one transaction,
    /// together with the wave's cap and settings as given in `wave`. Refused once any member
    /// has started converting: a started wave keeps the plan it runs.
    #[cfg(test)]
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
    pub async fn write(&mut self, members: &[PlannedMember]) -> Result<Replaced> {
        self.write_part(PlanPart::encode(members)).await
    }

    /// Stores the next part of the plan, which must follow the members already written in
    /// ascending user order, and drops the previous plan's members up to its last one.
    #[tracing::instrument(skip_all, fields(wave = %self.name, members = part.users.len()), err)]
    pub async fn write_part(&mut self, part: PlanPart) -> Result<Replaced> {
        let users = &part.users;
        let (Some(&first), Some(&last)) = (users.first(), users.last()) else {
            return Ok(Replaced::default());
        };
        assert!(
            self.last.is_none_or(|before| before < first) && users.is_sorted(),
            "plan members are written in ascending user order"
        );
        let replaced = if self.replacing {
            self.replace_until(users, last).await?
        } else {
            Replaced::default()
        };
        insert_members(&mut self.tx, self.wave, part.documents, &self.at).await?;
        self.last = Some(last);
        Ok(replaced)
    }

    /// Drops the previous plan's members after the last one written and up to `until`,
    /// reading the decisions of those among `users` first.
    async fn replace_until(&mut self, users: &[UserId], until: UserId) -> Result<Replaced> {
        let mut previous = Vec::new();
        for chunk in users.chunks(MEMBERS_PER_STATEMENT) {
            let mut query = QueryBuilder::<Sqlite>::new(
                "SELECT user_id, decision, chosen_address FROM wave_members WHERE wave_id = ",
            );
            query.push_bind(self.wave.0).push(" AND user_id IN (");
            let mut ids = query.separated(", ");
            for user in chunk {
                ids.push_bind(user.to_string());
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

/// One insert's members as one JSON document, which SQLite takes apart: a value to hand over
/// per part rather than a dozen per member. The reasons and findings are nested in it as
/// JSON, not as strings of JSON, and come out as their JSON text (`->`): what `to_json` of
/// them would store, without escaping them twice.
fn members_document(members: &[PlannedMember]) -> String {
    let rows: Vec<_> = members
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
    to_json(&rows)
}

/// Inserts planned members, ready or excluded by their decision, from their
/// [`members_document`]s.
async fn insert_members(
    tx: &mut Tx,
    id: WaveId,
    documents: Vec<String>,
    at_text: &str,
) -> Result<()> {
    for document in documents {
        // In the document's order, which is the key's (the rows are the same in any order:
        // asking SQLite to sort them by key cost a sort of each document's rows).
        sqlx::query(
            "INSERT INTO wave_members (wave_id, user_id, decision, reasons, findings,
                    chosen_address, address_origin, set_mail, snapshot_fingerprint, state,
                    planned_at, state_changed_at)
             SELECT ?, m ->> 0, m ->> 1, m -> 2, m -> 3, m ->> 4, m ->> 5, m ->> 6, m ->> 7,
                    m ->> 8, ?, ?
             FROM (SELECT value AS m FROM jsonb_each(?))",
        )
        .bind(id.0)
        .bind(at_text)
        .bind(at_text)
        .bind(document)
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
    use crate::rules::Reason;
    use crate::store::testing::temp_store;
    use crate::store::users::tests::sample_user;
    use crate::store::waves::tests::{new_wave, planned, planned_wave, start_inviting};

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
