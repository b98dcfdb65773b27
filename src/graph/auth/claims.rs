//! Reading an access token's claims, without trusting them: only to tell the operator which
//! permissions the token says it carries. Graph itself is the judge of what is allowed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

/// The claims `check` shows. Every field is optional: tokens differ by flow and cloud.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct TokenClaims {
    /// Application permissions (app-only tokens).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Delegated permissions, space-separated (user tokens).
    #[serde(default)]
    pub scp: Option<String>,
    /// The tenant the token was issued in.
    pub tid: Option<String>,
    /// The application (client) id (`appid` in v1 tokens, `azp` in v2).
    pub appid: Option<String>,
    pub azp: Option<String>,
    /// The audience: the resource the token is for.
    pub aud: Option<String>,
    /// Expiry, Unix seconds.
    pub exp: Option<u64>,
    /// The signed-in user for delegated tokens (v1 tokens; v2 tokens carry
    /// `preferred_username`).
    pub upn: Option<String>,
    pub preferred_username: Option<String>,
    /// The signed-in user's object id (delegated tokens; the app's service principal in
    /// app-only tokens).
    pub oid: Option<String>,
}

impl TokenClaims {
    /// Decodes the payload of a JWT. `None` when the token is not a readable JWT (opaque
    /// tokens exist; they are still valid to send).
    pub fn decode(token: &str) -> Option<Self> {
        let payload = token.split('.').nth(1)?;
        let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Every permission the token claims, app roles and delegated scopes alike.
    pub fn permissions(&self) -> Vec<String> {
        let mut all: Vec<String> = self.roles.clone();
        all.extend(
            self.scp
                .iter()
                .flat_map(|s| s.split_whitespace())
                .map(str::to_owned),
        );
        all.sort();
        all.dedup();
        all
    }

    /// Whether the token is delegated (a signed-in user) rather than app-only.
    pub fn is_delegated(&self) -> bool {
        self.scp.is_some()
    }

    pub fn client_id(&self) -> Option<&str> {
        self.appid.as_deref().or(self.azp.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &serde_json::Value) -> String {
        format!(
            "eyJhbGciOiJub25lIn0.{}.sig",
            URL_SAFE_NO_PAD.encode(payload.to_string())
        )
    }

    #[test]
    fn app_and_delegated_permissions_are_listed() {
        let app = TokenClaims::decode(&jwt(&serde_json::json!({
            "roles": ["User.Read.All", "User.Invite.All"], "tid": "t", "appid": "a", "exp": 5
        })))
        .unwrap();
        assert_eq!(app.permissions(), vec!["User.Invite.All", "User.Read.All"]);
        assert!(!app.is_delegated());
        assert_eq!(app.client_id(), Some("a"));

        let user = TokenClaims::decode(&jwt(&serde_json::json!({
            "scp": "User.Read.All Domain.Read.All", "azp": "b"
        })))
        .unwrap();
        assert_eq!(user.permissions(), vec!["Domain.Read.All", "User.Read.All"]);
        assert!(user.is_delegated());
        assert_eq!(user.client_id(), Some("b"));
    }

    #[test]
    fn opaque_tokens_have_no_claims() {
        assert_eq!(TokenClaims::decode("opaque-token"), None);
        assert_eq!(TokenClaims::decode("a.!!!.c"), None);
    }
}
