//! The JSON API, `/api/v1`: the pages' data for programs (dashboards, EHR
//! integrations, scripts). Same authentication, same queries; described by
//! `/api/v1/openapi.json` ([`super::openapi`]).

use super::paper::PAPER;
use super::range::{DeviceRange, RangeQuery, stored_beat};
use super::{Failure, HttpState, Uploader, Viewer, jobs, upload};
use crate::formats::wfdb::AamiClass;
use crate::store::{BeatRow, EpisodeQuery, Store, UploadRow};
use crate::{clock, review};
use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

/// Largest page of beats one call returns.
pub const MAX_LIMIT: u32 = 1000;

pub fn routes<S: Store>() -> Router<HttpState<S>> {
    Router::new()
        .route("/devices", get(devices::<S>))
        .route("/devices/{device}/beats", get(beats::<S>))
        .route("/devices/{device}/beats/{t}", get(beat::<S>))
        .route("/devices/{device}/trend", get(trend::<S>))
        .route("/devices/{device}/summary", get(summary::<S>))
        .route("/devices/{device}/episodes", get(episodes::<S>))
        .route("/models", get(models::<S>))
        .route("/uploads", get(uploads::<S>).post(upload::<S>))
        .route("/uploads/jobs/{job}", get(job::<S>))
        .route("/uploads/{id}", get(upload_result::<S>))
        .route("/uploads/{id}/beats/{row}", get(upload_beat::<S>))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
}

/// JSON errors for API callers.
struct ApiFailure(Failure);

impl From<Failure> for ApiFailure {
    fn from(f: Failure) -> Self {
        ApiFailure(f)
    }
}

impl From<crate::store::StoreError> for ApiFailure {
    fn from(e: crate::store::StoreError) -> Self {
        ApiFailure(e.into())
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        (self.0.status, Json(json!({ "error": self.0.message }))).into_response()
    }
}

type ApiResult = Result<Json<Value>, ApiFailure>;

async fn not_found() -> ApiFailure {
    ApiFailure(Failure::not_found(
        "no such API route; see /api/v1/openapi.json",
    ))
}

/// The device and range of an API call; refusals as JSON errors.
type ApiRange = DeviceRange<ApiFailure>;

async fn devices<S: Store>(State(s): State<HttpState<S>>, Viewer(_): Viewer) -> ApiResult {
    let rows = review::overview(&s.store, crate::clock::now_us()).await?;
    Ok(Json(json!({ "devices": rows })))
}

/// A beat's class as its letter, or null.
fn class_json(c: Option<AamiClass>) -> Value {
    json!(c.map(AamiClass::as_str))
}

/// Class probabilities as `{"N": p, "S": p, "V": p, "F": p, "Q": p}`, or null.
fn class_probs_json(p: Option<[f32; 5]>) -> Value {
    p.map_or(Value::Null, |p| {
        Value::Object(
            AamiClass::ALL
                .iter()
                .map(|c| (c.as_str().to_string(), json!(p[c.index()])))
                .collect(),
        )
    })
}

fn beat_json(b: &BeatRow, with_values: bool) -> Value {
    let mut v = json!({
        "r_time_us": b.r_time_us,
        "time_utc": clock::format_utc(b.r_time_us),
        "verdict": b.verdict.as_str(),
        "p_abnormal": b.p_abnormal,
        "class": class_json(b.class),
        "class_probs": class_probs_json(b.class_probs),
        "quality": b.quality.as_str(),
        "rr_prev_ms": b.rr_prev_ms,
        "rr_next_ms": b.rr_next_ms,
        "searchback": b.searchback,
        "model": b.model,
        "model_version": b.model_version,
    });
    if with_values {
        v["beat"] = json!(b.values);
    }
    v
}

