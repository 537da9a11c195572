//! `bench storage`: bytes a sample of raw signal and bytes a beat as the
//! store keeps them, and how fast they pack and unpack, on the records of a
//! WFDB database.

use super::{default_db, selected_records};
use crate::formats::wfdb::{self, LeadChoice};
use crate::formats::wire::Scale;
use crate::model::classifier::Classifier;
use crate::pipeline::offline::analyze_recording;
use crate::pipeline::recording::{Recording, recording_rows};
use crate::rhythm::RhythmConfig;
use crate::store::signal::{self, Encoding};
use crate::store::{AnyStore, Store};
use crate::store::{BeatRow, ChunkRow, SegmentKey, Verdict, beat_block};
use anyhow::{Context, Result};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Args)]
pub(super) struct BenchStorageArgs {
    /// Database directory (default: $HOLTER_DATA_DIR/mitdb).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Records (comma-separated; default: all).
    #[arg(long, value_delimiter = ',')]
    records: Vec<String>,
    /// Message length, ms (the device's chunking).
    #[arg(long, default_value_t = 250)]
    chunk_ms: u32,
    /// Chunks per block (240 of 250 ms: the minute the compactor packs).
    #[arg(long, default_value_t = 240)]
    block_chunks: usize,
    /// Model whose beats are packed (several, comma-separated, form an ensemble).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = crate::model::DEFAULT_MODEL
    )]
    model: Vec<PathBuf>,
    /// Minutes of beats per block (the compactor's pass).
    #[arg(long, default_value_t = 1.0)]
    beat_block_min: f64,
    /// Also store the records in a store of their own (their signal in
    /// `--chunk-ms` messages, as live), pack them as the compactor does and
    /// weigh every table with its indexes: a Postgres URL, or `sqlite` for a
    /// temporary SQLite file.
    #[arg(long)]
    store: Option<String>,
}

/// Bytes of one beat's columns in a `beats` row, before the row's own
/// overhead, with its vector as `f32` (the layout before) or at 10 bits.
fn row_bytes(b: &BeatRow, f32_vector: bool) -> usize {
    let fixed = 8 * 4 + 4 * 3 + 1 + 2;
    let text = b.quality.as_str().len()
        + b.verdict.as_str().len()
        + b.model.len()
        + b.model_version.len()
        + b.segment.device.len();
    let vector = if f32_vector {
        4 * b.values.len()
    } else {
        beat_block::encode_vector(&b.values).len()
    };
    fixed + text + 2 + b.class_probs.map_or(0, |_| 20) + vector
}

pub(super) fn bench_storage(a: BenchStorageArgs) -> Result<()> {
    let db = default_db(a.db);
    let (mut samples, mut loose, mut packed) = (0usize, 0usize, 0usize);
    let (mut records, mut counts_chunks, mut all_chunks) = (0, 0, 0);
    let (mut encode_s, mut decode_s) = (0.0, 0.0);
    let classifier = Classifier::load(&a.model, &candle_core::Device::Cpu)?;
    let mut beats = BeatTotals::default();
    let mut stored = Vec::new();
    for name in selected_records(&db, &a.records)? {
        let rec = wfdb::Recording::from_wfdb(&db.join(&name), &LeadChoice::Default)?;
        let scale = rec.scale();
        let mv = rec.millivolts();
        let segment = SegmentKey {
            device: name.clone(),
            stream: 0,
            first_seq: 0,
        };
        let chunks = wire_chunks(&segment, 0, rec.fs, &mv, Some(scale), a.chunk_ms);
        for c in &chunks {
            let (encoding, bytes) = signal::encode_samples(&c.samples, c.scale);
            counts_chunks += usize::from(encoding == Encoding::Counts);
            loose += bytes.len();
        }
        let start = Instant::now();
        let blocks: Vec<Vec<u8>> = chunks
            .chunks(a.block_chunks.max(1))
            .map(signal::encode_block)
            .collect();
        encode_s += start.elapsed().as_secs_f64();
        let start = Instant::now();
        let mut back = Vec::with_capacity(chunks.len());
        for b in &blocks {
            back.extend(signal::decode_block(&segment, b)?);
        }
        decode_s += start.elapsed().as_secs_f64();
        anyhow::ensure!(back == chunks, "{name}: blocks do not give the chunks back");
        packed += blocks.iter().map(Vec::len).sum::<usize>();
        samples += mv.len();
        all_chunks += chunks.len();
        records += 1;
        let rows = analyze_recording(&name, 0, rec.fs, &mv, None, &classifier, 0.5)?;
        beats.add(&name, &rows, rec.fs, a.beat_block_min)?;
        if a.store.is_some() {
            stored.push(Recording {
                key: SegmentKey {
                    device: name.clone(),
                    stream: 1,
                    first_seq: 0,
                },
                t0_us: crate::clock::now_us() - 86_400_000_000,
                fs: rec.fs,
                lead: rec.lead.clone(),
                samples: mv,
                scale: Some(scale),
                received_us: crate::clock::now_us(),
            });
        }
    }
    let per_sample = |bytes: usize| bytes as f64 / samples.max(1) as f64;
    let day = 360.0 * 86_400.0 / 1e6;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{records} records, {samples} samples in {all_chunks} chunks of {} ms ({counts_chunks} stored as counts), blocks of {} chunks; every block read back equal:",
        a.chunk_ms, a.block_chunks
    )?;
    for (what, bytes) in [
        ("f32 mV (the layout before)", 4 * samples),
        ("loose chunk, counts", loose),
        ("block, counts under zstd", packed),
    ] {
        writeln!(
            out,
            "  {what:<28} {:>6.3} bytes/sample = {:>6.1} MB per 360 Hz patient-day (samples only)",
            per_sample(bytes),
            per_sample(bytes) * day
        )?;
    }
    writeln!(
        out,
        "  packing {:.1} M samples/s, unpacking {:.1} M samples/s (one thread)",
        samples as f64 / encode_s / 1e6,
        samples as f64 / decode_s / 1e6
    )?;
    beats.report(&mut out, samples as f64 / 360.0 / 86_400.0)?;
    if let Some(url) = &a.store {
        let url = if url == "sqlite" { "" } else { url.as_str() };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        rt.block_on(weigh_stored(url, stored, a.chunk_ms, &classifier, &mut out))?;
    }
    Ok(())
}

