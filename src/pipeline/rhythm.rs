//! Rhythm: one [`RhythmAnalyser`] per open segment, fed the classified beats
//! in the writer's order, so that each episode is stored in the transaction
//! of the beats that opened, extended or closed it.
//!
//! After a restart the analyser of a segment is rebuilt from the segment's
//! stored beats before its first new one ([`RhythmStage::resume`]): the
//! analyser is deterministic in its beats, and re-analysis gives the same
//! beats, so the stored episodes are the ones an uninterrupted run stores.

use super::Silence;
use super::alerts::{AlertEngine, AlertRule, EpisodeEvent};
use crate::formats::wfdb::AamiClass;
use crate::rhythm::{Episode, EpisodeKind, RhythmAnalyser, RhythmBeat, RhythmConfig, RhythmEvent};
use crate::store::{BeatMark, BeatRow, EpisodeRow, SegmentKey, Verdict};
use std::collections::HashMap;
use std::time::Instant;

/// The analyser's version, stored with each episode beside the beat model's name.
pub const ANALYSER_VERSION: &str = "rhythm/1";

/// An ongoing episode's stored end is brought up to date at most this often, µs of signal.
const ONGOING_REFRESH_US: i64 = 10_000_000;

/// A beat as the rhythm analyser reads it: its class, or unreadable.
/// `None` for beats of binary models, which have no class to read.
fn rhythm_beat(r_time_us: i64, verdict: Verdict, class: Option<AamiClass>) -> Option<RhythmBeat> {
    match (verdict, class) {
        (Verdict::Unreadable, _) => Some(RhythmBeat {
            r_time_us,
            class: None,
        }),
        (_, Some(c)) => Some(RhythmBeat {
            r_time_us,
            class: Some(c),
        }),
        (_, None) => None,
    }
}

/// A stored beat as the rhythm analyser reads it (`None`: a binary model's beat).
pub fn beat_of_row(row: &BeatRow) -> Option<RhythmBeat> {
    rhythm_beat(row.r_time_us, row.verdict, row.class)
}

fn beat_of_mark(mark: &BeatMark) -> Option<RhythmBeat> {
    rhythm_beat(mark.r_time_us, mark.verdict, mark.class)
}

struct Active {
    analyser: RhythmAnalyser,
    /// The beat model whose classes the analyser reads.
    model: String,
    /// Signal time of the last refresh of ongoing episodes, µs.
    refreshed_us: i64,
}

/// Every open segment's rhythm analyser.
pub struct RhythmStage {
    config: RhythmConfig,
    active: HashMap<SegmentKey, Active>,
    events: Vec<RhythmEvent>,
    /// Live events and alert rules (the daemon's; none offline).
    alerts: Option<AlertEngine>,
    scratch: Vec<EpisodeEvent>,
}

/// What caused an event: the beat row at this index of the batch, or the
/// arrival of a frame that showed a stream silent.
#[derive(Debug, Clone, Copy)]
pub enum Trigger {
    Row(usize),
    Arrival(Instant),
}

/// Rows to store, one per episode (its latest state wins).
#[derive(Default)]
pub struct EpisodeBatch {
    rows: Vec<EpisodeRow>,
    index: HashMap<(String, EpisodeKind, i64), usize>,
    /// Episodes opened by live beats (not by replay), by kind, for the metrics.
    pub opened: Vec<EpisodeKind>,
    /// Events to publish once the batch is stored, with what caused each.
    pub events: Vec<(EpisodeEvent, Trigger)>,
}

impl EpisodeBatch {
    fn put(&mut self, device: &str, episode: Episode, ongoing: bool, model: &str) {
        let key = (device.to_string(), episode.kind, episode.start_us);
        let row = EpisodeRow {
            device: device.to_string(),
            episode,
            ongoing,
            analyser: format!("{ANALYSER_VERSION} {model}"),
        };
        match self.index.get(&key) {
            Some(&i) => self.rows[i] = row,
            None => {
                self.index.insert(key, self.rows.len());
                self.rows.push(row);
            }
        }
    }

