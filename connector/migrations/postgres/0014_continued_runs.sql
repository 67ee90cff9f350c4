-- A time-boxed run (`max_run:`) that stopped starting batches ends `continued`: the records it
-- planned and did not send are left for the next run. NULL for a run that was not cut short.
ALTER TABLE runs ADD COLUMN left_records BIGINT;
-- And how long those records take at the configured pace, as the run estimated it.
ALTER TABLE runs ADD COLUMN left_eta_secs BIGINT;
