//! The wire format devices publish ECG in (specified in `docs/wire-format.md`).
//!
//! Topic `holter/<device_id>/ecg`; the payload is either JSON (first byte `{`)
//! or a little-endian binary frame (first bytes `HB`). Both carry a stream id,
//! a sequence number, the time of the first sample, the sampling rate, the lead,
//! the gain and the samples. [`decode`] turns a payload into a [`Frame`] in mV
//! or a [`Reject`] whose [`reason`](Reject::reason) labels the metrics.

use serde::{Deserialize, Serialize};

/// Lowest and highest sampling rates accepted, Hz (those the extractor supports).
pub const FS_RANGE: (f64, f64) = (100.0, 1000.0);
/// Most samples in one message (10 s at 1000 Hz).
pub const MAX_SAMPLES: usize = 10_000;
/// The longest time one message can span: `MAX_SAMPLES` at the lowest rate (µs).
pub const MAX_MESSAGE_SPAN_US: i64 = 100_000_000;
/// Longest lead name.
pub const MAX_LEAD_LEN: usize = 16;
/// Longest device id.
pub const MAX_DEVICE_ID_LEN: usize = 64;
/// First bytes of a binary frame, and its version.
pub const BINARY_MAGIC: [u8; 2] = *b"HB";
pub const BINARY_VERSION: u8 = 1;
/// Binary header length before the lead name.
pub const BINARY_HEADER_LEN: usize = 36;
/// Flag bit: this is the stream's last frame (flush its beats now).
pub const FLAG_END: u8 = 1;

/// How a device's integer counts map to mV: `mV = (count − baseline) / gain`.
/// The store keeps the counts and this scale rather than the mV values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    /// Counts per mV (finite, non-zero).
    pub gain: f64,
    pub baseline: f64,
}

impl Scale {
    /// One count in mV: the one expression every decoder uses, so that a
    /// sample decoded again from stored counts is the same `f32`.
    pub fn millivolts(self, count: f64) -> f32 {
        ((count - self.baseline) / self.gain) as f32
    }
}

/// One decoded message: consecutive samples of one lead of one device.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub device: String,
    /// Changes when the device restarts its sequence numbers (e.g. after a reboot).
    pub stream: u32,
    /// Increases by one per message within a stream.
    pub seq: u64,
    /// Time of the first sample, µs since the Unix epoch.
    pub t0_us: i64,
    pub fs: f64,
    pub lead: String,
    /// Samples in mV.
    pub samples: Vec<f32>,
    /// The gain and baseline the samples were converted with.
    pub scale: Scale,
    /// The device says this is the stream's last message.
    pub end: bool,
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Reject {
    #[error("topic {0:?} does not match the subscription's pattern")]
    BadTopic(String),
    #[error("device id {0:?}: use 1 to 64 characters from A-Z a-z 0-9 _ - .")]
    BadDeviceId(String),
    #[error("payload of {0} bytes is larger than the configured maximum")]
    Oversized(usize),
    #[error("payload is neither JSON (starts with '{{') nor a binary frame (starts with \"HB\")")]
    UnknownEncoding,
    #[error("malformed payload: {0}")]
    Malformed(String),
    #[error("sampling rate {0} Hz is outside 100 to 1000 Hz")]
    WrongRate(f64),
    #[error("sample {0} is not a finite number")]
    NonFinite(usize),
    #[error("no samples")]
    Empty,
    #[error("{0} samples in one message; at most 10000")]
    TooManySamples(usize),
}

impl Reject {
    /// Short label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Reject::BadTopic(_) => "bad_topic",
            Reject::BadDeviceId(_) => "bad_device_id",
            Reject::Oversized(_) => "oversized",
            Reject::UnknownEncoding => "unknown_encoding",
            Reject::Malformed(_) => "malformed",
            Reject::WrongRate(_) => "wrong_rate",
            Reject::NonFinite(_) => "non_finite",
            Reject::Empty => "empty",
            Reject::TooManySamples(_) => "too_many_samples",
        }
    }

    /// Every reason label, for pre-registering metrics.
    pub const REASONS: [&'static str; 9] = [
        "bad_topic",
        "bad_device_id",
        "oversized",
        "unknown_encoding",
        "malformed",
        "wrong_rate",
        "non_finite",
        "empty",
        "too_many_samples",
    ];
}

