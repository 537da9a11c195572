//! Rhythm-episode statistics in the manner of ANSI/AAMI EC57 and PhysioNet's
//! `epic`: episode sensitivity and positive predictivity (a reference episode
//! is detected when an algorithm episode of the same rhythm overlaps it; an
//! algorithm episode is true when it overlaps a reference one) and duration
//! sensitivity and positive predictivity (overlap time over reference time,
//! and over algorithm time), pooled over records for the gross figures.
//!
//! Reference episodes come from the rhythm annotations (`+` with an aux label
//! such as `(AFIB`, each lasting to the next rhythm label or the record's end)
//! and, for pauses, from the reference beats (an RR interval at least the
//! pause threshold). Ventricular flutter and fibrillation (between the `[`
//! and `]` marks) have no beats but are no pause: as EC57 leaves them out of
//! beat scoring, pauses overlapping them are not scored, neither the
//! reference's nor the algorithm's ([`without_pauses_in_vf`]).

use super::vf_episodes;
use crate::formats::wfdb::Annotation;
use crate::rhythm::EpisodeKind;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt;

/// A rhythm the evaluation scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScoredRhythm {
    /// Atrial fibrillation or flutter (`(AFIB`, `(AFL`).
    Af,
    /// Ventricular tachycardia (`(VT`).
    Vt,
    /// Supraventricular tachyarrhythmia (`(SVTA`).
    Svt,
    /// Ventricular bigeminy (`(B`).
    Bigeminy,
    /// Ventricular trigeminy (`(T`).
    Trigeminy,
    /// Idioventricular rhythm (`(IVR`).
    Ivr,
    /// An RR interval of at least the pause threshold.
    Pause,
}

impl ScoredRhythm {
    /// Every scored rhythm, in report order.
    pub const ALL: [ScoredRhythm; 7] = [
        ScoredRhythm::Af,
        ScoredRhythm::Vt,
        ScoredRhythm::Svt,
        ScoredRhythm::Bigeminy,
        ScoredRhythm::Trigeminy,
        ScoredRhythm::Ivr,
        ScoredRhythm::Pause,
    ];

    /// The rhythm's key in the JSON report.
    pub fn key(self) -> &'static str {
        match self {
            ScoredRhythm::Af => "af",
            ScoredRhythm::Vt => "vt",
            ScoredRhythm::Svt => "svt",
            ScoredRhythm::Bigeminy => "bigeminy",
            ScoredRhythm::Trigeminy => "trigeminy",
            ScoredRhythm::Ivr => "ivr",
            ScoredRhythm::Pause => "pause",
        }
    }

    /// The rhythm a reference aux label (`(AFIB`, …) names, if scored.
    pub fn from_aux(aux: &str) -> Option<Self> {
        match aux.trim_end_matches('\0').trim() {
            "(AFIB" | "(AFL" => Some(ScoredRhythm::Af),
            "(VT" => Some(ScoredRhythm::Vt),
            "(SVTA" => Some(ScoredRhythm::Svt),
            "(B" => Some(ScoredRhythm::Bigeminy),
            "(T" => Some(ScoredRhythm::Trigeminy),
            "(IVR" => Some(ScoredRhythm::Ivr),
            _ => None,
        }
    }

    /// The rhythm an analyser episode counts as, if scored (asystole is a
    /// long pause).
    pub fn from_episode(kind: EpisodeKind) -> Option<Self> {
        match kind {
            EpisodeKind::AtrialFibrillation => Some(ScoredRhythm::Af),
            EpisodeKind::VentricularTachycardia => Some(ScoredRhythm::Vt),
            EpisodeKind::SupraventricularTachycardia => Some(ScoredRhythm::Svt),
            EpisodeKind::Bigeminy => Some(ScoredRhythm::Bigeminy),
            EpisodeKind::Trigeminy => Some(ScoredRhythm::Trigeminy),
            EpisodeKind::IdioventricularRhythm => Some(ScoredRhythm::Ivr),
            EpisodeKind::Pause | EpisodeKind::Asystole => Some(ScoredRhythm::Pause),
            _ => None,
        }
    }
}

