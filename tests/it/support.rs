//! Shared test helpers: a simulated tenant, a Graph client aimed at it, and the binary run
//! against it with a clean environment.

use std::path::Path;

use assert_cmd::Command;
use b2b_convert::config::{ENV_KEYS, ENV_SECRETS, LOG_FILTER_VAR};
use b2b_convert::graph::auth::{Credential, TokenProvider};
use b2b_convert::graph::retry::RetryPolicy;
use b2b_convert::graph::{ClientOptions, GraphClient};
use b2b_convert::sim::{Sim, SimSpec, ThrottleConfig};
use secrecy::SecretString;
use std::time::Duration;
use url::Url;

/// The binary, run in `dir`, with none of the tool's environment variables inherited.
pub fn b2b_convert(dir: &Path) -> Command {
    let mut cmd = assert_cmd::cargo::cargo_bin_cmd!("b2b-convert");
    cmd.current_dir(dir);
    for (var, _) in ENV_KEYS.iter().chain(ENV_SECRETS) {
        cmd.env_remove(var);
    }
    cmd.env_remove(LOG_FILTER_VAR).env_remove("B2BC_CONFIG");
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

/// Fast retries so tests of retry behaviour do not wait for real backoff.
pub fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 6,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(200),
    }
}

/// A Graph client for `sim` with a client-secret credential.
pub fn client_with_secret(sim: &Sim, client_id: &str, secret: &str) -> GraphClient {
    client_with(
        sim,
        Credential::ClientSecret {
            client_id: client_id.to_owned(),
            secret: SecretString::from(secret.to_owned()),
        },
    )
}

/// A Graph client for `sim` with any credential.
pub fn client_with(sim: &Sim, credential: Credential) -> GraphClient {
    let graph_url = Url::parse(sim.graph_url()).unwrap();
    let login_url = Url::parse(sim.login_url()).unwrap();
    let http =
        b2b_convert::graph::client::http_client(Duration::from_secs(5), Duration::from_secs(30))
            .unwrap();
    let tokens = TokenProvider::new(
        http.clone(),
        credential,
        &login_url,
        sim.tenant_id(),
        "https://graph.microsoft.com",
    )
    .unwrap();
    GraphClient::new(
        http,
        tokens,
        &ClientOptions {
            graph_url,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            retry: fast_retries(),
            low_priority_reads: true,
        },
    )
}

/// Runs the binary in a blocking task (the simulator keeps serving on the runtime meanwhile).
pub async fn run(cmd: Command) -> std::process::Output {
    let mut cmd = cmd;
    tokio::task::spawn_blocking(move || cmd.output().expect("the binary runs"))
        .await
        .unwrap()
}
