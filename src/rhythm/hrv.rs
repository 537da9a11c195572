//! Heart-rate variability in the time domain, as the Task Force of the ESC
//! and NASPE (1996, *Circulation* 93:1043) defines it: SDNN, SDANN, SDNN
//! index, RMSSD and pNN50 over the NN intervals of a recording.
//!
//! **NN intervals.** The interval between two consecutive beats is an NN
//! interval when both beats are normal (class N; an unreadable beat, `None`,
//! is not), it lies within [`MIN_NN_MS`]–[`MAX_NN_MS`], and it is no artefact:
//! it differs by at most [`MAX_DEVIATION`] (20 %) from the median of the
//! candidate intervals around it (up to [`MEDIAN_NEIGHBOURS`] on each side,
//! ending within [`MEDIAN_SPAN_US`] of it; candidates are the intervals that
//! pass the first two rules). A centred running median, rather than the
//! common "within 20 % of the previous accepted interval": that rule locks
//! out everything after a real step in rate (or after an artefact taken as
//! the first interval), because the reference only moves with intervals it
//! accepts; a median of the neighbours follows a real change after a few
//! beats, a single missed or extra beat cannot become the reference, and the
//! first intervals of a recording are judged like the others. The summary
//! computes HRV over stored beats after the fact, so looking ahead is free.
//!
//! **Statistics.** Standard deviations are sample SDs (divided by n − 1), as
//! NeuroKit2 and hrv-analysis compute them. RMSSD and pNN50 use only
//! successive differences of *adjacent* NN intervals (sharing a beat): an
//! excluded interval between two NN intervals leaves that difference out.
//! pNN50 is the count of those differences above 50 ms divided by the number
//! of NN intervals, in percent (the Task Force's Table 1; NeuroKit2 agrees
//! on an uninterrupted series, hrv-analysis divides by the differences unless
//! told otherwise). SDANN and the SDNN index use consecutive 5-minute
//! segments anchored at the first beat's time, each NN interval in the
//! segment of the beat that ends it; a segment counts when its NN intervals
//! cover at least half of it ([`MIN_SEGMENT_COVERAGE`]), so signal loss or
//! the recording's last minutes do not make a segment of a few beats. The
//! numbers are checked against NeuroKit2 and hrv-analysis on a fixed series
//! (`tests/fixtures/hrv/`, written by `tests/scripts/hrv-reference.py`).

use super::RhythmBeat;
use crate::formats::wfdb::AamiClass;

/// Shortest NN interval, ms (200 /min).
pub const MIN_NN_MS: f64 = 300.0;
/// Longest NN interval, ms (30 /min); longer ones are pauses or gaps.
pub const MAX_NN_MS: f64 = 2000.0;
/// Largest relative deviation of an NN interval from the median around it.
pub const MAX_DEVIATION: f64 = 0.2;
/// Candidate intervals on each side that the median around an interval is taken over.
pub const MEDIAN_NEIGHBOURS: usize = 5;
/// Neighbours ending further than this from an interval's end are not in its median, µs.
pub const MEDIAN_SPAN_US: i64 = 60_000_000;
/// Length of the segments of SDANN and the SDNN index, µs (5 min).
pub const SEGMENT_US: i64 = 300_000_000;
/// Share of a segment its NN intervals must cover for it to count.
pub const MIN_SEGMENT_COVERAGE: f64 = 0.5;
/// Fewest NN intervals the measures are computed from.
pub const MIN_NN_INTERVALS: usize = 30;

/// Time-domain HRV of a recording (or a range of it).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct TimeDomainHrv {
    /// NN intervals the measures are computed from.
    pub nn_intervals: usize,
    /// Successive differences of adjacent NN intervals (RMSSD's and pNN50's).
    pub nn_pairs: usize,
    /// Mean NN interval, ms.
    pub mean_nn_ms: f64,
    /// Sample SD of the NN intervals, ms.
    pub sdnn_ms: f64,
    /// Sample SD of the 5-minute segments' mean NN intervals, ms (fewer than 2 segments: `None`).
    pub sdann_ms: Option<f64>,
    /// Mean of the 5-minute segments' sample SDs of NN intervals, ms (fewer than 2 segments: `None`).
    pub sdnn_index_ms: Option<f64>,
    /// 5-minute segments that counted for SDANN and the SDNN index.
    pub segments: usize,
    /// Root mean square of the successive differences, ms.
    pub rmssd_ms: f64,
    /// Successive differences above 50 ms, % of the NN intervals.
    pub pnn50: f64,
}

