//! Getting and keeping a Graph access token (NOTES.md §7): client secret, certificate
//! assertion, a token obtained elsewhere, the device-code flow for delegated use, and the
//! credentials without a stored secret (§7.4): managed identity, workload identity federation
//! (a federated token file or GitHub Actions OIDC) and the Azure CLI.
//!
//! Owns the token endpoint conversation and the token cache (refreshed a margin before expiry
//! by the connection's clock, and once after a 401). Tokens and secrets stay in
//! `SecretString`s; nothing here logs, prints or returns them in an error. The device-code
//! prompt is handed to a callback so the caller decides where it is shown.
//!
//! It must not read settings: the credential arrives typed, in an [`Auth`] that `config`
//! builds (it reads the secrets, the certificate file and the host's environment). Two
//! reads happen here because they *are* acquiring a token: the federated token file, re-read
//! before every token request because the platform rotates it (`config` hands over its
//! path, not its contents, so a rotated file is never missed), and the Azure CLI, run again
//! whenever the cached token nears expiry.

mod sources;

mod certificate;
mod claims;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;
use url::Url;

pub use certificate::{AssertionAlgorithm, AssertionSigner};
pub use claims::TokenClaims;
pub use sources::{AssertionSource, ManagedIdentityEndpoint};

use crate::clock::SharedClock;
use crate::graph::retry::{self, Attempt, AttemptFailure, Idempotency, RetryPolicy, Stop};

/// Refresh a cached token when it has less than this left (or a fifth of its life, if that is
/// shorter, for short-lived test tokens).
const REFRESH_MARGIN: Duration = Duration::from_mins(5);

/// Token requests are retried a few times on throttling and transient failures.
const TOKEN_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 4,
    base_delay: Duration::from_secs(1),
    max_delay: Duration::from_secs(30),
};

/// A failure to obtain a token. Never contains the secret, the assertion or a token.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the token endpoint refused: {error}: {description} (trace id {trace_id}, correlation id {correlation_id})"
    )]
    Refused {
        status: u16,
        /// OAuth `error`, for example `invalid_client`.
        error: String,
        /// `error_description`, which names the AADSTS code.
        description: String,
        trace_id: String,
        correlation_id: String,
    },
    #[error("cannot reach the token endpoint {host}: {reason}")]
    Transport { host: String, reason: String },
    #[error("signing the client assertion failed")]
    Signing,
    #[error(
        "the access token from {origin} expired at {expired}; get a fresh one (for example \
         `az account get-access-token --resource-type ms-graph`)"
    )]
    StaticTokenExpired { origin: String, expired: String },
    #[error(
        "Graph rejected the access token from {origin} and it cannot be refreshed; get a fresh one"
    )]
    StaticTokenRejected { origin: String },
    #[error("the sign-in was declined on the device")]
    DeviceCodeDeclined,
    #[error("the device code expired before anyone signed in; run the command again")]
    DeviceCodeExpired,
    #[error("the managed-identity endpoint {host} refused: {message} (HTTP {status})")]
    ManagedIdentity {
        host: String,
        status: u16,
        message: String,
    },
    #[error("cannot read the federated token file {path}: {reason}")]
    FederatedTokenFile { path: String, reason: String },
    #[error(
        "the GitHub Actions OIDC endpoint {host} refused (HTTP {status}); does the workflow grant `permissions: id-token: write`?"
    )]
    OidcRefused { host: String, status: u16 },
    #[error(
        "the Azure CLI `{program}` was not found; install it (https://aka.ms/azure-cli) or set \
         auth.azure_cli_path"
    )]
    AzureCliMissing { program: String },
    #[error("the Azure CLI is not signed in; run `az login --tenant <tenant>` first ({message})")]
    AzureCliNotLoggedIn { message: String },
    #[error("the Azure CLI failed: {message}")]
    AzureCli { message: String },
    #[error("unexpected answer from the token endpoint: {0}")]
    Unexpected(String),
}

/// What the device-code flow asks the operator to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceCodePrompt {
    pub user_code: String,
    pub verification_uri: String,
    /// Microsoft's own sentence ("To sign in, use a web browser to open …").
    pub message: String,
}

/// Shows the device-code prompt to the operator.
pub type PromptFn = Box<dyn Fn(&DeviceCodePrompt) + Send + Sync>;

