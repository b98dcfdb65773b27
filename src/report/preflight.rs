//! The partner pre-flight as a report shows it: one row per external domain of the wave, its
//! users, its realm, and what `plan` stored about automatic redemption (or `not-asked`).
//!
//! Pure: the stored answers and the members in, rows out. It must not read the store or decide
//! anything about redemption (that is `plan::preflight`'s).

use std::collections::HashMap;

use serde::Serialize;
use time::OffsetDateTime;

use crate::domain::{PartnerPreflight, PreflightReason, RealmKind, Redemption};
use crate::rules::DomainSet;

use super::ReportMember;

/// One external domain of the wave and its pre-flight answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReportPreflight {
    /// Lower-case domain.
    pub domain: String,
    /// The wave's users whose address is at the domain.
    pub users: usize,
    /// The domain's home realm, when known.
    pub realm: Option<RealmKind>,
    /// The domain's home tenant, when the pre-flight found it.
    pub tenant_id: Option<String>,
    pub redemption: Redemption,
    pub reason: PreflightReason,
    /// What failed, for `not-checked` answers that come from an error.
    pub detail: Option<String>,
    /// When `plan` asked; `None` when it never did (`not-asked`).
    #[serde(with = "time::serde::rfc3339::option")]
    pub checked_at: Option<OffsetDateTime>,
}

impl Redemption {
    /// What the answer means, for people.
    pub const fn label(self) -> &'static str {
        match self {
            Self::AutomaticIfPartnerAllows => "automatic if the partner allows it",
            Self::AsksPartner => "will ask the partner",
            Self::NotChecked => "not checked",
        }
    }
}

impl PreflightReason {
    /// Why, for people.
    pub const fn label(self) -> &'static str {
        match self {
            Self::InboundAllowed => {
                "our inbound automatic redemption is on for the partner's tenant"
            }
            Self::InboundBlocked => {
                "our inbound automatic redemption is off for the partner's tenant"
            }
            Self::InheritsDefault => "the partner entry inherits the default (off)",
            Self::NoPartnerEntry => "no partner entry: the default applies (off)",
            Self::NotEntra => "not an Entra tenant",
            Self::TenantNotFound => "no Entra tenant holds the domain",
            Self::TenantLookupFailed => "the tenant id lookup failed",
            Self::PermissionMissing => "Policy.Read.All is not granted",
            Self::PolicyReadFailed => "the cross-tenant access settings could not be read",
            Self::NotAsked => "not asked (check_partner_settings off, or planned before)",
        }
    }
}

/// The pre-flight rows of a wave: every external domain of its members' addresses (not the
/// tenant's `own` domains), most users first then by name, with the stored answer or
/// `not-checked`/`not-asked`.
pub fn preflight_rows(
    members: &[ReportMember],
    stored: Vec<PartnerPreflight>,
    own: &DomainSet,
) -> Vec<ReportPreflight> {
    let mut domains: HashMap<String, (usize, Option<RealmKind>)> = HashMap::new();
    for member in members {
        if let Some(domain) = member.address_domain()
            && own.covering(&domain).is_none()
        {
            let entry = domains.entry(domain).or_default();
            entry.0 += 1;
            entry.1 = entry.1.or(member.realm);
        }
    }
    let mut stored: HashMap<String, PartnerPreflight> = stored
        .into_iter()
        .map(|answer| (answer.domain.to_lowercase(), answer))
        .collect();
    let mut rows: Vec<ReportPreflight> = domains
        .into_iter()
        .map(|(domain, (users, realm))| match stored.remove(&domain) {
            Some(answer) => ReportPreflight {
                domain,
                users,
                realm,
                tenant_id: answer.tenant_id.map(|id| id.to_string()),
                redemption: answer.redemption,
                reason: answer.reason,
                detail: answer.detail,
                checked_at: Some(answer.checked_at),
            },
            None => ReportPreflight {
                domain,
                users,
                realm,
                tenant_id: None,
                redemption: Redemption::NotChecked,
                reason: PreflightReason::NotAsked,
                detail: None,
                checked_at: None,
            },
        })
        .collect();
    rows.sort_by(|a, b| b.users.cmp(&a.users).then_with(|| a.domain.cmp(&b.domain)));
    rows
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;
    use crate::report::testdata;

    #[test]
    fn every_external_domain_gets_a_row_with_its_answer_or_not_asked() {
        let data = testdata::sample();
        let stored = vec![PartnerPreflight {
            domain: "Partner.example".into(),
            tenant_id: Some(Uuid::from_u128(9)),
            redemption: Redemption::AutomaticIfPartnerAllows,
            reason: PreflightReason::InboundAllowed,
            detail: None,
            checked_at: datetime!(2026-12-06 08:00 UTC),
        }];
        let rows = preflight_rows(&data.members, stored, &DomainSet::new(["contoso.com"]));
        let partner = rows.iter().find(|r| r.domain == "partner.example").unwrap();
        assert_eq!(partner.redemption, Redemption::AutomaticIfPartnerAllows);
        assert_eq!(
            partner.tenant_id.as_deref(),
            Some("00000000-0000-0000-0000-000000000009")
        );
        assert!(partner.users > 0);
        assert!(
            rows.iter()
                .filter(|r| r.domain != "partner.example")
                .all(|r| r.reason == PreflightReason::NotAsked && r.checked_at.is_none())
        );
        let users: usize = rows.iter().map(|r| r.users).sum();
        let with_address = data
            .members
            .iter()
            .filter(|m| m.address_domain().is_some_and(|d| d != "contoso.com"))
            .count();
        assert_eq!(users, with_address, "each addressed user counted once");
        assert!(rows.windows(2).all(|w| w[0].users >= w[1].users));
    }
}
