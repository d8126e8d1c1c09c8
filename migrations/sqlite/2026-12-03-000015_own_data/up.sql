-- The citizen's own data: a session names the device (as the browser
-- calls itself) and a coarse network hint, for the account page's list
-- of sessions; an account may be waiting for its deletion; a deletion
-- carried out leaves one row without personal data, for the audit.
ALTER TABLE sessions ADD COLUMN device TEXT;
ALTER TABLE sessions ADD COLUMN network TEXT;
ALTER TABLE accounts ADD COLUMN deletion_due_at TIMESTAMP;
CREATE TABLE account_deletions (
    account_id TEXT PRIMARY KEY NOT NULL,
    requested_at TIMESTAMP NOT NULL,
    deleted_at TIMESTAMP NOT NULL
);
