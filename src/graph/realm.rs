//! Home-realm discovery (NOTES.md §6) on the login host: asks the undocumented user-realm
//! endpoint (`GET {login}/common/userrealm/{user@domain}?api-version=1.0`, the one MSAL uses)
//! whether an email domain is homed in some Entra ID tenant, read as a [`RealmAnswer`]; and
//! the documented OIDC metadata (`GET {login}/{domain}/v2.0/.well-known/openid-configuration`,
//! where `{tenant}` may be a tenant's domain name) for the id of the tenant that holds a domain,
//! read from its `issuer` ([`RealmClient::tenant_of`]; the partner pre-flight needs it).
//!
//! It owns the requests, their retries and the tolerant reading of the answers. Both endpoints
//! are anonymous: this client never sends the Graph bearer token (it does not go through
//! [`GraphClient`](super::GraphClient)), only a synthetic address or the domain asked about.
//! The answer is advisory: every failure is a [`RealmError`] the caller records, never a reason
//! to stop. It must not touch the store or decide what an answer means for a user.

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use serde::Deserialize;
use time::OffsetDateTime;
use url::Url;
use uuid::Uuid;

use super::client::as_base;
use super::retry::{self, Attempt, AttemptFailure, Idempotency, RetryPolicy, Stop, retry_after};
use crate::domain::{RealmAnswer, RealmKind, RealmRecord};

/// The local part of the address asked about: only the domain matters to the endpoint.
pub const PROBE_LOCAL_PART: &str = "realm-probe";

/// The endpoint's version whose field set NOTES.md §6 describes.
const API_VERSION: &str = "1.0";

/// Why a realm lookup gave no answer. The text is what the realm cache stores; it never
/// holds a secret (the request carries none).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RealmError {
    /// The domain is not a DNS name; nothing was sent.
    #[error("`{domain}` is not a valid domain name: {reason}")]
    InvalidDomain {
        domain: String,
        reason: &'static str,
    },
    /// The login host has no realm discovery (404; MSAL reads it the same way).
    #[error("the login host has no user-realm discovery (404)")]
    NotFound,
    /// A final non-success status (after retrying those that may be retried).
    #[error("the login host answered {status}{code} after {attempts} attempt(s)", code = code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Status {
        status: u16,
        /// The `error` field of an identity-platform error body, when there is one.
        code: Option<String>,
        attempts: u32,
    },
    /// The service asked to wait longer than the retry policy's longest wait: given up rather
    /// than holding up the run for advisory data.
    #[error("the login host asked to wait {} s (status {status}); not waited for", wait.as_secs())]
    WaitTooLong { status: u16, wait: Duration },
    /// No answer after every retry (connection refused, timeout, reset).
    #[error("cannot reach the login host after {attempts} attempt(s): {reason}")]
    Transport { reason: String, attempts: u32 },
    /// A successful answer without a readable `account_type`.
    #[error("unreadable user-realm answer: {0}")]
    Decode(String),
}

/// A client for the user-realm endpoint on the login host. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RealmClient {
    http: reqwest::Client,
    /// `{login}/common/userrealm/`
    base: Url,
    /// `{login}/`
    login: Url,
    retry: RetryPolicy,
}

impl RealmClient {
    /// Built by [`Connection::realm_client`](super::Connection::realm_client): `http` is its
    /// client (our User-Agent, timeouts, no redirects); `login_url` is the login host, for
    /// example `https://login.microsoftonline.com` or the simulator's
    /// `http://127.0.0.1:P/login`.
    pub(super) fn new(http: reqwest::Client, login_url: &Url, retry: RetryPolicy) -> Self {
        let login = as_base(login_url);
        let base = login
            .join("common/userrealm/")
            .expect("a constant relative path joins");
        Self {
            http,
            base,
            login,
            retry,
        }
    }

    /// The OIDC metadata URL of the tenant that holds `ascii_domain` (validated, ASCII).
    pub fn openid_url_for(&self, ascii_domain: &str) -> Url {
        let mut url = self.login.clone();
        url.path_segments_mut()
            .expect("an http(s) login URL has path segments")
            .pop_if_empty()
            .extend([ascii_domain, "v2.0", ".well-known", "openid-configuration"]);
        url
    }

