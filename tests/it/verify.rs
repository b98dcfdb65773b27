//! `verify` against the simulated tenant: baselines taken through the library (as the executor
//! takes them before each invitation), members moved to `invited` through the store, and
//! changes made behind the tool's back with the simulator's admin handle.

use std::path::Path;

use b2b_convert::domain::{UserId, UserState, WaveId};
use b2b_convert::graph::GraphClient;
use b2b_convert::store::{Store, Transition};
use b2b_convert_sim::{GeneratedTenant, Sim};
use serde_json::Value;
use time::OffsetDateTime;

use crate::support::{b2b_convert, cli, client_with_secret, quiet_sim, run, sim_env, text};

const USERS: u64 = 60;

/// A discovered tenant of [`USERS`] users in a fresh directory.
pub(crate) async fn discovered() -> (Sim, tempfile::TempDir) {
    let sim = quiet_sim(USERS).await;
    let dir = tempfile::tempdir().unwrap();
    let output = cli(dir.path(), &sim, &["discover"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    (sim, dir)
}

/// Generated group `k`'s id (0 Pilot, 1 Wave 2, 2 late joiners, 3 All partners).
pub(crate) fn group(k: usize) -> String {
    GeneratedTenant::new(7, USERS).groups()[k].0.clone()
}

/// Plans wave `name` from a group's direct members; returns the wave and its ready members.
pub(crate) async fn plan_group(
    dir: &Path,
    sim: &Sim,
    name: &str,
    group: &str,
) -> (WaveId, Vec<UserId>) {
    let output = cli(dir, sim, &["plan", "--wave", name, "--group", group]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let store = store(dir).await;
    let wave = store.wave_by_name(name).await.unwrap().unwrap();
    let ready = store
        .members(wave.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.state == UserState::Ready)
        .map(|m| m.plan.user_id)
        .collect();
    store.close().await;
    (wave.id, ready)
}

pub(crate) async fn store(dir: &Path) -> Store {
    Store::open(&dir.join("b2b-convert.db")).await.unwrap()
}

/// Marks `user` invited the way the executor will: ready -> inviting -> invited.
async fn mark_invited(store: &Store, wave: WaveId, user: UserId) {
    let now = OffsetDateTime::now_utc();
    for (from, to) in [
        (UserState::Ready, UserState::Inviting),
        (UserState::Inviting, UserState::Invited),
    ] {
        store
            .transition(wave, user, &Transition::new(from, to, now))
            .await
            .unwrap();
    }
}

/// Takes `user`'s baseline and marks it invited: the executor's two lines, then its outcome.
async fn convert(client: &GraphClient, store: &Store, wave: WaveId, user: UserId) {
    let now = OffsetDateTime::now_utc();
    store
        .save_baseline(wave, &client.conversion_baseline(user, now).await.unwrap())
        .await
        .unwrap();
    mark_invited(store, wave, user).await;
}

async fn verify(dir: &Path, sim: &Sim, wave: &str, json: bool) -> (Option<i32>, String, String) {
    let mut args = vec!["verify", "--wave", wave];
    if json {
        args.push("--json");
    }
    let output = cli(dir, sim, &args).await;
    (
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_baseline_is_what_graph_says_before_the_invitation() {
    let sim = quiet_sim(USERS).await;
    let client = client_with_secret(&sim, sim.client_id(), sim.client_secret());
    let tenant = GeneratedTenant::new(7, USERS);
    let index = (0..20)
        .find(|i| !tenant.app_role_assignments(*i).is_empty())
        .expect("a pilot user with app role assignments");
    let user: UserId = tenant.id_of(index).parse().unwrap();
    let now = OffsetDateTime::now_utc();
    let state = client.conversion_state(user, now).await.unwrap();
    let baseline = &state.baseline;
    assert_eq!(baseline.user_id, user);
    assert_eq!(
        baseline.user_principal_name,
        tenant.user(index).user_principal_name
    );
    assert_eq!(
        baseline.group_ids,
        vec![group(0).parse::<uuid::Uuid>().unwrap()]
    );
    assert_eq!(
        state.groups[0].display_name.as_deref(),
        Some("Partners – Pilot")
    );
    assert_eq!(
        baseline.app_role_assignments as usize,
        tenant.app_role_assignments(index).len()
    );
    assert_eq!(baseline.taken_at, now);
    assert_eq!(
        client.conversion_baseline(user, now).await.unwrap(),
        *baseline
    );

    let nobody: UserId = "00000000-0000-4000-8000-000000000000".parse().unwrap();
    let gone = client.conversion_baseline(nobody, now).await.unwrap_err();
    assert_eq!(gone.status(), Some(404), "{gone}");
    let reader = &sim.apps()[1];
    let reader = client_with_secret(&sim, &reader.client_id, &reader.secrets[0]);
    let denied = reader.conversion_baseline(user, now).await.unwrap_err();
    assert_eq!(denied.status(), Some(403), "{denied}");
    assert_eq!(
        client
            .group_name(group(1).parse().unwrap())
            .await
            .unwrap()
            .as_deref(),
        Some("Partners – Wave 2")
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_detects_a_membership_removed_behind_its_back() {
    let (sim, dir) = discovered().await;
    let client = client_with_secret(&sim, sim.client_id(), sim.client_secret());
    let pilot = group(0);
    let (wave, ready) = plan_group(dir.path(), &sim, "pilot", &pilot).await;
    assert!(ready.len() >= 3, "{ready:?}");
    let (converted, _) = ready.split_at(3);

    // Nothing converted yet: nothing to verify, and that is fine.
    let (code, stdout, stderr) = verify(dir.path(), &sim, "pilot", false).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("nothing to verify"), "{stdout}");

    let store = store(dir.path()).await;
    for user in converted {
        convert(&client, &store, wave, *user).await;
    }
    let (code, stdout, stderr) = verify(dir.path(), &sim, "pilot", false).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("3 converted member(s) checked: 3 match, 0 differ"),
        "{stdout}"
    );

    // Another admin takes the first converted user out of the pilot group.
    let victim = converted[0];
    sim.remove_group_member(&pilot, &victim.to_string())
        .unwrap();
    let (code, stdout, stderr) = verify(dir.path(), &sim, "pilot", true).await;
    assert_eq!(code, Some(3), "{stdout}{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (
            &report["checked"],
            &report["matching"],
            &report["differing"],
            &report["not_verifiable"]
        ),
        (&3.into(), &2.into(), &1.into(), &0.into()),
        "{report:#}"
    );
    let differing: Vec<&Value> = report["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["verdict"] == "differs")
        .collect();
    assert_eq!(differing.len(), 1);
    assert_eq!(differing[0]["user_id"], victim.to_string().as_str());
    assert_eq!(differing[0]["state"], "invited");
    assert_eq!(
        differing[0]["differences"],
        serde_json::json!([{
            "check": "groups-removed",
            "groups": [{"id": pilot, "name": "Partners – Pilot"}],
        }])
    );

    let (code, stdout, _) = verify(dir.path(), &sim, "pilot", false).await;
    assert_eq!(code, Some(3));
    let upn = GeneratedTenant::new(7, USERS)
        .user(
            GeneratedTenant::new(7, USERS)
                .index_of_id(&victim.to_string())
                .unwrap(),
        )
        .user_principal_name;
    let line = stdout
        .lines()
        .find(|l| l.contains("groups-removed"))
        .unwrap_or_else(|| panic!("a row for the removal: {stdout}"));
    assert!(
        line.contains(&upn) && line.contains("Partners – Pilot") && line.contains(&pilot),
        "{line}"
    );
    assert!(stdout.contains("2 match, 1 differ"), "{stdout}");

    let events = store.wave_events(wave).await.unwrap();
    let differences: Vec<_> = events
        .iter()
        .filter(|e| e.event.kind == "verify.difference")
        .collect();
    assert_eq!(differences.len(), 2, "one per difference per run");
    assert!(differences.iter().all(|e| e.event.user_id == Some(victim)));
    assert_eq!(differences[0].event.detail["check"], "groups-removed");

    // A wave nobody touched still verifies clean.
    let (second, ready) = plan_group(dir.path(), &sim, "wave2", &group(1)).await;
    convert(&client, &store, second, ready[0]).await;
    let (code, stdout, stderr) = verify(dir.path(), &sim, "wave2", false).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("1 match, 0 differ"), "{stdout}");
    assert!(
        stdout.contains("not converted were not checked"),
        "the other members are counted apart: {stdout}"
    );
    store.close().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn assignments_removed_and_missing_baselines_are_reported() {
    let (sim, dir) = discovered().await;
    let client = client_with_secret(&sim, sim.client_id(), sim.client_secret());
    let (wave, ready) = plan_group(dir.path(), &sim, "pilot", &group(0)).await;
    let with_roles = *ready
        .iter()
        .find(|u| !sim.app_role_assignments(&u.to_string()).unwrap().is_empty())
        .expect("a ready member with app role assignments");
    let without_baseline = *ready.iter().find(|u| **u != with_roles).unwrap();
    let store = store(dir.path()).await;
    convert(&client, &store, wave, with_roles).await;
    mark_invited(&store, wave, without_baseline).await;
    let before = sim.app_role_assignments(&with_roles.to_string()).unwrap();
    sim.remove_app_role_assignment(&with_roles.to_string(), &before[0].id)
        .unwrap();

    let (code, stdout, stderr) = verify(dir.path(), &sim, "pilot", true).await;
    assert_eq!(code, Some(3), "{stdout}{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let user = |id: UserId| {
        report["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["user_id"] == id.to_string().as_str())
            .unwrap()
            .clone()
    };
    assert_eq!(
        user(with_roles)["differences"],
        serde_json::json!([{
            "check": "app-role-assignments-changed",
            "before": before.len(),
            "after": before.len() - 1,
        }])
    );
    let unverifiable = user(without_baseline);
    assert_eq!(unverifiable["verdict"], "not-verifiable");
    assert_eq!(unverifiable["differences"][0]["check"], "no-baseline");
    assert!(
        unverifiable["user_principal_name"]
            .as_str()
            .is_some_and(|u| u.ends_with("@contoso.com")),
        "named from the snapshot: {unverifiable}"
    );

    // Without Directory.Read.All nothing can be compared: a clear failure, not 'all differ'.
    let reader = &sim.apps()[1];
    let mut cmd = b2b_convert(dir.path());
    cmd.args(["verify", "--wave", "pilot"])
        .envs(sim_env(&sim))
        .env("AZURE_CLIENT_ID", &reader.client_id)
        .env("AZURE_CLIENT_SECRET", &reader.secrets[0]);
    let output = run(cmd).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("Directory.Read.All") && stderr.contains("403"),
        "{stderr}"
    );
    assert!(!stderr.contains(&reader.secrets[0]), "no secret in errors");

    let (code, _, stderr) = verify(dir.path(), &sim, "nonesuch", false).await;
    assert_eq!(code, Some(2));
    assert!(stderr.contains("the waves are: pilot"), "{stderr}");
    store.close().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_real_run_verify_finds_the_membership_removed_behind_its_back() {
    let (sim, dir) = discovered().await;
    let pilot = group(0);
    let (_, ready) = plan_group(dir.path(), &sim, "pilot", &pilot).await;
    let output = cli(
        dir.path(),
        &sim,
        &["run", "--wave", "pilot", "--yes", "--reconcile-delay", "0"],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stdout));

    let clean = cli(dir.path(), &sim, &["verify", "--wave", "pilot"]).await;
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean.stdout));

    let victim = ready[0];
    sim.remove_group_member(&pilot, &victim.to_string())
        .unwrap();
    let output = cli(dir.path(), &sim, &["verify", "--wave", "pilot", "--json"]).await;
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stdout));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["differing"], 1, "{report}");
    let differing: Vec<&Value> = report["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["verdict"] == "differs")
        .collect();
    assert_eq!(differing.len(), 1);
    assert_eq!(differing[0]["user_id"], victim.to_string());
    assert_eq!(differing[0]["differences"][0]["check"], "groups-removed");
    assert_eq!(differing[0]["differences"][0]["groups"][0]["id"], pilot);
}

/// `verify`'s corroboration: one filtered, paged read of the directory audit log for the whole
/// wave, and the users whose "Invite internal user to B2B collaboration" event is missing or
/// failed listed, in JSON and in the table, and recorded in the event log.
#[tokio::test(flavor = "multi_thread")]
async fn verify_lists_conversions_the_audit_log_does_not_confirm() {
    let (sim, dir) = discovered().await;
    let (wave, ready) = plan_group(dir.path(), &sim, "pilot", &group(0)).await;
    assert!(ready.len() >= 4, "{ready:?}");
    let (missing, failed) = (ready[0], ready[1]);
    sim.set_faults(
        b2b_convert_sim::FaultPlan::parse(&format!(
            "invitations:audit-missing={missing},audit-failed={failed}"
        ))
        .unwrap(),
    );
    let output = cli(
        dir.path(),
        &sim,
        &["run", "--wave", "pilot", "--yes", "--reconcile-delay", "0"],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stdout));
    let requests_before = audit_requests(&sim);

    // Right after the run: a failed event is flagged at once, a missing one not yet.
    let (code, stdout, stderr) = verify(dir.path(), &sim, "pilot", true).await;
    assert_eq!(code, Some(3), "{stdout}{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let audit = &report["audit_log"];
    assert_eq!(audit["status"], "read", "{audit:#}");
    assert_eq!(
        audit["requests"], 1,
        "one request for the whole wave: {audit:#}"
    );
    assert_eq!(audit_requests(&sim) - requests_before, 1);
    assert_eq!(audit["logged"], ready.len() - 2, "{audit:#}");
    assert_eq!(
        (&audit["failed"], &audit["missing"], &audit["too_recent"]),
        (&1.into(), &0.into(), &1.into())
    );
    assert_eq!(finding(&report, failed)["finding"], "failed");
    assert_eq!(finding(&report, failed)["result"], "failure");
    assert_eq!(finding(&report, missing)["finding"], "too-recent");
    assert_eq!(finding(&report, ready[2])["finding"], "logged");

    // Once the latency has passed, the missing event is listed too.
    let output = cli(
        dir.path(),
        &sim,
        &["verify", "--wave", "pilot", "--audit-latency-minutes", "0"],
    )
    .await;
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(3), "{stdout}");
    let row = |check: &str| {
        stdout
            .lines()
            .find(|l| l.contains(check))
            .unwrap_or_else(|| panic!("a {check} row: {stdout}"))
            .to_owned()
    };
    assert!(row("audit-log-missing").contains(&upn(missing)), "{stdout}");
    assert!(row("audit-log-failed").contains(&upn(failed)), "{stdout}");
    assert!(stdout.contains("1 missing, 1 logged as failed"), "{stdout}");
    assert_eq!(
        stdout.matches("audit-log-").count(),
        2,
        "only the two: {stdout}"
    );
    let store = store(dir.path()).await;
    let recorded: Vec<_> = store
        .wave_events(wave)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event.kind == "verify.audit-log")
        .collect();
    assert_eq!(
        recorded.len(),
        3,
        "the failed one twice, the missing one once"
    );
    assert!(
        recorded
            .iter()
            .any(|e| e.event.user_id == Some(missing) && e.event.detail["finding"] == "missing")
    );
    store.close().await;

    // Off: not read at all, and nothing else differs.
    let before = audit_requests(&sim);
    let output = cli(
        dir.path(),
        &sim,
        &["verify", "--wave", "pilot", "--audit-log", "off", "--json"],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stdout));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["audit_log"]["status"], "skipped");
    assert_eq!(audit_requests(&sim), before);
    sim.shutdown().await;
}

