-- ebb state, SQLite. Never edit an applied migration; add a new one.

-- One row per sync: what the stored hashes mean and the schema last synced.
CREATE TABLE syncs (
    name         TEXT PRIMARY KEY NOT NULL,
    hash_version INTEGER NOT NULL,
    schema_json  TEXT,
    updated_at   INTEGER NOT NULL
);

-- The hash of the payload last acknowledged by the destination, per record.
CREATE TABLE records (
    sync      TEXT NOT NULL,
    id        TEXT NOT NULL,
    hash      BLOB NOT NULL,
    synced_at INTEGER NOT NULL,
    PRIMARY KEY (sync, id)
) WITHOUT ROWID;

CREATE TABLE runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    sync        TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    status      TEXT NOT NULL,
    full_resync INTEGER NOT NULL DEFAULT 0,
    source_rows INTEGER NOT NULL DEFAULT 0,
    invalid     INTEGER NOT NULL DEFAULT 0,
    new         INTEGER NOT NULL DEFAULT 0,
    changed     INTEGER NOT NULL DEFAULT 0,
    unchanged   INTEGER NOT NULL DEFAULT 0,
    gone        INTEGER NOT NULL DEFAULT 0,
    sent        INTEGER NOT NULL DEFAULT 0,
    rejected    INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    error       TEXT
);
CREATE INDEX runs_by_sync ON runs (sync, id);

-- Rows the mapping or the destination refused, with the reason.
CREATE TABLE rejections (
    run_id    INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    sync      TEXT NOT NULL,
    stage     TEXT NOT NULL,
    record_id TEXT,
    position  TEXT NOT NULL,
    reason    TEXT NOT NULL
);
CREATE INDEX rejections_by_run ON rejections (run_id);
