//! Online QRS detection in the Pan–Tompkins / Hamilton family.
//!
//! The detection signal (5–20 Hz) is differentiated, rectified (absolute
//! value, which keeps the dynamic range of PVCs and small beats closer than
//! squaring) and integrated over a 150 ms moving window. Peaks of the integrated signal are classified
//! against an adaptive threshold set between the median of the last eight QRS
//! peaks and the median of the last eight noise peaks (Hamilton and Tompkins
//! 1986). Rules on top of that:
//!
//! - **pre-blanking**: a candidate waits 250 ms; a larger peak within that time
//!   (even one still rising when the time is up) replaces it;
//! - **refractory period**: nothing within 200 ms of an accepted QRS is a QRS;
//! - **T-wave discrimination**: a candidate within 360 ms of the previous QRS whose
//!   maximal slope is under half that QRS's slope is a T wave;
//! - **search-back**: with no QRS for 1.66 median RR intervals, the largest
//!   sub-threshold peak since the last QRS that clears half the threshold is taken;
//! - **learning**: the first 2 s set the initial levels, then their peaks are
//!   replayed through the rules, so the first beats of a stream are not lost.
//!
//! Everything is causal: a decision about sample `n` uses samples up to `n` only.

use super::filter::MAX_BLOCK;
use std::collections::VecDeque;

/// A QRS found by [`QrsDetector`]: the sample at which its integrated energy peaked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QrsDetection {
    /// Sample index of the moving-window-integral peak (after the R peak).
    pub peak: u64,
    /// True when found by search-back rather than the main threshold.
    pub searchback: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Peak {
    at: u64,
    height: f32,
    slope: f32,
}

/// Median of a small buffer.
fn median<const N: usize>(values: &[f32; N]) -> f32 {
    let mut v = *values;
    v.sort_unstable_by(f32::total_cmp);
    if N % 2 == 1 {
        v[N / 2]
    } else {
        (v[N / 2 - 1] + v[N / 2]) / 2.0
    }
}

const LEVELS: usize = 8;
const MAX_CANDIDATES: usize = 32;
const MAX_LEARNING_PEAKS: usize = 64;
/// Threshold position between the noise and QRS levels.
const THRESHOLD_COEFF: f32 = 0.45;
/// Median RR intervals without a QRS before search-back.
const SEARCHBACK_RR: f32 = 1.66;
/// QRS-level decay factor, applied every RR interval after [`DECAY_AFTER_RR`] without a QRS.
const DECAY: f32 = 0.75;
/// RR intervals without a QRS before the QRS level starts to decay.
const DECAY_AFTER_RR: f32 = 4.0;

/// Per-stream QRS detector state.
#[derive(Debug, Clone)]
pub struct QrsDetector {
    learn_until: u64,
    refractory: u64,
    pre_blank: u64,
    twave_window: u64,
    peak_timeout: u64,
    slope_span: u64,
    default_rr: u32,

    d_hist: [f32; 4],
    mwi: Box<[f32]>,
    mwi_pos: usize,
    mwi_sum: f64,
    slopes: Box<[f32]>,

    prev_mwi: f32,
    tracking: Option<(u64, f32)>,

    learning_peaks: Vec<Peak>,
    pending: Option<Peak>,
    last_qrs: Option<Peak>,
    qrs_levels: [f32; LEVELS],
    noise_levels: [f32; LEVELS],
    rr: [f32; LEVELS],
    level_pos: (usize, usize, usize),
    threshold: f32,
    qrs_median: f32,
    noise_median: f32,
    rr_median: f32,
    candidates: VecDeque<Peak>,
    searchback_armed: bool,
    /// Sample at which the QRS level decays next if no QRS comes.
    decay_at: u64,
    next_event: u64,
    ready: VecDeque<QrsDetection>,
}

