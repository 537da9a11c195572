//! What clinicians review, computed from the store: the device overview, the
//! heart-rate trend and the Holter summary a cardiologist receives. Pages, the
//! JSON API and the CSV export all use these, so they always agree.
//!
//! Everything is read from the per-minute rollup (`beat_minutes`) and the
//! flagged-beat index, never by scanning all beats, so a device with a
//! million beats stays fast.
//!
//! Runs of consecutive beats (abnormal beats of binary models, V or S beats)
//! are found among the flagged beats alone (every S, V, F or Q beat is
//! flagged): a flagged beat continues the run of the flagged beat before it
//! when its previous R peak (its time minus its previous RR interval, which
//! the extractor measures to the previous detected beat of any verdict) is
//! that beat. A normal or unreadable beat in between, a beat of another
//! class, or a segment start (no previous RR) ends a run. This reads about
//! 8,000 rows of an index for a 24-hour recording of 100,000 beats.

use crate::clock::{MINUTE_US, format_utc};
use crate::formats::wfdb::AamiClass;
use crate::rhythm::hrv::{self, TimeDomainHrv};
use crate::rhythm::{EpisodeKind, RhythmBeat};
use crate::store::{
    BeatMark, BeatQuery, ClassCounts, EpisodeQuery, EpisodeRow, FlaggedLink, MinuteRow, Store,
    StoreError, Verdict, VerdictCounts,
};
use serde::Serialize;

/// A device counts as live when it published within this long.
pub const LIVE_WITHIN_US: i64 = 120_000_000;
const DAY_US: i64 = 86_400_000_000;
/// Minutes with fewer readable RR intervals than this do not set the minimum or maximum rate.
const MIN_RR_PER_MINUTE: i64 = 10;
/// Night starts at this hour, UTC (holterd has no time-zone setting: the store keeps UTC).
pub const NIGHT_START_HOUR_UTC: i64 = 22;
/// Night ends at this hour, UTC.
pub const NIGHT_END_HOUR_UTC: i64 = 7;
/// Beats read per query when a summary reads a range's beats for HRV.
const HRV_PAGE: u32 = 50_000;
/// Episodes drawn at most on a summary's timeline.
pub const MAX_TIMELINE_EPISODES: usize = 5_000;

/// One row of the overview.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceOverview {
    pub device: String,
    pub last_seen_us: i64,
    /// Published within [`LIVE_WITHIN_US`].
    pub live: bool,
    /// Mean rate over the latest minute with beats (beats/min), when live.
    pub heart_rate_bpm: Option<f64>,
    /// Beats since 00:00 UTC today.
    pub today: VerdictCounts,
    /// Share of today's beats that were readable.
    pub readable_share: Option<f64>,
}

/// Every device, as of `now_us`.
pub async fn overview<S: Store>(store: &S, now_us: i64) -> Result<Vec<DeviceOverview>, StoreError> {
    let day_start_minute = now_us.div_euclid(DAY_US) * (DAY_US / MINUTE_US);
    let rows = store.devices(day_start_minute).await?;
    Ok(rows
        .into_iter()
        .map(|d| {
            let live = now_us - d.last_seen_us <= LIVE_WITHIN_US;
            let recent = d
                .last_minute
                .is_some_and(|m| now_us - m * MINUTE_US <= 2 * MINUTE_US + LIVE_WITHIN_US);
            DeviceOverview {
                heart_rate_bpm: d
                    .last_minute_rr_ms
                    .filter(|rr| live && recent && *rr > 0.0)
                    .map(|rr| 60_000.0 / rr),
                readable_share: share(d.since.beats - d.since.unreadable, d.since.beats),
                device: d.device,
                last_seen_us: d.last_seen_us,
                live,
                today: d.since,
            }
        })
        .collect())
}

/// The first minute wholly at or after `to_us`: the exclusive end of the
/// minutes a range `[from, to_us)` touches. Counts are kept per whole minute,
/// so a range is widened to the minutes it touches.
fn minute_after(to_us: i64) -> i64 {
    to_us.div_euclid(MINUTE_US) + i64::from(to_us.rem_euclid(MINUTE_US) != 0)
}

fn share(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// Mean heart rate of one minute, when it had readable RR intervals.
fn minute_bpm(m: &MinuteRow) -> Option<f64> {
    (m.rr_n > 0 && m.rr_sum_ms > 0.0).then(|| 60_000.0 * m.rr_n as f64 / m.rr_sum_ms)
}

/// A point of the heart-rate trend.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TrendPoint {
    /// Start of the bucket, µs since the epoch.
    pub t_us: i64,
    pub bpm: f64,
}

