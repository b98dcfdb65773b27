//! The partner pre-flight against the simulated tenant: our cross-tenant inbound setting per
//! partner tenant (on, off, inherited, no entry), a domain that is no Entra tenant, one no
//! tenant claims, the missing permission, and `plan` → `report` end to end.

use std::collections::HashMap;

use b2b_convert::domain::{PartnerPreflight, PreflightReason, RealmKind, Redemption};
use b2b_convert::plan::preflight::{Sources, check_partners};
use b2b_convert::rules::DomainSet;
use b2b_convert::store::Store;
use b2b_convert_sim::generate::partner_tenant_id;
use b2b_convert_sim::{Endpoint, Sim};
use serde_json::Value;
use time::OffsetDateTime;
use url::Url;

use crate::support::{cli, client_with_secret, quiet_sim, sim_connection, text};

/// What `check_partners` answers for `domains` with the app `app` (0: every permission, 1: the
/// reader with User.Read.All only), by domain, and the stored answers.
async fn preflight(
    sim: &Sim,
    app: usize,
    domains: &[&str],
    realms: &[(&str, RealmKind)],
) -> (HashMap<String, PartnerPreflight>, Vec<PartnerPreflight>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("b2b-convert.db"))
        .await
        .unwrap();
    let registration = &sim.apps()[app];
    let graph = client_with_secret(sim, &registration.client_id, &registration.secrets[0]);
    let login = sim_connection(sim).realm_client().unwrap();
    let sources = Sources {
        graph: &graph,
        login: &login,
        store: &store,
    };
    let domains: Vec<String> = domains.iter().map(|d| (*d).to_owned()).collect();
    let realms: HashMap<String, RealmKind> = realms
        .iter()
        .map(|(domain, kind)| ((*domain).to_owned(), *kind))
        .collect();
    let answers = check_partners(
        &sources,
        &domains,
        &DomainSet::new(["contoso.com"]),
        &realms,
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    let stored = store.partner_preflights(&domains).await.unwrap();
    assert_eq!(stored.len(), answers.len(), "every answer is stored");
    let by_domain = answers.into_iter().map(|a| (a.domain.clone(), a)).collect();
    (by_domain, stored)
}

fn requests(sim: &Sim, endpoint: Endpoint) -> u64 {
    sim.counters().endpoint(endpoint).requests
}

