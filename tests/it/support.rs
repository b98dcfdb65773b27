//! Shared test helpers: a simulated tenant, a Graph client aimed at it, and the binary run
//! against it with a clean environment.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use assert_cmd::Command;
use b2b_convert::config::{COLUMNS_VAR, ENV_KEYS, ENV_SECRETS, LOG_FILTER_VAR};
use b2b_convert::graph::auth::{Auth, Credential};
use b2b_convert::graph::retry::RetryPolicy;
use b2b_convert::graph::{Connection, GraphClient};
use b2b_convert_sim::{Sim, SimSpec, ThrottleConfig};
use secrecy::SecretString;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

/// The binary, run in `dir`, with none of the tool's environment variables inherited.
pub fn b2b_convert(dir: &Path) -> Command {
    let mut cmd = assert_cmd::cargo::cargo_bin_cmd!("b2b-convert");
    cmd.current_dir(dir);
    for (var, _) in ENV_KEYS.iter().chain(ENV_SECRETS) {
        cmd.env_remove(var);
    }
    // Tables are as wide as their content unless a test asks for a width.
    cmd.env_remove(LOG_FILTER_VAR)
        .env_remove("B2BC_CONFIG")
        .env_remove(COLUMNS_VAR);
    // No test may reach 169.254.169.254: the metadata service is off unless a test points
    // `B2BC_IMDS_URL` at the simulator (proved by `credentials::imds_is_never_the_default_in_tests`).
    cmd.env("B2BC_IMDS_URL", "none");
    cmd
}

/// The environment that points the binary at `sim` with its full-permission app.
pub fn sim_env(sim: &Sim) -> Vec<(&'static str, String)> {
    vec![
        ("AZURE_TENANT_ID", sim.tenant_id().to_owned()),
        ("AZURE_CLIENT_ID", sim.client_id().to_owned()),
        ("AZURE_CLIENT_SECRET", sim.client_secret().to_owned()),
        ("B2BC_GRAPH_URL", sim.graph_url().to_owned()),
        ("B2BC_LOGIN_URL", sim.login_url().to_owned()),
    ]
}

/// A simulator without throttling (tests of shapes and flows, not of limits).
pub async fn quiet_sim(users: u64) -> Sim {
    Sim::start(SimSpec::generated(users, 7).with_throttling(ThrottleConfig::disabled()))
        .await
        .expect("the simulator starts")
}

/// A simulator without throttling whose endpoints misbehave as `faults` says
/// (`FaultPlan` grammar, e.g. `"invitations:drop=1"`).
pub async fn faulty_sim(users: u64, faults: &str) -> Sim {
    Sim::start(
        SimSpec::generated(users, 7)
            .with_throttling(ThrottleConfig::disabled())
            .with_faults(b2b_convert_sim::FaultPlan::parse(faults).expect("a valid fault plan")),
    )
    .await
    .expect("the simulator starts")
}

/// Fast retries so tests of retry behaviour do not wait for real backoff.
pub fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 6,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(200),
    }
}

/// How tests reach `sim`: its hosts, short timeouts, fast retries.
pub fn sim_connection(sim: &Sim) -> Connection {
    Connection {
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(30),
        retry: fast_retries(),
        ..Connection::new(
            Url::parse(sim.graph_url()).unwrap(),
            Url::parse(sim.login_url()).unwrap(),
        )
    }
}

/// Signing in to `sim`'s tenant with `credential`.
pub fn sim_auth(sim: &Sim, credential: Credential) -> Auth {
    Auth {
        credential,
        tenant: sim.tenant_id().to_owned(),
        resource: "https://graph.microsoft.com".to_owned(),
    }
}

/// A client-secret credential.
pub fn secret(client_id: &str, secret: &str) -> Credential {
    Credential::ClientSecret {
        client_id: client_id.to_owned(),
        secret: SecretString::from(secret.to_owned()),
    }
}

/// A Graph client for `sim` with a client-secret credential.
pub fn client_with_secret(sim: &Sim, client_id: &str, client_secret: &str) -> GraphClient {
    client_with(sim, secret(client_id, client_secret))
}

/// A Graph client for `sim` with any credential.
pub fn client_with(sim: &Sim, credential: Credential) -> GraphClient {
    sim_connection(sim)
        .graph_client(sim_auth(sim, credential))
        .unwrap()
}

/// Runs the binary in a blocking task (the simulator keeps serving on the runtime meanwhile).
pub async fn run(cmd: Command) -> std::process::Output {
    let mut cmd = cmd;
    tokio::task::spawn_blocking(move || cmd.output().expect("the binary runs"))
        .await
        .unwrap()
}

/// One canned answer of a [`TinyServer`].
#[derive(Clone, Debug)]
pub struct TinyReply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    /// Waited before answering (to observe concurrency).
    pub delay: Duration,
}

impl TinyReply {
    /// A `200 OK` JSON answer.
    pub fn json(body: impl Into<String>) -> Self {
        Self {
            status: 200,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    /// A JSON answer with another status.
    pub fn status(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            ..Self::json(body)
        }
    }
}

/// A tiny HTTP/1.1 server on 127.0.0.1 that answers every request with what `respond` says
/// for its raw head (request line and headers), and keeps those heads: tests see exactly
/// what a client sent, headers included.
#[derive(Debug)]
pub struct TinyServer {
    pub port: u16,
    heads: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
}

impl TinyServer {
    pub async fn start(respond: impl Fn(&str) -> TinyReply + Send + Sync + 'static) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let respond = Arc::new(respond);
        let connections = Arc::new(AtomicUsize::new(0));
        let (kept, max) = (Arc::clone(&heads), Arc::clone(&max_in_flight));
        let accepted = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                let (respond, heads) = (Arc::clone(&respond), Arc::clone(&kept));
                let (in_flight, max) = (Arc::clone(&in_flight), Arc::clone(&max));
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buffer = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(now, Ordering::SeqCst);
                    let reply = respond(&head);
                    heads.lock().unwrap().push(head);
                    tokio::time::sleep(reply.delay).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    let mut response = format!(
                        "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                        reply.status,
                        reply.body.len()
                    );
                    for (name, value) in &reply.headers {
                        let _ = write!(response, "{name}: {value}\r\n");
                    }
                    response.push_str("\r\n");
                    response.push_str(&reply.body);
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        Self {
            port,
            heads,
            connections,
            max_in_flight,
        }
    }

    /// Answers every request with `200 OK` and `body`.
    pub async fn fixed(body: String) -> Self {
        Self::start(move |_| TinyReply::json(body.clone())).await
    }

    pub fn url(&self) -> Url {
        Url::parse(&format!("http://127.0.0.1:{}", self.port)).unwrap()
    }

    /// The raw heads of the requests received so far.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }

    /// Connections accepted, whether or not a request followed.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The most requests that were being answered at the same moment.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }
}

/// Runs the binary in `dir` against `sim` with `args`, waiting for it to finish.
pub async fn cli(dir: &Path, sim: &Sim, args: &[&str]) -> std::process::Output {
    let mut cmd = b2b_convert(dir);
    cmd.args(args).envs(sim_env(sim));
    run(cmd).await
}

/// Output bytes as text, for assertions and their messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