/// One episode on the time line of a record, seconds from its start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span {
    /// Which rhythm.
    pub rhythm: ScoredRhythm,
    /// Onset, s.
    pub start_s: f64,
    /// Offset, s.
    pub end_s: f64,
}

/// The reference episodes of a record: rhythm labels (each lasting to the
/// next rhythm label or `duration_s`) and pauses between reference beats of
/// at least `pause_s`.
pub fn reference_spans(
    annotations: &[Annotation],
    fs: f64,
    duration_s: f64,
    pause_s: f64,
) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut open: Option<(ScoredRhythm, f64)> = None;
    for a in annotations {
        let Some(aux) = a.aux.as_deref().filter(|_| a.code.symbol() == "+") else {
            continue;
        };
        let t = a.sample as f64 / fs;
        if let Some((rhythm, start_s)) = open.take() {
            spans.push(Span {
                rhythm,
                start_s,
                end_s: t,
            });
        }
        open = ScoredRhythm::from_aux(aux).map(|r| (r, t));
    }
    if let Some((rhythm, start_s)) = open {
        spans.push(Span {
            rhythm,
            start_s,
            end_s: duration_s,
        });
    }
    let beats: Vec<f64> = annotations
        .iter()
        .filter(|a| a.code.is_beat())
        .map(|a| a.sample as f64 / fs)
        .collect();
    for w in beats.windows(2) {
        if w[1] - w[0] >= pause_s {
            spans.push(Span {
                rhythm: ScoredRhythm::Pause,
                start_s: w[0],
                end_s: w[1],
            });
        }
    }
    without_pauses_in_vf(spans, &vf_spans(annotations, fs))
}

/// The ventricular flutter or fibrillation episodes of a record, s.
pub fn vf_spans(annotations: &[Annotation], fs: f64) -> Vec<(f64, f64)> {
    vf_episodes(annotations)
        .into_iter()
        .map(|(a, b)| {
            (
                a as f64 / fs,
                if b == u64::MAX {
                    f64::INFINITY
                } else {
                    b as f64 / fs
                },
            )
        })
        .collect()
}

/// `spans` without the pauses that overlap one of the `vf` episodes.
pub fn without_pauses_in_vf(mut spans: Vec<Span>, vf: &[(f64, f64)]) -> Vec<Span> {
    spans.retain(|s| {
        s.rhythm != ScoredRhythm::Pause || !vf.iter().any(|&v| overlaps((s.start_s, s.end_s), v))
    });
    spans
}

/// Episode and duration counts of one rhythm, one record or pooled with `+=`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EpisodeStats {
    /// Reference episodes.
    pub reference: u64,
    /// Reference episodes overlapped by an algorithm episode.
    pub detected: u64,
    /// Algorithm episodes.
    pub algorithm: u64,
    /// Algorithm episodes overlapping a reference episode.
    pub true_algorithm: u64,
    /// Reference time, s.
    pub reference_s: f64,
    /// Algorithm time, s.
    pub algorithm_s: f64,
    /// Time in both, s.
    pub overlap_s: f64,
}

fn percent(num: f64, den: f64) -> Option<f64> {
    (den > 0.0).then(|| 100.0 * num / den)
}

impl EpisodeStats {
    /// Episode sensitivity, %.
    pub fn episode_se(&self) -> Option<f64> {
        percent(self.detected as f64, self.reference as f64)
    }
    /// Episode positive predictivity, %.
    pub fn episode_ppv(&self) -> Option<f64> {
        percent(self.true_algorithm as f64, self.algorithm as f64)
    }
    /// Duration sensitivity, %.
    pub fn duration_se(&self) -> Option<f64> {
        percent(self.overlap_s, self.reference_s)
    }
    /// Duration positive predictivity, %.
    pub fn duration_ppv(&self) -> Option<f64> {
        percent(self.overlap_s, self.algorithm_s)
    }

