//! Beats packed by segment once review no longer needs them as rows.
//!
//! A beat row with its indexes cost about 1.1 KB when its vector was 187
//! `f32`s: some 110 MB a patient-day, six times the raw signal it was cut
//! from. Rows now keep the vector at 10 bits (below), and normal and
//! unreadable beats, which are read as lists and summaries and never found
//! through an index of their own, are packed by the compactor a few minutes
//! after they are stored, into one zstd row per segment and stretch of up to
//! ten minutes (`beat_blocks`). Abnormal beats stay rows: the flagged-beat
//! index that the review pages walk keeps working on them unchanged.
//!
//! Every field but the beat vector comes back bit for bit. The vector is kept
//! at 10 bits over its [0, 1] range (steps of 1/1023): it is the beat signal
//! min-max normalised, so a step is finer than a 5 µV ADC step (MIT-BIH's)
//! for any beat under 5 mV peak to peak; the error is at most 4.9e-4 of the
//! beat's range. (Measured on MIT-BIH while choosing: the vector column takes
//! 34 % more bytes at 12 bits, 28 % fewer at 8.) A vector with values outside
//! [0, 1] (not one the extractor cut) is kept as `f32`. Why not derive the
//! vector from the raw signal on demand: the extractor's filters carry state
//! from the segment's start, so an exact vector would need the whole segment
//! re-analysed, and the raw signal is dropped after
//! `store.raw_retention_days` while beats are kept.
//!
//! Body, before zstd: a version byte, the beat count, the segment's sampling
//! rate (`f64`), the (model, version) pairs the beats name, then one column
//! per field, each prefixed by its length: R times and sample indexes as
//! zigzag varint deltas; a byte of quality, verdict and search-back; a class
//! byte; the model pair's index; the previous and next RR intervals, each
//! a tag (absent, equal to what the sample distance to the neighbouring
//! packed beat gives, or stored) with the stored ones as `f32` byte planes;
//! `p_abnormal` and the class probabilities likewise; the beat vectors as
//! their length, the length before the zero padding and the 10-bit steps as
//! zigzag varints of their difference from a straight line through the two
//! before. Columns group alike bytes, which is what zstd packs
//! best.

use super::StoreError;
use super::codec::{self, Cursor, LinearPredictor, put_varint, unzigzag, zigzag};
use super::rows::{BeatMark, BeatQuery, BeatRow, SegmentKey, Verdict};
use crate::dsp::{BEAT_STEPS as STEPS, Quality, beat_step};
use crate::formats::wfdb::AamiClass;

/// The most beats one block holds, and the longest time it spans.
pub const BLOCK_MAX_BEATS: usize = 2000;
/// See [`BLOCK_MAX_BEATS`].
pub const BLOCK_MAX_SPAN_US: i64 = 10 * 60 * 1_000_000;
/// zstd level: 3 (its default); 6 to 19 pack MIT-BIH's beats 1 % smaller at
/// 2–8 times the cost (measured with `holterd bench storage`).
const LEVEL: i32 = 3;
const VERSION: u8 = 1;
/// The largest error [`pack`] allows itself on a beat vector value.
pub const VALUE_TOLERANCE: f32 = 0.5 / STEPS + f32::EPSILON;

/// Tags of an optional `f32` field.
const ABSENT: u8 = 0;
const PREDICTED: u8 = 1;
const STORED: u8 = 2;

/// A block as stored: the beats of one segment it packs, and where they lie.
#[derive(Debug, Clone, PartialEq)]
pub struct BeatBlockRow {
    pub segment: SegmentKey,
    /// The first and last beat's R time, µs.
    pub t_from_us: i64,
    pub t_to_us: i64,
    pub beats: i32,
    pub data: Vec<u8>,
}

