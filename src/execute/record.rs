//! The record of one run in the `runs` table, from its start to its end: every `run`, `invite`
//! and `scramble` (over LDAPS, or the import of a script's results) is bracketed by one, so a
//! wave's runs show what was done, with which settings, by whom ([`Operator`]: the audit
//! trail's "who" for every event of the run), and how it ended. It owns the run's
//! status; it must not change a member's state (the per-user record is the members' states
//! and the event log).

use time::OffsetDateTime;

use crate::domain::{RunId, WaveId};
use crate::operator::Operator;
use crate::store::{self, RunStatus, Store};

/// A run whose start is recorded; [`RunRecord::finish`] records its end.
#[derive(Debug)]
#[must_use = "a started run is finished with RunRecord::finish"]
pub struct RunRecord {
    id: RunId,
}

impl RunRecord {
    /// Records the start of a run of `command` over `wave` by `operator`, with the settings it
    /// runs with.
    pub async fn start(
        store: &Store,
        wave: WaveId,
        command: &str,
        settings: &serde_json::Value,
        operator: &Operator,
    ) -> Result<Self, store::Error> {
        let id = RunId::new();
        store
            .start_run(
                id,
                wave,
                command,
                settings,
                operator,
                OffsetDateTime::now_utc(),
            )
            .await?;
        Ok(Self { id })
    }

    pub fn id(&self) -> RunId {
        self.id
    }

    /// Records how the run ended: `failed` when `error` says why it stopped, else
    /// `interrupted` or `completed`. `summary` (an object) is stored, with the error added.
    pub async fn finish(
        self,
        store: &Store,
        mut summary: serde_json::Value,
        interrupted: bool,
        error: Option<String>,
    ) -> Result<(), store::Error> {
        let status = match (&error, interrupted) {
            (Some(_), _) => RunStatus::Failed,
            (None, true) => RunStatus::Interrupted,
            (None, false) => RunStatus::Completed,
        };
        if let Some(error) = error {
            summary["error"] = error.into();
        }
        store
            .finish_run(self.id, status, &summary, OffsetDateTime::now_utc())
            .await
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::store::NewWave;
    use crate::store::testing::temp_store;

    #[tokio::test]
    async fn a_run_ends_completed_interrupted_or_failed_with_its_summary() {
        let (_dir, store) = temp_store().await;
        let wave = store
            .create_wave(
                &NewWave {
                    name: "pilot".into(),
                    selector: serde_json::json!({}),
                    cap: None,
                    settings: serde_json::json!({}),
                },
                datetime!(2026-11-21 08:00 UTC),
            )
            .await
            .unwrap();
        let settings = serde_json::json!({ "mode": "test" });
        for (interrupted, error) in [(false, None), (true, None), (true, Some("gone"))] {
            let run = RunRecord::start(&store, wave.id, "run", &settings, &Operator::default())
                .await
                .unwrap();
            run.finish(
                &store,
                serde_json::json!({ "done": 1 }),
                interrupted,
                error.map(str::to_owned),
            )
            .await
            .unwrap();
        }
        let runs = store.runs(wave.id).await.unwrap();
        let ended: Vec<_> = runs.iter().map(|r| (r.status, r.summary.clone())).collect();
        assert_eq!(
            ended,
            [
                (RunStatus::Completed, serde_json::json!({ "done": 1 })),
                (RunStatus::Interrupted, serde_json::json!({ "done": 1 })),
                (
                    RunStatus::Failed,
                    serde_json::json!({ "done": 1, "error": "gone" })
                ),
            ]
        );
        assert!(
            runs.iter()
                .all(|r| r.settings == settings && r.finished_at.is_some())
        );
    }
}