    fn to_json(self) -> Value {
        json!({
            "episode_se": self.episode_se(),
            "episode_ppv": self.episode_ppv(),
            "duration_se": self.duration_se(),
            "duration_ppv": self.duration_ppv(),
            "reference_episodes": self.reference,
            "algorithm_episodes": self.algorithm,
            "reference_s": self.reference_s,
            "algorithm_s": self.algorithm_s,
        })
    }
}

impl std::ops::AddAssign<&EpisodeStats> for EpisodeStats {
    fn add_assign(&mut self, o: &EpisodeStats) {
        self.reference += o.reference;
        self.detected += o.detected;
        self.algorithm += o.algorithm;
        self.true_algorithm += o.true_algorithm;
        self.reference_s += o.reference_s;
        self.algorithm_s += o.algorithm_s;
        self.overlap_s += o.overlap_s;
    }
}

/// Clips spans to `[from_s, to_s]`, dropping those left empty (a zero-length
/// span inside the range, such as a one-beat mark, is kept).
fn clipped(spans: &[Span], rhythm: ScoredRhythm, from_s: f64, to_s: f64) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = spans
        .iter()
        .filter(|s| s.rhythm == rhythm && s.end_s >= from_s && s.start_s <= to_s)
        .map(|s| (s.start_s.max(from_s), s.end_s.min(to_s)))
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

fn overlaps(a: (f64, f64), b: (f64, f64)) -> bool {
    a.0 <= b.1 && b.0 <= a.1
}

/// Total length of the union of sorted intervals.
fn covered(spans: &[(f64, f64)]) -> f64 {
    let mut total = 0.0;
    let mut current: Option<(f64, f64)> = None;
    for &(s, e) in spans {
        match &mut current {
            Some(c) if s <= c.1 => c.1 = c.1.max(e),
            _ => {
                if let Some(c) = current {
                    total += c.1 - c.0;
                }
                current = Some((s, e));
            }
        }
    }
    total + current.map_or(0.0, |c| c.1 - c.0)
}

/// Length of the intersection of two sets of sorted intervals.
fn intersection(a: &[(f64, f64)], b: &[(f64, f64)]) -> f64 {
    let mut pieces = Vec::new();
    for &x in a {
        for &y in b {
            let (s, e) = (x.0.max(y.0), x.1.min(y.1));
            if e > s {
                pieces.push((s, e));
            }
        }
    }
    pieces.sort_by(|p, q| p.0.total_cmp(&q.0));
    covered(&pieces)
}

/// Scores one record's algorithm episodes against its reference episodes,
/// counting only what lies in `[from_s, to_s]` (EC57 leaves out the first
/// 5 minutes).
pub fn score_rhythms(
    reference: &[Span],
    algorithm: &[Span],
    from_s: f64,
    to_s: f64,
) -> BTreeMap<ScoredRhythm, EpisodeStats> {
    ScoredRhythm::ALL
        .into_iter()
        .map(|rhythm| {
            let r = clipped(reference, rhythm, from_s, to_s);
            let a = clipped(algorithm, rhythm, from_s, to_s);
            let stats = EpisodeStats {
                reference: r.len() as u64,
                detected: r
                    .iter()
                    .filter(|x| a.iter().any(|y| overlaps(**x, *y)))
                    .count() as u64,
                algorithm: a.len() as u64,
                true_algorithm: a
                    .iter()
                    .filter(|y| r.iter().any(|x| overlaps(*x, **y)))
                    .count() as u64,
                reference_s: covered(&r),
                algorithm_s: covered(&a),
                overlap_s: intersection(&r, &a),
            };
            (rhythm, stats)
        })
        .collect()
}

/// Which side of the scoring an episode comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpisodeSource {
    /// The record's annotations.
    Reference,
    /// The analyser.
    Algorithm,
}

