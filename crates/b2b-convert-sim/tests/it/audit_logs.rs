//! `GET /auditLogs/directoryAudits`: the event each invitation writes (activity, result,
//! initiator, target), the documented filters and paging, the permission, the reports
//! throttling limit, and the audit-event faults.

use std::time::Duration;

use b2b_convert_sim::audit::activities;
use b2b_convert_sim::{Endpoint, FaultPlan, SimSpec, ThrottleConfig, UserCase, WindowLimit};
use serde_json::Value;

use super::{Harness, assert_graph_error, secret_token};

const INTERNAL: &str = "Invite internal user to B2B collaboration";

fn encode(filter: &str) -> String {
    url::form_urlencoded::byte_serialize(filter.as_bytes()).collect()
}

async fn convert(h: &Harness, case: UserCase) -> (String, u16) {
    let user = h.sim.find_user(case).expect("case");
    let address = user
        .mail
        .clone()
        .or_else(|| user.other_mails.first().cloned())
        .unwrap_or_else(|| "someone@fabrikam.com".to_owned());
    let (status, _) = h
        .post_json(
            "/v1.0/invitations",
            &Harness::invitation(&user.id, &address),
        )
        .await;
    (user.id, status)
}

fn events_for<'a>(body: &'a Value, user: &str) -> Vec<&'a Value> {
    body["value"]
        .as_array()
        .expect("value")
        .iter()
        .filter(|e| e["targetResources"][0]["id"] == user)
        .collect()
}

#[tokio::test]
async fn a_conversion_and_a_refused_conversion_are_logged_with_their_result() {
    let h = Harness::generated(3000).await;
    let (converted, status) = convert(&h, UserCase::CloudMailExternal).await;
    assert_eq!(status, 201);
    let (refused, status) = convert(&h, UserCase::SyncedOnPremisesUpn).await;
    assert_eq!(status, 400);
    assert_eq!(activities::INVITE_INTERNAL_USER, INTERNAL);
    let (status, body) = h
        .get_json(&format!(
            "/v1.0/auditLogs/directoryAudits?$filter={}",
            encode(&format!("activityDisplayName eq '{INTERNAL}'"))
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"].as_array().map(Vec::len), Some(2));
    let success = events_for(&body, &converted)[0];
    assert_eq!(success["result"], "success");
    assert_eq!(success["category"], "UserManagement");
    assert_eq!(success["loggedByService"], "Invited Users");
    assert_eq!(success["initiatedBy"]["app"]["appId"], h.sim.client_id());
    assert_eq!(success["targetResources"][0]["type"], "User");
    let failure = events_for(&body, &refused)[0];
    assert_eq!(failure["result"], "failure");
    assert_eq!(
        failure["resultReason"],
        "User invitation failed. Invalid request input."
    );
    // A second invitation of a converted user is not a conversion.
    let user = h.sim.user(&converted).expect("user");
    h.post_json(
        "/v1.0/invitations",
        &Harness::invitation(&converted, user.mail.as_deref().expect("mail")),
    )
    .await;
    let (_, body) = h
        .get_json(&format!(
            "/v1.0/auditLogs/directoryAudits?$filter={}",
            encode(&format!("targetResources/any(t: t/id eq '{converted}')"))
        ))
        .await;
    let activities: Vec<&str> = body["value"]
        .as_array()
        .expect("value")
        .iter()
        .filter_map(|e| e["activityDisplayName"].as_str())
        .collect();
    assert_eq!(
        activities,
        ["Invite external user", INTERNAL],
        "newest first"
    );
}

#[tokio::test]
async fn the_date_range_and_paging_select_and_continue() {
    let h = Harness::generated(3000).await;
    h.sim.freeze_clock();
    let mut ids = Vec::new();
    for case in [
        UserCase::CloudMailExternal,
        UserCase::CloudOtherMailOnly,
        UserCase::ExchangeFoundationOnly,
    ] {
        ids.push(convert(&h, case).await.0);
        h.sim.advance_clock(Duration::from_mins(10));
    }
    let all = h.sim.audit_events();
    assert_eq!(all.len(), 3);
    let second_at =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(all[1].at_ms) * 1_000_000)
            .expect("time")
            .format(&time::format_description::well_known::Rfc3339)
            .expect("format");
    let filter = format!("activityDisplayName eq '{INTERNAL}' and activityDateTime ge {second_at}");
    let (status, first) = h
        .get_json(&format!(
            "/v1.0/auditLogs/directoryAudits?$filter={}&$top=1",
            encode(&filter)
        ))
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        first["value"][0]["targetResources"][0]["id"],
        ids[2].as_str()
    );
    let next = first["@odata.nextLink"].as_str().expect("a next page");
    assert!(next.starts_with(h.sim.graph_url()), "{next}");
    let path = next.trim_start_matches(h.sim.graph_url());
    let (_, second) = h.get_json(path).await;
    assert_eq!(
        second["value"][0]["targetResources"][0]["id"],
        ids[1].as_str()
    );
    assert!(second.get("@odata.nextLink").is_none(), "{second}");
}

