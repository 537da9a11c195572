//! One test suite for both stores: SQLite always, Postgres when
//! `HOLTER_TEST_POSTGRES_URL` is set (each run in a schema of its own).

mod common;

use holterd::clock::MINUTE_US;
use holterd::dsp::Quality;
use holterd::formats::wfdb::AamiClass;
use holterd::formats::wire::Scale;
use holterd::rhythm::{Episode, EpisodeKind};
use holterd::store::{
    AnyStore, BeatCompaction, BeatQuery, BeatRow, ChunkRow, ClassCounts, Compaction, DeviceRow,
    EpisodeQuery, EpisodeRow, FlaggedLink, SegmentKey, SegmentRow, Store, UploadBeatRow, UploadRow,
    Verdict, VerdictCounts,
};

fn key(device: &str, first_seq: u64) -> SegmentKey {
    common::segment_key(device, 7, first_seq)
}

fn segment(device: &str, first_seq: u64) -> SegmentRow {
    common::segment_row(key(device, first_seq), 1_000_000 * first_seq as i64, 360.0)
}

/// A chunk of 360 samples: odd `seq`s in mV, even ones as a device's counts
/// (which the store keeps as counts and must give back bit for bit).
fn chunk(device: &str, first_seq: u64, seq: u64) -> ChunkRow {
    let wave = (0..360).map(|i| (i as f32 * 0.01 + seq as f32).sin());
    let scale = Scale {
        gain: 200.0,
        baseline: 1024.0,
    };
    let (samples, scale) = if seq.is_multiple_of(2) {
        let counts = wave.map(|v| (v * 200.0).round() as f64 + 1024.0);
        (counts.map(|c| scale.millivolts(c)).collect(), Some(scale))
    } else {
        (wave.collect(), None)
    };
    ChunkRow {
        segment: key(device, first_seq),
        seq,
        t0_us: 1_000_000 * seq as i64,
        fs: 360.0,
        received_us: 5_000_000 + seq as i64,
        samples,
        scale,
    }
}

fn beat(device: &str, first_seq: u64, t: i64, verdict: Verdict, p: Option<f32>) -> BeatRow {
    BeatRow {
        segment: key(device, first_seq),
        r_time_us: t,
        sample: t as u64 / 1000,
        rr_prev_ms: Some(812.5),
        rr_next_ms: None,
        quality: if verdict == Verdict::Unreadable {
            Quality::Flat
        } else {
            Quality::Good
        },
        searchback: t % 2 == 0,
        verdict,
        p_abnormal: p,
        class: None,
        class_probs: None,
        model: "m".into(),
        model_version: "v1".into(),
        // On the 10-bit grid the store keeps vectors at, so they read back exactly.
        values: (0..187).map(|i| (5 * i) as f32 / 1023.0).collect(),
    }
}

async fn suite(s: AnyStore) {
    let dev = common::unique("dev-");
    // Migrations run twice without harm.
    s.migrate().await.unwrap();
    s.ping().await.unwrap();

    // Chunks and segments: written once however often they are sent.
    let chunks: Vec<ChunkRow> = (0..5).map(|q| chunk(&dev, 0, q)).collect();
    s.write_chunks(&[segment(&dev, 0)], &chunks[..3])
        .await
        .unwrap();
    s.write_chunks(&[segment(&dev, 0)], &chunks).await.unwrap();
    let stored = s.segment_chunks(&key(&dev, 0)).await.unwrap();
    assert_eq!(stored, chunks, "chunks come back whole, in order, once");

    // Stream heads: the latest segment per device and its last sequence number.
    s.write_chunks(
        &[segment(&dev, 9)],
        &[chunk(&dev, 9, 9), chunk(&dev, 9, 10)],
    )
    .await
    .unwrap();
    let heads: Vec<_> = s
        .stream_heads()
        .await
        .unwrap()
        .into_iter()
        .filter(|h| h.segment.key.device == dev)
        .collect();
    assert_eq!(heads.len(), 1);
    assert_eq!(heads[0].segment, segment(&dev, 9));
    assert_eq!((heads[0].last_seq, heads[0].closed), (10, false));
    let open: Vec<_> = s
        .open_segments()
        .await
        .unwrap()
        .into_iter()
        .filter(|g| g.key.device == dev)
        .collect();
    assert_eq!(
        open,
        vec![segment(&dev, 0), segment(&dev, 9)],
        "oldest first"
    );

    // Beats: idempotent, closing segments in the same transaction.
    let beats = vec![
        beat(&dev, 0, 1_000, Verdict::Normal, Some(0.1)),
        beat(&dev, 0, 2_000, Verdict::Abnormal, Some(0.9)),
        beat(&dev, 0, 3_000, Verdict::Unreadable, None),
        beat(&dev, 0, 4_000, Verdict::Abnormal, Some(0.6)),
    ];
    assert_eq!(s.write_beats(&beats[..2], &[], &[]).await.unwrap(), 2);
    assert_eq!(
        s.write_beats(&beats, &[key(&dev, 0)], &[]).await.unwrap(),
        2
    );
    assert_eq!(s.write_beats(&beats, &[], &[]).await.unwrap(), 0);
    assert_eq!(s.last_beat_us(&key(&dev, 0)).await.unwrap(), Some(4_000));
    assert_eq!(s.last_beat_us(&key(&dev, 9)).await.unwrap(), None);
    let open: Vec<_> = s
        .open_segments()
        .await
        .unwrap()
        .into_iter()
        .filter(|g| g.key.device == dev)
        .collect();
    assert_eq!(open, vec![segment(&dev, 9)]);
    assert_eq!(s.beats(&BeatQuery::all(&dev, 100)).await.unwrap(), beats);

    // Queries: verdict, probability, time range, pagination.
    let q = |verdict, min_p, from_us, to_us, limit, offset| BeatQuery {
        device: dev.clone(),
        from_us,
        to_us,
        verdict,
        class: None,
        min_p_abnormal: min_p,
        limit,
        offset,
    };
    let times = |v: Vec<BeatRow>| v.iter().map(|b| b.r_time_us).collect::<Vec<_>>();
    let all = (i64::MIN, i64::MAX);
    assert_eq!(
        times(
            s.beats(&q(Some(Verdict::Abnormal), None, all.0, all.1, 10, 0))
                .await
                .unwrap()
        ),
        [2_000, 4_000]
    );
    assert_eq!(
        times(
            s.beats(&q(None, Some(0.7), all.0, all.1, 10, 0))
                .await
                .unwrap()
        ),
        [2_000]
    );
    assert_eq!(
        times(s.beats(&q(None, None, 2_000, 4_000, 10, 0)).await.unwrap()),
        [2_000, 3_000],
        "from inclusive, to exclusive"
    );
    assert_eq!(
        times(s.beats(&q(None, None, all.0, all.1, 2, 1)).await.unwrap()),
        [2_000, 3_000]
    );
    assert!(
        s.beats(&BeatQuery::all("nobody", 10))
            .await
            .unwrap()
            .is_empty()
    );

    // Retention removes raw chunks by reception time, never beats.
    let removed = s.prune_chunks(5_000_000 + 3).await.unwrap();
    assert!(removed >= 3, "{removed}");
    assert_eq!(s.segment_chunks(&key(&dev, 0)).await.unwrap(), chunks[3..]);
    assert_eq!(s.beats(&BeatQuery::all(&dev, 100)).await.unwrap().len(), 4);
}

