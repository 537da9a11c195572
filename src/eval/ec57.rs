//! Beat-by-beat classification statistics per ANSI/AAMI EC57, computed as
//! PhysioNet's `bxb` computes them (its `-S` report with SVEB statistics).
//!
//! Each record's reference and algorithm beats are paired one-to-one within
//! [`MATCH_WINDOW_S`] and tallied in a [`Confusion`] matrix. Rows are the
//! reference class (`N S V F Q`) plus `O`, an algorithm beat with no reference
//! beat (false detection); columns are the algorithm's class (`n s v f q`)
//! plus `x`, a beat the algorithm declined to classify, and `o`, a reference
//! beat with no algorithm beat (missed). `bxb`'s `X` row (algorithm beats in
//! reference-marked shutdown) has no counterpart here: the reference has no
//! unreadable stretches.
//!
//! Cell names below are row letter then column letter: `Nv` is reference N
//! called V, `Vo` a missed V, `Ov` a false detection called V, `Sx` an S the
//! algorithm found but called unreadable.

use super::detection::{MATCH_WINDOW_S, match_beats};
use crate::formats::wfdb::AamiClass;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Value, json};
use std::fmt;

/// What the analyser said about one detected beat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlgorithmLabel {
    /// The beat was classified into an AAMI class.
    Class(AamiClass),
    /// The beat was detected but not classified: refused by the quality gate,
    /// or the classifier abstained (`bxb`'s `x` column).
    Unreadable,
}

/// Rows: the five classes, then "no reference beat".
const ROWS: usize = 6;
/// Columns: the five classes, then unreadable, then missed.
const COLUMNS: usize = 7;
const ROW_NONE: usize = 5;
const COLUMN_UNREADABLE: usize = 5;
const COLUMN_MISSED: usize = 6;

/// Beat-by-beat confusion counts of one record or of several pooled with `+`.
///
/// Serialises as nested maps, row then column: rows `"N" "S" "V" "F" "Q"` and
/// `"none"` (false detections); columns `"N" "S" "V" "F" "Q"`, `"unreadable"`
/// and `"missed"` (absent from the `"none"` row, where it cannot occur).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Confusion {
    counts: [[u64; COLUMNS]; ROWS],
}

fn row_index(reference: Option<AamiClass>) -> usize {
    reference.map_or(ROW_NONE, AamiClass::index)
}

fn column_index(algorithm: Option<AlgorithmLabel>) -> usize {
    match algorithm {
        Some(AlgorithmLabel::Class(c)) => c.index(),
        Some(AlgorithmLabel::Unreadable) => COLUMN_UNREADABLE,
        None => COLUMN_MISSED,
    }
}

impl Confusion {
    /// Adds `n` pairs to a cell: `reference` `None` is the false-detection row,
    /// `algorithm` `None` the missed column; both `None` is not a cell and is ignored.
    pub fn tally(
        &mut self,
        reference: Option<AamiClass>,
        algorithm: Option<AlgorithmLabel>,
        n: u64,
    ) {
        if reference.is_none() && algorithm.is_none() {
            return;
        }
        self.counts[row_index(reference)][column_index(algorithm)] += n;
    }

    /// The count of one cell, addressed as in [`Confusion::tally`] (0 for the non-cell).
    pub fn count(&self, reference: Option<AamiClass>, algorithm: Option<AlgorithmLabel>) -> u64 {
        if reference.is_none() && algorithm.is_none() {
            return 0;
        }
        self.counts[row_index(reference)][column_index(algorithm)]
    }

    /// Reference beats tallied (rows N to Q, every column, missed included).
    pub fn reference_beats(&self) -> u64 {
        self.counts[..ROW_NONE].iter().flatten().sum()
    }

    fn cell(&self, row: usize, column: usize) -> u64 {
        self.counts[row][column]
    }

    fn row_sum(&self, row: usize, columns: &[usize]) -> u64 {
        columns.iter().map(|&c| self.counts[row][c]).sum()
    }
}

