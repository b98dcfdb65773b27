//! Users and group members: the `$select` the rules need, the ways to select users (all, a
//! group's direct or transitive members, an OData filter, a list of ids or UPNs), and the
//! conversion of Graph's JSON into [`UserSnapshot`]s.

use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use url::Url;
use uuid::Uuid;

use super::client::{GraphClient, Page, Priority};
use super::error::Error;
use crate::domain::{
    AssignedLicense, AssignedPlan, ObjectIdentity, OnPremisesProperties, UserId, UserProfile,
    UserSnapshot,
};

/// Every user property the eligibility rules read (NOTES.md §3), and the names and language a
/// message uses (`givenName`, `surname`, `preferredLanguage`: no rule reads them). `id` is
/// always included.
pub const USER_SELECT: &str = "id,userPrincipalName,displayName,mail,otherMails,proxyAddresses,\
userType,accountEnabled,creationType,externalUserState,externalUserStateChangeDateTime,\
onPremisesSyncEnabled,onPremisesImmutableId,onPremisesSamAccountName,\
onPremisesDistinguishedName,onPremisesDomainName,onPremisesUserPrincipalName,assignedPlans,\
assignedLicenses,identities,givenName,surname,preferredLanguage";

/// The user's conversion stamp from external back to internal (NOTES §2.x), as Graph beta
/// names it on the user object; the conversion's own answer calls it
/// `convertedToInternalUserDateTime`, which the DTO accepts too. It is not a documented v1.0
/// property, and v1.0 answers a `$select` of an unknown property with 400, so it is
/// deliberately not in [`USER_SELECT`]: the snapshot carries it when the service returns it.
pub const CONVERSION_STAMP_PROPERTY: &str = "externalUserConvertedOn";

/// Graph's largest page for users and group members.
pub const MAX_PAGE_SIZE: u32 = 999;

/// Values per `in (...)` clause when looking users up by id or UPN (Graph allows 15).
pub const IN_CLAUSE_LIMIT: usize = 15;

/// The advanced-query header pair (NOTES.md §3.2), needed by filters using `ne`, `endsWith`,
/// `$count` and friends.
const EVENTUAL: &[(&str, &str)] = &[("ConsistencyLevel", "eventual")];

/// Which users to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserSelection {
    /// Every user in the tenant.
    All,
    /// A group's members: direct, or through nested groups too.
    Group { id: Uuid, transitive: bool },
    /// An OData `$filter`, sent as an advanced query.
    Filter(String),
    /// The users whose UPN starts with the prefix (case-insensitive): one partition of a
    /// whole-tenant read, a standard query (`startsWith` on `userPrincipalName` is filterable
    /// by default, NOTES §3).
    UpnPrefix(String),
}

/// Quotes a value for an OData filter: `it's` becomes `'it''s'`.
pub fn odata_string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Percent-encodes a query value (spaces as `%20`, never `+`).
pub(super) fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

impl GraphClient {
    /// The first page's URL for a selection.
    pub fn user_selection_url(&self, selection: &UserSelection) -> Url {
        let select = format!("$select={}&$top={MAX_PAGE_SIZE}", encode(USER_SELECT));
        match selection {
            UserSelection::All => self.url(&format!("users?{select}")),
            // The cast on a transitive list is an advanced query (NOTES §3.4): without
            // `$count=true` and `ConsistencyLevel: eventual` Graph refuses it.
            UserSelection::Group {
                id,
                transitive: true,
            } => self.url(&format!(
                "groups/{id}/transitiveMembers/microsoft.graph.user?{select}&$count=true"
            )),
            UserSelection::Group {
                id,
                transitive: false,
            } => self.url(&format!(
                "groups/{id}/members/microsoft.graph.user?{select}"
            )),
            UserSelection::Filter(filter) => self.url(&format!(
                "users?{select}&$filter={}&$count=true",
                encode(filter)
            )),
            UserSelection::UpnPrefix(prefix) => self.url(&format!(
                "users?{select}&$filter={}",
                encode(&format!(
                    "startsWith(userPrincipalName,{})",
                    odata_string(prefix)
                ))
            )),
        }
    }

    /// How many users the tenant has: `GET /users/$count`, an advanced query (NOTES §3.2:
    /// `ConsistencyLevel: eventual`; the count may lag recent changes a little). For a
    /// progress line, never for a decision.
    pub async fn count_users(&self) -> Result<u64, Error> {
        Ok(self
            .get::<u64>(self.url("users/$count"), Priority::Low, EVENTUAL)
            .await?
            .body)
    }

