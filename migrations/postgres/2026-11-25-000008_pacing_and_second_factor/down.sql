DROP TABLE staff_recovery_codes;
ALTER TABLE staff DROP COLUMN totp_last_step;
ALTER TABLE staff DROP COLUMN totp_secret;
ALTER TABLE rate_counters DROP COLUMN not_before;
