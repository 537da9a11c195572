//! The streaming beat extractor: raw samples in, 187-sample beats out.
//!
//! It filters ([`FilterBank`]), watches quality ([`QualityMonitor`]) and
//! detects QRS complexes ([`QrsDetector`]). Each detection is refined to the
//! R peak: the largest absolute value of the beat signal in the 250 ms before
//! the detector's energy peak, interpolated between working-rate samples and
//! reported in the input's time (the filters' delay taken off). A beat is
//! emitted once the next R peak is known and the samples it spans have
//! arrived, in the layout of the Kaggle
//! "ECG Heartbeat Categorization" dataset (Kachuee et al. 2018): the beat
//! signal from the R peak for 1.2 × the median RR interval of the last 10 s,
//! resampled to 125 Hz, min-max normalised to [0, 1], zero-padded to 187.
//!
//! Latency (R peak to emission) is therefore about one RR interval plus the
//! detector's ~0.3 s decision delay; [`Beat::emitted_at`] records it exactly.

use super::context::{
    BeatTiming, CONTEXT_FEATURES, MORPH_LEN, MORPH_POST, MORPH_PRE, PatientContext,
};
use super::quality::{Quality, QualityMonitor};
use super::{DspError, FilterBank, QrsDetector, Resampler};
use std::collections::VecDeque;

/// Values per beat.
pub const BEAT_LEN: usize = 187;
/// Sampling rate of the beat vector, Hz.
pub const BEAT_RATE_HZ: f64 = 125.0;
/// Steps of a beat vector value over [0, 1]: the precision beats are stored
/// at (10 bits) and the finest difference abstention tells apart, so a beat
/// read back from the store is judged as it was when first classified.
pub const BEAT_STEPS: f32 = 1023.0;

/// A beat vector value as the step of [`BEAT_STEPS`] nearest to it.
pub fn beat_step(v: f32) -> i64 {
    (v * BEAT_STEPS).round() as i64
}
/// Beat length in RR intervals.
const WINDOW_RR: f64 = 1.2;
/// RR intervals within this many seconds set the beat length.
const RR_CONTEXT_S: f64 = 10.0;
/// How far before the detector's energy peak the R peak is searched, seconds.
const R_SEARCH_S: f64 = 0.25;
/// A beat whose next R peak has not come after this long is emitted without it, seconds.
const MAX_WAIT_S: f64 = 2.5;
/// Signal time the QRS detector's decision lags the beat signal, s (see [`BeatExtractor::silent_since`]).
const DETECTION_LAG_S: f64 = 0.65;
/// Seconds of beat signal kept: enough for a search-back detection made several
/// seconds after its R peak, and the longest wait for a beat's successor.
const RING_S: f64 = 8.0;
/// Samples with an absolute value above this (mV) are treated as invalid.
const MAX_ABS_MV: f32 = 1000.0;
/// Seconds before the R peak included in a beat's quality verdict.
const QUALITY_LEAD_S: f64 = 0.5;
/// Samples processed per stage in [`BeatExtractor::push`].
const BLOCK: usize = super::filter::MAX_BLOCK;

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
    /// Number of values before the zero padding (1.2 median RR at 125 Hz, at most 187).
    pub len: usize,
    /// The local RR interval: the median of the last 10 s of RR intervals, ms
    /// (`None` before the first interval). Premature beats show against it.
    pub rr_local_ms: Option<f64>,
    /// The beat against the patient's own rhythm and dominant beat, from the
    /// beats before it (see [`super::context`]).
    pub context: [f32; CONTEXT_FEATURES],
}

/// One block of [`BeatExtractor::push`]'s work: input samples from index `base`,
/// working-rate beat samples from index `work_base`.
struct BlockView<'a> {
    base: u64,
    work_base: u64,
    raw: &'a [f32],
    invalid: Option<&'a [bool]>,
    beat: &'a [f32],
}

