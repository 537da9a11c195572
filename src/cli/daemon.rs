//! Commands around the daemon: `serve`, `migrate`, `replay`, `demo` and the
//! offline reference `analyze`.

use super::{LeadArgs, default_db};
use crate::config::Config;
use crate::formats::wfdb::{self, Recording};
use crate::metrics::Metrics;
use crate::model::classifier::Classifier;
use crate::pipeline::offline::analyze_recording;
use crate::replay::{Encoding, ReplayOptions, replay};
use crate::server::{Listeners, run, termination_signal};
use crate::store::{AnyStore, Store};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// Where the configuration comes from.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Configuration file (TOML; see config/holterd.toml). Without it, defaults apply.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override one key, e.g. --set store.url=postgres://localhost/test (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    overrides: Vec<String>,
}

impl ConfigArgs {
    fn load(&self) -> Result<Config> {
        Ok(Config::load(
            self.config.as_deref(),
            std::env::vars(),
            &self.overrides,
        )?)
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Broker address, host:port.
    #[arg(long, default_value = "127.0.0.1:1884")]
    broker: String,
    /// Records to play (names in --db, or "all"); devices take them in turn.
    #[arg(long, value_delimiter = ',', default_value = "100,119,201,221,232")]
    records: Vec<String>,
    /// Database directory (default: $HOLTER_DATA_DIR/mitdb).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Number of simulated devices (default: one per record).
    #[arg(long)]
    devices: Option<usize>,
    /// Device ids are <prefix>-<n>; "record" names each device after its record (one per record).
    #[arg(long, default_value = "sim")]
    device_prefix: String,
    /// 1 = real time, 10 = ten times faster, 0 = as fast as possible.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Signal per message, ms.
    #[arg(long, default_value_t = 250)]
    chunk_ms: u64,
    #[arg(long, value_enum, default_value = "binary")]
    encoding: Encoding,
    /// End each device's stream with an "end" message (flushes its last beats at once).
    #[arg(long)]
    end: bool,
    /// Start this many seconds into each record, numbering messages as if the earlier ones had been sent.
    #[arg(long, default_value_t = 0.0)]
    from_seconds: f64,
    /// Stop this many seconds into each record (0: at its end).
    #[arg(long, default_value_t = 0.0)]
    max_seconds: f64,
    /// Stream id (change it to start a device's numbering afresh).
    #[arg(long, default_value_t = 0)]
    stream: u32,
    /// Time of the first sample, µs since the Unix epoch (default: now).
    #[arg(long)]
    t0_us: Option<i64>,
    /// Devices sharing one MQTT connection.
    #[arg(long, default_value_t = 50)]
    devices_per_connection: usize,
    #[command(flatten)]
    lead: LeadArgs,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Records the simulated devices play (names, or "all"; see `holterd detect --help`).
    #[arg(long, value_delimiter = ',', default_value = "100,119,201,221,232")]
    records: Vec<String>,
    /// Replay speed (1 = real time).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Records that were replayed ("all": every record in --db).
    #[arg(long, value_delimiter = ',', default_value = "100,119,201,221,232")]
    records: Vec<String>,
    /// Database directory (default: $HOLTER_DATA_DIR/mitdb).
    #[arg(long)]
    db: Option<PathBuf>,
    /// As given to `replay`: "record" (devices named after records) or a prefix (<prefix>-<n>).
    #[arg(long, default_value = "record")]
    device_prefix: String,
    /// As given to `replay`.
    #[arg(long)]
    t0_us: i64,
    /// As given to `replay`: only this many seconds of each record were sent (0: all).
    #[arg(long, default_value_t = 0.0)]
    max_seconds: f64,
    #[command(flatten)]
    lead: LeadArgs,
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Record: a path without extension (../shared/data/mitdb/100), or a name
    /// (100) looked up in --db, else among the bundled excerpts.
    record: PathBuf,
    /// Database directory for record names (default: $HOLTER_DATA_DIR/mitdb).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Model directories (several: an ensemble).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = crate::model::DEFAULT_MODEL
    )]
    model: Vec<PathBuf>,
    /// Time of the first sample, µs since the Unix epoch.
    #[arg(long, default_value_t = 0)]
    t0_us: i64,
    /// Probability of "abnormal" at or above which a binary model flags a beat (five-class models decide by their card's rule).
    #[arg(long, default_value_t = 0.5)]
    threshold: f32,
    /// Output CSV.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    lead: LeadArgs,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Logs to stderr; `RUST_LOG` filters (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rumqttd=off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn open_store(config: &Config) -> Result<AnyStore> {
    let store = AnyStore::open(
        &config.store.url,
        &config.store.sqlite_path,
        config.store.max_connections,
    )
    .await
    .with_context(|| {
        if config.store.url.is_empty() {
            format!("opening SQLite file {}", config.store.sqlite_path.display())
        } else {
            "connecting to store.url".to_string()
        }
    })?;
    Ok(store)
}

