//! The command line: clap types only. Parsing happens here; meaning lives in `commands` and
//! settings in `config` (a flag that sets a config key becomes a `config::FlagOverride`).

use std::path::PathBuf;

use crate::domain::GroupRef;
use clap::{ArgAction, ArgGroup, Args, Parser, Subcommand, ValueEnum};

/// The help heading of the options every command takes, listed apart from a command's own.
const GLOBAL: &str = "Global options";

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
  b2b-convert check                test the credential and permissions (read-only)
  b2b-convert discover             snapshot users and tenant facts (read-only)
  b2b-convert plan --wave pilot --csv pilot.csv    decide per user, with reasons (read-only)
  b2b-convert report --wave pilot --format html --out pilot.html    the dry-run report
  b2b-convert run --wave pilot     convert the wave (asks first)
  b2b-convert status --wave pilot --refresh        follow redemptions
  b2b-convert waves                every wave with its funnel
  b2b-convert reinvite --wave pilot --missing-links   new links for users whose link was lost
  b2b-convert scramble --wave pilot                scramble redeemed synced users' AD passwords

Settings come from the config file, then environment variables (AZURE_TENANT_ID,
AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, ...), then flags. Logs go to stderr; B2BC_LOG takes a
filter such as `b2b_convert=debug`.

Exit codes: 0 success, 1 operational failure, 2 usage or configuration error,
3 finished but some users failed, 4 refused for safety, 5 stopped at a daily invitation
quota (resume later), 130 interrupted.

Shell completions: `b2b-convert completions --help`; manual pages: `b2b-convert man --help`.";

#[derive(Debug, Parser)]
#[command(
    name = "b2b-convert",
    version = env!("B2BC_LONG_VERSION"),
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = EXAMPLES,
    propagate_version = true
)]
pub struct Cli {
    /// Configuration file [default: ./b2b-convert.toml]
    #[arg(long, global = true, help_heading = GLOBAL, env = "B2BC_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// State database; overrides `store.path` from the configuration
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "PATH")]
    pub db: Option<PathBuf>,

    /// More detail in the log on stderr (-v info, -vv debug, -vvv trace)
    #[arg(short, long, global = true, help_heading = GLOBAL, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Only errors in the log on stderr
    #[arg(short, long, global = true, help_heading = GLOBAL)]
    pub quiet: bool,

    /// Log format on stderr
    #[arg(long, global = true, help_heading = GLOBAL, value_enum, ignore_case = true, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,

    /// Colour and live progress lines on stderr: auto (on a terminal, unless `NO_COLOR` is set),
    /// always, or never (no escape sequences at all; progress lines are then not drawn)
    #[arg(long, global = true, help_heading = GLOBAL, value_enum, ignore_case = true, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the process's arguments, with clap's own help and errors coloured as `--color`
    /// and `NO_COLOR` say (clap prints them before the parsed flag could be consulted).
    pub fn parse_with_color(no_color: bool) -> Self {
        use clap::{CommandFactory as _, FromArgMatches as _};
        let color = match (color_flag(std::env::args_os()), no_color) {
            (Some(ColorChoice::Never), _) | (None | Some(ColorChoice::Auto), true) => {
                clap::ColorChoice::Never
            }
            (Some(ColorChoice::Always), _) => clap::ColorChoice::Always,
            (None | Some(ColorChoice::Auto), false) => clap::ColorChoice::Auto,
        };
        let matches = Self::command().color(color).get_matches();
        Self::from_arg_matches(&matches).unwrap_or_else(|err| err.exit())
    }

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set
    Auto,
    /// Even when stderr is not a terminal
    Always,
    /// Never: no escape sequences at all
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Init(InitArgs),
    Config(ConfigArgs),
    Check(CheckArgs),
    Discover(DiscoverArgs),
    Plan(PlanArgs),
    Report(ReportArgs),
    Run(RunArgs),
    Invite(InviteArgs),
    Status(StatusArgs),
    Waves(WavesArgs),
    Reinvite(ReinviteArgs),
    ExportLinks(ExportLinksArgs),
    Audit(AuditArgs),
    Backup(BackupArgs),
    Demo(DemoArgs),
    Verify(VerifyArgs),
    SetUserType(SetUserTypeArgs),
    Scramble(ScrambleArgs),
    Sim(SimArgs),
    Completions(CompletionsArgs),
    Man(ManArgs),
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

/// Check that the tool can work with the tenant, without changing anything.
///
/// Gets an access token with the configured credential, lists the permissions it carries,
/// tries each read the workflow needs (organization, domains, direct-federation
/// configurations, users), and prints the tenant's facts with a ready/not-ready table. Writes
/// (inviting, setting mail) are judged from the token's permissions only: check never writes.
/// Exits 0 only when the configured workflow can run.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  b2b-convert check
  AZURE_CLIENT_SECRET=... b2b-convert check --json > check.json")]
