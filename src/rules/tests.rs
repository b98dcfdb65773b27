use std::collections::HashMap;

use proptest::prelude::*;
use rstest::rstest;
use time::macros::datetime;

use super::*;
use crate::domain::{AssignedLicense, AssignedPlan, ObjectIdentity, OnPremisesProperties};

const MAILBOX: Uuid = uuid::uuid!("efb87545-963c-4e0d-99df-69c6916d9eb0");
const FOUNDATION: Uuid = uuid::uuid!("113feb6c-3fe4-4440-bddc-54d774bf0318");

/// A cloud-only member with one external `otherMails` entry: eligible as it stands.
pub(super) fn partner() -> UserSnapshot {
    UserSnapshot {
        id: UserId::from_uuid(Uuid::from_u128(1)),
        user_principal_name: "pat@contoso.com".into(),
        display_name: Some("Pat".into()),
        mail: None,
        other_mails: vec!["pat@fabrikam.com".into()],
        proxy_addresses: vec![],
        user_type: Some("Member".into()),
        account_enabled: Some(true),
        creation_type: None,
        external_user_state: None,
        external_user_state_changed_at: None,
        converted_to_internal_at: None,
        on_premises: OnPremisesProperties::default(),
        assigned_plans: vec![],
        assigned_licenses: vec![],
        identities: vec![ObjectIdentity {
            sign_in_type: Some("userPrincipalName".into()),
            issuer: Some("contoso.com".into()),
            issuer_assigned_id: Some("pat@contoso.com".into()),
        }],
        profile: crate::domain::UserProfile::default(),
        snapshot_at: datetime!(2026-11-21 08:00 UTC),
    }
}

fn synced(mail: &str) -> UserSnapshot {
    let mut user = partner();
    user.mail = Some(mail.into());
    user.other_mails.clear();
    user.on_premises.sync_enabled = Some(true);
    user
}

fn plan(id: Uuid, status: &str) -> AssignedPlan {
    AssignedPlan {
        assigned_at: None,
        capability_status: Some(status.into()),
        service: Some("exchange".into()),
        service_plan_id: Some(id),
    }
}

fn tenant() -> TenantView {
    TenantView {
        verified_domains: DomainSet::new(["contoso.com", "contoso.onmicrosoft.com"]),
        federation_domains: DomainSet::new(["woodgrovebank.com"]),
        realms: HashMap::from([
            ("fabrikam.com".to_owned(), RealmKind::Managed),
            ("adatum.com".to_owned(), RealmKind::Federated),
            ("wingtipmail.net".to_owned(), RealmKind::Unknown),
            ("woodgrovebank.com".to_owned(), RealmKind::Federated),
        ]),
    }
}

/// Addresses owned by other objects (the planner's map, keyed by lower-cased address).
type Owners = HashMap<String, Vec<Collision>>;

fn eval_with(user: &UserSnapshot, policy: &Policy, owners: &Owners) -> Evaluation {
    evaluate(
        Candidate {
            user,
            override_address: None,
            excluded: None,
            other_waves: &[],
        },
        &tenant(),
        policy,
        owners,
    )
}

fn eval(user: &UserSnapshot) -> Evaluation {
    eval_with(user, &Policy::default(), &Owners::default())
}

fn codes(eval: &Evaluation, severity: Severity) -> Vec<&'static str> {
    eval.findings
        .iter()
        .filter(|f| f.severity == severity)
        .map(|f| f.reason.code())
        .collect()
}

#[test]
fn a_plain_partner_is_eligible_with_a_set_mail_step() {
    let result = eval(&partner());
    assert_eq!(result.decision, Decision::Eligible);
    assert_eq!(result.address.as_ref().unwrap().address, "pat@fabrikam.com");
    assert!(result.set_mail, "mail is empty, so it is set first");
    assert_eq!(codes(&result, Severity::Info), vec!["set-mail-first"]);
}

#[rstest]
#[case::already_invited(|u: &mut UserSnapshot| u.external_user_state = Some("PendingAcceptance".into()), "already-external")]
#[case::already_redeemed(|u: &mut UserSnapshot| u.external_user_state = Some("Accepted".into()), "already-external")]
#[case::created_by_invitation(|u: &mut UserSnapshot| u.creation_type = Some("Invitation".into()), "already-external")]
#[case::external_identity(|u: &mut UserSnapshot| u.identities.push(ObjectIdentity {
    sign_in_type: Some("federated".into()), issuer: Some("ExternalAzureAD".into()), issuer_assigned_id: None }), "already-external")]
