//! Home-realm discovery against the simulated login host and a tiny recording server: the
//! generated realms, the cache (hits, stale answers, failures kept for a shorter time),
//! faults as failure records, no token on the anonymous endpoint, and invalid domains.

use std::time::{Duration, Instant};

use b2b_convert::domain::{RealmAnswer, RealmKind, RealmRecord};
use b2b_convert::graph::Connection;
use b2b_convert::graph::realm::{RealmClient, RealmError};
use b2b_convert::graph::retry::RetryPolicy;
use b2b_convert::plan::realms::{RealmOptions, RealmSummary, resolve_realms};
use b2b_convert::store::Store;
use b2b_convert_sim::{Endpoint, FaultPlan, Sim};
use time::OffsetDateTime;
use url::Url;

use crate::support::{TinyReply, TinyServer, fast_retries, quiet_sim};

const OWN: &[&str] = &["contoso.com", "contoso.onmicrosoft.com"];

fn own() -> Vec<String> {
    OWN.iter().map(|d| (*d).to_owned()).collect()
}

fn client_for(login_url: &Url, retry: RetryPolicy) -> RealmClient {
    Connection {
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
        retry,
        ..Connection::new(login_url.clone(), login_url.clone())
    }
    .realm_client()
    .unwrap()
}

fn sim_client(sim: &Sim) -> RealmClient {
    client_for(&Url::parse(sim.login_url()).unwrap(), fast_retries())
}

async fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("b2b-convert.db"))
        .await
        .unwrap();
    (dir, store)
}

fn realm_requests(sim: &Sim) -> u64 {
    sim.counters().endpoint(Endpoint::UserRealm).requests
}

fn domains(list: &[&str]) -> Vec<String> {
    list.iter().map(|d| (*d).to_owned()).collect()
}

