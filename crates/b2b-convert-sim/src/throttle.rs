//! Graph's throttling, simulated: the invitation-manager limit and the identity-and-access
//! resource-unit and write buckets of NOTES §8.2.
//!
//! Owns the sliding-window counters (read from the simulator clock, so tests advance time
//! instead of sleeping), the request costs and the 429 decision with its `Retry-After` and
//! `x-ms-throttle-*` values. It must not build HTTP responses; `http` does that.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::directory::duration_secs;
use super::faults::Endpoint;

/// `limit` units per sliding `window`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WindowLimit {
    pub limit: u64,
    #[serde(with = "duration_secs")]
    pub window: Duration,
}

impl WindowLimit {
    pub const fn new(limit: u64, window: Duration) -> Self {
        Self { limit, window }
    }
}

/// When a request counts against its window. Graph's documentation does not say (NOTES §8.2);
/// a service decides throttling before it does the work, so the default is [`Self::Arrival`].
/// [`Self::Answer`] is the pessimistic model: the request counts only once the service has
/// spent its latency on it, so requests sent in order are counted shuffled by the latency's
/// spread, and a 429 comes back only after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CountedAt {
    /// When the request arrives, before any injected latency; a refusal answers at once.
    #[default]
    Arrival,
    /// When the service answers, after the injected latency.
    Answer,
}

/// Throttling settings (defaults are the documented service limits).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ThrottleConfig {
    pub enabled: bool,
    /// Any request on `/invitations`, per tenant, all apps: 150 per 5 s.
    pub invitations: WindowLimit,
    /// Resource units per app+tenant; `None` = by tenant size (3,500 / 5,000 / 8,000 per 10 s).
    pub resource_units: Option<WindowLimit>,
    /// Writes per app+tenant: 3,000 per 150 s.
    pub app_tenant_writes: WindowLimit,
    /// Writes per tenant, all apps: 18,000 per 300 s.
    pub tenant_writes: WindowLimit,
    /// Whether `POST /invitations` also draws on the identity write quota (unverified in NOTES §8.2).
    pub invitations_use_write_quota: bool,
    /// Identity and access reports (`auditLogs/...`), per app+tenant: 5 per 10 s
    /// (throttling-limits, "Identity and access reports service limits").
    pub reports: WindowLimit,
    /// When a request counts against its window (not documented; see [`CountedAt`]).
    pub counted_at: CountedAt,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            invitations: WindowLimit::new(150, Duration::from_secs(5)),
            resource_units: None,
            app_tenant_writes: WindowLimit::new(3000, Duration::from_secs(150)),
            tenant_writes: WindowLimit::new(18_000, Duration::from_mins(5)),
            invitations_use_write_quota: false,
            reports: WindowLimit::new(5, Duration::from_secs(10)),
            counted_at: CountedAt::Arrival,
        }
    }
}

impl ThrottleConfig {
    /// No throttling at all.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// The RU limit for a tenant of `users` users (NOTES §8.2: S <50, M 50–500, L >500).
    pub fn resource_units_for(&self, users: u64) -> WindowLimit {
        self.resource_units.unwrap_or_else(|| {
            let limit = match users {
                0..50 => 3500,
                50..=500 => 5000,
                _ => 8000,
            };
            WindowLimit::new(limit, Duration::from_secs(10))
        })
    }
}

/// The identity-service cost of a request (NOTES §8.2), before it is admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    pub resource_units: u64,
    pub writes: u64,
}

impl Cost {
    /// Cost of `endpoint` with the given query modifiers.
    pub fn of(endpoint: Endpoint, has_select: bool, has_expand: bool, top: Option<u64>) -> Self {
        let (base, writes) = match endpoint {
            Endpoint::ListUsers | Endpoint::GetUser => (2_i64, 0),
            Endpoint::GroupMembers => (3, 0),
            Endpoint::GroupTransitiveMembers => (5, 0),
            Endpoint::PatchUser | Endpoint::Invitations | Endpoint::RemoveGroupMember => (1, 1),
            _ => (1, 0),
        };
        let mut units = base;
        if writes == 0 {
            if has_select {
                units -= 1;
            }
            if has_expand {
                units += 1;
            }
            if top.is_some_and(|t| t < 20) {
                units -= 1;
            }
        }
        Self {
            resource_units: u64::try_from(units.max(1)).unwrap_or(1),
            writes,
        }
    }
}

