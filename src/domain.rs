//! The vocabulary every other module shares: identifiers, the user snapshot the rules read,
//! tenant facts, eligibility rules and decisions, a wave member's state, and the baseline a
//! conversion is verified against.
//!
//! Owns plain data types and their invariants only. It must not do I/O, read a clock, or know
//! how a value is stored (SQL lives in `store`) or transported (JSON DTOs live in `graph`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// Declares a newtype around a [`Uuid`] that displays as the lower-case hyphenated form Graph
/// uses, so that one kind of id can never be passed where another is expected.
macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s.trim()).map(Self)
            }
        }
    };
}

uuid_id!(
    /// The object id of a user in Entra ID. It survives the conversion unchanged.
    UserId
);
uuid_id!(
    /// One execution of a command that talks to the tenant (`discover`, `run`, …). UUID v7, so
    /// ids sort by creation time in the database, the logs and report file names.
    RunId
);

impl RunId {
    /// A fresh, time-ordered run id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for RunId {
    fn default() -> Self {
        Self::new()
    }
}

/// The identifier Graph returns for an invitation. Opaque: it is not the user's object id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InvitationId(pub String);

impl fmt::Display for InvitationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A wave's row id in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WaveId(pub i64);

impl fmt::Display for WaveId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A group as the operator names it on the command line: its object id, or its exact display
/// name (which Graph resolves, and which several groups may share). Anything that parses as a
/// GUID is an id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupRef {
    Id(Uuid),
    Name(String),
}

impl FromStr for GroupRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(id) = Uuid::parse_str(s.trim()) {
            return Ok(Self::Id(id));
        }
        if s.trim().is_empty() {
            return Err("a group's object id or display name, not an empty value".to_owned());
        }
        Ok(Self::Name(s.to_owned()))
    }
}

impl fmt::Display for GroupRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => fmt::Display::fmt(&id.hyphenated(), f),
            Self::Name(name) => write!(f, "\"{name}\""),
        }
    }
}

/// Everything the eligibility rules need to know about one user, as read from Graph at one
/// moment (`snapshot_at`). Collections are never null in Graph (`[]` when empty).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSnapshot {
    pub id: UserId,
    pub user_principal_name: String,
    pub display_name: Option<String>,
    pub mail: Option<String>,
    pub other_mails: Vec<String>,
    /// `SMTP:` marks the primary address, `smtp:` a secondary one; other prefixes (`SIP:`,
    /// `X500:`) are kept as they come.
    pub proxy_addresses: Vec<String>,
    /// `Member` or `Guest` (kept as text: Graph may grow new values).
    pub user_type: Option<String>,
    pub account_enabled: Option<bool>,
    /// `null` for an ordinary work account, `Invitation` for a B2B invitee, and others.
    pub creation_type: Option<String>,
    /// `PendingAcceptance`, `Accepted`, or `None` for a user never invited.
    pub external_user_state: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub external_user_state_changed_at: Option<OffsetDateTime>,
    /// When the user was converted from external back to internal
    /// (`convertExternalToInternalMemberUser`, NOTES §2.x): the service refuses to make such a
    /// user external again. Graph beta's stamp, not a documented v1.0 property: `None` when the
    /// service did not return it.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub converted_to_internal_at: Option<OffsetDateTime>,
    pub on_premises: OnPremisesProperties,
    pub assigned_plans: Vec<AssignedPlan>,
    pub assigned_licenses: Vec<AssignedLicense>,
    pub identities: Vec<ObjectIdentity>,
    /// `givenName`, `surname` and `preferredLanguage`: how a message addresses the user (the
    /// mail merge of `export-links`, the invitation's language). Never a rule input, so never
    /// in the rule-input fingerprint.
    #[serde(default)]
    pub profile: UserProfile,
    #[serde(with = "time::serde::rfc3339")]
    pub snapshot_at: OffsetDateTime,
}

/// How a message addresses a user: names and language as the directory holds them. Not read
/// by the eligibility rules.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserProfile {
    pub given_name: Option<String>,
    pub surname: Option<String>,
    /// `preferredLanguage` as the directory holds it (RFC 4646 style, `en-US`); not checked:
    /// [`UserProfile::language`] is what a message uses.
    pub preferred_language: Option<String>,
}

impl UserProfile {
    /// The language of a message to this user: `preferredLanguage` when it is a language tag,
    /// `fallback` (the configured message language) when it is unset or not a tag.
    pub fn language<'a>(&'a self, fallback: &'a str) -> &'a str {
        self.own_language().unwrap_or(fallback)
    }

