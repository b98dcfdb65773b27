//! The audit trail's read side: every tenant write in the event log (an event that records an
//! HTTP request other than a `GET`), with who ran it (the run's [`Operator`]), the command and
//! wave, the user's UPN and, for a `mail` change, the value before and after. Read-only; how the
//! rows are rendered is `report::audit`. It exposes no event detail beyond the `mail` values, so
//! nothing it returns can hold a redemption URL.

use time::OffsetDateTime;

use super::runs::OperatorRow;
use super::{Result, Store, parse_code, parse_json, parse_timestamp, timestamp};
use crate::domain::{RunId, UserId, WaveId};
use crate::operator::Operator;

/// Which writes to read: all, or those of one wave, at or after a time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub wave: Option<WaveId>,
    pub since: Option<OffsetDateTime>,
}

/// One tenant write as the event log recorded it.
#[derive(Clone, Debug, PartialEq)]
pub struct TenantWrite {
    pub event_id: i64,
    pub at: OffsetDateTime,
    /// The event's kind (`invitation.sent`, `mail.set`, `member.failed`, …).
    pub kind: String,
    pub run_id: Option<RunId>,
    /// The command of the run (`run`, `invite`, `reinvite`).
    pub command: Option<String>,
    pub operator: Operator,
    pub wave: Option<String>,
    pub user_id: Option<UserId>,
    pub user_principal_name: Option<String>,
    pub http_method: String,
    pub http_path: Option<String>,
    /// `None` when no answer came (the outcome was unknown).
    pub http_status: Option<u16>,
    pub request_id: Option<String>,
    pub client_request_id: Option<String>,
    /// For a `PATCH` of `mail`: the value before and the value sent.
    pub mail_change: Option<MailChange>,
}

/// A `mail` change: the value before (`None`: empty) and the value written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailChange {
    pub from: Option<String>,
    pub to: Option<String>,
}

#[derive(sqlx::FromRow)]
struct WriteRow {
    id: i64,
    at: String,
    kind: String,
    run_id: Option<String>,
    command: Option<String>,
    #[sqlx(flatten)]
    operator: OperatorRow,
    wave: Option<String>,
    user_id: Option<String>,
    user_principal_name: Option<String>,
    http_method: String,
    http_path: Option<String>,
    http_status: Option<i64>,
    request_id: Option<String>,
    client_request_id: Option<String>,
    detail: String,
    mail_intent: Option<String>,
}

impl Store {
    /// The tenant writes `filter` selects, oldest first. The `mail` values of a `PATCH` come
    /// from the event itself when it names them (`mail.restored`), else from the `mail.intent`
    /// the run recorded for that user right before it.
    pub async fn tenant_writes(&self, filter: AuditFilter) -> Result<Vec<TenantWrite>> {
        let rows: Vec<WriteRow> = sqlx::query_as(
            "SELECT e.id, e.at, e.kind, e.run_id, r.command,
                    r.os_user, r.host, r.app_id, r.signed_in_user, r.signed_in_oid,
                    r.tool_version, w.name AS wave, e.user_id, u.user_principal_name,
                    e.http_method, e.http_path, e.http_status, e.request_id,
                    e.client_request_id, e.detail,
                    CASE WHEN e.http_method = 'PATCH' THEN
                        (SELECT i.detail FROM events i
                         WHERE i.user_id = e.user_id AND i.kind = 'mail.intent'
                           AND i.run_id IS e.run_id AND i.id < e.id
                         ORDER BY i.id DESC LIMIT 1)
                    END AS mail_intent
             FROM events e
             LEFT JOIN runs r ON r.id = e.run_id
             LEFT JOIN waves w ON w.id = e.wave_id
             LEFT JOIN user_snapshots u ON u.id = e.user_id
             WHERE e.http_method IS NOT NULL AND e.http_method <> 'GET'
               AND (?1 IS NULL OR e.wave_id = ?1)
               AND (?2 IS NULL OR e.at >= ?2)
             ORDER BY e.at, e.id",
        )
        .bind(filter.wave.map(|w| w.0))
        .bind(filter.since.map(timestamp))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(write_from_row).collect()
    }
}

