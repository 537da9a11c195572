//! [`AnyStore`]: Postgres or SQLite, chosen by configuration at start, behind
//! the one [`Store`] interface.

use super::rows::*;
use super::{PgStore, SqliteStore, Store, StoreError};

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
    async fn write_beats(
        &self,
        b: &[BeatRow],
        c: &[SegmentKey],
        e: &[EpisodeRow],
    ) -> Result<u64, StoreError> {
        dispatch!(self, s => s.write_beats(b, c, e).await)
    }
    async fn segment_marks(
        &self,
        k: &SegmentKey,
        before: i64,
    ) -> Result<Vec<BeatMark>, StoreError> {
        dispatch!(self, s => s.segment_marks(k, before).await)
    }
    async fn episodes(&self, q: &EpisodeQuery) -> Result<Vec<EpisodeRow>, StoreError> {
        dispatch!(self, s => s.episodes(q).await)
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
        e: &[EpisodeRow],
    ) -> Result<u64, StoreError> {
        dispatch!(self, s => s.import_recording(g, c, b, e).await)
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
    ) -> Result<Vec<FlaggedLink>, StoreError> {
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
    async fn compact_signal(
        &self,
        before_us: i64,
        after: Option<&str>,
        devices: u32,
    ) -> Result<Compaction, StoreError> {
        dispatch!(self, s => s.compact_signal(before_us, after, devices).await)
    }
    async fn compact_beats(
        &self,
        before_us: i64,
        after: Option<&str>,
        devices: u32,
    ) -> Result<BeatCompaction, StoreError> {
        dispatch!(self, s => s.compact_beats(before_us, after, devices).await)
    }
    async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.ping().await)
    }
}