/// Packs beats of segments sampled at `fs(segment)` Hz, sorted by segment and
/// R time, into blocks of one segment, each at most [`BLOCK_MAX_BEATS`]
/// beats and [`BLOCK_MAX_SPAN_US`] long.
pub fn pack(beats: &[BeatRow], fs: impl Fn(&SegmentKey) -> f64) -> Vec<BeatBlockRow> {
    let runs = codec::runs(beats.len(), |start, i| {
        let (first, b) = (&beats[start], &beats[i]);
        b.segment != first.segment
            || i - start >= BLOCK_MAX_BEATS
            || b.r_time_us - first.r_time_us > BLOCK_MAX_SPAN_US
    });
    runs.into_iter()
        .map(|run| {
            let part = &beats[run];
            BeatBlockRow {
                segment: part[0].segment.clone(),
                t_from_us: part[0].r_time_us,
                t_to_us: part[part.len() - 1].r_time_us,
                beats: part.len() as i32,
                data: encode(part, fs(&part[0].segment)),
            }
        })
        .collect()
}

/// The RR interval, ms, that `samples` samples at `fs` give, as the extractor computes it.
fn rr_ms(samples: Option<u64>, fs: f64) -> Option<f32> {
    samples.map(|s| (s as f64 * 1000.0 / fs) as f32)
}

/// Columns of a block body under construction.
#[derive(Default)]
struct Columns {
    times: Vec<u8>,
    samples: Vec<u8>,
    flags: Vec<u8>,
    classes: Vec<u8>,
    models: Vec<u8>,
    rr_tags: Vec<u8>,
    rr_values: Vec<f32>,
    p_tags: Vec<u8>,
    p_values: Vec<f32>,
    vectors: Vec<u8>,
}

/// Encodes beats of one segment, in R-time order, as a compressed block body.
pub fn encode(beats: &[BeatRow], fs: f64) -> Vec<u8> {
    let mut c = Columns::default();
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    let (mut t, mut s) = (0i64, 0i64);
    for (i, b) in beats.iter().enumerate() {
        put_varint(&mut c.times, zigzag(b.r_time_us.wrapping_sub(t)));
        put_varint(&mut c.samples, zigzag((b.sample as i64).wrapping_sub(s)));
        (t, s) = (b.r_time_us, b.sample as i64);
        c.flags.push(
            quality_code(b.quality)
                | (verdict_code(b.verdict) << 3)
                | (u8::from(b.searchback) << 5),
        );
        c.classes.push(b.class.map_or(0, |k| k.index() as u8 + 1));
        let pair = (b.model.as_str(), b.model_version.as_str());
        let index = pairs.iter().position(|p| *p == pair).unwrap_or_else(|| {
            pairs.push(pair);
            pairs.len() - 1
        });
        put_varint(&mut c.models, index as u64);
        let before = i.checked_sub(1).map(|j| beats[j].sample);
        let after = beats.get(i + 1).map(|n| n.sample);
        for (value, neighbour) in [
            (b.rr_prev_ms, before.and_then(|p| b.sample.checked_sub(p))),
            (b.rr_next_ms, after.and_then(|n| n.checked_sub(b.sample))),
        ] {
            put_optional(
                &mut c.rr_tags,
                &mut c.rr_values,
                value,
                rr_ms(neighbour, fs),
            );
        }
        // A five-class model's probability of "abnormal" is one minus that of N.
        let p_predicted = b.class_probs.map(|p| 1.0 - p[0]);
        put_optional(&mut c.p_tags, &mut c.p_values, b.p_abnormal, p_predicted);
        match b.class_probs {
            Some(p) => {
                c.p_tags.push(STORED);
                c.p_values.extend_from_slice(&p);
            }
            None => c.p_tags.push(ABSENT),
        }
        put_vector(&mut c.vectors, &b.values);
    }
    let mut body = vec![VERSION];
    put_varint(&mut body, beats.len() as u64);
    body.extend_from_slice(&fs.to_le_bytes());
    put_varint(&mut body, pairs.len() as u64);
    for (model, version) in &pairs {
        for s in [model, version] {
            put_varint(&mut body, s.len() as u64);
            body.extend_from_slice(s.as_bytes());
        }
    }
    let rr_values = planes(&c.rr_values);
    let p_values = planes(&c.p_values);
    for column in [
        &c.times, &c.samples, &c.flags, &c.classes, &c.models, &c.rr_tags, &rr_values, &c.p_tags,
        &p_values, &c.vectors,
    ] {
        put_varint(&mut body, column.len() as u64);
        body.extend_from_slice(column);
    }
    codec::compress(&body, LEVEL)
}

