//! `backup`: a consistent copy of the state database (the store's `copy_into`), written
//! privately and atomically beside its destination. Reads the database; never creates one.

use anyhow::Context as _;

use super::{Ctx, Outcome};
use crate::cli::BackupArgs;
use crate::fsutil::{Overwrite, PendingFile};
use crate::output;

impl BackupArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<Outcome> {
        let settings = ctx.settings()?;
        let store = ctx.existing_store(&settings).await?;
        let copy = PendingFile::new(&self.out)?;
        store.copy_into(copy.path()).await?;
        copy.persist(if self.force {
            Overwrite::Yes
        } else {
            Overwrite::No
        })
        .with_context(|| format!("writing the copy of {}", settings.store.path.display()))?;
        output::write_stdout(&format!(
            "Copied {} to {} (mode 0600, checked with SQLite's integrity check).\n",
            settings.store.path.display(),
            self.out.display()
        ))?;
        Ok(Outcome::Done)
    }
}
