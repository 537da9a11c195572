//! Durable storage of devices, raw signal, stream segments and classified beats.
//!
//! One [`Store`] trait, two implementations: [`PgStore`] (Postgres, bulk
//! writes with `UNNEST`) for production and [`SqliteStore`] (a file) as the
//! default that needs nothing installed. Both share one test suite
//! (`tests/store.rs`).
//!
//! Every write is idempotent: chunks are keyed by (device, stream, seq), beats
//! by (device, R-peak time), so a message redelivered after a crash, or a
//! segment re-analysed on restart, never stores anything twice.

/// Row decoding shared by both stores: their columns have the same names and
/// types, only the row type differs. Expands to `segment_from`, `head_from`,
/// `chunk_from` and `beat_from` for `$row`.
macro_rules! row_decoders {
    ($row:ty) => {
        fn segment_from(r: &$row) -> Result<SegmentRow, StoreError> {
            Ok(SegmentRow {
                key: SegmentKey {
                    device: r.try_get("device_id")?,
                    stream: r.try_get::<i64, _>("stream")? as u32,
                    first_seq: r.try_get::<i64, _>("first_seq")? as u64,
                },
                t0_us: r.try_get("t0_us")?,
                fs: r.try_get("fs")?,
                lead: r.try_get("lead")?,
                after_gap: r.try_get("after_gap")?,
            })
        }

        fn head_from(r: &$row) -> Result<StreamHead, StoreError> {
            let segment = segment_from(r)?;
            let last_seq: Option<i64> = r.try_get("last_seq")?;
            Ok(StreamHead {
                last_seq: last_seq.map_or(segment.key.first_seq, |s| s as u64),
                closed: r.try_get("closed")?,
                segment,
            })
        }

        fn chunk_from(key: &SegmentKey, r: &$row) -> Result<ChunkRow, StoreError> {
            Ok(ChunkRow {
                segment: key.clone(),
                seq: r.try_get::<i64, _>("seq")? as u64,
                t0_us: r.try_get("t0_us")?,
                fs: r.try_get("fs")?,
                received_us: r.try_get("received_us")?,
                samples: super::bytes_f32(r.try_get("samples")?)?,
            })
        }

        fn beat_from(r: &$row) -> Result<BeatRow, StoreError> {
            let quality: &str = r.try_get("quality")?;
            let verdict: &str = r.try_get("verdict")?;
            Ok(BeatRow {
                segment: SegmentKey {
                    device: r.try_get("device_id")?,
                    stream: r.try_get::<i64, _>("stream")? as u32,
                    first_seq: r.try_get::<i64, _>("first_seq")? as u64,
                },
                r_time_us: r.try_get("r_time_us")?,
                sample: r.try_get::<i64, _>("sample_index")? as u64,
                rr_prev_ms: r.try_get("rr_prev_ms")?,
                rr_next_ms: r.try_get("rr_next_ms")?,
                quality: super::parse_quality(quality)?,
                searchback: r.try_get("searchback")?,
                verdict: Verdict::parse(verdict)?,
                p_abnormal: r.try_get("p_abnormal")?,
                model: r.try_get("model")?,
                model_version: r.try_get("model_version")?,
                values: super::bytes_f32(r.try_get("beat")?)?,
            })
        }
    };
}

mod postgres;
mod sqlite;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use crate::dsp::Quality;
use std::future::Future;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// A segment: consecutive messages of one device stream analysed by one extractor.
/// It starts at the stream's first message, after a gap, or after the stream expired.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SegmentKey {
    pub device: String,
    pub stream: u32,
    /// Sequence number of the segment's first message.
    pub first_seq: u64,
}

/// A segment's description.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentRow {
    pub key: SegmentKey,
    /// Time of the segment's first sample, µs since the Unix epoch; beat times count from it.
    pub t0_us: i64,
    pub fs: f64,
    pub lead: String,
    /// Messages were missing just before this segment.
    pub after_gap: bool,
}

/// One stored message of raw signal.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkRow {
    pub segment: SegmentKey,
    pub seq: u64,
    pub t0_us: i64,
    pub fs: f64,
    pub received_us: i64,
    /// Samples, mV.
    pub samples: Vec<f32>,
}

/// What the daemon concluded about a beat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    Normal,
    Abnormal,
    /// The quality gate refused it (flat, clipped, lead-off, noisy): not classified.
    Unreadable,
}

impl Verdict {
    pub const ALL: [Verdict; 3] = [Verdict::Normal, Verdict::Abnormal, Verdict::Unreadable];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Normal => "normal",
            Verdict::Abnormal => "abnormal",
            Verdict::Unreadable => "unreadable",
        }
    }

    pub fn parse(s: &str) -> Result<Verdict, StoreError> {
        Verdict::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| StoreError::Corrupt(format!("verdict {s:?}")))
    }
}

fn parse_quality(s: &str) -> Result<Quality, StoreError> {
    Quality::parse(s).ok_or_else(|| StoreError::Corrupt(format!("quality {s:?}")))
}

/// One classified beat.
#[derive(Debug, Clone, PartialEq)]
pub struct BeatRow {
    pub segment: SegmentKey,
    /// R-peak time, µs since the Unix epoch.
    pub r_time_us: i64,
    /// R-peak index within the segment (input rate).
    pub sample: u64,
    pub rr_prev_ms: Option<f32>,
    pub rr_next_ms: Option<f32>,
    pub quality: Quality,
    pub searchback: bool,
    pub verdict: Verdict,
    /// Probability of "abnormal"; `None` for unreadable beats.
    pub p_abnormal: Option<f32>,
    pub model: String,
    pub model_version: String,
    /// The 187-sample beat vector.
    pub values: Vec<f32>,
}

