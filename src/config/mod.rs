//! Settings: the TOML file, then environment variables, then command-line flags, validated once
//! into typed [`Settings`] that remember where every value came from.
//!
//! This is the only module that reads the process environment, the config file or a secret
//! file (the certificate included). Secrets are never taken from the TOML file: they come from
//! the Azure SDK's conventional environment variables or from a file whose path the config
//! names. Code outside this module receives [`Settings`] and never sees raw input; `graph`
//! receives what it needs in its own types ([`Settings::graph_connection`],
//! [`Settings::graph_auth`]).

mod graph;
pub mod raw;
mod settings;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use graph::{CredentialChoice, Skipped};
pub use raw::{AssertionAlgorithm, AuthMethod, Cloud, InvitedUserType, NewPasswordKind};
pub use settings::{
    AuthSettings, CcRecipient, DirectorySettings, DirectoryTls, EffectiveValue,
    INVITATIONS_PER_SECOND_CEILING, InvitationSettings, RuleSettings, Secret, Settings,
    StoreSettings, TenantSettings, ThroughputSettings,
};

use raw::RawSettings;

/// The commented example configuration, written by `init` and parsed by a test.
pub const EXAMPLE_CONFIG: &str = include_str!("../../config/example.toml");

/// The config file used when neither `--config` nor `B2BC_CONFIG` names one.
pub const DEFAULT_CONFIG_PATH: &str = "b2b-convert.toml";

/// Environment variables that set a config key, in the Azure SDK's naming where one exists.
pub const ENV_KEYS: &[(&str, &str)] = &[
    ("AZURE_TENANT_ID", "tenant.tenant_id"),
    ("AZURE_CLIENT_ID", "tenant.client_id"),
    ("B2BC_CLOUD", "tenant.cloud"),
    ("B2BC_GRAPH_URL", "tenant.graph_url"),
    // The Azure SDKs' authority host; B2BC_LOGIN_URL, later in this list, wins over it.
    ("AZURE_AUTHORITY_HOST", "tenant.login_url"),
    ("B2BC_LOGIN_URL", "tenant.login_url"),
    ("B2BC_AUTH_METHOD", "auth.method"),
    ("AZURE_CLIENT_CERTIFICATE_PATH", "auth.certificate_path"),
    (
        "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN",
        "auth.send_certificate_chain",
    ),
    (
        "B2BC_MANAGED_IDENTITY_CLIENT_ID",
        "auth.managed_identity_client_id",
    ),
    ("B2BC_IMDS_URL", "auth.imds_url"),
    ("IDENTITY_ENDPOINT", "auth.identity_endpoint"),
    ("MSI_ENDPOINT", "auth.msi_endpoint"),
    ("AZURE_FEDERATED_TOKEN_FILE", "auth.federated_token_file"),
    ("ACTIONS_ID_TOKEN_REQUEST_URL", "auth.oidc_request_url"),
    ("B2BC_AZURE_CLI", "auth.azure_cli_path"),
    ("B2BC_DB", "store.path"),
];

/// Environment variables that carry a secret, with the secret they carry.
pub const ENV_SECRETS: &[(&str, &str)] = &[
    ("AZURE_CLIENT_SECRET", "auth.client_secret"),
    (
        "AZURE_CLIENT_CERTIFICATE_PASSWORD",
        "auth.certificate_password",
    ),
    ("B2BC_ACCESS_TOKEN", "auth.access_token"),
    ("B2BC_DIRECTORY_BIND_PASSWORD", "directory.bind_password"),
    ("IDENTITY_HEADER", "auth.identity_header"),
    ("MSI_SECRET", "auth.msi_secret"),
    ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "auth.oidc_request_token"),
];

/// The log filter variable (`RUST_LOG` syntax).
pub const LOG_FILTER_VAR: &str = "B2BC_LOG";

