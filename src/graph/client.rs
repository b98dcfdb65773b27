//! The one Graph HTTP client: every request goes through `GraphClient::execute`, which adds
//! the token, a `client-request-id` and the throttle priority, retries what may be retried,
//! refreshes the token after a 401 (at most twice per request), and turns every answer into a typed result.
//!
//! The bearer token is only ever sent to the configured Graph origin: any other URL (for
//! example a doctored `@odata.nextLink`) is refused before a byte is sent, and redirects are
//! never followed. A proxy in front of Graph must therefore rewrite the `@odata.nextLink`s it
//! passes on to its own origin.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use futures_util::Stream;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use super::auth::TokenProvider;
use super::error::{Error, api_error};
use super::retry::{
    self, Attempt, AttemptFailure, Idempotency, Progress, RetryPolicy, Stop, retry_after,
};

/// Fresh tokens tried per request after a 401. More than one: a request that waits (say, on a
/// `Retry-After`) can see its refreshed token revoked too (continuous access evaluation).
const MAX_TOKEN_REFRESHES: u32 = 2;

/// `x-ms-throttle-priority`: bulk reads go `low` so interactive work in the tenant goes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    Normal,
    Low,
}

/// What every answer tells about itself, for the event log and diagnostics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResponseMeta {
    pub status: u16,
    pub request_id: Option<String>,
    pub client_request_id: String,
    /// Resource units the request cost (`x-ms-resource-unit`).
    pub resource_units: Option<u32>,
    /// How close the app is to its limit, 0.8–1.8, sent only above 80 % (`x-ms-throttle-limit-percentage`).
    pub throttle_limit_percentage: Option<f32>,
    /// Attempts it took, the successful one included.
    pub attempts: u32,
    /// Time spent waiting between attempts.
    pub waited: Duration,
    pub elapsed: Duration,
}

/// A decoded answer with its metadata.
#[derive(Clone, Debug)]
pub struct Response<T> {
    pub body: T,
    pub meta: ResponseMeta,
}

/// Called once per retry, so callers can count and show throttling.
pub type RetryObserver = Arc<dyn Fn(&RetryEvent) + Send + Sync>;

/// Asked before every retry (before the [`RetryObserver`] hears of it) and again right before
/// every attempt is sent, the first included: an `Err` withholds it, and the request ends with
/// [`Error::Withheld`]. So a run that stopped sending lets nothing more out, not even a retry
/// that was waiting out a `Retry-After` or fetching a fresh token when the run stopped.
pub type RetryGuard = Arc<dyn Fn(&RetryEvent) -> Result<(), String> + Send + Sync>;

/// Asked right before a retry is sent (after its `Retry-After`): a future to wait for first,
/// for the requests it paces. So retries share the caller's pace (an invitation's retry takes
/// a slot of the invitation pacer) instead of arriving all together when a pause ends.
pub type RetryPacing =
    Arc<dyn Fn(&RetryEvent) -> Option<futures_util::future::BoxFuture<'static, ()>> + Send + Sync>;

/// One retry about to happen.
#[derive(Clone, Debug)]
pub struct RetryEvent {
    pub method: String,
    pub path: String,
    pub attempt: u32,
    /// The status that failed, when the service answered (429, 503, …).
    pub status: Option<u16>,
    pub failure: String,
    pub wait: Duration,
    /// How long the failed attempt took, from leaving to its answer (zero before an attempt).
    pub answered_after: Duration,
}

