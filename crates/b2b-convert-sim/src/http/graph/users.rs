//! `/users`: list (paging, filter, count), get and PATCH bodies.

use hyper::StatusCode;
use serde_json::{Map, Value, json};

use super::super::{Reply, RequestContext};
use super::{context_url, directory_error, invalid_payload, next_link, query_error, users_context};
use crate::Shared;
use crate::directory::{DeltaEntry, DirectoryError};
use crate::odata::delta::{self, DeltaRequest, DeltaToken};
use crate::odata::{CollectionQuery, Filter, project};

pub(super) fn list_users(shared: &Shared, ctx: &RequestContext, query: &CollectionQuery) -> Reply {
    let start = match query.start_position() {
        Ok(s) => s,
        Err(error) => return query_error(shared, ctx, &error),
    };
    let size = usize::try_from(query.page_size()).unwrap_or(100);
    let mut items = Vec::with_capacity(size);
    let mut next = None;
    let upn_prefix = query.filter.as_ref().and_then(Filter::upn_prefix);
    shared
        .directory
        .scan_upn_prefix(start, &shared.clock, upn_prefix, |index, user| {
            if query.filter.as_ref().is_none_or(|f| f.matches(&user)) {
                if items.len() == size {
                    next = Some(index);
                    return false;
                }
                items.push(Value::Object(query.project(&user)));
            }
            true
        });
    let mut body = Map::new();
    body.insert(
        "@odata.context".to_owned(),
        json!(users_context(shared, query)),
    );
    if query.wants_count() {
        body.insert(
            "@odata.count".to_owned(),
            json!(count_matching(shared, query)),
        );
    }
    if let Some(position) = next {
        body.insert(
            "@odata.nextLink".to_owned(),
            json!(next_link(shared, ctx, query, position)),
        );
    }
    body.insert("value".to_owned(), Value::Array(items));
    Reply::json(StatusCode::OK, &Value::Object(body))
}

pub(super) fn count_matching(shared: &Shared, query: &CollectionQuery) -> u64 {
    let mut count = 0;
    shared.directory.scan(0, &shared.clock, |_, user| {
        if query.filter.as_ref().is_none_or(|f| f.matches(&user)) {
            count += 1;
        }
        true
    });
    count
}

pub(super) fn count_users(shared: &Shared, ctx: &RequestContext, query: &CollectionQuery) -> Reply {
    if !query.eventual {
        return Reply::graph_error(
            ctx,
            shared,
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "$count is not currently supported.",
        );
    }
    Reply::text(StatusCode::OK, count_matching(shared, query).to_string())
}

pub(super) fn get_user(
    shared: &Shared,
    ctx: &RequestContext,
    key: &str,
    query: &CollectionQuery,
) -> Reply {
    if query.filter.is_some() || query.top.is_some() {
        return Reply::graph_error(
            ctx,
            shared,
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "The query specified in the URI is not valid for a single entity.",
        );
    }
    let Some(user) = shared
        .directory
        .resolve(key)
        .and_then(|i| shared.directory.user(i, &shared.clock))
    else {
        return directory_error(shared, ctx, &DirectoryError::NotFound(key.to_owned()));
    };
    let mut body = Map::new();
    let context = match &query.select {
        Some(names) => context_url(shared, &format!("users({})/$entity", names.join(","))),
        None => context_url(shared, "users/$entity"),
    };
    body.insert("@odata.context".to_owned(), json!(context));
    body.extend(query.project(&user));
    Reply::json(StatusCode::OK, &Value::Object(body))
}

/// The replication-lag answer to a write right after an invitation (NOTES §2.x, observed).
pub const REFERENCE_LAG_MESSAGE: &str = "Not a valid reference update.";

/// Whether the user's latest invitation is recent enough for the `reference-lag` fault.
fn in_reference_lag(shared: &Shared, index: u64) -> bool {
    let Some(lag) = shared
        .fault_plan()
        .spec(crate::faults::Endpoint::PatchUser)
        .reference_lag_secs
    else {
        return false;
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // 0..=86400 s
    let lag_ms = (lag * 1_000.0).round() as u64;
    shared
        .directory
        .invitation_of(index)
        .is_some_and(|record| shared.clock.now_ms() < record.invited_at_ms + lag_ms)
}

pub(super) fn patch_user(shared: &Shared, ctx: &RequestContext, key: &str) -> Reply {
    let Some(index) = shared.directory.resolve(key) else {
        return directory_error(shared, ctx, &DirectoryError::NotFound(key.to_owned()));
    };
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&ctx.body) else {
        return invalid_payload(shared, ctx);
    };
    if body.contains_key("userType") && in_reference_lag(shared, index) {
        return Reply::graph_error(
            ctx,
            shared,
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            REFERENCE_LAG_MESSAGE,
        );
    }
    match shared.directory.patch(index, &body, &shared.clock) {
        Ok(()) => {
            let mut reply = Reply::empty(StatusCode::NO_CONTENT);
            reply.droppable = true;
            reply
        }
        Err(error) => directory_error(shared, ctx, &error),
    }
}

