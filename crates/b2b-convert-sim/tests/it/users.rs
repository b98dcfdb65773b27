//! `/users`: paging, `$select`, `$top`, `$filter`, advanced queries, get and PATCH.

use std::collections::HashSet;

use b2b_convert_sim::UserCase;
use serde_json::{Value, json};

use super::{Harness, assert_graph_error};

#[tokio::test]
async fn paging_returns_every_one_of_100k_users_exactly_once() {
    let h = Harness::generated(100_000).await;
    let mut seen = HashSet::new();
    let mut next = Some(h.url("/v1.0/users?$select=id&$top=999"));
    let mut pages = 0;
    while let Some(url) = next {
        let response = h
            .http
            .get(&url)
            .bearer_auth(&h.token)
            .send()
            .await
            .expect("page");
        assert_eq!(response.status(), 200);
        let page: Value = response.json().await.expect("json");
        for user in page["value"].as_array().expect("value") {
            assert!(
                seen.insert(user["id"].as_str().expect("id").to_owned()),
                "duplicate {user}"
            );
        }
        next = page["@odata.nextLink"].as_str().map(str::to_owned);
        if let Some(link) = &next {
            assert!(
                link.starts_with(h.sim.graph_url()) && link.contains("$skiptoken="),
                "{link}"
            );
        }
        pages += 1;
    }
    assert_eq!(seen.len(), 100_000);
    assert_eq!(pages, 101, "999 per page");
}

#[tokio::test]
async fn default_page_is_100_and_top_is_bounded() {
    let h = Harness::generated(250).await;
    let (_, page) = h.get_json("/v1.0/users").await;
    assert_eq!(page["value"].as_array().expect("value").len(), 100);
    assert!(page["@odata.nextLink"].is_string());
    let (status, body) = h.get_json("/v1.0/users?$top=1000").await;
    assert_eq!(status, 400);
    assert_graph_error(&body, "Request_BadRequest", "between 1 and 999");
    let (status, body) = h.get_json("/v1.0/users?$select=id,favouriteColour").await;
    assert_eq!(status, 400);
    assert_graph_error(&body, "BadRequest", "favouriteColour");
    let (status, body) = h.get_json("/v1.0/users?$skip=10").await;
    assert_eq!(status, 400);
    assert_graph_error(&body, "Request_BadRequest", "$skip");
    let (status, body) = h.get_json("/v1.0/users?$skiptoken=garbage").await;
    assert_eq!(status, 400);
    assert_graph_error(&body, "Directory_ExpiredPageToken", "page token");
}

#[tokio::test]
async fn filters_the_tool_uses_select_the_right_users() {
    let h = Harness::generated(2000).await;
    let all_pages = |filter: &str, eventual: bool| {
        let url = h.url(&format!("/v1.0/users?$top=999&$select=id,userType,onPremisesSyncEnabled,accountEnabled,userPrincipalName,mail&$filter={}", urlencode(filter)));
        let url = if eventual {
            format!("{url}&$count=true")
        } else {
            url
        };
        let http = h.http.clone();
        let token = h.token.clone();
        async move {
            let mut users = Vec::new();
            let mut next = Some(url);
            while let Some(link) = next {
                let mut request = http.get(&link).bearer_auth(&token);
                if eventual {
                    request = request.header("ConsistencyLevel", "eventual");
                }
                let page: Value = request
                    .send()
                    .await
                    .expect("page")
                    .json()
                    .await
                    .expect("json");
                assert!(page["value"].is_array(), "{page}");
                users.extend(page["value"].as_array().expect("value").iter().cloned());
                next = page["@odata.nextLink"].as_str().map(str::to_owned);
            }
            users
        }
    };
    let synced = all_pages(
        "userType eq 'Member' and onPremisesSyncEnabled eq true",
        false,
    )
    .await;
    assert!(!synced.is_empty());
    assert!(
        synced
            .iter()
            .all(|u| u["userType"] == "Member" && u["onPremisesSyncEnabled"] == true)
    );
    let disabled = all_pages("accountEnabled eq false", false).await;
    assert!(!disabled.is_empty() && disabled.iter().all(|u| u["accountEnabled"] == false));
    let first = h.sim.user_at(0).expect("user 0");
    let two = h.sim.user_at(1).expect("user 1");
    let by_id = all_pages(&format!("id in ('{}','{}')", first.id, two.id), false).await;
    assert_eq!(by_id.len(), 2);
    let exact = all_pages(
        &format!(
            "userPrincipalName eq '{}' or userPrincipalName eq 'it''s@contoso.com'",
            first.user_principal_name
        ),
        false,
    )
    .await;
    assert_eq!(exact.len(), 1);
    let not_guests = all_pages("userType ne 'Guest'", true).await;
    assert!(not_guests.len() > 1000 && not_guests.iter().all(|u| u["userType"] != "Guest"));
    let fabrikam = all_pages("endsWith(mail,'@fabrikam.com')", true).await;
    assert!(
        !fabrikam.is_empty()
            && fabrikam.iter().all(|u| u["mail"]
                .as_str()
                .is_some_and(|m| m.ends_with("@fabrikam.com")))
    );
}