/// One scored episode and whether the other side has one of the same rhythm
/// overlapping it: the rows behind [`score_rhythms`]' counts, for finding
/// which episodes were missed or invented.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ListedEpisode {
    /// Reference or algorithm.
    pub source: EpisodeSource,
    /// The episode, clipped to the scored range.
    pub span: Span,
    /// True when an episode of the other side overlaps it (a detected
    /// reference episode, a true algorithm one).
    pub matched: bool,
}

/// Every scored episode of one record, reference and algorithm, in time
/// order, matched exactly as [`score_rhythms`] matches them.
pub fn list_episodes(
    reference: &[Span],
    algorithm: &[Span],
    from_s: f64,
    to_s: f64,
) -> Vec<ListedEpisode> {
    let mut out = Vec::new();
    for rhythm in ScoredRhythm::ALL {
        let r = clipped(reference, rhythm, from_s, to_s);
        let a = clipped(algorithm, rhythm, from_s, to_s);
        let sides = [
            (EpisodeSource::Reference, &r, &a),
            (EpisodeSource::Algorithm, &a, &r),
        ];
        for (source, own, other) in sides {
            out.extend(own.iter().map(|&(start_s, end_s)| ListedEpisode {
                source,
                span: Span {
                    rhythm,
                    start_s,
                    end_s,
                },
                matched: other.iter().any(|&y| overlaps((start_s, end_s), y)),
            }));
        }
    }
    out.sort_by(|x, y| x.span.start_s.total_cmp(&y.span.start_s));
    out
}

/// One record's rhythm statistics.
#[derive(Debug, Clone)]
pub struct RhythmRecordScore {
    /// Record name.
    pub record: String,
    /// Per rhythm.
    pub stats: BTreeMap<ScoredRhythm, EpisodeStats>,
}

/// Per-record and gross rhythm statistics of an evaluation.
#[derive(Debug, Clone)]
pub struct RhythmReport {
    /// Each record, in order.
    pub records: Vec<RhythmRecordScore>,
}

impl RhythmReport {
    /// Pooled over all records.
    pub fn gross(&self) -> BTreeMap<ScoredRhythm, EpisodeStats> {
        let mut g: BTreeMap<ScoredRhythm, EpisodeStats> = BTreeMap::new();
        for r in &self.records {
            for (k, s) in &r.stats {
                *g.entry(*k).or_default() += s;
            }
        }
        g
    }

    /// `{"records": [{"record", <rhythm>: {...}}], "gross": {<rhythm>: {...}}}`, rates in percent.
    pub fn to_json(&self) -> Value {
        let map = |stats: &BTreeMap<ScoredRhythm, EpisodeStats>| {
            stats
                .iter()
                .map(|(k, s)| (k.key().to_string(), s.to_json()))
                .collect::<serde_json::Map<_, _>>()
        };
        let records: Vec<Value> = self
            .records
            .iter()
            .map(|r| {
                let mut m = map(&r.stats);
                m.insert("record".into(), Value::String(r.record.clone()));
                Value::Object(m)
            })
            .collect();
        json!({"records": records, "gross": Value::Object(map(&self.gross()))})
    }
}

