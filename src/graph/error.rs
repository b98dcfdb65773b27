//! The errors of talking to Graph and its token endpoint, and the one place that turns a
//! response into one of them.

use reqwest::StatusCode;
use serde::Deserialize;

use super::auth;

/// A failure of a Graph call. Nothing here carries a token or a secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Graph answered with an error body.
    #[error(transparent)]
    Api(Box<ApiError>),
    /// A write was (maybe) sent but no clear answer came back: the tenant may or may not have
    /// changed. Read the object's state before doing anything else.
    #[error(
        "the outcome of {method} {path} is unknown ({reason}); the change may or may not have been made"
    )]
    OutcomeUnknown {
        method: String,
        path: String,
        reason: String,
        /// The last answer's status, if one came (a 5xx, or a 2xx whose body was unreadable).
        status: Option<u16>,
        request_id: Option<String>,
        client_request_id: String,
    },
    /// A read failed on the network after every retry.
    #[error("cannot reach Graph for {method} {path}: {reason}")]
    Transport {
        method: String,
        path: String,
        reason: String,
    },
    /// A URL (typically an `@odata.nextLink`) points away from the configured Graph host; the
    /// token is never sent there.
    #[error(
        "refusing to send the token to {found}: only the configured Graph host {expected} gets it"
    )]
    ForeignHost { found: String, expected: String },
    /// The body did not have the shape Graph documents.
    #[error(
        "unexpected response to {method} {path} at `{field}`: {message} (request-id {request_id})"
    )]
    Decode {
        method: String,
        path: String,
        field: String,
        message: String,
        request_id: String,
    },
    #[error(transparent)]
    Auth(#[from] auth::Error),
    /// The HTTP client could not be built (its TLS back end did not start).
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
    /// A retry the caller's guard withheld ([`GraphClient::with_retry_guard`](super::GraphClient::with_retry_guard)):
    /// the request was not sent again. The failed attempt (`last`) left the tenant unchanged: a
    /// write is retried only after answers that say so (a 429, a connection never made).
    #[error("{method} {path} was not sent again ({reason}); its last attempt: {last}")]
    Withheld {
        method: String,
        path: String,
        reason: String,
        last: String,
    },
}

impl Error {
    /// Whether the failure is about the caller, not the object asked about: no token, a token
    /// refused (401) or a missing permission (403), a link to a foreign host. Every other
    /// request would fail the same way.
    pub fn is_about_the_caller(&self) -> bool {
        match self {
            Self::Auth(_) | Self::ForeignHost { .. } => true,
            Self::Api(api) => matches!(api.status, 401 | 403),
            _ => false,
        }
    }

    /// Whether the service refuses invitations for the whole tenant (the abuse block, a quota).
    pub fn tenant_refusal(&self) -> Option<super::invitations::TenantRefusal> {
        match self {
            Self::Api(api) => super::invitations::TenantRefusal::of(api),
            _ => None,
        }
    }

    /// Whether this is the replication-lag refusal of a write right after an invitation: 400
    /// "Not a valid reference update." (NOTES §2.x, observed). It passes after minutes.
    pub fn is_replication_lag(&self) -> bool {
        matches!(self, Self::Api(api) if api.status == 400
            && api.message.to_ascii_lowercase().contains("not a valid reference update"))
    }

    /// The HTTP status Graph answered with, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api(api) => Some(api.status),
            _ => None,
        }
    }
}

/// Graph's error body with the identifiers support needs to find the request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "Graph refused {method} {path}: {status} {code}: {message} (request-id {request_id}, client-request-id {client_request_id})"
)]
pub struct ApiError {
    pub method: String,
    /// Path and query without the host; never contains a token.
    pub path: String,
    pub status: u16,
    /// `error.code`, for example `Authorization_RequestDenied`.
    pub code: String,
    /// `error.message` as Graph wrote it.
    pub message: String,
    pub request_id: String,
    pub client_request_id: String,
    /// `Retry-After` of a 429/503, if any.
    pub retry_after: Option<std::time::Duration>,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    code: Option<String>,
    message: Option<String>,
    inner_error: Option<InnerError>,
}

#[derive(Deserialize)]
struct InnerError {
    #[serde(rename = "request-id")]
    request_id: Option<String>,
}

/// Builds the typed error for a non-success response from its status, headers and body.
/// Tolerant: a body that is not Graph's error JSON still gives a useful message.
pub(crate) fn api_error(
    method: &str,
    path: &str,
    status: StatusCode,
    header_request_id: Option<String>,
    client_request_id: &str,
    retry_after: Option<std::time::Duration>,
    body: &[u8],
) -> ApiError {
    let parsed = serde_json::from_slice::<ErrorEnvelope>(body).ok();
    let (code, message, inner_request_id) = match parsed {
        Some(ErrorEnvelope { error }) => (
            error.code,
            error.message,
            error.inner_error.and_then(|i| i.request_id),
        ),
        None => (None, None, None),
    };
    let fallback_message = || {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() {
            status.canonical_reason().unwrap_or("no message").to_owned()
        } else {
            text.chars().take(300).collect()
        }
    };
    ApiError {
        method: method.to_owned(),
        path: path.to_owned(),
        status: status.as_u16(),
        code: code.unwrap_or_else(|| format!("Http{}", status.as_u16())),
        message: message.unwrap_or_else(fallback_message),
        request_id: header_request_id
            .or(inner_request_id)
            .unwrap_or_else(|| "none".to_owned()),
        client_request_id: client_request_id.to_owned(),
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_error_bodies_are_parsed_with_their_ids() {
        let body = br#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation.","innerError":{"date":"2026-11-21T08:00:00","request-id":"inner-id","client-request-id":"c-1"}}}"#;
        let err = api_error(
            "GET",
            "/v1.0/users",
            StatusCode::FORBIDDEN,
            None,
            "c-1",
            None,
            body,
        );
        assert_eq!(err.code, "Authorization_RequestDenied");
        assert_eq!(err.request_id, "inner-id");
        let text = err.to_string();
        assert!(text.contains("403 Authorization_RequestDenied"), "{text}");
        assert!(text.contains("client-request-id c-1"), "{text}");
    }

    #[test]
    fn the_replication_lag_refusal_is_told_by_status_and_message() {
        let refusal = |status: StatusCode, message: &str| {
            let body =
                serde_json::json!({"error": {"code": "Request_BadRequest", "message": message}});
            Error::Api(Box::new(api_error(
                "PATCH",
                "/v1.0/users/1",
                status,
                None,
                "c",
                None,
                body.to_string().as_bytes(),
            )))
        };
        assert!(
            refusal(StatusCode::BAD_REQUEST, "Not a valid reference update.").is_replication_lag()
        );
        assert!(
            !refusal(
                StatusCode::BAD_REQUEST,
                "Invalid value specified for property 'userType'"
            )
            .is_replication_lag()
        );
        assert!(
            !refusal(StatusCode::FORBIDDEN, "Not a valid reference update.").is_replication_lag()
        );
    }

    #[test]
    fn the_header_request_id_wins_and_odd_bodies_still_explain() {
        let err = api_error(
            "POST",
            "/v1.0/invitations",
            StatusCode::BAD_GATEWAY,
            Some("hdr-id".into()),
            "c-2",
            None,
            b"<html>upstream</html>",
        );
        assert_eq!(err.request_id, "hdr-id");
        assert_eq!(err.code, "Http502");
        assert_eq!(err.message, "<html>upstream</html>");
        let empty = api_error(
            "GET",
            "/x",
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "c",
            None,
            b"",
        );
        assert_eq!(empty.message, "Service Unavailable");
    }
}
