//! Files the operator hands the tool: user lists in CSV (ids or UPNs, and optionally the
//! address to invite). Every row is checked before anything is done with the list, so a bad
//! file is reported by line and nothing is half-done.
//!
//! Owns parsing and validation only; it must not look users up or write anywhere.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

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

fn parse_user_list(path: &Path, bytes: &[u8]) -> Result<Vec<UserListEntry>, Error> {
    // The csv crate's own line numbers skip blank lines; count from the byte offset instead.
    let line_at = |position: Option<&csv::Position>| {
        position.map_or(0, |p| {
            let mut offset = usize::try_from(p.byte())
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            // A record's position is where reading began, before any blank lines it skipped.
            while offset < bytes.len() && matches!(bytes[offset], b'\n' | b'\r') {
                offset += 1;
            }
            let newlines = bytes[..offset].split(|b| *b == b'\n').count() - 1;
            newlines as u64 + 1
        })
    };
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
            record.map_err(|e| malformed(line_at(e.position()), describe_csv_error(&e)))?;
        let line = line_at(record.position());
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
}
