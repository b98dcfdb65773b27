//! The deterministic tenant generator: user *i* of a `(seed, size)` tenant, computed on demand.
//!
//! Owns the case mix (which fraction of users falls in each rule-relevant case), the tenant's
//! fixed facts for generated tenants (domains, federation, realms, groups, app registrations,
//! the enterprise apps users are assigned to), each user's app role assignments, and the
//! reverse lookups (object id, UPN, address -> index) that make a 1,000,000-user
//! tenant cost O(1) memory. It must not keep per-user state: mutations live in `directory`.

use std::collections::BTreeMap;
use std::ops::Range;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::model::{
    AppRegistration, AppRoleAssignment, AssignedLicense, AssignedPlan, CrossTenantPartner,
    DEFAULT_APP_ROLE_ID, Domain, FederationConfiguration, InboundOutboundPolicyConfiguration,
    ObjectIdentity, OrgContact, ProvisionedPlan, RealmKind, User,
};
use super::rng::{SplitMix64, decode_indexed_guid, indexed_guid, keyed, stable_guid};

/// The rule-relevant situation a generated user is in. `docs/simulator.md` lists the mix.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum UserCase {
    /// Cloud-only member; `mail` external and equal to its single `otherMails` entry.
    CloudMailExternal,
    /// Like `CloudMailExternal`, but once external and converted back to internal
    /// (`externalUserConvertedOn` set): the service refuses to make it external again.
    ConvertedBackToInternal,
    /// Cloud-only member; `mail` empty, one external `otherMails` entry.
    CloudOtherMailOnly,
    /// Like `CloudOtherMailOnly`, but an org contact holds that external address (`mail` and
    /// `SMTP:` proxy address): the service refuses the `mail` PATCH and the invitation.
    ContactAddressCollision,
    /// Cloud-only member; `mail` internal (verified domain), one external `otherMails` entry.
    CloudInternalMailOneExternal,
    /// Cloud-only member; several distinct external `otherMails` entries, `mail` empty.
    CloudSeveralExternal,
    /// Cloud-only member; `mail` and `otherMails` only in verified (internal) domains.
    CloudInternalOnly,
    /// Cloud-only member; no `mail`, no `otherMails`.
    CloudNoAddress,
    /// Cloud-only member; the only external address is plus-addressed (`a+b@x`).
    CloudPlusAddressed,
    /// Cloud-only member; the only external address contains a forbidden character (`#`).
    CloudForbiddenCharacters,
    /// Cloud-only member with a Unicode display name and a Unicode local part in `otherMails`.
    CloudUnicodeName,
    /// Synced member (`onPremisesSyncEnabled`), external `mail`, no `onPremisesUserPrincipalName`.
    SyncedConvertible,
    /// Synced member with `onPremisesUserPrincipalName` set (blocked by the service).
    SyncedOnPremisesUpn,
    /// Once-synced member whose directory sync was switched off (`onPremisesSyncEnabled`
    /// false) but who kept `onPremisesUserPrincipalName`: the service still refuses it.
    UnsyncedOnPremisesUpn,
    /// Cloud-only member with an Exchange Online mailbox plan (`EXCHANGE_S_ENTERPRISE`/`STANDARD`).
    ExchangeMailbox,
    /// Cloud-only member whose only Exchange plan is `EXCHANGE_S_FOUNDATION` (no mailbox).
    ExchangeFoundationOnly,
    /// Like `ExchangeFoundationOnly`, plus a live non-mailbox Exchange-family add-on plan
    /// (`EOP_ENTERPRISE`): convertible, but "proxy scrubbing" may strip its external address.
    ExchangeAddOnPlan,
    /// Already converted, invitation pending (`externalUserState` = `PendingAcceptance`).
    AlreadyInvited,
    /// Already converted and redeemed (`Accepted`, external identity).
    AlreadyRedeemed,
    /// A local guest (`userType` Guest, local credentials, never invited).
    LocalGuest,
    /// A disabled member with an external `mail`.
    Disabled,
    /// External `mail` that also appears in another user's `proxyAddresses`.
    ProxyAddressCollision,
    /// External address in a domain configured for direct (SAML/WS-Fed) federation.
    DirectFederationDomain,
    /// External address in a domain whose user realm is `Federated`.
    RealmFederated,
    /// External address in a domain whose user realm is `Unknown` (not an Entra tenant).
    RealmUnknown,
}

/// `(case, weight per 1000)`: the generated mix. The weights sum to 1000.
pub const CASE_MIX: &[(UserCase, u64)] = &[
    (UserCase::CloudMailExternal, 125),
    // Carved out of `CloudMailExternal`'s share, next to it, so every other case keeps its
    // users for a given seed.
    (UserCase::ConvertedBackToInternal, 15),
    (UserCase::CloudOtherMailOnly, 140),
    // Carved out of `CloudOtherMailOnly`'s share, next to it, so every other case keeps its
    // users for a given seed.
    (UserCase::ContactAddressCollision, 10),
    (UserCase::CloudInternalMailOneExternal, 60),
    (UserCase::CloudSeveralExternal, 40),
    (UserCase::CloudInternalOnly, 40),
    (UserCase::CloudNoAddress, 30),
    (UserCase::CloudPlusAddressed, 20),
    (UserCase::CloudForbiddenCharacters, 20),
    (UserCase::CloudUnicodeName, 30),
    (UserCase::SyncedConvertible, 80),
    (UserCase::SyncedOnPremisesUpn, 60),
    // Carved out of `SyncedOnPremisesUpn`'s share, next to it, so every other case keeps its
    // users for a given seed.
    (UserCase::UnsyncedOnPremisesUpn, 20),
    (UserCase::ExchangeMailbox, 60),
    (UserCase::ExchangeFoundationOnly, 25),
    // Carved out of `ExchangeFoundationOnly`'s share, next to it.
    (UserCase::ExchangeAddOnPlan, 15),
    (UserCase::AlreadyInvited, 30),
    (UserCase::AlreadyRedeemed, 30),
    (UserCase::LocalGuest, 30),
    (UserCase::Disabled, 30),
    (UserCase::ProxyAddressCollision, 20),
    (UserCase::DirectFederationDomain, 20),
    (UserCase::RealmFederated, 20),
    (UserCase::RealmUnknown, 30),
];

