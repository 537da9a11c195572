//! The Postgres store: bulk writes as one `INSERT … SELECT FROM UNNEST(arrays)`
//! per table and transaction, never row by row.

use super::rows::class_probs_bytes;
use super::signal;
use super::{
    BeatCompaction, BeatMark, BeatQuery, BeatRow, ChunkRow, ClassCounts, Compaction, DeviceRow,
    EpisodeQuery, EpisodeRow, FlaggedLink, MinuteRow, SegmentKey, SegmentRow, Store, StoreError,
    StreamHead, UploadBeatRow, UploadRow, Verdict, VerdictCounts, f32_bytes, shared,
};
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

/// A Postgres connection pool.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host/db`) with up to `max_connections` connections.
    pub async fn connect(url: &str, max_connections: u32) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url)?.application_name("holterd");
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        Ok(PgStore { pool })
    }

    /// The pool, for queries the trait does not cover.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl Store for PgStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("migrations/postgres")
            .run(&self.pool)
            .await?;
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
        sqlx::query(
            "INSERT INTO upload_beats (upload_id, row_index, label, verdict, p_abnormal, class,
                                       class_probs, beat)
             SELECT $1, * FROM UNNEST($2::int[], $3::int[], $4::text[], $5::real[], $6::text[],
                                      $7::bytea[], $8::bytea[])",
        )
        .bind(&u.id)
        .bind(beats.iter().map(|b| b.row_index as i32).collect::<Vec<_>>())
        .bind(
            beats
                .iter()
                .map(|b| b.label.map(|l| l as i32))
                .collect::<Vec<_>>(),
        )
        .bind(beats.iter().map(|b| b.verdict.as_str()).collect::<Vec<_>>())
        .bind(beats.iter().map(|b| b.p_abnormal).collect::<Vec<_>>())
        .bind(
            beats
                .iter()
                .map(|b| b.class.map(|c| c.as_str()))
                .collect::<Vec<_>>(),
        )
        .bind(
            beats
                .iter()
                .map(|b| class_probs_bytes(b.class_probs))
                .collect::<Vec<_>>(),
        )
        .bind(
            beats
                .iter()
                .map(|b| f32_bytes(&b.values))
                .collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    stream_reads!();

    signal_compaction!();

    beat_compaction!();

    async fn prune_chunks(&self, before_us: i64) -> Result<u64, StoreError> {
        let mut removed = sqlx::query("DELETE FROM chunks WHERE received_us < $1")
            .bind(before_us)
            .execute(&self.pool)
            .await?
            .rows_affected();
        // Whole days first, as dropped partitions; then what is left before the cutoff.
        let parts: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'signal_blocks'::regclass",
        )
        .fetch_all(&self.pool)
        .await?;
        for name in parts {
            // The name is rebuilt from the parsed day: only digits reach the SQL.
            let Some((day, name)) =
                partition_day(&name).and_then(|d| Some((d, partition_name(d)?)))
            else {
                continue;
            };
            if (day + 1) * DAY_US <= before_us {
                // The lock first: another daemon may drop the partition until we hold it.
                let Some(mut tx) = begin_maintenance(&self.pool).await? else {
                    continue;
                };
                let gone: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NULL")
                    .bind(&name)
                    .fetch_one(&mut *tx)
                    .await?;
                if gone {
                    continue;
                }
                let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT CAST(coalesce(sum(chunks), 0) AS BIGINT) FROM {name}"
                )))
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {name}")))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                removed += n.max(0) as u64;
            }
        }
        let n: i64 = sqlx::query_scalar(
            "WITH gone AS (DELETE FROM signal_blocks WHERE received_us < $1 RETURNING chunks)
             SELECT CAST(coalesce(sum(chunks), 0) AS BIGINT) FROM gone",
        )
        .bind(before_us)
        .fetch_one(&self.pool)
        .await?;
        Ok(removed + n.max(0) as u64)
    }
}

const DAY_US: i64 = 86_400_000_000;