impl std::ops::AddAssign<&Confusion> for Confusion {
    fn add_assign(&mut self, other: &Confusion) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            for (a, b) in mine.iter_mut().zip(theirs) {
                *a += b;
            }
        }
    }
}

impl std::ops::AddAssign for Confusion {
    fn add_assign(&mut self, other: Confusion) {
        *self += &other;
    }
}

impl std::ops::Add for Confusion {
    type Output = Confusion;
    fn add(mut self, other: Confusion) -> Confusion {
        self += &other;
        self
    }
}

const ROW_KEYS: [&str; ROWS] = ["N", "S", "V", "F", "Q", "none"];
const COLUMN_KEYS: [&str; COLUMNS] = ["N", "S", "V", "F", "Q", "unreadable", "missed"];

struct ConfusionRow<'a> {
    counts: &'a [u64; COLUMNS],
    with_missed: bool,
}

impl Serialize for ConfusionRow<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let columns = if self.with_missed {
            COLUMNS
        } else {
            COLUMN_MISSED
        };
        let mut map = serializer.serialize_map(Some(columns))?;
        for (key, count) in COLUMN_KEYS.iter().zip(self.counts).take(columns) {
            map.serialize_entry(key, count)?;
        }
        map.end()
    }
}

impl Serialize for Confusion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(ROWS))?;
        for (row, (key, counts)) in ROW_KEYS.iter().zip(&self.counts).enumerate() {
            let with_missed = row != ROW_NONE;
            map.serialize_entry(
                key,
                &ConfusionRow {
                    counts,
                    with_missed,
                },
            )?;
        }
        map.end()
    }
}

