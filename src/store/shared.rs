//! Reads and decoders whose SQL is the same on both stores (`$N` placeholders
//! work on SQLite too, and `CAST` replaces Postgres' `::type`). Each macro
//! expands inside a store's module, so the text exists once.

/// Row decoding: expands to `segment_from`, `head_from`, `key_from`,
/// `chunk_from`, `keyed_chunk_from`, `block_chunks_from`, `beat_from`, `mark_from`, `minute_from`, `device_from`, `link_from`,
/// `upload_from`, `upload_beat_from` and `episode_from` for the row type `$row`.
macro_rules! row_decoders {
    ($row:ty) => {
        fn episode_from(r: &$row) -> Result<EpisodeRow, StoreError> {
            let kind: &str = r.try_get("kind")?;
            Ok(EpisodeRow {
                device: r.try_get("device_id")?,
                episode: crate::rhythm::Episode {
                    kind: crate::rhythm::EpisodeKind::parse(kind)
                        .ok_or_else(|| StoreError::Corrupt(format!("episode kind {kind:?}")))?,
                    start_us: r.try_get("start_us")?,
                    end_us: r.try_get("end_us")?,
                    beats: r.try_get::<i32, _>("beats")?.max(0) as u32,
                    min_bpm: r.try_get("min_bpm")?,
                    max_bpm: r.try_get("max_bpm")?,
                },
                ongoing: r.try_get("ongoing")?,
                analyser: r.try_get("analyser")?,
            })
        }

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

        fn key_from(r: &$row) -> Result<SegmentKey, StoreError> {
            Ok(SegmentKey {
                device: r.try_get("device_id")?,
                stream: r.try_get::<i64, _>("stream")? as u32,
                first_seq: r.try_get::<i64, _>("first_seq")? as u64,
            })
        }

        fn keyed_chunk_from(r: &$row) -> Result<ChunkRow, StoreError> {
            chunk_from(&key_from(r)?, r)
        }

        /// The chunks of a `signal_blocks` row.
        fn block_chunks_from(r: &$row) -> Result<Vec<ChunkRow>, StoreError> {
            super::signal::decode_block(&key_from(r)?, r.try_get("data")?)
        }

        fn chunk_from(key: &SegmentKey, r: &$row) -> Result<ChunkRow, StoreError> {
            let encoding =
                super::signal::Encoding::from_code(r.try_get::<i16, _>("encoding")?.into())?;
            let (samples, scale) = super::signal::decode_samples(encoding, r.try_get("samples")?)?;
            Ok(ChunkRow {
                segment: key.clone(),
                seq: r.try_get::<i64, _>("seq")? as u64,
                t0_us: r.try_get("t0_us")?,
                fs: r.try_get("fs")?,
                received_us: r.try_get("received_us")?,
                samples,
                scale,
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
                quality: super::rows::parse_quality(quality)?,
                searchback: r.try_get("searchback")?,
                verdict: Verdict::parse(verdict)?,
                p_abnormal: r.try_get("p_abnormal")?,
                class: super::rows::parse_class(r.try_get("class")?)?,
                class_probs: super::rows::parse_class_probs(r.try_get("class_probs")?)?,
                model: r.try_get("model")?,
                model_version: r.try_get("model_version")?,
                values: super::beat_block::decode_vector(
                    r.try_get::<i16, _>("beat_encoding")?.into(),
                    r.try_get("beat")?,
                )?,
            })
        }

        fn mark_from(r: &$row) -> Result<BeatMark, StoreError> {
            let quality: &str = r.try_get("quality")?;
            let verdict: &str = r.try_get("verdict")?;
            Ok(BeatMark {
                r_time_us: r.try_get("r_time_us")?,
                rr_prev_ms: r.try_get("rr_prev_ms")?,
                quality: super::rows::parse_quality(quality)?,
                verdict: Verdict::parse(verdict)?,
                p_abnormal: r.try_get("p_abnormal")?,
                class: super::rows::parse_class(r.try_get("class")?)?,
                model: r.try_get("model")?,
            })
        }

        fn minute_from(r: &$row) -> Result<MinuteRow, StoreError> {
            Ok(MinuteRow {
                minute: r.try_get("minute")?,
                counts: VerdictCounts {
                    beats: r.try_get::<i64, _>("beats")?,
                    abnormal: r.try_get::<i64, _>("abnormal")?,
                    unreadable: r.try_get::<i64, _>("unreadable")?,
                },
                classes: ClassCounts {
                    counts: [
                        r.try_get::<i64, _>("n_n")?,
                        r.try_get::<i64, _>("n_s")?,
                        r.try_get::<i64, _>("n_v")?,
                        r.try_get::<i64, _>("n_f")?,
                        r.try_get::<i64, _>("n_q")?,
                    ],
                },
                rr_n: r.try_get::<i64, _>("rr_n")?,
                rr_sum_ms: r.try_get("rr_sum_ms")?,
                rr_max_ms: r.try_get("rr_max_ms")?,
            })
        }

        fn device_from(r: &$row) -> Result<DeviceRow, StoreError> {
            Ok(DeviceRow {
                device: r.try_get("device_id")?,
                first_seen_us: r.try_get("first_seen_us")?,
                last_seen_us: r.try_get("last_seen_us")?,
                since: VerdictCounts {
                    beats: r.try_get::<i64, _>("beats")?,
                    abnormal: r.try_get::<i64, _>("abnormal")?,
                    unreadable: r.try_get::<i64, _>("unreadable")?,
                },
                last_minute: r.try_get("last_minute")?,
                last_minute_rr_ms: r.try_get("last_rr_ms")?,
            })
        }

        fn link_from(r: &$row) -> Result<FlaggedLink, StoreError> {
            Ok(FlaggedLink {
                r_time_us: r.try_get("r_time_us")?,
                rr_prev_ms: r.try_get("rr_prev_ms")?,
                class: super::rows::parse_class(r.try_get("class")?)?,
            })
        }

        fn upload_from(r: &$row) -> Result<UploadRow, StoreError> {
            Ok(UploadRow {
                id: r.try_get("id")?,
                filename: r.try_get("filename")?,
                uploaded_by: r.try_get("uploaded_by")?,
                created_us: r.try_get("created_us")?,
                model: r.try_get("model")?,
                model_version: r.try_get("model_version")?,
                beats: r.try_get::<i64, _>("beats")?,
                labelled: r.try_get("labelled")?,
                evaluation: r.try_get("evaluation")?,
            })
        }

        fn upload_beat_from(r: &$row) -> Result<UploadBeatRow, StoreError> {
            let verdict: &str = r.try_get("verdict")?;
            Ok(UploadBeatRow {
                row_index: r.try_get::<i64, _>("row_index")?,
                label: r.try_get::<Option<i64>, _>("label")?,
                verdict: Verdict::parse(verdict)?,
                p_abnormal: r.try_get("p_abnormal")?,
                class: super::rows::parse_class(r.try_get("class")?)?,
                class_probs: super::rows::parse_class_probs(r.try_get("class_probs")?)?,
                values: super::bytes_f32(r.try_get("beat")?)?,
            })
        }
    };
}

