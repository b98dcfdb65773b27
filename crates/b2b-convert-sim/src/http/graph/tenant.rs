//! Tenant facts: `/domains`, `/organization` and direct-federation configurations.

use hyper::StatusCode;
use serde_json::{Map, Value, json};

use super::super::{Reply, RequestContext};
use super::{context_url, directory_error};
use crate::Shared;
use crate::directory::DirectoryError;

pub(super) fn domains(shared: &Shared, ctx: &RequestContext, id: Option<&str>) -> Reply {
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

pub(super) fn organization(shared: &Shared, ctx: &RequestContext) -> Reply {
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
        "createdDateTime": facts.created_date_time,
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

pub(super) fn federation(
    shared: &Shared,
    ctx: &RequestContext,
    id: Option<&str>,
    domains_only: bool,
) -> Reply {
    let expand_domains = ctx
        .query
        .iter()
        .any(|(k, v)| k == "$expand" && v.split(',').any(|p| p.trim() == "domains"));
    let inline = expand_domains || shared.options.federation_domains_inline;
    let render = |config: &crate::model::FederationConfiguration| {
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
