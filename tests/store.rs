//! One test suite for both stores: SQLite always, Postgres when
//! `HOLTER_TEST_POSTGRES_URL` is set (each run in a schema of its own).

mod common;

use holterd::clock::MINUTE_US;
use holterd::dsp::Quality;
use holterd::store::{
    AnyStore, BeatQuery, BeatRow, ChunkRow, SegmentKey, SegmentRow, Store, UploadBeatRow,
    UploadRow, Verdict, VerdictCounts,
};

fn key(device: &str, first_seq: u64) -> SegmentKey {
    common::segment_key(device, 7, first_seq)
}

fn segment(device: &str, first_seq: u64) -> SegmentRow {
    common::segment_row(key(device, first_seq), 1_000_000 * first_seq as i64, 360.0)
}

fn chunk(device: &str, first_seq: u64, seq: u64) -> ChunkRow {
    ChunkRow {
        segment: key(device, first_seq),
        seq,
        t0_us: 1_000_000 * seq as i64,
        fs: 360.0,
        received_us: 5_000_000 + seq as i64,
        samples: (0..360)
            .map(|i| (i as f32 * 0.01 + seq as f32).sin())
            .collect(),
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
        values: (0..187).map(|i| i as f32 / 187.0).collect(),
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
    assert_eq!(s.write_beats(&beats[..2], &[]).await.unwrap(), 2);
    assert_eq!(s.write_beats(&beats, &[key(&dev, 0)]).await.unwrap(), 2);
    assert_eq!(s.write_beats(&beats, &[]).await.unwrap(), 0);
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
        .import_recording(&[segment(&dev, 0)], &[chunk0.clone()], &beats)
        .await
        .unwrap();
    assert_eq!(imported, 4);
    // Writing the same beats again changes no rollup.
    s.write_beats(&beats, &[]).await.unwrap();
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
    s.write_beats(&linked, &[]).await.unwrap();
    assert_eq!(
        s.flagged_links(&dev, t(5, 0), t(6, 0)).await.unwrap(),
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

#[tokio::test]
async fn sqlite_store() {
    let s = common::sqlite_store().await;
    suite(s.clone()).await;
    review_suite(s).await;
}

#[tokio::test]
async fn postgres_store() {
    let Some(s) = common::postgres_store(2).await else {
        eprintln!("skipped: set HOLTER_TEST_POSTGRES_URL");
        return;
    };
    suite(s.clone()).await;
    review_suite(s).await;
}

#[tokio::test]
async fn corrupt_rows_are_errors_not_panics() {
    let s = common::sqlite_store().await;
    let AnyStore::Sqlite(inner) = &s else {
        unreachable!()
    };
    let dev = common::unique("dev-");
    s.write_beats(&[beat(&dev, 0, 1, Verdict::Normal, Some(0.2))], &[])
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