/// `GET /users/delta` (NOTES §3.3): a full round (every user, then a delta link), "sync from
/// now" (`$deltatoken=latest`), or the changes since a delta link: changed and created users as
/// they are now, deleted ones as `{"id", "@removed": {"reason"}}`. A token the service no longer
/// knows (older than seven days, or never issued) is answered 410 `syncStateNotFound`.
pub(super) fn delta(shared: &Shared, ctx: &RequestContext) -> Reply {
    let now = shared.clock.now_ms();
    let request = match delta::parse(&ctx.query, now) {
        Ok(request) => request,
        Err(Ok(error)) if error.code == "NotImplemented" => {
            return Reply::graph_error(
                ctx,
                shared,
                StatusCode::NOT_IMPLEMENTED,
                error.code,
                &error.message,
            );
        }
        Err(Ok(error)) => return query_error(shared, ctx, &error),
        Err(Err(delta::UnknownToken)) => {
            return Reply::graph_error(
                ctx,
                shared,
                StatusCode::GONE,
                "syncStateNotFound",
                "The sync state generation is not found. The delta token is expired and data must be synchronized again.",
            );
        }
    };
    let sequence = shared.directory.change_sequence();
    let link = |token: DeltaToken, param: &str| {
        format!(
            "{}/v1.0/users/delta?{param}={}",
            shared.graph_url,
            token.encode()
        )
    };
    let delta_link = |select: Option<Vec<String>>, from: u64| {
        link(
            DeltaToken {
                select,
                from,
                to: from,
                after: None,
                full: false,
                issued_ms: now,
            },
            "$deltatoken",
        )
    };
    let (select, mut value, next) = match request {
        DeltaRequest::Latest { select } => {
            let link = delta_link(select.clone(), sequence);
            (select, Vec::new(), ("@odata.deltaLink", link))
        }
        DeltaRequest::Initial { select } => full_round_page(shared, select, sequence, None, now),
        DeltaRequest::Continue(token) if token.full => {
            full_round_page(shared, token.select, token.to, token.after, now)
        }
        DeltaRequest::Continue(token) => {
            // A delta link starts a round up to now; a skip token continues one.
            let to = if token.after.is_none() {
                sequence
            } else {
                token.to
            };
            let (entries, more) = shared.directory.changes_between(
                token.from,
                to,
                token.after,
                delta::DELTA_PAGE_SIZE,
                &shared.clock,
            );
            let last = entries.last().map(|(index, _)| *index);
            let value = entries
                .into_iter()
                .map(|(_, entry)| delta_entry(&entry, token.select.as_deref()))
                .collect();
            let next = match last.filter(|_| more) {
                Some(after) => (
                    "@odata.nextLink",
                    link(
                        DeltaToken {
                            select: token.select.clone(),
                            from: token.from,
                            to,
                            after: Some(after),
                            full: false,
                            issued_ms: now,
                        },
                        "$skiptoken",
                    ),
                ),
                None => ("@odata.deltaLink", delta_link(token.select.clone(), to)),
            };
            (token.select, value, next)
        }
    };
    let mut body = Map::new();
    let context = match &select {
        Some(names) => context_url(shared, &format!("users({})", names.join(","))),
        None => context_url(shared, "users"),
    };
    body.insert("@odata.context".to_owned(), json!(context));
    body.insert(next.0.to_owned(), json!(next.1));
    body.insert("value".to_owned(), Value::Array(std::mem::take(&mut value)));
    Reply::json(StatusCode::OK, &Value::Object(body))
}

/// One page of a full delta round: the users after index `after`, and the next link (a skip
/// token, or at the end the delta link for the changes after `to`, the round's start).
fn full_round_page(
    shared: &Shared,
    select: Option<Vec<String>>,
    to: u64,
    after: Option<u64>,
    now: u64,
) -> (Option<Vec<String>>, Vec<Value>, (&'static str, String)) {
    let mut value = Vec::with_capacity(delta::DELTA_PAGE_SIZE);
    let mut last = None;
    let mut more = false;
    let start = after.map_or(0, |a| a + 1);
    shared.directory.scan(start, &shared.clock, |index, user| {
        if value.len() == delta::DELTA_PAGE_SIZE {
            more = true;
            return false;
        }
        value.push(delta_entry(
            &DeltaEntry::Changed(Box::new(user)),
            select.as_deref(),
        ));
        last = Some(index);
        true
    });
    let token = |after: Option<u64>, full: bool| DeltaToken {
        select: select.clone(),
        from: to,
        to,
        after,
        full,
        issued_ms: now,
    };
    let next = match last.filter(|_| more) {
        Some(last) => (
            "@odata.nextLink",
            format!(
                "{}/v1.0/users/delta?$skiptoken={}",
                shared.graph_url,
                token(Some(last), true).encode()
            ),
        ),
        None => (
            "@odata.deltaLink",
            format!(
                "{}/v1.0/users/delta?$deltatoken={}",
                shared.graph_url,
                token(None, false).encode()
            ),
        ),
    };
    (select, value, next)
}

/// A delta entry as JSON: a user projected by `$select` (with its `id`, always returned), or
/// a removed one.
fn delta_entry(entry: &DeltaEntry, select: Option<&[String]>) -> Value {
    match entry {
        DeltaEntry::Changed(user) => {
            let mut object = project(user, select);
            object
                .entry("id".to_owned())
                .or_insert_with(|| json!(user.id));
            Value::Object(object)
        }
        DeltaEntry::Removed { id, reason } => json!({"id": id, "@removed": {"reason": reason}}),
    }
}