#[derive(Debug, Clone, Copy)]
struct PendingBeat {
    /// R peak, input-rate sample index.
    r: u64,
    /// R peak, fractional working-rate position.
    r_work: f64,
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
    /// Input samples per working-rate sample.
    decimation: u64,
    /// Input-rate index of the next sample to arrive.
    next: u64,
    /// Working-rate samples written to `ring` (may run ahead of `next` within a block).
    written: u64,
    last_valid: f32,
    /// The beat signal at the working rate, indexed by working-rate sample modulo its length.
    ring: Box<[f32]>,
    pending: VecDeque<PendingBeat>,
    /// (R peak, RR interval) of recent beats, input-rate samples.
    rr_history: VecDeque<(u64, u64)>,
    /// Scratch space for the median RR.
    rr_sorted: Vec<u64>,
    last_r: Option<u64>,
    /// The last R peak's working-rate position (the beat signal's own time).
    last_r_work: Option<f64>,
    scratch: Vec<f32>,
    /// Working-rate samples searched for the R peak before the energy peak.
    r_search: u64,
    /// Input-rate samples a beat waits for its successor.
    max_wait: u64,
    /// Input-rate samples of RR context.
    rr_context: u64,
    /// Beat length in output samples, from the current RR context.
    window_out: usize,
    /// Median RR of the recent context, input samples (`None` until one is known).
    rr_median: Option<f64>,
    /// Value of `next` at which the oldest pending beat can be emitted.
    ready_at: u64,
    /// Delay of the beat signal behind the input, input samples.
    delay: f64,
    /// The patient's running rhythm and dominant beat shapes.
    context: PatientContext,
}

