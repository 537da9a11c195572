//! `holterd bench pages`: time the review pages at the server for a device
//! with a million stored beats (issue target: under 200 ms each).
//!
//! Seeds a store (a fresh SQLite file, or a fresh Postgres schema) with one
//! device's beats at a realistic rhythm (about 70/min with jitter, 8 %
//! abnormal in runs and singles, 2 % unreadable) and the last hour of raw
//! signal, packs the beats as the daemon's compactor does, then sends each page's request straight into the router (no
//! network) and reports the median, 95th percentile and maximum time to the
//! last byte of the response.

use crate::config::{Config, TokenEntry};
use crate::http::{HttpState, Web, auth, router};
use crate::metrics::Metrics;
use crate::model::SplitMix64;
use crate::store::{
    AnyStore, BeatRow, ChunkRow, PgStore, SegmentKey, SegmentRow, SqliteStore, Store, Verdict,
};
use anyhow::{Context, Result};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use clap::Args;
use std::sync::Arc;
use std::time::Instant;
use tower::ServiceExt;

#[derive(Debug, Args)]
pub struct BenchPagesArgs {
    /// Beats to store for the device.
    #[arg(long, default_value_t = 1_000_000)]
    beats: usize,
    /// Postgres URL; a schema of its own is created and dropped. Empty: a temporary SQLite file.
    #[arg(long, default_value = "")]
    store_url: String,
    /// Timed requests per page (after one warm-up).
    #[arg(long, default_value_t = 20)]
    repeat: usize,
}

const DEVICE: &str = "bench-1";
const FS: f64 = 360.0;

/// `holterd bench pages`.
pub fn bench_pages(a: BenchPagesArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(a))
}

/// A store of its own for a benchmark: a fresh SQLite file (`url` empty), or
/// a fresh schema of the Postgres at `url`; [`ScratchStore::remove`] drops it.
pub(super) struct ScratchStore {
    pub store: AnyStore,
    pg: Option<(PgStore, String)>,
    dir: Option<std::path::PathBuf>,
}

impl ScratchStore {
    pub async fn open(url: &str) -> Result<ScratchStore> {
        if url.is_empty() {
            let dir = std::env::temp_dir().join(format!("holterd-bench-{}", auth::random_hex(6)));
            std::fs::create_dir_all(&dir)?;
            let store = AnyStore::Sqlite(SqliteStore::open(&dir.join("bench.sqlite")).await?);
            return Ok(ScratchStore {
                store,
                pg: None,
                dir: Some(dir),
            });
        }
        let schema = format!("holterd_bench_{}", auth::random_hex(6));
        let admin = PgStore::connect(url, 1).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(admin.pool())
            .await?;
        let sep = if url.contains('?') { '&' } else { '?' };
        let scoped = format!("{url}{sep}options=-c%20search_path%3D{schema}");
        Ok(ScratchStore {
            store: AnyStore::Postgres(PgStore::connect(&scoped, 4).await?),
            pg: Some((admin, schema)),
            dir: None,
        })
    }

    /// The SQLite file, when it is one.
    pub fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        self.dir.as_ref().map(|d| d.join("bench.sqlite"))
    }

    pub async fn remove(self) -> Result<()> {
        if let Some((admin, schema)) = self.pg {
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(admin.pool())
                .await?;
        }
        if let Some(dir) = self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        Ok(())
    }
}

async fn run(a: BenchPagesArgs) -> Result<()> {
    let scratch = ScratchStore::open(&a.store_url)
        .await
        .context("opening the store")?;
    let outcome = bench(&scratch.store, &a).await;
    scratch.remove().await?;
    outcome
}