    /// `preferredLanguage` when it is a language tag.
    pub fn own_language(&self) -> Option<&str> {
        self.preferred_language
            .as_deref()
            .map(str::trim)
            .filter(|tag| is_language_tag(tag))
    }
}

/// Whether `tag` has the shape of a BCP 47 language tag, what `messageLanguage` takes and
/// `preferredLanguage` holds (`en`, `en-US`, `zh-Hant-TW`): a 2–3 letter language, then
/// subtags of 2–8 letters or digits, joined by `-`. It does not check the registry.
pub fn is_language_tag(tag: &str) -> bool {
    let mut subtags = tag.split('-');
    let language_ok = subtags
        .next()
        .is_some_and(|l| (2..=3).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphabetic()));
    language_ok
        && tag.len() <= 35
        && subtags
            .all(|s| (2..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()))
}

impl UserSnapshot {
    /// Synced from on-premises AD right now (`onPremisesSyncEnabled == true`); `false` and
    /// `null` both mean the cloud is the source of authority.
    pub fn is_synced(&self) -> bool {
        self.on_premises.sync_enabled == Some(true)
    }
}

/// The `onPremises*` properties Entra Connect writes for a synced user.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnPremisesProperties {
    pub sync_enabled: Option<bool>,
    /// Base64 of the AD `objectGUID` (the default source anchor); finds the AD account.
    pub immutable_id: Option<String>,
    pub sam_account_name: Option<String>,
    pub distinguished_name: Option<String>,
    pub domain_name: Option<String>,
    /// When present, the service refuses the conversion (NOTES.md §2).
    pub user_principal_name: Option<String>,
}

/// One service plan assigned to a user (`microsoft.graph.assignedPlan`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignedPlan {
    #[serde(with = "time::serde::rfc3339::option")]
    pub assigned_at: Option<OffsetDateTime>,
    /// `Enabled`, `Warning`, `Suspended`, `LockedOut` or `Deleted`.
    pub capability_status: Option<String>,
    pub service: Option<String>,
    pub service_plan_id: Option<Uuid>,
}

/// One licence assigned to a user (`microsoft.graph.assignedLicense`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignedLicense {
    pub sku_id: Option<Uuid>,
    pub disabled_plans: Vec<Uuid>,
}

/// One sign-in identity of a user (`microsoft.graph.objectIdentity`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectIdentity {
    pub sign_in_type: Option<String>,
    pub issuer: Option<String>,
    pub issuer_assigned_id: Option<String>,
}

/// What the tenant itself says about its domains and federation, read by `discover`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantFacts {
    /// The tenant's GUID.
    pub tenant_id: Uuid,
    pub display_name: Option<String>,
    pub domains: Vec<TenantDomain>,
    /// Domains configured for SAML/WS-Fed direct federation with an external IdP.
    pub federation_domains: Vec<FederationDomain>,
    /// When the tenant was created (`organization.createdDateTime`), when Graph said.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub fetched_at: OffsetDateTime,
    /// When `discover` last read every org contact (the store sets it; Graph's reading of the
    /// tenant leaves it `None`). `None`: contacts were never read, so the addresses they hold
    /// could not be checked for collisions.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub contacts_read_at: Option<OffsetDateTime>,
}

/// An organizational contact (`orgContact`): a mail contact in the directory. The addresses it
/// holds (`mail`, `smtp:` proxy addresses) cannot be given to a user, so they take part in
/// collision checks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgContact {
    pub id: Uuid,
    pub display_name: Option<String>,
    pub mail: Option<String>,
    pub proxy_addresses: Vec<String>,
}

/// A domain registered in this tenant (`GET /domains`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantDomain {
    pub name: String,
    pub is_verified: bool,
    pub is_default: bool,
    pub is_initial: bool,
    /// `Managed` or `Federated`.
    pub authentication_type: Option<String>,
}

/// A domain set up for SAML/WS-Fed direct federation, with the configuration it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FederationDomain {
    pub domain: String,
    pub configuration_id: String,
    pub display_name: Option<String>,
}

/// What home-realm discovery said about an external domain (NOTES.md §6). Advisory data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RealmKind {
    /// An Entra tenant manages the domain's accounts.
    Managed,
    /// An Entra tenant federates the domain to another IdP (for example AD FS).
    Federated,
    /// No Entra tenant claims the domain: the invitee redeems with a Microsoft account or a
    /// one-time passcode.
    Unknown,
}

impl RealmKind {
    /// Whether the domain's accounts live in some Entra ID tenant.
    pub fn is_entra(self) -> bool {
        matches!(self, Self::Managed | Self::Federated)
    }
}

