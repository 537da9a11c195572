//! Reviewing a device's ECG: the overview of devices, a device's range
//! (heart-rate trend, counts, flagged beats), one beat (its waveform and the
//! raw ±5 s strip) and the Holter summary (as a page, printable as the
//! report, and as CSV).

use super::layout;
use crate::clock::{MINUTE_US, format_datetime_local, format_utc};
use crate::formats::wfdb::AamiClass;
use crate::http::range::{DeviceRange, Range, RangeQuery, stored_beat};
use crate::http::svg::{Band, Chart, EcgStrip, Lane, PeakLabel, Series, Timeline, beat_chart};
use crate::http::{Failure, HttpState, Viewer};
use crate::review::{self, ClassBurden};
use crate::rhythm::hrv::{self, TimeDomainHrv};
use crate::rhythm::{Episode, EpisodeKind};
use crate::store::{BeatQuery, Store, Verdict, VerdictCounts};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

/// Half-width of the raw strip around a beat.
const STRIP_US: i64 = 5_000_000;

fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{:.1} %", v * 100.0))
        .unwrap_or_else(|| "–".into())
}

fn counts_table(c: &VerdictCounts) -> Markup {
    html! {
        table.counts {
            tr { th { "Beats" } th { "Normal" } th { "Abnormal" } th { "Unreadable" } }
            tr { td { (c.beats) } td { (c.normal()) } td.abnormal { (c.abnormal) } td { (c.unreadable) } }
        }
    }
}

pub(super) async fn overview<S: Store>(
    State(s): State<HttpState<S>>,
    Viewer(p): Viewer,
) -> Result<Markup, Failure> {
    let now = crate::clock::now_us();
    let rows = review::overview(&s.store, now).await?;
    Ok(layout(
        "Devices",
        Some(&p),
        html! {
            @if rows.is_empty() {
                p { "No device has sent ECG yet. Stream one over MQTT (see the wire format) or upload a recording." }
            } @else {
                div.scroll { table {
                    tr { th { "Device" } th { "Last seen (UTC)" } th { "Heart rate" } th { "Beats today" }
                         th { "Abnormal today" } th { "Readable" } }
                    @for d in &rows {
                        tr {
                            td { a href=(format!("/devices/{}", d.device)) { (d.device) }
                                 @if d.live { " " span.live { "live" } } }
                            td { (format_utc(d.last_seen_us)) }
                            td { @if let Some(hr) = d.heart_rate_bpm { (format!("{hr:.0} /min")) } @else { "–" } }
                            td { (d.today.beats) }
                            td.abnormal { (d.today.abnormal) }
                            td { (pct(d.readable_share)) }
                        }
                    }
                } }
            }
        },
    ))
}

/// Counts and burdens by AAMI class, when any beat of the range has a class.
fn class_table(burdens: &[ClassBurden]) -> Markup {
    let classified: i64 = burdens.iter().map(|b| b.beats).sum();
    html! {
        @if classified > 0 {
            table.counts {
                tr { th { "Class" } @for b in burdens { th { (b.class.as_str()) } } }
                tr { th { "Beats" } @for b in burdens { td { (b.beats) } } }
                tr { th { "% of classified" } @for b in burdens { td { (pct(b.share)) } } }
                tr { th { "Per hour" } @for b in burdens {
                    td { (b.per_hour.map(|v| format!("{v:.1}")).unwrap_or_else(|| "–".into())) } } }
            }
            p.note { (classified) " beats classified (N normal, S supraventricular, V ventricular, F fusion, Q unclassifiable); per hour of recorded minutes." }
        }
    }
}

/// A class letter for tables ("–" for none).
fn class_cell(c: Option<AamiClass>) -> &'static str {
    c.map_or("–", AamiClass::as_str)
}

