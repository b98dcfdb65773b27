//! Verification of converted users: compares what a conversion had to keep (the baseline read
//! right before the invitation) with what Graph says now, and names every difference: the
//! object gone or answering with another id, the UPN changed, groups removed or added, the app
//! role assignment count changed, or no baseline to compare with.
//!
//! Pure: no I/O and no clock. The `verify` command reads the store and Graph and passes both
//! in; this module only decides what differs and how to say it.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use uuid::Uuid;

use crate::domain::{ConversionBaseline, UserId};

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
}
