-- Delivery events the mail provider reports (POST /hooks/mail-events),
-- each once: the provider's event id is the key, so the same event posted
-- twice counts once.
CREATE TABLE mail_events (
    id TEXT PRIMARY KEY NOT NULL,
    mail_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    permanent INTEGER NOT NULL DEFAULT 0,
    occurred_at TIMESTAMP NOT NULL,
    received_at TIMESTAMP NOT NULL,
    detail TEXT
);
CREATE INDEX mail_events_mail ON mail_events (mail_id, occurred_at);
-- What the provider last said of a mail: delivered, deferred,
-- soft_bounced, bounced, complained.
ALTER TABLE mail_outbox ADD COLUMN delivery TEXT;
ALTER TABLE mail_outbox ADD COLUMN delivery_at TIMESTAMP;
-- Addresses mail cannot reach (a hard bounce or a complaint), by their
-- blind index: no more mail goes there until the address is corrected.
CREATE TABLE undeliverable_addresses (
    address TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    mail_id TEXT NOT NULL,
    since TIMESTAMP NOT NULL
);