/// Mean heart rate over at most `buckets` equal spans of `[from_us, to_us)`.
pub fn heart_rate_trend(
    minutes: &[MinuteRow],
    from_us: i64,
    to_us: i64,
    buckets: usize,
) -> Vec<TrendPoint> {
    let span_min = ((to_us - from_us) / MINUTE_US).max(1);
    let per_bucket = (span_min / buckets.max(1) as i64).max(1);
    let first = from_us.div_euclid(MINUTE_US);
    let mut out: Vec<(i64, i64, f64)> = Vec::new();
    for m in minutes.iter().filter(|m| m.rr_n > 0) {
        let b = (m.minute - first).div_euclid(per_bucket);
        match out.last_mut() {
            Some((lb, n, sum)) if *lb == b => {
                *n += m.rr_n;
                *sum += m.rr_sum_ms;
            }
            _ => out.push((b, m.rr_n, m.rr_sum_ms)),
        }
    }
    out.into_iter()
        .filter(|(_, _, sum)| *sum > 0.0)
        .map(|(b, n, sum)| TrendPoint {
            t_us: (first + b * per_bucket) * MINUTE_US,
            bpm: 60_000.0 * n as f64 / sum,
        })
        .collect()
}

/// Beats of a range by verdict and by class, from the rollup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RangeCounts {
    pub counts: VerdictCounts,
    pub classes: ClassCounts,
    /// Minutes that hold beats (the recording time the hourly rates divide by).
    pub recorded_minutes: i64,
}

impl RangeCounts {
    /// Sums the rollup `minutes`.
    pub fn of(minutes: &[MinuteRow]) -> Self {
        let mut r = RangeCounts {
            recorded_minutes: minutes.len() as i64,
            ..RangeCounts::default()
        };
        for m in minutes {
            r.counts.add(&m.counts);
            r.classes.add(&m.classes);
        }
        r
    }

    /// Each class's count, share of classified beats and rate per recorded hour.
    pub fn burdens(&self) -> Vec<ClassBurden> {
        let hours = self.recorded_minutes as f64 / 60.0;
        AamiClass::ALL
            .into_iter()
            .map(|class| {
                let beats = self.classes.get(class);
                ClassBurden {
                    class,
                    beats,
                    share: share(beats, self.classes.classified()),
                    per_hour: (hours > 0.0).then(|| beats as f64 / hours),
                }
            })
            .collect()
    }

    /// Readable beats without a class (a binary model's).
    pub fn unclassified_readable(&self) -> i64 {
        self.counts.beats - self.counts.unreadable - self.classes.classified()
    }
}

/// One AAMI class's count and burden over a range.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClassBurden {
    pub class: AamiClass,
    pub beats: i64,
    /// Share of the classified beats.
    pub share: Option<f64>,
    /// Beats per hour of recording (minutes that hold beats).
    pub per_hour: Option<f64>,
}

/// Beats by verdict and class, and the heart-rate trend (at most `buckets` points), of `device` over `[from_us, to_us)`.
pub async fn counts_and_trend<S: Store>(
    store: &S,
    device: &str,
    from_us: i64,
    to_us: i64,
    buckets: usize,
) -> Result<(RangeCounts, Vec<TrendPoint>), StoreError> {
    let minutes = store
        .minutes(device, from_us.div_euclid(MINUTE_US), minute_after(to_us))
        .await?;
    Ok((
        RangeCounts::of(&minutes),
        heart_rate_trend(&minutes, from_us, to_us, buckets),
    ))
}

/// A value and when it happened.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AtTime {
    pub value: f64,
    pub at_us: i64,
}

/// Heart rate over a set of minutes: minute means (minutes with at least 10
/// readable RR intervals) for the minimum and maximum, and the mean of all
/// their readable RR intervals for the mean.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct HeartRateStats {
    /// Minutes with readable RR intervals.
    pub minutes: i64,
    pub min: Option<AtTime>,
    pub mean: Option<f64>,
    pub max: Option<AtTime>,
}

impl HeartRateStats {
    /// The rates of `minutes`.
    pub fn of<'a>(minutes: impl IntoIterator<Item = &'a MinuteRow>) -> Self {
        let (mut rr_n, mut rr_sum) = (0i64, 0.0f64);
        let mut stats = HeartRateStats::default();
        for m in minutes {
            if m.rr_n > 0 {
                stats.minutes += 1;
            }
            rr_n += m.rr_n;
            rr_sum += m.rr_sum_ms;
            if let Some(bpm) = minute_bpm(m).filter(|_| m.rr_n >= MIN_RR_PER_MINUTE) {
                let at = AtTime {
                    value: bpm,
                    at_us: m.minute * MINUTE_US,
                };
                if stats.min.is_none_or(|h| bpm < h.value) {
                    stats.min = Some(at);
                }
                if stats.max.is_none_or(|h| bpm > h.value) {
                    stats.max = Some(at);
                }
            }
        }
        stats.mean = (rr_sum > 0.0).then(|| 60_000.0 * rr_n as f64 / rr_sum);
        stats
    }
}

/// Whether `minute` (minutes since the epoch) is in the night, [`NIGHT_START_HOUR_UTC`] to [`NIGHT_END_HOUR_UTC`] UTC.
pub fn is_night(minute: i64) -> bool {
    let hour = minute.rem_euclid(DAY_US / MINUTE_US) / 60;
    !(NIGHT_END_HOUR_UTC..NIGHT_START_HOUR_UTC).contains(&hour)
}

/// A stored beat as HRV reads it: unreadable is `None`, a class is itself,
/// and a binary model's beat (no class) is N when its verdict is normal and
/// Q (not normal, class unknown) when abnormal, so its intervals are not NN.
pub fn hrv_beat(mark: &BeatMark) -> RhythmBeat {
    let class = match (mark.verdict, mark.class) {
        (Verdict::Unreadable, _) => None,
        (_, Some(c)) => Some(c),
        (Verdict::Normal, None) => Some(AamiClass::N),
        (Verdict::Abnormal, None) => Some(AamiClass::Q),
    };
    RhythmBeat {
        r_time_us: mark.r_time_us,
        class,
    }
}

