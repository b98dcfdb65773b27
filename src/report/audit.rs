//! The audit trail export (`audit export`): every tenant write the event log holds, one record
//! each, for a SIEM or an auditor — as CSV (UTF-8 with a byte-order mark, CRLF, formula cells
//! defused like the report CSV) or as JSON Lines (one object per line, each with
//! `schema_version`). `docs/operations.md` documents the fields.
//!
//! Pure: stored [`TenantWrite`]s in, text out. It owns the record's layout and must not read the
//! store or write files. A record holds ids, the operator and the `mail` values only, never an
//! event's free-form detail, so no redemption URL or secret can reach it.

use serde::Serialize;
use time::format_description::well_known::Rfc3339;

use super::csv::defuse_formula;
use crate::store::TenantWrite;

/// The version of an exported record's layout. Bumped on any change that is not a pure
/// addition.
pub const AUDIT_SCHEMA_VERSION: u32 = 1;

/// The CSV header, in order; the JSON fields carry the same values in `snake_case`.
pub const CSV_COLUMNS: [&str; 21] = [
    "time",
    "operator",
    "osUser",
    "host",
    "appId",
    "signedInUser",
    "signedInUserId",
    "toolVersion",
    "command",
    "runId",
    "wave",
    "userId",
    "userPrincipalName",
    "event",
    "method",
    "path",
    "status",
    "requestId",
    "clientRequestId",
    "mailFrom",
    "mailTo",
];

/// Excel reads UTF-8 only with it.
const BYTE_ORDER_MARK: &str = "\u{feff}";

/// One exported write.
#[derive(Debug, Serialize)]
struct Record<'w> {
    schema_version: u32,
    time: String,
    /// `os_user@host as <signed-in user | app id>`.
    operator: String,
    os_user: Option<&'w str>,
    host: Option<&'w str>,
    app_id: Option<&'w str>,
    signed_in_user: Option<&'w str>,
    signed_in_user_id: Option<&'w str>,
    tool_version: Option<&'w str>,
    command: Option<&'w str>,
    run_id: Option<String>,
    wave: Option<&'w str>,
    user_id: Option<String>,
    user_principal_name: Option<&'w str>,
    /// The event that recorded it (`invitation.sent`, `mail.set`, …).
    event: &'w str,
    method: &'w str,
    path: Option<&'w str>,
    status: Option<u16>,
    request_id: Option<&'w str>,
    client_request_id: Option<&'w str>,
    /// For a `PATCH` of `mail`: `{ "from": old, "to": new }` (`null` for empty).
    mail: Option<Mail<'w>>,
}

#[derive(Debug, Serialize)]
struct Mail<'w> {
    from: Option<&'w str>,
    to: Option<&'w str>,
}

impl<'w> Record<'w> {
    fn of(write: &'w TenantWrite) -> Self {
        let operator = &write.operator;
        Self {
            schema_version: AUDIT_SCHEMA_VERSION,
            time: write
                .at
                .format(&Rfc3339)
                .expect("a stored time formats as RFC 3339"),
            operator: operator.summary(),
            os_user: operator.os_user.as_deref(),
            host: operator.host.as_deref(),
            app_id: operator.app_id.as_deref(),
            signed_in_user: operator.signed_in_user.as_deref(),
            signed_in_user_id: operator.signed_in_oid.as_deref(),
            tool_version: operator.tool_version.as_deref(),
            command: write.command.as_deref(),
            run_id: write.run_id.map(|r| r.to_string()),
            wave: write.wave.as_deref(),
            user_id: write.user_id.map(|u| u.to_string()),
            user_principal_name: write.user_principal_name.as_deref(),
            event: &write.kind,
            method: &write.http_method,
            path: write.http_path.as_deref(),
            status: write.http_status,
            request_id: write.request_id.as_deref(),
            client_request_id: write.client_request_id.as_deref(),
            mail: write.mail_change.as_ref().map(|change| Mail {
                from: change.from.as_deref(),
                to: change.to.as_deref(),
            }),
        }
    }

    fn cells(&self) -> [String; CSV_COLUMNS.len()] {
        let text = |value: Option<&str>| value.unwrap_or_default().to_owned();
        [
            self.time.clone(),
            self.operator.clone(),
            text(self.os_user),
            text(self.host),
            text(self.app_id),
            text(self.signed_in_user),
            text(self.signed_in_user_id),
            text(self.tool_version),
            text(self.command),
            text(self.run_id.as_deref()),
            text(self.wave),
            text(self.user_id.as_deref()),
            text(self.user_principal_name),
            self.event.to_owned(),
            self.method.to_owned(),
            text(self.path),
            self.status.map(|s| s.to_string()).unwrap_or_default(),
            text(self.request_id),
            text(self.client_request_id),
            text(self.mail.as_ref().and_then(|m| m.from)),
            text(self.mail.as_ref().and_then(|m| m.to)),
        ]
    }
}

