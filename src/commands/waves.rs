//! `waves`: every wave with its funnel in one table, from the store (read-only). The rows are
//! built and rendered by [`crate::report::waves`].

use super::{Ctx, Outcome};
use crate::cli::WavesArgs;
use crate::output;
use crate::report::waves::{WaveRow, render};

/// `waves --json`: every wave, oldest first.
#[derive(serde::Serialize)]
struct WavesDocument<'a> {
    waves: &'a [WaveRow],
}

impl output::JsonDocument for WavesDocument<'_> {
    const SCHEMA: &'static str = "waves";
    const VERSION: u32 = 1;
}

impl WavesArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<Outcome> {
        let settings = ctx.settings()?;
        let store = ctx.existing_store(&settings).await?;
        let mut rows = Vec::new();
        for wave in store.waves().await? {
            let counts = store.state_counts(wave.id).await?;
            let runs = store.runs(wave.id).await?;
            rows.push(WaveRow::new(&wave, &counts, &runs));
        }
        if self.json {
            output::write_json(&WavesDocument { waves: &rows })?;
        } else {
            output::write_stdout(&render(&rows))?;
        }
        Ok(Outcome::Done)
    }
}