/// The Graph client. Cheap to share behind an `Arc`.
pub struct GraphClient {
    http: reqwest::Client,
    origin: url::Origin,
    api_base: Url,
    tokens: TokenProvider,
    retry: RetryPolicy,
    low_priority_reads: bool,
    observer: Option<RetryObserver>,
    retries: RetryLog,
    guard: Option<RetryGuard>,
    pacing: Option<RetryPacing>,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient")
            .field("api_base", &self.api_base.as_str())
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

/// Adds a trailing slash so that `join` appends instead of replacing the last segment.
pub(crate) fn as_base(url: &Url) -> Url {
    let mut url = url.clone();
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

impl GraphClient {
    /// Built by [`Connection::graph_client`](super::Connection::graph_client) only.
    pub(super) fn new(
        http: reqwest::Client,
        tokens: TokenProvider,
        graph_url: &Url,
        retry: RetryPolicy,
        low_priority_reads: bool,
    ) -> Self {
        let root = as_base(graph_url);
        Self {
            http,
            origin: root.origin(),
            api_base: root.join("v1.0/").expect("a constant relative path joins"),
            tokens,
            retry,
            low_priority_reads,
            observer: None,
            retries: RetryLog::default(),
            guard: None,
            pacing: None,
        }
    }

    /// Calls `observer` before every retry (for progress displays).
    #[must_use]
    pub fn with_retry_observer(mut self, observer: RetryObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Asks `guard` before every retry; an `Err` (why) withholds it.
    #[must_use]
    pub fn with_retry_guard(mut self, guard: RetryGuard) -> Self {
        self.guard = Some(guard);
        self
    }

    /// Waits for what `pacing` returns before sending a retry.
    #[must_use]
    pub fn with_retry_pacing(mut self, pacing: RetryPacing) -> Self {
        self.pacing = Some(pacing);
        self
    }

    pub fn tokens(&self) -> &TokenProvider {
        &self.tokens
    }

    /// The absolute URL of a v1.0 path such as `users?$top=999`.
    pub fn url(&self, path_and_query: &str) -> Url {
        self.api_base
            .join(path_and_query.trim_start_matches('/'))
            .expect("a relative Graph path joins")
    }

    /// GETs a JSON document.
    pub async fn get<T: DeserializeOwned>(
        &self,
        url: Url,
        priority: Priority,
        extra_headers: &[(&'static str, &'static str)],
    ) -> Result<Response<T>, Error> {
        let raw = self
            .execute(Method::GET, url, None, priority, extra_headers)
            .await?;
        decode(raw)
    }

    /// Sends a write (POST/PATCH) with a JSON body. Retried only where the service cannot
    /// have acted; otherwise an unclear outcome is [`Error::OutcomeUnknown`].
    pub async fn write<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<Response<Option<T>>, Error> {
        self.send_write(method, path, body, Idempotency::Write)
            .await
    }

    /// Sends a write that may be repeated without changing the tenant twice (a PATCH setting
    /// fixed values), so a 5xx or a lost answer is retried like a read
    /// ([`Idempotency::Repeatable`]). Never for a write that creates something.
    pub async fn write_repeatable<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<Response<Option<T>>, Error> {
        debug_assert!(method != Method::POST, "a POST creates: never repeatable");
        self.send_write(method, path, body, Idempotency::Repeatable)
            .await
    }

    async fn send_write<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
        idempotency: Idempotency,
    ) -> Result<Response<Option<T>>, Error> {
        let body = serde_json::to_vec(body).expect("request bodies serialize");
        let raw = self
            .execute_as(
                method,
                self.url(path),
                Some(body),
                Priority::Normal,
                &[],
                idempotency,
            )
            .await?;
        if raw.body.is_empty() || raw.meta.status == StatusCode::NO_CONTENT.as_u16() {
            return Ok(Response {
                body: None,
                meta: raw.meta,
            });
        }
        let (method, path, meta) = (raw.method.clone(), raw.path.clone(), raw.meta.clone());
        match decode(raw) {
            Ok(response) => Ok(Response {
                body: Some(response.body),
                meta: response.meta,
            }),
            // The service accepted the write; only its answer is unreadable. Calling that a
            // failure would invite a resend, so it is an unknown outcome to reconcile.
            Err(err) => Err(Error::OutcomeUnknown {
                method,
                path,
                reason: format!("the service accepted it but its answer is unreadable: {err}"),
                status: Some(meta.status),
                request_id: meta.request_id,
                client_request_id: meta.client_request_id,
            }),
        }
    }

    /// Follows `@odata.nextLink` from `first`, yielding each page's items. Each link is used
    /// exactly as given (it carries the skip token), after checking it points at Graph.
    pub fn pages<T: DeserializeOwned + Send + 'static>(
        &self,
        first: Url,
        extra_headers: &'static [(&'static str, &'static str)],
    ) -> impl Stream<Item = Result<Page<T>, Error>> + Send + '_ {
        futures_util::stream::try_unfold(Some(first), move |next| async move {
            let Some(url) = next else { return Ok(None) };
            let response: Response<PageBody<T>> =
                self.get(url, self.read_priority(), extra_headers).await?;
            let next = response
                .body
                .next_link
                .as_deref()
                .map(|link| {
                    Url::parse(link).map_err(|e| Error::Decode {
                        method: "GET".into(),
                        path: "@odata.nextLink".into(),
                        field: "@odata.nextLink".into(),
                        message: e.to_string(),
                        request_id: response.meta.request_id.clone().unwrap_or_default(),
                    })
                })
                .transpose()?;
            let page = Page {
                items: response.body.value,
                meta: response.meta,
            };
            Ok(Some((page, next)))
        })
    }

