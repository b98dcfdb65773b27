//! One file per subcommand: orchestration only. A command loads what it needs through [`Ctx`],
//! calls the modules that do the work, and formats the result through `output`.
//!
//! This layer (with `main.rs`) is the `anyhow` boundary: module errors arrive typed and leave
//! with context. It decides exit codes and must not contain SQL, HTTP or rule logic.

mod config;
mod init;

use std::path::Path;

use crate::cli::{Cli, Command};
use crate::config::{Environment, FlagOverride, Settings, Sources};
use crate::store::Store;

/// How a command that ran to its end went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Everything it set out to do is done.
    Done,
    /// It finished, but some users failed (exit code 3).
    SomeUsersFailed,
}

/// The command refused to act because acting could do harm (exit code 4). The message says
/// what to do instead.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Exit codes; scripts depend on them (docs/operations.md).
pub mod exit {
    pub const SUCCESS: u8 = 0;
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const USERS_FAILED: u8 = 3;
    pub const REFUSED: u8 = 4;
}

/// The exit code for a command's result.
pub fn exit_code(result: &anyhow::Result<Outcome>) -> u8 {
    match result {
        Ok(Outcome::Done) => exit::SUCCESS,
        Ok(Outcome::SomeUsersFailed) => exit::USERS_FAILED,
        Err(err) if err.chain().any(<dyn std::error::Error>::is::<Refused>) => exit::REFUSED,
        Err(err)
            if err
                .chain()
                .any(<dyn std::error::Error>::is::<crate::config::Error>) =>
        {
            exit::USAGE
        }
        Err(_) => exit::FAILURE,
    }
}

/// What every command receives: how to load settings, and helpers built on them.
#[derive(Debug)]
pub struct Ctx {
    pub sources: Sources,
}

impl Ctx {
    pub fn new(cli: &Cli, env: Environment) -> Self {
        let mut flags = Vec::new();
        if let Some(db) = &cli.db {
            flags.push(FlagOverride {
                flag: "--db".into(),
                key: "store.path".into(),
                value: toml::Value::String(db.to_string_lossy().into_owned()),
            });
        }
        Self {
            sources: Sources {
                config_path: cli.config.clone(),
                env,
                flags,
            },
        }
    }

    /// Loads and validates the settings (file, environment, flags).
    pub fn settings(&self) -> Result<Settings, crate::config::Error> {
        crate::config::load(&self.sources)
    }

    /// The config file path in effect.
    pub fn config_path(&self) -> &Path {
        self.sources.config_path()
    }
}

/// Opens the state database named by the settings.
async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    Ok(Store::open(&settings.store.path).await?)
}

/// Runs the parsed command line.
pub async fn run(cli: Cli, env: Environment) -> anyhow::Result<Outcome> {
    let ctx = Ctx::new(&cli, env);
    match cli.command {
        Command::Init(args) => args.run(&ctx).await,
        Command::Config(args) => args.run(&ctx),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_error_kind() {
        assert_eq!(exit_code(&Ok(Outcome::Done)), 0);
        assert_eq!(exit_code(&Ok(Outcome::SomeUsersFailed)), 3);
        let refused = anyhow::Error::new(Refused("no".into())).context("init");
        assert_eq!(exit_code(&Err(refused)), 4);
        let config = anyhow::Error::new(crate::config::Error::FileNotFound {
            path: "x.toml".into(),
        })
        .context("loading settings");
        assert_eq!(exit_code(&Err(config)), 2);
        assert_eq!(exit_code(&Err(anyhow::anyhow!("network down"))), 1);
    }
}
