//! Typed, validated settings built from [`RawSettings`]: URLs are URLs, paths are resolved,
//! limits are within what the service allows, secrets are read and wrapped.
//!
//! Owns every check that needs more than one key or knowledge of the service. It must not read
//! the environment itself (the caller hands over an [`Environment`] snapshot).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use url::Url;
use uuid::Uuid;

use super::raw::{
    AssertionAlgorithm, AuthMethod, Cloud, InvitedUserType, NewPasswordKind, RawSettings,
};
use super::{ENV_SECRETS, Environment, Error, Origin, Provenance};
use crate::domain::{Rule, RuleMode};

/// The service's ceiling for `/invitations`: 150 requests per 5 seconds per tenant.
pub const INVITATIONS_PER_SECOND_CEILING: f64 = 30.0;
/// The identity write ceiling per app and tenant: 3,000 requests per 150 seconds.
pub const DIRECTORY_WRITES_PER_SECOND_CEILING: f64 = 20.0;

/// The validated configuration every command works from.
#[derive(Debug)]
pub struct Settings {
    /// The config file that was read, if any (`None`: no file, defaults apply).
    pub config_file: Option<PathBuf>,
    pub tenant: TenantSettings,
    pub auth: AuthSettings,
    pub store: StoreSettings,
    pub invitation: InvitationSettings,
    pub rules: RuleSettings,
    pub throughput: ThroughputSettings,
    pub discovery: DiscoverySettings,
    pub directory: DirectorySettings,
    effective: Vec<EffectiveValue>,
}

impl Settings {
    /// Every key with its effective value and origin; secrets show only whether they are set.
    pub fn effective_values(&self) -> &[EffectiveValue] {
        &self.effective
    }

    /// One key's effective value and origin.
    pub(super) fn effective(&self, key: &str) -> Option<&EffectiveValue> {
        self.effective.iter().find(|v| v.key == key)
    }
}

#[derive(Debug)]
pub struct TenantSettings {
    /// The tenant's GUID or one of its domain names, lower-case.
    pub tenant_id: Option<String>,
    /// The application (client) id of the app registration.
    pub client_id: Option<Uuid>,
    pub cloud: Cloud,
    pub graph_url: Url,
    pub login_url: Url,
}

#[derive(Debug)]
pub struct AuthSettings {
    pub method: AuthMethod,
    pub client_secret: Option<Secret>,
    pub certificate_path: Option<PathBuf>,
    pub certificate_password: Option<Secret>,
    pub assertion_algorithm: AssertionAlgorithm,
    pub send_certificate_chain: bool,
    pub access_token: Option<Secret>,
    /// Delegated permission names for the device-code flow, without the resource prefix.
    pub delegated_scopes: Vec<String>,
    pub managed_identity_client_id: Option<String>,
    /// Set only when overridden: the default IMDS address is decided in `graph_auth`.
    pub imds_url: Option<Url>,
    /// `auth.imds_url = "none"`: the metadata service is never contacted.
    pub imds_disabled: bool,
    pub identity_endpoint: Option<Url>,
    pub identity_header: Option<Secret>,
    pub msi_endpoint: Option<Url>,
    pub msi_secret: Option<Secret>,
    /// The path only: the file is read before each token request (it rotates).
    pub federated_token_file: Option<PathBuf>,
    pub oidc_request_url: Option<Url>,
    pub oidc_request_token: Option<Secret>,
    pub oidc_audience: String,
    pub azure_cli_path: PathBuf,
}

#[derive(Debug)]
pub struct StoreSettings {
    /// The SQLite database, resolved against the config file's folder when it came from there.
    pub path: PathBuf,
}

#[derive(Clone, Debug)]
#[allow(clippy::struct_excessive_bools)] // one per config key
pub struct InvitationSettings {
    /// `None` when no default can be derived (no tenant id, or a national cloud).
    pub redirect_url: Option<Url>,
    pub send_message: bool,
    pub message_language: String,
    /// Each invitation's `messageLanguage` is the user's `preferredLanguage` when that is a
    /// language tag, `message_language` otherwise.
    pub message_language_from_user: bool,
    pub custom_message: Option<String>,
    pub cc_recipient: Option<CcRecipient>,
    /// `None`: the field is left out of the request and the service decides.
    pub invited_user_type: Option<InvitedUserType>,
    pub send_display_name: bool,
    pub set_mail_before_invite: bool,
    /// When `run` set `mail` and the invitation then fails permanently, put the previous
    /// `mail` back.
    pub restore_mail_on_failure: bool,
    /// `plan` reads the cross-tenant access settings for each partner tenant (the partner
    /// pre-flight: can redemption be automatic?).
    pub check_partner_settings: bool,
}

