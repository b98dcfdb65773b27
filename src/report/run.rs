//! The summary of a run of the executor (`run`, `invite`): its outcomes, its pace, and the
//! members it did not convert with why, as terminal text or as a JSON document ([`RunDocument`]).
//! Pure: the caller reads the members from the store.

use std::fmt::Write as _;

use serde::Serialize;

use crate::domain::{UserId, UserState};
use crate::execute::RunSummary;
use crate::output::{JsonDocument, table, terminal_safe};
use crate::store::{MailRestore, MemberNames, WaveMember};

/// `run --json` (and `invite --json`'s `run`): the run's counts and every member it did not
/// convert.
#[derive(Debug, Serialize)]
pub struct RunDocument<'a> {
    /// `run` or `invite`.
    pub command: &'a str,
    pub wave: &'a str,
    #[serde(flatten)]
    pub summary: &'a RunSummary,
    /// Every failed or drifted member of the wave, with why.
    pub not_converted: Vec<NotConverted>,
}

impl JsonDocument for RunDocument<'_> {
    const SCHEMA: &'static str = "run";
    const VERSION: u32 = 1;
}

/// A member a run left failed or drifted.
#[derive(Debug, Serialize)]
pub struct NotConverted {
    pub user_id: UserId,
    pub user_principal_name: String,
    pub state: UserState,
    pub error: Option<String>,
    pub mail_restore: Option<MailRestore>,
}

impl<'a> RunDocument<'a> {
    pub fn new(
        command: &'a str,
        wave: &'a str,
        summary: &'a RunSummary,
        not_converted: &[(WaveMember, MemberNames)],
    ) -> Self {
        Self {
            command,
            wave,
            summary,
            not_converted: not_converted
                .iter()
                .map(|(member, names)| NotConverted {
                    user_id: member.plan.user_id,
                    user_principal_name: names.user_principal_name.clone(),
                    state: member.state,
                    error: member.last_error_message.clone(),
                    mail_restore: member.mail_restore,
                })
                .collect(),
        }
    }

    /// The summary as terminal text (the first 50 members not converted are listed).
    pub fn render(&self) -> String {
        run_summary(self.wave, self.summary, &self.not_converted)
    }
}

fn run_summary(wave: &str, summary: &RunSummary, not_converted: &[NotConverted]) -> String {
    let wave = terminal_safe(wave);
    let mut text = String::new();
    let headline = if summary.interrupted {
        "interrupted (run the same command again to continue)"
    } else {
        "finished"
    };
    let _ = writeln!(text, "Run of wave {wave} {headline}.");
    let rows = [
        ("invited", summary.invited),
        (
            "already invited (read back from Graph)",
            summary.reconciled + summary.reconciled_at_start,
        ),
        (
            "drifted (changed since the plan; not converted)",
            summary.drifted,
        ),
        ("failed, retryable (run again)", summary.failed_retryable),
        ("failed, permanent (see the fix)", summary.failed_permanent),
        (
            "outcome unknown (the next run reconciles)",
            summary.unresolved,
        ),
        ("not started", summary.not_started),
    ];
    text.push_str(&table(
        ["outcome", "users"],
        rows.iter()
            .filter(|(_, n)| *n > 0)
            .map(|(label, n)| [(*label).to_owned(), n.to_string()]),
    ));
    let _ = writeln!(
        text,
        "{:.1} s, {:.1} invitations/s, throttled {} time(s).",
        summary.elapsed_seconds, summary.invitations_per_second, summary.throttled
    );
    let failed = not_converted;
    if !failed.is_empty() {
        let _ = writeln!(text, "\nUsers not converted:");
        text.push_str(&table(
            ["user", "state", "why"],
            failed.iter().take(50).map(|member| {
                let error = member.error.as_deref().unwrap_or_default();
                [
                    member.user_principal_name.clone(),
                    member.state.to_string(),
                    match member.mail_restore {
                        Some(restore) => format!("{error} ({})", restore.label()),
                        None => error.to_owned(),
                    },
                ]
            }),
        ));
        if failed.len() > 50 {
            let _ = writeln!(
                text,
                "… and {} more: `b2b-convert report --wave {wave}` lists them all.",
                failed.len() - 50,
            );
        }
    }
    let _ = writeln!(
        text,
        "Next: `b2b-convert status --wave {wave} --refresh` to follow redemptions."
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{FailureKind, UserState};
    use crate::report::testdata;

    fn failed(n: u128) -> (WaveMember, MemberNames) {
        let (mut member, names) = testdata::stored_member(n, UserState::Failed);
        member.failure_kind = Some(FailureKind::Permanent);
        member.last_error_code = Some("BadRequest".into());
        member.last_error_message = Some("the service said no".into());
        member.invited_at = None;
        (member, names)
    }

    #[test]
    fn the_summary_shows_only_outcomes_that_happened_and_lists_the_first_fifty_left_over() {
        let summary = RunSummary {
            invited: 3,
            reconciled: 1,
            reconciled_at_start: 1,
            failed_permanent: 52,
            elapsed_seconds: 2.0,
            invitations_per_second: 1.5,
            ..RunSummary::default()
        };
        let left: Vec<_> = (1..=52).map(failed).collect();
        let text = RunDocument::new("run", "pilot", &summary, &left).render();
        assert!(text.starts_with("Run of wave pilot finished.\noutcome "));
        assert!(text.contains("\nalready invited (read back from Graph)  2\n"));
        assert!(!text.contains("drifted"), "no drifted users, no row");
        assert!(text.contains("2.0 s, 1.5 invitations/s, throttled 0 time(s)."));
        assert!(text.contains("u50@contoso.com  failed  the service said no\n"));
        assert!(!text.contains("u51@contoso.com"));
        assert!(text.contains("… and 2 more: `b2b-convert report --wave pilot` lists them all."));
        assert!(text.ends_with(
            "Next: `b2b-convert status --wave pilot --refresh` to follow redemptions.\n"
        ));
    }
}
