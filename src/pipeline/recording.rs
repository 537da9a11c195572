//! A whole recording (an upload) made into the rows the daemon stores for a
//! streamed one: one segment, its samples cut into chunks as the wire would
//! carry them, the beats of the offline analysis
//! ([`super::offline::analyze_recording`]) filed under that segment, and the
//! rhythm episodes of those beats ([`super::rhythm::episodes_of`]).

use super::offline::analyze_recording;
use super::rhythm::episodes_of;
use crate::model::ModelError;
use crate::model::classifier::Classifier;
use crate::rhythm::RhythmConfig;
use crate::store::{BeatRow, ChunkRow, EpisodeRow, SegmentKey, SegmentRow};

/// One lead of a recording and where it belongs.
pub struct Recording {
    /// The segment it is stored as; a stream number of its own keeps it from
    /// merging into a live stream's segments.
    pub key: SegmentKey,
    /// Time of the first sample, µs since the epoch.
    pub t0_us: i64,
    pub fs: f64,
    pub lead: String,
    /// mV.
    pub samples: Vec<f32>,
    /// The counts-to-mV scale, when the samples were counts (kept as counts by the store).
    pub scale: Option<crate::formats::wire::Scale>,
    /// When it arrived, µs since the epoch (kept with each chunk).
    pub received_us: i64,
}

/// What storing a recording writes.
pub struct RecordingRows {
    pub segment: SegmentRow,
    pub chunks: Vec<ChunkRow>,
    pub beats: Vec<BeatRow>,
    pub episodes: Vec<EpisodeRow>,
}

/// Samples per stored chunk of a recording (10 s, within the wire limit).
fn chunk_len(fs: f64) -> usize {
    ((fs * 10.0) as usize).clamp(1, crate::formats::wire::MAX_SAMPLES)
}

/// Analyses `rec` as the daemon analyses a stream (CPU-bound: call it off the
/// async runtime) and returns its segment, chunks, beats and episodes.
pub fn recording_rows(
    rec: Recording,
    powerline_hz: Option<f64>,
    classifier: &Classifier,
    threshold: f32,
    rhythm: &RhythmConfig,
) -> Result<RecordingRows, ModelError> {
    let Recording {
        key,
        t0_us,
        fs,
        lead,
        samples,
        scale,
        received_us,
    } = rec;
    let mut beats = analyze_recording(
        &key.device,
        t0_us,
        fs,
        &samples,
        powerline_hz,
        classifier,
        threshold,
    )?;
    for b in &mut beats {
        b.segment = key.clone();
    }
    let per = chunk_len(fs);
    let chunks = samples
        .chunks(per)
        .enumerate()
        .map(|(i, part)| ChunkRow {
            segment: key.clone(),
            seq: i as u64,
            t0_us: t0_us + ((i * per) as f64 / fs * 1e6).round() as i64,
            fs,
            received_us,
            samples: part.to_vec(),
            scale,
        })
        .collect();
    let segment = SegmentRow {
        key,
        t0_us,
        fs,
        lead,
        after_gap: false,
    };
    let episodes = episodes_of(&beats, rhythm);
    Ok(RecordingRows {
        segment,
        chunks,
        beats,
        episodes,
    })
}
