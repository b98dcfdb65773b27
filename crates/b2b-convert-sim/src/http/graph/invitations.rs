//! `POST /invitations`: body validation and the invitation response shape.

use hyper::StatusCode;
use serde_json::{Value, json};

use super::super::{Reply, RequestContext};
use super::{context_url, directory_error, invalid_payload};
use crate::Shared;
use crate::audit::{Initiator, TargetUser, activities};
use crate::directory::InvitationRequest;
use crate::faults::Endpoint;
use crate::limits::{ABUSE_BLOCK_MESSAGE, Refusal};
use crate::model::User;

const INVITATION_PROPERTIES: &[&str] = &[
    "id",
    "invitedUserDisplayName",
    "invitedUserEmailAddress",
    "invitedUserMessageInfo",
    "invitedUserType",
    "inviteRedeemUrl",
    "inviteRedirectUrl",
    "resetRedemption",
    "sendInvitationMessage",
    "status",
    "invitedUser",
    "invitedUserSponsors",
    "@odata.type",
];

#[allow(clippy::too_many_lines)] // one linear sequence of checks in the order the service makes them
pub(super) fn invite(
    shared: &Shared,
    ctx: &RequestContext,
    body: Option<Value>,
    app_id: &str,
) -> Reply {
    let Some(Value::Object(body)) = body else {
        return invalid_payload(shared, ctx);
    };
    let bad = |message: String| {
        Reply::graph_error(ctx, shared, StatusCode::BAD_REQUEST, "BadRequest", &message)
    };
    if let Some(unknown) = body
        .keys()
        .find(|k| !INVITATION_PROPERTIES.contains(&k.as_str()))
    {
        return bad(format!(
            "The property '{unknown}' does not exist on type 'microsoft.graph.invitation'. Make sure to only use property names that are defined by the type or mark the type as open type."
        ));
    }
    let text = |name: &str| -> Result<Option<String>, Reply> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad(format!(
                "Invalid value specified for property '{name}' of resource 'Invitation'."
            ))),
        }
    };
    let flag = |name: &str| -> Result<bool, Reply> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(bad(format!(
                "Invalid value specified for property '{name}' of resource 'Invitation'."
            ))),
        }
    };
    let parsed = (|| -> Result<InvitationRequest, Reply> {
        let invited_user_id = match body.get("invitedUser") {
            None | Some(Value::Null) => None,
            Some(Value::Object(user)) => match user.get("id") {
                Some(Value::String(id)) => Some(id.clone()),
                _ => return Err(bad(
                    "Invalid value specified for property 'invitedUser' of resource 'Invitation'."
                        .to_owned(),
                )),
            },
            Some(_) => {
                return Err(bad(
                    "Invalid value specified for property 'invitedUser' of resource 'Invitation'."
                        .to_owned(),
                ));
            }
        };
        let reset_redemption = flag("resetRedemption")?;
        if reset_redemption && invited_user_id.is_none() {
            return Err(bad(
                "invitedUser.id is required when resetRedemption is true.".to_owned(),
            ));
        }
        Ok(InvitationRequest {
            email: text("invitedUserEmailAddress")?.unwrap_or_default(),
            redirect_url: text("inviteRedirectUrl")?.unwrap_or_default(),
            display_name: text("invitedUserDisplayName")?,
            user_type: text("invitedUserType")?,
            send_message: flag("sendInvitationMessage")?,
            reset_redemption,
            invited_user_id,
        })
    })();
    let request = match parsed {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    // The tenant-wide refusals come before the directory's checks; the record stays locked
    // until the invitation is counted, so concurrent requests cannot pass a limit together.
    let spec = shared.fault_plan().spec(Endpoint::Invitations);
    let before: Option<User> = request.invited_user_id.as_deref().and_then(|id| {
        shared
            .directory
            .resolve(id)
            .and_then(|index| shared.directory.user(index, &shared.clock))
    });
    let audit = AuditRecorder {
        shared,
        app_id,
        activity: activity_of(&request, before.as_ref()),
    };
    let mut ledger = shared.invitation_limits.lock();
    let now_ms = shared.clock.now_ms();
    if let Some(refusal) = ledger.refusal(spec.abuse_after, spec.daily_quota, now_ms) {
        let reply = limit_refusal(shared, ctx, refusal);
        if let Some(user) = &before {
            let reason = match refusal {
                Refusal::AbuseBlock => "Invitations from this directory are blocked".to_owned(),
                Refusal::Quota { .. } => error_message(&reply),
            };
            audit.record(user, false, &reason);
        }
        return reply;
    }
    let invitation = match shared.directory.invite(&request, &shared.clock) {
        Ok(i) => i,
        Err(error) => {
            if let Some(user) = &before {
                audit.record(user, false, &error.to_string());
            }
            return directory_error(shared, ctx, &error);
        }
    };
    let user_id = &invitation.user.id;
    if !spec
        .audit_missing_for
        .iter()
        .any(|id| id.eq_ignore_ascii_case(user_id))
    {
        let logged_as_failed = spec
            .audit_failed_for
            .iter()
            .any(|id| id.eq_ignore_ascii_case(user_id));
        let reason = if logged_as_failed {
            "Simulated: the service logged this invitation as failed."
        } else {
            ""
        };
        audit.record(&invitation.user, !logged_as_failed, reason);
    }
    ledger.created(now_ms);
    drop(ledger);
    let facts = &shared.directory.facts;
    let ticket = invitation.id.replace('-', "");
    let inner = format!(
        "https://invitations.microsoft.com/redeem/?tenant={}&user={}&ticket={ticket}&ver=2.0",
        facts.tenant_id, invitation.user.id
    );
    let redeem_url = format!(
        "{}/redeem?rd={}",
        shared.login_url,
        url::form_urlencoded::byte_serialize(inner.as_bytes()).collect::<String>()
    );
    let message_info = match body.get("invitedUserMessageInfo") {
        Some(Value::Object(info)) => json!({
            "messageLanguage": info.get("messageLanguage").cloned().unwrap_or(Value::Null),
            "ccRecipients": info.get("ccRecipients").cloned().filter(Value::is_array).unwrap_or_else(|| json!([{"emailAddress": {"name": null, "address": null}}])),
            "customizedMessageBody": info.get("customizedMessageBody").cloned().unwrap_or(Value::Null),
        }),
        _ => {
            json!({"messageLanguage": null, "ccRecipients": [{"emailAddress": {"name": null, "address": null}}], "customizedMessageBody": null})
        }
    };
    let response = json!({
        "@odata.context": context_url(shared, "invitations/$entity"),
        "id": invitation.id,
        "inviteRedeemUrl": redeem_url,
        "invitedUserDisplayName": request.display_name.clone().or_else(|| invitation.user.display_name.clone()),
        "invitedUserType": request.user_type.clone().unwrap_or_else(|| "Guest".to_owned()),
        "invitedUserEmailAddress": request.email,
        "sendInvitationMessage": request.send_message,
        "resetRedemption": request.reset_redemption,
        "inviteRedirectUrl": request.redirect_url,
        "status": invitation.status,
        "invitedUserMessageInfo": message_info,
        "invitedUser": {"id": invitation.user.id},
    });
    let mut reply = Reply::json(StatusCode::CREATED, &response);
    reply.droppable = true;
    reply
}

