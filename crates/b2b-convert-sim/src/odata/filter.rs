//! The `$filter` language for users: tokenizer, parser (with Graph's error codes and the
//! advanced-query rules of NOTES §3.2), per-property operator table, and evaluation.
//!
//! It must not know about paging, projection or HTTP.

use super::{QueryError, bad, unsupported};

/// Most child clauses an `or`/`in` expression may have (Graph's directory limit; from
/// Graph's error message, not in NOTES — unverified).
pub const MAX_OR_CLAUSES: usize = 15;
use crate::model::{USER_PROPERTIES, User};

/// Operators a property supports in `$filter` (NOTES §3 table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Bool,
    StrCollection,
    ComplexCollection,
}

struct PropertyRule {
    name: &'static str,
    kind: Kind,
    /// Allowed among: eq ne not in ge le startsWith endsWith null any count
    ops: &'static [&'static str],
}

const STD_STR: &[&str] = &["eq", "ne", "not", "in", "ge", "le", "startsWith"];

const RULES: &[PropertyRule] = &[
    PropertyRule {
        name: "id",
        kind: Kind::Str,
        ops: &["eq", "ne", "not", "in"],
    },
    PropertyRule {
        name: "userPrincipalName",
        kind: Kind::Str,
        ops: &[
            "eq",
            "ne",
            "not",
            "ge",
            "le",
            "in",
            "startsWith",
            "endsWith",
        ],
    },
    PropertyRule {
        name: "displayName",
        kind: Kind::Str,
        ops: &["eq", "ne", "not", "ge", "le", "in", "startsWith", "null"],
    },
    PropertyRule {
        name: "givenName",
        kind: Kind::Str,
        ops: &["eq", "ne", "not", "ge", "le", "in", "startsWith", "null"],
    },
    PropertyRule {
        name: "surname",
        kind: Kind::Str,
        ops: &["eq", "ne", "not", "ge", "le", "in", "startsWith", "null"],
    },
    PropertyRule {
        name: "preferredLanguage",
        kind: Kind::Str,
        ops: &["eq", "ne", "not", "ge", "le", "in", "startsWith", "null"],
    },
    PropertyRule {
        name: "jobTitle",
        kind: Kind::Str,
        ops: &["eq", "ne", "not", "ge", "le", "in", "startsWith", "null"],
    },
    PropertyRule {
        name: "mail",
        kind: Kind::Str,
        ops: &[
            "eq",
            "ne",
            "not",
            "ge",
            "le",
            "in",
            "startsWith",
            "endsWith",
            "null",
        ],
    },
    PropertyRule {
        name: "otherMails",
        kind: Kind::StrCollection,
        ops: &["any", "count", "eq", "startsWith", "endsWith"],
    },
    PropertyRule {
        name: "proxyAddresses",
        kind: Kind::StrCollection,
        ops: &["any", "count", "eq", "startsWith", "endsWith"],
    },
    PropertyRule {
        name: "userType",
        kind: Kind::Str,
        ops: &["eq", "ne", "not", "in", "null"],
    },
    PropertyRule {
        name: "onPremisesSyncEnabled",
        kind: Kind::Bool,
        ops: &["eq", "ne", "not", "in", "null"],
    },
    PropertyRule {
        name: "onPremisesImmutableId",
        kind: Kind::Str,
        ops: &["eq", "ne", "not", "ge", "le", "in"],
    },
    PropertyRule {
        name: "onPremisesSamAccountName",
        kind: Kind::Str,
        ops: STD_STR,
    },
    PropertyRule {
        name: "onPremisesUserPrincipalName",
        kind: Kind::Str,
        ops: STD_STR,
    },
    PropertyRule {
        name: "externalUserState",
        kind: Kind::Str,
        ops: &["eq", "ne", "not", "in"],
    },
    PropertyRule {
        name: "creationType",
        kind: Kind::Str,
        ops: &["eq", "ne", "not", "in"],
    },
    PropertyRule {
        name: "accountEnabled",
        kind: Kind::Bool,
        ops: &["eq", "ne", "not", "in"],
    },
    PropertyRule {
        name: "assignedLicenses",
        kind: Kind::ComplexCollection,
        ops: &["count"],
    },
];

