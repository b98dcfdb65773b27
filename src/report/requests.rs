//! What a `--dry-run` shows: the requests a command would send, in order, as HTTP text for a
//! person or as a JSON document for a script (`run`, `invite` and `reinvite` share it).
//!
//! Pure: the command chooses the requests (with the settings' Graph base URL); this module only
//! writes them down. A request never carries its bearer token or client-request-id: both are
//! made when it is sent.

use std::fmt::Write as _;

use serde::Serialize;

use crate::domain::UserId;
use crate::graph::invitations::InvitationRequest;
use crate::output::{JsonDocument, terminal_safe};

/// One request a command would send.
#[derive(Debug, Serialize)]
pub struct PlannedRequest {
    /// The user it is for.
    pub user_id: UserId,
    pub user_principal_name: String,
    pub method: &'static str,
    pub url: String,
    pub body: serde_json::Value,
}

impl PlannedRequest {
    /// The `PATCH` that sets a user's `mail` to the address to invite.
    pub fn set_mail(base: &str, user: UserId, upn: &str, address: &str) -> Self {
        Self {
            user_id: user,
            user_principal_name: upn.to_owned(),
            method: "PATCH",
            url: format!("{base}/v1.0/users/{user}"),
            body: serde_json::json!({ "mail": address }),
        }
    }

    /// The `POST /invitations` that converts the user.
    pub fn invitation(base: &str, upn: &str, request: &InvitationRequest) -> Self {
        Self {
            user_id: request.invited_user.id,
            user_principal_name: upn.to_owned(),
            method: "POST",
            url: format!("{base}/v1.0/invitations"),
            body: serde_json::to_value(request)
                .expect("an invitation request serialises: string keys, no fallible impls"),
        }
    }
}

/// Every request of one dry run, in the order they would be sent.
#[derive(Debug, Serialize)]
pub struct DryRun {
    /// The command that was asked (`run`, `invite`, `reinvite`).
    pub command: &'static str,
    /// The wave whose members it would convert (`invite` has none before it runs).
    pub wave: Option<String>,
    /// How each user is read before its requests are sent, and when it is then skipped.
    pub reads_first: String,
    pub requests: Vec<PlannedRequest>,
    /// The invitations among the requests.
    pub invitations: usize,
    /// `--limit` cut the list short.
    pub limited: bool,
}

impl JsonDocument for DryRun {
    const SCHEMA: &'static str = "dry-run";
    const VERSION: u32 = 1;
}

impl DryRun {
    pub fn new(command: &'static str, wave: Option<&str>, reads_first: String) -> Self {
        Self {
            command,
            wave: wave.map(str::to_owned),
            reads_first,
            requests: Vec::new(),
            invitations: 0,
            limited: false,
        }
    }

    /// Adds a user's requests: its `mail` change first when there is one, then its invitation.
    pub fn push_user(&mut self, set_mail: Option<PlannedRequest>, invitation: PlannedRequest) {
        self.requests.extend(set_mail);
        self.requests.push(invitation);
        self.invitations += 1;
    }

    /// The requests as HTTP text: `#` comments, then each user's requests under its name.
    pub fn render(&self) -> String {
        let mut text = String::new();
        let of_wave = self
            .wave
            .as_deref()
            .map(|wave| format!(" of wave {}", terminal_safe(wave)))
            .unwrap_or_default();
        let _ = writeln!(
            text,
            "# Dry run of {}{of_wave}: the requests it would send, in order. Nothing is sent or recorded.\n\
             # Every request also carries `Authorization: Bearer <token>` (not shown) and a client-request-id.\n\
             # {}",
            self.command, self.reads_first,
        );
        let mut previous_user = None;
        for request in &self.requests {
            if previous_user != Some(request.user_id) {
                let _ = writeln!(
                    text,
                    "\n# {} ({})",
                    terminal_safe(&request.user_principal_name),
                    request.user_id
                );
                previous_user = Some(request.user_id);
            }
            let body =
                serde_json::to_string_pretty(&request.body).expect("a JSON value serialises");
            let _ = writeln!(
                text,
                "{} {}\nContent-Type: application/json\n\n{body}",
                request.method, request.url
            );
        }
        let _ = writeln!(
            text,
            "\n# {} invitation(s) would be sent{}.",
            self.invitations,
            if self.limited { " (--limit)" } else { "" }
        );
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DryRun {
        let user: UserId = "5a9f3c1e-0b2d-4e6f-8a7b-9c0d1e2f3a4b".parse().unwrap();
        let mut dry = DryRun::new("run", Some("pilot"), "Each user is re-read first.".into());
        let invitation = PlannedRequest {
            user_id: user,
            user_principal_name: "ada@contoso.com".into(),
            method: "POST",
            url: "https://graph.example/v1.0/invitations".into(),
            body: serde_json::json!({ "invitedUser": { "id": user } }),
        };
        dry.push_user(
            Some(PlannedRequest::set_mail(
                "https://graph.example",
                user,
                "ada@contoso.com",
                "ada@fabrikam.com",
            )),
            invitation,
        );
        dry
    }

    #[test]
    fn the_text_names_each_user_once_above_its_requests_in_order() {
        let text = sample().render();
        assert_eq!(
            text.matches("# ada@contoso.com (5a9f3c1e").count(),
            1,
            "{text}"
        );
        let patch = text
            .find("PATCH https://graph.example/v1.0/users/5a9f")
            .unwrap();
        let post = text
            .find("POST https://graph.example/v1.0/invitations")
            .unwrap();
        assert!(patch < post, "{text}");
        assert!(text.contains("\"mail\": \"ada@fabrikam.com\""), "{text}");
        assert!(
            text.ends_with("# 1 invitation(s) would be sent.\n"),
            "{text}"
        );
        assert!(!text.contains("Bearer ey"), "no token is ever shown");
    }

    #[test]
    fn the_document_lists_every_request_and_counts_the_invitations() {
        let value = serde_json::to_value(sample()).unwrap();
        assert_eq!(value["command"], "run");
        assert_eq!(value["invitations"], 1);
        assert_eq!(value["requests"].as_array().unwrap().len(), 2);
        assert_eq!(value["requests"][0]["method"], "PATCH");
        assert_eq!(
            value["requests"][1]["body"]["invitedUser"]["id"],
            "5a9f3c1e-0b2d-4e6f-8a7b-9c0d1e2f3a4b"
        );
    }
}
