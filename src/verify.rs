//! Verification of converted users: compares what a conversion had to keep (the baseline read
//! right before the invitation) with what Graph says now, and names every difference: the
//! object gone or answering with another id, the UPN changed, groups removed or added, the app
//! role assignment count changed, or no baseline to compare with. And, from the directory
//! audit log, whether the service logged each conversion ([`corroborate`]): logged, logged as
//! failed, missing, or not to be expected (older than the log's retention, or too recent).
//!
//! Pure: no I/O and no clock. The `verify` command reads the store and Graph and passes both
//! in; this module only decides what differs and how to say it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{ConversionBaseline, UserId};
use crate::graph::audit_logs::ConversionEvent;
use crate::store::TenantWrite;

/// What Graph says about a converted user now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Current<'a> {
    /// Graph answered 404 for the user's object id.
    Gone,
    /// The user's state now, read the same way as the baseline.
    Found(&'a ConversionBaseline),
}

/// A group, with its name when one is known.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupRef {
    pub id: Uuid,
    pub name: Option<String>,
}

impl fmt::Display for GroupRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{name} ({})", self.id),
            None => write!(f, "{}", self.id),
        }
    }
}

/// One way a converted user differs from its baseline (or why it cannot be compared).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "check", rename_all = "kebab-case")]
pub enum Difference {
    /// No baseline was recorded before the invitation: nothing to compare with.
    NoBaseline,
    /// The object id answers 404: the user was deleted (or is out of the app's reach).
    ObjectGone,
    /// Graph answered for the id with another object id.
    ObjectIdChanged {
        before: UserId,
        after: UserId,
    },
    UpnChanged {
        before: String,
        after: String,
    },
    /// Direct group memberships the user had before and has no longer.
    GroupsRemoved {
        groups: Vec<GroupRef>,
    },
    /// Direct group memberships the user has now and did not have before.
    GroupsAdded {
        groups: Vec<GroupRef>,
    },
    AppRoleAssignmentsChanged {
        before: u32,
        after: u32,
    },
}

impl Difference {
    /// The stable code shown in tables, JSON and the event log.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoBaseline => "no-baseline",
            Self::ObjectGone => "object-gone",
            Self::ObjectIdChanged { .. } => "object-id-changed",
            Self::UpnChanged { .. } => "upn-changed",
            Self::GroupsRemoved { .. } => "groups-removed",
            Self::GroupsAdded { .. } => "groups-added",
            Self::AppRoleAssignmentsChanged { .. } => "app-role-assignments-changed",
        }
    }

    /// Whether this says the user could not be verified, rather than that it differs.
    pub fn is_unverifiable(&self) -> bool {
        matches!(self, Self::NoBaseline)
    }
}

fn list(groups: &[GroupRef]) -> String {
    groups
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoBaseline => {
                f.write_str("not verifiable: no baseline was recorded before the invitation")
            }
            Self::ObjectGone => f.write_str("the object id no longer exists (404)"),
            Self::ObjectIdChanged { before, after } => {
                write!(f, "object id {before} answered as {after}")
            }
            Self::UpnChanged { before, after } => write!(f, "UPN {before} is now {after}"),
            Self::GroupsRemoved { groups } => {
                write!(
                    f,
                    "no longer in {} group(s): {}",
                    groups.len(),
                    list(groups)
                )
            }
            Self::GroupsAdded { groups } => {
                write!(f, "now also in {} group(s): {}", groups.len(), list(groups))
            }
            Self::AppRoleAssignmentsChanged { before, after } => {
                write!(f, "app role assignments {before} -> {after}")
            }
        }
    }
}

/// How one user came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Matches,
    Differs,
    NotVerifiable,
}

impl Verdict {
    /// The verdict for a user's differences.
    pub fn of(differences: &[Difference]) -> Self {
        if differences.iter().any(Difference::is_unverifiable) {
            Self::NotVerifiable
        } else if differences.is_empty() {
            Self::Matches
        } else {
            Self::Differs
        }
    }
}

