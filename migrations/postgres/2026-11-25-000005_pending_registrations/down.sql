-- Registrations still waiting go back to being unverified accounts where
-- they can: those with a password from the old form. Registrations made
-- without a password cannot become accounts and are dropped.
INSERT INTO accounts (id, email, nik, nik_hash, full_name, birth_date, phone, npwp,
    password_hash, ktp_upload_id, lang, created_at)
SELECT r.id, r.email, r.nik, r.nik_hash, r.full_name, r.birth_date, r.phone, r.npwp,
    r.legacy_password_hash, r.ktp_upload_id, r.lang, r.created_at
FROM registrations r
WHERE r.completed_at IS NULL AND r.legacy_password_hash IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.email = r.email OR a.nik = r.nik);

INSERT INTO account_tokens (token_hash, account_id, purpose, created_at, expires_at)
SELECT t.token_hash, t.registration_id, 'verify', t.created_at, t.expires_at
FROM registration_tokens t JOIN accounts a ON a.id = t.registration_id;

ALTER TABLE mail_outbox DROP COLUMN registration_id;
ALTER TABLE registration_submissions DROP COLUMN registration_id;
DROP TABLE registration_tokens;
DROP TABLE registrations;
