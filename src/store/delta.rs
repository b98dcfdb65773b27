//! The users delta link a whole-tenant discover keeps (`user_delta_link`, one row at most),
//! so the next discover reads only the changes since it.

use time::OffsetDateTime;

use super::{Result, Store, parse_timestamp, timestamp};

/// A stored users delta link and what it was obtained for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredDeltaLink {
    pub link: String,
    pub tenant_id: String,
    /// The `$select` of the round the link ends (`graph::USER_SELECT` then).
    pub user_select: String,
    pub obtained_at: OffsetDateTime,
}

impl Store {
    /// Keeps `link` as the users delta link, in place of any earlier one.
    pub async fn save_user_delta_link(&self, link: &StoredDeltaLink) -> Result<()> {
        sqlx::query(
            "INSERT INTO user_delta_link (singleton, link, tenant_id, user_select, obtained_at)
             VALUES (1, ?, ?, ?, ?)
             ON CONFLICT (singleton) DO UPDATE SET link = excluded.link,
                tenant_id = excluded.tenant_id, user_select = excluded.user_select,
                obtained_at = excluded.obtained_at",
        )
        .bind(&link.link)
        .bind(&link.tenant_id)
        .bind(&link.user_select)
        .bind(timestamp(link.obtained_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The stored users delta link, if any.
    pub async fn user_delta_link(&self) -> Result<Option<StoredDeltaLink>> {
        let row: Option<(String, String, String, String)> =
            sqlx::query_as("SELECT link, tenant_id, user_select, obtained_at FROM user_delta_link")
                .fetch_optional(&self.pool)
                .await?;
        row.map(|(link, tenant_id, user_select, obtained_at)| {
            Ok(StoredDeltaLink {
                link,
                tenant_id,
                user_select,
                obtained_at: parse_timestamp("user_delta_link.obtained_at", &obtained_at)?,
            })
        })
        .transpose()
    }

    /// Forgets the users delta link (it expired): the next discover reads everything.
    pub async fn forget_user_delta_link(&self) -> Result<()> {
        sqlx::query("DELETE FROM user_delta_link")
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::store::testing::temp_store;

    #[tokio::test]
    async fn one_link_is_kept_replaced_and_forgotten() {
        let (_dir, store) = temp_store().await;
        assert_eq!(store.user_delta_link().await.unwrap(), None);
        let mut link = StoredDeltaLink {
            link: "https://graph.microsoft.com/v1.0/users/delta?$deltatoken=a".into(),
            tenant_id: "t".into(),
            user_select: "id,mail".into(),
            obtained_at: datetime!(2026-12-06 08:00 UTC),
        };
        store.save_user_delta_link(&link).await.unwrap();
        link.link = "https://graph.microsoft.com/v1.0/users/delta?$deltatoken=b".into();
        store.save_user_delta_link(&link).await.unwrap();
        assert_eq!(store.user_delta_link().await.unwrap(), Some(link));
        store.forget_user_delta_link().await.unwrap();
        assert_eq!(store.user_delta_link().await.unwrap(), None);
    }
}