/// The outcome of admission control.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    Allowed {
        /// `x-ms-resource-unit` (identity endpoints only).
        resource_units: Option<u64>,
        /// `x-ms-throttle-limit-percentage` when above 80 % of a limit.
        limit_percentage: Option<f64>,
    },
    Throttled {
        retry_after_secs: u64,
        scope: String,
        information: &'static str,
    },
}

#[derive(Debug, Default)]
struct Window {
    entries: VecDeque<(u64, u64)>,
    total: u64,
}

impl Window {
    fn expire(&mut self, now_ms: u64, window_ms: u64) {
        while let Some(&(at, cost)) = self.entries.front() {
            if at + window_ms <= now_ms {
                self.entries.pop_front();
                self.total -= cost;
            } else {
                break;
            }
        }
    }

    /// Seconds until `cost` more would fit.
    fn retry_after(&self, now_ms: u64, limit: &WindowLimit, cost: u64) -> u64 {
        let window_ms = u64::try_from(limit.window.as_millis()).unwrap_or(u64::MAX);
        let mut total = self.total;
        for &(at, entry_cost) in &self.entries {
            total -= entry_cost;
            if total + cost <= limit.limit {
                let wait_ms = (at + window_ms).saturating_sub(now_ms);
                return wait_ms.div_ceil(1000).max(1);
            }
        }
        window_ms.div_ceil(1000).max(1)
    }
}

/// Sliding-window throttle state for one simulated tenant.
#[derive(Debug)]
pub struct Throttler {
    config: Mutex<ThrottleConfig>,
    windows: Mutex<HashMap<String, Window>>,
    tenant_id: String,
    users: u64,
}

impl Throttler {
    pub fn new(config: ThrottleConfig, tenant_id: String, users: u64) -> Self {
        Self {
            config: Mutex::new(config),
            windows: Mutex::new(HashMap::new()),
            tenant_id,
            users,
        }
    }

    pub fn config(&self) -> ThrottleConfig {
        crate::lock(&self.config).clone()
    }

    /// When a request counts against its window.
    pub fn counted_at(&self) -> CountedAt {
        crate::lock(&self.config).counted_at
    }

    pub fn set_config(&self, config: ThrottleConfig) {
        *crate::lock(&self.config) = config;
        crate::lock(&self.windows).clear();
    }