/// Every beat of `device` in `[from_us, to_us)` as HRV reads it, by time,
/// read in pages of [`HRV_PAGE`] without waveforms (about 100,000 rows for 24 hours).
async fn range_beats<S: Store>(
    store: &S,
    device: &str,
    from_us: i64,
    to_us: i64,
) -> Result<Vec<RhythmBeat>, StoreError> {
    let mut out = Vec::new();
    let mut from = from_us;
    loop {
        let page = store
            .beat_marks(&BeatQuery {
                from_us: from,
                to_us,
                ..BeatQuery::all(device, HRV_PAGE)
            })
            .await?;
        out.extend(page.iter().map(hrv_beat));
        match page.last() {
            Some(b) if page.len() == HRV_PAGE as usize && b.r_time_us < to_us => {
                from = b.r_time_us + 1
            }
            _ => break,
        }
    }
    Ok(out)
}

/// What a summary's timeline draws: the heart-rate trend (at most `buckets`
/// points) and the episodes overlapping the range (the first
/// [`MAX_TIMELINE_EPISODES`] by onset; `true` when there were more).
pub async fn timeline<S: Store>(
    store: &S,
    device: &str,
    from_us: i64,
    to_us: i64,
    buckets: usize,
) -> Result<(Vec<TrendPoint>, Vec<crate::rhythm::Episode>, bool), StoreError> {
    let minutes = store
        .minutes(device, from_us.div_euclid(MINUTE_US), minute_after(to_us))
        .await?;
    let episodes = store
        .episodes(&EpisodeQuery {
            device: device.to_string(),
            from_us,
            to_us,
            kind: None,
            limit: MAX_TIMELINE_EPISODES as u32 + 1,
        })
        .await?;
    let more = episodes.len() > MAX_TIMELINE_EPISODES;
    Ok((
        heart_rate_trend(&minutes, from_us, to_us, buckets),
        episodes
            .into_iter()
            .take(MAX_TIMELINE_EPISODES)
            .map(|e| e.episode)
            .collect(),
        more,
    ))
}

/// Couplets and runs kept per kind of beat in a summary (the counts are never capped).
pub const MAX_EPISODES: usize = 100;

/// Consecutive beats of one kind (abnormal beats of a binary model, or one
/// AAMI class). Times are R times of first beats: the beat page's and the
/// beat API's id.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Runs {
    /// Exactly two in a row.
    pub couplets: u64,
    /// Three or more in a row.
    pub runs: u64,
    /// The longest sequence (couplets included), in beats, and when it started.
    pub longest: u64,
    pub longest_at_us: Option<i64>,
    /// The first couplet and the first run.
    pub first_couplet_us: Option<i64>,
    pub first_run_us: Option<i64>,
    /// The fastest run of three or more (mean rate of its RR intervals), and when it started.
    pub fastest_bpm: Option<f64>,
    pub fastest_at_us: Option<i64>,
    /// Couplets and runs by time, the first [`MAX_EPISODES`].
    pub episodes: Vec<Episode>,
}

/// One couplet or run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Episode {
    /// R time of its first beat.
    pub start_us: i64,
    pub beats: u64,
    /// Mean rate of its RR intervals.
    pub bpm: f64,
}

/// One rhythm's episodes in a summary's range (their parts inside it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RhythmLine {
    pub kind: EpisodeKind,
    pub episodes: u64,
    /// Time in the range, s.
    pub total_s: f64,
    /// The longest episode's duration (s) and onset.
    pub longest_s: f64,
    pub longest_at_us: i64,
    /// Fastest instantaneous rate in any of them, /min (0: none).
    pub fastest_bpm: f32,
}

/// Per-kind lines of `episodes` clipped to `[from_us, to_us)`, in report order.
pub fn rhythm_lines(episodes: &[EpisodeRow], from_us: i64, to_us: i64) -> Vec<RhythmLine> {
    EpisodeKind::ALL
        .into_iter()
        .filter_map(|kind| {
            let of: Vec<_> = episodes.iter().filter(|e| e.episode.kind == kind).collect();
            let longest = of
                .iter()
                .max_by_key(|e| e.episode.end_us - e.episode.start_us)?;
            let inside = |e: &&&EpisodeRow| {
                (e.episode.end_us.min(to_us) - e.episode.start_us.max(from_us)).max(0) as f64 / 1e6
            };
            Some(RhythmLine {
                kind,
                episodes: of.len() as u64,
                total_s: of.iter().map(|e| inside(&e)).sum(),
                longest_s: longest.episode.duration_s(),
                longest_at_us: longest.episode.start_us,
                fastest_bpm: of.iter().map(|e| e.episode.max_bpm).fold(0.0, f32::max),
            })
        })
        .collect()
}

