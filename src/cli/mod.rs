//! The `holterd` command line: argument parsing and one function per command.
//! The daemon's commands (`serve`, `migrate`, `replay`, `demo`, `analyze`) are in [`daemon`].

mod bench_pages;
mod daemon;

use crate::dsp::{BeatExtractor, ExtractorConfig};
use crate::eval::{self, DetectEvalOptions, DetectionScore, NoiseKind, RecordResult};
use crate::formats::wfdb;
use crate::formats::wfdb::LeadChoice;
use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Streaming Holter ECG analysis.
#[derive(Debug, Parser)]
#[command(name = "holterd", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Extract every beat of a WFDB record into a CSV file.
    Detect(DetectArgs),
    /// Evaluate against reference annotations.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Measure throughput.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// WFDB utilities.
    #[command(subcommand)]
    Wfdb(WfdbCommand),
    /// Training data.
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// Train a beat classifier with the seed paper's recipe.
    Train(TrainArgs),
    /// Fit shipped models' input profiles (abstention on beats unlike their training beats).
    Profile(ProfileArgs),
    /// Run the daemon: MQTT in, verdicts stored, HTTP health and metrics.
    Serve(daemon::ServeArgs),
    /// Apply the database migrations and exit.
    Migrate(daemon::MigrateArgs),
    /// Publish WFDB records as simulated devices (demos, tests, load tests).
    Replay(daemon::ReplayArgs),
    /// Run the daemon on the embedded broker and SQLite with simulated devices.
    Demo(daemon::DemoArgs),
    /// The daemon's verdict for every beat of one record, computed offline, as CSV.
    Analyze(daemon::AnalyzeArgs),
    /// Compare the beats a daemon stored for replayed records with their offline analysis.
    Check(daemon::CheckArgs),
    /// Logins and API tokens for the web view and API.
    #[command(subcommand)]
    Auth(AuthCommand),
}

#[derive(Debug, Subcommand)]
enum AuthCommand {
    /// Read a password from stdin and print its Argon2 hash for `http.users`.
    HashPassword,
    /// Print a new API token (shown once) and the `http.tokens` entry that accepts it.
    NewToken {
        /// Name the token is logged under.
        #[arg(long)]
        name: String,
        /// viewer or uploader.
        #[arg(long, default_value = "viewer")]
        role: String,
    },
}

fn auth_command(c: AuthCommand) -> Result<()> {
    match c {
        AuthCommand::HashPassword => {
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            if password.len() < 12 {
                bail!("use a password of at least 12 characters");
            }
            println!("{}", crate::http::auth::hash_password(password));
        }
        AuthCommand::NewToken { name, role } => {
            if !matches!(role.as_str(), "viewer" | "uploader") {
                bail!("--role must be viewer or uploader");
            }
            let (token, digest) = crate::http::auth::new_token();
            eprintln!("token (give it to the client; it is not stored anywhere):");
            println!("{token}");
            eprintln!("add to [http] tokens in the configuration:");
            eprintln!("{{ name = \"{name}\", role = \"{role}\", sha256 = \"{digest}\" }}");
        }
    }
    Ok(())
}

#[derive(Debug, Args)]
struct ProfileArgs {
    /// Directory written by `holterd dataset build`.
    #[arg(long)]
    data: PathBuf,
    /// Model directories whose cards get the profile of their protocol's training beats.
    #[arg(required = true)]
    models: Vec<PathBuf>,
}

#[derive(Debug, Args)]
struct TrainArgs {
    /// Architecture: cnn-lstm, cnn-lstm-dropout or transformer.
    #[arg(long)]
    model: String,
    /// Directory written by `holterd dataset build`.
    #[arg(long)]
    data: PathBuf,
    /// Output directory (default: models/<model>-<protocol>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Which beats to train on: the protocol's training part.
    #[arg(long, value_enum, default_value = "intra")]
    protocol: crate::dataset::Protocol,
    /// Seed of training's random choices: the balancing, the 70/30 split, the
    /// initial weights and the batch order (the `intra` 80/20 split is fixed).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Upper limit on epochs (early stopping usually ends sooner).
    #[arg(long, default_value_t = 200)]
    max_epochs: usize,
    /// Epochs without a better validation loss before stopping (the paper's is 10).
    #[arg(long, default_value_t = 10)]
    patience: usize,
    /// Redraw the down-sampled class's training beats every epoch from all
    /// of them, instead of once (the paper drew once and left the rest unused).
    #[arg(long)]
    redraw_each_epoch: bool,
    /// Also train on the training records' beats of these datasets (built with
    /// `dataset build --noise`); `inter` only, where the split is by patient,
    /// so no noisy copy of a scored beat can be trained on.
    #[arg(long)]
    augment: Vec<PathBuf>,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(Debug, Subcommand)]