/// Appends an optional `f32` as a tag, and the value where it is not `predicted`.
fn put_optional(tags: &mut Vec<u8>, values: &mut Vec<f32>, v: Option<f32>, predicted: Option<f32>) {
    match v {
        None => tags.push(ABSENT),
        Some(v) if predicted.is_some_and(|p| p.to_bits() == v.to_bits()) => tags.push(PREDICTED),
        Some(v) => {
            tags.push(STORED);
            values.push(v);
        }
    }
}

/// `f32`s as four byte planes (all lowest bytes, …, all highest): the sign
/// and exponent bytes of alike values then repeat, which zstd finds.
fn planes(values: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; values.len() * 4];
    let n = values.len();
    for (i, v) in values.iter().enumerate() {
        for (k, byte) in v.to_le_bytes().into_iter().enumerate() {
            out[k * n + i] = byte;
        }
    }
    out
}

fn unplanes(bytes: &[u8]) -> Result<Vec<f32>, StoreError> {
    if !bytes.len().is_multiple_of(4) {
        return Err(StoreError::Corrupt(
            "beat block: f32 column not a multiple of 4 bytes".into(),
        ));
    }
    let n = bytes.len() / 4;
    Ok((0..n)
        .map(|i| f32::from_le_bytes([bytes[i], bytes[n + i], bytes[2 * n + i], bytes[3 * n + i]]))
        .collect())
}

/// Appends a beat vector: its length, the length before the zero padding, a
/// layout byte (1: 10-bit steps, each as the zigzag varint of its
/// difference from a [`LinearPredictor`]; 0: `f32` LE).
fn put_vector(out: &mut Vec<u8>, values: &[f32]) {
    let used = values
        .iter()
        .rposition(|v| v.to_bits() != 0)
        .map_or(0, |i| i + 1);
    put_varint(out, values.len() as u64);
    put_varint(out, used as u64);
    let values = &values[..used];
    if values.iter().all(|v| (0.0..=1.0).contains(v)) {
        out.push(1);
        let mut line = LinearPredictor::default();
        for v in values {
            let q = beat_step(*v);
            put_varint(out, zigzag(q.wrapping_sub(line.predict())));
            line.push(q);
        }
    } else {
        out.push(0);
        out.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    }
}

fn take_vector(c: &mut Cursor) -> Result<Vec<f32>, StoreError> {
    let len = c.count(0)?;
    let used = c.varint()?;
    if len > crate::dsp::BEAT_LEN * 16 || used > len as u64 {
        return Err(c.corrupt("beat vector length"));
    }
    let used = used as usize;
    let mut values = Vec::with_capacity(len);
    match c.byte()? {
        1 => {
            let mut line = LinearPredictor::default();
            for _ in 0..used {
                let q = line.predict().wrapping_add(unzigzag(c.varint()?));
                if !(0..=STEPS as i64).contains(&q) {
                    return Err(c.corrupt("beat vector step out of range"));
                }
                values.push(q as f32 / STEPS);
                line.push(q);
            }
        }
        0 => {
            for _ in 0..used {
                values.push(c.f32()?);
            }
        }
        other => return Err(c.corrupt(&format!("beat vector layout {other}"))),
    }
    values.resize(len, 0.0);
    Ok(values)
}

fn quality_code(q: Quality) -> u8 {
    Quality::ALL.iter().position(|&x| x == q).unwrap_or(0) as u8
}