async fn bind(config: &Config) -> Result<Listeners> {
    let http = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("http.listen {}", config.http.listen))?;
    let metrics = if config.http.metrics_listen.is_empty() {
        None
    } else {
        Some(
            tokio::net::TcpListener::bind(&config.http.metrics_listen)
                .await
                .with_context(|| format!("http.metrics_listen {}", config.http.metrics_listen))?,
        )
    };
    Ok(Listeners { http, metrics })
}

/// `holterd serve`.
pub fn serve(a: ServeArgs) -> Result<()> {
    init_logging();
    let config = a.config.load()?;
    runtime()?.block_on(async {
        let store = open_store(&config).await?;
        tracing::info!(store = store.kind(), http = %config.http.listen, "starting holterd {}", env!("CARGO_PKG_VERSION"));
        let listeners = bind(&config).await?;
        run(config, store, listeners, Arc::new(Metrics::new()), termination_signal()).await
    })
}

/// `holterd migrate`.
pub fn migrate(a: MigrateArgs) -> Result<()> {
    init_logging();
    let config = a.config.load()?;
    runtime()?.block_on(async {
        let store = open_store(&config).await?;
        store.migrate().await?;
        eprintln!("{} schema is up to date", store.kind());
        Ok(())
    })
}

/// `records` as given, or every record of `db` (or every bundled one) for `all`.
fn record_names(db: &std::path::Path, records: &[String]) -> Result<Vec<String>> {
    if records == ["all"] {
        Ok(wfdb::bundled::all_records(db)?)
    } else {
        Ok(records.to_vec())
    }
}

/// Reads the named records from `db`, or from the bundled excerpts when `db` does not exist.
fn recordings(db: &std::path::Path, records: &[String], lead: &LeadArgs) -> Result<Vec<Recording>> {
    records
        .iter()
        .map(|r| {
            let path = wfdb::bundled::locate(std::path::Path::new(r), db)?;
            Ok(Recording::from_wfdb(&path, &lead.choice())?)
        })
        .collect()
}

/// `holterd replay`.
pub fn replay_command(a: ReplayArgs) -> Result<()> {
    init_logging();
    let db = default_db(a.db.clone());
    let recs = recordings(&db, &record_names(&db, &a.records)?, &a.lead)?;
    let devices: Vec<String> = if a.device_prefix == "record" {
        recs.iter().map(|r| r.name.clone()).collect()
    } else {
        (0..a.devices.unwrap_or(recs.len()))
            .map(|i| format!("{}-{i}", a.device_prefix))
            .collect()
    };
    let options = ReplayOptions {
        broker: a.broker,
        topic_prefix: "holter".into(),
        devices,
        chunk_ms: a.chunk_ms,
        speed: a.speed,
        encoding: a.encoding,
        end: a.end,
        t0_us: a.t0_us.unwrap_or_else(crate::clock::now_us),
        stream: a.stream,
        devices_per_connection: a.devices_per_connection,
        from_seconds: a.from_seconds,
        max_seconds: a.max_seconds,
    };
    let n = options.devices.len();
    let started = std::time::Instant::now();
    let stats = runtime()?.block_on(async {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            termination_signal().await;
            let _ = stop_tx.send(true);
        });
        replay(Arc::new(recs), options, stop_rx).await
    })?;
    eprintln!(
        "{n} devices: {} messages, {} samples in {:.1} s; {} late ticks",
        stats.messages,
        stats.samples,
        started.elapsed().as_secs_f64(),
        stats.late_ticks
    );
    Ok(())
}

