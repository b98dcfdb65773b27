//! `report`: gather a wave's plan and progress from the store (never from memory, never from
//! Graph) and render it as a table, JSON, CSV or HTML, written atomically.

use std::collections::HashMap;

use anyhow::Context;
use time::OffsetDateTime;

use super::{Ctx, Outcome};
use crate::cli::{ReportArgs, ReportFormat};
use crate::config::{AuthMethod, Settings};
use crate::domain::{Decision, RealmKind, UserState, WaveId};
use crate::execute::young_tenant_warning;
use crate::fsutil::{self, Overwrite};
use crate::graph::permissions::Capability;
use crate::output;
use crate::report::{
    self, Format, ReportData, ReportExecution, ReportMember, ReportPermission, ReportTenant,
    ReportWave,
};
use crate::rules::{DomainSet, Finding, Reason};
use crate::store::Store;

/// Reasons that concern the wave as a whole (they are stored with every member).
const WAVE_REASONS: [Reason; 3] = [
    Reason::CustomMessageDropped,
    Reason::RedirectWithoutTenant,
    Reason::ContactsNotChecked,
];

impl ReportArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<Outcome> {
        let settings = ctx.settings()?;
        let store = ctx.existing_store(&settings).await?;
        let data = gather(&store, &settings, &self.wave, OffsetDateTime::now_utc()).await?;
        let format = match self.format {
            ReportFormat::Table => Format::Table,
            ReportFormat::Json => Format::Json,
            ReportFormat::Csv => Format::Csv,
            ReportFormat::Html => Format::Html,
        };
        let rendered = report::render(&data, format);
        match &self.out {
            Some(path) => {
                fsutil::write_private(path, rendered.as_bytes(), Overwrite::Yes)
                    .with_context(|| format!("writing the report to {}", path.display()))?;
                output::write_stdout(&format!(
                    "Report of wave {} ({} users) written to {}\n",
                    data.wave.name,
                    data.members.len(),
                    path.display()
                ))?;
            }
            None => output::write_stdout(&rendered)?,
        }
        Ok(Outcome::Done)
    }
}

/// Each member with its user's names and its address domain's cached realm.
async fn member_rows(store: &Store, wave: WaveId) -> anyhow::Result<Vec<ReportMember>> {
    let mut realms: HashMap<String, Option<RealmKind>> = HashMap::new();
    let members = store.members_with_names(wave).await?;
    let mut rows = Vec::with_capacity(members.len());
    for (member, names) in members {
        let domain = member
            .plan
            .chosen_address
            .as_deref()
            .and_then(crate::rules::address::domain_of);
        let realm = match domain {
            Some(domain) => {
                if let Some(known) = realms.get(&domain) {
                    *known
                } else {
                    let found = store
                        .realm(&domain, OffsetDateTime::UNIX_EPOCH)
                        .await?
                        .and_then(|r| r.outcome.ok())
                        .map(|a| a.kind);
                    realms.insert(domain, found);
                    found
                }
            }
            None => None,
        };
        rows.push(ReportMember {
            user_id: member.plan.user_id,
            user_principal_name: names.user_principal_name,
            display_name: names.display_name,
            synced: names.synced,
            decision: member.plan.decision,
            state: member.state,
            address: member.plan.chosen_address,
            address_origin: member.plan.address_origin,
            set_mail: member.plan.set_mail,
            findings: member.plan.findings,
            realm,
            last_error: member.last_error_message,
            mail_restore: member.mail_restore,
            invited_at: member.invited_at,
            accepted_at: member.accepted_at,
        });
    }
    Ok(rows)
}