pub struct CheckArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// Snapshot users and tenant facts into the state database. Read-only on the tenant.
///
/// Reads every property the eligibility rules need for the selected users (all users by
/// default, a group's members, the users of a CSV list, or an OData filter) together with the
/// tenant's domains and direct-federation domains, and stores them in the state database.
/// Pages are stored as they arrive: an interrupted discover keeps what it read, and running it
/// again refreshes the snapshot. Listed users that do not exist are reported (exit code 3).
///
/// A discover of every user keeps a users delta link, and the next one reads only the users
/// added, changed or deleted since (falling back to reading everything when the link has
/// expired: Graph keeps them seven days). `--full` reads everything anyway.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("selection").args(SELECTIONS)), after_help = "\
Examples:
  b2b-convert discover
  b2b-convert discover --group 2f0c8a5e-1b7d-4c3e-9a6f-0d8e7b5c4a3f --transitive
  b2b-convert discover --group \"Partner Accounts - Pilot\"
  b2b-convert discover --csv partners.csv          (a `user` column: object ids or UPNs)
  b2b-convert discover --filter \"endsWith(mail,'@fabrikam.com')\"
  b2b-convert discover --full                      (every user, not only the changes)")]
pub struct DiscoverArgs {
    #[command(flatten)]
    pub users: UserSelectionArgs,

    /// Print the summary as JSON: docs/schema/discover.schema.json
    #[arg(long)]
    pub json: bool,

    /// Read every user even when the last discover's delta link would give only the changes
    #[arg(long)]
    pub full: bool,
}

/// The mutually exclusive ways of choosing users.
const SELECTIONS: [&str; 4] = ["all", "group", "csv", "filter"];

/// Which users a command works on: one of a CSV list, a group, an OData filter, or all.
/// The commands that flatten it declare the exclusive group of its four selections (all,
/// group, csv, filter; `--transitive` goes with `--group`).
#[derive(Debug, Args)]
#[group(skip)]
pub struct UserSelectionArgs {
    /// Every user (in the tenant for discover, in the snapshot for plan)
    #[arg(long)]
    pub all: bool,

    /// The members of this group, read from Graph: its object id, or its exact display name
    /// (when several groups share the name, they are listed with their ids)
    #[arg(long, value_name = "GROUP")]
    pub group: Option<GroupRef>,

    /// With --group: include the members of nested groups
    #[arg(long, requires = "group")]
    pub transitive: bool,

    /// A CSV file with a `user` column of object ids or UPNs (for plan, optionally an
    /// `address` column that picks each user's invitation address)
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,

    /// An OData `$filter` over users, read from Graph as an advanced query
    #[arg(long, value_name = "ODATA")]
    pub filter: Option<String>,
}

/// Decide, for every user of a wave, whether and how they can be converted. Read-only.
///
/// Creates the wave (or re-plans it) from the snapshot that discover stored: each user gets a
/// decision (eligible or blocked), the address to invite, whether mail is set first, and every
/// reason with its fix (docs/rules.md). Users are chosen by a CSV list (a `user` column of
/// object ids or UPNs, and optionally an `address` column that picks the invitation address),
/// a group, an OData filter, or all users. Nothing is written to the tenant; the plan is stored
/// with a hash, and re-planning a wave shows what changed. A wave cannot be re-planned once its
/// conversion has started. The partner pre-flight then reads, per external domain, whether
/// redemption can be automatic (cross-tenant access settings; Policy.Read.All, optional;
/// `invitation.check_partner_settings`) and stores it for the report.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("selection").args(SELECTIONS)), after_help = "\
Examples:
  b2b-convert plan --wave pilot --csv pilot.csv --max 50
  b2b-convert plan --wave wave2 --group 2f0c8a5e-1b7d-4c3e-9a6f-0d8e7b5c4a3f --transitive
  b2b-convert plan --wave pilot --group \"Partner Accounts - Pilot\"
  b2b-convert plan --wave pilot                 (re-plan with the same selection)
  b2b-convert plan --wave all-partners --all --exclude-csv keep-internal.csv")]
pub struct PlanArgs {
    /// The wave's name (new, or one to re-plan): up to 128 printable characters
    #[arg(long, value_name = "NAME", value_parser = wave_name)]
    pub wave: String,

    #[command(flatten)]
    pub users: UserSelectionArgs,

    /// Refuse to plan more users than this (a safety cap, kept with the wave)
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = positive::<u32>)]
    pub max: Option<u32>,

    /// Users never to convert in this wave (CSV with a `user` column)
    #[arg(long, value_name = "FILE")]
    pub exclude_csv: Option<PathBuf>,

    /// Members of this group (object id or exact display name) are never converted in this
    /// wave (repeatable)
    #[arg(long, value_name = "GROUP")]
    pub exclude_group: Vec<GroupRef>,

    /// Accept an `address` column entry that is not one of the user's addresses
    #[arg(long)]
    pub allow_new_address: bool,

    /// Print the summary as JSON: docs/schema/plan.schema.json (`report --format json` has
    /// every user)
    #[arg(long)]
    pub json: bool,
}

/// Show a wave's plan (and, after a run, its progress): the dry-run report.
///
/// Reads the stored plan only (never Graph) and renders it as a terminal table (counts by
/// decision and reason, the partner pre-flight, then the blocked users with their fix), JSON
/// (a stable, documented schema: docs/reports.md), CSV for Excel (one row per user), or one
/// self-contained HTML file with charts and a sortable, filterable table that works offline.
/// Files are written atomically with mode 0600.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  b2b-convert report --wave pilot
  b2b-convert report --wave pilot --format html --out pilot.html
  b2b-convert report --wave pilot --format csv --out pilot.csv")]
pub struct ReportArgs {
    /// The wave to report on
    #[arg(long, value_name = "NAME")]
    pub wave: String,

