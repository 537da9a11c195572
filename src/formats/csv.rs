//! Recording and beat CSVs, read as they stream in (never held whole) and
//! checked row by row, with errors that name the row and column.
//!
//! Two layouts:
//! - **beats** ([`BeatsCsv`]): the Kaggle layout, 187 values per row and
//!   optionally a 188th label column (0 = normal);
//! - **recording** ([`RecordingCsv`]): a continuous ECG, with a time column in
//!   seconds and one or more lead columns, or one value per line with the
//!   rate given.
//!
//! No HTTP here: the upload code feeds these the pieces of a file as they arrive.

use crate::dsp::BEAT_LEN;
use std::fmt;

/// Longest accepted CSV line (a beats row is about 2 KB).
const MAX_LINE: usize = 64 * 1024;

/// What is wrong with a CSV file, naming the row (and column) at fault.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvError(pub String);

impl fmt::Display for CsvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CsvError {}

fn err<T>(msg: impl Into<String>) -> Result<T, CsvError> {
    Err(CsvError(msg.into()))
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
        mut each: impl FnMut(usize, &str) -> Result<(), CsvError>,
    ) -> Result<(), CsvError> {
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
        mut each: impl FnMut(usize, &str) -> Result<(), CsvError>,
    ) -> Result<(), CsvError> {
        if !self.partial.is_empty() {
            self.emit(&mut each)?;
        }
        Ok(())
    }

    fn emit(
        &mut self,
        each: &mut impl FnMut(usize, &str) -> Result<(), CsvError>,
    ) -> Result<(), CsvError> {
        self.row += 1;
        let mut line = std::mem::take(&mut self.partial);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let mut text = std::str::from_utf8(&line).map_err(|_| {
            CsvError(format!(
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

fn number(row: usize, col: usize, cell: &str) -> Result<f64, CsvError> {
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

/// A parsed beats file: the beats and, when the file had a label column, the labels.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedBeats {
    pub beats: Vec<[f32; BEAT_LEN]>,
    pub labels: Option<Vec<i64>>,
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
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), CsvError> {
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
    pub fn finish(mut self) -> Result<ParsedBeats, CsvError> {
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
        Ok(ParsedBeats {
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
    ) -> Result<(), CsvError> {
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
    /// The counts-to-mV scale, when the samples were integer counts (WFDB).
    pub scale: Option<crate::formats::wire::Scale>,
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

    /// Reads the next piece of the file.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), CsvError> {
        let mut lines = std::mem::take(&mut self.lines);
        let r = lines.push(bytes, |row, line| self.row(row, line));
        self.lines = lines;
        r
    }

    /// Ends the file; returns the chosen lead's samples and the sampling rate.
    pub fn finish(mut self) -> Result<ParsedRecording, CsvError> {
        let mut lines = std::mem::take(&mut self.lines);
        lines.finish(|row, line| self.row(row, line))?;
        if self.samples.is_empty() {
            return err("the file holds no samples");
        }
        let fs = match (self.columns, self.times) {
            (1, _) => self.given_fs.ok_or_else(|| {
                CsvError("a single-column file needs the sampling rate (fs)".into())
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
            scale: None,
        })
    }

    fn row(&mut self, row: usize, line: &str) -> Result<(), CsvError> {
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

    fn pick_column(&self, n: usize) -> Result<usize, CsvError> {
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
            CsvError(format!(
                "lead {lead:?} was asked for but the file has no header row"
            ))
        })?;
        header
            .iter()
            .skip(1)
            .position(|c| c == lead)
            .map(|p| p + 1)
            .ok_or_else(|| {
                CsvError(format!(
                    "lead {lead:?} is not a column; the header has {}",
                    header.join(", ")
                ))
            })
    }
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

    fn feed(p: &mut BeatsCsv, text: &str, piece: usize) -> Result<(), CsvError> {
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
            let ParsedBeats { beats, labels } = p.finish().unwrap();
            assert_eq!(beats.len(), 2);
            assert_eq!(beats[1][186], 0.25);
            assert_eq!(labels, Some(vec![0, 2]));
        }
        let mut p = BeatsCsv::default();
        feed(&mut p, &format!("\u{feff}{}", beats_row(1.0, None)), 100).unwrap();
        assert!(matches!(p.finish(), Ok(ParsedBeats { labels: None, .. })));
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