    /// The rows, each episode once.
    pub fn rows(&self) -> &[EpisodeRow] {
        &self.rows
    }
}

impl RhythmStage {
    /// A stage analysing every segment with `config`.
    pub fn new(config: RhythmConfig) -> Self {
        RhythmStage {
            config,
            active: HashMap::new(),
            events: Vec::new(),
            alerts: None,
            scratch: Vec::new(),
        }
    }

    /// The same, also turning live beats into episode events under `rules`
    /// ([`EpisodeBatch::events`]); episodes replayed by [`resume`](Self::resume) raise none.
    pub fn with_alerts(config: RhythmConfig, rules: &[AlertRule]) -> Self {
        RhythmStage {
            alerts: Some(AlertEngine::new(rules)),
            ..Self::new(config)
        }
    }

    /// True when `key`'s analyser is running (else [`resume`](Self::resume) it first).
    pub fn knows(&self, key: &SegmentKey) -> bool {
        self.active.contains_key(key)
    }

    /// Starts `key`'s analyser from the segment's beats already stored (none
    /// for a new segment), putting the episodes they give into `out` (equal to
    /// those stored before, or completing them).
    pub fn resume(&mut self, key: &SegmentKey, stored: &[BeatMark], out: &mut EpisodeBatch) {
        let model = stored.last().map(|m| m.model.clone()).unwrap_or_default();
        let mut active = Active {
            analyser: RhythmAnalyser::new(self.config.clone()),
            model,
            refreshed_us: i64::MIN,
        };
        for beat in stored.iter().filter_map(beat_of_mark) {
            active.analyser.push(beat, &mut self.events);
        }
        for e in self.events.drain(..) {
            put_event(out, &key.device, e, &active.model);
        }
        self.active.insert(key.clone(), active);
    }

    /// Feeds `rows` (in stream order per segment) and ends the segments
    /// `closed`; every segment named must be known ([`knows`](Self::knows)).
    pub fn observe(&mut self, rows: &[BeatRow], closed: &[SegmentKey], out: &mut EpisodeBatch) {
        for (i, row) in rows.iter().enumerate() {
            let Some(beat) = beat_of_row(row) else {
                continue;
            };
            let Some(a) = self.active.get_mut(&row.segment) else {
                continue;
            };
            let device = &row.segment.device;
            a.model.clone_from(&row.model);
            a.analyser.push(beat, &mut self.events);
            if let Some(alerts) = &mut self.alerts {
                for e in &self.events {
                    alerts.on_rhythm(device, e, &mut self.scratch);
                }
                if alerts.has_open(device) {
                    for ep in a.analyser.ongoing() {
                        alerts.on_ongoing(device, &ep, &mut self.scratch);
                    }
                }
                alerts.on_beat(device, beat.r_time_us, beat.class, &mut self.scratch);
                out.events
                    .extend(self.scratch.drain(..).map(|e| (e, Trigger::Row(i))));
            }
            for e in self.events.drain(..) {
                if let RhythmEvent::Opened(ep) = &e {
                    out.opened.push(ep.kind);
                }
                put_event(out, device, e, &a.model);
            }
            if row.r_time_us - a.refreshed_us >= ONGOING_REFRESH_US {
                a.refreshed_us = row.r_time_us;
                for ep in a.analyser.ongoing() {
                    out.put(device, ep, true, &a.model);
                }
            }
        }
        for key in closed {
            if let Some(mut a) = self.active.remove(key) {
                a.analyser.finish(&mut self.events);
                if let Some(alerts) = &mut self.alerts {
                    for e in &self.events {
                        alerts.on_rhythm(&key.device, e, &mut self.scratch);
                    }
                    alerts.end_stream(&key.device, &mut self.scratch);
                    let now = Trigger::Arrival(Instant::now());
                    out.events.extend(self.scratch.drain(..).map(|e| (e, now)));
                }
                for e in self.events.drain(..) {
                    put_event(out, &key.device, e, &a.model);
                }
            }
        }
    }

