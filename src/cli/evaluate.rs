//! The evaluations that stream or re-train: `eval ec57` (whole records
//! through the pipeline, beats scored as EC57 scores arrhythmia analysers),
//! `eval rhythm` (the same, rhythm episodes scored as EC57 and `epic` do) and
//! `eval cv` (leave-records-out cross-validation inside DS1).

use super::{LeadArgs, default_db, selected_records};
use crate::dataset::{DS1, DS2, PACED};
use crate::eval::{
    AlgorithmLabel, Ec57Report, EpisodeSource, ListedEpisode, RecordScore, RhythmRecordScore,
    RhythmReport, ScoredRhythm, Span, list_episodes, read_annotated, reference_spans, score_record,
    score_rhythms, vf_spans, without_pauses_in_vf,
};
use crate::model::classifier::Classifier;
use crate::model::crossval::{CvRequest, cross_validate};
use crate::pipeline::offline::analyze_recording;
use crate::pipeline::rhythm::beat_of_row;
use crate::rhythm::{AfConfig, RhythmAnalyser, RhythmBeat, RhythmConfig, RhythmEvent};
use crate::store::Verdict;
use anyhow::{Result, bail};
use clap::Args;
use std::path::PathBuf;

/// Seconds at the start of each record not scored (EC57's learning period).
const LEARNING_S: f64 = 300.0;

#[derive(Debug, Args)]
pub(super) struct EvalEc57Args {
    /// Database directory (default: $HOLTER_DATA_DIR/mitdb).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Records: a comma-separated list, or ds1, ds2 or all (paced records left out).
    #[arg(long, default_value = "ds2")]
    records: String,
    /// Five-class model directory (several, comma-separated, form an ensemble).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = crate::model::DEFAULT_MODEL
    )]
    model: Vec<PathBuf>,
    #[command(flatten)]
    lead: LeadArgs,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// The records an `--records` value names; `all` leaves the paced records
/// out unless `paced`.
fn record_list(db: &std::path::Path, spec: &str, paced: bool) -> Result<Vec<String>> {
    let named = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let wanted = match spec {
        "ds1" => named(&DS1),
        "ds2" => named(&DS2),
        "all" => selected_records(db, &[])?
            .into_iter()
            .filter(|r| paced || !PACED.contains(&r.as_str()))
            .collect(),
        list => list.split(',').map(|s| s.trim().to_string()).collect(),
    };
    selected_records(db, &wanted)
}

/// `holterd eval ec57`.
pub(super) fn eval_ec57(a: EvalEc57Args) -> Result<()> {
    let db = default_db(a.db.clone());
    let records = record_list(&db, &a.records, false)?;
    let classifier = Classifier::load(&a.model, &candle_core::Device::Cpu)?;
    if !classifier.five_class() {
        bail!(
            "{} gives binary verdicts; eval ec57 scores five-class models (e.g. models/context-mlp-beat-inter); use `eval classify` for binary ones",
            classifier.name()
        );
    }
    let mut scores = Vec::with_capacity(records.len());
    for name in &records {
        let rec = read_annotated(&db.join(name), &a.lead.choice())?;
        let reference: Vec<_> = rec
            .annotations
            .iter()
            .filter(|x| x.code.is_beat())
            .filter_map(|x| x.code.aami_class().map(|c| (x.sample, c)))
            .collect();
        let rows = analyze_recording(
            name,
            0,
            rec.fs,
            &rec.signal,
            a.lead.powerline(),
            &classifier,
            0.5,
        )?;
        let algorithm: Vec<_> = rows
            .iter()
            .map(|r| {
                let label = match (r.verdict, r.class) {
                    (Verdict::Unreadable, _) | (_, None) => AlgorithmLabel::Unreadable,
                    (_, Some(c)) => AlgorithmLabel::Class(c),
                };
                (r.sample, label)
            })
            .collect();
        let duration = rec.signal.len() as f64 / rec.fs;
        scores.push(RecordScore {
            record: name.clone(),
            scored_seconds: (duration - LEARNING_S).max(0.0),
            confusion: score_record(&reference, &algorithm, rec.fs, LEARNING_S),
        });
    }
    let report = Ec57Report::new(scores);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        println!(
            "{} on {} records of {} (EC57 beat-by-beat: 150 ms match, first 5 minutes not scored)",
            classifier.name(),
            records.len(),
            db.display()
        );
        print!("{report}");
    }
    Ok(())
}