/// The review reads: rollup minutes, devices, marks, neighbours, raw strips, imports and uploads.
async fn review_suite(s: AnyStore) {
    s.migrate().await.unwrap();
    let dev = common::unique("rev-");
    let m0 = 29_000_000; // a minute index in 2025
    let t = |min: i64, sec: i64| (m0 + min) * MINUTE_US + sec * 1_000_000;
    let mut beats = vec![
        beat(&dev, 0, t(0, 1), Verdict::Normal, Some(0.1)),
        beat(&dev, 0, t(0, 2), Verdict::Abnormal, Some(0.9)),
        beat(&dev, 0, t(0, 3), Verdict::Unreadable, None),
        beat(&dev, 0, t(2, 0), Verdict::Abnormal, Some(0.6)),
    ];
    beats[1].rr_prev_ms = Some(1500.0);
    let mut chunk0 = chunk(&dev, 0, 0);
    chunk0.t0_us = t(0, 0);
    let imported = s
        .import_recording(&[segment(&dev, 0)], &[chunk0.clone()], &beats, &[])
        .await
        .unwrap();
    assert_eq!(imported, 4);
    // Writing the same beats again changes no rollup.
    s.write_beats(&beats, &[], &[]).await.unwrap();
    let minutes = s.minutes(&dev, m0, m0 + 10).await.unwrap();
    assert_eq!(minutes.len(), 2);
    assert_eq!(minutes[0].minute, m0);
    assert_eq!(
        minutes[0].counts,
        VerdictCounts {
            beats: 3,
            abnormal: 1,
            unreadable: 1
        }
    );
    assert_eq!(minutes[0].rr_n, 2, "the unreadable beat's RR is left out");
    assert!((minutes[0].rr_sum_ms - 2312.5).abs() < 1e-3);
    assert_eq!(minutes[0].rr_max_ms, Some(1500.0));
    assert_eq!(minutes[1].minute, m0 + 2);
    // A batch of stored and new beats (one given twice) adds the new one once.
    let mut extra = beat(&dev, 0, t(0, 30), Verdict::Normal, Some(0.2));
    extra.rr_prev_ms = Some(2000.0);
    let batch = [beats[0].clone(), extra.clone(), extra, beats[3].clone()];
    assert_eq!(s.write_beats(&batch, &[], &[]).await.unwrap(), 1);
    let minutes = s.minutes(&dev, m0, m0 + 10).await.unwrap();
    assert_eq!(minutes[0].counts.beats, 4);
    assert_eq!(minutes[0].rr_n, 3);
    assert!((minutes[0].rr_sum_ms - 4312.5).abs() < 1e-3);
    assert_eq!(minutes[0].rr_max_ms, Some(2000.0));
    assert_eq!(minutes[1].counts.beats, 1);
    assert_eq!(s.last_minute(&dev).await.unwrap(), Some(m0 + 2));
    assert_eq!(s.last_minute("nobody").await.unwrap(), None);
    assert!(
        s.open_segments()
            .await
            .unwrap()
            .iter()
            .all(|g| g.key.device != dev)
    );

    let devices = s.devices(m0 + 1).await.unwrap();
    let d = devices.iter().find(|d| d.device == dev).unwrap();
    assert_eq!(
        d.since,
        VerdictCounts {
            beats: 1,
            abnormal: 1,
            unreadable: 0
        }
    );
    assert_eq!(d.last_minute, Some(m0 + 2));
    assert!((d.last_minute_rr_ms.unwrap() - 812.5).abs() < 1e-3);
    // `last_seen_us` moves only once it lags by the store's resolution (5 s).
    let seen0 = d.last_seen_us;
    let last_seen = |devices: Vec<DeviceRow>| {
        devices
            .iter()
            .find(|d| d.device == dev)
            .map(|d| d.last_seen_us)
    };
    let mut later = chunk(&dev, 0, 1);
    later.received_us = seen0 + 4_000_000;
    s.write_chunks(&[], &[later.clone()]).await.unwrap();
    assert_eq!(last_seen(s.devices(m0).await.unwrap()), Some(seen0));
    later.seq = 2;
    later.received_us = seen0 + 6_000_000;
    s.write_chunks(&[], &[later]).await.unwrap();
    assert_eq!(
        last_seen(s.devices(m0).await.unwrap()),
        Some(seen0 + 6_000_000)
    );

    assert_eq!(s.beat(&dev, t(0, 2)).await.unwrap(), Some(beats[1].clone()));
    assert_eq!(s.beat(&dev, t(0, 4)).await.unwrap(), None);
    let mut q = BeatQuery::all(&dev, 10);
    q.verdict = Some(Verdict::Abnormal);
    let marks = s.beat_marks(&q).await.unwrap();
    assert_eq!(
        marks.iter().map(|m| m.r_time_us).collect::<Vec<_>>(),
        [t(0, 2), t(2, 0)]
    );
    assert_eq!(marks[0].p_abnormal, Some(0.9));
    assert_eq!(
        s.flagged_neighbour(&dev, t(0, 2), true).await.unwrap(),
        Some(t(2, 0))
    );
    assert_eq!(
        s.flagged_neighbour(&dev, t(0, 2), false).await.unwrap(),
        None
    );
    // The links runs are counted from: every flagged beat with its previous RR, by time.
    let mut linked = Vec::new();
    for i in 0..4i64 {
        let mut b = beat(&dev, 0, t(5, 0) + i * 800_000, Verdict::Abnormal, Some(0.8));
        b.rr_prev_ms = (i != 2).then_some(800.0);
        linked.push(b);
    }
    s.write_beats(&linked, &[], &[]).await.unwrap();
    assert_eq!(
        s.flagged_links(&dev, t(5, 0), t(6, 0))
            .await
            .unwrap()
            .iter()
            .map(|l| (l.r_time_us, l.rr_prev_ms))
            .collect::<Vec<_>>(),
        [
            (t(5, 0), Some(800.0)),
            (t(5, 0) + 800_000, Some(800.0)),
            (t(5, 0) + 1_600_000, None),
            (t(5, 0) + 2_400_000, Some(800.0))
        ]
    );
    let strip = s.chunks_between(&dev, t(0, 0), t(0, 5)).await.unwrap();
    assert_eq!(strip, [chunk0]);
    assert!(
        s.chunks_between(&dev, t(5, 0), t(6, 0))
            .await
            .unwrap()
            .is_empty()
    );

    let upload = UploadRow {
        id: common::unique("up"),
        filename: "beats.csv".into(),
        uploaded_by: "alice".into(),
        created_us: 1,
        model: "m".into(),
        model_version: "v".into(),
        beats: 3,
        labelled: true,
        evaluation: Some("{}".into()),
    };
    let ub = |i: i64, v: Verdict| UploadBeatRow {
        row_index: i,
        label: Some(i % 2),
        verdict: v,
        p_abnormal: Some(0.25 * i as f32),
        class: (v == Verdict::Abnormal).then_some(AamiClass::F),
        class_probs: (v == Verdict::Abnormal).then_some([0.1, 0.1, 0.1, 0.6, 0.1]),
        values: vec![i as f32; 187],
    };
    let rows = [
        ub(0, Verdict::Normal),
        ub(1, Verdict::Abnormal),
        ub(2, Verdict::Normal),
    ];
    s.create_upload(&upload, &rows).await.unwrap();
    assert!(
        s.create_upload(&upload, &rows).await.is_err(),
        "ids are unique"
    );
    assert_eq!(s.upload(&upload.id).await.unwrap(), Some(upload.clone()));
    assert!(s.uploads(100).await.unwrap().contains(&upload));
    assert_eq!(
        s.upload_counts(&upload.id).await.unwrap(),
        VerdictCounts {
            beats: 3,
            abnormal: 1,
            unreadable: 0
        }
    );
    assert_eq!(
        s.upload_beats(&upload.id, Some(Verdict::Normal), 10, 1)
            .await
            .unwrap(),
        [rows[2].clone()]
    );
    assert_eq!(
        s.upload_beat(&upload.id, 1).await.unwrap(),
        Some(rows[1].clone())
    );
    assert_eq!(s.upload_beat(&upload.id, 9).await.unwrap(), None);
}