impl fmt::Display for RhythmReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        writeln!(
            f,
            "rhythm    | ref ep | alg ep | episode Se | episode +P | ref min | duration Se | duration +P"
        )?;
        for (k, s) in self.gross() {
            writeln!(
                f,
                "{:<9} | {:>6} | {:>6} | {:>10} | {:>10} | {:>7.1} | {:>11} | {:>11}",
                k.key(),
                s.reference,
                s.algorithm,
                p(s.episode_se()),
                p(s.episode_ppv()),
                s.reference_s / 60.0,
                p(s.duration_se()),
                p(s.duration_ppv())
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::wfdb::AnnotationCode;

    fn span(rhythm: ScoredRhythm, start_s: f64, end_s: f64) -> Span {
        Span {
            rhythm,
            start_s,
            end_s,
        }
    }

    #[test]
    fn rhythm_labels_last_to_the_next_label_and_long_rr_intervals_are_pauses() {
        let plus = AnnotationCode(28);
        let normal = AnnotationCode(1);
        assert_eq!(plus.symbol(), "+");
        let ann = |sample: u64, code: AnnotationCode, aux: Option<&str>| Annotation {
            sample,
            code,
            subtype: 0,
            chan: 0,
            num: 0,
            aux: aux.map(str::to_string),
        };
        let annotations = vec![
            ann(0, plus, Some("(N")),
            ann(10, normal, None),
            ann(100, plus, Some("(AFIB\0")),
            ann(110, normal, None),
            ann(200, normal, None),
            ann(300, plus, Some("(N")),
            ann(500, normal, None),
            ann(900, plus, Some("(VT")),
        ];
        let spans = reference_spans(&annotations, 100.0, 10.0, 2.0);
        assert_eq!(
            spans,
            vec![
                span(ScoredRhythm::Af, 1.0, 3.0),
                span(ScoredRhythm::Vt, 9.0, 10.0),
                span(ScoredRhythm::Pause, 2.0, 5.0),
            ]
        );
    }

    #[test]
    fn no_pause_is_scored_across_ventricular_flutter() {
        let normal = AnnotationCode(1);
        let (vf_on, vf_off) = (AnnotationCode(32), AnnotationCode(33));
        assert_eq!((vf_on.symbol(), vf_off.symbol()), ("[", "]"));
        let ann = |sample: u64, code: AnnotationCode| Annotation {
            sample,
            code,
            subtype: 0,
            chan: 0,
            num: 0,
            aux: None,
        };
        // Beats at 0.1 and 0.5 s, flutter from 0.6 to 1.8 s, beats at 2.0 and
        // 2.4 s, then a real pause to 5.0 s.
        let annotations = vec![
            ann(10, normal),
            ann(50, normal),
            ann(60, vf_on),
            ann(180, vf_off),
            ann(200, normal),
            ann(240, normal),
            ann(500, normal),
        ];
        assert_eq!(vf_spans(&annotations, 100.0), vec![(0.6, 1.8)]);
        let spans = reference_spans(&annotations, 100.0, 10.0, 1.0);
        assert_eq!(spans, vec![span(ScoredRhythm::Pause, 2.4, 5.0)]);
        // The algorithm's pauses overlapping the flutter are dropped too.
        let algorithm = vec![
            span(ScoredRhythm::Pause, 0.5, 2.0),
            span(ScoredRhythm::Vt, 0.5, 2.0),
            span(ScoredRhythm::Pause, 2.4, 5.0),
        ];
        assert_eq!(
            without_pauses_in_vf(algorithm, &[(0.6, 1.8)]),
            vec![
                span(ScoredRhythm::Vt, 0.5, 2.0),
                span(ScoredRhythm::Pause, 2.4, 5.0)
            ]
        );
        // A flutter still open at the end lasts to the end.
        assert_eq!(
            vf_spans(&annotations[..3], 100.0),
            vec![(0.6, f64::INFINITY)]
        );
    }

    #[test]
    fn overlap_decides_episodes_and_time_decides_durations() {
        let reference = [
            span(ScoredRhythm::Af, 400.0, 500.0),
            span(ScoredRhythm::Af, 600.0, 700.0),
        ];
        let algorithm = [
            span(ScoredRhythm::Af, 450.0, 550.0),
            span(ScoredRhythm::Af, 800.0, 820.0),
        ];
        let s = score_rhythms(&reference, &algorithm, 300.0, 1000.0)[&ScoredRhythm::Af];
        assert_eq!((s.reference, s.detected), (2, 1));
        assert_eq!((s.algorithm, s.true_algorithm), (2, 1));
        assert_eq!(s.episode_se(), Some(50.0));
        assert_eq!(s.episode_ppv(), Some(50.0));
        assert!((s.duration_se().unwrap_or(0.0) - 25.0).abs() < 1e-9);
        assert!((s.duration_ppv().unwrap_or(0.0) - 50.0 / 120.0 * 100.0).abs() < 1e-9);
    }

    #[test]
    fn listed_episodes_are_matched_as_they_are_counted() {
        let reference = [
            span(ScoredRhythm::Af, 400.0, 500.0),
            span(ScoredRhythm::Af, 600.0, 700.0),
            span(ScoredRhythm::Pause, 250.0, 252.5),
        ];
        let algorithm = [
            span(ScoredRhythm::Af, 450.0, 550.0),
            span(ScoredRhythm::Af, 800.0, 820.0),
            span(ScoredRhythm::Pause, 900.0, 902.0),
        ];
        let listed = list_episodes(&reference, &algorithm, 300.0, 1000.0);
        let rows: Vec<(EpisodeSource, ScoredRhythm, f64, bool)> = listed
            .iter()
            .map(|e| (e.source, e.span.rhythm, e.span.start_s, e.matched))
            .collect();
        use EpisodeSource::{Algorithm, Reference};
        // In time order; the pause inside the learning period is not listed.
        assert_eq!(
            rows,
            [
                (Reference, ScoredRhythm::Af, 400.0, true),
                (Algorithm, ScoredRhythm::Af, 450.0, true),
                (Reference, ScoredRhythm::Af, 600.0, false),
                (Algorithm, ScoredRhythm::Af, 800.0, false),
                (Algorithm, ScoredRhythm::Pause, 900.0, false),
            ]
        );
        let stats = score_rhythms(&reference, &algorithm, 300.0, 1000.0);
        for (rhythm, s) in stats {
            let count = |source: EpisodeSource, matched: bool| {
                listed
                    .iter()
                    .filter(|e| e.span.rhythm == rhythm && e.source == source)
                    .filter(|e| !matched || e.matched)
                    .count() as u64
            };
            assert_eq!(count(Reference, false), s.reference, "{rhythm:?}");
            assert_eq!(count(Reference, true), s.detected, "{rhythm:?}");
            assert_eq!(count(Algorithm, false), s.algorithm, "{rhythm:?}");
            assert_eq!(count(Algorithm, true), s.true_algorithm, "{rhythm:?}");
        }
    }

    #[test]
    fn the_learning_period_is_not_scored_and_empty_rates_are_undefined() {
        let reference = [span(ScoredRhythm::Vt, 100.0, 200.0)];
        let algorithm = [span(ScoredRhythm::Vt, 250.0, 350.0)];
        let s = score_rhythms(&reference, &algorithm, 300.0, 1000.0)[&ScoredRhythm::Vt];
        assert_eq!((s.reference, s.algorithm, s.true_algorithm), (0, 1, 0));
        assert_eq!(s.episode_se(), None);
        assert_eq!(s.episode_ppv(), Some(0.0));
        assert!((s.algorithm_s - 50.0).abs() < 1e-9);
    }

    #[test]
    fn gross_statistics_pool_counts_over_records() {
        let rec = |name: &str, detected: u64| RhythmRecordScore {
            record: name.into(),
            stats: [(
                ScoredRhythm::Pause,
                EpisodeStats {
                    reference: 2,
                    detected,
                    algorithm: detected,
                    true_algorithm: detected,
                    ..Default::default()
                },
            )]
            .into(),
        };
        let report = RhythmReport {
            records: vec![rec("a", 2), rec("b", 0)],
        };
        let g = report.gross()[&ScoredRhythm::Pause];
        assert_eq!(g.episode_se(), Some(50.0));
        let j = report.to_json();
        assert_eq!(j["gross"]["pause"]["episode_se"], 50.0);
        assert_eq!(j["records"][1]["record"], "b");
    }
}
