//! Ingest: orders each device's messages ([`Sequencer`]), stores them as raw
//! chunks in one transaction per batch, acknowledges them to the broker only
//! after that commit, then hands them to analysis.
//!
//! A failed write is retried with backoff and nothing is acknowledged
//! meanwhile, so during a database outage the broker keeps the messages.

use super::sequencer::{SeqEvent, Sequencer};
use super::{AnalysisEvent, Inbound, send_counted, write_with_retry};
use crate::metrics::Metrics;
use crate::pipeline::ack::{AckToken, Acker};
use crate::store::{ChunkRow, SegmentRow, Store, StreamHead};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{Receiver, Sender};

/// Settings of the ingest stage.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    pub reorder_window: usize,
    pub expire_after: Duration,
    /// Most messages per transaction.
    pub write_batch: usize,
}

/// What the sequencer keeps with a held message.
#[derive(Debug)]
struct Token {
    ack: AckToken,
    received: Instant,
    received_us: i64,
}

/// Runs ingest until `rx` closes (the source stopped) and everything read is stored and acknowledged.
#[allow(clippy::too_many_arguments)]
pub async fn run<S: Store>(
    store: S,
    mut rx: Receiver<Inbound>,
    tx: Sender<AnalysisEvent>,
    acker: Acker,
    metrics: Arc<Metrics>,
    settings: IngestSettings,
    heads: Vec<StreamHead>,
) {
    let mut sequencer = Sequencer::new(settings.reorder_window);
    sequencer.restore(heads, Instant::now());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut events = Vec::new();
    let mut batch = Vec::with_capacity(settings.write_batch);
    loop {
        tokio::select! {
            m = rx.recv() => {
                let Some(m) = m else { break };
                batch.push(m);
                while batch.len() < settings.write_batch {
                    match rx.try_recv() {
                        Ok(m) => batch.push(m),
                        Err(_) => break,
                    }
                }
                metrics.queue_depth.with_label_values(&["ingest"]).set(rx.len() as i64);
                let now = Instant::now();
                for m in batch.drain(..) {
                    metrics.samples.inc_by(m.frame.samples.len() as u64);
                    let token = Token { ack: m.ack, received: m.received, received_us: m.received_us };
                    sequencer.push(m.frame, token, now, &mut events);
                }
            }
            _ = tick.tick() => {
                if let Some(deadline) = Instant::now().checked_sub(settings.expire_after) {
                    sequencer.expire(deadline, &mut events);
                }
            }
        }
        if events.is_empty() {
            continue;
        }
        let before = sequencer.counts();
        if !commit(&store, &tx, &acker, &metrics, &mut events).await {
            return;
        }
        let after = sequencer.counts();
        metrics.gaps.inc_by(after.gaps - before.gaps);
        metrics
            .missing_messages
            .inc_by(after.missing - before.missing);
        metrics.active_streams.set(sequencer.active() as i64);
    }
}

/// Stores the chunks and segments of `events`, acknowledges, and forwards to analysis.
/// Returns false when analysis is gone.
async fn commit<S: Store>(
    store: &S,
    tx: &Sender<AnalysisEvent>,
    acker: &Acker,
    metrics: &Metrics,
    events: &mut Vec<SeqEvent<Token>>,
) -> bool {
    let mut segments: Vec<SegmentRow> = Vec::new();
    let mut chunks: Vec<ChunkRow> = Vec::new();
    for e in events.iter() {
        match e {
            SeqEvent::Start(row) => segments.push(row.clone()),
            SeqEvent::Frame {
                frame,
                token,
                segment,
            } => chunks.push(ChunkRow {
                segment: segment.clone(),
                seq: frame.seq,
                t0_us: frame.t0_us,
                fs: frame.fs,
                received_us: token.received_us,
                samples: frame.samples.clone(),
                scale: Some(frame.scale),
            }),
            _ => {}
        }
    }
    if !segments.is_empty() || !chunks.is_empty() {
        // Until this succeeds nothing is acknowledged: the broker keeps the messages.
        write_with_retry(metrics, "chunks", || store.write_chunks(&segments, &chunks)).await;
    }
    metrics.segments_started.inc_by(segments.len() as u64);
    for e in events.drain(..) {
        let event = match e {
            SeqEvent::Start(row) => AnalysisEvent::Start(row),
            SeqEvent::Frame {
                frame,
                token,
                segment,
            } => {
                acker.ack(token.ack);
                AnalysisEvent::Frame {
                    frame,
                    segment,
                    received: token.received,
                }
            }
            SeqEvent::Close(key) => AnalysisEvent::Close(key),
            SeqEvent::Duplicate(token) => {
                metrics.duplicates.inc();
                acker.ack(token.ack);
                continue;
            }
            SeqEvent::Late(token) => {
                metrics.late.inc();
                acker.ack(token.ack);
                continue;
            }
        };
        if !send_counted(tx, event, metrics, "analysis").await {
            return false;
        }
    }
    true
}
