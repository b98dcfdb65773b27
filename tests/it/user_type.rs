//! `set-user-type` against the simulated tenant: only redeemed members converted by the tool,
//! read first (a rerun writes nothing twice), every write in the event log and `audit export`
//! with its request ids, the replication-lag refusal waited out, and the back-out to Member.

use std::path::Path;
use std::time::Duration;

use b2b_convert::domain::UserId;
use b2b_convert_sim::{Endpoint, FaultPlan, Sim};
use serde_json::Value;

use crate::support::{cli, text};
use crate::verify::{discovered, group, plan_group, store};

/// A discovered tenant whose pilot wave was run, with its members (all `invited`).
async fn converted_pilot() -> (Sim, tempfile::TempDir, Vec<UserId>) {
    let (sim, dir) = discovered().await;
    let (_, ready) = plan_group(dir.path(), &sim, "pilot", &group(0)).await;
    assert!(ready.len() >= 3, "{ready:?}");
    let output = cli(
        dir.path(),
        &sim,
        &["run", "--wave", "pilot", "--yes", "--reconcile-delay", "0"],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stdout));
    (sim, dir, ready)
}

/// The partners of `users` redeem, and `status --refresh` records it.
async fn redeem(dir: &Path, sim: &Sim, users: &[UserId]) {
    for user in users {
        sim.redeem(&user.to_string()).unwrap();
    }
    let output = cli(dir, sim, &["status", "--wave", "pilot", "--refresh"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
}

async fn set_user_type(dir: &Path, sim: &Sim, args: &[&str]) -> (Option<i32>, Value, String) {
    let mut all = vec!["set-user-type", "--wave", "pilot", "--json"];
    all.extend_from_slice(args);
    let output = cli(dir, sim, &all).await;
    let stderr = text(&output.stderr);
    let summary = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("JSON: {}{stderr}", text(&output.stdout)));
    (output.status.code(), summary, stderr)
}

fn user_type(sim: &Sim, user: UserId) -> Option<String> {
    sim.user(&user.to_string()).unwrap().user_type
}

fn patches(sim: &Sim) -> u64 {
    sim.counters().endpoint(Endpoint::PatchUser).requests
}

#[tokio::test(flavor = "multi_thread")]
async fn redeemed_members_become_guests_once_and_can_be_set_back() {
    let (sim, dir, members) = converted_pilot().await;
    let redeemed = &members[..2];
    redeem(dir.path(), &sim, redeemed).await;
    let waiting = members.len() - 2;

    // A dry run reads and writes nothing.
    let before = patches(&sim);
    let (code, dry, stderr) =
        set_user_type(dir.path(), &sim, &["--to", "guest", "--dry-run"]).await;
    assert_eq!(code, Some(0), "{dry:#}{stderr}");
    assert_eq!(
        (&dry["would_set"], &dry["not_redeemed"]),
        (&2.into(), &waiting.into()),
        "{dry:#}"
    );
    assert_eq!(patches(&sim), before);
    assert_eq!(user_type(&sim, redeemed[0]).as_deref(), Some("Member"));

    // Without --yes and without a terminal: refused, nothing written.
    let output = cli(
        dir.path(),
        &sim,
        &["set-user-type", "--wave", "pilot", "--to", "guest"],
    )
    .await;
    assert_eq!(output.status.code(), Some(4), "{}", text(&output.stderr));
    assert_eq!(patches(&sim), before);

    let (code, done, stderr) = set_user_type(dir.path(), &sim, &["--to", "guest", "--yes"]).await;
    assert_eq!(code, Some(0), "{done:#}{stderr}");
    assert_eq!(
        (&done["set"], &done["failed"]),
        (&2.into(), &0.into()),
        "{done:#}"
    );
    for user in redeemed {
        assert_eq!(user_type(&sim, *user).as_deref(), Some("Guest"));
    }
    for user in &members[2..] {
        assert_eq!(
            user_type(&sim, *user).as_deref(),
            Some("Member"),
            "not redeemed: untouched"
        );
    }
    assert_eq!(patches(&sim), before + 2, "one write per redeemed member");

    // Again: Graph already shows Guest, so nothing is written.
    let (code, again, _) = set_user_type(dir.path(), &sim, &["--to", "guest", "--yes"]).await;
    assert_eq!(code, Some(0));
    assert_eq!(
        (&again["set"], &again["already"]),
        (&0.into(), &2.into()),
        "{again:#}"
    );
    assert_eq!(patches(&sim), before + 2);

    // Every write is in the audit trail with its request ids; none reads as a mail change.
    let output = cli(
        dir.path(),
        &sim,
        &["audit", "export", "--wave", "pilot", "--format", "json"],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let records: Vec<Value> = text(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &Value| r["event"] == "user-type.set")
        .collect();
    assert_eq!(records.len(), 2, "{}", text(&output.stdout));
    for record in &records {
        assert_eq!(record["command"], "set-user-type");
        assert_eq!(
            (&record["method"], &record["status"]),
            (&"PATCH".into(), &204.into())
        );
        assert!(
            record["request_id"].as_str().is_some_and(|r| !r.is_empty()),
            "{record}"
        );
        assert!(record["mail"].is_null(), "{record}");
    }

    // The back-out reverts this tool's changes only: a member made Guest by someone else
    // stays Guest.
    let third = members[2];
    redeem(dir.path(), &sim, &[third]).await;
    crate::support::client_with_secret(&sim, sim.client_id(), sim.client_secret())
        .set_user_type(third, b2b_convert::domain::UserType::Guest)
        .await
        .unwrap();
    let (code, back, _) = set_user_type(dir.path(), &sim, &["--to", "member", "--yes"]).await;
    assert_eq!(code, Some(0));
    assert_eq!(
        (&back["set"], &back["not_set_by_tool"]),
        (&2.into(), &1.into()),
        "{back:#}"
    );
    for user in redeemed {
        assert_eq!(user_type(&sim, *user).as_deref(), Some("Member"));
    }
    assert_eq!(user_type(&sim, third).as_deref(), Some("Guest"), "not ours");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_replication_lag_refusal_is_recorded_and_waited_out() {
    let (sim, dir, members) = converted_pilot().await;
    let user = members[0];
    redeem(dir.path(), &sim, &[user]).await;
    sim.set_faults(FaultPlan::parse("patch-user:reference-lag=600").unwrap());
    // The service's replication catches up once the tool has met the refusal.
    let sim = std::sync::Arc::new(sim);
    let watcher = {
        let sim = std::sync::Arc::clone(&sim);
        tokio::spawn(async move {
            while sim.counters().endpoint(Endpoint::PatchUser).client_errors == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            sim.advance_clock(Duration::from_secs(600));
        })
    };
    let (code, summary, stderr) = set_user_type(
        dir.path(),
        &sim,
        &["--to", "guest", "--yes", "--lag-retry-delay", "0.5"],
    )
    .await;
    watcher.await.unwrap();
    assert_eq!(code, Some(0), "{summary:#}{stderr}");
    assert_eq!(summary["set"], 1, "{summary:#}");
    let retries = summary["lag_retries"].as_u64().unwrap();
    assert!(retries >= 1, "{summary:#}");
    assert_eq!(user_type(&sim, user).as_deref(), Some("Guest"));

    let store = store(dir.path()).await;
    let wave = store.wave_by_name("pilot").await.unwrap().unwrap();
    let events = store.wave_events(wave.id).await.unwrap();
    let lags: Vec<_> = events
        .iter()
        .filter(|e| e.event.kind == "user-type.lag")
        .collect();
    assert_eq!(lags.len() as u64, retries);
    assert!(lags.iter().all(|e| e.event.http_status == Some(400)
        && e.event.request_id.is_some()
        && e.event.user_id == Some(user)));
    let kinds: Vec<&str> = events
        .iter()
        .filter(|e| e.event.kind.starts_with("user-type."))
        .map(|e| e.event.kind.as_str())
        .collect();
    assert_eq!(
        kinds.first(),
        Some(&"user-type.intent"),
        "intent first: {kinds:?}"
    );
    assert_eq!(kinds.last(), Some(&"user-type.set"), "{kinds:?}");
    store.close().await;
}

/// With no waiting allowed, a replication-lag refusal is a failure of that member (exit 3),
/// recorded, and its userType stays as it was.
#[tokio::test(flavor = "multi_thread")]
async fn a_lag_refusal_past_the_allowed_retries_fails_the_member() {
    let (sim, dir, members) = converted_pilot().await;
    let other = members[0];
    redeem(dir.path(), &sim, &[other]).await;
    sim.set_faults(FaultPlan::parse("patch-user:reference-lag=3600").unwrap());
    let (code, summary, _) = set_user_type(
        dir.path(),
        &sim,
        &["--to", "guest", "--yes", "--lag-retries", "0"],
    )
    .await;
    assert_eq!(code, Some(3), "{summary:#}");
    assert_eq!(summary["failed"], 1, "{summary:#}");
    let failed = summary["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["outcome"] == "failed")
        .unwrap();
    assert!(
        failed["detail"]
            .as_str()
            .unwrap()
            .contains("Not a valid reference update"),
        "{failed}"
    );
    assert_eq!(user_type(&sim, other).as_deref(), Some("Member"));
    let store = store(dir.path()).await;
    let wave = store.wave_by_name("pilot").await.unwrap().unwrap();
    let recorded = store.wave_events(wave.id).await.unwrap();
    let failure = recorded
        .iter()
        .find(|e| e.event.kind == "user-type.failed")
        .expect("the failure is recorded");
    assert_eq!(
        (failure.event.user_id, failure.event.http_status),
        (Some(other), Some(400))
    );
    store.close().await;
}
