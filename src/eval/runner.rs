//! Streams one record through the beat extractor and scores it.

use super::{DetectionScore, NoiseKind, add_noise, compare_detections, vf_episodes};
use crate::dsp::{BeatExtractor, DspError, ExtractorConfig};
use crate::formats::wfdb::{self, Annotation, LeadChoice, WfdbError};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// How to run a detection evaluation.
#[derive(Debug, Clone)]
pub struct DetectEvalOptions {
    /// Signal to analyse.
    pub lead: LeadChoice,
    /// Noise to add, from `noise_dir`, at `snr_db`.
    pub noise: Option<(NoiseKind, f64)>,
    /// Directory holding the `nstdb` noise records.
    pub noise_dir: PathBuf,
    /// Chunk size in samples, as a stream would deliver them.
    pub chunk: usize,
    /// Powerline frequency to notch.
    pub powerline_hz: Option<f64>,
    /// Also score ventricular flutter/fibrillation episodes (EC57 and `bxb` leave them out).
    pub score_vf: bool,
}

/// The outcome for one record.
#[derive(Debug, Clone, Serialize)]
pub struct RecordResult {
    /// Record name.
    pub record: String,
    /// TP, FN and FP.
    #[serde(flatten)]
    pub score: DetectionScore,
    /// Beats emitted by the extractor.
    pub beats: usize,
    /// Beats flagged unreadable by the quality gate.
    pub unreadable: usize,
    /// False detections among them: how much of the FP count the gate caught.
    pub fp_unreadable: usize,
    /// Mean time from R peak to beat emission, seconds.
    pub latency_mean_s: f64,
    /// Longest time from R peak to beat emission, seconds.
    pub latency_max_s: f64,
    /// Mean of (detected − reference) R-peak time over matched beats, ms.
    pub offset_mean_ms: f64,
    /// Standard deviation of that offset, ms.
    pub offset_sd_ms: f64,
    /// Reference beats missed (sample indices).
    #[serde(skip)]
    pub missed: Vec<u64>,
    /// False detections (sample indices).
    #[serde(skip)]
    pub false_detections: Vec<u64>,
}

/// An evaluation failure.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A record or annotation file is unreadable.
    #[error(transparent)]
    Wfdb(#[from] WfdbError),
    /// The record's sampling rate is unsupported.
    #[error("{0}: {1}")]
    Dsp(String, DspError),
    /// The noise record does not fit the record.
    #[error("{0}")]
    Noise(String),
}

/// One signal of a record, in mV, with the record's reference annotations.
#[derive(Debug, Clone)]
pub struct AnnotatedSignal {
    /// Record name.
    pub record: String,
    /// Sampling rate, Hz.
    pub fs: f64,
    /// Index of the chosen signal in the record.
    pub channel: usize,
    /// Name of the chosen signal, e.g. `MLII`.
    pub lead: String,
    /// The signal, mV.
    pub signal: Vec<f32>,
    /// All annotations of `<record>.atr`.
    pub annotations: Vec<Annotation>,
}

impl AnnotatedSignal {
    /// Sample indices of the reference beats.
    pub fn beat_samples(&self) -> Vec<u64> {
        self.annotations
            .iter()
            .filter(|a| a.code.is_beat())
            .map(|a| a.sample)
            .collect()
    }
}

/// Reads record `path` (without extension): the chosen signal and `path.atr`.
pub fn read_annotated(path: &Path, lead: &LeadChoice) -> Result<AnnotatedSignal, WfdbError> {
    let record = wfdb::read_record(path)?;
    let channel = lead.channel(&record.header, &record.header_path)?;
    let annotations = wfdb::read_annotations(&path.with_extension("atr"))?;
    Ok(AnnotatedSignal {
        record: record.header.record.clone(),
        fs: record.header.fs,
        channel,
        lead: record.header.signals[channel].description.clone(),
        signal: record.physical(channel),
        annotations,
    })
}

/// Streams record `path` (without extension) through the extractor and scores it against `path.atr`.
pub fn eval_record(path: &Path, opts: &DetectEvalOptions) -> Result<RecordResult, EvalError> {
    let annotated = read_annotated(path, &opts.lead)?;
    let reference = annotated.beat_samples();
    let AnnotatedSignal {
        record,
        fs,
        mut signal,
        annotations,
        channel,
        ..
    } = annotated;
    let excluded = if opts.score_vf {
        Vec::new()
    } else {
        vf_episodes(&annotations)
    };
    if let Some((kind, snr)) = opts.noise {
        let noise_signal = kind
            .signal(&opts.noise_dir, channel, fs, signal.len())
            .map_err(EvalError::Noise)?;
        add_noise(&mut signal, &noise_signal, &reference, fs, snr);
    }
    let config = ExtractorConfig {
        powerline_hz: opts.powerline_hz,
        ..ExtractorConfig::new(fs)
    };
    let beats = BeatExtractor::extract_all(config, &signal, opts.chunk)
        .map_err(|e| EvalError::Dsp(path.display().to_string(), e))?;
    let detections: Vec<u64> = beats.iter().map(|b| b.sample).collect();
    let cmp = compare_detections(&reference, &detections, &excluded, fs);
    let ms: Vec<f64> = cmp
        .offsets
        .iter()
        .map(|&o| o as f64 * 1000.0 / fs)
        .collect();
    let mean = ms.iter().sum::<f64>() / ms.len().max(1) as f64;
    let sd = (ms.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / ms.len().max(1) as f64).sqrt();
    let latencies: Vec<f64> = beats
        .iter()
        .map(|b| (b.emitted_at - b.sample) as f64 / fs)
        .collect();
    Ok(RecordResult {
        record,
        score: cmp.score,
        beats: beats.len(),
        unreadable: beats.iter().filter(|b| !b.quality.is_readable()).count(),
        fp_unreadable: cmp
            .false_detections
            .iter()
            .filter(|&&s| {
                beats
                    .binary_search_by_key(&s, |b| b.sample)
                    .is_ok_and(|i| !beats[i].quality.is_readable())
            })
            .count(),
        latency_mean_s: latencies.iter().sum::<f64>() / latencies.len().max(1) as f64,
        latency_max_s: latencies.iter().copied().fold(0.0, f64::max),
        offset_mean_ms: mean,
        offset_sd_ms: sd,
        missed: cmp.missed,
        false_detections: cmp.false_detections,
    })
}