/// What newly stored beats add to one device-minute of `beat_minutes`.
///
/// Beats are only ever inserted (a beat already stored is skipped, never
/// replaced), so adding the beats each transaction newly stored keeps every
/// rollup equal to a recount of its minute, at the cost of one upsert per
/// transaction instead of a re-read of every touched minute.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MinuteDelta {
    pub device: String,
    pub minute: i64,
    pub beats: i32,
    pub abnormal: i32,
    pub unreadable: i32,
    /// Readable beats with a previous RR interval, and the sum and maximum of those intervals.
    pub rr_n: i32,
    pub rr_sum_ms: f64,
    pub rr_max_ms: Option<f32>,
    /// Beats of class N, S, V, F, Q.
    pub classes: [i32; 5],
}

/// The rollup additions of the beats among `beats` whose `(device, r_time_us)`
/// is in `stored` (the keys the insert reported as new), by device and minute
/// (the order every transaction locks rollup rows in, so that concurrent
/// writers cannot deadlock).
pub(crate) fn minute_deltas(
    beats: &[super::BeatRow],
    stored: &[(String, i64)],
) -> Vec<MinuteDelta> {
    use std::collections::{BTreeMap, HashSet};
    let mut new: HashSet<(&str, i64)> = stored.iter().map(|(d, t)| (d.as_str(), *t)).collect();
    let mut out: BTreeMap<(&str, i64), MinuteDelta> = BTreeMap::new();
    for b in beats {
        // A key given twice in one batch was stored once.
        if !new.remove(&(b.segment.device.as_str(), b.r_time_us)) {
            continue;
        }
        let minute = b.r_time_us.div_euclid(crate::clock::MINUTE_US);
        let d = out
            .entry((b.segment.device.as_str(), minute))
            .or_insert_with(|| MinuteDelta {
                device: b.segment.device.clone(),
                minute,
                beats: 0,
                abnormal: 0,
                unreadable: 0,
                rr_n: 0,
                rr_sum_ms: 0.0,
                rr_max_ms: None,
                classes: [0; 5],
            });
        d.beats += 1;
        match b.verdict {
            super::Verdict::Abnormal => d.abnormal += 1,
            super::Verdict::Unreadable => d.unreadable += 1,
            super::Verdict::Normal => {}
        }
        if b.verdict != super::Verdict::Unreadable
            && let Some(rr) = b.rr_prev_ms
        {
            d.rr_n += 1;
            d.rr_sum_ms += f64::from(rr);
            d.rr_max_ms = Some(d.rr_max_ms.map_or(rr, |m| m.max(rr)));
        }
        if let Some(c) = b.class {
            d.classes[c.index()] += 1;
        }
    }
    out.into_values().collect()
}

/// How far a device's stored `last_seen_us` may lag behind its latest message:
/// the upsert skips devices seen less than this long ago, so that a busy
/// fleet does not rewrite every device row in every chunk transaction.
pub(crate) const LAST_SEEN_RESOLUTION_US: i64 = 5_000_000;

/// Each device among `chunks` once, with its latest reception time, by device
/// (the lock order of the `devices` upsert).
pub(crate) fn last_seen(chunks: &[super::ChunkRow]) -> Vec<(&str, i64)> {
    let mut seen: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
    for c in chunks {
        let t = seen
            .entry(c.segment.device.as_str())
            .or_insert(c.received_us);
        *t = (*t).max(c.received_us);
    }
    seen.into_iter().collect()
}

/// The devices one compaction call covers: the next `$2` ids after `$1` that
/// have loose chunks, found by one index probe each (a loose index scan; a
/// plain `DISTINCT` would read every loose chunk's index entry).
pub(crate) const COMPACTION_DEVICES: &str = "
    WITH RECURSIVE d(id) AS (
        SELECT min(device_id) FROM chunks WHERE device_id > $1
        UNION ALL
        SELECT (SELECT min(c.device_id) FROM chunks c WHERE c.device_id > d.id)
        FROM d WHERE d.id IS NOT NULL)
    SELECT id FROM d WHERE id IS NOT NULL LIMIT $2";

