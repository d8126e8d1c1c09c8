-- Envelope encryption at rest (src/domain/sealed.rs): data keys, each
-- wrapped by a key-encryption key version kept outside the database.
-- Deleting a row here makes what that key sealed unreadable.
CREATE TABLE data_keys (
    id TEXT PRIMARY KEY,
    kek_version INTEGER NOT NULL,
    wrapped BYTEA NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX data_keys_kek_version ON data_keys (kek_version);

-- A KTP photo's data key; NULL: stored in clear by an earlier version
-- (sealed in batches after the upgrade, or by emeterai keys seal-existing).
ALTER TABLE ktp_uploads ADD COLUMN data_key_id TEXT;
CREATE INDEX ktp_uploads_clear ON ktp_uploads (id) WHERE data_key_id IS NULL;
