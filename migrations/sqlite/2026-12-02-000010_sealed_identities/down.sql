-- Sealed rows cannot go back to a version that reads only clear ones.
ALTER TABLE mail_outbox DROP COLUMN data_key_id;
ALTER TABLE mail_outbox DROP COLUMN sealed;
ALTER TABLE accounts DROP COLUMN data_key_id;
ALTER TABLE accounts DROP COLUMN sealed;
ALTER TABLE registrations DROP COLUMN data_key_id;
ALTER TABLE registrations DROP COLUMN sealed;
