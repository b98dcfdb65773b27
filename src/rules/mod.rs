//! Eligibility: for one user snapshot, the tenant's facts and the operator's policy, decide
//! whether the user can be converted, at which address, with which preparatory step, and why
//! not (DESIGN.md, "Eligibility rules"; NOTES.md §1–§6).
//!
//! Pure: no I/O, no clock, no globals. What the rules need from elsewhere (verified and
//! federated domains, realm answers, who else owns an address) arrives already loaded. Every
//! finding carries a stable [`Reason`] whose explanation and fix live in `reasons.rs` and
//! `docs/rules.md`.

pub mod address;
mod drift;
mod reasons;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use address::{AddressOrigin, ChosenAddress, DomainSet};
pub use drift::{changed_rule_inputs, only_mail_was_set};
pub use reasons::Reason;

use crate::domain::{Decision, RealmKind, Rule, RuleMode, UserId, UserSnapshot};
use address::{AddressInputs, NoChoice};

/// Exchange Online service plans that give the user a mailbox (NOTES.md §4). Checked by plan
/// id, never by service name: `EXCHANGE_S_FOUNDATION` also says `exchange` but is no mailbox.
pub const MAILBOX_PLANS: [Uuid; 7] = [
    uuid::uuid!("9aaf7827-d63c-4b61-89c3-182f06f82e5c"), // EXCHANGE_S_STANDARD
    uuid::uuid!("efb87545-963c-4e0d-99df-69c6916d9eb0"), // EXCHANGE_S_ENTERPRISE
    uuid::uuid!("4a82b400-a79f-41a4-b4e2-e94f5787b113"), // EXCHANGE_S_DESKLESS
    uuid::uuid!("1126bef5-da20-4f07-b45e-ad25d2581aa8"), // EXCHANGE_S_ESSENTIALS
    uuid::uuid!("90927877-dcff-4af6-b346-2332c0b15bb7"), // EXCHANGE_B_STANDARD
    uuid::uuid!("e9b4930a-925f-45e2-ac2a-3f7788ca6fdd"), // EXCHANGE_S_STANDARD_GOV
    uuid::uuid!("8c3069c0-ccdb-44be-ab77-986203a67df2"), // EXCHANGE_S_ENTERPRISE_GOV
];

/// Non-mailbox Exchange-family service plans (NOTES §4, the licensing reference's ids): a
/// practitioner report says Entra scrubs unverified-domain addresses — the external `mail` an
/// invitation needs — from users holding any of them ("proxy scrubbing", unverified by
/// Microsoft), so the `exchange-add-on-plan` rule warns about them. The one list of built-in
/// ids; `exchange.add_on_plans` in the configuration adds more ([`Policy::exchange_add_on_plans`]).
/// `EXCHANGE_S_FOUNDATION` is left out: it comes with many licences that have no mail at all.
pub const EXCHANGE_ADD_ON_PLANS: [(Uuid, &str); 6] = [
    (
        uuid::uuid!("176a09a6-7ec5-4039-ac02-b2791c6ba793"),
        "EXCHANGE_S_ARCHIVE_ADDON",
    ),
    (
        uuid::uuid!("da040e0a-b393-4bea-bb76-928b3fa1cf5a"),
        "EXCHANGE_S_ARCHIVE",
    ),
    (
        uuid::uuid!("326e2b78-9d27-42c9-8509-46c827743a17"),
        "EOP_ENTERPRISE",
    ),
    (
        uuid::uuid!("75badc48-628e-4446-8460-41344d73abd6"),
        "EOP_ENTERPRISE_PREMIUM",
    ),
    (
        uuid::uuid!("34c0d7a0-a70f-4668-9238-47f9fc208882"),
        "EXCHANGE_ANALYTICS",
    ),
    (
        uuid::uuid!("cd31b152-6326-4d1b-ae1b-997b625182e6"),
        "MIP_S_Exchange",
    ),
];