/// A beat of a five-class model: its class, its probabilities, and the verdict it implies.
fn classed(device: &str, t: i64, class: AamiClass) -> BeatRow {
    let mut probs = [0.01; 5];
    probs[class.index()] = 0.96;
    let verdict = if class == AamiClass::N {
        Verdict::Normal
    } else {
        Verdict::Abnormal
    };
    BeatRow {
        class: Some(class),
        class_probs: Some(probs),
        ..beat(device, 0, t, verdict, Some(1.0 - probs[0]))
    }
}

/// Five-class beats: stored and read back whole, filtered by class, counted
/// per class in the rollup, and carried by the flagged-beat links.
async fn class_suite(s: AnyStore) {
    use AamiClass::{F, N, Q, S, V};
    let dev = common::unique("cls-");
    let m0 = 29_100_000;
    let t = |sec: i64| m0 * MINUTE_US + sec * 1_000_000;
    let mut beats: Vec<BeatRow> = [N, V, V, S, N, F, Q]
        .iter()
        .enumerate()
        .map(|(i, c)| classed(&dev, t(i as i64), *c))
        .collect();
    beats.push(beat(&dev, 0, t(8), Verdict::Unreadable, None));
    beats.push(beat(&dev, 0, t(61), Verdict::Abnormal, Some(0.8)));
    s.write_beats(&beats, &[], &[]).await.unwrap();
    assert_eq!(s.beats(&BeatQuery::all(&dev, 100)).await.unwrap(), beats);
    assert_eq!(s.beat(&dev, t(1)).await.unwrap(), Some(beats[1].clone()));
    let of = |class: Option<AamiClass>, verdict: Option<Verdict>| BeatQuery {
        class,
        verdict,
        ..BeatQuery::all(&dev, 100)
    };
    for (class, want) in [
        (N, vec![t(0), t(4)]),
        (V, vec![t(1), t(2)]),
        (S, vec![t(3)]),
        (F, vec![t(5)]),
        (Q, vec![t(6)]),
    ] {
        let marks = s.beat_marks(&of(Some(class), None)).await.unwrap();
        assert_eq!(
            marks.iter().map(|m| m.r_time_us).collect::<Vec<_>>(),
            want,
            "{class:?}"
        );
        assert!(marks.iter().all(|m| m.class == Some(class)));
        let rows = s.beats(&of(Some(class), None)).await.unwrap();
        assert_eq!(rows.len(), want.len());
    }
    assert!(
        s.beats(&of(Some(V), Some(Verdict::Normal)))
            .await
            .unwrap()
            .is_empty()
    );
    let minutes = s.minutes(&dev, m0, m0 + 2).await.unwrap();
    assert_eq!(
        minutes[0].classes,
        ClassCounts {
            counts: [2, 1, 2, 1, 1]
        }
    );
    assert_eq!(minutes[0].counts.beats, 8);
    assert_eq!(
        minutes[1].classes,
        ClassCounts::default(),
        "binary beats have no class"
    );
    assert_eq!(
        s.flagged_links(&dev, t(0), t(62)).await.unwrap(),
        [
            (t(1), Some(V)),
            (t(2), Some(V)),
            (t(3), Some(S)),
            (t(5), Some(F)),
            (t(6), Some(Q)),
            (t(61), None)
        ]
        .map(|(r_time_us, class)| FlaggedLink {
            r_time_us,
            rr_prev_ms: Some(812.5),
            class
        })
    );
    // The schema refuses a class that contradicts the verdict (the class
    // filter reads abnormal classes from the flagged-beat index).
    let mut wrong = classed(&dev, t(30), V);
    wrong.verdict = Verdict::Normal;
    assert!(s.write_beats(&[wrong], &[], &[]).await.is_err());
}

