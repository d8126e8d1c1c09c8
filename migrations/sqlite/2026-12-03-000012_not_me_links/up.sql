-- "Not me": a mail about a registration or an account carries a second
-- link, a single-use token stored here only as its SHA-256, with which the
-- recipient cancels a registration they never made (or, for an account,
-- starts the account-security path). Used once: not_me_used_at.
ALTER TABLE mail_outbox ADD COLUMN not_me_hash TEXT;
ALTER TABLE mail_outbox ADD COLUMN not_me_used_at TIMESTAMP;
CREATE UNIQUE INDEX mail_outbox_not_me ON mail_outbox (not_me_hash);
