-- What one run's commits changed in a sync's record index, on top of the cached index
-- (record_index) or of the delta before it: a run that changes 1% of the records writes 1% of
-- the index instead of all of it. A chain that does not reach the sync's commit counter is
-- ignored and the index rebuilt from records; writing the whole index again clears the chain.
CREATE TABLE record_index_deltas (
    sync            TEXT NOT NULL,
    from_generation INTEGER NOT NULL,
    to_generation   INTEGER NOT NULL,
    entries         BLOB NOT NULL,
    removed         BLOB NOT NULL,
    PRIMARY KEY (sync, from_generation)
);