/// A cached answer (or failure) of the realm lookup for one domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealmRecord {
    pub domain: String,
    /// `Err` holds why the lookup failed; the rule then reports the realm as not known.
    pub outcome: Result<RealmAnswer, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: OffsetDateTime,
}

/// The parts of a user-realm answer the tool uses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealmAnswer {
    pub kind: RealmKind,
    pub cloud_instance: Option<String>,
    pub federation_brand: Option<String>,
}

/// What a user's conversion must keep, read from Graph right before the user is invited (and
/// read again the same way by `verify`, which compares the two). The conversion keeps the
/// object id, the UPN, the group memberships and the app role assignments (DESIGN, NOTES §0).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversionBaseline {
    /// The object id Graph answered for (the one asked for, unless the object changed).
    pub user_id: UserId,
    pub user_principal_name: String,
    /// The groups the user is a direct member of: sorted, without duplicates.
    pub group_ids: Vec<Uuid>,
    /// How many app role assignments Graph lists for the user (those of its direct groups
    /// included, as `GET /users/{id}/appRoleAssignments` documents).
    pub app_role_assignments: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub taken_at: OffsetDateTime,
}

/// The longest wave name, in characters: room for `invite-` and the longest UPN (113).
pub const WAVE_NAME_MAX_CHARS: usize = 128;

/// Why `name` cannot name a new wave, if it cannot: it must be 1 to
/// [`WAVE_NAME_MAX_CHARS`] printable characters without surrounding spaces. Names are shown
/// in terminals, reports, CSV files and generated scripts; control characters (a newline, an
/// escape sequence) and the invisible characters that reorder text (bidirectional controls)
/// would make them lie there.
pub fn wave_name_problem(name: &str) -> Option<String> {
    let chars = name.chars().count();
    if chars == 0 {
        return Some("a wave name cannot be empty".into());
    }
    if chars > WAVE_NAME_MAX_CHARS {
        return Some(format!(
            "a wave name has at most {WAVE_NAME_MAX_CHARS} characters; this one has {chars}"
        ));
    }
    if name.trim() != name {
        return Some("a wave name cannot begin or end with a space".into());
    }
    let invisible = |c: char| {
        c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
    };
    name.chars().find(|c| invisible(*c)).map(|c| {
        format!(
            "a wave name cannot hold control or invisible characters (found U+{:04X}); use letters, digits, spaces and punctuation",
            u32::from(c)
        )
    })
}

/// A light syntax check of an email address: one `@`, something before it, a dotted domain
/// after it, no spaces. The service's own rules (forbidden characters) belong to `rules`.
pub fn is_plausible_email(text: &str) -> bool {
    let text = text.trim();
    match text.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !text.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// Declares a string-backed enum with a stable wire/database code per variant.
macro_rules! coded_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $code:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $code)] $variant),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The stable code stored in the database and shown in reports.
            pub const fn code(self) -> &'static str {
                match self { $(Self::$variant => $code),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.code())
            }
        }

        impl FromStr for $name {
            type Err = UnknownCode;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($code => Ok(Self::$variant),)+
                    other => Err(UnknownCode { kind: stringify!($name), code: other.to_owned() }),
                }
            }
        }
    };
}

coded_enum!(
    /// A user's `userType` (v1.0 `user`): conversion keeps `Member`; `Guest` is set afterwards,
    /// when wanted, for MAU billing and guest restrictions (NOTES §2).
    UserType {
        Member => "Member",
        Guest => "Guest",
    }
);

impl UserType {
    /// Whether Graph's value (`userType`, compared without regard to case) is this type.
    pub fn is(self, graph_value: Option<&str>) -> bool {
        graph_value.is_some_and(|v| v.eq_ignore_ascii_case(self.code()))
    }
}

/// A stored or configured code that names no known variant (for example after a downgrade).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{code}`")]
pub struct UnknownCode {
    pub kind: &'static str,
    pub code: String,
}

coded_enum!(
    /// What the partner pre-flight says about redeeming an invitation at one partner domain
    /// (NOTES.md §2.x "Automatic redemption"): automatic redemption needs both our inbound and
    /// the partner tenant's outbound "Automatically redeem invitations"; only ours is readable.
    Redemption {
        /// Our inbound setting allows it for the partner's tenant: redemption is automatic
        /// (no consent prompt) if the partner's tenant allows it outbound, which we cannot read.
        AutomaticIfPartnerAllows => "automatic-if-partner-allows",
        /// Our inbound setting does not allow it: the partner's users see the consent prompt.
        AsksPartner => "asks-partner",
        /// The settings were not read (see the [`PreflightReason`]).
        NotChecked => "not-checked",
    }
);

