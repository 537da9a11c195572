//! A whole record in memory: header plus decoded, verified samples.

use super::header::{Header, parse_header};
use super::signal::{decode_16, decode_212, samples_in};
use super::{WfdbError, read_file};
use std::path::{Path, PathBuf};

/// A record's header and its samples in ADC units, one vector per signal.
#[derive(Debug, Clone)]
pub struct Record {
    /// Path of the header file (`<name>.hea`).
    pub header_path: PathBuf,
    /// The parsed header.
    pub header: Header,
    /// Samples in ADC units, `samples[signal][i]`.
    pub samples: Vec<Vec<i32>>,
    /// What was wrong but not refused (a checksum mismatch outside strict mode).
    pub warnings: Vec<String>,
}

/// How strictly [`read_record_with`] checks a record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Refuse a record whose signal checksum disagrees with its header. Off by
    /// default: WFDB's own tools only warn, and some published databases (the
    /// PhysioNet/CinC 2017 AF challenge) write 0 in the checksum field. A first
    /// sample that disagrees is refused either way: that is a wrong format.
    pub strict_checksums: bool,
}

impl ReadOptions {
    /// The default, or strict checksums when `HOLTER_WFDB_STRICT=1`.
    pub fn from_env() -> Self {
        ReadOptions {
            strict_checksums: std::env::var("HOLTER_WFDB_STRICT").is_ok_and(|v| v == "1"),
        }
    }
}

impl Record {
    /// Number of samples per signal (every signal has the same number).
    pub fn len(&self) -> usize {
        self.samples.first().map_or(0, Vec::len)
    }

    /// True when the record holds no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Signal `channel` in physical units (usually mV): `(adc - baseline) / gain`.
    pub fn physical(&self, channel: usize) -> Vec<f32> {
        let spec = &self.header.signals[channel];
        let scale = 1.0 / spec.gain;
        let baseline = spec.baseline as f64;
        self.samples[channel]
            .iter()
            .map(|&v| ((v as f64 - baseline) * scale) as f32)
            .collect()
    }
}

/// Reads `<path>.hea` and its signal files with [`ReadOptions::from_env`].
/// `path` may name the record with or without the `.hea` extension. The first
/// value and checksum given in the header are verified against the decoded
/// samples; a checksum mismatch is logged and kept in [`Record::warnings`].
pub fn read_record(path: &Path) -> Result<Record, WfdbError> {
    read_record_with(path, ReadOptions::from_env())
}

/// [`read_record`] with explicit options.
pub fn read_record_with(path: &Path, options: ReadOptions) -> Result<Record, WfdbError> {
    let header_path = if path.extension().is_some_and(|e| e == "hea") {
        path.to_path_buf()
    } else {
        path.with_extension("hea")
    };
    let text = String::from_utf8(read_file(&header_path)?)
        .map_err(|_| WfdbError::invalid(&header_path, "header is not valid UTF-8 text"))?;
    let header = parse_header(&header_path, &text)?;
    if header.signals.is_empty() {
        return Err(WfdbError::invalid(&header_path, "record has no signals"));
    }
    let dir = header_path.parent().unwrap_or(Path::new("."));

    // Signals sharing a file are interleaved frame by frame, in header order.
    let mut samples: Vec<Vec<i32>> = vec![Vec::new(); header.signals.len()];
    let mut files: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, s) in header.signals.iter().enumerate() {
        match files.iter_mut().find(|(f, _)| *f == s.file) {
            Some((_, members)) => members.push(i),
            None => files.push((&s.file, vec![i])),
        }
    }
    for (file, members) in &files {
        let first = &header.signals[members[0]];
        let data_path = dir.join(file);
        if members
            .iter()
            .any(|&m| header.signals[m].format != first.format)
        {
            return Err(WfdbError::invalid(
                &header_path,
                format!("signals stored in {file} use different formats"),
            ));
        }
        if !matches!(first.format, 212 | 16) {
            return Err(WfdbError::invalid(
                &header_path,
                format!(
                    "{file}: format {} is not supported (only 212 and 16)",
                    first.format
                ),
            ));
        }
        let bytes = read_file(&data_path)?;
        let offset = usize::try_from(first.byte_offset).unwrap_or(usize::MAX);
        let body = bytes.get(offset..).ok_or_else(|| {
            WfdbError::invalid(
                &data_path,
                format!(
                    "file is {} bytes, shorter than its byte offset {offset}",
                    bytes.len()
                ),
            )
        })?;
        let nsig = members.len();
        let available = samples_in(first.format, body.len()) / nsig;
        let frames = match header.samples {
            Some(n) if n > 0 => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                if n > available {
                    return Err(WfdbError::invalid(
                        &data_path,
                        format!(
                            "truncated: header declares {n} samples per signal, file holds {available}"
                        ),
                    ));
                }
                n
            }
            _ => available,
        };
        let total = frames * nsig;
        let flat = match first.format {
            212 => decode_212(body, total),
            _ => decode_16(body, total),
        }
        .ok_or_else(|| WfdbError::invalid(&data_path, "truncated sample data"))?;
        for (k, &m) in members.iter().enumerate() {
            samples[m] = flat.iter().skip(k).step_by(nsig).copied().collect();
        }
    }

    let mut warnings = Vec::new();
    for (i, spec) in header.signals.iter().enumerate() {
        let sig = &samples[i];
        if let (Some(expected), Some(&got)) = (spec.initial_value, sig.first())
            && expected != got
        {
            return Err(WfdbError::invalid(
                &header_path,
                format!(
                    "signal {i} ({}): first sample is {got}, header says {expected}; the signal file is corrupt or not in format {}",
                    spec.description, spec.format
                ),
            ));
        }
        if let Some(expected) = spec.checksum {
            let sum = checksum(sig);
            if sum != expected && header.samples.is_some() {
                let message = format!(
                    "signal {i} ({}): checksum is {sum}, header says {expected}",
                    spec.description
                );
                if options.strict_checksums {
                    return Err(WfdbError::invalid(
                        &header_path,
                        format!(
                            "{message}; the signal file is corrupt (strict checksums: HOLTER_WFDB_STRICT=1)"
                        ),
                    ));
                }
                tracing::warn!(file = %header_path.display(), "{message}; read anyway");
                warnings.push(message);
            }
        }
    }
    // Signals in separate files must agree on their length.
    let len = samples.first().map_or(0, Vec::len);
    if let Some((i, s)) = samples.iter().enumerate().find(|(_, s)| s.len() != len) {
        return Err(WfdbError::invalid(
            &header_path,
            format!(
                "signal {i} has {} samples but signal 0 has {len}: its signal files disagree",
                s.len()
            ),
        ));
    }
    Ok(Record {
        header_path,
        header,
        samples,
        warnings,
    })
}

/// WFDB's 16-bit checksum of a signal: the sum of its samples modulo 2^16.
pub fn checksum(samples: &[i32]) -> i16 {
    samples.iter().fold(0i32, |acc, &v| acc.wrapping_add(v)) as i16
}

/// Names of the records in `dir` that have a header, a signal file and `.atr` annotations, sorted.
pub fn list_records(dir: &Path) -> Result<Vec<String>, WfdbError> {
    let entries = std::fs::read_dir(dir).map_err(|e| WfdbError::io(dir, e))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".hea")?.to_string();
            dir.join(format!("{stem}.atr")).exists().then_some(stem)
        })
        .collect();
    names.sort();
    Ok(names)
}
