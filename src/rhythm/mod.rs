//! Rhythm analysis: one causal analyser per stream turns the stream of
//! classified beats into rhythm episodes (atrial fibrillation, ventricular and
//! supraventricular runs, bigeminy and trigeminy, pauses and asystole,
//! bradycardia and tachycardia, signal loss), each opened as soon as the
//! analyser knows it and closed when it ends.
//!
//! The analyser sees beats only (time, class or unreadable), so its episodes
//! depend on the beat stream and not on how the samples were chunked: the
//! chunk invariance of [`crate::dsp`] carries over.

mod af;
mod episode;
pub mod hrv;

pub use af::{AfDetector, AfReading};
pub use episode::{Episode, EpisodeKind, RhythmEvent};

use crate::formats::wfdb::AamiClass;
use episode::Tracker;
use std::collections::VecDeque;

/// One beat as the rhythm analyser sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RhythmBeat {
    /// R-peak time, µs.
    pub r_time_us: i64,
    /// The beat's class; `None` when unreadable (quality gate or abstention).
    pub class: Option<AamiClass>,
}

/// The analyser's thresholds. Defaults follow common Holter-software settings
/// (pause 2 s, asystole 3 s, VT and SVT ≥ 3 beats above 100 /min, bigeminy and
/// trigeminy after 3 cycles); the AF detector's were chosen on DS1 (see
/// docs/rhythm.md).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RhythmConfig {
    /// An RR interval at least this long is a pause, s.
    pub pause_s: f64,
    /// An RR interval (or a time without beats) at least this long is asystole, s.
    pub asystole_s: f64,
    /// Readable beats (1 or 2) a pause needs among the two that bound it: with
    /// 2, a pause next to a beat the gate refused is not reported (it may be a
    /// beat missed in noise); with 1, it is if the other side is readable.
    pub pause_readable_flanks: u8,
    /// Heart rate below this (over `rate_beats`) is bradycardia, /min.
    pub brady_bpm: f64,
    /// Heart rate above this (over `rate_beats`) is tachycardia, /min.
    pub tachy_bpm: f64,
    /// Shortest bradycardia or tachycardia episode reported, s.
    pub rate_min_s: f64,
    /// Intervals the heart rate is averaged over.
    pub rate_beats: usize,
    /// Consecutive V (or S) beats that make a run.
    pub run_beats: usize,
    /// A run faster than this (its mean rate over its last `rate_beats`
    /// intervals; back below 95 % of it, a slow run again) is ventricular (or
    /// supraventricular) tachycardia, /min.
    pub run_tachy_bpm: f64,
    /// Cycles of N-V (bigeminy) or N-N-V (trigeminy) before the pattern is an episode.
    pub pattern_cycles: usize,
    /// Unreadable beats spanning at least this long are signal loss, s.
    pub signal_loss_s: f64,
    /// The atrial-fibrillation detector's settings.
    pub af: AfConfig,
}

impl Default for RhythmConfig {
    fn default() -> Self {
        RhythmConfig {
            pause_s: 2.0,
            asystole_s: 3.0,
            pause_readable_flanks: 2,
            brady_bpm: 50.0,
            tachy_bpm: 100.0,
            rate_min_s: 10.0,
            rate_beats: 8,
            run_beats: 3,
            run_tachy_bpm: 100.0,
            pattern_cycles: 3,
            signal_loss_s: 5.0,
            af: AfConfig::default(),
        }
    }
}

/// Largest change between successive intervals, as a share, for which a
/// tachycardia goes on through beats not of its class
/// ([`RhythmAnalyser::steady_and_fast`]).
const RUN_STEADY: f64 = 0.15;

/// An AF episode with no reading for this long after its last irregular
/// one ends there, µs.
const AF_STALE_US: i64 = 60_000_000;

