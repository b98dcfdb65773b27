//! Files the operator hands the tool: user lists in CSV (ids or UPNs, and optionally the
//! address to invite), and the results CSV of a `scramble --emit-powershell` script. Every row
//! is checked before anything is done with the file, so a bad file is reported by line and
//! nothing is half-done.
//!
//! Owns parsing and validation only; it must not look users up or write anywhere.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::domain::UserId;

/// How a row names its user.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum UserKey {
    Id(UserId),
    /// A user principal name, as written (Entra ID compares them case-insensitively).
    Upn(String),
}

/// One user of a list, with the line it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserListEntry {
    pub line: u64,
    pub key: UserKey,
    /// The invitation address the operator chose for this user, if the file has one.
    pub address: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} names no user: list one per line under its header (a `user` column of object ids or UPNs)",
        path.display()
    )]
    Empty { path: PathBuf },
    #[error("{}, line {line}: {message}", path.display())]
    Malformed {
        path: PathBuf,
        line: u64,
        message: String,
    },
}

/// Header names accepted for the user column, and for the address column.
const USER_COLUMNS: &[&str] = &["user", "id", "userprincipalname", "upn"];
const ADDRESS_COLUMNS: &[&str] = &["address", "email", "invitedUserEmailAddress"];

/// Reads a CSV user list. The first row is a header naming a user column (`user`, `id`,
/// `userPrincipalName` or `upn`) and optionally an `address` column. Each user cell holds an
/// object id or a UPN. Blank rows are skipped; a user listed twice is an error (which line
/// would win is not obvious).
pub fn read_user_list(path: &Path) -> Result<Vec<UserListEntry>, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_user_list(path, &bytes)
}

/// The 1-based lines of records read in file order. The csv crate's own line numbers skip
/// blank lines, so lines are counted from the byte offsets instead — from where the previous
/// record was, so a file is counted through once, whatever its size.
struct Lines<'a> {
    bytes: &'a [u8],
    /// Newlines before `offset` are counted in `line`.
    offset: usize,
    line: u64,
}

impl<'a> Lines<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            offset: 0,
            line: 1,
        }
    }

    /// The line of the record at `position` (0 when the csv crate has no position).
    fn at(&mut self, position: Option<&csv::Position>) -> u64 {
        let Some(position) = position else {
            return 0;
        };
        let bytes = self.bytes;
        let mut offset = usize::try_from(position.byte())
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        // A record's position is where reading began, before any blank lines it skipped.
        while offset < bytes.len() && matches!(bytes[offset], b'\n' | b'\r') {
            offset += 1;
        }
        if offset < self.offset {
            // Not in file order (never seen from the csv crate): count from the start.
            (self.offset, self.line) = (0, 1);
        }
        let newlines = memchr::memchr_iter(b'\n', &bytes[self.offset..offset]).count();
        self.line += newlines as u64;
        self.offset = offset;
        self.line
    }
}