/// The loose chunks of devices in `($1, $2]` received before `$3`, in packing order.
pub(crate) const COMPACTION_CHUNKS: &str =
    "SELECT device_id, stream, first_seq, seq, t0_us, fs, received_us, samples, encoding
     FROM chunks WHERE device_id > $1 AND device_id <= $2 AND received_us < $3
     ORDER BY device_id, stream, first_seq, seq";

/// [`Store::compact_signal`](super::Store::compact_signal) over the store
/// module's `begin_maintenance`, `prepare_blocks`, `insert_blocks` and
/// `delete_chunks`. Expands inside `impl Store`. The chunks are read before
/// the pass's transaction, so that live writers wait on it only while it
/// writes; it deletes exactly the chunks it read and rolls back unless it
/// deleted every one (another compactor or retention got there first).
macro_rules! signal_compaction {
    () => {
        async fn compact_signal(
            &self,
            before_us: i64,
            after: Option<&str>,
            devices: u32,
        ) -> Result<Compaction, StoreError> {
            let after = after.unwrap_or("");
            let ids: Vec<String> = sqlx::query_scalar(shared::COMPACTION_DEVICES)
                .bind(after)
                .bind(i64::from(devices.max(1)))
                .fetch_all(&self.pool)
                .await?;
            let Some(last) = ids.last().cloned() else {
                return Ok(Compaction::default());
            };
            prepare_blocks(&self.pool).await;
            let rows = sqlx::query(shared::COMPACTION_CHUNKS)
                .bind(after)
                .bind(&last)
                .bind(before_us)
                .fetch_all(&self.pool)
                .await?;
            let mut bytes_in = 0u64;
            let mut chunks = Vec::with_capacity(rows.len());
            for r in &rows {
                bytes_in += r.try_get::<&[u8], _>("samples")?.len() as u64;
                chunks.push(keyed_chunk_from(r)?);
            }
            drop(rows);
            let blocks = super::signal::pack(&chunks);
            let Some(mut tx) = begin_maintenance(&self.pool).await? else {
                return Ok(Compaction::default());
            };
            insert_blocks(&mut tx, &blocks).await?;
            let deleted = delete_chunks(&mut tx, &chunks).await?;
            if deleted != chunks.len() as u64 {
                return Err(StoreError::Conflict(format!(
                    "loose chunks changed while being packed ({deleted} deleted of {}); packed again next pass",
                    chunks.len()
                )));
            }
            tx.commit().await?;
            Ok(Compaction {
                chunks: chunks.len() as u64,
                blocks: blocks.len() as u64,
                bytes_in,
                bytes_out: blocks.iter().map(|b| b.data.len() as u64).sum(),
                last_device: (ids.len() as u32 >= devices.max(1)).then_some(last),
            })
        }
    };
}

/// The devices one beat compaction call covers: the next `$2` ids after `$1`
/// that have beat rows (a loose index scan of the primary key).
pub(crate) const BEAT_COMPACTION_DEVICES: &str = "
    WITH RECURSIVE d(id) AS (
        SELECT min(device_id) FROM beats WHERE device_id > $1
        UNION ALL
        SELECT (SELECT min(b.device_id) FROM beats b WHERE b.device_id > d.id)
        FROM d WHERE d.id IS NOT NULL)
    SELECT id FROM d WHERE id IS NOT NULL LIMIT $2";

/// The most beat rows one compaction call reads (about 20 MB in memory): a
/// database written before beat blocks, or a backlog, packs over several calls.
pub(crate) const BEAT_COMPACTION_MAX: usize = 20_000;

/// Columns of a beat row, as [`row_decoders`]' `beat_from` reads them.
macro_rules! beat_columns {
    () => {
        "device_id, stream, first_seq, r_time_us, sample_index, rr_prev_ms, rr_next_ms,
         quality, searchback, verdict, p_abnormal, class, class_probs, model, model_version, beat,
         beat_encoding"
    };
}

