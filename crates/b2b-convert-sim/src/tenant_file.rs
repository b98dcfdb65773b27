//! The JSON tenant file: a tenant given case by case instead of generated.
//!
//! Owns the file format (documented in the repository's `docs/simulator.md`, example in this
//! crate's `tests/fixtures/tenant.json`) and its conversion into the directory's facts and listed
//! users, with errors that name the offending field. It must not generate users.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Error;
use super::auth::SimCertificate;
use super::directory::{Group, ListedUsers, TenantFacts};
use super::model::{
    AppRegistration, AppRoleAssignment, CrossTenantPartner, Domain, FederationConfiguration,
    GroupSpec, OrgContact, RealmKind, User,
};

/// Placeholder in `applications[].certificates` for the process's shared test certificate.
/// When a tenant was created unless its file or [`crate::SimSpec::with_tenant_created`] says:
/// long enough ago that no young-tenant quota applies.
pub const DEFAULT_TENANT_CREATED: &str = "2019-05-01T09:00:00Z";

fn default_created() -> String {
    DEFAULT_TENANT_CREATED.to_owned()
}

pub const SHARED_CERTIFICATE: &str = "sim:shared-certificate";

/// A tenant file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantFile {
    pub tenant_id: String,
    #[serde(default = "default_name")]
    pub display_name: String,
    /// `organization.createdDateTime`; default [`DEFAULT_TENANT_CREATED`] (an old tenant).
    #[serde(default = "default_created")]
    pub created_date_time: String,
    pub domains: Vec<Domain>,
    #[serde(default)]
    pub federation_configurations: Vec<FederationConfiguration>,
    /// External e-mail domain -> user realm (verified domains are `Managed` automatically).
    #[serde(default)]
    pub realms: BTreeMap<String, RealmKind>,
    /// External Entra domain -> its home tenant's id (what the login host's OIDC metadata
    /// names as issuer). A `Managed`/`Federated` domain not listed gets a stable id derived
    /// from its name ([`crate::generate::partner_tenant_id`]).
    #[serde(default)]
    pub tenant_ids: BTreeMap<String, String>,
    /// This tenant's cross-tenant access settings per partner tenant, in Graph's shape
    /// (`crossTenantAccessPolicyConfigurationPartner`); a partner tenant not listed has no
    /// entry (404).
    #[serde(default)]
    pub cross_tenant_access_partners: Vec<CrossTenantPartner>,
    pub users: Vec<FileUser>,
    /// Org contacts (Graph `orgContact` objects): their addresses are taken.
    #[serde(default)]
    pub contacts: Vec<OrgContact>,
    #[serde(default)]
    pub groups: Vec<GroupSpec>,
    pub applications: Vec<AppRegistration>,
}

fn default_name() -> String {
    "Contoso (simulated)".to_owned()
}

/// A Graph user plus an optional test label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileUser {
    /// A label tests can look the user up by (e.g. a `UserCase` name such as `synced-on-premises-upn`).
    #[serde(rename = "@sim.case", default, skip_serializing_if = "Option::is_none")]
    pub case: Option<String>,
    /// The user's app role assignments (a relationship in Graph, not a property: served by
    /// `GET /users/{id}/appRoleAssignments`, never inside the user object).
    #[serde(
        rename = "appRoleAssignments",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub app_role_assignments: Vec<AppRoleAssignment>,
    #[serde(flatten)]
    pub user: User,
}