/// How to obtain tokens: built by `config` from the settings (which reads every secret and
/// the certificate file), or by tests.
pub enum Credential {
    ClientSecret {
        client_id: String,
        secret: SecretString,
    },
    /// The certificate's key, already read and checked.
    Certificate {
        client_id: String,
        signer: AssertionSigner,
    },
    /// A token obtained elsewhere; it cannot be refreshed.
    Static {
        token: Arc<SecretString>,
        /// Where it came from, for messages (`environment variable B2BC_ACCESS_TOKEN`).
        origin: String,
    },
    DeviceCode {
        client_id: String,
        /// Full scope strings (`https://graph.microsoft.com/User.Read.All`, `offline_access`).
        scopes: Vec<String>,
        prompt: PromptFn,
    },
    /// The host's managed identity: system-assigned, or user-assigned by `client_id`.
    ManagedIdentity {
        endpoint: ManagedIdentityEndpoint,
        client_id: Option<String>,
    },
    /// Workload identity federation: an assertion from another issuer, exchanged as a
    /// jwt-bearer client assertion for the app `client_id`.
    WorkloadIdentity {
        client_id: String,
        assertion: AssertionSource,
    },
    /// `az account get-access-token`, run again when the token nears expiry.
    AzureCli {
        /// The program (`az`, found on `PATH`, or a full path).
        program: std::path::PathBuf,
        /// `--tenant`, when the configuration names one.
        tenant: Option<String>,
    },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ClientSecret { client_id, .. } => write!(f, "ClientSecret({client_id})"),
            Self::Certificate { client_id, signer } => {
                write!(f, "Certificate({client_id}, {signer:?})")
            }
            Self::Static { origin, .. } => write!(f, "Static(from {origin})"),
            Self::DeviceCode { client_id, .. } => write!(f, "DeviceCode({client_id})"),
            Self::ManagedIdentity {
                endpoint,
                client_id,
            } => write!(
                f,
                "ManagedIdentity({endpoint:?}, {})",
                client_id.as_deref().unwrap_or("system-assigned")
            ),
            Self::WorkloadIdentity {
                client_id,
                assertion,
            } => write!(f, "WorkloadIdentity({client_id}, {assertion:?})"),
            Self::AzureCli { program, tenant } => write!(
                f,
                "AzureCli({}, tenant {})",
                program.display(),
                tenant.as_deref().unwrap_or("default")
            ),
        }
    }
}

/// Who signs in, in which tenant, for which resource: the typed description of sign-in that
/// [`Connection::graph_client`](crate::graph::Connection::graph_client) takes. `config` builds
/// it from the settings; tests build it by hand. `Debug` never shows a secret.
#[derive(Debug)]
pub struct Auth {
    pub credential: Credential,
    /// The tenant id or domain whose token endpoint is asked (`organizations` for a
    /// pre-obtained token, which names its own tenant).
    pub tenant: String,
    /// The identifier of Graph in the tenant's cloud: the tokens' audience. It stays the same
    /// when the Graph URL points at a proxy or the simulator.
    pub resource: String,
}

/// A token in the cache.
struct Cached {
    token: Arc<SecretString>,
    refresh_at: Instant,
    refresh_token: Option<SecretString>,
}

/// Hands out a valid token, fetching or refreshing it when needed. One refresh at a time.
pub struct TokenProvider {
    http: reqwest::Client,
    /// The graph resource (`https://graph.microsoft.com`) for managed identity and the CLI.
    resource: String,
    credential: Credential,
    /// `{login}/{tenant}/oauth2/v2.0/`
    endpoint_base: Url,
    /// `{graph}/.default` for app-only flows.
    default_scope: String,
    cache: Mutex<Option<Cached>>,
    /// When a cached token is due for refresh, and the time stamped into assertions.
    clock: SharedClock,
}

impl std::fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenProvider")
            .field("credential", &self.credential)
            .field("endpoint", &self.endpoint_base.as_str())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct TokenErrorResponse {
    error: String,
    error_description: Option<String>,
    trace_id: Option<String>,
    correlation_id: Option<String>,
}

#[derive(Deserialize)]
struct DeviceCodeResponse {
    device_code: String,
    user_code: String,
    verification_uri: String,
    expires_in: u64,
    interval: Option<u64>,
    message: Option<String>,
}

