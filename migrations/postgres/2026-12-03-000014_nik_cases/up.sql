-- "Someone else used my NIK": a citizen's report, tracked as a case that
-- staff decide. One case per NIK while it is open: open_nik holds the
-- NIK's blind index until the case closes, so two reports at once for one
-- NIK cannot open two cases (the second joins the first). Everything a
-- citizen wrote or sent (the NIK, contact, statement, replies, photos) is
-- sealed under the case's own data key (data_key_id), bound to table,
-- column and row; deleting that key shreds the case.
CREATE TABLE nik_cases (
    id TEXT PRIMARY KEY NOT NULL,
    reference TEXT NOT NULL UNIQUE,
    nik TEXT NOT NULL,
    open_nik TEXT UNIQUE,
    status TEXT NOT NULL,
    sealed BYTEA NOT NULL,
    data_key_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    due_at TIMESTAMP NOT NULL,
    assigned_to TEXT,
    closed_at TIMESTAMP,
    holder_account_id TEXT
);
CREATE INDEX nik_cases_queue ON nik_cases (closed_at, due_at);
CREATE INDEX nik_cases_nik ON nik_cases (nik);

-- Who takes part: each reporter, and the holder of the NIK once it is
-- released; each has a status-page link (stored as its SHA-256).
CREATE TABLE nik_case_parties (
    id TEXT PRIMARY KEY NOT NULL,
    case_id TEXT NOT NULL REFERENCES nik_cases (id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    sealed BYTEA NOT NULL,
    lang TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    failure_reference TEXT
);
CREATE INDEX nik_case_parties_case ON nik_case_parties (case_id);
CREATE INDEX nik_case_parties_failure ON nik_case_parties (failure_reference);

-- A reporter's KTP photo and selfie holding it, normalised like every
-- KTP photo and sealed under the case's key.
CREATE TABLE nik_case_photos (
    id TEXT PRIMARY KEY NOT NULL,
    case_id TEXT NOT NULL REFERENCES nik_cases (id) ON DELETE CASCADE,
    party_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    data BYTEA NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX nik_case_photos_case ON nik_case_photos (case_id);

-- Every step of a case, with its message (sealed) where there is one.
CREATE TABLE nik_case_events (
    id TEXT PRIMARY KEY NOT NULL,
    case_id TEXT NOT NULL REFERENCES nik_cases (id) ON DELETE CASCADE,
    at TIMESTAMP NOT NULL,
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,
    party_id TEXT,
    message BYTEA
);
CREATE INDEX nik_case_events_case ON nik_case_events (case_id, at);

-- An account whose NIK was released to its rightful owner by a case: it
-- cannot sign in, and its nik column no longer holds the NIK's index.
ALTER TABLE accounts ADD COLUMN suspended_at TIMESTAMP;
ALTER TABLE accounts ADD COLUMN suspended_case TEXT;
