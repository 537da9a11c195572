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
//!   symbol, AAMI class, binary label (0 normal = N, 1 abnormal), previous and
//!   next RR intervals, quality, number of real values, local (median) RR, then
//!   the beat's patient-context features (`context0`…, see [`crate::dsp::context`]);
//! - `unmatched.csv`: detected beats with no reference beat (false detections,
//!   or beats whose symbol has no AAMI class), kept apart, never labelled:
//!   record, sample, symbol, RR intervals, quality, length, the 187 values,
//!   then the patient context (for studying what the gate should refuse);
//! - `source.txt`: one line saying what the beats are (clean, or with which noise).

use crate::dsp::context::CONTEXT_FEATURES;
use crate::dsp::{BEAT_LEN, Beat, BeatExtractor, ExtractorConfig};

/// Columns of `meta.csv`: ten, then the patient context.
const META_COLUMNS: usize = 10 + CONTEXT_FEATURES;
use crate::eval::{EvalError, MATCH_WINDOW_S, match_beats, read_annotated};
use crate::formats::wfdb::AamiClass;
use crate::formats::wfdb::LeadChoice;
use serde::Serialize;
use std::io::Write;
use std::path::Path;

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
    label_noisy_record(path, lead, config, None)
}

/// Recorded electrode noise to add to records before extraction: training-time
/// augmentation through the same extractor the daemon runs.
#[derive(Debug, Clone)]
pub struct NoiseMix {
    /// The noise record's name, e.g. `ma`.
    pub name: String,
    /// The noise, mV.
    pub signal: Vec<f32>,
    /// Its sampling rate, Hz.
    pub fs: f64,
    /// Signal-to-noise ratio, dB (as in the noise stress test).
    pub snr_db: f64,
}

/// [`label_record`] with `noise` added as the noise stress test adds it
/// (alternating 2-minute segments after the first 5 minutes); with noise,
/// only the beats inside noisy segments are returned, so that no clean beat
/// is repeated.
pub fn label_noisy_record(
    path: &Path,
    lead: &LeadChoice,
    config: impl Fn(f64) -> ExtractorConfig,
    noise: Option<&NoiseMix>,
) -> Result<Vec<LabelledBeat>, EvalError> {
    let mut rec = read_annotated(path, lead)?;
    if let Some(n) = noise {
        if n.fs != rec.fs {
            return Err(EvalError::Noise(format!(
                "the noise is sampled at {} Hz, {} at {} Hz",
                n.fs,
                path.display(),
                rec.fs
            )));
        }
        let reference: Vec<u64> = rec
            .annotations
            .iter()
            .filter(|a| a.code.is_beat())
            .map(|a| a.sample)
            .collect();
        crate::eval::add_noise(&mut rec.signal, &n.signal, &reference, rec.fs, n.snr_db);
    }
    let mut beats = BeatExtractor::extract_all(config(rec.fs), &rec.signal, 256)
        .map_err(|e| EvalError::Dsp(path.display().to_string(), e))?;
    if noise.is_some() {
        beats.retain(|b| crate::eval::in_noisy_segment(b.sample, rec.fs));
    }
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
                class: code.and_then(|c| c.aami_class()),
            }
        })
        .collect())
}

/// The inter-patient split of de Chazal et al. (2004): train on DS1, test on DS2.
pub const DS1: [&str; 22] = [
    "101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122", "124", "201",
    "203", "205", "207", "208", "209", "215", "220", "223", "230",
];
/// See [`DS1`].
pub const DS2: [&str; 22] = [
    "100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210", "212", "213",
    "214", "219", "221", "222", "228", "231", "232", "233", "234",
];
/// Records with paced beats, left out of classification statistics by AAMI EC57.
pub const PACED: [&str; 4] = ["102", "104", "107", "217"];

/// Labelled beats in memory, one entry per beat in every vector.
#[derive(Debug, Clone, Default)]
pub struct BeatSet {
    pub values: Vec<[f32; BEAT_LEN]>,
    pub class: Vec<AamiClass>,
    pub record: Vec<String>,
    pub sample: Vec<u64>,
    pub readable: Vec<bool>,
    pub rr_prev_ms: Vec<Option<f64>>,
    pub rr_next_ms: Vec<Option<f64>>,
    pub rr_local_ms: Vec<Option<f64>>,
    /// Patient-context features (see [`crate::dsp::context`]).
    pub context: Vec<[f32; CONTEXT_FEATURES]>,
}

impl BeatSet {
    /// Number of beats.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Appends the beats of `other`.
    pub fn append(&mut self, other: BeatSet) {
        self.values.extend(other.values);
        self.class.extend(other.class);
        self.record.extend(other.record);
        self.sample.extend(other.sample);
        self.readable.extend(other.readable);
        self.rr_prev_ms.extend(other.rr_prev_ms);
        self.rr_next_ms.extend(other.rr_next_ms);
        self.rr_local_ms.extend(other.rr_local_ms);
        self.context.extend(other.context);
    }

