-- Identity data sealed at rest (src/db/identity.rs): the NIK, name, birth
-- date, phone, NPWP and email of a registration or account, sealed
-- together under the row's own data key. Once sealed, the email and nik
-- columns hold blind indexes (ix1:HMAC-SHA256 under the key file's index
-- key), so the UNIQUE constraints keep holding on both backends, and the
-- other identity columns are emptied. NULL: stored in clear by an earlier
-- version (sealed in batches after the upgrade).
ALTER TABLE registrations ADD COLUMN sealed BYTEA;
ALTER TABLE registrations ADD COLUMN data_key_id TEXT;
ALTER TABLE accounts ADD COLUMN sealed BYTEA;
ALTER TABLE accounts ADD COLUMN data_key_id TEXT;

-- Mail waiting in the outbox: the address, text and HTML sealed under the
-- mail's own data key (its to_address holds the address's blind index);
-- once sent or failed for good, the sealed part and its key are deleted.
ALTER TABLE mail_outbox ADD COLUMN sealed BYTEA;
ALTER TABLE mail_outbox ADD COLUMN data_key_id TEXT;