coded_enum!(
    /// Why the partner pre-flight answered what it did for one domain.
    PreflightReason {
        /// Our partner entry for the domain's tenant has `inboundAllowed: true`.
        InboundAllowed => "inbound-allowed",
        /// Our partner entry has `inboundAllowed: false`.
        InboundBlocked => "inbound-blocked",
        /// Our partner entry leaves it to the default (`inboundAllowed: null`).
        InheritsDefault => "inherits-default",
        /// There is no partner entry for the domain's tenant: the default applies.
        NoPartnerEntry => "no-partner-entry",
        /// The domain's realm is not an Entra tenant: there are no cross-tenant settings.
        NotEntra => "not-entra",
        /// The domain's realm is not known (realm discovery failed or was not asked) and the
        /// OIDC metadata names no tenant for it.
        TenantNotFound => "tenant-not-found",
        /// The tenant id lookup (OIDC metadata on the login host) failed.
        TenantLookupFailed => "tenant-lookup-failed",
        /// The token lacks `Policy.Read.All` (Graph answered 403).
        PermissionMissing => "permission-missing",
        /// Reading the cross-tenant access settings failed otherwise.
        PolicyReadFailed => "policy-read-failed",
        /// No answer is stored: the pre-flight is switched off
        /// (`invitation.check_partner_settings`), or the wave was planned before it existed.
        NotAsked => "not-asked",
    }
);

/// The partner pre-flight's answer for one external domain, as `plan` stores it and `report`
/// shows it. Advisory data: never a reason to block a user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerPreflight {
    /// Lower-case domain.
    pub domain: String,
    /// The domain's home tenant, when it was found.
    pub tenant_id: Option<Uuid>,
    pub redemption: Redemption,
    pub reason: PreflightReason,
    /// What failed, for `not-checked` answers that come from an error (no secret: request ids
    /// and status codes only).
    pub detail: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: OffsetDateTime,
}

coded_enum!(
    /// The eligibility checks an operator can switch between `enforce`, `warn` and `off`
    /// (config `[rules]`). Checks the service itself enforces (verified-domain address, invalid
    /// characters, address collisions, no address) are not switchable: turning them off would
    /// only move the failure to `run`.
    Rule {
        /// The user holds an Exchange Online mailbox plan (not `EXCHANGE_S_FOUNDATION`).
        ExchangeMailbox => "exchange-mailbox",
        /// The invitation address's domain, or a parent of it, is set up for SAML/WS-Fed
        /// direct federation in this tenant.
        DirectFederation => "direct-federation",
        /// A cloud-only user's address is not homed in any Entra ID tenant (realm discovery).
        HomeRealmNotEntra => "home-realm-not-entra",
        /// The user has `onPremisesUserPrincipalName` set, which the service refuses, whether
        /// or not directory sync is still on for the user.
        OnPremisesUpnSet => "on-premises-upn-set",
        /// The account is disabled: converting it invites someone who cannot sign in today.
        DisabledAccount => "disabled-account",
        /// The user holds a live non-mailbox Exchange-family plan, which may scrub the external
        /// address the invitation needs (NOTES §4, "proxy scrubbing").
        ExchangeAddOnPlan => "exchange-add-on-plan",
        /// A custom message is configured but Microsoft drops it for app-only senders.
        CustomMessageDropped => "custom-message-dropped",
        /// The redirect URL has no `tenantId` parameter (the Teams tenant-picker issue).
        RedirectWithoutTenant => "redirect-without-tenant",
    }
);

impl Rule {
    /// The mode a rule has when the configuration does not mention it.
    pub const fn default_mode(self) -> RuleMode {
        match self {
            Self::ExchangeMailbox
            | Self::DirectFederation
            | Self::HomeRealmNotEntra
            | Self::OnPremisesUpnSet => RuleMode::Enforce,
            Self::DisabledAccount
            | Self::ExchangeAddOnPlan
            | Self::CustomMessageDropped
            | Self::RedirectWithoutTenant => RuleMode::Warn,
        }
    }
}

/// How a switchable rule acts on the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleMode {
    /// A hit blocks the user.
    Enforce,
    /// A hit is reported, the user stays eligible.
    Warn,
    /// The rule is not evaluated.
    Off,
}

impl fmt::Display for RuleMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Enforce => "enforce",
            Self::Warn => "warn",
            Self::Off => "off",
        })
    }
}

