//! The Graph endpoints (`/v1.0/...`): routing, per-endpoint permissions and throttling costs,
//! the shared response helpers; the bodies live in `users`, `groups`, `memberships`, `tenant`
//! and `invitations`.
//!
//! It must not implement directory rules (they are in `directory`) nor `OData` parsing (in
//! `odata`); it only wires them to Graph's paths, status codes and body shapes.

use hyper::{Method, StatusCode};
use serde_json::Value;

use super::{Reply, RequestContext, apply_faults, maybe_drop};
use crate::Shared;
use crate::auth::Permission;
use crate::directory::DirectoryError;
use crate::faults::Endpoint;
use crate::observe::Outcome;
use crate::odata::{CollectionQuery, QueryError};
use crate::throttle::{Admission, Cost, CountedAt};

mod audit_logs;
mod contacts;
mod groups;
mod invitations;
mod memberships;
mod policies;
mod tenant;
mod users;

/// What a Graph path resolved to.
enum Route {
    ListUsers,
    UsersDelta,
    CountUsers,
    User(String),
    Members {
        group: String,
        transitive: bool,
        users_only: bool,
    },
    ListGroups,
    Group(String),
    Contacts,
    MemberOf {
        user: String,
        groups_only: bool,
    },
    AppRoleAssignments(String),
    RemoveMember {
        group: String,
        member: String,
    },
    Domains,
    Domain(String),
    Organization,
    FederationList,
    Federation(String),
    FederationDomains(String),
    CrossTenantDefault,
    CrossTenantPartner(String),
    Invitations,
    DirectoryAudits,
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
];

#[allow(clippy::match_same_arms)] // one arm per Graph path reads as a routing table
#[allow(clippy::too_many_lines)] // a routing table: one arm per Graph path
fn resolve(ctx: &RequestContext) -> Resolution {
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
        // Delta counts as a user list for faults, throttling and counters (`list-users`).
        [
            "users",
            "delta" | "delta()" | "microsoft.graph.delta" | "microsoft.graph.delta()",
        ] if get => found(
            Route::UsersDelta,
            Endpoint::ListUsers,
            Permission::ReadUsers,
        ),
        [
            "users",
            "delta" | "delta()" | "microsoft.graph.delta" | "microsoft.graph.delta()",
        ] => method_not_allowed(),
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
        ["users", user, "memberOf", rest @ ..] if get && rest.len() <= 1 => {
            let groups_only = match rest {
                [] => false,
                ["microsoft.graph.group" | "graph.group"] => true,
                [
                    "microsoft.graph.directoryRole"
                    | "graph.directoryRole"
                    | "microsoft.graph.administrativeUnit"
                    | "graph.administrativeUnit",
                ] => return not_modelled(),
                [other, ..] => return not_found(other),
            };
            found(
                Route::MemberOf {
                    user: (*user).to_owned(),
                    groups_only,
                },
                Endpoint::MemberOf,
                Permission::ReadMemberships,
            )
        }
        ["users", user, "appRoleAssignments"] if get => found(
            Route::AppRoleAssignments((*user).to_owned()),
            Endpoint::AppRoleAssignments,
            Permission::ReadAppRoleAssignments,
        ),
        ["users", _, "appRoleAssignments", ..] => not_modelled(),
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
        ["groups", group, "members", member, "$ref"] if ctx.method == Method::DELETE => found(
            Route::RemoveMember {
                group: (*group).to_owned(),
                member: (*member).to_owned(),
            },
            Endpoint::RemoveGroupMember,
            Permission::WriteGroupMembers,
        ),
        ["groups", _, "members", _, "$ref"] => method_not_allowed(),
        // Without `/$ref` Graph deletes the member object itself: never modelled.
        ["groups", _, "members", _] if ctx.method == Method::DELETE => not_modelled(),
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
        ["groups"] if get => found(
            Route::ListGroups,
            Endpoint::Groups,
            Permission::ReadGroupMembers,
        ),
        ["groups", id] if get => found(
            Route::Group((*id).to_owned()),
            Endpoint::Groups,
            Permission::ReadGroupMembers,
        ),
        ["groups", ..] => not_modelled(),
        ["contacts"] if get => found(
            Route::Contacts,
            Endpoint::Contacts,
            Permission::ReadContacts,
        ),
        ["contacts", ..] => not_modelled(),
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
        ["policies", "crossTenantAccessPolicy", "default"] if get => found(
            Route::CrossTenantDefault,
            Endpoint::CrossTenantAccess,
            Permission::ReadCrossTenantAccess,
        ),
        ["policies", "crossTenantAccessPolicy", "partners", id] if get => found(
            Route::CrossTenantPartner((*id).to_owned()),
            Endpoint::CrossTenantAccess,
            Permission::ReadCrossTenantAccess,
        ),
        [
            "policies",
            "crossTenantAccessPolicy",
            "default" | "partners",
            ..,
        ] if !get => {
            if matches!(ctx.method, Method::PATCH | Method::POST | Method::DELETE) {
                not_modelled()
            } else {
                method_not_allowed()
            }
        }
        ["invitations"] if ctx.method == Method::POST => found(
            Route::Invitations,
            Endpoint::Invitations,
            Permission::InviteUsers,
        ),
        ["invitations", ..] => not_modelled(),
        ["auditLogs", "directoryAudits" | "directoryaudits"] if get => found(
            Route::DirectoryAudits,
            Endpoint::DirectoryAudits,
            Permission::ReadAuditLogs,
        ),
        ["auditLogs", "directoryAudits" | "directoryaudits", ..] if get => not_modelled(),
        ["auditLogs", "directoryAudits" | "directoryaudits", ..] => method_not_allowed(),
        ["auditLogs", ..] => not_modelled(),
        [first, ..] if NOT_MODELLED.contains(first) => not_modelled(),
        [first, ..] => not_found(first),
    }
}

