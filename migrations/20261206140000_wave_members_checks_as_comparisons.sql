-- wave_members' CHECK constraints on `state` and `address_origin` written as comparisons, not
-- as IN lists. SQLite checks a CHECK's IN list of three or more values by building a temporary
-- B-tree of the values for every row written (a constraint is not evaluated once per
-- statement): two such B-trees, twelve inserts, per member. That was about a third of the
-- time a plan of a million users spent writing its members (#19, docs/performance.md).
-- Same columns, keys, constraints (the same values allowed, NULL as before) and index.
--
-- SQLite cannot change a constraint in place: the table is rebuilt. Dropping the old table
-- deletes its rows first, and conversion_baselines references them with ON DELETE CASCADE,
-- so the baselines are set aside and put back in the same transaction.
-- Migrations are append-only: never edit this file once it is on main; add a new one.

CREATE TABLE wave_members_checked (
    wave_id                   INTEGER NOT NULL REFERENCES waves (id) ON DELETE CASCADE,
    user_id                   TEXT    NOT NULL REFERENCES user_snapshots (id),
    decision                  TEXT    NOT NULL CHECK (decision IN ('eligible', 'blocked')),
    reasons                   TEXT    NOT NULL DEFAULT '[]', -- JSON array of reason codes
    findings                  TEXT    NOT NULL DEFAULT '[]', -- JSON: reason, severity, detail
    chosen_address            TEXT,
    address_origin            TEXT    CHECK (address_origin = 'mail'
                                          OR address_origin = 'other-mails'
                                          OR address_origin = 'override'),
    set_mail                  INTEGER NOT NULL DEFAULT 0 CHECK (set_mail IN (0, 1)),
    snapshot_fingerprint      TEXT    NOT NULL,              -- rule inputs at plan time (drift check)
    mail_set_fingerprint      TEXT,                          -- right after `run` set mail
    state                     TEXT    NOT NULL CHECK (state = 'planned'
                                                   OR state = 'excluded'
                                                   OR state = 'ready'
                                                   OR state = 'inviting'
                                                   OR state = 'invited'
                                                   OR state = 'accepted'
                                                   OR state = 'scrambled'
                                                   OR state = 'failed'
                                                   OR state = 'drifted'),
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
    mail_restore              TEXT    CHECK (mail_restore IS NULL
                                             OR mail_restore IN ('restored', 'failed')),
    resent_at                 TEXT,    -- when the invitation was last re-sent (or may have been)
    PRIMARY KEY (wave_id, user_id),
    CHECK ((state = 'failed') = (failure_kind IS NOT NULL))
) STRICT, WITHOUT ROWID;

INSERT INTO wave_members_checked (
    wave_id, user_id, decision, reasons, findings, chosen_address, address_origin, set_mail,
    snapshot_fingerprint, mail_set_fingerprint, state, failure_kind, attempts, last_error_code,
    last_error_message, invitation_id, invite_redeem_url, planned_at, state_changed_at,
    invited_at, accepted_at, external_state_changed_at, scrambled_at, scrambled_on,
    mail_restore, resent_at)
SELECT
    wave_id, user_id, decision, reasons, findings, chosen_address, address_origin, set_mail,
    snapshot_fingerprint, mail_set_fingerprint, state, failure_kind, attempts, last_error_code,
    last_error_message, invitation_id, invite_redeem_url, planned_at, state_changed_at,
    invited_at, accepted_at, external_state_changed_at, scrambled_at, scrambled_on,
    mail_restore, resent_at
FROM wave_members ORDER BY wave_id, user_id;

CREATE TEMP TABLE conversion_baselines_kept AS SELECT * FROM conversion_baselines;

DROP TABLE wave_members;
ALTER TABLE wave_members_checked RENAME TO wave_members;
CREATE INDEX wave_members_state ON wave_members (wave_id, state);

INSERT INTO conversion_baselines SELECT * FROM temp.conversion_baselines_kept;
DROP TABLE temp.conversion_baselines_kept;
