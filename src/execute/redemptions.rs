//! Redemptions: the `invited → accepted` transition of a wave's members, read from Graph's
//! `externalUserState` (`status --refresh`). Read-only on the tenant. It owns when a member
//! counts as accepted (Graph shows `Accepted`) and records that with its event, compare-and-set
//! through the store; it must not move a member to any other state, or print.

use std::collections::BTreeMap;

use futures_util::{StreamExt as _, TryStreamExt as _};
use serde::Serialize;
use time::OffsetDateTime;

use crate::domain::{UserId, UserSnapshot, UserState, WaveId};
use crate::graph::users::IN_CLAUSE_LIMIT;
use crate::graph::{self, GraphClient, LookupKey};
use crate::store::{self, MemberNames, NewEvent, Store, Transition, WaveMember};

/// What a refresh found in Graph.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Refresh {
    pub checked: u64,
    pub newly_accepted: u64,
    pub still_pending: u64,
    /// Invited by us, but Graph shows no invitation state (reset by someone, or replication).
    pub not_invited_in_graph: u64,
    /// Invited by us, but the user no longer exists.
    pub missing: u64,
}

/// A wave's `invited` members, whose redemptions a refresh reads.
#[derive(Debug)]
pub struct Invited {
    members: Vec<(WaveMember, MemberNames)>,
}

impl Invited {
    pub async fn of(store: &Store, wave: WaveId) -> Result<Self, store::Error> {
        Ok(Self {
            members: store.members_in_states(wave, &[UserState::Invited]).await?,
        })
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Reads each member's redemption state from Graph (15 users per request, `concurrency`
    /// requests at once).
    /// Reads the members from Graph, `concurrency` requests at a time; `read_some` is told how
    /// many users each answer covered (for a progress line).
    pub async fn read(
        self,
        client: &GraphClient,
        concurrency: usize,
        now: OffsetDateTime,
        read_some: impl Fn(usize),
    ) -> Result<Redemptions, graph::Error> {
        let ids: Vec<String> = self
            .members
            .iter()
            .map(|(m, _)| m.plan.user_id.to_string())
            .collect();
        let answers: Vec<_> = futures_util::stream::iter(ids.chunks(IN_CLAUSE_LIMIT))
            .map(|chunk| async move {
                let users = client.users_by_key(LookupKey::Id, chunk, now).await;
                (chunk.len(), users)
            })
            .buffer_unordered(concurrency)
            .map(|(asked, users)| {
                read_some(asked);
                users
            })
            .try_collect()
            .await?;
        let mut seen: BTreeMap<UserId, UserSnapshot> = BTreeMap::new();
        for user in answers.into_iter().flatten() {
            seen.insert(user.id, user);
        }
        Ok(Redemptions {
            invited: self,
            seen,
        })
    }
}

/// The invited members with what Graph shows of them now.
#[derive(Debug)]
pub struct Redemptions {
    invited: Invited,
    seen: BTreeMap<UserId, UserSnapshot>,
}

impl Redemptions {
    /// Records the members who redeemed as `accepted` (at Graph's state time, else `now`), each
    /// with its event, and counts what Graph showed.
    pub async fn record_accepted(
        self,
        store: &Store,
        wave: WaveId,
        now: OffsetDateTime,
    ) -> Result<Refresh, store::Error> {
        let mut result = Refresh {
            checked: self.invited.len() as u64,
            ..Refresh::default()
        };
        for (member, _) in &self.invited.members {
            let id = member.plan.user_id;
            let Some(user) = self.seen.get(&id) else {
                result.missing += 1;
                continue;
            };
            match user.external_user_state.as_deref() {
                Some("Accepted") => {
                    accepted(store, wave, user, now).await?;
                    result.newly_accepted += 1;
                }
                Some(_) => result.still_pending += 1,
                None => result.not_invited_in_graph += 1,
            }
        }
        Ok(result)
    }
}

/// Records that `user` redeemed: `invited → accepted`, with its event.
async fn accepted(
    store: &Store,
    wave: WaveId,
    user: &UserSnapshot,
    now: OffsetDateTime,
) -> Result<(), store::Error> {
    let at = user.external_user_state_changed_at.unwrap_or(now);
    let mut transition = Transition::new(UserState::Invited, UserState::Accepted, at);
    transition.external_state_changed_at = user.external_user_state_changed_at;
    let event = NewEvent {
        wave_id: Some(wave),
        user_id: Some(user.id),
        kind: "invitation.accepted".into(),
        detail: serde_json::json!({ "external_user_state_changed_at": user.external_user_state_changed_at.map(|t| t.to_string()) }),
        ..NewEvent::default()
    };
    store.record(wave, user.id, &transition, Some(&event)).await
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::execute::testing::{id, invited_wave, user};

    #[tokio::test]
    async fn redeemed_members_become_accepted_once_with_their_event() {
        let (_dir, store) = crate::store::testing::temp_store().await;
        let wave = invited_wave(&store, 4).await;
        let redeemed_at = datetime!(2026-11-22 10:00 UTC);
        let now = datetime!(2026-11-23 08:00 UTC);
        let shown = |n: u128, state: Option<&str>, at: Option<OffsetDateTime>| {
            let mut user = user(n);
            user.external_user_state = state.map(str::to_owned);
            user.external_user_state_changed_at = at;
            (user.id, user)
        };
        // Graph shows user 1 redeemed, 2 pending, 3 not invited; user 4 is gone.
        let seen = BTreeMap::from([
            shown(1, Some("Accepted"), Some(redeemed_at)),
            shown(2, Some("PendingAcceptance"), None),
            shown(3, None, None),
        ]);
        let redemptions = Redemptions {
            invited: Invited::of(&store, wave.id).await.unwrap(),
            seen: seen.clone(),
        };
        let found = redemptions
            .record_accepted(&store, wave.id, now)
            .await
            .unwrap();
        assert_eq!(
            found,
            Refresh {
                checked: 4,
                newly_accepted: 1,
                still_pending: 1,
                not_invited_in_graph: 1,
                missing: 1,
            }
        );
        let member = store.member(wave.id, id(1)).await.unwrap().unwrap();
        assert_eq!(member.state, UserState::Accepted);
        assert_eq!(member.accepted_at, Some(redeemed_at));
        assert_eq!(member.external_state_changed_at, Some(redeemed_at));
        let accepted: Vec<_> = store
            .wave_events(wave.id)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.event.kind == "invitation.accepted")
            .map(|e| e.event.user_id)
            .collect();
        assert_eq!(accepted, [Some(id(1))]);

        // The next refresh reads only the members still invited.
        let again = Redemptions {
            invited: Invited::of(&store, wave.id).await.unwrap(),
            seen,
        };
        assert_eq!(again.invited.len(), 3);
        let found = again.record_accepted(&store, wave.id, now).await.unwrap();
        assert_eq!(found.newly_accepted, 0);
    }
}
