-- Raw signal at rest (issue 15). A message's chunk is stored on its own as it
-- arrives (so that it can be acknowledged); once a few minutes old, the
-- daemon's compactor packs each segment's consecutive chunks into one block
-- (delta-coded counts under zstd, about 0.6 byte a sample; layout in
-- src/store/signal.rs) and deletes the loose rows in the same transaction.
-- (Postgres partitions the blocks by day; SQLite keeps one table.)
CREATE TABLE signal_blocks (
    device_id   TEXT NOT NULL,
    stream      INTEGER NOT NULL,
    first_seq   INTEGER NOT NULL, -- the segment's
    seq_from    INTEGER NOT NULL,
    seq_to      INTEGER NOT NULL,
    t0_us       INTEGER NOT NULL, -- the first chunk's first sample
    t_end_us    INTEGER NOT NULL, -- just after the last chunk's last sample
    received_us INTEGER NOT NULL, -- the latest reception among its chunks
    chunks      INTEGER NOT NULL,
    samples     INTEGER NOT NULL,
    data        BLOB NOT NULL
);
CREATE INDEX signal_blocks_segment ON signal_blocks (device_id, stream, first_seq, seq_from);
CREATE INDEX signal_blocks_time ON signal_blocks (device_id, t0_us);
CREATE INDEX signal_blocks_received ON signal_blocks (received_us);

-- Loose chunks are only the last minutes: a device's are few enough to read
-- through the primary key.
DROP INDEX chunks_time;
