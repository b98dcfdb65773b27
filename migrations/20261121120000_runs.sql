-- Runs of the executor, and what a member needs for a safe resume.
-- Migrations are append-only: never edit this file once it is on main; add a new one.

-- One `run` (or `invite`) of a wave: when, with which invitation settings, how it ended.
CREATE TABLE runs (
    id          TEXT    PRIMARY KEY NOT NULL, -- UUID v7
    wave_id     INTEGER NOT NULL REFERENCES waves (id) ON DELETE CASCADE,
    command     TEXT    NOT NULL,             -- 'run' or 'invite'
    settings    TEXT    NOT NULL,             -- JSON: the invitation settings sent (no secrets)
    started_at  TEXT    NOT NULL,
    finished_at TEXT,
    status      TEXT    NOT NULL DEFAULT 'running'
                CHECK (status IN ('running', 'completed', 'interrupted', 'failed')),
    summary     TEXT    NOT NULL DEFAULT '{}' -- JSON: counts by outcome
) STRICT;
CREATE INDEX runs_wave ON runs (wave_id, started_at);

-- The fingerprint of the user right after `run` set its `mail` (the plan's "set mail" step),
-- so a resumed run recognises its own change and does not call it drift.
ALTER TABLE wave_members ADD COLUMN mail_set_fingerprint TEXT;
-- Graph's externalUserStateChangeDateTime as last read by `status --refresh` or `run`.
ALTER TABLE wave_members ADD COLUMN external_state_changed_at TEXT;
