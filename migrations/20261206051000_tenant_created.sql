-- When the tenant was created (`organization.createdDateTime`): a tenant younger than 30 days
-- has a daily invitation quota (NOTES §8.2a), which `check` and the report warn about.
ALTER TABLE tenant ADD COLUMN created_at TEXT;
