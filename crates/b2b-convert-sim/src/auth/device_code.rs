//! The device-code flow (NOTES §7.2): `/devicecode`, polling with `authorization_pending`,
//! `slow_down`, `authorization_declined`, `expired_token`, and the admin decision.
//! It must not validate client secrets or assertions.

use std::collections::HashMap;

use serde::Serialize;

use super::{Auth, TokenError, TokenResponse, find_app, lock, missing_parameter, token_error};
use crate::clock::SimClock;
use crate::directory::TenantFacts;
use crate::model::AppRegistration;

/// The `/devicecode` response.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceCodeResponse {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub expires_in: u64,
    pub interval: u64,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DeviceStatus {
    Pending,
    Approved(String),
    Declined,
}

#[derive(Debug, Clone)]
pub(super) struct DeviceCode {
    user_code: String,
    client_id: String,
    scopes: Vec<String>,
    expires_at_ms: u64,
    interval_secs: u64,
    last_poll_ms: Option<u64>,
    status: DeviceStatus,
}

impl Auth {
    /// `POST {login}/{tenant}/oauth2/v2.0/devicecode`.
    pub fn start_device_code(
        &self,
        facts: &TenantFacts,
        tenant: &str,
        form: &HashMap<String, String>,
        clock: &SimClock,
    ) -> Result<DeviceCodeResponse, TokenError> {
        if !Self::tenant_matches(facts, tenant) && !matches!(tenant, "organizations" | "common") {
            return Err(token_error(
                400,
                "invalid_request",
                90002,
                format!("Tenant '{tenant}' not found."),
            ));
        }
        let client_id = form
            .get("client_id")
            .ok_or_else(|| missing_parameter("client_id"))?;
        let app = find_app(facts, client_id)?;
        if !app.public_client {
            return Err(token_error(
                400,
                "invalid_client",
                7_000_218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'. (The app does not allow public client flows.)",
            ));
        }
        let requested = form.get("scope").cloned().unwrap_or_default();
        let mut scopes = Vec::new();
        for scope in requested.split_whitespace() {
            if matches!(scope, "offline_access" | "openid" | "profile" | "email") {
                continue;
            }
            let name = scope
                .strip_prefix("https://graph.microsoft.com/")
                .unwrap_or(scope);
            if name == ".default" {
                scopes.extend(app.delegated_scopes.iter().cloned());
            } else if app
                .delegated_scopes
                .iter()
                .any(|s| s.eq_ignore_ascii_case(name))
            {
                scopes.push(name.to_owned());
            } else {
                return Err(token_error(
                    400,
                    "invalid_grant",
                    65001,
                    format!(
                        "The user or administrator has not consented to use the application with ID '{}' named '{}'. Send an interactive authorization request for this user and resource. (scope {name})",
                        app.client_id, app.display_name
                    ),
                ));
            }
        }
        if scopes.is_empty() {
            return Err(token_error(
                400,
                "invalid_scope",
                70011,
                "The provided request must include a 'scope' input parameter.",
            ));
        }
        let config = self.config();
        let device_code = format!("DAQABAAEAAA{}", uuid::Uuid::new_v4().simple());
        let user_code: String = uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .to_uppercase()
            .chars()
            .filter(char::is_ascii_alphabetic)
            .chain("XYZWVUTSR".chars())
            .take(9)
            .collect();
        let expires_in = config.device_code_lifetime.as_secs();
        let interval = config.device_code_interval.as_secs();
        lock(&self.device_codes).insert(
            device_code.clone(),
            DeviceCode {
                user_code: user_code.clone(),
                client_id: app.client_id.clone(),
                scopes,
                expires_at_ms: clock.now_ms() + expires_in * 1000,
                interval_secs: interval,
                last_poll_ms: None,
                status: DeviceStatus::Pending,
            },
        );
        Ok(DeviceCodeResponse {
            device_code,
            user_code: user_code.clone(),
            verification_uri: "https://microsoft.com/devicelogin".to_owned(),
            expires_in,
            interval,
            message: format!(
                "To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code {user_code} to authenticate."
            ),
        })
    }

    pub(super) fn poll_device_code(
        &self,
        facts: &TenantFacts,
        app: &AppRegistration,
        form: &HashMap<String, String>,
        clock: &SimClock,
    ) -> Result<TokenResponse, TokenError> {
        let code = form
            .get("device_code")
            .ok_or_else(|| missing_parameter("device_code"))?;
        let now = clock.now_ms();
        let mut codes = lock(&self.device_codes);
        let entry = codes
            .get_mut(code)
            .filter(|e| e.client_id == app.client_id)
            .ok_or_else(|| {
                token_error(
                    400,
                    "bad_verification_code",
                    70000,
                    "The device code is not valid.",
                )
            })?;
        if now >= entry.expires_at_ms {
            return Err(token_error(
                400,
                "expired_token",
                70019,
                "Verification code expired.",
            ));
        }
        let too_fast = entry
            .last_poll_ms
            .is_some_and(|last| now < last + entry.interval_secs * 1000);
        entry.last_poll_ms = Some(now);
        if too_fast {
            entry.interval_secs += 5;
            return Err(token_error(
                400,
                "slow_down",
                70016,
                format!(
                    "Polling too fast; poll no more often than every {} seconds.",
                    entry.interval_secs
                ),
            ));
        }
        match entry.status.clone() {
            DeviceStatus::Pending => Err(token_error(
                400,
                "authorization_pending",
                70016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            )),
            DeviceStatus::Declined => {
                codes.remove(code);
                Err(token_error(
                    400,
                    "authorization_declined",
                    70000,
                    "The end user denied the authorization request.",
                ))
            }
            DeviceStatus::Approved(upn) => {
                let scopes = entry.scopes.clone();
                codes.remove(code);
                drop(codes);
                Ok(self.mint(facts, app, None, Some(scopes), Some(upn), clock))
            }
        }
    }

    /// Admin: the user at the browser approves (`Some(upn)`) or declines (`None`) a user code.
    pub fn decide_device_code(&self, user_code: &str, approve_as: Option<String>) -> bool {
        let mut codes = lock(&self.device_codes);
        let Some(entry) = codes.values_mut().find(|e| {
            e.user_code.eq_ignore_ascii_case(user_code) && e.status == DeviceStatus::Pending
        }) else {
            return false;
        };
        entry.status = approve_as.map_or(DeviceStatus::Declined, DeviceStatus::Approved);
        true
    }
}
