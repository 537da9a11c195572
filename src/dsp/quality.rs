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
/// Mean |second difference| of the raw signal (scaled to 360 Hz) over the
/// beat-signal peak-to-peak amplitude above this is heavy broadband noise.
const NOISE_RATIO: f32 = 0.12;
/// Median |slope| of the beat signal (mV/s) over its peak-to-peak amplitude
/// (mV) above this is heavy in-band noise: clean ECG is nearly flat between
/// QRS complexes, so its median slope is small (99 % of clean MIT-BIH blocks
/// are under 5.1 /s).
const SLOPE_RATIO: f32 = 8.0;
/// The noise measures are taken relative to the larger of the block's own
/// peak-to-peak amplitude and this share of the patient's recent QRS amplitude
/// (see [`AmplitudeMemory`]). A block with no QRS in it (a pause, the
/// diastole of a slow rhythm) has a small amplitude of its own, and measured
/// against that alone its ordinary baseline activity reads as heavy noise.
const REFERENCE_SHARE: f32 = 0.5;
/// Completed good blocks whose amplitudes [`AmplitudeMemory`] keeps.
const AMPLITUDE_BLOCKS: usize = 16;

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

    /// Every flag, for parsing.
    pub const ALL: [Quality; 5] = [
        Quality::Good,
        Quality::Noisy,
        Quality::Clipped,
        Quality::Flat,
        Quality::LeadOff,
    ];

    /// The flag named `s` (the inverse of [`as_str`](Self::as_str)).
    pub fn parse(s: &str) -> Option<Quality> {
        Quality::ALL.into_iter().find(|q| q.as_str() == s)
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
    /// Sum of |second difference| of the raw signal, in units of [`HF_UNIT_MV`].
    hf_sum: u64,
    invalid: bool,
    long_run_hi: f32,
    long_run_lo: f32,
    len: usize,
}

/// Quantum of the high-frequency sum, mV. Integer sums make the verdict
/// independent of how the stream was split into blocks.
const HF_UNIT_MV: f32 = 1e-5;

impl BlockStats {
    const EMPTY: BlockStats = BlockStats {
        raw_min: f32::INFINITY,
        raw_max: f32::NEG_INFINITY,
        beat_min: f32::INFINITY,
        beat_max: f32::NEG_INFINITY,
        hf_sum: 0,
        invalid: false,
        long_run_hi: f32::NEG_INFINITY,
        long_run_lo: f32::INFINITY,
        len: 0,
    };

    /// The block's verdict. An incomplete block is only judged on what a few
    /// samples can show (invalid samples, lead-off jumps); flatness, clipping and
    /// noise need the whole block.
    fn verdict(
        &self,
        hf_scale: f32,
        median_slope: f32,
        reference_pp: f32,
        complete: bool,
    ) -> Quality {
        if self.invalid || self.raw_max - self.raw_min > LEAD_OFF_PP_MV {
            return Quality::LeadOff;
        }
        if !complete {
            return Quality::Good;
        }
        let beat_pp = self.beat_max - self.beat_min;
        if beat_pp < FLAT_PP_MV {
            return Quality::Flat;
        }
        // A long run of one value at an extreme of the block: saturation, at the
        // peaks or (when the baseline is off the ADC's range) along the baseline.
        // Real ECG, even quantised, is never bit-identical for 30 ms at its extremes.
        let eps = 1e-6 + (self.raw_max - self.raw_min) * 1e-3;
        if self.long_run_hi >= self.raw_max - eps || self.long_run_lo <= self.raw_min + eps {
            return Quality::Clipped;
        }
        let scale = beat_pp.max(REFERENCE_SHARE * reference_pp);
        if self.noise_ratio(hf_scale, scale) > NOISE_RATIO || median_slope > SLOPE_RATIO * scale {
            return Quality::Noisy;
        }
        Quality::Good
    }

    /// Mean high-frequency activity over the amplitude `scale` (mV).
    fn noise_ratio(&self, hf_scale: f32, scale: f32) -> f32 {
        let hf = self.hf_sum as f32 * HF_UNIT_MV / self.len.max(1) as f32 * hf_scale;
        hf / scale.max(1e-6)
    }
}

