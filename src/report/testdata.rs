//! Synthetic report data for the renderers' tests: a small sample with one of everything
//! (including hostile display names), and a generator for large waves.

use time::macros::datetime;
use uuid::Uuid;

use crate::domain::{
    Decision, PartnerPreflight, PreflightReason, RealmKind, Redemption, UserId, UserState,
};
use crate::rules::{AddressOrigin, Finding, Reason, Severity};

use super::{ReportData, ReportMember, ReportTenant, ReportWave, SCHEMA_VERSION};

pub fn finding(reason: Reason, severity: Severity, detail: &str) -> Finding {
    Finding {
        reason,
        severity,
        detail: detail.to_owned(),
    }
}

/// An eligible member invited at `address` (from `mail`), with nothing to report.
pub fn member(n: u128, upn: &str, display_name: &str, address: Option<&str>) -> ReportMember {
    ReportMember {
        user_id: UserId::from_uuid(Uuid::from_u128(n)),
        user_principal_name: upn.to_owned(),
        display_name: Some(display_name.to_owned()),
        synced: false,
        decision: Decision::Eligible,
        state: UserState::Ready,
        address: address.map(str::to_owned),
        address_origin: address.map(|_| AddressOrigin::Mail),
        set_mail: false,
        findings: Vec::new(),
        realm: None,
        last_error: None,
        mail_restore: None,
        invited_at: None,
        accepted_at: None,
    }
}

/// Marks a member blocked by `findings` (blockers first, as the planner stores them).
fn blocked(mut member: ReportMember, findings: Vec<Finding>) -> ReportMember {
    member.decision = Decision::Blocked;
    member.state = UserState::Excluded;
    member.findings = findings;
    member
}

fn empty(name: &str, started: bool) -> ReportData {
    ReportData {
        warnings: Vec::new(),
        schema_version: SCHEMA_VERSION,
        generated_at: datetime!(2026-11-21 09:30 UTC),
        tool_version: "0.1.0".to_owned(),
        tenant: ReportTenant {
            id: Some("0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0".to_owned()),
            name: Some("Contoso <Test> & Co".to_owned()),
            verified_domains: vec!["contoso.example".to_owned()],
            federation_domains: vec!["fed.example".to_owned()],
        },
        wave: ReportWave {
            name: name.to_owned(),
            selector: serde_json::json!({ "csv": "pilot.csv" }),
            cap: Some(500),
            created_at: datetime!(2026-11-20 08:00 UTC),
            planned_at: Some(datetime!(2026-11-20 08:05 UTC)),
            plan_hash: Some(
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".to_owned(),
            ),
            started,
        },
        settings: serde_json::json!({
            "invitation": {
                "redirect_url": "https://myapps.microsoft.com/?tenantId=0b1c2d3e",
                "send_message": false,
                "custom_message": "</script><b>hi</b>",
                "set_mail_before_invite": true,
            },
            "rules": { "exchange-mailbox": "enforce", "disabled-account": "warn" },
        }),
        execution: super::ReportExecution {
            invitations_per_second: 24.0,
            max_invitations_per_day: Some(200),
            restore_mail_on_failure: true,
            permissions: vec![
                super::ReportPermission {
                    permission: "User.Invite.All".to_owned(),
                    purpose: "invite users (run)".to_owned(),
                },
                super::ReportPermission {
                    permission: "User.ReadWrite.All".to_owned(),
                    purpose: "set `mail` before inviting (run)".to_owned(),
                },
            ],
        },
        wave_findings: vec![finding(
            Reason::CustomMessageDropped,
            Severity::Warning,
            "auth.method = \"certificate\"",
        )],
        partner_preflight: Vec::new(),
        members: Vec::new(),
    }
}

