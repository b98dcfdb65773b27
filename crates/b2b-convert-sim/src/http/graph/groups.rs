//! Groups for wave selection: `/groups` (looked up by `displayName` or `id`), `/groups/{id}`,
//! and `/groups/{id}/members` and `/transitiveMembers` (users, org contacts and groups), with
//! the `microsoft.graph.user` cast (users only).

use hyper::StatusCode;
use serde_json::{Map, Value, json};

use super::super::{Reply, RequestContext};
use super::{context_url, directory_error, next_link, query_error, users_context};
use crate::Shared;
use crate::directory::DirectoryError;
use crate::odata::{CollectionQuery, Filter};

/// The group properties the simulator models (what `$select` may name).
const GROUP_PROPERTIES: &[&str] = &[
    "id",
    "displayName",
    "description",
    "groupTypes",
    "mail",
    "mailEnabled",
    "securityEnabled",
];

/// A group's JSON (the properties the simulator models).
pub(super) fn group_json(group: &crate::directory::Group) -> Value {
    json!({
        "id": group.id,
        "displayName": group.display_name,
        "description": null,
        "groupTypes": [],
        "mail": null,
        "mailEnabled": false,
        "securityEnabled": true,
    })
}

/// `GET /groups/{id}`, with `$select`.
pub(super) fn group(shared: &Shared, ctx: &RequestContext, id: &str) -> Reply {
    let select = match group_select(ctx) {
        Ok(select) => select,
        Err(message) => {
            return Reply::graph_error(
                ctx,
                shared,
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &message,
            );
        }
    };
    let Some(position) = shared.directory.facts.group_position(id) else {
        return directory_error(shared, ctx, &DirectoryError::NotFound(id.to_owned()));
    };
    let mut body = Map::new();
    body.insert(
        "@odata.context".to_owned(),
        json!(context_url(shared, "groups/$entity")),
    );
    body.extend(projected(
        &shared.directory.facts.groups[position],
        select.as_deref(),
    ));
    Reply::json(StatusCode::OK, &Value::Object(body))
}

