//! Which members of a wave a scramble takes, and why it leaves the others: converted, synced
//! users with a usable source anchor, by default only once they redeemed. Pure: no I/O, no
//! clock.

use std::fmt;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::anchor::{AnchorError, ObjectGuid};
use super::ldap::Target;
use crate::domain::{OnPremisesProperties, UserId, UserState};
use crate::input::ScrambleResultRow;

/// A wave member as the selection sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub user_id: UserId,
    pub user_principal_name: String,
    pub state: UserState,
    pub scrambled_at: Option<OffsetDateTime>,
    pub scrambled_on: Option<String>,
    /// `None` when the store has no snapshot of the user.
    pub on_premises: Option<OnPremisesProperties>,
}

/// Which converted members are due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Only those who redeemed (`accepted`): their new sign-in is known to work.
    Accepted,
    /// Also those invited and not yet redeemed (`--include-invited`).
    Invited,
}

/// A member left out, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub user_id: UserId,
    pub user_principal_name: String,
    pub reason: SkipReason,
}

/// Why a member is not scrambled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// Its conversion is not recorded (planned, excluded, ready, failed, drifted, inviting).
    NotConverted(UserState),
    /// Invited, not redeemed yet, and the scope is [`Scope::Accepted`].
    NotRedeemed,
    AlreadyScrambled {
        at: Option<OffsetDateTime>,
        on: Option<String>,
    },
    /// Not synced from AD: there is no on-premises password.
    CloudOnly,
    /// The store has no snapshot of the user.
    NoSnapshot,
    /// Synced, but without `onPremisesImmutableId`.
    NoAnchor,
    /// The anchor is not an `objectGUID`.
    BadAnchor(AnchorError),
}

impl SkipReason {
    /// A stable code, for scripts.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotConverted(_) => "not-converted",
            Self::NotRedeemed => "not-redeemed",
            Self::AlreadyScrambled { .. } => "already-scrambled",
            Self::CloudOnly => "cloud-only",
            Self::NoSnapshot => "no-snapshot",
            Self::NoAnchor => "no-source-anchor",
            Self::BadAnchor(_) => "source-anchor-not-a-guid",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotConverted(state) => write!(f, "not converted (state `{state}`)"),
            Self::NotRedeemed => f.write_str(
                "invited, not redeemed yet: scramble after `status --refresh` shows it accepted, or pass --include-invited",
            ),
            Self::AlreadyScrambled { at, on } => {
                f.write_str("already scrambled")?;
                if let Some(at) = at {
                    write!(
                        f,
                        " at {}",
                        at.format(&Rfc3339).unwrap_or_default()
                    )?;
                }
                if let Some(on) = on {
                    write!(f, " on {on}")?;
                }
                Ok(())
            }
            Self::CloudOnly => f.write_str("cloud-only: no on-premises account"),
            Self::NoSnapshot => {
                f.write_str("no snapshot of the user: run `b2b-convert discover` again")
            }
            Self::NoAnchor => f.write_str(
                "synced, but without onPremisesImmutableId: the AD account cannot be found",
            ),
            Self::BadAnchor(err) => write!(f, "{err}"),
        }
    }
}

/// Splits a wave's members into scramble targets (in the given order) and skips.
pub fn select(members: &[Member], scope: Scope) -> (Vec<Target>, Vec<Skipped>) {
    let mut targets = Vec::new();
    let mut skipped = Vec::new();
    for member in members {
        match judge(member, scope) {
            Ok(target) => targets.push(target),
            Err(reason) => skipped.push(Skipped {
                user_id: member.user_id,
                user_principal_name: member.user_principal_name.clone(),
                reason,
            }),
        }
    }
    (targets, skipped)
}

