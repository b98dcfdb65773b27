//! Every JSON document the commands print (`--json`, `report --format json`, `audit export
//! --format json`) validates against its schema in `docs/schema/`, run for real against the
//! simulated tenant; every schema there is used, strict (unknown fields are refused), and pins
//! the document's `schema_version`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{cli, quiet_sim, text};

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schema")
}

/// The schema `docs/schema/{name}.schema.json`, compiled.
fn validator(name: &str) -> jsonschema::Validator {
    let path = schema_dir().join(format!("{name}.schema.json"));
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    jsonschema::validator_for(&schema)
        .unwrap_or_else(|e| panic!("{} is not a valid schema: {e}", path.display()))
}

/// Asserts that `document` is valid under schema `name`, naming every violation.
pub fn assert_valid(name: &str, document: &Value) {
    let errors: Vec<String> = validator(name)
        .iter_errors(document)
        .map(|e| format!("  at {}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "the output does not match docs/schema/{name}.schema.json:\n{}\n{}",
        errors.join("\n"),
        serde_json::to_string_pretty(document).unwrap()
    );
}

/// Runs a command with `args` and validates its stdout under schema `name`; returns the
/// document.
async fn checked(
    dir: &Path,
    sim: &b2b_convert_sim::Sim,
    name: &str,
    args: &[&str],
    exit: i32,
    validated: &mut BTreeSet<String>,
) -> Value {
    let output = cli(dir, sim, args).await;
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(exit),
        "{args:?}\n{stdout}\n{}",
        text(&output.stderr)
    );
    let document: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{args:?} printed no single JSON document ({e}):\n{stdout}"));
    assert_valid(name, &document);
    validated.insert(name.to_owned());
    document
}

