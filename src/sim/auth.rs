//! The simulated Microsoft identity platform: the token and device-code endpoints, the
//! access tokens they mint, and the permission check every Graph endpoint makes.
//!
//! Owns client-credential validation (secret, or a certificate-signed client assertion whose
//! signature and claims are checked against a registered certificate), the device-code state
//! machine, token expiry/revocation on the simulator clock, and the permission table. It must
//! not know HTTP: callers pass form fields and headers, it returns typed results.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::clock::SimClock;
use super::directory::{TenantFacts, duration_secs};
use super::model::AppRegistration;

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
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            token_lifetime: Duration::from_secs(3599),
            device_code_lifetime: Duration::from_mins(15),
            device_code_interval: Duration::from_secs(5),
            assertion_clock_skew: Duration::from_mins(5),
            accept_rs256_x5t: true,
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
        permission
            .granted_by()
            .iter()
            .any(|p| self.permissions.iter().any(|q| q.eq_ignore_ascii_case(p)))
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

/// The `/devicecode` response.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceCodeResponse {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub expires_in: u64,
    pub interval: u64,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DeviceStatus {
    Pending,
    Approved(String),
    Declined,
}

#[derive(Debug, Clone)]
struct DeviceCode {
    user_code: String,
    client_id: String,
    scopes: Vec<String>,
    expires_at_ms: u64,
    interval_secs: u64,
    last_poll_ms: Option<u64>,
    status: DeviceStatus,
}

