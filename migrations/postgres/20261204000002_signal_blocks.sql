-- Raw signal at rest (issue 15). A message's chunk is stored on its own as it
-- arrives (so that it can be acknowledged); once a few minutes old, the
-- daemon's compactor packs each segment's consecutive chunks into one block
-- (delta-coded counts under zstd, about 0.6 byte a sample; layout in
-- src/store/signal.rs) and deletes the loose rows in the same transaction.
--
-- Blocks are partitioned by day of reception, the clock retention runs on, so
-- that retention drops a day's partition instead of deleting rows. The
-- compactor creates each day's partition ahead of it; the default partition
-- takes blocks of days without one (chunks older than this migration).
CREATE TABLE signal_blocks (
    device_id   TEXT NOT NULL,
    stream      BIGINT NOT NULL,
    first_seq   BIGINT NOT NULL, -- the segment's
    seq_from    BIGINT NOT NULL,
    seq_to      BIGINT NOT NULL,
    t0_us       BIGINT NOT NULL, -- the first chunk's first sample
    t_end_us    BIGINT NOT NULL, -- just after the last chunk's last sample
    received_us BIGINT NOT NULL, -- the latest reception among its chunks
    chunks      INTEGER NOT NULL,
    samples     INTEGER NOT NULL,
    data        BYTEA NOT NULL
) PARTITION BY RANGE (received_us);
CREATE TABLE signal_blocks_default PARTITION OF signal_blocks DEFAULT;
-- zstd already packed the data: no second compression attempt by TOAST.
ALTER TABLE signal_blocks ALTER COLUMN data SET STORAGE EXTERNAL;
ALTER TABLE signal_blocks_default ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE INDEX signal_blocks_segment ON signal_blocks (device_id, stream, first_seq, seq_from);
CREATE INDEX signal_blocks_time ON signal_blocks (device_id, t0_us);

-- Loose chunks are only the last minutes: a device's are few enough to read
-- through the primary key, and the compactor finds old ones by reception time,
-- which follows insertion order, so a BRIN index (a few pages) serves it.
DROP INDEX chunks_time;
DROP INDEX chunks_received;
CREATE INDEX chunks_received ON chunks USING brin (received_us);
