//! Uploaded files: parsed as they stream in (never held whole), checked row by
//! row with errors that name the row and column, and only then classified and
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
use crate::dsp::BEAT_LEN;
use axum::extract::multipart::{Field, Multipart, MultipartError};
use axum::http::StatusCode;
use std::fmt;

/// Longest accepted CSV line (a beats row is about 2 KB).
const MAX_LINE: usize = 64 * 1024;

/// What is wrong with an uploaded file.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadError(pub String);

impl fmt::Display for UploadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UploadError {}

fn err<T>(msg: impl Into<String>) -> Result<T, UploadError> {
    Err(UploadError(msg.into()))
}

/// Splits streamed bytes into lines (LF or CRLF), checking length and UTF-8.
#[derive(Default)]
struct Lines {
    partial: Vec<u8>,
    /// Lines completed so far (1-based row number of the last).
    row: usize,
}

impl Lines {
    fn push(
        &mut self,
        mut bytes: &[u8],
        mut each: impl FnMut(usize, &str) -> Result<(), UploadError>,
    ) -> Result<(), UploadError> {
        while let Some(nl) = bytes.iter().position(|b| *b == b'\n') {
            self.partial.extend_from_slice(&bytes[..nl]);
            bytes = &bytes[nl + 1..];
            self.emit(&mut each)?;
        }
        self.partial.extend_from_slice(bytes);
        if self.partial.len() > MAX_LINE {
            return err(format!(
                "row {}: longer than {MAX_LINE} bytes; is this a CSV file?",
                self.row + 1
            ));
        }
        Ok(())
    }

    fn finish(
        &mut self,
        mut each: impl FnMut(usize, &str) -> Result<(), UploadError>,
    ) -> Result<(), UploadError> {
        if !self.partial.is_empty() {
            self.emit(&mut each)?;
        }
        Ok(())
    }

    fn emit(
        &mut self,
        each: &mut impl FnMut(usize, &str) -> Result<(), UploadError>,
    ) -> Result<(), UploadError> {
        self.row += 1;
        let mut line = std::mem::take(&mut self.partial);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let mut text = std::str::from_utf8(&line).map_err(|_| {
            UploadError(format!(
                "row {}: not UTF-8 text; save the file as UTF-8 CSV",
                self.row
            ))
        })?;
        if self.row == 1 {
            text = text.strip_prefix('\u{feff}').unwrap_or(text);
        }
        each(self.row, text)
    }
}

fn cells(line: &str) -> impl Iterator<Item = &str> {
    line.split(',')
        .map(|c| c.trim().trim_matches(|ch| ch == '"' || ch == '\''))
}

fn number(row: usize, col: usize, cell: &str) -> Result<f64, UploadError> {
    match cell.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => err(format!(
            "row {row}, column {col}: {cell:?} is not a finite number"
        )),
        Err(_) => err(format!(
            "row {row}, column {col}: {:?} is not a number",
            cell.chars().take(40).collect::<String>()
        )),
    }
}

fn is_numeric_row(line: &str) -> bool {
    cells(line).next().is_some_and(|c| c.parse::<f64>().is_ok())
}

/// A beats file being read.
#[derive(Default)]
pub struct BeatsCsv {
    lines: Lines,
    /// 187 or 188, fixed by the first data row.
    columns: Option<usize>,
    pub beats: Vec<[f32; BEAT_LEN]>,
    pub labels: Vec<i64>,
}

