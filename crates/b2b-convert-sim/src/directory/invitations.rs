//! `POST /invitations` as the service runs it: address syntax, the conversion checks of
//! NOTES §1.6 in the service's order, the effect on the user, new guests, and redemption
//! (automatic after a delay, or explicit). The configurable answers to undocumented cases
//! are [`InvitationRules`]; the messages are in [`messages`]. It must not know HTTP.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Directory, DirectoryError, InvitationRecord, MutableState, duration_secs};
use crate::clock::SimClock;
use crate::generate::format_unix;
use crate::model::User;
use crate::rng::{keyed, stable_guid};

/// Characters the invitation service refuses in an address (NOTES §1.1).
pub const FORBIDDEN_ADDRESS_CHARACTERS: &[char] = &[
    '~', '!', '#', '$', '%', '^', '&', '*', '(', ')', '+', '=', '[', ']', '{', '}', '\\', '/', '|',
    ';', ':', '"', '<', '>', '?', ',',
];

/// Service messages the simulator uses for invitation and update failures.
pub mod messages {
    pub const VERIFIED_DOMAIN: &str = "User's email address cannot be in a verified domain. Please change the user's email to enable conversion to a B2B user.";
    pub const ON_PREMISES_UPN: &str = "User invitation failed. Invalid request input.";
    /// 412 for a user converted from external back to internal (the reverse conversion's
    /// error table; exact invitation wording undocumented).
    pub const CONVERTED_BACK: &str = "The user was previously converted from external to internal and cannot be converted back to external.";
    /// Simulator wording for the 2021 limitation (off by default).
    pub const DIRECT_FEDERATION: &str = "The invited user's email domain is configured for direct federation in this directory; the user can't be converted to a B2B user.";
    /// Simulator wording for the 2021 limitation (off by default).
    pub const MAILBOX_USER: &str =
        "Users with an Exchange Online mailbox can't be converted to B2B users.";
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
    /// The 2021 limitation: conversion refused when the address's domain (or a parent) is
    /// configured for direct federation. The current article no longer lists it.
    pub reject_direct_federation_domains: bool,
    /// The 2021 limitation: conversion refused for users with an Exchange mailbox plan.
    pub reject_mailbox_users: bool,
}

impl Default for InvitationRules {
    fn default() -> Self {
        Self {
            address_must_be: AddressRule::Mail,
            when_pending: RepeatPolicy::Resend,
            when_accepted: RepeatPolicy::Reject,
            mailbox_blocks_mail_update: true,
            reject_direct_federation_domains: false,
            reject_mailbox_users: false,
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

impl Directory {
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
            if user.external_user_converted_on.is_some() {
                return Err(DirectoryError::PreconditionFailed(
                    messages::CONVERTED_BACK.to_owned(),
                ));
            }
            if self.facts.verified_domain_of(&domain).is_some() {
                return Err(DirectoryError::bad(messages::VERIFIED_DOMAIN));
            }
            if self.rules.reject_direct_federation_domains
                && self.facts.direct_federation_of(&domain).is_some()
            {
                return Err(DirectoryError::bad(messages::DIRECT_FEDERATION));
            }
            if self.rules.reject_mailbox_users && super::has_mailbox_plan(&user) {
                return Err(DirectoryError::bad(messages::MAILBOX_USER));
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
            // An org contact's address is taken like another user's (troubleshooting article).
            if self
                .proxy_holder(&mut state, &address, Some(index), now)
                .is_some()
                || self.contact_holding(&address).is_some()
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
            // A new guest cannot take an org contact's address either (the service's exact
            // answer here is not documented; the proxy-address message stands in).
            if self.contact_holding(&address).is_some() {
                return Err(DirectoryError::bad(messages::PROXY_COLLISION));
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
                state.changes.record(index);
                state
                    .extra_addresses
                    .entry(address.to_lowercase())
                    .or_default()
                    .insert(index);
                (index, user)
            }
        };
        // A resend to a user already pending leaves the state, and so the time it last
        // changed, as they were; it only makes a new invitation (a new `inviteRedeemUrl`).
        // A redemption reset always starts the state afresh.
        if request.reset_redemption
            || user.external_user_state.as_deref() != Some("PendingAcceptance")
        {
            user.external_user_state = Some("PendingAcceptance".to_owned());
            user.external_user_state_change_date_time =
                Some(format_unix(i64::try_from(now / 1000).unwrap_or(0)));
        }
        if request.reset_redemption {
            user.identities
                .retain(|i| i.sign_in_type.as_deref() != Some("federated"));
        }
        state.invitations_created += 1;
        let invitation_id = stable_guid(self.seed, 0x1417, state.invitations_created);
        let redemption = crate::lock(&self.redemption).clone();
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

    pub(super) fn new_guest(
        &self,
        state: &MutableState,
        address: &str,
        request: &InvitationRequest,
    ) -> User {
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
            user_principal_name: upn,
            mail: Some(address.to_owned()),
            proxy_addresses: vec![format!("SMTP:{address}")],
            user_type: Some(
                request
                    .user_type
                    .clone()
                    .unwrap_or_else(|| "Guest".to_owned()),
            ),
            account_enabled: Some(true),
            creation_type: Some("Invitation".to_owned()),
            ..User::default()
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
}
