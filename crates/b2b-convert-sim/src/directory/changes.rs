//! What `GET /users/delta` reports (NOTES §3.3): the directory's change log, and changes made
//! behind the tool's back for tests and benchmarks (users edited, users deleted).
//!
//! Owns a sequence number bumped by every change to a user, each user's latest change, and the
//! deleted users with the reason delta gives for them (`changed`: deleted and restorable,
//! `deleted`: permanently). It keeps one entry per changed user, not per change: delta reports
//! a user's current state once however often it changed. It must not know HTTP or tokens.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::{Directory, User};
use crate::clock::SimClock;

/// Why delta reports a user as removed (its `@removed.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RemovalReason {
    /// Deleted, and restorable from the deleted items for 30 days.
    Changed,
    /// Permanently deleted.
    Deleted,
}

/// One entry of a delta page.
#[derive(Debug, Clone, PartialEq)]
pub enum DeltaEntry {
    /// Created or changed: the user as it is now.
    Changed(Box<User>),
    /// Deleted.
    Removed { id: String, reason: RemovalReason },
}

/// The change log kept with the directory's other mutable state.
#[derive(Debug, Default)]
pub(super) struct ChangeLog {
    sequence: u64,
    /// User index -> sequence number of its latest change, and the reverse, ordered.
    latest: HashMap<u64, u64>,
    by_sequence: BTreeMap<u64, u64>,
    /// Deleted users: their object id and why delta reports them.
    deleted: HashMap<u64, (String, RemovalReason)>,
}

impl ChangeLog {
    pub(super) fn record(&mut self, index: u64) {
        self.sequence += 1;
        if let Some(previous) = self.latest.insert(index, self.sequence) {
            self.by_sequence.remove(&previous);
        }
        self.by_sequence.insert(self.sequence, index);
    }

    pub(super) fn is_deleted(&self, index: u64) -> bool {
        self.deleted.contains_key(&index)
    }
}

impl Directory {
    /// The sequence number of the latest change (0: none yet). A delta token remembers it.
    pub fn change_sequence(&self) -> u64 {
        self.lock().changes.sequence
    }

    /// Users whose latest change is after `from` and at or before `to`, with a user index above
    /// `after`, in index order, at most `limit`: one page of a delta round. Paging by index
    /// rather than by position, a user changed again during the round (its change moves past
    /// `to`) drops out without moving the others; the next round reports it.
    pub fn changes_between(
        &self,
        from: u64,
        to: u64,
        after: Option<u64>,
        limit: usize,
        clock: &SimClock,
    ) -> (Vec<(u64, DeltaEntry)>, bool) {
        if from >= to {
            return (Vec::new(), false);
        }
        let now = clock.now_ms();
        let mut state = self.lock();
        let mut indexes: Vec<u64> = state
            .changes
            .by_sequence
            .range(from + 1..=to)
            .map(|(_, index)| *index)
            .filter(|index| after.is_none_or(|a| *index > a))
            .collect();
        indexes.sort_unstable();
        let more = indexes.len() > limit;
        indexes.truncate(limit);
        let mut entries = Vec::with_capacity(indexes.len());
        for index in indexes {
            if let Some((id, reason)) = state.changes.deleted.get(&index) {
                let entry = DeltaEntry::Removed {
                    id: id.clone(),
                    reason: *reason,
                };
                entries.push((index, entry));
            } else if let Some(user) = self.user_locked(&mut state, index, now) {
                entries.push((index, DeltaEntry::Changed(Box::new(user))));
            }
        }
        (entries, more)
    }

    /// Changes the display name of every `every`-th user (from user `first` on), behind the
    /// tool's back, as an admin editing users would. Returns how many were changed.
    pub fn rename_users(&self, first: u64, every: u64, clock: &SimClock) -> u64 {
        let now = clock.now_ms();
        let mut state = self.lock();
        let len = self.source.len() + state.created.len() as u64;
        let mut changed = 0;
        for index in (first..len).step_by(usize::try_from(every.max(1)).unwrap_or(usize::MAX)) {
            let Some(mut user) = self.user_locked(&mut state, index, now) else {
                continue;
            };
            let name = user.display_name.take().unwrap_or_default();
            user.display_name = Some(format!("{name} (renamed)"));
            self.store_locked(&mut state, index, user);
            changed += 1;
        }
        changed
    }

    /// Deletes a user behind the tool's back: it leaves every listing, and delta reports it
    /// removed for `reason`.
    pub fn delete_user(&self, index: u64, reason: RemovalReason, clock: &SimClock) -> bool {
        let now = clock.now_ms();
        let mut state = self.lock();
        let Some(user) = self.user_locked(&mut state, index, now) else {
            return false;
        };
        state.changes.deleted.insert(index, (user.id, reason));
        state.changes.record(index);
        true
    }
}