impl QrsDetector {
    /// A detector for a detection signal at `rate` Hz whose first sample will be `start`.
    pub fn new(rate: f64, start: u64) -> Self {
        let samples = |s: f64| (s * rate).round().max(1.0) as u64;
        let mwi_len = samples(0.15) as usize;
        QrsDetector {
            learn_until: start + samples(2.0),
            refractory: samples(0.2),
            pre_blank: samples(0.25),
            twave_window: samples(0.36),
            peak_timeout: samples(0.095),
            slope_span: samples(0.2),
            default_rr: samples(1.0) as u32,
            d_hist: [0.0; 4],
            mwi: vec![0.0; mwi_len].into_boxed_slice(),
            mwi_pos: 0,
            mwi_sum: 0.0,
            // Room for the slopes a decision looks back on plus a block written ahead of it.
            slopes: vec![0.0; (samples(0.4) as usize + MAX_BLOCK).next_power_of_two()]
                .into_boxed_slice(),
            prev_mwi: 0.0,
            tracking: None,
            learning_peaks: Vec::new(),
            pending: None,
            last_qrs: None,
            qrs_levels: [0.0; LEVELS],
            noise_levels: [0.0; LEVELS],
            rr: [0.0; LEVELS],
            level_pos: (0, 0, 0),
            threshold: f32::INFINITY,
            qrs_median: 0.0,
            noise_median: 0.0,
            rr_median: 0.0,
            candidates: VecDeque::with_capacity(MAX_CANDIDATES),
            searchback_armed: false,
            decay_at: u64::MAX,
            next_event: u64::MAX,
            ready: VecDeque::new(),
        }
    }

    /// Bytes of heap memory held by this detector.
    pub fn heap_bytes(&self) -> usize {
        (self.mwi.len() + self.slopes.len()) * 4
            + self.learning_peaks.capacity() * std::mem::size_of::<Peak>()
            + self.candidates.capacity() * std::mem::size_of::<Peak>()
            + self.ready.capacity() * std::mem::size_of::<QrsDetection>()
    }

    /// Feeds detection-signal sample `n` (one-sample form of [`energy`](Self::energy) and [`step`](Self::step)).
    pub fn push(&mut self, n: u64, x: f32) {
        let mut e = [0.0];
        self.energy(n, &[x], &mut e);
        self.step(n, e[0]);
    }

    /// First stage, over a block starting at sample `start`: five-point derivative,
    /// absolute value, integrated over 150 ms, into `energy` (same length as `x`).
    pub fn energy(&mut self, start: u64, x: &[f32], energy: &mut [f32]) {
        let mask = self.slopes.len() - 1;
        let width = self.mwi.len();
        let (mut h, mut sum, mut pos) = (self.d_hist, self.mwi_sum, self.mwi_pos);
        for (i, (&v, e)) in x.iter().zip(energy.iter_mut()).enumerate() {
            let d = 2.0 * v + h[0] - h[2] - 2.0 * h[3];
            h = [v, h[0], h[1], h[2]];
            let a = d.abs();
            self.slopes[(start as usize + i) & mask] = a;
            let old = std::mem::replace(&mut self.mwi[pos], a);
            pos = if pos + 1 == width { 0 } else { pos + 1 };
            sum += a as f64 - old as f64;
            // The window sum, not the mean: thresholds are relative.
            *e = sum.max(0.0) as f32;
        }
        (self.d_hist, self.mwi_sum, self.mwi_pos) = (h, sum, pos);
    }

    /// Second stage, sample by sample: peak finding on the integrated energy `v`
    /// of sample `n`, and the decision rules. Detections are queued for [`pop`](Self::pop).
    #[inline]
    pub fn step(&mut self, n: u64, v: f32) {
        match self.tracking {
            None => {
                if v > self.prev_mwi {
                    self.tracking = Some((n, v));
                }
            }
            Some((at, h)) => {
                if v > h {
                    self.tracking = Some((n, v));
                } else if v < 0.5 * h || n - at > self.peak_timeout {
                    self.tracking = None;
                    let peak = Peak {
                        at,
                        height: h,
                        slope: self.max_slope(n, at),
                    };
                    self.on_peak(peak);
                    self.schedule();
                }
            }
        }
        self.prev_mwi = v;
        if n + 1 == self.learn_until {
            self.finish_learning();
            self.schedule();
        }
        if n >= self.next_event {
            self.tick(n);
            self.schedule();
        }
    }

    /// Sets `next_event`, the first sample at which [`tick`](Self::tick) can act.
    fn schedule(&mut self) {
        self.next_event = match (self.pending, self.last_qrs) {
            (Some(q), _) => q.at + self.pre_blank,
            (None, Some(last)) if self.searchback_armed => {
                self.searchback_due(&last).min(self.decay_at)
            }
            _ => self.decay_at,
        };
    }

    /// Takes the next detection, if any.
    pub fn pop(&mut self) -> Option<QrsDetection> {
        self.ready.pop_front()
    }