    /// Admits (and records) or throttles one request of `app_id` to `endpoint`.
    pub fn admit(&self, endpoint: Endpoint, app_id: &str, cost: Cost, now_ms: u64) -> Admission {
        let config = self.config();
        if !config.enabled {
            let identity = endpoint.is_identity();
            return Admission::Allowed {
                resource_units: identity.then_some(cost.resource_units),
                limit_percentage: None,
            };
        }
        let tenant = &self.tenant_id;
        // (window key, limit, cost, scope, information)
        let mut checks: Vec<(String, WindowLimit, u64, String, &'static str)> = Vec::new();
        if endpoint == Endpoint::Invitations {
            checks.push((
                "invitations".to_owned(),
                config.invitations,
                1,
                format!("Tenant/ReadWrite//{tenant}"),
                "InvitationLimitExceeded",
            ));
        }
        if endpoint == Endpoint::DirectoryAudits {
            checks.push((
                format!("reports/{app_id}"),
                config.reports,
                1,
                format!("Tenant_Application/Read/{app_id}/{tenant}"),
                "ReportsLimitExceeded",
            ));
        }
        let identity = endpoint.is_identity()
            || (endpoint == Endpoint::Invitations && config.invitations_use_write_quota);
        if identity {
            if endpoint != Endpoint::Invitations {
                checks.push((
                    format!("ru/{app_id}"),
                    config.resource_units_for(self.users),
                    cost.resource_units,
                    format!("Tenant_Application/ReadWrite/{app_id}/{tenant}"),
                    "ResourceUnitLimitExceeded",
                ));
            }
            if cost.writes > 0 {
                checks.push((
                    format!("writes/{app_id}"),
                    config.app_tenant_writes,
                    cost.writes,
                    format!("Tenant_Application/Write/{app_id}/{tenant}"),
                    "WriteLimitExceeded",
                ));
                checks.push((
                    "writes".to_owned(),
                    config.tenant_writes,
                    cost.writes,
                    format!("Tenant/Write//{tenant}"),
                    "WriteLimitExceeded",
                ));
            }
        }
        let mut windows = crate::lock(&self.windows);
        let mut highest: f64 = 0.0;
        for (key, limit, cost, scope, information) in &checks {
            let window = windows.entry(key.clone()).or_default();
            window.expire(
                now_ms,
                u64::try_from(limit.window.as_millis()).unwrap_or(u64::MAX),
            );
            if window.total + cost > limit.limit {
                return Admission::Throttled {
                    retry_after_secs: window.retry_after(now_ms, limit, *cost),
                    scope: scope.clone(),
                    information,
                };
            }
        }
        for (key, limit, cost, _, _) in &checks {
            let window = windows.entry(key.clone()).or_default();
            window.entries.push_back((now_ms, *cost));
            window.total += cost;
            #[allow(clippy::cast_precision_loss)] // a ratio for a header, two decimals suffice
            let used = window.total as f64 / limit.limit as f64;
            highest = highest.max(used);
        }
        Admission::Allowed {
            resource_units: endpoint.is_identity().then_some(cost.resource_units),
            limit_percentage: (highest > 0.8).then_some(highest),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttler() -> Throttler {
        Throttler::new(ThrottleConfig::default(), "tenant".to_owned(), 1000)
    }

    #[test]
    fn invitations_allow_150_per_five_seconds() {
        let t = throttler();
        let cost = Cost::of(Endpoint::Invitations, false, false, None);
        let allowed = (0..400)
            .filter(|_| {
                matches!(
                    t.admit(Endpoint::Invitations, "app", cost, 10_000),
                    Admission::Allowed { .. }
                )
            })
            .count();
        assert_eq!(allowed, 150);
        let Admission::Throttled {
            retry_after_secs,
            information,
            ..
        } = t.admit(Endpoint::Invitations, "app", cost, 12_000)
        else {
            panic!("still throttled 2 s later")
        };
        assert_eq!(retry_after_secs, 3);
        assert_eq!(information, "InvitationLimitExceeded");
        assert!(
            matches!(
                t.admit(Endpoint::Invitations, "other-app", cost, 15_000),
                Admission::Allowed { .. }
            ),
            "window slid"
        );
    }

    #[test]
    fn costs_follow_the_documented_table() {
        assert_eq!(
            Cost::of(Endpoint::ListUsers, false, false, None).resource_units,
            2
        );
        assert_eq!(
            Cost::of(Endpoint::ListUsers, true, false, Some(999)).resource_units,
            1
        );
        assert_eq!(
            Cost::of(Endpoint::ListUsers, true, false, Some(5)).resource_units,
            1,
            "minimum 1"
        );
        assert_eq!(
            Cost::of(Endpoint::GroupTransitiveMembers, false, false, None).resource_units,
            5
        );
        assert_eq!(
            Cost::of(Endpoint::GroupMembers, true, false, None).resource_units,
            2
        );
        assert_eq!(
            Cost::of(Endpoint::PatchUser, true, false, None),
            Cost {
                resource_units: 1,
                writes: 1
            }
        );
    }

    #[test]
    fn resource_units_run_out_per_app() {
        let t = Throttler::new(ThrottleConfig::default(), "tenant".to_owned(), 10);
        let cost = Cost::of(Endpoint::ListUsers, false, false, None);
        let allowed = (0..2000)
            .filter(|_| {
                matches!(
                    t.admit(Endpoint::ListUsers, "a", cost, 0),
                    Admission::Allowed { .. }
                )
            })
            .count();
        assert_eq!(allowed, 1750, "3,500 RU / 2 RU per call for a small tenant");
        assert!(
            matches!(
                t.admit(Endpoint::ListUsers, "b", cost, 0),
                Admission::Allowed { .. }
            ),
            "per app"
        );
        let Admission::Throttled {
            information, scope, ..
        } = t.admit(Endpoint::ListUsers, "a", cost, 0)
        else {
            panic!("throttled")
        };
        assert_eq!(information, "ResourceUnitLimitExceeded");
        assert!(scope.starts_with("Tenant_Application/"));
    }
}
