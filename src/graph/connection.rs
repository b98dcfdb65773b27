//! How to reach one tenant: its Graph and login hosts, timeouts, retries, read priority and
//! clock. [`Connection`] is the one builder of the Graph client and the realm client, and the
//! one place the HTTP client is made (our User-Agent, the timeouts, no redirects).
//!
//! `config` fills a `Connection` from the settings; tests fill one for the simulator. It must
//! not read settings itself, nor hold a secret: credentials arrive with the [`Auth`] handed to
//! [`Connection::graph_client`].

use std::time::Duration;

use url::Url;

use super::auth::{Auth, TokenProvider};
use super::client::GraphClient;
use super::error::Error;
use super::realm::RealmClient;
use super::retry::RetryPolicy;
use crate::clock::{self, SharedClock};

/// The connect timeout when none is chosen (the settings' default too).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The timeout of one whole request when none is chosen (the settings' default too).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Where and how to send requests. Build one with [`Connection::new`] and change what differs
/// (`Connection { retry, ..Connection::new(graph, login) }`).
#[derive(Clone, Debug)]
pub struct Connection {
    /// The Graph root, for example `https://graph.microsoft.com/`; `v1.0/` is appended.
    pub graph_url: Url,
    /// The cloud's authority, for example `https://login.microsoftonline.com` (or the
    /// simulator's `http://127.0.0.1:P/login`): token requests and realm look-ups go there.
    pub login_url: Url,
    pub connect_timeout: Duration,
    /// For one attempt, answer included.
    pub request_timeout: Duration,
    /// For Graph calls and realm look-ups (token requests keep their own, shorter policy).
    pub retry: RetryPolicy,
    /// Paged reads ask for `x-ms-throttle-priority: low`.
    pub low_priority_reads: bool,
    /// The token cache's time.
    pub clock: SharedClock,
}

impl Connection {
    /// A connection to these hosts with the default timeouts, retry policy, low-priority
    /// reads and the system clock.
    pub fn new(graph_url: Url, login_url: Url) -> Self {
        Self {
            graph_url,
            login_url,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            retry: RetryPolicy::default(),
            low_priority_reads: true,
            clock: clock::system(),
        }
    }

    /// The Graph client signing in with `auth`. Nothing is sent yet: the first request gets
    /// the first token.
    pub fn graph_client(&self, auth: Auth) -> Result<GraphClient, Error> {
        let http = self.http()?;
        let tokens = TokenProvider::new(
            http.clone(),
            auth,
            &self.login_url,
            std::sync::Arc::clone(&self.clock),
        )?;
        Ok(GraphClient::new(
            http,
            tokens,
            &self.graph_url,
            self.retry.clone(),
            self.low_priority_reads,
        ))
    }

    /// The (anonymous) home-realm client on the login host.
    pub fn realm_client(&self) -> Result<RealmClient, Error> {
        Ok(RealmClient::new(
            self.http()?,
            &self.login_url,
            self.retry.clone(),
        ))
    }

    /// The HTTP client for Graph, the token endpoint and the realm endpoint.
    fn http(&self) -> Result<reqwest::Client, Error> {
        reqwest::Client::builder()
            .user_agent(concat!("b2b-convert/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(self.connect_timeout)
            .timeout(self.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| {
                let mut reason = err.to_string();
                let mut source = std::error::Error::source(&err);
                while let Some(cause) = source {
                    reason.push_str(": ");
                    reason.push_str(&cause.to_string());
                    source = cause.source();
                }
                Error::HttpClient(reason)
            })
    }
}