enum DatasetCommand {
    /// Label every beat the extractor finds in a database and write it in the Kaggle CSV layout.
    Build(DatasetBuildArgs),
}

#[derive(Debug, Args)]
struct DatasetBuildArgs {
    /// Database directory (default: $HOLTER_DATA_DIR/mitdb).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Only these records (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    records: Vec<String>,
    #[command(flatten)]
    lead: LeadArgs,
    /// Add recorded electrode noise (bw: baseline wander, ma: muscle artefact)
    /// as the noise stress test does, and keep only the beats in noisy segments:
    /// an augmentation set for `train --augment`.
    #[arg(long)]
    noise: Option<NoiseKind>,
    /// Signal-to-noise ratio of the added noise, dB.
    #[arg(long, default_value_t = 6.0, requires = "noise")]
    snr: f64,
    /// Directory of the noise records (default: $HOLTER_DATA_DIR/nstdb).
    #[arg(long, requires = "noise")]
    noise_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct LeadArgs {
    /// Channel index to analyse (default: the MLII lead, else channel 0).
    #[arg(long, conflicts_with = "lead")]
    channel: Option<usize>,
    /// Lead name to analyse, e.g. MLII or V5.
    #[arg(long)]
    lead: Option<String>,
    /// Powerline frequency to notch out: 50, 60 or none.
    #[arg(long, default_value = "60", value_parser = parse_powerline)]
    powerline: Powerline,
}

impl Default for LeadArgs {
    fn default() -> Self {
        LeadArgs {
            channel: None,
            lead: None,
            powerline: Powerline(Some(60.0)),
        }
    }
}

/// A powerline frequency to notch, or none.
#[derive(Debug, Clone, Copy)]
struct Powerline(Option<f64>);

impl LeadArgs {
    fn choice(&self) -> LeadChoice {
        match (&self.channel, &self.lead) {
            (Some(c), _) => LeadChoice::Channel(*c),
            (None, Some(l)) => LeadChoice::Lead(l.clone()),
            (None, None) => LeadChoice::Default,
        }
    }
}

fn parse_finite(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("{s:?} is not a finite number")),
    }
}

fn parse_powerline(s: &str) -> Result<Powerline, String> {
    match s {
        "none" => Ok(Powerline(None)),
        "50" => Ok(Powerline(Some(50.0))),
        "60" => Ok(Powerline(Some(60.0))),
        _ => Err(format!("{s:?}: use 50, 60 or none")),
    }
}

