//! What `graph` needs from the settings, in `graph`'s own types: the [`Connection`] (hosts,
//! timeouts, retries, read priority) and the [`Auth`] description of sign-in (the credential
//! the chosen `auth.method` needs, the tenant, the token's audience).
//!
//! `graph` never sees [`Settings`]; this is the one place that turns them into its inputs. It
//! reads the certificate file (the last secret file, read only when a command signs in), and
//! every failure here is a [`config::Error`](Error) naming the key.

use std::path::Path;
use std::sync::Arc;

use secrecy::SecretString;
use serde::Serialize;
use url::Url;
use zeroize::Zeroizing;

use super::{AuthMethod, Error, Origin, Secret, Settings};
use crate::graph::Connection;
use crate::graph::auth::{
    AssertionSigner, AssertionSource, Auth, Credential, ManagedIdentityEndpoint, PromptFn,
};
use crate::graph::retry::RetryPolicy;

/// The default Instance Metadata Service endpoint: used only by an explicit
/// `auth.method = "managed-identity"` when neither the host's identity endpoint nor
/// `auth.imds_url` is set. `auto` never chooses it (it would have to probe the address).
pub const DEFAULT_IMDS_URL: &str = "http://169.254.169.254/metadata/identity/oauth2/token";

/// The credential `auth.method` leads to; for `auto`, why the earlier ones were skipped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CredentialChoice {
    /// The method in effect (never `auto`).
    pub method: AuthMethod,
    /// Whether `auto` chose it.
    pub auto: bool,
    /// What exactly signs in (`system-assigned managed identity via IDENTITY_ENDPOINT`).
    pub detail: String,
    /// The credentials `auto` tried first, in order, with the reason each was skipped.
    pub skipped: Vec<Skipped>,
}

/// A credential `auto` passed over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub method: AuthMethod,
    pub reason: String,
}

impl std::fmt::Display for CredentialChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.method.as_str(), self.detail)?;
        if self.auto {
            f.write_str(", chosen by auth.method = auto")?;
            for skipped in &self.skipped {
                write!(
                    f,
                    "; {} skipped: {}",
                    skipped.method.as_str(),
                    skipped.reason
                )?;
            }
        }
        Ok(())
    }
}

impl Settings {
    /// How to reach the tenant: its Graph and login hosts, the timeouts, the configured
    /// number of attempts, low-priority reads, and the system clock.
    pub fn graph_connection(&self) -> Connection {
        let throughput = &self.throughput;
        Connection {
            connect_timeout: throughput.connect_timeout,
            request_timeout: throughput.request_timeout,
            retry: RetryPolicy {
                max_attempts: throughput.max_attempts.get(),
                ..RetryPolicy::default()
            },
            low_priority_reads: throughput.low_priority_reads,
            ..Connection::new(self.tenant.graph_url.clone(), self.tenant.login_url.clone())
        }
    }

    /// The credential in effect: `auth.method`, or for `auto` the first of the Azure SDKs'
    /// order whose inputs are present (environment secret or certificate, workload identity,
    /// managed identity, Azure CLI). Decided without any request, so `config` can show it.
    pub fn credential_choice(&self) -> CredentialChoice {
        let auth = &self.auth;
        let explicit = |method, detail: String| CredentialChoice {
            method,
            auto: false,
            detail,
            skipped: Vec::new(),
        };
        let detail = match auth.method {
            AuthMethod::ClientSecret => "client secret".to_owned(),
            AuthMethod::Certificate => "certificate".to_owned(),
            AuthMethod::AccessToken => "a token obtained elsewhere".to_owned(),
            AuthMethod::DeviceCode => "delegated sign-in".to_owned(),
            AuthMethod::ManagedIdentity => self.managed_detail(),
            AuthMethod::WorkloadIdentity => self
                .workload_detail()
                .unwrap_or_else(|| "no federated token source".into()),
            AuthMethod::AzureCli => self.cli_detail(),
            AuthMethod::Auto => return self.auto_choice(),
        };
        explicit(auth.method, detail)
    }

    fn cli_detail(&self) -> String {
        format!(
            "`{} account get-access-token`",
            self.auth.azure_cli_path.display()
        )
    }

