-- How a message addresses a user: givenName, surname and preferredLanguage from discovery,
-- for export-links' mail merge and the invitation's language. Not rule inputs: the rule-input
-- fingerprint does not read them. NULL for snapshots taken before they were read.
ALTER TABLE user_snapshots ADD COLUMN given_name TEXT;
ALTER TABLE user_snapshots ADD COLUMN surname TEXT;
ALTER TABLE user_snapshots ADD COLUMN preferred_language TEXT;
