//! The simulated directory: users (generated or listed) plus every change made to them.
//!
//! Owns the tenant's facts (domains, federation, realms, groups, apps), the user sources (and
//! the org contacts that come with them: generated, or listed in a tenant file), the
//! overlay of mutations (updated properties, invitations, redemptions, newly invited guests,
//! removed group memberships and app role assignments), lookups, group expansion, a user's
//! direct groups (`memberOf`, always consistent with the groups' members) and app role
//! assignments. The service rules of `POST /invitations` live in
//! `invitations`, those of `PATCH /users/{id}` in `update`. It must not know HTTP: it returns
//! typed outcomes and errors that `http` turns into Graph responses.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Range;
use std::sync::Mutex;

use serde::Serialize;

use super::clock::SimClock;
use super::generate::{GeneratedTenant, UserCase, format_unix};
use super::model::{
    AppRegistration, AppRoleAssignment, CrossTenantPartner, Domain, FederationConfiguration,
    ObjectIdentity, OrgContact, RealmKind, User,
};

mod changes;
mod invitations;
mod update;

pub use changes::{DeltaEntry, RemovalReason};

pub use invitations::{
    AddressRule, FORBIDDEN_ADDRESS_CHARACTERS, Invitation, InvitationRequest, InvitationRules,
    RedemptionConfig, RepeatPolicy, messages, validate_address,
};

/// Serde helper: a `Duration` as (fractional) seconds.
pub mod duration_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(value.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let seconds = f64::deserialize(deserializer)?;
        Duration::try_from_secs_f64(seconds).map_err(serde::de::Error::custom)
    }
}

/// A group with its direct members expressed as user-index ranges.
#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    pub display_name: String,
    pub user_ranges: Vec<Range<u64>>,
    /// Org contacts among the direct members (positions in the contact listing).
    pub contacts: Vec<u64>,
    /// Positions (in `TenantFacts::groups`) of nested groups.
    pub nested: Vec<usize>,
}

/// Everything about the tenant except its users.
#[derive(Debug, Clone)]
pub struct TenantFacts {
    pub tenant_id: String,
    pub display_name: String,
    /// `organization.createdDateTime` (RFC 3339): how old the tenant is, which decides its daily
    /// invitation quota (NOTES §8.2a).
    pub created_date_time: String,
    pub domains: Vec<Domain>,
    pub federation: Vec<FederationConfiguration>,
    pub realms: BTreeMap<String, RealmKind>,
    /// The home tenant of external Entra domains (lower-case domain -> tenant id), where it is
    /// given; any other `Managed`/`Federated` domain is homed in
    /// [`partner_tenant_id`](crate::generate::partner_tenant_id)`(domain)`.
    pub tenant_ids: BTreeMap<String, String>,
    /// This tenant's cross-tenant access settings per partner tenant
    /// (`/policies/crossTenantAccessPolicy/partners`).
    pub cross_tenant_partners: Vec<CrossTenantPartner>,
    pub groups: Vec<Group>,
    pub apps: Vec<AppRegistration>,
    /// The tenant file's org contacts, in listing order (a generated tenant makes its own).
    pub contacts: Vec<OrgContact>,
}

impl TenantFacts {
    /// The verified domain that `domain` is, or is a subdomain of.
    pub fn verified_domain_of(&self, domain: &str) -> Option<&Domain> {
        let domain = domain.to_ascii_lowercase();
        self.domains.iter().filter(|d| d.is_verified).find(|d| {
            let id = d.id.to_ascii_lowercase();
            domain == id || domain.ends_with(&format!(".{id}"))
        })
    }

    /// The direct-federation configuration covering `domain` or a parent domain.
    pub fn direct_federation_of(&self, domain: &str) -> Option<&FederationConfiguration> {
        let domain = domain.to_ascii_lowercase();
        self.federation.iter().find(|config| {
            config.domains.iter().any(|d| {
                let d = d.to_ascii_lowercase();
                domain == d || domain.ends_with(&format!(".{d}"))
            })
        })
    }