/// Settings of the RR-irregularity AF detector ([`AfDetector`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AfConfig {
    /// Successive-interval pairs in the sliding window.
    pub window: usize,
    /// Irregularity (median normalised successive difference) above which the rhythm is AF.
    pub on: f64,
    /// Irregularity below which an AF episode ends (hysteresis: below `on`).
    pub off: f64,
    /// Shortest AF episode reported, s.
    pub min_s: f64,
}

impl Default for AfConfig {
    fn default() -> Self {
        AfConfig {
            window: 32,
            on: 0.10,
            off: 0.08,
            min_s: 30.0,
        }
    }
}

impl RhythmConfig {
    /// Checks the settings, naming the first that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("pause_s", self.pause_s),
            ("asystole_s", self.asystole_s),
            ("brady_bpm", self.brady_bpm),
            ("tachy_bpm", self.tachy_bpm),
            ("run_tachy_bpm", self.run_tachy_bpm),
            ("signal_loss_s", self.signal_loss_s),
            ("af.on", self.af.on),
            ("af.off", self.af.off),
        ];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("rhythm.{name} must be a positive number, got {v}"));
            }
        }
        if self.brady_bpm >= self.tachy_bpm {
            return Err("rhythm.brady_bpm must be below rhythm.tachy_bpm".into());
        }
        if self.af.off > self.af.on {
            return Err("rhythm.af.off must not be above rhythm.af.on".into());
        }
        if self.rate_beats < 2 || self.run_beats < 2 || self.pattern_cycles < 2 {
            return Err(
                "rhythm.rate_beats, run_beats and pattern_cycles must each be at least 2".into(),
            );
        }
        if !(1..=2).contains(&self.pause_readable_flanks) {
            return Err("rhythm.pause_readable_flanks must be 1 or 2".into());
        }
        if self.af.window < 4 {
            return Err("rhythm.af.window must be at least 4".into());
        }
        if !(self.rate_min_s >= 0.0 && self.af.min_s >= 0.0) {
            return Err("rhythm.rate_min_s and rhythm.af.min_s must not be negative".into());
        }
        Ok(())
    }
}

/// One stream's rhythm analysis (a few KiB of state).
#[derive(Debug, Clone)]
pub struct RhythmAnalyser {
    config: RhythmConfig,
    /// The last beats, newest last (enough for patterns and rates).
    recent: VecDeque<RhythmBeat>,
    /// Readable beats' times for the heart rate, newest last.
    readable: VecDeque<i64>,
    af: AfDetector,
    af_episode: Tracker,
    brady: Tracker,
    tachy: Tracker,
    v_run: Tracker,
    s_run: Tracker,
    bigeminy: Pattern,
    trigeminy: Pattern,
    signal_loss: Tracker,
    /// A pause or asystole announced by [`advance`](Self::advance) before its closing beat.
    pending_pause: Option<Episode>,
    /// A single beat not called V inside a ventricular tachycardia, held
    /// until the next beat says whether the tachycardia went on through it.
    vt_capture: Option<RhythmBeat>,
}

impl RhythmAnalyser {
    /// A new stream's analyser.
    pub fn new(config: RhythmConfig) -> Self {
        let af = AfDetector::new(config.af.window);
        RhythmAnalyser {
            config,
            recent: VecDeque::new(),
            readable: VecDeque::new(),
            af,
            af_episode: Tracker::default(),
            brady: Tracker::default(),
            tachy: Tracker::default(),
            v_run: Tracker::default(),
            s_run: Tracker::default(),
            bigeminy: Pattern::new(2, EpisodeKind::Bigeminy),
            trigeminy: Pattern::new(3, EpisodeKind::Trigeminy),
            signal_loss: Tracker::default(),
            pending_pause: None,
            vt_capture: None,
        }
    }

    /// The settings in use.
    pub fn config(&self) -> &RhythmConfig {
        &self.config
    }

    /// R-peak time of the last beat taken, µs.
    pub fn last_beat_us(&self) -> Option<i64> {
        self.recent.back().map(|b| b.r_time_us)
    }

