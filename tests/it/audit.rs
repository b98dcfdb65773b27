//! `audit export` against the simulated tenant: after a small run, the export lists every write
//! the tenant saw (the simulator's request log) with its request ids, the operator and, for a
//! `mail` PATCH, the value before and after; as CSV and JSON Lines, filtered by wave and time;
//! and it never creates a database.

use std::collections::BTreeSet;
use std::path::Path;

use b2b_convert::store::Store;
use b2b_convert_sim::{Sim, User, UserCase};

use crate::support::{b2b_convert, cli, quiet_sim, run, sim_env, text};

/// The writes (method, request-id, client-request-id) the simulator answered.
fn tenant_writes(sim: &Sim) -> BTreeSet<(String, String, String)> {
    sim.request_log()
        .into_iter()
        .filter(|r| matches!(r.method.as_str(), "POST" | "PATCH") && !r.path.contains("oauth2"))
        .map(|r| (r.method, r.request_id, r.client_request_id))
        .collect()
}

async fn export(dir: &Path, sim: &Sim, args: &[&str]) -> std::process::Output {
    let mut all = vec!["audit", "export"];
    all.extend_from_slice(args);
    cli(dir, sim, &all).await
}

fn json_lines(output: &std::process::Output) -> Vec<serde_json::Value> {
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    text(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect()
}

/// A wave `pilot` of every user of a small tenant, run by OS user `auditor`: the folder, and
/// the user whose `mail` the run set first.
async fn converted(sim: &Sim) -> (tempfile::TempDir, User) {
    let set_mail = sim
        .find_user(UserCase::CloudInternalMailOneExternal)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for args in [&["discover"][..], &["plan", "--wave", "pilot", "--all"]] {
        let output = cli(dir.path(), sim, args).await;
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    }
    assert!(
        tenant_writes(sim).is_empty(),
        "discover and plan write nothing"
    );
    let mut command = b2b_convert(dir.path());
    command
        .args(["run", "--wave", "pilot", "--yes", "--reconcile-delay", "0"])
        .envs(sim_env(sim))
        .env("USER", "auditor")
        .env("LOGNAME", "someone-else");
    let output = run(command).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        tenant_writes(sim).iter().any(|(m, ..)| m == "PATCH"),
        "the run set a mail"
    );
    (dir, set_mail)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_export_lists_every_tenant_write_with_its_ids_operator_and_mail_change() {
    let sim = quiet_sim(80).await;
    let (dir, set_mail) = converted(&sim).await;
    let seen = tenant_writes(&sim);

    // The run's record names its operator once.
    let store = Store::open_existing(&dir.path().join("b2b-convert.db"))
        .await
        .unwrap();
    let wave = store.wave_by_name("pilot").await.unwrap().unwrap();
    let runs = store.runs(wave.id).await.unwrap();
    store.close().await;
    assert_eq!(runs.len(), 1);
    let operator = &runs[0].operator;
    assert_eq!(operator.os_user.as_deref(), Some("auditor"));
    assert_eq!(operator.app_id.as_deref(), Some(sim.client_id()));
    assert!(operator.host.is_some());
    assert!(operator.tool_version.is_some());

    // JSON Lines: exactly the writes the tenant saw, each with its operator.
    let output = export(dir.path(), &sim, &["--format", "json"]).await;
    assert!(
        !text(&output.stdout).contains("redeem"),
        "no redemption URL"
    );
    let records = json_lines(&output);
    let exported: BTreeSet<(String, String, String)> = records
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap().to_owned(),
                r["request_id"].as_str().unwrap().to_owned(),
                r["client_request_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(records.len(), seen.len(), "one record per write");
    assert_eq!(exported, seen);
    for record in &records {
        assert_eq!(record["schema_version"], 1);
        assert_eq!(record["os_user"], "auditor");
        assert_eq!(record["app_id"], sim.client_id());
        assert_eq!(record["command"], "run");
        assert_eq!(record["wave"], "pilot");
        assert!(record["user_principal_name"].is_string(), "{record}");
        assert!(
            record["operator"].as_str().unwrap().starts_with("auditor@"),
            "{record}"
        );
        assert!(
            matches!(record["status"].as_u64(), Some(200..=299)),
            "{record}"
        );
    }
    let patch = records
        .iter()
        .find(|r| r["method"] == "PATCH" && r["user_id"] == set_mail.id.as_str())
        .expect("the set-mail user's PATCH is exported");
    assert_eq!(patch["path"], format!("/v1.0/users/{}", set_mail.id));
    assert_eq!(
        patch["mail"]["from"].as_str(),
        set_mail.mail.as_deref(),
        "the value before"
    );
    assert_eq!(patch["mail"]["to"], set_mail.other_mails[0].as_str());
    assert!(
        records
            .iter()
            .filter(|r| r["method"] == "POST")
            .all(|r| r["mail"].is_null())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_csv_export_is_for_excel_and_a_file_is_not_overwritten_silently() {
    let sim = quiet_sim(40).await;
    let (dir, set_mail) = converted(&sim).await;
    let seen = tenant_writes(&sim);
    let output = export(dir.path(), &sim, &["--format", "csv", "--out", "audit.csv"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let csv = std::fs::read_to_string(dir.path().join("audit.csv")).unwrap();
    assert!(csv.starts_with("\u{feff}time,operator,osUser,"), "{csv}");
    assert_eq!(csv.matches("\r\n").count(), seen.len() + 1);
    assert_eq!(csv.matches(",auditor,").count(), seen.len());
    assert!(csv.contains(set_mail.other_mails[0].as_str()));
    for (_, request_id, client_request_id) in &seen {
        assert!(csv.contains(request_id.as_str()) && csv.contains(client_request_id.as_str()));
    }
    let again = export(dir.path(), &sim, &["--format", "csv", "--out", "audit.csv"]).await;
    assert_eq!(again.status.code(), Some(4), "{}", text(&again.stderr));
    let forced = export(
        dir.path(),
        &sim,
        &["--format", "csv", "--out", "audit.csv", "--force"],
    )
    .await;
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_export_filters_by_wave_and_time() {
    let sim = quiet_sim(40).await;
    let (dir, _) = converted(&sim).await;
    let all = json_lines(&export(dir.path(), &sim, &["--format", "json"]).await);
    let pilot =
        json_lines(&export(dir.path(), &sim, &["--wave", "pilot", "--format", "json"]).await);
    assert_eq!(pilot, all);
    let unknown = export(dir.path(), &sim, &["--wave", "nope", "--format", "json"]).await;
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown.stderr));
    let since_then = json_lines(
        &export(
            dir.path(),
            &sim,
            &["--since", "2000-01-01", "--format", "json"],
        )
        .await,
    );
    assert_eq!(since_then, all);
    let future = json_lines(
        &export(
            dir.path(),
            &sim,
            &["--since", "2999-01-01T00:00:00Z", "--format", "json"],
        )
        .await,
    );
    assert!(future.is_empty());
    let middle = all[all.len() / 2]["time"].as_str().unwrap().to_owned();
    let later =
        json_lines(&export(dir.path(), &sim, &["--since", &middle, "--format", "json"]).await);
    assert!(!later.is_empty() && later.len() < all.len());
    assert!(
        later
            .iter()
            .all(|r| r["time"].as_str().unwrap() >= middle.as_str())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_export_never_creates_a_database() {
    let sim = quiet_sim(5).await;
    let dir = tempfile::tempdir().unwrap();
    let output = export(dir.path(), &sim, &["--format", "csv"]).await;
    assert_ne!(output.status.code(), Some(0));
    assert!(
        text(&output.stderr).contains("b2b-convert.db"),
        "{}",
        text(&output.stderr)
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing was created"
    );
}
