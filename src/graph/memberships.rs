//! A user's direct group memberships and app role assignments, and the [`ConversionBaseline`]
//! built from them: what a conversion must keep, read right before the invitation and read
//! again by `verify`.
//!
//! Reads only (`users/{id}`, `users/{id}/memberOf`, `users/{id}/appRoleAssignments`,
//! `groups/{id}`). It must not decide whether a difference matters (that is `verify`'s job),
//! nor store anything.

use std::pin::pin;

use futures_util::StreamExt;
use serde::Deserialize;
use serde::de::IgnoredAny;
use time::OffsetDateTime;
use uuid::Uuid;

use super::client::{GraphClient, Priority};
use super::error::Error;
use crate::domain::{ConversionBaseline, UserId};

/// `ConsistencyLevel: eventual`, which `user-list-approleassignments` asks for (with
/// `$count=true`) to get complete results for users with many indirect assignments.
const EVENTUAL: &[(&str, &str)] = &[("ConsistencyLevel", "eventual")];

/// The `@odata.type` of a group in a `directoryObject` collection.
const GROUP_TYPE: &str = "#microsoft.graph.group";

/// A group a user is a direct member of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMembership {
    pub id: Uuid,
    /// Absent when the app may not read groups (Graph then returns only type and id).
    pub display_name: Option<String>,
}

/// A user's state as a conversion must keep it, with the names of its groups (for reports).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversionState {
    pub baseline: ConversionBaseline,
    /// The groups of `baseline.group_ids`, in the same order, with their names.
    pub groups: Vec<GroupMembership>,
}

/// An entry of a `directoryObject` collection (`memberOf`).
#[derive(Debug, Deserialize)]
struct DirectoryObjectDto {
    #[serde(rename = "@odata.type")]
    odata_type: Option<String>,
    id: String,
    #[serde(rename = "displayName")]
    display_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserNameDto {
    id: String,
    user_principal_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupNameDto {
    display_name: Option<String>,
}

fn bad_id(path: String, field: &str, text: &str, request_id: Option<String>) -> Error {
    Error::Decode {
        method: "GET".into(),
        path,
        field: field.to_owned(),
        message: format!("`{text}` is not an object id"),
        request_id: request_id.unwrap_or_default(),
    }
}

impl GraphClient {
    /// The groups `user` is a direct member of, sorted by id, each once. Directory roles and
    /// administrative units in the answer are left out. Reads `memberOf` without a type cast
    /// (a cast would need the eventually consistent advanced query).
    #[tracing::instrument(skip_all, fields(user = %user))]
    pub async fn direct_groups(&self, user: UserId) -> Result<Vec<GroupMembership>, Error> {
        let url = self.url(&format!(
            "users/{user}/memberOf?$select=id,displayName&$top={}",
            super::users::MAX_PAGE_SIZE
        ));
        let mut groups: Vec<GroupMembership> = Vec::new();
        let mut pages = pin!(self.pages::<DirectoryObjectDto>(url, &[]));
        while let Some(page) = pages.next().await {
            let page = page?;
            for item in page.items {
                if item.odata_type.as_deref() != Some(GROUP_TYPE) {
                    continue;
                }
                let id = Uuid::parse_str(&item.id).map_err(|_| {
                    bad_id(
                        format!("users/{user}/memberOf"),
                        "value[].id",
                        &item.id,
                        page.meta.request_id.clone(),
                    )
                })?;
                groups.push(GroupMembership {
                    id,
                    display_name: item.display_name,
                });
            }
        }
        groups.sort_by_key(|g| g.id);
        groups.dedup_by_key(|g| g.id);
        Ok(groups)
    }

    /// How many app role assignments Graph lists for `user` (every page counted).
    #[tracing::instrument(skip_all, fields(user = %user))]
    pub async fn app_role_assignment_count(&self, user: UserId) -> Result<u32, Error> {
        let url = self.url(&format!("users/{user}/appRoleAssignments?$count=true"));
        let mut count: usize = 0;
        let mut pages = pin!(self.pages::<IgnoredAny>(url, EVENTUAL));
        while let Some(page) = pages.next().await {
            count += page?.items.len();
        }
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    /// `user`'s object id (as Graph answers it) and UPN now.
    async fn user_principal_name(&self, user: UserId) -> Result<(UserId, String), Error> {
        let url = self.url(&format!("users/{user}?$select=id,userPrincipalName"));
        let response = self.get::<UserNameDto>(url, Priority::Normal, &[]).await?;
        let id = response.body.id.parse::<UserId>().map_err(|_| {
            bad_id(
                format!("users/{user}"),
                "id",
                &response.body.id,
                response.meta.request_id.clone(),
            )
        })?;
        Ok((id, response.body.user_principal_name.unwrap_or_default()))
    }

    /// Reads what a conversion must keep for `user` (UPN, direct groups with their names, app
    /// role assignment count), with the three reads in parallel. A user that does not exist
    /// is a 404 [`Error::Api`].
    #[tracing::instrument(skip_all, fields(user = %user))]
    pub async fn conversion_state(
        &self,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<ConversionState, Error> {
        let ((user_id, user_principal_name), groups, app_role_assignments) =
            futures_util::future::try_join3(
                self.user_principal_name(user),
                self.direct_groups(user),
                self.app_role_assignment_count(user),
            )
            .await?;
        Ok(ConversionState {
            baseline: ConversionBaseline {
                user_id,
                user_principal_name,
                group_ids: groups.iter().map(|g| g.id).collect(),
                app_role_assignments,
                taken_at: now,
            },
            groups,
        })
    }

    /// The baseline to store right before inviting `user`:
    /// `store.save_baseline(wave, &client.conversion_baseline(user, now).await?)`.
    pub async fn conversion_baseline(
        &self,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<ConversionBaseline, Error> {
        Ok(self.conversion_state(user, now).await?.baseline)
    }

    /// A group's display name; `None` when the group no longer exists.
    pub async fn group_name(&self, group: Uuid) -> Result<Option<String>, Error> {
        let url = self.url(&format!("groups/{group}?$select=id,displayName"));
        match self.get::<GroupNameDto>(url, Priority::Normal, &[]).await {
            Ok(response) => Ok(response.body.display_name),
            Err(error) if error.status() == Some(404) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_objects_read_tolerantly() {
        let page: Vec<DirectoryObjectDto> = serde_json::from_value(serde_json::json!([
            {"@odata.type": "#microsoft.graph.group", "id": "9f0e0000-0000-4000-8000-000000000001",
             "displayName": "Wave 1", "securityEnabled": true},
            {"@odata.type": "#microsoft.graph.directoryRole", "id": "r"},
            {"@odata.type": "#microsoft.graph.group", "id": "9f0e0000-0000-4000-8000-000000000002"}
        ]))
        .unwrap();
        assert_eq!(page[0].display_name.as_deref(), Some("Wave 1"));
        assert_eq!(
            page[1].odata_type.as_deref(),
            Some("#microsoft.graph.directoryRole")
        );
        assert_eq!(
            page[2].display_name, None,
            "limited information: type and id only"
        );
    }
}
