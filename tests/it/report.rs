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
