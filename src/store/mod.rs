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

#[macro_use]
mod shared;
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

/// A beat without its waveform: enough to list, count and mark it.
#[derive(Debug, Clone, PartialEq)]
pub struct BeatMark {
    pub r_time_us: i64,
    pub rr_prev_ms: Option<f32>,
    pub quality: Quality,
    pub verdict: Verdict,
    pub p_abnormal: Option<f32>,
    pub model: String,
}

/// Beats by verdict (normal = beats − abnormal − unreadable).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct VerdictCounts {
    pub beats: i64,
    pub abnormal: i64,
    pub unreadable: i64,
}

impl VerdictCounts {
    pub fn normal(&self) -> i64 {
        self.beats - self.abnormal - self.unreadable
    }

    pub fn add(&mut self, o: &VerdictCounts) {
        self.beats += o.beats;
        self.abnormal += o.abnormal;
        self.unreadable += o.unreadable;
    }
}

/// One device-minute of the beat rollup.
#[derive(Debug, Clone, PartialEq)]
pub struct MinuteRow {
    /// Minutes since the Unix epoch.
    pub minute: i64,
    pub counts: VerdictCounts,
    /// Readable beats with a previous RR interval, and their sum (for the mean heart rate).
    pub rr_n: i64,
    pub rr_sum_ms: f64,
    /// Longest RR interval of a readable beat in the minute.
    pub rr_max_ms: Option<f32>,
}

/// A device with its beats since a given minute.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRow {
    pub device: String,
    pub first_seen_us: i64,
    pub last_seen_us: i64,
    pub since: VerdictCounts,
    /// The latest minute with beats, and its mean RR interval.
    pub last_minute: Option<i64>,
    pub last_minute_rr_ms: Option<f64>,
}

/// An uploaded file of beats.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadRow {
    /// Random hex identifier.
    pub id: String,
    pub filename: String,
    pub uploaded_by: String,
    pub created_us: i64,
    pub model: String,
    pub model_version: String,
    pub beats: i64,
    /// The file had a label column.
    pub labelled: bool,
    /// Metrics against the labels (JSON) when labelled.
    pub evaluation: Option<String>,
}

