//! Home-realm discovery for a set of external email domains, with the realm cache: the
//! orchestration between [`graph::realm`](crate::graph::realm) (the question) and the store
//! (the dated answers). Used by the planning engine to feed the `home-realm-not-entra` rule.
//!
//! It owns which domains are asked (distinct, not the tenant's own, not freshly cached), how
//! many at once, and how long answers stay fresh ([`RealmOptions`]). Lookups are advisory: a
//! failed lookup is recorded and counted, never an error; only the store failing is. It must
//! not contain SQL or HTTP, build its own client (the caller hands it a [`RealmClient`]), nor
//! decide what a realm means for a user (that is the rule's).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures_util::StreamExt;
use time::OffsetDateTime;

use crate::domain::{RealmKind, RealmRecord};
use crate::graph::realm::{RealmClient, ascii_domain};
use crate::store::{self, Store};

/// How long an answer (Managed, Federated, Unknown) is used before it is asked again. Domains
/// rarely move between tenants; a month keeps repeated plans cheap.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_hours(30 * 24);

/// How long a failed lookup is remembered: long enough that repeated plans in one day do not
/// hammer a failing endpoint, short enough that the next day's plan asks again.
pub const DEFAULT_FAILURE_MAX_AGE: Duration = Duration::from_hours(24);

/// Lookups in flight at once. The endpoint is undocumented and shared with every sign-in:
/// NOTES.md §6 asks for low concurrency.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// Cache freshness and concurrency of [`resolve_realms`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealmOptions {
    /// Answers younger than this are used from the cache.
    pub max_age: Duration,
    /// Failures younger than this are used from the cache (not asked again).
    pub failure_max_age: Duration,
    /// Lookups in flight at once (at least 1).
    pub concurrency: usize,
}