/// The audit activity of an invitation (entra-docs `reference-audit-activities.md`, "Invited
/// users"): an existing user without `externalUserState` is converted; a redemption reset and
/// everything else (a resend, a new guest) are the external-user activities.
fn activity_of(request: &InvitationRequest, before: Option<&User>) -> &'static str {
    if request.reset_redemption {
        activities::INVITE_WITH_RESET
    } else if before.is_some_and(|user| user.external_user_state.is_none()) {
        activities::INVITE_INTERNAL_USER
    } else {
        activities::INVITE_EXTERNAL_USER
    }
}

/// Writes the directory audit event of one invitation.
struct AuditRecorder<'a> {
    shared: &'a Shared,
    app_id: &'a str,
    activity: &'static str,
}

impl AuditRecorder<'_> {
    fn record(&self, user: &User, success: bool, reason: &str) {
        let initiator = Initiator {
            app_id: self.app_id.to_owned(),
            app_display_name: self
                .shared
                .directory
                .facts
                .app(self.app_id)
                .map(|app| app.display_name.clone()),
        };
        let target = TargetUser {
            id: user.id.clone(),
            user_principal_name: user.user_principal_name.clone(),
            display_name: user.display_name.clone(),
        };
        self.shared.audit.record(
            self.activity,
            success,
            reason,
            initiator,
            target,
            self.shared.clock.now_ms(),
        );
    }
}

/// The `error.message` of a Graph error reply.
fn error_message(reply: &Reply) -> String {
    serde_json::from_slice::<Value>(&reply.body)
        .ok()
        .and_then(|body| body["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The 403 of a tenant-wide refusal. The abuse block's code is Graph's generic
/// `Authorization_RequestDenied` (the portal shows "Insufficient privileges"), so only its
/// message tells it from a missing permission; the quota's status, code and wording are the
/// simulator's choice (unverified, NOTES §8.2a).
fn limit_refusal(shared: &Shared, ctx: &RequestContext, refusal: Refusal) -> Reply {
    match refusal {
        Refusal::AbuseBlock => Reply::graph_error(
            ctx,
            shared,
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            ABUSE_BLOCK_MESSAGE,
        ),
        Refusal::Quota {
            limit,
            resume_at_ms,
        } => {
            let resume = crate::generate::format_unix(
                i64::try_from(resume_at_ms.div_ceil(1000)).unwrap_or(i64::MAX),
            );
            Reply::graph_error(
                ctx,
                shared,
                StatusCode::FORBIDDEN,
                "Forbidden",
                &format!(
                    "The daily limit of {limit} invitations for this directory has been reached. Invitations can be sent again after {resume}."
                ),
            )
        }
    }
}
