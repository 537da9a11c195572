//! `holterd serve`: wires the MQTT source, the pipeline, the store, the
//! events sink and the HTTP server together, and drains them on shutdown. [`run`] takes already-bound
//! listeners and a shutdown future, so tests run whole daemons on free ports.

use crate::config::Config;
use crate::http::{HttpState, Web, metrics_router, router};
use crate::metrics::Metrics;
use crate::model::classifier::Classifier;
use crate::pipeline::{analysis, batcher, inference, ingest, writer};
use crate::sink::mqtt_events::MqttEventsSink;
use crate::source::mqtt::MqttSource;
use crate::store::Store;
use anyhow::{Context, Result};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// Bound sockets the daemon serves HTTP on.
pub struct Listeners {
    pub http: TcpListener,
    /// For `/metrics` alone; `None` serves it on `http`.
    pub metrics: Option<TcpListener>,
}

/// Runs the daemon until `shutdown` completes, then stops taking messages and
/// waits (at most `shutdown.drain_timeout_s`) for everything taken to be stored.
pub async fn run<S: Store>(
    config: Config,
    store: S,
    listeners: Listeners,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    store
        .migrate()
        .await
        .context("applying database migrations")?;
    metrics.store_up.set(1);
    let models = config.pipeline.models.clone();
    let device_name = config.pipeline.device.clone();
    let classifier = tokio::task::spawn_blocking(move || {
        let device = crate::model::device(&device_name)?;
        Classifier::load(&models, &device)
    })
    .await?
    .context("loading pipeline.models")?;
    tracing::info!(
        model = classifier.name(),
        version = classifier.version(),
        "model loaded"
    );
    let classifier = Arc::new(classifier);

    let broker = if config.mqtt.broker.is_empty() {
        let listen = config.embedded_broker.listen;
        let max = config.mqtt.max_payload_bytes;
        let buffer = config.embedded_broker.buffer_mib as usize * (1 << 20);
        let skips = metrics.embedded_broker_skips.clone();
        tokio::task::spawn_blocking(move || {
            crate::source::broker::start(listen, max, buffer, skips)
        })
        .await?
        .map_err(anyhow::Error::msg)?;
        tracing::info!(%listen, "embedded MQTT broker started");
        listen.to_string()
    } else {
        config.mqtt.broker.clone()
    };
    let password = config.mqtt_password()?;
    let (source, acker) =
        MqttSource::new(&config.mqtt, &broker, password.clone()).map_err(anyhow::Error::msg)?;

    // Both read before ingest starts: analysis re-derives exactly what was
    // stored until now, of this daemon's devices only (another daemon sharing
    // the store carries on with its own).
    let partitions = &config.mqtt.partitions;
    let mut heads = store
        .stream_heads()
        .await
        .context("reading stream positions")?;
    heads.retain(|h| partitions.owns(&h.segment.key.device));
    let mut open = store
        .open_segments()
        .await
        .context("reading open segments")?;
    open.retain(|s| partitions.owns(&s.key.device));
    let cap = config.pipeline.queue_capacity;
    let (inbound_tx, inbound_rx) = mpsc::channel(cap);
    let (analysis_tx, analysis_rx) = mpsc::channel(cap);
    let (items_tx, items_rx) = mpsc::channel(cap);
    let (batch_tx, batch_rx) = mpsc::channel((cap / config.pipeline.max_batch).max(4));
    let (classified_tx, classified_rx) = mpsc::channel((cap / config.pipeline.max_batch).max(4));

    let (events_out, events_sink) = if config.events.enabled {
        let sink = MqttEventsSink::new(&config.mqtt, &broker, password.clone(), &config.events)
            .map_err(anyhow::Error::msg)?;
        let (tx, rx) = mpsc::channel(config.events.queue_capacity);
        let drain = Duration::from_secs(config.shutdown.drain_timeout_s.min(10));
        let out = writer::EventsOut {
            tx,
            rules: config.events.rules.clone(),
        };
        (
            Some(out),
            Some(tokio::spawn(sink.run(rx, metrics.clone(), drain))),
        )
    } else {
        (None, None)
    };
    let writer = tokio::spawn(writer::run(
        store.clone(),
        classified_rx,
        metrics.clone(),
        config.store.write_batch,
        config.rhythm.clone(),
        events_out,
    ));
    let workers = inference::spawn(
        config.pipeline.inference_workers,
        classifier,
        batch_rx,
        classified_tx,
        metrics.clone(),
        config.pipeline.threshold,
    )?;
    tokio::spawn(batcher::run(
        items_rx,
        batch_tx,
        metrics.clone(),
        config.pipeline.max_batch,
        Duration::from_millis(config.pipeline.max_wait_ms),
    ));
    tokio::spawn(analysis::run(
        store.clone(),
        analysis_rx,
        items_tx,
        metrics.clone(),
        config.powerline(),
        open,
        heads.clone(),
        config.rhythm.pause_s,
    ));
    let (ingest_done_tx, ingest_done_rx) = watch::channel(false);
    let ingest = tokio::spawn({
        let settings = ingest::IngestSettings {
            reorder_window: config.streams.reorder_window,
            expire_after: config.expire_after(),
            write_batch: config.store.write_batch,
        };
        let (store, metrics) = (store.clone(), metrics.clone());
        async move {
            ingest::run(
                store,
                inbound_rx,
                analysis_tx,
                acker,
                metrics,
                settings,
                heads,
            )
            .await;
            let _ = ingest_done_tx.send(true);
        }
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let source =
        tokio::spawn(source.run(inbound_tx, metrics.clone(), stop_rx, ingest_done_rx, cap));

    let state = HttpState {
        store: store.clone(),
        metrics: metrics.clone(),
        web: Arc::new(Web::from_config(&config)?),
    };
    let (http_stop_tx, http_stop_rx) = watch::channel(false);
    let serve = |listener: TcpListener, app: axum::Router| {
        let mut stop = http_stop_rx.clone();
        tokio::spawn(async move {
            let done = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(done)
                .await
            {
                tracing::error!(error = %e, "HTTP server failed");
            }
        })
    };
    let http = serve(
        listeners.http,
        router(state.clone(), listeners.metrics.is_none()),
    );
    let metrics_http = listeners.metrics.map(|l| serve(l, metrics_router(state)));
    let retention = tokio::spawn(prune_raw_signal(
        store.clone(),
        config.store.raw_retention_days,
    ));
    let compaction = tokio::spawn(compact_stored(
        store.clone(),
        config.store.compact_after_s,
        metrics.clone(),
    ));

    shutdown.await;
    tracing::info!("shutting down: no new messages; storing what is in flight");
    let _ = stop_tx.send(true);
    let drain = async {
        let _ = ingest.await;
        let _ = source.await;
        let _ = writer.await;
        for w in workers {
            let _ = tokio::task::spawn_blocking(move || w.join()).await;
        }
        if let Some(sink) = events_sink {
            let _ = sink.await;
        }
    };
    let deadline = Duration::from_secs(config.shutdown.drain_timeout_s);
    if tokio::time::timeout(deadline, drain).await.is_err() {
        tracing::warn!(
            "drain deadline passed; what was not stored is re-derived from stored signal at next start"
        );
    }
    retention.abort();
    compaction.abort();
    let _ = http_stop_tx.send(true);
    let _ = http.await;
    if let Some(m) = metrics_http {
        let _ = m.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Deletes raw signal older than `days` once an hour (never when `days` is 0).
async fn prune_raw_signal<S: Store>(store: S, days: u64) {
    if days == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let cutoff = crate::clock::now_us() - (days as i64) * 86_400_000_000;
        match store.prune_chunks(cutoff).await {
            Ok(n) if n > 0 => tracing::info!(chunks = n, days, "deleted raw signal past retention"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning raw signal failed"),
        }
    }
}

/// Devices per compaction transaction: a few MB of chunks, a short lock.
const COMPACTION_DEVICES: u32 = 50;

/// Once a minute (never when `after_s` is 0), packs raw chunks received more
/// than `after_s` ago into compressed signal blocks, then beats whose R peak is
/// that old into beat blocks. Each call rests as long as it took, so that
/// compaction holds the database at most half the time and live traffic
/// comes first; a pass that runs past the minute delays the next. Cancelling
/// it mid-pass loses nothing: each transaction packs and deletes together.
async fn compact_stored<S: Store>(store: S, after_s: u64, metrics: Arc<Metrics>) {
    if after_s == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let before = crate::clock::now_us() - (after_s as i64).saturating_mul(1_000_000);
        paced_pass("raw signal", |after| {
            let (store, metrics) = (store.clone(), metrics.clone());
            async move {
                let c = store
                    .compact_signal(before, after.as_deref(), COMPACTION_DEVICES)
                    .await?;
                metrics.signal_packed_chunks.inc_by(c.chunks);
                let bytes = &metrics.signal_packed_bytes;
                bytes.with_label_values(&["in"]).inc_by(c.bytes_in);
                bytes.with_label_values(&["out"]).inc_by(c.bytes_out);
                Ok(c.last_device)
            }
        })
        .await;
        paced_pass("beats", |after| {
            let (store, metrics) = (store.clone(), metrics.clone());
            async move {
                let c = store
                    .compact_beats(before, after.as_deref(), COMPACTION_DEVICES)
                    .await?;
                metrics.beats_packed.inc_by(c.beats);
                metrics.beats_packed_bytes.inc_by(c.bytes_out);
                Ok(c.last_device)
            }
        })
        .await;
    }
}

/// Runs `call` from the first device on, each time from the last device it
/// returned, until it returns none; rests after each call as long as it took.
async fn paced_pass<F, Fut>(what: &str, mut call: F)
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Option<String>, crate::store::StoreError>>,
{
    let mut after: Option<String> = None;
    loop {
        let started = std::time::Instant::now();
        let result = call(after.take()).await;
        tokio::time::sleep(started.elapsed()).await;
        match result {
            Ok(Some(last)) => after = Some(last),
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(error = %e, "packing {what} failed; retried next minute");
                break;
            }
        }
    }
}

/// Completes on SIGTERM or SIGINT.
pub async fn termination_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