/// One NN interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NnInterval {
    /// R time of the beat that ends it, µs.
    pub end_us: i64,
    /// Its length, ms.
    pub ms: f64,
    /// It starts at the beat that ends the NN interval before it in the list.
    pub follows_previous: bool,
}

/// An interval between two consecutive N beats within the physiological range.
struct Candidate {
    /// Index of the beat that ends it.
    end_beat: usize,
    end_us: i64,
    ms: f64,
}

fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// The NN intervals of `beats` (in time order), by the rules of the module documentation.
pub fn nn_intervals(beats: &[RhythmBeat]) -> Vec<NnInterval> {
    let normal = |b: &RhythmBeat| b.class == Some(AamiClass::N);
    let candidates: Vec<Candidate> = beats
        .windows(2)
        .enumerate()
        .filter(|(_, w)| normal(&w[0]) && normal(&w[1]))
        .map(|(i, w)| Candidate {
            end_beat: i + 1,
            end_us: w[1].r_time_us,
            ms: (w[1].r_time_us - w[0].r_time_us) as f64 / 1000.0,
        })
        .filter(|c| (MIN_NN_MS..=MAX_NN_MS).contains(&c.ms))
        .collect();
    let mut out = Vec::with_capacity(candidates.len());
    let mut previous_end: Option<usize> = None;
    let mut around = Vec::with_capacity(2 * MEDIAN_NEIGHBOURS);
    for (i, c) in candidates.iter().enumerate() {
        around.clear();
        let lo = i.saturating_sub(MEDIAN_NEIGHBOURS);
        let hi = (i + MEDIAN_NEIGHBOURS + 1).min(candidates.len());
        around.extend(
            (lo..hi)
                .filter(|&j| j != i && (candidates[j].end_us - c.end_us).abs() <= MEDIAN_SPAN_US)
                .map(|j| candidates[j].ms),
        );
        // An interval with no neighbour to compare with is taken as it is.
        let artefact = median(&mut around).is_some_and(|m| (c.ms - m).abs() > MAX_DEVIATION * m);
        if artefact {
            continue;
        }
        out.push(NnInterval {
            end_us: c.end_us,
            ms: c.ms,
            follows_previous: previous_end == Some(c.end_beat - 1),
        });
        previous_end = Some(c.end_beat);
    }
    out
}

/// Mean and sample SD (n − 1) of `values`; the SD is `None` below two values.
fn mean_sd(values: impl Iterator<Item = f64> + Clone) -> Option<(f64, Option<f64>)> {
    let (n, sum) = values
        .clone()
        .fold((0usize, 0.0), |(n, s), v| (n + 1, s + v));
    if n == 0 {
        return None;
    }
    let mean = sum / n as f64;
    let sd = (n >= 2).then(|| {
        let ss: f64 = values.map(|v| (v - mean) * (v - mean)).sum();
        (ss / (n - 1) as f64).sqrt()
    });
    Some((mean, sd))
}

