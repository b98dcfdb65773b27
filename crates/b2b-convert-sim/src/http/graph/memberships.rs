//! A user's relationships: `GET /users/{id}/memberOf` (with the `microsoft.graph.group` cast),
//! `GET /users/{id}/appRoleAssignments`, and `DELETE /groups/{id}/members/{id}/$ref`.
//!
//! The directory decides who is a member of what; this file only shapes Graph's collections
//! (`$select`, `$top`, `$count`, paging) and answers.

use hyper::StatusCode;
use serde_json::{Map, Value, json};

use super::super::{Reply, RequestContext};
use super::{context_url, directory_error, next_link, query_error};
use crate::Shared;
use crate::directory::DirectoryError;
use crate::model::User;
use crate::odata::{CollectionQuery, QueryError};

/// Group properties the simulator returns (and accepts in `$select`) in `memberOf`.
const GROUP_PROPERTIES: &[&str] = &[
    "id",
    "displayName",
    "description",
    "groupTypes",
    "mail",
    "mailEnabled",
    "securityEnabled",
];

/// App role assignment properties (v1.0 `appRoleAssignment`).
const ASSIGNMENT_PROPERTIES: &[&str] = &[
    "id",
    "deletedDateTime",
    "appRoleId",
    "createdDateTime",
    "principalDisplayName",
    "principalId",
    "principalType",
    "resourceDisplayName",
    "resourceId",
];

/// Parses the query of a relationship collection: `$top`, `$count`, `$skiptoken` as for
/// users, `$select` against `properties` of `type_name`; `$filter` is not modelled here.
fn relation_query(
    ctx: &RequestContext,
    properties: &[&str],
    type_name: &str,
) -> Result<CollectionQuery, QueryError> {
    let eventual = ctx
        .header("consistencylevel")
        .is_some_and(|v| v.eq_ignore_ascii_case("eventual"));
    let pairs: Vec<(String, String)> = ctx
        .query
        .iter()
        .filter(|(k, _)| k != "$select")
        .cloned()
        .collect();
    let mut query = CollectionQuery::parse(&pairs, eventual)?;
    if query.filter_text.is_some() {
        return Err(QueryError {
            code: "Request_UnsupportedQuery",
            message: "$filter on this relationship is not modelled by the b2b-convert simulator."
                .to_owned(),
        });
    }
    if let Some((_, text)) = ctx.query.iter().find(|(k, _)| k == "$select") {
        let mut names = Vec::new();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let Some(known) = properties.iter().find(|p| p.eq_ignore_ascii_case(name)) else {
                return Err(QueryError {
                    code: "BadRequest",
                    message: format!(
                        "Could not find a property named '{name}' on type '{type_name}'."
                    ),
                });
            };
            names.push((*known).to_owned());
        }
        query.select = Some(names);
    }
    Ok(query)
}

/// Keeps the `$select`ed properties of `all` (every property without `$select`).
fn projected(mut all: Map<String, Value>, select: Option<&[String]>) -> Map<String, Value> {
    let Some(names) = select else {
        return all;
    };
    let mut out = Map::new();
    for name in names {
        if let Some(value) = all.remove(name) {
            out.insert(name.clone(), value);
        }
    }
    out
}

/// One page of `items` from the query's position, with Graph's collection annotations.
fn page(
    shared: &Shared,
    ctx: &RequestContext,
    query: &CollectionQuery,
    context: &str,
    items: Vec<Value>,
) -> Reply {
    let start = match query.start_position() {
        Ok(s) => usize::try_from(s).unwrap_or(usize::MAX),
        Err(error) => return query_error(shared, ctx, &error),
    };
    let size = usize::try_from(query.page_size()).unwrap_or(100);
    let total = items.len();
    let end = start.saturating_add(size).min(total);
    let value: Vec<Value> = items
        .into_iter()
        .skip(start)
        .take(end.saturating_sub(start))
        .collect();
    let mut body = Map::new();
    body.insert("@odata.context".to_owned(), json!(context));
    if query.wants_count() {
        body.insert("@odata.count".to_owned(), json!(total));
    }
    if end < total {
        body.insert(
            "@odata.nextLink".to_owned(),
            json!(next_link(shared, ctx, query, end as u64)),
        );
    }
    body.insert("value".to_owned(), Value::Array(value));
    Reply::json(StatusCode::OK, &Value::Object(body))
}