/// Turns colour and other terminal escape sequences off when set (<https://no-color.org>).
pub const NO_COLOR_VAR: &str = "NO_COLOR";
/// The width result tables fit, when set (most CLIs read it); else the terminal's.
pub const COLUMNS_VAR: &str = "COLUMNS";

/// The OS account running the tool, in the order they are read (Unix login shells set `USER`
/// and `LOGNAME`, Windows `USERNAME`): who the audit trail names with each run.
pub const OS_USER_VARS: &[&str] = &["USER", "LOGNAME", "USERNAME"];

/// The host name where the OS cannot be asked for it (Windows sets `COMPUTERNAME`).
pub const HOST_NAME_VARS: &[&str] = &["COMPUTERNAME", "HOSTNAME"];

/// Where one effective value came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Origin {
    /// Nobody set it: the built-in default.
    Default,
    /// A key in the config file, at this line.
    File { path: PathBuf, line: usize },
    /// An environment variable.
    Env { var: String },
    /// A command-line flag.
    Flag { flag: String },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::File { path, line } => write!(f, "{}, line {line}", path.display()),
            Self::Env { var } => write!(f, "environment variable {var}"),
            Self::Flag { flag } => write!(f, "flag {flag}"),
        }
    }
}

/// A failure to load settings. Every variant names what to fix; none carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "config file {} not found (named by --config or B2BC_CONFIG); create one with `b2b-convert init --config {}`",
        path.display(), path.display()
    )]
    FileNotFound { path: PathBuf },
    #[error("cannot read config file {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} line {line}, column {column}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("invalid setting `{key}` ({origin}): {message}")]
    Invalid {
        key: String,
        origin: Origin,
        message: String,
    },
    /// A value the chosen `auth.method` needs is not set.
    #[error("{what} is not configured: {hint} (`auth.method` is {method}, {origin})")]
    Missing {
        what: &'static str,
        /// The key that is not set, for example `auth.client_secret`.
        key: &'static str,
        hint: &'static str,
        /// The `auth.method` that needs it, and where that was set.
        method: String,
        origin: Origin,
    },
    #[error("cannot read {what} from {} (set by `{key}`, {origin}): {source}", path.display())]
    SecretFile {
        what: &'static str,
        key: String,
        origin: Origin,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A snapshot of the environment variables this tool reads. Tests build one from pairs.
#[derive(Clone, Debug, Default)]
pub struct Environment {
    vars: BTreeMap<String, String>,
}

impl Environment {
    /// Reads the variables listed in [`ENV_KEYS`], [`ENV_SECRETS`], [`LOG_FILTER_VAR`],
    /// [`NO_COLOR_VAR`], [`COLUMNS_VAR`], [`OS_USER_VARS`] and [`HOST_NAME_VARS`].
    /// Empty values count as unset.
    #[allow(clippy::disallowed_methods)] // the one place that reads the environment
    pub fn from_process() -> Self {
        let names = ENV_KEYS
            .iter()
            .chain(ENV_SECRETS)
            .map(|(var, _)| *var)
            .chain([LOG_FILTER_VAR, NO_COLOR_VAR, COLUMNS_VAR])
            .chain(OS_USER_VARS.iter().copied())
            .chain(HOST_NAME_VARS.iter().copied());
        Self::from_pairs(names.filter_map(|name| Some((name, std::env::var(name).ok()?))))
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let vars = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        Self { vars }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// The log filter from `B2BC_LOG`, if set.
    pub fn log_filter(&self) -> Option<&str> {
        self.get(LOG_FILTER_VAR)
    }

    /// The OS account running the tool ([`OS_USER_VARS`]), if the environment names one.
    pub fn os_user(&self) -> Option<&str> {
        OS_USER_VARS.iter().find_map(|var| self.get(var))
    }

    /// The host name the environment names ([`HOST_NAME_VARS`]), if any.
    pub fn host_name(&self) -> Option<&str> {
        HOST_NAME_VARS.iter().find_map(|var| self.get(var))
    }

    /// `NO_COLOR` is set to something (<https://no-color.org>: an empty value counts as unset).
    pub fn no_color(&self) -> bool {
        self.get(NO_COLOR_VAR).is_some()
    }

    /// `COLUMNS`, when it is a positive number.
    pub fn columns(&self) -> Option<u16> {
        self.get(COLUMNS_VAR)?
            .trim()
            .parse()
            .ok()
            .filter(|&columns| columns > 0)
    }
}

/// A config key set by a command-line flag (the top layer).
#[derive(Clone, Debug)]
pub struct FlagOverride {
    /// The flag as the operator typed it, for messages (`--db`).
    pub flag: String,
    /// The dotted config key (`store.path`).
    pub key: String,
    pub value: toml::Value,
}

/// Everything settings are built from.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// The config file named by `--config` / `B2BC_CONFIG`; `None` means the default path,
    /// which may be absent.
    pub config_path: Option<PathBuf>,
    pub env: Environment,
    pub flags: Vec<FlagOverride>,
}

impl Sources {
    /// The config file path in effect.
    pub fn config_path(&self) -> &Path {
        self.config_path
            .as_deref()
            .unwrap_or(Path::new(DEFAULT_CONFIG_PATH))
    }
}

/// Which layer set each key that is not a default.
#[derive(Clone, Debug, Default)]
struct Provenance {
    origins: BTreeMap<String, Origin>,
}

impl Provenance {
    fn origin(&self, key: &str) -> Origin {
        self.origins.get(key).cloned().unwrap_or(Origin::Default)
    }
}

/// The config file's text with its parsed table and the line of each key.
struct ConfigFile {
    path: PathBuf,
    table: toml::Table,
    key_lines: BTreeMap<String, usize>,
}

impl ConfigFile {
    /// Reads and checks the file. A missing file is an error only when it was named
    /// explicitly; a missing default file means defaults apply.
    fn read(path: &Path, named: bool) -> Result<Option<Self>, Error> {
        let path = path.to_path_buf();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return if named {
                    Err(Error::FileNotFound { path })
                } else {
                    Ok(None)
                };
            }
            Err(source) => return Err(Error::ReadFile { path, source }),
        };
        Self::parse(path, &text).map(Some)
    }

    fn parse(path: PathBuf, text: &str) -> Result<Self, Error> {
        let syntax_error = |err: &toml::de::Error| {
            let (line, column) = line_and_column(text, err.span().map_or(0, |s| s.start));
            Error::Syntax {
                path: path.clone(),
                line,
                column,
                message: err.message().trim().to_owned(),
            }
        };
        let spanned = toml::de::DeTable::parse(text).map_err(|e| syntax_error(&e))?;
        let mut key_lines = BTreeMap::new();
        collect_key_lines(text, "", spanned.get_ref(), &mut key_lines);

        // Check every key and value against the schema here, where spans point into the file.
        let deserializer = toml::Deserializer::parse(text).map_err(|e| syntax_error(&e))?;
        if let Err(err) = serde_path_to_error::deserialize::<_, RawSettings>(deserializer) {
            let offset = err.inner().span().map_or(0, |s| s.start);
            let (line, _) = line_and_column(text, offset);
            let key = key_path(&err.path().to_string(), text, offset);
            return Err(Error::Invalid {
                message: explain_schema_error(&key, err.inner().message()),
                key,
                origin: Origin::File { path, line },
            });
        }
        let table = toml::from_str(text).map_err(|e| syntax_error(&e))?;
        Ok(Self {
            path,
            table,
            key_lines,
        })
    }
}

