//! Wave members as stored: each user's plan (decision, findings, chosen address, "set mail"
//! step, rule-input fingerprint) with its progress, and the queries that read them. State
//! changes are not here: they go through `transitions`, compare-and-set.

use std::collections::HashMap;

use sqlx::{QueryBuilder, Sqlite};
use time::OffsetDateTime;

use super::{
    Error, Result, Store, parse_code, parse_json, parse_optional_timestamp, parse_timestamp,
};
use crate::domain::{
    Decision, FailureKind, InvitationId, OnPremisesProperties, UserId, UserProfile, UserState,
    WaveId,
};
use crate::rules::{AddressOrigin, Finding};

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
    /// Whether the `mail` `run` had set was put back after the invitation failed for good.
    pub mail_restore: Option<MailRestore>,
}

/// What became of the `mail` `run` set, once the member's invitation failed for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MailRestore {
    /// The previous `mail` is back.
    Restored,
    /// Putting it back failed: the user keeps the `mail` `run` set (reported, never silent).
    Failed,
}

impl MailRestore {
    /// The stored code.
    pub const fn code(self) -> &'static str {
        match self {
            Self::Restored => "restored",
            Self::Failed => "failed",
        }
    }

    /// How `status` and the report show it.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Restored => "mail restored",
            Self::Failed => "mail restore failed",
        }
    }
}

impl std::str::FromStr for MailRestore {
    type Err = crate::domain::UnknownCode;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        [Self::Restored, Self::Failed]
            .into_iter()
            .find(|m| m.code() == s)
            .ok_or_else(|| crate::domain::UnknownCode {
                kind: "MailRestore",
                code: s.to_owned(),
            })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct MemberRow {
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
    mail_restore: Option<String>,
}

/// How a member's user is named and whether it is synced, from its snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberNames {
    pub user_principal_name: String,
    pub display_name: Option<String>,
    pub synced: bool,
    /// Given name, surname and preferred language (empty without a snapshot).
    pub profile: UserProfile,
}

#[derive(sqlx::FromRow)]
struct NamedMemberRow {
    #[sqlx(flatten)]
    member: MemberRow,
    upn: Option<String>,
    name: Option<String>,
    synced: Option<bool>,
    given_name: Option<String>,
    surname: Option<String>,
    preferred_language: Option<String>,
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
            mail_restore: row
                .mail_restore
                .as_deref()
                .map(|m| parse_code("wave_members.mail_restore", m))
                .transpose()?,
        })
    }
}

impl Store {
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
                    u.on_premises_sync_enabled AS synced, u.given_name, u.surname,
                    u.preferred_language
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

    /// For every user this tool invited (or is inviting) in a wave other than `except` —
    /// `inviting`, `invited`, `accepted` or `scrambled` there — those waves, each as
    /// `<wave> (<state>)`. A snapshot older than that run still shows the user internal; the
    /// plan must not take it for a candidate.
    pub async fn converted_in_other_waves(
        &self,
        except: Option<WaveId>,
    ) -> Result<HashMap<UserId, Vec<String>>> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT m.user_id, w.name, m.state FROM wave_members m JOIN waves w ON w.id = m.wave_id
             WHERE m.wave_id IS NOT ? AND m.state IN ('inviting', 'invited', 'accepted', 'scrambled')
             ORDER BY w.name",
        )
        .bind(except.map(|w| w.0))
        .fetch_all(&self.pool)
        .await?;
        let mut waves: HashMap<UserId, Vec<String>> = HashMap::new();
        for (user, wave, state) in rows {
            waves
                .entry(parse_code("wave_members.user_id", &user)?)
                .or_default()
                .push(format!("{wave} ({state})"));
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

    /// How many of a wave's `ready` members have `mail` set first, of how many `ready`: what
    /// share of a run's users need a directory write besides their invitation.
    pub async fn ready_setting_mail(&self, wave: WaveId) -> Result<(u64, u64)> {
        let (setting, ready): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(set_mail), 0), COUNT(*) FROM wave_members
             WHERE wave_id = ? AND state = 'ready'",
        )
        .bind(wave.0)
        .fetch_one(&self.pool)
        .await?;
        Ok((setting.unsigned_abs(), ready.unsigned_abs()))
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
                    u.on_premises_sync_enabled AS synced, u.given_name, u.surname,
                    u.preferred_language
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
                    u.on_premises_sync_enabled AS synced, u.given_name, u.surname,
                    u.preferred_language, u.id IS NOT NULL AS has_snapshot,
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
}

fn named_member(row: NamedMemberRow) -> Result<(WaveMember, MemberNames)> {
    let names = MemberNames {
        user_principal_name: row.upn.unwrap_or_default(),
        display_name: row.name,
        synced: row.synced == Some(true),
        profile: UserProfile {
            given_name: row.given_name,
            surname: row.surname,
            preferred_language: row.preferred_language,
        },
    };
    Ok((WaveMember::try_from(row.member)?, names))
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;
    use crate::store::Transition;
    use crate::store::testing::temp_store;
    use crate::store::users::tests::sample_user;
    use crate::store::waves::tests::{new_wave, planned, planned_wave, start_inviting};

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
    async fn users_converted_in_other_waves_are_found_with_the_wave_and_state() {
        let (_dir, store) = temp_store().await;
        let pilot = planned_wave(&store).await;
        let user = UserId::from_uuid(Uuid::from_u128(1));
        let at = datetime!(2026-11-21 09:00 UTC);
        assert!(
            store
                .converted_in_other_waves(None)
                .await
                .unwrap()
                .is_empty(),
            "ready is not converted"
        );
        store
            .transition(
                pilot.id,
                user,
                &Transition::new(UserState::Ready, UserState::Inviting, at),
            )
            .await
            .unwrap();
        let converted = store.converted_in_other_waves(None).await.unwrap();
        assert_eq!(
            converted.get(&user),
            Some(&vec!["pilot (inviting)".to_owned()])
        );
        store
            .transition(
                pilot.id,
                user,
                &Transition::new(UserState::Inviting, UserState::Invited, at),
            )
            .await
            .unwrap();
        let converted = store.converted_in_other_waves(None).await.unwrap();
        assert_eq!(
            converted.get(&user),
            Some(&vec!["pilot (invited)".to_owned()])
        );
        assert!(
            store
                .converted_in_other_waves(Some(pilot.id))
                .await
                .unwrap()
                .is_empty(),
            "a wave's own members are not another wave's"
        );
    }
}
