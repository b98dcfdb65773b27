//! Build script: rebuilds when a migration is added, so `sqlx::migrate!` embeds it; and stamps
//! the version `--version` prints with the commit it was built from and that commit's date (not
//! the build time, so a build stays reproducible). Outside a git checkout (a source tarball)
//! the version says so instead.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}

#[allow(clippy::print_stdout)] // cargo reads build-script instructions from stdout
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    let version = env!("CARGO_PKG_VERSION");
    let long = match (
        git(&["rev-parse", "--short=12", "HEAD"]),
        git(&["log", "-1", "--format=%cs"]),
    ) {
        (Some(commit), Some(date)) => format!("{version} (commit {commit}, {date})"),
        _ => format!("{version} (not built from a git checkout)"),
    };
    println!("cargo:rustc-env=B2BC_LONG_VERSION={long}");
    // Rebuild the stamp when the checked-out commit moves (a worktree's HEAD, the branch it
    // points at, or refs packed by `git gc`).
    println!("cargo:rerun-if-changed=build.rs");
    for path in ["HEAD", "packed-refs"] {
        if let Some(file) = git(&["rev-parse", "--git-path", path]) {
            println!("cargo:rerun-if-changed={file}");
        }
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"])
        && let Some(file) = git(&["rev-parse", "--git-path", &branch])
    {
        println!("cargo:rerun-if-changed={file}");
    }
}
