//! Every reason a plan can give for a user, with its stable code, a one-line explanation and
//! the fix. `docs/rules.md` explains each code with its source; a test keeps the two in step.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::Rule;

/// Why a user is blocked or warned about. The code is stable: it is stored and shown in
/// reports, and the switchable ones are config keys under `[rules]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    // Switchable rules (config `[rules]`), see `domain::Rule`.
    ExchangeMailbox,
    DirectFederation,
    HomeRealmNotEntra,
    OnPremisesUpnSet,
    DisabledAccount,
    ExchangeAddOnPlan,
    CustomMessageDropped,
    RedirectWithoutTenant,
    // Checks the service itself enforces, or without which there is nothing to invite.
    AlreadyExternal,
    ConvertedBackToInternal,
    NoAddress,
    NoExternalAddress,
    AmbiguousAddress,
    OverrideNotACandidate,
    InvalidAddress,
    VerifiedDomainAddress,
    AddressCollision,
    DuplicateInWave,
    OperatorExcluded,
    InAnotherWave,
    ConvertedInAnotherWave,
    // Information for the report, never blocking.
    RealmNotChecked,
    SetMailFirst,
    // About the whole wave: what the snapshot could not check.
    ContactsNotChecked,
}

impl Reason {
    pub const ALL: [Self; 24] = [
        Self::ExchangeMailbox,
        Self::DirectFederation,
        Self::HomeRealmNotEntra,
        Self::OnPremisesUpnSet,
        Self::DisabledAccount,
        Self::ExchangeAddOnPlan,
        Self::CustomMessageDropped,
        Self::RedirectWithoutTenant,
        Self::AlreadyExternal,
        Self::ConvertedBackToInternal,
        Self::NoAddress,
        Self::NoExternalAddress,
        Self::AmbiguousAddress,
        Self::OverrideNotACandidate,
        Self::InvalidAddress,
        Self::VerifiedDomainAddress,
        Self::AddressCollision,
        Self::DuplicateInWave,
        Self::OperatorExcluded,
        Self::InAnotherWave,
        Self::ConvertedInAnotherWave,
        Self::RealmNotChecked,
        Self::SetMailFirst,
        Self::ContactsNotChecked,
    ];

