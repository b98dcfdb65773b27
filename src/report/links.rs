//! The redemption links of a wave run in own-distribution mode (`export-links`): which members
//! have a link to send, which pending ones have none, and the CSV for a mail merge.
//!
//! Pure: members in, rows and text out. It must not read the store or write the file; the
//! command does both. Links are sensitive: this is the only renderer that shows them.

use crate::domain::{UserId, UserState};
use crate::store::{MemberNames, WaveMember};

/// A member's redemption link, with what a mail merge needs to address it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub user_id: UserId,
    pub user_principal_name: String,
    pub display_name: Option<String>,
    pub address: Option<String>,
    pub redeem_url: String,
}

/// A member waiting to redeem who has no stored link: their invitation's answer was lost (the
/// run then found them invited by reading them), so nobody can send them one.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// so only `invited` ones can miss one.
    pub fn of(members: &[(WaveMember, MemberNames)]) -> Self {
        let mut links = Self::default();
        for (member, names) in members {
            match (&member.invite_redeem_url, member.state) {
                (Some(url), _) => links.links.push(Link {
                    user_id: member.plan.user_id,
                    user_principal_name: names.user_principal_name.clone(),
                    display_name: names.display_name.clone(),
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

    /// The CSV of the links: a header and a row per link.
    pub fn csv(&self) -> Result<Vec<u8>, ::csv::Error> {
        let mut csv = ::csv::Writer::from_writer(Vec::new());
        csv.write_record([
            "user_id",
            "user_principal_name",
            "display_name",
            "address",
            "redeem_url",
        ])?;
        for link in &self.links {
            csv.write_record([
                link.user_id.to_string().as_str(),
                &link.user_principal_name,
                link.display_name.as_deref().unwrap_or(""),
                link.address.as_deref().unwrap_or(""),
                &link.redeem_url,
            ])?;
        }
        csv.into_inner().map_err(|e| e.into_error().into())
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
        let links = Links::of(&[
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
        ]);
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
        let csv = String::from_utf8(links.csv().unwrap()).unwrap();
        assert_eq!(csv.lines().count(), 3, "{csv}");
        assert!(csv.contains("https://login.example/redeem?4"));
    }
}
