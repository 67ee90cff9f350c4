-- Identities a sync never sends again, until lifted: deleted by mirror or `ebb delete`,
-- suppressed by a person, or listed in the mapping's suppression source.
CREATE TABLE suppressions (
    sync          TEXT NOT NULL,
    id            TEXT NOT NULL,
    reason        TEXT NOT NULL,
    run_id        INTEGER,
    suppressed_at INTEGER NOT NULL,
    PRIMARY KEY (sync, id)
) WITHOUT ROWID;

-- Rows a run did not send because their identity is suppressed.
ALTER TABLE runs ADD COLUMN suppressed INTEGER NOT NULL DEFAULT 0;