    pub(super) fn read_priority(&self) -> Priority {
        if self.low_priority_reads {
            Priority::Low
        } else {
            Priority::Normal
        }
    }

    /// Sends one logical request, with retries and at most two token refreshes after 401s.
    /// A GET is a read, anything else a write that must not be repeated blindly.
    async fn execute(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
        priority: Priority,
        extra_headers: &[(&'static str, &'static str)],
    ) -> Result<Raw, Error> {
        let idempotency = if method == Method::GET {
            Idempotency::Read
        } else {
            Idempotency::Write
        };
        self.execute_as(method, url, body, priority, extra_headers, idempotency)
            .await
    }

    /// [`Self::execute`], retried as `idempotency` says.
    async fn execute_as(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
        priority: Priority,
        extra_headers: &[(&'static str, &'static str)],
        idempotency: Idempotency,
    ) -> Result<Raw, Error> {
        if url.origin() != self.origin {
            return Err(Error::ForeignHost {
                found: url.origin().ascii_serialization(),
                expected: self.origin.ascii_serialization(),
            });
        }
        let request = Request {
            idempotency,
            path: path_of(&url),
            method,
            url,
            body,
            priority,
            extra_headers,
            client_request_id: uuid::Uuid::new_v4().to_string(),
            started: Instant::now(),
            refreshes: AtomicU32::new(0),
            last_sent: std::sync::Mutex::new(Instant::now()),
        };
        let request = &request;
        let result = retry::drive(
            &self.retry,
            request.idempotency,
            move |progress| self.attempt(request, progress),
            |retry| self.announce_retry(request, retry.attempt, retry.error, retry.wait),
        )
        .await
        .map_err(|stop| match stop {
            Stop::Failed(error) => error,
            Stop::OutcomeUnknown(error) => request.outcome_unknown(&error),
        });
        log_outcome(request, &result);
        result
    }

