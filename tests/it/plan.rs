//! `plan` against the simulated tenant: selections, the cap, exclusions, re-planning, and the
//! stored plan.

use std::path::Path;

use b2b_convert::domain::{Decision, UserState};
use b2b_convert::store::{Store, Transition};
use b2b_convert_sim::{GeneratedTenant, Sim, UserCase};

use crate::support::{cli, quiet_sim, text};

async fn store(dir: &Path) -> Store {
    Store::open(&dir.join("b2b-convert.db")).await.unwrap()
}

/// A tenant discovered into `dir`, and a CSV listing one user of each interesting case.
async fn discovered() -> (Sim, tempfile::TempDir) {
    let sim = quiet_sim(600).await;
    let dir = tempfile::tempdir().unwrap();
    let output = cli(dir.path(), &sim, &["discover"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    (sim, dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_csv_wave_is_planned_with_decisions_reasons_and_overrides() {
    let (sim, dir) = discovered().await;
    let eligible = sim.find_user(UserCase::CloudOtherMailOnly).unwrap();
    let mailbox = sim.find_user(UserCase::ExchangeMailbox).unwrap();
    let several = sim.find_user(UserCase::CloudSeveralExternal).unwrap();
    let pick = several.other_mails[1].clone();
    std::fs::write(
        dir.path().join("pilot.csv"),
        format!(
            "user,address\n{},\n{},\n{},{pick}\n",
            eligible.user_principal_name, mailbox.id, several.id
        ),
    )
    .unwrap();
    let output = cli(
        dir.path(),
        &sim,
        &["plan", "--wave", "pilot", "--csv", "pilot.csv"],
    )
    .await;
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    assert!(stdout.contains("3 user(s): 2 eligible"), "{stdout}");
    assert!(stdout.contains("exchange-mailbox 1"), "{stdout}");
    assert!(stdout.contains("report --wave pilot"), "{stdout}");

    let store = store(dir.path()).await;
    let wave = store.wave_by_name("pilot").await.unwrap().unwrap();
    assert!(wave.plan_hash.is_some());
    let members = store.members(wave.id).await.unwrap();
    let member = |id: &str| {
        members
            .iter()
            .find(|m| m.plan.user_id.to_string() == id)
            .unwrap()
    };
    assert_eq!(member(&eligible.id).plan.decision, Decision::Eligible);
    assert!(
        member(&eligible.id).plan.set_mail,
        "mail is empty, so it is set first"
    );
    assert_eq!(member(&mailbox.id).state, UserState::Excluded);
    assert_eq!(
        member(&several.id).plan.chosen_address.as_deref(),
        Some(pick.as_str())
    );
    let realms = store
        .realm(
            &eligible.other_mails[0]
                .rsplit('@')
                .next()
                .unwrap()
                .to_lowercase(),
            time::OffsetDateTime::now_utc() - time::Duration::hours(1),
        )
        .await
        .unwrap();
    assert!(
        realms.is_some(),
        "the address's realm was looked up and cached"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn planning_needs_a_discovery_and_a_selection() {
    let sim = quiet_sim(10).await;
    let dir = tempfile::tempdir().unwrap();
    let output = cli(dir.path(), &sim, &["plan", "--wave", "w", "--all"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("discover"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(
        cli(dir.path(), &sim, &["discover"]).await.status.code(),
        Some(0)
    );
    let output = cli(dir.path(), &sim, &["plan", "--wave", "w"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("--csv, --group, --filter or --all"));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cap_refuses_a_wave_that_is_too_big() {
    let (sim, dir) = discovered().await;
    let output = cli(
        dir.path(),
        &sim,
        &["plan", "--wave", "everyone", "--all", "--max", "10"],
    )
    .await;
    assert_eq!(output.status.code(), Some(4), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("more than its cap of 10"));
    assert!(
        store(dir.path())
            .await
            .wave_by_name("everyone")
            .await
            .unwrap()
            .is_none()
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn listed_users_missing_from_the_snapshot_are_named() {
    let (sim, dir) = discovered().await;
    std::fs::write(dir.path().join("list.csv"), "user\nnobody@contoso.com\n").unwrap();
    let output = cli(
        dir.path(),
        &sim,
        &["plan", "--wave", "w", "--csv", "list.csv"],
    )
    .await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("lines 2"),
        "{}",
        text(&output.stderr)
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exclusions_block_and_a_group_wave_is_read_from_graph() {
    let (sim, dir) = discovered().await;
    let pilot = &GeneratedTenant::new(7, 600).groups()[0].0;
    let excluded = sim.user_at(3).unwrap();
    std::fs::write(
        dir.path().join("keep.csv"),
        format!("user\n{}\n", excluded.id),
    )
    .unwrap();
    let output = cli(
        dir.path(),
        &sim,
        &[
            "plan",
            "--wave",
            "pilot",
            "--group",
            pilot,
            "--exclude-csv",
            "keep.csv",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let store = store(dir.path()).await;
    let wave = store.wave_by_name("pilot").await.unwrap().unwrap();
    let members = store.members(wave.id).await.unwrap();
    assert_eq!(members.len(), 20, "the pilot group's 20 users");
    let member = members
        .iter()
        .find(|m| m.plan.user_id.to_string() == excluded.id)
        .unwrap();
    assert_eq!(member.plan.findings[0].reason.code(), "operator-excluded");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn re_planning_reports_changes_and_stops_once_the_wave_started() {
    let (sim, dir) = discovered().await;
    let user = sim.find_user(UserCase::CloudMailExternal).unwrap();
    std::fs::write(dir.path().join("w.csv"), format!("user\n{}\n", user.id)).unwrap();
    assert_eq!(
        cli(dir.path(), &sim, &["plan", "--wave", "w", "--csv", "w.csv"])
            .await
            .status
            .code(),
        Some(0)
    );
    let again = cli(dir.path(), &sim, &["plan", "--wave", "w"]).await;
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert!(text(&again.stdout).contains("Re-planned: 0 added, 0 removed, 0 changed"));
    let other = cli(dir.path(), &sim, &["plan", "--wave", "w", "--all"]).await;
    assert_eq!(
        other.status.code(),
        Some(2),
        "another selection for the same wave"
    );

    let store = store(dir.path()).await;
    let wave = store.wave_by_name("w").await.unwrap().unwrap();
    store
        .transition(
            wave.id,
            user.id.parse().unwrap(),
            &Transition::new(
                UserState::Ready,
                UserState::Inviting,
                time::OffsetDateTime::now_utc(),
            ),
        )
        .await
        .unwrap();
    store.close().await;
    let started = cli(dir.path(), &sim, &["plan", "--wave", "w"]).await;
    assert_eq!(started.status.code(), Some(4), "{}", text(&started.stderr));
    assert!(text(&started.stderr).contains("cannot be re-planned"));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_in_two_waves_is_flagged() {
    let (sim, dir) = discovered().await;
    let user = sim.find_user(UserCase::CloudMailExternal).unwrap();
    std::fs::write(dir.path().join("one.csv"), format!("user\n{}\n", user.id)).unwrap();
    for wave in ["first", "second"] {
        let output = cli(
            dir.path(),
            &sim,
            &["plan", "--wave", wave, "--csv", "one.csv"],
        )
        .await;
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        if wave == "second" {
            assert!(
                text(&output.stdout).contains("in-another-wave 1"),
                "{}",
                text(&output.stdout)
            );
        }
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_list_without_users_or_a_wave_name_that_would_lie_is_refused_before_anything_is_stored() {
    let (sim, dir) = discovered().await;
    std::fs::write(dir.path().join("empty.csv"), "user,address\r\n\r\n").unwrap();
    let output = cli(
        dir.path(),
        &sim,
        &["plan", "--wave", "pilot", "--csv", "empty.csv"],
    )
    .await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("empty.csv names no user"), "{stderr}");

    std::fs::write(dir.path().join("one.csv"), "user\nnobody@contoso.com\n").unwrap();
    for name in ["pilot\n#> Remove-Item C:\\", "pi\u{1b}[31mlot", ""] {
        let output = cli(
            dir.path(),
            &sim,
            &["plan", "--wave", name, "--csv", "one.csv"],
        )
        .await;
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name:?}: {stderr}");
        assert!(stderr.contains("wave name"), "{stderr}");
    }

    let user = sim.find_user(UserCase::CloudOtherMailOnly).unwrap();
    std::fs::write(
        dir.path().join("twice.csv"),
        format!(
            "user\n{}\n{}\n\n{}\n",
            user.id,
            sim.find_user(UserCase::ExchangeMailbox).unwrap().id,
            user.user_principal_name.to_uppercase()
        ),
    )
    .unwrap();
    let output = cli(
        dir.path(),
        &sim,
        &["plan", "--wave", "pilot", "--csv", "twice.csv"],
    )
    .await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("twice.csv, lines 2 and 5: both name the user"),
        "{stderr}"
    );

    let store = store(dir.path()).await;
    assert!(
        store.waves().await.unwrap().is_empty(),
        "no wave was created"
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_another_wave_converted_is_blocked_naming_it_even_with_an_older_snapshot() {
    let (sim, dir) = discovered().await;
    let user = sim.find_user(UserCase::CloudMailExternal).unwrap();
    let other = sim.find_user(UserCase::CloudOtherMailOnly).unwrap();
    std::fs::write(dir.path().join("one.csv"), format!("user\n{}\n", user.id)).unwrap();
    std::fs::write(
        dir.path().join("two.csv"),
        format!("user\n{}\n{}\n", user.id, other.id),
    )
    .unwrap();
    for args in [
        &["plan", "--wave", "first", "--csv", "one.csv"][..],
        &["run", "--wave", "first", "--yes", "--reconcile-delay", "0"],
    ] {
        let output = cli(dir.path(), &sim, args).await;
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    }
    assert_eq!(sim.invitation_posts(&user.id), 1);

    // No discover since: the snapshot still shows the user internal.
    let output = cli(
        dir.path(),
        &sim,
        &["plan", "--wave", "second", "--csv", "two.csv"],
    )
    .await;
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(stdout.contains("converted-in-another-wave 1"), "{stdout}");
    let store = store(dir.path()).await;
    let second = store.wave_by_name("second").await.unwrap().unwrap();
    let member = store
        .member(second.id, user.id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(member.plan.decision, Decision::Blocked);
    assert_eq!(member.state, UserState::Excluded);
    let finding = member
        .plan
        .findings
        .iter()
        .find(|f| f.reason.code() == "converted-in-another-wave")
        .expect("the reason is stored");
    assert_eq!(finding.detail, "first (invited)");
    let untouched = store
        .member(second.id, other.id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(untouched.plan.decision, Decision::Eligible);
    assert!(
        untouched
            .plan
            .findings
            .iter()
            .all(|f| f.reason.code() != "converted-in-another-wave"),
        "only users with that history are changed"
    );
    store.close().await;

    let output = cli(
        dir.path(),
        &sim,
        &["run", "--wave", "second", "--yes", "--reconcile-delay", "0"],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(sim.invitation_posts(&user.id), 1, "never invited twice");
    assert_eq!(sim.invitation_posts(&other.id), 1);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_is_named_by_its_display_name_and_stored_by_its_id() {
    let (sim, dir) = discovered().await;
    let pilot = &GeneratedTenant::new(7, 600).groups()[0];
    let output = cli(
        dir.path(),
        &sim,
        &["plan", "--wave", "pilot", "--group", "Partners – Pilot"],
    )
    .await;
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        stdout.contains(&format!("Group \"Partners – Pilot\" ({})", pilot.0)),
        "{stdout}"
    );
    let wave = store(dir.path())
        .await
        .wave_by_name("pilot")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(wave.selector["users"]["id"], pilot.0.as_str());
    assert_eq!(wave.selector["users"]["name"], "Partners – Pilot");
    // The id names the same selection; a re-plan does not look the name up again.
    for again in [
        &["plan", "--wave", "pilot", "--group", pilot.0.as_str()][..],
        &["plan", "--wave", "pilot"],
    ] {
        let output = cli(dir.path(), &sim, again).await;
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    }
    // The exclusion group may be named too.
    let output = cli(
        dir.path(),
        &sim,
        &[
            "plan",
            "--wave",
            "late",
            "--group",
            "Partners – Wave 2",
            "--transitive",
            "--exclude-group",
            "Partners – Wave 2 late joiners",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let wave = store(dir.path())
        .await
        .wave_by_name("late")
        .await
        .unwrap()
        .unwrap();
    let late = &GeneratedTenant::new(7, 600).groups()[2].0;
    assert_eq!(wave.selector["exclude-groups"][0], late.as_str());

    let output = cli(
        dir.path(),
        &sim,
        &["plan", "--wave", "nobody", "--group", "Partners – Nobody"],
    )
    .await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("no group has the display name \"Partners – Nobody\""),
        "{}",
        text(&output.stderr)
    );
    assert!(
        store(dir.path())
            .await
            .wave_by_name("nobody")
            .await
            .unwrap()
            .is_none()
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_several_groups_share_is_refused_with_their_ids() {
    let mut tenant: serde_json::Value = serde_json::from_str(include_str!(
        "../../crates/b2b-convert-sim/tests/fixtures/tenant.json"
    ))
    .unwrap();
    // The fixture's app reads users and groups only; discover also reads the tenant.
    tenant["applications"][0]["roles"] = serde_json::json!([
        "User.Read.All",
        "GroupMember.Read.All",
        "Domain.Read.All",
        "Organization.Read.All",
        "IdentityProvider.Read.All"
    ]);
    let groups = tenant["groups"].as_array_mut().unwrap();
    for (n, name) in [
        "Partner Accounts - O'Brien",
        "Partner Accounts - O'Brien",
        "O'Brien's partners",
    ]
    .iter()
    .enumerate()
    {
        groups.push(serde_json::json!({
            "id": format!("9f0e0000-0000-4000-8000-00000000020{n}"),
            "displayName": name,
            "members": ["a1f0c7a2-0000-4000-8000-000000000001"],
        }));
    }
    let file = b2b_convert_sim::TenantFile::parse(&tenant.to_string()).unwrap();
    let sim = Sim::start(
        b2b_convert_sim::SimSpec::inline(file)
            .with_throttling(b2b_convert_sim::ThrottleConfig::disabled()),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let output = cli(
        dir.path(),
        &sim,
        &["discover", "--group", "Partner Accounts - O'Brien"],
    )
    .await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("2 groups have the display name \"Partner Accounts - O'Brien\""),
        "{stderr}"
    );
    for n in 0..2 {
        assert!(
            stderr.contains(&format!("9f0e0000-0000-4000-8000-00000000020{n}")),
            "{stderr}"
        );
    }
    // The one group of a name is found, its quote doubled on the way (OData).
    let output = cli(
        dir.path(),
        &sim,
        &["discover", "--group", "O'Brien's partners"],
    )
    .await;
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        stdout
            .contains("Group       \"O'Brien's partners\" (9f0e0000-0000-4000-8000-000000000202)"),
        "{stdout}"
    );
    assert!(stdout.contains("Users       1 stored"), "{stdout}");
    sim.shutdown().await;
}

/// The simulator's fixture tenant with an org contact holding the address of a new cloud-only
/// user ("Cleo"), inside nested groups that reach one user twice; `roles` for its app.
async fn contact_tenant(roles: &[&str]) -> Sim {
    let mut tenant: serde_json::Value = serde_json::from_str(include_str!(
        "../../crates/b2b-convert-sim/tests/fixtures/tenant.json"
    ))
    .unwrap();
    tenant["applications"][0]["roles"] = serde_json::json!(roles);
    tenant["users"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "id": "a1f0c7a2-0000-4000-8000-000000000006",
            "displayName": "Cleo Held",
            "userPrincipalName": "cleo@fixturecorp.com",
            "otherMails": ["cleo@fabrikam.com"]
        }));
    tenant["contacts"] = serde_json::json!([{
        "id": "c0c0c0c0-0000-4000-8000-000000000001",
        "displayName": "Fabrikam desk",
        "mail": "Cleo@fabrikam.com",
        "proxyAddresses": ["SMTP:Cleo@fabrikam.com"]
    }]);
    tenant["groups"] = serde_json::json!([
        { "id": "9f0e0000-0000-4000-8000-000000000001", "displayName": "Wave 1",
          "members": ["a1f0c7a2-0000-4000-8000-000000000001", "c0c0c0c0-0000-4000-8000-000000000001",
                      "a1f0c7a2-0000-4000-8000-000000000006"],
          "memberGroups": ["9f0e0000-0000-4000-8000-000000000002"] },
        { "id": "9f0e0000-0000-4000-8000-000000000002", "displayName": "Wave 1 – nested",
          "members": ["linus@fixturecorp.com", "a1f0c7a2-0000-4000-8000-000000000003",
                      "a1f0c7a2-0000-4000-8000-000000000001", "c0c0c0c0-0000-4000-8000-000000000001"] }
    ]);
    let file = b2b_convert_sim::TenantFile::parse(&tenant.to_string()).unwrap();
    Sim::start(
        b2b_convert_sim::SimSpec::inline(file)
            .with_throttling(b2b_convert_sim::ThrottleConfig::disabled()),
    )
    .await
    .unwrap()
}

const DISCOVER_ROLES: [&str; 5] = [
    "User.Read.All",
    "GroupMember.Read.All",
    "Domain.Read.All",
    "Organization.Read.All",
    "IdentityProvider.Read.All",
];

#[tokio::test(flavor = "multi_thread")]
async fn a_transitive_group_wave_with_a_contact_plans_each_user_once_and_blocks_its_address() {
    let roles: Vec<&str> = DISCOVER_ROLES
        .iter()
        .copied()
        .chain(["OrgContact.Read.All"])
        .collect();
    let sim = contact_tenant(&roles).await;
    let dir = tempfile::tempdir().unwrap();
    let output = cli(dir.path(), &sim, &["discover"]).await;
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        stdout.contains("Contacts    1 org contact(s) read"),
        "{stdout}"
    );
    let output = cli(
        dir.path(),
        &sim,
        &["plan", "--wave", "w1", "--group", "Wave 1", "--transitive"],
    )
    .await;
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(!stdout.contains("contacts-not-checked"), "{stdout}");
    let store = store(dir.path()).await;
    let wave = store.wave_by_name("w1").await.unwrap().unwrap();
    let members = store.members(wave.id).await.unwrap();
    let mut ids: Vec<String> = members.iter().map(|m| m.plan.user_id.to_string()).collect();
    ids.sort();
    assert_eq!(
        ids,
        [1, 2, 3, 6].map(|n| format!("a1f0c7a2-0000-4000-8000-00000000000{n}")),
        "Ada once although two groups list her; the contact is no user"
    );
    let cleo = members
        .iter()
        .find(|m| m.plan.user_id.to_string().ends_with("000000000006"))
        .unwrap();
    assert_eq!(cleo.plan.decision, Decision::Blocked);
    let finding = &cleo.plan.findings[0];
    assert_eq!(finding.reason.code(), "address-collision");
    assert!(
        finding
            .detail
            .contains("org contact \"Fabrikam desk\" c0c0c0c0-0000-4000-8000-000000000001 (mail)"),
        "{}",
        finding.detail
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_contact_permission_the_plan_warns_that_contacts_were_not_checked() {
    let sim = contact_tenant(&DISCOVER_ROLES).await;
    let dir = tempfile::tempdir().unwrap();
    let output = cli(dir.path(), &sim, &["discover"]).await;
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(stdout.contains("Contacts    not read"), "{stdout}");
    let output = cli(dir.path(), &sim, &["plan", "--wave", "w1", "--all"]).await;
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(stdout.contains("contacts-not-checked"), "{stdout}");
    let output = cli(
        dir.path(),
        &sim,
        &["report", "--wave", "w1", "--format", "json"],
    )
    .await;
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        report["wave_findings"][0]["reason"], "contacts-not-checked",
        "{report}"
    );
    let output = cli(dir.path(), &sim, &["check"]).await;
    let stdout = text(&output.stdout);
    assert!(stdout.contains("Org contacts cannot be read"), "{stdout}");
    sim.shutdown().await;
}
