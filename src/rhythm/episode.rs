//! Rhythm episodes, the events that announce them, and the tracker each
//! episode kind is built with.

/// What kind of rhythm an episode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EpisodeKind {
    /// Atrial fibrillation (irregularly irregular RR intervals).
    AtrialFibrillation,
    /// Three or more V beats in a row faster than the run-tachycardia rate.
    VentricularTachycardia,
    /// Three or more V beats in a row, not faster than it.
    IdioventricularRhythm,
    /// Three or more S beats in a row faster than the run-tachycardia rate.
    SupraventricularTachycardia,
    /// Three or more S beats in a row, not faster than it.
    SupraventricularRun,
    /// N-V cycles repeated.
    Bigeminy,
    /// N-N-V cycles repeated.
    Trigeminy,
    /// An RR interval of at least the pause threshold.
    Pause,
    /// An RR interval (or a silence) of at least the asystole threshold.
    Asystole,
    /// Heart rate below the bradycardia rate for the minimum duration.
    Bradycardia,
    /// Heart rate above the tachycardia rate for the minimum duration.
    Tachycardia,
    /// Unreadable signal for the minimum duration.
    SignalLoss,
}

impl EpisodeKind {
    /// Every kind, in report order.
    pub const ALL: [EpisodeKind; 12] = [
        EpisodeKind::AtrialFibrillation,
        EpisodeKind::VentricularTachycardia,
        EpisodeKind::IdioventricularRhythm,
        EpisodeKind::SupraventricularTachycardia,
        EpisodeKind::SupraventricularRun,
        EpisodeKind::Bigeminy,
        EpisodeKind::Trigeminy,
        EpisodeKind::Pause,
        EpisodeKind::Asystole,
        EpisodeKind::Bradycardia,
        EpisodeKind::Tachycardia,
        EpisodeKind::SignalLoss,
    ];

    /// The kind's name in the API, the store and events (snake case).
    pub fn as_str(self) -> &'static str {
        match self {
            EpisodeKind::AtrialFibrillation => "atrial_fibrillation",
            EpisodeKind::VentricularTachycardia => "ventricular_tachycardia",
            EpisodeKind::IdioventricularRhythm => "idioventricular_rhythm",
            EpisodeKind::SupraventricularTachycardia => "supraventricular_tachycardia",
            EpisodeKind::SupraventricularRun => "supraventricular_run",
            EpisodeKind::Bigeminy => "bigeminy",
            EpisodeKind::Trigeminy => "trigeminy",
            EpisodeKind::Pause => "pause",
            EpisodeKind::Asystole => "asystole",
            EpisodeKind::Bradycardia => "bradycardia",
            EpisodeKind::Tachycardia => "tachycardia",
            EpisodeKind::SignalLoss => "signal_loss",
        }
    }

    /// The kind a name from [`as_str`](Self::as_str) names.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// A rhythm episode: its kind, its extent and its rates.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Episode {
    /// What rhythm.
    pub kind: EpisodeKind,
    /// Onset, µs (the first beat of the episode, or the last beat before a pause).
    pub start_us: i64,
    /// Offset, µs (the last beat so far while open).
    pub end_us: i64,
    /// Beats in the episode.
    pub beats: u32,
    /// Slowest instantaneous rate in it, /min (0 when it has none).
    pub min_bpm: f32,
    /// Fastest instantaneous rate in it, /min.
    pub max_bpm: f32,
}

impl Episode {
    /// Duration, s.
    pub fn duration_s(&self) -> f64 {
        (self.end_us - self.start_us) as f64 / 1e6
    }
}

/// What the analyser reports as beats arrive.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RhythmEvent {
    /// An episode has begun (its end is where it stands now).
    Opened(Episode),
    /// An episode has ended; this is its final extent.
    Closed(Episode),
    /// An episode announced before its closing beat ([`super::RhythmAnalyser::advance`])
    /// did not happen as announced: a beat was found within the pause, the
    /// pause grew into asystole, or the stream ended in the silence. Never stored.
    Withdrawn(Episode),
}

impl RhythmEvent {
    /// The episode the event is about.
    pub fn episode(&self) -> &Episode {
        match self {
            RhythmEvent::Opened(e) | RhythmEvent::Closed(e) | RhythmEvent::Withdrawn(e) => e,
        }
    }
}

/// One candidate episode of one kind being built beat by beat: it is
/// reported (opened) once it has lasted long enough, and closed when its
/// condition stops holding; one never opened is dropped silently.
#[derive(Debug, Clone, Default)]
pub(super) struct Tracker {
    episode: Option<Episode>,
    opened: bool,
    /// Where the episode ends when closed, if earlier than its last beat
    /// (see [`mark`](Self::mark)).
    marked_us: Option<i64>,
}

impl Tracker {
    /// True while a candidate is being built.
    pub fn is_running(&self) -> bool {
        self.episode.is_some()
    }

    /// The episode under way, if it has been opened.
    pub fn ongoing(&self) -> Option<&Episode> {
        self.episode.as_ref().filter(|_| self.opened)
    }

    /// The candidate's kind, if one is being built.
    pub fn kind(&self) -> Option<EpisodeKind> {
        self.episode.as_ref().map(|e| e.kind)
    }

    /// Beats in the candidate so far (0 when none).
    pub fn beats(&self) -> u32 {
        self.episode.as_ref().map_or(0, |e| e.beats)
    }

    /// End of the candidate so far, µs (0 when none).
    pub fn last_us(&self) -> i64 {
        self.episode.as_ref().map_or(0, |e| e.end_us)
    }

    /// Begins a candidate at `at_us` with one beat.
    pub fn start(&mut self, kind: EpisodeKind, at_us: i64) {
        self.episode = Some(Episode {
            kind,
            start_us: at_us,
            end_us: at_us,
            beats: 1,
            min_bpm: 0.0,
            max_bpm: 0.0,
        });
        self.opened = false;
        self.marked_us = None;
    }

    /// Marks `at_us` as the latest beat that certainly belongs to the
    /// episode: when any mark is set, closing ends the episode there (rate
    /// episodes are decided over a window that outlasts them).
    pub fn mark(&mut self, at_us: i64) {
        self.marked_us = Some(at_us);
    }

    /// Adds a beat at `at_us` with instantaneous rate `bpm` (0: none).
    pub fn extend(&mut self, at_us: i64, bpm: f32) {
        if let Some(e) = &mut self.episode {
            e.end_us = e.end_us.max(at_us);
            e.beats += 1;
            if bpm > 0.0 {
                e.min_bpm = if e.min_bpm > 0.0 {
                    e.min_bpm.min(bpm)
                } else {
                    bpm
                };
                e.max_bpm = e.max_bpm.max(bpm);
            }
        }
    }

    /// Reports the candidate as opened once it spans at least `min_us`.
    pub fn open_once_longer_than(&mut self, min_us: i64, out: &mut Vec<super::RhythmEvent>) {
        if let Some(e) = &self.episode
            && !self.opened
            && e.end_us - e.start_us >= min_us
        {
            out.push(RhythmEvent::Opened(e.clone()));
            self.opened = true;
        }
    }

    /// Ends the candidate: reported as closed if it was opened, else dropped.
    pub fn close(&mut self, out: &mut Vec<super::RhythmEvent>) {
        let marked = self.marked_us.take();
        if let Some(mut e) = self.episode.take()
            && std::mem::take(&mut self.opened)
        {
            if let Some(m) = marked.filter(|m| (e.start_us..e.end_us).contains(m)) {
                e.end_us = m;
            }
            out.push(RhythmEvent::Closed(e));
        }
    }
}
