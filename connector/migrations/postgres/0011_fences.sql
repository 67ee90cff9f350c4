-- The fencing token of each sync's run lock: with every hold taken, the greater of one more and
-- the clock in microseconds (so a fresh store still outranks the tokens an older one left). A run writes it
-- with each commit to state kept outside this database (the warehouse's bookkeeping tables),
-- which refuses a token older than the last one it saw, so a run that lost its lock cannot
-- commit there after another run took the sync over.
ALTER TABLE run_leases ADD COLUMN fence BIGINT NOT NULL DEFAULT 0;