/// Plan states in which the mailbox (and its data) still exists.
const LIVE_PLAN_STATES: [&str; 4] = ["Enabled", "Warning", "Suspended", "LockedOut"];

/// Identity issuers that mean the account already signs in elsewhere (after a redemption).
const EXTERNAL_ISSUERS: [&str; 3] = ["ExternalAzureAD", "MicrosoftAccount", "mail"];

/// How the operator wants the rules applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub modes: BTreeMap<Rule, RuleMode>,
    /// Set `mail` to the invitation address first when it differs (cloud-only users).
    pub set_mail_before_invite: bool,
    /// Accept a wave-list address that is not among the user's addresses.
    pub allow_new_address: bool,
    /// Plan ids the `exchange-add-on-plan` rule looks for beyond [`EXCHANGE_ADD_ON_PLANS`]
    /// (configuration `exchange.add_on_plans`).
    pub exchange_add_on_plans: Vec<Uuid>,
}

impl Policy {
    pub fn mode(&self, rule: Rule) -> RuleMode {
        self.modes
            .get(&rule)
            .copied()
            .unwrap_or_else(|| rule.default_mode())
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            modes: BTreeMap::new(),
            set_mail_before_invite: true,
            allow_new_address: false,
            exchange_add_on_plans: Vec::new(),
        }
    }
}

/// What the rules know about the tenant.
#[derive(Clone, Debug, Default)]
pub struct TenantView {
    pub verified_domains: DomainSet,
    pub federation_domains: DomainSet,
    /// Realm answers by lower-case domain; a domain missing here was not (or could not be)
    /// looked up.
    pub realms: HashMap<String, RealmKind>,
}

/// Another directory object that already answers to an address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collision {
    pub object_id: String,
    /// The property holding the address there (`mail`, `proxyAddresses`, …).
    pub property: String,
    /// What the object is: another user, or an org contact (named in the finding).
    #[serde(default)]
    pub kind: OwnerKind,
}

/// The kind of directory object that holds an address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OwnerKind {
    #[default]
    User,
    /// An org contact (`orgContact`), with its display name when it has one.
    OrgContact { display_name: Option<String> },
}

impl fmt::Display for Collision {
    /// `<id> (<property>)` for a user, `org contact "<name>" <id> (<property>)` for a contact.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            OwnerKind::User => {}
            OwnerKind::OrgContact {
                display_name: Some(name),
            } => write!(f, "org contact \"{name}\" ")?,
            OwnerKind::OrgContact { display_name: None } => f.write_str("org contact ")?,
        }
        write!(f, "{} ({})", self.object_id, self.property)
    }
}

/// Who else owns an address; the planner answers from the stored snapshot.
pub trait AddressBook {
    /// Objects other than `user` that answer to `address` (compared case-insensitively).
    fn owners(&self, address: &str, user: UserId) -> Vec<Collision>;
}

/// Owners by lower-cased address: what the planner loads from the stored address index.
impl<S: std::hash::BuildHasher> AddressBook for HashMap<String, Vec<Collision>, S> {
    fn owners(&self, address: &str, user: UserId) -> Vec<Collision> {
        let me = user.to_string();
        self.get(&address.to_lowercase())
            .into_iter()
            .flatten()
            .filter(|c| c.object_id != me)
            .cloned()
            .collect()
    }
}

/// One user to evaluate, with what the wave says about them.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    pub user: &'a UserSnapshot,
    /// The address the wave list names for this user.
    pub override_address: Option<&'a str>,
    /// Why the operator excluded the user, if they did.
    pub excluded: Option<&'a str>,
    /// The other waves (not yet done with the user) that also plan this user.
    pub other_waves: &'a [String],
}

/// How much a finding weighs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// The user is not converted.
    Blocker,
    /// Reported; the user is converted anyway.
    Warning,
    /// Context for the report.
    Info,
}

/// One reason about one user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub reason: Reason,
    pub severity: Severity,
    /// The specifics: which address, which plan, which other object.
    pub detail: String,
}