#[case::mailbox(|u: &mut UserSnapshot| u.assigned_plans.push(plan(MAILBOX, "Enabled")), "exchange-mailbox")]
#[case::mailbox_in_grace(|u: &mut UserSnapshot| u.assigned_plans.push(plan(MAILBOX, "Warning")), "exchange-mailbox")]
#[case::no_address(|u: &mut UserSnapshot| u.other_mails.clear(), "no-address")]
#[case::internal_only(|u: &mut UserSnapshot| u.other_mails = vec!["pat@contoso.com".into()], "no-external-address")]
#[case::ambiguous(|u: &mut UserSnapshot| u.other_mails.push("pat@adatum.com".into()), "ambiguous-address")]
#[case::plus_addressed(|u: &mut UserSnapshot| u.other_mails = vec!["pat+b2b@fabrikam.com".into()], "invalid-address")]
#[case::forbidden_character(|u: &mut UserSnapshot| u.other_mails = vec!["pat#1@fabrikam.com".into()], "invalid-address")]
#[case::direct_federation(|u: &mut UserSnapshot| u.other_mails = vec!["pat@woodgrovebank.com".into()], "direct-federation")]
#[case::direct_federation_subdomain(|u: &mut UserSnapshot| u.other_mails = vec!["pat@eu.woodgrovebank.com".into()], "direct-federation")]
#[case::not_in_entra(|u: &mut UserSnapshot| u.other_mails = vec!["pat@wingtipmail.net".into()], "home-realm-not-entra")]
fn blockers(#[case] change: fn(&mut UserSnapshot), #[case] code: &str) {
    let mut user = partner();
    change(&mut user);
    let result = eval(&user);
    assert_eq!(result.decision, Decision::Blocked, "{result:?}");
    assert!(
        codes(&result, Severity::Blocker).contains(&code),
        "{result:?}"
    );
}

#[rstest]
#[case::foundation_only(|u: &mut UserSnapshot| u.assigned_plans.push(plan(FOUNDATION, "Enabled")))]
#[case::mailbox_deleted(|u: &mut UserSnapshot| u.assigned_plans.push(plan(MAILBOX, "Deleted")))]
#[case::mailbox_plan_disabled_by_licence(|u: &mut UserSnapshot| {
    u.assigned_plans.push(plan(MAILBOX, "Enabled"));
    u.assigned_licenses.push(AssignedLicense { sku_id: None, disabled_plans: vec![MAILBOX] });
})]
#[case::local_guest(|u: &mut UserSnapshot| u.user_type = Some("Guest".into()))]
#[case::federated_realm(|u: &mut UserSnapshot| u.other_mails = vec!["pat@adatum.com".into()])]
#[case::external_mail_agrees(|u: &mut UserSnapshot| u.mail = Some("Pat@Fabrikam.com".into()))]
#[case::unicode_display_name(|u: &mut UserSnapshot| u.display_name = Some("Zoë Ørsted-Ñúñez".into()))]
fn not_blockers(#[case] change: fn(&mut UserSnapshot)) {
    let mut user = partner();
    change(&mut user);
    let result = eval(&user);
    assert_eq!(result.decision, Decision::Eligible, "{result:?}");
}

#[test]
fn synced_users_are_invited_at_mail_and_blocked_by_an_on_premises_upn() {
    let user = synced("pat@fabrikam.com");
    let result = eval(&user);
    assert_eq!(result.decision, Decision::Eligible);
    assert!(
        !result.set_mail,
        "a synced user's mail is never changed from the cloud"
    );
    assert!(
        codes(&result, Severity::Info).is_empty(),
        "no realm check for synced users"
    );

    let mut user = synced("pat@fabrikam.com");
    user.on_premises.user_principal_name = Some("pat@corp.contoso.com".into());
    assert_eq!(
        codes(&eval(&user), Severity::Blocker),
        vec!["on-premises-upn-set"]
    );

    let user = synced("pat@contoso.com");
    assert_eq!(
        codes(&eval(&user), Severity::Blocker),
        vec!["no-external-address"]
    );
}

