//! Fault injection per endpoint: latency, 503/504 (with or without `Retry-After`),
//! connection resets and "commit then drop the response"; for invitations also the tenant-wide
//! refusals ([`crate::limits`]): the abuse block after N invitations and a daily quota.
//!
//! Owns the endpoint classification used by faults, throttling and counters, the
//! [`FaultSpec`]/[`FaultPlan`] types, the `--faults` grammar and the per-request decision
//! (deterministic for a given seed and request order). It must not touch the directory or
//! build responses.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::rng::keyed;

/// What a request is, for faults, throttling and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Endpoint {
    /// `POST {login}/{tenant}/oauth2/v2.0/token`
    Token,
    /// `POST {login}/{tenant}/oauth2/v2.0/devicecode`
    DeviceCode,
    /// `GET {login}/common/userrealm/{user}`
    UserRealm,
    /// `GET /v1.0/users`
    ListUsers,
    /// `GET /v1.0/users/{id}`
    GetUser,
    /// `PATCH /v1.0/users/{id}`
    PatchUser,
    /// `GET /v1.0/groups`, `GET /v1.0/groups/{id}`
    Groups,
    /// `GET /v1.0/groups/{id}/members[/microsoft.graph.user]`
    GroupMembers,
    /// `GET /v1.0/groups/{id}/transitiveMembers[/microsoft.graph.user]`
    GroupTransitiveMembers,
    /// `GET /v1.0/domains`
    Domains,
    /// `GET /v1.0/organization`
    Organization,
    /// `GET /v1.0/directory/federationConfigurations/...`
    Federation,
    /// `POST /v1.0/invitations`
    Invitations,
    /// Any other Graph path (errors such as unknown segments).
    OtherGraph,
    /// `GET /v1.0/users/{id}/memberOf[/microsoft.graph.group]`
    MemberOf,
    /// `GET /v1.0/users/{id}/appRoleAssignments`
    AppRoleAssignments,
    /// `DELETE /v1.0/groups/{id}/members/{id}/$ref`
    RemoveGroupMember,
    /// `GET /v1.0/contacts` (org contacts)
    Contacts,
    /// `GET /v1.0/policies/crossTenantAccessPolicy/default`, `…/partners/{tenantId}`
    CrossTenantAccess,
    /// `GET {login}/{tenant}/v2.0/.well-known/openid-configuration`
    OpenIdConfiguration,
    /// `GET /v1.0/auditLogs/directoryAudits`
    DirectoryAudits,
}

impl Endpoint {
    /// Every endpoint, in declaration order.
    pub const ALL: [Endpoint; 21] = [
        Self::Token,
        Self::DeviceCode,
        Self::UserRealm,
        Self::ListUsers,
        Self::GetUser,
        Self::PatchUser,
        Self::Groups,
        Self::GroupMembers,
        Self::GroupTransitiveMembers,
        Self::Domains,
        Self::Organization,
        Self::Federation,
        Self::Invitations,
        Self::OtherGraph,
        Self::MemberOf,
        Self::AppRoleAssignments,
        Self::RemoveGroupMember,
        Self::Contacts,
        Self::CrossTenantAccess,
        Self::OpenIdConfiguration,
        Self::DirectoryAudits,
    ];

