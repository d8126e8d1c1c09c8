DROP TABLE undeliverable_addresses;
ALTER TABLE mail_outbox DROP COLUMN delivery_at;
ALTER TABLE mail_outbox DROP COLUMN delivery;
DROP INDEX mail_events_mail;
DROP TABLE mail_events;