#[tokio::test(flavor = "multi_thread")]
async fn each_partner_tenants_inbound_setting_decides_and_non_entra_domains_are_not_asked() {
    let sim = quiet_sim(20).await;
    let (answers, _) = preflight(
        &sim,
        0,
        &[
            "fabrikam.com",
            "tailspintoys.com",
            "adatum.com",
            "litwareinc.com",
            "northwindtraders.com",
            "wingtipmail.net",
            "nobody.example",
            "partners.contoso.com",
        ],
        &[
            ("wingtipmail.net", RealmKind::Unknown),
            ("fabrikam.com", RealmKind::Managed),
        ],
    )
    .await;
    let said = |domain: &str| {
        let answer = &answers[domain];
        (answer.redemption, answer.reason)
    };
    for domain in ["fabrikam.com", "tailspintoys.com"] {
        assert_eq!(
            said(domain),
            (
                Redemption::AutomaticIfPartnerAllows,
                PreflightReason::InboundAllowed
            ),
            "{domain}"
        );
    }
    assert_eq!(
        said("adatum.com"),
        (Redemption::AsksPartner, PreflightReason::InboundBlocked)
    );
    assert_eq!(
        said("litwareinc.com"),
        (Redemption::AsksPartner, PreflightReason::InheritsDefault),
        "the default is always off"
    );
    assert_eq!(
        said("northwindtraders.com"),
        (Redemption::AsksPartner, PreflightReason::NoPartnerEntry),
        "404: no partner entry"
    );
    assert_eq!(
        said("wingtipmail.net"),
        (Redemption::NotChecked, PreflightReason::NotEntra)
    );
    assert_eq!(
        said("nobody.example"),
        (Redemption::NotChecked, PreflightReason::TenantNotFound),
        "realm not known, and the login host names no tenant"
    );
    assert!(
        !answers.contains_key("partners.contoso.com"),
        "the tenant's own domains are not partners"
    );
    assert_eq!(
        answers["fabrikam.com"].tenant_id.unwrap().to_string(),
        partner_tenant_id("fabrikam.com")
    );
    assert_eq!(answers["wingtipmail.net"].tenant_id, None);
    assert_eq!(
        requests(&sim, Endpoint::OpenIdConfiguration),
        6,
        "every domain but the non-Entra one and our own is looked up"
    );
    assert_eq!(
        requests(&sim, Endpoint::CrossTenantAccess),
        6,
        "the default, then one read per partner tenant found (5)"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_policy_read_all_every_entra_domain_is_not_checked_after_one_request() {
    let sim = quiet_sim(20).await;
    let (answers, stored) = preflight(
        &sim,
        1,
        &["fabrikam.com", "adatum.com", "wingtipmail.net"],
        &[("wingtipmail.net", RealmKind::Unknown)],
    )
    .await;
    for domain in ["fabrikam.com", "adatum.com"] {
        let answer = &answers[domain];
        assert_eq!(answer.redemption, Redemption::NotChecked, "{domain}");
        assert_eq!(
            answer.reason,
            PreflightReason::PermissionMissing,
            "{domain}"
        );
        let detail = answer.detail.as_deref().unwrap();
        assert!(
            detail.contains("403 Authorization_RequestDenied"),
            "{detail}"
        );
        assert!(
            !detail.contains("sim~"),
            "no secret in the detail: {detail}"
        );
    }
    assert_eq!(answers["wingtipmail.net"].reason, PreflightReason::NotEntra);
    assert_eq!(
        requests(&sim, Endpoint::CrossTenantAccess),
        1,
        "the default only"
    );
    assert_eq!(requests(&sim, Endpoint::OpenIdConfiguration), 0);
    assert_eq!(stored.len(), 3);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_login_host_is_recorded_per_domain_and_nothing_stops() {
    let sim = quiet_sim(20).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("b2b-convert.db"))
        .await
        .unwrap();
    let graph = client_with_secret(&sim, sim.client_id(), sim.client_secret());
    // Nothing listens on port 9 of loopback.
    let dead = Url::parse("http://127.0.0.1:9/login").unwrap();
    let login = b2b_convert::graph::Connection {
        retry: crate::support::fast_retries(),
        ..b2b_convert::graph::Connection::new(dead.clone(), dead)
    }
    .realm_client()
    .unwrap();
    let answers = check_partners(
        &Sources {
            graph: &graph,
            login: &login,
            store: &store,
        },
        &["fabrikam.com".to_owned()],
        &DomainSet::new(["contoso.com"]),
        &HashMap::new(),
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    assert_eq!(answers[0].redemption, Redemption::NotChecked);
    assert_eq!(answers[0].reason, PreflightReason::TenantLookupFailed);
    assert!(
        answers[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("cannot reach the login host"),
        "{answers:?}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_stores_the_preflight_and_the_report_shows_it_beside_the_realms() {
    let sim = quiet_sim(300).await;
    let dir = tempfile::tempdir().unwrap();
    let output = cli(dir.path(), &sim, &["discover"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let output = cli(dir.path(), &sim, &["plan", "--wave", "all", "--all"]).await;
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    assert!(stdout.contains("Partner pre-flight: "), "{stdout}");
    assert!(
        stdout.contains("automatic if the partner allows it"),
        "{stdout}"
    );

    let output = cli(
        dir.path(),
        &sim,
        &["report", "--wave", "all", "--format", "json"],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let preflight = report["partner_preflight"]
        .as_array()
        .expect("partner_preflight");
    let of = |domain: &str| {
        preflight
            .iter()
            .find(|p| p["domain"] == domain)
            .unwrap_or_else(|| panic!("{domain} in {preflight:?}"))
    };
    assert_eq!(
        of("fabrikam.com")["redemption"],
        "automatic-if-partner-allows"
    );
    assert_eq!(
        of("fabrikam.com")["tenant_id"],
        partner_tenant_id("fabrikam.com")
    );
    assert_eq!(of("adatum.com")["redemption"], "asks-partner");
    assert_eq!(of("northwindtraders.com")["reason"], "no-partner-entry");
    assert_eq!(of("wingtipmail.net")["reason"], "not-entra");
    assert!(of("fabrikam.com")["users"].as_u64().unwrap() > 0);

    let output = cli(
        dir.path(),
        &sim,
        &["report", "--wave", "all", "--format", "html"],
    )
    .await;
    let html = text(&output.stdout);
    assert!(
        html.contains("id=\"preflight\""),
        "the HTML has the pre-flight"
    );
    assert!(html.contains("automatic if the partner allows it"));

    let output = cli(dir.path(), &sim, &["report", "--wave", "all"]).await;
    let table = text(&output.stdout);
    assert!(table.contains("Partner pre-flight"), "{table}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn switched_off_the_plan_does_not_ask_and_the_report_says_not_checked() {
    let sim = quiet_sim(100).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("b2b-convert.toml"),
        "[invitation]\ncheck_partner_settings = false\n",
    )
    .unwrap();
    let output = cli(dir.path(), &sim, &["discover"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let before = requests(&sim, Endpoint::CrossTenantAccess);
    let output = cli(dir.path(), &sim, &["plan", "--wave", "all", "--all"]).await;
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    assert!(!stdout.contains("Partner pre-flight"), "{stdout}");
    assert_eq!(requests(&sim, Endpoint::CrossTenantAccess), before);
    assert_eq!(requests(&sim, Endpoint::OpenIdConfiguration), 0);
    let output = cli(
        dir.path(),
        &sim,
        &["report", "--wave", "all", "--format", "json"],
    )
    .await;
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let preflight = report["partner_preflight"].as_array().unwrap();
    assert!(!preflight.is_empty());
    assert!(
        preflight
            .iter()
            .all(|p| p["redemption"] == "not-checked" && p["reason"] == "not-asked"),
        "{preflight:?}"
    );
    sim.shutdown().await;
}
