//! The tenant's directory audit log (`GET /auditLogs/directoryAudits`, v1.0 `directoryAudit`):
//! the events the invitation service writes, and the documented query options over them.
//!
//! Owns the recorded events (one per `POST /invitations` that named an existing user, in
//! simulator time), the `$filter` subset the documentation lists per property (`eq`, `ge`, `le`,
//! `startswith`, joined by `and`/`or`; any other property or operator is refused), `$top`,
//! `$orderby` on `activityDateTime` and the opaque `$skiptoken`. It must not know HTTP nor the
//! directory's rules: the invitation endpoint tells it what happened, `http` renders the page.

use std::sync::Mutex;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::generate::format_unix;
use crate::odata::{QueryError, bad, page_size, string_literal};
use crate::rng::stable_guid;

/// Activity names of the "Invited users" audit category (entra-docs
/// `reference-audit-activities.md`).
pub mod activities {
    pub const INVITE_INTERNAL_USER: &str = "Invite internal user to B2B collaboration";
    pub const INVITE_EXTERNAL_USER: &str = "Invite external user";
    pub const INVITE_WITH_RESET: &str = "Invite external user with reset invitation status";
}

/// Largest `$top` the simulator accepts (unverified: Graph's maximum page size for directory
/// audits is not documented; 1,000 is what practitioners report).
pub const MAX_TOP: u64 = 1000;

/// Page size without `$top` (unverified, like [`MAX_TOP`]).
pub const DEFAULT_TOP: u64 = 100;

/// Who made the change: the app (and, for delegated tokens, a signed-in user, whom the
/// simulator does not name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Initiator {
    pub app_id: String,
    pub app_display_name: Option<String>,
}

/// The user an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUser {
    pub id: String,
    pub user_principal_name: String,
    pub display_name: Option<String>,
}

/// One `directoryAudit` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Order of recording (the page token's position).
    pub sequence: u64,
    pub id: String,
    pub correlation_id: String,
    pub activity: &'static str,
    pub at_ms: u64,
    pub success: bool,
    pub result_reason: String,
    pub initiated_by: Initiator,
    pub target: TargetUser,
}

impl AuditEvent {
    /// The event as Graph's JSON (the `directoryAudit` resource's properties).
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "category": "UserManagement",
            "correlationId": self.correlation_id,
            "result": if self.success { "success" } else { "failure" },
            "resultReason": self.result_reason,
            "activityDisplayName": self.activity,
            "activityDateTime": format_time(self.at_ms),
            "loggedByService": "Invited Users",
            "operationType": "Add",
            "initiatedBy": {
                "user": null,
                "app": {
                    "appId": self.initiated_by.app_id,
                    "displayName": self.initiated_by.app_display_name,
                    "servicePrincipalId": null,
                    "servicePrincipalName": null,
                },
            },
            "targetResources": [{
                "id": self.target.id,
                "displayName": self.target.display_name,
                "type": "User",
                "userPrincipalName": self.target.user_principal_name,
                "groupType": null,
                "modifiedProperties": [],
            }],
            "additionalDetails": [],
        })
    }

    fn text(&self, property: &str) -> Option<String> {
        Some(match property {
            "id" => self.id.clone(),
            "correlationId" => self.correlation_id.clone(),
            "activityDisplayName" => self.activity.to_owned(),
            "loggedByService" => "Invited Users".to_owned(),
            "initiatedBy/app/appId" => self.initiated_by.app_id.clone(),
            "initiatedBy/app/displayName" => self.initiated_by.app_display_name.clone()?,
            _ => return None,
        })
    }
}

/// `activityDateTime` as Graph writes it (seconds and a 7-digit fraction, `Z`).
fn format_time(at_ms: u64) -> String {
    let seconds = format_unix(i64::try_from(at_ms / 1000).unwrap_or(i64::MAX));
    let fraction = (at_ms % 1000) * 10_000;
    format!("{}.{fraction:07}Z", seconds.trim_end_matches('Z'))
}

/// The tenant's audit events, oldest first.
#[derive(Debug, Default)]
pub struct AuditLog {
    events: Mutex<Vec<AuditEvent>>,
    seed: u64,
}

impl AuditLog {
    pub fn new(seed: u64) -> Self {
        Self {
            events: Mutex::new(Vec::new()),
            seed,
        }
    }

