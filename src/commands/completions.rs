//! `completions`: a shell completion script generated from the command-line definitions, so
//! it cannot drift from the options. Reads no configuration and no database.

use clap::CommandFactory as _;

use super::Outcome;
use crate::cli::{Cli, CompletionsArgs};
use crate::output;

impl CompletionsArgs {
    pub fn run(self) -> anyhow::Result<Outcome> {
        let mut command = Cli::command();
        let name = command.get_name().to_owned();
        let mut script = Vec::new();
        clap_complete::generate(self.shell, &mut command, name, &mut script);
        output::write_stdout(&String::from_utf8(script)?)?;
        Ok(Outcome::Done)
    }
}