/// The service refuses a user with `onPremisesUserPrincipalName` whatever the sync flag says:
/// the property stays behind when directory sync is switched off (NOTES §2.x).
#[rstest]
#[case::synced(Some(true), false)]
#[case::sync_switched_off(Some(false), true)]
#[case::never_synced_flag(None, true)]
fn an_on_premises_upn_blocks_whatever_the_sync_flag(
    #[case] sync_enabled: Option<bool>,
    #[case] says_left_behind: bool,
) {
    let mut user = synced("pat@fabrikam.com");
    user.on_premises.sync_enabled = sync_enabled;
    user.on_premises.user_principal_name = Some("pat@corp.contoso.com".into());
    let result = eval(&user);
    assert_eq!(result.decision, Decision::Blocked, "{result:?}");
    let finding = result
        .findings
        .iter()
        .find(|f| f.reason == Reason::OnPremisesUpnSet)
        .expect("on-premises-upn-set");
    assert_eq!(finding.severity, Severity::Blocker);
    assert_eq!(
        finding.detail.contains("sync is off"),
        says_left_behind,
        "{finding:?}"
    );

    for (mode, decision) in [
        (RuleMode::Warn, Decision::Eligible),
        (RuleMode::Off, Decision::Eligible),
    ] {
        let policy = Policy {
            modes: BTreeMap::from([(Rule::OnPremisesUpnSet, mode)]),
            ..Policy::default()
        };
        assert_eq!(
            eval_with(&user, &policy, &Owners::default()).decision,
            decision
        );
    }
    user.on_premises.user_principal_name = Some("  ".into());
    assert_eq!(
        eval(&user).decision,
        Decision::Eligible,
        "a blank value is no value"
    );
}

#[test]
fn a_disabled_account_is_a_warning_by_default() {
    let mut user = partner();
    user.account_enabled = Some(false);
    let result = eval(&user);
    assert_eq!(result.decision, Decision::Eligible);
    assert_eq!(codes(&result, Severity::Warning), vec!["disabled-account"]);
}

#[rstest]
#[case::enforce(RuleMode::Enforce, Decision::Blocked, Some(Severity::Blocker))]
#[case::warn(RuleMode::Warn, Decision::Eligible, Some(Severity::Warning))]
#[case::off(RuleMode::Off, Decision::Eligible, None)]
fn a_rule_mode_decides_the_weight_of_its_finding(
    #[case] mode: RuleMode,
    #[case] decision: Decision,
    #[case] severity: Option<Severity>,
) {
    let mut user = partner();
    user.assigned_plans.push(plan(MAILBOX, "Enabled"));
    let policy = Policy {
        modes: BTreeMap::from([(Rule::ExchangeMailbox, mode)]),
        ..Policy::default()
    };
    let result = eval_with(&user, &policy, &Owners::default());
    assert_eq!(result.decision, decision);
    let found = result
        .findings
        .iter()
        .find(|f| f.reason == Reason::ExchangeMailbox)
        .map(|f| f.severity);
    assert_eq!(found, severity);
}

#[test]
fn every_problem_of_a_user_is_reported_at_once() {
    let mut user = partner();
    user.assigned_plans.push(plan(MAILBOX, "Enabled"));
    user.account_enabled = Some(false);
    user.other_mails = vec!["pat+x@wingtipmail.net".into()];
    let result = eval(&user);
    assert_eq!(
        codes(&result, Severity::Blocker),
        vec![
            "exchange-mailbox",
            "home-realm-not-entra",
            "invalid-address"
        ]
    );
    assert_eq!(codes(&result, Severity::Warning), vec!["disabled-account"]);
}

#[test]
fn an_address_used_by_another_object_is_a_collision() {
    let owners: Owners = HashMap::from([(
        "pat@fabrikam.com".to_owned(),
        vec![Collision {
            object_id: "other-user".into(),
            property: "proxy_addresses".into(),
            kind: OwnerKind::User,
        }],
    )]);
    let result = eval_with(&partner(), &Policy::default(), &owners);
    assert_eq!(codes(&result, Severity::Blocker), vec!["address-collision"]);
    assert!(
        result.findings[0]
            .detail
            .contains("other-user (proxy_addresses)")
    );
}

#[test]
fn an_address_an_org_contact_holds_is_a_collision_naming_the_contact() {
    let owners: Owners = HashMap::from([(
        "pat@fabrikam.com".to_owned(),
        vec![Collision {
            object_id: "c0ffee".into(),
            property: "mail".into(),
            kind: OwnerKind::OrgContact {
                display_name: Some("Fabrikam desk".into()),
            },
        }],
    )]);
    let result = eval_with(&partner(), &Policy::default(), &owners);
    assert_eq!(result.decision, Decision::Blocked);
    assert_eq!(codes(&result, Severity::Blocker), vec!["address-collision"]);
    assert!(
        result.findings[0]
            .detail
            .contains("is used by org contact \"Fabrikam desk\" c0ffee (mail)"),
        "{}",
        result.findings[0].detail
    );
}