    /// Streams the selected users a page at a time, as snapshots taken at `now`.
    pub fn users(
        &self,
        selection: &UserSelection,
        now: OffsetDateTime,
    ) -> impl Stream<Item = Result<Page<UserSnapshot>, Error>> + Send + '_ {
        let headers: &'static [(&str, &str)] = match selection {
            UserSelection::Filter(_)
            | UserSelection::Group {
                transitive: true, ..
            } => EVENTUAL,
            _ => &[],
        };
        self.pages::<UserDto>(self.user_selection_url(selection), headers)
            .map(move |page| {
                let page = page?;
                let items = page
                    .items
                    .into_iter()
                    .map(|dto| dto.into_snapshot(now))
                    .collect::<Result<_, _>>()?;
                Ok(Page {
                    items,
                    meta: page.meta,
                })
            })
    }

    /// Looks users up by object id or UPN, [`IN_CLAUSE_LIMIT`] per request. Users that do not
    /// exist are simply absent from the answer.
    pub async fn users_by_key(
        &self,
        key: LookupKey,
        values: &[String],
        now: OffsetDateTime,
    ) -> Result<Vec<UserSnapshot>, Error> {
        let property = match key {
            LookupKey::Id => "id",
            LookupKey::UserPrincipalName => "userPrincipalName",
        };
        let mut users = Vec::with_capacity(values.len());
        for chunk in values.chunks(IN_CLAUSE_LIMIT) {
            let list = chunk
                .iter()
                .map(|v| odata_string(v))
                .collect::<Vec<_>>()
                .join(",");
            let url = self.url(&format!(
                "users?$select={}&$filter={}",
                encode(USER_SELECT),
                encode(&format!("{property} in ({list})"))
            ));
            let response = self
                .get::<ValueBody<UserDto>>(url, Priority::Low, &[])
                .await?;
            for dto in response.body.value {
                users.push(dto.into_snapshot(now)?);
            }
        }
        Ok(users)
    }

    /// Reads one user now (by object id), for the check before a conversion.
    pub async fn user(&self, id: UserId, now: OffsetDateTime) -> Result<UserSnapshot, Error> {
        let url = self.url(&format!("users/{id}?$select={}", encode(USER_SELECT)));
        let response = self.get::<UserDto>(url, Priority::Normal, &[]).await?;
        response.body.into_snapshot(now)
    }
}

/// What `GET /users/delta` reports of a user (NOTES §3.3).
#[derive(Clone, Debug, PartialEq)]
pub enum UserChange {
    /// Created, changed or restored: the user as it is now (every selected property).
    Changed(Box<UserSnapshot>),
    /// Deleted, restorably (`@removed.reason` `changed`) or permanently (`deleted`).
    Removed(UserId),
}

/// One page of a delta round, and at its end the delta link for the next round.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangesPage {
    pub changes: Vec<UserChange>,
    pub delta_link: Option<String>,
}

/// Whether Graph answered a delta link it no longer honours: `410 Gone` (a reset, or an
/// expired token), or the codes the error reference gives for an expired sync state
/// (`syncStateNotFound`, `resyncRequired`) whatever the status. Then only a full read helps.
pub fn delta_link_expired(error: &Error) -> bool {
    match error {
        Error::Api(api) => {
            api.status == 410
                || ["syncStateNotFound", "resyncRequired"]
                    .iter()
                    .any(|code| api.code.eq_ignore_ascii_case(code))
        }
        _ => false,
    }
}

impl GraphClient {
    /// A users delta link of now, for [`USER_SELECT`], without reading any user
    /// (`$deltatoken=latest`, "sync from now"): taken before a full read, it makes the next
    /// discover read the changes made since the full read began.
    pub async fn latest_user_delta_link(&self) -> Result<String, Error> {
        let url = self.url(&format!(
            "users/delta?$select={}&$deltatoken=latest",
            encode(USER_SELECT)
        ));
        let response = self
            .get::<DeltaBody>(url.clone(), Priority::Low, &[])
            .await?;
        response.body.delta_link.ok_or_else(|| Error::Decode {
            method: "GET".into(),
            path: "users/delta".into(),
            field: "@odata.deltaLink".into(),
            message: "a $deltatoken=latest answer without a delta link".into(),
            request_id: response.meta.request_id.unwrap_or_default(),
        })
    }

