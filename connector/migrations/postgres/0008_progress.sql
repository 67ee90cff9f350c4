-- How far a running run's sending has got, reported as it goes (at most once a second), so that
-- `ebb status` can show the records done, the rate and the time left of a run in another process.
ALTER TABLE runs ADD COLUMN planned BIGINT;
ALTER TABLE runs ADD COLUMN progress_done BIGINT;
ALTER TABLE runs ADD COLUMN sending_since_ms BIGINT;
ALTER TABLE runs ADD COLUMN progress_at_ms BIGINT;
