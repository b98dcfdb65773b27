//! The address index: every SMTP address any directory object answers to (UPN, `mail`,
//! `otherMails`, `proxyAddresses`), lower-cased, with the property it came from; and the
//! look-ups collision checks make at a million users. It is written with the snapshots it
//! indexes (`users`) and must not decide what a collision means (`rules`).

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use sqlx::{QueryBuilder, Sqlite, Transaction};

use super::{Result, Store, parse_code, parse_json};
use crate::domain::{UserId, UserSnapshot};

/// Address rows per multi-row statement: 3 parameters each.
const ADDRESSES_PER_STATEMENT: usize = 1_000;
/// `(address, user)` pairs per look-up statement: 2 parameters each.
const PAIRS_PER_STATEMENT: usize = 5_000;

/// Which property of a directory object holds an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressSource {
    Mail,
    OtherMails,
    ProxyAddresses,
    UserPrincipalName,
}

impl AddressSource {
    fn code(self) -> &'static str {
        match self {
            Self::Mail => "mail",
            Self::OtherMails => "other_mails",
            Self::ProxyAddresses => "proxy_addresses",
            Self::UserPrincipalName => "user_principal_name",
        }
    }
}

impl std::fmt::Display for AddressSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl std::str::FromStr for AddressSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "mail" => Self::Mail,
            "other_mails" => Self::OtherMails,
            "proxy_addresses" => Self::ProxyAddresses,
            "user_principal_name" => Self::UserPrincipalName,
            other => return Err(format!("unknown address source `{other}`")),
        })
    }
}

/// An object that answers to an address, and through which property.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressOwner {
    pub object_id: String,
    pub source: AddressSource,
}

/// Every SMTP address a user answers to, lower-cased, with where it came from.
fn addresses_of(user: &UserSnapshot) -> Vec<(String, AddressSource)> {
    let mut out = vec![(
        user.user_principal_name.to_lowercase(),
        AddressSource::UserPrincipalName,
    )];
    if let Some(mail) = &user.mail {
        out.push((mail.to_lowercase(), AddressSource::Mail));
    }
    out.extend(
        user.other_mails
            .iter()
            .map(|m| (m.to_lowercase(), AddressSource::OtherMails)),
    );
    out.extend(user.proxy_addresses.iter().filter_map(|p| {
        let (prefix, address) = p.split_once(':')?;
        prefix
            .eq_ignore_ascii_case("smtp")
            .then(|| (address.to_lowercase(), AddressSource::ProxyAddresses))
    }));
    out.retain(|(address, _)| !address.is_empty());
    out.sort();
    out.dedup();
    out
}

impl Store {
    /// [`address_owners`](Self::address_owners) for many addresses at once, keyed by the
    /// lower-cased address; addresses nobody owns are absent.
    pub async fn address_owners_of_many<S: AsRef<str>>(
        &self,
        addresses: &[S],
    ) -> Result<HashMap<String, Vec<AddressOwner>>> {
        let mut owners: HashMap<String, Vec<AddressOwner>> = HashMap::new();
        for chunk in addresses.chunks(ADDRESSES_PER_STATEMENT) {
            let mut query = QueryBuilder::<Sqlite>::new(
                "SELECT address, object_id, source FROM directory_addresses WHERE address IN (",
            );
            let mut list = query.separated(", ");
            for address in chunk {
                list.push_bind(address.as_ref().to_lowercase());
            }
            query.push(") ORDER BY address, object_id, source");
            let rows: Vec<(String, String, String)> =
                query.build_query_as().fetch_all(&self.pool).await?;
            for (address, object_id, source) in rows {
                owners.entry(address).or_default().push(AddressOwner {
                    object_id,
                    source: parse_code("directory_addresses.source", &source)?,
                });
            }
        }
        Ok(owners)
    }

    /// Of the `(address, user)` pairs, the addresses (lower-cased, each once) that some
    /// object other than that user answers to: the few worth looking up in full with
    /// [`address_owners_of_many`](Self::address_owners_of_many). Sorted by address, the
    /// pairs read the address index in order.
    pub async fn addresses_owned_by_others<S: AsRef<str>>(
        &self,
        pairs: &[(S, UserId)],
    ) -> Result<Vec<String>> {
        let mut found = Vec::new();
        for chunk in pairs.chunks(PAIRS_PER_STATEMENT) {
            let mut query =
                QueryBuilder::<Sqlite>::new("WITH chosen (address, object_id) AS (VALUES ");
            let mut list = query.separated(", ");
            for (address, user) in chunk {
                list.push("(")
                    .push_bind_unseparated(address.as_ref().to_lowercase())
                    .push_unseparated(", ")
                    .push_bind_unseparated(user.to_string())
                    .push_unseparated(")");
            }
            query.push(
                ") SELECT DISTINCT c.address FROM chosen c
                 JOIN directory_addresses d ON d.address = c.address
                 WHERE d.object_id <> c.object_id",
            );
            let rows: Vec<(String,)> = query.build_query_as().fetch_all(&self.pool).await?;
            found.extend(rows.into_iter().map(|(address,)| address));
        }
        Ok(found)
    }