    /// The initial `*.onmicrosoft.com` domain.
    pub fn initial_domain(&self) -> String {
        self.domains
            .iter()
            .find(|d| d.is_initial)
            .map_or_else(|| "contoso.onmicrosoft.com".to_owned(), |d| d.id.clone())
    }

    /// The realm of an e-mail domain (unlisted domains are `Unknown`).
    pub fn realm_of(&self, domain: &str) -> RealmKind {
        self.realms
            .get(&domain.to_ascii_lowercase())
            .copied()
            .unwrap_or(RealmKind::Unknown)
    }

    /// The tenant id an authority names (a tenant id or a domain name, as the login host's
    /// `{tenant}` path segment): this tenant for its own id or verified domains, a partner
    /// tenant for an external `Managed`/`Federated` domain or a known partner tenant id;
    /// `None` when no Entra tenant answers to it.
    pub fn tenant_named(&self, tenant: &str) -> Option<String> {
        let tenant = tenant.to_ascii_lowercase();
        if tenant == self.tenant_id.to_ascii_lowercase()
            || self
                .domains
                .iter()
                .any(|d| d.is_verified && d.id.eq_ignore_ascii_case(&tenant))
        {
            return Some(self.tenant_id.to_ascii_lowercase());
        }
        if super::rng::parse_guid(&tenant).is_some() {
            let known = self
                .tenant_ids
                .values()
                .any(|id| id.eq_ignore_ascii_case(&tenant))
                || self
                    .cross_tenant_partners
                    .iter()
                    .any(|p| p.tenant_id.eq_ignore_ascii_case(&tenant))
                || self
                    .realms
                    .iter()
                    .filter(|(_, realm)| **realm != RealmKind::Unknown)
                    .any(|(domain, _)| super::generate::partner_tenant_id(domain) == tenant);
            return known.then_some(tenant);
        }
        if let Some(id) = self.tenant_ids.get(&tenant) {
            return Some(id.to_ascii_lowercase());
        }
        (self.realm_of(&tenant) != RealmKind::Unknown)
            .then(|| super::generate::partner_tenant_id(&tenant))
    }

    /// This tenant's cross-tenant access settings for the partner tenant `tenant_id`.
    pub fn cross_tenant_partner(&self, tenant_id: &str) -> Option<&CrossTenantPartner> {
        self.cross_tenant_partners
            .iter()
            .find(|p| p.tenant_id.eq_ignore_ascii_case(tenant_id))
    }

    pub fn app(&self, client_id: &str) -> Option<&AppRegistration> {
        self.apps
            .iter()
            .find(|a| a.client_id.eq_ignore_ascii_case(client_id))
    }

    pub fn group_position(&self, id: &str) -> Option<usize> {
        self.groups
            .iter()
            .position(|g| g.id.eq_ignore_ascii_case(id))
    }
}

/// A group's members as [`Directory::members`] finds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMembers {
    /// User indexes, merged (each user once).
    pub users: Vec<Range<u64>>,
    /// Org contacts (positions in the contact listing), each once.
    pub contacts: Vec<u64>,
    /// Member groups (positions in `TenantFacts::groups`).
    pub groups: Vec<usize>,
}

/// Users given explicitly (tenant file), with lookup indexes.
#[derive(Debug, Clone, Default)]
pub struct ListedUsers {
    pub users: Vec<User>,
    pub cases: Vec<Option<String>>,
    /// Each user's app role assignments (same positions as `users`; may be shorter).
    pub app_role_assignments: Vec<Vec<AppRoleAssignment>>,
    by_id: HashMap<String, u64>,
    by_upn: HashMap<String, u64>,
    by_address: HashMap<String, Vec<u64>>,
}

