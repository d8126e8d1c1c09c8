DROP INDEX mail_outbox_not_me;
ALTER TABLE mail_outbox DROP COLUMN not_me_used_at;
ALTER TABLE mail_outbox DROP COLUMN not_me_hash;