fn rule_for(name: &str) -> Result<&'static PropertyRule, QueryError> {
    if let Some(rule) = RULES.iter().find(|r| r.name.eq_ignore_ascii_case(name)) {
        return Ok(rule);
    }
    if USER_PROPERTIES.iter().any(|p| p.eq_ignore_ascii_case(name)) {
        return Err(unsupported_property(name));
    }
    Err(bad(format!(
        "Could not find a property named '{name}' on type 'microsoft.graph.user'."
    )))
}

fn unsupported_property(name: &str) -> QueryError {
    unsupported(format!(
        "Unsupported or invalid query filter clause specified for property '{name}' of resource 'User'."
    ))
}

fn needs_eventual(operator: &str) -> QueryError {
    unsupported(format!(
        "Operator '{operator}' is not supported because the 'ConsistencyLevel:eventual' header is missing. Refer to https://aka.ms/graph-docs/advanced-queries for more information"
    ))
}

/// A literal in a filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Bool(bool),
    Null,
    Int(i64),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Ge,
    Le,
    Gt,
    Lt,
}

/// A parsed `$filter` expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Compare {
        property: String,
        op: CmpOp,
        value: Literal,
    },
    In {
        property: String,
        values: Vec<Literal>,
    },
    StartsWith {
        property: String,
        prefix: String,
    },
    EndsWith {
        property: String,
        suffix: String,
    },
    /// `coll/any(x: x eq 'v')`, `coll/any(x: startsWith(x,'v'))`, `coll/any(x: endsWith(x,'v'))`.
    Any {
        property: String,
        op: &'static str,
        value: String,
    },
    /// `coll/$count <op> n`.
    Count {
        property: String,
        op: CmpOp,
        value: i64,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Int(i64),
    Open,
    Close,
    Comma,
    Colon,
    Slash,
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, QueryError> {
    let syntax = |pos: usize| {
        bad(format!(
            "Invalid filter clause: Syntax error at position {pos} in '{text}'."
        ))
    };
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => i += 1,
            '(' | ')' | ',' | ':' | '/' => {
                let token = match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    ',' => Token::Comma,
                    ':' => Token::Colon,
                    _ => Token::Slash,
                };
                tokens.push((i, token));
                i += 1;
            }
            '\'' => {
                let start = i;
                let Some((value, next)) = string_literal(&chars, i) else {
                    return Err(bad(format!(
                        "Invalid filter clause: There is an unterminated string literal at position {start} in '{text}'."
                    )));
                };
                i = next;
                tokens.push((start, Token::Str(value)));
            }
            c if c.is_ascii_digit() || c == '-' => {
                let start = i;
                let mut s = String::new();
                s.push(c);
                i += 1;
                while let Some(d) = chars
                    .get(i)
                    .filter(|d| d.is_ascii_alphanumeric() || **d == '-')
                {
                    s.push(*d);
                    i += 1;
                }
                match s.parse::<i64>() {
                    Ok(n) => tokens.push((start, Token::Int(n))),
                    // An unquoted GUID (e.g. `skuId eq 6fd2...`) reads as an identifier.
                    Err(_) => tokens.push((start, Token::Ident(s))),
                }
            }
            c if c.is_alphabetic() || c == '$' || c == '_' => {
                let start = i;
                let mut s = String::new();
                while let Some(d) = chars
                    .get(i)
                    .filter(|d| d.is_alphanumeric() || **d == '$' || **d == '_' || **d == '.')
                {
                    s.push(*d);
                    i += 1;
                }
                tokens.push((start, Token::Ident(s)));
            }
            _ => return Err(syntax(i)),
        }
    }
    Ok(tokens)
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<(usize, Token)>,
    pos: usize,
    advanced: bool,
}

impl Filter {
    /// The prefix when the whole filter is `startsWith(userPrincipalName,'…')`: a directory
    /// scan may skip users it can tell do not match without building them.
    pub fn upn_prefix(&self) -> Option<&str> {
        match self {
            Self::StartsWith { property, prefix } if property == "userPrincipalName" => {
                Some(prefix)
            }
            _ => None,
        }
    }

