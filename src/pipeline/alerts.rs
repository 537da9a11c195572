//! Alert rules and the episode events the daemon publishes (`[events]` in the
//! configuration, `holter/<device>/events` on MQTT; docs/wire-format.md).
//!
//! Every rhythm episode's start and end becomes an [`EpisodeEvent`]. A rule
//! names episode kinds and thresholds (beats, duration, rate) and a priority
//! [`Tier`]; an event carries the highest-tier rule its episode meets so far,
//! and an `alert` event is sent when an episode under way comes to meet a
//! higher-tier rule than it did when it started (a VT run reaching its fourth
//! beat, a bradycardia its sixty seconds). The engine is fed the writer's
//! beats and episodes in stream order; it keeps only the episodes under way.

use crate::formats::wfdb::AamiClass;
use crate::rhythm::{Episode, EpisodeKind, RhythmEvent};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};

/// Priority of an alert, lowest first (so that `max` picks the most urgent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Reviewed with the next report.
    Routine,
    /// Reviewed by the monitoring team within the hour.
    Urgent,
    /// Acted on at once.
    Emergency,
}

impl Tier {
    /// Every tier, lowest first.
    pub const ALL: [Tier; 3] = [Tier::Routine, Tier::Urgent, Tier::Emergency];

    /// The tier's name in events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Routine => "routine",
            Tier::Urgent => "urgent",
            Tier::Emergency => "emergency",
        }
    }
}

/// The kind name of the condition "more than N V beats in the last minute",
/// which is not a stored episode but can be watched by a rule.
pub const FREQUENT_V: &str = "frequent_ventricular_beats";

/// One alert rule. An episode meets it when its kind is among `kinds` and it
/// has at least `min_beats` beats, lasts at least `min_s`, and its mean rate
/// is above `above_per_min` and below `below_per_min` (each when set). For
/// [`FREQUENT_V`] the rate is the V beats in the last 60 s of signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertRule {
    /// Named in each event it fires on.
    pub name: String,
    pub tier: Tier,
    /// Episode kinds (`ventricular_tachycardia`, `asystole`, …) or `frequent_ventricular_beats`.
    pub kinds: Vec<String>,
    pub min_beats: u32,
    pub min_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub above_per_min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub below_per_min: Option<f64>,
}

impl Default for AlertRule {
    fn default() -> Self {
        AlertRule {
            name: String::new(),
            tier: Tier::Routine,
            kinds: Vec::new(),
            min_beats: 0,
            min_s: 0.0,
            above_per_min: None,
            below_per_min: None,
        }
    }
}

fn rule(name: &str, tier: Tier, kinds: &[&str]) -> AlertRule {
    AlertRule {
        name: name.into(),
        tier,
        kinds: kinds.iter().map(|k| k.to_string()).collect(),
        ..AlertRule::default()
    }
}

/// The default rules, after the conventions of remote cardiac monitoring
/// services: VT > 100 /min for ≥ 4 beats and asystole (no beat for ≥ 3 s)
/// are emergencies; bradycardia < 40 /min or tachycardia > 150 /min for
/// over 60 s urgent; pauses, SVT, AF, more than 8 V beats a minute and
/// lead-off (30 s of unreadable signal) routine.
pub fn default_rules() -> Vec<AlertRule> {
    vec![
        AlertRule {
            min_beats: 4,
            above_per_min: Some(100.0),
            ..rule(
                "ventricular-tachycardia",
                Tier::Emergency,
                &["ventricular_tachycardia"],
            )
        },
        rule("asystole", Tier::Emergency, &["asystole"]),
        AlertRule {
            min_s: 60.0,
            below_per_min: Some(40.0),
            ..rule("bradycardia", Tier::Urgent, &["bradycardia"])
        },
        AlertRule {
            min_s: 60.0,
            above_per_min: Some(150.0),
            ..rule("tachycardia", Tier::Urgent, &["tachycardia"])
        },
        rule("pause", Tier::Routine, &["pause"]),
        rule(
            "supraventricular-tachycardia",
            Tier::Routine,
            &["supraventricular_tachycardia"],
        ),
        rule(
            "atrial-fibrillation",
            Tier::Routine,
            &["atrial_fibrillation"],
        ),
        AlertRule {
            above_per_min: Some(8.0),
            ..rule("frequent-pvcs", Tier::Routine, &[FREQUENT_V])
        },
        AlertRule {
            min_s: 30.0,
            ..rule("lead-off", Tier::Routine, &["signal_loss"])
        },
    ]
}

