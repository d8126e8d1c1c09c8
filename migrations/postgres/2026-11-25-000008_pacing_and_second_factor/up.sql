-- Growing delays between wrong passwords: the earliest time the next
-- attempt on a key is counted (NULL for keys that are not paced).
ALTER TABLE rate_counters ADD COLUMN not_before TIMESTAMP;

-- Staff second factor (TOTP, RFC 6238): the shared secret (base32) once
-- enrolled, and the last time step accepted, so that a code is accepted
-- once only (a conditional update on it, atomic across instances).
ALTER TABLE staff ADD COLUMN totp_secret TEXT;
ALTER TABLE staff ADD COLUMN totp_last_step BIGINT;

-- One-time recovery codes, stored as SHA-256 hashes; used_at marks one used.
CREATE TABLE staff_recovery_codes (
    staff_id TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    used_at TIMESTAMP,
    PRIMARY KEY (staff_id, code_hash)
);
