//! The login host: client secret, certificate assertions (PS256 `x5t#S256`, RS256 `x5t`),
//! token expiry and revocation, permissions, and the device-code flow (NOTES §7).

use std::time::Duration;

use b2b_convert_sim::{Sim, SimCertificate, SimSpec, ThrottleConfig};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use super::{Harness, assert_graph_error, client, secret_token};

async fn token_request(http: &reqwest::Client, sim: &Sim, form: &[(&str, &str)]) -> (u16, Value) {
    let response = http
        .post(sim.token_url())
        .form(form)
        .send()
        .await
        .expect("answered");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

fn assert_oauth_error(body: &Value, error: &str, aadsts: u64) {
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"][0], aadsts, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .expect("description")
            .starts_with(&format!("AADSTS{aadsts}:"))
    );
    for key in ["timestamp", "trace_id", "correlation_id"] {
        assert!(body[key].is_string(), "{key} missing: {body}");
    }
}

fn assertion_claims(sim: &Sim, lifetime: i64) -> Value {
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs(),
    )
    .expect("fits");
    json!({
        "aud": sim.token_url(),
        "iss": sim.client_id(),
        "sub": sim.client_id(),
        "jti": uuid::Uuid::new_v4().to_string(),
        "nbf": now,
        "exp": now + lifetime,
    })
}