async fn beats<S: Store>(
    State(s): State<HttpState<S>>,
    Viewer(_): Viewer,
    ApiRange {
        device,
        query: q,
        range: r,
        ..
    }: ApiRange,
) -> ApiResult {
    let bq = q.beat_query(&device, &r, MAX_LIMIT)?;
    let marks = s.store.beat_marks(&bq).await?;
    let next_after = (marks.len() as u32 == bq.limit)
        .then(|| marks.last().map(|m| m.r_time_us))
        .flatten();
    let beats: Vec<Value> = marks
        .iter()
        .map(|m| {
            json!({
                "r_time_us": m.r_time_us,
                "time_utc": clock::format_utc(m.r_time_us),
                "verdict": m.verdict.as_str(),
                "p_abnormal": m.p_abnormal,
                "class": class_json(m.class),
                "quality": m.quality.as_str(),
                "rr_prev_ms": m.rr_prev_ms,
                "model": m.model,
            })
        })
        .collect();
    Ok(Json(json!({
        "device": device,
        "from_us": r.from_us,
        "to_us": r.to_us,
        "beats": beats,
        "next_after": next_after,
    })))
}

async fn beat<S: Store>(
    State(s): State<HttpState<S>>,
    Viewer(_): Viewer,
    Path((device, t)): Path<(String, i64)>,
) -> ApiResult {
    let b = stored_beat(&s.store, &device, t).await?;
    let chunks = s
        .store
        .chunks_between(&device, t - 5_000_000, t + 5_000_000)
        .await?;
    let strip: Vec<Value> = chunks
        .iter()
        .map(|c| json!({ "t0_us": c.t0_us, "fs": c.fs, "samples_mv": c.samples }))
        .collect();
    let mut v = beat_json(&b, true);
    v["device"] = json!(device);
    v["strip"] = json!(strip);
    v["previous_flagged_us"] = json!(s.store.flagged_neighbour(&device, t, false).await?);
    v["next_flagged_us"] = json!(s.store.flagged_neighbour(&device, t, true).await?);
    Ok(Json(v))
}

async fn trend<S: Store>(
    State(s): State<HttpState<S>>,
    Viewer(_): Viewer,
    ApiRange {
        device, range: r, ..
    }: ApiRange,
) -> ApiResult {
    let (counts, points) =
        review::counts_and_trend(&s.store, &device, r.from_us, r.to_us, 288).await?;
    Ok(Json(json!({
        "device": device, "from_us": r.from_us, "to_us": r.to_us,
        "counts": counts.counts, "classes": counts.burdens(),
        "recorded_minutes": counts.recorded_minutes, "heart_rate": points,
    })))
}

async fn episodes<S: Store>(
    State(s): State<HttpState<S>>,
    Viewer(_): Viewer,
    ApiRange {
        device,
        query: q,
        range: r,
        ..
    }: ApiRange,
) -> ApiResult {
    let eq = EpisodeQuery {
        device: device.clone(),
        from_us: r.from_us,
        to_us: r.to_us,
        kind: q.kind()?,
        limit: q.limit.unwrap_or(MAX_LIMIT).clamp(1, MAX_LIMIT),
    };
    let rows = s.store.episodes(&eq).await?;
    let episodes: Vec<Value> = rows
        .iter()
        .map(|e| {
            let ep = &e.episode;
            json!({
                "kind": ep.kind.as_str(),
                "start_us": ep.start_us,
                "end_us": ep.end_us,
                "start_utc": clock::format_utc(ep.start_us),
                "duration_s": ep.duration_s(),
                "beats": ep.beats,
                "min_bpm": ep.min_bpm,
                "max_bpm": ep.max_bpm,
                "ongoing": e.ongoing,
                "analyser": e.analyser,
            })
        })
        .collect();
    Ok(Json(json!({
        "device": device,
        "from_us": r.from_us,
        "to_us": r.to_us,
        "episodes": episodes,
    })))
}

async fn summary<S: Store>(
    State(s): State<HttpState<S>>,
    Viewer(_): Viewer,
    ApiRange {
        device, range: r, ..
    }: ApiRange,
) -> ApiResult {
    let h = review::holter_summary(&s.store, &device, r.from_us, r.to_us).await?;
    Ok(Json(json!(h)))
}

