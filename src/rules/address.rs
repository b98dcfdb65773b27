//! Email addresses as the invitation API sees them: domains, the tenant's verified domains,
//! forbidden characters, and the choice of the address to invite (DESIGN.md, "Invite address
//! selection").

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

/// The characters `invitedUserEmailAddress` must not contain (NOTES.md §1.1). `+` is among
/// them, so plus-addressed mail cannot be invited.
pub const FORBIDDEN_CHARACTERS: &[char] = &[
    '~', '!', '#', '$', '%', '^', '&', '*', '(', ')', '+', '=', '[', ']', '{', '}', '\\', '/', '|',
    ';', ':', '"', '<', '>', '?', ',',
];

/// A set of DNS domains, lower-cased, that also answers for their subdomains.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DomainSet(HashSet<String>);

impl DomainSet {
    pub fn new<S: AsRef<str>>(domains: impl IntoIterator<Item = S>) -> Self {
        Self(
            domains
                .into_iter()
                .map(|d| d.as_ref().trim().trim_end_matches('.').to_lowercase())
                .collect(),
        )
    }

    /// The member that is `domain` or one of its parents (`a.b.example.com` → `example.com`).
    pub fn covering(&self, domain: &str) -> Option<&str> {
        let domain = lower_case(domain);
        let mut rest = &*domain;
        loop {
            if let Some(found) = self.0.get(rest) {
                return Some(found);
            }
            rest = rest.split_once('.')?.1;
        }
    }
}

/// The domain part of an address, lower-cased.
pub fn domain_of(address: &str) -> Option<String> {
    domain_part(address).map(str::to_lowercase)
}

/// The domain part of an address as written.
fn domain_part(address: &str) -> Option<&str> {
    let (_, domain) = address.trim().rsplit_once('@')?;
    (!domain.is_empty()).then_some(domain)
}

/// `text` lower-cased, borrowed when it is already (ASCII without capitals, as most addresses
/// are): the rules look at a million users' domains, and a copy of each costs more than the
/// look-up.
fn lower_case(text: &str) -> Cow<'_, str> {
    if text
        .bytes()
        .all(|b| b.is_ascii() && !b.is_ascii_uppercase())
    {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.to_lowercase())
    }
}

/// Why the invitation API would refuse an address's form, if it would.
pub fn form_problem(address: &str) -> Option<String> {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Some(format!("`{address}` has no @"));
    };
    if local.is_empty() || domain.is_empty() || !domain.contains('.') {
        return Some(format!("`{address}` is not a complete address"));
    }
    if let Some(c) = address.chars().find(|c| FORBIDDEN_CHARACTERS.contains(c)) {
        return Some(format!("`{address}` contains `{c}`"));
    }
    if address.chars().any(char::is_whitespace) {
        return Some(format!("`{address}` contains a space"));
    }
    let edge = |c: char| c == '.' || c == '-';
    if local.starts_with(edge) || local.ends_with(edge) {
        return Some(format!(
            "`{address}` starts or ends its user name with `.` or `-`"
        ));
    }
    None
}

/// Where the chosen address came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AddressOrigin {
    /// The user's `mail`.
    Mail,
    /// One of the user's `otherMails`.
    OtherMails,
    /// The wave list's address column.
    Override,
}

/// The address a user will be invited at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChosenAddress {
    pub address: String,
    pub origin: AddressOrigin,
}

/// Why no address could be chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoChoice {
    /// No address at all.
    Nothing,
    /// Only addresses in the tenant's verified domains.
    OnlyInternal,
    /// Several candidates; the operator must pick one.
    Ambiguous(Vec<String>),
    /// The operator's address is not one of the user's, and new addresses are not allowed.
    OverrideNotACandidate { candidates: Vec<String> },
}

