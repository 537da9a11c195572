//! The streaming beat extractor: raw samples in, 187-sample beats out.
//!
//! Per sample it filters ([`FilterBank`]), watches quality ([`QualityMonitor`])
//! and detects QRS complexes ([`QrsDetector`]). Each detection is refined to
//! the R peak: the largest absolute value of the beat signal in the 250 ms
//! before the detector's energy peak. A beat is emitted once the next R peak is
//! known and the samples it spans have arrived, in the layout of the Kaggle
//! "ECG Heartbeat Categorization" dataset (Kachuee et al. 2018): the beat
//! signal from the R peak for 1.2 × the median RR interval of the last 10 s,
//! resampled to 125 Hz, min-max normalised to [0, 1], zero-padded to 187.
//!
//! Latency (R peak to emission) is therefore about one RR interval plus the
//! detector's ~0.3 s decision delay; [`Beat::emitted_at`] records it exactly.

use super::quality::{Quality, QualityMonitor};
use super::{DspError, FilterBank, QrsDetector, Resampler};
use std::collections::VecDeque;

/// Values per beat.
pub const BEAT_LEN: usize = 187;
/// Sampling rate of the beat vector, Hz.
pub const BEAT_RATE_HZ: f64 = 125.0;
/// Beat length in RR intervals.
const WINDOW_RR: f64 = 1.2;
/// RR intervals within this many seconds set the beat length.
const RR_CONTEXT_S: f64 = 10.0;
/// How far before the detector's energy peak the R peak is searched, seconds.
const R_SEARCH_S: f64 = 0.25;
/// A beat whose next R peak has not come after this long is emitted without it, seconds.
const MAX_WAIT_S: f64 = 2.5;
/// Seconds of beat signal kept (enough for the longest wait plus margins).
const RING_S: f64 = 4.0;
/// Samples with an absolute value above this (mV) are treated as invalid.
const MAX_ABS_MV: f32 = 1000.0;
/// Samples processed per stage in [`BeatExtractor::push`].
const BLOCK: usize = 128;

/// Settings of one stream.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractorConfig {
    /// Sampling rate, Hz (100 to 1000).
    pub fs: f64,
    /// Powerline frequency to notch out (50 or 60 Hz), or none.
    pub powerline_hz: Option<f64>,
    /// Time of sample 0, seconds (e.g. since the Unix epoch, or 0 for a record).
    pub start_time_s: f64,
}

impl ExtractorConfig {
    /// Defaults for a stream at `fs` Hz: 60 Hz notch, time starting at 0.
    pub fn new(fs: f64) -> Self {
        ExtractorConfig {
            fs,
            powerline_hz: Some(60.0),
            start_time_s: 0.0,
        }
    }
}

/// One heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct Beat {
    /// Index of the R peak in the stream (original sampling rate).
    pub sample: u64,
    /// Time of the R peak, seconds (`start_time_s + sample / fs`).
    pub time_s: f64,
    /// Interval from the previous R peak, ms.
    pub rr_prev_ms: Option<f64>,
    /// Interval to the next R peak, ms (`None` when none came within 2.5 s).
    pub rr_next_ms: Option<f64>,
    /// Signal quality around the beat; only `Good` beats should be classified.
    pub quality: Quality,
    /// True when the detector found this beat by search-back.
    pub searchback: bool,
    /// Index of the sample whose arrival completed the beat (latency = `emitted_at - sample`).
    pub emitted_at: u64,
    /// The beat: 187 values in [0, 1] at 125 Hz, starting at the R peak, zero-padded.
    pub values: [f32; BEAT_LEN],
}

#[derive(Debug, Clone, Copy)]
struct PendingBeat {
    r: u64,
    rr_prev: Option<u64>,
    rr_next: Option<u64>,
    searchback: bool,
}

/// Per-stream state turning samples into beats. Feed it with [`push`](Self::push).
#[derive(Debug, Clone)]
pub struct BeatExtractor {
    config: ExtractorConfig,
    filters: FilterBank,
    detector: QrsDetector,
    quality: QualityMonitor,
    resampler: Resampler,
    next: u64,
    /// Samples written to `ring` (ahead of `next` within a block).
    written: u64,
    last_valid: f32,
    ring: Box<[f32]>,
    pending: VecDeque<PendingBeat>,
    rr_history: VecDeque<(u64, u64)>,
    last_r: Option<u64>,
    scratch: Vec<f32>,
    r_search: u64,
    max_wait: u64,
    rr_context: u64,
    max_window_out: usize,
    /// Beat length in output samples, from the current RR context.
    window_out: usize,
    /// Sample count at which the oldest pending beat can be emitted.
    ready_at: u64,
    /// Stream samples per detection-signal sample.
    decimation: u64,
}