    /// The seed paper's binary labels (1 = abnormal).
    pub fn binary(&self) -> Vec<u8> {
        self.class.iter().map(|c| c.binary()).collect()
    }

    fn push(&mut self, l: &LabelledBeat, class: AamiClass) {
        self.values.push(l.beat.values);
        self.class.push(class);
        self.record.push(l.record.clone());
        self.sample.push(l.beat.sample);
        self.readable.push(l.beat.quality.is_readable());
        self.rr_prev_ms.push(l.beat.rr_prev_ms);
        self.rr_next_ms.push(l.beat.rr_next_ms);
        self.rr_local_ms.push(l.beat.rr_local_ms);
        self.context.push(l.beat.context);
    }

    /// Every beat's side features: RR and patient context (see [`crate::model::rr`]).
    pub fn rr_features(&self) -> Vec<[f32; crate::model::rr::SIDE_FEATURES]> {
        (0..self.len())
            .map(|i| {
                crate::model::rr::side_features(
                    self.rr_prev_ms[i],
                    self.rr_next_ms[i],
                    self.rr_local_ms[i],
                    &self.context[i],
                )
            })
            .collect()
    }
}

/// How beats are divided between training and scoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// The seed paper's: all records' beats split 80/20 at random, by beat.
    Intra,
    /// The clinical one: train on DS1's patients, score on DS2's (de Chazal 2004).
    Inter,
}

/// Seed of the `intra` protocol's 80/20 split. It is fixed, apart from any
/// training seed, so that models trained with different seeds are scored on
/// the same held-out beats and can be compared.
pub const INTRA_SPLIT_SEED: u64 = 42;

/// Indices of the readable beats of `set` used for training and for scoring
/// under `protocol` (all 48 records for `intra`, as the paper; DS1 and DS2,
/// which hold no paced record, for `inter`).
pub fn protocol_split(set: &BeatSet, protocol: Protocol) -> (Vec<usize>, Vec<usize>) {
    let usable = (0..set.len()).filter(|&i| set.readable[i]);
    match protocol {
        Protocol::Intra => {
            // A beat's side is a hash of its identity, not of its position in the
            // list, so the split survives beats being added or dropped elsewhere.
            usable.partition(|&i| {
                !beat_hash(INTRA_SPLIT_SEED, &set.record[i], set.sample[i]).is_multiple_of(5)
            })
        }
        Protocol::Inter => {
            let in_set = |i: usize, list: &[&str]| list.contains(&set.record[i].as_str());
            let usable: Vec<usize> = usable.collect();
            (
                usable
                    .iter()
                    .copied()
                    .filter(|&i| in_set(i, &DS1))
                    .collect(),
                usable
                    .iter()
                    .copied()
                    .filter(|&i| in_set(i, &DS2))
                    .collect(),
            )
        }
    }
}

/// A 64-bit hash of a beat's identity (FNV-1a of the record name, mixed with the
/// R-peak sample and the seed by SplitMix64's finaliser).
fn beat_hash(seed: u64, record: &str, sample: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in record.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    crate::model::SplitMix64::new(
        h ^ seed.rotate_left(17) ^ sample.wrapping_mul(0x9e37_79b9_7f4a_7c15),
    )
    .next_u64()
}

/// Streams `records` of database `db` through the extractor and keeps the labelled beats.
pub fn from_db(
    db: &Path,
    records: &[String],
    lead: &LeadChoice,
) -> Result<(BeatSet, Vec<LabelledBeat>), EvalError> {
    let mut set = BeatSet::default();
    let mut unmatched = Vec::new();
    for name in records {
        for l in label_record(&db.join(name), lead, ExtractorConfig::new)? {
            match l.class {
                Some(class) => set.push(&l, class),
                None => unmatched.push(l),
            }
        }
    }
    Ok((set, unmatched))
}

