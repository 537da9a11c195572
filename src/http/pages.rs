//! The clinician's pages, rendered on the server as HTML with inline SVG plots
//! (no JavaScript needed; one small script only adds an upload progress bar).
//!
//! Overview → device (heart-rate trend, counts, flagged beats) → beat (its
//! waveform and the ±5 s strip) → Holter summary (and its CSV); models;
//! uploads with their results and evaluation; login and logout.

use super::jobs::{self, JobState};
use super::svg::{Chart, Marker, Series, beat_chart};
use super::upload;
use super::{Failure, HttpState, Uploader, Viewer, auth::Principal};
use crate::clock::MINUTE_US;
use crate::clock::{self, format_datetime_local, format_utc};
use crate::model::metrics::BinaryMetrics;
use crate::review;
use crate::store::{BeatQuery, Store, Verdict, VerdictCounts};
use axum::Router;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

/// Flagged beats per page of the device view.
pub const PAGE_SIZE: u32 = 50;
const DAY_US: i64 = 86_400_000_000;
/// Half-width of the raw strip around a beat.
const STRIP_US: i64 = 5_000_000;

/// The seed paper's published test results (accuracy, precision, recall, F1,
/// kappa, ROC AUC) per architecture; `None` where the paper gives none.
pub const PAPER: [(&str, [Option<f64>; 6]); 3] = [
    (
        "cnn-lstm",
        [
            Some(0.9731),
            Some(0.8943),
            Some(0.9571),
            Some(0.9246),
            Some(0.9083),
            Some(0.9668),
        ],
    ),
    (
        "cnn-lstm-dropout",
        [Some(0.9633), None, None, Some(0.8998), None, None],
    ),
    (
        "transformer",
        [Some(0.9635), None, None, Some(0.8975), None, None],
    ),
];

pub fn routes<S: Store>() -> Router<HttpState<S>> {
    Router::new()
        .route("/", get(overview::<S>))
        .route("/login", get(login_form).post(login::<S>))
        .route("/logout", post(logout::<S>))
        .route("/devices/{device}", get(device::<S>))
        .route("/devices/{device}/beats/{t}", get(beat::<S>))
        .route("/devices/{device}/summary", get(summary::<S>))
        .route("/devices/{device}/summary.csv", get(summary_csv::<S>))
        .route("/models", get(models::<S>))
        .route("/uploads", get(uploads::<S>).post(upload::<S>))
        .route("/uploads/jobs/{job}", get(job::<S>))
        .route("/uploads/{id}", get(upload_result::<S>))
        .route("/uploads/{id}/beats/{row}", get(upload_beat::<S>))
        .route("/static/style.css", get(style))
        .route("/static/upload.js", get(script))
        .route("/static/favicon.svg", get(favicon))
        .route("/favicon.ico", get(favicon))
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        error_page(self.status, &self.message).into_response()
    }
}

fn layout(title: &str, who: Option<&Principal>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · holterd" }
                link rel="stylesheet" href="/static/style.css";
                link rel="icon" href="/static/favicon.svg" type="image/svg+xml";
            }
            body {
                header {
                    nav {
                        a.brand href="/" { "holterd" }
                        a href="/" { "Devices" }
                        a href="/uploads" { "Uploads" }
                        a href="/models" { "Models" }
                        @if let Some(p) = who {
                            span.who { (p.name) " (" (p.role.as_str()) ")" }
                            @if let Some(csrf) = &p.csrf {
                                form.logout method="post" action="/logout" {
                                    input type="hidden" name="csrf" value=(csrf);
                                    button type="submit" { "Log out" }
                                }
                            }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// A page saying what went wrong.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    (
        status,
        layout(
            title,
            None,
            html! { p.error { (message) } p { a href="/" { "Back to the overview" } } },
        ),
    )
        .into_response()
}

/// The login form; `next` is where to go afterwards.
pub fn login_page(next: &str, error: Option<&str>) -> Markup {
    layout(
        "Log in",
        None,
        html! {
            @if let Some(e) = error { p.error { (e) } }
            form.card method="post" action="/login" {
                input type="hidden" name="next" value=(next);
                label { "Name" input type="text" name="name" autocomplete="username" required autofocus; }
                label { "Password" input type="password" name="password" autocomplete="current-password" required; }
                button type="submit" { "Log in" }
            }
        },
    )
}

async fn login_form(Query(q): Query<NextQuery>) -> Markup {
    login_page(&safe_next(q.next.as_deref()), None)
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
struct LoginForm {
    name: String,
    password: String,
    next: Option<String>,
}

/// Only local paths, so the login cannot be used to redirect elsewhere.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.into(),
        _ => "/".into(),
    }
}

async fn login<S: Store>(
    State(s): State<HttpState<S>>,
    axum::Form(f): axum::Form<LoginForm>,
) -> Response {
    let next = safe_next(f.next.as_deref());
    let web = s.web.clone();
    let name = f.name.clone();
    let outcome = tokio::task::spawn_blocking(move || web.accounts.login(&name, &f.password)).await;
    match outcome {
        Ok(Ok(cookie)) => {
            tracing::info!(user = %f.name, "login");
            (
                StatusCode::SEE_OTHER,
                [(header::SET_COOKIE, cookie), (header::LOCATION, next)],
            )
                .into_response()
        }
        Ok(Err(e)) => {
            tracing::warn!(user = %f.name, "login refused");
            let (status, msg) = match e {
                super::auth::LoginError::Invalid => {
                    (StatusCode::UNAUTHORIZED, "Wrong name or password.")
                }
                super::auth::LoginError::LockedOut => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many failed logins for this name; wait a minute.",
                ),
            };
            (status, login_page(&next, Some(msg))).into_response()
        }
        Err(_) => Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "login failed").into_response(),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: Option<String>,
}