/// Loads, layers and validates the settings.
pub fn load(sources: &Sources) -> Result<Settings, Error> {
    let file = ConfigFile::read(sources.config_path(), sources.config_path.is_some())?;
    let mut provenance = Provenance::default();
    let mut merged = toml::Table::new();
    let mut config_file = None;
    if let Some(file) = file {
        for (key, line) in &file.key_lines {
            provenance.origins.insert(
                key.clone(),
                Origin::File {
                    path: file.path.clone(),
                    line: *line,
                },
            );
        }
        merged = file.table;
        config_file = Some(file.path);
    }
    for (var, key) in ENV_KEYS {
        if let Some(value) = sources.env.get(var) {
            // The Azure SDKs' switches are `true`/`1`; anything else stays text for the
            // schema to reject with the key's name.
            let value = match (*key, value.to_ascii_lowercase().as_str()) {
                ("auth.send_certificate_chain", "true" | "1") => toml::Value::Boolean(true),
                ("auth.send_certificate_chain", "false" | "0") => toml::Value::Boolean(false),
                _ => toml::Value::String(value.to_owned()),
            };
            set_key(&mut merged, key, value);
            provenance.origins.insert(
                (*key).to_owned(),
                Origin::Env {
                    var: (*var).to_owned(),
                },
            );
        }
    }
    for flag in &sources.flags {
        set_key(&mut merged, &flag.key, flag.value.clone());
        provenance.origins.insert(
            flag.key.clone(),
            Origin::Flag {
                flag: flag.flag.clone(),
            },
        );
    }

    let mut raw: RawSettings = serde_path_to_error::deserialize(toml::Value::Table(merged))
        .map_err(|err| {
            let key = err.path().to_string();
            Error::Invalid {
                origin: provenance.origin(&key),
                message: explain_schema_error(&key, err.inner().message()),
                key,
            }
        })?;
    raw.fill_rule_defaults();
    settings::validate(&raw, config_file, &sources.env, &provenance)
}

