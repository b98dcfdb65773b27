//! `POST /invitations` for converting an existing internal user (NOTES.md §1), the `PATCH` of
//! `mail` that today's guidance requires first (§2), and the optional `PATCH` of `userType`
//! after redemption (§2).
//!
//! The request carries exactly what the operator configured: fields left unset are left out,
//! and the user is named by `invitedUser.id` only — never a whole user object (§1.6). The
//! redemption URL in the answer is sensitive and stays a [`SecretString`] until the caller
//! decides to keep it. This module sends and decodes, and tells the refusals that concern the
//! whole tenant ([`TenantRefusal`]) from those of one user; what an answer means for a wave
//! member is the executor's business.

use reqwest::Method;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::client::{GraphClient, Response, ResponseMeta};
use super::error::{ApiError, Error};
use crate::domain::{InvitationId, UserId, UserType};

/// The body of `POST /invitations` that converts the user `invited_user.id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvitationRequest {
    pub invited_user_email_address: String,
    pub invite_redirect_url: String,
    pub invited_user: InvitedUserRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invited_user_display_name: Option<String>,
    /// Sent explicitly either way: the service's default (`false`) is not what most expect.
    pub send_invitation_message: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invited_user_message_info: Option<MessageInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invited_user_type: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reset_redemption: bool,
}

/// The existing user to convert: its object id, nothing else.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InvitedUserRef {
    pub id: UserId,
}

/// `invitedUserMessageInfo`; only meaningful when Microsoft sends the email.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customized_message_body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_language: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cc_recipients: Vec<Recipient>,
}

/// A `recipient`: `{"emailAddress": {"address": …, "name": …}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    pub email_address: EmailAddress,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EmailAddress {
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// What the service answered.
#[derive(Debug)]
pub struct Invitation {
    pub id: InvitationId,
    /// `PendingAcceptance`, `Completed`, `InProgress` or `Error`.
    pub status: Option<String>,
    /// The redemption link; sensitive (whoever has it can redeem the invitation).
    pub redeem_url: Option<SecretString>,
    /// The user the invitation is for, as the service names it.
    pub invited_user: Option<UserId>,
}

/// The service refuses invitations for the whole tenant, not for one user (NOTES §8.2a): every
/// further invitation would meet the same answer, so nothing more may be sent and the answer is
/// never retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TenantRefusal {
    /// "Invitations are blocked for this directory due to suspicious activity. Please contact
    /// Microsoft support…" (403, observed): only Microsoft support lifts it.
    AbuseBlock,
    /// A daily invitation quota is used up (status and wording unverified).
    Quota,
}

/// What makes a refusal of `POST /invitations` the abuse block: any of these (lower case) in
/// Graph's `error.message`, whatever the 4xx status and code (its code may be the one a missing
/// permission has). The first is the API's message as reported (Microsoft Q&A, 2026); the
/// second the audit log's `resultReason`.
pub const ABUSE_BLOCK_PHRASES: &[&str] = &[
    "blocked for this directory due to suspicious activity",
    "invitations from this directory are blocked",
];

/// What makes a 403 or 429 to `POST /invitations` a quota refusal: any of these (lower case) in
/// `error.message`. Microsoft's wording is unverified (NOTES §8.2a), so the list is broad on
/// purpose; throttling's 429s ("Too many requests", "Rate limit is exceeded. Try again in N
/// seconds.") contain none of them and are retried as before.
pub const QUOTA_PHRASES: &[&str] = &[
    "quota",
    "daily limit",
    "daily invitation",
    "invitations per day",
    "per 24 hours",
];