    /// One attempt: a token (refreshed if the last answer was 401), the request, the answer.
    async fn attempt(&self, request: &Request<'_>, progress: Progress) -> Attempt<Raw, Error> {
        if progress.attempt > 1 {
            self.pace_retry(request, progress.attempt).await;
        }
        let token = match self.tokens.token().await {
            Ok(token) => token,
            Err(err) => return Attempt::Done(Err(err.into())),
        };
        // The last word before the request leaves: whatever waited (a Retry-After, a token, a
        // refresh after a 401), the guard sees the state of the run now.
        if let Err(withheld) = self.guard_allows(request, progress.attempt) {
            return Attempt::Done(Err(withheld));
        }
        let mut builder = self
            .http
            .request(request.method.clone(), request.url.clone())
            .bearer_auth(token.expose_secret())
            .header("client-request-id", &request.client_request_id)
            .header("return-client-request-id", "true");
        if request.priority == Priority::Low {
            builder = builder.header("x-ms-throttle-priority", "low");
        }
        for (name, value) in request.extra_headers {
            builder = builder.header(*name, *value);
        }
        if let Some(body) = &request.body {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let transport = |err: &reqwest::Error, failure| Attempt::Failed {
            failure,
            retry_after: None,
            error: Error::Transport {
                method: request.method.to_string(),
                path: request.path.clone(),
                reason: super::auth::error_chain(err),
            },
        };
        *request.last_sent.lock().expect("request lock") = Instant::now();
        let response = match builder.send().await {
            Ok(response) => response,
            Err(err) if err.is_connect() => return transport(&err, AttemptFailure::ConnectFailed),
            Err(err) => return transport(&err, AttemptFailure::NoAnswer),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes.to_vec(),
            Err(err) => return transport(&err, AttemptFailure::NoAnswer),
        };
        if status == StatusCode::UNAUTHORIZED {
            tracing::info!(path = %request.path, "Graph answered 401; refreshing the token");
            if let Err(err) = self.tokens.invalidate(&token).await {
                return Attempt::Done(Err(err.into()));
            }
        }
        let meta = meta(
            status,
            &headers,
            &request.client_request_id,
            progress.attempt,
            progress.waited,
            request.started,
        );
        if status.is_success() {
            return Attempt::Done(Ok(Raw {
                method: request.method.to_string(),
                path: request.path.clone(),
                body: bytes,
                meta,
            }));
        }
        if status == StatusCode::UNAUTHORIZED
            && request.refreshes.fetch_add(1, Ordering::Relaxed) < MAX_TOKEN_REFRESHES
        {
            return Attempt::Again;
        }
        log_throttle(&headers, status);
        let wait_hint = retry_after(&headers, SystemTime::now());
        let error = api_error(
            request.method.as_str(),
            &request.path,
            status,
            meta.request_id,
            &request.client_request_id,
            wait_hint,
            &bytes,
        );
        let error = Error::Api(Box::new(error));
        if error.tenant_refusal().is_some() {
            // The abuse block or a quota: every retry would meet it too, whatever its status
            // (a quota may come as a 429) or `Retry-After` say.
            return Attempt::Done(Err(error));
        }
        Attempt::Failed {
            failure: AttemptFailure::Status(status.as_u16()),
            retry_after: wait_hint,
            error,
        }
    }

    /// Waits for the slot the retry pacing gives a retry of `request`, if it paces it.
    async fn pace_retry(&self, request: &Request<'_>, attempt: u32) {
        let slot = self.pacing.as_ref().and_then(|pacing| {
            pacing(&RetryEvent {
                method: request.method.to_string(),
                path: request.path.clone(),
                attempt,
                status: None,
                failure: String::new(),
                wait: Duration::ZERO,
                answered_after: Duration::ZERO,
            })
        });
        if let Some(slot) = slot {
            slot.await;
        }
    }

    /// Asks the guard whether `request`'s attempt may be sent now.
    fn guard_allows(&self, request: &Request<'_>, attempt: u32) -> Result<(), Error> {
        let Some(guard) = &self.guard else {
            return Ok(());
        };
        let event = RetryEvent {
            method: request.method.to_string(),
            path: request.path.clone(),
            attempt,
            status: None,
            failure: String::new(),
            wait: Duration::ZERO,
            answered_after: Duration::ZERO,
        };
        guard(&event).map_err(|reason| {
            tracing::info!(method = %request.method, path = %request.path, "request withheld: {reason}");
            Error::Withheld {
                method: event.method,
                path: event.path,
                reason,
                last: String::new(),
            }
        })
    }

    /// Tells the observer about a retry about to happen, and asks the guard whether it may.
    fn announce_retry(
        &self,
        request: &Request<'_>,
        attempt: u32,
        error: &Error,
        wait: Duration,
    ) -> Result<(), Error> {
        let event = RetryEvent {
            method: request.method.to_string(),
            path: request.path.clone(),
            attempt,
            status: error.status(),
            failure: error.to_string(),
            wait,
            answered_after: request.last_sent.lock().expect("request lock").elapsed(),
        };
        if let Some(guard) = &self.guard
            && let Err(reason) = guard(&event)
        {
            tracing::info!(method = %request.method, path = %request.path, "retry withheld: {reason}");
            return Err(Error::Withheld {
                method: event.method,
                path: event.path,
                reason,
                last: event.failure,
            });
        }
        tracing::debug!(
            method = %request.method, path = %request.path, attempt, wait_ms = wait.as_millis(),
            "retrying after: {error}"
        );
        if let Some(summary) = self.retries.add(error.status(), Instant::now()) {
            tracing::warn!("{summary}");
        }
        if let Some(observer) = &self.observer {
            observer(&event);
        }
        Ok(())
    }
}

/// Logs a request's final outcome: a tenant write (anything but a read) at info, one event
/// each with what a log collector correlates on (`-v --log-format json`); a read at debug.
fn log_outcome(request: &Request<'_>, result: &Result<Raw, Error>) {
    let (status, request_id) = match result {
        Ok(raw) => (Some(raw.meta.status), raw.meta.request_id.clone()),
        Err(Error::Api(api)) => (Some(api.status), Some(api.request_id.clone())),
        Err(Error::OutcomeUnknown {
            status, request_id, ..
        }) => (*status, request_id.clone()),
        Err(_) => (None, None),
    };
    let duration_ms = u64::try_from(request.started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let error = result.as_ref().err().map(ToString::to_string);
    if request.idempotency == Idempotency::Read {
        tracing::debug!(
            method = %request.method, path = %request.path, status, request_id,
            client_request_id = %request.client_request_id, duration_ms, error, "graph read"
        );
    } else {
        let user = subject_of(&request.path, request.body.as_deref());
        tracing::info!(
            method = %request.method, path = %request.path, user, status, request_id,
            client_request_id = %request.client_request_id, duration_ms, error, "tenant write"
        );
    }
}

/// The user a write concerns: `…/users/{id}` in the path, else the invitation's
/// `invitedUser.id`.
fn subject_of(path: &str, body: Option<&[u8]>) -> Option<String> {
    let in_path = path
        .split('?')
        .next()
        .and_then(|path| path.split_once("/users/"))
        .map(|(_, rest)| rest.split('/').next().unwrap_or(rest).to_owned());
    in_path.or_else(|| {
        let body: serde_json::Value = serde_json::from_slice(body?).ok()?;
        body["invitedUser"]["id"].as_str().map(str::to_owned)
    })
}

/// Retries counted and logged as one warning per interval instead of one per retry: a
/// throttled run retries hundreds of times, and each line would scroll over the progress.
#[derive(Debug, Default)]
struct RetryLog {
    state: std::sync::Mutex<RetryCounts>,
}

#[derive(Debug, Default)]
struct RetryCounts {
    /// When the last summary was logged; `None` before the first retry.
    logged_at: Option<Instant>,
    /// Retries since then, by the status that caused them (`None`: no answer).
    by_status: std::collections::BTreeMap<Option<u16>, u32>,
}

impl RetryLog {
    /// How often a summary is logged at most.
    const INTERVAL: Duration = Duration::from_secs(30);

    /// Counts a retry; returns the warning to log for the count so far on the first retry and
    /// then at most once per [`Self::INTERVAL`].
    fn add(&self, status: Option<u16>, now: Instant) -> Option<String> {
        let mut counts = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *counts.by_status.entry(status).or_default() += 1;
        let due = counts
            .logged_at
            .is_none_or(|at| now.duration_since(at) >= Self::INTERVAL);
        if !due {
            return None;
        }
        let summary = counts
            .by_status
            .iter()
            .map(|(status, n)| match status {
                Some(status) => format!("{n} × {status}"),
                None => format!("{n} × no answer"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let first = counts.logged_at.is_none();
        counts.logged_at = Some(now);
        counts.by_status.clear();
        Some(if first {
            format!(
                "Graph asked to slow down or failed transiently ({summary}); retrying as it asks \
                 (further retries are summarised every {} s; -vv shows each)",
                Self::INTERVAL.as_secs()
            )
        } else {
            format!(
                "retried {summary} in the last {} s or more",
                Self::INTERVAL.as_secs()
            )
        })
    }
}

/// One logical request, as sent on every attempt.
struct Request<'a> {
    method: Method,
    url: Url,
    path: String,
    body: Option<Vec<u8>>,
    priority: Priority,
    extra_headers: &'a [(&'static str, &'static str)],
    idempotency: Idempotency,
    client_request_id: String,
    started: Instant,
    /// Fresh tokens tried so far after 401s.
    refreshes: AtomicU32,
    /// When the latest attempt left.
    last_sent: std::sync::Mutex<Instant>,
}

impl Request<'_> {
    fn outcome_unknown(&self, cause: &Error) -> Error {
        let (status, request_id) = match cause {
            Error::Api(api) => (Some(api.status), Some(api.request_id.clone())),
            _ => (None, None),
        };
        Error::OutcomeUnknown {
            method: self.method.to_string(),
            path: self.path.clone(),
            reason: cause.to_string(),
            status,
            request_id,
            client_request_id: self.client_request_id.clone(),
        }
    }
}

/// One page of a collection.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub meta: ResponseMeta,
}

#[derive(serde::Deserialize)]
struct PageBody<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

/// An undecoded successful answer.
struct Raw {
    method: String,
    path: String,
    body: Vec<u8>,
    meta: ResponseMeta,
}

fn decode<T: DeserializeOwned>(raw: Raw) -> Result<Response<T>, Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(&raw.body);
    match serde_path_to_error::deserialize(&mut deserializer) {
        Ok(body) => Ok(Response {
            body,
            meta: raw.meta,
        }),
        Err(err) => Err(Error::Decode {
            method: raw.method,
            path: raw.path,
            field: err.path().to_string(),
            message: err.into_inner().to_string(),
            request_id: raw.meta.request_id.unwrap_or_default(),
        }),
    }
}

/// Path and query of a URL: what errors and logs show (never the host's credentials).
fn path_of(url: &Url) -> String {
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .map(str::to_owned)
}

fn meta(
    status: StatusCode,
    headers: &HeaderMap,
    client_request_id: &str,
    attempts: u32,
    waited: Duration,
    started: Instant,
) -> ResponseMeta {
    ResponseMeta {
        status: status.as_u16(),
        request_id: header_text(headers, "request-id"),
        client_request_id: client_request_id.to_owned(),
        resource_units: header_text(headers, "x-ms-resource-unit").and_then(|v| v.parse().ok()),
        throttle_limit_percentage: header_text(headers, "x-ms-throttle-limit-percentage")
            .and_then(|v| v.parse().ok()),
        attempts,
        waited,
        elapsed: started.elapsed(),
    }
}

fn log_throttle(headers: &HeaderMap, status: StatusCode) {
    if status == StatusCode::TOO_MANY_REQUESTS {
        tracing::debug!(
            scope = header_text(headers, "x-ms-throttle-scope")
                .as_deref()
                .unwrap_or("-"),
            information = header_text(headers, "x-ms-throttle-information")
                .as_deref()
                .unwrap_or("-"),
            "throttled"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_names_its_user_from_the_path_or_the_invitation() {
        assert_eq!(
            subject_of("/v1.0/users/5a9f3c1e-0b2d-4e6f-8a7b-9c0d1e2f3a4b", None).as_deref(),
            Some("5a9f3c1e-0b2d-4e6f-8a7b-9c0d1e2f3a4b")
        );
        assert_eq!(
            subject_of("/v1.0/users/abc/memberOf?$top=999", None).as_deref(),
            Some("abc")
        );
        let invitation = br#"{"invitedUserEmailAddress":"a@b.example","invitedUser":{"id":"u1"}}"#;
        assert_eq!(
            subject_of("/v1.0/invitations", Some(invitation)).as_deref(),
            Some("u1")
        );
        assert_eq!(subject_of("/v1.0/invitations", Some(b"not json")), None);
    }

    #[test]
    fn retries_are_summarised_once_per_interval() {
        let log = RetryLog::default();
        let start = Instant::now();
        let first = log.add(Some(429), start).expect("the first retry is told");
        assert!(first.contains("1 × 429"), "{first}");
        for i in 1..=40 {
            let status = if i % 10 == 0 { Some(503) } else { Some(429) };
            assert_eq!(
                log.add(status, start + Duration::from_millis(i * 500)),
                None
            );
        }
        let summary = log
            .add(None, start + RetryLog::INTERVAL + Duration::from_secs(1))
            .expect("a summary after the interval");
        assert_eq!(
            summary,
            "retried 1 × no answer, 36 × 429, 4 × 503 in the last 30 s or more"
        );
    }
}