impl TokenProvider {
    /// Built by [`Connection::graph_client`](crate::graph::Connection::graph_client) only:
    /// `login_url` is the cloud's authority (or the simulator's).
    pub(crate) fn new(
        http: reqwest::Client,
        auth: Auth,
        login_url: &Url,
        clock: SharedClock,
    ) -> Result<Self, Error> {
        let endpoint_base = crate::graph::client::as_base(login_url)
            .join(&format!("{}/oauth2/v2.0/", auth.tenant))
            .map_err(|e| Error::Unexpected(format!("bad login URL: {e}")))?;
        Ok(Self {
            http,
            resource: auth.resource.clone(),
            credential: auth.credential,
            endpoint_base,
            default_scope: format!("{}/.default", auth.resource),
            cache: Mutex::new(None),
            clock,
        })
    }

    /// A valid token: the cached one, or a new one when it is missing or near its expiry.
    pub async fn token(&self) -> Result<Arc<SecretString>, Error> {
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.as_ref()
            && self.clock.now() < cached.refresh_at
        {
            return Ok(Arc::clone(&cached.token));
        }
        // The old entry (and its refresh token) stays until a new token has arrived, so a
        // failed refresh can be tried again.
        let refresh_token = cache.as_ref().and_then(|c| c.refresh_token.as_ref());
        let mut fresh = self.fetch(refresh_token).await?;
        if fresh.refresh_token.is_none() {
            fresh.refresh_token = cache.take().and_then(|c| c.refresh_token);
        }
        let token = Arc::clone(&fresh.token);
        *cache = Some(fresh);
        Ok(token)
    }

    /// Drops `rejected` from the cache after Graph answered 401 with it, so the next
    /// [`token`](Self::token) fetches a new one. A token that cannot be refreshed is an error.
    pub async fn invalidate(&self, rejected: &Arc<SecretString>) -> Result<(), Error> {
        if let Credential::Static { origin, .. } = &self.credential {
            return Err(Error::StaticTokenRejected {
                origin: origin.clone(),
            });
        }
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.as_mut()
            && Arc::ptr_eq(&cached.token, rejected)
        {
            cached.refresh_at = self.clock.now();
        }
        Ok(())
    }

