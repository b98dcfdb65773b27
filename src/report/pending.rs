//! `status --pending`: the members who have not redeemed yet, oldest invitation first, as a
//! terminal table, JSON or CSV (guarded against formula injection like the report's CSV).
//!
//! Pure: the stored pending members and "now" in, rows and text out. It must not read the
//! store or a clock. It never shows a redemption link, only whether one is stored.

use serde::Serialize;
use time::OffsetDateTime;

use super::csv::defuse_formula;
use super::text::human_time;
use crate::output::terminal_safe;
use crate::store::PendingMember;

/// One pending member (stable JSON: scripts read `status --pending --json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PendingRow {
    pub user_id: String,
    pub user_principal_name: String,
    pub address: Option<String>,
    /// When it was first invited (RFC 3339).
    pub invited_at: Option<String>,
    /// When its invitation was last re-sent by `reinvite` (RFC 3339).
    pub resent_at: Option<String>,
    /// Whole days since it was invited.
    pub days_pending: Option<i64>,
    /// Whether a redemption link is stored (own-distribution waves only).
    pub link_stored: bool,
}

/// The members waiting, oldest first, keeping those whose invitation was last sent before
/// `sent_before` when given.
pub fn rows(
    members: &[PendingMember],
    now: OffsetDateTime,
    sent_before: Option<OffsetDateTime>,
) -> Vec<PendingRow> {
    let mut members: Vec<&PendingMember> = members
        .iter()
        .filter(|m| {
            sent_before
                .is_none_or(|before| m.resent_at.or(m.invited_at).is_some_and(|at| at < before))
        })
        .collect();
    members.sort_by_key(|m| (m.invited_at.is_none(), m.invited_at, m.user_id));
    members
        .into_iter()
        .map(|m| PendingRow {
            user_id: m.user_id.to_string(),
            user_principal_name: m.user_principal_name.clone(),
            address: m.address.clone(),
            invited_at: m.invited_at.map(rfc3339),
            resent_at: m.resent_at.map(rfc3339),
            days_pending: m.invited_at.map(|at| (now - at).whole_days()),
            link_stored: m.has_link,
        })
        .collect()
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn human(at: Option<&String>) -> String {
    at.map_or_else(String::new, |at| {
        OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
            .map_or_else(|_| at.clone(), human_time)
    })
}

const COLUMNS: [&str; 7] = [
    "user_principal_name",
    "address",
    "invited_at",
    "resent_at",
    "days_pending",
    "link_stored",
    "user_id",
];

/// The rows as a terminal table, with a count.
pub fn table(wave: &str, rows: &[PendingRow]) -> String {
    let mut text = format!(
        "Wave {}: {} member(s) have not redeemed, oldest first.\n",
        terminal_safe(wave),
        rows.len()
    );
    if rows.is_empty() {
        return text;
    }
    text.push_str(&crate::output::table(
        [
            "UPN",
            "address",
            "invited at",
            "re-sent at",
            "days",
            "link",
            "user id",
        ],
        rows.iter().map(|r| {
            [
                terminal_safe(&r.user_principal_name),
                terminal_safe(r.address.as_deref().unwrap_or("")),
                human(r.invited_at.as_ref()),
                human(r.resent_at.as_ref()),
                r.days_pending.map_or_else(String::new, |d| d.to_string()),
                if r.link_stored { "yes" } else { "no" }.to_owned(),
                r.user_id.clone(),
            ]
        }),
    ));
    text
}

/// The rows as CSV, one per member, cells a spreadsheet would evaluate defused.
pub fn csv(rows: &[PendingRow]) -> String {
    let mut writer = ::csv::Writer::from_writer(Vec::new());
    writer
        .write_record(COLUMNS)
        .expect("writing into a Vec cannot fail");
    for r in rows {
        let cells = [
            r.user_principal_name.clone(),
            r.address.clone().unwrap_or_default(),
            r.invited_at.clone().unwrap_or_default(),
            r.resent_at.clone().unwrap_or_default(),
            r.days_pending.map_or_else(String::new, |d| d.to_string()),
            r.link_stored.to_string(),
            r.user_id.clone(),
        ];
        writer
            .write_record(cells.iter().map(|c| defuse_formula(c).into_owned()))
            .expect("writing into a Vec cannot fail");
    }
    let bytes = writer
        .into_inner()
        .expect("flushing into a Vec cannot fail");
    String::from_utf8(bytes).expect("every cell is a Rust string, so the CSV is UTF-8")
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;
    use crate::domain::UserId;

    fn member(n: u128, invited: Option<OffsetDateTime>, has_link: bool) -> PendingMember {
        PendingMember {
            user_id: UserId::from_uuid(Uuid::from_u128(n)),
            user_principal_name: format!("u{n}@contoso.com"),
            address: Some(format!("=p{n}@fabrikam.com")),
            invited_at: invited,
            resent_at: None,
            has_link,
        }
    }

    #[test]
    fn oldest_first_filtered_by_age_with_days_and_link() {
        let now = datetime!(2026-12-20 12:00 UTC);
        let members = [
            member(1, Some(datetime!(2026-12-15 12:00 UTC)), true),
            member(2, Some(datetime!(2026-12-01 12:00 UTC)), false),
            member(3, None, false),
        ];
        let all = rows(&members, now, None);
        let order: Vec<_> = all.iter().map(|r| r.user_principal_name.as_str()).collect();
        assert_eq!(
            order,
            ["u2@contoso.com", "u1@contoso.com", "u3@contoso.com"]
        );
        assert_eq!(all[0].days_pending, Some(19));
        let old = rows(&members, now, Some(now - time::Duration::days(14)));
        assert_eq!(old.len(), 1);
        assert_eq!(old[0].user_principal_name, "u2@contoso.com");

        let text = table("pilot", &all);
        assert!(
            text.starts_with("Wave pilot: 3 member(s) have not redeemed"),
            "{text}"
        );
        let csv = csv(&all);
        assert!(
            csv.starts_with("user_principal_name,address,invited_at"),
            "{csv}"
        );
        assert!(csv.contains("'=p2@fabrikam.com"), "formulas defused: {csv}");
        assert_eq!(csv.lines().count(), 4);
    }
}
