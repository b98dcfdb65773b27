//! Integration tests of the simulated tenant, over HTTP with reqwest: one binary (faster to link
//! on small machines), one module per area, and the harness they share.

mod audit_logs;
mod auth;
mod contacts;
mod contract;
mod delta;
mod faults;
mod invitations;
mod memberships;
mod policies;
mod resources;
mod serve;
mod throttling;
mod users;

use b2b_convert_sim::{Sim, SimSpec, ThrottleConfig};
use serde_json::Value;

/// A plain HTTP client (no retries, no redirects) for talking to the simulator.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(64)
        .build()
        .expect("reqwest client")
}

/// A started simulator with a client and an application token.
#[derive(Debug)]
pub struct Harness {
    pub sim: Sim,
    pub http: reqwest::Client,
    pub token: String,
}

impl Harness {
    /// A generated tenant of `users` users with throttling off (tests of shapes, not limits).
    pub async fn generated(users: u64) -> Self {
        Self::start(SimSpec::generated(users, 7).with_throttling(ThrottleConfig::disabled())).await
    }

    pub async fn start(spec: SimSpec) -> Self {
        let sim = Sim::start(spec).await.expect("simulator starts");
        let http = client();
        let token = secret_token(&http, &sim, sim.client_id(), sim.client_secret()).await;
        Self { sim, http, token }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.graph_url())
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("GET is answered")
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self.get(path).await;
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// An authorised POST of `path`, to send as it is or to add to.
    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(path)).bearer_auth(&self.token)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .post(path)
            .json(body)
            .send()
            .await
            .expect("POST is answered");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn patch_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .patch(self.url(path))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .expect("PATCH is answered");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The body of a conversion invitation for `user_id` at `address`.
    pub fn invitation(user_id: &str, address: &str) -> Value {
        serde_json::json!({
            "invitedUserEmailAddress": address,
            "inviteRedirectUrl": "https://myapps.microsoft.com?tenantId=x",
            "sendInvitationMessage": false,
            "invitedUser": {"id": user_id},
        })
    }
}

/// Client-credentials token with a secret.
pub async fn secret_token(
    http: &reqwest::Client,
    sim: &Sim,
    client_id: &str,
    secret: &str,
) -> String {
    let response = http
        .post(sim.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .expect("token endpoint answers");
    assert_eq!(response.status(), 200, "token request failed");
    let body: Value = response.json().await.expect("token JSON");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// Asserts a Graph error body: code, message substring, and the innerError ids.
pub fn assert_graph_error(body: &Value, code: &str, message_part: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(message_part),
        "message {message:?} should contain {message_part:?}"
    );
    let inner = &body["error"]["innerError"];
    for key in ["request-id", "client-request-id", "date"] {
        assert!(
            inner[key].as_str().is_some_and(|s| !s.is_empty()),
            "innerError.{key} missing in {body}"
        );
    }
}
