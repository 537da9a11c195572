//! The SQLite store: the embedded default, a single file in WAL mode with
//! full synchronisation, so a commit survives the process being killed.

use super::rows::class_probs_bytes;
use super::signal;
use super::{
    BeatCompaction, BeatMark, BeatQuery, BeatRow, ChunkRow, ClassCounts, Compaction, DeviceRow,
    EpisodeQuery, EpisodeRow, FlaggedLink, MinuteRow, SegmentKey, SegmentRow, Store, StoreError,
    StreamHead, UploadBeatRow, UploadRow, Verdict, VerdictCounts, f32_bytes, shared,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};
use std::path::Path;
use std::time::Duration;

/// Rows per multi-row INSERT (SQLite limits bound parameters per statement).
const ROWS_PER_STATEMENT: usize = 500;

/// An SQLite database file.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        Ok(SqliteStore { pool })
    }

    /// The pool, for queries the trait does not cover.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

impl Store for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("migrations/sqlite").run(&self.pool).await?;
        Ok(())
    }

    transactional_writes!();

    episode_reads!();

    review_reads!();

    async fn create_upload(
        &self,
        u: &UploadRow,
        beats: &[UploadBeatRow],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_upload(&mut tx, u).await?;
        for part in beats.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO upload_beats (upload_id, row_index, label, verdict, p_abnormal, class,
                    class_probs, beat) ",
            );
            q.push_values(part, |mut b, r| {
                b.push_bind(u.id.clone())
                    .push_bind(r.row_index)
                    .push_bind(r.label)
                    .push_bind(r.verdict.as_str())
                    .push_bind(r.p_abnormal)
                    .push_bind(r.class.map(|c| c.as_str()))
                    .push_bind(class_probs_bytes(r.class_probs))
                    .push_bind(f32_bytes(&r.values));
            });
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    stream_reads!();

    signal_compaction!();

    beat_compaction!();

    async fn prune_chunks(&self, before_us: i64) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let loose = sqlx::query("DELETE FROM chunks WHERE received_us < $1")
            .bind(before_us)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let packed: i64 = sqlx::query_scalar(
            "SELECT CAST(coalesce(sum(chunks), 0) AS BIGINT) FROM signal_blocks WHERE received_us < $1",
        )
        .bind(before_us)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM signal_blocks WHERE received_us < $1")
            .bind(before_us)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(loose + packed.max(0) as u64)
    }
}

/// Opens the transaction of a compaction pass with the write lock taken at
/// once (`BEGIN IMMEDIATE`, waiting as long as the busy timeout): a deferred
/// transaction that must write after live writers committed can fail
/// (`SQLITE_BUSY_SNAPSHOT`), and under load every pass did. One daemon
/// writes an SQLite file, so the pass is always its own.
async fn begin_maintenance(
    pool: &SqlitePool,
) -> Result<Option<sqlx::Transaction<'static, Sqlite>>, StoreError> {
    Ok(Some(pool.begin_with("BEGIN IMMEDIATE").await?))
}

/// Nothing to prepare: SQLite keeps blocks in one table.
async fn prepare_blocks(_pool: &sqlx::SqlitePool) {}

async fn insert_blocks(
    tx: &mut sqlx::SqliteConnection,
    blocks: &[signal::BlockRow],
) -> Result<(), StoreError> {
    for part in blocks.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO signal_blocks (device_id, stream, first_seq, seq_from, seq_to, t0_us,
                t_end_us, received_us, chunks, samples, data) ",
        );
        q.push_values(part, |mut r, b| {
            r.push_bind(b.segment.device.as_str())
                .push_bind(b.segment.stream as i64)
                .push_bind(b.segment.first_seq as i64)
                .push_bind(b.seq_from as i64)
                .push_bind(b.seq_to as i64)
                .push_bind(b.t0_us)
                .push_bind(b.t_end_us)
                .push_bind(b.received_us)
                .push_bind(b.chunks)
                .push_bind(b.samples)
                .push_bind(b.data.as_slice());
        });
        q.build().execute(&mut *tx).await?;
    }
    Ok(())
}