fn range_form(device: &str, q: &RangeQuery, r: &Range, action: &str, with_filters: bool) -> Markup {
    let verdict = q.verdict_name();
    let class = q.class.as_deref().unwrap_or("");
    html! {
        form.filters method="get" action=(action) {
            label { "From (UTC)" input type="datetime-local" name="from" value=(format_datetime_local(r.from_us)); }
            label { "To (UTC)" input type="datetime-local" name="to" value=(format_datetime_local(r.to_us)); }
            @if with_filters {
                label { "Verdict" select name="verdict" {
                    @for v in ["abnormal", "normal", "unreadable", "all"] {
                        option value=(v) selected[v == verdict] { (v) }
                    }
                } }
                label { "Class" select name="class" {
                    option value="" selected[class.is_empty()] { "any" }
                    @for c in AamiClass::ALL {
                        option value=(c.as_str()) selected[c.as_str() == class] { (c.as_str()) }
                    }
                } }
                label { "Min. p(abnormal)" input type="number" name="min_p" min="0" max="1" step="0.01"
                    value=(q.min_p.clone().unwrap_or_default()); }
            }
            button type="submit" { "Show" }
            " " a href=(format!("/devices/{device}")) { "reset" }
        }
    }
}

pub(super) async fn device<S: Store>(
    State(s): State<HttpState<S>>,
    Viewer(p): Viewer,
    DeviceRange {
        device,
        query: q,
        range: r,
        ..
    }: DeviceRange,
) -> Result<Markup, Failure> {
    let (counts, trend) =
        review::counts_and_trend(&s.store, &device, r.from_us, r.to_us, 288).await?;
    let bq = q.beat_query(&device, &r, 500)?;
    let class_filter = bq.class;
    let beats = s.store.beat_marks(&bq).await?;
    let chart = Chart {
        width: 900.0,
        height: 260.0,
        x_label: "time (UTC)".into(),
        y_label: "heart rate (/min)".into(),
        series: vec![Series {
            points: trend.iter().map(|t| (t.t_us as f64, t.bpm)).collect(),
            class: "s1",
            label: "mean heart rate".into(),
        }],
        markers: Vec::new(),
        x_clock: true,
    };
    let base = |extra: &str| {
        format!(
            "/devices/{device}?from={}&to={}&verdict={}&class={}&min_p={}{extra}",
            r.from_us,
            r.to_us,
            q.verdict_name(),
            class_filter.map_or("", AamiClass::as_str),
            q.min_p.as_deref().unwrap_or("")
        )
    };
    let next = (beats.len() as u32 == bq.limit)
        .then(|| {
            beats
                .last()
                .map(|b| base(&format!("&after={}", b.r_time_us)))
        })
        .flatten();
    Ok(layout(
        &format!("Device {device}"),
        Some(&p),
        html! {
            (range_form(&device, &q, &r, &format!("/devices/{device}"), true))
            p { a href=(format!("/devices/{device}/summary?from={}&to={}", r.from_us, r.to_us)) { "Holter summary of this range" } }
            h2 { "Heart rate" }
            (chart.render())
            h2 { "Beats by verdict" }
            (counts_table(&counts.counts))
            @if counts.classes.classified() > 0 {
                h2 { "Beats by class" }
                (class_table(&counts.burdens()))
            }
            h2 { "Beats (" (q.verdict_name()) @if let Some(c) = class_filter { ", class " (c.as_str()) } ")" }
            @if beats.is_empty() {
                p { "None in this range." }
            } @else {
                div.scroll { table {
                    tr { th { "Time (UTC)" } th { "Verdict" } th { "Class" } th { "p(abnormal)" } th { "Quality" } th { "Model" } }
                    @for b in &beats {
                        tr {
                            td { a href=(format!("/devices/{device}/beats/{}", b.r_time_us)) { (format_utc_ms(b.r_time_us)) } }
                            td class=(b.verdict.as_str()) { (b.verdict.as_str()) }
                            td class=(b.verdict.as_str()) { (class_cell(b.class)) }
                            td { (b.p_abnormal.map(|p| format!("{p:.3}")).unwrap_or_else(|| "–".into())) }
                            td { (b.quality.as_str()) }
                            td { (b.model) }
                        }
                    }
                } }
            }
            p.pager {
                @if q.after.is_some() { a href=(base("")) { "First page" } " " }
                @if let Some(n) = next { a href=(n) { "Next page" } }
            }
        },
    ))
}

