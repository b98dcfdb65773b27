-- Users a complete discovery of the whole tenant no longer saw (deleted, or out of reach).
-- Their snapshots stay for the history of the waves they were in; their addresses leave the
-- collision index so they cannot block anyone.
ALTER TABLE user_snapshots ADD COLUMN retired_at TEXT;