impl UserCase {
    /// Every case, in mix order.
    pub fn all() -> impl Iterator<Item = UserCase> {
        CASE_MIX.iter().map(|(case, _)| *case)
    }
}

/// The generated tenant's initial (`*.onmicrosoft.com`) domain.
pub const INITIAL_DOMAIN: &str = "contoso.onmicrosoft.com";
/// The generated tenant's default verified domain (member UPNs and internal mail).
pub const DEFAULT_DOMAIN: &str = "contoso.com";
/// Partner domains whose realm is `Managed` (homed in some Entra tenant).
pub const MANAGED_PARTNER_DOMAINS: &[&str] = &[
    "fabrikam.com",
    "adatum.com",
    "litwareinc.com",
    "northwindtraders.com",
];
/// A partner domain whose realm is `Federated`.
pub const FEDERATED_REALM_DOMAIN: &str = "tailspintoys.com";
/// Partner domains whose tenant our cross-tenant access settings let redeem automatically
/// (partner entry, `automaticUserConsentSettings.inboundAllowed: true`).
pub const AUTO_REDEEM_PARTNER_DOMAINS: &[&str] = &["fabrikam.com", FEDERATED_REALM_DOMAIN];
/// A partner domain whose tenant has a partner entry with `inboundAllowed: false`.
pub const CONSENT_PARTNER_DOMAIN: &str = "adatum.com";
/// A partner domain whose tenant has a partner entry that leaves automatic redemption to the
/// default (`inboundAllowed: null`).
pub const INHERITING_PARTNER_DOMAIN: &str = "litwareinc.com";
// `northwindtraders.com`'s tenant has no partner entry: its configuration is a 404.
/// A mail domain no Entra tenant claims (realm `Unknown`).
pub const UNKNOWN_REALM_DOMAIN: &str = "wingtipmail.net";
/// The domain configured for direct (SAML/WS-Fed) federation in the generated tenant.
pub const DIRECT_FEDERATION_DOMAIN: &str = "woodgrovebank.com";

/// Exchange Online mailbox plan ids (NOTES §4).
pub const EXCHANGE_S_ENTERPRISE: &str = "efb87545-963c-4e0d-99df-69c6916d9eb0";
pub const EXCHANGE_S_STANDARD: &str = "9aaf7827-d63c-4b61-89c3-182f06f82e5c";
/// Every Exchange Online plan that gives a mailbox (NOTES §4).
pub const MAILBOX_PLAN_IDS: &[&str] = &[
    EXCHANGE_S_STANDARD,
    EXCHANGE_S_ENTERPRISE,
    "4a82b400-a79f-41a4-b4e2-e94f5787b113", // EXCHANGE_S_DESKLESS
    "1126bef5-da20-4f07-b45e-ad25d2581aa8", // EXCHANGE_S_ESSENTIALS
    "90927877-dcff-4af6-b346-2332c0b15bb7", // EXCHANGE_B_STANDARD
    "e9b4930a-925f-45e2-ac2a-3f7788ca6fdd", // EXCHANGE_S_STANDARD_GOV
    "8c3069c0-ccdb-44be-ab77-986203a67df2", // EXCHANGE_S_ENTERPRISE_GOV
];
/// Exchange Foundation: bundled in many non-mail SKUs, no mailbox.
pub const EXCHANGE_S_FOUNDATION: &str = "113feb6c-3fe4-4440-bddc-54d774bf0318";
const SHAREPOINT_S_ENTERPRISE: &str = "5dbe027f-2339-4123-9542-606e4d348a72";
const INTUNE_A: &str = "c1ec4a95-1f05-45b3-a911-aa3fa01094f5";
/// Exchange Online Protection, a non-mailbox Exchange-family plan (NOTES §4).
pub const EOP_ENTERPRISE: &str = "326e2b78-9d27-42c9-8509-46c827743a17";
/// SKU ids: Office 365 E3 (`ENTERPRISEPACK`), Exchange Online Plan 1, EMS E3.
const SKU_ENTERPRISEPACK: &str = "6fd2c87f-b296-42f0-b197-1e91e994b900";
const SKU_EXCHANGESTANDARD: &str = "4b9405b0-7788-4568-add1-99614e613b69";
const SKU_EMS: &str = "efccb6f7-5641-4e0e-bd10-b4976e1bf68e";

const GIVEN: &[&str] = &[
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Barbara",
    "Dennis",
    "Frances",
    "Ken",
    "Margaret",
    "Edsger",
    "Radia",
    "Tim",
    "Hedy",
    "John",
    "Katherine",
    "Niklaus",
    "Sophie",
    "Donald",
    "Shafi",
    "Leslie",
];
const SURNAMES: &[&str] = &[
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Liskov",
    "Ritchie",
    "Allen",
    "Thompson",
    "Hamilton",
    "Dijkstra",
    "Perlman",
    "Berners-Lee",
    "Lamarr",
    "Backus",
    "Johnson",
    "Wirth",
    "Wilson",
    "Knuth",
    "Goldwasser",
    "Lamport",
];
const UNICODE_GIVEN: &[&str] = &[
    "Zoë", "Jürgen", "Søren", "Łukasz", "José", "Ōta", "Ngọc", "Ærin",
];
const UNICODE_SURNAMES: &[&str] = &[
    "Ångström",
    "Müller",
    "Kierkegård",
    "Wałęsa",
    "Peña",
    "Hirō",
    "Nguyễn",
    "Øster",
];

