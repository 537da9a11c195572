-- Review support: per-minute beat rollups (so pages over a million beats stay
-- fast) and uploaded beat files with their verdicts.

-- One row per device and minute (minute = r_time_us / 60000000), recomputed
-- from the beats table whenever beats of that minute are stored.
CREATE TABLE beat_minutes (
    device_id  TEXT NOT NULL,
    minute     BIGINT NOT NULL,
    beats      INTEGER NOT NULL,
    abnormal   INTEGER NOT NULL,
    unreadable INTEGER NOT NULL,
    -- Readable beats with a previous RR interval, and the sum of those intervals.
    rr_n       INTEGER NOT NULL,
    rr_sum_ms  DOUBLE PRECISION NOT NULL,
    rr_max_ms  REAL,
    PRIMARY KEY (device_id, minute)
);

INSERT INTO beat_minutes (device_id, minute, beats, abnormal, unreadable, rr_n, rr_sum_ms, rr_max_ms)
SELECT device_id, r_time_us / 60000000, count(*),
       sum(CASE WHEN verdict = 'abnormal' THEN 1 ELSE 0 END),
       sum(CASE WHEN verdict = 'unreadable' THEN 1 ELSE 0 END),
       sum(CASE WHEN verdict <> 'unreadable' AND rr_prev_ms IS NOT NULL THEN 1 ELSE 0 END),
       coalesce(sum(CASE WHEN verdict <> 'unreadable' THEN rr_prev_ms END), 0),
       max(CASE WHEN verdict <> 'unreadable' THEN rr_prev_ms END)
FROM beats GROUP BY device_id, r_time_us / 60000000;

-- A file of beats (Kaggle layout) classified on upload.
CREATE TABLE uploads (
    id            TEXT PRIMARY KEY,
    filename      TEXT NOT NULL,
    uploaded_by   TEXT NOT NULL,
    created_us    BIGINT NOT NULL,
    model         TEXT NOT NULL,
    model_version TEXT NOT NULL,
    beats         INTEGER NOT NULL,
    labelled      BOOLEAN NOT NULL,
    -- Metrics against the labels (JSON), when the file had labels.
    evaluation    TEXT
);

CREATE TABLE upload_beats (
    upload_id  TEXT NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    row_index  INTEGER NOT NULL,
    -- The file's label column (0 = normal), when it had one.
    label      INTEGER,
    verdict    TEXT NOT NULL CHECK (verdict IN ('normal', 'abnormal', 'unreadable')),
    p_abnormal REAL,
    beat       BLOB NOT NULL,
    PRIMARY KEY (upload_id, row_index)
);
CREATE INDEX upload_beats_verdict ON upload_beats (upload_id, verdict, row_index);