/// [`Store::compact_beats`](super::Store::compact_beats), the same SQL on
/// both stores (over the store module's `begin_maintenance`). Expands inside
/// `impl Store`. The beats are read before the pass's transaction, as
/// [`signal_compaction`]'s chunks are.
macro_rules! beat_compaction {
    () => {
        async fn compact_beats(
            &self,
            before_us: i64,
            after: Option<&str>,
            devices: u32,
        ) -> Result<BeatCompaction, StoreError> {
            let after = after.unwrap_or("");
            let ids: Vec<String> = sqlx::query_scalar(shared::BEAT_COMPACTION_DEVICES)
                .bind(after)
                .bind(i64::from(devices.max(1)))
                .fetch_all(&self.pool)
                .await?;
            let Some(last) = ids.last().cloned() else {
                return Ok(BeatCompaction::default());
            };
            let rows = sqlx::query(concat!(
                "SELECT ",
                beat_columns!(),
                ", (SELECT s.fs FROM segments s WHERE s.device_id = beats.device_id
                      AND s.stream = beats.stream AND s.first_seq = beats.first_seq) AS fs
                 FROM beats
                 WHERE device_id > $1 AND device_id <= $2 AND r_time_us < $3
                   AND verdict <> 'abnormal'
                 ORDER BY device_id, stream, first_seq, r_time_us LIMIT $4"
            ))
            .bind(after)
            .bind(&last)
            .bind(before_us)
            .bind(shared::BEAT_COMPACTION_MAX as i64)
            .fetch_all(&self.pool)
            .await?;
            let truncated = rows.len() >= shared::BEAT_COMPACTION_MAX;
            let mut beats = Vec::with_capacity(rows.len());
            let mut rates = std::collections::HashMap::new();
            for r in &rows {
                let b = beat_from(r)?;
                let fs: Option<f64> = r.try_get("fs")?;
                rates.insert(b.segment.clone(), fs.unwrap_or(f64::NAN));
                beats.push(b);
            }
            drop(rows);
            let blocks = super::beat_block::pack(&beats, |k| {
                rates.get(k).copied().unwrap_or(f64::NAN)
            });
            let Some(mut tx) = begin_maintenance(&self.pool).await? else {
                return Ok(BeatCompaction::default());
            };
            for b in &blocks {
                sqlx::query(
                    "INSERT INTO beat_blocks (device_id, stream, first_seq, t_from_us, t_to_us, beats, data)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&b.segment.device)
                .bind(b.segment.stream as i64)
                .bind(b.segment.first_seq as i64)
                .bind(b.t_from_us)
                .bind(b.t_to_us)
                .bind(b.beats)
                .bind(b.data.as_slice())
                .execute(&mut *tx)
                .await?;
                // Deleted by range, then counted: a beat stored in the range
                // after it was read would make the count differ, and the whole
                // pass is rolled back (and tried again next time) rather than
                // a beat lost.
                let deleted = sqlx::query(
                    "DELETE FROM beats WHERE device_id = $1 AND stream = $2 AND first_seq = $3
                       AND r_time_us >= $4 AND r_time_us <= $5 AND verdict <> 'abnormal'",
                )
                .bind(&b.segment.device)
                .bind(b.segment.stream as i64)
                .bind(b.segment.first_seq as i64)
                .bind(b.t_from_us)
                .bind(b.t_to_us)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if deleted != b.beats as u64 {
                    return Err(StoreError::Conflict(format!(
                        "beats of {} changed while being packed ({deleted} rows for {} beats); packed again next pass",
                        b.segment.device, b.beats
                    )));
                }
                sqlx::query(
                    "UPDATE segments SET beats_packed_to_us = $4
                     WHERE device_id = $1 AND stream = $2 AND first_seq = $3
                       AND (beats_packed_to_us IS NULL OR beats_packed_to_us < $4)",
                )
                .bind(&b.segment.device)
                .bind(b.segment.stream as i64)
                .bind(b.segment.first_seq as i64)
                .bind(b.t_to_us)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(BeatCompaction {
                beats: beats.len() as u64,
                blocks: blocks.len() as u64,
                bytes_out: blocks.iter().map(|b| b.data.len() as u64).sum(),
                // A pass cut short by its row limit goes on from the same device.
                last_device: if truncated {
                    Some(after.to_string())
                } else {
                    (ids.len() as u32 >= devices.max(1)).then_some(last)
                },
            })
        }
    };
}

/// Reads of packed beats, the same SQL on both stores: expands to free
/// functions `packed_beats`, `packed_segment_beats`, `packed_beat` and
/// `packed_to` over the pool type `$pool`.
macro_rules! packed_beat_reads {
    ($pool:ty) => {
        /// Packed beats matching `q`, by time, decoded block by block until
        /// `need` of them are certain to precede every later one.
        async fn packed_beats(
            pool: &$pool,
            q: &BeatQuery,
            need: usize,
            vectors: bool,
        ) -> Result<Vec<BeatRow>, StoreError> {
            if !super::beat_block::may_match_packed(q) {
                return Ok(Vec::new());
            }
            // A block ends within its span of its start: bounding the end
            // time keeps the index scan to the range.
            let blocks = sqlx::query(
                "SELECT stream, first_seq, t_from_us FROM beat_blocks
                 WHERE device_id = $1 AND t_to_us >= $2 AND t_to_us < $3 AND t_from_us < $4
                 ORDER BY t_from_us",
            )
            .bind(&q.device)
            .bind(q.from_us)
            .bind(q.to_us.saturating_add(super::beat_block::BLOCK_MAX_SPAN_US + 1))
            .bind(q.to_us)
            .fetch_all(pool)
            .await?;
            let mut out: Vec<BeatRow> = Vec::new();
            let mut latest = i64::MIN;
            for r in &blocks {
                let t_from: i64 = r.try_get("t_from_us")?;
                if out.len() >= need && t_from > latest {
                    break;
                }
                let key = SegmentKey {
                    device: q.device.clone(),
                    stream: r.try_get::<i64, _>("stream")? as u32,
                    first_seq: r.try_get::<i64, _>("first_seq")? as u64,
                };
                let beats = packed_block(pool, &key, t_from, vectors).await?;
                latest = latest.max(beats.last().map_or(t_from, |b| b.r_time_us));
                out.extend(beats.into_iter().filter(|b| super::beat_block::matches(b, q)));
            }
            out.sort_by_key(|b| b.r_time_us);
            Ok(out)
        }

        /// The beats of one block.
        async fn packed_block(
            pool: &$pool,
            key: &SegmentKey,
            t_from_us: i64,
            vectors: bool,
        ) -> Result<Vec<BeatRow>, StoreError> {
            let data: Vec<u8> = sqlx::query_scalar(
                "SELECT data FROM beat_blocks
                 WHERE device_id = $1 AND stream = $2 AND first_seq = $3 AND t_from_us = $4",
            )
            .bind(&key.device)
            .bind(key.stream as i64)
            .bind(key.first_seq as i64)
            .bind(t_from_us)
            .fetch_one(pool)
            .await?;
            super::beat_block::decode_with(key, &data, vectors)
        }

        /// A segment's packed beats before `before_us`, by time, without vectors.
        async fn packed_segment_beats(
            pool: &$pool,
            key: &SegmentKey,
            before_us: i64,
        ) -> Result<Vec<BeatRow>, StoreError> {
            let rows = sqlx::query(
                "SELECT data FROM beat_blocks
                 WHERE device_id = $1 AND stream = $2 AND first_seq = $3 AND t_from_us < $4
                 ORDER BY t_from_us",
            )
            .bind(&key.device)
            .bind(key.stream as i64)
            .bind(key.first_seq as i64)
            .bind(before_us)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::new();
            for r in &rows {
                let beats = super::beat_block::decode_with(key, r.try_get("data")?, false)?;
                out.extend(beats.into_iter().filter(|b| b.r_time_us < before_us));
            }
            Ok(out)
        }

        /// The packed beat of `device` at `r_time_us`, if any.
        async fn packed_beat(
            pool: &$pool,
            device: &str,
            r_time_us: i64,
        ) -> Result<Option<BeatRow>, StoreError> {
            let q = BeatQuery {
                from_us: r_time_us,
                to_us: r_time_us.saturating_add(1),
                ..BeatQuery::all(device, 1)
            };
            Ok(packed_beats(pool, &q, 1, true).await?.into_iter().next())
        }
    };
}

/// The trait's write methods, as transactions over the store module's own
/// `insert_chunks`, `insert_beats` and `close_segments` (which hold the
/// dialect-specific bulk SQL). Expands inside `impl Store`.
macro_rules! transactional_writes {
    () => {
        async fn write_chunks(
            &self,
            segments: &[SegmentRow],
            chunks: &[ChunkRow],
        ) -> Result<(), StoreError> {
            let mut tx = self.pool.begin().await?;
            insert_chunks(&mut tx, segments, chunks).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn write_beats(
            &self,
            beats: &[BeatRow],
            closed: &[SegmentKey],
            episodes: &[EpisodeRow],
        ) -> Result<u64, StoreError> {
            let mut tx = self.pool.begin().await?;
            let inserted = insert_beats(&mut tx, beats).await?;
            upsert_episodes(&mut tx, episodes).await?;
            close_segments(&mut tx, closed).await?;
            tx.commit().await?;
            Ok(inserted)
        }

        async fn import_recording(
            &self,
            segments: &[SegmentRow],
            chunks: &[ChunkRow],
            beats: &[BeatRow],
            episodes: &[EpisodeRow],
        ) -> Result<u64, StoreError> {
            let mut tx = self.pool.begin().await?;
            insert_chunks(&mut tx, segments, chunks).await?;
            let inserted = insert_beats(&mut tx, beats).await?;
            upsert_episodes(&mut tx, episodes).await?;
            let keys: Vec<SegmentKey> = segments.iter().map(|s| s.key.clone()).collect();
            close_segments(&mut tx, &keys).await?;
            tx.commit().await?;
            Ok(inserted)
        }
    };
}

/// Expands to `upsert_episodes(conn, episodes)`, the same SQL on both stores:
/// an episode seen again (extended, closed, or re-derived after a restart)
/// overwrites its row.
macro_rules! episode_upsert {
    ($conn:ty) => {
        async fn upsert_episodes(tx: &mut $conn, episodes: &[EpisodeRow]) -> Result<(), StoreError> {
            for e in episodes {
                sqlx::query(
                    "INSERT INTO episodes (device_id, kind, start_us, end_us, beats, min_bpm, max_bpm,
                                           ongoing, analyser)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                     ON CONFLICT (device_id, kind, start_us) DO UPDATE SET
                         end_us = excluded.end_us, beats = excluded.beats,
                         min_bpm = excluded.min_bpm, max_bpm = excluded.max_bpm,
                         ongoing = excluded.ongoing, analyser = excluded.analyser",
                )
                .bind(&e.device)
                .bind(e.episode.kind.as_str())
                .bind(e.episode.start_us)
                .bind(e.episode.end_us)
                .bind(e.episode.beats.min(i32::MAX as u32) as i32)
                .bind(e.episode.min_bpm)
                .bind(e.episode.max_bpm)
                .bind(e.ongoing)
                .bind(&e.analyser)
                .execute(&mut *tx)
                .await?;
            }
            Ok(())
        }
    };
}

/// Expands to the `episodes` read of `impl Store`, the same SQL on both stores.
macro_rules! episode_reads {
    () => {
        async fn episodes(&self, q: &EpisodeQuery) -> Result<Vec<EpisodeRow>, StoreError> {
            let rows = sqlx::query(
                "SELECT device_id, kind, start_us, end_us, beats, min_bpm, max_bpm, ongoing, analyser
                 FROM episodes
                 WHERE device_id = $1 AND start_us < $3 AND end_us >= $2
                   AND (CAST($4 AS TEXT) IS NULL OR kind = $4)
                 ORDER BY start_us, kind LIMIT $5",
            )
            .bind(&q.device)
            .bind(q.from_us)
            .bind(q.to_us)
            .bind(q.kind.map(|k| k.as_str()))
            .bind(q.limit as i64)
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(episode_from).collect()
        }
    };
}

/// Expands to `insert_upload(conn, upload)`, the same SQL on both stores.
macro_rules! upload_insert {
    ($conn:ty) => {
        async fn insert_upload(tx: &mut $conn, u: &UploadRow) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO uploads (id, filename, uploaded_by, created_us, model, model_version,
                                      beats, labelled, evaluation)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&u.id)
            .bind(&u.filename)
            .bind(&u.uploaded_by)
            .bind(u.created_us)
            .bind(&u.model)
            .bind(&u.model_version)
            .bind(u.beats as i32)
            .bind(u.labelled)
            .bind(&u.evaluation)
            .execute(&mut *tx)
            .await?;
            Ok(())
        }
    };
}

