//! Uploaded files: parsed as they stream in (never held whole, by the readers
//! of [`crate::formats::csv`] and [`crate::formats::wfdb`]), checked row by row
//! with errors that name the row and column, and only then classified and
//! stored in one transaction, so a bad file stores nothing.
//!
//! Two kinds:
//! - **beats**: the Kaggle layout, 187 values per row and optionally a 188th
//!   label column (0 = normal); classified by the chosen model;
//! - **recording**: a continuous ECG (CSV with a time column in seconds and
//!   one or more lead columns, or one value per line with the rate given; or a
//!   WFDB record), run through the daemon's own analysis and stored as a
//!   device's recording.

use super::auth::Principal;
use super::{Failure, Web};
use crate::formats::csv::{BeatsCsv, ParsedBeats, ParsedRecording, RecordingCsv};
use axum::extract::multipart::{Field, Multipart, MultipartError};
use axum::http::StatusCode;

/// What an upload holds once read and checked.
pub enum Parsed {
    Beats(ParsedBeats),
    Recording(ParsedRecording),
}

/// A checked upload and the choices that came with it.
pub struct UploadRequest {
    pub filename: String,
    /// A name from the model catalog.
    pub model: String,
    /// For recordings: the device they are stored under.
    pub device: String,
    /// For recordings: time of the first sample (default: so the recording ends now).
    pub start_us: Option<i64>,
    pub parsed: Parsed,
}

/// Upload kinds, as the form's `kind` field names them.
pub const KINDS: [&str; 3] = ["beats", "recording", "wfdb"];

/// Form fields that must come before the file (browsers send fields in form order).
#[derive(Default)]
struct Fields {
    csrf: Option<String>,
    kind: Option<String>,
    model: Option<String>,
    device: Option<String>,
    start: Option<String>,
    fs: Option<String>,
    lead: Option<String>,
}

/// A temporary directory removed when dropped (WFDB files are read from disk).
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn multipart_failure(e: MultipartError, limit: u64) -> Failure {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the file is larger than {} MiB", limit / (1024 * 1024)),
        )
    } else {
        Failure::bad_request(format!("the upload could not be read: {}", e.body_text()))
    }
}

async fn next_chunk(field: &mut Field<'_>, limit: u64) -> Result<Option<bytes::Bytes>, Failure> {
    field.chunk().await.map_err(|e| multipart_failure(e, limit))
}

/// Waits for one of the upload slots ([`super::UPLOAD_SLOTS`]); the permit is
/// held until the upload's job ends.
pub async fn slot(web: &Web) -> Result<tokio::sync::OwnedSemaphorePermit, Failure> {
    web.upload_slots.clone().acquire_owned().await.map_err(|_| {
        Failure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        )
    })
}