    async fn fetch(&self, refresh_token: Option<&SecretString>) -> Result<Cached, Error> {
        match &self.credential {
            Credential::Static { token, origin } => {
                let claims = TokenClaims::decode(token.expose_secret());
                let now = u64::try_from(self.clock.now_utc().unix_timestamp()).unwrap_or(0);
                if let Some(exp) = claims.and_then(|c| c.exp)
                    && exp <= now
                {
                    return Err(Error::StaticTokenExpired {
                        origin: origin.clone(),
                        expired: time::OffsetDateTime::from_unix_timestamp(
                            i64::try_from(exp).unwrap_or(0),
                        )
                        .map_or_else(|_| exp.to_string(), |t| t.to_string()),
                    });
                }
                Ok(Cached {
                    token: Arc::clone(token),
                    // Never refreshed: re-checked only when Graph rejects it.
                    refresh_at: self.clock.now() + Duration::from_hours(365 * 24),
                    refresh_token: None,
                })
            }
            Credential::ClientSecret { client_id, secret } => {
                self.request_token(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id),
                    ("client_secret", secret.expose_secret()),
                    ("scope", &self.default_scope),
                ])
                .await
            }
            Credential::Certificate { client_id, signer } => {
                let assertion = signer.assertion(
                    client_id,
                    self.token_url().as_str(),
                    SystemTime::from(self.clock.now_utc()),
                )?;
                self.request_token(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", &assertion),
                    ("scope", &self.default_scope),
                ])
                .await
            }
            Credential::DeviceCode {
                client_id,
                scopes,
                prompt,
            } => {
                let scope = scopes.join(" ");
                if let Some(refresh) = refresh_token {
                    let refreshed = self
                        .request_token(&[
                            ("grant_type", "refresh_token"),
                            ("client_id", client_id),
                            ("refresh_token", refresh.expose_secret()),
                            ("scope", &scope),
                        ])
                        .await;
                    match refreshed {
                        Ok(cached) => return Ok(cached),
                        // Only a refresh token the service no longer accepts calls for a new
                        // sign-in; anything else (network, throttling) is reported as it is.
                        Err(Error::Refused { error, .. }) if error == "invalid_grant" => {
                            tracing::warn!("the delegated session ended; signing in again");
                        }
                        Err(other) => return Err(other),
                    }
                }
                self.device_code_flow(client_id, &scope, prompt).await
            }
            Credential::ManagedIdentity { .. }
            | Credential::WorkloadIdentity { .. }
            | Credential::AzureCli { .. } => self.fetch_without_secret().await,
        }
    }

    /// The credentials without a stored secret (NOTES.md §7.4).
    async fn fetch_without_secret(&self) -> Result<Cached, Error> {
        match &self.credential {
            Credential::ManagedIdentity {
                endpoint,
                client_id,
            } => {
                let started = self.clock.now();
                let token = sources::managed_identity(
                    &self.http,
                    endpoint,
                    &self.resource,
                    client_id.as_deref(),
                )
                .await?;
                Ok(self.expiring(token, started))
            }
            Credential::WorkloadIdentity {
                client_id,
                assertion,
            } => {
                let assertion = sources::assertion(&self.http, assertion).await?;
                self.request_token(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", assertion.expose_secret()),
                    ("scope", &self.default_scope),
                ])
                .await
            }
            Credential::AzureCli { program, tenant } => {
                let started = self.clock.now();
                let token =
                    sources::azure_cli(program.clone(), self.resource.clone(), tenant.clone())
                        .await?;
                Ok(self.expiring(token, started))
            }
            _ => unreachable!("only called for the credentials without a stored secret"),
        }
    }

    /// A token that names its expiry (Unix seconds), cached until a margin before it.
    fn expiring(&self, token: sources::ExpiringToken, started: Instant) -> Cached {
        let now = u64::try_from(self.clock.now_utc().unix_timestamp()).unwrap_or(0);
        let lifetime = Duration::from_secs(token.expires_on.saturating_sub(now).min(24 * 3600));
        let margin = REFRESH_MARGIN.min(lifetime / 5);
        Cached {
            token: Arc::new(token.token),
            refresh_at: started + lifetime.saturating_sub(margin),
            refresh_token: None,
        }
    }

    fn token_url(&self) -> Url {
        self.endpoint_base
            .join("token")
            .expect("a constant relative path joins")
    }

    /// Posts to the token endpoint, retrying throttling and transient failures (a token
    /// request changes nothing, so repeating it is safe).
    async fn request_token(&self, form: &[(&str, &str)]) -> Result<Cached, Error> {
        let url = &self.token_url();
        let started = self.clock.now();
        let body = retry::drive(
            &TOKEN_RETRY,
            Idempotency::Read,
            move |_| self.token_attempt(url, form),
            |retry| {
                tracing::warn!(
                    attempt = retry.attempt,
                    wait_ms = retry.wait.as_millis(),
                    "token request retried: {}",
                    retry.error
                );
                Ok(())
            },
        )
        .await
        .map_err(Stop::into_error)?;
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| Error::Unexpected(format!("token response: {e}")))?;
        // A nonsensical lifetime must not overflow the clock arithmetic below.
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(3599).min(24 * 3600));
        let margin = REFRESH_MARGIN.min(lifetime / 5);
        tracing::debug!(
            lifetime_s = lifetime.as_secs(),
            "token acquired in {} ms",
            self.clock
                .now()
                .saturating_duration_since(started)
                .as_millis()
        );
        Ok(Cached {
            token: Arc::new(SecretString::from(parsed.access_token)),
            refresh_at: started + lifetime.saturating_sub(margin),
            refresh_token: parsed.refresh_token.map(SecretString::from),
        })
    }

    /// One post to the token endpoint; the answer's body when it is a success.
    async fn token_attempt(&self, url: &Url, form: &[(&str, &str)]) -> Attempt<Bytes, Error> {
        match self.http.post(url.clone()).form(form).send().await {
            Ok(response) => {
                let status = response.status();
                let wait = crate::graph::retry::retry_after(response.headers(), SystemTime::now());
                match response.bytes().await {
                    Ok(body) if status.is_success() => Attempt::Done(Ok(body)),
                    Ok(body) => Attempt::Failed {
                        failure: AttemptFailure::Status(status.as_u16()),
                        retry_after: wait,
                        error: refused(status.as_u16(), &body),
                    },
                    Err(err) => Attempt::Failed {
                        failure: AttemptFailure::NoAnswer,
                        retry_after: None,
                        error: transport(url, &err),
                    },
                }
            }
            Err(err) => Attempt::Failed {
                failure: if err.is_connect() {
                    AttemptFailure::ConnectFailed
                } else {
                    AttemptFailure::NoAnswer
                },
                retry_after: None,
                error: transport(url, &err),
            },
        }
    }

    async fn device_code_flow(
        &self,
        client_id: &str,
        scope: &str,
        prompt: &PromptFn,
    ) -> Result<Cached, Error> {
        let url = self
            .endpoint_base
            .join("devicecode")
            .expect("a constant relative path joins");
        let response = self
            .http
            .post(url.clone())
            .form(&[("client_id", client_id), ("scope", scope)])
            .send()
            .await
            .map_err(|e| transport(&url, &e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| transport(&url, &e))?;
        if !status.is_success() {
            return Err(refused(status.as_u16(), &body));
        }
        let code: DeviceCodeResponse = serde_json::from_slice(&body)
            .map_err(|e| Error::Unexpected(format!("device code response: {e}")))?;
        prompt(&DeviceCodePrompt {
            message: code.message.clone().unwrap_or_else(|| {
                format!(
                    "To sign in, open {} and enter the code {}.",
                    code.verification_uri, code.user_code
                )
            }),
            user_code: code.user_code,
            verification_uri: code.verification_uri,
        });
        let deadline = self.clock.now() + Duration::from_secs(code.expires_in);
        let mut interval = Duration::from_secs(code.interval.unwrap_or(5).max(1));
        loop {
            tokio::time::sleep(interval).await;
            if self.clock.now() >= deadline {
                return Err(Error::DeviceCodeExpired);
            }
            match self
                .request_token(&[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                    ("client_id", client_id),
                    ("device_code", &code.device_code),
                ])
                .await
            {
                Ok(cached) => return Ok(cached),
                Err(Error::Refused { error, .. }) if error == "authorization_pending" => {}
                Err(Error::Refused { error, .. }) if error == "slow_down" => {
                    interval += Duration::from_secs(5);
                }
                Err(Error::Refused { error, .. }) if error == "authorization_declined" => {
                    return Err(Error::DeviceCodeDeclined);
                }
                Err(Error::Refused { error, .. }) if error == "expired_token" => {
                    return Err(Error::DeviceCodeExpired);
                }
                Err(other) => return Err(other),
            }
        }
    }
}

