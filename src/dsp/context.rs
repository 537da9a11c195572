//! The patient context: what each beat looks like *relative to the same
//! patient's own beats*, learned online without labels.
//!
//! Across patients, a beat's absolute shape and rate vary more than the
//! difference between classes: one patient's normal beat is wider than
//! another's ventricular one, and a sinus rhythm at 110 bpm has shorter RR
//! intervals than another patient's premature beats. What generalises (de
//! Chazal 2004, Lin & Yang 2014, Mondejar 2019, Teijeiro 2018; see
//! `docs/accuracy.md`) is timing and morphology against the patient's own
//! rhythm and dominant beat. Each stream's [`super::BeatExtractor`] therefore
//! keeps a [`PatientContext`]:
//!
//! - two running means of the RR interval: one over the last few minutes
//!   (exponential, ~256 beats) and one since the stream started;
//! - up to [`TEMPLATES`] beat-shape clusters (a 0.66 s window around each R
//!   peak, mV), updated online by correlation; the cluster with the most
//!   recent members is the patient's dominant beat.
//!
//! Each beat gets [`CONTEXT_FEATURES`] numbers computed from the context as it
//! stood *before* the beat (so no beat sees itself or anything later), then
//! the context learns from the beat if the quality gate passed it. Beats are
//! emitted in the same order whatever the chunking, so the features are
//! chunk-invariant like everything else in `dsp/`.
//!
//! | # | feature | why |
//! |---|---|---|
//! | 0 | RR before / recent mean RR | premature beats (S, V) come early against the patient's own rhythm |
//! | 1 | RR after / recent mean RR | the compensatory pause after a premature beat |
//! | 2 | local (10 s median) RR / recent mean RR | a run of fast beats lowers the local RR as well |
//! | 3 | RR after / RR before | prematurity independent of any mean |
//! | 4 | RR before / mean RR since the start | the same against the long-term rhythm |
//! | 5 | correlation with the dominant beat, QRS part (R −96…+152 ms), at the best lag within ±24 ms | V beats have another QRS shape; the lag absorbs R-peak jitter (RSR′ complexes, notched R waves) |
//! | 6 | correlation with the dominant beat, whole window (R −256…+400 ms), at that lag | P and T waves differ for S and V beats |
//! | 7 | QRS amplitude / dominant QRS amplitude | ectopic beats are often larger or smaller |
//! | 8 | QRS width, in units of 100 ms | ventricular beats are wide (> 120 ms) |
//! | 9 | QRS width / dominant QRS width | width against the patient's own |
//! | 10 | RMS difference from the dominant beat before the QRS (P wave), / dominant QRS amplitude | an ectopic atrial beat has another P wave |
//! | 11 | RMS difference from the dominant beat, whole window, / dominant QRS amplitude | overall unlikeness |
//! | 12 | share of recent beats in the cluster this beat matches (0 when none) | a common shape is usually the patient's normal |
//! | 13 | warm-up: beats learned / 256, at most 1 | tells the classifier how far to trust 0–12 and 14–17 |
//! | 14 | best QRS correlation (at the best lag) with any common cluster (≥ 1/8 of the recent beats) | patients with two normal conductions (intermittent bundle branch block or pre-excitation) have two common shapes, both normal |
//! | 15 | RR before / mean of the last 8 RR intervals | prematurity against the rhythm of the last few seconds (de Chazal's local average), which follows rate changes faster than feature 0 |
//! | 16 | RR irregularity: median of the last 16 successive RR differences / their mean RR | atrial fibrillation makes every interval "premature"; high irregularity tells the classifier that an early beat is not an S beat |
//! | 17 | RR before / the last interval learned (the previous readable beat's, pauses left out) | a sudden shortening, independent of any mean |
//! | 18 | RR before / the rhythm before the current run (the mean of the 8 intervals before it); outside a run, the same as 15 | a run of early beats (atrial tachycardia, a string of APCs) starts abruptly, below [`RUN_ONSET`] × the last 8 intervals, and goes on steadily (each interval within [`RUN_STEADY`] of the previous one): from its second beat on, 15 compares the run with itself and no longer sees it early, 18 still does. A sinus rate rising gradually never starts a run |
//! | 19 | RMS difference of the segment before the QRS (P wave, each segment's mean removed) from its running mean over the beats that were not early, / dominant QRS amplitude | an atrial run's beats have an ectopic P wave; a run that keeps the P wave of the beats before it is sinus or conducted sinus rhythm (an AV block returning from 2:1 to 1:1 conduction) |
//! | 20 | the cluster this beat matches: its members' mean of feature 0 (RR before / recent mean RR); 1 when the beat matches none or the cluster has fewer than [`CLUSTER_EVIDENCE`] members | a shape the patient makes early, beat after beat, is ectopic even in a member that happens to come late (an interpolated or late PVC); a second normal conduction (intermittent bundle branch block) comes on time |
//! | 21 | QRS correlation (at the best lag) of that cluster's shape with the dominant beat's; 1 when the beat matches none | the cluster's shape against the patient's normal one, averaged over its members rather than read from one noisy beat |
//!
//! Before the first template or interval is known, features take neutral
//! values (ratios 1, correlation 1, differences 0), which is what a normal
//! beat shows.

