//! Tenant facts (the tenant, its domains, its direct-federation domains) and the realm cache.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Error, Result, Store, parse_code, parse_timestamp, timestamp};
use crate::domain::{
    FederationDomain, RealmAnswer, RealmKind, RealmRecord, TenantDomain, TenantFacts,
};

impl Store {
    /// Replaces the stored tenant facts. Refuses facts from another tenant than the one this
    /// database already belongs to.
    #[tracing::instrument(skip_all, fields(tenant = %facts.tenant_id), err)]
    pub async fn save_tenant_facts(&self, facts: &TenantFacts) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let stored: Option<String> =
            sqlx::query_scalar("SELECT tenant_id FROM tenant WHERE singleton = 1")
                .fetch_optional(&mut *tx)
                .await?;
        let found = facts.tenant_id.to_string();
        if let Some(stored) = stored.filter(|s| *s != found) {
            return Err(Error::TenantMismatch { stored, found });
        }
        sqlx::query(
            "INSERT INTO tenant (singleton, tenant_id, display_name, created_at, fetched_at)
             VALUES (1, ?, ?, ?, ?)
             ON CONFLICT (singleton) DO UPDATE SET
                display_name = excluded.display_name, created_at = excluded.created_at,
                fetched_at = excluded.fetched_at",
        )
        .bind(&found)
        .bind(&facts.display_name)
        .bind(facts.created_at.map(timestamp))
        .bind(timestamp(facts.fetched_at))
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM tenant_domains")
            .execute(&mut *tx)
            .await?;
        for domain in &facts.domains {
            sqlx::query(
                "INSERT INTO tenant_domains
                    (name, is_verified, is_default, is_initial, authentication_type)
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(&domain.name)
            .bind(domain.is_verified)
            .bind(domain.is_default)
            .bind(domain.is_initial)
            .bind(&domain.authentication_type)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM federation_domains")
            .execute(&mut *tx)
            .await?;
        for domain in &facts.federation_domains {
            sqlx::query(
                "INSERT INTO federation_domains (domain, configuration_id, display_name)
                 VALUES (?, ?, ?)",
            )
            .bind(&domain.domain)
            .bind(&domain.configuration_id)
            .bind(&domain.display_name)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The stored tenant facts, or `None` before the first discovery.
    pub async fn tenant_facts(&self) -> Result<Option<TenantFacts>> {
        let Some((tenant_id, display_name, created_at, fetched_at, contacts_read_at)) =
            sqlx::query_as::<
                _,
                (
                    String,
                    Option<String>,
                    Option<String>,
                    String,
                    Option<String>,
                ),
            >(
                "SELECT tenant_id, display_name, created_at, fetched_at, contacts_read_at
                 FROM tenant WHERE singleton = 1",
            )
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let domains = sqlx::query_as::<_, (String, bool, bool, bool, Option<String>)>(
            "SELECT name, is_verified, is_default, is_initial, authentication_type
             FROM tenant_domains ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(
            |(name, is_verified, is_default, is_initial, authentication_type)| TenantDomain {
                name,
                is_verified,
                is_default,
                is_initial,
                authentication_type,
            },
        )
        .collect();
        let federation_domains = sqlx::query_as::<_, (String, String, Option<String>)>(
            "SELECT domain, configuration_id, display_name FROM federation_domains ORDER BY domain",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(
            |(domain, configuration_id, display_name)| FederationDomain {
                domain,
                configuration_id,
                display_name,
            },
        )
        .collect();
        Ok(Some(TenantFacts {
            tenant_id: parse_code::<Uuid>("tenant.tenant_id", &tenant_id)?,
            display_name,
            domains,
            federation_domains,
            created_at: created_at
                .as_deref()
                .map(|at| parse_timestamp("tenant.created_at", at))
                .transpose()?,
            fetched_at: parse_timestamp("tenant.fetched_at", &fetched_at)?,
            contacts_read_at: contacts_read_at
                .map(|at| parse_timestamp("tenant.contacts_read_at", &at))
                .transpose()?,
        }))
    }

    /// Records the answer (or failure) of a realm lookup for one domain.
    #[tracing::instrument(skip_all, fields(domain = %record.domain), err)]
    pub async fn save_realm(&self, record: &RealmRecord) -> Result<()> {
        let (kind, cloud_instance, federation_brand, error) = match &record.outcome {
            Ok(answer) => (
                Some(realm_code(answer.kind)),
                answer.cloud_instance.as_deref(),
                answer.federation_brand.as_deref(),
                None,
            ),
            Err(error) => (None, None, None, Some(error.as_str())),
        };
        sqlx::query(
            "INSERT INTO realm_cache
                (domain, realm_kind, cloud_instance, federation_brand, error, checked_at)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (domain) DO UPDATE SET
                realm_kind = excluded.realm_kind, cloud_instance = excluded.cloud_instance,
                federation_brand = excluded.federation_brand, error = excluded.error,
                checked_at = excluded.checked_at",
        )
        .bind(record.domain.to_lowercase())
        .bind(kind)
        .bind(cloud_instance)
        .bind(federation_brand)
        .bind(error)
        .bind(timestamp(record.checked_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The cached realm of a domain, if it was looked up at or after `fresh_since`.
    pub async fn realm(
        &self,
        domain: &str,
        fresh_since: OffsetDateTime,
    ) -> Result<Option<RealmRecord>> {
        let row = sqlx::query_as::<
            _,
            (
                String,
                Option<String>,
                Option<String>,
                Option<String>,
                Option<String>,
                String,
            ),
        >(
            "SELECT domain, realm_kind, cloud_instance, federation_brand, error, checked_at
             FROM realm_cache WHERE domain = ? AND checked_at >= ?",
        )
        .bind(domain.to_lowercase())
        .bind(timestamp(fresh_since))
        .fetch_optional(&self.pool)
        .await?;
        let Some((domain, kind, cloud_instance, federation_brand, error, checked_at)) = row else {
            return Ok(None);
        };
        let outcome = match (kind, error) {
            (Some(kind), _) => Ok(RealmAnswer {
                kind: parse_realm("realm_cache.realm_kind", &kind)?,
                cloud_instance,
                federation_brand,
            }),
            (None, error) => Err(error.unwrap_or_default()),
        };
        Ok(Some(RealmRecord {
            domain,
            outcome,
            checked_at: parse_timestamp("realm_cache.checked_at", &checked_at)?,
        }))
    }
}

fn realm_code(kind: RealmKind) -> &'static str {
    match kind {
        RealmKind::Managed => "managed",
        RealmKind::Federated => "federated",
        RealmKind::Unknown => "unknown",
    }
}

fn parse_realm(column: &'static str, code: &str) -> Result<RealmKind> {
    match code {
        "managed" => Ok(RealmKind::Managed),
        "federated" => Ok(RealmKind::Federated),
        "unknown" => Ok(RealmKind::Unknown),
        other => Err(Error::Corrupt {
            column,
            message: format!("unknown realm kind `{other}`"),
        }),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::store::testing::temp_store;

    pub(crate) fn facts(tenant: u128) -> TenantFacts {
        TenantFacts {
            tenant_id: Uuid::from_u128(tenant),
            display_name: Some("Contoso".into()),
            domains: vec![
                TenantDomain {
                    name: "contoso.com".into(),
                    is_verified: true,
                    is_default: true,
                    is_initial: false,
                    authentication_type: Some("Managed".into()),
                },
                TenantDomain {
                    name: "contoso.onmicrosoft.com".into(),
                    is_verified: true,
                    is_default: false,
                    is_initial: true,
                    authentication_type: Some("Managed".into()),
                },
            ],
            federation_domains: vec![FederationDomain {
                domain: "fabrikam.com".into(),
                configuration_id: "cfg-1".into(),
                display_name: Some("Fabrikam IdP".into()),
            }],
            created_at: Some(datetime!(2026-11-01 08:00 UTC)),
            fetched_at: datetime!(2026-11-21 08:00 UTC),
            contacts_read_at: None,
        }
    }

    #[tokio::test]
    async fn tenant_facts_round_trip_and_are_replaced_as_a_whole() {
        let (_dir, store) = temp_store().await;
        assert_eq!(store.tenant_facts().await.unwrap(), None);
        let mut first = facts(1);
        store.save_tenant_facts(&first).await.unwrap();
        assert_eq!(store.tenant_facts().await.unwrap(), Some(first.clone()));
        first.domains.truncate(1);
        first.federation_domains.clear();
        store.save_tenant_facts(&first).await.unwrap();
        assert_eq!(store.tenant_facts().await.unwrap(), Some(first));
    }

    #[tokio::test]
    async fn facts_from_another_tenant_are_refused() {
        let (_dir, store) = temp_store().await;
        store.save_tenant_facts(&facts(1)).await.unwrap();
        let err = store.save_tenant_facts(&facts(2)).await.unwrap_err();
        assert!(matches!(err, Error::TenantMismatch { .. }), "{err}");
        assert_eq!(
            store.tenant_facts().await.unwrap().unwrap().tenant_id,
            Uuid::from_u128(1)
        );
    }

    #[tokio::test]
    async fn realm_answers_and_failures_are_cached_with_their_date() {
        let (_dir, store) = temp_store().await;
        let answer = RealmRecord {
            domain: "Fabrikam.com".into(),
            outcome: Ok(RealmAnswer {
                kind: RealmKind::Federated,
                cloud_instance: Some("login.microsoftonline.com".into()),
                federation_brand: Some("Fabrikam".into()),
            }),
            checked_at: datetime!(2026-11-20 08:00 UTC),
        };
        store.save_realm(&answer).await.unwrap();
        let cached = store
            .realm("FABRIKAM.COM", datetime!(2026-11-19 00:00 UTC))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cached.outcome, answer.outcome);
        assert_eq!(cached.domain, "fabrikam.com");
        assert!(
            store
                .realm("fabrikam.com", datetime!(2026-11-21 00:00 UTC))
                .await
                .unwrap()
                .is_none(),
            "an answer older than the freshness limit is not used"
        );

        let failure = RealmRecord {
            domain: "fabrikam.com".into(),
            outcome: Err("timed out".into()),
            checked_at: datetime!(2026-11-21 08:00 UTC),
        };
        store.save_realm(&failure).await.unwrap();
        let cached = store
            .realm("fabrikam.com", datetime!(2026-11-21 00:00 UTC))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cached.outcome, Err("timed out".to_owned()));
    }
}
