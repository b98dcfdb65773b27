use super::*;
use crate::report::testdata;

/// The entry of a code table that a row's index points at.
fn lookup<'a>(table: &'a serde_json::Value, index: &serde_json::Value) -> &'a serde_json::Value {
    &table[usize::try_from(index.as_u64().unwrap()).unwrap()]
}

fn island_of(page: &str) -> &str {
    let start = page
        .find("<script type=\"application/json\" id=\"data\">")
        .expect("the page has a data island");
    let rest = &page[start..];
    let open_end = rest.find('>').unwrap() + 1;
    let close = rest.find("</script>").unwrap();
    &rest[open_end..close]
}

#[test]
fn escapes_markup_quotes_and_ampersands() {
    assert_eq!(
        escape_html("<script>alert('x')</script> & \"y\""),
        "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;"
    );
    assert!(matches!(escape_html("plain text"), Cow::Borrowed(_)));
    assert_eq!(escape_html("Zoë &amp;"), "Zoë &amp;amp;");
}

#[test]
fn is_one_self_contained_file_with_a_strict_policy() {
    let page = render_html(&testdata::sample());
    assert!(page.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
    assert!(page.contains(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">"
    ));
    for external in [
        "<script src",
        "<link",
        "@import",
        "url(",
        "<iframe",
        "<img",
        "src=\"",
    ] {
        assert!(!page.contains(external), "the page contains `{external}`");
    }
    // The only URL outside data values (the island, and the users' list for print: escaped
    // text) is the SVG namespace, which is never fetched.
    let printed = &page[page
        .find("<section aria-labelledby=\"printed-users\"")
        .unwrap()..];
    let printed = &printed[..printed.find("</section>").unwrap()];
    let without_data = page.replace(island_of(&page), "").replace(printed, "");
    let urls: Vec<&str> = ["http://", "https://"]
        .iter()
        .flat_map(|scheme| without_data.match_indices(scheme))
        .map(|(i, _)| &without_data[i..(i + 40).min(without_data.len())])
        .filter(|url| !url.starts_with("http://www.w3.org/2000/svg"))
        .collect();
    assert!(
        urls.iter().all(|url| url.contains("myapps.microsoft.com")),
        "only the settings' redirect URL (escaped text) may appear: {urls:?}"
    );
}

#[test]
fn data_from_the_directory_is_escaped_everywhere() {
    let mut data = testdata::sample();
    data.wave.name = "<b>wave</b>".to_owned();
    data.tenant.name = Some("<i>t</i>".to_owned());
    data.wave_findings[0].detail = "<u>detail</u>".to_owned();
    data.members[0].address = Some("a@<svg onload=alert(1)>.example".to_owned());
    let page = render_html(&data);
    for raw in [
        "<b>wave",
        "<i>t</i>",
        "<u>detail",
        "<svg onload",
        "<script>alert",
        "<img src=x",
    ] {
        assert!(!page.contains(raw), "`{raw}` reached the page unescaped");
    }
    assert!(page.contains("&lt;b&gt;wave&lt;/b&gt;"));
    assert!(
        page.contains("&lt;/script&gt;&lt;b&gt;hi&lt;/b&gt;"),
        "settings are escaped"
    );
}

#[test]
fn the_json_island_cannot_close_its_script_and_parses_back() {
    let data = testdata::sample();
    let page = render_html(&data);
    let island = island_of(&page);
    assert!(!island.contains('<'), "no `<` at all in the island");
    assert_eq!(
        page.matches("</script>").count(),
        2,
        "the island's and the script's"
    );
    let value: serde_json::Value = serde_json::from_str(island).unwrap();
    let mallory = &value["rows"][3];
    assert_eq!(mallory[1], "mallory@contoso.example");
    assert_eq!(mallory[2], "<script>alert(1)</script> & \"x\"");
    assert!(
        mallory[9]
            .as_str()
            .unwrap()
            .contains("</script><img src=x onerror=alert(1)>")
    );
    assert_eq!(value["rows"].as_array().unwrap().len(), data.members.len());
    assert_eq!(
        value["decisions"],
        serde_json::json!(["eligible", "blocked"])
    );
    assert_eq!(
        value["realms"],
        serde_json::json!(["managed", "federated", "unknown"])
    );
}

#[test]
fn island_rows_point_into_the_code_tables() {
    let page = render_html(&testdata::sample());
    let value: serde_json::Value = serde_json::from_str(island_of(&page)).unwrap();
    let bob = &value["rows"][1];
    assert_eq!(bob[0], "00000000-0000-0000-0000-000000000002");
    assert_eq!(lookup(&value["decisions"], &bob[3]), "eligible");
    assert_eq!(lookup(&value["states"], &bob[4]), "ready");
    let kinds: Vec<&str> = bob[5]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| lookup(&value["kinds"], k)["code"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["disabled-account", "set-mail-first"]);
    assert_eq!(bob[6], "Bob@Partner.Example");
    assert_eq!(lookup(&value["realms"], &bob[7]), "managed");
    assert_eq!(bob[8], 1);
    assert_eq!(value["rows"][3][6], serde_json::Value::Null, "no address");
}

#[test]
fn shows_cards_charts_reasons_findings_and_settings() {
    let page = render_html(&testdata::sample());
    assert!(page.contains("<title>Wave pilot: conversion report</title>"));
    assert!(page.contains(
        "<span class=\"number\">6</span> <span class=\"label\">users in the wave</span>"
    ));
    assert!(page.contains("<span class=\"number\">3</span> <span class=\"label\">blocked</span>"));
    assert!(page.contains(
        "<span class=\"number\">1</span> <span class=\"label\">eligible, mail set first</span>"
    ));
    assert!(
        !page.contains("label\">invited</span>"),
        "no run cards before a run"
    );
    assert!(page.contains("aria-labelledby=\"chart-decisions\""));
    assert!(page.contains("aria-labelledby=\"chart-blockers\""));
    assert!(page.contains("aria-labelledby=\"chart-domains\""));
    assert!(!page.contains("chart-funnel"), "no funnel before a run");
    assert!(page.contains(">partner.example</text>"));
    assert!(page.contains("<rect class=\"c-managed\""));
    assert!(
        page.contains("<rect class=\"c-unchecked\""),
        "other.example was not checked"
    );
    assert!(page.contains("<td><code>exchange-mailbox</code></td>"));
    assert!(page.contains("<code>custom-message-dropped</code>"));
    assert!(
        page.contains(
            "<tr><td><code>invitation.set_mail_before_invite</code></td><td>yes</td></tr>"
        )
    );
    assert!(page.contains("Dry run: nothing has been changed in the tenant."));
}

#[test]
fn the_partner_preflight_sits_beside_the_realm_chart() {
    let page = render_html(&testdata::sample());
    let domains = page.find("aria-labelledby=\"chart-domains\"").unwrap();
    let preflight = page
        .find("<figure id=\"preflight\">")
        .expect("the pre-flight figure");
    let charts_end = page[domains..].find("</section>").unwrap() + domains;
    assert!(
        domains < preflight && preflight < charts_end,
        "in the charts grid, right after the realm chart"
    );
    assert!(page.contains(
        "<tr><td>partner.example</td><td class=\"num\">3</td>\
         <td><span class=\"badge d-eligible\">automatic if the partner allows it</span></td>"
    ));
    assert!(page.contains(
        "<span class=\"badge r-unchecked\">not checked</span></td><td>not an Entra tenant"
    ));
    assert!(page.contains("which this tenant cannot read"));

    let mut data = testdata::synthetic(300, false);
    data.partner_preflight[0].detail = Some("<b>403</b>".to_owned());
    let page = render_html(&data);
    assert!(
        page.contains("&lt;b&gt;403&lt;/b&gt;"),
        "details are escaped"
    );
    data.partner_preflight = (0..20)
        .map(|k| {
            let mut row = data.partner_preflight[0].clone();
            row.domain = format!("d{k}.example");
            row
        })
        .collect();
    let page = render_html(&data);
    assert!(page.contains(">d11.example<") && !page.contains(">d12.example<"));
    assert!(page.contains("The top 12 of 20 external domains by users"));

    data.partner_preflight.clear();
    assert!(render_html(&data).contains("No external domains."));
}

#[test]
fn a_change_board_reads_what_will_happen_the_full_hash_and_signs() {
    let data = testdata::sample();
    let page = render_html(&data);
    let hash = data.wave.plan_hash.as_deref().unwrap();
    assert_eq!(hash.len(), 64);
    assert_eq!(
        page.matches(&format!("<code class=\"hash\">{hash}</code>"))
            .count(),
        2,
        "the full hash in the header and in the sign-off block"
    );
    assert!(page.contains("What will happen when the wave is run"));
    assert!(page.contains("<strong>3 invitation(s)</strong>"));
    assert!(page.contains("<strong>1 <code>mail</code> change(s)</strong>"));
    assert!(page.contains("<strong>Microsoft sends no email</strong>"));
    assert!(page.contains("<strong>3 user(s) are not touched</strong>"));
    assert!(page.contains("<strong>about 1 minute</strong> at the configured pace of 24"));
    assert!(page.contains("<li><code>User.Invite.All</code>: invite users (run)</li>"));
    assert!(page.contains("<strong>200 invitation(s) in any 24 hours</strong>"));
    for role in [
        "Prepared by (operator)",
        "Reviewed by",
        "Approved by (change board)",
    ] {
        assert!(page.contains(&format!("<tr><td>{role}</td>")), "{role}");
    }
    // One definition of the counts: the set-mail-first row says how many are eligible.
    assert!(
        page.contains(
            "<td><code>set-mail-first</code></td><td><span class=\"badge s-info\">info</span></td>\
             <td class=\"num\">1</td><td class=\"num\">1</td>"
        ),
        "{page}"
    );
}

#[test]
fn the_printed_lists_hold_every_blocked_and_every_eligible_user_without_script() {
    let data = testdata::sample();
    let page = render_html(&data);
    let start = page.find("<section aria-labelledby=\"printed-users\" class=\"print-only\">");
    let printed = &page[start.expect("a print-only section")..];
    let printed = &printed[..printed.find("</section>").unwrap()];
    let (blocked, eligible) = printed.split_at(printed.find("id=\"printed-eligible\"").unwrap());
    for member in &data.members {
        let list = match member.decision {
            Decision::Blocked => blocked,
            Decision::Eligible => eligible,
        };
        assert!(
            list.contains(&*escape_html(&member.user_principal_name)),
            "{} missing from its printed list",
            member.user_principal_name
        );
    }
    assert!(blocked.contains("Blocked users (3): not touched"));
    assert!(eligible.contains("Users to be converted (3)"));
    assert!(
        !eligible.contains("<th scope=\"col\">Invited</th>"),
        "no run columns before a run"
    );

    let run = render_html(&testdata::synthetic(30, true));
    assert!(run.contains("<th scope=\"col\">Invited</th><th scope=\"col\">Accepted</th>"));
    assert!(run.contains("What the run does (the wave has started"));
}

#[test]
fn durations_are_estimated_to_the_minute() {
    assert_eq!(duration_text(5.0), "1 minute");
    assert_eq!(duration_text(95.0), "2 minutes");
    assert_eq!(duration_text(3600.0), "1 h");
    assert_eq!(duration_text(5400.0), "1 h 30 min");
}

#[test]
fn after_a_run_shows_the_run_cards_and_the_funnel() {
    let data = testdata::synthetic(500, true);
    let page = render_html(&data);
    assert!(page.contains("label\">accepted</span>"));
    assert!(page.contains("label\">drifted</span>"));
    assert!(page.contains("aria-labelledby=\"chart-funnel\""));
    assert!(page.contains(">in wave</text>"));
    assert!(page.contains(">failed</text>"));
}

#[test]
fn bars_scale_to_the_largest_value_and_long_labels_are_shortened() {
    let bars = [
        Bar::new("a-very-long-domain-name-that-goes-on.example", 50, "c-ok"),
        Bar::new("small", 1, "c-bad"),
        Bar::new("none", 0, "c-bad"),
    ];
    let svg = bar_chart("x", "Title", &bars);
    assert!(svg.contains(&format!("width=\"{BAR_SPACE}\"")));
    assert!(
        svg.contains("width=\"6\""),
        "1/50 of the space, rounded up: {svg}"
    );
    assert!(svg.contains("width=\"0\""), "{svg}");
    assert!(
        svg.contains(">a-very-long-domain-name-tha…</text>"),
        "{svg}"
    );
    assert!(svg.contains("<title>a-very-long-domain-name-that-goes-on.example: 50</title>"));
    assert!(svg.contains(
        "<desc>Title. a-very-long-domain-name-that-goes-on.example: 50; small: 1; none: 0.</desc>"
    ));
}

#[test]
fn an_empty_wave_still_renders() {
    let mut data = testdata::sample();
    data.members.clear();
    data.wave_findings.clear();
    let page = render_html(&data);
    assert!(page.contains("<p class=\"empty\">None.</p>"));
    assert!(page.contains("No findings"));
    assert!(page.ends_with("</html>\n"));
}

#[test]
fn a_hundred_thousand_users_make_a_reasonable_file() {
    let data = testdata::synthetic(100_000, true);
    let page = render_html(&data);
    let per_user = page.len() / data.members.len();
    assert!(per_user < 300, "{} bytes, {per_user} per user", page.len());
    let value: serde_json::Value = serde_json::from_str(island_of(&page)).unwrap();
    assert_eq!(value["rows"].as_array().unwrap().len(), 100_000);
    assert!(
        page.len() > 100_000 * 100,
        "every user is in the island once"
    );
}

/// Writes sample reports for a look in a browser (`docs/reports.md`, "How to look at the HTML
/// report"): `target/report-sample.html` (2,000 users after a run) and
/// `target/report-100k.html`.
#[test]
#[ignore = "writes files for a manual check in a browser"]
fn write_sample_reports() {
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&target).unwrap();
    let mut sample = testdata::synthetic(2_000, true);
    sample.members.extend(testdata::sample().members);
    std::fs::write(target.join("report-sample.html"), render_html(&sample)).unwrap();
    let print = testdata::synthetic(400, false);
    std::fs::write(target.join("report-print.html"), render_html(&print)).unwrap();
    let large = testdata::synthetic(100_000, true);
    std::fs::write(target.join("report-100k.html"), render_html(&large)).unwrap();
}
