//! The connection to a domain controller and what `scramble` does over it.
//!
//! Encrypted or not at all: `ldaps://`, or `ldap://` upgraded with StartTLS before anything
//! else is sent; a plain URL is refused before a socket is opened. The server's certificate is
//! verified against the system's roots (the same platform verifier the Graph client uses) or
//! only the CA file configured; `insecure_skip_verify` turns that off with a loud warning each
//! time. Then a simple bind as the service account, and per user: find the account by
//! `objectGUID` (or `mS-DS-ConsistencyGuid`), cross-check it with the snapshot, replace
//! `unicodePwd`, and read `pwdLastSet` back to confirm.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use ldap3::{LdapConnAsync, LdapConnSettings, LdapError, LdapResult, Mod, Scope, SearchEntry};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use time::OffsetDateTime;
use url::Url;
use zeroize::Zeroizing;

use super::anchor::ObjectGuid;
use super::password::NewPassword;
use super::{Error, UserFailure};
use crate::config::{DirectorySettings, DirectoryTls};
use crate::domain::UserId;

/// How long to wait for the connection (TCP, TLS, StartTLS) and for each operation.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    pub operation: Duration,
}

/// The user to scramble, as the snapshot describes its on-premises account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub user_id: UserId,
    pub user_principal_name: String,
    pub object_guid: ObjectGuid,
    pub sam_account_name: Option<String>,
    pub distinguished_name: Option<String>,
    pub domain_name: Option<String>,
}

/// A confirmed scramble.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scrambled {
    /// The account's distinguished name in AD.
    pub dn: String,
    pub pwd_last_set_before: Option<OffsetDateTime>,
    /// `pwdLastSet` read back after the reset.
    pub pwd_last_set: OffsetDateTime,
}

/// An open, bound connection to one domain controller.
pub struct Directory {
    ldap: ldap3::Ldap,
    url: String,
    dc: String,
    base_dn: String,
    bind_dn: String,
    operation_timeout: Duration,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("url", &self.url)
            .field("dc", &self.dc)
            .field("base_dn", &self.base_dn)
            .field("bind_dn", &self.bind_dn)
            .finish_non_exhaustive()
    }
}

/// Whether `url` is encrypted as `tls` says: `Ok(true)` for StartTLS, `Ok(false)` for LDAPS.
/// Plain LDAP is an error, whatever the settings: AD refuses password writes over it, and
/// the bind password would cross the network in clear text.
pub fn encryption(url: &Url, tls: DirectoryTls) -> Result<bool, Error> {
    match (url.scheme(), tls) {
        ("ldaps", DirectoryTls::Ldaps) => Ok(false),
        ("ldap", DirectoryTls::StartTls) => Ok(true),
        ("ldap", DirectoryTls::Ldaps) => Err(Error::PlainLdap {
            url: url.to_string(),
        }),
        ("ldaps", DirectoryTls::StartTls) => Err(Error::BadUrl {
            url: url.to_string(),
            message: "StartTLS applies to ldap:// URLs; ldaps:// is already encrypted".into(),
        }),
        (other, _) => Err(Error::BadUrl {
            url: url.to_string(),
            message: format!("scheme `{other}` is not ldaps:// or ldap:// (with StartTLS)"),
        }),
    }
}