impl BeatExtractor {
    /// A new stream state; fails if the sampling rate or powerline frequency is unsupported.
    pub fn new(config: ExtractorConfig) -> Result<Self, DspError> {
        let fs = config.fs;
        let filters = FilterBank::new(fs, config.powerline_hz)?;
        let decimation = filters.decimation();
        let resampler = Resampler::new(fs, BEAT_RATE_HZ);
        let ring_len = ((RING_S * fs) as usize).next_power_of_two();
        let scratch_len = (BEAT_LEN as f64 * resampler.step()).ceil() as usize + 2 * resampler.margin() + 2;
        Ok(BeatExtractor {
            filters,
            detector: QrsDetector::new(fs / filters.decimation() as f64, 0),
            quality: QualityMonitor::new(fs),
            resampler,
            next: 0,
            written: 0,
            last_valid: 0.0,
            ring: vec![0.0; ring_len].into_boxed_slice(),
            pending: VecDeque::with_capacity(16),
            rr_history: VecDeque::with_capacity(64),
            last_r: None,
            scratch: Vec::with_capacity(scratch_len),
            r_search: (R_SEARCH_S * fs).round() as u64,
            max_wait: (MAX_WAIT_S * fs).round() as u64,
            rr_context: (RR_CONTEXT_S * fs).round() as u64,
            max_window_out: BEAT_LEN,
            window_out: (WINDOW_RR * BEAT_RATE_HZ).round() as usize,
            ready_at: u64::MAX,
            decimation,
            config,
        })
    }

    /// The stream's configuration.
    pub fn config(&self) -> &ExtractorConfig {
        &self.config
    }

    /// Index of the next sample to be pushed.
    pub fn next_sample(&self) -> u64 {
        self.next
    }

