-- The destination a sync's records were acknowledged by (type, URL, object; never a key), so that
-- a mapping pointed elsewhere under the same name starts from empty state instead of sending nothing.
ALTER TABLE syncs ADD COLUMN destination TEXT;