    /// Takes a silence of a live stream ([`Silence`]): a pause or asystole
    /// under way is announced as an event (never stored: the stored episode
    /// comes with the beat that ends it). Ignored unless the analyser's last
    /// beat is the one the silence follows (else a beat is still on its way).
    pub fn silence(&mut self, s: &Silence, out: &mut EpisodeBatch) {
        let (Some(alerts), Some(a)) = (&mut self.alerts, self.active.get_mut(&s.segment)) else {
            return;
        };
        if a.analyser.last_beat_us() != Some(s.last_r_us) {
            return;
        }
        a.analyser.advance(s.until_us, &mut self.events);
        for e in self.events.drain(..) {
            alerts.on_rhythm(&s.segment.device, &e, &mut self.scratch);
        }
        let at = Trigger::Arrival(s.received);
        out.events.extend(self.scratch.drain(..).map(|e| (e, at)));
    }

    /// Segments being analysed.
    pub fn active(&self) -> usize {
        self.active.len()
    }
}

/// The episodes the daemon stores for `rows` (whole segments, each in stream
/// order), every segment closed at its end: for offline analysis, uploads and
/// checking the daemon against them.
pub fn episodes_of(rows: &[BeatRow], config: &RhythmConfig) -> Vec<EpisodeRow> {
    let mut stage = RhythmStage::new(config.clone());
    let mut out = EpisodeBatch::default();
    let mut keys: Vec<SegmentKey> = Vec::new();
    for r in rows {
        if !stage.knows(&r.segment) {
            stage.resume(&r.segment, &[], &mut out);
            keys.push(r.segment.clone());
        }
    }
    stage.observe(rows, &keys, &mut out);
    let mut episodes = out.rows;
    episodes.sort_by(|a, b| {
        (a.episode.start_us, a.episode.kind.as_str())
            .cmp(&(b.episode.start_us, b.episode.kind.as_str()))
    });
    episodes
}