/// The `[events]` section: where episode events go and which rules raise alerts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// Publish episode events on MQTT.
    pub enabled: bool,
    /// Topic; `{device}` stands for the device id.
    pub topic: String,
    /// Publish retained, so that a client subscribing later gets each device's last event.
    pub retain: bool,
    /// Events waiting for the broker; when full, the writer waits.
    pub queue_capacity: usize,
    /// The alert rules (replacing the defaults when given).
    pub rules: Vec<AlertRule>,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            enabled: true,
            topic: "holter/{device}/events".into(),
            retain: false,
            queue_capacity: 10_000,
            rules: default_rules(),
        }
    }
}

impl EventsConfig {
    /// Checks the section, naming the first setting that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if !self.topic.contains("{device}") || self.topic.contains(['+', '#']) {
            return Err(format!(
                "events.topic {:?} must contain {{device}} and no wildcard (+ or #)",
                self.topic
            ));
        }
        if self.queue_capacity == 0 {
            return Err("events.queue_capacity must be at least 1".into());
        }
        for (i, r) in self.rules.iter().enumerate() {
            if r.name.is_empty() {
                return Err(format!("events.rules[{i}] needs a name"));
            }
            if self.rules[..i].iter().any(|o| o.name == r.name) {
                return Err(format!("events.rules: the name {:?} is used twice", r.name));
            }
            if r.kinds.is_empty() {
                return Err(format!("events.rules {:?}: kinds is empty", r.name));
            }
            for k in &r.kinds {
                if Watch::parse(k).is_none() {
                    let known: Vec<&str> = EpisodeKind::ALL.iter().map(|k| k.as_str()).collect();
                    return Err(format!(
                        "events.rules {:?}: unknown kind {k:?} (known: {}, {FREQUENT_V})",
                        r.name,
                        known.join(", ")
                    ));
                }
            }
            if !(r.min_s.is_finite() && r.min_s >= 0.0) {
                return Err(format!("events.rules {:?}: min_s must be ≥ 0", r.name));
            }
            for v in [r.above_per_min, r.below_per_min].into_iter().flatten() {
                if !(v.is_finite() && v > 0.0) {
                    return Err(format!(
                        "events.rules {:?}: rates must be positive numbers",
                        r.name
                    ));
                }
            }
        }
        Ok(())
    }

    /// The topic of `device`'s events.
    pub fn topic_of(&self, device: &str) -> String {
        self.topic.replace("{device}", device)
    }
}

/// What a rule can watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watch {
    Episode(EpisodeKind),
    FrequentV,
}

impl Watch {
    fn parse(name: &str) -> Option<Watch> {
        if name == FREQUENT_V {
            return Some(Watch::FrequentV);
        }
        EpisodeKind::parse(name).map(Watch::Episode)
    }
}

/// What an event says about its episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The episode has begun.
    Start,
    /// The episode under way now meets a higher-tier rule than before.
    Alert,
    /// The episode has ended (its final extent).
    End,
    /// An episode announced before its closing beat did not happen as announced.
    Withdrawn,
}

/// One event on the events topic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EpisodeEvent {
    pub device: String,
    pub event: Phase,
    /// An episode kind's name, or `frequent_ventricular_beats`.
    pub kind: String,
    /// Onset and offset so far (signal time, µs since the Unix epoch).
    pub start_us: i64,
    pub end_us: i64,
    pub beats: u32,
    pub min_bpm: f32,
    pub max_bpm: f32,
    /// Mean rate over the episode (V beats in the last minute for frequent V beats), /min.
    pub rate_per_min: f64,
    /// The highest tier among the rules the episode meets, and that rule.
    pub tier: Option<Tier>,
    pub rule: Option<String>,
}

/// An event on its way to the events sink, with the arrival of the sample that caused it
/// (for the alert-latency histogram).
#[derive(Debug, Clone)]
pub struct OutboundEvent {
    pub event: EpisodeEvent,
    pub triggered: std::time::Instant,
}

/// Mean heart rate of an episode, /min (0 when it spans no time).
fn mean_rate(e: &Episode) -> f64 {
    let s = e.duration_s();
    if s > 0.0 && e.beats > 1 {
        f64::from(e.beats - 1) * 60.0 / s
    } else {
        0.0
    }
}

struct Rule {
    name: String,
    tier: Tier,
    watches: Vec<Watch>,
    min_beats: u32,
    min_s: f64,
    above: Option<f64>,
    below: Option<f64>,
}

