//! Promises about the repository itself: the README's test command is what CI runs, and the
//! documented exit codes match the code.

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
    ] {
        let row = format!("| {code} |");
        let line = doc
            .lines()
            .find(|l| l.starts_with(&row))
            .unwrap_or_else(|| panic!("docs/operations.md has no row for exit code {code}"));
        assert!(line.to_lowercase().contains(words), "{line}");
    }
}