impl Default for RealmOptions {
    fn default() -> Self {
        Self {
            max_age: DEFAULT_MAX_AGE,
            failure_max_age: DEFAULT_FAILURE_MAX_AGE,
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

/// What [`resolve_realms`] did. `managed`, `federated`, `unknown` and `failed` count every
/// resolved domain, cached or asked; `cached + asked + invalid` is the number of distinct
/// domains considered (own domains excluded).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RealmSummary {
    /// Answered from the cache, without a request.
    pub cached: usize,
    /// Asked of the login host in this run.
    pub asked: usize,
    /// Skipped because they are (subdomains of) the tenant's own domains.
    pub own: usize,
    /// Not domain names: failed without a request (and not cached).
    pub invalid: usize,
    pub managed: usize,
    pub federated: usize,
    pub unknown: usize,
    /// Lookups that gave no answer (invalid domains included); the rule reports these
    /// domains' realm as not known.
    pub failed: usize,
    /// Every considered domain's record, by lower-case domain.
    pub records: BTreeMap<String, RealmRecord>,
}

impl RealmSummary {
    fn count(&mut self, record: RealmRecord) {
        match &record.outcome {
            Ok(answer) => match answer.kind {
                RealmKind::Managed => self.managed += 1,
                RealmKind::Federated => self.federated += 1,
                RealmKind::Unknown => self.unknown += 1,
            },
            Err(_) => self.failed += 1,
        }
        self.records.insert(record.domain.clone(), record);
    }
}

/// Resolves the home realm of each distinct domain (case-insensitive) in `domains`, except
/// the tenant's `own_domains` and their subdomains. Fresh cached records are used as they
/// are; the rest are asked at most `options.concurrency` at a time, and each answer or failure
/// is saved (dated `now`, to the microsecond) as it arrives. Invalid domains fail without a request and are not
/// cached. Only a store failure is an error.
#[tracing::instrument(skip_all, err)]
pub async fn resolve_realms(
    client: &RealmClient,
    store: &Store,
    domains: impl IntoIterator<Item = String>,
    own_domains: &[String],
    now: OffsetDateTime,
    options: &RealmOptions,
) -> Result<RealmSummary, store::Error> {
    // Dated as the store keeps it (UTC, microseconds), so a fresh record and the same record
    // read back from the cache are equal.
    let now = now
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .expect("a truncated nanosecond is in range");
    let (candidates, own) = distinct_foreign(domains, own_domains);
    let mut summary = RealmSummary {
        own,
        ..RealmSummary::default()
    };
    let oldest = now - options.max_age.max(options.failure_max_age);
    let mut to_ask = Vec::new();
    for domain in candidates {
        if let Err(err) = ascii_domain(&domain) {
            summary.invalid += 1;
            summary.count(RealmRecord {
                domain,
                outcome: Err(err.to_string()),
                checked_at: now,
            });
            continue;
        }
        match store.realm(&domain, oldest).await? {
            Some(record) if is_fresh(&record, now, options) => {
                summary.cached += 1;
                summary.count(record);
            }
            _ => to_ask.push(domain),
        }
    }
    tracing::debug!(
        cached = summary.cached,
        asking = to_ask.len(),
        "resolving home realms"
    );
    let mut answers = futures_util::stream::iter(to_ask)
        .map(|domain| async move { client.record(&domain, now).await })
        .buffer_unordered(options.concurrency.max(1));
    while let Some(record) = answers.next().await {
        if let Err(reason) = &record.outcome {
            tracing::info!(domain = %record.domain, %reason, "home-realm lookup failed (advisory)");
        }
        store.save_realm(&record).await?;
        summary.asked += 1;
        summary.count(record);
    }
    Ok(summary)
}

/// Whether a cached record is young enough: answers for `max_age`, failures for
/// `failure_max_age`.
fn is_fresh(record: &RealmRecord, now: OffsetDateTime, options: &RealmOptions) -> bool {
    let max_age = if record.outcome.is_ok() {
        options.max_age
    } else {
        options.failure_max_age
    };
    record.checked_at >= now - max_age
}

/// The distinct lower-case domains (in order) that are not the tenant's own or a subdomain
/// of one, and how many distinct domains were the tenant's own.
fn distinct_foreign(
    domains: impl IntoIterator<Item = String>,
    own_domains: &[String],
) -> (Vec<String>, usize) {
    let own_domains: Vec<String> = own_domains
        .iter()
        .map(|d| d.trim().trim_end_matches('.').to_lowercase())
        .collect();
    let is_own = |domain: &str| {
        own_domains.iter().any(|own| {
            domain == own
                || domain
                    .strip_suffix(own.as_str())
                    .is_some_and(|prefix| prefix.ends_with('.'))
        })
    };
    let mut seen = BTreeSet::new();
    let mut foreign = Vec::new();
    let mut own = 0;
    for domain in domains {
        let domain = domain.trim().to_lowercase();
        if !seen.insert(domain.clone()) {
            continue;
        }
        if is_own(&domain) {
            own += 1;
        } else {
            foreign.push(domain);
        }
    }
    (foreign, own)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::domain::RealmAnswer;

    #[test]
    fn domains_are_distinct_case_insensitively_and_own_domains_are_skipped() {
        let (foreign, own) = distinct_foreign(
            [
                "Fabrikam.com",
                "fabrikam.com ",
                "contoso.com",
                "Partners.Contoso.com",
                "notcontoso.com",
                "tailspintoys.com",
                "CONTOSO.COM",
            ]
            .map(str::to_owned),
            &[
                "contoso.com".to_owned(),
                "Contoso.onmicrosoft.com".to_owned(),
            ],
        );
        assert_eq!(
            foreign,
            ["fabrikam.com", "notcontoso.com", "tailspintoys.com"]
        );
        assert_eq!(own, 2, "contoso.com and partners.contoso.com");
    }

    #[test]
    fn answers_and_failures_stay_fresh_for_different_times() {
        let now = datetime!(2026-11-21 08:00 UTC);
        let options = RealmOptions::default();
        let record = |outcome, checked_at| RealmRecord {
            domain: "fabrikam.com".into(),
            outcome,
            checked_at,
        };
        let answer = Ok(RealmAnswer {
            kind: RealmKind::Managed,
            cloud_instance: None,
            federation_brand: None,
        });
        let failure = Err("the login host answered 503 after 6 attempt(s)".to_owned());
        let fresh = |outcome, at| is_fresh(&record(outcome, at), now, &options);
        assert!(fresh(answer.clone(), datetime!(2026-10-23 08:00 UTC)));
        assert!(!fresh(answer, datetime!(2026-10-22 07:59 UTC)));
        assert!(fresh(failure.clone(), datetime!(2026-11-20 08:00 UTC)));
        assert!(!fresh(failure, datetime!(2026-11-20 07:59 UTC)));
    }
}