/// Numbers per beat.
pub const CONTEXT_FEATURES: usize = 22;
/// The features the shipped context networks read (the first this many);
/// features 18 to 21 came later and are read by the decision rule only.
pub const NETWORK_CONTEXT_FEATURES: usize = 18;
/// A run of early beats starts with an interval below this share of the mean of the last 8.
pub const RUN_ONSET: f32 = 0.85;
/// ... and goes on while each interval is within this share of the previous one.
pub const RUN_STEADY: f32 = 0.15;
/// Morphology window samples before the R peak (at 125 Hz: 256 ms).
pub const MORPH_PRE: usize = 32;
/// Morphology window samples from the R peak on (at 125 Hz: 400 ms).
pub const MORPH_POST: usize = 50;
/// Morphology window length, samples at 125 Hz.
pub const MORPH_LEN: usize = MORPH_PRE + MORPH_POST;
/// Beat-shape clusters kept per stream.
pub const TEMPLATES: usize = 4;

/// The QRS part of the window: R − 96 ms to R + 152 ms.
const QRS: std::ops::Range<usize> = (MORPH_PRE - 12)..(MORPH_PRE + 19);
/// The part before the QRS (P wave): R − 256 ms to R − 96 ms.
const PRE_QRS: std::ops::Range<usize> = 0..(MORPH_PRE - 12);
/// Samples at the window's start whose mean is the baseline for the width.
const BASELINE: std::ops::Range<usize> = (MORPH_PRE - 14)..(MORPH_PRE - 10);
/// Samples of the P-wave segment.
const P_WAVE_LEN: usize = MORPH_PRE - 12;
/// The P-wave template moves by 1/this of the difference per beat.
const P_WAVE_MEMORY: f32 = 16.0;
/// Sampling rate of the window, Hz.
const RATE_HZ: f32 = 125.0;
/// Beats over which the recent mean RR and the cluster weights decay.
const RECENT_BEATS: f32 = 256.0;
/// Correlation over the QRS above which a beat joins a cluster.
const JOIN_CORRELATION: f32 = 0.9;
/// QRS amplitude ratio range within which a beat joins a cluster.
const JOIN_AMPLITUDE: (f32, f32) = (0.7, 1.4);
/// A cluster's centroid moves by at most 1/this of the difference per beat.
const CENTROID_MEMORY: f32 = 32.0;
/// Upper bound of the ratio features, so that a long pause stays in range.
const MAX_RATIO: f32 = 5.0;
/// RR intervals kept for the short-term features (15, 16).
const RR_HISTORY: usize = 16;
/// A cluster holding at least this share of the recent weight is a common shape.
const COMMON_SHARE: f32 = 1.0 / 8.0;
/// Members a cluster needs before its mean prematurity (feature 20) is read.
pub const CLUSTER_EVIDENCE: u32 = 8;

/// A beat-shape cluster: its running mean shape and its decayed member count.
#[derive(Debug, Clone)]
struct Cluster {
    centroid: [f32; MORPH_LEN],
    weight: f32,
    members: u32,
    /// Running mean of the members' RR before / recent mean RR (feature 0),
    /// over those with an interval, at the centroid's rate.
    prematurity: f32,
}

impl Cluster {
    /// Feature 20 for a beat matching this cluster.
    fn cluster_prematurity(&self) -> f32 {
        if self.members >= CLUSTER_EVIDENCE {
            self.prematurity
        } else {
            1.0
        }
    }
}

/// One stream's running rhythm, dominant beat shapes and usual P wave (about 1.6 KiB).
#[derive(Debug, Clone, Default)]
pub struct PatientContext {
    /// Exponential mean RR over ~[`RECENT_BEATS`] beats, ms.
    rr_recent: Option<f32>,
    /// Mean RR since the stream started, ms, and the intervals counted.
    rr_total: f64,
    rr_count: u64,
    clusters: Vec<Cluster>,
    /// Beats learned from.
    learned: u64,
    /// The last [`RR_HISTORY`] learned intervals, ms, oldest first once full.
    rr_history: [f32; RR_HISTORY],
    /// Intervals written to `rr_history` (its write position is this modulo its length).
    rr_written: usize,
    /// The last learned interval, ms.
    rr_last: Option<f32>,
    /// While a run of early beats goes on, the mean RR (ms) of the 8 intervals before it.
    run_base: Option<f32>,
    /// Running mean of the segment before the QRS (mean removed) of the
    /// beats that were not early: the patient's usual P wave.
    p_wave: Option<[f32; P_WAVE_LEN]>,
}