fn parse_user_list(path: &Path, bytes: &[u8]) -> Result<Vec<UserListEntry>, Error> {
    let mut lines = Lines::new(bytes);
    let malformed = |line: u64, message: String| Error::Malformed {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut csv = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers = csv
        .headers()
        .map_err(|e| malformed(1, e.to_string()))?
        .clone();
    let find = |names: &[&str]| {
        headers.iter().position(|h| {
            let h = h.trim_start_matches('\u{feff}');
            names.iter().any(|n| h.eq_ignore_ascii_case(n))
        })
    };
    let user_column = find(USER_COLUMNS).ok_or_else(|| {
        malformed(
            1,
            format!(
                "no user column in the header `{}`; name it `user` (object ids or UPNs), \
                 optionally with an `address` column",
                headers.iter().collect::<Vec<_>>().join(",")
            ),
        )
    })?;
    let address_column = find(ADDRESS_COLUMNS);

    let mut entries = Vec::new();
    let mut seen: HashSet<UserKey> = HashSet::new();
    for record in csv.records() {
        let record =
            record.map_err(|e| malformed(lines.at(e.position()), describe_csv_error(&e)))?;
        let line = lines.at(record.position());
        if record.iter().all(str::is_empty) {
            continue;
        }
        let cell = record.get(user_column).unwrap_or_default();
        let key = parse_user(cell).map_err(|message| malformed(line, message))?;
        let address = address_column
            .and_then(|c| record.get(c))
            .filter(|a| !a.is_empty())
            .map(|a| {
                if crate::domain::is_plausible_email(a) {
                    Ok(a.to_owned())
                } else {
                    Err(malformed(line, format!("`{a}` is not an email address")))
                }
            })
            .transpose()?;
        let normalised = match &key {
            UserKey::Upn(upn) => UserKey::Upn(upn.to_lowercase()),
            id @ UserKey::Id(_) => id.clone(),
        };
        if !seen.insert(normalised) {
            return Err(malformed(line, format!("`{cell}` is listed twice")));
        }
        entries.push(UserListEntry { line, key, address });
    }
    if entries.is_empty() {
        return Err(Error::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(entries)
}

/// The csv crate's own messages carry its line count, which skips blank lines; say what is
/// wrong without it (the caller prefixes the right line).
fn describe_csv_error(err: &csv::Error) -> String {
    match err.kind() {
        csv::ErrorKind::Utf8 { .. } => {
            "the file is not UTF-8; save it as \"CSV UTF-8\" (Excel) and try again".to_owned()
        }
        csv::ErrorKind::Io(io) => io.to_string(),
        _ => "unreadable CSV row (check quotes and separators)".to_owned(),
    }
}

fn parse_user(cell: &str) -> Result<UserKey, String> {
    if cell.is_empty() {
        return Err("the user cell is empty".to_owned());
    }
    if let Ok(id) = cell.parse::<UserId>() {
        return Ok(UserKey::Id(id));
    }
    match cell.split_once('@') {
        Some((name, domain))
            if !name.is_empty() && domain.contains('.') && !cell.contains(char::is_whitespace) =>
        {
            Ok(UserKey::Upn(cell.to_owned()))
        }
        _ => Err(format!(
            "`{cell}` is neither an object id (GUID) nor a user principal name"
        )),
    }
}

/// The columns of the results CSV that the `scramble --emit-powershell` script writes, in its
/// order (the script's `Export-Csv` quotes every field).
pub const SCRAMBLE_RESULT_COLUMNS: [&str; 9] = [
    "Wave",
    "UserId",
    "ObjectGuid",
    "SamAccountName",
    "Result",
    "DomainController",
    "PwdLastSet",
    "CompletedAt",
    "Error",
];

/// Longest script error message kept; the rest is cut (it goes into the event log).
const MAX_SCRIPT_ERROR: usize = 500;

/// One row of a scramble results CSV.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrambleResultRow {
    pub line: u64,
    pub wave: String,
    pub user_id: UserId,
    /// The AD `objectGUID` as PowerShell prints it.
    pub object_guid: Uuid,
    pub sam_account_name: Option<String>,
    pub outcome: ScrambleOutcome,
}

/// What the script did for one user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScrambleOutcome {
    Scrambled {
        domain_controller: String,
        pwd_last_set: OffsetDateTime,
        completed_at: OffsetDateTime,
    },
    Failed {
        completed_at: Option<OffsetDateTime>,
        error: String,
    },
}

/// One row of a results CSV, its cells found by `columns` (the positions of
/// [`SCRAMBLE_RESULT_COLUMNS`]); the error is the message for its line.
fn parse_result_row(
    record: &csv::StringRecord,
    columns: &[usize; SCRAMBLE_RESULT_COLUMNS.len()],
    line: u64,
) -> Result<ScrambleResultRow, String> {
    let [
        wave,
        user,
        guid,
        sam,
        result,
        dc,
        pwd_last_set,
        completed_at,
        error,
    ] = *columns;
    let cell = |i: usize| record.get(i).unwrap_or_default();
    let time = |column: usize, name: &str| {
        OffsetDateTime::parse(cell(column), &Rfc3339).map_err(|_| {
            format!(
                "{name} `{}` is not an ISO 8601 time with a zone",
                cell(column)
            )
        })
    };
    let user_id: UserId = cell(user)
        .parse()
        .map_err(|_| format!("UserId `{}` is not an object id (GUID)", cell(user)))?;
    let object_guid = Uuid::parse_str(cell(guid))
        .map_err(|_| format!("ObjectGuid `{}` is not a GUID", cell(guid)))?;
    let outcome = match cell(result).to_ascii_lowercase().as_str() {
        "scrambled" => {
            if cell(dc).is_empty() {
                return Err("DomainController is empty".into());
            }
            ScrambleOutcome::Scrambled {
                domain_controller: cell(dc).to_owned(),
                pwd_last_set: time(pwd_last_set, "PwdLastSet")?,
                completed_at: time(completed_at, "CompletedAt")?,
            }
        }
        "failed" => ScrambleOutcome::Failed {
            completed_at: time(completed_at, "CompletedAt").ok(),
            error: match cell(error) {
                "" => "(the script gave no message)".to_owned(),
                text => text.chars().take(MAX_SCRIPT_ERROR).collect(),
            },
        },
        other => {
            return Err(format!(
                "Result `{other}` is neither `scrambled` nor `failed`"
            ));
        }
    };
    Ok(ScrambleResultRow {
        line,
        wave: cell(wave).to_owned(),
        user_id,
        object_guid,
        sam_account_name: Some(cell(sam).to_owned()).filter(|s| !s.is_empty()),
        outcome,
    })
}

/// Reads the results CSV of a scramble script: the header names every column of
/// [`SCRAMBLE_RESULT_COLUMNS`] (any order and case; others are ignored), each row's `Result`
/// is `scrambled` (with its domain controller and RFC 3339 times) or `failed` (with its
/// error). A user listed twice is an error.
pub fn read_scramble_results(path: &Path) -> Result<Vec<ScrambleResultRow>, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_scramble_results(path, &bytes)
}