async fn assertion_token(http: &reqwest::Client, sim: &Sim, assertion: &str) -> (u16, Value) {
    token_request(
        http,
        sim,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", sim.client_id()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await
}

#[tokio::test]
async fn secrets_are_checked_and_tokens_carry_roles() {
    let sim = Sim::start(SimSpec::generated(10, 1)).await.expect("starts");
    let http = client();
    let token = secret_token(&http, &sim, sim.client_id(), sim.client_secret()).await;
    let claims: Value = jsonwebtoken::dangerous::insecure_decode::<Value>(&token)
        .expect("a JWT")
        .claims;
    assert_eq!(claims["aud"], "https://graph.microsoft.com");
    assert_eq!(claims["tid"], sim.tenant_id());
    assert!(
        claims["roles"]
            .as_array()
            .expect("roles")
            .iter()
            .any(|r| r == "User.Invite.All")
    );
    let (status, body) = token_request(
        &http,
        &sim,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", sim.client_id()),
            ("client_secret", "wrong"),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await;
    assert_eq!(status, 401);
    assert_oauth_error(&body, "invalid_client", 7_000_215);
    let (status, body) = token_request(
        &http,
        &sim,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "11111111-1111-4111-8111-111111111111"),
            ("client_secret", "x"),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert_oauth_error(&body, "unauthorized_client", 700_016);
    let (status, body) = token_request(
        &http,
        &sim,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", sim.client_id()),
            ("client_secret", sim.client_secret()),
            ("scope", "User.Read.All"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert_oauth_error(&body, "invalid_scope", 1_002_012);
}

#[tokio::test]
async fn certificate_assertions_are_verified() {
    let sim = Sim::start(SimSpec::generated(10, 1)).await.expect("starts");
    let http = client();
    let certificate = sim.certificate().expect("certificate");
    for alg in [Algorithm::PS256, Algorithm::RS256] {
        let assertion = certificate
            .sign_assertion(alg, &assertion_claims(&sim, 600))
            .expect("signed");
        let (status, body) = assertion_token(&http, &sim, &assertion).await;
        assert_eq!(status, 200, "{alg:?}: {body}");
        // A replayed assertion (same jti) is refused.
        let (status, body) = assertion_token(&http, &sim, &assertion).await;
        assert_eq!(status, 401, "{body}");
    }
    let expired = certificate
        .sign_assertion(Algorithm::PS256, &assertion_claims(&sim, -3600))
        .expect("signed");
    let (status, body) = assertion_token(&http, &sim, &expired).await;
    assert_eq!(status, 401);
    assert_oauth_error(&body, "invalid_client", 700_024);
    let mut wrong_audience = assertion_claims(&sim, 600);
    wrong_audience["aud"] =
        json!("https://login.microsoftonline.com/other-tenant/oauth2/v2.0/token");
    let (status, body) = assertion_token(
        &http,
        &sim,
        &certificate
            .sign_assertion(Algorithm::PS256, &wrong_audience)
            .expect("signed"),
    )
    .await;
    assert_eq!(status, 401);
    assert_oauth_error(&body, "invalid_client", 50027);
    let mut wrong_issuer = assertion_claims(&sim, 600);
    wrong_issuer["iss"] = json!("someone-else");
    let (status, body) = assertion_token(
        &http,
        &sim,
        &certificate
            .sign_assertion(Algorithm::PS256, &wrong_issuer)
            .expect("signed"),
    )
    .await;
    assert_eq!(status, 401);
    assert_oauth_error(&body, "invalid_client", 700_021);
    let unregistered = SimCertificate::generate().expect("another certificate");
    let (status, body) = assertion_token(
        &http,
        &sim,
        &unregistered
            .sign_assertion(Algorithm::PS256, &assertion_claims(&sim, 600))
            .expect("signed"),
    )
    .await;
    assert_eq!(status, 401);
    assert_oauth_error(&body, "invalid_client", 700_027);
    // A valid header/claims with a signature from another key: the thumbprint matches, the signature does not.
    let good = certificate
        .sign_assertion(Algorithm::PS256, &assertion_claims(&sim, 600))
        .expect("signed");
    let forged_signature = unregistered
        .sign_assertion(Algorithm::PS256, &assertion_claims(&sim, 600))
        .expect("signed");
    let forged = format!(
        "{}.{}",
        good.rsplit_once('.').expect("jwt").0,
        forged_signature.rsplit_once('.').expect("jwt").1
    );
    let (status, body) = assertion_token(&http, &sim, &forged).await;
    assert_eq!(status, 401);
    assert!(
        body["error_description"]
            .as_str()
            .expect("text")
            .contains("signature"),
        "{body}"
    );
}

#[tokio::test]
async fn tokens_expire_and_can_be_revoked() {
    let h =
        Harness::start(SimSpec::generated(10, 1).with_throttling(ThrottleConfig::disabled())).await;
    assert_eq!(h.get("/v1.0/users?$top=1").await.status(), 200);
    h.sim.advance_clock(Duration::from_hours(1));
    let response = h.get("/v1.0/users?$top=1").await;
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    let body: Value = response.json().await.expect("json");
    assert_graph_error(&body, "InvalidAuthenticationToken", "expired");
    let fresh = secret_token(&h.http, &h.sim, h.sim.client_id(), h.sim.client_secret()).await;
    assert_eq!(
        h.http
            .get(h.url("/v1.0/users?$top=1"))
            .bearer_auth(&fresh)
            .send()
            .await
            .expect("ok")
            .status(),
        200
    );
    h.sim.revoke_tokens();
    let body: Value = h
        .http
        .get(h.url("/v1.0/users?$top=1"))
        .bearer_auth(&fresh)
        .send()
        .await
        .expect("ok")
        .json()
        .await
        .expect("json");
    assert_graph_error(&body, "InvalidAuthenticationToken", "Revocation");
    let body: Value = h
        .http
        .get(h.url("/v1.0/users"))
        .send()
        .await
        .expect("ok")
        .json()
        .await
        .expect("json");
    assert_graph_error(&body, "InvalidAuthenticationToken", "Access token is empty");
}

#[tokio::test]
async fn endpoints_enforce_their_permissions() {
    let sim = Sim::start(SimSpec::generated(50, 1).with_throttling(ThrottleConfig::disabled()))
        .await
        .expect("starts");
    let http = client();
    let reader = &sim.apps()[1];
    let token = secret_token(&http, &sim, &reader.client_id, &reader.secrets[0]).await;
    let user = sim.user_at(0).expect("user");
    let status = |path: &str| {
        let request = http
            .get(format!("{}{path}", sim.graph_url()))
            .bearer_auth(&token);
        async move { request.send().await.expect("answered") }
    };
    assert_eq!(
        status("/v1.0/users?$top=1").await.status(),
        200,
        "User.Read.All reads users"
    );
    for path in [
        "/v1.0/domains",
        "/v1.0/organization",
        "/v1.0/directory/federationConfigurations/graph.samlOrWsFedExternalDomainFederation",
    ] {
        let response = status(path).await;
        assert_eq!(response.status(), 403, "{path}");
        let body: Value = response.json().await.expect("json");
        assert_graph_error(
            &body,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        );
    }
    let response = http
        .post(format!("{}/v1.0/invitations", sim.graph_url()))
        .bearer_auth(&token)
        .json(&Harness::invitation(&user.id, "a.b.0@fabrikam.com"))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 403, "User.Invite.All is needed");
    let response = http
        .patch(format!("{}/v1.0/users/{}", sim.graph_url(), user.id))
        .bearer_auth(&token)
        .json(&json!({"mail": null}))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 403, "User.ReadWrite.All is needed");
}

/// One poll of the token endpoint with the device-code grant.
async fn poll_device_code(http: &reqwest::Client, sim: &Sim, device_code: &str) -> (u16, Value) {
    let response = http
        .post(format!(
            "{}/organizations/oauth2/v2.0/token",
            sim.login_url()
        ))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", sim.client_id()),
            ("device_code", device_code),
        ])
        .send()
        .await
        .expect("answered");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

#[tokio::test]
async fn device_code_flow_polls_until_approved() {
    let sim = Sim::start(SimSpec::generated(10, 1).with_throttling(ThrottleConfig::disabled()))
        .await
        .expect("starts");
    let http = client();
    sim.freeze_clock();
    let device_url = format!("{}/organizations/oauth2/v2.0/devicecode", sim.login_url());
    let start = |scope: &'static str| {
        let request = http
            .post(&device_url)
            .form(&[("client_id", sim.client_id()), ("scope", scope)]);
        async move { request.send().await.expect("answered") }
    };
    let code: Value = start("https://graph.microsoft.com/User.Invite.All https://graph.microsoft.com/User.Read.All offline_access").await.json().await.expect("json");
    for key in [
        "device_code",
        "user_code",
        "verification_uri",
        "expires_in",
        "interval",
        "message",
    ] {
        assert!(!code[key].is_null(), "{key} in {code}");
    }
    assert!(code.get("verification_uri_complete").is_none());
    let device_code = code["device_code"]
        .as_str()
        .expect("device code")
        .to_owned();
    let user_code = code["user_code"].as_str().expect("user code").to_owned();
    let (status, body) = poll_device_code(&http, &sim, &device_code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("authorization_pending")),
        "{body}"
    );
    let (_, body) = poll_device_code(&http, &sim, &device_code).await;
    assert_eq!(
        body["error"], "slow_down",
        "polling faster than the interval"
    );
    assert!(sim.approve_device_code(&user_code, Some("admin@contoso.com")));
    sim.advance_clock(Duration::from_secs(11));
    let (status, body) = poll_device_code(&http, &sim, &device_code).await;
    assert_eq!(status, 200, "{body}");
    let claims: Value = jsonwebtoken::dangerous::insecure_decode::<Value>(
        body["access_token"].as_str().expect("token"),
    )
    .expect("jwt")
    .claims;
    assert_eq!(claims["scp"], "User.Invite.All User.Read.All");
    assert_eq!(claims["upn"], "admin@contoso.com");
    assert!(claims.get("roles").is_none());
    let delegated = body["access_token"].as_str().expect("token");
    let response = http
        .get(format!("{}/v1.0/domains", sim.graph_url()))
        .bearer_auth(delegated)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 403, "scp has no Domain.Read.All");

    let declined: Value = start("User.Read.All").await.json().await.expect("json");
    assert!(sim.decline_device_code(declined["user_code"].as_str().expect("code")));
    let (_, body) =
        poll_device_code(&http, &sim, declined["device_code"].as_str().expect("code")).await;
    assert_eq!(body["error"], "authorization_declined");

    let expiring: Value = start("User.Read.All").await.json().await.expect("json");
    sim.advance_clock(Duration::from_secs(901));
    let (_, body) =
        poll_device_code(&http, &sim, expiring["device_code"].as_str().expect("code")).await;
    assert_eq!(body["error"], "expired_token");
}
