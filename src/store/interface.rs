//! The storage interface the daemon, the review pages and uploads are written
//! against, and its error.

use super::rows::*;
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
    /// A write raced another and was rolled back; the next attempt will do.
    #[error("{0}")]
    Conflict(String),
}

/// Database error codes that mean "not now" rather than "wrong": Postgres
/// SQLSTATE classes 08 (connection), 53 (insufficient resources: too many
/// clients, out of memory or disk), 57P01–57P03 (shutting down, starting up);
/// SQLite's BUSY (5) and LOCKED (6), with their extended codes.
fn transient_code(code: &str) -> bool {
    if code.starts_with("08")
        || code.starts_with("53")
        || matches!(code, "57P01" | "57P02" | "57P03")
    {
        return true;
    }
    code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
}

impl StoreError {
    /// True when the database could not be reached or is overloaded (worth a
    /// retry); false when it answered but the data or the query is wrong.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Db(
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed,
            ) => true,
            StoreError::Db(sqlx::Error::Database(e)) => {
                e.code().is_some_and(|c| transient_code(&c))
            }
            _ => false,
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

    /// Stores beats (skipping those already stored), the rhythm episodes they
    /// open, extend or close (replacing earlier states of the same episodes),
    /// and marks segments closed, in one transaction. Returns the number of
    /// beats newly stored.
    fn write_beats(
        &self,
        beats: &[BeatRow],
        closed: &[SegmentKey],
        episodes: &[EpisodeRow],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Rhythm episodes matching `q`, by onset.
    fn episodes(
        &self,
        q: &EpisodeQuery,
    ) -> impl Future<Output = Result<Vec<EpisodeRow>, StoreError>> + Send;

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

    /// A segment's stored beats before `before_us`, without waveforms, oldest
    /// first (the rhythm analyser's state is rebuilt from them after a restart).
    fn segment_marks(
        &self,
        key: &SegmentKey,
        before_us: i64,
    ) -> impl Future<Output = Result<Vec<BeatMark>, StoreError>> + Send;

    /// Beats matching `q`, oldest first.
    fn beats(&self, q: &BeatQuery)
    -> impl Future<Output = Result<Vec<BeatRow>, StoreError>> + Send;

    /// Stores a whole recording (segments, chunks, beats, episodes, all
    /// segments closed) in one transaction.
    fn import_recording(
        &self,
        segments: &[SegmentRow],
        chunks: &[ChunkRow],
        beats: &[BeatRow],
        episodes: &[EpisodeRow],
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

    /// A device's flagged beats in `[from_us, to_us)` (R time, previous RR,
    /// class), by time, read from the flagged-beat index alone.
    fn flagged_links(
        &self,
        device: &str,
        from_us: i64,
        to_us: i64,
    ) -> impl Future<Output = Result<Vec<FlaggedLink>, StoreError>> + Send;

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

    /// Deletes raw signal (loose chunks and blocks) received before `before_us`;
    /// returns how many chunks. On Postgres a day of blocks wholly before it goes
    /// as one dropped partition.
    fn prune_chunks(&self, before_us: i64) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Packs the loose chunks received before `before_us` of the next `devices`
    /// devices after `after` (by id) into compressed blocks
    /// ([`super::signal`]), deleting them in the same transaction. Call again
    /// with the returned `last_device` until it is `None`.
    fn compact_signal(
        &self,
        before_us: i64,
        after: Option<&str>,
        devices: u32,
    ) -> impl Future<Output = Result<Compaction, StoreError>> + Send;

    /// Packs the normal and unreadable beat rows before `before_us` (R time) of
    /// the next `devices` devices after `after` (by id) into compressed blocks
    /// ([`super::beat_block`]), deleting them in the same transaction; every
    /// read returns them as before. Call again with the returned
    /// `last_device` until it is `None`.
    fn compact_beats(
        &self,
        before_us: i64,
        after: Option<&str>,
        devices: u32,
    ) -> impl Future<Output = Result<BeatCompaction, StoreError>> + Send;

    /// Checks the database answers.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Packs every device's loose chunks received before `before_us`,
    /// `devices` devices a call (as [`Self::compact_signal`]); the totals.
    fn compact_signal_all(
        &self,
        before_us: i64,
        devices: u32,
    ) -> impl Future<Output = Result<Compaction, StoreError>> + Send {
        async move {
            let mut total = Compaction::default();
            let mut after: Option<String> = None;
            loop {
                let c = self
                    .compact_signal(before_us, after.as_deref(), devices)
                    .await?;
                total.chunks += c.chunks;
                total.blocks += c.blocks;
                total.bytes_in += c.bytes_in;
                total.bytes_out += c.bytes_out;
                match c.last_device {
                    Some(d) => after = Some(d),
                    None => return Ok(total),
                }
            }
        }
    }

    /// Packs every device's beat rows before `before_us`, `devices` devices
    /// a call (as [`Self::compact_beats`]); the totals.
    fn compact_beats_all(
        &self,
        before_us: i64,
        devices: u32,
    ) -> impl Future<Output = Result<BeatCompaction, StoreError>> + Send {
        async move {
            let mut total = BeatCompaction::default();
            let mut after: Option<String> = None;
            loop {
                let c = self
                    .compact_beats(before_us, after.as_deref(), devices)
                    .await?;
                total.beats += c.beats;
                total.blocks += c.blocks;
                total.bytes_out += c.bytes_out;
                match c.last_device {
                    Some(d) => after = Some(d),
                    None => return Ok(total),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::transient_code;

    #[test]
    fn busy_and_overloaded_databases_are_transient_bad_data_is_not() {
        for code in ["08006", "53300", "57P01", "5", "517", "6"] {
            assert!(transient_code(code), "{code}");
        }
        for code in ["22P02", "42P01", "23505", "11", "19"] {
            assert!(!transient_code(code), "{code}");
        }
    }
}
