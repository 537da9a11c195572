//! Analysis: one streaming [`BeatExtractor`] per open segment turns each
//! device's samples into beats, the same extractor `holterd analyze` and the
//! dataset builder use.
//!
//! At start it first re-analyses every segment the store still has open (the
//! daemon stopped before that segment's last beats were stored): the stored
//! chunks go through a fresh extractor, beats already stored are skipped, and
//! segments superseded by a newer one of the same device are finished.

use super::{AnalysisEvent, ExtractedBeat, Item, send_counted};
use crate::clock::r_time_us;
use crate::dsp::{Beat, BeatExtractor, ExtractorConfig};
use crate::metrics::Metrics;
use crate::store::{SegmentKey, SegmentRow, Store, StoreError, StreamHead};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc::{Receiver, Sender};

/// A segment being analysed.
struct Active {
    row: SegmentRow,
    extractor: BeatExtractor,
    /// Beats at or before this time are already stored (re-analysis after a restart).
    stored_until_us: Option<i64>,
}

/// Every device's open segment.
pub struct Analyzer {
    powerline_hz: Option<f64>,
    active: HashMap<String, Active>,
    beats: Vec<Beat>,
    /// Report a stream silent (no beat detected) for at least this long, µs ([`Item::Silence`]).
    silence_us: Option<i64>,
}

impl Analyzer {
    /// An analyzer notching `powerline_hz` out of every stream.
    pub fn new(powerline_hz: Option<f64>) -> Self {
        Analyzer {
            powerline_hz,
            active: HashMap::new(),
            beats: Vec::new(),
            silence_us: None,
        }
    }

    /// From now on, follows each frame of a stream silent for at least
    /// `seconds` since its last beat with an [`Item::Silence`], so that the
    /// live rhythm analysis can announce a pause under way. Off by default
    /// (offline analysis and re-analysis after a restart need none).
    pub fn report_silences(&mut self, seconds: f64) {
        self.silence_us = Some((seconds * 1e6) as i64);
    }

    /// Begins a segment (closing the device's previous one into `out`).
    pub fn start(&mut self, row: SegmentRow, stored_until_us: Option<i64>, out: &mut Vec<Item>) {
        let config = ExtractorConfig {
            powerline_hz: self.powerline_hz,
            ..ExtractorConfig::new(row.fs)
        };
        let device = row.key.device.clone();
        match BeatExtractor::new(config) {
            Ok(extractor) => {
                if let Some(old) = self.active.insert(
                    device,
                    Active {
                        row,
                        extractor,
                        stored_until_us,
                    },
                ) {
                    self.finish(old, Instant::now(), out);
                }
            }
            Err(e) => {
                // Rates are checked at decoding, so this means a stored row is corrupt.
                tracing::error!(device = %device, error = %e, "cannot analyse segment");
                out.push(Item::Close(row.key));
            }
        }
    }

    /// Feeds the samples of one frame of `segment`.
    pub fn push(
        &mut self,
        segment: &SegmentKey,
        samples: &[f32],
        received: Instant,
        out: &mut Vec<Item>,
    ) {
        let Some(a) = self.active.get_mut(&segment.device) else {
            return;
        };
        if a.row.key != *segment {
            return;
        }
        a.extractor.push(samples, &mut self.beats);
        emit(a, &mut self.beats, received, out);
        if let (Some(min_us), Some((last, until))) = (self.silence_us, a.extractor.silent_since()) {
            let last_r_us = r_time_us(a.row.t0_us, a.row.fs, last);
            let until_us = r_time_us(a.row.t0_us, a.row.fs, until);
            if until_us - last_r_us >= min_us {
                out.push(Item::Silence {
                    segment: a.row.key.clone(),
                    last_r_us,
                    until_us,
                    received,
                });
            }
        }
    }

    /// Ends `segment`: its last beats, then the close marker.
    pub fn close(&mut self, segment: &SegmentKey, out: &mut Vec<Item>) {
        if self
            .active
            .get(&segment.device)
            .is_some_and(|a| a.row.key == *segment)
            && let Some(a) = self.active.remove(&segment.device)
        {
            self.finish(a, Instant::now(), out);
        }
    }

