-- A cursor sync's watermark (`source.cursor:`): the largest cursor value the last completed run
-- read, which the next run reads from (less the lag), for the mapping and destination it was
-- read with; and when the last full diff was. Moved only by a completed run.
CREATE TABLE cursors (
    sync        TEXT PRIMARY KEY,
    column_name TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    watermark   INTEGER,
    full_at     INTEGER NOT NULL
);
-- Rows a full diff found changed without their cursor moving; NULL for a run that did not look.
ALTER TABLE runs ADD COLUMN changed_without_cursor INTEGER;
-- A cursor run: its source rows are only those past the watermark, not the whole source.
ALTER TABLE runs ADD COLUMN narrowed INTEGER NOT NULL DEFAULT 0;
