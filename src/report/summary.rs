//! The counts every report shows: users by decision, by reason, by state and by external
//! domain, and the redemption funnel after a run.
//!
//! Owns counting only, in one pass over the members. It must not format anything: each
//! renderer presents the same numbers its own way.

use std::collections::{BTreeMap, HashMap};

use crate::domain::{Decision, RealmKind, UserState};
use crate::rules::{Reason, Severity};

use super::ReportData;

/// How many users one reason concerns, at one severity. A switchable rule can appear twice
/// (as a blocker and as a warning) only if the stored plan mixed modes; it is then counted
/// once per severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReasonCount {
    pub reason: Reason,
    pub severity: Severity,
    /// Every user with the finding, eligible or blocked.
    pub users: usize,
    /// Of those, the users still eligible (what the run does to them: a warning or a
    /// `set-mail-first` counts here the same as in the summary's cards).
    pub eligible: usize,
}

/// The users invited at one external domain, and what realm discovery says about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainCount {
    pub domain: String,
    pub users: usize,
    /// `None`: the realm was not checked (or could not be).
    pub realm: Option<RealmKind>,
}

/// One stage of the funnel after a run: how many users got at least that far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FunnelStage {
    pub label: &'static str,
    pub users: usize,
}

/// The counts of one report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub users: usize,
    pub eligible: usize,
    pub blocked: usize,
    /// Users with at least one warning (eligible or not).
    pub with_warnings: usize,
    /// Eligible users for whom `run` sets `mail` before inviting: the set-mail steps.
    pub set_mail: usize,
    /// Most severe first, then most users, then by code.
    pub reasons: Vec<ReasonCount>,
    /// Users by state, in the order of [`UserState::ALL`]; states nobody is in are left out.
    pub states: Vec<(UserState, usize)>,
    /// Most users first, then by name.
    pub domains: Vec<DomainCount>,
    /// Users without an address to invite.
    pub without_address: usize,
}

impl Summary {
    pub fn of(data: &ReportData) -> Self {
        let mut summary = Self {
            users: data.members.len(),
            eligible: 0,
            blocked: 0,
            with_warnings: 0,
            set_mail: 0,
            reasons: Vec::new(),
            states: Vec::new(),
            domains: Vec::new(),
            without_address: 0,
        };
        // (users, of them eligible) per finding.
        let mut reasons: BTreeMap<(Severity, Reason), (usize, usize)> = BTreeMap::new();
        let mut states: BTreeMap<UserState, usize> = BTreeMap::new();
        let mut domains: HashMap<String, (usize, Option<RealmKind>)> = HashMap::new();
        let mut seen = Vec::new();
        for member in &data.members {
            match member.decision {
                Decision::Eligible => summary.eligible += 1,
                Decision::Blocked => summary.blocked += 1,
            }
            summary.with_warnings += usize::from(member.has_warnings());
            summary.set_mail +=
                usize::from(member.set_mail && member.decision == Decision::Eligible);
            *states.entry(member.state).or_default() += 1;
            seen.clear();
            for finding in &member.findings {
                let key = (finding.severity, finding.reason);
                if !seen.contains(&key) {
                    seen.push(key);
                    let count = reasons.entry(key).or_default();
                    count.0 += 1;
                    count.1 += usize::from(member.decision == Decision::Eligible);
                }
            }
            match member.address_domain() {
                Some(domain) => {
                    let entry = domains.entry(domain).or_default();
                    entry.0 += 1;
                    entry.1 = entry.1.or(member.realm);
                }
                None => summary.without_address += 1,
            }
        }
        summary.reasons = reasons
            .into_iter()
            .map(|((severity, reason), (users, eligible))| ReasonCount {
                reason,
                severity,
                users,
                eligible,
            })
            .collect();
        summary
            .reasons
            .sort_by(|a, b| (a.severity, b.users, a.reason).cmp(&(b.severity, a.users, b.reason)));
        summary.states = UserState::ALL
            .iter()
            .filter_map(|state| states.get(state).map(|&users| (*state, users)))
            .collect();
        summary.domains = domains
            .into_iter()
            .map(|(domain, (users, realm))| DomainCount {
                domain,
                users,
                realm,
            })
            .collect();
        summary
            .domains
            .sort_by(|a, b| b.users.cmp(&a.users).then_with(|| a.domain.cmp(&b.domain)));
        summary
    }

