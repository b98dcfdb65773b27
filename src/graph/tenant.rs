//! Tenant facts: the organization (id, name), its domains, and the domains configured for
//! SAML/WS-Fed direct federation (NOTES.md §5).

use futures_util::TryStreamExt;
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::client::{GraphClient, Priority};
use super::error::Error;
use super::users::ValueBody;
use crate::domain::{FederationDomain, TenantDomain, TenantFacts};

/// The path of the direct-federation configurations (the cast segment selects SAML/WS-Fed).
const FEDERATION_PATH: &str =
    "directory/federationConfigurations/microsoft.graph.samlOrWsFedExternalDomainFederation";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrganizationDto {
    id: String,
    display_name: Option<String>,
    created_date_time: Option<String>,
}

/// The tenant as `GET /organization` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Organization {
    pub id: Uuid,
    pub display_name: Option<String>,
    /// `createdDateTime`; `None` when absent or not a date (read tolerantly: it only feeds a
    /// warning).
    pub created_at: Option<OffsetDateTime>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DomainDto {
    id: String,
    #[serde(default)]
    is_verified: bool,
    #[serde(default)]
    is_default: bool,
    #[serde(default)]
    is_initial: bool,
    authentication_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FederationDto {
    id: String,
    display_name: Option<String>,
}

#[derive(Deserialize)]
struct DomainNameDto {
    id: String,
}

impl GraphClient {
    /// The tenant's id and display name (`GET /organization`).
    pub async fn organization(&self) -> Result<(Uuid, Option<String>), Error> {
        let org = self.organization_facts().await?;
        Ok((org.id, org.display_name))
    }

    /// The tenant's id, display name and creation time (`GET /organization`).
    pub async fn organization_facts(&self) -> Result<Organization, Error> {
        let url = self.url("organization?$select=id,displayName,createdDateTime");
        let response = self
            .get::<ValueBody<OrganizationDto>>(url, Priority::Normal, &[])
            .await?;
        let request_id = response.meta.request_id.clone().unwrap_or_default();
        let org = response
            .body
            .value
            .into_iter()
            .next()
            .ok_or_else(|| Error::Decode {
                method: "GET".into(),
                path: "/v1.0/organization".into(),
                field: "value".into(),
                message: "no organization returned".into(),
                request_id: request_id.clone(),
            })?;
        let id = Uuid::parse_str(&org.id).map_err(|e| Error::Decode {
            method: "GET".into(),
            path: "/v1.0/organization".into(),
            field: "value[0].id".into(),
            message: e.to_string(),
            request_id,
        })?;
        let created_at = org.created_date_time.as_deref().and_then(|at| {
            OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()
        });
        Ok(Organization {
            id,
            display_name: org.display_name,
            created_at,
        })
    }

    /// Every domain registered in the tenant (`GET /domains`).
    pub async fn domains(&self) -> Result<Vec<TenantDomain>, Error> {
        let url = self.url("domains?$select=id,isVerified,isDefault,isInitial,authenticationType");
        let pages: Vec<_> = self.pages::<DomainDto>(url, &[]).try_collect().await?;
        Ok(pages
            .into_iter()
            .flat_map(|page| page.items)
            .map(|d| TenantDomain {
                name: d.id.to_lowercase(),
                is_verified: d.is_verified,
                is_default: d.is_default,
                is_initial: d.is_initial,
                authentication_type: d.authentication_type,
            })
            .collect())
    }

    /// Every domain set up for SAML/WS-Fed direct federation, with its configuration. The
    /// domains are read per configuration: whether the list inlines them is not documented.
    pub async fn federation_domains(&self) -> Result<Vec<FederationDomain>, Error> {
        let configurations: Vec<_> = self
            .pages::<FederationDto>(self.url(FEDERATION_PATH), &[])
            .try_collect()
            .await?;
        let mut domains = Vec::new();
        for configuration in configurations.into_iter().flat_map(|p| p.items) {
            let url = self.url(&format!("{FEDERATION_PATH}/{}/domains", configuration.id));
            let pages: Vec<_> = self.pages::<DomainNameDto>(url, &[]).try_collect().await?;
            domains.extend(
                pages
                    .into_iter()
                    .flat_map(|p| p.items)
                    .map(|d| FederationDomain {
                        domain: d.id.to_lowercase(),
                        configuration_id: configuration.id.clone(),
                        display_name: configuration.display_name.clone(),
                    }),
            );
        }
        Ok(domains)
    }

    /// All tenant facts at once. `with_federation: false` skips the direct-federation read
    /// (its permission is only needed while the direct-federation rule is on).
    pub async fn tenant_facts(
        &self,
        now: OffsetDateTime,
        with_federation: bool,
    ) -> Result<TenantFacts, Error> {
        let org = self.organization_facts().await?;
        Ok(TenantFacts {
            tenant_id: org.id,
            display_name: org.display_name,
            created_at: org.created_at,
            domains: self.domains().await?,
            federation_domains: if with_federation {
                self.federation_domains().await?
            } else {
                Vec::new()
            },
            fetched_at: now,
            contacts_read_at: None,
        })
    }
}