#[derive(Debug, Args)]
pub(super) struct EvalRhythmArgs {
    /// Database directory (default: $HOLTER_DATA_DIR/mitdb).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Records: a comma-separated list, or ds1, ds2 or all (all 48, paced ones included).
    #[arg(long, default_value = "all")]
    records: String,
    /// Five-class model directory (several, comma-separated, form an ensemble).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = crate::model::DEFAULT_MODEL
    )]
    model: Vec<PathBuf>,
    #[command(flatten)]
    lead: LeadArgs,
    /// AF detector: irregularity that opens an episode (comma-separated: each is evaluated).
    #[arg(long, value_delimiter = ',')]
    af_on: Vec<f64>,
    /// AF detector: irregularity below which an episode ends (comma-separated).
    #[arg(long, value_delimiter = ',')]
    af_off: Vec<f64>,
    /// AF detector: successive-interval pairs in its window (comma-separated).
    #[arg(long, value_delimiter = ',')]
    af_window: Vec<usize>,
    /// AF detector: shortest episode reported, s (comma-separated).
    #[arg(long, value_delimiter = ',')]
    af_min_s: Vec<f64>,
    /// Readable beats (1 or 2) a pause needs among the two bounding it.
    #[arg(long)]
    pause_readable_flanks: Option<u8>,
    /// Also list every scored episode, reference and algorithm, with whether
    /// it was matched (missed and invented episodes are the unmatched ones).
    #[arg(long)]
    episodes: bool,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// One record's beats as the rhythm analyser sees them, and its reference episodes.
struct RhythmCase {
    record: String,
    duration_s: f64,
    beats: Vec<RhythmBeat>,
    reference: Vec<Span>,
    /// Ventricular flutter or fibrillation, where pauses are not scored.
    vf: Vec<(f64, f64)>,
}

/// The analyser settings an `eval rhythm` grid names (defaults where a list is empty).
fn rhythm_grid(a: &EvalRhythmArgs) -> Vec<RhythmConfig> {
    let d = AfConfig::default();
    let base = RhythmConfig::default();
    let flanks = a
        .pause_readable_flanks
        .unwrap_or(base.pause_readable_flanks);
    let or = |v: &[f64], x: f64| if v.is_empty() { vec![x] } else { v.to_vec() };
    let windows = if a.af_window.is_empty() {
        vec![d.window]
    } else {
        a.af_window.clone()
    };
    let mut grid = Vec::new();
    for &on in &or(&a.af_on, d.on) {
        for &off in &or(&a.af_off, d.off) {
            for &window in &windows {
                for &min_s in &or(&a.af_min_s, d.min_s) {
                    if off > on {
                        // Hysteresis runs one way only; the pair is not a setting.
                        continue;
                    }
                    grid.push(RhythmConfig {
                        af: AfConfig {
                            window,
                            on,
                            off,
                            min_s,
                        },
                        pause_readable_flanks: flanks,
                        ..base.clone()
                    });
                }
            }
        }
    }
    grid
}

/// Each case's episodes as the analyser under `config` finds them.
fn spans_of(cases: &[RhythmCase], config: &RhythmConfig) -> Vec<Vec<Span>> {
    cases.iter().map(|c| algorithm_spans(c, config)).collect()
}