impl Rule {
    fn met(&self, watch: Watch, beats: u32, duration_s: f64, rate: f64) -> bool {
        self.watches.contains(&watch)
            && beats >= self.min_beats
            && duration_s >= self.min_s
            && self.above.is_none_or(|a| rate > a)
            && self.below.is_none_or(|b| rate < b)
    }
}

/// Frequent-V state of one device.
#[derive(Default)]
struct VWindow {
    /// R times of the V beats in the last minute, µs.
    times: VecDeque<i64>,
    /// While a rule is met: when it began and the rule (index) met.
    active: Option<(i64, usize)>,
    last_us: i64,
}

/// Turns episodes and beats into events, applying the rules.
pub struct AlertEngine {
    rules: Vec<Rule>,
    watches_v: bool,
    /// Episodes under way (device, kind, onset) → the rule they meet so far.
    open: HashMap<(String, EpisodeKind, i64), Option<usize>>,
    frequent: HashMap<String, VWindow>,
}

const MINUTE_US: i64 = 60_000_000;

impl AlertEngine {
    /// An engine applying `rules` (assumed validated: unknown kinds are ignored).
    pub fn new(rules: &[AlertRule]) -> Self {
        let rules: Vec<Rule> = rules
            .iter()
            .map(|r| Rule {
                name: r.name.clone(),
                tier: r.tier,
                watches: r.kinds.iter().filter_map(|k| Watch::parse(k)).collect(),
                min_beats: r.min_beats,
                min_s: r.min_s,
                above: r.above_per_min,
                below: r.below_per_min,
            })
            .collect();
        let watches_v = rules.iter().any(|r| r.watches.contains(&Watch::FrequentV));
        AlertEngine {
            rules,
            watches_v,
            open: HashMap::new(),
            frequent: HashMap::new(),
        }
    }