impl fmt::Display for Confusion {
    /// `bxb`'s table: reference rows `N S V F Q O`, algorithm columns `n s v f q x o`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Reference \\ algorithm")?;
        write!(f, "   ")?;
        for column in ["n", "s", "v", "f", "q", "x", "o"] {
            write!(f, " {column:>7}")?;
        }
        writeln!(f)?;
        for (row, letter) in ["N", "S", "V", "F", "Q", "O"].iter().enumerate() {
            write!(f, " {letter} ")?;
            for column in 0..COLUMNS {
                if row == ROW_NONE && column == COLUMN_MISSED {
                    write!(f, " {:>7}", "")?;
                } else {
                    write!(f, " {:>7}", self.cell(row, column))?;
                }
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

const N: usize = 0;
const S: usize = 1;
const V: usize = 2;
const F: usize = 3;
const Q: usize = 4;
const CLASSES: [usize; 5] = [N, S, V, F, Q];
const NON_V_CLASSES: [usize; 4] = [N, S, F, Q];

/// `100 * numerator / denominator`, `None` when the denominator is 0.
fn percent(numerator: u64, denominator: u64) -> Option<f64> {
    (denominator > 0).then(|| 100.0 * numerator as f64 / denominator as f64)
}

/// The EC57 statistics of one confusion matrix, rates in percent; `None`
/// (JSON `null`, `-` in tables) where a denominator is 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Ec57Stats {
    /// VEB sensitivity TP / (TP + FN), with TP = Vv and
    /// FN = Vn + Vs + Vf + Vq + Vx + Vo.
    pub veb_se: Option<f64>,
    /// VEB positive predictivity TP / (TP + FP), with FP = Nv + Sv + Ov
    /// (F and Q beats called V are no VEB false positives, as in `bxb`).
    pub veb_ppv: Option<f64>,
    /// VEB false positive rate FP / (TN + FP) as `bxb` defines it, with
    /// TN = every cell of rows N, S, F, Q and O in columns n, s, f, q; that is,
    /// non-V beats the algorithm found and did not call V, false detections
    /// included, unreadable and missed beats excluded (Fv and Qv count as neither).
    pub veb_fpr: Option<f64>,
    /// SVEB sensitivity TP / (TP + FN), with TP = Ss and
    /// FN = Sn + Sv + Sf + Sq + Sx + So.
    pub sveb_se: Option<f64>,
    /// SVEB positive predictivity TP / (TP + FP), with FP = Ns + Vs + Fs + Os
    /// (Q beats called S are no SVEB false positives, as in `bxb`).
    pub sveb_ppv: Option<f64>,
    /// Normal beats flagged, percent: (Ns + Nv + Nf + Nq) / (Nn + Ns + Nv + Nf + Nq),
    /// i.e. among reference N beats the algorithm classified (unreadable and
    /// missed N beats excluded), those it called anything but N.
    pub n_flagged: Option<f64>,
    /// Normal beats flagged (Ns + Nv + Nf + Nq) per hour of scored time.
    pub n_flagged_per_hour: Option<f64>,
}

impl Ec57Stats {
    /// The statistics of `confusion`, tallied over `scored_seconds` of signal.
    pub fn from_confusion(confusion: &Confusion, scored_seconds: f64) -> Self {
        let c = confusion;
        let veb_tp = c.cell(V, V);
        let veb_fn = c.row_sum(V, &[N, S, F, Q, COLUMN_UNREADABLE, COLUMN_MISSED]);
        let veb_fp = c.cell(N, V) + c.cell(S, V) + c.cell(ROW_NONE, V);
        let veb_tn: u64 = [N, S, F, Q, ROW_NONE]
            .iter()
            .map(|&row| c.row_sum(row, &NON_V_CLASSES))
            .sum();
        let sveb_tp = c.cell(S, S);
        let sveb_fn = c.row_sum(S, &[N, V, F, Q, COLUMN_UNREADABLE, COLUMN_MISSED]);
        let sveb_fp = c.cell(N, S) + c.cell(V, S) + c.cell(F, S) + c.cell(ROW_NONE, S);
        let n_flagged = c.row_sum(N, &[S, V, F, Q]);
        let n_classified = c.row_sum(N, &CLASSES);
        let hours = scored_seconds / 3600.0;
        Ec57Stats {
            veb_se: percent(veb_tp, veb_tp + veb_fn),
            veb_ppv: percent(veb_tp, veb_tp + veb_fp),
            veb_fpr: percent(veb_fp, veb_tn + veb_fp),
            sveb_se: percent(sveb_tp, sveb_tp + sveb_fn),
            sveb_ppv: percent(sveb_tp, sveb_tp + sveb_fp),
            n_flagged: percent(n_flagged, n_classified),
            n_flagged_per_hour: (hours > 0.0).then(|| n_flagged as f64 / hours),
        }
    }

    /// Each statistic averaged over `stats`, skipping the entries where it is
    /// undefined (`bxb`'s `sumstats` record average); `None` if none defines it.
    pub fn average<'a>(stats: impl IntoIterator<Item = &'a Ec57Stats>) -> Self {
        let stats: Vec<&Ec57Stats> = stats.into_iter().collect();
        let mean = |get: fn(&Ec57Stats) -> Option<f64>| {
            let defined: Vec<f64> = stats.iter().filter_map(|s| get(s)).collect();
            (!defined.is_empty()).then(|| defined.iter().sum::<f64>() / defined.len() as f64)
        };
        Ec57Stats {
            veb_se: mean(|s| s.veb_se),
            veb_ppv: mean(|s| s.veb_ppv),
            veb_fpr: mean(|s| s.veb_fpr),
            sveb_se: mean(|s| s.sveb_se),
            sveb_ppv: mean(|s| s.sveb_ppv),
            n_flagged: mean(|s| s.n_flagged),
            n_flagged_per_hour: mean(|s| s.n_flagged_per_hour),
        }
    }

    fn to_json_map(self) -> serde_json::Map<String, Value> {
        [
            ("veb_se", self.veb_se),
            ("veb_ppv", self.veb_ppv),
            ("veb_fpr", self.veb_fpr),
            ("sveb_se", self.sveb_se),
            ("sveb_ppv", self.sveb_ppv),
            ("n_flagged", self.n_flagged),
            ("n_flagged_per_hour", self.n_flagged_per_hour),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_string(), json!(value)))
        .collect()
    }
}

