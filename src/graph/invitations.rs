//! `POST /invitations` for converting an existing internal user (NOTES.md §1), and the
//! `PATCH` of `mail` that today's guidance requires first (§2).
//!
//! The request carries exactly what the operator configured: fields left unset are left out,
//! and the user is named by `invitedUser.id` only — never a whole user object (§1.6). The
//! redemption URL in the answer is sensitive and stays a [`SecretString`] until the caller
//! decides to keep it. This module sends and decodes; what an answer means for a wave member is
//! the executor's business.

use reqwest::Method;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::client::{GraphClient, Response, ResponseMeta};
use super::error::Error;
use crate::domain::{InvitationId, UserId};

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
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

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
