-- Re-sent invitations (`reinvite`, issues 15 and 17): a re-send operation per selection, each
-- selected member's progress in it, and the last time a member's invitation was re-sent.
-- A rerun after an interruption resumes the unfinished operation of its wave, so a member
-- whose re-send was recorded (or may have landed) is not sent again by it.
-- Migrations are append-only: never edit this file once it is on main; add a new one.

-- When the member's invitation was last re-sent (or may have been: an answer lost).
ALTER TABLE wave_members ADD COLUMN resent_at TEXT;

-- One re-send operation over a wave: what it selected, when, and whether it is over.
CREATE TABLE reinvites (
    id          TEXT    PRIMARY KEY NOT NULL, -- UUID v7
    wave_id     INTEGER NOT NULL REFERENCES waves (id) ON DELETE CASCADE,
    selection   TEXT    NOT NULL,             -- JSON: the selectors as given
    started_at  TEXT    NOT NULL,
    finished_at TEXT                          -- NULL while members are left to settle
) STRICT;
CREATE INDEX reinvites_wave ON reinvites (wave_id, finished_at);

-- Each member an operation selected, and how far its re-send got:
-- selected → sending (intent recorded) → sent | unknown (answer lost, may have landed) |
-- skipped (no longer pending / accepted) | failed.
CREATE TABLE reinvite_members (
    reinvite_id  TEXT NOT NULL REFERENCES reinvites (id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN (
                     'selected', 'sending', 'sent', 'unknown', 'skipped', 'failed')),
    state_before TEXT,    -- Graph's externalUserStateChangeDateTime read before sending
    note         TEXT,    -- why skipped or failed
    changed_at   TEXT NOT NULL,
    PRIMARY KEY (reinvite_id, user_id)
) STRICT, WITHOUT ROWID;
