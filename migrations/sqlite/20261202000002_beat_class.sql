-- Five AAMI classes per beat (issue 13). Rows of binary models, unreadable
-- beats and every row written before this migration have NULL class and
-- probabilities, and read as "no class".
--
-- The probabilities of N, S, V, F, Q are one BLOB of five f32 little-endian
-- (20 bytes, as the beat vector is stored) rather than five REAL columns
-- (SQLite's REAL is 8 bytes: 40), one NULL when there are none; no query
-- ever filters on one probability.
--
-- Abnormal means "not N": a classed beat's verdict agrees with its class, so
-- the beats of class S, V, F or Q are all in the flagged-beat index.
ALTER TABLE beats ADD COLUMN class TEXT CHECK (
    class IS NULL OR (class = 'N' AND verdict = 'normal')
    OR (class IN ('S', 'V', 'F', 'Q') AND verdict = 'abnormal'));
ALTER TABLE beats ADD COLUMN class_probs BLOB CHECK (length(class_probs) = 20);

ALTER TABLE upload_beats ADD COLUMN class TEXT CHECK (class IN ('N', 'S', 'V', 'F', 'Q'));
ALTER TABLE upload_beats ADD COLUMN class_probs BLOB CHECK (length(class_probs) = 20);

-- Beats per class in each minute (earlier rows have no class: 0).
ALTER TABLE beat_minutes ADD COLUMN n_n INTEGER NOT NULL DEFAULT 0;
ALTER TABLE beat_minutes ADD COLUMN n_s INTEGER NOT NULL DEFAULT 0;
ALTER TABLE beat_minutes ADD COLUMN n_v INTEGER NOT NULL DEFAULT 0;
ALTER TABLE beat_minutes ADD COLUMN n_f INTEGER NOT NULL DEFAULT 0;
ALTER TABLE beat_minutes ADD COLUMN n_q INTEGER NOT NULL DEFAULT 0;

-- The flagged-beat index also carries the class: "beats of class V between
-- T1 and T2" and the per-class runs of the Holter summary read it alone.
DROP INDEX beats_flagged;
CREATE INDEX beats_flagged ON beats (device_id, r_time_us, rr_prev_ms, class) WHERE verdict = 'abnormal';