    /// The changes since `link` (a delta link [`latest_user_delta_link`](Self::latest_user_delta_link)
    /// or an earlier round returned), a page at a time, as snapshots taken at `now`; the last
    /// page carries the next delta link. The link is followed as given (it carries the
    /// `$select`), and only to the configured Graph host, as every request is.
    pub fn user_changes(
        &self,
        link: &str,
        now: OffsetDateTime,
    ) -> impl Stream<Item = Result<ChangesPage, Error>> + Send + '_ {
        let first = Url::parse(link).map_err(|e| Error::Decode {
            method: "GET".into(),
            path: "users/delta".into(),
            field: "the stored delta link".into(),
            message: e.to_string(),
            request_id: String::new(),
        });
        futures_util::stream::try_unfold(Some(first), move |next| async move {
            let Some(url) = next else { return Ok(None) };
            let response = self
                .get::<DeltaBody>(url?, self.read_priority(), &[])
                .await?;
            let body = response.body;
            let mut changes = Vec::with_capacity(body.value.len());
            for entry in body.value {
                changes.push(if entry.removed.is_some() {
                    let id = &entry.user.id;
                    UserChange::Removed(id.parse::<UserId>().map_err(|e| {
                        bad_user(id, "id", format!("`{id}` is not an object id: {e}"))
                    })?)
                } else {
                    UserChange::Changed(Box::new(entry.user.into_snapshot(now)?))
                });
            }
            let next = body.next_link.map(|link| {
                Url::parse(&link).map_err(|e| Error::Decode {
                    method: "GET".into(),
                    path: "users/delta".into(),
                    field: "@odata.nextLink".into(),
                    message: e.to_string(),
                    request_id: String::new(),
                })
            });
            let page = ChangesPage {
                changes,
                delta_link: body.delta_link,
            };
            Ok(Some((page, next)))
        })
    }
}

/// A page of `users/delta`.
#[derive(Deserialize)]
struct DeltaBody {
    #[serde(default = "Vec::new")]
    value: Vec<DeltaEntryDto>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink")]
    delta_link: Option<String>,
}

/// A user in a delta page, or its `@removed` annotation.
#[derive(Deserialize)]
struct DeltaEntryDto {
    #[serde(rename = "@removed")]
    removed: Option<serde_json::Value>,
    #[serde(flatten)]
    user: UserDto,
}

/// What a CSV row names a user by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupKey {
    Id,
    UserPrincipalName,
}

#[derive(Deserialize)]
pub(crate) struct ValueBody<T> {
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
}

