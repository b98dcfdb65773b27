//! Where tokens and assertions come from when there is no stored secret (NOTES.md §7.4,
//! checked against `Azure/azure-sdk-for-rust` `sdk/identity/azure_identity/src`:
//! `imds_managed_identity_credential.rs`, `app_service_managed_identity_credential.rs`,
//! `workload_identity_credential.rs`, `azure_cli_credential.rs`).
//!
//! Owns one request to a managed-identity endpoint, one read of a federated token file, one
//! request to GitHub's OIDC endpoint and one run of `az`. It must not cache (the
//! [`TokenProvider`](super::TokenProvider) does) and never puts a token, a header secret or
//! an assertion into an error or a log line.

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::Error;

/// Which managed-identity endpoint the host offers.
pub enum ManagedIdentityEndpoint {
    /// Azure VMs and AKS nodes: `GET {url}?api-version=2018-02-01` with `Metadata: true`.
    Imds { url: Url },
    /// App Service, Functions, Azure Automation, Container Apps: `IDENTITY_ENDPOINT`, with
    /// `X-IDENTITY-HEADER: $IDENTITY_HEADER` and api-version 2019-08-01.
    AppService { url: Url, header: SecretString },
    /// Older hosts: `MSI_ENDPOINT`, with `secret: $MSI_SECRET` and api-version 2017-09-01.
    Legacy { url: Url, secret: SecretString },
}

impl std::fmt::Debug for ManagedIdentityEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Imds { url } => write!(f, "Imds({url})"),
            Self::AppService { url, .. } => write!(f, "AppService({url})"),
            Self::Legacy { url, .. } => write!(f, "Legacy({url})"),
        }
    }
}

/// Where a federated assertion comes from.
pub enum AssertionSource {
    /// `AZURE_FEDERATED_TOKEN_FILE`: read before every token request (it is rotated).
    File(PathBuf),
    /// GitHub Actions: `GET {request_url}&audience=…` with the request token as bearer.
    GitHubActions {
        request_url: Url,
        request_token: SecretString,
        /// `api://AzureADTokenExchange` unless the federated credential says otherwise.
        audience: String,
    },
}

impl std::fmt::Debug for AssertionSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "File({})", path.display()),
            Self::GitHubActions { request_url, .. } => {
                write!(f, "GitHubActions({})", host(request_url))
            }
        }
    }
}

/// A token that names its own expiry.
pub(super) struct ExpiringToken {
    pub token: SecretString,
    /// Unix seconds.
    pub expires_on: u64,
}

/// A number or a string holding one (the managed-identity endpoints send strings).
#[derive(Deserialize)]
#[serde(untagged)]
enum Seconds {
    Number(u64),
    Text(String),
}

impl Seconds {
    fn get(&self) -> Option<u64> {
        match self {
            Self::Number(n) => Some(*n),
            Self::Text(t) => t.trim().parse().ok(),
        }
    }
}

#[derive(Deserialize)]
struct ManagedIdentityResponse {
    access_token: String,
    expires_on: Option<Seconds>,
    expires_in: Option<Seconds>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: Option<String>,
    error_description: Option<String>,
}

fn host(url: &Url) -> String {
    match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or("?")),
        None => url.host_str().unwrap_or("?").to_owned(),
    }
}

fn transport(url: &Url, err: &reqwest::Error) -> Error {
    Error::Transport {
        host: host(url),
        reason: super::error_chain(err),
    }
}

fn now_unix() -> u64 {
    u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0)
}

/// One token from the managed-identity endpoint.
pub(super) async fn managed_identity(
    http: &reqwest::Client,
    endpoint: &ManagedIdentityEndpoint,
    resource: &str,
    client_id: Option<&str>,
) -> Result<ExpiringToken, Error> {
    let (url, version, header) = match endpoint {
        ManagedIdentityEndpoint::Imds { url } => (url, "2018-02-01", None),
        ManagedIdentityEndpoint::AppService { url, header } => {
            (url, "2019-08-01", Some(("X-IDENTITY-HEADER", header)))
        }
        ManagedIdentityEndpoint::Legacy { url, secret } => {
            (url, "2017-09-01", Some(("secret", secret)))
        }
    };
    let mut url = url.clone();
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("api-version", version);
        query.append_pair("resource", resource);
        if let Some(id) = client_id {
            // `clientid` in the 2017 shape; both are accepted by current hosts.
            query.append_pair(
                if version == "2017-09-01" {
                    "clientid"
                } else {
                    "client_id"
                },
                id,
            );
        }
    }
    let mut request = http.get(url.clone()).header("Metadata", "true");
    if let Some((name, value)) = header {
        request = request.header(name, value.expose_secret());
    }
    let response = request.send().await.map_err(|e| transport(&url, &e))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| transport(&url, &e))?;
    if !status.is_success() {
        let message = serde_json::from_slice::<ErrorResponse>(&body)
            .ok()
            .and_then(|e| e.error_description.or(e.error))
            .map_or_else(
                || "the answer was not JSON".to_owned(),
                |m| m.lines().next().unwrap_or_default().to_owned(),
            );
        return Err(Error::ManagedIdentity {
            host: host(&url),
            status: status.as_u16(),
            message,
        });
    }
    let parsed: ManagedIdentityResponse = serde_json::from_slice(&body)
        .map_err(|e| Error::Unexpected(format!("managed-identity response: {e}")))?;
    let expires_on = parsed
        .expires_on
        .as_ref()
        .and_then(Seconds::get)
        .or_else(|| {
            parsed
                .expires_in
                .as_ref()
                .and_then(Seconds::get)
                .map(|s| now_unix() + s)
        })
        // The 2017 shape writes a date; a token is valid at least five minutes.
        .unwrap_or_else(|| now_unix() + 300);
    Ok(ExpiringToken {
        token: SecretString::from(parsed.access_token),
        expires_on,
    })
}