impl BeatsCsv {
    /// Reads the next piece of the file.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), UploadError> {
        let Self {
            lines,
            columns,
            beats,
            labels,
        } = self;
        lines.push(bytes, |row, line| {
            Self::row(columns, beats, labels, row, line)
        })
    }

    /// Ends the file; returns the beats and, when the file had them, the labels.
    pub fn finish(mut self) -> Result<Parsed, UploadError> {
        let Self {
            lines,
            columns,
            beats,
            labels,
        } = &mut self;
        lines.finish(|row, line| Self::row(columns, beats, labels, row, line))?;
        if self.beats.is_empty() {
            return err("the file holds no beats (it is empty or has only a header)");
        }
        let labelled = self.columns == Some(BEAT_LEN + 1);
        Ok(Parsed::Beats {
            beats: self.beats,
            labels: labelled.then_some(self.labels),
        })
    }

    fn row(
        columns: &mut Option<usize>,
        beats: &mut Vec<[f32; BEAT_LEN]>,
        labels: &mut Vec<i64>,
        row: usize,
        line: &str,
    ) -> Result<(), UploadError> {
        if line.trim().is_empty() {
            return Ok(());
        }
        if row == 1 && !is_numeric_row(line) {
            return Ok(()); // a header
        }
        let n = cells(line).count();
        let expected = *columns.get_or_insert(n);
        if n != expected || !(n == BEAT_LEN || n == BEAT_LEN + 1) {
            return err(format!(
                "row {row}: {n} columns; every row needs {BEAT_LEN} values, or {} with a label last{}",
                BEAT_LEN + 1,
                if n != expected && (expected == BEAT_LEN || expected == BEAT_LEN + 1) {
                    format!(" (earlier rows had {expected})")
                } else {
                    String::new()
                }
            ));
        }
        let mut beat = [0f32; BEAT_LEN];
        for (i, cell) in cells(line).enumerate() {
            let v = number(row, i + 1, cell)?;
            if i < BEAT_LEN {
                beat[i] = v as f32;
            } else if v.fract() == 0.0 && (0.0..=4.0).contains(&v) {
                labels.push(v as i64);
            } else {
                return err(format!(
                    "row {row}, column {}: label {cell:?} must be a class 0 to 4 (0 = normal)",
                    i + 1
                ));
            }
        }
        beats.push(beat);
        Ok(())
    }
}

/// A continuous recording in CSV being read: one value per line (rate given),
/// or a time column (seconds) and lead columns, with an optional header row
/// and an optional units row.
pub struct RecordingCsv {
    lines: Lines,
    given_fs: Option<f64>,
    lead: Option<String>,
    header: Option<Vec<String>>,
    /// Index of the column read, once known.
    column: Option<usize>,
    columns: usize,
    times: (Option<f64>, Option<f64>, usize),
    pub samples: Vec<f32>,
}

/// A parsed recording: one lead's samples in mV.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedRecording {
    pub fs: f64,
    pub lead: String,
    pub samples: Vec<f32>,
}

impl RecordingCsv {
    /// `fs` is required for single-column files; `lead` picks a column by header name.
    pub fn new(fs: Option<f64>, lead: Option<String>) -> Self {
        RecordingCsv {
            lines: Lines::default(),
            given_fs: fs,
            lead: lead.filter(|l| !l.is_empty()),
            header: None,
            column: None,
            columns: 0,
            times: (None, None, 0),
            samples: Vec::new(),
        }
    }

    pub fn push(&mut self, bytes: &[u8]) -> Result<(), UploadError> {
        let mut lines = std::mem::take(&mut self.lines);
        let r = lines.push(bytes, |row, line| self.row(row, line));
        self.lines = lines;
        r
    }

    pub fn finish(mut self) -> Result<ParsedRecording, UploadError> {
        let mut lines = std::mem::take(&mut self.lines);
        lines.finish(|row, line| self.row(row, line))?;
        if self.samples.is_empty() {
            return err("the file holds no samples");
        }
        let fs = match (self.columns, self.times) {
            (1, _) => self.given_fs.ok_or_else(|| {
                UploadError("a single-column file needs the sampling rate (fs)".into())
            })?,
            (_, (Some(first), Some(last), n)) if n >= 2 && last > first => {
                (n - 1) as f64 / (last - first)
            }
            _ => return err("the time column needs at least two increasing times"),
        };
        let fs = (fs * 1000.0).round() / 1000.0;
        if !(crate::formats::wire::FS_RANGE.0..=crate::formats::wire::FS_RANGE.1).contains(&fs) {
            return err(format!(
                "sampling rate {fs} Hz is outside {}–{} Hz",
                crate::formats::wire::FS_RANGE.0,
                crate::formats::wire::FS_RANGE.1
            ));
        }
        let lead = match (&self.header, self.column) {
            (Some(h), Some(c)) => h.get(c).cloned().unwrap_or_default(),
            _ => self.lead.clone().unwrap_or_default(),
        };
        Ok(ParsedRecording {
            fs,
            lead,
            samples: self.samples,
        })
    }

