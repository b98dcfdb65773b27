//! `OData` query options for `/users` and group members: `$filter`, `$select`, `$top`,
//! `$count`, `$skiptoken`, and the advanced-query rules of NOTES §3.2.
//!
//! Owns parsing (with Graph's error codes and messages), evaluation of a filter against a
//! user, projection by `$select` and the opaque page token. It must not know HTTP or the
//! directory: callers hand it query pairs and users.

use base64::Engine as _;
use serde_json::{Map, Value};

use super::model::{USER_DEFAULT_PROPERTIES, USER_PROPERTIES, User};

pub mod delta;
mod filter;

pub(crate) use filter::string_literal;
pub use filter::{CmpOp, Filter, Literal};

/// A Graph-style query error: HTTP 400 with `code` and `message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct QueryError {
    pub code: &'static str,
    pub message: String,
}

/// A `$top` value: a whole number from 1 to `max`, Graph's messages otherwise (`out_of_range`
/// gives the error's code for a number outside, which differs between services).
pub(crate) fn page_size(
    value: &str,
    max: u64,
    out_of_range: fn(String) -> QueryError,
) -> Result<u64, QueryError> {
    let top: u64 = value.trim().parse().map_err(|_| {
        bad(format!(
            "Invalid value '{value}' for $top query option found."
        ))
    })?;
    if !(1..=max).contains(&top) {
        return Err(out_of_range(format!(
            "Invalid page size specified: '{top}'. Must be between 1 and {max} inclusive."
        )));
    }
    Ok(top)
}

pub(crate) fn bad(message: impl Into<String>) -> QueryError {
    QueryError {
        code: "BadRequest",
        message: message.into(),
    }
}

fn unsupported(message: impl Into<String>) -> QueryError {
    QueryError {
        code: "Request_UnsupportedQuery",
        message: message.into(),
    }
}

fn request(message: impl Into<String>) -> QueryError {
    QueryError {
        code: "Request_BadRequest",
        message: message.into(),
    }
}

/// Largest `$top` Graph accepts for users and members.
pub const MAX_TOP: u64 = 999;

/// Page size when `$top` is absent.
pub const DEFAULT_TOP: u64 = 100;

/// Parsed query options of a collection request.
#[derive(Debug, Clone, Default)]
pub struct CollectionQuery {
    pub select: Option<Vec<String>>,
    pub top: Option<u64>,
    pub filter: Option<Filter>,
    pub filter_text: Option<String>,
    pub count: bool,
    pub skiptoken: Option<String>,
    /// `ConsistencyLevel: eventual` header present.
    pub eventual: bool,
}