/// Every difference between `baseline` and `current`. `names` gives group names where known
/// (from the current memberships and from looking removed groups up).
pub fn compare(
    baseline: Option<&ConversionBaseline>,
    current: Current<'_>,
    names: &BTreeMap<Uuid, String>,
) -> Vec<Difference> {
    let Some(baseline) = baseline else {
        return vec![Difference::NoBaseline];
    };
    let now = match current {
        Current::Gone => return vec![Difference::ObjectGone],
        Current::Found(now) => now,
    };
    let mut differences = Vec::new();
    if now.user_id != baseline.user_id {
        differences.push(Difference::ObjectIdChanged {
            before: baseline.user_id,
            after: now.user_id,
        });
    }
    if now.user_principal_name != baseline.user_principal_name {
        differences.push(Difference::UpnChanged {
            before: baseline.user_principal_name.clone(),
            after: now.user_principal_name.clone(),
        });
    }
    let group_ref = |id: &Uuid| GroupRef {
        id: *id,
        name: names.get(id).cloned(),
    };
    let removed: Vec<GroupRef> = baseline
        .group_ids
        .iter()
        .filter(|id| !now.group_ids.contains(id))
        .map(group_ref)
        .collect();
    if !removed.is_empty() {
        differences.push(Difference::GroupsRemoved { groups: removed });
    }
    let added: Vec<GroupRef> = now
        .group_ids
        .iter()
        .filter(|id| !baseline.group_ids.contains(id))
        .map(group_ref)
        .collect();
    if !added.is_empty() {
        differences.push(Difference::GroupsAdded { groups: added });
    }
    if now.app_role_assignments != baseline.app_role_assignments {
        differences.push(Difference::AppRoleAssignmentsChanged {
            before: baseline.app_role_assignments,
            after: now.app_role_assignments,
        });
    }
    differences
}

/// The groups of `baseline` that `current` no longer has (whose names a caller may look up).
pub fn removed_groups(baseline: &ConversionBaseline, current: &ConversionBaseline) -> Vec<Uuid> {
    baseline
        .group_ids
        .iter()
        .filter(|id| !current.group_ids.contains(id))
        .copied()
        .collect()
}

/// How far the directory audit log reaches, and how soon an event is expected in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditLogReach {
    /// How long the tenant keeps audit events (30 days with Entra ID P1/P2, 7 without).
    pub retention: Duration,
    /// How long after a conversion its event may take to appear (unverified: Microsoft gives
    /// no figure for the audit log through Graph).
    pub latency: Duration,
}

/// How far before our own record of a conversion its event is still looked for (clock skew
/// between this machine and the service).
pub const AUDIT_CLOCK_SKEW: Duration = Duration::from_mins(10);

impl AuditLogReach {
    /// The oldest time the log still covers at `now`.
    pub fn oldest(&self, now: OffsetDateTime) -> OffsetDateTime {
        now - self.retention
    }

    /// Where to start reading for conversions made at `times`: the earliest, less the clock
    /// skew, but never before the retention. `None` when every conversion is out of reach
    /// (or there is none), so nothing needs to be read.
    pub fn read_from(
        &self,
        times: impl IntoIterator<Item = OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Option<OffsetDateTime> {
        let oldest = self.oldest(now);
        times
            .into_iter()
            .filter(|at| *at >= oldest)
            .min()
            .map(|earliest| (earliest - AUDIT_CLOCK_SKEW).max(oldest))
    }
}

/// What the directory audit log says about one converted user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "finding", rename_all = "kebab-case")]
pub enum AuditFinding {
    /// A successful conversion event names the user.
    Logged {
        event_id: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// Only unsuccessful conversion events name the user (the latest is given).
    Failed {
        event_id: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        result: String,
        reason: Option<String>,
    },
    /// No conversion event names the user, although the log covers its conversion.
    Missing,
    /// Converted before the log's retention: its event can no longer be found.
    BeyondRetention,
    /// Converted too recently for its event to be expected yet.
    TooRecent,
}

impl AuditFinding {
    /// The stable code shown in tables and JSON.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Logged { .. } => "logged",
            Self::Failed { .. } => "failed",
            Self::Missing => "missing",
            Self::BeyondRetention => "beyond-retention",
            Self::TooRecent => "too-recent",
        }
    }

    /// Whether the log contradicts the store: the event is missing or says the conversion
    /// failed.
    pub fn is_unconfirmed(&self) -> bool {
        matches!(self, Self::Failed { .. } | Self::Missing)
    }
}

impl fmt::Display for AuditFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Logged { at, .. } => write!(f, "conversion logged at {at}"),
            Self::Failed {
                at, result, reason, ..
            } => {
                write!(
                    f,
                    "the audit log says the conversion at {at} ended in {result}"
                )?;
                match reason {
                    Some(reason) => write!(f, ": {reason}"),
                    None => Ok(()),
                }
            }
            Self::Missing => f.write_str(
                "no \"Invite internal user to B2B collaboration\" event for this user in the \
                 directory audit log",
            ),
            Self::BeyondRetention => {
                f.write_str("converted before the audit log's retention: no event to find")
            }
            Self::TooRecent => f.write_str("converted too recently for the event to be expected"),
        }
    }
}