/// The verdict on one user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluation {
    pub user: UserId,
    pub decision: Decision,
    pub address: Option<ChosenAddress>,
    /// `run` sets `mail` to the address before inviting.
    pub set_mail: bool,
    pub findings: Vec<Finding>,
}

impl Evaluation {
    fn add(&mut self, reason: Reason, severity: Severity, detail: impl Into<String>) {
        self.findings.push(Finding {
            reason,
            severity,
            detail: detail.into(),
        });
    }

    /// Adds the finding of a switchable rule with the severity its mode gives.
    fn apply(&mut self, policy: &Policy, reason: Reason, detail: impl Into<String>) {
        let rule = reason
            .rule()
            .expect("only switchable reasons are applied by mode");
        match policy.mode(rule) {
            RuleMode::Enforce => self.add(reason, Severity::Blocker, detail),
            RuleMode::Warn => self.add(reason, Severity::Warning, detail),
            RuleMode::Off => {}
        }
    }

    fn settle(&mut self) {
        self.findings.sort_by_key(|f| (f.severity, f.reason));
        self.decision = if self
            .findings
            .iter()
            .any(|f| f.severity == Severity::Blocker)
        {
            Decision::Blocked
        } else {
            Decision::Eligible
        };
    }

    /// The reason codes, blockers first, for storing.
    pub fn reason_codes(&self) -> Vec<String> {
        self.findings
            .iter()
            .map(|f| f.reason.code().to_owned())
            .collect()
    }
}

/// Evaluates one user. Every check runs, so a report shows all of a user's problems at once.
pub fn evaluate(
    candidate: Candidate<'_>,
    tenant: &TenantView,
    policy: &Policy,
    addresses: &dyn AddressBook,
) -> Evaluation {
    let user = candidate.user;
    let mut eval = Evaluation {
        user: user.id,
        decision: Decision::Eligible,
        address: None,
        set_mail: false,
        findings: Vec::new(),
    };
    if let Some(why) = candidate.excluded {
        eval.add(Reason::OperatorExcluded, Severity::Blocker, why);
    }
    if !candidate.other_waves.is_empty() {
        eval.add(
            Reason::InAnotherWave,
            Severity::Warning,
            candidate.other_waves.join(", "),
        );
    }
    check_account(&mut eval, user, policy);

    let inputs = AddressInputs {
        synced: user.is_synced(),
        mail: user.mail.as_deref(),
        other_mails: &user.other_mails,
        override_address: candidate.override_address,
        allow_new_address: policy.allow_new_address,
    };
    match address::choose(&inputs, &tenant.verified_domains) {
        Ok(chosen) => {
            check_address(&mut eval, user, &chosen, tenant, policy, addresses);
            eval.address = Some(chosen);
        }
        Err(NoChoice::Nothing) => {
            let which = if user.is_synced() {
                "mail is empty"
            } else {
                "no mail, no otherMails"
            };
            eval.add(Reason::NoAddress, Severity::Blocker, which);
        }
        Err(NoChoice::OnlyInternal) => {
            eval.add(
                Reason::NoExternalAddress,
                Severity::Blocker,
                internal_addresses(user).join(", "),
            );
        }
        Err(NoChoice::Ambiguous(candidates)) => {
            eval.add(
                Reason::AmbiguousAddress,
                Severity::Blocker,
                format!("candidates: {}", candidates.join(", ")),
            );
        }
        Err(NoChoice::OverrideNotACandidate { candidates }) => {
            eval.add(
                Reason::OverrideNotACandidate,
                Severity::Blocker,
                format!(
                    "{} is not one of: {}",
                    candidate.override_address.unwrap_or_default(),
                    if candidates.is_empty() {
                        "(none)".to_owned()
                    } else {
                        candidates.join(", ")
                    }
                ),
            );
        }
    }
    eval.settle();
    eval
}

