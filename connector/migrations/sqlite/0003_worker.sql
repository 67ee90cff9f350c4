-- The worker: how each run started (cli, schedule or trigger), which schedule
-- slot it ran for and which worker ran it; the last slot claimed per sync, so
-- that workers sharing this store run each due slot once; an index for pruning.
ALTER TABLE runs ADD COLUMN origin TEXT NOT NULL DEFAULT 'cli';
ALTER TABLE runs ADD COLUMN scheduled_for INTEGER;
ALTER TABLE runs ADD COLUMN worker TEXT;
CREATE INDEX runs_by_start ON runs (started_at);

CREATE TABLE schedule_claims (
    sync       TEXT PRIMARY KEY,
    slot       INTEGER NOT NULL,
    worker     TEXT NOT NULL,
    claimed_at INTEGER NOT NULL
);