fn tenant_report(facts: Option<&crate::domain::TenantFacts>) -> ReportTenant {
    ReportTenant {
        id: facts.map(|f| f.tenant_id.to_string()),
        name: facts.and_then(|f| f.display_name.clone()),
        verified_domains: facts
            .map(|f| {
                f.domains
                    .iter()
                    .filter(|d| d.is_verified)
                    .map(|d| d.name.clone())
                    .collect()
            })
            .unwrap_or_default(),
        federation_domains: facts
            .map(|f| {
                f.federation_domains
                    .iter()
                    .map(|d| d.domain.clone())
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// How `run` would go with these settings; `sets_mail`: some eligible member's `mail` is set
/// first (only then is the write permission used).
fn execution(settings: &Settings, sets_mail: bool) -> ReportExecution {
    let delegated = matches!(
        settings.auth.method,
        AuthMethod::DeviceCode | AuthMethod::AzureCli
    );
    ReportExecution {
        invitations_per_second: settings.throughput.max_invitations_per_second,
        max_invitations_per_day: settings.throughput.max_invitations_per_day.map(u32::from),
        restore_mail_on_failure: settings.invitation.restore_mail_on_failure,
        permissions: Capability::USED_BY_RUN
            .into_iter()
            .filter(|capability| sets_mail || *capability != Capability::UpdateUsers)
            .map(|capability| ReportPermission {
                permission: capability.permissions_for(delegated)[0].to_owned(),
                purpose: capability.describe().to_owned(),
            })
            .collect(),
    }
}

/// Everything the report shows, from the store, and from `settings` how the run would go.
pub async fn gather(
    store: &Store,
    settings: &Settings,
    wave_name: &str,
    now: OffsetDateTime,
) -> anyhow::Result<ReportData> {
    let wave = super::stored_wave(store, wave_name).await?;
    let facts = store.tenant_facts().await?;
    let report_members = member_rows(store, wave.id).await?;
    let partner_preflight = partner_preflight(store, facts.as_ref(), &report_members).await?;
    let wave_findings: Vec<Finding> = report_members
        .first()
        .map(|m| {
            m.findings
                .iter()
                .filter(|f| WAVE_REASONS.contains(&f.reason))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    // What the wave still has to invite: eligible members not yet invited.
    let to_invite = report_members
        .iter()
        .filter(|m| {
            m.decision == Decision::Eligible
                && matches!(
                    m.state,
                    UserState::Planned | UserState::Ready | UserState::Inviting | UserState::Failed
                )
        })
        .count() as u64;
    let started = report_members.iter().any(|m| {
        !matches!(
            m.state,
            UserState::Planned | UserState::Ready | UserState::Excluded
        )
    });
    Ok(ReportData {
        schema_version: report::SCHEMA_VERSION,
        generated_at: now,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        tenant: tenant_report(facts.as_ref()),
        wave: ReportWave {
            name: wave.name.clone(),
            selector: wave.selector.clone(),
            cap: wave.cap,
            created_at: wave.created_at,
            planned_at: wave.planned_at,
            plan_hash: wave.plan_hash.clone(),
            started,
        },
        settings: wave.settings.clone(),
        wave_findings,
        execution: execution(
            settings,
            report_members
                .iter()
                .any(|m| m.set_mail && m.decision == Decision::Eligible),
        ),
        warnings: young_tenant_warning(
            facts.as_ref().and_then(|f| f.created_at),
            now,
            Some(to_invite),
        )
        .into_iter()
        .collect(),
        partner_preflight,
        members: report_members,
    })
}

/// The stored partner pre-flight of the members' external domains, as report rows.
async fn partner_preflight(
    store: &Store,
    facts: Option<&crate::domain::TenantFacts>,
    members: &[ReportMember],
) -> anyhow::Result<Vec<report::ReportPreflight>> {
    let own = DomainSet::new(
        facts
            .iter()
            .flat_map(|f| f.domains.iter().filter(|d| d.is_verified).map(|d| &d.name)),
    );
    let mut domains: Vec<String> = members
        .iter()
        .filter_map(ReportMember::address_domain)
        .collect();
    domains.sort_unstable();
    domains.dedup();
    let stored = store.partner_preflights(&domains).await?;
    Ok(report::preflight::preflight_rows(members, stored, &own))
}