/// Reads `beats.csv` and `meta.csv` written by [`build`].
pub fn load(dir: &Path) -> anyhow::Result<BeatSet> {
    use anyhow::{Context, bail};
    let read = |name: &str| {
        let p = dir.join(name);
        std::fs::read_to_string(&p).with_context(|| {
            format!(
                "cannot read {} (run `holterd dataset build` first)",
                p.display()
            )
        })
    };
    let (beats, meta) = (read("beats.csv")?, read("meta.csv")?);
    let mut set = BeatSet::default();
    let mut meta_lines = meta.lines().skip(1);
    for (n, line) in beats.lines().enumerate() {
        let row = n + 1;
        let mut values = [0.0f32; BEAT_LEN];
        let mut fields = line.split(',');
        for (k, v) in values.iter_mut().enumerate() {
            let f = fields
                .next()
                .with_context(|| format!("beats.csv row {row}: only {k} columns"))?;
            *v = f.trim().parse().with_context(|| {
                format!(
                    "beats.csv row {row}, column {}: {f:?} is not a number",
                    k + 1
                )
            })?;
            if !v.is_finite() {
                bail!("beats.csv row {row}, column {}: {f:?} is not finite", k + 1);
            }
        }
        let label: usize = fields
            .next()
            .and_then(|f| f.trim().parse().ok())
            .with_context(|| {
                format!(
                    "beats.csv row {row}: missing or bad label in column {}",
                    BEAT_LEN + 1
                )
            })?;
        let class = *AamiClass::ALL
            .get(label)
            .with_context(|| format!("beats.csv row {row}: label {label} is not 0 to 4"))?;
        let m: Vec<&str> = meta_lines
            .next()
            .with_context(|| format!("meta.csv has fewer rows than beats.csv ({row})"))?
            .split(',')
            .collect();
        if m.len() < META_COLUMNS {
            bail!(
                "meta.csv row {row}: expected {META_COLUMNS} columns, found {} (a dataset from an older holterd: run `holterd dataset build` again)",
                m.len()
            );
        }
        let mut context = [0.0f32; CONTEXT_FEATURES];
        for (k, c) in context.iter_mut().enumerate() {
            let f = m[10 + k];
            *c = f
                .parse()
                .ok()
                .filter(|v: &f32| v.is_finite())
                .with_context(|| format!("meta.csv row {row}: context feature {k} is {f:?}"))?;
        }
        let opt = |f: &str| f.parse::<f64>().ok();
        set.values.push(values);
        set.class.push(class);
        set.record.push(m[0].to_string());
        set.sample.push(
            m[1].parse()
                .with_context(|| format!("meta.csv row {row}: bad sample {:?}", m[1]))?,
        );
        set.readable.push(m[7] == "good");
        set.rr_prev_ms.push(opt(m[5]));
        set.rr_next_ms.push(opt(m[6]));
        set.rr_local_ms.push(opt(m[9]));
        set.context.push(context);
    }
    Ok(set)
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
    config: impl Fn(f64) -> ExtractorConfig,
    noise: Option<&NoiseMix>,
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
    write!(
        meta_csv,
        "record,sample,symbol,aami,binary,rr_prev_ms,rr_next_ms,quality,len,rr_local_ms"
    )?;
    for k in 0..CONTEXT_FEATURES {
        write!(meta_csv, ",context{k}")?;
    }
    writeln!(meta_csv)?;
    write!(
        unmatched_csv,
        "record,sample,symbol,rr_prev_ms,rr_next_ms,quality,len"
    )?;
    for i in 0..BEAT_LEN {
        write!(unmatched_csv, ",v{i}")?;
    }
    for k in 0..CONTEXT_FEATURES {
        write!(unmatched_csv, ",context{k}")?;
    }
    writeln!(unmatched_csv)?;
    // Three decimals: the RR features computed from these equal the daemon's to float precision.
    let opt = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_default();
    let mut summary = BuildSummary::default();
    for name in records {
        let labelled = label_noisy_record(&db.join(name), lead, &config, noise)?;
        summary.records += 1;
        for l in &labelled {
            let b = &l.beat;
            let values = b
                .values
                .iter()
                .map(|v| format!("{v:.6}"))
                .collect::<Vec<_>>()
                .join(",");
            // Context features in full (shortest exact) precision: no train/serve skew.
            let context: String = b.context.iter().map(|c| format!(",{c}")).collect();
            match l.class {
                Some(class) => {
                    writeln!(beats_csv, "{values},{}", class.index())?;
                    writeln!(
                        meta_csv,
                        "{},{},{},{:?},{},{},{},{},{},{}{context}",
                        l.record,
                        b.sample,
                        l.symbol.unwrap_or(""),
                        class,
                        class.binary(),
                        opt(b.rr_prev_ms),
                        opt(b.rr_next_ms),
                        b.quality.as_str(),
                        b.len,
                        opt(b.rr_local_ms)
                    )?;
                    summary.per_class[class.index()] += 1;
                    summary.unreadable += usize::from(!b.quality.is_readable());
                }
                None => {
                    writeln!(
                        unmatched_csv,
                        "{},{},{},{},{},{},{},{values}{context}",
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
    let source = match noise {
        Some(n) => format!(
            "beats in the noisy segments of {} records with nstdb `{}` noise added at {} dB",
            summary.records, n.name, n.snr_db
        ),
        None => format!("beats of {} records", summary.records),
    };
    std::fs::write(out.join(SOURCE_FILE), source + "\n")
        .with_context(|| format!("cannot write {}", out.join(SOURCE_FILE).display()))?;
    Ok(summary)
}

/// File of a built dataset saying what it holds, in one line (read into model cards).
pub const SOURCE_FILE: &str = "source.txt";

/// What the dataset in `dir` holds, as [`build`] described it.
pub fn source(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(SOURCE_FILE))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| format!("the dataset in {}", dir.display()))
}