/// Six users: three eligible (one with a warning and a set-mail step), three blocked (one
/// without an address), with display names that try HTML and formula injection.
pub fn sample() -> ReportData {
    let mut data = empty("pilot", false);
    let mut alice = member(
        1,
        "alice@contoso.example",
        "Alice Example",
        Some("alice@partner.example"),
    );
    alice.realm = Some(RealmKind::Managed);
    let mut bob = member(
        2,
        "bob@contoso.example",
        "Bob \"Bobby\" O'Neil",
        Some("Bob@Partner.Example"),
    );
    bob.realm = Some(RealmKind::Managed);
    bob.set_mail = true;
    bob.address_origin = Some(AddressOrigin::OtherMails);
    bob.findings = vec![
        finding(
            Reason::DisabledAccount,
            Severity::Warning,
            "accountEnabled is false",
        ),
        finding(Reason::SetMailFirst, Severity::Info, "mail is empty"),
    ];
    let carol = blocked(
        member(
            3,
            "carol@contoso.example",
            "Carol",
            Some("carol@other.example"),
        ),
        vec![
            finding(
                Reason::ExchangeMailbox,
                Severity::Blocker,
                "EXCHANGE_S_STANDARD",
            ),
            finding(
                Reason::RealmNotChecked,
                Severity::Info,
                "other.example: timeout",
            ),
        ],
    );
    let mut mallory = blocked(
        member(
            4,
            "mallory@contoso.example",
            "<script>alert(1)</script> & \"x\"",
            None,
        ),
        vec![finding(
            Reason::AmbiguousAddress,
            Severity::Blocker,
            "</script><img src=x onerror=alert(1)>",
        )],
    );
    mallory.address_origin = None;
    let mut dave = blocked(
        member(
            5,
            "dave@contoso.example",
            "=HYPERLINK(\"http://evil.example\",\"x\")",
            Some("dave@partner.example"),
        ),
        vec![finding(
            Reason::AddressCollision,
            Severity::Blocker,
            "contact 42 (mail)",
        )],
    );
    dave.realm = Some(RealmKind::Managed);
    let mut erin = member(6, "erin@contoso.example", "Erin", Some("erin@mail.example"));
    erin.realm = Some(RealmKind::Unknown);
    data.members = vec![alice, bob, carol, mallory, dave, erin];
    data.partner_preflight = super::preflight::preflight_rows(
        &data.members,
        vec![
            preflight(
                "partner.example",
                Redemption::AutomaticIfPartnerAllows,
                PreflightReason::InboundAllowed,
            ),
            preflight(
                "mail.example",
                Redemption::NotChecked,
                PreflightReason::NotEntra,
            ),
        ],
        &crate::rules::DomainSet::new(&data.tenant.verified_domains),
    );
    data
}

/// A stored pre-flight answer for `domain`, checked at the sample's planning time.
pub fn preflight(
    domain: &str,
    redemption: Redemption,
    reason: PreflightReason,
) -> PartnerPreflight {
    PartnerPreflight {
        domain: domain.to_owned(),
        tenant_id: (redemption != Redemption::NotChecked).then(|| Uuid::from_u128(0xfab)),
        redemption,
        reason,
        detail: None,
        checked_at: datetime!(2026-11-20 08:05 UTC),
    }
}

const DOMAINS: [(&str, Option<RealmKind>); 8] = [
    ("fabrikam.example", Some(RealmKind::Managed)),
    ("northwind.example", Some(RealmKind::Federated)),
    ("tailspin.example", Some(RealmKind::Managed)),
    ("gmail.example", Some(RealmKind::Unknown)),
    ("litware.example", None),
    ("adatum.example", Some(RealmKind::Managed)),
    ("woodgrove.example", Some(RealmKind::Federated)),
    ("proseware.example", Some(RealmKind::Unknown)),
];

