//! `init`: write the commented example config (never over an existing one without `--force`)
//! and create the state database.

use anyhow::Context;

use super::{Ctx, Outcome, Refused};
use crate::cli::InitArgs;
use crate::config::EXAMPLE_CONFIG;
use crate::fsutil::{self, Overwrite};
use crate::output;

impl InitArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<Outcome> {
        let path = ctx.config_path();
        let overwrite = if self.force {
            Overwrite::Yes
        } else {
            Overwrite::No
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating the folder {}", parent.display()))?;
        }
        match fsutil::write_private(path, EXAMPLE_CONFIG.as_bytes(), overwrite) {
            Ok(()) => {}
            Err(fsutil::Error::Exists(_)) => {
                return Err(Refused(format!(
                    "{} already exists; it was left as it is. Use --force to replace it with the \
                     example (your edits would be lost), or --config to write elsewhere",
                    path.display()
                ))
                .into());
            }
            Err(err) => return Err(err).context("writing the configuration file"),
        }
        tracing::info!(path = %path.display(), "configuration written");
        let settings = ctx
            .settings()
            .context("loading the configuration just written")?;
        let store = ctx.store(&settings).await?;
        let version = store.schema_version().await?;
        store.close().await;

        output::write_stdout(&format!(
            "Wrote configuration  {} (mode 0600)\n\
             State database       {} (mode 0600, schema {version})\n\
             \n\
             Next: set tenant.tenant_id and tenant.client_id in the configuration (or export\n\
             AZURE_TENANT_ID and AZURE_CLIENT_ID), provide the credential for auth.method (for\n\
             client-secret: export AZURE_CLIENT_SECRET), then review everything with\n\
             `b2b-convert config`.\n",
            path.display(),
            settings.store.path.display(),
        ))?;
        Ok(Outcome::Done)
    }
}