/// The report a Holter service hands a cardiologist for one device and time range.
#[derive(Debug, Clone, Serialize)]
pub struct HolterSummary {
    pub device: String,
    pub from_us: i64,
    pub to_us: i64,
    /// Minutes that hold beats, and the first and last beat.
    pub recorded_minutes: i64,
    pub first_beat_us: Option<i64>,
    pub last_beat_us: Option<i64>,
    pub counts: VerdictCounts,
    /// Share of beats readable (not refused by the quality gate).
    pub analysable_share: Option<f64>,
    /// Share of readable beats that are abnormal.
    pub abnormal_burden: Option<f64>,
    /// Minute-mean heart rates (minutes with at least 10 readable RR intervals).
    pub heart_rate_min: Option<AtTime>,
    pub heart_rate_mean: Option<f64>,
    pub heart_rate_max: Option<AtTime>,
    /// The same by day and by night (minutes from [`NIGHT_START_HOUR_UTC`] to
    /// [`NIGHT_END_HOUR_UTC`] UTC, given in `night_hours_utc`).
    pub heart_rate_day: HeartRateStats,
    pub heart_rate_night: HeartRateStats,
    pub night_hours_utc: [i64; 2],
    /// Time-domain heart-rate variability of the range's beats ([`crate::rhythm::hrv`]);
    /// `None` with too few NN intervals.
    pub hrv: Option<TimeDomainHrv>,
    /// Longest RR interval between readable beats, ms, at the beat ending it.
    pub longest_pause: Option<AtTime>,
    /// Runs of abnormal beats without a class (a binary model's).
    pub runs: Runs,
    /// Beats with an AAMI class, and each class's count and burden.
    pub classified: i64,
    pub classes: Vec<ClassBurden>,
    /// Runs of V beats and of S beats.
    pub v_runs: Runs,
    pub s_runs: Runs,
    /// Rhythm episodes by kind (five-class models only).
    pub rhythm: Vec<RhythmLine>,
    /// Share of the recorded time in atrial fibrillation; `None` when nothing
    /// was recorded or no beat has a class (binary models give no rhythm).
    pub af_burden: Option<f64>,
    /// The episodes themselves, by onset, the first [`MAX_EPISODES`].
    pub episodes: Vec<crate::rhythm::Episode>,
}

/// Computes the summary of `device` over `[from_us, to_us)`.
pub async fn holter_summary<S: Store>(
    store: &S,
    device: &str,
    from_us: i64,
    to_us: i64,
) -> Result<HolterSummary, StoreError> {
    let minutes = store
        .minutes(device, from_us.div_euclid(MINUTE_US), minute_after(to_us))
        .await?;
    let range = RangeCounts::of(&minutes);
    let counts = range.counts;
    let heart_rate = HeartRateStats::of(&minutes);
    let heart_rate_day = HeartRateStats::of(minutes.iter().filter(|m| !is_night(m.minute)));
    let heart_rate_night = HeartRateStats::of(minutes.iter().filter(|m| is_night(m.minute)));
    let mut pause: Option<(f32, i64)> = None;
    for m in &minutes {
        if let Some(rr) = m.rr_max_ms
            && pause.is_none_or(|(p, _)| rr > p)
        {
            pause = Some((rr, m.minute));
        }
    }
    let longest_pause = match pause {
        Some((rr, minute)) => {
            let q = BeatQuery {
                from_us: minute * MINUTE_US,
                to_us: (minute + 1) * MINUTE_US,
                ..BeatQuery::all(device, 10_000)
            };
            let at = store
                .beat_marks(&q)
                .await?
                .into_iter()
                .find(|b| b.verdict != Verdict::Unreadable && b.rr_prev_ms == Some(rr))
                .map_or(minute * MINUTE_US, |b| b.r_time_us);
            Some(AtTime {
                value: rr as f64,
                at_us: at,
            })
        }
        None => None,
    };
    let episodes = store
        .episodes(&EpisodeQuery {
            device: device.to_string(),
            from_us,
            to_us,
            kind: None,
            limit: 100_000,
        })
        .await?;
    let rhythm = rhythm_lines(&episodes, from_us, to_us);
    let recorded_s = minutes.len() as f64 * 60.0;
    let af_burden = (recorded_s > 0.0 && range.classes.classified() > 0).then(|| {
        let af = rhythm
            .iter()
            .find(|l| l.kind == EpisodeKind::AtrialFibrillation)
            .map_or(0.0, |l| l.total_s);
        (af / recorded_s).min(1.0)
    });
    let flagged = store.flagged_links(device, from_us, to_us).await?;
    let runs = count_runs(&flagged, |l| l.class.is_none());
    let v_runs = count_runs(&flagged, |l| l.class == Some(AamiClass::V));
    let s_runs = count_runs(&flagged, |l| l.class == Some(AamiClass::S));
    let readable = counts.beats - counts.unreadable;
    let hrv = if counts.beats > 0 {
        hrv::time_domain(&range_beats(store, device, from_us, to_us).await?)
    } else {
        None
    };
    let (first_beat_us, last_beat_us) = if counts.beats > 0 {
        let first = minutes.first().map(|m| m.minute * MINUTE_US);
        let last = minutes.last().map(|m| (m.minute + 1) * MINUTE_US);
        beat_bounds(
            store,
            device,
            from_us.max(first.unwrap_or(from_us)),
            to_us.min(last.unwrap_or(to_us)),
        )
        .await?
    } else {
        (None, None)
    };
    Ok(HolterSummary {
        device: device.to_string(),
        from_us,
        to_us,
        recorded_minutes: minutes.len() as i64,
        first_beat_us,
        last_beat_us,
        counts,
        analysable_share: share(readable, counts.beats),
        abnormal_burden: share(counts.abnormal, readable),
        heart_rate_min: heart_rate.min,
        heart_rate_mean: heart_rate.mean,
        heart_rate_max: heart_rate.max,
        heart_rate_day,
        heart_rate_night,
        night_hours_utc: [NIGHT_START_HOUR_UTC, NIGHT_END_HOUR_UTC],
        hrv,
        longest_pause,
        runs,
        classified: range.classes.classified(),
        classes: range.burdens(),
        v_runs,
        s_runs,
        rhythm,
        af_burden,
        episodes: episodes
            .into_iter()
            .take(MAX_EPISODES)
            .map(|e| e.episode)
            .collect(),
    })
}