/// A wave of `count` users with a realistic mix of decisions, reasons, domains and, when
/// `started`, states after a run. Deterministic.
pub fn synthetic(count: usize, started: bool) -> ReportData {
    let mut data = empty("wave-2", started);
    data.members = (0..count).map(|i| synthetic_member(i, started)).collect();
    let stored = DOMAINS
        .iter()
        .enumerate()
        .map(|(k, (domain, realm))| match (k % 3, realm) {
            (_, Some(RealmKind::Unknown)) => {
                preflight(domain, Redemption::NotChecked, PreflightReason::NotEntra)
            }
            (0, _) => preflight(
                domain,
                Redemption::AutomaticIfPartnerAllows,
                PreflightReason::InboundAllowed,
            ),
            (1, _) => preflight(
                domain,
                Redemption::AsksPartner,
                PreflightReason::NoPartnerEntry,
            ),
            _ => {
                let mut failed = preflight(
                    domain,
                    Redemption::NotChecked,
                    PreflightReason::PermissionMissing,
                );
                failed.detail = Some(
                    "Graph refused GET /v1.0/policies/crossTenantAccessPolicy/default: 403"
                        .to_owned(),
                );
                failed
            }
        })
        .collect();
    data.partner_preflight = super::preflight::preflight_rows(
        &data.members,
        stored,
        &crate::rules::DomainSet::new(&data.tenant.verified_domains),
    );
    data
}

fn synthetic_member(i: usize, started: bool) -> ReportMember {
    // Skewed towards the first domains, so the domain chart has a long tail.
    let (domain, realm) = DOMAINS[(i * i + i / 3) % 29 % DOMAINS.len()];
    let upn = format!("partner{i:06}@contoso.example");
    let address = format!("first.last{i}@{domain}");
    let mut user = member(
        i as u128 + 1,
        &upn,
        &format!("Partner {i:06} ({domain})"),
        Some(&address),
    );
    user.realm = realm;
    user.synced = i.is_multiple_of(3);
    user.set_mail = i % 4 == 1;
    let blocker = match i % 10 {
        0 => Some((Reason::ExchangeMailbox, "EXCHANGE_S_STANDARD")),
        3 => Some((Reason::OnPremisesUpnSet, "partner@corp.local")),
        7 if i % 20 == 7 => Some((Reason::HomeRealmNotEntra, "realm is Unknown")),
        9 if i % 30 == 9 => Some((Reason::AddressCollision, "contact 17 (proxyAddresses)")),
        _ => None,
    };
    if i % 11 == 5 {
        user.findings.push(finding(
            Reason::DisabledAccount,
            Severity::Warning,
            "accountEnabled is false",
        ));
    }
    if let Some((reason, detail)) = blocker {
        let mut findings = std::mem::take(&mut user.findings);
        findings.insert(0, finding(reason, Severity::Blocker, detail));
        user = blocked(user, findings);
    } else if started {
        user.state = match i % 17 {
            0 => UserState::Failed,
            1 => UserState::Drifted,
            2..=5 => UserState::Invited,
            6 => UserState::Scrambled,
            _ => UserState::Accepted,
        };
        if user.state == UserState::Failed {
            user.last_error = Some("429 TooManyRequests after 5 attempts".to_owned());
        }
    }
    user
}

/// A stored eligible member `n` in `state` (UPN `u{n}@contoso.com`, address
/// `p{n}@fabrikam.com`), invited at a fixed time, for renderers of stored members.
pub fn stored_member(
    n: u128,
    state: crate::domain::UserState,
) -> (crate::store::WaveMember, crate::store::MemberNames) {
    let at = time::macros::datetime!(2026-11-21 08:00 UTC);
    let member = crate::store::WaveMember {
        plan: crate::store::PlannedMember {
            user_id: crate::domain::UserId::from_uuid(uuid::Uuid::from_u128(n)),
            decision: crate::domain::Decision::Eligible,
            findings: vec![],
            chosen_address: Some(format!("p{n}@fabrikam.com")),
            address_origin: None,
            set_mail: false,
            snapshot_fingerprint: String::new(),
        },
        state,
        failure_kind: None,
        attempts: 1,
        last_error_code: None,
        last_error_message: None,
        invitation_id: None,
        invite_redeem_url: None,
        planned_at: at,
        state_changed_at: at,
        invited_at: Some(at),
        accepted_at: None,
        scrambled_at: None,
        scrambled_on: None,
        mail_set_fingerprint: None,
        mail_restore: None,
        external_state_changed_at: None,
    };
    let names = crate::store::MemberNames {
        user_principal_name: format!("u{n}@contoso.com"),
        display_name: Some(format!("Partner {n}")),
        synced: false,
        profile: crate::domain::UserProfile::default(),
    };
    (member, names)
}