    /// Takes the next beat (in time order) and appends the episodes it opens
    /// or closes to `out`.
    pub fn push(&mut self, beat: RhythmBeat, out: &mut Vec<RhythmEvent>) {
        let prev = self.recent.back().copied();
        if let Some(p) = prev
            && beat.r_time_us <= p.r_time_us
        {
            // Out of order or repeated: the beat stream is ordered per stream,
            // so this is a replay of a beat already seen; nothing to learn.
            return;
        }
        let keep = (self.config.pattern_cycles * 3)
            .max(self.config.run_beats)
            .max(self.config.rate_beats)
            .max(4)
            + 1;
        self.recent.push_back(beat);
        while self.recent.len() > keep {
            self.recent.pop_front();
        }
        if let Some(p) = prev {
            self.pause(p, beat, out);
        }
        self.signal_loss(beat, out);
        self.rates(beat, out);
        self.runs(beat, out);
        self.patterns(beat, out);
        self.atrial_fibrillation(beat, out);
    }

    /// Tells the analyser that the stream has been analysed up to `now_us`
    /// with no further beat: a pause or asystole under way is announced
    /// before the beat that ends it arrives.
    pub fn advance(&mut self, now_us: i64, out: &mut Vec<RhythmEvent>) {
        let Some(last) = self.recent.back().copied() else {
            return;
        };
        let gap_s = (now_us - last.r_time_us) as f64 / 1e6;
        if gap_s < self.config.pause_s || last.class.is_none() {
            return;
        }
        let kind = if gap_s >= self.config.asystole_s {
            EpisodeKind::Asystole
        } else {
            EpisodeKind::Pause
        };
        match &mut self.pending_pause {
            Some(p) if p.kind == kind => p.end_us = now_us,
            pending => {
                if let Some(p) = pending.take() {
                    out.push(RhythmEvent::Withdrawn(p));
                }
                let e = Episode {
                    kind,
                    start_us: last.r_time_us,
                    end_us: now_us,
                    beats: 0,
                    min_bpm: 0.0,
                    max_bpm: 0.0,
                };
                out.push(RhythmEvent::Opened(e.clone()));
                self.pending_pause = Some(e);
            }
        }
    }

    /// The episodes opened by beats and not yet closed, as they stand now (a
    /// pause announced by [`advance`](Self::advance) is not among them: it
    /// depends on when the analyser was asked, not on the beats).
    pub fn ongoing(&self) -> Vec<Episode> {
        [
            &self.af_episode,
            &self.brady,
            &self.tachy,
            &self.v_run,
            &self.s_run,
            &self.bigeminy.tracker,
            &self.trigeminy.tracker,
            &self.signal_loss,
        ]
        .into_iter()
        .filter_map(|t| t.ongoing().cloned())
        .collect()
    }

    /// Closes every open episode at the end of the stream (the last beat).
    pub fn finish(&mut self, out: &mut Vec<RhythmEvent>) {
        for t in [
            &mut self.af_episode,
            &mut self.brady,
            &mut self.tachy,
            &mut self.v_run,
            &mut self.s_run,
            &mut self.bigeminy.tracker,
            &mut self.trigeminy.tracker,
            &mut self.signal_loss,
        ] {
            t.close(out);
        }
        self.vt_capture = None;
        // A pause announced without its closing beat ends with the stream: the
        // silence may have been the recording stopping, so it is not reported.
        if let Some(p) = self.pending_pause.take() {
            out.push(RhythmEvent::Withdrawn(p));
        }
    }