    /// Output format
    #[arg(long, value_enum, ignore_case = true, default_value_t = ReportFormat::Table, value_name = "FORMAT")]
    pub format: ReportFormat,

    /// Write to this file (atomically, mode 0600) instead of stdout
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// Counts and blocked users, for a terminal
    Table,
    /// The full report as JSON (docs/reports.md)
    Json,
    /// One row per user, for Excel
    Csv,
    /// One self-contained page with charts and a user table
    Html,
}

/// Convert a wave: invite each eligible user of its stored plan (this changes the tenant).
///
/// Executes the plan `plan` stored, never a recomputed one. Each user is re-read from Graph
/// first; a user whose rule inputs changed since the plan is skipped as drifted. Where the plan
/// says so, `mail` is set to the invitation address first. Invitations are paced under the
/// tenant's limit (150 per 5 s, shared by all apps) and adapt to throttling. The intent is
/// recorded before each invitation and the outcome after it, so a run that is interrupted,
/// killed or loses an answer resumes without inviting anyone twice: run the same command again.
/// Users that fail do not stop the others (exit code 3); Ctrl-C stops after the requests in
/// flight are recorded. Refuses without --yes when stdin is not a terminal, and asks for the
/// wave name when it is. The invitation settings must be those the plan was made with.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  b2b-convert run --wave pilot --dry-run     print the exact requests, send nothing
  b2b-convert run --wave pilot               asks you to type the wave name
  b2b-convert run --wave pilot --yes --limit 20")]
pub struct RunArgs {
    /// The wave to convert
    #[arg(long, value_name = "NAME")]
    pub wave: String,

    /// Do not ask for confirmation (required when stdin is not a terminal)
    #[arg(long)]
    pub yes: bool,

    /// Print the requests the run would send (tokens absent) and send nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Print the result (or, with --dry-run, the requests) as JSON: docs/schema/run.schema.json
    /// (dry-run.schema.json)
    #[arg(long)]
    pub json: bool,

    /// Convert at most this many users now; the rest stay ready for a later run
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = positive::<usize>)]
    pub limit: Option<usize>,

    /// Users in flight at once, fixed (default: sized from the measured time per user, starting
    /// at `throughput.max_concurrency`, at most 64)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub concurrency: Option<u32>,

    /// Invitations per second (default: `throughput.max_invitations_per_second`; at most 30)
    #[arg(long, value_name = "RATE")]
    pub rate: Option<f64>,

    /// Seconds to wait before reading a user whose invitation got no clear answer (0 to 3600)
    #[arg(long, value_name = "SECONDS", default_value_t = 5, allow_negative_numbers = true, value_parser = reconcile_seconds)]
    pub reconcile_delay: u64,
}

/// Convert one user now, with the options of `New-MgInvitation` / `New-AzureADMSInvitation`.
///
/// Reads the user from Graph, evaluates it with the same eligibility rules as `plan` (a blocked
/// user is refused, exit 4, with the reason and its fix), records a one-user wave named
/// `invite-<UPN>` in the database, and converts it exactly as `run` does: drift check, "set
/// mail" step, baseline for `verify`, intent before the write, reconciliation of an unclear
/// answer. Options left out come from the configuration's `[invitation]` section.
/// --reset-redemption re-invites a user who is already a B2B user (it may then redeem with
/// another identity), keeping its object id, memberships and app assignments.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  b2b-convert invite --user ada@contoso.com --dry-run
  b2b-convert invite --user ada@contoso.com --address ada@fabrikam.com --no-send-message --yes
  b2b-convert invite --user 5a9f3c1e-0b2d-4e6f-8a7b-9c0d1e2f3a4b --reset-redemption --yes")]
#[allow(clippy::struct_excessive_bools)] // one flag per documented invitation switch
pub struct InviteArgs {
    /// The user to convert: object id or UPN
    #[arg(long, value_name = "ID_OR_UPN")]
    pub user: String,

    /// The invitation address (invitedUserEmailAddress); default: the one the rules choose
    #[arg(
        long,
        visible_alias = "invited-user-email-address",
        value_name = "EMAIL"
    )]
    pub address: Option<String>,

    /// Accept an --address that is not one of the user's addresses
    #[arg(long, requires = "address")]
    pub allow_new_address: bool,

    /// invitedUserDisplayName (default: the user's displayName, when `invitation.send_display_name`)
    #[arg(long, visible_alias = "invited-user-display-name", value_name = "NAME")]
    pub display_name: Option<String>,

    /// inviteRedirectUrl (default: `invitation.redirect_url`)
    #[arg(long, visible_alias = "invite-redirect-url", value_name = "URL")]
    pub redirect_url: Option<url::Url>,

    /// Let Microsoft send the invitation email (sendInvitationMessage = true)
    #[arg(
        long,
        visible_alias = "send-invitation-message",
        conflicts_with = "no_send_message"
    )]
    pub send_message: bool,

    /// Do not send Microsoft's email; get the redemption URL with `export-links`
    #[arg(long)]
    pub no_send_message: bool,

    /// customizedMessageBody of the email
    #[arg(long, value_name = "TEXT")]
    pub custom_message: Option<String>,

    /// messageLanguage of the email, e.g. fr-FR
    #[arg(long, value_name = "TAG")]
    pub message_language: Option<String>,

    /// The one cc recipient of the email (ccRecipients)
    #[arg(long, value_name = "EMAIL")]
    pub cc_recipient: Option<String>,

    /// invitedUserType: Guest or Member (any case)
    #[arg(long, value_name = "TYPE", ignore_case = true, value_parser = invited_user_type())]
    pub invited_user_type: Option<String>,

    /// resetRedemption: re-invite a user who already redeemed (keeps object id and access)
    #[arg(long)]
    pub reset_redemption: bool,

    /// Do not ask for confirmation (required when stdin is not a terminal)
    #[arg(long)]
    pub yes: bool,

    /// Print the result as JSON: docs/schema/invite.schema.json
    #[arg(long)]
    pub json: bool,

    /// Print the request that would be sent, send nothing, record nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// Show a wave's progress: the funnel from planned to accepted, and pending invitations.