fn format_utc_ms(us: i64) -> String {
    format!("{}.{:03}", format_utc(us), us.rem_euclid(1_000_000) / 1000)
}

pub(super) async fn beat<S: Store>(
    State(s): State<HttpState<S>>,
    Viewer(p): Viewer,
    Path((device, t)): Path<(String, i64)>,
) -> Result<Markup, Failure> {
    let b = stored_beat(&s.store, &device, t).await?;
    let strip = beat_strip(&s.store, &device, t).await?;
    let prev = s.store.flagged_neighbour(&device, t, false).await?;
    let next = s.store.flagged_neighbour(&device, t, true).await?;
    Ok(layout(
        &format!("Beat of {device} at {}", format_utc_ms(t)),
        Some(&p),
        html! {
            p.pager {
                @if let Some(x) = prev { a href=(format!("/devices/{device}/beats/{x}")) { "← previous flagged" } " " }
                a href=(format!("/devices/{device}?from={}&to={}", t - 3_600_000_000, t + 3_600_000_000)) { "device, ±1 h" }
                @if let Some(x) = next { " " a href=(format!("/devices/{device}/beats/{x}")) { "next flagged →" } }
            }
            table.facts {
                tr { th { "Verdict" } td class=(b.verdict.as_str()) { (b.verdict.as_str()) } }
                tr { th { "p(abnormal)" } td { (b.p_abnormal.map(|p| format!("{p:.4}")).unwrap_or_else(|| "–".into())) } }
                tr { th { "AAMI class" } td class=(b.verdict.as_str()) { (class_cell(b.class)) } }
                @if let Some(p) = b.class_probs {
                    tr { th { "Class probabilities" } td {
                        @for c in AamiClass::ALL {
                            (c.as_str()) " " (format!("{:.3}", p[c.index()])) @if c != AamiClass::Q { " · " }
                        }
                    } }
                }
                tr { th { "Model" } td { (b.model) " (" (b.model_version) ")" } }
                tr { th { "Signal quality" } td { (b.quality.as_str()) @if b.searchback { " (found by search-back)" } } }
                tr { th { "RR before / after" } td { (rr(b.rr_prev_ms)) " / " (rr(b.rr_next_ms)) } }
            }
            h2 { "ECG, ±5 s (25 mm/s, 10 mm/mV)" }
            div.scroll { (strip.render()) }
            p.legend { "Above each R peak its class: " span.normal { "N" } " " span.abnormal { "S V F Q" } " " span.unreadable { "? unreadable" }
                "; beats of binary models: " span.normal { "| normal" } " " span.abnormal { "| abnormal" } }
            h2 { "The beat as classified (187 samples at 125 Hz)" }
            (beat_chart(&b.values, "125 Hz"))
        },
    ))
}

fn rr(ms: Option<f32>) -> String {
    ms.map(|v| format!("{v:.0} ms"))
        .unwrap_or_else(|| "–".into())
}

