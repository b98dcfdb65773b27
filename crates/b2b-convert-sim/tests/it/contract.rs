//! Contract tests: the simulator's JSON property names and types against the official v1.0
//! CSDL subset (`tests/fixtures/graph/csdl-subset.json`), and Graph's error/header conventions.

use std::collections::HashMap;

use b2b_convert_sim::UserCase;
use b2b_convert_sim::model::USER_PROPERTIES;
use b2b_convert_sim::odata::CONVERSION_STAMP;
use serde_json::{Value, json};

use super::{Harness, assert_graph_error};

/// `(type, nullable)` per property, by type name, with base types folded in.
struct Csdl {
    types: HashMap<String, HashMap<String, (String, bool)>>,
}

/// User properties Graph returns by default (NOTES §3) that the CSDL subset omits.
const DEFAULT_USER_PROPERTIES_OUTSIDE_SUBSET: &[(&str, &str, bool)] = &[
    ("businessPhones", "Collection(Edm.String)", false),
    ("givenName", "Edm.String", true),
    ("jobTitle", "Edm.String", true),
    ("mobilePhone", "Edm.String", true),
    ("officeLocation", "Edm.String", true),
    ("preferredLanguage", "Edm.String", true),
    ("surname", "Edm.String", true),
];

impl Csdl {
    fn load() -> Self {
        let text = include_str!("../fixtures/graph/csdl-subset.json");
        let doc: Value = serde_json::from_str(text).expect("CSDL subset parses");
        let raw: HashMap<String, &Value> = doc["types"]
            .as_array()
            .expect("types")
            .iter()
            .map(|t| {
                (
                    t["name"]
                        .as_str()
                        .expect("name")
                        .replace("microsoft.graph.", "graph."),
                    t,
                )
            })
            .collect();
        let mut types = HashMap::new();
        for name in raw.keys() {
            let mut props = HashMap::new();
            let mut current = Some(name.clone());
            while let Some(type_name) = current {
                let t = raw[&type_name];
                for list in [
                    "properties",
                    "additionalRelevantProperties",
                    "navigationProperties",
                ] {
                    for p in t[list].as_array().into_iter().flatten() {
                        let nullable = p["Nullable"].as_str() != Some("false");
                        props.insert(
                            p["Name"].as_str().expect("Name").to_owned(),
                            (p["Type"].as_str().expect("Type").to_owned(), nullable),
                        );
                    }
                }
                current = t["baseType"].as_str().map(str::to_owned);
            }
            types.insert(name.clone(), props);
        }
        let user = types.get_mut("graph.user").expect("user type");
        for (name, ty, nullable) in DEFAULT_USER_PROPERTIES_OUTSIDE_SUBSET {
            user.entry((*name).to_owned())
                .or_insert(((*ty).to_owned(), *nullable));
        }
        Self { types }
    }

    /// Checks `value` against CSDL type `ty`; returns the problems found.
    fn check(
        &self,
        ty: &str,
        value: &Value,
        nullable: bool,
        path: &str,
        problems: &mut Vec<String>,
    ) {
        if value.is_null() {
            if !nullable {
                problems.push(format!("{path}: null but {ty} is not nullable"));
            }
            return;
        }
        if let Some(inner) = ty
            .strip_prefix("Collection(")
            .and_then(|t| t.strip_suffix(')'))
        {
            match value.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.check(inner, item, true, &format!("{path}[{i}]"), problems);
                    }
                }
                None => problems.push(format!("{path}: expected an array for {ty}, got {value}")),
            }
            return;
        }
        let ok = match ty {
            "Edm.String" => value.is_string(),
            "Edm.Boolean" => value.is_boolean(),
            "Edm.Guid" => value
                .as_str()
                .is_some_and(|s| uuid::Uuid::parse_str(s).is_ok()),
            "Edm.DateTimeOffset" => value.as_str().is_some_and(|s| {
                time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                    .is_ok()
            }),
            "graph.authenticationProtocol" => value
                .as_str()
                .is_some_and(|s| ["wsFed", "saml", "unknownFutureValue"].contains(&s)),
            complex => {
                self.check_object(complex, value, path, problems);
                true
            }
        };
        if !ok {
            problems.push(format!("{path}: {value} is not a valid {ty}"));
        }
    }

    fn check_object(&self, ty: &str, value: &Value, path: &str, problems: &mut Vec<String>) {
        let Some(props) = self.types.get(ty) else {
            problems.push(format!("{path}: type {ty} is not in the CSDL subset"));
            return;
        };
        let Some(object) = value.as_object() else {
            problems.push(format!("{path}: expected an object of {ty}, got {value}"));
            return;
        };
        for (key, field) in object {
            if key.starts_with("@odata.") {
                continue;
            }
            match props.get(key) {
                Some((field_ty, nullable)) => self.check(
                    field_ty,
                    field,
                    *nullable,
                    &format!("{path}.{key}"),
                    problems,
                ),
                None => problems.push(format!("{path}.{key}: not a property of {ty}")),
            }
        }
    }

    fn assert_conforms(&self, ty: &str, value: &Value) {
        let mut problems = Vec::new();
        self.check_object(ty, value, ty, &mut problems);
        assert!(
            problems.is_empty(),
            "CSDL mismatches:\n{}",
            problems.join("\n")
        );
    }
}

