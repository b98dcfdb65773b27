//! `report` from the stored plan: every format, files written privately, unknown waves named.

use b2b_convert_sim::{Sim, UserCase};

use crate::support::{cli, quiet_sim, text};

/// A discovered tenant with a planned wave `pilot` of one eligible and one blocked user.
async fn planned() -> (Sim, tempfile::TempDir, String, String) {
    let sim = quiet_sim(300).await;
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        cli(dir.path(), &sim, &["discover"]).await.status.code(),
        Some(0)
    );
    let eligible = sim.find_user(UserCase::CloudMailExternal).unwrap();
    let blocked = sim.find_user(UserCase::SyncedOnPremisesUpn).unwrap();
    std::fs::write(
        dir.path().join("pilot.csv"),
        format!("user\n{}\n{}\n", eligible.id, blocked.id),
    )
    .unwrap();
    let plan = cli(
        dir.path(),
        &sim,
        &["plan", "--wave", "pilot", "--csv", "pilot.csv"],
    )
    .await;
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan.stderr));
    (
        sim,
        dir,
        eligible.user_principal_name,
        blocked.user_principal_name,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn every_format_renders_the_stored_plan() {
    let (sim, dir, eligible, blocked) = planned().await;

    let table = cli(dir.path(), &sim, &["report", "--wave", "pilot"]).await;
    let table_text = text(&table.stdout);
    assert_eq!(table.status.code(), Some(0), "{}", text(&table.stderr));
    assert!(table_text.contains("on-premises-upn-set"), "{table_text}");
    assert!(
        table_text.contains(&blocked),
        "the blocked user is listed: {table_text}"
    );

    let json = cli(
        dir.path(),
        &sim,
        &["report", "--wave", "pilot", "--format", "json"],
    )
    .await;
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["wave"]["name"], "pilot");
    assert_eq!(report["members"].as_array().unwrap().len(), 2);

    let csv = cli(
        dir.path(),
        &sim,
        &["report", "--wave", "pilot", "--format", "csv"],
    )
    .await;
    let csv_text = text(&csv.stdout);
    assert!(csv_text.starts_with('\u{feff}'), "a BOM for Excel");
    assert!(csv_text.contains(&eligible), "{csv_text}");

    let html = cli(
        dir.path(),
        &sim,
        &[
            "report",
            "--wave",
            "pilot",
            "--format",
            "html",
            "--out",
            "pilot.html",
        ],
    )
    .await;
    assert_eq!(html.status.code(), Some(0), "{}", text(&html.stderr));
    let path = dir.path().join("pilot.html");
    let page = std::fs::read_to_string(&path).unwrap();
    assert!(page.contains("Content-Security-Policy"));
    assert!(
        !page.contains("<script src") && !page.contains("<link"),
        "self-contained"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "reports hold tenant data");
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_wave_names_the_known_ones() {
    let (sim, dir, _, _) = planned().await;
    let output = cli(dir.path(), &sim, &["report", "--wave", "nope"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("the waves are: pilot"),
        "{}",
        text(&output.stderr)
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn check_and_the_report_warn_about_a_young_tenants_daily_invitation_quota() {
    let created = (time::OffsetDateTime::now_utc() - time::Duration::days(5))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let sim = Sim::start(
        b2b_convert_sim::SimSpec::generated(1_000, 7)
            .with_throttling(b2b_convert_sim::ThrottleConfig::disabled())
            .with_tenant_created(created),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let check = cli(dir.path(), &sim, &["check"]).await;
    let stdout = text(&check.stdout);
    assert!(
        stdout.contains("Warning: the tenant was created")
            && stdout.contains("5 day(s) ago")
            && stdout.contains("max_invitations_per_day"),
        "{stdout}"
    );
    for step in [&["discover"][..], &["plan", "--wave", "pilot", "--all"]] {
        let output = cli(dir.path(), &sim, step).await;
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    }
    let table = cli(dir.path(), &sim, &["report", "--wave", "pilot"]).await;
    let table = text(&table.stdout);
    assert!(
        table.contains("Warning: the tenant was created")
            && table.contains("users to invite, more than one day's quota"),
        "{table}"
    );
    let json = cli(
        dir.path(),
        &sim,
        &["report", "--wave", "pilot", "--format", "json"],
    )
    .await;
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        json["warnings"].as_array().map(Vec::len),
        Some(1),
        "{}",
        json["warnings"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_old_tenant_or_a_small_wave_is_not_warned_about() {
    let (sim, dir, _, _) = planned().await;
    let check = cli(dir.path(), &sim, &["check"]).await;
    assert!(!text(&check.stdout).contains("Warning: the tenant"));
    let json = cli(
        dir.path(),
        &sim,
        &["report", "--wave", "pilot", "--format", "json"],
    )
    .await;
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(json.get("warnings").is_none(), "{json}");
}
