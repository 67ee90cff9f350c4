-- Run leases: who last held each sync's run lock, and when it was last seen holding it.
-- A run whose state connection dropped loses its advisory lock at once but may still be
-- sending, so the next run waits until the lease has run out (or the holder released it,
-- or is certainly dead) before it starts.
CREATE TABLE run_leases (
    sync         TEXT PRIMARY KEY,
    -- Random per hold: a release or renewal only ever touches its own hold.
    token        TEXT NOT NULL,
    -- host:pid, for messages.
    holder       TEXT NOT NULL,
    -- boot id, PID namespace, PID and start time: lets a run on the same machine see the holder is gone.
    process      TEXT NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL,
    released_at  TIMESTAMPTZ
);
