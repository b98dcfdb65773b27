//! Reports: a wave's plan (and, after a run, its progress) rendered from stored data only, as a
//! terminal table, JSON, CSV or one self-contained HTML file.
//!
//! Pure renderers: [`ReportData`] in, text out. This module must not read the store, call
//! Graph, read a clock or write files: the `report` command gathers the data (with the time)
//! and writes the result atomically.

use serde::Serialize;
use time::OffsetDateTime;

use crate::domain::{Decision, RealmKind, UserId, UserState};
use crate::rules::{AddressOrigin, Finding};

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
    pub members: Vec<ReportMember>,
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
    #[serde(with = "time::serde::rfc3339::option")]
    pub invited_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub accepted_at: Option<OffsetDateTime>,
}
