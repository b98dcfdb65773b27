//! The simulated Microsoft identity platform: the token and device-code endpoints, the
//! access tokens they mint, and the permission check every Graph endpoint makes.
//!
//! Owns client-credential validation (secret, or a certificate-signed client assertion whose
//! signature and claims are checked against a registered certificate), the device-code state
//! machine, token expiry/revocation on the simulator clock, and the permission table. It must
//! not know HTTP: callers pass form fields and headers, it returns typed results.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::clock::SimClock;
use super::directory::{TenantFacts, duration_secs};
use super::lock;
use super::model::AppRegistration;

mod assertion;
mod certificate;
mod device_code;
mod federated;

pub use assertion::{pem_der, thumbprint_sha1, thumbprint_sha256};
pub use certificate::{CertificateError, SimCertificate};
use device_code::DeviceCode;
pub use device_code::DeviceCodeResponse;
pub use federated::{FEDERATED_AUDIENCE, ManagedIdentityToken};

/// The Graph resource (`aud` of access tokens).
pub const GRAPH_AUDIENCE: &str = "https://graph.microsoft.com";

const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Token lifetimes and device-code pacing (simulated time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AuthConfig {
    #[serde(with = "duration_secs")]
    pub token_lifetime: Duration,
    #[serde(with = "duration_secs")]
    pub device_code_lifetime: Duration,
    #[serde(with = "duration_secs")]
    pub device_code_interval: Duration,
    /// Clock skew tolerated on client-assertion `nbf`/`exp`.
    #[serde(with = "duration_secs")]
    pub assertion_clock_skew: Duration,
    /// Accept RS256 assertions identified by an `x5t` SHA-1 thumbprint (older MSAL form).
    pub accept_rs256_x5t: bool,
    /// The value the managed-identity endpoint expects in `X-IDENTITY-HEADER` (App Service
    /// shape, the host's `IDENTITY_HEADER`) or `secret` (older shape, `MSI_SECRET`).
    pub managed_identity_secret: String,
    /// The bearer token the OIDC endpoint expects (GitHub's `ACTIONS_ID_TOKEN_REQUEST_TOKEN`).
    pub oidc_request_token: String,
    /// The one federated credential every app trusts: the assertion's `iss`, `sub`, `aud`.
    pub federated_issuer: String,
    pub federated_subject: String,
    pub federated_audience: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            token_lifetime: Duration::from_secs(3599),
            device_code_lifetime: Duration::from_mins(15),
            device_code_interval: Duration::from_secs(5),
            assertion_clock_skew: Duration::from_mins(5),
            accept_rs256_x5t: true,
            managed_identity_secret: "sim-identity-header".to_owned(),
            oidc_request_token: "sim-actions-request-token".to_owned(),
            federated_issuer: "https://token.actions.githubusercontent.com".to_owned(),
            federated_subject: "repo:contoso/b2b-migration:environment:production".to_owned(),
            federated_audience: FEDERATED_AUDIENCE.to_owned(),
        }
    }
}

/// A graph permission an endpoint requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    ReadUsers,
    InviteUsers,
    WriteUsers,
    ReadDomains,
    ReadOrganization,
    ReadFederation,
    ReadGroupMembers,
    /// `GET /users/{id}/memberOf` (another user's direct memberships).
    ReadMemberships,
    /// `GET /users/{id}/appRoleAssignments`.
    ReadAppRoleAssignments,
    /// `DELETE /groups/{id}/members/{id}/$ref`.
    WriteGroupMembers,
    /// `GET /contacts` (org contacts).
    ReadContacts,
    /// `GET /policies/crossTenantAccessPolicy/default` and `…/partners/{id}`.
    ReadCrossTenantAccess,
    /// `GET /auditLogs/directoryAudits`: `AuditLog.Read.All` *and* a directory read
    /// ([`Permission::also_needs`]).
    ReadAuditLogs,
}

