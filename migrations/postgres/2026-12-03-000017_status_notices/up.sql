-- The incident notice staff post on the public status page (`/status`),
-- shown as a banner on every citizen page while it is on. Its text is for
-- the public: no personal data. Who posted and ended it is also in the
-- staff audit.
CREATE TABLE status_notices (
    id TEXT PRIMARY KEY NOT NULL,
    text_id TEXT NOT NULL,
    text_en TEXT NOT NULL,
    started_at TIMESTAMP NOT NULL,
    started_by TEXT NOT NULL,
    ended_at TIMESTAMP,
    ended_by TEXT
);
CREATE INDEX status_notices_started ON status_notices (started_at);
