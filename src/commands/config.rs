//! `config`: print the effective settings and where each value came from.

use serde::Serialize;

use super::{Ctx, Outcome};
use crate::cli::ConfigArgs;
use crate::config::{CredentialChoice, EffectiveValue};
use crate::output;

#[derive(Serialize)]
struct Listing<'a> {
    config_file: Option<String>,
    /// The credential `auth.method` leads to (for `auto`, with what was skipped and why).
    credential: CredentialChoice,
    values: &'a [EffectiveValue],
}

impl output::JsonDocument for Listing<'_> {
    const SCHEMA: &'static str = "config";
    const VERSION: u32 = 1;
}

impl ConfigArgs {
    pub fn run(self, ctx: &Ctx) -> anyhow::Result<Outcome> {
        let settings = ctx.settings()?;
        let values = settings.effective_values();
        if self.json {
            let listing = Listing {
                config_file: settings
                    .config_file
                    .as_ref()
                    .map(|p| p.display().to_string()),
                credential: settings.credential_choice(),
                values,
            };
            output::write_json(&listing)?;
            return Ok(Outcome::Done);
        }
        let file = match &settings.config_file {
            Some(path) => format!("Configuration file: {}\n\n", path.display()),
            None => format!(
                "Configuration file: none at {} (built-in defaults; create one with `b2b-convert init`)\n\n",
                ctx.config_path().display()
            ),
        };
        let credential = format!("Credential: {}\n\n", settings.credential_choice());
        let rows = values
            .iter()
            .map(|v| [v.key.clone(), display_value(&v.value), v.origin.to_string()]);
        output::write_stdout(
            &(file + &credential + &output::table(["KEY", "VALUE", "FROM"], rows)),
        )?;
        Ok(Outcome::Done)
    }
}

fn display_value(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "(not set)".to_owned(),
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Array(items) => items
            .iter()
            .map(display_value)
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}
