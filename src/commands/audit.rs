//! `audit export`: the audit trail (every tenant write, with its operator and request ids) from
//! the state database, as CSV or JSON Lines, to stdout or atomically to a file. Read-only: it
//! opens an existing database and never creates one. The rows come from
//! [`crate::store::Store::tenant_writes`] and are rendered by [`crate::report::audit`].

use super::{Ctx, Outcome, stored_wave};
use crate::cli::{AuditArgs, AuditCommand, AuditExportArgs, AuditFormat};
use crate::fsutil::{self, Overwrite};
use crate::output;
use crate::report::audit;
use crate::store::AuditFilter;

impl AuditArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<Outcome> {
        match self.command {
            AuditCommand::Export(args) => args.run(ctx).await,
        }
    }
}

impl AuditExportArgs {
    async fn run(self, ctx: &Ctx) -> anyhow::Result<Outcome> {
        let settings = ctx.settings()?;
        let store = ctx.existing_store(&settings).await?;
        let wave = match &self.wave {
            Some(name) => Some(stored_wave(&store, name).await?.id),
            None => None,
        };
        let writes = store
            .tenant_writes(AuditFilter {
                wave,
                since: self.since,
            })
            .await?;
        let text = match self.format {
            AuditFormat::Csv => audit::render_csv(&writes),
            AuditFormat::Json => audit::render_json_lines(&writes),
        };
        match &self.out {
            Some(path) => {
                let overwrite = if self.force {
                    Overwrite::Yes
                } else {
                    Overwrite::No
                };
                fsutil::write_private(path, text.as_bytes(), overwrite)?;
                output::notice(&format!(
                    "Wrote {} tenant write(s) to {} (mode 0600).",
                    writes.len(),
                    path.display()
                ));
            }
            None => output::write_stdout(&text)?,
        }
        Ok(Outcome::Done)
    }
}
