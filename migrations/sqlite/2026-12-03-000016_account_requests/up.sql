-- What citizens ask of their own data, and when it was answered: a
-- correction of name or birth date (with a new KTP photo, decided by
-- staff), and the changes they make themselves (phone, email: answered at
-- once). The request's contents are sealed under the account's data key,
-- bound to table, column and row.
CREATE TABLE account_requests (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    sealed BLOB,
    photo BLOB,
    photo_type TEXT,
    created_at TIMESTAMP NOT NULL,
    due_at TIMESTAMP NOT NULL,
    decided_at TIMESTAMP,
    decided_by TEXT,
    decision TEXT
);
CREATE INDEX account_requests_queue ON account_requests (status, due_at);
CREATE INDEX account_requests_account ON account_requests (account_id);

-- A new email address waiting for its link: the address sealed under the
-- account's data key, its blind index for the uniqueness check, the
-- link's token as its SHA-256.
CREATE TABLE email_changes (
    token_hash TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL,
    sealed BLOB NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX email_changes_account ON email_changes (account_id);