/// The one extra recipient the service supports for the invitation email.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CcRecipient {
    pub address: String,
    pub name: Option<String>,
}

#[derive(Debug)]
pub struct RuleSettings {
    modes: BTreeMap<Rule, RuleMode>,
    /// `exchange.add_on_plans`: plan ids added to the built-in Exchange add-on list.
    pub exchange_add_on_plans: Vec<uuid::Uuid>,
}

impl RuleSettings {
    pub fn mode(&self, rule: Rule) -> RuleMode {
        self.modes
            .get(&rule)
            .copied()
            .unwrap_or_else(|| rule.default_mode())
    }
}

#[derive(Debug)]
pub struct ThroughputSettings {
    pub max_concurrency: NonZeroUsize,
    pub max_invitations_per_second: f64,
    pub max_directory_writes_per_second: f64,
    /// At most this many invitations in any rolling 24 h, counted across runs from the event
    /// log (the service's daily quotas, NOTES §8.2a); none when unset.
    pub max_invitations_per_day: Option<NonZeroU32>,
    pub low_priority_reads: bool,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub max_attempts: NonZeroU32,
}

/// How a whole-tenant `discover` reads the users (`[discovery]`).
#[derive(Debug)]
pub struct DiscoverySettings {
    /// Read in `startsWith(userPrincipalName,…)` partitions, paged in parallel.
    pub partitioned: bool,
    /// Partitions paged at once.
    pub parallel_reads: NonZeroUsize,
    /// Keep a users delta link; the next whole-tenant discover reads only the changes.
    pub incremental: bool,
}

#[derive(Debug)]
pub struct DirectorySettings {
    /// `ldaps://` or `ldap://` (the latter only with StartTLS).
    pub url: Option<Url>,
    pub tls: DirectoryTls,
    pub ca_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
    pub bind_dn: Option<String>,
    pub bind_password: Option<Secret>,
    pub base_dn: Option<String>,
    pub new_password: NewPasswordKind,
    pub random_password_length: usize,
}

/// How the LDAP connection is encrypted. There is no plain variant on purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirectoryTls {
    Ldaps,
    StartTls,
}

/// A secret value and where it came from. `Debug` never shows the value.
pub struct Secret {
    value: SecretString,
    origin: Origin,
}

impl Secret {
    pub fn new(value: impl Into<String>, origin: Origin) -> Self {
        Self {
            value: SecretString::from(value.into()),
            origin,
        }
    }

    /// The secret itself; call only where it is sent to its one destination.
    pub fn expose(&self) -> &str {
        self.value.expose_secret()
    }

    pub fn origin(&self) -> &Origin {
        &self.origin
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret([REDACTED] from {})", self.origin)
    }
}

/// One line of `b2b-convert config`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EffectiveValue {
    pub key: String,
    /// The value as JSON; `null` when unset. For a secret: `"(set)"` or `null`.
    pub value: serde_json::Value,
    pub origin: Origin,
    pub secret: bool,
}

impl Cloud {
    pub fn default_login_url(self) -> &'static str {
        match self {
            Self::Global => "https://login.microsoftonline.com",
            Self::Usgov | Self::UsgovDod => "https://login.microsoftonline.us",
            Self::China => "https://login.chinacloudapi.cn",
        }
    }

    /// The identifier of Microsoft Graph in this cloud: the audience of its tokens and the
    /// prefix of its scopes.
    pub fn graph_resource(self) -> &'static str {
        self.default_graph_url()
    }

    pub fn default_graph_url(self) -> &'static str {
        match self {
            Self::Global => "https://graph.microsoft.com",
            Self::Usgov => "https://graph.microsoft.us",
            Self::UsgovDod => "https://dod-graph.microsoft.us",
            Self::China => "https://microsoftgraph.chinacloudapi.cn",
        }
    }
}

