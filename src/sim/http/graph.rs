//! The Graph endpoints (`/v1.0/...`): routing, per-endpoint permissions and throttling costs,
//! and the JSON bodies of users, group members, domains, organization, federation
//! configurations and invitations.
//!
//! It must not implement directory rules (they are in `directory`) nor `OData` parsing (in
//! `odata`); it only wires them to Graph's paths, status codes and body shapes.

use hyper::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::{Ctx, Reply, apply_faults, maybe_drop};
use crate::sim::Shared;
use crate::sim::auth::Permission;
use crate::sim::directory::{DirectoryError, InvitationRequest};
use crate::sim::faults::Endpoint;
use crate::sim::observe::Outcome;
use crate::sim::odata::{CollectionQuery, QueryError};
use crate::sim::throttle::{Admission, Cost};

/// What a Graph path resolved to.
enum Route {
    ListUsers,
    CountUsers,
    User(String),
    Members {
        group: String,
        transitive: bool,
        users_only: bool,
    },
    Domains,
    Domain(String),
    Organization,
    FederationList,
    Federation(String),
    FederationDomains(String),
    Invitations,
}

enum Resolution {
    Found(Route, Endpoint, Permission),
    Error(StatusCode, &'static str, String),
}

const FEDERATION_CASTS: &[&str] = &[
    "graph.samlOrWsFedExternalDomainFederation",
    "microsoft.graph.samlOrWsFedExternalDomainFederation",
];
/// Real Graph resources the simulator does not model: answered with 501, not a fake 400.
const NOT_MODELLED: &[&str] = &[
    "me",
    "$batch",
    "applications",
    "servicePrincipals",
    "subscribedSkus",
    "contacts",
    "directoryObjects",
    "identity",
    "policies",
    "auditLogs",
];

#[allow(clippy::match_same_arms)] // one arm per Graph path reads as a routing table
#[allow(clippy::too_many_lines)] // one linear sequence of checks in the order the service makes them
fn resolve(ctx: &Ctx) -> Resolution {
    let segments = ctx.segments("/v1.0");
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let not_found = |s: &str| {
        Resolution::Error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("Resource not found for the segment '{s}'."),
        )
    };
    let not_modelled = || {
        Resolution::Error(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            format!(
                "'{} {}' is a Microsoft Graph request the b2b-convert simulator does not model.",
                ctx.method, ctx.path
            ),
        )
    };
    let method_not_allowed = || {
        Resolution::Error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
            "Specified HTTP method is not allowed for the request target.".to_owned(),
        )
    };
    let get = ctx.method == Method::GET;
    let found = |route, endpoint, permission| Resolution::Found(route, endpoint, permission);
    match seg.as_slice() {
        [] => not_found(""),
        ["users"] if get => found(Route::ListUsers, Endpoint::ListUsers, Permission::ReadUsers),
        ["users"] if ctx.method == Method::POST => not_modelled(),
        ["users"] => method_not_allowed(),
        ["users", "$count"] if get => found(
            Route::CountUsers,
            Endpoint::ListUsers,
            Permission::ReadUsers,
        ),
        ["users", "delta" | "delta()"] => not_modelled(),
        ["users", id] if get => found(
            Route::User((*id).to_owned()),
            Endpoint::GetUser,
            Permission::ReadUsers,
        ),
        ["users", id] if ctx.method == Method::PATCH => found(
            Route::User((*id).to_owned()),
            Endpoint::PatchUser,
            Permission::WriteUsers,
        ),
        ["users", _] if ctx.method == Method::DELETE => not_modelled(),
        ["users", _] => method_not_allowed(),
        [
            "users",
            _,
            "licenseDetails"
            | "memberOf"
            | "transitiveMemberOf"
            | "manager"
            | "sponsors"
            | "convertExternalToInternalMemberUser",
            ..,
        ] => not_modelled(),
        ["users", _, other, ..] => not_found(other),
        [
            "groups",
            group,
            kind @ ("members" | "transitiveMembers"),
            rest @ ..,
        ] => {
            let users_only = match rest {
                [] => false,
                ["microsoft.graph.user" | "graph.user"] => true,
                [other, ..] => return not_found(other),
            };
            if !get {
                return if ctx.method == Method::POST {
                    not_modelled()
                } else {
                    method_not_allowed()
                };
            }
            let transitive = *kind == "transitiveMembers";
            let endpoint = if transitive {
                Endpoint::GroupTransitiveMembers
            } else {
                Endpoint::GroupMembers
            };
            found(
                Route::Members {
                    group: (*group).to_owned(),
                    transitive,
                    users_only,
                },
                endpoint,
                Permission::ReadGroupMembers,
            )
        }
        ["groups", ..] => not_modelled(),
        ["domains"] if get => found(Route::Domains, Endpoint::Domains, Permission::ReadDomains),
        ["domains", id] if get => found(
            Route::Domain((*id).to_owned()),
            Endpoint::Domains,
            Permission::ReadDomains,
        ),
        ["domains", ..] => {
            if get {
                not_modelled()
            } else {
                method_not_allowed()
            }
        }
        ["organization"] | ["organization", _] if get => found(
            Route::Organization,
            Endpoint::Organization,
            Permission::ReadOrganization,
        ),
        ["organization", ..] => method_not_allowed(),
        ["directory", "federationConfigurations"] if get => found(
            Route::FederationList,
            Endpoint::Federation,
            Permission::ReadFederation,
        ),
        ["directory", "federationConfigurations", cast]
            if get && FEDERATION_CASTS.contains(cast) =>
        {
            found(
                Route::FederationList,
                Endpoint::Federation,
                Permission::ReadFederation,
            )
        }
        ["directory", "federationConfigurations", cast, id]
            if get && FEDERATION_CASTS.contains(cast) =>
        {
            found(
                Route::Federation((*id).to_owned()),
                Endpoint::Federation,
                Permission::ReadFederation,
            )
        }
        ["directory", "federationConfigurations", cast, id, "domains"]
            if get && FEDERATION_CASTS.contains(cast) =>
        {
            found(
                Route::FederationDomains((*id).to_owned()),
                Endpoint::Federation,
                Permission::ReadFederation,
            )
        }
        ["directory", "federationConfigurations", cast, ..] if !FEDERATION_CASTS.contains(cast) => {
            not_found(cast)
        }
        ["directory", ..] => not_modelled(),
        ["invitations"] if ctx.method == Method::POST => found(
            Route::Invitations,
            Endpoint::Invitations,
            Permission::InviteUsers,
        ),
        ["invitations", ..] => not_modelled(),
        [first, ..] if NOT_MODELLED.contains(first) => not_modelled(),
        [first, ..] => not_found(first),
    }
}

