//! What clinicians review, computed from the store: the device overview, the
//! heart-rate trend and the Holter summary a cardiologist receives. Pages, the
//! JSON API and the CSV export all use these, so they always agree.
//!
//! Everything is read from the per-minute rollup (`beat_minutes`) and the
//! flagged-beat index, never by scanning all beats, so a device with a
//! million beats stays fast.

use crate::clock::{MINUTE_US, format_utc};
use crate::store::{BeatQuery, MinuteRow, Store, StoreError, Verdict, VerdictCounts};
use serde::Serialize;

/// A device counts as live when it published within this long.
pub const LIVE_WITHIN_US: i64 = 120_000_000;
const DAY_US: i64 = 86_400_000_000;
/// Minutes with fewer readable RR intervals than this do not set the minimum or maximum rate.
const MIN_RR_PER_MINUTE: i64 = 10;

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

/// Beats by verdict and the heart-rate trend (at most `buckets` points) of `device` over `[from_us, to_us)`.
pub async fn counts_and_trend<S: Store>(
    store: &S,
    device: &str,
    from_us: i64,
    to_us: i64,
    buckets: usize,
) -> Result<(VerdictCounts, Vec<TrendPoint>), StoreError> {
    let minutes = store
        .minutes(device, from_us.div_euclid(MINUTE_US), minute_after(to_us))
        .await?;
    let mut counts = VerdictCounts::default();
    minutes.iter().for_each(|m| counts.add(&m.counts));
    Ok((counts, heart_rate_trend(&minutes, from_us, to_us, buckets)))
}

/// A value and when it happened.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AtTime {
    pub value: f64,
    pub at_us: i64,
}

/// Consecutive abnormal beats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Runs {
    /// Exactly two abnormal beats in a row.
    pub couplets: u64,
    /// Three or more in a row.
    pub runs: u64,
    /// The longest sequence, in beats, and when it started.
    pub longest: u64,
    pub longest_at_us: Option<i64>,
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
    /// Longest RR interval between readable beats, ms, at the beat ending it.
    pub longest_pause: Option<AtTime>,
    pub runs: Runs,
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
    let mut counts = VerdictCounts::default();
    let (mut rr_n, mut rr_sum) = (0i64, 0.0f64);
    let (mut hr_min, mut hr_max): (Option<AtTime>, Option<AtTime>) = (None, None);
    let mut pause: Option<(f32, i64)> = None;
    for m in &minutes {
        counts.add(&m.counts);
        rr_n += m.rr_n;
        rr_sum += m.rr_sum_ms;
        if let Some(bpm) = minute_bpm(m).filter(|_| m.rr_n >= MIN_RR_PER_MINUTE) {
            let at = AtTime {
                value: bpm,
                at_us: m.minute * MINUTE_US,
            };
            if hr_min.is_none_or(|h| bpm < h.value) {
                hr_min = Some(at);
            }
            if hr_max.is_none_or(|h| bpm > h.value) {
                hr_max = Some(at);
            }
        }
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
    let flagged = store.flagged_links(device, from_us, to_us).await?;
    let runs = count_runs(
        flagged
            .iter()
            .map(|(t, rr)| (*t, rr.map(|rr| (rr as f64 * 1000.0) as i64))),
    );
    let readable = counts.beats - counts.unreadable;
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
        heart_rate_min: hr_min,
        heart_rate_mean: (rr_sum > 0.0).then(|| 60_000.0 * rr_n as f64 / rr_sum),
        heart_rate_max: hr_max,
        longest_pause,
        runs,
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

/// Counts runs among flagged beats given as (R time µs, previous RR µs): two
/// flagged beats are consecutive when the later one's previous R peak is the
/// earlier one (within 5 ms).
pub fn count_runs(flagged: impl Iterator<Item = (i64, Option<i64>)>) -> Runs {
    let mut runs = Runs::default();
    let close = |len: u64, start: i64, runs: &mut Runs| {
        match len {
            2 => runs.couplets += 1,
            n if n >= 3 => runs.runs += 1,
            _ => {}
        }
        if len >= 2 && len > runs.longest {
            runs.longest = len;
            runs.longest_at_us = Some(start);
        }
    };
    let mut current: Option<(i64, u64, i64)> = None; // (start, length, last R)
    for (t, rr) in flagged {
        current = match current {
            Some((start, len, last)) if rr.is_some_and(|rr| (t - rr - last).abs() <= 5_000) => {
                Some((start, len + 1, t))
            }
            Some((start, len, _)) => {
                close(len, start, &mut runs);
                Some((t, 1, t))
            }
            None => Some((t, 1, t)),
        };
    }
    if let Some((start, len, _)) = current {
        close(len, start, &mut runs);
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
    row(
        "longest_pause_ms",
        opt(s.longest_pause.map(|p| p.value), 0),
        s.longest_pause.map(|p| p.at_us),
    );
    row("abnormal_couplets", s.runs.couplets.to_string(), None);
    row("abnormal_runs_3_or_more", s.runs.runs.to_string(), None);
    row(
        "longest_abnormal_run_beats",
        s.runs.longest.to_string(),
        s.runs.longest_at_us,
    );
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
    fn runs_follow_rr_links() {
        // Beats every 800 ms; flagged: 1,2 (couplet), 5,6,7,8 (run of 4), 10 (single).
        let t = |i: i64| i * 800_000;
        let flagged = [1, 2, 5, 6, 7, 8, 10].map(|i| (t(i), Some(800_000)));
        let r = count_runs(flagged.into_iter());
        assert_eq!(
            r,
            Runs {
                couplets: 1,
                runs: 1,
                longest: 4,
                longest_at_us: Some(t(5))
            }
        );
        // A gap (no previous RR) breaks a run.
        let r = count_runs([(t(1), Some(800_000)), (t(2), None)].into_iter());
        assert_eq!(r.couplets, 0);
    }

    #[test]
    fn trend_buckets_are_rr_weighted() {
        let m = |minute: i64, n: i64, sum: f64| MinuteRow {
            minute,
            counts: VerdictCounts::default(),
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
