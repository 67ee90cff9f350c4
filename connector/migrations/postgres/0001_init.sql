-- ebb state, PostgreSQL. Runs inside ebb's own schema (search_path). Never edit an applied migration.

CREATE TABLE syncs (
    name         TEXT PRIMARY KEY,
    hash_version BIGINT NOT NULL,
    schema_json  TEXT,
    updated_at   BIGINT NOT NULL
);

CREATE TABLE records (
    sync      TEXT NOT NULL,
    id        TEXT NOT NULL,
    hash      BYTEA NOT NULL,
    synced_at BIGINT NOT NULL,
    PRIMARY KEY (sync, id)
);

CREATE TABLE runs (
    id          BIGSERIAL PRIMARY KEY,
    sync        TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    ended_at    BIGINT,
    status      TEXT NOT NULL,
    full_resync BOOLEAN NOT NULL DEFAULT FALSE,
    source_rows BIGINT NOT NULL DEFAULT 0,
    invalid     BIGINT NOT NULL DEFAULT 0,
    new         BIGINT NOT NULL DEFAULT 0,
    changed     BIGINT NOT NULL DEFAULT 0,
    unchanged   BIGINT NOT NULL DEFAULT 0,
    gone        BIGINT NOT NULL DEFAULT 0,
    sent        BIGINT NOT NULL DEFAULT 0,
    rejected    BIGINT NOT NULL DEFAULT 0,
    failed      BIGINT NOT NULL DEFAULT 0,
    error       TEXT
);
CREATE INDEX runs_by_sync ON runs (sync, id);

CREATE TABLE rejections (
    seq       BIGSERIAL PRIMARY KEY,
    run_id    BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    sync      TEXT NOT NULL,
    stage     TEXT NOT NULL,
    record_id TEXT,
    position  TEXT NOT NULL,
    reason    TEXT NOT NULL
);
CREATE INDEX rejections_by_run ON rejections (run_id, seq);