    fn managed_detail(&self) -> String {
        let auth = &self.auth;
        let who = auth.managed_identity_client_id.as_ref().map_or_else(
            || "system-assigned managed identity".to_owned(),
            |id| format!("user-assigned managed identity {id}"),
        );
        let via = if auth.identity_endpoint.is_some() && auth.identity_header.is_some() {
            "IDENTITY_ENDPOINT".to_owned()
        } else if auth.msi_endpoint.is_some() && auth.msi_secret.is_some() {
            "MSI_ENDPOINT".to_owned()
        } else if let Some(url) = &auth.imds_url {
            format!("the IMDS at {url}")
        } else {
            "the IMDS at 169.254.169.254".to_owned()
        };
        format!("{who} via {via}")
    }

    fn workload_detail(&self) -> Option<String> {
        let auth = &self.auth;
        if let Some(path) = &auth.federated_token_file {
            Some(format!("federated token file {}", path.display()))
        } else if auth.oidc_request_url.is_some() && auth.oidc_request_token.is_some() {
            Some("GitHub Actions OIDC token".to_owned())
        } else {
            None
        }
    }

    /// `auto`: the first credential of the Azure SDKs' order whose inputs are present.
    fn auto_choice(&self) -> CredentialChoice {
        let auth = &self.auth;
        let has_app = self.tenant.client_id.is_some() && self.tenant.tenant_id.is_some();
        let mut skipped = Vec::new();
        let chosen = |method, detail: String, skipped| CredentialChoice {
            method,
            auto: true,
            detail,
            skipped,
        };
        let no_app = "tenant.tenant_id (AZURE_TENANT_ID) and tenant.client_id (AZURE_CLIENT_ID) \
                      are not both set";
        // 1. Environment: a client secret, else a certificate.
        if auth.client_secret.is_some() && has_app {
            return chosen(AuthMethod::ClientSecret, "client secret".into(), skipped);
        }
        if auth.certificate_path.is_some() && has_app {
            return chosen(AuthMethod::Certificate, "certificate".into(), skipped);
        }
        skipped.push(Skipped {
            method: AuthMethod::ClientSecret,
            reason: if auth.client_secret.is_some() || auth.certificate_path.is_some() {
                no_app.to_owned()
            } else {
                "neither AZURE_CLIENT_SECRET nor AZURE_CLIENT_CERTIFICATE_PATH is set".to_owned()
            },
        });
        // 2. Workload identity.
        match self.workload_detail() {
            Some(detail) if has_app => {
                return chosen(AuthMethod::WorkloadIdentity, detail, skipped);
            }
            Some(_) => skipped.push(Skipped {
                method: AuthMethod::WorkloadIdentity,
                reason: no_app.to_owned(),
            }),
            None => skipped.push(Skipped {
                method: AuthMethod::WorkloadIdentity,
                reason: "neither AZURE_FEDERATED_TOKEN_FILE nor ACTIONS_ID_TOKEN_REQUEST_URL \
                         with ACTIONS_ID_TOKEN_REQUEST_TOKEN is set"
                    .to_owned(),
            }),
        }
        // 3. Managed identity, when the host says it has one. The IMDS is never probed.
        let host_endpoint = (auth.identity_endpoint.is_some() && auth.identity_header.is_some())
            || (auth.msi_endpoint.is_some() && auth.msi_secret.is_some())
            || auth.imds_url.is_some();
        if host_endpoint {
            return chosen(AuthMethod::ManagedIdentity, self.managed_detail(), skipped);
        }
        skipped.push(Skipped {
            method: AuthMethod::ManagedIdentity,
            reason: if auth.imds_disabled {
                "no IDENTITY_ENDPOINT or MSI_ENDPOINT, and the metadata service is disabled \
                 (auth.imds_url = none)"
                    .to_owned()
            } else {
                "no IDENTITY_ENDPOINT, MSI_ENDPOINT or auth.imds_url; the metadata service \
                     is not probed (on a VM, set auth.method = \"managed-identity\")"
                    .to_owned()
            },
        });
        // 4. The Azure CLI, last.
        chosen(
            AuthMethod::AzureCli,
            format!(
                "`{} account get-access-token`",
                auth.azure_cli_path.display()
            ),
            skipped,
        )
    }

