//! The partner pre-flight (issue #17 item 4; NOTES.md §2.x "Automatic redemption"): for each
//! external domain of a wave, whether redeeming the invitation can be automatic (no consent
//! prompt) or will ask the partner, from this tenant's cross-tenant access settings.
//!
//! Automatic redemption needs both the partner's outbound and our inbound "Automatically
//! redeem invitations"; only ours is readable, per partner tenant, so the best answer is
//! "automatic if the partner allows it" ([`Redemption::AutomaticIfPartnerAllows`]). A
//! partner tenant without an entry, or an entry that inherits, gets the default's setting
//! (documented as always off).
//!
//! It owns which domains are asked (not the tenant's own; not a realm that is no Entra tenant),
//! the order of the questions (the default configuration first: a refusal there, typically the
//! missing `Policy.Read.All`, answers every domain without another request; then each domain's
//! tenant id from the login host; then each distinct partner tenant's entry) and the pure
//! decision ([`redemption_of`]). Advisory: every failure is a `not-checked` answer saying why;
//! only the store failing is an error. It must not contain SQL or HTTP, nor build clients (the
//! caller hands them in).

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

use futures_util::StreamExt;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{PartnerPreflight, PreflightReason, RealmKind, Redemption};
use crate::graph::realm::RealmClient;
use crate::graph::{self, GraphClient};
use crate::rules::DomainSet;
use crate::store::{self, Store};

/// Login-host and Graph requests in flight at once (the user-realm lookups' pace: NOTES §6).
const CONCURRENCY: usize = 4;

/// Our partner-specific configuration for a partner tenant, as far as automatic redemption
/// goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartnerEntry {
    /// No partner entry (Graph answered 404): the default applies.
    Missing,
    /// The entry's `automaticUserConsentSettings.inboundAllowed` (`None`: inherit).
    Present { inbound_allowed: Option<bool> },
}

/// Whether redemption at a partner can be automatic, given our entry for its tenant and the
/// default configuration's `inboundAllowed` (`None` read as off, as documented: always false).
pub fn redemption_of(
    entry: PartnerEntry,
    default_inbound: Option<bool>,
) -> (Redemption, PreflightReason) {
    let by_default = |reason| {
        if default_inbound == Some(true) {
            (Redemption::AutomaticIfPartnerAllows, reason)
        } else {
            (Redemption::AsksPartner, reason)
        }
    };
    match entry {
        PartnerEntry::Present {
            inbound_allowed: Some(true),
        } => (
            Redemption::AutomaticIfPartnerAllows,
            PreflightReason::InboundAllowed,
        ),
        PartnerEntry::Present {
            inbound_allowed: Some(false),
        } => (Redemption::AsksPartner, PreflightReason::InboundBlocked),
        PartnerEntry::Present {
            inbound_allowed: None,
        } => by_default(PreflightReason::InheritsDefault),
        PartnerEntry::Missing => by_default(PreflightReason::NoPartnerEntry),
    }
}

/// How many answers of each kind a pre-flight gave (for `plan`'s summary).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PreflightSummary {
    pub automatic: usize,
    pub asks_partner: usize,
    /// Not checked, by reason.
    pub not_checked: BTreeMap<PreflightReason, usize>,
}

impl PreflightSummary {
    pub fn of(answers: &[PartnerPreflight]) -> Self {
        let mut summary = Self::default();
        for answer in answers {
            match answer.redemption {
                Redemption::AutomaticIfPartnerAllows => summary.automatic += 1,
                Redemption::AsksPartner => summary.asks_partner += 1,
                Redemption::NotChecked => {
                    *summary.not_checked.entry(answer.reason).or_default() += 1;
                }
            }
        }
        summary
    }

    /// Every domain answered.
    pub fn domains(&self) -> usize {
        self.automatic + self.asks_partner + self.not_checked.values().sum::<usize>()
    }
}

