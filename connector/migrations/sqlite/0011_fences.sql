-- The fencing token of each sync's run lock: one more with every hold taken. A run writes it
-- with each commit to state kept outside this database (the warehouse's bookkeeping tables),
-- which refuses a token older than the last one it saw.
CREATE TABLE run_fences (
    sync  TEXT PRIMARY KEY,
    fence INTEGER NOT NULL
);
