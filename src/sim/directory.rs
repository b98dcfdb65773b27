//! The simulated directory: users (generated or listed) plus every change made to them.
//!
//! Owns the tenant's facts (domains, federation, realms, groups, apps), the overlay of
//! mutations (`PATCHed` properties, invitations, redemptions, newly invited guests) and the
//! service-side rules of `POST /invitations` and `PATCH /users/{id}`. It must not know HTTP:
//! it returns typed outcomes and errors that `http` turns into Graph responses.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::clock::SimClock;
use super::generate::{GeneratedTenant, UserCase, format_unix};
use super::model::{
    AppRegistration, Domain, FederationConfiguration, ObjectIdentity, RealmKind, User,
};
use super::rng::{keyed, stable_guid};

/// Characters the invitation service refuses in an address (NOTES §1.1).
pub const FORBIDDEN_ADDRESS_CHARACTERS: &[char] = &[
    '~', '!', '#', '$', '%', '^', '&', '*', '(', ')', '+', '=', '[', ']', '{', '}', '\\', '/', '|',
    ';', ':', '"', '<', '>', '?', ',',
];

/// Service messages the simulator uses for invitation and update failures.
pub mod messages {
    pub const VERIFIED_DOMAIN: &str = "User's email address cannot be in a verified domain. Please change the user's email to enable conversion to a B2B user.";
    pub const ON_PREMISES_UPN: &str = "User invitation failed. Invalid request input.";
    pub const PROXY_COLLISION: &str =
        "Another object with the same value for property proxyAddresses already exists.";
    pub const ADDRESS_NOT_ON_USER: &str = "The invited user's email address must match the mail property of the user object. Please set the user's mail property to the email address before converting the user to a B2B user.";
    pub const ALREADY_REDEEMED: &str =
        "The user has already redeemed an invitation. Set resetRedemption to re-invite the user.";
    pub const ALREADY_INVITED: &str = "The user already has a pending invitation.";
    pub const SYNCED_PROPERTIES: &str = "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration.";
    pub const MAILBOX_PROPERTIES: &str = "Unable to update the specified properties for objects that have originated within an external service.";
}

/// How `POST /invitations` treats cases Microsoft does not document (NOTES §1.6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InvitationRules {
    /// Which of the user's addresses the invitation address must be.
    pub address_must_be: AddressRule,
    /// A user already `PendingAcceptance` is invited again.
    pub when_pending: RepeatPolicy,
    /// A user already `Accepted` is invited again without `resetRedemption`.
    pub when_accepted: RepeatPolicy,
    /// `PATCH mail` on a user with an Exchange mailbox plan fails.
    pub mailbox_blocks_mail_update: bool,
}

impl Default for InvitationRules {
    fn default() -> Self {
        Self {
            address_must_be: AddressRule::Mail,
            when_pending: RepeatPolicy::Resend,
            when_accepted: RepeatPolicy::Reject,
            mailbox_blocks_mail_update: true,
        }
    }
}

/// Which user property must hold the invitation address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AddressRule {
    /// `mail` must equal the address (current Microsoft article).
    Mail,
    /// `mail` or one of `otherMails`.
    MailOrOtherMails,
    /// Any address is accepted.
    Any,
}

/// What happens when an already-converted user is invited again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RepeatPolicy {
    /// 201 again; the state becomes/stays `PendingAcceptance`.
    Resend,
    /// 400 `BadRequest`.
    Reject,
}

/// Automatic redemption of invitations (in simulated time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RedemptionConfig {
    /// Fraction (0–1) of invited users who redeem on their own.
    pub fraction: f64,
    /// How long after the invitation they redeem (simulated time).
    #[serde(with = "duration_secs")]
    pub after: Duration,
}

impl Default for RedemptionConfig {
    fn default() -> Self {
        Self {
            fraction: 0.0,
            after: Duration::from_hours(1),
        }
    }
}

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
    /// Positions (in `TenantFacts::groups`) of nested groups.
    pub nested: Vec<usize>,
}

