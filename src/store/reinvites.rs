//! Re-sent invitations (`reinvite`): which members a selection picks, the re-send operations
//! (`reinvites`) with each selected member's progress (`reinvite_members`), the record of a
//! re-send — compare-and-set on the operation's row and on the wave member, with its event, in
//! one transaction — and the pending members `status --pending` lists. Which step is allowed
//! is decided by `execute::reinvite`; this file only applies it.

use sqlx::{QueryBuilder, Sqlite};
use time::OffsetDateTime;

use super::events::insert_event;
use super::{
    Error, NewEvent, Result, Store, parse_code, parse_json, parse_optional_timestamp,
    parse_timestamp, timestamp, to_json,
};
use crate::domain::{InvitationId, RunId, UserId, UserState, WaveId};

/// Which of a wave's members a re-send selects (all given conditions hold).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResendCriteria {
    /// The member's state: `invited` to resend, `accepted` to reset a redemption.
    pub state: Option<UserState>,
    /// Only members without a stored redemption link.
    pub missing_link: bool,
    /// Only members whose invitation was last sent (or re-sent) before this time.
    pub sent_before: Option<OffsetDateTime>,
    /// Only these users (all when empty).
    pub users: Vec<UserId>,
}

/// How far one member's re-send got in an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResendState {
    /// Selected; nothing recorded for it yet.
    Selected,
    /// Intent recorded: the invitation may be on its way (settled by reading the user).
    Sending,
    /// Graph answered: it was re-sent.
    Sent,
    /// The answer was lost: it may have been re-sent; never sent again by this operation.
    Unknown,
    /// Not sent: the member or the user was no longer what the selection asked for.
    Skipped,
    /// Graph refused it.
    Failed,
}

impl ResendState {
    pub const ALL: [Self; 6] = [
        Self::Selected,
        Self::Sending,
        Self::Sent,
        Self::Unknown,
        Self::Skipped,
        Self::Failed,
    ];

    pub const fn code(self) -> &'static str {
        match self {
            Self::Selected => "selected",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Unknown => "unknown",
            Self::Skipped => "skipped",
            Self::Failed => "failed",
        }
    }

    /// Whether the operation still has something to do for the member.
    pub const fn is_open(self) -> bool {
        matches!(self, Self::Selected | Self::Sending)
    }
}

impl std::str::FromStr for ResendState {
    type Err = crate::domain::UnknownCode;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.code() == s)
            .ok_or_else(|| crate::domain::UnknownCode {
                kind: "ResendState",
                code: s.to_owned(),
            })
    }
}

/// A re-send operation over a wave.
#[derive(Clone, Debug, PartialEq)]
pub struct Reinvite {
    pub id: RunId,
    pub wave_id: WaveId,
    /// The selectors as given (JSON), to tell a rerun from another selection.
    pub selection: serde_json::Value,
    pub started_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
}

/// One member of an operation and how far its re-send got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResendMember {
    pub user_id: UserId,
    pub state: ResendState,
    /// Graph's `externalUserStateChangeDateTime` read before the invitation was sent.
    pub state_before: Option<OffsetDateTime>,
    pub note: Option<String>,
}

/// What a re-send that landed changes on the wave member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resent {
    /// The member's state before: `invited` (it stays so) or `accepted` (a redemption reset:
    /// it becomes `invited` again).
    pub from: UserState,
    pub invitation_id: Option<InvitationId>,
    /// The new redemption link (own-distribution mode only; sensitive).
    pub invite_redeem_url: Option<String>,
    pub external_state_changed_at: Option<OffsetDateTime>,
}

/// A member waiting to redeem, for `status --pending`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingMember {
    pub user_id: UserId,
    pub user_principal_name: String,
    pub address: Option<String>,
    pub invited_at: Option<OffsetDateTime>,
    pub resent_at: Option<OffsetDateTime>,
    pub has_link: bool,
}

#[derive(sqlx::FromRow)]
struct ReinviteRow {
    id: String,
    wave_id: i64,
    selection: String,
    started_at: String,
    finished_at: Option<String>,
}

impl TryFrom<ReinviteRow> for Reinvite {
    type Error = Error;