const DOMAIN_SEP_CASE: u64 = 1;
const DOMAIN_SEP_TENANT: u64 = 2;
const DOMAIN_SEP_APP: u64 = 3;
const DOMAIN_SEP_GROUP: u64 = 4;
const DOMAIN_SEP_FEDERATION: u64 = 5;
const DOMAIN_SEP_SECRET: u64 = 6;
const DOMAIN_SEP_APP_ROLES: u64 = 7;
const DOMAIN_SEP_SERVICE_PRINCIPAL: u64 = 8;
const DOMAIN_SEP_APP_ROLE_ID: u64 = 9;
const DOMAIN_SEP_ASSIGNMENT_ID: u64 = 10;
const DOMAIN_SEP_PARTNER_TENANT: u64 = 11;

/// The tenant id the simulator gives an external Entra domain that the tenant file does not
/// name (`tenantIds`): stable, lower-case, derived from the lower-case domain alone, so
/// generated and file tenants agree on it.
pub fn partner_tenant_id(domain: &str) -> String {
    // FNV-1a: a fixed, dependency-free hash of the name.
    let hash = domain
        .to_ascii_lowercase()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    stable_guid(hash, DOMAIN_SEP_PARTNER_TENANT, 0)
}
const DOMAIN_SEP_CONTACT: u64 = 11;
const DOMAIN_SEP_PROFILE: u64 = 12;

/// The generated tenant's org contacts that hold nobody else's address: `(display name,
/// mail)`. Listed first in `/contacts`; "Partners – Pilot" has the first as a direct member
/// and "Partners – Wave 2 late joiners" the second (so "Partners – Wave 2" and "All partners"
/// reach it through nesting).
pub const PLAIN_CONTACTS: &[(&str, &str)] = &[
    ("Fabrikam partner desk", "partner.desk@fabrikam.com"),
    ("Adatum accounts payable", "accounts.payable@adatum.com"),
    ("Litware support", "support@litwareinc.com"),
];

/// The enterprise apps (service principals) generated users are assigned to. Each has the
/// default role (`00000000-…`, "assigned without a specific role") and one named role.
pub const ENTERPRISE_APPS: &[&str] = &[
    "Contoso Partner Portal",
    "Fabrikam Expenses",
    "Supplier Catalog",
    "Contoso Wiki",
];

/// Most app role assignments a generated user has.
pub const MAX_APP_ROLE_ASSIGNMENTS: u64 = 3;

/// A generated group: `(id, display name, direct user-index ranges, nested group positions)`.
pub type GroupLayout = (String, String, Vec<Range<u64>>, Vec<usize>);

/// A generated tenant of `users` users: every user is a pure function of `(seed, index)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GeneratedTenant {
    pub seed: u64,
    pub users: u64,
}

/// The parts of a user that its neighbour needs (for proxy-address collisions).
struct Base {
    case: UserCase,
    local: String,
    external_domain: &'static str,
    rng: SplitMix64,
    given: &'static str,
    surname: &'static str,
}

impl GeneratedTenant {
    pub fn new(seed: u64, users: u64) -> Self {
        Self { seed, users }
    }

    /// The tenant id (a stable GUID per seed).
    pub fn tenant_id(&self) -> String {
        stable_guid(self.seed, DOMAIN_SEP_TENANT, 0)
    }

    /// The case of user `index`.
    pub fn case_of(&self, index: u64) -> UserCase {
        let roll = keyed(self.seed, DOMAIN_SEP_CASE, index) % 1000;
        let mut acc = 0;
        let mut case = UserCase::CloudMailExternal;
        for (candidate, weight) in CASE_MIX {
            acc += weight;
            if roll < acc {
                case = *candidate;
                break;
            }
        }
        // A collision needs a partner user (index ^ 1) to hold the address.
        if case == UserCase::ProxyAddressCollision && (index ^ 1) >= self.users {
            return UserCase::CloudMailExternal;
        }
        case
    }

    /// Positions in the org contact listing: the [`PLAIN_CONTACTS`] first, then one slot per
    /// user index (a contact only where the user is a `ContactAddressCollision`), so the
    /// listing pages by position without holding the contacts in memory.
    pub fn contact_positions(&self) -> u64 {
        PLAIN_CONTACTS.len() as u64 + self.users
    }

    /// The org contact at listing `position`, if that slot holds one.
    pub fn contact_at(&self, position: u64) -> Option<OrgContact> {
        let plain = PLAIN_CONTACTS.len() as u64;
        let id = stable_guid(self.seed, DOMAIN_SEP_CONTACT, position);
        if position < plain {
            let (name, mail) = PLAIN_CONTACTS[usize::try_from(position).ok()?];
            return Some(OrgContact {
                id,
                display_name: Some(name.to_owned()),
                mail: Some(mail.to_owned()),
                mail_nickname: mail.split_once('@').map(|(local, _)| local.to_owned()),
                proxy_addresses: vec![format!("SMTP:{mail}")],
                ..OrgContact::default()
            });
        }
        let index = position - plain;
        if index >= self.users || self.case_of(index) != UserCase::ContactAddressCollision {
            return None;
        }
        let base = self.base(index);
        let mail = Self::external_address(&base);
        Some(OrgContact {
            id,
            display_name: Some(format!("{} {} (mail contact)", base.given, base.surname)),
            given_name: Some(base.given.to_owned()),
            surname: Some(base.surname.to_owned()),
            company_name: Some(base.external_domain.to_owned()),
            mail_nickname: Some(base.local.clone()),
            proxy_addresses: vec![format!("SMTP:{mail}")],
            mail: Some(mail),
            on_premises_sync_enabled: None,
        })
    }

    /// The org contact that holds `address`, if any (O(1): generated addresses end with their
    /// user's index).
    pub fn contact_holding(&self, address: &str) -> Option<OrgContact> {
        if let Some(k) = PLAIN_CONTACTS
            .iter()
            .position(|(_, mail)| mail.eq_ignore_ascii_case(address))
        {
            return self.contact_at(k as u64);
        }
        let index = trailing_index(address)?;
        self.contact_at(PLAIN_CONTACTS.len() as u64 + index)
            .filter(|c| c.holds(address))
    }