/// Handles a request under `/v1.0` (or another version prefix).
#[allow(clippy::too_many_lines)] // one linear sequence of checks in the order the service makes them
pub(crate) async fn handle(
    shared: &Shared,
    ctx: &RequestContext,
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
        if let Err(reply) = apply_faults(shared, ctx, Some(Endpoint::OtherGraph)).await {
            return (reply, Some(Endpoint::OtherGraph), None);
        }
        return (
            Reply::graph_error(ctx, shared, StatusCode::BAD_REQUEST, "BadRequest", &message),
            Some(Endpoint::OtherGraph),
            None,
        );
    }
    let (route, endpoint, permission) = match resolve(ctx) {
        Resolution::Found(route, endpoint, permission) => (route, endpoint, permission),
        Resolution::Error(status, code, message) => {
            if let Err(reply) = apply_faults(shared, ctx, Some(Endpoint::OtherGraph)).await {
                return (reply, Some(Endpoint::OtherGraph), None);
            }
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
            let language = parsed
                .as_ref()
                .and_then(|b| b.pointer("/invitedUserMessageInfo/messageLanguage"))
                .and_then(Value::as_str);
            shared.observer.count_invitation_post(id, language);
        }
        Some(parsed)
    } else {
        None
    };
    // The injected latency and faults stand for the service's work: they come before the
    // throttling decision when a request counts once answered, after it when it counts on arrival.
    let counted_at_arrival = shared.throttle.counted_at() == CountedAt::Arrival;
    let mut commit_then_drop = false;
    if !counted_at_arrival {
        commit_then_drop = match apply_faults(shared, ctx, Some(endpoint)).await {
            Ok(drop) => drop,
            Err(reply) => return (reply, Some(endpoint), None),
        };
    }
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
    if counted_at_arrival {
        commit_then_drop = match apply_faults(shared, ctx, Some(endpoint)).await {
            Ok(drop) => drop,
            Err(reply) => return (reply, Some(endpoint), app_id),
        };
    }
    let mut reply = match route {
        Route::ListUsers => users::list_users(
            shared,
            ctx,
            query.as_ref().unwrap_or(&CollectionQuery::default()),
        ),
        Route::UsersDelta => users::delta(shared, ctx),
        Route::CountUsers => users::count_users(
            shared,
            ctx,
            query.as_ref().unwrap_or(&CollectionQuery::default()),
        ),
        Route::User(key) if ctx.method == Method::PATCH => users::patch_user(shared, ctx, &key),
        Route::User(key) => users::get_user(
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
            groups::members(
                shared,
                ctx,
                &group,
                transitive,
                users_only,
                user_details,
                query.as_ref().unwrap_or(&CollectionQuery::default()),
            )
        }
        Route::MemberOf { user, groups_only } => {
            let group_details = principal.has(Permission::ReadGroupMembers);
            memberships::member_of(shared, ctx, &user, groups_only, group_details)
        }
        Route::AppRoleAssignments(user) => memberships::app_role_assignments(shared, ctx, &user),
        Route::RemoveMember { group, member } => {
            memberships::remove_member(shared, ctx, &group, &member)
        }
        Route::ListGroups => groups::list_groups(shared, ctx),
        Route::Group(id) => groups::group(shared, ctx, &id),
        Route::Contacts => contacts::list_contacts(shared, ctx),
        Route::Domains => tenant::domains(shared, ctx, None),
        Route::Domain(id) => tenant::domains(shared, ctx, Some(&id)),
        Route::Organization => tenant::organization(shared, ctx),
        Route::FederationList => tenant::federation(shared, ctx, None, false),
        Route::Federation(id) => tenant::federation(shared, ctx, Some(&id), false),
        Route::FederationDomains(id) => tenant::federation(shared, ctx, Some(&id), true),
        Route::CrossTenantDefault => policies::cross_tenant_default(shared),
        Route::CrossTenantPartner(id) => policies::cross_tenant_partner(shared, ctx, &id),
        Route::Invitations => {
            invitations::invite(shared, ctx, invitation_body.flatten(), &principal.app_id)
        }
        Route::DirectoryAudits => audit_logs::list(shared, ctx),
    };
    for (name, value) in extra_headers {
        reply = reply.header(name, value);
    }
    (maybe_drop(reply, commit_then_drop), Some(endpoint), app_id)
}

