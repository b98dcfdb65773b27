//! The configuration exactly as an operator writes it: one serde struct per TOML section, every
//! key optional with its default, unknown keys rejected.
//!
//! Owns key names, value syntax and defaults. Meaning and cross-key checks belong to
//! `settings.rs`; this file must not read files or the environment.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::domain::{Rule, RuleMode};
/// The signature of the client assertion in certificate auth (`auth.assertion_algorithm`).
pub use crate::graph::auth::AssertionAlgorithm;

/// The whole file. Every section and key may be left out.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSettings {
    pub tenant: RawTenant,
    pub auth: RawAuth,
    pub store: RawStore,
    pub invitation: RawInvitation,
    /// Keyed by rule code (`exchange-mailbox = "warn"`); rules left out keep their default.
    pub rules: BTreeMap<Rule, RuleMode>,
    pub exchange: RawExchange,
    pub throughput: RawThroughput,
    pub discovery: RawDiscovery,
    pub directory: RawDirectory,
}

impl RawSettings {
    /// Writes every rule's default mode into `rules`, so the effective view lists them all.
    pub fn fill_rule_defaults(&mut self) {
        for rule in Rule::ALL {
            self.rules
                .entry(*rule)
                .or_insert_with(|| rule.default_mode());
        }
    }
}

/// `[exchange]`: which service plans the `exchange-add-on-plan` rule looks for, beyond the
/// built-in list (`rules::EXCHANGE_ADD_ON_PLANS`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawExchange {
    /// More non-mailbox Exchange-family service plan ids (GUIDs).
    pub add_on_plans: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTenant {
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub cloud: Cloud,
    pub graph_url: Option<String>,
    pub login_url: Option<String>,
}

impl Default for RawTenant {
    fn default() -> Self {
        Self {
            tenant_id: None,
            client_id: None,
            cloud: Cloud::Global,
            graph_url: None,
            login_url: None,
        }
    }
}

/// The Microsoft cloud the tenant lives in; it decides the login and Graph hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cloud {
    Global,
    Usgov,
    UsgovDod,
    China,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAuth {
    pub method: AuthMethod,
    pub client_secret_file: Option<PathBuf>,
    pub certificate_path: Option<PathBuf>,
    pub certificate_password_file: Option<PathBuf>,
    pub assertion_algorithm: AssertionAlgorithm,
    /// Send the certificate chain (`x5c`) with the assertion, for subject-name/issuer auth.
    pub send_certificate_chain: bool,
    pub access_token_file: Option<PathBuf>,
    pub delegated_scopes: Vec<String>,
    /// A user-assigned managed identity's client id; unset: the system-assigned identity.
    pub managed_identity_client_id: Option<String>,
    /// The Instance Metadata Service endpoint (default `http://169.254.169.254/...`).
    pub imds_url: Option<String>,
    /// The host's identity endpoint (`IDENTITY_ENDPOINT`, App Service shape).
    pub identity_endpoint: Option<String>,
    /// The older identity endpoint (`MSI_ENDPOINT`).
    pub msi_endpoint: Option<String>,
    /// The federated token file (`AZURE_FEDERATED_TOKEN_FILE`), re-read for every token.
    pub federated_token_file: Option<PathBuf>,
    /// GitHub Actions' token request URL (`ACTIONS_ID_TOKEN_REQUEST_URL`).
    pub oidc_request_url: Option<String>,
    /// The audience asked of the OIDC issuer.
    pub oidc_audience: String,
    /// The Azure CLI program (found on `PATH` when not a path).
    pub azure_cli_path: PathBuf,
}

impl Default for RawAuth {
    fn default() -> Self {
        Self {
            method: AuthMethod::ClientSecret,
            client_secret_file: None,
            certificate_path: None,
            certificate_password_file: None,
            assertion_algorithm: AssertionAlgorithm::Ps256,
            send_certificate_chain: false,
            access_token_file: None,
            delegated_scopes: [
                "User.Read.All",
                "User.Invite.All",
                "User.ReadWrite.All",
                "Domain.Read.All",
                "Organization.Read.All",
                "IdentityProvider.Read.All",
                "GroupMember.Read.All",
                // The app role assignments `run` reads for each user's baseline (delegated:
                // AppRoleAssignment.ReadWrite.All or this; see graph::permissions).
                "Directory.Read.All",
            ]
            .map(String::from)
            .to_vec(),
            managed_identity_client_id: None,
            imds_url: None,
            identity_endpoint: None,
            msi_endpoint: None,
            federated_token_file: None,
            oidc_request_url: None,
            oidc_audience: "api://AzureADTokenExchange".to_owned(),
            azure_cli_path: PathBuf::from("az"),
        }
    }
}