/// `mv` cut into chunks of `chunk_ms` as a device sends them, each received
/// 40 ms after its last sample.
fn wire_chunks(
    segment: &SegmentKey,
    t0_us: i64,
    fs: f64,
    mv: &[f32],
    scale: Option<Scale>,
    chunk_ms: u32,
) -> Vec<ChunkRow> {
    let per = ((fs * f64::from(chunk_ms) / 1000.0).round() as usize).max(1);
    let at = |i: usize| t0_us + (i as f64 / fs * 1e6).round() as i64;
    mv.chunks(per)
        .enumerate()
        .map(|(k, part)| ChunkRow {
            segment: segment.clone(),
            seq: k as u64,
            t0_us: at(k * per),
            fs,
            received_us: at(k * per + part.len()) + 40_000,
            samples: part.to_vec(),
            scale,
        })
        .collect()
}

/// Stores the recordings as uploads are stored (segment, beats, episodes)
/// but with their signal in `chunk_ms` messages as a live device sends it,
/// packs them as the daemon's compactor does, compacts the database files,
/// and reports every table's bytes with its indexes, per patient-day of
/// signal.
async fn weigh_stored(
    url: &str,
    recordings: Vec<Recording>,
    chunk_ms: u32,
    classifier: &Classifier,
    out: &mut impl Write,
) -> Result<()> {
    let scratch = super::bench_pages::ScratchStore::open(url).await?;
    let outcome = async {
        let store = &scratch.store;
        store.migrate().await?;
        let mut seconds = 0.0;
        for rec in recordings {
            seconds += rec.samples.len() as f64 / rec.fs;
            let live = wire_chunks(
                &rec.key,
                rec.t0_us,
                rec.fs,
                &rec.samples,
                rec.scale,
                chunk_ms,
            );
            let mut rows = recording_rows(rec, None, classifier, 0.5, &RhythmConfig::default())?;
            rows.chunks = live;
            store
                .import_recording(&[rows.segment], &rows.chunks, &rows.beats, &rows.episodes)
                .await?;
        }
        store.compact_signal_all(i64::MAX, 50).await?;
        store.compact_beats_all(i64::MAX, 50).await?;
        let tables = table_bytes(store, scratch.sqlite_file()).await?;
        let days = seconds / 86_400.0;
        let total: i64 = tables.iter().map(|(_, b)| b).sum();
        writeln!(
            out,
            "stored in {} and packed, {:.1} h of signal, tables with their indexes after VACUUM:",
            store.kind(),
            seconds / 3600.0
        )?;
        for (table, bytes) in tables.iter().filter(|(_, b)| *b > 0) {
            writeln!(
                out,
                "  {table:<28} {:>8.2} MB per patient-day",
                *bytes as f64 / days / 1e6
            )?;
        }
        writeln!(
            out,
            "  {:<28} {:>8.2} MB per patient-day",
            "everything",
            total as f64 / days / 1e6
        )?;
        anyhow::Ok(())
    }
    .await;
    scratch.remove().await?;
    outcome
}