/// Deletes exactly the chunks given; how many rows it deleted.
async fn delete_chunks(
    tx: &mut sqlx::SqliteConnection,
    chunks: &[ChunkRow],
) -> Result<u64, StoreError> {
    let mut deleted = 0;
    for part in chunks.chunks(ROWS_PER_STATEMENT) {
        let mut q =
            QueryBuilder::<Sqlite>::new("DELETE FROM chunks WHERE (device_id, stream, seq) IN (");
        let mut keys = q.separated(", ");
        for c in part {
            keys.push("(")
                .push_bind_unseparated(c.segment.device.as_str())
                .push_unseparated(", ")
                .push_bind_unseparated(c.segment.stream as i64)
                .push_unseparated(", ")
                .push_bind_unseparated(c.seq as i64)
                .push_unseparated(")");
        }
        q.push(")");
        deleted += q.build().execute(&mut *tx).await?.rows_affected();
    }
    Ok(deleted)
}

async fn insert_chunks(
    tx: &mut sqlx::SqliteConnection,
    segments: &[SegmentRow],
    chunks: &[ChunkRow],
) -> Result<(), StoreError> {
    for part in segments.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT OR IGNORE INTO segments (device_id, stream, first_seq, t0_us, fs, lead, after_gap) ",
        );
        q.push_values(part, |mut b, s| {
            b.push_bind(s.key.device.clone())
                .push_bind(s.key.stream as i64)
                .push_bind(s.key.first_seq as i64)
                .push_bind(s.t0_us)
                .push_bind(s.fs)
                .push_bind(s.lead.clone())
                .push_bind(s.after_gap);
        });
        q.build().execute(&mut *tx).await?;
    }
    for part in chunks.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT OR IGNORE INTO chunks (device_id, stream, seq, first_seq, t0_us, fs, received_us,
                samples, encoding) ",
        );
        q.push_values(part, |mut b, c| {
            let (encoding, bytes) = signal::encode_samples(&c.samples, c.scale);
            b.push_bind(c.segment.device.clone())
                .push_bind(c.segment.stream as i64)
                .push_bind(c.seq as i64)
                .push_bind(c.segment.first_seq as i64)
                .push_bind(c.t0_us)
                .push_bind(c.fs)
                .push_bind(c.received_us)
                .push_bind(bytes)
                .push_bind(encoding.code());
        });
        q.build().execute(&mut *tx).await?;
    }
    let seen = shared::last_seen(chunks);
    for part in seen.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO devices (device_id, first_seen_us, last_seen_us) ",
        );
        q.push_values(part, |mut b, (device, t)| {
            b.push_bind(*device).push_bind(*t).push_bind(*t);
        });
        q.push(
            " ON CONFLICT (device_id) DO UPDATE SET last_seen_us = excluded.last_seen_us
             WHERE devices.last_seen_us <= excluded.last_seen_us - ",
        )
        .push_bind(shared::LAST_SEEN_RESOLUTION_US);
        q.build().execute(&mut *tx).await?;
    }
    Ok(())
}

