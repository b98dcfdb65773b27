//! b2b-convert: convert internal Entra ID accounts into B2B collaboration users, in planned
//! waves, with a dry-run report before anything changes.
//!
//! Module map (dependencies point one way: `commands` -> everything else; `domain` -> nothing):
//! - [`cli`]: clap types only.
//! - [`clock`]: "now", passed in (system or manual), for the token cache and the pacer.
//! - [`commands`]: one file per subcommand; orchestration only.
//! - [`config`]: file + environment + flags -> validated [`config::Settings`].
//! - [`directory`]: on-premises AD for `scramble`: LDAPS client, password, PowerShell script.
//! - [`discovery`]: reading every user of the tenant at real page latencies (UPN partitions
//!   paged in parallel, one store writer, the completeness check).
//! - [`domain`]: ids, snapshots, tenant facts, rules and states shared by all modules.
//! - [`execute`]: every member state change: the wave executor (conversions, pacing,
//!   reconciliation, the run lock), redemptions, scrambles, and the record of each run.
//! - [`fsutil`]: atomic, private (0600) file writes.
//! - [`graph`]: the only HTTP client: Microsoft Graph and its token endpoint.
//! - [`input`]: operator files (CSV user lists), validated row by row.
//! - [`store`]: the SQLite state database; the only place with SQL.
//! - [`operator`]: who runs the tool (OS user, host, token identity, version), for the audit
//!   trail.
//! - [`output`]: what the tool writes to stdout, and the logging set-up on stderr.
//! - [`plan`]: the planning engine (the passes over a wave, decisions, the realm cache), shared
//!   by `plan` and `invite`.
//! - [`report`]: pure renderers of a wave's report (table, JSON, CSV, HTML).
//! - [`rules`]: pure eligibility rules and address selection.
//! - [`verify`]: pure comparison of a converted user with its pre-conversion baseline.
//!
//! The simulated Entra tenant that `demo`, `sim serve` and the tests run against is a crate of
//! its own, [`b2b_convert_sim`] (`crates/b2b-convert-sim`), which depends on nothing here.

pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod directory;
pub mod discovery;
pub mod domain;
pub mod execute;
pub mod fsutil;
pub mod graph;
pub mod input;
pub mod operator;
pub mod output;
pub mod plan;
pub mod report;
pub mod rules;
pub mod store;
pub mod verify;