/// The checks on the account itself, whatever the address.
fn check_account(eval: &mut Evaluation, user: &UserSnapshot, policy: &Policy) {
    if let Some(why) = already_external(user) {
        eval.add(Reason::AlreadyExternal, Severity::Blocker, why);
    }
    if let Some(at) = user.converted_to_internal_at {
        eval.add(
            Reason::ConvertedBackToInternal,
            Severity::Blocker,
            format!("converted from external to internal on {}", at.date()),
        );
    }
    if let Some(plan) = mailbox_plan(user) {
        eval.apply(
            policy,
            Reason::ExchangeMailbox,
            format!("service plan {plan}"),
        );
    }
    // The property itself, not the sync flag: it stays behind when directory sync is switched
    // off, and the service still refuses the user (NOTES §2.x).
    if let Some(upn) = user
        .on_premises
        .user_principal_name
        .as_deref()
        .filter(|u| !u.trim().is_empty())
    {
        let detail = if user.is_synced() {
            format!("onPremisesUserPrincipalName = {upn}")
        } else {
            format!(
                "onPremisesUserPrincipalName = {upn}, left behind: directory sync is off for this user"
            )
        };
        eval.apply(policy, Reason::OnPremisesUpnSet, detail);
    }
    if user.account_enabled == Some(false) {
        eval.apply(policy, Reason::DisabledAccount, "accountEnabled = false");
    }
    let add_ons = exchange_add_on_plans(user, policy);
    if !add_ons.is_empty() {
        eval.apply(
            policy,
            Reason::ExchangeAddOnPlan,
            format!("service plans {}", add_ons.join(", ")),
        );
    }
}

/// The checks on the chosen address.
fn check_address(
    eval: &mut Evaluation,
    user: &UserSnapshot,
    chosen: &ChosenAddress,
    tenant: &TenantView,
    policy: &Policy,
    addresses: &dyn AddressBook,
) {
    let address = chosen.address.as_str();
    if let Some(problem) = address::form_problem(address) {
        eval.add(Reason::InvalidAddress, Severity::Blocker, problem);
    }
    let Some(domain) = address::domain_of(address) else {
        return;
    };
    if let Some(verified) = tenant.verified_domains.covering(&domain) {
        eval.add(
            Reason::VerifiedDomainAddress,
            Severity::Blocker,
            format!("{address} is in verified domain {verified}"),
        );
    }
    if let Some(federated) = tenant.federation_domains.covering(&domain) {
        eval.apply(
            policy,
            Reason::DirectFederation,
            format!("{domain} is covered by the direct-federation domain {federated}"),
        );
    }
    if !user.is_synced() && policy.mode(Rule::HomeRealmNotEntra) != RuleMode::Off {
        match tenant.realms.get(&domain) {
            Some(RealmKind::Unknown) => eval.apply(
                policy,
                Reason::HomeRealmNotEntra,
                format!(
                    "{domain} is not an Entra ID domain (Microsoft account or one-time passcode)"
                ),
            ),
            Some(_) => {}
            None => eval.add(Reason::RealmNotChecked, Severity::Info, domain.clone()),
        }
    }
    let collisions = addresses.owners(address, user.id);
    if !collisions.is_empty() {
        let who = collisions
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        eval.add(
            Reason::AddressCollision,
            Severity::Blocker,
            format!("{address} is used by {who}"),
        );
    }
    let mail_differs = !user
        .mail
        .as_deref()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(address));
    if !user.is_synced() && policy.set_mail_before_invite && mail_differs {
        eval.set_mail = true;
        eval.add(
            Reason::SetMailFirst,
            Severity::Info,
            format!(
                "mail {} -> {address}",
                user.mail.as_deref().unwrap_or("(empty)")
            ),
        );
    }
}

