-- Whether `run` put back the `mail` it had set when the member's invitation failed for good
-- (issue 15): 'restored', 'failed' (the restore itself failed: reported, never silent), or
-- NULL (nothing to put back). The previous and new values are in the event log
-- (`mail.intent`, `mail.restored`, `mail.restore-failed`).
-- Migrations are append-only: never edit this file once it is on main; add a new one.

ALTER TABLE wave_members ADD COLUMN mail_restore TEXT
    CHECK (mail_restore IS NULL OR mail_restore IN ('restored', 'failed'));