/// A beat as the context sees it.
#[derive(Debug, Clone, Copy)]
pub struct BeatTiming {
    /// Interval from the previous R peak, ms.
    pub rr_prev_ms: Option<f64>,
    /// Interval to the next R peak, ms.
    pub rr_next_ms: Option<f64>,
    /// Median RR of the last 10 s, ms.
    pub rr_local_ms: Option<f64>,
}

impl PatientContext {
    /// An empty context (a new stream).
    pub fn new() -> Self {
        PatientContext {
            clusters: Vec::with_capacity(TEMPLATES),
            ..Default::default()
        }
    }

    /// Heap and inline bytes held.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.clusters.capacity() * std::mem::size_of::<Cluster>()
    }

    /// The beat's features against the context as it stands, then (when
    /// `learn`, i.e. the quality gate passed the beat) the context learns the
    /// beat's interval and shape. `morph` is the beat signal (mV) around the
    /// R peak, [`MORPH_PRE`] samples before it, at 125 Hz.
    pub fn observe(
        &mut self,
        timing: BeatTiming,
        morph: &[f32; MORPH_LEN],
        learn: bool,
    ) -> [f32; CONTEXT_FEATURES] {
        // The extractor only passes finite samples; anything else is read as a flat line.
        let finite = morph.iter().all(|v| v.is_finite() && v.abs() < 1e6);
        let morph = if finite { morph } else { &[0.0; MORPH_LEN] };
        let scores = self.cluster_scores(morph);
        let mut features = self.features(timing, morph, &scores);
        for v in &mut features {
            if !v.is_finite() {
                *v = 0.0;
            }
        }
        if learn && finite {
            let has_interval = timing.rr_prev_ms.is_some_and(|v| v.is_finite() && v > 0.0);
            let prematurity = (has_interval && self.rr_recent.is_some()).then_some(features[0]);
            self.learn(timing, morph, &scores, prematurity);
        }
        features
    }

    /// The beat's QRS correlation with each cluster at its best lag, and that lag.
    fn cluster_scores(&self, morph: &[f32; MORPH_LEN]) -> [(f32, isize); TEMPLATES] {
        let lagged = LaggedQrs::of(morph);
        let mut scores = [(0.0, 0); TEMPLATES];
        for (s, c) in scores.iter_mut().zip(&self.clusters) {
            *s = lagged.best(&c.centroid);
        }
        scores
    }

    fn features(
        &self,
        t: BeatTiming,
        morph: &[f32; MORPH_LEN],
        scores: &[(f32, isize); TEMPLATES],
    ) -> [f32; CONTEXT_FEATURES] {
        let valid = |v: Option<f64>| v.map(|v| v as f32).filter(|v| v.is_finite() && *v > 0.0);
        let ratio = |a: Option<f32>, b: Option<f32>| match (a, b) {
            (Some(a), Some(b)) => (a / b).clamp(0.0, MAX_RATIO),
            _ => 1.0,
        };
        let (prev, next, local) = (
            valid(t.rr_prev_ms),
            valid(t.rr_next_ms),
            valid(t.rr_local_ms),
        );
        let total = (self.rr_count > 0).then(|| (self.rr_total / self.rr_count as f64) as f32);
        let recent = self.rr_recent;
        let mut f = [0.0f32; CONTEXT_FEATURES];
        f[0] = ratio(prev, recent);
        f[1] = ratio(next, recent);
        f[2] = ratio(local, recent);
        f[3] = ratio(next, prev);
        f[4] = ratio(prev, total);
        let width = qrs_width_s(morph);
        f[8] = 10.0 * width;
        match self.dominant() {
            Some((di, d)) => {
                let c = &d.centroid;
                let amp = qrs_amplitude(c).max(1e-3);
                let (r, lag) = scores[di];
                f[5] = r;
                f[6] = correlation(&shifted(morph, lag), c);
                f[7] = (qrs_amplitude(morph) / amp).clamp(0.0, MAX_RATIO);
                f[9] = (width / qrs_width_s(c).max(1.0 / RATE_HZ)).clamp(0.0, MAX_RATIO);
                f[10] = (rms_difference(&morph[PRE_QRS], &c[PRE_QRS]) / amp).clamp(0.0, MAX_RATIO);
                f[19] = self.p_wave.map_or(0.0, |p| {
                    (rms_difference(&p_wave_of(morph), &p) / amp).clamp(0.0, MAX_RATIO)
                });
                f[11] = (rms_difference(morph, c) / amp).clamp(0.0, MAX_RATIO);
                let total_weight: f32 = self.clusters.iter().map(|c| c.weight).sum();
                let matched = self.matching(morph, scores).map(|(i, _)| i);
                f[12] = matched.map_or(0.0, |i| self.clusters[i].weight / total_weight.max(1e-6));
                f[14] = self
                    .clusters
                    .iter()
                    .zip(scores)
                    .filter(|(k, _)| k.weight >= COMMON_SHARE * total_weight)
                    .map(|(_, s)| s.0)
                    .fold(f[5], f32::max);
                (f[20], f[21]) = match matched {
                    Some(i) if i == di => (self.clusters[i].cluster_prematurity(), 1.0),
                    Some(i) => {
                        let k = &self.clusters[i];
                        (
                            k.cluster_prematurity(),
                            LaggedQrs::of(&k.centroid).best(c).0,
                        )
                    }
                    None => (1.0, 1.0),
                };
            }
            None => {
                f[5] = 1.0;
                f[6] = 1.0;
                f[7] = 1.0;
                f[9] = 1.0;
                f[12] = 1.0;
                f[14] = 1.0;
                f[20] = 1.0;
                f[21] = 1.0;
            }
        }
        f[13] = (self.learned as f32 / RECENT_BEATS).min(1.0);
        let (buffer, n) = self.rr_recent_history();
        let history = &buffer[..n];
        let mean8 = mean_of_last_8(history);
        f[15] = ratio(prev, mean8);
        f[16] = rr_irregularity(history);
        f[17] = ratio(prev, self.rr_last);
        f[18] = ratio(
            prev,
            prev.and_then(|rr| self.run_base_for(rr, mean8)).or(mean8),
        );
        f
    }

    /// The rhythm (mean RR, ms) a beat with interval `rr` is early against
    /// when it starts or continues a run of early beats; `None` outside a run.
    /// `mean8`: the mean of the last 8 learned intervals.
    fn run_base_for(&self, rr: f32, mean8: Option<f32>) -> Option<f32> {
        let continues = |base: f32| {
            self.rr_last
                .is_some_and(|last| (rr - last).abs() <= RUN_STEADY * last)
                && rr < RUN_ONSET * base
        };
        match self.run_base {
            Some(base) if continues(base) => Some(base),
            _ => mean8.filter(|&m| rr < RUN_ONSET * m),
        }
    }

    /// The learned intervals still in the history, oldest first, and how
    /// many there are (on the stack: this runs for every beat).
    fn rr_recent_history(&self) -> ([f32; RR_HISTORY], usize) {
        let n = self.rr_written.min(RR_HISTORY);
        let start = self.rr_written - n;
        let mut out = [0.0f32; RR_HISTORY];
        for (o, k) in out.iter_mut().zip(start..self.rr_written) {
            *o = self.rr_history[k % RR_HISTORY];
        }
        (out, n)
    }

    /// Learns the beat; `prematurity` is its feature 0 when it has an
    /// interval and there is a recent mean to compare it with.
    fn learn(
        &mut self,
        t: BeatTiming,
        morph: &[f32; MORPH_LEN],
        scores: &[(f32, isize); TEMPLATES],
        prematurity: Option<f32>,
    ) {
        self.learned += 1;
        if let Some(rr) = t.rr_prev_ms.filter(|v| v.is_finite() && *v > 0.0) {
            let rr = rr as f32;
            // Pauses and missed beats (beyond 2.5 × the mean) would drag the means.
            let plausible = self.rr_recent.is_none_or(|m| rr < 2.5 * m);
            if plausible {
                let (buffer, n) = self.rr_recent_history();
                self.run_base = self.run_base_for(rr, mean_of_last_8(&buffer[..n]));
                self.rr_total += rr as f64;
                self.rr_count += 1;
                let alpha = 1.0 / (self.rr_count as f32).min(RECENT_BEATS);
                self.rr_recent = Some(match self.rr_recent {
                    None => rr,
                    Some(m) => m + alpha * (rr - m),
                });
                self.rr_history[self.rr_written % RR_HISTORY] = rr;
                self.rr_written += 1;
                self.rr_last = Some(rr);
            } else {
                // A pause ends any run.
                self.run_base = None;
            }
            if self.run_base.is_none() {
                let p = p_wave_of(morph);
                self.p_wave = Some(match self.p_wave {
                    None => p,
                    Some(mut m) => {
                        for (m, x) in m.iter_mut().zip(p) {
                            *m += (x - *m) / P_WAVE_MEMORY;
                        }
                        m
                    }
                });
            }
        }
        let decay = 1.0 - 1.0 / RECENT_BEATS;
        for c in &mut self.clusters {
            c.weight *= decay;
        }
        match self.matching(morph, scores) {
            Some((i, lag)) => {
                let c = &mut self.clusters[i];
                c.members = c.members.saturating_add(1);
                c.weight += 1.0;
                let rate = 1.0 / (c.members as f32).min(CENTROID_MEMORY);
                // Learned at the lag it matched at, so jitter does not blur the centroid.
                let aligned = shifted(morph, lag);
                for (m, &x) in c.centroid.iter_mut().zip(&aligned) {
                    *m += rate * (x - *m);
                }
                if let Some(p) = prematurity {
                    c.prematurity += rate * (p - c.prematurity);
                }
            }
            None => {
                let fresh = Cluster {
                    centroid: *morph,
                    weight: 1.0,
                    members: 1,
                    prematurity: prematurity.unwrap_or(1.0),
                };
                if self.clusters.len() < TEMPLATES {
                    self.clusters.push(fresh);
                } else if let Some(weakest) = self
                    .clusters
                    .iter_mut()
                    .min_by(|a, b| a.weight.total_cmp(&b.weight))
                {
                    *weakest = fresh;
                }
            }
        }
    }

    /// The cluster with the most recent members, and its index.
    fn dominant(&self) -> Option<(usize, &Cluster)> {
        self.clusters
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.weight.total_cmp(&b.1.weight))
    }

    /// The best-correlated cluster the beat is close enough to join, and the
    /// lag it matched at; `scores` from [`Self::cluster_scores`].
    fn matching(
        &self,
        morph: &[f32; MORPH_LEN],
        scores: &[(f32, isize); TEMPLATES],
    ) -> Option<(usize, isize)> {
        let amp = qrs_amplitude(morph);
        self.clusters
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                let r = amp / qrs_amplitude(&c.centroid).max(1e-6);
                (JOIN_AMPLITUDE.0..=JOIN_AMPLITUDE.1).contains(&r)
            })
            .map(|(i, _)| (i, scores[i]))
            .filter(|&(_, (r, _))| r >= JOIN_CORRELATION)
            .max_by(|a, b| a.1.0.total_cmp(&b.1.0))
            .map(|(i, (_, lag))| (i, lag))
    }
}