fn verdict_code(v: Verdict) -> u8 {
    Verdict::ALL.iter().position(|&x| x == v).unwrap_or(0) as u8
}

/// The beats of a block written by [`encode`], for `segment`.
pub fn decode(segment: &SegmentKey, data: &[u8]) -> Result<Vec<BeatRow>, StoreError> {
    decode_with(segment, data, true)
}

/// [`decode`], leaving every beat's vector empty unless `vectors` (lists and
/// marks need none, and the vectors are most of the decoding).
pub fn decode_with(
    segment: &SegmentKey,
    data: &[u8],
    with_vectors: bool,
) -> Result<Vec<BeatRow>, StoreError> {
    let body = codec::inflate(data, "beat block")?;
    let mut c = Cursor::new(&body, "beat block");
    match c.byte()? {
        VERSION => {}
        v => return Err(c.corrupt(&format!("layout version {v}"))),
    }
    let n = c.count(1)?;
    let fs = c.f64()?;
    let mut pairs = Vec::new();
    for _ in 0..c.count(2)? {
        let mut pair = [String::new(), String::new()];
        for s in &mut pair {
            let len = c.count(1)?;
            *s = std::str::from_utf8(c.take(len)?)
                .map_err(|_| c.corrupt("model name not UTF-8"))?
                .to_string();
        }
        pairs.push(pair);
    }
    let mut columns = Vec::with_capacity(10);
    for _ in 0..10 {
        let len = c.count(1)?;
        columns.push(Cursor::new(c.take(len)?, "beat block"));
    }
    if !c.rest.is_empty() {
        return Err(c.corrupt("trailing bytes"));
    }
    let [
        times,
        samples,
        flags,
        classes,
        models,
        rr_tags,
        rr_values,
        p_tags,
        p_values,
        vectors,
    ] = &mut columns[..]
    else {
        return Err(c.corrupt("columns"));
    };
    let rr_values = unplanes(rr_values.rest)?;
    let p_values = unplanes(p_values.rest)?;
    let (mut rr_next, mut p_next) = (rr_values.iter(), p_values.iter());
    let mut take_rr = |tags: &mut Cursor, predicted: Option<f32>| match tags.byte()? {
        ABSENT => Ok(None),
        PREDICTED => predicted
            .map(Some)
            .ok_or_else(|| tags.corrupt("predicted interval without a neighbour")),
        STORED => rr_next
            .next()
            .map(|v| Some(*v))
            .ok_or_else(|| tags.corrupt("stored interval missing")),
        t => Err(tags.corrupt(&format!("tag {t}"))),
    };
    // Times and sample indexes first: the RR predictions need the neighbours'.
    let (mut t, mut s) = (0i64, 0i64);
    let mut at = Vec::with_capacity(n);
    for _ in 0..n {
        t = t.wrapping_add(unzigzag(times.varint()?));
        s = s.wrapping_add(unzigzag(samples.varint()?));
        at.push((
            t,
            u64::try_from(s).map_err(|_| samples.corrupt("negative sample index"))?,
        ));
    }
    let mut beats = Vec::with_capacity(n);
    for i in 0..n {
        let (r_time_us, sample) = at[i];
        let f = flags.byte()?;
        let quality = *Quality::ALL
            .get(usize::from(f & 7))
            .ok_or_else(|| flags.corrupt("quality"))?;
        let verdict = *Verdict::ALL
            .get(usize::from((f >> 3) & 3))
            .ok_or_else(|| flags.corrupt("verdict"))?;
        if f >> 6 != 0 {
            return Err(flags.corrupt("flags"));
        }
        let class = match classes.byte()? {
            0 => None,
            k => Some(
                *AamiClass::ALL
                    .get(usize::from(k) - 1)
                    .ok_or_else(|| classes.corrupt("class"))?,
            ),
        };
        let pair = pairs
            .get(models.varint()? as usize)
            .ok_or_else(|| models.corrupt("model index"))?;
        let before = i.checked_sub(1).map(|j| at[j].1);
        let after = at.get(i + 1).map(|a| a.1);
        let rr_prev_ms = take_rr(
            rr_tags,
            rr_ms(before.and_then(|p| sample.checked_sub(p)), fs),
        )?;
        let rr_next_ms = take_rr(
            rr_tags,
            rr_ms(after.and_then(|a| a.checked_sub(sample)), fs),
        )?;
        // p_abnormal's tag and value come first, but its prediction needs the
        // probabilities that follow.
        let p_tag = p_tags.byte()?;
        let p_stored = match p_tag {
            STORED => Some(
                *p_next
                    .next()
                    .ok_or_else(|| p_tags.corrupt("p_abnormal missing"))?,
            ),
            _ => None,
        };
        let class_probs = match p_tags.byte()? {
            ABSENT => None,
            STORED => {
                let mut p = [0f32; 5];
                for v in &mut p {
                    *v = *p_next
                        .next()
                        .ok_or_else(|| p_tags.corrupt("probabilities missing"))?;
                }
                Some(p)
            }
            t => return Err(p_tags.corrupt(&format!("tag {t}"))),
        };
        let p_abnormal = match p_tag {
            ABSENT => None,
            PREDICTED => Some(
                1.0 - class_probs
                    .ok_or_else(|| p_tags.corrupt("p_abnormal without probabilities"))?[0],
            ),
            STORED => p_stored,
            t => return Err(p_tags.corrupt(&format!("tag {t}"))),
        };
        beats.push(BeatRow {
            segment: segment.clone(),
            r_time_us,
            sample,
            rr_prev_ms,
            rr_next_ms,
            quality,
            searchback: f & 32 != 0,
            verdict,
            p_abnormal,
            class,
            class_probs,
            model: pair[0].clone(),
            model_version: pair[1].clone(),
            values: if with_vectors {
                take_vector(vectors)?
            } else {
                Vec::new()
            },
        });
    }
    Ok(beats)
}

