//! Conversion baselines: per wave member, what its conversion must keep (UPN, direct groups,
//! app role assignment count) as read right before its invitation. `verify` compares them with
//! the user's state afterwards.

use uuid::Uuid;

use super::{Error, Result, Store, parse_code, parse_json, parse_timestamp, timestamp, to_json};
use crate::domain::{ConversionBaseline, UserId, WaveId};

#[derive(sqlx::FromRow)]
struct BaselineRow {
    user_id: String,
    user_principal_name: String,
    group_ids: String,
    app_role_assignments: i64,
    taken_at: String,
}

impl TryFrom<BaselineRow> for ConversionBaseline {
    type Error = Error;

    fn try_from(row: BaselineRow) -> Result<Self> {
        let mut group_ids: Vec<Uuid> =
            parse_json("conversion_baselines.group_ids", &row.group_ids)?;
        group_ids.sort_unstable();
        group_ids.dedup();
        Ok(Self {
            user_id: parse_code("conversion_baselines.user_id", &row.user_id)?,
            user_principal_name: row.user_principal_name,
            group_ids,
            app_role_assignments: u32::try_from(row.app_role_assignments).map_err(|e| {
                Error::Corrupt {
                    column: "conversion_baselines.app_role_assignments",
                    message: e.to_string(),
                }
            })?,
            taken_at: parse_timestamp("conversion_baselines.taken_at", &row.taken_at)?,
        })
    }
}

fn sorted(group_ids: &[Uuid]) -> Vec<Uuid> {
    let mut ids = group_ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    ids
}