fn parse_scramble_results(path: &Path, bytes: &[u8]) -> Result<Vec<ScrambleResultRow>, Error> {
    let malformed = |line: u64, message: String| Error::Malformed {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut csv = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers = csv
        .headers()
        .map_err(|e| malformed(1, describe_csv_error(&e)))?
        .clone();
    let mut columns = [0usize; SCRAMBLE_RESULT_COLUMNS.len()];
    for (slot, name) in columns.iter_mut().zip(SCRAMBLE_RESULT_COLUMNS) {
        *slot = headers
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}').eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                malformed(
                    1,
                    format!(
                        "no `{name}` column: this is not the results file of a b2b-convert scramble script (its header is {})",
                        SCRAMBLE_RESULT_COLUMNS.join(",")
                    ),
                )
            })?;
    }
    let mut rows = Vec::new();
    let mut seen = HashSet::new();
    let mut lines = Lines::new(bytes);
    for record in csv.records() {
        let record =
            record.map_err(|e| malformed(lines.at(e.position()), describe_csv_error(&e)))?;
        let line = lines.at(record.position());
        if record.iter().all(str::is_empty) {
            continue;
        }
        let row = parse_result_row(&record, &columns, line).map_err(|m| malformed(line, m))?;
        if !seen.insert(row.user_id) {
            return Err(malformed(
                line,
                format!("user {} is listed twice", row.user_id),
            ));
        }
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<UserListEntry>, Error> {
        parse_user_list(Path::new("pilot.csv"), text.as_bytes())
    }

    #[test]
    fn ids_and_upns_with_optional_addresses() {
        let entries = parse(
            "\u{feff}User,Address\n\
             5a9f3c1e-0b2d-4e6f-8a7b-9c0d1e2f3a4b,\n\
             \n\
             o'brien@contoso.com , pat@fabrikam.com\n",
        )
        .unwrap();
        assert_eq!(entries.len(), 2);
        assert!(matches!(entries[0].key, UserKey::Id(_)));
        assert_eq!(entries[0].address, None);
        assert_eq!(entries[1].key, UserKey::Upn("o'brien@contoso.com".into()));
        assert_eq!(entries[1].address.as_deref(), Some("pat@fabrikam.com"));
        assert_eq!(entries[1].line, 4);
    }

    #[test]
    fn a_bad_row_is_reported_by_line() {
        let err = parse("upn\na@contoso.com\nnot a user\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "pilot.csv, line 3: `not a user` is neither an object id (GUID) nor a user principal name"
        );
        let err = parse("upn,address\na@contoso.com,nope\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn a_file_that_is_not_utf8_says_how_to_fix_it() {
        let err =
            parse_user_list(Path::new("pilot.csv"), b"user\n\xff\xfe@contoso.com\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "pilot.csv, line 2: the file is not UTF-8; save it as \"CSV UTF-8\" (Excel) and try again"
        );
    }

    #[test]
    fn duplicates_and_missing_headers_are_refused() {
        let err = parse("upn\nA@contoso.com\na@CONTOSO.com\n").unwrap_err();
        assert!(
            err.to_string().contains("line 3") && err.to_string().contains("twice"),
            "{err}"
        );
        let err = parse("name\nx\n").unwrap_err();
        assert!(err.to_string().contains("no user column"), "{err}");
    }

    #[test]
    fn a_list_with_only_a_header_or_blank_rows_is_refused() {
        for text in ["user\n", "user", "user,address\r\n\r\n,\r\n"] {
            let err = parse(text).unwrap_err();
            assert!(matches!(err, Error::Empty { .. }), "{text:?}: {err}");
            assert!(err.to_string().contains("names no user"), "{err}");
        }
    }

    #[test]
    fn lines_are_counted_through_blank_lines_and_line_ends_of_every_kind() {
        let mut text = String::from("user\r\n");
        let mut expected = Vec::new();
        for n in 0..2_000u32 {
            match n % 3 {
                0 => text.push('\n'),
                1 => text.push_str("\r\n\r\n"),
                _ => {}
            }
            expected.push(text.matches('\n').count() as u64 + 1);
            text.push('u');
            text.push_str(&n.to_string());
            text.push_str("@contoso.com\r\n");
        }
        let lines: Vec<u64> = parse(&text).unwrap().iter().map(|e| e.line).collect();
        assert_eq!(lines, expected);
        let err = parse(&format!("{text}not a user\n")).unwrap_err();
        let last = text.matches('\n').count() + 1;
        assert!(err.to_string().contains(&format!("line {last}:")), "{err}");
    }

    fn results(text: &str) -> Result<Vec<ScrambleResultRow>, Error> {
        parse_scramble_results(Path::new("results.csv"), text.as_bytes())
    }

    /// What Windows PowerShell 5.1's `Export-Csv -NoTypeInformation -Encoding UTF8` writes.
    const RESULTS: &str = "\u{feff}\"Wave\",\"UserId\",\"ObjectGuid\",\"SamAccountName\",\"Result\",\"DomainController\",\"PwdLastSet\",\"CompletedAt\",\"Error\"\r\n\
        \"pilot\",\"5a9f3c1e-0b2d-4e6f-8a7b-9c0d1e2f3a4b\",\"58374492-ff98-4a59-95f4-018204273c4c\",\"alice\",\"scrambled\",\"DC1.corp.contoso.com\",\"2026-11-21T12:07:38.4811100Z\",\"2026-11-21T12:07:38.9000000Z\",\"\"\r\n\
        \r\n\
        \"pilot\",\"6a9f3c1e-0b2d-4e6f-8a7b-9c0d1e2f3a4b\",\"68374492-ff98-4a59-95f4-018204273c4c\",\"\",\"failed\",\"DC1.corp.contoso.com\",\"\",\"2026-11-21T12:07:39.0000000Z\",\"Cannot find an object with identity: '68374492-ff98-4a59-95f4-018204273c4c'\"\r\n";

    #[test]
    fn a_powershell_results_file_is_read() {
        let rows = results(RESULTS).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[0].wave, "pilot");
        assert_eq!(rows[0].sam_account_name.as_deref(), Some("alice"));
        assert_eq!(
            rows[0].outcome,
            ScrambleOutcome::Scrambled {
                domain_controller: "DC1.corp.contoso.com".into(),
                pwd_last_set: time::macros::datetime!(2026-11-21 12:07:38.4811100 UTC),
                completed_at: time::macros::datetime!(2026-11-21 12:07:38.9 UTC),
            }
        );
        assert_eq!(rows[1].line, 4, "blank lines count");
        assert!(matches!(
            &rows[1].outcome,
            ScrambleOutcome::Failed { error, .. } if error.starts_with("Cannot find an object")
        ));
    }

    #[test]
    fn bad_results_rows_are_reported_by_line() {
        let header = SCRAMBLE_RESULT_COLUMNS.join(",");
        let err = results("UserId,Result\n").unwrap_err();
        assert!(
            err.to_string().contains("line 1: no `Wave` column"),
            "{err}"
        );
        let err = results(&format!(
            "{header}\npilot,5a9f3c1e-0b2d-4e6f-8a7b-9c0d1e2f3a4b,58374492-ff98-4a59-95f4-018204273c4c,a,done,dc,,,\n"
        ))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "results.csv, line 2: Result `done` is neither `scrambled` nor `failed`"
        );
        let err = results(&format!(
            "{header}\npilot,5a9f3c1e-0b2d-4e6f-8a7b-9c0d1e2f3a4b,58374492-ff98-4a59-95f4-018204273c4c,a,scrambled,dc,yesterday,2026-11-21T12:00:00Z,\n"
        ))
        .unwrap_err();
        assert!(
            err.to_string().contains("line 2: PwdLastSet `yesterday`"),
            "{err}"
        );
        let row = "pilot,5a9f3c1e-0b2d-4e6f-8a7b-9c0d1e2f3a4b,58374492-ff98-4a59-95f4-018204273c4c,a,failed,dc,,,boom";
        let err = results(&format!("{header}\n{row}\n{row}\n")).unwrap_err();
        assert!(
            err.to_string().contains("line 3") && err.to_string().contains("twice"),
            "{err}"
        );
        let err = results(&format!("{header}\npilot,nope,x,a,failed,dc,,,boom\n")).unwrap_err();
        assert!(err.to_string().contains("line 2: UserId `nope`"), "{err}");
    }
}