/// Stores beats not yet stored and refreshes the minutes they fall in; returns how many were new.
async fn insert_beats(
    tx: &mut sqlx::SqliteConnection,
    beats: &[BeatRow],
) -> Result<u64, StoreError> {
    let mut stored: Vec<(String, i64)> = Vec::new();
    for part in beats.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO beats (device_id, r_time_us, stream, first_seq, sample_index,
                rr_prev_ms, rr_next_ms, quality, searchback, verdict, p_abnormal, model,
                model_version, beat, class, class_probs, beat_encoding) SELECT * FROM (",
        );
        q.push_values(part, |mut b, r| {
            b.push_bind(r.segment.device.clone())
                .push_bind(r.r_time_us)
                .push_bind(r.segment.stream as i64)
                .push_bind(r.segment.first_seq as i64)
                .push_bind(r.sample as i64)
                .push_bind(r.rr_prev_ms)
                .push_bind(r.rr_next_ms)
                .push_bind(r.quality.as_str())
                .push_bind(r.searchback)
                .push_bind(r.verdict.as_str())
                .push_bind(r.p_abnormal)
                .push_bind(r.model.clone())
                .push_bind(r.model_version.clone())
                .push_bind(super::beat_block::encode_vector(&r.values))
                .push_bind(r.class.map(|c| c.as_str()))
                .push_bind(class_probs_bytes(r.class_probs))
                .push_bind(super::beat_block::VectorEncoding::Steps as i64);
        });
        // Only a stored beat is skipped (as on Postgres): a row a CHECK refuses
        // is an error, which `INSERT OR IGNORE` would drop silently.
        q.push(
            ") AS u WHERE NOT EXISTS (SELECT 1 FROM segments s WHERE s.device_id = u.column1
                 AND s.stream = u.column3 AND s.first_seq = u.column4
                 AND s.beats_packed_to_us >= u.column2)",
        );
        q.push(" ON CONFLICT DO NOTHING RETURNING device_id, r_time_us");
        for r in q.build().fetch_all(&mut *tx).await? {
            stored.push((r.try_get(0)?, r.try_get(1)?));
        }
    }
    let deltas = shared::minute_deltas(beats, &stored);
    for part in deltas.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO beat_minutes (device_id, minute, beats, abnormal, unreadable, rr_n,
                rr_sum_ms, rr_max_ms, n_n, n_s, n_v, n_f, n_q) ",
        );
        q.push_values(part, |mut b, d| {
            b.push_bind(d.device.clone())
                .push_bind(d.minute)
                .push_bind(d.beats)
                .push_bind(d.abnormal)
                .push_bind(d.unreadable)
                .push_bind(d.rr_n)
                .push_bind(d.rr_sum_ms)
                .push_bind(d.rr_max_ms);
            for n in d.classes {
                b.push_bind(n);
            }
        });
        // SQLite's two-argument max() is NULL when either is.
        q.push(
            " ON CONFLICT (device_id, minute) DO UPDATE SET
                beats = beat_minutes.beats + excluded.beats,
                abnormal = beat_minutes.abnormal + excluded.abnormal,
                unreadable = beat_minutes.unreadable + excluded.unreadable,
                rr_n = beat_minutes.rr_n + excluded.rr_n,
                rr_sum_ms = beat_minutes.rr_sum_ms + excluded.rr_sum_ms,
                rr_max_ms = max(coalesce(beat_minutes.rr_max_ms, excluded.rr_max_ms),
                                coalesce(excluded.rr_max_ms, beat_minutes.rr_max_ms)),
                n_n = beat_minutes.n_n + excluded.n_n, n_s = beat_minutes.n_s + excluded.n_s,
                n_v = beat_minutes.n_v + excluded.n_v, n_f = beat_minutes.n_f + excluded.n_f,
                n_q = beat_minutes.n_q + excluded.n_q",
        );
        q.build().execute(&mut *tx).await?;
    }
    Ok(stored.len() as u64)
}

async fn close_segments(
    tx: &mut sqlx::SqliteConnection,
    closed: &[SegmentKey],
) -> Result<(), StoreError> {
    for k in closed {
        sqlx::query(
            "UPDATE segments SET closed = 1 WHERE device_id = ?1 AND stream = ?2 AND first_seq = ?3",
        )
        .bind(&k.device)
        .bind(k.stream as i64)
        .bind(k.first_seq as i64)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

upload_insert!(sqlx::SqliteConnection);
episode_upsert!(sqlx::SqliteConnection);
packed_beat_reads!(sqlx::SqlitePool);
row_decoders!(SqliteRow);
