//! `check`: can the configured workflow run? Gets a token, lists the permissions it claims,
//! tries each read the tool needs, fetches the tenant facts, and prints a ready/not-ready table,
//! with a warning when the tenant is young enough for a daily invitation quota.
//! Read-only: it never writes to the tenant or the store.

use anyhow::Context;
use secrecy::ExposeSecret;
use serde::Serialize;

use super::{Ctx, Outcome, connect};
use crate::cli::CheckArgs;
use crate::config::CredentialChoice;
use crate::domain::{Rule, RuleMode};
use crate::execute::young_tenant_warning;
use crate::graph::auth::TokenClaims;
use crate::graph::permissions::{Capability, Workflow};
use crate::graph::{Error as GraphError, GraphClient, Priority};
use crate::output;

/// The workflow is not ready; the table says why (exit code 1).
#[derive(Debug, thiserror::Error)]
#[error("not ready: {0}")]
pub struct NotReady(String);

#[derive(Serialize)]
struct Report {
    ready: bool,
    /// Which credential signed in, and for `auto` why the earlier ones were skipped.
    credential: CredentialChoice,
    tenant: TenantReport,
    token: TokenReport,
    capabilities: Vec<CapabilityReport>,
    /// What may stop a run although the workflow is ready (a young tenant's daily quota).
    warnings: Vec<String>,
}

#[derive(Serialize, Default)]
struct TenantReport {
    id: Option<String>,
    name: Option<String>,
    verified_domains: Vec<String>,
    federation_domains: Vec<String>,
    /// `organization.createdDateTime`.
    #[serde(with = "time::serde::rfc3339::option")]
    created_at: Option<time::OffsetDateTime>,
}

#[derive(Serialize)]
struct TokenReport {
    /// `application` or `delegated`; `unknown` for a token that is not a readable JWT.
    kind: &'static str,
    client_id: Option<String>,
    tenant_id: Option<String>,
    permissions: Vec<String>,
}

#[derive(Serialize)]
struct CapabilityReport {
    capability: Capability,
    description: &'static str,
    required: bool,
    /// The granted permission that covers it, per the token's claims.
    granted_by: Option<String>,
    /// For reads: what trying it returned (`ok` or Graph's error).
    probe: Option<String>,
    satisfied: bool,
}

impl output::JsonDocument for Report {
    const SCHEMA: &'static str = "check";
    const VERSION: u32 = 1;
}

impl CheckArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<Outcome> {
        let settings = ctx.settings()?;
        let client = connect(&settings)?;
        let token = client
            .tokens()
            .token()
            .await
            .context("getting an access token")?;
        let claims = TokenClaims::decode(token.expose_secret());
        drop(token);
        let granted = claims
            .as_ref()
            .map(TokenClaims::permissions)
            .unwrap_or_default();

        let (tenant, probes) = probe(&client).await;
        let workflow = Workflow {
            set_mail_before_invite: settings.invitation.set_mail_before_invite,
            checks_direct_federation: settings.rules.mode(Rule::DirectFederation) != RuleMode::Off,
        };
        let delegated = claims.as_ref().is_some_and(TokenClaims::is_delegated);
        let capabilities: Vec<CapabilityReport> = Capability::ALL
            .into_iter()
            .map(|capability| {
                let granted_by = capability
                    .granted_to(&granted, delegated)
                    .map(str::to_owned);
                let probe = probes
                    .iter()
                    .find(|(c, _)| *c == capability)
                    .map(|(_, result)| describe_probe(result.as_ref().err()));
                let satisfied = match &probe {
                    Some(text) => text == "ok",
                    None => granted_by.is_some(),
                };
                let probe = match (&probe, &claims) {
                    (None, None) => Some("cannot tell: the token is not a readable JWT".to_owned()),
                    _ => probe,
                };
                CapabilityReport {
                    capability,
                    description: capability.describe(),
                    required: capability.required(&workflow),
                    granted_by,
                    probe,
                    satisfied,
                }
            })
            .collect();
        let missing: Vec<&str> = capabilities
            .iter()
            .filter(|c| c.required && !c.satisfied)
            .map(|c| c.description)
            .collect();
        let warnings =
            young_tenant_warning(tenant.created_at, time::OffsetDateTime::now_utc(), None)
                .into_iter()
                .collect();
        let report = Report {
            warnings,
            ready: missing.is_empty(),
            credential: settings.credential_choice(),
            tenant,
            token: TokenReport {
                kind: match &claims {
                    Some(c) if c.is_delegated() => "delegated",
                    Some(_) => "application",
                    None => "unknown",
                },
                client_id: claims
                    .as_ref()
                    .and_then(|c| c.client_id().map(str::to_owned)),
                tenant_id: claims.as_ref().and_then(|c| c.tid.clone()),
                permissions: granted,
            },
            capabilities,
        };
        if let (Some(token_tenant), Some(tenant)) = (&report.token.tenant_id, &report.tenant.id)
            && !token_tenant.eq_ignore_ascii_case(tenant)
        {
            tracing::warn!(%token_tenant, %tenant, "the token was issued in another tenant");
        }

        if self.json {
            output::write_json(&report)?;
        } else {
            output::write_stdout(&render(&report))?;
        }
        if missing.is_empty() {
            Ok(Outcome::Done)
        } else {
            Err(NotReady(format!("missing: {}", missing.join("; "))).into())
        }
    }
}

