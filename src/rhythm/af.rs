//! Atrial fibrillation from RR irregularity.
//!
//! In AF the ventricles are driven irregularly, so successive RR intervals
//! differ by a large fraction of the interval; in sinus rhythm they change
//! slowly. The detector measures, over a sliding window of successive
//! intervals, the median normalised successive difference
//! `|RRᵢ − RRᵢ₋₁| / mean(RRᵢ, RRᵢ₋₁)`. Four things would fool a plain
//! irregularity measure, and each is handled (after the ectopic filtering and
//! bigeminal suppression of low-complexity RR-based detectors, e.g.
//! Petrėnas et al. 2015):
//!
//! - ventricular (and unclassifiable or fusion) beats: intervals touching
//!   them are skipped, so a PVC's short-long pair adds nothing, and the clean
//!   intervals on either side are compared with each other;
//! - isolated supraventricular ectopics: the *median* over the window
//!   ignores the few large differences each one makes;
//! - bigeminal and trigeminal rhythms (short-long-short-long, or
//!   normal-short-long): these repeat, so `RRᵢ ≈ RRᵢ₋₂` or `RRᵢ ≈ RRᵢ₋₃`;
//!   the irregularity is the smallest of the medians of the successive
//!   difference and of `|RRᵢ − RRᵢ₋ₖ| / mean(RRᵢ, RRᵢ₋ₖ)` for k = 2 and 3,
//!   which AF raises and the repeating patterns do not;
//! - stale evidence: an interval more than [`MAX_AGE_US`] older than the
//!   newest beat leaves the window, and a window that is not full gives no
//!   reading ([`AfDetector::has_evidence`]), so where clean intervals stop
//!   coming (a ventricular bigeminy leaves none), an AF episode is not
//!   carried on by minutes-old intervals.
//!
//! The window's verdict belongs to its centre (the median flips when half
//! the window has changed rhythm), so episodes are placed there: onset and
//! offset lag the rhythm by about half a window, and are dated back to it.

use super::RhythmBeat;
use crate::formats::wfdb::AamiClass;
use std::collections::VecDeque;

/// A window of intervals with more than this between neighbours is restarted, µs.
const MAX_GAP_US: i64 = 10_000_000;
/// Intervals older than this before the newest beat leave the window, µs.
const MAX_AGE_US: i64 = 120_000_000;

/// One successive-interval measurement.
#[derive(Debug, Clone, Copy)]
struct Item {
    /// Time of the beat ending the newest interval, µs.
    at_us: i64,
    /// Normalised successive difference of the last two intervals.
    d1: f32,
    /// Normalised difference of the last interval and the one two before.
    d2: f32,
    /// Normalised difference of the last interval and the one three before.
    d3: f32,
    /// The newest interval, s.
    rr_s: f32,
}

/// The detector's reading at one beat.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AfReading {
    /// Irregularity of the window (0: regular).
    pub irregularity: f64,
    /// Time the reading belongs to (the window's centre), µs.
    pub centre_us: i64,
    /// Mean heart rate over the window, /min.
    pub bpm: f32,
}

/// The RR-irregularity AF detector of one stream.
#[derive(Debug, Clone)]
pub struct AfDetector {
    window: usize,
    prev: Option<RhythmBeat>,
    /// The last clean intervals, s, newest last (at most 4).
    chain: VecDeque<f64>,
    items: VecDeque<Item>,
    scratch: Vec<f32>,
}

/// Beats whose intervals the detector reads: readable, and not ventricular,
/// fusion or unclassifiable.
fn supraventricular_or_normal(b: &RhythmBeat) -> bool {
    matches!(b.class, Some(AamiClass::N) | Some(AamiClass::S))
}

impl AfDetector {
    /// A detector over `window` successive-interval pairs.
    pub fn new(window: usize) -> Self {
        AfDetector {
            window: window.max(4),
            prev: None,
            chain: VecDeque::with_capacity(4),
            items: VecDeque::with_capacity(window.max(4) + 1),
            scratch: Vec::with_capacity(window.max(4)),
        }
    }

    /// Takes the next beat; a reading once the window is full, at each beat
    /// that adds a measurement.
    pub fn push(&mut self, beat: RhythmBeat) -> Option<AfReading> {
        while self
            .items
            .front()
            .is_some_and(|i| beat.r_time_us - i.at_us > MAX_AGE_US)
        {
            self.items.pop_front();
        }
        let prev = self.prev.replace(beat);
        let clean = prev
            .is_some_and(|p| supraventricular_or_normal(&p) && supraventricular_or_normal(&beat));
        let Some(p) = prev.filter(|_| clean) else {
            // An interval touching a V, F or Q beat is skipped, and the
            // clean intervals on either side stay neighbours: a ventricular
            // trigeminy leaves one clean interval per cycle, and those are
            // as regular as the sinus rhythm is. An unreadable beat ends the chain.
            if prev.is_some_and(|p| p.class.is_none()) || beat.class.is_none() {
                self.chain.clear();
            }
            return None;
        };
        let rr = (beat.r_time_us - p.r_time_us) as f64 / 1e6;
        self.chain.push_back(rr);
        if self.chain.len() > 4 {
            self.chain.pop_front();
        }
        if self.chain.len() < 4 {
            return None;
        }
        let (z, a, b, c) = (self.chain[0], self.chain[1], self.chain[2], self.chain[3]);
        let item = Item {
            at_us: beat.r_time_us,
            d1: ((c - b).abs() / ((c + b) / 2.0)) as f32,
            d2: ((c - a).abs() / ((c + a) / 2.0)) as f32,
            d3: ((c - z).abs() / ((c + z) / 2.0)) as f32,
            rr_s: c as f32,
        };
        if self
            .items
            .back()
            .is_some_and(|last| item.at_us - last.at_us > MAX_GAP_US)
        {
            self.items.clear();
        }
        self.items.push_back(item);
        while self.items.len() > self.window {
            self.items.pop_front();
        }
        if self.items.len() < self.window {
            return None;
        }
        let d1 = self.median(|i| i.d1);
        let d2 = self.median(|i| i.d2);
        let d3 = self.median(|i| i.d3);
        let mean_rr = self.items.iter().map(|i| i.rr_s).sum::<f32>() / self.items.len() as f32;
        Some(AfReading {
            irregularity: f64::from(d1.min(d2).min(d3)),
            centre_us: self.items[self.items.len() / 2].at_us,
            bpm: if mean_rr > 0.0 { 60.0 / mean_rr } else { 0.0 },
        })
    }

    /// True while the window is full of recent intervals: whether the
    /// detector can judge the rhythm at all at the last beat pushed.
    pub fn has_evidence(&self) -> bool {
        self.items.len() >= self.window
    }

    fn median(&mut self, f: impl Fn(&Item) -> f32) -> f32 {
        self.scratch.clear();
        self.scratch.extend(self.items.iter().map(f));
        self.scratch.sort_unstable_by(f32::total_cmp);
        let n = self.scratch.len();
        if n % 2 == 1 {
            self.scratch[n / 2]
        } else {
            (self.scratch[n / 2 - 1] + self.scratch[n / 2]) / 2.0
        }
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.chain.capacity() * 8
            + self.items.capacity() * std::mem::size_of::<Item>()
            + self.scratch.capacity() * 4
    }
}