    /// The id of the Entra tenant that holds `domain`, from its OIDC metadata; `None` when
    /// the login host says no tenant has it (400 `invalid_tenant`, AADSTS90002). Retries like
    /// [`lookup`](Self::lookup); an invalid domain is refused without a request.
    #[tracing::instrument(skip_all, fields(domain = %domain))]
    pub async fn tenant_of(&self, domain: &str) -> Result<Option<Uuid>, RealmError> {
        let ascii = ascii_domain(domain)?;
        let url = &self.openid_url_for(&ascii);
        self.fetch(url, |status, body| {
            if status.is_success() {
                return Some(parse_issuer_tenant(body).map(Some));
            }
            (status == StatusCode::BAD_REQUEST
                && error_code(body).as_deref() == Some(NO_SUCH_TENANT))
            .then_some(Ok(None))
        })
        .await
    }

    /// The URL asked for `domain` (already validated and in ASCII form).
    pub fn url_for(&self, ascii_domain: &str) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("an http(s) login URL has path segments")
            .pop_if_empty()
            .push(&format!("{PROBE_LOCAL_PART}@{ascii_domain}"));
        url.query_pairs_mut()
            .append_pair("api-version", API_VERSION);
        url
    }

    /// Asks the realm of `domain`, retrying 429, 5xx and connection failures per the policy.
    /// An invalid domain is refused without a request.
    #[tracing::instrument(skip_all, fields(domain = %domain))]
    pub async fn lookup(&self, domain: &str) -> Result<RealmAnswer, RealmError> {
        let ascii = ascii_domain(domain)?;
        let url = &self.url_for(&ascii);
        self.fetch(url, |status, body| {
            if status.is_success() {
                return Some(parse_answer(body));
            }
            (status == StatusCode::NOT_FOUND).then_some(Err(RealmError::NotFound))
        })
        .await
    }

    /// GETs `url` with retries; `read` gives the outcome of a final answer (`None`: a failed
    /// status, retried per the policy where it may be).
    async fn fetch<T>(
        &self,
        url: &Url,
        read: impl Fn(StatusCode, &[u8]) -> Option<Result<T, RealmError>> + Copy,
    ) -> Result<T, RealmError> {
        retry::drive(
            &self.retry,
            Idempotency::Read,
            move |progress| self.attempt(url, progress.attempt, read),
            |retry| {
                // Only the service's Retry-After can exceed the policy's longest wait.
                if retry.wait > self.retry.max_delay {
                    let status = match retry.failure {
                        AttemptFailure::Status(status) => status,
                        _ => 0,
                    };
                    return Err(RealmError::WaitTooLong {
                        status,
                        wait: retry.wait,
                    });
                }
                tracing::debug!(attempt = retry.attempt, failure = %retry.error, wait_ms = retry.wait.as_millis(), "retrying a login-host lookup");
                Ok(())
            },
        )
        .await
        .map_err(Stop::into_error)
    }

    /// [`lookup`](Self::lookup) as a record for the realm cache, dated `checked_at`.
    pub async fn record(&self, domain: &str, checked_at: OffsetDateTime) -> RealmRecord {
        RealmRecord {
            domain: domain.trim().to_lowercase(),
            outcome: self.lookup(domain).await.map_err(|e| e.to_string()),
            checked_at,
        }
    }

    /// Attempt number `attempts` (which the failure texts show).
    async fn attempt<T>(
        &self,
        url: &Url,
        attempts: u32,
        read: impl Fn(StatusCode, &[u8]) -> Option<Result<T, RealmError>>,
    ) -> Attempt<T, RealmError> {
        let transport = |failure, err: &reqwest::Error| Attempt::Failed {
            failure,
            retry_after: None,
            error: RealmError::Transport {
                reason: super::auth::error_chain(err),
                attempts,
            },
        };
        // Deliberately no `Authorization`: the endpoint is anonymous and the token is Graph's.
        let sent = self
            .http
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .header("client-request-id", uuid::Uuid::new_v4().to_string())
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(err) if err.is_connect() => return transport(AttemptFailure::ConnectFailed, &err),
            Err(err) => return transport(AttemptFailure::NoAnswer, &err),
        };
        let status = response.status();
        let wait_hint = retry_after(response.headers(), SystemTime::now());
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(err) => return transport(AttemptFailure::NoAnswer, &err),
        };
        if let Some(outcome) = read(status, &body) {
            return Attempt::Done(outcome);
        }
        Attempt::Failed {
            failure: AttemptFailure::Status(status.as_u16()),
            retry_after: wait_hint,
            error: RealmError::Status {
                status: status.as_u16(),
                code: error_code(&body),
                attempts,
            },
        }
    }
}

