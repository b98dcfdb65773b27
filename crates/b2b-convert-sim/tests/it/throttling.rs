//! Throttling like the service: 150 invitation requests per 5 s per tenant, and the identity
//! resource-unit bucket with its headers (NOTES §8).

use std::time::Duration;

use b2b_convert_sim::{CountedAt, FaultPlan, SimSpec, ThrottleConfig, WindowLimit};
use serde_json::Value;

use super::{Harness, assert_graph_error};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_400_invitations_gets_150_through_per_five_seconds() {
    let h = Harness::start(SimSpec::generated(20_000, 3)).await;
    // Exact windows however slow the machine: only advance_clock moves time.
    h.sim.freeze_clock();
    // 400 distinct convertible users.
    let mut bodies = Vec::new();
    let mut index = 0;
    while bodies.len() < 400 {
        let user = h.sim.user_at(index).expect("user");
        if h.sim.case_of(&user.id).as_deref() == Some("cloud-mail-external") {
            bodies.push(Harness::invitation(
                &user.id,
                user.mail.as_deref().expect("mail"),
            ));
        }
        index += 1;
    }
    let burst = |bodies: Vec<Value>| {
        let tasks: Vec<_> = bodies
            .into_iter()
            .map(|body| {
                let request = h.post("/v1.0/invitations").json(&body);
                tokio::spawn(async move { request.send().await.expect("answered") })
            })
            .collect();
        async move {
            let mut created = 0;
            let mut throttled = Vec::new();
            for task in tasks {
                let response = task.await.expect("task");
                match response.status().as_u16() {
                    201 => created += 1,
                    429 => throttled.push(response),
                    other => panic!("unexpected status {other}"),
                }
            }
            (created, throttled)
        }
    };
    let (created, throttled) = burst(bodies[..400].to_vec()).await;
    assert_eq!(created, 150, "at most 150 per 5 s window");
    assert_eq!(throttled.len(), 250);
    let response = throttled.into_iter().next().expect("a 429");
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=5).contains(&retry_after), "{retry_after}");
    assert!(response.headers().contains_key("x-ms-throttle-scope"));
    assert!(response.headers().contains_key("x-ms-throttle-information"));
    let body: Value = response.json().await.expect("json");
    assert_graph_error(&body, "TooManyRequests", "retry after");
    // The next window admits another 150, no more.
    h.sim.advance_clock(Duration::from_secs(5));
    let pending: Vec<Value> = bodies
        .iter()
        .filter(|b| {
            let id = b["invitedUser"]["id"].as_str().expect("id");
            h.sim.user(id).expect("user").external_user_state.is_none()
        })
        .cloned()
        .collect();
    assert_eq!(pending.len(), 250);
    let (created, throttled) = burst(pending).await;
    assert_eq!((created, throttled.len()), (150, 100));
    let retry_after: u64 = throttled[0].headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert_eq!(
        retry_after, 5,
        "a frozen clock: the whole window is still ahead"
    );
    assert_eq!(h.sim.counters().invitations_created, 300);
    assert_eq!(
        h.sim
            .counters()
            .endpoint(b2b_convert_sim::Endpoint::Invitations)
            .throttled,
        350
    );
}

#[tokio::test]
async fn identity_reads_report_resource_units_and_throttle_per_app() {
    let config = ThrottleConfig {
        resource_units: Some(WindowLimit::new(10, Duration::from_secs(10))),
        ..ThrottleConfig::default()
    };
    let h = Harness::start(SimSpec::generated(100, 3).with_throttling(config)).await;
    h.sim.freeze_clock();
    let response = h.get("/v1.0/users").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-ms-resource-unit"],
        "2",
        "GET users = 2 RU"
    );
    let response = h.get("/v1.0/users?$select=id&$top=5").await;
    assert_eq!(
        response.headers()["x-ms-resource-unit"],
        "1",
        "$select -1, $top<20 -1, minimum 1"
    );
    let mut last = None;
    for _ in 0..10 {
        last = Some(h.get("/v1.0/users?$select=id").await);
    }
    let response = last.expect("responses");
    assert_eq!(response.status(), 429);
    assert_eq!(
        response.headers()["x-ms-throttle-information"],
        "ResourceUnitLimitExceeded"
    );
    assert!(
        response.headers()["x-ms-throttle-scope"]
            .to_str()
            .expect("ascii")
            .starts_with("Tenant_Application/")
    );
    assert!(response.headers().contains_key("retry-after"));
    h.sim.advance_clock(Duration::from_secs(10));
    assert_eq!(
        h.get("/v1.0/users?$select=id").await.status(),
        200,
        "the window slid"
    );
    h.sim.set_throttling(ThrottleConfig::disabled());
    for _ in 0..20 {
        assert_eq!(
            h.get("/v1.0/users?$select=id").await.status(),
            200,
            "throttling can be switched off"
        );
    }
}

/// Two invitations at once against a window of one, each taking 300 ms of the service's work:
/// returns how long the refused one took to come back.
async fn refusal_time(counted_at: CountedAt) -> Duration {
    let throttling = ThrottleConfig {
        invitations: WindowLimit::new(1, Duration::from_secs(5)),
        counted_at,
        ..ThrottleConfig::default()
    };
    let spec = SimSpec::generated(200, 3)
        .with_throttling(throttling)
        .with_faults(FaultPlan::parse("invitations:latency=300ms").expect("grammar"));
    let h = Harness::start(spec).await;
    h.sim.freeze_clock();
    let mut users = (0..)
        .map_while(|index| h.sim.user_at(index))
        .filter(|user| h.sim.case_of(&user.id).as_deref() == Some("cloud-mail-external"));
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let user = users.next().expect("a convertible user");
            let request = h.post("/v1.0/invitations").json(&Harness::invitation(
                &user.id,
                user.mail.as_deref().expect("mail"),
            ));
            tokio::spawn(async move {
                let sent = std::time::Instant::now();
                let response = request.send().await.expect("answered");
                (response.status().as_u16(), sent.elapsed())
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.expect("task"));
    }
    statuses.sort_unstable();
    assert_eq!(
        statuses
            .iter()
            .map(|(status, _)| *status)
            .collect::<Vec<_>>(),
        [201, 429]
    );
    assert!(statuses[0].1 >= Duration::from_millis(300), "{statuses:?}");
    statuses[1].1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counted_on_arrival_a_refusal_answers_at_once_counted_on_answer_after_the_work() {
    let at_arrival = refusal_time(CountedAt::Arrival).await;
    assert!(at_arrival < Duration::from_millis(250), "{at_arrival:?}");
    let at_answer = refusal_time(CountedAt::Answer).await;
    assert!(at_answer >= Duration::from_millis(300), "{at_answer:?}");
}
