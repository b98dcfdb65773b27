//! Org contacts: `GET /contacts` (paging, `$select`, what is not modelled, its permission),
//! contacts among a group's members, and the addresses they hold refused to users (the `mail`
//! PATCH and the invitation).

use std::collections::HashSet;

use b2b_convert_sim::{SimSpec, TenantFile, ThrottleConfig, UserCase};
use serde_json::{Value, json};

use super::{Harness, assert_graph_error, secret_token};

/// Every contact of a listing, following `@odata.nextLink`.
async fn all_contacts(h: &Harness, path: &str) -> Vec<Value> {
    let mut contacts = Vec::new();
    let mut next = Some(h.url(path));
    while let Some(url) = next {
        let page: Value = h
            .http
            .get(&url)
            .bearer_auth(&h.token)
            .send()
            .await
            .expect("page")
            .json()
            .await
            .expect("json");
        contacts.extend(page["value"].as_array().expect("value").iter().cloned());
        next = page["@odata.nextLink"].as_str().map(str::to_owned);
    }
    contacts
}

#[tokio::test]
async fn contacts_are_listed_page_by_page_and_hold_the_collision_users_addresses() {
    let h = Harness::generated(2_000).await;
    let contacts = all_contacts(
        &h,
        "/v1.0/contacts?$select=id,displayName,mail,proxyAddresses&$top=7",
    )
    .await;
    let colliding: Vec<u64> = (0..2_000)
        .filter(|i| {
            h.sim
                .case_of(&h.sim.user_at(*i).expect("user").id)
                .as_deref()
                == Some("contact-address-collision")
        })
        .collect();
    assert!(colliding.len() > 5, "{}", colliding.len());
    assert_eq!(contacts.len(), 3 + colliding.len());
    let ids: HashSet<&str> = contacts.iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(ids.len(), contacts.len(), "each contact once");
    let mut keys: Vec<&String> = contacts[0].as_object().expect("object").keys().collect();
    keys.sort();
    assert_eq!(keys, ["displayName", "id", "mail", "proxyAddresses"]);
    let mails: HashSet<String> = contacts
        .iter()
        .filter_map(|c| c["mail"].as_str().map(str::to_lowercase))
        .collect();
    for i in colliding {
        let user = h.sim.user_at(i).expect("user");
        assert!(
            mails.contains(&user.other_mails[0].to_lowercase()),
            "{user:?}"
        );
    }
    let first = h
        .sim
        .find_user(UserCase::ContactAddressCollision)
        .expect("case");
    assert_eq!(first.mail, None);

    for (path, code, part) in [
        (
            "/v1.0/contacts?$select=id,bogus",
            "BadRequest",
            "'bogus' on type 'microsoft.graph.orgContact'",
        ),
        (
            "/v1.0/contacts?$filter=mail%20eq%20'x'",
            "Request_UnsupportedQuery",
            "not modelled",
        ),
        (
            "/v1.0/contacts?$top=1000",
            "Request_BadRequest",
            "between 1 and 999",
        ),
    ] {
        let (status, body) = h.get_json(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_graph_error(&body, code, part);
    }
    let (status, _) = h.get_json("/v1.0/contacts/x").await;
    assert_eq!(status, 501);
    // OrgContact.Read.All or Directory.Read.All: the reader app (User.Read.All) may not.
    let reader = &h.sim.apps()[1];
    let token = secret_token(&h.http, &h.sim, &reader.client_id, &reader.secrets[0]).await;
    let response = h
        .http
        .get(h.url("/v1.0/contacts"))
        .bearer_auth(token)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn contacts_are_group_members_but_not_users() {
    let h = Harness::generated(1_000).await;
    let groups = b2b_convert_sim::GeneratedTenant::new(7, 1_000).groups();
    let (pilot, all_partners) = (&groups[0].0, &groups[3].0);
    let types = |page: &Value| -> Vec<String> {
        page["value"]
            .as_array()
            .expect("value")
            .iter()
            .map(|m| m["@odata.type"].as_str().unwrap_or("none").to_owned())
            .collect()
    };
    let (_, direct) = h
        .get_json(&format!("/v1.0/groups/{pilot}/members?$top=999"))
        .await;
    let direct = types(&direct);
    assert_eq!(direct.len(), 21, "20 users and a contact");
    assert_eq!(
        direct
            .iter()
            .filter(|t| *t == "#microsoft.graph.orgContact")
            .count(),
        1
    );
    let (_, cast) = h
        .get_json(&format!(
            "/v1.0/groups/{pilot}/members/microsoft.graph.user?$top=999"
        ))
        .await;
    assert_eq!(cast["value"].as_array().expect("value").len(), 20);
    // "All partners" reaches both contacts through its nested groups, each once.
    let transitive = all_contacts(
        &h,
        &format!("/v1.0/groups/{all_partners}/transitiveMembers?$top=999"),
    )
    .await;
    let contacts: Vec<&Value> = transitive
        .iter()
        .filter(|m| m["@odata.type"] == "#microsoft.graph.orgContact")
        .collect();
    assert_eq!(contacts.len(), 2);
    assert_eq!(contacts[0]["displayName"], "Fabrikam partner desk");
}

#[tokio::test]
async fn an_address_a_contact_holds_is_refused_to_a_users_mail_and_invitation() {
    let h = Harness::generated(1_000).await;
    let user = h
        .sim
        .find_user(UserCase::ContactAddressCollision)
        .expect("case");
    let address = user.other_mails[0].clone();
    let (status, body) = h
        .patch_json(
            &format!("/v1.0/users/{}", user.id),
            &json!({ "mail": address.to_uppercase() }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_graph_error(
        &body,
        "Request_BadRequest",
        "Another object with the same value for property proxyAddresses already exists.",
    );
    assert_eq!(h.sim.user(&user.id).expect("user").mail, None, "unchanged");
    // A plain other-mail user's PATCH goes through (the contact is what refuses).
    let other = h.sim.find_user(UserCase::CloudOtherMailOnly).expect("case");
    let (status, body) = h
        .patch_json(
            &format!("/v1.0/users/{}", other.id),
            &json!({ "mail": other.other_mails[0] }),
        )
        .await;
    assert_eq!(status, 204, "{body}");

    // A tenant-file user whose mail a contact holds too: the invitation is refused.
    let mut tenant: Value =
        serde_json::from_str(include_str!("../fixtures/tenant.json")).expect("fixture");
    tenant["contacts"] = json!([{
        "id": "c0c0c0c0-0000-4000-8000-000000000001",
        "displayName": "Ada at Fabrikam (contact)",
        "mail": "ada.contact@fabrikam.com",
        "proxyAddresses": ["SMTP:ada.contact@fabrikam.com", "smtp:ada.obrien@fabrikam.com"],
    }]);
    tenant["applications"][0]["roles"]
        .as_array_mut()
        .expect("roles")
        .push(json!("OrgContact.Read.All"));
    tenant["groups"][0]["members"]
        .as_array_mut()
        .expect("members")
        .push(json!("c0c0c0c0-0000-4000-8000-000000000001"));
    let file = TenantFile::parse(&tenant.to_string()).expect("tenant file");
    let h = Harness::start(SimSpec::inline(file).with_throttling(ThrottleConfig::disabled())).await;
    let (status, body) = h
        .post_json(
            "/v1.0/invitations",
            &Harness::invitation(
                "a1f0c7a2-0000-4000-8000-000000000001",
                "ada.obrien@fabrikam.com",
            ),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_graph_error(&body, "BadRequest", "proxyAddresses already exists");
    let (status, list) = h.get_json("/v1.0/contacts").await;
    assert_eq!(status, 200);
    assert_eq!(list["value"][0]["displayName"], "Ada at Fabrikam (contact)");
    let (_, members) = h
        .get_json("/v1.0/groups/9f0e0000-0000-4000-8000-000000000001/members")
        .await;
    assert!(
        members["value"]
            .as_array()
            .expect("value")
            .iter()
            .any(|m| m["@odata.type"] == "#microsoft.graph.orgContact"),
        "{members}"
    );
}
