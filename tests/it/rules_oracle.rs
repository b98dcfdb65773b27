//! The rules against the service's own judgement: the simulator validates invitations the way
//! NOTES.md describes the service. Every user the rules call eligible must be accepted (after
//! the planned "set mail" step), and every user they block for a reason the service enforces
//! must be refused. A disagreement is a bug in the rules or in the simulator.

use std::collections::HashMap;

use b2b_convert::domain::{Decision, RuleMode, UserSnapshot};
use b2b_convert::graph::{Error, UserSelection};
use b2b_convert::rules::{self, Candidate, DomainSet, Policy, Reason, Severity, TenantView};
use b2b_convert::store::Store;
use b2b_convert_sim::{InvitationRules, Sim, SimSpec, ThrottleConfig, UserCase};
use futures_util::TryStreamExt;
use reqwest::Method;
use time::OffsetDateTime;

use crate::support::client_with_secret;

/// Reasons the service itself refuses (the simulator set to the 2021 limits the tool enforces
/// by default). `already-external` is not among them: a pending user is re-sent, which the
/// tool refuses on its own account.
const SERVICE_REFUSES: [Reason; 7] = [
    Reason::InvalidAddress,
    Reason::OnPremisesUpnSet,
    Reason::VerifiedDomainAddress,
    Reason::AddressCollision,
    Reason::ExchangeMailbox,
    Reason::DirectFederation,
    Reason::ConvertedBackToInternal,
];

#[tokio::test(flavor = "multi_thread")]
async fn eligible_users_are_accepted_and_service_side_blocks_are_refused() {
    let sim = Sim::start(
        SimSpec::generated(2_000, 21)
            .with_throttling(ThrottleConfig::disabled())
            .with_invitation_rules(InvitationRules {
                reject_direct_federation_domains: true,
                reject_mailbox_users: true,
                ..InvitationRules::default()
            }),
    )
    .await
    .unwrap();
    let client = client_with_secret(&sim, sim.client_id(), sim.client_secret());
    let (users, tenant, store, _dir) = snapshot(&client).await;
    let mut policy = Policy::default();
    // The service does not check realms; the rule is advisory and judged elsewhere.
    policy
        .modes
        .insert(b2b_convert::domain::Rule::HomeRealmNotEntra, RuleMode::Off);

    let mut checked = (0, 0);
    let mut warned = 0;
    let mut contact_held = 0;
    for user in &users {
        let Some((verdict, blockers)) = plan_user(user, &tenant, &policy, &store).await else {
            continue;
        };
        let expect_accept = match verdict.decision {
            Decision::Eligible => true,
            Decision::Blocked if blockers.iter().all(|r| SERVICE_REFUSES.contains(r)) => false,
            Decision::Blocked => continue,
        };
        let accepted = convert(&client, user, &verdict).await;
        let case = sim.case_of(&user.id.to_string()).unwrap_or_default();
        assert_eq!(
            accepted,
            expect_accept,
            "user {} (case {case}): rules say {:?} {blockers:?}, the service {}",
            user.id,
            verdict.decision,
            if accepted { "accepted" } else { "refused" }
        );
        if case == "contact-address-collision" {
            // The org contact holding the address is named in the finding.
            assert!(
                verdict
                    .findings
                    .iter()
                    .any(|f| f.reason == Reason::AddressCollision
                        && f.detail.contains("org contact")),
                "user {} (case {case}): {:?}",
                user.id,
                verdict.findings
            );
            contact_held += 1;
        }
        if case == "exchange-add-on-plan" {
            // A warning, not a refusal: the service converts them (scrubbing is unmodelled).
            assert!(
                verdict
                    .findings
                    .iter()
                    .any(|f| f.reason == Reason::ExchangeAddOnPlan
                        && f.severity == Severity::Warning
                        && f.detail.contains("EOP_ENTERPRISE")),
                "user {} (case {case}): {:?}",
                user.id,
                verdict.findings
            );
            warned += 1;
        }
        if expect_accept {
            checked.0 += 1;
        } else {
            checked.1 += 1;
        }
    }
    assert!(
        checked.0 > 500,
        "many eligible users were tried: {checked:?}"
    );
    assert!(warned > 5, "add-on plan users were planned: {warned}");
    assert!(
        contact_held > 5,
        "users whose address an org contact holds were planned: {contact_held}"
    );
    assert!(
        checked.1 > 100,
        "many service-side blocks were tried: {checked:?}"
    );
    for case in [
        UserCase::CloudPlusAddressed,
        UserCase::SyncedOnPremisesUpn,
        UserCase::UnsyncedOnPremisesUpn,
        UserCase::ConvertedBackToInternal,
        UserCase::ExchangeAddOnPlan,
        UserCase::ExchangeMailbox,
        UserCase::ContactAddressCollision,
    ] {
        assert!(
            sim.find_user(case).is_some(),
            "the tenant has {case:?} users"
        );
    }
    sim.shutdown().await;
}

