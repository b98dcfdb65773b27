//! The login host (`/login/...`): the token and device-code endpoints, the user-realm
//! endpoint (NOTES §6, §7) and the OIDC metadata of a tenant named by id or domain
//! (whose `issuer` holds the tenant id), with Entra's OAuth error body.
//!
//! It must not decide who gets a token (that is `auth`); it parses forms and renders answers.

use base64::Engine as _;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Reply, RequestContext};
use crate::Shared;
use crate::auth::TokenError;
use crate::faults::Endpoint;
use crate::model::RealmKind;

/// Which login endpoint a request targets (for faults and counters).
pub(crate) fn classify(ctx: &RequestContext) -> Option<Endpoint> {
    let segments = ctx.segments("/login");
    match segments
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [_, "oauth2", "v2.0", "token"] => Some(Endpoint::Token),
        [_, "oauth2", "v2.0", "devicecode"] => Some(Endpoint::DeviceCode),
        ["common", "userrealm", _] => Some(Endpoint::UserRealm),
        [_, "v2.0", ".well-known", "openid-configuration"] => Some(Endpoint::OpenIdConfiguration),
        _ => None,
    }
}

pub(crate) fn handle(shared: &Shared, ctx: &RequestContext) -> Reply {
    let segments = ctx.segments("/login");
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (seg.as_slice(), &ctx.method) {
        ([tenant, "oauth2", "v2.0", "token"], &Method::POST) => {
            let basic = ctx.header("authorization").and_then(parse_basic);
            match shared.auth.token(
                &shared.directory.facts,
                tenant,
                &ctx.form(),
                basic,
                &shared.login_url,
                &shared.clock,
            ) {
                Ok(token) => {
                    shared.observer.count_token();
                    Reply::plain_json(
                        StatusCode::OK,
                        &serde_json::to_value(token).unwrap_or(Value::Null),
                    )
                }
                Err(error) => oauth_error(shared, ctx, &error),
            }
        }
        ([tenant, "oauth2", "v2.0", "devicecode"], &Method::POST) => {
            match shared.auth.start_device_code(
                &shared.directory.facts,
                tenant,
                &ctx.form(),
                &shared.clock,
            ) {
                Ok(code) => Reply::plain_json(
                    StatusCode::OK,
                    &serde_json::to_value(code).unwrap_or(Value::Null),
                ),
                Err(error) => oauth_error(shared, ctx, &error),
            }
        }
        (["common", "userrealm", user], &Method::GET) => user_realm(shared, ctx, user),
        ([tenant, "v2.0", ".well-known", "openid-configuration"], &Method::GET) => {
            openid_configuration(shared, ctx, tenant)
        }
        _ => Reply::plain_json(
            StatusCode::NOT_FOUND,
            &json!({"error": "not_found", "error_description": format!("The simulator's login host has no endpoint {} {}.", ctx.method, ctx.path)}),
        ),
    }
}

fn parse_basic(header: &str) -> Option<(String, String)> {
    let encoded = header.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((decode(id)?, decode(secret)?))
}

/// Entra's OAuth error body (NOTES §7.1).
fn oauth_error(shared: &Shared, ctx: &RequestContext, error: &TokenError) -> Reply {
    let timestamp = shared.clock.now_rfc3339().replace('T', " ");
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST);
    Reply::plain_json(
        status,
        &json!({
            "error": error.error,
            "error_description": format!(
                "AADSTS{}: {} Trace ID: {} Correlation ID: {} Timestamp: {}",
                error.code, error.description, ctx.request_id, ctx.client_request_id, timestamp
            ),
            "error_codes": [error.code],
            "timestamp": timestamp,
            "trace_id": ctx.request_id,
            "correlation_id": ctx.client_request_id,
            "error_uri": format!("{}/error?code={}", shared.login_url, error.code),
        }),
    )
}

/// The OIDC metadata of the tenant `tenant` names (an id or one of its domains):
/// the fields a client reads, endpoints and issuer carrying the tenant id. No tenant: 400
/// `invalid_tenant` (AADSTS90002), as Entra answers.
fn openid_configuration(shared: &Shared, ctx: &RequestContext, tenant: &str) -> Reply {
    let Some(tenant_id) = shared.directory.facts.tenant_named(tenant) else {
        let error = TokenError {
            status: 400,
            error: "invalid_tenant",
            code: 90002,
            description: format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        };
        return oauth_error(shared, ctx, &error);
    };
    let base = format!("{}/{tenant_id}", shared.login_url);
    Reply::plain_json(
        StatusCode::OK,
        &json!({
            "token_endpoint": format!("{base}/oauth2/v2.0/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": format!("{}/{tenant_id}/discovery/v2.0/keys", shared.login_url),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": format!("{base}/v2.0"),
            "request_uri_parameter_supported": false,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
            "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
            "http_logout_supported": true,
            "frontchannel_logout_supported": true,
            "end_session_endpoint": format!("{base}/oauth2/v2.0/logout"),
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "tid"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
        }),
    )
}

fn user_realm(shared: &Shared, ctx: &RequestContext, user: &str) -> Reply {
    let domain = user
        .rsplit_once('@')
        .map_or(user, |(_, d)| d)
        .to_ascii_lowercase();
    let realm = shared.directory.facts.realm_of(&domain);
    let version = ctx
        .query
        .iter()
        .find(|(k, _)| k == "api-version")
        .map_or("1.0", |(_, v)| v.as_str());
    let body = match version {
        "1.0" => {
            let mut body = json!({
                "ver": "1.0",
                "account_type": realm.as_str(),
                "cloud_instance_name": "microsoftonline.com",
            });
            if realm != RealmKind::Unknown {
                body["domain_name"] = json!(domain);
                body["cloud_audience_urn"] = json!("urn:federation:MicrosoftOnline");
            }
            if realm == RealmKind::Federated {
                body["federation_protocol"] = json!("WSTrust");
                body["federation_metadata_url"] =
                    json!(format!("https://sts.{domain}/adfs/services/trust/mex"));
                body["federation_active_auth_url"] = json!(format!(
                    "https://sts.{domain}/adfs/services/trust/2005/usernamemixed"
                ));
            }
            body
        }
        "2.0" | "2.1" => json!({
            "NameSpaceType": realm.as_str(),
            "Login": user,
            "DomainName": domain,
            "FederationBrandName": if realm == RealmKind::Unknown { Value::Null } else { json!(domain) },
            "TenantBrandingInfo": null,
            "cloud_instance_name": "microsoftonline.com",
        }),
        other => {
            return Reply::plain_json(
                StatusCode::BAD_REQUEST,
                &json!({"error": "invalid_request", "error_description": format!("Unsupported api-version '{other}'.")}),
            );
        }
    };
    Reply::plain_json(StatusCode::OK, &body)
}