///
/// Counts the wave's members by state (planned, excluded, ready, invited, accepted, scrambled,
/// failed, drifted) and shows how long invitations have been pending. With --refresh, first
/// reads each invited user's externalUserState from Graph (read-only) and records who redeemed.
/// With --pending, lists who has not redeemed yet, oldest invitation first (UPN, address,
/// invited at, last re-sent, days pending, whether a redemption link is stored).
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  b2b-convert status --wave pilot
  b2b-convert status --wave pilot --refresh --json
  b2b-convert status --wave pilot --pending --older-than 14d
  b2b-convert status --wave pilot --pending --csv > pending.csv")]
#[allow(clippy::struct_excessive_bools)] // one flag per output switch
pub struct StatusArgs {
    /// The wave to show
    #[arg(long, value_name = "NAME")]
    pub wave: String,

    /// Read redemption states from Graph first
    #[arg(long)]
    pub refresh: bool,

    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,

    /// List the members who have not redeemed yet, oldest first
    #[arg(long)]
    pub pending: bool,

    /// With --pending: only those whose invitation was last sent longer ago than this (`14d`, `36h`, `90m`)
    #[arg(long, value_name = "AGE", value_parser = age, requires = "pending")]
    pub older_than: Option<time::Duration>,

    /// With --pending: print CSV instead of a table
    #[arg(long, requires = "pending", conflicts_with = "json")]
    pub csv: bool,
}

/// Show every wave with its funnel in one table.
///
/// One row per wave: members planned, eligible, blocked, and how many are ready, invited,
/// accepted, scrambled, failed or drifted, with the time of the wave's last run. From the
/// database only; `status --wave W --refresh` reads redemptions from Graph.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  b2b-convert waves
  b2b-convert waves --json")]
pub struct WavesArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// Re-send the invitations of a wave's members (this changes the tenant).
///
/// --missing-links: members waiting to redeem whose redemption link was lost (the wave ran with
/// `invitation.send_message = false` and an answer never came); each re-sent invitation
/// returns a new link, stored for `export-links`. --older-than AGE: members waiting to redeem
/// whose invitation was last sent longer ago than AGE (Microsoft mails them again when the
/// wave sends its mail). --reset-redemption: members who redeemed and must redeem again
/// (`resetRedemption`); they become `invited`. Each member is re-read first and re-sent only
/// while Graph shows it pending (accepted, for a reset), with the invitation settings the
/// wave's `run` used, paced like `run`, intent recorded before and outcome after. An
/// interrupted reinvite resumes when run again with the same selection, and sends nobody it
/// may already have reached. Refuses without --yes when stdin is not a terminal.
#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("selector").required(true).multiple(true).args(["missing_links", "older_than", "reset_redemption"])),
    after_help = "\
Examples:
  b2b-convert reinvite --wave pilot --missing-links --dry-run
  b2b-convert reinvite --wave pilot --missing-links --yes
  b2b-convert reinvite --wave pilot --older-than 14d
  b2b-convert reinvite --wave pilot --reset-redemption --user ada@contoso.com --yes")]
#[allow(clippy::struct_excessive_bools)] // one flag per selector and switch
pub struct ReinviteArgs {
    /// The wave whose members to re-invite
    #[arg(long, value_name = "NAME")]
    pub wave: String,

    /// Members waiting to redeem who have no stored redemption link
    #[arg(long)]
    pub missing_links: bool,

    /// Members waiting to redeem whose invitation was last sent longer ago than AGE (`14d`, `36h`, `90m`)
    #[arg(long, value_name = "AGE", value_parser = age)]
    pub older_than: Option<time::Duration>,

    /// resetRedemption for members who redeemed and must redeem again
    #[arg(long, conflicts_with_all = ["missing_links", "older_than"])]
    pub reset_redemption: bool,

    /// Only this member (object id or UPN; repeat for more)
    #[arg(long = "user", value_name = "ID_OR_UPN")]
    pub users: Vec<String>,

    /// Do not ask for confirmation (required when stdin is not a terminal)
    #[arg(long)]
    pub yes: bool,

    /// Print the requests reinvite would send and send nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Print the result (or, with --dry-run, the requests) as JSON:
    /// docs/schema/reinvite.schema.json (dry-run.schema.json)
    #[arg(long)]
    pub json: bool,

    /// Users in flight at once, fixed (default: sized from the measured time per user, starting
    /// at `throughput.max_concurrency`, at most 64)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub concurrency: Option<u32>,

    /// Invitations per second (default: `throughput.max_invitations_per_second`; at most 30)
    #[arg(long, value_name = "RATE")]
    pub rate: Option<f64>,

