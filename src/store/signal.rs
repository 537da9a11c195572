//! How raw signal is stored: as the device sent it.
//!
//! A wearable sends integer ADC counts with a gain and a baseline
//! ([`Scale`]); the pipeline works in mV (`f32`). Storing the mV values costs
//! 4 bytes a sample and hides the counts. Storing the counts, delta-coded as
//! zigzag varints, costs about one byte a sample for an 11-bit ECG at 360 Hz
//! (most first differences fit in 7 bits), and reading them back gives the
//! pipeline's mV values bit for bit, because the decoder applies the very
//! expression the wire decoder did ([`Scale::millivolts`]).
//!
//! The encoder proves that before it uses the counts: it recovers each count
//! from its mV value and keeps the counts only if every one converts back to
//! the same `f32`. Samples sent as mV (JSON with the default gain of 1) fail
//! that test and are stored as `f32`, the layout rows written before this
//! encoding already have (so they need no conversion).
//!
//! Layouts, by the `encoding` column:
//! - [`Encoding::F32`] (0): `f32` little-endian mV, 4 bytes a sample;
//! - [`Encoding::Counts`] (1): `gain` `f64` LE, `baseline` `f64` LE, then one
//!   zigzag LEB128 varint per sample of `count[i] − count[i−1]` (`count[−1] = 0`).

use super::StoreError;
use super::codec::{self, Cursor, LinearPredictor, put_varint, unzigzag, zigzag};
use crate::formats::wire::Scale;

/// How a chunk's samples are laid out (the `encoding` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    F32 = 0,
    Counts = 1,
}

impl Encoding {
    /// The encoding stored as `code`.
    pub fn from_code(code: i64) -> Result<Encoding, StoreError> {
        match code {
            0 => Ok(Encoding::F32),
            1 => Ok(Encoding::Counts),
            _ => Err(StoreError::Corrupt(format!("sample encoding {code}"))),
        }
    }

    /// The column's value.
    pub fn code(self) -> i16 {
        self as i16
    }
}

/// Encodes `samples` (mV): as counts when `scale` reproduces every sample exactly, else as `f32`.
pub fn encode_samples(samples: &[f32], scale: Option<Scale>) -> (Encoding, Vec<u8>) {
    if let Some(scale) = scale
        && let Some(bytes) = encode_counts(samples, scale)
    {
        return (Encoding::Counts, bytes);
    }
    (Encoding::F32, super::f32_bytes(samples))
}

fn encode_counts(samples: &[f32], scale: Scale) -> Option<Vec<u8>> {
    let counts = counts_of(samples, scale)?;
    let mut out = Vec::with_capacity(16 + samples.len() + samples.len() / 4);
    out.extend_from_slice(&scale.gain.to_le_bytes());
    out.extend_from_slice(&scale.baseline.to_le_bytes());
    put_deltas(&mut out, &counts, 0);
    Some(out)
}

/// The counts `samples` were converted from with `scale`, if every one converts
/// back to the same `f32` (and lies within ±2³¹).
fn counts_of(samples: &[f32], scale: Scale) -> Option<Vec<i64>> {
    samples
        .iter()
        .map(|&s| {
            let count = (f64::from(s) * scale.gain + scale.baseline).round();
            (count.abs() < 2f64.powi(31) && scale.millivolts(count).to_bits() == s.to_bits())
                .then_some(count as i64)
        })
        .collect()
}

/// Appends `counts` as zigzag varints of their first differences, the first from `previous`.
fn put_deltas(out: &mut Vec<u8>, counts: &[i64], mut previous: i64) {
    for &c in counts {
        put_varint(out, zigzag(c - previous));
        previous = c;
    }
}