/// Scores one record: `reference` beats (AAMI class, sample) against the
/// analyser's `algorithm` beats at sampling rate `fs`, tallying only from
/// `skip_s` seconds on (EC57: 300 s of learning period are not scored).
///
/// Beats are paired one-to-one with [`match_beats`] within
/// round([`MATCH_WINDOW_S`] × fs) samples, over all beats, learning period
/// included; then, following `bxb`, a pair is tallied when its reference beat
/// is at or after the start (even if its algorithm beat lies just before), a
/// missed reference beat when it is at or after the start, and an unpaired
/// algorithm beat (row O) when it is at or after the start. An algorithm beat
/// after the start paired with a reference beat before it is not tallied.
/// Inputs need not be sorted.
pub fn score_record(
    reference: &[(u64, AamiClass)],
    algorithm: &[(u64, AlgorithmLabel)],
    fs: f64,
    skip_s: f64,
) -> Confusion {
    let tolerance = (MATCH_WINDOW_S * fs).round() as u64;
    let start = (skip_s * fs).round() as u64;
    let mut reference = reference.to_vec();
    reference.sort_by_key(|&(sample, _)| sample);
    let mut algorithm = algorithm.to_vec();
    algorithm.sort_by_key(|&(sample, _)| sample);
    let reference_samples: Vec<u64> = reference.iter().map(|&(s, _)| s).collect();
    let algorithm_samples: Vec<u64> = algorithm.iter().map(|&(s, _)| s).collect();
    let matches = match_beats(&reference_samples, &algorithm_samples, tolerance);

    let mut confusion = Confusion::default();
    let mut paired = vec![false; algorithm.len()];
    for (&(sample, class), matched) in reference.iter().zip(&matches) {
        if let Some(k) = *matched {
            paired[k] = true;
        }
        if sample >= start {
            let label = matched
                .and_then(|k| algorithm.get(k))
                .map(|&(_, label)| label);
            confusion.tally(Some(class), label, 1);
        }
    }
    for (&(sample, label), _) in algorithm.iter().zip(&paired).filter(|&(_, &p)| !p) {
        if sample >= start {
            confusion.tally(None, Some(label), 1);
        }
    }
    confusion
}

/// One record's confusion matrix with the signal time it covers.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RecordScore {
    /// Record name.
    pub record: String,
    /// Seconds of signal scored (after the learning period), for per-hour rates.
    pub scored_seconds: f64,
    /// The record's counts, from [`score_record`].
    pub confusion: Confusion,
}

/// EC57 results over a set of records: per record, gross (statistics of the
/// pooled counts) and average (mean of the per-record statistics).
#[derive(Debug, Clone, PartialEq)]
pub struct Ec57Report {
    /// The records, in the order given.
    pub records: Vec<RecordScore>,
    /// Statistics of each record, parallel to `records`.
    pub record_stats: Vec<Ec57Stats>,
    /// Sum of the records' confusion matrices.
    pub gross_confusion: Confusion,
    /// Statistics of `gross_confusion` over the summed scored time.
    pub gross: Ec57Stats,
    /// Per-record statistics averaged over the records that define each.
    pub average: Ec57Stats,
}

impl Ec57Report {
    /// Computes per-record, gross and average statistics of `records`.
    pub fn new(records: Vec<RecordScore>) -> Self {
        let record_stats: Vec<Ec57Stats> = records
            .iter()
            .map(|r| Ec57Stats::from_confusion(&r.confusion, r.scored_seconds))
            .collect();
        let mut gross_confusion = Confusion::default();
        for r in &records {
            gross_confusion += &r.confusion;
        }
        let scored_seconds: f64 = records.iter().map(|r| r.scored_seconds).sum();
        let gross = Ec57Stats::from_confusion(&gross_confusion, scored_seconds);
        let average = Ec57Stats::average(&record_stats);
        Ec57Report {
            records,
            record_stats,
            gross_confusion,
            gross,
            average,
        }
    }

