//! The daemon's pipeline: decoded messages in, classified beats stored.
//!
//! ```text
//! MQTT source ─▶ ingest ─▶ analysis ─▶ batcher ─▶ inference workers ─▶ writer ─▶ events sink
//!  (decode)     (order,    (per-device  (max size,  (dedicated threads)  (bulk beats and  (episode
//!               store raw,  extractor)   max wait)                        rhythm episodes,  events and
//!               then ack)                                                 in batch order;   alerts out,
//!                                                                         alert rules)      MQTT)
//! ```
//!
//! Every queue is a bounded channel: when a stage falls behind, the one
//! before it waits, and in the end the source stops reading from the broker,
//! which holds the unacknowledged messages. A message is acknowledged only once
//! its samples are committed ([`ingest`]); beats not yet stored when the daemon
//! dies are re-derived at start from the stored signal of every open segment
//! ([`analysis`]), and idempotent writes make that exact.

pub mod ack;
pub mod alerts;
pub mod analysis;
pub mod batcher;
pub mod inference;
pub mod ingest;
pub mod offline;
pub mod recording;
pub mod rhythm;
pub mod sequencer;
pub mod writer;

use crate::dsp::Beat;
use crate::formats::wire::Frame;
use crate::pipeline::ack::AckToken;
use crate::store::{BeatRow, SegmentKey, SegmentRow};
use std::time::Instant;

/// A decoded message on its way into ingest.
#[derive(Debug)]
pub struct Inbound {
    pub frame: Frame,
    pub ack: AckToken,
    pub received: Instant,
    /// Reception time, µs since the Unix epoch (stored with the raw chunk).
    pub received_us: i64,
}

/// What ingest hands to analysis, in each device's order, once stored.
#[derive(Debug)]
pub enum AnalysisEvent {
    Start(SegmentRow),
    Frame {
        frame: Frame,
        segment: SegmentKey,
        received: Instant,
    },
    Close(SegmentKey),
}

/// A detected beat awaiting its verdict.
#[derive(Debug, Clone)]
pub struct ExtractedBeat {
    pub segment: SegmentKey,
    pub r_time_us: i64,
    pub beat: Beat,
    /// When the sample that completed the beat arrived (for end-to-end latency).
    pub completed_at: Instant,
}

/// What analysis hands to the batcher.
#[derive(Debug)]
pub enum Item {
    Beat(Box<ExtractedBeat>),
    /// Every beat of the segment precedes this item.
    Close(SegmentKey),
    /// No beat of `segment` was detected after `last_r_us` up to `until_us`
    /// (signal time, µs), as known on the arrival of the frame received at
    /// `received`: a pause under way, announced before the beat that ends it.
    Silence {
        segment: SegmentKey,
        last_r_us: i64,
        until_us: i64,
        received: Instant,
    },
}

/// Items grouped for one inference call; `id` orders the writes.
#[derive(Debug)]
pub struct Batch {
    pub id: u64,
    pub items: Vec<Item>,
}

/// A batch after inference.
#[derive(Debug)]
pub struct Classified {
    pub id: u64,
    pub rows: Vec<(BeatRow, Instant)>,
    pub closes: Vec<SegmentKey>,
    /// Streams silent since their last beat ([`Item::Silence`]), after `rows`.
    pub silences: Vec<Silence>,
}

/// A stream without a beat from `last_r_us` to `until_us` (µs), known when the frame received at `received` arrived.
#[derive(Debug, Clone)]
pub struct Silence {
    pub segment: SegmentKey,
    pub last_r_us: i64,
    pub until_us: i64,
    pub received: Instant,
}

/// Sends `value` on `tx`, counting a backpressure wait when the queue is full.
/// Returns false when the receiver is gone.
pub async fn send_counted<T>(
    tx: &tokio::sync::mpsc::Sender<T>,
    value: T,
    metrics: &crate::metrics::Metrics,
    queue: &str,
) -> bool {
    match tx.try_send(value) {
        Ok(()) => true,
        Err(tokio::sync::mpsc::error::TrySendError::Full(v)) => {
            metrics.backpressure_waits.with_label_values(&[queue]).inc();
            tx.send(v).await.is_ok()
        }
        Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => false,
    }
}

/// Runs the store write `write` until it succeeds, waiting between attempts
/// (doubling from 100 ms to 5 s) and reporting each failure in the metrics and
/// the log. `what` labels the metrics ("chunks", "beats", or "rhythm" for the rhythm stage's reads).
pub(crate) async fn write_with_retry<T, F, Fut>(
    metrics: &crate::metrics::Metrics,
    what: &str,
    mut write: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, crate::store::StoreError>>,
{
    let mut backoff = Backoff::new();
    loop {
        let timer = metrics
            .store_write_seconds
            .with_label_values(&[what])
            .start_timer();
        match write().await {
            Ok(v) => {
                timer.observe_duration();
                metrics.store_up.set(1);
                return v;
            }
            Err(e) => {
                timer.stop_and_discard();
                metrics.store_up.set(0);
                metrics.store_errors.with_label_values(&[what]).inc();
                tracing::warn!(error = %e, what, "store write failed; retrying");
                backoff.wait().await;
            }
        }
    }
}

/// Waits before the next retry of a failed store operation: doubling from 100 ms to 5 s.
pub(crate) struct Backoff(std::time::Duration);

impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff(std::time::Duration::from_millis(100))
    }

    pub(crate) async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(std::time::Duration::from_secs(5));
    }
}
