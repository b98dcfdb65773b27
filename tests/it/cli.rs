//! The binary as an operator uses it: files it creates, what it refuses, what it prints, and
//! the exit codes scripts rely on.

use std::path::Path;

use predicates::prelude::*;

use crate::support::b2b_convert;

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_creates_a_commented_config_and_a_database_both_private() {
    let dir = tempfile::tempdir().unwrap();
    b2b_convert(dir.path())
        .arg("init")
        .assert()
        .success()
        .stdout(predicate::str::contains("b2b-convert.toml"));
    let config = dir.path().join("b2b-convert.toml");
    let db = dir.path().join("b2b-convert.db");
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        b2b_convert::config::EXAMPLE_CONFIG
    );
    assert!(db.exists());
    #[cfg(unix)]
    {
        assert_eq!(mode(&config), 0o600);
        assert_eq!(mode(&db), 0o600);
    }
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("b2b-convert.toml");
    std::fs::write(&config, "# my edits\n").unwrap();
    b2b_convert(dir.path()).arg("init").assert().code(4).stderr(
        predicate::str::contains("already exists").and(predicate::str::contains("--force")),
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), "# my edits\n");
    assert!(
        !dir.path().join("b2b-convert.db").exists(),
        "nothing else was created"
    );

    b2b_convert(dir.path())
        .args(["init", "--force"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        b2b_convert::config::EXAMPLE_CONFIG
    );
}

#[test]
fn init_honours_config_and_db_paths() {
    let dir = tempfile::tempdir().unwrap();
    b2b_convert(dir.path())
        .args([
            "init",
            "--config",
            "etc/tenant.toml",
            "--db",
            "state/tenant.db",
        ])
        .assert()
        .success();
    assert!(dir.path().join("etc/tenant.toml").exists());
    assert!(dir.path().join("state/tenant.db").exists());
}

#[test]
fn config_exits_2_naming_a_misspelt_key_and_its_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("b2b-convert.toml"),
        "[tenant]\ncloud = \"global\"\n\n[invitation]\nsend_mesage = false\n",
    )
    .unwrap();
    b2b_convert(dir.path())
        .arg("config")
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("invitation.send_mesage")
                .and(predicate::str::contains("b2b-convert.toml, line 5"))
                .and(predicate::str::contains("send_message")),
        );
}

#[test]
fn config_shows_where_values_come_from_and_hides_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("b2b-convert.toml"),
        "[tenant]\ncloud = \"china\"\n",
    )
    .unwrap();
    let output = b2b_convert(dir.path())
        .args(["config", "--json", "--db", "other.db"])
        .env("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555")
        .env("AZURE_CLIENT_SECRET", "Zq8~very-secret-value")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(output).unwrap();
    assert!(
        !text.contains("Zq8~very-secret-value"),
        "secret leaked: {text}"
    );
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let value = |key: &str| {
        json["values"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["key"] == key)
            .unwrap_or_else(|| panic!("{key} missing"))
            .clone()
    };
    assert_eq!(value("tenant.cloud")["origin"]["kind"], "file");
    assert_eq!(value("tenant.cloud")["origin"]["line"], 2);
    assert_eq!(
        value("tenant.client_id")["origin"]["var"],
        "AZURE_CLIENT_ID"
    );
    assert_eq!(value("store.path")["origin"]["flag"], "--db");
    assert_eq!(value("auth.client_secret")["value"], "(set)");
    assert_eq!(
        value("tenant.login_url")["value"],
        "https://login.chinacloudapi.cn/"
    );
    assert_eq!(
        value("throughput.max_concurrency")["origin"]["kind"],
        "default"
    );
}

