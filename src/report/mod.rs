//! Reports: a wave's plan (and, after a run, its progress) rendered from stored data only, as a
//! terminal table, JSON, CSV or one self-contained HTML file.
//!
//! Pure renderers: [`ReportData`] (or, for [`run`], a run's summary) in, text out. This
//! module must not read the store, call
//! Graph, read a clock or write files: the `report` command gathers the data (with the time)
//! and writes the result atomically.
//!
//! - [`table`]: plain text for a terminal (counts, then the first blocked users);
//! - [`json`]: the whole [`ReportData`], schema in `docs/reports.md`;
//! - [`csv`]: one row per user, for Excel, guarded against formula injection;
//! - [`html`]: one self-contained page with inline SVG charts and a paged user table;
//! - [`summary`]: the counts the renderers share;
//! - [`links`]: the redemption links of an own-distribution wave, and who has none;
//! - [`run`]: the summary of a run of the executor (`run`, `invite`), as text or JSON;
//! - [`requests`]: the requests a `--dry-run` would send (`run`, `invite`, `reinvite`);
//! - [`pending`]: who has not redeemed yet (`status --pending`);
//! - [`preflight`]: the partner pre-flight per external domain (automatic redemption);
//! - [`waves`]: every wave's funnel in one table (`waves`);
//! - [`audit`]: every tenant write, with its operator and request ids (`audit export`).

pub mod audit;
pub mod csv;
pub mod html;
pub mod json;
pub mod links;
pub mod pending;
pub mod preflight;
pub mod requests;
pub mod run;
pub mod summary;
pub mod table;
mod text;
pub mod waves;

#[cfg(test)]
mod testdata;

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use time::OffsetDateTime;

use crate::domain::{Decision, RealmKind, UnknownCode, UserId, UserState};
use crate::rules::{AddressOrigin, Finding, Severity};

pub use preflight::ReportPreflight;

/// The version of the JSON report's schema (`docs/reports.md`). Bumped on any change that is
/// not a pure addition.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything a report shows, gathered from the store.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReportData {
    pub schema_version: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
    pub tool_version: String,
    pub tenant: ReportTenant,
    pub wave: ReportWave,
    /// The invitation settings and rule modes the plan was made with, as stored with the wave.
    pub settings: serde_json::Value,
    /// Findings about the wave as a whole (they apply to every user).
    pub wave_findings: Vec<Finding>,
    /// How `run` would go with the configuration the report was made with.
    pub execution: ReportExecution,
    /// Warnings about running the wave that no rule decides (a young tenant's daily
    /// invitation quota); omitted from JSON when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The partner pre-flight per external domain of the wave (most users first): can
    /// redemption be automatic? Wave-level: the CSV (one row per user) does not repeat it.
    pub partner_preflight: Vec<ReportPreflight>,
    pub members: Vec<ReportMember>,
}

/// How `run` would go with the current configuration: its pace, and what it asks of the
/// tenant. Unlike `settings` (stored with the plan), this reads the configuration at the time
/// of the report: it is what a change board signs for the run to come.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReportExecution {
    /// `throughput.max_invitations_per_second`: the pace the duration is estimated at.
    pub invitations_per_second: f64,
    /// `throughput.max_invitations_per_day`, when set: the run stops for the day at it.
    pub max_invitations_per_day: Option<u32>,
    /// `invitation.restore_mail_on_failure`: a `mail` set first is put back when the
    /// invitation then fails for good.
    pub restore_mail_on_failure: bool,
    /// The Graph permissions `run` uses, least privileged first, with what for.
    pub permissions: Vec<ReportPermission>,
}

/// One Graph permission `run` uses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReportPermission {
    /// The least privileged permission that allows it.
    pub permission: String,
    /// What the run does with it.
    pub purpose: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReportTenant {
    pub id: Option<String>,
    pub name: Option<String>,
    pub verified_domains: Vec<String>,
    pub federation_domains: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReportWave {
    pub name: String,
    /// How the users were selected (CSV, group, filter, all).
    pub selector: serde_json::Value,
    pub cap: Option<u32>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub planned_at: Option<OffsetDateTime>,
    pub plan_hash: Option<String>,
    /// Whether any member has gone past planning (then the funnel is meaningful).
    pub started: bool,
}

/// One user of the wave.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReportMember {
    pub user_id: UserId,
    pub user_principal_name: String,
    pub display_name: Option<String>,
    pub synced: bool,
    pub decision: Decision,
    pub state: UserState,
    /// The address to invite (or invited at).
    pub address: Option<String>,
    pub address_origin: Option<AddressOrigin>,
    /// `run` sets `mail` to the address first.
    pub set_mail: bool,
    /// Blockers first, then warnings, then information.
    pub findings: Vec<Finding>,
    /// The home realm of the address's domain, when known.
    pub realm: Option<RealmKind>,
    pub last_error: Option<String>,
    /// After a permanent failure: whether the `mail` `run` had set was put back.
    pub mail_restore: Option<crate::store::MailRestore>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub invited_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub accepted_at: Option<OffsetDateTime>,
}

