//! Drift: which rule inputs changed between the snapshot a plan was made from and the user as
//! Graph shows it now. `run` converts a user only when nothing the rules read has changed,
//! except the change `run` itself makes (the plan's "set mail" step).

use crate::domain::UserSnapshot;

/// The Graph properties the rules read that differ between `planned` and `now`, in a fixed
/// order. The same properties as [`super::fingerprint`].
pub fn changed_rule_inputs(planned: &UserSnapshot, now: &UserSnapshot) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut check = |name: &'static str, same: bool| {
        if !same {
            changed.push(name);
        }
    };
    check("id", planned.id == now.id);
    check(
        "userPrincipalName",
        planned.user_principal_name == now.user_principal_name,
    );
    check("mail", planned.mail == now.mail);
    check("otherMails", planned.other_mails == now.other_mails);
    check(
        "proxyAddresses",
        planned.proxy_addresses == now.proxy_addresses,
    );
    check("userType", planned.user_type == now.user_type);
    check(
        "accountEnabled",
        planned.account_enabled == now.account_enabled,
    );
    check("creationType", planned.creation_type == now.creation_type);
    check(
        "externalUserState",
        planned.external_user_state == now.external_user_state,
    );
    check(
        "externalUserConvertedOn",
        planned.converted_to_internal_at == now.converted_to_internal_at,
    );
    check(
        "onPremisesSyncEnabled",
        planned.on_premises.sync_enabled == now.on_premises.sync_enabled,
    );
    check(
        "onPremisesUserPrincipalName",
        planned.on_premises.user_principal_name == now.on_premises.user_principal_name,
    );
    check(
        "assignedPlans",
        planned.assigned_plans.len() == now.assigned_plans.len()
            && planned
                .assigned_plans
                .iter()
                .zip(&now.assigned_plans)
                .all(|(a, b)| {
                    a.service_plan_id == b.service_plan_id
                        && a.capability_status == b.capability_status
                }),
    );
    check(
        "assignedLicenses",
        planned.assigned_licenses.len() == now.assigned_licenses.len()
            && planned
                .assigned_licenses
                .iter()
                .zip(&now.assigned_licenses)
                .all(|(a, b)| a.disabled_plans == b.disabled_plans),
    );
    check(
        "identities",
        planned.identities.len() == now.identities.len()
            && planned
                .identities
                .iter()
                .zip(&now.identities)
                .all(|(a, b)| a.sign_in_type == b.sign_in_type && a.issuer == b.issuer),
    );
    changed
}

/// Whether every difference between `planned` and `now` is what setting `mail` to `address`
/// does: `mail` now holds it, and `proxyAddresses` changed only in entries for it or for the
/// old `mail` (Graph makes the new `mail` the primary proxy address).
pub fn only_mail_was_set(planned: &UserSnapshot, now: &UserSnapshot, address: &str) -> bool {
    let changed = changed_rule_inputs(planned, now);
    let mail_now = now
        .mail
        .as_deref()
        .is_some_and(|m| m.eq_ignore_ascii_case(address));
    let explained = |proxy: &String| {
        let Some(bare) = proxy
            .split_once(':')
            .filter(|(kind, _)| kind.eq_ignore_ascii_case("smtp"))
            .map(|(_, a)| a)
        else {
            return false;
        };
        bare.eq_ignore_ascii_case(address)
            || planned
                .mail
                .as_deref()
                .is_some_and(|old| bare.eq_ignore_ascii_case(old))
    };
    let unexplained = |from: &[String], to: &[String]| {
        from.iter()
            .filter(|p| !explained(p))
            .any(|p| !to.iter().any(|q| q.eq_ignore_ascii_case(p)))
    };
    mail_now
        && changed
            .iter()
            .all(|c| matches!(*c, "mail" | "proxyAddresses"))
        && !unexplained(&planned.proxy_addresses, &now.proxy_addresses)
        && !unexplained(&now.proxy_addresses, &planned.proxy_addresses)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::tests::partner as snapshot;

    #[test]
    fn an_unchanged_user_has_no_drift() {
        let user = snapshot();
        assert!(changed_rule_inputs(&user, &user.clone()).is_empty());
    }

    #[test]
    fn each_changed_input_is_named() {
        let before = snapshot();
        let mut after = before.clone();
        after.other_mails.push("new@fabrikam.com".into());
        after.external_user_state = Some("PendingAcceptance".into());
        after.display_name = Some("not a rule input".into());
        assert_eq!(
            changed_rule_inputs(&before, &after),
            vec!["otherMails", "externalUserState"]
        );
    }

    #[test]
    fn setting_mail_is_recognised_and_nothing_else_is() {
        let mut before = snapshot();
        before.mail = Some("ada@contoso.com".into());
        before.proxy_addresses = vec!["SMTP:ada@contoso.com".into(), "SIP:ada@contoso.com".into()];
        let mut after = before.clone();
        after.mail = Some("ada@fabrikam.com".into());
        after.proxy_addresses = vec![
            "SMTP:ada@fabrikam.com".into(),
            "smtp:ada@contoso.com".into(),
            "SIP:ada@contoso.com".into(),
        ];
        assert!(only_mail_was_set(&before, &after, "ada@fabrikam.com"));
        assert!(!only_mail_was_set(&before, &after, "other@fabrikam.com"));

        let mut also_licensed = after.clone();
        also_licensed.account_enabled = Some(false);
        assert!(!only_mail_was_set(
            &before,
            &also_licensed,
            "ada@fabrikam.com"
        ));

        let mut lost_sip = after;
        lost_sip.proxy_addresses.retain(|p| !p.starts_with("SIP:"));
        assert!(
            !only_mail_was_set(&before, &lost_sip, "ada@fabrikam.com"),
            "a proxy address unrelated to mail disappeared"
        );
    }
}