/// The name of the `signal_blocks` partition of `day` (days since the epoch): `signal_blocks_YYYYMMDD`.
fn partition_name(day: i64) -> Option<String> {
    let date = time::OffsetDateTime::from_unix_timestamp(day.checked_mul(86_400)?).ok()?;
    Some(format!(
        "signal_blocks_{:04}{:02}{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    ))
}

/// The day (since the epoch) a partition named by [`partition_name`] holds; `None` for others.
fn partition_day(name: &str) -> Option<i64> {
    let digits = name.strip_prefix("signal_blocks_")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (y, m, d) = (
        digits[..4].parse().ok()?,
        digits[4..6].parse::<u8>().ok()?,
        digits[6..].parse().ok()?,
    );
    let date = time::Date::from_calendar_date(y, time::Month::try_from(m).ok()?, d).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp() / 86_400)
}

/// The first advisory lock key of compaction and retention ("holt" in
/// ASCII); the second is the store's schema, so that stores in different
/// schemas of one database (test suites, staging beside production) never
/// skip each other's passes.
const MAINTENANCE_LOCK: i32 = 0x686f_6c74;

/// Opens the transaction of a compaction or retention pass holding the lock
/// that makes these passes run in one daemon at a time when several share
/// this store (two compactors packing the same loose chunks would both pack
/// them); `None` when another holds it, and this pass is left to that one.
async fn begin_maintenance(
    pool: &PgPool,
) -> Result<Option<sqlx::Transaction<'static, sqlx::Postgres>>, StoreError> {
    let mut tx = pool.begin().await?;
    let granted: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1, hashtext(current_schema()))")
            .bind(MAINTENANCE_LOCK)
            .fetch_one(&mut *tx)
            .await?;
    Ok(granted.then_some(tx))
}

/// Creates the block partitions of today and tomorrow (UTC) if missing, so that
/// blocks never need the default partition. A failure (say, the default
/// partition already holds blocks of that day) only costs the day its own
/// partition: its blocks go to the default one, and retention deletes them there.
async fn prepare_blocks(pool: &PgPool) {
    let today = crate::clock::now_us().div_euclid(DAY_US);
    for day in [today, today + 1] {
        let Some(name) = partition_name(day) else {
            continue;
        };
        let exists: Result<Option<String>, _> =
            sqlx::query_scalar("SELECT CAST(to_regclass($1) AS TEXT)")
                .bind(&name)
                .fetch_one(pool)
                .await;
        if let Ok(Some(_)) = exists {
            continue;
        }
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {name} PARTITION OF signal_blocks
             FOR VALUES FROM ({}) TO ({})",
            day * DAY_US,
            (day + 1) * DAY_US
        );
        let storage = format!("ALTER TABLE {name} ALTER COLUMN data SET STORAGE EXTERNAL");
        for sql in [create, storage] {
            // `name` and the bounds are digits this function formatted.
            if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await {
                tracing::warn!(partition = %name, error = %e, "creating a signal block partition failed");
                break;
            }
        }
    }
}

