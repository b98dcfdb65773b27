//! `export-links`: the redemption URLs of a wave run in own-distribution mode, as a private CSV
//! for the operator's mail merge. The only place redemption URLs leave the database.

use super::{Ctx, Outcome, UsageError, stored_wave};
use crate::cli::ExportLinksArgs;
use crate::domain::UserState;
use crate::fsutil::{self, Overwrite};
use crate::output;
use crate::report::links::{Links, MissingLink};

impl ExportLinksArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<Outcome> {
        let settings = ctx.settings()?;
        let store = ctx.existing_store(&settings).await?;
        let wave = stored_wave(&store, &self.wave).await?;
        let members = store
            .members_in_states(
                wave.id,
                &[
                    UserState::Invited,
                    UserState::Accepted,
                    UserState::Scrambled,
                ],
            )
            .await?;
        let language = wave.settings["invitation"]["message_language"]
            .as_str()
            .unwrap_or(&settings.invitation.message_language);
        let links = Links::of(&members, language);
        let own_distribution =
            wave.settings["invitation"]["send_message"] == serde_json::Value::Bool(false);
        if links.links.is_empty() && (links.missing.is_empty() || !own_distribution) {
            return Err(UsageError(format!(
                "wave {} has no stored redemption links: they are kept only when the wave is run with invitation.send_message = false (then Microsoft sends no email and you distribute the links)",
                wave.name
            ))
            .into());
        }
        let overwrite = if self.force {
            Overwrite::Yes
        } else {
            Overwrite::No
        };
        fsutil::write_private(&self.out, links.csv().as_bytes(), overwrite)?;
        let written = links.links.len();
        if self.json {
            output::write_json(&ExportDocument {
                wave: &wave.name,
                file: self.out.display().to_string(),
                links_written: written,
                missing_links: &links.missing,
            })?;
        }
        output::notice(&format!(
            "Wrote {written} redemption link(s) to {} (mode 0600). Anyone holding a link can redeem that invitation: share each link only with its user, and delete the file when done.",
            self.out.display()
        ));
        if links.missing.is_empty() {
            return Ok(Outcome::Done);
        }
        output::notice(&links.missing_text(&wave.name));
        Ok(Outcome::SomeUsersFailed)
    }
}

/// `export-links --json`: where the links went and who has none. Never the links themselves:
/// they stay in the private file.
#[derive(serde::Serialize)]
struct ExportDocument<'a> {
    wave: &'a str,
    file: String,
    links_written: usize,
    /// Invited members whose link was lost (`reinvite --missing-links` gets them one).
    missing_links: &'a [MissingLink],
}

impl output::JsonDocument for ExportDocument<'_> {
    const SCHEMA: &'static str = "export-links";
    const VERSION: u32 = 1;
}
