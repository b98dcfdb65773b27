-- No query looks wave members up by user alone: every read names the wave (the primary key's
-- first column) or scans the waves' pending states. Nor does the foreign key to
-- user_snapshots need it: snapshots are retired, never deleted, and their ids never change.
-- Planning a million users wrote ~46 MB of this index for nothing (docs/performance.md).
-- Migrations are append-only: never edit this file once it is on main; add a new one.

DROP INDEX wave_members_user;
