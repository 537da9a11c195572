//! Upload jobs: a checked file is classified (beats) or analysed (recording)
//! off the async runtime, stored in one transaction, and its progress is shown
//! at `/uploads/jobs/{id}` until the result is ready.

use super::upload::{Parsed, UploadRequest};
use super::{HttpState, auth};
use crate::formats::csv::ParsedRecording;
use crate::model::metrics::BinaryMetrics;
use crate::pipeline::recording::{Recording, recording_rows};
use crate::store::{SegmentKey, Store, UploadBeatRow, UploadRow, Verdict};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Finished jobs are forgotten after this long (their results stay stored).
const KEEP_FINISHED: Duration = Duration::from_secs(3600);
/// Beats classified between progress updates.
const STEP: usize = 2048;

/// Where a job stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum JobState {
    Running {
        stage: String,
        done: u64,
        total: u64,
    },
    Done {
        /// Page of the result.
        result: String,
        message: String,
    },
    Failed {
        message: String,
    },
}

/// A job as callers see it.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    pub id: String,
    pub filename: String,
    pub owner: String,
    #[serde(flatten)]
    pub state: JobState,
}

struct Job {
    view: JobView,
    finished: Option<Instant>,
}

/// The jobs of this process.
#[derive(Default)]
pub struct Jobs {
    jobs: Mutex<HashMap<String, Job>>,
}

impl Jobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Job>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn create(&self, owner: &str, filename: &str) -> String {
        let id = auth::random_hex(12);
        let mut jobs = self.lock();
        jobs.retain(|_, j| j.finished.is_none_or(|t| t.elapsed() < KEEP_FINISHED));
        jobs.insert(
            id.clone(),
            Job {
                view: JobView {
                    id: id.clone(),
                    filename: filename.to_string(),
                    owner: owner.to_string(),
                    state: JobState::Running {
                        stage: "queued".into(),
                        done: 0,
                        total: 0,
                    },
                },
                finished: None,
            },
        );
        id
    }

    fn set(&self, id: &str, state: JobState) {
        if let Some(j) = self.lock().get_mut(id) {
            if !matches!(state, JobState::Running { .. }) {
                j.finished = Some(Instant::now());
            }
            j.view.state = state;
        }
    }

    /// The job `id`, if it exists and `owner` started it.
    pub fn get(&self, id: &str, owner: &str) -> Option<JobView> {
        self.lock()
            .get(id)
            .filter(|j| j.view.owner == owner)
            .map(|j| j.view.clone())
    }
}

