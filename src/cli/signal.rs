//! The signal commands: `detect`, `eval detect`, `bench dsp` and `wfdb cut`.

use super::{LeadArgs, default_db, parse_finite, selected_records};
use crate::dsp::{BeatExtractor, ExtractorConfig};
use crate::eval::{self, DetectEvalOptions, DetectionScore, NoiseKind, RecordResult};
use crate::formats::wfdb;
use crate::formats::wfdb::LeadChoice;
use anyhow::{Context, Result, bail};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Args)]
pub(super) struct DetectArgs {
    /// Record: a path without extension (../shared/data/mitdb/100), or a name
    /// (100) looked up in --db, else among the bundled excerpts.
    record: PathBuf,
    /// Database directory for record names (default: $HOLTER_DATA_DIR/mitdb).
    #[arg(long)]
    db: Option<PathBuf>,
    #[command(flatten)]
    lead: LeadArgs,
    /// Output CSV file.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, Args)]
pub(super) struct EvalDetectArgs {
    /// Database directory (default: $HOLTER_DATA_DIR/mitdb).
    #[arg(long)]
    db: Option<PathBuf>,
    #[command(flatten)]
    lead: LeadArgs,
    /// Add electrode noise: bw or ma (recorded, from nstdb) or artefacts
    /// (synthetic steps, slow excursions and cable tugs).
    #[arg(long, requires = "snr")]
    noise: Option<NoiseKind>,
    /// Signal-to-noise ratio of the added noise, dB.
    #[arg(long, requires = "noise", allow_negative_numbers = true, value_parser = parse_finite)]
    snr: Option<f64>,
    /// Directory of the noise records (default: $HOLTER_DATA_DIR/nstdb).
    #[arg(long)]
    noise_dir: Option<PathBuf>,
    /// Only these records (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    records: Vec<String>,
    /// Samples per chunk fed to the extractor.
    #[arg(long, default_value_t = 256)]
    chunk: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also score ventricular flutter/fibrillation episodes, which EC57 leaves out.
    #[arg(long)]
    score_vf: bool,
    /// List the sample index of every missed beat and false detection.
    #[arg(long, conflicts_with = "json")]
    errors: bool,
    /// Exit with an error if gross sensitivity (%) is below this.
    #[arg(long, value_parser = parse_finite)]
    min_se: Option<f64>,
    /// Exit with an error if gross positive predictivity (%) is below this.
    #[arg(long, value_parser = parse_finite)]
    min_ppv: Option<f64>,
}

#[derive(Debug, Args)]
pub(super) struct BenchDspArgs {
    /// Database directory (default: $HOLTER_DATA_DIR/mitdb).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Records to stream (comma-separated; default: all).
    #[arg(long, value_delimiter = ',')]
    records: Vec<String>,
    /// Passes over the records; the fastest is reported.
    #[arg(long, default_value_t = 10)]
    passes: usize,
}

#[derive(Debug, Args)]
pub(super) struct CutArgs {
    /// Source record path without extension.
    record: PathBuf,
    /// Start, seconds.
    #[arg(long)]
    from: f64,
    /// End, seconds.
    #[arg(long)]
    to: f64,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Name of the new record (default: <record>_<from>).
    #[arg(long)]
    name: Option<String>,
}

pub(super) fn detect(a: DetectArgs) -> Result<()> {
    let record = wfdb::read_record(&wfdb::bundled::locate(
        &a.record,
        &default_db(a.db.clone()),
    )?)?;
    let channel = a
        .lead
        .choice()
        .channel(&record.header, &record.header_path)?;
    let config = ExtractorConfig {
        powerline_hz: a.lead.powerline.0,
        ..ExtractorConfig::new(record.header.fs)
    };
    let beats = BeatExtractor::extract_all(config, &record.physical(channel), 256)
        .with_context(|| record.header_path.display().to_string())?;
    let file = std::fs::File::create(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let mut w = std::io::BufWriter::new(file);
    write!(w, "sample,time_s,rr_prev_ms,rr_next_ms,quality")?;
    for i in 0..crate::dsp::BEAT_LEN {
        write!(w, ",v{i}")?;
    }
    writeln!(w)?;
    let opt = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_default();
    for b in &beats {
        write!(
            w,
            "{},{:.4},{},{},{}",
            b.sample,
            b.time_s,
            opt(b.rr_prev_ms),
            opt(b.rr_next_ms),
            b.quality.as_str()
        )?;
        for v in &b.values {
            write!(w, ",{v:.6}")?;
        }
        writeln!(w)?;
    }
    w.flush()?;
    eprintln!(
        "{}: {} beats from channel {channel} ({}) written to {}",
        record.header.record,
        beats.len(),
        record.header.signals[channel].description,
        a.out.display()
    );
    Ok(())
}

pub(super) fn eval_detect(a: EvalDetectArgs) -> Result<()> {
    let db = default_db(a.db);
    let opts = DetectEvalOptions {
        lead: a.lead.choice(),
        noise: a.noise.zip(a.snr),
        noise_dir: a
            .noise_dir
            .unwrap_or_else(|| crate::data_dir().join("nstdb")),
        chunk: a.chunk.max(1),
        powerline_hz: a.lead.powerline.0,
        score_vf: a.score_vf,
    };
    let mut results: Vec<RecordResult> = Vec::new();
    for name in selected_records(&db, &a.records)? {
        results.push(eval::eval_record(&db.join(&name), &opts)?);
    }
    let mut gross = DetectionScore::default();
    for r in &results {
        gross += r.score;
    }
    let mut out = std::io::stdout().lock();
    if a.json {
        let json = serde_json::json!({
            "records": results,
            "gross": {
                "tp": gross.tp, "fn": gross.fn_, "fp": gross.fp,
                "se": gross.se(), "ppv": gross.ppv(),
            },
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
    } else {
        writeln!(
            out,
            "{:>8} {:>7} {:>5} {:>5} {:>7} {:>7} {:>10} {:>10}",
            "record", "TP", "FN", "FP", "Se%", "+P%", "latency_s", "offset_ms"
        )?;
        for r in &results {
            writeln!(
                out,
                "{:>8} {:>7} {:>5} {:>5} {:>7.2} {:>7.2} {:>10.2} {:>5.1}±{:<4.1}",
                r.record,
                r.score.tp,
                r.score.fn_,
                r.score.fp,
                r.score.se(),
                r.score.ppv(),
                r.latency_mean_s,
                r.offset_mean_ms,
                r.offset_sd_ms
            )?;
            if a.errors {
                writeln!(out, "         missed: {:?}", r.missed)?;
                writeln!(out, "         false:  {:?}", r.false_detections)?;
            }
        }
        writeln!(
            out,
            "{:>8} {:>7} {:>5} {:>5} {:>7.2} {:>7.2}",
            "gross",
            gross.tp,
            gross.fn_,
            gross.fp,
            gross.se(),
            gross.ppv()
        )?;
    }
    if (a.min_se.is_some() || a.min_ppv.is_some()) && gross.tp + gross.fn_ == 0 {
        bail!("no beat was scored (records shorter than the 5-minute learning period?)");
    }
    if let Some(min) = a.min_se
        && gross.se() < min
    {
        bail!(
            "gross sensitivity {:.2} % is below the required {min} %",
            gross.se()
        );
    }
    if let Some(min) = a.min_ppv
        && gross.ppv() < min
    {
        bail!(
            "gross positive predictivity {:.2} % is below the required {min} %",
            gross.ppv()
        );
    }
    Ok(())
}

pub(super) fn bench_dsp(a: BenchDspArgs) -> Result<()> {
    let db = default_db(a.db);
    let mut signals = Vec::new();
    for name in selected_records(&db, &a.records)? {
        let record = wfdb::read_record(&db.join(&name))?;
        let channel = LeadChoice::Default.channel(&record.header, &record.header_path)?;
        signals.push((record.header.fs, record.physical(channel)));
    }
    let total: usize = signals.iter().map(|(_, s)| s.len()).sum();
    // Each record is timed `passes` times; its fastest run counts (the others
    // measure the machine's neighbours as much as the code). The median pass
    // total is printed too.
    let passes = a.passes.max(1);
    let mut best = vec![f64::INFINITY; signals.len()];
    let mut pass_totals = Vec::with_capacity(passes);
    let mut beats = 0;
    for _ in 0..passes {
        beats = 0;
        let mut pass_total = 0.0;
        for (i, (fs, signal)) in signals.iter().enumerate() {
            let start = Instant::now();
            beats += BeatExtractor::extract_all(ExtractorConfig::new(*fs), signal, 4096)?.len();
            let t = start.elapsed().as_secs_f64();
            best[i] = best[i].min(t);
            pass_total += t;
        }
        pass_totals.push(pass_total);
    }
    pass_totals.sort_by(f64::total_cmp);
    let fastest: f64 = best.iter().sum();
    let median = pass_totals[passes / 2];
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} records, {total} samples, {beats} beats, one thread, {passes} passes:\n  best per record: {fastest:.3} s = {:.1} million samples/s\n  median pass:     {median:.3} s = {:.1} million samples/s",
        signals.len(),
        total as f64 / fastest / 1e6,
        total as f64 / median / 1e6,
    )?;
    for fs in [125.0, 250.0, 360.0, 500.0, 1000.0] {
        let e = BeatExtractor::new(ExtractorConfig::new(fs))?;
        writeln!(
            out,
            "state per stream at {fs:>6} Hz: {:>6} bytes",
            e.memory_bytes()
        )?;
    }
    Ok(())
}

pub(super) fn cut(a: CutArgs) -> Result<()> {
    let cut = wfdb::cut_record(&a.record, a.from, a.to, &a.out, a.name.as_deref())?;
    eprintln!(
        "wrote {} ({} samples, {} annotations)",
        cut.record.display(),
        cut.samples,
        cut.annotations
    );
    Ok(())
}