/// Number of completed blocks remembered.
const HISTORY: usize = 8;

/// Per-stream quality state.
#[derive(Debug, Clone)]
pub struct QualityMonitor {
    block_len: u64,
    clip_run: u32,
    /// Makes the second difference comparable across sampling rates (1 at 360 Hz).
    hf_scale: f32,
    current: BlockStats,
    current_start: u64,
    /// The two previous raw samples, for the second difference.
    prev: [f32; 2],
    run_value: f32,
    run_len: u32,
    /// Histogram of the beat signal's |slope| over the current block.
    slopes: SlopeHistogram,
    prev_beat: f32,
    working_rate: f32,
    /// Sample ranges `start..end` and verdicts of the last completed blocks (a ring).
    history: [(u64, u64, Quality); HISTORY],
    next_slot: usize,
    /// Beat-signal amplitudes of the last good blocks.
    amplitudes: AmplitudeMemory,
}

/// The beat-signal peak-to-peak amplitudes of the last [`AMPLITUDE_BLOCKS`]
/// blocks judged good, a ring. Its upper quartile is the patient's recent QRS
/// amplitude: most one-second blocks hold a QRS, and a quartile, unlike the
/// maximum, is not moved by one stray artefact that passed the gate.
#[derive(Debug, Clone, Default)]
struct AmplitudeMemory {
    values: [f32; AMPLITUDE_BLOCKS],
    len: usize,
    next: usize,
}

impl AmplitudeMemory {
    fn push(&mut self, pp: f32) {
        self.values[self.next] = pp;
        self.next = (self.next + 1) % AMPLITUDE_BLOCKS;
        self.len = (self.len + 1).min(AMPLITUDE_BLOCKS);
    }

    /// The upper quartile of the remembered amplitudes (0 until there are four).
    fn reference(&self) -> f32 {
        if self.len < 4 {
            return 0.0;
        }
        let mut v = self.values;
        let v = &mut v[..self.len];
        v.sort_unstable_by(f32::total_cmp);
        v[self.len * 3 / 4]
    }
}

impl QualityMonitor {
    /// A monitor for input rate `fs` and a beat signal decimated by `decimation`.
    pub fn new(fs: f64, decimation: u64) -> Self {
        QualityMonitor {
            block_len: fs.round().max(1.0) as u64,
            clip_run: (CLIP_RUN_S * fs).round().max(3.0) as u32,
            hf_scale: ((fs / 360.0) * (fs / 360.0)) as f32,
            current: BlockStats::EMPTY,
            current_start: 0,
            prev: [0.0; 2],
            run_value: f32::NAN,
            run_len: 0,
            slopes: SlopeHistogram::default(),
            prev_beat: 0.0,
            working_rate: (fs / decimation as f64) as f32,
            history: [(0, 0, Quality::Good); HISTORY],
            next_slot: 0,
            amplitudes: AmplitudeMemory::default(),
        }
    }