    /// Parses a `$filter`; `advanced` = `ConsistencyLevel: eventual` and `$count=true`.
    pub fn parse(text: &str, advanced: bool) -> Result<Self, QueryError> {
        let tokens = tokenize(text)?;
        let mut parser = Parser {
            text,
            tokens,
            pos: 0,
            advanced,
        };
        let filter = parser.or()?;
        if parser.pos != parser.tokens.len() {
            return Err(parser.syntax());
        }
        let clauses = filter.or_clauses();
        if clauses > MAX_OR_CLAUSES {
            return Err(unsupported(format!(
                "Too many child clauses specified in search filter expression containing 'OR' operators: {clauses}. Max allowed: {MAX_OR_CLAUSES}."
            )));
        }
        Ok(filter)
    }

    /// The property names the filter refers to.
    pub fn properties(&self) -> Vec<&str> {
        match self {
            Self::And(a, b) | Self::Or(a, b) => {
                let mut names = a.properties();
                names.extend(b.properties());
                names
            }
            Self::Not(a) => a.properties(),
            Self::Compare { property, .. }
            | Self::In { property, .. }
            | Self::StartsWith { property, .. }
            | Self::EndsWith { property, .. }
            | Self::Any { property, .. }
            | Self::Count { property, .. } => vec![property.as_str()],
        }
    }

    /// Child clauses of the widest `or`/`in` expression (Graph allows at most 15).
    fn or_clauses(&self) -> usize {
        match self {
            Self::Or(a, b) => a.or_clauses() + b.or_clauses(),
            Self::And(a, b) => a.or_clauses().max(b.or_clauses()),
            Self::Not(a) => a.or_clauses(),
            Self::In { values, .. } => values.len(),
            _ => 1,
        }
    }

    /// Evaluates the filter against a user.
    pub fn matches(&self, user: &User) -> bool {
        match self {
            Self::And(a, b) => a.matches(user) && b.matches(user),
            Self::Or(a, b) => a.matches(user) || b.matches(user),
            Self::Not(a) => !a.matches(user),
            Self::Compare {
                property,
                op,
                value,
            } => compare(&scalar(user, property), *op, value),
            Self::In { property, values } => {
                let actual = scalar(user, property);
                values.iter().any(|v| compare(&actual, CmpOp::Eq, v))
            }
            Self::StartsWith { property, prefix } => text_of(&scalar(user, property))
                .is_some_and(|s| s.to_lowercase().starts_with(&prefix.to_lowercase())),
            Self::EndsWith { property, suffix } => text_of(&scalar(user, property))
                .is_some_and(|s| s.to_lowercase().ends_with(&suffix.to_lowercase())),
            Self::Any {
                property,
                op,
                value,
            } => {
                let value = value.to_lowercase();
                collection(user, property).iter().any(|item| {
                    let item = item.to_lowercase();
                    match *op {
                        "startsWith" => item.starts_with(&value),
                        "endsWith" => item.ends_with(&value),
                        _ => item == value,
                    }
                })
            }
            Self::Count {
                property,
                op,
                value,
            } => {
                let n = match property.as_str() {
                    "assignedLicenses" => user.assigned_licenses.len(),
                    other => collection(user, other).len(),
                };
                let n = i64::try_from(n).unwrap_or(i64::MAX);
                match op {
                    CmpOp::Eq => n == *value,
                    CmpOp::Ne => n != *value,
                    CmpOp::Ge => n >= *value,
                    CmpOp::Le => n <= *value,
                    CmpOp::Gt => n > *value,
                    CmpOp::Lt => n < *value,
                }
            }
        }
    }
}