const BEFORE_CLASSES: i64 = 20261202000001;

/// Rows as the schema before the AAMI classes wrote them: a raw chunk (f32 mV),
/// a beat, its minute, an upload.
macro_rules! write_old_rows {
    ($pool:expr, $dev:expr, $t:expr) => {{
        sqlx::query(
            "INSERT INTO chunks (device_id, stream, seq, first_seq, t0_us, fs, received_us, samples)
             VALUES ($1, 7, 0, 0, $2, 360, $2, $3)",
        )
        .bind($dev)
        .bind($t)
        .bind(holterd::store::f32_bytes(&[0.25, -1.5, 3.0]))
        .execute($pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO beats (device_id, r_time_us, stream, first_seq, sample_index, rr_prev_ms,
                                rr_next_ms, quality, searchback, verdict, p_abnormal, model,
                                model_version, beat)
             VALUES ($1, $2, 7, 0, 12, 800, NULL, 'good', FALSE, 'abnormal', 0.75, 'm', 'v1', $3)",
        )
        .bind($dev)
        .bind($t)
        .bind(holterd::store::f32_bytes(&[0.5; 187]))
        .execute($pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO beats (device_id, r_time_us, stream, first_seq, sample_index, rr_prev_ms,
                                rr_next_ms, quality, searchback, verdict, p_abnormal, model,
                                model_version, beat)
             VALUES ($1, $2, 7, 0, 3, NULL, 800, 'good', TRUE, 'normal', 0.25, 'm', 'v1', $3)",
        )
        .bind($dev)
        .bind($t - 1_000_000)
        .bind(holterd::store::f32_bytes(&[0.5; 187]))
        .execute($pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO beat_minutes (device_id, minute, beats, abnormal, unreadable, rr_n,
                                       rr_sum_ms, rr_max_ms)
             VALUES ($1, $2, 2, 1, 0, 1, 800, 800)",
        )
        .bind($dev)
        .bind($t / MINUTE_US)
        .execute($pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO uploads (id, filename, uploaded_by, created_us, model, model_version,
                                  beats, labelled, evaluation)
             VALUES ($1, 'old.csv', 'alice', 1, 'm', 'v1', 1, FALSE, NULL)",
        )
        .bind($dev)
        .execute($pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO upload_beats (upload_id, row_index, label, verdict, p_abnormal, beat)
             VALUES ($1, 0, NULL, 'normal', 0.25, $2)",
        )
        .bind($dev)
        .bind(holterd::store::f32_bytes(&[0.5; 187]))
        .execute($pool)
        .await
        .unwrap();
    }};
}

