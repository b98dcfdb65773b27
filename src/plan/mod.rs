//! The planning engine: decides a wave's users with the eligibility rules and stores the plan.
//! Read-only on the tenant; `plan` and `invite` decide through it.
//!
//! - [`decision`]: the one decision path. The only place the rules' [`Policy`](crate::rules::Policy),
//!   [`TenantView`](crate::rules::TenantView) and [`WaveSettings`](crate::rules::WaveSettings)
//!   and a plan's stored settings are built from [`Settings`](crate::config::Settings) and the
//!   tenant facts; how a user's verdict is made from the rules' evaluation and what the wave
//!   adds; `invite`'s decision of one user alone.
//! - [`passes`]: the two passes over a wave (memory bounded by a chunk of users, not the wave),
//!   the chosen addresses' other owners looked up, decide-and-store in the plan's transaction.
//! - [`tally`]: the counts a plan's summary shows, and what a re-plan changed.
//! - [`realms`]: home-realm answers for the chosen addresses' domains, with the realm cache.
//! - [`preflight`]: the partner pre-flight: per external domain, whether redemption can be
//!   automatic (our cross-tenant access settings), stored for the report.
//!
//! The rules decide (`rules`, pure), the store keeps (`store`), the realm endpoint answers
//! (`graph::realm`, through a client the caller builds), and so do the cross-tenant access
//! settings (`graph::cross_tenant`). This module must not contain SQL or
//! HTTP, build clients, read the operator's files or the environment, or print: the `plan`
//! and `invite` commands gather the wave's users, hand them here and render the result.

pub mod decision;
pub mod passes;
pub mod preflight;
pub mod realms;
pub mod tally;

pub use decision::{
    Alone, Basis, StoredOwners, as_collisions, invitation_json, planned_member, settings_json,
    wave_settings,
};
pub use passes::{Decider, FirstPass, Roster, USERS_PER_CHUNK, WaveUsers, first_pass, store_plan};
pub use realms::{RealmOptions, RealmSummary};
pub use tally::Tally;

use crate::store;

/// Why a plan stopped. Nothing of a plan that stopped is stored.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed while the plan was `doing` something (reading the users, storing the
    /// plan).
    #[error("{doing}")]
    Store {
        doing: &'static str,
        #[source]
        source: store::Error,
    },
    /// The store failed looking up the chosen addresses' owners, or whether the snapshot
    /// still agrees with them (shown as the store's error, as it was before the engine was a
    /// module of its own).
    #[error(transparent)]
    Lookup(#[from] store::Error),
    /// Another process stored users while the first pass read them.
    #[error(
        "the stored users changed while the plan was made (is `discover` running?); nothing was stored: plan again"
    )]
    SnapshotChanged,
    /// The two passes read different users from one snapshot: the store is broken.
    #[error("the second pass read {second} users where the first read {first}; nothing was stored")]
    PassesDisagree { first: u64, second: usize },
}

/// Says what the plan was doing when the store failed.
trait Doing<T> {
    fn doing(self, doing: &'static str) -> Result<T, Error>;
}

impl<T> Doing<T> for Result<T, store::Error> {
    fn doing(self, doing: &'static str) -> Result<T, Error> {
        self.map_err(|source| Error::Store { doing, source })
    }
}
