//! The directory audit log (`GET /auditLogs/directoryAudits`, v1.0 `directoryAudit`): the
//! service's own record of each conversion, activity "Invite internal user to B2B
//! collaboration" (NOTES §2.x), which `verify` uses to corroborate what the store says.
//!
//! Reads the events of that activity since a time, in as few requests as Graph allows: one
//! filter on `activityDisplayName` and `activityDateTime ge` (both documented as filterable),
//! pages of 999 followed by `@odata.nextLink`. It never filters on `result` (not documented as
//! filterable) nor asks one request per user. Needs `AuditLog.Read.All` and `Directory.Read.All`
//! (`directoryaudit-list`); the reports service allows 5 requests per 10 s per app and tenant,
//! and the client's retries honour its 429s. Reads only; it must not decide what a missing
//! event means (that is `crate::verify`).

use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use url::Url;

use super::client::{GraphClient, Page};
use super::error::Error;
use super::users::{encode, odata_string};
use crate::domain::UserId;

/// The audit activity of a conversion (entra-docs `reference-audit-activities.md`, "Invited
/// users").
pub const CONVERSION_ACTIVITY: &str = "Invite internal user to B2B collaboration";

/// Page size asked for. Graph does not document the maximum for directory audits (1,000 is
/// what practitioners report): 999 stays under it.
const PAGE_SIZE: u32 = 999;

/// One conversion event as the service logged it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversionEvent {
    pub id: String,
    pub at: OffsetDateTime,
    /// `result`: `success`, `failure`, `timeout` or a value Graph adds later.
    pub result: String,
    /// Why it failed, when it did (`resultReason`).
    pub result_reason: Option<String>,
    /// The app that sent the invitation (`initiatedBy.app.appId`), when an app did.
    pub initiated_by_app: Option<String>,
    /// The users the event is about (`targetResources` whose id is an object id).
    pub users: Vec<UserId>,
}

impl ConversionEvent {
    /// Whether the service says the conversion succeeded.
    pub fn succeeded(&self) -> bool {
        self.result.eq_ignore_ascii_case("success")
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DirectoryAuditDto {
    id: String,
    #[serde(with = "time::serde::rfc3339")]
    activity_date_time: OffsetDateTime,
    #[serde(default)]
    result: Option<String>,
    #[serde(default)]
    result_reason: Option<String>,
    #[serde(default)]
    initiated_by: Option<InitiatorDto>,
    #[serde(default)]
    target_resources: Vec<TargetResourceDto>,
}

#[derive(Debug, Deserialize)]
struct InitiatorDto {
    #[serde(default)]
    app: Option<AppDto>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AppDto {
    #[serde(default)]
    app_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TargetResourceDto {
    #[serde(default)]
    id: Option<String>,
}

impl From<DirectoryAuditDto> for ConversionEvent {
    fn from(dto: DirectoryAuditDto) -> Self {
        Self {
            id: dto.id,
            at: dto.activity_date_time,
            result: dto.result.unwrap_or_default(),
            result_reason: dto.result_reason.filter(|r| !r.trim().is_empty()),
            initiated_by_app: dto
                .initiated_by
                .and_then(|i| i.app)
                .and_then(|a| a.app_id)
                .filter(|a| !a.is_empty()),
            users: dto
                .target_resources
                .into_iter()
                .filter_map(|t| t.id?.parse().ok())
                .collect(),
        }
    }
}

impl GraphClient {
    /// The first page's URL of the conversion events at or after `since`.
    pub fn conversion_events_url(&self, since: OffsetDateTime) -> Url {
        let since = since
            .replace_nanosecond(0)
            .unwrap_or(since)
            .format(&Rfc3339)
            .expect("a UTC time formats as RFC 3339");
        let filter = format!(
            "activityDisplayName eq {} and activityDateTime ge {since}",
            odata_string(CONVERSION_ACTIVITY)
        );
        self.url(&format!(
            "auditLogs/directoryAudits?$filter={}&$top={PAGE_SIZE}",
            encode(&filter)
        ))
    }

    /// Streams the conversion events logged at or after `since`, a page at a time.
    pub fn conversion_events(
        &self,
        since: OffsetDateTime,
    ) -> impl Stream<Item = Result<Page<ConversionEvent>, Error>> + Send + '_ {
        self.pages::<DirectoryAuditDto>(self.conversion_events_url(since), &[])
            .map(|page| {
                let page = page?;
                Ok(Page {
                    items: page.items.into_iter().map(ConversionEvent::from).collect(),
                    meta: page.meta,
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_names_the_activity_and_the_start_time_only() {
        let loopback = Url::parse("http://127.0.0.1:9").expect("a URL");
        let client = crate::graph::Connection::new(loopback.clone(), loopback)
            .graph_client(crate::graph::auth::Auth {
                credential: crate::graph::auth::Credential::ClientSecret {
                    client_id: "app".to_owned(),
                    secret: secrecy::SecretString::from("unused"),
                },
                tenant: "organizations".to_owned(),
                resource: "https://graph.microsoft.com".to_owned(),
            })
            .expect("a client; nothing is sent");
        let since = time::macros::datetime!(2026-12-06 07:30:15.5 UTC);
        let url = client.conversion_events_url(since);
        assert_eq!(
            url.query(),
            Some(
                "$filter=activityDisplayName%20eq%20%27Invite%20internal%20user%20to%20B2B%20\
                 collaboration%27%20and%20activityDateTime%20ge%202026-12-06T07%3A30%3A15Z&$top=999"
            )
        );
    }

    #[test]
    fn an_event_reads_tolerantly() {
        let dto: DirectoryAuditDto = serde_json::from_value(serde_json::json!({
            "id": "IPCGraph_1",
            "activityDateTime": "2026-12-06T08:00:00.1234567Z",
            "result": "failure",
            "resultReason": "User invitation failed. Invalid request input.",
            "initiatedBy": {"user": null, "app": {"appId": "c0ffee", "displayName": "b2b"}},
            "targetResources": [
                {"id": "00000000-0000-0000-0000-000000000001", "type": "User"},
                {"id": "not-a-guid", "type": "Other"},
                {"id": null}
            ],
            "somethingNew": true
        }))
        .expect("decodes");
        let event = ConversionEvent::from(dto);
        assert!(!event.succeeded());
        assert_eq!(event.initiated_by_app.as_deref(), Some("c0ffee"));
        assert_eq!(event.users.len(), 1);
        let bare: DirectoryAuditDto = serde_json::from_value(serde_json::json!({
            "id": "x", "activityDateTime": "2026-12-06T08:00:00Z", "result": "success",
            "resultReason": ""
        }))
        .expect("decodes");
        let bare = ConversionEvent::from(bare);
        assert!(bare.succeeded());
        assert_eq!(bare.result_reason, None);
        assert!(bare.users.is_empty());
    }
}