/// After migrating, the previous schema's rows read as beats without a class,
/// and classed beats join them.
async fn old_rows_read_after_migration(s: AnyStore, dev: &str, t: i64) {
    s.migrate().await.unwrap();
    let chunks = s.segment_chunks(&key(dev, 0)).await.unwrap();
    assert_eq!(
        (chunks[0].samples.as_slice(), chunks[0].scale),
        (&[0.25, -1.5, 3.0][..], None)
    );
    // Compaction packs chunks of the old layout too.
    assert_eq!(compact_all(&s, t + 1).await.chunks, 1);
    assert_eq!(s.segment_chunks(&key(dev, 0)).await.unwrap(), chunks);
    // Compaction packs beats of the old schema too (the abnormal one stays a row).
    let mut rows = s.beats(&BeatQuery::all(dev, 10)).await.unwrap();
    assert_eq!(compact_beats_all(&s, t + 1).await.beats, 1);
    rows[0].values = holterd::store::beat_block::packed_vector(&rows[0].values);
    assert_eq!(s.beats(&BeatQuery::all(dev, 10)).await.unwrap(), rows);
    let old = s.beat(dev, t).await.unwrap().unwrap();
    assert_eq!((old.class, old.class_probs), (None, None));
    assert_eq!(
        (old.verdict, old.p_abnormal),
        (Verdict::Abnormal, Some(0.75))
    );
    let m = s
        .minutes(dev, t / MINUTE_US, t / MINUTE_US + 1)
        .await
        .unwrap();
    assert_eq!(
        (m[0].counts.beats, m[0].classes),
        (2, ClassCounts::default())
    );
    let ub = s.upload_beat(dev, 0).await.unwrap().unwrap();
    assert_eq!((ub.class, ub.class_probs), (None, None));
    assert_eq!(s.flagged_links(dev, t, t + 1).await.unwrap()[0].class, None);
    s.write_beats(&[classed(dev, t + 1_000_000, AamiClass::V)], &[], &[])
        .await
        .unwrap();
    let m = s
        .minutes(dev, t / MINUTE_US, t / MINUTE_US + 1)
        .await
        .unwrap();
    assert_eq!((m[0].counts.beats, m[0].counts.abnormal), (3, 2));
    assert_eq!(m[0].classes.get(AamiClass::V), 1);
}

fn migrations(store: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(store)
}

#[tokio::test]
async fn sqlite_rows_of_the_previous_schema_read_after_migration() {
    let dir = common::temp_dir("class-migration");
    let inner = holterd::store::SqliteStore::open(&dir.join("old.sqlite"))
        .await
        .unwrap();
    sqlx::migrate::Migrator::new(migrations("sqlite"))
        .await
        .unwrap()
        .run_to(BEFORE_CLASSES, inner.pool())
        .await
        .unwrap();
    let (dev, t) = (common::unique("old-"), 29_200_000 * MINUTE_US + 5_000_000);
    write_old_rows!(inner.pool(), &dev, t);
    old_rows_read_after_migration(AnyStore::Sqlite(inner), &dev, t).await;
}

#[tokio::test]
async fn postgres_rows_of_the_previous_schema_read_after_migration() {
    let Some(inner) = common::postgres_unmigrated(2).await else {
        eprintln!("skipped: set HOLTER_TEST_POSTGRES_URL");
        return;
    };
    sqlx::migrate::Migrator::new(migrations("postgres"))
        .await
        .unwrap()
        .run_to(BEFORE_CLASSES, inner.pool())
        .await
        .unwrap();
    let (dev, t) = (common::unique("old-"), 29_200_000 * MINUTE_US + 5_000_000);
    write_old_rows!(inner.pool(), &dev, t);
    old_rows_read_after_migration(AnyStore::Postgres(inner), &dev, t).await;
}

fn episode(
    device: &str,
    kind: EpisodeKind,
    start_us: i64,
    end_us: i64,
    ongoing: bool,
) -> EpisodeRow {
    EpisodeRow {
        device: device.into(),
        episode: Episode {
            kind,
            start_us,
            end_us,
            beats: ((end_us - start_us) / 500_000) as u32 + 1,
            min_bpm: 110.0,
            max_bpm: 160.5,
        },
        ongoing,
        analyser: "rhythm/1 m".into(),
    }
}