/// Reads `n` counts written by [`put_deltas`] from `previous`, as mV.
fn take_deltas(
    body: &mut Cursor,
    n: usize,
    mut previous: i64,
    scale: Scale,
    samples: &mut Vec<f32>,
) -> Result<i64, StoreError> {
    for _ in 0..n {
        previous = previous
            .checked_add(unzigzag(body.varint()?))
            .filter(|c| c.unsigned_abs() < 1 << 31)
            .ok_or_else(|| StoreError::Corrupt("count out of range".into()))?;
        samples.push(scale.millivolts(previous as f64));
    }
    Ok(previous)
}

fn checked_scale(gain: f64, baseline: f64) -> Result<Scale, StoreError> {
    if !(gain.is_finite() && gain != 0.0 && baseline.is_finite()) {
        return Err(StoreError::Corrupt(format!(
            "counts with gain {gain} and baseline {baseline}"
        )));
    }
    Ok(Scale { gain, baseline })
}

/// Decodes a stored chunk: its samples in mV and, for counts, the device's scale.
pub fn decode_samples(
    encoding: Encoding,
    bytes: &[u8],
) -> Result<(Vec<f32>, Option<Scale>), StoreError> {
    match encoding {
        Encoding::F32 => Ok((super::bytes_f32(bytes)?, None)),
        Encoding::Counts => {
            let mut body = Cursor::new(bytes, "raw chunk");
            let fixed = body.take(16)?;
            let scale = checked_scale(f64_le(&fixed[..8]), f64_le(&fixed[8..]))?;
            let mut samples = Vec::with_capacity(bytes.len() - 16);
            let mut previous = 0i64;
            while !body.rest.is_empty() {
                previous = take_deltas(&mut body, 1, previous, scale, &mut samples)?;
            }
            Ok((samples, Some(scale)))
        }
    }
}

/// The most chunks one block holds, and the longest time it spans: a block is
/// about a minute of one segment when compaction runs every minute, and never
/// more than [`BLOCK_MAX_SPAN_US`], so a time-range read knows how far back to look.
pub const BLOCK_MAX_CHUNKS: usize = 1200;
/// See [`BLOCK_MAX_CHUNKS`].
pub const BLOCK_MAX_SPAN_US: i64 = 10 * 60 * 1_000_000;
/// zstd level for blocks: 3 (its default). On layout 2's residuals of the 48
/// MIT-BIH records in one-minute blocks, levels 6 to 12 packed no smaller and
/// level 19 2 % smaller at a nineteenth of the speed (`holterd bench storage`
/// weighs blocks at the level in force).
const BLOCK_LEVEL: i32 = 3;
/// Layout version of the block bodies written now; version 1 is still read.
const BLOCK_VERSION: u8 = 2;