/// Everything about the tenant except its users.
#[derive(Debug, Clone)]
pub struct TenantFacts {
    pub tenant_id: String,
    pub display_name: String,
    pub domains: Vec<Domain>,
    pub federation: Vec<FederationConfiguration>,
    pub realms: BTreeMap<String, RealmKind>,
    pub groups: Vec<Group>,
    pub apps: Vec<AppRegistration>,
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

/// Users given explicitly (tenant file), with lookup indexes.
#[derive(Debug, Clone, Default)]
pub struct ListedUsers {
    pub users: Vec<User>,
    pub cases: Vec<Option<String>>,
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
}

/// The body of `POST /invitations`, already parsed.
#[derive(Debug, Clone, Default)]
pub struct InvitationRequest {
    pub email: String,
    pub redirect_url: String,
    pub display_name: Option<String>,
    pub user_type: Option<String>,
    pub send_message: bool,
    pub reset_redemption: bool,
    pub invited_user_id: Option<String>,
}

/// A successful invitation.
#[derive(Debug, Clone)]
pub struct Invitation {
    pub id: String,
    pub user: User,
    pub status: &'static str,
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
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
    pub fn scan(&self, start: u64, clock: &SimClock, mut f: impl FnMut(u64, User) -> bool) {
        let now = clock.now_ms();
        let mut state = self.lock();
        let len = self.source.len() + state.created.len() as u64;
        for index in start..len {
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
                state.overrides.insert(index, user);
            }
            if let Some(record) = state.invitations.get_mut(&index) {
                record.redeem_at_ms = None;
            }
        }
        self.base_locked(state, index)
    }

