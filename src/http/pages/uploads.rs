//! Uploads: the form and the list of uploaded beat files, the progress page of
//! an upload job, and an upload's results (per-beat verdicts, performance
//! against the file's labels) and single beats.

use super::layout;
use super::models::confusion;
use crate::clock::format_utc;
use crate::http::auth::{Principal, Role};
use crate::http::jobs::{self, JobState};
use crate::http::range::PAGE_SIZE;
use crate::http::svg::beat_chart;
use crate::http::{Failure, HttpState, Uploader, Viewer, upload};
use crate::model::metrics::BinaryMetrics;
use crate::store::{Store, Verdict};
use axum::extract::{Multipart, Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

fn upload_form(p: &Principal, choices: &[String], error: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error { p.error id="upload-error" { (e) } }
        @if p.role < Role::Uploader {
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

pub(super) async fn uploads<S: Store>(
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

pub(super) async fn upload<S: Store>(
    State(s): State<HttpState<S>>,
    Uploader(p): Uploader,
    form: Multipart,
) -> Response {
    let slot = match upload::slot(&s.web).await {
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

pub(super) async fn job<S: Store>(
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

/// An upload result's tab (verdict) and page.
#[derive(Deserialize)]
pub(super) struct UploadQuery {
    tab: Option<String>,
    page: Option<u64>,
}

pub(super) async fn upload_result<S: Store>(
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

pub(super) async fn upload_beat<S: Store>(
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