/// Why the user already is a B2B user, if they are. Local guests (userType Guest created in
/// the tenant, never invited) are not: Microsoft converts them exactly this way.
fn already_external(user: &UserSnapshot) -> Option<String> {
    if let Some(state) = user
        .external_user_state
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        return Some(format!("externalUserState = {state}"));
    }
    if user.creation_type.as_deref() == Some("Invitation") {
        return Some("creationType = Invitation".to_owned());
    }
    user.identities.iter().find_map(|identity| {
        let issuer = identity.issuer.as_deref().unwrap_or_default();
        let federated = identity.sign_in_type.as_deref() == Some("federated");
        (federated || EXTERNAL_ISSUERS.contains(&issuer)).then(|| format!("signs in with {issuer}"))
    })
}

/// The mailbox plan the user holds, if any, ignoring plans the licence disables.
fn mailbox_plan(user: &UserSnapshot) -> Option<Uuid> {
    let disabled: Vec<Uuid> = user
        .assigned_licenses
        .iter()
        .flat_map(|l| l.disabled_plans.iter().copied())
        .collect();
    user.assigned_plans.iter().find_map(|plan| {
        let id = plan.service_plan_id?;
        let live = plan
            .capability_status
            .as_deref()
            .is_some_and(|s| LIVE_PLAN_STATES.contains(&s));
        (live && MAILBOX_PLANS.contains(&id) && !disabled.contains(&id)).then_some(id)
    })
}

/// The live non-mailbox Exchange-family plans the user holds (built-in and configured), named
/// when the built-in list knows them, in the user's order, ignoring plans the licence disables.
fn exchange_add_on_plans(user: &UserSnapshot, policy: &Policy) -> Vec<String> {
    if policy.mode(Rule::ExchangeAddOnPlan) == RuleMode::Off {
        return Vec::new();
    }
    let disabled: Vec<Uuid> = user
        .assigned_licenses
        .iter()
        .flat_map(|l| l.disabled_plans.iter().copied())
        .collect();
    let mut found = Vec::new();
    for plan in &user.assigned_plans {
        let Some(id) = plan.service_plan_id else {
            continue;
        };
        let live = plan
            .capability_status
            .as_deref()
            .is_some_and(|s| LIVE_PLAN_STATES.contains(&s));
        if !live || disabled.contains(&id) {
            continue;
        }
        let name = match EXCHANGE_ADD_ON_PLANS.iter().find(|(known, _)| *known == id) {
            Some((_, name)) => format!("{name} ({id})"),
            None if policy.exchange_add_on_plans.contains(&id) => id.to_string(),
            None => continue,
        };
        if !found.contains(&name) {
            found.push(name);
        }
    }
    found
}

fn internal_addresses(user: &UserSnapshot) -> Vec<String> {
    user.mail
        .iter()
        .chain(&user.other_mails)
        .filter(|a| !a.trim().is_empty())
        .cloned()
        .collect()
}

/// Blocks every user whose address another user of the same wave would also be invited at.
pub fn mark_duplicates(evaluations: &mut [Evaluation]) {
    let mut by_address: HashMap<String, Vec<usize>> = HashMap::new();
    for (index, eval) in evaluations.iter().enumerate() {
        if let Some(chosen) = &eval.address {
            by_address
                .entry(chosen.address.to_lowercase())
                .or_default()
                .push(index);
        }
    }
    for (address, indexes) in by_address {
        if indexes.len() < 2 {
            continue;
        }
        for &i in &indexes {
            let others: Vec<UserId> = indexes
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| evaluations[j].user)
                .collect();
            mark_duplicate(&mut evaluations[i], &address, &others);
        }
    }
}

/// The users whose address other users of the wave chose too, each with the address and
/// those others: [`mark_duplicates`]'s finding for a planner that sees the wave in parts, which
/// passes the result to [`mark_duplicate`] as it decides each user. `chosen` holds one entry
/// per chosen address, sorted by `address` (lower-cased), each address's choosers in the
/// wave's order; `address` and `user` read an entry.
pub fn duplicates_in_wave<T>(
    chosen: &[T],
    address: impl Fn(&T) -> &str,
    user: impl Fn(&T) -> UserId,
) -> HashMap<UserId, (String, Vec<UserId>)> {
    let mut duplicates = HashMap::new();
    for run in chosen.chunk_by(|a, b| address(a) == address(b)) {
        if run.len() < 2 {
            continue;
        }
        for (i, one) in run.iter().enumerate() {
            let others = run
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, other)| user(other))
                .collect();
            duplicates.insert(user(one), (address(one).to_owned(), others));
        }
    }
    duplicates
}