    /// Records an event now (`at_ms`, simulator time).
    pub fn record(
        &self,
        activity: &'static str,
        success: bool,
        result_reason: &str,
        initiated_by: Initiator,
        target: TargetUser,
        at_ms: u64,
    ) {
        let mut events = crate::lock(&self.events);
        let sequence = events.len() as u64 + 1;
        events.push(AuditEvent {
            sequence,
            id: format!(
                "IPCGraph_{}_{}",
                stable_guid(self.seed, 0xA0D1, sequence),
                sequence
            ),
            correlation_id: stable_guid(self.seed, 0xC0EE, sequence),
            activity,
            at_ms,
            success,
            result_reason: result_reason.to_owned(),
            initiated_by,
            target,
        });
    }

    /// Every event, oldest first (for tests and the admin API).
    pub fn events(&self) -> Vec<AuditEvent> {
        crate::lock(&self.events).clone()
    }

    /// One page of the events `query` selects, and the position after it when more remain.
    pub fn page(&self, query: &AuditQuery) -> Result<(Vec<AuditEvent>, Option<u64>), QueryError> {
        let after = query.position()?;
        let events = crate::lock(&self.events);
        let selected = events.iter().filter(|e| {
            after.is_none_or(|position| {
                if query.ascending {
                    e.sequence > position
                } else {
                    e.sequence < position
                }
            }) && query.filter.as_ref().is_none_or(|f| f.matches(e))
        });
        let ordered: Vec<&AuditEvent> = if query.ascending {
            selected.collect()
        } else {
            let mut all: Vec<&AuditEvent> = selected.collect();
            all.reverse();
            all
        };
        let size = usize::try_from(query.top.unwrap_or(DEFAULT_TOP)).unwrap_or(usize::MAX);
        let more = ordered.len() > size;
        let page: Vec<AuditEvent> = ordered.into_iter().take(size).cloned().collect();
        let next = more.then(|| page.last().map(|e| e.sequence)).flatten();
        Ok((page, next))
    }
}

/// The query options of `GET /auditLogs/directoryAudits`.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub filter: Option<AuditFilter>,
    filter_text: Option<String>,
    pub top: Option<u64>,
    /// `$orderby=activityDateTime asc`; newest first otherwise.
    pub ascending: bool,
    skiptoken: Option<String>,
}

impl AuditQuery {
    /// Parses the (URL-decoded) query pairs.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, QueryError> {
        let mut query = Self::default();
        for (key, value) in pairs {
            match key.as_str() {
                "$filter" => {
                    query.filter = Some(AuditFilter::parse(value)?);
                    query.filter_text = Some(value.clone());
                }
                "$top" => query.top = Some(page_size(value, MAX_TOP, bad)?),
                "$orderby" => {
                    let mut words = value.split_whitespace();
                    let (Some("activityDateTime"), direction, None) =
                        (words.next(), words.next(), words.next())
                    else {
                        return Err(bad(format!(
                            "$orderby is supported on activityDateTime only, not '{value}'."
                        )));
                    };
                    query.ascending = match direction {
                        None | Some("asc") => true,
                        Some("desc") => false,
                        Some(other) => {
                            return Err(bad(format!(
                                "Invalid $orderby direction '{other}': use asc or desc."
                            )));
                        }
                    };
                }
                "$skiptoken" => query.skiptoken = Some(value.clone()),
                "$select" | "$expand" | "$count" | "$search" | "$skip" => {
                    return Err(QueryError {
                        code: "Request_UnsupportedQuery",
                        message: format!(
                            "{key} on directory audits is not modelled by the b2b-convert simulator."
                        ),
                    });
                }
                other if other.starts_with('$') => {
                    return Err(bad(format!(
                        "Unrecognized query argument specified: '{other}'."
                    )));
                }
                _ => {}
            }
        }
        Ok(query)
    }

    fn fingerprint(&self) -> u64 {
        let text = format!("{:?}|{:?}|{}", self.filter_text, self.top, self.ascending);
        text.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
        })
    }

    /// The `$skiptoken` that continues after the event at `sequence`.
    pub fn token_after(&self, sequence: u64) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("audit1:{sequence}:{:x}", self.fingerprint()))
    }

    fn position(&self) -> Result<Option<u64>, QueryError> {
        let Some(token) = &self.skiptoken else {
            return Ok(None);
        };
        let invalid = || bad("The $skiptoken is invalid or belongs to another query.");
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| invalid())?;
        let text = String::from_utf8(decoded).map_err(|_| invalid())?;
        let mut parts = text.split(':');
        let (Some("audit1"), Some(sequence), Some(fingerprint), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        if fingerprint != format!("{:x}", self.fingerprint()) {
            return Err(invalid());
        }
        sequence.parse().map(Some).map_err(|_| invalid())
    }
}

