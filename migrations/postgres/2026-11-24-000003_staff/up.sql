-- Support staff: their accounts (separate from citizens'), what they did
-- (audit), their notes on failures, and failures marked resolved.
CREATE TABLE staff (
    id TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    disabled_at TIMESTAMP,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until TIMESTAMP,
    session_epoch BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE staff_audit (
    id TEXT PRIMARY KEY NOT NULL,
    at TIMESTAMP NOT NULL,
    staff_email TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT ''
);
CREATE INDEX staff_audit_at ON staff_audit (at, id);

CREATE TABLE failure_notes (
    id TEXT PRIMARY KEY NOT NULL,
    reference TEXT NOT NULL REFERENCES failures (reference) ON DELETE CASCADE,
    staff_email TEXT NOT NULL,
    note TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX failure_notes_reference ON failure_notes (reference, created_at);

ALTER TABLE failures ADD COLUMN resolved_at TIMESTAMP;
ALTER TABLE failures ADD COLUMN resolved_by TEXT;