impl ListedUsers {
    pub fn new(users: Vec<User>, cases: Vec<Option<String>>) -> Self {
        let mut listed = Self {
            users,
            cases,
            ..Self::default()
        };
        for (i, user) in listed.users.iter().enumerate() {
            let i = i as u64;
            listed.by_id.insert(user.id.to_ascii_lowercase(), i);
            listed
                .by_upn
                .insert(user.user_principal_name.to_lowercase(), i);
            for address in addresses_of(user) {
                listed.by_address.entry(address).or_default().push(i);
            }
        }
        listed
    }

    /// The same users with their app role assignments (by position).
    #[must_use]
    pub fn with_app_role_assignments(mut self, assignments: Vec<Vec<AppRoleAssignment>>) -> Self {
        self.app_role_assignments = assignments;
        self
    }
}

/// Where users come from.
#[derive(Debug, Clone)]
pub enum UserSource {
    Generated(GeneratedTenant),
    Listed(ListedUsers),
}

impl UserSource {
    pub fn len(&self) -> u64 {
        match self {
            Self::Generated(g) => g.users,
            Self::Listed(l) => l.users.len() as u64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn user(&self, index: u64) -> Option<User> {
        match self {
            Self::Generated(g) => (index < g.users).then(|| g.user(index)),
            Self::Listed(l) => usize::try_from(index)
                .ok()
                .and_then(|i| l.users.get(i))
                .cloned(),
        }
    }

    /// App role assignments as the source defines them (before removals).
    fn app_role_assignments(&self, index: u64) -> Vec<AppRoleAssignment> {
        match self {
            Self::Generated(g) if index < g.users => g.app_role_assignments(index),
            Self::Generated(_) => Vec::new(),
            Self::Listed(l) => usize::try_from(index)
                .ok()
                .and_then(|i| l.app_role_assignments.get(i))
                .cloned()
                .unwrap_or_default(),
        }
    }

    fn index_of_id(&self, id: &str) -> Option<u64> {
        match self {
            Self::Generated(g) => g.index_of_id(id),
            Self::Listed(l) => l.by_id.get(&id.to_ascii_lowercase()).copied(),
        }
    }

    fn index_of_upn(&self, upn: &str) -> Option<u64> {
        match self {
            Self::Generated(g) => g.index_of_upn(upn),
            Self::Listed(l) => l.by_upn.get(&upn.to_lowercase()).copied(),
        }
    }

    fn address_candidates(&self, address: &str) -> Vec<u64> {
        match self {
            Self::Generated(g) => g.address_candidates(address),
            Self::Listed(l) => l
                .by_address
                .get(&address.to_lowercase())
                .cloned()
                .unwrap_or_default(),
        }
    }
}

/// Lowercased addresses a user holds (mail, otherMails, proxyAddresses without prefix).
fn addresses_of(user: &User) -> Vec<String> {
    let mut out: Vec<String> = user.mail.iter().cloned().collect();
    out.extend(user.other_mails.iter().cloned());
    out.extend(
        user.proxy_addresses
            .iter()
            .map(|p| p.split_once(':').map_or(p.as_str(), |(_, a)| a).to_owned()),
    );
    out.push(user.user_principal_name.clone());
    out.iter().map(|a| a.to_lowercase()).collect()
}

/// Whether the user has a mailbox plan that has not lapsed to `Deleted` (NOTES §4).
pub fn has_mailbox_plan(user: &User) -> bool {
    user.assigned_plans.iter().any(|plan| {
        plan.service_plan_id.as_deref().is_some_and(|id| {
            crate::generate::MAILBOX_PLAN_IDS
                .iter()
                .any(|m| m.eq_ignore_ascii_case(id))
        }) && plan.capability_status.as_deref() != Some("Deleted")
    })
}

fn holds_proxy(user: &User, address: &str) -> bool {
    user.proxy_addresses.iter().any(|p| {
        p.split_once(':')
            .is_some_and(|(_, a)| a.eq_ignore_ascii_case(address))
    })
}

/// One recorded invitation.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvitationRecord {
    pub invitation_id: String,
    pub user_id: String,
    pub address: String,
    pub invited_at_ms: u64,
    pub redeem_at_ms: Option<u64>,
}

#[derive(Debug, Default)]
struct MutableState {
    overrides: HashMap<u64, User>,
    created: Vec<User>,
    invitations: HashMap<u64, InvitationRecord>,
    extra_addresses: HashMap<String, HashSet<u64>>,
    invitations_created: u64,
    /// Direct user members taken out of a group (by group position), behind the tool's back.
    removed_members: HashMap<usize, BTreeSet<u64>>,
    /// App role assignment ids taken away from a user (by user index).
    removed_assignments: HashMap<u64, HashSet<String>>,
    /// What users delta reports: the latest change of each user, and the users deleted.
    changes: changes::ChangeLog,
}

/// Why the directory refused a request (mapped to Graph errors by `http`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    #[error(
        "Resource '{0}' does not exist or one of its queried reference-property objects are not present."
    )]
    NotFound(String),
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 412: the request contradicts the object's state.
    #[error("{0}")]
    PreconditionFailed(String),
}