    /// The stable code.
    pub const fn code(self) -> &'static str {
        match self {
            Self::ExchangeMailbox => "exchange-mailbox",
            Self::DirectFederation => "direct-federation",
            Self::HomeRealmNotEntra => "home-realm-not-entra",
            Self::OnPremisesUpnSet => "on-premises-upn-set",
            Self::DisabledAccount => "disabled-account",
            Self::ExchangeAddOnPlan => "exchange-add-on-plan",
            Self::CustomMessageDropped => "custom-message-dropped",
            Self::RedirectWithoutTenant => "redirect-without-tenant",
            Self::AlreadyExternal => "already-external",
            Self::ConvertedBackToInternal => "converted-back-to-internal",
            Self::NoAddress => "no-address",
            Self::NoExternalAddress => "no-external-address",
            Self::AmbiguousAddress => "ambiguous-address",
            Self::OverrideNotACandidate => "override-not-a-candidate",
            Self::InvalidAddress => "invalid-address",
            Self::VerifiedDomainAddress => "verified-domain-address",
            Self::AddressCollision => "address-collision",
            Self::DuplicateInWave => "duplicate-in-wave",
            Self::OperatorExcluded => "operator-excluded",
            Self::InAnotherWave => "in-another-wave",
            Self::ConvertedInAnotherWave => "converted-in-another-wave",
            Self::RealmNotChecked => "realm-not-checked",
            Self::SetMailFirst => "set-mail-first",
            Self::ContactsNotChecked => "contacts-not-checked",
        }
    }

    /// The switchable rule behind this reason, if the operator can change its mode.
    pub const fn rule(self) -> Option<Rule> {
        match self {
            Self::ExchangeMailbox => Some(Rule::ExchangeMailbox),
            Self::DirectFederation => Some(Rule::DirectFederation),
            Self::HomeRealmNotEntra => Some(Rule::HomeRealmNotEntra),
            Self::OnPremisesUpnSet => Some(Rule::OnPremisesUpnSet),
            Self::DisabledAccount => Some(Rule::DisabledAccount),
            Self::ExchangeAddOnPlan => Some(Rule::ExchangeAddOnPlan),
            Self::CustomMessageDropped => Some(Rule::CustomMessageDropped),
            Self::RedirectWithoutTenant => Some(Rule::RedirectWithoutTenant),
            _ => None,
        }
    }

    /// What it means, in one line.
    pub const fn summary(self) -> &'static str {
        match self {
            Self::ExchangeMailbox => {
                "the user has an Exchange Online mailbox plan; B2B users with a mailbox are not supported"
            }
            Self::DirectFederation => {
                "the address's domain is set up for SAML/WS-Fed direct federation in this tenant"
            }
            Self::HomeRealmNotEntra => {
                "the cloud-only user's address is not homed in any Entra ID tenant"
            }
            Self::OnPremisesUpnSet => {
                "the user has onPremisesUserPrincipalName set (synced, or left over after sync was switched off), which the service refuses"
            }
            Self::DisabledAccount => "the account is disabled",
            Self::ExchangeAddOnPlan => {
                "the user has a non-mailbox Exchange-family plan, which may scrub the external address"
            }
            Self::CustomMessageDropped => {
                "the custom message is dropped when an app (not a user) sends the invitation"
            }
            Self::RedirectWithoutTenant => {
                "the redirect URL has no tenantId, so Teams may not offer this tenant"
            }
            Self::AlreadyExternal => "the user is already a B2B user (invited or redeemed)",
            Self::ConvertedBackToInternal => {
                "the user was converted from external back to internal, and the service refuses to make it external again"
            }
            Self::NoAddress => "the user has no email address to invite",
            Self::NoExternalAddress => {
                "every address the user has is in one of this tenant's verified domains"
            }
            Self::AmbiguousAddress => "the user has several possible external addresses",
            Self::OverrideNotACandidate => {
                "the address given in the wave list is not one of the user's addresses"
            }
            Self::InvalidAddress => "the address has characters the invitation API refuses",
            Self::VerifiedDomainAddress => {
                "the address is in one of this tenant's verified domains"
            }
            Self::AddressCollision => "another directory object already uses the address",
            Self::DuplicateInWave => {
                "another user in the wave would be invited at the same address"
            }
            Self::OperatorExcluded => "the operator excluded the user",
            Self::InAnotherWave => "the user is also planned in another wave",
            Self::ConvertedInAnotherWave => {
                "another wave (or `invite`) of this tool already invited the user"
            }
            Self::RealmNotChecked => "the home realm of the address's domain is not known",
            Self::ContactsNotChecked => {
                "org contacts were not read, so addresses they hold were not checked for collisions"
            }
            Self::SetMailFirst => "mail will be set to the invitation address before inviting",
        }
    }

    /// How to fix it, in one line.
    pub const fn fix(self) -> &'static str {
        match self {
            Self::ExchangeMailbox => {
                "remove the Exchange licence (and mailbox) first, or set [rules] exchange-mailbox = \"warn\" if you know better"
            }
            Self::DirectFederation => {
                "invite the partner with a fresh guest account instead, or remove the direct-federation configuration"
            }
            Self::HomeRealmNotEntra => {
                "the partner redeems with a Microsoft account or one-time passcode; set [rules] home-realm-not-entra = \"warn\" to allow that"
            }
            Self::OnPremisesUpnSet => {
                "synced: change the Entra Connect sync rule so it does not write onPremisesUserPrincipalName, then sync; sync switched off: the property remains after sync was disabled, so clear it on the user; then discover again"
            }
            Self::DisabledAccount => {
                "enable the account if the partner should sign in after conversion"
            }
            Self::ExchangeAddOnPlan => {
                "remove the named plans from the user's licence before converting (and do not re-license Exchange after), or set [rules] exchange-add-on-plan = \"enforce\" to block such users"
            }
            Self::CustomMessageDropped => {
                "sign in delegated (auth.method = \"device-code\") or send your own message with send_message = false"
            }
            Self::RedirectWithoutTenant => {
                "add ?tenantId=<your tenant id> to invitation.redirect_url"
            }
            Self::AlreadyExternal => {
                "nothing to do; use resetRedemption to let the partner redeem again"
            }
            Self::ConvertedBackToInternal => {
                "invite the partner with a fresh guest account instead; this account cannot be converted again"
            }
            Self::NoAddress => {
                "cloud-only: add the partner's address to otherMails; synced: set mail in on-prem AD"
            }
            Self::NoExternalAddress => {
                "cloud-only: add the partner's own address to otherMails; synced: set mail to it in on-prem AD"
            }
            Self::AmbiguousAddress => "name the address in the wave list's address column",
            Self::OverrideNotACandidate => {
                "use one of the user's addresses, or plan with --allow-new-address"
            }
            Self::InvalidAddress => {
                "use an address without ~ ! # $ % ^ & * ( ) + = [ ] { } \\ / | ; : \" < > ? ,"
            }
            Self::VerifiedDomainAddress => "use the partner's own (external) address",
            Self::AddressCollision => {
                "remove the address from the other object (user or contact) first"
            }
            Self::DuplicateInWave => "give each user their own address in the wave list",
            Self::OperatorExcluded => "remove the user from the exclusion list or group",
            Self::InAnotherWave => {
                "convert the user in one wave only; exclude them from the other (run re-reads the user first, so nobody is invited twice)"
            }
            Self::ConvertedInAnotherWave => {
                "nothing to do: the user is converted (or its invitation is being settled) in that wave; run discover to refresh the snapshot"
            }
            Self::RealmNotChecked => "plan again when realm discovery can reach the login service",
            Self::ContactsNotChecked => {
                "grant OrgContact.Read.All (or Directory.Read.All), run discover, then plan again"
            }
            Self::SetMailFirst => "nothing to do; it needs the User.ReadWrite.All permission",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl std::str::FromStr for Reason {
    type Err = crate::domain::UnknownCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.code() == s)
            .ok_or_else(|| crate::domain::UnknownCode {
                kind: "Reason",
                code: s.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_parse_back_and_match_serde() {
        let mut codes: Vec<_> = Reason::ALL.iter().map(|r| r.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Reason::ALL.len());
        for reason in Reason::ALL {
            assert_eq!(reason.code().parse::<Reason>().unwrap(), reason);
            assert_eq!(
                serde_json::to_value(reason).unwrap(),
                serde_json::json!(reason.code())
            );
        }
    }

    #[test]
    fn every_switchable_rule_has_its_reason_with_the_same_code() {
        for rule in Rule::ALL {
            let reason = Reason::ALL
                .into_iter()
                .find(|r| r.rule() == Some(*rule))
                .unwrap_or_else(|| panic!("no reason for rule {rule}"));
            assert_eq!(reason.code(), rule.code());
        }
    }

    #[test]
    fn every_code_is_explained_in_the_rules_reference() {
        let doc = include_str!("../../docs/rules.md");
        for reason in Reason::ALL {
            assert!(
                doc.contains(&format!("### `{}`", reason.code())),
                "docs/rules.md has no section for `{}`",
                reason.code()
            );
        }
    }
}