/// A user's `audit_log` finding in a `verify --json` report.
fn finding(report: &Value, user: UserId) -> Value {
    report["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user_id"] == user.to_string().as_str())
        .unwrap()["audit_log"]
        .clone()
}

/// A generated user's UPN.
fn upn(user: UserId) -> String {
    let tenant = GeneratedTenant::new(7, USERS);
    tenant
        .user(tenant.index_of_id(&user.to_string()).unwrap())
        .user_principal_name
}

/// Requests the simulator's directory audit log has answered.
fn audit_requests(sim: &Sim) -> u64 {
    sim.counters()
        .endpoint(b2b_convert_sim::Endpoint::DirectoryAudits)
        .requests
}

/// Without `AuditLog.Read.All` the corroboration is skipped with a note (`auto`), or is an error
/// naming the permission (`on`); the rest of `verify` is unaffected.
#[tokio::test(flavor = "multi_thread")]
async fn without_the_audit_permission_the_corroboration_is_skipped_or_refused() {
    let (sim, dir) = discovered().await;
    let client = client_with_secret(&sim, sim.client_id(), sim.client_secret());
    let (wave, ready) = plan_group(dir.path(), &sim, "pilot", &group(0)).await;
    let store = store(dir.path()).await;
    convert(&client, &store, wave, ready[0]).await;
    store.close().await;
    let app = &sim.apps()[2];
    let as_app = |args: &[&str]| {
        let mut cmd = b2b_convert(dir.path());
        cmd.args(args)
            .envs(sim_env(&sim))
            .env("AZURE_CLIENT_ID", &app.client_id)
            .env("AZURE_CLIENT_SECRET", &app.secrets[0]);
        cmd
    };
    let before = audit_requests(&sim);
    let output = run(as_app(&["verify", "--wave", "pilot", "--json"])).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["audit_log"]["status"], "skipped", "{report:#}");
    assert!(
        report["audit_log"]["note"]
            .as_str()
            .is_some_and(|n| n.contains("AuditLog.Read.All")),
        "{report:#}"
    );
    assert_eq!(audit_requests(&sim), before, "not even tried");
    let output = run(as_app(&["verify", "--wave", "pilot"])).await;
    assert!(
        text(&output.stdout)
            .contains("Audit log not read: the token does not claim AuditLog.Read.All"),
        "{}",
        text(&output.stdout)
    );

    let output = run(as_app(&["verify", "--wave", "pilot", "--audit-log", "on"])).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("AuditLog.Read.All") && stderr.contains("403"),
        "{stderr}"
    );
    assert!(!stderr.contains(&app.secrets[0]), "no secret in errors");
    sim.shutdown().await;
}
