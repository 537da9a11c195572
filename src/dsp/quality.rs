//! The signal-quality gate: flat line, clipping, lead-off and heavy noise.
//!
//! The stream is judged in one-second blocks. A beat takes the worst verdict of
//! the blocks it overlaps, so a beat cut from a flat, clipped or noise-buried
//! stretch is flagged unreadable instead of passing for a normal beat.

use serde::Serialize;

/// Beat-signal peak-to-peak below this (mV) over a whole block is a flat line.
const FLAT_PP_MV: f32 = 0.04;
/// Raw peak-to-peak above this (mV) within a block is an electrode slam or lead-off.
const LEAD_OFF_PP_MV: f32 = 15.0;
/// Identical consecutive samples at the block's extreme for this long (s) are clipping.
const CLIP_RUN_S: f64 = 0.03;
/// RMS of the > 45 Hz band over beat-signal peak-to-peak above this is heavy noise.
const NOISE_RATIO: f32 = 0.12;

/// Signal quality of a stretch of ECG, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    /// Readable ECG.
    Good,
    /// Muscle or other high-frequency noise comparable to the QRS amplitude.
    Noisy,
    /// The signal sits at a constant extreme: amplifier or ADC saturation.
    Clipped,
    /// No cardiac activity: constant or near-constant signal.
    Flat,
    /// Invalid samples (NaN, infinite) or jumps far beyond cardiac amplitudes.
    LeadOff,
}

impl Quality {
    /// Stable lower-case name used in files and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Quality::Good => "good",
            Quality::Noisy => "noisy",
            Quality::Clipped => "clipped",
            Quality::Flat => "flat",
            Quality::LeadOff => "lead_off",
        }
    }

    /// True when a beat of this quality can be classified.
    pub fn is_readable(self) -> bool {
        self == Quality::Good
    }
}

#[derive(Debug, Clone, Copy)]
struct BlockStats {
    raw_min: f32,
    raw_max: f32,
    beat_min: f32,
    beat_max: f32,
    high_sq: f64,
    invalid: bool,
    long_run_hi: f32,
    long_run_lo: f32,
    len: usize,
}

impl BlockStats {
    const EMPTY: BlockStats = BlockStats {
        raw_min: f32::INFINITY,
        raw_max: f32::NEG_INFINITY,
        beat_min: f32::INFINITY,
        beat_max: f32::NEG_INFINITY,
        high_sq: 0.0,
        invalid: false,
        long_run_hi: f32::NEG_INFINITY,
        long_run_lo: f32::INFINITY,
        len: 0,
    };

    fn verdict(&self) -> Quality {
        if self.invalid || self.raw_max - self.raw_min > LEAD_OFF_PP_MV {
            return Quality::LeadOff;
        }
        let beat_pp = self.beat_max - self.beat_min;
        if beat_pp < FLAT_PP_MV {
            return Quality::Flat;
        }
        let eps = 1e-6 + (self.raw_max - self.raw_min) * 1e-3;
        if self.long_run_hi >= self.raw_max - eps || self.long_run_lo <= self.raw_min + eps {
            return Quality::Clipped;
        }
        let high_rms = (self.high_sq / self.len.max(1) as f64).sqrt() as f32;
        if high_rms > NOISE_RATIO * beat_pp {
            return Quality::Noisy;
        }
        Quality::Good
    }
}

/// Number of completed blocks remembered.
const HISTORY: usize = 8;

/// Per-stream quality state.
#[derive(Debug, Clone)]
pub struct QualityMonitor {
    block_len: u64,
    clip_run: u32,
    current: BlockStats,
    current_start: u64,
    run_value: f32,
    run_len: u32,
    /// Sample ranges `start..end` and verdicts of the last completed blocks (a ring).
    history: [(u64, u64, Quality); HISTORY],
    next_slot: usize,
}

impl QualityMonitor {
    /// A monitor for sampling rate `fs`.
    pub fn new(fs: f64) -> Self {
        QualityMonitor {
            block_len: fs.round().max(1.0) as u64,
            clip_run: (CLIP_RUN_S * fs).round().max(3.0) as u32,
            current: BlockStats::EMPTY,
            current_start: 0,
            run_value: f32::NAN,
            run_len: 0,
            history: [(0, 0, Quality::Good); HISTORY],
            next_slot: 0,
        }
    }

    /// Accounts a block of samples starting at sample `start`: raw values, whether
    /// each was invalid, and the beat and high-band values (all of one length).
    pub fn push_block(&mut self, start: u64, raw: &[f32], invalid: &[bool], beat: &[f32], high: &[f32]) {
        let mut i = 0;
        while i < raw.len() {
            let n = start + i as u64;
            let take = ((self.current_start + self.block_len - n) as usize).min(raw.len() - i);
            let r = i..i + take;
            let b = &mut self.current;
            for (&x, &y) in raw[r.clone()].iter().zip(&beat[r.clone()]) {
                b.raw_min = b.raw_min.min(x);
                b.raw_max = b.raw_max.max(x);
                b.beat_min = b.beat_min.min(y);
                b.beat_max = b.beat_max.max(y);
            }
            b.high_sq += high[r.clone()].iter().map(|&h| (h * h) as f64).sum::<f64>();
            b.invalid |= invalid[r.clone()].iter().any(|&v| v);
            b.len += take;
            for &x in &raw[r] {
                if x == self.run_value {
                    self.run_len += 1;
                    if self.run_len >= self.clip_run {
                        b.long_run_hi = b.long_run_hi.max(x);
                        b.long_run_lo = b.long_run_lo.min(x);
                    }
                } else {
                    self.run_value = x;
                    self.run_len = 1;
                }
            }
            i += take;
            let end = start + i as u64;
            if end - self.current_start >= self.block_len {
                self.history[self.next_slot] = (self.current_start, end, self.current.verdict());
                self.next_slot = (self.next_slot + 1) % HISTORY;
                self.current = BlockStats::EMPTY;
                self.current_start = end;
            }
        }
    }

    /// Worst quality over samples `from..to`, judged from the remembered blocks
    /// that were complete when sample `now` arrived (so the answer does not
    /// depend on how far ahead the monitor has been fed).
    pub fn quality_between(&self, from: u64, to: u64, now: u64) -> Quality {
        self.history
            .iter()
            .filter(|&&(start, end, _)| start < to && end > from && end <= now && end > start)
            .map(|&(_, _, q)| q)
            .max()
            .unwrap_or(Quality::Good)
    }

    /// Forgets everything (after a gap in the stream).
    pub fn reset(&mut self, next_sample: u64) {
        self.current = BlockStats::EMPTY;
        self.current_start = next_sample;
        self.run_len = 0;
        self.run_value = f32::NAN;
        self.history = [(0, 0, Quality::Good); HISTORY];
    }
}