async fn bench(store: &AnyStore, a: &BenchPagesArgs) -> Result<()> {
    store.migrate().await?;
    let started = Instant::now();
    let (t_first, t_last) = seed(store, a.beats).await?;
    eprintln!(
        "seeded {} beats ({:.1} days) into {} in {:.0} s",
        a.beats,
        (t_last - t_first) as f64 / 86_400e6,
        store.kind(),
        started.elapsed().as_secs_f64()
    );
    let (token, sha256) = auth::new_token();
    let mut config = Config::default();
    config.http.tokens.push(TokenEntry {
        name: "bench".into(),
        role: "viewer".into(),
        sha256,
    });
    let app = router(
        HttpState {
            store: store.clone(),
            metrics: Arc::new(Metrics::new()),
            web: Arc::new(Web::from_config(&config)?),
        },
        false,
    );
    let flagged = store
        .beat_marks(&crate::store::BeatQuery {
            from_us: t_last - 3_600_000_000,
            verdict: Some(Verdict::Abnormal),
            ..crate::store::BeatQuery::all(DEVICE, 1)
        })
        .await?;
    let beat_t = flagged.first().map_or(t_last, |b| b.r_time_us);
    let mid = t_first + (t_last - t_first) / 2;
    let whole = format!("from={t_first}&to={}", t_last + 1);
    let pages = [
        ("overview", "/".to_string()),
        ("device, last 24 h, flagged", format!("/devices/{DEVICE}")),
        (
            "device, last 24 h, all beats",
            format!("/devices/{DEVICE}?verdict=all"),
        ),
        (
            "device, flagged, page deep in history",
            format!("/devices/{DEVICE}?{whole}&after={mid}"),
        ),
        (
            "device, whole recording, p >= 0.9",
            format!("/devices/{DEVICE}?{whole}&min_p=0.9"),
        ),
        (
            "beat page (strip and neighbours)",
            format!("/devices/{DEVICE}/beats/{beat_t}"),
        ),
        (
            "Holter summary, last 24 h",
            format!("/devices/{DEVICE}/summary"),
        ),
        (
            "Holter summary, whole recording",
            format!("/devices/{DEVICE}/summary?{whole}"),
        ),
        (
            "summary CSV, whole recording",
            format!("/devices/{DEVICE}/summary.csv?{whole}"),
        ),
        (
            "API beats, 1000 per page",
            format!("/api/v1/devices/{DEVICE}/beats?verdict=all&limit=1000&after={mid}&{whole}"),
        ),
        (
            "API summary, whole recording",
            format!("/api/v1/devices/{DEVICE}/summary?{whole}"),
        ),
    ];
    println!("| page | median ms | p95 ms | max ms |");
    println!("|---|---|---|---|");
    for (name, uri) in pages {
        let mut times = Vec::with_capacity(a.repeat);
        for i in 0..=a.repeat {
            let req = Request::get(&uri)
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())?;
            let t = Instant::now();
            let r = app.clone().oneshot(req).await?;
            let status = r.status();
            let body = axum::body::to_bytes(r.into_body(), usize::MAX).await?;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            anyhow::ensure!(
                status == StatusCode::OK,
                "{uri}: {status}: {}",
                String::from_utf8_lossy(&body)
            );
            if i > 0 {
                times.push(ms);
            }
        }
        times.sort_by(f64::total_cmp);
        let q = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} |",
            q(0.5),
            q(0.95),
            times[times.len() - 1]
        );
    }
    Ok(())
}

