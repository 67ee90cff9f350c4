-- The fencing token of each sync's run lock: with every hold taken, the greater of one more and
-- the clock in microseconds (so a fresh store still outranks the tokens an older one left). A run writes it
-- with each commit to state kept outside this database (the warehouse's bookkeeping tables),
-- which refuses a token older than the last one it saw.
CREATE TABLE run_fences (
    sync  TEXT PRIMARY KEY,
    fence INTEGER NOT NULL
);
