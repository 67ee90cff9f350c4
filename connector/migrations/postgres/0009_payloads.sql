-- Sync tracking: each record keeps the payload the destination last acknowledged (the
-- canonical record, compressed), the run that sent it, and the three runs that sent it before,
-- for `ebb record` and `ebb preview --explain`. Older rows have none until they are sent again.
ALTER TABLE records ADD COLUMN payload BYTEA;
ALTER TABLE records ADD COLUMN sent_run BIGINT;
ALTER TABLE records ADD COLUMN prev_run_1 BIGINT;
ALTER TABLE records ADD COLUMN prev_run_2 BIGINT;
ALTER TABLE records ADD COLUMN prev_run_3 BIGINT;