    /// The name used in the `--faults` grammar and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::DeviceCode => "device-code",
            Self::UserRealm => "user-realm",
            Self::ListUsers => "list-users",
            Self::GetUser => "get-user",
            Self::PatchUser => "patch-user",
            Self::Groups => "groups",
            Self::GroupMembers => "group-members",
            Self::GroupTransitiveMembers => "group-transitive-members",
            Self::Domains => "domains",
            Self::Organization => "organization",
            Self::Federation => "federation",
            Self::Invitations => "invitations",
            Self::OtherGraph => "other-graph",
            Self::MemberOf => "member-of",
            Self::AppRoleAssignments => "app-role-assignments",
            Self::RemoveGroupMember => "remove-group-member",
            Self::Contacts => "contacts",
            Self::CrossTenantAccess => "cross-tenant-access",
            Self::OpenIdConfiguration => "openid-configuration",
            Self::DirectoryAudits => "directory-audits",
        }
    }

    /// Whether the identity-and-access limits (NOTES §8.2) apply.
    pub fn is_identity(self) -> bool {
        matches!(
            self,
            Self::ListUsers
                | Self::GetUser
                | Self::PatchUser
                | Self::Groups
                | Self::GroupMembers
                | Self::GroupTransitiveMembers
                | Self::Domains
                | Self::Organization
                | Self::MemberOf
                | Self::AppRoleAssignments
                | Self::RemoveGroupMember
                | Self::Contacts
        )
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Faults for one endpoint. Rates are probabilities in `[0, 1]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FaultSpec {
    /// Added latency, uniform in `[min, max]` (milliseconds).
    pub latency_ms: Option<(u64, u64)>,
    /// Probability of answering 503 `serviceNotAvailable` without doing the work.
    pub error_503: f64,
    /// Probability of answering 504 `UnknownError` (gateway timeout) without doing the work.
    pub error_504: f64,
    /// Probability of answering 429 `TooManyRequests` without doing the work, outside the
    /// throttling windows (as identity endpoints do, sometimes without `Retry-After`).
    pub error_429: f64,
    /// `Retry-After` seconds sent with 429/503/504, possibly fractional (Graph's own sample
    /// says `2.128`); `None` = no header.
    pub retry_after_secs: Option<f64>,
    /// Probability of closing the connection without any response, before doing the work.
    pub reset: f64,
    /// Probability of doing the work (e.g. converting the user) and then closing the
    /// connection without a response. Only write endpoints honour it.
    pub commit_then_drop: f64,
    /// Invitations only: once this many invitations were created, every `POST /invitations`
    /// is refused with the abuse block's 403 (NOTES §8.2a), for good.
    pub abuse_after: Option<u64>,
    /// Invitations only: at most this many invitations are created in any rolling 24 h of
    /// simulator time; the next is refused with a quota 403 until the oldest leaves the window.
    pub daily_quota: Option<u64>,
    /// Invitations only: the users (object ids) whose conversion writes no directory audit
    /// event, although it succeeds (a gap in the audit log).
    pub audit_missing_for: Vec<String>,
    /// Invitations only: the users (object ids) whose conversion succeeds but is logged as a
    /// failed audit event.
    pub audit_failed_for: Vec<String>,
    /// `patch-user` only: for this many seconds (simulator time) after a user's latest
    /// invitation, a `PATCH` of its `userType` is refused with the replication-lag 400 "Not a
    /// valid reference update." (NOTES §2.x, observed).
    pub reference_lag_secs: Option<f64>,
}

impl FaultSpec {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Faults for every endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultPlan {
    pub endpoints: BTreeMap<Endpoint, FaultSpec>,
}

/// A `--faults` string that does not follow the grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid fault spec {input:?}: {reason}")]
pub struct FaultSpecError {
    pub input: String,
    pub reason: String,
}

impl FaultPlan {
    /// No faults.
    pub fn none() -> Self {
        Self::default()
    }

    /// Sets the spec for one endpoint (builder style).
    #[must_use]
    pub fn with(mut self, endpoint: Endpoint, spec: FaultSpec) -> Self {
        self.endpoints.insert(endpoint, spec);
        self
    }

    /// The spec for an endpoint (empty when none).
    pub fn spec(&self, endpoint: Endpoint) -> FaultSpec {
        self.endpoints.get(&endpoint).cloned().unwrap_or_default()
    }

    /// Parses the `--faults` grammar (see `docs/simulator.md`):
    ///
    /// ```text
    /// plan     = clause *( ";" clause )
    /// clause   = endpoint ":" setting *( "," setting )
    /// endpoint = "all" | "invitations" | "list-users" | "get-user" | ... (Endpoint::name)
    /// setting  = "latency=" ms ["-" ms] ("ms" | "s")
    ///          | "429=" rate | "503=" rate | "504=" rate | "reset=" rate | "drop=" rate
    ///          | "retry-after=" seconds (decimal, e.g. 2.128) | "retry-after=none"
    ///          | "abuse-after=" N | "daily-quota=" N      (invitations only; N whole)
    ///          | "audit-missing=" id *("|" id) | "audit-failed=" id *("|" id)
    ///                                                    (invitations only; user object ids)
    ///          | "reference-lag=" seconds                (patch-user only)
    /// ```
    ///
    /// Later clauses for the same endpoint merge into earlier ones.
    pub fn parse(input: &str) -> Result<Self, FaultSpecError> {
        let mut plan = Self::default();
        plan.merge_str(input)?;
        Ok(plan)
    }

    /// Adds the clauses of `input` to this plan.
    pub fn merge_str(&mut self, input: &str) -> Result<(), FaultSpecError> {
        let error = |reason: String| FaultSpecError {
            input: input.to_owned(),
            reason,
        };
        for clause in input.split(';').map(str::trim).filter(|c| !c.is_empty()) {
            let (name, settings) = clause.split_once(':').ok_or_else(|| {
                error(format!(
                    "clause {clause:?} needs the form endpoint:setting=value,..."
                ))
            })?;
            let name = name.trim();
            let targets: Vec<Endpoint> = if name == "all" {
                Endpoint::ALL.to_vec()
            } else {
                vec![
                    Endpoint::ALL
                        .into_iter()
                        .find(|e| e.name() == name)
                        .ok_or_else(|| {
                            let known: Vec<&str> = Endpoint::ALL.iter().map(|e| e.name()).collect();
                            error(format!(
                                "unknown endpoint {name:?} (known: all, {})",
                                known.join(", ")
                            ))
                        })?,
                ]
            };
            for target in targets {
                let spec = self.endpoints.entry(target).or_default();
                for setting in settings.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    apply_setting(spec, setting).map_err(&error)?;
                }
            }
        }
        if let Some((endpoint, _)) = self.endpoints.iter().find(|(endpoint, spec)| {
            **endpoint != Endpoint::Invitations
                && (spec.abuse_after.is_some()
                    || spec.daily_quota.is_some()
                    || !spec.audit_missing_for.is_empty()
                    || !spec.audit_failed_for.is_empty())
        }) {
            return Err(error(format!(
                "abuse-after, daily-quota, audit-missing and audit-failed apply to invitations only, not to {endpoint}"
            )));
        }
        if let Some((endpoint, _)) = self.endpoints.iter().find(|(endpoint, spec)| {
            **endpoint != Endpoint::PatchUser && spec.reference_lag_secs.is_some()
        }) {
            return Err(error(format!(
                "reference-lag applies to patch-user only, not to {endpoint}"
            )));
        }
        self.endpoints.retain(|_, spec| !spec.is_empty());
        Ok(())
    }
}