#[derive(Debug, Args)]
struct DetectArgs {
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

#[derive(Debug, Subcommand)]
enum EvalCommand {
    /// Score QRS detection on every record of a database (AAMI EC57, beat by beat).
    Detect(EvalDetectArgs),
    /// Score a trained classifier on a protocol's held-out beats.
    Classify(EvalClassifyArgs),
}

#[derive(Debug, Args)]
struct EvalClassifyArgs {
    /// Model directory (with card.json and weights.safetensors), e.g. models/cnn-lstm-intra;
    /// several, comma-separated, form an ensemble that averages their class probabilities.
    #[arg(long, value_delimiter = ',', required = true)]
    model: Vec<PathBuf>,
    /// Database directory (default: $HOLTER_DATA_DIR/mitdb).
    #[arg(long, conflicts_with = "data")]
    db: Option<PathBuf>,
    /// Score the protocol's test beats of this dataset (from `holterd dataset
    /// build`, e.g. a noisy one) instead of extracting them from the database.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Protocol (default: the one the model was trained under).
    #[arg(long, value_enum)]
    protocol: Option<crate::dataset::Protocol>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write each scored beat's probability of being abnormal to this CSV
    /// (record, sample, AAMI class, p_abnormal), for ROC or calibration plots.
    #[arg(long)]
    probabilities: Option<PathBuf>,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(Debug, Args)]
struct EvalDetectArgs {
    /// Database directory (default: $HOLTER_DATA_DIR/mitdb).
    #[arg(long)]
    db: Option<PathBuf>,
    #[command(flatten)]
    lead: LeadArgs,
    /// Add recorded electrode noise from nstdb: bw or ma.
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

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Single-core throughput and per-stream memory of the beat extractor.
    Dsp(BenchDspArgs),
    /// Classifier inference throughput at batch sizes 1, 32 and 256.
    Infer(BenchInferArgs),
    /// Server time of the review pages for a device with a million stored beats.
    Pages(bench_pages::BenchPagesArgs),
}

#[derive(Debug, Args)]
struct BenchInferArgs {
    /// Architecture to time (untrained weights time the same): cnn-lstm, cnn-lstm-dropout or transformer.
    #[arg(long, default_value = "cnn-lstm")]
    model: String,
    /// Seconds to run each batch size.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(Debug, Args)]
struct BenchDspArgs {
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

#[derive(Debug, Subcommand)]
enum WfdbCommand {
    /// Cut a stretch of a record (all signals, with its annotations) into a new format-16 record.
    Cut(CutArgs),
}

#[derive(Debug, Args)]
struct CutArgs {
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

/// An error and its causes on one line, each cause once. Many errors repeat
/// their source in their own message (`path: No such file…` over the I/O
/// error that says `No such file…`); a cause whose text the line already holds
/// is left out.
pub fn error_report(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Parses the command line and runs the command.
pub fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Detect(a) => detect(a),
        Command::Eval(EvalCommand::Detect(a)) => eval_detect(a),
        Command::Eval(EvalCommand::Classify(a)) => eval_classify(a),
        Command::Train(a) => train(a),
        Command::Bench(BenchCommand::Dsp(a)) => bench_dsp(a),
        Command::Bench(BenchCommand::Infer(a)) => bench_infer(a),
        Command::Bench(BenchCommand::Pages(a)) => bench_pages::bench_pages(a),
        Command::Wfdb(WfdbCommand::Cut(a)) => cut(a),
        Command::Dataset(DatasetCommand::Build(a)) => dataset_build(a),
        Command::Profile(a) => profile(a),
        Command::Serve(a) => daemon::serve(a),
        Command::Migrate(a) => daemon::migrate(a),
        Command::Replay(a) => daemon::replay_command(a),
        Command::Demo(a) => daemon::demo(a),
        Command::Analyze(a) => daemon::analyze(a),
        Command::Check(a) => daemon::check(a),
        Command::Auth(c) => auth_command(c),
    }
}

fn default_db(db: Option<PathBuf>) -> PathBuf {
    db.unwrap_or_else(|| crate::data_dir().join("mitdb"))
}

fn detect(a: DetectArgs) -> Result<()> {
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

fn selected_records(db: &Path, only: &[String]) -> Result<Vec<String>> {
    let all = wfdb::list_records(db)?;
    if all.is_empty() {
        bail!(
            "{}: no WFDB records with .atr annotations found; set --db or HOLTER_DATA_DIR",
            db.display()
        );
    }
    if only.is_empty() {
        return Ok(all);
    }
    for r in only {
        if !all.contains(r) {
            bail!("{}: no record {r} with annotations", db.display());
        }
    }
    Ok(only.to_vec())
}

fn eval_detect(a: EvalDetectArgs) -> Result<()> {
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

fn bench_dsp(a: BenchDspArgs) -> Result<()> {
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

fn train(a: TrainArgs) -> Result<()> {
    use crate::dataset::{self, protocol_split};
    use crate::formats::wfdb::AamiClass;
    use crate::model::card::{Evaluation, ModelCard};
    use crate::model::metrics::AamiConfusion;
    use crate::model::profile::InputProfile;
    use crate::model::train::{
        TrainConfig, class_balanced_split, paper_split, predict, predict_classes, train,
    };
    use crate::model::{Network, Params, SplitMix64};
    let device = crate::model::device(&a.device)?;
    let mut set = dataset::load(&a.data)?;
    let (mut train_idx, test_idx) = protocol_split(&set, a.protocol);
    let mut augmentation = Vec::new();
    if !a.augment.is_empty() && a.protocol != dataset::Protocol::Inter {
        bail!(
            "--augment needs --protocol inter: under intra, a noisy copy of a scored beat could be trained on"
        );
    }
    for dir in &a.augment {
        let extra = dataset::load(dir)?;
        let (extra_train, _) = protocol_split(&extra, a.protocol);
        let offset = set.len();
        augmentation.push(format!(
            "{} readable beats of the training records: {}",
            extra_train.len(),
            dataset::source(dir)
        ));
        train_idx.extend(extra_train.iter().map(|&i| i + offset));
        set.append(extra);
    }
    let mut params = Params::new(&device);
    let network = Network::build(&a.model, &mut params, &mut SplitMix64::new(a.seed))?;
    // Binary models learn normal/abnormal with the paper's balancing; five-class
    // models learn the AAMI classes with N down-sampled only.
    let five_class = network.classes() == AamiClass::ALL.len();
    let (labels, split) = if five_class {
        let labels: Vec<u8> = set.class.iter().map(|c| c.index() as u8).collect();
        let split = class_balanced_split(&labels, &train_idx, a.seed);
        (labels, split)
    } else {
        let labels = set.binary();
        let split = paper_split(&labels, &train_idx, a.seed);
        (labels, split)
    };
    let train_config = TrainConfig {
        seed: a.seed,
        max_epochs: a.max_epochs,
        patience: a.patience,
        redraw_each_epoch: a.redraw_each_epoch,
        ..TrainConfig::default()
    };
    // The card's name is its directory's, which the catalogue offers it by.
    let default_name = format!("{}-{}", a.model, format!("{:?}", a.protocol).to_lowercase());
    let out = a
        .out
        .unwrap_or_else(|| PathBuf::from("models").join(&default_name));
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or(default_name);
    eprintln!(
        "{name}: {} parameters; {} beats for training ({} train / {} validation / {} test after balancing), {} held out for evaluation",
        params.count(),
        train_idx.len(),
        split.train.len(),
        split.validation.len(),
        split.test.len(),
        test_idx.len()
    );
    let start = Instant::now();
    let rr = set.rr_features();
    let outcome = train(
        &network,
        &params,
        &set.values,
        Some(&rr),
        &labels,
        &split,
        &train_config,
        |epoch, b, n, loss| {
            eprint!("\repoch {epoch:>3}  batch {b:>4}/{n}  loss {loss:.4}   ");
        },
    )?;
    eprintln!();
    for e in &outcome.history {
        eprintln!(
            "epoch {:>3}: loss {:.4} acc {:.4} | val loss {:.4} acc {:.4} | {:.1} s",
            e.epoch, e.loss, e.accuracy, e.val_loss, e.val_accuracy, e.seconds
        );
    }
    let p = predict(&network, &params, &set.values, Some(&rr), &test_idx, 1024)?;
    let classes: Vec<_> = test_idx.iter().map(|&i| set.class[i]).collect();
    let input_profile = InputProfile::fit(train_idx.iter().map(|&i| &set.values[i]));
    let mut evaluation = Evaluation::compute(a.protocol, &p, &classes);
    evaluation.abstained = Some(count_outliers(&input_profile, &set, &test_idx));
    if five_class {
        let predicted =
            predict_classes(&network, &params, &set.values, Some(&rr), &test_idx, 1024)?;
        let reference: Vec<usize> = classes.iter().map(|c| c.index()).collect();
        evaluation.aami = Some(AamiConfusion::compute(&predicted, &reference));
    }
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    params.save(&out.join("weights.safetensors"))?;
    let card = ModelCard {
        name,
        architecture: a.model.clone(),
        parameters: params.count(),
        protocol: a.protocol,
        train_config,
        split_sizes: [split.train.len(), split.validation.len(), split.test.len()],
        epochs_run: outcome.history.len(),
        best_epoch: outcome.best_epoch,
        training_seconds: start.elapsed().as_secs_f64(),
        history: outcome.history,
        recipe_test: outcome.test,
        evaluation,
        holterd_version: env!("CARGO_PKG_VERSION").to_string(),
        input_profile: Some(input_profile),
        augmentation,
    };
    std::fs::write(out.join("card.json"), serde_json::to_string_pretty(&card)?)
        .with_context(|| format!("cannot write {}", out.join("card.json").display()))?;
    print_evaluation(&card.evaluation, false)?;
    eprintln!("saved {}", out.display());
    Ok(())
}

/// How many of the beats `idx` of `set` lie outside `profile`.
fn count_outliers(
    profile: &crate::model::profile::InputProfile,
    set: &crate::dataset::BeatSet,
    idx: &[usize],
) -> usize {
    idx.iter()
        .filter(|&&i| profile.outlier(&set.values[i]).is_some())
        .count()
}

fn profile(a: ProfileArgs) -> Result<()> {
    use crate::dataset::{self, protocol_split};
    use crate::model::card::ModelCard;
    use crate::model::profile::InputProfile;
    let set = dataset::load(&a.data)?;
    for dir in &a.models {
        let path = dir.join("card.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut card: ModelCard = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a model card", path.display()))?;
        let (train_idx, test_idx) = protocol_split(&set, card.protocol);
        let profile = InputProfile::fit(train_idx.iter().map(|&i| &set.values[i]));
        let abstained = count_outliers(&profile, &set, &test_idx);
        eprintln!(
            "{}: profile of {} training beats; abstains on {abstained} of {} test beats ({:.3} %)",
            card.name,
            profile.fitted_on,
            test_idx.len(),
            100.0 * abstained as f64 / test_idx.len().max(1) as f64
        );
        card.evaluation.abstained = Some(abstained);
        card.input_profile = Some(profile);
        std::fs::write(&path, serde_json::to_string_pretty(&card)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn print_evaluation(e: &crate::model::card::Evaluation, json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(e)?)?;
        return Ok(());
    }
    let m = &e.metrics;
    writeln!(
        out,
        "{:?} protocol, {} beats: accuracy {:.4}  precision {:.4}  recall {:.4}  F1 {:.4}  kappa {:.4}  ROC AUC {:.4}",
        e.protocol, e.beats, m.accuracy, m.precision, m.recall, m.f1, m.kappa, m.roc_auc
    )?;
    writeln!(
        out,
        "confusion (abnormal positive): TP {}  FP {}  FN {}  TN {}",
        m.tp, m.fp, m.fn_, m.tn
    )?;
    for (c, o) in &e.per_class {
        let what = if *c == crate::formats::wfdb::AamiClass::N {
            "specificity"
        } else {
            "sensitivity"
        };
        let rate = if o.beats == 0 {
            "–".to_string()
        } else {
            format!("{:.4}", o.rate)
        };
        writeln!(out, "  {c:?}: {:>6} beats, {what} {rate}", o.beats)?;
    }
    if let Some(aami) = &e.aami {
        writeln!(out, "AAMI classes (rows reference, columns predicted):")?;
        writeln!(
            out,
            "       N       S       V       F       Q     Se      +P"
        )?;
        for (c, row) in crate::formats::wfdb::AamiClass::ALL
            .iter()
            .zip(&aami.confusion)
        {
            let i = c.index();
            write!(out, "{c:?}")?;
            for v in row {
                write!(out, " {v:>7}")?;
            }
            writeln!(
                out,
                "  {:.4}  {:.4}",
                aami.sensitivity[i], aami.positive_predictivity[i]
            )?;
        }
    }
    if let Some(n) = e.abstained {
        writeln!(
            out,
            "abstains (verdict unreadable) on {n} of these beats ({:.3} %): unlike its training beats",
            100.0 * n as f64 / e.beats.max(1) as f64
        )?;
    }
    Ok(())
}

fn eval_classify(a: EvalClassifyArgs) -> Result<()> {
    use crate::dataset::{from_db, protocol_split};
    use crate::model::card::Evaluation;
    use crate::model::classifier::Classifier;
    let device = crate::model::device(&a.device)?;
    let classifier = Classifier::load(&a.model, &device)?;
    let first = &classifier.members()[0].card;
    let protocol = a.protocol.unwrap_or(first.protocol);
    let set = match &a.data {
        Some(dir) => crate::dataset::load(dir)?,
        None => {
            let db = default_db(a.db);
            let records = selected_records(&db, &[])?;
            from_db(&db, &records, &LeadChoice::Default)?.0
        }
    };
    let (_, test_idx) = protocol_split(&set, protocol);
    let rr = set.rr_features();
    let p = classifier.p_abnormal_of(&set.values, Some(&rr), &test_idx, 1024)?;
    if let Some(path) = &a.probabilities {
        write_probabilities(path, &set, &test_idx, &p)?;
    }
    let aami = match classifier.members() {
        [m] if m.network.classes() == crate::formats::wfdb::AamiClass::ALL.len() => {
            let predicted = crate::model::train::predict_classes(
                &m.network,
                &m.params,
                &set.values,
                Some(&rr),
                &test_idx,
                1024,
            )?;
            let reference: Vec<usize> = test_idx.iter().map(|&i| set.class[i].index()).collect();
            Some(crate::model::metrics::AamiConfusion::compute(
                &predicted, &reference,
            ))
        }
        _ => None,
    };
    let classes: Vec<_> = test_idx.iter().map(|&i| set.class[i]).collect();
    let mut evaluation = Evaluation::compute(protocol, &p, &classes);
    evaluation.aami = aami;
    evaluation.abstained = Some(
        test_idx
            .iter()
            .filter(|&&i| classifier.out_of_distribution(&set.values[i]).is_some())
            .count(),
    );
    print_evaluation(&evaluation, a.json)
}

fn write_probabilities(
    path: &Path,
    set: &crate::dataset::BeatSet,
    idx: &[usize],
    p: &[f32],
) -> Result<()> {
    let mut out = String::from("record,sample,class,p_abnormal\n");
    for (&i, p) in idx.iter().zip(p) {
        out.push_str(&format!(
            "{},{},{:?},{p}\n",
            set.record[i], set.sample[i], set.class[i]
        ));
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

fn dataset_build(a: DatasetBuildArgs) -> Result<()> {
    let db = default_db(a.db);
    let records = selected_records(&db, &a.records)?;
    let config = |fs| ExtractorConfig {
        powerline_hz: a.lead.powerline.0,
        ..ExtractorConfig::new(fs)
    };
    let noise = match a.noise {
        None => None,
        Some(kind) => {
            let path = a
                .noise_dir
                .unwrap_or_else(|| crate::data_dir().join("nstdb"))
                .join(kind.record());
            let rec = wfdb::read_record(&path)?;
            Some(crate::dataset::NoiseMix {
                name: kind.record().to_string(),
                signal: rec.physical(0),
                fs: rec.header.fs,
                snr_db: a.snr,
            })
        }
    };
    let s = crate::dataset::build(
        &db,
        &records,
        &a.lead.choice(),
        config,
        noise.as_ref(),
        &a.out,
    )?;
    let [n, sv, v, f, q] = s.per_class;
    eprintln!(
        "{} records: {} labelled beats (N {n}, S {sv}, V {v}, F {f}, Q {q}; {} unreadable), {} unmatched detections kept apart, in {}",
        s.records,
        s.per_class.iter().sum::<usize>(),
        s.unreadable,
        s.unmatched,
        a.out.display()
    );
    Ok(())
}

fn bench_infer(a: BenchInferArgs) -> Result<()> {
    use crate::model::cpu::CpuNetwork;
    use crate::model::{Network, Params, SplitMix64};
    let device = crate::model::device(&a.device)?;
    let mut params = Params::new(&device);
    let mut rng = SplitMix64::new(1);
    let network = Network::build(&a.model, &mut params, &mut rng)?;
    let cpu = if device.is_cpu() {
        CpuNetwork::from_network(&network, &params)?
    } else {
        None
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} ({} parameters) on {}, RAYON_NUM_THREADS={}; beats/s over {} s per cell",
        a.model,
        params.count(),
        a.device,
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "unset".into()),
        a.seconds
    )?;
    let naive = match &network {
        Network::Transformer(t) => Some(t),
        Network::CnnLstm(_) | Network::PatchTransformer(_) => None,
    };
    writeln!(
        out,
        "batch | holterd CPU path | candle{}",
        if naive.is_some() {
            " | candle, naive attention"
        } else {
            ""
        }
    )?;
    // A GPU only fills up with far larger batches than a CPU core.
    let batches: &[usize] = if device.is_cpu() {
        &[1, 32, 256]
    } else {
        &[1, 32, 256, 4096]
    };
    for &batch in batches {
        let beats: Vec<f32> = (0..batch * crate::dsp::BEAT_LEN)
            .map(|_| rng.next_f32())
            .collect();
        let x =
            candle_core::Tensor::from_vec(beats.clone(), (batch, crate::dsp::BEAT_LEN), &device)?;
        let k = network.rr_features();
        let rr: Vec<f32> = (0..batch * k).map(|_| 0.5 + rng.next_f32()).collect();
        let rr_tensor = (k > 0)
            .then(|| candle_core::Tensor::from_vec(rr.clone(), (batch, k), &device))
            .transpose()?;
        let rr = (k > 0).then_some(&rr[..]);
        // Reading results back makes the work complete on any device.
        let cpu_rate = match &cpu {
            Some(c) => format!(
                "{:.0}",
                rate(batch, a.seconds, || Ok(c.probabilities(&beats, rr)?.len()))?
            ),
            None => "–".into(),
        };
        let candle_rate = rate(batch, a.seconds, || {
            Ok(network
                .forward(&params, &x, rr_tensor.as_ref(), None)?
                .to_vec2::<f32>()?
                .len())
        })?;
        write!(out, "{batch:>5} | {cpu_rate:>16} | {candle_rate:>6.0}")?;
        if let Some(t) = naive {
            // The naive form costs about 0.6 GFLOP per beat: timed up to batch 32 only.
            if batch <= 32 {
                let r = rate(batch, a.seconds, || {
                    Ok(t.forward_naive(&params, &x)?.to_vec2::<f32>()?.len())
                })?;
                write!(out, " | {r:.1}")?;
            } else {
                write!(out, " | –")?;
            }
        }
        writeln!(out)?;
    }
    Ok(())
}

/// Beats per second of `run` (one batch of `batch` beats per call) over about `seconds`, after one warm-up call.
fn rate(batch: usize, seconds: f64, mut run: impl FnMut() -> Result<usize>) -> Result<f64> {
    run()?;
    let start = Instant::now();
    let mut n = 0usize;
    while start.elapsed().as_secs_f64() < seconds {
        run()?;
        n += batch;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn cut(a: CutArgs) -> Result<()> {
    let name = match a.name {
        Some(n) => n,
        None => {
            let stem = a
                .record
                .file_name()
                .map(|s| s.to_string_lossy().into_owned());
            format!("{}_{}", stem.unwrap_or_default(), a.from as u64)
        }
    };
    let cut = wfdb::cut_record(&a.record, a.from, a.to, &a.out, &name)?;
    eprintln!(
        "wrote {} ({} samples, {} annotations)",
        cut.record.display(),
        cut.samples,
        cut.annotations
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::error_report;

    #[test]
    fn each_cause_is_reported_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let wfdb = crate::formats::wfdb::WfdbError::Io {
            path: "x/100.hea".into(),
            source: io,
        };
        let e = anyhow::Error::new(wfdb).context("reading the demo records");
        assert_eq!(
            error_report(&e),
            "reading the demo records: x/100.hea: No such file or directory"
        );
        let e = anyhow::anyhow!("pool timed out").context("cannot open the store");
        assert_eq!(error_report(&e), "cannot open the store: pool timed out");
    }
}
