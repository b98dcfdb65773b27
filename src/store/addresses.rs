//! The address index: every SMTP address any directory object answers to (a user's UPN,
//! `mail`, `otherMails`, `proxyAddresses`; an org contact's `mail` and `proxyAddresses`),
//! lower-cased, with the property it came from; and the look-ups collision checks make at a
//! million users, which say whether an owner is an org contact. It is written with the objects
//! it indexes (`users`, `contacts`) and must not decide what a collision means (`rules`).

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use sqlx::{QueryBuilder, Sqlite, Transaction};

use super::{Result, Store, parse_code, parse_json};
use crate::domain::{OrgContact, UserId, UserSnapshot};

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

/// What kind of directory object owns an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnerKind {
    User,
    /// An org contact, with its display name when it has one.
    OrgContact {
        display_name: Option<String>,
    },
}

/// An object that answers to an address, and through which property.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressOwner {
    pub object_id: String,
    pub source: AddressSource,
    pub kind: OwnerKind,
}

/// A row of the index joined with the contacts: address, object id, source, whether the
/// object is an org contact, the contact's display name.
type OwnerRow = (String, String, String, bool, Option<String>);

/// The index joined with the org contacts, for the owner look-ups.
const OWNERS: &str = "SELECT d.address, d.object_id, d.source, c.id IS NOT NULL, c.display_name
     FROM directory_addresses d LEFT JOIN org_contacts c ON c.id = d.object_id";

fn owner(row: OwnerRow) -> Result<(String, AddressOwner)> {
    let (address, object_id, source, is_contact, display_name) = row;
    Ok((
        address,
        AddressOwner {
            object_id,
            source: parse_code("directory_addresses.source", &source)?,
            kind: if is_contact {
                OwnerKind::OrgContact { display_name }
            } else {
                OwnerKind::User
            },
        },
    ))
}

/// The `smtp:` entries of a `proxyAddresses` list (either case), lower-cased.
fn smtp_addresses(proxy_addresses: &[String]) -> impl Iterator<Item = String> + '_ {
    proxy_addresses.iter().filter_map(|p| {
        let (prefix, address) = p.split_once(':')?;
        prefix
            .eq_ignore_ascii_case("smtp")
            .then(|| address.to_lowercase())
    })
}

/// Every SMTP address an org contact answers to, lower-cased, with where it came from.
fn contact_addresses(contact: &OrgContact) -> Vec<(String, AddressSource)> {
    let mut out: Vec<(String, AddressSource)> = contact
        .mail
        .iter()
        .map(|m| (m.to_lowercase(), AddressSource::Mail))
        .collect();
    out.extend(
        smtp_addresses(&contact.proxy_addresses).map(|a| (a, AddressSource::ProxyAddresses)),
    );
    out.retain(|(address, _)| !address.is_empty());
    out.sort();
    out.dedup();
    out
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
    out.extend(smtp_addresses(&user.proxy_addresses).map(|a| (a, AddressSource::ProxyAddresses)));
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
            let mut query = QueryBuilder::<Sqlite>::new(OWNERS);
            query.push(" WHERE d.address IN (");
            let mut list = query.separated(", ");
            for address in chunk {
                list.push_bind(address.as_ref().to_lowercase());
            }
            query.push(") ORDER BY d.address, d.object_id, d.source");
            let rows: Vec<OwnerRow> = query.build_query_as().fetch_all(&self.pool).await?;
            for row in rows {
                let (address, found) = owner(row)?;
                owners.entry(address).or_default().push(found);
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
    /// cheaper than looking each up, as most are their chooser's alone. The set is hashed
    /// with foldhash: a planner looks up every chosen address in it.
    pub async fn shared_addresses(&self) -> Result<HashSet<String, foldhash::fast::RandomState>> {
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
        let mut query = QueryBuilder::<Sqlite>::new(OWNERS);
        query
            .push(" WHERE d.address = ")
            .push_bind(address.to_lowercase())
            .push(" ORDER BY d.object_id, d.source");
        let rows: Vec<OwnerRow> = query.build_query_as().fetch_all(&self.pool).await?;
        rows.into_iter().map(|row| Ok(owner(row)?.1)).collect()
    }
}

/// Replaces the indexed addresses of `users` with those their snapshots answer to now.
pub(super) async fn replace_addresses(
    tx: &mut Transaction<'static, Sqlite>,
    users: &[UserSnapshot],
) -> Result<()> {
    let objects: Vec<(String, Vec<(String, AddressSource)>)> = users
        .iter()
        .map(|user| (user.id.to_string(), addresses_of(user)))
        .collect();
    replace_object_addresses(tx, &objects).await
}

/// Replaces the indexed addresses of org `contacts` with those they answer to now.
pub(super) async fn replace_contact_addresses(
    tx: &mut Transaction<'static, Sqlite>,
    contacts: &[OrgContact],
) -> Result<()> {
    let objects: Vec<(String, Vec<(String, AddressSource)>)> = contacts
        .iter()
        .map(|contact| (contact.id.to_string(), contact_addresses(contact)))
        .collect();
    replace_object_addresses(tx, &objects).await
}

/// Replaces the indexed addresses of each `(object id, its addresses)`.
async fn replace_object_addresses(
    tx: &mut Transaction<'static, Sqlite>,
    objects: &[(String, Vec<(String, AddressSource)>)],
) -> Result<()> {
    if objects.is_empty() {
        return Ok(());
    }
    let mut delete =
        QueryBuilder::<Sqlite>::new("DELETE FROM directory_addresses WHERE object_id IN (");
    let mut ids = delete.separated(", ");
    for (id, _) in objects {
        ids.push_bind(id.clone());
    }
    delete.push(")");
    delete.build().execute(&mut **tx).await?;

    let addresses: Vec<(String, String, AddressSource)> = objects
        .iter()
        .flat_map(|(id, addresses)| {
            addresses
                .iter()
                .map(move |(address, source)| (address.clone(), id.clone(), *source))
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
                source: AddressSource::ProxyAddresses,
                kind: OwnerKind::User,
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
        assert_eq!(Vec::from_iter(shared), ["partner1@fabrikam.com"]);
    }
}
