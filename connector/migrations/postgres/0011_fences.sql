-- The fencing token of each sync's run lock: one more with every hold taken. A run writes it
-- with each commit to state kept outside this database (the warehouse's bookkeeping tables),
-- which refuses a token older than the last one it saw, so a run that lost its lock cannot
-- commit there after another run took the sync over.
ALTER TABLE run_leases ADD COLUMN fence BIGINT NOT NULL DEFAULT 0;
