//! The CSV report: one row per user, ready for Excel (UTF-8 with a byte-order mark, CRLF).
//!
//! Owns the report's column layout, the spreadsheet CSV format every CSV for people shares
//! ([`spreadsheet_csv`], also `export-links`'), and the guard against formula injection: display names, addresses
//! and details come from the directory and are attacker-controlled, so a cell that Excel or
//! `LibreOffice` would read as a formula gets a leading `'`.

use super::text::{code_of, details};
use super::{ReportData, ReportMember};

/// The header row, in order. `docs/reports.md` explains each column.
pub const COLUMNS: [&str; 16] = [
    "id",
    "userPrincipalName",
    "displayName",
    "decision",
    "state",
    "reasons",
    "address",
    "addressOrigin",
    "setMail",
    "realm",
    "fixHint",
    "details",
    "invitedAt",
    "acceptedAt",
    "lastError",
    "mailRestore",
];

/// Excel reads UTF-8 only with it.
pub(crate) const BYTE_ORDER_MARK: &str = "\u{feff}";

/// Renders the CSV report.
pub fn render_csv(data: &ReportData) -> String {
    spreadsheet_csv(&COLUMNS, data.members.iter().map(row))
}

/// A CSV a spreadsheet opens as it is meant: UTF-8 with a byte-order mark, CRLF line ends,
/// `header` then `rows`, every cell passed through [`defuse_formula`]. Every CSV this program
/// writes for people to open goes through here.
pub fn spreadsheet_csv<R>(header: &[&str], rows: impl IntoIterator<Item = R>) -> String
where
    R: IntoIterator,
    R::Item: AsRef<str>,
{
    let mut writer = ::csv::WriterBuilder::new()
        .terminator(::csv::Terminator::CRLF)
        .from_writer(BYTE_ORDER_MARK.as_bytes().to_vec());
    write_record(&mut writer, header);
    for cells in rows {
        write_record(&mut writer, cells);
    }
    let bytes = writer
        .into_inner()
        .expect("flushing into a Vec cannot fail");
    String::from_utf8(bytes).expect("every cell is a Rust string, so the CSV is UTF-8")
}

fn write_record(writer: &mut ::csv::Writer<Vec<u8>>, cells: impl IntoIterator<Item: AsRef<str>>) {
    writer
        .write_record(
            cells
                .into_iter()
                .map(|cell| defuse_formula(cell.as_ref()).into_owned()),
        )
        .expect("writing into a Vec cannot fail");
}

fn row(member: &ReportMember) -> [String; COLUMNS.len()] {
    let mut reasons: Vec<&str> = member.findings.iter().map(|f| f.reason.code()).collect();
    reasons.dedup();
    [
        member.user_id.to_string(),
        member.user_principal_name.clone(),
        member.display_name.clone().unwrap_or_default(),
        member.decision.code().to_owned(),
        member.state.code().to_owned(),
        reasons.join(";"),
        member.address.clone().unwrap_or_default(),
        member.address_origin.map(code_of).unwrap_or_default(),
        member.set_mail.to_string(),
        member.realm.map(code_of).unwrap_or_default(),
        member.fix_hint().unwrap_or_default().to_owned(),
        details(member),
        member.invited_at.map(rfc3339).unwrap_or_default(),
        member.accepted_at.map(rfc3339).unwrap_or_default(),
        member.last_error.clone().unwrap_or_default(),
        member
            .mail_restore
            .map(|restore| restore.code().to_owned())
            .unwrap_or_default(),
    ]
}

fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .expect("a stored time formats as RFC 3339")
}

/// Prefixes `'` to a cell a spreadsheet would evaluate (OWASP "CSV injection"): one starting
/// with `=`, `+`, `-`, `@`, a tab or a carriage return.
pub fn defuse_formula(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testdata;

    fn records(text: &str) -> Vec<Vec<String>> {
        let body = text
            .strip_prefix(BYTE_ORDER_MARK)
            .expect("starts with a BOM");
        ::csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(body.as_bytes())
            .records()
            .map(|record| record.unwrap().iter().map(str::to_owned).collect())
            .collect()
    }

    #[test]
    fn one_row_per_user_under_the_documented_header() {
        let text = render_csv(&testdata::sample());
        assert!(text.starts_with("\u{feff}id,userPrincipalName,displayName,decision,state,reasons,address,addressOrigin,setMail,realm,fixHint,details,invitedAt,acceptedAt,lastError,mailRestore\r\n"));
        let rows = records(&text);
        assert_eq!(rows.len(), 7);
        let bob = &rows[2];
        assert_eq!(bob[0], "00000000-0000-0000-0000-000000000002");
        assert_eq!(bob[1], "bob@contoso.example");
        assert_eq!(bob[2], "Bob \"Bobby\" O'Neil");
        assert_eq!(bob[3], "eligible");
        assert_eq!(bob[4], "ready");
        assert_eq!(bob[5], "disabled-account;set-mail-first");
        assert_eq!(bob[6], "Bob@Partner.Example");
        assert_eq!(bob[7], "other-mails");
        assert_eq!(bob[8], "true");
        assert_eq!(bob[9], "managed");
        assert_eq!(bob[10], crate::rules::Reason::DisabledAccount.fix());
        assert_eq!(
            bob[11],
            "disabled-account (warning): accountEnabled is false | set-mail-first (info): mail is empty"
        );
        let mallory = &rows[4];
        assert_eq!(mallory[6], "", "no address");
        assert_eq!(mallory[7], "");
        assert_eq!(mallory[9], "", "realm not checked");
    }

    #[test]
    fn the_fix_hint_is_the_first_blockers() {
        let rows = records(&render_csv(&testdata::sample()));
        let carol = &rows[3];
        assert_eq!(carol[5], "exchange-mailbox;realm-not-checked");
        assert_eq!(carol[10], crate::rules::Reason::ExchangeMailbox.fix());
        let alice = &rows[1];
        assert_eq!(alice[10], "", "nothing to fix");
    }

    #[test]
    fn formula_cells_are_defused() {
        for cell in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(defuse_formula(cell), format!("'{cell}"));
        }
        for cell in ["", "a=b", "Zoë", "'already", " =x"] {
            assert_eq!(defuse_formula(cell), cell);
        }
        let rows = records(&render_csv(&testdata::sample()));
        let dave = &rows[5];
        assert_eq!(dave[2], "'=HYPERLINK(\"http://evil.example\",\"x\")");
    }

    #[test]
    fn defuses_every_column_not_just_the_display_name() {
        let mut data = testdata::sample();
        data.members[0].user_principal_name = "@evil".to_owned();
        data.members[0].address = Some("-2+3@x.example".to_owned());
        data.members[0].last_error = Some("=cmd".to_owned());
        let rows = records(&render_csv(&data));
        assert_eq!(rows[1][1], "'@evil");
        assert_eq!(rows[1][6], "'-2+3@x.example");
        assert_eq!(
            rows[1][11], "last error: =cmd",
            "not at the start: harmless"
        );
    }
}