    /// Seconds to wait before reading a user whose re-send got no clear answer (0 to 3600)
    #[arg(long, value_name = "SECONDS", default_value_t = 5, allow_negative_numbers = true, value_parser = reconcile_seconds)]
    pub reconcile_delay: u64,
}

/// Write the redemption links of a wave for your own mail merge (sensitive file).
///
/// Only when the wave was run with `invitation.send_message = false` does the tool keep each
/// invitation's redemption URL; this writes them as CSV (user id, UPN, display name, address,
/// URL) with mode 0600. Anyone holding a link can redeem that invitation: keep the file safe
/// and delete it after use.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  b2b-convert export-links --wave pilot --out pilot-links.csv")]
pub struct ExportLinksArgs {
    /// The wave whose links to write
    #[arg(long, value_name = "NAME")]
    pub wave: String,

    /// The CSV file to write (atomically, mode 0600)
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,

    /// Replace an existing file
    #[arg(long)]
    pub force: bool,

    /// Print what was written as JSON (never the links): docs/schema/export-links.schema.json
    #[arg(long)]
    pub json: bool,
}

/// The audit trail: every tenant write this tool made, and who made it.
#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    Export(AuditExportArgs),
}

/// Export every tenant write from the state database, for a SIEM or an auditor.
///
/// One record per write (`POST /invitations`, `PATCH` of `mail`, including refused and
/// unanswered ones): its time, the operator (OS user and host, the token's app id or signed-in
/// user, the tool version), the command and wave, the user's id and UPN, method and path, HTTP
/// status, `request-id` and `client-request-id`, and for a `mail` change the value before and
/// after. CSV is UTF-8 with a byte-order mark and CRLF, formula cells defused; JSON is JSON
/// Lines (one object per line, each with `schema_version`). Reads the database only; never
/// holds a redemption link or a secret.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  b2b-convert audit export --format csv --out audit.csv
  b2b-convert audit export --wave pilot --since 2026-12-01 --format json >> siem.ndjson")]
pub struct AuditExportArgs {
    /// Only the writes of this wave
    #[arg(long, value_name = "NAME")]
    pub wave: Option<String>,

    /// Only writes at or after this time: RFC 3339 (`2026-12-06T07:00:00Z`) or a date (`2026-12-06`, from midnight UTC)
    #[arg(long, value_name = "TIME", value_parser = since)]
    pub since: Option<time::OffsetDateTime>,

    /// The format to write
    #[arg(long, value_enum)]
    pub format: AuditFormat,

    /// Write to this file (atomically, mode 0600) instead of stdout
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// With --out: replace an existing file
    #[arg(long, requires = "out")]
    pub force: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    /// CSV for spreadsheets (UTF-8 with BOM, CRLF)
    Csv,
    /// JSON Lines: one object per write and line
    Json,
}

/// Write a consistent copy of the state database, to keep or to move.
///
/// Copies the whole database with SQLite's own mechanism (`VACUUM INTO`): one moment of it,
/// even while a run writes beside it, compact and complete without its `-wal` file, checked
/// with SQLite's integrity check, written atomically with mode 0600. Copying the `.db` file
/// by hand while a command runs can miss the last changes. The copy is a database like any
/// other: use it with --db.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  b2b-convert backup --out backups/contoso-2026-12-06.db
  b2b-convert --db backups/contoso-2026-12-06.db status --wave pilot")]
pub struct BackupArgs {
    /// The copy to write (atomically, mode 0600)
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,

    /// Replace an existing file
    #[arg(long)]
    pub force: bool,
}

/// The whole workflow against a built-in simulated tenant: no tenant, no configuration.
///
/// Starts a simulated Entra tenant in this process (users of every eligibility case, realistic
/// latency and the service's throttling) and runs the real commands against it over HTTP:
/// init, check, discover, plan a pilot wave, report, run, status while some users redeem.
/// Each step is printed as the command an administrator would type. Everything is written to
/// --out (config, database, reports); nothing leaves this machine.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  b2b-convert demo
  b2b-convert demo --users 20000 --pilot 2000 --out /tmp/demo")]
pub struct DemoArgs {
    /// Users in the simulated tenant
    #[arg(long, value_name = "N", default_value_t = 3000, value_parser = clap::value_parser!(u64).range(100..=1_000_000))]
    pub users: u64,

    /// Users in the pilot wave (a CSV of the first N users)
    #[arg(long, value_name = "N", default_value_t = 400, value_parser = clap::value_parser!(u64).range(1..))]
    pub pilot: u64,

    /// Folder for the demo's config, database and reports (a previous demo there is replaced)
    #[arg(long, value_name = "DIR", default_value = "b2b-convert-demo")]
    pub out: PathBuf,
}