/// Consecutive chunks of one segment as one compressed block.
///
/// Body, before zstd: a version byte (2), the header column's length
/// (varint), the header column, then the sample column. The header column
/// holds per chunk: `seq`, `t0_us` and `received_us`, each minus the previous
/// chunk's (the first: minus 0; zigzag varints), a flags byte, what the flags
/// announce, and the sample count (varint). Flag [`FLAG_FS`]: `fs` follows
/// (`f64` LE); flag [`FLAG_LAYOUT`]: the encoding byte follows and, for
/// counts, `gain` and `baseline` (`f64` LE). Each is set on the first chunk
/// and where it changes. The sample column holds each chunk's samples in
/// turn: counts as zigzag varints of their difference from a
/// [`LinearPredictor`] that runs on across chunks of one layout (ECG's second
/// differences are smaller than its first: 6 % fewer bytes on MIT-BIH), `f32`
/// samples as 4 bytes LE. Headers apart from samples are a regular column
/// that zstd packs to almost nothing.
///
/// Version 1 (blocks packed before): no header length; each chunk's header
/// is followed by its samples, `seq` is absolute, and counts are first
/// differences from the previous count.
pub fn encode_block(chunks: &[super::ChunkRow]) -> Vec<u8> {
    let (mut heads, mut tail) = (Vec::new(), Vec::new());
    let (mut seq, mut t0, mut received) = (0u64, 0i64, 0i64);
    let mut fs: Option<f64> = None;
    // The layout in force, and the predictor of its counts.
    let mut layout: Option<(Option<Scale>, LinearPredictor)> = None;
    for c in chunks {
        let counts = c
            .scale
            .and_then(|sc| Some((sc, counts_of(&c.samples, sc)?)));
        let scale = counts.as_ref().map(|(sc, _)| *sc);
        put_varint(&mut heads, zigzag(c.seq.wrapping_sub(seq) as i64));
        put_varint(&mut heads, zigzag(c.t0_us.wrapping_sub(t0)));
        put_varint(&mut heads, zigzag(c.received_us.wrapping_sub(received)));
        let new_fs = fs.is_none_or(|f| f.to_bits() != c.fs.to_bits());
        let new_layout = layout.is_none_or(|(sc, _)| sc != scale);
        heads.push((u8::from(new_fs) * FLAG_FS) | (u8::from(new_layout) * FLAG_LAYOUT));
        if new_fs {
            heads.extend_from_slice(&c.fs.to_le_bytes());
        }
        let mut line = layout
            .filter(|_| !new_layout)
            .map_or_else(LinearPredictor::default, |(_, l)| l);
        if new_layout {
            put_layout(&mut heads, scale);
        }
        put_varint(&mut heads, c.samples.len() as u64);
        match &counts {
            Some((_, counts)) => {
                for &q in counts {
                    put_varint(&mut tail, zigzag(q.wrapping_sub(line.predict())));
                    line.push(q);
                }
            }
            None => tail.extend(c.samples.iter().flat_map(|v| v.to_le_bytes())),
        }
        (seq, t0, received, fs) = (c.seq, c.t0_us, c.received_us, Some(c.fs));
        layout = Some((scale, line));
    }
    let mut body = vec![BLOCK_VERSION];
    put_varint(&mut body, heads.len() as u64);
    body.extend_from_slice(&heads);
    body.extend_from_slice(&tail);
    codec::compress(&body, BLOCK_LEVEL)
}

/// Appends a layout: the encoding byte and, for counts, the scale.
fn put_layout(out: &mut Vec<u8>, scale: Option<Scale>) {
    match scale {
        Some(sc) => {
            out.push(Encoding::Counts as u8);
            out.extend_from_slice(&sc.gain.to_le_bytes());
            out.extend_from_slice(&sc.baseline.to_le_bytes());
        }
        None => out.push(Encoding::F32 as u8),
    }
}

/// Block chunk flag: the sampling rate follows.
const FLAG_FS: u8 = 1;
/// Block chunk flag: the sample layout (and scale) follows.
const FLAG_LAYOUT: u8 = 2;

/// How a block's counts are predicted: by layout version.
#[derive(Clone, Copy)]
enum Residuals {
    /// Version 1: first differences.
    Delta,
    /// Version 2: [`LinearPredictor`].
    Linear,
}