/// Builds [`Settings`] from the merged raw input; every error names the key and its origin.
pub(super) fn validate(
    raw: &RawSettings,
    config_file: Option<PathBuf>,
    env: &Environment,
    provenance: &Provenance,
) -> Result<Settings, Error> {
    let check = Checker {
        provenance,
        config_dir: config_file
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default(),
    };
    let mut effective_raw = serde_json::to_value(raw).expect("settings serialize to JSON");

    let tenant = check.tenant(raw)?;
    let secrets = SecretReader { check: &check, env };
    let auth = check.auth(raw, &secrets)?;
    let store = StoreSettings {
        path: check.path("store.path", &raw.store.path),
    };
    let invitation = check.invitation(raw, &tenant)?;
    let throughput = check.throughput(raw)?;
    let discovery = check.discovery(raw)?;
    let directory = check.directory(raw, &secrets)?;
    let rules = RuleSettings {
        modes: raw.rules.clone(),
        exchange_add_on_plans: check
            .plan_ids("exchange.add_on_plans", &raw.exchange.add_on_plans)?,
    };

    // Show what is really used where it is derived or resolved.
    effective_raw["tenant"]["graph_url"] = tenant.graph_url.as_str().into();
    effective_raw["tenant"]["login_url"] = tenant.login_url.as_str().into();
    effective_raw["store"]["path"] = store.path.display().to_string().into();
    effective_raw["invitation"]["redirect_url"] = invitation
        .redirect_url
        .as_ref()
        .map_or(serde_json::Value::Null, |u| u.as_str().into());
    let mut effective = Vec::new();
    flatten(&effective_raw, "", provenance, &mut effective);
    for (key, secret) in [
        ("auth.client_secret", &auth.client_secret),
        ("auth.certificate_password", &auth.certificate_password),
        ("auth.access_token", &auth.access_token),
        ("auth.identity_header", &auth.identity_header),
        ("auth.msi_secret", &auth.msi_secret),
        ("auth.oidc_request_token", &auth.oidc_request_token),
        ("directory.bind_password", &directory.bind_password),
    ] {
        effective.push(EffectiveValue {
            key: key.to_owned(),
            value: secret
                .as_ref()
                .map_or(serde_json::Value::Null, |_| "(set)".into()),
            origin: secret
                .as_ref()
                .map_or(Origin::Default, |s| s.origin().clone()),
            secret: true,
        });
    }
    effective.sort_by(|a, b| a.key.cmp(&b.key));

    Ok(Settings {
        config_file,
        tenant,
        auth,
        store,
        invitation,
        rules,
        throughput,
        discovery,
        directory,
        effective,
    })
}

fn flatten(
    value: &serde_json::Value,
    prefix: &str,
    provenance: &Provenance,
    out: &mut Vec<EffectiveValue>,
) {
    if let serde_json::Value::Object(map) = value {
        for (key, inner) in map {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            flatten(inner, &path, provenance, out);
        }
    } else {
        out.push(EffectiveValue {
            key: prefix.to_owned(),
            value: value.clone(),
            origin: provenance.origin(prefix),
            secret: false,
        });
    }
}

/// Validation helpers that know where each key came from.
struct Checker<'a> {
    provenance: &'a Provenance,
    /// Relative paths from the file (or defaults) are resolved against this folder.
    config_dir: PathBuf,
}

