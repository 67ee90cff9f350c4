-- The compiled mapping's fingerprint a run sent with: a record whose hash changed since a run
-- of another mapping sent it changed because the mapping did, and is resent after the
-- records whose source changed. NULL for runs from before, and runs that planned nothing.
ALTER TABLE runs ADD COLUMN mapping TEXT;
