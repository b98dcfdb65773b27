//! Rebuild when a migration is added, so `sqlx::migrate!` embeds it.

#[allow(clippy::print_stdout)] // cargo reads build-script instructions from stdout
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
