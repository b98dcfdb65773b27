//! What the executor does with invitations the run holds back: the user whose invitation the
//! service refused for the whole tenant (the abuse block, a quota) and users whose intent was
//! recorded but whose invitation was not sent once the [`InvitationGate`] shut go back to
//! `ready`, recorded with why; and the client's retry guard, so that a request waiting out a
//! `Retry-After` is not sent again either. It must not decide whether the gate shuts (that is
//! [`InvitationGate::observe`]) nor fail a user for what concerns the whole tenant.

use std::sync::Arc;
use std::time::Duration;

use super::{Executor, Fatal, InvitationGate, Sent, UserOutcome, millis, now, with_failure};
use crate::domain::{UserId, UserState};
use crate::graph;
use crate::store::Transition;

impl Executor {
    /// The service refused the invitation for the whole tenant (the abuse block, a quota): the
    /// gate shuts, and the user goes back to `ready` with the answer recorded. It is not a
    /// failure of the user: a later run sends it.
    pub(super) async fn refused_for_the_tenant(
        &self,
        user: UserId,
        err: &graph::Error,
        elapsed: Duration,
    ) -> Result<Sent, Fatal> {
        let halt = self.gate.observe(err, now());
        let mut event = self.event(
            user,
            "invitation.tenant-refused",
            serde_json::json!({ "halt": halt, "error": err.to_string() }),
        );
        with_failure(&mut event, "POST", "/v1.0/invitations", err);
        event.duration_ms = Some(millis(elapsed));
        tracing::warn!(%user, "invitations refused for the tenant: {err}");
        self.store
            .record(
                self.wave,
                user,
                &Transition::new(UserState::Inviting, UserState::Ready, now()),
                Some(&event),
            )
            .await?;
        Ok(Sent::Done(UserOutcome::Withheld))
    }

    /// The invitation whose intent is recorded was not sent (the run stopped sending): the user
    /// is `ready` again.
    pub(super) async fn withheld(&self, user: UserId, reason: &str) -> Result<Sent, Fatal> {
        self.move_to(
            user,
            UserState::Inviting,
            UserState::Ready,
            "invitation.withheld",
            Some(serde_json::json!({ "reason": reason })),
        )
        .await?;
        Ok(Sent::Done(UserOutcome::Withheld))
    }
}

/// Withholds every retry of an invitation once `gate` is shut by the service: a request waiting
/// out a `Retry-After` is not sent again after the abuse block or a quota refusal.
pub fn invitation_guard(gate: Arc<InvitationGate>) -> graph::client::RetryGuard {
    Arc::new(
        move |event: &graph::client::RetryEvent| match gate.is_blocked() {
            Some(halt) if event.method == "POST" && event.path.contains("/invitations") => {
                Err(format!("the run stopped sending invitations: {halt}"))
            }
            _ => Ok(()),
        },
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_invitation_guard_withholds_retries_of_invitations_once_the_service_refused() {
        let gate = InvitationGate::new(None, Vec::new());
        let guard = invitation_guard(Arc::clone(&gate));
        let retry = |method: &str, path: &str| graph::client::RetryEvent {
            method: method.into(),
            path: path.into(),
            attempt: 1,
            status: Some(429),
            failure: "429".into(),
            wait: Duration::from_secs(1),
            answered_after: Duration::from_millis(20),
        };
        assert!(guard(&retry("POST", "/v1.0/invitations")).is_ok());
        let blocked = graph::Error::Api(Box::new(graph::ApiError {
            method: "POST".into(),
            path: "/v1.0/invitations".into(),
            status: 403,
            code: "Authorization_RequestDenied".into(),
            message: "Invitations are blocked for this directory due to suspicious activity."
                .into(),
            request_id: "r".into(),
            client_request_id: "c".into(),
            retry_after: None,
        }));
        assert!(gate.observe(&blocked, now()).is_some());
        assert!(guard(&retry("POST", "/v1.0/invitations")).is_err());
        assert!(
            guard(&retry("GET", "/v1.0/users/x")).is_ok(),
            "reads go on (reconciling)"
        );
    }
}