/// Check that converted users kept their object id, UPN, groups and app role assignments.
///
/// For every member of the wave that was invited, has accepted or was scrambled, reads the user
/// from Graph now (object id, UPN, direct group memberships, number of app role assignments)
/// and compares it with the baseline recorded right before that user was invited. Prints each
/// difference (a group the user is no longer in or was added to, a changed UPN or app role
/// assignment count, a deleted object, a user without a baseline) and records it in the event
/// log. Read-only on the tenant; needs Directory.Read.All.
///
/// With AuditLog.Read.All it also reads the directory audit log's "Invite internal user to B2B
/// collaboration" events since the wave's first invitation (one filtered query, paged) and
/// lists converted users whose event is missing or says the conversion failed. Events older
/// than the tenant's retention (30 days with Entra ID P1/P2, 7 without) cannot be found, and
/// an event may take a while to appear: such users are not flagged.
///
/// Exits 3 when any user differs, cannot be verified or has a missing or failed audit event,
/// 0 when every converted user matches or none was converted yet.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  b2b-convert verify --wave pilot
  b2b-convert verify --wave pilot --json > pilot-verify.json
  b2b-convert verify --wave pilot --audit-log off
  b2b-convert verify --wave pilot --audit-retention-days 7   # a tenant without Entra ID P1/P2")]
pub struct VerifyArgs {
    /// The wave whose converted members to verify
    #[arg(long, value_name = "NAME")]
    pub wave: String,

    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,

    /// Corroborate conversions with the directory audit log
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = AuditLogChoice::Auto)]
    pub audit_log: AuditLogChoice,

    /// How many days the tenant keeps audit events (30 with Entra ID P1/P2, 7 without)
    #[arg(long, value_name = "DAYS", default_value_t = 30, value_parser = clap::value_parser!(u16).range(1..=365))]
    pub audit_retention_days: u16,

    /// How long a conversion's audit event may take to appear: younger conversions without one
    /// are reported as too recent, not as missing
    #[arg(long, value_name = "MINUTES", default_value_t = 30, value_parser = clap::value_parser!(u32).range(0..=1440))]
    pub audit_latency_minutes: u32,
}

/// Set the userType of a wave's redeemed members to Guest, or back to Member (this changes the
/// tenant).
///
/// A conversion keeps userType Member; Microsoft leaves setting Guest to you (MAU billing, guest
/// restrictions). Considers the members this tool converted and recorded as redeemed
/// (`accepted` or `scrambled`; `status --refresh` records redemptions), reads each from Graph
/// first, and writes only where Graph shows externalUserState Accepted and another userType:
/// running it again finishes what is left and repeats nothing. Each write is paced with
/// `throughput.max_directory_writes_per_second` and recorded before and after in the event log
/// (`audit export` lists it with its request ids). Right after an invitation the service may
/// refuse the write with 400 "Not a valid reference update." for a few minutes: each such
/// refusal is recorded and the write tried again after --lag-retry-delay, up to --lag-retries
/// times. `--to member` is the back-out: Member again where this tool set Guest (others are
/// left alone). Needs User.ReadWrite.All. Exits 3 when a member failed, 0 otherwise.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  b2b-convert set-user-type --wave pilot --to guest --dry-run
  b2b-convert set-user-type --wave pilot --to guest --yes
  b2b-convert set-user-type --wave pilot --to member --yes   # the back-out")]
pub struct SetUserTypeArgs {
    /// The wave whose redeemed members to change
    #[arg(long, value_name = "NAME")]
    pub wave: String,

    /// The userType to set
    #[arg(long, value_name = "TYPE", value_enum)]
    pub to: UserTypeChoice,

    /// Do not ask for confirmation (required when stdin is not a terminal)
    #[arg(long)]
    pub yes: bool,

    /// Read every member and say what would change; write nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,

    /// Seconds to wait after a replication-lag refusal before trying again
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0, value_parser = lag_delay)]
    pub lag_retry_delay: f64,

    /// Tries again after replication-lag refusals before giving up on a member
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub lag_retries: u32,

    /// Members read and written at a time (default: `throughput.max_concurrency`)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub concurrency: Option<u32>,
}

/// The `userType` `set-user-type` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum UserTypeChoice {
    /// Guest: MAU billing, guest restrictions
    Guest,
    /// Member: what conversion keeps (the back-out)
    Member,
}

fn lag_delay(value: &str) -> Result<f64, String> {
    let seconds: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("{value:?} is not a number of seconds"))?;
    if (0.0..=3600.0).contains(&seconds) {
        Ok(seconds)
    } else {
        Err(format!("{seconds} is outside 0 to 3600 seconds"))
    }
}

/// Whether `verify` reads the directory audit log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AuditLogChoice {
    /// When the token claims AuditLog.Read.All; otherwise skipped with a note
    Auto,
    /// Always; a refusal is an error
    On,
    /// Never
    Off,
}

/// Replace the on-premises AD passwords of a wave's converted synced users with random values.
///
/// A synced user's AD account stays the source of authority after its conversion, so its old
/// internal password keeps working on-prem. scramble replaces it with a fresh random GUID (or
/// `directory.random_password_length` random characters with `directory.new_password =
/// "random"`) that is never stored, logged or shown. It never disables or deletes the account:
/// that would flow to the converted cloud user.
///
/// Takes the wave's synced members whose redemption is recorded (`accepted`; run `status
/// --refresh` first), or with --include-invited also those still invited. Cloud-only users,
/// users not converted and users already scrambled are skipped with the reason.
///
/// Direct mode connects to the domain controller in `directory.url` (ldaps://, or ldap:// with
/// StartTLS; plain LDAP is refused), verifies its certificate, binds as `directory.bind_dn` and,
/// per user: finds the account by objectGUID (from onPremisesImmutableId), checks its
/// sAMAccountName and DN, resets unicodePwd and reads pwdLastSet back. Script mode
/// (--emit-powershell) writes a PowerShell script to run on-prem instead; --import-results
/// records the CSV it writes. Exits 3 when some users failed.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  b2b-convert scramble --wave pilot --dry-run
  b2b-convert scramble --wave pilot                  asks you to type the wave name
  B2BC_DIRECTORY_BIND_PASSWORD=... b2b-convert scramble --wave pilot --yes
  b2b-convert scramble --wave pilot --emit-powershell scramble-pilot.ps1
  b2b-convert scramble --wave pilot --import-results scramble-pilot-results.csv")]