    /// Largest |derivative| in the QRS that produced the integral peak at `at`.
    fn max_slope(&self, now: u64, at: u64) -> f32 {
        let mask = self.slopes.len() as u64 - 1;
        let from = at
            .saturating_sub(self.slope_span)
            .max(now.saturating_sub(mask));
        (from..=at)
            .map(|i| self.slopes[(i & mask) as usize])
            .fold(0.0, f32::max)
    }

    fn finish_learning(&mut self) {
        let peaks = std::mem::take(&mut self.learning_peaks);
        let top = peaks.iter().map(|p| p.height).fold(0.0, f32::max);
        self.qrs_levels = [top; LEVELS];
        self.noise_levels = [0.0; LEVELS];
        self.rr = [self.default_rr as f32; LEVELS];
        self.update_levels(true, true, true);
        for p in peaks {
            if let Some(q) = self.pending
                && p.at - q.at >= self.pre_blank
            {
                self.pending = None;
                self.classify(q);
            }
            self.on_peak(p);
        }
    }

    fn on_peak(&mut self, p: Peak) {
        if self.threshold.is_infinite() {
            if self.learning_peaks.len() < MAX_LEARNING_PEAKS {
                self.learning_peaks.push(p);
            }
            return;
        }
        if p.height >= self.threshold {
            match self.pending {
                Some(q) if p.at - q.at < self.pre_blank => {
                    if p.height > q.height {
                        self.pending = Some(p);
                    }
                }
                Some(q) => {
                    self.classify(q);
                    self.pending = Some(p);
                }
                None => self.pending = Some(p),
            }
        } else {
            self.add_noise(p);
        }
    }

    fn tick(&mut self, n: u64) {
        if let Some(q) = self.pending {
            // A peak still rising within the pre-blanking window may yet replace the candidate.
            let contested = self
                .tracking
                .is_some_and(|(at, _)| at < q.at + self.pre_blank);
            if n - q.at >= self.pre_blank && !contested {
                self.pending = None;
                self.classify(q);
            }
            return;
        }
        if let Some(last) = self.last_qrs
            && self.searchback_armed
            && n >= self.searchback_due(&last)
        {
            self.searchback(last);
        }
        if n >= self.decay_at && self.pending.is_none() {
            self.decay(n);
        }
    }

    /// Sample from which search-back looks for a QRS missed after `last`.
    fn searchback_due(&self, last: &Peak) -> u64 {
        last.at + (SEARCHBACK_RR * self.rr_median) as u64 + 1
    }

    fn is_t_wave(&self, p: &Peak, last: &Peak) -> bool {
        p.at - last.at < self.twave_window
            && p.slope < 0.5 * last.slope
            && p.height < 0.5 * last.height
    }

    fn classify(&mut self, q: Peak) {
        if let Some(last) = self.last_qrs
            && (q.at - last.at < self.refractory || self.is_t_wave(&q, &last))
        {
            self.add_noise(q);
            return;
        }
        self.accept(q, false);
    }

    fn searchback(&mut self, last: Peak) {
        let floor = 0.5 * self.threshold;
        let best = self
            .candidates
            .iter()
            .filter(|c| {
                c.height >= floor && c.at - last.at >= self.refractory && !self.is_t_wave(c, &last)
            })
            .max_by(|a, b| a.height.total_cmp(&b.height))
            .copied();
        match best {
            Some(c) => self.accept(c, true),
            None => self.searchback_armed = false,
        }
    }

    /// With no QRS for a long time (the signal got smaller), lowers the QRS level
    /// by a quarter every median RR interval, down to four times the noise level, and
    /// lets search-back look again at the peaks it had rejected.
    fn decay(&mut self, n: u64) {
        let noise = self.noise_median;
        if self.qrs_median > 4.0 * noise {
            for l in &mut self.qrs_levels {
                *l = (*l * DECAY).max(4.0 * noise);
            }
            self.update_levels(true, false, false);
            self.searchback_armed = !self.candidates.is_empty();
        }
        self.decay_at = n + self.rr_median.max(1.0) as u64;
    }

    fn add_noise(&mut self, p: Peak) {
        let i = self.level_pos.1;
        self.noise_levels[i] = p.height;
        self.level_pos.1 = (i + 1) % LEVELS;
        self.update_levels(false, true, false);
        if self.last_qrs.is_some_and(|last| p.at > last.at) {
            if self.candidates.len() == MAX_CANDIDATES {
                self.candidates.pop_front();
            }
            self.candidates.push_back(p);
            self.searchback_armed = true;
        }
    }

