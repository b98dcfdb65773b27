//! The partner pre-flight's answers, one per external domain (the latest `plan` asked), and
//! the domains of a wave's chosen addresses they are asked for.

use std::str::FromStr;

use sqlx::{QueryBuilder, Sqlite};
use uuid::Uuid;

use super::{Error, Result, Store, parse_timestamp, timestamp};
use crate::domain::{PartnerPreflight, PreflightReason, Redemption};

type PreflightRow = (
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    String,
);

impl Store {
    /// Records the answers (each replaces the domain's previous one), in one transaction.
    #[tracing::instrument(skip_all, fields(domains = answers.len()), err)]
    pub async fn save_partner_preflights(&self, answers: &[PartnerPreflight]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for answer in answers {
            sqlx::query(
                "INSERT INTO partner_preflight
                    (domain, tenant_id, redemption, reason, detail, checked_at)
                 VALUES (?, ?, ?, ?, ?, ?)
                 ON CONFLICT (domain) DO UPDATE SET
                    tenant_id = excluded.tenant_id, redemption = excluded.redemption,
                    reason = excluded.reason, detail = excluded.detail,
                    checked_at = excluded.checked_at",
            )
            .bind(answer.domain.to_lowercase())
            .bind(answer.tenant_id.map(|id| id.to_string()))
            .bind(answer.redemption.code())
            .bind(answer.reason.code())
            .bind(answer.detail.as_deref())
            .bind(timestamp(answer.checked_at))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The stored answers for `domains` (case-insensitive), by domain; domains never asked are
    /// left out.
    pub async fn partner_preflights(&self, domains: &[String]) -> Result<Vec<PartnerPreflight>> {
        let mut answers = Vec::new();
        // SQLite's default limit on bound parameters is well above this.
        for chunk in domains.chunks(500) {
            let mut query = QueryBuilder::<Sqlite>::new(
                "SELECT domain, tenant_id, redemption, reason, detail, checked_at
                 FROM partner_preflight WHERE domain IN (",
            );
            let mut list = query.separated(", ");
            for domain in chunk {
                list.push_bind(domain.to_lowercase());
            }
            query.push(")");
            let rows: Vec<PreflightRow> = query.build_query_as().fetch_all(&self.pool).await?;
            for row in rows {
                answers.push(preflight_of(row)?);
            }
        }
        answers.sort_by(|a, b| a.domain.cmp(&b.domain));
        answers.dedup_by(|a, b| a.domain == b.domain);
        Ok(answers)
    }

    /// The distinct lower-case domains of a wave's chosen addresses, sorted: what a plan's
    /// [`Tally`](crate::plan::Tally) counts as it decides, read back from the stored members.
    #[cfg(test)]
    pub async fn wave_address_domains(&self, wave: crate::domain::WaveId) -> Result<Vec<String>> {
        let domains = sqlx::query_scalar::<_, String>(
            "SELECT DISTINCT lower(substr(chosen_address, instr(chosen_address, '@') + 1)) AS d
             FROM wave_members
             WHERE wave_id = ? AND chosen_address IS NOT NULL AND instr(chosen_address, '@') > 0
             ORDER BY d",
        )
        .bind(wave.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(domains.into_iter().filter(|d| !d.is_empty()).collect())
    }
}

fn preflight_of(row: PreflightRow) -> Result<PartnerPreflight> {
    let (domain, tenant_id, redemption, reason, detail, checked_at) = row;
    let corrupt = |column: &'static str, message: String| Error::Corrupt { column, message };
    Ok(PartnerPreflight {
        domain,
        tenant_id: tenant_id
            .map(|id| Uuid::from_str(&id))
            .transpose()
            .map_err(|e| corrupt("partner_preflight.tenant_id", e.to_string()))?,
        redemption: redemption
            .parse::<Redemption>()
            .map_err(|e| corrupt("partner_preflight.redemption", e.to_string()))?,
        reason: reason
            .parse::<PreflightReason>()
            .map_err(|e| corrupt("partner_preflight.reason", e.to_string()))?,
        detail,
        checked_at: parse_timestamp("partner_preflight.checked_at", &checked_at)?,
    })
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::domain::Decision;
    use crate::store::testing::temp_store;
    use crate::store::users::tests::sample_user;
    use crate::store::waves::tests::{new_wave, planned};

    #[tokio::test]
    async fn a_waves_address_domains_are_distinct_lower_case_and_sorted() {
        let (_dir, store) = temp_store().await;
        store
            .store_users(&[
                sample_user(1),
                sample_user(2),
                sample_user(3),
                sample_user(4),
            ])
            .await
            .unwrap();
        let wave = store
            .create_wave(&new_wave("pilot"), datetime!(2026-12-06 08:00 UTC))
            .await
            .unwrap();
        let mut members = vec![
            planned(1, Decision::Eligible),
            planned(2, Decision::Blocked),
            planned(3, Decision::Eligible),
            planned(4, Decision::Blocked),
        ];
        members[1].chosen_address = Some("Someone@Adatum.COM".into());
        members[2].chosen_address = Some("p3@fabrikam.com".into());
        members[3].chosen_address = None;
        store
            .replace_plan(&wave, &members, "hash", datetime!(2026-12-06 08:01 UTC))
            .await
            .unwrap();
        assert_eq!(
            store.wave_address_domains(wave.id).await.unwrap(),
            ["adatum.com", "fabrikam.com"]
        );
    }

    #[tokio::test]
    async fn answers_are_saved_replaced_and_read_by_domain() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.db")).await.unwrap();
        let answer = |domain: &str, redemption, reason| PartnerPreflight {
            domain: domain.into(),
            tenant_id: Some(Uuid::from_u128(7)),
            redemption,
            reason,
            detail: None,
            checked_at: datetime!(2026-12-06 08:00 UTC),
        };
        store
            .save_partner_preflights(&[
                answer(
                    "fabrikam.com",
                    Redemption::AsksPartner,
                    PreflightReason::NoPartnerEntry,
                ),
                answer(
                    "adatum.com",
                    Redemption::AsksPartner,
                    PreflightReason::InboundBlocked,
                ),
            ])
            .await
            .unwrap();
        let mut newer = answer(
            "fabrikam.com",
            Redemption::AutomaticIfPartnerAllows,
            PreflightReason::InboundAllowed,
        );
        newer.checked_at = datetime!(2026-12-06 09:00 UTC);
        store
            .save_partner_preflights(std::slice::from_ref(&newer))
            .await
            .unwrap();
        let mut not_checked = answer(
            "wingtipmail.net",
            Redemption::NotChecked,
            PreflightReason::PermissionMissing,
        );
        not_checked.tenant_id = None;
        not_checked.detail = Some("403 Authorization_RequestDenied".into());
        store
            .save_partner_preflights(std::slice::from_ref(&not_checked))
            .await
            .unwrap();
        let read = store
            .partner_preflights(&[
                "Fabrikam.com".into(),
                "wingtipmail.net".into(),
                "never.example".into(),
            ])
            .await
            .unwrap();
        assert_eq!(read, [newer, not_checked]);
    }
}