/// `holterd demo`: `serve` on the embedded broker and SQLite, with simulated devices.
pub fn demo(a: DemoArgs) -> Result<()> {
    init_logging();
    let mut config = a.config.load()?;
    // A login for this run only; the password is shown on the terminal, never logged.
    let password = crate::http::auth::random_hex(9);
    config.http.users.push(crate::config::UserEntry {
        name: "demo".into(),
        role: "uploader".into(),
        password_hash: crate::http::auth::hash_password(&password),
    });
    if !config.mqtt.broker.is_empty() {
        bail!("the demo runs on the embedded broker: leave mqtt.broker empty");
    }
    let db = default_db(None);
    let recs = recordings(&db, &record_names(&db, &a.records)?, &LeadArgs::default())?;
    runtime()?.block_on(async {
        let store = open_store(&config).await?;
        let listeners = bind(&config).await?;
        eprintln!(
            "holterd demo: {} simulated devices; beats go to {} ({}); metrics at http://{}/metrics",
            recs.len(),
            config.store.sqlite_path.display(),
            store.kind(),
            config.http.listen
        );
        eprintln!(
            "review them at http://{}/ and log in as demo, password {password}",
            config.http.listen
        );
        let options = ReplayOptions {
            broker: config.embedded_broker.listen.to_string(),
            topic_prefix: "holter".into(),
            devices: recs.iter().map(|r| format!("demo-{}", r.name)).collect(),
            chunk_ms: 250,
            speed: a.speed,
            encoding: Encoding::Binary,
            end: true,
            t0_us: crate::clock::now_us(),
            stream: (crate::clock::now_us() / 1_000_000) as u32,
            devices_per_connection: 50,
            from_seconds: 0.0,
            max_seconds: 0.0,
        };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let metrics = Arc::new(Metrics::new());
        let replayer = {
            let recs = Arc::new(recs);
            tokio::spawn(async move {
                // Give the daemon a moment to start its broker and subscribe.
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                replay(recs, options, stop_rx).await
            })
        };
        let shutdown = async move {
            termination_signal().await;
            let _ = stop_tx.send(true);
        };
        run(config, store, listeners, metrics, shutdown).await?;
        replayer.abort();
        Ok(())
    })
}

/// `holterd check`: stored beats against the offline analysis of the replayed records.
pub fn check(a: CheckArgs) -> Result<()> {
    use crate::pipeline::offline::compare;
    use crate::store::BeatQuery;
    let config = a.config.load()?;
    let db = default_db(a.db.clone());
    let recs = recordings(&db, &record_names(&db, &a.records)?, &a.lead)?;
    let classifier = Classifier::load(&config.pipeline.models, &candle_core::Device::Cpu)?;
    let mut failed = 0;
    let (mut total_stored, mut total_offline) = (0, 0);
    runtime()?.block_on(async {
        let store = open_store(&config).await?;
        for (i, rec) in recs.iter().enumerate() {
            let device = if a.device_prefix == "record" {
                rec.name.clone()
            } else {
                format!("{}-{i}", a.device_prefix)
            };
            let mut mv = rec.millivolts();
            if a.max_seconds > 0.0 {
                mv.truncate((a.max_seconds * rec.fs) as usize);
            }
            let offline = analyze_recording(
                &device,
                a.t0_us,
                rec.fs,
                &mv,
                config.powerline(),
                &classifier,
                config.pipeline.threshold,
            )?;
            let stored = store.beats(&BeatQuery::all(&device, u32::MAX)).await?;
            let c = compare(&stored, &offline);
            total_stored += c.stored;
            total_offline += c.offline;
            let verdict = if c.is_exact() { "same" } else { "DIFFERENT" };
            println!(
                "{device}: stored {} offline {} mismatched {} max |dp| {:.1e}: {verdict}{}",
                c.stored,
                c.offline,
                c.mismatched,
                c.max_p_difference,
                c.first_mismatch
                    .as_ref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            );
            failed += usize::from(!c.is_exact());
        }
        anyhow::Ok(())
    })?;
    println!(
        "{} devices: {total_stored} beats stored, {total_offline} offline; {failed} differ",
        recs.len()
    );
    if failed > 0 {
        bail!("{failed} devices' stored beats differ from the offline analysis");
    }
    Ok(())
}

/// `holterd analyze`: the daemon's verdicts for one record, computed offline.
pub fn analyze(a: AnalyzeArgs) -> Result<()> {
    let path = wfdb::bundled::locate(&a.record, &default_db(a.db.clone()))?;
    let rec = Recording::from_wfdb(&path, &a.lead.choice())?;
    let classifier = Classifier::load(&a.model, &candle_core::Device::Cpu)?;
    let rows = analyze_recording(
        &rec.name,
        a.t0_us,
        rec.fs,
        &rec.millivolts(),
        a.lead.powerline.0,
        &classifier,
        a.threshold,
    )?;
    let file = std::fs::File::create(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let mut w = std::io::BufWriter::new(file);
    writeln!(w, "r_time_us,sample,quality,verdict,p_abnormal,model,class")?;
    for r in &rows {
        writeln!(
            w,
            "{},{},{},{},{},{},{}",
            r.r_time_us,
            r.sample,
            r.quality.as_str(),
            r.verdict.as_str(),
            r.p_abnormal.map(|p| format!("{p:.6}")).unwrap_or_default(),
            r.model,
            r.class.map(|c| c.letter().to_string()).unwrap_or_default()
        )?;
    }
    w.flush()?;
    let flagged = rows
        .iter()
        .filter(|r| r.verdict == crate::store::Verdict::Abnormal)
        .count();
    eprintln!(
        "{}: {} beats, {flagged} flagged abnormal by {}, written to {}",
        rec.name,
        rows.len(),
        classifier.name(),
        a.out.display()
    );
    Ok(())
}
