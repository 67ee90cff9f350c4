-- The docker-compose warehouse: a `warehouse` schema with 500 users in 40
-- accounts, made with generate_series so the data is the same on every start.
-- ebb keeps its own state in the `ebb` schema of the same database.
CREATE SCHEMA warehouse;

CREATE TABLE warehouse.accounts (
    account_id BIGINT PRIMARY KEY,
    name       TEXT NOT NULL,
    plan       TEXT NOT NULL,
    segment    TEXT NOT NULL,
    arr        NUMERIC(12, 2),
    created_at TIMESTAMPTZ NOT NULL
);

INSERT INTO warehouse.accounts
SELECT g,
       'Account ' || g,
       (ARRAY['free', 'team', 'business', 'enterprise'])[1 + g % 4],
       (ARRAY['smb', 'mid-market', 'enterprise'])[1 + g % 3],
       CASE WHEN g % 4 = 0 THEN NULL ELSE (g * 1250)::numeric END,
       TIMESTAMPTZ '2020-01-01 00:00:00+00' + g * INTERVAL '9 days'
FROM generate_series(1, 40) AS g;

CREATE TABLE warehouse.users (
    user_id    TEXT PRIMARY KEY,
    email      TEXT NOT NULL,
    full_name  TEXT,
    account_id BIGINT REFERENCES warehouse.accounts (account_id),
    is_admin   BOOLEAN NOT NULL DEFAULT FALSE,
    tags       TEXT[],
    signup_at  TIMESTAMPTZ NOT NULL
);

INSERT INTO warehouse.users
SELECT 'u' || lpad(g::text, 4, '0'),
       'user' || g || '@example.com',
       'User ' || g,
       1 + g % 40,
       g % 10 = 0,
       CASE WHEN g % 3 = 0 THEN ARRAY['beta'] ELSE ARRAY[]::text[] END,
       TIMESTAMPTZ '2021-01-01 00:00:00+00' + g * INTERVAL '13 hours'
FROM generate_series(1, 500) AS g;
