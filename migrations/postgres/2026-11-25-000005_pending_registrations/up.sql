-- Details first, password after the mailed link: a registration waits here
-- (no password) until the citizen chooses a password through a link; only
-- then does it become an account. Email is unique among registrations (the
-- newest data of one address replaces the older); a NIK may wait under
-- several addresses, and the first to finish owns it.
CREATE TABLE registrations (
    id TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL UNIQUE,
    nik TEXT NOT NULL,
    nik_hash TEXT,
    full_name TEXT NOT NULL,
    birth_date TEXT NOT NULL,
    phone TEXT NOT NULL,
    npwp TEXT,
    ktp_upload_id TEXT NOT NULL REFERENCES ktp_uploads (id),
    lang TEXT NOT NULL,
    -- Registrations made with the old form carry the hash of the password
    -- chosen there: their link verifies with one button press.
    legacy_password_hash TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    -- When a link was last sent; the resend cooldown is a conditional
    -- update of this column, so it holds under concurrent requests.
    last_sent_at TIMESTAMP,
    link_opened_at TIMESTAMP,
    completed_at TIMESTAMP,
    account_id TEXT REFERENCES accounts (id) ON DELETE SET NULL
);
CREATE INDEX registrations_nik ON registrations (nik);
CREATE INDEX registrations_nik_hash ON registrations (nik_hash);
CREATE INDEX registrations_created ON registrations (created_at);
CREATE INDEX registrations_upload ON registrations (ktp_upload_id);

-- Every link sent for a registration works until it expires or the
-- password is chosen: a resend adds a token and replaces none.
CREATE TABLE registration_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    registration_id TEXT NOT NULL REFERENCES registrations (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX registration_tokens_registration ON registration_tokens (registration_id, created_at);

ALTER TABLE registration_submissions ADD COLUMN registration_id TEXT;
ALTER TABLE mail_outbox ADD COLUMN registration_id TEXT;

-- Accounts waiting for verification under the old flow move over, with
-- their password hash and their unexpired links.
INSERT INTO registrations (id, email, nik, nik_hash, full_name, birth_date, phone, npwp,
    ktp_upload_id, lang, legacy_password_hash, created_at, updated_at, last_sent_at)
SELECT a.id, a.email, a.nik, a.nik_hash, a.full_name, a.birth_date, a.phone, a.npwp,
    a.ktp_upload_id, a.lang, a.password_hash, a.created_at, a.created_at,
    (SELECT MAX(t.created_at) FROM account_tokens t WHERE t.account_id = a.id AND t.purpose = 'verify')
FROM accounts a WHERE a.verified_at IS NULL;

INSERT INTO registration_tokens (token_hash, registration_id, created_at, expires_at)
SELECT t.token_hash, t.account_id, t.created_at, t.expires_at
FROM account_tokens t JOIN accounts a ON a.id = t.account_id
WHERE a.verified_at IS NULL AND t.purpose = 'verify' AND t.used_at IS NULL AND t.superseded_at IS NULL;

UPDATE registration_submissions SET registration_id = account_id, account_id = NULL
WHERE account_id IN (SELECT id FROM accounts WHERE verified_at IS NULL);
UPDATE mail_outbox SET registration_id = account_id, account_id = NULL
WHERE account_id IN (SELECT id FROM accounts WHERE verified_at IS NULL);

DELETE FROM account_tokens WHERE purpose = 'verify';
DELETE FROM accounts WHERE verified_at IS NULL;
