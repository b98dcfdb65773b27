//! `/users`: list (paging, filter, count), get and PATCH bodies.

use hyper::StatusCode;
use serde_json::{Map, Value, json};

use super::super::{Reply, RequestContext};
use super::{context_url, directory_error, invalid_payload, next_link, query_error, users_context};
use crate::Shared;
use crate::directory::DirectoryError;
use crate::odata::{CollectionQuery, Filter};

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

pub(super) fn patch_user(shared: &Shared, ctx: &RequestContext, key: &str) -> Reply {
    let Some(index) = shared.directory.resolve(key) else {
        return directory_error(shared, ctx, &DirectoryError::NotFound(key.to_owned()));
    };
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&ctx.body) else {
        return invalid_payload(shared, ctx);
    };
    match shared.directory.patch(index, &body, &shared.clock) {
        Ok(()) => {
            let mut reply = Reply::empty(StatusCode::NO_CONTENT);
            reply.droppable = true;
            reply
        }
        Err(error) => directory_error(shared, ctx, &error),
    }
}
