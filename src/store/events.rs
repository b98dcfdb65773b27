//! The append-only event log: every tenant write and state change, with Graph's request ids.
//! The database refuses updates and deletes of this table (triggers in the first migration).

use std::collections::HashMap;

use time::OffsetDateTime;

use super::{Result, Store, parse_code, parse_json, parse_timestamp, timestamp};
use crate::domain::{RunId, UserId, WaveId};

/// An event to record. `detail` is free-form JSON and must never hold a secret or a redeem URL.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewEvent {
    pub at: Option<OffsetDateTime>,
    pub run_id: Option<RunId>,
    pub wave_id: Option<WaveId>,
    pub user_id: Option<UserId>,
    /// What happened, dotted: `invitation.intent`, `invitation.sent`, `mail.patched`, …
    pub kind: String,
    pub http_method: Option<String>,
    pub http_path: Option<String>,
    pub http_status: Option<u16>,
    pub request_id: Option<String>,
    pub client_request_id: Option<String>,
    pub duration_ms: Option<u64>,
    pub detail: serde_json::Value,
}

/// A recorded event.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub id: i64,
    pub at: OffsetDateTime,
    pub event: NewEvent,
}

type EventRow = (
    i64,
    String,
    Option<String>,
    Option<i64>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<i64>,
    String,
);

impl Store {
    /// Appends an event at `at` (or the event's own time) and returns its id.
    #[tracing::instrument(skip_all, fields(kind = %event.kind), err)]
    pub async fn append_event(&self, event: &NewEvent, at: OffsetDateTime) -> Result<i64> {
        let mut conn = self.pool.acquire().await?;
        let id = insert_event(&mut conn, event, at).await?;
        Ok(id)
    }

    /// When the invitations recorded at or after `since` were sent, oldest first: one per
    /// `invitation.intent` or `invitation.resend-intent` (recorded right before each `POST
    /// /invitations`), across every run, wave, `invite` and `reinvite`. What the daily
    /// invitation quota counts.
    pub async fn invitations_sent_since(
        &self,
        since: OffsetDateTime,
    ) -> Result<Vec<OffsetDateTime>> {
        sqlx::query_scalar::<_, String>(
            "SELECT at FROM events WHERE kind = 'invitation.intent' AND at >= ?1 \
             UNION ALL \
             SELECT at FROM events WHERE kind = 'invitation.resend-intent' AND at >= ?1 \
             ORDER BY at",
        )
        .bind(timestamp(since))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|at| parse_timestamp("events.at", at))
        .collect()
    }

    /// The `userType` this tool last set for each member of a wave that it set one for (the
    /// `user-type.set` events' `user_type.to`), so that a back-out reverts only its own changes.
    pub async fn user_types_set(&self, wave: WaveId) -> Result<HashMap<UserId, String>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT user_id, detail FROM events
             WHERE wave_id = ? AND kind = 'user-type.set' AND user_id IS NOT NULL ORDER BY id",
        )
        .bind(wave.0)
        .fetch_all(&self.pool)
        .await?;
        let mut set = HashMap::new();
        for (user, detail) in rows {
            let detail: serde_json::Value = parse_json("events.detail", &detail)?;
            if let Some(to) = detail["user_type"]["to"].as_str() {
                set.insert(parse_code("events.user_id", &user)?, to.to_owned());
            }
        }
        Ok(set)
    }

    /// A wave's events, oldest first.
    pub async fn wave_events(&self, wave: WaveId) -> Result<Vec<Event>> {
        sqlx::query_as::<_, EventRow>(
            "SELECT id, at, run_id, wave_id, user_id, kind, http_method, http_path, http_status,
                    request_id, client_request_id, duration_ms, detail
             FROM events WHERE wave_id = ? ORDER BY id",
        )
        .bind(wave.0)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(event_from_row)
        .collect()
    }
}

/// Inserts an event on `conn` (a pooled connection or an open transaction).
pub(super) async fn insert_event(
    conn: &mut sqlx::SqliteConnection,
    event: &NewEvent,
    at: OffsetDateTime,
) -> Result<i64> {
    let id = sqlx::query(
        "INSERT INTO events (at, run_id, wave_id, user_id, kind, http_method, http_path,
            http_status, request_id, client_request_id, duration_ms, detail)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(timestamp(event.at.unwrap_or(at)))
    .bind(event.run_id.map(|r| r.to_string()))
    .bind(event.wave_id.map(|w| w.0))
    .bind(event.user_id.map(|u| u.to_string()))
    .bind(&event.kind)
    .bind(&event.http_method)
    .bind(&event.http_path)
    .bind(event.http_status.map(i64::from))
    .bind(&event.request_id)
    .bind(&event.client_request_id)
    .bind(
        event
            .duration_ms
            .map(|d| i64::try_from(d).unwrap_or(i64::MAX)),
    )
    .bind(if event.detail.is_null() {
        "{}".to_owned()
    } else {
        event.detail.to_string()
    })
    .execute(&mut *conn)
    .await?
    .last_insert_rowid();
    Ok(id)
}