impl Checker<'_> {
    fn invalid(&self, key: &str, message: impl Into<String>) -> Error {
        Error::Invalid {
            key: key.to_owned(),
            origin: self.provenance.origin(key),
            message: message.into(),
        }
    }

    /// Resolves a relative path: from the file or a default, against the config file's
    /// folder; from the environment or a flag, against the working directory.
    fn path(&self, key: &str, path: &Path) -> PathBuf {
        match self.provenance.origin(key) {
            Origin::File { .. } | Origin::Default if path.is_relative() => {
                self.config_dir.join(path)
            }
            _ => path.to_path_buf(),
        }
    }

    fn url(&self, key: &str, text: &str, allow_query: bool) -> Result<Url, Error> {
        let url =
            Url::parse(text).map_err(|e| self.invalid(key, format!("not a valid URL: {e}")))?;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&url) => {}
            "http" => {
                return Err(self.invalid(
                    key,
                    "plain http:// is accepted only for loopback hosts (the simulator); use https://",
                ));
            }
            other => {
                return Err(self.invalid(key, format!("scheme `{other}` is not https")));
            }
        }
        if !allow_query && (url.query().is_some() || url.fragment().is_some()) {
            return Err(self.invalid(key, "must not contain a query or fragment"));
        }
        Ok(url)
    }

    /// The sign-in settings; secrets read from the environment or their files.
    fn auth(&self, raw: &RawSettings, secrets: &SecretReader<'_>) -> Result<AuthSettings, Error> {
        let check = self;
        Ok(AuthSettings {
            method: raw.auth.method,
            client_secret: secrets.read(
                "auth.client_secret",
                "auth.client_secret_file",
                raw.auth.client_secret_file.as_deref(),
            )?,
            certificate_path: raw
                .auth
                .certificate_path
                .as_deref()
                .map(|p| check.path("auth.certificate_path", p)),
            certificate_password: secrets.read(
                "auth.certificate_password",
                "auth.certificate_password_file",
                raw.auth.certificate_password_file.as_deref(),
            )?,
            assertion_algorithm: raw.auth.assertion_algorithm,
            send_certificate_chain: raw.auth.send_certificate_chain,
            access_token: secrets.read(
                "auth.access_token",
                "auth.access_token_file",
                raw.auth.access_token_file.as_deref(),
            )?,
            delegated_scopes: check.scopes(&raw.auth.delegated_scopes)?,
            managed_identity_client_id: raw
                .auth
                .managed_identity_client_id
                .as_deref()
                .map(str::trim)
                .map(str::to_owned),
            imds_url: check.identity_url(
                "auth.imds_url",
                raw.auth.imds_url.as_deref().filter(|u| *u != "none"),
            )?,
            imds_disabled: raw.auth.imds_url.as_deref() == Some("none"),
            identity_endpoint: check.identity_url(
                "auth.identity_endpoint",
                raw.auth.identity_endpoint.as_deref(),
            )?,
            identity_header: secrets.read("auth.identity_header", "", None)?,
            msi_endpoint: check
                .identity_url("auth.msi_endpoint", raw.auth.msi_endpoint.as_deref())?,
            msi_secret: secrets.read("auth.msi_secret", "", None)?,
            federated_token_file: raw
                .auth
                .federated_token_file
                .as_deref()
                .map(|p| check.path("auth.federated_token_file", p)),
            oidc_request_url: raw
                .auth
                .oidc_request_url
                .as_deref()
                .map(|u| check.url("auth.oidc_request_url", u, true))
                .transpose()?,
            oidc_request_token: secrets.read("auth.oidc_request_token", "", None)?,
            oidc_audience: raw.auth.oidc_audience.clone(),
            azure_cli_path: raw.auth.azure_cli_path.clone(),
        })
    }

    /// A managed-identity endpoint: https, or plain http on loopback (the host's local
    /// identity service, the simulator) or link-local (the Instance Metadata Service).
    fn identity_url(&self, key: &str, text: Option<&str>) -> Result<Option<Url>, Error> {
        let Some(text) = text else { return Ok(None) };
        let url =
            Url::parse(text).map_err(|e| self.invalid(key, format!("not a valid URL: {e}")))?;
        let link_local = matches!(url.host(), Some(url::Host::Ipv4(ip)) if ip.is_link_local());
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&url) || link_local => {}
            _ => {
                return Err(self.invalid(
                    key,
                    "an identity endpoint is https://, or http:// on a loopback or link-local \
                     address",
                ));
            }
        }
        Ok(Some(url))
    }

    fn tenant(&self, raw: &RawSettings) -> Result<TenantSettings, Error> {
        let tenant_id = raw
            .tenant
            .tenant_id
            .as_deref()
            .map(|t| {
                parse_tenant_id(t).ok_or_else(|| {
                    self.invalid(
                        "tenant.tenant_id",
                        format!(
                            "`{t}` is neither a GUID nor a domain name; use the tenant's id (a GUID) \
                             or one of its domains such as contoso.onmicrosoft.com"
                        ),
                    )
                })
            })
            .transpose()?;
        let client_id = raw
            .tenant
            .client_id
            .as_deref()
            .map(|c| {
                Uuid::parse_str(c.trim()).map_err(|_| {
                    self.invalid(
                        "tenant.client_id",
                        format!("`{c}` is not a GUID; use the app registration's Application (client) ID"),
                    )
                })
            })
            .transpose()?;
        let cloud = raw.tenant.cloud;
        let graph_url = self.url(
            "tenant.graph_url",
            raw.tenant
                .graph_url
                .as_deref()
                .unwrap_or(cloud.default_graph_url()),
            false,
        )?;
        let login_url = self.url(
            "tenant.login_url",
            raw.tenant
                .login_url
                .as_deref()
                .unwrap_or(cloud.default_login_url()),
            false,
        )?;
        Ok(TenantSettings {
            tenant_id,
            client_id,
            cloud,
            graph_url,
            login_url,
        })
    }

    fn plan_ids(&self, key: &str, ids: &[String]) -> Result<Vec<uuid::Uuid>, Error> {
        ids.iter()
            .map(|id| {
                uuid::Uuid::parse_str(id.trim()).map_err(|_| {
                    self.invalid(
                        key,
                        format!("`{id}` is not a service plan id (a GUID such as 326e2b78-9d27-42c9-8509-46c827743a17)"),
                    )
                })
            })
            .collect()
    }

    fn scopes(&self, scopes: &[String]) -> Result<Vec<String>, Error> {
        if let Some(bad) = scopes
            .iter()
            .find(|s| s.is_empty() || s.contains(char::is_whitespace))
        {
            return Err(self.invalid(
                "auth.delegated_scopes",
                format!("`{bad}` is not a permission name such as User.Read.All"),
            ));
        }
        Ok(scopes.to_vec())
    }

    fn invitation(
        &self,
        raw: &RawSettings,
        tenant: &TenantSettings,
    ) -> Result<InvitationSettings, Error> {
        let inv = &raw.invitation;
        let redirect_url = match inv.redirect_url.as_deref() {
            Some(text) => Some(self.url("invitation.redirect_url", text, true)?),
            // Derived only from a tenant GUID: `tenantId` takes the id, not a domain name.
            None => match (&tenant.tenant_id, tenant.cloud) {
                (Some(id), Cloud::Global) if Uuid::parse_str(id).is_ok() => Some(
                    Url::parse_with_params("https://myapps.microsoft.com/", [("tenantId", id)])
                        .expect("a constant URL with a query parameter"),
                ),
                _ => None,
            },
        };
        if !crate::domain::is_language_tag(&inv.message_language) {
            return Err(self.invalid(
                "invitation.message_language",
                format!(
                    "`{}` is not a language tag such as en-US or de-DE",
                    inv.message_language
                ),
            ));
        }
        if inv
            .custom_message
            .as_deref()
            .is_some_and(|m| m.trim().is_empty())
        {
            return Err(self.invalid(
                "invitation.custom_message",
                "is empty; remove the key to send Microsoft's default message",
            ));
        }
        let cc_recipient = match (&inv.cc_recipient, &inv.cc_recipient_name) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(self.invalid(
                    "invitation.cc_recipient_name",
                    "is set but invitation.cc_recipient is not",
                ));
            }
            (Some(address), name) => {
                if !crate::domain::is_plausible_email(address) {
                    return Err(self.invalid(
                        "invitation.cc_recipient",
                        format!("`{address}` is not an email address"),
                    ));
                }
                Some(CcRecipient {
                    address: address.trim().to_owned(),
                    name: name.clone(),
                })
            }
        };
        Ok(InvitationSettings {
            redirect_url,
            send_message: inv.send_message,
            message_language: inv.message_language.clone(),
            message_language_from_user: inv.message_language_from_user,
            custom_message: inv.custom_message.clone(),
            cc_recipient,
            invited_user_type: inv.invited_user_type,
            send_display_name: inv.send_display_name,
            set_mail_before_invite: inv.set_mail_before_invite,
            restore_mail_on_failure: inv.restore_mail_on_failure,
            check_partner_settings: inv.check_partner_settings,
        })
    }

    /// At most [`MAX_PARALLEL_READS`](crate::discovery::MAX_PARALLEL_READS): the read
    /// budget's bound (docs/performance.md).
    fn discovery(&self, raw: &RawSettings) -> Result<DiscoverySettings, Error> {
        let d = &raw.discovery;
        let ceiling = crate::discovery::MAX_PARALLEL_READS;
        let parallel_reads = usize::try_from(d.parallel_reads)
            .ok()
            .filter(|n| (1..=ceiling).contains(n))
            .and_then(NonZeroUsize::new)
            .ok_or_else(|| {
                self.invalid(
                    "discovery.parallel_reads",
                    format!(
                        "{} is outside 1..={ceiling} (the read budget of the smallest tenants)",
                        d.parallel_reads
                    ),
                )
            })?;
        Ok(DiscoverySettings {
            partitioned: d.partitioned,
            parallel_reads,
            incremental: d.incremental,
        })
    }

    fn throughput(&self, raw: &RawSettings) -> Result<ThroughputSettings, Error> {
        let t = &raw.throughput;
        let max_concurrency = usize::try_from(t.max_concurrency)
            .ok()
            .filter(|n| (1..=64).contains(n))
            .and_then(NonZeroUsize::new)
            .ok_or_else(|| {
                self.invalid(
                    "throughput.max_concurrency",
                    format!("{} is outside 1..=64", t.max_concurrency),
                )
            })?;
        let rate = |key: &str, value: f64, ceiling: f64, why: &str| {
            if value > 0.0 && value <= ceiling {
                Ok(value)
            } else {
                Err(self.invalid(key, format!("{value} is outside (0, {ceiling}]: {why}")))
            }
        };
        let max_invitations_per_second = rate(
            "throughput.max_invitations_per_second",
            t.max_invitations_per_second,
            INVITATIONS_PER_SECOND_CEILING,
            "the service allows 150 invitation requests per 5 seconds per tenant, shared by all apps",
        )?;
        let max_directory_writes_per_second = rate(
            "throughput.max_directory_writes_per_second",
            t.max_directory_writes_per_second,
            DIRECTORY_WRITES_PER_SECOND_CEILING,
            "the service allows 3,000 directory writes per 150 seconds per app and tenant",
        )?;
        let max_invitations_per_day = t
            .max_invitations_per_day
            .map(|n| {
                u32::try_from(n).ok().and_then(NonZeroU32::new).ok_or_else(|| {
                    self.invalid(
                        "throughput.max_invitations_per_day",
                        format!("{n} is not a positive whole number (leave it unset for no daily quota)"),
                    )
                })
            })
            .transpose()?;
        if !(1..=300).contains(&t.connect_timeout_seconds) {
            return Err(self.invalid(
                "throughput.connect_timeout_seconds",
                format!("{} is outside 1..=300", t.connect_timeout_seconds),
            ));
        }
        if !(t.connect_timeout_seconds..=3600).contains(&t.request_timeout_seconds) {
            return Err(self.invalid(
                "throughput.request_timeout_seconds",
                format!(
                    "{} must be at least connect_timeout_seconds ({}) and at most 3600",
                    t.request_timeout_seconds, t.connect_timeout_seconds
                ),
            ));
        }
        let max_attempts = NonZeroU32::new(t.max_attempts)
            .filter(|n| n.get() <= 20)
            .ok_or_else(|| {
                self.invalid(
                    "throughput.max_attempts",
                    format!("{} is outside 1..=20", t.max_attempts),
                )
            })?;
        Ok(ThroughputSettings {
            max_concurrency,
            max_invitations_per_second,
            max_directory_writes_per_second,
            max_invitations_per_day,
            low_priority_reads: t.low_priority_reads,
            connect_timeout: Duration::from_secs(t.connect_timeout_seconds),
            request_timeout: Duration::from_secs(t.request_timeout_seconds),
            max_attempts,
        })
    }

    fn directory(
        &self,
        raw: &RawSettings,
        secrets: &SecretReader<'_>,
    ) -> Result<DirectorySettings, Error> {
        let d = &raw.directory;
        let url = d
            .url
            .as_deref()
            .map(|text| {
                Url::parse(text).map_err(|e| {
                    self.invalid("directory.url", format!("not a valid LDAP URL: {e}"))
                })
            })
            .transpose()?;
        let tls = match (url.as_ref().map(Url::scheme), d.starttls) {
            (Some("ldaps") | None, false) => DirectoryTls::Ldaps,
            (Some("ldap") | None, true) => DirectoryTls::StartTls,
            (Some("ldaps"), true) => {
                return Err(self.invalid(
                    "directory.starttls",
                    "StartTLS applies to ldap:// URLs; an ldaps:// URL is already encrypted",
                ));
            }
            (Some("ldap"), false) => {
                return Err(self.invalid(
                    "directory.url",
                    "plain LDAP is refused: Active Directory accepts password changes only over \
                     an encrypted connection; use ldaps:// (port 636) or set directory.starttls = true",
                ));
            }
            (Some(other), _) => {
                return Err(self.invalid(
                    "directory.url",
                    format!("scheme `{other}` is not ldaps:// or ldap://"),
                ));
            }
        };
        let random_password_length = usize::try_from(d.random_password_length)
            .ok()
            .filter(|n| (16..=256).contains(n))
            .ok_or_else(|| {
                self.invalid(
                    "directory.random_password_length",
                    format!("{} is outside 16..=256", d.random_password_length),
                )
            })?;
        Ok(DirectorySettings {
            url,
            tls,
            ca_file: d
                .ca_file
                .as_deref()
                .map(|p| self.path("directory.ca_file", p)),
            insecure_skip_verify: d.insecure_skip_verify,
            bind_dn: d.bind_dn.clone(),
            bind_password: secrets.read(
                "directory.bind_password",
                "directory.bind_password_file",
                d.bind_password_file.as_deref(),
            )?,
            base_dn: d.base_dn.clone(),
            new_password: d.new_password,
            random_password_length,
        })
    }
}

