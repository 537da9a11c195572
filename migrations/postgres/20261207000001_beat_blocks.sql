-- Beats at rest (issue 15). A beat row's vector is now stored at 10 bits
-- (`beat_encoding` 1, the layout of a block's vector column; 0: 187 f32 LE,
-- rows written before), about 200 bytes instead of 748.
ALTER TABLE beats ADD COLUMN beat_encoding SMALLINT NOT NULL DEFAULT 0;

-- A beat is stored as a row when it is classified
-- (so that its transaction can be acknowledged); a few minutes later the
-- daemon's compactor packs each segment's normal and unreadable beats into
-- one block (columns under zstd, the beat vector at 10 bits; layout in
-- src/store/beat_block.rs) and deletes their rows in the same transaction.
-- Abnormal beats stay rows, where the flagged-beat index finds them.
CREATE TABLE beat_blocks (
    device_id TEXT NOT NULL,
    stream    BIGINT NOT NULL,
    first_seq BIGINT NOT NULL, -- the segment's
    t_from_us BIGINT NOT NULL, -- the first beat's R time
    t_to_us   BIGINT NOT NULL, -- the last beat's R time
    beats     INTEGER NOT NULL,
    data      BYTEA NOT NULL,
    PRIMARY KEY (device_id, stream, first_seq, t_from_us)
);
-- zstd already packed the data: no second compression attempt by TOAST.
ALTER TABLE beat_blocks ALTER COLUMN data SET STORAGE EXTERNAL;
-- "The beats of device X between T1 and T2": blocks ending at or after T1.
CREATE INDEX beat_blocks_time ON beat_blocks (device_id, t_to_us);

-- Every beat of a segment up to here is stored (packed or a row): a beat
-- written again at or before it (a retried transaction, a re-analysis) is
-- skipped, as the primary key skips one that is still a row.
ALTER TABLE segments ADD COLUMN beats_packed_to_us BIGINT;