async fn models<S: Store>(State(s): State<HttpState<S>>, Viewer(_): Viewer) -> ApiResult {
    let models: Vec<Value> = s
        .web
        .models
        .models()
        .iter()
        .map(|m| json!(m.card))
        .collect();
    Ok(Json(json!({
        "models": models,
        "choices": s.web.models.choices(),
        "paper": PAPER.iter().map(|(arch, m)| json!({
            "architecture": arch, "accuracy": m[0], "precision": m[1], "recall": m[2],
            "f1": m[3], "kappa": m[4], "roc_auc": m[5],
        })).collect::<Vec<_>>(),
    })))
}

fn upload_json(u: &UploadRow) -> Value {
    json!({
        "id": u.id, "filename": u.filename, "uploaded_by": u.uploaded_by,
        "created_us": u.created_us, "model": u.model, "model_version": u.model_version,
        "beats": u.beats, "labelled": u.labelled,
        "evaluation": u.evaluation.as_deref().and_then(|e| serde_json::from_str::<Value>(e).ok()),
    })
}

async fn uploads<S: Store>(State(s): State<HttpState<S>>, Viewer(_): Viewer) -> ApiResult {
    let list = s.store.uploads(100).await?;
    Ok(Json(
        json!({ "uploads": list.iter().map(upload_json).collect::<Vec<_>>() }),
    ))
}

async fn upload<S: Store>(
    State(s): State<HttpState<S>>,
    Uploader(p): Uploader,
    form: Multipart,
) -> Result<Response, ApiFailure> {
    let slot = upload::slot(&s.web).await?;
    let req = upload::receive(form, &p, &s.web).await?;
    let id = jobs::start(&s, &p.name, req, slot);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "job": id, "status": format!("/api/v1/uploads/jobs/{id}") })),
    )
        .into_response())
}

async fn job<S: Store>(
    State(s): State<HttpState<S>>,
    Viewer(p): Viewer,
    Path(job): Path<String>,
) -> ApiResult {
    let j = s
        .web
        .jobs
        .get(&job, &p.name)
        .ok_or_else(|| Failure::not_found("no such upload job (jobs are kept for an hour)"))?;
    Ok(Json(json!(j)))
}

#[derive(Deserialize)]
struct UploadBeatsQuery {
    verdict: Option<String>,
    limit: Option<u32>,
    offset: Option<u64>,
}

async fn upload_result<S: Store>(
    State(s): State<HttpState<S>>,
    Viewer(_): Viewer,
    Path(id): Path<String>,
    Query(q): Query<UploadBeatsQuery>,
) -> ApiResult {
    let u = s
        .store
        .upload(&id)
        .await?
        .ok_or_else(|| Failure::not_found("no such upload"))?;
    let verdict = RangeQuery {
        verdict: Some(q.verdict.unwrap_or_else(|| "all".into())),
        ..RangeQuery::default()
    }
    .verdict()?;
    let rows = s
        .store
        .upload_beats(
            &id,
            verdict,
            q.limit.unwrap_or(100).clamp(1, MAX_LIMIT),
            q.offset.unwrap_or(0),
        )
        .await?;
    let counts = s.store.upload_counts(&id).await?;
    let beats: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "row": r.row_index, "label": r.label, "verdict": r.verdict.as_str(),
                "p_abnormal": r.p_abnormal, "class": class_json(r.class),
                "class_probs": class_probs_json(r.class_probs),
            })
        })
        .collect();
    let mut v = upload_json(&u);
    v["counts"] = json!(counts);
    v["rows"] = json!(beats);
    Ok(Json(v))
}

async fn upload_beat<S: Store>(
    State(s): State<HttpState<S>>,
    Viewer(_): Viewer,
    Path((id, row)): Path<(String, i64)>,
) -> ApiResult {
    let b = s
        .store
        .upload_beat(&id, row)
        .await?
        .ok_or_else(|| Failure::not_found("no such beat in this upload"))?;
    Ok(Json(json!({
        "row": b.row_index, "label": b.label, "verdict": b.verdict.as_str(),
        "p_abnormal": b.p_abnormal, "class": class_json(b.class),
        "class_probs": class_probs_json(b.class_probs), "beat": b.values,
    })))
}

async fn openapi(Viewer(_): Viewer) -> Json<Value> {
    Json(super::openapi::document())
}
