//! `POST /invitations`: the service's validation (NOTES §1.1, §1.6), its effect on the user,
//! redemption, and per-user POST counts.

use std::time::Duration;

use b2b_convert_sim::{
    AddressRule, InvitationRules, RedemptionConfig, SimSpec, ThrottleConfig, UserCase,
};
use serde_json::json;

use super::{Harness, assert_graph_error};

async fn harness() -> Harness {
    Harness::generated(3000).await
}

#[tokio::test]
async fn conversion_marks_the_user_pending_and_counts_the_post() {
    let h = harness().await;
    let user = h.sim.find_user(UserCase::CloudMailExternal).expect("case");
    assert_eq!(user.external_user_state, None);
    let (status, body) = h
        .post_json(
            "/v1.0/invitations",
            &Harness::invitation(&user.id, user.mail.as_deref().expect("mail")),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let after = h.sim.user(&user.id).expect("user");
    assert_eq!(
        after.external_user_state.as_deref(),
        Some("PendingAcceptance")
    );
    assert!(after.external_user_state_change_date_time.is_some());
    assert_eq!(
        after.user_type, user.user_type,
        "conversion does not change userType"
    );
    assert_eq!(h.sim.invitation_posts(&user.id), 1);
    let (_, seen) = h
        .get_json(&format!(
            "/v1.0/users/{}?$select=externalUserState",
            user.id
        ))
        .await;
    assert_eq!(seen["externalUserState"], "PendingAcceptance");
    assert_eq!(h.sim.counters().invitations_created, 1);
    assert_eq!(
        h.sim.invitation_message_language(&user.id),
        None,
        "none asked for"
    );
}

#[tokio::test]
async fn the_message_language_of_each_users_invitation_is_recorded() {
    let h = harness().await;
    let user = h.sim.find_user(UserCase::CloudMailExternal).expect("case");
    let mut invitation = Harness::invitation(&user.id, user.mail.as_deref().expect("mail"));
    invitation["sendInvitationMessage"] = json!(true);
    invitation["invitedUserMessageInfo"] = json!({"messageLanguage": "ja-JP"});
    let (status, body) = h.post_json("/v1.0/invitations", &invitation).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["invitedUserMessageInfo"]["messageLanguage"], "ja-JP");
    assert_eq!(
        h.sim.invitation_message_language(&user.id).as_deref(),
        Some("ja-JP")
    );
    assert_eq!(h.sim.invitation_message_language("someone-else"), None);
}

