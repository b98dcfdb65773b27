//! Member state changes: compare-and-set transitions (a change applies only if the member is
//! still in the state the caller read), each written together with its event or not at all.
//! The reason a run survives `kill -9` at any point. Callers decide which transitions are
//! allowed (`execute`); this file only applies them.

use time::OffsetDateTime;

use super::events::insert_event;
use super::{Error, NewEvent, Result, Store, Tx, timestamp};
use crate::domain::{FailureKind, InvitationId, UserId, UserState, WaveId};

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

impl Store {
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

    /// Records what became of the `mail` `run` set, for a member whose invitation failed
    /// for good, with its event, in one transaction. `false` (nothing written) when the
    /// member is not `failed`.
    pub async fn record_mail_restore(
        &self,
        wave: WaveId,
        user: UserId,
        outcome: super::MailRestore,
        event: &NewEvent,
        at: OffsetDateTime,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE wave_members SET mail_restore = ?
             WHERE wave_id = ? AND user_id = ? AND state = 'failed'",
        )
        .bind(outcome.code())
        .bind(wave.0)
        .bind(user.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if updated {
            insert_event(&mut tx, event, at).await?;
            tx.commit().await?;
        }
        Ok(updated)
    }

    /// The last change of `mail` `run` recorded for the member before sending it
    /// (`mail.intent`): the value before and the value set.
    pub async fn mail_change(
        &self,
        wave: WaveId,
        user: UserId,
    ) -> Result<Option<(Option<String>, String)>> {
        let detail: Option<(String,)> = sqlx::query_as(
            "SELECT detail FROM events
             WHERE user_id = ? AND wave_id = ? AND kind = 'mail.intent'
             ORDER BY id DESC LIMIT 1",
        )
        .bind(user.to_string())
        .bind(wave.0)
        .fetch_optional(&self.pool)
        .await?;
        let Some((detail,)) = detail else {
            return Ok(None);
        };
        let detail: serde_json::Value =
            serde_json::from_str(&detail).map_err(|e| Error::Corrupt {
                column: "events.detail",
                message: e.to_string(),
            })?;
        let from = detail["from"].as_str().map(str::to_owned);
        Ok(detail["to"].as_str().map(|to| (from, to.to_owned())))
    }

    /// Remembers the user's fingerprint after `run` set its `mail` (see
    /// [`WaveMember::mail_set_fingerprint`](super::WaveMember::mail_set_fingerprint)).
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

#[cfg(test)]
mod tests {
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;
    use crate::store::testing::temp_store;
    use crate::store::waves::tests::{planned_wave, start_inviting};

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
}
