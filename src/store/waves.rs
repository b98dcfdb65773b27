//! Waves: one row per wave (name, selector, cap, the settings its plan was made with, the
//! plan's hash). Member rows live in `members`, their state changes in `transitions`, a plan
//! being written in `plan_transaction`.

use time::OffsetDateTime;

use super::{
    Error, Result, Store, Tx, parse_json, parse_optional_timestamp, parse_timestamp, timestamp,
};
use crate::domain::WaveId;

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

impl Store {
    /// Creates a wave without a plan; its name must be new (names compare
    /// case-insensitively). The product creates waves with their plan
    /// ([`Store::begin_plan`]); tests set up waves this way.
    #[cfg(test)]
    pub async fn create_wave(&self, wave: &NewWave, at: OffsetDateTime) -> Result<Wave> {
        let mut tx = self.pool.begin().await?;
        insert_wave(&mut tx, wave, at).await?;
        tx.commit().await?;
        self.stored_wave(&wave.name).await
    }

    pub(super) async fn stored_wave(&self, name: &str) -> Result<Wave> {
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
}

/// Inserts a wave; its name must be new (names compare case-insensitively).
pub(super) async fn insert_wave(tx: &mut Tx, wave: &NewWave, at: OffsetDateTime) -> Result<WaveId> {
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

#[cfg(test)]
pub(crate) mod tests {
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;
    use crate::domain::{Decision, UserId, UserState};
    use crate::rules::{AddressOrigin, Finding, Reason, Severity};
    use crate::store::testing::temp_store;
    use crate::store::users::tests::sample_user;
    use crate::store::{PlannedMember, Transition};

    pub(crate) fn new_wave(name: &str) -> NewWave {
        NewWave {
            name: name.into(),
            selector: serde_json::json!({"csv": "pilot.csv"}),
            cap: Some(50),
            settings: serde_json::json!({"send_message": true}),
        }
    }

    pub(crate) fn planned(n: u128, decision: Decision) -> PlannedMember {
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

    pub(crate) async fn planned_wave(store: &Store) -> Wave {
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

    pub(crate) async fn start_inviting(
        store: &Store,
        wave: &Wave,
        user: UserId,
        at: OffsetDateTime,
    ) -> Result<()> {
        let transition = Transition::new(UserState::Ready, UserState::Inviting, at);
        store.transition(wave.id, user, &transition).await
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
}