    /// The report as JSON: `records` (each with its statistics, `beats` =
    /// reference beats tallied, and `scored_seconds`), `gross` (statistics and
    /// `confusion`) and `average`; undefined rates are `null`.
    pub fn to_json(&self) -> Value {
        let records: Vec<Value> = self
            .records
            .iter()
            .zip(&self.record_stats)
            .map(|(r, stats)| {
                let mut map = serde_json::Map::new();
                map.insert("record".into(), json!(r.record));
                map.extend(stats.to_json_map());
                map.insert("beats".into(), json!(r.confusion.reference_beats()));
                map.insert("scored_seconds".into(), json!(r.scored_seconds));
                Value::Object(map)
            })
            .collect();
        let mut gross = self.gross.to_json_map();
        gross.insert(
            "confusion".into(),
            serde_json::to_value(self.gross_confusion).unwrap_or(Value::Null),
        );
        json!({
            "records": records,
            "gross": Value::Object(gross),
            "average": Value::Object(self.average.to_json_map()),
        })
    }
}

/// A rate for a table: two decimals (three for `decimals` = 3), `-` if undefined.
fn rate(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:.decimals$}"))
}

fn stats_columns(f: &mut fmt::Formatter<'_>, stats: &Ec57Stats) -> fmt::Result {
    write!(
        f,
        " {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
        rate(stats.veb_se, 2),
        rate(stats.veb_ppv, 2),
        rate(stats.veb_fpr, 3),
        rate(stats.sveb_se, 2),
        rate(stats.sveb_ppv, 2),
        rate(stats.n_flagged, 2),
        rate(stats.n_flagged_per_hour, 1),
    )
}