    /// The highest-tier rule `watch` meets (the first listed among equals).
    fn best(&self, watch: Watch, beats: u32, duration_s: f64, rate: f64) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, r) in self.rules.iter().enumerate() {
            if r.met(watch, beats, duration_s, rate)
                && best.is_none_or(|b| r.tier > self.rules[b].tier)
            {
                best = Some(i);
            }
        }
        best
    }

    fn best_for(&self, e: &Episode) -> Option<usize> {
        self.best(
            Watch::Episode(e.kind),
            e.beats,
            e.duration_s(),
            mean_rate(e),
        )
    }

    fn higher(&self, a: Option<usize>, b: Option<usize>) -> Option<usize> {
        match (a, b) {
            (Some(x), Some(y)) => Some(if self.rules[y].tier > self.rules[x].tier {
                y
            } else {
                x
            }),
            (x, y) => x.or(y),
        }
    }

    fn event(&self, device: &str, phase: Phase, e: &Episode, rule: Option<usize>) -> EpisodeEvent {
        EpisodeEvent {
            device: device.to_string(),
            event: phase,
            kind: e.kind.as_str().to_string(),
            start_us: e.start_us,
            end_us: e.end_us,
            beats: e.beats,
            min_bpm: e.min_bpm,
            max_bpm: e.max_bpm,
            rate_per_min: mean_rate(e),
            tier: rule.map(|i| self.rules[i].tier),
            rule: rule.map(|i| self.rules[i].name.clone()),
        }
    }

    /// Takes one of the analyser's events for `device`.
    pub fn on_rhythm(&mut self, device: &str, event: &RhythmEvent, out: &mut Vec<EpisodeEvent>) {
        let e = event.episode();
        let key = (device.to_string(), e.kind, e.start_us);
        match event {
            RhythmEvent::Opened(_) => {
                let rule = self.best_for(e);
                self.open.insert(key, rule);
                out.push(self.event(device, Phase::Start, e, rule));
            }
            RhythmEvent::Closed(_) => {
                let before = self.open.remove(&key).flatten();
                let rule = self.higher(before, self.best_for(e));
                out.push(self.event(device, Phase::End, e, rule));
            }
            RhythmEvent::Withdrawn(_) => {
                let rule = self.open.remove(&key).flatten();
                out.push(self.event(device, Phase::Withdrawn, e, rule));
            }
        }
    }

    /// Takes an episode under way as it stands now: an `alert` event when it
    /// meets a higher-tier rule than before.
    pub fn on_ongoing(&mut self, device: &str, e: &Episode, out: &mut Vec<EpisodeEvent>) {
        let key = (device.to_string(), e.kind, e.start_us);
        let Some(&before) = self.open.get(&key) else {
            return;
        };
        let now = self.best_for(e);
        let higher = match (before, now) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(b), Some(n)) => self.rules[n].tier > self.rules[b].tier,
        };
        if higher {
            self.open.insert(key, now);
            out.push(self.event(device, Phase::Alert, e, now));
        }
    }

    /// True when some episode of `device` is under way (only then is
    /// [`on_ongoing`](Self::on_ongoing) worth calling).
    pub fn has_open(&self, device: &str) -> bool {
        self.open.keys().any(|(d, _, _)| d == device)
    }

    /// Takes a beat of `device` (stream order) for the frequent-V rules.
    pub fn on_beat(
        &mut self,
        device: &str,
        r_time_us: i64,
        class: Option<AamiClass>,
        out: &mut Vec<EpisodeEvent>,
    ) {
        if !self.watches_v {
            return;
        }
        let is_v = class == Some(AamiClass::V);
        if !is_v && !self.frequent.contains_key(device) {
            return;
        }
        let w = self.frequent.entry(device.to_string()).or_default();
        if r_time_us <= w.last_us {
            return;
        }
        w.last_us = r_time_us;
        if is_v {
            w.times.push_back(r_time_us);
        }
        while w.times.front().is_some_and(|&t| t <= r_time_us - MINUTE_US) {
            w.times.pop_front();
        }
        let count = w.times.len() as u32;
        let (active, empty) = (w.active, w.times.is_empty());
        let first = w.times.front().copied().unwrap_or(r_time_us);
        let span = (r_time_us - first) as f64 / 1e6;
        let now = self.best(Watch::FrequentV, count, span, f64::from(count));
        let (phase, start, rule) = match (active, now) {
            (None, Some(n)) => (Phase::Start, first, n),
            (Some((start, b)), Some(n)) if self.rules[n].tier > self.rules[b].tier => {
                (Phase::Alert, start, n)
            }
            (Some((start, b)), None) => (Phase::End, start, b),
            _ => {
                if empty && active.is_none() {
                    self.frequent.remove(device);
                }
                return;
            }
        };
        out.push(self.frequent_event(device, phase, start, r_time_us, count, rule));
        if let Some(w) = self.frequent.get_mut(device) {
            w.active = (phase != Phase::End).then_some((start, rule));
        }
    }

    /// An event about `device`'s V beats: `count` of them in the minute to `end_us`.
    fn frequent_event(
        &self,
        device: &str,
        phase: Phase,
        start_us: i64,
        end_us: i64,
        count: u32,
        rule: usize,
    ) -> EpisodeEvent {
        EpisodeEvent {
            device: device.to_string(),
            event: phase,
            kind: FREQUENT_V.to_string(),
            start_us,
            end_us,
            beats: count,
            min_bpm: 0.0,
            max_bpm: 0.0,
            rate_per_min: f64::from(count),
            tier: Some(self.rules[rule].tier),
            rule: Some(self.rules[rule].name.clone()),
        }
    }

    /// Forgets `device`'s frequent-V window at the end of its stream (ending a condition under way).
    pub fn end_stream(&mut self, device: &str, out: &mut Vec<EpisodeEvent>) {
        if let Some(w) = self.frequent.remove(device)
            && let Some((start, rule)) = w.active
        {
            let count = w.times.len() as u32;
            out.push(self.frequent_event(device, Phase::End, start, w.last_us, count, rule));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn episode(kind: EpisodeKind, start_s: f64, end_s: f64, beats: u32) -> Episode {
        Episode {
            kind,
            start_us: (start_s * 1e6) as i64,
            end_us: (end_s * 1e6) as i64,
            beats,
            min_bpm: 0.0,
            max_bpm: 0.0,
        }
    }

    #[test]
    fn the_default_rules_are_valid() {
        EventsConfig::default().validate().unwrap();
    }

    #[test]
    fn bad_rules_are_refused_with_the_rule_named() {
        let mut c = EventsConfig::default();
        c.rules[0].kinds = vec!["vtach".into()];
        let e = c.validate().unwrap_err();
        assert!(
            e.contains("ventricular-tachycardia") && e.contains("vtach"),
            "{e}"
        );
        let c = EventsConfig {
            topic: "holter/+/events".into(),
            ..EventsConfig::default()
        };
        assert!(c.validate().is_err());
        let mut c = EventsConfig::default();
        c.rules[1].name = c.rules[0].name.clone();
        assert!(c.validate().unwrap_err().contains("twice"));
    }

    #[test]
    fn a_vt_run_escalates_to_emergency_at_its_fourth_beat() {
        let mut engine = AlertEngine::new(&default_rules());
        let mut out = Vec::new();
        let vt = EpisodeKind::VentricularTachycardia;
        // Three beats at 150 /min: a VT episode, below the rule's four beats.
        engine.on_rhythm(
            "d",
            &RhythmEvent::Opened(episode(vt, 10.0, 10.8, 3)),
            &mut out,
        );
        assert_eq!(out[0].event, Phase::Start);
        assert_eq!(out[0].tier, None);
        engine.on_ongoing("d", &episode(vt, 10.0, 11.2, 4), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].event, Phase::Alert);
        assert_eq!(out[1].tier, Some(Tier::Emergency));
        assert_eq!(out[1].rule.as_deref(), Some("ventricular-tachycardia"));
        // Further beats at the same tier raise nothing.
        engine.on_ongoing("d", &episode(vt, 10.0, 11.6, 5), &mut out);
        assert_eq!(out.len(), 2);
        engine.on_rhythm(
            "d",
            &RhythmEvent::Closed(episode(vt, 10.0, 11.6, 5)),
            &mut out,
        );
        assert_eq!(out[2].event, Phase::End);
        assert_eq!(out[2].tier, Some(Tier::Emergency));
        assert!(!engine.has_open("d"));
    }

    #[test]
    fn a_slow_run_is_not_an_emergency() {
        let mut engine = AlertEngine::new(&default_rules());
        let mut out = Vec::new();
        // Four V beats at 92 /min: above the analyser's VT rate but not the rule's.
        let e = episode(EpisodeKind::VentricularTachycardia, 0.0, 1.95, 4);
        engine.on_rhythm("d", &RhythmEvent::Opened(e.clone()), &mut out);
        engine.on_rhythm("d", &RhythmEvent::Closed(e), &mut out);
        assert!(out.iter().all(|e| e.tier.is_none()), "{out:?}");
    }

    #[test]
    fn bradycardia_alerts_after_its_minute_only_when_slow_enough() {
        let mut engine = AlertEngine::new(&default_rules());
        let mut out = Vec::new();
        let b = EpisodeKind::Bradycardia;
        engine.on_rhythm(
            "d",
            &RhythmEvent::Opened(episode(b, 0.0, 10.0, 6)),
            &mut out,
        );
        engine.on_ongoing("d", &episode(b, 0.0, 59.0, 36), &mut out);
        assert_eq!(out.len(), 1, "not a minute yet");
        engine.on_ongoing("d", &episode(b, 0.0, 61.5, 36), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].tier, Some(Tier::Urgent));
        // 45 /min for two minutes: a bradycardia episode, but no alert.
        engine.on_rhythm(
            "e",
            &RhythmEvent::Opened(episode(b, 0.0, 10.0, 8)),
            &mut out,
        );
        engine.on_ongoing("e", &episode(b, 0.0, 120.0, 91), &mut out);
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn a_withdrawn_pause_says_so() {
        let mut engine = AlertEngine::new(&default_rules());
        let mut out = Vec::new();
        let a = episode(EpisodeKind::Asystole, 5.0, 8.2, 0);
        engine.on_rhythm("d", &RhythmEvent::Opened(a.clone()), &mut out);
        assert_eq!(out[0].tier, Some(Tier::Emergency));
        engine.on_rhythm("d", &RhythmEvent::Withdrawn(a), &mut out);
        assert_eq!(out[1].event, Phase::Withdrawn);
        assert!(!engine.has_open("d"));
    }

    #[test]
    fn more_than_eight_v_beats_a_minute_start_and_end_a_condition() {
        let mut engine = AlertEngine::new(&default_rules());
        let mut out = Vec::new();
        let mut t = 0i64;
        // 60 beats at 1 s, every 6th V: 10 V beats a minute, after the first minute.
        for i in 0..240 {
            t += 1_000_000;
            let class = if i % 6 == 0 && i < 120 {
                AamiClass::V
            } else {
                AamiClass::N
            };
            engine.on_beat("d", t, Some(class), &mut out);
        }
        let phases: Vec<Phase> = out.iter().map(|e| e.event).collect();
        assert_eq!(phases, [Phase::Start, Phase::End], "{out:?}");
        assert_eq!(out[0].kind, FREQUENT_V);
        assert_eq!(out[0].rule.as_deref(), Some("frequent-pvcs"));
        assert!(out[0].rate_per_min > 8.0);
        // Isolated V beats on sinus rhythm raise nothing.
        let mut quiet = Vec::new();
        for i in 0..300 {
            let class = if i % 20 == 0 {
                AamiClass::V
            } else {
                AamiClass::N
            };
            engine.on_beat("e", i * 1_000_000 + 1, Some(class), &mut quiet);
        }
        assert!(quiet.is_empty(), "{quiet:?}");
    }
}