#[test]
fn the_checker_catches_wrong_names_types_and_nulls() {
    let csdl = Csdl::load();
    let mut problems = Vec::new();
    csdl.check_object(
        "graph.user",
        &json!({"id": "x", "mail": 5, "otherMails": null, "accountEnabled": "yes", "notAProperty": 1, "assignedPlans": [{"servicePlanId": "nope"}]}),
        "user",
        &mut problems,
    );
    let text = problems.join("\n");
    for expected in [
        "user.mail",
        "user.otherMails",
        "user.accountEnabled",
        "user.notAProperty",
        "servicePlanId",
    ] {
        assert!(
            text.contains(expected),
            "{expected} not flagged in:\n{text}"
        );
    }
}

/// The user without the one property the simulator serves beyond v1.0: Graph beta's conversion
/// stamp, documented in docs/simulator.md.
fn v1_only(user: &Value) -> Value {
    let mut user = user.clone();
    if let Some(object) = user.as_object_mut() {
        object.remove(CONVERSION_STAMP);
    }
    user
}

#[tokio::test]
async fn users_of_every_case_match_the_csdl() {
    let h = Harness::generated(3000).await;
    let csdl = Csdl::load();
    let select = USER_PROPERTIES.join(",");
    let (status, page) = h
        .get_json(&format!("/v1.0/users?$top=999&$select={select}"))
        .await;
    assert_eq!(status, 200);
    let users = page["value"].as_array().expect("value");
    assert_eq!(users.len(), 999);
    for user in users {
        let user = &v1_only(user);
        csdl.assert_conforms("graph.user", user);
        for collection in [
            "otherMails",
            "proxyAddresses",
            "assignedLicenses",
            "assignedPlans",
            "provisionedPlans",
            "businessPhones",
        ] {
            assert!(
                user[collection].is_array(),
                "{collection} must be [] not null: {user}"
            );
        }
    }
    for case in UserCase::all() {
        let user = h.sim.find_user(case).expect("case present in 3000 users");
        let (status, body) = h
            .get_json(&format!("/v1.0/users/{}?$select={select}", user.id))
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            body.get(CONVERSION_STAMP).is_some(),
            case == UserCase::ConvertedBackToInternal,
            "only a converted-back user carries the beta stamp: {body}"
        );
        csdl.assert_conforms("graph.user", &v1_only(&body));
    }
    let (_, default_page) = h.get_json("/v1.0/users?$top=3").await;
    for user in default_page["value"].as_array().expect("value") {
        let keys: Vec<&str> = user
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert!(keys.contains(&"businessPhones") && keys.contains(&"userPrincipalName"));
        assert!(
            !keys.contains(&"otherMails") && !keys.contains(&"userType"),
            "only default properties without $select: {keys:?}"
        );
        csdl.assert_conforms("graph.user", &v1_only(user));
    }
}