    fn row(&mut self, row: usize, line: &str) -> Result<(), UploadError> {
        if line.trim().is_empty() {
            return Ok(());
        }
        if !is_numeric_row(line) {
            if self.samples.is_empty() && self.header.is_none() {
                self.header = Some(cells(line).map(str::to_string).collect());
                return Ok(());
            }
            if self.samples.is_empty() && row == 2 {
                return Ok(()); // a units row, as PhysioNet's CSV export writes
            }
        }
        let n = cells(line).count();
        if self.column.is_none() {
            self.columns = n;
            self.column = Some(self.pick_column(n)?);
        }
        if n != self.columns {
            return err(format!(
                "row {row}: {n} columns where earlier rows had {}",
                self.columns
            ));
        }
        let col = self.column.unwrap_or(0);
        let mut value = None;
        for (i, cell) in cells(line).enumerate() {
            if self.columns > 1 && i == 0 {
                let t = number(row, 1, cell)?;
                let (first, last, count) = &mut self.times;
                if last.is_some_and(|l| t <= l) {
                    return err(format!("row {row}, column 1: time {t} does not increase"));
                }
                first.get_or_insert(t);
                *last = Some(t);
                *count += 1;
            } else if i == col {
                value = Some(number(row, i + 1, cell)? as f32);
            }
        }
        self.samples.push(value.unwrap_or(0.0));
        if let Some(fs) = self.given_fs.filter(|_| self.columns > 1) {
            let (Some(first), Some(last), count) = self.times else {
                return Ok(());
            };
            let expected = first + (count - 1) as f64 / fs;
            if (last - expected).abs() > 0.5 / fs {
                return err(format!(
                    "row {row}, column 1: time {last} does not match the given rate of {fs} Hz"
                ));
            }
        }
        Ok(())
    }

    fn pick_column(&self, n: usize) -> Result<usize, UploadError> {
        if n == 1 {
            return Ok(0);
        }
        let Some(lead) = &self.lead else {
            // The first lead column; MLII when the header names it.
            return Ok(self
                .header
                .as_ref()
                .and_then(|h| h.iter().position(|c| c == "MLII"))
                .unwrap_or(1));
        };
        let header = self.header.as_ref().ok_or_else(|| {
            UploadError(format!(
                "lead {lead:?} was asked for but the file has no header row"
            ))
        })?;
        header
            .iter()
            .skip(1)
            .position(|c| c == lead)
            .map(|p| p + 1)
            .ok_or_else(|| {
                UploadError(format!(
                    "lead {lead:?} is not a column; the header has {}",
                    header.join(", ")
                ))
            })
    }
}