#[allow(clippy::struct_excessive_bools)] // command-line switches, each independent of the others
pub struct ScrambleArgs {
    /// The wave whose users to scramble
    #[arg(long, value_name = "NAME")]
    pub wave: String,

    /// Also scramble users invited but not yet redeemed (default: only accepted ones)
    #[arg(long, conflicts_with = "import_results")]
    pub include_invited: bool,

    /// List who would be scrambled and why the others are not; contact nothing, change nothing
    #[arg(long, conflicts_with_all = ["emit_powershell", "import_results"])]
    pub dry_run: bool,

    /// Write a PowerShell script that scrambles on-prem with Set-ADAccountPassword, instead of
    /// connecting to a domain controller
    #[arg(long, value_name = "FILE.ps1", conflicts_with = "import_results")]
    pub emit_powershell: Option<PathBuf>,

    /// Replace an existing script file
    #[arg(long, requires = "emit_powershell")]
    pub force: bool,

    /// Record the results CSV a script from --emit-powershell wrote
    #[arg(long, value_name = "FILE.csv")]
    pub import_results: Option<PathBuf>,

    /// Print the result as JSON: docs/schema/scramble.schema.json
    #[arg(long)]
    pub json: bool,

    /// Scramble at most this many users now
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = positive::<u64>, conflicts_with = "import_results")]
    pub limit: Option<u64>,

    /// Do not ask for confirmation (required when stdin is not a terminal)
    #[arg(long)]
    pub yes: bool,
}

/// Run the built-in simulated tenant (a local stand-in for Microsoft Graph).
#[derive(Debug, Args)]
pub struct SimArgs {
    #[command(subcommand)]
    pub command: SimCommand,
}

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    Serve(SimServeArgs),
}

/// Serve a simulated Entra tenant that speaks Microsoft Graph, on 127.0.0.1, until Ctrl-C.
///
/// For rehearsing a migration without a tenant: the simulator answers the Graph and login
/// endpoints b2b-convert uses, with realistic users (every eligibility case), throttling and
/// optional faults. It prints its URLs, tenant id and throwaway app credentials, followed by
/// `export` lines that point b2b-convert at it (paste them into another shell). See
/// docs/simulator.md.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  b2b-convert sim serve --users 100000 --seed 7
  b2b-convert sim serve --tenant crates/b2b-convert-sim/tests/fixtures/tenant.json --port 9000
  b2b-convert sim serve --faults \"invitations:latency=150-600ms,503=0.02;list-users:504=0.01\"")]
pub struct SimServeArgs {
    /// Number of generated users
    #[arg(long, default_value_t = 1000)]
    pub users: u64,

    /// Seed of the generated tenant (same seed, same tenant)
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Port on 127.0.0.1 (0: any free port)
    #[arg(long, default_value_t = 8950)]
    pub port: u16,

    /// A JSON tenant file instead of a generated tenant
    #[arg(long, value_name = "FILE", conflicts_with_all = ["users", "seed"])]
    pub tenant: Option<PathBuf>,

    /// Faults per endpoint, e.g. "invitations:503=0.02,retry-after=2" (repeatable)
    #[arg(long, value_name = "SPEC")]
    pub faults: Vec<String>,

    /// Turn the service's throttling limits off
    #[arg(long)]
    pub no_throttling: bool,

    /// When a request counts against its throttling window: when it arrives (before the
    /// service's work, the default), or when it is answered (after --faults latency; the
    /// pessimistic model, where requests sent in order are counted out of order)
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ThrottleCountedAt::Arrival)]
    pub throttle_counted_at: ThrottleCountedAt,

    /// Write the app's throwaway certificate and key (PEM) here, for certificate auth
    #[arg(long, value_name = "DIR")]
    pub credentials_dir: Option<PathBuf>,
}

/// When the simulated service counts a request against its throttling window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ThrottleCountedAt {
    /// When the request arrives, before the service's work (a refusal answers at once)
    Arrival,
    /// When the service answers, after its latency
    Answer,
}

/// Print a shell completion script for b2b-convert.
///
/// Writes the script to stdout; it completes commands, options and their fixed values. Load
/// it from your shell's start-up file (see Examples) or save it where your shell looks for
/// completions.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  bash:        b2b-convert completions bash > ~/.local/share/bash-completion/completions/b2b-convert
  zsh:         b2b-convert completions zsh > ~/.zfunc/_b2b-convert   (with fpath+=~/.zfunc)
  fish:        b2b-convert completions fish > ~/.config/fish/completions/b2b-convert.fish
  PowerShell:  b2b-convert completions powershell | Out-String | Invoke-Expression")]
pub struct CompletionsArgs {
    /// The shell to complete in
    #[arg(value_enum, ignore_case = true)]
    pub shell: clap_complete::Shell,
}