fn kind(summary: &RealmSummary, domain: &str) -> Result<RealmKind, String> {
    summary.records[domain]
        .outcome
        .as_ref()
        .map(|a| a.kind)
        .map_err(Clone::clone)
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_realms_are_resolved_once_and_then_cached() {
    let sim = quiet_sim(10).await;
    let client = sim_client(&sim);
    let (_dir, store) = temp_store().await;
    let now = OffsetDateTime::now_utc();
    let asked = domains(&[
        "fabrikam.com",
        "Fabrikam.COM",
        "tailspintoys.com",
        "woodgrovebank.com",
        "wingtipmail.net",
        "unlisted-example.org",
        "contoso.com",
        "partners.contoso.com",
    ]);
    let summary = resolve_realms(
        &client,
        &store,
        asked.clone(),
        &own(),
        now,
        &RealmOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(kind(&summary, "fabrikam.com"), Ok(RealmKind::Managed));
    assert_eq!(kind(&summary, "tailspintoys.com"), Ok(RealmKind::Federated));
    assert_eq!(
        kind(&summary, "woodgrovebank.com"),
        Ok(RealmKind::Federated)
    );
    assert_eq!(kind(&summary, "wingtipmail.net"), Ok(RealmKind::Unknown));
    assert_eq!(
        kind(&summary, "unlisted-example.org"),
        Ok(RealmKind::Unknown)
    );
    assert_eq!(
        (summary.asked, summary.cached, summary.own, summary.invalid),
        (5, 0, 2, 0)
    );
    assert_eq!(
        (
            summary.managed,
            summary.federated,
            summary.unknown,
            summary.failed
        ),
        (1, 2, 2, 0)
    );
    assert!(!summary.records.contains_key("contoso.com"));
    assert_eq!(
        realm_requests(&sim),
        5,
        "one request per distinct foreign domain"
    );
    let stored = store
        .realm("tailspintoys.com", now)
        .await
        .unwrap()
        .expect("saved as it arrived");
    assert_eq!(
        stored.outcome.unwrap().cloud_instance.as_deref(),
        Some("microsoftonline.com")
    );

    // A later plan within the freshness window asks nothing.
    let again = resolve_realms(
        &client,
        &store,
        asked,
        &own(),
        now + Duration::from_hours(24 * 29),
        &RealmOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!((again.asked, again.cached), (0, 5));
    assert_eq!(again.records, summary.records);
    assert_eq!(realm_requests(&sim), 5, "a cache hit sends no request");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_answer_is_asked_again_and_replaced() {
    let sim = quiet_sim(10).await;
    let (_dir, store) = temp_store().await;
    let now = OffsetDateTime::now_utc();
    let options = RealmOptions::default();
    // Cached long ago, and wrong by now.
    store
        .save_realm(&RealmRecord {
            domain: "fabrikam.com".into(),
            outcome: Ok(RealmAnswer {
                kind: RealmKind::Unknown,
                cloud_instance: None,
                federation_brand: None,
            }),
            checked_at: now - options.max_age - Duration::from_secs(60),
        })
        .await
        .unwrap();
    let summary = resolve_realms(
        &sim_client(&sim),
        &store,
        domains(&["fabrikam.com"]),
        &[],
        now,
        &options,
    )
    .await
    .unwrap();
    assert_eq!((summary.asked, summary.cached), (1, 0));
    assert_eq!(kind(&summary, "fabrikam.com"), Ok(RealmKind::Managed));
    let stored = store.realm("fabrikam.com", now).await.unwrap().unwrap();
    assert_eq!(stored.outcome.unwrap().kind, RealmKind::Managed);
    assert_eq!(
        stored.checked_at,
        now.replace_microsecond(now.microsecond()).unwrap(),
        "dated this run, to the microsecond"
    );
    assert_eq!(realm_requests(&sim), 1);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unavailable_login_host_gives_failure_records_kept_for_a_day() {
    let sim = quiet_sim(10).await;
    sim.set_faults(FaultPlan::parse("user-realm:503=1,retry-after=none").unwrap());
    let client = sim_client(&sim);
    let (_dir, store) = temp_store().await;
    let now = OffsetDateTime::now_utc();
    let options = RealmOptions::default();
    let asked = domains(&["fabrikam.com", "wingtipmail.net"]);
    let summary = resolve_realms(&client, &store, asked.clone(), &[], now, &options)
        .await
        .expect("failed lookups are records, not an error");
    assert_eq!((summary.asked, summary.failed), (2, 2));
    let reason = kind(&summary, "fabrikam.com").unwrap_err();
    assert_eq!(
        reason,
        "the login host answered 503 serviceNotAvailable after 6 attempt(s)"
    );
    assert_eq!(
        realm_requests(&sim),
        2 * u64::from(fast_retries().max_attempts),
        "reads are retried up to the policy's attempts"
    );
    let stored = store.realm("fabrikam.com", now).await.unwrap().unwrap();
    assert_eq!(stored.outcome, Err(reason));

    // The failure is remembered for a while (no hammering)...
    sim.set_faults(FaultPlan::default());
    let soon = resolve_realms(
        &client,
        &store,
        asked.clone(),
        &[],
        now + Duration::from_hours(1),
        &options,
    )
    .await
    .unwrap();
    assert_eq!((soon.cached, soon.failed), (2, 2));
    // ...and asked again the next day.
    let requests = realm_requests(&sim);
    let next_day = resolve_realms(
        &client,
        &store,
        asked,
        &[],
        now + options.failure_max_age + Duration::from_secs(1),
        &options,
    )
    .await
    .unwrap();
    assert_eq!((next_day.asked, next_day.failed), (2, 0));
    assert_eq!(kind(&next_day, "wingtipmail.net"), Ok(RealmKind::Unknown));
    assert_eq!(realm_requests(&sim), requests + 2);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_failing_domain_does_not_stop_the_others() {
    let server = TinyServer::start(|head| {
        if head.contains("@broken.example") {
            TinyReply::status(
                503,
                r#"{"error":"temporarily_unavailable","error_description":"AADSTS..."}"#,
            )
        } else if head.contains("@missing.example") {
            TinyReply::status(404, "")
        } else {
            TinyReply::json(r#"{"ver":"1.0","account_type":"Managed"}"#)
        }
    })
    .await;
    let (_dir, store) = temp_store().await;
    let retry = RetryPolicy {
        max_attempts: 2,
        ..fast_retries()
    };
    let summary = resolve_realms(
        &client_for(&server.url(), retry),
        &store,
        domains(&[
            "a.example",
            "broken.example",
            "b.example",
            "missing.example",
            "c.example",
        ]),
        &[],
        OffsetDateTime::now_utc(),
        &RealmOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!((summary.managed, summary.failed), (3, 2));
    assert_eq!(
        kind(&summary, "broken.example"),
        Err("the login host answered 503 temporarily_unavailable after 2 attempt(s)".into())
    );
    assert_eq!(
        kind(&summary, "missing.example"),
        Err(RealmError::NotFound.to_string()),
        "a 404 is final: no retry"
    );
    assert_eq!(server.heads().len(), 3 + 2 + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_realm_request_is_anonymous_and_names_only_a_probe_address() {
    let server = TinyServer::fixed(r#"{"account_type":"Federated"}"#.into()).await;
    let login = server.url().join("login").unwrap();
    let client = client_for(&login, fast_retries());
    let answer = client.lookup("Tailspintoys.com").await.unwrap();
    assert_eq!(answer.kind, RealmKind::Federated);
    let heads = server.heads();
    assert_eq!(heads.len(), 1);
    let head = heads[0].to_ascii_lowercase();
    assert!(
        head.starts_with(
            "get /login/common/userrealm/realm-probe@tailspintoys.com?api-version=1.0 http/1.1\r\n"
        ),
        "{head}"
    );
    assert!(!head.contains("\r\nauthorization:"), "{head}");
    assert!(!head.contains("bearer"), "{head}");
    assert!(head.contains("\r\nuser-agent: b2b-convert/"), "{head}");
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_domains_fail_without_a_request_and_are_not_cached() {
    let sim = quiet_sim(10).await;
    let (_dir, store) = temp_store().await;
    let now = OffsetDateTime::now_utc();
    let summary = resolve_realms(
        &sim_client(&sim),
        &store,
        domains(&["not a domain", "evil.com/../../x", "localhost"]),
        &[],
        now,
        &RealmOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!((summary.invalid, summary.failed, summary.asked), (3, 3, 0));
    assert!(
        kind(&summary, "not a domain")
            .unwrap_err()
            .contains("is not a valid domain name"),
    );
    assert_eq!(realm_requests(&sim), 0, "nothing was sent");
    assert!(store.realm("localhost", now).await.unwrap().is_none());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lookups_run_at_the_chosen_low_concurrency() {
    let server = TinyServer::start(|_| TinyReply {
        delay: Duration::from_millis(40),
        ..TinyReply::json(r#"{"account_type":"Unknown"}"#)
    })
    .await;
    let (_dir, store) = temp_store().await;
    let names: Vec<String> = (0..12).map(|i| format!("d{i}.example")).collect();
    let summary = resolve_realms(
        &client_for(&server.url(), fast_retries()),
        &store,
        names,
        &[],
        OffsetDateTime::now_utc(),
        &RealmOptions {
            concurrency: 3,
            ..RealmOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!((summary.asked, summary.unknown), (12, 12));
    assert_eq!(server.max_in_flight(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_after_is_honoured_and_a_too_long_wait_is_not_waited_for() {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = std::sync::Arc::clone(&calls);
    let server = TinyServer::start(move |head| {
        if head.contains("@patient.example")
            && seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0
        {
            TinyReply {
                headers: vec![("retry-after", "1".into())],
                ..TinyReply::status(429, "")
            }
        } else if head.contains("@hurried.example") {
            TinyReply {
                headers: vec![("retry-after", "3600".into())],
                ..TinyReply::status(503, "")
            }
        } else {
            TinyReply::json(r#"{"account_type":"Managed"}"#)
        }
    })
    .await;
    let client = client_for(
        &server.url(),
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_secs(2),
        },
    );
    let started = Instant::now();
    assert_eq!(
        client.lookup("patient.example").await.unwrap().kind,
        RealmKind::Managed
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited as asked"
    );
    let err = client.lookup("hurried.example").await.unwrap_err();
    assert_eq!(
        err,
        RealmError::WaitTooLong {
            status: 503,
            wait: Duration::from_secs(3600)
        }
    );
    assert_eq!(
        server.heads().len(),
        3,
        "patient twice, hurried once: the hour was not waited for"
    );
}