    /// When a static `access-token` expires, by its `exp` claim (`None` for any other
    /// credential, which is refreshed, or for an opaque token).
    pub fn static_token_expiry(&self) -> Option<time::OffsetDateTime> {
        if self.credential_choice().method != AuthMethod::AccessToken {
            return None;
        }
        let token = self.auth.access_token.as_ref()?;
        let exp = crate::graph::auth::TokenClaims::decode(token.expose().trim())?.exp?;
        time::OffsetDateTime::from_unix_timestamp(i64::try_from(exp).ok()?).ok()
    }

    /// How to sign in: the credential `auth.method` asks for (the certificate read and checked
    /// here), the tenant and the token's audience. `prompt` shows the device-code message.
    /// A value the method needs but nobody set is [`Error::Missing`].
    #[allow(clippy::too_many_lines)] // one arm per `auth.method`, each short
    pub fn graph_auth(&self, prompt: PromptFn) -> Result<Auth, Error> {
        let auth = &self.auth;
        let missing = |what, key, hint| {
            let method = self.effective("auth.method");
            Error::Missing {
                what,
                key,
                hint,
                method: method
                    .map(|m| m.value.as_str().unwrap_or_default().to_owned())
                    .unwrap_or_default(),
                origin: method.map_or(Origin::Default, |m| m.origin.clone()),
            }
        };
        let method = self.credential_choice().method;
        // A pre-obtained token already names its tenant, and the host's identity endpoint and
        // the CLI know theirs; every other method asks the tenant's token endpoint.
        let tenant = match (self.tenant.tenant_id.as_deref(), method) {
            (Some(tenant), _) => tenant.to_owned(),
            (
                None,
                AuthMethod::AccessToken | AuthMethod::ManagedIdentity | AuthMethod::AzureCli,
            ) => "organizations".to_owned(),
            (None, _) => {
                return Err(missing(
                    "the tenant id",
                    "tenant.tenant_id",
                    "set tenant.tenant_id or AZURE_TENANT_ID",
                ));
            }
        };
        let client_id = || {
            self.tenant
                .client_id
                .map(|id| id.to_string())
                .ok_or_else(|| {
                    missing(
                        "the application (client) id",
                        "tenant.client_id",
                        "set tenant.client_id or AZURE_CLIENT_ID",
                    )
                })
        };
        let credential = match method {
            AuthMethod::ClientSecret => Credential::ClientSecret {
                client_id: client_id()?,
                secret: SecretString::from(
                    auth.client_secret
                        .as_ref()
                        .ok_or_else(|| {
                            missing(
                                "the client secret",
                                "auth.client_secret",
                                "export AZURE_CLIENT_SECRET or set auth.client_secret_file",
                            )
                        })?
                        .expose(),
                ),
            },
            AuthMethod::Certificate => {
                let path = auth.certificate_path.as_deref().ok_or_else(|| {
                    missing(
                        "the certificate",
                        "auth.certificate_path",
                        "set auth.certificate_path or AZURE_CLIENT_CERTIFICATE_PATH",
                    )
                })?;
                Credential::Certificate {
                    client_id: client_id()?,
                    signer: self.certificate(path)?,
                }
            }
            AuthMethod::AccessToken => {
                let token = auth.access_token.as_ref().ok_or_else(|| {
                    missing(
                        "the access token",
                        "auth.access_token",
                        "export B2BC_ACCESS_TOKEN or set auth.access_token_file",
                    )
                })?;
                Credential::Static {
                    token: Arc::new(SecretString::from(token.expose().trim())),
                    origin: token.origin().to_string(),
                }
            }
            AuthMethod::DeviceCode => {
                let resource = self.tenant.cloud.graph_resource();
                let mut scopes: Vec<String> = auth
                    .delegated_scopes
                    .iter()
                    .map(|s| format!("{resource}/{s}"))
                    .collect();
                scopes.push("offline_access".to_owned());
                Credential::DeviceCode {
                    client_id: client_id()?,
                    scopes,
                    prompt,
                }
            }
            AuthMethod::ManagedIdentity => Credential::ManagedIdentity {
                endpoint: self.managed_identity_endpoint()?,
                client_id: auth.managed_identity_client_id.clone(),
            },
            AuthMethod::WorkloadIdentity => {
                let Some(assertion) = self.assertion_source() else {
                    return Err(missing(
                        "the federated token",
                        "auth.federated_token_file",
                        "set AZURE_FEDERATED_TOKEN_FILE, or run in GitHub Actions with \
                         `permissions: id-token: write` (ACTIONS_ID_TOKEN_REQUEST_URL and \
                         ACTIONS_ID_TOKEN_REQUEST_TOKEN)",
                    ));
                };
                Credential::WorkloadIdentity {
                    client_id: client_id()?,
                    assertion,
                }
            }
            AuthMethod::AzureCli => Credential::AzureCli {
                program: auth.azure_cli_path.clone(),
                tenant: self.tenant.tenant_id.clone(),
            },
            AuthMethod::Auto => unreachable!("credential_choice resolves auto"),
        };
        Ok(Auth {
            credential,
            tenant,
            resource: self.tenant.cloud.graph_resource().to_owned(),
        })
    }