/// Where a device's stream stands, to resume sequencing after a restart.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamHead {
    pub segment: SegmentRow,
    pub closed: bool,
    /// Highest stored sequence number of the segment.
    pub last_seq: u64,
}

/// A beat search: one device, a time range, optional verdict and minimum probability.
#[derive(Debug, Clone)]
pub struct BeatQuery {
    pub device: String,
    pub from_us: i64,
    pub to_us: i64,
    pub verdict: Option<Verdict>,
    pub min_p_abnormal: Option<f32>,
    pub limit: u32,
    pub offset: u64,
}

impl BeatQuery {
    /// Every beat of `device`, oldest first (up to `limit`).
    pub fn all(device: &str, limit: u32) -> Self {
        BeatQuery {
            device: device.to_string(),
            from_us: i64::MIN,
            to_us: i64::MAX,
            verdict: None,
            min_p_abnormal: None,
            limit,
            offset: 0,
        }
    }
}

/// Storage the daemon needs. Implementations are cheap to clone (a connection pool).
pub trait Store: Clone + Send + Sync + 'static {
    /// Applies the schema migrations (idempotent).
    fn migrate(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores new segments and raw chunks in one transaction; already-stored ones are skipped.
    fn write_chunks(
        &self,
        segments: &[SegmentRow],
        chunks: &[ChunkRow],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores beats (skipping those already stored) and marks segments closed, in one transaction.
    /// Returns the number of beats newly stored.
    fn write_beats(
        &self,
        beats: &[BeatRow],
        closed: &[SegmentKey],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Each device's latest segment and its last stored sequence number.
    fn stream_heads(&self) -> impl Future<Output = Result<Vec<StreamHead>, StoreError>> + Send;

    /// Segments not yet closed, oldest first.
    fn open_segments(&self) -> impl Future<Output = Result<Vec<SegmentRow>, StoreError>> + Send;

    /// A segment's chunks in sequence order.
    fn segment_chunks(
        &self,
        key: &SegmentKey,
    ) -> impl Future<Output = Result<Vec<ChunkRow>, StoreError>> + Send;

    /// Time of a segment's latest stored beat.
    fn last_beat_us(
        &self,
        key: &SegmentKey,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;

    /// Beats matching `q`, oldest first.
    fn beats(&self, q: &BeatQuery)
    -> impl Future<Output = Result<Vec<BeatRow>, StoreError>> + Send;

    /// Deletes raw chunks received before `before_us`; returns how many.
    fn prune_chunks(&self, before_us: i64) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Checks the database answers.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Either store, chosen by configuration.
#[derive(Clone)]
pub enum AnyStore {
    Postgres(PgStore),
    Sqlite(SqliteStore),
}

impl AnyStore {
    /// Connects to `url` (Postgres) or, when it is empty, opens the SQLite file `sqlite_path`.
    pub async fn open(
        url: &str,
        sqlite_path: &std::path::Path,
        max_connections: u32,
    ) -> Result<AnyStore, StoreError> {
        if url.is_empty() {
            Ok(AnyStore::Sqlite(SqliteStore::open(sqlite_path).await?))
        } else {
            Ok(AnyStore::Postgres(
                PgStore::connect(url, max_connections).await?,
            ))
        }
    }

    /// "postgres" or "sqlite", for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            AnyStore::Postgres(_) => "postgres",
            AnyStore::Sqlite(_) => "sqlite",
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnyStore::Postgres($s) => $e,
            AnyStore::Sqlite($s) => $e,
        }
    };
}

impl Store for AnyStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.migrate().await)
    }
    async fn write_chunks(&self, g: &[SegmentRow], c: &[ChunkRow]) -> Result<(), StoreError> {
        dispatch!(self, s => s.write_chunks(g, c).await)
    }
    async fn write_beats(&self, b: &[BeatRow], c: &[SegmentKey]) -> Result<u64, StoreError> {
        dispatch!(self, s => s.write_beats(b, c).await)
    }
    async fn stream_heads(&self) -> Result<Vec<StreamHead>, StoreError> {
        dispatch!(self, s => s.stream_heads().await)
    }
    async fn open_segments(&self) -> Result<Vec<SegmentRow>, StoreError> {
        dispatch!(self, s => s.open_segments().await)
    }
    async fn segment_chunks(&self, k: &SegmentKey) -> Result<Vec<ChunkRow>, StoreError> {
        dispatch!(self, s => s.segment_chunks(k).await)
    }
    async fn last_beat_us(&self, k: &SegmentKey) -> Result<Option<i64>, StoreError> {
        dispatch!(self, s => s.last_beat_us(k).await)
    }
    async fn beats(&self, q: &BeatQuery) -> Result<Vec<BeatRow>, StoreError> {
        dispatch!(self, s => s.beats(q).await)
    }
    async fn prune_chunks(&self, before_us: i64) -> Result<u64, StoreError> {
        dispatch!(self, s => s.prune_chunks(before_us).await)
    }
    async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.ping().await)
    }
}

/// f32 values as little-endian bytes (how samples and beats are stored).
pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The inverse of [`f32_bytes`].
pub fn bytes_f32(bytes: &[u8]) -> Result<Vec<f32>, StoreError> {
    if !bytes.len().is_multiple_of(4) {
        return Err(StoreError::Corrupt(format!(
            "{} bytes is not a whole number of f32 values",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}
