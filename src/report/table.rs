//! The terminal report (`report`, the default format): the wave's header, users by decision
//! and by reason, the wave's own findings, the partner pre-flight per domain, users by state
//! after a run, then the first blocked users with what to do about each.
//!
//! Owns the plain-text layout only. It stays short at any wave size: the blocked users are
//! capped at [`BLOCKED_USERS_SHOWN`]; the CSV has them all. Text from the directory passes
//! through `text::terminal_safe` so it cannot send escape sequences to the terminal.

use std::fmt::Write as _;

use crate::domain::Decision;
use crate::output::table;
use crate::rules::Finding;

use super::summary::Summary;
use super::text::{human_time, severity_code};
use super::{ReportData, ReportMember};
use crate::output::terminal_safe;

/// How many blocked users the terminal report lists before pointing to the CSV.
pub const BLOCKED_USERS_SHOWN: usize = 50;

/// Renders the terminal report.
pub fn render_table(data: &ReportData) -> String {
    let summary = Summary::of(data);
    let mut text = header(data);
    section(&mut text, "Decisions", &decisions(&summary));
    section(&mut text, "Reasons", &reasons(&summary));
    if !data.wave_findings.is_empty() {
        section(
            &mut text,
            "Wave findings (they apply to every user)",
            &wave_findings(&data.wave_findings),
        );
    }
    if !data.partner_preflight.is_empty() {
        section(
            &mut text,
            "Partner pre-flight (can redemption be automatic?)",
            &partner_preflight(data),
        );
    }
    if data.wave.started {
        section(&mut text, "States", &states(&summary));
    }
    for warning in &data.warnings {
        text.push_str("\nWarning: ");
        text.push_str(&terminal_safe(warning));
        text.push('\n');
    }
    blocked_users(&mut text, data, summary.blocked);
    text
}

fn header(data: &ReportData) -> String {
    let wave = &data.wave;
    let tenant = match (&data.tenant.name, &data.tenant.id) {
        (Some(name), Some(id)) => format!("{} ({id})", terminal_safe(name)),
        (Some(name), None) => terminal_safe(name),
        (None, Some(id)) => id.clone(),
        (None, None) => "unknown".to_owned(),
    };
    let planned = match (wave.planned_at, &wave.plan_hash) {
        (Some(at), Some(hash)) => format!("{} (plan {hash})", human_time(at)),
        (Some(at), None) => human_time(at),
        (None, _) => "not planned yet".to_owned(),
    };
    let cap = wave
        .cap
        .map_or_else(String::new, |cap| format!(" (cap {cap})"));
    let mut text = format!("Wave:       {}\n", terminal_safe(&wave.name));
    let _ = writeln!(text, "Tenant:     {tenant}");
    let _ = writeln!(text, "Planned at: {planned}");
    let _ = writeln!(text, "Users:      {}{cap}", data.members.len());
    let _ = writeln!(
        text,
        "Generated:  {} by b2b-convert {}",
        human_time(data.generated_at),
        data.tool_version
    );
    text
}

fn section(text: &mut String, title: &str, body: &str) {
    let _ = write!(text, "\n{title}\n{body}");
}

fn decisions(summary: &Summary) -> String {
    table(
        ["DECISION", "USERS"],
        [
            [
                Decision::Eligible.code().to_owned(),
                summary.eligible.to_string(),
            ],
            [
                Decision::Blocked.code().to_owned(),
                summary.blocked.to_string(),
            ],
            [
                "(with warnings)".to_owned(),
                summary.with_warnings.to_string(),
            ],
            ["(set mail first)".to_owned(), summary.set_mail.to_string()],
        ],
    )
}

fn reasons(summary: &Summary) -> String {
    if summary.reasons.is_empty() {
        return "none\n".to_owned();
    }
    table(
        ["CODE", "SEVERITY", "USERS", "SUMMARY"],
        summary.reasons.iter().map(|count| {
            [
                count.reason.code().to_owned(),
                severity_code(count.severity).to_owned(),
                count.users.to_string(),
                count.reason.summary().to_owned(),
            ]
        }),
    )
}

/// How many domains the pre-flight section lists before pointing to the JSON and HTML.
pub const PREFLIGHT_DOMAINS_SHOWN: usize = 20;

fn partner_preflight(data: &ReportData) -> String {
    let rows = &data.partner_preflight;
    let mut text = table(
        ["DOMAIN", "USERS", "REDEMPTION", "WHY"],
        rows.iter().take(PREFLIGHT_DOMAINS_SHOWN).map(|row| {
            [
                terminal_safe(&row.domain),
                row.users.to_string(),
                row.redemption.label().to_owned(),
                row.reason.label().to_owned(),
            ]
        }),
    );
    if rows.len() > PREFLIGHT_DOMAINS_SHOWN {
        let _ = writeln!(
            text,
            "… and {} more domain(s): see the JSON or HTML report",
            rows.len() - PREFLIGHT_DOMAINS_SHOWN
        );
    }
    text.push_str(
        "Automatic redemption also needs the partner tenant's outbound setting, which this \
         tenant cannot read.\n",
    );
    text
}

