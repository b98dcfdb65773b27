//! `discover` against the simulated tenant: every selection, the user list's validation, and
//! a large tenant under throttling and injected faults.

use std::path::Path;

use b2b_convert::store::Store;
use b2b_convert_sim::{FaultPlan, GeneratedTenant, Sim, SimSpec, ThrottleConfig, UserCase};

use crate::support::{cli, quiet_sim, text};

async fn discover(dir: &Path, sim: &Sim, args: &[&str]) -> std::process::Output {
    cli(dir, sim, &[&["discover"], args].concat()).await
}

async fn stored_users(dir: &Path) -> u64 {
    let store = Store::open(&dir.join("b2b-convert.db")).await.unwrap();
    let count = store.count_users().await.unwrap();
    store.close().await;
    count
}

#[tokio::test(flavor = "multi_thread")]
async fn all_users_and_the_tenant_facts_are_stored() {
    let sim = quiet_sim(1_200).await;
    let dir = tempfile::tempdir().unwrap();
    let output = discover(dir.path(), &sim, &[]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    for leftover in ["b2b-convert.db-wal", "b2b-convert.db-shm"] {
        assert!(
            !dir.path().join(leftover).exists(),
            "{leftover}: the database file is complete when the command exits"
        );
    }
    assert_eq!(stored_users(dir.path()).await, sim.user_count());
    let store = Store::open(&dir.path().join("b2b-convert.db"))
        .await
        .unwrap();
    let facts = store.tenant_facts().await.unwrap().unwrap();
    assert_eq!(facts.tenant_id.to_string(), sim.tenant_id());
    assert!(
        facts
            .domains
            .iter()
            .any(|d| d.name == "contoso.com" && d.is_verified)
    );
    assert!(
        facts
            .federation_domains
            .iter()
            .any(|d| d.domain == "woodgrovebank.com")
    );
    let synced = sim.find_user(UserCase::SyncedOnPremisesUpn).unwrap();
    let stored = store
        .user_by_upn(&synced.user_principal_name)
        .await
        .unwrap()
        .unwrap();
    assert!(stored.is_synced());
    assert!(stored.on_premises.user_principal_name.is_some());

    // Names and language, for the mail merge and the invitation's language: as served, unset
    // ones included.
    let (mut named, mut nameless, mut languages) = (0, 0, std::collections::BTreeSet::new());
    for user in store.active_users().await.unwrap() {
        let served = sim.user(&user.id.to_string()).unwrap();
        assert_eq!(user.profile.given_name, served.given_name);
        assert_eq!(user.profile.surname, served.surname);
        assert_eq!(user.profile.preferred_language, served.preferred_language);
        if served.given_name.is_some() {
            named += 1;
        } else {
            nameless += 1;
        }
        languages.insert(served.preferred_language);
    }
    assert!(named > 0 && nameless > 0, "{named} named, {nameless} not");
    for language in [None, Some("fr-FR"), Some("de-DE"), Some("ja-JP")] {
        assert!(
            languages.contains(&language.map(str::to_owned)),
            "{language:?}"
        );
    }

    // A second run refreshes the same snapshots instead of adding any.
    let output = discover(dir.path(), &sim, &["--all"]).await;
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stored_users(dir.path()).await, sim.user_count());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_is_read_directly_or_transitively() {
    let sim = quiet_sim(1_000).await;
    let wave_two = &GeneratedTenant::new(7, 1_000).groups()[1].0;
    let direct_dir = tempfile::tempdir().unwrap();
    let output = discover(direct_dir.path(), &sim, &["--group", wave_two]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let transitive_dir = tempfile::tempdir().unwrap();
    let output = discover(
        transitive_dir.path(),
        &sim,
        &["--group", wave_two, "--transitive"],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let (direct, transitive) = (
        stored_users(direct_dir.path()).await,
        stored_users(transitive_dir.path()).await,
    );
    assert_eq!(direct, 480, "users 20..500");
    assert_eq!(transitive, 580, "plus the nested late joiners 500..600");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_list_is_looked_up_and_the_missing_are_named() {
    let sim = quiet_sim(300).await;
    let dir = tempfile::tempdir().unwrap();
    let by_id = sim.find_user(UserCase::CloudMailExternal).unwrap();
    let by_upn = sim.find_user(UserCase::SyncedConvertible).unwrap();
    std::fs::write(
        dir.path().join("list.csv"),
        format!(
            "user\n{}\n{}\nnobody'here@contoso.com\n",
            by_id.id,
            by_upn.user_principal_name.to_uppercase()
        ),
    )
    .unwrap();
    let output = discover(dir.path(), &sim, &["--csv", "list.csv"]).await;
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(3),
        "{stdout}{}",
        text(&output.stderr)
    );
    assert!(
        stdout.contains("line 4: nobody'here@contoso.com"),
        "{stdout}"
    );
    assert_eq!(stored_users(dir.path()).await, 2);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_list_is_refused_by_line_before_anything_is_read() {
    let sim = quiet_sim(10).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("list.csv"),
        "user\na@contoso.com\nnot a user\n",
    )
    .unwrap();
    let output = discover(dir.path(), &sim, &["--csv", "list.csv"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("list.csv, line 3"),
        "{}",
        text(&output.stderr)
    );
    assert!(
        !dir.path().join("b2b-convert.db").exists(),
        "nothing was written"
    );
    assert_eq!(
        sim.counters().requests,
        0,
        "nothing was asked of the tenant"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_filter_is_sent_as_an_advanced_query_on_every_page() {
    let sim = quiet_sim(3_000).await;
    let dir = tempfile::tempdir().unwrap();
    // `endsWith` is advanced-only: without ConsistencyLevel and $count on every page the
    // service (and the simulator) refuses it, and more than 999 matches need several pages.
    let output = discover(
        dir.path(),
        &sim,
        &["--filter", "endsWith(userPrincipalName,'@contoso.com')"],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stored = stored_users(dir.path()).await;
    assert!(stored > 999, "several pages were read: {stored}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_thousand_users_under_throttling_and_503s_are_each_stored_once() {
    let sim = Sim::start(
        SimSpec::generated(100_000, 11)
            .with_throttling(ThrottleConfig::default())
            .with_faults(FaultPlan::parse("list-users:503=0.05,retry-after=1").unwrap()),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let output = discover(dir.path(), &sim, &[]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(stored_users(dir.path()).await, 100_000);
    let injected = sim
        .counters()
        .endpoint(b2b_convert_sim::Endpoint::ListUsers)
        .injected_status;
    assert!(injected > 0, "503s were injected and retried");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn throttled_pages_are_retried_after_a_decimal_retry_after_or_with_backoff_without_one() {
    for (faults, waits) in [
        ("list-users:429=0.3,retry-after=0.25", "honours 0.25 s"),
        ("list-users:429=0.3,retry-after=none", "backs off"),
    ] {
        let sim = Sim::start(
            SimSpec::generated(3_000, 5)
                .with_throttling(ThrottleConfig::disabled())
                .with_faults(FaultPlan::parse(faults).unwrap()),
        )
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let output = discover(dir.path(), &sim, &[]).await;
        assert_eq!(
            output.status.code(),
            Some(0),
            "{waits}: {}",
            text(&output.stderr)
        );
        assert_eq!(stored_users(dir.path()).await, 3_000, "{waits}");
        let throttled = sim
            .counters()
            .endpoint(b2b_convert_sim::Endpoint::ListUsers)
            .injected_status;
        assert!(throttled > 0, "{waits}: 429s were injected and retried");
        sim.shutdown().await;
    }
}

/// The `GET /users` pages a discover asked for: (partitioned by `startsWith`, one sequence).
fn user_list_requests(sim: &Sim) -> (usize, usize) {
    let pages: Vec<_> = sim
        .request_log()
        .into_iter()
        .filter(|r| r.endpoint == Some(b2b_convert_sim::Endpoint::ListUsers))
        .filter(|r| r.path.starts_with("/v1.0/users?"))
        .collect();
    let partitioned = pages
        .iter()
        .filter(|r| r.path.contains("startsWith"))
        .count();
    (partitioned, pages.len() - partitioned)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_whole_tenant_is_read_in_upn_partitions_paged_at_once_each_user_stored_once() {
    let sim = Sim::start(
        SimSpec::generated(20_000, 7)
            .with_throttling(ThrottleConfig::disabled())
            .with_faults(FaultPlan::parse("list-users:latency=100ms").unwrap()),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let output = discover(dir.path(), &sim, &[]).await;
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(stored_users(dir.path()).await, 20_000);
    assert!(
        stdout.contains("Users       20000 stored")
            && stdout.contains("in 44 partitions by the UPN's first character, 16 at once"),
        "{stdout}"
    );
    let (partitioned, sequential) = user_list_requests(&sim);
    assert!(partitioned >= 44, "every partition was read: {partitioned}");
    assert_eq!(sequential, 0, "no fallback was needed");

    // `partitioned = false`: one sequence, as before (`--full`: not only the changes).
    std::fs::write(
        dir.path().join("b2b-convert.toml"),
        "[discovery]\npartitioned = false\n",
    )
    .unwrap();
    let before = user_list_requests(&sim);
    let output = discover(dir.path(), &sim, &["--full"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("in one sequence of pages"),
        "{}",
        text(&output.stdout)
    );
    let after = user_list_requests(&sim);
    assert_eq!(after.0, before.0, "no partition");
    assert_eq!(after.1 - before.1, 21, "21 pages of 999");
    assert_eq!(stored_users(dir.path()).await, 20_000);
    sim.shutdown().await;
}

/// A tenant whose UPNs begin with capitals, digits and punctuation is read whole by the
/// partitions; one with an accented first letter (outside every partition) is found short by
/// the count and read again in one sequence. Nobody is stored or counted twice, and nobody
/// read is retired.
#[tokio::test(flavor = "multi_thread")]
async fn upns_beginning_with_odd_characters_are_all_read_and_counted_once() {
    for (accented, fallback) in [(false, false), (true, true)] {
        let mut tenant: serde_json::Value = serde_json::from_str(include_str!(
            "../../crates/b2b-convert-sim/tests/fixtures/tenant.json"
        ))
        .unwrap();
        tenant["applications"][0]["roles"] = serde_json::json!([
            "User.Read.All",
            "GroupMember.Read.All",
            "Domain.Read.All",
            "Organization.Read.All",
            "IdentityProvider.Read.All"
        ]);
        // Groups name members by UPN; this test renames them.
        tenant["groups"] = serde_json::json!([]);
        let mut firsts = vec!["Zed", "9nine", "_under", "~tilde", "'quote"];
        if accented {
            firsts[0] = "Édouard";
        }
        let users = tenant["users"].as_array_mut().unwrap();
        for (user, first) in users.iter_mut().zip(&firsts) {
            user["userPrincipalName"] = format!("{first}@fixturecorp.com").into();
        }
        let file = b2b_convert_sim::TenantFile::parse(&tenant.to_string()).unwrap();
        let sim = Sim::start(SimSpec::inline(file).with_throttling(ThrottleConfig::disabled()))
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let output = discover(dir.path(), &sim, &[]).await;
        let stdout = text(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        assert!(
            stdout.contains(&format!("Users       {} stored", sim.user_count()))
                && stdout.contains("0 retired"),
            "{stdout}"
        );
        assert_eq!(
            stdout.contains("reading the whole tenant again in one sequence"),
            fallback,
            "{stdout}"
        );
        let (_, sequential) = user_list_requests(&sim);
        assert_eq!(sequential > 0, fallback, "accented: {accented}");
        let store = Store::open(&dir.path().join("b2b-convert.db"))
            .await
            .unwrap();
        for first in &firsts {
            assert!(
                store
                    .user_by_upn(&format!("{first}@fixturecorp.com"))
                    .await
                    .unwrap()
                    .is_some(),
                "{first}"
            );
        }
        assert_eq!(store.count_users().await.unwrap(), sim.user_count());
        store.close().await;
        sim.shutdown().await;
    }
}

/// Requests for `users/delta`, and for pages of `GET /users`, so far.
fn delta_and_list_requests(sim: &Sim) -> (usize, usize) {
    let log = sim.request_log();
    let delta = log
        .iter()
        .filter(|r| r.path.starts_with("/v1.0/users/delta"))
        .count();
    let list = log
        .iter()
        .filter(|r| r.path.starts_with("/v1.0/users?"))
        .count();
    (delta, list)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_discover_reads_only_the_changes_and_an_expired_link_everything_again() {
    let sim = quiet_sim(5_000).await;
    let dir = tempfile::tempdir().unwrap();
    let output = discover(dir.path(), &sim, &[]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let (delta, _) = delta_and_list_requests(&sim);
    assert_eq!(delta, 1, "a delta link of the moment the full read began");

    // 1 % of the users change, two are deleted (one for good).
    assert_eq!(sim.rename_users(3, 100), 50);
    let gone = sim.user_at(10).unwrap();
    let purged = sim.user_at(11).unwrap();
    sim.delete_user(&gone.id, false).unwrap();
    sim.delete_user(&purged.id, true).unwrap();
    let before = delta_and_list_requests(&sim);
    let output = discover(dir.path(), &sim, &[]).await;
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        stdout.contains("the changes since the last discover (users delta): 50 added or changed, 2 deleted, 1 page(s)")
            && stdout.contains("Users       50 stored")
            && stdout.contains("4998 user snapshot(s), 2 retired"),
        "{stdout}"
    );
    let after = delta_and_list_requests(&sim);
    assert_eq!(after.1, before.1, "no user list read: only the changes");
    assert_eq!(after.0 - before.0, 1, "one delta page");
    let store = Store::open(&dir.path().join("b2b-convert.db"))
        .await
        .unwrap();
    let renamed = sim.user_at(103).unwrap();
    let stored = store
        .user_by_upn(&renamed.user_principal_name)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.display_name, renamed.display_name,
        "the change is stored"
    );
    assert!(stored.display_name.unwrap().ends_with("(renamed)"));
    for deleted in [&gone, &purged] {
        assert!(
            store
                .active_users()
                .await
                .unwrap()
                .iter()
                .all(|u| u.id.to_string() != deleted.id),
            "a deleted user leaves the snapshot"
        );
    }
    store.close().await;

    // Nothing changed: an empty round.
    let output = discover(dir.path(), &sim, &[]).await;
    assert!(
        text(&output.stdout).contains("0 added or changed, 0 deleted"),
        "{}",
        text(&output.stdout)
    );

    // `--full` reads everything, and keeps a new link.
    let before = delta_and_list_requests(&sim);
    let output = discover(dir.path(), &sim, &["--full"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("partitions"));
    assert!(delta_and_list_requests(&sim).1 > before.1);

    // Graph keeps a delta link seven days: after that, everything is read, with a clear line.
    sim.advance_clock(std::time::Duration::from_secs(8 * 24 * 3600));
    let output = discover(dir.path(), &sim, &[]).await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("delta link is no longer honoured"),
        "{stderr}"
    );
    assert!(
        text(&output.stdout).contains("Users       4998 stored"),
        "{}",
        text(&output.stdout)
    );
    sim.shutdown().await;
}
