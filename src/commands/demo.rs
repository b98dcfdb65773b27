//! `demo`: the operator's whole workflow against a simulated tenant started in this process.
//! Orchestration only: each step is the real command, parsed from the command line an
//! administrator would type and run with the simulator's environment, over HTTP.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use b2b_convert_sim::{FaultPlan, RedemptionConfig, Sim, SimSpec};
use clap::Parser as _;

use super::{Ctx, Outcome, UsageError};
use crate::cli::{Cli, DemoArgs};
use crate::config::Environment;
use crate::output;

/// Marks a folder as a demo's, so a later demo may replace it.
const MARKER: &str = ".b2b-convert-demo";
const SEED: u64 = 2026;

impl DemoArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<Outcome> {
        let out = prepare_folder(&self.out)?;
        let sim = start_sim(self.users).await?;
        // The simulator's credentials, and who runs the demo (the audit trail names them).
        let operator = ctx.operator();
        let env = Environment::from_pairs(
            [
                ("AZURE_TENANT_ID", sim.tenant_id().to_owned()),
                ("AZURE_CLIENT_ID", sim.client_id().to_owned()),
                ("AZURE_CLIENT_SECRET", sim.client_secret().to_owned()),
                ("B2BC_GRAPH_URL", sim.graph_url().to_owned()),
                ("B2BC_LOGIN_URL", sim.login_url().to_owned()),
            ]
            .into_iter()
            .chain(operator.os_user.map(|user| ("USER", user))),
        );
        output::write_stdout(&format!(
            "b2b-convert demo: a simulated tenant of {} users (every eligibility case, the service's throttling, realistic latency) is running at {}.\n\
             Each step below is the real command, run against it over HTTP; they use {} and the\n\
             simulator's credentials in the environment, as `b2b-convert sim serve` prints them.\n",
            self.users,
            sim.graph_url(),
            out.join("b2b-convert.toml").display(),
        ))?;
        let pilot_csv = out.join("pilot.csv");
        write_pilot(&sim, &pilot_csv, self.pilot)?;
        let report = out.join("pilot.html");
        let steps = steps(&pilot_csv, &report, &out.join("audit.csv"), self.pilot);
        let config = out.join("b2b-convert.toml");
        for (step, why) in steps {
            output::write_stdout(&format!(
                "\n# {why}\n$ b2b-convert {}\n",
                shown(&step, &out)
            ))?;
            let mut argv = vec![
                "b2b-convert".to_owned(),
                "--config".to_owned(),
                config.to_string_lossy().into_owned(),
            ];
            if step[0] == "report" && step.iter().any(|a| a == "--out") {
                argv.push("--quiet".into());
            }
            argv.extend(step.iter().cloned());
            let cli = Cli::try_parse_from(&argv).context("a demo step parses")?;
            let outcome = Box::pin(super::run(cli, env.clone()))
                .await
                .with_context(|| {
                    format!("demo step `b2b-convert {}` failed", shown(&step, &out))
                })?;
            if outcome == Outcome::Interrupted {
                sim.shutdown().await;
                return Ok(Outcome::Interrupted);
            }
            if outcome == Outcome::SomeUsersFailed {
                output::write_stdout("(some users failed: the summary above says why)\n")?;
            }
        }
        sim.shutdown().await;
        output::write_stdout(&format!(
            "\nDone. Open the dry-run and progress report: {}\nThe database, configuration and CSV are in {}.\n",
            report.display(),
            out.display()
        ))?;
        Ok(Outcome::Done)
    }
}

/// The simulated tenant of the demo: throttled like the service, with realistic latency, and
/// partners who redeem as soon as they are invited (four in ten).
async fn start_sim(users: u64) -> anyhow::Result<Sim> {
    Sim::start(
        SimSpec::generated(users, SEED)
            .with_faults(
                FaultPlan::parse(
                    "all:latency=10-40ms;list-users:latency=60-150ms;invitations:latency=120-400ms;patch-user:latency=80-200ms",
                )
                .expect("the demo's fault plan parses"),
            )
            .with_redemption(RedemptionConfig {
                fraction: 0.4,
                after: Duration::ZERO,
            }),
    )
    .await
    .context("starting the simulated tenant")
}