/// Checks that `domain` is a DNS name (letters, digits and hyphens in dot-separated labels, at
/// least two labels, at most 253 characters; internationalised names in their `xn--` form) and
/// returns its lower-case ASCII form.
pub fn ascii_domain(domain: &str) -> Result<String, RealmError> {
    let invalid = |reason| RealmError::InvalidDomain {
        domain: domain.chars().take(100).collect(),
        reason,
    };
    let trimmed = domain.trim();
    if trimmed.is_empty() {
        return Err(invalid("it is empty"));
    }
    if trimmed.contains(['@', '/', '\\', '?', '#', '%', ':'])
        || trimmed.contains(char::is_whitespace)
    {
        return Err(invalid("it contains characters a domain cannot have"));
    }
    let ascii = match url::Host::parse(trimmed) {
        Ok(url::Host::Domain(ascii)) => ascii,
        Ok(_) => return Err(invalid("it is an IP address")),
        Err(_) => return Err(invalid("it is not a host name")),
    };
    if ascii.len() > 253 {
        return Err(invalid("it is longer than 253 characters"));
    }
    let labels: Vec<&str> = ascii.split('.').collect();
    if labels.len() < 2 {
        return Err(invalid("it has a single label"));
    }
    for label in &labels {
        if label.is_empty() || label.len() > 63 {
            return Err(invalid("a label is empty or longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(invalid(
                "a label has a character other than a letter, digit or hyphen",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(invalid("a label starts or ends with a hyphen"));
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(invalid("the last label is numeric"));
    }
    Ok(ascii.to_ascii_lowercase())
}

/// The fields of a version 1.0 answer the tool reads; everything else is ignored.
#[derive(Deserialize)]
struct UserRealm {
    account_type: Option<String>,
    cloud_instance_name: Option<String>,
    federation_brand_name: Option<String>,
}

/// Reads a successful answer. `account_type` is required; an unfamiliar value is `Unknown`.
pub fn parse_answer(body: &[u8]) -> Result<RealmAnswer, RealmError> {
    let realm: UserRealm =
        serde_json::from_slice(body).map_err(|e| RealmError::Decode(e.to_string()))?;
    let account_type = realm
        .account_type
        .ok_or_else(|| RealmError::Decode("no `account_type`".to_owned()))?;
    let kind = if account_type.eq_ignore_ascii_case("Managed") {
        RealmKind::Managed
    } else if account_type.eq_ignore_ascii_case("Federated") {
        RealmKind::Federated
    } else {
        if !account_type.eq_ignore_ascii_case("Unknown") {
            tracing::debug!(account_type = %account_type, "unfamiliar user-realm account_type; read as Unknown");
        }
        RealmKind::Unknown
    };
    let non_empty = |value: Option<String>| value.filter(|v| !v.trim().is_empty());
    Ok(RealmAnswer {
        kind,
        cloud_instance: non_empty(realm.cloud_instance_name),
        federation_brand: non_empty(realm.federation_brand_name),
    })
}

/// The `error` of the identity platform's answer for a tenant name no tenant has (AADSTS90002).
const NO_SUCH_TENANT: &str = "invalid_tenant";

/// The tenant id in an OIDC metadata document: the first path segment of its `issuer`
/// (`https://login.microsoftonline.com/{tenant id}/v2.0`) that is a GUID.
pub fn parse_issuer_tenant(body: &[u8]) -> Result<Uuid, RealmError> {
    #[derive(Deserialize)]
    struct Metadata {
        issuer: Option<String>,
    }
    let metadata: Metadata =
        serde_json::from_slice(body).map_err(|e| RealmError::Decode(e.to_string()))?;
    let issuer = metadata
        .issuer
        .ok_or_else(|| RealmError::Decode("no `issuer`".to_owned()))?;
    Url::parse(&issuer)
        .ok()
        .and_then(|url| {
            url.path_segments()?
                .find_map(|segment| Uuid::parse_str(segment).ok())
        })
        .ok_or_else(|| {
            RealmError::Decode(format!(
                "the issuer `{}` names no tenant id",
                issuer.chars().take(120).collect::<String>()
            ))
        })
}

/// The `error` code of an identity-platform error body (`{"error": "invalid_request", ..}`).
fn error_code(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: Option<serde_json::Value>,
    }
    let error = serde_json::from_slice::<ErrorBody>(body).ok()?.error?;
    let code = match error {
        serde_json::Value::String(code) => code,
        // Graph-shaped bodies nest it: {"error": {"code": ..}}.
        serde_json::Value::Object(map) => map.get("code")?.as_str()?.to_owned(),
        _ => return None,
    };
    let code: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .take(80)
        .collect();
    (!code.is_empty()).then_some(code)
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case::plain("fabrikam.com", "fabrikam.com")]
    #[case::upper_and_spaces(" Fabrikam.COM ", "fabrikam.com")]
    #[case::subdomain("mail.partners.fabrikam.co.uk", "mail.partners.fabrikam.co.uk")]
    #[case::hyphen_and_digits("x-1.example", "x-1.example")]
    #[case::idn("bücher.de", "xn--bcher-kva.de")]
    fn valid_domains(#[case] input: &str, #[case] expected: &str) {
        assert_eq!(ascii_domain(input).unwrap(), expected);
    }

    #[rstest]
    #[case::empty("")]
    #[case::address("someone@fabrikam.com")]
    #[case::single_label("localhost")]
    #[case::space("fab rikam.com")]
    #[case::path("fabrikam.com/x")]
    #[case::query("fabrikam.com?x=1")]
    #[case::empty_label("fabrikam..com")]
    #[case::leading_dot(".fabrikam.com")]
    #[case::leading_hyphen("-fabrikam.com")]
    #[case::trailing_hyphen("fabrikam-.com")]
    #[case::underscore("_dmarc.fabrikam.com")]
    #[case::ipv4("10.0.0.1")]
    #[case::ipv6("[::1]")]
    #[case::port("fabrikam.com:443")]
    #[case::long_label("a234567890123456789012345678901234567890123456789012345678901234.com")]
    fn invalid_domains(#[case] input: &str) {
        let err = ascii_domain(input).unwrap_err();
        assert!(matches!(err, RealmError::InvalidDomain { .. }), "{err}");
    }

    #[test]
    fn the_url_is_on_the_login_host_with_a_probe_address() {
        for (login, expected) in [
            (
                "https://login.microsoftonline.com",
                "https://login.microsoftonline.com/common/userrealm/realm-probe@fabrikam.com?api-version=1.0",
            ),
            (
                "http://127.0.0.1:8950/login",
                "http://127.0.0.1:8950/login/common/userrealm/realm-probe@fabrikam.com?api-version=1.0",
            ),
            (
                "http://127.0.0.1:8950/login/",
                "http://127.0.0.1:8950/login/common/userrealm/realm-probe@fabrikam.com?api-version=1.0",
            ),
        ] {
            let login = Url::parse(login).unwrap();
            let client = super::super::Connection::new(login.clone(), login)
                .realm_client()
                .unwrap();
            assert_eq!(client.url_for("fabrikam.com").as_str(), expected);
        }
    }

    #[rstest]
    #[case::managed(
        r#"{"ver":"1.0","account_type":"Managed","domain_name":"fabrikam.com","cloud_instance_name":"microsoftonline.com","cloud_audience_urn":"urn:federation:MicrosoftOnline"}"#,
        RealmKind::Managed,
        Some("microsoftonline.com"),
        None
    )]
    #[case::federated(
        r#"{"ver":"1.0","account_type":"Federated","domain_name":"tailspintoys.com","federation_protocol":"WSTrust","federation_brand_name":"Tailspin Toys","cloud_instance_name":"microsoftonline.com"}"#,
        RealmKind::Federated,
        Some("microsoftonline.com"),
        Some("Tailspin Toys")
    )]
    #[case::unknown(
        r#"{"ver":"1.0","account_type":"Unknown","cloud_instance_name":"microsoftonline.com"}"#,
        RealmKind::Unknown,
        Some("microsoftonline.com"),
        None
    )]
    #[case::lower_case(r#"{"account_type":"managed"}"#, RealmKind::Managed, None, None)]
    #[case::unfamiliar(
        r#"{"account_type":"ManagedV2","cloud_instance_name":""}"#,
        RealmKind::Unknown,
        None,
        None
    )]
    fn answers_are_read_tolerantly(
        #[case] body: &str,
        #[case] kind: RealmKind,
        #[case] cloud_instance: Option<&str>,
        #[case] federation_brand: Option<&str>,
    ) {
        assert_eq!(
            parse_answer(body.as_bytes()).unwrap(),
            RealmAnswer {
                kind,
                cloud_instance: cloud_instance.map(str::to_owned),
                federation_brand: federation_brand.map(str::to_owned),
            }
        );
    }

    #[rstest]
    #[case::not_json("<html>sign in</html>")]
    #[case::no_account_type(r#"{"ver":"1.0","NameSpaceType":"Managed"}"#)]
    #[case::wrong_type(r#"{"account_type":3}"#)]
    fn unreadable_answers_are_decode_errors(#[case] body: &str) {
        let err = parse_answer(body.as_bytes()).unwrap_err();
        assert!(matches!(err, RealmError::Decode(_)), "{err}");
    }

    #[test]
    fn error_codes_are_taken_from_either_body_shape_and_sanitised() {
        assert_eq!(
            error_code(br#"{"error":"invalid_request","error_description":"AADSTS..."}"#),
            Some("invalid_request".to_owned())
        );
        assert_eq!(
            error_code(br#"{"error":{"code":"ServiceUnavailable","message":"x"}}"#),
            Some("ServiceUnavailable".to_owned())
        );
        assert_eq!(error_code(b"<html/>"), None);
        assert_eq!(
            error_code(br#"{"error":"bad\nline <b>"}"#),
            Some("badlineb".to_owned())
        );
    }

    #[test]
    fn the_tenant_id_is_read_from_the_issuer() {
        let tenant = "6babcaad-604b-40ac-a9d7-9fd97c0b779f";
        for issuer in [
            format!("https://login.microsoftonline.com/{tenant}/v2.0"),
            format!("https://sts.windows.net/{tenant}/"),
            format!("http://127.0.0.1:8950/login/{tenant}/v2.0"),
        ] {
            let body = serde_json::json!({"issuer": issuer, "token_endpoint": "x"}).to_string();
            assert_eq!(
                parse_issuer_tenant(body.as_bytes()).unwrap().to_string(),
                tenant,
                "{issuer}"
            );
        }
        for body in [
            r#"{"token_endpoint":"x"}"#,
            r#"{"issuer":"https://login.microsoftonline.com/{tenantid}/v2.0"}"#,
            "<html>",
        ] {
            let err = parse_issuer_tenant(body.as_bytes()).unwrap_err();
            assert!(matches!(err, RealmError::Decode(_)), "{body}: {err}");
        }
    }

    #[test]
    fn the_openid_metadata_url_is_on_the_login_host_under_the_domain() {
        for (login, expected) in [
            (
                "https://login.microsoftonline.com",
                "https://login.microsoftonline.com/fabrikam.com/v2.0/.well-known/openid-configuration",
            ),
            (
                "http://127.0.0.1:8950/login/",
                "http://127.0.0.1:8950/login/fabrikam.com/v2.0/.well-known/openid-configuration",
            ),
        ] {
            let login = Url::parse(login).unwrap();
            let client = super::super::Connection::new(login.clone(), login)
                .realm_client()
                .unwrap();
            assert_eq!(client.openid_url_for("fabrikam.com").as_str(), expected);
        }
    }

    #[test]
    fn failure_texts_say_what_happened() {
        let status = RealmError::Status {
            status: 503,
            code: None,
            attempts: 3,
        };
        assert_eq!(
            status.to_string(),
            "the login host answered 503 after 3 attempt(s)"
        );
        let coded = RealmError::Status {
            status: 400,
            code: Some("invalid_request".into()),
            attempts: 1,
        };
        assert_eq!(
            coded.to_string(),
            "the login host answered 400 invalid_request after 1 attempt(s)"
        );
    }
}
