DROP INDEX accounts_nik_hash;
ALTER TABLE accounts DROP COLUMN nik_hash;
