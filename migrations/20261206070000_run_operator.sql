-- Who ran each run, for the audit trail (`audit export`): stored once per run; every event of
-- the run reaches it through `events.run_id`. Never a token: only what its claims name.
-- Migrations are append-only: never edit this file once it is on main; add a new one.

ALTER TABLE runs ADD COLUMN os_user        TEXT; -- USER / LOGNAME / USERNAME
ALTER TABLE runs ADD COLUMN host           TEXT; -- the machine's host name
ALTER TABLE runs ADD COLUMN app_id         TEXT; -- the token's appid / azp
ALTER TABLE runs ADD COLUMN signed_in_user TEXT; -- a delegated token's upn / preferred_username
ALTER TABLE runs ADD COLUMN signed_in_oid  TEXT; -- a delegated token's oid
ALTER TABLE runs ADD COLUMN tool_version   TEXT; -- the tool's long version

-- `audit export` reads the tenant writes in time order.
CREATE INDEX events_at ON events (at);
