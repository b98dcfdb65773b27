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
use zeroize::Zeroizing;

use super::{AuthMethod, Error, Origin, Secret, Settings};
use crate::graph::Connection;
use crate::graph::auth::{AssertionSigner, Auth, Credential, PromptFn};
use crate::graph::retry::RetryPolicy;

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

    /// How to sign in: the credential `auth.method` asks for (the certificate read and checked
    /// here), the tenant and the token's audience. `prompt` shows the device-code message.
    /// A value the method needs but nobody set is [`Error::Missing`].
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
        // A pre-obtained token already names its tenant; every other method asks the tenant's
        // token endpoint.
        let tenant = match (self.tenant.tenant_id.as_deref(), auth.method) {
            (Some(tenant), _) => tenant.to_owned(),
            (None, AuthMethod::AccessToken) => "organizations".to_owned(),
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
        let credential = match auth.method {
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
        };
        Ok(Auth {
            credential,
            tenant,
            resource: self.tenant.cloud.graph_resource().to_owned(),
        })
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
        .map_err(unusable)
    }
}
