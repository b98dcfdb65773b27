//! The command line: clap types only. Parsing happens here; meaning lives in `commands` and
//! settings in `config` (a flag that sets a config key becomes a `config::FlagOverride`).

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

const ABOUT: &str = "Convert internal Entra ID partner accounts into B2B collaboration users";

const LONG_ABOUT: &str = "\
Convert internal Entra ID partner accounts into B2B collaboration users, in planned waves, with
a dry-run report before anything changes.

A converted account keeps its object id, UPN, group memberships and app assignments; only its
sign-in moves to the partner's own identity (Microsoft Graph POST /invitations with the
existing user's id).";

const EXAMPLES: &str = "\
Getting started:
  b2b-convert init                 write ./b2b-convert.toml and create the state database
  b2b-convert config               show every effective setting and where it came from

Settings come from the config file, then environment variables (AZURE_TENANT_ID,
AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, ...), then flags. Logs go to stderr; B2BC_LOG takes a
filter such as `b2b_convert=debug`.

Exit codes: 0 success, 1 operational failure, 2 usage or configuration error,
3 finished but some users failed, 4 refused for safety.";

#[derive(Debug, Parser)]
#[command(
    name = "b2b-convert",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = EXAMPLES,
    propagate_version = true
)]
pub struct Cli {
    /// Configuration file [default: ./b2b-convert.toml]
    #[arg(long, global = true, env = "B2BC_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// State database; overrides `store.path` from the configuration
    #[arg(long, global = true, value_name = "PATH")]
    pub db: Option<PathBuf>,

    /// More detail in the log on stderr (-v info, -vv debug, -vvv trace)
    #[arg(short, long, global = true, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Only errors in the log on stderr
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Log format on stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// -1 for `--quiet`, 0 by default, 1.. per `-v`.
    pub fn verbosity(&self) -> i8 {
        if self.quiet {
            -1
        } else {
            i8::try_from(self.verbose).unwrap_or(i8::MAX)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines
    Text,
    /// One JSON object per line, for log collectors
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Init(InitArgs),
    Config(ConfigArgs),
}

/// Write a commented configuration file and create the state database.
///
/// Writes the fully commented example configuration to the --config path (default
/// `./b2b-convert.toml`) and creates the SQLite state database named in it (default
/// ./b2b-convert.db next to the config), bringing its schema up to date. Both files are
/// created with mode 0600: they will hold tenant data. An existing config file is never
/// overwritten without --force; an existing database is kept and only migrated.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  b2b-convert init
  b2b-convert init --config /etc/b2b-convert/contoso.toml --db /var/lib/b2b-convert/contoso.db
  b2b-convert init --force         replace an existing config file with the example")]
pub struct InitArgs {
    /// Overwrite an existing configuration file (the database is kept either way)
    #[arg(long)]
    pub force: bool,
}

/// Show the effective settings and where each value came from.
///
/// Loads the configuration file, environment variables and flags exactly as every other
/// command does, and prints each setting with its value and origin (default, file and line,
/// environment variable, or flag). Secrets are never shown, only whether they are set and
/// where from. Exits with code 2 when the configuration is invalid, naming the file, key and
/// line to fix.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  b2b-convert config
  AZURE_TENANT_ID=contoso.onmicrosoft.com b2b-convert config --json")]
pub struct ConfigArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn quiet_and_verbose_exclude_each_other() {
        assert!(Cli::try_parse_from(["b2b-convert", "-q", "-v", "config"]).is_err());
        let cli = Cli::try_parse_from(["b2b-convert", "-vv", "config"]).unwrap();
        assert_eq!(cli.verbosity(), 2);
    }
}