    /// Accounts a block of input samples starting at input index `start` (raw
    /// values and, if any was invalid, which), plus the beat signal at the
    /// working rate (`decimation` input samples per value, the first at input
    /// index `ceil(start / decimation) * decimation`).
    pub fn push_block(
        &mut self,
        start: u64,
        raw: &[f32],
        invalid: Option<&[bool]>,
        decimation: u64,
        beat: &[f32],
    ) {
        let beat_base = start.div_ceil(decimation);
        let mut i = 0;
        while i < raw.len() {
            let n = start + i as u64;
            let take = ((self.current_start + self.block_len - n) as usize).min(raw.len() - i);
            let end = n + take as u64;
            let seg = &raw[i..i + take];
            let b = &mut self.current;
            let (lo, hi) = min_max(seg);
            b.raw_min = b.raw_min.min(lo);
            b.raw_max = b.raw_max.max(hi);
            let beats = (n.div_ceil(decimation) - beat_base) as usize
                ..(end.div_ceil(decimation) - beat_base) as usize;
            let seg_beat = &beat[beats];
            if let (Some(&first), Some(&last)) = (seg_beat.first(), seg_beat.last()) {
                let rate = self.working_rate;
                self.slopes.add((first - self.prev_beat).abs() * rate);
                for w in seg_beat.windows(2) {
                    self.slopes.add((w[1] - w[0]).abs() * rate);
                }
                self.prev_beat = last;
            }
            let (lo, hi) = min_max(seg_beat);
            b.beat_min = b.beat_min.min(lo);
            b.beat_max = b.beat_max.max(hi);
            if let Some(invalid) = invalid {
                b.invalid |= invalid[i..i + take].contains(&true);
            }
            b.len += take;
            b.hf_sum += second_difference_sum(self.prev, seg);
            if let [.., x2, x1] = seg {
                self.prev = [*x1, *x2];
            } else if let [x1] = seg {
                self.prev = [*x1, self.prev[0]];
            }
            // Branch-free run length of identical values; long runs are rare.
            let (mut value, mut len) = (self.run_value, self.run_len);
            for &x in seg {
                len = len * u32::from(x == value) + 1;
                value = x;
                if len >= self.clip_run {
                    b.long_run_hi = b.long_run_hi.max(x);
                    b.long_run_lo = b.long_run_lo.min(x);
                }
            }
            (self.run_value, self.run_len) = (value, len);
            i += take;
            if end - self.current_start >= self.block_len {
                let verdict = self.current_verdict(true);
                if verdict == Quality::Good {
                    self.amplitudes
                        .push(self.current.beat_max - self.current.beat_min);
                }
                self.slopes.clear();
                self.history[self.next_slot] = (self.current_start, end, verdict);
                self.next_slot = (self.next_slot + 1) % HISTORY;
                // The new block starts from the last value, so a jump across the boundary counts.
                let last = self.prev[0];
                self.current = BlockStats {
                    raw_min: last,
                    raw_max: last,
                    ..BlockStats::EMPTY
                };
                self.current_start = end;
            }
        }
    }

    /// Index of the next input sample the monitor expects.
    pub fn fed(&self) -> u64 {
        self.current_start + self.current.len as u64
    }

    /// Verdict of the current block; `complete` when it is about to close.
    fn current_verdict(&self, complete: bool) -> Quality {
        self.current.verdict(
            self.hf_scale,
            self.slopes.median(),
            self.amplitudes.reference(),
            complete,
        )
    }

    /// Worst quality over input samples `from..to`, from the remembered blocks and
    /// the current one (judged fully once it is half complete). The monitor must
    /// have been fed exactly the samples that have arrived, so that the answer
    /// does not depend on how the stream was chunked.
    pub fn quality_between(&mut self, from: u64, to: u64) -> Quality {
        let history = self
            .history
            .iter()
            .filter(|&&(start, end, _)| start < to && end > from && end > start)
            .map(|&(_, _, q)| q)
            .max()
            .unwrap_or(Quality::Good);
        let current = if self.current.len > 0 && self.current_start < to && self.fed() > from {
            let half = self.current.len as u64 * 2 >= self.block_len;
            self.current_verdict(half)
        } else {
            Quality::Good
        };
        history.max(current)
    }
}

/// Octaves covered by [`SlopeHistogram`]: 2^-6 to 2^14 mV/s.
const SLOPE_OCTAVES: (i32, i32) = (-6, 14);
/// Bins per octave.
const SLOPE_BINS_PER_OCTAVE: usize = 4;
const SLOPE_BINS: usize = (SLOPE_OCTAVES.1 - SLOPE_OCTAVES.0) as usize * SLOPE_BINS_PER_OCTAVE;

/// A log-scale histogram (quarter-octave bins) of slopes, for a cheap median:
/// an exact one would sort every block.
#[derive(Debug, Clone)]
struct SlopeHistogram {
    counts: [u16; SLOPE_BINS],
    total: u32,
}

impl Default for SlopeHistogram {
    fn default() -> Self {
        SlopeHistogram {
            counts: [0; SLOPE_BINS],
            total: 0,
        }
    }
}