    fn pause(&mut self, prev: RhythmBeat, beat: RhythmBeat, out: &mut Vec<RhythmEvent>) {
        let rr_s = (beat.r_time_us - prev.r_time_us) as f64 / 1e6;
        let pending = self.pending_pause.take();
        // A pause needs readable beats around it: between unreadable beats
        // the detector may simply have missed beats in the noise.
        let readable = u8::from(prev.class.is_some()) + u8::from(beat.class.is_some());
        if rr_s < self.config.pause_s || readable < self.config.pause_readable_flanks {
            if let Some(p) = pending {
                out.push(RhythmEvent::Withdrawn(p));
            }
            return;
        }
        let kind = if rr_s >= self.config.asystole_s {
            EpisodeKind::Asystole
        } else {
            EpisodeKind::Pause
        };
        let bpm = 60.0 / rr_s as f32;
        let e = Episode {
            kind,
            start_us: prev.r_time_us,
            end_us: beat.r_time_us,
            beats: 2,
            min_bpm: bpm,
            max_bpm: bpm,
        };
        match pending {
            Some(p) if p.kind == kind && p.start_us == e.start_us => {}
            Some(p) => {
                out.push(RhythmEvent::Withdrawn(p));
                out.push(RhythmEvent::Opened(e.clone()));
            }
            None => out.push(RhythmEvent::Opened(e.clone())),
        }
        out.push(RhythmEvent::Closed(e));
    }

    fn signal_loss(&mut self, beat: RhythmBeat, out: &mut Vec<RhythmEvent>) {
        if beat.class.is_some() {
            if self.signal_loss.is_running() {
                // Loss lasts until this readable beat.
                self.signal_loss.extend(beat.r_time_us, 0.0);
            }
            self.signal_loss.close(out);
            return;
        }
        if !self.signal_loss.is_running() {
            self.signal_loss
                .start(EpisodeKind::SignalLoss, beat.r_time_us);
        }
        self.signal_loss.extend(beat.r_time_us, 0.0);
        let min = (self.config.signal_loss_s * 1e6) as i64;
        self.signal_loss.open_once_longer_than(min, out);
    }

    fn rates(&mut self, beat: RhythmBeat, out: &mut Vec<RhythmEvent>) {
        if beat.class.is_none() {
            // The rate is measured over readable beats in a row only.
            self.readable.clear();
            self.brady.close(out);
            self.tachy.close(out);
            return;
        }
        let n = self.config.rate_beats;
        self.readable.push_back(beat.r_time_us);
        while self.readable.len() > n + 1 {
            self.readable.pop_front();
        }
        if self.readable.len() < n + 1 {
            return;
        }
        let (first, last) = (self.readable[0], beat.r_time_us);
        let bpm = 60.0 * n as f64 / ((last - first) as f64 / 1e6);
        let beat_bpm = f64::from(rate_of(self.readable[n - 1], last));
        let min = (self.config.rate_min_s * 1e6) as i64;
        let (brady, tachy) = (self.config.brady_bpm, self.config.tachy_bpm);
        for (tracker, kind, holds, beyond) in [
            (
                &mut self.brady,
                EpisodeKind::Bradycardia,
                bpm < brady,
                (|r: f64, t: f64| r < t) as fn(f64, f64) -> bool,
            ),
            (
                &mut self.tachy,
                EpisodeKind::Tachycardia,
                bpm > tachy,
                (|r: f64, t: f64| r > t) as fn(f64, f64) -> bool,
            ),
        ] {
            let threshold = if kind == EpisodeKind::Bradycardia {
                brady
            } else {
                tachy
            };
            if holds {
                if !tracker.is_running() {
                    // Onset: the start of the run of intervals, newest back,
                    // that are themselves beyond the rate (else the last one).
                    let mut onset = self.readable[n - 1];
                    for i in (0..n).rev() {
                        let r = f64::from(rate_of(self.readable[i], self.readable[i + 1]));
                        if !beyond(r, threshold) {
                            break;
                        }
                        onset = self.readable[i];
                    }
                    tracker.start(kind, onset);
                    for i in 0..n {
                        if self.readable[i + 1] > onset && self.readable[i] >= onset {
                            let r = rate_of(self.readable[i], self.readable[i + 1]);
                            tracker.extend(self.readable[i + 1], r);
                        }
                    }
                } else {
                    tracker.extend(last, beat_bpm as f32);
                }
                if beyond(beat_bpm, threshold) {
                    tracker.mark(last);
                }
                tracker.open_once_longer_than(min, out);
            } else {
                // Offset: the last beat whose own interval was beyond the rate.
                tracker.close(out);
            }
        }
    }