#[tokio::test(flavor = "multi_thread")]
#[allow(clippy::too_many_lines)] // the whole workflow, one document per step
async fn every_json_document_matches_its_schema_in_docs() {
    let sim = quiet_sim(120).await;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let mut seen = BTreeSet::new();
    let seen = &mut seen;

    checked(dir, &sim, "config", &["config", "--json"], 0, seen).await;
    checked(dir, &sim, "check", &["check", "--json"], 0, seen).await;
    let discover = checked(dir, &sim, "discover", &["discover", "--json"], 0, seen).await;
    assert_eq!(discover["users_stored"], 120);
    let plan = checked(
        dir,
        &sim,
        "plan",
        &["plan", "--wave", "pilot", "--all", "--json"],
        0,
        seen,
    )
    .await;
    assert!(plan["eligible"].as_u64().unwrap() > 0, "{plan}");
    // A re-plan says what changed.
    let replan = checked(
        dir,
        &sim,
        "plan",
        &["plan", "--wave", "pilot", "--json"],
        0,
        seen,
    )
    .await;
    assert!(replan["replanned"].is_object(), "{replan}");
    checked(
        dir,
        &sim,
        "report",
        &["report", "--wave", "pilot", "--format", "json"],
        0,
        seen,
    )
    .await;
    let dry = checked(
        dir,
        &sim,
        "dry-run",
        &["run", "--wave", "pilot", "--dry-run", "--json"],
        0,
        seen,
    )
    .await;
    assert_eq!(dry["invitations"], plan["eligible"]);
    let run = checked(
        dir,
        &sim,
        "run",
        &[
            "run",
            "--wave",
            "pilot",
            "--yes",
            "--reconcile-delay",
            "0",
            "--json",
        ],
        0,
        seen,
    )
    .await;
    assert_eq!(run["invited"], plan["eligible"]);
    // Nothing left: the same document, with nothing done.
    checked(
        dir,
        &sim,
        "run",
        &["run", "--wave", "pilot", "--yes", "--json"],
        0,
        seen,
    )
    .await;
    // Two converted users redeem: a reset of their redemption is what is left to send.
    let report: Value = serde_json::from_str(&text(
        &cli(
            dir,
            &sim,
            &["report", "--wave", "pilot", "--format", "json"],
        )
        .await
        .stdout,
    ))
    .unwrap();
    let members = report["members"].as_array().unwrap().clone();
    let eligible: Vec<&str> = members
        .iter()
        .filter(|m| m["decision"] == "eligible")
        .map(|m| m["user_principal_name"].as_str().unwrap())
        .collect();
    let redeemed: Vec<&str> = members
        .iter()
        .filter(|m| m["decision"] == "eligible")
        .take(2)
        .map(|m| m["user_id"].as_str().unwrap())
        .collect();
    for user in &redeemed {
        sim.redeem(user).unwrap();
    }
    checked(
        dir,
        &sim,
        "status",
        &["status", "--wave", "pilot", "--refresh", "--json"],
        0,
        seen,
    )
    .await;
    checked(
        dir,
        &sim,
        "status-pending",
        &["status", "--wave", "pilot", "--pending", "--json"],
        0,
        seen,
    )
    .await;
    checked(dir, &sim, "waves", &["waves", "--json"], 0, seen).await;
    checked(
        dir,
        &sim,
        "verify",
        &["verify", "--wave", "pilot", "--json"],
        0,
        seen,
    )
    .await;
    checked(
        dir,
        &sim,
        "set-user-type",
        &[
            "set-user-type",
            "--wave",
            "pilot",
            "--to",
            "guest",
            "--dry-run",
            "--json",
        ],
        0,
        seen,
    )
    .await;
    checked(
        dir,
        &sim,
        "dry-run",
        &[
            "reinvite",
            "--wave",
            "pilot",
            "--reset-redemption",
            "--user",
            eligible[0],
            "--dry-run",
            "--json",
        ],
        0,
        seen,
    )
    .await;
    checked(
        dir,
        &sim,
        "reinvite",
        &[
            "reinvite",
            "--wave",
            "pilot",
            "--reset-redemption",
            "--user",
            eligible[0],
            "--yes",
            "--reconcile-delay",
            "0",
            "--json",
        ],
        0,
        seen,
    )
    .await;
    checked(
        dir,
        &sim,
        "scramble",
        &["scramble", "--wave", "pilot", "--dry-run", "--json"],
        0,
        seen,
    )
    .await;
    checked(
        dir,
        &sim,
        "scramble",
        &[
            "scramble",
            "--wave",
            "pilot",
            "--include-invited",
            "--emit-powershell",
            "scramble.ps1",
            "--json",
        ],
        0,
        seen,
    )
    .await;

    // One user alone: blocked (exit 4), dry run, then for real.
    let blocked = members
        .iter()
        .find(|m| m["decision"] == "blocked")
        .expect("the generated tenant has blocked users");
    let blocked_upn = blocked["user_principal_name"].as_str().unwrap();
    let document = checked(
        dir,
        &sim,
        "invite",
        &["invite", "--user", blocked_upn, "--yes", "--json"],
        4,
        seen,
    )
    .await;
    assert_eq!(document["evaluation"]["decision"], "blocked");
    // Every eligible user is converted by now: resetting the redemption of one who redeemed is
    // the one invitation left to send.
    let invited = eligible[1];
    let document = checked(
        dir,
        &sim,
        "invite",
        &[
            "invite",
            "--user",
            invited,
            "--reset-redemption",
            "--dry-run",
            "--json",
        ],
        0,
        seen,
    )
    .await;
    assert_eq!(document["dry_run"]["invitations"], 1, "{document}");
    let document = checked(
        dir,
        &sim,
        "invite",
        &[
            "invite",
            "--user",
            invited,
            "--reset-redemption",
            "--yes",
            "--json",
        ],
        0,
        seen,
    )
    .await;
    assert_eq!(document["run"]["invited"], 1, "{document}");

    // The audit trail is JSON Lines: every line validates.
    let output = cli(dir, &sim, &["audit", "export", "--format", "json"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let lines = text(&output.stdout);
    assert!(lines.lines().count() > 1);
    for line in lines.lines() {
        assert_valid("audit", &serde_json::from_str(line).unwrap());
    }
    seen.insert("audit".to_owned());

    // export-links needs a wave run without Microsoft's email: tested in `export_links_…`.
    seen.insert("export-links".to_owned());
    assert_eq!(
        *seen,
        schema_names(),
        "every schema in docs/schema is exercised here, and every document has a schema"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn export_links_json_names_the_file_and_never_holds_a_link() {
    let sim = quiet_sim(30).await;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    std::fs::write(
        dir.join("b2b-convert.toml"),
        "[invitation]\nsend_message = false\n",
    )
    .unwrap();
    for args in [
        &["discover"][..],
        &["plan", "--wave", "w", "--all"],
        &["run", "--wave", "w", "--yes", "--reconcile-delay", "0"],
    ] {
        let output = cli(dir, &sim, args).await;
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    }
    let mut seen = BTreeSet::new();
    let document = checked(
        dir,
        &sim,
        "export-links",
        &[
            "export-links",
            "--wave",
            "w",
            "--out",
            "links.csv",
            "--json",
        ],
        0,
        &mut seen,
    )
    .await;
    assert!(document["links_written"].as_u64().unwrap() > 0);
    assert!(!document.to_string().contains("redeem"), "{document}");
}

/// The schema names in docs/schema.
fn schema_names() -> BTreeSet<String> {
    std::fs::read_dir(schema_dir())
        .unwrap()
        .map(|entry| {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".schema.json")
                .unwrap_or_else(|| panic!("docs/schema/{name} is not a `.schema.json` file"))
                .to_owned()
        })
        .collect()
}

#[test]
fn every_schema_is_strict_and_pins_its_schema_version() {
    for name in schema_names() {
        let path = schema_dir().join(format!("{name}.schema.json"));
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{name}"
        );
        assert_eq!(schema["additionalProperties"], false, "{name}: top level");
        assert!(
            schema["properties"]["schema_version"]["const"].is_u64(),
            "{name}: schema_version is pinned with `const`"
        );
        let required = schema["required"].as_array().unwrap();
        assert!(
            required.contains(&Value::from("schema_version")),
            "{name}: schema_version is required"
        );
        // Every object anywhere in the schema refuses unknown fields.
        let mut open = Vec::new();
        find_open_objects(&schema, "", &mut open);
        assert!(
            open.is_empty(),
            "{name}: objects without additionalProperties: false at {open:?}"
        );
    }
}

fn find_open_objects(schema: &Value, at: &str, open: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties")
                && map.get("additionalProperties") != Some(&Value::Bool(false))
            {
                open.push(at.to_owned());
            }
            for (key, value) in map {
                find_open_objects(value, &format!("{at}/{key}"), open);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                find_open_objects(item, &format!("{at}/{i}"), open);
            }
        }
        _ => {}
    }
}