/// The rows of `beats` a [`BeatQuery`] selects (its device, range, verdict,
/// class, minimum probability, limit and offset), with the columns `$columns`.
///
/// A class other than N is read from the flagged-beat index (which carries
/// the class): a classed beat is abnormal exactly when its class is not N
/// (a CHECK of the schema), and the literal `verdict = 'abnormal'` is what
/// lets both planners use that partial index. Class N and no class scan the
/// primary key by time, as most beats are N.
macro_rules! select_beats {
    ($pool:expr, $q:expr, $need:expr, $columns:expr) => {{
        macro_rules! sql {
            ($class:literal) => {
                concat!(
                    "SELECT ",
                    $columns,
                    " FROM beats
                     WHERE device_id = $1 AND r_time_us >= $2 AND r_time_us < $3
                       AND (CAST($4 AS TEXT) IS NULL OR verdict = $4)
                       AND (CAST($5 AS REAL) IS NULL OR p_abnormal >= $5) AND ",
                    $class,
                    " ORDER BY r_time_us LIMIT $6"
                )
            };
        }
        let sql = match $q.class {
            None => sql!("CAST($7 AS TEXT) IS NULL"),
            Some(crate::formats::wfdb::AamiClass::N) => sql!("class = $7"),
            Some(_) => sql!("verdict = 'abnormal' AND class = $7"),
        };
        sqlx::query(sql)
            .bind(&$q.device)
            .bind($q.from_us)
            .bind($q.to_us)
            .bind($q.verdict.map(|v| v.as_str()))
            .bind($q.min_p_abnormal)
            .bind(i64::try_from($need).unwrap_or(i64::MAX))
            .bind($q.class.map(|c| c.as_str()))
            .fetch_all(&$pool)
            .await?
    }};
}