impl SlopeHistogram {
    /// Adds a non-negative value; the bin comes from the float's exponent and top mantissa bits.
    #[inline]
    fn add(&mut self, v: f32) {
        let bits = v.to_bits();
        let octave = ((bits >> 23) & 0xff) as i32 - 127;
        let quarter = ((bits >> 21) & 3) as i32;
        let bin = ((octave - SLOPE_OCTAVES.0) * SLOPE_BINS_PER_OCTAVE as i32 + quarter)
            .clamp(0, SLOPE_BINS as i32 - 1) as usize;
        self.counts[bin] = self.counts[bin].saturating_add(1);
        self.total += 1;
    }

    /// The median, as the lower edge of the bin holding it (0 when empty).
    fn median(&self) -> f32 {
        let mut seen = 0;
        for (bin, &c) in self.counts.iter().enumerate() {
            seen += c as u32;
            if seen * 2 > self.total {
                let octave = (bin / SLOPE_BINS_PER_OCTAVE) as i32 + SLOPE_OCTAVES.0;
                let quarter = (bin % SLOPE_BINS_PER_OCTAVE) as f32;
                return 2f32.powi(octave) * (1.0 + quarter / SLOPE_BINS_PER_OCTAVE as f32);
            }
        }
        0.0
    }

    fn clear(&mut self) {
        *self = SlopeHistogram::default();
    }
}

/// Sum of |x[n] - 2 x[n-1] + x[n-2]| over `seg` in units of [`HF_UNIT_MV`],
/// `prev` being the two samples before it (most recent first).
fn second_difference_sum(prev: [f32; 2], seg: &[f32]) -> u64 {
    let quantum = |d: f32| (d.abs() * (1.0 / HF_UNIT_MV)) as i32 as i64;
    let head: i64 = match seg {
        [] => 0,
        [a] => quantum(a - 2.0 * prev[0] + prev[1]),
        [a, b, ..] => quantum(a - 2.0 * prev[0] + prev[1]) + quantum(b - 2.0 * a + prev[0]),
    };
    let body: i64 = seg
        .windows(3)
        .map(|w| quantum(w[2] - 2.0 * w[1] + w[0]))
        .sum();
    (head + body) as u64
}

