//! `bench storage`: bytes a sample of raw signal as the store keeps it, and
//! how fast it packs and unpacks, on the records of a WFDB database.

use super::{default_db, selected_records};
use crate::formats::wfdb::{LeadChoice, Recording};
use crate::store::signal::{self, Encoding};
use crate::store::{ChunkRow, SegmentKey};
use anyhow::Result;
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
}

pub(super) fn bench_storage(a: BenchStorageArgs) -> Result<()> {
    let db = default_db(a.db);
    let (mut samples, mut loose, mut packed) = (0usize, 0usize, 0usize);
    let (mut records, mut counts_chunks, mut all_chunks) = (0, 0, 0);
    let (mut encode_s, mut decode_s) = (0.0, 0.0);
    for name in selected_records(&db, &a.records)? {
        let rec = Recording::from_wfdb(&db.join(&name), &LeadChoice::Default)?;
        let scale = rec.scale();
        let mv = rec.millivolts();
        let per = ((rec.fs * f64::from(a.chunk_ms) / 1000.0).round() as usize).max(1);
        let segment = SegmentKey {
            device: name.clone(),
            stream: 0,
            first_seq: 0,
        };
        let chunks: Vec<ChunkRow> = mv
            .chunks(per)
            .enumerate()
            .map(|(i, part)| ChunkRow {
                segment: segment.clone(),
                seq: i as u64,
                t0_us: (i as f64 * per as f64 / rec.fs * 1e6).round() as i64,
                fs: rec.fs,
                received_us: (i as f64 * per as f64 / rec.fs * 1e6).round() as i64 + 40_000,
                samples: part.to_vec(),
                scale: Some(scale),
            })
            .collect();
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
    Ok(())
}