/// How the tool gets its Graph access token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMethod {
    /// App-only: client id + client secret.
    ClientSecret,
    /// App-only: client id + certificate (signed client assertion).
    Certificate,
    /// A token obtained elsewhere (for example `az account get-access-token`).
    AccessToken,
    /// Delegated: an administrator signs in on another device.
    DeviceCode,
    /// App-only: the host's managed identity (IMDS or the App Service endpoint).
    ManagedIdentity,
    /// App-only: a federated token (file, or GitHub Actions OIDC) exchanged for a token.
    WorkloadIdentity,
    /// The Azure CLI's signed-in account (`az account get-access-token`).
    AzureCli,
    /// The Azure SDKs' order: environment secret or certificate, workload identity,
    /// managed identity, Azure CLI. Never device code.
    Auto,
}

impl AuthMethod {
    /// The kebab-case name, as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecret => "client-secret",
            Self::Certificate => "certificate",
            Self::AccessToken => "access-token",
            Self::DeviceCode => "device-code",
            Self::ManagedIdentity => "managed-identity",
            Self::WorkloadIdentity => "workload-identity",
            Self::AzureCli => "azure-cli",
            Self::Auto => "auto",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStore {
    pub path: PathBuf,
}

impl Default for RawStore {
    fn default() -> Self {
        Self {
            path: PathBuf::from("b2b-convert.db"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[allow(clippy::struct_excessive_bools)] // one per config key
pub struct RawInvitation {
    pub redirect_url: Option<String>,
    pub send_message: bool,
    pub message_language: String,
    pub message_language_from_user: bool,
    pub custom_message: Option<String>,
    pub cc_recipient: Option<String>,
    pub cc_recipient_name: Option<String>,
    pub invited_user_type: Option<InvitedUserType>,
    pub send_display_name: bool,
    pub set_mail_before_invite: bool,
    pub restore_mail_on_failure: bool,
    pub check_partner_settings: bool,
}

impl Default for RawInvitation {
    fn default() -> Self {
        Self {
            redirect_url: None,
            send_message: true,
            message_language: "en-US".to_owned(),
            message_language_from_user: false,
            custom_message: None,
            cc_recipient: None,
            cc_recipient_name: None,
            invited_user_type: None,
            send_display_name: true,
            set_mail_before_invite: true,
            restore_mail_on_failure: true,
            check_partner_settings: true,
        }
    }
}

/// `invitedUserType` of the invitation request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InvitedUserType {
    Guest,
    Member,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawThroughput {
    pub max_concurrency: u32,
    pub max_invitations_per_second: f64,
    pub max_directory_writes_per_second: f64,
    pub max_invitations_per_day: Option<i64>,
    pub low_priority_reads: bool,
    pub connect_timeout_seconds: u64,
    pub request_timeout_seconds: u64,
    pub max_attempts: u32,
}

impl Default for RawThroughput {
    fn default() -> Self {
        Self {
            max_concurrency: 16,
            max_invitations_per_second: 24.0,
            max_directory_writes_per_second: 20.0,
            max_invitations_per_day: None,
            low_priority_reads: true,
            connect_timeout_seconds: crate::graph::DEFAULT_CONNECT_TIMEOUT.as_secs(),
            request_timeout_seconds: crate::graph::DEFAULT_REQUEST_TIMEOUT.as_secs(),
            max_attempts: 6,
        }
    }
}

/// `[discovery]`: how a whole-tenant `discover` reads the users.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDiscovery {
    /// Split the read into `startsWith(userPrincipalName,…)` partitions that page in parallel.
    pub partitioned: bool,
    /// Partitions paged at once.
    pub parallel_reads: u32,
    /// Keep a users delta link, so the next whole-tenant discover reads only the changes.
    pub incremental: bool,
}

impl Default for RawDiscovery {
    fn default() -> Self {
        Self {
            partitioned: true,
            parallel_reads: 16,
            incremental: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDirectory {
    pub url: Option<String>,
    pub starttls: bool,
    pub ca_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
    pub bind_dn: Option<String>,
    pub bind_password_file: Option<PathBuf>,
    pub base_dn: Option<String>,
    pub new_password: NewPasswordKind,
    pub random_password_length: u32,
}

impl Default for RawDirectory {
    fn default() -> Self {
        Self {
            url: None,
            starttls: false,
            ca_file: None,
            insecure_skip_verify: false,
            bind_dn: None,
            bind_password_file: None,
            base_dn: None,
            new_password: NewPasswordKind::Guid,
            random_password_length: 64,
        }
    }
}

/// What the on-prem password is replaced with by `scramble`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NewPasswordKind {
    /// A fresh random GUID, as Microsoft's guidance suggests.
    Guid,
    /// A longer random value, for domains whose password policy rejects a GUID.
    Random,
}
