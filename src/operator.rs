//! Who runs the tool, as the audit trail records it once per run (`runs`, and through the run
//! every event it writes): the OS user and host, the application or signed-in user the access
//! token names, and the tool's version.
//!
//! It owns reading the host name from the operating system. The OS user comes from
//! [`crate::config::Environment`] (the one reader of the environment), and the token's identity
//! from its claims ([`TokenClaims`]): the token itself is never kept, logged or stored.

use serde::{Deserialize, Serialize};

use crate::config::Environment;
use crate::graph::auth::TokenClaims;

/// The operator of one run. Every field is optional: an opaque token has no readable claims,
/// a container may have no `USER`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operator {
    /// The OS account (`USER`, `LOGNAME` or `USERNAME`).
    pub os_user: Option<String>,
    /// The machine's host name.
    pub host: Option<String>,
    /// The application (client) id the token was issued to (`appid` or `azp`).
    pub app_id: Option<String>,
    /// The signed-in user of a delegated token (`upn` or `preferred_username`).
    pub signed_in_user: Option<String>,
    /// The signed-in user's object id (`oid`) of a delegated token.
    pub signed_in_oid: Option<String>,
    /// The tool's long version (`--version`).
    pub tool_version: Option<String>,
}

impl Operator {
    /// The local half: OS user and host from `env` and the OS, and this build's version.
    pub fn local(env: &Environment) -> Self {
        Self {
            os_user: env.os_user().map(str::to_owned),
            host: host_name().or_else(|| env.host_name().map(str::to_owned)),
            tool_version: Some(env!("B2BC_LONG_VERSION").to_owned()),
            ..Self::default()
        }
    }

    /// Adds who the token names (`None`: an opaque token, or none could be had).
    #[must_use]
    pub fn with_token(mut self, claims: Option<&TokenClaims>) -> Self {
        if let Some(claims) = claims {
            self.app_id = claims.client_id().map(str::to_owned);
            if claims.is_delegated() {
                self.signed_in_user = claims
                    .upn
                    .clone()
                    .or_else(|| claims.preferred_username.clone());
                self.signed_in_oid.clone_from(&claims.oid);
            }
        }
        self
    }

    /// One line for people and SIEMs: `alice@build-01 as app 1234…` or `alice@build-01 as
    /// admin@contoso.com`; `unknown` for what is not known.
    pub fn summary(&self) -> String {
        let local = match (&self.os_user, &self.host) {
            (Some(user), Some(host)) => format!("{user}@{host}"),
            (Some(user), None) => user.clone(),
            (None, Some(host)) => format!("unknown@{host}"),
            (None, None) => "unknown".to_owned(),
        };
        match (&self.signed_in_user, &self.app_id) {
            (Some(user), _) => format!("{local} as {user}"),
            (None, Some(app)) => format!("{local} as app {app}"),
            (None, None) => local,
        }
    }
}

/// The host name the OS reports (`uname`'s node name), `None` where it cannot say.
fn host_name() -> Option<String> {
    #[cfg(unix)]
    {
        let uname = rustix::system::uname();
        let name = uname.nodename().to_string_lossy().trim().to_owned();
        (!name.is_empty()).then_some(name)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_half_names_the_os_user_the_host_and_the_version() {
        let env = Environment::from_pairs([("LOGNAME", "alice"), ("USERNAME", "bob")]);
        let operator = Operator::local(&env);
        assert_eq!(operator.os_user.as_deref(), Some("alice"));
        assert!(operator.host.is_some(), "a test machine has a host name");
        assert_eq!(
            operator.tool_version.as_deref(),
            Some(env!("B2BC_LONG_VERSION"))
        );
        assert_eq!(operator.app_id, None);
    }

    #[test]
    fn an_app_token_names_the_app_and_a_delegated_token_the_user() {
        let app = TokenClaims {
            appid: Some("app-1".into()),
            roles: vec!["User.Invite.All".into()],
            ..TokenClaims::default()
        };
        let operator = Operator {
            os_user: Some("alice".into()),
            host: Some("build-01".into()),
            ..Operator::default()
        };
        let by_app = operator.clone().with_token(Some(&app));
        assert_eq!(by_app.app_id.as_deref(), Some("app-1"));
        assert_eq!(by_app.signed_in_user, None);
        assert_eq!(by_app.summary(), "alice@build-01 as app app-1");

        let delegated = TokenClaims {
            azp: Some("app-2".into()),
            scp: Some("User.Invite.All".into()),
            preferred_username: Some("admin@contoso.com".into()),
            oid: Some("oid-1".into()),
            ..TokenClaims::default()
        };
        let by_user = operator.clone().with_token(Some(&delegated));
        assert_eq!(by_user.signed_in_user.as_deref(), Some("admin@contoso.com"));
        assert_eq!(by_user.signed_in_oid.as_deref(), Some("oid-1"));
        assert_eq!(by_user.summary(), "alice@build-01 as admin@contoso.com");
        assert_eq!(operator.with_token(None).summary(), "alice@build-01");
        assert_eq!(Operator::default().summary(), "unknown");
    }
}