fn judge(member: &Member, scope: Scope) -> Result<Target, SkipReason> {
    match member.state {
        UserState::Scrambled => {
            return Err(SkipReason::AlreadyScrambled {
                at: member.scrambled_at,
                on: member.scrambled_on.clone(),
            });
        }
        UserState::Invited | UserState::Accepted => {}
        other => return Err(SkipReason::NotConverted(other)),
    }
    let on_premises = member.on_premises.as_ref().ok_or(SkipReason::NoSnapshot)?;
    if on_premises.sync_enabled != Some(true) {
        return Err(SkipReason::CloudOnly);
    }
    if member.state == UserState::Invited && scope == Scope::Accepted {
        return Err(SkipReason::NotRedeemed);
    }
    let anchor = on_premises
        .immutable_id
        .as_deref()
        .filter(|a| !a.trim().is_empty())
        .ok_or(SkipReason::NoAnchor)?;
    let object_guid = ObjectGuid::from_immutable_id(anchor).map_err(SkipReason::BadAnchor)?;
    Ok(Target {
        user_id: member.user_id,
        user_principal_name: member.user_principal_name.clone(),
        object_guid,
        sam_account_name: on_premises.sam_account_name.clone(),
        distinguished_name: on_premises.distinguished_name.clone(),
        domain_name: on_premises.domain_name.clone(),
    })
}

/// What to do with one row of a script's results file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultAction {
    /// Record it: a scramble, or the script's failure.
    Record,
    /// The member is already recorded as scrambled (a file imported twice, or a later
    /// scramble): nothing to record.
    AlreadyRecorded,
}