    fn finish(&mut self, mut a: Active, now: Instant, out: &mut Vec<Item>) {
        a.extractor.finish(&mut self.beats);
        emit(&a, &mut self.beats, now, out);
        out.push(Item::Close(a.row.key));
    }

    /// Segments being analysed.
    pub fn active(&self) -> usize {
        self.active.len()
    }
}

fn emit(a: &Active, beats: &mut Vec<Beat>, completed_at: Instant, out: &mut Vec<Item>) {
    for beat in beats.drain(..) {
        let t = r_time_us(a.row.t0_us, a.row.fs, beat.sample);
        if a.stored_until_us.is_some_and(|s| t <= s) {
            continue;
        }
        out.push(Item::Beat(Box::new(ExtractedBeat {
            segment: a.row.key.clone(),
            r_time_us: t,
            beat,
            completed_at,
        })));
    }
}

/// Re-analyses the store's open segments, sending their beats not yet stored to `tx`.
///
/// `open` and `heads` are the store's state before ingest started: segments
/// opened since, and chunks of a device's latest segment beyond its `last_seq`,
/// come from the running ingest, which also hands them to analysis, so they are
/// left out here.
pub async fn recover<S: Store>(
    store: &S,
    analyzer: &mut Analyzer,
    metrics: &Metrics,
    tx: &Sender<Item>,
    open: &[SegmentRow],
    heads: &[StreamHead],
) -> Result<(), StoreError> {
    let mut items = Vec::new();
    for row in open.iter().cloned() {
        let key = row.key.clone();
        let stored_until = store.last_beat_us(&key).await?;
        let mut chunks = store.segment_chunks(&key).await?;
        if let Some(head) = heads.iter().find(|h| h.segment.key == key) {
            chunks.retain(|c| c.seq <= head.last_seq);
        }
        analyzer.start(row, stored_until, &mut items);
        let now = Instant::now();
        for c in &chunks {
            analyzer.push(&key, &c.samples, now, &mut items);
            for item in items.drain(..) {
                if !send_counted(tx, item, metrics, "batcher").await {
                    return Ok(());
                }
            }
        }
        metrics.recovered_segments.inc();
        tracing::info!(device = %key.device, stream = key.stream, first_seq = key.first_seq,
            chunks = chunks.len(), "re-analysed open segment");
    }
    for item in items.drain(..) {
        send_counted(tx, item, metrics, "batcher").await;
    }
    Ok(())
}

/// Runs analysis until `rx` closes, after re-analysing `open` (see [`recover`]).
/// Open segments are left open (not finished):
/// the next start re-analyses them, so a restart gives the same beats as an uninterrupted run.
/// Live streams silent for `silence_s` are reported ([`Analyzer::report_silences`]).
#[allow(clippy::too_many_arguments)]
pub async fn run<S: Store>(
    store: S,
    mut rx: Receiver<AnalysisEvent>,
    tx: Sender<Item>,
    metrics: Arc<Metrics>,
    powerline_hz: Option<f64>,
    open: Vec<SegmentRow>,
    heads: Vec<StreamHead>,
    silence_s: f64,
) {
    let mut analyzer = Analyzer::new(powerline_hz);
    let mut backoff = super::Backoff::new();
    while let Err(e) = recover(&store, &mut analyzer, &metrics, &tx, &open, &heads).await {
        tracing::warn!(error = %e, "re-analysing open segments failed; retrying");
        metrics.store_up.set(0);
        backoff.wait().await;
        analyzer = Analyzer::new(powerline_hz);
    }
    analyzer.report_silences(silence_s);
    let mut items = Vec::new();
    while let Some(event) = rx.recv().await {
        metrics
            .queue_depth
            .with_label_values(&["analysis"])
            .set(rx.len() as i64);
        match event {
            AnalysisEvent::Start(row) => analyzer.start(row, None, &mut items),
            AnalysisEvent::Frame {
                frame,
                segment,
                received,
            } => analyzer.push(&segment, &frame.samples, received, &mut items),
            AnalysisEvent::Close(key) => analyzer.close(&key, &mut items),
        }
        for item in items.drain(..) {
            if matches!(item, Item::Beat(_)) {
                metrics.beats_extracted.inc();
            }
            if !send_counted(&tx, item, &metrics, "batcher").await {
                return;
            }
        }
    }
}
