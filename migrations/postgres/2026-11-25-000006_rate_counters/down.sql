CREATE TABLE rate_events (
    id TEXT PRIMARY KEY NOT NULL,
    key TEXT NOT NULL,
    at TIMESTAMP NOT NULL
);
CREATE INDEX rate_events_key_at ON rate_events (key, at);
DROP TABLE rate_counters;
ALTER TABLE failures DROP COLUMN email_shape;
