-- One pace per destination credential for every process on this store (several workers, and
-- `ebb sync` beside them). `scope` is the credential's rate scope: a 64-bit digest of the
-- endpoint and key, never the key.
--
-- The turns of a credential's requests: a process takes the next one just before it sends,
-- which moves `next_at` on by one interval at the pace now. Turns are taken one request at a
-- time, so a process that dies holds at most the few it took for requests in flight, and
-- those lapse within a second.
CREATE TABLE rate_turns (
    scope TEXT PRIMARY KEY,
    -- The earliest start of the next turn.
    next_at TIMESTAMPTZ NOT NULL,
    -- The turn taken last, for the statement that takes it to return.
    turn_at TIMESTAMPTZ NOT NULL,
    -- The pace now, in requests per minute, after slowdowns (429s without Retry-After);
    -- NULL for the limit.
    rate DOUBLE PRECISION,
    lowered_at TIMESTAMPTZ,
    -- A Retry-After one process got holds every process until then.
    paused_until TIMESTAMPTZ
);

-- Who sends with a credential, at what limit: the pace is the lowest limit of any member
-- whose lease is current. A member renews its lease with every turn it takes.
CREATE TABLE rate_members (
    scope TEXT NOT NULL,
    member TEXT NOT NULL,
    requests_per_minute DOUBLE PRECISION NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, member)
);