/// Checks a device id: 1–64 characters of `A-Z a-z 0-9 _ - .`, not only dots
/// (`.` and `..` would name no page: `/devices/..` is the parent path).
pub fn check_device_id(id: &str) -> Result<(), Reject> {
    let ok = !id.is_empty()
        && id.len() <= MAX_DEVICE_ID_LEN
        && !id.bytes().all(|b| b == b'.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Reject::BadDeviceId(id.chars().take(80).collect()))
    }
}

/// `filter` without an MQTT shared-subscription prefix (`$share/<group>/`):
/// the topics it matches.
pub fn unshared_filter(filter: &str) -> &str {
    filter
        .strip_prefix("$share/")
        .and_then(|t| t.split_once('/').map(|(_, rest)| rest))
        .unwrap_or(filter)
}

/// The device id in `topic` for a filter with one `+` level (a `$share/<group>/`
/// prefix is ignored; a `{partition}` level matches a partition number).
pub fn device_from_topic(filter: &str, topic: &str) -> Result<String, Reject> {
    let filter = unshared_filter(filter);
    let bad = || Reject::BadTopic(topic.chars().take(200).collect());
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    let mut device = None;
    loop {
        match (f.next(), t.next()) {
            (None, None) => break,
            (Some("+"), Some(level)) => device = Some(level),
            (Some(super::partition::PLACEHOLDER), Some(level))
                if !level.is_empty() && level.bytes().all(|b| b.is_ascii_digit()) => {}
            (Some(a), Some(b)) if a == b => {}
            _ => return Err(bad()),
        }
    }
    let device = device.ok_or_else(bad)?;
    check_device_id(device)?;
    Ok(device.to_string())
}

/// The JSON encoding.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonFrame {
    #[serde(default)]
    stream: u32,
    seq: u64,
    t0_us: i64,
    fs: f64,
    #[serde(default)]
    lead: String,
    /// Counts per mV; samples are divided by it (default 1: samples in mV).
    #[serde(default = "one")]
    gain: f64,
    #[serde(default)]
    baseline: f64,
    samples: Vec<f64>,
    #[serde(default)]
    end: bool,
}

fn one() -> f64 {
    1.0
}

/// Decodes a payload from `device` (already validated), refusing anything larger than `max_bytes`.
pub fn decode(device: &str, payload: &[u8], max_bytes: usize) -> Result<Frame, Reject> {
    if payload.len() > max_bytes {
        return Err(Reject::Oversized(payload.len()));
    }
    let first = payload.iter().find(|b| !b.is_ascii_whitespace());
    let frame = match first {
        Some(b'{') => decode_json(device, payload)?,
        _ if payload.starts_with(&BINARY_MAGIC) => decode_binary(device, payload)?,
        None => return Err(Reject::Empty),
        _ => return Err(Reject::UnknownEncoding),
    };
    check(&frame)?;
    Ok(frame)
}

fn decode_json(device: &str, payload: &[u8]) -> Result<Frame, Reject> {
    let j: JsonFrame =
        serde_json::from_slice(payload).map_err(|e| Reject::Malformed(e.to_string()))?;
    if !(j.gain.is_finite() && j.gain != 0.0 && j.baseline.is_finite()) {
        return Err(Reject::Malformed("gain must be finite and non-zero".into()));
    }
    if j.samples.len() > MAX_SAMPLES {
        return Err(Reject::TooManySamples(j.samples.len()));
    }
    let scale = Scale {
        gain: j.gain,
        baseline: j.baseline,
    };
    let samples = j.samples.iter().map(|&x| scale.millivolts(x)).collect();
    Ok(Frame {
        device: device.to_string(),
        stream: j.stream,
        seq: j.seq,
        t0_us: j.t0_us,
        fs: j.fs,
        lead: j.lead,
        samples,
        scale,
        end: j.end,
    })
}

