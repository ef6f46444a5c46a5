-- Leaner events, for the router's speed (each row was written three times):
-- * `applied` is now decided before the insert (the exam rows are locked first), not updated after.
-- * Publication is no longer tracked per event: a message that comes back (redelivered after a
--   crash, back from a delay tier, replayed) publishes its stored events again, as at-least-once
--   allows. Nothing on the common path waits for, or writes, a "published" mark.
-- * The event id is the UUIDv5 of vendor and natural key, so the primary key already deduplicates;
--   a second unique index on (vendor, natural_key) only cost time on every insert.
DROP INDEX IF EXISTS events_unpublished;
ALTER TABLE events DROP COLUMN IF EXISTS published_at;
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_vendor_natural_key_key;