/// The demo's steps: the command line after `b2b-convert`, and why.
fn steps(
    pilot_csv: &Path,
    report: &Path,
    audit: &Path,
    pilot: u64,
) -> Vec<(Vec<String>, &'static str)> {
    vec![
        (
            args(&["init"]),
            "Write a commented configuration and create the state database.",
        ),
        (
            args(&["check"]),
            "Is the token good, which permissions does the app have? (read-only)",
        ),
        (
            args(&["discover"]),
            "Snapshot every user and the tenant's facts into SQLite. (read-only)",
        ),
        (
            args(&[
                "plan",
                "--wave",
                "pilot",
                "--csv",
                &pilot_csv.to_string_lossy(),
                "--max",
                &pilot.to_string(),
            ]),
            "Evaluate the pilot users with the eligibility rules and store the plan. (read-only)",
        ),
        (
            args(&["report", "--wave", "pilot"]),
            "The dry-run report in the terminal.",
        ),
        (
            args(&[
                "report",
                "--wave",
                "pilot",
                "--format",
                "html",
                "--out",
                &report.to_string_lossy(),
            ]),
            "The same report as one self-contained HTML page.",
        ),
        (
            args(&["run", "--wave", "pilot", "--dry-run", "--limit", "2"]),
            "The exact requests `run` would send, for the first two users.",
        ),
        (
            args(&["run", "--wave", "pilot", "--yes"]),
            "Convert the pilot: paced invitations, resumable.",
        ),
        (
            args(&["verify", "--wave", "pilot"]),
            "Did every converted user keep its UPN, groups and app role assignments?",
        ),
        (
            args(&["status", "--wave", "pilot", "--refresh"]),
            "Who has redeemed? (some simulated partners already did)",
        ),
        (
            args(&[
                "audit",
                "export",
                "--wave",
                "pilot",
                "--format",
                "csv",
                "--out",
                &audit.to_string_lossy(),
            ]),
            "Every tenant write, with who made it and Graph's request ids, for an auditor. (read-only)",
        ),
        (
            args(&[
                "report",
                "--wave",
                "pilot",
                "--format",
                "html",
                "--out",
                &report.to_string_lossy(),
            ]),
            "The HTML report again, now with the run's funnel.",
        ),
    ]
}

fn args(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| (*p).to_owned()).collect()
}

/// The step as typed in the demo folder (paths relative to it).
fn shown(step: &[String], out: &Path) -> String {
    step.iter()
        .map(|a| {
            Path::new(a)
                .strip_prefix(out)
                .map_or_else(|_| a.clone(), |p| p.to_string_lossy().into_owned())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Creates the folder, or empties a previous demo's; refuses a folder that is someone else's.
fn prepare_folder(out: &Path) -> anyhow::Result<PathBuf> {
    if out.exists() {
        let previous = out.join(MARKER).exists();
        let empty = std::fs::read_dir(out)
            .with_context(|| format!("reading {}", out.display()))?
            .next()
            .is_none();
        if !previous && !empty {
            return Err(UsageError(format!(
                "{} exists and is not a previous demo's folder; choose another with --out",
                out.display()
            ))
            .into());
        }
        if previous {
            std::fs::remove_dir_all(out).with_context(|| format!("replacing {}", out.display()))?;
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(
        out.join(MARKER),
        "a b2b-convert demo; `b2b-convert demo` may replace this folder\n",
    )
    .with_context(|| format!("writing into {}", out.display()))?;
    Ok(std::path::absolute(out)?)
}

/// The pilot wave's CSV: the first `count` users by UPN.
fn write_pilot(sim: &Sim, path: &Path, count: u64) -> anyhow::Result<()> {
    let mut csv = String::from("user\n");
    for index in 0..count.min(sim.user_count()) {
        if let Some(user) = sim.user_at(index) {
            csv.push_str(&user.user_principal_name);
            csv.push('\n');
        }
    }
    crate::fsutil::write_private(path, csv.as_bytes(), crate::fsutil::Overwrite::Yes)?;
    Ok(())
}