fn transport(url: &Url, err: &reqwest::Error) -> Error {
    Error::Transport {
        host: url.host_str().unwrap_or("?").to_owned(),
        reason: error_chain(err),
    }
}

/// A reqwest error with its causes, without the URL (which is fine here, but kept uniform).
pub(crate) fn error_chain(err: &reqwest::Error) -> String {
    let mut text = if err.is_timeout() {
        "timed out".to_owned()
    } else if err.is_connect() {
        "connection failed".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn refused(status: u16, body: &[u8]) -> Error {
    match serde_json::from_slice::<TokenErrorResponse>(body) {
        Ok(err) => Error::Refused {
            status,
            error: err.error,
            description: err
                .error_description
                .map(|d| d.lines().next().unwrap_or_default().to_owned())
                .unwrap_or_default(),
            trace_id: err.trace_id.unwrap_or_else(|| "none".into()),
            correlation_id: err.correlation_id.unwrap_or_else(|| "none".into()),
        },
        // Not the identity platform's JSON (a proxy, say): its text is not shown, because a
        // proxy that echoes the request would echo the secret or the assertion with it.
        Err(_) => Error::Refused {
            status,
            error: format!("http_{status}"),
            description: "the answer was not the identity platform's error JSON".into(),
            trace_id: "none".into(),
            correlation_id: "none".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_endpoint_errors_keep_the_aadsts_line_and_ids() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x","error_codes":[7000215],"timestamp":"2026-11-21 08:00:00Z","trace_id":"tr-1","correlation_id":"co-1"}"#;
        let err = refused(401, body);
        let text = err.to_string();
        assert!(
            text.contains("invalid_client: AADSTS7000215: Invalid client secret provided."),
            "{text}"
        );
        assert!(text.contains("tr-1") && text.contains("co-1"), "{text}");
        assert!(
            !text.contains("Trace ID: x"),
            "only the first line of the description: {text}"
        );
    }
}