/// Blocks one user whose (lower-cased) `address` the `others` of the same wave, in wave order,
/// would also be invited at: [`mark_duplicates`] for a planner that sees the wave in parts.
pub fn mark_duplicate(eval: &mut Evaluation, address: &str, others: &[UserId]) {
    let others = others
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    eval.add(
        Reason::DuplicateInWave,
        Severity::Blocker,
        format!("{address} also chosen for {others}"),
    );
    eval.settle();
}

/// Blocks a user this tool already converted in another wave (or is converting: its outcome
/// there is being settled), whatever the snapshot says: a snapshot older than that run still
/// shows the user internal. `waves` names each wave with the user's state in it.
pub fn mark_converted_elsewhere(eval: &mut Evaluation, waves: &[String]) {
    if waves.is_empty() {
        return;
    }
    eval.add(
        Reason::ConvertedInAnotherWave,
        Severity::Blocker,
        waves.join(", "),
    );
    eval.settle();
}

/// What the wave's invitation settings mean for every user in it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WaveSettings {
    /// A custom message is configured.
    pub custom_message: bool,
    /// The invitations will be sent by an app (client secret or certificate), not a user.
    pub app_only: bool,
    /// Microsoft sends the email (`sendInvitationMessage`).
    pub send_message: bool,
    /// The redirect URL, if known.
    pub redirect_url: Option<String>,
}

/// Findings about the wave as a whole (they concern every user equally).
pub fn wave_findings(settings: &WaveSettings, policy: &Policy) -> Vec<Finding> {
    let mut eval = Evaluation {
        user: UserId::from_uuid(Uuid::nil()),
        decision: Decision::Eligible,
        address: None,
        set_mail: false,
        findings: Vec::new(),
    };
    if settings.custom_message && settings.app_only && settings.send_message {
        eval.apply(
            policy,
            Reason::CustomMessageDropped,
            "invitation.custom_message with an app-only credential",
        );
    }
    if let Some(url) = &settings.redirect_url
        && !url.to_ascii_lowercase().contains("tenantid=")
    {
        eval.apply(policy, Reason::RedirectWithoutTenant, url.clone());
    }
    eval.findings
}

/// Findings about what the stored snapshot could not check, which every user of a wave gets:
/// without the org contacts (`contacts_read` false), an address a contact holds is not seen as
/// a collision, and the service would refuse that user.
pub fn snapshot_findings(contacts_read: bool) -> Vec<Finding> {
    if contacts_read {
        return Vec::new();
    }
    vec![Finding {
        reason: Reason::ContactsNotChecked,
        severity: Severity::Warning,
        detail: "discover could not read org contacts (OrgContact.Read.All)".to_owned(),
    }]
}

/// For a redemption reset (`resetRedemption`): the user being a B2B user already is the point,
/// not a blocker; it stays in the findings as information.
pub fn allow_redemption_reset(eval: &mut Evaluation) {
    for finding in &mut eval.findings {
        if finding.reason == Reason::AlreadyExternal {
            finding.severity = Severity::Info;
        }
    }
    eval.settle();
}

impl TenantView {
    /// The tenant's verified and direct-federation domains from its stored facts; realm answers
    /// are added by the caller once looked up.
    pub fn from_facts(facts: &crate::domain::TenantFacts) -> Self {
        Self {
            verified_domains: DomainSet::new(
                facts
                    .domains
                    .iter()
                    .filter(|d| d.is_verified)
                    .map(|d| &d.name),
            ),
            federation_domains: DomainSet::new(facts.federation_domains.iter().map(|d| &d.domain)),
            realms: HashMap::new(),
        }
    }
}