    fn try_from(row: ReinviteRow) -> Result<Self> {
        Ok(Self {
            id: parse_code("reinvites.id", &row.id)?,
            wave_id: WaveId(row.wave_id),
            selection: parse_json("reinvites.selection", &row.selection)?,
            started_at: parse_timestamp("reinvites.started_at", &row.started_at)?,
            finished_at: parse_optional_timestamp(
                "reinvites.finished_at",
                row.finished_at.as_deref(),
            )?,
        })
    }
}

impl Store {
    /// The members `criteria` selects, in user order.
    pub async fn resend_candidates(
        &self,
        wave: WaveId,
        criteria: &ResendCriteria,
    ) -> Result<Vec<UserId>> {
        let mut query =
            QueryBuilder::<Sqlite>::new("SELECT user_id FROM wave_members WHERE wave_id = ");
        query.push_bind(wave.0);
        if let Some(state) = criteria.state {
            query.push(" AND state = ").push_bind(state.code());
        }
        if criteria.missing_link {
            query.push(" AND invite_redeem_url IS NULL");
        }
        if let Some(before) = criteria.sent_before {
            query
                .push(" AND COALESCE(resent_at, invited_at) < ")
                .push_bind(timestamp(before));
        }
        if !criteria.users.is_empty() {
            query.push(" AND user_id IN (");
            let mut list = query.separated(", ");
            for user in &criteria.users {
                list.push_bind(user.to_string());
            }
            query.push(")");
        }
        query.push(" ORDER BY user_id");
        let rows: Vec<(String,)> = query.build_query_as().fetch_all(&self.pool).await?;
        rows.into_iter()
            .map(|(id,)| parse_code("wave_members.user_id", &id))
            .collect()
    }

    /// The wave's unfinished re-send operation, if any.
    pub async fn open_reinvite(&self, wave: WaveId) -> Result<Option<Reinvite>> {
        sqlx::query_as::<_, ReinviteRow>(
            "SELECT id, wave_id, selection, started_at, finished_at FROM reinvites
             WHERE wave_id = ? AND finished_at IS NULL ORDER BY started_at LIMIT 1",
        )
        .bind(wave.0)
        .fetch_optional(&self.pool)
        .await?
        .map(Reinvite::try_from)
        .transpose()
    }

    /// Records a new operation and the members it selected, in one transaction.
    pub async fn start_reinvite(
        &self,
        id: RunId,
        wave: WaveId,
        selection: &serde_json::Value,
        users: &[UserId],
        at: OffsetDateTime,
    ) -> Result<Reinvite> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO reinvites (id, wave_id, selection, started_at) VALUES (?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(wave.0)
        .bind(to_json(selection))
        .bind(timestamp(at))
        .execute(&mut *tx)
        .await?;
        for user in users {
            sqlx::query(
                "INSERT INTO reinvite_members (reinvite_id, user_id, state, changed_at)
                 VALUES (?, ?, 'selected', ?)",
            )
            .bind(id.to_string())
            .bind(user.to_string())
            .bind(timestamp(at))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Reinvite {
            id,
            wave_id: wave,
            selection: selection.clone(),
            started_at: at,
            finished_at: None,
        })
    }

