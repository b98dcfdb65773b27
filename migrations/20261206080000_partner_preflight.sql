-- The partner pre-flight (issue #17 item 4): per external domain, whether redemption can be
-- automatic (our cross-tenant inbound "Automatically redeem invitations") or asks the partner,
-- or why it was not checked. Written by `plan` (latest answer per domain), read by `report`.
CREATE TABLE partner_preflight (
    domain      TEXT PRIMARY KEY NOT NULL COLLATE NOCASE,
    tenant_id   TEXT,
    redemption  TEXT NOT NULL CHECK (redemption IN (
                    'automatic-if-partner-allows', 'asks-partner', 'not-checked')),
    reason      TEXT NOT NULL,
    detail      TEXT,
    checked_at  TEXT NOT NULL
) STRICT;
