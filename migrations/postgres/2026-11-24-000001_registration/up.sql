-- Registration: KTP uploads (kept with a draft until an account owns them),
-- accounts, their single-use tokens, idempotency records of submitted forms,
-- and the mail outbox.
CREATE TABLE ktp_uploads (
    id TEXT PRIMARY KEY NOT NULL,
    file_name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    data BYTEA NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX ktp_uploads_created_at ON ktp_uploads (created_at);

CREATE TABLE accounts (
    id TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL UNIQUE,
    nik TEXT NOT NULL UNIQUE,
    full_name TEXT NOT NULL,
    birth_date TEXT NOT NULL,
    phone TEXT NOT NULL,
    npwp TEXT,
    password_hash TEXT NOT NULL,
    ktp_upload_id TEXT NOT NULL REFERENCES ktp_uploads (id),
    lang TEXT NOT NULL,
    verified_at TIMESTAMP,
    session_epoch BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX accounts_unverified ON accounts (verified_at, created_at);

CREATE TABLE account_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP,
    superseded_at TIMESTAMP
);
CREATE INDEX account_tokens_account ON account_tokens (account_id, purpose, created_at);

CREATE TABLE registration_submissions (
    submission_id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT REFERENCES accounts (id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE mail_outbox (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT REFERENCES accounts (id) ON DELETE SET NULL,
    kind TEXT NOT NULL,
    to_address TEXT NOT NULL,
    subject TEXT NOT NULL,
    text_body TEXT NOT NULL,
    html_body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    locked_until TIMESTAMP,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP
);
CREATE INDEX mail_outbox_due ON mail_outbox (status, next_attempt_at);
CREATE INDEX mail_outbox_to ON mail_outbox (to_address, created_at);