/// Handles a request under `/v1.0` (or another version prefix).
#[allow(clippy::too_many_lines)] // one linear sequence of checks in the order the service makes them
pub(crate) async fn handle(
    shared: &Shared,
    ctx: &Ctx,
) -> (Reply, Option<Endpoint>, Option<String>) {
    if !(ctx.path == "/v1.0" || ctx.path.starts_with("/v1.0/")) {
        let version = ctx
            .path
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("");
        let message = if version == "beta" {
            "Invalid version: beta (the b2b-convert simulator serves only v1.0).".to_owned()
        } else {
            format!("Invalid version: {version}")
        };
        return (
            Reply::graph_error(ctx, shared, StatusCode::BAD_REQUEST, "BadRequest", &message),
            Some(Endpoint::OtherGraph),
            None,
        );
    }
    let (route, endpoint, permission) = match resolve(ctx) {
        Resolution::Found(route, endpoint, permission) => (route, endpoint, permission),
        Resolution::Error(status, code, message) => {
            return (
                Reply::graph_error(ctx, shared, status, code, &message),
                Some(Endpoint::OtherGraph),
                None,
            );
        }
    };
    // Count invitation attempts on arrival, whatever happens to them next.
    let invitation_body = if endpoint == Endpoint::Invitations {
        let parsed: Option<Value> = serde_json::from_slice(&ctx.body).ok();
        if let Some(id) = parsed
            .as_ref()
            .and_then(|b| b.pointer("/invitedUser/id"))
            .and_then(Value::as_str)
        {
            shared.observer.count_invitation_post(id);
        }
        Some(parsed)
    } else {
        None
    };
    let commit_then_drop = match apply_faults(shared, ctx, Some(endpoint)).await {
        Ok(drop) => drop,
        Err(reply) => return (reply, Some(endpoint), None),
    };
    let principal = match shared.auth.authenticate(
        &shared.directory.facts,
        ctx.header("authorization"),
        &shared.clock,
    ) {
        Ok(p) => p,
        Err(error) => {
            let reply = Reply::graph_error(ctx, shared, StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", &error.0).header(
                "www-authenticate",
                "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
            );
            return (reply, Some(endpoint), None);
        }
    };
    let app_id = Some(principal.app_id.clone());
    if !principal.has(permission) {
        let reply = Reply::graph_error(
            ctx,
            shared,
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        );
        return (reply, Some(endpoint), app_id);
    }
    let query = match route {
        Route::ListUsers | Route::CountUsers | Route::User(_) | Route::Members { .. } => {
            let eventual = ctx
                .header("consistencylevel")
                .is_some_and(|v| v.eq_ignore_ascii_case("eventual"));
            match CollectionQuery::parse(&ctx.query, eventual) {
                Ok(q) => Some(q),
                Err(error) => return (query_error(shared, ctx, &error), Some(endpoint), app_id),
            }
        }
        _ => None,
    };
    let has_select = ctx.query.iter().any(|(k, _)| k == "$select");
    let has_expand = ctx.query.iter().any(|(k, _)| k == "$expand");
    let top = query.as_ref().and_then(|q| q.top);
    let cost = Cost::of(endpoint, has_select, has_expand, top);
    let admission = shared
        .throttle
        .admit(endpoint, &principal.app_id, cost, shared.clock.now_ms());
    let mut extra_headers: Vec<(&'static str, String)> = Vec::new();
    match admission {
        Admission::Throttled {
            retry_after_secs,
            scope,
            information,
        } => {
            let (code, message) = if endpoint == Endpoint::Invitations {
                (
                    "TooManyRequests",
                    format!("Too many requests. Please retry after {retry_after_secs} seconds."),
                )
            } else {
                (
                    "Request_ThrottledTemporarily",
                    format!(
                        "Your request is throttled temporarily. Please try after {retry_after_secs} seconds."
                    ),
                )
            };
            let mut reply =
                Reply::graph_error(ctx, shared, StatusCode::TOO_MANY_REQUESTS, code, &message)
                    .header("retry-after", retry_after_secs.to_string())
                    .header("x-ms-throttle-scope", scope)
                    .header("x-ms-throttle-information", information);
            reply.outcome = Outcome::Throttled;
            return (reply, Some(endpoint), app_id);
        }
        Admission::Allowed {
            resource_units,
            limit_percentage,
        } => {
            if let Some(units) = resource_units {
                extra_headers.push(("x-ms-resource-unit", units.to_string()));
            }
            if let Some(percentage) = limit_percentage {
                extra_headers.push(("x-ms-throttle-limit-percentage", format!("{percentage:.1}")));
            }
        }
    }
    let mut reply = match route {
        Route::ListUsers => list_users(
            shared,
            ctx,
            query.as_ref().unwrap_or(&CollectionQuery::default()),
        ),
        Route::CountUsers => count_users(
            shared,
            ctx,
            query.as_ref().unwrap_or(&CollectionQuery::default()),
        ),
        Route::User(key) if ctx.method == Method::PATCH => patch_user(shared, ctx, &key),
        Route::User(key) => get_user(
            shared,
            ctx,
            &key,
            query.as_ref().unwrap_or(&CollectionQuery::default()),
        ),
        Route::Members {
            group,
            transitive,
            users_only,
        } => {
            let user_details = principal.has(Permission::ReadUsers);
            members(
                shared,
                ctx,
                &group,
                transitive,
                users_only,
                user_details,
                query.as_ref().unwrap_or(&CollectionQuery::default()),
            )
        }
        Route::Domains => domains(shared, ctx, None),
        Route::Domain(id) => domains(shared, ctx, Some(&id)),
        Route::Organization => organization(shared, ctx),
        Route::FederationList => federation(shared, ctx, None, false),
        Route::Federation(id) => federation(shared, ctx, Some(&id), false),
        Route::FederationDomains(id) => federation(shared, ctx, Some(&id), true),
        Route::Invitations => invite(shared, ctx, invitation_body.flatten()),
    };
    for (name, value) in extra_headers {
        reply = reply.header(name, value);
    }
    (maybe_drop(reply, commit_then_drop), Some(endpoint), app_id)
}

fn query_error(shared: &Shared, ctx: &Ctx, error: &QueryError) -> Reply {
    Reply::graph_error(
        ctx,
        shared,
        StatusCode::BAD_REQUEST,
        error.code,
        &error.message,
    )
}

fn directory_error(shared: &Shared, ctx: &Ctx, error: &DirectoryError) -> Reply {
    match error {
        DirectoryError::NotFound(_) => Reply::graph_error(
            ctx,
            shared,
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            &error.to_string(),
        ),
        DirectoryError::BadRequest { code, message } => {
            Reply::graph_error(ctx, shared, StatusCode::BAD_REQUEST, code, message)
        }
    }
}

fn context_url(shared: &Shared, fragment: &str) -> String {
    format!("{}/v1.0/$metadata#{fragment}", shared.graph_url)
}

fn users_context(shared: &Shared, query: &CollectionQuery) -> String {
    match &query.select {
        Some(names) => context_url(shared, &format!("users({})", names.join(","))),
        None => context_url(shared, "users"),
    }
}

/// The `@odata.nextLink`: the same request with `$skiptoken` replaced.
fn next_link(shared: &Shared, ctx: &Ctx, query: &CollectionQuery, position: u64) -> String {
    // Like Graph's links: `$select=id&$top=999&$skiptoken=…`, with `$` and `,` left readable.
    const VALUE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'&')
        .add(b'+')
        .add(b'<')
        .add(b'>')
        .add(b'=')
        .add(b'?')
        .add(b'`')
        .add(b'{')
        .add(b'}')
        .add(b'|')
        .add(b'\\')
        .add(b'^');
    let token = query.token_for(position);
    let pairs = ctx
        .query
        .iter()
        .filter(|(k, _)| k != "$skiptoken")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain([("$skiptoken", token.as_str())])
        .map(|(k, v)| {
            format!(
                "{}={}",
                percent_encoding::utf8_percent_encode(k, VALUE),
                percent_encoding::utf8_percent_encode(v, VALUE)
            )
        })
        .collect::<Vec<_>>()
        .join("&");
    format!("{}{}?{pairs}", shared.graph_url, ctx.path)
}