impl BeatExtractor {
    /// A new stream state; fails if the sampling rate or powerline frequency is unsupported.
    pub fn new(config: ExtractorConfig) -> Result<Self, DspError> {
        let fs = config.fs;
        let filters = FilterBank::new(fs, config.powerline_hz)?;
        let decimation = filters.decimation();
        let working = fs / decimation as f64;
        let resampler = Resampler::new(working, BEAT_RATE_HZ);
        let ring_len = ((RING_S * working) as usize + BLOCK).next_power_of_two();
        let scratch_len =
            (BEAT_LEN as f64 * resampler.step()).ceil() as usize + 2 * resampler.margin() + 2;
        Ok(BeatExtractor {
            filters,
            detector: QrsDetector::new(working, 0),
            quality: QualityMonitor::new(fs, decimation),
            resampler,
            decimation,
            next: 0,
            written: 0,
            last_valid: 0.0,
            ring: vec![0.0; ring_len].into_boxed_slice(),
            pending: VecDeque::with_capacity(16),
            rr_history: VecDeque::with_capacity(64),
            rr_sorted: Vec::with_capacity(64),
            last_r: None,
            last_r_work: None,
            scratch: Vec::with_capacity(scratch_len),
            r_search: (R_SEARCH_S * working).round() as u64,
            max_wait: (MAX_WAIT_S * fs).round() as u64,
            rr_context: (RR_CONTEXT_S * fs).round() as u64,
            window_out: (WINDOW_RR * BEAT_RATE_HZ).round() as usize,
            rr_median: None,
            ready_at: u64::MAX,
            delay: filters.beat_delay_s() * fs,
            context: PatientContext::new(),
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

    /// When every beat detected so far has been emitted: the last one's R peak
    /// and the input sample up to which no later beat has been detected, both
    /// input-rate sample indices; `None` while a detected beat is still
    /// pending, or before the first. The live rhythm analysis announces a
    /// pause under way from this, before the beat that ends it (a later
    /// searchback may still find a beat within that silence).
    pub fn silent_since(&self) -> Option<(u64, u64)> {
        if !self.pending.is_empty() {
            return None;
        }
        let last = self.last_r?;
        // Detection lags the beat signal by the energy window (150 ms), the
        // pre-blanking before a peak is confirmed (250 ms) and the R search
        // (250 ms): only samples older than that are settled.
        let lag = self.delay + DETECTION_LAG_S * self.config.fs;
        let settled = (self.next as f64 - lag).max(0.0) as u64;
        Some((last, settled.max(last)))
    }

    /// Memory held by this stream's state, bytes (struct plus heap).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.ring.len() * 4
            + self.scratch.capacity() * 4
            + self.pending.capacity() * std::mem::size_of::<PendingBeat>()
            + self.rr_history.capacity() * 16
            + self.rr_sorted.capacity() * 8
            + self.detector.heap_bytes()
            + self.context.memory_bytes()
            - std::mem::size_of::<PatientContext>()
    }

    /// Feeds a chunk of samples (mV) and appends every beat completed by them to `out`.
    /// Non-finite or absurd samples are replaced by the last valid value and flag the
    /// surrounding beats as lead-off.
    ///
    /// Work is done in stages over blocks of [`BLOCK`] samples (filters, ring,
    /// quality, detector energy, then decisions and emission sample by sample).
    /// Every stage is causal and decisions only use data up to the sample they
    /// are taken at, so the result is the same for any chunking.
    pub fn push(&mut self, samples: &[f32], out: &mut Vec<Beat>) {
        let mask = self.ring.len() - 1;
        let k = self.decimation;
        let mut raw = [0.0f32; BLOCK];
        let mut invalid = [false; BLOCK];
        let mut beat = [0.0f32; BLOCK];
        let mut detect = [0.0f32; BLOCK];
        let mut energy = [0.0f32; BLOCK];
        for part in samples.chunks(BLOCK) {
            let len = part.len();
            let is_bad = |v: f32| !v.is_finite() || v.abs() > MAX_ABS_MV;
            // A fold rather than `any`: no early exit, so it vectorises.
            let any_bad = part.iter().fold(false, |acc, &v| acc | is_bad(v));
            if any_bad {
                for (i, &v) in part.iter().enumerate() {
                    invalid[i] = is_bad(v);
                    if !invalid[i] {
                        self.last_valid = v;
                    }
                    raw[i] = self.last_valid;
                }
            } else {
                raw[..len].copy_from_slice(part);
                self.last_valid = part[len - 1];
            }
            let base = self.next;
            let work_base = self.written;
            let w = self
                .filters
                .process_block(base, &raw[..len], &mut beat, &mut detect);
            for (i, &b) in beat[..w].iter().enumerate() {
                self.ring[(work_base as usize + i) & mask] = b;
            }
            self.written = work_base + w as u64;
            self.detector
                .energy(work_base, &detect[..w], &mut energy[..w]);
            let block = BlockView {
                base,
                work_base,
                raw: &raw[..len],
                invalid: any_bad.then_some(&invalid[..len]),
                beat: &beat[..w],
            };
            // Input index of the first working-rate sample of this block.
            let mut next_work = work_base * k;
            let mut j = 0;
            let end = base + len as u64;
            let mut n = base;
            // Visit only the samples where something happens: a working-rate
            // sample for the detector, or the sample completing a pending beat.
            while n < end {
                n = next_work
                    .min(self.ready_at.saturating_sub(1).max(n))
                    .min(end - 1);
                if n == next_work && j < w {
                    let m = work_base + j as u64;
                    self.detector.step(m, energy[j]);
                    while let Some(d) = self.detector.pop() {
                        self.on_qrs(d.peak, m, d.searchback);
                    }
                    j += 1;
                    next_work += k;
                }
                self.next = n + 1;
                if self.next >= self.ready_at {
                    // The quality monitor sees exactly the samples that have arrived.
                    self.feed_quality(&block, self.next);
                    self.emit_ready(out, false);
                }
                n += 1;
            }
            self.feed_quality(&block, end);
        }
    }

    /// Feeds the quality monitor with the samples of `block` up to input index `upto`.
    fn feed_quality(&mut self, block: &BlockView, upto: u64) {
        let from = self.quality.fed();
        if upto <= from {
            return;
        }
        let k = self.decimation;
        let (a, b) = ((from - block.base) as usize, (upto - block.base) as usize);
        let (wa, wb) = (
            (from.div_ceil(k) - block.work_base) as usize,
            (upto.div_ceil(k) - block.work_base) as usize,
        );
        self.quality.push_block(
            from,
            &block.raw[a..b],
            block.invalid.map(|v| &v[a..b]),
            k,
            &block.beat[wa..wb],
        );
    }

    /// Ends the stream: emits every pending beat with the samples available.
    pub fn finish(&mut self, out: &mut Vec<Beat>) {
        self.emit_ready(out, true);
    }

    /// Oldest working-rate sample guaranteed to be in the ring, whatever the
    /// chunking: the ring holds at least `RING_S` seconds behind the block being
    /// written, which runs at most one block ahead of `next`.
    fn oldest_kept(&self) -> u64 {
        (self.work_available() + BLOCK as u64).saturating_sub(self.ring.len() as u64)
    }

    /// Working-rate samples that had arrived when input sample `next - 1` did.
    fn work_available(&self) -> u64 {
        self.next.div_ceil(self.decimation)
    }

    /// Locates the R peak for an energy peak at working-rate sample `peak`,
    /// decided at working-rate sample `now`: the largest absolute beat-signal
    /// value in the 250 ms before, refined by parabolic interpolation.
    fn on_qrs(&mut self, peak: u64, now: u64, searchback: bool) {
        let mask = self.ring.len() as u64 - 1;
        let k = self.decimation as f64;
        let oldest = self.oldest_kept();
        let after_last = self.last_r_work.map_or(0, |w| w.floor() as u64 + 1);
        let from = peak
            .saturating_sub(self.r_search)
            .max(oldest)
            .max(after_last);
        let at = |i: u64| self.ring[(i & mask) as usize];
        let Some(m) =
            (from..=peak).max_by(|&a, &b| at(a).abs().total_cmp(&at(b).abs()).then(b.cmp(&a)))
        else {
            return;
        };
        let mut offset = 0.0;
        if m > from && m < now {
            let sign = at(m).signum();
            let (y0, y1, y2) = (sign * at(m - 1), sign * at(m), sign * at(m + 1));
            let curvature = y0 - 2.0 * y1 + y2;
            if curvature < 0.0 {
                offset = (0.5 * (y0 - y2) / curvature).clamp(-0.5, 0.5) as f64;
            }
        }
        let r_work = m as f64 + offset;
        // The reported R peak is in the input's time: the filters' delay is taken off.
        let r = (r_work * k - self.delay).round().max(0.0) as u64;
        if self.last_r.is_some_and(|l| r <= l) {
            return;
        }
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
            r_work,
            rr_prev,
            rr_next: None,
            searchback,
        });
        self.last_r = Some(r);
        self.last_r_work = Some(r_work);
        self.window_out = self.median_window_out();
        self.update_ready_at();
    }

