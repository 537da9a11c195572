//! Scoring the beat extractor against reference annotations: beat-by-beat
//! matching per ANSI/AAMI EC57, the noise stress test, and a runner that
//! streams whole databases through the extractor.

mod detection;
mod noise;
mod runner;

pub use detection::{Comparison, DetectionScore, compare_detections, score_detections};
pub use noise::{NoiseKind, add_noise};
pub use runner::{DetectEvalOptions, LeadChoice, RecordResult, eval_record, list_records};
