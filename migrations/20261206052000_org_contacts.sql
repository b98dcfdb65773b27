-- Org contacts (orgContact) as discover last read them. The addresses they hold are in the
-- address index (directory_addresses, with the contact's id as object_id), so a plan sees a
-- user's address a contact holds as a collision.
CREATE TABLE org_contacts (
    id              TEXT NOT NULL PRIMARY KEY,
    display_name    TEXT,
    mail            TEXT,
    proxy_addresses TEXT NOT NULL,          -- JSON array of strings
    discovery_id    TEXT NOT NULL           -- the discover that last read it
) STRICT;

-- When discover last read every org contact; NULL: never (the app may not read contacts), so
-- the addresses contacts hold were not checked.
ALTER TABLE tenant ADD COLUMN contacts_read_at TEXT;