/// One beat of an uploaded file.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadBeatRow {
    /// Row in the file, from 0.
    pub row_index: i64,
    /// The file's label (0 = normal), if it had labels.
    pub label: Option<i64>,
    pub verdict: Verdict,
    pub p_abnormal: Option<f32>,
    pub values: Vec<f32>,
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

    /// Stores a whole recording (segments, chunks, beats, all segments closed) in one transaction.
    fn import_recording(
        &self,
        segments: &[SegmentRow],
        chunks: &[ChunkRow],
        beats: &[BeatRow],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Every device, with its beats from minute `since_minute` on.
    fn devices(
        &self,
        since_minute: i64,
    ) -> impl Future<Output = Result<Vec<DeviceRow>, StoreError>> + Send;

    /// The latest minute in which a device has beats.
    fn last_minute(
        &self,
        device: &str,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;

    /// A device's rollup minutes in `[from_minute, to_minute)`.
    fn minutes(
        &self,
        device: &str,
        from_minute: i64,
        to_minute: i64,
    ) -> impl Future<Output = Result<Vec<MinuteRow>, StoreError>> + Send;

    /// One beat.
    fn beat(
        &self,
        device: &str,
        r_time_us: i64,
    ) -> impl Future<Output = Result<Option<BeatRow>, StoreError>> + Send;

    /// Beats matching `q` without their waveforms, oldest first.
    fn beat_marks(
        &self,
        q: &BeatQuery,
    ) -> impl Future<Output = Result<Vec<BeatMark>, StoreError>> + Send;

    /// Time of the flagged beat just after (`later`) or before `r_time_us`.
    fn flagged_neighbour(
        &self,
        device: &str,
        r_time_us: i64,
        later: bool,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;

    /// (R time, previous RR in ms) of a device's flagged beats in `[from_us, to_us)`, by time.
    fn flagged_links(
        &self,
        device: &str,
        from_us: i64,
        to_us: i64,
    ) -> impl Future<Output = Result<Vec<(i64, Option<f32>)>, StoreError>> + Send;

    /// Raw chunks of a device that may overlap `[from_us, to_us)`, by time.
    fn chunks_between(
        &self,
        device: &str,
        from_us: i64,
        to_us: i64,
    ) -> impl Future<Output = Result<Vec<ChunkRow>, StoreError>> + Send;

    /// Stores an uploaded beats file and its classified beats in one transaction.
    fn create_upload(
        &self,
        upload: &UploadRow,
        beats: &[UploadBeatRow],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The latest uploads, newest first.
    fn uploads(
        &self,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<UploadRow>, StoreError>> + Send;

    /// One upload.
    fn upload(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<UploadRow>, StoreError>> + Send;

    /// An upload's beats by verdict.
    fn upload_counts(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<VerdictCounts, StoreError>> + Send;

    /// An upload's beats (optionally of one verdict) in file order.
    fn upload_beats(
        &self,
        id: &str,
        verdict: Option<Verdict>,
        limit: u32,
        offset: u64,
    ) -> impl Future<Output = Result<Vec<UploadBeatRow>, StoreError>> + Send;

    /// One beat of an upload.
    fn upload_beat(
        &self,
        id: &str,
        row_index: i64,
    ) -> impl Future<Output = Result<Option<UploadBeatRow>, StoreError>> + Send;

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
    async fn import_recording(
        &self,
        g: &[SegmentRow],
        c: &[ChunkRow],
        b: &[BeatRow],
    ) -> Result<u64, StoreError> {
        dispatch!(self, s => s.import_recording(g, c, b).await)
    }
    async fn devices(&self, since_minute: i64) -> Result<Vec<DeviceRow>, StoreError> {
        dispatch!(self, s => s.devices(since_minute).await)
    }
    async fn last_minute(&self, d: &str) -> Result<Option<i64>, StoreError> {
        dispatch!(self, s => s.last_minute(d).await)
    }
    async fn minutes(&self, d: &str, from: i64, to: i64) -> Result<Vec<MinuteRow>, StoreError> {
        dispatch!(self, s => s.minutes(d, from, to).await)
    }
    async fn beat(&self, d: &str, t: i64) -> Result<Option<BeatRow>, StoreError> {
        dispatch!(self, s => s.beat(d, t).await)
    }
    async fn beat_marks(&self, q: &BeatQuery) -> Result<Vec<BeatMark>, StoreError> {
        dispatch!(self, s => s.beat_marks(q).await)
    }
    async fn flagged_neighbour(
        &self,
        d: &str,
        t: i64,
        later: bool,
    ) -> Result<Option<i64>, StoreError> {
        dispatch!(self, s => s.flagged_neighbour(d, t, later).await)
    }
    async fn flagged_links(
        &self,
        d: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, Option<f32>)>, StoreError> {
        dispatch!(self, s => s.flagged_links(d, from, to).await)
    }
    async fn chunks_between(
        &self,
        d: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<ChunkRow>, StoreError> {
        dispatch!(self, s => s.chunks_between(d, from, to).await)
    }
    async fn create_upload(&self, u: &UploadRow, b: &[UploadBeatRow]) -> Result<(), StoreError> {
        dispatch!(self, s => s.create_upload(u, b).await)
    }
    async fn uploads(&self, limit: u32) -> Result<Vec<UploadRow>, StoreError> {
        dispatch!(self, s => s.uploads(limit).await)
    }
    async fn upload(&self, id: &str) -> Result<Option<UploadRow>, StoreError> {
        dispatch!(self, s => s.upload(id).await)
    }
    async fn upload_counts(&self, id: &str) -> Result<VerdictCounts, StoreError> {
        dispatch!(self, s => s.upload_counts(id).await)
    }
    async fn upload_beats(
        &self,
        id: &str,
        v: Option<Verdict>,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<UploadBeatRow>, StoreError> {
        dispatch!(self, s => s.upload_beats(id, v, limit, offset).await)
    }
    async fn upload_beat(&self, id: &str, i: i64) -> Result<Option<UploadBeatRow>, StoreError> {
        dispatch!(self, s => s.upload_beat(id, i).await)
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
