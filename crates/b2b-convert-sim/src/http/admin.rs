//! The admin API under `/_sim/...`: what the real Graph would never serve.
//!
//! Exposes observation (counters, request log, invitation POSTs per user, user state and
//! memberships), control (faults, throttling, redemption, clock, token revocation and
//! lifetime), changes behind the tool's back (group members and app role assignments removed)
//! and device-code approval. It must not be reachable through `/v1.0` and needs no token.

use std::time::Duration;

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Reply, RequestContext};
use crate::Shared;
use crate::auth::AuthConfig;
use crate::directory::{RedemptionConfig, RemovalReason};
use crate::faults::FaultPlan;
use crate::generate::UserCase;
use crate::throttle::ThrottleConfig;

fn error(status: StatusCode, message: impl Into<String>) -> Reply {
    Reply::plain_json(
        status,
        &json!({"error": {"code": "SimulatorAdmin", "message": message.into()}}),
    )
}

fn ok(value: &Value) -> Reply {
    Reply::plain_json(StatusCode::OK, value)
}

fn body_json<T: serde::de::DeserializeOwned>(ctx: &RequestContext) -> Result<T, Reply> {
    serde_json::from_slice(&ctx.body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

pub(crate) fn handle(shared: &Shared, ctx: &RequestContext) -> Reply {
    match dispatch(shared, ctx) {
        Ok(reply) | Err(reply) => reply,
    }
}

#[allow(clippy::too_many_lines)] // one linear sequence of checks in the order the service makes them
fn dispatch(shared: &Shared, ctx: &RequestContext) -> Result<Reply, Reply> {
    let segments = ctx.segments("/_sim");
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = &ctx.method;
    let user_index = |key: &str| {
        shared
            .directory
            .resolve(key)
            .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("no user {key}")))
    };
    Ok(match (seg.as_slice(), method) {
        (["tenant"], &Method::GET) => ok(&shared.describe()),
        (["counters"], &Method::GET) => {
            ok(&serde_json::to_value(shared.counters()).unwrap_or(Value::Null))
        }
        (["requests"], &Method::GET) => {
            ok(&serde_json::to_value(shared.observer.log()).unwrap_or(Value::Null))
        }
        (["invitation-posts"], &Method::GET) => ok(&serde_json::to_value(
            shared.observer.all_invitation_posts(),
        )
        .unwrap_or(Value::Null)),
        (["users", key, "invitation-posts"], &Method::GET) => {
            let index = user_index(key)?;
            let id = shared
                .directory
                .user(index, &shared.clock)
                .map(|u| u.id)
                .unwrap_or_default();
            ok(&json!({"userId": id, "posts": shared.observer.invitation_posts(&id)}))
        }
        // Changes behind the tool's back that users delta reports (docs/simulator.md).
        (["users", "rename"], &Method::POST) => {
            let body: Value = body_json(ctx)?;
            let every = body.get("every").and_then(Value::as_u64).ok_or_else(|| {
                error(
                    StatusCode::BAD_REQUEST,
                    "body needs {\"every\": n} (and optionally \"first\": index)",
                )
            })?;
            let first = body.get("first").and_then(Value::as_u64).unwrap_or(0);
            let renamed = shared.directory.rename_users(first, every, &shared.clock);
            ok(&json!({"renamed": renamed}))
        }
        (["users", key, "delete"], &Method::POST) => {
            let index = user_index(key)?;
            let body: Value = if ctx.body.is_empty() {
                json!({})
            } else {
                body_json(ctx)?
            };
            let reason = if body.get("permanently").and_then(Value::as_bool) == Some(true) {
                RemovalReason::Deleted
            } else {
                RemovalReason::Changed
            };
            let deleted = shared.directory.delete_user(index, reason, &shared.clock);
            ok(&json!({"deleted": deleted}))
        }
        (["users", key], &Method::GET) => {
            let index = user_index(key)?;
            ok(&json!({
                "index": index,
                "case": shared.directory.case_of(index),
                "user": shared.directory.user(index, &shared.clock),
                "invitation": shared.directory.invitation_of(index),
            }))
        }
        (["users", key, "redeem"], &Method::POST) => {
            let index = user_index(key)?;
            match shared.directory.redeem(index, &shared.clock) {
                Ok(user) => ok(&serde_json::to_value(user).unwrap_or(Value::Null)),
                Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
            }
        }
        (["users", key, "memberships"], &Method::GET) => {
            let index = user_index(key)?;
            let groups: Vec<&str> = shared
                .directory
                .member_of(index)
                .into_iter()
                .map(|p| shared.directory.facts.groups[p].id.as_str())
                .collect();
            ok(&json!({
                "groups": groups,
                "appRoleAssignments": shared.directory.app_role_assignments(index),
            }))
        }
        (["users", key, "app-role-assignments", id, "remove"], &Method::POST) => {
            let index = user_index(key)?;
            match shared.directory.remove_app_role_assignment(index, id) {
                Ok(removed) => ok(&json!({"removed": removed})),
                Err(e) => error(StatusCode::NOT_FOUND, e.to_string()),
            }
        }
        (["groups", group, "members", key, "remove"], &Method::POST) => {
            let position = shared
                .directory
                .facts
                .group_position(group)
                .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("no group {group}")))?;
            let index = user_index(key)?;
            match shared.directory.remove_group_member(position, index) {
                Ok(()) => ok(&json!({"group": group, "user": key, "removed": true})),
                Err(e) => error(StatusCode::NOT_FOUND, e.to_string()),
            }
        }
        (["cases", name], &Method::GET) => {
            let case: UserCase = serde_json::from_value(json!(name))
                .map_err(|_| error(StatusCode::BAD_REQUEST, format!("unknown case {name}")))?;
            let index = shared
                .directory
                .find_case(case)
                .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("no user of case {name}")))?;
            ok(&json!({"index": index, "user": shared.directory.user(index, &shared.clock)}))
        }
        (["faults"], &Method::GET) => {
            ok(&serde_json::to_value(shared.fault_plan()).unwrap_or(Value::Null))
        }
        (["faults"], &Method::PUT) => {
            let is_text = ctx
                .header("content-type")
                .is_some_and(|c| c.starts_with("text/plain"));
            let plan = if is_text {
                FaultPlan::parse(&String::from_utf8_lossy(&ctx.body))
                    .map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?
            } else {
                body_json::<FaultPlan>(ctx)?
            };
            shared.set_fault_plan(plan.clone());
            ok(&serde_json::to_value(plan).unwrap_or(Value::Null))
        }
        (["throttling"], &Method::GET) => {
            ok(&serde_json::to_value(shared.throttle.config()).unwrap_or(Value::Null))
        }
        (["throttling"], &Method::PUT) => {
            let config: ThrottleConfig = body_json(ctx)?;
            shared.throttle.set_config(config.clone());
            ok(&serde_json::to_value(config).unwrap_or(Value::Null))
        }
        (["redemption"], &Method::PUT) => {
            let config: RedemptionConfig = body_json(ctx)?;
            shared.directory.set_redemption(config.clone());
            ok(&serde_json::to_value(config).unwrap_or(Value::Null))
        }
        (["auth"], &Method::GET) => {
            ok(&serde_json::to_value(shared.auth.config()).unwrap_or(Value::Null))
        }
        (["auth"], &Method::PUT) => {
            let config: AuthConfig = body_json(ctx)?;
            shared.auth.set_config(config.clone());
            ok(&serde_json::to_value(config).unwrap_or(Value::Null))
        }
        (["clock", action @ ("freeze" | "resume")], &Method::POST) => {
            if *action == "freeze" {
                shared.clock.freeze();
            } else {
                shared.clock.resume();
            }
            ok(&json!({"now": shared.clock.now_rfc3339()}))
        }
        (["tokens", "revoke"], &Method::POST) => {
            shared.auth.revoke_all(&shared.clock);
            ok(&json!({"revoked": true}))
        }
        (["clock", "advance"], &Method::POST) => {
            let body: Value = body_json(ctx)?;
            let seconds = body
                .get("seconds")
                .and_then(Value::as_f64)
                .ok_or_else(|| error(StatusCode::BAD_REQUEST, "body needs {\"seconds\": n}"))?;
            let by = Duration::try_from_secs_f64(seconds)
                .map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?;
            shared.clock.advance(by);
            ok(&json!({"now": shared.clock.now_rfc3339()}))
        }
        (["device-codes", code, decision @ ("approve" | "decline")], &Method::POST) => {
            let upn = if *decision == "approve" {
                let body: Value = if ctx.body.is_empty() {
                    json!({})
                } else {
                    body_json(ctx)?
                };
                Some(
                    body.get("userPrincipalName")
                        .and_then(Value::as_str)
                        .map_or_else(|| shared.default_admin_upn(), str::to_owned),
                )
            } else {
                None
            };
            if shared.auth.decide_device_code(code, upn) {
                ok(&json!({"userCode": code, "decision": decision}))
            } else {
                error(
                    StatusCode::NOT_FOUND,
                    format!("no pending device code with user code {code}"),
                )
            }
        }
        _ => error(
            StatusCode::NOT_FOUND,
            format!("no admin endpoint {} {}", ctx.method, ctx.path),
        ),
    })
}