impl Permission {
    /// Permissions (least privileged first) that grant this.
    pub fn granted_by(self) -> &'static [&'static str] {
        match self {
            Self::ReadUsers => &[
                "User.Read.All",
                "User.ReadWrite.All",
                "Directory.Read.All",
                "Directory.ReadWrite.All",
            ],
            Self::InviteUsers => &[
                "User.Invite.All",
                "User.ReadWrite.All",
                "Directory.ReadWrite.All",
            ],
            Self::WriteUsers => &["User.ReadWrite.All", "Directory.ReadWrite.All"],
            Self::ReadDomains => &[
                "Domain.Read.All",
                "Domain.ReadWrite.All",
                "Directory.Read.All",
                "Directory.ReadWrite.All",
            ],
            Self::ReadOrganization => &[
                "Organization.Read.All",
                "Organization.ReadWrite.All",
                "Directory.Read.All",
                "Directory.ReadWrite.All",
            ],
            Self::ReadFederation => &[
                "IdentityProvider.Read.All",
                "IdentityProvider.ReadWrite.All",
            ],
            Self::ReadGroupMembers => &[
                "GroupMember.Read.All",
                "Group.Read.All",
                "GroupMember.ReadWrite.All",
                "Group.ReadWrite.All",
                "Directory.Read.All",
                "Directory.ReadWrite.All",
            ],
            // user-list-memberof, "another user's direct memberships", application.
            Self::ReadMemberships => &["Directory.Read.All", "Directory.ReadWrite.All"],
            // user-list-approleassignments, application.
            Self::ReadAppRoleAssignments => {
                &["Directory.Read.All", "AppRoleAssignment.ReadWrite.All"]
            }
            // group-delete-members.
            Self::WriteGroupMembers => &[
                "GroupMember.ReadWrite.All",
                "Group.ReadWrite.All",
                "Directory.ReadWrite.All",
            ],
            // orgcontact-list, application and delegated.
            Self::ReadContacts => &[
                "OrgContact.Read.All",
                "Directory.Read.All",
                "Directory.ReadWrite.All",
            ],
            // crosstenantaccesspolicyconfigurationpartner-get and …default-get, application
            // and delegated (Directory.Read.All does not grant it).
            Self::ReadCrossTenantAccess => {
                &["Policy.Read.All", "Policy.ReadWrite.CrossTenantAccess"]
            }
            // directoryaudit-list: "AuditLog.Read.All and Directory.Read.All".
            Self::ReadAuditLogs => &["AuditLog.Read.All"],
        }
    }

    /// Permissions of which one is needed *as well* (the documentation's "X and Y").
    pub fn also_needs(self) -> &'static [&'static str] {
        match self {
            Self::ReadAuditLogs => &["Directory.Read.All", "Directory.ReadWrite.All"],
            _ => &[],
        }
    }

    /// Permissions that grant this to a delegated token (a signed-in administrator), where the
    /// documentation lists another set than for app-only tokens.
    pub fn delegated_granted_by(self) -> &'static [&'static str] {
        match self {
            // user-list-memberof, "another user's direct memberships", delegated.
            Self::ReadMemberships => &[
                "User.Read.All",
                "Directory.Read.All",
                "Directory.ReadWrite.All",
                "GroupMember.Read.All",
            ],
            other => other.granted_by(),
        }
    }
}

/// Claims of the access tokens the simulator mints (a subset of Entra's v1 tokens).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub aud: String,
    pub iss: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub appid: String,
    pub app_displayname: String,
    pub tid: String,
    pub oid: String,
    pub sub: String,
    pub idtyp: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub roles: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub upn: Option<String>,
    pub uti: String,
    pub ver: String,
    /// The simulator's revocation generation when the token was minted (private claim): a
    /// revocation invalidates every token of earlier generations, even one minted in the same
    /// second, while tokens minted afterwards stay valid.
    #[serde(default)]
    pub xms_sim_generation: u64,
}

/// The caller of a Graph request, from a valid token.
#[derive(Debug, Clone)]
pub struct Principal {
    pub app_id: String,
    pub permissions: Vec<String>,
    pub delegated: bool,
}

impl Principal {
    pub fn has(&self, permission: Permission) -> bool {
        let granted_by = if self.delegated {
            permission.delegated_granted_by()
        } else {
            permission.granted_by()
        };
        let holds = |names: &[&str]| {
            names
                .iter()
                .any(|p| self.permissions.iter().any(|q| q.eq_ignore_ascii_case(p)))
        };
        let also = permission.also_needs();
        holds(granted_by) && (also.is_empty() || holds(also))
    }
}

/// A token-endpoint error (NOTES §7.1 shape).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}: AADSTS{code}: {description}")]
pub struct TokenError {
    pub status: u16,
    pub error: &'static str,
    pub code: u32,
    pub description: String,
}

fn token_error(
    status: u16,
    error: &'static str,
    code: u32,
    description: impl Into<String>,
) -> TokenError {
    TokenError {
        status,
        error,
        code,
        description: description.into(),
    }
}

/// AADSTS900144: a required form parameter is missing.
fn missing_parameter(name: &str) -> TokenError {
    token_error(
        400,
        "invalid_request",
        900_144,
        format!("The request body must contain the following parameter: '{name}'."),
    )
}

