-- The users delta link (GET /users/delta, NOTES §3.3) of the last complete whole-tenant
-- discover: the next discover reads only the changes since it (#19 item 4). At most one row.
-- The link carries a state token, not a credential: it is useless without a bearer token.
CREATE TABLE user_delta_link (
    singleton   INTEGER PRIMARY KEY CHECK (singleton = 1),
    link        TEXT NOT NULL,
    -- The tenant and the $select the link was obtained for: a link of another tenant or of
    -- another property list is not used.
    tenant_id   TEXT NOT NULL,
    user_select TEXT NOT NULL,
    obtained_at TEXT NOT NULL
);