/// A parsed `$filter` over directory audits.
#[derive(Debug, Clone, PartialEq)]
pub enum AuditFilter {
    And(Box<AuditFilter>, Box<AuditFilter>),
    Or(Box<AuditFilter>, Box<AuditFilter>),
    /// A text property `eq` a value.
    TextEq {
        property: String,
        value: String,
    },
    /// `startswith(property, 'prefix')`.
    StartsWith {
        property: String,
        prefix: String,
    },
    /// `activityDateTime eq|ge|le <DateTimeOffset>`.
    Time {
        op: TimeOp,
        at_ms: u64,
    },
    /// `targetResources/any(t: t/id eq '…')` (or `t/displayName`, `eq` or `startswith`).
    Target {
        property: String,
        value: String,
        starts_with: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeOp {
    Eq,
    Ge,
    Le,
}

/// Text properties and whether they support `startswith` (directoryAudit resource page).
const TEXT_PROPERTIES: &[(&str, bool)] = &[
    ("id", false),
    ("correlationId", false),
    ("activityDisplayName", true),
    ("loggedByService", false),
    ("initiatedBy/app/appId", false),
    ("initiatedBy/app/displayName", false),
    ("initiatedBy/user/id", false),
    ("initiatedBy/user/displayName", false),
    ("initiatedBy/user/userPrincipalName", true),
];

fn unsupported_clause(property: &str) -> QueryError {
    bad(format!(
        "Invalid filter clause: the property '{property}' or its operator is not supported in \
         $filter on directoryAudits (supported: activityDateTime eq/ge/le, activityDisplayName \
         eq/startswith, id, correlationId, loggedByService, initiatedBy/user/..., \
         initiatedBy/app/..., targetResources/any(t: t/id eq '...'))."
    ))
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Open,
    Close,
    Comma,
    Colon,
}

fn tokenize(text: &str) -> Result<Vec<Token>, QueryError> {
    let syntax = |at: usize| {
        bad(format!(
            "Invalid filter clause: Syntax error at position {at} in '{text}'."
        ))
    };
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            ' ' | '\t' => i += 1,
            '(' => {
                tokens.push(Token::Open);
                i += 1;
            }
            ')' => {
                tokens.push(Token::Close);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            ':' => {
                tokens.push(Token::Colon);
                i += 1;
            }
            '\'' => {
                let (value, next) = string_literal(&chars, i).ok_or_else(|| syntax(i))?;
                i = next;
                tokens.push(Token::Text(value));
            }
            c if c.is_ascii_digit() => {
                // A DateTimeOffset literal: 2026-12-06T08:00:00Z (fraction and offset allowed).
                let mut word = String::new();
                while let Some(d) = chars
                    .get(i)
                    .filter(|d| d.is_ascii_alphanumeric() || matches!(d, '-' | ':' | '.' | '+'))
                {
                    word.push(*d);
                    i += 1;
                }
                tokens.push(Token::Word(word));
            }
            c if c.is_alphabetic() => {
                let mut word = String::new();
                while let Some(d) = chars
                    .get(i)
                    .filter(|d| d.is_alphanumeric() || matches!(d, '/' | '_' | '.'))
                {
                    word.push(*d);
                    i += 1;
                }
                tokens.push(Token::Word(word));
            }
            _ => return Err(syntax(i)),
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    text: String,
}

impl Parser {
    fn syntax(&self) -> QueryError {
        bad(format!(
            "Invalid filter clause: Syntax error at token {} in '{}'.",
            self.pos, self.text
        ))
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    fn peek_word(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn expect(&mut self, token: &Token) -> Result<(), QueryError> {
        if self.next().as_ref() == Some(token) {
            Ok(())
        } else {
            Err(self.syntax())
        }
    }

    fn text(&mut self) -> Result<String, QueryError> {
        match self.next() {
            Some(Token::Text(value)) => Ok(value),
            _ => Err(self.syntax()),
        }
    }

    fn or(&mut self) -> Result<AuditFilter, QueryError> {
        let mut left = self.and()?;
        while self.peek_word("or") {
            self.pos += 1;
            left = AuditFilter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<AuditFilter, QueryError> {
        let mut left = self.clause()?;
        while self.peek_word("and") {
            self.pos += 1;
            left = AuditFilter::And(Box::new(left), Box::new(self.clause()?));
        }
        Ok(left)
    }

    fn clause(&mut self) -> Result<AuditFilter, QueryError> {
        match self.next() {
            Some(Token::Open) => {
                let inner = self.or()?;
                self.expect(&Token::Close)?;
                Ok(inner)
            }
            Some(Token::Word(word)) if word.eq_ignore_ascii_case("startswith") => {
                self.expect(&Token::Open)?;
                let Some(Token::Word(property)) = self.next() else {
                    return Err(self.syntax());
                };
                self.expect(&Token::Comma)?;
                let prefix = self.text()?;
                self.expect(&Token::Close)?;
                match TEXT_PROPERTIES.iter().find(|(name, _)| *name == property) {
                    Some((_, true)) => Ok(AuditFilter::StartsWith { property, prefix }),
                    _ => Err(unsupported_clause(&property)),
                }
            }
            Some(Token::Word(word)) if word == "targetResources/any" => self.target(),
            Some(Token::Word(property)) => {
                let Some(Token::Word(op)) = self.next() else {
                    return Err(self.syntax());
                };
                if property == "activityDateTime" {
                    let op = match op.as_str() {
                        "eq" => TimeOp::Eq,
                        "ge" => TimeOp::Ge,
                        "le" => TimeOp::Le,
                        _ => return Err(unsupported_clause(&property)),
                    };
                    let Some(Token::Word(literal)) = self.next() else {
                        return Err(self.syntax());
                    };
                    let at = time::OffsetDateTime::parse(
                        &literal,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .map_err(|_| {
                        bad(format!(
                            "Invalid filter clause: '{literal}' is not a valid DateTimeOffset."
                        ))
                    })?;
                    let at_ms = u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
                    return Ok(AuditFilter::Time { op, at_ms });
                }
                if op != "eq" || !TEXT_PROPERTIES.iter().any(|(name, _)| *name == property) {
                    return Err(unsupported_clause(&property));
                }
                let value = self.text()?;
                Ok(AuditFilter::TextEq { property, value })
            }
            _ => Err(self.syntax()),
        }
    }

    /// `(t: t/id eq '…')` after `targetResources/any`.
    fn target(&mut self) -> Result<AuditFilter, QueryError> {
        self.expect(&Token::Open)?;
        let Some(Token::Word(variable)) = self.next() else {
            return Err(self.syntax());
        };
        self.expect(&Token::Colon)?;
        let prefix = format!("{variable}/");
        let (property, value, starts_with) = match self.next() {
            Some(Token::Word(word)) if word.eq_ignore_ascii_case("startswith") => {
                self.expect(&Token::Open)?;
                let Some(Token::Word(path)) = self.next() else {
                    return Err(self.syntax());
                };
                self.expect(&Token::Comma)?;
                let value = self.text()?;
                self.expect(&Token::Close)?;
                (path, value, true)
            }
            Some(Token::Word(path)) => {
                match self.next() {
                    Some(Token::Word(op)) if op == "eq" => {}
                    _ => return Err(unsupported_clause(&format!("targetResources/{path}"))),
                }
                (path, self.text()?, false)
            }
            _ => return Err(self.syntax()),
        };
        self.expect(&Token::Close)?;
        let Some(property) = property.strip_prefix(&prefix).map(str::to_owned) else {
            return Err(self.syntax());
        };
        match (property.as_str(), starts_with) {
            ("id", false) | ("displayName", _) => Ok(AuditFilter::Target {
                property,
                value,
                starts_with,
            }),
            _ => Err(unsupported_clause(&format!("targetResources/{property}"))),
        }
    }
}

impl AuditFilter {
    /// Parses a `$filter` over directory audits.
    pub fn parse(text: &str) -> Result<Self, QueryError> {
        let mut parser = Parser {
            tokens: tokenize(text)?,
            pos: 0,
            text: text.to_owned(),
        };
        let filter = parser.or()?;
        if parser.pos != parser.tokens.len() {
            return Err(parser.syntax());
        }
        Ok(filter)
    }

    /// Whether `event` passes the filter (text comparisons ignore case, like Graph's).
    pub fn matches(&self, event: &AuditEvent) -> bool {
        match self {
            Self::And(a, b) => a.matches(event) && b.matches(event),
            Self::Or(a, b) => a.matches(event) || b.matches(event),
            Self::TextEq { property, value } => event
                .text(property)
                .is_some_and(|v| v.eq_ignore_ascii_case(value)),
            Self::StartsWith { property, prefix } => event
                .text(property)
                .is_some_and(|v| v.to_lowercase().starts_with(&prefix.to_lowercase())),
            Self::Time { op, at_ms } => match op {
                TimeOp::Eq => event.at_ms == *at_ms,
                TimeOp::Ge => event.at_ms >= *at_ms,
                TimeOp::Le => event.at_ms <= *at_ms,
            },
            Self::Target {
                property,
                value,
                starts_with,
            } => {
                let actual = match property.as_str() {
                    "id" => Some(event.target.id.clone()),
                    _ => event.target.display_name.clone(),
                };
                actual.is_some_and(|actual| {
                    if *starts_with {
                        actual.to_lowercase().starts_with(&value.to_lowercase())
                    } else {
                        actual.eq_ignore_ascii_case(value)
                    }
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_with(events: &[(&'static str, &str, u64, bool)]) -> AuditLog {
        let log = AuditLog::new(7);
        for (activity, user, at_ms, success) in events {
            log.record(
                activity,
                *success,
                if *success {
                    ""
                } else {
                    "Invalid request input."
                },
                Initiator {
                    app_id: "app".into(),
                    app_display_name: Some("b2b-convert".into()),
                },
                TargetUser {
                    id: (*user).to_owned(),
                    user_principal_name: format!("{user}@contoso.com"),
                    display_name: None,
                },
                *at_ms,
            );
        }
        log
    }

    fn query(pairs: &[(&str, &str)]) -> Result<AuditQuery, QueryError> {
        AuditQuery::parse(
            &pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn the_documented_filters_select_by_activity_time_and_target() {
        let log = log_with(&[
            (activities::INVITE_INTERNAL_USER, "a", 1_000_000, true),
            (activities::INVITE_EXTERNAL_USER, "b", 2_000_000, true),
            (activities::INVITE_INTERNAL_USER, "c", 3_000_000, false),
        ]);
        let q = query(&[(
            "$filter",
            "activityDisplayName eq 'Invite internal user to B2B collaboration' and activityDateTime ge 1970-01-01T00:25:00Z",
        )])
        .unwrap();
        let (page, next) = log.page(&q).unwrap();
        assert_eq!(
            page.iter()
                .map(|e| e.target.id.as_str())
                .collect::<Vec<_>>(),
            ["c"]
        );
        assert_eq!(next, None);
        let q = query(&[("$filter", "targetResources/any(t: t/id eq 'B')")]).unwrap();
        assert_eq!(log.page(&q).unwrap().0[0].target.id, "b");
        let q = query(&[(
            "$filter",
            "startswith(activityDisplayName, 'invite internal')",
        )])
        .unwrap();
        assert_eq!(log.page(&q).unwrap().0.len(), 2);
    }

    #[test]
    fn undocumented_filters_are_refused() {
        for filter in [
            "result eq 'success'",
            "category eq 'UserManagement'",
            "activityDisplayName ne 'x'",
            "activityDateTime gt 2026-01-01T00:00:00Z",
            "targetResources/any(t: t/userPrincipalName eq 'a@contoso.com')",
            "startswith(id, 'x')",
        ] {
            let error = query(&[("$filter", filter)]).expect_err(filter);
            assert_eq!(error.code, "BadRequest", "{filter}");
        }
        assert!(query(&[("$filter", "activityDateTime ge yesterday")]).is_err());
        assert!(query(&[("$top", "1001")]).is_err());
        assert!(query(&[("$select", "id")]).is_err());
    }

    #[test]
    fn pages_follow_the_token_newest_first_and_the_token_is_bound_to_its_query() {
        let log = log_with(&[
            (activities::INVITE_INTERNAL_USER, "a", 1_000, true),
            (activities::INVITE_INTERNAL_USER, "b", 2_000, true),
            (activities::INVITE_INTERNAL_USER, "c", 3_000, true),
        ]);
        let first = query(&[("$top", "2")]).unwrap();
        let (page, next) = log.page(&first).unwrap();
        assert_eq!(
            page.iter()
                .map(|e| e.target.id.as_str())
                .collect::<Vec<_>>(),
            ["c", "b"]
        );
        let token = first.token_after(next.expect("a second page"));
        let second = query(&[("$top", "2"), ("$skiptoken", &token)]).unwrap();
        let (page, next) = log.page(&second).unwrap();
        assert_eq!(page[0].target.id, "a");
        assert_eq!(next, None);
        let other = query(&[("$top", "3"), ("$skiptoken", &token)]).unwrap();
        assert!(log.page(&other).is_err());
    }

    #[test]
    fn events_render_as_directory_audits() {
        let log = log_with(&[(activities::INVITE_INTERNAL_USER, "a", 1_500, false)]);
        let json = log.events()[0].to_json();
        assert_eq!(json["result"], "failure");
        assert_eq!(json["category"], "UserManagement");
        assert_eq!(json["activityDateTime"], "1970-01-01T00:00:01.5000000Z");
        assert_eq!(json["targetResources"][0]["id"], "a");
        assert_eq!(json["initiatedBy"]["app"]["appId"], "app");
    }
}
