-- The flagged-beat index also carries the RR interval, so counting runs of
-- abnormal beats reads the index alone.
DROP INDEX beats_flagged;
CREATE INDEX beats_flagged ON beats (device_id, r_time_us, rr_prev_ms) WHERE verdict = 'abnormal';