#[test]
fn an_unknown_realm_is_reported_not_blocking() {
    let mut user = partner();
    user.other_mails = vec!["pat@never-looked-up.example".into()];
    let result = eval(&user);
    assert_eq!(result.decision, Decision::Eligible);
    assert!(codes(&result, Severity::Info).contains(&"realm-not-checked"));
}

#[test]
fn overrides_and_exclusions_from_the_wave() {
    let mut user = partner();
    user.other_mails.push("pat@adatum.com".into());
    let with = |override_address, excluded| {
        evaluate(
            Candidate {
                user: &user,
                override_address,
                excluded,
                other_waves: &[],
            },
            &tenant(),
            &Policy::default(),
            &Owners::default(),
        )
    };
    let picked = with(Some("pat@adatum.com"), None);
    assert_eq!(picked.decision, Decision::Eligible);
    assert_eq!(picked.address.unwrap().origin, AddressOrigin::Override);
    let stranger = with(Some("someone@tailspintoys.com"), None);
    assert_eq!(
        codes(&stranger, Severity::Blocker),
        vec!["override-not-a-candidate"]
    );
    let excluded = with(Some("pat@adatum.com"), Some("in exclude.csv, line 3"));
    assert_eq!(
        codes(&excluded, Severity::Blocker),
        vec!["operator-excluded"]
    );
}

#[test]
fn users_sharing_an_address_in_a_wave_are_all_blocked() {
    let first = partner();
    let mut second = partner();
    second.id = UserId::from_uuid(Uuid::from_u128(2));
    second.other_mails = vec!["PAT@fabrikam.com".into()];
    let third = {
        let mut u = partner();
        u.id = UserId::from_uuid(Uuid::from_u128(3));
        u.other_mails = vec!["sam@fabrikam.com".into()];
        u
    };
    let mut evaluations: Vec<_> = [&first, &second, &third].into_iter().map(eval).collect();
    mark_duplicates(&mut evaluations);
    assert_eq!(evaluations[0].decision, Decision::Blocked);
    assert_eq!(evaluations[1].decision, Decision::Blocked);
    assert_eq!(evaluations[2].decision, Decision::Eligible);
    assert!(
        evaluations[0]
            .findings
            .iter()
            .any(|f| f.reason == Reason::DuplicateInWave)
    );
}

#[test]
fn duplicates_in_a_wave_name_the_others_in_wave_order() {
    let id = |n: u128| UserId::from_uuid(Uuid::from_u128(n));
    // Sorted by address, each address's choosers in the wave's order (here 5 before 2).
    let chosen = [
        ("a@fabrikam.com", id(1)),
        ("pat@fabrikam.com", id(5)),
        ("pat@fabrikam.com", id(2)),
        ("pat@fabrikam.com", id(9)),
        ("sam@fabrikam.com", id(3)),
    ];
    let duplicates = duplicates_in_wave(&chosen, |c| c.0, |c| c.1);
    assert_eq!(duplicates.len(), 3, "only the three sharing pat@");
    let pat = |others: &[UserId]| ("pat@fabrikam.com".to_owned(), others.to_vec());
    assert_eq!(duplicates[&id(5)], pat(&[id(2), id(9)]));
    assert_eq!(duplicates[&id(2)], pat(&[id(5), id(9)]));
    assert_eq!(duplicates[&id(9)], pat(&[id(5), id(2)]));
}

#[test]
fn wave_settings_warn_by_default_and_can_block_everyone() {
    let settings = WaveSettings {
        custom_message: true,
        app_only: true,
        send_message: true,
        redirect_url: Some("https://myapps.microsoft.com/".into()),
    };
    let findings = wave_findings(&settings, &Policy::default());
    let found: Vec<_> = findings
        .iter()
        .map(|f| (f.reason.code(), f.severity))
        .collect();
    assert_eq!(
        found,
        vec![
            ("custom-message-dropped", Severity::Warning),
            ("redirect-without-tenant", Severity::Warning)
        ]
    );
    let strict = Policy {
        modes: BTreeMap::from([(Rule::RedirectWithoutTenant, RuleMode::Enforce)]),
        ..Policy::default()
    };
    let mut evaluations = vec![eval(&partner())];
    apply_wave_findings(&mut evaluations, &wave_findings(&settings, &strict));
    assert_eq!(evaluations[0].decision, Decision::Blocked);

    let fine = WaveSettings {
        redirect_url: Some("https://myapps.microsoft.com/?tenantId=abc".into()),
        app_only: false,
        ..settings
    };
    assert!(wave_findings(&fine, &Policy::default()).is_empty());
}

