//! A user's direct groups (`memberOf`), app role assignments, removing a group member
//! (`DELETE .../members/{id}/$ref`), and the admin calls that change them behind the tool's back.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use b2b_convert_sim::{
    Endpoint, FaultPlan, GeneratedTenant, Sim, SimSpec, TenantFile, ThrottleConfig, WindowLimit,
};
use serde_json::{Value, json};

use super::{Harness, assert_graph_error, client, secret_token};

/// Every item of a collection, following `@odata.nextLink`, and how many pages it took.
async fn collect(h: &Harness, path: &str, headers: &[(&str, &str)]) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut pages = 0;
    let mut next = Some(h.url(path));
    while let Some(url) = next {
        let mut request = h.http.get(&url).bearer_auth(&h.token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("page");
        assert_eq!(response.status(), 200, "{url}");
        let page: Value = response.json().await.expect("json");
        items.extend(page["value"].as_array().expect("value").iter().cloned());
        next = page["@odata.nextLink"].as_str().map(str::to_owned);
        pages += 1;
    }
    (items, pages)
}

fn ids(items: &[Value]) -> BTreeSet<String> {
    items
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn member_of_agrees_with_the_groups_direct_members() {
    let users = 240;
    let h = Harness::generated(users).await;
    let tenant = GeneratedTenant::new(7, users);
    let mut expected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (group, _, _, _) in tenant.groups() {
        let (members, _) = collect(
            &h,
            &format!("/v1.0/groups/{group}/members/microsoft.graph.user?$select=id&$top=999"),
            &[],
        )
        .await;
        for member in ids(&members) {
            expected.entry(member).or_default().insert(group.clone());
        }
    }
    let mut in_some_group = 0;
    for index in 0..users {
        let id = tenant.id_of(index);
        let (groups, _) = collect(&h, &format!("/v1.0/users/{id}/memberOf"), &[]).await;
        for group in &groups {
            assert_eq!(group["@odata.type"], "#microsoft.graph.group", "{group}");
            assert!(group["displayName"].is_string(), "{group}");
        }
        let found = ids(&groups);
        assert_eq!(
            found,
            expected.get(&id).cloned().unwrap_or_default(),
            "user {index}"
        );
        in_some_group += usize::from(!found.is_empty());
        assert_eq!(
            h.sim
                .member_of(&id)
                .unwrap()
                .into_iter()
                .collect::<BTreeSet<_>>(),
            found
        );
    }
    assert!(
        in_some_group > 100,
        "most users are in a group: {in_some_group}"
    );

    // By UPN, with the group cast (no `@odata.type` on items), `$select` and `$count`.
    let upn = tenant.user(3).user_principal_name;
    let response = h
        .http
        .get(h.url(&format!(
            "/v1.0/users/{upn}/memberOf/microsoft.graph.group?$select=id,displayName&$count=true"
        )))
        .bearer_auth(&h.token)
        .header("ConsistencyLevel", "eventual")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["@odata.count"], 1, "{body}");
    let group = &body["value"][0];
    assert_eq!(group["displayName"], "Partners – Pilot");
    assert!(group.get("@odata.type").is_none() && group.get("mailEnabled").is_none());

    let (status, body) = h
        .get_json("/v1.0/users/00000000-0000-4000-8000-000000000000/memberOf")
        .await;
    assert_eq!(status, 404);
    assert_graph_error(&body, "Request_ResourceNotFound", "does not exist");
    let (status, body) = h
        .get_json(&format!("/v1.0/users/{upn}/memberOf?$select=bogus"))
        .await;
    assert_eq!(status, 400);
    assert_graph_error(&body, "BadRequest", "'bogus'");
    let (status, _) = h
        .get_json(&format!("/v1.0/users/{upn}/transitiveMemberOf"))
        .await;
    assert_eq!(status, 501, "transitiveMemberOf is not modelled");
    h.sim.shutdown().await;
}

