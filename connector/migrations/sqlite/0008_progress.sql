-- How far a running run's sending has got, reported as it goes (at most once a second), so that
-- `ebb status` can show the records done, the rate and the time left of a run in another process.
ALTER TABLE runs ADD COLUMN planned INTEGER;
ALTER TABLE runs ADD COLUMN progress_done INTEGER;
ALTER TABLE runs ADD COLUMN sending_since_ms INTEGER;
ALTER TABLE runs ADD COLUMN progress_at_ms INTEGER;