fn wave_findings(findings: &[Finding]) -> String {
    table(
        ["CODE", "SEVERITY", "DETAIL", "FIX"],
        findings.iter().map(|finding| {
            [
                finding.reason.code().to_owned(),
                severity_code(finding.severity).to_owned(),
                terminal_safe(&finding.detail),
                finding.reason.fix().to_owned(),
            ]
        }),
    )
}

fn states(summary: &Summary) -> String {
    table(
        ["STATE", "USERS"],
        summary
            .states
            .iter()
            .map(|(state, users)| [state.code().to_owned(), users.to_string()]),
    )
}

fn blocked_users(text: &mut String, data: &ReportData, blocked: usize) {
    if blocked == 0 {
        return;
    }
    let shown = data
        .members
        .iter()
        .filter(|member| member.decision == Decision::Blocked)
        .take(BLOCKED_USERS_SHOWN)
        .map(blocked_row);
    section(
        text,
        &format!("Blocked users ({blocked})"),
        &table(["USER", "REASONS", "FIX"], shown),
    );
    if blocked > BLOCKED_USERS_SHOWN {
        let _ = writeln!(
            text,
            "… and {} more; use --format csv (or html) to see them all",
            blocked - BLOCKED_USERS_SHOWN
        );
    }
}

fn blocked_row(member: &ReportMember) -> [String; 3] {
    let mut reasons: Vec<&str> = member.blockers().map(|f| f.reason.code()).collect();
    reasons.dedup();
    [
        terminal_safe(&member.user_principal_name),
        reasons.join(","),
        member.fix_hint().unwrap_or_default().to_owned(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testdata;

    #[test]
    fn shows_the_header_counts_reasons_and_blocked_users() {
        let text = render_table(&testdata::sample());
        assert!(text.starts_with("Wave:       pilot\n"), "{text}");
        assert!(
            text.contains("Tenant:     Contoso <Test> & Co (0b1c2d3e-"),
            "{text}"
        );
        assert!(
            text.contains("Planned at: 2026-11-20 08:05 UTC (plan 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08)"),
            "{text}"
        );
        assert!(text.contains("Users:      6 (cap 500)"), "{text}");
        assert!(
            text.contains("\neligible          3\nblocked           3\n"),
            "{text}"
        );
        assert!(
            text.contains("exchange-mailbox   blocker   1      the user has an Exchange"),
            "{text}"
        );
        assert!(text.contains("custom-message-dropped  warning"), "{text}");
        assert!(text.contains("Blocked users (3)"), "{text}");
        assert!(
            text.contains(
                "carol@contoso.example    exchange-mailbox   remove the Exchange licence"
            ),
            "{text}"
        );
        assert!(!text.contains("States"), "no states before a run: {text}");
        assert!(!text.contains("more; use"), "{text}");
    }

    #[test]
    fn shows_the_partner_preflight_per_domain_and_caps_it() {
        let text = render_table(&testdata::sample());
        assert!(
            text.contains("\nPartner pre-flight (can redemption be automatic?)\nDOMAIN"),
            "{text}"
        );
        assert!(
            text.contains("partner.example  3      automatic if the partner allows it"),
            "{text}"
        );
        assert!(text.contains("not an Entra tenant"), "{text}");
        assert!(text.contains("which this tenant cannot read"), "{text}");

        let mut data = testdata::synthetic(50, false);
        data.partner_preflight = (0..PREFLIGHT_DOMAINS_SHOWN + 3)
            .map(|k| {
                let mut row = data.partner_preflight[0].clone();
                row.domain = format!("d{k}.example");
                row
            })
            .collect();
        let text = render_table(&data);
        assert!(text.contains("d19.example"), "{text}");
        assert!(!text.contains("d20.example"), "{text}");
        assert!(text.contains("… and 3 more domain(s)"), "{text}");
    }

    #[test]
    fn caps_the_blocked_users_and_says_how_many_are_left() {
        let data = testdata::synthetic(100_000, false);
        let blocked = Summary::of(&data).blocked;
        let text = render_table(&data);
        let more = blocked - BLOCKED_USERS_SHOWN;
        assert!(
            text.contains(&format!("… and {more} more; use --format csv")),
            "{text}"
        );
        assert!(text.lines().count() < 100, "{} lines", text.lines().count());
    }

    #[test]
    fn shows_states_after_a_run() {
        let text = render_table(&testdata::synthetic(200, true));
        assert!(text.contains("\nStates\nSTATE"), "{text}");
        assert!(text.contains("\naccepted "), "{text}");
    }

    #[test]
    fn directory_text_cannot_send_escape_sequences() {
        let mut data = testdata::sample();
        data.members[2].user_principal_name = "carol\u{1b}]0;pwned\u{7}@contoso.example".to_owned();
        let text = render_table(&data);
        assert!(!text.contains('\u{1b}'));
        assert!(!text.contains('\u{7}'));
    }
}