#[tokio::test]
#[allow(clippy::too_many_lines)] // one scenario, step by step
async fn each_documented_refusal_has_its_message() {
    let h = harness().await;
    let find = |case| h.sim.find_user(case).expect("case present");
    let synced = find(UserCase::SyncedOnPremisesUpn);
    let unsynced = find(UserCase::UnsyncedOnPremisesUpn);
    let converted_back = find(UserCase::ConvertedBackToInternal);
    assert_eq!(unsynced.on_premises_sync_enabled, Some(false));
    let internal = find(UserCase::CloudInternalOnly);
    let other_only = find(UserCase::CloudOtherMailOnly);
    let collision = find(UserCase::ProxyAddressCollision);
    let plus = find(UserCase::CloudPlusAddressed);
    let forbidden = find(UserCase::CloudForbiddenCharacters);
    let redeemed = find(UserCase::AlreadyRedeemed);
    let cases = [
        (
            synced.id.clone(),
            synced.mail.clone().expect("mail"),
            400,
            "BadRequest",
            "User invitation failed. Invalid request input.",
        ),
        (
            converted_back.id.clone(),
            converted_back.mail.clone().expect("mail"),
            412,
            "PreconditionFailed",
            "cannot be converted back to external",
        ),
        (
            unsynced.id.clone(),
            unsynced.mail.clone().expect("mail"),
            400,
            "BadRequest",
            "User invitation failed. Invalid request input.",
        ),
        (
            internal.id.clone(),
            internal.mail.clone().expect("mail"),
            400,
            "BadRequest",
            "cannot be in a verified domain",
        ),
        (
            internal.id.clone(),
            internal.other_mails[0].clone(),
            400,
            "BadRequest",
            "cannot be in a verified domain",
        ),
        (
            other_only.id.clone(),
            other_only.other_mails[0].clone(),
            400,
            "BadRequest",
            "must match the mail property",
        ),
        (
            other_only.id.clone(),
            "someone.else@fabrikam.com".to_owned(),
            400,
            "BadRequest",
            "must match the mail property",
        ),
        (
            collision.id.clone(),
            collision.mail.clone().expect("mail"),
            400,
            "BadRequest",
            "proxyAddresses already exists",
        ),
        (
            plus.id.clone(),
            plus.other_mails[0].clone(),
            400,
            "BadRequest",
            "is invalid",
        ),
        (
            forbidden.id.clone(),
            forbidden.other_mails[0].clone(),
            400,
            "BadRequest",
            "is invalid",
        ),
        (
            "00000000-0000-4000-8000-00000000abcd".to_owned(),
            "a.b@fabrikam.com".to_owned(),
            404,
            "Request_ResourceNotFound",
            "does not exist",
        ),
        (
            redeemed.id.clone(),
            redeemed.mail.clone().expect("mail"),
            400,
            "BadRequest",
            "already redeemed",
        ),
    ];
    for (id, address, status, code, message) in cases {
        let (got, body) = h
            .post_json("/v1.0/invitations", &Harness::invitation(&id, &address))
            .await;
        assert_eq!(got, status, "{address}: {body}");
        assert_graph_error(&body, code, message);
    }
    assert_eq!(
        h.sim.user(&synced.id).expect("user").external_user_state,
        None,
        "refused invitations change nothing"
    );
    assert_eq!(h.sim.counters().invitations_created, 0);
    let (status, body) = h
        .post_json(
            "/v1.0/invitations",
            &json!({"invitedUserEmailAddress": "a.b@fabrikam.com"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_graph_error(&body, "BadRequest", "inviteRedirectUrl");
    let (status, body) = h.post_json("/v1.0/invitations", &json!({"invitedUserEmailAddress": "a.b@fabrikam.com", "inviteRedirectUrl": "https://x", "bogus": 1})).await;
    assert_eq!(status, 400);
    assert_graph_error(&body, "BadRequest", "'bogus' does not exist");
}

#[tokio::test]
async fn reinviting_a_pending_user_resends_and_reset_redemption_reopens_an_accepted_one() {
    let h = harness().await;
    let user = h.sim.find_user(UserCase::AlreadyInvited).expect("case");
    let body = Harness::invitation(&user.id, user.mail.as_deref().expect("mail"));
    let (status, first) = h.post_json("/v1.0/invitations", &body).await;
    assert_eq!(status, 201, "pending users get a resend by default");
    let after_first = h.sim.user(&user.id).expect("user");
    h.sim.advance_clock(Duration::from_secs(60));
    let (status, second) = h.post_json("/v1.0/invitations", &body).await;
    assert_eq!(status, 201, "{second}");
    // NOTES §1.6: each (re-)invitation returns a new link; the state stays pending, and with
    // it the time the state last changed.
    assert!(
        second["inviteRedeemUrl"]
            .as_str()
            .is_some_and(|u| u.starts_with("http"))
    );
    assert_ne!(first["inviteRedeemUrl"], second["inviteRedeemUrl"]);
    let after_second = h.sim.user(&user.id).expect("user");
    assert_eq!(
        after_second.external_user_state.as_deref(),
        Some("PendingAcceptance")
    );
    assert_eq!(
        after_second.external_user_state_change_date_time,
        after_first.external_user_state_change_date_time,
        "a resend does not change the state"
    );
    assert_eq!(h.sim.invitation_posts(&user.id), 2);
    let redeemed = h.sim.find_user(UserCase::AlreadyRedeemed).expect("case");
    let mut body = Harness::invitation(&redeemed.id, redeemed.mail.as_deref().expect("mail"));
    body["resetRedemption"] = json!(true);
    let (status, response) = h.post_json("/v1.0/invitations", &body).await;
    assert_eq!(status, 201, "{response}");
    assert_eq!(response["resetRedemption"], true);
    let reopened = h.sim.user(&redeemed.id).expect("user");
    assert_eq!(
        reopened.external_user_state.as_deref(),
        Some("PendingAcceptance")
    );
    assert_ne!(
        reopened.external_user_state_change_date_time,
        redeemed.external_user_state_change_date_time,
        "a reset changes the state, and its time"
    );
}

#[tokio::test]
async fn admin_redeem_and_automatic_redemption_accept_the_invitation() {
    let spec = SimSpec::generated(3000, 7)
        .with_throttling(ThrottleConfig::disabled())
        .with_redemption(RedemptionConfig {
            fraction: 1.0,
            after: Duration::from_mins(10),
        });
    let h = Harness::start(spec).await;
    let a = h.sim.find_user(UserCase::CloudMailExternal).expect("case");
    let b = h
        .sim
        .find_user(UserCase::ExchangeFoundationOnly)
        .expect("case");
    for user in [&a, &b] {
        let (status, body) = h
            .post_json(
                "/v1.0/invitations",
                &Harness::invitation(&user.id, user.mail.as_deref().expect("mail")),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    // Explicit admin call over HTTP.
    let response = h
        .http
        .post(format!("{}/users/{}/redeem", h.sim.admin_url(), a.id))
        .send()
        .await
        .expect("admin");
    assert_eq!(response.status(), 200);
    assert_eq!(
        h.sim
            .user(&a.id)
            .expect("user")
            .external_user_state
            .as_deref(),
        Some("Accepted")
    );
    // Automatic: nothing before the delay, Accepted after it.
    assert_eq!(
        h.sim
            .user(&b.id)
            .expect("user")
            .external_user_state
            .as_deref(),
        Some("PendingAcceptance")
    );
    h.sim.advance_clock(Duration::from_secs(601));
    let (_, seen) = h
        .get_json(&format!(
            "/v1.0/users/{}?$select=externalUserState,externalUserStateChangeDateTime,identities",
            b.id
        ))
        .await;
    assert_eq!(seen["externalUserState"], "Accepted", "{seen}");
    assert!(
        seen["identities"]
            .as_array()
            .expect("identities")
            .iter()
            .any(|i| i["signInType"] == "federated")
    );
    assert!(h.sim.redeem(&b.id).is_err(), "nothing left to redeem");
    // A guest created by an invitation redeems the same way, and later updates keep that state.
    let (status, body) = h
        .post_json(
            "/v1.0/invitations",
            &json!({"invitedUserEmailAddress": "late.partner@fabrikam.com", "inviteRedirectUrl": "https://myapps.microsoft.com"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let guest = body["invitedUser"]["id"].as_str().expect("id").to_owned();
    h.sim.advance_clock(Duration::from_secs(601));
    assert_eq!(
        h.sim
            .user(&guest)
            .expect("guest")
            .external_user_state
            .as_deref(),
        Some("Accepted")
    );
    let (status, _) = h
        .patch_json(
            &format!("/v1.0/users/{guest}"),
            &json!({"displayName": "Late Partner"}),
        )
        .await;
    assert_eq!(status, 204);
    let after = h.sim.user(&guest).expect("guest");
    assert_eq!(after.display_name.as_deref(), Some("Late Partner"));
    assert_eq!(after.external_user_state.as_deref(), Some("Accepted"));
}

#[tokio::test]
async fn a_new_address_without_invited_user_creates_a_guest() {
    let h = harness().await;
    let (status, body) = h
        .post_json("/v1.0/invitations", &json!({"invitedUserEmailAddress": "new.partner@fabrikam.com", "inviteRedirectUrl": "https://myapps.microsoft.com"}))
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["invitedUser"]["id"].as_str().expect("id");
    let guest = h.sim.user(id).expect("created");
    assert_eq!(guest.user_type.as_deref(), Some("Guest"));
    assert_eq!(guest.creation_type.as_deref(), Some("Invitation"));
    assert_eq!(h.sim.user_count(), 3001);
    let member = h.sim.find_user(UserCase::CloudMailExternal).expect("case");
    let (status, body) = h
        .post_json("/v1.0/invitations", &json!({"invitedUserEmailAddress": member.mail, "inviteRedirectUrl": "https://myapps.microsoft.com"}))
        .await;
    assert_eq!(status, 400);
    assert_graph_error(
        &body,
        "BadRequest",
        &format!("already exists in the directory as objectID: {}", member.id),
    );
}

#[tokio::test]
async fn the_2021_limitations_can_be_switched_on() {
    let rules = InvitationRules {
        address_must_be: AddressRule::Any,
        reject_direct_federation_domains: true,
        reject_mailbox_users: true,
        ..InvitationRules::default()
    };
    let strict = Harness::start(
        SimSpec::generated(3000, 7)
            .with_throttling(ThrottleConfig::disabled())
            .with_invitation_rules(rules.clone()),
    )
    .await;
    let lenient = Harness::start(
        SimSpec::generated(3000, 7)
            .with_throttling(ThrottleConfig::disabled())
            .with_invitation_rules(InvitationRules {
                address_must_be: AddressRule::Any,
                ..InvitationRules::default()
            }),
    )
    .await;
    let federated = strict
        .sim
        .find_user(UserCase::DirectFederationDomain)
        .expect("case");
    let mailbox = strict
        .sim
        .find_user(UserCase::ExchangeMailbox)
        .expect("case");
    let cases = [
        (
            &federated,
            federated.mail.clone().expect("mail"),
            "direct federation",
        ),
        (&mailbox, mailbox.other_mails[0].clone(), "mailbox"),
    ];
    for (user, address, message) in cases {
        let body = Harness::invitation(&user.id, &address);
        let (status, refused) = strict.post_json("/v1.0/invitations", &body).await;
        assert_eq!(status, 400, "{refused}");
        assert_graph_error(&refused, "BadRequest", message);
        let (status, created) = lenient.post_json("/v1.0/invitations", &body).await;
        assert_eq!(status, 201, "off by default: {created}");
    }
}

/// A token valid at the simulator's time now (after its clock was moved on).
async fn renew_token(h: &mut Harness) {
    h.token = super::secret_token(&h.http, &h.sim, h.sim.client_id(), h.sim.client_secret()).await;
}

/// A new guest's invitation (no `invitedUser.id`): each one is an invitation created.
fn guest(n: u32) -> serde_json::Value {
    json!({
        "invitedUserEmailAddress": format!("guest.{n}@fabrikam.com"),
        "inviteRedirectUrl": "https://myapps.microsoft.com?tenantId=x",
        "sendInvitationMessage": false,
    })
}

#[tokio::test]
async fn after_abuse_after_invitations_every_invitation_meets_the_abuse_block() {
    let mut h = harness().await;
    h.sim.set_faults(
        b2b_convert_sim::FaultPlan::parse("invitations:abuse-after=2").expect("a fault plan"),
    );
    for n in 0..2 {
        let (status, body) = h.post_json("/v1.0/invitations", &guest(n)).await;
        assert_eq!(status, 201, "{body}");
    }
    let user = h.sim.find_user(UserCase::CloudMailExternal).expect("case");
    for body in [
        guest(3),
        Harness::invitation(&user.id, user.mail.as_deref().expect("mail")),
    ] {
        let (status, body) = h.post_json("/v1.0/invitations", &body).await;
        assert_eq!(status, 403, "{body}");
        assert_graph_error(
            &body,
            "Authorization_RequestDenied",
            "Invitations are blocked for this directory due to suspicious activity",
        );
    }
    h.sim.advance_clock(Duration::from_secs(3 * 24 * 3600));
    renew_token(&mut h).await;
    let (status, _) = h.post_json("/v1.0/invitations", &guest(4)).await;
    assert_eq!(status, 403, "time does not lift the block");
    assert_eq!(h.sim.counters().invitations_created, 2);
    assert_eq!(
        h.sim.user(&user.id).expect("user").external_user_state,
        None
    );
}

#[tokio::test]
async fn the_daily_quota_refuses_the_next_invitation_until_the_oldest_leaves_the_day() {
    let mut h = harness().await;
    h.sim.freeze_clock();
    h.sim.set_faults(
        b2b_convert_sim::FaultPlan::parse("invitations:daily-quota=2").expect("a fault plan"),
    );
    for n in 0..2 {
        let (status, body) = h.post_json("/v1.0/invitations", &guest(n)).await;
        assert_eq!(status, 201, "{body}");
        h.sim.advance_clock(Duration::from_secs(1800));
        renew_token(&mut h).await;
    }
    let (status, body) = h.post_json("/v1.0/invitations", &guest(2)).await;
    assert_eq!(status, 403, "{body}");
    assert_graph_error(&body, "Forbidden", "daily limit of 2 invitations");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("sent again after 20")),
        "says when: {body}"
    );
    // The first leaves the window 24 h after it was made: 23 h from now.
    h.sim.advance_clock(Duration::from_secs(23 * 3600 - 1));
    renew_token(&mut h).await;
    let (status, _) = h.post_json("/v1.0/invitations", &guest(3)).await;
    assert_eq!(status, 403, "still inside the day");
    h.sim.advance_clock(Duration::from_secs(1));
    let (status, body) = h.post_json("/v1.0/invitations", &guest(4)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(h.sim.counters().invitations_created, 3);
}

/// `PATCH /users/{id}` of `userType` after a conversion (NOTES §2: converted users keep
/// `Member`): only `Guest` or `Member`, only with a user-write permission, and for a while after
/// the invitation refused with the replication-lag 400 when the `reference-lag` fault says so.
#[tokio::test]
async fn user_type_is_set_with_the_right_permission_and_after_the_replication_lag() {
    let h = harness().await;
    h.sim.freeze_clock();
    let user = h.sim.find_user(UserCase::CloudMailExternal).expect("case");
    h.sim.set_faults(
        b2b_convert_sim::FaultPlan::parse("patch-user:reference-lag=120").expect("parses"),
    );
    let (status, _) = h
        .post_json(
            "/v1.0/invitations",
            &Harness::invitation(&user.id, user.mail.as_deref().expect("mail")),
        )
        .await;
    assert_eq!(status, 201);
    let path = format!("/v1.0/users/{}", user.id);
    let (status, body) = h.patch_json(&path, &json!({"userType": "Guest"})).await;
    assert_eq!(status, 400, "{body}");
    assert_graph_error(&body, "Request_BadRequest", "Not a valid reference update");
    assert_eq!(
        h.sim.user(&user.id).expect("user").user_type.as_deref(),
        Some("Member")
    );
    h.sim.advance_clock(Duration::from_secs(120));
    for bad in [json!("guest "), json!("External"), json!(null), json!(1)] {
        let (status, body) = h.patch_json(&path, &json!({"userType": bad})).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let reader = &h.sim.apps()[1];
    let token = super::secret_token(&h.http, &h.sim, &reader.client_id, &reader.secrets[0]).await;
    let denied = h
        .http
        .patch(h.url(&path))
        .bearer_auth(token)
        .json(&json!({"userType": "Guest"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(denied.status(), 403);
    let (status, body) = h.patch_json(&path, &json!({"userType": "Guest"})).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        h.sim.user(&user.id).expect("user").user_type.as_deref(),
        Some("Guest")
    );
    let (status, _) = h.patch_json(&path, &json!({"userType": "Member"})).await;
    assert_eq!(status, 204, "and back");
}
