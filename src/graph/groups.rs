//! Groups found by display name, which is how administrators know them: `GET /groups` with an
//! exact `displayName eq '…'` filter (the name quoted as OData asks), every page. Graph names
//! a group by object id everywhere else (NOTES §3.4), and several groups may share a name.
//!
//! Reads only. It must not decide what several matches (or none) mean: the caller asks the
//! operator for an object id.

use futures_util::TryStreamExt;
use serde::Deserialize;
use url::Url;
use uuid::Uuid;

use super::client::GraphClient;
use super::error::Error;
use super::users::{encode, odata_string};

/// A group that answers to a display name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedGroup {
    pub id: Uuid,
    pub display_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupDto {
    id: Uuid,
    display_name: Option<String>,
}

impl GraphClient {
    /// The first page's URL of the groups named exactly `name`.
    pub fn groups_named_url(&self, name: &str) -> Url {
        let filter = format!("displayName eq {}", odata_string(name));
        self.url(&format!(
            "groups?$filter={}&$select=id,displayName",
            encode(&filter)
        ))
    }

    /// Every group whose display name is `name` (Graph compares without regard to case), in
    /// Graph's order; empty when none is.
    pub async fn groups_named(&self, name: &str) -> Result<Vec<NamedGroup>, Error> {
        let mut found = Vec::new();
        let mut pages = std::pin::pin!(self.pages::<GroupDto>(self.groups_named_url(name), &[]));
        while let Some(page) = pages.try_next().await? {
            found.extend(page.items.into_iter().map(|dto| NamedGroup {
                id: dto.id,
                display_name: dto.display_name.unwrap_or_else(|| name.to_owned()),
            }));
        }
        Ok(found)
    }
}
