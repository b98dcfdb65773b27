//! Faults per endpoint: 503/504 with and without `Retry-After`, latency, connection resets and
//! "commit then drop" on `POST /invitations`, switchable at start and at runtime.

use std::time::{Duration, Instant};

use b2b_convert_sim::{Endpoint, FaultPlan, FaultSpec, SimSpec, ThrottleConfig, UserCase};
use serde_json::Value;

use super::Harness;

async fn harness(plan: FaultPlan) -> Harness {
    Harness::start(
        SimSpec::generated(3000, 5)
            .with_throttling(ThrottleConfig::disabled())
            .with_faults(plan),
    )
    .await
}

#[tokio::test]
async fn a_503_on_one_endpoint_leaves_the_others_alone() {
    let plan = FaultPlan::parse("list-users:503=1,retry-after=7").expect("grammar");
    let h = harness(plan).await;
    let response = h.get("/v1.0/users").await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "7");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "serviceNotAvailable");
    assert_eq!(h.get("/v1.0/domains").await.status(), 200);
    assert_eq!(
        h.get(&format!(
            "/v1.0/users/{}",
            h.sim.user_at(0).expect("user").id
        ))
        .await
        .status(),
        200
    );
    assert_eq!(
        h.sim
            .counters()
            .endpoint(Endpoint::ListUsers)
            .injected_status,
        1
    );
}

#[tokio::test]
async fn a_504_without_retry_after_and_runtime_switching_over_the_admin_path() {
    let h = harness(FaultPlan::none()).await;
    assert_eq!(h.get("/v1.0/domains").await.status(), 200);
    let response = h
        .http
        .put(format!("{}/faults", h.sim.admin_url()))
        .header("content-type", "text/plain")
        .body("domains:504=1")
        .send()
        .await
        .expect("admin");
    assert_eq!(response.status(), 200);
    let response = h.get("/v1.0/domains").await;
    assert_eq!(response.status(), 504);
    assert!(!response.headers().contains_key("retry-after"));
    h.sim.set_faults(FaultPlan::none());
    assert_eq!(h.get("/v1.0/domains").await.status(), 200);
}

