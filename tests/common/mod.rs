//! Helpers shared by the integration tests: the fixture records, scratch
//! directories, the `holterd` binary, free ports, stores, a deterministic
//! pseudo-random generator and a beat matcher.

#![allow(dead_code)]

use holterd::dsp::{Beat, BeatExtractor, ExtractorConfig};
use holterd::formats::wfdb;
use holterd::formats::wfdb::LeadChoice;
use std::path::{Path, PathBuf};

/// The fixture records in `tests/fixtures` (see its README).
pub const FIXTURES: [&str; 3] = ["100_0", "119_180", "208_540"];

/// Path of a fixture record, without extension.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// A fixture's default lead (MLII) in mV, its sampling rate and its reference beats.
pub struct Fixture {
    pub name: &'static str,
    pub fs: f64,
    pub signal: Vec<f32>,
    pub reference: Vec<u64>,
}

/// The readable beats of a fixture record that have a reference class, as the
/// classifiers take them: the 187 values, the RR features and whether the
/// reference calls the beat abnormal.
pub struct LabelledBeats {
    pub values: Vec<[f32; holterd::dsp::BEAT_LEN]>,
    pub rr: Vec<[f32; holterd::model::rr::SIDE_FEATURES]>,
    pub abnormal: Vec<bool>,
}

pub fn labelled_beats(name: &str) -> LabelledBeats {
    let labelled =
        holterd::dataset::label_record(&fixture(name), &LeadChoice::Default, ExtractorConfig::new)
            .unwrap();
    let beats: Vec<_> = labelled
        .iter()
        .filter(|l| l.class.is_some() && l.beat.quality.is_readable())
        .collect();
    LabelledBeats {
        values: beats.iter().map(|l| l.beat.values).collect(),
        rr: beats
            .iter()
            .map(|l| holterd::model::rr::side_of(&l.beat))
            .collect(),
        abnormal: beats
            .iter()
            .map(|l| l.class.is_some_and(|c| c.binary() == 1))
            .collect(),
    }
}

/// Every model directory in `models/`, sorted.
pub fn shipped_models() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join("card.json").exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

pub fn load(name: &'static str) -> Fixture {
    let path = fixture(name);
    let record = wfdb::read_record(&path).unwrap();
    let channel = LeadChoice::Default
        .channel(&record.header, &record.header_path)
        .unwrap();
    assert_eq!(record.header.signals[channel].description, "MLII");
    let reference = wfdb::read_annotations(&path.with_extension("atr"))
        .unwrap()
        .iter()
        .filter(|a| a.code.is_beat())
        .map(|a| a.sample)
        .collect();
    Fixture {
        name,
        fs: record.header.fs,
        signal: record.physical(channel),
        reference,
    }
}

/// Runs `signal` through a new extractor (default configuration at `fs`) in chunks of `chunk`.
pub fn extract(fs: f64, signal: &[f32], chunk: usize) -> Vec<Beat> {
    BeatExtractor::extract_all(ExtractorConfig::new(fs), signal, chunk).unwrap()
}

/// A small linear congruential generator (Knuth's MMIX constants): deterministic
/// pseudo-random numbers without a dependency.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next_u32(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.next_u32() as f64 / (1u64 << 31) as f64
    }

    /// Uniform integer in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u32() as usize) % (hi - lo + 1)
    }
}

/// Outcome of matching detections against reference beats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    pub tp: usize,
    pub fn_: usize,
    pub fp: usize,
}

impl Match {
    pub fn se(&self) -> f64 {
        100.0 * self.tp as f64 / (self.tp + self.fn_).max(1) as f64
    }
    pub fn ppv(&self) -> f64 {
        100.0 * self.tp as f64 / (self.tp + self.fp).max(1) as f64
    }
}