/// Time-domain HRV of `beats` (in time order); `None` with fewer than
/// [`MIN_NN_INTERVALS`] NN intervals or no two adjacent ones.
pub fn time_domain(beats: &[RhythmBeat]) -> Option<TimeDomainHrv> {
    let nn = nn_intervals(beats);
    let t0 = beats.first()?.r_time_us;
    if nn.len() < MIN_NN_INTERVALS {
        return None;
    }
    let (mean_nn_ms, sdnn_ms) = mean_sd(nn.iter().map(|i| i.ms))?;
    let diffs: Vec<f64> = nn
        .windows(2)
        .filter(|w| w[1].follows_previous)
        .map(|w| w[1].ms - w[0].ms)
        .collect();
    if diffs.is_empty() {
        return None;
    }
    let rmssd_ms = (diffs.iter().map(|d| d * d).sum::<f64>() / diffs.len() as f64).sqrt();
    let nn50 = diffs.iter().filter(|d| d.abs() > 50.0).count();
    // 5-minute segments: the NN intervals are in time order, so each segment is one stretch.
    let mut means = Vec::new();
    let mut sds = Vec::new();
    let segment = |i: &NnInterval| (i.end_us - t0).div_euclid(SEGMENT_US);
    for part in nn.chunk_by(|a, b| segment(a) == segment(b)) {
        let covered_us = part.iter().map(|i| i.ms * 1000.0).sum::<f64>();
        if covered_us < MIN_SEGMENT_COVERAGE * SEGMENT_US as f64 {
            continue;
        }
        if let Some((mean, Some(sd))) = mean_sd(part.iter().map(|i| i.ms)) {
            means.push(mean);
            sds.push(sd);
        }
    }
    let (sdann_ms, sdnn_index_ms) = if means.len() >= 2 {
        (
            mean_sd(means.iter().copied()).and_then(|(_, sd)| sd),
            mean_sd(sds.iter().copied()).map(|(mean, _)| mean),
        )
    } else {
        (None, None)
    };
    Some(TimeDomainHrv {
        nn_intervals: nn.len(),
        nn_pairs: diffs.len(),
        mean_nn_ms,
        sdnn_ms: sdnn_ms?,
        sdann_ms,
        sdnn_index_ms,
        segments: means.len(),
        rmssd_ms,
        pnn50: 100.0 * nn50 as f64 / nn.len() as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use AamiClass::{N, V};

    /// 2025-01-01 00:00 UTC.
    const T0: i64 = 1_735_689_600_000_000;

    /// Beats from T0 at the given intervals (ms) with the given classes: the
    /// first beat's class, then each interval and the class of the beat ending it.
    fn beats(first: Option<AamiClass>, seq: &[(f64, Option<AamiClass>)]) -> Vec<RhythmBeat> {
        let mut t = T0;
        let mut out = vec![RhythmBeat {
            r_time_us: t,
            class: first,
        }];
        for &(ms, class) in seq {
            t += (ms * 1000.0).round() as i64;
            out.push(RhythmBeat {
                r_time_us: t,
                class,
            });
        }
        out
    }

    fn normal(intervals: &[f64]) -> Vec<RhythmBeat> {
        let seq: Vec<_> = intervals.iter().map(|&ms| (ms, Some(N))).collect();
        beats(Some(N), &seq)
    }

    fn close(ours: f64, theirs: f64, what: &str) {
        let rel = (ours - theirs).abs() / theirs.abs().max(1e-12);
        assert!(
            rel < 1e-9,
            "{what}: ours {ours}, reference {theirs} (rel {rel:e})"
        );
    }

    #[test]
    fn matches_neurokit2_and_hrv_analysis_on_the_reference_series() {
        let text = include_str!("../../tests/fixtures/hrv/nn_intervals.txt");
        let intervals: Vec<f64> = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| l.trim().parse().expect("an interval in ms"))
            .collect();
        let reference: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/hrv/reference.json"))
                .expect("reference.json");
        let nk = &reference["neurokit2"];
        let get = |v: &serde_json::Value, k: &str| {
            v[k].as_f64()
                .unwrap_or_else(|| panic!("{k} missing in reference.json"))
        };
        assert!(intervals.len() >= 1200, "at least 20 minutes of intervals");
        let h = time_domain(&normal(&intervals)).expect("enough intervals");
        assert_eq!(h.nn_intervals, intervals.len(), "the series is clean");
        assert_eq!(h.nn_pairs, intervals.len() - 1);
        close(h.mean_nn_ms, get(nk, "MeanNN"), "mean NN (NeuroKit2)");
        close(h.sdnn_ms, get(nk, "SDNN"), "SDNN (NeuroKit2)");
        close(h.rmssd_ms, get(nk, "RMSSD"), "RMSSD (NeuroKit2)");
        close(h.pnn50, get(nk, "pNN50"), "pNN50 (NeuroKit2)");
        // NeuroKit2's windows are ours on this series (see hrv-reference.py).
        assert_eq!(h.segments as f64, get(&reference, "windows_5min"));
        close(h.sdann_ms.unwrap_or(f64::NAN), get(nk, "SDANN5"), "SDANN");
        close(
            h.sdnn_index_ms.unwrap_or(f64::NAN),
            get(nk, "SDNNI5"),
            "SDNN index",
        );
        let ha = &reference["hrv-analysis"];
        if !ha.is_null() {
            close(h.mean_nn_ms, get(ha, "mean_nni"), "mean NN (hrv-analysis)");
            close(h.sdnn_ms, get(ha, "sdnn"), "SDNN (hrv-analysis)");
            close(h.rmssd_ms, get(ha, "rmssd"), "RMSSD (hrv-analysis)");
            close(
                h.pnn50,
                get(ha, "pnni_50_of_intervals"),
                "pNN50 (hrv-analysis)",
            );
            // Its default divides by the differences, one fewer.
            let n = h.nn_intervals as f64;
            close(
                h.pnn50 * n / (n - 1.0),
                get(ha, "pnni_50_of_differences"),
                "pNN50 per difference (hrv-analysis)",
            );
        }
    }

    /// 40 N intervals alternating 800 and 860 ms: every successive difference is 60 ms.
    fn alternating(n: usize) -> Vec<(f64, Option<AamiClass>)> {
        (0..n)
            .map(|i| (if i % 2 == 0 { 800.0 } else { 860.0 }, Some(N)))
            .collect()
    }

    #[test]
    fn a_v_beat_takes_its_two_intervals_and_the_difference_across_it() {
        // Intervals 800/860 alternating, so every difference is 60 ms; the
        // NN intervals on either side of the V beat (short coupling,
        // compensatory pause) are both 860 ms: counting their difference (0)
        // would lower RMSSD and pNN50.
        let mut seq = alternating(20);
        seq.push((500.0, Some(V)));
        seq.push((1100.0, Some(N)));
        seq.push((860.0, Some(N)));
        seq.extend(alternating(20));
        let b = beats(Some(N), &seq);
        let h = time_domain(&b).expect("enough intervals");
        assert_eq!(
            h.nn_intervals,
            seq.len() - 2,
            "the V beat's two intervals are out"
        );
        assert_eq!(
            h.nn_pairs,
            h.nn_intervals - 2,
            "no difference across the V beat"
        );
        assert!((h.rmssd_ms - 60.0).abs() < 1e-9, "{}", h.rmssd_ms);
        let pairs = h.nn_pairs as f64;
        assert!((h.pnn50 - 100.0 * pairs / h.nn_intervals as f64).abs() < 1e-9);
        let starts: Vec<usize> = nn_intervals(&b)
            .iter()
            .enumerate()
            .filter(|(_, i)| !i.follows_previous)
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            starts,
            [0, 20],
            "the first NN after the V beat starts a new run"
        );
    }

    #[test]
    fn an_unreadable_beat_is_excluded_like_a_v_beat() {
        let mut seq = alternating(20);
        seq.push((800.0, None));
        seq.push((800.0, Some(N)));
        seq.extend(alternating(20)[1..].iter().copied());
        let h = time_domain(&beats(Some(N), &seq)).expect("enough intervals");
        assert_eq!(h.nn_intervals, seq.len() - 2);
        assert_eq!(h.nn_pairs, h.nn_intervals - 2);
        assert!((h.rmssd_ms - 60.0).abs() < 1e-9, "{}", h.rmssd_ms);
        // An unreadable first beat takes only the first interval.
        let first = beats(None, &alternating(40));
        assert_eq!(nn_intervals(&first).len(), 39);
    }

    #[test]
    fn gaps_and_out_of_range_intervals_are_excluded() {
        let mut seq = alternating(20);
        seq.push((2500.0, Some(N))); // a gap: more than 2 s
        seq.extend(alternating(20));
        let h = time_domain(&beats(Some(N), &seq)).expect("enough intervals");
        assert_eq!(h.nn_intervals, 40);
        assert_eq!(h.nn_pairs, 38);
        assert!((h.mean_nn_ms - 830.0).abs() < 1e-9, "{}", h.mean_nn_ms);
        // 250 ms is below the range.
        let mut seq = alternating(20);
        seq.push((250.0, Some(N)));
        assert_eq!(nn_intervals(&beats(Some(N), &seq)).len(), 20);
    }

    #[test]
    fn a_missed_beat_is_an_artefact_and_a_real_change_in_rate_is_followed() {
        // A missed beat doubles one interval (1600 ms, within the range).
        let mut seq = alternating(20);
        seq.push((1660.0, Some(N)));
        seq.extend(alternating(20));
        let nn = nn_intervals(&beats(Some(N), &seq));
        assert_eq!(nn.len(), 40, "the doubled interval is out");
        assert!(nn.iter().all(|i| i.ms < 900.0));
        // A step from 1000 to 600 ms (−40 %): only the interval on each side
        // of the step is out (its median is halfway); "within 20 % of the
        // previous accepted interval" would refuse all 30 after it.
        let seq: Vec<_> = (0..60)
            .map(|i| (if i < 30 { 1000.0 } else { 600.0 }, Some(N)))
            .collect();
        let nn = nn_intervals(&beats(Some(N), &seq));
        let count = |ms: f64| nn.iter().filter(|i| i.ms == ms).count();
        assert_eq!((count(1000.0), count(600.0)), (29, 29));
    }

    #[test]
    fn too_few_intervals_give_nothing() {
        let just = normal(&vec![800.0; MIN_NN_INTERVALS]);
        assert!(time_domain(&just).is_some());
        let short = normal(&vec![800.0; MIN_NN_INTERVALS - 1]);
        assert_eq!(time_domain(&short), None);
        assert_eq!(time_domain(&[]), None);
        // Many beats, but V every third beat: no NN interval has an NN neighbour.
        let seq: Vec<_> = (0..90)
            .map(|i| (800.0, Some(if i % 3 == 2 { V } else { N })))
            .collect();
        let b = beats(Some(V), &seq);
        assert_eq!(nn_intervals(&b).len(), 30);
        assert_eq!(time_domain(&b), None, "no two adjacent NN intervals");
    }

    #[test]
    fn five_minute_segments_need_half_their_length_covered() {
        // 12 min at 1 s, then 100 intervals of 850 ms. Each interval is in the
        // segment of the beat ending it: [0, 5) min holds the 299 ending
        // before 300 s, [5, 10) 300, and [10, 15) the 121 of 1 s ending at
        // 600–720 s and the 100 of 850 ms (206 s covered: it counts).
        let mut seq: Vec<_> = (0..720).map(|_| (1000.0, Some(N))).collect();
        seq.extend((0..100).map(|_| (850.0, Some(N))));
        let h = time_domain(&beats(Some(N), &seq)).expect("enough intervals");
        assert_eq!((h.nn_intervals, h.segments), (820, 3));
        let third: f64 = (121.0 * 1000.0 + 100.0 * 850.0) / 221.0;
        let mean: f64 = (2000.0 + third) / 3.0;
        let sdann = ((2.0 * (1000.0 - mean).powi(2) + (third - mean).powi(2)) / 2.0).sqrt();
        assert!((h.sdann_ms.unwrap_or(0.0) - sdann).abs() < 1e-9, "{h:?}");
        // The first two segments do not vary: the index is the third's SD over three.
        let ss = 121.0 * (1000.0 - third).powi(2) + 100.0 * (850.0 - third).powi(2);
        let sd3 = (ss / 220.0).sqrt();
        assert!(
            (h.sdnn_index_ms.unwrap_or(0.0) - sd3 / 3.0).abs() < 1e-9,
            "{h:?}"
        );
        // 7 minutes: the second segment (121 s) does not count, and one is too few.
        let h = time_domain(&normal(&[1000.0; 420])).expect("enough intervals");
        assert_eq!((h.segments, h.sdann_ms, h.sdnn_index_ms), (1, None, None));
    }
}
