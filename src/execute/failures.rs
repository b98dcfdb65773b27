//! What a refused write means for the operator: the service's message stays as it came, and a
//! fix hint is added for the refusals Microsoft documents (NOTES.md §1.6). Pure.

/// A fix hint for a refusal of `POST /invitations` or `PATCH /users/{id}`, by status and
/// message. `None` when the refusal is not one we know.
pub fn fix_hint(status: u16, code: &str, message: &str) -> Option<&'static str> {
    let message = message.to_ascii_lowercase();
    let has = |needle: &str| message.contains(needle);
    Some(match status {
        404 => "the user no longer exists in the tenant; remove it from the wave and re-plan",
        _ if has("verified domain") => {
            "the address is in one of your verified domains: give the user its external address (mail or otherMails) and re-plan"
        }
        _ if has("must match the mail property") => {
            "the service wants `mail` to hold the invitation address: set invitation.set_mail_before_invite = true (or set mail yourself) and re-plan"
        }
        _ if has("proxyaddresses already exists")
            || has("same value for property proxyaddresses") =>
        {
            "another object (user, group or mail contact) holds this address in proxyAddresses: remove it there, then run again"
        }
        _ if has("already redeemed") => {
            "the user is already a B2B user; to let it redeem again use `b2b-convert invite --reset-redemption`"
        }
        _ if has("invalid request input") => {
            "for a synced user this usually means onPremisesUserPrincipalName is set: change the Entra Connect sync rule so it is not written, then re-plan"
        }
        _ if has("cross-tenant access") => {
            "your or the partner's cross-tenant access settings block B2B collaboration with that tenant"
        }
        _ if has("cross cloud worker") => {
            "the partner's tenant has disabled the Microsoft B2B Cross Cloud Worker application; the partner must enable it"
        }
        _ if has("can't be invited") || has("cannot be invited") => {
            "the service refuses this address or its tenant: ask the partner for another address"
        }
        _ if has("email address") && has("invalid") => {
            "the address has a character the service refuses (for example `+` or `#`): choose another address in the wave CSV and re-plan"
        }
        _ if has("mastered directory sync") || has("on-premises mastered") => {
            "the property is managed on-premises: change it in Active Directory and let it sync"
        }
        _ if has("originated within an external service") => {
            "the user has an Exchange mailbox: change its addresses in the Exchange admin center"
        }
        403 if code == "Authorization_RequestDenied" => {
            "the app lacks a permission (User.Invite.All to invite, User.ReadWrite.All to set mail); `b2b-convert check` lists what is missing"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use b2b_convert_sim::directory::messages;

    use super::*;

    #[test]
    fn every_refusal_the_simulator_models_has_a_hint() {
        for message in [
            messages::VERIFIED_DOMAIN,
            messages::ON_PREMISES_UPN,
            messages::PROXY_COLLISION,
            messages::ADDRESS_NOT_ON_USER,
            messages::ALREADY_REDEEMED,
            messages::SYNCED_PROPERTIES,
            messages::MAILBOX_PROPERTIES,
        ] {
            assert!(
                fix_hint(400, "BadRequest", message).is_some(),
                "no hint for {message}"
            );
        }
        assert!(fix_hint(404, "Request_ResourceNotFound", "").is_some());
        assert!(fix_hint(400, "BadRequest", "something new").is_none());
    }
}