#[tokio::test]
async fn invitation_response_matches_the_csdl_and_notes() {
    let h = Harness::generated(500).await;
    let csdl = Csdl::load();
    let user = h.sim.find_user(UserCase::CloudMailExternal).expect("case");
    let (status, body) = h
        .post_json(
            "/v1.0/invitations",
            &Harness::invitation(&user.id, user.mail.as_deref().expect("mail")),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    csdl.assert_conforms("graph.invitation", &body);
    assert_eq!(body["status"], "PendingAcceptance");
    assert_eq!(body["invitedUser"]["id"], user.id.as_str());
    assert_ne!(
        body["id"],
        user.id.as_str(),
        "the invitation id is not the user id"
    );
    assert!(
        body["inviteRedeemUrl"]
            .as_str()
            .expect("redeem url")
            .contains("redeem?rd=")
    );
    assert!(
        body["@odata.context"]
            .as_str()
            .expect("context")
            .ends_with("$metadata#invitations/$entity")
    );
}

#[tokio::test]
async fn organization_and_federation_match_the_csdl() {
    let h = Harness::generated(10).await;
    let csdl = Csdl::load();
    let (status, org) = h
        .get_json("/v1.0/organization?$select=verifiedDomains")
        .await;
    assert_eq!(status, 200);
    let domains = org["value"][0]["verifiedDomains"]
        .as_array()
        .expect("verifiedDomains");
    assert!(domains.len() >= 3, "several verified domains");
    for domain in domains {
        csdl.assert_conforms("graph.verifiedDomain", domain);
    }
    let (status, list) = h.get_json("/v1.0/directory/federationConfigurations/graph.samlOrWsFedExternalDomainFederation?$expand=domains").await;
    assert_eq!(status, 200);
    let config = &list["value"][0];
    assert_eq!(
        config["@odata.type"],
        "#microsoft.graph.samlOrWsFedExternalDomainFederation"
    );
    csdl.assert_conforms("graph.samlOrWsFedExternalDomainFederation", config);
    csdl.assert_conforms("graph.externalDomainName", &config["domains"][0]);
}

#[tokio::test]
async fn every_response_carries_request_ids_and_echoes_the_client_one() {
    let h = Harness::generated(10).await;
    let response = h
        .http
        .get(h.url("/v1.0/users?$top=1"))
        .bearer_auth(&h.token)
        .header("client-request-id", "my-correlation-id")
        .send()
        .await
        .expect("answered");
    assert_eq!(response.headers()["client-request-id"], "my-correlation-id");
    assert!(response.headers().contains_key("request-id"));
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("application/json")
    );
    let response = h
        .get("/v1.0/users/00000000-0000-4000-8000-000000000000")
        .await;
    assert_eq!(response.status(), 404);
    let request_id = response.headers()["request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let body: Value = response.json().await.expect("json");
    assert_graph_error(&body, "Request_ResourceNotFound", "does not exist");
    assert_eq!(
        body["error"]["innerError"]["request-id"],
        request_id.as_str()
    );
}

#[tokio::test]
async fn unknown_paths_and_methods_fail_like_graph() {
    let h = Harness::generated(10).await;
    let (status, body) = h.get_json("/v1.0/usres").await;
    assert_eq!(status, 400);
    assert_graph_error(
        &body,
        "BadRequest",
        "Resource not found for the segment 'usres'.",
    );
    let (status, body) = h.get_json("/v1.0/users/x/bogus").await;
    assert_eq!(status, 400);
    assert_graph_error(&body, "BadRequest", "segment 'bogus'");
    let response = h
        .http
        .delete(h.url("/v1.0/domains"))
        .bearer_auth(&h.token)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 405);
    let (status, body) = h.get_json("/v1.0/me").await;
    assert_eq!(status, 501, "real but unmodelled resources say so: {body}");
    let (status, body) = h.get_json("/beta/users").await;
    assert_eq!(status, 400);
    assert_graph_error(&body, "BadRequest", "Invalid version");
}

#[tokio::test]
async fn the_organization_says_when_the_tenant_was_created() {
    let h = Harness::generated(10).await;
    let (status, org) = h
        .get_json("/v1.0/organization?$select=id,createdDateTime")
        .await;
    assert_eq!(status, 200, "{org}");
    assert_eq!(org["value"][0]["createdDateTime"], "2019-05-01T09:00:00Z");
    let young = Harness::start(
        b2b_convert_sim::SimSpec::generated(10, 7)
            .with_throttling(b2b_convert_sim::ThrottleConfig::disabled())
            .with_tenant_created("2026-12-01T08:00:00Z"),
    )
    .await;
    let (_, org) = young.get_json("/v1.0/organization").await;
    assert_eq!(org["value"][0]["createdDateTime"], "2026-12-01T08:00:00Z");
}