#[test]
fn config_without_a_file_uses_defaults_but_a_named_missing_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    b2b_convert(dir.path())
        .arg("config")
        .assert()
        .success()
        .stdout(predicate::str::contains("built-in defaults"));
    b2b_convert(dir.path())
        .args(["config", "--config", "missing.toml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("missing.toml").and(predicate::str::contains("init")));
    b2b_convert(dir.path())
        .arg("config")
        .env("B2BC_CONFIG", "missing.toml")
        .assert()
        .code(2);
}

#[test]
fn secrets_never_reach_the_log_even_at_trace_level() {
    let dir = tempfile::tempdir().unwrap();
    b2b_convert(dir.path()).arg("init").assert().success();
    let secret = "Zq8~trace-secret";
    let output = b2b_convert(dir.path())
        .args(["-vvv", "config"])
        .env("AZURE_CLIENT_SECRET", secret)
        .env("B2BC_ACCESS_TOKEN", "eyJ.trace.token")
        .assert()
        .success()
        .get_output()
        .clone();
    let all = [output.stdout, output.stderr].concat();
    let all = String::from_utf8_lossy(&all);
    assert!(
        !all.contains(secret) && !all.contains("eyJ.trace.token"),
        "{all}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    b2b_convert(dir.path()).arg("frobnicate").assert().code(2);
    b2b_convert(dir.path())
        .args(["-q", "-v", "config"])
        .assert()
        .code(2);
}

#[test]
fn counts_and_delays_out_of_range_say_what_the_value_must_be() {
    let dir = tempfile::tempdir().unwrap();
    for (args, says) in [
        (
            &["run", "--wave", "w", "--limit", "0"][..],
            "positive whole number (1 or more), not `0`",
        ),
        (
            &["run", "--wave", "w", "--limit", "-1"],
            "positive whole number (1 or more), not `-1`",
        ),
        (&["plan", "--wave", "w", "--all", "--max", "-5"], "not `-5`"),
        (&["scramble", "--wave", "w", "--limit", "x"], "not `x`"),
        (
            &["run", "--wave", "w", "--reconcile-delay", "-1"],
            "from 0 to 3600, not `-1`",
        ),
        (
            &["run", "--wave", "w", "--reconcile-delay", "86400"],
            "at most 3600 seconds",
        ),
    ] {
        b2b_convert(dir.path())
            .args(args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(says));
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing created"
    );
}

#[test]
fn every_command_explains_itself_with_an_example() {
    let dir = tempfile::tempdir().unwrap();
    b2b_convert(dir.path())
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Exit codes"));
    for command in ["init", "config", "check", "discover", "plan", "report"] {
        b2b_convert(dir.path())
            .args([command, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains("Examples:"));
    }
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = b2b_convert(dir.path())
        .args(["--log-format", "json", "-vv", "init"])
        .assert()
        .success()
        .get_output()
        .stderr
        .clone();
    let text = String::from_utf8(output).unwrap();
    assert!(!text.trim().is_empty(), "debug logging produced nothing");
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
}

#[test]
fn sim_serve_prints_how_to_use_it_and_stops_on_ctrl_c() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin!("b2b-convert"))
        .args(["sim", "serve", "--users", "50", "--port", "0"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.contains("Press Ctrl-C");
        banner.push(line);
        if done {
            break;
        }
    }
    let banner = banner.join("\n");
    assert!(
        banner.contains("export B2BC_GRAPH_URL=http://127.0.0.1:"),
        "{banner}"
    );
    assert!(banner.contains("export AZURE_CLIENT_SECRET="), "{banner}");
    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("Stopping")), "{rest:?}");
}

