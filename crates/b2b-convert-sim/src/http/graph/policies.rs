//! The cross-tenant access policy (`/policies/crossTenantAccessPolicy/...`): the default
//! configuration and the partner-specific configurations, read-only, in Graph's shapes
//! (`crossTenantAccessPolicyConfigurationDefault`, `…Partner`).
//!
//! The simulator models what the partner pre-flight reads: `automaticUserConsentSettings`.
//! The default's pair is always `false` (read-only in Graph); the B2B collaboration and
//! direct-connect settings are served as Graph's documented service defaults (default) or
//! `null`, "inherit the default" (partners). It must not decide anything about redemption.

use hyper::StatusCode;
use serde_json::{Value, json};

use super::super::{Reply, RequestContext};
use super::context_url;
use crate::Shared;
use crate::rng::parse_guid;

/// `GET /policies/crossTenantAccessPolicy/default`: the service default (never customised in
/// the simulator).
pub(super) fn cross_tenant_default(shared: &Shared) -> Reply {
    let setting = |access: &str, users: &str, apps: &str| {
        json!({
            "usersAndGroups": {"accessType": access, "targets": [{"target": users, "targetType": "user"}]},
            "applications": {"accessType": access, "targets": [{"target": apps, "targetType": "application"}]},
        })
    };
    Reply::json(
        StatusCode::OK,
        &json!({
            "@odata.context": context_url(shared, "policies/crossTenantAccessPolicy/default/$entity"),
            "isServiceDefault": true,
            "inboundTrust": {
                "isMfaAccepted": false,
                "isCompliantDeviceAccepted": false,
                "isHybridAzureADJoinedDeviceAccepted": false,
            },
            // Documented: always false, read-only in the default configuration.
            "automaticUserConsentSettings": {"inboundAllowed": false, "outboundAllowed": false},
            "b2bCollaborationOutbound": setting("allowed", "AllUsers", "AllApplications"),
            "b2bCollaborationInbound": setting("allowed", "AllUsers", "AllApplications"),
            "b2bDirectConnectOutbound": setting("blocked", "AllUsers", "AllApplications"),
            "b2bDirectConnectInbound": setting("blocked", "AllUsers", "AllApplications"),
        }),
    )
}

/// `GET /policies/crossTenantAccessPolicy/partners/{tenantId}`: the partner's entry, or 404
/// when this tenant has none for it.
pub(super) fn cross_tenant_partner(shared: &Shared, ctx: &RequestContext, id: &str) -> Reply {
    if parse_guid(id).is_none() {
        return Reply::graph_error(
            ctx,
            shared,
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            &format!("Invalid object identifier '{id}'."),
        );
    }
    let Some(partner) = shared.directory.facts.cross_tenant_partner(id) else {
        // The exact code of this 404 is not documented; the status is what callers read.
        return Reply::graph_error(
            ctx,
            shared,
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            &format!(
                "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
            ),
        );
    };
    let consent = partner.automatic_user_consent_settings;
    Reply::json(
        StatusCode::OK,
        &json!({
            "@odata.context": context_url(shared, "policies/crossTenantAccessPolicy/partners/$entity"),
            "tenantId": partner.tenant_id.to_ascii_lowercase(),
            "isServiceProvider": partner.is_service_provider,
            "isInMultiTenantOrganization": partner.is_in_multi_tenant_organization,
            "inboundTrust": Value::Null,
            "automaticUserConsentSettings": {
                "inboundAllowed": consent.inbound_allowed,
                "outboundAllowed": consent.outbound_allowed,
            },
            "b2bCollaborationInbound": Value::Null,
            "b2bCollaborationOutbound": Value::Null,
            "b2bDirectConnectInbound": Value::Null,
            "b2bDirectConnectOutbound": Value::Null,
        }),
    )
}
