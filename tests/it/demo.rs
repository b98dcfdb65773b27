//! `demo`: the README's first command runs the whole workflow against the in-process simulator.

use crate::support::{b2b_convert, run, text};

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_runs_every_step_and_names_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let mut cmd = b2b_convert(dir.path());
    cmd.args(["demo", "--users", "300", "--pilot", "60", "--out"])
        .arg(&out);
    let output = run(cmd).await;
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    for step in [
        "$ b2b-convert init",
        "$ b2b-convert check",
        "$ b2b-convert discover",
        "$ b2b-convert plan --wave pilot --csv pilot.csv --max 60",
        "$ b2b-convert run --wave pilot --yes",
        "$ b2b-convert verify --wave pilot",
        "$ b2b-convert status --wave pilot --refresh",
        "$ b2b-convert audit export --wave pilot --format csv --out audit.csv",
    ] {
        assert!(stdout.contains(step), "missing `{step}` in:\n{stdout}");
    }
    assert!(stdout.contains("Run of wave pilot finished"), "{stdout}");
    assert!(stdout.contains("newly accepted"), "{stdout}");
    let report = out.join("pilot.html");
    assert!(stdout.contains(&report.display().to_string()), "{stdout}");
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("<svg"), "the report has its charts");
    // The audit trail: one row per write, each with its request ids and the operator.
    let audit = std::fs::read_to_string(out.join("audit.csv")).unwrap();
    let mut rows = csv::Reader::from_reader(audit.trim_start_matches('\u{feff}').as_bytes());
    let header = rows.headers().unwrap().clone();
    let column = |name| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    assert!(
        rows.iter().any(|r| &r[column("method")] == "POST"),
        "{audit}"
    );
    for row in &rows {
        for name in [
            "requestId",
            "clientRequestId",
            "operator",
            "appId",
            "host",
            "toolVersion",
        ] {
            assert!(!row[column(name)].is_empty(), "{name} in {row:?}");
        }
    }

    // A second demo replaces the first; a folder that is not a demo's is refused.
    let mut again = b2b_convert(dir.path());
    again
        .args(["demo", "--users", "100", "--pilot", "5", "--out"])
        .arg(&out);
    assert_eq!(run(again).await.status.code(), Some(0));
    let foreign = dir.path().join("mine");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "keep me").unwrap();
    let mut refused = b2b_convert(dir.path());
    refused.args(["demo", "--out"]).arg(&foreign);
    let output = run(refused).await;
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(foreign.join("notes.txt").exists());
}
