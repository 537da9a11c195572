-- Rhythm episodes (issue 17): what each stream's rhythm analyser found, one
-- row per episode, written in the transaction that stores the beats that
-- opened, extended or closed it. An episode still under way has ongoing = true
-- and its end where it stood at the last write; it is updated in place.
--
-- Keyed by (device, kind, onset): re-analysis after a restart re-derives the
-- same episodes from the same beats and overwrites them with equal values.
CREATE TABLE episodes (
    device_id TEXT   NOT NULL,
    kind      TEXT   NOT NULL,
    start_us  BIGINT NOT NULL,
    end_us    BIGINT NOT NULL CHECK (end_us >= start_us),
    beats     INTEGER NOT NULL CHECK (beats >= 0),
    min_bpm   REAL NOT NULL,
    max_bpm   REAL NOT NULL,
    ongoing   BOOLEAN NOT NULL,
    -- The analyser version and the beat model whose classes it read.
    analyser  TEXT   NOT NULL,
    PRIMARY KEY (device_id, kind, start_us)
);

-- "Episodes of device X between T1 and T2", by onset.
CREATE INDEX episodes_by_time ON episodes (device_id, start_us);