/// The chunks of a block written by [`encode_block`] (either version), for `segment`.
pub fn decode_block(
    segment: &super::SegmentKey,
    data: &[u8],
) -> Result<Vec<super::ChunkRow>, StoreError> {
    let body = codec::inflate(data, "signal block")?;
    let mut body = Cursor::new(&body, "signal block");
    let (mut heads, mut tail, version) = match body.byte() {
        Ok(1) => (body, None, Residuals::Delta),
        Ok(2) => {
            let n = body.count(1)?;
            let heads = Cursor::new(body.take(n)?, "signal block");
            (heads, Some(body), Residuals::Linear)
        }
        Ok(v) => return Err(body.corrupt(&format!("layout version {v}"))),
        Err(_) => return Err(body.corrupt("empty")),
    };
    let mut chunks = Vec::new();
    let (mut seq, mut t0, mut received) = (0u64, 0i64, 0i64);
    let mut fs: Option<f64> = None;
    // The layout in force, the last count and the predictor of the next.
    let mut layout: Option<(Option<Scale>, i64, LinearPredictor)> = None;
    while !heads.rest.is_empty() {
        let seq_code = heads.varint()?;
        seq = match version {
            Residuals::Delta => seq_code,
            Residuals::Linear => seq.wrapping_add(unzigzag(seq_code) as u64),
        };
        t0 = t0.wrapping_add(unzigzag(heads.varint()?));
        received = received.wrapping_add(unzigzag(heads.varint()?));
        let flags = heads.byte()?;
        if flags & !(FLAG_FS | FLAG_LAYOUT) != 0 {
            return Err(heads.corrupt(&format!("flags {flags:#x}")));
        }
        if flags & FLAG_FS != 0 {
            fs = Some(heads.f64()?);
        }
        if flags & FLAG_LAYOUT != 0 {
            let scale = match Encoding::from_code(heads.byte()?.into())? {
                Encoding::Counts => Some(checked_scale(heads.f64()?, heads.f64()?)?),
                Encoding::F32 => None,
            };
            layout = Some((scale, 0, LinearPredictor::default()));
        }
        let (Some(fs), Some((scale, mut last, mut line))) = (fs, layout) else {
            return Err(heads.corrupt("first chunk lacks its rate or layout"));
        };
        let n = usize::try_from(heads.varint()?).map_err(|_| heads.corrupt("length"))?;
        let samples_from = tail.as_mut().unwrap_or(&mut heads);
        if n > samples_from.rest.len() {
            return Err(samples_from.corrupt("truncated"));
        }
        let mut samples = Vec::with_capacity(n);
        match (scale, version) {
            (Some(sc), Residuals::Delta) => {
                last = take_deltas(samples_from, n, last, sc, &mut samples)?;
            }
            (Some(sc), Residuals::Linear) => {
                for _ in 0..n {
                    let q = line
                        .predict()
                        .checked_add(unzigzag(samples_from.varint()?))
                        .filter(|c| c.unsigned_abs() < 1 << 31)
                        .ok_or_else(|| samples_from.corrupt("count out of range"))?;
                    samples.push(sc.millivolts(q as f64));
                    line.push(q);
                }
            }
            (None, _) => {
                for _ in 0..n {
                    samples.push(samples_from.f32()?);
                }
            }
        }
        layout = Some((scale, last, line));
        chunks.push(super::ChunkRow {
            segment: segment.clone(),
            seq,
            t0_us: t0,
            fs,
            received_us: received,
            samples,
            scale,
        });
    }
    if tail.is_some_and(|t| !t.rest.is_empty()) {
        return Err(StoreError::Corrupt(
            "signal block: samples past the last chunk".into(),
        ));
    }
    Ok(chunks)
}

fn f64_le(b: &[u8]) -> f64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    f64::from_le_bytes(a)
}

/// A block as stored: the chunks of one segment it packs, and where they lie.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockRow {
    pub segment: super::SegmentKey,
    pub seq_from: u64,
    pub seq_to: u64,
    /// The first chunk's first sample, µs.
    pub t0_us: i64,
    /// Just after the last chunk's last sample, µs.
    pub t_end_us: i64,
    /// The latest reception among its chunks, µs (retention's clock).
    pub received_us: i64,
    pub chunks: i32,
    pub samples: i32,
    pub data: Vec<u8>,
}

/// Where a chunk's samples end, µs.
fn chunk_end_us(c: &super::ChunkRow) -> i64 {
    c.t0_us + (c.samples.len() as f64 / c.fs * 1e6).round() as i64
}

