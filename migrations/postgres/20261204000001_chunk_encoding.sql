-- Raw signal as the device sent it (issue 15): integer counts with their gain
-- and baseline, delta-coded (see src/store/signal.rs), about 1 byte a sample
-- instead of 4. Rows written before keep encoding 0: f32 mV, as they were.
ALTER TABLE chunks ADD COLUMN encoding SMALLINT NOT NULL DEFAULT 0 CHECK (encoding IN (0, 1));
