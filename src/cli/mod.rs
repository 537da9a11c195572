//! The `holterd` command line: it parses arguments and calls the library; one
//! file per command family: `signal` (detect, eval detect, bench dsp, wfdb
//! cut), `models` (dataset build, train, profile, eval classify, bench infer),
//! `daemon` (serve, migrate, replay, demo, analyze, check), `bench_pages` and
//! `auth`.

mod auth;
mod bench_pages;
mod bench_storage;
mod daemon;
mod evaluate;
mod models;
mod signal;

use crate::formats::wfdb;
use crate::formats::wfdb::LeadChoice;
use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};

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
    Detect(signal::DetectArgs),
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
    Train(models::TrainArgs),
    /// Fit shipped models' input profiles (abstention on beats unlike their training beats).
    Profile(models::ProfileArgs),
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
    Auth(auth::AuthCommand),
}

#[derive(Debug, Subcommand)]
enum DatasetCommand {
    /// Label every beat the extractor finds in a database and write it in the Kaggle CSV layout.
    Build(models::DatasetBuildArgs),
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
    /// The powerline frequency to notch.
    fn powerline(&self) -> Option<f64> {
        self.powerline.0
    }

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

#[derive(Debug, Subcommand)]
enum EvalCommand {
    /// Score QRS detection on every record of a database (AAMI EC57, beat by beat).
    Detect(signal::EvalDetectArgs),
    /// Score a trained classifier on a protocol's held-out beats.
    Classify(models::EvalClassifyArgs),
    /// Stream records through the whole pipeline and score its five-class verdicts as EC57 does.
    Ec57(evaluate::EvalEc57Args),
    /// Stream records through the whole pipeline and score its rhythm episodes (AF, VT, SVT, pauses …).
    Rhythm(evaluate::EvalRhythmArgs),
    /// Leave-records-out cross-validation of a five-class architecture inside DS1.
    Cv(evaluate::EvalCvArgs),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Single-core throughput and per-stream memory of the beat extractor.
    Dsp(signal::BenchDspArgs),
    /// Classifier inference throughput at batch sizes 1, 32 and 256.
    Infer(models::BenchInferArgs),
    /// Server time of the review pages for a device with a million stored beats.
    Pages(bench_pages::BenchPagesArgs),
    /// Bytes a sample of stored raw signal, and packing speed, on a WFDB database.
    Storage(bench_storage::BenchStorageArgs),
}

#[derive(Debug, Subcommand)]
enum WfdbCommand {
    /// Cut a stretch of a record (all signals, with its annotations) into a new format-16 record.
    Cut(signal::CutArgs),
}

/// An error and its causes on one line, each cause once. Many errors repeat
/// their source in their own message (`path: No such file…` over the I/O
/// error that says `No such file…`); a cause whose text the line already holds
/// is left out, and so is an I/O "not found" under a message that says it.
pub fn error_report(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        let said_not_found = line.contains("not found")
            && cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound);
        if text.is_empty() || line.contains(&text) || said_not_found {
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
        Command::Detect(a) => signal::detect(a),
        Command::Eval(EvalCommand::Detect(a)) => signal::eval_detect(a),
        Command::Eval(EvalCommand::Classify(a)) => models::eval_classify(a),
        Command::Eval(EvalCommand::Ec57(a)) => evaluate::eval_ec57(a),
        Command::Eval(EvalCommand::Rhythm(a)) => evaluate::eval_rhythm(a),
        Command::Eval(EvalCommand::Cv(a)) => evaluate::eval_cv(a),
        Command::Train(a) => models::train(a),
        Command::Bench(BenchCommand::Dsp(a)) => signal::bench_dsp(a),
        Command::Bench(BenchCommand::Infer(a)) => models::bench_infer(a),
        Command::Bench(BenchCommand::Pages(a)) => bench_pages::bench_pages(a),
        Command::Bench(BenchCommand::Storage(a)) => bench_storage::bench_storage(a),
        Command::Wfdb(WfdbCommand::Cut(a)) => signal::cut(a),
        Command::Dataset(DatasetCommand::Build(a)) => models::dataset_build(a),
        Command::Profile(a) => models::profile(a),
        Command::Serve(a) => daemon::serve(a),
        Command::Migrate(a) => daemon::migrate(a),
        Command::Replay(a) => daemon::replay_command(a),
        Command::Demo(a) => daemon::demo(a),
        Command::Analyze(a) => daemon::analyze(a),
        Command::Check(a) => daemon::check(a),
        Command::Auth(c) => auth::auth_command(c),
    }
}

/// The records of `db` named in `only` (all when empty), with an error that says what to set.
pub(super) fn selected_records(db: &Path, only: &[String]) -> Result<Vec<String>> {
    if !db.is_dir() {
        bail!(
            "{}: not found: this command needs the whole database; set HOLTER_DATA_DIR to a directory holding mitdb/ (the MIT-BIH Arrhythmia Database) or pass --db DIR (the bundled excerpts serve demo, replay, detect, analyze and check)",
            db.display()
        );
    }
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

fn default_db(db: Option<PathBuf>) -> PathBuf {
    db.unwrap_or_else(|| crate::data_dir().join("mitdb"))
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
            "reading the demo records: x/100.hea: not found"
        );
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "Permission denied");
        let e = anyhow::Error::new(crate::formats::wfdb::WfdbError::Io {
            path: "x/100.dat".into(),
            source: io,
        });
        assert_eq!(error_report(&e), "x/100.dat: Permission denied");
        let e = anyhow::anyhow!("pool timed out").context("cannot open the store");
        assert_eq!(error_report(&e), "cannot open the store: pool timed out");
    }
}