/// The federated assertion, fresh from its source.
pub(super) async fn assertion(
    http: &reqwest::Client,
    source: &AssertionSource,
) -> Result<SecretString, Error> {
    match source {
        AssertionSource::File(path) => {
            let fail = |reason: String| Error::FederatedTokenFile {
                path: path.display().to_string(),
                reason,
            };
            let text = tokio::fs::read_to_string(path)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let token = text.trim();
            if token.is_empty() {
                return Err(fail("the file is empty".into()));
            }
            Ok(SecretString::from(token.to_owned()))
        }
        AssertionSource::GitHubActions {
            request_url,
            request_token,
            audience,
        } => {
            let mut url = request_url.clone();
            url.query_pairs_mut().append_pair("audience", audience);
            let response = http
                .get(url.clone())
                .bearer_auth(request_token.expose_secret())
                .header("Accept", "application/json")
                .send()
                .await
                .map_err(|e| transport(&url, &e))?;
            let status = response.status();
            if !status.is_success() {
                return Err(Error::OidcRefused {
                    host: host(&url),
                    status: status.as_u16(),
                });
            }
            let body = response.bytes().await.map_err(|e| transport(&url, &e))?;
            let parsed: OidcResponse = serde_json::from_slice(&body)
                .map_err(|e| Error::Unexpected(format!("GitHub OIDC response: {e}")))?;
            Ok(SecretString::from(parsed.value))
        }
    }
}

/// GitHub's answer: `{"count": 1, "value": "<JWT>"}`.
#[derive(Deserialize)]
struct OidcResponse {
    value: String,
}

#[derive(Deserialize)]
struct CliToken {
    #[serde(rename = "accessToken")]
    access_token: String,
    /// Azure CLI 2.54 and newer.
    expires_on: Option<Seconds>,
}

/// Runs `program account get-access-token --output json --resource R [--tenant T]`.
pub(super) async fn azure_cli(
    program: PathBuf,
    resource: String,
    tenant: Option<String>,
) -> Result<ExpiringToken, Error> {
    let name = program.display().to_string();
    let output = tokio::task::spawn_blocking(move || {
        let mut command = std::process::Command::new(&program);
        command.args([
            "account",
            "get-access-token",
            "--output",
            "json",
            "--resource",
            &resource,
        ]);
        if let Some(tenant) = &tenant {
            command.args(["--tenant", tenant]);
        }
        command.stdin(std::process::Stdio::null()).output()
    })
    .await
    .map_err(|e| Error::AzureCli {
        message: e.to_string(),
    })?;
    let output = match output {
        Ok(output) => output,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::AzureCliMissing { program: name });
        }
        Err(err) => {
            return Err(Error::AzureCli {
                message: format!("cannot run {name}: {err}"),
            });
        }
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let message = stderr
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("no message")
            .to_owned();
        if stderr.contains("az login") {
            return Err(Error::AzureCliNotLoggedIn { message });
        }
        return Err(Error::AzureCli { message });
    }
    let parsed: CliToken = serde_json::from_slice(&output.stdout).map_err(|e| Error::AzureCli {
        message: format!("unexpected output of `az account get-access-token`: {e}"),
    })?;
    let expires_on = parsed
        .expires_on
        .as_ref()
        .and_then(Seconds::get)
        .ok_or_else(|| Error::AzureCli {
            message: "the output has no `expires_on`; update the Azure CLI to 2.54 or newer".into(),
        })?;
    Ok(ExpiringToken {
        token: SecretString::from(parsed.access_token),
        expires_on,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_read_from_numbers_and_strings() {
        let parsed: ManagedIdentityResponse = serde_json::from_str(
            r#"{"access_token":"t","expires_on":"1700000000","expires_in":3599}"#,
        )
        .unwrap();
        assert_eq!(parsed.expires_on.unwrap().get(), Some(1_700_000_000));
        assert_eq!(parsed.expires_in.unwrap().get(), Some(3599));
    }

    #[test]
    fn debug_never_shows_the_header_secret() {
        let endpoint = ManagedIdentityEndpoint::AppService {
            url: Url::parse("http://127.0.0.1:1/msi/token").unwrap(),
            header: SecretString::from("very-secret-header"),
        };
        let text = format!("{endpoint:?}");
        assert!(!text.contains("very-secret"), "{text}");
        let source = AssertionSource::GitHubActions {
            request_url: Url::parse("http://127.0.0.1:1/oidc?x=1").unwrap(),
            request_token: SecretString::from("very-secret-token"),
            audience: "api://AzureADTokenExchange".into(),
        };
        assert!(!format!("{source:?}").contains("very-secret"));
    }
}