/// Lags tried, smallest shift first (so ties go to it): up to ±3 samples
/// (±24 ms at 125 Hz). The R-peak fiducial jitters between beats of one
/// shape (notched or RSR′ complexes), and a fixed alignment would read that
/// jitter as another shape.
const LAGS: [isize; 7] = [0, -1, 1, -2, 2, -3, 3];
const QRS_LEN: usize = QRS.end - QRS.start;

/// A beat's QRS window at each lag within ±3 samples, centred, with its sum
/// of squares: computed once per beat, so that comparing it with each cluster
/// costs one dot product per lag.
struct LaggedQrs {
    centred: [[f32; QRS_LEN]; LAGS.len()],
    energy: [f32; LAGS.len()],
}

impl LaggedQrs {
    fn of(morph: &[f32; MORPH_LEN]) -> Self {
        let mut out = LaggedQrs {
            centred: [[0.0; QRS_LEN]; LAGS.len()],
            energy: [0.0; LAGS.len()],
        };
        for (k, &lag) in LAGS.iter().enumerate() {
            let start = (QRS.start as isize + lag) as usize;
            let w = &morph[start..start + QRS_LEN];
            let mean = w.iter().sum::<f32>() / QRS_LEN as f32;
            let mut energy = 0.0f32;
            for (c, &x) in out.centred[k].iter_mut().zip(w) {
                *c = x - mean;
                energy += *c * *c;
            }
            out.energy[k] = energy;
        }
        out
    }