/// The rows part of `q`, given the packed beats' sorted times: when blocks
/// already hold `need` beats, rows after the `need`-th cannot be on the page,
/// so the read stops there instead of at the range's end.
pub(crate) fn rows_query(
    q: &super::BeatQuery,
    mut packed_times: impl Iterator<Item = i64>,
    need: usize,
) -> super::BeatQuery {
    let mut rows_q = q.clone();
    if let Some(t) = need.checked_sub(1).and_then(|i| packed_times.nth(i)) {
        rows_q.to_us = rows_q.to_us.min(t.saturating_add(1));
    }
    rows_q
}

/// Beats a page of `q` needs from each of rows and blocks: its offset and limit.
pub(crate) fn page_need(q: &super::BeatQuery) -> usize {
    usize::try_from(q.offset.saturating_add(u64::from(q.limit))).unwrap_or(usize::MAX)
}

/// The stream reads the daemon needs at start and for re-analysis, identical
/// SQL on both stores; expands to methods of `impl Store`.
macro_rules! stream_reads {
    () => {
        async fn stream_heads(&self) -> Result<Vec<StreamHead>, StoreError> {
            let rows = sqlx::query(
                "SELECT s.device_id, s.stream, s.first_seq, s.t0_us, s.fs, s.lead, s.after_gap, s.closed,
                        (SELECT max(m.seq) FROM (
                           SELECT max(c.seq) AS seq FROM chunks c WHERE c.device_id = s.device_id
                             AND c.stream = s.stream AND c.first_seq = s.first_seq
                           UNION ALL
                           SELECT max(b.seq_to) FROM signal_blocks b WHERE b.device_id = s.device_id
                             AND b.stream = s.stream AND b.first_seq = s.first_seq) m) AS last_seq
                 FROM segments s
                 WHERE s.id IN (SELECT max(id) FROM segments GROUP BY device_id)",
            )
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(head_from).collect()
        }

        async fn open_segments(&self) -> Result<Vec<SegmentRow>, StoreError> {
            let rows = sqlx::query(
                "SELECT device_id, stream, first_seq, t0_us, fs, lead, after_gap
                 FROM segments WHERE closed = FALSE ORDER BY id",
            )
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(segment_from).collect()
        }

        async fn segment_chunks(&self, key: &SegmentKey) -> Result<Vec<ChunkRow>, StoreError> {
            let rows = sqlx::query(
                "SELECT seq, t0_us, fs, received_us, samples, encoding FROM chunks
                 WHERE device_id = $1 AND stream = $2 AND first_seq = $3 ORDER BY seq",
            )
            .bind(&key.device)
            .bind(key.stream as i64)
            .bind(key.first_seq as i64)
            .fetch_all(&self.pool)
            .await?;
            let mut chunks = rows
                .iter()
                .map(|r| chunk_from(key, r))
                .collect::<Result<Vec<_>, _>>()?;
            let blocks = sqlx::query(
                "SELECT device_id, stream, first_seq, data FROM signal_blocks
                 WHERE device_id = $1 AND stream = $2 AND first_seq = $3 ORDER BY seq_from",
            )
            .bind(&key.device)
            .bind(key.stream as i64)
            .bind(key.first_seq as i64)
            .fetch_all(&self.pool)
            .await?;
            for r in &blocks {
                chunks.extend(block_chunks_from(r)?);
            }
            Ok(super::signal::merge(chunks, false))
        }

        async fn last_beat_us(&self, key: &SegmentKey) -> Result<Option<i64>, StoreError> {
            Ok(sqlx::query_scalar(
                "SELECT max(m.t) FROM (
                   SELECT max(r_time_us) AS t FROM beats
                   WHERE device_id = $1 AND stream = $2 AND first_seq = $3
                   UNION ALL
                   SELECT max(t_to_us) FROM beat_blocks
                   WHERE device_id = $1 AND stream = $2 AND first_seq = $3) m",
            )
            .bind(&key.device)
            .bind(key.stream as i64)
            .bind(key.first_seq as i64)
            .fetch_one(&self.pool)
            .await?)
        }

        async fn segment_marks(
            &self,
            key: &SegmentKey,
            before_us: i64,
        ) -> Result<Vec<BeatMark>, StoreError> {
            // Bounded below by the segment's start, so the device's earlier
            // segments are not scanned.
            let rows = sqlx::query(
                "SELECT r_time_us, rr_prev_ms, quality, verdict, p_abnormal, class, model
                 FROM beats
                 WHERE device_id = $1 AND stream = $2 AND first_seq = $3 AND r_time_us < $4
                   AND r_time_us >= (SELECT t0_us FROM segments
                                     WHERE device_id = $1 AND stream = $2 AND first_seq = $3)
                 ORDER BY r_time_us",
            )
            .bind(&key.device)
            .bind(key.stream as i64)
            .bind(key.first_seq as i64)
            .bind(before_us)
            .fetch_all(&self.pool)
            .await?;
            let rows = rows.iter().map(mark_from).collect::<Result<Vec<_>, _>>()?;
            let packed = packed_segment_beats(&self.pool, key, before_us).await?;
            let packed = packed.into_iter().map(super::beat_block::mark_of).collect();
            Ok(super::beat_block::merge_page(rows, packed, |m| m.r_time_us, 0, u32::MAX))
        }

        async fn beats(&self, q: &BeatQuery) -> Result<Vec<BeatRow>, StoreError> {
            let need = shared::page_need(q);
            let packed = packed_beats(&self.pool, q, need, true).await?;
            let rows_q = shared::rows_query(q, packed.iter().map(|b| b.r_time_us), need);
            let rows = select_beats!(self.pool, rows_q, need, beat_columns!());
            let rows = rows.iter().map(beat_from).collect::<Result<Vec<_>, _>>()?;
            Ok(super::beat_block::merge_page(rows, packed, |b| b.r_time_us, q.offset, q.limit))
        }

        async fn ping(&self) -> Result<(), StoreError> {
            sqlx::query("SELECT 1").execute(&self.pool).await?;
            Ok(())
        }
    };
}

