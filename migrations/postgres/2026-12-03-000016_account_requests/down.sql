DROP TABLE email_changes;
DROP TABLE account_requests;