impl TenantFile {
    /// Reads and parses a tenant file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadTenant {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|reason| Error::InvalidTenant {
            path: Some(path.to_owned()),
            reason,
        })
    }

    /// Parses tenant JSON; the error names the JSON path that failed.
    pub fn parse(text: &str) -> Result<Self, String> {
        let deserializer = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(deserializer)
            .map_err(|e| format!("at {}: {}", e.path(), e.inner()))
    }

    /// Builds the directory's facts and users.
    pub(crate) fn into_parts(self) -> Result<(TenantFacts, ListedUsers), String> {
        let mut ids = HashMap::new();
        for (i, file_user) in self.users.iter().enumerate() {
            let u = &file_user.user;
            if ids.insert(u.id.to_ascii_lowercase(), i as u64).is_some() {
                return Err(format!("users[{i}]: duplicate id {}", u.id));
            }
            ids.entry(u.user_principal_name.to_lowercase())
                .or_insert(i as u64);
        }
        let mut contact_positions: HashMap<String, u64> = HashMap::new();
        for (k, contact) in self.contacts.iter().enumerate() {
            let id = contact.id.to_ascii_lowercase();
            if ids.contains_key(&id) || contact_positions.insert(id, k as u64).is_some() {
                return Err(format!("contacts[{k}]: duplicate id {}", contact.id));
            }
        }
        let groups = groups(&self.groups, &ids, &contact_positions)?;
        let mut realms: BTreeMap<String, RealmKind> = self
            .realms
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        for domain in self.domains.iter().filter(|d| d.is_verified) {
            realms
                .entry(domain.id.to_ascii_lowercase())
                .or_insert(RealmKind::Managed);
        }
        let tenant_ids = self
            .tenant_ids
            .into_iter()
            .map(|(domain, id)| {
                if super::rng::parse_guid(&id).is_none() {
                    return Err(format!("tenantIds.{domain}: `{id}` is not a GUID"));
                }
                Ok((domain.to_ascii_lowercase(), id.to_ascii_lowercase()))
            })
            .collect::<Result<BTreeMap<_, _>, String>>()?;
        let mut partner_ids = std::collections::HashSet::new();
        for (k, partner) in self.cross_tenant_access_partners.iter().enumerate() {
            if super::rng::parse_guid(&partner.tenant_id).is_none() {
                return Err(format!(
                    "crossTenantAccessPartners[{k}].tenantId: `{}` is not a GUID",
                    partner.tenant_id
                ));
            }
            if !partner_ids.insert(partner.tenant_id.to_ascii_lowercase()) {
                return Err(format!(
                    "crossTenantAccessPartners[{k}].tenantId: {} is listed twice",
                    partner.tenant_id
                ));
            }
        }
        let mut apps = self.applications;
        for app in &mut apps {
            for certificate in &mut app.certificates {
                if certificate == SHARED_CERTIFICATE {
                    SimCertificate::shared()
                        .map_err(|e| e.to_string())?
                        .certificate_pem
                        .clone_into(certificate);
                }
            }
        }
        if apps.is_empty() {
            return Err(
                "applications: at least one app registration is needed to get a token".to_owned(),
            );
        }
        let facts = TenantFacts {
            tenant_id: self.tenant_id,
            display_name: self.display_name,
            created_date_time: self.created_date_time,
            domains: self.domains,
            federation: self.federation_configurations,
            realms,
            tenant_ids,
            cross_tenant_partners: self.cross_tenant_access_partners,
            groups,
            apps,
            contacts: self.contacts,
        };
        let mut users = Vec::with_capacity(self.users.len());
        let mut cases = Vec::with_capacity(self.users.len());
        let mut assignments = Vec::with_capacity(self.users.len());
        for (i, file_user) in self.users.into_iter().enumerate() {
            let mut granted = file_user.app_role_assignments;
            for (k, assignment) in granted.iter_mut().enumerate() {
                if assignment.id.is_empty() {
                    assignment.id = listed_assignment_id(i as u64, k as u64);
                }
            }
            users.push(file_user.user);
            cases.push(file_user.case);
            assignments.push(granted);
        }
        Ok((
            facts,
            ListedUsers::new(users, cases).with_app_role_assignments(assignments),
        ))
    }
}

/// The groups of a tenant file, their members resolved: users (`ids`: lower-cased id or UPN →
/// index), org contacts (lower-cased id → listing position) and nested groups.
fn groups(
    specs: &[GroupSpec],
    ids: &HashMap<String, u64>,
    contact_positions: &HashMap<String, u64>,
) -> Result<Vec<Group>, String> {
    let group_positions: HashMap<String, usize> = specs
        .iter()
        .enumerate()
        .map(|(i, g)| (g.id.to_ascii_lowercase(), i))
        .collect();
    let mut groups = Vec::new();
    for (gi, spec) in specs.iter().enumerate() {
        let mut user_ranges = Vec::new();
        let mut contacts = Vec::new();
        for member in &spec.members {
            if let Some(index) = ids.get(&member.to_lowercase()) {
                user_ranges.push(*index..*index + 1);
            } else if let Some(k) = contact_positions.get(&member.to_ascii_lowercase()) {
                contacts.push(*k);
            } else {
                return Err(format!("groups[{gi}].members: no user or contact {member}"));
            }
        }
        let mut nested = Vec::new();
        for member in &spec.member_groups {
            nested.push(
                *group_positions
                    .get(&member.to_ascii_lowercase())
                    .ok_or_else(|| format!("groups[{gi}].memberGroups: no group {member}"))?,
            );
        }
        groups.push(Group {
            id: spec.id.clone(),
            display_name: spec.display_name.clone(),
            user_ranges,
            contacts,
            nested,
        });
    }
    Ok(groups)
}

/// An id for a tenant-file assignment that has none: base64url like Graph's, unique per
/// (user, position).
fn listed_assignment_id(user: u64, k: u64) -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    for (part, chunk) in bytes.chunks_mut(8).enumerate() {
        let value = super::rng::keyed(user, 0xA55E + k, part as u64);
        chunk.copy_from_slice(&value.to_le_bytes());
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