    /// An operation's members, in user order.
    pub async fn reinvite_members(&self, id: RunId) -> Result<Vec<ResendMember>> {
        let rows: Vec<(String, String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT user_id, state, state_before, note FROM reinvite_members
             WHERE reinvite_id = ? ORDER BY user_id",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(user, state, before, note)| {
                Ok(ResendMember {
                    user_id: parse_code("reinvite_members.user_id", &user)?,
                    state: parse_code("reinvite_members.state", &state)?,
                    state_before: parse_optional_timestamp(
                        "reinvite_members.state_before",
                        before.as_deref(),
                    )?,
                    note,
                })
            })
            .collect()
    }

    /// Moves a member of an operation from `from` to `to` (compare-and-set), with its event,
    /// in one transaction. `state_before` is kept when given (the intent's reading).
    #[allow(clippy::too_many_arguments)] // one step: where, what, why, and its record
    pub async fn resend_step(
        &self,
        id: RunId,
        user: UserId,
        from: ResendState,
        to: ResendState,
        state_before: Option<OffsetDateTime>,
        note: Option<&str>,
        event: &NewEvent,
        at: OffsetDateTime,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let updated = step(&mut tx, id, user, from, to, state_before, note, at).await?;
        if !updated {
            return Err(resend_conflict(id, user, from));
        }
        insert_event(&mut tx, event, at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A re-send that may have landed without its answer: the member's row becomes `unknown`
    /// and its `resent_at` is stamped (so `--older-than` does not pick it again at once), with
    /// the event, in one transaction.
    pub async fn record_resend_unknown(
        &self,
        id: RunId,
        wave: WaveId,
        user: UserId,
        note: &str,
        event: &NewEvent,
        at: OffsetDateTime,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let from = ResendState::Sending;
        if !step(
            &mut tx,
            id,
            user,
            from,
            ResendState::Unknown,
            None,
            Some(note),
            at,
        )
        .await?
        {
            return Err(resend_conflict(id, user, from));
        }
        sqlx::query("UPDATE wave_members SET resent_at = ? WHERE wave_id = ? AND user_id = ?")
            .bind(timestamp(at))
            .bind(wave.0)
            .bind(user.to_string())
            .execute(&mut *tx)
            .await?;
        insert_event(&mut tx, event, at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A re-send that landed: the operation's row `sending → sent`, and the wave member
    /// (compare-and-set on `resent.from`) `invited` with the new invitation, its link when
    /// kept, and `resent_at`; with the event, in one transaction. A redemption reset
    /// (`accepted → invited`) is invited anew (`invited_at`), and a link of the earlier
    /// invitation is dropped.
    pub async fn record_resent(
        &self,
        id: RunId,
        wave: WaveId,
        user: UserId,
        resent: &Resent,
        event: &NewEvent,
        at: OffsetDateTime,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let from = ResendState::Sending;
        if !step(&mut tx, id, user, from, ResendState::Sent, None, None, at).await? {
            return Err(resend_conflict(id, user, from));
        }
        let redemption_reset = resent.from != UserState::Invited;
        let at_text = timestamp(at);
        let updated = sqlx::query(
            "UPDATE wave_members SET
                state = 'invited',
                state_changed_at = ?,
                invitation_id = COALESCE(?, invitation_id),
                invite_redeem_url = CASE WHEN ? THEN ? ELSE COALESCE(?, invite_redeem_url) END,
                invited_at = CASE WHEN ? THEN ? ELSE invited_at END,
                resent_at = ?,
                external_state_changed_at = COALESCE(?, external_state_changed_at)
             WHERE wave_id = ? AND user_id = ? AND state = ?",
        )
        .bind(&at_text)
        .bind(resent.invitation_id.as_ref().map(|i| i.0.as_str()))
        .bind(redemption_reset)
        .bind(resent.invite_redeem_url.as_deref())
        .bind(resent.invite_redeem_url.as_deref())
        .bind(redemption_reset)
        .bind(&at_text)
        .bind(&at_text)
        .bind(resent.external_state_changed_at.map(timestamp))
        .bind(wave.0)
        .bind(user.to_string())
        .bind(resent.from.code())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !updated {
            drop(tx);
            let actual = self
                .member(wave, user)
                .await?
                .map_or_else(|| "not a member".to_owned(), |m| m.state.to_string());
            return Err(Error::StateConflict {
                wave: wave.to_string(),
                user: user.to_string(),
                expected: resent.from.to_string(),
                actual,
            });
        }
        insert_event(&mut tx, event, at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks an operation over when none of its members is left open; `true` if it is over.
    pub async fn finish_reinvite_if_done(&self, id: RunId, at: OffsetDateTime) -> Result<bool> {
        let updated = sqlx::query(
            "UPDATE reinvites SET finished_at = ? WHERE id = ? AND finished_at IS NULL
             AND NOT EXISTS (SELECT 1 FROM reinvite_members
                             WHERE reinvite_id = ? AND state IN ('selected', 'sending'))",
        )
        .bind(timestamp(at))
        .bind(id.to_string())
        .bind(id.to_string())
        .execute(&self.pool)
        .await?
        .rows_affected();
        if updated == 1 {
            return Ok(true);
        }
        let finished: Option<(Option<String>,)> =
            sqlx::query_as("SELECT finished_at FROM reinvites WHERE id = ?")
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?;
        Ok(matches!(finished, Some((Some(_),))))
    }

    /// A wave's members waiting to redeem (`invited`), oldest invitation first.
    pub async fn pending_members(&self, wave: WaveId) -> Result<Vec<PendingMember>> {
        type Row = (
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            bool,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT m.user_id, u.user_principal_name, m.chosen_address, m.invited_at,
                    m.resent_at, m.invite_redeem_url IS NOT NULL
             FROM wave_members m LEFT JOIN user_snapshots u ON u.id = m.user_id
             WHERE m.wave_id = ? AND m.state = 'invited'
             ORDER BY m.invited_at IS NULL, m.invited_at, m.user_id",
        )
        .bind(wave.0)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(user, upn, address, invited, resent, has_link)| {
                Ok(PendingMember {
                    user_principal_name: upn.unwrap_or_else(|| user.clone()),
                    user_id: parse_code("wave_members.user_id", &user)?,
                    address,
                    invited_at: parse_optional_timestamp(
                        "wave_members.invited_at",
                        invited.as_deref(),
                    )?,
                    resent_at: parse_optional_timestamp(
                        "wave_members.resent_at",
                        resent.as_deref(),
                    )?,
                    has_link,
                })
            })
            .collect()
    }
}

#[allow(clippy::too_many_arguments)] // the row's key, the change, and its time
async fn step(
    tx: &mut super::Tx,
    id: RunId,
    user: UserId,
    from: ResendState,
    to: ResendState,
    state_before: Option<OffsetDateTime>,
    note: Option<&str>,
    at: OffsetDateTime,
) -> Result<bool> {
    let updated = sqlx::query(
        "UPDATE reinvite_members SET state = ?, changed_at = ?,
            state_before = COALESCE(?, state_before), note = COALESCE(?, note)
         WHERE reinvite_id = ? AND user_id = ? AND state = ?",
    )
    .bind(to.code())
    .bind(timestamp(at))
    .bind(state_before.map(timestamp))
    .bind(note)
    .bind(id.to_string())
    .bind(user.to_string())
    .bind(from.code())
    .execute(&mut **tx)
    .await?;
    Ok(updated.rows_affected() == 1)
}

fn resend_conflict(id: RunId, user: UserId, from: ResendState) -> Error {
    Error::StateConflict {
        wave: format!("reinvite {id}"),
        user: user.to_string(),
        expected: from.code().to_owned(),
        actual: "another state".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::execute::testing::{id, invited_wave};
    use crate::store::Transition;
    use crate::store::testing::temp_store;

    fn event(kind: &str) -> NewEvent {
        NewEvent {
            kind: kind.into(),
            ..NewEvent::default()
        }
    }

    #[tokio::test]
    async fn criteria_select_by_state_link_age_and_user() {
        let (_dir, store) = temp_store().await;
        let wave = invited_wave(&store, 4).await;
        // Invited at 09:00; user 4 redeemed.
        store
            .transition(
                wave.id,
                id(4),
                &Transition::new(
                    UserState::Invited,
                    UserState::Accepted,
                    datetime!(2026-11-22 09:00 UTC),
                ),
            )
            .await
            .unwrap();
        let invited = ResendCriteria {
            state: Some(UserState::Invited),
            ..ResendCriteria::default()
        };
        let all = store.resend_candidates(wave.id, &invited).await.unwrap();
        assert_eq!(all, [id(1), id(2), id(3)]);
        let young = ResendCriteria {
            sent_before: Some(datetime!(2026-11-21 08:00 UTC)),
            ..invited.clone()
        };
        assert!(
            store
                .resend_candidates(wave.id, &young)
                .await
                .unwrap()
                .is_empty()
        );
        let one = ResendCriteria {
            users: vec![id(2), id(4)],
            missing_link: true,
            ..invited.clone()
        };
        assert_eq!(
            store.resend_candidates(wave.id, &one).await.unwrap(),
            [id(2)]
        );
        let accepted = ResendCriteria {
            state: Some(UserState::Accepted),
            ..ResendCriteria::default()
        };
        assert_eq!(
            store.resend_candidates(wave.id, &accepted).await.unwrap(),
            [id(4)]
        );
    }

    #[tokio::test]
    #[allow(clippy::too_many_lines)] // one operation, step by step
    async fn an_operation_records_each_step_compare_and_set_and_ends_when_none_is_open() {
        let (_dir, store) = temp_store().await;
        let wave = invited_wave(&store, 3).await;
        let t = datetime!(2026-12-01 09:00 UTC);
        let op = RunId::new();
        let selection = serde_json::json!({ "missing_links": true });
        store
            .start_reinvite(op, wave.id, &selection, &[id(1), id(2), id(3)], t)
            .await
            .unwrap();
        let open = store.open_reinvite(wave.id).await.unwrap().unwrap();
        assert_eq!((open.id, open.selection), (op, selection));

        for user in [id(1), id(2)] {
            store
                .resend_step(
                    op,
                    user,
                    ResendState::Selected,
                    ResendState::Sending,
                    Some(t),
                    None,
                    &event("invitation.resend-intent"),
                    t,
                )
                .await
                .unwrap();
        }
        let again = store
            .resend_step(
                op,
                id(1),
                ResendState::Selected,
                ResendState::Sending,
                None,
                None,
                &event("x"),
                t,
            )
            .await
            .unwrap_err();
        assert!(matches!(again, Error::StateConflict { .. }), "{again}");

        let later = datetime!(2026-12-01 10:00 UTC);
        store
            .record_resent(
                op,
                wave.id,
                id(1),
                &Resent {
                    from: UserState::Invited,
                    invitation_id: Some(InvitationId("inv-2".into())),
                    invite_redeem_url: Some("https://login.example/redeem?2".into()),
                    external_state_changed_at: None,
                },
                &event("invitation.resent"),
                later,
            )
            .await
            .unwrap();
        let member = store.member(wave.id, id(1)).await.unwrap().unwrap();
        assert_eq!(member.state, UserState::Invited);
        assert_eq!(
            member.invite_redeem_url.as_deref(),
            Some("https://login.example/redeem?2")
        );
        assert_eq!(
            member.invited_at,
            Some(datetime!(2026-11-21 09:00 UTC)),
            "a resend keeps the first invitation's time"
        );
        store
            .record_resend_unknown(op, wave.id, id(2), "lost", &event("x"), later)
            .await
            .unwrap();
        assert!(!store.finish_reinvite_if_done(op, later).await.unwrap());
        store
            .resend_step(
                op,
                id(3),
                ResendState::Selected,
                ResendState::Skipped,
                None,
                Some("redeemed"),
                &event("invitation.resend-skipped"),
                later,
            )
            .await
            .unwrap();
        assert!(store.finish_reinvite_if_done(op, later).await.unwrap());
        assert!(store.open_reinvite(wave.id).await.unwrap().is_none());
        let states: Vec<_> = store
            .reinvite_members(op)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.state)
            .collect();
        assert_eq!(
            states,
            [
                ResendState::Sent,
                ResendState::Unknown,
                ResendState::Skipped
            ]
        );

        // Last sent (or maybe sent) at 10:00 now: not older than 09:30.
        let old = ResendCriteria {
            state: Some(UserState::Invited),
            sent_before: Some(datetime!(2026-12-01 09:30 UTC)),
            ..ResendCriteria::default()
        };
        assert_eq!(
            store.resend_candidates(wave.id, &old).await.unwrap(),
            [id(3)]
        );
        let pending = store.pending_members(wave.id).await.unwrap();
        assert_eq!(pending.len(), 3);
        assert!(pending[0].has_link && !pending[1].has_link);
        assert_eq!(pending[0].resent_at, Some(later));
    }

    #[tokio::test]
    async fn a_redemption_reset_invites_an_accepted_member_anew() {
        let (_dir, store) = temp_store().await;
        let wave = invited_wave(&store, 1).await;
        let t = datetime!(2026-12-01 09:00 UTC);
        store
            .transition(
                wave.id,
                id(1),
                &Transition::new(UserState::Invited, UserState::Accepted, t),
            )
            .await
            .unwrap();
        let op = RunId::new();
        store
            .start_reinvite(op, wave.id, &serde_json::json!({}), &[id(1)], t)
            .await
            .unwrap();
        store
            .resend_step(
                op,
                id(1),
                ResendState::Selected,
                ResendState::Sending,
                None,
                None,
                &event("i"),
                t,
            )
            .await
            .unwrap();
        let wrong = Resent {
            from: UserState::Invited,
            invitation_id: None,
            invite_redeem_url: None,
            external_state_changed_at: None,
        };
        let err = store
            .record_resent(op, wave.id, id(1), &wrong, &event("r"), t)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::StateConflict { .. }), "{err}");
        let reset = Resent {
            from: UserState::Accepted,
            ..wrong
        };
        store
            .record_resent(op, wave.id, id(1), &reset, &event("r"), t)
            .await
            .unwrap();
        let member = store.member(wave.id, id(1)).await.unwrap().unwrap();
        assert_eq!(member.state, UserState::Invited);
        assert_eq!(member.invited_at, Some(t));
    }
}