/// The raw ECG within ±5 s of `t` on ECG paper, every beat labelled by its
/// class (`?` when unreadable) or, for binary models, marked by its verdict.
pub(super) async fn beat_strip<S: Store>(
    store: &S,
    device: &str,
    t: i64,
) -> Result<EcgStrip, Failure> {
    let (from, to) = (t - STRIP_US, t + STRIP_US);
    let chunks = store.chunks_between(device, from, to).await?;
    let mut points = Vec::new();
    for c in &chunks {
        for (i, v) in c.samples.iter().enumerate() {
            let at = c.t0_us + (i as f64 / c.fs * 1e6) as i64;
            if (from..to).contains(&at) {
                points.push(((at - t) as f64 / 1e6, *v as f64));
            }
        }
    }
    let marks = store
        .beat_marks(&BeatQuery {
            from_us: from,
            to_us: to,
            ..BeatQuery::all(device, 200)
        })
        .await?;
    Ok(EcgStrip {
        points,
        from_s: -(STRIP_US as f64) / 1e6,
        to_s: STRIP_US as f64 / 1e6,
        beats: marks
            .iter()
            .map(|m| {
                let text = match (m.verdict, m.class) {
                    (Verdict::Unreadable, _) => "?".to_string(),
                    (_, Some(c)) => c.as_str().to_string(),
                    (_, None) => String::new(),
                };
                let what = m.class.map_or(m.verdict.as_str(), AamiClass::as_str);
                PeakLabel {
                    t_s: (m.r_time_us - t) as f64 / 1e6,
                    text,
                    class: m.verdict.as_str(),
                    title: format!(
                        "{what} {}",
                        m.p_abnormal
                            .map(|p| format!("p(abnormal)={p:.2}"))
                            .unwrap_or_default()
                    ),
                    href: Some(format!("/devices/{device}/beats/{}", m.r_time_us)),
                }
            })
            .collect(),
    })
}

/// A short name of an episode kind for the timeline's lanes.
fn lane_label(kind: EpisodeKind) -> &'static str {
    match kind {
        EpisodeKind::AtrialFibrillation => "AF",
        EpisodeKind::VentricularTachycardia => "VT",
        EpisodeKind::IdioventricularRhythm => "IVR",
        EpisodeKind::SupraventricularTachycardia => "SVT",
        EpisodeKind::SupraventricularRun => "SV run",
        EpisodeKind::Bigeminy => "Bigeminy",
        EpisodeKind::Trigeminy => "Trigeminy",
        EpisodeKind::Pause => "Pause",
        EpisodeKind::Asystole => "Asystole",
        EpisodeKind::Bradycardia => "Bradycardia",
        EpisodeKind::Tachycardia => "Tachycardia",
        EpisodeKind::SignalLoss => "Signal loss",
    }
}