    /// The org contacts (listing positions) among group `k`'s direct members (`k` as in
    /// [`groups`](Self::groups)).
    pub fn group_contacts(&self, k: usize) -> Vec<u64> {
        match k {
            0 => vec![0],
            2 => vec![1],
            _ => Vec::new(),
        }
    }

    /// The first user at or after `from` whose case is `case`.
    pub fn find(&self, case: UserCase, from: u64) -> Option<u64> {
        (from..self.users).find(|&i| self.case_of(i) == case)
    }

    /// The object id of user `index`.
    pub fn id_of(&self, index: u64) -> String {
        indexed_guid(self.seed, index)
    }

    /// The index of the user with this object id.
    pub fn index_of_id(&self, id: &str) -> Option<u64> {
        decode_indexed_guid(self.seed, id).filter(|i| *i < self.users)
    }

    /// The index of the user with this UPN (case-insensitive).
    pub fn index_of_upn(&self, upn: &str) -> Option<u64> {
        let index = trailing_index(upn)?;
        (index < self.users
            && self
                .user(index)
                .user_principal_name
                .eq_ignore_ascii_case(upn))
        .then_some(index)
    }

    /// Users that might hold `address` in `mail`, `otherMails` or `proxyAddresses`.
    ///
    /// Every generated address carries its owner's index, and collisions are only between
    /// `i` and `i ^ 1`, so the candidates are those two.
    pub fn address_candidates(&self, address: &str) -> Vec<u64> {
        let Some(index) = trailing_index(address) else {
            return Vec::new();
        };
        [index, index ^ 1]
            .into_iter()
            .filter(|i| *i < self.users)
            .collect()
    }

    /// The local part of user `index`'s UPN as generated (before any change), without building
    /// the user: what a `startsWith(userPrincipalName,…)` scan tests first.
    pub fn upn_local_part(&self, index: u64) -> String {
        self.base(index).local
    }

    fn base(&self, index: u64) -> Base {
        let case = self.case_of(index);
        let mut rng = SplitMix64::new(keyed(self.seed, 0xBA5E, index));
        let (given, surname) = if case == UserCase::CloudUnicodeName {
            (*rng.pick(UNICODE_GIVEN), *rng.pick(UNICODE_SURNAMES))
        } else {
            (*rng.pick(GIVEN), *rng.pick(SURNAMES))
        };
        let local = format!("{}.{}.{index}", ascii_fold(given), ascii_fold(surname));
        let external_domain = match case {
            UserCase::DirectFederationDomain => DIRECT_FEDERATION_DOMAIN,
            UserCase::RealmFederated => FEDERATED_REALM_DOMAIN,
            UserCase::RealmUnknown => UNKNOWN_REALM_DOMAIN,
            _ => rng.pick(MANAGED_PARTNER_DOMAINS),
        };
        Base {
            case,
            local,
            external_domain,
            rng,
            given,
            surname,
        }
    }

    /// The address user `index` is generated to be invited with (if any).
    fn external_address(base: &Base) -> String {
        format!("{}@{}", base.local, base.external_domain)
    }

    /// Names and language as directories hold them: most users have both names and a
    /// `preferredLanguage` (mostly `en-US`, some `fr-FR`, `de-DE`, `ja-JP`, `en-GB`, `nl-NL`),
    /// some no language, a few neither names nor language (accounts an admin created by hand).
    /// From their own random stream, so the other properties do not depend on them.
    fn profile(&self, index: u64, user: &mut User) {
        let roll = keyed(self.seed, DOMAIN_SEP_PROFILE, index) % 100;
        if roll < 6 {
            user.given_name = None;
            user.surname = None;
            return;
        }
        let language = match roll {
            6..=55 => Some("en-US"),
            56..=67 => None,
            68..=77 => Some("fr-FR"),
            78..=86 => Some("de-DE"),
            87..=92 => Some("ja-JP"),
            93..=96 => Some("en-GB"),
            _ => Some("nl-NL"),
        };
        user.preferred_language = language.map(str::to_owned);
    }