impl CollectionQuery {
    /// Parses `pairs` (already URL-decoded). `eventual` is the `ConsistencyLevel` header.
    pub fn parse(pairs: &[(String, String)], eventual: bool) -> Result<Self, QueryError> {
        let mut query = Self {
            eventual,
            ..Self::default()
        };
        for (key, value) in pairs {
            match key.as_str() {
                "$select" => {
                    let mut names = Vec::new();
                    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                        let Some(known) = USER_PROPERTIES
                            .iter()
                            .find(|p| p.eq_ignore_ascii_case(name))
                        else {
                            return Err(bad(format!(
                                "Could not find a property named '{name}' on type 'microsoft.graph.user'."
                            )));
                        };
                        names.push((*known).to_owned());
                    }
                    query.select = Some(names);
                }
                "$top" => query.top = Some(page_size(value, MAX_TOP, request)?),
                "$count" => match value.as_str() {
                    "true" => query.count = true,
                    "false" => query.count = false,
                    _ => {
                        return Err(bad(format!(
                            "Invalid value '{value}' for $count query option found."
                        )));
                    }
                },
                "$filter" => {
                    query.filter_text = Some(value.clone());
                }
                "$skiptoken" => query.skiptoken = Some(value.clone()),
                "$skip" => return Err(request("'$skip' is not supported by the service.")),
                "$search" => {
                    if !eventual {
                        return Err(unsupported(
                            "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'",
                        ));
                    }
                    return Err(unsupported(
                        "$search is not modelled by the b2b-convert simulator.",
                    ));
                }
                "$orderby" | "$expand" => {
                    return Err(unsupported(format!(
                        "{key} is not modelled by the b2b-convert simulator."
                    )));
                }
                other if other.starts_with('$') => {
                    return Err(bad(format!(
                        "Unrecognized query argument specified: '{other}'."
                    )));
                }
                _ => {}
            }
        }
        let advanced = query.eventual && query.count;
        if let Some(text) = &query.filter_text {
            query.filter = Some(Filter::parse(text, advanced)?);
        }
        Ok(query)
    }

    /// The page size.
    pub fn page_size(&self) -> u64 {
        self.top.unwrap_or(DEFAULT_TOP)
    }

    /// Whether `@odata.count` is returned (`$count=true` is ignored without the header).
    pub fn wants_count(&self) -> bool {
        self.count && self.eventual
    }

    /// A fingerprint of the options a page token is bound to.
    fn fingerprint(&self) -> u64 {
        let text = format!(
            "{:?}|{:?}|{:?}|{}",
            self.select, self.top, self.filter_text, self.count
        );
        text.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
        })
    }

    /// The opaque `$skiptoken` for continuing at `position`.
    pub fn token_for(&self, position: u64) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("sim1:{position}:{:x}", self.fingerprint()))
    }

    /// The position a `$skiptoken` continues at (0 without a token).
    pub fn start_position(&self) -> Result<u64, QueryError> {
        let Some(token) = &self.skiptoken else {
            return Ok(0);
        };
        let expired = || {
            QueryError {
            code: "Directory_ExpiredPageToken",
            message: "The specified page token value has expired and can no longer be included in your request.".to_owned(),
        }
        };
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| expired())?;
        let text = String::from_utf8(decoded).map_err(|_| expired())?;
        let mut parts = text.split(':');
        let (Some("sim1"), Some(position), Some(fingerprint)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(expired());
        };
        if fingerprint != format!("{:x}", self.fingerprint()) {
            return Err(expired());
        }
        position.parse().map_err(|_| expired())
    }

    /// The user as JSON, projected by `$select` (or the default property set).
    pub fn project(&self, user: &User) -> Map<String, Value> {
        project(user, self.select.as_deref())
    }
}

/// Graph beta's conversion stamp on a user converted from external back to internal.
pub const CONVERSION_STAMP: &str = "externalUserConvertedOn";

/// A user as JSON with only `select` properties (default set when `None`).
pub fn project(user: &User, select: Option<&[String]>) -> Map<String, Value> {
    let Ok(Value::Object(mut all)) = serde_json::to_value(user) else {
        return Map::new();
    };
    let keep: Vec<&str> = match select {
        Some(names) => names.iter().map(String::as_str).collect(),
        None => USER_DEFAULT_PROPERTIES.to_vec(),
    };
    let mut out = Map::new();
    for name in keep {
        if let Some(value) = all.remove(name) {
            out.insert(name.to_owned(), value);
        }
    }
    // The conversion stamp (`externalUserConvertedOn`) is not a v1.0 property, so it cannot be
    // selected; the simulator reports it for a stamped user whatever the `$select`, standing in
    // for a service that returns it (docs/simulator.md). Unset, it is absent.
    if let Some(stamp) = all.remove(CONVERSION_STAMP) {
        out.insert(CONVERSION_STAMP.to_owned(), stamp);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_are_bound_to_the_query() {
        let pairs = vec![("$top".to_owned(), "10".to_owned())];
        let query = CollectionQuery::parse(&pairs, false).expect("parses");
        let token = query.token_for(40);
        let mut next = pairs.clone();
        next.push(("$skiptoken".to_owned(), token.clone()));
        assert_eq!(
            CollectionQuery::parse(&next, false)
                .expect("parses")
                .start_position(),
            Ok(40)
        );
        let other = vec![
            ("$top".to_owned(), "11".to_owned()),
            ("$skiptoken".to_owned(), token),
        ];
        assert_eq!(
            CollectionQuery::parse(&other, false)
                .expect("parses")
                .start_position()
                .expect_err("bound")
                .code,
            "Directory_ExpiredPageToken"
        );
    }

    #[test]
    fn top_is_bounded() {
        let error = CollectionQuery::parse(&[("$top".to_owned(), "1000".to_owned())], false)
            .expect_err("too big");
        assert!(error.message.contains("between 1 and 999"));
        let error = CollectionQuery::parse(&[("$select".to_owned(), "id,bogus".to_owned())], false)
            .expect_err("unknown");
        assert!(error.message.contains("'bogus'"));
    }
}