/// The heart-rate trend of `[from_us, to_us)` with the episodes under it, one lane per kind.
fn episode_timeline(
    device: &str,
    from_us: i64,
    to_us: i64,
    trend: &[review::TrendPoint],
    episodes: &[Episode],
) -> Timeline {
    Timeline {
        width: 900.0,
        height: 240.0,
        from_us,
        to_us,
        trend: trend.iter().map(|t| (t.t_us as f64, t.bpm)).collect(),
        lanes: EpisodeKind::ALL
            .into_iter()
            .map(|kind| Lane {
                label: lane_label(kind).into(),
                class: format!("ep-{}", kind.as_str()),
                bands: episodes
                    .iter()
                    .filter(|e| e.kind == kind)
                    .map(|e| Band {
                        from_us: e.start_us,
                        to_us: e.end_us,
                        title: format!(
                            "{} at {}, {:.1} s",
                            kind.as_str().replace('_', " "),
                            format_utc(e.start_us),
                            e.duration_s()
                        ),
                        href: Some(format!("/devices/{device}/beats/{}", e.start_us)),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Minimum, mean and maximum heart rate of one part of the day, for the report's table.
fn rate_row(name: &str, h: &review::HeartRateStats) -> Markup {
    let at = |a: Option<review::AtTime>| match a {
        Some(a) => html! { (format!("{:.0} /min", a.value)) br; span.at { (format_utc(a.at_us)) } },
        None => html! { "–" },
    };
    html! {
        tr {
            th { (name) }
            td { (at(h.min)) }
            td { (h.mean.map(|v| format!("{v:.0} /min")).unwrap_or_else(|| "–".into())) }
            td { (at(h.max)) }
            td { (h.minutes) }
        }
    }
}

/// The HRV table, or why there is none.
fn hrv_table(hrv: Option<&TimeDomainHrv>) -> Markup {
    let ms = |v: Option<f64>| {
        v.map(|v| format!("{v:.1} ms"))
            .unwrap_or_else(|| "–".into())
    };
    html! {
        @if let Some(h) = hrv {
            table.facts.hrv {
                tr { th { "NN intervals" } td { (h.nn_intervals) " (" (h.nn_pairs) " successive differences)" } }
                tr { th { "Mean NN" } td { (ms(Some(h.mean_nn_ms))) " (" (format!("{:.0}", 60_000.0 / h.mean_nn_ms)) " /min)" } }
                tr { th { "SDNN" } td { (ms(Some(h.sdnn_ms))) } }
                tr { th { "SDANN" } td { (ms(h.sdann_ms)) } }
                tr { th { "SDNN index" } td { (ms(h.sdnn_index_ms)) } }
                tr { th { "RMSSD" } td { (ms(Some(h.rmssd_ms))) } }
                tr { th { "pNN50" } td { (format!("{:.1} %", h.pnn50)) } }
            }
            p.note { "Time domain, as the ESC/NASPE Task Force (1996) defines it. NN intervals: both beats normal (N; for binary models a normal verdict), 300–2000 ms, and within 20 % of the median of the intervals around them. Standard deviations are sample SDs (n − 1). RMSSD and pNN50 use differences of adjacent NN intervals only; pNN50 is a share of the NN intervals. SDANN and the SDNN index use consecutive five-minute segments from the first beat whose NN intervals cover at least half of them (here " (h.segments) "; none below two)." }
        } @else {
            p.empty { "Too few NN intervals for heart-rate variability (at least " (hrv::MIN_NN_INTERVALS) ")." }
        }
    }
}

pub(super) async fn summary<S: Store>(
    State(s): State<HttpState<S>>,
    Viewer(p): Viewer,
    DeviceRange {
        device,
        query: q,
        range: r,
        ..
    }: DeviceRange,
) -> Result<Markup, Failure> {
    let h = review::holter_summary(&s.store, &device, r.from_us, r.to_us).await?;
    // The timeline spans the recording (its minutes from the first to the last beat) within the range.
    let (span_from, span_to) = match (h.first_beat_us, h.last_beat_us) {
        (Some(a), Some(b)) => (
            (a.div_euclid(MINUTE_US) * MINUTE_US).max(r.from_us),
            ((b.div_euclid(MINUTE_US) + 1) * MINUTE_US).min(r.to_us),
        ),
        _ => (r.from_us, r.to_us),
    };
    let (trend, episodes, more) =
        review::timeline(&s.store, &device, span_from, span_to, 288).await?;
    let at = |a: Option<review::AtTime>, unit: &str, digits: usize| match a {
        Some(a) => format!("{:.digits$} {unit} at {}", a.value, format_utc(a.at_us)),
        None => "–".into(),
    };
    let link = |t: Option<i64>| t.map(|t| format!("/devices/{device}/beats/{t}"));
    let range = review::RangeCounts {
        counts: h.counts,
        classes: Default::default(),
        recorded_minutes: h.recorded_minutes,
    };
    // The binary lines: beats of binary models in the range (or no classified beat at all).
    let binary = h.classified == 0 || range.counts.beats - range.counts.unreadable > h.classified;
    let [night_from, night_to] = h.night_hours_utc;
    let overall = review::HeartRateStats {
        minutes: h.heart_rate_day.minutes + h.heart_rate_night.minutes,
        min: h.heart_rate_min,
        mean: h.heart_rate_mean,
        max: h.heart_rate_max,
    };
    Ok(layout(
        &format!("Holter summary: {device}"),
        Some(&p),
        html! {
            (range_form(&device, &q, &r, &format!("/devices/{device}/summary"), false))
            p.actions { a href=(format!("/devices/{device}/summary.csv?from={}&to={}", r.from_us, r.to_us)) download { "Download as CSV" } }
            section.report #recording {
            h2 { "Recording" }
            table.facts {
                tr { th { "Device" } td { (device) } }
                tr { th { "Range (UTC)" } td { (format_utc(h.from_us)) " – " (format_utc(h.to_us)) } }
                tr { th { "Recorded" } td { (h.recorded_minutes) " min with beats"
                    @if let (Some(a), Some(b)) = (h.first_beat_us, h.last_beat_us) { ", " (format_utc(a)) " – " (format_utc(b)) } } }
                tr { th { "Analysable" } td { (pct(h.analysable_share)) " of beats" } }
                tr { th { "Total beats" } td { (h.counts.beats) } }
                tr { th { "Normal / abnormal / unreadable" } td { (h.counts.normal()) " / " (h.counts.abnormal) " / " (h.counts.unreadable) } }
                tr { th { "Abnormal burden" } td { (pct(h.abnormal_burden)) " of readable beats" } }
                tr { th { "Heart rate min" } td { (at(h.heart_rate_min, "/min", 0)) } }
                tr { th { "Heart rate mean" } td { (h.heart_rate_mean.map(|v| format!("{v:.0} /min")).unwrap_or_else(|| "–".into())) } }
                tr { th { "Heart rate max" } td { (at(h.heart_rate_max, "/min", 0)) } }
                tr { th { "Longest RR pause" } td {
                    @if let Some(l) = link(h.longest_pause.map(|p| p.at_us)) { a href=(l) { (at(h.longest_pause, "ms", 0)) } } @else { "–" } } }
                @if binary {
                    (runs_rows("Abnormal", &h.runs, &link))
                }
            }
            }
            section.report #heart-rate {
            h2 { "Heart rate, day and night" }
            table.rates {
                tr { th {} th { "Minimum" } th { "Mean" } th { "Maximum" } th { "Minutes" } }
                (rate_row("Whole range", &overall))
                (rate_row(&format!("Day ({night_to:02}:00–{night_from:02}:00 UTC)"), &h.heart_rate_day))
                (rate_row(&format!("Night ({night_from:02}:00–{night_to:02}:00 UTC)"), &h.heart_rate_night))
            }
            p.note { "Night is " (format!("{night_from:02}:00–{night_to:02}:00")) " UTC: holterd keeps times in UTC and has no time-zone setting. Minimum and maximum are one-minute means (minutes with at least 10 readable beats) at the minute's start; the mean is over all readable RR intervals." }
            h3 { "Trend and rhythm episodes" }
            div.timeline { (episode_timeline(&device, span_from, span_to, &trend, &episodes).render()) }
            p.note { "From " (format_utc(span_from)) " to " (format_utc(span_to)) " UTC (the recording within the range): mean heart rate (line) and rhythm episodes (one lane per kind, also shaded over the trend); each episode links to the ECG at its onset."
                @if more { " Only the first " (review::MAX_TIMELINE_EPISODES) " episodes are drawn." } }
            }
            section.report #hrv {
            h2 { "Heart-rate variability" }
            (hrv_table(h.hrv.as_ref()))
            }
            @if h.classified > 0 {
                section.report #classes {
                h2 { "By AAMI class" }
                (class_table(&h.classes))
                table.facts {
                    @for (name, class, runs) in [("Ventricular (V)", AamiClass::V, &h.v_runs), ("Supraventricular (S)", AamiClass::S, &h.s_runs)] {
                        @if let Some(b) = h.classes.iter().find(|b| b.class == class) {
                            tr { th { (name) " beats" } td { (b.beats) " (" (pct(b.share)) " of classified, "
                                (b.per_hour.map(|v| format!("{v:.1}")).unwrap_or_else(|| "–".into())) " per hour)" } }
                        }
                        (runs_rows(name, runs, &link))
                    }
                }
                @for (name, runs) in [("V", &h.v_runs), ("S", &h.s_runs)] {
                    @if !runs.episodes.is_empty() {
                        h3 { (name) " couplets and runs" @if runs.episodes.len() == review::MAX_EPISODES { " (the first " (review::MAX_EPISODES) ")" } }
                        div.scroll { table {
                            tr { th { "First beat (UTC)" } th { "Beats" } th { "Rate" } }
                            @for e in &runs.episodes {
                                tr {
                                    td { a href=(format!("/devices/{device}/beats/{}", e.start_us)) { (format_utc_ms(e.start_us)) } }
                                    td { (e.beats) }
                                    td { (format!("{:.0} /min", e.bpm)) }
                                }
                            }
                        } }
                    }
                }
                }
            }
            @if !h.rhythm.is_empty() {
                section.report #rhythm {
                h2 { "Rhythm" }
                table.facts {
                    tr { th { "AF burden" } td { (pct(h.af_burden)) " of recorded time" } }
                }
                table {
                    tr { th { "Rhythm" } th { "Episodes" } th { "Total" } th { "Longest" } th { "Fastest" } }
                    @for l in &h.rhythm {
                        tr {
                            td { (l.kind.as_str().replace('_', " ")) }
                            td { (l.episodes) }
                            td { (format!("{:.0} s", l.total_s)) }
                            td { a href=(format!("/devices/{device}/beats/{}", l.longest_at_us)) { (format!("{:.1} s", l.longest_s)) } " at " (format_utc(l.longest_at_us)) }
                            td { @if l.fastest_bpm > 0.0 { (format!("{:.0} /min", l.fastest_bpm)) } @else { "–" } }
                        }
                    }
                }
                h3 { "Episodes" @if h.episodes.len() == review::MAX_EPISODES { " (the first " (review::MAX_EPISODES) ")" } }
                div.scroll { table {
                    tr { th { "Onset (UTC)" } th { "Rhythm" } th { "Duration" } th { "Beats" } th { "Rate" } }
                    @for e in &h.episodes {
                        tr {
                            td { a href=(format!("/devices/{device}/beats/{}", e.start_us)) { (format_utc_ms(e.start_us)) } }
                            td { (e.kind.as_str().replace('_', " ")) }
                            td { (format!("{:.1} s", e.duration_s())) }
                            td { (e.beats) }
                            td { (format!("{:.0}–{:.0} /min", e.min_bpm, e.max_bpm)) }
                        }
                    }
                } }
                }
            }
            p.note { "Heart rates are one-minute means over minutes with at least 10 readable beats. Abnormal means the binary verdict; abnormal couplets and runs count beats of binary models (no class). Consecutive means adjacent detected beats of one segment: a beat of another class, or an unreadable one, ends a run. Rates are the mean of a run's RR intervals." }
        },
    ))
}

/// A summary's couplet and run lines for one kind of beat, each linked to its first beat.
fn runs_rows(name: &str, r: &review::Runs, link: &dyn Fn(Option<i64>) -> Option<String>) -> Markup {
    let at = |t: Option<i64>, text: String| match link(t) {
        Some(l) => html! { " (" a href=(l) { (text) " " (format_utc(t.unwrap_or(0))) } ")" },
        None => html! {},
    };
    html! {
        tr { th { (name) " couplets" } td { (r.couplets) (at(r.first_couplet_us, "first".into())) } }
        tr { th { (name) " runs (≥ 3 beats)" } td { (r.runs) (at(r.first_run_us, "first".into())) } }
        tr { th { "Longest " (name.to_lowercase()) " run" } td { (r.longest) " beats" (at(r.longest_at_us, "starts".into())) } }
        @if let Some(bpm) = r.fastest_bpm {
            tr { th { "Fastest " (name.to_lowercase()) " run" } td { (format!("{bpm:.0} /min")) (at(r.fastest_at_us, "starts".into())) } }
        }
    }
}

pub(super) async fn summary_csv<S: Store>(
    State(s): State<HttpState<S>>,
    Viewer(_): Viewer,
    DeviceRange {
        device, range: r, ..
    }: DeviceRange,
) -> Result<Response, Failure> {
    let h = review::holter_summary(&s.store, &device, r.from_us, r.to_us).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"holter-{device}.csv\""),
            ),
        ],
        review::summary_csv(&h),
    )
        .into_response())
}
