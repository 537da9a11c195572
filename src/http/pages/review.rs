//! Reviewing a device's ECG: the overview of devices, a device's range
//! (heart-rate trend, counts, flagged beats), one beat (its waveform and the
//! raw ±5 s strip) and the Holter summary (as a page and as CSV).

use super::layout;
use crate::clock::{format_datetime_local, format_utc};
use crate::http::range::{DeviceRange, Range, RangeQuery, stored_beat};
use crate::http::svg::{Chart, Marker, Series, beat_chart};
use crate::http::{Failure, HttpState, Viewer};
use crate::review;
use crate::store::{BeatQuery, Store, VerdictCounts};
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

fn range_form(device: &str, q: &RangeQuery, r: &Range, action: &str, with_filters: bool) -> Markup {
    let verdict = q.verdict.as_deref().unwrap_or("abnormal");
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
            "/devices/{device}?from={}&to={}&verdict={}&min_p={}{extra}",
            r.from_us,
            r.to_us,
            q.verdict.as_deref().unwrap_or("abnormal"),
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
            (counts_table(&counts))
            h2 { "Beats (" (q.verdict.as_deref().unwrap_or("abnormal")) ")" }
            @if beats.is_empty() {
                p { "None in this range." }
            } @else {
                div.scroll { table {
                    tr { th { "Time (UTC)" } th { "Verdict" } th { "p(abnormal)" } th { "Quality" } th { "Model" } }
                    @for b in &beats {
                        tr {
                            td { a href=(format!("/devices/{device}/beats/{}", b.r_time_us)) { (format_utc_ms(b.r_time_us)) } }
                            td class=(b.verdict.as_str()) { (b.verdict.as_str()) }
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
                tr { th { "Model" } td { (b.model) " (" (b.model_version) ")" } }
                tr { th { "Signal quality" } td { (b.quality.as_str()) @if b.searchback { " (found by search-back)" } } }
                tr { th { "RR before / after" } td { (rr(b.rr_prev_ms)) " / " (rr(b.rr_next_ms)) } }
            }
            h2 { "ECG, ±5 s (mV)" }
            (strip.render())
            p.legend { span.normal { "| normal" } " " span.abnormal { "| abnormal" } " " span.unreadable { "| unreadable" } }
            h2 { "The beat as classified (187 samples at 125 Hz)" }
            (beat_chart(&b.values, "125 Hz"))
        },
    ))
}

fn rr(ms: Option<f32>) -> String {
    ms.map(|v| format!("{v:.0} ms"))
        .unwrap_or_else(|| "–".into())
}

/// The raw ECG within ±5 s of `t` with every beat marked by its verdict.
pub(super) async fn beat_strip<S: Store>(
    store: &S,
    device: &str,
    t: i64,
) -> Result<Chart, Failure> {
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
    Ok(Chart {
        width: 900.0,
        height: 260.0,
        x_label: "seconds from this beat".into(),
        y_label: "mV".into(),
        series: vec![Series {
            points,
            class: "ecg",
            label: "ECG".into(),
        }],
        markers: marks
            .iter()
            .map(|m| Marker {
                x: (m.r_time_us - t) as f64 / 1e6,
                class: m.verdict.as_str(),
                title: format!(
                    "{} {}",
                    m.verdict.as_str(),
                    m.p_abnormal
                        .map(|p| format!("p={p:.2}"))
                        .unwrap_or_default()
                ),
                href: Some(format!("/devices/{device}/beats/{}", m.r_time_us)),
            })
            .collect(),
        x_clock: false,
    })
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
    let at = |a: Option<review::AtTime>, unit: &str, digits: usize| match a {
        Some(a) => format!("{:.digits$} {unit} at {}", a.value, format_utc(a.at_us)),
        None => "–".into(),
    };
    let link = |t: Option<i64>| t.map(|t| format!("/devices/{device}/beats/{t}"));
    Ok(layout(
        &format!("Holter summary: {device}"),
        Some(&p),
        html! {
            (range_form(&device, &q, &r, &format!("/devices/{device}/summary"), false))
            p { a href=(format!("/devices/{device}/summary.csv?from={}&to={}", r.from_us, r.to_us)) download { "Download as CSV" } }
            table.facts {
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
                tr { th { "Abnormal couplets" } td { (h.runs.couplets) } }
                tr { th { "Abnormal runs (≥ 3 beats)" } td { (h.runs.runs) } }
                tr { th { "Longest abnormal run" } td {
                    (h.runs.longest) " beats"
                    @if let Some(l) = link(h.runs.longest_at_us) { " (" a href=(l) { "starts " (format_utc(h.runs.longest_at_us.unwrap_or(0))) } ")" } } }
            }
            p.note { "Heart rates are one-minute means over minutes with at least 10 readable beats. Abnormal means the model's binary verdict; the models give no AAMI class." }
        },
    ))
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