fn put_event(out: &mut EpisodeBatch, device: &str, event: RhythmEvent, model: &str) {
    match event {
        RhythmEvent::Opened(e) => out.put(device, e, true, model),
        RhythmEvent::Closed(e) => out.put(device, e, false, model),
        // Only announced live pauses are withdrawn, and those are never stored.
        RhythmEvent::Withdrawn(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::Quality;
    use crate::pipeline::alerts::{Phase, Tier};

    fn key() -> SegmentKey {
        SegmentKey {
            device: "d".into(),
            stream: 0,
            first_seq: 0,
        }
    }

    /// Sinus at 75 /min with a three-beat V run at 150 /min in the middle.
    fn rows() -> Vec<BeatRow> {
        let mut t = 0i64;
        let mut out = Vec::new();
        for i in 0..60 {
            let v = (30..33).contains(&i);
            t += if v { 400_000 } else { 800_000 };
            let class = if v { AamiClass::V } else { AamiClass::N };
            out.push(BeatRow {
                segment: key(),
                r_time_us: t,
                sample: 0,
                rr_prev_ms: None,
                rr_next_ms: None,
                quality: Quality::Good,
                searchback: false,
                verdict: if v {
                    Verdict::Abnormal
                } else {
                    Verdict::Normal
                },
                p_abnormal: Some(0.0),
                class: Some(class),
                class_probs: None,
                model: "m".into(),
                model_version: "1".into(),
                values: Vec::new(),
            });
        }
        out
    }

    fn mark(r: &BeatRow) -> BeatMark {
        BeatMark {
            r_time_us: r.r_time_us,
            rr_prev_ms: None,
            quality: r.quality,
            verdict: r.verdict,
            p_abnormal: r.p_abnormal,
            class: r.class,
            model: r.model.clone(),
        }
    }

    fn closed_rows(batches: &[EpisodeBatch]) -> Vec<EpisodeRow> {
        let mut by_key: HashMap<(EpisodeKind, i64), EpisodeRow> = HashMap::new();
        for b in batches {
            for r in b.rows() {
                by_key.insert((r.episode.kind, r.episode.start_us), r.clone());
            }
        }
        let mut v: Vec<_> = by_key.into_values().collect();
        v.sort_by_key(|r| r.episode.start_us);
        v
    }

    #[test]
    fn a_run_is_stored_and_a_restart_midway_stores_the_same_episodes() {
        let rows = rows();
        let mut whole = RhythmStage::new(RhythmConfig::default());
        let mut once = EpisodeBatch::default();
        whole.resume(&key(), &[], &mut once);
        whole.observe(&rows, &[key()], &mut once);
        let expected = closed_rows(&[once]);
        let vt: Vec<_> = expected
            .iter()
            .filter(|r| r.episode.kind == EpisodeKind::VentricularTachycardia)
            .collect();
        assert_eq!(vt.len(), 1, "{expected:?}");
        assert_eq!(vt[0].episode.beats, 3);
        assert!(!vt[0].ongoing);
        assert_eq!(vt[0].analyser, "rhythm/1 m");

        for cut in [1, 31, 32, 45] {
            // The first `cut` beats were stored, then the daemon died.
            let mut before = RhythmStage::new(RhythmConfig::default());
            let mut first = EpisodeBatch::default();
            before.resume(&key(), &[], &mut first);
            before.observe(&rows[..cut], &[], &mut first);
            let marks: Vec<BeatMark> = rows[..cut].iter().map(mark).collect();
            let mut after = RhythmStage::new(RhythmConfig::default());
            let mut second = EpisodeBatch::default();
            after.resume(&key(), &marks, &mut second);
            after.observe(&rows[cut..], &[key()], &mut second);
            assert_eq!(closed_rows(&[first, second]), expected, "cut at {cut}");
        }
    }

    #[test]
    fn a_silence_is_announced_live_and_only_its_closing_beat_stores_it() {
        let mut rows = rows();
        rows.truncate(20);
        for r in &mut rows {
            (r.class, r.verdict) = (Some(AamiClass::N), Verdict::Normal);
        }
        let last = rows[19].r_time_us;
        let rules = crate::pipeline::alerts::default_rules();
        let mut stage = RhythmStage::with_alerts(RhythmConfig::default(), &rules);
        let mut out = EpisodeBatch::default();
        stage.resume(&key(), &[], &mut out);
        stage.observe(&rows, &[], &mut out);
        assert!(out.events.is_empty());
        let silence = |last_r_us: i64, until_us: i64| Silence {
            segment: key(),
            last_r_us,
            until_us,
            received: Instant::now(),
        };
        // A silence after a beat still on its way is not announced.
        let mut live = EpisodeBatch::default();
        stage.silence(&silence(last - 800_000, last + 3_200_000), &mut live);
        assert!(live.events.is_empty());
        stage.silence(&silence(last, last + 3_200_000), &mut live);
        assert!(live.rows().is_empty(), "an announced silence is not stored");
        let [(start, Trigger::Arrival(_))] = &live.events[..] else {
            panic!("{:?}", live.events);
        };
        assert_eq!(
            (start.kind.as_str(), start.event),
            ("asystole", Phase::Start)
        );
        assert_eq!(start.tier, Some(Tier::Emergency));
        let mut next = rows[19].clone();
        next.r_time_us = last + 3_500_000;
        let mut closing = EpisodeBatch::default();
        stage.observe(&[next], &[], &mut closing);
        let stored: Vec<_> = closing
            .rows()
            .iter()
            .map(|r| (r.episode.kind, r.ongoing))
            .collect();
        assert_eq!(stored, [(EpisodeKind::Asystole, false)]);
        let ends: Vec<_> = closing.events.iter().map(|(e, _)| e.event).collect();
        assert_eq!(ends, [Phase::End]);
    }

    #[test]
    fn beats_of_binary_models_are_not_read() {
        let mut rows = rows();
        for r in &mut rows {
            r.class = None;
        }
        let mut stage = RhythmStage::new(RhythmConfig::default());
        let mut out = EpisodeBatch::default();
        stage.resume(&key(), &[], &mut out);
        stage.observe(&rows, &[key()], &mut out);
        assert!(out.rows().is_empty(), "{:?}", out.rows());
        assert_eq!(stage.active(), 0);
    }
}
