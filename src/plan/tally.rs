//! The counts a plan's summary shows and the domains its chosen addresses are in, taken as the
//! second pass decides the users, and what a re-plan changed compared with the wave's previous
//! plan. Counting only: it must not decide, read or store anything.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::domain::{Decision, UserId};
use crate::rules::{Evaluation, Severity};
use crate::store::{PlannedMember, Replaced};

/// What the summary reports, counted as the users are decided.
#[derive(Debug, Default)]
pub struct Tally {
    pub users: usize,
    pub eligible: usize,
    /// Eligible users whose mail is set first.
    pub set_mail: usize,
    /// Findings by severity and reason code.
    pub findings: BTreeMap<(Severity, &'static str), usize>,
    /// Compared with the wave's previous plan: its members, and what changed.
    pub previous: u64,
    pub added: usize,
    pub removed: u64,
    pub changed: usize,
    /// The distinct domains of the chosen addresses (what follows the first `@`, lower-cased
    /// as SQLite's `lower` does: ASCII only), in order: the partner pre-flight asks about them.
    pub domains: BTreeSet<String>,
}

impl Tally {
    pub(super) fn count(&mut self, eval: &Evaluation) {
        self.users += 1;
        if eval.decision == Decision::Eligible {
            self.eligible += 1;
            if eval.set_mail {
                self.set_mail += 1;
            }
        }
        for finding in &eval.findings {
            *self
                .findings
                .entry((finding.severity, finding.reason.code()))
                .or_default() += 1;
        }
        if let Some(address) = &eval.address {
            self.note_domain(&address.address);
        }
    }

    /// Adds the domain of a chosen address, allocating only for a domain not seen yet (or
    /// written with capitals).
    fn note_domain(&mut self, address: &str) {
        let Some((_, domain)) = address.split_once('@') else {
            return;
        };
        if domain.is_empty() {
            return;
        }
        if domain.bytes().any(|b| b.is_ascii_uppercase()) {
            self.domains.insert(domain.to_ascii_lowercase());
        } else if !self.domains.contains(domain) {
            self.domains.insert(domain.to_owned());
        }
    }

    /// Adds what `changes`, a tally that only compared members with the previous plan, found.
    pub(super) fn add_changes(&mut self, changes: &Tally) {
        self.previous += changes.previous;
        self.added += changes.added;
        self.removed += changes.removed;
        self.changed += changes.changed;
    }

    /// Counts what a chunk of members changed from the previous plan.
    pub(super) fn compare(&mut self, members: &[PlannedMember], replaced: &Replaced) {
        let before: HashMap<UserId, (&Decision, &Option<String>)> = replaced
            .previous
            .iter()
            .map(|p| (p.user_id, (&p.decision, &p.chosen_address)))
            .collect();
        self.previous += before.len() as u64 + replaced.removed;
        self.removed += replaced.removed;
        for member in members {
            match before.get(&member.user_id) {
                None => self.added += 1,
                Some((decision, address)) => {
                    if **decision != member.decision || **address != member.chosen_address {
                        self.changed += 1;
                    }
                }
            }
        }
    }
}
