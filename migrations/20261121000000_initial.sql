-- b2b-convert state database, first schema.
-- Migrations are append-only: never edit this file once it is on main; add a new one.
-- Timestamps are UTC text, fixed width (YYYY-MM-DDTHH:MM:SS.ffffffZ), so they sort as text.
-- Collections from Graph are stored as JSON arrays in TEXT columns.

-- The one tenant this database belongs to. A database never mixes tenants.
CREATE TABLE tenant (
    singleton    INTEGER PRIMARY KEY NOT NULL CHECK (singleton = 1),
    tenant_id    TEXT    NOT NULL,
    display_name TEXT,
    fetched_at   TEXT    NOT NULL
) STRICT;

-- GET /domains, replaced as a whole by each discovery.
CREATE TABLE tenant_domains (
    name                TEXT    PRIMARY KEY NOT NULL COLLATE NOCASE,
    is_verified         INTEGER NOT NULL CHECK (is_verified IN (0, 1)),
    is_default          INTEGER NOT NULL CHECK (is_default IN (0, 1)),
    is_initial          INTEGER NOT NULL CHECK (is_initial IN (0, 1)),
    authentication_type TEXT
) STRICT;

-- Domains configured for SAML/WS-Fed direct federation, replaced as a whole by each discovery.
CREATE TABLE federation_domains (
    domain           TEXT PRIMARY KEY NOT NULL COLLATE NOCASE,
    configuration_id TEXT NOT NULL,
    display_name     TEXT
) STRICT;

-- Home-realm discovery answers per external domain (advisory; refreshed when old).
-- Exactly one of realm_kind (an answer) and error (a failed lookup) is set.
CREATE TABLE realm_cache (
    domain           TEXT PRIMARY KEY NOT NULL COLLATE NOCASE,
    realm_kind       TEXT CHECK (realm_kind IN ('managed', 'federated', 'unknown')),
    cloud_instance   TEXT,
    federation_brand TEXT,
    error            TEXT,
    checked_at       TEXT NOT NULL,
    CHECK ((realm_kind IS NULL) <> (error IS NULL))
) STRICT;

-- One discovery run: what was asked for and how far it got.
CREATE TABLE discoveries (
    id          TEXT    PRIMARY KEY NOT NULL, -- UUID v7
    selector    TEXT    NOT NULL,             -- JSON description of the user selection
    started_at  TEXT    NOT NULL,
    finished_at TEXT,
    users_seen  INTEGER NOT NULL DEFAULT 0,
    pages       INTEGER NOT NULL DEFAULT 0,
    status      TEXT    NOT NULL DEFAULT 'running'
                CHECK (status IN ('running', 'completed', 'failed'))
) STRICT;

-- The latest snapshot of each user, with every property the eligibility rules read.
CREATE TABLE user_snapshots (
    id                                  TEXT PRIMARY KEY NOT NULL, -- Graph object id
    user_principal_name                 TEXT NOT NULL,
    display_name                        TEXT,
    mail                                TEXT,
    other_mails                         TEXT NOT NULL DEFAULT '[]',
    proxy_addresses                     TEXT NOT NULL DEFAULT '[]',
    user_type                           TEXT,
    account_enabled                     INTEGER CHECK (account_enabled IN (0, 1)),
    creation_type                       TEXT,
    external_user_state                 TEXT,
    external_user_state_changed_at      TEXT,
    on_premises_sync_enabled            INTEGER CHECK (on_premises_sync_enabled IN (0, 1)),
    on_premises_immutable_id            TEXT,
    on_premises_sam_account_name        TEXT,
    on_premises_distinguished_name      TEXT,
    on_premises_domain_name             TEXT,
    on_premises_user_principal_name     TEXT,
    assigned_plans                      TEXT NOT NULL DEFAULT '[]',
    assigned_licenses                   TEXT NOT NULL DEFAULT '[]',
    identities                          TEXT NOT NULL DEFAULT '[]',
    snapshot_at                         TEXT NOT NULL,
    discovery_id                        TEXT REFERENCES discoveries (id)
) STRICT;
CREATE INDEX user_snapshots_upn ON user_snapshots (user_principal_name COLLATE NOCASE);

