//! `GET /auditLogs/directoryAudits`: the page shape (`@odata.context`, `value`,
//! `@odata.nextLink`) over [`crate::audit`], which owns the events and the query rules.

use hyper::StatusCode;
use serde_json::{Map, Value, json};

use super::super::{Reply, RequestContext};
use super::{context_url, link_with_token, query_error};
use crate::Shared;
use crate::audit::AuditQuery;

pub(super) fn list(shared: &Shared, ctx: &RequestContext) -> Reply {
    let query = match AuditQuery::parse(&ctx.query) {
        Ok(query) => query,
        Err(error) => return query_error(shared, ctx, &error),
    };
    let (events, next) = match shared.audit.page(&query) {
        Ok(page) => page,
        Err(error) => return query_error(shared, ctx, &error),
    };
    let mut body = Map::new();
    body.insert(
        "@odata.context".to_owned(),
        json!(context_url(shared, "auditLogs/directoryAudits")),
    );
    if let Some(sequence) = next {
        body.insert(
            "@odata.nextLink".to_owned(),
            json!(link_with_token(shared, ctx, &query.token_after(sequence))),
        );
    }
    body.insert(
        "value".to_owned(),
        Value::Array(
            events
                .iter()
                .map(crate::audit::AuditEvent::to_json)
                .collect(),
        ),
    );
    Reply::json(StatusCode::OK, &Value::Object(body))
}
