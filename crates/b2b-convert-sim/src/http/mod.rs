//! The simulator's HTTP server: one loopback listener serving Graph (`/v1.0/...`), the login
//! host (`/login/...`) and the admin API (`/_sim/...`).
//!
//! Owns the accept loop, the per-request pipeline shared by every Graph endpoint (request ids,
//! faults, authentication, permissions, throttling, logging) and Graph's error and header
//! conventions. It must not contain endpoint logic: that lives in `graph`, `login` and `admin`.

mod admin;
mod graph;
mod identity;
mod login;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::Shared;
use super::faults::{EarlyFault, Endpoint};
use super::observe::{Outcome, RequestRecord};

/// Returned by the service to make hyper close the connection without a response.
#[derive(Debug, thiserror::Error)]
#[error("connection deliberately dropped by the simulator")]
pub struct DropConnection;

/// Graph's JSON content type.
const ODATA_JSON: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

/// A parsed request.
#[derive(Debug)]
pub(crate) struct RequestContext {
    pub method: hyper::Method,
    pub path: String,
    pub raw_query: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub request_id: String,
    pub client_request_id: String,
}

impl RequestContext {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn segments(&self, prefix: &str) -> Vec<String> {
        self.path
            .strip_prefix(prefix)
            .unwrap_or("")
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect()
    }

    pub fn form(&self) -> HashMap<String, String> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }
}

/// An answer before the common headers are added.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, String)>,
    pub body: Bytes,
    pub content_type: &'static str,
    pub outcome: Outcome,
    /// Set by handlers whose work should be committed and the response dropped.
    pub droppable: bool,
}

impl Reply {
    pub fn json(status: StatusCode, value: &Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
            content_type: ODATA_JSON,
            outcome: Outcome::Answered,
            droppable: false,
        }
    }

    pub fn plain_json(status: StatusCode, value: &Value) -> Self {
        Self {
            content_type: "application/json; charset=utf-8",
            ..Self::json(status, value)
        }
    }

    pub fn empty(status: StatusCode) -> Self {
        Self {
            body: Bytes::new(),
            ..Self::json(status, &Value::Null)
        }
    }

    pub fn text(status: StatusCode, text: String) -> Self {
        Self {
            body: Bytes::from(text),
            content_type: "text/plain",
            ..Self::json(status, &Value::Null)
        }
    }

    #[must_use]
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers
            .push((HeaderName::from_static(name), value.into()));
        self
    }

    /// A Graph error (NOTES §1.5 shape).
    pub fn graph_error(
        ctx: &RequestContext,
        shared: &Shared,
        status: StatusCode,
        code: &str,
        message: &str,
    ) -> Self {
        let date = shared.clock.now_rfc3339().trim_end_matches('Z').to_owned();
        Self::json(
            status,
            &json!({
                "error": {
                    "code": code,
                    "message": message,
                    "innerError": {
                        "date": date,
                        "request-id": ctx.request_id,
                        "client-request-id": ctx.client_request_id,
                    }
                }
            }),
        )
    }
}