fn write_from_row(row: WriteRow) -> Result<TenantWrite> {
    let mail_change = if row.http_method == "PATCH" {
        let detail: serde_json::Value = parse_json("events.detail", &row.detail)?;
        let named = if detail.get("from").is_some() || detail.get("to").is_some() {
            Some(detail)
        } else {
            row.mail_intent
                .as_deref()
                .map(|intent| parse_json::<serde_json::Value>("events.detail", intent))
                .transpose()?
        };
        named.map(|values| MailChange {
            from: values["from"].as_str().map(str::to_owned),
            to: values["to"].as_str().map(str::to_owned),
        })
    } else {
        None
    };
    Ok(TenantWrite {
        event_id: row.id,
        at: parse_timestamp("events.at", &row.at)?,
        kind: row.kind,
        run_id: row
            .run_id
            .as_deref()
            .map(|r| parse_code("events.run_id", r))
            .transpose()?,
        command: row.command,
        operator: row.operator.into(),
        wave: row.wave,
        user_id: row
            .user_id
            .as_deref()
            .map(|u| parse_code("events.user_id", u))
            .transpose()?,
        user_principal_name: row.user_principal_name,
        http_method: row.http_method,
        http_path: row.http_path,
        http_status: row.http_status.and_then(|s| u16::try_from(s).ok()),
        request_id: row.request_id,
        client_request_id: row.client_request_id,
        mail_change,
    })
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;
    use crate::store::testing::temp_store;
    use crate::store::{NewEvent, NewWave};

    async fn wave(store: &Store, name: &str) -> WaveId {
        store
            .create_wave(
                &NewWave {
                    name: name.into(),
                    selector: serde_json::json!({}),
                    cap: None,
                    settings: serde_json::json!({}),
                },
                datetime!(2026-11-21 08:00 UTC),
            )
            .await
            .unwrap()
            .id
    }

    fn event(run: RunId, wave: WaveId, kind: &str, method: Option<&str>) -> NewEvent {
        NewEvent {
            run_id: Some(run),
            wave_id: Some(wave),
            user_id: Some(UserId::from_uuid(Uuid::from_u128(1))),
            kind: kind.into(),
            http_method: method.map(str::to_owned),
            http_path: method.map(|_| "/v1.0/users/1".to_owned()),
            http_status: method.map(|_| 204),
            request_id: method.map(|_| format!("req-{kind}")),
            client_request_id: method.map(|_| format!("client-{kind}")),
            ..NewEvent::default()
        }
    }

    #[tokio::test]
    async fn writes_come_with_their_operator_and_mail_values_and_filter_by_wave_and_time() {
        let (_dir, store) = temp_store().await;
        let (pilot, later) = (wave(&store, "pilot").await, wave(&store, "later").await);
        let operator = Operator {
            os_user: Some("alice".into()),
            host: Some("build-01".into()),
            app_id: Some("app-1".into()),
            ..Operator::default()
        };
        let run = RunId::new();
        let t = |minute| datetime!(2026-11-21 09:00 UTC) + time::Duration::minutes(minute);
        store
            .start_run(run, pilot, "run", &serde_json::json!({}), &operator, t(0))
            .await
            .unwrap();
        let mut intent = event(run, pilot, "mail.intent", None);
        intent.detail = serde_json::json!({ "from": "old@contoso.com", "to": "new@fabrikam.com" });
        store.append_event(&intent, t(1)).await.unwrap();
        let mut set = event(run, pilot, "mail.set", Some("PATCH"));
        set.detail = serde_json::json!({ "mail": "new@fabrikam.com" });
        store.append_event(&set, t(2)).await.unwrap();
        let mut posted = event(run, pilot, "invitation.sent", Some("POST"));
        posted.detail = serde_json::json!({ "invitation_id": "inv-1" });
        store.append_event(&posted, t(3)).await.unwrap();
        // A failed read is not a write.
        store
            .append_event(&event(run, pilot, "member.failed", Some("GET")), t(4))
            .await
            .unwrap();
        let mut restored = event(run, pilot, "mail.restored", Some("PATCH"));
        restored.detail = serde_json::json!({ "from": "new@fabrikam.com", "to": null });
        store.append_event(&restored, t(5)).await.unwrap();
        let other = RunId::new();
        store
            .start_run(
                other,
                later,
                "invite",
                &serde_json::json!({}),
                &Operator::default(),
                t(6),
            )
            .await
            .unwrap();
        store
            .append_event(&event(other, later, "invitation.sent", Some("POST")), t(7))
            .await
            .unwrap();

        let all = store.tenant_writes(AuditFilter::default()).await.unwrap();
        let kinds: Vec<&str> = all.iter().map(|w| w.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "mail.set",
                "invitation.sent",
                "mail.restored",
                "invitation.sent"
            ]
        );
        assert_eq!(all[0].operator, operator);
        assert_eq!(all[0].command.as_deref(), Some("run"));
        assert_eq!(all[0].wave.as_deref(), Some("pilot"));
        assert_eq!(all[0].request_id.as_deref(), Some("req-mail.set"));
        assert_eq!(
            all[0].mail_change,
            Some(MailChange {
                from: Some("old@contoso.com".into()),
                to: Some("new@fabrikam.com".into()),
            })
        );
        assert_eq!(all[1].mail_change, None);
        assert_eq!(
            all[2].mail_change,
            Some(MailChange {
                from: Some("new@fabrikam.com".into()),
                to: None,
            })
        );
        assert_eq!(all[3].command.as_deref(), Some("invite"));

        let pilot_only = store
            .tenant_writes(AuditFilter {
                wave: Some(pilot),
                since: None,
            })
            .await
            .unwrap();
        assert_eq!(pilot_only.len(), 3);
        let recent = store
            .tenant_writes(AuditFilter {
                wave: None,
                since: Some(t(3)),
            })
            .await
            .unwrap();
        assert_eq!(recent.len(), 3, "at or after the time");
    }
}