/// The user addressed by `key` (object id or UPN) and its index, or a 404 reply.
fn user(shared: &Shared, ctx: &RequestContext, key: &str) -> Result<(u64, User), Reply> {
    shared
        .directory
        .resolve(key)
        .and_then(|index| {
            shared
                .directory
                .user(index, &shared.clock)
                .map(|u| (index, u))
        })
        .ok_or_else(|| directory_error(shared, ctx, &DirectoryError::NotFound(key.to_owned())))
}

/// `GET /users/{id}/memberOf[/microsoft.graph.group]`: the groups the user is a direct member
/// of. Without a permission to read groups (`group_details`), each comes back with only its
/// `@odata.type` and `id` (Graph's "limited information" rule).
pub(super) fn member_of(
    shared: &Shared,
    ctx: &RequestContext,
    key: &str,
    groups_only: bool,
    group_details: bool,
) -> Reply {
    let (index, _) = match user(shared, ctx, key) {
        Ok(found) => found,
        Err(reply) => return reply,
    };
    let query = match relation_query(ctx, GROUP_PROPERTIES, "microsoft.graph.directoryObject") {
        Ok(q) => q,
        Err(error) => return query_error(shared, ctx, &error),
    };
    let items = shared
        .directory
        .member_of(index)
        .into_iter()
        .map(|position| {
            let group = &shared.directory.facts.groups[position];
            let mut item = Map::new();
            if !groups_only {
                item.insert("@odata.type".to_owned(), json!("#microsoft.graph.group"));
            }
            if group_details {
                let Value::Object(all) = super::groups::group_json(group) else {
                    unreachable!("a group is a JSON object")
                };
                item.extend(projected(all, query.select.as_deref()));
            } else {
                item.insert("id".to_owned(), json!(group.id));
            }
            Value::Object(item)
        })
        .collect();
    let context = if groups_only {
        context_url(shared, "groups")
    } else {
        context_url(shared, "directoryObjects")
    };
    page(shared, ctx, &query, &context, items)
}

/// `GET /users/{id}/appRoleAssignments`.
pub(super) fn app_role_assignments(shared: &Shared, ctx: &RequestContext, key: &str) -> Reply {
    let (index, user) = match user(shared, ctx, key) {
        Ok(found) => found,
        Err(reply) => return reply,
    };
    let query = match relation_query(
        ctx,
        ASSIGNMENT_PROPERTIES,
        "microsoft.graph.appRoleAssignment",
    ) {
        Ok(q) => q,
        Err(error) => return query_error(shared, ctx, &error),
    };
    let items = shared
        .directory
        .app_role_assignments(index)
        .into_iter()
        .map(|a| {
            let all = json!({
                "id": a.id,
                "deletedDateTime": null,
                "appRoleId": a.app_role_id,
                "createdDateTime": a.created_date_time,
                "principalDisplayName": user.display_name,
                "principalId": user.id,
                "principalType": "User",
                "resourceDisplayName": a.resource_display_name,
                "resourceId": a.resource_id,
            });
            let Value::Object(all) = all else {
                unreachable!("an assignment is a JSON object")
            };
            Value::Object(projected(all, query.select.as_deref()))
        })
        .collect();
    let context = context_url(shared, &format!("users('{}')/appRoleAssignments", user.id));
    page(shared, ctx, &query, &context, items)
}

/// `DELETE /groups/{group}/members/{member}/$ref`: 204, or 404 when the group is unknown or
/// the user is not one of its direct members.
pub(super) fn remove_member(
    shared: &Shared,
    ctx: &RequestContext,
    group: &str,
    member: &str,
) -> Reply {
    let Some(position) = shared.directory.facts.group_position(group) else {
        return directory_error(shared, ctx, &DirectoryError::NotFound(group.to_owned()));
    };
    let Some(index) = shared.directory.resolve(member) else {
        return directory_error(shared, ctx, &DirectoryError::NotFound(member.to_owned()));
    };
    match shared.directory.remove_group_member(position, index) {
        Ok(()) => {
            let mut reply = Reply::empty(StatusCode::NO_CONTENT);
            reply.droppable = true;
            reply
        }
        Err(error) => directory_error(shared, ctx, &error),
    }
}