fn event_from_row(row: EventRow) -> Result<Event> {
    let (
        id,
        at,
        run_id,
        wave_id,
        user_id,
        kind,
        http_method,
        http_path,
        http_status,
        request_id,
        client_request_id,
        duration_ms,
        detail,
    ) = row;
    let at = parse_timestamp("events.at", &at)?;
    Ok(Event {
        id,
        at,
        event: NewEvent {
            at: Some(at),
            run_id: run_id
                .as_deref()
                .map(|r| parse_code("events.run_id", r))
                .transpose()?,
            wave_id: wave_id.map(WaveId),
            user_id: user_id
                .as_deref()
                .map(|u| parse_code("events.user_id", u))
                .transpose()?,
            kind,
            http_method,
            http_path,
            http_status: http_status.and_then(|s| u16::try_from(s).ok()),
            request_id,
            client_request_id,
            duration_ms: duration_ms.and_then(|d| u64::try_from(d).ok()),
            detail: parse_json("events.detail", &detail)?,
        },
    })
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;
    use crate::store::testing::temp_store;

    fn invitation_sent(wave: i64) -> NewEvent {
        NewEvent {
            at: None,
            run_id: Some(RunId::new()),
            wave_id: Some(WaveId(wave)),
            user_id: Some(UserId::from_uuid(Uuid::from_u128(1))),
            kind: "invitation.sent".into(),
            http_method: Some("POST".into()),
            http_path: Some("/v1.0/invitations".into()),
            http_status: Some(201),
            request_id: Some("req-1".into()),
            client_request_id: Some("client-1".into()),
            duration_ms: Some(321),
            detail: serde_json::json!({"status": "PendingAcceptance"}),
        }
    }

    #[tokio::test]
    async fn the_user_type_last_set_is_read_per_member_of_the_wave() {
        let (_dir, store) = temp_store().await;
        let at = datetime!(2026-12-06 09:00 UTC);
        let set = |wave: i64, user: u128, to: &str| NewEvent {
            wave_id: Some(WaveId(wave)),
            user_id: Some(UserId::from_uuid(Uuid::from_u128(user))),
            kind: "user-type.set".into(),
            http_method: Some("PATCH".into()),
            detail: serde_json::json!({"user_type": {"from": "Member", "to": to}}),
            ..NewEvent::default()
        };
        for event in [
            set(1, 1, "Guest"),
            set(1, 2, "Guest"),
            set(1, 1, "Member"),
            set(2, 3, "Guest"),
            NewEvent {
                kind: "user-type.intent".into(),
                ..set(1, 4, "Guest")
            },
        ] {
            store.append_event(&event, at).await.unwrap();
        }
        let types = store.user_types_set(WaveId(1)).await.unwrap();
        let of = |user: u128| {
            types
                .get(&UserId::from_uuid(Uuid::from_u128(user)))
                .map(String::as_str)
        };
        assert_eq!(
            (of(1), of(2), of(3), of(4)),
            (Some("Member"), Some("Guest"), None, None)
        );
    }

    #[tokio::test]
    async fn events_are_appended_in_order_and_read_back() {
        let (_dir, store) = temp_store().await;
        let at = datetime!(2026-11-21 09:00 UTC);
        let first = store.append_event(&invitation_sent(1), at).await.unwrap();
        let second = store.append_event(&invitation_sent(1), at).await.unwrap();
        store.append_event(&invitation_sent(2), at).await.unwrap();
        assert!(second > first);
        let events = store.wave_events(WaveId(1)).await.unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].id, first);
        assert_eq!(events[0].at, at);
        let mut expected = invitation_sent(1);
        expected.at = Some(at);
        expected.run_id = events[0].event.run_id;
        assert_eq!(events[0].event, expected);
    }

    #[tokio::test]
    async fn invitations_sent_are_counted_from_intents_across_waves_since_a_time() {
        let (_dir, store) = temp_store().await;
        let intent = |wave| NewEvent {
            kind: "invitation.intent".into(),
            ..invitation_sent(wave)
        };
        let old = datetime!(2026-11-20 08:00 UTC);
        let since = datetime!(2026-11-21 08:00 UTC);
        let recent = [
            datetime!(2026-11-21 08:00 UTC),
            datetime!(2026-11-21 09:30 UTC),
            datetime!(2026-11-21 09:00 UTC),
        ];
        store.append_event(&intent(1), old).await.unwrap();
        store.append_event(&intent(1), recent[0]).await.unwrap();
        store.append_event(&intent(2), recent[1]).await.unwrap();
        store.append_event(&intent(3), recent[2]).await.unwrap();
        store
            .append_event(&invitation_sent(1), recent[1])
            .await
            .unwrap();
        assert_eq!(
            store.invitations_sent_since(since).await.unwrap(),
            [recent[0], recent[2], recent[1]],
            "intents only, oldest first, from every wave"
        );
    }

    #[tokio::test]
    async fn the_log_refuses_updates_and_deletes() {
        let (_dir, store) = temp_store().await;
        let id = store
            .append_event(&invitation_sent(1), datetime!(2026-11-21 09:00 UTC))
            .await
            .unwrap();
        let update = sqlx::query("UPDATE events SET kind = 'x' WHERE id = ?")
            .bind(id)
            .execute(&store.pool)
            .await
            .unwrap_err();
        assert!(update.to_string().contains("append-only"), "{update}");
        let delete = sqlx::query("DELETE FROM events")
            .execute(&store.pool)
            .await
            .unwrap_err();
        assert!(delete.to_string().contains("append-only"), "{delete}");
    }
}