/// Matches sorted `detections` to sorted `reference` beats: each reference beat
/// takes the nearest unused detection within `tol` samples. Only reference beats
/// and detections in `from..to` are counted.
pub fn match_beats(reference: &[u64], detections: &[u64], tol: u64, from: u64, to: u64) -> Match {
    let inside = |s: u64| (from..to).contains(&s);
    let mut used = vec![false; detections.len()];
    let (mut tp, mut fn_) = (0, 0);
    for &r in reference.iter().filter(|&&r| inside(r)) {
        let best = detections
            .iter()
            .enumerate()
            .filter(|&(k, &d)| !used[k] && d.abs_diff(r) <= tol)
            .min_by_key(|&(_, &d)| d.abs_diff(r))
            .map(|(k, _)| k);
        match best {
            Some(k) => {
                used[k] = true;
                tp += 1;
            }
            None => fn_ += 1,
        }
    }
    let fp = detections
        .iter()
        .zip(&used)
        .filter(|&(&d, &u)| !u && inside(d))
        .count();
    Match { tp, fn_, fp }
}

/// A fresh, empty scratch directory, unique to this process and call.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(&format!("holterd-{tag}-")));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The `holterd` binary under test, as a command to add arguments to.
pub fn holterd() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_holterd"))
}

/// Runs `holterd args…`, asserting success; returns its standard output.
pub fn holterd_ok(args: &[&str]) -> String {
    let out = holterd().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "holterd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A name unique to this test process and call.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The key of segment `first_seq` of stream `stream` of `device`.
pub fn segment_key(device: &str, stream: u32, first_seq: u64) -> holterd::store::SegmentKey {
    holterd::store::SegmentKey {
        device: device.into(),
        stream,
        first_seq,
    }
}

/// A segment row for `key` starting at `t0_us`, lead MLII.
pub fn segment_row(
    key: holterd::store::SegmentKey,
    t0_us: i64,
    fs: f64,
) -> holterd::store::SegmentRow {
    holterd::store::SegmentRow {
        after_gap: key.first_seq > 0,
        key,
        t0_us,
        fs,
        lead: "MLII".into(),
    }
}

/// `signal` as the raw chunks of segment `key`, `per_chunk` samples each, received at `t0_us`.
pub fn chunk_rows(
    key: &holterd::store::SegmentKey,
    t0_us: i64,
    fs: f64,
    signal: &[f32],
    per_chunk: usize,
) -> Vec<holterd::store::ChunkRow> {
    signal
        .chunks(per_chunk)
        .enumerate()
        .map(|(i, s)| holterd::store::ChunkRow {
            segment: key.clone(),
            seq: key.first_seq + i as u64,
            t0_us: t0_us + ((i * per_chunk) as f64 * 1e6 / fs).round() as i64,
            fs,
            received_us: t0_us,
            samples: s.to_vec(),
            scale: None,
        })
        .collect()
}

/// A Postgres store in a fresh schema of its own, migrated, when
/// `HOLTER_TEST_POSTGRES_URL` is set (`.ci/run` drops old test schemas).
pub async fn postgres_store(connections: u32) -> Option<holterd::store::AnyStore> {
    use holterd::store::{AnyStore, Store};
    let store = AnyStore::Postgres(postgres_unmigrated(connections).await?);
    store.migrate().await.unwrap();
    Some(store)
}

/// A Postgres store in a fresh, empty schema of its own (no migrations run),
/// when `HOLTER_TEST_POSTGRES_URL` is set.
pub async fn postgres_unmigrated(connections: u32) -> Option<holterd::store::PgStore> {
    use holterd::store::PgStore;
    let url = std::env::var("HOLTER_TEST_POSTGRES_URL").ok()?;
    let schema = unique("holterd_test_");
    let admin = PgStore::connect(&url, 1).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(admin.pool())
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}options=-c%20search_path%3D{schema}");
    Some(PgStore::connect(&url, connections).await.unwrap())
}

/// A fresh, migrated SQLite store in a temporary directory.
pub async fn sqlite_store() -> holterd::store::AnyStore {
    use holterd::store::{AnyStore, SqliteStore, Store};
    let dir = std::env::temp_dir().join(unique("holterd-test-"));
    std::fs::create_dir_all(&dir).unwrap();
    let store = AnyStore::Sqlite(SqliteStore::open(&dir.join("db.sqlite")).await.unwrap());
    store.migrate().await.unwrap();
    store
}