    /// User `index` as initially generated (no mutations applied).
    #[allow(clippy::too_many_lines)] // one arm per case reads better than helpers here
    pub fn user(&self, index: u64) -> User {
        let mut base = self.base(index);
        let case = base.case;
        let id = self.id_of(index);
        let external = Self::external_address(&base);
        let internal = format!("{}@{DEFAULT_DOMAIN}", base.local);
        let upn = internal.clone();
        let display_name = format!("{} {}", base.given, base.surname);
        let mut user = User {
            id,
            display_name: Some(display_name.clone()),
            given_name: Some(base.given.to_owned()),
            surname: Some(base.surname.to_owned()),
            user_principal_name: upn.clone(),
            mail: None,
            other_mails: Vec::new(),
            proxy_addresses: Vec::new(),
            user_type: Some("Member".to_owned()),
            account_enabled: Some(true),
            creation_type: None,
            external_user_state: None,
            external_user_state_change_date_time: None,
            external_user_converted_on: None,
            on_premises_sync_enabled: None,
            on_premises_immutable_id: None,
            on_premises_sam_account_name: None,
            on_premises_distinguished_name: None,
            on_premises_domain_name: None,
            on_premises_user_principal_name: None,
            assigned_licenses: Vec::new(),
            assigned_plans: Vec::new(),
            provisioned_plans: Vec::new(),
            identities: vec![ObjectIdentity {
                sign_in_type: Some("userPrincipalName".to_owned()),
                issuer: Some(INITIAL_DOMAIN.to_owned()),
                issuer_assigned_id: Some(upn.clone()),
            }],
            business_phones: Vec::new(),
            job_title: Some("Partner consultant".to_owned()),
            mobile_phone: None,
            office_location: None,
            preferred_language: None,
        };
        self.profile(index, &mut user);
        match case {
            UserCase::CloudMailExternal
            | UserCase::ConvertedBackToInternal
            | UserCase::Disabled
            | UserCase::ProxyAddressCollision
            | UserCase::DirectFederationDomain
            | UserCase::RealmFederated
            | UserCase::RealmUnknown => {
                user.mail = Some(external.clone());
                user.other_mails = vec![external.clone()];
                if case == UserCase::Disabled {
                    user.account_enabled = Some(false);
                }
                if case == UserCase::ConvertedBackToInternal {
                    user.external_user_converted_on = Some(date_time(self.seed, index, 2));
                }
            }
            UserCase::CloudOtherMailOnly | UserCase::ContactAddressCollision => {
                user.other_mails = vec![external];
            }
            UserCase::CloudInternalMailOneExternal => {
                user.mail = Some(internal.clone());
                user.other_mails = vec![external];
            }
            UserCase::CloudSeveralExternal => {
                let second = loop {
                    let candidate = *base.rng.pick(MANAGED_PARTNER_DOMAINS);
                    if candidate != base.external_domain {
                        break candidate;
                    }
                };
                user.other_mails = vec![external, format!("{}@{second}", base.local)];
            }
            UserCase::CloudInternalOnly => {
                user.mail = Some(internal.clone());
                user.other_mails = vec![format!("{}@contoso.co.uk", base.local)];
            }
            UserCase::CloudNoAddress => {}
            UserCase::CloudPlusAddressed => {
                let (name, domain) = external.split_once('@').unwrap_or((&external, ""));
                user.other_mails = vec![format!("{name}+contoso@{domain}")];
            }
            UserCase::CloudForbiddenCharacters => {
                user.other_mails = vec![format!(
                    "{}#{}.{index}@{}",
                    ascii_fold(base.given),
                    ascii_fold(base.surname),
                    base.external_domain
                )];
            }
            UserCase::CloudUnicodeName => {
                let local = format!(
                    "{}.{}.{index}",
                    base.given.to_lowercase(),
                    base.surname.to_lowercase()
                );
                user.other_mails = vec![format!("{local}@{}", base.external_domain)];
            }
            UserCase::SyncedConvertible
            | UserCase::SyncedOnPremisesUpn
            | UserCase::UnsyncedOnPremisesUpn => {
                user.mail = Some(external.clone());
                // Switching directory sync off leaves the on-premises attributes behind.
                user.on_premises_sync_enabled = Some(case != UserCase::UnsyncedOnPremisesUpn);
                user.on_premises_immutable_id = Some(immutable_id(self.seed, index));
                let sam: String = format!("{}{}", ascii_fold(base.given), index)
                    .chars()
                    .take(20)
                    .collect();
                user.on_premises_sam_account_name = Some(sam);
                user.on_premises_distinguished_name = Some(format!(
                    "CN={display_name},OU=Partners,DC=corp,DC=contoso,DC=com"
                ));
                user.on_premises_domain_name = Some("corp.contoso.com".to_owned());
                if case != UserCase::SyncedConvertible {
                    user.on_premises_user_principal_name = Some(upn.clone());
                }
            }
            UserCase::ExchangeMailbox => {
                user.mail = Some(internal.clone());
                user.other_mails = vec![external];
                user.proxy_addresses = vec![
                    format!("SMTP:{internal}"),
                    format!("smtp:{}@{INITIAL_DOMAIN}", base.local),
                ];
                let (sku, plan) = if base.rng.below(2) == 0 {
                    (SKU_ENTERPRISEPACK, EXCHANGE_S_ENTERPRISE)
                } else {
                    (SKU_EXCHANGESTANDARD, EXCHANGE_S_STANDARD)
                };
                let status =
                    *base
                        .rng
                        .pick(&["Enabled", "Enabled", "Enabled", "Warning", "Suspended"]);
                let when = date_time(self.seed, index, 0);
                user.assigned_licenses = vec![AssignedLicense {
                    sku_id: Some(sku.to_owned()),
                    disabled_plans: Vec::new(),
                }];
                user.assigned_plans = vec![plan_item(&when, status, "exchange", plan)];
                if sku == SKU_ENTERPRISEPACK {
                    user.assigned_plans.push(plan_item(
                        &when,
                        "Enabled",
                        "SharePoint",
                        SHAREPOINT_S_ENTERPRISE,
                    ));
                }
                user.provisioned_plans = vec![ProvisionedPlan {
                    capability_status: Some(status.to_owned()),
                    provisioning_status: Some("Success".to_owned()),
                    service: Some("exchange".to_owned()),
                }];
            }
            UserCase::ExchangeFoundationOnly | UserCase::ExchangeAddOnPlan => {
                user.mail = Some(external.clone());
                user.other_mails = vec![external];
                let when = date_time(self.seed, index, 0);
                user.assigned_licenses = vec![AssignedLicense {
                    sku_id: Some(SKU_EMS.to_owned()),
                    disabled_plans: Vec::new(),
                }];
                user.assigned_plans = vec![
                    plan_item(&when, "Enabled", "exchange", EXCHANGE_S_FOUNDATION),
                    plan_item(&when, "Enabled", "SCO", INTUNE_A),
                ];
                if case == UserCase::ExchangeAddOnPlan {
                    user.assigned_plans.push(plan_item(
                        &when,
                        "Enabled",
                        "exchange",
                        EOP_ENTERPRISE,
                    ));
                }
                user.provisioned_plans = vec![ProvisionedPlan {
                    capability_status: Some("Enabled".to_owned()),
                    provisioning_status: Some("Success".to_owned()),
                    service: Some("exchange".to_owned()),
                }];
            }
            UserCase::AlreadyInvited => {
                user.mail = Some(external.clone());
                user.other_mails = vec![external];
                user.external_user_state = Some("PendingAcceptance".to_owned());
                user.external_user_state_change_date_time = Some(date_time(self.seed, index, 1));
            }
            UserCase::AlreadyRedeemed => {
                user.mail = Some(external.clone());
                user.other_mails = vec![external];
                user.external_user_state = Some("Accepted".to_owned());
                user.external_user_state_change_date_time = Some(date_time(self.seed, index, 1));
                user.identities.push(ObjectIdentity {
                    sign_in_type: Some("federated".to_owned()),
                    issuer: Some("ExternalAzureAD".to_owned()),
                    issuer_assigned_id: None,
                });
                if index.is_multiple_of(2) {
                    // An originally invited guest rather than a converted member.
                    user.creation_type = Some("Invitation".to_owned());
                    user.user_type = Some("Guest".to_owned());
                }
            }
            UserCase::LocalGuest => {
                user.mail = Some(external.clone());
                user.other_mails = vec![external];
                user.user_type = Some("Guest".to_owned());
                user.user_principal_name = format!("{}@{INITIAL_DOMAIN}", base.local);
                user.identities[0].issuer_assigned_id = Some(user.user_principal_name.clone());
            }
        }
        if user.proxy_addresses.is_empty()
            && let Some(mail) = &user.mail
        {
            user.proxy_addresses.push(format!("SMTP:{mail}"));
        }
        // The partner of a collision user holds its address as a secondary proxy address.
        let partner = index ^ 1;
        if partner < self.users && self.case_of(partner) == UserCase::ProxyAddressCollision {
            let partner_base = self.base(partner);
            user.proxy_addresses
                .push(format!("smtp:{}", Self::external_address(&partner_base)));
        }
        user
    }