    /// Working-rate end (exclusive) of the samples a beat at `r_work` needs.
    fn span_end(&self, r_work: f64, n_out: usize) -> u64 {
        (r_work + (n_out - 1) as f64 * self.resampler.step()).ceil() as u64
            + self.resampler.margin() as u64
            + 1
    }

    fn update_ready_at(&mut self) {
        self.ready_at = match self.pending.front() {
            None => u64::MAX,
            Some(p) => {
                // The beat window, and at least the patient context's morphology window.
                let n_out = self.window_out.max(MORPH_POST);
                let complete = (self.span_end(p.r_work, n_out) - 1) * self.decimation + 1;
                if p.rr_next.is_some() {
                    complete
                } else {
                    complete.max(p.r + self.max_wait)
                }
            }
        };
    }

    /// Output samples of the beat window: 1.2 × median RR of the recent context, capped at 187.
    fn median_window_out(&mut self) -> usize {
        self.rr_sorted.clear();
        self.rr_sorted
            .extend(self.rr_history.iter().map(|&(_, rr)| rr));
        self.rr_sorted.sort_unstable();
        let rrs = &self.rr_sorted;
        let m = rrs.len() / 2;
        self.rr_median = match rrs.len() {
            0 => None,
            n if n % 2 == 1 => Some(rrs[m] as f64),
            _ => Some((rrs[m - 1] + rrs[m]) as f64 / 2.0),
        };
        let median = self.rr_median.unwrap_or(self.config.fs);
        let out = (WINDOW_RR * median * BEAT_RATE_HZ / self.config.fs).round() as usize;
        out.clamp(1, BEAT_LEN)
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
        let oldest = self.oldest_kept();
        let first = (p.r_work.floor() as u64).saturating_sub(margin).max(oldest);
        let last = self.span_end(p.r_work, n_out).min(self.work_available());
        self.scratch.clear();
        self.scratch
            .extend((first..last).map(|i| self.ring[(i & mask) as usize]));
        // With fewer samples than the window needs (end of stream), keep what is there.
        let available =
            ((last as f64 - p.r_work).max(0.0) / self.resampler.step()).floor() as usize + 1;
        let n_out = n_out.min(available);
        let mut values = [0.0f32; BEAT_LEN];
        self.resampler
            .resample(&self.scratch, p.r_work - first as f64, &mut values[..n_out]);
        let mut quality = self.quality.quality_between(
            p.r.saturating_sub((QUALITY_LEAD_S * fs) as u64),
            p.r + (n_out as f64 * fs / BEAT_RATE_HZ) as u64,
        );
        let (lo, hi) = values[..n_out]
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
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
        let timing = BeatTiming {
            rr_prev_ms: p.rr_prev.map(ms),
            rr_next_ms: p.rr_next.map(ms),
            rr_local_ms: self.rr_median.map(|rr| rr * 1000.0 / fs),
        };
        let morph = self.morphology(p.r_work);
        let context = self.context.observe(timing, &morph, quality.is_readable());
        Beat {
            sample: p.r,
            time_s: self.config.start_time_s + p.r as f64 / fs,
            rr_prev_ms: p.rr_prev.map(ms),
            rr_next_ms: p.rr_next.map(ms),
            quality,
            searchback: p.searchback,
            emitted_at: self.next,
            values,
            len: n_out,
            rr_local_ms: timing.rr_local_ms,
            context,
        }
    }