impl DirectoryError {
    fn bad(message: impl Into<String>) -> Self {
        Self::BadRequest {
            code: "BadRequest",
            message: message.into(),
        }
    }

    fn request(message: impl Into<String>) -> Self {
        Self::BadRequest {
            code: "Request_BadRequest",
            message: message.into(),
        }
    }
}

/// The directory: source users + mutation overlay + tenant facts + service rules.
#[derive(Debug)]
pub struct Directory {
    pub facts: TenantFacts,
    pub source: UserSource,
    pub rules: InvitationRules,
    pub redemption: Mutex<RedemptionConfig>,
    seed: u64,
    state: Mutex<MutableState>,
}

impl Directory {
    pub fn new(
        facts: TenantFacts,
        source: UserSource,
        rules: InvitationRules,
        redemption: RedemptionConfig,
        seed: u64,
    ) -> Self {
        Self {
            facts,
            source,
            rules,
            redemption: Mutex::new(redemption),
            seed,
            state: Mutex::new(MutableState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MutableState> {
        crate::lock(&self.state)
    }

    /// Number of users, including guests created by invitations.
    pub fn len(&self) -> u64 {
        self.source.len() + self.lock().created.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The generated case of a user, or the `case` annotation of a tenant-file user.
    pub fn case_of(&self, index: u64) -> Option<String> {
        match &self.source {
            UserSource::Generated(g) if index < g.users => serde_json::to_value(g.case_of(index))
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned)),
            UserSource::Listed(l) => usize::try_from(index)
                .ok()
                .and_then(|i| l.cases.get(i))
                .cloned()
                .flatten(),
            UserSource::Generated(_) => None,
        }
    }

    /// The first generated user of `case` (generated tenants only).
    pub fn find_case(&self, case: UserCase) -> Option<u64> {
        match &self.source {
            UserSource::Generated(g) => g.find(case, 0),
            UserSource::Listed(l) => {
                let name = serde_json::to_value(case).ok()?.as_str()?.to_owned();
                l.cases
                    .iter()
                    .position(|c| c.as_deref() == Some(name.as_str()))
                    .map(|i| i as u64)
            }
        }
    }

    /// Current state of user `index` (with pending automatic redemptions applied).
    pub fn user(&self, index: u64, clock: &SimClock) -> Option<User> {
        let mut state = self.lock();
        self.user_locked(&mut state, index, clock.now_ms())
    }

    /// Runs `f` over users `start..` until it returns `false`, under one lock.
    pub fn scan(&self, start: u64, clock: &SimClock, f: impl FnMut(u64, User) -> bool) {
        self.scan_upn_prefix(start, clock, None, f);
    }

    /// Like [`scan`](Self::scan), but users whose UPN cannot start with `upn_prefix`
    /// (case-insensitive) may be skipped without being built: a generated user's UPN local part
    /// is cheap to compute, the whole user is not, and a `startsWith` partition of a million
    /// users would otherwise build every user of the tenant for every partition. `f` still
    /// gets only users for the filter to decide on; skipping is an optimisation, never a filter.
    pub fn scan_upn_prefix(
        &self,
        start: u64,
        clock: &SimClock,
        upn_prefix: Option<&str>,
        mut f: impl FnMut(u64, User) -> bool,
    ) {
        let now = clock.now_ms();
        let mut state = self.lock();
        let len = self.source.len() + state.created.len() as u64;
        let prefix = upn_prefix.map(str::to_lowercase);
        for index in start..len {
            if let (Some(prefix), UserSource::Generated(tenant)) = (&prefix, &self.source)
                && index < tenant.users
                && !state.overrides.contains_key(&index)
            {
                let local = tenant.upn_local_part(index).to_lowercase();
                // Only a prefix within the local part can be decided from it.
                if prefix.len() <= local.len() && !local.starts_with(prefix.as_str()) {
                    continue;
                }
            }
            let Some(user) = self.user_locked(&mut state, index, now) else {
                continue;
            };
            if !f(index, user) {
                break;
            }
        }
    }

    fn user_locked(&self, state: &mut MutableState, index: u64, now_ms: u64) -> Option<User> {
        let due = state
            .invitations
            .get(&index)
            .and_then(|r| r.redeem_at_ms)
            .filter(|at| *at <= now_ms);
        if let Some(at) = due {
            let mut user = self.base_locked(state, index)?;
            if user.external_user_state.as_deref() == Some("PendingAcceptance") {
                self.accept(&mut user, at);
                self.store_locked(state, index, user);
            }
            if let Some(record) = state.invitations.get_mut(&index) {
                record.redeem_at_ms = None;
            }
        }
        self.base_locked(state, index)
    }

    fn base_locked(&self, state: &MutableState, index: u64) -> Option<User> {
        if state.changes.is_deleted(index) {
            return None;
        }
        if let Some(user) = state.overrides.get(&index) {
            return Some(user.clone());
        }
        let source_len = self.source.len();
        if index >= source_len {
            return usize::try_from(index - source_len)
                .ok()
                .and_then(|i| state.created.get(i))
                .cloned();
        }
        self.source.user(index)
    }

    fn accept(&self, user: &mut User, at_ms: u64) {
        user.external_user_state = Some("Accepted".to_owned());
        user.external_user_state_change_date_time =
            Some(format_unix(i64::try_from(at_ms / 1000).unwrap_or(0)));
        let domain = user
            .mail
            .as_deref()
            .and_then(|m| m.split_once('@'))
            .map(|(_, d)| d.to_owned());
        let issuer = match domain.map(|d| self.facts.realm_of(&d)) {
            Some(RealmKind::Unknown) | None => "mail",
            Some(_) => "ExternalAzureAD",
        };
        if !user
            .identities
            .iter()
            .any(|i| i.sign_in_type.as_deref() == Some("federated"))
        {
            user.identities.push(ObjectIdentity {
                sign_in_type: Some("federated".to_owned()),
                issuer: Some(issuer.to_owned()),
                issuer_assigned_id: None,
            });
        }
    }

    /// Positions in the org contact listing (some may be empty slots).
    pub fn contact_positions(&self) -> u64 {
        match &self.source {
            UserSource::Generated(g) => g.contact_positions(),
            UserSource::Listed(_) => self.facts.contacts.len() as u64,
        }
    }

    /// The org contact at listing `position`, if that slot holds one.
    pub fn contact_at(&self, position: u64) -> Option<OrgContact> {
        match &self.source {
            UserSource::Generated(g) => g.contact_at(position),
            UserSource::Listed(_) => usize::try_from(position)
                .ok()
                .and_then(|i| self.facts.contacts.get(i))
                .cloned(),
        }
    }

    /// The org contact that answers to `address` (`mail` or an `smtp:` proxy address).
    pub fn contact_holding(&self, address: &str) -> Option<OrgContact> {
        match &self.source {
            UserSource::Generated(g) => g.contact_holding(address),
            UserSource::Listed(_) => self
                .facts
                .contacts
                .iter()
                .find(|c| c.holds(address))
                .cloned(),
        }
    }

    /// Resolves an id or UPN (as in `/users/{id | userPrincipalName}`) to an index.
    pub fn resolve(&self, key: &str) -> Option<u64> {
        if let Some(i) = self
            .source
            .index_of_id(key)
            .or_else(|| self.source.index_of_upn(key))
        {
            return Some(i);
        }
        let state = self.lock();
        let source_len = self.source.len();
        state
            .created
            .iter()
            .position(|u| {
                u.id.eq_ignore_ascii_case(key) || u.user_principal_name.eq_ignore_ascii_case(key)
            })
            .map(|p| source_len + p as u64)
    }

    /// Another object (not `except`) that holds `address` as a proxy address.
    fn proxy_holder(
        &self,
        state: &mut MutableState,
        address: &str,
        except: Option<u64>,
        now_ms: u64,
    ) -> Option<User> {
        let mut candidates = self.source.address_candidates(address);
        if let Some(extra) = state.extra_addresses.get(&address.to_lowercase()) {
            candidates.extend(extra.iter().copied());
        }
        candidates.sort_unstable();
        candidates.dedup();
        candidates
            .into_iter()
            .filter(|c| Some(*c) != except)
            .filter_map(|c| self.user_locked(state, c, now_ms))
            .find(|u| holds_proxy(u, address))
    }

    /// Number of invitations successfully created since start.
    pub fn invitations_created(&self) -> u64 {
        self.lock().invitations_created
    }

    /// The invitation record of a user, if any.
    pub fn invitation_of(&self, index: u64) -> Option<InvitationRecord> {
        self.lock().invitations.get(&index).cloned()
    }

    fn store_locked(&self, state: &mut MutableState, index: u64, user: User) {
        state.changes.record(index);
        let source_len = self.source.len();
        if index >= source_len {
            if let Some(slot) = usize::try_from(index - source_len)
                .ok()
                .and_then(|i| state.created.get_mut(i))
            {
                *slot = user;
            }
        } else {
            state.overrides.insert(index, user);
        }
    }

    fn resolve_locked(&self, state: &MutableState, key: &str) -> Option<u64> {
        if let Some(i) = self
            .source
            .index_of_id(key)
            .or_else(|| self.source.index_of_upn(key))
        {
            return Some(i);
        }
        state
            .created
            .iter()
            .position(|u| {
                u.id.eq_ignore_ascii_case(key) || u.user_principal_name.eq_ignore_ascii_case(key)
            })
            .map(|p| self.source.len() + p as u64)
    }

    /// Sets the redemption behaviour at runtime.
    pub fn set_redemption(&self, config: RedemptionConfig) {
        *crate::lock(&self.redemption) = config;
    }

    /// The members of a group: merged user ranges, org contacts (listing positions, each
    /// once) and member-group positions. Users removed from a group no longer count as its
    /// members (nor, through it, as a parent's).
    pub fn members(&self, group: usize, transitive: bool) -> GroupMembers {
        let removed = self.lock().removed_members.clone();
        let mut ranges = Vec::new();
        let mut contacts = BTreeSet::new();
        let mut groups = Vec::new();
        let mut seen = HashSet::new();
        let mut stack = vec![group];
        let mut first = true;
        while let Some(position) = stack.pop() {
            if !seen.insert(position) {
                continue;
            }
            let Some(g) = self.facts.groups.get(position) else {
                continue;
            };
            if !first {
                groups.push(position);
            }
            let gone = removed.get(&position);
            contacts.extend(g.contacts.iter().copied());
            ranges.extend(
                g.user_ranges
                    .iter()
                    .filter(|r| !r.is_empty())
                    .flat_map(|r| without(r, gone)),
            );
            if transitive {
                stack.extend(g.nested.iter().rev().copied());
            } else if first {
                groups.extend(g.nested.iter().copied());
            }
            first = false;
        }
        GroupMembers {
            users: merge_ranges(ranges),
            contacts: contacts.into_iter().collect(),
            groups,
        }
    }
}

impl Directory {
    /// Whether user `index` is a direct member of group `group` (a position) right now.
    fn is_direct_member(state: &MutableState, group: &Group, position: usize, index: u64) -> bool {
        group.user_ranges.iter().any(|r| r.contains(&index))
            && !state
                .removed_members
                .get(&position)
                .is_some_and(|gone| gone.contains(&index))
    }

    /// The groups (positions, in tenant order) user `index` is a direct member of: exactly
    /// the groups whose direct members list the user.
    pub fn member_of(&self, index: u64) -> Vec<usize> {
        let state = self.lock();
        self.facts
            .groups
            .iter()
            .enumerate()
            .filter(|(position, group)| Self::is_direct_member(&state, group, *position, index))
            .map(|(position, _)| position)
            .collect()
    }

    /// Takes user `index` out of group `group` (a position): `DELETE
    /// /groups/{id}/members/{id}/$ref`. Not found when the user is not a direct member.
    pub fn remove_group_member(&self, group: usize, index: u64) -> Result<(), DirectoryError> {
        let mut state = self.lock();
        let not_found = || {
            let id = self
                .base_locked(&state, index)
                .map_or_else(|| index.to_string(), |u| u.id);
            DirectoryError::NotFound(id)
        };
        let Some(g) = self.facts.groups.get(group) else {
            return Err(not_found());
        };
        if !Self::is_direct_member(&state, g, group, index) {
            return Err(not_found());
        }
        state
            .removed_members
            .entry(group)
            .or_default()
            .insert(index);
        Ok(())
    }

    /// User `index`'s app role assignments now (without those removed).
    pub fn app_role_assignments(&self, index: u64) -> Vec<AppRoleAssignment> {
        let mut assignments = self.source.app_role_assignments(index);
        if let Some(gone) = self.lock().removed_assignments.get(&index) {
            assignments.retain(|a| !gone.contains(&a.id));
        }
        assignments
    }

    /// Takes app role assignment `id` away from user `index`.
    pub fn remove_app_role_assignment(
        &self,
        index: u64,
        id: &str,
    ) -> Result<AppRoleAssignment, DirectoryError> {
        let current = self.app_role_assignments(index);
        let Some(found) = current.into_iter().find(|a| a.id == id) else {
            return Err(DirectoryError::NotFound(id.to_owned()));
        };
        self.lock()
            .removed_assignments
            .entry(index)
            .or_default()
            .insert(found.id.clone());
        Ok(found)
    }
}

/// `range` without the indexes in `gone` (split around them).
fn without(range: &Range<u64>, gone: Option<&BTreeSet<u64>>) -> Vec<Range<u64>> {
    let Some(gone) = gone else {
        return vec![range.clone()];
    };
    let mut out = Vec::new();
    let mut start = range.start;
    for &index in gone.range(range.clone()) {
        if start < index {
            out.push(start..index);
        }
        start = index + 1;
    }
    if start < range.end {
        out.push(start..range.end);
    }
    out
}

/// Sorts and merges overlapping/adjacent ranges (so each user appears once).
fn merge_ranges(mut ranges: Vec<Range<u64>>) -> Vec<Range<u64>> {
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::new();
    for range in ranges {
        match out.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => out.push(range),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_indexes_split_a_range() {
        let gone: BTreeSet<u64> = [0, 3, 4, 9, 20].into_iter().collect();
        assert_eq!(without(&(0..10), Some(&gone)), vec![1..3, 5..9]);
        assert_eq!(without(&(5..8), None), vec![5..8]);
        assert_eq!(without(&(3..5), Some(&gone)), Vec::<Range<u64>>::new());
    }

    #[test]
    fn ranges_merge() {
        assert_eq!(
            merge_ranges(vec![5..9, 0..3, 2..4, 9..10]),
            vec![0..4, 5..10]
        );
    }
}
