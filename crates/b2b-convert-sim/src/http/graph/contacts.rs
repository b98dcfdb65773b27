//! Org contacts: `GET /contacts` (v1.0 `orgContact`), paged like users, with `$select` over the
//! modelled contact properties, `$top` and `$count`. Contacts hold addresses (`mail`,
//! `proxyAddresses`) that no user may take; the directory enforces that, this only lists them.

use hyper::StatusCode;
use serde_json::{Map, Value, json};

use super::super::{Reply, RequestContext};
use super::{context_url, next_link, query_error};
use crate::Shared;
use crate::model::{CONTACT_PROPERTIES, OrgContact};
use crate::odata::{CollectionQuery, QueryError};

/// The list's query options: `$select` over the contact properties, then `$top`, `$count`,
/// `$skiptoken` as for users.
fn parse(ctx: &RequestContext) -> Result<CollectionQuery, QueryError> {
    let eventual = ctx
        .header("consistencylevel")
        .is_some_and(|v| v.eq_ignore_ascii_case("eventual"));
    // `$filter`, `$search`, `$orderby` and `$expand` are real options of this list that the
    // simulator does not model: refused with a 400 that says so, never ignored.
    if let Some((key, _)) = ctx
        .query
        .iter()
        .find(|(k, _)| matches!(k.as_str(), "$filter" | "$search" | "$orderby" | "$expand"))
    {
        return Err(QueryError {
            code: "Request_UnsupportedQuery",
            message: format!("{key} on /contacts is not modelled by the b2b-convert simulator."),
        });
    }
    let mut select = None;
    let mut rest = Vec::new();
    for (key, value) in &ctx.query {
        if key == "$select" {
            let mut names = Vec::new();
            for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                let Some(known) = CONTACT_PROPERTIES
                    .iter()
                    .find(|p| p.eq_ignore_ascii_case(name))
                else {
                    return Err(QueryError {
                        code: "BadRequest",
                        message: format!(
                            "Could not find a property named '{name}' on type 'microsoft.graph.orgContact'."
                        ),
                    });
                };
                names.push((*known).to_owned());
            }
            select = Some(names);
        } else {
            rest.push((key.clone(), value.clone()));
        }
    }
    let mut query = CollectionQuery::parse(&rest, eventual)?;
    query.select = select;
    Ok(query)
}

/// A contact's JSON with only the `$select`ed properties (every modelled one without).
fn project(contact: &OrgContact, select: Option<&[String]>) -> Map<String, Value> {
    let Ok(Value::Object(mut all)) = serde_json::to_value(contact) else {
        return Map::new();
    };
    match select {
        None => all,
        Some(names) => names
            .iter()
            .filter_map(|n| all.remove(n).map(|v| (n.clone(), v)))
            .collect(),
    }
}

/// `GET /contacts`.
pub(super) fn list_contacts(shared: &Shared, ctx: &RequestContext) -> Reply {
    let query = match parse(ctx) {
        Ok(query) => query,
        Err(error) => return query_error(shared, ctx, &error),
    };
    let start = match query.start_position() {
        Ok(start) => start,
        Err(error) => return query_error(shared, ctx, &error),
    };
    let source = &shared.directory;
    let size = usize::try_from(query.page_size()).unwrap_or(100);
    let end = source.contact_positions();
    let mut items = Vec::new();
    let mut next = None;
    let mut position = start;
    while position < end {
        if let Some(contact) = source.contact_at(position) {
            if items.len() == size {
                next = Some(position);
                break;
            }
            items.push(Value::Object(project(&contact, query.select.as_deref())));
        }
        position += 1;
    }
    let mut body = Map::new();
    let context = match &query.select {
        Some(names) => context_url(shared, &format!("contacts({})", names.join(","))),
        None => context_url(shared, "contacts"),
    };
    body.insert("@odata.context".to_owned(), json!(context));
    if query.wants_count() {
        let count = (0..end).filter(|p| source.contact_at(*p).is_some()).count();
        body.insert("@odata.count".to_owned(), json!(count));
    }
    if let Some(position) = next {
        body.insert(
            "@odata.nextLink".to_owned(),
            json!(next_link(shared, ctx, &query, position)),
        );
    }
    body.insert("value".to_owned(), Value::Array(items));
    Reply::json(StatusCode::OK, &Value::Object(body))
}