impl TenantRefusal {
    /// Whether `error` is a tenant-wide refusal of an invitation. Only `POST /invitations` is
    /// looked at: other requests mean what their status says.
    pub fn of(error: &ApiError) -> Option<Self> {
        let invitation = error.method == "POST"
            && error
                .path
                .split(['?', '#'])
                .next()
                .is_some_and(|p| p.trim_end_matches('/').ends_with("/invitations"));
        if !invitation || !(400..500).contains(&error.status) {
            return None;
        }
        let message = error.message.to_lowercase();
        let says = |phrases: &[&str]| phrases.iter().any(|p| message.contains(p));
        if says(ABUSE_BLOCK_PHRASES) {
            Some(Self::AbuseBlock)
        } else if matches!(error.status, 403 | 429) && says(QUOTA_PHRASES) {
            Some(Self::Quota)
        } else {
            None
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InvitationDto {
    id: String,
    status: Option<String>,
    invite_redeem_url: Option<String>,
    invited_user: Option<InvitedUserDto>,
}

#[derive(Deserialize)]
struct InvitedUserDto {
    id: Option<UserId>,
}

impl GraphClient {
    /// Sends one invitation. Never retried once it may have reached the service: an unclear
    /// outcome is [`Error::OutcomeUnknown`], to be reconciled by reading the user.
    pub async fn invite(&self, request: &InvitationRequest) -> Result<Response<Invitation>, Error> {
        let response = self
            .write::<_, InvitationDto>(Method::POST, "invitations", request)
            .await?;
        let meta = response.meta;
        let Some(body) = response.body else {
            // The service said yes without saying what it did; the user must be read.
            return Err(Error::OutcomeUnknown {
                method: "POST".into(),
                path: "/v1.0/invitations".into(),
                reason: "the service accepted it but sent no invitation back".into(),
                status: Some(meta.status),
                request_id: meta.request_id,
                client_request_id: meta.client_request_id,
            });
        };
        Ok(Response {
            body: Invitation {
                id: InvitationId(body.id),
                status: body.status,
                redeem_url: body.invite_redeem_url.map(SecretString::from),
                invited_user: body.invited_user.and_then(|u| u.id),
            },
            meta,
        })
    }

    /// Sets the user's `mail` (a directory write; idempotent: setting the same value again
    /// changes nothing, so a 503/504 or a lost answer is retried, within the retry policy's
    /// attempts). Also how a run puts back the `mail` it changed.
    pub async fn set_mail(&self, user: UserId, mail: Option<&str>) -> Result<ResponseMeta, Error> {
        let body = serde_json::json!({ "mail": mail });
        let response = self
            .write_repeatable::<_, serde_json::Value>(
                Method::PATCH,
                &format!("users/{user}"),
                &body,
            )
            .await?;
        Ok(response.meta)
    }

    /// Sets the user's `userType` (a directory write, `User.ReadWrite.All`; idempotent like
    /// [`Self::set_mail`]). Right after an invitation the service may refuse it for a while
    /// with the replication-lag 400 ([`Error::is_replication_lag`]): the caller waits and
    /// tries again.
    pub async fn set_user_type(
        &self,
        user: UserId,
        user_type: UserType,
    ) -> Result<ResponseMeta, Error> {
        let body = serde_json::json!({ "userType": user_type.code() });
        let response = self
            .write_repeatable::<_, serde_json::Value>(
                Method::PATCH,
                &format!("users/{user}"),
                &body,
            )
            .await?;
        Ok(response.meta)
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use uuid::Uuid;

    use super::*;

    fn refusal(method: &str, path: &str, status: u16, code: &str, message: &str) -> ApiError {
        ApiError {
            method: method.into(),
            path: path.into(),
            status,
            code: code.into(),
            message: message.into(),
            request_id: "r".into(),
            client_request_id: "c".into(),
            retry_after: None,
        }
    }

    #[rstest]
    #[case::abuse_block(
        403,
        "Authorization_RequestDenied",
        "Invitations are blocked for this directory due to suspicious activity. Please contact Microsoft support.",
        Some(TenantRefusal::AbuseBlock)
    )]
    #[case::abuse_block_other_code(
        400,
        "BadRequest",
        "Invitations from this directory are blocked",
        Some(TenantRefusal::AbuseBlock)
    )]
    #[case::quota_403(
        403,
        "Forbidden",
        "The daily limit of 200 invitations for this directory has been reached.",
        Some(TenantRefusal::Quota)
    )]
    #[case::quota_429(
        429,
        "TooManyRequests",
        "Invitation quota exceeded for this tenant.",
        Some(TenantRefusal::Quota)
    )]
    #[case::throttling(
        429,
        "TooManyRequests",
        "Too many requests. Please retry after 2 seconds.",
        None
    )]
    #[case::rate_limit(
        429,
        "TooManyRequests",
        "Rate limit is exceeded. Try again in 5 seconds.",
        None
    )]
    #[case::missing_permission(
        403,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
        None
    )]
    #[case::quota_word_in_a_400(
        400,
        "BadRequest",
        "The directory object quota limit for the tenant has been exceeded.",
        None
    )]
    #[case::server_error(
        500,
        "InternalServerError",
        "Invitations are blocked for this directory due to suspicious activity",
        None
    )]
    fn tenant_refusals_are_told_by_their_message(
        #[case] status: u16,
        #[case] code: &str,
        #[case] message: &str,
        #[case] expected: Option<TenantRefusal>,
    ) {
        let error = refusal("POST", "/v1.0/invitations", status, code, message);
        assert_eq!(TenantRefusal::of(&error), expected);
    }

    #[test]
    fn only_invitations_can_be_tenant_refusals() {
        let message = "Invitations are blocked for this directory due to suspicious activity.";
        assert_eq!(
            TenantRefusal::of(&refusal(
                "PATCH",
                "/v1.0/users/x",
                403,
                "Forbidden",
                message
            )),
            None
        );
        assert_eq!(
            TenantRefusal::of(&refusal(
                "GET",
                "/v1.0/invitations",
                403,
                "Forbidden",
                message
            )),
            None
        );
    }

    fn minimal() -> InvitationRequest {
        InvitationRequest {
            invited_user_email_address: "ada@fabrikam.com".into(),
            invite_redirect_url: "https://myapps.microsoft.com/?tenantId=t".into(),
            invited_user: InvitedUserRef {
                id: UserId::from_uuid(Uuid::from_u128(7)),
            },
            invited_user_display_name: None,
            send_invitation_message: false,
            invited_user_message_info: None,
            invited_user_type: None,
            reset_redemption: false,
        }
    }

    #[test]
    fn unset_fields_are_left_out_of_the_body() {
        let body = serde_json::to_value(minimal()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "invitedUserEmailAddress": "ada@fabrikam.com",
                "inviteRedirectUrl": "https://myapps.microsoft.com/?tenantId=t",
                "invitedUser": {"id": "00000000-0000-0000-0000-000000000007"},
                "sendInvitationMessage": false,
            })
        );
    }

    #[test]
    fn every_documented_field_has_its_graph_name() {
        let mut request = minimal();
        request.invited_user_display_name = Some("Ada".into());
        request.send_invitation_message = true;
        request.invited_user_type = Some("Guest".into());
        request.reset_redemption = true;
        request.invited_user_message_info = Some(MessageInfo {
            customized_message_body: Some("Welcome".into()),
            message_language: Some("fr-FR".into()),
            cc_recipients: vec![Recipient {
                email_address: EmailAddress {
                    address: "pm@contoso.com".into(),
                    name: Some("PM".into()),
                },
            }],
        });
        let body = serde_json::to_value(request).unwrap();
        assert_eq!(body["invitedUserDisplayName"], "Ada");
        assert_eq!(body["invitedUserType"], "Guest");
        assert_eq!(body["resetRedemption"], true);
        assert_eq!(
            body["invitedUserMessageInfo"],
            serde_json::json!({
                "customizedMessageBody": "Welcome",
                "messageLanguage": "fr-FR",
                "ccRecipients": [{"emailAddress": {"address": "pm@contoso.com", "name": "PM"}}],
            })
        );
    }
}