/// Episodes are stored with the beats, updated in place, and read by range and kind.
async fn episode_suite(s: AnyStore) {
    let dev = common::unique("ep-");
    let (vt, af) = (
        EpisodeKind::VentricularTachycardia,
        EpisodeKind::AtrialFibrillation,
    );
    s.write_chunks(&[segment(&dev, 0)], &[]).await.unwrap();
    let b = beat(&dev, 0, 10_000_000, Verdict::Normal, Some(0.1));
    let opened = episode(&dev, af, 5_000_000, 20_000_000, true);
    s.write_beats(
        std::slice::from_ref(&b),
        &[],
        &[
            opened.clone(),
            episode(&dev, vt, 8_000_000, 9_000_000, false),
        ],
    )
    .await
    .unwrap();
    let all = |from_us, to_us, kind| EpisodeQuery {
        device: dev.clone(),
        from_us,
        to_us,
        kind,
        limit: 100,
    };
    let got = s.episodes(&all(0, i64::MAX, None)).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0], opened, "read back as written, oldest onset first");
    // The same episode again, closed and longer: one row, updated.
    let closed = episode(&dev, af, 5_000_000, 60_000_000, false);
    s.write_beats(&[b], &[], std::slice::from_ref(&closed))
        .await
        .unwrap();
    let got = s.episodes(&all(0, i64::MAX, Some(af))).await.unwrap();
    assert_eq!(got, vec![closed]);
    // Overlap with the range decides, not the onset alone.
    assert_eq!(
        s.episodes(&all(50_000_000, 70_000_000, None))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        s.episodes(&all(9_500_000, 9_600_000, Some(vt)))
            .await
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        s.episodes(&all(0, 5_000_000, None)).await.unwrap().len(),
        0,
        "to is exclusive"
    );
    let other = s
        .episodes(&EpisodeQuery {
            device: "no-such".into(),
            ..all(0, i64::MAX, None)
        })
        .await
        .unwrap();
    assert!(other.is_empty());
    // A segment's stored beats, for the rhythm analyser's rebuild after a restart.
    let marks = s.segment_marks(&key(&dev, 0), i64::MAX).await.unwrap();
    assert_eq!(marks.len(), 1);
    assert!(
        s.segment_marks(&key(&dev, 0), 10_000_000)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn sqlite_store() {
    let s = common::sqlite_store().await;
    suite(s.clone()).await;
    review_suite(s.clone()).await;
    class_suite(s.clone()).await;
    episode_suite(s).await;
}

#[tokio::test]
async fn postgres_store() {
    let Some(s) = common::postgres_store(2).await else {
        eprintln!("skipped: set HOLTER_TEST_POSTGRES_URL");
        return;
    };
    suite(s.clone()).await;
    review_suite(s.clone()).await;
    class_suite(s.clone()).await;
    episode_suite(s).await;
}

#[tokio::test]
async fn corrupt_rows_are_errors_not_panics() {
    let s = common::sqlite_store().await;
    let AnyStore::Sqlite(inner) = &s else {
        unreachable!()
    };
    let dev = common::unique("dev-");
    s.write_beats(&[beat(&dev, 0, 1, Verdict::Normal, Some(0.2))], &[], &[])
        .await
        .unwrap();
    sqlx::query("UPDATE beats SET beat = x'010203' WHERE device_id = ?1")
        .bind(&dev)
        .execute(inner.pool())
        .await
        .unwrap();
    let e = s.beats(&BeatQuery::all(&dev, 10)).await.unwrap_err();
    assert!(e.to_string().contains("corrupt"), "{e}");
}

/// Compacts everything received before `before_us`, a device at a time.
async fn compact_all(s: &AnyStore, before_us: i64) -> Compaction {
    s.compact_signal_all(before_us, 1).await.unwrap()
}

/// Raw signal at rest: compaction packs old chunks into blocks that every read
/// gives back bit for bit; redelivery, re-packing and retention keep each chunk once.
async fn signal_suite(s: AnyStore) {
    let (dev, live) = (common::unique("sig-"), common::unique("sig-live-"));
    let now = holterd::clock::now_us();
    let chunks: Vec<ChunkRow> = (0..20)
        .map(|seq| {
            let mut c = chunk(&dev, 0, seq);
            c.t0_us = now - 600_000_000 + seq as i64 * 1_000_000;
            c.received_us = now - 300_000_000 + seq as i64;
            c
        })
        .collect();
    let mut recent = chunk(&live, 0, 0);
    recent.received_us = now;
    s.write_chunks(&[segment(&dev, 0), segment(&live, 0)], &chunks)
        .await
        .unwrap();
    s.write_chunks(&[], &[recent.clone()]).await.unwrap();
    let strip = |from: usize, to: usize| {
        let s = s.clone();
        let (dev, from, to) = (dev.clone(), chunks[from].t0_us, chunks[to].t0_us);
        async move { s.chunks_between(&dev, from, to).await.unwrap() }
    };
    let strips_before = [strip(3, 12).await, strip(0, 19).await, strip(15, 19).await];
    let heads_before = s.stream_heads().await.unwrap();

    // The first ten chunks are older than the cutoff; the live device's is not.
    let packed = compact_all(&s, now - 300_000_000 + 10).await;
    assert_eq!((packed.chunks, packed.blocks), (10, 1));
    assert!(packed.bytes_out < packed.bytes_in, "{packed:?}");
    assert_eq!(s.segment_chunks(&key(&dev, 0)).await.unwrap(), chunks);
    assert_eq!(s.segment_chunks(&key(&live, 0)).await.unwrap(), [recent]);
    assert_eq!(
        [strip(3, 12).await, strip(0, 19).await, strip(15, 19).await],
        strips_before
    );
    assert_eq!(s.stream_heads().await.unwrap(), heads_before);

    // A chunk redelivered after it was packed reads once, and still once after it is packed again.
    s.write_chunks(&[], &chunks[2..4]).await.unwrap();
    assert_eq!(s.segment_chunks(&key(&dev, 0)).await.unwrap(), chunks);
    let packed = compact_all(&s, now + 1).await;
    assert_eq!(
        (packed.chunks, packed.blocks),
        (13, 2),
        "ten, two again, the live one"
    );
    assert_eq!(s.segment_chunks(&key(&dev, 0)).await.unwrap(), chunks);
    assert_eq!(strip(0, 19).await, strips_before[1]);
    assert_eq!(compact_all(&s, now + 1).await, Compaction::default());

    // Retention goes by a block's latest reception.
    s.prune_chunks(now - 300_000_000 + 5).await.unwrap();
    assert_eq!(s.segment_chunks(&key(&dev, 0)).await.unwrap(), chunks);
    let removed = s.prune_chunks(now + 1).await.unwrap();
    assert_eq!(removed, 23, "twenty, two of them twice, the live one");
    assert!(s.segment_chunks(&key(&dev, 0)).await.unwrap().is_empty());
    assert!(s.segment_chunks(&key(&live, 0)).await.unwrap().is_empty());
}

/// Compaction while live writers commit beside it: every pass succeeds and
/// packs every old chunk once (on SQLite a deferred pass that read first
/// could not write after a live commit, and under load every pass failed).
async fn compaction_beside_live_writes(s: AnyStore) {
    let (old, live) = (common::unique("old-"), common::unique("live-"));
    let now = holterd::clock::now_us();
    let devices: Vec<String> = (0..4).map(|i| format!("{old}{i}")).collect();
    for dev in &devices {
        let chunks: Vec<ChunkRow> = (0..200)
            .map(|seq| {
                let mut c = chunk(dev, 0, seq);
                c.received_us = now - 600_000_000 + seq as i64;
                c
            })
            .collect();
        s.write_chunks(&[segment(dev, 0)], &chunks).await.unwrap();
    }
    s.write_chunks(&[segment(&live, 0)], &[]).await.unwrap();
    let (stop_tx, mut stop) = tokio::sync::watch::channel(false);
    let writer = {
        let (s, live) = (s.clone(), live.clone());
        tokio::spawn(async move {
            let mut seq = 0;
            while !*stop.borrow_and_update() {
                let mut c = chunk(&live, 0, seq);
                c.received_us = holterd::clock::now_us();
                s.write_chunks(&[], &[c]).await.unwrap();
                seq += 1;
            }
            seq
        })
    };
    // A device a transaction, with live commits between its read and its write.
    let packed = s
        .compact_signal_all(now - 300_000_000, 1)
        .await
        .unwrap()
        .chunks;
    stop_tx.send(true).unwrap();
    let written = writer.await.unwrap();
    assert!(written > 0);
    assert_eq!(packed, 200 * devices.len() as u64);
    for dev in &devices {
        assert_eq!(s.segment_chunks(&key(dev, 0)).await.unwrap().len(), 200);
    }
    assert_eq!(
        s.segment_chunks(&key(&live, 0)).await.unwrap().len(),
        written as usize
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_compaction_beside_live_writes() {
    compaction_beside_live_writes(common::sqlite_store().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_compaction_beside_live_writes() {
    let Some(s) = common::postgres_store(4).await else {
        eprintln!("skipped: set HOLTER_TEST_POSTGRES_URL");
        return;
    };
    compaction_beside_live_writes(s).await;
}

#[tokio::test]
async fn sqlite_signal_at_rest() {
    signal_suite(common::sqlite_store().await).await;
}

#[tokio::test]
async fn postgres_signal_at_rest() {
    let Some(s) = common::postgres_store(2).await else {
        eprintln!("skipped: set HOLTER_TEST_POSTGRES_URL");
        return;
    };
    signal_suite(s.clone()).await;
    // Blocks of today sit in today's partition, which retention drops whole.
    let AnyStore::Postgres(pg) = &s else {
        unreachable!()
    };
    let partitions = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'signal_blocks'::regclass ORDER BY 1",
        )
        .fetch_all(pg.pool())
        .await
        .unwrap()
    };
    let dev = common::unique("part-");
    let now = holterd::clock::now_us();
    let mut c = chunk(&dev, 0, 0);
    c.received_us = now;
    s.write_chunks(&[segment(&dev, 0)], &[c.clone()])
        .await
        .unwrap();
    assert_eq!(compact_all(&s, now + 1).await.blocks, 1);
    let before = partitions().await;
    assert_eq!(before.len(), 3, "default, today, tomorrow: {before:?}");
    let in_default: i64 = sqlx::query_scalar("SELECT count(*) FROM signal_blocks_default")
        .fetch_one(pg.pool())
        .await
        .unwrap();
    assert_eq!(in_default, 0);
    let tomorrow = (now.div_euclid(86_400_000_000) + 1) * 86_400_000_000;
    assert_eq!(s.prune_chunks(tomorrow).await.unwrap(), 1);
    // Sorted by name: today, tomorrow, default; today's is gone.
    assert_eq!(partitions().await, before[1..]);
    assert!(s.segment_chunks(&key(&dev, 0)).await.unwrap().is_empty());
}

/// Packs every beat row before `before_us`, a device at a time.
async fn compact_beats_all(s: &AnyStore, before_us: i64) -> BeatCompaction {
    s.compact_beats_all(before_us, 1).await.unwrap()
}

/// Beats with their vectors as a block keeps them (packing is idempotent).
fn at_rest(beats: Vec<BeatRow>) -> Vec<BeatRow> {
    beats
        .into_iter()
        .map(|b| BeatRow {
            values: holterd::store::beat_block::packed_vector(&b.values),
            ..b
        })
        .collect()
}

/// Every beat read a page or the daemon makes, for `dev` (vectors as at rest).
async fn beat_reads(s: &AnyStore, dev: &str, times: &[i64]) -> Vec<String> {
    let all = s.beats(&BeatQuery::all(dev, u32::MAX)).await.unwrap();
    let mut out = vec![format!("{:?}", at_rest(all))];
    let query = |verdict, class, min_p, limit, offset| BeatQuery {
        verdict,
        class,
        min_p_abnormal: min_p,
        limit,
        offset,
        from_us: times[3],
        to_us: times[times.len() - 3],
        ..BeatQuery::all(dev, 0)
    };
    for q in [
        query(None, None, None, 1000, 0),
        query(None, None, None, 4, 0),
        query(None, None, None, 5, 7),
        query(None, None, None, 100, 20),
        query(Some(Verdict::Normal), None, None, 6, 3),
        query(Some(Verdict::Abnormal), None, None, 100, 1),
        query(Some(Verdict::Unreadable), None, None, 100, 0),
        query(None, Some(AamiClass::N), None, 9, 2),
        query(None, Some(AamiClass::V), None, 100, 0),
        query(None, None, Some(0.5), 100, 0),
        query(None, None, Some(0.001), 3, 4),
    ] {
        out.push(format!("{q:?} {:?}", s.beat_marks(&q).await.unwrap()));
        out.push(format!("{:?}", at_rest(s.beats(&q).await.unwrap())));
    }
    for &t in times {
        let one = s.beat(dev, t).await.unwrap();
        out.push(format!("{:?}", at_rest(one.into_iter().collect())));
        out.push(format!("{:?}", s.beat(dev, t + 1).await.unwrap()));
    }
    let k = key(dev, 0);
    out.push(format!(
        "{:?}",
        s.segment_marks(&k, times[17]).await.unwrap()
    ));
    out.push(format!(
        "{:?}",
        s.segment_marks(&k, i64::MAX).await.unwrap()
    ));
    out.push(format!("{:?}", s.last_beat_us(&k).await.unwrap()));
    out.push(format!(
        "{:?}",
        s.flagged_links(dev, 0, i64::MAX).await.unwrap()
    ));
    let minute = times[0] / MINUTE_US;
    out.push(format!(
        "{:?}",
        s.minutes(dev, minute - 1, minute + 20).await.unwrap()
    ));
    out
}

/// Beats at rest: rows keep the vector at 10 bits; compaction packs normal
/// and unreadable beats into blocks that every read gives back; abnormal
/// beats stay rows; a beat written again after it was packed is not stored twice.
async fn beat_rest_suite(s: AnyStore) {
    let dev = common::unique("rest-");
    let now = holterd::clock::now_us();
    let times: Vec<i64> = (0..40).map(|i| now - 900_000_000 + i * 810_000).collect();
    let beats: Vec<BeatRow> = times
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let mut b = match i % 7 {
                3 => classed(&dev, t, AamiClass::V),
                5 => beat(&dev, 0, t, Verdict::Unreadable, None),
                6 => beat(&dev, 0, t, Verdict::Normal, Some(0.125)),
                _ => classed(&dev, t, AamiClass::N),
            };
            b.sample = (t - times[0]) as u64 * 360 / 1_000_000;
            b.values = (0..187)
                .map(|k| ((k * (i + 3)) % 97) as f32 / 96.0)
                .collect();
            b
        })
        .collect();
    s.write_chunks(&[segment(&dev, 0)], &[]).await.unwrap();
    // Stored in three transactions, as the writer does.
    for part in beats.chunks(15) {
        s.write_beats(part, &[], &[]).await.unwrap();
    }
    // Rows and blocks alike keep the vector at 10 bits.
    let expected = at_rest(beats.clone());
    let before = beat_reads(&s, &dev, &times).await;

    // Beats older than the cutoff pack; abnormal ones and the last ten stay rows.
    let cutoff = times[30];
    let packed = compact_beats_all(&s, cutoff).await;
    let abnormal_old = beats[..30]
        .iter()
        .filter(|b| b.verdict == Verdict::Abnormal)
        .count();
    assert_eq!(packed.beats as usize, 30 - abnormal_old);
    assert!(packed.blocks >= 1 && packed.bytes_out > 0, "{packed:?}");
    assert_eq!(
        s.beats(&BeatQuery::all(&dev, u32::MAX)).await.unwrap(),
        expected
    );
    // Every read is unchanged but for the packed vectors.
    let after = beat_reads(&s, &dev, &times).await;
    assert_eq!(after, before);

    // Written again (a retried transaction, a re-analysis): stored once.
    assert_eq!(s.write_beats(&beats, &[], &[]).await.unwrap(), 0);
    let again = beat_reads(&s, &dev, &times).await;
    assert_eq!(again, after);
    // Nothing left to pack before the cutoff; then the rest packs too.
    assert_eq!(compact_beats_all(&s, cutoff).await.beats, 0);
    compact_beats_all(&s, now).await;
    assert_eq!(
        s.beats(&BeatQuery::all(&dev, u32::MAX)).await.unwrap(),
        expected
    );
    assert_eq!(beat_reads(&s, &dev, &times).await, before);
}

#[tokio::test]
async fn sqlite_beats_at_rest() {
    beat_rest_suite(common::sqlite_store().await).await;
}

#[tokio::test]
async fn postgres_beats_at_rest() {
    let Some(s) = common::postgres_store(2).await else {
        eprintln!("skipped: set HOLTER_TEST_POSTGRES_URL");
        return;
    };
    beat_rest_suite(s).await;
}
