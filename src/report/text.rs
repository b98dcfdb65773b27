//! Small text helpers the renderers share: times, plan hashes, and making directory data safe
//! to print on a terminal.
//!
//! Owns presentation of single values only; no layout.

use time::OffsetDateTime;
use time::macros::format_description;

use crate::rules::Severity;

use super::ReportMember;

/// A time for people: `2026-11-21 09:30 UTC`.
pub fn human_time(time: OffsetDateTime) -> String {
    time.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day] [hour]:[minute] UTC"
        ))
        .unwrap_or_else(|_| time.to_string())
}

/// The severity as the JSON report spells it.
pub const fn severity_code(severity: Severity) -> &'static str {
    match severity {
        Severity::Blocker => "blocker",
        Severity::Warning => "warning",
        Severity::Info => "info",
    }
}

/// The serde code of a kebab-case unit enum (`other-mails`, `managed`).
pub fn code_of(value: impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(code)) => code,
        other => unreachable!("a unit enum serialises as a string, not {other:?}"),
    }
}

/// A member's specifics in one line: each finding as `code (severity): detail`, then the last
/// error, joined by ` | `.
pub fn details(member: &ReportMember) -> String {
    let findings = member
        .findings
        .iter()
        .filter(|f| !f.detail.is_empty())
        .map(|f| {
            format!(
                "{} ({}): {}",
                f.reason.code(),
                severity_code(f.severity),
                f.detail
            )
        });
    let error = member.last_error.iter().map(|e| format!("last error: {e}"));
    let restore = member.mail_restore.iter().map(|m| m.label().to_owned());
    findings
        .chain(error)
        .chain(restore)
        .collect::<Vec<_>>()
        .join(" | ")
}

/// `1234567` -> `1,234,567`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn times_are_shown_in_utc_to_the_minute() {
        assert_eq!(
            human_time(datetime!(2026-11-21 10:30:59 +01:00)),
            "2026-11-21 09:30 UTC"
        );
    }

    #[test]
    fn severity_codes_match_the_json() {
        for severity in [Severity::Blocker, Severity::Warning, Severity::Info] {
            assert_eq!(
                serde_json::to_value(severity).unwrap(),
                serde_json::json!(severity_code(severity))
            );
        }
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
