//! `export-links`: the redemption URLs of a wave run in own-distribution mode, as a private CSV
//! for the operator's mail merge. The only place redemption URLs leave the database.

use super::{Ctx, Outcome, UsageError, stored_wave};
use crate::cli::ExportLinksArgs;
use crate::domain::UserState;
use crate::fsutil::{self, Overwrite};
use crate::output;

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
        let mut csv = csv::Writer::from_writer(Vec::new());
        csv.write_record([
            "user_id",
            "user_principal_name",
            "display_name",
            "address",
            "redeem_url",
        ])?;
        let mut written = 0;
        for (member, names) in &members {
            let Some(url) = member.invite_redeem_url.as_deref() else {
                continue;
            };
            csv.write_record([
                member.plan.user_id.to_string().as_str(),
                &names.user_principal_name,
                names.display_name.as_deref().unwrap_or(""),
                member.plan.chosen_address.as_deref().unwrap_or(""),
                url,
            ])?;
            written += 1;
        }
        if written == 0 {
            return Err(UsageError(format!(
                "wave {} has no stored redemption links: they are kept only when the wave is run with invitation.send_message = false (then Microsoft sends no email and you distribute the links)",
                wave.name
            ))
            .into());
        }
        let bytes = csv.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
        let overwrite = if self.force {
            Overwrite::Yes
        } else {
            Overwrite::No
        };
        fsutil::write_private(&self.out, &bytes, overwrite)?;
        output::notice(&format!(
            "Wrote {written} redemption link(s) to {} (mode 0600). Anyone holding a link can redeem that invitation: share each link only with its user, and delete the file when done.",
            self.out.display()
        ));
        Ok(Outcome::Done)
    }
}