/// The first and last beat inside `[from_us, to_us)`.
async fn beat_bounds<S: Store>(
    store: &S,
    device: &str,
    from_us: i64,
    to_us: i64,
) -> Result<(Option<i64>, Option<i64>), StoreError> {
    let first = store
        .beat_marks(&BeatQuery {
            from_us,
            to_us,
            ..BeatQuery::all(device, 1)
        })
        .await?;
    // The last minute holds at most a few hundred beats.
    let last = store
        .beat_marks(&BeatQuery {
            from_us: (to_us - MINUTE_US).max(from_us),
            to_us,
            ..BeatQuery::all(device, 100_000)
        })
        .await?;
    Ok((
        first.first().map(|b| b.r_time_us),
        last.last().map(|b| b.r_time_us),
    ))
}

/// Couplets and runs among the flagged beats `flagged` (by time) of those
/// that are `member`s: a member continues the sequence of the member just
/// before it in `flagged` when its previous R peak is that beat (within 5 ms).
/// A flagged beat that is no member, or an unlinked one, ends a sequence.
pub fn count_runs(flagged: &[FlaggedLink], member: impl Fn(&FlaggedLink) -> bool) -> Runs {
    /// A sequence: first and last R time (µs), beats, sum of its RR intervals (ms).
    struct Open {
        start: i64,
        last: i64,
        beats: u64,
        rr_sum_ms: f64,
    }
    let mut runs = Runs::default();
    let close = |o: Open, runs: &mut Runs| {
        if o.beats < 2 {
            return;
        }
        let bpm = 60_000.0 * (o.beats - 1) as f64 / o.rr_sum_ms.max(f64::MIN_POSITIVE);
        if o.beats == 2 {
            runs.couplets += 1;
            runs.first_couplet_us.get_or_insert(o.start);
        } else {
            runs.runs += 1;
            runs.first_run_us.get_or_insert(o.start);
            if runs.fastest_bpm.is_none_or(|f| bpm > f) {
                runs.fastest_bpm = Some(bpm);
                runs.fastest_at_us = Some(o.start);
            }
        }
        if o.beats > runs.longest {
            runs.longest = o.beats;
            runs.longest_at_us = Some(o.start);
        }
        if runs.episodes.len() < MAX_EPISODES {
            runs.episodes.push(Episode {
                start_us: o.start,
                beats: o.beats,
                bpm,
            });
        }
    };
    let mut current: Option<Open> = None;
    for l in flagged {
        if !member(l) {
            if let Some(o) = current.take() {
                close(o, &mut runs);
            }
            continue;
        }
        let rr = l.rr_prev_ms.map(f64::from);
        let linked = match (&current, rr) {
            (Some(o), Some(rr)) => (l.r_time_us - (rr * 1000.0) as i64 - o.last).abs() <= 5_000,
            _ => false,
        };
        match (current.as_mut(), rr) {
            (Some(o), Some(rr)) if linked => {
                o.beats += 1;
                o.last = l.r_time_us;
                o.rr_sum_ms += rr;
            }
            _ => {
                if let Some(o) = current.take() {
                    close(o, &mut runs);
                }
                current = Some(Open {
                    start: l.r_time_us,
                    last: l.r_time_us,
                    beats: 1,
                    rr_sum_ms: 0.0,
                });
            }
        }
    }
    if let Some(o) = current {
        close(o, &mut runs);
    }
    runs
}