#[test]
fn a_user_converted_back_to_internal_is_blocked_with_its_own_reason() {
    let mut user = partner();
    user.converted_to_internal_at = Some(datetime!(2026-03-08 16:21 UTC));
    let result = eval(&user);
    assert_eq!(result.decision, Decision::Blocked);
    assert_eq!(
        codes(&result, Severity::Blocker),
        vec!["converted-back-to-internal"]
    );
    assert!(
        result.findings[0].detail.contains("2026-03-08"),
        "{result:?}"
    );
    // Not switchable: the service refuses, whatever the policy says of the switchable rules.
    assert_eq!(Reason::ConvertedBackToInternal.rule(), None);

    let stamped = fingerprint(&user);
    user.converted_to_internal_at = None;
    assert_ne!(stamped, fingerprint(&user), "the stamp is a rule input");
    let mut now = user.clone();
    now.converted_to_internal_at = Some(datetime!(2026-03-08 16:21 UTC));
    assert_eq!(
        changed_rule_inputs(&user, &now),
        vec!["externalUserConvertedOn"]
    );
}

const EOP: Uuid = uuid::uuid!("326e2b78-9d27-42c9-8509-46c827743a17");

#[test]
fn a_live_exchange_add_on_plan_is_a_warning_naming_the_plans() {
    let mut user = partner();
    user.assigned_plans = vec![
        plan(FOUNDATION, "Enabled"),
        plan(EOP, "Enabled"),
        plan(EOP, "Warning"),
    ];
    let result = eval(&user);
    assert_eq!(result.decision, Decision::Eligible);
    assert_eq!(
        codes(&result, Severity::Warning),
        vec!["exchange-add-on-plan"]
    );
    let finding = &result.findings[0];
    assert_eq!(
        finding.detail,
        format!("service plans EOP_ENTERPRISE ({EOP})"),
        "named once, foundation not counted"
    );

    // A deleted or licence-disabled plan does not count.
    user.assigned_plans = vec![plan(EOP, "Deleted")];
    assert!(
        eval(&user)
            .findings
            .iter()
            .all(|f| f.reason != Reason::ExchangeAddOnPlan)
    );
    user.assigned_plans = vec![plan(EOP, "Enabled")];
    user.assigned_licenses = vec![AssignedLicense {
        sku_id: None,
        disabled_plans: vec![EOP],
    }];
    assert!(
        eval(&user)
            .findings
            .iter()
            .all(|f| f.reason != Reason::ExchangeAddOnPlan)
    );
}

#[rstest]
#[case::enforce(RuleMode::Enforce, Decision::Blocked)]
#[case::warn(RuleMode::Warn, Decision::Eligible)]
#[case::off(RuleMode::Off, Decision::Eligible)]
fn configured_add_on_plans_extend_the_built_in_list(
    #[case] mode: RuleMode,
    #[case] decision: Decision,
) {
    let mut user = partner();
    user.assigned_plans = vec![plan(FOUNDATION, "Enabled")];
    assert_eq!(
        eval(&user)
            .findings
            .iter()
            .filter(|f| f.reason == Reason::ExchangeAddOnPlan)
            .count(),
        0
    );
    let policy = Policy {
        modes: BTreeMap::from([(Rule::ExchangeAddOnPlan, mode)]),
        exchange_add_on_plans: vec![FOUNDATION],
        ..Policy::default()
    };
    let result = eval_with(&user, &policy, &Owners::default());
    assert_eq!(result.decision, decision);
    let details: Vec<&str> = result
        .findings
        .iter()
        .filter(|f| f.reason == Reason::ExchangeAddOnPlan)
        .map(|f| f.detail.as_str())
        .collect();
    if mode == RuleMode::Off {
        assert!(details.is_empty());
    } else {
        assert_eq!(details, [format!("service plans {FOUNDATION}")]);
    }
}

#[test]
fn the_fingerprint_changes_with_rule_inputs_only() {
    let user = partner();
    let mut renamed = user.clone();
    renamed.display_name = Some("Someone else".into());
    renamed.snapshot_at = datetime!(2027-01-01 00:00 UTC);
    assert_eq!(
        fingerprint(&user),
        fingerprint(&renamed),
        "display name and time do not count"
    );
    let mut licensed = user.clone();
    licensed.assigned_plans.push(plan(MAILBOX, "Enabled"));
    assert_ne!(fingerprint(&user), fingerprint(&licensed));
    let mut moved = user.clone();
    moved.other_mails.push("x@adatum.com".into());
    assert_ne!(fingerprint(&user), fingerprint(&moved));
    assert_eq!(fingerprint(&user).len(), 64);
}

