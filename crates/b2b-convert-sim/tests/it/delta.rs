//! `/users/delta` (NOTES §3.3): a full round, "sync from now", changes and removals since a
//! delta link, expired tokens and the query options delta refuses.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use super::{Harness, assert_graph_error, secret_token};

/// Follows a round from `url` to its delta link: the entries, and the delta link.
async fn round(h: &Harness, url: &str) -> (Vec<Value>, String) {
    let mut entries = Vec::new();
    let mut next = url.to_owned();
    loop {
        let response = h
            .http
            .get(&next)
            .bearer_auth(&h.token)
            .send()
            .await
            .expect("page");
        assert_eq!(response.status(), 200, "{next}");
        let page: Value = response.json().await.expect("json");
        entries.extend(page["value"].as_array().expect("value").iter().cloned());
        if let Some(link) = page["@odata.nextLink"].as_str() {
            assert!(
                link.contains("$skiptoken=") && !link.contains("$select"),
                "{link}"
            );
            link.clone_into(&mut next);
        } else {
            let link = page["@odata.deltaLink"]
                .as_str()
                .expect("a delta link at the end");
            assert!(link.contains("$deltatoken="), "{link}");
            return (entries, link.to_owned());
        }
    }
}

#[tokio::test]
async fn a_full_round_then_only_the_changes_and_removals_since_its_delta_link() {
    let h = Harness::generated(1_500).await;
    let (everyone, link) = round(&h, &h.url("/v1.0/users/delta?$select=id,displayName")).await;
    let ids: HashSet<_> = everyone.iter().map(|u| u["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1_500, "every user once");
    assert!(
        everyone
            .iter()
            .all(|u| u.get("displayName").is_some() && u.get("mail").is_none())
    );

    let (nothing, link) = round(&h, &link).await;
    assert!(nothing.is_empty(), "no change yet: {nothing:?}");

    assert_eq!(h.sim.rename_users(5, 100), 15);
    let gone = h.sim.user_at(7).unwrap();
    let purged = h.sim.user_at(8).unwrap();
    h.sim.delete_user(&gone.id, false).unwrap();
    h.sim.delete_user(&purged.id, true).unwrap();
    let (changes, link) = round(&h, &link).await;
    assert_eq!(changes.len(), 17, "{changes:?}");
    let renamed: Vec<_> = changes
        .iter()
        .filter(|c| c.get("@removed").is_none())
        .collect();
    assert_eq!(renamed.len(), 15);
    for user in renamed {
        let now = h.sim.user(user["id"].as_str().unwrap()).unwrap();
        assert_eq!(user["displayName"].as_str(), now.display_name.as_deref());
        assert!(now.display_name.unwrap().ends_with("(renamed)"));
    }
    let removed = |id: &str| {
        changes
            .iter()
            .find(|c| c["id"] == id)
            .map(|c| c["@removed"]["reason"].clone())
    };
    assert_eq!(removed(&gone.id), Some("changed".into()));
    assert_eq!(removed(&purged.id), Some("deleted".into()));
    let (status, body) = h.get_json(&format!("/v1.0/users/{}", gone.id)).await;
    assert_eq!(status, 404, "{body}");

    let (nothing, _) = round(&h, &link).await;
    assert!(nothing.is_empty(), "changes are reported once: {nothing:?}");
}

#[tokio::test]
async fn sync_from_now_reports_only_later_changes_and_an_old_link_is_gone() {
    let h = Harness::generated(300).await;
    h.sim.rename_users(0, 10);
    let (entries, link) = round(
        &h,
        &h.url("/v1.0/users/delta?$select=id,displayName&$deltatoken=latest"),
    )
    .await;
    assert!(entries.is_empty(), "latest: no users, only a link");
    h.sim.rename_users(1, 100);
    let (changes, _) = round(&h, &link).await;
    assert_eq!(changes.len(), 3, "users 1, 101, 201 only");

    h.sim.advance_clock(Duration::from_secs(8 * 24 * 3600));
    let token = secret_token(&h.http, &h.sim, h.sim.client_id(), h.sim.client_secret()).await;
    let response = h.http.get(&link).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 410, "a delta token lives seven days");
    let body: Value = response.json().await.unwrap();
    assert_graph_error(&body, "syncStateNotFound", "synchronized again");
}

#[tokio::test]
async fn delta_refuses_what_graph_refuses() {
    let h = Harness::generated(10).await;
    for (query, code) in [
        ("$top=5", "Request_UnsupportedQuery"),
        ("$orderby=displayName", "Request_UnsupportedQuery"),
        (
            "$filter=startsWith(userPrincipalName,'a')",
            "Request_UnsupportedQuery",
        ),
        ("$select=id&$skiptoken=abc", "Request_UnsupportedQuery"),
    ] {
        let (status, body) = h.get_json(&format!("/v1.0/users/delta?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_graph_error(&body, code, "");
    }
    let (status, body) = h.get_json("/v1.0/users/delta?$deltatoken=not-ours").await;
    assert_eq!(status, 410, "{body}");
}