    /// The beat signal (mV) around the R peak at `r_work`, [`MORPH_PRE`]
    /// samples before it, at 125 Hz, for the patient context.
    fn morphology(&mut self, r_work: f64) -> [f32; MORPH_LEN] {
        let mask = self.ring.len() as u64 - 1;
        let step = self.resampler.step();
        let margin = self.resampler.margin() as f64;
        let start = (r_work - MORPH_PRE as f64 * step).max(0.0);
        let oldest = self.oldest_kept();
        let first = ((start - margin).floor().max(0.0) as u64).max(oldest);
        let last = self
            .span_end(start, MORPH_LEN)
            .min(self.work_available())
            .max(first);
        self.scratch.clear();
        self.scratch
            .extend((first..last).map(|i| self.ring[(i & mask) as usize]));
        let mut morph = [0.0f32; MORPH_LEN];
        self.resampler
            .resample(&self.scratch, (start - first as f64).max(0.0), &mut morph);
        morph
    }
}

impl BeatExtractor {
    /// Runs a whole signal through a new extractor in chunks of `chunk` samples
    /// (as a stream would deliver it) and returns every beat, flushed at the end.
    pub fn extract_all(
        config: ExtractorConfig,
        signal: &[f32],
        chunk: usize,
    ) -> Result<Vec<Beat>, DspError> {
        let mut extractor = BeatExtractor::new(config)?;
        let mut beats = Vec::with_capacity(signal.len() / 200);
        for part in signal.chunks(chunk.max(1)) {
            extractor.push(part, &mut beats);
        }
        extractor.finish(&mut beats);
        Ok(beats)
    }
}