/// Layouts of a beat row's `beat` column, by its `beat_encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorEncoding {
    /// 187 `f32` LE: rows written before beat blocks.
    F32 = 0,
    /// As a block's vector column holds one vector (10-bit steps).
    Steps = 1,
}

/// A beat row's vector as stored (layout [`VectorEncoding::Steps`]).
pub fn encode_vector(values: &[f32]) -> Vec<u8> {
    let mut bytes = Vec::new();
    put_vector(&mut bytes, values);
    bytes
}

/// A beat row's vector from its `beat` column and `beat_encoding`.
pub fn decode_vector(encoding: i64, bytes: &[u8]) -> Result<Vec<f32>, StoreError> {
    match encoding {
        0 => super::rows::bytes_f32(bytes),
        1 => {
            let mut c = Cursor::new(bytes, "beat vector");
            let values = take_vector(&mut c)?;
            if !c.rest.is_empty() {
                return Err(c.corrupt("trailing bytes"));
            }
            Ok(values)
        }
        e => Err(StoreError::Corrupt(format!("beat vector encoding {e}"))),
    }
}

/// A beat vector as a block gives it back (10-bit steps, or unchanged when
/// it is not within [0, 1]).
pub fn packed_vector(values: &[f32]) -> Vec<f32> {
    // Reading back what was just written cannot fail.
    decode_vector(VectorEncoding::Steps as i64, &encode_vector(values))
        .unwrap_or_else(|_| values.to_vec())
}

/// Whether `q` can match a packed beat: packed beats are normal or
/// unreadable, and a beat of class S, V, F or Q is abnormal.
pub(crate) fn may_match_packed(q: &BeatQuery) -> bool {
    q.verdict != Some(Verdict::Abnormal) && q.class.is_none_or(|c| c == AamiClass::N)
}