/// The scored episodes the rhythm analyser finds in one case with `config`.
fn algorithm_spans(case: &RhythmCase, config: &RhythmConfig) -> Vec<Span> {
    let mut analyser = RhythmAnalyser::new(config.clone());
    let mut events = Vec::new();
    for &b in &case.beats {
        analyser.push(b, &mut events);
    }
    analyser.finish(&mut events);
    let algorithm: Vec<Span> = events
        .iter()
        .filter_map(|e| match e {
            RhythmEvent::Closed(e) => ScoredRhythm::from_episode(e.kind).map(|rhythm| Span {
                rhythm,
                start_s: e.start_us as f64 / 1e6,
                end_s: e.end_us as f64 / 1e6,
            }),
            RhythmEvent::Opened(_) | RhythmEvent::Withdrawn(_) => None,
        })
        .collect();
    without_pauses_in_vf(algorithm, &case.vf)
}

/// Scores every case's analyser episodes (`algorithm[i]` for `cases[i]`).
fn score_rhythm_cases(cases: &[RhythmCase], algorithm: &[Vec<Span>]) -> RhythmReport {
    let records = cases
        .iter()
        .zip(algorithm)
        .map(|(case, spans)| RhythmRecordScore {
            record: case.record.clone(),
            stats: score_rhythms(&case.reference, spans, LEARNING_S, case.duration_s),
        })
        .collect();
    RhythmReport { records }
}

/// Every scored episode of every case with its record's name, as
/// `eval rhythm --episodes` lists them (`algorithm[i]` for `cases[i]`).
fn listed_episodes<'a>(
    cases: &'a [RhythmCase],
    algorithm: &[Vec<Span>],
) -> Vec<(&'a str, ListedEpisode)> {
    let mut out = Vec::new();
    for (case, spans) in cases.iter().zip(algorithm) {
        out.extend(
            list_episodes(&case.reference, spans, LEARNING_S, case.duration_s)
                .into_iter()
                .map(|e| (case.record.as_str(), e)),
        );
    }
    out
}

/// The source and status words a listed episode is printed with.
fn episode_words(e: &ListedEpisode) -> (&'static str, &'static str) {
    match (e.source, e.matched) {
        (EpisodeSource::Reference, true) => ("reference", "detected"),
        (EpisodeSource::Reference, false) => ("reference", "missed"),
        (EpisodeSource::Algorithm, true) => ("algorithm", "true"),
        (EpisodeSource::Algorithm, false) => ("algorithm", "invented"),
    }
}