impl Directory {
    /// Connects (encrypted, certificate verified), binds as the service account and reads
    /// the DC's name and, unless configured, the domain's naming context.
    #[tracing::instrument(skip_all, fields(url = settings.url.as_ref().map(tracing::field::display)), err)]
    pub async fn connect(settings: &DirectorySettings, timeouts: Timeouts) -> Result<Self, Error> {
        let url = settings.url.as_ref().ok_or(Error::Missing {
            key: "directory.url",
            hint: "the domain controller, e.g. ldaps://dc01.corp.contoso.com",
        })?;
        let starttls = encryption(url, settings.tls)?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err(Error::BadUrl {
                url: url.to_string(),
                message: "names no host".into(),
            });
        }
        let bind_dn = settings
            .bind_dn
            .as_deref()
            .filter(|d| !d.trim().is_empty())
            .ok_or(Error::Missing {
                key: "directory.bind_dn",
                hint: "the service account that resets passwords, e.g. svc-b2b-convert@corp.contoso.com",
            })?;
        // An empty password would make the simple bind an anonymous one (RFC 4513), which
        // "succeeds"; the settings never hold an empty secret, and this says why it matters.
        let password = settings
            .bind_password
            .as_ref()
            .filter(|p| !p.expose().is_empty())
            .ok_or(Error::Missing {
                key: "directory.bind_password",
                hint: "set B2BC_DIRECTORY_BIND_PASSWORD, or directory.bind_password_file to a file that holds it",
            })?;
        let config = tls_config(settings)?;
        let conn_settings = LdapConnSettings::new()
            .set_conn_timeout(timeouts.connect)
            .set_starttls(starttls)
            .set_config(config);
        let (conn, mut ldap) = LdapConnAsync::with_settings(conn_settings, url.as_str())
            .await
            .map_err(|e| connect_error(url, settings, timeouts.connect, &e))?;
        ldap3::drive!(conn);