impl ReportMember {
    /// The blocking findings (they come first in `findings`).
    pub fn blockers(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Blocker)
    }

    /// Whether any finding is a warning.
    pub fn has_warnings(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.severity == Severity::Warning)
    }

    /// The fix of the first blocker, else of the first warning: what the operator does next.
    pub fn fix_hint(&self) -> Option<&'static str> {
        self.findings
            .iter()
            .find(|f| f.severity == Severity::Blocker)
            .or_else(|| {
                self.findings
                    .iter()
                    .find(|f| f.severity == Severity::Warning)
            })
            .map(|f| f.reason.fix())
    }

    /// The lower-case domain of the address, if there is one.
    pub fn address_domain(&self) -> Option<String> {
        let address = self.address.as_deref()?;
        let (_, domain) = address.rsplit_once('@')?;
        (!domain.is_empty()).then(|| domain.to_ascii_lowercase())
    }
}

/// The output formats of `report`. The CLI maps its `--format` flag onto this; the report
/// module stays free of CLI types.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Format {
    /// Plain text for a terminal.
    #[default]
    Table,
    /// The whole [`ReportData`] as pretty JSON.
    Json,
    /// One row per user, for Excel.
    Csv,
    /// One self-contained HTML file.
    Html,
}

impl Format {
    /// Every format, in declaration order.
    pub const ALL: [Self; 4] = [Self::Table, Self::Json, Self::Csv, Self::Html];

    /// The name on the command line (`--format csv`).
    pub const fn code(self) -> &'static str {
        match self {
            Self::Table => "table",
            Self::Json => "json",
            Self::Csv => "csv",
            Self::Html => "html",
        }
    }

    /// The usual file extension, for default output file names.
    pub const fn extension(self) -> &'static str {
        match self {
            Self::Table => "txt",
            Self::Json => "json",
            Self::Csv => "csv",
            Self::Html => "html",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Format {
    type Err = UnknownCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|format| format.code() == s)
            .ok_or_else(|| UnknownCode {
                kind: "Format",
                code: s.to_owned(),
            })
    }
}

/// Renders a report in one format. Pure: the caller writes the text where it belongs.
pub fn render(data: &ReportData, format: Format) -> String {
    match format {
        Format::Table => table::render_table(data),
        Format::Json => json::render_json(data),
        Format::Csv => csv::render_csv(data),
        Format::Html => html::render_html(data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Reason;

    #[test]
    fn every_format_parses_back_from_its_code() {
        for format in Format::ALL {
            assert_eq!(format.code().parse::<Format>().unwrap(), format);
            assert_eq!(format.to_string(), format.code());
        }
        assert_eq!(Format::default(), Format::Table);
        let err = "pdf".parse::<Format>().unwrap_err();
        assert_eq!(err.to_string(), "unknown Format `pdf`");
    }

    #[test]
    fn render_dispatches_to_each_renderer() {
        let data = testdata::sample();
        assert!(render(&data, Format::Table).starts_with("Wave:"));
        assert!(render(&data, Format::Json).starts_with("{\n  \"schema_version\": 1,"));
        assert!(render(&data, Format::Csv).starts_with("\u{feff}id,"));
        assert!(render(&data, Format::Html).starts_with("<!DOCTYPE html>"));
    }

    #[test]
    fn the_fix_hint_comes_from_the_first_blocker_else_the_first_warning() {
        let data = testdata::sample();
        let [alice, bob, carol, ..] = &data.members[..] else {
            panic!("the sample has six members")
        };
        assert_eq!(alice.fix_hint(), None);
        assert_eq!(bob.fix_hint(), Some(Reason::DisabledAccount.fix()));
        assert_eq!(carol.fix_hint(), Some(Reason::ExchangeMailbox.fix()));
        assert_eq!(carol.blockers().count(), 1);
        assert!(bob.has_warnings());
        assert!(!carol.has_warnings());
    }

    #[test]
    fn the_address_domain_is_lower_case() {
        let data = testdata::sample();
        assert_eq!(
            data.members[1].address_domain().as_deref(),
            Some("partner.example")
        );
        assert_eq!(data.members[3].address_domain(), None, "no address");
    }
}
