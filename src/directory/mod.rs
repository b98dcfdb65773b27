//! On-premises Active Directory, for `scramble`. A synced user's AD account stays the source of
//! authority after its conversion, so its old password keeps working on-prem; the remedy is to
//! replace it with a random value nobody knows. Never to disable or delete the account: that
//! flows to the converted cloud object.
//!
//! Owns the source anchor ([`anchor`]: `onPremisesImmutableId` → `objectGUID`), the generated
//! password ([`password`]: wiped from memory, never shown), the LDAPS/StartTLS client
//! ([`ldap`]: certificate verification, bind, lookup, cross-check, reset, confirmation, AD's
//! refusals as per-user failures with fixes), which wave members a scramble takes and why not
//! ([`select`]), and the PowerShell script for administrators who run it on-prem
//! ([`powershell`]).
//!
//! Must not touch the store or Graph (the command records outcomes), speak plain LDAP, or let
//! a generated password out: it is never stored, logged, printed or put in an error.

pub mod anchor;
pub mod ldap;
pub mod password;
pub mod powershell;
pub mod select;

use std::path::PathBuf;

pub use anchor::{AnchorError, ObjectGuid};
pub use ldap::{Directory, Scrambled, Target, Timeouts};
pub use password::NewPassword;
pub use select::{Member, ResultAction, Scope, SkipReason, Skipped};

/// A failure that concerns the connection, and so every user: nothing more can be done over it.
/// No variant carries a password.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{key} is not set: {hint}")]
    Missing {
        key: &'static str,
        hint: &'static str,
    },
    #[error(
        "refusing plain LDAP to {url}: the service account's password would cross the network in clear text, and Active Directory accepts password changes only over an encrypted connection; use ldaps:// (port 636) or set directory.starttls = true"
    )]
    PlainLdap { url: String },
    #[error("directory.url {url}: {message}")]
    BadUrl { url: String, message: String },
    #[error("cannot use the CA file {} (directory.ca_file): {message}", path.display())]
    CaFile { path: PathBuf, message: String },
    #[error("cannot set up TLS: {0}")]
    Tls(#[source] rustls::Error),
    #[error("cannot connect to {url}: {message}; {hint}")]
    Connect {
        url: String,
        message: String,
        hint: String,
    },
    #[error("{url} refused the bind as {bind_dn}: {message}; {hint}")]
    Bind {
        url: String,
        bind_dn: String,
        message: String,
        hint: String,
    },
    #[error("{operation} failed on {dc}: {message}")]
    Operation {
        operation: &'static str,
        dc: String,
        message: String,
    },
}

impl Error {
    /// Whether the operator fixes this in the configuration (exit code 2).
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            Self::Missing { .. }
                | Self::PlainLdap { .. }
                | Self::BadUrl { .. }
                | Self::CaFile { .. }
        )
    }
}

/// Why one user was not scrambled, with what to do about it. Never holds a password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserFailure {
    /// Stable, for the event log and scripts: one of the constants below.
    pub code: &'static str,
    pub message: String,
    pub fix: String,
}

impl UserFailure {
    /// No account with the anchor under the base DN.
    pub const NOT_FOUND: &'static str = "ad-account-not-found";
    /// Several accounts answer to the anchor.
    pub const AMBIGUOUS: &'static str = "ad-account-ambiguous";
    /// The account's `sAMAccountName` or DN is not the snapshot's.
    pub const IDENTITY_MISMATCH: &'static str = "ad-identity-mismatch";
    /// `0000052D`: the password policy refused the value.
    pub const PASSWORD_POLICY: &'static str = "ad-password-policy";
    /// The service account may not reset this user's password.
    pub const INSUFFICIENT_RIGHTS: &'static str = "ad-insufficient-rights";
    /// The account vanished between lookup and reset.
    pub const NO_SUCH_OBJECT: &'static str = "ad-no-such-object";
    /// Any other refusal of the DC.
    pub const REFUSED: &'static str = "ad-refused";
    /// The DC took the reset but `pwdLastSet` did not move.
    pub const NOT_CONFIRMED: &'static str = "ad-not-confirmed";
    /// The PowerShell script reported a failure (its message is the script's).
    pub const SCRIPT_FAILED: &'static str = "script-failed";
}
