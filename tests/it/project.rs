//! Promises about the repository itself: the README's test command is what CI runs, the
//! documented exit codes match the code, and the simulator depends on nothing of the product.

use std::path::Path;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The command on the line after `<!-- test-command -->` in README.md.
fn readme_test_command() -> String {
    let readme = read("README.md");
    let mut lines = readme
        .lines()
        .skip_while(|l| !l.contains("<!-- test-command -->"));
    lines
        .next()
        .expect("README.md marks its test command with <!-- test-command -->");
    lines
        .find(|l| !l.trim().is_empty() && !l.starts_with("```"))
        .expect("a command follows the marker")
        .trim()
        .to_owned()
}

#[test]
fn ci_runs_the_readme_test_command() {
    let command = readme_test_command();
    assert!(
        read(".ci/run").lines().any(|l| l.trim() == command),
        ".ci/run must run the README's test command `{command}` on a line of its own"
    );
}

#[test]
fn exit_codes_are_documented_as_implemented() {
    use b2b_convert::commands::exit;
    let doc = read("docs/operations.md");
    for (code, words) in [
        (exit::SUCCESS, "success"),
        (exit::FAILURE, "operational failure"),
        (exit::USAGE, "usage or configuration error"),
        (exit::USERS_FAILED, "some users failed"),
        (exit::REFUSED, "refused for safety"),
        (exit::QUOTA, "daily invitation quota"),
        (exit::INTERRUPTED, "interrupted"),
    ] {
        let row = format!("| {code} |");
        let line = doc
            .lines()
            .find(|l| l.starts_with(&row))
            .unwrap_or_else(|| panic!("docs/operations.md has no row for exit code {code}"));
        assert!(line.to_lowercase().contains(words), "{line}");
    }
}

/// The simulator's crate has no dependency on the product, by name or by path, in any dependency
/// table: cargo refuses a cycle through `[dependencies]`, but not through `[dev-dependencies]`,
/// which would let the simulator's tests lean on the product.
#[test]
fn the_simulator_depends_on_nothing_of_the_product() {
    let manifest: toml::Table = read("crates/b2b-convert-sim/Cargo.toml")
        .parse()
        .expect("the simulator's Cargo.toml parses");
    let mut tables = Vec::new();
    for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
        tables.extend(manifest.get(section).and_then(toml::Value::as_table));
    }
    for target in manifest
        .get("target")
        .and_then(toml::Value::as_table)
        .into_iter()
        .flat_map(toml::Table::values)
    {
        for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
            tables.extend(target.get(section).and_then(toml::Value::as_table));
        }
    }
    assert!(!tables.is_empty(), "the simulator has dependencies");
    for (name, spec) in tables.into_iter().flatten() {
        let package = spec
            .get("package")
            .and_then(toml::Value::as_str)
            .unwrap_or(name);
        assert_ne!(
            package, "b2b-convert",
            "the simulator depends on the product"
        );
        if let Some(path) = spec.get("path").and_then(toml::Value::as_str) {
            let root = Path::new(env!("CARGO_MANIFEST_DIR"));
            let target = root.join("crates/b2b-convert-sim").join(path);
            assert_ne!(
                target.canonicalize().ok(),
                root.canonicalize().ok(),
                "the simulator's dependency {name} is the product ({path})"
            );
        }
    }
}

#[test]
fn every_environment_variable_the_tool_reads_is_documented() {
    use b2b_convert::config::{ENV_KEYS, ENV_SECRETS, LOG_FILTER_VAR};
    let doc = read("docs/configuration.md");
    let missing: Vec<&str> = ENV_KEYS
        .iter()
        .chain(ENV_SECRETS)
        .map(|(var, _)| *var)
        .chain([LOG_FILTER_VAR, "B2BC_CONFIG"])
        .filter(|var| !doc.contains(&format!("| `{var}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md does not list {missing:?}"
    );
}
