DROP TABLE account_deletions;
ALTER TABLE accounts DROP COLUMN deletion_due_at;
ALTER TABLE sessions DROP COLUMN network;
ALTER TABLE sessions DROP COLUMN device;
