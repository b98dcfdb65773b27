//! The HTML report: one self-contained file an operator can mail, archive or open offline.
//! Summary cards, inline SVG charts (made here, no chart library), the reasons, the wave's own
//! findings, a paged, sortable and filterable user table, and the settings the plan used.
//!
//! Owns the page's markup, its inline CSS and JS (`html/report.css`, `html/report.js`) and its
//! safety:
//! - nothing is loaded from anywhere: no external URL, and a Content-Security-Policy that
//!   forbids any fetch, so the file cannot leak data when opened;
//! - every value from the data is escaped with [`escape_html`]; the users travel once, as a
//!   JSON island in which `<` is written `\u003c`, so no display name can close the script;
//! - the script builds table cells with `textContent`, never `innerHTML`.
//!
//! It must stay usable at 100k users: the page holds each user once (in the island) and the
//! script renders one page of rows at a time.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::domain::{Decision, RealmKind, Redemption, UserState};
use crate::rules::{Finding, Reason, Severity};

use super::summary::{DomainCount, Summary};
use super::text::{code_of, details, human_time, severity_code, thousands};
use super::{ReportData, ReportExecution, ReportMember, ReportPreflight};

/// The policy in the page itself: inline style and script only, images only as `data:`, no
/// network access of any kind.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:";

/// How many users each printed list holds at most: beyond it, printing is not how such a wave
/// is reviewed (the CSV report lists everyone).
const PRINTED_USERS: usize = 10_000;

/// How many external domains the domain chart shows.
const DOMAINS_CHARTED: usize = 12;

const STYLE: &str = include_str!("html/report.css");
const SCRIPT: &str = include_str!("html/report.js");

/// Renders the HTML report.
pub fn render_html(data: &ReportData) -> String {
    let summary = Summary::of(data);
    let mut page = String::with_capacity(64 * 1024 + data.members.len() * 256);
    head(&mut page, data);
    page.push_str("<body>\n");
    page_header(&mut page, data);
    page.push_str("<main>\n");
    effects(&mut page, data, &summary);
    cards(&mut page, &summary, data.wave.started);
    reasons(&mut page, &summary);
    wave_findings(&mut page, &data.wave_findings);
    charts(&mut page, data, &summary);
    user_table(&mut page);
    printed_users(&mut page, data);
    settings(&mut page, data);
    sign_off(&mut page, data);
    page.push_str("</main>\n");
    footer(&mut page, data);
    data_island(&mut page, data, &summary);
    let _ = write!(page, "<script>\n{SCRIPT}</script>\n</body>\n</html>\n");
    page
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape_html(text: &str) -> Cow<'_, str> {
    if !text.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    Cow::Owned(escaped)
}

fn head(page: &mut String, data: &ReportData) {
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{CONTENT_SECURITY_POLICY}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"b2b-convert {}\">\n\
         <title>Wave {}: conversion report</title>\n<style>\n{STYLE}</style>\n</head>\n",
        escape_html(&data.tool_version),
        escape_html(&data.wave.name),
    );
}

fn page_header(page: &mut String, data: &ReportData) {
    let wave = &data.wave;
    let _ = write!(
        page,
        "<header>\n<h1>Wave <q>{}</q>: conversion report</h1>\n",
        escape_html(&wave.name)
    );
    let status = if wave.started {
        "<p class=\"status run\">The wave has been run: the states below come from the store.</p>\n"
    } else {
        "<p class=\"status dry\">Dry run: nothing has been changed in the tenant.</p>\n"
    };
    page.push_str(status);
    page.push_str("<dl class=\"meta\">\n");
    let tenant = [data.tenant.name.as_deref(), data.tenant.id.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" · ");
    meta(
        page,
        "Tenant",
        if tenant.is_empty() {
            "unknown"
        } else {
            &tenant
        },
    );
    let planned = wave
        .planned_at
        .map_or_else(|| "not planned yet".to_owned(), human_time);
    meta(page, "Planned at", &planned);
    if let Some(hash) = &wave.plan_hash {
        let _ = writeln!(
            page,
            "<dt>Plan hash</dt><dd><code class=\"hash\">{}</code></dd>",
            escape_html(hash)
        );
    }
    meta(page, "Selection", &selection_text(&wave.selector));
    let cap = wave.cap.map_or_else(
        || "none".to_owned(),
        |cap| thousands(usize::try_from(cap).unwrap_or(usize::MAX)),
    );
    meta(page, "Cap", &cap);
    meta(page, "Created at", &human_time(wave.created_at));
    meta(page, "Generated at", &human_time(data.generated_at));
    page.push_str("</dl>\n</header>\n");
}

