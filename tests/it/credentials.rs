//! Credentials without a stored secret, end to end against the simulator (issue 16): managed
//! identity (IMDS and App Service shapes), workload identity (federated token file, GitHub
//! Actions OIDC), the Azure CLI (a stand-in script) and `auto`. Each gets a token from the
//! simulator and converts a wave with it; `check` and `config` name the credential.
//!
//! Nothing here reaches a non-loopback address: every endpoint is the simulator's, and the
//! helper turns the metadata service off unless a test points it at the simulator.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use b2b_convert_sim::Sim;
use secrecy::ExposeSecret as _;

use crate::support::{b2b_convert, client_with_secret, quiet_sim, run, text};

/// The tenant and hosts, but no secret: each test adds its credential's variables.
fn base_env(sim: &Sim) -> Vec<(&'static str, String)> {
    vec![
        ("AZURE_TENANT_ID", sim.tenant_id().to_owned()),
        ("B2BC_GRAPH_URL", sim.graph_url().to_owned()),
        ("B2BC_LOGIN_URL", sim.login_url().to_owned()),
    ]
}

async fn cli_env(
    dir: &Path,
    env: &[(&'static str, String)],
    args: &[&str],
) -> std::process::Output {
    let mut cmd = b2b_convert(dir);
    cmd.args(args).envs(env.iter().cloned());
    run(cmd).await
}

/// `check --json` succeeds and names `method`; then `discover → plan → run` converts the
/// wave with the same environment.
async fn converts_with(sim: &Sim, env: &[(&'static str, String)], method: &str) {
    let dir = tempfile::tempdir().unwrap();
    let output = cli_env(dir.path(), env, &["check", "--json"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["credential"]["method"], method, "{report}");
    let output = cli_env(dir.path(), env, &["check"]).await;
    assert!(
        text(&output.stdout).contains(&format!("Credential {method}")),
        "{}",
        text(&output.stdout)
    );

    for args in [
        &["discover"][..],
        &["plan", "--wave", "pilot", "--all"],
        &[
            "run",
            "--wave",
            "pilot",
            "--yes",
            "--reconcile-delay",
            "0",
            "--rate",
            "30",
        ],
    ] {
        let output = cli_env(dir.path(), env, args).await;
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}\n{}",
            text(&output.stdout),
            text(&output.stderr)
        );
    }
    assert!(
        sim.counters().invitations_created > 0,
        "the wave sent invitations"
    );
    let log = sim.request_log();
    assert!(
        log.iter().all(|r| !r.path.contains("169.254")),
        "nothing aimed at the metadata service's address"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn managed_identity_through_the_metadata_service_converts_a_wave() {
    let sim = quiet_sim(20).await;
    let mut env = base_env(&sim);
    env.push(("B2BC_AUTH_METHOD", "managed-identity".into()));
    env.push(("B2BC_IMDS_URL", sim.imds_url()));
    converts_with(&sim, &env, "managed-identity").await;
    assert!(
        sim.request_log().iter().any(|r| r
            .path
            .starts_with("/metadata/identity/oauth2/token?api-version=2018-02-01")),
        "the IMDS shape was used"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_assigned_identity_through_the_app_service_endpoint_converts_a_wave() {
    let sim = quiet_sim(20).await;
    let mut env = base_env(&sim);
    env.push(("B2BC_AUTH_METHOD", "managed-identity".into()));
    env.push(("IDENTITY_ENDPOINT", sim.identity_endpoint()));
    env.push(("IDENTITY_HEADER", sim.identity_header()));
    env.push((
        "B2BC_MANAGED_IDENTITY_CLIENT_ID",
        sim.client_id().to_owned(),
    ));
    converts_with(&sim, &env, "managed-identity").await;
    assert!(
        sim.request_log()
            .iter()
            .any(|r| r.path.starts_with("/msi/token?api-version=2019-08-01")
                && r.path.contains("client_id=")),
        "the App Service shape with a user-assigned client id"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_identity_endpoints_check_their_header_and_the_older_shape_works() {
    let sim = quiet_sim(5).await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(&sim);
    env.push(("B2BC_AUTH_METHOD", "managed-identity".into()));
    env.push(("IDENTITY_ENDPOINT", sim.identity_endpoint()));
    env.push(("IDENTITY_HEADER", "not-the-header".into()));
    let output = cli_env(dir.path(), &env, &["check"]).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("managed-identity endpoint") && stderr.contains("401"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("not-the-header"),
        "the header is a secret: {stderr}"
    );

    let mut env = base_env(&sim);
    env.push(("B2BC_AUTH_METHOD", "managed-identity".into()));
    env.push(("MSI_ENDPOINT", sim.identity_endpoint()));
    env.push(("MSI_SECRET", sim.identity_header()));
    let output = cli_env(dir.path(), &env, &["check"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("via MSI_ENDPOINT"),
        "{}",
        text(&output.stdout)
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn imds_is_never_the_default_in_tests() {
    // The helper sets B2BC_IMDS_URL=none: an explicit managed identity is refused before any
    // request, and `auto` skips managed identity rather than probing 169.254.169.254.
    let sim = quiet_sim(5).await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(&sim);
    env.push(("B2BC_AUTH_METHOD", "managed-identity".into()));
    let output = cli_env(dir.path(), &env, &["check"]).await;
    assert_eq!(output.status.code(), Some(2), "a configuration error");
    let stderr = text(&output.stderr);
    assert!(stderr.contains("metadata service is disabled"), "{stderr}");
    assert!(!stderr.contains("169.254"), "{stderr}");
    assert_eq!(
        sim.counters().tokens_issued,
        0,
        "nothing was asked for a token"
    );

    let mut env = base_env(&sim);
    env.push(("B2BC_AUTH_METHOD", "auto".into()));
    let output = cli_env(dir.path(), &env, &["config", "--json"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let listing: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let credential = &listing["credential"];
    assert_eq!(credential["method"], "azure-cli", "{credential}");
    let skipped: Vec<&str> = credential["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["method"].as_str().unwrap())
        .collect();
    assert_eq!(
        skipped,
        ["client-secret", "workload-identity", "managed-identity"],
        "the Azure SDKs' order"
    );
    assert!(
        credential["skipped"][2]["reason"]
            .as_str()
            .unwrap()
            .contains("disabled"),
        "{credential}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_federated_token_file_converts_a_wave_and_a_foreign_subject_is_refused() {
    let sim = quiet_sim(20).await;
    let files = tempfile::tempdir().unwrap();
    let token_file = files.path().join("azure-identity-token");
    std::fs::write(&token_file, sim.federated_token()).unwrap();
    let mut env = base_env(&sim);
    env.push(("B2BC_AUTH_METHOD", "workload-identity".into()));
    env.push(("AZURE_CLIENT_ID", sim.client_id().to_owned()));
    env.push((
        "AZURE_FEDERATED_TOKEN_FILE",
        token_file.display().to_string(),
    ));
    converts_with(&sim, &env, "workload-identity").await;

    // A token for another subject (another repository or branch) matches no federated
    // credential: Entra's AADSTS70021.
    let trusted = sim.auth_config();
    sim.set_auth(b2b_convert_sim::AuthConfig {
        federated_subject: "repo:someone-else/fork:ref:refs/heads/main".into(),
        ..trusted.clone()
    });
    std::fs::write(&token_file, sim.federated_token()).unwrap();
    sim.set_auth(trusted);
    let dir = tempfile::tempdir().unwrap();
    let output = cli_env(dir.path(), &env, &["check"]).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("AADSTS70021"), "{stderr}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn github_actions_oidc_converts_a_wave() {
    let sim = quiet_sim(20).await;
    let mut env = base_env(&sim);
    env.push(("B2BC_AUTH_METHOD", "workload-identity".into()));
    env.push(("AZURE_CLIENT_ID", sim.client_id().to_owned()));
    env.push(("ACTIONS_ID_TOKEN_REQUEST_URL", sim.oidc_request_url()));
    env.push(("ACTIONS_ID_TOKEN_REQUEST_TOKEN", sim.oidc_request_token()));
    converts_with(&sim, &env, "workload-identity").await;
    assert!(
        sim.request_log().iter().any(|r| r
            .path
            .starts_with("/oidc/token?api-version=2.0&audience=api")),
        "the runner's URL keeps its query and gains the audience"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_picks_workload_identity_before_the_cli_and_converts_a_wave() {
    let sim = quiet_sim(20).await;
    let mut env = base_env(&sim);
    env.push(("B2BC_AUTH_METHOD", "auto".into()));
    env.push(("AZURE_CLIENT_ID", sim.client_id().to_owned()));
    env.push(("ACTIONS_ID_TOKEN_REQUEST_URL", sim.oidc_request_url()));
    env.push(("ACTIONS_ID_TOKEN_REQUEST_TOKEN", sim.oidc_request_token()));
    converts_with(&sim, &env, "workload-identity").await;
    let dir = tempfile::tempdir().unwrap();
    let output = cli_env(dir.path(), &env, &["check"]).await;
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("chosen by auth.method = auto")
            && stdout.contains("client-secret skipped: neither AZURE_CLIENT_SECRET"),
        "{stdout}"
    );
    assert!(!stdout.contains(&sim.oidc_request_token()), "{stdout}");
    sim.shutdown().await;
}

/// A stand-in `az` in its own folder: answers `account get-access-token` with `token`, and
/// records its arguments.
fn fake_az(folder: &Path, script_body: &str) {
    let path = folder.join("az");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\necho \"$@\" >> \"{}/calls\"\n{script_body}\n",
            folder.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_azure_cli_converts_a_wave() {
    let sim = quiet_sim(20).await;
    let token = client_with_secret(&sim, sim.client_id(), sim.client_secret())
        .tokens()
        .token()
        .await
        .unwrap();
    let bin = tempfile::tempdir().unwrap();
    let expires_on = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    fake_az(
        bin.path(),
        &format!(
            "cat <<'JSON'\n{{\"accessToken\":\"{}\",\"expiresOn\":\"2030-01-02 03:04:05.000000\",\"expires_on\":{expires_on},\"tenant\":\"{}\",\"tokenType\":\"Bearer\"}}\nJSON",
            token.expose_secret(),
            sim.tenant_id()
        ),
    );
    let mut env = base_env(&sim);
    env.push(("B2BC_AUTH_METHOD", "azure-cli".into()));
    // The stand-in goes first on the test process's own PATH (the test reads it to extend it).
    #[allow(clippy::disallowed_methods)]
    let path = std::env::var("PATH").unwrap_or_default();
    env.push(("PATH", format!("{}:{path}", bin.path().display())));
    converts_with(&sim, &env, "azure-cli").await;
    let calls = std::fs::read_to_string(bin.path().join("calls")).unwrap();
    assert!(
        calls.contains(&format!(
            "account get-access-token --output json --resource https://graph.microsoft.com --tenant {}",
            sim.tenant_id()
        )),
        "{calls}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_signed_out_azure_cli_says_what_to_do() {
    let sim = quiet_sim(5).await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(&sim);
    env.push(("B2BC_AUTH_METHOD", "azure-cli".into()));
    env.push(("B2BC_AZURE_CLI", "/nonexistent/bin/az".into()));
    let output = cli_env(dir.path(), &env, &["check"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("was not found"),
        "{}",
        text(&output.stderr)
    );

    let bin = tempfile::tempdir().unwrap();
    fake_az(
        bin.path(),
        "echo \"ERROR: Please run 'az login' to setup account.\" >&2\nexit 1",
    );
    let mut env = base_env(&sim);
    env.push(("B2BC_AUTH_METHOD", "azure-cli".into()));
    env.push((
        "B2BC_AZURE_CLI",
        bin.path().join("az").display().to_string(),
    ));
    let output = cli_env(dir.path(), &env, &["check"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("not signed in"),
        "{}",
        text(&output.stderr)
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_static_token_that_will_not_last_is_announced_and_its_expiry_stops_the_run_cleanly() {
    let sim = b2b_convert_sim::Sim::start(
        b2b_convert_sim::SimSpec::generated(30, 7)
            .with_throttling(b2b_convert_sim::ThrottleConfig::disabled())
            .with_auth(b2b_convert_sim::AuthConfig {
                token_lifetime: std::time::Duration::from_secs(60),
                ..b2b_convert_sim::AuthConfig::default()
            }),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for args in [&["discover"][..], &["plan", "--wave", "pilot", "--all"]] {
        let output = crate::support::cli(dir.path(), &sim, args).await;
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    }
    let token = client_with_secret(&sim, sim.client_id(), sim.client_secret())
        .tokens()
        .token()
        .await
        .unwrap();
    let mut env = base_env(&sim);
    env.push(("B2BC_AUTH_METHOD", "access-token".into()));
    env.push(("B2BC_ACCESS_TOKEN", token.expose_secret().to_owned()));

    // Every eligible user at 0.1/s takes over 60 s: longer than the token's life.
    let run_args = [
        "run",
        "--wave",
        "pilot",
        "--yes",
        "--reconcile-delay",
        "0",
        "--rate",
        "0.2",
    ];
    let mut dry = run_args.to_vec();
    dry.push("--dry-run");
    let output = cli_env(dir.path(), &env, &dry).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("before the run's estimated end"),
        "{stderr}"
    );
    assert!(!stderr.contains(token.expose_secret()), "{stderr}");

    // The run starts; the token expires on the simulator's clock a few users in.
    let mut cmd = b2b_convert(dir.path());
    cmd.args(run_args).envs(env.iter().cloned());
    let running = tokio::spawn(run(cmd));
    while sim.counters().invitations_created < 1 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    sim.advance_clock(std::time::Duration::from_secs(120));
    let output = running.await.unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("members in flight were recorded, run again to resume")
            && stderr.contains("access token"),
        "{stderr}"
    );
    assert!(!stderr.contains(token.expose_secret()), "{stderr}");

    // Nothing lost: a run with a fresh credential finishes the wave, one invitation each.
    let output = crate::support::cli(
        dir.path(),
        &sim,
        &[
            "run",
            "--wave",
            "pilot",
            "--yes",
            "--reconcile-delay",
            "0",
            "--rate",
            "30",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let store = b2b_convert::store::Store::open(&dir.path().join("b2b-convert.db"))
        .await
        .unwrap();
    let wave = store.wave_by_name("pilot").await.unwrap().unwrap();
    let eligible: Vec<_> = store
        .members(wave.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.plan.decision == b2b_convert::domain::Decision::Eligible)
        .collect();
    assert!(
        eligible
            .iter()
            .all(|m| m.state == b2b_convert::domain::UserState::Invited),
        "every eligible user ends invited"
    );
    assert_eq!(
        sim.counters().invitations_created,
        eligible.len() as u64,
        "one invitation each: the one in flight at expiry was reconciled, not sent twice"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_path_alone_selects_certificate_auth_under_auto_with_its_chain() {
    let sim = quiet_sim(5).await;
    let certificate = sim.certificate().unwrap();
    let files = tempfile::tempdir().unwrap();
    let pem = files.path().join("app.pem");
    std::fs::write(
        &pem,
        format!(
            "{}\n{}",
            certificate.private_key_pem, certificate.certificate_pem
        ),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(&sim);
    env.push(("B2BC_AUTH_METHOD", "auto".into()));
    env.push(("AZURE_CLIENT_ID", sim.client_id().to_owned()));
    env.push(("AZURE_CLIENT_CERTIFICATE_PATH", pem.display().to_string()));
    env.push(("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN", "true".into()));
    let output = cli_env(dir.path(), &env, &["check", "--json"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["credential"]["method"], "certificate", "{report}");
    assert_eq!(report["credential"]["auto"], true, "{report}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_federated_token_file_is_read_again_for_every_token() {
    use b2b_convert::graph::auth::{AssertionSource, Credential};
    let sim = quiet_sim(5).await;
    let files = tempfile::tempdir().unwrap();
    let token_file = files.path().join("azure-identity-token");
    std::fs::write(&token_file, sim.federated_token()).unwrap();
    let client = crate::support::client_with(
        &sim,
        Credential::WorkloadIdentity {
            client_id: sim.client_id().to_owned(),
            assertion: AssertionSource::File(token_file.clone()),
        },
    );
    let first = client.tokens().token().await.unwrap();

    // The platform rotates the file; the next token request must present the new content.
    std::fs::write(&token_file, "rotated.but-not.valid").unwrap();
    client.tokens().invalidate(&first).await.unwrap();
    let err = client.tokens().token().await.unwrap_err().to_string();
    assert!(
        err.contains("AADSTS50027"),
        "the rotated file was read: {err}"
    );
    assert!(!err.contains("rotated.but-not.valid"), "{err}");

    std::fs::write(&token_file, sim.federated_token()).unwrap();
    let second = client.tokens().token().await.unwrap();
    assert_ne!(first.expose_secret(), second.expose_secret());
    sim.shutdown().await;
}