#[test]
fn sim_serve_refuses_a_bad_fault_spec() {
    let dir = tempfile::tempdir().unwrap();
    b2b_convert(dir.path())
        .args(["sim", "serve", "--faults", "invitations:503=2"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--faults"));
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_writes_a_private_checked_copy_and_never_creates_a_database() {
    let dir = tempfile::tempdir().unwrap();
    b2b_convert(dir.path()).arg("init").assert().success();
    let copy = dir.path().join("backups").join("copy.db");
    std::fs::create_dir(dir.path().join("backups")).unwrap();
    b2b_convert(dir.path())
        .args(["backup", "--out", "backups/copy.db"])
        .assert()
        .success()
        .stdout(predicate::str::contains("integrity check"));
    #[cfg(unix)]
    assert_eq!(mode(&copy), 0o600);
    let store = b2b_convert::store::Store::open(&copy).await.unwrap();
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    assert!(store.schema_version().await.unwrap() > 0);
    store.close().await;
    let before = std::fs::read(&copy).unwrap();

    b2b_convert(dir.path())
        .args(["backup", "--out", "backups/copy.db"])
        .assert()
        .code(4)
        .stderr(
            predicate::str::contains("already exists").and(predicate::str::contains("--force")),
        );
    assert_eq!(std::fs::read(&copy).unwrap(), before, "left as it was");
    b2b_convert(dir.path())
        .args(["backup", "--out", "backups/copy.db", "--force"])
        .assert()
        .success();

    b2b_convert(dir.path())
        .args(["--db", "nowhere/state.db", "backup", "--out", "other.db"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "there is no database at nowhere/state.db",
        ));
    assert!(!dir.path().join("nowhere").exists(), "no folder created");
    assert!(!dir.path().join("other.db").exists(), "no copy written");
}

#[test]
fn commands_that_read_the_state_never_create_a_database_or_folders() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["status", "--wave", "pilot"][..],
        &["report", "--wave", "pilot"],
        &["export-links", "--wave", "pilot", "--out", "links.csv"],
        &["run", "--wave", "pilot", "--dry-run"],
        &["plan", "--wave", "pilot", "--all"],
        &["backup", "--out", "copy.db"],
    ] {
        b2b_convert(dir.path())
            .args(["--db", "nowhere/dir/state.db"])
            .args(args)
            .env("AZURE_TENANT_ID", "00000000-0000-0000-0000-000000000001")
            .assert()
            .code(2)
            .stderr(predicate::str::contains(
                "there is no database at nowhere/dir/state.db",
            ));
        let created: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(created.is_empty(), "{args:?} created {created:?}");
    }
}

#[test]
fn bash_completion_script_loads_in_bash_and_completes_commands() {
    let dir = tempfile::tempdir().unwrap();
    let script = b2b_convert(dir.path())
        .args(["completions", "bash"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let path = dir.path().join("b2b-convert.bash");
    std::fs::write(&path, script).unwrap();
    // Source it, then ask its completion function what follows `b2b-convert pl`.
    let probe = format!(
        "set -e; source '{}'; COMP_WORDS=(b2b-convert pl); COMP_CWORD=1; \
         _b2b__convert b2b-convert pl b2b-convert; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        path.display()
    );
    let out = std::process::Command::new("bash")
        .args(["--norc", "-c", &probe])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "plan");
}

#[test]
fn man_prints_the_main_page_and_writes_one_page_per_command() {
    let dir = tempfile::tempdir().unwrap();
    b2b_convert(dir.path())
        .arg("man")
        .assert()
        .success()
        .stdout(predicate::str::starts_with(".ie").and(predicate::str::contains(".SH NAME")));
    let pages = dir.path().join("man1");
    b2b_convert(dir.path())
        .args(["man", "--out"])
        .arg(&pages)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("create it first"));
    std::fs::create_dir(&pages).unwrap();
    b2b_convert(dir.path())
        .args(["man", "--out"])
        .arg(&pages)
        .assert()
        .success();
    let plan = std::fs::read_to_string(pages.join("b2b-convert-plan.1")).unwrap();
    assert!(
        plan.contains("b2b\\-convert plan"),
        "the synopsis names the command"
    );
    assert!(pages.join("b2b-convert.1").exists());
    assert!(
        !dir.path().join("b2b-convert.db").exists(),
        "no state touched"
    );
}

/// Runs the binary on a pseudo-terminal (util-linux `script`, essential on Debian) and returns
/// everything it wrote there.
#[cfg(unix)]
fn on_a_terminal(dir: &Path, args: &str, env: &[(&str, &str)]) -> String {
    let bin = assert_cmd::cargo::cargo_bin!("b2b-convert");
    let mut cmd = std::process::Command::new("script");
    cmd.current_dir(dir)
        .args(["-qec", &format!("{} {args}", bin.display()), "/dev/null"])
        .env_remove("NO_COLOR")
        .env("B2BC_IMDS_URL", "none")
        // An invalid filter makes the binary log a warning: a coloured level on a terminal.
        .env("B2BC_LOG", "b2b_convert=nonsense=1");
    for (name, value) in env {
        cmd.env(name, value);
    }
    let out = cmd.output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[cfg(unix)]
#[test]
fn no_color_and_color_never_keep_escape_sequences_off_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let args = "config --config missing.toml";
    let coloured = on_a_terminal(dir.path(), args, &[]);
    assert!(coloured.contains("WARN"), "{coloured:?}");
    assert!(
        coloured.contains('\u{1b}'),
        "by default a terminal gets colour: {coloured:?}"
    );
    for (args, env) in [
        (args.to_owned(), vec![("NO_COLOR", "1")]),
        (format!("{args} --color never"), vec![]),
        (format!("--color=NEVER {args}"), vec![]),
        // clap's own errors too.
        ("--no-such-flag".to_owned(), vec![("NO_COLOR", "1")]),
        ("--no-such-flag --color never".to_owned(), vec![]),
    ] {
        let text = on_a_terminal(dir.path(), &args, &env);
        assert!(!text.is_empty(), "{args}: nothing written");
        assert!(!text.contains('\u{1b}'), "{args} {env:?}: {text:?}");
    }
}

/// `config` on a 100-column terminal: its table fits, the long values wrap inside their
/// column, and each setting still starts its own line.
#[cfg(unix)]
#[test]
fn config_on_a_100_column_terminal_wraps_long_values_without_breaking_rows() {
    let dir = tempfile::tempdir().unwrap();
    let bin = assert_cmd::cargo::cargo_bin!("b2b-convert");
    let out = std::process::Command::new("script")
        .current_dir(dir.path())
        .args([
            "-qec",
            &format!("stty cols 100 rows 50; {} config", bin.display()),
            "/dev/null",
        ])
        .env_remove("COLUMNS")
        .env("B2BC_IMDS_URL", "none")
        .env("AZURE_TENANT_ID", "contoso.onmicrosoft.com")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    let lines: Vec<&str> = text.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.starts_with("KEY "))
        .unwrap_or_else(|| panic!("{text}"));
    let table = &lines[header..];
    for line in table {
        assert!(
            line.chars().count() <= 100,
            "wider than 100 columns: {line:?}\n{text}"
        );
    }
    // Every setting still starts a line of its own, in the KEY column.
    for key in ["invitation.redirect_url", "tenant.graph_url", "store.path"] {
        assert!(
            table.iter().any(|l| l.starts_with(key)),
            "{key} does not start a row:\n{text}"
        );
    }
    // At least one value was too long for its column and continues on the next lines,
    // indented to the VALUE column.
    let value_at = table[0].find("VALUE").unwrap();
    assert!(
        table[1..]
            .iter()
            .any(|l| l.len() > value_at && l[..value_at].trim().is_empty()),
        "nothing wrapped at 100 columns:\n{text}"
    );
}

#[test]
fn version_names_the_commit_and_its_date_and_help_sets_global_options_apart() {
    let dir = tempfile::tempdir().unwrap();
    let out = b2b_convert(dir.path())
        .arg("--version")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let version = String::from_utf8(out).unwrap();
    let stamp = version
        .trim()
        .strip_prefix(&format!("b2b-convert {} (", env!("CARGO_PKG_VERSION")))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{version}"));
    let is_commit = |s: &str| {
        s.strip_prefix("commit ")
            .and_then(|s| s.split_once(", "))
            .is_some_and(|(hash, date)| {
                hash.len() == 12 && hash.chars().all(|c| c.is_ascii_hexdigit()) && date.len() == 10
            })
    };
    assert!(
        is_commit(stamp) || stamp == "not built from a git checkout",
        "{version}"
    );

    let help = b2b_convert(dir.path())
        .args(["status", "--help"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let help = String::from_utf8(help).unwrap();
    let (own, global) = help.split_once("Global options:").expect(&help);
    assert!(
        own.contains("--wave") && !own.contains("--log-format"),
        "{help}"
    );
    assert!(
        global.contains("--log-format") && global.contains("--color"),
        "{help}"
    );
}