/// Adds the wave's findings to each user; a blocking one blocks every user.
pub fn apply_wave_findings(evaluations: &mut [Evaluation], findings: &[Finding]) {
    for eval in evaluations.iter_mut() {
        eval.findings.extend(findings.iter().cloned());
        eval.settle();
    }
}

/// A digest of every property the rules read, to tell at `run` whether the user changed
/// since `plan` (then the stored decision no longer holds).
///
/// The digest is of the properties as one compact JSON object, in this order:
///
/// ```json
/// {"id":…,"upn":…,"mail":…,"other_mails":[…],"proxy_addresses":[…],"user_type":…,
///  "account_enabled":…,"creation_type":…,"external_user_state":…,
///  "converted_to_internal_at":…,"synced":…,"on_premises_upn":…,
///  "plans":[[service plan id, capability status],…],"disabled_plans":[[…],…],
///  "identities":[[sign-in type, issuer],…]}
/// ```
///
/// `converted_to_internal_at` is left out while unset, so the fingerprints of plans made before
/// the rule existed still match the users they were made for. The text is what `serde_json`
/// writes for such a struct (stored plans hold fingerprints made so; a test keeps the two
/// equal), written by hand because a plan takes a million of them.
pub fn fingerprint(user: &UserSnapshot) -> String {
    let mut json = JsonText::with_capacity(1024);
    json.raw("{\"id\":");
    json.uuid(user.id.as_uuid());
    json.raw(",\"upn\":");
    json.string(&user.user_principal_name);
    json.raw(",\"mail\":");
    json.optional_string(user.mail.as_deref());
    json.raw(",\"other_mails\":");
    json.list(&user.other_mails, |json, mail| json.string(mail));
    json.raw(",\"proxy_addresses\":");
    json.list(&user.proxy_addresses, |json, address| json.string(address));
    json.raw(",\"user_type\":");
    json.optional_string(user.user_type.as_deref());
    json.raw(",\"account_enabled\":");
    json.optional_bool(user.account_enabled);
    json.raw(",\"creation_type\":");
    json.optional_string(user.creation_type.as_deref());
    json.raw(",\"external_user_state\":");
    json.optional_string(user.external_user_state.as_deref());
    if let Some(at) = user.converted_to_internal_at {
        json.raw(",\"converted_to_internal_at\":");
        json.string(
            &at.format(&time::format_description::well_known::Rfc3339)
                .expect("a snapshot's date-time formats"),
        );
    }
    json.raw(",\"synced\":");
    json.optional_bool(user.on_premises.sync_enabled);
    json.raw(",\"on_premises_upn\":");
    json.optional_string(user.on_premises.user_principal_name.as_deref());
    json.raw(",\"plans\":");
    json.list(&user.assigned_plans, |json, plan| {
        json.raw("[");
        json.optional_uuid(plan.service_plan_id.as_ref());
        json.raw(",");
        json.optional_string(plan.capability_status.as_deref());
        json.raw("]");
    });
    json.raw(",\"disabled_plans\":");
    json.list(&user.assigned_licenses, |json, license| {
        json.list(&license.disabled_plans, JsonText::uuid);
    });
    json.raw(",\"identities\":");
    json.list(&user.identities, |json, identity| {
        let pair = [identity.sign_in_type.as_deref(), identity.issuer.as_deref()];
        json.list(pair, JsonText::optional_string);
    });
    json.raw("}");
    sha256_hex(&json.0)
}

/// Compact JSON text, written piece by piece as `serde_json` would write the same values.
struct JsonText(Vec<u8>);

impl JsonText {
    fn with_capacity(capacity: usize) -> Self {
        Self(Vec::with_capacity(capacity))
    }

    /// Text that is JSON already: punctuation, keys, literals.
    fn raw(&mut self, json: &str) {
        self.0.extend_from_slice(json.as_bytes());
    }