fn decode_binary(device: &str, p: &[u8]) -> Result<Frame, Reject> {
    let short = || Reject::Malformed(format!("binary frame of {} bytes is truncated", p.len()));
    if p.len() < BINARY_HEADER_LEN {
        return Err(short());
    }
    let u32_at = |i: usize| u32::from_le_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
    let u64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&p[i..i + 8]);
        u64::from_le_bytes(b)
    };
    if p[2] != BINARY_VERSION {
        return Err(Reject::Malformed(format!(
            "binary frame version {} (this daemon reads version {BINARY_VERSION})",
            p[2]
        )));
    }
    let flags = p[3];
    let stream = u32_at(4);
    let seq = u64_at(8);
    let t0_us = u64_at(16) as i64;
    let fs = f32::from_bits(u32_at(24)) as f64;
    let gain = f32::from_bits(u32_at(28)) as f64;
    let baseline = i16::from_le_bytes([p[32], p[33]]) as f64;
    let lead_len = p[34] as usize;
    if lead_len > MAX_LEAD_LEN {
        return Err(Reject::Malformed(format!(
            "lead name of {lead_len} bytes; at most {MAX_LEAD_LEN}"
        )));
    }
    let body = BINARY_HEADER_LEN + lead_len;
    if p.len() < body {
        return Err(short());
    }
    let lead = std::str::from_utf8(&p[BINARY_HEADER_LEN..body])
        .map_err(|_| Reject::Malformed("lead name is not UTF-8".into()))?
        .to_string();
    let data = &p[body..];
    if !data.len().is_multiple_of(2) {
        return Err(Reject::Malformed(
            "odd number of sample bytes (samples are int16)".into(),
        ));
    }
    if data.len() / 2 > MAX_SAMPLES {
        return Err(Reject::TooManySamples(data.len() / 2));
    }
    if !(gain.is_finite() && gain != 0.0) {
        return Err(Reject::Malformed("gain must be finite and non-zero".into()));
    }
    let scale = Scale { gain, baseline };
    let samples = data
        .chunks_exact(2)
        .map(|c| scale.millivolts(i16::from_le_bytes([c[0], c[1]]) as f64))
        .collect();
    Ok(Frame {
        device: device.to_string(),
        stream,
        seq,
        t0_us,
        fs,
        lead,
        samples,
        scale,
        end: flags & FLAG_END != 0,
    })
}

fn check(f: &Frame) -> Result<(), Reject> {
    if f.seq > i64::MAX as u64 {
        return Err(Reject::Malformed("seq must be below 2^63".into()));
    }
    if !(f.fs >= FS_RANGE.0 && f.fs <= FS_RANGE.1) {
        return Err(Reject::WrongRate(f.fs));
    }
    if f.lead.len() > MAX_LEAD_LEN {
        return Err(Reject::Malformed(format!(
            "lead name of {} bytes; at most {MAX_LEAD_LEN}",
            f.lead.len()
        )));
    }
    if f.samples.is_empty() && !f.end {
        return Err(Reject::Empty);
    }
    if let Some(i) = f.samples.iter().position(|x| !x.is_finite()) {
        return Err(Reject::NonFinite(i));
    }
    Ok(())
}