    /// The service principal id of enterprise app `app` (a position in [`ENTERPRISE_APPS`]).
    pub fn service_principal_id(&self, app: usize) -> String {
        stable_guid(self.seed, DOMAIN_SEP_SERVICE_PRINCIPAL, app as u64)
    }

    /// User `index`'s app role assignments as generated: 0 to [`MAX_APP_ROLE_ASSIGNMENTS`]
    /// (by a hash of the index), each to a different enterprise app.
    pub fn app_role_assignments(&self, index: u64) -> Vec<AppRoleAssignment> {
        let roll = keyed(self.seed, DOMAIN_SEP_APP_ROLES, index);
        let count = roll % (MAX_APP_ROLE_ASSIGNMENTS + 1);
        let apps = ENTERPRISE_APPS.len() as u64;
        let first = (roll >> 8) % apps;
        (0..count)
            .map(|k| {
                let app = (first + k) % apps;
                let app_role_id = if (roll >> (16 + k)) & 1 == 0 {
                    DEFAULT_APP_ROLE_ID.to_owned()
                } else {
                    stable_guid(self.seed, DOMAIN_SEP_APP_ROLE_ID, app)
                };
                let app_position = usize::try_from(app).unwrap_or(0);
                AppRoleAssignment {
                    id: assignment_id(self.seed, index, k),
                    app_role_id,
                    resource_id: self.service_principal_id(app_position),
                    resource_display_name: ENTERPRISE_APPS[app_position].to_owned(),
                    created_date_time: date_time(self.seed, index, 10 + k),
                }
            })
            .collect()
    }

    /// The generated tenant's verified domains.
    pub fn domains() -> Vec<Domain> {
        let domain = |id: &str, default: bool, initial: bool, root: bool| Domain {
            id: id.to_owned(),
            authentication_type: "Managed".to_owned(),
            availability_status: None,
            is_admin_managed: true,
            is_default: default,
            is_initial: initial,
            is_root: root,
            is_verified: true,
            supported_services: if initial {
                vec!["Email".to_owned(), "OfficeCommunicationsOnline".to_owned()]
            } else {
                vec!["Email".to_owned()]
            },
        };
        vec![
            domain(INITIAL_DOMAIN, false, true, true),
            domain(DEFAULT_DOMAIN, true, false, true),
            domain("contoso.co.uk", false, false, true),
            domain("partners.contoso.com", false, false, false),
        ]
    }

    /// The generated tenant's direct-federation configuration.
    pub fn federation(&self) -> Vec<FederationConfiguration> {
        vec![FederationConfiguration {
            id: stable_guid(self.seed, DOMAIN_SEP_FEDERATION, 0),
            display_name: Some("Woodgrove Bank AD FS".to_owned()),
            issuer_uri: Some("https://sts.woodgrovebank.com/adfs/services/trust".to_owned()),
            metadata_exchange_uri: Some(
                "https://sts.woodgrovebank.com/adfs/services/trust/mex".to_owned(),
            ),
            passive_sign_in_uri: Some("https://sts.woodgrovebank.com/adfs/ls".to_owned()),
            preferred_authentication_protocol: Some("wsFed".to_owned()),
            signing_certificate: Some("MIIDADCCAeigAwIBAgIQSimulatedSigningCertificate".to_owned()),
            domains: vec![DIRECT_FEDERATION_DOMAIN.to_owned()],
        }]
    }

    /// User realms of the external domains the generator uses.
    pub fn realms() -> BTreeMap<String, RealmKind> {
        let mut realms: BTreeMap<String, RealmKind> = MANAGED_PARTNER_DOMAINS
            .iter()
            .map(|d| ((*d).to_owned(), RealmKind::Managed))
            .collect();
        realms.insert(FEDERATED_REALM_DOMAIN.to_owned(), RealmKind::Federated);
        realms.insert(UNKNOWN_REALM_DOMAIN.to_owned(), RealmKind::Unknown);
        realms.insert(DIRECT_FEDERATION_DOMAIN.to_owned(), RealmKind::Federated);
        for domain in Self::domains() {
            realms.insert(domain.id, RealmKind::Managed);
        }
        realms
    }