async fn logout<S: Store>(
    State(s): State<HttpState<S>>,
    Viewer(p): Viewer,
    headers: HeaderMap,
    axum::Form(f): axum::Form<CsrfForm>,
) -> Response {
    if !p.check_csrf(f.csrf.as_deref()) {
        return Failure::new(StatusCode::FORBIDDEN, "stale form; reload the page").into_response();
    }
    let cookie = s.web.accounts.logout(&headers);
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, "/login".to_string()),
        ],
    )
        .into_response()
}

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

async fn overview<S: Store>(
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

/// Filters of the device page and its API twin.
#[derive(Debug, Default, Deserialize)]
pub struct RangeQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    /// `abnormal` (default), `normal`, `unreadable` or `all`.
    pub verdict: Option<String>,
    pub min_p: Option<String>,
    /// Show flagged beats after this R time (µs): the next page.
    pub after: Option<i64>,
    pub limit: Option<u32>,
}

/// A resolved time range.
pub struct Range {
    pub from_us: i64,
    pub to_us: i64,
}

impl RangeQuery {
    /// The range asked for; by default the 24 hours up to the device's last beat.
    pub async fn range<S: Store>(&self, store: &S, device: &str) -> Result<Range, Failure> {
        let parse = |v: &Option<String>, what: &str| -> Result<Option<i64>, Failure> {
            match v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) => clock::parse_time(v).map(Some).ok_or_else(|| {
                    Failure::bad_request(format!(
                        "{what} {v:?}: give YYYY-MM-DDTHH:MM (UTC) or µs since 1970"
                    ))
                }),
            }
        };
        let (from, to) = (parse(&self.from, "from")?, parse(&self.to, "to")?);
        let to_us = match to {
            Some(t) => t,
            None => {
                let last = store.last_minute(device).await?;
                last.map_or_else(crate::clock::now_us, |m| (m + 1) * MINUTE_US)
            }
        };
        let from_us = from.unwrap_or(to_us - DAY_US);
        if from_us >= to_us {
            return Err(Failure::bad_request("from must be before to"));
        }
        Ok(Range { from_us, to_us })
    }

    /// The verdict filter: `None` means every verdict.
    pub fn verdict(&self) -> Result<Option<Verdict>, Failure> {
        match self.verdict.as_deref().unwrap_or("abnormal") {
            "all" | "" => Ok(None),
            v => Verdict::parse(v).map(Some).map_err(|_| {
                Failure::bad_request(format!(
                    "verdict {v:?}: choose abnormal, normal, unreadable or all"
                ))
            }),
        }
    }

    pub fn min_p(&self) -> Result<Option<f32>, Failure> {
        match self
            .min_p
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            None => Ok(None),
            Some(v) => v
                .parse::<f32>()
                .ok()
                .filter(|p| (0.0..=1.0).contains(p))
                .map(Some)
                .ok_or_else(|| Failure::bad_request(format!("min_p {v:?}: give 0 to 1"))),
        }
    }

    /// The beat query for this page of results.
    pub fn beat_query(
        &self,
        device: &str,
        r: &Range,
        max_limit: u32,
    ) -> Result<BeatQuery, Failure> {
        Ok(BeatQuery {
            device: device.to_string(),
            from_us: self
                .after
                .map_or(r.from_us, |a| a.saturating_add(1).max(r.from_us)),
            to_us: r.to_us,
            verdict: self.verdict()?,
            min_p_abnormal: self.min_p()?,
            limit: self.limit.unwrap_or(PAGE_SIZE).clamp(1, max_limit),
            offset: 0,
        })
    }
}