pub(super) fn query_error(shared: &Shared, ctx: &RequestContext, error: &QueryError) -> Reply {
    Reply::graph_error(
        ctx,
        shared,
        StatusCode::BAD_REQUEST,
        error.code,
        &error.message,
    )
}

pub(super) fn directory_error(
    shared: &Shared,
    ctx: &RequestContext,
    error: &DirectoryError,
) -> Reply {
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
        DirectoryError::PreconditionFailed(message) => Reply::graph_error(
            ctx,
            shared,
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            message,
        ),
    }
}

pub(super) fn context_url(shared: &Shared, fragment: &str) -> String {
    format!("{}/v1.0/$metadata#{fragment}", shared.graph_url)
}

pub(super) fn users_context(shared: &Shared, query: &CollectionQuery) -> String {
    match &query.select {
        Some(names) => context_url(shared, &format!("users({})", names.join(","))),
        None => context_url(shared, "users"),
    }
}

/// The `@odata.nextLink`: the same request with `$skiptoken` replaced.
pub(super) fn next_link(
    shared: &Shared,
    ctx: &RequestContext,
    query: &CollectionQuery,
    position: u64,
) -> String {
    link_with_token(shared, ctx, &query.token_for(position))
}

/// The same request with `$skiptoken` set to `token`.
pub(super) fn link_with_token(shared: &Shared, ctx: &RequestContext, token: &str) -> String {
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
    let pairs = ctx
        .query
        .iter()
        .filter(|(k, _)| k != "$skiptoken")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain([("$skiptoken", token)])
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

pub(super) fn invalid_payload(shared: &Shared, ctx: &RequestContext) -> Reply {
    Reply::graph_error(
        ctx,
        shared,
        StatusCode::BAD_REQUEST,
        "BadRequest",
        "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
    )
}
