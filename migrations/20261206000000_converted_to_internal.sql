-- When the user was converted from external back to internal (Graph beta's conversion stamp,
-- NOTES §2.x): such a user cannot be made external again, and the rules block it. NULL when
-- the service did not return the stamp (it is not a documented v1.0 property).
ALTER TABLE user_snapshots ADD COLUMN converted_to_internal_at TEXT;