#[tokio::test]
async fn undocumented_filters_are_refused_and_the_permission_is_checked() {
    let h = Harness::generated(300).await;
    let (status, body) = h
        .get_json(&format!(
            "/v1.0/auditLogs/directoryAudits?$filter={}",
            encode("result eq 'failure'")
        ))
        .await;
    assert_eq!(status, 400);
    assert_graph_error(&body, "BadRequest", "'result'");
    let reader = &h.sim.apps()[1];
    let token = secret_token(&h.http, &h.sim, &reader.client_id, &reader.secrets[0]).await;
    let response = h
        .http
        .get(h.url("/v1.0/auditLogs/directoryAudits"))
        .bearer_auth(token)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 403);
    let (status, _) = h.get_json("/v1.0/auditLogs/signIns").await;
    assert_eq!(status, 501, "other audit logs are not modelled");
}

#[tokio::test]
async fn the_reports_limit_is_five_requests_per_ten_seconds() {
    let throttling = ThrottleConfig {
        reports: WindowLimit::new(5, Duration::from_secs(10)),
        ..ThrottleConfig::default()
    };
    let h = Harness::start(SimSpec::generated(300, 7).with_throttling(throttling)).await;
    h.sim.freeze_clock();
    for _ in 0..5 {
        let (status, _) = h.get_json("/v1.0/auditLogs/directoryAudits").await;
        assert_eq!(status, 200);
    }
    let response = h.get("/v1.0/auditLogs/directoryAudits").await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    h.sim.advance_clock(Duration::from_secs(10));
    let (status, _) = h.get_json("/v1.0/auditLogs/directoryAudits").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn faults_drop_or_fail_the_event_of_chosen_users() {
    let h = Harness::generated(3000).await;
    let missing = h.sim.find_user(UserCase::CloudMailExternal).expect("case");
    let failed = h
        .sim
        .find_user(UserCase::ExchangeFoundationOnly)
        .expect("case");
    h.sim.set_faults(
        FaultPlan::parse(&format!(
            "invitations:audit-missing={},audit-failed={}",
            missing.id, failed.id
        ))
        .expect("parses"),
    );
    assert_eq!(convert(&h, UserCase::CloudMailExternal).await.1, 201);
    assert_eq!(convert(&h, UserCase::ExchangeFoundationOnly).await.1, 201);
    let events = h.sim.audit_events();
    assert!(events.iter().all(|e| e.target.id != missing.id));
    let logged = events
        .iter()
        .find(|e| e.target.id == failed.id)
        .expect("logged");
    assert!(!logged.success);
    assert!(
        h.sim
            .faults()
            .spec(Endpoint::Invitations)
            .audit_failed_for
            .contains(&failed.id)
    );
}