impl FromStr for FaultPlan {
    type Err = FaultSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn apply_setting(spec: &mut FaultSpec, setting: &str) -> Result<(), String> {
    let (key, value) = setting
        .split_once('=')
        .ok_or_else(|| format!("setting {setting:?} needs key=value"))?;
    let rate = |v: &str| -> Result<f64, String> {
        let rate: f64 = v
            .trim()
            .parse()
            .map_err(|_| format!("{key}: {v:?} is not a number"))?;
        if (0.0..=1.0).contains(&rate) {
            Ok(rate)
        } else {
            Err(format!("{key}: rate {rate} is outside 0..=1"))
        }
    };
    match key.trim() {
        "latency" => spec.latency_ms = Some(parse_latency(value.trim())?),
        "503" => spec.error_503 = rate(value)?,
        "504" => spec.error_504 = rate(value)?,
        "429" => spec.error_429 = rate(value)?,
        "reset" => spec.reset = rate(value)?,
        "drop" => spec.commit_then_drop = rate(value)?,
        "abuse-after" | "daily-quota" => {
            let n: u64 = value
                .trim()
                .parse()
                .map_err(|_| format!("{key}: {value:?} is not a whole number"))?;
            if key.trim() == "abuse-after" {
                spec.abuse_after = Some(n);
            } else {
                spec.daily_quota = Some(n);
            }
        }
        "audit-missing" | "audit-failed" => {
            let ids: Vec<String> = value
                .split('|')
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .map(str::to_owned)
                .collect();
            if ids.is_empty() {
                return Err(format!("{key}: name at least one user object id"));
            }
            if key.trim() == "audit-missing" {
                spec.audit_missing_for.extend(ids);
            } else {
                spec.audit_failed_for.extend(ids);
            }
        }
        "reference-lag" => {
            let seconds: f64 = value
                .trim()
                .trim_end_matches('s')
                .parse()
                .map_err(|_| format!("reference-lag: {value:?} is not a number of seconds"))?;
            if !(0.0..=86_400.0).contains(&seconds) {
                return Err(format!(
                    "reference-lag: {value:?} is outside 0..=86400 seconds"
                ));
            }
            spec.reference_lag_secs = Some(seconds);
        }
        "retry-after" => {
            spec.retry_after_secs = if value.trim() == "none" {
                None
            } else {
                let seconds: f64 =
                    value.trim().trim_end_matches('s').parse().map_err(|_| {
                        format!("retry-after: {value:?} is not a number of seconds")
                    })?;
                if !(0.0..=3_600.0).contains(&seconds) {
                    return Err(format!(
                        "retry-after: {value:?} is outside 0..=3600 seconds"
                    ));
                }
                Some(seconds)
            };
        }
        other => {
            return Err(format!(
                "unknown setting {other:?} (known: latency, 429, 503, 504, retry-after, reset, drop, abuse-after, daily-quota, audit-missing, audit-failed, reference-lag)"
            ));
        }
    }
    Ok(())
}

fn parse_latency(value: &str) -> Result<(u64, u64), String> {
    let (number, scale) = if let Some(v) = value.strip_suffix("ms") {
        (v, 1)
    } else if let Some(v) = value.strip_suffix('s') {
        (v, 1000)
    } else {
        return Err(format!("latency {value:?} needs a unit: ms or s"));
    };
    let parse = |v: &str| {
        v.trim()
            .parse::<u64>()
            .map(|n| n * scale)
            .map_err(|_| format!("latency {value:?}: {v:?} is not a whole number"))
    };
    let (min, max) = if let Some((a, b)) = number.split_once('-') {
        (parse(a)?, parse(b)?)
    } else {
        let n = parse(number)?;
        (n, n)
    };
    if min > max {
        return Err(format!("latency {value:?}: minimum above maximum"));
    }
    Ok((min, max))
}

/// What to do to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultDecision {
    pub latency: Duration,
    pub before: Option<EarlyFault>,
    pub commit_then_drop: bool,
}