impl fmt::Display for Ec57Report {
    /// Per-record table, gross and average lines, then the gross confusion matrix.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<10} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
            "", "", "VEB", "VEB", "VEB", "SVEB", "SVEB", "N flag", "N flag"
        )?;
        writeln!(
            f,
            "{:<10} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
            "record", "beats", "Se", "+P", "FPR", "Se", "+P", "%", "/h"
        )?;
        for (r, stats) in self.records.iter().zip(&self.record_stats) {
            write!(f, "{:<10} {:>8}", r.record, r.confusion.reference_beats())?;
            stats_columns(f, stats)?;
            writeln!(f)?;
        }
        write!(
            f,
            "{:<10} {:>8}",
            "gross",
            self.gross_confusion.reference_beats()
        )?;
        stats_columns(f, &self.gross)?;
        writeln!(f)?;
        write!(f, "{:<10} {:>8}", "average", "")?;
        stats_columns(f, &self.average)?;
        writeln!(f)?;
        writeln!(f)?;
        write!(f, "Gross confusion, {}", self.gross_confusion)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::wfdb::AamiClass::{F as CF, N as CN, Q as CQ, S as CS, V as CV};

    fn class(c: AamiClass) -> Option<AlgorithmLabel> {
        Some(AlgorithmLabel::Class(c))
    }

    const UNREADABLE: Option<AlgorithmLabel> = Some(AlgorithmLabel::Unreadable);

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    /// Every cell a distinct count so that a wrong cell shows up in the result.
    fn hand_made() -> Confusion {
        let mut c = Confusion::default();
        // Reference N: n s v f q x o
        c.tally(Some(CN), class(CN), 1000);
        c.tally(Some(CN), class(CS), 10);
        c.tally(Some(CN), class(CV), 20);
        c.tally(Some(CN), class(CF), 3);
        c.tally(Some(CN), class(CQ), 7);
        c.tally(Some(CN), UNREADABLE, 40);
        c.tally(Some(CN), None, 5);
        // Reference S
        c.tally(Some(CS), class(CN), 30);
        c.tally(Some(CS), class(CS), 60);
        c.tally(Some(CS), class(CV), 2);
        c.tally(Some(CS), class(CF), 1);
        c.tally(Some(CS), class(CQ), 4);
        c.tally(Some(CS), UNREADABLE, 6);
        c.tally(Some(CS), None, 8);
        // Reference V
        c.tally(Some(CV), class(CN), 9);
        c.tally(Some(CV), class(CS), 11);
        c.tally(Some(CV), class(CV), 150);
        c.tally(Some(CV), class(CF), 12);
        c.tally(Some(CV), class(CQ), 13);
        c.tally(Some(CV), UNREADABLE, 14);
        c.tally(Some(CV), None, 15);
        // Reference F
        c.tally(Some(CF), class(CN), 16);
        c.tally(Some(CF), class(CS), 17);
        c.tally(Some(CF), class(CV), 18);
        c.tally(Some(CF), class(CF), 19);
        c.tally(Some(CF), class(CQ), 21);
        c.tally(Some(CF), UNREADABLE, 22);
        c.tally(Some(CF), None, 23);
        // Reference Q
        c.tally(Some(CQ), class(CN), 24);
        c.tally(Some(CQ), class(CS), 25);
        c.tally(Some(CQ), class(CV), 26);
        c.tally(Some(CQ), class(CF), 27);
        c.tally(Some(CQ), class(CQ), 28);
        c.tally(Some(CQ), UNREADABLE, 29);
        c.tally(Some(CQ), None, 31);
        // No reference beat (false detections)
        c.tally(None, class(CN), 32);
        c.tally(None, class(CS), 33);
        c.tally(None, class(CV), 34);
        c.tally(None, class(CF), 35);
        c.tally(None, class(CQ), 36);
        c.tally(None, UNREADABLE, 37);
        c
    }

    #[test]
    fn every_formula_on_a_hand_made_confusion() {
        let c = hand_made();
        let s = Ec57Stats::from_confusion(&c, 7200.0);
        // VEB: TP = Vv = 150; FN = 9+11+12+13+14+15 = 74; FP = Nv+Sv+Ov = 20+2+34 = 56.
        assert!(close(s.veb_se, 100.0 * 150.0 / 224.0));
        assert!(close(s.veb_ppv, 100.0 * 150.0 / 206.0));
        // TN = rows N,S,F,Q,O in columns n,s,f,q:
        // N 1000+10+3+7 = 1020; S 30+60+1+4 = 95; F 16+17+19+21 = 73;
        // Q 24+25+27+28 = 104; O 32+33+35+36 = 136; total 1428.
        assert!(close(s.veb_fpr, 100.0 * 56.0 / (1428.0 + 56.0)));
        // SVEB: TP = Ss = 60; FN = 30+2+1+4+6+8 = 51; FP = Ns+Vs+Fs+Os = 10+11+17+33 = 71.
        assert!(close(s.sveb_se, 100.0 * 60.0 / 111.0));
        assert!(close(s.sveb_ppv, 100.0 * 60.0 / 131.0));
        // N flagged: 10+20+3+7 = 40 of 1000+40 = 1040 classified; 40 in 2 hours.
        assert!(close(s.n_flagged, 100.0 * 40.0 / 1040.0));
        assert!(close(s.n_flagged_per_hour, 20.0));
        assert_eq!(c.reference_beats(), 1085 + 111 + 224 + 136 + 190);
    }

    #[test]
    fn fv_and_qv_are_no_veb_false_positives_but_ov_is() {
        let mut c = Confusion::default();
        c.tally(Some(CV), class(CV), 10);
        c.tally(Some(CF), class(CV), 5);
        c.tally(Some(CQ), class(CV), 5);
        let s = Ec57Stats::from_confusion(&c, 3600.0);
        assert!(close(s.veb_ppv, 100.0));
        // Fv and Qv are neither FP nor TN: the FPR has no denominator.
        assert_eq!(s.veb_fpr, None);
        c.tally(None, class(CV), 10);
        let s = Ec57Stats::from_confusion(&c, 3600.0);
        assert!(close(s.veb_ppv, 50.0));
        assert!(close(s.veb_fpr, 100.0));
        // Qs is no SVEB false positive (bxb), Fs is.
        let mut c = Confusion::default();
        c.tally(Some(CS), class(CS), 3);
        c.tally(Some(CQ), class(CS), 3);
        assert!(close(Ec57Stats::from_confusion(&c, 1.0).sveb_ppv, 100.0));
        c.tally(Some(CF), class(CS), 3);
        assert!(close(Ec57Stats::from_confusion(&c, 1.0).sveb_ppv, 50.0));
    }

    #[test]
    fn score_record_matches_within_150_ms_and_fills_o_and_x() {
        let fs = 100.0; // tolerance 15 samples
        let start = 30_000; // 300 s
        let reference = [
            (start + 1000, CN), // matched 15 samples late: N/n
            (start + 2000, CV), // nearest algorithm beat 16 samples away: missed V/o
            (start + 3000, CS), // matched, unreadable: S/x
            (start + 4000, CV), // matched, called N: V/n
        ];
        let algorithm = [
            (start + 1015, AlgorithmLabel::Class(CN)),
            (start + 2016, AlgorithmLabel::Class(CV)), // false detection: O/v
            (start + 2990, AlgorithmLabel::Unreadable),
            (start + 4000, AlgorithmLabel::Class(CN)),
            (start + 5000, AlgorithmLabel::Unreadable), // false detection: O/x
        ];
        let c = score_record(&reference, &algorithm, fs, 300.0);
        let mut expected = Confusion::default();
        expected.tally(Some(CN), class(CN), 1);
        expected.tally(Some(CV), None, 1);
        expected.tally(None, class(CV), 1);
        expected.tally(Some(CS), UNREADABLE, 1);
        expected.tally(Some(CV), class(CN), 1);
        expected.tally(None, UNREADABLE, 1);
        assert_eq!(c, expected);
        // Unsorted input gives the same counts.
        let mut shuffled = algorithm;
        shuffled.reverse();
        assert_eq!(score_record(&reference, &shuffled, fs, 300.0), expected);
    }

    #[test]
    fn beats_before_skip_are_not_tallied_but_pair_across_the_start() {
        let fs = 100.0;
        let start = 30_000;
        let learning = [
            (100, AlgorithmLabel::Class(CN)), // learning-period false detection
            (200, AlgorithmLabel::Class(CV)),
        ];
        let c = score_record(&[(205, CV), (900, CN)], &learning, fs, 300.0);
        assert_eq!(c, Confusion::default());
        // A reference beat after the start paired with an algorithm beat before it is tallied.
        let c = score_record(
            &[(start + 5, CV)],
            &[(start - 3, AlgorithmLabel::Class(CV))],
            fs,
            300.0,
        );
        assert_eq!(c.count(Some(CV), class(CV)), 1);
        assert_eq!(c.reference_beats(), 1);
        // An algorithm beat after the start paired with a reference beat before it is not.
        let c = score_record(
            &[(start - 5, CN)],
            &[(start + 3, AlgorithmLabel::Class(CN))],
            fs,
            300.0,
        );
        assert_eq!(c, Confusion::default());
        // Unpaired beats either side of the start: only the later ones count.
        let c = score_record(
            &[(start - 100, CS), (start + 100, CS)],
            &[
                (start - 50, AlgorithmLabel::Class(CN)),
                (start + 50, AlgorithmLabel::Class(CN)),
            ],
            fs,
            300.0,
        );
        let mut expected = Confusion::default();
        expected.tally(Some(CS), None, 1);
        expected.tally(None, class(CN), 1);
        assert_eq!(c, expected);
        // With no learning period everything counts.
        let all = score_record(&[(205, CV), (900, CN)], &learning, fs, 0.0);
        assert_eq!(all.count(Some(CV), class(CV)), 1);
        assert_eq!(all.count(Some(CN), None), 1);
        assert_eq!(all.count(None, class(CN)), 1);
    }

    #[test]
    fn gross_pools_counts_average_weights_records_equally() {
        let mut big = Confusion::default();
        big.tally(Some(CV), class(CV), 90);
        big.tally(Some(CV), None, 10);
        big.tally(Some(CN), class(CN), 900);
        big.tally(Some(CN), class(CV), 10);
        let mut small = Confusion::default();
        small.tally(Some(CV), class(CV), 5);
        small.tally(Some(CV), class(CN), 5);
        small.tally(Some(CN), class(CN), 100);
        // No S beats anywhere: SVEB Se undefined in both records.
        let report = Ec57Report::new(vec![
            RecordScore {
                record: "big".into(),
                scored_seconds: 3600.0,
                confusion: big,
            },
            RecordScore {
                record: "small".into(),
                scored_seconds: 1800.0,
                confusion: small,
            },
        ]);
        assert_eq!(report.gross_confusion, big + small);
        // Gross VEB Se 95/110; average of 90 % and 50 % is 70 %.
        assert!(close(report.gross.veb_se, 100.0 * 95.0 / 110.0));
        assert!(close(report.average.veb_se, 70.0));
        // Gross +P 95/105; average of 90/100 and 100 %.
        assert!(close(report.gross.veb_ppv, 100.0 * 95.0 / 105.0));
        assert!(close(report.average.veb_ppv, 95.0));
        // N flagged per hour: gross 10 in 1.5 h; average of 10/h and 0/h.
        assert!(close(report.gross.n_flagged_per_hour, 10.0 / 1.5));
        assert!(close(report.average.n_flagged_per_hour, 5.0));
        assert_eq!(report.average.sveb_se, None);
        // A record that leaves a rate undefined is skipped by the average.
        let mut only_n = Confusion::default();
        only_n.tally(Some(CN), class(CN), 50);
        let stats = [
            Ec57Stats::from_confusion(&big, 3600.0),
            Ec57Stats::from_confusion(&only_n, 3600.0),
        ];
        assert!(close(Ec57Stats::average(&stats).veb_se, 90.0));
    }

    #[test]
    fn json_shape_and_null_rates() {
        let mut c = Confusion::default();
        c.tally(Some(CN), class(CN), 3);
        c.tally(Some(CN), None, 1);
        c.tally(None, UNREADABLE, 2);
        let report = Ec57Report::new(vec![RecordScore {
            record: "100".into(),
            scored_seconds: 1500.0,
            confusion: c,
        }]);
        let v = report.to_json();
        let record = &v["records"][0];
        for key in [
            "record",
            "veb_se",
            "veb_ppv",
            "veb_fpr",
            "sveb_se",
            "sveb_ppv",
            "n_flagged",
            "n_flagged_per_hour",
            "beats",
            "scored_seconds",
        ] {
            assert!(record.get(key).is_some(), "records[0].{key}");
        }
        assert_eq!(record["record"], "100");
        assert_eq!(record["beats"], 4);
        assert!(record["veb_se"].is_null());
        assert!(record["sveb_ppv"].is_null());
        assert_eq!(record["veb_fpr"], 0.0);
        assert_eq!(record["n_flagged"], 0.0);
        for section in ["gross", "average"] {
            for key in [
                "veb_se",
                "veb_ppv",
                "veb_fpr",
                "sveb_se",
                "sveb_ppv",
                "n_flagged",
                "n_flagged_per_hour",
            ] {
                assert!(v[section].get(key).is_some(), "{section}.{key}");
            }
        }
        assert!(v["average"]["veb_se"].is_null());
        let confusion = &v["gross"]["confusion"];
        assert_eq!(confusion["N"]["N"], 3);
        assert_eq!(confusion["N"]["missed"], 1);
        assert_eq!(confusion["N"]["unreadable"], 0);
        assert_eq!(confusion["none"]["unreadable"], 2);
        assert!(confusion["none"].get("missed").is_none());
        assert_eq!(confusion.as_object().map(|m| m.len()), Some(6));
        let text = report.to_string();
        assert!(text.contains("100") && text.contains("gross") && text.contains(" O "));
    }
}