/// The writes as CSV: the header, then one row per write.
pub fn render_csv(writes: &[TenantWrite]) -> String {
    let mut csv = ::csv::WriterBuilder::new()
        .terminator(::csv::Terminator::CRLF)
        .from_writer(BYTE_ORDER_MARK.as_bytes().to_vec());
    let mut write_record = |cells: &[String]| {
        csv.write_record(cells.iter().map(|cell| defuse_formula(cell).into_owned()))
            .expect("writing into a Vec cannot fail");
    };
    write_record(&CSV_COLUMNS.map(str::to_owned));
    for write in writes {
        write_record(&Record::of(write).cells());
    }
    let bytes = csv.into_inner().expect("flushing into a Vec cannot fail");
    String::from_utf8(bytes).expect("every cell is a Rust string, so the CSV is UTF-8")
}

/// The writes as JSON Lines: one object per write and line, each ending with `\n`.
pub fn render_json_lines(writes: &[TenantWrite]) -> String {
    let mut text = String::new();
    for write in writes {
        text.push_str(
            &serde_json::to_string(&Record::of(write))
                .expect("a record serialises: string keys, no floats"),
        );
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;
    use crate::domain::{RunId, UserId};
    use crate::operator::Operator;
    use crate::store::MailChange;

    fn patch() -> TenantWrite {
        TenantWrite {
            event_id: 7,
            at: datetime!(2026-12-06 07:00:00.25 UTC),
            kind: "mail.set".into(),
            run_id: Some(RunId::new()),
            command: Some("run".into()),
            operator: Operator {
                os_user: Some("alice".into()),
                host: Some("build-01".into()),
                app_id: Some("app-1".into()),
                tool_version: Some("0.1.0".into()),
                ..Operator::default()
            },
            wave: Some("pilot".into()),
            user_id: Some(UserId::from_uuid(Uuid::from_u128(1))),
            user_principal_name: Some("=HYPERLINK(\"x\")@contoso.com".into()),
            http_method: "PATCH".into(),
            http_path: Some("/v1.0/users/1".into()),
            http_status: Some(204),
            request_id: Some("req-1".into()),
            client_request_id: Some("client-1".into()),
            mail_change: Some(MailChange {
                from: None,
                to: Some("new@fabrikam.com".into()),
            }),
        }
    }

    #[test]
    fn csv_has_a_bom_crlf_the_header_and_defused_cells() {
        let text = render_csv(&[patch()]);
        assert!(text.starts_with(&format!("\u{feff}{}\r\n", CSV_COLUMNS.join(","))));
        let mut reader = ::csv::Reader::from_reader(text.trim_start_matches('\u{feff}').as_bytes());
        let rows: Vec<::csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 1);
        let cell = |name| &rows[0][CSV_COLUMNS.iter().position(|c| *c == name).unwrap()];
        assert_eq!(cell("time"), "2026-12-06T07:00:00.25Z");
        assert_eq!(cell("operator"), "alice@build-01 as app app-1");
        assert_eq!(cell("userPrincipalName"), "'=HYPERLINK(\"x\")@contoso.com");
        assert_eq!(cell("status"), "204");
        assert_eq!(cell("mailFrom"), "");
        assert_eq!(cell("mailTo"), "new@fabrikam.com");
    }

    #[test]
    fn docs_list_every_column_and_field() {
        let doc = include_str!("../../docs/operations.md");
        let record = render_json_lines(&[patch()]);
        let fields: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(record.trim()).unwrap();
        let missing: Vec<&str> = CSV_COLUMNS
            .iter()
            .copied()
            .chain(fields.keys().map(String::as_str))
            .filter(|name| !doc.contains(&format!("`{name}`")))
            .collect();
        assert!(
            missing.is_empty(),
            "docs/operations.md does not name {missing:?}"
        );
    }

    #[test]
    fn json_lines_are_one_versioned_object_per_write() {
        let mut post = patch();
        post.kind = "invitation.sent".into();
        post.http_method = "POST".into();
        post.mail_change = None;
        let text = render_json_lines(&[patch(), post]);
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l["schema_version"] == 1));
        assert_eq!(lines[0]["mail"]["from"], serde_json::Value::Null);
        assert_eq!(lines[0]["mail"]["to"], "new@fabrikam.com");
        assert_eq!(lines[1]["mail"], serde_json::Value::Null);
        assert_eq!(lines[1]["method"], "POST");
        assert_eq!(lines[1]["app_id"], "app-1");
        assert_eq!(render_json_lines(&[]), "");
    }
}