/// Reads a multipart upload as it streams in: form fields first, then the
/// file(s), parsed piece by piece. Nothing is stored here; any error names
/// what is wrong.
pub async fn receive(
    mut form: Multipart,
    who: &Principal,
    web: &Web,
) -> Result<UploadRequest, Failure> {
    let limit = web.max_upload_bytes;
    let mut f = Fields::default();
    let mut received = 0u64;
    let mut parsed: Option<(String, Parsed)> = None;
    let mut wfdb: Option<(TempDir, Vec<String>)> = None;
    while let Some(mut field) = form
        .next_field()
        .await
        .map_err(|e| multipart_failure(e, limit))?
    {
        let name = field.name().unwrap_or_default().to_string();
        if name != "file" {
            let value = field
                .text()
                .await
                .map_err(|e| multipart_failure(e, limit))?;
            let slot = match name.as_str() {
                "csrf" => &mut f.csrf,
                "kind" => &mut f.kind,
                "model" => &mut f.model,
                "device" => &mut f.device,
                "start" => &mut f.start,
                "fs" => &mut f.fs,
                "lead" => &mut f.lead,
                other => {
                    return Err(Failure::bad_request(format!(
                        "unknown form field {other:?}"
                    )));
                }
            };
            *slot = Some(value.trim().to_string()).filter(|v| !v.is_empty());
            continue;
        }
        // The first file: everything it depends on must have arrived.
        if !who.check_csrf(f.csrf.as_deref()) {
            return Err(Failure::new(
                StatusCode::FORBIDDEN,
                "the form's CSRF token is missing or stale; reload the upload page",
            ));
        }
        let kind = f.kind.clone().unwrap_or_else(|| "beats".into());
        let filename = field.file_name().unwrap_or("upload").to_string();
        match kind.as_str() {
            "beats" | "recording" if parsed.is_some() => {
                return Err(Failure::bad_request("send one file per upload"));
            }
            "beats" => {
                let mut p = BeatsCsv::default();
                while let Some(c) = next_chunk(&mut field, limit).await? {
                    received += c.len() as u64;
                    p.push(&c).map_err(|e| Failure::bad_request(e.0))?;
                }
                let b = p.finish().map_err(|e| Failure::bad_request(e.0))?;
                parsed = Some((filename, Parsed::Beats(b)));
            }
            "recording" => {
                let fs = match &f.fs {
                    Some(s) => Some(s.parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(
                        || Failure::bad_request(format!("fs {s:?} is not a number of Hz")),
                    )?),
                    None => None,
                };
                let mut p = RecordingCsv::new(fs, f.lead.clone());
                while let Some(c) = next_chunk(&mut field, limit).await? {
                    received += c.len() as u64;
                    p.push(&c).map_err(|e| Failure::bad_request(e.0))?;
                }
                let rec = p.finish().map_err(|e| Failure::bad_request(e.0))?;
                parsed = Some((filename, Parsed::Recording(rec)));
            }
            "wfdb" => {
                let safe = !filename.is_empty()
                    && filename.len() <= 64
                    && filename
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
                    && !filename.starts_with('.');
                if !safe {
                    return Err(Failure::bad_request(format!(
                        "WFDB file name {filename:?}: use letters, digits, '_', '-' and '.' only"
                    )));
                }
                let (dir, names) = match &mut wfdb {
                    Some(w) => w,
                    None => {
                        let dir = std::env::temp_dir()
                            .join(format!("holterd-upload-{}", super::auth::random_hex(8)));
                        std::fs::create_dir(&dir).map_err(|e| {
                            Failure::new(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                format!("temporary directory: {e}"),
                            )
                        })?;
                        wfdb.insert((TempDir(dir), Vec::new()))
                    }
                };
                if names.len() >= 8 || names.contains(&filename) {
                    return Err(Failure::bad_request(
                        "send a record's .hea and .dat once each (at most 8 files)",
                    ));
                }
                let mut out = tokio::fs::File::create(dir.0.join(&filename))
                    .await
                    .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
                while let Some(c) = next_chunk(&mut field, limit).await? {
                    received += c.len() as u64;
                    tokio::io::AsyncWriteExt::write_all(&mut out, &c)
                        .await
                        .map_err(|e| {
                            Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
                        })?;
                }
                tokio::io::AsyncWriteExt::flush(&mut out)
                    .await
                    .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
                names.push(filename);
            }
            other => {
                return Err(Failure::bad_request(format!(
                    "kind {other:?}: choose one of {}",
                    KINDS.join(", ")
                )));
            }
        }
        if received > limit {
            return Err(Failure::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the file is larger than {} MiB", limit / (1024 * 1024)),
            ));
        }
    }
    if let Some((dir, names)) = wfdb {
        parsed = Some(read_wfdb_upload(&dir.0, &names, f.lead.clone()).await?);
    }
    let Some((filename, parsed)) = parsed else {
        return Err(Failure::bad_request(
            "no file was sent (form field \"file\")",
        ));
    };
    let model = f.model.unwrap_or_else(|| "cnn-lstm-inter".into());
    if !web.models.choices().contains(&model) {
        return Err(Failure::bad_request(format!(
            "model {model:?}: choose one of {}",
            web.models.choices().join(", ")
        )));
    }
    let device = match (&parsed, f.device) {
        (Parsed::Beats(_), d) => d.unwrap_or_default(),
        (Parsed::Recording(_), Some(d)) => {
            crate::formats::wire::check_device_id(&d)
                .map_err(|e| Failure::bad_request(format!("device: {e}")))?;
            d
        }
        (Parsed::Recording(_), None) => {
            return Err(Failure::bad_request(
                "a recording needs the device it belongs to",
            ));
        }
    };
    let start_us = match f.start {
        Some(s) => Some(crate::clock::parse_time(&s).ok_or_else(|| {
            Failure::bad_request(format!(
                "start {s:?}: give YYYY-MM-DDTHH:MM (UTC) or µs since 1970"
            ))
        })?),
        None => None,
    };
    Ok(UploadRequest {
        filename,
        model,
        device,
        start_us,
        parsed,
    })
}

/// Reads an uploaded WFDB record (its `.hea` names the signal file).
async fn read_wfdb_upload(
    dir: &std::path::Path,
    names: &[String],
    lead: Option<String>,
) -> Result<(String, Parsed), Failure> {
    let headers: Vec<&String> = names.iter().filter(|n| n.ends_with(".hea")).collect();
    let [hea] = headers.as_slice() else {
        return Err(Failure::bad_request(
            "send exactly one .hea header with its .dat signal file",
        ));
    };
    let record = dir.join(hea.trim_end_matches(".hea"));
    let choice = match lead {
        Some(l) => crate::formats::wfdb::LeadChoice::Lead(l),
        None => crate::formats::wfdb::LeadChoice::Default,
    };
    let name = hea.to_string();
    tokio::task::spawn_blocking(move || {
        let rec = crate::formats::wfdb::Recording::from_wfdb(&record, &choice)
            .map_err(|e| Failure::bad_request(format!("WFDB record: {e:#}")))?;
        if !(crate::formats::wire::FS_RANGE.0..=crate::formats::wire::FS_RANGE.1).contains(&rec.fs)
        {
            return Err(Failure::bad_request(format!(
                "sampling rate {} Hz is outside {}–{} Hz",
                rec.fs,
                crate::formats::wire::FS_RANGE.0,
                crate::formats::wire::FS_RANGE.1
            )));
        }
        let samples = rec.millivolts();
        if samples.is_empty() {
            return Err(Failure::bad_request("the WFDB record holds no samples"));
        }
        Ok((
            name,
            Parsed::Recording(ParsedRecording {
                fs: rec.fs,
                lead: rec.lead.clone(),
                samples,
                scale: Some(rec.scale()),
            }),
        ))
    })
    .await
    .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}
