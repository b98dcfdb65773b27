//! Cross-tenant access settings (NOTES.md §2.x "Automatic redemption"): this tenant's default
//! configuration and its configuration for one partner tenant
//! (`GET /policies/crossTenantAccessPolicy/default`, `…/partners/{tenantId}`, both
//! `Policy.Read.All`), read for their `automaticUserConsentSettings` ("Automatically redeem
//! invitations").
//!
//! It must not decide what the settings mean for a partner (that is
//! [`plan::preflight`](crate::plan::preflight)'s) nor write them: the tool only reads them.

use serde::Deserialize;
use uuid::Uuid;

use super::client::{GraphClient, Priority};
use super::error::Error;

/// An `inboundOutboundPolicyConfiguration`: `None` is Graph's `null`, "inherit the default".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutomaticConsent {
    #[serde(default)]
    pub inbound_allowed: Option<bool>,
    #[serde(default)]
    pub outbound_allowed: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigurationDto {
    /// Absent or `null` reads as "not set" (both `None`).
    #[serde(default)]
    automatic_user_consent_settings: Option<AutomaticConsent>,
}

impl GraphClient {
    /// The default configuration's automatic-redemption pair (documented as always `false`).
    pub async fn cross_tenant_default_consent(&self) -> Result<AutomaticConsent, Error> {
        let url = self.url("policies/crossTenantAccessPolicy/default");
        let response = self
            .get::<ConfigurationDto>(url, Priority::Normal, &[])
            .await?;
        Ok(response
            .body
            .automatic_user_consent_settings
            .unwrap_or_default())
    }

    /// Our configuration for the partner tenant `tenant_id`: its automatic-redemption pair,
    /// or `None` when there is no partner entry for it (404).
    pub async fn cross_tenant_partner_consent(
        &self,
        tenant_id: Uuid,
    ) -> Result<Option<AutomaticConsent>, Error> {
        let url = self.url(&format!(
            "policies/crossTenantAccessPolicy/partners/{tenant_id}"
        ));
        match self
            .get::<ConfigurationDto>(url, Priority::Normal, &[])
            .await
        {
            Ok(response) => Ok(Some(
                response
                    .body
                    .automatic_user_consent_settings
                    .unwrap_or_default(),
            )),
            Err(error) if error.status() == Some(404) => Ok(None),
            Err(error) => Err(error),
        }
    }
}