fn scalar(user: &User, property: &str) -> Literal {
    let text = |v: &Option<String>| v.clone().map_or(Literal::Null, Literal::Str);
    let flag = |v: Option<bool>| v.map_or(Literal::Null, Literal::Bool);
    match property {
        "id" => Literal::Str(user.id.clone()),
        "userPrincipalName" => Literal::Str(user.user_principal_name.clone()),
        "displayName" => text(&user.display_name),
        "givenName" => text(&user.given_name),
        "surname" => text(&user.surname),
        "jobTitle" => text(&user.job_title),
        "preferredLanguage" => text(&user.preferred_language),
        "mail" => text(&user.mail),
        "userType" => text(&user.user_type),
        "onPremisesSyncEnabled" => flag(user.on_premises_sync_enabled),
        "onPremisesImmutableId" => text(&user.on_premises_immutable_id),
        "onPremisesSamAccountName" => text(&user.on_premises_sam_account_name),
        "onPremisesUserPrincipalName" => text(&user.on_premises_user_principal_name),
        "externalUserState" => text(&user.external_user_state),
        "creationType" => text(&user.creation_type),
        "accountEnabled" => flag(user.account_enabled),
        _ => Literal::Null,
    }
}

fn collection<'u>(user: &'u User, property: &str) -> &'u [String] {
    match property {
        "otherMails" => &user.other_mails,
        "proxyAddresses" => &user.proxy_addresses,
        _ => &[],
    }
}

fn text_of(value: &Literal) -> Option<&str> {
    match value {
        Literal::Str(s) => Some(s),
        _ => None,
    }
}

fn compare(actual: &Literal, op: CmpOp, expected: &Literal) -> bool {
    use std::cmp::Ordering;
    let ordering = match (actual, expected) {
        (Literal::Str(a), Literal::Str(b)) => Some(a.to_lowercase().cmp(&b.to_lowercase())),
        (Literal::Bool(a), Literal::Bool(b)) => Some(a.cmp(b)),
        (Literal::Null, Literal::Null) => Some(Ordering::Equal),
        _ => None,
    };
    match (op, ordering) {
        (CmpOp::Eq, Some(o)) => o == Ordering::Equal,
        (CmpOp::Ne, Some(o)) => o != Ordering::Equal,
        (CmpOp::Ne, None) => true,
        (CmpOp::Ge, Some(o)) => o != Ordering::Less,
        (CmpOp::Le, Some(o)) => o != Ordering::Greater,
        (CmpOp::Gt, Some(o)) => o == Ordering::Greater,
        (CmpOp::Lt, Some(o)) => o == Ordering::Less,
        _ => false,
    }
}