/// `microsoft.graph.user` as selected by [`USER_SELECT`]. Tolerant: anything may be missing.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserDto {
    id: String,
    user_principal_name: Option<String>,
    display_name: Option<String>,
    given_name: Option<String>,
    surname: Option<String>,
    preferred_language: Option<String>,
    mail: Option<String>,
    #[serde(default)]
    other_mails: Option<Vec<String>>,
    #[serde(default)]
    proxy_addresses: Option<Vec<String>>,
    user_type: Option<String>,
    account_enabled: Option<bool>,
    creation_type: Option<String>,
    external_user_state: Option<String>,
    external_user_state_change_date_time: Option<String>,
    /// [`CONVERSION_STAMP_PROPERTY`], read when the service returns it.
    #[serde(alias = "convertedToInternalUserDateTime")]
    external_user_converted_on: Option<String>,
    on_premises_sync_enabled: Option<bool>,
    on_premises_immutable_id: Option<String>,
    on_premises_sam_account_name: Option<String>,
    on_premises_distinguished_name: Option<String>,
    on_premises_domain_name: Option<String>,
    on_premises_user_principal_name: Option<String>,
    #[serde(default)]
    assigned_plans: Option<Vec<AssignedPlanDto>>,
    #[serde(default)]
    assigned_licenses: Option<Vec<AssignedLicenseDto>>,
    #[serde(default)]
    identities: Option<Vec<IdentityDto>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssignedPlanDto {
    assigned_date_time: Option<String>,
    capability_status: Option<String>,
    service: Option<String>,
    service_plan_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssignedLicenseDto {
    sku_id: Option<String>,
    #[serde(default)]
    disabled_plans: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdentityDto {
    sign_in_type: Option<String>,
    issuer: Option<String>,
    issuer_assigned_id: Option<String>,
}

fn bad_user(id: &str, field: &str, message: String) -> Error {
    Error::Decode {
        method: "GET".into(),
        path: format!("users/{id}"),
        field: field.to_owned(),
        message,
        request_id: String::new(),
    }
}

/// A date-time Graph sent; an unreadable one is logged and left out rather than failing the
/// page (one odd value must not stop a discovery of a million users).
fn timestamp(id: &str, field: &str, text: Option<String>) -> Option<OffsetDateTime> {
    let text = text.filter(|t| !t.is_empty())?;
    OffsetDateTime::parse(&text, &Rfc3339)
        .inspect_err(
            |e| tracing::warn!(user = id, field, value = %text, "not a date-time, ignored: {e}"),
        )
        .ok()
}

/// A GUID Graph sent; an unreadable one is logged and left out, like [`timestamp`].
fn guid(id: &str, field: &str, text: Option<String>) -> Option<Uuid> {
    let text = text?;
    Uuid::parse_str(&text)
        .inspect_err(
            |e| tracing::warn!(user = id, field, value = %text, "not a GUID, ignored: {e}"),
        )
        .ok()
}

impl UserDto {
    fn into_snapshot(self, now: OffsetDateTime) -> Result<UserSnapshot, Error> {
        let id = &self.id;
        let user_id = id
            .parse::<UserId>()
            .map_err(|e| bad_user(id, "id", format!("`{id}` is not an object id: {e}")))?;
        let assigned_plans = self
            .assigned_plans
            .unwrap_or_default()
            .into_iter()
            .map(|plan| AssignedPlan {
                assigned_at: timestamp(
                    id,
                    "assignedPlans.assignedDateTime",
                    plan.assigned_date_time,
                ),
                capability_status: plan.capability_status,
                service: plan.service,
                service_plan_id: guid(id, "assignedPlans.servicePlanId", plan.service_plan_id),
            })
            .collect();
        let assigned_licenses = self
            .assigned_licenses
            .unwrap_or_default()
            .into_iter()
            .map(|license| AssignedLicense {
                sku_id: guid(id, "assignedLicenses.skuId", license.sku_id),
                disabled_plans: license
                    .disabled_plans
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|p| guid(id, "assignedLicenses.disabledPlans", Some(p)))
                    .collect(),
            })
            .collect();
        Ok(UserSnapshot {
            id: user_id,
            user_principal_name: self.user_principal_name.unwrap_or_default(),
            display_name: self.display_name,
            mail: self.mail,
            other_mails: self.other_mails.unwrap_or_default(),
            proxy_addresses: self.proxy_addresses.unwrap_or_default(),
            user_type: self.user_type,
            account_enabled: self.account_enabled,
            creation_type: self.creation_type,
            external_user_state: self.external_user_state,
            external_user_state_changed_at: timestamp(
                id,
                "externalUserStateChangeDateTime",
                self.external_user_state_change_date_time,
            ),
            converted_to_internal_at: timestamp(
                id,
                CONVERSION_STAMP_PROPERTY,
                self.external_user_converted_on,
            ),
            on_premises: OnPremisesProperties {
                sync_enabled: self.on_premises_sync_enabled,
                immutable_id: self.on_premises_immutable_id,
                sam_account_name: self.on_premises_sam_account_name,
                distinguished_name: self.on_premises_distinguished_name,
                domain_name: self.on_premises_domain_name,
                user_principal_name: self.on_premises_user_principal_name,
            },
            assigned_plans,
            assigned_licenses,
            profile: UserProfile {
                given_name: self.given_name,
                surname: self.surname,
                preferred_language: self.preferred_language,
            },
            identities: self
                .identities
                .unwrap_or_default()
                .into_iter()
                .map(|i| ObjectIdentity {
                    sign_in_type: i.sign_in_type,
                    issuer: i.issuer,
                    issuer_assigned_id: i.issuer_assigned_id,
                })
                .collect(),
            snapshot_at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn odata_strings_double_single_quotes() {
        assert_eq!(
            odata_string("o'brien@contoso.com"),
            "'o''brien@contoso.com'"
        );
        assert_eq!(odata_string("plain"), "'plain'");
    }

    #[test]
    fn query_values_are_percent_encoded_without_plus() {
        assert_eq!(
            encode("userType eq 'Member' and a+b#c&d"),
            "userType%20eq%20%27Member%27%20and%20a%2Bb%23c%26d"
        );
    }

    #[test]
    fn a_graph_user_becomes_a_snapshot() {
        let json = serde_json::json!({
            "id": "5a9f3c1e-0b2d-4e6f-8a7b-9c0d1e2f3a4b",
            "userPrincipalName": "partner@contoso.com",
            "displayName": "Partner",
            "mail": "partner@fabrikam.com",
            "otherMails": ["p@fabrikam.com"],
            "proxyAddresses": ["SMTP:partner@contoso.com"],
            "userType": "Member",
            "accountEnabled": true,
            "creationType": null,
            "externalUserState": "PendingAcceptance",
            "externalUserStateChangeDateTime": "2026-11-20T10:00:00Z",
            "onPremisesSyncEnabled": true,
            "onPremisesImmutableId": "abc==",
            "onPremisesUserPrincipalName": "partner@corp.contoso.com",
            "assignedPlans": [{"assignedDateTime": "2025-01-01T00:00:00Z", "capabilityStatus": "Enabled",
                "service": "exchange", "servicePlanId": "9aaf7827-d63c-4b61-89c3-182f06f82e5c"}],
            "assignedLicenses": [{"skuId": "4b9405b0-7788-4568-add1-99614e613b69", "disabledPlans": []}],
            "identities": [{"signInType": "userPrincipalName", "issuer": "contoso.com", "issuerAssignedId": "partner@contoso.com"}]
        });
        let dto: UserDto = serde_json::from_value(json).unwrap();
        let now = datetime!(2026-11-21 08:00 UTC);
        let user = dto.into_snapshot(now).unwrap();
        assert_eq!(user.id.to_string(), "5a9f3c1e-0b2d-4e6f-8a7b-9c0d1e2f3a4b");
        assert!(user.is_synced());
        assert_eq!(user.assigned_plans[0].service.as_deref(), Some("exchange"));
        assert_eq!(
            user.external_user_state_changed_at,
            Some(datetime!(2026-11-20 10:00 UTC))
        );
        assert_eq!(user.snapshot_at, now);
    }

    #[test]
    fn the_conversion_stamp_is_read_when_returned_and_never_selected() {
        assert!(
            !USER_SELECT.contains(CONVERSION_STAMP_PROPERTY)
                && !USER_SELECT.contains("convertedToInternal"),
            "v1.0 refuses a $select of a property it does not document"
        );
        let now = datetime!(2026-11-21 08:00 UTC);
        for name in [CONVERSION_STAMP_PROPERTY, "convertedToInternalUserDateTime"] {
            let dto: UserDto = serde_json::from_value(serde_json::json!({
                "id": "5a9f3c1e-0b2d-4e6f-8a7b-9c0d1e2f3a4b",
                name: "2026-03-08T16:21:33.4491323Z"
            }))
            .unwrap();
            let user = dto.into_snapshot(now).unwrap();
            assert_eq!(
                user.converted_to_internal_at.map(OffsetDateTime::date),
                Some(time::macros::date!(2026 - 03 - 08)),
                "{name}"
            );
        }
        let dto: UserDto = serde_json::from_value(
            serde_json::json!({"id": "5a9f3c1e-0b2d-4e6f-8a7b-9c0d1e2f3a4b"}),
        )
        .unwrap();
        assert_eq!(
            dto.into_snapshot(now).unwrap().converted_to_internal_at,
            None
        );
    }

    #[test]
    fn missing_collections_are_empty_and_a_bad_id_is_named() {
        let dto: UserDto = serde_json::from_value(serde_json::json!({"id": "not-a-guid"})).unwrap();
        let err = dto
            .into_snapshot(datetime!(2026-11-21 08:00 UTC))
            .unwrap_err();
        assert!(err.to_string().contains("not-a-guid"), "{err}");
        let dto: UserDto = serde_json::from_value(serde_json::json!({
            "id": "5a9f3c1e-0b2d-4e6f-8a7b-9c0d1e2f3a4b", "userPrincipalName": "x@y.z"
        }))
        .unwrap();
        let user = dto.into_snapshot(datetime!(2026-11-21 08:00 UTC)).unwrap();
        assert!(user.other_mails.is_empty() && user.assigned_plans.is_empty());
    }
}