/// Reads each secret from its environment variable, else from the file its `*_file` key names.
struct SecretReader<'a> {
    check: &'a Checker<'a>,
    env: &'a Environment,
}

impl SecretReader<'_> {
    fn read(
        &self,
        secret: &str,
        file_key: &str,
        file: Option<&Path>,
    ) -> Result<Option<Secret>, Error> {
        let var = ENV_SECRETS
            .iter()
            .find(|(_, name)| *name == secret)
            .map(|(var, _)| *var)
            .expect("every secret has an environment variable");
        if let Some(value) = self.env.get(var) {
            return Ok(Some(Secret::new(
                value,
                Origin::Env {
                    var: var.to_owned(),
                },
            )));
        }
        let Some(file) = file else { return Ok(None) };
        let path = self.check.path(file_key, file);
        let origin = self.check.provenance.origin(file_key);
        let what = secret.rsplit('.').next().unwrap_or(secret);
        let fail = |source| Error::SecretFile {
            what: static_name(what),
            key: file_key.to_owned(),
            origin: origin.clone(),
            path: path.clone(),
            source,
        };
        warn_if_readable_by_others(&path);
        let text = std::fs::read_to_string(&path).map_err(fail)?;
        let value = text.trim_end_matches(['\r', '\n']);
        if value.is_empty() {
            return Err(fail(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the file is empty",
            )));
        }
        Ok(Some(Secret::new(
            value,
            Origin::File {
                path: path.clone(),
                line: 1,
            },
        )))
    }
}

fn static_name(what: &str) -> &'static str {
    match what {
        "client_secret" => "the client secret",
        "certificate_password" => "the certificate password",
        "access_token" => "the access token",
        "identity_header" => "the identity header",
        "msi_secret" => "the MSI secret",
        "oidc_request_token" => "the OIDC request token",
        _ => "the directory bind password",
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            "secret file is readable by other users; restrict it with `chmod 600`"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// A tenant GUID (normalised) or a DNS domain name (lower-cased).
fn parse_tenant_id(text: &str) -> Option<String> {
    let text = text.trim();
    if let Ok(uuid) = Uuid::parse_str(text) {
        return Some(uuid.hyphenated().to_string());
    }
    let domain = text.to_ascii_lowercase();
    let labels_ok = domain.split('.').all(|label| {
        !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    (labels_ok && domain.contains('.')).then_some(domain)
}