    /// The generated tenant's cross-tenant access partner entries: automatic redemption on
    /// for [`AUTO_REDEEM_PARTNER_DOMAINS`], off for [`CONSENT_PARTNER_DOMAIN`], inherited for
    /// [`INHERITING_PARTNER_DOMAIN`]; the other partner tenants have no entry.
    pub fn cross_tenant_partners() -> Vec<CrossTenantPartner> {
        let entry = |domain: &str, inbound_allowed| CrossTenantPartner {
            tenant_id: partner_tenant_id(domain),
            automatic_user_consent_settings: InboundOutboundPolicyConfiguration {
                inbound_allowed,
                outbound_allowed: None,
            },
            is_service_provider: Some(false),
            is_in_multi_tenant_organization: Some(false),
        };
        AUTO_REDEEM_PARTNER_DOMAINS
            .iter()
            .map(|domain| entry(domain, Some(true)))
            .chain([
                entry(CONSENT_PARTNER_DOMAIN, Some(false)),
                entry(INHERITING_PARTNER_DOMAIN, None),
            ])
            .collect()
    }

    /// Groups for wave selection: `(id, name, direct user ranges, nested group positions)`.
    ///
    /// "All partners" nests "Wave 2", which nests "Wave 2 – late joiners" (two levels).
    #[allow(clippy::single_range_in_vec_init)] // a group's members are a list of ranges; these have one
    pub fn groups(&self) -> Vec<GroupLayout> {
        let n = self.users;
        let pilot_end = n.min(20);
        let half = (n / 2).max(pilot_end);
        let late_end = (half + n / 10).min(n);
        let tail_start = (n - n / 10).max(late_end);
        let gid = |k: u64| stable_guid(self.seed, DOMAIN_SEP_GROUP, k);
        vec![
            (
                gid(0),
                "Partners – Pilot".to_owned(),
                vec![0..pilot_end],
                vec![],
            ),
            (
                gid(1),
                "Partners – Wave 2".to_owned(),
                vec![pilot_end..half],
                vec![2],
            ),
            (
                gid(2),
                "Partners – Wave 2 late joiners".to_owned(),
                vec![half..late_end],
                vec![],
            ),
            (
                gid(3),
                "All partners".to_owned(),
                vec![tail_start..n],
                vec![0, 1],
            ),
        ]
    }

