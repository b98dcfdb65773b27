//! `check` against the simulated tenant: readiness by permission, and no secret in the logs.

use b2b_convert_sim::Sim;

use crate::support::{b2b_convert, quiet_sim, run, sim_env};

fn check_in(dir: &std::path::Path, sim: &Sim, args: &[&str]) -> assert_cmd::Command {
    let mut cmd = b2b_convert(dir);
    cmd.args(args).envs(sim_env(sim));
    cmd
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fully_permitted_app_is_ready() {
    let sim = quiet_sim(50).await;
    let dir = tempfile::tempdir().unwrap();
    let output = run(check_in(dir.path(), &sim, &["check"])).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("Ready"), "{stdout}");
    let audit_row = stdout
        .lines()
        .find(|l| l.contains("directory audit log"))
        .unwrap_or_else(|| panic!("an audit-log row: {stdout}"));
    assert!(
        audit_row.starts_with("ok") && audit_row.contains("AuditLog.Read.All"),
        "{audit_row}"
    );
    assert!(
        stdout.contains("contoso.com"),
        "lists the verified domains: {stdout}"
    );
    assert!(
        stdout.contains("woodgrovebank.com"),
        "lists the federation domains: {stdout}"
    );
    assert!(
        stdout.contains("can redemption be automatic (plan; optional)  Policy.Read.All"),
        "the partner pre-flight's permission is listed: {stdout}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_app_is_not_ready_and_says_what_is_missing() {
    let sim = quiet_sim(50).await;
    let dir = tempfile::tempdir().unwrap();
    let reader = &sim.apps()[1];
    let mut cmd = check_in(dir.path(), &sim, &["check", "--json"]);
    cmd.env("AZURE_CLIENT_ID", &reader.client_id)
        .env("AZURE_CLIENT_SECRET", &reader.secrets[0]);
    let output = run(cmd).await;
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["ready"], false);
    assert_eq!(report["token"]["kind"], "application");
    let capability = |name: &str| {
        report["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["capability"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(capability("read-users")["satisfied"], true);
    assert_eq!(capability("read-domains")["satisfied"], false);
    assert_eq!(
        capability("read-domains")["probe"],
        "403 Authorization_RequestDenied"
    );
    assert_eq!(capability("invite-users")["satisfied"], false);
    assert_eq!(capability("read-group-members")["required"], false);
    let cross_tenant = capability("read-cross-tenant-access");
    assert_eq!(cross_tenant["required"], false, "optional: {cross_tenant}");
    assert_eq!(cross_tenant["satisfied"], false);
    assert_eq!(cross_tenant["probe"], "403 Authorization_RequestDenied");
    // The audit log is optional: its absence is shown, never a reason not to be ready.
    let audit_log = capability("read-audit-logs");
    assert_eq!(
        (&audit_log["required"], &audit_log["satisfied"]),
        (&false.into(), &false.into())
    );
    assert_eq!(audit_log["probe"], "403 Authorization_RequestDenied");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("not ready") && stderr.contains("invite users"),
        "{stderr}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn set_mail_off_drops_the_write_permission_from_the_requirements() {
    let sim = quiet_sim(10).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("b2b-convert.toml"),
        "[invitation]\nset_mail_before_invite = false\n",
    )
    .unwrap();
    let output = run(check_in(dir.path(), &sim, &["check", "--json"])).await;
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let update = report["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["capability"] == "update-users")
        .unwrap()
        .clone();
    assert_eq!(update["required"], false);
    sim.shutdown().await;
}

fn assert_no_secret(output: &std::process::Output, secrets: &[&str]) {
    let everything = [output.stdout.clone(), output.stderr.clone()].concat();
    let text = String::from_utf8_lossy(&everything);
    assert!(
        text.contains("DEBUG") || text.contains("TRACE"),
        "detailed logging is on: {text}"
    );
    for secret in secrets {
        assert!(!text.contains(secret), "a secret leaked: {secret}");
    }
    assert!(
        !text.contains("eyJ"),
        "a JWT (token or client assertion) leaked: {text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn neither_the_secret_nor_a_token_reaches_the_log_at_trace_level() {
    let sim = quiet_sim(10).await;
    let dir = tempfile::tempdir().unwrap();
    let output = run(check_in(dir.path(), &sim, &["-vvv", "check"])).await;
    assert_eq!(output.status.code(), Some(0));
    assert_no_secret(&output, &[sim.client_secret()]);

    // Every crate at trace, in JSON.
    let mut cmd = check_in(dir.path(), &sim, &["--log-format", "json", "check"]);
    cmd.env("B2BC_LOG", "trace");
    let output = run(cmd).await;
    assert_eq!(output.status.code(), Some(0));
    assert_no_secret(&output, &[sim.client_secret()]);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn certificate_auth_works_end_to_end_and_the_assertion_stays_private() {
    let sim = quiet_sim(10).await;
    let dir = tempfile::tempdir().unwrap();
    let certificate = sim.certificate().unwrap();
    std::fs::write(
        dir.path().join("app.pem"),
        format!(
            "{}\n{}",
            certificate.private_key_pem, certificate.certificate_pem
        ),
    )
    .unwrap();
    let mut cmd = check_in(dir.path(), &sim, &["check"]);
    cmd.env_remove("AZURE_CLIENT_SECRET")
        .env("B2BC_AUTH_METHOD", "certificate")
        .env("AZURE_CLIENT_CERTIFICATE_PATH", "app.pem")
        .env("B2BC_LOG", "trace");
    let output = run(cmd).await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_no_secret(&output, &["PRIVATE KEY"]);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_credentials_are_a_configuration_error() {
    let sim = quiet_sim(10).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = check_in(dir.path(), &sim, &["check"]);
    cmd.env_remove("AZURE_CLIENT_SECRET");
    let output = run(cmd).await;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("AZURE_CLIENT_SECRET"), "{stderr}");
    sim.shutdown().await;
}
