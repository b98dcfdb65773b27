-- wave_members keyed by (wave_id, user_id) alone: a WITHOUT ROWID table is that key's B-tree,
-- where a rowid table kept the rows in one B-tree and the key in another. Planning a million
-- users writes one B-tree fewer (docs/performance.md). Same columns, constraints and indexes.
-- Migrations are append-only: never edit this file once it is on main; add a new one.

CREATE TABLE wave_members_keyed (
    wave_id                   INTEGER NOT NULL REFERENCES waves (id) ON DELETE CASCADE,
    user_id                   TEXT    NOT NULL REFERENCES user_snapshots (id),
    decision                  TEXT    NOT NULL CHECK (decision IN ('eligible', 'blocked')),
    reasons                   TEXT    NOT NULL DEFAULT '[]', -- JSON array of reason codes
    findings                  TEXT    NOT NULL DEFAULT '[]', -- JSON: reason, severity, detail
    chosen_address            TEXT,
    address_origin            TEXT    CHECK (address_origin IN ('mail', 'other-mails', 'override')),
    set_mail                  INTEGER NOT NULL DEFAULT 0 CHECK (set_mail IN (0, 1)),
    snapshot_fingerprint      TEXT    NOT NULL,              -- rule inputs at plan time (drift check)
    mail_set_fingerprint      TEXT,                          -- right after `run` set mail
    state                     TEXT    NOT NULL CHECK (state IN (
                                  'planned', 'excluded', 'ready', 'inviting', 'invited',
                                  'accepted', 'scrambled', 'failed', 'drifted')),
    failure_kind              TEXT    CHECK (failure_kind IN ('retryable', 'permanent')),
    attempts                  INTEGER NOT NULL DEFAULT 0,
    last_error_code           TEXT,
    last_error_message        TEXT,
    invitation_id             TEXT,
    invite_redeem_url         TEXT,    -- only in own-distribution mode; sensitive
    planned_at                TEXT    NOT NULL,
    state_changed_at          TEXT    NOT NULL,
    invited_at                TEXT,
    accepted_at               TEXT,
    external_state_changed_at TEXT,    -- Graph's externalUserStateChangeDateTime, last read
    scrambled_at              TEXT,
    scrambled_on              TEXT,    -- the domain controller that took the change
    PRIMARY KEY (wave_id, user_id),
    CHECK ((state = 'failed') = (failure_kind IS NOT NULL))
) STRICT, WITHOUT ROWID;

INSERT INTO wave_members_keyed (
    wave_id, user_id, decision, reasons, findings, chosen_address, address_origin, set_mail,
    snapshot_fingerprint, mail_set_fingerprint, state, failure_kind, attempts, last_error_code,
    last_error_message, invitation_id, invite_redeem_url, planned_at, state_changed_at,
    invited_at, accepted_at, external_state_changed_at, scrambled_at, scrambled_on)
SELECT
    wave_id, user_id, decision, reasons, findings, chosen_address, address_origin, set_mail,
    snapshot_fingerprint, mail_set_fingerprint, state, failure_kind, attempts, last_error_code,
    last_error_message, invitation_id, invite_redeem_url, planned_at, state_changed_at,
    invited_at, accepted_at, external_state_changed_at, scrambled_at, scrambled_on
FROM wave_members ORDER BY wave_id, user_id;

DROP TABLE wave_members;
ALTER TABLE wave_members_keyed RENAME TO wave_members;
CREATE INDEX wave_members_user ON wave_members (user_id);
CREATE INDEX wave_members_state ON wave_members (wave_id, state);