impl Store {
    /// Records `baseline` for its user in `wave`, replacing an earlier one: the executor takes
    /// it right before each invitation, so the latest reading before the invitation wins.
    /// The user must be a member of the wave ([`Error::NotAMember`] otherwise).
    #[tracing::instrument(skip_all, fields(wave = %wave, user = %baseline.user_id), err)]
    pub async fn save_baseline(&self, wave: WaveId, baseline: &ConversionBaseline) -> Result<()> {
        let result = sqlx::query(
            "INSERT INTO conversion_baselines
                 (wave_id, user_id, user_principal_name, group_ids, app_role_assignments, taken_at)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (wave_id, user_id) DO UPDATE SET
                 user_principal_name = excluded.user_principal_name,
                 group_ids = excluded.group_ids,
                 app_role_assignments = excluded.app_role_assignments,
                 taken_at = excluded.taken_at",
        )
        .bind(wave.0)
        .bind(baseline.user_id.to_string())
        .bind(&baseline.user_principal_name)
        .bind(to_json(&sorted(&baseline.group_ids)))
        .bind(i64::from(baseline.app_role_assignments))
        .bind(timestamp(baseline.taken_at))
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
                Err(Error::NotAMember {
                    wave: wave.to_string(),
                    user: baseline.user_id.to_string(),
                })
            }
            Err(other) => Err(other.into()),
        }
    }

    /// A wave's baselines, ordered by user id.
    pub async fn baselines(&self, wave: WaveId) -> Result<Vec<ConversionBaseline>> {
        sqlx::query_as::<_, BaselineRow>(
            "SELECT user_id, user_principal_name, group_ids, app_role_assignments, taken_at
             FROM conversion_baselines WHERE wave_id = ? ORDER BY user_id",
        )
        .bind(wave.0)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(ConversionBaseline::try_from)
        .collect()
    }

    /// One member's baseline, if one was taken.
    pub async fn baseline(&self, wave: WaveId, user: UserId) -> Result<Option<ConversionBaseline>> {
        sqlx::query_as::<_, BaselineRow>(
            "SELECT user_id, user_principal_name, group_ids, app_role_assignments, taken_at
             FROM conversion_baselines WHERE wave_id = ? AND user_id = ?",
        )
        .bind(wave.0)
        .bind(user.to_string())
        .fetch_optional(&self.pool)
        .await?
        .map(ConversionBaseline::try_from)
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;
    use time::macros::datetime;

    use super::*;
    use crate::domain::Decision;
    use crate::store::testing::temp_store;
    use crate::store::users::tests::sample_user;
    use crate::store::{NewWave, PlannedMember};

    fn user(n: u128) -> UserId {
        UserId::from_uuid(Uuid::from_u128(n))
    }

    async fn wave_of_two(store: &Store, name: &str) -> WaveId {
        store
            .store_users(&[sample_user(1), sample_user(2)])
            .await
            .unwrap();
        let members: Vec<PlannedMember> = [1, 2]
            .into_iter()
            .map(|n| PlannedMember {
                user_id: user(n),
                decision: Decision::Eligible,
                findings: vec![],
                chosen_address: Some(format!("p{n}@fabrikam.com")),
                address_origin: None,
                set_mail: false,
                snapshot_fingerprint: format!("fp{n}"),
            })
            .collect();
        let wave = NewWave {
            name: name.into(),
            selector: serde_json::json!({"all": true}),
            cap: None,
            settings: serde_json::json!({}),
        };
        store
            .create_planned_wave(&wave, &members, "h", datetime!(2026-11-21 08:00 UTC))
            .await
            .unwrap()
            .id
    }

    fn baseline(n: u128, groups: &[u128], at: OffsetDateTime) -> ConversionBaseline {
        ConversionBaseline {
            user_id: user(n),
            user_principal_name: format!("partner{n}@contoso.com"),
            group_ids: groups.iter().map(|g| Uuid::from_u128(*g)).collect(),
            app_role_assignments: 2,
            taken_at: at,
        }
    }

    #[tokio::test]
    async fn baselines_are_saved_read_back_sorted_and_replaced() {
        let (_dir, store) = temp_store().await;
        let wave = wave_of_two(&store, "pilot").await;
        let early = datetime!(2026-11-21 09:00 UTC);
        store
            .save_baseline(wave, &baseline(1, &[30, 10, 20, 10], early))
            .await
            .unwrap();
        let saved = store.baseline(wave, user(1)).await.unwrap().unwrap();
        assert_eq!(
            saved.group_ids,
            [10, 20, 30].map(Uuid::from_u128).to_vec(),
            "sorted, once each"
        );
        assert_eq!(saved.taken_at, early);
        assert_eq!(store.baseline(wave, user(2)).await.unwrap(), None);

        let later = baseline(1, &[10], datetime!(2026-11-21 09:05 UTC));
        store.save_baseline(wave, &later).await.unwrap();
        store
            .save_baseline(wave, &baseline(2, &[], early))
            .await
            .unwrap();
        let all = store.baselines(wave).await.unwrap();
        assert_eq!(
            all.len(),
            2,
            "one per member: the later reading replaced the first"
        );
        assert_eq!(all[0], later);
        assert_eq!(all[1].user_id, user(2));
    }

    #[tokio::test]
    async fn only_members_get_baselines_and_a_replan_drops_them() {
        let (_dir, store) = temp_store().await;
        let wave = wave_of_two(&store, "pilot").await;
        let at = datetime!(2026-11-21 09:00 UTC);
        let err = store
            .save_baseline(wave, &baseline(9, &[], at))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotAMember { .. }), "{err}");
        let err = store
            .save_baseline(WaveId(99), &baseline(1, &[], at))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotAMember { .. }), "{err}");

        store
            .save_baseline(wave, &baseline(1, &[1], at))
            .await
            .unwrap();
        let stored = store.wave_by_name("pilot").await.unwrap().unwrap();
        store
            .replace_plan(&stored, &[], "empty", datetime!(2026-11-21 09:10 UTC))
            .await
            .expect("a member that never started converting may be re-planned away");
        assert!(store.baselines(wave).await.unwrap().is_empty());
    }
}