-- Every address a directory object answers to, lower-cased, for collision checks at scale.
-- Kept in step with user_snapshots by the store (same transaction).
CREATE TABLE directory_addresses (
    address   TEXT NOT NULL,
    object_id TEXT NOT NULL,
    source    TEXT NOT NULL
              CHECK (source IN ('mail', 'other_mails', 'proxy_addresses', 'user_principal_name')),
    PRIMARY KEY (address, object_id, source)
) STRICT, WITHOUT ROWID;
CREATE INDEX directory_addresses_object ON directory_addresses (object_id);

-- A migration wave: which users (selector), how many at most (cap), with which settings.
CREATE TABLE waves (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    selector   TEXT    NOT NULL,          -- JSON
    cap        INTEGER CHECK (cap IS NULL OR cap > 0),
    settings   TEXT    NOT NULL,          -- JSON: invitation settings and rule modes used
    plan_hash  TEXT,                      -- hash of the stored plan, to show re-plan changes
    created_at TEXT    NOT NULL,
    planned_at TEXT
) STRICT;

-- One user in one wave: the plan's decision and the user's progress through the run.
CREATE TABLE wave_members (
    wave_id              INTEGER NOT NULL REFERENCES waves (id) ON DELETE CASCADE,
    user_id              TEXT    NOT NULL REFERENCES user_snapshots (id),
    decision             TEXT    NOT NULL CHECK (decision IN ('eligible', 'blocked')),
    reasons              TEXT    NOT NULL DEFAULT '[]', -- JSON array of reason codes
    chosen_address       TEXT,
    set_mail             INTEGER NOT NULL DEFAULT 0 CHECK (set_mail IN (0, 1)),
    snapshot_fingerprint TEXT    NOT NULL,              -- rule inputs at plan time (drift check)
    state                TEXT    NOT NULL CHECK (state IN (
                             'planned', 'excluded', 'ready', 'inviting', 'invited',
                             'accepted', 'scrambled', 'failed', 'drifted')),
    failure_kind         TEXT    CHECK (failure_kind IN ('retryable', 'permanent')),
    attempts             INTEGER NOT NULL DEFAULT 0,
    last_error_code      TEXT,
    last_error_message   TEXT,
    invitation_id        TEXT,
    invite_redeem_url    TEXT,    -- only in own-distribution mode; sensitive
    planned_at           TEXT    NOT NULL,
    state_changed_at     TEXT    NOT NULL,
    invited_at           TEXT,
    accepted_at          TEXT,
    scrambled_at         TEXT,
    scrambled_on         TEXT,    -- the domain controller that took the change
    PRIMARY KEY (wave_id, user_id),
    CHECK ((state = 'failed') = (failure_kind IS NOT NULL))
) STRICT;
CREATE INDEX wave_members_user ON wave_members (user_id);
CREATE INDEX wave_members_state ON wave_members (wave_id, state);

-- Append-only log of every tenant write and every state change, with Graph's request ids.
-- Never holds secrets: no tokens, passwords, or redeem URLs.
CREATE TABLE events (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    at                TEXT    NOT NULL,
    run_id            TEXT,
    wave_id           INTEGER,
    user_id           TEXT,
    kind              TEXT    NOT NULL,
    http_method       TEXT,
    http_path         TEXT,
    http_status       INTEGER,
    request_id        TEXT,
    client_request_id TEXT,
    duration_ms       INTEGER,
    detail            TEXT    NOT NULL DEFAULT '{}' -- JSON
) STRICT;
CREATE INDEX events_wave ON events (wave_id, id);
CREATE INDEX events_user ON events (user_id, id);

CREATE TRIGGER events_are_append_only_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only');
END;
CREATE TRIGGER events_are_append_only_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only');
END;