/// Reads the tenant like `discover` (users and org contacts) and stores it, for the collision
/// index.
async fn snapshot(
    client: &b2b_convert::graph::GraphClient,
) -> (Vec<UserSnapshot>, TenantView, Store, tempfile::TempDir) {
    let now = OffsetDateTime::now_utc();
    let facts = client.tenant_facts(now, true).await.unwrap();
    let users: Vec<UserSnapshot> = client
        .users(&UserSelection::All, now)
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .flat_map(|page| page.items)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.db")).await.unwrap();
    store.store_users(&users).await.unwrap();
    let discovery = store
        .begin_discovery(&serde_json::json!({"oracle": true}), now)
        .await
        .unwrap();
    let mut contacts = std::pin::pin!(client.contacts());
    while let Some(page) = contacts.try_next().await.unwrap() {
        store
            .store_contact_page(discovery, &page.items)
            .await
            .unwrap();
    }
    let tenant = TenantView {
        verified_domains: DomainSet::new(
            facts
                .domains
                .iter()
                .filter(|d| d.is_verified)
                .map(|d| &d.name),
        ),
        federation_domains: DomainSet::new(facts.federation_domains.iter().map(|d| &d.domain)),
        realms: HashMap::new(),
    };
    (users, tenant, store, dir)
}

/// Evaluates a user with the other owners of its chosen address; `None` without an address.
async fn plan_user(
    user: &UserSnapshot,
    tenant: &TenantView,
    policy: &Policy,
    store: &Store,
) -> Option<(rules::Evaluation, Vec<Reason>)> {
    let candidate = Candidate {
        user,
        override_address: None,
        excluded: None,
        other_waves: &[],
    };
    let first = rules::evaluate(candidate, tenant, policy, &HashMap::new());
    let chosen = first.address?;
    // The planner's own reading of the address index (users and org contacts).
    let book = b2b_convert::plan::as_collisions(
        store
            .address_owners_of_many(&[chosen.address.as_str()])
            .await
            .unwrap(),
    );
    let verdict = rules::evaluate(candidate, tenant, policy, &book);
    let blockers = verdict
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Blocker)
        .map(|f| f.reason)
        .collect();
    Some((verdict, blockers))
}

/// Does what `run` will do: set mail when planned, then invite. True when the service accepts.
async fn convert(
    client: &b2b_convert::graph::GraphClient,
    user: &UserSnapshot,
    verdict: &rules::Evaluation,
) -> bool {
    let address = &verdict.address.as_ref().unwrap().address;
    if verdict.set_mail {
        let patched = client
            .write::<_, serde_json::Value>(
                Method::PATCH,
                &format!("users/{}", user.id),
                &serde_json::json!({ "mail": address }),
            )
            .await;
        match patched {
            Ok(_) => {}
            Err(Error::Api(api)) if api.status == 400 => return false,
            Err(other) => panic!("unexpected PATCH failure: {other}"),
        }
    }
    let invited = client
        .write::<_, serde_json::Value>(
            Method::POST,
            "invitations",
            &serde_json::json!({
                "invitedUserEmailAddress": address,
                "inviteRedirectUrl": "https://myapps.microsoft.com/?tenantId=x",
                "sendInvitationMessage": false,
                "invitedUser": { "id": user.id },
            }),
        )
        .await;
    match invited {
        Ok(response) => response.meta.status == 201,
        Err(Error::Api(api)) if (400..500).contains(&api.status) => false,
        Err(other) => panic!("unexpected invitation failure: {other}"),
    }
}
