-- Deletes acknowledged by the destination in a run (mirror mode), counted apart from upserts.
ALTER TABLE runs ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