/// The `$select` of a group request: `None` for every modelled property; an unknown name is
/// Graph's 400.
fn group_select(ctx: &RequestContext) -> Result<Option<Vec<&'static str>>, String> {
    let Some((_, text)) = ctx.query.iter().find(|(k, _)| k == "$select") else {
        return Ok(None);
    };
    text.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|name| {
            GROUP_PROPERTIES
                .iter()
                .find(|p| p.eq_ignore_ascii_case(name))
                .copied()
                .ok_or_else(|| {
                    format!(
                        "Could not find a property named '{name}' on type 'microsoft.graph.group'."
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// A group's JSON projected by `$select`.
fn projected(group: &crate::directory::Group, select: Option<&[&str]>) -> Map<String, Value> {
    let Value::Object(mut all) = group_json(group) else {
        return Map::new();
    };
    match select {
        None => all,
        Some(names) => names
            .iter()
            .filter_map(|n| all.remove(*n).map(|v| ((*n).to_owned(), v)))
            .collect(),
    }
}

/// `GET /groups`, with `$filter` on `displayName` or `id` only (how the tool finds a wave's
/// group), `$select` and `$top`.
pub(super) fn list_groups(shared: &Shared, ctx: &RequestContext) -> Reply {
    let select = match group_select(ctx) {
        Ok(select) => select,
        Err(message) => {
            return Reply::graph_error(
                ctx,
                shared,
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &message,
            );
        }
    };
    let filter = match ctx.query.iter().find(|(k, _)| k == "$filter") {
        None => None,
        Some((_, text)) => match Filter::parse(text, false) {
            Err(error) => return query_error(shared, ctx, &error),
            Ok(filter) => {
                if let Some(other) = filter
                    .properties()
                    .into_iter()
                    .find(|p| *p != "id" && *p != "displayName")
                {
                    return Reply::graph_error(
                        ctx,
                        shared,
                        StatusCode::BAD_REQUEST,
                        "Request_UnsupportedQuery",
                        &format!(
                            "The b2b-convert simulator filters groups only on id and displayName, not '{other}'."
                        ),
                    );
                }
                Some(filter)
            }
        },
    };
    if let Some((key, _)) = ctx
        .query
        .iter()
        .find(|(k, _)| k.starts_with('$') && k != "$filter" && k != "$top" && k != "$select")
    {
        return Reply::graph_error(
            ctx,
            shared,
            StatusCode::BAD_REQUEST,
            "Request_UnsupportedQuery",
            &format!("{key} on /groups is not modelled by the b2b-convert simulator."),
        );
    }
    let top = match ctx.query.iter().find(|(k, _)| k == "$top") {
        None => usize::MAX,
        Some((_, value)) => match value.parse::<usize>() {
            Ok(n @ 1..=999) => n,
            _ => {
                return Reply::graph_error(
                    ctx,
                    shared,
                    StatusCode::BAD_REQUEST,
                    "Request_BadRequest",
                    &format!(
                        "Invalid page size specified: '{value}'. Must be between 1 and 999 inclusive."
                    ),
                );
            }
        },
    };
    let groups: Vec<Value> = shared
        .directory
        .facts
        .groups
        .iter()
        .filter(|g| {
            filter.as_ref().is_none_or(|f| {
                // Evaluate id/displayName filters with the user evaluator on a stand-in object.
                let stand_in = crate::model::User::named(&g.id, &g.display_name);
                f.matches(&stand_in)
            })
        })
        .take(top)
        .map(|g| Value::Object(projected(g, select.as_deref())))
        .collect();
    Reply::json(
        StatusCode::OK,
        &json!({"@odata.context": context_url(shared, "groups"), "value": groups}),
    )
}

#[allow(clippy::too_many_lines)] // one walk over a page of three kinds of member
pub(super) fn members(
    shared: &Shared,
    ctx: &RequestContext,
    group: &str,
    transitive: bool,
    users_only: bool,
    user_details: bool,
    query: &CollectionQuery,
) -> Reply {
    let Some(position) = shared.directory.facts.group_position(group) else {
        return directory_error(shared, ctx, &DirectoryError::NotFound(group.to_owned()));
    };
    // "Use of OData cast with transitive members list" is in the documentation's table of
    // queries that need the advanced query capabilities (NOTES §3.4); the cast on direct
    // members works by default.
    if transitive && users_only && !(query.eventual && query.wants_count()) {
        return Reply::graph_error(
            ctx,
            shared,
            StatusCode::BAD_REQUEST,
            "Request_UnsupportedQuery",
            "The request is an advanced query (an OData cast on a transitive members list): required parameters might be missing. Send the ConsistencyLevel: eventual header and $count=true.",
        );
    }
    if query.filter.is_some() && !users_only {
        return Reply::graph_error(
            ctx,
            shared,
            StatusCode::BAD_REQUEST,
            "Request_UnsupportedQuery",
            "The b2b-convert simulator supports $filter on group members only with the microsoft.graph.user cast.",
        );
    }
    let start = match query.start_position() {
        Ok(s) => s,
        Err(error) => return query_error(shared, ctx, &error),
    };
    let found = shared.directory.members(position, transitive);
    let (ranges, groups) = (&found.users, &found.groups);
    let size = usize::try_from(query.page_size()).unwrap_or(100);
    let user_count: u64 = ranges.iter().map(|r| r.end - r.start).sum();
    // The cast (and a filter, which needs it) keeps users only: no contacts, no groups.
    let (contact_count, group_count) = if users_only || query.filter.is_some() {
        (0, 0)
    } else {
        (found.contacts.len() as u64, groups.len() as u64)
    };
    let total = user_count + contact_count + group_count;
    let mut items = Vec::new();
    let mut next = None;
    let mut cursor = start;
    while cursor < total {
        if cursor < user_count {
            let mut offset = cursor;
            let index = ranges
                .iter()
                .find_map(|r| {
                    let len = r.end - r.start;
                    if offset < len {
                        Some(r.start + offset)
                    } else {
                        offset -= len;
                        None
                    }
                })
                .unwrap_or(0);
            if let Some(user) = shared.directory.user(index, &shared.clock)
                && query.filter.as_ref().is_none_or(|f| f.matches(&user))
            {
                if items.len() == size {
                    next = Some(cursor);
                    break;
                }
                let mut item = Map::new();
                if !users_only {
                    item.insert("@odata.type".to_owned(), json!("#microsoft.graph.user"));
                }
                if user_details {
                    item.extend(query.project(&user));
                } else {
                    item.insert("id".to_owned(), json!(user.id));
                }
                items.push(Value::Object(item));
            }
        } else if cursor < user_count + contact_count {
            if items.len() == size {
                next = Some(cursor);
                break;
            }
            let slot = found.contacts[usize::try_from(cursor - user_count).unwrap_or(0)];
            if let Some(contact) = shared.directory.contact_at(slot) {
                items.push(json!({
                    "@odata.type": "#microsoft.graph.orgContact",
                    "id": contact.id,
                    "displayName": contact.display_name,
                    "mail": contact.mail,
                }));
            }
        } else {
            if items.len() == size {
                next = Some(cursor);
                break;
            }
            let g = &shared.directory.facts.groups
                [groups[usize::try_from(cursor - user_count - contact_count).unwrap_or(0)]];
            items.push(json!({"@odata.type": "#microsoft.graph.group", "id": g.id, "displayName": g.display_name}));
        }
        cursor += 1;
    }
    let mut body = Map::new();
    let context = if users_only {
        users_context(shared, query)
    } else {
        context_url(shared, "directoryObjects")
    };
    body.insert("@odata.context".to_owned(), json!(context));
    if query.wants_count() {
        body.insert("@odata.count".to_owned(), json!(total));
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
