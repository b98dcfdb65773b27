//! Runs of the executor: one row per `run` or `invite`, with the invitation settings it sent
//! and how it ended, and who ran it ([`Operator`]: the audit trail's "who", which every event of
//! the run reaches through its run id). The per-user record of a run is the wave's member
//! states and the event log.

use time::OffsetDateTime;

use super::{
    Result, Store, parse_code, parse_json, parse_optional_timestamp, parse_timestamp, timestamp,
};
use crate::domain::{RunId, WaveId};
use crate::operator::Operator;

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    /// Every member it set out to handle was handled (some may have failed).
    Completed,
    /// Stopped early by the operator (Ctrl-C); in-flight work was recorded.
    Interrupted,
    /// Stopped by an error that concerns the whole run (permissions, authentication).
    Failed,
}

impl RunStatus {
    pub fn code(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Interrupted => "interrupted",
            Self::Failed => "failed",
        }
    }

    fn parse(code: &str) -> Option<Self> {
        [
            Self::Running,
            Self::Completed,
            Self::Interrupted,
            Self::Failed,
        ]
        .into_iter()
        .find(|s| s.code() == code)
    }
}

/// A stored run.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub id: RunId,
    pub wave_id: WaveId,
    pub command: String,
    pub settings: serde_json::Value,
    pub started_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
    pub status: RunStatus,
    pub summary: serde_json::Value,
    pub operator: Operator,
}

#[derive(sqlx::FromRow)]
struct RunRow {
    id: String,
    wave_id: i64,
    command: String,
    settings: String,
    started_at: String,
    finished_at: Option<String>,
    status: String,
    summary: String,
    #[sqlx(flatten)]
    operator: OperatorRow,
}

/// The operator columns of `runs`, as stored.
#[derive(sqlx::FromRow)]
pub(super) struct OperatorRow {
    os_user: Option<String>,
    host: Option<String>,
    app_id: Option<String>,
    signed_in_user: Option<String>,
    signed_in_oid: Option<String>,
    tool_version: Option<String>,
}

impl From<OperatorRow> for Operator {
    fn from(row: OperatorRow) -> Self {
        Self {
            os_user: row.os_user,
            host: row.host,
            app_id: row.app_id,
            signed_in_user: row.signed_in_user,
            signed_in_oid: row.signed_in_oid,
            tool_version: row.tool_version,
        }
    }
}

impl Store {
    /// Records the start of a run by `operator`.
    pub async fn start_run(
        &self,
        id: RunId,
        wave: WaveId,
        command: &str,
        settings: &serde_json::Value,
        operator: &Operator,
        at: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO runs (id, wave_id, command, settings, started_at, os_user, host, app_id,
                signed_in_user, signed_in_oid, tool_version)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(wave.0)
        .bind(command)
        .bind(settings.to_string())
        .bind(timestamp(at))
        .bind(&operator.os_user)
        .bind(&operator.host)
        .bind(&operator.app_id)
        .bind(&operator.signed_in_user)
        .bind(&operator.signed_in_oid)
        .bind(&operator.tool_version)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records how a run ended.
    pub async fn finish_run(
        &self,
        id: RunId,
        status: RunStatus,
        summary: &serde_json::Value,
        at: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query("UPDATE runs SET status = ?, summary = ?, finished_at = ? WHERE id = ?")
            .bind(status.code())
            .bind(summary.to_string())
            .bind(timestamp(at))
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A wave's runs, oldest first.
    pub async fn runs(&self, wave: WaveId) -> Result<Vec<Run>> {
        let rows: Vec<RunRow> = sqlx::query_as(
            "SELECT id, wave_id, command, settings, started_at, finished_at, status, summary,
                    os_user, host, app_id, signed_in_user, signed_in_oid, tool_version
             FROM runs WHERE wave_id = ? ORDER BY started_at, id",
        )
        .bind(wave.0)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                let status = row.status;
                Ok(Run {
                    id: parse_code("runs.id", &row.id)?,
                    wave_id: WaveId(row.wave_id),
                    command: row.command,
                    settings: parse_json("runs.settings", &row.settings)?,
                    started_at: parse_timestamp("runs.started_at", &row.started_at)?,
                    finished_at: parse_optional_timestamp(
                        "runs.finished_at",
                        row.finished_at.as_deref(),
                    )?,
                    status: RunStatus::parse(&status).ok_or(super::Error::Corrupt {
                        column: "runs.status",
                        message: format!("unknown status `{status}`"),
                    })?,
                    summary: parse_json("runs.summary", &row.summary)?,
                    operator: row.operator.into(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::store::NewWave;
    use crate::store::testing::temp_store;

    #[tokio::test]
    async fn a_run_is_recorded_from_start_to_end() {
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
        let id = RunId::new();
        let settings = serde_json::json!({"send_message": false});
        let operator = Operator {
            os_user: Some("alice".into()),
            host: Some("build-01".into()),
            app_id: Some("app-1".into()),
            signed_in_user: None,
            signed_in_oid: None,
            tool_version: Some("0.1.0 (commit abc, 2026-12-06)".into()),
        };
        store
            .start_run(
                id,
                wave.id,
                "run",
                &settings,
                &operator,
                datetime!(2026-11-21 09:00 UTC),
            )
            .await
            .unwrap();
        let runs = store.runs(wave.id).await.unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].status, RunStatus::Running);
        assert_eq!(runs[0].settings, settings);
        assert_eq!(runs[0].operator, operator);
        store
            .finish_run(
                id,
                RunStatus::Interrupted,
                &serde_json::json!({"invited": 3}),
                datetime!(2026-11-21 09:05 UTC),
            )
            .await
            .unwrap();
        let run = &store.runs(wave.id).await.unwrap()[0];
        assert_eq!(run.status, RunStatus::Interrupted);
        assert_eq!(run.finished_at, Some(datetime!(2026-11-21 09:05 UTC)));
        assert_eq!(run.summary["invited"], 3);
    }
}