/// Refuses a malformed device id as "no such device" (it can name none).
pub(super) fn check_device(device: &str) -> Result<(), Failure> {
    crate::formats::wire::check_device_id(device).map_err(|_| Failure::not_found("no such device"))
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

async fn device<S: Store>(
    State(s): State<HttpState<S>>,
    Viewer(p): Viewer,
    Path(device): Path<String>,
    Query(q): Query<RangeQuery>,
) -> Result<Markup, Failure> {
    check_device(&device)?;
    let r = q.range(&s.store, &device).await?;
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

async fn beat<S: Store>(
    State(s): State<HttpState<S>>,
    Viewer(p): Viewer,
    Path((device, t)): Path<(String, i64)>,
) -> Result<Markup, Failure> {
    check_device(&device)?;
    let b = s
        .store
        .beat(&device, t)
        .await?
        .ok_or_else(|| Failure::not_found("no beat at that time for this device"))?;
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
async fn beat_strip<S: Store>(store: &S, device: &str, t: i64) -> Result<Chart, Failure> {
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

async fn summary<S: Store>(
    State(s): State<HttpState<S>>,
    Viewer(p): Viewer,
    Path(device): Path<String>,
    Query(q): Query<RangeQuery>,
) -> Result<Markup, Failure> {
    check_device(&device)?;
    let r = q.range(&s.store, &device).await?;
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

async fn summary_csv<S: Store>(
    State(s): State<HttpState<S>>,
    Viewer(_): Viewer,
    Path(device): Path<String>,
    Query(q): Query<RangeQuery>,
) -> Result<Response, Failure> {
    check_device(&device)?;
    let r = q.range(&s.store, &device).await?;
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

fn metric_cells(m: Option<&BinaryMetrics>) -> [Option<f64>; 6] {
    match m {
        Some(m) => [m.accuracy, m.precision, m.recall, m.f1, m.kappa, m.roc_auc].map(Some),
        None => [None; 6],
    }
}

fn aami_table(a: &crate::model::metrics::AamiConfusion) -> Markup {
    html! {
        div.scroll { table.confusion {
            tr { th { "reference \\ predicted" } @for c in crate::formats::wfdb::AamiClass::ALL { th { (format!("{c:?}")) } } th { "Se" } th { "+P" } }
            @for (i, c) in crate::formats::wfdb::AamiClass::ALL.iter().enumerate() {
                tr {
                    th { (format!("{c:?}")) }
                    @for v in a.confusion[i] { td { (v) } }
                    td { (format!("{:.3}", a.sensitivity[i])) }
                    td { (format!("{:.3}", a.positive_predictivity[i])) }
                }
            }
        } }
    }
}

fn confusion(m: &BinaryMetrics) -> Markup {
    html! {
        table.confusion {
            tr { th {} th { "predicted normal" } th { "predicted abnormal" } }
            tr { th { "normal" } td { (m.tn) } td { (m.fp) } }
            tr { th { "abnormal" } td { (m.fn_) } td { (m.tp) } }
        }
    }
}

async fn models<S: Store>(State(s): State<HttpState<S>>, Viewer(p): Viewer) -> Markup {
    let models = s.web.models.models();
    // The paper's architectures first (with its numbers), then those beyond it.
    let mut sections: Vec<(String, [Option<f64>; 6])> =
        PAPER.iter().map(|(a, n)| (a.to_string(), *n)).collect();
    for m in &models {
        if !sections.iter().any(|(a, _)| *a == m.card.architecture) {
            sections.push((m.card.architecture.clone(), [None; 6]));
        }
    }
    let names = ["accuracy", "precision", "recall", "F1", "kappa", "ROC AUC"];
    let fmt = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_else(|| "–".into());
    layout(
        "Models",
        Some(&p),
        html! {
            p { "Each architecture was trained twice: for the paper's protocol (" b { "intra" }
                ": all records' beats split at random) and for the clinical one (" b { "inter" }
                ": trained on DS1's patients, scored on DS2's). Abnormal is the positive class." }
            @for (arch, paper) in &sections {
                @let of_arch: Vec<_> = models.iter().filter(|m| &m.card.architecture == arch).collect();
                h2 { (arch) }
                @if of_arch.is_empty() { p { "Not shipped yet." } } @else {
                    @let intra = of_arch.iter().find(|m| m.card.protocol == crate::dataset::Protocol::Intra);
                    @let inter = of_arch.iter().find(|m| m.card.protocol == crate::dataset::Protocol::Inter);
                    @let a = metric_cells(intra.map(|m| &m.card.evaluation.metrics));
                    @let b = metric_cells(inter.map(|m| &m.card.evaluation.metrics));
                    div.scroll { table {
                        tr { th { "metric" } th { "paper (intra)" } th { "ours, intra" } th { "ours, inter" } }
                        @for i in 0..6 {
                            tr { th { (names[i]) } td { (fmt(paper[i])) } td { (fmt(a[i])) } td { (fmt(b[i])) } }
                        }
                    } }
                    @for m in &of_arch {
                        h3 { (m.card.name) " (" (crate::model::catalog::protocol_name(m.card.protocol)) ", "
                             (m.card.parameters) " parameters, " (m.card.evaluation.beats) " test beats)" }
                        (confusion(&m.card.evaluation.metrics))
                        @if let Some(aami) = &m.card.evaluation.aami { (aami_table(aami)) }
                        @if let Some(n) = m.card.evaluation.abstained {
                            p { "Abstains (verdict unreadable) on " (n) " of the test beats as unlike its training beats." }
                        }
                        @for a in &m.card.augmentation { p { "Also trained on " (a) "." } }
                        div.curves {
                            (curve(m, "loss", |e| (e.loss, e.val_loss)))
                            (curve(m, "accuracy", |e| (e.accuracy, e.val_accuracy)))
                        }
                        p.legend { span.s1 { "── training" } " " span.s2 { "╌╌ validation" } }
                    }
                }
            }
        },
    )
}

fn curve(
    m: &crate::model::catalog::ShippedModel,
    what: &str,
    pick: fn(&crate::model::train::EpochStats) -> (f64, f64),
) -> Markup {
    let h = &m.card.history;
    Chart {
        width: 440.0,
        height: 220.0,
        x_label: "epoch".into(),
        y_label: what.into(),
        series: vec![
            Series {
                points: h.iter().map(|e| (e.epoch as f64, pick(e).0)).collect(),
                class: "s1",
                label: format!("training {what}"),
            },
            Series {
                points: h.iter().map(|e| (e.epoch as f64, pick(e).1)).collect(),
                class: "s2",
                label: format!("validation {what}"),
            },
        ],
        markers: Vec::new(),
        x_clock: false,
    }
    .render()
}

fn upload_form(p: &Principal, choices: &[String], error: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error { p.error id="upload-error" { (e) } }
        @if p.role < super::auth::Role::Uploader {
            p { "Your role (viewer) may look at uploads but not add them." }
        } @else {
            form.card #upload method="post" action="/uploads" enctype="multipart/form-data" {
                input type="hidden" name="csrf" value=(p.csrf.clone().unwrap_or_default());
                label { "What the file holds" select name="kind" {
                    option value="beats" { "Beats (Kaggle layout: 187 values, optional label)" }
                    option value="recording" { "Continuous ECG, CSV (time + leads, or one value per line)" }
                    option value="wfdb" { "Continuous ECG, WFDB record (.hea + .dat)" }
                } }
                label { "Model" select name="model" {
                    @for c in choices { option value=(c) { (c) } }
                } }
                fieldset {
                    legend { "For recordings" }
                    label { "Device" input type="text" name="device" pattern="[A-Za-z0-9_.\\-]{1,64}" placeholder="patient-017"; }
                    label { "Start (UTC)" input type="datetime-local" name="start"; }
                    label { "Sampling rate (Hz, one-column files)" input type="number" name="fs" min="100" max="1000" step="any"; }
                    label { "Lead (column or signal name)" input type="text" name="lead" placeholder="MLII"; }
                }
                label { "File(s)" input type="file" name="file" multiple required; }
                progress #upload-progress max="100" value="0" hidden {}
                button type="submit" { "Upload" }
            }
            script src="/static/upload.js" {}
        }
    }
}

async fn uploads<S: Store>(
    State(s): State<HttpState<S>>,
    Viewer(p): Viewer,
) -> Result<Markup, Failure> {
    let list = s.store.uploads(100).await?;
    let choices = s.web.models.choices();
    Ok(uploads_page(&p, &choices, &list, None))
}

fn uploads_page(
    p: &Principal,
    choices: &[String],
    list: &[crate::store::UploadRow],
    error: Option<&str>,
) -> Markup {
    layout(
        "Uploads",
        Some(p),
        html! {
            (upload_form(p, choices, error))
            h2 { "Uploaded beat files" }
            @if list.is_empty() { p { "None yet." } } @else {
                div.scroll { table {
                    tr { th { "File" } th { "By" } th { "When (UTC)" } th { "Model" } th { "Beats" } th { "Labelled" } }
                    @for u in list {
                        tr {
                            td { a href=(format!("/uploads/{}", u.id)) { (u.filename) } }
                            td { (u.uploaded_by) } td { (format_utc(u.created_us)) }
                            td { (u.model) } td { (u.beats) } td { (if u.labelled { "yes" } else { "no" }) }
                        }
                    }
                } }
            }
            p.note { "Uploaded recordings are stored under their device and listed on the devices page." }
        },
    )
}

async fn upload<S: Store>(
    State(s): State<HttpState<S>>,
    Uploader(p): Uploader,
    form: Multipart,
) -> Response {
    let slot = match super::api::upload_slot(&s).await {
        Ok(slot) => slot,
        Err(f) => return f.into_response(),
    };
    match upload::receive(form, &p, &s.web).await {
        Ok(req) => {
            let id = jobs::start(&s, &p.name, req, slot);
            Redirect::to(&format!("/uploads/jobs/{id}")).into_response()
        }
        Err(f) => {
            tracing::info!(user = %p.name, error = %f.message, "upload refused");
            let list = s.store.uploads(100).await.unwrap_or_default();
            let page = uploads_page(&p, &s.web.models.choices(), &list, Some(&f.message));
            (f.status, page).into_response()
        }
    }
}

async fn job<S: Store>(
    State(s): State<HttpState<S>>,
    Viewer(p): Viewer,
    Path(job): Path<String>,
) -> Result<Response, Failure> {
    let j = s
        .web
        .jobs
        .get(&job, &p.name)
        .ok_or_else(|| Failure::not_found("no such upload job (jobs are kept for an hour)"))?;
    let body = html! {
        @match &j.state {
            JobState::Running { stage, done, total } => {
                p { (stage) @if *total > 0 { ": " (done) " of " (total) } "…" }
                progress max=(total.max(&1)) value=(done) {}
                p.note { "This page refreshes itself." }
            }
            JobState::Done { result, message } => {
                p { (message) }
                p { a #result href=(result) { "See the result" } }
            }
            JobState::Failed { message } => { p.error { (message) } p { a href="/uploads" { "Back to uploads" } } }
        }
    };
    let mut r = layout(&format!("Upload: {}", j.filename), Some(&p), body).into_response();
    let refresh = match &j.state {
        JobState::Running { .. } => Some("1".to_string()),
        JobState::Done { result, .. } => Some(format!("0; url={result}")),
        JobState::Failed { .. } => None,
    };
    if let Some(v) = refresh.and_then(|v| v.parse().ok()) {
        r.headers_mut().insert(header::REFRESH, v);
    }
    Ok(r)
}

#[derive(Deserialize)]
struct UploadQuery {
    tab: Option<String>,
    page: Option<u64>,
}

async fn upload_result<S: Store>(
    State(s): State<HttpState<S>>,
    Viewer(p): Viewer,
    Path(id): Path<String>,
    Query(q): Query<UploadQuery>,
) -> Result<Markup, Failure> {
    let u = s
        .store
        .upload(&id)
        .await?
        .ok_or_else(|| Failure::not_found("no such upload"))?;
    let counts = s.store.upload_counts(&id).await?;
    let tab = q.tab.as_deref().unwrap_or("all");
    let verdict = match tab {
        "all" => None,
        t => Some(
            Verdict::parse(t).map_err(|_| Failure::bad_request("tab: all, normal or abnormal"))?,
        ),
    };
    let page = q.page.unwrap_or(0);
    let rows = s
        .store
        .upload_beats(&id, verdict, PAGE_SIZE * 2, page * (PAGE_SIZE as u64 * 2))
        .await?;
    let evaluation: Option<BinaryMetrics> = u
        .evaluation
        .as_deref()
        .and_then(|e| serde_json::from_str(e).ok());
    let tabs = [
        ("all", counts.beats),
        ("normal", counts.normal()),
        ("abnormal", counts.abnormal),
    ];
    Ok(layout(
        &format!("Upload: {}", u.filename),
        Some(&p),
        html! {
            p { "Classified by " b { (u.model) } " (" (u.model_version) ") for " (u.uploaded_by) " at " (format_utc(u.created_us)) " UTC." }
            @if let Some(m) = &evaluation {
                h2 { "Performance against the file's labels (abnormal = label ≠ 0)" }
                table.facts {
                    tr { th { "accuracy" } td { (format!("{:.4}", m.accuracy)) } }
                    tr { th { "precision" } td { (format!("{:.4}", m.precision)) } }
                    tr { th { "recall" } td { (format!("{:.4}", m.recall)) } }
                    tr { th { "F1" } td { (format!("{:.4}", m.f1)) } }
                    tr { th { "Cohen's kappa" } td { (format!("{:.4}", m.kappa)) } }
                    tr { th { "ROC AUC" } td { (format!("{:.4}", m.roc_auc)) } }
                }
                (confusion(m))
            }
            nav.tabs {
                @for (t, n) in tabs {
                    a class=(if t == tab { "tab current" } else { "tab" }) href=(format!("/uploads/{id}?tab={t}")) { (t) " (" (n) ")" }
                }
            }
            div.scroll { table {
                tr { th { "Row" } @if u.labelled { th { "Label" } } th { "Verdict" } th { "p(abnormal)" } }
                @for r in &rows {
                    tr {
                        td { a href=(format!("/uploads/{id}/beats/{}", r.row_index)) { (r.row_index + 1) } }
                        @if u.labelled { td { (r.label.map(|l| l.to_string()).unwrap_or_default()) } }
                        td class=(r.verdict.as_str()) { (r.verdict.as_str()) }
                        td { (r.p_abnormal.map(|p| format!("{p:.4}")).unwrap_or_else(|| "–".into())) }
                    }
                }
            } }
            p.pager {
                @if page > 0 { a href=(format!("/uploads/{id}?tab={tab}&page={}", page - 1)) { "Previous" } " " }
                @if rows.len() as u32 == PAGE_SIZE * 2 { a href=(format!("/uploads/{id}?tab={tab}&page={}", page + 1)) { "Next" } }
            }
        },
    ))
}

async fn upload_beat<S: Store>(
    State(s): State<HttpState<S>>,
    Viewer(p): Viewer,
    Path((id, row)): Path<(String, i64)>,
) -> Result<Markup, Failure> {
    let b = s
        .store
        .upload_beat(&id, row)
        .await?
        .ok_or_else(|| Failure::not_found("no such beat in this upload"))?;
    Ok(layout(
        &format!("Upload beat, row {}", row + 1),
        Some(&p),
        html! {
            p.pager {
                @if row > 0 { a href=(format!("/uploads/{id}/beats/{}", row - 1)) { "← previous row" } " " }
                a href=(format!("/uploads/{id}")) { "all beats" } " "
                a href=(format!("/uploads/{id}/beats/{}", row + 1)) { "next row →" }
            }
            table.facts {
                tr { th { "Verdict" } td class=(b.verdict.as_str()) { (b.verdict.as_str()) } }
                tr { th { "p(abnormal)" } td { (b.p_abnormal.map(|p| format!("{p:.4}")).unwrap_or_else(|| "–".into())) } }
                @if let Some(l) = b.label { tr { th { "Label in the file" } td { (l) } } }
            }
            (beat_chart(&b.values, "125 Hz"))
        },
    ))
}

/// A static asset compiled into the binary, cacheable (it holds no patient data).
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", include_str!("static/style.css"))
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("static/upload.js"),
    )
}

async fn favicon() -> Response {
    asset("image/svg+xml", include_str!("static/favicon.svg"))
}

/// Percent-encodes `s` for a query-string value.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
