//! The `.hea` header: record line and one line per signal.

use super::WfdbError;
use std::path::Path;

/// WFDB's default gain (ADC units per physical unit) when the header gives 0 or none.
pub const DEFAULT_GAIN: f64 = 200.0;

/// A parsed WFDB header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// Record name from the first line.
    pub record: String,
    /// Sampling frequency in Hz (per signal; multi-frequency records are rejected).
    pub fs: f64,
    /// Number of samples per signal, if the header states it.
    pub samples: Option<u64>,
    /// One entry per signal, in file order.
    pub signals: Vec<SignalSpec>,
}

/// One signal line of a header.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalSpec {
    /// Signal file name, relative to the header's directory.
    pub file: String,
    /// Storage format (212 and 16 are supported).
    pub format: u32,
    /// Byte offset of the first sample in the file.
    pub byte_offset: u64,
    /// ADC units per physical unit (0 in the file means [`DEFAULT_GAIN`]).
    pub gain: f64,
    /// ADC value corresponding to 0 physical units.
    pub baseline: i32,
    /// Physical units, `mV` when unstated.
    pub units: String,
    /// ADC resolution in bits, if stated.
    pub adc_resolution: Option<u32>,
    /// ADC zero, if stated.
    pub adc_zero: i32,
    /// First sample value, if stated (used to verify decoding).
    pub initial_value: Option<i32>,
    /// 16-bit checksum of all samples, if stated (used to verify decoding).
    pub checksum: Option<i16>,
    /// Signal name, e.g. `MLII` (empty when unstated).
    pub description: String,
}

impl Header {
    /// Index of the first signal whose description equals `lead` (case-insensitive).
    pub fn channel_of(&self, lead: &str) -> Option<usize> {
        self.signals
            .iter()
            .position(|s| s.description.eq_ignore_ascii_case(lead))
    }
}

/// Parses header text; `path` is only used in error messages.
pub fn parse_header(path: &Path, text: &str) -> Result<Header, WfdbError> {
    let err = |line: usize, msg: String| WfdbError::invalid(path, format!("line {line}: {msg}"));
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r').trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));

    let (n, record_line) = lines
        .next()
        .ok_or_else(|| WfdbError::invalid(path, "empty header: no record line"))?;
    let fields: Vec<&str> = record_line.split_whitespace().collect();
    let record = fields[0].split('/').next().unwrap_or(fields[0]).to_string();
    if record.is_empty() {
        return Err(err(n, "missing record name".into()));
    }
    let nsig: usize = match fields.get(1) {
        Some(f) => f
            .parse()
            .map_err(|_| err(n, format!("number of signals {f:?} is not an integer")))?,
        None => return Err(err(n, "missing number of signals".into())),
    };
    if nsig > 64 {
        return Err(err(
            n,
            format!("{nsig} signals is more than the 64 supported"),
        ));
    }
    let fs = match fields.get(2) {
        Some(f) => {
            let freq = f.split(['/', '(']).next().unwrap_or(f);
            let fs: f64 = freq
                .parse()
                .map_err(|_| err(n, format!("sampling frequency {f:?} is not a number")))?;
            if !(fs.is_finite() && fs > 0.0) {
                return Err(err(n, format!("sampling frequency {f:?} must be positive")));
            }
            fs
        }
        None => 250.0,
    };
    let samples = match fields.get(3) {
        Some(f) => Some(
            f.parse::<u64>()
                .map_err(|_| err(n, format!("number of samples {f:?} is not an integer")))?,
        ),
        None => None,
    };

    let mut signals = Vec::with_capacity(nsig);
    for _ in 0..nsig {
        let (n, line) = lines.next().ok_or_else(|| {
            WfdbError::invalid(
                path,
                format!(
                    "header declares {nsig} signals but has only {} signal lines",
                    signals.len()
                ),
            )
        })?;
        signals.push(parse_signal_line(line).map_err(|m| err(n, m))?);
    }
    Ok(Header {
        record,
        fs,
        samples,
        signals,
    })
}

