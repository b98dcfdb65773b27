//! Endpoints that stand in for the hosts' identity services (NOTES §7.4), all on the
//! simulator's loopback listener so no test ever reaches 169.254.169.254:
//!
//! * `GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=…[&client_id=…]`
//!   with `Metadata: true`: the Azure Instance Metadata Service (VMs, AKS nodes);
//! * `GET /msi/token?api-version=2019-08-01&resource=…[&client_id=…]` with
//!   `X-IDENTITY-HEADER`: App Service / Functions / Automation / Container Apps
//!   (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`); with `api-version=2017-09-01` and header
//!   `secret`, the older `MSI_ENDPOINT` + `MSI_SECRET` shape;
//! * `GET /oidc/token?api-version=2.0&audience=…` with `Authorization: Bearer …`: GitHub
//!   Actions' `ACTIONS_ID_TOKEN_REQUEST_URL`, answering `{"value": "<JWT>"}`.
//!
//! It must not decide who gets a token (that is `auth`); it checks the request's shape.

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Reply, RequestContext};
use crate::Shared;

/// Whether `path` is one of these endpoints.
pub(crate) fn serves(path: &str) -> bool {
    matches!(
        path,
        "/metadata/identity/oauth2/token" | "/msi/token" | "/oidc/token"
    )
}

pub(crate) fn handle(shared: &Shared, ctx: &RequestContext) -> Reply {
    if ctx.method != Method::GET {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "Use GET.",
        );
    }
    let query = |name: &str| {
        ctx.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let config = shared.auth.config();
    match ctx.path.as_str() {
        "/oidc/token" => {
            let presented = ctx
                .header("authorization")
                .and_then(|h| h.strip_prefix("Bearer "));
            if presented != Some(config.oidc_request_token.as_str()) {
                return error(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "The request token is missing or not valid for this run.",
                );
            }
            let audience = query("audience").unwrap_or("api://AzureADTokenExchange");
            let value = shared.auth.issue_oidc_token(audience, &shared.clock);
            Reply::plain_json(StatusCode::OK, &json!({ "count": 1, "value": value }))
        }
        path => {
            let imds = path == "/metadata/identity/oauth2/token";
            let version = query("api-version").unwrap_or_default();
            let shape_ok = if imds {
                if ctx.header("metadata") != Some("true") {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "Required metadata header not specified",
                    );
                }
                version == "2018-02-01"
            } else {
                let (header, expected) = match version {
                    "2019-08-01" => ("x-identity-header", &config.managed_identity_secret),
                    "2017-09-01" => ("secret", &config.managed_identity_secret),
                    _ => ("", &config.managed_identity_secret),
                };
                if !header.is_empty() && ctx.header(header) != Some(expected.as_str()) {
                    return error(
                        StatusCode::UNAUTHORIZED,
                        "unauthorized",
                        "The identity header is missing or does not match this host's.",
                    );
                }
                !header.is_empty()
            };
            if !shape_ok {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    &format!("api-version '{version}' is not supported by this endpoint"),
                );
            }
            let Some(resource) = query("resource") else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "Required query variable 'resource' is missing",
                );
            };
            match shared.auth.managed_identity_token(
                &shared.directory.facts,
                query("client_id"),
                resource,
                &shared.clock,
            ) {
                Ok(token) => {
                    shared.observer.count_token();
                    Reply::plain_json(
                        StatusCode::OK,
                        &serde_json::to_value(token).unwrap_or(Value::Null),
                    )
                }
                Err(err) => error(
                    StatusCode::from_u16(err.status).unwrap_or(StatusCode::BAD_REQUEST),
                    err.error,
                    &err.description,
                ),
            }
        }
    }
}

fn error(status: StatusCode, code: &str, description: &str) -> Reply {
    Reply::plain_json(
        status,
        &json!({ "error": code, "error_description": description }),
    )
}