    /// The app registrations of a generated tenant: a full-permission app and a reader app.
    pub fn applications(&self, certificate_pem: Option<&str>) -> Vec<AppRegistration> {
        let scopes: Vec<String> = [
            "User.Read.All",
            "User.Invite.All",
            "User.ReadWrite.All",
            "Domain.Read.All",
            "Organization.Read.All",
            "IdentityProvider.Read.All",
            "GroupMember.Read.All",
            // The partner pre-flight reads the cross-tenant access settings.
            "Policy.Read.All",
            // `verify` (and baselines before `run` invites) read memberOf and app role
            // assignments, documented under Directory.Read.All for app-only tokens.
            "Directory.Read.All",
            // `verify` corroborates conversions with the directory audit log.
            "AuditLog.Read.All",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let without_audit_log: Vec<String> = scopes
            .iter()
            .filter(|s| *s != "AuditLog.Read.All")
            .cloned()
            .collect();
        vec![
            AppRegistration {
                client_id: stable_guid(self.seed, DOMAIN_SEP_APP, 0),
                display_name: "b2b-convert (simulated)".to_owned(),
                secrets: vec![format!(
                    "sim~{:016x}",
                    keyed(self.seed, DOMAIN_SEP_SECRET, 0)
                )],
                certificates: certificate_pem.map(str::to_owned).into_iter().collect(),
                roles: scopes.clone(),
                delegated_scopes: scopes,
                public_client: true,
            },
            AppRegistration {
                client_id: stable_guid(self.seed, DOMAIN_SEP_APP, 1),
                display_name: "b2b-convert reader (simulated)".to_owned(),
                secrets: vec![format!(
                    "sim~{:016x}",
                    keyed(self.seed, DOMAIN_SEP_SECRET, 1)
                )],
                certificates: Vec::new(),
                roles: vec!["User.Read.All".to_owned()],
                delegated_scopes: vec!["User.Read.All".to_owned()],
                public_client: false,
            },
            // Everything but the audit log: `verify` without its corroboration.
            AppRegistration {
                client_id: stable_guid(self.seed, DOMAIN_SEP_APP, 2),
                display_name: "b2b-convert without audit log (simulated)".to_owned(),
                secrets: vec![format!(
                    "sim~{:016x}",
                    keyed(self.seed, DOMAIN_SEP_SECRET, 2)
                )],
                certificates: Vec::new(),
                roles: without_audit_log.clone(),
                delegated_scopes: without_audit_log,
                public_client: false,
            },
        ]
    }
}

fn plan_item(when: &str, status: &str, service: &str, plan: &str) -> AssignedPlan {
    AssignedPlan {
        assigned_date_time: Some(when.to_owned()),
        capability_status: Some(status.to_owned()),
        service: Some(service.to_owned()),
        service_plan_id: Some(plan.to_owned()),
    }
}

/// A fixed date between 2024-01-01 and about 2025-02 for `(seed, index, which)`.
fn date_time(seed: u64, index: u64, which: u64) -> String {
    let offset = keyed(seed, 0xDA7E + which, index) % (400 * 86_400);
    format_unix(1_704_067_200 + i64::try_from(offset).unwrap_or(0))
}

/// Formats Unix seconds the way Graph does (`2024-03-01T08:00:00Z`).
pub fn format_unix(seconds: i64) -> String {
    OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// A Graph-looking app role assignment id: 32 bytes, base64url without padding (43 chars).
fn assignment_id(seed: u64, index: u64, k: u64) -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    for (part, chunk) in bytes.chunks_mut(8).enumerate() {
        let value = keyed(
            seed,
            DOMAIN_SEP_ASSIGNMENT_ID + 16 * k,
            index ^ ((part as u64) << 56),
        );
        chunk.copy_from_slice(&value.to_le_bytes());
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn immutable_id(seed: u64, index: u64) -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&keyed(seed, 0x1D, index).to_le_bytes());
    bytes[8..].copy_from_slice(&keyed(seed, 0x1E, index).to_le_bytes());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The number at the end of an address's (or UPN's) local part: `ada.lovelace.42@x` -> 42.
fn trailing_index(address: &str) -> Option<u64> {
    let local = address.split('@').next()?;
    let local = local.split('+').next()?;
    let digits: String = local
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect();
    if digits.is_empty() {
        return None;
    }
    digits.chars().rev().collect::<String>().parse().ok()
}

/// Lowercase ASCII letters (and `-`) only: Unicode names become their closest ASCII form.
fn ascii_fold(name: &str) -> String {
    name.chars()
        .filter_map(|c| {
            let folded = match c {
                'à'..='å' | 'À'..='Å' | 'ą' | 'æ' | 'Æ' => 'a',
                'ç' | 'Ç' => 'c',
                'è'..='ë' | 'È'..='Ë' | 'ę' | 'ễ' => 'e',
                'ì'..='ï' => 'i',
                'ł' | 'Ł' => 'l',
                'ñ' => 'n',
                'ò'..='ö' | 'ø' | 'Ø' | 'Ò'..='Ö' | 'ō' | 'Ō' | 'ọ' => 'o',
                'ù'..='ü' | 'Ù'..='Ü' => 'u',
                other if other.is_ascii_alphabetic() || other == '-' => other,
                _ => return None,
            };
            Some(folded.to_ascii_lowercase())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_thousand() {
        assert_eq!(CASE_MIX.iter().map(|(_, w)| w).sum::<u64>(), 1000);
    }

    #[test]
    fn generation_is_deterministic_and_seed_dependent() {
        let a = GeneratedTenant::new(7, 1000);
        let b = GeneratedTenant::new(7, 1000);
        let c = GeneratedTenant::new(8, 1000);
        assert_eq!(a.user(123), b.user(123));
        assert_ne!(a.user(123).id, c.user(123).id);
    }

    #[test]
    fn the_generated_mix_matches_the_documented_weights() {
        let tenant = GeneratedTenant::new(2, 20_000);
        let mut counts = std::collections::BTreeMap::new();
        for index in 0..tenant.users {
            *counts.entry(tenant.case_of(index)).or_insert(0u64) += 1;
        }
        for (case, weight) in CASE_MIX {
            let expected = weight * 20;
            let actual = counts.get(case).copied().unwrap_or(0);
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )] // small counts
            let tolerance = (4.0 * (expected as f64).sqrt()) as u64;
            assert!(
                actual.abs_diff(expected) <= tolerance,
                "{case:?}: {actual} vs {expected}"
            );
        }
    }

    #[test]
    fn every_case_is_findable_in_a_small_tenant() {
        let tenant = GeneratedTenant::new(1, 2000);
        for case in UserCase::all() {
            let index = tenant
                .find(case, 0)
                .unwrap_or_else(|| panic!("no user of case {case:?}"));
            assert_eq!(tenant.case_of(index), case);
        }
    }

    #[test]
    fn lookups_invert_generation() {
        let tenant = GeneratedTenant::new(3, 5000);
        for index in [0, 1, 17, 4999] {
            let user = tenant.user(index);
            assert_eq!(tenant.index_of_id(&user.id), Some(index));
            assert_eq!(
                tenant.index_of_upn(&user.user_principal_name.to_uppercase()),
                Some(index)
            );
        }
        assert_eq!(
            tenant.index_of_id(&GeneratedTenant::new(3, 6000).id_of(5500)),
            None,
            "index beyond size"
        );
    }

    #[test]
    fn collision_partner_holds_the_address_in_proxy_addresses() {
        let tenant = GeneratedTenant::new(5, 5000);
        let index = tenant
            .find(UserCase::ProxyAddressCollision, 0)
            .expect("a collision user");
        let user = tenant.user(index);
        let address = user.mail.clone().expect("collision users have mail");
        let partner = tenant.user(index ^ 1);
        assert!(
            partner
                .proxy_addresses
                .iter()
                .any(|p| p.eq_ignore_ascii_case(&format!("smtp:{address}"))),
            "{partner:?} should hold {address}"
        );
        assert!(tenant.address_candidates(&address).contains(&(index ^ 1)));
    }

    #[test]
    fn app_role_assignments_are_deterministic_and_spread_over_zero_to_three() {
        let tenant = GeneratedTenant::new(4, 2000);
        let mut seen = [0u32; 4];
        for index in 0..tenant.users {
            let assignments = tenant.app_role_assignments(index);
            assert_eq!(assignments, tenant.app_role_assignments(index));
            seen[assignments.len()] += 1;
            let apps: std::collections::HashSet<&str> =
                assignments.iter().map(|a| a.resource_id.as_str()).collect();
            assert_eq!(apps.len(), assignments.len(), "one assignment per app");
            for assignment in &assignments {
                assert_eq!(assignment.id.len(), 43);
                assert!(ENTERPRISE_APPS.contains(&assignment.resource_display_name.as_str()));
            }
        }
        assert!(seen.iter().all(|n| *n > 400), "{seen:?}");
        let ids: std::collections::HashSet<String> = (0..200)
            .flat_map(|i| tenant.app_role_assignments(i))
            .map(|a| a.id)
            .collect();
        let total: usize = (0..200).map(|i| tenant.app_role_assignments(i).len()).sum();
        assert_eq!(ids.len(), total, "assignment ids are unique");
    }

    #[test]
    fn ascii_fold_handles_unicode_names() {
        assert_eq!(ascii_fold("Ångström"), "angstrom");
        assert_eq!(ascii_fold("Berners-Lee"), "berners-lee");
        assert_eq!(trailing_index("ada.lovelace.42+x@fabrikam.com"), Some(42));
        assert_eq!(trailing_index("nobody@x"), None);
    }
}