    fn base_locked(&self, state: &MutableState, index: u64) -> Option<User> {
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

    /// `POST /invitations`: validates like the service, then converts or creates the user.
    #[allow(clippy::too_many_lines)] // one linear sequence of checks in the order the service makes them
    pub fn invite(
        &self,
        request: &InvitationRequest,
        clock: &SimClock,
    ) -> Result<Invitation, DirectoryError> {
        let now = clock.now_ms();
        let address = request.email.trim().to_owned();
        if address.is_empty() {
            return Err(DirectoryError::bad(
                "Invalid request input: invitedUserEmailAddress is required.",
            ));
        }
        if request.redirect_url.trim().is_empty() {
            return Err(DirectoryError::bad(
                "Invalid request input: inviteRedirectUrl is required.",
            ));
        }
        let domain = validate_address(&address)?;
        let mut state = self.lock();
        let (index, mut user) = if let Some(id) = &request.invited_user_id {
            let index = self
                .resolve_locked(&state, id)
                .ok_or_else(|| DirectoryError::NotFound(id.clone()))?;
            let user = self
                .user_locked(&mut state, index, now)
                .ok_or_else(|| DirectoryError::NotFound(id.clone()))?;
            if user.on_premises_user_principal_name.is_some() {
                return Err(DirectoryError::bad(messages::ON_PREMISES_UPN));
            }
            if self.facts.verified_domain_of(&domain).is_some() {
                return Err(DirectoryError::bad(messages::VERIFIED_DOMAIN));
            }
            let on_user = match self.rules.address_must_be {
                AddressRule::Mail => user
                    .mail
                    .as_deref()
                    .is_some_and(|m| m.eq_ignore_ascii_case(&address)),
                AddressRule::MailOrOtherMails => {
                    user.mail
                        .as_deref()
                        .is_some_and(|m| m.eq_ignore_ascii_case(&address))
                        || user
                            .other_mails
                            .iter()
                            .any(|m| m.eq_ignore_ascii_case(&address))
                }
                AddressRule::Any => true,
            };
            if !on_user {
                return Err(DirectoryError::bad(messages::ADDRESS_NOT_ON_USER));
            }
            if self
                .proxy_holder(&mut state, &address, Some(index), now)
                .is_some()
            {
                return Err(DirectoryError::bad(messages::PROXY_COLLISION));
            }
            match (
                user.external_user_state.as_deref(),
                request.reset_redemption,
            ) {
                (Some("Accepted"), false) if self.rules.when_accepted == RepeatPolicy::Reject => {
                    return Err(DirectoryError::bad(messages::ALREADY_REDEEMED));
                }
                (Some("PendingAcceptance"), false)
                    if self.rules.when_pending == RepeatPolicy::Reject =>
                {
                    return Err(DirectoryError::bad(messages::ALREADY_INVITED));
                }
                _ => {}
            }
            (index, user)
        } else {
            if self.facts.verified_domain_of(&domain).is_some() {
                return Err(DirectoryError::bad(messages::VERIFIED_DOMAIN));
            }
            if let Some(holder) = self.proxy_holder(&mut state, &address, None, now) {
                if holder.external_user_state.is_none() {
                    return Err(DirectoryError::bad(format!(
                        "The invited user already exists in the directory as objectID: {}. They can use that account to sign in to shared apps and resources.",
                        holder.id
                    )));
                }
                let index = self
                    .resolve_locked(&state, &holder.id)
                    .ok_or_else(|| DirectoryError::NotFound(holder.id.clone()))?;
                (index, holder)
            } else {
                let user = self.new_guest(&state, &address, request);
                let index = self.source.len() + state.created.len() as u64;
                state.created.push(user.clone());
                state
                    .extra_addresses
                    .entry(address.to_lowercase())
                    .or_default()
                    .insert(index);
                (index, user)
            }
        };
        user.external_user_state = Some("PendingAcceptance".to_owned());
        user.external_user_state_change_date_time =
            Some(format_unix(i64::try_from(now / 1000).unwrap_or(0)));
        if request.reset_redemption {
            user.identities
                .retain(|i| i.sign_in_type.as_deref() != Some("federated"));
        }
        state.invitations_created += 1;
        let invitation_id = stable_guid(self.seed, 0x1417, state.invitations_created);
        let redemption = self
            .redemption
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        #[allow(clippy::cast_precision_loss)]
        // a hash mapped onto [0, 1) only needs approximate precision
        let roll = (keyed(self.seed, 0x2ED, index) % 1_000_000) as f64 / 1_000_000.0;
        let redeem_at_ms = (roll < redemption.fraction)
            .then(|| now + u64::try_from(redemption.after.as_millis()).unwrap_or(u64::MAX));
        state.invitations.insert(
            index,
            InvitationRecord {
                invitation_id: invitation_id.clone(),
                user_id: user.id.clone(),
                address,
                invited_at_ms: now,
                redeem_at_ms,
            },
        );
        self.store_locked(&mut state, index, user.clone());
        Ok(Invitation {
            id: invitation_id,
            user,
            status: "PendingAcceptance",
        })
    }

    fn store_locked(&self, state: &mut MutableState, index: u64, user: User) {
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

    fn new_guest(&self, state: &MutableState, address: &str, request: &InvitationRequest) -> User {
        let upn = format!(
            "{}#EXT#@{}",
            address.replace('@', "_"),
            self.facts.initial_domain()
        );
        let serial = state.created.len() as u64;
        User {
            id: stable_guid(self.seed, 0x6E57, serial),
            display_name: request
                .display_name
                .clone()
                .or_else(|| address.split('@').next().map(str::to_owned)),
            given_name: None,
            surname: None,
            user_principal_name: upn,
            mail: Some(address.to_owned()),
            other_mails: Vec::new(),
            proxy_addresses: vec![format!("SMTP:{address}")],
            user_type: Some(
                request
                    .user_type
                    .clone()
                    .unwrap_or_else(|| "Guest".to_owned()),
            ),
            account_enabled: Some(true),
            creation_type: Some("Invitation".to_owned()),
            external_user_state: None,
            external_user_state_change_date_time: None,
            on_premises_sync_enabled: None,
            on_premises_immutable_id: None,
            on_premises_sam_account_name: None,
            on_premises_distinguished_name: None,
            on_premises_domain_name: None,
            on_premises_user_principal_name: None,
            assigned_licenses: Vec::new(),
            assigned_plans: Vec::new(),
            provisioned_plans: Vec::new(),
            identities: Vec::new(),
            business_phones: Vec::new(),
            job_title: None,
            mobile_phone: None,
            office_location: None,
            preferred_language: None,
        }
    }

    /// The admin "user redeems now" call: `PendingAcceptance` -> `Accepted`.
    pub fn redeem(&self, index: u64, clock: &SimClock) -> Result<User, DirectoryError> {
        let now = clock.now_ms();
        let mut state = self.lock();
        let mut user = self
            .user_locked(&mut state, index, now)
            .ok_or_else(|| DirectoryError::NotFound(index.to_string()))?;
        if user.external_user_state.as_deref() != Some("PendingAcceptance") {
            return Err(DirectoryError::bad(format!(
                "User {} has no pending invitation (externalUserState is {}).",
                user.id,
                user.external_user_state.as_deref().unwrap_or("null")
            )));
        }
        self.accept(&mut user, now);
        if let Some(record) = state.invitations.get_mut(&index) {
            record.redeem_at_ms = None;
        }
        self.store_locked(&mut state, index, user.clone());
        Ok(user)
    }

    /// `PATCH /users/{id}` with Graph's update rules for the properties the simulator models.
    #[allow(clippy::too_many_lines)] // one linear sequence of checks in the order the service makes them
    pub fn patch(
        &self,
        index: u64,
        body: &Map<String, Value>,
        clock: &SimClock,
    ) -> Result<(), DirectoryError> {
        const READ_ONLY: &[&str] = &[
            "id",
            "externalUserState",
            "externalUserStateChangeDateTime",
            "creationType",
            "onPremisesSyncEnabled",
            "onPremisesImmutableId",
            "onPremisesSamAccountName",
            "onPremisesDistinguishedName",
            "onPremisesDomainName",
            "onPremisesUserPrincipalName",
            "proxyAddresses",
            "assignedPlans",
            "provisionedPlans",
            "assignedLicenses",
        ];
        const SYNC_MASTERED: &[&str] = &[
            "mail",
            "displayName",
            "givenName",
            "surname",
            "accountEnabled",
            "userPrincipalName",
            "jobTitle",
        ];
        let now = clock.now_ms();
        let mut state = self.lock();
        let mut user = self
            .user_locked(&mut state, index, now)
            .ok_or_else(|| DirectoryError::NotFound(index.to_string()))?;
        for key in body.keys() {
            if READ_ONLY.contains(&key.as_str()) {
                return Err(DirectoryError::request(format!(
                    "Property '{key}' is read-only and cannot be set."
                )));
            }
            if !super::model::USER_PROPERTIES.contains(&key.as_str()) {
                return Err(DirectoryError::bad(format!(
                    "Property '{key}' does not exist as a declared property or extension property."
                )));
            }
            if user.on_premises_sync_enabled == Some(true) && SYNC_MASTERED.contains(&key.as_str())
            {
                return Err(DirectoryError::request(messages::SYNCED_PROPERTIES));
            }
        }
        let invalid = |key: &str| {
            DirectoryError::request(format!(
                "Invalid value specified for property '{key}' of resource 'User'."
            ))
        };
        let string_or_null = |key: &str| -> Result<Option<String>, DirectoryError> {
            match &body[key] {
                Value::Null => Ok(None),
                Value::String(s) => Ok(Some(s.clone())),
                _ => Err(invalid(key)),
            }
        };
        for key in body.keys() {
            match key.as_str() {
                "mail" => {
                    let new_mail = string_or_null("mail")?;
                    if let Some(mail) = &new_mail {
                        let domain = validate_address(mail).map_err(|_| invalid("mail"))?;
                        let has_mailbox = user.assigned_plans.iter().any(|p| {
                            p.service_plan_id.as_deref().is_some_and(|id| {
                                id == super::generate::EXCHANGE_S_ENTERPRISE
                                    || id == super::generate::EXCHANGE_S_STANDARD
                            })
                        });
                        if has_mailbox
                            && self.rules.mailbox_blocks_mail_update
                            && self.facts.verified_domain_of(&domain).is_none()
                        {
                            return Err(DirectoryError::request(messages::MAILBOX_PROPERTIES));
                        }
                        if self
                            .proxy_holder(&mut state, mail, Some(index), now)
                            .is_some()
                        {
                            return Err(DirectoryError::request(messages::PROXY_COLLISION));
                        }
                        for proxy in &mut user.proxy_addresses {
                            if let Some(rest) = proxy.strip_prefix("SMTP:") {
                                *proxy = format!("smtp:{rest}");
                            }
                        }
                        user.proxy_addresses.retain(|p| {
                            !p.split_once(':')
                                .is_some_and(|(_, a)| a.eq_ignore_ascii_case(mail))
                        });
                        user.proxy_addresses.insert(0, format!("SMTP:{mail}"));
                        state
                            .extra_addresses
                            .entry(mail.to_lowercase())
                            .or_default()
                            .insert(index);
                    }
                    user.mail = new_mail;
                }
                "otherMails" => {
                    let Value::Array(items) = &body[key] else {
                        return Err(invalid(key));
                    };
                    let mut mails = Vec::new();
                    for item in items {
                        let Value::String(s) = item else {
                            return Err(invalid(key));
                        };
                        state
                            .extra_addresses
                            .entry(s.to_lowercase())
                            .or_default()
                            .insert(index);
                        mails.push(s.clone());
                    }
                    user.other_mails = mails;
                }
                "accountEnabled" => {
                    user.account_enabled = Some(body[key].as_bool().ok_or_else(|| invalid(key))?);
                }
                "displayName" => user.display_name = string_or_null(key)?,
                "givenName" => user.given_name = string_or_null(key)?,
                "surname" => user.surname = string_or_null(key)?,
                "jobTitle" => user.job_title = string_or_null(key)?,
                "userType" => match string_or_null(key)?.as_deref() {
                    Some(t @ ("Member" | "Guest")) => user.user_type = Some(t.to_owned()),
                    _ => return Err(invalid(key)),
                },
                other => {
                    return Err(DirectoryError::request(format!(
                        "Updating property '{other}' is not supported by the simulator."
                    )));
                }
            }
        }
        self.store_locked(&mut state, index, user);
        Ok(())
    }

    /// Sets the redemption behaviour at runtime.
    pub fn set_redemption(&self, config: RedemptionConfig) {
        *self
            .redemption
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = config;
    }

    /// The members of a group: merged user ranges and member-group positions.
    pub fn members(&self, group: usize, transitive: bool) -> (Vec<Range<u64>>, Vec<usize>) {
        let mut ranges = Vec::new();
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
            ranges.extend(g.user_ranges.iter().filter(|r| !r.is_empty()).cloned());
            if transitive {
                stack.extend(g.nested.iter().rev().copied());
            } else if first {
                groups.extend(g.nested.iter().copied());
            }
            first = false;
        }
        (merge_ranges(ranges), groups)
    }
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

/// Checks an address against the invitation service's syntax rules; returns its domain.
pub fn validate_address(address: &str) -> Result<String, DirectoryError> {
    let invalid = || {
        DirectoryError::bad(format!(
            "The email address '{address}' is invalid. Please enter a valid email address."
        ))
    };
    let (local, domain) = address.rsplit_once('@').ok_or_else(invalid)?;
    if local.is_empty() || domain.is_empty() || !domain.contains('.') || local.contains('@') {
        return Err(invalid());
    }
    if address
        .chars()
        .any(|c| FORBIDDEN_ADDRESS_CHARACTERS.contains(&c) || c.is_whitespace())
    {
        return Err(invalid());
    }
    for edge in [local.chars().next(), local.chars().last()] {
        if matches!(edge, Some('.' | '-')) {
            return Err(invalid());
        }
    }
    Ok(domain.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_rules_follow_the_documented_character_list() {
        assert!(validate_address("ada.lovelace@fabrikam.com").is_ok());
        assert!(validate_address("ada_lovelace@fabrikam.com").is_ok());
        assert!(
            validate_address("ada+x@fabrikam.com").is_err(),
            "+ is forbidden"
        );
        assert!(validate_address("ada#x@fabrikam.com").is_err());
        assert!(validate_address(".ada@fabrikam.com").is_err());
        assert!(validate_address("ada-@fabrikam.com").is_err());
        assert!(validate_address("no-at-sign").is_err());
    }

    #[test]
    fn ranges_merge() {
        assert_eq!(
            merge_ranges(vec![5..9, 0..3, 2..4, 9..10]),
            vec![0..4, 5..10]
        );
    }
}