/// The inputs of the address choice for one user.
#[derive(Debug)]
pub struct AddressInputs<'a> {
    pub synced: bool,
    pub mail: Option<&'a str>,
    pub other_mails: &'a [String],
    /// The address the wave list names for this user.
    pub override_address: Option<&'a str>,
    /// Whether the operator allows an override that is not among the user's addresses.
    pub allow_new_address: bool,
}

/// Chooses the invitation address (DESIGN.md):
/// - a synced user is invited at `mail` (it cannot be changed from the cloud);
/// - a cloud-only user at its external `mail` if `otherMails` agrees, else at its single
///   external `otherMails` entry, else at an external `mail` when `otherMails` has none;
/// - anything else needs the operator's choice in the wave list.
pub fn choose(inputs: &AddressInputs<'_>, verified: &DomainSet) -> Result<ChosenAddress, NoChoice> {
    let is_external = |address: &str| {
        domain_part(address).is_some_and(|domain| verified.covering(domain).is_none())
    };
    let mail = inputs.mail.map(str::trim).filter(|m| !m.is_empty());
    if inputs.synced {
        let Some(mail) = mail else {
            return Err(NoChoice::Nothing);
        };
        return match inputs.override_address {
            Some(chosen) if !chosen.eq_ignore_ascii_case(mail) => {
                Err(NoChoice::OverrideNotACandidate {
                    candidates: vec![mail.to_owned()],
                })
            }
            _ if !is_external(mail) => Err(NoChoice::OnlyInternal),
            _ => Ok(ChosenAddress {
                address: mail.to_owned(),
                origin: AddressOrigin::Mail,
            }),
        };
    }

    // Distinct external otherMails, case-insensitively, in their original spelling.
    let mut seen = BTreeSet::new();
    let external_others: Vec<&str> = inputs
        .other_mails
        .iter()
        .map(|m| m.trim())
        .filter(|m| !m.is_empty() && is_external(m))
        .filter(|m| seen.insert(m.to_lowercase()))
        .collect();
    let external_mail = mail.filter(|m| is_external(m));
    let mut candidates: Vec<String> = external_mail
        .into_iter()
        .chain(external_others.iter().copied())
        .map(str::to_owned)
        .collect();
    candidates.dedup_by(|a, b| a.eq_ignore_ascii_case(b));

    if let Some(chosen) = inputs.override_address.map(str::trim) {
        let known = candidates.iter().any(|c| c.eq_ignore_ascii_case(chosen))
            || mail.is_some_and(|m| m.eq_ignore_ascii_case(chosen))
            || inputs
                .other_mails
                .iter()
                .any(|m| m.trim().eq_ignore_ascii_case(chosen));
        return if known || inputs.allow_new_address {
            Ok(ChosenAddress {
                address: chosen.to_owned(),
                origin: AddressOrigin::Override,
            })
        } else {
            Err(NoChoice::OverrideNotACandidate { candidates })
        };
    }

    match (external_mail, external_others.as_slice()) {
        (Some(mail), others) if others.iter().any(|o| o.eq_ignore_ascii_case(mail)) => {
            Ok(ChosenAddress {
                address: mail.to_owned(),
                origin: AddressOrigin::Mail,
            })
        }
        (None, [only]) => Ok(ChosenAddress {
            address: (*only).to_owned(),
            origin: AddressOrigin::OtherMails,
        }),
        (Some(mail), []) => Ok(ChosenAddress {
            address: mail.to_owned(),
            origin: AddressOrigin::Mail,
        }),
        (None, []) if mail.is_some() || !inputs.other_mails.is_empty() => {
            Err(NoChoice::OnlyInternal)
        }
        (None, []) => Err(NoChoice::Nothing),
        _ => Err(NoChoice::Ambiguous(candidates)),
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn verified() -> DomainSet {
        DomainSet::new(["contoso.com", "contoso.onmicrosoft.com"])
    }

    #[test]
    fn subdomains_are_covered_by_their_parent() {
        let set = verified();
        assert_eq!(set.covering("Partners.Contoso.com"), Some("contoso.com"));
        assert_eq!(set.covering("contoso.com"), Some("contoso.com"));
        assert_eq!(set.covering("notcontoso.com"), None);
        assert_eq!(set.covering("fabrikam.com"), None);
    }

    #[test]
    fn a_domain_is_copied_to_lower_case_only_when_it_has_capitals_or_is_not_ascii() {
        assert!(matches!(lower_case("mail.contoso.com"), Cow::Borrowed(_)));
        assert_eq!(lower_case("Mail.Contoso.COM"), "mail.contoso.com");
        assert_eq!(lower_case("ÄRZTE.example"), "ärzte.example");
        let set = DomainSet::new(["ärzte.example"]);
        assert_eq!(set.covering("Praxis.ÄRZTE.example"), Some("ärzte.example"));
        let cloud_only = AddressInputs {
            synced: false,
            mail: Some("dr.who@Praxis.ÄRZTE.example"),
            other_mails: &[],
            override_address: None,
            allow_new_address: false,
        };
        assert_eq!(
            choose(&cloud_only, &set),
            Err(NoChoice::OnlyInternal),
            "a subdomain of a verified domain, whatever its case, is internal"
        );
    }

    #[rstest]
    #[case::plain("pat@fabrikam.com", None)]
    #[case::underscore("pat_smith@fabrikam.com", None)]
    #[case::inner_dot_and_hyphen("pat.o-neil@fabrikam.com", None)]
    #[case::plus("pat+b2b@fabrikam.com", Some('+'))]
    #[case::hash("pat#1@fabrikam.com", Some('#'))]
    #[case::apostrophe_is_allowed("o'neil@fabrikam.com", None)]
    #[case::comma("a,b@fabrikam.com", Some(','))]
    fn forbidden_characters(#[case] address: &str, #[case] bad: Option<char>) {
        let problem = form_problem(address);
        match bad {
            None => assert_eq!(problem, None),
            Some(c) => assert!(problem.unwrap().contains(c)),
        }
    }

    #[rstest]
    #[case::leading_dot(".pat@fabrikam.com")]
    #[case::trailing_hyphen("pat-@fabrikam.com")]
    #[case::no_at("pat.fabrikam.com")]
    #[case::no_dot_in_domain("pat@localhost")]
    #[case::space("pat smith@fabrikam.com")]
    fn malformed_addresses(#[case] address: &str) {
        assert!(form_problem(address).is_some(), "{address}");
    }

    struct Case<'a> {
        synced: bool,
        mail: Option<&'a str>,
        others: &'a [&'a str],
        override_address: Option<&'a str>,
        allow_new: bool,
    }

    fn choose_for(case: &Case<'_>) -> Result<ChosenAddress, NoChoice> {
        let others: Vec<String> = case.others.iter().map(|s| (*s).to_owned()).collect();
        choose(
            &AddressInputs {
                synced: case.synced,
                mail: case.mail,
                other_mails: &others,
                override_address: case.override_address,
                allow_new_address: case.allow_new,
            },
            &verified(),
        )
    }

    const CLOUD: Case<'static> = Case {
        synced: false,
        mail: None,
        others: &[],
        override_address: None,
        allow_new: false,
    };

    #[allow(clippy::unnecessary_wraps)] // reads as the expected value in the case table
    fn chosen(address: &str, origin: AddressOrigin) -> Result<ChosenAddress, NoChoice> {
        Ok(ChosenAddress {
            address: address.into(),
            origin,
        })
    }

    #[rstest]
    #[case::external_mail_in_other_mails(
        Case { mail: Some("Pat@Fabrikam.com"), others: &["pat@fabrikam.com"], ..CLOUD },
        chosen("Pat@Fabrikam.com", AddressOrigin::Mail))]
    #[case::one_other_mail_no_mail(
        Case { others: &["pat@fabrikam.com"], ..CLOUD },
        chosen("pat@fabrikam.com", AddressOrigin::OtherMails))]
    #[case::one_other_mail_internal_mail(
        Case { mail: Some("pat@contoso.com"), others: &["pat@fabrikam.com"], ..CLOUD },
        chosen("pat@fabrikam.com", AddressOrigin::OtherMails))]
    #[case::external_mail_no_other_mails(
        Case { mail: Some("pat@fabrikam.com"), ..CLOUD },
        chosen("pat@fabrikam.com", AddressOrigin::Mail))]
    #[case::same_other_mail_twice(
        Case { others: &["pat@fabrikam.com", "PAT@fabrikam.com"], ..CLOUD },
        chosen("pat@fabrikam.com", AddressOrigin::OtherMails))]
    #[case::internal_other_mails_are_not_candidates(
        Case { others: &["pat@contoso.com", "pat@fabrikam.com"], ..CLOUD },
        chosen("pat@fabrikam.com", AddressOrigin::OtherMails))]
    #[case::several_external(
        Case { others: &["pat@fabrikam.com", "pat@adatum.com"], ..CLOUD },
        Err(NoChoice::Ambiguous(vec!["pat@fabrikam.com".into(), "pat@adatum.com".into()])))]
    #[case::mail_disagrees_with_other_mails(
        Case { mail: Some("pat@fabrikam.com"), others: &["pat@adatum.com"], ..CLOUD },
        Err(NoChoice::Ambiguous(vec!["pat@fabrikam.com".into(), "pat@adatum.com".into()])))]
    #[case::nothing(CLOUD, Err(NoChoice::Nothing))]
    #[case::internal_only(
        Case { mail: Some("pat@contoso.com"), others: &["pat@partners.contoso.com"], ..CLOUD },
        Err(NoChoice::OnlyInternal))]
    #[case::override_picks_a_candidate(
        Case { others: &["pat@fabrikam.com", "pat@adatum.com"], override_address: Some("pat@adatum.com"), ..CLOUD },
        chosen("pat@adatum.com", AddressOrigin::Override))]
    #[case::override_new_refused(
        Case { others: &["pat@fabrikam.com"], override_address: Some("new@tailspintoys.com"), ..CLOUD },
        Err(NoChoice::OverrideNotACandidate { candidates: vec!["pat@fabrikam.com".into()] }))]
    #[case::override_new_allowed(
        Case { others: &["pat@fabrikam.com"], override_address: Some("new@tailspintoys.com"), allow_new: true, ..CLOUD },
        chosen("new@tailspintoys.com", AddressOrigin::Override))]
    #[case::synced_external_mail(
        Case { synced: true, mail: Some("pat@fabrikam.com"), others: &["other@adatum.com"], ..CLOUD },
        chosen("pat@fabrikam.com", AddressOrigin::Mail))]
    #[case::synced_internal_mail(
        Case { synced: true, mail: Some("pat@contoso.com"), others: &["pat@fabrikam.com"], ..CLOUD },
        Err(NoChoice::OnlyInternal))]
    #[case::synced_no_mail(
        Case { synced: true, others: &["pat@fabrikam.com"], ..CLOUD },
        Err(NoChoice::Nothing))]
    #[case::synced_override_must_be_mail(
        Case { synced: true, mail: Some("pat@fabrikam.com"), override_address: Some("pat@adatum.com"), ..CLOUD },
        Err(NoChoice::OverrideNotACandidate { candidates: vec!["pat@fabrikam.com".into()] }))]
    #[case::synced_override_equal_to_mail(
        Case { synced: true, mail: Some("pat@fabrikam.com"), override_address: Some("PAT@fabrikam.com"), ..CLOUD },
        chosen("pat@fabrikam.com", AddressOrigin::Mail))]
    fn address_choice(#[case] case: Case<'_>, #[case] expected: Result<ChosenAddress, NoChoice>) {
        assert_eq!(choose_for(&case), expected);
    }
}
