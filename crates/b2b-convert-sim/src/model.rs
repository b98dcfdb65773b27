//! The simulated directory's objects, shaped exactly like their Graph JSON.
//!
//! Owns the serde types for `user`, `orgContact`, `domain`, `organization`, groups, app role assignments,
//! direct-federation configurations, realms and app registrations. The same types are used for the JSON tenant
//! file, so a tenant file's `users` entries are literally Graph user objects. It must not hold
//! behaviour (validation, paging, auth): those live in `directory`, `http` and `auth`.

use serde::{Deserialize, Serialize};

/// A `microsoft.graph.user`, with the properties the simulator models.
///
/// Property names and JSON types follow the v1.0 CSDL; non-nullable collections default to `[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub display_name: Option<String>,
    #[serde(default)]
    pub given_name: Option<String>,
    #[serde(default)]
    pub surname: Option<String>,
    pub user_principal_name: String,
    #[serde(default)]
    pub mail: Option<String>,
    #[serde(default)]
    pub other_mails: Vec<String>,
    #[serde(default)]
    pub proxy_addresses: Vec<String>,
    #[serde(default = "member")]
    pub user_type: Option<String>,
    #[serde(default = "enabled")]
    pub account_enabled: Option<bool>,
    #[serde(default)]
    pub creation_type: Option<String>,
    #[serde(default)]
    pub external_user_state: Option<String>,
    #[serde(default)]
    pub external_user_state_change_date_time: Option<String>,
    /// When the user was converted from external back to internal
    /// (`convertExternalToInternalMemberUser`): Graph beta's stamp on the user, not a v1.0
    /// property. Never `$select`able on `/v1.0`; returned with every representation of a
    /// stamped user (see [`crate::odata::project`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_user_converted_on: Option<String>,
    #[serde(default)]
    pub on_premises_sync_enabled: Option<bool>,
    #[serde(default)]
    pub on_premises_immutable_id: Option<String>,
    #[serde(default)]
    pub on_premises_sam_account_name: Option<String>,
    #[serde(default)]
    pub on_premises_distinguished_name: Option<String>,
    #[serde(default)]
    pub on_premises_domain_name: Option<String>,
    #[serde(default)]
    pub on_premises_user_principal_name: Option<String>,
    #[serde(default)]
    pub assigned_licenses: Vec<AssignedLicense>,
    #[serde(default)]
    pub assigned_plans: Vec<AssignedPlan>,
    #[serde(default)]
    pub provisioned_plans: Vec<ProvisionedPlan>,
    #[serde(default)]
    pub identities: Vec<ObjectIdentity>,
    #[serde(default)]
    pub business_phones: Vec<String>,
    #[serde(default)]
    pub job_title: Option<String>,
    #[serde(default)]
    pub mobile_phone: Option<String>,
    #[serde(default)]
    pub office_location: Option<String>,
    #[serde(default)]
    pub preferred_language: Option<String>,
}

impl User {
    /// A user with only an id and a display name (everything else empty).
    pub fn named(id: &str, display_name: &str) -> Self {
        Self {
            id: id.to_owned(),
            display_name: Some(display_name.to_owned()),
            ..Self::default()
        }
    }
}

/// A `microsoft.graph.orgContact` (an organizational contact: Exchange or on-premises mail
/// contacts, read-only in Graph), with the properties the simulator models. Its `mail` and
/// `smtp:` proxy addresses are addresses no other object may take.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrgContact {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub given_name: Option<String>,
    #[serde(default)]
    pub surname: Option<String>,
    #[serde(default)]
    pub company_name: Option<String>,
    #[serde(default)]
    pub mail: Option<String>,
    #[serde(default)]
    pub mail_nickname: Option<String>,
    #[serde(default)]
    pub proxy_addresses: Vec<String>,
    #[serde(default)]
    pub on_premises_sync_enabled: Option<bool>,
}

/// Every `orgContact` property the simulator models (what `$select` may name).
pub const CONTACT_PROPERTIES: &[&str] = &[
    "id",
    "displayName",
    "givenName",
    "surname",
    "companyName",
    "mail",
    "mailNickname",
    "proxyAddresses",
    "onPremisesSyncEnabled",
];

impl OrgContact {
    /// Whether the contact answers to `address` (its `mail` or an `smtp:` proxy address),
    /// compared without regard to case.
    pub fn holds(&self, address: &str) -> bool {
        self.mail
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case(address))
            || self.proxy_addresses.iter().any(|p| {
                p.split_once(':').is_some_and(|(prefix, a)| {
                    prefix.eq_ignore_ascii_case("smtp") && a.eq_ignore_ascii_case(address)
                })
            })
    }
}

#[allow(clippy::unnecessary_wraps)] // serde `default` needs this exact signature
fn member() -> Option<String> {
    Some("Member".to_owned())
}

#[allow(clippy::unnecessary_wraps)] // serde `default` needs this exact signature
fn enabled() -> Option<bool> {
    Some(true)
}

/// Properties Graph returns for a user when the request has no `$select` (NOTES §3).
pub const USER_DEFAULT_PROPERTIES: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "id",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
];

/// Every user property the simulator can return (and therefore accepts in `$select`).
pub const USER_PROPERTIES: &[&str] = &[
    "id",
    "displayName",
    "givenName",
    "surname",
    "userPrincipalName",
    "mail",
    "otherMails",
    "proxyAddresses",
    "userType",
    "accountEnabled",
    "creationType",
    "externalUserState",
    "externalUserStateChangeDateTime",
    "onPremisesSyncEnabled",
    "onPremisesImmutableId",
    "onPremisesSamAccountName",
    "onPremisesDistinguishedName",
    "onPremisesDomainName",
    "onPremisesUserPrincipalName",
    "assignedLicenses",
    "assignedPlans",
    "provisionedPlans",
    "identities",
    "businessPhones",
    "jobTitle",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
];

