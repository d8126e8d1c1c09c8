-- The failure log: one row per failure a citizen met, found by the
-- reference code they read out. No values typed into the form, only the
-- names of the failing fields; the NIK masked plus a keyed hash to search by.
CREATE TABLE failures (
    reference TEXT PRIMARY KEY NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    reason TEXT NOT NULL,
    fields TEXT NOT NULL DEFAULT '',
    email TEXT,
    nik_masked TEXT,
    nik_hash TEXT,
    client_ip TEXT,
    user_agent TEXT,
    path TEXT NOT NULL
);
CREATE INDEX failures_occurred ON failures (occurred_at, reference);
CREATE INDEX failures_reason ON failures (reason, occurred_at, reference);
CREATE INDEX failures_email ON failures (email, occurred_at);
CREATE INDEX failures_nik_hash ON failures (nik_hash, occurred_at);

-- Events counted by the rate limits (shared by every instance).
CREATE TABLE rate_events (
    id TEXT PRIMARY KEY NOT NULL,
    key TEXT NOT NULL,
    at TIMESTAMP NOT NULL
);
CREATE INDEX rate_events_key_at ON rate_events (key, at);