/// Where the pre-flight gets its answers: Graph (the cross-tenant access settings), the login
/// host (tenant ids) and the store (realms, and where the answers are kept).
#[derive(Debug)]
pub struct Sources<'a> {
    pub graph: &'a GraphClient,
    pub login: &'a RealmClient,
    pub store: &'a Store,
}

/// Checks each of `domains` (lower-case; the tenant's `verified` domains and their subdomains
/// are skipped) and stores the answers, dated `now`. `realms` holds the realms already asked
/// (others are read from the realm cache); a domain whose realm is not an Entra tenant is
/// answered without a request. Returns the answers, by domain.
#[tracing::instrument(skip_all, fields(domains = domains.len()), err)]
pub async fn check_partners<S: BuildHasher>(
    sources: &Sources<'_>,
    domains: &[String],
    verified: &DomainSet,
    realms: &HashMap<String, RealmKind, S>,
    now: OffsetDateTime,
) -> Result<Vec<PartnerPreflight>, store::Error> {
    let answer =
        |domain: &str, tenant_id, verdict, detail| answer(domain, tenant_id, verdict, detail, now);
    let mut answers = Vec::new();
    let mut to_ask = Vec::new();
    for domain in domains {
        if verified.covering(domain).is_some() {
            continue;
        }
        let realm = match realms.get(domain) {
            Some(kind) => Some(*kind),
            None => sources
                .store
                .realm(domain, OffsetDateTime::UNIX_EPOCH)
                .await?
                .and_then(|record| record.outcome.ok())
                .map(|answer| answer.kind),
        };
        if realm == Some(RealmKind::Unknown) {
            answers.push(answer(
                domain,
                None,
                (Redemption::NotChecked, PreflightReason::NotEntra),
                None,
            ));
        } else {
            to_ask.push(domain.clone());
        }
    }
    if !to_ask.is_empty() {
        answers.extend(ask(sources, &to_ask, now).await);
    }
    answers.sort_by(|a, b| a.domain.cmp(&b.domain));
    sources.store.save_partner_preflights(&answers).await?;
    Ok(answers)
}