/// `microsoft.graph.assignedLicense`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignedLicense {
    pub sku_id: Option<String>,
    #[serde(default)]
    pub disabled_plans: Vec<String>,
}

/// `microsoft.graph.assignedPlan`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignedPlan {
    pub assigned_date_time: Option<String>,
    pub capability_status: Option<String>,
    pub service: Option<String>,
    pub service_plan_id: Option<String>,
}

/// `microsoft.graph.provisionedPlan`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProvisionedPlan {
    pub capability_status: Option<String>,
    pub provisioning_status: Option<String>,
    pub service: Option<String>,
}

/// `microsoft.graph.objectIdentity`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectIdentity {
    pub sign_in_type: Option<String>,
    pub issuer: Option<String>,
    pub issuer_assigned_id: Option<String>,
}

/// The default app role id: "assigned to the app without a specific role" (appRoleAssignment
/// resource page).
pub const DEFAULT_APP_ROLE_ID: &str = "00000000-0000-0000-0000-000000000000";

/// A `microsoft.graph.appRoleAssignment` granted to a user, without the principal's fields
/// (`principalId`, `principalDisplayName`, `principalType`): the simulator fills those from
/// the user when it answers, so a renamed user shows its new name.
///
/// In a tenant file, `users[].appRoleAssignments` lists these; `id`, `appRoleId` and
/// `createdDateTime` may be left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppRoleAssignment {
    /// Opaque, like Graph's (base64url text, not a GUID).
    #[serde(default)]
    pub id: String,
    #[serde(default = "default_app_role")]
    pub app_role_id: String,
    /// The resource app's service principal id.
    pub resource_id: String,
    pub resource_display_name: String,
    #[serde(default = "default_created")]
    pub created_date_time: String,
}

fn default_app_role() -> String {
    DEFAULT_APP_ROLE_ID.to_owned()
}

fn default_created() -> String {
    "2024-01-01T00:00:00Z".to_owned()
}

/// `microsoft.graph.domain` (the properties the simulator models).
#[allow(clippy::struct_excessive_bools)] // mirrors Graph's JSON shape
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Domain {
    pub id: String,
    #[serde(default = "managed")]
    pub authentication_type: String,
    #[serde(default)]
    pub availability_status: Option<String>,
    #[serde(default = "yes")]
    pub is_admin_managed: bool,
    #[serde(default)]
    pub is_default: bool,
    #[serde(default)]
    pub is_initial: bool,
    #[serde(default = "yes")]
    pub is_root: bool,
    #[serde(default = "yes")]
    pub is_verified: bool,
    #[serde(default)]
    pub supported_services: Vec<String>,
}

fn managed() -> String {
    "Managed".to_owned()
}

fn yes() -> bool {
    true
}

/// A `microsoft.graph.samlOrWsFedExternalDomainFederation` with its contained `domains`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FederationConfiguration {
    pub id: String,
    pub display_name: Option<String>,
    pub issuer_uri: Option<String>,
    pub metadata_exchange_uri: Option<String>,
    pub passive_sign_in_uri: Option<String>,
    /// `wsFed`, `saml` or `unknownFutureValue`.
    pub preferred_authentication_protocol: Option<String>,
    pub signing_certificate: Option<String>,
    /// The federated domain names (`externalDomainName.id`).
    #[serde(default)]
    pub domains: Vec<String>,
}

/// What the user-realm endpoint answers for a domain (NOTES §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RealmKind {
    Managed,
    Federated,
    Unknown,
}

impl RealmKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Managed => "Managed",
            Self::Federated => "Federated",
            Self::Unknown => "Unknown",
        }
    }
}

/// A security group with direct user members and nested groups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupSpec {
    pub id: String,
    pub display_name: String,
    /// Direct members that are users (by object id or UPN) or org contacts (by object id).
    #[serde(default)]
    pub members: Vec<String>,
    /// Direct members that are groups, by object id.
    #[serde(default)]
    pub member_groups: Vec<String>,
}

/// An app registration (with its service principal's granted permissions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppRegistration {
    pub client_id: String,
    pub display_name: String,
    /// Client secret values accepted for client credentials.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// PEM `CERTIFICATE` blocks whose keys may sign client assertions.
    #[serde(default)]
    pub certificates: Vec<String>,
    /// Granted (admin-consented) application permissions: the token's `roles` claim.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Delegated permissions a device-code sign-in may obtain: the token's `scp` claim.
    #[serde(default)]
    pub delegated_scopes: Vec<String>,
    /// Whether public client flows (device code) are allowed.
    #[serde(default)]
    pub public_client: bool,
}

/// `inboundOutboundPolicyConfiguration`: a pair of switches of the cross-tenant access policy.
/// `null` in a partner configuration means "inherit the default" (which for
/// `automaticUserConsentSettings` is always `false`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InboundOutboundPolicyConfiguration {
    #[serde(default)]
    pub inbound_allowed: Option<bool>,
    #[serde(default)]
    pub outbound_allowed: Option<bool>,
}

/// A `crossTenantAccessPolicyConfigurationPartner`: this tenant's settings for one partner
/// tenant, with the properties the simulator models (the B2B collaboration and direct-connect
/// settings are served as `null`, "inherit the default").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CrossTenantPartner {
    /// The partner's tenant id (the key).
    pub tenant_id: String,
    /// "Automatically redeem invitations": `inboundAllowed` is ours for this partner.
    #[serde(default)]
    pub automatic_user_consent_settings: InboundOutboundPolicyConfiguration,
    #[serde(default)]
    pub is_service_provider: Option<bool>,
    #[serde(default)]
    pub is_in_multi_tenant_organization: Option<bool>,
}