async fn insert_blocks(
    tx: &mut sqlx::PgConnection,
    blocks: &[signal::BlockRow],
) -> Result<(), StoreError> {
    if blocks.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO signal_blocks (device_id, stream, first_seq, seq_from, seq_to, t0_us,
                                    t_end_us, received_us, chunks, samples, data)
         SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[],
                              $6::bigint[], $7::bigint[], $8::bigint[], $9::int[], $10::int[],
                              $11::bytea[])",
    )
    .bind(
        blocks
            .iter()
            .map(|b| b.segment.device.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        blocks
            .iter()
            .map(|b| b.segment.stream as i64)
            .collect::<Vec<_>>(),
    )
    .bind(
        blocks
            .iter()
            .map(|b| b.segment.first_seq as i64)
            .collect::<Vec<_>>(),
    )
    .bind(blocks.iter().map(|b| b.seq_from as i64).collect::<Vec<_>>())
    .bind(blocks.iter().map(|b| b.seq_to as i64).collect::<Vec<_>>())
    .bind(blocks.iter().map(|b| b.t0_us).collect::<Vec<_>>())
    .bind(blocks.iter().map(|b| b.t_end_us).collect::<Vec<_>>())
    .bind(blocks.iter().map(|b| b.received_us).collect::<Vec<_>>())
    .bind(blocks.iter().map(|b| b.chunks).collect::<Vec<_>>())
    .bind(blocks.iter().map(|b| b.samples).collect::<Vec<_>>())
    .bind(blocks.iter().map(|b| b.data.as_slice()).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Deletes exactly the chunks given (never by a predicate: a chunk whose write
/// committed after they were read stays loose until the next compaction);
/// how many rows it deleted.
async fn delete_chunks(
    tx: &mut sqlx::PgConnection,
    chunks: &[ChunkRow],
) -> Result<u64, StoreError> {
    if chunks.is_empty() {
        return Ok(0);
    }
    Ok(sqlx::query(
        "DELETE FROM chunks c USING UNNEST($1::text[], $2::bigint[], $3::bigint[]) AS k(d, s, q)
         WHERE c.device_id = k.d AND c.stream = k.s AND c.seq = k.q",
    )
    .bind(
        chunks
            .iter()
            .map(|c| c.segment.device.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        chunks
            .iter()
            .map(|c| c.segment.stream as i64)
            .collect::<Vec<_>>(),
    )
    .bind(chunks.iter().map(|c| c.seq as i64).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?
    .rows_affected())
}

async fn insert_chunks(
    tx: &mut sqlx::PgConnection,
    segments: &[SegmentRow],
    chunks: &[ChunkRow],
) -> Result<(), StoreError> {
    if !segments.is_empty() {
        sqlx::query(
            "INSERT INTO segments (device_id, stream, first_seq, t0_us, fs, lead, after_gap)
         SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[],
                      $5::float8[], $6::text[], $7::bool[])
         ON CONFLICT DO NOTHING",
        )
        .bind(
            segments
                .iter()
                .map(|s| s.key.device.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            segments
                .iter()
                .map(|s| s.key.stream as i64)
                .collect::<Vec<_>>(),
        )
        .bind(
            segments
                .iter()
                .map(|s| s.key.first_seq as i64)
                .collect::<Vec<_>>(),
        )
        .bind(segments.iter().map(|s| s.t0_us).collect::<Vec<_>>())
        .bind(segments.iter().map(|s| s.fs).collect::<Vec<_>>())
        .bind(segments.iter().map(|s| s.lead.clone()).collect::<Vec<_>>())
        .bind(segments.iter().map(|s| s.after_gap).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    if !chunks.is_empty() {
        let encoded: Vec<_> = chunks
            .iter()
            .map(|c| signal::encode_samples(&c.samples, c.scale))
            .collect();
        sqlx::query(
        "INSERT INTO chunks (device_id, stream, seq, first_seq, t0_us, fs, received_us, samples,
                             encoding)
         SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[],
                      $5::bigint[], $6::float8[], $7::bigint[], $8::bytea[], $9::int2[])
         ON CONFLICT DO NOTHING",
        )
        .bind(chunks.iter().map(|c| c.segment.device.clone()).collect::<Vec<_>>())
        .bind(chunks.iter().map(|c| c.segment.stream as i64).collect::<Vec<_>>())
        .bind(chunks.iter().map(|c| c.seq as i64).collect::<Vec<_>>())
        .bind(chunks.iter().map(|c| c.segment.first_seq as i64).collect::<Vec<_>>())
        .bind(chunks.iter().map(|c| c.t0_us).collect::<Vec<_>>())
        .bind(chunks.iter().map(|c| c.fs).collect::<Vec<_>>())
        .bind(chunks.iter().map(|c| c.received_us).collect::<Vec<_>>())
        .bind(encoded.iter().map(|(_, b)| b.as_slice()).collect::<Vec<_>>())
        .bind(encoded.iter().map(|(e, _)| e.code()).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        let seen = shared::last_seen(chunks);
        sqlx::query(
            "INSERT INTO devices (device_id, first_seen_us, last_seen_us)
         SELECT d, t, t FROM UNNEST($1::text[], $2::bigint[]) AS u(d, t)
         ON CONFLICT (device_id) DO UPDATE SET last_seen_us = EXCLUDED.last_seen_us
         WHERE devices.last_seen_us <= EXCLUDED.last_seen_us - $3",
        )
        .bind(seen.iter().map(|(d, _)| *d).collect::<Vec<_>>())
        .bind(seen.iter().map(|(_, t)| *t).collect::<Vec<_>>())
        .bind(shared::LAST_SEEN_RESOLUTION_US)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Stores beats not yet stored and refreshes the minutes they fall in; returns how many were new.
async fn insert_beats(tx: &mut sqlx::PgConnection, beats: &[BeatRow]) -> Result<u64, StoreError> {
    let mut stored = Vec::new();
    if !beats.is_empty() {
        stored = sqlx::query(
            "INSERT INTO beats (device_id, r_time_us, stream, first_seq, sample_index,
                                rr_prev_ms, rr_next_ms, quality, searchback, verdict,
                                p_abnormal, model, model_version, beat, class, class_probs,
                                beat_encoding)
             SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[],
                                  $5::bigint[], $6::real[], $7::real[], $8::text[],
                                  $9::bool[], $10::text[], $11::real[], $12::text[],
                                  $13::text[], $14::bytea[], $15::text[], $16::bytea[],
                                  $17::smallint[])
                 AS u(device_id, r_time_us, stream, first_seq)
             WHERE NOT EXISTS (SELECT 1 FROM segments s WHERE s.device_id = u.device_id
                 AND s.stream = u.stream AND s.first_seq = u.first_seq
                 AND s.beats_packed_to_us >= u.r_time_us)
             ON CONFLICT DO NOTHING
             RETURNING device_id, r_time_us",
        )
        .bind(
            beats
                .iter()
                .map(|b| b.segment.device.clone())
                .collect::<Vec<_>>(),
        )
        .bind(beats.iter().map(|b| b.r_time_us).collect::<Vec<_>>())
        .bind(
            beats
                .iter()
                .map(|b| b.segment.stream as i64)
                .collect::<Vec<_>>(),
        )
        .bind(
            beats
                .iter()
                .map(|b| b.segment.first_seq as i64)
                .collect::<Vec<_>>(),
        )
        .bind(beats.iter().map(|b| b.sample as i64).collect::<Vec<_>>())
        .bind(beats.iter().map(|b| b.rr_prev_ms).collect::<Vec<_>>())
        .bind(beats.iter().map(|b| b.rr_next_ms).collect::<Vec<_>>())
        .bind(beats.iter().map(|b| b.quality.as_str()).collect::<Vec<_>>())
        .bind(beats.iter().map(|b| b.searchback).collect::<Vec<_>>())
        .bind(beats.iter().map(|b| b.verdict.as_str()).collect::<Vec<_>>())
        .bind(beats.iter().map(|b| b.p_abnormal).collect::<Vec<_>>())
        .bind(beats.iter().map(|b| b.model.clone()).collect::<Vec<_>>())
        .bind(
            beats
                .iter()
                .map(|b| b.model_version.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            beats
                .iter()
                .map(|b| super::beat_block::encode_vector(&b.values))
                .collect::<Vec<_>>(),
        )
        .bind(
            beats
                .iter()
                .map(|b| b.class.map(|c| c.as_str()))
                .collect::<Vec<_>>(),
        )
        .bind(
            beats
                .iter()
                .map(|b| class_probs_bytes(b.class_probs))
                .collect::<Vec<_>>(),
        )
        .bind(vec![
            super::beat_block::VectorEncoding::Steps as i16;
            beats.len()
        ])
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<Vec<(String, i64)>, sqlx::Error>>()?;
    }
    add_to_minutes(tx, &shared::minute_deltas(beats, &stored)).await?;
    Ok(stored.len() as u64)
}

/// Adds newly stored beats to their minutes' rollups, in one statement.
async fn add_to_minutes(
    tx: &mut sqlx::PgConnection,
    deltas: &[shared::MinuteDelta],
) -> Result<(), StoreError> {
    if deltas.is_empty() {
        return Ok(());
    }
    let class = |i: usize| deltas.iter().map(|d| d.classes[i]).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO beat_minutes (device_id, minute, beats, abnormal, unreadable, rr_n, rr_sum_ms,
                                   rr_max_ms, n_n, n_s, n_v, n_f, n_q)
         SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::int[], $4::int[], $5::int[],
                              $6::int[], $7::float8[], $8::real[], $9::int[], $10::int[],
                              $11::int[], $12::int[], $13::int[])
         ON CONFLICT (device_id, minute) DO UPDATE SET
             beats = beat_minutes.beats + excluded.beats,
             abnormal = beat_minutes.abnormal + excluded.abnormal,
             unreadable = beat_minutes.unreadable + excluded.unreadable,
             rr_n = beat_minutes.rr_n + excluded.rr_n,
             rr_sum_ms = beat_minutes.rr_sum_ms + excluded.rr_sum_ms,
             rr_max_ms = GREATEST(beat_minutes.rr_max_ms, excluded.rr_max_ms),
             n_n = beat_minutes.n_n + excluded.n_n, n_s = beat_minutes.n_s + excluded.n_s,
             n_v = beat_minutes.n_v + excluded.n_v, n_f = beat_minutes.n_f + excluded.n_f,
             n_q = beat_minutes.n_q + excluded.n_q",
    )
    .bind(deltas.iter().map(|d| d.device.clone()).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.minute).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.beats).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.abnormal).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.unreadable).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.rr_n).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.rr_sum_ms).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.rr_max_ms).collect::<Vec<_>>())
    .bind(class(0))
    .bind(class(1))
    .bind(class(2))
    .bind(class(3))
    .bind(class(4))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn close_segments(
    tx: &mut sqlx::PgConnection,
    closed: &[SegmentKey],
) -> Result<(), StoreError> {
    if !closed.is_empty() {
        sqlx::query(
            "UPDATE segments SET closed = TRUE
             FROM UNNEST($1::text[], $2::bigint[], $3::bigint[]) AS k(d, s, f)
             WHERE device_id = k.d AND stream = k.s AND first_seq = k.f",
        )
        .bind(closed.iter().map(|k| k.device.clone()).collect::<Vec<_>>())
        .bind(closed.iter().map(|k| k.stream as i64).collect::<Vec<_>>())
        .bind(
            closed
                .iter()
                .map(|k| k.first_seq as i64)
                .collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

upload_insert!(sqlx::PgConnection);
episode_upsert!(sqlx::PgConnection);
packed_beat_reads!(PgPool);
row_decoders!(sqlx::postgres::PgRow);
