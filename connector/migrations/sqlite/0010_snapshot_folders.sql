-- The folders of a Parquet snapshot that `latest:` or `require_marker:` chose for a run, as JSON
-- (`{"read": ["users/dt=2026-11-30/"], "skipped": [...]}`), for `ebb status` and the run history.
ALTER TABLE runs ADD COLUMN snapshot_folders TEXT;