/// Encodes int16 `counts` (at `gain` counts per mV) as a binary frame.
#[allow(clippy::too_many_arguments)]
pub fn encode_binary(
    stream: u32,
    seq: u64,
    t0_us: i64,
    fs: f32,
    gain: f32,
    baseline: i16,
    lead: &str,
    counts: &[i16],
    end: bool,
) -> Vec<u8> {
    let lead = &lead.as_bytes()[..lead.len().min(MAX_LEAD_LEN)];
    let mut p = Vec::with_capacity(BINARY_HEADER_LEN + lead.len() + 2 * counts.len());
    p.extend_from_slice(&BINARY_MAGIC);
    p.push(BINARY_VERSION);
    p.push(if end { FLAG_END } else { 0 });
    p.extend_from_slice(&stream.to_le_bytes());
    p.extend_from_slice(&seq.to_le_bytes());
    p.extend_from_slice(&t0_us.to_le_bytes());
    p.extend_from_slice(&fs.to_le_bytes());
    p.extend_from_slice(&gain.to_le_bytes());
    p.extend_from_slice(&baseline.to_le_bytes());
    p.push(lead.len() as u8);
    p.push(0);
    p.extend_from_slice(lead);
    for c in counts {
        p.extend_from_slice(&c.to_le_bytes());
    }
    p
}