    /// Whether the newest beat (the last of `recent`) keeps the rhythm fast
    /// (its interval over `run_tachy_bpm`) and steady (within [`RUN_STEADY`]
    /// of the interval before).
    fn steady_and_fast(&self) -> bool {
        let n = self.recent.len();
        if n < 3 {
            return false;
        }
        let at = |i: usize| self.recent[i].r_time_us as f64;
        let rr = at(n - 1) - at(n - 2);
        let before = at(n - 2) - at(n - 3);
        rr > 0.0
            && 60e6 / rr > self.config.run_tachy_bpm
            && (rr - before).abs() <= RUN_STEADY * before
    }

    /// Whether an SVT under way goes on through `beat`, which the beat model
    /// called N: the beats of a supraventricular tachycardia after its abrupt
    /// onset are not early against the beats before them, and the beat model
    /// calls them N, while the rhythm stays fast and steady.
    fn svt_goes_on(&self, beat: RhythmBeat) -> bool {
        beat.class == Some(AamiClass::N)
            && self.s_run.kind() == Some(EpisodeKind::SupraventricularTachycardia)
            && self.steady_and_fast()
    }

    /// Whether the newest beat keeps a run's rhythm: its interval is within
    /// [`RUN_STEADY`] of the range of the three intervals before it, and the
    /// four are fast on average (over `run_tachy_bpm`). A range and a mean
    /// rather than the last interval, as a ventricular tachycardia may
    /// alternate longer and shorter intervals.
    fn keeps_run_rhythm(&self) -> bool {
        let n = self.recent.len();
        if n < 5 {
            return false;
        }
        let rr = |i: usize| (self.recent[i].r_time_us - self.recent[i - 1].r_time_us) as f64;
        let (low, high) = (n - 4..n - 1)
            .map(rr)
            .fold((f64::MAX, 0.0_f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
        let last = rr(n - 1);
        let mean = (n - 4..n).map(rr).sum::<f64>() / 4.0;
        last > 0.0
            && 60e6 / mean > self.config.run_tachy_bpm
            && last >= (1.0 - RUN_STEADY) * low
            && last <= (1.0 + RUN_STEADY) * high
    }

    /// Whether `beat`, readable and not V, may be a capture or fusion beat
    /// of the VT under way: a single supraventricular or fusion complex
    /// after at least two V beats, on the tachycardia's rhythm (a hallmark
    /// of VT, not its end). The VT goes on through it when the next beat is
    /// V on the same rhythm; a ventricular bigeminy (V and N alternating)
    /// ends it.
    fn vt_may_go_on(&self, beat: RhythmBeat) -> bool {
        let n = self.recent.len();
        beat.class.is_some_and(|c| c != AamiClass::V)
            && self.vt_capture.is_none()
            && self.v_run.kind() == Some(EpisodeKind::VentricularTachycardia)
            && n >= 3
            && self.recent[n - 2].class == Some(AamiClass::V)
            && self.recent[n - 3].class == Some(AamiClass::V)
            && self.keeps_run_rhythm()
    }

    fn runs(&mut self, beat: RhythmBeat, out: &mut Vec<RhythmEvent>) {
        let k = self.config.run_beats;
        let svt_goes_on = self.svt_goes_on(beat);
        let vt_may_go_on = self.vt_may_go_on(beat);
        // A beat held as a capture beat of the VT: the VT went on through it
        // when this beat is V on the same fast, steady rhythm; otherwise the
        // VT ended at its last V beat, before the held one.
        let capture = self.vt_capture.take();
        let vt_goes_on =
            capture.is_some() && beat.class == Some(AamiClass::V) && self.keeps_run_rhythm();
        for (class, fast, slow) in [
            (
                AamiClass::V,
                EpisodeKind::VentricularTachycardia,
                EpisodeKind::IdioventricularRhythm,
            ),
            (
                AamiClass::S,
                EpisodeKind::SupraventricularTachycardia,
                EpisodeKind::SupraventricularRun,
            ),
        ] {
            let tracker = if class == AamiClass::V {
                &mut self.v_run
            } else {
                &mut self.s_run
            };
            if beat.class != Some(class) {
                if class == AamiClass::S && svt_goes_on {
                    let bpm = rate_of(tracker.last_us(), beat.r_time_us);
                    tracker.extend(beat.r_time_us, bpm);
                } else if class == AamiClass::V && vt_may_go_on {
                    self.vt_capture = Some(beat);
                } else {
                    tracker.close(out);
                }
                continue;
            }
            if class == AamiClass::V
                && let Some(c) = capture
            {
                if vt_goes_on {
                    let bpm = rate_of(tracker.last_us(), c.r_time_us);
                    tracker.extend(c.r_time_us, bpm);
                } else {
                    tracker.close(out);
                }
            }
            if tracker.is_running() {
                let bpm = rate_of(tracker.last_us(), beat.r_time_us);
                // The run's kind follows its rate over its last `rate_beats`
                // intervals (with a 5 % hysteresis): a run that starts slowly
                // and speeds up becomes VT (SVT) from the beat before, the slow
                // episode ending there; and the other way round.
                let n = self.recent.len();
                let m = (tracker.beats() as usize + 1)
                    .min(self.config.rate_beats + 1)
                    .min(n);
                let (first, last) = (self.recent[n - m].r_time_us, beat.r_time_us);
                let mean_bpm = 60.0 * (m - 1) as f64 / ((last - first) as f64 / 1e6);
                let current = tracker.kind();
                let want = if mean_bpm > self.config.run_tachy_bpm {
                    fast
                } else if mean_bpm < 0.95 * self.config.run_tachy_bpm {
                    slow
                } else {
                    current.unwrap_or(slow)
                };
                if current != Some(want) {
                    let from = tracker.last_us();
                    tracker.close(out);
                    tracker.start(want, from);
                    tracker.extend(beat.r_time_us, bpm);
                    tracker.open_once_longer_than(0, out);
                } else {
                    tracker.extend(beat.r_time_us, bpm);
                }
                continue;
            }
            let n = self.recent.len();
            if n < k || !self.recent.range(n - k..).all(|b| b.class == Some(class)) {
                continue;
            }
            // The kth beat of a run: its kind from the rate over its k beats.
            let run: Vec<i64> = self.recent.range(n - k..).map(|b| b.r_time_us).collect();
            let mean_bpm = 60.0 * (k - 1) as f64 / ((run[k - 1] - run[0]) as f64 / 1e6);
            let kind = if mean_bpm > self.config.run_tachy_bpm {
                fast
            } else {
                slow
            };
            tracker.start(kind, run[0]);
            for w in run.windows(2) {
                tracker.extend(w[1], rate_of(w[0], w[1]));
            }
            tracker.open_once_longer_than(0, out);
        }
    }

    fn patterns(&mut self, beat: RhythmBeat, out: &mut Vec<RhythmEvent>) {
        let cycles = self.config.pattern_cycles;
        for pattern in [&mut self.bigeminy, &mut self.trigeminy] {
            let complete = pattern.step(beat.class);
            if pattern.tracker.is_running() {
                if pattern.cycles == 0 && !complete {
                    pattern.tracker.close(out);
                } else {
                    let bpm = rate_of(pattern.tracker.last_us(), beat.r_time_us);
                    pattern.tracker.extend(beat.r_time_us, bpm);
                    continue;
                }
            }
            if complete && pattern.cycles >= cycles {
                // The pattern's first beat: `cycles` whole cycles back.
                let n = self.recent.len();
                let start = n - pattern.period * cycles;
                pattern
                    .tracker
                    .start(pattern.kind, self.recent[start].r_time_us);
                for i in start + 1..n {
                    let bpm = rate_of(self.recent[i - 1].r_time_us, self.recent[i].r_time_us);
                    pattern.tracker.extend(self.recent[i].r_time_us, bpm);
                }
                pattern.tracker.open_once_longer_than(0, out);
            }
        }
    }

    fn atrial_fibrillation(&mut self, beat: RhythmBeat, out: &mut Vec<RhythmEvent>) {
        let Some(state) = self.af.push(beat) else {
            if !self.af.has_evidence() && beat.r_time_us - self.af_episode.last_us() > AF_STALE_US {
                // The rhythm has not been judged for a minute (too few
                // clean intervals): the episode ends at its last irregular
                // reading rather than bridging the gap.
                self.af_episode.close(out);
            }
            return;
        };
        let cfg = &self.config.af;
        let on = if self.af_episode.is_running() {
            state.irregularity >= cfg.off
        } else {
            state.irregularity > cfg.on
        };
        if on {
            if !self.af_episode.is_running() {
                self.af_episode
                    .start(EpisodeKind::AtrialFibrillation, state.centre_us);
            }
            self.af_episode.extend(state.centre_us, state.bpm);
            self.af_episode
                .open_once_longer_than((cfg.min_s * 1e6) as i64, out);
        } else {
            // An irregular stretch shorter than the shortest AF episode was
            // never opened, and closing it reports nothing.
            self.af_episode.close(out);
        }
    }

    /// Bytes of state held (for the per-stream memory report).
    pub fn state_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.recent.capacity() * std::mem::size_of::<RhythmBeat>()
            + self.readable.capacity() * std::mem::size_of::<i64>()
            + self.af.heap_bytes()
    }
}

/// A repeating ectopic pattern: `period − 1` readable non-V beats, then a V
/// (bigeminy 2, trigeminy 3).
#[derive(Debug, Clone)]
struct Pattern {
    period: usize,
    kind: EpisodeKind,
    /// Readable non-V beats since the last V (or the start, or an unreadable beat); `None` right after an unreadable beat.
    since_v: Option<usize>,
    /// Whole cycles in a row ending at the last V.
    cycles: usize,
    tracker: Tracker,
}

impl Pattern {
    fn new(period: usize, kind: EpisodeKind) -> Self {
        Pattern {
            period,
            kind,
            since_v: None,
            cycles: 0,
            tracker: Tracker::default(),
        }
    }

    /// Takes the next beat's class; true when it completes a cycle (a V after
    /// exactly `period − 1` others). A beat out of place resets the count.
    fn step(&mut self, class: Option<AamiClass>) -> bool {
        let others = self.period - 1;
        match class {
            None => {
                self.since_v = None;
                self.cycles = 0;
                false
            }
            Some(AamiClass::V) => {
                self.cycles = match self.since_v {
                    // The next cycle of a pattern under way.
                    Some(k) if k == others && self.cycles > 0 => self.cycles + 1,
                    // A first cycle: enough others before this V.
                    Some(k) if k >= others => 1,
                    _ => 0,
                };
                self.since_v = Some(0);
                self.cycles > 0
            }
            Some(_) => {
                let k = self.since_v.map_or(1, |k| k + 1);
                self.since_v = Some(k);
                if k > others {
                    self.cycles = 0;
                }
                false
            }
        }
    }
}

/// Instantaneous rate between two R peaks, /min.
fn rate_of(prev_us: i64, next_us: i64) -> f32 {
    let s = (next_us - prev_us) as f64 / 1e6;
    if s > 0.0 { (60.0 / s) as f32 } else { 0.0 }
}

#[cfg(test)]
mod tests;