    /// A string: copied between quotes when nothing in it needs escaping (control characters,
    /// `"` and `\`), as most are; otherwise escaped by `serde_json` itself.
    fn string(&mut self, text: &str) {
        if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
            self.0.push(b'"');
            self.0.extend_from_slice(text.as_bytes());
            self.0.push(b'"');
        } else {
            serde_json::to_writer(&mut self.0, text).expect("a string serializes");
        }
    }

    fn optional_string(&mut self, text: Option<&str>) {
        match text {
            Some(text) => self.string(text),
            None => self.raw("null"),
        }
    }

    /// A UUID as `uuid` serializes it: lower-case, hyphenated.
    fn uuid(&mut self, uuid: &Uuid) {
        let mut buffer = Uuid::encode_buffer();
        self.0.push(b'"');
        self.raw(uuid.hyphenated().encode_lower(&mut buffer));
        self.0.push(b'"');
    }

    fn optional_uuid(&mut self, uuid: Option<&Uuid>) {
        match uuid {
            Some(uuid) => self.uuid(uuid),
            None => self.raw("null"),
        }
    }

    fn optional_bool(&mut self, value: Option<bool>) {
        self.raw(match value {
            Some(true) => "true",
            Some(false) => "false",
            None => "null",
        });
    }

    /// An array of `items`, each written by `write`.
    fn list<T>(&mut self, items: impl IntoIterator<Item = T>, mut write: impl FnMut(&mut Self, T)) {
        self.0.push(b'[');
        for (n, item) in items.into_iter().enumerate() {
            if n > 0 {
                self.0.push(b',');
            }
            write(self, item);
        }
        self.0.push(b']');
    }
}

/// A digest of a whole plan (each user's decision, address, set-mail step and reasons, in user
/// order), to tell whether a re-plan changed anything.
pub fn plan_hash(evaluations: &[Evaluation]) -> String {
    let mut sorted: Vec<&Evaluation> = evaluations.iter().collect();
    sorted.sort_by_key(|e| e.user);
    let mut hasher = PlanHasher::new();
    for eval in sorted {
        hasher.push(eval);
    }
    hasher.finish()
}

/// [`plan_hash`] computed as the evaluations arrive, in ascending user order, so a planner
/// need not hold the whole plan. It digests the same bytes: the JSON array of every user's row.
pub struct PlanHasher {
    digest: digest::Context,
    last: Option<UserId>,
    row: Vec<u8>,
}

impl std::fmt::Debug for PlanHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanHasher")
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

impl Default for PlanHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl PlanHasher {
    pub fn new() -> Self {
        let mut digest = digest::Context::new(&digest::SHA256);
        digest.update(b"[");
        Self {
            digest,
            last: None,
            row: Vec::new(),
        }
    }

    /// Adds the next user's evaluation; users must come in ascending order (a user listed
    /// twice comes twice, in the order given).
    pub fn push(&mut self, eval: &Evaluation) {
        type Row<'a> = (UserId, Decision, Option<&'a str>, bool, Vec<&'static str>);
        assert!(
            self.last.is_none_or(|last| last <= eval.user),
            "plan rows are hashed in ascending user order"
        );
        let row: Row<'_> = (
            eval.user,
            eval.decision,
            eval.address.as_ref().map(|a| a.address.as_str()),
            eval.set_mail,
            eval.findings.iter().map(|f| f.reason.code()).collect(),
        );
        self.row.clear();
        if self.last.is_some() {
            self.row.push(b',');
        }
        serde_json::to_writer(&mut self.row, &row).expect("plan rows serialize");
        self.digest.update(&self.row);
        self.last = Some(eval.user);
    }

    pub fn finish(mut self) -> String {
        self.digest.update(b"]");
        hex(self.digest.finish().as_ref())
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, bytes).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        hex.push(char::from(DIGITS[usize::from(b >> 4)]));
        hex.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    hex
}

#[cfg(test)]
mod tests;
