-- The NIK's keyed hash on accounts, so staff can find an account from a
-- failure recorded under the same NIK with another email. Filled at
-- registration; rows from before are filled at start-up.
ALTER TABLE accounts ADD COLUMN nik_hash TEXT;
CREATE INDEX accounts_nik_hash ON accounts (nik_hash);