coded_enum!(
    /// The outcome of planning one user.
    Decision {
        /// The user will be invited by `run`.
        Eligible => "eligible",
        /// At least one enforced rule blocks the user.
        Blocked => "blocked",
    }
);

coded_enum!(
    /// Where a wave member stands. `planned -> (excluded | ready) -> inviting -> invited ->
    /// accepted -> scrambled`, plus `failed` (with a [`FailureKind`]) and `drifted` (the user
    /// changed between `plan` and `run` and was not converted).
    UserState {
        Planned => "planned",
        Excluded => "excluded",
        Ready => "ready",
        /// Intent recorded, outcome not yet known: reconcile before any retry.
        Inviting => "inviting",
        Invited => "invited",
        Accepted => "accepted",
        Scrambled => "scrambled",
        Failed => "failed",
        Drifted => "drifted",
    }
);

coded_enum!(
    /// Whether a failed user may be tried again.
    FailureKind {
        Retryable => "retryable",
        Permanent => "permanent",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_uses_the_users_language_when_it_is_a_tag() {
        let with = |tag: Option<&str>| UserProfile {
            preferred_language: tag.map(str::to_owned),
            ..UserProfile::default()
        };
        assert_eq!(with(Some("fr-FR")).language("en-US"), "fr-FR");
        assert_eq!(with(Some(" de ")).language("en-US"), "de");
        assert_eq!(with(Some("zh-Hant-TW")).language("en-US"), "zh-Hant-TW");
        for unusable in [
            None,
            Some(""),
            Some("French"),
            Some("fr_FR"),
            Some("f"),
            Some("fr-"),
        ] {
            assert_eq!(with(unusable).language("en-US"), "en-US", "{unusable:?}");
        }
    }

    #[test]
    fn a_group_is_named_by_id_or_by_display_name() {
        assert_eq!(
            " 2F0C8A5E-1B7D-4C3E-9A6F-0D8E7B5C4A3F".parse(),
            Ok(GroupRef::Id(
                Uuid::parse_str("2f0c8a5e-1b7d-4c3e-9a6f-0d8e7b5c4a3f").unwrap()
            ))
        );
        assert_eq!(
            "Partner Accounts - Pilot".parse(),
            Ok(GroupRef::Name("Partner Accounts - Pilot".to_owned()))
        );
        assert!(" ".parse::<GroupRef>().is_err());
    }

    #[test]
    fn wave_names_are_printable_and_bounded() {
        for good in [
            "pilot",
            "Wave 2 – EMEA (Fabrikam)",
            "invite-o'brien@contoso.com",
            "波",
        ] {
            assert_eq!(wave_name_problem(good), None, "{good}");
        }
        for (bad, why) in [
            ("", "empty"),
            (" pilot", "begin or end"),
            ("pilot\n#> Remove-Item C:\\", "U+000A"),
            ("pi\u{1b}[31mlot", "U+001B"),
            ("pilot\u{202e}txt", "U+202E"),
        ] {
            let problem = wave_name_problem(bad).unwrap_or_default();
            assert!(problem.contains(why), "{bad:?}: {problem}");
        }
        let long = "w".repeat(WAVE_NAME_MAX_CHARS + 1);
        assert!(wave_name_problem(&long).unwrap().contains("at most 128"));
        assert_eq!(wave_name_problem(&long[1..]), None);
    }

    #[test]
    fn user_id_round_trips_through_its_display_form() {
        let text = "5A9F3C1E-0B2D-4E6F-8A7B-9C0D1E2F3A4B";
        let id: UserId = text.parse().unwrap();
        assert_eq!(id.to_string(), text.to_ascii_lowercase());
        assert_eq!(id.to_string().parse::<UserId>().unwrap(), id);
    }

    #[test]
    fn run_ids_sort_by_creation() {
        let first = RunId::new();
        let second = RunId::new();
        assert!(first < second);
    }

    #[test]
    fn every_code_parses_back_to_its_variant() {
        for rule in Rule::ALL {
            assert_eq!(rule.code().parse::<Rule>().unwrap(), *rule);
        }
        for state in UserState::ALL {
            assert_eq!(state.code().parse::<UserState>().unwrap(), *state);
        }
        let err = "bogus".parse::<UserState>().unwrap_err();
        assert_eq!(err.to_string(), "unknown UserState `bogus`");
    }

    #[test]
    fn serde_uses_the_stable_codes() {
        assert_eq!(
            serde_json::to_string(&Rule::OnPremisesUpnSet).unwrap(),
            "\"on-premises-upn-set\""
        );
        assert_eq!(serde_json::to_string(&RuleMode::Warn).unwrap(), "\"warn\"");
    }
}
