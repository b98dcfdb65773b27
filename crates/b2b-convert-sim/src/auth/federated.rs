//! Credentials without a stored secret (NOTES §7.4): the managed-identity token endpoint's
//! identities, the OIDC issuer that stands in for GitHub Actions (and for an AKS cluster's
//! service-account tokens), and the check of a federated client assertion against the one
//! federated credential the simulated tenant trusts.
//!
//! It must not know HTTP (the `identity` endpoints parse requests and render answers) and
//! must not mint Graph tokens itself (that is [`Auth::mint`](super::Auth)).

use std::collections::HashSet;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::{Auth, TokenError, TokenResponse, token_error};
use crate::clock::SimClock;
use crate::directory::TenantFacts;
use crate::model::AppRegistration;

/// The audience Entra expects on a federated assertion.
pub const FEDERATED_AUDIENCE: &str = "api://AzureADTokenExchange";

/// Claims of an OIDC token the simulator issues (GitHub Actions' shape, reduced).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OidcClaims {
    iss: String,
    sub: String,
    aud: String,
    iat: u64,
    nbf: u64,
    exp: u64,
    jti: String,
}

/// A managed-identity token, in the endpoint's shape: every number is a string.
#[derive(Debug, Clone, Serialize)]
pub struct ManagedIdentityToken {
    pub access_token: String,
    pub client_id: String,
    pub expires_in: String,
    pub expires_on: String,
    pub ext_expires_in: String,
    pub not_before: String,
    pub resource: String,
    pub token_type: &'static str,
}

impl Auth {
    /// An OIDC token from the simulated issuer for `audience`, with the configured subject:
    /// what `ACTIONS_ID_TOKEN_REQUEST_URL` answers, and what a test writes into a federated
    /// token file. Valid for ten (simulated) minutes.
    pub fn issue_oidc_token(&self, audience: &str, clock: &SimClock) -> String {
        let config = self.config();
        let now = clock.now_secs();
        let claims = OidcClaims {
            iss: config.federated_issuer,
            sub: config.federated_subject,
            aud: audience.to_owned(),
            iat: now,
            nbf: now,
            exp: now + 600,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some("JWT".to_owned());
        header.kid = Some("sim-oidc".to_owned());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&self.oidc_key))
            .unwrap_or_default()
    }

    /// Whether `assertion` was issued by the simulated OIDC issuer (its `kid`), rather than
    /// signed with an app's certificate.
    pub(super) fn is_federated(assertion: &str) -> bool {
        jsonwebtoken::decode_header(assertion)
            .is_ok_and(|h| h.alg == Algorithm::HS256 && h.kid.as_deref() == Some("sim-oidc"))
    }

    /// Checks a federated assertion as Entra does: the signature (the issuer's key), then
    /// issuer, subject and audience against the trusted federated credential, then lifetime.
    pub(super) fn verify_federated(
        &self,
        assertion: &str,
        clock: &SimClock,
    ) -> Result<(), TokenError> {
        let config = self.config();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims = HashSet::new();
        let claims = jsonwebtoken::decode::<OidcClaims>(
            assertion,
            &DecodingKey::from_secret(&self.oidc_key),
            &validation,
        )
        .map_err(|_| {
            token_error(
                400,
                "invalid_client",
                50_027,
                "JWT token is invalid or malformed: the signature does not match the issuer's key.",
            )
        })?
        .claims;
        if claims.iss != config.federated_issuer
            || claims.sub != config.federated_subject
            || claims.aud != config.federated_audience
        {
            return Err(token_error(
                400,
                "invalid_client",
                70_021,
                format!(
                    "No matching federated identity record found for presented assertion. Assertion Issuer: '{}'. Assertion Subject: '{}'. Assertion Audience: '{}'.",
                    claims.iss, claims.sub, claims.aud
                ),
            ));
        }
        let now = clock.now_secs();
        let skew = config.assertion_clock_skew.as_secs();
        if claims.exp + skew < now || claims.nbf > now + skew {
            return Err(token_error(
                400,
                "invalid_client",
                700_024,
                "Client assertion is not within its valid time range.",
            ));
        }
        Ok(())
    }

    /// A token for the managed identity: `client_id` names a user-assigned identity (any
    /// registered app stands in for one); without it, the system-assigned identity is the
    /// tenant's first app.
    pub fn managed_identity_token(
        &self,
        facts: &TenantFacts,
        client_id: Option<&str>,
        resource: &str,
        clock: &SimClock,
    ) -> Result<ManagedIdentityToken, TokenError> {
        let resource_ok = matches!(
            resource.trim_end_matches('/'),
            super::GRAPH_AUDIENCE | super::GRAPH_APP_ID
        );
        if !resource_ok {
            return Err(token_error(
                400,
                "invalid_resource",
                500_011,
                format!("The resource principal named {resource} was not found in the tenant."),
            ));
        }
        let app: &AppRegistration = match client_id {
            Some(id) => facts.app(id).ok_or_else(|| {
                token_error(
                    400,
                    "invalid_request",
                    0,
                    format!("Identity not found: no user-assigned identity with client id {id} is assigned to this resource."),
                )
            })?,
            None => facts.apps.first().ok_or_else(|| {
                token_error(400, "invalid_request", 0, "No managed identity is assigned to this resource.")
            })?,
        };
        let TokenResponse {
            access_token,
            expires_in,
            ext_expires_in,
            ..
        } = self.mint(facts, app, Some(app.roles.clone()), None, None, clock);
        let now = clock.now_secs();
        Ok(ManagedIdentityToken {
            access_token,
            client_id: app.client_id.clone(),
            expires_in: expires_in.to_string(),
            expires_on: (now + expires_in).to_string(),
            ext_expires_in: ext_expires_in.to_string(),
            not_before: now.to_string(),
            resource: resource.to_owned(),
            token_type: "Bearer",
        })
    }
}