/// Minimum and maximum of finite values, in eight lanes so that it vectorises.
fn min_max(v: &[f32]) -> (f32, f32) {
    let mut lo = [f32::INFINITY; 8];
    let mut hi = [f32::NEG_INFINITY; 8];
    let chunks = v.chunks_exact(8);
    for &x in chunks.remainder() {
        lo[0] = if x < lo[0] { x } else { lo[0] };
        hi[0] = if x > hi[0] { x } else { hi[0] };
    }
    for c in chunks {
        for l in 0..8 {
            lo[l] = if c[l] < lo[l] { c[l] } else { lo[l] };
            hi[l] = if c[l] > hi[l] { c[l] } else { hi[l] };
        }
    }
    (
        lo.iter().fold(f32::INFINITY, |a, &b| a.min(b)),
        hi.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const FS: f64 = 360.0;

    /// Feeds `raw` (with beat signal = raw, no decimation) and returns the verdict of
    /// samples `from..to`.
    fn judge(raw: &[f32], invalid: Option<&[bool]>, from: u64, to: u64) -> Quality {
        let mut q = QualityMonitor::new(FS, 1);
        q.push_block(0, raw, invalid, 1, raw);
        q.quality_between(from, to)
    }

    /// A crude ECG: 1 mV spikes every 0.8 s on a slow 0.1 mV wave.
    fn ecg(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let t = i as f32 / FS as f32;
                let spike = if i % 288 < 8 {
                    1.0 - (i % 288) as f32 / 8.0
                } else {
                    0.0
                };
                spike + 0.1 * (std::f32::consts::TAU * 1.2 * t).sin()
            })
            .collect()
    }

    #[test]
    fn clean_signal_is_good() {
        assert_eq!(judge(&ecg(3600), None, 0, 3600), Quality::Good);
    }

    #[test]
    fn flat_line_is_flat() {
        assert_eq!(judge(&[0.9; 3600], None, 0, 3600), Quality::Flat);
    }

    #[test]
    fn saturated_tops_are_clipped() {
        // Wide 1 mV triangles saturating at 0.4 mV: flat tops of about 65 ms.
        let x: Vec<f32> = (0..3600)
            .map(|i| {
                let d = (i % 288) as f32;
                (if d < 40.0 {
                    1.0 - (d - 20.0).abs() / 20.0
                } else {
                    0.0
                })
                .min(0.4)
            })
            .collect();
        assert_eq!(judge(&x, None, 0, 3600), Quality::Clipped);
        // The same without saturation, on a baseline with a little noise like any real one, is not.
        let y: Vec<f32> = (0..3600)
            .map(|i| {
                let d = (i % 288) as f32;
                let noise = 0.005 * ((i * 7919 % 13) as f32 - 6.0) / 6.0;
                noise
                    + if d < 40.0 {
                        1.0 - (d - 20.0).abs() / 20.0
                    } else {
                        0.0
                    }
            })
            .collect();
        assert_ne!(judge(&y, None, 0, 3600), Quality::Clipped);
    }

    #[test]
    fn invalid_samples_and_jumps_are_lead_off_even_in_an_open_block() {
        let x = ecg(3600);
        let mut invalid = vec![false; 3600];
        invalid[3500] = true;
        assert_eq!(judge(&x, Some(&invalid), 3400, 3600), Quality::LeadOff);
        let mut step = ecg(3600);
        // A 20 mV step exactly on a block boundary.
        for v in &mut step[1800..] {
            *v += 20.0;
        }
        assert_eq!(judge(&step, None, 1700, 1900), Quality::LeadOff);
        // Earlier blocks stay good.
        assert_eq!(judge(&step, None, 0, 1000), Quality::Good);
    }

    #[test]
    fn broadband_noise_is_noisy() {
        let mut seed = 1u32;
        let x: Vec<f32> = ecg(3600)
            .iter()
            .map(|v| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                v + 0.8 * ((seed >> 8) as f32 / (1 << 24) as f32 - 0.5)
            })
            .collect();
        assert_eq!(judge(&x, None, 0, 3600), Quality::Noisy);
    }

    /// [`ecg`] with the spikes of seconds `from..to` left out (a pause), and
    /// a little baseline noise everywhere, as on any real recording.
    fn ecg_with_pause(n: usize, from: f32, to: f32) -> Vec<f32> {
        ecg(n)
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let t = i as f32 / FS as f32;
                let wave = 0.1 * (std::f32::consts::TAU * 1.2 * t).sin();
                let noise = 0.02 * ((i * 7919 % 13) as f32 - 6.0) / 6.0;
                noise + if (from..to).contains(&t) { wave } else { v }
            })
            .collect()
    }

    #[test]
    fn a_pause_between_clean_beats_is_good() {
        // Ten seconds of beats, a five-second pause, beats again: the blocks
        // with no QRS in them are judged against the patient's QRS
        // amplitude, not their own small one.
        let x = ecg_with_pause(7200, 10.0, 15.0);
        assert_eq!(judge(&x, None, 0, 7200), Quality::Good);
        // Measured against its own amplitude, the same pause block is noise.
        let pause = &x[11 * 360..12 * 360];
        assert_eq!(judge(pause, None, 0, 360), Quality::Noisy);
    }

    #[test]
    fn noise_after_a_clean_stretch_is_still_noisy() {
        let mut seed = 1u32;
        let x: Vec<f32> = ecg(7200)
            .iter()
            .enumerate()
            .map(|(i, v)| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let noise = 0.8 * ((seed >> 8) as f32 / (1 << 24) as f32 - 0.5);
                v + if i >= 3600 { noise } else { 0.0 }
            })
            .collect();
        assert_eq!(judge(&x, None, 0, 3600), Quality::Good);
        assert_eq!(judge(&x, None, 4000, 7200), Quality::Noisy);
    }

    #[test]
    fn slope_histogram_median_is_within_a_quarter_octave() {
        let mut h = SlopeHistogram::default();
        for v in [0.0, 1.0, 3.0, 10.0, 100.0] {
            h.add(v);
        }
        let m = h.median();
        assert!(m <= 3.0 && m > 3.0 / 2f32.powf(0.25), "median {m}");
        assert_eq!(SlopeHistogram::default().median(), 0.0);
    }
}