/// Stores `n` beats ending about now, and the last hour of raw signal; returns the first and last beat time.
async fn seed(store: &AnyStore, n: usize) -> Result<(i64, i64)> {
    let mut rng = SplitMix64::new(7);
    let mean_rr_us = 857_000.0; // 70 per minute
    let t_last_target = crate::clock::now_us();
    let t0 = t_last_target - (n as f64 * mean_rr_us) as i64;
    let key = SegmentKey {
        device: DEVICE.into(),
        stream: 1,
        first_seq: 0,
    };
    let segment = SegmentRow {
        key: key.clone(),
        t0_us: t0,
        fs: FS,
        lead: "MLII".into(),
        after_gap: false,
    };
    let template: Vec<f32> = (0..crate::dsp::BEAT_LEN)
        .map(|i| (-((i as f32 - 93.0) / 6.0).powi(2)).exp())
        .collect();
    let mut t = t0;
    let mut run_left = 0u32;
    let mut batch = Vec::with_capacity(10_000);
    let mut written = 0usize;
    let mut prev_rr: Option<f32> = None;
    while written < n {
        let u = rng.next_f32() as f64;
        let abnormal = if run_left > 0 {
            run_left -= 1;
            true
        } else if u < 0.06 {
            true
        } else if u < 0.065 {
            run_left = 1 + ((rng.next_f32() as f64) * 4.0) as u32;
            true
        } else {
            false
        };
        let unreadable = !abnormal && (rng.next_f32() as f64) < 0.02;
        let rr_us =
            mean_rr_us * (0.85 + 0.3 * (rng.next_f32() as f64)) * if abnormal { 0.75 } else { 1.0 };
        t += rr_us as i64;
        let p = if abnormal {
            0.5 + 0.5 * (rng.next_f32() as f64)
        } else {
            0.5 * (rng.next_f32() as f64)
        } as f32;
        let rr_ms = (rr_us / 1000.0) as f32;
        batch.push(BeatRow {
            segment: key.clone(),
            r_time_us: t,
            sample: ((t - t0) as f64 / 1e6 * FS) as u64,
            rr_prev_ms: prev_rr.map(|_| rr_ms),
            rr_next_ms: None,
            quality: if unreadable {
                crate::dsp::Quality::Noisy
            } else {
                crate::dsp::Quality::Good
            },
            searchback: false,
            verdict: if unreadable {
                Verdict::Unreadable
            } else if abnormal {
                Verdict::Abnormal
            } else {
                Verdict::Normal
            },
            p_abnormal: (!unreadable).then_some(p),
            class: None,
            class_probs: None,
            model: "cnn-lstm-inter".into(),
            model_version: "bench".into(),
            values: template.clone(),
        });
        prev_rr = Some(rr_ms);
        written += 1;
        if batch.len() == 10_000 || written == n {
            store.write_beats(&batch, &[], &[]).await?;
            batch.clear();
        }
    }
    // The last hour of raw signal (10 s chunks), so beat pages draw their strip.
    let from = t - 3_600_000_000;
    let per = (FS * 10.0) as usize;
    let chunks: Vec<ChunkRow> = (0..360)
        .map(|i| {
            let c0 = from + i as i64 * 10_000_000;
            ChunkRow {
                segment: key.clone(),
                seq: ((c0 - t0) / 10_000_000) as u64,
                t0_us: c0,
                fs: FS,
                received_us: c0,
                samples: (0..per)
                    .map(|k| ((c0 as f64 / 1e6 + k as f64 / FS) * 7.3).sin() as f32 * 0.1)
                    .collect(),
                scale: None,
            }
        })
        .collect();
    store.write_chunks(&[segment], &chunks).await?;
    // Beats at rest as the daemon's compactor leaves them: all but the last
    // two minutes packed, abnormal ones kept as rows.
    store
        .compact_beats_all(t_last_target - 120_000_000, 1)
        .await?;
    // What autovacuum does after a bulk load: fresh statistics and, on Postgres, a
    // visibility map that lets the covering flagged-beat index answer alone.
    match store {
        AnyStore::Postgres(pg) => {
            sqlx::query("VACUUM ANALYZE beats")
                .execute(pg.pool())
                .await?;
            sqlx::query("VACUUM ANALYZE beat_minutes")
                .execute(pg.pool())
                .await?;
            sqlx::query("VACUUM ANALYZE beat_blocks")
                .execute(pg.pool())
                .await?;
        }
        AnyStore::Sqlite(lite) => {
            sqlx::query("ANALYZE").execute(lite.pool()).await?;
        }
    }
    Ok((t0 + mean_rr_us as i64, t))
}
