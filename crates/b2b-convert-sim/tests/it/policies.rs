//! The cross-tenant access policy (default and partner configurations) and the login host's
//! OIDC metadata that names a domain's tenant: what the partner pre-flight reads.

use b2b_convert_sim::generate::{
    AUTO_REDEEM_PARTNER_DOMAINS, CONSENT_PARTNER_DOMAIN, INHERITING_PARTNER_DOMAIN,
    UNKNOWN_REALM_DOMAIN, partner_tenant_id,
};
use b2b_convert_sim::{Sim, SimSpec, TenantFile};
use serde_json::{Value, json};

use super::{Harness, assert_graph_error, client, secret_token};

const PARTNERS: &str = "/v1.0/policies/crossTenantAccessPolicy/partners";

#[tokio::test]
async fn the_default_policy_never_redeems_automatically() {
    let h = Harness::generated(20).await;
    let (status, body) = h
        .get_json("/v1.0/policies/crossTenantAccessPolicy/default")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["isServiceDefault"], true);
    assert_eq!(
        body["automaticUserConsentSettings"],
        json!({"inboundAllowed": false, "outboundAllowed": false})
    );
    assert_eq!(
        body["b2bCollaborationInbound"]["usersAndGroups"]["accessType"],
        "allowed"
    );
}

#[tokio::test]
async fn partner_configurations_say_on_off_inherited_or_404_for_no_entry() {
    let h = Harness::generated(20).await;
    let inbound = |domain: &'static str| {
        let path = format!("{PARTNERS}/{}", partner_tenant_id(domain));
        let h = &h;
        async move {
            let (status, body) = h.get_json(&path).await;
            assert_eq!(status, 200, "{domain}: {body}");
            assert_eq!(body["tenantId"], partner_tenant_id(domain));
            assert!(body["inboundTrust"].is_null(), "{body}");
            body["automaticUserConsentSettings"]["inboundAllowed"].clone()
        }
    };
    for domain in AUTO_REDEEM_PARTNER_DOMAINS {
        assert_eq!(inbound(domain).await, json!(true), "{domain}");
    }
    assert_eq!(inbound(CONSENT_PARTNER_DOMAIN).await, json!(false));
    assert_eq!(inbound(INHERITING_PARTNER_DOMAIN).await, Value::Null);

    let (status, body) = h
        .get_json(&format!(
            "{PARTNERS}/{}",
            partner_tenant_id("northwindtraders.com")
        ))
        .await;
    assert_eq!(status, 404, "no entry for northwindtraders.com's tenant");
    assert_graph_error(&body, "Request_ResourceNotFound", "does not exist");
    let (status, _) = h.get_json(&format!("{PARTNERS}/not-a-guid")).await;
    assert_eq!(status, 400);
    let response = h
        .http
        .patch(h.url(&format!("{PARTNERS}/{}", partner_tenant_id("fabrikam.com"))))
        .bearer_auth(&h.token)
        .json(&json!({"automaticUserConsentSettings": {"inboundAllowed": true}}))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 501, "writes are not modelled");
}

#[tokio::test]
async fn the_policy_needs_policy_read_all() {
    let sim = Sim::start(SimSpec::generated(20, 7)).await.expect("starts");
    let http = client();
    let reader = &sim.apps()[1];
    let token = secret_token(&http, &sim, &reader.client_id, &reader.secrets[0]).await;
    for path in [
        "/v1.0/policies/crossTenantAccessPolicy/default".to_owned(),
        format!("{PARTNERS}/{}", partner_tenant_id("fabrikam.com")),
        format!("{PARTNERS}/{}", partner_tenant_id("northwindtraders.com")),
    ] {
        let response = http
            .get(format!("{}{path}", sim.graph_url()))
            .bearer_auth(&token)
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status(), 403, "{path}");
        let body: Value = response.json().await.expect("json");
        assert_graph_error(
            &body,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        );
    }
}