/// A `startsWith(userPrincipalName,…)` partition (what a partitioned discovery reads) holds
/// exactly the users whose UPN has the prefix, whatever its case, also users changed since
/// they were generated, and the partitions of every first character add up to the tenant.
#[tokio::test]
async fn upn_prefix_partitions_hold_exactly_the_users_with_that_prefix() {
    let h = Harness::generated(3000).await;
    let changed = h
        .sim
        .find_user(UserCase::CloudMailExternal)
        .expect("a cloud user");
    let (status, body) = h
        .patch_json(
            &format!("/v1.0/users/{}", changed.id),
            &json!({"mail": changed.mail}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let list = |filter: Option<String>| {
        let http = h.http.clone();
        let token = h.token.clone();
        let mut url = h.url("/v1.0/users?$select=id,userPrincipalName&$top=999");
        if let Some(filter) = filter {
            url = format!("{url}&$filter={}", urlencode(&filter));
        }
        async move {
            let mut users = Vec::new();
            let mut next = Some(url);
            while let Some(link) = next {
                let page: Value = http
                    .get(&link)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .expect("page")
                    .json()
                    .await
                    .expect("json");
                assert!(page["value"].is_array(), "{page}");
                for user in page["value"].as_array().expect("value") {
                    users.push((
                        user["id"].as_str().expect("id").to_owned(),
                        user["userPrincipalName"].as_str().expect("upn").to_owned(),
                    ));
                }
                next = page["@odata.nextLink"].as_str().map(str::to_owned);
            }
            users
        }
    };
    let everyone = list(None).await;
    let mut partitioned = HashSet::new();
    for first in ('a'..='z').chain('0'..='9') {
        for prefix in [first.to_string(), first.to_ascii_uppercase().to_string()] {
            let part = list(Some(format!("startsWith(userPrincipalName,'{prefix}')"))).await;
            let expected: Vec<_> = everyone
                .iter()
                .filter(|(_, upn)| upn.to_lowercase().starts_with(&prefix.to_lowercase()))
                .cloned()
                .collect();
            assert_eq!(part, expected, "prefix {prefix}");
            if prefix.chars().all(|c| !c.is_ascii_uppercase()) {
                partitioned.extend(part);
            }
        }
    }
    assert_eq!(partitioned.len(), everyone.len());
    let two = &everyone[0].1[..2];
    let part = list(Some(format!("startsWith(userPrincipalName,'{two}')"))).await;
    assert!(part.iter().all(|(_, upn)| upn.starts_with(two)) && !part.is_empty());
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn advanced_queries_need_consistency_level_and_count() {
    let h = Harness::generated(300).await;
    let (status, body) = h
        .get_json(&format!(
            "/v1.0/users?$filter={}",
            urlencode("userType ne 'Guest'")
        ))
        .await;
    assert_eq!(status, 400);
    assert_graph_error(
        &body,
        "Request_UnsupportedQuery",
        "ConsistencyLevel:eventual",
    );
    let (status, body) = h
        .get_json(&format!(
            "/v1.0/users?$filter={}",
            urlencode("onPremisesDistinguishedName eq 'x'")
        ))
        .await;
    assert_eq!(status, 400, "unsupported filters are refused, not ignored");
    assert_graph_error(
        &body,
        "Request_UnsupportedQuery",
        "onPremisesDistinguishedName",
    );
    let response = h
        .http
        .get(h.url(&format!(
            "/v1.0/users?$count=true&$top=5&$filter={}",
            urlencode("assignedLicenses/$count eq 0")
        )))
        .bearer_auth(&h.token)
        .header("ConsistencyLevel", "eventual")
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert!(body["@odata.count"].as_u64().expect("count") > 100);
    let (status, body) = h.get_json("/v1.0/users/$count").await;
    assert_eq!(status, 400);
    assert_graph_error(
        &body,
        "Request_BadRequest",
        "$count is not currently supported",
    );
    let (_, no_header) = h.get_json("/v1.0/users?$count=true&$top=1").await;
    assert!(
        no_header.get("@odata.count").is_none(),
        "$count=true is ignored without the header"
    );
}

#[tokio::test]
async fn get_user_by_id_or_upn_with_select() {
    let h = Harness::generated(100).await;
    let user = h.sim.user_at(42).expect("user");
    let (status, body) = h
        .get_json(&format!(
            "/v1.0/users/{}?$select=id,externalUserState,otherMails",
            user.id
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], user.id.as_str());
    assert!(
        body.get("displayName").is_none(),
        "only selected properties: {body}"
    );
    let (status, body) = h
        .get_json(&format!("/v1.0/users/{}", user.user_principal_name))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], user.id.as_str());
}

#[tokio::test]
async fn patch_mail_updates_the_user_and_follows_the_service_rules() {
    let h = Harness::generated(3000).await;
    let cloud = h.sim.find_user(UserCase::CloudOtherMailOnly).expect("case");
    let address = cloud.other_mails[0].clone();
    let (status, body) = h
        .patch_json(
            &format!("/v1.0/users/{}", cloud.id),
            &json!({"mail": address}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let after = h.sim.user(&cloud.id).expect("user");
    assert_eq!(after.mail.as_deref(), Some(address.as_str()));
    assert_eq!(
        after.proxy_addresses.first(),
        Some(&format!("SMTP:{address}"))
    );

    let synced = h.sim.find_user(UserCase::SyncedConvertible).expect("case");
    let (status, body) = h
        .patch_json(
            &format!("/v1.0/users/{}", synced.id),
            &json!({"mail": "x.1@fabrikam.com"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_graph_error(&body, "Request_BadRequest", "on-premises mastered");

    let mailbox = h.sim.find_user(UserCase::ExchangeMailbox).expect("case");
    let (status, body) = h
        .patch_json(
            &format!("/v1.0/users/{}", mailbox.id),
            &json!({"mail": mailbox.other_mails[0]}),
        )
        .await;
    assert_eq!(status, 400);
    assert_graph_error(&body, "Request_BadRequest", "external service");

    let collision = h
        .sim
        .find_user(UserCase::ProxyAddressCollision)
        .expect("case");
    let other = h.sim.find_user(UserCase::CloudNoAddress).expect("case");
    let (status, body) = h
        .patch_json(
            &format!("/v1.0/users/{}", other.id),
            &json!({"mail": collision.mail}),
        )
        .await;
    assert_eq!(status, 400);
    assert_graph_error(&body, "Request_BadRequest", "proxyAddresses");

    let (status, body) = h
        .patch_json(
            &format!("/v1.0/users/{}", other.id),
            &json!({"externalUserState": "Accepted"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_graph_error(&body, "Request_BadRequest", "read-only");
}

/// The answers of a million-user tenant. That it starts without per-user work is a claim about
/// speed, for the benchmarks (`USERS=1000000 bench/plan.sh` starts one), not for a test.
#[tokio::test]
async fn a_million_user_tenant_serves_any_user() {
    let h = Harness::generated(1_000_000).await;
    let last = h.sim.user_at(999_999).expect("the last user exists");
    assert!(h.sim.user_at(1_000_000).is_none());
    let (status, body) = h
        .get_json(&format!(
            "/v1.0/users/{}?$select=id,userPrincipalName",
            last.id
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["userPrincipalName"], last.user_principal_name.as_str());
    let (status, page) = h.get_json("/v1.0/users?$select=id&$top=999").await;
    assert_eq!(status, 200);
    assert_eq!(page["value"].as_array().expect("value").len(), 999);
}

#[tokio::test]
async fn names_and_languages_are_served_by_default_and_filterable() {
    let h = Harness::generated(2000).await;
    let (status, page) = h.get_json("/v1.0/users?$top=999").await;
    assert_eq!(status, 200, "{page}");
    let users = page["value"].as_array().expect("value");
    let language = |u: &Value| u["preferredLanguage"].as_str().map(str::to_owned);
    for expected in ["en-US", "fr-FR", "de-DE", "ja-JP"] {
        assert!(
            users
                .iter()
                .any(|u| language(u).as_deref() == Some(expected)),
            "some user prefers {expected}"
        );
    }
    assert!(
        users
            .iter()
            .any(|u| u.get("preferredLanguage") == Some(&Value::Null)),
        "some users have no language, served as null"
    );
    assert!(
        users
            .iter()
            .any(|u| u["givenName"].is_null() && u["surname"].is_null()),
        "some users have no names"
    );
    assert!(
        users
            .iter()
            .any(|u| u["givenName"].is_string() && u["surname"].is_string())
    );

    let (status, french) = h
        .get_json(&format!(
            "/v1.0/users?$top=999&$select=id,givenName,surname,preferredLanguage&$filter={}",
            urlencode("preferredLanguage eq 'fr-FR'")
        ))
        .await;
    assert_eq!(status, 200, "{french}");
    let french = french["value"].as_array().expect("value");
    assert!(!french.is_empty() && french.iter().all(|u| u["preferredLanguage"] == "fr-FR"));
    assert!(french[0].get("givenName").is_some(), "selectable");
    let (status, none) = h
        .get_json(&format!(
            "/v1.0/users?$top=999&$select=id,preferredLanguage&$filter={}",
            urlencode("preferredLanguage eq null")
        ))
        .await;
    assert_eq!(status, 200, "{none}");
    assert!(
        none["value"]
            .as_array()
            .is_some_and(|v| !v.is_empty() && v.iter().all(|u| u["preferredLanguage"].is_null()))
    );
}
