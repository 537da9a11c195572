-- holterd schema (SQLite). Times are microseconds since the Unix epoch (BIGINT),
-- the same in the SQLite schema, so both stores share one test suite.

-- Every device that ever published.
CREATE TABLE devices (
    device_id     TEXT PRIMARY KEY,
    first_seen_us BIGINT NOT NULL,
    last_seen_us  BIGINT NOT NULL
);

-- A run of consecutive messages analysed by one extractor: it starts at a
-- stream's first message, after a gap, or after the stream expired.
CREATE TABLE segments (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL,
    stream    BIGINT NOT NULL,
    first_seq BIGINT NOT NULL,
    t0_us     BIGINT NOT NULL,
    fs        REAL NOT NULL,
    lead      TEXT NOT NULL,
    after_gap BOOLEAN NOT NULL,
    -- Set once every beat of the segment is stored.
    closed    BOOLEAN NOT NULL DEFAULT 0,
    UNIQUE (device_id, stream, first_seq)
);
CREATE INDEX segments_open ON segments (id) WHERE closed = 0;

-- Raw signal, one row per message, kept for review and re-analysis.
CREATE TABLE chunks (
    device_id   TEXT NOT NULL,
    stream      BIGINT NOT NULL,
    seq         BIGINT NOT NULL,
    first_seq   BIGINT NOT NULL, -- the segment's
    t0_us       BIGINT NOT NULL,
    fs          REAL NOT NULL,
    received_us BIGINT NOT NULL,
    samples     BLOB NOT NULL,  -- f32 little-endian, mV
    PRIMARY KEY (device_id, stream, seq)
);
CREATE INDEX chunks_time ON chunks (device_id, t0_us);
CREATE INDEX chunks_received ON chunks (received_us);

-- One row per detected beat.
CREATE TABLE beats (
    device_id     TEXT NOT NULL,
    r_time_us     BIGINT NOT NULL,
    stream        BIGINT NOT NULL,
    first_seq     BIGINT NOT NULL,
    sample_index  BIGINT NOT NULL,
    rr_prev_ms    REAL,
    rr_next_ms    REAL,
    quality       TEXT NOT NULL,
    searchback    BOOLEAN NOT NULL,
    verdict       TEXT NOT NULL CHECK (verdict IN ('normal', 'abnormal', 'unreadable')),
    p_abnormal    REAL,
    model         TEXT NOT NULL,
    model_version TEXT NOT NULL,
    beat          BLOB NOT NULL, -- 187 f32 little-endian
    PRIMARY KEY (device_id, r_time_us)
);
-- "The flagged beats of device X between T1 and T2."
CREATE INDEX beats_flagged ON beats (device_id, r_time_us) WHERE verdict = 'abnormal';
CREATE INDEX beats_segment ON beats (device_id, stream, first_seq, r_time_us);