/// Bytes of each table with its indexes and TOAST (Postgres, after `VACUUM
/// FULL`), or of the whole file (SQLite, after `VACUUM`).
async fn table_bytes(store: &AnyStore, sqlite_file: Option<PathBuf>) -> Result<Vec<(String, i64)>> {
    match store {
        AnyStore::Postgres(pg) => {
            sqlx::query("VACUUM FULL").execute(pg.pool()).await?;
            Ok(sqlx::query_as(
                "SELECT c.relname::text, pg_total_relation_size(c.oid)
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = current_schema() AND c.relkind = 'r'
                 ORDER BY 2 DESC",
            )
            .fetch_all(pg.pool())
            .await?)
        }
        AnyStore::Sqlite(lite) => {
            sqlx::query("VACUUM").execute(lite.pool()).await?;
            let file = sqlite_file.context("the SQLite file")?;
            Ok(vec![(
                "the SQLite file".into(),
                std::fs::metadata(&file)?.len() as i64,
            )])
        }
    }
}

/// Beats of every record, as rows and as the compactor packs them.
#[derive(Default)]
struct BeatTotals {
    beats: usize,
    flagged: usize,
    f32_row_bytes: usize,
    row_bytes: usize,
    flagged_row_bytes: usize,
    packed: usize,
    packed_bytes: usize,
    encode_s: f64,
    decode_s: f64,
    max_error: f32,
}

impl BeatTotals {
    /// Packs the beats the compactor packs (all but abnormal ones) in blocks of
    /// `block_min` minutes and checks they read back.
    fn add(&mut self, name: &str, rows: &[BeatRow], fs: f64, block_min: f64) -> Result<()> {
        let (flagged, packable): (Vec<&BeatRow>, Vec<&BeatRow>) =
            rows.iter().partition(|b| b.verdict == Verdict::Abnormal);
        self.beats += rows.len();
        self.flagged += flagged.len();
        self.f32_row_bytes += rows.iter().map(|b| row_bytes(b, true)).sum::<usize>();
        self.row_bytes += rows.iter().map(|b| row_bytes(b, false)).sum::<usize>();
        self.flagged_row_bytes += flagged.iter().map(|b| row_bytes(b, false)).sum::<usize>();
        let span_us = (block_min * 60e6) as i64;
        let mut parts: Vec<Vec<BeatRow>> = Vec::new();
        for b in packable {
            match parts.last_mut() {
                Some(p) if b.r_time_us - p[0].r_time_us < span_us => p.push(b.clone()),
                _ => parts.push(vec![b.clone()]),
            }
        }
        for part in &parts {
            let start = Instant::now();
            let data = beat_block::encode(part, fs);
            self.encode_s += start.elapsed().as_secs_f64();
            let start = Instant::now();
            let back = beat_block::decode(&part[0].segment, &data)?;
            self.decode_s += start.elapsed().as_secs_f64();
            anyhow::ensure!(back.len() == part.len(), "{name}: a block lost beats");
            for (b, a) in back.iter().zip(part) {
                let error = b
                    .values
                    .iter()
                    .zip(&a.values)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0f32, f32::max);
                self.max_error = self.max_error.max(error);
                let same = BeatRow {
                    values: a.values.clone(),
                    ..b.clone()
                };
                anyhow::ensure!(
                    same == *a && error <= beat_block::VALUE_TOLERANCE,
                    "{name}: a packed beat does not read back"
                );
            }
            self.packed += part.len();
            self.packed_bytes += data.len();
        }
        Ok(())
    }

    fn report(&self, out: &mut impl Write, days: f64) -> Result<()> {
        let per_day = |bytes: usize| bytes as f64 / days / 1e6;
        writeln!(
            out,
            "{} beats ({} abnormal, kept as rows); every packed beat read back (vector within {:.2e}):",
            self.beats, self.flagged, self.max_error
        )?;
        for (what, bytes) in [
            ("rows, f32 vector (before)", self.f32_row_bytes),
            ("rows, 10-bit vector", self.row_bytes),
        ] {
            writeln!(
                out,
                "  {what:<31} {:>6.1} bytes/beat = {:>6.1} MB per patient-day (columns only)",
                bytes as f64 / self.beats.max(1) as f64,
                per_day(bytes)
            )?;
        }
        writeln!(
            out,
            "  blocks, abnormal beats as rows  {:>6.1} bytes/beat = {:>6.1} MB per patient-day (columns only; packed beats {:.1} bytes each)",
            (self.packed_bytes + self.flagged_row_bytes) as f64 / self.beats.max(1) as f64,
            per_day(self.packed_bytes + self.flagged_row_bytes),
            self.packed_bytes as f64 / self.packed.max(1) as f64
        )?;
        writeln!(
            out,
            "  packing {:.0} k beats/s, unpacking {:.0} k beats/s (one thread)",
            self.packed as f64 / self.encode_s / 1e3,
            self.packed as f64 / self.decode_s / 1e3
        )?;
        Ok(())
    }
}