/// Whether `b` matches `q`, as the `beats` query's `WHERE` decides for rows.
pub(crate) fn matches(b: &BeatRow, q: &BeatQuery) -> bool {
    b.segment.device == q.device
        && (q.from_us..q.to_us).contains(&b.r_time_us)
        && q.verdict.is_none_or(|v| v == b.verdict)
        && q.class.is_none_or(|c| b.class == Some(c))
        && q.min_p_abnormal
            .is_none_or(|m| b.p_abnormal.is_some_and(|p| p >= m))
}

/// A beat without its waveform.
pub(crate) fn mark_of(b: BeatRow) -> BeatMark {
    BeatMark {
        r_time_us: b.r_time_us,
        rr_prev_ms: b.rr_prev_ms,
        quality: b.quality,
        verdict: b.verdict,
        p_abnormal: b.p_abnormal,
        class: b.class,
        model: b.model,
    }
}

/// Rows and packed beats, each sorted by R time, merged by R time (a beat in
/// both, possible only while it is being packed, once), then `offset`
/// skipped and `limit` kept.
pub(crate) fn merge_page<T>(
    rows: Vec<T>,
    packed: Vec<T>,
    time: impl Fn(&T) -> i64,
    offset: u64,
    limit: u32,
) -> Vec<T> {
    let mut all = Vec::with_capacity(rows.len() + packed.len());
    let (mut a, mut b) = (rows.into_iter().peekable(), packed.into_iter().peekable());
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if time(x) == time(y) => {
                b.next();
                a.next()
            }
            (Some(x), Some(y)) if time(x) < time(y) => a.next(),
            (Some(_), Some(_)) | (None, Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, None) => break,
        };
        all.extend(next);
    }
    all.into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(limit as usize)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(first_seq: u64) -> SegmentKey {
        SegmentKey {
            device: "dev".into(),
            stream: 1,
            first_seq,
        }
    }

    /// Beats of every kind: five-class and binary models, unreadable, no RR,
    /// an interval that does not follow from the samples, an odd vector.
    fn beats() -> Vec<BeatRow> {
        let fs = 360.0;
        let samples = [100u64, 390, 700, 1_000, 1_290, 1_600];
        samples
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                let rr = |a: Option<&u64>, b: Option<&u64>| match (a, b) {
                    (Some(a), Some(b)) => Some((b.abs_diff(*a) as f64 * 1000.0 / fs) as f32),
                    _ => None,
                };
                let probs = [0.97, 0.01, 0.015, 0.004, 0.001];
                let mut values: Vec<f32> = (0..187)
                    .map(|k| {
                        if k < 120 {
                            ((k as f32) * 0.37).sin().abs()
                        } else {
                            0.0
                        }
                    })
                    .collect();
                values[7] = 1.0;
                values[9] = 0.0;
                let (verdict, class, class_probs, p_abnormal) = match i {
                    2 => (Verdict::Unreadable, None, None, None),
                    3 => (Verdict::Abnormal, None, None, Some(0.8)),
                    _ => (
                        Verdict::Normal,
                        Some(AamiClass::N),
                        Some(probs),
                        Some(1.0 - probs[0]),
                    ),
                };
                if i == 4 {
                    values[3] = -0.25;
                }
                BeatRow {
                    segment: segment(0),
                    r_time_us: 1_700_000_000_000_000 + (s as f64 / fs * 1e6).round() as i64,
                    sample: s,
                    rr_prev_ms: if i == 5 {
                        Some(812.5)
                    } else {
                        rr(samples.get(i.wrapping_sub(1)), Some(&s))
                    },
                    rr_next_ms: rr(Some(&s), samples.get(i + 1)),
                    quality: if i == 2 {
                        Quality::Noisy
                    } else {
                        Quality::Good
                    },
                    searchback: i == 1,
                    verdict,
                    p_abnormal,
                    class,
                    class_probs,
                    model: if i == 3 {
                        "binary".into()
                    } else {
                        "context".into()
                    },
                    model_version: "v1".into(),
                    values,
                }
            })
            .collect()
    }

    #[test]
    fn every_field_round_trips_and_the_vector_to_within_a_step() {
        let beats = beats();
        let back = decode(&segment(0), &encode(&beats, 360.0)).unwrap();
        assert_eq!(back.len(), beats.len());
        for (b, a) in back.iter().zip(&beats) {
            let (mut b, mut a) = (b.clone(), a.clone());
            assert_eq!(b.values.len(), a.values.len());
            for (x, y) in b.values.iter().zip(&a.values) {
                assert!((x - y).abs() <= VALUE_TOLERANCE, "{x} vs {y}");
            }
            if a.values.iter().any(|v| *v < 0.0) {
                assert_eq!(a.values, b.values, "a vector outside [0, 1] is kept as f32");
            }
            a.values.clear();
            b.values.clear();
            assert_eq!(b, a);
        }
        // 0 and 1 are exact, and so is the padding.
        assert_eq!(back[0].values[7], 1.0);
        assert_eq!(back[0].values[9], 0.0);
        assert!(back[0].values[120..].iter().all(|v| *v == 0.0));
    }

    #[test]
    fn decoding_without_vectors_gives_the_rest() {
        let data = encode(&beats(), 360.0);
        let whole = decode(&segment(0), &data).unwrap();
        let bare = decode_with(&segment(0), &data, false).unwrap();
        for (mut w, b) in whole.into_iter().zip(bare) {
            assert!(b.values.is_empty());
            w.values.clear();
            assert_eq!(w, b);
        }
    }

    #[test]
    fn a_wrong_rate_costs_bytes_not_exactness() {
        let beats = beats();
        let back = decode(&segment(0), &encode(&beats, 250.0)).unwrap();
        for (b, a) in back.iter().zip(&beats) {
            assert_eq!((b.rr_prev_ms, b.rr_next_ms), (a.rr_prev_ms, a.rr_next_ms));
        }
    }

    #[test]
    fn pack_splits_by_segment_count_and_span() {
        let mut all = beats();
        let mut other = beats();
        for b in &mut other {
            b.segment = segment(9);
        }
        all.extend(other);
        let blocks = pack(&all, |_| 360.0);
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[1].segment, segment(9));
        assert_eq!(blocks[0].beats, 6);
        assert_eq!(blocks[0].t_from_us, all[0].r_time_us);
        assert_eq!(blocks[0].t_to_us, all[5].r_time_us);
        let mut long = beats();
        long[5].r_time_us = long[0].r_time_us + BLOCK_MAX_SPAN_US + 1;
        assert_eq!(pack(&long, |_| 360.0).len(), 2);
        let many: Vec<BeatRow> = (0..BLOCK_MAX_BEATS + 1)
            .map(|i| BeatRow {
                r_time_us: i as i64 * 1000,
                ..beats()[0].clone()
            })
            .collect();
        let blocks = pack(&many, |_| 360.0);
        assert_eq!(
            blocks.iter().map(|b| b.beats).collect::<Vec<_>>(),
            [2000, 1]
        );
    }

    #[test]
    fn corrupt_blocks_are_errors_not_panics() {
        let data = encode(&beats(), 360.0);
        let body = zstd::bulk::decompress(&data, 1 << 20).unwrap();
        let recompress = |b: &[u8]| codec::compress(b, 3);
        let mut version = body.clone();
        version[0] = 7;
        let mut bad = vec![
            data[..data.len() / 2].to_vec(),
            b"junk".to_vec(),
            recompress(&version),
        ];
        for cut in [1, 5, body.len() / 3, body.len() / 2, body.len() - 1] {
            bad.push(recompress(&body[..cut]));
        }
        let mut longer = body.clone();
        longer.push(0);
        bad.push(recompress(&longer));
        for b in bad {
            assert!(decode(&segment(0), &b).is_err());
        }
        // Flipping any one byte of the body never panics.
        for i in 0..body.len() {
            let mut flipped = body.clone();
            flipped[i] ^= 0xa5;
            let _ = decode(&segment(0), &recompress(&flipped));
        }
    }
}