/// What an upload holds once read and checked.
pub enum Parsed {
    Beats {
        beats: Vec<[f32; BEAT_LEN]>,
        labels: Option<Vec<i64>>,
    },
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
                parsed = Some((filename, p.finish().map_err(|e| Failure::bad_request(e.0))?));
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
        (Parsed::Beats { .. }, d) => d.unwrap_or_default(),
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
            }),
        ))
    })
    .await
    .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beats_row(v: f32, label: Option<&str>) -> String {
        let mut s = vec![format!("{v}"); BEAT_LEN].join(",");
        if let Some(l) = label {
            s.push(',');
            s.push_str(l);
        }
        s
    }

    fn feed(p: &mut BeatsCsv, text: &str, piece: usize) -> Result<(), UploadError> {
        for c in text.as_bytes().chunks(piece) {
            p.push(c)?;
        }
        Ok(())
    }

    #[test]
    fn beats_with_and_without_labels_in_any_pieces() {
        let text = format!(
            "{}\r\n{}\n",
            beats_row(0.5, Some("0.0")),
            beats_row(0.25, Some("2"))
        );
        for piece in [1, 7, 4096] {
            let mut p = BeatsCsv::default();
            feed(&mut p, &text, piece).unwrap();
            let Parsed::Beats { beats, labels } = p.finish().unwrap() else {
                panic!("beats expected")
            };
            assert_eq!(beats.len(), 2);
            assert_eq!(beats[1][186], 0.25);
            assert_eq!(labels, Some(vec![0, 2]));
        }
        let mut p = BeatsCsv::default();
        feed(&mut p, &format!("\u{feff}{}", beats_row(1.0, None)), 100).unwrap();
        assert!(matches!(p.finish(), Ok(Parsed::Beats { labels: None, .. })));
    }

    #[test]
    fn bad_beats_files_name_row_and_column() {
        let bad = |text: String| {
            let mut p = BeatsCsv::default();
            feed(&mut p, &text, 50)
                .and_then(|_| p.finish().map(|_| ()))
                .unwrap_err()
                .0
        };
        let mut row = beats_row(0.1, None);
        row = row.replacen("0.1", "abc", 1);
        assert!(bad(format!("{}\n{row}\n", beats_row(0.1, None))).starts_with("row 2, column 1"));
        let nan = format!("0.1,NaN,{}", vec!["0.1"; BEAT_LEN - 2].join(","));
        assert!(bad(nan).contains("column 2"), "NaN is refused");
        assert!(bad("1,2,3\n".into()).contains("3 columns"));
        let mixed = format!("{}\n{}\n", beats_row(0.1, None), beats_row(0.1, Some("1")));
        assert!(bad(mixed).contains("earlier rows had 187"));
        assert!(bad(beats_row(0.1, Some("7"))).contains("label"));
        assert!(bad(String::new()).contains("no beats"));
        let mut p = BeatsCsv::default();
        let e = p.push(&[0xff, 0xfe, b'\n']).unwrap_err().0;
        assert!(e.contains("UTF-8"), "{e}");
        let mut p = BeatsCsv::default();
        let e = p.push(&vec![b'1'; MAX_LINE + 1]).unwrap_err().0;
        assert!(e.contains("longer than"), "{e}");
    }

    #[test]
    fn recordings_with_time_column_header_and_units() {
        let mut text = String::from("'Elapsed time','MLII','V5'\n'hh:mm:ss.mmm','(mV)','(mV)'\n");
        for i in 0..720 {
            text.push_str(&format!(
                "{:.6},{},{}\n",
                i as f64 / 360.0,
                i as f32 * 0.001,
                -1.0
            ));
        }
        let mut p = RecordingCsv::new(None, None);
        for c in text.as_bytes().chunks(33) {
            p.push(c).unwrap();
        }
        let r = p.finish().unwrap();
        assert_eq!(
            (r.fs, r.lead.as_str(), r.samples.len()),
            (360.0, "MLII", 720)
        );
        assert_eq!(r.samples[10], 10.0f32 * 0.001);

        let mut p = RecordingCsv::new(None, Some("V5".into()));
        p.push(text.as_bytes()).unwrap();
        assert_eq!(p.finish().unwrap().samples[0], -1.0);

        let mut p = RecordingCsv::new(Some(250.0), None);
        p.push(b"0.1\n0.2\n0.3").unwrap();
        let r = p.finish().unwrap();
        assert_eq!((r.fs, r.samples.len()), (250.0, 3));
    }

    #[test]
    fn bad_recordings_are_named() {
        let run = |fs: Option<f64>, lead: Option<&str>, text: &str| {
            let mut p = RecordingCsv::new(fs, lead.map(str::to_string));
            p.push(text.as_bytes())
                .and_then(|_| p.finish())
                .unwrap_err()
                .0
        };
        assert!(run(None, None, "0.1\n0.2\n").contains("sampling rate"));
        assert!(run(Some(5.0), None, "0.1\n0.2\n").contains("outside"));
        assert!(run(None, None, "0,1\n0.01,x\n").contains("row 2, column 2"));
        assert!(run(None, None, "0,1\n0,1\n").contains("does not increase"));
        assert!(run(None, Some("V1"), "t,MLII\n0,1\n").contains("not a column"));
        assert!(run(None, None, "0,1\n0.1,1,2\n").contains("3 columns"));
        assert!(run(Some(360.0), None, "").contains("no samples"));
        assert!(run(None, None, "0,inf\n").contains("finite"));
    }
}
