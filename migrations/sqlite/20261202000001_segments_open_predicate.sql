-- The open-segments read is shared with Postgres and says `closed = FALSE`;
-- SQLite uses a partial index only for the predicate it was made with.
DROP INDEX IF EXISTS segments_open;
CREATE INDEX segments_open ON segments (id) WHERE closed = FALSE;
