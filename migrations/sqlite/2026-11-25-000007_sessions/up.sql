-- Server-side session records: the cookie carries only a random id (its
-- SHA-256 is stored), so a session can be ended (sign-out, sign out
-- everywhere, password change, staff disabled, idle or absolute timeout)
-- and every instance sees it ended.
CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);
CREATE INDEX sessions_subject ON sessions (kind, subject_id);
CREATE INDEX sessions_expires ON sessions (expires_at);
