//! Groups (direct, transitive, user cast), domains, organization, federation configurations,
//! the user-realm endpoint, and tenants loaded from a JSON file.

use std::collections::HashSet;

use b2b_convert_sim::{Sim, SimSpec, TenantFile, ThrottleConfig};
use serde_json::Value;

use super::{Harness, assert_graph_error, client, secret_token};

fn fixture_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tenant.json")
}

async fn all_ids(h: &Harness, path: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut next = Some(h.url(path));
    while let Some(url) = next {
        // Harmless on a plain list, required for an OData cast on transitive members.
        let page: Value = h
            .http
            .get(&url)
            .bearer_auth(&h.token)
            .header("ConsistencyLevel", "eventual")
            .send()
            .await
            .expect("page")
            .json()
            .await
            .expect("json");
        assert!(page["value"].is_array(), "{page}");
        ids.extend(
            page["value"]
                .as_array()
                .expect("value")
                .iter()
                .map(|m| m["id"].as_str().expect("id").to_owned()),
        );
        next = page["@odata.nextLink"].as_str().map(str::to_owned);
    }
    ids
}

#[tokio::test]
async fn a_cast_on_transitive_members_is_an_advanced_query_and_on_direct_members_is_not() {
    let h = Harness::generated(200).await;
    let groups = b2b_convert_sim::GeneratedTenant::new(7, 200).groups();
    let group = &groups[3].0;
    let cast = format!("/v1.0/groups/{group}/transitiveMembers/microsoft.graph.user");
    for (query, eventual) in [("", false), ("", true), ("?$count=true", false)] {
        let mut request = h
            .http
            .get(h.url(&format!("{cast}{query}")))
            .bearer_auth(&h.token);
        if eventual {
            request = request.header("ConsistencyLevel", "eventual");
        }
        let response = request.send().await.expect("answer");
        assert_eq!(response.status(), 400, "{query} eventual={eventual}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["code"], "Request_UnsupportedQuery", "{body}");
    }
    let response = h
        .http
        .get(h.url(&format!("{cast}?$count=true")))
        .bearer_auth(&h.token)
        .header("ConsistencyLevel", "eventual")
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 200);
    let (status, _) = h
        .get_json(&format!(
            "/v1.0/groups/{group}/members/microsoft.graph.user"
        ))
        .await;
    assert_eq!(status, 200, "the cast on direct members works by default");
}

#[tokio::test]
async fn nested_groups_expand_transitively_once_per_user() {
    let h = Harness::generated(1000).await;
    let (_, body) = h.get_json("/v1.0/users?$top=1").await;
    assert!(body["value"].is_array());
    // "All partners" is the fourth generated group: direct = tail users + two groups.
    let groups = b2b_convert_sim::GeneratedTenant::new(7, 1000).groups();
    let all_partners = &groups[3].0;
    let direct: Value = h
        .get_json(&format!("/v1.0/groups/{all_partners}/members?$top=999"))
        .await
        .1;
    let kinds: HashSet<&str> = direct["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|m| m["@odata.type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        kinds,
        HashSet::from(["#microsoft.graph.user", "#microsoft.graph.group"])
    );
    let transitive_users = all_ids(&h, &format!("/v1.0/groups/{all_partners}/transitiveMembers/microsoft.graph.user?$select=id,mail&$top=100&$count=true")).await;
    let unique: HashSet<&String> = transitive_users.iter().collect();
    assert_eq!(unique.len(), transitive_users.len(), "no duplicates");
    // pilot 20 + wave 2 (20..500) + late joiners (500..600) + tail (900..1000)
    assert_eq!(transitive_users.len(), 20 + 480 + 100 + 100);
    let (status, body) = h
        .get_json("/v1.0/groups/00000000-0000-4000-8000-000000000000/members")
        .await;
    assert_eq!(status, 404);
    assert_graph_error(&body, "Request_ResourceNotFound", "does not exist");
}

