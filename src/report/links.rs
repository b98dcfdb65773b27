//! The redemption links of a wave run in own-distribution mode (`export-links`): which members
//! have a link to send, which pending ones have none, and the CSV for a mail merge (the
//! report's spreadsheet format: BOM, CRLF, formula cells defused; columns in
//! `docs/operations.md`).
//!
//! Pure: members in, rows and text out. It must not read the store or write the file; the
//! command does both. Links are sensitive: this is the only renderer that shows them.

use super::csv::spreadsheet_csv;
use crate::domain::{UserId, UserProfile, UserState};
use crate::store::{MemberNames, WaveMember};

/// The header of [`Links::csv`], in order. `docs/operations.md` explains each column.
pub const COLUMNS: [&str; 8] = [
    "user_id",
    "user_principal_name",
    "given_name",
    "surname",
    "display_name",
    "address",
    "language",
    "redeem_url",
];

/// A member's redemption link, with what a mail merge needs to address it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub user_id: UserId,
    pub user_principal_name: String,
    pub display_name: Option<String>,
    pub profile: UserProfile,
    /// The language to write to them in: their `preferredLanguage`, or the wave's message
    /// language ([`UserProfile::language`]).
    pub language: String,
    pub address: Option<String>,
    pub redeem_url: String,
}

/// A member waiting to redeem who has no stored link: their invitation's answer was lost (the
/// run then found them invited by reading them), so nobody can send them one.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MissingLink {
    pub user_id: UserId,
    pub user_principal_name: String,
}

/// The links of a wave's invited, accepted and scrambled members, and the pending members
/// without one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Links {
    pub links: Vec<Link>,
    pub missing: Vec<MissingLink>,
}

impl Links {
    /// Sorts `members` into links and missing links. A member who has redeemed needs no link,
    /// so only `invited` ones can miss one. `message_language` is the wave's, for members
    /// without a language of their own.
    pub fn of(members: &[(WaveMember, MemberNames)], message_language: &str) -> Self {
        let mut links = Self::default();
        for (member, names) in members {
            match (&member.invite_redeem_url, member.state) {
                (Some(url), _) => links.links.push(Link {
                    user_id: member.plan.user_id,
                    user_principal_name: names.user_principal_name.clone(),
                    display_name: names.display_name.clone(),
                    profile: names.profile.clone(),
                    language: names.profile.language(message_language).to_owned(),
                    address: member.plan.chosen_address.clone(),
                    redeem_url: url.clone(),
                }),
                (None, UserState::Invited) => links.missing.push(MissingLink {
                    user_id: member.plan.user_id,
                    user_principal_name: names.user_principal_name.clone(),
                }),
                (None, _) => {}
            }
        }
        links
    }

    /// The CSV of the links for a mail merge: [`COLUMNS`] and a row per link.
    pub fn csv(&self) -> String {
        spreadsheet_csv(
            &COLUMNS,
            self.links.iter().map(|link| {
                [
                    link.user_id.to_string(),
                    link.user_principal_name.clone(),
                    link.profile.given_name.clone().unwrap_or_default(),
                    link.profile.surname.clone().unwrap_or_default(),
                    link.display_name.clone().unwrap_or_default(),
                    link.address.clone().unwrap_or_default(),
                    link.language.clone(),
                    link.redeem_url.clone(),
                ]
            }),
        )
    }

    /// What to tell the operator about the pending members of `wave` without a link, one per
    /// line.
    pub fn missing_text(&self, wave: &str) -> String {
        use std::fmt::Write as _;
        let mut text = format!(
            "{} invited user(s) have no redemption link: the service's answer to their invitation was lost, and Microsoft sent them no email either (invitation.send_message = false). Get each a new link with `b2b-convert reinvite --wave {} --missing-links`, then export the links again:",
            self.missing.len(),
            crate::output::terminal_safe(wave)
        );
        for user in &self.missing {
            let _ = write!(text, "\n  {} ({})", user.user_principal_name, user.user_id);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testdata;

    fn member(n: u128, state: UserState, url: Option<&str>) -> (WaveMember, MemberNames) {
        let (mut member, names) = testdata::stored_member(n, state);
        member.invite_redeem_url = url.map(str::to_owned);
        (member, names)
    }

    #[test]
    fn pending_members_without_a_link_are_named_and_redeemed_ones_need_none() {
        let links = Links::of(
            &[
                member(
                    1,
                    UserState::Invited,
                    Some("https://login.example/redeem?1"),
                ),
                member(2, UserState::Invited, None),
                member(3, UserState::Accepted, None),
                member(
                    4,
                    UserState::Accepted,
                    Some("https://login.example/redeem?4"),
                ),
            ],
            "en-US",
        );
        assert_eq!(links.links.len(), 2);
        assert_eq!(links.missing.len(), 1);
        assert_eq!(links.missing[0].user_principal_name, "u2@contoso.com");
        let text = links.missing_text("pilot");
        assert!(
            text.starts_with("1 invited user(s) have no redemption link"),
            "{text}"
        );
        assert!(text.contains("u2@contoso.com (00000000-0000-0000-0000-000000000002)"));
        assert!(
            text.contains("reinvite --wave pilot --missing-links"),
            "{text}"
        );
        let csv = links.csv();
        assert_eq!(csv.lines().count(), 3, "{csv}");
        assert!(csv.contains("https://login.example/redeem?4"));
    }

    /// The CSV's rows without its byte-order mark, as a spreadsheet reads them.
    fn records(csv: &str) -> Vec<Vec<String>> {
        let body = csv
            .strip_prefix('\u{feff}')
            .expect("starts with a byte-order mark");
        ::csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(body.as_bytes())
            .records()
            .map(|record| record.unwrap().iter().map(str::to_owned).collect())
            .collect()
    }

    #[test]
    fn the_mail_merge_csv_names_and_addresses_each_user_in_their_language() {
        let mut named = member(
            1,
            UserState::Invited,
            Some("https://login.example/redeem?1"),
        );
        named.1.profile = UserProfile {
            given_name: Some("Zoë".into()),
            surname: Some("Ångström".into()),
            preferred_language: Some("fr-FR".into()),
        };
        let mut unnamed = member(
            2,
            UserState::Invited,
            Some("https://login.example/redeem?2"),
        );
        unnamed.1.display_name = Some("=HYPERLINK(\"http://evil.example\",\"x\")".into());
        unnamed.1.profile.preferred_language = Some("not a tag".into());
        let csv = Links::of(&[named, unnamed], "de-DE").csv();

        assert!(csv.starts_with('\u{feff}'), "UTF-8 with a byte-order mark");
        assert_eq!(
            csv.matches("\r\n").count(),
            3,
            "CRLF after each row: {csv:?}"
        );
        assert_eq!(csv.matches('\n').count(), 3, "no bare LF: {csv:?}");
        let rows = records(&csv);
        assert_eq!(rows[0], COLUMNS);
        assert_eq!(
            rows[1],
            [
                "00000000-0000-0000-0000-000000000001",
                "u1@contoso.com",
                "Zoë",
                "Ångström",
                "Partner 1",
                &rows[1][5],
                "fr-FR",
                "https://login.example/redeem?1",
            ]
        );
        assert_eq!(rows[2][2], "", "no given name");
        assert_eq!(rows[2][3], "", "no surname");
        assert_eq!(
            rows[2][4], "'=HYPERLINK(\"http://evil.example\",\"x\")",
            "a formula is defused"
        );
        assert_eq!(
            rows[2][6], "de-DE",
            "the wave's language when the user's is unusable"
        );
    }
}
