//! Org contacts (`GET /contacts`, v1.0 `orgContact`): the addresses they hold (`mail`,
//! `proxyAddresses`) cannot be given to a user, so `discover` reads them for the collision
//! check. Paged like users (pages of 999). Needs `OrgContact.Read.All` or `Directory.Read.All`;
//! without either Graph answers 403, which the caller reads as "contacts not checked".
//!
//! Reads only; it must not store anything or decide what a collision means.

use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use url::Url;
use uuid::Uuid;

use super::client::{GraphClient, Page};
use super::error::Error;
use super::users::MAX_PAGE_SIZE;
use crate::domain::OrgContact;

/// The contact properties the collision check reads.
pub const CONTACT_SELECT: &str = "id,displayName,mail,proxyAddresses";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContactDto {
    id: Uuid,
    display_name: Option<String>,
    mail: Option<String>,
    #[serde(default)]
    proxy_addresses: Option<Vec<String>>,
}

impl GraphClient {
    /// The first page's URL of the org contacts.
    pub fn contacts_url(&self) -> Url {
        self.url(&format!(
            "contacts?$select={CONTACT_SELECT}&$top={MAX_PAGE_SIZE}"
        ))
    }

    /// Streams every org contact, a page at a time.
    pub fn contacts(&self) -> impl Stream<Item = Result<Page<OrgContact>, Error>> + Send + '_ {
        self.pages::<ContactDto>(self.contacts_url(), &[])
            .map(|page| {
                let page = page?;
                Ok(Page {
                    items: page
                        .items
                        .into_iter()
                        .map(|dto| OrgContact {
                            id: dto.id,
                            display_name: dto.display_name,
                            mail: dto.mail,
                            proxy_addresses: dto.proxy_addresses.unwrap_or_default(),
                        })
                        .collect(),
                    meta: page.meta,
                })
            })
    }
}
