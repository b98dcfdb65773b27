//! `sim serve`: run the simulated tenant in the foreground until Ctrl-C.

use anyhow::Context;
use b2b_convert_sim::{CountedAt, FaultPlan, ServeOptions};

use super::Outcome;
use crate::cli::{SimArgs, SimCommand, ThrottleCountedAt};
use crate::output;

/// A `--faults` value that does not parse (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("--faults: {0}")]
pub struct BadFaults(String);

impl SimArgs {
    pub async fn run(self) -> anyhow::Result<Outcome> {
        let SimCommand::Serve(args) = self.command;
        let mut faults = FaultPlan::none();
        for spec in &args.faults {
            faults
                .merge_str(spec)
                .map_err(|e| BadFaults(e.to_string()))?;
        }
        let options = ServeOptions {
            users: args.users,
            seed: args.seed,
            port: args.port,
            tenant_file: args.tenant,
            faults,
            throttling: !args.no_throttling,
            counted_at: match args.throttle_counted_at {
                ThrottleCountedAt::Arrival => CountedAt::Arrival,
                ThrottleCountedAt::Answer => CountedAt::Answer,
            },
            credentials_dir: args.credentials_dir,
        };
        let interrupted = super::interruption()?;
        let mut out = output::stdout_unbuffered();
        b2b_convert_sim::serve(options, &mut out, interrupted)
            .await
            .context("running the simulated tenant")?;
        Ok(Outcome::Done)
    }
}