/// Runs the server until `shutdown` resolves; in-flight connections get up to 2 s to finish.
pub(crate) async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()>,
) {
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let service = hyper::service::service_fn(move |request| {
                    let shared = shared.clone();
                    async move { handle(shared, request).await }
                });
                let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let watched = graceful.watch(connection);
                tokio::spawn(async move {
                    let _ = watched.await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(2)) => {}
    }
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, DropConnection> {
    let (parts, body) = request.into_parts();
    // A body over 8 MiB (or a client that went away mid-body) is answered with 413.
    let (body, too_large) = match Limited::new(body, 8 * 1024 * 1024).collect().await {
        Ok(collected) => (collected.to_bytes(), false),
        Err(_) => (Bytes::new(), true),
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    let client_request_id = parts
        .headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| request_id.clone(), str::to_owned);
    let raw_query = parts.uri.query().unwrap_or("").to_owned();
    let ctx = RequestContext {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: url::form_urlencoded::parse(raw_query.as_bytes())
            .into_owned()
            .collect(),
        raw_query,
        headers: parts.headers,
        body,
        request_id,
        client_request_id,
    };
    if too_large {
        let reply = Reply::graph_error(
            &ctx,
            &shared,
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            "The request body is larger than the simulator accepts (8 MiB).",
        );
        return Ok(finish(&ctx, reply));
    }
    if ctx.path == "/_sim" || ctx.path.starts_with("/_sim/") {
        // Admin traffic is not part of what tests observe: no log entry, no counters.
        return Ok(finish(&ctx, admin::handle(&shared, &ctx)));
    }
    let (reply, endpoint, app_id) = if ctx.path.starts_with("/login/") {
        let endpoint = login::classify(&ctx);
        match apply_faults(&shared, &ctx, endpoint).await {
            Err(reply) => (reply, endpoint, None),
            Ok(commit_then_drop) => {
                let reply = login::handle(&shared, &ctx);
                (maybe_drop(reply, commit_then_drop), endpoint, None)
            }
        }
    } else if identity::serves(&ctx.path) {
        let endpoint = Some(Endpoint::Token);
        match apply_faults(&shared, &ctx, endpoint).await {
            Err(reply) => (reply, endpoint, None),
            Ok(_) => (identity::handle(&shared, &ctx), endpoint, None),
        }
    } else {
        graph::handle(&shared, &ctx).await
    };
    let status = reply.status.as_u16();
    let outcome = reply.outcome;
    tracing::debug!(
        method = %ctx.method,
        path = %ctx.path,
        status,
        ?outcome,
        request_id = %ctx.request_id,
        "simulated Graph request"
    );
    shared.observer.record(RequestRecord {
        seq: 0,
        at: shared.clock.now_rfc3339(),
        method: ctx.method.to_string(),
        path: if ctx.raw_query.is_empty() {
            ctx.path.clone()
        } else {
            format!("{}?{}", ctx.path, ctx.raw_query)
        },
        endpoint,
        status: if matches!(outcome, Outcome::Reset | Outcome::CommittedThenDropped) {
            0
        } else {
            status
        },
        outcome,
        request_id: ctx.request_id.clone(),
        client_request_id: ctx.client_request_id.clone(),
        app_id,
    });
    if matches!(outcome, Outcome::Reset | Outcome::CommittedThenDropped) {
        return Err(DropConnection);
    }
    Ok(finish(&ctx, reply))
}

/// Marks a successful reply to be dropped after its work was committed.
pub(crate) fn maybe_drop(mut reply: Reply, commit_then_drop: bool) -> Reply {
    if commit_then_drop && reply.droppable && reply.status.is_success() {
        reply.outcome = Outcome::CommittedThenDropped;
    }
    reply
}

/// Latency, resets and injected 503/504 for `endpoint`. `Ok(commit_then_drop)` to proceed.
pub(crate) async fn apply_faults(
    shared: &Shared,
    ctx: &RequestContext,
    endpoint: Option<Endpoint>,
) -> Result<bool, Reply> {
    let Some(endpoint) = endpoint else {
        return Ok(false);
    };
    let spec = shared.fault_plan().spec(endpoint);
    let decision = shared.dice.decide(endpoint, &spec);
    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
    match decision.before {
        None => Ok(decision.commit_then_drop),
        Some(EarlyFault::Reset) => {
            let mut reply = Reply::empty(StatusCode::OK);
            reply.outcome = Outcome::Reset;
            Err(reply)
        }
        Some(EarlyFault::Status {
            status,
            retry_after_ms,
        }) => {
            let (status, code, message) = match status {
                503 => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "serviceNotAvailable",
                    "The service is temporarily unavailable. Please retry later.",
                ),
                429 => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequests",
                    "Too many requests. Please retry later.",
                ),
                _ => (
                    StatusCode::GATEWAY_TIMEOUT,
                    "UnknownError",
                    "The gateway did not receive a timely response from the upstream service.",
                ),
            };
            let mut reply = Reply::graph_error(ctx, shared, status, code, message);
            if let Some(ms) = retry_after_ms {
                reply = reply.header("retry-after", decimal_seconds(ms));
            }
            reply.outcome = Outcome::InjectedStatus;
            Err(reply)
        }
    }
}

/// `Retry-After` as Graph writes it: whole seconds, or decimal ones (`2.128`) when there is a
/// fraction.
fn decimal_seconds(ms: u64) -> String {
    if ms.is_multiple_of(1_000) {
        (ms / 1_000).to_string()
    } else {
        format!("{}.{:03}", ms / 1_000, ms % 1_000)
            .trim_end_matches('0')
            .to_owned()
    }
}

fn finish(ctx: &RequestContext, reply: Reply) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(reply.body));
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    let mut set = |name: HeaderName, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.append(name, value);
        }
    };
    if reply.status != StatusCode::NO_CONTENT {
        set(hyper::header::CONTENT_TYPE, reply.content_type);
    }
    set(HeaderName::from_static("request-id"), &ctx.request_id);
    set(
        HeaderName::from_static("client-request-id"),
        &ctx.client_request_id,
    );
    if ctx.path.starts_with("/v1.0") {
        set(HeaderName::from_static("odata-version"), "4.0");
    }
    if ctx.path.starts_with("/login/") {
        set(HeaderName::from_static("x-ms-request-id"), &ctx.request_id);
        set(hyper::header::CACHE_CONTROL, "no-store, no-cache");
    }
    for (name, value) in reply.headers {
        set(name, &value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::decimal_seconds;

    #[test]
    fn retry_after_is_written_as_graph_writes_it() {
        assert_eq!(decimal_seconds(3_000), "3");
        assert_eq!(decimal_seconds(2_128), "2.128");
        assert_eq!(decimal_seconds(250), "0.25");
        assert_eq!(decimal_seconds(0), "0");
    }
}