/// [`fingerprint`] as it was first written, through `serde_json`: stored plans hold
/// fingerprints made so, and the hand-written text must stay byte for byte the same.
fn fingerprint_by_serde(user: &UserSnapshot) -> String {
    #[derive(Serialize)]
    struct RuleInputs<'a> {
        id: UserId,
        upn: &'a str,
        mail: &'a Option<String>,
        other_mails: &'a [String],
        proxy_addresses: &'a [String],
        user_type: &'a Option<String>,
        account_enabled: Option<bool>,
        creation_type: &'a Option<String>,
        external_user_state: &'a Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        converted_to_internal_at: Option<String>,
        synced: Option<bool>,
        on_premises_upn: &'a Option<String>,
        plans: Vec<(Option<Uuid>, &'a Option<String>)>,
        disabled_plans: Vec<&'a [Uuid]>,
        identities: Vec<(&'a Option<String>, &'a Option<String>)>,
    }
    let inputs = RuleInputs {
        id: user.id,
        upn: &user.user_principal_name,
        mail: &user.mail,
        other_mails: &user.other_mails,
        proxy_addresses: &user.proxy_addresses,
        user_type: &user.user_type,
        account_enabled: user.account_enabled,
        creation_type: &user.creation_type,
        external_user_state: &user.external_user_state,
        converted_to_internal_at: user.converted_to_internal_at.map(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        }),
        synced: user.on_premises.sync_enabled,
        on_premises_upn: &user.on_premises.user_principal_name,
        plans: user
            .assigned_plans
            .iter()
            .map(|p| (p.service_plan_id, &p.capability_status))
            .collect(),
        disabled_plans: user
            .assigned_licenses
            .iter()
            .map(|l| l.disabled_plans.as_slice())
            .collect(),
        identities: user
            .identities
            .iter()
            .map(|i| (&i.sign_in_type, &i.issuer))
            .collect(),
    };
    sha256_hex(&serde_json::to_vec(&inputs).unwrap())
}

#[test]
fn the_fingerprint_is_the_digest_serde_json_gives_for_every_kind_of_user() {
    let mut everything = partner();
    everything.mail =
        Some("Pat \"the\" \\ partner\t\u{1}\u{1f}\u{7f} «Zoë» 🙂@fabrikam.com".into());
    everything.proxy_addresses = vec!["SMTP:pat@contoso.com".into(), "smtp:\n".into()];
    everything.user_type = None;
    everything.account_enabled = Some(false);
    everything.creation_type = Some("Invitation".into());
    everything.external_user_state = Some("PendingAcceptance".into());
    everything.converted_to_internal_at = Some(datetime!(2026-11-21 08:00:00.25 UTC));
    everything.on_premises.sync_enabled = Some(true);
    everything.on_premises.user_principal_name = Some("pat@corp.contoso.com".into());
    everything.assigned_plans = vec![
        plan(MAILBOX, "Enabled"),
        AssignedPlan {
            assigned_at: None,
            capability_status: None,
            service: None,
            service_plan_id: None,
        },
    ];
    everything.assigned_licenses = vec![
        AssignedLicense {
            sku_id: None,
            disabled_plans: vec![MAILBOX, FOUNDATION],
        },
        AssignedLicense {
            sku_id: None,
            disabled_plans: vec![],
        },
    ];
    everything.identities.push(ObjectIdentity {
        sign_in_type: None,
        issuer: Some("ex\"ternal\\".into()),
        issuer_assigned_id: None,
    });
    let mut nothing = partner();
    nothing.other_mails.clear();
    nothing.identities.clear();
    nothing.account_enabled = None;
    for user in [partner(), everything, nothing] {
        assert_eq!(fingerprint(&user), fingerprint_by_serde(&user), "{user:?}");
    }
}

proptest! {
    #[test]
    fn the_fingerprint_is_the_digest_serde_json_gives_whatever_the_text(
        upn in any::<String>(),
        mail in proptest::option::of(any::<String>()),
        other_mails in proptest::collection::vec(any::<String>(), 0..3),
        status in proptest::option::of("[\\x00-\\x7f]{0,12}"),
        issuer in proptest::option::of(any::<String>()),
    ) {
        let mut user = partner();
        user.user_principal_name = upn;
        user.mail = mail;
        user.other_mails = other_mails;
        user.assigned_plans = vec![AssignedPlan {
            assigned_at: None,
            capability_status: status,
            service: None,
            service_plan_id: Some(MAILBOX),
        }];
        user.identities[0].issuer = issuer;
        prop_assert_eq!(fingerprint(&user), fingerprint_by_serde(&user));
    }
}