/// Tries each read the workflow needs, keeping what the tenant facts say along the way.
async fn probe(client: &GraphClient) -> (TenantReport, Vec<(Capability, Result<(), GraphError>)>) {
    let mut tenant = TenantReport::default();
    let mut probes = Vec::new();
    let organization = client.organization_facts().await;
    if let Ok(org) = &organization {
        tenant.id = Some(org.id.to_string());
        tenant.name.clone_from(&org.display_name);
        tenant.created_at = org.created_at;
    }
    probes.push((Capability::ReadOrganization, organization.map(drop)));
    let domains = client.domains().await;
    if let Ok(domains) = &domains {
        tenant.verified_domains = domains
            .iter()
            .filter(|d| d.is_verified)
            .map(|d| d.name.clone())
            .collect();
    }
    probes.push((Capability::ReadDomains, domains.map(drop)));
    let federation = client.federation_domains().await;
    if let Ok(federation) = &federation {
        tenant.federation_domains = federation.iter().map(|d| d.domain.clone()).collect();
    }
    probes.push((Capability::ReadFederation, federation.map(drop)));
    let users = client
        .get::<serde_json::Value>(client.url("users?$select=id&$top=1"), Priority::Normal, &[])
        .await;
    probes.push((Capability::ReadUsers, users.map(drop)));
    let contacts = client
        .get::<serde_json::Value>(
            client.url("contacts?$select=id&$top=1"),
            Priority::Normal,
            &[],
        )
        .await;
    probes.push((Capability::ReadContacts, contacts.map(drop)));
    let cross_tenant = client.cross_tenant_default_consent().await;
    probes.push((Capability::ReadCrossTenantAccess, cross_tenant.map(drop)));
    let audit_logs = client
        .get::<serde_json::Value>(
            client.url("auditLogs/directoryAudits?$top=1"),
            Priority::Normal,
            &[],
        )
        .await;
    probes.push((Capability::ReadAuditLogs, audit_logs.map(drop)));
    (tenant, probes)
}

fn describe_probe(error: Option<&GraphError>) -> String {
    match error {
        None => "ok".to_owned(),
        Some(GraphError::Api(api)) => format!("{} {}", api.status, api.code),
        Some(other) => other.to_string(),
    }
}

fn render(report: &Report) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    let tenant = &report.tenant;
    let federation = if tenant.federation_domains.is_empty() {
        "no direct-federation domains".to_owned()
    } else {
        tenant.federation_domains.join(", ")
    };
    let _ = writeln!(
        text,
        "Tenant     {} ({})\nDomains    {} verified: {}\nFederation {federation}",
        tenant.name.as_deref().unwrap_or("name unknown"),
        tenant.id.as_deref().unwrap_or("id unknown"),
        tenant.verified_domains.len(),
        tenant.verified_domains.join(", "),
    );
    let _ = writeln!(text, "Credential {}", report.credential);
    let _ = writeln!(
        text,
        "Token      {} token, client {}, {} permission(s): {}\n",
        report.token.kind,
        report.token.client_id.as_deref().unwrap_or("unknown"),
        report.token.permissions.len(),
        report.token.permissions.join(" "),
    );
    let rows = report.capabilities.iter().map(|c| {
        [
            if c.satisfied {
                "ok"
            } else if c.required {
                "MISSING"
            } else {
                "-"
            }
            .to_owned(),
            c.description.to_owned(),
            c.granted_by.clone().unwrap_or_else(|| {
                let delegated = report.token.kind == "delegated";
                format!("needs {}", c.capability.permissions_for(delegated)[0])
            }),
            c.probe.clone().unwrap_or_else(|| {
                match c.capability {
                    Capability::InviteUsers | Capability::UpdateUsers => "(not tried: a write)",
                    _ => "(not tried)",
                }
                .to_owned()
            }),
        ]
    });
    text.push_str(&output::table(
        ["", "CAPABILITY", "PERMISSION", "TRIED"],
        rows,
    ));
    if report
        .capabilities
        .iter()
        .any(|c| c.capability == Capability::ReadContacts && !c.satisfied)
    {
        text.push_str(
            "\nOrg contacts cannot be read: discover will not know the addresses contacts hold, \
             and plans will warn that contact collisions were not checked (the service refuses \
             a user whose address a contact holds). Grant OrgContact.Read.All to check them.\n",
        );
    }
    if report
        .capabilities
        .iter()
        .any(|c| c.capability == Capability::ReadCrossTenantAccess && !c.satisfied)
    {
        text.push_str(
            "\nCross-tenant access settings cannot be read: the partner pre-flight (plan, \
             report) will say \"not checked\" instead of whether redemption can be automatic. \
             Grant Policy.Read.All to check, or set invitation.check_partner_settings = false.\n",
        );
    }
    if report
        .capabilities
        .iter()
        .any(|c| c.capability == Capability::ReadAuditLogs && !c.satisfied)
    {
        text.push_str(
            "\nThe directory audit log cannot be read: verify will not corroborate conversions \
             with the service's own events. Grant AuditLog.Read.All to have it do so.\n",
        );
    }
    text.push_str(if report.ready {
        "\nReady: the configured workflow can run.\n"
    } else {
        "\nNot ready: grant the missing permissions (admin consent) and run check again.\n"
    });
    for warning in &report.warnings {
        let _ = writeln!(text, "Warning: {warning}.");
    }
    if report.token.kind == "delegated" {
        text.push_str(
            "Delegated token: the signed-in administrator also needs a directory role that may \
             invite and update users (for example User Administrator); check cannot see roles.\n",
        );
    }
    text
}