/// `holterd eval rhythm`.
pub(super) fn eval_rhythm(a: EvalRhythmArgs) -> Result<()> {
    let db = default_db(a.db.clone());
    let records = record_list(&db, &a.records, true)?;
    let grid = rhythm_grid(&a);
    if grid.is_empty() {
        bail!("no setting to evaluate: every --af-off given is above every --af-on");
    }
    for config in &grid {
        config.validate().map_err(anyhow::Error::msg)?;
    }
    let classifier = Classifier::load(&a.model, &candle_core::Device::Cpu)?;
    if !classifier.five_class() {
        bail!(
            "{} gives binary verdicts; the rhythm analyser needs beat classes (e.g. models/context-mlp-beat-inter)",
            classifier.name()
        );
    }
    let pause_s = RhythmConfig::default().pause_s;
    let mut cases = Vec::with_capacity(records.len());
    for name in &records {
        let rec = read_annotated(&db.join(name), &a.lead.choice())?;
        let rows = analyze_recording(
            name,
            0,
            rec.fs,
            &rec.signal,
            a.lead.powerline(),
            &classifier,
            0.5,
        )?;
        let duration_s = rec.signal.len() as f64 / rec.fs;
        cases.push(RhythmCase {
            record: name.clone(),
            duration_s,
            beats: rows.iter().filter_map(beat_of_row).collect(),
            reference: reference_spans(&rec.annotations, rec.fs, duration_s, pause_s),
            vf: vf_spans(&rec.annotations, rec.fs),
        });
    }
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    if grid.len() > 1 {
        let mut json = Vec::new();
        println!("af.on | af.off | af.window | af.min_s | AF ep Se | ep +P | dur Se | dur +P");
        for config in &grid {
            let spans = spans_of(&cases, config);
            let report = score_rhythm_cases(&cases, &spans);
            let af = report
                .gross()
                .get(&ScoredRhythm::Af)
                .copied()
                .unwrap_or_default();
            println!(
                "{:>5} | {:>6} | {:>9} | {:>8} | {:>8} | {:>5} | {:>6} | {:>6}",
                config.af.on,
                config.af.off,
                config.af.window,
                config.af.min_s,
                f(af.episode_se()),
                f(af.episode_ppv()),
                f(af.duration_se()),
                f(af.duration_ppv())
            );
            json.push(serde_json::json!({
                "af": {"on": config.af.on, "off": config.af.off, "window": config.af.window, "min_s": config.af.min_s},
                "gross": report.to_json()["gross"].clone(),
            }));
        }
        if a.json {
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
        return Ok(());
    }
    let spans = spans_of(&cases, &grid[0]);
    let report = score_rhythm_cases(&cases, &spans);
    let episodes = a.episodes.then(|| listed_episodes(&cases, &spans));
    if a.json {
        let mut json = report.to_json();
        if let Some(episodes) = &episodes {
            let rows = episodes
                .iter()
                .map(|(record, e)| {
                    let (source, status) = episode_words(e);
                    serde_json::json!({
                        "record": record, "rhythm": e.span.rhythm.key(),
                        "source": source, "status": status,
                        "start_s": e.span.start_s, "end_s": e.span.end_s,
                    })
                })
                .collect();
            json["episodes"] = serde_json::Value::Array(rows);
        }
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!(
            "rhythm episodes of {} on {} records of {} (EC57/epic: overlap matching, first 5 minutes not scored)",
            classifier.name(),
            records.len(),
            db.display()
        );
        print!("{report}");
        if let Some(episodes) = episodes {
            println!(
                "\nrecord | rhythm    | source    | status   | onset s   | offset s  | length s"
            );
            for (record, e) in &episodes {
                let (source, status) = episode_words(e);
                println!(
                    "{record:<6} | {:<9} | {source:<9} | {status:<8} | {:>9.2} | {:>9.2} | {:>8.2}",
                    e.span.rhythm.key(),
                    e.span.start_s,
                    e.span.end_s,
                    e.span.end_s - e.span.start_s
                );
            }
        }
    }
    Ok(())
}

#[derive(Debug, Args)]
pub(super) struct EvalCvArgs {
    /// Dataset directory from `holterd dataset build`.
    #[arg(long)]
    data: PathBuf,
    /// Five-class architecture.
    #[arg(long, default_value = "context-mlp")]
    model: String,
    /// Records to validate within (default: DS1); comma-separated.
    #[arg(long, value_delimiter = ',')]
    records: Vec<String>,
    /// Folds (records dealt round-robin).
    #[arg(long, default_value_t = 4)]
    folds: usize,
    /// Seeds, comma-separated: one whole cross-validation each.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    seeds: Vec<u64>,
    /// Candidate weights of the normal class in the decision rule, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16")]
    normal_weights: Vec<f32>,
    /// Candidate premature rules for S, `RATIO:IRREGULARITY:CORRELATION:WARMUP[:VETO[:LOCAL:FAST_MS[:FAST_RATIO[:RUN_P]]]]` or `none`, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "none")]
    premature_rules: Vec<String>,
    #[arg(long, default_value_t = 60)]
    max_epochs: usize,
    #[arg(long, default_value_t = 8)]
    patience: usize,
    /// N beats kept per epoch, as a multiple of the largest other class.
    #[arg(long, default_value_t = 1.0)]
    normal_cap: f32,
    /// Candidate cluster rules for V, `RATIO:CORRELATION` or `none`, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "none")]
    cluster_rules: Vec<String>,
    /// Also train on a copy of each V beat with a normal beat's timing
    /// features (same record): V learned from its QRS, not its prematurity.
    #[arg(long)]
    v_timing_swap: bool,
}

/// Rules given on the command line, `none` standing for no rule.
fn optional_rules<T: std::str::FromStr<Err = String>>(list: &[String]) -> Result<Vec<Option<T>>> {
    list.iter()
        .map(|r| match r.as_str() {
            "none" => Ok(None),
            r => r.parse().map(Some).map_err(anyhow::Error::msg),
        })
        .collect()
}

/// `holterd eval cv`.
pub(super) fn eval_cv(a: EvalCvArgs) -> Result<()> {
    let set = crate::dataset::load(&a.data)?;
    let records = if a.records.is_empty() {
        DS1.iter().map(|s| s.to_string()).collect()
    } else {
        a.records.clone()
    };
    if let Some(r) = records.iter().find(|r| DS2.contains(&r.as_str())) {
        bail!("record {r} is a DS2 (test) record: model choices are made inside DS1 only");
    }
    let premature_rules = optional_rules(&a.premature_rules)?;
    let cluster_rules = optional_rules(&a.cluster_rules)?;
    let req = CvRequest {
        premature_rules: premature_rules.clone(),
        cluster_rules: cluster_rules.clone(),
        architecture: a.model.clone(),
        records,
        folds: a.folds,
        seeds: a.seeds.clone(),
        normal_weights: a.normal_weights.clone(),
        max_epochs: a.max_epochs,
        patience: a.patience,
        normal_cap: a.normal_cap,
        v_timing_swap: a.v_timing_swap,
    };
    let results = cross_validate(&set, &req, |line| eprintln!("{line}"))?;
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    println!(
        "{}: {}-fold leave-records-out cross-validation in {} records, held-out beats pooled per seed",
        a.model,
        a.folds,
        req.records.len()
    );
    let rule_name = |p: &Option<crate::model::decision::PrematureRule>| {
        p.map_or("none".to_string(), |p| p.to_string())
    };
    let cluster_name = |c: &Option<crate::model::decision::ClusterRule>| {
        c.map_or("none".to_string(), |c| c.to_string())
    };
    println!(
        "w_N | premature rule | cluster rule | seed | VEB Se | VEB +P | SVEB Se | SVEB +P | N flagged %   (seed all: the seeds' probabilities averaged, an ensemble)"
    );
    for r in &results {
        let s = &r.stats;
        println!(
            "{:>3} | {:>14} | {:>12} | {:>4} | {:>6} | {:>6} | {:>7} | {:>7} | {:>6}",
            r.normal_weight,
            rule_name(&r.premature),
            cluster_name(&r.cluster),
            r.seed.map_or("all".to_string(), |s| s.to_string()),
            f(s.veb_se),
            f(s.veb_ppv),
            f(s.sveb_se),
            f(s.sveb_ppv),
            s.n_flagged.map_or("-".into(), |v| format!("{v:.2}"))
        );
    }
    println!("mean ± sd over seeds:");
    let mut combos = Vec::new();
    for &w in &a.normal_weights {
        for p in &premature_rules {
            for c in &cluster_rules {
                combos.push((w, p, c));
            }
        }
    }
    for (w, p, c) in combos {
        let at: Vec<_> = results
            .iter()
            .filter(|r| {
                r.normal_weight == w && r.premature == *p && r.cluster == *c && r.seed.is_some()
            })
            .collect();
        let stat = |g: &dyn Fn(&crate::eval::Ec57Stats) -> Option<f64>| {
            let v: Vec<f64> = at.iter().filter_map(|r| g(&r.stats)).collect();
            let n = v.len().max(1) as f64;
            let m = v.iter().sum::<f64>() / n;
            let sd = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n).sqrt();
            format!("{m:.1}±{sd:.1}")
        };
        println!(
            "w_N {w}, premature {}, cluster {}: VEB Se {} +P {} | SVEB Se {} +P {} | N flagged {}",
            rule_name(p),
            cluster_name(c),
            stat(&|s| s.veb_se),
            stat(&|s| s.veb_ppv),
            stat(&|s| s.sveb_se),
            stat(&|s| s.sveb_ppv),
            stat(&|s| s.n_flagged)
        );
    }
    Ok(())
}