    /// The addresses (lower-cased) that two objects or more answer to: one pass over the
    /// address index, in address order. For a whole snapshot's chosen addresses this is
    /// cheaper than looking each up, as most are their chooser's alone.
    pub async fn shared_addresses(&self) -> Result<HashSet<String>> {
        let shared: Option<String> = sqlx::query_scalar(
            "SELECT json_group_array(address) FROM (
                 SELECT address FROM directory_addresses
                 GROUP BY address HAVING min(object_id) <> max(object_id))",
        )
        .fetch_one(&self.pool)
        .await?;
        parse_json(
            "directory_addresses (shared)",
            shared.as_deref().unwrap_or("[]"),
        )
    }

    /// Every object that answers to `address` (case-insensitive), through which property.
    pub async fn address_owners(&self, address: &str) -> Result<Vec<AddressOwner>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT object_id, source FROM directory_addresses WHERE address = ? ORDER BY object_id, source",
        )
        .bind(address.to_lowercase())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(object_id, source)| {
                Ok(AddressOwner {
                    object_id,
                    source: parse_code("directory_addresses.source", &source)?,
                })
            })
            .collect()
    }
}

/// Replaces the indexed addresses of `users` with those their snapshots answer to now.
pub(super) async fn replace_addresses(
    tx: &mut Transaction<'static, Sqlite>,
    users: &[UserSnapshot],
) -> Result<()> {
    let mut delete =
        QueryBuilder::<Sqlite>::new("DELETE FROM directory_addresses WHERE object_id IN (");
    let mut ids = delete.separated(", ");
    for user in users {
        ids.push_bind(user.id.to_string());
    }
    delete.push(")");
    delete.build().execute(&mut **tx).await?;

    let addresses: Vec<(String, String, AddressSource)> = users
        .iter()
        .flat_map(|user| {
            let id = user.id.to_string();
            addresses_of(user)
                .into_iter()
                .map(move |(address, source)| (address, id.clone(), source))
        })
        .collect();
    for rows in addresses.chunks(ADDRESSES_PER_STATEMENT) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT OR IGNORE INTO directory_addresses (address, object_id, source) ",
        );
        insert.push_values(rows, |mut row, (address, id, source)| {
            row.push_bind(address.clone())
                .push_bind(id.clone())
                .push_bind(source.code());
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::store::testing::temp_store;
    use crate::store::users::tests::sample_user;

    #[tokio::test]
    async fn addresses_are_indexed_case_insensitively_by_source() {
        let (_dir, store) = temp_store().await;
        let user = sample_user(3);
        store.store_users(&[user]).await.unwrap();
        let owners = store.address_owners("ALIAS3@contoso.com").await.unwrap();
        assert_eq!(
            owners,
            vec![AddressOwner {
                object_id: Uuid::from_u128(3).to_string(),
                source: AddressSource::ProxyAddresses
            }]
        );
        let upn = store.address_owners("partner3@contoso.com").await.unwrap();
        let sources: Vec<_> = upn.iter().map(|o| o.source).collect();
        assert_eq!(
            sources,
            vec![
                AddressSource::ProxyAddresses,
                AddressSource::UserPrincipalName
            ]
        );
        assert!(
            store
                .address_owners("ignored@contoso.com")
                .await
                .unwrap()
                .is_empty(),
            "SIP is not SMTP"
        );
    }

    #[tokio::test]
    async fn owners_of_many_addresses_come_in_one_map() {
        let (_dir, store) = temp_store().await;
        store
            .store_users(&[sample_user(1), sample_user(2)])
            .await
            .unwrap();
        let owners = store
            .address_owners_of_many(&[
                "PARTNER1@fabrikam.com",
                "p2@example.org",
                "nobody@example.org",
            ])
            .await
            .unwrap();
        assert_eq!(owners.len(), 2);
        assert_eq!(
            owners["partner1@fabrikam.com"][0].source,
            AddressSource::Mail
        );
        assert_eq!(
            owners["p2@example.org"][0].source,
            AddressSource::OtherMails
        );
    }

    #[tokio::test]
    async fn owners_other_than_the_chooser_are_the_addresses_worth_looking_up() {
        let (_dir, store) = temp_store().await;
        store
            .store_users(&[sample_user(1), sample_user(2)])
            .await
            .unwrap();
        let (one, two) = (sample_user(1).id, sample_user(2).id);
        let found = store
            .addresses_owned_by_others(&[
                ("nobody@example.org", one),
                ("partner1@fabrikam.com", one),
                ("PARTNER1@fabrikam.com", two),
                ("p2@example.org", two),
            ])
            .await
            .unwrap();
        assert_eq!(found, vec!["partner1@fabrikam.com".to_owned()]);
    }

    #[tokio::test]
    async fn shared_addresses_are_those_of_two_objects_or_more() {
        let (_dir, store) = temp_store().await;
        let mut two = sample_user(2);
        // User 1's mail, as user 2's other address; and an address user 2 has twice.
        two.other_mails = vec![
            "PARTNER1@fabrikam.com".into(),
            "partner2@fabrikam.com".into(),
        ];
        store.store_users(&[sample_user(1), two]).await.unwrap();
        let shared = store.shared_addresses().await.unwrap();
        assert_eq!(shared, HashSet::from(["partner1@fabrikam.com".to_owned()]));
    }
}