/// The summary as CSV rows (`metric,value,at_utc`), the downloadable report.
pub fn summary_csv(s: &HolterSummary) -> String {
    let mut out = String::from("metric,value,at_utc\n");
    let mut row = |k: &str, v: String, at: Option<i64>| {
        out.push_str(&format!(
            "{k},{v},{}\n",
            at.map(format_utc).unwrap_or_default()
        ));
    };
    let opt =
        |v: Option<f64>, digits: usize| v.map(|v| format!("{v:.digits$}")).unwrap_or_default();
    row("device", csv_field(&s.device), None);
    row("from", format_utc(s.from_us), None);
    row("to", format_utc(s.to_us), None);
    row("recorded_minutes", s.recorded_minutes.to_string(), None);
    row("first_beat", String::new(), s.first_beat_us);
    row("last_beat", String::new(), s.last_beat_us);
    row("beats", s.counts.beats.to_string(), None);
    row("normal", s.counts.normal().to_string(), None);
    row("abnormal", s.counts.abnormal.to_string(), None);
    row("unreadable", s.counts.unreadable.to_string(), None);
    row("analysable_share", opt(s.analysable_share, 4), None);
    row("abnormal_burden", opt(s.abnormal_burden, 4), None);
    row(
        "heart_rate_min_bpm",
        opt(s.heart_rate_min.map(|h| h.value), 1),
        s.heart_rate_min.map(|h| h.at_us),
    );
    row("heart_rate_mean_bpm", opt(s.heart_rate_mean, 1), None);
    row(
        "heart_rate_max_bpm",
        opt(s.heart_rate_max.map(|h| h.value), 1),
        s.heart_rate_max.map(|h| h.at_us),
    );
    for (part, h) in [("day", &s.heart_rate_day), ("night", &s.heart_rate_night)] {
        row(
            &format!("heart_rate_{part}_min_bpm"),
            opt(h.min.map(|h| h.value), 1),
            h.min.map(|h| h.at_us),
        );
        row(&format!("heart_rate_{part}_mean_bpm"), opt(h.mean, 1), None);
        row(
            &format!("heart_rate_{part}_max_bpm"),
            opt(h.max.map(|h| h.value), 1),
            h.max.map(|h| h.at_us),
        );
    }
    row(
        "night_hours_utc",
        format!("{:02}-{:02}", s.night_hours_utc[0], s.night_hours_utc[1]),
        None,
    );
    let hrv = s.hrv.as_ref();
    row(
        "hrv_nn_intervals",
        hrv.map(|h| h.nn_intervals.to_string()).unwrap_or_default(),
        None,
    );
    row("hrv_mean_nn_ms", opt(hrv.map(|h| h.mean_nn_ms), 1), None);
    row("hrv_sdnn_ms", opt(hrv.map(|h| h.sdnn_ms), 1), None);
    row("hrv_sdann_ms", opt(hrv.and_then(|h| h.sdann_ms), 1), None);
    row(
        "hrv_sdnn_index_ms",
        opt(hrv.and_then(|h| h.sdnn_index_ms), 1),
        None,
    );
    row("hrv_rmssd_ms", opt(hrv.map(|h| h.rmssd_ms), 1), None);
    row("hrv_pnn50_percent", opt(hrv.map(|h| h.pnn50), 2), None);
    row(
        "longest_pause_ms",
        opt(s.longest_pause.map(|p| p.value), 0),
        s.longest_pause.map(|p| p.at_us),
    );
    row(
        "abnormal_couplets",
        s.runs.couplets.to_string(),
        s.runs.first_couplet_us,
    );
    row(
        "abnormal_runs_3_or_more",
        s.runs.runs.to_string(),
        s.runs.first_run_us,
    );
    row(
        "longest_abnormal_run_beats",
        s.runs.longest.to_string(),
        s.runs.longest_at_us,
    );
    row("classified_beats", s.classified.to_string(), None);
    for b in &s.classes {
        let c = b.class.as_str();
        row(&format!("class_{c}_beats"), b.beats.to_string(), None);
        row(&format!("class_{c}_share"), opt(b.share, 4), None);
        row(&format!("class_{c}_per_hour"), opt(b.per_hour, 1), None);
    }
    for (c, r) in [("v", &s.v_runs), ("s", &s.s_runs)] {
        row(
            &format!("{c}_couplets"),
            r.couplets.to_string(),
            r.first_couplet_us,
        );
        row(
            &format!("{c}_runs_3_or_more"),
            r.runs.to_string(),
            r.first_run_us,
        );
        row(
            &format!("longest_{c}_run_beats"),
            r.longest.to_string(),
            r.longest_at_us,
        );
        row(
            &format!("fastest_{c}_run_bpm"),
            opt(r.fastest_bpm, 0),
            r.fastest_at_us,
        );
    }
    row("af_burden", opt(s.af_burden, 4), None);
    for l in &s.rhythm {
        let k = l.kind.as_str();
        row(&format!("{k}_episodes"), l.episodes.to_string(), None);
        row(&format!("{k}_total_s"), format!("{:.1}", l.total_s), None);
        row(
            &format!("{k}_longest_s"),
            format!("{:.1}", l.longest_s),
            Some(l.longest_at_us),
        );
    }
    out
}

