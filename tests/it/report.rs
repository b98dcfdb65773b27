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

/// Chromium and `pdftotext` (poppler-utils): `scripts/test` installs both and sets
/// `B2BC_REQUIRE_CHROMIUM=1`, so there a missing tool fails the test; elsewhere it is skipped
/// with a message.
#[allow(clippy::disallowed_methods, clippy::print_stderr)] // reads the test run's switch, says why it skips
fn print_tools() -> Option<(&'static str, &'static str)> {
    let found = |tool: &str, version: &str| {
        std::process::Command::new(tool)
            .arg(version)
            .output()
            .is_ok_and(|out| out.status.success())
    };
    if found("chromium", "--version") && found("pdftotext", "-v") {
        return Some(("chromium", "pdftotext"));
    }
    assert!(
        std::env::var_os("B2BC_REQUIRE_CHROMIUM").is_none(),
        "B2BC_REQUIRE_CHROMIUM is set but chromium or pdftotext is missing"
    );
    eprintln!(
        "SKIPPED: the printed-report test needs chromium and pdftotext (poppler-utils); \
         scripts/test installs them"
    );
    None
}

/// Prints `html` to PDF in headless Chromium (no network, a fresh profile) and returns the
/// PDF's text.
fn printed_text(html: &std::path::Path) -> String {
    let (chromium, pdftotext) = print_tools().expect("checked by the caller");
    let dir = html.parent().unwrap();
    let pdf = dir.join("printed.pdf");
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-pdf-header-footer",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(
        pdf.exists(),
        "chromium printed nothing: {}",
        text(&out.stderr)
    );
    let out = std::process::Command::new(pdftotext)
        .arg(&pdf)
        .arg("-")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_printed_report_of_a_400_user_wave_lists_every_user_and_the_sign_off() {
    if print_tools().is_none() {
        return;
    }
    let sim = quiet_sim(400).await;
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        cli(dir.path(), &sim, &["discover"]).await.status.code(),
        Some(0)
    );
    let plan = cli(dir.path(), &sim, &["plan", "--wave", "pilot", "--all"]).await;
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan.stderr));
    let json = cli(
        dir.path(),
        &sim,
        &["report", "--wave", "pilot", "--format", "json"],
    )
    .await;
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let members = report["members"].as_array().unwrap();
    assert_eq!(members.len(), 400);
    let html = dir.path().join("pilot.html");
    let written = cli(
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
    assert_eq!(written.status.code(), Some(0), "{}", text(&written.stderr));

    let printed = printed_text(&html);
    // pdftotext may break a long cell over lines: compare without white space.
    let squeezed: String = printed.split_whitespace().collect();
    let missing: Vec<&str> = members
        .iter()
        .map(|m| m["user_principal_name"].as_str().unwrap())
        .filter(|upn| !squeezed.contains(&upn.split_whitespace().collect::<String>()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} users are missing from the printed report, e.g. {:?}",
        missing.len(),
        members.len(),
        &missing[..missing.len().min(5)]
    );
    for decision in ["blocked", "eligible"] {
        assert!(
            members.iter().any(|m| m["decision"] == decision),
            "the wave has {decision} users"
        );
    }
    for heading in [
        "Whatwillhappenwhenthewaveisrun",
        "Blockedusers(",
        "Userstobeconverted(",
        "Sign-off",
        "Approvedby(changeboard)",
    ] {
        assert!(squeezed.contains(heading), "`{heading}` is not printed");
    }
    let hash = report["wave"]["plan_hash"].as_str().unwrap();
    assert!(squeezed.contains(hash), "the full plan hash is printed");
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