/// Sets `value` at a dotted key, creating the tables on the way.
fn set_key(table: &mut toml::Table, dotted: &str, value: toml::Value) {
    let mut parts: Vec<&str> = dotted.split('.').collect();
    let last = parts.pop().expect("a dotted key has at least one part");
    let mut current = table;
    for part in parts {
        let entry = current
            .entry(part.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        current = entry.as_table_mut().expect("just made a table");
    }
    current.insert(last.to_owned(), value);
}

fn collect_key_lines(
    text: &str,
    prefix: &str,
    table: &toml::de::DeTable<'_>,
    out: &mut BTreeMap<String, usize>,
) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        if let toml::de::DeValue::Table(inner) = value.get_ref() {
            collect_key_lines(text, &path, inner, out);
        } else {
            let (line, _) = line_and_column(text, key.span().start);
            out.insert(path, line);
        }
    }
}

/// 1-based line and column of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// `serde_path_to_error` writes `?` for a map key it could not name (the `[rules]` table); the
/// key text at the error's line names it instead.
fn key_path(path: &str, text: &str, offset: usize) -> String {
    if !path.ends_with('?') {
        return path.to_owned();
    }
    let line_start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or_default();
    let key = line.split('=').next().unwrap_or_default().trim();
    format!("{}{}", &path[..path.len() - 1], key.trim_matches('"'))
}

/// Turns serde's message into one that says what to do, with a special word for secrets.
fn explain_schema_error(key: &str, message: &str) -> String {
    const SECRET_WORDS: &[&str] = &["secret", "password", "token"];
    let field = key.rsplit('.').next().unwrap_or(key);
    if message.starts_with("unknown field") {
        if SECRET_WORDS.iter().any(|w| field.contains(w)) && !field.ends_with("_file") {
            let env = ENV_SECRETS
                .iter()
                .map(|(var, _)| *var)
                .collect::<Vec<_>>()
                .join(", ");
            return format!(
                "secrets are never read from the config file; set one of {env} in the \
                 environment, or name a file with the matching `*_file` key"
            );
        }
        return message.replacen("unknown field", "unknown key", 1);
    }
    message.to_owned()
}

#[cfg(test)]
mod tests;
