-- What each user's conversion must keep, read from Graph right before its invitation: `verify`
-- compares the user's state after the conversion with it. One row per wave member; the latest
-- reading before the invitation replaces an earlier one. Nothing secret.
CREATE TABLE conversion_baselines (
    wave_id              INTEGER NOT NULL,
    user_id              TEXT    NOT NULL,
    user_principal_name  TEXT    NOT NULL,
    group_ids            TEXT    NOT NULL DEFAULT '[]', -- JSON array of group object ids, sorted
    app_role_assignments INTEGER NOT NULL CHECK (app_role_assignments >= 0),
    taken_at             TEXT    NOT NULL,
    PRIMARY KEY (wave_id, user_id),
    FOREIGN KEY (wave_id, user_id) REFERENCES wave_members (wave_id, user_id) ON DELETE CASCADE
) STRICT;
