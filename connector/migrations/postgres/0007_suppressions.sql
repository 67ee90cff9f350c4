-- Identities a sync never sends again, until lifted: deleted by mirror or `ebb delete`,
-- suppressed by a person, or listed in the mapping's suppression source.
CREATE TABLE suppressions (
    sync          TEXT NOT NULL,
    id            TEXT NOT NULL,
    reason        TEXT NOT NULL,
    run_id        BIGINT,
    suppressed_at BIGINT NOT NULL,
    PRIMARY KEY (sync, id)
);

-- Rows a run did not send because their identity is suppressed.
ALTER TABLE runs ADD COLUMN suppressed BIGINT NOT NULL DEFAULT 0;
