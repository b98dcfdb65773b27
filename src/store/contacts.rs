//! Org contacts as `discover` last read them (`org_contacts`), and the addresses they hold in
//! the address index (`addresses`): an address a contact holds is taken for every user. A
//! complete read of the contacts replaces the previous one and is dated in the tenant row
//! (`contacts_read_at`, which tells a plan whether contact collisions were checked).
//!
//! It must not read Graph nor decide what a collision means (`rules`).

use time::OffsetDateTime;

use super::addresses::replace_contact_addresses;
use super::{Result, Store, timestamp, to_json};
use crate::domain::{OrgContact, RunId};

impl Store {
    /// Stores one page of org contacts read by `discovery`, in one transaction: each contact
    /// and the addresses it holds now (replacing those it held before).
    #[tracing::instrument(skip_all, fields(discovery = %discovery, contacts = contacts.len()), err)]
    pub async fn store_contact_page(
        &self,
        discovery: RunId,
        contacts: &[OrgContact],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for contact in contacts {
            sqlx::query(
                "INSERT INTO org_contacts (id, display_name, mail, proxy_addresses, discovery_id)
                 VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (id) DO UPDATE SET
                    display_name = excluded.display_name, mail = excluded.mail,
                    proxy_addresses = excluded.proxy_addresses,
                    discovery_id = excluded.discovery_id",
            )
            .bind(contact.id.to_string())
            .bind(&contact.display_name)
            .bind(&contact.mail)
            .bind(to_json(&contact.proxy_addresses))
            .bind(discovery.to_string())
            .execute(&mut *tx)
            .await?;
        }
        replace_contact_addresses(&mut tx, contacts).await?;
        tx.commit().await?;
        Ok(())
    }

    /// After `discovery` read every org contact: forgets the contacts it did not see (and the
    /// addresses they held) and records `at` as when contacts were read. Returns how many
    /// contacts were forgotten.
    #[tracing::instrument(skip(self), err)]
    pub async fn finish_contacts(&self, discovery: RunId, at: OffsetDateTime) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let id = discovery.to_string();
        sqlx::query(
            "DELETE FROM directory_addresses WHERE object_id IN (
                SELECT id FROM org_contacts WHERE discovery_id <> ?)",
        )
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        let gone = sqlx::query("DELETE FROM org_contacts WHERE discovery_id <> ?")
            .bind(&id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("UPDATE tenant SET contacts_read_at = ? WHERE singleton = 1")
            .bind(timestamp(at))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(gone)
    }

    /// How many org contacts are stored.
    pub async fn count_contacts(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM org_contacts")
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;
    use crate::store::testing::temp_store;
    use crate::store::users::tests::sample_user;
    use crate::store::{AddressSource, OwnerKind};

    fn contact(n: u128, mail: &str) -> OrgContact {
        OrgContact {
            id: Uuid::from_u128(0xC0_0000 + n),
            display_name: Some(format!("Contact {n}")),
            mail: Some(mail.to_owned()),
            proxy_addresses: vec![
                format!("SMTP:{mail}"),
                format!("smtp:second{n}@fabrikam.com"),
                "X500:/o=ignored".into(),
            ],
        }
    }

    #[tokio::test]
    async fn contacts_own_addresses_until_a_complete_read_no_longer_sees_them() {
        let (_dir, store) = temp_store().await;
        store
            .save_tenant_facts(&crate::store::tenant::tests::facts(1))
            .await
            .unwrap();
        store.store_users(&[sample_user(1)]).await.unwrap();
        let first = store
            .begin_discovery(&serde_json::json!({}), datetime!(2026-12-06 05:00 UTC))
            .await
            .unwrap();
        // The contact holds user 1's mail (in another case) as its own.
        store
            .store_contact_page(
                first,
                &[
                    contact(1, "PARTNER1@fabrikam.com"),
                    contact(2, "desk@adatum.com"),
                ],
            )
            .await
            .unwrap();
        let owners = store.address_owners("partner1@fabrikam.com").await.unwrap();
        assert_eq!(
            owners.len(),
            3,
            "the user's mail, the contact's mail and proxy: {owners:?}"
        );
        let contact_owner = owners
            .iter()
            .find(|o| o.object_id == Uuid::from_u128(0xC0_0001).to_string())
            .unwrap();
        assert_eq!(
            contact_owner.kind,
            OwnerKind::OrgContact {
                display_name: Some("Contact 1".into())
            }
        );
        assert_eq!(contact_owner.source, AddressSource::Mail);
        let proxy = store.address_owners("SECOND2@fabrikam.com").await.unwrap();
        assert_eq!(proxy[0].source, AddressSource::ProxyAddresses);
        assert!(
            store
                .tenant_facts()
                .await
                .unwrap()
                .unwrap()
                .contacts_read_at
                .is_none()
        );
        assert_eq!(
            store
                .finish_contacts(first, datetime!(2026-12-06 05:01 UTC))
                .await
                .unwrap(),
            0
        );

        // The next complete read no longer sees contact 2: it and its addresses are gone.
        let second = store
            .begin_discovery(&serde_json::json!({}), datetime!(2026-12-06 06:00 UTC))
            .await
            .unwrap();
        store
            .store_contact_page(second, &[contact(1, "partner1@fabrikam.com")])
            .await
            .unwrap();
        assert_eq!(
            store
                .finish_contacts(second, datetime!(2026-12-06 06:01 UTC))
                .await
                .unwrap(),
            1
        );
        assert!(
            store
                .address_owners("desk@adatum.com")
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.count_contacts().await.unwrap(), 1);
        assert_eq!(
            store
                .tenant_facts()
                .await
                .unwrap()
                .unwrap()
                .contacts_read_at,
            Some(datetime!(2026-12-06 06:01 UTC))
        );
        // The user's own addresses are untouched.
        assert_eq!(
            store.address_owners("p1@example.org").await.unwrap().len(),
            1
        );
    }
}