impl Parser<'_> {
    fn syntax(&self) -> QueryError {
        let at = self
            .tokens
            .get(self.pos)
            .map_or(self.text.len(), |(p, _)| *p);
        bad(format!(
            "Invalid filter clause: Syntax error at position {at} in '{}'.",
            self.text
        ))
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(_, t)| t)
    }

    fn next(&mut self) -> Result<Token, QueryError> {
        let token = self
            .tokens
            .get(self.pos)
            .map(|(_, t)| t.clone())
            .ok_or_else(|| self.syntax())?;
        self.pos += 1;
        Ok(token)
    }

    fn expect(&mut self, token: &Token) -> Result<(), QueryError> {
        if self.peek() == Some(token) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.syntax())
        }
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Ident(w)) if w == word)
    }

    fn or(&mut self) -> Result<Filter, QueryError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.pos += 1;
            let right = self.and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, QueryError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.pos += 1;
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, QueryError> {
        if self.keyword("not") {
            self.pos += 1;
            if !self.advanced {
                return Err(needs_eventual("Not"));
            }
            let inner = self.unary()?;
            Self::check_not(&inner)?;
            return Ok(Filter::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn check_not(inner: &Filter) -> Result<(), QueryError> {
        match inner {
            Filter::Compare { property, .. }
            | Filter::In { property, .. }
            | Filter::StartsWith { property, .. } => {
                let rule = rule_for(property)?;
                if rule.ops.contains(&"not") || rule.kind == Kind::StrCollection {
                    Ok(())
                } else {
                    Err(unsupported_property(property))
                }
            }
            _ => Ok(()),
        }
    }

    fn literal(&mut self) -> Result<Literal, QueryError> {
        match self.next()? {
            Token::Str(s) => Ok(Literal::Str(s)),
            Token::Int(n) => Ok(Literal::Int(n)),
            Token::Ident(w) if w == "true" => Ok(Literal::Bool(true)),
            Token::Ident(w) if w == "false" => Ok(Literal::Bool(false)),
            Token::Ident(w) if w == "null" => Ok(Literal::Null),
            _ => {
                self.pos -= 1;
                Err(self.syntax())
            }
        }
    }

    fn string_literal(&mut self) -> Result<String, QueryError> {
        match self.literal()? {
            Literal::Str(s) => Ok(s),
            _ => Err(bad("Invalid filter clause: a string literal was expected.")),
        }
    }

    fn primary(&mut self) -> Result<Filter, QueryError> {
        if self.peek() == Some(&Token::Open) {
            self.pos += 1;
            let inner = self.or()?;
            self.expect(&Token::Close)?;
            return Ok(inner);
        }
        let Token::Ident(name) = self.next()? else {
            self.pos -= 1;
            return Err(self.syntax());
        };
        if self.peek() == Some(&Token::Open) {
            return self.function(&name);
        }
        let rule = rule_for(&name)?;
        let property = rule.name.to_owned();
        if self.peek() == Some(&Token::Slash) {
            self.pos += 1;
            return self.collection_clause(rule);
        }
        let Token::Ident(op) = self.next()? else {
            self.pos -= 1;
            return Err(self.syntax());
        };
        if op == "in" {
            if !rule.ops.contains(&"in") {
                return Err(unsupported_property(&property));
            }
            self.expect(&Token::Open)?;
            let mut values = vec![self.literal()?];
            while self.peek() == Some(&Token::Comma) {
                self.pos += 1;
                values.push(self.literal()?);
            }
            self.expect(&Token::Close)?;
            for value in &values {
                check_type(rule, value, "In")?;
            }
            return Ok(Filter::In { property, values });
        }
        let op = match op.as_str() {
            "eq" => CmpOp::Eq,
            "ne" => CmpOp::Ne,
            "ge" => CmpOp::Ge,
            "le" => CmpOp::Le,
            "gt" => CmpOp::Gt,
            "lt" => CmpOp::Lt,
            _ => {
                self.pos -= 1;
                return Err(self.syntax());
            }
        };
        let value = self.literal()?;
        if rule.kind == Kind::StrCollection || rule.kind == Kind::ComplexCollection {
            return Err(unsupported_property(&property));
        }
        let op_name = match op {
            CmpOp::Eq => "eq",
            CmpOp::Ne => "ne",
            CmpOp::Ge | CmpOp::Gt => "ge",
            CmpOp::Le | CmpOp::Lt => "le",
        };
        if value == Literal::Null {
            if !rule.ops.contains(&"null") || !matches!(op, CmpOp::Eq | CmpOp::Ne) {
                return Err(unsupported_property(&property));
            }
        } else if !rule.ops.contains(&op_name) {
            return Err(unsupported_property(&property));
        }
        check_type(rule, &value, "Equal")?;
        if op == CmpOp::Ne && !self.advanced {
            return Err(needs_eventual("NotEqual"));
        }
        Ok(Filter::Compare {
            property,
            op,
            value,
        })
    }

    fn function(&mut self, name: &str) -> Result<Filter, QueryError> {
        let kind = match name.to_ascii_lowercase().as_str() {
            "startswith" => "startsWith",
            "endswith" => "endsWith",
            _ => {
                return Err(bad(format!(
                    "Invalid filter clause: An unknown function with name '{name}' was found."
                )));
            }
        };
        self.expect(&Token::Open)?;
        let Token::Ident(property) = self.next()? else {
            self.pos -= 1;
            return Err(self.syntax());
        };
        let rule = rule_for(&property)?;
        self.expect(&Token::Comma)?;
        let value = self.string_literal()?;
        self.expect(&Token::Close)?;
        if !rule.ops.contains(&kind) || rule.kind != Kind::Str {
            return Err(unsupported_property(rule.name));
        }
        let property = rule.name.to_owned();
        if kind == "endsWith" {
            if !self.advanced {
                return Err(needs_eventual("EndsWith"));
            }
            return Ok(Filter::EndsWith {
                property,
                suffix: value,
            });
        }
        Ok(Filter::StartsWith {
            property,
            prefix: value,
        })
    }

    fn collection_clause(&mut self, rule: &PropertyRule) -> Result<Filter, QueryError> {
        let property = rule.name.to_owned();
        match self.next()? {
            Token::Ident(word) if word == "$count" => {
                if !rule.ops.contains(&"count") {
                    return Err(unsupported_property(&property));
                }
                let Token::Ident(op) = self.next()? else {
                    return Err(self.syntax());
                };
                let op = match op.as_str() {
                    "eq" => CmpOp::Eq,
                    "ne" => CmpOp::Ne,
                    _ => return Err(unsupported_property(&property)),
                };
                let Token::Int(value) = self.next()? else {
                    return Err(self.syntax());
                };
                if !self.advanced {
                    return Err(needs_eventual("Count"));
                }
                Ok(Filter::Count {
                    property,
                    op,
                    value,
                })
            }
            Token::Ident(word) if word == "any" => {
                if rule.kind != Kind::StrCollection {
                    return Err(unsupported_property(&property));
                }
                self.expect(&Token::Open)?;
                let Token::Ident(var) = self.next()? else {
                    return Err(self.syntax());
                };
                self.expect(&Token::Colon)?;
                let (op, value) = match self.next()? {
                    Token::Ident(v) if v == var => match self.next()? {
                        Token::Ident(op) if op == "eq" => ("eq", self.string_literal()?),
                        _ => return Err(unsupported_property(&property)),
                    },
                    Token::Ident(f)
                        if f.eq_ignore_ascii_case("startsWith")
                            || f.eq_ignore_ascii_case("endsWith") =>
                    {
                        self.expect(&Token::Open)?;
                        let Token::Ident(v) = self.next()? else {
                            return Err(self.syntax());
                        };
                        if v != var {
                            return Err(self.syntax());
                        }
                        self.expect(&Token::Comma)?;
                        let value = self.string_literal()?;
                        self.expect(&Token::Close)?;
                        if f.eq_ignore_ascii_case("endsWith") {
                            if !self.advanced {
                                return Err(needs_eventual("EndsWith"));
                            }
                            ("endsWith", value)
                        } else {
                            ("startsWith", value)
                        }
                    }
                    _ => return Err(self.syntax()),
                };
                self.expect(&Token::Close)?;
                Ok(Filter::Any {
                    property,
                    op,
                    value,
                })
            }
            _ => Err(self.syntax()),
        }
    }
}

fn check_type(rule: &PropertyRule, value: &Literal, operator: &str) -> Result<(), QueryError> {
    let ok = matches!(
        (rule.kind, value),
        (_, Literal::Null) | (Kind::Str, Literal::Str(_)) | (Kind::Bool, Literal::Bool(_))
    );
    if ok {
        return Ok(());
    }
    let expected = if rule.kind == Kind::Bool {
        "Edm.Boolean"
    } else {
        "Edm.String"
    };
    let found = match value {
        Literal::Str(_) => "Edm.String",
        Literal::Bool(_) => "Edm.Boolean",
        Literal::Int(_) => "Edm.Int32",
        Literal::Null => "null",
    };
    Err(bad(format!(
        "Invalid filter clause: A binary operator with incompatible types was detected. Found operand types '{expected}' and '{found}' for operator kind '{operator}'."
    )))
}

/// The OData string literal whose opening quote is at `chars[open]`, with `''` read as one
/// quote, and the index just after its closing quote; `None` when it is not closed.
pub(crate) fn string_literal(chars: &[char], open: usize) -> Option<(String, usize)> {
    let mut value = String::new();
    let mut i = open + 1;
    loop {
        match chars.get(i)? {
            '\'' if chars.get(i + 1) == Some(&'\'') => {
                value.push('\'');
                i += 2;
            }
            '\'' => return Some((value, i + 1)),
            other => {
                value.push(*other);
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{GeneratedTenant, UserCase};

    fn user_of(case: UserCase) -> User {
        let tenant = GeneratedTenant::new(11, 3000);
        tenant.user(tenant.find(case, 0).expect("case present"))
    }

    #[test]
    fn the_tool_filters_parse_and_match() {
        let synced = user_of(UserCase::SyncedConvertible);
        let cloud = user_of(UserCase::CloudMailExternal);
        let disabled = user_of(UserCase::Disabled);
        let f = Filter::parse(
            "userType eq 'Member' and onPremisesSyncEnabled eq true",
            false,
        )
        .expect("parses");
        assert!(f.matches(&synced));
        assert!(!f.matches(&cloud));
        let f = Filter::parse("accountEnabled eq false", false).expect("parses");
        assert!(f.matches(&disabled) && !f.matches(&cloud));
        let prefix: String = cloud.user_principal_name.chars().take(6).collect();
        let f = Filter::parse(
            &format!("startsWith(userPrincipalName,'{}')", prefix.to_uppercase()),
            false,
        )
        .expect("parses");
        assert!(f.matches(&cloud));
        let f = Filter::parse(
            &format!("id in ('{}', '{}')", synced.id, disabled.id),
            false,
        )
        .expect("parses");
        assert!(f.matches(&synced) && f.matches(&disabled) && !f.matches(&cloud));
        let f = Filter::parse("(userType eq 'Guest') or (accountEnabled eq false)", false)
            .expect("parses");
        assert!(f.matches(&disabled) && !f.matches(&cloud));
    }

    #[test]
    fn doubled_quotes_are_one_quote() {
        let Filter::Compare { value, .. } =
            Filter::parse("userPrincipalName eq 'it''s@x.com'", false).expect("parses")
        else {
            panic!("a comparison")
        };
        assert_eq!(value, Literal::Str("it's@x.com".to_owned()));
    }

    #[test]
    fn advanced_operators_need_eventual_consistency() {
        for text in [
            "userType ne 'Guest'",
            "endsWith(mail,'@fabrikam.com')",
            "not(accountEnabled eq true)",
            "assignedLicenses/$count eq 0",
        ] {
            let error = Filter::parse(text, false).expect_err(text);
            assert_eq!(error.code, "Request_UnsupportedQuery", "{text}");
            assert!(Filter::parse(text, true).is_ok(), "{text} with advanced");
        }
    }

    #[test]
    fn unsupported_filters_fail_instead_of_being_ignored() {
        let cases = [
            (
                "onPremisesDistinguishedName eq 'x'",
                "Request_UnsupportedQuery",
            ),
            ("externalUserState eq null", "Request_UnsupportedQuery"),
            ("nosuchProperty eq 'x'", "BadRequest"),
            ("userType eq", "BadRequest"),
            ("accountEnabled eq 'yes'", "BadRequest"),
            ("contains(mail,'x')", "BadRequest"),
            (
                "userType eq 'Member' xor accountEnabled eq true",
                "BadRequest",
            ),
        ];
        for (text, code) in cases {
            assert_eq!(
                Filter::parse(text, true).expect_err(text).code,
                code,
                "{text}"
            );
        }
    }

    #[test]
    fn at_most_fifteen_or_clauses() {
        let ids = |n: usize| {
            (0..n)
                .map(|i| format!("'{i}'"))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert!(Filter::parse(&format!("id in ({})", ids(15)), false).is_ok());
        let error = Filter::parse(&format!("id in ({})", ids(16)), false).expect_err("16 values");
        assert_eq!(error.code, "Request_UnsupportedQuery");
        assert!(error.message.contains("Max allowed: 15"));
        let ors = (0..16)
            .map(|i| format!("userPrincipalName eq '{i}'"))
            .collect::<Vec<_>>()
            .join(" or ");
        assert!(Filter::parse(&ors, false).is_err());
    }

    #[test]
    fn lambda_on_other_mails() {
        let user = user_of(UserCase::CloudOtherMailOnly);
        let address = user.other_mails[0].clone();
        let f = Filter::parse(
            &format!("otherMails/any(m:m eq '{}')", address.to_uppercase()),
            false,
        )
        .expect("parses");
        assert!(f.matches(&user));
        let f = Filter::parse("otherMails/any(m:startsWith(m,'zzz'))", false).expect("parses");
        assert!(!f.matches(&user));
    }
}