    /// Memory held by this stream's state, bytes (struct plus heap).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.ring.len() * 4
            + self.scratch.capacity() * 4
            + self.pending.capacity() * std::mem::size_of::<PendingBeat>()
            + self.rr_history.capacity() * 16
            + self.detector.heap_bytes()
    }

    /// Feeds a chunk of samples (mV) and appends every beat completed by them to `out`.
    /// Non-finite or absurd samples are replaced by the last valid value and flag the
    /// surrounding beats as lead-off.
    ///
    /// Work is done in stages over blocks of [`BLOCK`] samples (filters, ring,
    /// quality, then detection and emission sample by sample); every stage is
    /// causal, so the result is the same for any chunking.
    pub fn push(&mut self, samples: &[f32], out: &mut Vec<Beat>) {
        let mask = self.ring.len() - 1;
        let mut raw = [0.0f32; BLOCK];
        let mut invalid = [false; BLOCK];
        let mut beat = [0.0f32; BLOCK];
        let mut detect = [0.0f32; BLOCK];
        let mut high = [0.0f32; BLOCK];
        let mut energy = [0.0f32; BLOCK];
        for part in samples.chunks(BLOCK) {
            let len = part.len();
            for (i, &v) in part.iter().enumerate() {
                let bad = !v.is_finite() || v.abs() > MAX_ABS_MV;
                invalid[i] = bad;
                if !bad {
                    self.last_valid = v;
                }
                raw[i] = self.last_valid;
            }
            let base = self.next;
            let decimated = self
                .filters
                .process_block(base, &raw[..len], &mut beat[..len], &mut high[..len], &mut detect);
            for (i, &b) in beat[..len].iter().enumerate() {
                self.ring[(base as usize + i) & mask] = b;
            }
            self.written = base + len as u64;
            self.quality
                .push_block(base, &raw[..len], &invalid[..len], &beat[..len], &high[..len]);
            let k = self.decimation;
            let first_decimated = (k - base % k) % k;
            self.detector
                .energy(base.div_ceil(k), &detect[..decimated], &mut energy[..decimated]);
            let mut next_decimated = base + first_decimated;
            let mut j = 0;
            for n in base..base + len as u64 {
                if n == next_decimated {
                    self.detector.step(n / k, energy[j]);
                    j += 1;
                    next_decimated += k;
                    while let Some(d) = self.detector.pop() {
                        self.on_qrs(d.peak * k, d.searchback);
                    }
                }
                self.next = n + 1;
                if self.next >= self.ready_at {
                    self.emit_ready(out, false);
                }
            }
        }
    }

    /// Ends the stream: emits every pending beat with the samples available.
    pub fn finish(&mut self, out: &mut Vec<Beat>) {
        self.emit_ready(out, true);
    }

    fn on_qrs(&mut self, peak: u64, searchback: bool) {
        let mask = self.ring.len() as u64 - 1;
        let oldest = self.written.saturating_sub(mask);
        let from = peak
            .saturating_sub(self.r_search)
            .max(oldest)
            .max(self.last_r.map_or(0, |r| r + 1));
        let Some(r) = (from..=peak).max_by(|&a, &b| {
            self.ring[(a & mask) as usize]
                .abs()
                .total_cmp(&self.ring[(b & mask) as usize].abs())
                .then(b.cmp(&a))
        }) else {
            return;
        };
        let rr_prev = self.last_r.map(|l| r - l);
        if let (Some(rr), Some(prev)) = (rr_prev, self.pending.back_mut())
            && prev.r == r - rr
        {
            prev.rr_next = Some(rr);
        }
        if let Some(rr) = rr_prev {
            self.rr_history.push_back((r, rr));
            while self
                .rr_history
                .front()
                .is_some_and(|&(end, _)| end + self.rr_context < r)
            {
                self.rr_history.pop_front();
            }
        }
        self.pending.push_back(PendingBeat {
            r,
            rr_prev,
            rr_next: None,
            searchback,
        });
        self.last_r = Some(r);
        self.window_out = self.median_window_out();
        self.update_ready_at();
    }

    /// Samples of the stream a beat at `r` spans (to its last output sample plus the kernel margin).
    fn span_end(&self, r: u64, n_out: usize) -> u64 {
        r + ((n_out - 1) as f64 * self.resampler.step()).ceil() as u64 + self.resampler.margin() as u64 + 1
    }

    fn update_ready_at(&mut self) {
        self.ready_at = match self.pending.front() {
            None => u64::MAX,
            Some(p) => {
                let complete = self.span_end(p.r, self.window_out);
                if p.rr_next.is_some() { complete } else { complete.max(p.r + self.max_wait) }
            }
        };
    }

    /// Output samples of the beat window: 1.2 × median RR of the recent context, capped at 187.
    fn median_window_out(&self) -> usize {
        let mut rrs: Vec<u64> = self.rr_history.iter().map(|&(_, rr)| rr).collect();
        let median = if rrs.is_empty() {
            self.config.fs
        } else {
            rrs.sort_unstable();
            let m = rrs.len() / 2;
            if rrs.len() % 2 == 1 { rrs[m] as f64 } else { (rrs[m - 1] + rrs[m]) as f64 / 2.0 }
        };
        let out = (WINDOW_RR * median / self.resampler.step()).round() as usize;
        out.clamp(1, self.max_window_out)
    }

    fn emit_ready(&mut self, out: &mut Vec<Beat>, flush: bool) {
        while let Some(&p) = self.pending.front() {
            if !flush && self.next < self.ready_at {
                break;
            }
            self.pending.pop_front();
            out.push(self.cut(p, self.window_out));
            self.update_ready_at();
        }
    }

    fn cut(&mut self, p: PendingBeat, n_out: usize) -> Beat {
        let fs = self.config.fs;
        let mask = self.ring.len() as u64 - 1;
        let margin = self.resampler.margin() as u64;
        let oldest = self.written.saturating_sub(mask);
        let first = p.r.saturating_sub(margin).max(oldest);
        let last = self.span_end(p.r, n_out).min(self.next);
        self.scratch.clear();
        self.scratch
            .extend((first..last).map(|i| self.ring[(i & mask) as usize]));
        // With fewer samples than the window needs (end of stream), keep what is there.
        let available = ((last.saturating_sub(p.r)) as f64 / self.resampler.step()).floor() as usize + 1;
        let n_out = n_out.min(available.max(1));
        let mut values = [0.0f32; BEAT_LEN];
        self.resampler
            .resample(&self.scratch, (p.r - first) as f64, &mut values[..n_out]);
        let mut quality = self.quality.quality_between(
            p.r.saturating_sub(self.r_search * 2),
            p.r + (n_out as f64 * self.resampler.step()) as u64,
            self.next,
        );
        let (lo, hi) = values[..n_out]
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let range = hi - lo;
        if range > 1e-6 {
            for v in &mut values[..n_out] {
                *v = (*v - lo) / range;
            }
        } else {
            values[..n_out].fill(0.0);
            quality = quality.max(Quality::Flat);
        }
        let ms = |s: u64| s as f64 * 1000.0 / fs;
        Beat {
            sample: p.r,
            time_s: self.config.start_time_s + p.r as f64 / fs,
            rr_prev_ms: p.rr_prev.map(ms),
            rr_next_ms: p.rr_next.map(ms),
            quality,
            searchback: p.searchback,
            emitted_at: self.next,
            values,
        }
    }
}

impl BeatExtractor {
    /// Runs a whole signal through a new extractor in chunks of `chunk` samples
    /// (as a stream would deliver it) and returns every beat, flushed at the end.
    pub fn extract_all(config: ExtractorConfig, signal: &[f32], chunk: usize) -> Result<Vec<Beat>, DspError> {
        let mut extractor = BeatExtractor::new(config)?;
        let mut beats = Vec::with_capacity(signal.len() / 200);
        for part in signal.chunks(chunk.max(1)) {
            extractor.push(part, &mut beats);
        }
        extractor.finish(&mut beats);
        Ok(beats)
    }
}