        let bound = ldap
            .with_timeout(timeouts.operation)
            .simple_bind(bind_dn, password.expose())
            .await
            .map_err(|e| Error::Operation {
                operation: "bind",
                dc: url.to_string(),
                message: describe(&e),
            })?;
        if bound.rc != 0 {
            return Err(Error::Bind {
                url: url.to_string(),
                bind_dn: bind_dn.to_owned(),
                message: first_line(&bound.text),
                hint: bind_hint(bound.rc, &bound.text),
            });
        }
        let (entries, _) = ldap
            .with_timeout(timeouts.operation)
            .search(
                "",
                Scope::Base,
                "(objectClass=*)",
                vec!["dnsHostName", "defaultNamingContext"],
            )
            .await
            .and_then(ldap3::SearchResult::success)
            .map_err(|e| Error::Operation {
                operation: "reading the root DSE",
                dc: url.to_string(),
                message: describe(&e),
            })?;
        let root = entries.into_iter().next().map(SearchEntry::construct);
        let attr = |name: &str| {
            root.as_ref()
                .and_then(|r| r.attrs.get(name))
                .and_then(|v| v.first())
                .cloned()
        };
        let dc = attr("dnsHostName")
            .or_else(|| url.host_str().map(str::to_owned))
            .unwrap_or_default();
        let base_dn = match settings.base_dn.as_deref().filter(|b| !b.trim().is_empty()) {
            Some(base) => base.to_owned(),
            None => attr("defaultNamingContext").ok_or(Error::Missing {
                key: "directory.base_dn",
                hint: "the DC did not name its domain; set the domain's DN, e.g. DC=corp,DC=contoso,DC=com",
            })?,
        };
        tracing::info!(dc = %dc, base_dn = %base_dn, bind_dn, "bound to the domain controller");
        Ok(Self {
            ldap,
            url: url.to_string(),
            dc,
            base_dn,
            bind_dn: bind_dn.to_owned(),
            operation_timeout: timeouts.operation,
        })
    }

    /// The DC's DNS name (its root DSE's `dnsHostName`, else the URL's host).
    pub fn domain_controller(&self) -> &str {
        &self.dc
    }

    pub fn base_dn(&self) -> &str {
        &self.base_dn
    }

    pub fn bind_dn(&self) -> &str {
        &self.bind_dn
    }

    /// Replaces the target's password with `password` (consumed: used once), then confirms by
    /// `pwdLastSet`. `Ok(Err(..))` is this user's failure; `Err(..)` concerns the connection
    /// and every user after this one.
    #[tracing::instrument(skip_all, fields(user = %target.user_id, object_guid = %target.object_guid), err)]
    pub async fn scramble(
        &mut self,
        target: &Target,
        password: NewPassword,
    ) -> Result<Result<Scrambled, UserFailure>, Error> {
        let found = match self.find(target).await? {
            Ok(found) => found,
            Err(failure) => return Ok(Err(failure)),
        };
        if let Some(failure) = cross_check(target, &found) {
            return Ok(Err(failure));
        }
        let value = Sensitive(password.unicode_pwd());
        drop(password);
        let attribute = Sensitive(Zeroizing::new(b"unicodePwd".to_vec()));
        let result = self
            .ldap
            .with_timeout(self.operation_timeout)
            .modify(
                &found.dn,
                vec![Mod::Replace(attribute, HashSet::from([value]))],
            )
            .await
            .map_err(|e| self.operation_error("the password reset", &e))?;
        if result.rc != 0 {
            return Ok(Err(refusal(&result, &self.bind_dn, &found.dn)));
        }
        let after = self.pwd_last_set(&found.dn).await?;
        let confirmed = match (found.pwd_last_set, after) {
            (Some(before), Some(after)) if after > before => Some(after),
            (None, Some(after)) => Some(after),
            _ => None,
        };
        let Some(pwd_last_set) = confirmed else {
            return Ok(Err(UserFailure {
                code: UserFailure::NOT_CONFIRMED,
                message: format!(
                    "the DC accepted the reset of {}, but pwdLastSet did not move",
                    found.dn
                ),
                fix: format!(
                    "check that {} may read pwdLastSet on the account (\"Read Account Restrictions\"), then run scramble again: a second reset is harmless",
                    self.bind_dn
                ),
            }));
        };
        Ok(Ok(Scrambled {
            dn: found.dn,
            pwd_last_set_before: found.pwd_last_set.and_then(from_filetime),
            pwd_last_set: from_filetime(pwd_last_set).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        }))
    }

    /// Looks the account up by its anchor: the GUID as `objectGUID`, or as
    /// `mS-DS-ConsistencyGuid` (Entra Connect's anchor, which differs from `objectGUID` after
    /// an account moved between forests).
    async fn find(&mut self, target: &Target) -> Result<Result<Found, UserFailure>, Error> {
        let guid = target.object_guid.filter_value();
        let filter = format!(
            "(&(objectCategory=person)(objectClass=user)(|(objectGUID={guid})(mS-DS-ConsistencyGuid={guid})))"
        );
        let (entries, _) = self
            .ldap
            .with_timeout(self.operation_timeout)
            .search(
                &self.base_dn,
                Scope::Subtree,
                &filter,
                vec!["sAMAccountName", "pwdLastSet"],
            )
            .await
            .and_then(ldap3::SearchResult::success)
            .map_err(|e| self.operation_error("the search", &e))?;
        let mut entries: Vec<SearchEntry> = entries
            .into_iter()
            .filter(|e| !e.is_ref() && !e.is_intermediate())
            .map(SearchEntry::construct)
            .collect();
        match entries.len() {
            0 => Ok(Err(UserFailure {
                code: UserFailure::NOT_FOUND,
                message: format!(
                    "no AD account with objectGUID {} under {}",
                    target.object_guid, self.base_dn
                ),
                fix: match &target.domain_name {
                    Some(domain) => format!(
                        "the user's on-premises domain is {domain}: point directory.url and directory.base_dn at that domain; if the account was deleted on-prem, there is nothing to scramble"
                    ),
                    None => "check directory.base_dn; if the account was deleted on-prem, there is nothing to scramble".to_owned(),
                },
            })),
            1 => {
                let entry = entries.remove(0);
                let first = |name: &str| entry.attrs.get(name).and_then(|v| v.first()).cloned();
                Ok(Ok(Found {
                    sam_account_name: first("sAMAccountName"),
                    pwd_last_set: first("pwdLastSet").and_then(|v| v.parse().ok()),
                    dn: entry.dn,
                }))
            }
            _ => Ok(Err(UserFailure {
                code: UserFailure::AMBIGUOUS,
                message: format!(
                    "{} AD accounts answer to {}: {}",
                    entries.len(),
                    target.object_guid,
                    entries
                        .iter()
                        .map(|e| e.dn.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                fix: "one account's mS-DS-ConsistencyGuid names another's objectGUID: find out which one Entra Connect syncs and fix the other's".to_owned(),
            })),
        }
    }

    /// The account's `pwdLastSet` (FILETIME), if it can be read.
    async fn pwd_last_set(&mut self, dn: &str) -> Result<Option<i64>, Error> {
        let (entries, _) = self
            .ldap
            .with_timeout(self.operation_timeout)
            .search(dn, Scope::Base, "(objectClass=*)", vec!["pwdLastSet"])
            .await
            .and_then(ldap3::SearchResult::success)
            .map_err(|e| self.operation_error("reading pwdLastSet", &e))?;
        Ok(entries
            .into_iter()
            .map(SearchEntry::construct)
            .find_map(|e| e.attrs.get("pwdLastSet").and_then(|v| v.first()).cloned())
            .and_then(|v| v.parse().ok()))
    }

    fn operation_error(&self, operation: &'static str, err: &LdapError) -> Error {
        Error::Operation {
            operation,
            dc: self.dc.clone(),
            message: describe(err),
        }
    }

    /// Unbinds; errors do not matter any more.
    pub async fn close(mut self) {
        let _ = self.ldap.unbind().await;
    }
}

/// The account found for a target.
#[derive(Debug)]
struct Found {
    dn: String,
    sam_account_name: Option<String>,
    pwd_last_set: Option<i64>,
}

/// The AD account must be the one the snapshot describes: same `sAMAccountName` and DN, where
/// the snapshot has them.
fn cross_check(target: &Target, found: &Found) -> Option<UserFailure> {
    let mismatch = |what: &str, expected: &str, actual: &str| {
        UserFailure {
        code: UserFailure::IDENTITY_MISMATCH,
        message: format!(
            "the AD account with objectGUID {} has {what} `{actual}`, but Entra ID says `{expected}`",
            target.object_guid
        ),
        fix: "if the account was renamed or moved on-prem, wait for the next sync and run `b2b-convert discover` to refresh the snapshot; otherwise check which account the source anchor points at".to_owned(),
    }
    };
    if let Some(expected) = &target.sam_account_name {
        let actual = found.sam_account_name.as_deref().unwrap_or_default();
        if !expected.eq_ignore_ascii_case(actual) {
            return Some(mismatch("sAMAccountName", expected, actual));
        }
    }
    if let Some(expected) = &target.distinguished_name
        && normalize_dn(expected) != normalize_dn(&found.dn)
    {
        return Some(mismatch("distinguished name", expected, &found.dn));
    }
    None
}

/// A DN for comparison: lower case, no spaces around the separators (`CN=A, OU=B` equals
/// `cn=a,ou=b`). Escaped separators (`\,`) stay as they are.
fn normalize_dn(dn: &str) -> String {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in dn.chars() {
        if escaped {
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            current.push(c);
            escaped = true;
        } else if c == ',' || c == ';' {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    parts.push(current);
    parts
        .iter()
        .map(|rdn| match rdn.split_once('=') {
            Some((attr, value)) => format!("{}={}", attr.trim(), value.trim()).to_lowercase(),
            None => rdn.trim().to_lowercase(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Maps the DC's refusal of a password reset to a failure with a fix.
fn refusal(result: &LdapResult, bind_dn: &str, dn: &str) -> UserFailure {
    let message = first_line(&result.text);
    let ad_code = ad_code(&result.text);
    let (code, fix) = match (result.rc, ad_code.as_deref()) {
        (_, Some("0000052D")) => (
            UserFailure::PASSWORD_POLICY,
            "the domain's password policy (or a fine-grained policy that applies to this user) refused the new value: set directory.new_password = \"random\" with a directory.random_password_length the policy accepts, or check the policy's length and complexity rules".to_owned(),
        ),
        (50, _) | (_, Some("00000005" | "00002098")) => (
            UserFailure::INSUFFICIENT_RIGHTS,
            format!(
                "grant {bind_dn} the \"Reset password\" right on {dn} or its OU (docs/operations.md); members of protected groups (adminCount=1) do not inherit OU permissions (AdminSDHolder)"
            ),
        ),
        (32, _) | (_, Some("0000208D")) => (
            UserFailure::NO_SUCH_OBJECT,
            "the account was deleted or moved between the lookup and the reset; run scramble again".to_owned(),
        ),
        (8 | 13, _) => (
            UserFailure::REFUSED,
            "the DC wants a stronger protected connection for password writes: use ldaps:// or StartTLS with a DC that accepts TLS 1.2".to_owned(),
        ),
        (53, _) => (
            UserFailure::REFUSED,
            "the DC is unwilling to set this password: check that the account is an ordinary user (not krbtgt or a trust account) and that password writes are allowed over this connection".to_owned(),
        ),
        _ => (
            UserFailure::REFUSED,
            "see the DC's message; run scramble again once it is resolved".to_owned(),
        ),
    };
    UserFailure {
        code,
        message: format!(
            "the DC refused the reset (LDAP result {}): {message}",
            result.rc
        ),
        fix,
    }
}

/// The Win32 error AD puts first in its diagnostic text (`0000052D: Constraint violation …`).
fn ad_code(text: &str) -> Option<String> {
    let code = text.trim_start().get(..8)?;
    code.bytes()
        .all(|b| b.is_ascii_hexdigit())
        .then(|| code.to_ascii_uppercase())
}

fn first_line(text: &str) -> String {
    let line = text.trim().lines().next().unwrap_or_default().trim();
    if line.is_empty() {
        "(no message)".to_owned()
    } else {
        line.to_owned()
    }
}

/// What to do about a refused bind, from AD's `data` code in the text.
fn bind_hint(rc: u32, text: &str) -> String {
    let data = text
        .split("data ")
        .nth(1)
        .and_then(|rest| rest.split([',', ' ']).next())
        .map(str::to_ascii_lowercase);
    match (rc, data.as_deref()) {
        (49, Some("52e") | None) => "the bind DN or password is wrong: check directory.bind_dn and B2BC_DIRECTORY_BIND_PASSWORD (or directory.bind_password_file)".into(),
        (49, Some("525")) => "no such account: check directory.bind_dn (a UPN such as svc@corp.contoso.com or a full DN)".into(),
        (49, Some("530" | "531")) => "the service account may not sign in at this time or from this host".into(),
        (49, Some("532")) => "the service account's password has expired: set a new one".into(),
        (49, Some("533")) => "the service account is disabled".into(),
        (49, Some("701")) => "the service account has expired".into(),
        (49, Some("773")) => "the service account must change its password first".into(),
        (49, Some("775")) => "the service account is locked out".into(),
        (8 | 13, _) => "the DC wants a protected connection: use ldaps:// or StartTLS".into(),
        _ => "check directory.bind_dn and the service account".into(),
    }
}

/// An LDAP error as one line, with the TLS reason where there is one.
fn describe(err: &LdapError) -> String {
    match err {
        LdapError::LdapResult { result } => {
            format!("LDAP result {}: {}", result.rc, first_line(&result.text))
        }
        other => other.to_string(),
    }
}

/// Why the connection failed, with what to change.
fn connect_error(
    url: &Url,
    settings: &DirectorySettings,
    timeout: Duration,
    err: &LdapError,
) -> Error {
    let hint = match tls_error(err) {
        Some(rustls::Error::InvalidCertificate(cert)) => match cert {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => match &settings.ca_file {
                Some(path) => format!(
                    "the DC's certificate is not issued by the CA in directory.ca_file ({}): configure the CA that issued it",
                    path.display()
                ),
                None => "the DC's certificate is issued by a CA this machine does not trust: set directory.ca_file to that CA's certificate (PEM)".to_owned(),
            },
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "the DC's certificate does not name the host in directory.url: use a name the certificate carries (usually the DC's FQDN)".to_owned()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the DC's certificate has expired: renew it on the DC".to_owned()
            }
            other => format!("the DC's certificate was refused ({other:?})"),
        },
        Some(other) => format!("the TLS handshake failed ({other}); check that {url} speaks TLS"),
        None => match err {
            LdapError::Timeout { .. } => format!(
                "no answer within {} s: check the host, the port and any firewall between here and the DC",
                timeout.as_secs()
            ),
            LdapError::Io { source } if source.kind() == std::io::ErrorKind::ConnectionRefused => {
                "nothing listens there: check directory.url (LDAPS is port 636, StartTLS port 389)".to_owned()
            }
            LdapError::LdapResult { .. } => {
                "the DC refused StartTLS: does it have a certificate? Or use ldaps://".to_owned()
            }
            _ => "check directory.url and the network path to the DC".to_owned(),
        },
    };
    Error::Connect {
        url: url.to_string(),
        message: describe(err),
        hint,
    }
}

/// The rustls error behind a failed connection, if TLS was the reason.
fn tls_error(err: &LdapError) -> Option<&rustls::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // io::Error's own `source` skips the error it wraps; look inside it.
        if let Some(tls) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(tls);
        }
        current = e.source();
    }
    None
}

/// The TLS configuration: the aws-lc-rs provider reqwest uses too, system roots through the
/// platform verifier or only the CA file's certificates, or (labs) no verification at all.
fn tls_config(settings: &DirectorySettings) -> Result<Arc<ClientConfig>, Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(Error::Tls)?;
    let config = if settings.insecure_skip_verify {
        tracing::warn!(
            url = settings.url.as_ref().map(tracing::field::display),
            "directory.insecure_skip_verify is on: the domain controller's certificate is NOT \
             verified, so anyone on the network path can pose as the DC and read the service \
             account's password. Labs only: set directory.ca_file instead"
        );
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth()
    } else if let Some(path) = &settings.ca_file {
        let ca_error = |message: String| Error::CaFile {
            path: path.clone(),
            message,
        };
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| ca_error(e.to_string()))? {
            let cert = cert.map_err(|e| ca_error(e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| ca_error(format!("not a usable CA certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(ca_error(
                "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
            ));
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        use rustls_platform_verifier::BuilderVerifierExt as _;
        builder
            .with_platform_verifier()
            .map_err(Error::Tls)?
            .with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// `insecure_skip_verify`: any certificate is accepted, but the handshake's signatures are
/// still checked (the connection is at least encrypted to whoever answered).
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Bytes wiped on drop that ldap3's `Mod` can carry (it wants `AsRef<[u8]> + Eq + Hash`).
/// ldap3 still copies the value into its request encoding, which is freed unwiped.
#[derive(PartialEq, Eq)]
struct Sensitive(Zeroizing<Vec<u8>>);

impl Hash for Sensitive {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.as_slice().hash(state);
    }
}

impl AsRef<[u8]> for Sensitive {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// AD's `pwdLastSet`: 100-nanosecond intervals since 1601-01-01 UTC; 0 means "must change".
fn from_filetime(value: i64) -> Option<OffsetDateTime> {
    const UNIX_EPOCH_AS_FILETIME: i64 = 116_444_736_000_000_000;
    if value <= 0 {
        return None;
    }
    let nanos = i128::from(value - UNIX_EPOCH_AS_FILETIME) * 100;
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn result(rc: u32, text: &str) -> LdapResult {
        LdapResult {
            rc,
            matched: String::new(),
            text: text.into(),
            refs: vec![],
            ctrls: vec![],
        }
    }

    #[test]
    fn plain_ldap_is_refused_whatever_the_settings() {
        let plain = Url::parse("ldap://dc01.corp.contoso.com").unwrap();
        assert!(matches!(
            encryption(&plain, DirectoryTls::Ldaps),
            Err(Error::PlainLdap { .. })
        ));
        assert!(encryption(&plain, DirectoryTls::StartTls).unwrap());
        let ldaps = Url::parse("ldaps://dc01.corp.contoso.com").unwrap();
        assert!(!encryption(&ldaps, DirectoryTls::Ldaps).unwrap());
        let http = Url::parse("http://dc01").unwrap();
        assert!(matches!(
            encryption(&http, DirectoryTls::Ldaps),
            Err(Error::BadUrl { .. })
        ));
    }

    #[test]
    fn ad_refusals_become_failures_with_fixes() {
        // What Samba and Windows DCs answer.
        let policy = refusal(
            &result(
                19,
                "0000052D: Constraint violation - check_password_restrictions: the password is too short. It should be equal or longer than 7 characters!",
            ),
            "svc@corp",
            "CN=A,DC=corp",
        );
        assert_eq!(policy.code, UserFailure::PASSWORD_POLICY);
        assert!(
            policy.fix.contains("directory.new_password"),
            "{}",
            policy.fix
        );
        assert!(policy.message.contains("0000052D"), "{}", policy.message);

        let rights = refusal(
            &result(
                50,
                "00000005: SecErr: DSID-03152857, problem 4003 (INSUFF_ACCESS_RIGHTS), data 0\n",
            ),
            "svc@corp",
            "CN=A,DC=corp",
        );
        assert_eq!(rights.code, UserFailure::INSUFFICIENT_RIGHTS);
        assert!(rights.fix.contains("Reset password") && rights.fix.contains("svc@corp"));
        assert!(!rights.message.contains('\n'));

        let gone = refusal(
            &result(
                32,
                "0000208D: NameErr: DSID-03100241, problem 2001 (NO_OBJECT), data 0",
            ),
            "svc",
            "CN=A",
        );
        assert_eq!(gone.code, UserFailure::NO_SUCH_OBJECT);
        assert_eq!(
            refusal(&result(80, ""), "svc", "CN=A").code,
            UserFailure::REFUSED
        );
    }

    #[test]
    fn bind_refusals_say_what_is_wrong_with_the_account() {
        let text = "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 52e, v1db1";
        assert!(bind_hint(49, text).contains("password is wrong"));
        let locked = "80090308: LdapErr: DSID-0C09050F, comment: AcceptSecurityContext error, data 775, v4563";
        assert!(bind_hint(49, locked).contains("locked out"));
    }

    #[test]
    fn accounts_are_cross_checked_by_sam_account_name_and_dn() {
        let target = Target {
            user_id: UserId::from_uuid(uuid::Uuid::nil()),
            user_principal_name: "alice@contoso.com".into(),
            object_guid: ObjectGuid::from_bytes([7; 16]),
            sam_account_name: Some("Alice".into()),
            distinguished_name: Some("CN=Alice Test, OU=Partners,DC=corp,DC=contoso,DC=com".into()),
            domain_name: None,
        };
        let found = |sam: &str, dn: &str| Found {
            dn: dn.into(),
            sam_account_name: Some(sam.into()),
            pwd_last_set: None,
        };
        assert_eq!(
            cross_check(
                &target,
                &found(
                    "alice",
                    "cn=alice test,ou=partners,dc=corp,dc=contoso,dc=com"
                )
            ),
            None
        );
        let other = cross_check(
            &target,
            &found("bob", "CN=Alice Test,OU=Partners,DC=corp,DC=contoso,DC=com"),
        )
        .unwrap();
        assert_eq!(other.code, UserFailure::IDENTITY_MISMATCH);
        assert!(other.message.contains("`bob`"), "{}", other.message);
        let moved = cross_check(
            &target,
            &found("alice", "CN=Alice Test,OU=Former,DC=corp,DC=contoso,DC=com"),
        )
        .unwrap();
        assert!(
            moved.message.contains("distinguished name"),
            "{}",
            moved.message
        );
        let bare = Target {
            sam_account_name: None,
            distinguished_name: None,
            ..target
        };
        assert_eq!(
            cross_check(&bare, &found("x", "CN=y")),
            None,
            "objectGUID alone decides"
        );
    }

    #[test]
    fn dns_compare_without_case_or_spaces_but_keep_escapes() {
        assert_eq!(normalize_dn("CN=Doe\\, John , OU=X"), "cn=doe\\, john,ou=x");
        assert_ne!(
            normalize_dn("CN=Doe\\, John,OU=X"),
            normalize_dn("CN=Doe,CN=John,OU=X")
        );
    }

    #[test]
    fn pwd_last_set_is_a_filetime() {
        assert_eq!(
            from_filetime(134_397_364_584_811_100),
            Some(datetime!(2026-11-21 12:07:38.4811100 UTC))
        );
        assert_eq!(from_filetime(0), None, "0: must change at next logon");
    }

    #[test]
    fn the_ad_code_is_the_first_word_of_the_text() {
        assert_eq!(ad_code("0000052d: Constraint").as_deref(), Some("0000052D"));
        assert_eq!(ad_code("Constraint violation"), None);
    }
}