    /// The federated token file, else GitHub Actions' OIDC endpoint.
    fn assertion_source(&self) -> Option<AssertionSource> {
        let auth = &self.auth;
        if let Some(path) = &auth.federated_token_file {
            return Some(AssertionSource::File(path.clone()));
        }
        let (Some(url), Some(token)) = (&auth.oidc_request_url, &auth.oidc_request_token) else {
            return None;
        };
        Some(AssertionSource::GitHubActions {
            request_url: url.clone(),
            request_token: SecretString::from(token.expose()),
            audience: auth.oidc_audience.clone(),
        })
    }

    /// The host's identity endpoint (App Service, then the older shape), else the IMDS:
    /// `auth.imds_url` when set, the well-known address only when nothing overrides it.
    fn managed_identity_endpoint(&self) -> Result<ManagedIdentityEndpoint, Error> {
        let auth = &self.auth;
        if let (Some(url), Some(header)) = (&auth.identity_endpoint, &auth.identity_header) {
            return Ok(ManagedIdentityEndpoint::AppService {
                url: url.clone(),
                header: SecretString::from(header.expose()),
            });
        }
        if let (Some(url), Some(secret)) = (&auth.msi_endpoint, &auth.msi_secret) {
            return Ok(ManagedIdentityEndpoint::Legacy {
                url: url.clone(),
                secret: SecretString::from(secret.expose()),
            });
        }
        let url = match &auth.imds_url {
            Some(url) => url.clone(),
            None if auth.imds_disabled => {
                return Err(Error::Invalid {
                    key: "auth.imds_url".to_owned(),
                    origin: self
                        .effective("auth.imds_url")
                        .map_or(Origin::Default, |v| v.origin.clone()),
                    message: "the metadata service is disabled (`none`) and the host offers no \
                              IDENTITY_ENDPOINT or MSI_ENDPOINT; set auth.imds_url to the \
                              metadata service's address"
                        .to_owned(),
                });
            }
            None => Url::parse(DEFAULT_IMDS_URL).expect("a constant URL"),
        };
        Ok(ManagedIdentityEndpoint::Imds { url })
    }

    /// Reads the certificate file (PEM, or PKCS#12 with the certificate password) into a
    /// signer. The file's bytes are wiped once read.
    fn certificate(&self, path: &Path) -> Result<AssertionSigner, Error> {
        const KEY: &str = "auth.certificate_path";
        let origin = self
            .effective(KEY)
            .map_or(Origin::Default, |v| v.origin.clone());
        let unusable = |message: String| Error::Invalid {
            key: KEY.to_owned(),
            origin: origin.clone(),
            message: format!("cannot use the certificate {}: {message}", path.display()),
        };
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| unusable(e.to_string()))?);
        AssertionSigner::from_file_bytes(
            &bytes,
            self.auth.certificate_password.as_ref().map(Secret::expose),
            self.auth.assertion_algorithm,
        )
        .map(|signer| signer.with_certificate_chain(self.auth.send_certificate_chain))
        .map_err(unusable)
    }
}