fn list_users(shared: &Shared, ctx: &Ctx, query: &CollectionQuery) -> Reply {
    let start = match query.start_position() {
        Ok(s) => s,
        Err(error) => return query_error(shared, ctx, &error),
    };
    let size = usize::try_from(query.page_size()).unwrap_or(100);
    let mut items = Vec::with_capacity(size);
    let mut next = None;
    shared.directory.scan(start, &shared.clock, |index, user| {
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

fn count_matching(shared: &Shared, query: &CollectionQuery) -> u64 {
    let mut count = 0;
    shared.directory.scan(0, &shared.clock, |_, user| {
        if query.filter.as_ref().is_none_or(|f| f.matches(&user)) {
            count += 1;
        }
        true
    });
    count
}

fn count_users(shared: &Shared, ctx: &Ctx, query: &CollectionQuery) -> Reply {
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

fn get_user(shared: &Shared, ctx: &Ctx, key: &str, query: &CollectionQuery) -> Reply {
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

fn patch_user(shared: &Shared, ctx: &Ctx, key: &str) -> Reply {
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

fn invalid_payload(shared: &Shared, ctx: &Ctx) -> Reply {
    Reply::graph_error(
        ctx,
        shared,
        StatusCode::BAD_REQUEST,
        "BadRequest",
        "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
    )
}

fn members(
    shared: &Shared,
    ctx: &Ctx,
    group: &str,
    transitive: bool,
    users_only: bool,
    user_details: bool,
    query: &CollectionQuery,
) -> Reply {
    let Some(position) = shared.directory.facts.group_position(group) else {
        return directory_error(shared, ctx, &DirectoryError::NotFound(group.to_owned()));
    };
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
    let (ranges, groups) = shared.directory.members(position, transitive);
    let size = usize::try_from(query.page_size()).unwrap_or(100);
    let user_count: u64 = ranges.iter().map(|r| r.end - r.start).sum();
    let group_count = if users_only || query.filter.is_some() {
        0
    } else {
        groups.len() as u64
    };
    let total = user_count + group_count;
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
        } else {
            if items.len() == size {
                next = Some(cursor);
                break;
            }
            let g = &shared.directory.facts.groups
                [groups[usize::try_from(cursor - user_count).unwrap_or(0)]];
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

fn domains(shared: &Shared, ctx: &Ctx, id: Option<&str>) -> Reply {
    let all = &shared.directory.facts.domains;
    match id {
        None => Reply::json(
            StatusCode::OK,
            &json!({"@odata.context": context_url(shared, "domains"), "value": all}),
        ),
        Some(id) => match all.iter().find(|d| d.id.eq_ignore_ascii_case(id)) {
            Some(domain) => {
                let mut body = Map::new();
                body.insert(
                    "@odata.context".to_owned(),
                    json!(context_url(shared, "domains/$entity")),
                );
                if let Ok(Value::Object(fields)) = serde_json::to_value(domain) {
                    body.extend(fields);
                }
                Reply::json(StatusCode::OK, &Value::Object(body))
            }
            None => directory_error(shared, ctx, &DirectoryError::NotFound(id.to_owned())),
        },
    }
}

fn organization(shared: &Shared, ctx: &Ctx) -> Reply {
    let facts = &shared.directory.facts;
    let verified: Vec<Value> = facts
        .domains
        .iter()
        .filter(|d| d.is_verified)
        .map(|d| {
            json!({
                "capabilities": if d.is_initial { "Email, OfficeCommunicationsOnline" } else { "Email" },
                "isDefault": d.is_default,
                "isInitial": d.is_initial,
                "name": d.id,
                "type": d.authentication_type,
            })
        })
        .collect();
    let mut org = json!({
        "id": facts.tenant_id,
        "displayName": facts.display_name,
        "tenantType": "AAD",
        "verifiedDomains": verified,
    });
    if let Some((_, select)) = ctx.query.iter().find(|(k, _)| k == "$select") {
        let mut picked = Map::new();
        for name in select.split(',').map(str::trim) {
            match org.get(name) {
                Some(value) => {
                    picked.insert(name.to_owned(), value.clone());
                }
                None => {
                    return Reply::graph_error(
                        ctx,
                        shared,
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        &format!(
                            "Could not find a property named '{name}' on type 'microsoft.graph.organization'."
                        ),
                    );
                }
            }
        }
        org = Value::Object(picked);
    }
    Reply::json(
        StatusCode::OK,
        &json!({"@odata.context": context_url(shared, "organization"), "value": [org]}),
    )
}

fn federation(shared: &Shared, ctx: &Ctx, id: Option<&str>, domains_only: bool) -> Reply {
    let expand_domains = ctx
        .query
        .iter()
        .any(|(k, v)| k == "$expand" && v.split(',').any(|p| p.trim() == "domains"));
    let inline = expand_domains || shared.options.federation_domains_inline;
    let render = |config: &crate::sim::model::FederationConfiguration| {
        let mut value = json!({
            "@odata.type": "#microsoft.graph.samlOrWsFedExternalDomainFederation",
            "id": config.id,
            "displayName": config.display_name,
            "issuerUri": config.issuer_uri,
            "metadataExchangeUri": config.metadata_exchange_uri,
            "passiveSignInUri": config.passive_sign_in_uri,
            "preferredAuthenticationProtocol": config.preferred_authentication_protocol,
            "signingCertificate": config.signing_certificate,
        });
        if inline {
            value["domains"] = json!(
                config
                    .domains
                    .iter()
                    .map(|d| json!({"id": d}))
                    .collect::<Vec<_>>()
            );
        }
        value
    };
    let configs = &shared.directory.facts.federation;
    match id {
        None => Reply::json(
            StatusCode::OK,
            &json!({
                "@odata.context": context_url(shared, "directory/federationConfigurations/graph.samlOrWsFedExternalDomainFederation"),
                "value": configs.iter().map(render).collect::<Vec<_>>(),
            }),
        ),
        Some(id) => match configs.iter().find(|c| c.id.eq_ignore_ascii_case(id)) {
            None => directory_error(shared, ctx, &DirectoryError::NotFound(id.to_owned())),
            Some(config) if domains_only => Reply::json(
                StatusCode::OK,
                &json!({
                    "@odata.context": context_url(shared, &format!("directory/federationConfigurations('{id}')/microsoft.graph.samlOrWsFedExternalDomainFederation/domains")),
                    "value": config.domains.iter().map(|d| json!({"id": d})).collect::<Vec<_>>(),
                }),
            ),
            Some(config) => Reply::json(StatusCode::OK, &render(config)),
        },
    }
}

const INVITATION_PROPERTIES: &[&str] = &[
    "id",
    "invitedUserDisplayName",
    "invitedUserEmailAddress",
    "invitedUserMessageInfo",
    "invitedUserType",
    "inviteRedeemUrl",
    "inviteRedirectUrl",
    "resetRedemption",
    "sendInvitationMessage",
    "status",
    "invitedUser",
    "invitedUserSponsors",
    "@odata.type",
];

#[allow(clippy::too_many_lines)] // one linear sequence of checks in the order the service makes them
fn invite(shared: &Shared, ctx: &Ctx, body: Option<Value>) -> Reply {
    let Some(Value::Object(body)) = body else {
        return invalid_payload(shared, ctx);
    };
    let bad = |message: String| {
        Reply::graph_error(ctx, shared, StatusCode::BAD_REQUEST, "BadRequest", &message)
    };
    if let Some(unknown) = body
        .keys()
        .find(|k| !INVITATION_PROPERTIES.contains(&k.as_str()))
    {
        return bad(format!(
            "The property '{unknown}' does not exist on type 'microsoft.graph.invitation'. Make sure to only use property names that are defined by the type or mark the type as open type."
        ));
    }
    let text = |name: &str| -> Result<Option<String>, Reply> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad(format!(
                "Invalid value specified for property '{name}' of resource 'Invitation'."
            ))),
        }
    };
    let flag = |name: &str| -> Result<bool, Reply> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(bad(format!(
                "Invalid value specified for property '{name}' of resource 'Invitation'."
            ))),
        }
    };
    let parsed = (|| -> Result<InvitationRequest, Reply> {
        let invited_user_id = match body.get("invitedUser") {
            None | Some(Value::Null) => None,
            Some(Value::Object(user)) => match user.get("id") {
                Some(Value::String(id)) => Some(id.clone()),
                _ => return Err(bad(
                    "Invalid value specified for property 'invitedUser' of resource 'Invitation'."
                        .to_owned(),
                )),
            },
            Some(_) => {
                return Err(bad(
                    "Invalid value specified for property 'invitedUser' of resource 'Invitation'."
                        .to_owned(),
                ));
            }
        };
        let reset_redemption = flag("resetRedemption")?;
        if reset_redemption && invited_user_id.is_none() {
            return Err(bad(
                "invitedUser.id is required when resetRedemption is true.".to_owned(),
            ));
        }
        Ok(InvitationRequest {
            email: text("invitedUserEmailAddress")?.unwrap_or_default(),
            redirect_url: text("inviteRedirectUrl")?.unwrap_or_default(),
            display_name: text("invitedUserDisplayName")?,
            user_type: text("invitedUserType")?,
            send_message: flag("sendInvitationMessage")?,
            reset_redemption,
            invited_user_id,
        })
    })();
    let request = match parsed {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let invitation = match shared.directory.invite(&request, &shared.clock) {
        Ok(i) => i,
        Err(error) => return directory_error(shared, ctx, &error),
    };
    let facts = &shared.directory.facts;
    let ticket = invitation.id.replace('-', "");
    let inner = format!(
        "https://invitations.microsoft.com/redeem/?tenant={}&user={}&ticket={ticket}&ver=2.0",
        facts.tenant_id, invitation.user.id
    );
    let redeem_url = format!(
        "{}/redeem?rd={}",
        shared.login_url,
        url::form_urlencoded::byte_serialize(inner.as_bytes()).collect::<String>()
    );
    let message_info = match body.get("invitedUserMessageInfo") {
        Some(Value::Object(info)) => json!({
            "messageLanguage": info.get("messageLanguage").cloned().unwrap_or(Value::Null),
            "ccRecipients": info.get("ccRecipients").cloned().filter(Value::is_array).unwrap_or_else(|| json!([{"emailAddress": {"name": null, "address": null}}])),
            "customizedMessageBody": info.get("customizedMessageBody").cloned().unwrap_or(Value::Null),
        }),
        _ => {
            json!({"messageLanguage": null, "ccRecipients": [{"emailAddress": {"name": null, "address": null}}], "customizedMessageBody": null})
        }
    };
    let response = json!({
        "@odata.context": context_url(shared, "invitations/$entity"),
        "id": invitation.id,
        "inviteRedeemUrl": redeem_url,
        "invitedUserDisplayName": request.display_name.clone().or_else(|| invitation.user.display_name.clone()),
        "invitedUserType": request.user_type.clone().unwrap_or_else(|| "Guest".to_owned()),
        "invitedUserEmailAddress": request.email,
        "sendInvitationMessage": request.send_message,
        "resetRedemption": request.reset_redemption,
        "inviteRedirectUrl": request.redirect_url,
        "status": invitation.status,
        "invitedUserMessageInfo": message_info,
        "invitedUser": {"id": invitation.user.id},
    });
    let mut reply = Reply::json(StatusCode::CREATED, &response);
    reply.droppable = true;
    reply
}