#[tokio::test]
async fn app_role_assignments_have_graphs_shape_and_page() {
    let h = Harness::generated(200).await;
    let tenant = GeneratedTenant::new(7, 200);
    let index = (0..200)
        .find(|i| tenant.app_role_assignments(*i).len() == 3)
        .expect("a user with three assignments");
    let user = tenant.user(index);
    let (items, pages) = collect(
        &h,
        &format!("/v1.0/users/{}/appRoleAssignments?$top=1", user.id),
        &[],
    )
    .await;
    assert_eq!((items.len(), pages), (3, 3));
    for item in &items {
        assert_eq!(item["principalId"], user.id.as_str());
        assert_eq!(item["principalType"], "User");
        assert_eq!(item["principalDisplayName"], json!(user.display_name));
        assert!(item["deletedDateTime"].is_null());
        for key in [
            "id",
            "appRoleId",
            "resourceId",
            "resourceDisplayName",
            "createdDateTime",
        ] {
            assert!(item[key].is_string(), "{key} in {item}");
        }
        uuid::Uuid::parse_str(item["resourceId"].as_str().unwrap()).expect("a GUID");
    }
    assert_eq!(
        ids(&items),
        tenant
            .app_role_assignments(index)
            .into_iter()
            .map(|a| a.id)
            .collect()
    );

    let response = h
        .http
        .get(h.url(&format!(
            "/v1.0/users/{}/appRoleAssignments?$count=true&$select=id,resourceId",
            user.id
        )))
        .bearer_auth(&h.token)
        .header("ConsistencyLevel", "eventual")
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["@odata.count"], 3);
    let keys: BTreeSet<&str> = body["value"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, BTreeSet::from(["id", "resourceId"]));

    let none = (0..200)
        .find(|i| tenant.app_role_assignments(*i).is_empty())
        .expect("a user without assignments");
    let (status, body) = h
        .get_json(&format!(
            "/v1.0/users/{}/appRoleAssignments",
            tenant.id_of(none)
        ))
        .await;
    assert_eq!(
        (status, body["value"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    let (status, _) = h
        .get_json(&format!(
            "/v1.0/users/{}/appRoleAssignments?$filter=resourceId eq 1",
            user.id
        ))
        .await;
    assert_eq!(status, 400, "$filter here is not modelled, and says so");
    h.sim.shutdown().await;
}

#[tokio::test]
async fn memberships_need_the_documented_permissions() {
    let h = Harness::generated(30).await;
    let reader = &h.sim.apps()[1];
    let reader_token = secret_token(&h.http, &h.sim, &reader.client_id, &reader.secrets[0]).await;
    let user = GeneratedTenant::new(7, 30).id_of(0);
    for path in [
        format!("/v1.0/users/{user}/memberOf"),
        format!("/v1.0/users/{user}/appRoleAssignments"),
    ] {
        let response = h
            .http
            .get(h.url(&path))
            .bearer_auth(&reader_token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            403,
            "{path}: User.Read.All is not enough"
        );
        let body: Value = response.json().await.unwrap();
        assert_graph_error(
            &body,
            "Authorization_RequestDenied",
            "Insufficient privileges",
        );
    }
    let group = &GeneratedTenant::new(7, 30).groups()[0].0;
    let response = h
        .http
        .delete(h.url(&format!("/v1.0/groups/{group}/members/{user}/$ref")))
        .bearer_auth(&h.token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        403,
        "the tool's app may read memberships but not change them"
    );
    assert_eq!(h.sim.member_of(&user).unwrap(), vec![group.clone()]);
    h.sim.shutdown().await;
}

const GROUP_A: &str = "9f0e0000-0000-4000-8000-00000000000a";
const GROUP_B: &str = "9f0e0000-0000-4000-8000-00000000000b";
const PARENT: &str = "9f0e0000-0000-4000-8000-00000000000c";
const ADA: &str = "a1f0c7a2-0000-4000-8000-000000000001";
const GRACE: &str = "a1f0c7a2-0000-4000-8000-000000000002";

/// A small tenant: Ada in groups A, B and Parent (which nests A), Grace in A; an app that may
/// change group members.
fn membership_tenant() -> TenantFile {
    let file = json!({
        "tenantId": "5b0c1a9e-7d3f-4c2a-9e1b-2f6a8d4c0e22",
        "domains": [{"id": "fixturecorp.com", "isDefault": true}],
        "users": [
            {"id": ADA, "displayName": "Ada", "userPrincipalName": "ada@fixturecorp.com",
             "appRoleAssignments": [
                {"resourceId": "5e0c0000-0000-4000-8000-000000000001", "resourceDisplayName": "Portal"},
                {"id": "kept-id", "appRoleId": "5e0c0000-0000-4000-8000-0000000000aa",
                 "resourceId": "5e0c0000-0000-4000-8000-000000000002", "resourceDisplayName": "Wiki",
                 "createdDateTime": "2025-03-01T10:00:00Z"}
             ]},
            {"id": GRACE, "displayName": "Grace", "userPrincipalName": "grace@fixturecorp.com"}
        ],
        "groups": [
            {"id": GROUP_A, "displayName": "A", "members": [ADA, "grace@fixturecorp.com"]},
            {"id": GROUP_B, "displayName": "B", "members": [ADA]},
            {"id": PARENT, "displayName": "Parent", "members": [ADA], "memberGroups": [GROUP_A]}
        ],
        "applications": [{
            "clientId": "c11e0000-0000-4000-8000-000000000009", "displayName": "group admin",
            "secrets": ["admin-secret"],
            "roles": ["Directory.Read.All", "GroupMember.ReadWrite.All"]
        }]
    });
    TenantFile::parse(&file.to_string()).expect("a valid tenant file")
}

async fn delete(h: &Harness, path: &str) -> (u16, Value) {
    let response = h
        .http
        .delete(h.url(path))
        .bearer_auth(&h.token)
        .send()
        .await
        .expect("DELETE is answered");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn removing_a_member_changes_member_of_and_the_groups_members_alike() {
    let h = Harness::start(
        SimSpec::inline(membership_tenant()).with_throttling(ThrottleConfig::disabled()),
    )
    .await;
    let (groups, pages) = collect(&h, &format!("/v1.0/users/{ADA}/memberOf?$top=1"), &[]).await;
    assert_eq!(pages, 3);
    assert_eq!(
        ids(&groups),
        BTreeSet::from([GROUP_A, GROUP_B, PARENT].map(str::to_owned))
    );

    let (status, body) = delete(&h, &format!("/v1.0/groups/{GROUP_A}/members/{ADA}/$ref")).await;
    assert_eq!(status, 204, "{body}");
    let (groups, _) = collect(&h, &format!("/v1.0/users/{ADA}/memberOf"), &[]).await;
    assert_eq!(
        ids(&groups),
        BTreeSet::from([GROUP_B, PARENT].map(str::to_owned))
    );
    let (members, _) = collect(&h, &format!("/v1.0/groups/{GROUP_A}/members"), &[]).await;
    assert_eq!(ids(&members), BTreeSet::from([GRACE.to_owned()]));
    let (transitive, _) = collect(
        &h,
        &format!("/v1.0/groups/{PARENT}/transitiveMembers/microsoft.graph.user?$count=true"),
        &[("ConsistencyLevel", "eventual")],
    )
    .await;
    assert_eq!(
        ids(&transitive),
        BTreeSet::from([ADA, GRACE].map(str::to_owned)),
        "Ada is still a direct member of Parent"
    );

    let (status, body) = delete(&h, &format!("/v1.0/groups/{GROUP_A}/members/{ADA}/$ref")).await;
    assert_eq!(status, 404, "no longer a member");
    assert_graph_error(&body, "Request_ResourceNotFound", ADA);
    let (status, _) = delete(
        &h,
        &format!("/v1.0/groups/9f0e0000-0000-4000-8000-0000000000ff/members/{ADA}/$ref"),
    )
    .await;
    assert_eq!(status, 404, "unknown group");
    let (status, _) = delete(&h, &format!("/v1.0/groups/{GROUP_B}/members/{ADA}")).await;
    assert_eq!(
        status, 501,
        "deleting the member object itself is never modelled"
    );
    let (status, _) = h
        .get_json(&format!("/v1.0/groups/{GROUP_B}/members/{ADA}/$ref"))
        .await;
    assert_eq!(status, 405);

    // A tenant file's assignments, with ids filled in where the file has none.
    let (assignments, _) = collect(&h, &format!("/v1.0/users/{ADA}/appRoleAssignments"), &[]).await;
    assert_eq!(assignments.len(), 2);
    assert_eq!(
        assignments[0]["appRoleId"],
        "00000000-0000-0000-0000-000000000000"
    );
    assert_eq!(assignments[0]["id"].as_str().map(str::len), Some(43));
    assert_eq!(assignments[1]["id"], "kept-id");
    assert_eq!(assignments[1]["principalDisplayName"], "Ada");
    h.sim.shutdown().await;
}

#[tokio::test]
async fn a_removal_is_a_throttled_write_and_can_be_faulted() {
    let h = Harness::start(SimSpec::inline(membership_tenant())).await;
    h.sim.freeze_clock();
    h.sim.set_throttling(ThrottleConfig {
        app_tenant_writes: WindowLimit::new(1, Duration::from_secs(150)),
        ..ThrottleConfig::default()
    });
    let (status, _) = delete(&h, &format!("/v1.0/groups/{GROUP_A}/members/{ADA}/$ref")).await;
    assert_eq!(status, 204);
    let response = h
        .http
        .delete(h.url(&format!("/v1.0/groups/{GROUP_A}/members/{GRACE}/$ref")))
        .bearer_auth(&h.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(
        response.headers()["x-ms-throttle-information"],
        "WriteLimitExceeded"
    );
    assert_eq!(h.sim.member_of(GRACE).unwrap(), vec![GROUP_A.to_owned()]);

    h.sim.set_throttling(ThrottleConfig::disabled());
    h.sim.set_faults(
        FaultPlan::parse("member-of:503=1;app-role-assignments:504=1;remove-group-member:503=1")
            .unwrap(),
    );
    assert_eq!(
        h.get(&format!("/v1.0/users/{ADA}/memberOf")).await.status(),
        503
    );
    assert_eq!(
        h.get(&format!("/v1.0/users/{ADA}/appRoleAssignments"))
            .await
            .status(),
        504
    );
    let (status, _) = delete(&h, &format!("/v1.0/groups/{GROUP_A}/members/{GRACE}/$ref")).await;
    assert_eq!(status, 503);
    assert_eq!(
        h.sim.member_of(GRACE).unwrap(),
        vec![GROUP_A.to_owned()],
        "a faulted removal did nothing"
    );
    let removals = h.sim.counters().endpoint(Endpoint::RemoveGroupMember);
    assert_eq!(
        (
            removals.requests,
            removals.success,
            removals.throttled,
            removals.injected_status
        ),
        (3, 1, 1, 1)
    );
    h.sim.shutdown().await;
}

#[tokio::test]
async fn changes_behind_the_tools_back_through_the_handle_and_the_admin_api() {
    let sim = Sim::start(SimSpec::generated(60, 7).with_throttling(ThrottleConfig::disabled()))
        .await
        .unwrap();
    let tenant = GeneratedTenant::new(7, 60);
    let pilot = tenant.groups()[0].0.clone();
    let (first, second) = (tenant.id_of(0), tenant.id_of(1));
    sim.remove_group_member(&pilot, &first).unwrap();
    assert!(sim.member_of(&first).unwrap().is_empty());
    assert!(
        sim.remove_group_member(&pilot, &first).is_err(),
        "not a member any more"
    );
    assert!(matches!(
        sim.remove_group_member("9f0e0000-0000-4000-8000-0000000000ff", &first),
        Err(b2b_convert_sim::Error::UnknownGroup(_))
    ));

    let http = client();
    let admin = sim.admin_url();
    let response = http
        .post(format!("{admin}/groups/{pilot}/members/{second}/remove"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let again = http
        .post(format!("{admin}/groups/{pilot}/members/{second}/remove"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
    let token = secret_token(&http, &sim, sim.client_id(), sim.client_secret()).await;
    let members: Value = http
        .get(format!(
            "{}/v1.0/groups/{pilot}/members?$top=999",
            sim.graph_url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let member_ids: Vec<&str> = members["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        member_ids.len(),
        19,
        "18 users left, and the group's org contact"
    );
    assert!(!member_ids.contains(&first.as_str()) && !member_ids.contains(&second.as_str()));

    let index = (0..60)
        .find(|i| !tenant.app_role_assignments(*i).is_empty())
        .unwrap();
    let user = tenant.id_of(index);
    let before = sim.app_role_assignments(&user).unwrap();
    sim.remove_app_role_assignment(&user, &before[0].id)
        .unwrap();
    assert_eq!(
        sim.app_role_assignments(&user).unwrap().len(),
        before.len() - 1
    );
    let memberships: Value = http
        .get(format!("{admin}/users/{user}/memberships"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        memberships["appRoleAssignments"].as_array().unwrap().len(),
        before.len() - 1
    );
    if let Some(next) = before.get(1) {
        let response = http
            .post(format!(
                "{admin}/users/{user}/app-role-assignments/{}/remove",
                next.id
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            sim.app_role_assignments(&user).unwrap().len(),
            before.len() - 2
        );
    }
    assert_eq!(
        sim.counters().invitations_created,
        0,
        "admin calls are not Graph requests"
    );
    sim.shutdown().await;
}