/// The identity platform of one simulated tenant.
#[derive(Debug)]
pub struct Auth {
    signing_key: Vec<u8>,
    config: Mutex<AuthConfig>,
    revoked_before_secs: AtomicU64,
    used_assertions: Mutex<HashSet<String>>,
    device_codes: Mutex<HashMap<String, DeviceCode>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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
            config: Mutex::new(config),
            revoked_before_secs: AtomicU64::new(0),
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
    pub fn revoke_all(&self, clock: &SimClock) {
        self.revoked_before_secs
            .store(clock.now_secs() + 1, Ordering::SeqCst);
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
        let client_id = form.get("client_id").cloned().or(basic_id).ok_or_else(|| {
            token_error(
                400,
                "invalid_request",
                900_144,
                "The request body must contain the following parameter: 'client_id'.",
            )
        })?;
        let app = facts.app(&client_id).ok_or_else(|| {
            token_error(400, "unauthorized_client", 700_016, format!(
                "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.",
                facts.display_name
            ))
        })?;
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
                let scope = form.get("scope").ok_or_else(|| {
                    token_error(
                        400,
                        "invalid_request",
                        900_144,
                        "The request body must contain the following parameter: 'scope'.",
                    )
                })?;
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
                    self.verify_assertion(app, assertion, facts, tenant, login_url, clock)?;
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
            "" => Err(token_error(
                400,
                "invalid_request",
                900_144,
                "The request body must contain the following parameter: 'grant_type'.",
            )),
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

    #[allow(clippy::too_many_lines)] // one linear sequence of checks in the order the service makes them
    fn verify_assertion(
        &self,
        app: &AppRegistration,
        assertion: &str,
        facts: &TenantFacts,
        tenant: &str,
        login_url: &str,
        clock: &SimClock,
    ) -> Result<(), TokenError> {
        let malformed = |why: &str| {
            token_error(
                401,
                "invalid_client",
                50027,
                format!("JWT token is invalid or malformed: {why}"),
            )
        };
        let header =
            jsonwebtoken::decode_header(assertion).map_err(|e| malformed(&e.to_string()))?;
        let config = self.config();
        let registered: Vec<(String, Vec<u8>)> = app
            .certificates
            .iter()
            .filter_map(|pem| pem_der(pem).map(|der| (pem.clone(), der)))
            .collect();
        let (presented, candidate) = match header.alg {
            Algorithm::PS256 | Algorithm::RS256 => {
                if let Some(x5t256) = &header.x5t_s256 {
                    (
                        x5t256.clone(),
                        registered
                            .iter()
                            .find(|(_, der)| &thumbprint_sha256(der) == x5t256),
                    )
                } else if let Some(x5t) = header
                    .x5t
                    .as_ref()
                    .filter(|_| header.alg == Algorithm::RS256 && config.accept_rs256_x5t)
                {
                    (
                        x5t.clone(),
                        registered
                            .iter()
                            .find(|(_, der)| &thumbprint_sha1(der) == x5t),
                    )
                } else {
                    return Err(malformed(
                        "the header has no x5t#S256 (or, for RS256, x5t) certificate thumbprint",
                    ));
                }
            }
            other => {
                return Err(malformed(&format!(
                    "unsupported signing algorithm {other:?}; use PS256 (or RS256)"
                )));
            }
        };
        let Some((pem, _)) = candidate else {
            return Err(token_error(
                401,
                "invalid_client",
                700_027,
                format!(
                    "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{presented}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{}'.]",
                    app.client_id
                ),
            ));
        };
        let key =
            DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| malformed(&e.to_string()))?;
        let mut validation = Validation::new(header.alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims = HashSet::new();
        let data = jsonwebtoken::decode::<serde_json::Value>(assertion, &key, &validation)
            .map_err(|_| {
                token_error(
                    401,
                    "invalid_client",
                    700_027,
                    "Client assertion failed signature validation.",
                )
            })?;
        let claims = data.claims;
        let text = |name: &str| {
            claims
                .get(name)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        let number = |name: &str| claims.get(name).and_then(serde_json::Value::as_u64);
        let audiences: Vec<String> = [tenant, facts.tenant_id.as_str()]
            .iter()
            .flat_map(|t| {
                [
                    format!("{login_url}/{t}/oauth2/v2.0/token"),
                    format!("https://login.microsoftonline.com/{t}/oauth2/v2.0/token"),
                ]
            })
            .collect();
        match text("aud") {
            Some(aud) if audiences.iter().any(|a| a.eq_ignore_ascii_case(&aud)) => {}
            other => {
                return Err(malformed(&format!(
                    "the audience claim {other:?} must be the token endpoint, e.g. '{}'",
                    audiences[0]
                )));
            }
        }
        if text("iss").as_deref() != Some(app.client_id.as_str())
            || text("sub").as_deref() != Some(app.client_id.as_str())
        {
            return Err(token_error(
                401,
                "invalid_client",
                700_021,
                "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials .",
            ));
        }
        let now = clock.now_secs();
        let skew = config.assertion_clock_skew.as_secs();
        let (Some(exp), Some(nbf)) = (number("exp"), number("nbf")) else {
            return Err(malformed("the exp and nbf claims are required"));
        };
        if exp + skew < now || nbf > now + skew {
            return Err(token_error(
                401,
                "invalid_client",
                700_024,
                format!(
                    "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}.",
                    super::generate::format_unix(i64::try_from(now).unwrap_or(0)),
                    super::generate::format_unix(i64::try_from(nbf).unwrap_or(0)),
                    super::generate::format_unix(i64::try_from(exp).unwrap_or(0)),
                ),
            ));
        }
        let Some(jti) = text("jti") else {
            return Err(malformed("the jti claim is required"));
        };
        if !lock(&self.used_assertions).insert(format!("{}/{jti}", app.client_id)) {
            return Err(token_error(
                401,
                "invalid_client",
                700_025,
                "Client assertion has already been used (replayed jti).",
            ));
        }
        Ok(())
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
        if claims.iat < self.revoked_before_secs.load(Ordering::SeqCst) {
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

    /// `POST {login}/{tenant}/oauth2/v2.0/devicecode`.
    pub fn start_device_code(
        &self,
        facts: &TenantFacts,
        tenant: &str,
        form: &HashMap<String, String>,
        clock: &SimClock,
    ) -> Result<DeviceCodeResponse, TokenError> {
        if !Self::tenant_matches(facts, tenant) && !matches!(tenant, "organizations" | "common") {
            return Err(token_error(
                400,
                "invalid_request",
                90002,
                format!("Tenant '{tenant}' not found."),
            ));
        }
        let client_id = form.get("client_id").ok_or_else(|| {
            token_error(
                400,
                "invalid_request",
                900_144,
                "The request body must contain the following parameter: 'client_id'.",
            )
        })?;
        let app = facts.app(client_id).ok_or_else(|| {
            token_error(400, "unauthorized_client", 700_016, format!("Application with identifier '{client_id}' was not found in the directory '{}'.", facts.display_name))
        })?;
        if !app.public_client {
            return Err(token_error(
                400,
                "invalid_client",
                7_000_218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'. (The app does not allow public client flows.)",
            ));
        }
        let requested = form.get("scope").cloned().unwrap_or_default();
        let mut scopes = Vec::new();
        for scope in requested.split_whitespace() {
            if matches!(scope, "offline_access" | "openid" | "profile" | "email") {
                continue;
            }
            let name = scope
                .strip_prefix("https://graph.microsoft.com/")
                .unwrap_or(scope);
            if name == ".default" {
                scopes.extend(app.delegated_scopes.iter().cloned());
            } else if app
                .delegated_scopes
                .iter()
                .any(|s| s.eq_ignore_ascii_case(name))
            {
                scopes.push(name.to_owned());
            } else {
                return Err(token_error(
                    400,
                    "invalid_grant",
                    65001,
                    format!(
                        "The user or administrator has not consented to use the application with ID '{}' named '{}'. Send an interactive authorization request for this user and resource. (scope {name})",
                        app.client_id, app.display_name
                    ),
                ));
            }
        }
        if scopes.is_empty() {
            return Err(token_error(
                400,
                "invalid_scope",
                70011,
                "The provided request must include a 'scope' input parameter.",
            ));
        }
        let config = self.config();
        let device_code = format!("DAQABAAEAAA{}", uuid::Uuid::new_v4().simple());
        let user_code: String = uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .to_uppercase()
            .chars()
            .filter(char::is_ascii_alphabetic)
            .chain("XYZWVUTSR".chars())
            .take(9)
            .collect();
        let expires_in = config.device_code_lifetime.as_secs();
        let interval = config.device_code_interval.as_secs();
        lock(&self.device_codes).insert(
            device_code.clone(),
            DeviceCode {
                user_code: user_code.clone(),
                client_id: app.client_id.clone(),
                scopes,
                expires_at_ms: clock.now_ms() + expires_in * 1000,
                interval_secs: interval,
                last_poll_ms: None,
                status: DeviceStatus::Pending,
            },
        );
        Ok(DeviceCodeResponse {
            device_code,
            user_code: user_code.clone(),
            verification_uri: "https://microsoft.com/devicelogin".to_owned(),
            expires_in,
            interval,
            message: format!(
                "To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code {user_code} to authenticate."
            ),
        })
    }

    fn poll_device_code(
        &self,
        facts: &TenantFacts,
        app: &AppRegistration,
        form: &HashMap<String, String>,
        clock: &SimClock,
    ) -> Result<TokenResponse, TokenError> {
        let code = form.get("device_code").ok_or_else(|| {
            token_error(
                400,
                "invalid_request",
                900_144,
                "The request body must contain the following parameter: 'device_code'.",
            )
        })?;
        let now = clock.now_ms();
        let mut codes = lock(&self.device_codes);
        let entry = codes
            .get_mut(code)
            .filter(|e| e.client_id == app.client_id)
            .ok_or_else(|| {
                token_error(
                    400,
                    "bad_verification_code",
                    70000,
                    "The device code is not valid.",
                )
            })?;
        if now >= entry.expires_at_ms {
            return Err(token_error(
                400,
                "expired_token",
                70019,
                "Verification code expired.",
            ));
        }
        let too_fast = entry
            .last_poll_ms
            .is_some_and(|last| now < last + entry.interval_secs * 1000);
        entry.last_poll_ms = Some(now);
        if too_fast {
            entry.interval_secs += 5;
            return Err(token_error(
                400,
                "slow_down",
                70016,
                format!(
                    "Polling too fast; poll no more often than every {} seconds.",
                    entry.interval_secs
                ),
            ));
        }
        match entry.status.clone() {
            DeviceStatus::Pending => Err(token_error(
                400,
                "authorization_pending",
                70016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            )),
            DeviceStatus::Declined => {
                codes.remove(code);
                Err(token_error(
                    400,
                    "authorization_declined",
                    70000,
                    "The end user denied the authorization request.",
                ))
            }
            DeviceStatus::Approved(upn) => {
                let scopes = entry.scopes.clone();
                codes.remove(code);
                drop(codes);
                Ok(self.mint(facts, app, None, Some(scopes), Some(upn), clock))
            }
        }
    }

    /// Admin: the user at the browser approves (`Some(upn)`) or declines (`None`) a user code.
    pub fn decide_device_code(&self, user_code: &str, approve_as: Option<String>) -> bool {
        let mut codes = lock(&self.device_codes);
        let Some(entry) = codes.values_mut().find(|e| {
            e.user_code.eq_ignore_ascii_case(user_code) && e.status == DeviceStatus::Pending
        }) else {
            return false;
        };
        entry.status = approve_as.map_or(DeviceStatus::Declined, DeviceStatus::Approved);
        true
    }
}

/// The DER bytes of the first PEM block.
pub fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// Base64url SHA-256 thumbprint (`x5t#S256`).
pub fn thumbprint_sha256(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// Base64url SHA-1 thumbprint (`x5t`).
pub fn thumbprint_sha1(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// A throwaway RSA certificate and key for the simulated app registration (tests, demo).
#[derive(Clone)]
pub struct SimCertificate {
    pub certificate_pem: String,
    pub private_key_pem: String,
    pub certificate_der: Vec<u8>,
}

impl std::fmt::Debug for SimCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCertificate")
            .field("x5t#S256", &self.thumbprint_sha256())
            .field("private_key_pem", &"[REDACTED]")
            .finish()
    }
}

/// Creating the throwaway certificate failed.
#[derive(Debug, thiserror::Error)]
#[error("could not create the simulator's certificate: {0}")]
pub struct CertificateError(String);

impl SimCertificate {
    /// A new self-signed RSA-2048 certificate.
    pub fn generate() -> Result<Self, CertificateError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)
            .map_err(|e| CertificateError(e.to_string()))?;
        let params = rcgen::CertificateParams::new(vec!["b2b-convert-simulator".to_owned()])
            .map_err(|e| CertificateError(e.to_string()))?;
        let certificate = params
            .self_signed(&key)
            .map_err(|e| CertificateError(e.to_string()))?;
        Ok(Self {
            certificate_pem: certificate.pem(),
            private_key_pem: key.serialize_pem(),
            certificate_der: certificate.der().to_vec(),
        })
    }

    /// One certificate per process (RSA key generation is slow; tests share it).
    pub fn shared() -> Result<&'static Self, CertificateError> {
        static SHARED: OnceLock<Result<SimCertificate, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Self::generate().map_err(|e| e.0))
            .as_ref()
            .map_err(|e| CertificateError(e.clone()))
    }

    pub fn thumbprint_sha256(&self) -> String {
        thumbprint_sha256(&self.certificate_der)
    }

    pub fn thumbprint_sha1(&self) -> String {
        thumbprint_sha1(&self.certificate_der)
    }

    /// Signs a client assertion (test helper; the real client builds its own).
    ///
    /// `alg` PS256 puts `x5t#S256` in the header, RS256 puts `x5t`.
    pub fn sign_assertion(
        &self,
        alg: Algorithm,
        claims: &serde_json::Value,
    ) -> Result<String, CertificateError> {
        let mut header = Header::new(alg);
        header.typ = Some("JWT".to_owned());
        if alg == Algorithm::RS256 {
            header.x5t = Some(self.thumbprint_sha1());
        } else {
            header.x5t_s256 = Some(self.thumbprint_sha256());
        }
        let key = EncodingKey::from_rsa_pem(self.private_key_pem.as_bytes())
            .map_err(|e| CertificateError(e.to_string()))?;
        jsonwebtoken::encode(&header, claims, &key).map_err(|e| CertificateError(e.to_string()))
    }
}