async fn openid(sim: &Sim, tenant: &str) -> (u16, Value) {
    let response = client()
        .get(format!(
            "{}/{tenant}/v2.0/.well-known/openid-configuration",
            sim.login_url()
        ))
        .send()
        .await
        .expect("answered");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

#[tokio::test]
async fn the_openid_metadata_names_a_domains_tenant_in_its_issuer_anonymously() {
    let sim = Sim::start(SimSpec::generated(20, 7)).await.expect("starts");
    let issuer = |tenant_id: &str| format!("{}/{tenant_id}/v2.0", sim.login_url());
    for domain in ["fabrikam.com", "Tailspintoys.com", "northwindtraders.com"] {
        let (status, body) = openid(&sim, domain).await;
        assert_eq!(status, 200, "{domain}: {body}");
        assert_eq!(
            body["issuer"],
            issuer(&partner_tenant_id(domain)),
            "{domain}"
        );
    }
    let own = sim.tenant_id().to_owned();
    for tenant in ["contoso.com", own.as_str()] {
        let (status, body) = openid(&sim, tenant).await;
        assert_eq!(status, 200, "{tenant}");
        assert_eq!(body["issuer"], issuer(&own));
    }
    let by_id = partner_tenant_id("adatum.com");
    assert_eq!(openid(&sim, &by_id).await.1["issuer"], issuer(&by_id));
    for unknown in [
        UNKNOWN_REALM_DOMAIN,
        "nobody.example",
        "0badc0de-0000-4000-8000-000000000000",
    ] {
        let (status, body) = openid(&sim, unknown).await;
        assert_eq!(status, 400, "{unknown}: {body}");
        assert_eq!(body["error"], "invalid_tenant");
        assert_eq!(body["error_codes"], json!([90002]));
    }
}

#[tokio::test]
async fn a_tenant_file_names_partner_tenants_and_their_settings() {
    let mut tenant: Value =
        serde_json::from_str(include_str!("../fixtures/tenant.json")).expect("fixture");
    let fabrikam = "9c5d131d-b1c3-4fc4-9e3f-c6557947d551";
    tenant["tenantIds"] = json!({"Fabrikam.com": fabrikam});
    tenant["crossTenantAccessPartners"] = json!([{
        "tenantId": fabrikam,
        "automaticUserConsentSettings": {"inboundAllowed": true, "outboundAllowed": null},
    }]);
    tenant["applications"][0]["roles"]
        .as_array_mut()
        .expect("roles")
        .push(json!("Policy.Read.All"));
    let file = TenantFile::parse(&tenant.to_string()).expect("tenant file");
    let h = Harness::start(SimSpec::inline(file)).await;
    let (status, body) = openid(&h.sim, "fabrikam.com").await;
    assert_eq!(status, 200);
    assert_eq!(
        body["issuer"],
        format!("{}/{fabrikam}/v2.0", h.sim.login_url())
    );
    let (status, body) = h.get_json(&format!("{PARTNERS}/{fabrikam}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["automaticUserConsentSettings"]["inboundAllowed"], true);
    // tailspintoys.com (Federated) is not named: its tenant id is derived, with no entry.
    let (status, _) = h
        .get_json(&format!(
            "{PARTNERS}/{}",
            partner_tenant_id("tailspintoys.com")
        ))
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        openid(&h.sim, "tailspintoys.com").await.1["issuer"],
        format!(
            "{}/{}/v2.0",
            h.sim.login_url(),
            partner_tenant_id("tailspintoys.com")
        )
    );

    for (field, value, expected) in [
        (
            "tenantIds",
            json!({"fabrikam.com": "fabrikam"}),
            "tenantIds.fabrikam.com: `fabrikam` is not a GUID",
        ),
        (
            "crossTenantAccessPartners",
            json!([{"tenantId": fabrikam}, {"tenantId": fabrikam.to_uppercase()}]),
            "crossTenantAccessPartners[1].tenantId",
        ),
    ] {
        let mut bad = tenant.clone();
        bad[field] = value;
        let file = TenantFile::parse(&bad.to_string()).expect("parses");
        let err = Sim::start(SimSpec::inline(file))
            .await
            .expect_err("refused");
        assert!(err.to_string().contains(expected), "{err}");
    }
}