#[test]
fn names_and_language_are_not_rule_inputs() {
    let user = partner();
    let mut addressed = user.clone();
    addressed.profile = crate::domain::UserProfile {
        given_name: Some("Pat".into()),
        surname: Some("Partner".into()),
        preferred_language: Some("ja-JP".into()),
    };
    assert_eq!(fingerprint(&user), fingerprint(&addressed));
    // The value plans made before these fields existed hold for this user: pinned, so no
    // change to the snapshot makes every stored plan drift.
    assert_eq!(
        fingerprint(&addressed),
        "21f5e69f5da10c70cc3a2254d0835d3939b1c4122e5006f051c3635fbd075d73"
    );
    let (plain, named) = (eval(&user), eval(&addressed));
    assert_eq!(
        plan_hash(std::slice::from_ref(&plain)),
        plan_hash(std::slice::from_ref(&named))
    );
}

#[test]
fn the_plan_hash_digests_every_row_in_user_order_whether_streamed_or_not() {
    type Row<'a> = (UserId, Decision, Option<&'a str>, bool, Vec<&'static str>);
    let mut blocked = synced("pat@contoso.com");
    blocked.id = UserId::from_uuid(Uuid::from_u128(3));
    let mut other = partner();
    other.id = UserId::from_uuid(Uuid::from_u128(2));
    other.other_mails = vec!["Sam@Fabrikam.com".into()];
    let evaluations: Vec<Evaluation> = [&blocked, &partner(), &other]
        .into_iter()
        .map(eval)
        .collect();

    // The digest as first written: the JSON of all rows, sorted by user, at once.
    let mut rows: Vec<Row<'_>> = evaluations
        .iter()
        .map(|e| {
            (
                e.user,
                e.decision,
                e.address.as_ref().map(|a| a.address.as_str()),
                e.set_mail,
                e.findings.iter().map(|f| f.reason.code()).collect(),
            )
        })
        .collect();
    rows.sort_by_key(|row| row.0);
    let expected = sha256_hex(&serde_json::to_vec(&rows).unwrap());

    assert_eq!(plan_hash(&evaluations), expected);
    let mut sorted: Vec<&Evaluation> = evaluations.iter().collect();
    sorted.sort_by_key(|e| e.user);
    let mut streamed = PlanHasher::new();
    for eval in sorted {
        streamed.push(eval);
    }
    assert_eq!(streamed.finish(), expected);
    assert_eq!(
        PlanHasher::new().finish(),
        sha256_hex(b"[]"),
        "an empty plan hashes as an empty array"
    );
}

#[test]
#[should_panic(expected = "ascending user order")]
fn a_streamed_plan_hash_refuses_users_out_of_order() {
    let mut second = partner();
    second.id = UserId::from_uuid(Uuid::from_u128(2));
    let mut hasher = PlanHasher::new();
    hasher.push(&eval(&second));
    hasher.push(&eval(&partner()));
}

// ---- Invariants over arbitrary users ----------------------------------------------------

fn any_address() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "pat@fabrikam.com",
        "PAT@Fabrikam.com",
        "pat@adatum.com",
        "pat@contoso.com",
        "pat@eu.contoso.com",
        "pat+x@fabrikam.com",
        "pat#1@fabrikam.com",
        "pat@woodgrovebank.com",
        "pat@wingtipmail.net",
        "pat@unlooked.example",
        ".pat@fabrikam.com",
        "",
    ])
    .prop_map(str::to_owned)
}

fn any_mode() -> impl Strategy<Value = RuleMode> {
    prop::sample::select(vec![RuleMode::Enforce, RuleMode::Warn, RuleMode::Off])
}

