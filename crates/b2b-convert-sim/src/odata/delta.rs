//! The query of `GET /users/delta` (NOTES §3.3) and its state tokens.
//!
//! Owns what a delta request may carry (`$select` on the first request only; `$skiptoken` or
//! `$deltatoken`, opaque; `$deltatoken=latest`), what it refuses as Graph does (`$top`,
//! `$orderby`, `$expand`, `$search`, `$count`, a `$filter` other than on `id`, `$select`
//! with a state token), and the tokens: they carry the `$select`, the round's change window
//! and when they were issued, so an expired one is told apart. It must not know HTTP or the
//! directory.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::{QueryError, USER_PROPERTIES, bad};

/// How long a delta token stays valid: seven days for directory objects (the delta query
/// overview, "Token duration").
pub const TOKEN_LIFETIME_MS: u64 = 7 * 24 * 3600 * 1000;

/// Users per delta page. Graph chooses its own page size (`$top` is refused); this one is
/// the simulator's choice, smaller than a list page, as delta pages carry changes of any kind.
pub const DELTA_PAGE_SIZE: usize = 200;

/// What a delta request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeltaRequest {
    /// The first request of a full round: every user now, then a delta link.
    Initial { select: Option<Vec<String>> },
    /// `$deltatoken=latest`: no users, only a delta link from now ("sync from now").
    Latest { select: Option<Vec<String>> },
    /// A `$skiptoken` or `$deltatoken` the service issued.
    Continue(DeltaToken),
}

/// The state a delta token carries (opaque to clients).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaToken {
    /// The `$select` of the round's first request.
    pub select: Option<Vec<String>>,
    /// Changes after this sequence number...
    pub from: u64,
    /// ... and at or before this one. A delta link's round ends where the next begins.
    pub to: u64,
    /// The last user index a page of this round returned (a `$skiptoken`).
    pub after: Option<u64>,
    /// A full round (every user, by index) rather than changes only.
    pub full: bool,
    /// Simulated time the token was issued (milliseconds).
    pub issued_ms: u64,
}

/// A delta token the service no longer knows: expired or never issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownToken;

impl DeltaToken {
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    /// The token, if it is one of ours and younger than [`TOKEN_LIFETIME_MS`] at `now_ms`.
    pub fn decode(text: &str, now_ms: u64) -> Result<Self, UnknownToken> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| UnknownToken)?;
        let token: Self = serde_json::from_slice(&bytes).map_err(|_| UnknownToken)?;
        if now_ms.saturating_sub(token.issued_ms) > TOKEN_LIFETIME_MS {
            return Err(UnknownToken);
        }
        Ok(token)
    }
}

fn unsupported(message: impl Into<String>) -> QueryError {
    QueryError {
        code: "Request_UnsupportedQuery",
        message: message.into(),
    }
}

/// Parses the (URL-decoded) query of a delta request. `Err(Ok(_))` is a refusal; a token the
/// service does not know is `Err(Err(UnknownToken))`.
pub fn parse(
    pairs: &[(String, String)],
    now_ms: u64,
) -> Result<DeltaRequest, Result<QueryError, UnknownToken>> {
    let mut select = None;
    let mut token = None;
    for (key, value) in pairs {
        match key.as_str() {
            "$select" => {
                let mut names = Vec::new();
                for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    let Some(known) = USER_PROPERTIES
                        .iter()
                        .find(|p| p.eq_ignore_ascii_case(name))
                    else {
                        return Err(Ok(bad(format!(
                            "Could not find a property named '{name}' on type 'microsoft.graph.user'."
                        ))));
                    };
                    names.push((*known).to_owned());
                }
                select = Some(names);
            }
            "$skiptoken" | "$deltatoken" | "$skipToken" | "$deltaToken" => {
                token = Some(value.clone());
            }
            "$top" | "$orderby" | "$expand" | "$search" | "$count" | "$skip" => {
                return Err(Ok(unsupported(format!(
                    "The query parameter '{key}' is not supported with change tracking over the 'users' resource."
                ))));
            }
            "$filter" => {
                let only_ids = value
                    .split(" or ")
                    .all(|clause| clause.trim().to_ascii_lowercase().starts_with("id eq "));
                return Err(Ok(if only_ids {
                    QueryError {
                        code: "NotImplemented",
                        message: "Tracking changes of chosen users (`$filter=id eq …`) is not modelled by the b2b-convert simulator.".to_owned(),
                    }
                } else {
                    unsupported(
                        "Change tracking over the 'users' resource supports $filter only on id (id eq '…').",
                    )
                }));
            }
            other if other.starts_with('$') => {
                return Err(Ok(bad(format!(
                    "Unrecognized query argument specified: '{other}'."
                ))));
            }
            _ => {}
        }
    }
    match token {
        None => Ok(DeltaRequest::Initial { select }),
        Some(token) if token.eq_ignore_ascii_case("latest") => Ok(DeltaRequest::Latest { select }),
        Some(_) if select.is_some() => Err(Ok(unsupported(
            "$select can't be combined with a state token: the token carries the $select of the round's first request.",
        ))),
        Some(token) => DeltaToken::decode(&token, now_ms)
            .map(DeltaRequest::Continue)
            .map_err(Err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn tokens_round_trip_until_they_expire() {
        let token = DeltaToken {
            select: Some(vec!["id".into()]),
            from: 3,
            to: 9,
            after: None,
            full: false,
            issued_ms: 1_000,
        };
        let text = token.encode();
        assert_eq!(DeltaToken::decode(&text, 2_000), Ok(token));
        assert_eq!(
            DeltaToken::decode(&text, 1_000 + TOKEN_LIFETIME_MS + 1),
            Err(UnknownToken)
        );
        assert_eq!(DeltaToken::decode("garbage", 0), Err(UnknownToken));
    }

    #[test]
    fn what_delta_refuses_is_refused() {
        for (key, value, code) in [
            ("$top", "10", "Request_UnsupportedQuery"),
            ("$orderby", "displayName", "Request_UnsupportedQuery"),
            (
                "$filter",
                "startsWith(userPrincipalName,'a')",
                "Request_UnsupportedQuery",
            ),
            ("$filter", "id eq 'x'", "NotImplemented"),
            ("$select", "id,favouriteColour", "BadRequest"),
        ] {
            let error = parse(&pairs(&[(key, value)]), 0).expect_err(key);
            assert_eq!(error.expect("a refusal").code, code, "{key}={value}");
        }
        let error = parse(&pairs(&[("$select", "id"), ("$skiptoken", "x")]), 0)
            .expect_err("select with a token");
        assert_eq!(error.expect("a refusal").code, "Request_UnsupportedQuery");
        assert_eq!(
            parse(&pairs(&[("$deltatoken", "latest"), ("$select", "id")]), 0),
            Ok(DeltaRequest::Latest {
                select: Some(vec!["id".into()])
            })
        );
    }
}