    /// Users in one state.
    pub fn in_state(&self, state: UserState) -> usize {
        self.states
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, users)| *users)
    }

    /// Users in any of the given states.
    fn in_states(&self, states: &[UserState]) -> usize {
        states.iter().map(|&state| self.in_state(state)).sum()
    }

    /// Users invited, whatever happened next.
    pub fn invited(&self) -> usize {
        self.in_states(&[
            UserState::Invited,
            UserState::Accepted,
            UserState::Scrambled,
        ])
    }

    /// Users who redeemed their invitation.
    pub fn accepted(&self) -> usize {
        self.in_states(&[UserState::Accepted, UserState::Scrambled])
    }

    /// The reason counts of one severity, in the order of [`Summary::reasons`].
    pub fn reasons_of(&self, severity: Severity) -> impl Iterator<Item = &ReasonCount> {
        self.reasons.iter().filter(move |r| r.severity == severity)
    }

    /// The funnel after a run: in the wave, eligible, invited, accepted, scrambled. Users who
    /// failed, drifted or are being invited drop out of it; [`Summary::states`] has them.
    pub fn funnel(&self) -> [FunnelStage; 5] {
        [
            FunnelStage {
                label: "in wave",
                users: self.users,
            },
            FunnelStage {
                label: "eligible",
                users: self.eligible,
            },
            FunnelStage {
                label: "invited",
                users: self.invited(),
            },
            FunnelStage {
                label: "accepted",
                users: self.accepted(),
            },
            FunnelStage {
                label: "scrambled",
                users: self.in_state(UserState::Scrambled),
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testdata::{self, finding};

    #[test]
    fn counts_decisions_warnings_reasons_and_domains() {
        let data = testdata::sample();
        let summary = Summary::of(&data);
        assert_eq!(summary.users, 6);
        assert_eq!(summary.eligible, 3);
        assert_eq!(summary.blocked, 3);
        assert_eq!(summary.with_warnings, 1);
        assert_eq!(summary.set_mail, 1);
        assert_eq!(summary.without_address, 1);
        let first = summary.reasons[0];
        assert_eq!(first.severity, Severity::Blocker);
        assert_eq!(summary.reasons_of(Severity::Blocker).count(), 3);
        let partner = summary
            .domains
            .iter()
            .find(|d| d.domain == "partner.example")
            .unwrap();
        assert_eq!(partner.users, 3, "domains are compared case-insensitively");
        assert_eq!(partner.realm, Some(RealmKind::Managed));
        assert_eq!(summary.domains[0].domain, "partner.example");
    }

    #[test]
    fn a_reason_repeated_on_one_user_counts_that_user_once() {
        let mut data = testdata::sample();
        data.members.truncate(1);
        data.members[0].findings = vec![
            finding(Reason::AddressCollision, Severity::Blocker, "user a"),
            finding(Reason::AddressCollision, Severity::Blocker, "contact b"),
        ];
        let summary = Summary::of(&data);
        assert_eq!(summary.reasons.len(), 1);
        assert_eq!(summary.reasons[0].users, 1);
    }

    #[test]
    fn the_funnel_counts_users_who_got_at_least_that_far() {
        let data = testdata::synthetic(1000, true);
        let summary = Summary::of(&data);
        let funnel = summary.funnel();
        assert_eq!(funnel[0].users, 1000);
        for pair in funnel.windows(2) {
            assert!(pair[0].users >= pair[1].users, "{pair:?}");
        }
        assert!(funnel[3].users > 0);
        let total: usize = summary.states.iter().map(|(_, users)| users).sum();
        assert_eq!(total, 1000);
    }
}