prop_compose! {
    fn any_user()(
        mail in prop::option::of(any_address()),
        other_mails in prop::collection::vec(any_address(), 0..4),
        synced in any::<bool>(),
        on_prem_upn in any::<bool>(),
        enabled in any::<bool>(),
        state in prop::sample::select(vec![None, Some("PendingAcceptance"), Some("Accepted")]),
        invitation in any::<bool>(),
        mailbox in prop::sample::select(vec![None, Some("Enabled"), Some("Suspended"), Some("Deleted")]),
    ) -> UserSnapshot {
        let mut user = partner();
        user.mail = mail;
        user.other_mails = other_mails;
        user.on_premises.sync_enabled = Some(synced);
        user.on_premises.user_principal_name = on_prem_upn.then(|| "pat@corp.contoso.com".to_owned());
        user.account_enabled = Some(enabled);
        user.external_user_state = state.map(str::to_owned);
        user.creation_type = invitation.then(|| "Invitation".to_owned());
        if let Some(status) = mailbox {
            user.assigned_plans.push(plan(MAILBOX, status));
        }
        user
    }
}

prop_compose! {
    fn any_policy()(modes in prop::collection::vec(any_mode(), Rule::ALL.len()), set_mail in any::<bool>(), allow_new in any::<bool>()) -> Policy {
        Policy {
            modes: Rule::ALL.iter().copied().zip(modes).collect(),
            set_mail_before_invite: set_mail,
            allow_new_address: allow_new,
            exchange_add_on_plans: vec![FOUNDATION],
        }
    }
}

proptest! {
    #[test]
    fn an_excluded_or_blocked_user_is_never_planned_for_invitation(
        user in any_user(),
        policy in any_policy(),
        override_address in prop::option::of(any_address()),
        excluded in any::<bool>(),
    ) {
        let result = evaluate(
            Candidate {
                user: &user,
                override_address: override_address.as_deref().filter(|a| !a.is_empty()),
                excluded: excluded.then_some("excluded"),
            other_waves: &[],
            },
            &tenant(),
            &policy,
            &Owners::default(),
        );
        let blocked = result.findings.iter().any(|f| f.severity == Severity::Blocker);
        prop_assert_eq!(result.decision == Decision::Blocked, blocked);
        if excluded || user.external_user_state.is_some() || user.creation_type.is_some() {
            prop_assert_eq!(result.decision, Decision::Blocked);
        }
        let live_mailbox = user.assigned_plans.iter().any(|p| p.capability_status.as_deref() != Some("Deleted"));
        if live_mailbox && policy.mode(Rule::ExchangeMailbox) == RuleMode::Enforce {
            prop_assert_eq!(result.decision, Decision::Blocked);
        }
        if result.decision == Decision::Eligible {
            let chosen = result.address.clone().expect("an eligible user has an address");
            prop_assert!(address::form_problem(&chosen.address).is_none(), "{:?}", chosen);
            let domain = address::domain_of(&chosen.address).unwrap();
            prop_assert!(tenant().verified_domains.covering(&domain).is_none());
            if user.is_synced() {
                prop_assert!(!result.set_mail);
                prop_assert!(user.mail.as_deref().is_some_and(|m| m.eq_ignore_ascii_case(&chosen.address)));
            }
        }
    }
}

#[test]
fn a_redemption_reset_keeps_being_external_as_information_only() {
    let mut user = partner();
    user.external_user_state = Some("Accepted".into());
    let mut result = eval(&user);
    assert_eq!(result.decision, Decision::Blocked);
    assert_eq!(codes(&result, Severity::Blocker), ["already-external"]);
    allow_redemption_reset(&mut result);
    assert_eq!(result.decision, Decision::Eligible);
    assert!(codes(&result, Severity::Info).contains(&"already-external"));

    let mut also_mailbox = user.clone();
    also_mailbox.assigned_plans = vec![plan(MAILBOX, "Enabled")];
    let mut result = eval(&also_mailbox);
    allow_redemption_reset(&mut result);
    assert_eq!(
        result.decision,
        Decision::Blocked,
        "other blockers still block"
    );
}

#[test]
fn a_user_converted_in_another_wave_is_blocked_and_no_one_else_changes() {
    let plain = eval(&partner());
    let mut unchanged = plain.clone();
    mark_converted_elsewhere(&mut unchanged, &[]);
    assert_eq!(
        unchanged, plain,
        "no history, no change (nor of the plan hash)"
    );
    assert_eq!(
        plan_hash(std::slice::from_ref(&unchanged)),
        plan_hash(std::slice::from_ref(&plain))
    );

    let mut converted = plain.clone();
    mark_converted_elsewhere(&mut converted, &["first (invited)".to_owned()]);
    assert_eq!(converted.decision, Decision::Blocked);
    assert_eq!(
        codes(&converted, Severity::Blocker),
        ["converted-in-another-wave"]
    );
    assert_eq!(converted.findings[0].detail, "first (invited)");
}
