//! Training data from the daemon's own beat extractor (no train/serve skew):
//! every record of a database is streamed through [`BeatExtractor`], each
//! detected beat is labelled from the reference annotation matched to it
//! within 150 ms (AAMI class and the seed paper's binary label), and written
//! in the layout of the Kaggle "ECG Heartbeat Categorization" CSV files.
//!
//! Files written by [`build`]:
//! - `beats.csv`: 187 values then the AAMI class index (0 N, 1 S, 2 V, 3 F, 4 Q,
//!   Kaggle's order), one labelled beat per row, no header;
//! - `meta.csv`: one row per line of `beats.csv`: record, R-peak sample, reference
//!   symbol, AAMI class, binary label (0 normal = N, 1 abnormal), RR intervals,
//!   quality, number of real values;
//! - `unmatched.csv`: detected beats with no reference beat (false detections,
//!   or beats whose symbol has no AAMI class), kept apart, never labelled.

use crate::dsp::{BEAT_LEN, Beat, BeatExtractor, ExtractorConfig};
use crate::eval::{EvalError, LeadChoice, MATCH_WINDOW_S, match_beats, read_annotated};
use serde::Serialize;
use std::io::Write;
use std::path::Path;

/// AAMI EC57 heartbeat classes, in the Kaggle dataset's label order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum AamiClass {
    /// Normal and bundle-branch-block beats (N L R e j).
    N,
    /// Supraventricular ectopic beats (A a J S).
    S,
    /// Ventricular ectopic beats (V E).
    V,
    /// Fusion of ventricular and normal beats (F).
    F,
    /// Paced and unclassifiable beats (/ f Q).
    Q,
}

impl AamiClass {
    /// All classes in label order.
    pub const ALL: [AamiClass; 5] = [
        AamiClass::N,
        AamiClass::S,
        AamiClass::V,
        AamiClass::F,
        AamiClass::Q,
    ];

    /// The class of an AAMI letter as returned by [`crate::wfdb::AnnotationCode::aami_class`].
    pub fn from_letter(c: char) -> Option<Self> {
        match c {
            'N' => Some(AamiClass::N),
            'S' => Some(AamiClass::S),
            'V' => Some(AamiClass::V),
            'F' => Some(AamiClass::F),
            'Q' => Some(AamiClass::Q),
            _ => None,
        }
    }

    /// Label index (0 to 4).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The seed paper's binary label: 0 for normal (N), 1 for abnormal.
    pub fn binary(self) -> u8 {
        u8::from(self != AamiClass::N)
    }
}

/// A detected beat and what the reference says it is.
#[derive(Debug, Clone)]
pub struct LabelledBeat {
    /// Record name.
    pub record: String,
    /// The beat as the extractor emitted it.
    pub beat: Beat,
    /// Symbol of the matched reference beat, if any.
    pub symbol: Option<&'static str>,
    /// AAMI class of that symbol, if it has one.
    pub class: Option<AamiClass>,
}

/// Streams record `path` (without extension) through the extractor and labels every beat.
pub fn label_record(
    path: &Path,
    lead: &LeadChoice,
    config: impl Fn(f64) -> ExtractorConfig,
) -> Result<Vec<LabelledBeat>, EvalError> {
    let rec = read_annotated(path, lead)?;
    let beats = BeatExtractor::extract_all(config(rec.fs), &rec.signal, 256)
        .map_err(|e| EvalError::Dsp(path.display().to_string(), e))?;
    let reference: Vec<_> = rec
        .annotations
        .iter()
        .filter(|a| a.code.is_beat())
        .collect();
    let ref_samples: Vec<u64> = reference.iter().map(|a| a.sample).collect();
    let detections: Vec<u64> = beats.iter().map(|b| b.sample).collect();
    let tolerance = (MATCH_WINDOW_S * rec.fs).round() as u64;
    let mut matched: Vec<Option<usize>> = vec![None; beats.len()];
    for (r, m) in match_beats(&ref_samples, &detections, tolerance)
        .into_iter()
        .enumerate()
    {
        if let Some(d) = m {
            matched[d] = Some(r);
        }
    }
    Ok(beats
        .into_iter()
        .zip(matched)
        .map(|(beat, m)| {
            let code = m.map(|r| reference[r].code);
            LabelledBeat {
                record: rec.record.clone(),
                beat,
                symbol: code.map(|c| c.symbol()),
                class: code
                    .and_then(|c| c.aami_class())
                    .and_then(AamiClass::from_letter),
            }
        })
        .collect())
}

/// Counts of what [`build`] wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BuildSummary {
    /// Records processed.
    pub records: usize,
    /// Labelled beats per AAMI class (N, S, V, F, Q).
    pub per_class: [usize; 5],
    /// Detected beats with no reference beat.
    pub unmatched: usize,
    /// Labelled beats flagged unreadable by the quality gate.
    pub unreadable: usize,
}

/// Writes `beats.csv`, `meta.csv` and `unmatched.csv` for `records` of database `db` into `out`.
pub fn build(
    db: &Path,
    records: &[String],
    lead: &LeadChoice,
    out: &Path,
) -> anyhow::Result<BuildSummary> {
    use anyhow::Context;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let create = |name: &str| -> anyhow::Result<std::io::BufWriter<std::fs::File>> {
        let p = out.join(name);
        let f =
            std::fs::File::create(&p).with_context(|| format!("cannot create {}", p.display()))?;
        Ok(std::io::BufWriter::new(f))
    };
    let (mut beats_csv, mut meta_csv, mut unmatched_csv) = (
        create("beats.csv")?,
        create("meta.csv")?,
        create("unmatched.csv")?,
    );
    writeln!(
        meta_csv,
        "record,sample,symbol,aami,binary,rr_prev_ms,rr_next_ms,quality,len"
    )?;
    write!(
        unmatched_csv,
        "record,sample,symbol,rr_prev_ms,rr_next_ms,quality,len"
    )?;
    for i in 0..BEAT_LEN {
        write!(unmatched_csv, ",v{i}")?;
    }
    writeln!(unmatched_csv)?;
    let opt = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_default();
    let mut summary = BuildSummary::default();
    for name in records {
        let labelled = label_record(&db.join(name), lead, ExtractorConfig::new)?;
        summary.records += 1;
        for l in &labelled {
            let b = &l.beat;
            let values = b
                .values
                .iter()
                .map(|v| format!("{v:.6}"))
                .collect::<Vec<_>>()
                .join(",");
            match l.class {
                Some(class) => {
                    writeln!(beats_csv, "{values},{}", class.index())?;
                    writeln!(
                        meta_csv,
                        "{},{},{},{:?},{},{},{},{},{}",
                        l.record,
                        b.sample,
                        l.symbol.unwrap_or(""),
                        class,
                        class.binary(),
                        opt(b.rr_prev_ms),
                        opt(b.rr_next_ms),
                        b.quality.as_str(),
                        b.len
                    )?;
                    summary.per_class[class.index()] += 1;
                    summary.unreadable += usize::from(!b.quality.is_readable());
                }
                None => {
                    writeln!(
                        unmatched_csv,
                        "{},{},{},{},{},{},{},{values}",
                        l.record,
                        b.sample,
                        l.symbol.unwrap_or(""),
                        opt(b.rr_prev_ms),
                        opt(b.rr_next_ms),
                        b.quality.as_str(),
                        b.len
                    )?;
                    summary.unmatched += 1;
                }
            }
        }
    }
    for w in [&mut beats_csv, &mut meta_csv, &mut unmatched_csv] {
        w.flush()?;
    }
    Ok(summary)
}