    /// The Pearson correlation with `centroid`'s QRS at the best lag (the
    /// beat's window moved, the centroid's fixed), and that lag; 0 when
    /// either side is constant.
    fn best(&self, centroid: &[f32; MORPH_LEN]) -> (f32, isize) {
        let c = &centroid[QRS];
        let mean = c.iter().sum::<f32>() / QRS_LEN as f32;
        let mut centred = [0.0f32; QRS_LEN];
        let mut energy = 0.0f32;
        for (d, &x) in centred.iter_mut().zip(c) {
            *d = x - mean;
            energy += *d * *d;
        }
        let mut best = (f32::NEG_INFINITY, 0);
        for (k, &lag) in LAGS.iter().enumerate() {
            let dot: f32 = self.centred[k]
                .iter()
                .zip(&centred)
                .map(|(a, b)| a * b)
                .sum();
            let d = (self.energy[k] * energy).sqrt();
            let r = if d > 1e-12 {
                (dot / d).clamp(-1.0, 1.0)
            } else {
                0.0
            };
            if r > best.0 {
                best = (r, lag);
            }
        }
        best
    }
}

/// The mean of the last 8 of `history` (learned intervals, oldest first), ms.
fn mean_of_last_8(history: &[f32]) -> Option<f32> {
    let last = &history[history.len().saturating_sub(8)..];
    (!last.is_empty()).then(|| last.iter().sum::<f32>() / last.len() as f32)
}

/// The segment before the QRS with its mean removed (baseline wander cancels).
fn p_wave_of(morph: &[f32; MORPH_LEN]) -> [f32; P_WAVE_LEN] {
    let mut p = [0.0f32; P_WAVE_LEN];
    p.copy_from_slice(&morph[PRE_QRS]);
    let mean = p.iter().sum::<f32>() / P_WAVE_LEN as f32;
    for v in &mut p {
        *v -= mean;
    }
    p
}

