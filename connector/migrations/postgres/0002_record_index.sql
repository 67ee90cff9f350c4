-- A commit counter per sync, and a cached compact index of `records` tagged
-- with the counter it matches (see state::RecordIndex).
ALTER TABLE syncs ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;

CREATE TABLE record_index (
    sync       TEXT PRIMARY KEY,
    generation BIGINT NOT NULL,
    format     BIGINT NOT NULL,
    entries    BYTEA NOT NULL
);