    fn accept(&mut self, q: Peak, searchback: bool) {
        if let Some(last) = self.last_qrs {
            let i = self.level_pos.2;
            self.rr[i] = (q.at - last.at) as f32;
            self.level_pos.2 = (i + 1) % LEVELS;
        }
        let i = self.level_pos.0;
        self.qrs_levels[i] = q.height;
        self.level_pos.0 = (i + 1) % LEVELS;
        self.update_levels(true, false, true);
        self.last_qrs = Some(q);
        self.decay_at = q.at + (DECAY_AFTER_RR * self.rr_median) as u64 + 1;
        self.candidates.retain(|c| c.at > q.at);
        self.searchback_armed = !self.candidates.is_empty();
        self.ready.push_back(QrsDetection {
            peak: q.at,
            searchback,
        });
    }

    /// Recomputes the medians whose buffers changed, then the threshold.
    fn update_levels(&mut self, qrs: bool, noise: bool, rr: bool) {
        if qrs {
            self.qrs_median = median(&self.qrs_levels);
        }
        if noise {
            self.noise_median = median(&self.noise_levels);
        }
        if rr {
            self.rr_median = median(&self.rr);
        }
        self.threshold =
            self.noise_median + THRESHOLD_COEFF * (self.qrs_median - self.noise_median).max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Synthetic ECG-like detection signal: a 10 Hz burst (the QRS band) every `rr`
    /// seconds, ending early enough for the last one to be decided.
    fn bursts(fs: f64, rr: f64, secs: f64, amp: impl Fn(usize) -> f32) -> (Vec<f32>, Vec<u64>) {
        let n = (fs * secs) as usize;
        let mut x = vec![0.0f32; n];
        let mut beats = Vec::new();
        let mut t = 0.5;
        let mut k = 0;
        while t + 0.6 < secs {
            let c = (t * fs) as usize;
            beats.push(c as u64);
            let half = (0.05 * fs) as usize;
            for (j, v) in x[c - half..c + half].iter_mut().enumerate() {
                let ph = (j as f64 - half as f64) / fs;
                let env = (std::f64::consts::PI * j as f64 / (2 * half) as f64).sin();
                *v += amp(k) * (env * (2.0 * std::f64::consts::PI * 10.0 * ph).cos()) as f32;
            }
            t += rr;
            k += 1;
        }
        (x, beats)
    }

    fn detect(fs: f64, x: &[f32]) -> Vec<QrsDetection> {
        let mut d = QrsDetector::new(fs, 0);
        let mut out = Vec::new();
        for (n, &v) in x.iter().enumerate() {
            d.push(n as u64, v);
            while let Some(q) = d.pop() {
                out.push(q);
            }
        }
        out
    }

    fn assert_one_per_beat(beats: &[u64], found: &[QrsDetection], fs: f64) {
        assert_eq!(found.len(), beats.len(), "found {found:?}");
        for (b, f) in beats.iter().zip(found) {
            let lag = f.peak as f64 - *b as f64;
            assert!(
                (0.0..0.25 * fs).contains(&lag),
                "beat {b} detected at {}",
                f.peak
            );
        }
    }

    #[test]
    fn finds_every_burst_including_during_learning() {
        for fs in [100.0, 360.0, 1000.0] {
            let (x, beats) = bursts(fs, 0.8, 30.0, |_| 1.0);
            assert_one_per_beat(&beats, &detect(fs, &x), fs);
        }
    }

    #[test]
    fn searchback_recovers_a_small_beat_among_large_ones() {
        let fs = 360.0;
        // Every 10th beat has 35 % amplitude: under the main threshold in energy, above half of it.
        let (x, beats) = bursts(
            fs,
            0.8,
            40.0,
            |k| if k > 5 && k % 10 == 0 { 0.35 } else { 1.0 },
        );
        let found = detect(fs, &x);
        assert_one_per_beat(&beats, &found, fs);
        assert!(
            found.iter().any(|d| d.searchback),
            "no beat came from search-back"
        );
    }

    #[test]
    fn silence_gives_nothing() {
        assert!(detect(360.0, &vec![0.0; 36_000]).is_empty());
    }
}