/// The app registration of `client_id`, or AADSTS700016.
fn find_app<'a>(
    facts: &'a TenantFacts,
    client_id: &str,
) -> Result<&'a AppRegistration, TokenError> {
    facts.app(client_id).ok_or_else(|| {
        token_error(400, "unauthorized_client", 700_016, format!(
            "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.",
            facts.display_name
        ))
    })
}

/// A Graph 401 (`InvalidAuthenticationToken`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("InvalidAuthenticationToken: {0}")]
pub struct AuthenticationError(pub String);

/// A successful token response.
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    pub token_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub expires_in: u64,
    pub ext_expires_in: u64,
    pub access_token: String,
}

/// The identity platform of one simulated tenant.
#[derive(Debug)]
pub struct Auth {
    signing_key: Vec<u8>,
    /// The simulated OIDC issuer's key (federated assertions).
    oidc_key: Vec<u8>,
    config: Mutex<AuthConfig>,
    revocation_generation: AtomicU64,
    used_assertions: Mutex<HashSet<String>>,
    device_codes: Mutex<HashMap<String, DeviceCode>>,
}

impl Auth {
    pub fn new(config: AuthConfig) -> Self {
        let signing_key = [
            uuid::Uuid::new_v4().into_bytes(),
            uuid::Uuid::new_v4().into_bytes(),
        ]
        .concat();
        Self {
            signing_key,
            oidc_key: uuid::Uuid::new_v4().into_bytes().to_vec(),
            config: Mutex::new(config),
            revocation_generation: AtomicU64::new(0),
            used_assertions: Mutex::new(HashSet::new()),
            device_codes: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> AuthConfig {
        lock(&self.config).clone()
    }

    pub fn set_config(&self, config: AuthConfig) {
        *lock(&self.config) = config;
    }

    /// Invalidates every token issued up to now.
    pub fn revoke_all(&self, _clock: &SimClock) {
        self.revocation_generation.fetch_add(1, Ordering::SeqCst);
    }

    fn tenant_matches(facts: &TenantFacts, tenant: &str) -> bool {
        tenant.eq_ignore_ascii_case(&facts.tenant_id)
            || facts
                .domains
                .iter()
                .any(|d| d.id.eq_ignore_ascii_case(tenant))
    }

    /// `POST {login}/{tenant}/oauth2/v2.0/token`.
    #[allow(clippy::too_many_lines)] // one linear sequence of checks in the order the service makes them
    pub fn token(
        &self,
        facts: &TenantFacts,
        tenant: &str,
        form: &HashMap<String, String>,
        basic: Option<(String, String)>,
        login_url: &str,
        clock: &SimClock,
    ) -> Result<TokenResponse, TokenError> {
        let delegated_tenant = matches!(tenant, "organizations" | "common");
        if !Self::tenant_matches(facts, tenant) && !delegated_tenant {
            return Err(token_error(
                400,
                "invalid_request",
                90002,
                format!(
                    "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
                ),
            ));
        }
        let grant = form
            .get("grant_type")
            .map(String::as_str)
            .unwrap_or_default();
        let (basic_id, basic_secret) =
            basic.map_or((None, None), |(id, secret)| (Some(id), Some(secret)));
        let client_id = form
            .get("client_id")
            .cloned()
            .or(basic_id)
            .ok_or_else(|| missing_parameter("client_id"))?;
        let app = find_app(facts, &client_id)?;
        match grant {
            "client_credentials" => {
                if delegated_tenant {
                    return Err(token_error(
                        400,
                        "invalid_request",
                        90009,
                        "Application is requesting a token for itself. This scenario is supported only if resource is specified using the GUID based App Identifier.",
                    ));
                }
                let scope = form
                    .get("scope")
                    .ok_or_else(|| missing_parameter("scope"))?;
                let resource_ok = matches!(
                    scope.trim(),
                    "https://graph.microsoft.com/.default"
                        | "00000003-0000-0000-c000-000000000000/.default"
                );
                if !resource_ok {
                    return Err(token_error(
                        400,
                        "invalid_scope",
                        1_002_012,
                        format!(
                            "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                        ),
                    ));
                }
                let secret = form.get("client_secret").cloned().or(basic_secret);
                if let Some(secret) = secret {
                    if !app.secrets.iter().any(|s| s == &secret) {
                        return Err(token_error(
                            401,
                            "invalid_client",
                            7_000_215,
                            format!(
                                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                                app.client_id
                            ),
                        ));
                    }
                } else if let Some(assertion) = form.get("client_assertion") {
                    if form.get("client_assertion_type").map(String::as_str) != Some(JWT_BEARER) {
                        return Err(token_error(
                            400,
                            "invalid_request",
                            50_027,
                            "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
                        ));
                    }
                    if Self::is_federated(assertion) {
                        self.verify_federated(assertion, clock)?;
                    } else {
                        self.verify_assertion(app, assertion, facts, tenant, login_url, clock)?;
                    }
                } else {
                    return Err(token_error(
                        401,
                        "invalid_client",
                        7_000_218,
                        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                    ));
                }
                Ok(self.mint(facts, app, Some(app.roles.clone()), None, None, clock))
            }
            DEVICE_CODE_GRANT => self.poll_device_code(facts, app, form, clock),
            "" => Err(missing_parameter("grant_type")),
            other => Err(token_error(
                400,
                "unsupported_grant_type",
                70003,
                format!("The app requested an unsupported grant type '{other}'."),
            )),
        }
    }

    fn mint(
        &self,
        facts: &TenantFacts,
        app: &AppRegistration,
        roles: Option<Vec<String>>,
        scopes: Option<Vec<String>>,
        upn: Option<String>,
        clock: &SimClock,
    ) -> TokenResponse {
        let now = clock.now_secs();
        let lifetime = self.config().token_lifetime.as_secs();
        let delegated = scopes.is_some();
        let claims = AccessClaims {
            aud: GRAPH_AUDIENCE.to_owned(),
            iss: format!("https://sts.windows.net/{}/", facts.tenant_id),
            iat: now,
            nbf: now,
            exp: now + lifetime,
            appid: app.client_id.clone(),
            app_displayname: app.display_name.clone(),
            tid: facts.tenant_id.clone(),
            oid: super::rng::stable_guid(
                0,
                0x5E,
                app.client_id
                    .bytes()
                    .fold(0, |h, b| super::rng::mix64(h ^ u64::from(b))),
            ),
            sub: app.client_id.clone(),
            idtyp: if delegated { "user" } else { "app" }.to_owned(),
            roles: if delegated { None } else { roles },
            scp: scopes.as_ref().map(|s| s.join(" ")),
            upn,
            uti: uuid::Uuid::new_v4().simple().to_string(),
            ver: "1.0".to_owned(),
            xms_sim_generation: self.revocation_generation.load(Ordering::SeqCst),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some("JWT".to_owned());
        let access_token = jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(&self.signing_key),
        )
        .unwrap_or_default();
        TokenResponse {
            token_type: "Bearer",
            scope: scopes.map(|s| {
                s.iter()
                    .map(|p| format!("{GRAPH_AUDIENCE}/{p}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            }),
            expires_in: lifetime,
            ext_expires_in: lifetime,
            access_token,
        }
    }

    /// Validates a Graph request's `Authorization` header.
    pub fn authenticate(
        &self,
        facts: &TenantFacts,
        authorization: Option<&str>,
        clock: &SimClock,
    ) -> Result<Principal, AuthenticationError> {
        let token = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| AuthenticationError("Access token is empty.".to_owned()))?;
        if token.split('.').count() != 3 {
            return Err(AuthenticationError(
                "IDX14100: JWT is not well formed, there are no dots (.).".to_owned(),
            ));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims = HashSet::new();
        let claims = jsonwebtoken::decode::<AccessClaims>(
            token,
            &jsonwebtoken::DecodingKey::from_secret(&self.signing_key),
            &validation,
        )
        .map_err(|_| AuthenticationError("Access token validation failure.".to_owned()))?
        .claims;
        if claims.aud != GRAPH_AUDIENCE && claims.aud != GRAPH_APP_ID {
            return Err(AuthenticationError(
                "Access token validation failure. Invalid audience.".to_owned(),
            ));
        }
        if !claims.tid.eq_ignore_ascii_case(&facts.tenant_id) {
            return Err(AuthenticationError(
                "Access token validation failure. Invalid tenant.".to_owned(),
            ));
        }
        let now = clock.now_secs();
        if claims.exp <= now {
            return Err(AuthenticationError(
                "Lifetime validation failed, the token is expired.".to_owned(),
            ));
        }
        if claims.xms_sim_generation < self.revocation_generation.load(Ordering::SeqCst) {
            return Err(AuthenticationError("Continuous access evaluation resulted in challenge with result: InteractionRequired and code: TokenIssuedBeforeRevocationTimestamp".to_owned()));
        }
        let delegated = claims.idtyp == "user";
        let permissions = if delegated {
            claims
                .scp
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        } else {
            claims.roles.unwrap_or_default()
        };
        Ok(Principal {
            app_id: claims.appid,
            permissions,
            delegated,
        })
    }
}
