//! The Graph client against the simulated tenant: authentication in every form, paging,
//! retries, token refresh, the foreign-host guard and unknown write outcomes.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use b2b_convert::clock::{ManualClock, SharedClock};
use b2b_convert::graph::auth::{
    AssertionAlgorithm, AssertionSigner, Auth, Credential, Error as AuthError,
};
use b2b_convert::graph::{Connection, Error, UserSelection};
use b2b_convert_sim::{AuthConfig, Sim, SimSpec, ThrottleConfig, UserCase};
use futures_util::TryStreamExt;
use reqwest::Method;
use secrecy::SecretString;
use time::OffsetDateTime;

use crate::support::{
    TinyServer, client_with, client_with_secret, faulty_sim, quiet_sim, secret, sim_auth,
    sim_connection,
};

async fn all_user_ids(client: &b2b_convert::graph::GraphClient) -> Vec<String> {
    let pages: Vec<_> = client
        .users(&UserSelection::All, OffsetDateTime::now_utc())
        .try_collect()
        .await
        .expect("every page is read");
    pages
        .into_iter()
        .flat_map(|p| p.items)
        .map(|u| u.id.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn paging_returns_every_user_exactly_once() {
    let sim = quiet_sim(2_500).await;
    let client = client_with_secret(&sim, sim.client_id(), sim.client_secret());
    let ids = all_user_ids(&client).await;
    let unique: HashSet<_> = ids.iter().collect();
    assert_eq!(ids.len() as u64, sim.user_count());
    assert_eq!(unique.len(), ids.len(), "no user twice");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_survive_injected_503s_and_504s() {
    let sim = faulty_sim(12_000, "list-users:503=0.2,504=0.05,retry-after=none").await;
    let client = client_with_secret(&sim, sim.client_id(), sim.client_secret());
    let ids = all_user_ids(&client).await;
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len() as u64,
        sim.user_count()
    );
    let injected = sim
        .counters()
        .endpoint(b2b_convert_sim::Endpoint::ListUsers)
        .injected_status;
    assert!(injected > 0, "the faults were really injected");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn certificate_assertions_are_accepted_in_both_forms() {
    let sim = quiet_sim(10).await;
    let certificate = sim.certificate().unwrap();
    let pem = format!(
        "{}\n{}",
        certificate.private_key_pem, certificate.certificate_pem
    );
    for algorithm in [AssertionAlgorithm::Ps256, AssertionAlgorithm::Rs256] {
        let signer = AssertionSigner::from_file_bytes(pem.as_bytes(), None, algorithm).unwrap();
        let client = client_with(
            &sim,
            Credential::Certificate {
                client_id: sim.client_id().to_owned(),
                signer,
            },
        );
        let (tenant, _) = client
            .organization()
            .await
            .expect("the assertion is accepted");
        assert_eq!(tenant.to_string(), sim.tenant_id());
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_the_app_does_not_know_is_refused() {
    let sim = quiet_sim(10).await;
    let other = include_bytes!("../fixtures/certificate/test-cert.pem");
    let client = client_with(
        &sim,
        Credential::Certificate {
            client_id: sim.client_id().to_owned(),
            signer: AssertionSigner::from_file_bytes(other, None, AssertionAlgorithm::Ps256)
                .unwrap(),
        },
    );
    let err = client.organization().await.unwrap_err();
    assert!(
        matches!(&err, Error::Auth(AuthError::Refused { error, .. }) if error == "invalid_client"),
        "{err}"
    );
    assert!(err.to_string().contains("AADSTS"), "{err}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_secret_is_refused_without_echoing_it() {
    let sim = quiet_sim(10).await;
    let client = client_with_secret(&sim, sim.client_id(), "not-the-secret-xyz");
    let err = client.organization().await.unwrap_err();
    assert!(
        matches!(err, Error::Auth(AuthError::Refused { .. })),
        "{err}"
    );
    assert!(!err.to_string().contains("not-the-secret-xyz"), "{err}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_token_is_refreshed_once_and_the_call_succeeds() {
    let sim = quiet_sim(10).await;
    let client = client_with_secret(&sim, sim.client_id(), sim.client_secret());
    client.organization().await.unwrap();
    let issued = sim.counters().tokens_issued;
    sim.revoke_tokens();
    client
        .organization()
        .await
        .expect("refreshed after the 401");
    assert_eq!(sim.counters().tokens_issued, issued + 1);

    sim.shutdown().await;
}

/// A client whose token cache reads `clock`, against a simulator issuing tokens that live
/// `lifetime` on a frozen clock of its own; both clocks are moved together, so nothing sleeps.
async fn refreshes_ahead_of_expiry(lifetime: Duration, still_cached: Duration, due: Duration) {
    let sim = Sim::start(
        SimSpec::generated(10, 7)
            .with_throttling(ThrottleConfig::disabled())
            .with_auth(AuthConfig {
                token_lifetime: lifetime,
                ..AuthConfig::default()
            }),
    )
    .await
    .unwrap();
    sim.freeze_clock();
    let clock = Arc::new(ManualClock::new());
    let advance = |by| {
        clock.advance(by);
        sim.advance_clock(by);
    };
    let client = Connection {
        clock: Arc::clone(&clock) as SharedClock,
        ..sim_connection(&sim)
    }
    .graph_client(sim_auth(&sim, secret(sim.client_id(), sim.client_secret())))
    .unwrap();
    client.organization().await.unwrap();
    let issued = sim.counters().tokens_issued;

    advance(still_cached);
    client.organization().await.unwrap();
    assert_eq!(
        sim.counters().tokens_issued,
        issued,
        "not yet within the margin: the cached token is used"
    );
    advance(due.saturating_sub(still_cached));
    client.organization().await.unwrap();
    assert_eq!(
        sim.counters().tokens_issued,
        issued + 1,
        "within the margin: a new token was fetched"
    );
    // Past the first token's expiry: the new one is in use, so the service refuses nothing.
    advance(lifetime.saturating_sub(due));
    client.organization().await.unwrap();
    assert_eq!(sim.counters().tokens_issued, issued + 1);
    let organization = sim
        .counters()
        .endpoint(b2b_convert_sim::Endpoint::Organization);
    assert_eq!(
        organization.client_errors, 0,
        "no request was sent with an expiring token"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_is_refreshed_five_minutes_before_it_expires_without_a_401() {
    refreshes_ahead_of_expiry(
        Duration::from_hours(1),
        Duration::from_mins(54),
        Duration::from_mins(55),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_lived_token_is_refreshed_a_fifth_of_its_life_before_it_expires() {
    // A minute: refreshed 12 s before expiry, so at 48 s. (The simulator counts whole
    // seconds, so a token it issues may expire up to a second early by our clock.)
    refreshes_ahead_of_expiry(
        Duration::from_mins(1),
        Duration::from_secs(47),
        Duration::from_secs(48),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_static_token_cannot_be_refreshed_and_says_so() {
    let sim = quiet_sim(10).await;
    let client = client_with(
        &sim,
        Credential::Static {
            token: Arc::new(SecretString::from("eyJnot.a.valid-token")),
            origin: "environment variable B2BC_ACCESS_TOKEN".into(),
        },
    );
    let err = client.organization().await.unwrap_err();
    assert!(
        matches!(err, Error::Auth(AuthError::StaticTokenRejected { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("B2BC_ACCESS_TOKEN"), "{err}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_device_code_flow_signs_in_when_approved() {
    let sim = Arc::new(
        Sim::start(
            SimSpec::generated(10, 7)
                .with_throttling(ThrottleConfig::disabled())
                .with_auth(AuthConfig {
                    device_code_interval: Duration::from_secs(1),
                    ..AuthConfig::default()
                }),
        )
        .await
        .unwrap(),
    );
    let approver = Arc::clone(&sim);
    let prompt = Box::new(move |prompt: &b2b_convert::graph::auth::DeviceCodePrompt| {
        assert!(prompt.message.contains(&prompt.user_code));
        assert!(approver.approve_device_code(&prompt.user_code, None));
    });
    let client = client_with(
        &sim,
        Credential::DeviceCode {
            client_id: sim.client_id().to_owned(),
            scopes: vec![
                "https://graph.microsoft.com/User.Read.All".to_owned(),
                "https://graph.microsoft.com/Organization.Read.All".to_owned(),
                "offline_access".into(),
            ],
            prompt,
        },
    );
    let (tenant, _) = client.organization().await.expect("signed in");
    assert_eq!(tenant.to_string(), sim.tenant_id());
}

/// `check` requires the baseline reads (`run` takes one per user); the device-code flow's
/// default scopes must be enough for them, as for every other required read.
#[tokio::test(flavor = "multi_thread")]
async fn the_default_device_code_scopes_take_a_baseline() {
    let sim = Arc::new(
        Sim::start(
            SimSpec::generated(10, 7)
                .with_throttling(ThrottleConfig::disabled())
                .with_auth(AuthConfig {
                    device_code_interval: Duration::from_secs(1),
                    ..AuthConfig::default()
                }),
        )
        .await
        .unwrap(),
    );
    let approver = Arc::clone(&sim);
    let prompt = Box::new(move |prompt: &b2b_convert::graph::auth::DeviceCodePrompt| {
        assert!(approver.approve_device_code(&prompt.user_code, None));
    });
    let mut scopes: Vec<String> = b2b_convert::config::raw::RawAuth::default()
        .delegated_scopes
        .iter()
        .map(|s| format!("https://graph.microsoft.com/{s}"))
        .collect();
    scopes.push("offline_access".into());
    let client = client_with(
        &sim,
        Credential::DeviceCode {
            client_id: sim.client_id().to_owned(),
            scopes,
            prompt,
        },
    );
    let user = sim.find_user(UserCase::CloudMailExternal).unwrap();
    let baseline = client
        .conversion_baseline(user.id.parse().unwrap(), OffsetDateTime::now_utc())
        .await
        .expect("memberOf and appRoleAssignments with the default delegated scopes");
    assert_eq!(baseline.user_id.to_string(), user.id);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declined_device_code_stops_the_flow() {
    let sim = Arc::new(
        Sim::start(SimSpec::generated(10, 7).with_auth(AuthConfig {
            device_code_interval: Duration::from_secs(1),
            ..AuthConfig::default()
        }))
        .await
        .unwrap(),
    );
    let decliner = Arc::clone(&sim);
    let client = client_with(
        &sim,
        Credential::DeviceCode {
            client_id: sim.client_id().to_owned(),
            scopes: vec![
                "https://graph.microsoft.com/Organization.Read.All".into(),
                "offline_access".into(),
            ],
            prompt: Box::new(move |prompt| {
                assert!(decliner.decline_device_code(&prompt.user_code));
            }),
        },
    );
    let err = client.organization().await.unwrap_err();
    assert!(
        matches!(err, Error::Auth(AuthError::DeviceCodeDeclined)),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_write_is_an_unknown_outcome_and_is_not_resent() {
    let sim = faulty_sim(200, "invitations:drop=1").await;
    let user = sim.find_user(UserCase::CloudMailExternal).unwrap();
    let client = client_with_secret(&sim, sim.client_id(), sim.client_secret());
    let err = client
        .write::<_, serde_json::Value>(Method::POST, "invitations", &invitation_for(&user))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::OutcomeUnknown { .. }), "{err}");
    assert_eq!(sim.invitation_posts(&user.id), 1, "never re-sent blindly");
    assert_eq!(
        sim.user(&user.id).unwrap().external_user_state.as_deref(),
        Some("PendingAcceptance"),
        "the service did act: that is why the outcome is unknown, not failed"
    );
    sim.shutdown().await;
}

fn invitation_for(user: &b2b_convert_sim::User) -> serde_json::Value {
    serde_json::json!({
        "invitedUserEmailAddress": user.mail,
        "inviteRedirectUrl": "https://myapps.microsoft.com",
        "sendInvitationMessage": false,
        "invitedUser": {"id": user.id},
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_write_is_retried_after_retry_after_and_happens_once() {
    let sim = Sim::start(SimSpec::generated(200, 7).with_throttling(ThrottleConfig {
        invitations: b2b_convert_sim::WindowLimit::new(1, Duration::from_secs(1)),
        ..ThrottleConfig::default()
    }))
    .await
    .unwrap();
    let first = sim.find_user(UserCase::CloudMailExternal).unwrap();
    let second = sim.find_user(UserCase::SyncedConvertible).unwrap();
    let client = client_with_secret(&sim, sim.client_id(), sim.client_secret());
    for user in [&first, &second] {
        let response = client
            .write::<_, serde_json::Value>(Method::POST, "invitations", &invitation_for(user))
            .await
            .expect("throttling is waited out");
        assert_eq!(response.meta.status, 201);
    }
    assert_eq!(
        sim.invitation_posts(&second.id),
        2,
        "throttled once, then accepted"
    );
    assert_eq!(
        sim.counters().invitations_created,
        2,
        "each user invited exactly once"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_answered_503_is_an_unknown_outcome_and_is_not_resent() {
    let sim = faulty_sim(200, "invitations:503=1,retry-after=1").await;
    let user = sim.find_user(UserCase::CloudMailExternal).unwrap();
    let client = client_with_secret(&sim, sim.client_id(), sim.client_secret());
    let err = client
        .write::<_, serde_json::Value>(Method::POST, "invitations", &invitation_for(&user))
        .await
        .unwrap_err();
    let Error::OutcomeUnknown {
        status, request_id, ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(*status, Some(503));
    assert!(request_id.is_some());
    assert_eq!(sim.invitation_posts(&user.id), 1, "never re-sent blindly");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn graph_errors_carry_code_message_and_request_ids() {
    let sim = quiet_sim(10).await;
    let reader = &sim.apps()[1];
    let client = client_with_secret(&sim, &reader.client_id, &reader.secrets[0]);
    let err = client.domains().await.unwrap_err();
    let Error::Api(api) = &err else {
        panic!("{err}")
    };
    assert_eq!(api.status, 403);
    assert_eq!(api.code, "Authorization_RequestDenied");
    assert_ne!(api.request_id, "none");
    assert!(!api.client_request_id.is_empty());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_next_link_to_another_host_is_refused_before_the_token_is_sent() {
    let elsewhere = TinyServer::fixed("{\"value\":[]}".into()).await;
    let graph = TinyServer::fixed(format!(
        "{{\"value\":[],\"@odata.nextLink\":\"http://localhost:{}/v1.0/users?$skiptoken=x\"}}",
        elsewhere.port
    ))
    .await;
    let client = client_at(&graph);
    let result: Result<Vec<_>, _> = client
        .users(&UserSelection::All, OffsetDateTime::now_utc())
        .try_collect()
        .await;
    let err = result.unwrap_err();
    assert!(matches!(err, Error::ForeignHost { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("localhost:{}", elsewhere.port)),
        "{err}"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        elsewhere.connections(),
        0,
        "nothing, let alone the token, was sent to the other host"
    );
}

/// A client with a static token aimed at `graph`, with fast retries.
fn client_at(graph: &TinyServer) -> b2b_convert::graph::GraphClient {
    let graph_url = graph.url();
    Connection {
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(5),
        retry: crate::support::fast_retries(),
        ..Connection::new(graph_url.clone(), graph_url)
    }
    .graph_client(Auth {
        credential: Credential::Static {
            token: Arc::new(SecretString::from("token-value")),
            origin: "test".into(),
        },
        tenant: "tenant".into(),
        resource: "https://graph.microsoft.com".into(),
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quota_refusal_is_never_retried_even_as_a_429_with_retry_after() {
    let graph = TinyServer::start(|_| crate::support::TinyReply {
        headers: vec![("retry-after", "1".to_owned())],
        ..crate::support::TinyReply::status(
            429,
            r#"{"error":{"code":"TooManyRequests","message":"Invitation quota exceeded for this tenant."}}"#,
        )
    })
    .await;
    let client = client_at(&graph);
    let err = client
        .write::<_, serde_json::Value>(
            Method::POST,
            "invitations",
            &serde_json::json!({"invitedUserEmailAddress": "a@fabrikam.com"}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.tenant_refusal(),
        Some(b2b_convert::graph::invitations::TenantRefusal::Quota),
        "{err}"
    );
    assert_eq!(graph.heads().len(), 1, "sent once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guard_withholds_the_retry_of_a_throttled_invitation() {
    let graph = TinyServer::start(|_| crate::support::TinyReply {
        headers: vec![("retry-after", "0.05".to_owned())],
        ..crate::support::TinyReply::status(
            429,
            r#"{"error":{"code":"TooManyRequests","message":"Too many requests."}}"#,
        )
    })
    .await;
    // Withholds retries (announced with the status that failed), not the first attempt.
    let client = client_at(&graph).with_retry_guard(Arc::new(|event| {
        if event.path.ends_with("/invitations") && event.status.is_some() {
            Err("the run stopped sending".to_owned())
        } else {
            Ok(())
        }
    }));
    let err = client
        .write::<_, serde_json::Value>(
            Method::POST,
            "invitations",
            &serde_json::json!({"invitedUserEmailAddress": "a@fabrikam.com"}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Withheld { reason, .. } if reason == "the run stopped sending"),
        "{err}"
    );
    assert_eq!(graph.heads().len(), 1, "not sent again");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_waiting_out_its_retry_after_is_withheld_when_the_run_stops_meanwhile() {
    // Throttled with a Retry-After of 0.6 s; the run stops sending 0.1 s into that wait (as when
    // another request met the abuse block): the retry must not leave.
    let graph = TinyServer::start(|_| crate::support::TinyReply {
        headers: vec![("retry-after", "0.6".to_owned())],
        ..crate::support::TinyReply::status(
            429,
            r#"{"error":{"code":"TooManyRequests","message":"Too many requests."}}"#,
        )
    })
    .await;
    let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let guard_sees = Arc::clone(&stopped);
    let client = client_at(&graph).with_retry_guard(Arc::new(move |_| {
        if guard_sees.load(std::sync::atomic::Ordering::SeqCst) {
            Err("the run stopped sending".to_owned())
        } else {
            Ok(())
        }
    }));
    let stops_the_run = {
        let stopped = Arc::clone(&stopped);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            stopped.store(true, std::sync::atomic::Ordering::SeqCst);
        })
    };
    let err = client
        .write::<_, serde_json::Value>(
            Method::POST,
            "invitations",
            &serde_json::json!({"invitedUserEmailAddress": "a@fabrikam.com"}),
        )
        .await
        .unwrap_err();
    stops_the_run.await.unwrap();
    assert!(
        matches!(&err, Error::Withheld { reason, .. } if reason == "the run stopped sending"),
        "{err}"
    );
    assert_eq!(graph.heads().len(), 1, "the retry did not leave");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_is_looked_up_by_its_exact_name_quoted_and_encoded_for_odata() {
    let sim = quiet_sim(100).await;
    let client = client_with_secret(&sim, sim.client_id(), sim.client_secret());
    let url = client.groups_named_url("O'Brien & Co – Pilot");
    assert_eq!(
        url.query(),
        Some(
            "$filter=displayName%20eq%20%27O%27%27Brien%20%26%20Co%20%E2%80%93%20Pilot%27&$select=id,displayName"
        )
    );
    let found = client.groups_named("Partners – Pilot").await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].display_name, "Partners – Pilot");
    assert_eq!(
        found[0].id.to_string(),
        b2b_convert_sim::GeneratedTenant::new(7, 100).groups()[0].0
    );
    assert!(
        client
            .groups_named("O'Brien & Co")
            .await
            .unwrap()
            .is_empty()
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_user_count_is_an_advanced_query_the_simulator_answers() {
    let sim = quiet_sim(137).await;
    let client = client_with_secret(&sim, sim.client_id(), sim.client_secret());
    assert_eq!(client.count_users().await.unwrap(), 137);
    sim.shutdown().await;
}