/// `morph` moved by `lag` samples (sample `i` of the result is `morph[i + lag]`), edges repeated.
fn shifted(morph: &[f32; MORPH_LEN], lag: isize) -> [f32; MORPH_LEN] {
    let mut out = [0.0f32; MORPH_LEN];
    for (i, v) in out.iter_mut().enumerate() {
        let j = (i as isize + lag).clamp(0, MORPH_LEN as isize - 1) as usize;
        *v = morph[j];
    }
    out
}

/// Median absolute successive difference of `rr` over its mean; 0 with fewer than 3 intervals.
fn rr_irregularity(rr: &[f32]) -> f32 {
    if rr.len() < 3 {
        return 0.0;
    }
    let mut buffer = [0.0f32; RR_HISTORY];
    let d = &mut buffer[..rr.len().min(RR_HISTORY + 1) - 1];
    for (d, w) in d.iter_mut().zip(rr.windows(2)) {
        *d = (w[1] - w[0]).abs();
    }
    d.sort_by(f32::total_cmp);
    let median = d[d.len() / 2];
    let mean = rr.iter().sum::<f32>() / rr.len() as f32;
    (median / mean.max(1.0)).clamp(0.0, MAX_RATIO)
}

/// Pearson correlation; 0 when either side is constant.
fn correlation(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len()) as f32;
    if n == 0.0 {
        return 0.0;
    }
    let (ma, mb) = (a.iter().sum::<f32>() / n, b.iter().sum::<f32>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0f32, 0.0f32, 0.0f32);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    let d = (saa * sbb).sqrt();
    if d > 1e-12 {
        (sab / d).clamp(-1.0, 1.0)
    } else {
        0.0
    }
}

/// Peak-to-peak amplitude of the QRS part, mV.
fn qrs_amplitude(m: &[f32; MORPH_LEN]) -> f32 {
    let (lo, hi) = m[QRS]
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    (hi - lo).max(0.0)
}

/// QRS width, seconds: the span of the QRS part where the signal departs from
/// the baseline before it by more than a quarter of its largest departure.
fn qrs_width_s(m: &[f32; MORPH_LEN]) -> f32 {
    let base = m[BASELINE].iter().sum::<f32>() / BASELINE.len() as f32;
    let peak = m[QRS]
        .iter()
        .map(|v| (v - base).abs())
        .fold(0.0f32, f32::max);
    if peak <= 1e-6 {
        return 0.0;
    }
    let above: Vec<usize> = QRS.filter(|&i| (m[i] - base).abs() > 0.25 * peak).collect();
    match (above.first(), above.last()) {
        (Some(&a), Some(&b)) => (b - a + 1) as f32 / RATE_HZ,
        _ => 0.0,
    }
}