/// Encodes samples (in the units `gain` converts to mV) as JSON.
#[allow(clippy::too_many_arguments)]
pub fn encode_json(
    stream: u32,
    seq: u64,
    t0_us: i64,
    fs: f64,
    gain: f64,
    lead: &str,
    samples: &[f64],
    end: bool,
) -> Vec<u8> {
    let j = JsonFrame {
        stream,
        seq,
        t0_us,
        fs,
        lead: lead.to_string(),
        gain,
        baseline: 0.0,
        samples: samples.to_vec(),
        end,
    };
    serde_json::to_vec(&j).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 256 * 1024;

    #[test]
    fn binary_round_trip() {
        let p = encode_binary(
            3,
            42,
            1_700_000_000_000_000,
            360.0,
            200.0,
            1024,
            "MLII",
            &[1024, 1224, 824],
            false,
        );
        let f = decode("dev-1", &p, MAX).unwrap();
        assert_eq!(
            (f.stream, f.seq, f.t0_us, f.fs),
            (3, 42, 1_700_000_000_000_000, 360.0)
        );
        assert_eq!(f.lead, "MLII");
        assert_eq!(f.samples, vec![0.0, 1.0, -1.0]);
        assert!(!f.end);
        let p = encode_binary(0, 1, 0, 250.0, 1.0, 0, "", &[], true);
        assert!(decode("d", &p, MAX).unwrap().end);
    }

    #[test]
    fn json_round_trip_and_defaults() {
        let p = encode_json(1, 7, 5, 500.0, 1000.0, "II", &[500.0, -250.0], true);
        let f = decode("d", &p, MAX).unwrap();
        assert_eq!(f.samples, vec![0.5, -0.25]);
        assert!(f.end);
        let f = decode(
            "d",
            br#" {"seq":1,"t0_us":0,"fs":360,"samples":[0.1,0.2]}"#,
            MAX,
        )
        .unwrap();
        assert_eq!((f.stream, f.lead.as_str(), f.samples.len()), (0, "", 2));
    }

    #[test]
    fn every_bad_payload_gets_its_reason() {
        let good = encode_binary(0, 1, 0, 360.0, 200.0, 0, "MLII", &[1, 2, 3], false);
        let mut bad_version = good.clone();
        bad_version[2] = 9;
        let mut bad_rate = good.clone();
        bad_rate[24..28].copy_from_slice(&50f32.to_le_bytes());
        let mut nan_gain = good.clone();
        nan_gain[28..32].copy_from_slice(&f32::NAN.to_le_bytes());
        let mut long_lead = good.clone();
        long_lead[34] = 200;
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![0u8; MAX + 1], "oversized"),
            (b"".to_vec(), "empty"),
            (b"   ".to_vec(), "empty"),
            (b"hello".to_vec(), "unknown_encoding"),
            (b"{".to_vec(), "malformed"),
            (
                br#"{"seq":1,"t0_us":0,"fs":360,"samples":[1,"x"]}"#.to_vec(),
                "malformed",
            ),
            (
                br#"{"seq":-1,"t0_us":0,"fs":360,"samples":[1]}"#.to_vec(),
                "malformed",
            ),
            (
                br#"{"seq":1,"t0_us":0,"fs":360,"samples":[1],"extra":1}"#.to_vec(),
                "malformed",
            ),
            (
                br#"{"seq":1,"t0_us":0,"fs":360,"gain":0,"samples":[1]}"#.to_vec(),
                "malformed",
            ),
            (
                br#"{"seq":1,"t0_us":0,"fs":36,"samples":[1]}"#.to_vec(),
                "wrong_rate",
            ),
            (
                br#"{"seq":1,"t0_us":0,"fs":360,"samples":[]}"#.to_vec(),
                "empty",
            ),
            (
                br#"{"seq":1,"t0_us":0,"fs":360,"samples":[1,1e999]}"#.to_vec(),
                "malformed",
            ),
            (
                br#"{"seq":1,"t0_us":0,"fs":360,"samples":[1e300],"gain":1e-300}"#.to_vec(),
                "non_finite",
            ),
            (good[..20].to_vec(), "malformed"),
            (good[..good.len() - 1].to_vec(), "malformed"),
            (bad_version, "malformed"),
            (bad_rate, "wrong_rate"),
            (nan_gain, "malformed"),
            (long_lead, "malformed"),
            (
                encode_binary(0, 1, 0, 360.0, 1.0, 0, "", &vec![0; MAX_SAMPLES + 1], false),
                "too_many_samples",
            ),
        ];
        for (payload, reason) in cases {
            let max = if reason == "too_many_samples" {
                usize::MAX
            } else {
                MAX
            };
            let r = decode("d", &payload, max).unwrap_err();
            assert_eq!(r.reason(), reason, "{r}");
            assert!(Reject::REASONS.contains(&r.reason()));
        }
        // A NaN in JSON is not valid JSON at all.
        assert_eq!(
            decode("d", br#"{"seq":1,"t0_us":0,"fs":360,"samples":[NaN]}"#, MAX)
                .unwrap_err()
                .reason(),
            "malformed"
        );
    }

    #[test]
    fn device_ids_come_from_the_topic() {
        let f = "holter/+/ecg";
        assert_eq!(device_from_topic(f, "holter/p-17/ecg").unwrap(), "p-17");
        assert_eq!(
            device_from_topic("$share/g/holter/+/ecg", "holter/x.1/ecg").unwrap(),
            "x.1"
        );
        assert_eq!(device_from_topic(f, "holter/.a/ecg").unwrap(), ".a");
        let partitioned = "holterp/{partition}/+/ecg";
        assert_eq!(
            device_from_topic(partitioned, "holterp/3/p-17/ecg").unwrap(),
            "p-17"
        );
        for topic in ["holterp/x/p-17/ecg", "holterp//p-17/ecg", "holter/p-17/ecg"] {
            assert_eq!(
                device_from_topic(partitioned, topic).unwrap_err().reason(),
                "bad_topic",
                "{topic}"
            );
        }
        for (topic, reason) in [
            ("holter/a/b/ecg", "bad_topic"),
            ("other/a/ecg", "bad_topic"),
            ("holter/a", "bad_topic"),
            ("holter//ecg", "bad_device_id"),
            ("holter/a b/ecg", "bad_device_id"),
            ("holter/ü/ecg", "bad_device_id"),
            ("holter/./ecg", "bad_device_id"),
            ("holter/../ecg", "bad_device_id"),
            ("holter/.../ecg", "bad_device_id"),
        ] {
            assert_eq!(
                device_from_topic(f, topic).unwrap_err().reason(),
                reason,
                "{topic}"
            );
        }
        let long = format!("holter/{}/ecg", "a".repeat(65));
        assert_eq!(
            device_from_topic(f, &long).unwrap_err().reason(),
            "bad_device_id"
        );
    }
}
