DROP TABLE mail_outbox;
DROP TABLE registration_submissions;
DROP TABLE account_tokens;
DROP TABLE accounts;
DROP TABLE ktp_uploads;
