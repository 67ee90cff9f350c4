-- A commit counter per sync, and a cached compact index of `records` tagged
-- with the counter it matches (see state::RecordIndex).
ALTER TABLE syncs ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;

CREATE TABLE record_index (
    sync       TEXT PRIMARY KEY NOT NULL,
    generation INTEGER NOT NULL,
    format     INTEGER NOT NULL,
    entries    BLOB NOT NULL
);