/// The review reads, identical SQL on both stores; expands to methods of
/// `impl Store` whose `self.pool` is the store's pool.
macro_rules! review_reads {
    () => {
        async fn devices(&self, since_minute: i64) -> Result<Vec<DeviceRow>, StoreError> {
            let rows = sqlx::query(
                "SELECT d.device_id, d.first_seen_us, d.last_seen_us,
                        CAST(coalesce(sum(m.beats), 0) AS BIGINT) AS beats,
                        CAST(coalesce(sum(m.abnormal), 0) AS BIGINT) AS abnormal,
                        CAST(coalesce(sum(m.unreadable), 0) AS BIGINT) AS unreadable,
                        (SELECT max(l.minute) FROM beat_minutes l
                          WHERE l.device_id = d.device_id) AS last_minute,
                        (SELECT l.rr_sum_ms / l.rr_n FROM beat_minutes l
                          WHERE l.device_id = d.device_id AND l.rr_n > 0
                          ORDER BY l.minute DESC LIMIT 1) AS last_rr_ms
                 FROM devices d
                 LEFT JOIN beat_minutes m ON m.device_id = d.device_id AND m.minute >= $1
                 GROUP BY d.device_id, d.first_seen_us, d.last_seen_us
                 ORDER BY d.device_id",
            )
            .bind(since_minute)
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(device_from).collect()
        }

        async fn last_minute(&self, device: &str) -> Result<Option<i64>, StoreError> {
            Ok(
                sqlx::query_scalar("SELECT max(minute) FROM beat_minutes WHERE device_id = $1")
                    .bind(device)
                    .fetch_one(&self.pool)
                    .await?,
            )
        }

        async fn minutes(
            &self,
            device: &str,
            from_minute: i64,
            to_minute: i64,
        ) -> Result<Vec<MinuteRow>, StoreError> {
            let rows = sqlx::query(
                "SELECT minute, CAST(beats AS BIGINT) AS beats, CAST(abnormal AS BIGINT) AS abnormal,
                        CAST(unreadable AS BIGINT) AS unreadable, CAST(rr_n AS BIGINT) AS rr_n,
                        rr_sum_ms, rr_max_ms, CAST(n_n AS BIGINT) AS n_n, CAST(n_s AS BIGINT) AS n_s,
                        CAST(n_v AS BIGINT) AS n_v, CAST(n_f AS BIGINT) AS n_f,
                        CAST(n_q AS BIGINT) AS n_q
                 FROM beat_minutes WHERE device_id = $1 AND minute >= $2 AND minute < $3
                 ORDER BY minute",
            )
            .bind(device)
            .bind(from_minute)
            .bind(to_minute)
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(minute_from).collect()
        }

        async fn beat(&self, device: &str, r_time_us: i64) -> Result<Option<BeatRow>, StoreError> {
            let row = sqlx::query(concat!(
                "SELECT ",
                beat_columns!(),
                " FROM beats WHERE device_id = $1 AND r_time_us = $2"
            ))
            .bind(device)
            .bind(r_time_us)
            .fetch_optional(&self.pool)
            .await?;
            match row {
                Some(r) => beat_from(&r).map(Some),
                None => packed_beat(&self.pool, device, r_time_us).await,
            }
        }

        async fn beat_marks(&self, q: &BeatQuery) -> Result<Vec<BeatMark>, StoreError> {
            let need = shared::page_need(q);
            let packed = packed_beats(&self.pool, q, need, false).await?;
            let rows_q = shared::rows_query(q, packed.iter().map(|b| b.r_time_us), need);
            let rows = select_beats!(
                self.pool,
                rows_q,
                need,
                "r_time_us, rr_prev_ms, quality, verdict, p_abnormal, class, model"
            );
            let rows = rows.iter().map(mark_from).collect::<Result<Vec<_>, _>>()?;
            let packed = packed.into_iter().map(super::beat_block::mark_of).collect();
            Ok(super::beat_block::merge_page(rows, packed, |m| m.r_time_us, q.offset, q.limit))
        }

        async fn flagged_neighbour(
            &self,
            device: &str,
            r_time_us: i64,
            later: bool,
        ) -> Result<Option<i64>, StoreError> {
            let sql = if later {
                "SELECT min(r_time_us) FROM beats
                 WHERE device_id = $1 AND verdict = 'abnormal' AND r_time_us > $2"
            } else {
                "SELECT max(r_time_us) FROM beats
                 WHERE device_id = $1 AND verdict = 'abnormal' AND r_time_us < $2"
            };
            Ok(sqlx::query_scalar(sql)
                .bind(device)
                .bind(r_time_us)
                .fetch_one(&self.pool)
                .await?)
        }

        async fn flagged_links(
            &self,
            device: &str,
            from_us: i64,
            to_us: i64,
        ) -> Result<Vec<FlaggedLink>, StoreError> {
            let rows = sqlx::query(
                "SELECT r_time_us, rr_prev_ms, class FROM beats
                 WHERE device_id = $1 AND verdict = 'abnormal' AND r_time_us >= $2 AND r_time_us < $3
                 ORDER BY r_time_us",
            )
            .bind(device)
            .bind(from_us)
            .bind(to_us)
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(link_from).collect()
        }

        async fn chunks_between(
            &self,
            device: &str,
            from_us: i64,
            to_us: i64,
        ) -> Result<Vec<ChunkRow>, StoreError> {
            // A message is at most `wire::MAX_MESSAGE_SPAN_US` long, so chunks that
            // overlap the range start no earlier than that before it.
            let from = from_us.saturating_sub(crate::formats::wire::MAX_MESSAGE_SPAN_US);
            let rows = sqlx::query(
                "SELECT device_id, stream, first_seq, seq, t0_us, fs, received_us, samples, encoding
                 FROM chunks WHERE device_id = $1 AND t0_us >= $2 AND t0_us < $3",
            )
            .bind(device)
            .bind(from)
            .bind(to_us)
            .fetch_all(&self.pool)
            .await?;
            let mut chunks = rows
                .iter()
                .map(keyed_chunk_from)
                .collect::<Result<Vec<_>, _>>()?;
            // A block starts at most its longest span before the chunks it holds.
            let blocks = sqlx::query(
                "SELECT device_id, stream, first_seq, data FROM signal_blocks
                 WHERE device_id = $1 AND t0_us >= $2 AND t0_us < $3 AND t_end_us > $4",
            )
            .bind(device)
            .bind(from.saturating_sub(super::signal::BLOCK_MAX_SPAN_US))
            .bind(to_us)
            .bind(from)
            .fetch_all(&self.pool)
            .await?;
            for r in &blocks {
                chunks.extend(
                    block_chunks_from(r)?
                        .into_iter()
                        .filter(|c| c.t0_us >= from && c.t0_us < to_us),
                );
            }
            Ok(super::signal::merge(chunks, true))
        }

        async fn uploads(&self, limit: u32) -> Result<Vec<UploadRow>, StoreError> {
            let rows = sqlx::query(
                "SELECT id, filename, uploaded_by, created_us, model, model_version,
                        CAST(beats AS BIGINT) AS beats, labelled, evaluation
                 FROM uploads ORDER BY created_us DESC LIMIT $1",
            )
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(upload_from).collect()
        }

        async fn upload(&self, id: &str) -> Result<Option<UploadRow>, StoreError> {
            let row = sqlx::query(
                "SELECT id, filename, uploaded_by, created_us, model, model_version,
                        CAST(beats AS BIGINT) AS beats, labelled, evaluation
                 FROM uploads WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(upload_from).transpose()
        }

        async fn upload_counts(&self, id: &str) -> Result<VerdictCounts, StoreError> {
            let rows: Vec<(String, i64)> = sqlx::query_as(
                "SELECT verdict, CAST(count(*) AS BIGINT) FROM upload_beats
                 WHERE upload_id = $1 GROUP BY verdict",
            )
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
            let mut c = VerdictCounts::default();
            for (verdict, n) in rows {
                c.beats += n;
                match Verdict::parse(&verdict)? {
                    Verdict::Abnormal => c.abnormal += n,
                    Verdict::Unreadable => c.unreadable += n,
                    Verdict::Normal => {}
                }
            }
            Ok(c)
        }

        async fn upload_beats(
            &self,
            id: &str,
            verdict: Option<Verdict>,
            limit: u32,
            offset: u64,
        ) -> Result<Vec<UploadBeatRow>, StoreError> {
            let rows = sqlx::query(
                "SELECT CAST(row_index AS BIGINT) AS row_index, CAST(label AS BIGINT) AS label, verdict, p_abnormal,
                        class, class_probs, beat
                 FROM upload_beats
                 WHERE upload_id = $1 AND (CAST($2 AS TEXT) IS NULL OR verdict = $2)
                 ORDER BY row_index LIMIT $3 OFFSET $4",
            )
            .bind(id)
            .bind(verdict.map(|v| v.as_str()))
            .bind(limit as i64)
            .bind(offset.min(i64::MAX as u64) as i64)
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(upload_beat_from).collect()
        }

        async fn upload_beat(
            &self,
            id: &str,
            row_index: i64,
        ) -> Result<Option<UploadBeatRow>, StoreError> {
            let row = sqlx::query(
                "SELECT CAST(row_index AS BIGINT) AS row_index, CAST(label AS BIGINT) AS label, verdict, p_abnormal,
                        class, class_probs, beat
                 FROM upload_beats WHERE upload_id = $1 AND row_index = $2",
            )
            .bind(id)
            .bind(row_index)
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(upload_beat_from).transpose()
        }
    };
}