fn meta(page: &mut String, term: &str, value: &str) {
    let _ = writeln!(page, "<dt>{term}</dt><dd>{}</dd>", escape_html(value));
}

/// A stored value as a reader sees it: text as is, nothing as "not set", lists joined.
fn plain_value(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "not set".to_owned(),
        serde_json::Value::Bool(true) => "yes".to_owned(),
        serde_json::Value::Bool(false) => "no".to_owned(),
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Array(items) if items.is_empty() => "none".to_owned(),
        serde_json::Value::Array(items) => {
            items.iter().map(plain_value).collect::<Vec<_>>().join(", ")
        }
        other => other.to_string(),
    }
}

/// A stored object flattened into `(dotted key, plain value)` rows, in the stored order.
fn flatten(prefix: &str, value: &serde_json::Value, rows: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(fields) => {
            for (key, field) in fields {
                let key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&key, field, rows);
            }
        }
        other => rows.push((prefix.to_owned(), plain_value(other))),
    }
}

/// The selection in one line (`users.kind: csv, users.path: pilot.csv`).
fn selection_text(selector: &serde_json::Value) -> String {
    let mut rows = Vec::new();
    flatten("", selector, &mut rows);
    rows.iter()
        .map(|(key, value)| format!("{key}: {value}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A stored object as a two-column table of settings.
fn settings_table(page: &mut String, value: &serde_json::Value) {
    let mut rows = Vec::new();
    flatten("", value, &mut rows);
    page.push_str(
        "<table class=\"settings\">\n<thead><tr><th scope=\"col\">Setting</th>\
         <th scope=\"col\">Value</th></tr></thead>\n<tbody>\n",
    );
    for (key, value) in rows {
        let _ = writeln!(
            page,
            "<tr><td><code>{}</code></td><td>{}</td></tr>",
            escape_html(&key),
            escape_html(&value)
        );
    }
    page.push_str("</tbody>\n</table>\n");
}

/// "What will happen": what the run sends, changes and asks for, from the plan and the
/// configuration; what a change board signs.
fn effects(page: &mut String, data: &ReportData, summary: &Summary) {
    let invitation = &data.settings["invitation"];
    let execution: &ReportExecution = &data.execution;
    let heading = if data.wave.started {
        "What the run does (the wave has started: the funnel below shows how far it got)"
    } else {
        "What will happen when the wave is run"
    };
    let _ = write!(
        page,
        "<section aria-labelledby=\"effects\">\n<h2 id=\"effects\">{heading}</h2>\n<ul class=\"effects\">\n"
    );
    let _ = writeln!(
        page,
        "<li><strong>{} invitation(s)</strong> (<code>POST /invitations</code>), one per eligible user: \
         each turns the existing account into a B2B collaboration user, keeping its object id, UPN, \
         groups and app assignments. <strong>This cannot be undone</strong> by the tool.</li>",
        thousands(summary.eligible)
    );
    let restore = if execution.restore_mail_on_failure {
        "put back if the invitation then fails for good"
    } else {
        "<strong>not</strong> put back if the invitation fails \
         (<code>invitation.restore_mail_on_failure</code> is off)"
    };
    let _ = writeln!(
        page,
        "<li><strong>{} <code>mail</code> change(s)</strong> (<code>PATCH /users/{{id}}</code>): \
         the user's <code>mail</code> is set to the invitation address first. The previous value is \
         recorded, and {restore}.</li>",
        thousands(summary.set_mail)
    );
    let message = match invitation["send_message"].as_bool() {
        Some(true) => {
            "<strong>Microsoft sends its invitation email</strong> to each invited address \
             (<code>sendInvitationMessage</code> is true)."
                .to_owned()
        }
        Some(false) => "<strong>Microsoft sends no email</strong>: the redemption links are kept \
             and written with <code>export-links</code> for your own mail merge."
            .to_owned(),
        None => "Whether Microsoft sends its email is not recorded with this plan.".to_owned(),
    };
    let _ = writeln!(page, "<li>{message}</li>");
    let _ = writeln!(
        page,
        "<li><strong>{} user(s) are not touched</strong>: they are blocked (reasons below).</li>",
        thousands(summary.blocked)
    );
    let rate = execution.invitations_per_second;
    if summary.eligible > 0 && rate > 0.0 {
        #[allow(clippy::cast_precision_loss)] // users: far below 2^52
        let seconds = summary.eligible as f64 / rate;
        let _ = writeln!(
            page,
            "<li>Expected duration: <strong>about {}</strong> at the configured pace of {} \
             invitation(s) per second (<code>throughput.max_invitations_per_second</code>), \
             more if the service throttles.</li>",
            escape_html(&duration_text(seconds)),
            escape_html(&format!("{rate}"))
        );
    }
    match execution.max_invitations_per_day {
        Some(quota) => {
            let days = summary
                .eligible
                .div_ceil(usize::try_from(quota).unwrap_or(usize::MAX));
            let _ = writeln!(
                page,
                "<li>Daily quota: at most <strong>{} invitation(s) in any 24 hours</strong> \
                 (<code>throughput.max_invitations_per_day</code>, counted across runs); the run \
                 stops at it and says when to resume: {} day(s) for this wave.</li>",
                thousands(usize::try_from(quota).unwrap_or(usize::MAX)),
                thousands(days)
            );
        }
        None => page.push_str(
            "<li>Daily quota: none set (<code>throughput.max_invitations_per_day</code>); \
             the service's own daily limits still apply.</li>\n",
        ),
    }
    for warning in &data.warnings {
        let _ = writeln!(
            page,
            "<li role=\"alert\"><strong>Warning:</strong> {}</li>",
            escape_html(warning)
        );
    }
    page.push_str("<li>Microsoft Graph permissions the run uses (least privileged):<ul>\n");
    for permission in &execution.permissions {
        let _ = writeln!(
            page,
            "<li><code>{}</code>: {}</li>",
            escape_html(&permission.permission),
            escape_html(&permission.purpose)
        );
    }
    page.push_str("</ul></li>\n</ul>\n</section>\n");
}

/// `95` -> "2 minutes", `5400` -> "1 h 30 min": an estimate, rounded up to the minute.
fn duration_text(seconds: f64) -> String {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // small, positive
    let minutes = (seconds / 60.0).ceil().max(1.0) as u64;
    match (minutes / 60, minutes % 60) {
        (0, 1) => "1 minute".to_owned(),
        (0, m) => format!("{m} minutes"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

fn cards(page: &mut String, summary: &Summary, started: bool) {
    page.push_str(
        "<section aria-labelledby=\"summary\">\n<h2 id=\"summary\">Summary</h2>\n<ul class=\"cards\">\n",
    );
    card(page, "users in the wave", summary.users, "");
    card(page, "eligible", summary.eligible, "ok");
    card(page, "blocked", summary.blocked, "bad");
    card(page, "with warnings", summary.with_warnings, "warn");
    card(page, "eligible, mail set first", summary.set_mail, "");
    if started {
        card(page, "invited", summary.invited(), "ok");
        card(page, "accepted", summary.accepted(), "ok");
        card(page, "failed", summary.in_state(UserState::Failed), "bad");
        card(
            page,
            "drifted",
            summary.in_state(UserState::Drifted),
            "warn",
        );
    }
    page.push_str(
        "</ul>\n<p class=\"note\">Every user of the wave is either eligible (the run invites them) or \
         blocked (the run does not touch them). <em>With warnings</em> counts users of either kind \
         with at least one warning; <em>eligible, mail set first</em> counts eligible users only. \
         The reasons table shows, per reason, all users with it and how many of them are eligible.</p>\n</section>\n",
    );
}

fn card(page: &mut String, label: &str, value: usize, tone: &str) {
    let _ = writeln!(
        page,
        "<li class=\"card {tone}\"><span class=\"number\">{}</span> <span class=\"label\">{label}</span></li>",
        thousands(value)
    );
}

/// One bar of a chart.
struct Bar {
    label: String,
    value: usize,
    /// CSS class giving its colour.
    class: &'static str,
}

impl Bar {
    fn new(label: impl Into<String>, value: usize, class: &'static str) -> Self {
        Self {
            label: label.into(),
            value,
            class,
        }
    }
}

fn charts(page: &mut String, data: &ReportData, summary: &Summary) {
    let started = data.wave.started;
    page.push_str(
        "<section aria-labelledby=\"charts\">\n<h2 id=\"charts\">Charts</h2>\n<div class=\"charts\">\n",
    );
    let decisions = [
        Bar::new(Decision::Eligible.code(), summary.eligible, "c-ok"),
        Bar::new(Decision::Blocked.code(), summary.blocked, "c-bad"),
    ];
    figure(page, "chart-decisions", "Users by decision", &decisions, "");
    let blockers: Vec<Bar> = summary
        .reasons_of(Severity::Blocker)
        .map(|count| Bar::new(count.reason.code(), count.users, "c-bad"))
        .collect();
    figure(
        page,
        "chart-blockers",
        "Blocked users by reason",
        &blockers,
        "A user can have several blockers.",
    );
    domains_figure(page, summary);
    preflight_figure(page, &data.partner_preflight);
    if started {
        funnel_figure(page, summary);
    }
    page.push_str("</div>\n</section>\n");
}

/// A chart with its caption; `note_html` is trusted markup (constants and numbers only).
fn figure(page: &mut String, id: &str, title: &str, bars: &[Bar], note_html: &str) {
    let _ = write!(
        page,
        "<figure>\n<figcaption id=\"{id}\">{title}</figcaption>\n"
    );
    if bars.iter().all(|bar| bar.value == 0) {
        page.push_str("<p class=\"empty\">None.</p>\n");
    } else {
        page.push_str(&bar_chart(id, title, bars));
    }
    if !note_html.is_empty() {
        let _ = writeln!(page, "<p class=\"note\">{note_html}</p>");
    }
    page.push_str("</figure>\n");
}

fn domains_figure(page: &mut String, summary: &Summary) {
    let bars: Vec<Bar> = summary
        .domains
        .iter()
        .take(DOMAINS_CHARTED)
        .map(|domain| Bar::new(domain.domain.clone(), domain.users, realm_class(domain)))
        .collect();
    let mut note = if bars.len() < summary.domains.len() {
        format!(
            "The top {} of {} external domains by users, coloured by home realm.",
            bars.len(),
            thousands(summary.domains.len())
        )
    } else {
        "Every external domain by users, coloured by home realm.".to_owned()
    };
    match summary.without_address {
        0 => {}
        1 => note.push_str(" 1 user has no address."),
        n => {
            let _ = write!(note, " {} users have no address.", thousands(n));
        }
    }
    note.push_str(
        "</p>\n<ul class=\"legend\">\
         <li><span class=\"swatch c-managed\"></span>managed (Entra ID)</li>\
         <li><span class=\"swatch c-federated\"></span>federated (Entra ID + IdP)</li>\
         <li><span class=\"swatch c-unknown\"></span>unknown (no Entra tenant)</li>\
         <li><span class=\"swatch c-unchecked\"></span>not checked</li></ul><p class=\"note\">\
         Realm discovery is advisory.",
    );
    figure(
        page,
        "chart-domains",
        "External domains and their realm",
        &bars,
        &note,
    );
}

/// The partner pre-flight beside the realm chart: the domains with the most users, what
/// redemption will be like at each, and why.
fn preflight_figure(page: &mut String, rows: &[ReportPreflight]) {
    page.push_str(
        "<figure id=\"preflight\">\n<figcaption id=\"preflight-title\">Partner pre-flight: \
         can redemption be automatic?</figcaption>\n",
    );
    if rows.is_empty() {
        page.push_str("<p class=\"empty\">No external domains.</p>\n</figure>\n");
        return;
    }
    page.push_str(
        "<div class=\"scroll\"><table class=\"preflight\" aria-labelledby=\"preflight-title\">\n\
         <thead><tr><th scope=\"col\">Domain</th><th scope=\"col\" class=\"num\">Users</th>\
         <th scope=\"col\">Redemption</th><th scope=\"col\">Why</th></tr></thead>\n<tbody>\n",
    );
    for row in rows.iter().take(DOMAINS_CHARTED) {
        let detail = row.detail.as_deref().map_or_else(String::new, |detail| {
            format!(" <span class=\"fix detail\">{}</span>", escape_html(detail))
        });
        let _ = writeln!(
            page,
            "<tr><td>{domain}</td><td class=\"num\">{users}</td>\
             <td><span class=\"badge {class}\">{label}</span></td><td>{why}{detail}</td></tr>",
            domain = escape_html(&row.domain),
            users = thousands(row.users),
            class = redemption_class(row.redemption),
            label = row.redemption.label(),
            why = escape_html(row.reason.label()),
        );
    }
    page.push_str("</tbody>\n</table></div>\n<p class=\"note\">");
    if rows.len() > DOMAINS_CHARTED {
        let _ = write!(
            page,
            "The top {DOMAINS_CHARTED} of {} external domains by users; the JSON report lists \
             every one. ",
            thousands(rows.len())
        );
    }
    page.push_str(
        "From this tenant's cross-tenant access settings (inbound \
         <q>Automatically redeem invitations</q> per partner tenant), read by <code>plan</code>. \
         Redemption is automatic only if the partner's tenant also allows it outbound, which \
         this tenant cannot read. Advisory: it blocks no one.</p>\n</figure>\n",
    );
}

fn redemption_class(redemption: Redemption) -> &'static str {
    match redemption {
        Redemption::AutomaticIfPartnerAllows => "d-eligible",
        Redemption::AsksPartner => "s-warning",
        Redemption::NotChecked => "r-unchecked",
    }
}

fn realm_class(domain: &DomainCount) -> &'static str {
    match domain.realm {
        Some(RealmKind::Managed) => "c-managed",
        Some(RealmKind::Federated) => "c-federated",
        Some(RealmKind::Unknown) => "c-unknown",
        None => "c-unchecked",
    }
}

fn funnel_figure(page: &mut String, summary: &Summary) {
    let mut bars: Vec<Bar> = summary
        .funnel()
        .iter()
        .map(|stage| Bar::new(stage.label, stage.users, "c-ok"))
        .collect();
    for (state, class) in [
        (UserState::Inviting, "c-warn"),
        (UserState::Failed, "c-bad"),
        (UserState::Drifted, "c-warn"),
    ] {
        let users = summary.in_state(state);
        if users > 0 {
            bars.push(Bar::new(state.code(), users, class));
        }
    }
    figure(
        page,
        "chart-funnel",
        "Progress after the run",
        &bars,
        "Each stage counts the users who got at least that far; failed, drifted and \
         inviting (outcome not yet known) users left the funnel.",
    );
}

const CHART_WIDTH: usize = 560;
const LABEL_WIDTH: usize = 200;
const BAR_SPACE: usize = 280;
const ROW_HEIGHT: usize = 26;
const LABEL_CHARS: usize = 28;

/// A horizontal bar chart, scaled to the largest value, labelled on the left and valued on
/// the right. Each bar carries a tooltip with its full label and value.
fn bar_chart(labelled_by: &str, title: &str, bars: &[Bar]) -> String {
    let max = bars.iter().map(|bar| bar.value).max().unwrap_or(0).max(1);
    let height = bars.len() * ROW_HEIGHT + 4;
    let mut svg = format!(
        "<svg class=\"chart\" role=\"img\" aria-labelledby=\"{labelled_by}\" \
         viewBox=\"0 0 {CHART_WIDTH} {height}\" width=\"{CHART_WIDTH}\" height=\"{height}\" \
         xmlns=\"http://www.w3.org/2000/svg\">\n<desc>{}</desc>\n",
        escape_html(&chart_description(title, bars))
    );
    for (i, bar) in bars.iter().enumerate() {
        let y = i * ROW_HEIGHT + 2;
        let width = (bar.value * BAR_SPACE)
            .div_ceil(max)
            .max(usize::from(bar.value > 0));
        let _ = writeln!(
            svg,
            "<g><title>{label}: {value}</title>\
             <text x=\"{label_x}\" y=\"{text_y}\" text-anchor=\"end\">{short}</text>\
             <rect class=\"{class}\" x=\"{bar_x}\" y=\"{y}\" width=\"{width}\" height=\"{bar_h}\" rx=\"2\"/>\
             <text x=\"{value_x}\" y=\"{text_y}\">{value}</text></g>",
            label = escape_html(&bar.label),
            value = thousands(bar.value),
            label_x = LABEL_WIDTH - 8,
            text_y = y + 15,
            short = escape_html(&shorten(&bar.label, LABEL_CHARS)),
            class = bar.class,
            bar_x = LABEL_WIDTH,
            bar_h = ROW_HEIGHT - 6,
            value_x = LABEL_WIDTH + width + 6,
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// The chart's numbers as a sentence, for screen readers.
fn chart_description(title: &str, bars: &[Bar]) -> String {
    let values: Vec<String> = bars
        .iter()
        .map(|bar| format!("{}: {}", bar.label, thousands(bar.value)))
        .collect();
    format!("{title}. {}.", values.join("; "))
}

fn shorten(label: &str, max_chars: usize) -> Cow<'_, str> {
    if label.chars().count() <= max_chars {
        return Cow::Borrowed(label);
    }
    let kept: String = label.chars().take(max_chars - 1).collect();
    Cow::Owned(format!("{kept}…"))
}

fn reasons(page: &mut String, summary: &Summary) {
    page.push_str("<section aria-labelledby=\"reasons\">\n<h2 id=\"reasons\">Reasons</h2>\n");
    if summary.reasons.is_empty() {
        page.push_str("<p>No findings: every user is eligible as planned.</p>\n</section>\n");
        return;
    }
    page.push_str(
        "<p class=\"note\">What each reason means and how to fix it travel with this page; \
         docs/rules.md adds the sources. <em>Users</em>: every user with the reason; \
         <em>eligible</em>: those of them the run still invites (a user can have several reasons).</p>\n\
         <div class=\"scroll\"><table class=\"reasons\">\n<thead><tr><th scope=\"col\">Code</th>\
         <th scope=\"col\">Severity</th><th scope=\"col\" class=\"num\">Users</th>\
         <th scope=\"col\" class=\"num\">Eligible</th>\
         <th scope=\"col\">What it means</th><th scope=\"col\">Fix</th></tr></thead>\n<tbody>\n",
    );
    for count in &summary.reasons {
        let _ = writeln!(
            page,
            "<tr><td><code>{code}</code></td><td>{severity}</td><td class=\"num\">{users}</td>\
             <td class=\"num\">{eligible}</td><td>{summary}</td><td>{fix}</td></tr>",
            code = count.reason.code(),
            severity = severity_badge(count.severity),
            users = thousands(count.users),
            eligible = thousands(count.eligible),
            summary = escape_html(count.reason.summary()),
            fix = escape_html(count.reason.fix()),
        );
    }
    page.push_str("</tbody>\n</table></div>\n</section>\n");
}

fn severity_badge(severity: Severity) -> String {
    let code = severity_code(severity);
    format!("<span class=\"badge s-{code}\">{code}</span>")
}

fn wave_findings(page: &mut String, findings: &[Finding]) {
    page.push_str(
        "<section aria-labelledby=\"wave-findings\">\n<h2 id=\"wave-findings\">Wave findings</h2>\n",
    );
    if findings.is_empty() {
        page.push_str("<p>None: nothing about the wave as a whole.</p>\n</section>\n");
        return;
    }
    page.push_str(
        "<p class=\"note\">These apply to every user of the wave.</p>\n<ul class=\"findings\">\n",
    );
    for finding in findings {
        let _ = writeln!(
            page,
            "<li>{badge} <code>{code}</code>: {summary}. <span class=\"detail\">{detail}</span>\
             <br><span class=\"fix\">Fix: {fix}</span></li>",
            badge = severity_badge(finding.severity),
            code = finding.reason.code(),
            summary = escape_html(finding.reason.summary()),
            detail = escape_html(&finding.detail),
            fix = escape_html(finding.reason.fix()),
        );
    }
    page.push_str("</ul>\n</section>\n");
}

/// The table's shell; `report.js` fills the body, the filters and the pager from the island.
fn user_table(page: &mut String) {
    page.push_str(
        "<section aria-labelledby=\"users\" class=\"screen-only\">\n<h2 id=\"users\">Users</h2>\n\
<form class=\"filters\" role=\"search\" id=\"filters\">\n\
<label>Search <input type=\"search\" id=\"f-text\" placeholder=\"name, UPN, address, id, detail\" autocomplete=\"off\"></label>\n\
<label>Decision <select id=\"f-decision\"><option value=\"\">all</option></select></label>\n\
<label>Reason <select id=\"f-reason\"><option value=\"\">all</option></select></label>\n\
<label>State <select id=\"f-state\"><option value=\"\">all</option></select></label>\n\
<label>Realm <select id=\"f-realm\"><option value=\"\">all</option></select></label>\n\
<label>Rows <select id=\"f-size\"><option>50</option><option selected>100</option><option>500</option></select></label>\n\
<button type=\"reset\">Clear</button>\n</form>\n\
<p id=\"count\" class=\"count\" aria-live=\"polite\"></p>\n\
<div class=\"scroll\"><table id=\"user-table\" class=\"users\">\n<thead><tr>\n\
<th scope=\"col\" data-key=\"upn\"><button type=\"button\">User principal name</button></th>\n\
<th scope=\"col\" data-key=\"name\"><button type=\"button\">Display name</button></th>\n\
<th scope=\"col\" data-key=\"decision\"><button type=\"button\">Decision</button></th>\n\
<th scope=\"col\" data-key=\"state\"><button type=\"button\">State</button></th>\n\
<th scope=\"col\" data-key=\"reasons\"><button type=\"button\">Reasons</button></th>\n\
<th scope=\"col\" data-key=\"address\"><button type=\"button\">Address</button></th>\n\
<th scope=\"col\" data-key=\"realm\"><button type=\"button\">Realm</button></th>\n\
<th scope=\"col\" data-key=\"fix\"><button type=\"button\">Fix and details</button></th>\n\
</tr></thead>\n<tbody id=\"rows\"></tbody>\n</table></div>\n\
<nav class=\"pager\" aria-label=\"User table pages\">\n\
<button type=\"button\" id=\"p-first\">« First</button> <button type=\"button\" id=\"p-prev\">‹ Previous</button>\n\
<span id=\"p-where\"></span>\n\
<button type=\"button\" id=\"p-next\">Next ›</button> <button type=\"button\" id=\"p-last\">Last »</button>\n</nav>\n\
<noscript><p>The user table needs JavaScript. The CSV report (<code>--format csv</code>) lists every user.</p></noscript>\n\
</section>\n",
    );
}

fn settings(page: &mut String, data: &ReportData) {
    page.push_str(
        "<section aria-labelledby=\"settings\">\n<h2 id=\"settings\">Settings used</h2>\n\
         <p class=\"note\">The invitation settings and rule modes stored with the plan: \
         <code>run</code> sends exactly these, and refuses if the configuration changed since.</p>\n",
    );
    settings_table(page, &data.settings);
    page.push_str("<h3>Selection</h3>\n");
    settings_table(page, &data.wave.selector);
    let tenant = &data.tenant;
    for (title, domains) in [
        ("Verified domains (internal)", &tenant.verified_domains),
        ("Direct-federation domains", &tenant.federation_domains),
    ] {
        let list = if domains.is_empty() {
            "none".to_owned()
        } else {
            domains.join(", ")
        };
        let _ = writeln!(page, "<h3>{title}</h3>\n<p>{}</p>", escape_html(&list));
    }
    page.push_str("</section>\n");
}

/// For print (hidden on screen, where the interactive table serves): every blocked user and
/// every user to be converted, compactly, without script.
fn printed_users(page: &mut String, data: &ReportData) {
    let started = data.wave.started;
    page.push_str(
        "<section aria-labelledby=\"printed-users\" class=\"print-only\">\n\
         <h2 id=\"printed-users\">Users</h2>\n",
    );
    let blocked: Vec<&ReportMember> = data
        .members
        .iter()
        .filter(|m| m.decision == Decision::Blocked)
        .collect();
    let eligible: Vec<&ReportMember> = data
        .members
        .iter()
        .filter(|m| m.decision == Decision::Eligible)
        .collect();
    printed_list(
        page,
        "printed-blocked",
        &format!("Blocked users ({}): not touched", thousands(blocked.len())),
        &["User principal name", "Display name", "Reasons"],
        &blocked,
        |member| {
            let mut codes: Vec<&str> = member.blockers().map(|f| f.reason.code()).collect();
            codes.dedup();
            vec![
                member.user_principal_name.clone(),
                member.display_name.clone().unwrap_or_default(),
                codes.join(", "),
            ]
        },
    );
    let mut columns = vec!["User principal name", "Display name", "Invitation address"];
    if started {
        columns.extend(["State", "Invited", "Accepted", "Last error"]);
    }
    printed_list(
        page,
        "printed-eligible",
        &format!("Users to be converted ({})", thousands(eligible.len())),
        &columns,
        &eligible,
        |member| {
            let mut address = member.address.clone().unwrap_or_default();
            if member.set_mail {
                address.push_str(" (mail set first)");
            }
            let mut cells = vec![
                member.user_principal_name.clone(),
                member.display_name.clone().unwrap_or_default(),
                address,
            ];
            if started {
                let mut error = member.last_error.clone().unwrap_or_default();
                if let Some(restore) = member.mail_restore {
                    error = format!("{error} ({})", restore.label());
                }
                cells.extend([
                    member.state.code().to_owned(),
                    member.invited_at.map(human_time).unwrap_or_default(),
                    member.accepted_at.map(human_time).unwrap_or_default(),
                    error,
                ]);
            }
            cells
        },
    );
    page.push_str("</section>\n");
}

fn printed_list(
    page: &mut String,
    id: &str,
    title: &str,
    columns: &[&str],
    members: &[&ReportMember],
    cells: impl Fn(&ReportMember) -> Vec<String>,
) {
    let _ = writeln!(page, "<h3 id=\"{id}\">{}</h3>", escape_html(title));
    if members.is_empty() {
        page.push_str("<p class=\"empty\">None.</p>\n");
        return;
    }
    let _ = write!(
        page,
        "<table class=\"printed\" aria-labelledby=\"{id}\">\n<thead><tr>"
    );
    for column in columns {
        let _ = write!(page, "<th scope=\"col\">{column}</th>");
    }
    page.push_str("</tr></thead>\n<tbody>\n");
    for member in members.iter().take(PRINTED_USERS) {
        page.push_str("<tr>");
        for cell in cells(member) {
            let _ = write!(page, "<td>{}</td>", escape_html(&cell));
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</tbody>\n</table>\n");
    if members.len() > PRINTED_USERS {
        let _ = writeln!(
            page,
            "<p class=\"note\">… and {} more, not printed: the CSV report (<code>--format csv</code>) lists every user.</p>",
            thousands(members.len() - PRINTED_USERS)
        );
    }
}

/// The block a change board signs: the plan hash it approves, and a line per role.
fn sign_off(page: &mut String, data: &ReportData) {
    page.push_str(
        "<section aria-labelledby=\"sign-off\" class=\"sign-off\">\n<h2 id=\"sign-off\">Sign-off</h2>\n",
    );
    match &data.wave.plan_hash {
        Some(hash) => {
            let _ = writeln!(
                page,
                "<p>Approving this report approves the plan with hash <code class=\"hash\">{}</code> \
                 for wave <q>{}</q>. <code>run</code> converts exactly this stored plan; planning \
                 the wave again gives a new hash, and needs a new approval.</p>",
                escape_html(hash),
                escape_html(&data.wave.name)
            );
        }
        None => page.push_str("<p>The wave has no plan yet: there is nothing to approve.</p>\n"),
    }
    page.push_str(
        "<table class=\"signatures\">\n<thead><tr><th scope=\"col\">Role</th><th scope=\"col\">Name</th>\
         <th scope=\"col\">Date</th><th scope=\"col\">Signature</th></tr></thead>\n<tbody>\n",
    );
    for role in [
        "Prepared by (operator)",
        "Reviewed by",
        "Approved by (change board)",
    ] {
        let _ = writeln!(page, "<tr><td>{role}</td><td></td><td></td><td></td></tr>");
    }
    page.push_str("</tbody>\n</table>\n</section>\n");
}

fn footer(page: &mut String, data: &ReportData) {
    let _ = writeln!(
        page,
        "<footer><p>Generated by b2b-convert {} at {} from the state database (schema {}). \
         This file is self-contained: it loads nothing from the network.</p></footer>",
        escape_html(&data.tool_version),
        human_time(data.generated_at),
        data.schema_version,
    );
}

/// What the script reads: the code tables, then one compact row per user.
#[derive(Serialize)]
struct Island<'a> {
    decisions: Vec<&'static str>,
    states: Vec<&'static str>,
    realms: Vec<String>,
    /// Each reason at each severity present, most severe and most frequent first.
    kinds: Vec<Kind>,
    /// [`Row`]s.
    rows: Vec<Row<'a>>,
}

#[derive(Serialize)]
struct Kind {
    code: &'static str,
    severity: &'static str,
    summary: &'static str,
    fix: &'static str,
}

/// `[id, upn, display name, decision, state, [kind…], address, realm, set mail, details]`;
/// decision, state, realm and kinds are indexes into the island's tables.
#[derive(Serialize)]
struct Row<'a>(
    String,
    &'a str,
    Option<&'a str>,
    usize,
    usize,
    Vec<usize>,
    Option<&'a str>,
    Option<usize>,
    u8,
    String,
);

const REALMS: [RealmKind; 3] = [RealmKind::Managed, RealmKind::Federated, RealmKind::Unknown];

fn data_island(page: &mut String, data: &ReportData, summary: &Summary) {
    let kinds: HashMap<(Reason, Severity), usize> = summary
        .reasons
        .iter()
        .enumerate()
        .map(|(i, count)| ((count.reason, count.severity), i))
        .collect();
    let island = Island {
        decisions: Decision::ALL.iter().map(|d| d.code()).collect(),
        states: UserState::ALL.iter().map(|s| s.code()).collect(),
        realms: REALMS.iter().map(code_of).collect(),
        kinds: summary
            .reasons
            .iter()
            .map(|count| Kind {
                code: count.reason.code(),
                severity: severity_code(count.severity),
                summary: count.reason.summary(),
                fix: count.reason.fix(),
            })
            .collect(),
        rows: data
            .members
            .iter()
            .map(|member| row(member, &kinds))
            .collect(),
    };
    let json = serde_json::to_string(&island).expect("the island serialises: plain data");
    page.push_str("<script type=\"application/json\" id=\"data\">");
    page.push_str(&script_safe_json(&json));
    page.push_str("</script>\n");
}

fn row<'a>(member: &'a ReportMember, kinds: &HashMap<(Reason, Severity), usize>) -> Row<'a> {
    let mut member_kinds: Vec<usize> = member
        .findings
        .iter()
        .filter_map(|f| kinds.get(&(f.reason, f.severity)).copied())
        .collect();
    member_kinds.dedup();
    Row(
        member.user_id.to_string(),
        &member.user_principal_name,
        member.display_name.as_deref(),
        index_of(Decision::ALL, &member.decision),
        index_of(UserState::ALL, &member.state),
        member_kinds,
        member.address.as_deref(),
        member.realm.map(|realm| index_of(&REALMS, &realm)),
        u8::from(member.set_mail),
        details(member),
    )
}

fn index_of<T: PartialEq>(all: &[T], value: &T) -> usize {
    all.iter()
        .position(|candidate| candidate == value)
        .expect("every variant is in its ALL table")
}

/// JSON that can sit inside `<script>`: `<` only occurs inside strings, where `\u003c` means
/// the same, so no `</script>` or `<!--` can reach the HTML parser.
fn script_safe_json(json: &str) -> String {
    json.replace('<', "\\u003c")
}

#[cfg(test)]
mod tests;