#[tokio::test]
async fn latency_is_added_to_the_chosen_endpoint() {
    let plan = FaultPlan::none().with(
        Endpoint::Organization,
        FaultSpec {
            latency_ms: Some((400, 450)),
            ..FaultSpec::default()
        },
    );
    let h = harness(plan).await;
    let started = Instant::now();
    assert_eq!(h.get("/v1.0/organization").await.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    // Other endpoints get none: the request is classified as its own endpoint, whose spec has no
    // latency. (How fast it is answered is the machine's business: no upper bound on time here.)
    assert_eq!(h.get("/v1.0/domains").await.status(), 200);
    let log = h.sim.request_log();
    let domains = log
        .iter()
        .find(|r| r.path.starts_with("/v1.0/domains"))
        .expect("the request is logged");
    assert_eq!(domains.endpoint, Some(Endpoint::Domains));
    assert_eq!(h.sim.faults().spec(Endpoint::Domains).latency_ms, None);
}

#[tokio::test]
async fn a_reset_reaches_the_client_as_a_transport_error_and_does_nothing() {
    let plan = FaultPlan::none().with(
        Endpoint::Invitations,
        FaultSpec {
            reset: 1.0,
            ..FaultSpec::default()
        },
    );
    let h = harness(plan).await;
    let user = h.sim.find_user(UserCase::CloudMailExternal).expect("case");
    let result = h
        .post("/v1.0/invitations")
        .json(&Harness::invitation(
            &user.id,
            user.mail.as_deref().expect("mail"),
        ))
        .send()
        .await;
    assert!(result.is_err(), "no HTTP response: {result:?}");
    assert_eq!(
        h.sim.user(&user.id).expect("user").external_user_state,
        None,
        "nothing was committed"
    );
    assert_eq!(
        h.sim.invitation_posts(&user.id),
        1,
        "the attempt is still counted"
    );
    assert_eq!(h.sim.counters().endpoint(Endpoint::Invitations).resets, 1);
}

#[tokio::test]
async fn commit_then_drop_converts_the_user_but_the_client_never_hears_it() {
    let plan = FaultPlan::parse("invitations:drop=1").expect("grammar");
    let h = harness(plan).await;
    let user = h.sim.find_user(UserCase::CloudMailExternal).expect("case");
    let result = h
        .post("/v1.0/invitations")
        .json(&Harness::invitation(
            &user.id,
            user.mail.as_deref().expect("mail"),
        ))
        .send()
        .await;
    assert!(result.is_err(), "the response is dropped: {result:?}");
    assert_eq!(
        h.sim
            .user(&user.id)
            .expect("user")
            .external_user_state
            .as_deref(),
        Some("PendingAcceptance"),
        "but the work was done"
    );
    assert_eq!(h.sim.counters().invitations_created, 1);
    assert_eq!(
        h.sim
            .counters()
            .endpoint(Endpoint::Invitations)
            .committed_then_dropped,
        1
    );
    // A refused invitation is answered normally: only committed work is dropped.
    let synced = h
        .sim
        .find_user(UserCase::SyncedOnPremisesUpn)
        .expect("case");
    let (status, _) = h
        .post_json(
            "/v1.0/invitations",
            &Harness::invitation(&synced.id, synced.mail.as_deref().expect("mail")),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn token_endpoint_faults_too() {
    let plan = FaultPlan::parse("token:503=1,retry-after=2").expect("grammar");
    let sim = b2b_convert_sim::Sim::start(SimSpec::generated(10, 1).with_faults(plan))
        .await
        .expect("starts");
    let response = super::client()
        .post(sim.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", sim.client_id()),
            ("client_secret", sim.client_secret()),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "2");
}

#[tokio::test]
async fn the_admin_path_reports_counters_requests_and_posts() {
    let h = harness(FaultPlan::none()).await;
    let user = h.sim.find_user(UserCase::CloudMailExternal).expect("case");
    let body = Harness::invitation(&user.id, user.mail.as_deref().expect("mail"));
    let response = h
        .post("/v1.0/invitations")
        .header("client-request-id", "trace-me")
        .json(&body)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 201);
    let (status, _) = h.post_json("/v1.0/invitations", &body).await;
    assert_eq!(status, 201, "a pending user is re-sent");
    let admin = h.sim.admin_url();
    let posts: Value = h
        .http
        .get(format!("{admin}/users/{}/invitation-posts", user.id))
        .send()
        .await
        .expect("admin")
        .json()
        .await
        .expect("json");
    assert_eq!(posts["posts"], 2);
    let counters: Value = h
        .http
        .get(format!("{admin}/counters"))
        .send()
        .await
        .expect("admin")
        .json()
        .await
        .expect("json");
    assert_eq!(
        counters["endpoints"]["invitations"]["success"], 2,
        "{counters}"
    );
    let log: Value = h
        .http
        .get(format!("{admin}/requests"))
        .send()
        .await
        .expect("admin")
        .json()
        .await
        .expect("json");
    let traced = log
        .as_array()
        .expect("log")
        .iter()
        .find(|r| r["clientRequestId"] == "trace-me")
        .expect("logged");
    assert_eq!(traced["status"], 201);
    assert_eq!(traced["endpoint"], "invitations");
    assert_eq!(traced["appId"], h.sim.client_id());
    assert_eq!(
        h.sim.request_log().len(),
        log.as_array().expect("log").len()
    );
    let state: Value = h
        .http
        .get(format!("{admin}/users/{}", user.user_principal_name))
        .send()
        .await
        .expect("admin")
        .json()
        .await
        .expect("json");
    assert_eq!(state["case"], "cloud-mail-external");
    assert_eq!(state["user"]["externalUserState"], "PendingAcceptance");
}

#[tokio::test]
async fn commit_then_drop_on_patch_keeps_the_change() {
    let h = harness(FaultPlan::parse("patch-user:drop=1").expect("grammar")).await;
    let user = h.sim.find_user(UserCase::CloudOtherMailOnly).expect("case");
    let result = h
        .http
        .patch(h.url(&format!("/v1.0/users/{}", user.id)))
        .bearer_auth(&h.token)
        .json(&serde_json::json!({"mail": user.other_mails[0]}))
        .send()
        .await;
    assert!(result.is_err());
    assert_eq!(
        h.sim.user(&user.id).expect("user").mail,
        Some(user.other_mails[0].clone())
    );
}