/// When each user's first invitation was sent, from the wave's recorded tenant writes (every
/// `POST /invitations`, answered or not): where to look for its conversion event. A later
/// re-invitation moves `invited_at`, not the conversion.
pub fn first_invitations(writes: &[TenantWrite]) -> HashMap<UserId, OffsetDateTime> {
    let mut first: HashMap<UserId, OffsetDateTime> = HashMap::new();
    for write in writes {
        let is_invitation = write.http_method.eq_ignore_ascii_case("POST")
            && write
                .http_path
                .as_deref()
                .is_some_and(|p| p.ends_with("/invitations"));
        if let (true, Some(user)) = (is_invitation, write.user_id) {
            first
                .entry(user)
                .and_modify(|at| *at = (*at).min(write.at))
                .or_insert(write.at);
        }
    }
    first
}

/// The conversion events that name each user.
pub fn events_by_user(events: &[ConversionEvent]) -> HashMap<UserId, Vec<&ConversionEvent>> {
    let mut by_user: HashMap<UserId, Vec<&ConversionEvent>> = HashMap::new();
    for event in events {
        for user in &event.users {
            by_user.entry(*user).or_default().push(event);
        }
    }
    by_user
}

/// What the log says about a user converted at `converted_at` (our own record), given the
/// events that name it. A successful event wins over failed ones (a retry that succeeded);
/// without any, whether one was to be expected depends on the log's reach at `now`.
pub fn corroborate(
    converted_at: OffsetDateTime,
    events: &[&ConversionEvent],
    reach: &AuditLogReach,
    now: OffsetDateTime,
) -> AuditFinding {
    let latest = |succeeded: bool| {
        events
            .iter()
            .filter(|e| e.succeeded() == succeeded)
            .max_by_key(|e| e.at)
    };
    if let Some(event) = latest(true) {
        return AuditFinding::Logged {
            event_id: event.id.clone(),
            at: event.at,
        };
    }
    if let Some(event) = latest(false) {
        return AuditFinding::Failed {
            event_id: event.id.clone(),
            at: event.at,
            result: event.result.clone(),
            reason: event.result_reason.clone(),
        };
    }
    if converted_at < reach.oldest(now) {
        AuditFinding::BeyondRetention
    } else if converted_at > now - reach.latency {
        AuditFinding::TooRecent
    } else {
        AuditFinding::Missing
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use time::macros::datetime;

    use super::*;

    const ALICE: u128 = 1;

    fn state(upn: &str, groups: &[u128], assignments: u32) -> ConversionBaseline {
        ConversionBaseline {
            user_id: UserId::from_uuid(Uuid::from_u128(ALICE)),
            user_principal_name: upn.to_owned(),
            group_ids: groups.iter().map(|g| Uuid::from_u128(*g)).collect(),
            app_role_assignments: assignments,
            taken_at: datetime!(2026-11-21 09:00 UTC),
        }
    }

    fn group(id: u128, name: Option<&str>) -> GroupRef {
        GroupRef {
            id: Uuid::from_u128(id),
            name: name.map(str::to_owned),
        }
    }

    fn names() -> BTreeMap<Uuid, String> {
        BTreeMap::from([
            (Uuid::from_u128(10), "Partners – Pilot".to_owned()),
            (Uuid::from_u128(30), "All partners".to_owned()),
        ])
    }

    #[rstest]
    #[case::unchanged(Some(state("a@contoso.com", &[10, 20], 2)), Some(state("a@contoso.com", &[10, 20], 2)), vec![])]
    #[case::no_baseline(None, Some(state("a@contoso.com", &[10], 1)), vec![Difference::NoBaseline])]
    #[case::no_baseline_even_when_gone(None, None, vec![Difference::NoBaseline])]
    #[case::gone(Some(state("a@contoso.com", &[10], 1)), None, vec![Difference::ObjectGone])]
    #[case::upn(
        Some(state("a@contoso.com", &[], 0)),
        Some(state("a_fabrikam.com#EXT#@contoso.onmicrosoft.com", &[], 0)),
        vec![Difference::UpnChanged {
            before: "a@contoso.com".into(),
            after: "a_fabrikam.com#EXT#@contoso.onmicrosoft.com".into(),
        }]
    )]
    #[case::removed_with_and_without_name(
        Some(state("a@contoso.com", &[10, 20, 40], 2)),
        Some(state("a@contoso.com", &[40], 2)),
        vec![Difference::GroupsRemoved { groups: vec![group(10, Some("Partners – Pilot")), group(20, None)] }]
    )]
    #[case::added(
        Some(state("a@contoso.com", &[10], 2)),
        Some(state("a@contoso.com", &[10, 30], 2)),
        vec![Difference::GroupsAdded { groups: vec![group(30, Some("All partners"))] }]
    )]
    #[case::assignments(
        Some(state("a@contoso.com", &[10], 3)),
        Some(state("a@contoso.com", &[10], 1)),
        vec![Difference::AppRoleAssignmentsChanged { before: 3, after: 1 }]
    )]
    #[case::everything_at_once(
        Some(state("a@contoso.com", &[10], 0)),
        Some(state("b@contoso.com", &[30], 1)),
        vec![
            Difference::UpnChanged { before: "a@contoso.com".into(), after: "b@contoso.com".into() },
            Difference::GroupsRemoved { groups: vec![group(10, Some("Partners – Pilot"))] },
            Difference::GroupsAdded { groups: vec![group(30, Some("All partners"))] },
            Difference::AppRoleAssignmentsChanged { before: 0, after: 1 },
        ]
    )]
    fn differences_are_named(
        #[case] baseline: Option<ConversionBaseline>,
        #[case] now: Option<ConversionBaseline>,
        #[case] expected: Vec<Difference>,
    ) {
        let current = now.as_ref().map_or(Current::Gone, Current::Found);
        assert_eq!(compare(baseline.as_ref(), current, &names()), expected);
    }

    #[test]
    fn another_object_id_is_a_difference() {
        let before = state("a@contoso.com", &[], 0);
        let mut now = before.clone();
        now.user_id = UserId::from_uuid(Uuid::from_u128(2));
        assert_eq!(
            compare(Some(&before), Current::Found(&now), &BTreeMap::new()),
            vec![Difference::ObjectIdChanged {
                before: before.user_id,
                after: now.user_id
            }]
        );
    }

    #[rstest]
    #[case(vec![], Verdict::Matches)]
    #[case(vec![Difference::ObjectGone], Verdict::Differs)]
    #[case(vec![Difference::NoBaseline], Verdict::NotVerifiable)]
    fn verdicts(#[case] differences: Vec<Difference>, #[case] expected: Verdict) {
        assert_eq!(Verdict::of(&differences), expected);
    }

    #[test]
    fn removed_groups_are_the_ones_to_name() {
        let before = state("a@contoso.com", &[10, 20], 0);
        let now = state("a@contoso.com", &[20, 30], 0);
        assert_eq!(removed_groups(&before, &now), vec![Uuid::from_u128(10)]);
    }

    #[test]
    fn differences_read_well_and_serialize_with_their_code() {
        let removed = Difference::GroupsRemoved {
            groups: vec![group(10, Some("Partners – Pilot"))],
        };
        assert_eq!(
            removed.to_string(),
            "no longer in 1 group(s): Partners – Pilot (00000000-0000-0000-0000-00000000000a)"
        );
        let json = serde_json::to_value(&removed).unwrap();
        assert_eq!(json["check"], removed.code());
        assert_eq!(json["groups"][0]["name"], "Partners – Pilot");
        assert_eq!(
            Difference::AppRoleAssignmentsChanged {
                before: 3,
                after: 2
            }
            .to_string(),
            "app role assignments 3 -> 2"
        );
        assert!(
            Difference::NoBaseline
                .to_string()
                .starts_with("not verifiable")
        );
    }

    fn event(id: &str, at: OffsetDateTime, result: &str, users: &[u128]) -> ConversionEvent {
        ConversionEvent {
            id: id.to_owned(),
            at,
            result: result.to_owned(),
            result_reason: (result != "success").then(|| "Invalid request input.".to_owned()),
            initiated_by_app: Some("app".to_owned()),
            users: users
                .iter()
                .map(|u| UserId::from_uuid(Uuid::from_u128(*u)))
                .collect(),
        }
    }

    const REACH: AuditLogReach = AuditLogReach {
        retention: Duration::from_hours(30 * 24),
        latency: Duration::from_mins(30),
    };

    #[rstest]
    #[case::logged(&[("e1", "success")], 10, "logged")]
    #[case::a_success_beats_an_earlier_failure(&[("e1", "failure"), ("e2", "success")], 10, "logged")]
    #[case::failed(&[("e1", "failure"), ("e2", "timeout")], 10, "failed")]
    #[case::missing(&[], 60, "missing")]
    #[case::beyond_retention(&[], 31 * 24 * 60, "beyond-retention")]
    #[case::too_recent(&[], 29, "too-recent")]
    #[case::an_event_is_an_event_even_when_recent(&[("e1", "failure")], 1, "failed")]
    fn the_audit_log_corroborates_or_not(
        #[case] events: &[(&str, &str)],
        #[case] minutes_ago: i64,
        #[case] expected: &str,
    ) {
        let now = datetime!(2026-12-06 09:00 UTC);
        let converted_at = now - time::Duration::minutes(minutes_ago);
        let events: Vec<ConversionEvent> = events
            .iter()
            .enumerate()
            .map(|(k, (id, result))| {
                let k = i64::try_from(k).expect("few");
                event(
                    id,
                    converted_at + time::Duration::seconds(k),
                    result,
                    &[ALICE],
                )
            })
            .collect();
        let refs: Vec<&ConversionEvent> = events.iter().collect();
        let finding = corroborate(converted_at, &refs, &REACH, now);
        assert_eq!(finding.code(), expected, "{finding}");
        assert_eq!(
            finding.is_unconfirmed(),
            matches!(expected, "failed" | "missing")
        );
        if let (
            AuditFinding::Failed {
                event_id, result, ..
            },
            2,
        ) = (&finding, events.len())
        {
            assert_eq!(
                (event_id.as_str(), result.as_str()),
                ("e2", "timeout"),
                "the latest"
            );
        }
    }

    #[test]
    fn the_first_invitation_attempt_of_each_user_is_where_to_look() {
        let at = datetime!(2026-12-06 08:00 UTC);
        let write = |user: u128, minutes: i64, method: &str, path: &str| TenantWrite {
            event_id: 0,
            at: at + time::Duration::minutes(minutes),
            kind: "invitation.sent".to_owned(),
            run_id: None,
            command: None,
            operator: crate::operator::Operator::default(),
            wave: None,
            user_id: Some(UserId::from_uuid(Uuid::from_u128(user))),
            user_principal_name: None,
            http_method: method.to_owned(),
            http_path: Some(path.to_owned()),
            http_status: Some(201),
            request_id: None,
            client_request_id: None,
            mail_change: None,
        };
        let first = first_invitations(&[
            write(1, 30, "POST", "/v1.0/invitations"),
            write(1, 5, "POST", "/v1.0/invitations"),
            write(1, 1, "PATCH", "/v1.0/users/1"),
            write(2, 40, "POST", "/v1.0/invitations"),
        ]);
        assert_eq!(
            first[&UserId::from_uuid(Uuid::from_u128(1))],
            at + time::Duration::minutes(5)
        );
        assert_eq!(
            first[&UserId::from_uuid(Uuid::from_u128(2))],
            at + time::Duration::minutes(40)
        );
        assert_eq!(first.len(), 2);
    }

    #[test]
    fn events_are_indexed_by_every_user_they_name() {
        let at = datetime!(2026-12-06 08:00 UTC);
        let events = [
            event("e1", at, "success", &[1, 2]),
            event("e2", at, "success", &[2]),
        ];
        let by_user = events_by_user(&events);
        assert_eq!(by_user[&UserId::from_uuid(Uuid::from_u128(1))].len(), 1);
        assert_eq!(by_user[&UserId::from_uuid(Uuid::from_u128(2))].len(), 2);
    }

    #[test]
    fn reading_starts_before_the_earliest_conversion_within_the_retention() {
        let now = datetime!(2026-12-06 09:00 UTC);
        let old = now - time::Duration::days(40);
        let first = now - time::Duration::hours(5);
        let later = now - time::Duration::hours(1);
        assert_eq!(
            REACH.read_from([later, first, old], now),
            Some(first - AUDIT_CLOCK_SKEW)
        );
        let edge = now - time::Duration::days(30) + time::Duration::minutes(1);
        assert_eq!(REACH.read_from([edge], now), Some(REACH.oldest(now)));
        assert_eq!(REACH.read_from([old], now), None, "nothing in reach");
        assert_eq!(REACH.read_from([], now), None);
    }
}