/// Starts processing `req` for `owner`, holding `slot` (one of
/// [`super::UPLOAD_SLOTS`]) until done; returns the job id.
pub fn start<S: Store>(
    state: &HttpState<S>,
    owner: &str,
    req: UploadRequest,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> String {
    let id = state.web.jobs.create(owner, &req.filename);
    let (state, job, owner) = (state.clone(), id.clone(), owner.to_string());
    tokio::spawn(async move {
        let _slot = slot;
        let UploadRequest {
            filename,
            model,
            device,
            start_us,
            parsed,
        } = req;
        let outcome = match parsed {
            Parsed::Beats(b) => {
                run_beats(&state, &job, &owner, &filename, &model, b.beats, b.labels).await
            }
            Parsed::Recording(rec) => {
                run_recording(&state, &job, &model, &device, start_us, rec).await
            }
        };
        let s = match outcome {
            Ok((result, message)) => JobState::Done { result, message },
            Err(message) => JobState::Failed { message },
        };
        state.web.jobs.set(&job, s);
    });
    id
}

fn running(stage: &str, done: usize, total: usize) -> JobState {
    JobState::Running {
        stage: stage.into(),
        done: done as u64,
        total: total as u64,
    }
}

async fn run_beats<S: Store>(
    state: &HttpState<S>,
    job: &str,
    owner: &str,
    filename: &str,
    model: &str,
    beats: Vec<[f32; crate::dsp::BEAT_LEN]>,
    labels: Option<Vec<i64>>,
) -> Result<(String, String), String> {
    let web = state.web.clone();
    let (job_id, model_name) = (job.to_string(), model.to_string());
    let (p, beats, name, version) = tokio::task::spawn_blocking(move || {
        let c = web
            .models
            .classifier(&model_name)
            .map_err(|e| e.to_string())?;
        if c.needs_rr() {
            return Err(format!(
                "model {model_name} needs each beat's RR intervals, which a beats CSV does not carry: upload the recording instead, or choose another model"
            ));
        }
        // Beats unlike the training beats get no probability (verdict "unreadable").
        let mut p: Vec<Option<f32>> = Vec::with_capacity(beats.len());
        for start in (0..beats.len()).step_by(STEP) {
            web.jobs
                .set(&job_id, running("classifying", start, beats.len()));
            let end = (start + STEP).min(beats.len());
            let idx: Vec<usize> = (start..end)
                .filter(|&i| c.out_of_distribution(&beats[i]).is_none())
                .collect();
            let q = c
                .p_abnormal_of(&beats, None, &idx, 256)
                .map_err(|e| e.to_string())?;
            let mut judged = idx.iter().zip(q).peekable();
            for i in start..end {
                p.push(judged.next_if(|&(&j, _)| j == i).map(|(_, q)| q));
            }
        }
        Ok::<_, String>((p, beats, c.name().to_string(), c.version().to_string()))
    })
    .await
    .map_err(|e| format!("classification stopped: {e}"))??;
    let threshold = state.web.threshold;
    // Scored on the rows that got a verdict.
    let evaluation = labels.as_ref().map(|l| {
        let (q, binary): (Vec<f32>, Vec<u8>) = p
            .iter()
            .zip(l)
            .filter_map(|(p, c)| p.map(|p| (p, u8::from(*c != 0))))
            .unzip();
        let m = BinaryMetrics::compute(&q, &binary);
        serde_json::to_string(&m).unwrap_or_default()
    });
    let id = auth::random_hex(12);
    let upload = UploadRow {
        id: id.clone(),
        filename: filename.to_string(),
        uploaded_by: owner.to_string(),
        created_us: crate::clock::now_us(),
        model: name,
        model_version: version,
        beats: beats.len() as i64,
        labelled: labels.is_some(),
        evaluation,
    };
    let rows: Vec<UploadBeatRow> = beats
        .iter()
        .zip(&p)
        .enumerate()
        .map(|(i, (b, p))| UploadBeatRow {
            row_index: i as i64,
            label: labels.as_ref().map(|l| l[i]),
            verdict: match p {
                None => Verdict::Unreadable,
                Some(p) if *p >= threshold => Verdict::Abnormal,
                Some(_) => Verdict::Normal,
            },
            p_abnormal: *p,
            class: None,
            class_probs: None,
            values: b.to_vec(),
        })
        .collect();
    state
        .web
        .jobs
        .set(job, running("storing", rows.len(), rows.len()));
    state
        .store
        .create_upload(&upload, &rows)
        .await
        .map_err(|e| store_failed(&e))?;
    let flagged = rows
        .iter()
        .filter(|r| r.verdict == Verdict::Abnormal)
        .count();
    let refused = rows
        .iter()
        .filter(|r| r.verdict == Verdict::Unreadable)
        .count();
    let mut message = format!("{} beats classified, {flagged} abnormal", rows.len());
    if refused > 0 {
        message.push_str(&format!(
            ", {refused} unreadable (unlike any beat the model was trained on)"
        ));
    }
    Ok((format!("/uploads/{id}"), message))
}

fn store_failed(e: &crate::store::StoreError) -> String {
    tracing::error!(error = %e, "storing an upload failed");
    "the database refused the upload; nothing was stored. Try again shortly".into()
}

/// Analyses an uploaded recording ([`recording_rows`]) and stores it under
/// `device`, reporting progress on `job`.
async fn run_recording<S: Store>(
    state: &HttpState<S>,
    job: &str,
    model: &str,
    device: &str,
    start_us: Option<i64>,
    rec: ParsedRecording,
) -> Result<(String, String), String> {
    let web = state.web.clone();
    let job_id = job.to_string();
    let model = model.to_string();
    let duration_us = (rec.samples.len() as f64 / rec.fs * 1e6) as i64;
    let now = crate::clock::now_us();
    let t0_us = start_us.unwrap_or(now - duration_us);
    // A stream number of its own, so the upload never merges into a live stream's segments.
    let stream = u32::from_str_radix(&auth::random_hex(4), 16).unwrap_or(1) | 0x8000_0000;
    let recording = Recording {
        key: SegmentKey {
            device: device.to_string(),
            stream,
            first_seq: 0,
        },
        t0_us,
        fs: rec.fs,
        lead: rec.lead,
        samples: rec.samples,
        scale: rec.scale,
        received_us: now,
    };
    let rows = tokio::task::spawn_blocking(move || {
        web.jobs
            .set(&job_id, running("analysing", 0, recording.samples.len()));
        let c = web.models.classifier(&model).map_err(|e| e.to_string())?;
        recording_rows(recording, web.powerline_hz, &c, web.threshold, &web.rhythm)
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| format!("analysis stopped: {e}"))??;
    let beats = &rows.beats;
    state
        .web
        .jobs
        .set(job, running("storing", beats.len(), beats.len()));
    let stored = state
        .store
        .import_recording(
            std::slice::from_ref(&rows.segment),
            &rows.chunks,
            beats,
            &rows.episodes,
        )
        .await
        .map_err(|e| store_failed(&e))?;
    let flagged = beats
        .iter()
        .filter(|b| b.verdict == Verdict::Abnormal)
        .count();
    let to = t0_us + duration_us + 1;
    Ok((
        format!("/devices/{device}?from={t0_us}&to={to}"),
        format!(
            "{} s of ECG analysed: {} beats ({stored} new), {flagged} abnormal",
            duration_us / 1_000_000,
            beats.len()
        ),
    ))
}
