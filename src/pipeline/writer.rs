//! The writer: stores classified beats in bulk, in batch order, so that the
//! beats of a segment are all stored before the segment is marked closed
//! (even with several inference workers finishing out of order), with the
//! rhythm episodes those beats open, extend or close ([`super::rhythm`]).

use super::alerts::{AlertRule, EpisodeEvent, OutboundEvent, Tier};
use super::rhythm::{EpisodeBatch, RhythmStage, Trigger};
use super::{Classified, Silence, send_counted, write_with_retry};
use crate::metrics::Metrics;
use crate::rhythm::RhythmConfig;
use crate::store::{BeatRow, SegmentKey, Store};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc::{Receiver, Sender};

/// Where the writer sends episode events once their beats are stored, and the rules it applies.
pub struct EventsOut {
    pub tx: Sender<OutboundEvent>,
    pub rules: Vec<AlertRule>,
}

/// Runs until `rx` closes and everything received is stored.
pub async fn run<S: Store>(
    store: S,
    mut rx: Receiver<Classified>,
    metrics: Arc<Metrics>,
    write_batch: usize,
    rhythm: RhythmConfig,
    events: Option<EventsOut>,
) {
    let mut stage = match &events {
        Some(out) => RhythmStage::with_alerts(rhythm, &out.rules),
        None => RhythmStage::new(rhythm),
    };
    let mut waiting: BTreeMap<u64, Classified> = BTreeMap::new();
    let mut next_id = 0u64;
    let mut open = true;
    while open || !waiting.is_empty() {
        let ready = waiting
            .first_key_value()
            .is_some_and(|(k, _)| *k == next_id);
        if open && !ready {
            match rx.recv().await {
                Some(c) => {
                    waiting.insert(c.id, c);
                }
                None => open = false,
            }
        }
        if open {
            while let Ok(c) = rx.try_recv() {
                waiting.insert(c.id, c);
            }
            metrics
                .queue_depth
                .with_label_values(&["writer"])
                .set(rx.len() as i64);
        }
        let mut rows: Vec<BeatRow> = Vec::new();
        let mut completed: Vec<Instant> = Vec::new();
        let mut closes: Vec<SegmentKey> = Vec::new();
        let mut silences: Vec<Silence> = Vec::new();
        // In order; once the input has ended, whatever is left (a worker failed) goes too.
        while let Some(entry) = waiting.first_entry() {
            if (*entry.key() != next_id && open) || rows.len() >= write_batch {
                break;
            }
            let c = entry.remove();
            next_id = c.id + 1;
            for (row, t) in c.rows {
                rows.push(row);
                completed.push(t);
            }
            closes.extend(c.closes);
            silences.extend(c.silences);
        }
        if rows.is_empty() && closes.is_empty() {
            if !silences.is_empty() {
                let mut batch = EpisodeBatch::default();
                for s in &silences {
                    stage.silence(s, &mut batch);
                }
                publish(&events, batch.events, &completed, &metrics).await;
            }
            continue;
        }
        let mut episodes = EpisodeBatch::default();
        // Segments first seen since start: a new one, or one re-analysed after
        // a restart, whose analyser is rebuilt from its beats stored before.
        let mut unknown: Vec<(SegmentKey, i64)> = Vec::new();
        let firsts = rows.iter().map(|r| (&r.segment, r.r_time_us));
        for (key, before) in firsts.chain(closes.iter().map(|k| (k, i64::MAX))) {
            if !stage.knows(key) && !unknown.iter().any(|(k, _)| k == key) {
                unknown.push((key.clone(), before));
            }
        }
        for (key, before) in unknown {
            let marks =
                write_with_retry(&metrics, "rhythm", || store.segment_marks(&key, before)).await;
            stage.resume(&key, &marks, &mut episodes);
        }
        stage.observe(&rows, &closes, &mut episodes);
        for s in &silences {
            stage.silence(s, &mut episodes);
        }
        write_with_retry(&metrics, "beats", || {
            store.write_beats(&rows, &closes, episodes.rows())
        })
        .await;
        publish(
            &events,
            std::mem::take(&mut episodes.events),
            &completed,
            &metrics,
        )
        .await;
        for kind in &episodes.opened {
            metrics
                .episodes_opened
                .with_label_values(&[kind.as_str()])
                .inc();
        }
        for (row, t) in rows.iter().zip(&completed) {
            metrics
                .beats_stored
                .with_label_values(&[row.verdict.as_str()])
                .inc();
            metrics
                .beats_classified
                .with_label_values(&[row.class.map_or("none", |c| c.as_str())])
                .inc();
            metrics
                .end_to_end_seconds
                .observe(t.elapsed().as_secs_f64());
        }
    }
}

/// Hands the events of a stored batch to the events sink (waiting when its
/// queue is full), recording each one's latency so far.
async fn publish(
    out: &Option<EventsOut>,
    events: Vec<(EpisodeEvent, Trigger)>,
    completed: &[Instant],
    metrics: &Metrics,
) {
    let Some(out) = out else { return };
    for (event, trigger) in events {
        let triggered = match trigger {
            Trigger::Row(i) => completed.get(i).copied().unwrap_or_else(Instant::now),
            Trigger::Arrival(t) => t,
        };
        metrics
            .alert_latency_seconds
            .with_label_values(&["stored", event.tier.map_or("none", Tier::as_str)])
            .observe(triggered.elapsed().as_secs_f64());
        let event = OutboundEvent { event, triggered };
        if !send_counted(&out.tx, event, metrics, "events").await {
            return;
        }
    }
}
