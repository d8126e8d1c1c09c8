-- The failure log's email address sealed under the row's own data key
-- (bound to failures.email:<reference>); the email column then holds its
-- blind index (ix1:...), which staff search by. NULL: written in clear by
-- an earlier version (kept until retention purges the row).
ALTER TABLE failures ADD COLUMN email_sealed BLOB;
ALTER TABLE failures ADD COLUMN data_key_id TEXT;