/// Quotes a CSV field when it needs it; a leading formula character is defused.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rhythm_lines_count_clip_and_find_the_longest() {
        let ep = |kind, start_us: i64, end_us: i64, max_bpm| EpisodeRow {
            device: "d".into(),
            episode: crate::rhythm::Episode {
                kind,
                start_us,
                end_us,
                beats: 3,
                min_bpm: 60.0,
                max_bpm,
            },
            ongoing: false,
            analyser: "a".into(),
        };
        let (af, p) = (EpisodeKind::AtrialFibrillation, EpisodeKind::Pause);
        let rows = [
            ep(af, 0, 100_000_000, 120.0),
            ep(p, 10_000_000, 12_500_000, 24.0),
            ep(af, 200_000_000, 230_000_000, 150.0),
        ];
        let lines = rhythm_lines(&rows, 50_000_000, 1_000_000_000);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].kind, af, "report order: AF first");
        assert_eq!(lines[0].episodes, 2);
        assert_eq!(lines[0].total_s, 50.0 + 30.0, "the part inside the range");
        assert_eq!((lines[0].longest_s, lines[0].longest_at_us), (100.0, 0));
        assert_eq!(lines[0].fastest_bpm, 150.0);
        assert_eq!(lines[1].kind, p);
        assert_eq!(lines[1].total_s, 0.0, "outside the range");
    }

    /// Flagged beats at `i` × 800 ms with the class given (every beat linked
    /// to the beat just before it in time, as the extractor measures RR).
    fn links(beats: &[(i64, Option<AamiClass>)]) -> Vec<FlaggedLink> {
        beats
            .iter()
            .map(|&(i, class)| FlaggedLink {
                r_time_us: i * 800_000,
                rr_prev_ms: Some(800.0),
                class,
            })
            .collect()
    }

    #[test]
    fn runs_follow_rr_links() {
        let t = |i: i64| i * 800_000;
        // Binary: 1,2 (couplet), 5,6,7,8 (run of 4), 10 (single).
        let flagged = links(&[1, 2, 5, 6, 7, 8, 10].map(|i| (i, None)));
        let r = count_runs(&flagged, |_| true);
        assert_eq!((r.couplets, r.runs, r.longest), (1, 1, 4));
        assert_eq!(r.longest_at_us, Some(t(5)));
        assert_eq!(r.first_couplet_us, Some(t(1)));
        assert_eq!(r.episodes.len(), 2);
        // A gap (no previous RR) breaks a run.
        let mut gap = links(&[(1, None), (2, None)]);
        gap[1].rr_prev_ms = None;
        assert_eq!(count_runs(&gap, |_| true).couplets, 0);
    }

    #[test]
    fn class_runs_are_broken_by_other_beats() {
        use AamiClass::{S, V};
        let t = |i: i64| i * 800_000;
        let v = |l: &FlaggedLink| l.class == Some(V);
        // V V: a couplet. V V V (with an N beat at 5 between): the N breaks
        // the later sequence into a single and a couplet. V V V V at 10–13:
        // a run of 4. An unreadable beat (at 16, not flagged) splits
        // 15,17,18 into a single and a couplet. V S V: singles.
        let flagged = links(&[
            (1, Some(V)),
            (2, Some(V)),
            (4, Some(V)),
            (6, Some(V)),
            (7, Some(V)),
            (10, Some(V)),
            (11, Some(V)),
            (12, Some(V)),
            (13, Some(V)),
            (15, Some(V)),
            (17, Some(V)),
            (18, Some(V)),
            (20, Some(V)),
            (21, Some(S)),
            (22, Some(V)),
        ]);
        let r = count_runs(&flagged, v);
        assert_eq!((r.couplets, r.runs), (3, 1), "{r:?}");
        assert_eq!((r.longest, r.longest_at_us), (4, Some(t(10))));
        assert_eq!(r.first_couplet_us, Some(t(1)));
        assert_eq!(r.first_run_us, Some(t(10)));
        assert_eq!(
            r.episodes
                .iter()
                .map(|e| (e.start_us, e.beats))
                .collect::<Vec<_>>(),
            [(t(1), 2), (t(6), 2), (t(10), 4), (t(17), 2)]
        );
        // The S beats: none consecutive.
        let s = count_runs(&flagged, |l| l.class == Some(S));
        assert_eq!((s.couplets, s.runs, s.longest), (0, 0, 0));
    }

    #[test]
    fn the_fastest_run_is_the_one_with_the_shortest_rr() {
        use AamiClass::V;
        let at = |t_ms: i64, rr: f32| FlaggedLink {
            r_time_us: t_ms * 1000,
            rr_prev_ms: Some(rr),
            class: Some(V),
        };
        // A run of 3 at 150 /min (400 ms), a run of 5 at 120 /min (500 ms).
        let flagged = [
            at(10_000, 800.0),
            at(10_400, 400.0),
            at(10_800, 400.0),
            at(20_000, 900.0),
            at(20_500, 500.0),
            at(21_000, 500.0),
            at(21_500, 500.0),
            at(22_000, 500.0),
        ];
        let r = count_runs(&flagged, |_| true);
        assert_eq!(
            (r.runs, r.longest, r.longest_at_us),
            (2, 5, Some(20_000_000))
        );
        assert_eq!(r.fastest_at_us, Some(10_000_000));
        assert!((r.fastest_bpm.unwrap_or(0.0) - 150.0).abs() < 1e-9);
        assert!((r.episodes[1].bpm - 120.0).abs() < 1e-9);
    }

    #[test]
    fn burdens_are_shares_of_classified_beats_per_recorded_hour() {
        let m = |minute: i64, classes: [i64; 5]| MinuteRow {
            minute,
            counts: VerdictCounts {
                beats: classes.iter().sum::<i64>() + 10,
                abnormal: classes[1..].iter().sum(),
                unreadable: 5,
            },
            classes: ClassCounts { counts: classes },
            rr_n: 0,
            rr_sum_ms: 0.0,
            rr_max_ms: None,
        };
        let r = RangeCounts::of(&[m(0, [60, 10, 30, 0, 0]), m(1, [90, 0, 10, 0, 0])]);
        assert_eq!(r.recorded_minutes, 2);
        assert_eq!(r.unclassified_readable(), 10);
        let b = r.burdens();
        assert_eq!(b[2].class, AamiClass::V);
        assert_eq!(b[2].beats, 40);
        assert_eq!(b[2].share, Some(0.2));
        assert_eq!(b[2].per_hour, Some(1200.0));
        assert_eq!(RangeCounts::default().burdens()[0].share, None);
    }

    #[test]
    fn trend_buckets_are_rr_weighted() {
        let m = |minute: i64, n: i64, sum: f64| MinuteRow {
            minute,
            counts: VerdictCounts::default(),
            classes: ClassCounts::default(),
            rr_n: n,
            rr_sum_ms: sum,
            rr_max_ms: None,
        };
        let minutes = [m(0, 60, 60_000.0), m(1, 120, 60_000.0), m(5, 30, 60_000.0)];
        let t = heart_rate_trend(&minutes, 0, 6 * MINUTE_US, 3);
        assert_eq!(
            t,
            [
                TrendPoint { t_us: 0, bpm: 90.0 },
                TrendPoint {
                    t_us: 4 * MINUTE_US,
                    bpm: 30.0
                }
            ]
        );
    }

    #[test]
    fn heart_rate_is_split_into_day_and_night_at_22_and_7_utc() {
        // Minutes of 2025-01-01 (UTC) at a rate given by (readable RR count, sum).
        let day0 = 1_735_689_600_000_000 / MINUTE_US;
        let m = |h: i64, min: i64, n: i64, sum: f64| MinuteRow {
            minute: day0 + h * 60 + min,
            counts: VerdictCounts::default(),
            classes: ClassCounts::default(),
            rr_n: n,
            rr_sum_ms: sum,
            rr_max_ms: None,
        };
        let minutes = [
            m(6, 59, 50, 60_000.0),  // night, 50 /min
            m(7, 0, 80, 60_000.0),   // day, 80 /min
            m(12, 0, 120, 60_000.0), // day, 120 /min
            m(21, 59, 60, 60_000.0), // day, 60 /min
            m(22, 0, 40, 60_000.0),  // night, 40 /min
            m(23, 0, 5, 3_000.0),    // night, 100 /min but too few beats for min/max
        ];
        assert_eq!(
            minutes
                .iter()
                .map(|m| is_night(m.minute))
                .collect::<Vec<_>>(),
            [true, false, false, false, true, true]
        );
        let day = HeartRateStats::of(minutes.iter().filter(|m| !is_night(m.minute)));
        let night = HeartRateStats::of(minutes.iter().filter(|m| is_night(m.minute)));
        let at = |h: i64, min: i64| (day0 + h * 60 + min) * MINUTE_US;
        assert_eq!(day.minutes, 3);
        assert_eq!(
            day.min.map(|a| (a.value, a.at_us)),
            Some((60.0, at(21, 59)))
        );
        assert_eq!(
            day.max.map(|a| (a.value, a.at_us)),
            Some((120.0, at(12, 0)))
        );
        assert_eq!(day.mean, Some(60_000.0 * 260.0 / 180_000.0));
        assert_eq!(night.minutes, 3);
        assert_eq!(
            night.min.map(|a| (a.value, a.at_us)),
            Some((40.0, at(22, 0)))
        );
        assert_eq!(
            night.max.map(|a| (a.value, a.at_us)),
            Some((50.0, at(6, 59)))
        );
        // The mean counts the sparse minute's intervals too.
        assert_eq!(night.mean, Some(60_000.0 * 95.0 / 123_000.0));
        assert_eq!(HeartRateStats::of(&[]), HeartRateStats::default());
        // Before the epoch the hour still comes out right.
        assert!(is_night(-1) && !is_night(-(2 * 60 + 1)));
    }

    #[test]
    fn hrv_reads_binary_verdicts_as_n_or_not_n() {
        let mark = |verdict, class| BeatMark {
            r_time_us: 7,
            rr_prev_ms: None,
            quality: crate::dsp::Quality::Good,
            verdict,
            p_abnormal: None,
            class,
            model: "m".into(),
        };
        let class = |v, c| hrv_beat(&mark(v, c)).class;
        assert_eq!(class(Verdict::Unreadable, None), None);
        assert_eq!(class(Verdict::Normal, None), Some(AamiClass::N));
        assert_eq!(class(Verdict::Abnormal, None), Some(AamiClass::Q));
        assert_eq!(
            class(Verdict::Abnormal, Some(AamiClass::V)),
            Some(AamiClass::V)
        );
        assert_eq!(
            class(Verdict::Normal, Some(AamiClass::N)),
            Some(AamiClass::N)
        );
        assert_eq!(hrv_beat(&mark(Verdict::Normal, None)).r_time_us, 7);
    }

    #[test]
    fn ranges_widen_to_the_minutes_they_touch() {
        assert_eq!(minute_after(3 * MINUTE_US), 3);
        assert_eq!(minute_after(3 * MINUTE_US + 1), 4);
    }

    #[test]
    fn csv_fields_are_defused() {
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
    }
}