fn parse_signal_line(line: &str) -> Result<SignalSpec, String> {
    let mut parts = line.split_whitespace();
    let file = parts.next().ok_or("missing file name")?.to_string();
    let fmt_field = parts.next().ok_or("missing format")?;
    let (fmt_head, byte_offset) = match fmt_field.split_once('+') {
        Some((h, off)) => (
            h,
            off.parse::<u64>()
                .map_err(|_| format!("byte offset in {fmt_field:?} is not an integer"))?,
        ),
        None => (fmt_field, 0),
    };
    let fmt_digits: String = fmt_head
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let format: u32 = fmt_digits
        .parse()
        .map_err(|_| format!("format {fmt_field:?} is not a number"))?;
    if fmt_head[fmt_digits.len()..].starts_with('x') {
        return Err(format!(
            "format {fmt_field:?}: multi-frequency records (samples per frame > 1) are not supported"
        ));
    }

    let mut spec = SignalSpec {
        file,
        format,
        byte_offset,
        gain: DEFAULT_GAIN,
        baseline: 0,
        units: "mV".into(),
        adc_resolution: None,
        adc_zero: 0,
        initial_value: None,
        checksum: None,
        description: String::new(),
    };
    let mut explicit_baseline = None;
    if let Some(gain_field) = parts.next() {
        let (g, units) = match gain_field.split_once('/') {
            Some((g, u)) => (g, Some(u)),
            None => (gain_field, None),
        };
        let (g, base) = match g.split_once('(') {
            Some((g, b)) => (g, Some(b.trim_end_matches(')'))),
            None => (g, None),
        };
        let gain: f64 = g
            .parse()
            .map_err(|_| format!("gain {gain_field:?} is not a number"))?;
        if !gain.is_finite() || gain < 0.0 {
            return Err(format!("gain {gain_field:?} must be a non-negative number"));
        }
        spec.gain = if gain == 0.0 { DEFAULT_GAIN } else { gain };
        if let Some(b) = base {
            explicit_baseline = Some(
                b.parse::<i32>()
                    .map_err(|_| format!("baseline in {gain_field:?} is not an integer"))?,
            );
        }
        if let Some(u) = units {
            spec.units = u.to_string();
        }
    }
    let mut int_field = |name: &str| -> Result<Option<i64>, String> {
        match parts.next() {
            Some(f) => f
                .parse::<i64>()
                .map(Some)
                .map_err(|_| format!("{name} {f:?} is not an integer")),
            None => Ok(None),
        }
    };
    let in_i32 =
        |name: &str, v: i64| i32::try_from(v).map_err(|_| format!("{name} {v} is out of range"));
    spec.adc_resolution = int_field("ADC resolution")?.map(|v| v.clamp(0, 64) as u32);
    spec.adc_zero = in_i32("ADC zero", int_field("ADC zero")?.unwrap_or(0))?;
    spec.initial_value = match int_field("initial value")? {
        Some(v) => Some(in_i32("initial value", v)?),
        None => None,
    };
    spec.checksum = int_field("checksum")?.map(|v| v as i16);
    let _block_size = int_field("block size")?;
    spec.description = parts.collect::<Vec<_>>().join(" ");
    spec.baseline = explicit_baseline.unwrap_or(spec.adc_zero);
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MITDB_100: &str = "100 2 360 650000\r\n100.dat 212 200 11 1024 995 -22131 0 MLII\r\n100.dat 212 200 11 1024 1011 20052 0 V5\r\n# 69 M 1085 1629 x1\r\n";

    #[test]
    fn parses_crlf_header() {
        let h = parse_header(Path::new("100.hea"), MITDB_100).unwrap();
        assert_eq!(h.record, "100");
        assert_eq!(h.fs, 360.0);
        assert_eq!(h.samples, Some(650000));
        assert_eq!(h.signals.len(), 2);
        let s = &h.signals[0];
        assert_eq!(
            (s.format, s.gain, s.adc_zero, s.baseline),
            (212, 200.0, 1024, 1024)
        );
        assert_eq!((s.initial_value, s.checksum), (Some(995), Some(-22131)));
        assert_eq!(h.signals[1].description, "V5");
        assert_eq!(h.channel_of("mlii"), Some(0));
    }

    #[test]
    fn lf_and_crlf_give_the_same_header() {
        let lf = MITDB_100.replace("\r\n", "\n");
        assert_eq!(
            parse_header(Path::new("a"), MITDB_100).unwrap(),
            parse_header(Path::new("a"), &lf).unwrap()
        );
    }

    #[test]
    fn zero_gain_means_200_and_baseline_and_units_are_read() {
        let h = parse_header(
            Path::new("bw.hea"),
            "bw 2 360 650000\nbw.dat 212 0 12 0 -29 -3562 0 noise1\nbw.dat 16+24 100(-5)/uV 12 3 7 9 0 noise 2\n",
        )
        .unwrap();
        assert_eq!(h.signals[0].gain, 200.0);
        let s = &h.signals[1];
        assert_eq!(
            (s.format, s.byte_offset, s.gain, s.baseline),
            (16, 24, 100.0, -5)
        );
        assert_eq!((s.units.as_str(), s.adc_zero), ("uV", 3));
        assert_eq!(s.description, "noise 2");
    }

    #[test]
    fn bad_headers_name_the_problem() {
        let cases = [
            ("", "empty header"),
            ("100 x 360", "number of signals"),
            ("100 2 abc 10", "sampling frequency"),
            ("100 2 -360 10", "must be positive"),
            (
                "100 2 360 10\n100.dat 212 200 11 1024 995 -22131 0 MLII\n",
                "only 1 signal lines",
            ),
            ("100 1 360 10\n100.dat x212 200\n", "format"),
            ("100 1 360 10\n100.dat 212 abc\n", "gain"),
            ("100 1 360 10\n100.dat 212 200 11 zero\n", "ADC zero"),
        ];
        for (text, expect) in cases {
            let e = parse_header(Path::new("rec.hea"), text)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("rec.hea") && e.contains(expect),
                "{text:?} gave {e}"
            );
        }
    }
}