/// A fault that replaces the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EarlyFault {
    Reset,
    Status {
        status: u16,
        /// `Retry-After` in milliseconds (sent as decimal seconds).
        retry_after_ms: Option<u64>,
    },
}

/// Rolls the dice for each request, deterministically per seed and request order.
#[derive(Debug)]
pub struct FaultDice {
    seed: u64,
    counter: AtomicU64,
}

impl FaultDice {
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            counter: AtomicU64::new(0),
        }
    }

    /// The decision for the next request to `endpoint` under `spec`.
    pub fn decide(&self, endpoint: Endpoint, spec: &FaultSpec) -> FaultDecision {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let roll = |salt: u64| {
            #[allow(clippy::cast_precision_loss)] // a probability only needs ~53 bits
            let value = (keyed(self.seed, salt * 64 + endpoint as u64, n) >> 11) as f64
                / (1u64 << 53) as f64;
            value
        };
        let latency = spec.latency_ms.map_or(Duration::ZERO, |(min, max)| {
            let span = max - min;
            let extra = if span == 0 {
                0
            } else {
                keyed(self.seed, 0x1A7, n) % (span + 1)
            };
            Duration::from_millis(min + extra)
        });
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // 0..=3600 s
        let retry_after_ms = spec
            .retry_after_secs
            .map(|seconds| (seconds * 1_000.0).round() as u64);
        let before = if roll(1) < spec.reset {
            Some(EarlyFault::Reset)
        } else if roll(2) < spec.error_503 {
            Some(EarlyFault::Status {
                status: 503,
                retry_after_ms,
            })
        } else if roll(3) < spec.error_504 {
            Some(EarlyFault::Status {
                status: 504,
                retry_after_ms,
            })
        } else if roll(5) < spec.error_429 {
            Some(EarlyFault::Status {
                status: 429,
                retry_after_ms,
            })
        } else {
            None
        };
        let commit_then_drop = roll(4) < spec.commit_then_drop;
        FaultDecision {
            latency,
            before,
            commit_then_drop,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let plan = FaultPlan::parse(
            "invitations:latency=150-600ms,503=0.02,retry-after=3,drop=0.01; list-users:504=0.5",
        )
        .expect("parses");
        let inv = plan.spec(Endpoint::Invitations);
        assert_eq!(inv.latency_ms, Some((150, 600)));
        assert!((inv.error_503 - 0.02).abs() < f64::EPSILON);
        assert_eq!(inv.retry_after_secs, Some(3.0));
        assert!((inv.commit_then_drop - 0.01).abs() < f64::EPSILON);
        assert!((plan.spec(Endpoint::ListUsers).error_504 - 0.5).abs() < f64::EPSILON);
        assert_eq!(plan.spec(Endpoint::Domains), FaultSpec::default());
    }

    #[test]
    fn retry_after_may_be_fractional_or_absent_and_429s_can_be_injected() {
        let plan = FaultPlan::parse("get-user:429=1,retry-after=2.128").expect("parses");
        let spec = plan.spec(Endpoint::GetUser);
        assert_eq!(spec.retry_after_secs, Some(2.128));
        assert_eq!(
            FaultDice::new(1).decide(Endpoint::GetUser, &spec).before,
            Some(EarlyFault::Status {
                status: 429,
                retry_after_ms: Some(2_128)
            })
        );
        let plan = FaultPlan::parse("get-user:429=1,retry-after=none").expect("parses");
        assert_eq!(plan.spec(Endpoint::GetUser).retry_after_secs, None);
    }

    #[test]
    fn the_abuse_block_and_the_daily_quota_are_invitation_settings() {
        let plan = FaultPlan::parse("invitations:abuse-after=11;invitations:daily-quota=200")
            .expect("parses");
        let spec = plan.spec(Endpoint::Invitations);
        assert_eq!((spec.abuse_after, spec.daily_quota), (Some(11), Some(200)));
        assert_eq!(
            FaultDice::new(1)
                .decide(Endpoint::Invitations, &spec)
                .before,
            None,
            "they are limits, not dice"
        );
    }

    #[test]
    fn audit_event_faults_name_users_on_invitations_only() {
        let plan =
            FaultPlan::parse("invitations:audit-missing=u1|u2,audit-failed=u3").expect("parses");
        let spec = plan.spec(Endpoint::Invitations);
        assert_eq!(spec.audit_missing_for, ["u1", "u2"]);
        assert_eq!(spec.audit_failed_for, ["u3"]);
        let error = FaultPlan::parse("get-user:audit-failed=u1").expect_err("invitations only");
        assert!(
            error.reason.contains("invitations only"),
            "{}",
            error.reason
        );
        assert!(FaultPlan::parse("invitations:audit-missing=").is_err());
    }

    #[test]
    fn the_reference_lag_is_a_patch_user_setting() {
        let plan = FaultPlan::parse("patch-user:reference-lag=90").expect("parses");
        assert_eq!(
            plan.spec(Endpoint::PatchUser).reference_lag_secs,
            Some(90.0)
        );
        for (input, reason) in [
            ("get-user:reference-lag=90", "patch-user only"),
            ("all:reference-lag=90", "patch-user only"),
            ("patch-user:reference-lag=soon", "not a number"),
            ("patch-user:reference-lag=100000", "outside"),
        ] {
            let error = FaultPlan::parse(input).expect_err(input);
            assert!(error.reason.contains(reason), "{input}: {}", error.reason);
        }
    }

    #[test]
    fn all_applies_to_every_endpoint_and_seconds_scale() {
        let plan = FaultPlan::parse("all:latency=1s").expect("parses");
        for endpoint in Endpoint::ALL {
            assert_eq!(
                plan.spec(endpoint).latency_ms,
                Some((1000, 1000)),
                "{endpoint}"
            );
        }
    }

    #[test]
    fn rejects_bad_input_with_a_reason() {
        for (input, reason) in [
            ("invitations", "endpoint:setting"),
            ("bogus:503=0.1", "unknown endpoint"),
            ("invitations:503=2", "outside 0..=1"),
            ("invitations:latency=100", "needs a unit"),
            ("invitations:latency=600-150ms", "minimum above maximum"),
            ("invitations:teapot=1", "unknown setting"),
            ("invitations:retry-after=soon", "not a number of seconds"),
            ("invitations:retry-after=-1", "outside 0..=3600"),
            ("invitations:abuse-after=some", "not a whole number"),
            ("get-user:daily-quota=3", "invitations only"),
            ("all:abuse-after=3", "invitations only"),
        ] {
            let error = FaultPlan::parse(input).expect_err(input);
            assert!(error.reason.contains(reason), "{input}: {}", error.reason);
        }
    }

    #[test]
    fn certain_faults_always_fire_and_zero_never_does() {
        let dice = FaultDice::new(1);
        let always = FaultSpec {
            error_503: 1.0,
            retry_after_secs: Some(2.0),
            ..FaultSpec::default()
        };
        let never = FaultSpec::default();
        for _ in 0..100 {
            assert_eq!(
                dice.decide(Endpoint::Invitations, &always).before,
                Some(EarlyFault::Status {
                    status: 503,
                    retry_after_ms: Some(2_000)
                })
            );
            assert_eq!(dice.decide(Endpoint::Invitations, &never).before, None);
        }
    }

    #[test]
    fn rates_are_roughly_honoured() {
        let dice = FaultDice::new(9);
        let spec = FaultSpec {
            error_504: 0.2,
            ..FaultSpec::default()
        };
        let hits = (0..10_000)
            .filter(|_| dice.decide(Endpoint::ListUsers, &spec).before.is_some())
            .count();
        assert!((1700..2300).contains(&hits), "{hits}");
    }
}