/// Checks a results row against the wave it is imported into: the same wave, a member of
/// it, the `objectGUID` its snapshot names, and a conversion on record. The error is the
/// message for the row's line.
pub fn judge_result(
    row: &ScrambleResultRow,
    wave: &str,
    member: Option<&Member>,
) -> Result<ResultAction, String> {
    if !row.wave.eq_ignore_ascii_case(wave) {
        return Err(format!("this row is for wave `{}`, not `{wave}`", row.wave));
    }
    let member =
        member.ok_or_else(|| format!("user {} is not a member of wave {wave}", row.user_id))?;
    let expected = member
        .on_premises
        .as_ref()
        .and_then(|p| p.immutable_id.as_deref())
        .and_then(|a| ObjectGuid::from_immutable_id(a).ok())
        .ok_or_else(|| {
            format!(
                "user {} has no objectGUID source anchor in the snapshot, so no script was made for it",
                row.user_id
            )
        })?;
    if expected.to_guid() != row.object_guid {
        return Err(format!(
            "ObjectGuid {} is not the one Entra ID shows for user {} ({expected})",
            row.object_guid, row.user_id
        ));
    }
    match member.state {
        UserState::Scrambled => Ok(ResultAction::AlreadyRecorded),
        UserState::Invited | UserState::Accepted => Ok(ResultAction::Record),
        other => Err(format!(
            "user {} is `{other}`: its conversion is not on record, so no script was made for it",
            row.user_id
        )),
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use uuid::Uuid;

    use super::*;

    const GUID: &str = "kkQ3WJj/WUqV9AGCBCc8TA==";

    fn member(state: UserState, synced: Option<bool>, anchor: Option<&str>) -> Member {
        Member {
            user_id: UserId::from_uuid(Uuid::from_u128(1)),
            user_principal_name: "p@contoso.com".into(),
            state,
            scrambled_at: None,
            scrambled_on: None,
            on_premises: Some(OnPremisesProperties {
                sync_enabled: synced,
                immutable_id: anchor.map(str::to_owned),
                sam_account_name: Some("p".into()),
                distinguished_name: Some("CN=P,DC=corp".into()),
                domain_name: Some("corp.contoso.com".into()),
                user_principal_name: None,
            }),
        }
    }

    #[rstest]
    #[case::accepted(UserState::Accepted, Some(true), Some(GUID), Scope::Accepted, None)]
    #[case::invited_included(UserState::Invited, Some(true), Some(GUID), Scope::Invited, None)]
    #[case::invited(
        UserState::Invited,
        Some(true),
        Some(GUID),
        Scope::Accepted,
        Some("not-redeemed")
    )]
    #[case::ready(
        UserState::Ready,
        Some(true),
        Some(GUID),
        Scope::Invited,
        Some("not-converted")
    )]
    #[case::failed(
        UserState::Failed,
        Some(true),
        Some(GUID),
        Scope::Invited,
        Some("not-converted")
    )]
    #[case::inviting(
        UserState::Inviting,
        Some(true),
        Some(GUID),
        Scope::Invited,
        Some("not-converted")
    )]
    #[case::scrambled(
        UserState::Scrambled,
        Some(true),
        Some(GUID),
        Scope::Invited,
        Some("already-scrambled")
    )]
    #[case::cloud(UserState::Accepted, None, None, Scope::Accepted, Some("cloud-only"))]
    #[case::sync_off(
        UserState::Accepted,
        Some(false),
        Some(GUID),
        Scope::Accepted,
        Some("cloud-only")
    )]
    #[case::invited_cloud(UserState::Invited, None, None, Scope::Accepted, Some("cloud-only"))]
    #[case::no_anchor(
        UserState::Accepted,
        Some(true),
        None,
        Scope::Accepted,
        Some("no-source-anchor")
    )]
    #[case::custom_anchor(
        UserState::Accepted,
        Some(true),
        Some("bGludXM="),
        Scope::Accepted,
        Some("source-anchor-not-a-guid")
    )]
    fn members_are_taken_or_skipped_with_a_reason(
        #[case] state: UserState,
        #[case] synced: Option<bool>,
        #[case] anchor: Option<&str>,
        #[case] scope: Scope,
        #[case] skip: Option<&str>,
    ) {
        let (targets, skipped) = select(&[member(state, synced, anchor)], scope);
        match skip {
            None => {
                assert_eq!(targets.len(), 1, "{skipped:?}");
                assert_eq!(targets[0].object_guid.immutable_id(), GUID);
                assert_eq!(targets[0].sam_account_name.as_deref(), Some("p"));
            }
            Some(code) => {
                assert!(targets.is_empty());
                assert_eq!(skipped[0].reason.code(), code, "{}", skipped[0].reason);
            }
        }
    }

    #[test]
    fn a_member_without_snapshot_is_skipped() {
        let mut m = member(UserState::Accepted, Some(true), Some(GUID));
        m.on_premises = None;
        let (_, skipped) = select(&[m], Scope::Accepted);
        assert_eq!(skipped[0].reason, SkipReason::NoSnapshot);
    }

    #[test]
    fn results_rows_must_match_the_wave_and_the_member() {
        use crate::input::ScrambleOutcome;
        let guid = ObjectGuid::from_immutable_id(GUID).unwrap().to_guid();
        let row = ScrambleResultRow {
            line: 2,
            wave: "Pilot".into(),
            user_id: UserId::from_uuid(Uuid::from_u128(1)),
            object_guid: guid,
            sam_account_name: Some("p".into()),
            outcome: ScrambleOutcome::Failed {
                completed_at: None,
                error: "x".into(),
            },
        };
        let accepted = member(UserState::Accepted, Some(true), Some(GUID));
        assert_eq!(
            judge_result(&row, "pilot", Some(&accepted)),
            Ok(ResultAction::Record)
        );
        let done = member(UserState::Scrambled, Some(true), Some(GUID));
        assert_eq!(
            judge_result(&row, "pilot", Some(&done)),
            Ok(ResultAction::AlreadyRecorded)
        );
        let err = judge_result(&row, "second", Some(&accepted)).unwrap_err();
        assert!(err.contains("wave `Pilot`, not `second`"), "{err}");
        assert!(
            judge_result(&row, "pilot", None)
                .unwrap_err()
                .contains("not a member")
        );
        let ready = member(UserState::Ready, Some(true), Some(GUID));
        assert!(
            judge_result(&row, "pilot", Some(&ready))
                .unwrap_err()
                .contains("`ready`")
        );
        let other = ScrambleResultRow {
            object_guid: Uuid::from_u128(9),
            ..row.clone()
        };
        let err = judge_result(&other, "pilot", Some(&accepted)).unwrap_err();
        assert!(
            err.contains("58374492-ff98-4a59-95f4-018204273c4c"),
            "{err}"
        );
    }
}