/// Root-mean-square difference.
fn rms_difference(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len()).max(1) as f32;
    (a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>() / n).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic beat: a QRS of `width` samples and `amp` mV at the R peak, a P wave of `p` mV.
    fn shape(width: usize, amp: f32, p: f32) -> [f32; MORPH_LEN] {
        let mut m = [0.0f32; MORPH_LEN];
        for (i, v) in m.iter_mut().enumerate() {
            let t = i as f32 - MORPH_PRE as f32;
            let w = width as f32 / 2.0;
            *v = amp * (-(t * t) / (2.0 * (w / 2.0).powi(2))).exp();
            let tp = i as f32 - 8.0;
            *v += p * (-(tp * tp) / 8.0).exp();
        }
        m
    }

    fn timing(prev: f64, next: f64) -> BeatTiming {
        BeatTiming {
            rr_prev_ms: Some(prev),
            rr_next_ms: Some(next),
            rr_local_ms: Some(800.0),
        }
    }

    #[test]
    fn a_new_stream_sees_neutral_features() {
        let mut c = PatientContext::new();
        let f = c.observe(timing(800.0, 800.0), &shape(10, 1.0, 0.1), true);
        assert_eq!(&f[..8], &[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
        assert_eq!(f[13], 0.0);
    }

    #[test]
    fn a_premature_wide_beat_stands_out_against_the_patients_own_beats() {
        let mut c = PatientContext::new();
        let normal = shape(10, 1.0, 0.1);
        for _ in 0..300 {
            c.observe(timing(800.0, 800.0), &normal, true);
        }
        let n = c.observe(timing(800.0, 800.0), &normal, false);
        assert!((n[0] - 1.0).abs() < 1e-3 && n[5] > 0.99 && n[12] > 0.9);
        assert_eq!(n[13], 1.0);
        let pvc = c.observe(timing(480.0, 1120.0), &shape(20, -1.8, 0.0), false);
        assert!((pvc[0] - 0.6).abs() < 1e-3, "{pvc:?}");
        assert!((pvc[1] - 1.4).abs() < 1e-3);
        assert!(pvc[5] < 0.0, "inverted QRS correlates negatively: {pvc:?}");
        assert!(pvc[7] > 1.5);
        assert!(pvc[8] > n[8] && pvc[9] > 1.5, "{pvc:?} vs {n:?}");
        assert_eq!(pvc[12], 0.0);
        // An atrial premature beat: same QRS, early, no P wave. The missing
        // 0.1 mV P wave is an RMS difference of about 0.04 of the QRS
        // amplitude over the 160 ms before the QRS.
        let pac = c.observe(timing(500.0, 900.0), &shape(10, 1.0, 0.0), false);
        assert!(
            pac[5] > 0.99 && pac[10] > 0.03 && pac[10] > n[10] + 0.03,
            "{pac:?}"
        );
    }

    #[test]
    fn short_term_rhythm_features_read_the_last_intervals() {
        let mut c = PatientContext::new();
        let normal = shape(10, 1.0, 0.1);
        for _ in 0..40 {
            c.observe(timing(800.0, 800.0), &normal, true);
        }
        let f = c.observe(timing(600.0, 1000.0), &normal, false);
        assert!((f[15] - 0.75).abs() < 1e-4, "{f:?}");
        assert!(f[16] < 1e-6, "a regular rhythm: {f:?}");
        assert!((f[17] - 0.75).abs() < 1e-4, "{f:?}");
        // An irregular rhythm (alternating 600 / 1000 ms) reads as irregular.
        for i in 0..16 {
            let rr = if i % 2 == 0 { 600.0 } else { 1000.0 };
            c.observe(timing(rr, 800.0), &normal, true);
        }
        let f = c.observe(timing(800.0, 800.0), &normal, false);
        assert!(
            (f[16] - 0.5).abs() < 1e-3,
            "400 ms steps over an 800 ms mean: {f:?}"
        );
    }

    #[test]
    fn a_run_of_early_beats_stays_early_against_the_rhythm_before_it() {
        let mut c = PatientContext::new();
        let normal = shape(10, 1.0, 0.1);
        for _ in 0..40 {
            c.observe(timing(800.0, 800.0), &normal, true);
        }
        // Twelve beats at 500 ms: an abrupt, steady run.
        let run: Vec<_> = (0..12)
            .map(|_| c.observe(timing(500.0, 500.0), &normal, true))
            .collect();
        for (i, f) in run.iter().enumerate() {
            assert!((f[18] - 0.625).abs() < 1e-4, "beat {i} of the run: {f:?}");
        }
        assert!((run[0][15] - 0.625).abs() < 1e-4, "{:?}", run[0]);
        assert!(
            (run[11][15] - 1.0).abs() < 1e-4,
            "the last 8 are the run's own: {:?}",
            run[11]
        );
        // Back to 800 ms: the run is over, 18 reads as 15 again.
        let after = c.observe(timing(800.0, 800.0), &normal, true);
        assert!((after[18] - after[15]).abs() < 1e-6, "{after:?}");
        // A pause ends a run too.
        for _ in 0..3 {
            c.observe(timing(500.0, 500.0), &normal, true);
        }
        c.observe(timing(3000.0, 500.0), &normal, true);
        let f = c.observe(timing(500.0, 500.0), &normal, false);
        assert!((f[18] - f[15]).abs() < 1e-6, "{f:?}");
    }

    #[test]
    fn the_p_wave_is_compared_with_the_beats_before_a_run() {
        let mut c = PatientContext::new();
        let sinus = shape(10, 1.0, 0.1);
        for _ in 0..40 {
            c.observe(timing(800.0, 800.0), &sinus, true);
        }
        let same = c.observe(timing(800.0, 800.0), &sinus, false);
        assert!(same[19] < 1e-3, "the usual P wave: {same:?}");
        // An atrial run with an inverted P wave: far from the usual one, and
        // its beats do not teach the template (the 12th still differs as much).
        let ectopic = shape(10, 1.0, -0.1);
        let run: Vec<_> = (0..12)
            .map(|_| c.observe(timing(500.0, 500.0), &ectopic, true))
            .collect();
        assert!(run[1][19] > 0.03, "{:?}", run[1]);
        assert!((run[11][19] - run[1][19]).abs() < 1e-4, "{:?}", run[11]);
        // A run keeping the sinus P wave (conduction returning to 1:1).
        for _ in 0..20 {
            c.observe(timing(1000.0, 1000.0), &sinus, true);
        }
        let conducted = c.observe(timing(500.0, 500.0), &sinus, true);
        assert!(conducted[19] < 0.01, "{conducted:?}");
    }

    #[test]
    fn a_gradually_rising_rate_is_no_run() {
        let mut c = PatientContext::new();
        let normal = shape(10, 1.0, 0.1);
        for _ in 0..40 {
            c.observe(timing(800.0, 800.0), &normal, true);
        }
        // 800 ms down to 480 ms (75 to 125 /min), 1 % a beat.
        let mut rr = 800.0;
        while rr > 480.0 {
            rr *= 0.99;
            let f = c.observe(timing(rr, rr * 0.99), &normal, true);
            assert!((f[18] - f[15]).abs() < 1e-6, "at {rr} ms: {f:?}");
        }
    }

    #[test]
    fn a_jittered_r_peak_still_matches_its_shape() {
        let mut c = PatientContext::new();
        let normal = shape(10, 1.0, 0.1);
        for _ in 0..100 {
            c.observe(timing(800.0, 800.0), &normal, true);
        }
        // The same beat, its R peak found 2 samples (16 ms) late.
        let late = shifted(&normal, -2);
        let f = c.observe(timing(800.0, 800.0), &late, false);
        assert!(f[5] > 0.99 && f[14] > 0.99, "{f:?}");
        // A different shape is not rescued by the lag.
        let f = c.observe(timing(800.0, 800.0), &shape(22, -1.5, 0.0), false);
        assert!(f[5] < 0.5 && f[14] < 0.9, "{f:?}");
    }

    #[test]
    fn a_second_common_shape_counts_as_common() {
        let mut c = PatientContext::new();
        let (a, b) = (shape(10, 1.0, 0.1), shape(22, -1.0, 0.1));
        for i in 0..600 {
            let m = if i % 3 == 2 { &b } else { &a };
            c.observe(timing(800.0, 800.0), m, true);
        }
        let f = c.observe(timing(800.0, 800.0), &b, false);
        assert!(f[5] < f[14] && f[14] > 0.99, "{f:?}");
    }

    #[test]
    fn a_shape_the_patient_makes_early_marks_its_late_members_too() {
        let mut c = PatientContext::new();
        let (normal, pvc, bbb) = (
            shape(10, 1.0, 0.1),
            shape(22, -1.5, 0.0),
            shape(24, 1.0, 0.1),
        );
        // Trigeminy of early PVCs, and a second conduction that comes on time.
        for i in 0..600 {
            match i % 6 {
                2 => c.observe(timing(500.0, 1100.0), &pvc, true),
                4 => c.observe(timing(800.0, 800.0), &bbb, true),
                _ => c.observe(timing(800.0, 800.0), &normal, true),
            };
        }
        let n = c.observe(timing(800.0, 800.0), &normal, false);
        assert!(n[20] > 0.95 && n[21] == 1.0, "the dominant cluster: {n:?}");
        // A PVC that comes late: its own timing is normal, its cluster's is not.
        let late = c.observe(timing(820.0, 800.0), &pvc, false);
        assert!(late[0] > 0.95, "{late:?}");
        assert!(late[20] < 0.75 && late[21] < 0.0, "{late:?}");
        // The on-time second shape: unlike the dominant one, but not early.
        let b = c.observe(timing(800.0, 800.0), &bbb, false);
        assert!(b[20] > 0.95 && b[21] < 0.99, "{b:?}");
        // A shape never seen: no cluster, no evidence.
        let new = c.observe(timing(800.0, 800.0), &shape(30, 3.0, 0.0), false);
        assert_eq!((new[20], new[21]), (1.0, 1.0), "{new:?}");
    }

    #[test]
    fn the_dominant_shape_wins_over_a_frequent_ectopic_one() {
        let mut c = PatientContext::new();
        let (normal, pvc) = (shape(10, 1.0, 0.1), shape(22, -1.5, 0.0));
        for i in 0..600 {
            let m = if i % 3 == 2 { &pvc } else { &normal };
            c.observe(timing(800.0, 800.0), m, true);
        }
        let f = c.observe(timing(800.0, 800.0), &normal, false);
        assert!(f[5] > 0.99, "{f:?}");
        assert!(c.clusters.len() <= TEMPLATES);
    }

    #[test]
    fn unreadable_beats_teach_nothing_and_state_stays_small() {
        let mut c = PatientContext::new();
        for _ in 0..50 {
            c.observe(timing(800.0, 800.0), &shape(10, 1.0, 0.1), true);
        }
        let before = c.clone();
        c.observe(timing(200.0, 3000.0), &[f32::MAX; MORPH_LEN], false);
        assert_eq!(before.rr_recent, c.rr_recent);
        assert_eq!(before.learned, c.learned);
        assert!(c.memory_bytes() <= 2048, "{}", c.memory_bytes());
    }

    #[test]
    fn hostile_values_stay_finite_and_bounded() {
        let mut c = PatientContext::new();
        let mut bad = [0.0f32; MORPH_LEN];
        bad[3] = f32::NAN;
        for m in [[0.0; MORPH_LEN], bad, shape(10, 1e6, 0.0)] {
            let t = BeatTiming {
                rr_prev_ms: Some(f64::NAN),
                rr_next_ms: Some(-1.0),
                rr_local_ms: None,
            };
            let f = c.observe(t, &m, true);
            assert!(
                f.iter()
                    .all(|v| v.is_finite() && (0.0..=MAX_RATIO).contains(&v.abs())),
                "{f:?}"
            );
        }
    }
}
