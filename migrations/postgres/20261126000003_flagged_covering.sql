-- The flagged-beat index also carries the RR interval, so counting runs of
-- abnormal beats is an index-only scan.
DROP INDEX beats_flagged;
CREATE INDEX beats_flagged ON beats (device_id, r_time_us) INCLUDE (rr_prev_ms) WHERE verdict = 'abnormal';