/// Packs chunks, sorted by segment and then `seq`, into blocks of consecutive
/// chunks of one segment, each at most [`BLOCK_MAX_CHUNKS`] chunks and
/// [`BLOCK_MAX_SPAN_US`] long.
pub fn pack(chunks: &[super::ChunkRow]) -> Vec<BlockRow> {
    let runs = codec::runs(chunks.len(), |start, i| {
        let (first, c) = (&chunks[start], &chunks[i]);
        c.segment != first.segment
            || i - start >= BLOCK_MAX_CHUNKS
            || chunk_end_us(c) - first.t0_us > BLOCK_MAX_SPAN_US
    });
    runs.into_iter()
        .map(|run| {
            let part = &chunks[run];
            BlockRow {
                segment: part[0].segment.clone(),
                seq_from: part[0].seq,
                seq_to: part[part.len() - 1].seq,
                t0_us: part[0].t0_us,
                t_end_us: part.iter().map(chunk_end_us).max().unwrap_or(part[0].t0_us),
                received_us: part.iter().map(|c| c.received_us).max().unwrap_or(0),
                chunks: part.len() as i32,
                samples: part.iter().map(|c| c.samples.len() as i32).sum(),
                data: encode_block(part),
            }
        })
        .collect()
}

/// Chunks read from loose rows and from blocks, each (segment, `seq`) once (a
/// chunk redelivered while it was being packed can be in both), ordered by
/// time when `by_time`, else by `seq`.
pub fn merge(mut chunks: Vec<super::ChunkRow>, by_time: bool) -> Vec<super::ChunkRow> {
    if by_time {
        chunks.sort_by_key(|c| (c.t0_us, c.seq));
    } else {
        chunks.sort_by_key(|c| c.seq);
    }
    let mut seen = std::collections::HashSet::new();
    chunks.retain(|c| seen.insert((c.segment.clone(), c.seq)));
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adc(counts: &[i32], scale: Scale) -> Vec<f32> {
        counts.iter().map(|&c| scale.millivolts(c as f64)).collect()
    }

    #[test]
    fn counts_round_trip_bit_exactly_in_about_a_byte_a_sample() {
        let scale = Scale {
            gain: 200.0,
            baseline: 1024.0,
        };
        let counts: Vec<i32> = (0..3600)
            .map(|i| 1024 + (300.0 * (i as f64 * 0.05).sin()) as i32 + (i % 7) - 3)
            .collect();
        let samples = adc(&counts, scale);
        let (encoding, bytes) = encode_samples(&samples, Some(scale));
        assert_eq!(encoding, Encoding::Counts);
        assert!(bytes.len() < 16 + 2 * samples.len(), "{}", bytes.len());
        let (back, s) = decode_samples(encoding, &bytes).unwrap();
        assert_eq!(s, Some(scale));
        assert_eq!(
            back.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            samples.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn extreme_counts_and_odd_scales_round_trip() {
        for scale in [
            Scale {
                gain: 1.0,
                baseline: 0.0,
            },
            Scale {
                gain: -3.7,
                baseline: -12.5,
            },
            Scale {
                gain: 1e-3,
                baseline: 32767.0,
            },
        ] {
            let counts = [i16::MIN as i32, i16::MAX as i32, 0, -1, 1, i16::MIN as i32];
            let samples = adc(&counts, scale);
            let (encoding, bytes) = encode_samples(&samples, Some(scale));
            assert_eq!(encoding, Encoding::Counts, "{scale:?}");
            assert_eq!(decode_samples(encoding, &bytes).unwrap().0, samples);
        }
    }

    #[test]
    fn samples_that_are_not_counts_are_kept_as_f32() {
        let samples = [0.1f32, -0.25, 1.0 / 3.0];
        let scale = Scale {
            gain: 1.0,
            baseline: 0.0,
        };
        for scale in [Some(scale), None] {
            let (encoding, bytes) = encode_samples(&samples, scale);
            assert_eq!(encoding, Encoding::F32);
            assert_eq!(
                decode_samples(encoding, &bytes).unwrap(),
                (samples.to_vec(), None)
            );
        }
    }

    fn chunk(seq: u64, counts: bool) -> super::super::ChunkRow {
        let scale = Scale {
            gain: 200.0,
            baseline: 1024.0,
        };
        let wave: Vec<f64> = (0..90)
            .map(|i| (1024.0 + 150.0 * ((seq * 90 + i) as f64 * 0.07).sin()).round())
            .collect();
        super::super::ChunkRow {
            segment: segment(),
            seq,
            t0_us: 1_764_000_000_000_000 + seq as i64 * 250_000,
            fs: 360.0,
            received_us: 1_764_000_000_100_000 + seq as i64 * 250_000 + (seq as i64 % 3) * 7,
            samples: if counts {
                wave.iter().map(|&c| scale.millivolts(c)).collect()
            } else {
                wave.iter().map(|&c| (c * 0.001) as f32 + 0.1).collect()
            },
            scale: counts.then_some(scale),
        }
    }

    fn segment() -> super::super::SegmentKey {
        super::super::SegmentKey {
            device: "d".into(),
            stream: 3,
            first_seq: 0,
        }
    }

    #[test]
    fn blocks_round_trip_and_compress() {
        let chunks: Vec<_> = (0..240).map(|s| chunk(s, s != 17)).collect();
        let data = encode_block(&chunks);
        assert_eq!(decode_block(&segment(), &data).unwrap(), chunks);
        let samples: usize = chunks.iter().map(|c| c.samples.len()).sum();
        assert!(
            data.len() < samples,
            "{} bytes for {samples} samples",
            data.len()
        );
        assert_eq!(decode_block(&segment(), &encode_block(&[])).unwrap(), []);
    }

    /// A version-1 body, as blocks were packed before version 2.
    fn v1_block(chunks: &[super::super::ChunkRow]) -> Vec<u8> {
        let mut body = vec![1u8];
        let (mut t0, mut received, mut previous) = (0i64, 0i64, 0i64);
        for (k, c) in chunks.iter().enumerate() {
            put_varint(&mut body, c.seq);
            put_varint(&mut body, zigzag(c.t0_us - t0));
            put_varint(&mut body, zigzag(c.received_us - received));
            let first = k == 0;
            let new_layout = first || chunks[k - 1].scale != c.scale;
            body.push((u8::from(first) * FLAG_FS) | (u8::from(new_layout) * FLAG_LAYOUT));
            if first {
                body.extend_from_slice(&c.fs.to_le_bytes());
            }
            if new_layout {
                put_layout(&mut body, c.scale);
                previous = 0;
            }
            put_varint(&mut body, c.samples.len() as u64);
            match c.scale {
                Some(sc) => {
                    let counts = counts_of(&c.samples, sc).unwrap();
                    put_deltas(&mut body, &counts, previous);
                    previous = *counts.last().unwrap();
                }
                None => body.extend(c.samples.iter().flat_map(|v| v.to_le_bytes())),
            }
            (t0, received) = (c.t0_us, c.received_us);
        }
        zstd::bulk::compress(&body, 3).unwrap()
    }

    #[test]
    fn blocks_packed_before_version_2_still_read() {
        let chunks: Vec<_> = (0..40).map(|s| chunk(s, s % 9 != 4)).collect();
        let old = v1_block(&chunks);
        assert_eq!(decode_block(&segment(), &old).unwrap(), chunks);
        let new = encode_block(&chunks);
        assert_eq!(decode_block(&segment(), &new).unwrap(), chunks);
        assert!(
            new.len() < old.len(),
            "{} bytes now, {} before",
            new.len(),
            old.len()
        );
    }

    #[test]
    fn packing_splits_by_segment_size_and_span() {
        let mut chunks: Vec<_> = (0..(BLOCK_MAX_CHUNKS as u64 + 10))
            .map(|s| chunk(s, true))
            .collect();
        let mut other = chunk(0, true);
        other.segment.first_seq = 99;
        chunks.push(other);
        let blocks = pack(&chunks);
        assert_eq!(
            blocks
                .iter()
                .map(|b| (b.seq_from, b.seq_to, b.chunks, b.segment.first_seq))
                .collect::<Vec<_>>(),
            [
                (0, BLOCK_MAX_CHUNKS as u64 - 1, BLOCK_MAX_CHUNKS as i32, 0),
                (BLOCK_MAX_CHUNKS as u64, BLOCK_MAX_CHUNKS as u64 + 9, 10, 0),
                (0, 0, 1, 99)
            ]
        );
        assert_eq!(blocks[0].samples, 90 * BLOCK_MAX_CHUNKS as i32);
        assert_eq!(
            blocks[0].t_end_us - blocks[0].t0_us,
            250_000 * BLOCK_MAX_CHUNKS as i64
        );
        // A gap in time longer than a block may span starts a new one.
        let mut late = chunk(1, true);
        late.t0_us += BLOCK_MAX_SPAN_US;
        assert_eq!(pack(&[chunk(0, true), late]).len(), 2);
        let unpacked: Vec<_> = blocks
            .iter()
            .flat_map(|b| decode_block(&b.segment, &b.data).unwrap())
            .collect();
        assert_eq!(unpacked, chunks);
    }

    #[test]
    fn merging_keeps_each_chunk_once_in_order() {
        let chunks = vec![
            chunk(2, true),
            chunk(0, true),
            chunk(1, false),
            chunk(0, true),
        ];
        let merged = merge(chunks.clone(), false);
        assert_eq!(merged.iter().map(|c| c.seq).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(merge(chunks, true), merged);
    }

    #[test]
    fn corrupt_blocks_are_errors() {
        let data = encode_block(&[chunk(0, true), chunk(1, true)]);
        let body = zstd::bulk::decompress(&data, 1 << 20).unwrap();
        let recompress = |b: &[u8]| zstd::bulk::compress(b, 3).unwrap();
        let mut version = body.clone();
        version[0] = 9;
        let mut encoding = body.clone();
        // The first chunk's encoding byte follows the header column's length,
        // three varints, the flags and the f64 rate.
        let varints = {
            let mut c = Cursor::new(&body[1..], "test");
            for _ in 0..4 {
                c.varint().unwrap();
            }
            body.len() - 1 - c.rest.len()
        };
        encoding[1 + varints + 1 + 8] = 5;
        let mut flags = body.clone();
        flags[1 + varints] = 0x80;
        let mut no_rate = body.clone();
        no_rate[1 + varints] = FLAG_LAYOUT;
        let mut trailing = body.clone();
        trailing.push(0);
        let mut short_heads = body.clone();
        short_heads[1] -= 1;
        for bad in [
            recompress(&trailing),
            recompress(&short_heads),
            data[..data.len() / 2].to_vec(),
            b"not zstd".to_vec(),
            recompress(&body[..body.len() - 3]),
            recompress(&version),
            recompress(&encoding),
            recompress(&flags),
            recompress(&no_rate),
            recompress(&[]),
        ] {
            assert!(decode_block(&segment(), &bad).is_err());
        }
    }

    #[test]
    fn corrupt_counts_are_errors() {
        let scale = Scale {
            gain: 200.0,
            baseline: 0.0,
        };
        let (_, good) = encode_samples(&adc(&[5, 300, -7], scale), Some(scale));
        let mut unterminated = good.clone();
        unterminated.push(0x80);
        let mut zero_gain = good.clone();
        zero_gain[..8].copy_from_slice(&0f64.to_le_bytes());
        let mut huge = good[..16].to_vec();
        put_varint(&mut huge, zigzag(i64::from(i32::MAX)));
        put_varint(&mut huge, zigzag(i64::from(i32::MAX)));
        for bad in [&good[..7], &unterminated[..], &zero_gain[..], &huge[..]] {
            assert!(decode_samples(Encoding::Counts, bad).is_err());
        }
        assert!(Encoding::from_code(7).is_err());
    }
}
