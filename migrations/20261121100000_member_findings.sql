-- Each wave member's findings in full (reason, severity, detail) and where its address came
-- from. `reasons` keeps the codes alone, for queries such as json_each(reasons).
ALTER TABLE wave_members ADD COLUMN findings TEXT NOT NULL DEFAULT '[]';
ALTER TABLE wave_members ADD COLUMN address_origin TEXT
    CHECK (address_origin IN ('mail', 'other-mails', 'override'));