#[tokio::test]
async fn domains_organization_federation_and_realms() {
    let h = Harness::generated(10).await;
    let (_, domains) = h.get_json("/v1.0/domains").await;
    let names: Vec<&str> = domains["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|d| d["id"].as_str().expect("id"))
        .collect();
    assert!(names.contains(&"contoso.com") && names.contains(&"contoso.onmicrosoft.com"));
    let (_, org) = h.get_json("/v1.0/organization").await;
    assert_eq!(org["value"][0]["id"], h.sim.tenant_id());
    let (_, list) = h
        .get_json(
            "/v1.0/directory/federationConfigurations/graph.samlOrWsFedExternalDomainFederation",
        )
        .await;
    let config = &list["value"][0];
    assert!(
        config.get("domains").is_none(),
        "domains need $expand (configurable)"
    );
    let id = config["id"].as_str().expect("id");
    let (status, domains) = h.get_json(&format!("/v1.0/directory/federationConfigurations/microsoft.graph.samlOrWsFedExternalDomainFederation/{id}/domains")).await;
    assert_eq!(status, 200);
    assert_eq!(domains["value"][0]["id"], "woodgrovebank.com");
    for (address, kind) in [
        ("a@fabrikam.com", "Managed"),
        ("a@tailspintoys.com", "Federated"),
        ("a@wingtipmail.net", "Unknown"),
        ("a@nowhere.example", "Unknown"),
    ] {
        let realm: Value = h
            .http
            .get(format!(
                "{}/common/userrealm/{address}?api-version=1.0",
                h.sim.login_url()
            ))
            .send()
            .await
            .expect("realm")
            .json()
            .await
            .expect("json");
        assert_eq!(realm["account_type"], kind, "{address}: {realm}");
        assert_eq!(
            realm.get("federation_metadata_url").is_some(),
            kind == "Federated"
        );
    }
}

#[tokio::test]
async fn a_tenant_file_pins_exact_cases() {
    let sim =
        Sim::start(SimSpec::from_file(fixture_path()).with_throttling(ThrottleConfig::disabled()))
            .await
            .expect("fixture loads");
    let http = client();
    let token = secret_token(
        &http,
        &sim,
        "c11e0000-0000-4000-8000-000000000001",
        "fixture-secret",
    )
    .await;
    let h = Harness { sim, http, token };
    assert_eq!(h.sim.tenant_id(), "5b0c1a9e-7d3f-4c2a-9e1b-2f6a8d4c0e11");
    assert_eq!(h.sim.user_count(), 5);
    let (_, page) = h
        .get_json("/v1.0/users?$select=id,otherMails,userType")
        .await;
    assert_eq!(page["value"].as_array().expect("value").len(), 5);
    assert_eq!(
        page["value"][2]["otherMails"],
        Value::Array(vec![]),
        "defaults fill non-nullable collections"
    );
    assert_eq!(page["value"][2]["userType"], "Member");
    let (status, body) = h
        .get_json(&format!(
            "/v1.0/users?$filter={}",
            url::form_urlencoded::byte_serialize(
                b"userPrincipalName eq 'ada.obrien@fixturecorp.com'"
            )
            .collect::<String>()
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["value"][0]["displayName"], "Ada O'Brien");
    let (status, body) = h
        .post_json(
            "/v1.0/invitations",
            &Harness::invitation(
                "a1f0c7a2-0000-4000-8000-000000000003",
                "grace@wingtipmail.net",
            ),
        )
        .await;
    assert_eq!(status, 400, "collides with the holder's proxyAddresses");
    assert_graph_error(&body, "BadRequest", "proxyAddresses");
    let (status, _) = h
        .post_json(
            "/v1.0/invitations",
            &Harness::invitation(
                "a1f0c7a2-0000-4000-8000-000000000001",
                "ada.obrien@fabrikam.com",
            ),
        )
        .await;
    assert_eq!(status, 201);
    let members = all_ids(
        &h,
        "/v1.0/groups/9f0e0000-0000-4000-8000-000000000001/transitiveMembers/microsoft.graph.user?$count=true",
    )
    .await;
    assert_eq!(members.len(), 3);
    assert_eq!(
        h.sim.case_of("linus@fixturecorp.com").as_deref(),
        Some("synced-on-premises-upn")
    );
    let (status, _) = h
        .get_json(
            "/v1.0/directory/federationConfigurations/graph.samlOrWsFedExternalDomainFederation",
        )
        .await;
    assert_eq!(
        status, 403,
        "the fixture app lacks IdentityProvider.Read.All"
    );
}

#[test]
fn tenant_file_errors_name_the_field() {
    let text = std::fs::read_to_string(fixture_path()).expect("fixture");
    let broken = text.replacen(
        "\"userPrincipalName\": \"ada.obrien@fixturecorp.com\"",
        "\"userPrincipalName\": 5",
        1,
    );
    let error = TenantFile::parse(&broken).expect_err("invalid");
    assert!(error.contains("users[0]"), "{error}");
    let unknown = text.replacen(
        "\"displayName\": \"Fixture Corp\"",
        "\"displayName\": \"Fixture Corp\", \"tenantName\": 1",
        1,
    );
    assert!(
        TenantFile::parse(&unknown)
            .expect_err("unknown field")
            .contains("tenantName")
    );
}

#[tokio::test]
async fn groups_are_found_by_display_name_or_id() {
    let h = Harness::generated(100).await;
    let filter: String =
        url::form_urlencoded::byte_serialize(b"displayName eq 'Partners \xe2\x80\x93 Pilot'")
            .collect();
    let (status, list) = h.get_json(&format!("/v1.0/groups?$filter={filter}")).await;
    assert_eq!(status, 200, "{list}");
    let groups = list["value"].as_array().expect("value");
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["securityEnabled"], true);
    let id = groups[0]["id"].as_str().expect("id");
    let (status, group) = h.get_json(&format!("/v1.0/groups/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(group["displayName"], "Partners – Pilot");
    let (_, all) = h.get_json("/v1.0/groups").await;
    assert_eq!(all["value"].as_array().expect("value").len(), 4);
    let (_, two) = h.get_json("/v1.0/groups?$top=2").await;
    assert_eq!(two["value"].as_array().expect("value").len(), 2);
    let filter: String = url::form_urlencoded::byte_serialize(b"userType eq 'Member'").collect();
    let (status, body) = h.get_json(&format!("/v1.0/groups?$filter={filter}")).await;
    assert_eq!(status, 400);
    assert_graph_error(&body, "Request_UnsupportedQuery", "userType");
    // How b2b-convert resolves a group's name: `$select=id,displayName`, the name quoted.
    let filter: String =
        url::form_urlencoded::byte_serialize("displayName eq 'Partners – Wave 2'".as_bytes())
            .collect();
    let (status, list) = h
        .get_json(&format!(
            "/v1.0/groups?$filter={filter}&$select=id,displayName"
        ))
        .await;
    assert_eq!(status, 200, "{list}");
    let found = list["value"].as_array().expect("value");
    assert_eq!(found.len(), 1);
    let mut keys: Vec<&String> = found[0].as_object().expect("object").keys().collect();
    keys.sort();
    assert_eq!(keys, ["displayName", "id"]);
    let (status, group) = h
        .get_json(&format!("/v1.0/groups/{id}?$select=displayName"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(group["displayName"], "Partners – Pilot");
    assert!(group.get("securityEnabled").is_none(), "{group}");
    let (status, body) = h.get_json("/v1.0/groups?$select=id,bogus").await;
    assert_eq!(status, 400);
    assert_graph_error(
        &body,
        "BadRequest",
        "'bogus' on type 'microsoft.graph.group'",
    );
    // `ne` on displayName is an advanced query, as for users.
    let filter: String = url::form_urlencoded::byte_serialize(b"displayName ne 'x'").collect();
    let (status, body) = h.get_json(&format!("/v1.0/groups?$filter={filter}")).await;
    assert_eq!(status, 400);
    assert_graph_error(&body, "Request_UnsupportedQuery", "ConsistencyLevel");
}

#[tokio::test]
async fn groups_sharing_a_name_are_all_found_and_quotes_are_doubled() {
    let mut tenant: Value =
        serde_json::from_str(include_str!("../fixtures/tenant.json")).expect("fixture parses");
    let groups = tenant["groups"].as_array_mut().expect("groups");
    for (n, name) in ["Partners", "Partners", "O'Brien's partners"]
        .iter()
        .enumerate()
    {
        groups.push(serde_json::json!({
            "id": format!("9f0e0000-0000-4000-8000-00000000010{n}"),
            "displayName": name,
            "members": [],
        }));
    }
    let file = TenantFile::parse(&tenant.to_string()).expect("tenant file");
    let h = Harness::start(SimSpec::inline(file).with_throttling(ThrottleConfig::disabled())).await;
    let named = |name: &str| {
        let filter: String = url::form_urlencoded::byte_serialize(
            format!("displayName eq '{}'", name.replace('\'', "''")).as_bytes(),
        )
        .collect();
        format!("/v1.0/groups?$filter={filter}&$select=id,displayName")
    };
    let (status, list) = h.get_json(&named("Partners")).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["value"].as_array().expect("value").len(), 2);
    let (status, list) = h.get_json(&named("O'Brien's partners")).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        list["value"][0]["id"],
        "9f0e0000-0000-4000-8000-000000000102"
    );
    let (_, list) = h.get_json(&named("Nobody's")).await;
    assert_eq!(list["value"].as_array().expect("value").len(), 0);
    // A quote left single is a syntax error.
    let filter: String =
        url::form_urlencoded::byte_serialize(b"displayName eq 'O'Brien's partners'").collect();
    let (status, _) = h.get_json(&format!("/v1.0/groups?$filter={filter}")).await;
    assert_eq!(status, 400);
}