/// The answers for domains that may be Entra tenants: the default configuration, then each
/// domain's tenant, then each distinct tenant's entry.
async fn ask(
    sources: &Sources<'_>,
    domains: &[String],
    now: OffsetDateTime,
) -> Vec<PartnerPreflight> {
    let answer =
        |domain: &str, tenant_id, verdict, detail| answer(domain, tenant_id, verdict, detail, now);
    let default_inbound = match sources.graph.cross_tenant_default_consent().await {
        Ok(consent) => consent.inbound_allowed,
        Err(error) => {
            let reason = policy_failure(&error);
            tracing::info!(%error, "cannot read the cross-tenant access settings (advisory)");
            return domains
                .iter()
                .map(|domain| {
                    answer(
                        domain,
                        None,
                        (Redemption::NotChecked, reason),
                        Some(error.to_string()),
                    )
                })
                .collect();
        }
    };
    let tenants: Vec<(String, Result<Option<Uuid>, String>)> = futures_util::stream::iter(domains)
        .map(|domain| async move {
            let found = sources.login.tenant_of(domain).await;
            (domain.clone(), found.map_err(|e| e.to_string()))
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut distinct: Vec<Uuid> = tenants
        .iter()
        .filter_map(|(_, found)| found.as_ref().ok().copied().flatten())
        .collect();
    distinct.sort_unstable();
    distinct.dedup();
    let entries: HashMap<Uuid, Result<PartnerEntry, graph::Error>> =
        futures_util::stream::iter(distinct)
            .map(|tenant| async move {
                let entry = sources
                    .graph
                    .cross_tenant_partner_consent(tenant)
                    .await
                    .map(|consent| match consent {
                        Some(consent) => PartnerEntry::Present {
                            inbound_allowed: consent.inbound_allowed,
                        },
                        None => PartnerEntry::Missing,
                    });
                (tenant, entry)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
    tenants
        .into_iter()
        .map(|(domain, found)| match found {
            Err(reason) => answer(
                &domain,
                None,
                (Redemption::NotChecked, PreflightReason::TenantLookupFailed),
                Some(reason),
            ),
            Ok(None) => answer(
                &domain,
                None,
                (Redemption::NotChecked, PreflightReason::TenantNotFound),
                None,
            ),
            Ok(Some(tenant)) => match &entries[&tenant] {
                Ok(entry) => answer(
                    &domain,
                    Some(tenant),
                    redemption_of(*entry, default_inbound),
                    None,
                ),
                Err(error) => answer(
                    &domain,
                    Some(tenant),
                    (Redemption::NotChecked, policy_failure(error)),
                    Some(error.to_string()),
                ),
            },
        })
        .collect()
}

/// One domain's answer, dated `now`.
fn answer(
    domain: &str,
    tenant_id: Option<Uuid>,
    (redemption, reason): (Redemption, PreflightReason),
    detail: Option<String>,
    now: OffsetDateTime,
) -> PartnerPreflight {
    PartnerPreflight {
        domain: domain.to_owned(),
        tenant_id,
        redemption,
        reason,
        detail,
        checked_at: now,
    }
}

/// Why a cross-tenant settings read failed: the permission (403), or anything else.
fn policy_failure(error: &graph::Error) -> PreflightReason {
    if error.status() == Some(403) {
        PreflightReason::PermissionMissing
    } else {
        PreflightReason::PolicyReadFailed
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case::on(PartnerEntry::Present { inbound_allowed: Some(true) }, Some(false), Redemption::AutomaticIfPartnerAllows, PreflightReason::InboundAllowed)]
    #[case::off(PartnerEntry::Present { inbound_allowed: Some(false) }, Some(true), Redemption::AsksPartner, PreflightReason::InboundBlocked)]
    #[case::inherits_off(PartnerEntry::Present { inbound_allowed: None }, Some(false), Redemption::AsksPartner, PreflightReason::InheritsDefault)]
    #[case::inherits_unset(PartnerEntry::Present { inbound_allowed: None }, None, Redemption::AsksPartner, PreflightReason::InheritsDefault)]
    #[case::inherits_on(PartnerEntry::Present { inbound_allowed: None }, Some(true), Redemption::AutomaticIfPartnerAllows, PreflightReason::InheritsDefault)]
    #[case::no_entry(
        PartnerEntry::Missing,
        Some(false),
        Redemption::AsksPartner,
        PreflightReason::NoPartnerEntry
    )]
    #[case::no_entry_default_on(
        PartnerEntry::Missing,
        Some(true),
        Redemption::AutomaticIfPartnerAllows,
        PreflightReason::NoPartnerEntry
    )]
    fn our_inbound_setting_decides_what_we_can_say(
        #[case] entry: PartnerEntry,
        #[case] default_inbound: Option<bool>,
        #[case] redemption: Redemption,
        #[case] reason: PreflightReason,
    ) {
        assert_eq!(redemption_of(entry, default_inbound), (redemption, reason));
    }

    #[test]
    fn the_summary_counts_each_answer_once() {
        let at = time::macros::datetime!(2026-12-06 08:00 UTC);
        let answer = |redemption, reason| PartnerPreflight {
            domain: "x.example".into(),
            tenant_id: None,
            redemption,
            reason,
            detail: None,
            checked_at: at,
        };
        let summary = PreflightSummary::of(&[
            answer(
                Redemption::AutomaticIfPartnerAllows,
                PreflightReason::InboundAllowed,
            ),
            answer(Redemption::AsksPartner, PreflightReason::NoPartnerEntry),
            answer(Redemption::NotChecked, PreflightReason::NotEntra),
            answer(Redemption::NotChecked, PreflightReason::NotEntra),
        ]);
        assert_eq!((summary.automatic, summary.asks_partner), (1, 1));
        assert_eq!(summary.not_checked[&PreflightReason::NotEntra], 2);
        assert_eq!(summary.domains(), 4);
    }
}
