-- Sealed photos cannot go back to a version that reads only clear ones:
-- run this only on a database whose photos are all in clear.
DROP INDEX ktp_uploads_clear;
ALTER TABLE ktp_uploads DROP COLUMN data_key_id;
DROP TABLE data_keys;