/// Print or write the manual pages of b2b-convert.
///
/// Without --out, prints the main page (roff) to stdout. With --out DIR, writes one page per
/// command into DIR (b2b-convert.1, b2b-convert-plan.1, ...), replacing older ones.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  b2b-convert man | man -l -
  b2b-convert man --out ~/.local/share/man/man1")]
pub struct ManArgs {
    /// Write every page into this existing folder instead of printing the main page
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// The value of the last `--color` among `args`, read before clap parses them.
fn color_flag(args: impl IntoIterator<Item = std::ffi::OsString>) -> Option<ColorChoice> {
    let mut choice = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let value = match arg.to_str() {
            Some("--") => break,
            Some("--color") => args.next(),
            Some(other) => other.strip_prefix("--color=").map(Into::into),
            None => None,
        };
        if let Some(value) = value.as_ref().and_then(|v| v.to_str()) {
            choice = ColorChoice::from_str(value, true).ok().or(choice);
        }
    }
    choice
}

/// `--invited-user-type`: Guest or Member in any case, sent as Graph spells it.
fn invited_user_type() -> impl clap::builder::TypedValueParser<Value = String> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(["Guest", "Member"]).map(|kind| {
        if kind.eq_ignore_ascii_case("guest") {
            "Guest".to_owned()
        } else {
            "Member".to_owned()
        }
    })
}

/// A count that must be at least 1 (`--limit`, `--max`): the message says so for 0, a
/// negative number or a word, instead of clap's "unexpected argument '-1'".
fn positive<N: std::str::FromStr + TryFrom<u64>>(text: &str) -> Result<N, String> {
    let problem = || format!("the value must be a positive whole number (1 or more), not `{text}`");
    match text.trim().parse::<u64>() {
        Ok(0) | Err(_) => Err(problem()),
        Ok(n) => N::try_from(n).map_err(|_| format!("`{text}` is too large")),
    }
}

/// An age such as `14d`, `36h` or `90m`: a positive whole number of days, hours or minutes.
fn age(text: &str) -> Result<time::Duration, String> {
    let problem = || {
        format!(
            "the age must be a positive whole number of days, hours or minutes (`14d`, `36h`, `90m`), not `{text}`"
        )
    };
    let text = text.trim();
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = number.parse().map_err(|_| problem())?;
    if n <= 0 {
        return Err(problem());
    }
    match unit {
        "d" => Ok(time::Duration::days(n)),
        "h" => Ok(time::Duration::hours(n)),
        "m" => Ok(time::Duration::minutes(n)),
        _ => Err(problem()),
    }
}

/// `--since`: an RFC 3339 time, or a date (`2026-12-06`) meaning its midnight UTC.
fn since(text: &str) -> Result<time::OffsetDateTime, String> {
    use time::format_description::well_known::Rfc3339;
    let text = text.trim();
    if let Ok(at) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(at);
    }
    time::Date::parse(text, time::macros::format_description!("[year]-[month]-[day]"))
        .map(|date| date.midnight().assume_utc())
        .map_err(|_| {
            format!(
                "the time must be RFC 3339 (`2026-12-06T07:00:00Z`) or a date (`2026-12-06`), not `{text}`"
            )
        })
}

/// `--reconcile-delay`: whole seconds from 0 to an hour (an answer still unknown after that
/// is better reconciled by the next run).
fn reconcile_seconds(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(seconds) if seconds <= 3_600 => Ok(seconds),
        Ok(_) => Err(format!(
            "the delay is at most 3600 seconds (an hour), not {text}"
        )),
        Err(_) => Err(format!(
            "the value must be a whole number of seconds from 0 to 3600, not `{text}`"
        )),
    }
}

/// A wave name as `plan` takes it: the rule is [`crate::domain::wave_name_problem`].
fn wave_name(text: &str) -> Result<String, String> {
    match crate::domain::wave_name_problem(text) {
        None => Ok(text.to_owned()),
        Some(problem) => Err(problem),
    }
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

    #[test]
    fn an_age_is_days_hours_or_minutes() {
        assert_eq!(age("14d"), Ok(time::Duration::days(14)));
        assert_eq!(age("36h"), Ok(time::Duration::hours(36)));
        assert_eq!(age("90m"), Ok(time::Duration::minutes(90)));
        for bad in ["0d", "14", "d", "1.5d", "2w", "", "-3d"] {
            assert!(age(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn since_is_rfc_3339_or_a_date_at_midnight_utc() {
        use time::macros::datetime;
        assert_eq!(
            since("2026-12-06T08:30:00+01:00"),
            Ok(datetime!(2026-12-06 07:30 UTC))
        );
        assert_eq!(since("2026-12-06"), Ok(datetime!(2026-12-06 00:00 UTC)));
        for bad in ["", "yesterday", "2026-13-01", "06/12/2026"] {
            assert!(since(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reinvite_needs_a_selector_and_a_reset_stands_alone() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(
                ["b2b-convert", "reinvite", "--wave", "w"]
                    .iter()
                    .chain(args),
            )
        };
        assert!(parse(&[]).is_err(), "a selector is required");
        assert!(parse(&["--missing-links", "--older-than", "14d"]).is_ok());
        assert!(parse(&["--reset-redemption", "--missing-links"]).is_err());
        assert!(parse(&["--reset-redemption", "--user", "a@b.c", "--user", "d@e.f"]).is_ok());
    }
}
