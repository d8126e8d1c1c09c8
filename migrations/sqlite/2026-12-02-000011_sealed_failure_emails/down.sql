ALTER TABLE failures DROP COLUMN data_key_id;
ALTER TABLE failures DROP COLUMN email_sealed;
